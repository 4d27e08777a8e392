//! Test fixtures: an in-process rnfs server on 127.0.0.1 and a fault-injecting TCP proxy.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]
use parking_lot::Mutex;
use rnfs_rpc::record::{encode_record, RecordDecoder};
use rnfs_rpc::transport::{serve, Config, ConnInfo, ConnStats, Service};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::Backend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A service whose server instance can be replaced (a "restart" with a new write verifier
/// over the same backend, without changing the port).
pub struct Swappable {
    pub cur: Mutex<Arc<NfsServer>>,
    pub fs: Arc<dyn Backend>,
    /// Answer READDIRPLUS with NFS3ERR_NOTSUPP, as a server without it does.
    pub no_readdirplus: std::sync::atomic::AtomicBool,
    /// READDIRPLUS calls seen.
    pub readdirplus_calls: AtomicU64,
}

/// The NFS procedure of a call, if it is an NFSv3 call.
fn nfs_proc(call: &[u8]) -> Option<(u32, u32)> {
    use rnfs_proto::rpc::CallHeader;
    let h = CallHeader::decode(&mut rnfs_xdr::Reader::new(call)).ok()?;
    (h.prog == rnfs_proto::nfs3::PROGRAM).then_some((h.xid, h.proc_))
}

impl Service for Swappable {
    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        if let Some((xid, p)) = nfs_proc(msg) {
            if p == rnfs_proto::nfs3::Proc::Readdirplus as u32 {
                self.readdirplus_calls.fetch_add(1, Ordering::Relaxed);
                if self.no_readdirplus.load(Ordering::Relaxed) {
                    let mut w = rnfs_rpc::message::reply_success(xid, 16);
                    rnfs_xdr::Xdr::encode(
                        &rnfs_proto::nfs3::ReaddirplusRes::Fail(
                            rnfs_proto::nfs3::Nfsstat3::NotSupp,
                            None,
                        ),
                        &mut w,
                    );
                    return Some(w.into_inner());
                }
            }
        }
        let s = self.cur.lock().clone();
        let reply = s.call(conn, msg)?;
        Some(honest_unstable(msg, reply))
    }
}

/// The memory backend answers every WRITE with FILE_SYNC (memory is as stable as it gets).
/// A disk server answers UNSTABLE to UNSTABLE WRITEs and needs a COMMIT; rewrite the reply
/// that way, so that tests exercise COMMIT and write verifiers.
fn honest_unstable(call: &[u8], reply: Vec<u8>) -> Vec<u8> {
    use rnfs_proto::nfs3::{Proc, Res, StableHow, WriteArgs, WriteRes};
    use rnfs_proto::rpc::{CallHeader, ReplyHeader};
    use rnfs_xdr::{Reader, Writer, Xdr};
    let mut r = Reader::new(call);
    let Ok(h) = CallHeader::decode(&mut r) else {
        return reply;
    };
    if h.prog == rnfs_proto::nfs4::PROGRAM && h.proc_ == 1 {
        return honest_unstable4(r, reply);
    }
    if h.prog != rnfs_proto::nfs3::PROGRAM || h.proc_ != Proc::Write as u32 {
        return reply;
    }
    let Ok(a) = WriteArgs::decode(&mut r) else {
        return reply;
    };
    if a.stable != StableHow::Unstable {
        return reply;
    }
    let mut rr = Reader::new(&reply);
    let (Ok(rh), Ok(Res::Ok(mut ok))) = (ReplyHeader::decode(&mut rr), WriteRes::decode(&mut rr))
    else {
        return reply;
    };
    ok.committed = StableHow::Unstable;
    let mut w = Writer::new();
    rh.encode(&mut w);
    Res::<_, rnfs_proto::nfs3::WccData>::Ok(ok).encode(&mut w);
    w.into_inner()
}

