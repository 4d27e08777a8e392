//! Inodes: exactly one object per file handle (seed entry 15), holding the attribute
//! cache, the clean page cache and the write-back engine of the file.
use crate::writeback::{WbConfig, WriteBack};
use parking_lot::Mutex;
use rnfs_proto::nfs3::{Fattr3, FileHandle3};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Size of a page of the clean data cache.
pub const PAGE: u64 = 64 * 1024;

/// Live counters of a client's caches; after any workload they return to their baseline
/// once files are closed and inodes released (seed entries 6-12).
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Inode objects alive.
    pub inodes: AtomicU64,
    /// Clean pages cached.
    pub pages: AtomicU64,
    /// Bytes in clean pages.
    pub page_bytes: AtomicU64,
    /// Bytes held by write-back engines (dirty, in flight, unstable).
    pub wb_bytes: AtomicU64,
    /// Limit on `page_bytes`.
    pub page_limit: AtomicU64,
}

/// A snapshot of [`CacheCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Inode objects alive.
    pub inodes: u64,
    /// Clean pages cached.
    pub pages: u64,
    /// Bytes in clean pages.
    pub page_bytes: u64,
    /// Bytes held by write-back engines.
    pub wb_bytes: u64,
}

impl CacheCounters {
    /// A snapshot.
    pub fn snapshot(&self) -> CacheStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            inodes: l(&self.inodes),
            pages: l(&self.pages),
            page_bytes: l(&self.page_bytes),
            wb_bytes: l(&self.wb_bytes),
        }
    }
}

/// The clean pages of one file.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    map: BTreeMap<u64, Arc<Vec<u8>>>,
    bytes: u64,
}

/// One file, directory or link known to the client.
pub struct Inode {
    fh: FileHandle3,
    /// Attributes and when they were fetched (`None`: expired).
    attr: Mutex<Option<(Fattr3, Option<Instant>)>>,
    pub(crate) wb: Mutex<WriteBack>,
    pages: Mutex<Pages>,
    /// Woken whenever the write-back engine changes state.
    pub(crate) changed: Notify,
    /// Bumped by every write and WRITE completion; a READ result is cached only if it
    /// did not change meanwhile.
    pub(crate) data_gen: AtomicU64,
    /// Bytes last accounted to `wb_bytes`.
    wb_accounted: AtomicU64,
    counters: Arc<CacheCounters>,
    table: Weak<Mutex<HashMap<FileHandle3, Weak<Inode>>>>,
}

impl std::fmt::Debug for Inode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inode").field("fh", &self.fh).finish()
    }
}

impl Inode {
    /// The file handle.
    pub fn fh(&self) -> &FileHandle3 {
        &self.fh
    }

    /// Cached attributes younger than `ttl`.
    pub fn cached_attr(&self, now: Instant, ttl: Duration) -> Option<Fattr3> {
        let a = self.attr.lock();
        a.as_ref()
            .filter(|(_, t)| t.is_some_and(|t| now.saturating_duration_since(t) < ttl))
            .map(|(a, _)| a.clone())
    }

    /// Last attributes known, however old.
    pub fn last_attr(&self) -> Option<Fattr3> {
        self.attr.lock().as_ref().map(|(a, _)| a.clone())
    }

    /// Records attributes the server sent. Returns whether the file's data changed since
    /// the previous attributes (mtime, ctime or size differ), which invalidates the pages.
    pub(crate) fn set_attr(&self, now: Instant, a: Fattr3) -> bool {
        let mut cur = self.attr.lock();
        let changed = match cur.as_ref() {
            Some((old, _)) => old.mtime != a.mtime || old.size != a.size || old.ctime != a.ctime,
            None => false,
        };
        *cur = Some((a, Some(now)));
        changed
    }

    /// Forgets the cached attributes (the next metadata request asks the server).
    pub(crate) fn expire_attr(&self) {
        if let Some((_, t)) = self.attr.lock().as_mut() {
            *t = None;
        }
    }

