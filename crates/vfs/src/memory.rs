//! In-memory backend: a complete POSIX file system held in RAM under a size limit.
//!
//! [`MemFs`] is what `rnfs serve --memory SIZE` exports. It aims at the semantics a Linux
//! local file system gives (so that pjdfstest passes through NFS), with these choices:
//!
//! # Space accounting
//!
//! The capacity given to [`MemFs::new`] bounds the sum of:
//! - [`INODE_COST`] bytes for every inode (so millions of empty files also run out of
//!   space),
//! - [`ENTRY_COST`] bytes plus the name's length for every directory entry (so hard links
//!   are not free either),
//! - the length of every symbolic link target,
//! - [`CHUNK`] bytes for every allocated chunk of file data.
//!
//! Files are **sparse**: data lives in [`CHUNK`]-sized blocks that are allocated on first
//! write, and holes read as zeros. Growing a file with SETATTR size, or writing far beyond
//! its end, costs only the chunks actually written. A call that would need more than the
//! free space fails with [`VfsError::NoSpc`] and changes nothing (a write is all or
//! nothing); space freed by a remove or a truncation is available again at once. Since
//! only written chunks count, SETATTR size never fails with `NoSpc`, and the largest file
//! size is `i64::MAX` as for a local file system (beyond it: [`VfsError::FBig`]).
//!
//! # Keys
//!
//! A [`FileKey`] is 16 bytes: the inode number then a generation, both big-endian. The
//! generation mixes a random id of the [`MemFs`] instance with the inode number, so a key
//! of another instance (for example from before a server restart) is [`VfsError::Stale`].
//! Inode numbers are never reused within an instance, so the key of a removed object is
//! stale as well. A key of another length is [`VfsError::BadHandle`]. The file id is the
//! inode number; the root is inode 1.
//!
//! # Directories
//!
//! Entries are kept in a map ordered by their cookie ([`cookie::of_name`]), which makes
//! READDIR resumable after any cookie whatever happened in between. Two different names
//! of one directory with the same 63-bit cookie cannot both exist: creating (or renaming
//! to) the second fails with [`VfsError::Exist`]. This is astronomically rare (about one
//! chance in 10^9 for a directory of 100 000 entries) and is logged when it happens.
//!
//! # Permissions
//!
//! Checks follow Linux (see [`perm`]), in the order Linux makes them, with two deliberate
//! NFS-server rules taken from the Linux NFS server: the owner of a file may always read,
//! write and truncate it (the client already checked permission when the file was opened,
//! and a file created read-only must stay writable through the descriptor that created
//! it), and reading is allowed with execute permission alone (so a client can run a
//! program it may only execute). SETATTR mode on a symbolic link is ignored, as Linux
//! ignores it. The uid/gid given with a CREATE/MKDIR/... are honoured only for root.
//! Hard links are not restricted as Linux's `protected_hardlinks` does (the client's
//! kernel applies that). An exclusive CREATE carries no attributes, so it makes the file
//! with mode 0600 (private to its owner) until the client's SETATTR that follows.
//!
//! Timestamps: every change sets ctime and the change attribute; data changes and
//! directory entry changes set mtime too. Reads do not update atime. Timestamps given out
//! by one instance strictly increase, so two changes never leave equal ctimes.
//!
//! Everything sits behind one [`RwLock`]; memory released by a call is freed after the
//! lock is dropped.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::perm::{self, R, W, X};
use crate::{
    check_name, check_new_name, check_xattr_name, cookie, Attr, Backend, ChangeKind, Content,
    CreateMode, Creds, Ctx, DirEntry, DirPage, FileKey, FileType, FsStat, Limits, ReadDone,
    SetAttr, SetTime, SoughtAt, SpecialKind, Stability, Timestamp, VfsError, VfsResult, XattrSet,
    XATTR_LIST_MAX, XATTR_SIZE_MAX,
};

/// Bytes charged for every inode, whatever it holds.
pub const INODE_COST: u64 = 256;
/// Bytes charged for every directory entry, on top of the length of its name.
pub const ENTRY_COST: u64 = 32;
/// Allocation unit of file data, in bytes.
pub const CHUNK: u64 = 4096;
/// Most extended attributes one file holds (besides [`crate::XATTR_LIST_MAX`] bytes of
/// names and the capacity): as many as one NFSv4.2 LISTXATTRS reply may carry.
pub const XATTRS_PER_FILE: usize = 1024;

/// Key length: inode number and generation.
const KEY_LEN: usize = 16;
/// Inode number of the root directory.
const ROOT_INO: u64 = 1;
/// The fsid reported for every object ("rnfsmem1").
const FSID: u64 = 0x726e_6673_6d65_6d31;
/// Largest file size.
const MAX_SIZE: u64 = i64::MAX as u64;
/// Most bytes one READ returns (the server asks for far less).
const MAX_READ: u64 = 1 << 24;
/// Longest symbolic link target (PATH_MAX).
const SYMLINK_MAX: usize = 4096;
/// Size a directory reports per entry (as tmpfs does), `.` and `..` included.
const DIRENT_SIZE: u64 = 20;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;

/// An in-memory file system with a size limit. See the [module documentation](self).
pub struct MemFs {
    instance: u64,
    limits: Limits,
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for MemFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.inner.read();
        f.debug_struct("MemFs")
            .field("capacity", &g.capacity)
            .field("used", &g.used)
            .field("inodes", &g.nodes.len())
            .finish()
    }
}

/// The state behind the lock.
struct Inner {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    capacity: u64,
    used: u64,
    /// Last change attribute handed out.
    seq: u64,
    /// Last timestamp handed out.
    last_time: Timestamp,
}

/// One inode.
struct Node {
    ftype: FileType,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    rdev: (u32, u32),
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    change: u64,
    /// Verifier of the exclusive CREATE that made this file.
    verifier: Option<[u8; 8]>,
    /// User extended attributes, by name without namespace (regular files and directories
    /// only, as Linux has them).
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    body: Body,
}

/// What an inode holds besides its attributes.
enum Body {
    File(FileData),
    Dir(DirData),
    Symlink(Vec<u8>),
    Special,
}

/// Contents of a regular file: a size and the chunks written so far. Bytes of a chunk
/// beyond the size are always zero.
#[derive(Default)]
struct FileData {
    size: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

/// A directory: its parent and its entries by cookie.
struct DirData {
    parent: u64,
    entries: BTreeMap<u64, DirEnt>,
}

/// A directory entry.
struct DirEnt {
    name: Vec<u8>,
    ino: u64,
}

/// Memory released under the lock, freed after it.
#[derive(Default)]
struct Trash {
    nodes: Vec<Node>,
    chunks: Vec<BTreeMap<u64, Box<[u8]>>>,
}

/// What a name designates in a directory.
enum Slot {
    Free,
    Taken(u64),
    /// Another name with the same cookie.
    Clash,
}

impl FileData {
    fn chunk_range(offset: u64, end: u64) -> std::ops::RangeInclusive<u64> {
        offset / CHUNK..=(end - 1) / CHUNK
    }

    /// Appends `[offset, offset + n)`, which lies within the size, to `buf`; `n > 0`. Each
    /// byte is written once: chunks are copied, only holes are zero-filled.
    fn read_into(&self, offset: u64, n: u64, buf: &mut Vec<u8>) {
        buf.reserve_exact(n as usize);
        let end = offset + n;
        let mut pos = offset;
        for (&idx, chunk) in self.chunks.range(Self::chunk_range(offset, end)) {
            let start = idx * CHUNK;
            let from = offset.max(start);
            let to = end.min(start + CHUNK);
            if from > pos {
                buf.resize(buf.len() + (from - pos) as usize, 0);
            }
            buf.extend_from_slice(&chunk[(from - start) as usize..(to - start) as usize]);
            pos = to;
        }
        if end > pos {
            buf.resize(buf.len() + (end - pos) as usize, 0);
        }
    }

    /// How many chunks a write of `[offset, end)` would allocate; `end > offset`.
    /// Costs what the chunks held in the range number, not the range's length (an
    /// ALLOCATE may name a range of exabytes).
    fn missing_chunks(&self, offset: u64, end: u64) -> u64 {
        let r = Self::chunk_range(offset, end);
        let all = r.end() - r.start() + 1;
        all - self.chunks.range(r).count() as u64
    }

    /// Writes `data` at `offset`, allocating chunks; `data` is not empty.
    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for idx in Self::chunk_range(offset, end) {
            let start = idx * CHUNK;
            let from = offset.max(start);
            let to = end.min(start + CHUNK);
            let chunk = self
                .chunks
                .entry(idx)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            chunk[(from - start) as usize..(to - start) as usize]
                .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
        }
        self.size = self.size.max(end);
    }

    /// The first byte of `what` at or after `offset`, which is below the size: data is
    /// what the allocated chunks cover, holes the rest, and the size is the virtual hole
    /// every file ends with (then `eof`).
    fn seek(&self, offset: u64, what: Content) -> SoughtAt {
        let first = offset / CHUNK;
        let found = match what {
            Content::Data => self
                .chunks
                .range(first..)
                .next()
                .map(|(&i, _)| (i * CHUNK).max(offset)),
            // The first chunk index from `first` on that is not allocated: chunks run
            // consecutively until it.
            Content::Hole => {
                let mut next = first;
                for (&i, _) in self.chunks.range(first..) {
                    if i != next {
                        break;
                    }
                    next = i + 1;
                }
                Some(next.saturating_mul(CHUNK).max(offset))
            }
        };
        match found {
            Some(at) if at < self.size => SoughtAt {
                offset: at,
                eof: false,
            },
            _ => SoughtAt {
                offset: self.size,
                eof: true,
            },
        }
    }

    /// Allocates zeroed chunks over `[offset, end)` and grows the size to `end`;
    /// `end > offset`. The caller charged [`FileData::missing_chunks`].
    fn allocate(&mut self, offset: u64, end: u64) {
        for idx in Self::chunk_range(offset, end) {
            self.chunks
                .entry(idx)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
        }
        self.size = self.size.max(end);
    }

