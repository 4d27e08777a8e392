//! The backend interface of rnfs and its implementations.
//!
//! A [`Backend`] is a file system the server exports: [`local::LocalFs`] serves a directory
//! of the host, [`memory::MemFs`] keeps everything in memory under a size limit. The trait
//! is synchronous on purpose: the server calls it from a pool of blocking threads, never
//! from the async executor, and tests can drive it without any runtime. The one exception
//! is [`Backend::try_read_into`], which must never wait and so may run on the executor.
//!
//! Objects are named by a [`FileKey`]: the backend's own stable identity of a file, at
//! most [`FileKey::MAX`] bytes, which the server wraps into a wire file handle. Every method
//! receives the caller's identity in a [`Ctx`] and enforces permissions as the host would.
//!
//! Optional capabilities (NFSv4.2 sparse files and user extended attributes, open state)
//! have default methods that answer [`VfsError::NotSupp`].
#![deny(unsafe_code)]

pub mod cookie;
mod error;
mod fdcache;
pub mod local;
pub mod memory;
pub mod perm;

pub use error::{VfsError, VfsResult};

/// The identity of a caller (from AUTH_SYS, after any squashing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Creds {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub gids: Vec<u32>,
}

impl Creds {
    /// The superuser.
    pub fn root() -> Self {
        Self::default()
    }
    /// Whether the caller is in group `g`.
    pub fn in_group(&self, g: u32) -> bool {
        self.gid == g || self.gids.contains(&g)
    }
}

/// Per-call context handed to every backend method.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Who is calling.
    pub creds: Creds,
}

impl Ctx {
    /// A context for the given credentials.
    pub fn new(creds: Creds) -> Self {
        Self { creds }
    }
}

/// A backend's identity of a file: opaque, stable, at most [`FileKey::MAX`] bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey(pub Vec<u8>);

impl FileKey {
    /// Longest key: the wire handle adds a header and a check value to it and must stay
    /// within NFSv3's 64 bytes.
    pub const MAX: usize = 48;
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key:")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The type of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Block device.
    BlockDevice,
    /// Character device.
    CharDevice,
    /// Symbolic link.
    Symlink,
    /// Socket.
    Socket,
    /// Named pipe.
    Fifo,
}

/// A point in time: seconds since the epoch (may be negative) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds.
    pub secs: i64,
    /// Nanoseconds, below 1e9.
    pub nsecs: u32,
}

impl Timestamp {
    /// The current time of the host clock.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: d.as_secs() as i64,
            nsecs: d.subsec_nanos(),
        }
    }
}

/// Attributes of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Type.
    pub ftype: FileType,
    /// Permission bits, 07777.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Bytes of storage used.
    pub used: u64,
    /// Device numbers (major, minor) of a device file.
    pub rdev: (u32, u32),
    /// File system id.
    pub fsid: u64,
    /// File id, unique within the file system.
    pub fileid: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// A value that changes whenever the file's data or attributes change (NFSv4 change
    /// attribute).
    pub change: u64,
}

/// How to set a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    /// Leave it.
    #[default]
    Keep,
    /// The server's current time.
    Now,
    /// This time.
    At(Timestamp),
}

/// Attributes to change (SETATTR, or the initial attributes of a created object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: SetTime,
    /// New modification time.
    pub mtime: SetTime,
}

impl SetAttr {
    /// Whether nothing is to be changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// How CREATE behaves when the name exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateMode {
    /// Open the existing file (applying the size in the attributes, if any).
    Unchecked(SetAttr),
    /// Fail with [`VfsError::Exist`].
    Guarded(SetAttr),
    /// Create once: a retry carrying the same verifier finds the file it created and
    /// succeeds; a different verifier fails with [`VfsError::Exist`].
    Exclusive([u8; 8]),
}

/// Kinds of special file MKNOD can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    /// Character device (major, minor).
    Char(u32, u32),
    /// Block device (major, minor).
    Block(u32, u32),
    /// Socket.
    Socket,
    /// Named pipe.
    Fifo,
}

