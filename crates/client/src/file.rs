//! Open files: reads through the page cache, writes into the write-back engine, `fsync`
//! and `close` report write-back errors through the handle's error cursor (W1-W4).
//!
//! Consistency is close-to-open: `open` fetches fresh attributes (dropping cached pages if
//! the file changed), `close` writes and commits everything.
//!
//! Reads go through the page cache with read-ahead: the pages a read needs that are not
//! cached are fetched concurrently, one READ per run of up to rsize bytes; a handle that
//! reads sequentially (each read starting where the last ended) keeps a window of READs
//! in flight ahead of it, doubling from 128 KiB (or twice the read) up to the client's
//! read-ahead limit ([`Client::set_readahead`], 8 MiB by default, at most a quarter of the
//! page cache) and, once the stream's READs have been timed, to twice their
//! bandwidth-delay product (module `pace`: READs past it would only queue at the
//! server); a read anywhere else drops the window to nothing. Every READ in flight is
//! marked on the pages it covers, so a reader needing one waits for it instead of sending
//! another; if that READ fails or races with a write, the reader sends its own.
use crate::client::{Client, Shared};
use crate::error::{Error, RpcError};
use crate::inode::{Fetch, Fetched, Inode, Page, ReadAheadStats, Slot, PAGE};
use crate::nfs::ReadData;
use crate::pace::{Pace, Span};
use crate::rpc::buf::Slice;
use crate::types::{access, Attr, FileHandle, FileType, SetAttr, Status};
use crate::wire::Wire;
use crate::writeback::ErrCursor;
use parking_lot::Mutex;
use std::io::SeekFrom;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// First read-ahead window, in pages (128 KiB).
const INITIAL_WINDOW: u64 = (128 * 1024) / PAGE;

/// How to open a file, like [`std::fs::OpenOptions`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Allow reading.
    pub read: bool,
    /// Allow writing.
    pub write: bool,
    /// Every write goes to the end of the file.
    pub append: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Fail if the file exists, even as a symbolic link (implies `create`; sent as an
    /// EXCLUSIVE CREATE, so a retransmitted call cannot fail with EEXIST).
    pub create_new: bool,
    /// Truncate to zero length.
    pub truncate: bool,
    /// Mode of a created file (0o644 if 0).
    pub mode: u32,
}

impl OpenOptions {
    /// The share access these options need (NFSv4 OPEN: 1 read, 2 write, 3 both).
    pub(crate) fn share_mode(&self) -> u32 {
        match (self.read, self.write) {
            (_, false) => 1,
            (false, true) => 2,
            (true, true) => 3,
        }
    }

    /// Read only.
    pub fn read() -> Self {
        Self {
            read: true,
            ..Default::default()
        }
    }

    /// Read and write an existing file.
    pub fn read_write() -> Self {
        Self {
            read: true,
            write: true,
            ..Default::default()
        }
    }

    /// Write, create and truncate (what `>` in a shell does).
    pub fn create_truncate() -> Self {
        Self {
            write: true,
            create: true,
            truncate: true,
            ..Default::default()
        }
    }
}

/// An open regular file.
#[derive(Debug)]
pub struct File {
    c: Client,
    ino: Arc<Inode>,
    pos: u64,
    cursor: ErrCursor,
    opts: OpenOptions,
    closed: bool,
    ra: Mutex<ReadAhead>,
}

/// Read-ahead state of one open file.
#[derive(Debug, Default)]
struct ReadAhead {
    /// Where the last read ended: a read starting there is sequential.
    next: Option<u64>,
    /// The window in pages (0 after a random access).
    window: u64,
    /// Pages below this one were already asked for by read-ahead.
    end: u64,
    /// READs this handle started for its sequential stream (read-ahead or not) that may
    /// still be in flight or not yet taken into `pace`.
    pending: Vec<Arc<Fetch>>,
    /// The window's pacing, from the stream's READs.
    pace: Pace,
}