    /// Zeroes `[offset, end)` (clipped to the size), dropping the chunks it covers whole;
    /// returns them. Costs what the chunks held number, not the range's length.
    fn punch(&mut self, offset: u64, end: u64) -> BTreeMap<u64, Box<[u8]>> {
        let end = end.min(self.size);
        if end <= offset {
            return BTreeMap::new();
        }
        let whole = offset.div_ceil(CHUNK)..end / CHUNK;
        let mut removed = BTreeMap::new();
        if whole.start < whole.end {
            removed = self.chunks.split_off(&whole.start);
            let mut after = removed.split_off(&whole.end);
            self.chunks.append(&mut after);
        }
        // The chunks at either end, when the range covers them in part.
        for idx in [offset / CHUNK, (end - 1) / CHUNK] {
            if whole.contains(&idx) {
                continue;
            }
            if let Some(c) = self.chunks.get_mut(&idx) {
                let start = idx * CHUNK;
                let from = offset.max(start);
                let to = end.min(start + CHUNK);
                c[(from - start) as usize..(to - start) as usize].fill(0);
            }
        }
        removed
    }

    /// The pieces of `[offset, offset + n)`, which lies within the size, relative to
    /// `offset` in order: data (a copy of its bytes, held in chunks) or holes (`None`).
    /// Costs what the chunks in the range number, not the range's length.
    fn pieces(&self, offset: u64, n: u64) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        let end = offset + n;
        let mut pos = offset;
        for (&idx, chunk) in self.chunks.range(Self::chunk_range(offset, end)) {
            let start = idx * CHUNK;
            let from = offset.max(start);
            let to = end.min(start + CHUNK);
            if from > pos {
                out.push((pos - offset, from - pos, None));
            }
            let bytes = chunk[(from - start) as usize..(to - start) as usize].to_vec();
            // Consecutive chunks make one data piece.
            match out.last_mut() {
                Some((at, len, Some(b))) if *at + *len == from - offset => {
                    b.extend_from_slice(&bytes);
                    *len += to - from;
                }
                _ => out.push((from - offset, to - from, Some(bytes))),
            }
            pos = to;
        }
        if end > pos {
            out.push((pos - offset, end - pos, None));
        }
        out
    }

    /// Sets the size; returns the chunks no longer needed.
    fn truncate(&mut self, size: u64) -> BTreeMap<u64, Box<[u8]>> {
        let mut removed = BTreeMap::new();
        if size < self.size {
            removed = self.chunks.split_off(&size.div_ceil(CHUNK));
            let tail = (size % CHUNK) as usize;
            if tail != 0 {
                if let Some(c) = self.chunks.get_mut(&(size / CHUNK)) {
                    c[tail..].fill(0);
                }
            }
        }
        self.size = size;
        removed
    }
}

impl Node {
    /// The contents of this regular file (inode `ino`), for `c` to read (`write` false:
    /// its owner, or read or execute permission, as knfsd lets a reader of its own
    /// executable) or to write (its owner, or write permission). ISDIR for a directory,
    /// INVAL for any other kind, ACCES when not allowed. With the attributes checked.
    fn file_for(&self, ino: u64, c: &Creds, write: bool) -> VfsResult<(&FileData, Attr)> {
        let f = match &self.body {
            Body::File(f) => f,
            Body::Dir(_) => return Err(VfsError::IsDir),
            _ => return Err(VfsError::Inval),
        };
        let a = self.attr(ino);
        let allowed = if write {
            perm::allowed(c, &a, W)
        } else {
            perm::allowed(c, &a, R) || perm::allowed(c, &a, X)
        };
        if c.uid != self.uid && !allowed {
            return Err(VfsError::Acces);
        }
        Ok((f, a))
    }

    fn attr(&self, ino: u64) -> Attr {
        let (size, used) = match &self.body {
            Body::File(f) => (f.size, f.chunks.len() as u64 * CHUNK),
            Body::Dir(d) => {
                let s = (d.entries.len() as u64 + 2) * DIRENT_SIZE;
                (s, s)
            }
            Body::Symlink(t) => (t.len() as u64, t.len() as u64),
            Body::Special => (0, 0),
        };
        Attr {
            ftype: self.ftype,
            mode: self.mode,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            size,
            used,
            rdev: self.rdev,
            fsid: FSID,
            fileid: ino,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            change: self.change,
        }
    }

    /// Bytes this inode is charged, its directory entries aside.
    fn cost(&self) -> u64 {
        INODE_COST
            + self
                .xattrs
                .iter()
                .map(|(k, v)| xattr_cost(k, v))
                .sum::<u64>()
            + match &self.body {
                Body::File(f) => f.chunks.len() as u64 * CHUNK,
                Body::Symlink(t) => t.len() as u64,
                Body::Dir(_) | Body::Special => 0,
            }
    }

    fn is_dir(&self) -> bool {
        self.ftype == FileType::Directory
    }

    /// Drops set-user-id and set-group-id as a write or truncation by `c` does on Linux.
    fn kill_privs(&mut self, c: &Creds) {
        if c.uid != 0 {
            let mut mode = self.mode & !S_ISUID;
            if drops_sgid(c, mode, self.gid) {
                mode &= !S_ISGID;
            }
            self.mode = mode;
        }
    }
}

/// Whether Linux clears S_ISGID of a file with `mode` and group `gid` when `c` writes,
/// truncates or chowns it: when group execute is set (a real set-group-id program) or the
/// caller, not being root, is not in the group.
/// Whether `c` may set or remove user extended attributes of `n` (inode `ino`), as Linux
/// decides: regular files and directories only (PERM for others), write permission, and
/// on a sticky directory only its owner (or root).
fn xattr_writable(c: &Creds, n: &Node, ino: u64) -> VfsResult<()> {
    if !matches!(n.ftype, FileType::Regular | FileType::Directory) {
        return Err(VfsError::Perm);
    }
    if n.is_dir() && n.mode & 0o1000 != 0 && c.uid != 0 && c.uid != n.uid {
        return Err(VfsError::Perm);
    }
    if !perm::allowed(c, &n.attr(ino), W) {
        return Err(VfsError::Acces);
    }
    Ok(())
}

fn drops_sgid(c: &Creds, mode: u32, gid: u32) -> bool {
    mode & S_ISGID != 0 && (mode & S_IXGRP != 0 || (c.uid != 0 && !c.in_group(gid)))
}

/// Bytes charged for an extended attribute.
fn xattr_cost(name: &[u8], value: &[u8]) -> u64 {
    ENTRY_COST + name.len() as u64 + value.len() as u64
}

/// Bytes a name takes in Linux's `listxattr` list: `user.`, the name, a NUL.
fn xattr_list_len(name: &[u8]) -> usize {
    name.len() + 6
}

fn entry_cost(name: &[u8]) -> u64 {
    ENTRY_COST + name.len() as u64
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

fn slot(d: &DirData, name: &[u8]) -> Slot {
    match d.entries.get(&cookie::of_name(name)) {
        None => Slot::Free,
        Some(e) if e.name == name => Slot::Taken(e.ino),
        Some(_) => Slot::Clash,
    }
}

fn clash(name: &[u8]) -> VfsError {
    tracing::warn!(name = %String::from_utf8_lossy(name), "directory cookie collision: name refused");
    VfsError::Exist
}

fn resolve(t: SetTime, now: Timestamp) -> Option<Timestamp> {
    match t {
        SetTime::Keep => None,
        SetTime::Now => Some(now),
        SetTime::At(t) => Some(t),
    }
}

/// SplitMix64 finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random id for a new instance.
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let t = Timestamp::now();
    h.write_i64(t.secs);
    h.write_u32(t.nsecs);
    h.write_u32(std::process::id());
    h.finish()
}

impl Inner {
    fn node(&self, ino: u64) -> VfsResult<&Node> {
        self.nodes.get(&ino).ok_or(VfsError::Stale)
    }

