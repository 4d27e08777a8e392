//! Primitive and bounded container types.
use crate::{Error, Reader, Result, Writer, Xdr};

macro_rules! prim {
    ($t:ty, $r:ident) => {
        impl Xdr for $t {
            fn encode(&self, w: &mut Writer) {
                w.$r(*self)
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self> {
                r.$r()
            }
        }
    };
}
prim!(u32, u32);
prim!(i32, i32);
prim!(u64, u64);
prim!(i64, i64);
prim!(bool, bool);

/// Single-precision float (RFC 4506 section 4.6), IEEE 754 big-endian.
impl Xdr for f32 {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.to_bits())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(f32::from_bits(r.u32()?))
    }
}

/// Double-precision float (RFC 4506 section 4.7), IEEE 754 big-endian.
impl Xdr for f64 {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.to_bits())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(f64::from_bits(r.u64()?))
    }
}

/// Fixed-length array (RFC 4506 section 4.12): `N` elements, no count on the wire.
impl<T: Xdr, const N: usize> Xdr for [T; N] {
    fn encode(&self, w: &mut Writer) {
        for v in self {
            v.encode(w)
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let mut v = Vec::with_capacity(N.min(r.remaining() / 4 + 1));
        for _ in 0..N {
            v.push(T::decode(r)?);
        }
        v.try_into().map_err(|_| Error::Truncated { needed: 0 })
    }
}

impl Xdr for () {
    fn encode(&self, _: &mut Writer) {}
    fn decode(_: &mut Reader<'_>) -> Result<Self> {
        Ok(())
    }
}

/// Optional data (`*T` in XDR, RFC 4506 section 4.19).
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.bool(false),
            Some(v) => {
                w.bool(true);
                v.encode(w)
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(if r.bool()? { Some(T::decode(r)?) } else { None })
    }
}

impl<T: Xdr> Xdr for Box<T> {
    fn encode(&self, w: &mut Writer) {
        (**self).encode(w)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Box::new(T::decode(r)?))
    }
}

/// Fixed-length opaque data of `N` bytes (`opaque x[N]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpaqueFixed<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for OpaqueFixed<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> std::fmt::Debug for OpaqueFixed<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<const N: usize> Xdr for OpaqueFixed<N> {
    fn encode(&self, w: &mut Writer) {
        w.opaque_fixed(&self.0)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let mut a = [0u8; N];
        a.copy_from_slice(r.opaque_fixed(N)?);
        Ok(Self(a))
    }
}

/// Variable-length opaque data of at most `MAX` bytes (`opaque x<MAX>`).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opaque<const MAX: u32>(pub Vec<u8>);

impl<const MAX: u32> Opaque<MAX> {
    /// Wraps bytes, failing if they are longer than `MAX`.
    pub fn new(v: Vec<u8>) -> Result<Self> {
        if v.len() as u64 > u64::from(MAX) {
            return Err(Error::TooLong {
                len: v.len() as u64,
                max: MAX.into(),
            });
        }
        Ok(Self(v))
    }
}

impl<const MAX: u32> std::fmt::Debug for Opaque<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opaque(")?;
        for b in self.0.iter().take(64) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 64 {
            write!(f, "..+{}", self.0.len() - 64)?;
        }
        write!(f, ")")
    }
}

impl<const MAX: u32> Xdr for Opaque<MAX> {
    fn encode(&self, w: &mut Writer) {
        w.opaque(&self.0)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self(r.opaque(MAX)?.to_vec()))
    }
}

/// A string of at most `MAX` bytes (`string x<MAX>`). XDR strings are bytes: NFS names
/// need not be UTF-8, so the bytes are kept as they are.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XdrString<const MAX: u32>(pub Vec<u8>);

impl<const MAX: u32> XdrString<MAX> {
    /// Wraps bytes, failing if they are longer than `MAX`.
    pub fn new(v: impl Into<Vec<u8>>) -> Result<Self> {
        let v = v.into();
        if v.len() as u64 > u64::from(MAX) {
            return Err(Error::TooLong {
                len: v.len() as u64,
                max: MAX.into(),
            });
        }
        Ok(Self(v))
    }
    /// The bytes, as text where they are UTF-8 (for logs and messages).
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl<const MAX: u32> std::fmt::Debug for XdrString<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl<const MAX: u32> Xdr for XdrString<MAX> {
    fn encode(&self, w: &mut Writer) {
        w.opaque(&self.0)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self(r.opaque(MAX)?.to_vec()))
    }
}

/// A variable-length array of at most `MAX` elements (`T x<MAX>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VarArray<T, const MAX: u32>(pub Vec<T>);

impl<T: Xdr, const MAX: u32> Xdr for VarArray<T, MAX> {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.0.len() as u32);
        for v in &self.0 {
            v.encode(w)
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        // Every XDR item is at least 4 bytes, except the empty unit type.
        let min = if std::mem::size_of::<T>() == 0 { 0 } else { 4 };
        let n = r.array_len(MAX, min)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(Self(v))
    }
}

/// A singly-linked XDR list of at most `MAX` elements: the optional-data chain
/// `struct T { ...; T *next; }` (RFC 4506 section 4.19), held as a vector. On the wire
/// each element is preceded by TRUE and the list ends with FALSE. Decoding is a loop,
/// not a recursion, so a long list cannot exhaust the stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct XdrList<T, const MAX: u32>(pub Vec<T>);

impl<T: Xdr, const MAX: u32> Xdr for XdrList<T, MAX> {
    fn encode(&self, w: &mut Writer) {
        for v in &self.0 {
            w.bool(true);
            v.encode(w);
        }
        w.bool(false);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let mut v = Vec::new();
        while r.bool()? {
            if v.len() >= MAX as usize {
                return Err(Error::TooLong {
                    len: v.len() as u64 + 1,
                    max: MAX.into(),
                });
            }
            v.push(T::decode(r)?);
        }
        Ok(Self(v))
    }
}
