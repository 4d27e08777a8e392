//! A backend serving a directory of the host.
//!
//! **File keys** are `(device, inode, generation)`, where the generation comes from the birth
//! time when the file system records one: a key stays valid across server restarts and goes
//! stale when its file is removed (even if the inode number is reused).
//!
//! **Finding a file from its key** uses a map from inode to (parent, name), filled by every
//! lookup, listing and create. A key the map does not know (after a restart, or after a
//! rename done behind our back) is found by walking the export, never inside a call: the
//! server asks [`Backend::needs_search`] first (cheap) and runs [`Backend::search`] on its
//! blocking pool, bounded in directories read and in time; until then calls on the key
//! answer STALE. A key searched for in vain is remembered as stale for a few seconds, so
//! replaying it does not make the server walk again.
//!
//! **The export boundary**: every path is opened relative to the export's root descriptor
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, and every
//! operation on the final component uses a call that does not follow symbolic links
//! (`*at` with `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`). A symlink planted anywhere, even by a
//! client racing with us, cannot lead outside the export.
//!
//! **Mounts inside the export** (a bind mount, another file system) are not crossed unless
//! the export says `crossmnt` ([`LocalFs::cross_mounts`]). An object belongs to the export
//! when it is on the root's mount: same device and same mount id (`statx` `STATX_MNT_ID`,
//! Linux 5.8; the device alone where the kernel does not report it, and a bind mount of
//! the same file system has the same device). Nothing outside is ever named: LOOKUP of a
//! mount point answers XDEV (knfsd shows the covered directory instead, which we cannot
//! open without a mount of our own; an error that says "another file system" tells the
//! user what is there, an empty directory would suggest lost data), READDIRPLUS gives it
//! no handle, and no key of an object behind it is ever issued or remembered, so none is
//! ever found (the walk opens with `RESOLVE_NO_XDEV`); every directory and file opened for
//! a call is checked once more after the open.
//!
//! **Permissions**: when the server runs as root, each call runs with the caller's uid,
//! gid and groups on its thread (`setresuid`/`setresgid`/`setgroups` are per-thread system
//! calls on Linux), so the host kernel enforces permissions exactly as for a local process.
//! As knfsd does, the owner of a file may read, write and truncate it whatever its mode (a
//! file created read-only stays writable through the descriptor that created it).
//!
//! **Open descriptors are cached** (see [`crate::fdcache`]): directories as `O_PATH`
//! descriptors, so that a call on a file of a hot directory does not walk the export from
//! its root, and regular files open for I/O, so that READ, WRITE and COMMIT do not locate,
//! open and close the file each time. As in knfsd's file cache, a cached file is opened as
//! the server (read-only, or read-write once it is written) and serves every caller; each
//! call then checks the caller's permission on that very inode (`faccessat` of the
//! descriptor's `/proc/self/fd` link with the caller's identity, so mode bits, ACLs and
//! security modules decide as for an `open` by the caller), with the owner override above.
//! When the server cannot open the file itself (read-only file system, a running program,
//! an append-only file, or no permission when not running as root), the call opens it as
//! the caller, for that call only, as before. Each hit is checked with a `statx` of the
//! descriptor (a removed object has no links left); REMOVE, RMDIR and RENAME drop the
//! entries of the objects they unlink, and idle entries are closed after a few seconds.

mod xattr;

use crate::fdcache::FdCache;
use crate::{
    cookie, Attr, Backend, ChangeKind, Content, CreateMode, Creds, Ctx, DirEntry, DirPage, FileKey,
    FileType, FsStat, Kept, Limits, ReadDone, SearchLimits, Searched, SetAttr, SetTime, SoughtAt,
    SpecialKind, Stability, Timestamp, VfsError, VfsResult,
};
use parking_lot::Mutex;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

type Id = (u64, u64); // (dev, ino)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyParts {
    dev: u64,
    ino: u64,
    gen: u32,
}

impl KeyParts {
    fn encode(self) -> FileKey {
        let mut v = Vec::with_capacity(20);
        v.extend_from_slice(&self.dev.to_be_bytes());
        v.extend_from_slice(&self.ino.to_be_bytes());
        v.extend_from_slice(&self.gen.to_be_bytes());
        FileKey(v)
    }
    fn decode(k: &FileKey) -> VfsResult<Self> {
        let b = &k.0;
        if b.len() != 20 {
            return Err(VfsError::BadHandle);
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let mut g = [0u8; 4];
        g.copy_from_slice(&b[16..20]);
        Ok(Self {
            dev: u64_at(0),
            ino: u64_at(8),
            gen: u32::from_be_bytes(g),
        })
    }
    fn id(self) -> Id {
        (self.dev, self.ino)
    }
}

fn dev_of(s: &Statx) -> u64 {
    (u64::from(s.stx_dev_major) << 32) | u64::from(s.stx_dev_minor)
}

fn gen_of(s: &Statx) -> u32 {
    if s.stx_mask & StatxFlags::BTIME.bits() != 0 {
        let t = &s.stx_btime;
        (t.tv_sec as u32).wrapping_mul(0x9e37_79b9) ^ t.tv_nsec
    } else {
        0
    }
}

fn parts_of(s: &Statx) -> KeyParts {
    KeyParts {
        dev: dev_of(s),
        ino: s.stx_ino,
        gen: gen_of(s),
    }
}

fn ftype_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFIFO => FileType::Fifo,
        _ => FileType::Regular,
    }
}

fn ts(t: &rustix::fs::StatxTimestamp) -> Timestamp {
    Timestamp {
        secs: t.tv_sec,
        nsecs: t.tv_nsec,
    }
}

const STATX_WANT: StatxFlags = StatxFlags::BASIC_STATS
    .union(StatxFlags::BTIME)
    .union(StatxFlags::MNT_ID);

/// The mount id of `s`, if the kernel reported it (Linux 5.8 and later).
fn mnt_of(s: &Statx) -> Option<u64> {
    (s.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(s.stx_mnt_id)
}

fn statx_at(dir: BorrowedFd<'_>, name: &[u8]) -> VfsResult<Statx> {
    let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
    Ok(rustix::fs::statx(
        dir,
        OsStr::from_bytes(name),
        flags,
        STATX_WANT,
    )?)
}

fn statx_fd(fd: BorrowedFd<'_>) -> VfsResult<Statx> {
    Ok(rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        STATX_WANT,
    )?)
}

