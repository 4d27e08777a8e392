//! Receive buffers: replies are read from the socket straight into a buffer of their own,
//! and large buffers are recycled.
//!
//! A READ reply of 1 MiB used to be copied four times on its way to the page cache (socket
//! buffer, record decoder, record, results, data), each copy into freshly allocated memory
//! that the kernel had to fault in page by page: that, not the network, bounded the
//! client's read speed (`perf stat`: one page fault per 4 KiB received). Now the bytes of a
//! large record go from the kernel into one [`Buf`], READ data is handed on as a
//! [`Slice`] of it (no copy), and when the last slice is dropped the buffer goes back to its
//! [`BufPool`] (its memory already faulted in) for the next reply.
//!
//! No unsafe code: a pooled buffer is zero-filled once when first allocated and keeps its
//! length; reuse writes over it.
use parking_lot::Mutex;
use rnfs_rpc::record::fragment_header;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Records at least this large get a pooled buffer; smaller ones a plain allocation (the
/// allocator recycles small blocks by itself).
pub const POOL_MIN: usize = 64 * 1024;

/// A bounded stock of large buffers (received replies; data written by the application).
#[derive(Debug)]
pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
    max_bytes: usize,
    /// Buffers taken, and the count at the last [`BufPool::trim_if_idle`].
    takes: AtomicU64,
    seen: AtomicU64,
}

impl BufPool {
    /// A pool that keeps at most `max_bytes` of idle buffers.
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            max_bytes,
            takes: AtomicU64::new(0),
            seen: AtomicU64::new(0),
        })
    }

    /// Frees the idle buffers if none was taken since the last call (called periodically:
    /// memory kept for a stream goes back once the stream is over).
    pub fn trim_if_idle(&self) {
        let t = self.takes.load(Ordering::Relaxed);
        if self.seen.swap(t, Ordering::Relaxed) == t {
            let gone = std::mem::take(&mut *self.free.lock());
            drop(gone);
        }
    }

    /// Bytes held by idle buffers.
    pub fn idle_bytes(&self) -> usize {
        self.free.lock().iter().map(Vec::len).sum()
    }

    /// A buffer for `len` bytes (its contents are whatever was there before).
    pub fn take(self: &Arc<Self>, len: usize) -> Buf {
        if len < POOL_MIN {
            return Buf {
                data: vec![0; len],
                len,
                pool: None,
            };
        }
        self.takes.fetch_add(1, Ordering::Relaxed);
        let reused = {
            let mut free = self.free.lock();
            // The smallest idle buffer that fits, if not more than twice too large (a small
            // write must not keep a large buffer alive); a stream asks for one size. Of
            // equals, the one given back last: it is the likeliest to be still in the
            // processor's cache, which makes receiving into it cheaper (the oldest cost a
            // 1 GiB read from nfs-ganesha on tmpfs 10% more CPU).
            let best = free
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, b)| b.len() >= len && b.len() / 2 <= len)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            best.map(|i| free.remove(i))
        };
        // Rounded to whole pages, so that replies a few bytes apart share buffers.
        let data = reused.unwrap_or_else(|| vec![0; len.next_multiple_of(4096)]);
        Buf {
            data,
            len,
            pool: Some(self.clone()),
        }
    }

    fn give_back(&self, data: Vec<u8>) {
        let mut free = self.free.lock();
        let held: usize = free.iter().map(Vec::len).sum();
        if held + data.len() <= self.max_bytes {
            free.push(data);
        } else if let Some((i, _)) = free
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.len())
            .filter(|(_, b)| b.len() < data.len())
        {
            // Keep the larger buffer: it serves any reply the smaller one could.
            let fits = held - free[i].len() + data.len() <= self.max_bytes;
            if fits {
                free[i] = data;
            }
        }
    }
}

