//! `rnfs serve`: the server's lifecycle: exports, listeners, rpcbind, signals, metrics.
use anyhow::{bail, Context, Result};
use rnfs_proto::{mount3, nfs3};
use rnfs_server::exports::{self, ExportsConfig};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::Backend;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{error, info, warn};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Directory to export as "/" to every client (read-write, no squashing).
    #[arg(conflicts_with_all = ["memory", "exports"])]
    path: Option<PathBuf>,
    /// Export an in-memory file system of this size as "/" instead (e.g. 64MiB, 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "exports")]
    memory: Option<u64>,
    /// Exports file: exports(5) syntax, or TOML when it ends in .toml. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    exports: Option<PathBuf>,
    /// Address for NFS and MOUNT.
    #[arg(long, default_value = "127.0.0.1:2049")]
    listen: SocketAddr,
    /// Also answer MOUNT on this separate port.
    #[arg(long)]
    mount_port: Option<u16>,
    /// Refuse every change, whatever the export rules say.
    #[arg(long)]
    read_only: bool,
    /// Do not register with the system's rpcbind.
    #[arg(long)]
    no_rpcbind: bool,
    /// Serve Prometheus metrics over HTTP on this address (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// MOUNT list (what `showmount -a` shows): most entries per client address; its oldest
    /// entry is forgotten beyond.
    #[arg(long, value_name = "N", default_value_t = rnfs_server::DEFAULT_MOUNTS_PER_CLIENT)]
    max_mounts_per_client: usize,
    /// MOUNT list: most entries in all; the oldest entry is forgotten beyond.
    #[arg(long, value_name = "N", default_value_t = rnfs_server::DEFAULT_MOUNTS_TOTAL)]
    max_mounts: usize,
    /// Protocol versions served, comma-separated: 3 (NFSv3 and MOUNT v3), 4.0 (or 4), 4.1,
    /// 4.2 (all on the same port). NFSv4 minor versions are served as a range: "4.0,4.2"
    /// serves 4.1 too. Minor versions not served answer MINOR_VERS_MISMATCH.
    #[arg(long, value_name = "LIST", default_value = "3,4.1,4.2", value_parser = parse_versions)]
    versions: Versions,
    /// NFSv4 lease, in seconds: a client silent this long loses its state to whoever
    /// conflicts with it; also the length of the grace period after a restart.
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    lease: u32,
    /// An NFSv4 bound on what clients may make the server hold, NAME=N; repeat for more.
    /// Names: clients (records, default 4096), unconfirmed (256; at the bound the oldest
    /// goes), sessions-per-client (16), conns-per-session (16), and for opens and locks
    /// states-per-client (65536), owners-per-client (16384), ranges-per-client (65536),
    /// states (1Mi), owners (256Ki), ranges (1Mi). A client over its own bound gets
    /// NFS4ERR_RESOURCE, over the server's NFS4ERR_DELAY. Unless --no-delegations:
    /// delegations (4 per MiB of RAM, 1024 to 1Mi) and delegations-per-client (an eighth
    /// of that, at least 256); past them none is granted, and at the total the holders
    /// of the most are asked to return some (CB_RECALL_ANY).
    #[arg(long = "v4-limit", value_name = "NAME=N", value_parser = parse_v4_limit)]
    v4_limits: Vec<(String, usize)>,
    /// NFSv4 owner domain (the `Domain` of knfsd's idmapd.conf): owners and groups given
    /// as `name@DOMAIN` are accepted and mapped through the system's user and group
    /// database, besides numeric ids (what clients send for sec=sys by default). Without
    /// it, names are refused with BADOWNER and clients fall back to numbers.
    #[arg(long, value_name = "DOMAIN", value_parser = parse_domain)]
    idmap_domain: Option<String>,
    /// With --idmap-domain: answer owners as `name@DOMAIN` where the id has a name (the
    /// client must then share the domain and user database). Default: numeric ids.
    #[arg(long, requires = "idmap_domain")]
    idmap_names: bool,
    /// Grant NFSv4.1 delegations (read and write, recalled over the client's back channel
    /// when another client, NFSv3 included, needs the file; revoked a lease after the
    /// recall if not returned). The default, as in knfsd; accepted for compatibility.
    #[arg(long, overrides_with = "no_delegations")]
    delegations: bool,
    /// Grant no NFSv4 delegations (as NFS-Ganesha by default). Under a delegation the Linux
    /// client grants its own byte-range locks locally, so two mounts of one client and one
    /// minor version (`nosharecache`) do not exclude each other, as with knfsd.
    #[arg(long, overrides_with = "delegations")]
    no_delegations: bool,
    #[command(flatten)]
    handles: HandleArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The protocol versions `--versions` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions {
    /// NFSv3 and MOUNT v3.
    v3: bool,
    /// NFSv4 minor versions, lowest and highest.
    v4: Option<(u32, u32)>,
}