    fn node_mut(&mut self, ino: u64) -> VfsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(VfsError::Stale)
    }

    fn dir(&self, ino: u64) -> VfsResult<(&Node, &DirData)> {
        let n = self.node(ino)?;
        match &n.body {
            Body::Dir(d) => Ok((n, d)),
            _ => Err(VfsError::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> VfsResult<&mut DirData> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            _ => Err(VfsError::NotDir),
        }
    }

    /// The current time, later than any handed out before.
    fn now(&mut self) -> Timestamp {
        let t = Timestamp::now();
        let next = if t > self.last_time {
            t
        } else if self.last_time.nsecs + 1 < 1_000_000_000 {
            Timestamp {
                secs: self.last_time.secs,
                nsecs: self.last_time.nsecs + 1,
            }
        } else {
            Timestamp {
                secs: self.last_time.secs + 1,
                nsecs: 0,
            }
        };
        self.last_time = next;
        next
    }

    fn next_change(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records a change of `ino`: ctime and change attribute, and mtime if `data`.
    fn touch(&mut self, ino: u64, now: Timestamp, data: bool) {
        let seq = self.next_change();
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.ctime = now;
            if data {
                n.mtime = now;
            }
            n.change = seq;
        }
    }

    fn charge(&mut self, bytes: u64) -> VfsResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        match self.used.checked_add(bytes) {
            Some(u) if u <= self.capacity => {
                self.used = u;
                Ok(())
            }
            _ => Err(VfsError::NoSpc),
        }
    }

    fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    fn drop_node(&mut self, ino: u64, trash: &mut Trash) {
        if let Some(n) = self.nodes.remove(&ino) {
            self.release(n.cost());
            trash.nodes.push(n);
        }
    }

    /// Whether directory `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: u64, mut b: u64) -> bool {
        // Bounded walk: the tree cannot be deeper than the number of inodes.
        for _ in 0..=self.nodes.len() {
            if b == a {
                return true;
            }
            if b == ROOT_INO {
                return false;
            }
            match self.dir(b) {
                Ok((_, d)) => b = d.parent,
                Err(_) => return false,
            }
        }
        false
    }

    /// The checks before creating `name` in `dir`: search permission, then either the
    /// inode the name already designates, or (the name being free) write permission.
    fn begin_create(&self, c: &Creds, dir: u64, name: &[u8]) -> VfsResult<Option<u64>> {
        let (dn, dd) = self.dir(dir)?;
        let da = dn.attr(dir);
        if !perm::allowed(c, &da, X) {
            return Err(VfsError::Acces);
        }
        match slot(dd, name) {
            Slot::Taken(ino) => return Ok(Some(ino)),
            Slot::Clash => return Err(clash(name)),
            Slot::Free => {}
        }
        if !perm::allowed(c, &da, W | X) {
            return Err(VfsError::Acces);
        }
        Ok(None)
    }

    /// A new inode made by `c` in `parent`, with the initial attributes `set` (mode 0755
    /// for a directory, 0644 for others if none is given; a symbolic link has 0777).
    fn new_node(
        &self,
        c: &Creds,
        parent: u64,
        ftype: FileType,
        set: &SetAttr,
        body: Body,
        now: Timestamp,
    ) -> VfsResult<Node> {
        let p = self.node(parent)?;
        let parent_sgid = p.mode & S_ISGID != 0;
        let mut uid = c.uid;
        let mut gid = if parent_sgid { p.gid } else { c.gid };
        if c.uid == 0 {
            uid = set.uid.unwrap_or(uid);
            gid = set.gid.unwrap_or(gid);
        }
        let mode = match ftype {
            FileType::Directory => {
                (set.mode.unwrap_or(0o755) & 0o1777) | if parent_sgid { S_ISGID } else { 0 }
            }
            FileType::Symlink => 0o777,
            _ => {
                let m = set.mode.unwrap_or(0o644) & 0o7777;
                if c.uid != 0 && !c.in_group(gid) {
                    m & !S_ISGID
                } else {
                    m
                }
            }
        };
        let mut body = body;
        if let (Some(size), Body::File(f)) = (set.size, &mut body) {
            if size > MAX_SIZE {
                return Err(VfsError::FBig);
            }
            f.size = size;
        }
        Ok(Node {
            ftype,
            mode,
            nlink: if ftype == FileType::Directory { 2 } else { 1 },
            uid,
            gid,
            rdev: (0, 0),
            atime: resolve(set.atime, now).unwrap_or(now),
            mtime: resolve(set.mtime, now).unwrap_or(now),
            ctime: now,
            change: 0,
            verifier: None,
            xattrs: BTreeMap::new(),
            body,
        })
    }

    /// Links a new inode into `parent` under `name` (checked free), charging its space.
    fn insert_new(
        &mut self,
        parent: u64,
        name: &[u8],
        mut node: Node,
        now: Timestamp,
    ) -> VfsResult<u64> {
        let is_dir = node.is_dir();
        self.charge(node.cost() + entry_cost(name))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        node.change = self.next_change();
        let pd = self.dir_mut(parent)?;
        pd.entries.insert(
            cookie::of_name(name),
            DirEnt {
                name: name.to_vec(),
                ino,
            },
        );
        self.nodes.insert(ino, node);
        if is_dir {
            if let Ok(p) = self.node_mut(parent) {
                p.nlink = p.nlink.saturating_add(1);
            }
        }
        self.touch(parent, now, true);
        Ok(ino)
    }

    /// SETATTR: checks everything, then applies everything.
    fn setattr(&mut self, c: &Creds, ino: u64, set: &SetAttr, trash: &mut Trash) -> VfsResult<()> {
        let n = self.node(ino)?;
        let a = n.attr(ino);
        let root = c.uid == 0;
        let owner = c.uid == n.uid;
        if let Some(size) = set.size {
            match n.ftype {
                FileType::Regular => {}
                FileType::Directory => return Err(VfsError::IsDir),
                _ => return Err(VfsError::Inval),
            }
            if !owner && !perm::allowed(c, &a, W) {
                return Err(VfsError::Acces);
            }
            if size > MAX_SIZE {
                return Err(VfsError::FBig);
            }
        }
        if let Some(u) = set.uid {
            if !(root || (owner && u == n.uid)) {
                return Err(VfsError::Perm);
            }
        }
        if let Some(g) = set.gid {
            if !(root || (owner && (g == n.gid || c.in_group(g)))) {
                return Err(VfsError::Perm);
            }
        }
        if set.mode.is_some() && !root && !owner {
            return Err(VfsError::Perm);
        }
        let explicit = matches!(set.atime, SetTime::At(_)) || matches!(set.mtime, SetTime::At(_));
        let to_now = set.atime == SetTime::Now || set.mtime == SetTime::Now;
        if explicit && !root && !owner {
            return Err(VfsError::Perm);
        }
        if to_now && !root && !owner && !perm::allowed(c, &a, W) {
            return Err(VfsError::Acces);
        }

        let now = self.now();
        let mut freed = 0;
        let n = self.node_mut(ino)?;
        let old_gid = n.gid;
        if let Some(size) = set.size {
            if let Body::File(f) = &mut n.body {
                if size != f.size {
                    let removed = f.truncate(size);
                    freed = removed.len() as u64 * CHUNK;
                    trash.chunks.push(removed);
                    n.mtime = now;
                }
            }
            if set.mode.is_none() {
                n.kill_privs(c);
            }
        }
        if let Some(u) = set.uid {
            n.uid = u;
        }
        if let Some(g) = set.gid {
            n.gid = g;
        }
        let mut mode = n.mode;
        if let Some(m) = set.mode {
            if n.ftype != FileType::Symlink {
                mode = m & 0o7777;
                if !root && !c.in_group(n.gid) {
                    mode &= !S_ISGID;
                }
            }
        }
        if (set.uid.is_some() || set.gid.is_some()) && !n.is_dir() {
            mode &= !S_ISUID;
            if drops_sgid(c, mode, old_gid) {
                mode &= !S_ISGID;
            }
        }
        n.mode = mode;
        if let Some(t) = resolve(set.atime, now) {
            n.atime = t;
        }
        if let Some(t) = resolve(set.mtime, now) {
            n.mtime = t;
        }
        self.release(freed);
        self.touch(ino, now, false);
        Ok(())
    }

    /// Removes `name` from `dir`: a directory (rmdir) if `want_dir`, else anything else.
    fn unlink(
        &mut self,
        c: &Creds,
        dir: u64,
        name: &[u8],
        want_dir: bool,
        trash: &mut Trash,
    ) -> VfsResult<()> {
        let (dn, dd) = self.dir(dir)?;
        let da = dn.attr(dir);
        if !perm::allowed(c, &da, X) {
            return Err(VfsError::Acces);
        }
        let ino = match slot(dd, name) {
            Slot::Taken(ino) => ino,
            Slot::Free | Slot::Clash => return Err(VfsError::NoEnt),
        };
        let n = self.node(ino)?;
        if !perm::allowed(c, &da, W | X) {
            return Err(VfsError::Acces);
        }
        if !perm::may_delete(c, &da, n.uid) {
            return Err(VfsError::Perm);
        }
        let is_dir = n.is_dir();
        if want_dir && !is_dir {
            return Err(VfsError::NotDir);
        }
        if !want_dir && is_dir {
            return Err(VfsError::IsDir);
        }
        if let Body::Dir(d) = &n.body {
            if !d.entries.is_empty() {
                return Err(VfsError::NotEmpty);
            }
        }

        let now = self.now();
        self.dir_mut(dir)?.entries.remove(&cookie::of_name(name));
        self.release(entry_cost(name));
        if is_dir {
            if let Ok(p) = self.node_mut(dir) {
                p.nlink = p.nlink.saturating_sub(1);
            }
            self.drop_node(ino, trash);
        } else {
            self.unref(ino, now, trash);
        }
        self.touch(dir, now, true);
        Ok(())
    }

    /// Drops one link of non-directory `ino`, freeing it with its last link.
    fn unref(&mut self, ino: u64, now: Timestamp, trash: &mut Trash) {
        let left = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.nlink = n.nlink.saturating_sub(1);
                n.nlink
            }
            None => return,
        };
        if left == 0 {
            self.drop_node(ino, trash);
        } else {
            self.touch(ino, now, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rename(
        &mut self,
        c: &Creds,
        link_max: u32,
        fd: u64,
        from: &[u8],
        td: u64,
        to: &[u8],
        trash: &mut Trash,
    ) -> VfsResult<()> {
        let fattr = self.dir(fd)?.0.attr(fd);
        let tattr = self.dir(td)?.0.attr(td);
        if !perm::allowed(c, &fattr, X) || !perm::allowed(c, &tattr, X) {
            return Err(VfsError::Acces);
        }
        let src = match slot(self.dir(fd)?.1, from) {
            Slot::Taken(ino) => ino,
            Slot::Free | Slot::Clash => return Err(VfsError::NoEnt),
        };
        let tgt = match slot(self.dir(td)?.1, to) {
            Slot::Free => None,
            Slot::Taken(ino) => Some(ino),
            Slot::Clash => return Err(clash(to)),
        };
        let s = self.node(src)?;
        let s_is_dir = s.is_dir();
        let s_uid = s.uid;
        let sattr = s.attr(src);
        // Moving a directory under itself.
        if s_is_dir && self.is_ancestor(src, td) {
            return Err(VfsError::Inval);
        }
        if let Some(t) = tgt {
            if t == src {
                return Ok(());
            }
            // Replacing an ancestor of the source: it cannot be empty.
            if self.is_ancestor(t, fd) {
                return Err(VfsError::NotEmpty);
            }
        }
        if !perm::allowed(c, &fattr, W | X) {
            return Err(VfsError::Acces);
        }
        if !perm::may_delete(c, &fattr, s_uid) {
            return Err(VfsError::Perm);
        }
        let mut freed = entry_cost(from);
        let mut target = None;
        if let Some(t) = tgt {
            let tn = self.node(t)?;
            if !perm::allowed(c, &tattr, W | X) {
                return Err(VfsError::Acces);
            }
            if !perm::may_delete(c, &tattr, tn.uid) {
                return Err(VfsError::Perm);
            }
            let t_is_dir = tn.is_dir();
            if s_is_dir && !t_is_dir {
                return Err(VfsError::NotDir);
            }
            if !s_is_dir && t_is_dir {
                return Err(VfsError::IsDir);
            }
            freed += entry_cost(to);
            if t_is_dir || tn.nlink <= 1 {
                freed += tn.cost();
            }
            target = Some((t, t_is_dir));
        } else if !perm::allowed(c, &tattr, W | X) {
            return Err(VfsError::Acces);
        }
        let moves_dir = s_is_dir && fd != td;
        // Updating '..' of a moved directory needs write permission on it.
        if moves_dir && !perm::allowed(c, &sattr, W) {
            return Err(VfsError::Acces);
        }
        if let Some((t, true)) = target {
            if let Body::Dir(d) = &self.node(t)?.body {
                if !d.entries.is_empty() {
                    return Err(VfsError::NotEmpty);
                }
            }
        }
        if moves_dir && target.is_none() && tattr.nlink >= link_max {
            return Err(VfsError::MLink);
        }
        let cost = entry_cost(to);
        if cost > freed && self.used.saturating_add(cost - freed) > self.capacity {
            return Err(VfsError::NoSpc);
        }

        let now = self.now();
        self.dir_mut(fd)?.entries.remove(&cookie::of_name(from));
        self.release(entry_cost(from));
        if let Some((t, t_is_dir)) = target {
            self.dir_mut(td)?.entries.remove(&cookie::of_name(to));
            self.release(entry_cost(to));
            if t_is_dir {
                if let Ok(p) = self.node_mut(td) {
                    p.nlink = p.nlink.saturating_sub(1);
                }
                self.drop_node(t, trash);
            } else {
                self.unref(t, now, trash);
            }
        }
        self.dir_mut(td)?.entries.insert(
            cookie::of_name(to),
            DirEnt {
                name: to.to_vec(),
                ino: src,
            },
        );
        self.used = self.used.saturating_add(cost);
        if moves_dir {
            self.dir_mut(src)?.parent = td;
            if let Ok(p) = self.node_mut(fd) {
                p.nlink = p.nlink.saturating_sub(1);
            }
            if let Ok(p) = self.node_mut(td) {
                p.nlink = p.nlink.saturating_add(1);
            }
        }
        self.touch(fd, now, true);
        if td != fd {
            self.touch(td, now, true);
        }
        self.touch(src, now, false);
        Ok(())
    }
}

impl MemFs {
    /// An empty file system holding at most `capacity_bytes` (see the
    /// [module documentation](self) for what counts). The root directory belongs to root
    /// with mode 0755.
    pub fn new(capacity_bytes: u64) -> MemFs {
        Self::with_root(capacity_bytes, 0, 0, 0o755)
    }

    /// Like [`MemFs::new`], with the root directory owned by `uid`:`gid` with permission
    /// bits `mode` (07777).
    pub fn with_root(capacity_bytes: u64, uid: u32, gid: u32, mode: u32) -> MemFs {
        let now = Timestamp::now();
        let root = Node {
            ftype: FileType::Directory,
            mode: mode & 0o7777,
            nlink: 2,
            uid,
            gid,
            rdev: (0, 0),
            atime: now,
            mtime: now,
            ctime: now,
            change: 1,
            verifier: None,
            xattrs: BTreeMap::new(),
            body: Body::Dir(DirData {
                parent: ROOT_INO,
                entries: BTreeMap::new(),
            }),
        };
        let used = root.cost();
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_INO, root);
        MemFs {
            instance: instance_id(),
            // Any offset and length can be cloned (a clone is a copy here).
            limits: Limits {
                clone_blksize: 1,
                change: ChangeKind::Counter,
                ..Limits::default()
            },
            inner: RwLock::new(Inner {
                nodes,
                next_ino: ROOT_INO + 1,
                capacity: capacity_bytes,
                used,
                seq: 1,
                last_time: now,
            }),
        }
    }

    /// ALLOCATE (`alloc`) or DEALLOCATE of `[offset, offset + len)` of file `key`: the
    /// checks of a write, then the chunks and the space accounting.
    fn change_range(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        len: u64,
        alloc: bool,
    ) -> VfsResult<()> {
        let ino = self.ino(key)?;
        let c = &ctx.creds;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        let n = g.node(ino)?;
        let (f, _) = n.file_for(ino, c, true)?;
        if len == 0 {
            return Err(VfsError::Inval);
        }
        let end = offset.checked_add(len).filter(|&e| e <= MAX_SIZE);
        let need = match (alloc, end) {
            (true, None) => return Err(VfsError::FBig),
            (true, Some(end)) => f.missing_chunks(offset, end) * CHUNK,
            (false, _) => 0,
        };
        g.charge(need)?;
        let now = g.now();
        let n = g.node_mut(ino)?;
        let mut freed = 0;
        if let Body::File(f) = &mut n.body {
            if alloc {
                f.allocate(offset, end.unwrap_or(MAX_SIZE));
            } else {
                let removed = f.punch(offset, end.unwrap_or(MAX_SIZE));
                freed = removed.len() as u64 * CHUNK;
                trash.chunks.push(removed);
            }
        }
        n.kill_privs(c);
        g.release(freed);
        g.touch(ino, now, true);
        drop(g);
        drop(trash);
        Ok(())
    }

    /// One piece of a copy: at most [`MAX_READ`] bytes of `src` from `src_off` to `dst`
    /// at `dst_off`. The source's pieces are taken first (so a copy within one file reads
    /// nothing it wrote), then the destination's new chunks are charged, the data written
    /// and the holes punched, and the size grown to the end of the copy.
    fn copy_in(
        &self,
        ctx: &Ctx,
        src: &FileKey,
        src_off: u64,
        dst: &FileKey,
        dst_off: u64,
        len: u64,
    ) -> VfsResult<u64> {
        let (si, di) = (self.ino(src)?, self.ino(dst)?);
        let c = &ctx.creds;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        let (f, _) = g.node(si)?.file_for(si, c, false)?;
        let n = len.min(MAX_READ).min(f.size.saturating_sub(src_off));
        let pieces = f.pieces(src_off, n);
        let (d, _) = g.node(di)?.file_for(di, c, true)?;
        if n == 0 {
            return Ok(0);
        }
        let end = dst_off
            .checked_add(n)
            .filter(|&e| e <= MAX_SIZE)
            .ok_or(VfsError::FBig)?;
        let mut missing = std::collections::BTreeSet::new();
        for (at, len, data) in &pieces {
            if data.is_some() {
                let from = dst_off + at;
                for idx in FileData::chunk_range(from, from + len) {
                    if !d.chunks.contains_key(&idx) {
                        missing.insert(idx);
                    }
                }
            }
        }
        g.charge(missing.len() as u64 * CHUNK)?;
        let now = g.now();
        let node = g.node_mut(di)?;
        let mut freed = 0;
        if let Body::File(d) = &mut node.body {
            for (at, len, data) in pieces {
                match data {
                    Some(b) => d.write(dst_off + at, &b),
                    None => {
                        let removed = d.punch(dst_off + at, dst_off + at + len);
                        freed += removed.len() as u64 * CHUNK;
                        trash.chunks.push(removed);
                    }
                }
            }
            d.size = d.size.max(end);
        }
        node.kill_privs(c);
        g.release(freed);
        g.touch(di, now, true);
        drop(g);
        drop(trash);
        Ok(n)
    }

    fn generation(&self, ino: u64) -> u64 {
        mix(self.instance ^ ino.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn key(&self, ino: u64) -> FileKey {
        let mut k = Vec::with_capacity(KEY_LEN);
        k.extend_from_slice(&ino.to_be_bytes());
        k.extend_from_slice(&self.generation(ino).to_be_bytes());
        FileKey(k)
    }

    /// The inode number a key names, if this instance made it.
    fn ino(&self, key: &FileKey) -> VfsResult<u64> {
        if key.0.len() != KEY_LEN {
            return Err(VfsError::BadHandle);
        }
        let (a, b) = key.0.split_at(8);
        let word = |s: &[u8]| {
            s.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| VfsError::BadHandle)
        };
        let (ino, gen) = (word(a)?, word(b)?);
        if ino == 0 || gen != self.generation(ino) {
            return Err(VfsError::Stale);
        }
        Ok(ino)
    }

    /// Key and attributes of `ino`.
    fn found(&self, g: &Inner, ino: u64) -> VfsResult<(FileKey, Attr)> {
        Ok((self.key(ino), g.node(ino)?.attr(ino)))
    }
}

impl Backend for MemFs {
    fn root(&self) -> FileKey {
        self.key(ROOT_INO)
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn getattr(&self, _ctx: &Ctx, key: &FileKey) -> VfsResult<Attr> {
        let ino = self.ino(key)?;
        Ok(self.inner.read().node(ino)?.attr(ino))
    }

    fn setattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        set: &SetAttr,
        guard: Option<Timestamp>,
    ) -> VfsResult<Attr> {
        let ino = self.ino(key)?;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        let n = g.node(ino)?;
        if let Some(t) = guard {
            if n.ctime != t {
                return Err(VfsError::NotSync);
            }
        }
        if !set.is_empty() {
            g.setattr(&ctx.creds, ino, set, &mut trash)?;
        }
        Ok(g.node(ino)?.attr(ino))
    }

    fn lookup(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<(FileKey, Attr)> {
        let d = self.ino(dir)?;
        let g = self.inner.read();
        let (dn, dd) = g.dir(d)?;
        check_name(name, self.limits.name_max)?;
        if !perm::allowed(&ctx.creds, &dn.attr(d), X) {
            return Err(VfsError::Acces);
        }
        let ino = match name {
            b"." => d,
            b".." => dd.parent,
            _ => match slot(dd, name) {
                Slot::Taken(ino) => ino,
                Slot::Free | Slot::Clash => return Err(VfsError::NoEnt),
            },
        };
        self.found(&g, ino)
    }

    fn readlink(&self, _ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<u8>> {
        let ino = self.ino(key)?;
        let g = self.inner.read();
        match &g.node(ino)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(VfsError::Inval),
        }
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
        let ino = self.ino(key)?;
        let c = &ctx.creds;
        let g = self.inner.read();
        let n = g.node(ino)?;
        let (f, a) = n.file_for(ino, c, false)?;
        if offset >= f.size {
            return Ok(ReadDone {
                eof: true,
                attr: Some(a),
            });
        }
        let len = u64::from(count).min(MAX_READ).min(f.size - offset);
        if len > 0 {
            f.read_into(offset, len, buf);
        }
        Ok(ReadDone {
            eof: offset + len >= f.size,
            attr: Some(a),
        })
    }

    fn write(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        _stable: Stability,
    ) -> VfsResult<Stability> {
        let ino = self.ino(key)?;
        let c = &ctx.creds;
        let mut g = self.inner.write();
        let n = g.node(ino)?;
        let (f, _) = n.file_for(ino, c, true)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_SIZE)
            .ok_or(VfsError::FBig)?;
        if data.is_empty() {
            return Ok(Stability::FileSync);
        }
        let need = f.missing_chunks(offset, end) * CHUNK;
        g.charge(need)?;
        let now = g.now();
        let n = g.node_mut(ino)?;
        if let Body::File(f) = &mut n.body {
            f.write(offset, data);
        }
        n.kill_privs(c);
        g.touch(ino, now, true);
        Ok(Stability::FileSync)
    }

    fn seek(&self, ctx: &Ctx, key: &FileKey, offset: u64, what: Content) -> VfsResult<SoughtAt> {
        let ino = self.ino(key)?;
        let c = &ctx.creds;
        let g = self.inner.read();
        let n = g.node(ino)?;
        let (f, _) = n.file_for(ino, c, false)?;
        if offset >= f.size {
            return Err(VfsError::Nxio);
        }
        Ok(f.seek(offset, what))
    }

    /// Allocated chunks are charged like written ones and read as data (zeros).
    fn allocate(&self, ctx: &Ctx, key: &FileKey, offset: u64, len: u64) -> VfsResult<()> {
        self.change_range(ctx, key, offset, len, true)
    }

    /// Chunks the range covers whole are freed (holes again); partly covered ones are
    /// zeroed where covered.
    fn deallocate(&self, ctx: &Ctx, key: &FileKey, offset: u64, len: u64) -> VfsResult<()> {
        self.change_range(ctx, key, offset, len, false)
    }

    /// Regular files and directories, as Linux allows user extended attributes on.
    fn xattr_support(&self, attr: &Attr) -> bool {
        matches!(attr.ftype, FileType::Regular | FileType::Directory)
    }

    /// Read permission needed (no owner override: as Linux checks `user.` attributes).
    fn getxattr(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<Vec<u8>> {
        check_xattr_name(name)?;
        let ino = self.ino(key)?;
        let g = self.inner.read();
        let n = g.node(ino)?;
        if !perm::allowed(&ctx.creds, &n.attr(ino), R) {
            return Err(VfsError::Acces);
        }
        n.xattrs.get(name).cloned().ok_or(VfsError::NoXattr)
    }

    fn setxattr(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> VfsResult<()> {
        check_xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(VfsError::Xattr2Big);
        }
        let ino = self.ino(key)?;
        let mut g = self.inner.write();
        let n = g.node(ino)?;
        xattr_writable(&ctx.creds, n, ino)?;
        let old = n.xattrs.get(name);
        match (how, old) {
            (XattrSet::Create, Some(_)) => return Err(VfsError::Exist),
            (XattrSet::Replace, None) => return Err(VfsError::NoXattr),
            _ => {}
        }
        let old_cost = old.map_or(0, |v| xattr_cost(name, v));
        if old.is_none() {
            let listed: usize = n.xattrs.keys().map(|k| xattr_list_len(k)).sum();
            if n.xattrs.len() >= XATTRS_PER_FILE || listed + xattr_list_len(name) > XATTR_LIST_MAX {
                return Err(VfsError::NoSpc);
            }
        }
        let new_cost = xattr_cost(name, value);
        if new_cost > old_cost {
            g.charge(new_cost - old_cost)?;
        } else {
            g.release(old_cost - new_cost);
        }
        let now = g.now();
        g.node_mut(ino)?
            .xattrs
            .insert(name.to_vec(), value.to_vec());
        g.touch(ino, now, false);
        Ok(())
    }

    /// Read permission needed, as for [`Backend::getxattr`].
    fn listxattrs(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<Vec<u8>>> {
        let ino = self.ino(key)?;
        let g = self.inner.read();
        let n = g.node(ino)?;
        if !perm::allowed(&ctx.creds, &n.attr(ino), R) {
            return Err(VfsError::Acces);
        }
        Ok(n.xattrs.keys().cloned().collect())
    }

    fn removexattr(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<()> {
        check_xattr_name(name)?;
        let ino = self.ino(key)?;
        let mut g = self.inner.write();
        xattr_writable(&ctx.creds, g.node(ino)?, ino)?;
        let v = g
            .node_mut(ino)?
            .xattrs
            .remove(name)
            .ok_or(VfsError::NoXattr)?;
        g.release(xattr_cost(name, &v));
        let now = g.now();
        g.touch(ino, now, false);
        Ok(())
    }

    /// At most [`MAX_READ`] bytes a call: the source's chunks are copied (its holes stay
    /// holes, punched in the destination), under the lock, charged as writes.
    fn copy_range(
        &self,
        ctx: &Ctx,
        src: &FileKey,
        src_off: u64,
        dst: &FileKey,
        dst_off: u64,
        len: u64,
    ) -> VfsResult<u64> {
        self.copy_in(ctx, src, src_off, dst, dst_off, len)
    }

    /// A copy: nothing is shared between files here, any range can be cloned, up to
    /// [`MAX_READ`] bytes (what one copy call takes, so that a clone costs no more than
    /// one; a longer one is NOTSUPP: the client copies instead). All of it or nothing.
    fn clone_range(
        &self,
        ctx: &Ctx,
        src: &FileKey,
        src_off: u64,
        dst: &FileKey,
        dst_off: u64,
        len: u64,
    ) -> VfsResult<()> {
        let size = self.getattr(ctx, src)?.size;
        let len = if len == 0 {
            size.saturating_sub(src_off)
        } else {
            len
        };
        match src_off.checked_add(len) {
            Some(end) if end <= size => {}
            _ => return Err(VfsError::Inval),
        }
        if len > MAX_READ {
            return Err(VfsError::NotSupp);
        }
        if len > 0 {
            self.copy_in(ctx, src, src_off, dst, dst_off, len)?;
        }
        Ok(())
    }

    fn create(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        mode: &CreateMode,
    ) -> VfsResult<(FileKey, Attr)> {
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        check_new_name(name, self.limits.name_max)?;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        if let Some(ino) = g.begin_create(c, d, name)? {
            let n = g.node(ino)?;
            match mode {
                CreateMode::Exclusive(v)
                    if n.ftype == FileType::Regular && n.verifier == Some(*v) => {}
                CreateMode::Exclusive(_) | CreateMode::Guarded(_) => return Err(VfsError::Exist),
                CreateMode::Unchecked(_) if n.ftype != FileType::Regular => {
                    return Err(VfsError::Exist)
                }
                CreateMode::Unchecked(set) => {
                    if set.size.is_some() {
                        let only_size = SetAttr {
                            size: set.size,
                            ..SetAttr::default()
                        };
                        g.setattr(c, ino, &only_size, &mut trash)?;
                    }
                }
            }
            return self.found(&g, ino);
        }
        // An exclusive create carries no attributes: the client sends them in a SETATTR
        // next. Until then the file is private to its owner.
        let (set, verifier) = match mode {
            CreateMode::Unchecked(s) | CreateMode::Guarded(s) => (*s, None),
            CreateMode::Exclusive(v) => (
                SetAttr {
                    mode: Some(0o600),
                    ..SetAttr::default()
                },
                Some(*v),
            ),
        };
        let now = g.now();
        let mut node = g.new_node(
            c,
            d,
            FileType::Regular,
            &set,
            Body::File(FileData::default()),
            now,
        )?;
        node.verifier = verifier;
        let ino = g.insert_new(d, name, node, now)?;
        self.found(&g, ino)
    }

    fn mkdir(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        check_new_name(name, self.limits.name_max)?;
        let mut g = self.inner.write();
        if g.begin_create(c, d, name)?.is_some() {
            return Err(VfsError::Exist);
        }
        if g.node(d)?.nlink >= self.limits.link_max {
            return Err(VfsError::MLink);
        }
        let now = g.now();
        let body = Body::Dir(DirData {
            parent: d,
            entries: BTreeMap::new(),
        });
        let node = g.new_node(c, d, FileType::Directory, attr, body, now)?;
        let ino = g.insert_new(d, name, node, now)?;
        self.found(&g, ino)
    }

    fn symlink(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        target: &[u8],
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        check_new_name(name, self.limits.name_max)?;
        if target.is_empty() {
            return Err(VfsError::NoEnt);
        }
        if target.len() > SYMLINK_MAX {
            return Err(VfsError::NameTooLong);
        }
        let mut g = self.inner.write();
        if g.begin_create(c, d, name)?.is_some() {
            return Err(VfsError::Exist);
        }
        let now = g.now();
        let set = SetAttr {
            size: None,
            ..*attr
        };
        let node = g.new_node(
            c,
            d,
            FileType::Symlink,
            &set,
            Body::Symlink(target.to_vec()),
            now,
        )?;
        let ino = g.insert_new(d, name, node, now)?;
        self.found(&g, ino)
    }

    fn mknod(
        &self,
        ctx: &Ctx,
        dir: &FileKey,
        name: &[u8],
        kind: SpecialKind,
        attr: &SetAttr,
    ) -> VfsResult<(FileKey, Attr)> {
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        check_new_name(name, self.limits.name_max)?;
        let mut g = self.inner.write();
        if g.begin_create(c, d, name)?.is_some() {
            return Err(VfsError::Exist);
        }
        let (ftype, rdev) = match kind {
            SpecialKind::Char(ma, mi) => (FileType::CharDevice, (ma, mi)),
            SpecialKind::Block(ma, mi) => (FileType::BlockDevice, (ma, mi)),
            SpecialKind::Socket => (FileType::Socket, (0, 0)),
            SpecialKind::Fifo => (FileType::Fifo, (0, 0)),
        };
        if matches!(ftype, FileType::CharDevice | FileType::BlockDevice) && c.uid != 0 {
            return Err(VfsError::Perm);
        }
        let now = g.now();
        let set = SetAttr {
            size: None,
            ..*attr
        };
        let mut node = g.new_node(c, d, ftype, &set, Body::Special, now)?;
        node.rdev = rdev;
        let ino = g.insert_new(d, name, node, now)?;
        self.found(&g, ino)
    }

    fn remove(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        let d = self.ino(dir)?;
        if is_dot(name) {
            return Err(VfsError::IsDir);
        }
        check_name(name, self.limits.name_max)?;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        g.unlink(&ctx.creds, d, name, false, &mut trash)
    }

    fn rmdir(&self, ctx: &Ctx, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        let d = self.ino(dir)?;
        match name {
            b"." => return Err(VfsError::Inval),
            b".." => return Err(VfsError::NotEmpty),
            _ => {}
        }
        check_name(name, self.limits.name_max)?;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        g.unlink(&ctx.creds, d, name, true, &mut trash)
    }

    fn rename(
        &self,
        ctx: &Ctx,
        from_dir: &FileKey,
        from: &[u8],
        to_dir: &FileKey,
        to: &[u8],
    ) -> VfsResult<()> {
        let fd = self.ino(from_dir)?;
        let td = self.ino(to_dir)?;
        if is_dot(from) || is_dot(to) {
            return Err(VfsError::Inval);
        }
        check_name(from, self.limits.name_max)?;
        check_name(to, self.limits.name_max)?;
        let mut trash = Trash::default();
        let mut g = self.inner.write();
        g.rename(
            &ctx.creds,
            self.limits.link_max,
            fd,
            from,
            td,
            to,
            &mut trash,
        )
    }

    fn link(&self, ctx: &Ctx, key: &FileKey, dir: &FileKey, name: &[u8]) -> VfsResult<()> {
        let ino = self.ino(key)?;
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        check_new_name(name, self.limits.name_max)?;
        let mut g = self.inner.write();
        let n = g.node(ino)?;
        let (is_dir, nlink) = (n.is_dir(), n.nlink);
        if g.begin_create(c, d, name)?.is_some() {
            return Err(VfsError::Exist);
        }
        if is_dir {
            return Err(VfsError::Perm);
        }
        if nlink >= self.limits.link_max {
            return Err(VfsError::MLink);
        }
        g.charge(entry_cost(name))?;
        let now = g.now();
        g.dir_mut(d)?.entries.insert(
            cookie::of_name(name),
            DirEnt {
                name: name.to_vec(),
                ino,
            },
        );
        let n = g.node_mut(ino)?;
        n.nlink = n.nlink.saturating_add(1);
        g.touch(ino, now, false);
        g.touch(d, now, true);
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
        let d = self.ino(dir)?;
        let c = &ctx.creds;
        let g = self.inner.read();
        let (dn, dd) = g.dir(d)?;
        let da = dn.attr(d);
        if !perm::allowed(c, &da, R) {
            return Err(VfsError::Acces);
        }
        // Without search permission, names are visible but not the objects behind them.
        let plus = plus && perm::allowed(c, &da, X);
        let mut it = dd.entries.range((Bound::Excluded(after), Bound::Unbounded));
        let mut entries = Vec::with_capacity(max.min(dd.entries.len()));
        for (&ck, e) in it.by_ref().take(max) {
            let extra = if plus {
                g.nodes
                    .get(&e.ino)
                    .map(|n| (self.key(e.ino), n.attr(e.ino)))
            } else {
                None
            };
            entries.push(DirEntry {
                name: e.name.clone(),
                fileid: e.ino,
                cookie: ck,
                plus: extra,
            });
        }
        let eof = it.next().is_none();
        Ok(DirPage { entries, eof })
    }

    fn fsstat(&self, _ctx: &Ctx, key: &FileKey) -> VfsResult<FsStat> {
        let ino = self.ino(key)?;
        let g = self.inner.read();
        g.node(ino)?;
        let free = g.capacity.saturating_sub(g.used);
        Ok(FsStat {
            total_bytes: g.capacity,
            free_bytes: free,
            avail_bytes: free,
            total_files: g.capacity / INODE_COST,
            free_files: free / INODE_COST,
            avail_files: free / INODE_COST,
        })
    }

    fn commit(&self, _ctx: &Ctx, key: &FileKey, _offset: u64, _count: u32) -> VfsResult<()> {
        let ino = self.ino(key)?;
        self.inner.read().node(ino)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl MemFs {
        /// Recomputes everything derived from the tree and compares it with what is kept.
        fn check_invariants(&self) {
            let g = self.inner.read();
            let mut used = 0;
            let mut links: HashMap<u64, u32> = HashMap::new();
            for (&ino, n) in &g.nodes {
                assert!(ino < g.next_ino);
                used += n.cost();
                match &n.body {
                    Body::Dir(d) => {
                        let mut subdirs = 0;
                        for (&ck, e) in &d.entries {
                            assert_eq!(ck, cookie::of_name(&e.name));
                            used += entry_cost(&e.name);
                            let child = g.nodes.get(&e.ino).expect("entry of a missing inode");
                            if let Body::Dir(cd) = &child.body {
                                subdirs += 1;
                                assert_eq!(cd.parent, ino, "parent pointer");
                            }
                            *links.entry(e.ino).or_default() += 1;
                        }
                        assert_eq!(n.nlink, 2 + subdirs, "directory link count");
                    }
                    Body::File(f) => {
                        for (&i, c) in &f.chunks {
                            let start = i * CHUNK;
                            assert!(start < f.size, "chunk beyond the size");
                            if start + CHUNK > f.size {
                                assert!(
                                    c[(f.size - start) as usize..].iter().all(|&b| b == 0),
                                    "dirty tail"
                                );
                            }
                        }
                    }
                    Body::Symlink(_) | Body::Special => {}
                }
            }
            for (&ino, n) in &g.nodes {
                let l = links.get(&ino).copied().unwrap_or(0);
                if ino == ROOT_INO {
                    assert_eq!(l, 0);
                } else if n.is_dir() {
                    assert_eq!(l, 1, "a directory has one entry");
                } else {
                    assert_eq!(l, n.nlink, "file link count");
                }
            }
            assert_eq!(used, g.used, "space accounting");
            assert!(g.used <= g.capacity);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create(usize, u8),
        Mkdir(usize, u8),
        Symlink(usize, u8, usize),
        Remove(usize, u8),
        Rmdir(usize, u8),
        Rename(usize, u8, usize, u8),
        Link(usize, u8, usize, u8),
        Write(usize, u8, u64, usize),
        Truncate(usize, u8, u64),
        Allocate(usize, u8, u64, u64),
        Punch(usize, u8, u64, u64),
        SetXattr(usize, u8, u8, usize),
        RemoveXattr(usize, u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let d = 0usize..6;
        let n = 0u8..5;
        prop_oneof![
            (d.clone(), n.clone()).prop_map(|(d, n)| Op::Create(d, n)),
            (d.clone(), n.clone()).prop_map(|(d, n)| Op::Mkdir(d, n)),
            (d.clone(), n.clone(), 1usize..300).prop_map(|(d, n, l)| Op::Symlink(d, n, l)),
            (d.clone(), n.clone()).prop_map(|(d, n)| Op::Remove(d, n)),
            (d.clone(), n.clone()).prop_map(|(d, n)| Op::Rmdir(d, n)),
            (d.clone(), n.clone(), d.clone(), n.clone())
                .prop_map(|(a, b, c, e)| Op::Rename(a, b, c, e)),
            (d.clone(), n.clone(), d.clone(), n.clone())
                .prop_map(|(a, b, c, e)| Op::Link(a, b, c, e)),
            (d.clone(), n.clone(), 0u64..20_000, 0usize..9000)
                .prop_map(|(d, n, o, l)| Op::Write(d, n, o, l)),
            (d.clone(), n.clone(), 0u64..20_000).prop_map(|(d, n, s)| Op::Truncate(d, n, s)),
            (d.clone(), n.clone(), 0u64..20_000, 0u64..12_000)
                .prop_map(|(d, n, o, l)| Op::Allocate(d, n, o, l)),
            (d.clone(), n.clone(), 0u64..20_000, 0u64..12_000)
                .prop_map(|(d, n, o, l)| Op::Punch(d, n, o, l)),
            (d.clone(), n.clone(), 0u8..4, 0usize..20_000)
                .prop_map(|(d, n, x, l)| Op::SetXattr(d, n, x, l)),
            (d, n, 0u8..4).prop_map(|(d, n, x)| Op::RemoveXattr(d, n, x)),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_after_any_operations(ops in prop::collection::vec(op(), 1..80)) {
            let fs = MemFs::new(48 * 1024);
            let c = Ctx::default();
            // Directories ever made; removed ones give Stale, which is fine.
            let mut dirs = vec![fs.root()];
            let name = |n: u8| vec![b'a' + n];
            for op in ops {
                let dk = |i: usize| dirs[i % dirs.len()].clone();
                let key_of = |d: &FileKey, n: u8| fs.lookup(&c, d, &name(n)).map(|(k, _)| k);
                match op {
                    Op::Create(d, n) => {
                        let _ = fs.create(&c, &dk(d), &name(n), &CreateMode::Guarded(SetAttr::default()));
                    }
                    Op::Mkdir(d, n) => {
                        if let Ok((k, _)) = fs.mkdir(&c, &dk(d), &name(n), &SetAttr::default()) {
                            dirs.push(k);
                        }
                    }
                    Op::Symlink(d, n, l) => {
                        let _ = fs.symlink(&c, &dk(d), &name(n), &vec![b'x'; l], &SetAttr::default());
                    }
                    Op::Remove(d, n) => {
                        let _ = fs.remove(&c, &dk(d), &name(n));
                    }
                    Op::Rmdir(d, n) => {
                        let _ = fs.rmdir(&c, &dk(d), &name(n));
                    }
                    Op::Rename(a, b, x, y) => {
                        let before = fs.lookup(&c, &dk(a), &name(b)).ok();
                        if fs.rename(&c, &dk(a), &name(b), &dk(x), &name(y)).is_ok() {
                            if let Some((k, _)) = before {
                                prop_assert_eq!(key_of(&dk(x), y).unwrap(), k);
                            }
                        }
                    }
                    Op::Link(a, b, x, y) => {
                        if let Ok(k) = key_of(&dk(a), b) {
                            let _ = fs.link(&c, &k, &dk(x), &name(y));
                        }
                    }
                    Op::Write(d, n, off, len) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let data = vec![0xa5u8; len];
                            let before = fs.getattr(&c, &k).ok();
                            match fs.write(&c, &k, off, &data, Stability::Unstable) {
                                Ok(_) if len > 0 => {
                                    let (got, _) = fs.read(&c, &k, off, len as u32).unwrap();
                                    prop_assert_eq!(got, data);
                                }
                                Err(VfsError::NoSpc) => {
                                    prop_assert_eq!(fs.getattr(&c, &k).ok(), before);
                                }
                                _ => {}
                            }
                        }
                    }
                    Op::Truncate(d, n, s) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let _ = fs.setattr(&c, &k, &SetAttr { size: Some(s), ..SetAttr::default() }, None);
                        }
                    }
                    Op::Allocate(d, n, off, len) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let before = fs.getattr(&c, &k).ok();
                            let (old, _) = fs.read(&c, &k, 0, 1 << 20).unwrap_or_default();
                            match fs.allocate(&c, &k, off, len) {
                                Ok(()) => {
                                    let a = fs.getattr(&c, &k).unwrap();
                                    prop_assert_eq!(a.size, before.unwrap().size.max(off + len));
                                    let (now, _) = fs.read(&c, &k, 0, 1 << 20).unwrap();
                                    prop_assert_eq!(&now[..old.len()], &old[..], "data kept");
                                    prop_assert!(now[old.len()..].iter().all(|&b| b == 0));
                                }
                                Err(VfsError::NoSpc) | Err(VfsError::Inval) => {
                                    prop_assert_eq!(fs.getattr(&c, &k).ok(), before);
                                }
                                _ => {}
                            }
                        }
                    }
                    Op::Punch(d, n, off, len) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let (old, _) = fs.read(&c, &k, 0, 1 << 20).unwrap_or_default();
                            if fs.deallocate(&c, &k, off, len).is_ok() {
                                let (now, _) = fs.read(&c, &k, 0, 1 << 20).unwrap();
                                prop_assert_eq!(now.len(), old.len(), "size kept");
                                for (i, (&a, &b)) in old.iter().zip(&now).enumerate() {
                                    let i = i as u64;
                                    let want = if i >= off && i < off + len { 0 } else { a };
                                    prop_assert_eq!(b, want, "byte {}", i);
                                }
                            }
                        }
                    }
                    Op::SetXattr(d, n, x, len) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let name = [b'a' + x];
                            let before = fs.getxattr(&c, &k, &name);
                            match fs.setxattr(&c, &k, &name, &vec![x; len], XattrSet::Either) {
                                Ok(()) => {
                                    prop_assert_eq!(fs.getxattr(&c, &k, &name), Ok(vec![x; len]));
                                }
                                Err(VfsError::NoSpc) => {
                                    prop_assert_eq!(fs.getxattr(&c, &k, &name), before);
                                }
                                _ => {}
                            }
                        }
                    }
                    Op::RemoveXattr(d, n, x) => {
                        if let Ok(k) = key_of(&dk(d), n) {
                            let _ = fs.removexattr(&c, &k, &[b'a' + x]);
                            prop_assert_eq!(fs.getxattr(&c, &k, &[b'a' + x]), Err(VfsError::NoXattr));
                        }
                    }
                }
                fs.check_invariants();
            }
        }
    }

    #[test]
    fn timestamps_strictly_increase() {
        let fs = MemFs::new(1 << 20);
        let mut g = fs.inner.write();
        let mut last = g.now();
        for _ in 0..10_000 {
            let t = g.now();
            assert!(t > last);
            assert!(t.nsecs < 1_000_000_000);
            last = t;
        }
    }

    #[test]
    fn file_data_chunks() {
        let mut f = FileData::default();
        let read = |f: &FileData, offset: u64, n: u64| {
            let mut v = b"kept".to_vec();
            f.read_into(offset, n, &mut v);
            assert_eq!(&v[..4], b"kept");
            v.split_off(4)
        };
        f.write(CHUNK - 2, b"abcd");
        assert_eq!(f.chunks.len(), 2);
        assert_eq!(f.missing_chunks(0, 3 * CHUNK), 1);
        assert_eq!(read(&f, CHUNK - 3, 5), b"\0abcd".to_vec());
        let removed = f.truncate(CHUNK - 1);
        assert_eq!(removed.len(), 1);
        assert_eq!(read(&f, CHUNK - 3, 2), b"\0a".to_vec());
        f.truncate(CHUNK + 10);
        assert_eq!(read(&f, CHUNK - 2, 4), b"a\0\0\0".to_vec());
        assert_eq!(read(&f, 0, 3), b"\0\0\0".to_vec(), "a hole");
        assert_eq!(read(&f, 2 * CHUNK - 2, 12).len(), 12);
        assert!(f.truncate(0).len() == 1 && f.chunks.is_empty());
    }

    /// The data/hole map of a file, as SEEK walks it: `(data start, hole start)` pairs.
    fn map(fs: &MemFs, k: &FileKey) -> Vec<(u64, u64)> {
        let c = Ctx::default();
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let d = match fs.seek(&c, k, at, Content::Data) {
                Ok(d) if !d.eof => d.offset,
                Ok(_) | Err(VfsError::Nxio) => return out,
                Err(e) => panic!("{e:?}"),
            };
            let h = fs.seek(&c, k, d, Content::Hole).unwrap().offset;
            assert!(h > d);
            out.push((d, h));
            at = h;
        }
    }

    /// User extended attributes: CREATE/REPLACE semantics, sorted listing, permissions,
    /// the bounds per file and the space accounting.
    #[test]
    fn xattrs() {
        let fs = MemFs::new(1 << 20);
        let root = Ctx::default();
        let user = Ctx::new(Creds {
            uid: 1000,
            gid: 1000,
            gids: vec![],
        });
        let (f, _) = fs
            .create(
                &root,
                &fs.root(),
                b"f",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        let change = |k: &FileKey| fs.getattr(&root, k).unwrap().change;
        assert_eq!(fs.getxattr(&root, &f, b"a"), Err(VfsError::NoXattr));
        assert_eq!(
            fs.setxattr(&root, &f, b"a", b"1", XattrSet::Replace),
            Err(VfsError::NoXattr)
        );
        let c0 = change(&f);
        fs.setxattr(&root, &f, b"b", b"2", XattrSet::Create)
            .unwrap();
        assert!(change(&f) > c0, "a set changes the change attribute");
        fs.setxattr(&root, &f, b"a", b"1", XattrSet::Either)
            .unwrap();
        assert_eq!(
            fs.setxattr(&root, &f, b"a", b"x", XattrSet::Create),
            Err(VfsError::Exist)
        );
        fs.setxattr(&root, &f, b"a", b"11", XattrSet::Replace)
            .unwrap();
        assert_eq!(fs.getxattr(&root, &f, b"a"), Ok(b"11".to_vec()));
        assert_eq!(
            fs.listxattrs(&root, &f),
            Ok(vec![b"a".to_vec(), b"b".to_vec()])
        );
        // Mode 0644, owned by root: another user reads but may not write.
        assert_eq!(fs.getxattr(&user, &f, b"a"), Ok(b"11".to_vec()));
        assert_eq!(
            fs.setxattr(&user, &f, b"c", b"", XattrSet::Either),
            Err(VfsError::Acces)
        );
        assert_eq!(fs.removexattr(&user, &f, b"a"), Err(VfsError::Acces));
        fs.removexattr(&root, &f, b"a").unwrap();
        assert_eq!(fs.removexattr(&root, &f, b"a"), Err(VfsError::NoXattr));
        // Names and values are bounded.
        assert_eq!(fs.getxattr(&root, &f, b""), Err(VfsError::Inval));
        assert_eq!(
            fs.getxattr(&root, &f, &[b'n'; 251]),
            Err(VfsError::NameTooLong)
        );
        let big = vec![0; XATTR_SIZE_MAX + 1];
        assert_eq!(
            fs.setxattr(&root, &f, b"v", &big, XattrSet::Either),
            Err(VfsError::Xattr2Big)
        );
        fs.setxattr(&root, &f, b"v", &big[1..], XattrSet::Either)
            .unwrap();
        // A symbolic link holds none.
        let (l, _) = fs
            .symlink(&root, &fs.root(), b"l", b"f", &SetAttr::default())
            .unwrap();
        assert!(!fs.xattr_support(&fs.getattr(&root, &l).unwrap()));
        assert_eq!(
            fs.setxattr(&root, &l, b"a", b"1", XattrSet::Either),
            Err(VfsError::Perm)
        );
        assert_eq!(fs.getxattr(&root, &l, b"a"), Err(VfsError::NoXattr));
        fs.check_invariants();
        // Count per file, then the capacity.
        let (g, _) = fs
            .create(
                &root,
                &fs.root(),
                b"g",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        for i in 0..XATTRS_PER_FILE {
            fs.setxattr(&root, &g, format!("{i}").as_bytes(), b"", XattrSet::Create)
                .unwrap();
        }
        assert_eq!(
            fs.setxattr(&root, &g, b"more", b"", XattrSet::Create),
            Err(VfsError::NoSpc)
        );
        let mut n = 0;
        let err = loop {
            match fs.setxattr(
                &root,
                &f,
                format!("w{n}").as_bytes(),
                &big[1..],
                XattrSet::Create,
            ) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, VfsError::NoSpc);
        assert!(
            n < 20,
            "a 1 MiB file system holds fewer than 20 values of 64 KiB"
        );
        fs.check_invariants();
        // Removing the file frees what its attributes held.
        fs.remove(&root, &fs.root(), b"f").unwrap();
        fs.remove(&root, &fs.root(), b"g").unwrap();
        fs.remove(&root, &fs.root(), b"l").unwrap();
        fs.check_invariants();
        assert_eq!(fs.inner.read().used, MemFs::new(1).inner.read().used);
    }

    /// COPY keeps the source's holes as holes (punching over data in the destination),
    /// charges only the chunks it adds, copies at most MAX_READ a call, and works within
    /// one file; CLONE is all of it or INVAL.
    #[test]
    fn copy_and_clone_ranges() {
        let fs = MemFs::new(1 << 30);
        let c = Ctx::default();
        let mk = |name: &[u8]| {
            fs.create(
                &c,
                &fs.root(),
                name,
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap()
            .0
        };
        let (a, b) = (mk(b"a"), mk(b"b"));
        // a: data in chunk 1, a hole in chunks 2 and 3, data in chunk 4, size 5 chunks.
        fs.write(&c, &a, CHUNK + 1, b"xy", Stability::Unstable)
            .unwrap();
        fs.write(&c, &a, 4 * CHUNK + 5, b"z", Stability::Unstable)
            .unwrap();
        fs.setattr(
            &c,
            &a,
            &SetAttr {
                size: Some(5 * CHUNK),
                ..SetAttr::default()
            },
            None,
        )
        .unwrap();
        // b: data over the whole of where the hole will land.
        fs.write(&c, &b, 0, &vec![9; 6 * CHUNK as usize], Stability::Unstable)
            .unwrap();
        let free = fs.fsstat(&c, &b).unwrap().free_bytes;
        assert_eq!(
            fs.copy_range(&c, &a, CHUNK, &b, CHUNK, 1 << 40).unwrap(),
            4 * CHUNK
        );
        let (got, _) = fs.read(&c, &b, 0, 6 * CHUNK as u32).unwrap();
        let mut want = vec![9u8; 6 * CHUNK as usize];
        want[CHUNK as usize..5 * CHUNK as usize].fill(0);
        want[CHUNK as usize + 1..CHUNK as usize + 3].copy_from_slice(b"xy");
        want[4 * CHUNK as usize + 5] = b'z';
        assert_eq!(got, want);
        assert_eq!(map(&fs, &b), [(0, 2 * CHUNK), (4 * CHUNK, 6 * CHUNK)]);
        // The two chunks of the hole were freed.
        assert_eq!(fs.fsstat(&c, &b).unwrap().free_bytes, free + 2 * CHUNK);
        // Past the end: nothing; into a new file: the size grows to the end, holes kept.
        assert_eq!(fs.copy_range(&c, &a, 5 * CHUNK, &b, 0, 9).unwrap(), 0);
        let e = mk(b"e");
        assert_eq!(
            fs.copy_range(&c, &a, 2 * CHUNK, &e, 0, 3 * CHUNK).unwrap(),
            3 * CHUNK
        );
        assert_eq!(fs.getattr(&c, &e).unwrap().size, 3 * CHUNK);
        assert_eq!(map(&fs, &e), [(2 * CHUNK, 3 * CHUNK)]);
        // Large: one call copies MAX_READ at most.
        let big = mk(b"big");
        fs.allocate(&c, &big, 0, MAX_READ + CHUNK).unwrap();
        assert_eq!(
            fs.copy_range(&c, &big, 0, &e, 0, u64::MAX).unwrap(),
            MAX_READ
        );
        // Within one file (ranges apart), and the errors.
        assert_eq!(fs.copy_range(&c, &a, CHUNK, &a, 6 * CHUNK, 3).unwrap(), 3);
        assert_eq!(fs.read(&c, &a, 6 * CHUNK + 1, 2).unwrap().0, b"xy");
        let root = fs.root();
        assert_eq!(fs.copy_range(&c, &root, 0, &a, 0, 1), Err(VfsError::IsDir));
        assert_eq!(
            fs.copy_range(&c, &a, 0, &a, MAX_SIZE, 1),
            Err(VfsError::FBig)
        );
        // CLONE: a whole range (0: to the end), or INVAL past the end.
        let f = mk(b"f");
        fs.clone_range(&c, &a, 0, &f, 0, 0).unwrap();
        assert_eq!(
            fs.read(&c, &f, 0, 1 << 20).unwrap().0,
            fs.read(&c, &a, 0, 1 << 20).unwrap().0
        );
        assert_eq!(
            fs.clone_range(&c, &a, CHUNK, &f, 0, 1 << 40),
            Err(VfsError::Inval)
        );
        assert_eq!(fs.limits().clone_blksize, 1);
        // Longer than one copy call: NOTSUPP (the client copies), nothing changed.
        let g = mk(b"g");
        assert_eq!(
            fs.clone_range(&c, &big, 0, &g, 0, 0),
            Err(VfsError::NotSupp)
        );
        assert_eq!(fs.getattr(&c, &g).unwrap().size, 0);
    }

    #[test]
    fn seek_allocate_and_punch_holes() {
        let fs = MemFs::new(1 << 20);
        let c = Ctx::default();
        let (k, _) = fs
            .create(
                &c,
                &fs.root(),
                b"f",
                &CreateMode::Unchecked(SetAttr::default()),
            )
            .unwrap();
        // Empty: nothing to find, not even the virtual hole (offset 0 is the end).
        assert_eq!(fs.seek(&c, &k, 0, Content::Hole), Err(VfsError::Nxio));
        // Data in chunks 1 and 3 of a file 5 chunks long.
        fs.write(&c, &k, CHUNK + 5, b"x", Stability::Unstable)
            .unwrap();
        fs.write(&c, &k, 3 * CHUNK, b"y", Stability::Unstable)
            .unwrap();
        fs.setattr(
            &c,
            &k,
            &SetAttr {
                size: Some(5 * CHUNK),
                ..SetAttr::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(map(&fs, &k), [(CHUNK, 2 * CHUNK), (3 * CHUNK, 4 * CHUNK)]);
        let at = |offset, eof| Ok(SoughtAt { offset, eof });
        assert_eq!(
            fs.seek(&c, &k, CHUNK + 7, Content::Data),
            at(CHUNK + 7, false)
        );
        assert_eq!(fs.seek(&c, &k, 0, Content::Hole), at(0, false));
        assert_eq!(
            fs.seek(&c, &k, 4 * CHUNK, Content::Data),
            at(5 * CHUNK, true)
        );
        assert_eq!(
            fs.seek(&c, &k, 5 * CHUNK, Content::Data),
            Err(VfsError::Nxio)
        );
        // ALLOCATE fills the hole between and grows the file; its bytes read as zeros.
        let used = fs.fsstat(&c, &k).unwrap().free_bytes;
        fs.allocate(&c, &k, 2 * CHUNK, 5 * CHUNK).unwrap();
        assert_eq!(fs.getattr(&c, &k).unwrap().size, 7 * CHUNK);
        assert_eq!(map(&fs, &k), [(CHUNK, 7 * CHUNK)]);
        assert_eq!(used - fs.fsstat(&c, &k).unwrap().free_bytes, 4 * CHUNK);
        assert_eq!(fs.read(&c, &k, 3 * CHUNK, 2).unwrap().0, b"y\0");
        // DEALLOCATE: whole chunks go back to holes (and free space), a partial one is
        // zeroed, the size stays, past the end nothing happens.
        fs.deallocate(&c, &k, CHUNK + 5, 2 * CHUNK).unwrap();
        assert_eq!(map(&fs, &k), [(CHUNK, 2 * CHUNK), (3 * CHUNK, 7 * CHUNK)]);
        assert_eq!(fs.read(&c, &k, CHUNK + 4, 2).unwrap().0, b"\0\0");
        fs.deallocate(&c, &k, 6 * CHUNK, u64::MAX).unwrap();
        assert_eq!(fs.getattr(&c, &k).unwrap().size, 7 * CHUNK);
        assert_eq!(map(&fs, &k), [(CHUNK, 2 * CHUNK), (3 * CHUNK, 6 * CHUNK)]);
        // Errors: a zero length, past the largest size, a directory, no space.
        assert_eq!(fs.allocate(&c, &k, 0, 0), Err(VfsError::Inval));
        assert_eq!(fs.allocate(&c, &k, MAX_SIZE, 1), Err(VfsError::FBig));
        assert_eq!(
            fs.seek(&c, &fs.root(), 0, Content::Data),
            Err(VfsError::IsDir)
        );
        assert_eq!(fs.allocate(&c, &k, 0, 1 << 30), Err(VfsError::NoSpc));
        assert_eq!(
            fs.getattr(&c, &k).unwrap().size,
            7 * CHUNK,
            "nothing changed"
        );
        // Ranges of exabytes cost what the file holds, not their length (a loop per chunk
        // of the range would not end here).
        let huge = SetAttr {
            size: Some(MAX_SIZE),
            ..SetAttr::default()
        };
        fs.setattr(&c, &k, &huge, None).unwrap();
        assert_eq!(fs.allocate(&c, &k, 0, MAX_SIZE), Err(VfsError::NoSpc));
        fs.deallocate(&c, &k, 0, u64::MAX).unwrap();
        assert_eq!(map(&fs, &k), []);
        assert_eq!(
            fs.seek(&c, &k, 0, Content::Data),
            Ok(SoughtAt {
                offset: MAX_SIZE,
                eof: true
            })
        );
        fs.check_invariants();
    }
}