/// [`honest_unstable`] for an NFSv4 COMPOUND (`r` at its arguments): WRITE results of
/// UNSTABLE WRITEs say UNSTABLE.
fn honest_unstable4(mut r: rnfs_xdr::Reader<'_>, reply: Vec<u8>) -> Vec<u8> {
    use rnfs_proto::nfs4::*;
    use rnfs_proto::rpc::ReplyHeader;
    use rnfs_xdr::{Reader, Writer, Xdr};
    let Ok(a) = Compound4args::decode(&mut r) else {
        return reply;
    };
    let unstable = a
        .argarray
        .0
        .iter()
        .any(|op| matches!(op, NfsArgop4::OpWrite(w) if w.stable == StableHow4::Unstable4));
    if !unstable {
        return reply;
    }
    let mut rr = Reader::new(&reply);
    let (Ok(rh), Ok(mut res)) = (ReplyHeader::decode(&mut rr), Compound4res::decode(&mut rr))
    else {
        return reply;
    };
    for op in &mut res.resarray.0 {
        if let NfsResop4::OpWrite(Write4res::Nfs4Ok(ok)) = op {
            ok.committed = StableHow4::Unstable4;
        }
    }
    let mut w = Writer::new();
    rh.encode(&mut w);
    res.encode(&mut w);
    w.into_inner()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub svc: Arc<Swappable>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// The server over `fs`, with NFSv4 on when the tests speak NFSv4.1
    /// ([`version`]).
    pub fn start(fs: Arc<dyn Backend>) -> Self {
        let mut cfg = ServerConfig::default();
        if version() == "4.1" {
            cfg.v4 = Some(rnfs_server::v4::service::V4Options::default());
        }
        Self::start_with(fs, cfg)
    }

    /// [`TestServer::start`] with a configuration of the caller's (e.g. NFSv4 on).
    pub fn start_with(fs: Arc<dyn Backend>, cfg: ServerConfig) -> Self {
        let server = Arc::new(NfsServer::new(Export::new(1, "/", fs.clone()), cfg));
        // The server's own connection table, so that it finds its NFSv4.1 back channels.
        let conn_stats = server.conn_stats.clone();
        let svc = Arc::new(Swappable {
            cur: Mutex::new(server),
            fs,
            no_readdirplus: Default::default(),
            readdirplus_calls: AtomicU64::new(0),
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (atx, arx) = std::sync::mpsc::channel();
        let s2 = svc.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                serve(l, s2, Config::default(), conn_stats, rx)
                    .await
                    .unwrap();
            });
        });
        let addr = arx.recv().unwrap();
        Self {
            addr,
            svc,
            shutdown: tx,
            thread: Some(thread),
        }
    }

    pub fn memory(cap: u64) -> Self {
        Self::start(Arc::new(rnfs_vfs::memory::MemFs::new(cap)))
    }

    /// Replaces the server instance: same files and handles, new write verifier, empty
    /// duplicate request cache (what a reboot looks like to a client).
    pub fn restart(&self) {
        std::thread::sleep(Duration::from_millis(2)); // the verifier is time-based
                                                      // The same handle secret, as `rnfs serve` reads it from its state directory.
        let old = self.server();
        let mut s = NfsServer::new(
            Export::new(1, "/", self.svc.fs.clone()),
            old.config().clone(),
        );
        // The connections outlive the instance here (the listener is the harness's): the
        // new one must know them to find their back channels.
        s.conn_stats = old.conn_stats.clone();
        let s = Arc::new(s);
        *self.svc.cur.lock() = s;
    }

    pub fn server(&self) -> Arc<NfsServer> {
        self.svc.cur.lock().clone()
    }

    /// The URL of `path`, in the version the tests speak ([`version`]).
    pub fn url(&self, path: &str) -> String {
        format!(
            "nfs://127.0.0.1:{}{}?version={}&mountport={}&uid=0&gid=0",
            self.addr.port(),
            path,
            version(),
            self.addr.port()
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the proxy does to replies (server to client). Probabilities in 1/1000.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Swallow the reply.
    pub drop: u32,
    /// Send the reply twice.
    pub duplicate: u32,
    /// Send the reply after `delay` (out of order, possibly after a retransmission).
    pub delay: u32,
    pub delay_ms: u64,
    /// Send a well-framed record of garbage before the reply.
    pub garbage: u32,
    /// Send a reply with an xid nobody used before the reply.
    pub unknown: u32,
    /// Close the connection instead of forwarding the reply.
    pub kill: u32,
    /// Send a record mark announcing 2 GiB (breaks framing: the client must reconnect).
    pub break_framing: u32,
}

#[derive(Default, Debug)]
pub struct ProxyStats {
    pub conns: AtomicU64,
    pub replies: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub delayed: AtomicU64,
    pub garbage: AtomicU64,
    pub unknown: AtomicU64,
    pub killed: AtomicU64,
    pub broken: AtomicU64,
    /// Connections from a client port seen before that reached the server from the
    /// proxy's port for it again: a reconnection the server can tell is the same client.
    pub resumed: AtomicU64,
}

/// A TCP proxy on 127.0.0.1 in front of `target` that injects faults into replies.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<Faults>>,
    pub stats: Arc<ProxyStats>,
    /// When non-zero, the write verifier of every NFS WRITE and COMMIT reply is XORed with
    /// it: to the client, the server restarted (W6 against a server we cannot restart).
    pub verifier_epoch: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// xorshift64*, seeded per connection.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn hit(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && (self.next() % 1000) < u64::from(per_mille)
    }
}

