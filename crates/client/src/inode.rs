//! Inodes: exactly one object per file handle (seed entry 15), holding the attribute
//! cache, the clean page cache and the write-back engine of the file.
use crate::pace::Span;
use crate::rpc::buf::Slice;
use crate::types::{Attr, FileHandle};
use crate::writeback::{WbConfig, WriteBack};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long attributes seen unchanged for `stable` are trusted: that long, within
/// `min..=max` (`max` below `min` counts as `min`).
pub(crate) fn attr_timeout(stable: Duration, min: Duration, max: Duration) -> Duration {
    stable.min(max).max(min)
}

/// Size of a page of the clean data cache. One READ fills several pages (up to rsize).
pub const PAGE: u64 = 64 * 1024;

/// Default upper bound of a file's read-ahead window (further limited to a quarter of the
/// page cache).
pub const DEFAULT_READAHEAD: u64 = 8 << 20;

/// Live counters of a client's caches; after any workload they return to their baseline
/// once files are closed and inodes released (seed entries 6-12).
#[derive(Debug)]
pub(crate) struct CacheCounters {
    /// Inode objects alive.
    pub(crate) inodes: AtomicU64,
    /// Clean pages cached.
    pub(crate) pages: AtomicU64,
    /// Bytes in clean pages.
    pub(crate) page_bytes: AtomicU64,
    /// Bytes held by write-back engines (dirty, in flight, unstable).
    pub(crate) wb_bytes: AtomicU64,
    /// Limit on `page_bytes`.
    pub(crate) page_limit: AtomicU64,
    /// READs of pages in flight (each fills one or more pages).
    pub(crate) fetches: AtomicU64,
    /// Most bytes a file reads ahead of a sequential reader (0: no read-ahead).
    pub(crate) readahead_max: AtomicU64,
    /// Pages asked for by read-ahead (not by a reader's own buffer), ever.
    pub(crate) readahead_pages: AtomicU64,
    /// Times a reader waited for a READ already in flight instead of sending its own.
    pub(crate) fetch_waits: AtomicU64,
    /// Times a reader sent its own READ after the one it waited for failed or raced with
    /// a write.
    pub(crate) fetch_retries: AtomicU64,
}

impl Default for CacheCounters {
    fn default() -> Self {
        Self {
            inodes: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            page_bytes: AtomicU64::new(0),
            wb_bytes: AtomicU64::new(0),
            page_limit: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            readahead_max: AtomicU64::new(DEFAULT_READAHEAD),
            readahead_pages: AtomicU64::new(0),
            fetch_waits: AtomicU64::new(0),
            fetch_retries: AtomicU64::new(0),
        }
    }
}

/// A snapshot of the client's cache counters.
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
    /// READs of pages in flight.
    pub fetches: u64,
}

/// Counters of read-ahead (totals since the mount).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Pages asked for by read-ahead.
    pub pages: u64,
    /// Times a reader waited for a READ already in flight instead of sending its own.
    pub waits: u64,
    /// Times a reader sent its own READ after the one it waited for failed or raced with
    /// a write.
    pub retries: u64,
}

impl CacheCounters {
    /// A snapshot.
    pub(crate) fn snapshot(&self) -> CacheStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            inodes: l(&self.inodes),
            pages: l(&self.pages),
            page_bytes: l(&self.page_bytes),
            wb_bytes: l(&self.wb_bytes),
            fetches: l(&self.fetches),
        }
    }

    /// Read-ahead totals.
    pub(crate) fn readahead(&self) -> ReadAheadStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReadAheadStats {
            pages: l(&self.readahead_pages),
            waits: l(&self.fetch_waits),
            retries: l(&self.fetch_retries),
        }
    }
}

/// A page of the cache: a slice of the receive buffer its READ's reply arrived in, shared
/// without a copy by the pages of that READ. Accounted at its own length; pages left
/// holding less than half of their READ's buffer are copied out ([`Pages::compact`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Page(Slice);

