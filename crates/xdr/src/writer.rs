/// An XDR encoder appending to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Continues writing after the bytes already in `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The encoded bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Overwrites a 32-bit value written earlier at byte offset `at` (for counts known late).
    ///
    /// # Panics
    /// If `at + 4` is past the end of what was written: a caller bug, never input-driven.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Appends an unsigned 32-bit integer.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a signed 32-bit integer.
    pub fn i32(&mut self, v: i32) {
        self.u32(v as u32)
    }

    /// Appends an unsigned hyper.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a signed hyper.
    pub fn i64(&mut self, v: i64) {
        self.u64(v as u64)
    }

    /// Appends a boolean.
    pub fn bool(&mut self, v: bool) {
        self.u32(v as u32)
    }

    /// Appends raw bytes with no length and no padding (record marks, pre-encoded bodies).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends fixed-length opaque data and its padding.
    pub fn opaque_fixed(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.buf
            .extend_from_slice(&[0u8; 3][..crate::padding(b.len())]);
    }

    /// Appends variable-length opaque data: length, bytes, padding.
    ///
    /// # Panics
    /// If `b` is longer than `u32::MAX`; the protocol types bound every opaque far below that.
    pub fn opaque(&mut self, b: &[u8]) {
        let len = u32::try_from(b.len()).expect("opaque longer than 4 GiB");
        self.u32(len);
        self.opaque_fixed(b);
    }
}