/// Appends up to `count` bytes of `file` from `offset` to `buf`, fewer only at the end of
/// the file, reading straight into the spare capacity (no zeroing, no copy). With `nowait`
/// it fails with EAGAIN rather than wait for data that is not in the page cache (and with
/// EOPNOTSUPP where the file system cannot tell). On error `buf` is left as it was.
fn pread_append(
    file: &std::fs::File,
    offset: u64,
    count: usize,
    buf: &mut Vec<u8>,
    nowait: bool,
) -> Result<(), rustix::io::Errno> {
    let start = buf.len();
    let end = start + count;
    buf.reserve_exact(count);
    while buf.len() < end {
        let at = offset.saturating_add((buf.len() - start) as u64);
        let r = if nowait {
            pread_nowait(file.as_fd(), buf, end, at)
        } else {
            rustix::io::pread(file, rustix::buffer::spare_capacity(buf), at)
        };
        match r {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    buf.truncate(end); // the spare capacity may have been larger than asked
    Ok(())
}

/// One `preadv2(RWF_NOWAIT)` at `at` into the spare capacity of `buf`, up to length `end`;
/// `buf`'s length grows by the bytes read. rustix's `preadv2` wants initialized slices,
/// which would mean zeroing the buffer first, hence libc.
#[allow(unsafe_code)]
fn pread_nowait(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    end: usize,
    at: u64,
) -> Result<usize, rustix::io::Errno> {
    let len = end
        .saturating_sub(buf.len())
        .min(buf.capacity() - buf.len());
    let at = libc::off_t::try_from(at).map_err(|_| rustix::io::Errno::INVAL)?;
    let iov = libc::iovec {
        iov_base: buf.spare_capacity_mut().as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: the one iovec covers `len` bytes of `buf`'s spare capacity, which `buf`
    // owns and nothing else borrows during the call; the kernel writes at most `len` bytes
    // there, and the `n` it reports written are initialized when `set_len` counts them.
    let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
    let Ok(n) = usize::try_from(n) else {
        let raw = std::io::Error::last_os_error().raw_os_error();
        return Err(rustix::io::Errno::from_raw_os_error(
            raw.unwrap_or(libc::EIO),
        ));
    };
    let n = n.min(len);
    // SAFETY: see above: the first `n` spare bytes were written by the kernel.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Most bytes one `copy_file_range(2)` is asked for: a bound on how long one call holds
/// the thread (the kernel copies in the page cache, or shares extents, and may copy less).
const COPY_STEP: usize = 64 << 20;

/// Most bytes [`copy_through`] moves in one call, through a buffer of that size.
const COPY_BUF: usize = 1 << 20;

/// Copies up to `len` bytes from `src` at `src_off` to `dst` at `dst_off` with
/// `copy_file_range(2)`, looping on short copies until `len` is done or the end of `src`;
/// the data does not pass through this process. Where the kernel cannot copy between the
/// two (EXDEV: two file systems; EOPNOTSUPP, ENOSYS), and nothing was copied yet, one
/// piece of at most [`COPY_BUF`] goes through a buffer instead ([`copy_through`]).
fn copy_file_range_all(
    src: &std::fs::File,
    src_off: u64,
    dst: &std::fs::File,
    dst_off: u64,
    len: u64,
) -> VfsResult<u64> {
    use rustix::io::Errno;
    let mut done = 0u64;
    while done < len {
        let step = usize::try_from(len - done).map_or(COPY_STEP, |n| n.min(COPY_STEP));
        let mut s = src_off.checked_add(done).ok_or(VfsError::FBig)?;
        let mut d = dst_off.checked_add(done).ok_or(VfsError::FBig)?;
        match rustix::fs::copy_file_range(src, Some(&mut s), dst, Some(&mut d), step) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::OPNOTSUPP | Errno::NOSYS) if done == 0 => {
                return copy_through(src, src_off, dst, dst_off, len);
            }
            // What was copied stays copied: the caller learns of the error on its next call.
            Err(_) if done > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Copies at most [`COPY_BUF`] bytes of `len` through a buffer: read, then written.
fn copy_through(
    src: &std::fs::File,
    src_off: u64,
    dst: &std::fs::File,
    dst_off: u64,
    len: u64,
) -> VfsResult<u64> {
    use std::os::unix::fs::FileExt;
    let n = usize::try_from(len).map_or(COPY_BUF, |n| n.min(COPY_BUF));
    let mut buf = Vec::new();
    pread_append(src, src_off, n, &mut buf, false)?;
    if buf.is_empty() {
        return Ok(0);
    }
    dst_off
        .checked_add(buf.len() as u64)
        .ok_or(VfsError::FBig)?;
    dst.write_all_at(&buf, dst_off)?;
    Ok(buf.len() as u64)
}

/// `ioctl(dst, FICLONERANGE)`: `[dst_off, dst_off + len)` of `dst` shares the storage of
/// `[src_off, src_off + len)` of `src` (`len` 0: to the end of `src`). Neither libc nor
/// rustix has this request, hence its number and argument written out here.
#[allow(unsafe_code)]
fn ficlonerange(
    src: BorrowedFd<'_>,
    src_off: u64,
    dst: BorrowedFd<'_>,
    dst_off: u64,
    len: u64,
) -> Result<(), rustix::io::Errno> {
    /// `struct file_clone_range` of `<linux/fs.h>`.
    #[repr(C)]
    struct FileCloneRange {
        src_fd: i64,
        src_offset: u64,
        src_length: u64,
        dest_offset: u64,
    }
    /// `_IOW(0x94, 13, struct file_clone_range)`: write direction (1 << 30), the size of
    /// the argument (32 << 16), the type (0x94 << 8) and number 13, as the architectures
    /// with the generic ioctl layout (x86, arm, riscv) encode it.
    const FICLONERANGE: u32 = 0x4020_940d;
    let arg = FileCloneRange {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        src_length: len,
        dest_offset: dst_off,
    };
    // SAFETY: FICLONERANGE reads one `struct file_clone_range`, which `arg` is (same
    // layout, `repr(C)`, alive for the call); the kernel writes nothing through it.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONERANGE as _, &arg) };
    if r < 0 {
        let raw = std::io::Error::last_os_error().raw_os_error();
        return Err(rustix::io::Errno::from_raw_os_error(
            raw.unwrap_or(libc::EIO),
        ));
    }
    Ok(())
}

/// Checks a name an operation removes or renames: `.` and `..` are invalid there.
fn check_entry_name(name: &[u8]) -> VfsResult<()> {
    crate::check_new_name(name, 255).map_err(|e| {
        if e == VfsError::Exist {
            VfsError::Inval
        } else {
            e
        }
    })
}

/// Where an object is: a directory descriptor and its name there (`.` for the root).
struct Loc {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    stx: Statx,
}

impl Loc {
    fn name(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }
    fn is_dir(&self) -> bool {
        u32::from(self.stx.stx_mode) & libc::S_IFMT == libc::S_IFDIR
    }
}

/// A cached directory listing, in cookie order.
struct Listing {
    mtime: Timestamp,
    ctime: Timestamp,
    /// Whether the directory's times were already in the past when it was read, so any
    /// later change must show in them.
    settled: bool,
    read_at: Instant,
    entries: Vec<(u64, Vec<u8>, u64)>, // (cookie, name, ino)
}

/// Runs the rest of the calling thread's work with another identity (see module docs).
struct CredGuard {
    active: bool,
}

impl CredGuard {
    fn switch(enabled: bool, c: &Creds) -> VfsResult<Self> {
        use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        if !enabled {
            return Ok(Self { active: false });
        }
        let mut groups: Vec<rustix::process::Gid> = Vec::with_capacity(c.gids.len() + 1);
        groups.extend(c.gids.iter().map(|&g| rustix::process::Gid::from_raw(g)));
        let fail = |e: rustix::io::Errno| {
            tracing::error!(error = %e, "cannot switch credentials");
            VfsError::ServerFault
        };
        let guard = Self { active: true };
        set_thread_groups(&groups).map_err(fail)?;
        set_thread_res_gid(None, rustix::process::Gid::from_raw(c.gid), None).map_err(fail)?;
        set_thread_res_uid(None, rustix::process::Uid::from_raw(c.uid), None).map_err(fail)?;
        Ok(guard)
    }
}

impl Drop for CredGuard {
    fn drop(&mut self) {
        use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        if self.active {
            // Restoring to root cannot fail while the saved uid is 0, which switch() kept.
            let r = set_thread_res_uid(None, rustix::process::Uid::ROOT, None)
                .and_then(|()| set_thread_res_gid(None, rustix::process::Gid::ROOT, None))
                .and_then(|()| set_thread_groups(&[]));
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot restore credentials; aborting");
                std::process::abort();
            }
        }
    }
}

/// A regular file open for I/O, shared by the calls that use it.
struct OpenFile {
    file: std::fs::File,
    /// Opened read-write (else read-only).
    writable: bool,
}

/// What a call does with a file: decides the open mode and the permission checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
    /// COMMIT: read or write permission.
    Sync,
}

/// The descriptor caches, shared with the thread that closes idle entries.
struct Caches {
    dirs: FdCache<OwnedFd>,
    files: FdCache<OpenFile>,
}

/// Closes cached descriptors unused for this long.
const IDLE_CLOSE: Duration = Duration::from_secs(3);

/// Closes idle descriptors every second until the backend is dropped.
fn spawn_sweeper(c: &Arc<Caches>) {
    let w: Weak<Caches> = Arc::downgrade(c);
    let r = std::thread::Builder::new()
        .name("rnfs-fdcache".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(c) = w.upgrade() else { return };
            c.files.sweep(IDLE_CLOSE);
            c.dirs.sweep(IDLE_CLOSE);
            // Files removed behind our back: free their space now, not when idle.
            c.files
                .retain(|f| statx_fd(f.file.as_fd()).is_ok_and(|s| s.stx_nlink > 0));
        });
    if let Err(e) = r {
        // The caches stay bounded; only idle entries stay open longer.
        tracing::warn!(error = %e, "cannot start the descriptor cache sweeper");
    }
}

/// A directory of the host, exported (see the module documentation).
pub struct LocalFs {
    root: Arc<OwnedFd>,
    root_parts: KeyParts,
    caches: Arc<Caches>,
    names: Mutex<HashMap<Id, (Id, Vec<u8>)>>,
    stale: Mutex<HashMap<FileKey, Instant>>,
    listings: Mutex<HashMap<Id, Arc<Listing>>>,
    unlink_locks: [Mutex<()>; UNLINK_STRIPES],
    switch_creds: bool,
    /// The process runs as uid 0, gid 0, with no supplementary group but 0.
    root_rests: bool,
    read_only: bool,
    /// The file system answers `RWF_NOWAIT` reads (cleared at the first EOPNOTSUPP: tmpfs
    /// does not, for one); see [`Backend::try_read_into`].
    nowait_reads: AtomicBool,
    /// The directory is on tmpfs or ramfs (the export never crosses into another file
    /// system: `RESOLVE_NO_XDEV`), so data calls never wait for a device.
    in_memory: bool,
    /// The mount id of the root, when the kernel reports mount ids.
    root_mnt: Option<u64>,
    /// Mounts inside the export are crossed (`crossmnt`).
    crossmnt: bool,
    /// The block size of the root's file system.
    blksize: u32,
    /// Files kept reachable after their last name is removed ([`Backend::keep_open`]).
    kept: Arc<Mutex<HashMap<Id, KeptFile>>>,
    /// Most files kept at once.
    kept_max: usize,
}

/// A file kept by [`Backend::keep_open`]: an `O_PATH` descriptor, which keeps the inode
/// (and its data) alive after its last name goes, and how many holds there are on it.
struct KeptFile {
    gen: u32,
    fd: Arc<OwnedFd>,
    holds: u32,
}

/// One hold on a kept file: dropping the last closes the descriptor, and the file system
/// frees an unlinked file's space.
struct KeptHold {
    kept: Weak<Mutex<HashMap<Id, KeptFile>>>,
    id: Id,
}

impl Drop for KeptHold {
    fn drop(&mut self) {
        let Some(kept) = self.kept.upgrade() else {
            return;
        };
        let mut m = kept.lock();
        if let Some(e) = m.get_mut(&self.id) {
            e.holds = e.holds.saturating_sub(1);
            if e.holds == 0 {
                m.remove(&self.id);
            }
        }
    }
}

const MAX_NAMES: usize = 4 << 20;
/// Most bytes one READ returns (the server asks for far less).
const MAX_READ: u32 = 1 << 24;
const MAX_LISTINGS: usize = 256;
const UNLINK_STRIPES: usize = 64;
/// How long a key searched for in vain is answered STALE without another search.
const STALE_MEMORY: Duration = Duration::from_secs(5);
/// Most keys remembered as stale.
const STALE_KEYS: usize = 65536;
/// Most files kept at once by [`Backend::keep_open`]: a descriptor each, so never more than
/// a sixteenth of the process's limit either (as each descriptor cache), which leaves the
/// connections theirs.
const KEPT_FILES: usize = 65536;

/// The times SETATTR sets, for `utimensat` (`None`: it sets neither).
fn timestamps(set: &SetAttr) -> Option<rustix::fs::Timestamps> {
    if set.atime == SetTime::Keep && set.mtime == SetTime::Keep {
        return None;
    }
    let conv = |t: SetTime| match t {
        SetTime::Keep => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        SetTime::Now => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        SetTime::At(t) => rustix::fs::Timespec {
            tv_sec: t.secs,
            tv_nsec: t.nsecs.into(),
        },
    };
    Some(rustix::fs::Timestamps {
        last_access: conv(set.atime),
        last_modification: conv(set.mtime),
    })
}

impl LocalFs {
    /// Opens `path` for export. When the process runs as root, calls run with each
    /// caller's identity; otherwise every file is accessed as the server's user.
    pub fn new(path: &Path, read_only: bool) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stx = rustix::fs::statx(&root, "", AtFlags::EMPTY_PATH, STATX_WANT)?;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
        let in_memory = rustix::fs::fstatfs(&root)
            .is_ok_and(|s| matches!(s.f_type as i64, TMPFS_MAGIC | RAMFS_MAGIC));
        let switch_creds = rustix::process::geteuid().is_root();
        let root_rests = switch_creds
            && rustix::process::getegid().is_root()
            && rustix::process::getgroups().is_ok_and(|g| g.iter().all(|x| x.is_root()));
        // Clients apply their own umask; the server must create with the modes it is given.
        rustix::process::umask(Mode::empty());
        // Each cache holds at most 256 descriptors, and never more than a sixteenth of the
        // process's limit, so connections never run short of descriptors.
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let cap = usize::try_from(nofile / 16).unwrap_or(256).clamp(8, 256);
        let caches = Arc::new(Caches {
            dirs: FdCache::new(cap),
            files: FdCache::new(cap),
        });
        spawn_sweeper(&caches);
        Ok(Self {
            root: Arc::new(root),
            root_parts: parts_of(&stx),
            caches,
            names: Mutex::new(HashMap::new()),
            stale: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            unlink_locks: std::array::from_fn(|_| Mutex::new(())),
            switch_creds,
            root_rests,
            read_only,
            nowait_reads: AtomicBool::new(true),
            in_memory,
            blksize: stx.stx_blksize.max(1),
            root_mnt: mnt_of(&stx),
            crossmnt: false,
            kept: Arc::default(),
            kept_max: usize::try_from(nofile / 16)
                .unwrap_or(KEPT_FILES)
                .clamp(8, KEPT_FILES),
        })
    }

    /// Crosses mounts inside the export (the `crossmnt` export option): bind mounts and
    /// other file systems below the root are served as part of it, each file system with
    /// its own fsid (so a client sees where one ends, as with knfsd). Handles of files
    /// behind a crossed mount are found again after a restart only if something looks
    /// them up again (the walk that finds unknown keys stays on the root's mount).
    pub fn cross_mounts(mut self, yes: bool) -> Self {
        self.crossmnt = yes;
        // Data behind a mount may live on a device: not "in memory" any more.
        self.in_memory &= !yes;
        self
    }

    /// Whether an object with attributes `s` belongs to the export: on the root's mount
    /// (see the module documentation), or anywhere below the root with `crossmnt`.
    fn inside(&self, s: &Statx) -> bool {
        if self.crossmnt {
            return true;
        }
        dev_of(s) == self.root_parts.dev
            && match (self.root_mnt, mnt_of(s)) {
                (Some(root), Some(m)) => root == m,
                _ => true,
            }
    }

    fn remember(&self, parent: Id, name: &[u8], child: Id) {
        if name == b"." || name == b".." {
            return;
        }
        let mut m = self.names.lock();
        if m.len() >= MAX_NAMES {
            m.clear();
        }
        m.insert(child, (parent, name.to_vec()));
    }

    fn forget(&self, child: Id) {
        self.names.lock().remove(&child);
    }

    /// The path of `id` below the root, from the name map, if it knows one, and the id of
    /// its parent.
    fn cached_path(&self, id: Id) -> Option<(Vec<Vec<u8>>, Id)> {
        let m = self.names.lock();
        let parent = m.get(&id)?.0;
        let mut comps = Vec::new();
        let mut cur = id;
        while cur != self.root_parts.id() {
            let (p, n) = m.get(&cur)?;
            comps.push(n.clone());
            cur = *p;
            if comps.len() > 4096 {
                return None; // a cycle left by concurrent renames: fall back to a search
            }
        }
        comps.reverse();
        Some((comps, parent))
    }

    fn open_beneath(&self, comps: &[Vec<u8>], flags: OFlags) -> VfsResult<OwnedFd> {
        let mut p = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(c);
        }
        if p.is_empty() {
            p.push(b'.');
        }
        let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        if !self.crossmnt {
            resolve |= ResolveFlags::NO_XDEV;
        }
        Ok(rustix::fs::openat2(
            &self.root,
            OsStr::from_bytes(&p),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )?)
    }

    fn try_locate(&self, k: KeyParts) -> VfsResult<Option<Loc>> {
        if k.id() == self.root_parts.id() {
            if k.gen != self.root_parts.gen {
                return Err(VfsError::Stale);
            }
            let stx = statx_fd(self.root.as_fd())?;
            return Ok(Some(Loc {
                dir: self.root.clone(),
                name: b".".to_vec(),
                stx,
            }));
        }
        let Some((mut comps, parent)) = self.cached_path(k.id()) else {
            return Ok(None);
        };
        let Some(name) = comps.pop() else {
            return Ok(None);
        };
        let dir = if comps.is_empty() {
            self.root.clone()
        } else if let Some(d) = self.caches.dirs.get_any(parent) {
            // Any directory of the export that holds the name with this key will do.
            d
        } else {
            let epoch = self.caches.dirs.epoch();
            let d = match self.open_beneath(&comps, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(d) => Arc::new(d),
                Err(_) => return Ok(None),
            };
            if let Ok(s) = statx_fd(d.as_fd()) {
                let p = parts_of(&s);
                self.caches.dirs.insert(p.id(), p.gen, d.clone(), epoch);
            }
            d
        };
        match statx_at(dir.as_fd(), &name) {
            Ok(stx) if parts_of(&stx) == k => Ok(Some(Loc { dir, name, stx })),
            _ => Ok(None),
        }
    }

    /// Walks the export breadth-first, filling the name map, until `want` is seen, at most
    /// `limits.max_dirs` directories read and no later than its deadline.
    fn walk(&self, want: Id, limits: &SearchLimits) -> Searched {
        let mut queue: std::collections::VecDeque<(Id, Vec<Vec<u8>>)> = Default::default();
        queue.push_back((self.root_parts.id(), Vec::new()));
        // Directories read or queued: the queue never holds more than the walk may read.
        let mut taken = 1usize;
        let mut complete = true;
        while let Some((dir_id, comps)) = queue.pop_front() {
            if Instant::now() >= limits.deadline {
                return Searched::GaveUp;
            }
            let Ok(fd) = self.open_beneath(&comps, OFlags::RDONLY | OFlags::DIRECTORY) else {
                continue;
            };
            let Ok(dir) = rustix::fs::Dir::new(fd) else {
                continue;
            };
            let mut found = false;
            for ent in dir {
                let Ok(ent) = ent else { break };
                let name = ent.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let id = (dir_id.0, ent.ino());
                self.remember(dir_id, name, id);
                if id == want {
                    found = true;
                }
                if ent.file_type() == rustix::fs::FileType::Directory {
                    if taken >= limits.max_dirs {
                        complete = false;
                        continue;
                    }
                    taken += 1;
                    let mut c = comps.clone();
                    c.push(name.to_vec());
                    queue.push_back((id, c));
                }
            }
            if found {
                return Searched::Found;
            }
        }
        if complete {
            Searched::NotFound
        } else {
            Searched::GaveUp
        }
    }

    /// Whether `key` was searched for in vain a short while ago.
    fn remembered_stale(&self, key: &FileKey) -> bool {
        let mut st = self.stale.lock();
        if st.get(key).is_some_and(|t| t.elapsed() < STALE_MEMORY) {
            return true;
        }
        if st.len() >= STALE_KEYS / 2 {
            st.retain(|_, t| t.elapsed() < STALE_MEMORY);
        }
        false
    }

    /// Where the object of `key` is, without searching: a key the name map does not place
    /// is stale here (the server searches first: [`Backend::needs_search`]).
    fn locate(&self, key: &FileKey) -> VfsResult<Loc> {
        let k = KeyParts::decode(key)?;
        if k.dev != self.root_parts.dev && !self.crossmnt {
            return Err(VfsError::Stale);
        }
        self.try_locate(k)?.ok_or(VfsError::Stale)
    }

    /// The descriptor of `k` if the file is kept ([`Backend::keep_open`]).
    fn kept_fd(&self, k: KeyParts) -> Option<Arc<OwnedFd>> {
        let m = self.kept.lock();
        m.get(&k.id())
            .filter(|e| e.gen == k.gen)
            .map(|e| e.fd.clone())
    }

    /// The attributes of a kept file, linked or not.
    fn kept_attr(&self, key: &FileKey) -> Option<Statx> {
        let k = KeyParts::decode(key).ok()?;
        let fd = self.kept_fd(k)?;
        statx_fd(fd.as_fd()).ok().filter(|s| parts_of(s) == k)
    }

    /// A kept file that has no name any more, opened anew through its descriptor for one
    /// call (`/proc/self/fd`: an unlinked file can be opened no other way), as the server;
    /// the caller's permission is checked as for any cached descriptor.
    fn kept_io(&self, ctx: &Ctx, k: KeyParts, want: Want) -> VfsResult<Arc<OpenFile>> {
        let fd = self.kept_fd(k).ok_or(VfsError::Stale)?;
        let mode = if want == Want::Write {
            OFlags::RDWR
        } else {
            OFlags::RDONLY
        };
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let file = rustix::fs::open(
            path.as_str(),
            mode | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let stx = statx_fd(file.as_fd())?;
        if parts_of(&stx) != k {
            return Err(VfsError::Stale);
        }
        let f = Arc::new(OpenFile {
            file: std::fs::File::from(file),
            writable: want == Want::Write,
        });
        if !self.permit(ctx, &f, &stx, want)? {
            return Err(VfsError::Acces);
        }
        Ok(f)
    }

    /// Opens a directory itself (as an O_PATH descriptor), from the cache if it is there.
    fn open_dir(&self, key: &FileKey) -> VfsResult<(Arc<OwnedFd>, Statx)> {
        let k = KeyParts::decode(key)?;
        if k.id() == self.root_parts.id() {
            if k.gen != self.root_parts.gen {
                return Err(VfsError::Stale);
            }
            return Ok((self.root.clone(), statx_fd(self.root.as_fd())?));
        }
        if let Some(fd) = self.caches.dirs.get(k.id(), k.gen) {
            match statx_fd(fd.as_fd()) {
                Ok(stx) if stx.stx_nlink > 0 && parts_of(&stx) == k => return Ok((fd, stx)),
                _ => self.caches.dirs.invalidate(k.id()), // removed behind our back
            }
        }
        let epoch = self.caches.dirs.epoch();
        let l = self.locate(key)?;
        if !l.is_dir() {
            return Err(VfsError::NotDir);
        }
        let fd = rustix::fs::openat(
            &l.dir,
            l.name(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stx = statx_fd(fd.as_fd())?;
        if parts_of(&stx) != parts_of(&l.stx) || !self.inside(&stx) {
            return Err(VfsError::Stale);
        }
        let fd = Arc::new(fd);
        self.caches.dirs.insert(k.id(), k.gen, fd.clone(), epoch);
        Ok((fd, stx))
    }

    /// The attributes of `key` from a cached descriptor, if one is cached and still linked.
    fn cached_attr(&self, k: KeyParts) -> Option<Statx> {
        let check = |fd: BorrowedFd<'_>| match statx_fd(fd) {
            Ok(stx) if stx.stx_nlink > 0 && parts_of(&stx) == k => Some(stx),
            _ => None,
        };
        if let Some(f) = self.caches.files.get(k.id(), k.gen) {
            if let Some(s) = check(f.file.as_fd()) {
                return Some(s);
            }
            self.caches.files.invalidate(k.id());
        }
        if let Some(d) = self.caches.dirs.get(k.id(), k.gen) {
            if let Some(s) = check(d.as_fd()) {
                return Some(s);
            }
            self.caches.dirs.invalidate(k.id());
        }
        None
    }

    /// A descriptor of regular file `key` for `want`, from the cache or opened (and cached),
    /// with its attributes before the I/O; the caller's permission is checked.
    fn io_file(&self, ctx: &Ctx, key: &FileKey, want: Want) -> VfsResult<Arc<OpenFile>> {
        let k = KeyParts::decode(key)?;
        if k.dev != self.root_parts.dev && !self.crossmnt {
            return Err(VfsError::Stale);
        }
        if let Some(f) = self.caches.files.get(k.id(), k.gen) {
            if want != Want::Write || f.writable {
                match statx_fd(f.file.as_fd()) {
                    Ok(stx) if stx.stx_nlink > 0 && parts_of(&stx) == k => {
                        if self.permit(ctx, &f, &stx, want)? {
                            return Ok(f);
                        }
                        let l = self.locate(key)?;
                        return self.open_for_call(ctx, &l, want);
                    }
                    _ => self.caches.files.invalidate(k.id()), // removed behind our back
                }
            }
        }
        let epoch = self.caches.files.epoch();
        let l = match self.locate(key) {
            // Removed, but kept for an NFSv4 open (Backend::keep_open).
            Err(VfsError::Stale) if self.kept_fd(k).is_some() => return self.kept_io(ctx, k, want),
            r => r?,
        };
        if !self.inside(&l.stx) {
            return Err(VfsError::Stale);
        }
        match ftype_of(u32::from(l.stx.stx_mode)) {
            FileType::Regular => {}
            FileType::Directory => return Err(VfsError::IsDir),
            _ => return Err(VfsError::Inval),
        }
        // Opened as the server, so the descriptor can serve every caller; permission is
        // checked per call by permit().
        let mode = if want == Want::Write {
            OFlags::RDWR
        } else {
            OFlags::RDONLY
        };
        let flags = mode | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let Ok(fd) = rustix::fs::openat(&l.dir, l.name(), flags, Mode::empty()) else {
            // The server cannot (read-only file system, a running program, an append-only
            // file, or no permission when not running as root): open it as the caller.
            return self.open_for_call(ctx, &l, want);
        };
        let stx = statx_fd(fd.as_fd())?;
        if parts_of(&stx) != k || !self.inside(&stx) {
            return Err(VfsError::Stale);
        }
        let f = Arc::new(OpenFile {
            file: std::fs::File::from(fd),
            writable: want == Want::Write,
        });
        self.caches.files.insert(k.id(), k.gen, f.clone(), epoch);
        if self.permit(ctx, &f, &stx, want)? {
            Ok(f)
        } else {
            self.open_for_call(ctx, &l, want)
        }
    }

    /// Opens a located file as the caller, for one call (not cached).
    fn open_for_call(&self, ctx: &Ctx, l: &Loc, want: Want) -> VfsResult<Arc<OpenFile>> {
        let file = match want {
            Want::Read => self.open_file(ctx, l, OFlags::RDONLY)?,
            Want::Write => self.open_file(ctx, l, OFlags::WRONLY)?,
            Want::Sync => match self.open_file(ctx, l, OFlags::RDONLY) {
                Err(VfsError::Acces) => self.open_file(ctx, l, OFlags::WRONLY)?,
                r => r?,
            },
        };
        Ok(Arc::new(OpenFile {
            file,
            writable: want == Want::Write,
        }))
    }

    /// Whether the caller may use the server's descriptor `f` of a file with attributes
    /// `stx` for `want`, as an `open` by the caller would decide (with the owner override of
    /// the module docs). `Ok(false)`: it cannot be told here; open the file as the caller.
    fn permit(&self, ctx: &Ctx, f: &OpenFile, stx: &Statx, want: Want) -> VfsResult<bool> {
        let c = &ctx.creds;
        if !self.switch_creds || c.uid == 0 || c.uid == stx.stx_uid {
            // One identity for all; root; or the owner, who may always read and write.
            return Ok(true);
        }
        use rustix::fs::Access;
        let path = format!("/proc/self/fd/{}", f.file.as_raw_fd());
        let _g = self.creds(ctx)?;
        let check =
            |a: Access| rustix::fs::accessat(rustix::fs::CWD, path.as_str(), a, AtFlags::EACCESS);
        let r = match want {
            Want::Read => check(Access::READ_OK),
            Want::Write => check(Access::WRITE_OK),
            Want::Sync => check(Access::READ_OK).or_else(|_| check(Access::WRITE_OK)),
        };
        match r {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::ACCESS) => Err(VfsError::Acces),
            Err(_) => Ok(false),
        }
    }

    fn attr(&self, s: &Statx) -> Attr {
        let mode = u32::from(s.stx_mode);
        let ctime = ts(&s.stx_ctime);
        Attr {
            ftype: ftype_of(mode),
            mode: mode & 0o7777,
            nlink: s.stx_nlink,
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            used: s.stx_blocks.saturating_mul(512),
            rdev: (s.stx_rdev_major, s.stx_rdev_minor),
            // One fsid per file system: the root's, or with crossmnt each one's own.
            fsid: if self.crossmnt {
                dev_of(s)
            } else {
                self.root_parts.dev
            },
            fileid: s.stx_ino,
            atime: ts(&s.stx_atime),
            mtime: ts(&s.stx_mtime),
            ctime,
            change: (ctime.secs as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(u64::from(ctime.nsecs)),
        }
    }

    fn creds(&self, ctx: &Ctx) -> VfsResult<CredGuard> {
        // Root with group 0 and no other group is the identity every thread has when it
        // runs no call (see CredGuard's Drop, and `root_rests`): nothing to switch.
        let c = &ctx.creds;
        let at_rest = self.root_rests && c.uid == 0 && c.gid == 0 && c.gids.iter().all(|&g| g == 0);
        CredGuard::switch(self.switch_creds && !at_rest, c)
    }

    fn check_writable(&self) -> VfsResult<()> {
        if self.read_only {
            return Err(VfsError::Rofs);
        }
        Ok(())
    }

    /// Opens a located regular file for I/O as the caller; the owner may override the mode
    /// bits (see module docs).
    fn open_file(&self, ctx: &Ctx, l: &Loc, flags: OFlags) -> VfsResult<std::fs::File> {
        match ftype_of(u32::from(l.stx.stx_mode)) {
            FileType::Regular => {}
            FileType::Directory => return Err(VfsError::IsDir),
            _ => return Err(VfsError::Inval),
        }
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let attempt = |as_root: bool| -> VfsResult<OwnedFd> {
            let c = if as_root {
                Creds::root()
            } else {
                ctx.creds.clone()
            };
            let _g = CredGuard::switch(self.switch_creds, &c)?;
            Ok(rustix::fs::openat(&l.dir, l.name(), flags, Mode::empty())?)
        };
        let fd = match attempt(false) {
            Err(VfsError::Acces) if self.switch_creds && ctx.creds.uid == l.stx.stx_uid => {
                attempt(true)?
            }
            r => r?,
        };
        let stx = statx_fd(fd.as_fd())?;
        if parts_of(&stx) != parts_of(&l.stx) {
            return Err(VfsError::Stale);
        }
        Ok(std::fs::File::from(fd))
    }

    fn apply_setattr(&self, ctx: &Ctx, l: &Loc, set: &SetAttr) -> VfsResult<()> {
        let is_link = ftype_of(u32::from(l.stx.stx_mode)) == FileType::Symlink;
        if let Some(size) = set.size {
            let f = self.io_file(ctx, &parts_of(&l.stx).encode(), Want::Write)?;
            let _g = self.creds(ctx)?;
            f.file.set_len(size)?;
        }
        let _g = self.creds(ctx)?;
        if set.uid.is_some() || set.gid.is_some() {
            let uid = set.uid.map(rustix::process::Uid::from_raw);
            let gid = set.gid.map(rustix::process::Gid::from_raw);
            rustix::fs::chownat(&l.dir, l.name(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if let Some(mode) = set.mode {
            if !is_link {
                // chmod through the descriptor's /proc link: it names exactly the inode we
                // verified, and never a symlink (O_NOFOLLOW would have failed on one).
                let fd = rustix::fs::openat(
                    &l.dir,
                    l.name(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let st = statx_fd(fd.as_fd())?;
                if parts_of(&st) != parts_of(&l.stx) {
                    return Err(VfsError::Stale);
                }
                let proc_path = format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&fd));
                rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(mode & 0o7777))?;
            }
        }
        if let Some(times) = timestamps(set) {
            rustix::fs::utimensat(&l.dir, l.name(), &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Ok(())
    }

    /// SETATTR of a kept file that has no name any more: through its descriptor's
    /// `/proc/self/fd` link, which leads to exactly that inode (a regular file), as the
    /// caller (the link is ours: the same process).
    fn kept_setattr(&self, ctx: &Ctx, k: KeyParts, set: &SetAttr) -> VfsResult<()> {
        let fd = self.kept_fd(k).ok_or(VfsError::Stale)?;
        if let Some(size) = set.size {
            let f = self.kept_io(ctx, k, Want::Write)?;
            let _g = self.creds(ctx)?;
            f.file.set_len(size)?;
        }
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let _g = self.creds(ctx)?;
        if set.uid.is_some() || set.gid.is_some() {
            let uid = set.uid.map(rustix::process::Uid::from_raw);
            let gid = set.gid.map(rustix::process::Gid::from_raw);
            rustix::fs::chownat(rustix::fs::CWD, path.as_str(), uid, gid, AtFlags::empty())?;
        }
        if let Some(mode) = set.mode {
            rustix::fs::chmod(path.as_str(), Mode::from_raw_mode(mode & 0o7777))?;
        }
        if let Some(times) = timestamps(set) {
            rustix::fs::utimensat(rustix::fs::CWD, path.as_str(), &times, AtFlags::empty())?;
        }
        Ok(())
    }

    /// After creating `name` in `dir`: record it, apply attributes the create call could
    /// not, and return its key and attributes. `made`: the attributes of the new object if
    /// the caller has them from its descriptor (else they are looked up by name).
    fn created(
        &self,
        ctx: &Ctx,
        dir: &Arc<OwnedFd>,
        dir_stx: &Statx,
        name: &[u8],
        set: &SetAttr,
        made: Option<Statx>,
    ) -> VfsResult<(FileKey, Attr)> {
        let stx = match made {
            Some(s) => s,
            None => statx_at(dir.as_fd(), name)?,
        };
        let mut rest = *set;
        if set
            .mode
            .is_some_and(|m| m & 0o7777 == u32::from(stx.stx_mode) & 0o7777)
        {
            rest.mode = None;
        }
        if set.uid == Some(stx.stx_uid) {
            rest.uid = None;
        }
        if set.gid == Some(stx.stx_gid) {
            rest.gid = None;
        }
        self.remember(parts_of(dir_stx).id(), name, parts_of(&stx).id());
        self.changed(dir_stx);
        let stx = if rest.is_empty() {
            stx
        } else {
            let l = Loc {
                dir: dir.clone(),
                name: name.to_vec(),
                stx,
            };
            self.apply_setattr(ctx, &l, &rest)?;
            statx_at(dir.as_fd(), name)?
        };
        Ok((parts_of(&stx).encode(), self.attr(&stx)))
    }

    /// Locks the directories of a REMOVE, RMDIR or RENAME (a stripe each, in a fixed order)
    /// from the `statx` of the names they unlink to the unlink itself, so that two such
    /// calls cannot swap what a name designates in between, and the descriptor dropped from
    /// the cache is the one of the object actually unlinked. Changes made behind our back
    /// are caught by the link count instead (each hit, and the sweeper).
    fn unlinking(&self, dirs: &[&Statx]) -> Vec<parking_lot::MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = dirs
            .iter()
            .map(|d| {
                let (dev, ino) = parts_of(d).id();
                ((ino ^ dev.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize
                    % UNLINK_STRIPES
            })
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| self.unlink_locks[i].lock())
            .collect()
    }

    /// Drops the cached listing of a directory we just changed.
    fn changed(&self, dir_stx: &Statx) {
        self.listings.lock().remove(&parts_of(dir_stx).id());
    }

    /// The directory's entries in cookie order, from a cache validated by the directory's
    /// mtime and ctime and dropped by every change made through this backend. A listing
    /// read in the same clock tick as the directory's last change (file systems stamp times
    /// with a coarse clock, so a change by another process in that tick could leave the
    /// times equal) is trusted for one second only.
    fn listing(&self, fd: BorrowedFd<'_>, dir_stx: &Statx) -> VfsResult<Arc<Listing>> {
        let id = parts_of(dir_stx).id();
        let (mtime, ctime) = (ts(&dir_stx.stx_mtime), ts(&dir_stx.stx_ctime));
        if let Some(l) = self.listings.lock().get(&id) {
            let fresh = l.settled || l.read_at.elapsed() < Duration::from_secs(1);
            if l.mtime == mtime && l.ctime == ctime && fresh {
                return Ok(l.clone());
            }
        }
        let before = Timestamp::now();
        let read_at = Instant::now();
        let rd = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut entries = Vec::new();
        for ent in rustix::fs::Dir::new(rd)? {
            let ent = ent?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push((cookie::of_name(name), name.to_vec(), ent.ino()));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let settled = before.secs > mtime.secs.max(ctime.secs) + 1;
        let l = Arc::new(Listing {
            mtime,
            ctime,
            settled,
            read_at,
            entries,
        });
        let mut c = self.listings.lock();
        if c.len() >= MAX_LISTINGS {
            c.clear();
        }
        c.insert(id, l.clone());
        Ok(l)
    }
}

impl Backend for LocalFs {
    fn root(&self) -> FileKey {
        self.root_parts.encode()
    }

    fn limits(&self) -> Limits {
        Limits {
            name_max: 255,
            link_max: 65000,
            max_file_size: i64::MAX as u64,
            time_granularity_ns: 1,
            // What FICLONERANGE aligns to; where the file system cannot clone at all,
            // CLONE answers NOTSUPP.
            clone_blksize: self.blksize,
            change: ChangeKind::Ctime,
        }
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn getattr(&self, _ctx: &Ctx, key: &FileKey) -> VfsResult<Attr> {
        if let Some(stx) = KeyParts::decode(key).ok().and_then(|k| self.cached_attr(k)) {
            return Ok(self.attr(&stx));
        }
        if let Some(stx) = self.kept_attr(key) {
            return Ok(self.attr(&stx));
        }
        let l = self.locate(key)?;
        if !self.inside(&l.stx) {
            return Err(VfsError::Stale);
        }
        Ok(self.attr(&l.stx))
    }

    fn setattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        set: &SetAttr,
        guard: Option<Timestamp>,
    ) -> VfsResult<Attr> {
        let l = match self.locate(key) {
            // Removed, but kept for an NFSv4 open (Backend::keep_open).
            Err(VfsError::Stale) if self.kept_attr(key).is_some() => {
                let k = KeyParts::decode(key)?;
                let before = self.kept_attr(key).ok_or(VfsError::Stale)?;
                if guard.is_some_and(|g| ts(&before.stx_ctime) != g) {
                    return Err(VfsError::NotSync);
                }
                if !set.is_empty() {
                    self.check_writable()?;
                    self.kept_setattr(ctx, k, set)?;
                }
                return Ok(self.attr(&self.kept_attr(key).ok_or(VfsError::Stale)?));
            }
            r => r?,
        };
        if let Some(g) = guard {
            if ts(&l.stx.stx_ctime) != g {
                return Err(VfsError::NotSync);
            }
        }
        if set.is_empty() {
            return Ok(self.attr(&l.stx));
        }
        self.check_writable()?;
        self.apply_setattr(ctx, &l, set)?;
        Ok(self.attr(&statx_at(l.dir.as_fd(), &l.name)?))
    }

    fn lookup(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<(FileKey, Attr)> {
        let (fd, dstx) = self.open_dir(dir)?;
        let _g = self.creds(ctx)?;
        // Search permission on the directory, as the kernel would check it on a path walk.
        rustix::fs::accessat(&fd, ".", rustix::fs::Access::EXEC_OK, AtFlags::EACCESS)?;
        if name == b"." {
            return Ok((parts_of(&dstx).encode(), self.attr(&dstx)));
        }
        if name == b".." {
            if parts_of(&dstx).id() == self.root_parts.id() {
                return Ok((self.root_parts.encode(), self.attr(&dstx)));
            }
            let stx = statx_at(fd.as_fd(), b"..")?;
            return Ok((parts_of(&stx).encode(), self.attr(&stx)));
        }
        let stx = statx_at(fd.as_fd(), name)?;
        if !self.inside(&stx) {
            // A mount point (see the module documentation).
            return Err(VfsError::Xdev);
        }
        self.remember(parts_of(&dstx).id(), name, parts_of(&stx).id());
        Ok((parts_of(&stx).encode(), self.attr(&stx)))
    }

    fn readlink(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<u8>> {
        let l = self.locate(key)?;
        if ftype_of(u32::from(l.stx.stx_mode)) != FileType::Symlink {
            return Err(VfsError::Inval);
        }
        let _g = self.creds(ctx)?;
        Ok(rustix::fs::readlinkat(&l.dir, l.name(), Vec::new())?.into_bytes())
    }

    fn read(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
    ) -> VfsResult<(Vec<u8>, bool)> {
        let mut buf = Vec::new();
        let done = self.read_into(ctx, key, offset, count, &mut buf)?;
        Ok((buf, done.eof))
    }

    fn read_into(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
        buf: &mut Vec<u8>,
    ) -> VfsResult<ReadDone> {
        let f = self.io_file(ctx, key, Want::Read)?;
        let start = buf.len();
        pread_append(&f.file, offset, count.min(MAX_READ) as usize, buf, false)?;
        let got = (buf.len() - start) as u64;
        let stx = statx_fd(f.file.as_fd())?;
        Ok(ReadDone {
            eof: offset.saturating_add(got) >= stx.stx_size,
            attr: Some(self.attr(&stx)),
        })
    }

    fn data_in_memory(&self) -> bool {
        self.in_memory
    }

    /// Reads without waiting when everything needed is at hand: the file's descriptor in
    /// the cache (opening it would walk the export, a wait), the caller's permission on it
    /// decided from its attributes or a `faccessat` (no open), and the data in the page
    /// cache (`preadv2` with `RWF_NOWAIT` answers EAGAIN otherwise, and EOPNOTSUPP on file
    /// systems that cannot tell, which are not asked again). Anything else, errors
    /// included, answers `None`: [`LocalFs::read_into`] on the pool then does the read or
    /// reports the error, exactly as before.
    fn try_read_into(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        count: u32,
        buf: &mut Vec<u8>,
    ) -> Option<VfsResult<ReadDone>> {
        if !self.nowait_reads.load(Ordering::Relaxed) {
            return None;
        }
        let k = KeyParts::decode(key).ok()?;
        let f = self.caches.files.get(k.id(), k.gen)?;
        let stx = statx_fd(f.file.as_fd()).ok()?;
        if stx.stx_nlink == 0
            || parts_of(&stx) != k
            || !self.permit(ctx, &f, &stx, Want::Read).ok()?
        {
            return None;
        }
        let start = buf.len();
        match pread_append(&f.file, offset, count.min(MAX_READ) as usize, buf, true) {
            Ok(()) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => {
                self.nowait_reads.store(false, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None, // EAGAIN: not cached; or an error the pool will report
        }
        let got = (buf.len() - start) as u64;
        let Ok(stx) = statx_fd(f.file.as_fd()) else {
            buf.truncate(start);
            return None;
        };
        Some(Ok(ReadDone {
            eof: offset.saturating_add(got) >= stx.stx_size,
            attr: Some(self.attr(&stx)),
        }))
    }

    fn write(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        stable: Stability,
    ) -> VfsResult<Stability> {
        use std::os::unix::fs::FileExt;
        self.check_writable()?;
        let f = self.io_file(ctx, key, Want::Write)?;
        let _g = self.creds(ctx)?; // so the kernel clears set-id bits as for this caller
        f.file.write_all_at(data, offset)?;
        match stable {
            Stability::Unstable => {}
            Stability::DataSync => f.file.sync_data()?,
            Stability::FileSync => f.file.sync_all()?,
        }
        Ok(stable)
    }

    fn create(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        how: &CreateMode,
    ) -> VfsResult<(FileKey, Attr)> {
        self.check_writable()?;
        crate::check_new_name(name, 255)?;
        let (fd, dstx) = self.open_dir(dir)?;
        let base =
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let g = self.creds(ctx)?;
        match how {
            CreateMode::Unchecked(set) | CreateMode::Guarded(set) => {
                let excl = matches!(how, CreateMode::Guarded(_));
                let mode = Mode::from_raw_mode(set.mode.unwrap_or(0o644) & 0o7777);
                let flags = if excl { base | OFlags::EXCL } else { base };
                // The attributes come from the descriptor just opened: no second lookup of
                // the name.
                let made = match rustix::fs::openat(&fd, OsStr::from_bytes(name), flags, mode) {
                    Ok(f) => statx_fd(f.as_fd())?,
                    // An existing file the caller may not open for writing can still be
                    // "created" unchecked when nothing is to change (knfsd does the same).
                    Err(rustix::io::Errno::ACCESS) if !excl => statx_at(fd.as_fd(), name)?,
                    Err(e) => return Err(e.into()),
                };
                drop(g);
                let mut rest = *set;
                rest.mode = None; // set at creation; an existing file keeps its mode
                self.created(ctx, &fd, &dstx, name, &rest, Some(made))
            }
            CreateMode::Exclusive(verf) => {
                let atime = i64::from(u32::from_be_bytes([verf[0], verf[1], verf[2], verf[3]]));
                let mtime = i64::from(u32::from_be_bytes([verf[4], verf[5], verf[6], verf[7]]));
                let made = rustix::fs::openat(
                    &fd,
                    OsStr::from_bytes(name),
                    base | OFlags::EXCL,
                    Mode::from_raw_mode(0o600),
                );
                let made = match made {
                    Ok(f) => {
                        let times = rustix::fs::Timestamps {
                            last_access: rustix::fs::Timespec {
                                tv_sec: atime,
                                tv_nsec: 0,
                            },
                            last_modification: rustix::fs::Timespec {
                                tv_sec: mtime,
                                tv_nsec: 0,
                            },
                        };
                        rustix::fs::futimens(&f, &times)?;
                        statx_fd(f.as_fd())?
                    }
                    Err(rustix::io::Errno::EXIST) => {
                        let s = statx_at(fd.as_fd(), name)?;
                        let same = ftype_of(u32::from(s.stx_mode)) == FileType::Regular
                            && s.stx_atime.tv_sec == atime
                            && s.stx_mtime.tv_sec == mtime;
                        if !same {
                            return Err(VfsError::Exist);
                        }
                        s
                    }
                    Err(e) => return Err(e.into()),
                };
                drop(g);
                self.created(ctx, &fd, &dstx, name, &SetAttr::default(), Some(made))
            }
        }
    }

    fn mkdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        set: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.check_writable()?;
        crate::check_new_name(name, 255)?;
        let (fd, dstx) = self.open_dir(dir)?;
        {
            let _g = self.creds(ctx)?;
            rustix::fs::mkdirat(
                &fd,
                OsStr::from_bytes(name),
                Mode::from_raw_mode(set.mode.unwrap_or(0o755) & 0o7777),
            )?;
        }
        self.created(ctx, &fd, &dstx, name, set, None)
    }

    fn symlink(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        target: &[u8],
        set: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.check_writable()?;
        crate::check_new_name(name, 255)?;
        if target.is_empty() || target.contains(&0) {
            return Err(VfsError::Inval);
        }
        let (fd, dstx) = self.open_dir(dir)?;
        {
            let _g = self.creds(ctx)?;
            rustix::fs::symlinkat(OsStr::from_bytes(target), &fd, OsStr::from_bytes(name))?;
        }
        let mut rest = *set;
        rest.mode = None; // symlink modes are fixed on Linux
        self.created(ctx, &fd, &dstx, name, &rest, None)
    }

    fn mknod(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        kind: SpecialKind,
        set: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        self.check_writable()?;
        crate::check_new_name(name, 255)?;
        let (fd, dstx) = self.open_dir(dir)?;
        let (ft, dev) = match kind {
            SpecialKind::Char(a, b) => (
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::makedev(a, b),
            ),
            SpecialKind::Block(a, b) => {
                (rustix::fs::FileType::BlockDevice, rustix::fs::makedev(a, b))
            }
            SpecialKind::Socket => (rustix::fs::FileType::Socket, 0),
            SpecialKind::Fifo => (rustix::fs::FileType::Fifo, 0),
        };
        {
            let _g = self.creds(ctx)?;
            let mode = Mode::from_raw_mode(set.mode.unwrap_or(0o644) & 0o7777);
            rustix::fs::mknodat(&fd, OsStr::from_bytes(name), ft, mode, dev)?;
        }
        self.created(ctx, &fd, &dstx, name, set, None)
    }

    fn remove(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        check_entry_name(name)?;
        let (fd, dstx) = self.open_dir(dir)?;
        // So that the name still designates `victim` when it is unlinked (see `unlinking`).
        let _l = self.unlinking(&[&dstx]);
        let victim = statx_at(fd.as_fd(), name)?;
        if ftype_of(u32::from(victim.stx_mode)) == FileType::Directory {
            return Err(VfsError::IsDir);
        }
        let _g = self.creds(ctx)?;
        rustix::fs::unlinkat(&fd, OsStr::from_bytes(name), AtFlags::empty())?;
        self.changed(&dstx);
        self.forget(parts_of(&victim).id());
        self.caches.files.invalidate(parts_of(&victim).id()); // so its space is freed
        Ok(())
    }

    fn rmdir(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        if name == b"." {
            return Err(VfsError::Inval);
        }
        if name == b".." {
            return Err(VfsError::NotEmpty);
        }
        crate::check_name(name, 255)?;
        let (fd, dstx) = self.open_dir(dir)?;
        let _l = self.unlinking(&[&dstx]);
        let victim = statx_at(fd.as_fd(), name)?;
        let _g = self.creds(ctx)?;
        rustix::fs::unlinkat(&fd, OsStr::from_bytes(name), AtFlags::REMOVEDIR)?;
        self.changed(&dstx);
        self.forget(parts_of(&victim).id());
        self.caches.dirs.invalidate(parts_of(&victim).id());
        Ok(())
    }

    fn rename(
        &self,
        ctx: &Ctx,
        from_dir: &FileKey,
        from: &[u8],
        to_dir: &FileKey,
        to: &[u8],
    ) -> VfsResult<()> {
        self.check_writable()?;
        for n in [from, to] {
            check_entry_name(n)?;
        }
        let (ffd, fstx) = self.open_dir(from_dir)?;
        let (tfd, tstx) = self.open_dir(to_dir)?;
        let _l = self.unlinking(&[&fstx, &tstx]);
        let moved = statx_at(ffd.as_fd(), from)?;
        let (fname, tname) = (OsStr::from_bytes(from), OsStr::from_bytes(to));
        // The locks keep an existing target from changing, but a CREATE may make one at any
        // time: with no target seen, rename with RENAME_NOREPLACE, so that whatever gets
        // replaced is known (and its cached descriptor closed).
        let mut replaced = statx_at(tfd.as_fd(), to).ok();
        let mut tries = 0;
        loop {
            tries += 1;
            let noreplace = replaced.is_none() && tries <= 3;
            let r = {
                let _g = self.creds(ctx)?;
                if noreplace {
                    rustix::fs::renameat_with(
                        &ffd,
                        fname,
                        &tfd,
                        tname,
                        rustix::fs::RenameFlags::NOREPLACE,
                    )
                } else {
                    rustix::fs::renameat(&ffd, fname, &tfd, tname)
                }
            };
            match r {
                Ok(()) => break,
                Err(rustix::io::Errno::EXIST) if noreplace => {
                    replaced = statx_at(tfd.as_fd(), to).ok();
                }
                // Not supported by this file system (or a genuine EINVAL, which the plain
                // rename reports again).
                Err(rustix::io::Errno::INVAL) if noreplace => tries = 3,
                Err(e) => return Err(e.into()),
            }
        }
        self.changed(&fstx);
        self.changed(&tstx);
        // The object renamed over is unlinked: close it. A moved directory is looked up
        // afresh (a moved file's descriptor stays valid where it now is).
        if let Some(r) = replaced.filter(|r| parts_of(r) != parts_of(&moved)) {
            self.caches.files.invalidate(parts_of(&r).id());
            self.caches.dirs.invalidate(parts_of(&r).id());
        }
        self.caches.dirs.invalidate(parts_of(&moved).id());
        self.remember(parts_of(&tstx).id(), to, parts_of(&moved).id());
        Ok(())
    }

    fn link(&self, ctx: &Ctx, key: &FileKey, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        crate::check_new_name(name, 255)?;
        let l = self.locate(key)?;
        if l.is_dir() {
            return Err(VfsError::Perm);
        }
        let (fd, dstx) = self.open_dir(dir)?;
        let _g = self.creds(ctx)?;
        rustix::fs::linkat(
            &l.dir,
            l.name(),
            &fd,
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )?;
        self.changed(&dstx);
        Ok(())
    }

    fn readdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        after: u64,
        max: usize,
        plus: bool,
    ) -> VfsResult<DirPage> {
        let (fd, dstx) = self.open_dir(dir)?;
        let _g = self.creds(ctx)?;
        rustix::fs::accessat(&fd, ".", rustix::fs::Access::READ_OK, AtFlags::EACCESS)?;
        let listing = self.listing(fd.as_fd(), &dstx)?;
        let start = listing.entries.partition_point(|e| e.0 <= after);
        let dir_id = parts_of(&dstx).id();
        let mut page = DirPage {
            entries: Vec::with_capacity(max.min(listing.entries.len() - start)),
            eof: false,
        };
        let mut i = start;
        while i < listing.entries.len() && page.entries.len() < max {
            let (c, name, ino) = &listing.entries[i];
            i += 1;
            let mut e = DirEntry {
                name: name.clone(),
                fileid: *ino,
                cookie: *c,
                plus: None,
            };
            if plus {
                match statx_at(fd.as_fd(), name) {
                    Ok(stx) => {
                        e.fileid = stx.stx_ino;
                        // A mount point gets no handle, and is not remembered.
                        if self.inside(&stx) {
                            self.remember(dir_id, name, parts_of(&stx).id());
                            e.plus = Some((parts_of(&stx).encode(), self.attr(&stx)));
                        }
                    }
                    Err(VfsError::NoEnt) => continue, // removed since the listing was read
                    Err(e) => return Err(e),
                }
            }
            page.entries.push(e);
        }
        page.eof = i >= listing.entries.len();
        Ok(page)
    }

    fn fsstat(&self, _ctx: &Ctx, key: &FileKey) -> VfsResult<FsStat> {
        self.locate(key)?;
        let s = rustix::fs::fstatvfs(&self.root)?;
        let bs = s.f_frsize.max(1);
        Ok(FsStat {
            total_bytes: s.f_blocks.saturating_mul(bs),
            free_bytes: s.f_bfree.saturating_mul(bs),
            avail_bytes: s.f_bavail.saturating_mul(bs),
            total_files: s.f_files,
            free_files: s.f_ffree,
            avail_files: s.f_favail,
        })
    }

    fn needs_search(&self, key: &FileKey) -> VfsResult<bool> {
        let k = KeyParts::decode(key)?;
        if k.dev != self.root_parts.dev {
            return Err(VfsError::Stale);
        }
        // A kept file is reached through its descriptor, linked or not.
        if self.kept_fd(k).is_some() {
            return Ok(false);
        }
        // A cached descriptor: calls use it, and a removed object is stale, not lost.
        if self.caches.files.get(k.id(), k.gen).is_some()
            || self.caches.dirs.get(k.id(), k.gen).is_some()
        {
            return Ok(false);
        }
        if self.try_locate(k)?.is_some() {
            return Ok(false);
        }
        if self.remembered_stale(key) {
            return Err(VfsError::Stale);
        }
        Ok(true)
    }

    fn search(&self, key: &FileKey, limits: &SearchLimits) -> VfsResult<Searched> {
        let k = KeyParts::decode(key)?;
        if k.dev != self.root_parts.dev {
            return Ok(Searched::NotFound);
        }
        let mut r = self.walk(k.id(), limits);
        // The inode seen may be a newer file with the same number (another generation).
        if r == Searched::Found && self.try_locate(k)?.is_none() {
            r = Searched::NotFound;
        }
        if r != Searched::Found {
            let mut st = self.stale.lock();
            if st.len() < STALE_KEYS {
                st.insert(key.clone(), Instant::now());
            }
        }
        Ok(r)
    }

    /// `lseek(2)` SEEK_DATA/SEEK_HOLE on the file's descriptor. The descriptor may be the
    /// cached one other calls share: its file position changes, which nothing else uses
    /// (reads and writes give their offset). ENXIO from `lseek` (no data before the end)
    /// is the end of the file, not an error; a file system without holes answers as the
    /// trait says (data where asked, the hole at the size).
    fn seek(&self, ctx: &Ctx, key: &FileKey, offset: u64, what: Content) -> VfsResult<SoughtAt> {
        let f = self.io_file(ctx, key, Want::Read)?;
        let size = statx_fd(f.file.as_fd())?.stx_size;
        if offset >= size {
            return Err(VfsError::Nxio);
        }
        let pos = match what {
            Content::Data => rustix::fs::SeekFrom::Data(offset),
            Content::Hole => rustix::fs::SeekFrom::Hole(offset),
        };
        match rustix::fs::seek(&f.file, pos) {
            // The file may have changed size since the statx: never past the end it had.
            Ok(at) => Ok(SoughtAt {
                offset: at.min(size),
                eof: at >= size,
            }),
            Err(rustix::io::Errno::NXIO) => Ok(SoughtAt {
                offset: size,
                eof: true,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Regular files and directories: those Linux keeps `user.` attributes on (whether
    /// the host file system does is known at the first call: NOTSUPP then).
    fn xattr_support(&self, attr: &Attr) -> bool {
        matches!(attr.ftype, FileType::Regular | FileType::Directory)
    }

    /// See the `xattr` module: the host's `user.` namespace.
    fn getxattr(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.xattr_get(ctx, key, name)
    }

    fn setxattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        name: &[u8],
        value: &[u8],
        how: crate::XattrSet,
    ) -> VfsResult<()> {
        self.xattr_set(ctx, key, name, value, how)
    }

    fn listxattrs(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<Vec<u8>>> {
        self.xattr_list(ctx, key)
    }

    fn removexattr(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.xattr_remove(ctx, key, name)
    }

    /// `fallocate(2)` mode 0: allocates and extends the size (the caller's identity, so
    /// that quotas and set-id bits are as for a local process).
    fn allocate(&self, ctx: &Ctx, key: &FileKey, offset: u64, len: u64) -> VfsResult<()> {
        self.check_writable()?;
        if len == 0 {
            return Err(VfsError::Inval);
        }
        let f = self.io_file(ctx, key, Want::Write)?;
        let _g = self.creds(ctx)?;
        Ok(rustix::fs::fallocate(
            &f.file,
            rustix::fs::FallocateFlags::empty(),
            offset,
            len,
        )?)
    }

    /// `fallocate(2)` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`; a file system
    /// that cannot punch answers NOTSUPP (EOPNOTSUPP).
    fn deallocate(&self, ctx: &Ctx, key: &FileKey, offset: u64, len: u64) -> VfsResult<()> {
        use rustix::fs::FallocateFlags as F;
        self.check_writable()?;
        if len == 0 {
            return Err(VfsError::Inval);
        }
        let f = self.io_file(ctx, key, Want::Write)?;
        let _g = self.creds(ctx)?;
        Ok(rustix::fs::fallocate(
            &f.file,
            F::PUNCH_HOLE | F::KEEP_SIZE,
            offset,
            len,
        )?)
    }

    /// `copy_file_range(2)` from a descriptor open for reading to one open for writing,
    /// as the caller (quotas and set-id bits as for a local process).
    fn copy_range(
        &self,
        ctx: &Ctx,
        src: &FileKey,
        src_off: u64,
        dst: &FileKey,
        dst_off: u64,
        len: u64,
    ) -> VfsResult<u64> {
        self.check_writable()?;
        let s = self.io_file(ctx, src, Want::Read)?;
        let d = self.io_file(ctx, dst, Want::Write)?;
        let _g = self.creds(ctx)?;
        copy_file_range_all(&s.file, src_off, &d.file, dst_off, len)
    }

    /// The `FICLONERANGE` ioctl. A file system that cannot share extents answers
    /// EOPNOTSUPP (NOTSUPP); two files on different file systems (an export that crosses
    /// mounts) EXDEV, which is NOTSUPP too: the client copies instead. EINVAL (a range not
    /// aligned to the block size, or past the end) stays INVAL.
    fn clone_range(
        &self,
        ctx: &Ctx,
        src: &FileKey,
        src_off: u64,
        dst: &FileKey,
        dst_off: u64,
        len: u64,
    ) -> VfsResult<()> {
        self.check_writable()?;
        let s = self.io_file(ctx, src, Want::Read)?;
        let d = self.io_file(ctx, dst, Want::Write)?;
        let _g = self.creds(ctx)?;
        match ficlonerange(s.file.as_fd(), src_off, d.file.as_fd(), dst_off, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOTTY) => Err(VfsError::NotSupp),
            Err(e) => Err(e.into()),
        }
    }

    fn sync_all(&self) -> VfsResult<()> {
        let fd = rustix::fs::openat(
            &self.root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(rustix::fs::syncfs(&fd)?)
    }

    fn watch_fd(&self, key: &FileKey) -> VfsResult<Option<OwnedFd>> {
        let l = self.locate(key)?;
        if !self.inside(&l.stx) || ftype_of(u32::from(l.stx.stx_mode)) != FileType::Regular {
            return Ok(None);
        }
        let fd = rustix::fs::openat(
            &l.dir,
            l.name(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // The name may have been replaced since it was located: only the file of the key.
        if parts_of(&statx_fd(fd.as_fd())?) != KeyParts::decode(key)? {
            return Err(VfsError::Stale);
        }
        Ok(Some(fd))
    }

    fn keep_open(&self, key: &FileKey) -> VfsResult<Option<Kept>> {
        let k = KeyParts::decode(key)?;
        let hold = || {
            Some(Kept::new(KeptHold {
                kept: Arc::downgrade(&self.kept),
                id: k.id(),
            }))
        };
        {
            let mut m = self.kept.lock();
            if let Some(e) = m.get_mut(&k.id()) {
                if e.gen != k.gen {
                    return Ok(None);
                }
                e.holds = e.holds.saturating_add(1);
                return Ok(hold());
            }
            if m.len() >= self.kept_max {
                return Ok(None);
            }
        }
        let l = self.locate(key)?;
        if !self.inside(&l.stx) || ftype_of(u32::from(l.stx.stx_mode)) != FileType::Regular {
            return Ok(None);
        }
        let fd = rustix::fs::openat(
            &l.dir,
            l.name(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if parts_of(&statx_fd(fd.as_fd())?) != k {
            return Err(VfsError::Stale);
        }
        let mut m = self.kept.lock();
        if m.len() >= self.kept_max && !m.contains_key(&k.id()) {
            return Ok(None);
        }
        let e = m.entry(k.id()).or_insert(KeptFile {
            gen: k.gen,
            fd: Arc::new(fd),
            holds: 0,
        });
        if e.gen != k.gen {
            return Ok(None);
        }
        e.holds = e.holds.saturating_add(1);
        Ok(hold())
    }

    fn commit(&self, ctx: &Ctx, key: &FileKey, _offset: u64, _count: u32) -> VfsResult<()> {
        let f = self.io_file(ctx, key, Want::Sync)?;
        // fsync on any descriptor flushes the inode's dirty pages, including those written
        // through other descriptors by earlier UNSTABLE writes.
        f.file.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> (tempfile::TempDir, LocalFs) {
        let d = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(d.path(), false).unwrap();
        (d, fs)
    }

    /// User extended attributes through the host's `user.` namespace: what a client sets
    /// is the host's `user.NAME`, other namespaces stay out of sight.
    #[test]
    fn xattrs_are_the_hosts_user_namespace() {
        use crate::XattrSet;
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let (f, _) = fs
            .create(
                &ctx,
                &fs.root(),
                b"f",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        match fs.setxattr(&ctx, &f, b"a", b"1", XattrSet::Create) {
            Err(VfsError::NotSupp) => {
                eprintln!("this file system has no user xattrs: nothing more to check here");
                return;
            }
            r => r.unwrap(),
        }
        let host = d.path().join("f");
        let mut buf = [0u8; 16];
        let n = rustix::fs::getxattr(&host, "user.a", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"1");
        assert_eq!(fs.getxattr(&ctx, &f, b"a"), Ok(b"1".to_vec()));
        assert_eq!(fs.getxattr(&ctx, &f, b"b"), Err(VfsError::NoXattr));
        assert_eq!(
            fs.setxattr(&ctx, &f, b"a", b"2", XattrSet::Create),
            Err(VfsError::Exist)
        );
        assert_eq!(
            fs.setxattr(&ctx, &f, b"b", b"2", XattrSet::Replace),
            Err(VfsError::NoXattr)
        );
        fs.setxattr(&ctx, &f, b"a", b"22", XattrSet::Replace)
            .unwrap();
        rustix::fs::setxattr(&host, "user.0", b"", rustix::fs::XattrFlags::empty()).unwrap();
        assert_eq!(
            fs.listxattrs(&ctx, &f),
            Ok(vec![b"0".to_vec(), b"a".to_vec()])
        );
        fs.removexattr(&ctx, &f, b"a").unwrap();
        assert_eq!(fs.removexattr(&ctx, &f, b"a"), Err(VfsError::NoXattr));
        assert_eq!(fs.getxattr(&ctx, &f, b""), Err(VfsError::Inval));
        // A directory holds them too; a symbolic link is never followed.
        fs.setxattr(&ctx, &fs.root(), b"d", b"", XattrSet::Either)
            .unwrap();
        assert_eq!(fs.listxattrs(&ctx, &fs.root()), Ok(vec![b"d".to_vec()]));
        let (l, a) = fs
            .symlink(&ctx, &fs.root(), b"l", b"f", &SetAttr::default())
            .unwrap();
        assert!(!fs.xattr_support(&a));
        assert_eq!(fs.getxattr(&ctx, &l, b"0"), Err(VfsError::NoXattr));
        assert_eq!(fs.listxattrs(&ctx, &l), Ok(vec![]));
        assert_eq!(
            fs.setxattr(&ctx, &l, b"x", b"", XattrSet::Either),
            Err(VfsError::Perm)
        );
        let big = vec![0u8; crate::XATTR_SIZE_MAX + 1];
        assert_eq!(
            fs.setxattr(&ctx, &f, b"v", &big, XattrSet::Either),
            Err(VfsError::Xattr2Big)
        );
        // Another user, when the server runs as root and takes each caller's identity: the
        // host kernel decides (mode 0644 of root's file: it reads, it may not write).
        if rustix::process::geteuid().is_root() {
            let user = Ctx::new(Creds {
                uid: 1000,
                gid: 1000,
                gids: vec![],
            });
            assert_eq!(fs.getxattr(&user, &f, b"0"), Ok(vec![]));
            assert_eq!(fs.listxattrs(&user, &f), Ok(vec![b"0".to_vec()]));
            assert_eq!(
                fs.setxattr(&user, &f, b"u", b"", XattrSet::Either),
                Err(VfsError::Acces)
            );
            assert_eq!(fs.removexattr(&user, &f, b"0"), Err(VfsError::Acces));
        }
    }

    /// COPY through `copy_file_range`: the bytes land, the size grows, a copy from the
    /// end copies nothing; the caller's permission on each side counts. CLONE where the
    /// host file system shares extents, NOTSUPP where it cannot.
    #[test]
    fn copy_and_clone_ranges() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let mk = |name: &[u8]| {
            fs.create(
                &ctx,
                &fs.root(),
                name,
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap()
            .0
        };
        let (a, b) = (mk(b"a"), mk(b"b"));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs.write(&ctx, &a, 0, &data, Stability::Unstable).unwrap();
        assert_eq!(
            fs.copy_range(&ctx, &a, 0, &b, 10, 1 << 40).unwrap(),
            300_000
        );
        assert_eq!(fs.getattr(&ctx, &b).unwrap().size, 300_010);
        assert_eq!(fs.read(&ctx, &b, 10, 300_000).unwrap().0, data);
        assert_eq!(fs.copy_range(&ctx, &a, 300_000, &b, 0, 5).unwrap(), 0);
        assert_eq!(fs.copy_range(&ctx, &a, 299_990, &b, 0, 50).unwrap(), 10);
        let dir = fs.root();
        assert_eq!(fs.copy_range(&ctx, &dir, 0, &b, 0, 5), Err(VfsError::IsDir));
        // Another caller may read `a` (0644) but not write it.
        let other = Ctx::new(Creds {
            uid: 1000,
            gid: 1000,
            gids: vec![],
        });
        if fs.switch_creds {
            assert_eq!(fs.copy_range(&other, &b, 0, &a, 0, 5), Err(VfsError::Acces));
        }
        // A whole file into a new one (its unaligned end is the end of both); a range not
        // aligned to the block size is INVAL where cloning is supported. With TMPDIR on XFS
        // (reflink) or Btrfs this takes the first arm.
        let c = mk(b"c");
        match fs.clone_range(&ctx, &a, 0, &c, 0, 0) {
            Ok(()) => {
                assert_eq!(fs.read(&ctx, &c, 0, 400_000).unwrap().0, data);
                assert_eq!(fs.clone_range(&ctx, &a, 1, &c, 1, 10), Err(VfsError::Inval));
                eprintln!("FICLONERANGE cloned");
            }
            Err(VfsError::NotSupp) => {
                assert_eq!(
                    fs.clone_range(&ctx, &a, 1, &c, 1, 10),
                    Err(VfsError::NotSupp)
                );
            }
            Err(e) => panic!("{e:?}"),
        }
        assert!(fs.limits().clone_blksize > 0);
    }

    /// SEEK, ALLOCATE and DEALLOCATE as the host's `lseek`/`fallocate` give them, on
    /// ranges of 1 MiB (any file system with holes has blocks that divide it).
    #[test]
    fn seek_allocate_and_punch_holes() {
        const M: u64 = 1 << 20;
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let (f, _) = fs
            .create(
                &ctx,
                &fs.root(),
                b"f",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        assert_eq!(fs.seek(&ctx, &f, 0, Content::Data), Err(VfsError::Nxio));
        fs.write(&ctx, &f, M, &[7; 4096], Stability::FileSync)
            .unwrap();
        let set = SetAttr {
            size: Some(4 * M),
            ..SetAttr::default()
        };
        fs.setattr(&ctx, &f, &set, None).unwrap();
        let seek = |at, what| fs.seek(&ctx, &f, at, what).unwrap();
        let Ok(SoughtAt {
            offset: 0,
            eof: false,
        }) = fs.seek(&ctx, &f, 0, Content::Hole)
        else {
            eprintln!("this file system reports no holes: nothing more to check here");
            return;
        };
        assert_eq!(
            seek(0, Content::Data),
            SoughtAt {
                offset: M,
                eof: false
            }
        );
        let h = seek(M, Content::Hole);
        assert!(h.offset > M && h.offset < 2 * M && !h.eof, "{h:?}");
        assert_eq!(
            seek(2 * M, Content::Data),
            SoughtAt {
                offset: 4 * M,
                eof: true
            }
        );
        assert_eq!(
            seek(3 * M, Content::Hole),
            SoughtAt {
                offset: 3 * M,
                eof: false
            }
        );
        assert_eq!(fs.seek(&ctx, &f, 4 * M, Content::Hole), Err(VfsError::Nxio));
        // DEALLOCATE: the data reads as zeros, the size stays.
        fs.deallocate(&ctx, &f, M, M).unwrap();
        assert_eq!(fs.read(&ctx, &f, M, 4).unwrap().0, [0; 4]);
        assert_eq!(
            seek(0, Content::Data),
            SoughtAt {
                offset: 4 * M,
                eof: true
            }
        );
        assert_eq!(fs.getattr(&ctx, &f).unwrap().size, 4 * M);
        // ALLOCATE past the end grows the file.
        match fs.allocate(&ctx, &f, 5 * M, M) {
            Ok(()) => assert_eq!(fs.getattr(&ctx, &f).unwrap().size, 6 * M),
            Err(VfsError::NotSupp) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(fs.allocate(&ctx, &f, 0, 0), Err(VfsError::Inval));
        let dir = fs.root();
        assert_eq!(fs.seek(&ctx, &dir, 0, Content::Data), Err(VfsError::IsDir));
    }

    #[test]
    fn create_write_read_and_keys_survive_a_new_instance() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let (sub, _) = fs.mkdir(&ctx, &root, b"sub", &SetAttr::default()).unwrap();
        let (f, _) = fs
            .create(&ctx, &sub, b"f", &CreateMode::Unchecked(SetAttr::default()))
            .unwrap();
        fs.write(&ctx, &f, 0, b"hello", Stability::Unstable)
            .unwrap();
        assert_eq!(
            fs.read(&ctx, &f, 0, 100).unwrap(),
            (b"hello".to_vec(), true)
        );
        // A fresh instance (a server restart) finds the file from its key alone, after a
        // search: until then the key is stale to it, and no call walks the export.
        let fs2 = LocalFs::new(d.path(), false).unwrap();
        assert_eq!(fs2.needs_search(&f), Ok(true));
        assert_eq!(fs2.read(&ctx, &f, 1, 2), Err(VfsError::Stale));
        assert_eq!(fs2.search(&f, &unlimited()), Ok(Searched::Found));
        assert_eq!(fs2.needs_search(&f), Ok(false));
        assert_eq!(fs2.read(&ctx, &f, 1, 2).unwrap(), (b"el".to_vec(), false));
        fs2.remove(&ctx, &sub, b"f").unwrap();
        assert_eq!(fs2.getattr(&ctx, &f), Err(VfsError::Stale));
        assert_eq!(fs.getattr(&ctx, &f), Err(VfsError::Stale));
    }

    #[test]
    fn dotdot_of_root_is_root_and_symlinks_are_not_followed() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        assert_eq!(fs.lookup(&ctx, &root, b"..").unwrap().0, root);
        std::os::unix::fs::symlink("/", d.path().join("escape")).unwrap();
        let (l, a) = fs.lookup(&ctx, &root, b"escape").unwrap();
        assert_eq!(a.ftype, FileType::Symlink);
        assert_eq!(fs.readlink(&ctx, &l).unwrap(), b"/");
        assert_eq!(fs.lookup(&ctx, &l, b"etc"), Err(VfsError::NotDir));
        assert!(fs.read(&ctx, &l, 0, 10).is_err());
    }

    #[test]
    fn renamed_directory_swapped_for_a_symlink_cannot_be_used_to_escape() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let (dir, _) = fs.mkdir(&ctx, &root, b"a", &SetAttr::default()).unwrap();
        let (f, _) = fs
            .create(
                &ctx,
                &dir,
                b"passwd",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("a")).unwrap();
        // The cached path a/passwd now leads through a symlink: it must not be used (the
        // descriptor cached for the directory, now named b, still holds it).
        if fs.needs_search(&f) == Ok(true) {
            assert_eq!(fs.search(&f, &unlimited()), Ok(Searched::Found));
        }
        let got = fs.read(&ctx, &f, 0, 10).unwrap();
        assert_eq!(
            got,
            (Vec::new(), true),
            "found the real file by search, not /etc/passwd"
        );
    }

    fn unlimited() -> SearchLimits {
        SearchLimits {
            max_dirs: usize::MAX,
            deadline: Instant::now() + Duration::from_secs(3600),
        }
    }

    /// A chain of `depth` directories `d/d/d...` with a file `f` at the bottom, and `wide`
    /// empty directories beside the first; the key of `f`.
    fn deep_file(fs: &LocalFs, depth: usize, wide: usize) -> FileKey {
        let ctx = Ctx::default();
        let mut dir = fs.root();
        for i in 0..wide {
            fs.mkdir(&ctx, &dir, format!("w{i}").as_bytes(), &SetAttr::default())
                .unwrap();
        }
        for _ in 0..depth {
            dir = fs.mkdir(&ctx, &dir, b"d", &SetAttr::default()).unwrap().0;
        }
        let how = CreateMode::Unchecked(SetAttr::default());
        fs.create(&ctx, &dir, b"f", &how).unwrap().0
    }

    #[test]
    fn a_search_stops_at_its_directory_limit_and_its_deadline() {
        let (d, fs) = fs();
        let f = deep_file(&fs, 10, 50);
        let fresh = || LocalFs::new(d.path(), false).unwrap();
        // 61 directories in all (root, 50 wide, 10 deep): 60 are too few.
        let limits = |max_dirs| SearchLimits {
            max_dirs,
            ..unlimited()
        };
        assert_eq!(fresh().search(&f, &limits(60)), Ok(Searched::GaveUp));
        assert_eq!(fresh().search(&f, &limits(61)), Ok(Searched::Found));
        let past = SearchLimits {
            deadline: Instant::now(),
            ..unlimited()
        };
        let fs2 = fresh();
        assert_eq!(fs2.search(&f, &past), Ok(Searched::GaveUp));
        // Given up: remembered as stale for a while, so a replay does not walk again.
        assert_eq!(fs2.needs_search(&f), Err(VfsError::Stale));
    }

    #[test]
    fn a_key_searched_in_vain_is_remembered_stale() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let f = deep_file(&fs, 3, 0);
        let mut gone = f.clone();
        gone.0[15] ^= 0x40; // another inode number, never seen
        assert_eq!(fs.needs_search(&gone), Ok(true));
        assert_eq!(fs.search(&gone, &unlimited()), Ok(Searched::NotFound));
        assert_eq!(fs.needs_search(&gone), Err(VfsError::Stale));
        assert_eq!(fs.getattr(&ctx, &gone), Err(VfsError::Stale));
        // Keys of other file systems and malformed keys never need a search.
        let mut other = f.clone();
        other.0[0] ^= 1;
        assert_eq!(fs.needs_search(&other), Err(VfsError::Stale));
        assert_eq!(
            fs.needs_search(&FileKey(vec![1, 2])),
            Err(VfsError::BadHandle)
        );
        // Known keys and the root need none.
        assert_eq!(fs.needs_search(&f), Ok(false));
        assert_eq!(
            LocalFs::new(d.path(), false)
                .unwrap()
                .needs_search(&fs.root()),
            Ok(false)
        );
    }

    #[test]
    fn forged_keys() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        assert_eq!(
            fs.getattr(&ctx, &FileKey(vec![1, 2, 3])),
            Err(VfsError::BadHandle)
        );
        let mut k = fs.root().0;
        k[15] ^= 0x40; // another inode number
        assert_eq!(fs.getattr(&ctx, &FileKey(k)), Err(VfsError::Stale));
    }

    #[test]
    fn readdir_chunks_yield_every_name_once_despite_changes() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        for i in 0..500 {
            fs.create(
                &ctx,
                &root,
                format!("f{i}").as_bytes(),
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        }
        let mut seen = std::collections::HashMap::new();
        let mut cookie = 0;
        let mut n = 0;
        loop {
            let p = fs.readdir(&ctx, &root, cookie, 7, n % 2 == 0).unwrap();
            for e in &p.entries {
                *seen.entry(e.name.clone()).or_insert(0) += 1;
                cookie = e.cookie;
            }
            // Churn: new names appear and unrelated ones go between chunks.
            fs.create(
                &ctx,
                &root,
                format!("new{n}").as_bytes(),
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
            n += 1;
            if p.eof {
                break;
            }
        }
        for i in 0..500 {
            assert_eq!(seen.get(format!("f{i}").as_bytes()), Some(&1), "f{i}");
        }
        assert!(seen.values().all(|&c| c == 1));
    }

    fn ctx_of(uid: u32) -> Ctx {
        Ctx::new(Creds {
            uid,
            gid: uid,
            gids: Vec::new(),
        })
    }

    fn mode(m: u32) -> SetAttr {
        SetAttr {
            mode: Some(m),
            ..SetAttr::default()
        }
    }

    /// A LocalFs acting as each caller, which needs root; `None` (a recorded skip) without.
    fn fs_acting_as_callers() -> Option<(tempfile::TempDir, LocalFs)> {
        let (d, fs) = fs();
        if !fs.switch_creds {
            rnfs_testkit::skip("needs root to act as other users");
            return None;
        }
        Some((d, fs))
    }

    /// As `owner`, a file `f` of mode 0600 holding "secret", in a root everyone may write.
    fn owners_secret(fs: &LocalFs, owner: &Ctx) -> FileKey {
        fs.setattr(&Ctx::default(), &fs.root(), &mode(0o777), None)
            .unwrap();
        let (f, _) = fs
            .create(owner, &fs.root(), b"f", &CreateMode::Guarded(mode(0o600)))
            .unwrap();
        fs.write(owner, &f, 0, b"secret", Stability::Unstable)
            .unwrap();
        f
    }

    #[test]
    fn cached_descriptors_check_each_caller_and_follow_mode_changes() {
        let Some((_d, fs)) = fs_acting_as_callers() else {
            return;
        };
        let owner = ctx_of(1000);
        let other = ctx_of(2000);
        let f = owners_secret(&fs, &owner);
        assert_eq!(fs.read(&owner, &f, 0, 10).unwrap().0, b"secret");
        // The file is cached open now; another caller still gets what open(2) would say.
        assert_eq!(fs.read(&other, &f, 0, 10), Err(VfsError::Acces));
        assert_eq!(
            fs.write(&other, &f, 0, b"x", Stability::Unstable),
            Err(VfsError::Acces)
        );
        fs.setattr(&owner, &f, &mode(0o644), None).unwrap();
        assert_eq!(fs.read(&other, &f, 0, 10).unwrap().0, b"secret");
        assert_eq!(
            fs.write(&other, &f, 0, b"x", Stability::Unstable),
            Err(VfsError::Acces)
        );
        assert_eq!(fs.commit(&other, &f, 0, 0), Ok(()));
        fs.setattr(&owner, &f, &mode(0o000), None).unwrap();
        assert_eq!(fs.read(&other, &f, 0, 10), Err(VfsError::Acces));
        // The owner may still read and write (see the module docs), and root may.
        assert_eq!(fs.read(&owner, &f, 0, 10).unwrap().0, b"secret");
        fs.write(&owner, &f, 0, b"S", Stability::FileSync).unwrap();
        assert_eq!(fs.read(&Ctx::default(), &f, 0, 10).unwrap().0, b"Secret");
    }

    #[test]
    fn watch_fd_names_regular_files_only() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let (a, _) = fs
            .create(
                &ctx,
                &root,
                b"a",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        let fd = fs.watch_fd(&a).unwrap().expect("a regular file");
        let by_fd = rustix::fs::fstat(&fd).unwrap();
        let by_name = rustix::fs::stat(d.path().join("a")).unwrap();
        assert_eq!(by_fd.st_ino, by_name.st_ino, "the file of the key");
        let (sub, _) = fs.mkdir(&ctx, &root, b"sub", &SetAttr::default()).unwrap();
        assert!(fs.watch_fd(&sub).unwrap().is_none(), "not a directory");
        fs.remove(&ctx, &root, b"a").unwrap();
        assert!(fs.watch_fd(&a).is_err(), "gone: nothing to watch");
    }

    #[test]
    fn a_kept_file_is_served_after_its_last_name_is_removed() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let create = |name: &[u8]| {
            fs.create(
                &ctx,
                &root,
                name,
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap()
            .0
        };
        let a = create(b"a");
        fs.write(&ctx, &a, 0, b"before", Stability::Unstable)
            .unwrap();
        let held = fs.keep_open(&a).unwrap().expect("a regular file is kept");
        let again = fs.keep_open(&a).unwrap().expect("a second hold");
        fs.remove(&ctx, &root, b"a").unwrap();
        assert_eq!(fs.lookup(&ctx, &root, b"a").unwrap_err(), VfsError::NoEnt);
        // GETATTR shows no links; READ, WRITE and COMMIT reach the unlinked file.
        assert!(!fs.needs_search(&a).unwrap());
        assert_eq!(fs.getattr(&ctx, &a).unwrap().nlink, 0);
        fs.write(&ctx, &a, 6, b", after", Stability::Unstable)
            .unwrap();
        fs.commit(&ctx, &a, 0, 0).unwrap();
        assert_eq!(fs.read(&ctx, &a, 0, 64).unwrap().0, b"before, after");
        // Each call opens the unlinked file for itself: none of it goes into the cache.
        assert_eq!(fs.caches.files.len(), 0);
        assert_eq!(fs.getattr(&ctx, &a).unwrap().size, 13);
        // SETATTR too (ftruncate, fchmod, futimens of an unlinked temporary file).
        let set = SetAttr {
            size: Some(6),
            mode: Some(0o600),
            mtime: SetTime::At(Timestamp {
                secs: 1000,
                nsecs: 0,
            }),
            ..SetAttr::default()
        };
        let after = fs.setattr(&ctx, &a, &set, None).unwrap();
        assert_eq!(
            (after.size, after.mode & 0o7777, after.nlink),
            (6, 0o600, 0)
        );
        assert_eq!(after.mtime.secs, 1000);
        assert_eq!(fs.read(&ctx, &a, 0, 64).unwrap().0, b"before");
        // It goes with the last hold, not before.
        drop(held);
        assert_eq!(fs.getattr(&ctx, &a).unwrap().nlink, 0);
        drop(again);
        assert_eq!(fs.getattr(&ctx, &a), Err(VfsError::Stale));
        assert_eq!(fs.read(&ctx, &a, 0, 64), Err(VfsError::Stale));
        assert!(fs.kept.lock().is_empty());
        // Not a directory; nothing past the bound (the server then makes no promise).
        let (sub, _) = fs.mkdir(&ctx, &root, b"sub", &SetAttr::default()).unwrap();
        assert!(fs.keep_open(&sub).unwrap().is_none());
        let mut fs = fs;
        fs.kept_max = 1;
        let b = fs
            .create(
                &ctx,
                &root,
                b"b",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap()
            .0;
        let c = fs
            .create(
                &ctx,
                &root,
                b"c",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap()
            .0;
        let hb = fs.keep_open(&b).unwrap().expect("under the bound");
        assert!(fs.keep_open(&c).unwrap().is_none(), "at the bound");
        assert!(
            fs.keep_open(&b).unwrap().is_some(),
            "a kept file takes more holds"
        );
        drop(hb);
        assert!(fs.keep_open(&c).unwrap().is_some());
    }

    #[test]
    fn a_removed_file_a_call_in_flight_holds_is_closed_when_that_call_ends() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let (a, _) = fs
            .create(
                &ctx,
                &root,
                b"a",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        fs.write(&ctx, &a, 0, b"aaa", Stability::Unstable).unwrap();
        // A WRITE on the pool that took the cached descriptor just before the REMOVE.
        let in_flight = fs.io_file(&ctx, &a, Want::Write).unwrap();
        let open = Arc::downgrade(&in_flight);
        fs.remove(&ctx, &root, b"a").unwrap();
        assert_eq!(fs.caches.files.len(), 0);
        assert_eq!(open.strong_count(), 1, "only the call in flight holds it");
        // Late calls by handle neither reach it nor open and cache it again.
        assert_eq!(
            fs.write(&ctx, &a, 0, b"x", Stability::Unstable),
            Err(VfsError::Stale)
        );
        assert_eq!(fs.commit(&ctx, &a, 0, 0), Err(VfsError::Stale));
        assert_eq!(fs.read(&ctx, &a, 0, 10), Err(VfsError::Stale));
        assert_eq!(fs.caches.files.len(), 0);
        drop(in_flight);
        assert_eq!(open.strong_count(), 0, "closed when the call ended");
    }

    #[test]
    fn removed_and_replaced_files_are_not_kept_open() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let (sub, _) = fs.mkdir(&ctx, &root, b"sub", &SetAttr::default()).unwrap();
        let mk = |name: &[u8], data: &[u8]| {
            let (k, _) = fs
                .create(&ctx, &sub, name, &CreateMode::Unchecked(SetAttr::default()))
                .unwrap();
            fs.write(&ctx, &k, 0, data, Stability::Unstable).unwrap();
            assert_eq!(fs.read(&ctx, &k, 0, 10).unwrap().0, data);
            k
        };
        // REMOVE through the backend closes the cached descriptor (the space is freed).
        let a = mk(b"a", b"aaa");
        assert_eq!(fs.caches.files.len(), 1);
        fs.remove(&ctx, &sub, b"a").unwrap();
        assert_eq!(fs.caches.files.len(), 0);
        assert_eq!(fs.read(&ctx, &a, 0, 10), Err(VfsError::Stale));
        assert_eq!(fs.getattr(&ctx, &a), Err(VfsError::Stale));
        // Removed behind our back: the cached descriptor is not used.
        let b = mk(b"b", b"bbb");
        std::fs::remove_file(d.path().join("sub/b")).unwrap();
        assert_eq!(fs.read(&ctx, &b, 0, 10), Err(VfsError::Stale));
        assert_eq!(fs.getattr(&ctx, &b), Err(VfsError::Stale));
        assert_eq!(
            fs.write(&ctx, &b, 0, b"x", Stability::Unstable),
            Err(VfsError::Stale)
        );
        // RENAME over a cached file closes it; the renamed file is still served.
        let c = mk(b"c", b"ccc");
        let e = mk(b"e", b"eee");
        fs.rename(&ctx, &sub, b"c", &sub, b"e").unwrap();
        assert_eq!(fs.read(&ctx, &e, 0, 10), Err(VfsError::Stale));
        assert_eq!(fs.read(&ctx, &c, 0, 10).unwrap().0, b"ccc");
        fs.commit(&ctx, &c, 0, 0).unwrap();
        // RMDIR, and a directory removed behind our back, are STALE at once.
        let (dd, _) = fs.mkdir(&ctx, &sub, b"dd", &SetAttr::default()).unwrap();
        fs.lookup(&ctx, &dd, b".").unwrap();
        fs.rmdir(&ctx, &sub, b"dd").unwrap();
        assert_eq!(fs.getattr(&ctx, &dd), Err(VfsError::Stale));
        assert!(fs.lookup(&ctx, &dd, b"x").is_err());
        let (de, _) = fs.mkdir(&ctx, &sub, b"de", &SetAttr::default()).unwrap();
        fs.lookup(&ctx, &de, b".").unwrap();
        std::fs::remove_dir(d.path().join("sub/de")).unwrap();
        assert_eq!(fs.getattr(&ctx, &de), Err(VfsError::Stale));
        assert_eq!(
            fs.create(&ctx, &de, b"x", &CreateMode::Unchecked(SetAttr::default()))
                .map(|_| ()),
            Err(VfsError::Stale)
        );
    }

    /// Calls racing with REMOVE and RENAME over the same names: once they are done, no
    /// cached descriptor is of a removed file (which would keep its space allocated).
    #[test]
    fn no_removed_file_stays_cached_after_racing_calls() {
        let (_d, fs) = fs();
        let fs = Arc::new(fs);
        let root = fs.root();
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let fs = fs.clone();
                let root = root.clone();
                std::thread::spawn(move || {
                    let ctx = Ctx::default();
                    for i in 0..300u32 {
                        let name = [b'f', b'0' + ((i + u32::from(t)) % 5) as u8];
                        let other = [b'f', b'0' + ((i * 7 + u32::from(t)) % 5) as u8];
                        let how = CreateMode::Unchecked(SetAttr::default());
                        // Errors are expected: other threads remove and rename these names.
                        if let Ok((k, _)) = fs.create(&ctx, &root, &name, &how) {
                            let _ = fs.write(&ctx, &k, 0, b"data", Stability::Unstable);
                            let _ = fs.read(&ctx, &k, 0, 4);
                            let _ = fs.commit(&ctx, &k, 0, 0);
                        }
                        match i % 3 {
                            0 => drop(fs.remove(&ctx, &root, &name)),
                            1 => drop(fs.rename(&ctx, &root, &name, &root, &other)),
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        for f in fs.caches.files.values() {
            let stx = statx_fd(f.file.as_fd()).unwrap();
            assert!(stx.stx_nlink > 0, "a removed file is still held open");
        }
    }

    #[test]
    fn exclusive_create_retry() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let a = fs
            .create(&ctx, &root, b"x", &CreateMode::Exclusive(*b"12345678"))
            .unwrap();
        let b = fs
            .create(&ctx, &root, b"x", &CreateMode::Exclusive(*b"12345678"))
            .unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(
            fs.create(&ctx, &root, b"x", &CreateMode::Exclusive(*b"87654321")),
            Err(VfsError::Exist)
        );
        assert_eq!(
            fs.create(&ctx, &root, b"x", &CreateMode::Guarded(SetAttr::default()))
                .map(|_| ()),
            Err(VfsError::Exist)
        );
    }

    /// A file `f` in the root of `fs` holding `data`, written with `how`.
    fn file_with(fs: &dyn Backend, data: &[u8], how: Stability) -> FileKey {
        let ctx = Ctx::default();
        let how_create = CreateMode::Unchecked(SetAttr::default());
        let (f, _) = fs.create(&ctx, &fs.root(), b"f", &how_create).unwrap();
        fs.write(&ctx, &f, 0, data, how).unwrap();
        f
    }

    /// A `try_read_into` answer, and what `buf` holds after it (prefix included).
    fn try_read(
        fs: &LocalFs,
        ctx: &Ctx,
        k: &FileKey,
        offset: u64,
        count: u32,
    ) -> (Option<VfsResult<ReadDone>>, Vec<u8>) {
        let mut buf = b"head".to_vec();
        let r = fs.try_read_into(ctx, k, offset, count, &mut buf);
        (r, buf)
    }

    #[test]
    fn an_export_on_tmpfs_has_its_data_in_memory() {
        let Ok(d) = tempfile::tempdir_in("/dev/shm") else {
            rnfs_testkit::skip("no /dev/shm here");
            return;
        };
        let fs = LocalFs::new(d.path(), false).unwrap();
        assert!(fs.data_in_memory(), "/dev/shm is a tmpfs");
    }

    #[test]
    fn reads_without_waiting_give_what_read_into_gives() {
        let (_d, fs) = fs();
        let ctx = Ctx::default();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        // The write leaves the descriptor cached and the data in the page cache.
        let f = file_with(&fs, &data, Stability::Unstable);
        if !fs.nowait_reads.load(Ordering::Relaxed) {
            rnfs_testkit::skip("the file system of the temporary directory has no RWF_NOWAIT");
            return;
        }
        for (offset, count) in [
            (0, 4096),
            (5, 20_000),
            (19_990, 100),
            (20_000, 10),
            (1 << 40, 1),
        ] {
            let mut want = b"head".to_vec();
            let done = fs.read_into(&ctx, &f, offset, count, &mut want).unwrap();
            let (r, got) = try_read(&fs, &ctx, &f, offset, count);
            match r {
                Some(Ok(d)) => {
                    assert_eq!(got, want, "at {offset}");
                    assert_eq!(d, done, "at {offset}");
                }
                // Only EOPNOTSUPP (tmpfs) may say no here: the data is cached.
                other => {
                    assert!(!fs.nowait_reads.load(Ordering::Relaxed), "{other:?}");
                    rnfs_testkit::skip(&format!(
                        "from offset {offset} on: the file system refused RWF_NOWAIT"
                    ));
                    return;
                }
            }
        }
    }

    #[test]
    fn reads_that_would_wait_answer_none_and_leave_the_buffer() {
        let (d, fs) = fs();
        let ctx = Ctx::default();
        let root = fs.root();
        let f = file_with(&fs, &[7; 8192], Stability::FileSync);
        // A descriptor that is not cached (a fresh instance) would need an open.
        let fs2 = LocalFs::new(d.path(), false).unwrap();
        assert_eq!(try_read(&fs2, &ctx, &f, 0, 10), (None, b"head".to_vec()));
        // Forged or foreign keys, and directories, are left to read_into to refuse.
        assert_eq!(try_read(&fs, &ctx, &FileKey(vec![1; 3]), 0, 10).0, None);
        assert_eq!(try_read(&fs, &ctx, &root, 0, 10).0, None);
        // Data not in the page cache: dropped from it after the FileSync write, where the
        // kernel lets us (ext4, the temporary directory here) and can answer RWF_NOWAIT.
        let file = std::fs::File::open(d.path().join("f")).unwrap();
        let dropped = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).is_ok();
        let ext4 = rustix::fs::fstatfs(&file).is_ok_and(|s| s.f_type == 0xef53);
        if dropped && ext4 {
            assert_eq!(try_read(&fs, &ctx, &f, 0, 10), (None, b"head".to_vec()));
        } else {
            rnfs_testkit::skip(&format!(
                "the uncached read (needs ext4 and fadvise DONTNEED; here ext4 {ext4}, \
                 dropped {dropped}); the rest of the test ran"
            ));
        }
        // The blocking path still reads it.
        assert_eq!(fs.read(&ctx, &f, 0, 3).unwrap().0, [7; 3]);
    }

    #[test]
    fn reads_without_waiting_refuse_other_callers_as_read_into_does() {
        let Some((_d, fs)) = fs_acting_as_callers() else {
            return;
        };
        let owner = ctx_of(1000);
        let f = owners_secret(&fs, &owner);
        // Not the owner, no permission: never data, whatever the cache holds.
        let (r, buf) = try_read(&fs, &ctx_of(2000), &f, 0, 10);
        assert!(matches!(r, None | Some(Err(VfsError::Acces))), "{r:?}");
        assert_eq!(buf, b"head");
        assert_eq!(fs.read(&ctx_of(2000), &f, 0, 10), Err(VfsError::Acces));
        if fs.nowait_reads.load(Ordering::Relaxed) {
            let (r, buf) = try_read(&fs, &owner, &f, 0, 10);
            assert!(matches!(r, Some(Ok(_)) | None), "{r:?}");
            if r.is_some() {
                assert_eq!(buf, b"headsecret");
            }
        } else {
            rnfs_testkit::skip(
                "the owner's read without waiting (the temporary directory's file system has \
                 no RWF_NOWAIT); the refusals ran",
            );
        }
    }

    #[test]
    fn backends_that_cannot_tell_answer_none() {
        // The memory backend (which never waits, and runs inline anyway) keeps the default.
        let fs = crate::memory::MemFs::new(1 << 20);
        let ctx = Ctx::default();
        let f = file_with(&fs, b"abc", Stability::Unstable);
        let mut buf = Vec::new();
        assert!(fs.try_read_into(&ctx, &f, 0, 3, &mut buf).is_none());
        assert!(buf.is_empty());
    }
}
