//! The NFSv4 operations, one small handler each, grouped by family. Each decodes its
//! arguments from the compound's reader, runs against the [`Compound`] and writes its
//! result body (what follows the status); the op table in [`super::compound`] says which
//! need a current filehandle and what they may cost.
//!
//! [`Compound`]: super::compound::Compound
pub mod access;
pub mod attr;
pub mod fh;

use super::error::{Nfs4Error, R4};

/// Arguments that do not decode: BADXDR.
fn xdr<T>(r: rnfs_xdr::Result<T>) -> R4<T> {
    r.map_err(|_| Nfs4Error::BadXdr)
}