impl FaultProxy {
    pub async fn start(target: SocketAddr, faults: Faults, seed: u64) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let faults = Arc::new(Mutex::new(faults));
        let stats = Arc::new(ProxyStats::default());
        let epoch = Arc::new(AtomicU64::new(0));
        let (f2, s2, e2) = (faults.clone(), stats.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            let mut conns = tokio::task::JoinSet::new();
            // A client that reconnects from its old port reaches the server from the
            // proxy's old port for it too, as it would without a proxy (the server's reply
            // cache knows a client by address and port).
            let mut ports = std::collections::HashMap::<u16, u16>::new();
            while let Ok((c, peer)) = l.accept().await {
                n += 1;
                s2.conns.fetch_add(1, Ordering::Relaxed);
                let up = match ports.get(&peer.port()) {
                    Some(&p) => rnfs_client::rpc::reconnect_tcp(target, p, false).await,
                    None => rnfs_client::rpc::connect_tcp(target, false).await,
                };
                let Ok(s) = up else {
                    continue;
                };
                let known = ports.get(&peer.port()).copied();
                if known.is_some() && known == s.local_addr().ok().map(|a| a.port()) {
                    s2.resumed.fetch_add(1, Ordering::Relaxed);
                }
                // The client's side resets too when killed, so that its reconnection from
                // the same port meets no TIME_WAIT of ours.
                #[allow(deprecated)]
                let _ = c.set_linger(Some(Duration::ZERO));
                if let Ok(a) = s.local_addr() {
                    ports.insert(peer.port(), a.port());
                }
                // A killed connection resets rather than closes, as a broken network
                // would: no TIME_WAIT on our side to keep its port from being used again.
                // (Deprecated for blocking on drop; a zero linger resets at once instead.)
                #[allow(deprecated)]
                let _ = s.set_linger(Some(Duration::ZERO));
                conns.spawn(pump(
                    c,
                    s,
                    f2.clone(),
                    s2.clone(),
                    e2.clone(),
                    Rng(seed ^ (n * 0x9e37_79b9) | 1),
                ));
            }
        });
        Self {
            addr,
            faults,
            stats,
            verifier_epoch: epoch,
            task,
        }
    }

    pub fn set(&self, f: Faults) {
        *self.faults.lock() = f;
    }

    /// From now on the server seems to have restarted: WRITE and COMMIT replies carry a
    /// new write verifier (a different one at each call of this).
    pub fn new_verifier(&self) {
        self.verifier_epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Calls seen going up, by xid: (program, procedure).
type CallMap = Arc<Mutex<std::collections::HashMap<u32, (u32, u32)>>>;

/// Rewrites the write verifier of a WRITE or COMMIT reply (XOR with `epoch`).
fn spoil_verifier(rec: &[u8], calls: &CallMap, epoch: u64) -> Option<Vec<u8>> {
    use rnfs_proto::nfs3::{CommitRes, Proc, Res, WriteRes};
    use rnfs_proto::rpc::ReplyHeader;
    use rnfs_xdr::{Reader, Writer, Xdr};
    let xid = u32::from_be_bytes(rec.get(..4)?.try_into().ok()?);
    let (prog, proc_) = calls.lock().remove(&xid)?;
    if epoch == 0 {
        return None;
    }
    let mut r = Reader::new(rec);
    let h = ReplyHeader::decode(&mut r).ok()?;
    let x = epoch.to_be_bytes();
    let flip = |v: &mut [u8; 8]| v.iter_mut().zip(x).for_each(|(b, e)| *b ^= e);
    let mut w = Writer::new();
    h.encode(&mut w);
    if prog == rnfs_proto::nfs4::PROGRAM && proc_ == 1 {
        use rnfs_proto::nfs4::{Commit4res, Compound4res, NfsResop4, Write4res};
        let mut res = Compound4res::decode(&mut r).ok()?;
        let mut hit = false;
        for op in &mut res.resarray.0 {
            match op {
                NfsResop4::OpWrite(Write4res::Nfs4Ok(ok)) => flip(&mut ok.writeverf.0),
                NfsResop4::OpCommit(Commit4res::Nfs4Ok(ok)) => flip(&mut ok.writeverf.0),
                _ => continue,
            }
            hit = true;
        }
        if !hit {
            return None;
        }
        res.encode(&mut w);
        return Some(w.into_inner());
    }
    if prog != rnfs_proto::nfs3::PROGRAM {
        return None;
    }
    if proc_ == Proc::Write as u32 {
        let Res::Ok(mut ok) = WriteRes::decode(&mut r).ok()? else {
            return None;
        };
        flip(&mut ok.verf.0);
        Res::<_, rnfs_proto::nfs3::WccData>::Ok(ok).encode(&mut w);
    } else if proc_ == Proc::Commit as u32 {
        let Res::Ok(mut ok) = CommitRes::decode(&mut r).ok()? else {
            return None;
        };
        flip(&mut ok.verf.0);
        Res::<_, rnfs_proto::nfs3::WccData>::Ok(ok).encode(&mut w);
    } else {
        return None;
    }
    Some(w.into_inner())
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    faults: Arc<Mutex<Faults>>,
    stats: Arc<ProxyStats>,
    epoch: Arc<AtomicU64>,
    mut rng: Rng,
) {
    let (mut cr, cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let calls: CallMap = Arc::default();
    let up_calls = calls.clone();
    // Client to server: bytes as they come (calls are decoded on the side, to know which
    // procedure each reply answers).
    let up = tokio::spawn(async move {
        let mut b = vec![0u8; 64 * 1024];
        let mut dec = RecordDecoder::new(64 << 20);
        loop {
            match cr.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    dec.push(&b[..n]);
                    while let Ok(Some(rec)) = dec.next_record() {
                        let mut r = rnfs_xdr::Reader::new(&rec);
                        if let Ok(h) = rnfs_proto::rpc::CallHeader::decode(&mut r) {
                            up_calls.lock().insert(h.xid, (h.prog, h.proc_));
                        }
                    }
                    if sw.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Server to client: record by record, through one writer task.
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let writer = tokio::spawn(async move {
        let mut cw = cw;
        while let Some(m) = wrx.recv().await {
            match m {
                Some(b) => {
                    if cw.write_all(&b).await.is_err() {
                        break;
                    }
                }
                None => break, // kill
            }
        }
    });
    let mut dec = RecordDecoder::new(64 << 20);
    let mut b = vec![0u8; 64 * 1024];
    'outer: loop {
        let n = match sr.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        dec.push(&b[..n]);
        while let Ok(Some(rec)) = dec.next_record() {
            stats.replies.fetch_add(1, Ordering::Relaxed);
            let rec = spoil_verifier(&rec, &calls, epoch.load(Ordering::SeqCst)).unwrap_or(rec);
            let f = *faults.lock();
            let framed = encode_record(&rec, 1 << 30);
            if rng.hit(f.kill) {
                stats.killed.fetch_add(1, Ordering::Relaxed);
                let _ = wtx.send(None);
                break 'outer;
            }
            if rng.hit(f.break_framing) {
                stats.broken.fetch_add(1, Ordering::Relaxed);
                let _ = wtx.send(Some(0x7fff_fff0u32.to_be_bytes().to_vec()));
                continue;
            }
            if rng.hit(f.garbage) {
                stats.garbage.fetch_add(1, Ordering::Relaxed);
                let len = (rng.next() % 40) as usize;
                let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let _ = wtx.send(Some(encode_record(&junk, 1 << 30)));
            }
            if rng.hit(f.unknown) && rec.len() >= 4 {
                stats.unknown.fetch_add(1, Ordering::Relaxed);
                let mut r2 = rec.clone();
                r2[..4].copy_from_slice(&(rng.next() as u32).to_be_bytes());
                let _ = wtx.send(Some(encode_record(&r2, 1 << 30)));
            }
            if rng.hit(f.drop) {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rng.hit(f.delay) {
                stats.delayed.fetch_add(1, Ordering::Relaxed);
                let w = wtx.clone();
                let ms = f.delay_ms;
                let dup = rng.hit(f.duplicate);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let _ = w.send(Some(framed.clone()));
                    if dup {
                        let _ = w.send(Some(framed));
                    }
                });
                continue;
            }
            let _ = wtx.send(Some(framed.clone()));
            if rng.hit(f.duplicate) {
                stats.duplicated.fetch_add(1, Ordering::Relaxed);
                let _ = wtx.send(Some(framed));
            }
        }
    }
    up.abort();
    drop(wtx);
    let _ = writer.await;
}

/// A portmapper (RFC 1833) on 127.0.0.1 that knows only the given (program, port) pairs.
pub struct FakePortmap {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePortmap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Pmap {
    map: Vec<(u32, u16)>,
    queries: Arc<AtomicU64>,
}

impl Service for Pmap {
    fn call(&self, _: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        use rnfs_proto::portmap::Mapping;
        use rnfs_proto::rpc::{CallHeader, ReplyHeader};
        use rnfs_xdr::{Reader, Writer, Xdr};
        let mut r = Reader::new(msg);
        let h = CallHeader::decode(&mut r).ok()?;
        let m = Mapping::decode(&mut r).ok()?;
        self.queries.fetch_add(1, Ordering::Relaxed);
        let port = self
            .map
            .iter()
            .find(|(p, _)| *p == m.prog && m.prot == rnfs_proto::portmap::IPPROTO_TCP)
            .map_or(0, |(_, port)| u32::from(*port));
        let mut w = Writer::new();
        ReplyHeader::success(h.xid).encode(&mut w);
        w.u32(port);
        Some(w.into_inner())
    }
}

impl FakePortmap {
    pub async fn start(map: Vec<(u32, u16)>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let queries = Arc::new(AtomicU64::new(0));
        let svc = Arc::new(Pmap {
            map,
            queries: queries.clone(),
        });
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep = _tx;
            let _ = serve(
                l,
                svc,
                Config::default(),
                Arc::new(ConnStats::default()),
                rx,
            )
            .await;
        });
        Self {
            addr,
            queries,
            task,
        }
    }
}

/// Where a test's server lives, chosen by the environment:
/// - default: the in-process rnfs server over the memory backend (with the capacity the
///   test asks for);
/// - `RNFS_TEST_BACKEND=tmpfs`: the in-process rnfs server over `LocalFs` on a fresh
///   16 MiB tmpfs that the test mounts (needs root; fails, never passes, without it);
/// - `RNFS_TEST_URL=nfs://host/export?version=3&nfsport=N&mountport=M`: an external server
///   (e.g. nfs-ganesha over a 16 MiB tmpfs). The export is emptied at the first mount of
///   each test, so run these with `--test-threads=1`.
///
/// A test that needs the in-process server's internals calls [`Target::require_internal`]
/// and returns early when it says so; that prints a `SKIPPED` line (and appends it to
/// `$RNFS_TEST_SKIP_LOG`) so the harness counts it as skipped, not passed.
pub struct Target {
    pub srv: Option<TestServer>,
    ext: Option<String>,
    tmpfs: Option<TmpfsMount>,
    wiped: std::sync::atomic::AtomicBool,
}

/// Size of the tmpfs behind the `tmpfs` backend (and what `client-ganesha.sh` gives ganesha).
pub const TMPFS_BYTES: u64 = 16 << 20;

/// A tmpfs of its own for one test, mounted and unmounted without running mount(8).
///
/// Tests of one binary run in parallel threads of one process, and the in-process servers
/// hold descriptors of the files they serve. A child forked by this process (which running
/// mount(8) or umount(8) does) gets a copy of all of them and keeps them until its exec
/// closes them (they are close-on-exec); under load that takes long enough for another
/// test's REMOVE to answer while the child still holds the removed file open, so its space
/// is not freed and that test's next writes got NOSPC (the client-tmpfs flake of session 8:
/// the removed `nospc` was seen open by a child process named after another test's thread).
pub struct TmpfsMount {
    pub dir: std::path::PathBuf,
}

impl TmpfsMount {
    /// Mounts with mount(2) itself, not mount(8): this process must never fork while its
    /// servers hold descriptors (see the type's documentation).
    pub fn new(bytes: u64) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rnfs-client-tmpfs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = std::ffi::CString::new(format!("size={bytes},mode=0755")).unwrap();
        let r = rustix::mount::mount(
            "rnfs-client-test",
            &dir,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            opts.as_c_str(),
        );
        if let Err(e) = r {
            panic!(
                "RNFS_TEST_BACKEND=tmpfs: cannot mount a tmpfs on {} (this variant needs root): {e}",
                dir.display()
            );
        }
        Self { dir }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Detached (umount -l), so a server still holding a file cannot keep it busy.
        let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The NFS version the client tests speak: `RNFS_TEST_VERSION` (`3`, the default, or
/// `4.1`); anything else panics, so a typo never quietly means NFSv3.
pub fn version() -> &'static str {
    match std::env::var("RNFS_TEST_VERSION").as_deref() {
        Ok("3" | "") | Err(std::env::VarError::NotPresent) => "3",
        Ok("4.1") => "4.1",
        Ok(other) => panic!("RNFS_TEST_VERSION={other:?}: unknown version (3 or 4.1)"),
        Err(e) => panic!("RNFS_TEST_VERSION: {e}"),
    }
}

/// The backend the environment selects: `external`, `tmpfs` or `memory`. A value of
/// `RNFS_TEST_BACKEND` other than `tmpfs` or `memory` (a typo) panics: it must never
/// quietly mean the memory backend.
pub fn backend_name() -> &'static str {
    if std::env::var_os("RNFS_TEST_URL").is_some_and(|v| !v.is_empty()) {
        return "external";
    }
    match std::env::var("RNFS_TEST_BACKEND").as_deref() {
        Ok("tmpfs") => "tmpfs",
        Ok("memory" | "") | Err(std::env::VarError::NotPresent) => "memory",
        Ok(other) => panic!("RNFS_TEST_BACKEND={other:?}: unknown backend (tmpfs or memory)"),
        Err(e) => panic!("RNFS_TEST_BACKEND: {e}"),
    }
}

/// Records a test that does not apply to the selected server (rnfs-testkit: counted as
/// skipped, printed, and in `$RNFS_TEST_SKIP_LOG`). The line names the test from libtest's
/// thread; `test` says which at the call site.
pub fn skip(test: &str, why: &str) {
    let _ = test;
    rnfs_testkit::not_applicable(&format!("[{}] {why}", backend_name()));
}

impl Target {
    /// The test's server; `mem_cap` is the memory backend's capacity (the tmpfs and
    /// external variants have 16 MiB).
    pub fn new(mem_cap: u64) -> Self {
        let mut t = Target {
            srv: None,
            ext: None,
            tmpfs: None,
            wiped: std::sync::atomic::AtomicBool::new(false),
        };
        match backend_name() {
            "external" => {
                let mut u = std::env::var("RNFS_TEST_URL").unwrap();
                if !u.contains("uid=") {
                    u.push_str(if u.contains('?') { "&" } else { "?" });
                    u.push_str("uid=0&gid=0");
                }
                if !u.contains("version=") {
                    u.push_str(&format!("&version={}", version()));
                }
                rnfs_client::NfsUrl::parse(&u).expect("RNFS_TEST_URL");
                t.ext = Some(u);
            }
            "tmpfs" => {
                let m = TmpfsMount::new(TMPFS_BYTES);
                let fs = rnfs_vfs::local::LocalFs::new(&m.dir, false).unwrap();
                t.srv = Some(TestServer::start(Arc::new(fs)));
                t.tmpfs = Some(m);
            }
            _ => t.srv = Some(TestServer::memory(mem_cap)),
        }
        t
    }

    /// The tmpfs the `tmpfs` backend serves, if that is the one selected.
    pub fn tmpfs_dir(&self) -> Option<&std::path::Path> {
        self.tmpfs.as_ref().map(|m| m.dir.as_path())
    }

    pub fn is_external(&self) -> bool {
        self.ext.is_some()
    }

    /// Whether the test may use the in-process server (restart, internals); prints and
    /// records a skip when not.
    pub fn require_internal(&self, test: &str, why: &str) -> bool {
        if self.srv.is_some() {
            true
        } else {
            skip(test, why);
            false
        }
    }

    pub fn srv(&self) -> &TestServer {
        self.srv.as_ref().expect("in-process server")
    }

    /// The URL of the export's root.
    pub fn url(&self) -> String {
        match (&self.ext, &self.srv) {
            (Some(u), _) => u.clone(),
            (None, Some(s)) => s.url("/"),
            _ => unreachable!(),
        }
    }

    /// The export root's URL with NFS calls sent to `nfs` (e.g. a fault proxy) and MOUNT
    /// to the server's MOUNT port.
    pub fn url_via(&self, nfs: SocketAddr) -> String {
        let u = rnfs_client::NfsUrl::parse(&self.url()).unwrap();
        let mport = u.mountport.or(u.nfsport).unwrap_or(2049);
        format!(
            "nfs://127.0.0.1:{}{}?version={}&mountport={mport}&uid=0&gid=0",
            nfs.port(),
            u.path,
            version()
        )
    }

    /// The address of the NFS service (what a fault proxy forwards to).
    pub fn nfs_addr(&self) -> SocketAddr {
        let u = rnfs_client::NfsUrl::parse(&self.url()).unwrap();
        let ip = if u.host == "localhost" {
            "127.0.0.1"
        } else {
            &u.host
        };
        SocketAddr::new(ip.parse().unwrap(), u.nfsport.unwrap_or(2049))
    }

    /// Mounts `url` with the options `tweak` leaves; the first mount of an external target
    /// empties the export (tests start from an empty file system).
    pub async fn mount_url(
        &self,
        url: &str,
        tweak: impl FnOnce(&mut rnfs_client::MountOptions),
    ) -> rnfs_client::Client {
        let url = rnfs_client::NfsUrl::parse(url).unwrap();
        let mut o = rnfs_client::MountOptions::from_url(&url);
        tweak(&mut o);
        let c = rnfs_client::Client::mount_with(&url, o).await.unwrap();
        // The version asked for is the one spoken: never a quiet fall-back.
        assert_eq!(c.version(), version(), "mounted {url:?}");
        if self.is_external() && !self.wiped.swap(true, Ordering::SeqCst) {
            wipe(&c, "/").await;
        }
        c
    }

    pub async fn mount(
        &self,
        tweak: impl FnOnce(&mut rnfs_client::MountOptions),
    ) -> rnfs_client::Client {
        self.mount_url(&self.url(), tweak).await
    }
}

/// Removes everything below `dir`.
pub async fn wipe(c: &rnfs_client::Client, dir: &str) {
    use rnfs_client::FileType;
    let entries = c.read_dir(dir).await.unwrap();
    for e in entries {
        let name = e.name_lossy();
        if name == "." || name == ".." {
            continue;
        }
        let p = format!("{}/{}", dir.trim_end_matches('/'), name);
        let is_dir = match &e.attr {
            Some(a) => a.ftype == FileType::Dir,
            None => c.metadata(&p).await.unwrap().ftype == FileType::Dir,
        };
        if is_dir {
            Box::pin(wipe(c, &p)).await;
            c.rmdir(&p).await.unwrap();
        } else {
            c.remove(&p).await.unwrap();
        }
    }
}

/// Waits (up to 10 s) for the calls a client sends in the background to end: over NFSv4.1
/// a dropped file's CLOSE goes out after the drop. A call that never ends still fails the
/// caller's check of the calls in flight.
pub async fn settle(c: &rnfs_client::Client) {
    for _ in 0..200 {
        if c.rpc_stats().table.live == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Over NFSv4.1, once every file is closed: no server open left (rules O3-O5, the open
/// table's own audit) and no slot held or waited for (seed entry 3's slot rules). Waits
/// (up to 10 s) for background CLOSEs. Nothing to check over NFSv3.
pub async fn assert_no_state_held(c: &rnfs_client::Client) {
    let Some(n) = c.nfs4() else { return };
    for _ in 0..200 {
        if n.open_stats().entries == 0 && c.rpc_stats().table.live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n.audit_opens().unwrap();
    assert_eq!(
        n.open_stats().entries,
        0,
        "server opens left: {:?}",
        n.open_stats()
    );
    let s = n.session().slot_stats();
    assert_eq!((s.busy, s.waiting), (0, 0), "slots held: {s:?}");
}