/// An NFSv4 owner domain: a non-empty DNS-like name (letters, digits, `.`, `-`, `_`),
/// at most 255 bytes; no `@`, which separates it from the name.
fn parse_domain(s: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    if s.is_empty() || s.len() > 255 || !s.bytes().all(ok) {
        return Err(format!("not a domain name: {s:?}"));
    }
    Ok(s.to_string())
}

/// Parses "3,4.1,4.2" (any non-empty subset).
pub(crate) fn parse_versions(s: &str) -> Result<Versions, String> {
    let mut v = Versions {
        v3: false,
        v4: None,
    };
    for part in s.split(',').map(str::trim) {
        let minor = match part {
            "3" => {
                v.v3 = true;
                continue;
            }
            "4" | "4.0" => 0,
            "4.1" => 1,
            "4.2" => 2,
            other => {
                return Err(format!(
                    "unknown version {other:?}: give 3, 4.0, 4.1 or 4.2"
                ))
            }
        };
        v.v4 = Some(v.v4.map_or((minor, minor), |(lo, hi)| (lo.min(minor), hi.max(minor))));
    }
    if !v.v3 && v.v4.is_none() {
        return Err("no version to serve".into());
    }
    Ok(v)
}

/// Parses "owners-per-client=64" (a name [`rnfs_server::v4::service::V4Bounds::set`]
/// takes).
pub(crate) fn parse_v4_limit(s: &str) -> Result<(String, usize), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give NAME=N"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a number"))?;
    let name = name.trim().to_string();
    rnfs_server::v4::service::V4Bounds::default().set(&name, n)?;
    Ok((name, n))
}

/// The handle secret's state directory and the bounds on searching for unknown keys.
#[derive(clap::Args)]
pub(crate) struct HandleArgs {
    /// State directory: keeps the secret that makes file handles unforgeable (file
    /// handle-secret, made on first start), so handles survive restarts. Default:
    /// /var/lib/rnfs as root, else $XDG_STATE_HOME/rnfs or ~/.local/state/rnfs. With
    /// --memory and no --state-dir, a new secret each start (the files do not survive it).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Most directories read when searching for a file whose handle the server does not
    /// know (after a restart, or moved behind its back); a search given up answers STALE.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    search_dirs: usize,
    /// Longest such a search runs, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    search_ms: u64,
    /// Most such searches running at once for one client address; beyond it (or beyond
    /// --searches) calls are answered JUKEBOX, and the client retries later.
    #[arg(long, value_name = "N", default_value_t = 2)]
    searches_per_client: usize,
    /// Most such searches running at once in all.
    #[arg(long, value_name = "N", default_value_t = 8)]
    searches: usize,
}

