//! The client: mounting, path resolution, metadata operations, and the driver that runs
//! the write-back engines' actions.
use crate::error::Error;
use crate::inode::{CacheCounters, CacheStats, Inode, InodeTable};
use crate::nfs::{self, IoStats, Nfs3};
use crate::nfs4::Nfs4;
use crate::readdir::DirCaches;
use crate::rpc::buf::{Buf, BufPool, Slice};
use crate::rpc::core::{RetryMode, RetryPolicy};
use crate::rpc::{auth_sys, RpcClient, RpcConfig, RpcStats};
use crate::types::{
    Attr, CreateHow, FileHandle, FileType, FsStat, SetAttr, SetTime, SpecialFile, Status,
};
use crate::url::NfsUrl;
use crate::url::NfsVersion;
use crate::v4::session::{Session, SessionConfig};
use crate::wire::Wire;
use crate::writeback::{WbAction, WbConfig, WriteReply};
use rnfs_proto::mount3::MountStat3;
use rnfs_proto::{mount3, nfs3 as p3};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the client behaves; most fields come from the URL (see [`crate::url`]).
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// AUTH_SYS user id.
    pub uid: u32,
    /// AUTH_SYS group id.
    pub gid: u32,
    /// Give up after `retrans` retransmissions instead of retrying forever.
    pub soft: bool,
    /// First RPC timeout.
    pub timeo: Duration,
    /// Retransmissions of a call before a soft mount gives up: `retrans + 1` tries in all,
    /// as nfs(5) means it (a lost connection counts as a try).
    pub retrans: u32,
    /// Largest READ (further limited by the server's FSINFO).
    pub rsize: u32,
    /// Largest WRITE (further limited by the server's FSINFO).
    pub wsize: u32,
    /// WRITEs in flight per file.
    pub writes_in_flight: usize,
    /// Shortest time cached attributes of a file are trusted (`acregmin`); the timeout
    /// grows with the time the file has been seen unchanged, up to `acregmax`. An open
    /// always asks the server (close-to-open).
    pub acregmin: Duration,
    /// Longest time cached attributes of a file are trusted (`acregmax`).
    pub acregmax: Duration,
    /// Shortest time cached attributes of a directory are trusted (`acdirmin`).
    pub acdirmin: Duration,
    /// Longest time cached attributes of a directory are trusted (`acdirmax`).
    pub acdirmax: Duration,
    /// Most bytes of clean pages cached by the client.
    pub page_cache_bytes: u64,
    /// Most bytes a sequential reader keeps READ ahead (URL `readahead=N`; 0: none); never
    /// more than a quarter of `page_cache_bytes`. Changeable later with
    /// [`Client::set_readahead`].
    pub readahead: u64,
    /// Bytes a file may hold in its write-back engine before `write()` waits for a flush.
    pub dirty_bytes_per_file: u64,
    /// Size asked for in each READDIRPLUS reply.
    pub readdir_bytes: u32,
    /// List directories with READDIRPLUS (names with handles and attributes); `false`
    /// uses plain READDIR. A server that answers NOTSUPP to READDIRPLUS gets READDIR
    /// from then on either way.
    pub readdirplus: bool,
    /// Most entries one listing of a directory may return (counting every entry the
    /// server sends, repeats included); past it the listing fails with
    /// [`crate::ServerError::ListingTooLarge`], so a server sending names forever cannot
    /// make the client hold unbounded memory. Default [`DEFAULT_MAX_DIR_ENTRIES`].
    pub max_dir_entries: u64,
    /// Most bytes of names one listing of a directory may return (the same way). Default
    /// [`DEFAULT_MAX_DIR_BYTES`].
    pub max_dir_bytes: u64,
    /// Inodes kept cached after their last user let go.
    pub inode_cache: usize,
    /// Dirty data older than this is written back even while the file stays open.
    pub dirty_expire: Duration,
    /// Port of the portmapper (RFC 1833), asked for ports the URL does not give.
    pub portmap_port: u16,
    /// Connect to MOUNT and NFS from a source port below 1024 (URL `privport=1`), for
    /// `secure` exports. Needs root or `CAP_NET_BIND_SERVICE`.
    pub privileged_port: bool,
}

/// Default bound on the entries of one directory listing: 250,000. A listing costs about
/// 1.2 KiB per READDIRPLUS entry (its inode, attributes, name and cached chunk: 1.2 GB
/// for a million, measured with `rnfs ls` against the hostile server's endless listing),
/// so this keeps one listing near 300 MiB; a larger directory needs a larger bound.
pub const DEFAULT_MAX_DIR_ENTRIES: u64 = 250_000;

/// Default bound on the name bytes of one directory listing: 32 MiB (the entry bound's
/// worth of names of 128 bytes).
pub const DEFAULT_MAX_DIR_BYTES: u64 = 32 << 20;

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            uid: 0,
            gid: 0,
            soft: false,
            timeo: Duration::from_secs(10),
            retrans: 2,
            rsize: 1 << 20,
            wsize: 1 << 20,
            writes_in_flight: 8,
            // The Linux client's defaults.
            acregmin: Duration::from_secs(3),
            acregmax: Duration::from_secs(60),
            acdirmin: Duration::from_secs(30),
            acdirmax: Duration::from_secs(60),
            page_cache_bytes: 256 << 20,
            readahead: crate::inode::DEFAULT_READAHEAD,
            dirty_bytes_per_file: 64 << 20,
            readdir_bytes: 32 * 1024,
            readdirplus: true,
            max_dir_entries: DEFAULT_MAX_DIR_ENTRIES,
            max_dir_bytes: DEFAULT_MAX_DIR_BYTES,
            inode_cache: 1024,
            dirty_expire: Duration::from_secs(5),
            portmap_port: rnfs_proto::portmap::PORT,
            privileged_port: false,
        }
    }
}

