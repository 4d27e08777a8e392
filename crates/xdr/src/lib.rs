//! XDR (RFC 4506) for rnfs.
//!
//! Decoding reads from a borrowed [`Reader`] and checks every variable length against a
//! limit *before* it allocates, so no length taken from the network can make us reserve
//! memory that the message does not contain. Encoding appends to a [`Writer`].
//!
//! Every RFC 4506 type has a form here: integers and hypers (`u32`, `i32`, `u64`, `i64`),
//! `bool`, enums ([`xdr_enum!`]), `f32`/`f64`, fixed and variable opaque data
//! ([`OpaqueFixed`], [`Opaque`]), strings ([`XdrString`]), fixed and variable arrays (`[T; N]`,
//! [`VarArray`]), structures ([`xdr_struct!`]), optional data (`Option<T>`) and void (`()`).
//! Quadruple-precision floats have no Rust type and no use in NFS; they are left out.
//!
//! Types implement [`Xdr`]. Structures are declared with [`xdr_struct!`] and C-like enums
//! with [`xdr_enum!`]; discriminated unions are written by hand next to their types.
#![forbid(unsafe_code)]

mod reader;
mod types;
mod writer;

pub use reader::Reader;
pub use types::{Opaque, OpaqueFixed, VarArray, XdrList, XdrString};
pub use writer::Writer;

/// Why a message could not be decoded. Every variant is the sender's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended before the value did.
    #[error("truncated input: needed {needed} more bytes")]
    Truncated {
        /// Bytes missing.
        needed: usize,
    },
    /// A variable-length item announced more elements than its limit allows.
    #[error("length {len} exceeds the limit {max}")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit for this item.
        max: u64,
    },
    /// A boolean was neither 0 nor 1.
    #[error("invalid boolean {0}")]
    BadBool(u32),
    /// An enum or union discriminant has no meaning here.
    #[error("invalid discriminant {value} for {what}")]
    BadDiscriminant {
        /// The type being decoded.
        what: &'static str,
        /// The value found on the wire.
        value: u32,
    },
    /// Padding bytes were not zero (RFC 4506 section 3: they must be).
    #[error("non-zero padding")]
    BadPadding,
    /// Bytes were left after the value that should have ended the message.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// Result of decoding.
pub type Result<T> = std::result::Result<T, Error>;

/// A value with an XDR representation.
pub trait Xdr: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer);
    /// Decodes one value, consuming exactly its encoding.
    fn decode(r: &mut Reader<'_>) -> Result<Self>;
}

/// Zero bytes that follow `len` bytes of opaque data to reach a multiple of 4 (RFC 4506
/// section 4.9).
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Vec<u8> {
    let mut w = Writer::new();
    v.encode(&mut w);
    w.into_inner()
}

/// Decodes a value that must occupy all of `buf`.
pub fn from_bytes<T: Xdr>(buf: &[u8]) -> Result<T> {
    let mut r = Reader::new(buf);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Declares a struct whose XDR form is its fields in order (RFC 4506 section 4.14).
///
/// ```
/// rnfs_xdr::xdr_struct! {
///     /// A point.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Point { pub x: u32, pub y: u32 }
/// }
/// let p = Point { x: 1, y: 2 };
/// assert_eq!(rnfs_xdr::from_bytes::<Point>(&rnfs_xdr::to_bytes(&p)).unwrap(), p);
/// ```
#[macro_export]
macro_rules! xdr_struct {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }
        impl $crate::Xdr for $name {
            fn encode(&self, w: &mut $crate::Writer) {
                let _ = &w;
                $($crate::Xdr::encode(&self.$field, w);)*
            }
            fn decode(r: &mut $crate::Reader<'_>) -> $crate::Result<Self> {
                let _ = &r;
                Ok(Self { $($field: $crate::Xdr::decode(r)?),* })
            }
        }
    };
}

/// Declares a C-like enum encoded as a 32-bit value (RFC 4506 section 4.3). Unknown values
/// are rejected with [`Error::BadDiscriminant`].
#[macro_export]
macro_rules! xdr_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        $vis enum $name { $($(#[$vm])* $var = $val),* }
        impl $name {
            /// Maps a wire value to the enum, if it names a variant.
            #[allow(unreachable_pub)]
            pub fn from_u32(v: u32) -> Option<Self> {
                match v { $(x if x == $val => Some(Self::$var),)* _ => None }
            }
        }
        impl $crate::Xdr for $name {
            fn encode(&self, w: &mut $crate::Writer) { w.u32(*self as u32) }
            fn decode(r: &mut $crate::Reader<'_>) -> $crate::Result<Self> {
                let v = r.u32()?;
                Self::from_u32(v).ok_or($crate::Error::BadDiscriminant { what: stringify!($name), value: v })
            }
        }
    };
}

#[cfg(test)]
mod tests;