impl Page {
    /// `count` pages cut out of the data of consecutive READs, `chunks` (short or empty
    /// past their end). A page inside one READ's data is a slice of it; one straddling two
    /// (a server answering short of what was asked) is copied together.
    pub(crate) fn split(chunks: &[Slice], count: u64) -> Vec<Page> {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = 0usize;
        for c in chunks {
            starts.push(at);
            at += c.len();
        }
        (0..count as usize)
            .map(|i| {
                let a = (i * PAGE as usize).min(total);
                let b = ((i + 1) * PAGE as usize).min(total);
                // the chunk holding byte `a`
                let k = starts.partition_point(|s| *s <= a).saturating_sub(1);
                match (chunks.get(k), starts.get(k)) {
                    (Some(c), Some(s)) if b - s <= c.len() => Page(c.sub(a - s, b - a)),
                    _ => {
                        let mut v = Vec::with_capacity(b - a);
                        for (c, s) in chunks.iter().zip(&starts) {
                            let (lo, hi) = (a.max(*s), b.min(s + c.len()));
                            if lo < hi {
                                v.extend_from_slice(&c[lo - s..hi - s]);
                            }
                        }
                        Page(Slice::from_vec(v))
                    }
                }
            })
            .collect()
    }
}

impl Page {
    /// The bytes `from..from + len` of the page, shared.
    pub(crate) fn slice(&self, from: usize, len: usize) -> Slice {
        self.0.sub(from, len)
    }
}

impl std::ops::Deref for Page {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// What a READ of pages gave.
#[derive(Debug, Clone)]
pub(crate) enum Fetched {
    /// The pages, in order from the fetch's first (short or empty past the server's end
    /// of file). `fresh`: no write or invalidation of the file happened while the READ was
    /// in flight, so they were cached and anyone may use them; a stale result is only for
    /// the reader that asked for it.
    Data { pages: Arc<Vec<Page>>, fresh: bool },
    /// The READ failed.
    Failed(crate::error::Error),
}

/// A READ of `count` pages from `first` in flight. Each page it covers has a marker
/// pointing to it in the file's [`Pages`], so a reader needing one of them waits for it
/// instead of sending the same READ again. Whatever happens to the READ (reply, error,
/// cancellation), the markers go away and the waiters wake up.
#[derive(Debug)]
pub(crate) struct Fetch {
    pub(crate) first: u64,
    pub(crate) count: u64,
    /// The first page of the read that decided it: pages before it were read past, and
    /// are the first to make room for this READ's pages.
    pub(crate) behind: u64,
    /// Read-ahead (no reader asked for these pages yet).
    pub(crate) readahead: bool,
    /// The file's data generation when the READ was decided.
    pub(crate) gen: u64,
    out: Mutex<Option<Fetched>>,
    done: Notify,
    counters: Arc<CacheCounters>,
    /// When the READ went out and came back, for read-ahead pacing (none if it failed).
    span: Mutex<Option<Span>>,
}

impl Fetch {
    /// Waits for the outcome.
    pub(crate) async fn wait(&self) -> Fetched {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(o) = self.out.lock().clone() {
                return o;
            }
            notified.await;
        }
    }

    /// Whether the outcome is known.
    pub(crate) fn is_done(&self) -> bool {
        self.out.lock().is_some()
    }

    /// Records when the READ went out and came back, with the bytes it brought.
    pub(crate) fn set_span(&self, s: Span) {
        *self.span.lock() = Some(s);
    }

    /// When the READ went out and came back (once done, if it succeeded).
    pub(crate) fn span(&self) -> Option<Span> {
        *self.span.lock()
    }

    /// Records the outcome (the first one wins) and wakes every waiter.
    pub(crate) fn finish(&self, o: Fetched) {
        {
            let mut out = self.out.lock();
            if out.is_some() {
                return;
            }
            *out = Some(o);
        }
        self.counters.fetches.fetch_sub(1, Ordering::Relaxed);
        self.done.notify_waiters();
    }
}

/// What a reader gets for one page of its buffer.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Cached.
    Page(Page),
    /// Being read; `mine`: by a READ this reader started.
    Wait(Arc<Fetch>, bool),
}

/// The clean pages of one file, and the READs in flight for pages it does not have.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    map: BTreeMap<u64, Page>,
    bytes: u64,
    inflight: HashMap<u64, Arc<Fetch>>,
}

