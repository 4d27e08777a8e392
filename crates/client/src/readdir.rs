//! Directory listing with READDIRPLUS (RFC 1813 3.3.17), or READDIR (3.3.16) where the
//! server does not support it or the mount asks for it, and a cookie cache.
//!
//! The cache maps a starting cookie to the chunk of entries the server returned from it.
//! A [`DirStream`] resumes from its last cookie, whether or not the cache still holds the
//! chunk (seed entry 4: a listing taken in small chunks with the cache dropped in between
//! yields every name exactly once). On BAD_COOKIE it restarts from the beginning and skips
//! the names it already returned.
//!
//! The server is not trusted (issue 13): every name is checked ([`check_name`]: empty, `.`
//! or `..` as an ordinary entry, `/` or NUL inside are refused, or skipped when the stream
//! was told to with [`DirStream::skip_bad_names`]); a listing that sends the client back
//! to a cookie it already continued from, or a reply with neither entries nor EOF, fails
//! with [`ServerError::CookieLoop`] or [`ServerError::NoProgress`], cached chunks
//! included, so no listing spins without the network; and one listing takes at most
//! [`crate::MountOptions::max_dir_entries`] entries and
//! [`crate::MountOptions::max_dir_bytes`] bytes of names, repeats included, so a server
//! sending fresh names forever ends with [`ServerError::ListingTooLarge`].
use crate::client::Client;
use crate::error::{Error, ServerError};
use crate::inode::Inode;
use crate::types::{Attr, FileHandle, FileType, Status, Time};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The name's bytes (NFS names need not be UTF-8).
    pub name: Vec<u8>,
    /// File id.
    pub fileid: u64,
    /// The entry's inode, when the server sent its handle.
    pub inode: Option<Arc<Inode>>,
    /// Attributes, when the server sent them.
    pub attr: Option<Attr>,
}

impl DirEntry {
    /// The name as text (invalid UTF-8 replaced).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    entries: Vec<DirEntry>,
    /// Cookie to continue from; `None` at the end.
    next: Option<u64>,
    verf: [u8; 8],
}

/// The cached chunks of one directory, valid for one modification time of it.
#[derive(Debug, Default)]
struct DirCache {
    mtime: Option<Time>,
    chunks: HashMap<u64, Chunk>,
}

/// Cached chunks of each directory, keyed by the cookie they start at.
#[derive(Debug, Default)]
pub(crate) struct DirCaches {
    dirs: Mutex<HashMap<FileHandle, DirCache>>,
}

impl DirCaches {
    /// Forgets a directory's chunks (after a change made through this client).
    pub(crate) fn forget(&self, dir: &FileHandle) {
        self.dirs.lock().remove(dir);
    }

    /// Forgets a directory's chunks unless they were taken at modification time `mtime`.
    fn validate(&self, dir: &FileHandle, mtime: Time) {
        let mut d = self.dirs.lock();
        if d.get(dir).is_some_and(|c| c.mtime != Some(mtime)) {
            d.remove(dir);
        }
    }

    fn get(&self, dir: &FileHandle, cookie: u64) -> Option<Chunk> {
        self.dirs.lock().get(dir)?.chunks.get(&cookie).cloned()
    }

    fn put(&self, dir: &FileHandle, cookie: u64, mtime: Option<Time>, c: Chunk) {
        let mut d = self.dirs.lock();
        let e = d.entry(dir.clone()).or_default();
        if e.mtime != mtime {
            // The directory changed since the other chunks were taken.
            e.chunks.clear();
            e.mtime = mtime;
        }
        e.chunks.insert(cookie, c);
    }

    pub(crate) fn clear(&self) {
        self.dirs.lock().clear();
    }
}

/// Why a name from a listing cannot be an entry of the directory, if it cannot: the
/// checks of the Linux client's `verify_dirent_name`, plus `.` and `..` (dropped by the
/// caller before this, as the directory's own dot entries). Call on every name a server
/// sends before using it as a path component.
pub fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty")
    } else if name == b"." || name == b".." {
        Err("a dot entry where a name belongs")
    } else if name.contains(&b'/') {
        Err("contains '/'")
    } else if name.contains(&0) {
        Err("contains NUL")
    } else {
        Ok(())
    }
}

