//! The NFSv4.2 server-side copy operations within one server (RFC 7862 section 4): COPY
//! (15.2) and CLONE (15.13), on the backend's [`Backend::copy_range`] (the local backend's
//! `copy_file_range`: the data never passes through rnfs) and [`Backend::clone_range`].
//!
//! Both take the source from the saved filehandle and the destination from the current
//! one, in one export (XDEV otherwise), both regular files (WRONG_TYPE otherwise, as knfsd
//! answers since 2022). The source follows READ's rules (a stateid that may read, another
//! client's write delegation recalled), the destination WRITE's (a stateid that may write,
//! ROFS on a read-only export, any other client's delegation recalled). A range past the
//! end of the source is INVAL, as are overlapping ranges of one file; a count of 0 is "to
//! the end of the source".
//!
//! A copy of at least [`ASYNC_MIN`] bytes the client did not ask to be synchronous runs
//! asynchronously when the server can ([`crate::v4::offload`]: a verified back channel for
//! CB_OFFLOAD, within the bounds of running copies): COPY answers at once with the copy
//! stateid in `wr_callback_id` and `cr_synchronous` false; OFFLOAD_STATUS and
//! OFFLOAD_CANCEL name that stateid. Any other COPY is synchronous (no `wr_callback_id`,
//! `cr_synchronous` set whatever the client asked: 15.2.3 lets the server choose). It runs
//! on the blocking thread that runs the compound, so one copies at most [`COPY_MAX`]
//! bytes (an export served on the connection's task, [`COPY_STEP`]), in pieces of
//! [`COPY_STEP`], and answers how many it copied: a client copies the
//! rest with another COPY (the Linux client returns the short count from
//! `copy_file_range(2)`, and `cp` asks again). The data is left UNSTABLE with the write verifier: COMMIT makes it
//! durable. A COPY from another server (`ca_source_server` not empty) is refused with
//! NFS4ERR_OFFLOAD_NO_REQS: the client falls back to reading and writing.
//!
//! [`Backend::copy_range`]: rnfs_vfs::Backend::copy_range
//! [`Backend::clone_range`]: rnfs_vfs::Backend::clone_range
use super::io::{check, MAX_OFFSET};
use super::{deleg_conflict, in_export, put_stateid, stateid};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::offload::{CopyJob, ASYNC_MIN};
use crate::v4::pseudo::{ExportScope, Place};
use crate::v4::state::delegations::Access;
use crate::v4::state::locking::Io;
use rnfs_proto::nfs4::{Clone4args, Copy4args, OffloadCancel4args, OffloadStatus4args, Stateid4};
use rnfs_vfs::{FileKey, FileType};
use rnfs_xdr::Writer;
use std::sync::Arc;

/// Most bytes one COPY copies: a bound on how long it holds a thread of the blocking pool
/// (a local file system copies this in a fraction of a second).
pub const COPY_MAX: u64 = 64 << 20;

/// Most bytes asked of the backend in one call.
pub const COPY_STEP: u64 = 16 << 20;

/// `NFS4ERR_OFFLOAD_NO_REQS` (RFC 7862 section 11.1.2.4).
const OFFLOAD_NO_REQS: u32 = 10094;

/// `stable_how4` UNSTABLE4.
const UNSTABLE4: u32 = 0;

/// The source and destination of a COPY or CLONE, checked.
struct Ends {
    x: ExportScope,
    src: FileKey,
    dst: FileKey,
    /// The size of the source.
    src_size: u64,
}