impl Pages {
    /// After the pages `gone` left the cache: a run of cached pages that shared a READ
    /// buffer with one of them and now holds less than half of that buffer gets its bytes
    /// copied out, so that the cache's accounting (the pages' own lengths) stays within 2x
    /// of the memory it keeps alive. Runs of a READ are consecutive pages.
    fn compact(&mut self, gone: &[(u64, Page)]) {
        for (idx, old) in gone {
            for n in [idx.checked_sub(1), idx.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let Some(pg) = self.map.get(&n) else { continue };
                if !pg.0.same_buffer(&old.0) {
                    continue;
                }
                let buffer = pg.0.buffer_len();
                let same = |m: &BTreeMap<u64, Page>, k: u64| {
                    m.get(&k).is_some_and(|q| q.0.same_buffer(&old.0))
                };
                let (mut lo, mut hi) = (n, n);
                while lo > 0 && same(&self.map, lo - 1) {
                    lo -= 1;
                }
                while same(&self.map, hi + 1) {
                    hi += 1;
                }
                let held: usize = self.map.range(lo..=hi).map(|(_, q)| q.len()).sum();
                if held * 2 < buffer {
                    for (_, q) in self.map.range_mut(lo..=hi) {
                        *q = Page(Slice::from_vec(q.to_vec()));
                    }
                }
            }
        }
    }
}

/// One file, directory or link known to the client.
pub struct Inode {
    fh: FileHandle,
    /// Attributes, when they were fetched (`None`: expired), and since when they have
    /// been seen unchanged.
    attr: Mutex<Option<(Attr, Option<Instant>, Instant)>>,
    pub(crate) wb: Mutex<WriteBack>,
    pages: Mutex<Pages>,
    /// Woken whenever the write-back engine changes state.
    pub(crate) changed: Arc<Notify>,
    /// Bumped by every write, WRITE completion and invalidation, always under the `pages`
    /// lock; a READ result is cached only if it did not change meanwhile, checked under
    /// the same lock as the store (so a READ sent before a WRITE of the same range
    /// completes can never cache the old data).
    pub(crate) data_gen: AtomicU64,
    /// Bytes last accounted to `wb_bytes`.
    wb_accounted: AtomicU64,
    counters: Arc<CacheCounters>,
    table: Weak<Mutex<HashMap<FileHandle, Weak<Inode>>>>,
}

impl std::fmt::Debug for Inode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inode").field("fh", &self.fh).finish()
    }
}

impl Inode {
    /// The file handle.
    pub fn fh(&self) -> &FileHandle {
        &self.fh
    }

    /// Cached attributes still trusted: younger than their timeout, which is how long they
    /// had been seen unchanged when fetched, kept within `min..=max` (the adaptive
    /// attribute cache of NFS clients, `acregmin`/`acregmax` or `acdirmin`/`acdirmax`: a
    /// file that changes often is asked about often, one that sits still is trusted longer).
    pub(crate) fn cached_attr(&self, now: Instant, min: Duration, max: Duration) -> Option<Attr> {
        let a = self.attr.lock();
        let (attr, fetched, stable) = a.as_ref()?;
        let fetched = (*fetched)?;
        let ttl = attr_timeout(fetched.saturating_duration_since(*stable), min, max);
        (now.saturating_duration_since(fetched) < ttl).then(|| attr.clone())
    }

    /// Last attributes known, however old.
    pub fn last_attr(&self) -> Option<Attr> {
        self.attr.lock().as_ref().map(|(a, _, _)| a.clone())
    }

    /// Records attributes the server sent. Returns whether the file changed since the
    /// previous attributes (mtime, size or the change attribute differ; over NFSv3 the
    /// change attribute is ctime's), which invalidates the pages.
    pub(crate) fn set_attr(&self, now: Instant, a: Attr) -> bool {
        let mut cur = self.attr.lock();
        let (changed, stable) = match cur.as_ref() {
            Some((old, _, since)) => {
                let changed = old.mtime != a.mtime || old.size != a.size || old.change != a.change;
                (changed, if changed { now } else { *since })
            }
            None => (false, now),
        };
        *cur = Some((a, Some(now), stable));
        changed
    }

    /// Records fresh attributes from the server and, if they show the file changed while
    /// it holds no data of ours, drops its cached pages (close-to-open revalidation).
    pub(crate) fn refresh(&self, now: Instant, a: Attr) {
        if self.set_attr(now, a) && self.wb.lock().is_clean() {
            self.invalidate_all();
        }
    }

    /// Forgets the cached attributes (the next metadata request asks the server).
    pub(crate) fn expire_attr(&self) {
        if let Some((_, t, _)) = self.attr.lock().as_mut() {
            *t = None;
        }
    }

