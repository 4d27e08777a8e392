//! Record marking: each record is one or more fragments, each preceded by a 4-byte header
//! whose top bit marks the last fragment and whose low 31 bits give the fragment length.

/// Why the byte stream cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record being assembled is larger than allowed.
    #[error("record of at least {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size reached so far.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Assembles records from a byte stream. Feed it whatever arrived; take records out.
#[derive(Debug)]
pub struct RecordDecoder {
    max: usize,
    /// Bytes received; those before `pos` are already taken into records.
    buf: Vec<u8>,
    pos: usize,
    record: Vec<u8>,
}

impl RecordDecoder {
    /// A decoder refusing records larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            pos: 0,
            record: Vec::new(),
        }
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.drain_taken();
        // Amortized growth here: the callers (clients, tests) push small pieces.
        self.buf.extend_from_slice(data);
    }

    /// Drops what earlier records consumed: one move per receive, not one per record.
    fn drain_taken(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The buffer to append received bytes to, with room for `want` more: lets a reader
    /// receive straight into it (`try_read_buf`) instead of through another buffer. Append
    /// only; what is appended is taken as received. The buffer grows by at most
    /// [`RecordDecoder::growth_for`]`(want)` bytes (no doubling), so what the caller
    /// charges for it is what it holds.
    pub fn recv_buf(&mut self, want: usize) -> &mut Vec<u8> {
        self.drain_taken();
        self.buf.reserve_exact(want);
        &mut self.buf
    }

    /// How many bytes of capacity [`RecordDecoder::recv_buf`]`(want)` would add.
    pub fn growth_for(&self, want: usize) -> usize {
        (self.buf.len() - self.pos + want).saturating_sub(self.buf.capacity())
    }

    /// Bytes of memory the decoder holds (capacity, used or not).
    pub fn held(&self) -> usize {
        self.buf.capacity() + self.record.capacity()
    }

    /// Gives back memory the buffer no longer needs: all of it once everything received
    /// is taken (an idle connection holds nothing), and the unused bulk when what is left
    /// fills less than a quarter of it (after a large record, a small one's bytes).
    pub fn shrink(&mut self) {
        let left = self.buf.len() - self.pos;
        if left == 0 {
            if self.buf.capacity() > 0 {
                self.buf = Vec::new();
                self.pos = 0;
            }
        } else if left < self.buf.capacity() / 4 && self.buf.capacity() > 64 * 1024 {
            let mut b = Vec::with_capacity(left.max(16 * 1024));
            b.extend_from_slice(&self.buf[self.pos..]);
            self.buf = b;
            self.pos = 0;
        }
        if self.record.is_empty() && self.record.capacity() > 0 {
            self.record = Vec::new();
        }
    }

    /// Bytes buffered and not yet part of a completed record.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.record.len()
    }

    /// Whether a complete record is buffered, so that [`RecordDecoder::next_record`] would
    /// return one (or an error) without more bytes. Copies nothing.
    pub fn has_record(&self) -> bool {
        let mut size = self.record.len();
        let mut avail = &self.buf[self.pos..];
        while avail.len() >= 4 {
            let (last, len) = fragment_header([avail[0], avail[1], avail[2], avail[3]]);
            size = size.saturating_add(len);
            if size > self.max {
                return true;
            }
            if avail.len() - 4 < len {
                return false;
            }
            if last {
                return true;
            }
            avail = &avail[4 + len..];
        }
        false
    }

    /// The next complete record, if one has arrived. Checks the announced fragment length
    /// against the limit before waiting for (or storing) its bytes.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordError> {
        let mut consumed = self.pos;
        let result = loop {
            let avail = &self.buf[consumed..];
            if avail.len() < 4 {
                break Ok(None);
            }
            let (last, len) = fragment_header([avail[0], avail[1], avail[2], avail[3]]);
            let size = self.record.len() + len;
            if size > self.max {
                break Err(RecordError::TooLarge {
                    size,
                    max: self.max,
                });
            }
            if avail.len() < 4 + len {
                break Ok(None);
            }
            self.record.extend_from_slice(&avail[4..4 + len]);
            consumed += 4 + len;
            if last {
                break Ok(Some(std::mem::take(&mut self.record)));
            }
        };
        self.pos = consumed;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        result
    }
}

/// Reads a fragment header: whether the fragment is its record's last, and its length.
pub fn fragment_header(h: [u8; 4]) -> (bool, usize) {
    let h = u32::from_be_bytes(h);
    (h & 0x8000_0000 != 0, (h & 0x7fff_ffff) as usize)
}

