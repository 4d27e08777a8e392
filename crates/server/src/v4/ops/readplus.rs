//! READ_PLUS (RFC 7862 section 15.10): READ that sends holes as holes. The file's map
//! comes from the backend's [`Backend::seek`] (SEEK_DATA/SEEK_HOLE on the local backend,
//! the chunks in memory); a backend without it answers one data segment, as READ would.
//!
//! Checks as READ's (a stateid that may read, ISDIR for a directory, another client's
//! write delegation recalled). The reply holds at most `rpa_count` bytes (and the
//! server's largest read), counting each segment's header (16 bytes before data, 20 for
//! a hole) against it, and at most [`MAX_SEGMENTS`] segments: a file of many small holes
//! answers a short reply without `rpr_eof`, and the client reads on from its end. Holes
//! are cut at the end of the range asked, and at the end of the file.
//!
//! [`Backend::seek`]: rnfs_vfs::Backend::seek
use super::io::{check, regular, MAX_OFFSET};
use super::{deleg_conflict, in_export, stateid};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::state::delegations::Access;
use crate::v4::state::locking::Io;
use rnfs_proto::nfs4::ReadPlus4args;
use rnfs_vfs::{Content, VfsError};
use rnfs_xdr::Writer;

/// Most segments one reply holds (each may cost the backend a seek).
pub const MAX_SEGMENTS: usize = 64;

/// Bytes of a data segment besides its data: the content kind, the offset, the length.
const DATA_HEADER: u64 = 4 + 8 + 4;
/// Bytes of a hole segment: the content kind, the offset, the length.
const HOLE_SIZE: u64 = 4 + 8 + 8;

/// `NFS4_CONTENT_DATA` and `NFS4_CONTENT_HOLE`.
const CONTENT_DATA: u32 = 0;
const CONTENT_HOLE: u32 = 1;

/// READ_PLUS: `rpr_eof` and the segments of `[offset, offset + count)`, in order.
pub fn read_plus(c: &mut Compound<'_>, a: &ReadPlus4args, w: &mut Writer) -> R4<()> {
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    let sid = c.stateid(stateid(&a.rpa_stateid))?;
    regular(&x, &k)?;
    check(c, &x, &k, sid, Io::Read)?;
    deleg_conflict(c, &x, &k, Access::Read, false)?;
    let fs = &x.export.fs;
    let size = fs.getattr(&x.ctx, &k)?.size;
    let count = u64::from(a.rpa_count.min(c.ctx.max_io));
    // Nothing lies at or past the end (nor past the largest offset): the end, no segment.
    if a.rpa_offset >= size.min(MAX_OFFSET) || count == 0 {
        w.bool(a.rpa_offset >= size);
        w.u32(0);
        return Ok(());
    }
    let end = size.min(a.rpa_offset.saturating_add(count));
    let mut body = Writer::new();
    let mut segments = 0u32;
    let mut budget = count;
    let mut pos = a.rpa_offset;
    let mut data = Vec::new();
    while pos < end && (segments as usize) < MAX_SEGMENTS {
        // Where the next hole starts: data runs from `pos` to it.
        let hole = match fs.seek(&x.ctx, &k, pos, Content::Hole) {
            Ok(at) => at.offset,
            // No map from this backend: all of it is data.
            Err(VfsError::NotSupp) => end,
            // The file shrank under us: the end is here.
            Err(VfsError::Nxio) => break,
            Err(e) if segments > 0 => {
                tracing::debug!(error = %e, "READ_PLUS ends early");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if hole > pos {
            // A data segment of what the budget leaves (the first one at least a byte).
            let room = budget.saturating_sub(DATA_HEADER);
            let room = if segments == 0 { room.max(1) } else { room };
            let len = hole.min(end).saturating_sub(pos).min(room);
            if len == 0 {
                break;
            }
            data.clear();
            let n = u32::try_from(len).unwrap_or(u32::MAX);
            fs.read_into(&x.ctx, &k, pos, n, &mut data)?;
            if data.is_empty() {
                break; // shrank meanwhile
            }
            body.u32(CONTENT_DATA);
            body.u64(pos);
            body.opaque(&data);
            pos += data.len() as u64;
            budget = budget.saturating_sub(DATA_HEADER + data.len().next_multiple_of(4) as u64);
        } else {
            if segments > 0 && budget < HOLE_SIZE {
                break;
            }
            // A hole from `pos` to the next data (or the end of the file).
            let next = match fs.seek(&x.ctx, &k, pos, Content::Data) {
                Ok(at) => at.offset,
                Err(VfsError::Nxio) => break,
                Err(e) if segments > 0 => {
                    tracing::debug!(error = %e, "READ_PLUS ends early");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let to = next.min(end);
            if to <= pos {
                break; // the map changed between the two seeks: the client reads on
            }
            body.u32(CONTENT_HOLE);
            body.u64(pos);
            body.u64(to - pos);
            pos = to;
            budget = budget.saturating_sub(HOLE_SIZE);
        }
        segments += 1;
    }
    w.bool(pos >= size);
    w.u32(segments);
    w.raw(body.as_slice());
    Ok(())
}