impl HandleArgs {
    /// The handle secret and the search bounds of a server configuration; the state
    /// directory in use, if any.
    fn apply(&self, memory: bool, cfg: &mut ServerConfig) -> Result<Option<PathBuf>> {
        use rnfs_server::state;
        let dir = match &self.state_dir {
            Some(d) => Some(d.clone()),
            None if memory => None,
            None => Some(
                state::default_dir(
                    rustix::process::geteuid().is_root(),
                    std::env::var_os("XDG_STATE_HOME"),
                    std::env::var_os("HOME"),
                )
                .context("no state directory: set HOME or give --state-dir")?,
            ),
        };
        if let Some(d) = &dir {
            cfg.handle_secret = state::load_or_create(d)?;
            info!(dir = %d.display(), "handle secret loaded");
        }
        cfg.search = rnfs_server::search::SearchConfig {
            max_dirs: self.search_dirs.max(1),
            max_time: std::time::Duration::from_millis(self.search_ms),
            per_client: self.searches_per_client,
            total: self.searches,
        };
        Ok(dir)
    }
}

/// What a client can make the server hold (README "Limits").
#[derive(clap::Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct LimitArgs {
    /// Connections open at once; at the limit a new one closes the connection idle longest,
    /// or is refused when none is idle. [default: the descriptor limit (raised to its hard
    /// limit at start) minus 64 and a quarter of it (at most 4096), kept for the exports]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Close a connection with no call running and nothing received or sent for this long.
    #[arg(long, value_name = "SECS", default_value_t = 360)]
    idle_timeout: u64,
    /// Close a connection whose record (call) has begun to arrive but is not complete this
    /// long after.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    record_timeout: u64,
    /// Bytes of calls being received and replies waiting to be sent, over all connections,
    /// and 16 KiB for each open connection (e.g. 256MiB); when short, the heaviest
    /// connections stop being read first.
    /// [default: a sixteenth of RAM, at least 64MiB, at most 1GiB]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// Bytes of replies a connection may owe before its requests stop being read (a client
    /// that does not read its replies holds at most this).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "16MiB")]
    max_unsent: u64,
}

impl LimitArgs {
    /// The transport's configuration; call after raising the descriptor limit.
    fn config(&self) -> rnfs_rpc::transport::Config {
        let d = rnfs_rpc::transport::Config::default();
        let bytes = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        rnfs_rpc::transport::Config {
            max_connections: self.max_connections.unwrap_or(d.max_connections).max(1),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout.max(1)),
            record_timeout: std::time::Duration::from_secs(self.record_timeout.max(1)),
            memory_budget: self.memory_budget.map_or(d.memory_budget, bytes),
            max_unsent: bytes(self.max_unsent),
            ..d
        }
    }
}

/// Parses "64MiB", "1G", "4096", "10k" into bytes (binary multiples).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

fn open_dir(p: &Path, read_only: bool, crossmnt: bool) -> Result<Arc<dyn Backend>> {
    let meta = std::fs::metadata(p).with_context(|| format!("cannot export {}", p.display()))?;
    if !meta.is_dir() {
        bail!("cannot export {}: not a directory", p.display());
    }
    Ok(Arc::new(
        rnfs_vfs::local::LocalFs::new(p, read_only)
            .with_context(|| format!("cannot open {}", p.display()))?
            .cross_mounts(crossmnt),
    ))
}

/// Builds the exports of a configuration, reusing the backends of `old` exports that serve
/// the same directory with the same id and `crossmnt` (their caches and handles stay as
/// they are).
fn build_exports(cfg: &ExportsConfig, old: &[Arc<Export>], read_only: bool) -> Result<Vec<Export>> {
    let mut reuse: HashMap<(u16, PathBuf, bool), Arc<dyn Backend>> = HashMap::new();
    for e in old {
        if let Some(d) = e.dir.as_ref() {
            let crossmnt = e.rules.iter().any(|r| r.options.crossmnt);
            reuse.insert((e.id, d.clone(), crossmnt), e.fs.clone());
        }
    }
    cfg.exports
        .iter()
        .map(|spec| {
            let fs = match reuse.get(&(spec.id, spec.dir.clone(), spec.crossmnt())) {
                Some(fs) => fs.clone(),
                None => open_dir(&spec.dir, read_only, spec.crossmnt())?,
            };
            Ok(Export::from_spec(spec, fs).with_dir(spec.dir.clone()))
        })
        .collect()
}

pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    tune_allocator();
    // Each connection takes a descriptor: use all the system grants us (the backends size
    // their descriptor caches from the limit, so before opening them).
    match rnfs_rpc::transport::raise_fd_limit() {
        Ok(n) => info!(nofile = n, "descriptor limit"),
        Err(e) => warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let exports = match (&a.path, a.memory, &a.exports) {
        (Some(p), None, None) => {
            vec![Export::new(1, "/", open_dir(p, a.read_only, false)?).with_dir(p.clone())]
        }
        (None, Some(size), None) => {
            let fs = Arc::new(rnfs_vfs::memory::MemFs::new(size));
            // Memory never waits: its calls run on the connection task (no thread hop).
            vec![Export::new(1, "/", fs).never_blocks()]
        }
        (None, None, Some(f)) => {
            let cfg = exports::load(f).map_err(|e| anyhow::anyhow!("{e}"))?;
            if cfg.exports.is_empty() {
                bail!("{}: no exports", f.display());
            }
            build_exports(&cfg, &[], a.read_only)?
        }
        _ => bail!("give a directory, --memory SIZE or --exports FILE"),
    };
    let mut cfg = ServerConfig {
        read_only: a.read_only,
        mounts_per_client: a.max_mounts_per_client,
        mounts_total: a.max_mounts,
        ..Default::default()
    };
    let state_dir = a.handles.apply(a.memory.is_some(), &mut cfg)?;
    cfg.nfs3 = a.versions.v3;
    cfg.v4 = a.versions.v4.map(|minors| {
        let mut bounds = rnfs_server::v4::service::V4Bounds::default();
        for (name, n) in &a.v4_limits {
            // Checked when parsed.
            let _ = bounds.set(name, *n);
        }
        rnfs_server::v4::service::V4Options {
            minors,
            lease_secs: a.lease.max(1),
            state_dir,
            bounds,
            owner_domain: a.idmap_domain.clone(),
            owner_names: a.idmap_names,
            delegations: !a.no_delegations,
            ..rnfs_server::v4::service::V4Options::default()
        }
    });
    let server = Arc::new(NfsServer::with_exports(exports, cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    rt.block_on(run(a, server))
}

/// Connections the kernel may queue for accept: the standard library's (and tokio's) 128
/// overflows under a burst of connects (a mount storm, or a flood the connection limit
/// is shedding), and a legitimate client's SYN is then dropped and retried a second later.
/// knfsd listens with SOMAXCONN; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` (SO_REUSEADDR, as `TcpListener::bind`), with
/// [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(LISTEN_BACKLOG)
}

async fn run(a: ServeArgs, server: Arc<NfsServer>) -> Result<()> {
    use rnfs_rpc::transport::serve;
    use tokio::signal::unix::{signal, SignalKind};
    let listener = listen(a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    let port = listener.local_addr()?.port();
    let mount_listener = match a.mount_port {
        Some(mp) => {
            let addr = SocketAddr::new(a.listen.ip(), mp);
            Some(listen(addr).with_context(|| format!("cannot listen on {addr}"))?)
        }
        None => None,
    };
    let mport = mount_listener
        .as_ref()
        .map(|l| l.local_addr().map(|a| a.port()))
        .transpose()?
        .unwrap_or(port);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let cfg = a.limits.config();
    info!(
        max_connections = cfg.max_connections,
        idle_timeout_s = cfg.idle_timeout.as_secs(),
        record_timeout_s = cfg.record_timeout.as_secs(),
        memory_budget = cfg.memory_budget,
        max_unsent = cfg.max_unsent,
        "limits"
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(serve(
        listener,
        server.clone(),
        cfg,
        server.conn_stats.clone(),
        rx.clone(),
    ));
    if let Some(l) = mount_listener {
        tasks.spawn(serve(
            l,
            server.clone(),
            cfg,
            server.conn_stats.clone(),
            rx.clone(),
        ));
    }
    if let Some(addr) = a.metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        info!(%addr, "metrics at http://{addr}/metrics");
        tokio::spawn(metrics_endpoint(l, server.clone()));
    }
    tokio::spawn(trim_after_bursts(server.conn_stats.clone()));
    if server.v4().is_some() {
        tokio::spawn(laundromat(server.clone()));
    }
    let registered = !a.no_rpcbind && register(a.versions, port, mport).await;
    for e in &server.exports().exports {
        info!(export = %e.path, clients = e.rules.len(), "exported");
    }
    info!(listen = %a.listen, port, mount_port = mport, versions = ?a.versions, "rnfs serving");

    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { info!("interrupted; shutting down"); break; }
            _ = term.recv() => { info!("terminated; shutting down"); break; }
            _ = hup.recv() => reload(&a, &server),
            Some(r) = tasks.join_next() => { warn!("listener stopped: {r:?}"); break; }
        }
    }
    // Stop accepting, let calls in flight finish, then make written data durable.
    let _ = tx.send(true);
    while tasks.join_next().await.is_some() {}
    let srv = server.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for e in &srv.exports().exports {
            if let Err(err) = e.fs.sync_all() {
                warn!(export = %e.path, error = %err, "flush at shutdown failed");
            }
        }
    })
    .await;
    if registered {
        let _ = tokio::task::spawn_blocking(|| {
            for (p, v) in [
                (nfs3::PROGRAM, nfs3::VERSION),
                (mount3::PROGRAM, mount3::VERSION),
                (nfs3::PROGRAM, 4),
            ] {
                let _ = rnfs_rpc::rpcbind::unregister(p, v);
            }
        })
        .await;
    }
    info!("stopped");
    Ok(())
}