impl Client {
    /// Opens (and maybe creates or truncates) the file at `path`.
    pub async fn open(&self, path: &str, o: OpenOptions) -> Result<File, Error> {
        let create = o.create || o.create_new;
        if (create || o.truncate || o.append) && !o.write {
            return Err(Error::Invalid(
                "create, truncate and append need write access",
            ));
        }
        // What an existing file must grant (a file this open creates grants its creator
        // everything, whatever its mode, as open(2) does).
        let mut mask = 0;
        if o.read {
            mask |= access::READ;
        }
        if o.write {
            mask |= if o.append {
                access::EXTEND
            } else {
                access::MODIFY
            };
        }
        let mode = if o.mode == 0 { 0o644 } else { o.mode };
        // Close-to-open: fresh attributes at every open (from the ACCESS reply).
        let (ino, attr, _, opened) = self
            .open_path(path, o.create, o.create_new, mode, mask, o.share_mode())
            .await?;
        match attr.ftype {
            FileType::Reg => {}
            FileType::Dir => return Err(Error::Nfs(Status::IsDir)),
            _ => return Err(Error::Invalid("not a regular file")),
        }
        // NFSv4: the server open this handle works under (none over NFSv3), unless the
        // OPEN that created the file is it.
        if !opened {
            self.s.nfs.open_state(ino.fh(), o.share_mode()).await?;
        }
        let cursor = ino.wb.lock().open_cursor();
        let mut f = File {
            c: self.clone(),
            ino,
            pos: 0,
            cursor,
            opts: o,
            closed: false,
            ra: Mutex::default(),
        };
        if o.truncate {
            f.set_len(0).await?;
        }
        Ok(f)
    }
}

impl Client {
    /// Sets the most bytes an open file reads ahead of a sequential reader (default
    /// [`crate::inode::DEFAULT_READAHEAD`]; never more than a quarter of the page cache;
    /// 0 turns read-ahead off).
    pub fn set_readahead(&self, bytes: u64) {
        self.s
            .counters
            .readahead_max
            .store(bytes, Ordering::Relaxed);
    }

    /// Read-ahead counters since the mount.
    pub fn readahead_stats(&self) -> ReadAheadStats {
        self.s.counters.readahead()
    }

    /// The read-ahead limit in pages.
    fn readahead_pages(&self) -> u64 {
        let c = &self.s.counters;
        let max = c.readahead_max.load(Ordering::Relaxed);
        max.min(c.page_limit.load(Ordering::Relaxed) / 4) / PAGE
    }
}

/// A part of what a read gives, in order.
enum Part<'a> {
    /// Bytes of a cached page.
    Data(&'a Slice),
    /// Zeros: past the server's end of file, where data of ours not yet written back
    /// extends the file (a hole those writes will leave). Never past that data: where the
    /// server's READ ends inside the size it claims, the read ends there (issue 13: a
    /// server claiming 2^40 bytes whose READs return nothing had a copy write 2^40 zeros).
    Zeros(usize),
}

/// Reads `len` bytes from `start` in READs of at most `rsize`, one after the other; less
/// at the server's end of file. Returns the data of each READ, in order.
async fn read_range(
    nfs: &Wire,
    fh: &FileHandle,
    start: u64,
    len: u64,
    rsize: u32,
) -> Result<Vec<Slice>, Error> {
    let mut chunks: Vec<Slice> = Vec::new();
    let mut got = 0u64;
    while got < len {
        let want = (len - got).min(u64::from(rsize.max(1))) as u32;
        let r = nfs.read(fh, start + got, want).await?;
        let data = r.data.sub(0, want as usize);
        let k = data.len();
        got += k as u64;
        chunks.push(data);
        if r.eof || k == 0 {
            break;
        }
    }
    Ok(chunks)
}

/// Completes a READ's [`Fetch`] even if it is dropped before the reply (runtime shutdown):
/// the markers go and the waiters wake up with an error.
struct FetchGuard {
    f: Arc<Fetch>,
    ino: Weak<Inode>,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if !self.f.is_done() {
            if let Some(i) = self.ino.upgrade() {
                i.unmark(&self.f);
            }
            self.f
                .finish(Fetched::Failed(Error::Rpc(RpcError::Shutdown)));
        }
    }
}