/// One received record (or a record being received): `len` valid bytes.
#[derive(Debug)]
pub struct Buf {
    data: Vec<u8>,
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl Buf {
    /// A buffer holding these bytes (not pooled).
    pub fn from_vec(v: Vec<u8>) -> Self {
        Self {
            len: v.len(),
            data: v,
            pool: None,
        }
    }

    /// Valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is valid.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The writable bytes from `at` to `end` (receive straight into the buffer).
    pub(crate) fn area(&mut self, at: usize, end: usize) -> &mut [u8] {
        &mut self.data[at..end]
    }

    /// Makes room for `len` bytes (at most `limit`), keeping the first `keep`: a record
    /// of several fragments (rare). The buffer grows to at least twice its size, so that a
    /// record in many small fragments is copied a bounded number of times in all (at most
    /// its own size again), not once per fragment; never beyond `limit`. A larger buffer
    /// comes from `pool`. Returns the bytes copied.
    pub(crate) fn grow(
        &mut self,
        pool: &Arc<BufPool>,
        len: usize,
        keep: usize,
        limit: usize,
    ) -> usize {
        if len <= self.data.len() {
            self.len = len;
            return 0;
        }
        let room = len
            .max(self.data.len().saturating_mul(2))
            .min(limit.max(len));
        let mut bigger = pool.take(room);
        let keep = keep.min(self.len);
        bigger.data[..keep].copy_from_slice(&self.data[..keep]);
        bigger.len = len;
        std::mem::swap(self, &mut bigger);
        keep
    }

    /// A buffer holding a copy of `data` (pooled if large).
    pub fn copy_of(pool: &Arc<BufPool>, data: &[u8]) -> Self {
        let mut b = pool.take(data.len());
        b.data[..data.len()].copy_from_slice(data);
        b
    }

    /// Shares the bytes `start..start + len` (clamped to the valid ones).
    pub fn into_slice(self, start: usize, len: usize) -> Slice {
        Slice::new(Arc::new(self), start, len)
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(p) = self.pool.take() {
            p.give_back(std::mem::take(&mut self.data));
        }
    }
}

/// A shared, read-only part of a received buffer (READ data, a page of the cache). The
/// buffer lives until its last slice is dropped.
#[derive(Debug, Clone)]
pub struct Slice {
    buf: Arc<Buf>,
    start: usize,
    len: usize,
}

impl Default for Slice {
    fn default() -> Self {
        Self::new(Arc::new(Buf::from_vec(Vec::new())), 0, 0)
    }
}

impl Slice {
    fn new(buf: Arc<Buf>, start: usize, len: usize) -> Self {
        let start = start.min(buf.len());
        let len = len.min(buf.len() - start);
        Self { buf, start, len }
    }

    /// Owns these bytes (copied).
    pub fn from_vec(v: Vec<u8>) -> Self {
        let n = v.len();
        Self::new(Arc::new(Buf::from_vec(v)), 0, n)
    }

    /// The part `from..from + len` of this slice (clamped).
    pub fn sub(&self, from: usize, len: usize) -> Slice {
        let from = from.min(self.len);
        Slice {
            buf: self.buf.clone(),
            start: self.start + from,
            len: len.min(self.len - from),
        }
    }

    /// Bytes of the whole buffer this slice keeps alive.
    pub fn buffer_len(&self) -> usize {
        self.buf.data.len()
    }

    /// Whether `other` is a slice of the same buffer.
    pub fn same_buffer(&self, other: &Slice) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// Extends this slice over `next` if `next` follows it in the same buffer (the pages
    /// of one READ do); whether it did.
    pub fn append(&mut self, next: &Slice) -> bool {
        let follows = self.same_buffer(next) && self.start + self.len == next.start;
        if follows {
            self.len += next.len;
        }
        follows
    }
}

impl std::ops::Deref for Slice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Progress through byte slices sent with vectored writes, which may each write only part
/// of what they are given.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gather {
    i: usize,
    off: usize,
}

impl Gather {
    /// At the start of `parts` (past any empty ones).
    pub fn new<P: AsRef<[u8]>>(parts: &[P]) -> Self {
        let mut g = Self::default();
        g.advance(parts, 0);
        g
    }

    /// Whether every byte of `parts` has been written.
    pub fn done<P: AsRef<[u8]>>(&self, parts: &[P]) -> bool {
        self.i >= parts.len()
    }