impl MountOptions {
    /// Defaults overridden by the URL's parameters.
    pub fn from_url(u: &NfsUrl) -> Self {
        let d = Self::default();
        Self {
            uid: u.uid.unwrap_or(d.uid),
            gid: u.gid.unwrap_or(d.gid),
            soft: u.soft.unwrap_or(d.soft),
            timeo: u
                .timeo
                .map(|t| Duration::from_millis(u64::from(t.max(1)) * 100))
                .unwrap_or(d.timeo),
            retrans: u.retrans.unwrap_or(d.retrans),
            rsize: u.rsize.unwrap_or(d.rsize),
            wsize: u.wsize.unwrap_or(d.wsize),
            readahead: u.readahead.unwrap_or(d.readahead),
            privileged_port: u.privport.unwrap_or(d.privileged_port),
            ..d
        }
    }

    fn rpc_config(&self) -> RpcConfig {
        RpcConfig {
            retry: RetryPolicy {
                timeout: self.timeo,
                max_timeout: self.timeo * 6,
                mode: if self.soft {
                    RetryMode::Soft {
                        tries: self.retrans.saturating_add(1),
                    }
                } else {
                    RetryMode::Hard
                },
            },
            cred: auth_sys(self.uid, self.gid, &[]),
            privileged_port: self.privileged_port,
            ..Default::default()
        }
    }
}

pub(crate) struct Shared {
    pub(crate) nfs: Wire,
    /// The runtime the client was mounted on, for work that outlives a caller (write-back
    /// and CLOSE after a dropped file).
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) root: Arc<Inode>,
    pub(crate) opts: MountOptions,
    pub(crate) rsize: u32,
    pub(crate) inodes: InodeTable,
    pub(crate) counters: Arc<CacheCounters>,
    pub(crate) dirs: DirCaches,
    /// Buffers for data written by the application (reused while a stream goes on).
    pub(crate) wbufs: Arc<BufPool>,
    /// Whether READDIRPLUS is used (cleared when the server answers NOTSUPP).
    pub(crate) plus: AtomicBool,
    /// Source of EXCLUSIVE CREATE verifiers: a per-client random base plus a counter.
    create_verf: (u64, AtomicU64),
    path: String,
    /// The export path given to MOUNT (absolute symbolic link targets under it resolve
    /// inside the export).
    export: String,
}

/// The READ or WRITE size to use: what the mount asks for, within the server's maximum
/// (`rtmax`/`wtmax`; RFC 1813 3.3.19 says the preferred size "should be the same" unless
/// there is a clear benefit, and a server whose preference is odd, e.g. nfsserve's 124 KiB,
/// would otherwise cut every read-ahead into READs that straddle pages), in whole cache
/// pages when at least one, and never below 4 KiB.
fn transfer_size(want: u32, max: u32) -> u32 {
    let v = if max > 0 { want.min(max) } else { want };
    let page = crate::inode::PAGE as u32;
    if v >= page {
        v - v % page
    } else {
        v.max(4096)
    }
}

/// How long a mount without `version=` waits for an NFSv4.1 session before it tries NFSv3.
const V4_PROBE: Duration = Duration::from_secs(15);

/// Symbolic links followed in one path before giving up (Linux's MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

/// What a path names: the directory holding its last component, that component, and the
/// inode it names (`None`: no such entry, which only the last component may lack).
pub(crate) struct Walked {
    pub(crate) dir: Arc<Inode>,
    pub(crate) name: Option<String>,
    pub(crate) ino: Option<Arc<Inode>>,
}

/// A mounted NFSv3 export. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) s: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.s.nfs.rpc().addr())
            .finish()
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let mut it = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::Url(format!("cannot resolve {host:?}: {e}")))?;
    it.next()
        .ok_or_else(|| Error::Url(format!("{host:?} has no address")))
}

impl Client {
    /// Mounts the export named by `url` (the shortest prefix of its path that MOUNT
    /// accepts); ports not given are asked from the portmapper on port 111, falling back
    /// to the NFS port for MOUNT when there is no portmapper (rnfs answers MOUNT there).
    pub async fn mount(url: &NfsUrl) -> Result<Client, Error> {
        Self::mount_with(url, MountOptions::from_url(url)).await
    }

