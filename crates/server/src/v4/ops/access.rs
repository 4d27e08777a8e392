//! ACCESS and READLINK (RFC 8881 18.1, 18.24).
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::Place;
use rnfs_proto::nfs4::Access4args;
use rnfs_vfs::FileType;
use rnfs_xdr::Writer;

/// ACCESS4_READ, ACCESS4_LOOKUP, ACCESS4_MODIFY, ACCESS4_EXTEND, ACCESS4_DELETE,
/// ACCESS4_EXECUTE: the bits of every minor version.
const KNOWN: u32 = 0x3f;
const READ: u32 = 0x01;
const LOOKUP: u32 = 0x02;
const MODIFY: u32 = 0x04;
const DELETE: u32 = 0x10;
const EXECUTE: u32 = 0x20;
const WRITES: u32 = 0x04 | 0x08 | 0x10;
/// ACCESS4_XAREAD, ACCESS4_XAWRITE, ACCESS4_XALIST (RFC 8276 section 8.3): NFSv4.2, for
/// objects that hold extended attributes.
const XAREAD: u32 = 0x40;
const XAWRITE: u32 = 0x80;
const XALIST: u32 = 0x100;
const XATTRS: u32 = XAREAD | XAWRITE | XALIST;

/// The ACCESS bits that mean something for an object of type `t` (RFC 7530 16.1.4,
/// RFC 8881 18.1.4: LOOKUP and DELETE are about a directory's entries, EXECUTE about a
/// file's contents), as knfsd masks them: the others are neither supported nor granted.
fn meaningful(t: FileType) -> u32 {
    if t == FileType::Directory {
        KNOWN & !EXECUTE
    } else {
        KNOWN & !(LOOKUP | DELETE)
    }
}

/// ACCESS: which of the asked rights the caller holds, as the backend's permission check
/// says, less the write rights on a read-only scope. Pseudo directories may be read and
/// searched. Only the bits meaningful for the object's type are answered (supported).
/// In NFSv4.2 the xattr bits of an object that holds extended attributes are those of
/// the permission its operations need, as knfsd grants them: XAREAD and XALIST with read
/// permission, XAWRITE with write permission (none on a read-only scope).
pub fn access(c: &mut Compound<'_>, a: &Access4args, w: &mut Writer) -> R4<()> {
    let asked = a.access & (KNOWN | XATTRS);
    let (supported, granted) = match c.fh()? {
        Place::Pseudo(_) => {
            let s = asked & meaningful(FileType::Directory);
            (s, s & (READ | LOOKUP))
        }
        Place::Export { export, key } => {
            let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
            let attr = export.fs.getattr(&x.ctx, key)?;
            let mut supported = asked & meaningful(attr.ftype);
            if c.minor >= 2 && export.fs.xattr_support(&attr) {
                supported |= asked & XATTRS;
            }
            let mut need = supported & KNOWN;
            if supported & (XAREAD | XALIST) != 0 {
                need |= READ;
            }
            if supported & XAWRITE != 0 {
                need |= MODIFY;
            }
            let mut bits = export.fs.access(&x.ctx, key, need)?;
            if bits & READ != 0 {
                bits |= XAREAD | XALIST;
            }
            if bits & MODIFY != 0 {
                bits |= XAWRITE;
            }
            if !x.rw {
                bits &= !(WRITES | XAWRITE);
            }
            (supported, bits & supported)
        }
    };
    w.u32(supported);
    w.u32(granted);
    Ok(())
}

/// READLINK: the target of the current symbolic link; INVAL for anything else.
pub fn readlink(c: &mut Compound<'_>, w: &mut Writer) -> R4<()> {
    match c.fh()? {
        Place::Pseudo(_) => Err(Nfs4Error::Inval),
        Place::Export { export, key } => {
            let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
            let a = export.fs.getattr(&x.ctx, key)?;
            if a.ftype != rnfs_vfs::FileType::Symlink {
                return Err(Nfs4Error::Inval);
            }
            let t = export.fs.readlink(&x.ctx, key)?;
            w.opaque(&t);
            Ok(())
        }
    }
}