/// The READs of a [`Fetch`] going on: one of up to rsize bytes, then another only where
/// the server answered short of what was asked; then the pages are cached if fresh and the
/// waiters woken. It runs in the RPC driver task as the replies are read
/// (`Wire::read_then`), so a READ costs no task of its own and no wake-up besides the
/// reader's. A reader giving up does not cancel it, and it holds neither the inode nor the
/// client while a READ is in flight.
struct FetchRun {
    nfs: Wire,
    fh: FileHandle,
    guard: FetchGuard,
    client: Weak<Shared>,
    rsize: u32,
    sent: Instant,
    got: Vec<Slice>,
    have: u64,
}

/// Starts the READs of `f`.
fn start_fetch(c: &Client, ino: &Arc<Inode>, f: Arc<Fetch>) {
    FetchRun {
        nfs: c.s.nfs.clone(),
        fh: ino.fh().clone(),
        guard: FetchGuard {
            f,
            ino: Arc::downgrade(ino),
        },
        client: Arc::downgrade(&c.s),
        rsize: c.s.rsize,
        sent: Instant::now(),
        got: Vec::new(),
        have: 0,
    }
    .next();
}

impl FetchRun {
    /// Sends the next READ.
    fn next(self) {
        let f = &self.guard.f;
        let want = (f.count * PAGE - self.have).min(u64::from(self.rsize.max(1))) as u32;
        let off = f.first * PAGE + self.have;
        let (nfs, fh) = (self.nfs.clone(), self.fh.clone());
        nfs.read_then(&fh, off, want, move |r| self.on_reply(r, want));
    }

    fn on_reply(mut self, r: Result<ReadData, Error>, want: u32) {
        let r = match r {
            Ok(r) => r,
            Err(e) => return self.finish(Err(e)),
        };
        let data = r.data.sub(0, want as usize);
        let k = data.len() as u64;
        self.have += k;
        self.got.push(data);
        if r.eof || k == 0 || self.have >= self.guard.f.count * PAGE {
            self.finish(Ok(()));
        } else {
            self.next();
        }
    }

    /// Caches the pages if fresh (or drops the markers after an error), then wakes the
    /// waiters.
    fn finish(self, r: Result<(), Error>) {
        let f = &self.guard.f;
        let weak_ino = &self.guard.ino;
        let out = match r {
            Ok(()) => {
                f.set_span(Span {
                    sent: self.sent,
                    done: Instant::now(),
                    bytes: self.have,
                });
                let pages = Page::split(&self.got, f.count);
                let fresh = match (weak_ino.upgrade(), self.client.upgrade()) {
                    (Some(ino), Some(s)) => {
                        let bytes = pages.iter().map(|p| p.len() as u64).sum();
                        s.inodes.evict_pages(bytes, &ino);
                        ino.store_fetched(f.first, &pages, f.gen, Some(f), (f.behind, !f.readahead))
                    }
                    _ => false,
                };
                Fetched::Data {
                    pages: Arc::new(pages),
                    fresh,
                }
            }
            Err(e) => {
                if let Some(i) = weak_ino.upgrade() {
                    i.unmark(f);
                }
                Fetched::Failed(e)
            }
        };
        f.finish(out);
    }
}

impl File {
    /// The inode.
    pub fn inode(&self) -> &Arc<Inode> {
        &self.ino
    }

    /// The read-ahead window in bytes: how far ahead of a sequential reader READs are
    /// sent (0 until the handle reads sequentially, and after a read elsewhere).
    pub fn readahead_window(&self) -> u64 {
        self.ra.lock().window * PAGE
    }

    /// Bytes of this file not yet acknowledged by the server (dirty or in flight).
    pub fn unwritten_bytes(&self) -> u64 {
        self.ino.wb.lock().unwritten_bytes()
    }

    /// Bytes of this file written UNSTABLE and not yet committed (W6: resent if the
    /// server's write verifier changes).
    pub fn uncommitted_bytes(&self) -> u64 {
        self.ino.wb.lock().uncommitted_bytes()
    }

    /// Counters of the file's write-back engine.
    pub fn wb_stats(&self) -> crate::WbStats {
        self.ino.wb.lock().stats()
    }

    /// Attributes, with the size including data not yet written back.
    pub async fn metadata(&self) -> Result<Attr, Error> {
        self.c.getattr(&self.ino).await
    }