/// The header of a record sent as one (last) fragment of `len` bytes, or `None` if `len`
/// does not fit in a fragment (2^31 - 1 bytes). Sending the header and the message with one
/// vectored write frames a reply without copying it.
pub fn single_fragment_header(len: usize) -> Option<[u8; 4]> {
    let len = u32::try_from(len).ok().filter(|&l| l <= 0x7fff_ffff)?;
    Some((0x8000_0000 | len).to_be_bytes())
}

/// Frames `msg` as one record of fragments of at most `max_fragment` bytes.
pub fn encode_record(msg: &[u8], max_fragment: usize) -> Vec<u8> {
    let max_fragment = max_fragment.clamp(1, 0x7fff_ffff);
    let mut out = Vec::with_capacity(msg.len() + 4 * (msg.len() / max_fragment + 1));
    let mut chunks = msg.chunks(max_fragment).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&0x8000_0000u32.to_be_bytes());
    }
    while let Some(c) = chunks.next() {
        let last = if chunks.peek().is_none() {
            0x8000_0000
        } else {
            0
        };
        out.extend_from_slice(&(last | c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fragments_reassemble(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5),
                                frag in 1usize..64, split in 1usize..50) {
            let mut wire = Vec::new();
            for m in &msgs { wire.extend(encode_record(m, frag)); }
            let mut d = RecordDecoder::new(1 << 20);
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                d.push(piece);
                while let Some(r) = d.next_record().unwrap() { got.push(r); }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn has_record_agrees_with_next_record(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5),
                                              frag in 1usize..64, split in 1usize..50) {
            let mut wire = Vec::new();
            for m in &msgs { wire.extend(encode_record(m, frag)); }
            let mut d = RecordDecoder::new(1 << 20);
            for piece in wire.chunks(split) {
                d.push(piece);
                loop {
                    let has = d.has_record();
                    let next = d.next_record().unwrap();
                    prop_assert_eq!(has, next.is_some());
                    if next.is_none() { break; }
                }
            }
        }
    }

    #[test]
    fn oversized_record_is_refused_before_its_bytes_arrive() {
        let mut d = RecordDecoder::new(1024);
        d.push(&0xffff_ffffu32.to_be_bytes());
        assert!(matches!(d.next_record(), Err(RecordError::TooLarge { .. })));
        // Many small fragments adding up past the limit are refused too.
        let mut d = RecordDecoder::new(1024);
        for _ in 0..200 {
            d.push(&8u32.to_be_bytes());
            d.push(&[0; 8]);
        }
        assert!(matches!(d.next_record(), Err(RecordError::TooLarge { .. })));
    }

    #[test]
    fn oversized_record_counts_as_ready() {
        // The error must surface without waiting for bytes that will never be stored.
        let mut d = RecordDecoder::new(1024);
        d.push(&0x7fff_ffffu32.to_be_bytes());
        assert!(d.has_record());
        assert!(d.next_record().is_err());
    }

    #[test]
    fn growth_is_what_was_asked_and_shrink_gives_back_what_is_unused() {
        let mut d = RecordDecoder::new(1 << 20);
        assert_eq!((d.held(), d.growth_for(100)), (0, 100));
        d.recv_buf(100);
        assert_eq!(d.held(), 100, "exactly what was asked");
        // Most of a 200 KiB record arrives, in pieces: the buffer grows by what is asked.
        let rec = encode_record(&[5; 200 * 1024], 1 << 30);
        for piece in rec[..150 * 1024].chunks(50 * 1024) {
            let grow = d.growth_for(piece.len());
            let before = d.held();
            d.recv_buf(piece.len()).extend_from_slice(piece);
            assert!(d.held() <= before + grow);
        }
        d.shrink();
        assert!(d.held() >= 150 * 1024, "an incomplete record stays");
        d.push(&rec[150 * 1024..]);
        d.push(&encode_record(b"next", 1 << 30)[..6]);
        assert_eq!(d.next_record().unwrap().map(|r| r.len()), Some(200 * 1024));
        d.shrink();
        assert!(
            d.held() <= 16 * 1024,
            "6 bytes left of a large buffer: {}",
            d.held()
        );
        d.push(&encode_record(b"next", 1 << 30)[6..]);
        assert_eq!(d.next_record().unwrap(), Some(b"next".to_vec()));
        d.shrink();
        assert_eq!(d.held(), 0, "nothing left: nothing held");
    }

    #[test]
    fn single_fragment_header_matches_encode_record() {
        for msg in [&b""[..], b"x", &[7u8; 1000]] {
            let mut framed = single_fragment_header(msg.len()).unwrap().to_vec();
            framed.extend_from_slice(msg);
            assert_eq!(framed, encode_record(msg, 1 << 30));
        }
        assert_eq!(single_fragment_header(1 << 31), None);
    }
}