    /// A cached page.
    pub(crate) fn page(&self, idx: u64) -> Option<Arc<Vec<u8>>> {
        self.pages.lock().map.get(&idx).cloned()
    }

    /// Caches a page if the client-wide limit allows (first dropping this file's other
    /// pages when it does not).
    pub(crate) fn store_page(&self, idx: u64, data: Arc<Vec<u8>>) {
        let limit = self.counters.page_limit.load(Ordering::Relaxed);
        let len = data.len() as u64;
        let mut p = self.pages.lock();
        if self.counters.page_bytes.load(Ordering::Relaxed) + len > limit {
            self.clear_locked(&mut p);
            if self.counters.page_bytes.load(Ordering::Relaxed) + len > limit {
                return;
            }
        }
        if let Some(old) = p.map.insert(idx, data) {
            p.bytes -= old.len() as u64;
            self.counters.pages.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .page_bytes
                .fetch_sub(old.len() as u64, Ordering::Relaxed);
        }
        p.bytes += len;
        self.counters.pages.fetch_add(1, Ordering::Relaxed);
        self.counters.page_bytes.fetch_add(len, Ordering::Relaxed);
    }

    fn clear_locked(&self, p: &mut Pages) {
        self.counters
            .pages
            .fetch_sub(p.map.len() as u64, Ordering::Relaxed);
        self.counters
            .page_bytes
            .fetch_sub(p.bytes, Ordering::Relaxed);
        p.map.clear();
        p.bytes = 0;
    }

    /// Drops the pages overlapping `[off, off+len)`.
    pub(crate) fn invalidate_range(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = off / PAGE;
        let last = (off + len - 1) / PAGE;
        let mut p = self.pages.lock();
        let keys: Vec<u64> = p.map.range(first..=last).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(old) = p.map.remove(&k) {
                p.bytes -= old.len() as u64;
                self.counters.pages.fetch_sub(1, Ordering::Relaxed);
                self.counters
                    .page_bytes
                    .fetch_sub(old.len() as u64, Ordering::Relaxed);
            }
        }
        self.data_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every page.
    pub(crate) fn invalidate_all(&self) {
        let mut p = self.pages.lock();
        self.clear_locked(&mut p);
        self.data_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `f` on the write-back engine and keeps the client-wide byte count in step.
    pub(crate) fn with_wb<T>(&self, f: impl FnOnce(&mut WriteBack) -> T) -> T {
        let mut wb = self.wb.lock();
        let r = f(&mut wb);
        let now = wb.held_bytes();
        let before = self.wb_accounted.swap(now, Ordering::Relaxed);
        if now >= before {
            self.counters
                .wb_bytes
                .fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.counters
                .wb_bytes
                .fetch_sub(before - now, Ordering::Relaxed);
        }
        r
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        let p = std::mem::take(&mut *self.pages.lock());
        self.counters
            .pages
            .fetch_sub(p.map.len() as u64, Ordering::Relaxed);
        self.counters
            .page_bytes
            .fetch_sub(p.bytes, Ordering::Relaxed);
        self.counters
            .wb_bytes
            .fetch_sub(self.wb_accounted.load(Ordering::Relaxed), Ordering::Relaxed);
        self.counters.inodes.fetch_sub(1, Ordering::Relaxed);
        if let Some(t) = self.table.upgrade() {
            let mut t = t.lock();
            if t.get(&self.fh).is_some_and(|w| w.strong_count() == 0) {
                t.remove(&self.fh);
            }
        }
    }
}

/// The table from file handle to inode: the one place inodes are created.
#[derive(Debug)]
pub(crate) struct InodeTable {
    map: Arc<Mutex<HashMap<FileHandle3, Weak<Inode>>>>,
    /// Recently used inodes kept alive (with their attributes and pages) after their last
    /// user let go; bounded, oldest dropped first.
    recent: Mutex<std::collections::VecDeque<Arc<Inode>>>,
    keep: usize,
    counters: Arc<CacheCounters>,
    wb: WbConfig,
}

impl InodeTable {
    pub(crate) fn new(counters: Arc<CacheCounters>, wb: WbConfig, keep: usize) -> Self {
        Self {
            map: Arc::default(),
            recent: Mutex::default(),
            keep,
            counters,
            wb,
        }
    }