/// A listing in progress.
#[derive(Debug)]
pub struct DirStream {
    c: Client,
    dir: Arc<Inode>,
    /// The path listed, for messages.
    path: String,
    cookie: u64,
    verf: [u8; 8],
    done: bool,
    returned: HashSet<Vec<u8>>,
    /// Cookies this listing has continued from (since the last restart).
    from: HashSet<u64>,
    /// Entries and name bytes taken (since the last restart).
    entries: u64,
    bytes: u64,
    restarts: u32,
    skip_bad: bool,
    skipped: u64,
}

impl DirStream {
    /// Skips entries whose names fail [`check_name`] (logging the first of each listing)
    /// instead of failing the listing with [`ServerError::BadName`]; for a caller that can
    /// show the rest of the directory, like the FUSE mount.
    pub fn skip_bad_names(mut self) -> Self {
        self.skip_bad = true;
        self
    }

    /// Entries skipped for their names so far (see [`DirStream::skip_bad_names`]).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next chunk of entries (without `.` and `..`); `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<DirEntry>>, Error> {
        let r = self.next_checked().await;
        if r.is_err() {
            // Whatever was cached of a listing that failed is not to be trusted.
            self.c.s.dirs.forget(self.dir.fh());
        }
        r
    }

    async fn next_checked(&mut self) -> Result<Option<Vec<DirEntry>>, Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            if !self.from.insert(self.cookie) {
                return Err(ServerError::CookieLoop {
                    dir: self.path.clone(),
                    cookie: self.cookie,
                }
                .into());
            }
            let chunk = match self.c.s.dirs.get(self.dir.fh(), self.cookie) {
                Some(c) => c,
                None => match self.fetch().await {
                    Ok(c) => c,
                    Err(Error::Nfs(Status::BadCookie)) if self.restarts < 3 => {
                        // Start again; names already returned are skipped.
                        self.restarts += 1;
                        self.c.s.dirs.forget(self.dir.fh());
                        self.cookie = 0;
                        self.verf = [0; 8];
                        self.from.clear();
                        self.entries = 0;
                        self.bytes = 0;
                        continue;
                    }
                    Err(e) => {
                        // Not continued from after all: a caller may try again.
                        self.from.remove(&self.cookie);
                        return Err(e);
                    }
                },
            };
            self.verf = chunk.verf;
            match chunk.next {
                Some(n) => self.cookie = n,
                None => self.done = true,
            }
            self.entries += chunk.entries.len() as u64;
            self.bytes += chunk
                .entries
                .iter()
                .map(|e| e.name.len() as u64)
                .sum::<u64>();
            let o = &self.c.s.opts;
            if self.entries > o.max_dir_entries || self.bytes > o.max_dir_bytes {
                let limit = if self.entries > o.max_dir_entries {
                    format!("{} entries", o.max_dir_entries)
                } else {
                    format!("{} bytes of names", o.max_dir_bytes)
                };
                return Err(ServerError::ListingTooLarge {
                    dir: self.path.clone(),
                    limit,
                }
                .into());
            }
            let mut fresh = Vec::with_capacity(chunk.entries.len());
            for e in chunk.entries {
                if let Err(why) = check_name(&e.name) {
                    if !self.skip_bad {
                        return Err(ServerError::BadName {
                            dir: self.path.clone(),
                            name: e.name_lossy(),
                            why,
                        }
                        .into());
                    }
                    if self.skipped == 0 {
                        tracing::warn!(
                            "{}: skipping an entry the server named {:?} ({why})",
                            self.path,
                            e.name_lossy()
                        );
                    }
                    self.skipped += 1;
                    continue;
                }
                if self.returned.insert(e.name.clone()) {
                    fresh.push(e);
                }
            }
            if !fresh.is_empty() || self.done {
                return Ok(Some(fresh));
            }
        }
    }

    async fn fetch(&self) -> Result<Chunk, Error> {
        let (nfs, count) = (&self.c.s.nfs, self.c.s.opts.readdir_bytes);
        let plus = if self.c.s.plus.load(Ordering::Relaxed) {
            match nfs
                .readdirplus(self.dir.fh(), self.cookie, self.verf, count)
                .await
            {
                Err(Error::Nfs(Status::NotSupp)) => {
                    // RFC 1813 lets a server leave READDIRPLUS out; use READDIR from now on.
                    self.c.s.plus.store(false, Ordering::Relaxed);
                    None
                }
                r => Some(r?),
            }
        } else {
            None
        };
        let listing = match plus {
            Some(l) => l,
            None => {
                nfs.readdir(self.dir.fh(), self.cookie, self.verf, count)
                    .await?
            }
        };
        let (eof, verf, mtime) = (listing.eof, listing.verf, listing.dir_mtime);
        // (cookie, entry) in the server's order.
        let raw: Vec<(u64, DirEntry)> = listing
            .entries
            .into_iter()
            .map(|e| {
                let inode = e.fh.as_ref().map(|fh| self.c.inode(fh, e.attr.clone()));
                let d = DirEntry {
                    name: e.name,
                    fileid: e.fileid,
                    inode,
                    attr: e.attr,
                };
                (e.cookie, d)
            })
            .collect();
        let mut next = None;
        let mut entries = Vec::with_capacity(raw.len());
        for (cookie, e) in raw {
            next = Some(cookie);
            if e.name == b"." || e.name == b".." {
                continue;
            }
            entries.push(e);
        }
        let next = if eof {
            None
        } else {
            // A reply with no entries and no EOF would loop forever: refuse it.
            Some(next.ok_or_else(|| ServerError::NoProgress {
                dir: self.path.clone(),
            })?)
        };
        let chunk = Chunk {
            entries,
            next,
            verf,
        };
        self.c
            .s
            .dirs
            .put(self.dir.fh(), self.cookie, mtime, chunk.clone());
        Ok(chunk)
    }

    /// Test hook: pretend the verifier we hold went stale (the server answers BAD_COOKIE).
    #[doc(hidden)]
    pub fn spoil_verifier(&mut self) {
        self.verf = [0xee; 8];
        self.c.s.dirs.forget(self.dir.fh());
    }

    /// The rest of the listing.
    pub async fn collect(mut self) -> Result<Vec<DirEntry>, Error> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk().await? {
            all.extend(c);
        }
        Ok(all)
    }

    /// Times the listing restarted after BAD_COOKIE.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

