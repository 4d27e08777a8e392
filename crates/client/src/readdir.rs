//! Directory listing with READDIRPLUS (RFC 1813 3.3.17), or READDIR (3.3.16) where the
//! server does not support it or the mount asks for it, and a cookie cache.
//!
//! The cache maps a starting cookie to the chunk of entries the server returned from it.
//! A [`DirStream`] resumes from its last cookie, whether or not the cache still holds the
//! chunk (seed entry 4: a listing taken in small chunks with the cache dropped in between
//! yields every name exactly once). On BAD_COOKIE it restarts from the beginning and skips
//! the names it already returned.
use crate::client::{Attr, Client};
use crate::error::Error;
use crate::inode::Inode;
use parking_lot::Mutex;
use rnfs_proto::nfs3::{FileHandle3, NfsTime3, Nfsstat3};
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
    mtime: Option<NfsTime3>,
    chunks: HashMap<u64, Chunk>,
}

/// Cached chunks of each directory, keyed by the cookie they start at.
#[derive(Debug, Default)]
pub(crate) struct DirCaches {
    dirs: Mutex<HashMap<FileHandle3, DirCache>>,
}

impl DirCaches {
    /// Forgets a directory's chunks (after a change made through this client).
    pub(crate) fn forget(&self, dir: &FileHandle3) {
        self.dirs.lock().remove(dir);
    }

    /// Forgets a directory's chunks unless they were taken at modification time `mtime`.
    fn validate(&self, dir: &FileHandle3, mtime: NfsTime3) {
        let mut d = self.dirs.lock();
        if d.get(dir).is_some_and(|c| c.mtime != Some(mtime)) {
            d.remove(dir);
        }
    }

    fn get(&self, dir: &FileHandle3, cookie: u64) -> Option<Chunk> {
        self.dirs.lock().get(dir)?.chunks.get(&cookie).cloned()
    }

    fn put(&self, dir: &FileHandle3, cookie: u64, mtime: Option<NfsTime3>, c: Chunk) {
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

/// A listing in progress.
#[derive(Debug)]
pub struct DirStream {
    c: Client,
    dir: Arc<Inode>,
    cookie: u64,
    verf: [u8; 8],
    done: bool,
    returned: HashSet<Vec<u8>>,
    restarts: u32,
}

impl DirStream {
    /// The next chunk of entries (without `.` and `..`); `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<DirEntry>>, Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            let chunk = match self.c.s.dirs.get(self.dir.fh(), self.cookie) {
                Some(c) => c,
                None => match self.fetch().await {
                    Ok(c) => c,
                    Err(Error::Nfs(Nfsstat3::BadCookie)) if self.restarts < 3 => {
                        // Start again; names already returned are skipped.
                        self.restarts += 1;
                        self.c.s.dirs.forget(self.dir.fh());
                        self.cookie = 0;
                        self.verf = [0; 8];
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            self.verf = chunk.verf;
            match chunk.next {
                Some(n) => self.cookie = n,
                None => self.done = true,
            }
            let fresh: Vec<DirEntry> = chunk
                .entries
                .into_iter()
                .filter(|e| self.returned.insert(e.name.clone()))
                .collect();
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
                Err(Error::Nfs(Nfsstat3::NotSupp)) => {
                    // RFC 1813 lets a server leave READDIRPLUS out; use READDIR from now on.
                    self.c.s.plus.store(false, Ordering::Relaxed);
                    None
                }
                r => Some(r?),
            }
        } else {
            None
        };
        // (cookie, entry) in the server's order, then EOF, verifier, directory mtime.
        let (raw, eof, verf, mtime): (Vec<(u64, DirEntry)>, _, _, _) = match plus {
            Some(r) => (
                r.entries
                    .into_iter()
                    .map(|e| {
                        let inode = e
                            .name_handle
                            .as_ref()
                            .map(|fh| self.c.inode(fh, e.name_attributes.clone()));
                        let d = DirEntry {
                            name: e.name.0,
                            fileid: e.fileid,
                            inode,
                            attr: e.name_attributes,
                        };
                        (e.cookie, d)
                    })
                    .collect(),
                r.eof,
                r.cookieverf.0,
                r.dir_attributes.map(|a| a.mtime),
            ),
            None => {
                let r = nfs
                    .readdir(self.dir.fh(), self.cookie, self.verf, count)
                    .await?;
                (
                    r.entries
                        .into_iter()
                        .map(|e| {
                            let d = DirEntry {
                                name: e.name.0,
                                fileid: e.fileid,
                                inode: None,
                                attr: None,
                            };
                            (e.cookie, d)
                        })
                        .collect(),
                    r.eof,
                    r.cookieverf.0,
                    r.dir_attributes.map(|a| a.mtime),
                )
            }
        };
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
            Some(next.ok_or(Error::Nfs(Nfsstat3::ServerFault))?)
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
        let a = self.revalidate(&dir).await?;
        if a.ftype != rnfs_proto::nfs3::Ftype3::Dir {
            return Err(Error::Nfs(Nfsstat3::NotDir));
        }
        self.s.dirs.validate(dir.fh(), a.mtime);
        Ok(DirStream {
            c: self.clone(),
            dir,
            cookie: 0,
            verf: [0; 8],
            done: false,
            returned: HashSet::new(),
            restarts: 0,
        })
    }

    /// Lists a whole directory (without `.` and `..`).
    pub async fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let mut s = self.open_dir(path).await?;
        let mut all = Vec::new();
        while let Some(c) = s.next_chunk().await? {
            all.extend(c);
        }
        Ok(all)
    }

    /// Drops every cached directory chunk.
    pub fn drop_dir_caches(&self) {
        self.s.dirs.clear();
    }
}
