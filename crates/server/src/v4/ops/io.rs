//! READ, WRITE, COMMIT and SETATTR (RFC 8881 18.22, 18.32, 18.3, 18.30): the data
//! operations, each stateid checked by [`crate::v4::state::locking::Locking::check_io`]
//! (the anonymous stateid against every open's deny, the bypass stateid reading past
//! them, an open or lock stateid current and on this file, WRITE needing write access).
//!
//! WRITE and COMMIT answer the server's write verifier, the one NFSv3 uses: it changes on
//! every restart, so a client resends what it wrote UNSTABLE and had not committed.
use super::{deleg_conflict, in_export, lerr, state_key, stateid, writable};
use crate::v4::attrs::{self, Bitmap, Fattr};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::ExportScope;
use crate::v4::state::delegations::Access;
use crate::v4::state::ids::Stateid;
use crate::v4::state::locking::Io;
use rnfs_proto::nfs4::{Commit4args, Read4args, Setattr4args, StableHow4, Write4args};
use rnfs_vfs::{FileKey, FileType, Stability};
use rnfs_xdr::Writer;

/// Data operations need a regular file: ISDIR for a directory, INVAL for anything else
/// (RFC 8881 18.22.3).
pub(super) fn regular(x: &ExportScope, k: &FileKey) -> R4<()> {
    match x.export.fs.getattr(&x.ctx, k)?.ftype {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(Nfs4Error::IsDir),
        _ => Err(Nfs4Error::Inval),
    }
}

/// The largest file offset (and size) a backend can take: that of `off_t`.
pub(super) const MAX_OFFSET: u64 = i64::MAX as u64;

/// Checks the stateid of an I/O on the current file.
pub(super) fn check(
    c: &Compound<'_>,
    x: &ExportScope,
    k: &FileKey,
    sid: Stateid,
    io: Io,
) -> R4<()> {
    let client = c.client()?;
    let file = state_key(x, k);
    c.ctx
        .state
        .locking
        .lock()
        .check_io(client, &sid, &file, io)
        .map_err(|e| lerr(c, &e))
}

/// READ: at most `max_io` bytes (the reply is held to the session's limit by the engine).
pub fn read(c: &mut Compound<'_>, a: &Read4args, w: &mut Writer) -> R4<()> {
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    let sid = c.stateid(stateid(&a.stateid))?;
    regular(&x, &k)?;
    check(c, &x, &k, sid, Io::Read)?;
    deleg_conflict(c, &x, &k, Access::Read, false)?;
    // Nothing lies past the largest offset a file may have (2^63 - 1, as off_t): a READ
    // there is the end of the file, not the backend's EINVAL for the range (pynfs RD5a).
    let room = MAX_OFFSET.saturating_sub(a.offset);
    if room == 0 {
        w.bool(true);
        w.opaque(&[]);
        return Ok(());
    }
    let count = a
        .count
        .min(c.ctx.max_io)
        .min(u32::try_from(room).unwrap_or(u32::MAX));
    let mut data = Vec::new();
    let done = x
        .export
        .fs
        .read_into(&x.ctx, &k, a.offset, count, &mut data)?;
    w.bool(done.eof);
    w.opaque(&data);
    Ok(())
}

/// WRITE: the data at `offset`, as durable as asked or more; answers how durable and the
/// write verifier.
pub fn write(c: &mut Compound<'_>, a: &Write4args, w: &mut Writer) -> R4<()> {
    let (x, k) = writable(c)?;
    let sid = c.stateid(stateid(&a.stateid))?;
    regular(&x, &k)?;
    check(c, &x, &k, sid, Io::Write)?;
    deleg_conflict(c, &x, &k, Access::Write, false)?;
    let len = u32::try_from(a.data.0.len()).map_err(|_| Nfs4Error::Inval)?;
    if len > c.ctx.max_io {
        return Err(Nfs4Error::Inval);
    }
    if a.offset.checked_add(u64::from(len)).is_none() {
        return Err(Nfs4Error::FBig);
    }
    let asked = match a.stable {
        StableHow4::Unstable4 => Stability::Unstable,
        StableHow4::DataSync4 => Stability::DataSync,
        StableHow4::FileSync4 => Stability::FileSync,
    };
    let got = x.export.fs.write(&x.ctx, &k, a.offset, &a.data.0, asked)?;
    w.u32(len);
    w.u32(match got {
        Stability::Unstable => 0,
        Stability::DataSync => 1,
        Stability::FileSync => 2,
    });
    w.opaque_fixed(&c.ctx.state.write_verf);
    Ok(())
}

/// COMMIT: makes what was written durable; answers the write verifier.
pub fn commit(c: &mut Compound<'_>, a: &Commit4args, w: &mut Writer) -> R4<()> {
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    regular(&x, &k)?;
    x.export.fs.commit(&x.ctx, &k, a.offset, a.count)?;
    w.opaque_fixed(&c.ctx.state.write_verf);
    Ok(())
}

/// SETATTR: its result carries the attributes set, on failure too (none then).
pub fn setattr(c: &mut Compound<'_>, a: &Setattr4args, w: &mut Writer) -> R4<()> {
    let r = setattr_inner(c, a);
    r.unwrap_or_default().encode(w);
    r.map(|_| ())
}

fn setattr_inner(c: &Compound<'_>, a: &Setattr4args) -> R4<Bitmap> {
    let f = Fattr::from_parts(&a.obj_attributes.attrmask.0, &a.obj_attributes.attr_vals.0);
    let (mask, set) = attrs::decode_settable(&f, c.minor, c.ctx.owners)?;
    let (x, k) = writable(c)?;
    if set.size.is_some() {
        // A size change is a write: it needs a stateid allowing one (RFC 8881 18.30.3).
        regular(&x, &k)?;
        let sid = c.stateid(stateid(&a.stateid))?;
        check(c, &x, &k, sid, Io::Write)?;
        // No file grows past what `off_t` holds (pynfs SATT12x: 2^64 - 1 is FBIG).
        if set.size.is_some_and(|n| n > MAX_OFFSET) {
            return Err(Nfs4Error::FBig);
        }
    }
    if !set.is_empty() {
        // Another client's delegation caches the attributes (RFC 8881 10.4.3): recall it.
        let access = if set.size.is_some() {
            Access::Write
        } else {
            Access::Meta
        };
        deleg_conflict(c, &x, &k, access, set.size == Some(0))?;
        x.export.fs.setattr(&x.ctx, &k, &set, None)?;
    }
    Ok(mask)
}