/// How durable a write must be when the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// In the server's memory; COMMIT makes it durable.
    Unstable,
    /// Data durable.
    DataSync,
    /// Data and metadata durable.
    FileSync,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name, as bytes.
    pub name: Vec<u8>,
    /// File id.
    pub fileid: u64,
    /// Cookie to resume the listing after this entry. Stable: see [`cookie`].
    pub cookie: u64,
    /// Key and attributes, when asked for (READDIRPLUS) and still available.
    pub plus: Option<(FileKey, Attr)>,
}

/// A part of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirPage {
    /// Entries after the requested cookie, in cookie order.
    pub entries: Vec<DirEntry>,
    /// Whether the last entry of the directory is in `entries`.
    pub eof: bool,
}

/// Space figures (FSSTAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    /// Total bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub free_bytes: u64,
    /// Bytes available to the caller.
    pub avail_bytes: u64,
    /// Total file slots.
    pub total_files: u64,
    /// Free file slots.
    pub free_files: u64,
    /// Slots available to the caller.
    pub avail_files: u64,
}

/// Limits of a backend (FSINFO, PATHCONF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest name.
    pub name_max: u32,
    /// Most hard links.
    pub link_max: u32,
    /// Largest file.
    pub max_file_size: u64,
    /// Timestamp granularity in nanoseconds.
    pub time_granularity_ns: u32,
    /// The alignment [`Backend::clone_range`] needs of offsets and lengths (NFSv4.2
    /// `clone_blksize`, RFC 7862 section 12.2.1); 0 when the backend cannot clone.
    pub clone_blksize: u32,
    /// What [`Attr::change`] is (NFSv4.2 `change_attr_type`, RFC 7862 section 12.2.3).
    pub change: ChangeKind,
}

/// What a backend's change attribute ([`Attr::change`]) is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeKind {
    /// A counter that grows with every change of any file.
    Counter,
    /// The ctime in nanoseconds (`time_metadata`).
    Ctime,
    /// Nothing the backend promises but that it changes.
    #[default]
    Undefined,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            name_max: 255,
            link_max: 65000,
            max_file_size: i64::MAX as u64,
            time_granularity_ns: 1,
            clone_blksize: 0,
            change: ChangeKind::Undefined,
        }
    }
}

/// What [`Backend::read_into`] reports besides the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDone {
    /// Whether the end of the file was reached.
    pub eof: bool,
    /// The file's attributes after the read, when the backend has them at no cost.
    pub attr: Option<Attr>,
}

/// What [`Backend::seek`] looks for (NFSv4.2 SEEK, RFC 7862 section 15.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Bytes that hold data (written or allocated).
    Data,
    /// A hole: bytes that read as zeros and have no storage.
    Hole,
}

/// Where [`Backend::seek`] found what it looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoughtAt {
    /// The start of the content found: at or after the offset asked, at most the size.
    pub offset: u64,
    /// Whether `offset` is the end of the file: the content asked for was not found before
    /// it (then `offset` is the size), or it is the hole every file ends with.
    pub eof: bool,
}

/// Bounds of one [`Backend::search`]: what a key the backend does not know may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Most directories read.
    pub max_dirs: usize,
    /// When to give up (the caller reads the clock; the backend compares).
    pub deadline: std::time::Instant,
}

/// What a [`Backend::search`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searched {
    /// The object is found: calls on its key now reach it without searching.
    Found,
    /// The whole backend was searched: the object is gone.
    NotFound,
    /// A limit was reached first.
    GaveUp,
}