/// COPY: the bytes copied, as a synchronous copy's `write_response4` and its
/// `copy_requirements4`.
pub fn copy(c: &mut Compound<'_>, a: &Copy4args, w: &mut Writer) -> R4<()> {
    if !a.ca_source_server.0.is_empty() {
        // COPY4res carries the requirements the server would have met (RFC 7862 15.2.2).
        w.bool(true);
        w.bool(true);
        return Err(Nfs4Error::Status(OFFLOAD_NO_REQS));
    }
    let e = ends(c, &a.ca_src_stateid, &a.ca_dst_stateid)?;
    let all = range(&e, a.ca_src_offset, a.ca_dst_offset, a.ca_count, u64::MAX)?;
    if !a.ca_synchronous && all >= ASYNC_MIN {
        let job = CopyJob {
            fs: e.x.export.fs.clone(),
            ctx: e.x.ctx.clone(),
            src: e.src.clone(),
            dst: e.dst.clone(),
            src_off: a.ca_src_offset,
            dst_off: a.ca_dst_offset,
            len: all,
            dst_fh: c.ctx.pseudo.fh(c.fh()?).0,
        };
        let verf = c.ctx.state.write_verf;
        if let Some(sid) = c.ctx.state.hooks.start_copy(c.client()?, job, verf) {
            w.u32(1); // wr_callback_id: the copy stateid CB_OFFLOAD will name
            put_stateid(w, &sid);
            w.u64(0);
            w.u32(UNSTABLE4);
            w.opaque_fixed(&verf);
            w.bool(true); // cr_consecutive
            w.bool(false); // cr_synchronous
            return Ok(());
        }
    }
    // On an export whose compounds run on the connection's task (memory), a copy holds
    // that task: one backend call's worth at most.
    let max = if e.x.export.never_blocks {
        COPY_STEP
    } else {
        COPY_MAX
    };
    let len = all.min(max);
    let mut done = 0;
    while done < len {
        let n = e.x.export.fs.copy_range(
            &e.x.ctx,
            &e.src,
            a.ca_src_offset + done,
            &e.dst,
            a.ca_dst_offset + done,
            (len - done).min(COPY_STEP),
        );
        match n {
            Ok(0) => break, // the source shrank meanwhile
            Ok(n) => done += n,
            // What was copied stays copied and is reported; the error comes next time.
            Err(_) if done > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    w.u32(0); // wr_callback_id: none, the copy is done
    w.u64(done);
    w.u32(UNSTABLE4);
    w.opaque_fixed(&c.ctx.state.write_verf);
    w.bool(true); // cr_consecutive
    w.bool(true); // cr_synchronous
    Ok(())
}

/// CLONE: the whole range shares the source's storage, or nothing happens.
pub fn clone(c: &mut Compound<'_>, a: &Clone4args) -> R4<()> {
    let e = ends(c, &a.cl_src_stateid, &a.cl_dst_stateid)?;
    let len = range(&e, a.cl_src_offset, a.cl_dst_offset, a.cl_count, u64::MAX)?;
    if len == 0 {
        return Ok(());
    }
    e.x.export.fs.clone_range(
        &e.x.ctx,
        &e.src,
        a.cl_src_offset,
        &e.dst,
        a.cl_dst_offset,
        len,
    )?;
    Ok(())
}

/// OFFLOAD_STATUS (RFC 7862 15.9): the bytes an asynchronous copy of this client copied
/// so far, and its status once it ended. BAD_STATEID for any other stateid.
pub fn offload_status(c: &mut Compound<'_>, a: &OffloadStatus4args, w: &mut Writer) -> R4<()> {
    let sid = c.stateid(stateid(&a.osa_stateid))?;
    let p = c
        .ctx
        .state
        .hooks
        .offload_status(c.client()?, &sid)
        .ok_or(Nfs4Error::BadStateid)?;
    w.u64(p.copied);
    match p.end {
        None => w.u32(0),
        Some(status) => {
            w.u32(1);
            w.u32(status);
        }
    }
    Ok(())
}

/// OFFLOAD_CANCEL (RFC 7862 15.8): an asynchronous copy of this client stops (it still
/// sends its CB_OFFLOAD with what it copied). BAD_STATEID for any other stateid.
pub fn offload_cancel(c: &mut Compound<'_>, a: &OffloadCancel4args) -> R4<()> {
    let sid = c.stateid(stateid(&a.oca_stateid))?;
    if c.ctx.state.hooks.offload_cancel(c.client()?, &sid) {
        Ok(())
    } else {
        Err(Nfs4Error::BadStateid)
    }
}

/// The checks COPY and CLONE share (see the module documentation).
fn ends(c: &Compound<'_>, src_sid: &Stateid4, dst_sid: &Stateid4) -> R4<Ends> {
    let (x, dst) = in_export(c, Nfs4Error::WrongType)?;
    let (src_export, src) = match c.saved.as_ref().ok_or(Nfs4Error::NoFileHandle)? {
        Place::Pseudo(_) => return Err(Nfs4Error::WrongType),
        Place::Export { export, key } => (export.clone(), key.clone()),
    };
    if !Arc::ptr_eq(&src_export, &x.export) {
        return Err(Nfs4Error::Xdev);
    }
    let src_sid = c.stateid(stateid(src_sid))?;
    let dst_sid = c.stateid(stateid(dst_sid))?;
    let src_attr = x.export.fs.getattr(&x.ctx, &src)?;
    let dst_attr = x.export.fs.getattr(&x.ctx, &dst)?;
    if src_attr.ftype != FileType::Regular || dst_attr.ftype != FileType::Regular {
        return Err(Nfs4Error::WrongType);
    }
    if !x.rw {
        return Err(Nfs4Error::Rofs);
    }
    check(c, &x, &src, src_sid, Io::Read)?;
    check(c, &x, &dst, dst_sid, Io::Write)?;
    deleg_conflict(c, &x, &src, Access::Read, false)?;
    deleg_conflict(c, &x, &dst, Access::Write, false)?;
    Ok(Ends {
        x,
        src,
        dst,
        src_size: src_attr.size,
    })
}

/// How many bytes of `[src_off, src_off + count)` to copy (`count` 0: to the end of the
/// source), at most `max`: INVAL for a range past the end of the source or overlapping
/// the destination's in one file, FBIG for a destination past the largest size.
fn range(e: &Ends, src_off: u64, dst_off: u64, count: u64, max: u64) -> R4<u64> {
    let len = if count == 0 {
        e.src_size.checked_sub(src_off).ok_or(Nfs4Error::Inval)?
    } else {
        match src_off.checked_add(count) {
            Some(end) if end <= e.src_size => count,
            _ => return Err(Nfs4Error::Inval),
        }
    };
    let len = len.min(max);
    match dst_off.checked_add(len) {
        Some(end) if end <= MAX_OFFSET => {}
        _ => return Err(Nfs4Error::FBig),
    }
    if e.src == e.dst && src_off < dst_off + len && dst_off < src_off + len {
        return Err(Nfs4Error::Inval);
    }
    Ok(len)
}
