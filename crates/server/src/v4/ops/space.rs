//! The NFSv4.2 sparse-file operations (RFC 7862 section 4): SEEK (15.11), ALLOCATE (15.1)
//! and DEALLOCATE (15.4), on the backend's [`Backend::seek`], [`Backend::allocate`] and
//! [`Backend::deallocate`] (NOTSUPP where a backend has none).
//!
//! SEEK follows READ's rules (a stateid that may read, ISDIR for a directory, another
//! client's write delegation recalled first); ALLOCATE and DEALLOCATE follow WRITE's (a
//! stateid that may write, ROFS on a read-only export, a delegation recalled). Offsets:
//! SEEK at or past the end of the file is NXIO (15.11.3); an ALLOCATE whose end passes the
//! largest size is FBIG; a DEALLOCATE's range is cut at that size (nothing lies beyond).
//! A zero length is INVAL for both, as `fallocate(2)` has it.
//!
//! [`Backend::seek`]: rnfs_vfs::Backend::seek
//! [`Backend::allocate`]: rnfs_vfs::Backend::allocate
//! [`Backend::deallocate`]: rnfs_vfs::Backend::deallocate
use super::io::{check, regular, MAX_OFFSET};
use super::{deleg_conflict, in_export, stateid, writable};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::state::delegations::Access;
use crate::v4::state::locking::Io;
use rnfs_proto::nfs4::{Allocate4args, DataContent4, Deallocate4args, Seek4args};
use rnfs_vfs::Content;
use rnfs_xdr::Writer;

/// SEEK: where the next data or hole starts; `sr_eof` when it is the end of the file.
pub fn seek(c: &mut Compound<'_>, a: &Seek4args, w: &mut Writer) -> R4<()> {
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    let sid = c.stateid(stateid(&a.sa_stateid))?;
    regular(&x, &k)?;
    check(c, &x, &k, sid, Io::Read)?;
    deleg_conflict(c, &x, &k, Access::Read, false)?;
    let what = match a.sa_what {
        DataContent4::Nfs4ContentData => Content::Data,
        DataContent4::Nfs4ContentHole => Content::Hole,
    };
    let at = x.export.fs.seek(&x.ctx, &k, a.sa_offset, what)?;
    w.bool(at.eof);
    w.u64(at.offset);
    Ok(())
}

/// ALLOCATE: storage reserved for the range; the file grows to its end if shorter.
pub fn allocate(c: &mut Compound<'_>, a: &Allocate4args) -> R4<()> {
    let (x, k) = space_target(c, &a.aa_stateid)?;
    if a.aa_length == 0 {
        return Err(Nfs4Error::Inval);
    }
    match a.aa_offset.checked_add(a.aa_length) {
        Some(end) if end <= MAX_OFFSET => {}
        _ => return Err(Nfs4Error::FBig),
    }
    x.export.fs.allocate(&x.ctx, &k, a.aa_offset, a.aa_length)?;
    Ok(())
}

/// DEALLOCATE: the range reads as zeros and its storage may go; the size stays.
pub fn deallocate(c: &mut Compound<'_>, a: &Deallocate4args) -> R4<()> {
    let (x, k) = space_target(c, &a.da_stateid)?;
    if a.da_length == 0 {
        return Err(Nfs4Error::Inval);
    }
    let len = a.da_length.min(MAX_OFFSET.saturating_sub(a.da_offset));
    if len == 0 {
        return Ok(()); // wholly past the largest size: nothing there
    }
    x.export.fs.deallocate(&x.ctx, &k, a.da_offset, len)?;
    Ok(())
}

/// The checks ALLOCATE and DEALLOCATE share with WRITE: the export writable, a regular
/// file, a stateid that may write, no other client's delegation in the way.
fn space_target(
    c: &Compound<'_>,
    sid: &rnfs_proto::nfs4::Stateid4,
) -> R4<(crate::v4::pseudo::ExportScope, rnfs_vfs::FileKey)> {
    let (x, k) = writable(c)?;
    let sid = c.stateid(stateid(sid))?;
    regular(&x, &k)?;
    check(c, &x, &k, sid, Io::Write)?;
    deleg_conflict(c, &x, &k, Access::Write, false)?;
    Ok((x, k))
}