/// A backend's hold on a file that keeps it reachable by its key after its last name is
/// removed, for as long as this value lives ([`Backend::keep_open`]).
pub struct Kept(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Kept {
    /// A hold that lasts as long as `hold` does (dropping it lets the file go).
    pub fn new(hold: impl Send + Sync + 'static) -> Self {
        Self(Box::new(hold))
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

/// A file system that rnfs can export. See the crate documentation.
///
/// Names are single path components as bytes; callers never pass `/` or a NUL in them (the
/// server checks), but `.` and `..` may appear in [`Backend::lookup`]: `..` of the root is
/// the root, so nothing outside the backend is ever reachable.
pub trait Backend: Send + Sync + 'static {
    /// The key of the root directory.
    fn root(&self) -> FileKey;
    /// Limits for FSINFO/PATHCONF.
    fn limits(&self) -> Limits {
        Limits::default()
    }
    /// Whether every call that changes something fails with [`VfsError::Rofs`].
    fn read_only(&self) -> bool {
        false
    }
    /// Checks that a key names a live object, cheaply if possible.
    fn getattr(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Attr>;
    /// Changes attributes. `guard`: fail with [`VfsError::NotSync`] unless the ctime equals it.
    fn setattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        set: &SetAttr,
        guard: Option<Timestamp>,
    ) -> VfsResult<Attr>;
    /// Finds `name` in directory `dir`, without following a symbolic link.
    fn lookup(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<(FileKey, Attr)>;
    /// Which of the NFSv3 ACCESS bits in `mask` the caller holds.
    fn access(&self, ctx: &Ctx, key: &FileKey, mask: u32) -> VfsResult<u32> {
        let a = self.getattr(ctx, key)?;
        Ok(perm::access_mask(&ctx.creds, &a, mask))
    }
    /// The target of a symbolic link.
    fn readlink(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<u8>>;
    /// Reads up to `count` bytes at `offset`; also says whether the end of the file was reached.
    fn read(&self, ctx: &Ctx, key: &FileKey, offset: u64, count: u32)
        -> VfsResult<(Vec<u8>, bool)>;
    /// Like [`Backend::read`], but appends the data to `buf` (keeping what it holds), so
    /// that the server can read straight into its reply; on error `buf` is left as it was.
    /// The default reads into a new buffer and copies.
    fn read_into(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
        buf: &mut Vec<u8>,
    ) -> VfsResult<ReadDone> {
        let (data, eof) = self.read(ctx, key, offset, count)?;
        buf.extend_from_slice(&data);
        Ok(ReadDone { eof, attr: None })
    }
    /// Whether reads, writes and commits finish without waiting for a device (the data
    /// lives in memory, as on tmpfs): like metadata calls, they may then run on a
    /// connection's task when it has nothing else to do. The default says no.
    fn data_in_memory(&self) -> bool {
        false
    }
    /// Like [`Backend::read_into`], but only if it can be done without waiting (for the
    /// disk, a lock held for long, the network): the server calls it on a connection's
    /// task, where a wait would hold up every other call of the connection, and runs
    /// [`Backend::read_into`] on its blocking pool when this answers `None`.
    ///
    /// `None`: the read would have to wait, or this backend cannot tell; `buf` is left as it
    /// was. `Some` is what [`Backend::read_into`] would answer (an error too, when it is
    /// known without waiting). The default answers `None`: backends that may wait and do
    /// not know when keep their reads on the pool.
    fn try_read_into(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
        buf: &mut Vec<u8>,
    ) -> Option<VfsResult<ReadDone>> {
        let _ = (ctx, key, offset, count, buf);
        None
    }
    /// Writes `data` at `offset` with at least the asked stability; returns the stability
    /// achieved.
    fn write(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> VfsResult<Stability>;
    /// Creates (or, per `mode`, opens) a regular file.
    fn create(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        mode: &CreateMode,
    ) -> VfsResult<(FileKey, Attr)>;
    /// Creates a directory.
    fn mkdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)>;
    /// Creates a symbolic link to `target` (stored as given, never followed by the server).
    fn symlink(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        target: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)>;
    /// Creates a special file.
    fn mknod(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        kind: SpecialKind,
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)>;
    /// Removes a non-directory.
    fn remove(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()>;
    /// Removes an empty directory.
    fn rmdir(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()>;
    /// Renames, replacing a compatible target atomically.
    fn rename(
        &self,
        ctx: &Ctx,
        from_dir: &FileKey,
        from: &[u8],
        to_dir: &FileKey,
        to: &[u8],
    ) -> VfsResult<()>;
    /// Makes a hard link to `key` named `name` in `dir`.
    fn link(&self, ctx: &Ctx, key: &FileKey, dir: &FileKey, name: &[u8]) -> VfsResult<()>;
    /// Lists entries with a cookie greater than `after` (0: from the start), at most `max`,
    /// without `.` and `..`; with `plus`, each entry carries its key and attributes.
    fn readdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        after: u64,
        max: usize,
        plus: bool,
    ) -> VfsResult<DirPage>;
    /// Space figures of the file system holding `key`.
    fn fsstat(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<FsStat>;
    /// Makes the data written to `key` durable.
    fn commit(&self, ctx: &Ctx, key: &FileKey, offset: u64, count: u32) -> VfsResult<()>;
    /// Key of the parent of directory `dir` (the root for the root).
    fn parent(&self, ctx: &Ctx, dir: &FileKey) -> VfsResult<(FileKey, Attr)> {
        self.lookup(ctx, dir, b"..")
    }
    /// Whether calls on `key` would first need a [`Backend::search`]: the backend does not
    /// know where its object is (a key from before a restart, or of an object moved behind
    /// its back). Must be cheap and must not walk anything: the server asks it on a
    /// connection's task, before any other call on the key, and runs the search on its
    /// blocking pool, within limits and a cap per client. [`VfsError::Stale`] for a key
    /// recently searched for in vain. Until a search finds it, calls on such a key answer
    /// [`VfsError::Stale`]. The default: no key ever needs one.
    fn needs_search(&self, key: &FileKey) -> VfsResult<bool> {
        let _ = key;
        Ok(false)
    }
    /// Searches for the object of `key` (see [`Backend::needs_search`]), reading no more
    /// directories than `limits` allow and giving up at its deadline. May take long: only
    /// ever called on a blocking thread. The default finds every key at once.
    fn search(&self, key: &FileKey, limits: &SearchLimits) -> VfsResult<Searched> {
        let _ = (key, limits);
        Ok(Searched::Found)
    }
    /// Keeps the regular file `key` reachable by its key after its last name is removed
    /// (GETATTR shows no links; READ, WRITE and COMMIT still work), until the returned
    /// hold is dropped: what an NFSv4 server needs to promise
    /// `OPEN4_RESULT_PRESERVE_UNLINKED` (RFC 8881 18.16.4) while the file is open. `None`
    /// when this backend cannot (the default), when `key` is not a regular file, or when
    /// it keeps as many files as it may.
    fn keep_open(&self, _key: &FileKey) -> VfsResult<Option<Kept>> {
        Ok(None)
    }
    /// A descriptor of regular file `key` (`O_PATH` is enough) through which the server
    /// watches it for changes made beside it while a delegation is held on it (inotify of
    /// the descriptor's `/proc/self/fd` link; see `rnfs_server::v4::outside`). `None` (the
    /// default) when nothing but the server can change this backend's files (memory), or
    /// when `key` is not a regular file.
    fn watch_fd(&self, _key: &FileKey) -> VfsResult<Option<std::os::fd::OwnedFd>> {
        Ok(None)
    }
    /// Makes everything written so far durable (at shutdown).
    fn sync_all(&self) -> VfsResult<()> {
        Ok(())
    }
    /// Finds the first byte of `what` at or after `offset` in regular file `key`, as
    /// `lseek(2)` SEEK_DATA/SEEK_HOLE do, the caller needing read permission (NFSv4.2 SEEK,
    /// RFC 7862 section 15.11.3). Every file ends with a virtual hole at its size: a search
    /// that meets no `what` before it answers the size with `eof`. [`VfsError::Nxio`] when
    /// `offset` is at or past the size (nothing to find there). A backend without holes
    /// may answer `offset` for data and the size for a hole. Not supported by default.
    fn seek(
        &self,
        _ctx: &Ctx,
        _key: &FileKey,
        _offset: u64,
        _what: Content,
    ) -> VfsResult<SoughtAt> {
        Err(VfsError::NotSupp)
    }
    /// Reserves storage for `[offset, offset + len)` of regular file `key`, so that writes
    /// there cannot fail for lack of space; the data does not change, and the size grows to
    /// `offset + len` if it is smaller (NFSv4.2 ALLOCATE, RFC 7862 section 15.1.3: the
    /// `fallocate(2)` of mode 0). Needs write permission; `len > 0` (else
    /// [`VfsError::Inval`]); [`VfsError::NoSpc`] changes nothing, [`VfsError::FBig`] when
    /// the end is past the largest size. Not supported by default.
    fn allocate(&self, _ctx: &Ctx, _key: &FileKey, _offset: u64, _len: u64) -> VfsResult<()> {
        Err(VfsError::NotSupp)
    }
    /// Punches a hole over `[offset, offset + len)` of regular file `key`: the range reads
    /// as zeros and its storage may be freed; the size does not change, and what lies past
    /// it is left alone (NFSv4.2 DEALLOCATE, RFC 7862 section 15.4.3: `fallocate(2)` with
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`). Needs write permission; `len > 0`
    /// (else [`VfsError::Inval`]). Not supported by default.
    fn deallocate(&self, _ctx: &Ctx, _key: &FileKey, _offset: u64, _len: u64) -> VfsResult<()> {
        Err(VfsError::NotSupp)
    }
    /// Copies bytes from `[src_off, src_off + len)` of regular file `src` to `dst_off` of
    /// regular file `dst` (NFSv4.2 COPY within the server, RFC 7862 section 15.2.3, as
    /// `copy_file_range(2)` does): the caller needs read permission on `src` and write
    /// permission on `dst`, whose size grows to the end of what was copied; holes of `src`
    /// read as zeros in `dst`. Returns how many bytes were copied: 0 only when `src_off` is
    /// at or past the end of `src`, otherwise possibly fewer than `len` (the end of `src`,
    /// or a backend that copies in pieces): callers loop. The ranges of one file must not
    /// overlap (the caller checks; [`VfsError::Inval`] where the backend sees it).
    /// [`VfsError::FBig`] when `dst_off` plus what is to be copied passes the largest size.
    /// Not supported by default.
    fn copy_range(
        &self,
        _ctx: &Ctx,
        _src: &FileKey,
        _src_off: u64,
        _dst: &FileKey,
        _dst_off: u64,
        _len: u64,
    ) -> VfsResult<u64> {
        Err(VfsError::NotSupp)
    }
    /// Makes `[dst_off, dst_off + len)` of regular file `dst` share the storage of
    /// `[src_off, src_off + len)` of regular file `src` (NFSv4.2 CLONE, RFC 7862 section
    /// 15.13.3, the `FICLONERANGE` ioctl): all of it or nothing; `len` 0 is to the end of
    /// `src`. Permissions as [`Backend::copy_range`]. [`VfsError::NotSupp`] where the
    /// file system cannot share storage (or not between these two files),
    /// [`VfsError::Inval`] for a range it cannot clone (not aligned to
    /// [`Limits::clone_blksize`], past the end of `src`, overlapping in one file). Not
    /// supported by default.
    fn clone_range(
        &self,
        _ctx: &Ctx,
        _src: &FileKey,
        _src_off: u64,
        _dst: &FileKey,
        _dst_off: u64,
        _len: u64,
    ) -> VfsResult<()> {
        Err(VfsError::NotSupp)
    }
    /// Whether an object with attributes `attr` can hold user extended attributes
    /// (NFSv4.2 `xattr_support`, RFC 8276 section 8.1: answered per object). Must be cheap:
    /// GETATTR asks it. False by default.
    fn xattr_support(&self, _attr: &Attr) -> bool {
        false
    }
    /// The value of user extended attribute `name` of `key` (NFSv4.2 GETXATTR, RFC 8276
    /// section 8.4.1). `name` is the attribute's name without a namespace (the local
    /// backend stores it as `user.` + `name`), at most [`XATTR_NAME_MAX`] bytes; the caller
    /// needs read permission. [`VfsError::NoXattr`] when there is none. Not supported by
    /// default.
    fn getxattr(&self, _ctx: &Ctx, _key: &FileKey, _name: &[u8]) -> VfsResult<Vec<u8>> {
        Err(VfsError::NotSupp)
    }
    /// Sets user extended attribute `name` of `key` to `value` (at most
    /// [`XATTR_SIZE_MAX`] bytes, else [`VfsError::Xattr2Big`]) as `how` says (NFSv4.2
    /// SETXATTR, RFC 8276 section 8.4.2): [`VfsError::Exist`] for [`XattrSet::Create`] of
    /// one that exists, [`VfsError::NoXattr`] for [`XattrSet::Replace`] of one that does
    /// not. Needs write permission; changes the ctime and the change attribute. Not
    /// supported by default.
    fn setxattr(
        &self,
        _ctx: &Ctx,
        _key: &FileKey,
        _name: &[u8],
        _value: &[u8],
        _how: XattrSet,
    ) -> VfsResult<()> {
        Err(VfsError::NotSupp)
    }
    /// The names of the user extended attributes of `key`, without their namespace,
    /// sorted, at most [`XATTR_LIST_MAX`] bytes of names with one byte each besides
    /// (NFSv4.2 LISTXATTRS, RFC 8276 section 8.4.3). Needs read permission. Not supported
    /// by default.
    fn listxattrs(&self, _ctx: &Ctx, _key: &FileKey) -> VfsResult<Vec<Vec<u8>>> {
        Err(VfsError::NotSupp)
    }
    /// Removes user extended attribute `name` of `key` (NFSv4.2 REMOVEXATTR, RFC 8276
    /// section 8.4.4); [`VfsError::NoXattr`] when there is none. Needs write permission.
    /// Not supported by default.
    fn removexattr(&self, _ctx: &Ctx, _key: &FileKey, _name: &[u8]) -> VfsResult<()> {
        Err(VfsError::NotSupp)
    }
}

/// Longest value of an extended attribute (Linux's `XATTR_SIZE_MAX`; NFSv4.2's
/// `xattrvalue4` is bounded by the same figure on decode).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Longest name of a user extended attribute, without its namespace: Linux's
/// `XATTR_NAME_MAX` (255) less the 5 bytes of `user.`.
pub const XATTR_NAME_MAX: usize = 250;
/// Most bytes the names of one file's extended attributes take, one byte each besides
/// (Linux's `XATTR_LIST_MAX`, with the `user.` prefixes).
pub const XATTR_LIST_MAX: usize = 65536;

/// How [`Backend::setxattr`] treats an attribute that exists or not (RFC 8276
/// `setxattr_option4`, Linux's `XATTR_CREATE`/`XATTR_REPLACE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrSet {
    /// Create it or replace its value.
    Either,
    /// Create it: [`VfsError::Exist`] if it exists.
    Create,
    /// Replace its value: [`VfsError::NoXattr`] if it does not exist.
    Replace,
}

/// Checks the name of an extended attribute (without namespace) a backend is given:
/// [`VfsError::Inval`] for an empty one or one with a NUL, [`VfsError::NameTooLong`]
/// past [`XATTR_NAME_MAX`].
pub fn check_xattr_name(name: &[u8]) -> VfsResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(VfsError::Inval);
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(VfsError::NameTooLong);
    }
    Ok(())
}

/// Checks that a name is a single component the server may pass to a backend.
pub fn check_name(name: &[u8], name_max: u32) -> VfsResult<()> {
    if name.is_empty() {
        return Err(VfsError::NoEnt);
    }
    if name.len() > name_max as usize {
        return Err(VfsError::NameTooLong);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(VfsError::Inval);
    }
    Ok(())
}

/// Checks a name for an operation that creates or removes it: `.` and `..` are refused.
pub fn check_new_name(name: &[u8], name_max: u32) -> VfsResult<()> {
    check_name(name, name_max)?;
    if name == b"." || name == b".." {
        return Err(VfsError::Exist);
    }
    Ok(())
}