    /// The bytes still to write, as at most 512 slices (under the kernel's IOV_MAX).
    pub fn iov<'a, P: AsRef<[u8]>>(&self, parts: &'a [P]) -> Vec<std::io::IoSlice<'a>> {
        let Some(first) = parts.get(self.i) else {
            return Vec::new();
        };
        std::iter::once(&first.as_ref()[self.off..])
            .chain(parts[self.i + 1..].iter().map(|p| p.as_ref()))
            .take(512)
            .map(std::io::IoSlice::new)
            .collect()
    }

    /// `n` more bytes were written (empty parts are passed over).
    pub fn advance<P: AsRef<[u8]>>(&mut self, parts: &[P], mut n: usize) {
        while let Some(p) = parts.get(self.i) {
            let rest = p.as_ref().len() - self.off;
            if n < rest {
                self.off += n;
                return;
            }
            n -= rest;
            self.i += 1;
            self.off = 0;
        }
    }
}

impl PartialEq for Slice {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Slice {}

/// A decoded reply: the record and where the procedure's results start.
#[derive(Debug)]
pub struct Reply {
    buf: Buf,
    body: usize,
}

impl Reply {
    pub(crate) fn new(buf: Buf, body: usize) -> Self {
        Self {
            body: body.min(buf.len()),
            buf,
        }
    }

    /// The encoded results.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body..]
    }

    /// Shares the results' bytes `from..from + len` (offsets within [`Reply::body`]).
    pub fn into_slice(self, from: usize, len: usize) -> Slice {
        let b = self.body;
        self.buf.into_slice(b + from, len)
    }
}

/// Counters of a [`Framer`] (a snapshot; cheap to copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Complete records taken out.
    pub records: u64,
    /// Records that came in more than one fragment.
    pub reassembled: u64,
    /// Fragment headers read.
    pub fragments: u64,
    /// Bytes copied from a record's buffer into a larger one while reassembling a record of
    /// several fragments: at most the record's size again per record, whatever the
    /// fragments' sizes.
    pub moved: u64,
}

impl std::ops::Add for FrameStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            records: self.records + o.records,
            reassembled: self.reassembled + o.reassembled,
            fragments: self.fragments + o.fragments,
            moved: self.moved + o.moved,
        }
    }
}

/// RPC record marking (RFC 5531 section 11) on the receive side, reading each large
/// record straight into its own buffer: bytes are staged in a small buffer only until the
/// record's header is known; the rest of a record's fragment is read into the record.
///
/// What a peer can make it hold or do is bounded: a record of at most `max` bytes (checked
/// before any allocation, growing by doubling so that a record in 1-byte fragments costs
/// linear time), and at most `max + 1` fragments per record (as many as a record of the
/// largest size in 1-byte fragments and an empty last one), so that a record that never
/// ends (empty fragments forever) breaks the stream instead of keeping it busy.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    pool: Arc<BufPool>,
    stats: FrameStats,
    /// Fragments of the record being assembled.
    frags: usize,
    stage: Vec<u8>,
    /// Received, not yet taken: `stage[start..end]`.
    start: usize,
    end: usize,
    /// The record being assembled, with `have` bytes in it.
    rec: Option<Buf>,
    have: usize,
    /// Bytes of the current fragment still to come (0: a fragment header is next).
    left: usize,
    /// The current fragment is the record's last.
    last: bool,
}

/// Size of the staging buffer (small records and record headers).
const STAGE: usize = 64 * 1024;

impl Framer {
    /// A framer refusing records larger than `max` bytes.
    pub fn new(max: usize, pool: Arc<BufPool>) -> Self {
        Self {
            max,
            pool,
            stats: FrameStats::default(),
            frags: 0,
            stage: vec![0; STAGE],
            start: 0,
            end: 0,
            rec: None,
            have: 0,
            left: 0,
            last: false,
        }
    }

