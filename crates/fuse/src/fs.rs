//! The FUSE file system over an rnfs [`Client`].
//!
//! Dispatch: fuser reads requests on one thread and calls these methods; each method takes
//! what it needs from the request and spawns a task on the tokio runtime, which replies
//! when done. So a READ waiting for the server never holds up a GETATTR or a LOOKUP from
//! another process: requests are served concurrently, in any order.
//!
//! Node ids: the node id the kernel sees (also `st_ino`) is the server's `fileid`, so it
//! is stable across lookups, forgets and remounts; one node per file handle (seed entry 15).
//! Should two handles carry one fileid (an export that spans file systems), the second gets
//! a synthetic id with the top bit set, so ids stay unique per handle.
//!
//! Open files are the client's [`File`]s: `write` fills its write-back cache, `flush`
//! (each `close`) and `fsync` run `File::fsync`, which reports write-back errors newer than
//! the handle's cursor exactly once (W1-W4). `release` reports nothing (the kernel drops
//! its result): data written after the last `flush` is written back in the background and
//! an error on it stays unseen, for the next handle (W3).
//!
//! The client opens files by path, so each node remembers the names it was reached by
//! (parent node, name) and the path is rebuilt from them; an open that finds another file
//! at that path (renamed by another client) fails with ESTALE, which makes the kernel look
//! the path up again.
use crate::options::MountConfig;
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use parking_lot::Mutex;
use rnfs_client::inode::Inode;
use rnfs_client::rpc::buf::Slice;
use rnfs_client::{
    Attr, Client, Device, Error, File, FileHandle, OpenOptions, SetAttr, SetTime, SpecialFile,
    Status, Time,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::RwLock;

const ROOT: u64 = fuser::FUSE_ROOT_ID;
const SYNTHETIC: u64 = 1 << 63;
const BLKSIZE: u32 = 1 << 20;

/// One file, directory or link the kernel knows by a node id.
struct Node {
    ino: Arc<Inode>,
    /// Names it was reached by, newest last: (parent node, name).
    names: Vec<(u64, String)>,
    /// The kernel's lookup count (FUSE `nlookup`); the node goes at zero.
    lookups: u64,
    /// Open file handles.
    open: u32,
    /// Renamed instead of removed while open; removed at the last release.
    silly: Option<(u64, String)>,
}

#[derive(Default)]
struct Nodes {
    by_id: HashMap<u64, Node>,
    by_fh: HashMap<FileHandle, u64>,
    next_synthetic: u64,
}

impl Nodes {
    /// The node id of an inode, creating the node (with no lookups) if new.
    fn id_for(&mut self, ino: &Arc<Inode>, fileid: u64) -> u64 {
        if let Some(id) = self.by_fh.get(ino.fh()) {
            return *id;
        }
        let id = if fileid != ROOT && fileid & SYNTHETIC == 0 && !self.by_id.contains_key(&fileid) {
            fileid
        } else {
            self.next_synthetic += 1;
            SYNTHETIC | self.next_synthetic
        };
        self.by_fh.insert(ino.fh().clone(), id);
        self.by_id.insert(
            id,
            Node {
                ino: ino.clone(),
                names: Vec::new(),
                lookups: 0,
                open: 0,
                silly: None,
            },
        );
        id
    }

    fn add_name(&mut self, id: u64, parent: u64, name: &str) {
        if let Some(n) = self.by_id.get_mut(&id) {
            n.names.retain(|(p, s)| !(*p == parent && s == name));
            n.names.push((parent, name.to_string()));
        }
    }

    /// Forgets that `(parent, name)` names anything (after unlink, or a rename over it).
    fn drop_name(&mut self, parent: u64, name: &str) {
        for n in self.by_id.values_mut() {
            n.names.retain(|(p, s)| !(*p == parent && s == name));
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(n) = self.by_id.remove(&id) {
            self.by_fh.remove(n.ino.fh());
        }
    }
}

/// An open file.
struct OpenFile {
    node: u64,
    file: RwLock<File>,
    write: bool,
}

/// Entries of a listing: inode number, type, name.
type Listing = Arc<Vec<(u64, FileType, String)>>;

/// A directory listing taken at `opendir` (and again at each rewind to offset 0).
struct OpenDir {
    node: u64,
    entries: tokio::sync::Mutex<Option<Listing>>,
}

struct Inner {
    c: Client,
    cfg: MountConfig,
    nodes: Mutex<Nodes>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<OpenDir>>>,
    next_fh: AtomicU64,
    silly_seq: AtomicU64,
    /// The export path prefix the URL named (the root node's path in the client).
    base: String,
}

/// The FUSE file system. Create with [`RnfsFs::new`] inside the runtime that runs `c`.
pub struct RnfsFs {
    inner: Arc<Inner>,
    rt: Handle,
}

type R<T> = Result<T, i32>;

/// The Linux errno of a client error (one mapping, the client's: every NFS status by name).
fn errno(e: Error) -> i32 {
    e.errno()
}

fn utf8(name: &OsStr) -> R<String> {
    name.to_str().map(str::to_string).ok_or(libc::EILSEQ)
}

fn time(t: Time) -> SystemTime {
    t.to_system()
}

fn set_time(t: Option<TimeOrNow>) -> SetTime {
    match t {
        None => SetTime::DontChange,
        Some(TimeOrNow::Now) => SetTime::ServerTime,
        Some(TimeOrNow::SpecificTime(t)) => SetTime::ClientTime(Time::from_system(t)),
    }
}

fn kind(t: rnfs_client::FileType) -> FileType {
    use rnfs_client::FileType as T;
    match t {
        T::Reg => FileType::RegularFile,
        T::Dir => FileType::Directory,
        T::Blk => FileType::BlockDevice,
        T::Chr => FileType::CharDevice,
        T::Lnk => FileType::Symlink,
        T::Sock => FileType::Socket,
        T::Fifo => FileType::NamedPipe,
    }
}

/// A Linux `dev_t` (as FUSE passes it: 12 bits of major above 8 of minor, the rest of
/// the minor above) as major and minor numbers, and back.
fn device(rdev: u32) -> Device {
    Device {
        major: (rdev >> 8) & 0xfff,
        minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
    }
}

fn dev_t(d: Device) -> u32 {
    ((d.major & 0xfff) << 8) | (d.minor & 0xff) | ((d.minor & !0xff) << 12)
}

fn fattr(id: u64, a: &Attr) -> FileAttr {
    FileAttr {
        ino: id,
        size: a.size,
        blocks: a.used.div_ceil(512),
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.ftype),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: dev_t(a.rdev),
        blksize: BLKSIZE,
        flags: 0,
    }
}

impl Inner {
    fn ttl(&self, a: &Attr) -> Duration {
        let s = if a.ftype == rnfs_client::FileType::Dir {
            self.cfg.acdirmin()
        } else {
            self.cfg.acregmin()
        };
        Duration::from_secs(u64::from(s))
    }

    fn node(&self, id: u64) -> R<Arc<Inode>> {
        self.nodes
            .lock()
            .by_id
            .get(&id)
            .map(|n| n.ino.clone())
            .ok_or(libc::ESTALE)
    }

    /// The client path of a node: the URL's path, then the node's first remaining names.
    fn path(&self, id: u64) -> R<String> {
        let nodes = self.nodes.lock();
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let n = nodes.by_id.get(&cur).ok_or(libc::ESTALE)?;
            let (p, name) = n.names.last().ok_or(libc::ESTALE)?;
            parts.push(name.as_str());
            cur = *p;
            if parts.len() > 4096 {
                return Err(libc::ELOOP);
            }
        }
        parts.reverse();
        Ok(format!(
            "{}/{}",
            self.base.trim_end_matches('/'),
            parts.join("/")
        ))
    }

    fn child_path(&self, parent: u64, name: &str) -> R<String> {
        Ok(format!(
            "{}/{}",
            self.path(parent)?.trim_end_matches('/'),
            name
        ))
    }

    /// Records a lookup of `ino` at `(parent, name)` and returns its entry.
    async fn entry(&self, parent: u64, name: &str, ino: Arc<Inode>) -> R<(FileAttr, Duration)> {
        let a = self.c.getattr(&ino).await.map_err(errno)?;
        let id = {
            let mut n = self.nodes.lock();
            let id = n.id_for(&ino, a.fileid);
            n.add_name(id, parent, name);
            if let Some(node) = n.by_id.get_mut(&id) {
                node.lookups += 1;
            }
            id
        };
        Ok((fattr(id, &a), self.ttl(&a)))
    }

    async fn attr_of(&self, id: u64) -> R<(FileAttr, Duration)> {
        let ino = self.node(id)?;
        // Like the kernel client's nfs_getattr: cached writes are written back first, so
        // that mtime and ctime reflect them (a stat after write() sees the write's times).
        let writers: Vec<Arc<OpenFile>> = self
            .files
            .lock()
            .values()
            .filter(|f| f.node == id && f.write)
            .cloned()
            .collect();
        for f in writers {
            if f.file.read().await.unwritten_bytes() > 0 {
                self.settle(id).await;
                break;
            }
        }
        let a = self.c.getattr(&ino).await.map_err(errno)?;
        Ok((fattr(id, &a), self.ttl(&a)))
    }

    /// Files created by a root client on behalf of another user get that user's ids
    /// (the client sends every call with the mount's uid; see docs/fuse.md).
    async fn owner_fix(
        &self,
        req: (u32, u32),
        parent: &Inode,
        ino: &Inode,
        mode: Option<u32>,
    ) -> R<()> {
        let (uid, gid) = req;
        let opts_uid = self.cfg.uid.unwrap_or(0);
        let mut s = SetAttr {
            mode,
            ..Default::default()
        };
        if opts_uid == 0 && (uid != 0 || gid != 0) {
            let pa = self.c.getattr(parent).await.map_err(errno)?;
            s.uid = Some(uid);
            s.gid = Some(if pa.mode & 0o2000 != 0 { pa.gid } else { gid });
        }
        if s.mode.is_some() || s.uid.is_some() {
            self.c.setattr_of(ino, s).await.map_err(errno)?;
        }
        Ok(())
    }

    fn check_rw(&self) -> R<()> {
        if self.cfg.ro {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }

    async fn lookup(&self, parent: u64, name: String) -> R<(FileAttr, Duration)> {
        let dir = self.node(parent)?;
        let ino = self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        self.entry(parent, &name, ino).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn setattr(
        &self,
        id: u64,
        fh: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: SetTime,
        mtime: SetTime,
    ) -> R<(FileAttr, Duration)> {
        self.check_rw()?;
        if let Some(len) = size {
            // Through an open file when there is one, so that cached writes are ordered
            // with the truncation.
            let f = {
                let files = self.files.lock();
                fh.and_then(|h| files.get(&h).filter(|f| f.write).cloned())
                    .or_else(|| files.values().find(|f| f.node == id && f.write).cloned())
            };
            match f {
                Some(f) => f.file.write().await.set_len(len).await.map_err(errno)?,
                None => {
                    let path = self.path(id)?;
                    let s = SetAttr {
                        size: Some(len),
                        ..Default::default()
                    };
                    self.c.setattr(&path, s).await.map_err(errno)?;
                }
            }
        }
        if (atime != SetTime::DontChange || mtime != SetTime::DontChange) && self.has_writers(id) {
            // Cached writes landing after the new times would move mtime again (tar and
            // cp -a set times on files they have just written): write them back first, as
            // the kernel client does in nfs_setattr.
            self.settle(id).await;
        }
        let s = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size: None,
            atime,
            mtime,
        };
        if s != SetAttr::default() {
            let path = self.path(id)?;
            self.c.setattr(&path, s).await.map_err(errno)?;
        }
        self.attr_of(id).await
    }

    async fn mkdir(
        &self,
        req: (u32, u32),
        parent: u64,
        name: String,
        mode: u32,
    ) -> R<(FileAttr, Duration)> {
        self.check_rw()?;
        let dir = self.node(parent)?;
        let ino = self
            .c
            .mkdir_in(&dir, &name, mode & 0o7777)
            .await
            .map_err(errno)?;
        self.owner_fix(req, &dir, &ino, None).await?;
        let ino = self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        self.entry(parent, &name, ino).await
    }

    async fn symlink(
        &self,
        req: (u32, u32),
        parent: u64,
        name: String,
        target: String,
    ) -> R<(FileAttr, Duration)> {
        self.check_rw()?;
        let dir = self.node(parent)?;
        let ino = self
            .c
            .symlink_in(&dir, &name, &target)
            .await
            .map_err(errno)?;
        self.owner_fix(req, &dir, &ino, None).await?;
        let ino = self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        self.entry(parent, &name, ino).await
    }

    /// `mknod(2)` of a FIFO, socket or device file.
    async fn mknod(
        &self,
        req: (u32, u32),
        parent: u64,
        name: String,
        fmt: u32,
        perm: u32,
        rdev: u32,
    ) -> R<(FileAttr, Duration)> {
        self.check_rw()?;
        let dir = self.node(parent)?;
        let what = match fmt {
            libc::S_IFIFO => SpecialFile::Fifo,
            libc::S_IFSOCK => SpecialFile::Sock,
            libc::S_IFCHR => SpecialFile::Chr(device(rdev)),
            libc::S_IFBLK => SpecialFile::Blk(device(rdev)),
            _ => return Err(libc::EINVAL),
        };
        let ino = self
            .c
            .mknod_in(&dir, &name, what, perm)
            .await
            .map_err(errno)?;
        self.owner_fix(req, &dir, &ino, None).await?;
        let ino = self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        self.entry(parent, &name, ino).await
    }

    async fn link(&self, id: u64, parent: u64, name: String) -> R<(FileAttr, Duration)> {
        self.check_rw()?;
        let (file, dir) = (self.node(id)?, self.node(parent)?);
        self.c.link_in(&file, &dir, &name).await.map_err(errno)?;
        let ino = self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        self.entry(parent, &name, ino).await
    }

    async fn unlink(&self, parent: u64, name: String, dir_op: bool) -> R<()> {
        self.check_rw()?;
        let dir = self.node(parent)?;
        if dir_op {
            self.c.rmdir_in(&dir, &name).await.map_err(errno)?;
            self.nodes.lock().drop_name(parent, &name);
            return Ok(());
        }
        // An open file is renamed out of the way instead (like the kernel client's
        // .nfsXXXX files), so that its open handles keep working; removed at last release.
        // Not needed where the server keeps a removed file for its opens (NFSv4.1
        // OPEN4_RESULT_PRESERVE_UNLINKED): then the name goes at once, as locally.
        let open = if self.c.server_keeps_unlinked_open_files() {
            None
        } else {
            let nodes = self.nodes.lock();
            nodes
                .by_id
                .iter()
                .find(|(_, n)| {
                    n.open > 0 && n.names.iter().any(|(p, s)| *p == parent && *s == name)
                })
                .map(|(id, n)| (*id, n.ino.clone()))
        };
        if let Some((id, ino)) = open {
            let nlink = ino.last_attr().map(|a| a.nlink).unwrap_or(1);
            if nlink <= 1 {
                let silly = format!(
                    ".rnfs-silly-{:x}-{}",
                    id,
                    self.silly_seq.fetch_add(1, Ordering::Relaxed)
                );
                self.c
                    .rename_in(&dir, &name, &dir, &silly)
                    .await
                    .map_err(errno)?;
                let mut nodes = self.nodes.lock();
                nodes.drop_name(parent, &name);
                nodes.add_name(id, parent, &silly);
                if let Some(n) = nodes.by_id.get_mut(&id) {
                    n.silly = Some((parent, silly));
                }
                return Ok(());
            }
        }
        self.c.remove_in(&dir, &name).await.map_err(errno)?;
        self.nodes.lock().drop_name(parent, &name);
        Ok(())
    }

    async fn rename(
        &self,
        parent: u64,
        name: String,
        newparent: u64,
        newname: String,
        flags: u32,
    ) -> R<()> {
        self.check_rw()?;
        let (from, to) = (self.node(parent)?, self.node(newparent)?);
        if flags & libc::RENAME_EXCHANGE != 0 || flags & libc::RENAME_WHITEOUT != 0 {
            return Err(libc::EINVAL);
        }
        if flags & libc::RENAME_NOREPLACE != 0 {
            // Not atomic over NFSv3: checked, then renamed (see docs/fuse.md).
            match self.c.lookup_in(&to, &newname).await {
                Ok(_) => return Err(libc::EEXIST),
                Err(Error::Nfs(Status::NoEnt)) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        self.c
            .rename_in(&from, &name, &to, &newname)
            .await
            .map_err(errno)?;
        let mut nodes = self.nodes.lock();
        let moved: Vec<u64> = nodes
            .by_id
            .iter()
            .filter(|(_, n)| n.names.iter().any(|(p, s)| *p == parent && *s == name))
            .map(|(id, _)| *id)
            .collect();
        nodes.drop_name(newparent, &newname);
        nodes.drop_name(parent, &name);
        for id in moved {
            nodes.add_name(id, newparent, &newname);
        }
        Ok(())
    }

    fn open_options(flags: i32) -> OpenOptions {
        let acc = flags & libc::O_ACCMODE;
        OpenOptions {
            read: acc != libc::O_WRONLY,
            write: acc != libc::O_RDONLY,
            append: false, // the kernel gives each write its offset
            ..Default::default()
        }
    }

    /// Opens `path` and checks that it is still the file of node `id`.
    async fn open_file(&self, id: u64, o: OpenOptions) -> R<u64> {
        let path = self.path(id)?;
        let ino = self.node(id)?;
        let f = self.c.open(&path, o).await.map_err(errno)?;
        if f.inode().fh() != ino.fh() {
            // Another client renamed something over this path: let the kernel look again.
            return Err(libc::ESTALE);
        }
        Ok(self.register_file(id, f, o.write))
    }

    fn register_file(&self, id: u64, f: File, write: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = self.nodes.lock().by_id.get_mut(&id) {
            n.open += 1;
        }
        self.files.lock().insert(
            fh,
            Arc::new(OpenFile {
                node: id,
                file: RwLock::new(f),
                write,
            }),
        );
        fh
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        req: (u32, u32),
        parent: u64,
        name: String,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> R<(FileAttr, Duration, u64)> {
        self.check_rw()?;
        let dir = self.node(parent)?;
        let path = self.child_path(parent, &name)?;
        let perm = mode & !umask & 0o7777;
        let o = OpenOptions {
            // A file opened O_RDONLY|O_CREAT still needs the client's write access to be
            // created; the kernel enforces the descriptor's own mode.
            read: true,
            write: true,
            create: true,
            create_new: flags & libc::O_EXCL != 0,
            truncate: flags & libc::O_TRUNC != 0,
            mode: perm,
            append: false,
        };
        let f = self.c.open(&path, o).await.map_err(errno)?;
        let ino = f.inode().clone();
        let fix_mode = (perm == 0).then_some(0);
        let a = self.c.getattr(&ino).await.map_err(errno)?;
        let needs_fix = fix_mode.is_some()
            || (self.cfg.uid.unwrap_or(0) == 0 && (req.0 != a.uid || req.1 != a.gid));
        if needs_fix {
            self.owner_fix(req, &dir, &ino, fix_mode).await?;
            // LOOKUP refreshes the client's cached attributes of the inode.
            self.c.lookup_in(&dir, &name).await.map_err(errno)?;
        }
        let (attr, ttl) = self.entry(parent, &name, ino).await?;
        let h = self.register_file(attr.ino, f, true);
        Ok((attr, ttl, h))
    }

    fn file(&self, fh: u64) -> R<Arc<OpenFile>> {
        self.files.lock().get(&fh).cloned().ok_or(libc::EBADF)
    }

    async fn read(&self, fh: u64, off: i64, size: u32) -> R<Slice> {
        let f = self.file(fh)?;
        let off = u64::try_from(off).map_err(|_| libc::EINVAL)?;
        // Through the client's page cache and read-ahead, with this file's data not yet
        // written back laid over it (also while the file is open for writing: git's
        // index-pack reads back the pack it is writing). A request inside one READ's
        // pages is answered from the page cache as it is; across READs, the parts are
        // joined here.
        let parts = f
            .file
            .read()
            .await
            .read_shared_at(off, size as usize)
            .await
            .map_err(errno)?;
        Ok(match <[Slice; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => {
                let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                for p in &parts {
                    v.extend_from_slice(p);
                }
                Slice::from_vec(v)
            }
        })
    }

    /// Writes back the dirty data of a node through a short-lived handle of our own. Errors
    /// go to that handle and, per W1, still to every application handle opened before
    /// them, so nothing is taken from the application's `fsync`/`close`.
    async fn settle(&self, node: u64) {
        let Ok(path) = self.path(node) else { return };
        if let Ok(f) = self.c.open(&path, OpenOptions::read_write()).await {
            if let Err(e) = f.close().await {
                tracing::debug!("write-back of {path:?} before a read or a time change: {e}");
            }
        }
    }

    fn has_writers(&self, node: u64) -> bool {
        self.files
            .lock()
            .values()
            .any(|f| f.node == node && f.write)
    }

    async fn write(&self, fh: u64, off: i64, data: Slice) -> R<u32> {
        self.check_rw()?;
        let f = self.file(fh)?;
        let off = u64::try_from(off).map_err(|_| libc::EINVAL)?;
        let n = f
            .file
            .write()
            .await
            .write_shared_at(off, data)
            .await
            .map_err(errno)?;
        Ok(n as u32)
    }

    /// `fsync` and `flush` (each close): W1, errors newer than this handle's cursor, once.
    async fn fsync(&self, fh: u64) -> R<()> {
        let f = self.file(fh)?;
        if !f.write {
            return Ok(());
        }
        let r = f.file.write().await.fsync().await;
        r.map_err(errno)
    }

    async fn release(&self, fh: u64) {
        let Some(f) = self.files.lock().remove(&fh) else {
            return;
        };
        let silly = {
            let mut nodes = self.nodes.lock();
            match nodes.by_id.get_mut(&f.node) {
                Some(n) => {
                    n.open = n.open.saturating_sub(1);
                    if n.open == 0 {
                        n.silly.take()
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        // Dropping the File writes back what is left in the background; an error there
        // stays unseen and goes to the next handle's first fsync or close (W3).
        drop(f);
        if let Some((parent, name)) = silly {
            if let Ok(dir) = self.node(parent) {
                if let Err(e) = self.c.remove_in(&dir, &name).await {
                    tracing::warn!("cannot remove {name:?} after its last close: {e}");
                }
            }
            self.nodes.lock().drop_name(parent, &name);
        }
    }

    async fn readdir_entries(
        &self,
        d: &OpenDir,
        rewind: bool,
    ) -> R<Arc<Vec<(u64, FileType, String)>>> {
        let mut e = d.entries.lock().await;
        if let (Some(v), false) = (e.as_ref(), rewind) {
            return Ok(v.clone());
        }
        let dir = self.node(d.node)?;
        let path = self
            .path(d.node)
            .unwrap_or_else(|_| format!("(node {:#x})", d.node));
        // A name the kernel would refuse (empty, with `/` or NUL) would fail the whole
        // listing with EIO: the client leaves such entries out and logs the first.
        let list = self
            .c
            .open_dir_of(dir, &path)
            .await
            .map_err(errno)?
            .skip_bad_names()
            .collect()
            .await
            .map_err(errno)?;
        let parent = self
            .nodes
            .lock()
            .by_id
            .get(&d.node)
            .and_then(|n| n.names.last().map(|(p, _)| *p))
            .unwrap_or(ROOT);
        let mut v = Vec::with_capacity(list.len() + 2);
        v.push((d.node, FileType::Directory, ".".to_string()));
        v.push((parent, FileType::Directory, "..".to_string()));
        for ent in list {
            let Ok(name) = String::from_utf8(ent.name) else {
                tracing::warn!("skipping a name that is not UTF-8 in {path:?}");
                continue;
            };
            let mut t = ent.attr.as_ref().map(|a| kind(a.ftype));
            if t.is_none() {
                if let Some(i) = &ent.inode {
                    t = self.c.getattr(i).await.ok().map(|a| kind(a.ftype));
                }
            }
            let id = ent
                .inode
                .as_ref()
                .and_then(|i| self.nodes.lock().by_fh.get(i.fh()).copied())
                .unwrap_or(ent.fileid);
            v.push((id, t.unwrap_or(FileType::RegularFile), name));
        }
        let v = Arc::new(v);
        *e = Some(v.clone());
        Ok(v)
    }

    async fn statfs(&self) -> R<(u64, u64, u64, u64, u64)> {
        let s = self.c.fsstat().await.map_err(errno)?;
        let b = u64::from(BLKSIZE);
        Ok((s.tbytes / b, s.fbytes / b, s.abytes / b, s.tfiles, s.ffiles))
    }
}

impl RnfsFs {
    /// A file system over a mounted client; call from inside the client's runtime (its
    /// handle is kept to run the requests).
    pub async fn new(c: Client, cfg: MountConfig) -> Result<Self, Error> {
        let base = c.url_path().to_string();
        let root = c.resolve(&base).await?;
        let a = c.getattr(&root).await?;
        if a.ftype != rnfs_client::FileType::Dir {
            return Err(Error::Nfs(Status::NotDir));
        }
        let mut nodes = Nodes::default();
        nodes.by_fh.insert(root.fh().clone(), ROOT);
        nodes.by_id.insert(
            ROOT,
            Node {
                ino: root,
                names: Vec::new(),
                lookups: 1,
                open: 0,
                silly: None,
            },
        );
        Ok(Self {
            inner: Arc::new(Inner {
                c,
                cfg,
                nodes: Mutex::new(nodes),
                files: Mutex::default(),
                dirs: Mutex::default(),
                next_fh: AtomicU64::new(1),
                silly_seq: AtomicU64::new(0),
                base,
            }),
            rt: Handle::current(),
        })
    }

    /// A handle on the state, to finish open files when the mount goes away.
    pub fn closer(&self) -> Closer {
        Closer {
            inner: self.inner.clone(),
        }
    }

    fn spawn<F>(&self, f: impl FnOnce(Arc<Inner>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.inner.clone()));
    }
}

/// Writes back and forgets the files still open (after an unmount the kernel sends no
/// more releases).
pub struct Closer {
    inner: Arc<Inner>,
}

impl Closer {
    /// Flushes every file still open; returns how many failed.
    pub async fn close_all(&self) -> usize {
        let files: Vec<Arc<OpenFile>> = self.inner.files.lock().drain().map(|(_, f)| f).collect();
        let mut failed = 0;
        for f in files {
            if f.write {
                if let Err(e) = f.file.write().await.fsync().await {
                    tracing::error!("write-back of a file still open at unmount failed: {e}");
                    failed += 1;
                }
            }
        }
        failed
    }
}

fn ids(req: &Request<'_>) -> (u32, u32) {
    (req.uid(), req.gid())
}

macro_rules! name_or_reply {
    ($name:expr, $reply:expr) => {
        match utf8($name) {
            Ok(n) => n,
            Err(e) => return $reply.error(e),
        }
    };
}

impl Filesystem for RnfsFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        let _ = config.set_max_write(1 << 20);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.add_capabilities(fuser::consts::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let name = name_or_reply!(name, reply);
        self.spawn(|s| async move {
            match s.lookup(parent, name).await {
                Ok((a, ttl)) => reply.entry(&ttl, &a, 0),
                Err(e) => reply.error(e),
            }
        });
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        if ino == ROOT {
            return;
        }
        let mut nodes = self.inner.nodes.lock();
        let gone = match nodes.by_id.get_mut(&ino) {
            Some(n) => {
                n.lookups = n.lookups.saturating_sub(nlookup);
                n.lookups == 0 && n.open == 0
            }
            None => false,
        };
        if gone {
            nodes.remove(ino);
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        self.spawn(|s| async move {
            match s.attr_of(ino).await {
                Ok((a, ttl)) => reply.attr(&ttl, &a),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let (atime, mtime) = (set_time(atime), set_time(mtime));
        self.spawn(|s| async move {
            match s.setattr(ino, fh, mode, uid, gid, size, atime, mtime).await {
                Ok((a, ttl)) => reply.attr(&ttl, &a),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        self.spawn(|s| async move {
            let r = match s.node(ino) {
                Ok(i) => s.c.readlink_of(&i).await.map_err(errno),
                Err(e) => Err(e),
            };
            match r {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(name, reply);
        let req = ids(req);
        let fmt = mode & libc::S_IFMT;
        if fmt != libc::S_IFREG && fmt != 0 {
            return self.spawn(|s| async move {
                match s
                    .mknod(req, parent, name, fmt, mode & !umask & 0o7777, rdev)
                    .await
                {
                    Ok((a, ttl)) => reply.entry(&ttl, &a, 0),
                    Err(e) => reply.error(e),
                }
            });
        }
        self.spawn(|s| async move {
            let r = s
                .create(
                    req,
                    parent,
                    name,
                    mode,
                    umask,
                    libc::O_EXCL | libc::O_WRONLY,
                )
                .await;
            match r {
                Ok((a, ttl, fh)) => {
                    s.release(fh).await;
                    reply.entry(&ttl, &a, 0);
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(name, reply);
        let req = ids(req);
        self.spawn(|s| async move {
            match s.mkdir(req, parent, name, mode & !umask).await {
                Ok((a, ttl)) => reply.entry(&ttl, &a, 0),
                Err(e) => reply.error(e),
            }
        });
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        self.spawn(|s| async move {
            match s.unlink(parent, name, false).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        self.spawn(|s| async move {
            match s.unlink(parent, name, true).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(link_name, reply);
        let target = name_or_reply!(target.as_os_str(), reply);
        let req = ids(req);
        self.spawn(|s| async move {
            match s.symlink(req, parent, name, target).await {
                Ok((a, ttl)) => reply.entry(&ttl, &a, 0),
                Err(e) => reply.error(e),
            }
        });
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let name = name_or_reply!(name, reply);
        let newname = name_or_reply!(newname, reply);
        self.spawn(|s| async move {
            match s.rename(parent, name, newparent, newname, flags).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(newname, reply);
        self.spawn(|s| async move {
            match s.link(ino, newparent, name).await {
                Ok((a, ttl)) => reply.entry(&ttl, &a, 0),
                Err(e) => reply.error(e),
            }
        });
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let o = Inner::open_options(flags);
        if o.write && self.inner.cfg.ro {
            return reply.error(libc::EROFS);
        }
        self.spawn(|s| async move {
            match s.open_file(ino, o).await {
                Ok(fh) => reply.opened(fh, 0),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        self.spawn(|s| async move {
            match s.read(fh, offset, size).await {
                Ok(d) => reply.data(&d[..]),
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        // The request's buffer is fuser's: its bytes are copied once, into the client's
        // write pool, where write-back sends them from.
        let data = self.inner.c.write_buffer(data);
        self.spawn(|s| async move {
            match s.write(fh, offset, data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        self.spawn(|s| async move {
            match s.fsync(fh).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(|s| async move {
            s.release(fh).await;
            reply.ok();
        });
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(|s| async move {
            match s.fsync(fh).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let fh = self.inner.next_fh.fetch_add(1, Ordering::Relaxed);
        self.inner.dirs.lock().insert(
            fh,
            Arc::new(OpenDir {
                node: ino,
                entries: tokio::sync::Mutex::new(None),
            }),
        );
        reply.opened(fh, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(d) = self.inner.dirs.lock().get(&fh).cloned() else {
            return reply.error(libc::EBADF);
        };
        self.spawn(|s| async move {
            let v = match s.readdir_entries(&d, offset == 0).await {
                Ok(v) => v,
                Err(e) => return reply.error(e),
            };
            let start = usize::try_from(offset).unwrap_or(0);
            for (i, (id, t, name)) in v.iter().enumerate().skip(start) {
                if reply.add(*id, i as i64 + 1, *t, name) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.inner.dirs.lock().remove(&fh);
        reply.ok();
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory operations are synchronous in NFSv3 (RFC 1813 3.3: the server commits
        // them before replying).
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        self.spawn(|s| async move {
            match s.statfs().await {
                Ok((blocks, bfree, bavail, files, ffree)) => {
                    reply.statfs(blocks, bfree, bavail, files, ffree, BLKSIZE, 255, BLKSIZE)
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        // Without default_permissions the server decides, call by call.
        reply.ok();
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name_or_reply!(name, reply);
        let req = ids(req);
        self.spawn(|s| async move {
            match s.create(req, parent, name, mode, umask, flags).await {
                Ok((a, ttl, fh)) => reply.created(&ttl, &a, 0, fh, 0),
                Err(e) => reply.error(e),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{dev_t, device};
    use rnfs_client::Device;

    #[test]
    fn device_numbers_round_trip_through_a_linux_dev_t() {
        for (major, minor) in [(1, 3), (8, 0), (253, 70_000), (0xfff, 0xfffff)] {
            let d = Device { major, minor };
            assert_eq!(device(dev_t(d)), d, "{major}:{minor}");
        }
        // /dev/null as the kernel passes it.
        assert_eq!(device(0x103), Device { major: 1, minor: 3 });
    }
}