    /// Like [`Client::mount`] with explicit options.
    pub async fn mount_with(url: &NfsUrl, opts: MountOptions) -> Result<Client, Error> {
        let (nfs, root_fh, path, export) = match url.version {
            Some(NfsVersion::V3) => Self::mount_v3(url, &opts).await?,
            Some(NfsVersion::V41) => Self::mount_v41(url, &opts).await?,
            // As the Linux client's mount: NFSv4.1 first, NFSv3 if the server does not
            // speak it (the program or version refused, or no session established).
            None => match Self::mount_v41(url, &opts).await {
                Ok(m) => m,
                Err(e @ (Error::Url(_) | Error::Invalid(_))) => return Err(e),
                Err(e) => {
                    tracing::debug!("NFSv4.1 mount failed ({e}); trying NFSv3");
                    Self::mount_v3(url, &opts).await?
                }
            },
        };
        let info = nfs.fsinfo(&root_fh).await?;
        let rsize = transfer_size(opts.rsize, info.rtmax);
        let wsize = transfer_size(opts.wsize, info.wtmax);
        let counters = Arc::new(CacheCounters::default());
        counters
            .page_limit
            .store(opts.page_cache_bytes, Ordering::Relaxed);
        counters
            .readahead_max
            .store(opts.readahead, Ordering::Relaxed);
        let inodes = InodeTable::new(
            counters.clone(),
            WbConfig {
                wsize,
                max_in_flight: opts.writes_in_flight,
                dirty_expire: opts.dirty_expire,
            },
            opts.inode_cache,
        );
        let root = inodes.get(&root_fh, info.attr, Instant::now());
        let opts_plus = opts.readdirplus;
        let wbufs = BufPool::new(opts.dirty_bytes_per_file as usize);
        let period =
            (opts.dirty_expire / 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let c = Client {
            s: Arc::new(Shared {
                nfs,
                rt: tokio::runtime::Handle::current(),
                root,
                opts,
                rsize,
                inodes,
                counters,
                dirs: DirCaches::default(),
                wbufs,
                plus: AtomicBool::new(opts_plus),
                create_verf: (random_u64(), AtomicU64::new(0)),
                path,
                export,
            }),
        };
        // Writes back expired dirty data, and about once a second lets go of write buffers
        // kept for a stream that has ended; stops when the client is dropped.
        let weak = Arc::downgrade(&c.s);
        let trim_every = (Duration::from_secs(1).as_millis() / period.as_millis().max(1)).max(1);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 1u128.. {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { break };
                if n % trim_every == 0 {
                    s.wbufs.trim_if_idle();
                }
                Client { s }.write_back_expired();
            }
        });
        Ok(c)
    }

    /// NFSv3: MOUNT of the shortest prefix of the URL's path that the server exports.
    async fn mount_v3(
        url: &NfsUrl,
        opts: &MountOptions,
    ) -> Result<(Wire, FileHandle, String, String), Error> {
        let base = resolve(&url.host, 0).await?;
        let rcfg = opts.rpc_config();
        let need_pmap = url.nfsport.is_none() || url.mountport.is_none();
        let pmap = need_pmap.then(|| {
            let mut c = rcfg.clone();
            c.retry = RetryPolicy {
                timeout: Duration::from_secs(3),
                max_timeout: Duration::from_secs(3),
                mode: RetryMode::Soft { tries: 2 },
            };
            c.cred = rnfs_proto::rpc::OpaqueAuth::none();
            RpcClient::new(SocketAddr::new(base.ip(), opts.portmap_port), c)
        });
        let nfsport = match (url.nfsport, &pmap) {
            (Some(p), _) => p,
            (None, Some(pm)) => nfs::getport(pm, p3::PROGRAM, p3::VERSION)
                .await?
                .ok_or_else(|| Error::Url("NFS v3 is not registered with the portmapper".into()))?,
            (None, None) => 2049,
        };
        let mountport = match (url.mountport, &pmap) {
            (Some(p), _) => p,
            (None, Some(pm)) => match nfs::getport(pm, mount3::PROGRAM, mount3::VERSION).await {
                Ok(Some(p)) => p,
                _ => nfsport,
            },
            (None, None) => nfsport,
        };
        let nfs_rpc = RpcClient::new(SocketAddr::new(base.ip(), nfsport), rcfg.clone());
        let mnt_rpc = if mountport == nfsport {
            nfs_rpc.clone()
        } else {
            RpcClient::new(SocketAddr::new(base.ip(), mountport), rcfg)
        };
        // The shortest prefix of the path that MOUNT accepts is the export; the rest is
        // looked up inside it (so that every named path has a parent to work in).
        let comps = url.components();
        let mut root = None;
        for n in 0..=comps.len() {
            let export = format!("/{}", comps[..n].join("/"));
            match nfs::mnt(&mnt_rpc, &export).await {
                Ok(fh) => {
                    root = Some((fh, format!("/{}", comps[n..].join("/")), export));
                    break;
                }
                Err(Error::Mount(s)) if n < comps.len() && s != MountStat3::ServerFault => continue,
                Err(e) => return Err(e),
            }
        }
        let Some((root_fh, path, export)) = root else {
            return Err(Error::Mount(MountStat3::NoEnt));
        };
        Ok((Wire::V3(Nfs3::new(nfs_rpc)), root_fh, path, export))
    }

    /// NFSv4.1: a session on the NFS port (2049 unless given; no portmapper, no MOUNT),
    /// and the URL's path looked up from the server's root.
    async fn mount_v41(
        url: &NfsUrl,
        opts: &MountOptions,
    ) -> Result<(Wire, FileHandle, String, String), Error> {
        let base = resolve(&url.host, 0).await?;
        let addr = SocketAddr::new(base.ip(), url.nfsport.unwrap_or(2049));
        // Unique to this mount (two mounts in one process are two clients to the server).
        let owner = format!(
            "rnfs/{}/{}/{:016x}",
            std::env::var("HOSTNAME").unwrap_or_default(),
            std::process::id(),
            random_u64()
        )
        .into_bytes();
        let cfg = SessionConfig {
            owner: owner.clone(),
            rpc: opts.rpc_config(),
            max_delegations: 1024,
        };
        let session = if url.version.is_none() {
            // Probing: a server without NFSv4 refuses the program or version at once, but
            // one that does not answer must not hold the mount (on a hard mount, for
            // ever) before NFSv3 is tried. The session keeps the mount's own retry mode.
            tokio::time::timeout(V4_PROBE, Session::establish(addr, cfg))
                .await
                .map_err(|_| Error::Rpc(crate::error::RpcError::TimedOut { tries: 1 }))??
        } else {
            Session::establish(addr, cfg).await?
        };
        let nfs = Nfs4::new(session, owner, !opts.soft);
        let comps = url.components();
        let (root_fh, _, path, export) = nfs.root(&comps).await?;
        Ok((Wire::V4(nfs), root_fh, path, export))
    }

    /// Starts WRITEs for dirty data older than `dirty_expire` in every file.
    fn write_back_expired(&self) {
        let now = Instant::now();
        for ino in self.s.inodes.live() {
            if ino.wb.lock().is_clean() {
                continue;
            }
            let acts = ino.with_wb(|wb| wb.poll(now));
            self.run(&ino, acts);
        }
    }

    /// The path inside the export that the mount URL named (`/` for the export itself).
    pub fn url_path(&self) -> &str {
        &self.s.path
    }

    /// The export path given to MOUNT (the URL's path minus [`Client::url_path`]).
    pub fn export_path(&self) -> &str {
        &self.s.export
    }

    /// The NFSv3 edge this client sends its calls through (`None` over NFSv4.1), for
    /// tools that measure raw calls (`bench/loadgen`); a file system layer uses the
    /// inode-level API instead, which does not depend on the protocol version.
    pub fn nfs(&self) -> Option<&Nfs3> {
        match &self.s.nfs {
            Wire::V3(n) => Some(n),
            Wire::V4(_) => None,
        }
    }

    /// The NFSv4.1 edge (`None` over NFSv3): its session and open state, for tests and
    /// metrics.
    pub fn nfs4(&self) -> Option<&Nfs4> {
        match &self.s.nfs {
            Wire::V4(n) => Some(n),
            Wire::V3(_) => None,
        }
    }

    /// Whether a file removed while this client has it open stays usable through its
    /// open handles until they are closed, kept by the server (NFSv4.1 with
    /// `OPEN4_RESULT_PRESERVE_UNLINKED`, once an OPEN said so). When not, a file system
    /// layer renames such a file out of the way instead (a "silly rename").
    pub fn server_keeps_unlinked_open_files(&self) -> bool {
        self.nfs4().is_some_and(Nfs4::preserves_unlinked)
    }

    /// The protocol version in use: `"3"` or `"4.1"`.
    pub fn version(&self) -> &'static str {
        self.s.nfs.version()
    }

    /// The root of the export.
    pub fn root(&self) -> Arc<Inode> {
        self.s.root.clone()
    }

    /// `data` copied into a buffer of the client's write pool (buffers reused while writes
    /// go on), for [`crate::File::write_shared`]: a caller that must copy the bytes anyway
    /// (out of a buffer it does not keep) copies them once, there.
    pub fn write_buffer(&self, data: &[u8]) -> Slice {
        Buf::copy_of(&self.s.wbufs, data).into_slice(0, data.len())
    }

    /// The READ size in use: the mount's `rsize` within the server's maximum. A stream
    /// reading this much at a time gets each READ's pages as soon as they are in.
    pub fn rsize(&self) -> u32 {
        self.s.rsize
    }

    /// Counters of the RPC layer.
    pub fn rpc_stats(&self) -> RpcStats {
        self.s.nfs.rpc().stats()
    }

    /// Counters of READ/WRITE/COMMIT calls.
    pub fn io_stats(&self) -> IoStats {
        self.s.nfs.io_stats()
    }

    /// Counters of the caches.
    pub fn cache_stats(&self) -> CacheStats {
        self.s.counters.snapshot()
    }

    /// Drops what the client caches for files nobody uses (inodes, their pages and
    /// attributes, directory chunks), like `echo 3 > /proc/sys/vm/drop_caches`.
    pub fn drop_caches(&self) {
        self.s.dirs.clear();
        self.s.inodes.drop_recent();
    }

    /// Inodes in the handle table.
    pub fn inode_count(&self) -> usize {
        self.s.inodes.len()
    }

    /// The inode of a handle: one object per handle.
    pub(crate) fn inode(&self, fh: &FileHandle, attr: Option<Attr>) -> Arc<Inode> {
        self.s.inodes.get(fh, attr, Instant::now())
    }

    /// Looks up one name in a directory: a single component (not empty, no `/` or NUL;
    /// `.` and `..` are asked of the server).
    pub async fn lookup_in(&self, dir: &Inode, name: &str) -> Result<Arc<Inode>, Error> {
        if name.is_empty() || name.contains(['/', '\0']) {
            return Err(Error::Invalid("not a single file name"));
        }
        let (fh, attr) = self.s.nfs.lookup(dir.fh(), name).await?;
        Ok(self.inode(&fh, attr))
    }

    /// Resolves a `/`-separated path inside the export like `lstat(2)`: symbolic links
    /// in the directories on the way are followed, a final one is not.
    pub async fn resolve(&self, path: &str) -> Result<Arc<Inode>, Error> {
        self.walk(path, false)
            .await?
            .ino
            .ok_or(Error::Nfs(Status::NoEnt))
    }

    /// Resolves a path like `stat(2)`: a final symbolic link is followed too.
    pub async fn resolve_follow(&self, path: &str) -> Result<Arc<Inode>, Error> {
        self.walk(path, true)
            .await?
            .ino
            .ok_or(Error::Nfs(Status::NoEnt))
    }

    /// Splits a path into its parent directory's inode (symbolic links on the way
    /// followed) and the last name, which is not looked up.
    pub async fn parent_of(&self, path: &str) -> Result<(Arc<Inode>, String), Error> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((last, dirs)) = comps.split_last() else {
            return Err(Error::Invalid("the export root has no parent"));
        };
        let dir = self.resolve_follow(&dirs.join("/")).await?;
        Ok((dir, (*last).to_string()))
    }

    /// Walks a path from the export root, following symbolic links (relative ones from
    /// the directory holding them, absolute ones from the export root when they point
    /// under the export's path) in every component but the last, and in the last too
    /// when `follow_last`. `..` is asked of the server, which keeps it inside the export.
    pub(crate) async fn walk(&self, path: &str, follow_last: bool) -> Result<Walked, Error> {
        // Components still to walk, the next one last.
        let mut todo: Vec<String> = path
            .split('/')
            .rev()
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        let mut cur = self.root();
        let mut dir = self.root();
        let mut name = None;
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c.contains('\0') {
                // From a link target the server gave: no name holds NUL.
                return Err(Error::Invalid("a path component contains NUL"));
            }
            let ino = match self.s.nfs.lookup(cur.fh(), &c).await {
                Ok((fh, attr)) => self.inode(&fh, attr),
                Err(Error::Nfs(Status::NoEnt)) if todo.is_empty() => {
                    return Ok(Walked {
                        dir: cur,
                        name: Some(c),
                        ino: None,
                    });
                }
                Err(e) => return Err(e),
            };
            let is_link = match ino.last_attr() {
                Some(a) => a.ftype == FileType::Lnk,
                None => self.getattr(&ino).await?.ftype == FileType::Lnk,
            };
            if is_link && (follow_last || !todo.is_empty()) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::TooManyLinks);
                }
                let target = self.s.nfs.readlink(ino.fh()).await?;
                let target = String::from_utf8(target)
                    .map_err(|_| Error::Invalid("symbolic link target is not UTF-8"))?;
                let rel = if target.starts_with('/') {
                    cur = self.root();
                    self.inside_export(&target)
                        .ok_or_else(|| Error::LinkOutsideExport(target.clone()))?
                } else {
                    target.as_str()
                };
                todo.extend(
                    rel.split('/')
                        .rev()
                        .filter(|c| !c.is_empty() && *c != ".")
                        .map(str::to_string),
                );
                continue;
            }
            dir = std::mem::replace(&mut cur, ino);
            name = (c != "..").then_some(c);
        }
        Ok(Walked {
            dir,
            name,
            ino: Some(cur),
        })
    }

    /// An absolute symbolic link target as a path inside the export, if it is under the
    /// export's path.
    fn inside_export<'a>(&self, target: &'a str) -> Option<&'a str> {
        inside_export(&self.s.export, target)
    }

    /// Opens the file at `path` for the open-file layer: follows symbolic links (a final
    /// one too, unless `exclusive`), creates the file when asked (EXCLUSIVE CREATE with a
    /// verifier for `exclusive`, so a retransmitted CREATE cannot fail with EEXIST; then
    /// SETATTR of the mode and times), and checks with ACCESS that an existing file grants
    /// `access_mask`. Returns the inode with fresh attributes (close-to-open), whether
    /// the file was created, and whether the creation holds the server open for `share`
    /// already (NFSv4: see [`Wire::create_open`]).
    pub(crate) async fn open_path(
        &self,
        path: &str,
        create: bool,
        exclusive: bool,
        mode: u32,
        access_mask: u32,
        share: u32,
    ) -> Result<(Arc<Inode>, Attr, bool, bool), Error> {
        let w = self.walk(path, !exclusive).await?;
        match (w.ino, w.name) {
            (Some(_), _) if exclusive => Err(Error::Nfs(Status::Exist)),
            (Some(ino), _) => {
                let a = self.check_access(&ino, access_mask).await?;
                Ok((ino, a, false, false))
            }
            (None, Some(name)) if create || exclusive => {
                let (ino, opened) = if exclusive {
                    self.create_exclusive(&w.dir, &name, mode, share).await?
                } else {
                    let how = CreateHow::Unchecked(SetAttr::mode(mode));
                    let (fh, attr, opened) = self
                        .s
                        .nfs
                        .create_open(w.dir.fh(), &name, how, share)
                        .await?;
                    (self.inode(&fh, attr), opened)
                };
                self.s.dirs.forget(w.dir.fh());
                match self.revalidate(&ino).await {
                    Ok(a) => Ok((ino, a, true, opened)),
                    Err(e) => {
                        if opened {
                            self.s.nfs.close_state(ino.fh(), share).await;
                        }
                        Err(e)
                    }
                }
            }
            _ => Err(Error::Nfs(Status::NoEnt)),
        }
    }

    /// CREATE EXCLUSIVE (RFC 1813 3.3.8) with a fresh verifier, then SETATTR of the mode
    /// and of the times the server used to keep the verifier. A server that does not
    /// support EXCLUSIVE gets GUARDED. Whether the server open for `share` is held, as
    /// [`Wire::create_open`].
    async fn create_exclusive(
        &self,
        dir: &Inode,
        name: &str,
        mode: u32,
        share: u32,
    ) -> Result<(Arc<Inode>, bool), Error> {
        let n = self.s.create_verf.1.fetch_add(1, Ordering::Relaxed);
        let verf = (self.s.create_verf.0 ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes();
        let sattr = SetAttr::mode(mode);
        let nfs = &self.s.nfs;
        match nfs
            .create_open(dir.fh(), name, CreateHow::Exclusive(verf), share)
            .await
        {
            Ok((fh, attr, opened)) => {
                let ino = self.inode(&fh, attr);
                let set = SetAttr {
                    atime: SetTime::ServerTime,
                    mtime: SetTime::ServerTime,
                    ..sattr
                };
                match nfs.setattr(&fh, set).await {
                    Ok(Some(a)) => {
                        ino.set_attr(Instant::now(), a);
                    }
                    Ok(None) => ino.expire_attr(),
                    Err(e) => {
                        if opened {
                            nfs.close_state(&fh, share).await;
                        }
                        return Err(e);
                    }
                }
                Ok((ino, opened))
            }
            Err(Error::Nfs(Status::NotSupp)) => {
                let (fh, attr, opened) = nfs
                    .create_open(dir.fh(), name, CreateHow::Guarded(sattr), share)
                    .await?;
                Ok((self.inode(&fh, attr), opened))
            }
            Err(e) => Err(e),
        }
    }

    /// ACCESS for the bits of `mask` (all of them must be granted, else EACCES); its
    /// attributes serve as the fresh attributes of close-to-open (GETATTR if the server
    /// sent none). A zero mask is a plain revalidation.
    pub(crate) async fn check_access(&self, ino: &Inode, mask: u32) -> Result<Attr, Error> {
        if mask == 0 {
            return self.revalidate(ino).await;
        }
        let (granted, attr) = self.s.nfs.access(ino.fh(), mask).await?;
        let a = match attr {
            Some(a) => {
                ino.refresh(Instant::now(), a.clone());
                a
            }
            None => self.revalidate(ino).await?,
        };
        if granted != mask {
            return Err(Error::Nfs(Status::Acces));
        }
        Ok(a)
    }

    /// The bits of `mask` ([`crate::types::access`]) the server grants this client's
    /// credentials on `path` (a final symbolic link followed).
    pub async fn access(&self, path: &str, mask: u32) -> Result<u32, Error> {
        let ino = self.resolve_follow(path).await?;
        self.access_of(&ino, mask).await
    }

    /// Attributes of an inode: cached if fresh, else GETATTR; the size includes data not
    /// yet written back.
    pub async fn getattr(&self, ino: &Inode) -> Result<Attr, Error> {
        let now = Instant::now();
        let o = &self.s.opts;
        let (min, max) = match ino.last_attr().map(|a| a.ftype) {
            Some(FileType::Dir) => (o.acdirmin, o.acdirmax),
            _ => (o.acregmin, o.acregmax),
        };
        let mut a = match ino.cached_attr(now, min, max) {
            Some(a) => a,
            None => self.revalidate(ino).await?,
        };
        a.size = a.size.max(ino.wb.lock().local_end());
        Ok(a)
    }

    /// GETATTR now; drops cached pages if the file changed and holds no local data.
    pub(crate) async fn revalidate(&self, ino: &Inode) -> Result<Attr, Error> {
        let a = self.s.nfs.getattr(ino.fh()).await?;
        ino.refresh(Instant::now(), a.clone());
        Ok(a)
    }

    /// Attributes of a path (`lstat`: a final symbolic link is not followed).
    pub async fn metadata(&self, path: &str) -> Result<Attr, Error> {
        let ino = self.resolve(path).await?;
        self.getattr(&ino).await
    }

    /// Attributes of a path (`stat`: a final symbolic link is followed).
    pub async fn stat(&self, path: &str) -> Result<Attr, Error> {
        let ino = self.resolve_follow(path).await?;
        self.getattr(&ino).await
    }

    /// Creates a directory.
    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<Arc<Inode>, Error> {
        let (dir, name) = self.parent_of(path).await?;
        self.mkdir_in(&dir, &name, mode).await
    }

    /// Creates a directory and its missing parents; an existing directory is fine.
    pub async fn mkdir_all(&self, path: &str, mode: u32) -> Result<Arc<Inode>, Error> {
        let mut cur = self.root();
        let mut done = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            done.push('/');
            done.push_str(c);
            cur = match self.lookup_in(&cur, c).await {
                Ok(mut i) => {
                    if self.getattr(&i).await?.ftype == FileType::Lnk {
                        i = self.resolve_follow(&done).await?;
                    }
                    if self.getattr(&i).await?.ftype != FileType::Dir {
                        return Err(Error::Nfs(Status::NotDir));
                    }
                    i
                }
                Err(Error::Nfs(Status::NoEnt)) => match self.mkdir_in(&cur, c, mode).await {
                    Ok(i) => i,
                    // Someone else created it meanwhile.
                    Err(Error::Nfs(Status::Exist)) => self.lookup_in(&cur, c).await?,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// Removes a non-directory.
    pub async fn remove(&self, path: &str) -> Result<(), Error> {
        let (dir, name) = self.parent_of(path).await?;
        self.remove_in(&dir, &name).await
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, path: &str) -> Result<(), Error> {
        let (dir, name) = self.parent_of(path).await?;
        self.rmdir_in(&dir, &name).await
    }

    /// Renames `from` to `to` (replacing `to` if the server allows).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        let (fd, fname) = self.parent_of(from).await?;
        let (td, tname) = self.parent_of(to).await?;
        self.rename_in(&fd, &fname, &td, &tname).await
    }

    /// Creates a symbolic link at `path` pointing to `target`.
    pub async fn symlink(&self, target: &str, path: &str) -> Result<(), Error> {
        let (dir, name) = self.parent_of(path).await?;
        self.symlink_in(&dir, &name, target).await.map(drop)
    }

    /// The target of a symbolic link.
    pub async fn readlink(&self, path: &str) -> Result<String, Error> {
        let ino = self.resolve(path).await?;
        let t = self.readlink_of(&ino).await?;
        Ok(String::from_utf8_lossy(&t).into_owned())
    }

    /// Sets attributes of what a path names itself (a final symbolic link is not followed,
    /// like `lchown(2)` and `utimensat(.., AT_SYMLINK_NOFOLLOW)`; resolve it with
    /// [`Client::resolve_follow`] first for `chmod(2)` semantics).
    pub async fn setattr(&self, path: &str, s: SetAttr) -> Result<(), Error> {
        let ino = self.resolve(path).await?;
        self.setattr_of(&ino, s).await
    }

    // The inode-level API: what a file system layer (the FUSE mount) does with objects it
    // already holds, one call each, the protocol chosen below. Each method that changes a
    // directory forgets the client's cached listing of it.

    /// Sets attributes of an inode (SETATTR); the attributes the server answers with are
    /// cached, else the cached ones expire.
    pub async fn setattr_of(&self, ino: &Inode, s: SetAttr) -> Result<(), Error> {
        match self.s.nfs.setattr(ino.fh(), s).await? {
            Some(a) => {
                ino.set_attr(Instant::now(), a);
            }
            None => ino.expire_attr(),
        }
        Ok(())
    }

    /// The target of a symbolic link, as bytes (READLINK).
    pub async fn readlink_of(&self, ino: &Inode) -> Result<Vec<u8>, Error> {
        self.s.nfs.readlink(ino.fh()).await
    }

    /// The bits of `mask` ([`crate::types::access`]) the server grants this client's
    /// credentials on an inode (ACCESS); its attributes, if sent, are cached.
    pub async fn access_of(&self, ino: &Inode, mask: u32) -> Result<u32, Error> {
        let (granted, attr) = self.s.nfs.access(ino.fh(), mask).await?;
        if let Some(a) = attr {
            ino.set_attr(Instant::now(), a);
        }
        Ok(granted)
    }

    /// Creates a regular file `name` in `dir` (CREATE) as `how` says, without opening it
    /// (see [`Client::open`] for that).
    pub async fn create_in(
        &self,
        dir: &Inode,
        name: &str,
        how: CreateHow,
    ) -> Result<Arc<Inode>, Error> {
        let (fh, attr) = self.s.nfs.create(dir.fh(), name, how).await?;
        self.s.dirs.forget(dir.fh());
        Ok(self.inode(&fh, attr))
    }

    /// Creates a directory `name` in `dir` with permission bits `mode` (MKDIR).
    pub async fn mkdir_in(&self, dir: &Inode, name: &str, mode: u32) -> Result<Arc<Inode>, Error> {
        let r = self.s.nfs.mkdir(dir.fh(), name, mode).await;
        self.s.dirs.forget(dir.fh());
        let (fh, attr) = r?;
        Ok(self.inode(&fh, attr))
    }

    /// Creates a FIFO, socket or device file `name` in `dir` with permission bits `mode`
    /// (MKNOD).
    pub async fn mknod_in(
        &self,
        dir: &Inode,
        name: &str,
        what: SpecialFile,
        mode: u32,
    ) -> Result<Arc<Inode>, Error> {
        let r = self
            .s
            .nfs
            .mknod(dir.fh(), name, what, SetAttr::mode(mode))
            .await;
        self.s.dirs.forget(dir.fh());
        let (fh, attr) = r?;
        Ok(self.inode(&fh, attr))
    }

    /// Creates a symbolic link `name` in `dir` pointing to `target` (SYMLINK).
    pub async fn symlink_in(
        &self,
        dir: &Inode,
        name: &str,
        target: &str,
    ) -> Result<Arc<Inode>, Error> {
        let r = self.s.nfs.symlink(dir.fh(), name, target).await;
        self.s.dirs.forget(dir.fh());
        let (fh, attr) = r?;
        Ok(self.inode(&fh, attr))
    }

    /// Makes `name` in `dir` another name of `file` (LINK); the file's cached attributes
    /// expire (its link count changed).
    pub async fn link_in(&self, file: &Inode, dir: &Inode, name: &str) -> Result<(), Error> {
        let r = self.s.nfs.link(file.fh(), dir.fh(), name).await;
        self.s.dirs.forget(dir.fh());
        file.expire_attr();
        r
    }

    /// Removes the non-directory `name` from `dir` (REMOVE).
    pub async fn remove_in(&self, dir: &Inode, name: &str) -> Result<(), Error> {
        let r = self.s.nfs.remove(dir.fh(), name).await;
        self.s.dirs.forget(dir.fh());
        r
    }

    /// Removes the empty directory `name` from `dir` (RMDIR).
    pub async fn rmdir_in(&self, dir: &Inode, name: &str) -> Result<(), Error> {
        let r = self.s.nfs.rmdir(dir.fh(), name).await;
        self.s.dirs.forget(dir.fh());
        r
    }

    /// Renames `name` in `from` to `to_name` in `to` (RENAME), replacing what `to_name`
    /// named if the server allows.
    pub async fn rename_in(
        &self,
        from: &Inode,
        name: &str,
        to: &Inode,
        to_name: &str,
    ) -> Result<(), Error> {
        let r = self.s.nfs.rename(from.fh(), name, to.fh(), to_name).await;
        self.s.dirs.forget(from.fh());
        self.s.dirs.forget(to.fh());
        r
    }

    /// Space figures of the export, refused with [`crate::ServerError::Fsstat`] when they
    /// cannot all be true (free within total, available within free, for bytes and for
    /// file slots).
    pub async fn fsstat(&self) -> Result<FsStat, Error> {
        let s = self.s.nfs.fsstat(self.s.root.fh()).await?;
        check_fsstat(&s)?;
        Ok(s)
    }

    /// Starts the actions a write-back engine asked for; their completions feed the engine
    /// and start whatever it asks next.
    pub(crate) fn run(&self, ino: &Arc<Inode>, acts: Vec<WbAction>) {
        for a in acts {
            let (c, ino) = (self.clone(), ino.clone());
            tokio::spawn(async move {
                let next = match a {
                    WbAction::Write {
                        op,
                        offset,
                        data,
                        stable,
                    } => {
                        let len = data.len() as u64;
                        let r = c.s.nfs.write(ino.fh(), offset, data, stable).await;
                        let r = r.map(|w| {
                            if let Some(after) = w.attr {
                                ino.set_attr(Instant::now(), after);
                            }
                            WriteReply {
                                count: w.count,
                                committed: w.committed,
                                verf: w.verf,
                            }
                        });
                        ino.data_gen.fetch_add(1, Ordering::AcqRel);
                        // A page read while this data was only ours (e.g. short, from before
                        // the server had it) is stale now: once the engine lets the data go,
                        // nothing would cover it any more.
                        ino.invalidate_range(offset, len);
                        ino.with_wb(|wb| wb.on_write_done(Instant::now(), op, r))
                    }
                    WbAction::Commit { op } => {
                        let r = c.s.nfs.commit(ino.fh()).await;
                        ino.with_wb(|wb| wb.on_commit_done(Instant::now(), op, r))
                    }
                };
                c.run(&ino, next);
                // Let go of the inode before waking its waiters: an fsync or close that
                // returns then finds no hold of ours left on it (its table entry can go).
                let changed = ino.changed.clone();
                drop(ino);
                changed.notify_waiters();
            });
        }
    }

    /// Waits until `done` holds for the inode's engine, polling it (with `flush` asked
    /// first when set) each time it changes.
    pub(crate) async fn wait_wb(
        &self,
        ino: &Arc<Inode>,
        flush: bool,
        done: impl Fn(&crate::writeback::WriteBack) -> bool,
    ) {
        loop {
            let notified = ino.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (acts, ok) = ino.with_wb(|wb| {
                if flush {
                    wb.flush();
                }
                let acts = wb.poll(Instant::now());
                (acts, done(wb))
            });
            self.run(ino, acts);
            if ok {
                return;
            }
            notified.await;
        }
    }
}

/// 64 bits that differ between clients and runs, without a dependency: std's randomly
/// keyed hasher over the time and process id.
/// Whether FSSTAT figures can all be true (RFC 1813 3.3.18): free bytes within the total,
/// bytes available to the caller within the free ones, and the same for file slots. A
/// server breaking these would have `df` show nonsense (issue 13: free above total showed
/// as 1% used).
pub(crate) fn check_fsstat(s: &FsStat) -> Result<(), crate::error::ServerError> {
    let bad = |what: String| Err(crate::error::ServerError::Fsstat(what));
    if s.fbytes > s.tbytes {
        return bad(format!("{} bytes free of {} in total", s.fbytes, s.tbytes));
    }
    if s.abytes > s.fbytes {
        return bad(format!("{} bytes available of {} free", s.abytes, s.fbytes));
    }
    if s.ffiles > s.tfiles {
        return bad(format!(
            "{} file slots free of {} in total",
            s.ffiles, s.tfiles
        ));
    }
    if s.afiles > s.ffiles {
        return bad(format!(
            "{} file slots available of {} free",
            s.afiles, s.ffiles
        ));
    }
    Ok(())
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// `target` (absolute) as a path relative to the export at `export`, if it is under it.
fn inside_export<'a>(export: &str, target: &'a str) -> Option<&'a str> {
    let rest = target.strip_prefix(export.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::{check_fsstat, FsStat};

    #[test]
    fn transfer_sizes_follow_the_servers_maximum_in_whole_pages() {
        use super::transfer_size as t;
        assert_eq!(t(1 << 20, 1 << 20), 1 << 20);
        assert_eq!(t(1 << 20, 4 << 20), 1 << 20, "the mount's own limit");
        assert_eq!(t(1 << 20, 0), 1 << 20, "no maximum given");
        assert_eq!(t(1 << 20, 124 * 1024), 64 * 1024, "whole pages");
        assert_eq!(t(1 << 20, 200_000), 192 * 1024);
        assert_eq!(t(1 << 20, 32 * 1024), 32 * 1024, "below a page: as is");
        assert_eq!(t(1 << 20, 1000), 4096, "never below 4 KiB");
    }

    #[test]
    fn impossible_fsstat_figures_are_refused() {
        let ok = FsStat {
            tbytes: 100,
            fbytes: 60,
            abytes: 50,
            tfiles: 10,
            ffiles: 5,
            afiles: 5,
        };
        assert_eq!(check_fsstat(&ok), Ok(()));
        for bad in [
            FsStat { fbytes: 101, ..ok },
            FsStat { abytes: 61, ..ok },
            FsStat { ffiles: 11, ..ok },
            FsStat { afiles: 6, ..ok },
        ] {
            assert!(check_fsstat(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absolute_link_targets_resolve_only_under_the_export() {
        use super::inside_export as i;
        assert_eq!(i("/", "/a/b"), Some("/a/b"));
        assert_eq!(i("/srv/x", "/srv/x/a"), Some("/a"));
        assert_eq!(i("/srv/x/", "/srv/x"), Some(""));
        assert_eq!(
            i("/srv/x", "/srv/xy/a"),
            None,
            "a sibling with the same prefix"
        );
        assert_eq!(i("/srv/x", "/etc/passwd"), None);
    }
}