    /// Removes page `idx`; returns it (for [`Pages::compact`]).
    fn remove_locked(&self, p: &mut Pages, idx: u64) -> Option<(u64, Page)> {
        let old = p.map.remove(&idx)?;
        p.bytes -= old.len() as u64;
        self.counters.pages.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .page_bytes
            .fetch_sub(old.len() as u64, Ordering::Relaxed);
        Some((idx, old))
    }

    /// Caches page `idx` if it fits under the client-wide limit, first dropping this
    /// file's pages before `behind` (already read past), lowest first, and, for a page a
    /// reader asked for (`demand`), then the pages furthest ahead of it (read-ahead goes
    /// first). A read-ahead page that does not fit is not cached.
    fn insert_locked(
        &self,
        p: &mut Pages,
        idx: u64,
        data: Page,
        behind: u64,
        demand: bool,
    ) -> bool {
        let limit = self.counters.page_limit.load(Ordering::Relaxed);
        let len = data.len() as u64;
        let mut gone: Vec<(u64, Page)> = self.remove_locked(p, idx).into_iter().collect();
        let over = || self.counters.page_bytes.load(Ordering::Relaxed) + len > limit;
        while over() {
            match p.map.first_key_value().map(|(k, _)| *k) {
                Some(k) if k < behind => {
                    // the rest of its READ's pages read past go too: they are next anyway
                    let mut k = k;
                    while let Some(g) = self.remove_locked(p, k) {
                        let next = p
                            .map
                            .get(&(k + 1))
                            .filter(|n| k + 1 < behind && n.0.same_buffer(&g.1 .0));
                        gone.push(g);
                        if next.is_none() {
                            break;
                        }
                        k += 1;
                    }
                }
                _ => break,
            }
        }
        while demand && over() {
            match p.map.last_key_value().map(|(k, _)| *k) {
                Some(k) if k > idx => gone.extend(self.remove_locked(p, k)),
                _ => break,
            }
        }
        p.compact(&gone);
        if over() {
            return false;
        }
        p.map.insert(idx, data);
        p.bytes += len;
        self.counters.pages.fetch_add(1, Ordering::Relaxed);
        self.counters.page_bytes.fetch_add(len, Ordering::Relaxed);
        true
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

    /// A READ of `count` pages from `first`, marked in flight on each of them.
    fn start_locked(
        &self,
        p: &mut Pages,
        (first, count): (u64, u64),
        gen: u64,
        behind: u64,
        readahead: bool,
    ) -> Arc<Fetch> {
        let f = Arc::new(Fetch {
            first,
            count,
            behind,
            readahead,
            gen,
            out: Mutex::new(None),
            done: Notify::new(),
            counters: self.counters.clone(),
            span: Mutex::new(None),
        });
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        for i in first..first + count {
            p.inflight.insert(i, f.clone());
        }
        f
    }

    /// Starts the READs of the pages in `from..to` that are neither cached nor in flight,
    /// in runs of at most `chunk` pages. With `slots`, each page of the range gets its
    /// slot: the cached page or the READ to wait for.
    fn claim_locked(
        &self,
        p: &mut Pages,
        range: std::ops::Range<u64>,
        chunk: u64,
        (gen, behind): (u64, u64),
        mut slots: Option<&mut Vec<Slot>>,
        started: &mut Vec<Arc<Fetch>>,
    ) {
        let free = |p: &Pages, i: u64| !p.map.contains_key(&i) && !p.inflight.contains_key(&i);
        let (mut idx, to) = (range.start, range.end);
        while idx < to {
            if let Some(pg) = p.map.get(&idx) {
                if let Some(s) = slots.as_deref_mut() {
                    s.push(Slot::Page(pg.clone()));
                }
                idx += 1;
                continue;
            }
            if let Some(f) = p.inflight.get(&idx) {
                if let Some(s) = slots.as_deref_mut() {
                    self.counters.fetch_waits.fetch_add(1, Ordering::Relaxed);
                    s.push(Slot::Wait(f.clone(), false));
                }
                idx += 1;
                continue;
            }
            let mut n = 1;
            while n < chunk && idx + n < to && free(p, idx + n) {
                n += 1;
            }
            let f = self.start_locked(p, (idx, n), gen, behind, slots.is_none());
            if let Some(s) = slots.as_deref_mut() {
                s.extend((0..n).map(|_| Slot::Wait(f.clone(), true)));
            }
            started.push(f);
            idx += n;
        }
    }

    /// For each page in `demand`, the cached page or the READ in flight to wait for,
    /// starting READs (of at most `chunk` pages each) for the missing ones; then READs
    /// for the pages of `ahead` that are neither cached nor in flight (read-ahead). One
    /// lock for all of it, so no page is ever asked for twice. Returns the slots of
    /// `demand`, and the READs to start: those of `demand` first, then the read-ahead.
    pub(crate) fn claim(
        &self,
        demand: std::ops::Range<u64>,
        ahead: std::ops::Range<u64>,
        chunk: u64,
    ) -> (Vec<Slot>, Vec<Arc<Fetch>>) {
        let chunk = chunk.max(1);
        let mut p = self.pages.lock();
        let gen = self.data_gen.load(Ordering::Acquire);
        let mut slots = Vec::with_capacity((demand.end - demand.start) as usize);
        let mut started = Vec::new();
        let g = (gen, demand.start);
        self.claim_locked(&mut p, demand, chunk, g, Some(&mut slots), &mut started);
        let n_demand = started.len();
        self.claim_locked(&mut p, ahead, chunk, g, None, &mut started);
        let ra: u64 = started[n_demand..].iter().map(|f| f.count).sum();
        self.counters
            .readahead_pages
            .fetch_add(ra, Ordering::Relaxed);
        (slots, started)
    }

    /// The data generation now (for a READ sent without a marker).
    pub(crate) fn gen(&self) -> u64 {
        let _p = self.pages.lock();
        self.data_gen.load(Ordering::Acquire)
    }

    fn unmark_locked(p: &mut Pages, f: &Arc<Fetch>) {
        for i in f.first..f.first + f.count {
            if p.inflight.get(&i).is_some_and(|m| Arc::ptr_eq(m, f)) {
                p.inflight.remove(&i);
            }
        }
    }

    /// Caches the pages a READ brought (from page `first`) if the file's data did not
    /// change since `gen` was taken — checked under the lock every invalidation takes, so
    /// a write completing meanwhile either comes before (and the pages are not cached) or
    /// after (and drops them) — and removes the READ's markers. Returns whether the
    /// pages were fresh.
    pub(crate) fn store_fetched(
        &self,
        first: u64,
        pages: &[Page],
        gen: u64,
        marker: Option<&Arc<Fetch>>,
        (behind, demand): (u64, bool),
    ) -> bool {
        let mut p = self.pages.lock();
        if let Some(f) = marker {
            Self::unmark_locked(&mut p, f);
        }
        let fresh = self.data_gen.load(Ordering::Acquire) == gen;
        if fresh {
            for (i, pg) in pages.iter().enumerate() {
                let idx = first + i as u64;
                // A page cached meanwhile by a later READ is at least as new.
                if p.map.contains_key(&idx) {
                    continue;
                }
                if !self.insert_locked(&mut p, idx, pg.clone(), behind, demand) {
                    break;
                }
            }
        }
        fresh
    }

    /// Removes the markers of a READ that failed or was abandoned.
    pub(crate) fn unmark(&self, f: &Arc<Fetch>) {
        Self::unmark_locked(&mut self.pages.lock(), f);
    }

    /// Drops the pages overlapping `[off, off+len)` and forgets the READs in flight for
    /// them (their results will not be cached; readers arriving now send new READs).
    pub(crate) fn invalidate_range(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = off / PAGE;
        let last = (off + len - 1) / PAGE;
        let mut p = self.pages.lock();
        let keys: Vec<u64> = p.map.range(first..=last).map(|(k, _)| *k).collect();
        let gone: Vec<(u64, Page)> = keys
            .into_iter()
            .filter_map(|k| self.remove_locked(&mut p, k))
            .collect();
        p.compact(&gone);
        p.inflight.retain(|k, _| *k < first || *k > last);
        self.data_gen.fetch_add(1, Ordering::AcqRel);
        drop(p);
    }

    /// Drops every page and forgets the READs in flight.
    pub(crate) fn invalidate_all(&self) {
        let mut p = self.pages.lock();
        self.clear_locked(&mut p);
        p.inflight.clear();
        self.data_gen.fetch_add(1, Ordering::AcqRel);
        drop(p);
    }

    /// Drops the pages before `idx` (read past by a stream larger than the cache can
    /// hold: their memory is better reused at once). READs in flight are left alone.
    pub(crate) fn drop_below(&self, idx: u64) {
        let mut p = self.pages.lock();
        match p.map.first_key_value() {
            Some((k, _)) if *k < idx => {}
            _ => return,
        }
        let keep = p.map.split_off(&idx);
        let gone = std::mem::replace(&mut p.map, keep);
        let bytes: u64 = gone.values().map(|pg| pg.len() as u64).sum();
        p.bytes -= bytes;
        self.counters
            .pages
            .fetch_sub(gone.len() as u64, Ordering::Relaxed);
        self.counters.page_bytes.fetch_sub(bytes, Ordering::Relaxed);
        drop(p);
        drop(gone);
    }

    /// Drops every page to make room for others (the data did not change: READs in
    /// flight still cache their results).
    pub(crate) fn drop_pages(&self) {
        let mut p = self.pages.lock();
        self.clear_locked(&mut p);
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
    map: Arc<Mutex<HashMap<FileHandle, Weak<Inode>>>>,
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
    pub(crate) fn get(&self, fh: &FileHandle, attr: Option<Attr>, now: Instant) -> Arc<Inode> {
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
                        changed: Arc::new(Notify::new()),
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
            ino.refresh(now, a);
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
                v.drop_pages();
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

#[cfg(test)]
mod tests {
    use super::{attr_timeout, Page, Pages, PAGE};
    use crate::rpc::buf::Slice;

    #[test]
    fn a_page_left_alone_does_not_keep_its_whole_read_buffer() {
        let data: Vec<u8> = (0..16 * PAGE as usize).map(|i| i as u8).collect();
        let pages = Page::split(&[Slice::from_vec(data.clone())], 16);
        let mut p = Pages::default();
        for (i, pg) in pages.into_iter().enumerate() {
            p.map.insert(100 + i as u64, pg);
        }
        // Half the buffer gone: the rest still shares it.
        let gone: Vec<(u64, Page)> = (100..108)
            .filter_map(|k| Some((k, p.map.remove(&k)?)))
            .collect();
        p.compact(&gone);
        assert!(p.map.values().all(|q| q.0.buffer_len() == data.len()));
        // One more: the seven left are copied out, with the same bytes.
        let gone: Vec<(u64, Page)> = (108..109)
            .filter_map(|k| Some((k, p.map.remove(&k)?)))
            .collect();
        p.compact(&gone);
        for (k, q) in &p.map {
            assert_eq!(q.0.buffer_len(), PAGE as usize, "page {k}");
            let at = ((k - 100) * PAGE) as usize;
            assert_eq!(&q[..], &data[at..at + PAGE as usize]);
        }
    }

    #[test]
    fn pages_cut_from_short_reads_straddle_them_by_copy() {
        let data: Vec<u8> = (0..3 * PAGE as usize).map(|i| (i * 3) as u8).collect();
        let cut = PAGE as usize + 100;
        let chunks = [
            Slice::from_vec(data[..cut].to_vec()),
            Slice::from_vec(data[cut..].to_vec()),
        ];
        let pages = Page::split(&chunks, 4);
        assert_eq!(pages.len(), 4);
        for (i, q) in pages.iter().enumerate() {
            let a = (i * PAGE as usize).min(data.len());
            let b = ((i + 1) * PAGE as usize).min(data.len());
            assert_eq!(&q[..], &data[a..b], "page {i}");
        }
        assert!(
            pages[0].0.same_buffer(&chunks[0]),
            "inside one READ: no copy"
        );
        assert!(pages[2].0.same_buffer(&chunks[1]));
        assert!(!pages[1].0.same_buffer(&chunks[0]) && !pages[1].0.same_buffer(&chunks[1]));
        assert!(pages[3].is_empty(), "past the end");
    }
    use std::time::Duration;

    #[test]
    fn the_attribute_timeout_grows_with_stability_within_its_bounds() {
        let s = Duration::from_secs;
        assert_eq!(
            attr_timeout(s(0), s(3), s(60)),
            s(3),
            "just changed: the minimum"
        );
        assert_eq!(
            attr_timeout(s(10), s(3), s(60)),
            s(10),
            "unchanged for 10 s"
        );
        assert_eq!(
            attr_timeout(s(1000), s(3), s(60)),
            s(60),
            "never past the maximum"
        );
        assert_eq!(attr_timeout(s(5), s(0), s(0)), s(0), "noac");
        assert_eq!(attr_timeout(s(5), s(9), s(2)), s(9), "max below min: min");
    }
}
