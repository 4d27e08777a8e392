//! The FUSE mount against an in-process rnfs server: concurrent dispatch (a READ held at
//! the server does not hold up GETATTR, LOOKUP or CREATE from another thread), one stable
//! inode number per file handle, and the seed's dd scenario with coreutils dd.
//!
//! These need root and /dev/fuse; elsewhere each test records a skip (rnfs-testkit), which
//! the test command counts as skipped, not passed (and as failed under `RNFS_NO_SKIP=1`).
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]
use parking_lot::{Condvar, Mutex};
use rnfs_fuse::{MountConfig, Mounted};
use rnfs_rpc::transport::{serve, Config, ConnStats};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::memory::MemFs;
use rnfs_vfs::*;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend whose READs wait at a gate while it is closed, and which counts calls.
struct Gated {
    inner: MemFs,
    closed: Mutex<bool>,
    cv: Condvar,
    reads_waiting: AtomicU64,
    reads_done: AtomicU64,
    getattrs: AtomicU64,
    lookups: AtomicU64,
    creates: AtomicU64,
}

impl Gated {
    fn new(cap: u64) -> Arc<Self> {
        Arc::new(Self {
            inner: MemFs::new(cap),
            closed: Mutex::new(false),
            cv: Condvar::new(),
            reads_waiting: AtomicU64::new(0),
            reads_done: AtomicU64::new(0),
            getattrs: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            creates: AtomicU64::new(0),
        })
    }
    fn set_closed(&self, c: bool) {
        *self.closed.lock() = c;
        self.cv.notify_all();
    }
}

impl Backend for Gated {
    fn root(&self) -> FileKey {
        self.inner.root()
    }
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    fn getattr(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Attr> {
        self.getattrs.fetch_add(1, Ordering::SeqCst);
        self.inner.getattr(ctx, key)
    }
    fn setattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        set: &SetAttr,
        guard: Option<Timestamp>,
    ) -> VfsResult<Attr> {
        self.inner.setattr(ctx, key, set, guard)
    }
    fn lookup(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<(FileKey, Attr)> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(ctx, dir, name)
    }
    fn readlink(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<u8>> {
        self.inner.readlink(ctx, key)
    }
    fn read(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
    ) -> VfsResult<(Vec<u8>, bool)> {
        let mut closed = self.closed.lock();
        if *closed {
            self.reads_waiting.fetch_add(1, Ordering::SeqCst);
            while *closed {
                self.cv.wait(&mut closed);
            }
        }
        drop(closed);
        let r = self.inner.read(ctx, key, offset, count);
        self.reads_done.fetch_add(1, Ordering::SeqCst);
        r
    }
    fn write(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> VfsResult<Stability> {
        self.inner.write(ctx, key, offset, data, stable)
    }
    fn create(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        mode: &CreateMode,
    ) -> VfsResult<(FileKey, Attr)> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        self.inner.create(ctx, dir, name, mode)
    }
    fn mkdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.inner.mkdir(ctx, dir, name, attr)
    }
    fn symlink(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        target: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.inner.symlink(ctx, dir, name, target, attr)
    }
    fn mknod(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        kind: SpecialKind,
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.inner.mknod(ctx, dir, name, kind, attr)
    }
    fn remove(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.inner.remove(ctx, dir, name)
    }
    fn rmdir(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.inner.rmdir(ctx, dir, name)
    }
    fn rename(&self, ctx: &Ctx, fd: &FileKey, f: &[u8], td: &FileKey, t: &[u8]) -> VfsResult<()> {
        self.inner.rename(ctx, fd, f, td, t)
    }
    fn link(&self, ctx: &Ctx, key: &FileKey, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.inner.link(ctx, key, dir, name)
    }
    fn readdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        after: u64,
        max: usize,
        plus: bool,
    ) -> VfsResult<DirPage> {
        self.inner.readdir(ctx, dir, after, max, plus)
    }
    fn fsstat(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<FsStat> {
        self.inner.fsstat(ctx, key)
    }
    fn commit(&self, ctx: &Ctx, key: &FileKey, offset: u64, count: u32) -> VfsResult<()> {
        self.inner.commit(ctx, key, offset, count)
    }
}