impl Client {
    /// Starts listing the directory at `path`. Like opening a file, this fetches fresh
    /// attributes, and cached chunks taken at another modification time are dropped.
    pub async fn open_dir(&self, path: &str) -> Result<DirStream, Error> {
        let dir = self.resolve_follow(path).await?;
        self.open_dir_of(dir, path).await
    }

    /// Starts listing the directory `dir`: [`Client::open_dir`] for a caller that holds
    /// the inode (a file system layer); `label` names the directory in errors and logs.
    pub async fn open_dir_of(&self, dir: Arc<Inode>, label: &str) -> Result<DirStream, Error> {
        let a = self.revalidate(&dir).await?;
        if a.ftype != FileType::Dir {
            return Err(Error::Nfs(Status::NotDir));
        }
        self.s.dirs.validate(dir.fh(), a.mtime);
        Ok(DirStream {
            c: self.clone(),
            dir,
            path: label.to_string(),
            cookie: 0,
            verf: [0; 8],
            done: false,
            returned: HashSet::new(),
            from: HashSet::new(),
            entries: 0,
            bytes: 0,
            restarts: 0,
            skip_bad: false,
            skipped: 0,
        })
    }

    /// Lists a whole directory (without `.` and `..`); a name that fails [`check_name`]
    /// fails the listing.
    pub async fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        self.open_dir(path).await?.collect().await
    }

    /// Lists a whole directory (without `.` and `..`), leaving out entries whose names
    /// fail [`check_name`] (the first is logged).
    pub async fn read_dir_skipping_bad_names(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        self.open_dir(path).await?.skip_bad_names().collect().await
    }

    /// Drops every cached directory chunk.
    pub fn drop_dir_caches(&self) {
        self.s.dirs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_that_cannot_be_entries_are_refused() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"../../x",
            b"etc/",
            b"nul\0byte",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            &b"a"[..],
            b"...",
            b"..x",
            b".hidden",
            b"a b",
            b"\x1b[31m",
            b"\xff",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }
}
