//! `rnfs`: a user-space NFS server (and, later, client tools).
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rnfs_proto::{mount3, nfs3};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::Backend;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Parser)]
#[command(name = "rnfs", version, about = "A user-space NFS stack")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export a directory (or memory) over NFSv3 and MOUNT v3.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory to export as "/".
    #[arg(required_unless_present = "memory", conflicts_with = "memory")]
    path: Option<PathBuf>,
    /// Export an in-memory file system of this size instead (e.g. 64MiB, 1G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Address for NFS and MOUNT.
    #[arg(long, default_value = "127.0.0.1:2049")]
    listen: SocketAddr,
    /// Also answer MOUNT on this separate port.
    #[arg(long)]
    mount_port: Option<u16>,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    /// Do not register with the system's rpcbind.
    #[arg(long)]
    no_rpcbind: bool,
}

/// Parses "64MiB", "1G", "4096", "10k" into bytes (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
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

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(a) => serve(a),
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    let fs: Arc<dyn Backend> = match (&a.path, a.memory) {
        (Some(p), None) => {
            let meta =
                std::fs::metadata(p).with_context(|| format!("cannot export {}", p.display()))?;
            if !meta.is_dir() {
                bail!("cannot export {}: not a directory", p.display());
            }
            Arc::new(
                rnfs_vfs::local::LocalFs::new(p, a.read_only)
                    .with_context(|| format!("cannot open {}", p.display()))?,
            )
        }
        (None, Some(size)) => Arc::new(rnfs_vfs::memory::MemFs::new(size)),
        _ => bail!("give either a directory or --memory SIZE"),
    };
    let cfg = ServerConfig {
        read_only: a.read_only,
        ..Default::default()
    };
    let server = Arc::new(NfsServer::new(Export::new(1, "/", fs), cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()?;
    rt.block_on(run(a, server))
}

async fn run(a: ServeArgs, server: Arc<NfsServer>) -> Result<()> {
    use rnfs_rpc::transport::{serve, Config, ConnStats};
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let port = listener.local_addr()?.port();
    let mount_listener = match a.mount_port {
        Some(mp) => {
            let addr = SocketAddr::new(a.listen.ip(), mp);
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            )
        }
        None => None,
    };
    let mport = mount_listener
        .as_ref()
        .map(|l| l.local_addr().map(|a| a.port()))
        .transpose()?
        .unwrap_or(port);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stats = Arc::new(ConnStats::default());
    let cfg = Config::default();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(serve(
        listener,
        server.clone(),
        cfg,
        stats.clone(),
        rx.clone(),
    ));
    if let Some(l) = mount_listener {
        tasks.spawn(serve(l, server.clone(), cfg, stats.clone(), rx.clone()));
    }
    let registered = !a.no_rpcbind && register(port, mport).await;
    info!(listen = %a.listen, port, mount_port = mport, "rnfs serving NFSv3 and MOUNT v3");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("interrupted; shutting down"),
        _ = term.recv() => info!("terminated; shutting down"),
        Some(r) = tasks.join_next() => {
            warn!("listener stopped: {r:?}");
        }
    }
    let _ = tx.send(true);
    while tasks.join_next().await.is_some() {}
    if registered {
        let _ = tokio::task::spawn_blocking(|| {
            for (p, v) in [
                (nfs3::PROGRAM, nfs3::VERSION),
                (mount3::PROGRAM, mount3::VERSION),
            ] {
                let _ = rnfs_rpc::rpcbind::unregister(p, v);
            }
        })
        .await;
    }
    info!("stopped");
    Ok(())
}

async fn register(port: u16, mport: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let r = rnfs_rpc::rpcbind::register(nfs3::PROGRAM, nfs3::VERSION, port)
            .and_then(|()| rnfs_rpc::rpcbind::register(mount3::PROGRAM, mount3::VERSION, mport));
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
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }
}