    /// Counters since this framer was made.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Where the next bytes from the socket go: into the record being assembled when the
    /// staged bytes are used up mid-fragment, otherwise into the staging buffer.
    pub fn recv_area(&mut self) -> &mut [u8] {
        if self.left > 0 && self.start == self.end {
            if let Some(rec) = self.rec.as_mut() {
                let (a, b) = (self.have, self.have + self.left);
                return rec.area(a, b);
            }
        }
        if self.start > 0 {
            self.stage.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.stage[self.end..]
    }

    /// `n` bytes were received into the area [`Framer::recv_area`] gave.
    pub fn received(&mut self, n: usize) {
        if self.left > 0 && self.start == self.end && self.rec.is_some() {
            let n = n.min(self.left);
            self.have += n;
            self.left -= n;
        } else {
            self.end = (self.end + n).min(self.stage.len());
        }
    }

    /// The next complete record, if one is in; an error if the stream is broken (the
    /// connection must then be dropped).
    pub fn next_record(&mut self) -> Result<Option<Buf>, String> {
        loop {
            if self.left == 0 {
                if self.rec.is_some() && self.last {
                    self.last = false;
                    self.have = 0;
                    self.stats.records += 1;
                    if self.frags > 1 {
                        self.stats.reassembled += 1;
                    }
                    self.frags = 0;
                    return Ok(self.rec.take());
                }
                if self.end - self.start < 4 {
                    return Ok(None);
                }
                let h = &self.stage[self.start..self.start + 4];
                let (last, len) = fragment_header([h[0], h[1], h[2], h[3]]);
                self.start += 4;
                self.last = last;
                self.frags += 1;
                self.stats.fragments += 1;
                let size = self.have + len;
                if size > self.max {
                    return Err(format!(
                        "reply record of {size} bytes is larger than the limit of {}",
                        self.max
                    ));
                }
                if self.frags > self.max.saturating_add(1) {
                    return Err(format!(
                        "reply record of more than {} fragments",
                        self.max.saturating_add(1)
                    ));
                }
                match self.rec.as_mut() {
                    Some(rec) => {
                        let moved = rec.grow(&self.pool, size, self.have, self.max);
                        self.stats.moved += moved as u64;
                    }
                    None => self.rec = Some(self.pool.take(size)),
                }
                self.left = len;
                continue;
            }
            let n = self.left.min(self.end - self.start);
            if n == 0 {
                return Ok(None);
            }
            let Some(rec) = self.rec.as_mut() else {
                return Err("record state lost".into());
            };
            rec.area(self.have, self.have + n)
                .copy_from_slice(&self.stage[self.start..self.start + n]);
            self.start += n;
            self.have += n;
            self.left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(last: bool, len: usize) -> [u8; 4] {
        ((len as u32) | if last { 0x8000_0000 } else { 0 }).to_be_bytes()
    }

    /// Feeds `stream` to a framer in pieces of at most `step` bytes (honouring the area it
    /// gives), returns the records.
    fn run(stream: &[u8], step: usize, pool: &Arc<BufPool>) -> Result<Vec<Vec<u8>>, String> {
        feed(&mut Framer::new(1 << 24, pool.clone()), stream, step)
    }

    /// [`run`] with a given framer.
    fn feed(f: &mut Framer, stream: &[u8], step: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let area = f.recv_area();
            let n = area.len().min(step).min(stream.len() - at);
            area[..n].copy_from_slice(&stream[at..at + n]);
            f.received(n);
            at += n;
            while let Some(r) = f.next_record()? {
                out.push(r.to_vec());
            }
        }
        Ok(out)
    }

    fn records() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, len) in [8usize, 0, 300_000, 12, 70_000, 65_536, 1]
            .into_iter()
            .enumerate()
        {
            let body: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
            stream.extend_from_slice(&mark(true, len));
            stream.extend_from_slice(&body);
            want.push(body);
        }
        // one record in three fragments, one of them large
        let body: Vec<u8> = (0..200_000).map(|k| (k % 251) as u8).collect();
        stream.extend_from_slice(&mark(false, 10));
        stream.extend_from_slice(&body[..10]);
        stream.extend_from_slice(&mark(false, 150_000));
        stream.extend_from_slice(&body[10..150_010]);
        stream.extend_from_slice(&mark(true, 49_990));
        stream.extend_from_slice(&body[150_010..]);
        want.push(body);
        (stream, want)
    }