    /// Moves the position.
    pub async fn seek(&mut self, to: SeekFrom) -> Result<u64, Error> {
        let p = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.metadata().await?.size.checked_add_signed(d),
        };
        self.pos = p.ok_or(Error::Nfs(Status::Inval))?;
        Ok(self.pos)
    }

    /// Reads at the position and advances it; 0 at end of file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.read_at(self.pos, buf).await?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads at `off` through the page cache, with data not yet written back on top.
    pub async fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let mut n = 0;
        self.read_pages(off, buf.len(), |part| match part {
            Part::Data(d) => {
                buf[n..n + d.len()].copy_from_slice(d);
                n += d.len();
            }
            Part::Zeros(z) => {
                buf[n..n + z].fill(0); // beyond the server's EOF: a hole our writes will fill
                n += z;
            }
        })
        .await?;
        self.ino.wb.lock().overlay(off, &mut buf[..n]);
        Ok(n)
    }

    /// Reads at the position up to `max` bytes and advances it, without copying: the
    /// data comes as slices of the page cache (of the READ replies as received). Empty at
    /// end of file. Where the file holds data not yet written back, that part is copied
    /// together with it.
    pub async fn read_shared(&mut self, max: usize) -> Result<Vec<Slice>, Error> {
        let out = self.read_shared_at(self.pos, max).await?;
        self.pos += out.iter().map(|s| s.len() as u64).sum::<u64>();
        Ok(out)
    }

    /// [`File::read_shared`] at `off`, without moving the position. Consecutive pages of
    /// one READ come as one slice: a read of whole READs is as many slices.
    pub async fn read_shared_at(&self, off: u64, max: usize) -> Result<Vec<Slice>, Error> {
        let mut out: Vec<Slice> = Vec::new();
        let mut n = 0usize;
        self.read_pages(off, max, |part| match part {
            Part::Data(d) => {
                n += d.len();
                if !out.last_mut().is_some_and(|last| last.append(d)) {
                    out.push(d.clone());
                }
            }
            Part::Zeros(z) => {
                n += z;
                out.push(Slice::from_vec(vec![0; z]));
            }
        })
        .await?;
        let wb = self.ino.wb.lock();
        if wb.holds_data_in(off, n as u64) {
            let mut flat = Vec::with_capacity(n);
            for p in &out {
                flat.extend_from_slice(p);
            }
            wb.overlay(off, &mut flat);
            out = vec![Slice::from_vec(flat)];
        }
        drop(wb);
        Ok(out)
    }

    /// Reads up to `len` bytes at `off` through the page cache (read-ahead, waiting for
    /// READs in flight, drop-behind), giving `sink` the parts in order; how many bytes
    /// were given (less at the end of the file).
    async fn read_pages(
        &self,
        off: u64,
        len: usize,
        mut sink: impl FnMut(Part<'_>),
    ) -> Result<usize, Error> {
        if !self.opts.read {
            return Err(Error::Invalid("file not opened for reading"));
        }
        let size = self.metadata().await?.size;
        if off >= size || len == 0 {
            return Ok(0);
        }
        let n = (len as u64).min(size - off) as usize;
        let end = off + n as u64;
        let (first, last) = (off / PAGE, (end - 1) / PAGE);
        let chunk = (u64::from(self.c.s.rsize) / PAGE).max(1);
        let (ahead, seq) =
            self.plan_readahead(off, end, first..last + 1, size.div_ceil(PAGE), chunk);
        let (slots, started) = self.ino.claim(first..last + 1, ahead, chunk);
        for f in &started {
            start_fetch(&self.c, &self.ino, f.clone());
        }
        if seq && !started.is_empty() {
            // The stream's READs, read-ahead or not, pace its window.
            self.ra.lock().pending.extend(started.iter().cloned());
        }
        let local_end = self.ino.wb.lock().local_end();
        let given = match self.fill(off, end, local_end, slots, &mut sink).await {
            Ok(given) => given,
            Err(e) => {
                // Leave no READ of ours behind: wait for them (each ends, one way or the
                // other), and start the next read without a window.
                let pending = {
                    let mut ra = self.ra.lock();
                    ra.window = 0;
                    ra.end = 0;
                    std::mem::take(&mut ra.pending)
                };
                for f in started.iter().chain(&pending) {
                    f.wait().await;
                }
                return Err(e);
            }
        };
        // Drop-behind: a sequential stream through a file larger than half the cache
        // cannot stay cached anyway; what it has read goes now, so the cache keeps other
        // files' pages and READ buffers are reused instead of faulted in fresh (a third
        // of the client's time in a 1 GiB copy), while still in the processor's cache
        // (with the pages of a window behind kept too, the copy took 15% more CPU).
        let limit = self.c.s.counters.page_limit.load(Ordering::Relaxed);
        if seq && size > limit / 2 {
            self.ino.drop_below(first);
        }
        Ok(given)
    }

    /// The pages to read ahead for a read of the pages `want` (bytes `off..end`), and
    /// whether the read continues a sequential stream: none unless it does; else the window
    /// past the read, asked for when less than half of it is already in flight or cached,
    /// never past `eof_page`. The window doubles at each read, up to the read-ahead limit
    /// and, once the stream's READs have been measured, to twice their bandwidth-delay
    /// product (at least two READs of `chunk` pages): see `crate::pace`.
    fn plan_readahead(
        &self,
        off: u64,
        end: u64,
        want: Range<u64>,
        eof_page: u64,
        chunk: u64,
    ) -> (Range<u64>, bool) {
        let max = self.c.readahead_pages();
        let mut ra = self.ra.lock();
        let seq = match ra.next {
            Some(n) => n == off,
            None => off == 0,
        };
        ra.next = Some(end);
        if !seq || max == 0 {
            ra.window = 0;
            ra.end = 0;
            ra.pace.reset();
            ra.pending.retain(|f| !f.is_done());
            return (0..0, seq);
        }
        let mut spans = Vec::new();
        ra.pending.retain(|f| {
            if !f.is_done() {
                return true;
            }
            spans.extend(f.span());
            false
        });
        ra.pace.on_done(&mut spans);
        let grown = if ra.window == 0 {
            (2 * (want.end - want.start)).max(INITIAL_WINDOW)
        } else {
            ra.window * 2
        };
        let paced = ra
            .pace
            .window(2 * chunk * PAGE)
            .map_or(u64::MAX, |b| b.div_ceil(chunk * PAGE) * chunk);
        ra.window = grown.min(max).min(paced);
        let from = ra.end.max(want.end);
        if (from - want.end) * 2 > ra.window {
            return (0..0, true);
        }
        let mut to = (want.end + ra.window).min(eof_page);
        // Ending on a READ boundary, the next window's READs are whole and aligned.
        if to < eof_page && to / chunk * chunk > from {
            to = to / chunk * chunk;
        }
        if to <= from {
            return (0..0, true);
        }
        ra.end = to;
        (from..to, true)
    }

    /// Gives `sink` the bytes `off..end` of the pages of `slots` (from page `off / PAGE`),
    /// waiting for the READs in flight; returns how many it gave. Where a page ends short
    /// (the server's end of file), zeros follow up to `local_end` (our data not yet
    /// written back, laid over them by the caller), and the read ends there.
    async fn fill(
        &self,
        off: u64,
        end: u64,
        local_end: u64,
        slots: Vec<Slot>,
        sink: &mut impl FnMut(Part<'_>),
    ) -> Result<usize, Error> {
        let first = off / PAGE;
        let last = (end - 1) / PAGE;
        let mut pos = off;
        // Pages read again after someone else's READ failed: (first page, pages).
        let mut redone: (u64, Vec<Page>) = (0, Vec::new());
        for (i, slot) in slots.into_iter().enumerate() {
            let idx = first + i as u64;
            let page = match slot {
                Slot::Page(p) => p,
                Slot::Wait(f, mine) => match f.wait().await {
                    Fetched::Data { pages, fresh } if mine || fresh => pages
                        .get((idx - f.first) as usize)
                        .cloned()
                        .unwrap_or_default(),
                    Fetched::Failed(e) if mine => return Err(e),
                    // Someone else's READ failed, or raced with a write: ours decides, for
                    // the rest of that READ's pages this read needs at once.
                    _ => {
                        let (from, pages) = &redone;
                        match idx.checked_sub(*from).and_then(|k| pages.get(k as usize)) {
                            Some(p) => p.clone(),
                            None => {
                                self.c
                                    .s
                                    .counters
                                    .fetch_retries
                                    .fetch_add(1, Ordering::Relaxed);
                                let n = (f.first + f.count).min(last + 1) - idx;
                                redone = (idx, self.read_run(idx, n).await?);
                                redone.1.first().cloned().unwrap_or_default()
                            }
                        }
                    }
                },
            };
            let in_page = (pos - idx * PAGE) as usize;
            let take = ((end - pos) as usize).min(PAGE as usize - in_page);
            let avail = page.len().saturating_sub(in_page).min(take);
            if avail > 0 {
                sink(Part::Data(&page.slice(in_page, avail)));
            }
            if take > avail {
                let data_end = pos + avail as u64;
                let zeros = local_end
                    .saturating_sub(data_end)
                    .min((take - avail) as u64);
                if zeros > 0 {
                    sink(Part::Zeros(zeros as usize));
                }
                if zeros < (take - avail) as u64 {
                    // The server's data ended inside the size it claims, with nothing of
                    // ours beyond: the file is shorter than its attributes said (it shrank,
                    // or the server is lying). End the read here and ask again next time.
                    let claimed = self.ino.last_attr().map_or(0, |a| a.size);
                    tracing::warn!(
                        "{:?}: READ ended at byte {} of the {claimed} the server claims",
                        self.ino.fh(),
                        data_end + zeros
                    );
                    self.ino.expire_attr();
                    return Ok((data_end + zeros - off) as usize);
                }
            }
            pos += take as u64;
        }
        Ok((pos - off) as usize)
    }

    /// Reads `n` pages from `idx` with READs of our own (no marker), caching them if fresh.
    async fn read_run(&self, idx: u64, n: u64) -> Result<Vec<Page>, Error> {
        let gen = self.ino.gen();
        let data = read_range(
            &self.c.s.nfs,
            self.ino.fh(),
            idx * PAGE,
            n * PAGE,
            self.c.s.rsize,
        )
        .await?;
        let pages = Page::split(&data, n);
        let bytes = pages.iter().map(|p| p.len() as u64).sum();
        self.c.s.inodes.evict_pages(bytes, &self.ino);
        self.ino.store_fetched(idx, &pages, gen, None, (idx, true));
        Ok(pages)
    }

    /// Writes bytes already in a shared buffer (e.g. from [`File::read_shared`] of another
    /// file) at the position, without copying them; advances it.
    pub async fn write_shared(&mut self, data: Slice) -> Result<usize, Error> {
        self.write_here(data).await
    }

    /// Writes at the position (or at the end, in append mode) and advances it.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let data = self.copy_in(buf);
        self.write_here(data).await
    }

    async fn write_here(&mut self, data: Slice) -> Result<usize, Error> {
        if self.opts.append {
            self.pos = self.metadata().await?.size;
        }
        let n = self.write_slice_at(self.pos, data).await?;
        self.pos += n as u64;
        Ok(n)
    }

    /// The application's bytes, copied into a buffer of the write pool.
    fn copy_in(&self, buf: &[u8]) -> Slice {
        self.c.write_buffer(buf)
    }

    /// [`File::write_shared`] at `off`, without moving the position.
    pub async fn write_shared_at(&mut self, off: u64, data: Slice) -> Result<usize, Error> {
        self.write_slice_at(off, data).await
    }

    /// Writes at `off` into the cache. Fails early only with a write-back error newer than
    /// this handle's cursor (W4), and waits for the data to be written when the file is in
    /// sync mode after a failure (W5) or when the file holds too much unwritten data.
    pub async fn write_at(&mut self, off: u64, buf: &[u8]) -> Result<usize, Error> {
        let data = self.copy_in(buf);
        self.write_slice_at(off, data).await
    }

    async fn write_slice_at(&mut self, off: u64, data: Slice) -> Result<usize, Error> {
        if !self.opts.write {
            return Err(Error::Invalid("file not opened for writing"));
        }
        if self.closed {
            return Err(Error::Invalid("file closed"));
        }
        let len = data.len();
        off.checked_add(len as u64)
            .ok_or(Error::Nfs(Status::FBig))?;
        let sync = {
            let mut wb = self.ino.wb.lock();
            if wb.sync_mode() {
                wb.check(&mut self.cursor)?;
            }
            wb.sync_mode()
        };
        self.ino.invalidate_range(off, len as u64);
        let limit = self.c.s.opts.dirty_bytes_per_file;
        let acts = self.ino.with_wb(|wb| {
            wb.write_slice(Instant::now(), off, data);
            if wb.held_bytes() > limit / 2 {
                // A large writer: commit in the background from half the limit,
                // so that it seldom has to stop, drain and wait for one big COMMIT.
                wb.commit_above(limit / 2);
            }
            wb.poll(Instant::now())
        });
        self.c.run(&self.ino, acts);
        if sync {
            self.c.wait_wb(&self.ino, true, |wb| wb.is_written()).await;
            self.ino.wb.lock().check(&mut self.cursor)?;
        } else if self.ino.wb.lock().held_bytes() > self.c.s.opts.dirty_bytes_per_file {
            let limit = self.c.s.opts.dirty_bytes_per_file / 2;
            self.c
                .wait_wb(&self.ino, true, move |wb| wb.held_bytes() <= limit)
                .await;
        }
        Ok(len)
    }

    /// Writes everything and commits it; reports write-back errors newer than this
    /// handle's cursor, once (W1).
    pub async fn fsync(&mut self) -> Result<(), Error> {
        self.c.wait_wb(&self.ino, true, |wb| wb.is_clean()).await;
        self.ino.wb.lock().check(&mut self.cursor)
    }

    /// Truncates or extends the file: drops cached data beyond `len`, waits for WRITEs in
    /// flight (so none lands past the new end), then SETATTR.
    pub async fn set_len(&mut self, len: u64) -> Result<(), Error> {
        if !self.opts.write {
            return Err(Error::Invalid("file not opened for writing"));
        }
        self.ino.with_wb(|wb| wb.truncate(len));
        self.c
            .wait_wb(&self.ino, false, |wb| {
                wb.unwritten_bytes() == 0 || wb.local_end() <= len
            })
            .await;
        self.ino.invalidate_all();
        let a = self
            .c
            .s
            .nfs
            .setattr(
                self.ino.fh(),
                SetAttr {
                    size: Some(len),
                    ..Default::default()
                },
            )
            .await?;
        match a {
            Some(a) => {
                self.ino.set_attr(Instant::now(), a);
            }
            None => self.ino.expire_attr(),
        }
        Ok(())
    }

    /// Flushes, commits and reports errors like [`File::fsync`]; the handle is finished.
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        let r = if self.opts.write {
            self.fsync().await
        } else {
            Ok(())
        };
        if self.opts.write && r.is_err() {
            // Data still to write goes out under the open in the background, as after a
            // drop; the error is this caller's.
            self.close_in_background();
            return r;
        }
        self.c
            .s
            .nfs
            .close_state(self.ino.fh(), self.opts.share_mode())
            .await;
        r
    }

    /// Writes back what is left, then gives the server open back (NFSv4), on the
    /// client's runtime.
    fn close_in_background(&self) {
        if !self.opts.write && !self.c.s.nfs.holds_opens() {
            return;
        }
        let (c, mode) = (self.c.clone(), self.opts.share_mode());
        if self.opts.write {
            let ino = self.ino.clone();
            self.c.s.rt.spawn(async move {
                c.wait_wb(&ino, true, |wb| wb.is_clean()).await;
                c.s.nfs.close_state(ino.fh(), mode).await;
            });
        } else {
            // The handle alone: the inode (and its pages) go as soon as nobody uses them.
            let fh = self.ino.fh().clone();
            self.c
                .s
                .rt
                .spawn(async move { c.s.nfs.close_state(&fh, mode).await });
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Dropped without close: write back in the background (on the client's runtime),
        // then give the server open back; any error stays unseen and is reported to the
        // next handle (W3). Should the runtime be gone, the inode stays in the table
        // with its data.
        if self.opts.write {
            self.c.s.inodes.touch(&self.ino);
        }
        self.close_in_background();
    }
}
