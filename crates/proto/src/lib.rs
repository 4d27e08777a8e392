//! Wire types of the protocols rnfs speaks: ONC-RPC (RFC 5531), portmap v2 (RFC 1833),
//! MOUNT v3, NFSv3 (RFC 1813) and NFSv4.0/4.1/4.2 with its callback program (RFC 7863).
//! Pure data plus XDR encoding; no I/O, no policy.
#![forbid(unsafe_code)]

pub mod mount3;
pub mod nfs3;
pub mod nfs4;
pub mod portmap;
pub mod rpc;

pub use rnfs_xdr as xdr;

/// Encodes a singly-linked XDR list (`*entry` with a `nextentry` pointer, RFC 4506 4.19):
/// each element preceded by TRUE, the end by FALSE.
pub fn encode_list<T: xdr::Xdr>(items: &[T], w: &mut xdr::Writer) {
    for i in items {
        w.bool(true);
        i.encode(w);
    }
    w.bool(false);
}

/// Decodes a singly-linked XDR list of at most `max` elements.
pub fn decode_list<T: xdr::Xdr>(r: &mut xdr::Reader<'_>, max: usize) -> xdr::Result<Vec<T>> {
    let mut v = Vec::new();
    while r.bool()? {
        if v.len() >= max {
            return Err(xdr::Error::TooLong {
                len: v.len() as u64 + 1,
                max: max as u64,
            });
        }
        v.push(T::decode(r)?);
    }
    Ok(v)
}