    #[test]
    fn records_come_out_whole_whatever_the_read_sizes() {
        let (stream, want) = records();
        let pool = BufPool::new(8 << 20);
        for step in [1, 3, 4, 5, 4096, 65_536, 1 << 20] {
            assert_eq!(run(&stream, step, &pool).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn large_buffers_are_reused_and_the_pool_is_bounded() {
        let pool = BufPool::new(300 * 1024);
        let a = pool.take(200_000);
        let b = pool.take(200_000);
        assert!(a.pool.is_some() && b.pool.is_some());
        drop(a);
        drop(b); // does not fit next to the first
        assert_eq!(pool.idle_bytes(), 200_000usize.next_multiple_of(4096));
        let c = pool.take(150_000);
        assert_eq!(c.data.len(), 200_000usize.next_multiple_of(4096), "reused");
        assert_eq!(pool.idle_bytes(), 0);
        let c2 = pool.take(70_000);
        assert_eq!(
            c2.data.len(),
            72 * 1024,
            "not served by a buffer over twice its size"
        );
        drop(c2);
        let small = pool.take(100);
        assert!(small.pool.is_none());
        drop(small);
        drop(c);
        assert_eq!(
            pool.idle_bytes(),
            200_000usize.next_multiple_of(4096) + 72 * 1024
        );
    }

    #[test]
    fn a_slice_extends_only_over_what_follows_it_in_its_buffer() {
        let s = Slice::from_vec((0..100u8).collect());
        let mut a = s.sub(10, 20);
        assert!(a.append(&s.sub(30, 5)));
        assert_eq!(&a[..], &(10..35u8).collect::<Vec<_>>()[..]);
        assert!(!a.append(&s.sub(40, 5)), "a gap");
        assert!(!a.append(&s.sub(20, 5)), "behind");
        let other = Slice::from_vec((0..100u8).collect());
        assert!(!a.append(&other.sub(35, 5)), "another buffer");
        assert_eq!(a.len(), 25);
    }

    #[test]
    fn the_buffer_given_back_last_is_taken_first() {
        let pool = BufPool::new(1 << 20);
        let bufs: Vec<Buf> = (0..3).map(|_| pool.take(100_000)).collect();
        let addrs: Vec<*const u8> = bufs.iter().map(|b| b.data.as_ptr()).collect();
        drop(bufs); // given back in order: 0, 1, 2
        let again: Vec<Buf> = (0..3).map(|_| pool.take(100_000)).collect();
        let got: Vec<*const u8> = again.iter().map(|b| b.data.as_ptr()).collect();
        assert_eq!(got, addrs.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn gather_walks_parts_through_partial_writes() {
        let parts: [&[u8]; 5] = [b"", b"abc", b"", b"defg", b"h"];
        let mut g = Gather::new(&parts);
        let mut out = Vec::new();
        for step in [2, 0, 3, 2, 1] {
            let iov = g.iov(&parts);
            let flat: Vec<u8> = iov.iter().flat_map(|s| s.iter().copied()).collect();
            out.extend_from_slice(&flat[..step]);
            g.advance(&parts, step);
        }
        assert_eq!(out, b"abcdefgh");
        assert!(g.done(&parts));
        assert!(g.iov(&parts).is_empty());
    }

    #[test]
    fn an_idle_pool_is_emptied() {
        let pool = BufPool::new(1 << 20);
        drop(pool.take(100_000));
        pool.trim_if_idle(); // taken since the last look: kept
        assert!(pool.idle_bytes() > 0);
        pool.trim_if_idle();
        assert_eq!(pool.idle_bytes(), 0);
        let b = Buf::copy_of(&pool, &[5; 70_000]);
        assert_eq!(&b[..], &[5; 70_000][..]);
    }

    #[test]
    fn a_slice_keeps_its_buffer_out_of_the_pool_until_dropped() {
        let pool = BufPool::new(1 << 20);
        let mut r = pool.take(100_000);
        r.area(0, 100_000).fill(7);
        let s = Reply::new(r, 10).into_slice(5, 1000);
        assert_eq!(s.len(), 1000);
        assert_eq!(pool.idle_bytes(), 0);
        let t = s.sub(990, 100);
        assert_eq!(t.len(), 10);
        drop(s);
        assert_eq!(pool.idle_bytes(), 0);
        drop(t);
        assert!(pool.idle_bytes() >= 100_000);
    }

    /// One record of `len` bytes in fragments of `frag` bytes.
    fn fragmented(len: usize, frag: usize) -> (Vec<u8>, Vec<u8>) {
        let body: Vec<u8> = (0..len).map(|k| (k % 253) as u8).collect();
        (rnfs_rpc::record::encode_record(&body, frag), body)
    }

    #[test]
    fn a_record_in_one_byte_fragments_costs_copies_linear_in_its_size() {
        // 1 MiB in 1-byte fragments: growing the record by the size of each fragment
        // copied it once per fragment (2^20 copies, ~2^39 bytes); doubling copies each
        // byte at most twice in all.
        for len in [1 << 20, (1 << 20) + 100] {
            let (stream, body) = fragmented(len, 1);
            let mut f = Framer::new((4 << 20) + 65536, BufPool::new(16 << 20));
            let got = feed(&mut f, &stream, 1 << 20).unwrap();
            assert_eq!(got.len(), 1);
            assert!(got[0] == body, "the record, byte for byte");
            let s = f.stats();
            assert_eq!((s.records, s.reassembled), (1, 1));
            assert_eq!(s.fragments, len as u64);
            assert!(
                s.moved <= 2 * len as u64,
                "{} bytes moved to reassemble {len} bytes",
                s.moved
            );
        }
    }

    #[test]
    fn a_single_fragment_record_is_never_moved_and_growth_stops_at_the_limit() {
        let pool = BufPool::new(1 << 20);
        let (stream, body) = fragmented(300_000, 1 << 30);
        let mut f = Framer::new(1 << 20, pool.clone());
        assert_eq!(feed(&mut f, &stream, 1 << 20).unwrap(), vec![body]);
        let s = f.stats();
        assert_eq!(
            (s.records, s.reassembled, s.fragments, s.moved),
            (1, 0, 1, 0)
        );
        let mut f = Framer::new(1000, pool);
        let (stream, body) = fragmented(1000, 600); // 600 + 400 bytes
        let area = f.recv_area();
        area[..stream.len()].copy_from_slice(&stream);
        f.received(stream.len());
        let r = f.next_record().unwrap().unwrap();
        assert_eq!(&r[..], &body[..]);
        assert_eq!(r.data.len(), 1000, "doubling 600 stops at the limit");
        assert_eq!(f.stats().moved, 600);
        let (stream, _) = fragmented(1000, 1000);
        let area = f.recv_area();
        area[..stream.len()].copy_from_slice(&stream);
        f.received(stream.len());
        assert!(f.next_record().unwrap().is_some());
        let s = f.stats();
        assert_eq!(
            (s.records, s.reassembled, s.fragments, s.moved),
            (2, 1, 3, 600)
        );
    }

    #[test]
    fn a_record_of_endless_empty_fragments_breaks_the_stream() {
        // A record of `max` 1-byte fragments and an empty last one is the most a record
        // can have; one empty fragment more and the stream is broken.
        let mut ok: Vec<u8> = Vec::new();
        for _ in 0..10 {
            ok.extend_from_slice(&mark(false, 1));
            ok.push(7);
        }
        ok.extend_from_slice(&mark(true, 0));
        let pool = BufPool::new(1 << 20);
        let mut f = Framer::new(10, pool.clone());
        let area = f.recv_area();
        area[..ok.len()].copy_from_slice(&ok);
        f.received(ok.len());
        assert_eq!(&f.next_record().unwrap().unwrap()[..], &[7; 10]);
        let mut endless = Vec::new();
        for _ in 0..12 {
            endless.extend_from_slice(&mark(false, 0));
        }
        let mut f = Framer::new(10, pool);
        let area = f.recv_area();
        area[..endless.len()].copy_from_slice(&endless);
        f.received(endless.len());
        let e = f.next_record().unwrap_err();
        assert!(e.contains("more than 11 fragments"), "{e}");
    }

    #[test]
    fn an_oversized_record_is_an_error_not_an_allocation() {
        let pool = BufPool::new(1 << 20);
        let mut f = Framer::new(1000, pool);
        let area = f.recv_area();
        area[..4].copy_from_slice(&mark(true, 0x7fff_ffff));
        f.received(4);
        assert!(f.next_record().is_err());
    }
}