/// An rnfs server on 127.0.0.1 in its own thread and runtime.
struct Server {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(fs: Arc<dyn Backend>) -> Self {
        let server = Arc::new(NfsServer::new(
            Export::new(1, "/", fs),
            ServerConfig::default(),
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (atx, arx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap().port()).unwrap();
                serve(
                    l,
                    server,
                    Config::default(),
                    Arc::new(ConnStats::default()),
                    rx,
                )
                .await
                .unwrap();
            });
        });
        let port = arx.recv().unwrap();
        Self {
            port,
            stop: tx,
            thread: Some(thread),
        }
    }
    fn url(&self) -> String {
        format!("nfs://127.0.0.1:{0}/?version=3&mountport={0}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mountpoint(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rnfs-fuse-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Waits (bounded, so a bug fails instead of hanging) until `cond` holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn slow_read_does_not_hold_up_other_requests() {
    if !rnfs_testkit::require_fuse() {
        return;
    }
    let fs = Gated::new(64 << 20);
    let srv = Server::start(fs.clone());
    let mnt = mountpoint("concurrent");
    // actimeo=0: every stat reaches the server as a GETATTR, so we can count them there.
    let cfg = MountConfig::parse("actimeo=0").unwrap();
    let m = Mounted::new(&srv.url(), &mnt, &cfg).unwrap();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(mnt.join("big"), &data).unwrap();
    std::fs::write(mnt.join("small"), b"x").unwrap();

    fs.set_closed(true);
    let read_returned = Arc::new(AtomicBool::new(false));
    let reader = {
        let (p, flag) = (mnt.join("big"), read_returned.clone());
        std::thread::spawn(move || {
            let r = std::fs::read(p);
            flag.store(true, Ordering::SeqCst);
            r
        })
    };
    wait_for("the READ to reach the gate", || {
        fs.reads_waiting.load(Ordering::SeqCst) >= 1
    });
    let (g0, l0, c0) = (
        fs.getattrs.load(Ordering::SeqCst),
        fs.lookups.load(Ordering::SeqCst),
        fs.creates.load(Ordering::SeqCst),
    );
    for i in 0..20 {
        let md = std::fs::metadata(mnt.join("small")).unwrap();
        assert_eq!(md.len(), 1);
        std::fs::write(mnt.join(format!("new{i}")), b"y").unwrap();
    }
    // All of that was served while the READ was still held at the server.
    assert_eq!(fs.reads_done.load(Ordering::SeqCst), 0);
    assert!(!read_returned.load(Ordering::SeqCst));
    assert!(fs.getattrs.load(Ordering::SeqCst) >= g0 + 20);
    assert!(fs.lookups.load(Ordering::SeqCst) >= l0 + 20);
    assert_eq!(fs.creates.load(Ordering::SeqCst), c0 + 20);

    fs.set_closed(false);
    let got = reader.join().unwrap().unwrap();
    assert!(got == data, "read back differs");
    assert!(fs.reads_done.load(Ordering::SeqCst) >= 1);
    m.unmount();
    drop(srv);
    let _ = std::fs::remove_dir(&mnt);
}

fn drop_kernel_caches() {
    // Makes the kernel forget dentries and inodes (FUSE FORGET), so that the next stat
    // looks the names up again.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "2");
}

#[test]
fn the_kernel_reads_ahead_whole_requests() {
    // The kernel starts a FUSE mount with 128 KiB of read-ahead, so sequential reads came as
    // 128 KiB requests; the mount raises it to one 1 MiB request.
    if !rnfs_testkit::require_fuse() {
        return;
    }
    let srv = Server::start(Arc::new(MemFs::new(64 << 20)));
    let mnt = mountpoint("readahead");
    let m = Mounted::new(&srv.url(), &mnt, &MountConfig::default()).unwrap();
    let dev = std::fs::metadata(&mnt).unwrap().dev();
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let want = rnfs_fuse::KERNEL_READAHEAD_KB.to_string();
    wait_for("the mount's read-ahead to be raised", || {
        std::fs::read_to_string(&knob).is_ok_and(|v| v.trim() == want)
    });
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(mnt.join("f"), &data).unwrap();
    drop_kernel_caches();
    assert!(std::fs::read(mnt.join("f")).unwrap() == data);
    m.unmount();
    drop(srv);
    let _ = std::fs::remove_dir(&mnt);
}

#[test]
fn one_stable_inode_number_per_file_handle() {
    if !rnfs_testkit::require_fuse() {
        return;
    }
    let srv = Server::start(Arc::new(MemFs::new(64 << 20)));
    let mnt = mountpoint("inodes");
    let m = Mounted::new(&srv.url(), &mnt, &MountConfig::default()).unwrap();
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::write(mnt.join("a"), b"a").unwrap();
    std::fs::write(mnt.join("b"), b"b").unwrap();
    std::fs::hard_link(mnt.join("a"), mnt.join("d/a2")).unwrap();
    let ino = |p: &str| std::fs::symlink_metadata(mnt.join(p)).unwrap().ino();
    let (a, b, d, a2) = (ino("a"), ino("b"), ino("d"), ino("d/a2"));
    assert_eq!(a, a2, "two names of one file: one inode");
    assert_eq!(std::fs::metadata(mnt.join("a")).unwrap().nlink(), 2);
    assert!(a != b && a != d && b != d);
    drop_kernel_caches();
    assert_eq!((ino("a"), ino("b"), ino("d"), ino("d/a2")), (a, b, d, a2));
    std::fs::rename(mnt.join("b"), mnt.join("d/b")).unwrap();
    assert_eq!(ino("d/b"), b, "rename keeps the inode");
    // readdir's d_ino agrees with stat.
    for e in std::fs::read_dir(mnt.join("d")).unwrap() {
        let e = e.unwrap();
        use std::os::unix::fs::DirEntryExt;
        assert_eq!(e.ino(), e.metadata().unwrap().ino(), "{:?}", e.file_name());
    }
    // An open file removed through the mount stays readable until closed.
    let mut f = std::fs::File::open(mnt.join("d/b")).unwrap();
    std::fs::remove_file(mnt.join("d/b")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "b");
    drop(f);
    let names: Vec<String> = std::fs::read_dir(mnt.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    wait_for("the renamed-away file to go at last close", || {
        std::fs::read_dir(mnt.join("d")).unwrap().count() == 1
    });
    assert!(
        names
            .iter()
            .all(|n| n == "a2" || n.starts_with(".rnfs-silly-")),
        "{names:?}"
    );
    m.unmount();
    let _ = std::fs::remove_dir(&mnt);
}

/// The seed scenario with coreutils dd, against the memory backend (full at 16 MiB).
#[test]
fn seed_dd_scenario() {
    if !rnfs_testkit::require_fuse() {
        return;
    }
    let srv = Server::start(Arc::new(MemFs::new(16 << 20)));
    let mnt = mountpoint("dd");
    let m = Mounted::new(&srv.url(), &mnt, &MountConfig::default()).unwrap();
    let dd = |extra: &[&str]| {
        std::process::Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", mnt.join("file").display()))
            .args(["bs=1M", "count=1"])
            .args(extra)
            .output()
            .unwrap()
    };
    // Fill the export through the mount.
    let full = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", mnt.join("nospc").display()))
        .args(["bs=1M", "count=32"])
        .output()
        .unwrap();
    assert!(
        !full.status.success(),
        "filling 32 MiB into 16 MiB must fail"
    );
    let first = dd(&[]);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "first dd must fail");
    assert!(err.contains("No space left on device"), "{err}");
    std::fs::remove_file(mnt.join("nospc")).unwrap();
    let second = dd(&[]);
    assert!(
        second.status.success(),
        "second dd: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    let third = dd(&["conv=fsync"]);
    assert!(
        third.status.success(),
        "conv=fsync: {}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(std::fs::metadata(mnt.join("file")).unwrap().len(), 1 << 20);
    m.unmount();
    let _ = std::fs::remove_dir(&mnt);
}
