use crate::{Error, Result};

/// A cursor over a borrowed XDR message. Every read checks the remaining length first.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread part of the message, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails unless the whole message was consumed.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Error::TrailingBytes(n)),
        }
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads an unsigned 32-bit integer.
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a signed 32-bit integer.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }

    /// Reads an unsigned hyper.
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a signed hyper.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }

    /// Reads a boolean; anything but 0 or 1 is an error.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::BadBool(v)),
        }
    }

    fn skip_padding(&mut self, len: usize) -> Result<()> {
        if self.take(crate::padding(len))?.iter().any(|&b| b != 0) {
            return Err(Error::BadPadding);
        }
        Ok(())
    }

    /// Reads fixed-length opaque data of `n` bytes plus its padding.
    pub fn opaque_fixed(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self.take(n)?;
        self.skip_padding(n)?;
        Ok(s)
    }

    /// Reads variable-length opaque data of at most `max` bytes, borrowing it.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8]> {
        let len = self.u32()?;
        if len > max {
            return Err(Error::TooLong {
                len: len.into(),
                max: max.into(),
            });
        }
        self.opaque_fixed(len as usize)
    }

    /// Reads the count of a variable-length array of at most `max` elements, each at least
    /// `min_elem` bytes on the wire, and checks that the input can hold that many. Call this
    /// before reserving space for the elements.
    pub fn array_len(&mut self, max: u32, min_elem: usize) -> Result<usize> {
        let len = self.u32()?;
        if len > max {
            return Err(Error::TooLong {
                len: len.into(),
                max: max.into(),
            });
        }
        let need = (len as usize).saturating_mul(min_elem);
        if need > self.remaining() {
            return Err(Error::Truncated {
                needed: need - self.remaining(),
            });
        }
        Ok(len as usize)
    }
}