    /// Lets go of every inode kept for caching (those still in use stay, and so do those
    /// holding data not yet on stable storage).
    pub(crate) fn drop_recent(&self) {
        let old = std::mem::take(&mut *self.recent.lock());
        let (keep, gone): (Vec<_>, Vec<_>) = old.into_iter().partition(|i| !i.wb.lock().is_clean());
        self.recent.lock().extend(keep);
        drop(gone);
    }

    /// Marks `ino` as recently used, keeping it (and its caches) alive.
    pub(crate) fn touch(&self, ino: &Arc<Inode>) {
        let evicted = {
            let mut r = self.recent.lock();
            if r.back().is_some_and(|b| Arc::ptr_eq(b, ino)) {
                return;
            }
            if let Some(i) = r.iter().position(|x| Arc::ptr_eq(x, ino)) {
                let x = r.remove(i);
                r.push_back(ino.clone());
                x
            } else {
                r.push_back(ino.clone());
                // The oldest clean inode goes; one holding unwritten or uncommitted data
                // stays until it is written back (or its failure recorded): dropping it
                // would lose data without an error (W3).
                if r.len() > self.keep {
                    r.iter()
                        .position(|x| x.wb.lock().is_clean())
                        .and_then(|i| r.remove(i))
                } else {
                    None
                }
            }
        };
        // Dropped outside the lock: an inode's Drop takes the table's lock.
        drop(evicted);
    }

    /// The inode of `fh`, created on first sight; `attr`, if given, refreshes its cache.
    pub(crate) fn get(&self, fh: &FileHandle3, attr: Option<Fattr3>, now: Instant) -> Arc<Inode> {
        let ino = {
            let mut m = self.map.lock();
            match m.get(fh).and_then(Weak::upgrade) {
                Some(i) => i,
                None => {
                    let i = Arc::new(Inode {
                        fh: fh.clone(),
                        attr: Mutex::new(None),
                        wb: Mutex::new(WriteBack::new(self.wb)),
                        pages: Mutex::default(),
                        changed: Notify::new(),
                        data_gen: AtomicU64::new(0),
                        wb_accounted: AtomicU64::new(0),
                        counters: self.counters.clone(),
                        table: Arc::downgrade(&self.map),
                    });
                    self.counters.inodes.fetch_add(1, Ordering::Relaxed);
                    m.insert(fh.clone(), Arc::downgrade(&i));
                    i
                }
            }
        };
        if let Some(a) = attr {
            if ino.set_attr(now, a) && ino.wb.lock().is_clean() {
                ino.invalidate_all();
            }
        }
        self.touch(&ino);
        ino
    }

    /// Drops the pages of the least recently used inodes other than `except` until `need`
    /// more bytes fit under the client's page limit.
    pub(crate) fn evict_pages(&self, need: u64, except: &Inode) {
        let c = &self.counters;
        let fits =
            || c.page_bytes.load(Ordering::Relaxed) + need <= c.page_limit.load(Ordering::Relaxed);
        if fits() {
            return;
        }
        let victims: Vec<Arc<Inode>> = self.recent.lock().iter().cloned().collect();
        for v in &victims {
            if fits() {
                break;
            }
            if !std::ptr::eq(Arc::as_ptr(v), except) {
                v.invalidate_all();
            }
        }
        drop(victims);
    }

    /// Every inode alive.
    pub(crate) fn live(&self) -> Vec<Arc<Inode>> {
        let v: Vec<Arc<Inode>> = self.map.lock().values().filter_map(Weak::upgrade).collect();
        v
    }

    /// Inodes in the table (alive or about to be removed).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}