/// SIGHUP: re-reads the exports file; a bad file leaves the running exports as they are.
fn reload(a: &ServeArgs, server: &NfsServer) {
    let Some(f) = &a.exports else {
        info!("SIGHUP: no exports file to re-read");
        return;
    };
    let r = exports::load(f)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|cfg| build_exports(&cfg, &server.exports().exports, a.read_only));
    match r {
        Ok(ex) => {
            let n = ex.len();
            server.reload(ex);
            info!(exports = n, "SIGHUP: exports reloaded");
        }
        Err(e) => error!("SIGHUP: exports not reloaded, keeping the old ones: {e:#}"),
    }
}

/// A minimal HTTP endpoint: `GET /metrics` answers the Prometheus text, anything else 404.
async fn metrics_endpoint(l: tokio::net::TcpListener, server: Arc<NfsServer>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = l.accept().await else {
            // Out of descriptors, most likely: retrying at once would spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            // Read the request head, bounded, with a deadline.
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) =
                if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                    ("200 OK", rnfs_server::admin::metrics_text(&server))
                } else {
                    ("404 Not Found", "not found: try /metrics\n".to_string())
                };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Gives the memory of a burst of buffered calls and replies back to the system once it
/// has passed (the buffered total fell by at least 16 MiB, to half its peak or less).
///
/// Without this, glibc keeps it: after the first 1 MiB buffer is freed its mmap threshold
/// rises, later 1 MiB buffers come from its arenas, and freed arena memory stays mapped.
/// Measured with the test `replies_never_read_are_held_within_the_budget_and_freed_after_close`:
/// 51 MiB of RSS over a 6 MiB baseline stayed after the connections closed, with or without
/// MALLOC_ARENA_MAX=1; with MALLOC_MMAP_THRESHOLD_=131072 it went. Fixing the threshold
/// instead would make every 1 MiB WRITE record a fresh mmap and 256 page faults; trimming
/// after a burst costs nothing on the way.
async fn trim_after_bursts(stats: Arc<rnfs_rpc::transport::ConnStats>) {
    const BURST: usize = 16 << 20;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut high = 0;
    loop {
        tick.tick().await;
        high = high.max(stats.memory.take_peak());
        let now = stats.memory.total();
        if high >= now + BURST && now <= high / 2 {
            high = now;
            let _ = tokio::task::spawn_blocking(give_back_freed_memory).await;
        }
    }
}

/// Returns the allocator's free pages to the system (glibc `malloc_trim`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks; it
    // takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators give memory back by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_freed_memory() {}

/// The NFSv4 laundromat: once a second, leases, courtesy clients and grace (on the
/// blocking pool: it may write the stable client records).
async fn laundromat(server: Arc<NfsServer>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let s = server.clone();
        let _ = tokio::task::spawn_blocking(move || s.v4_tick()).await;
    }
}

/// Makes glibc serve every allocation of 128 KiB or more (receive buffers, replies) with
/// its own mapping, returned to the system when freed. By default the threshold rises to
/// the largest block freed, after which 1 MiB buffers come from per-thread arenas that
/// keep what is freed: under the soak benchmark's hostile mix the server's peak RSS was
/// 376 MiB for at most 256 MiB buffered; with the threshold fixed, 270 MiB
/// (docs/benchmarks.md). A 1 MiB WRITE's receive buffer is then a fresh mapping (its
/// growth a `mremap`, no copy); READ replies come from the reply-buffer pool.
///
/// An administrator's `MALLOC_MMAP_THRESHOLD_` (glibc reads it at start) wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a parameter of the allocator under its lock, called
    // before the runtime's threads start; it takes no pointer.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if ok != 1 {
        warn!("mallopt(M_MMAP_THRESHOLD) refused; RSS may exceed the memory budget");
    }
}

/// Other allocators: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

async fn register(versions: Versions, port: u16, mport: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let mut r = Ok(());
        if versions.v3 {
            r = rnfs_rpc::rpcbind::register(nfs3::PROGRAM, nfs3::VERSION, port).and_then(|()| {
                rnfs_rpc::rpcbind::register(mount3::PROGRAM, mount3::VERSION, mport)
            });
        }
        if versions.v4.is_some() {
            r = r.and_then(|()| rnfs_rpc::rpcbind::register(nfs3::PROGRAM, 4, port));
        }
        match r {
            Ok(()) => {
                info!("registered with rpcbind");
                true
            }
            Err(e) => {
                info!("not registered with rpcbind: {e}");
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::{parse_size, parse_v4_limit, parse_versions, Versions};
    use rnfs_server::v4::service::V4Bounds;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn versions() {
        let v = |v3, v4| Versions { v3, v4 };
        assert_eq!(parse_versions("3,4.1,4.2"), Ok(v(true, Some((1, 2)))));
        assert_eq!(parse_versions("3"), Ok(v(true, None)));
        assert_eq!(parse_versions("4.2"), Ok(v(false, Some((2, 2)))));
        assert_eq!(parse_versions("4.1, 3"), Ok(v(true, Some((1, 1)))));
        assert_eq!(parse_versions("4.0"), Ok(v(false, Some((0, 0)))));
        assert_eq!(parse_versions("3,4,4.2"), Ok(v(true, Some((0, 2)))));
        assert!(parse_versions("2").is_err());
        assert!(parse_versions("").is_err());
    }

    #[test]
    fn v4_limits() {
        assert_eq!(
            parse_v4_limit("owners-per-client=8"),
            Ok(("owners-per-client".to_string(), 8))
        );
        assert!(parse_v4_limit("owners-per-client").is_err());
        assert!(parse_v4_limit("owners-per-client=x").is_err());
        assert!(parse_v4_limit("owners-per-client=0").is_err());
        assert!(parse_v4_limit("fish=3").is_err());
        // Every name sets its own bound, and only it.
        let d = V4Bounds::default();
        let mut seen = Vec::new();
        for name in V4Bounds::NAMES {
            let mut b = d;
            assert_eq!(b.set(name, 3), Ok(()), "{name}");
            assert_ne!(b, d, "{name}");
            assert!(!seen.contains(&b), "{name} sets another's bound");
            seen.push(b);
        }
    }
}
