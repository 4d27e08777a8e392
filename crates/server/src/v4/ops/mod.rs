//! The NFSv4 operations, one small handler each, grouped by family. Each takes its
//! decoded arguments (the generated wire types), runs against the [`Compound`] and writes
//! its result body (what follows the status); the op table in [`super::compound`] says
//! which need a current filehandle and what they may cost.
//!
//! [`Compound`]: super::compound::Compound
pub mod access;
pub mod attr;
pub mod copy;
pub mod dir;
pub mod fh;
pub mod io;
pub mod lock;
pub mod open;
pub mod readplus;
pub mod space;
pub mod v40;
pub mod xattr;

use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::{ExportScope, Place};
use crate::v4::state::delegations::{Access, Caller};
use crate::v4::state::ids::Stateid;
use crate::v4::state::locking::{Locking, LockingError};
use rnfs_proto::nfs4::Stateid4;
use rnfs_vfs::FileKey;
use rnfs_xdr::Writer;

/// The current filehandle as an object of an export, the caller admitted to it; `pseudo`
/// for a pseudo directory (each operation says what that is to it).
fn in_export(c: &Compound<'_>, pseudo: Nfs4Error) -> R4<(ExportScope, FileKey)> {
    match c.fh()? {
        Place::Pseudo(_) => Err(pseudo),
        Place::Export { export, key } => {
            Ok((c.ctx.pseudo.scope(&c.ctx.caller, export)?, key.clone()))
        }
    }
}

/// Like [`in_export`], for an operation that changes something: ROFS on a pseudo
/// directory (the pseudo file system is read-only) or a read-only scope.
fn writable(c: &Compound<'_>) -> R4<(ExportScope, FileKey)> {
    let (x, k) = in_export(c, Nfs4Error::Rofs)?;
    if !x.rw {
        return Err(Nfs4Error::Rofs);
    }
    Ok((x, k))
}

/// The wire stateid as the state's value.
fn stateid(s: &Stateid4) -> Stateid {
    Stateid {
        seqid: s.seqid,
        other: s.other.0,
    }
}

/// Writes a `stateid4`.
fn put_stateid(w: &mut Writer, s: &Stateid) {
    w.u32(s.seqid);
    w.opaque_fixed(&s.other);
}

/// Writes a `change_info4` (never atomic: the backend changes the directory between the
/// two reads of its change attribute).
fn put_cinfo(w: &mut Writer, before: u64, after: u64) {
    w.bool(false);
    w.u64(before);
    w.u64(after);
}

/// Runs `f` on the locking table; when it refuses for a conflict with other clients, asks
/// the hooks to expire those that are courtesy clients and, if any was, runs it once more
/// (Linux 5.19+ courtesy clients: state kept past the lease until someone conflicts).
/// When delegations are in the way, the hooks are asked to send their recalls now (with
/// the table unlocked), not at the laundromat's next pass.
fn with_locking<T>(
    c: &Compound<'_>,
    f: impl FnMut(&mut Locking) -> Result<T, LockingError>,
) -> Result<T, LockingError> {
    let r = with_locking_inner(c, f);
    if matches!(r, Err(LockingError::Recalling { .. })) {
        c.ctx.state.hooks.send_recalls(c.ctx.state.now);
    }
    r
}

fn with_locking_inner<T>(
    c: &Compound<'_>,
    mut f: impl FnMut(&mut Locking) -> Result<T, LockingError>,
) -> Result<T, LockingError> {
    let st = &c.ctx.state;
    let mut l = st.locking.lock();
    let r = f(&mut l);
    let clients = match &r {
        Err(LockingError::ShareDenied { clients }) => clients.clone(),
        Err(LockingError::Denied(d)) => d.clients.clone(),
        Err(LockingError::Recalling { clients }) => clients.clone(),
        _ => return r,
    };
    let others: Vec<_> = clients
        .into_iter()
        .filter(|x| Some(*x) != c.client)
        .collect();
    if !others.is_empty() && st.hooks.expire_courtesy(&others, &mut l, st.now) {
        return f(&mut l);
    }
    r
}

/// The delegation conflict check (see [`Locking::deleg_conflict`]) for `access` to the file
/// `key` of `x` by this compound's client: other clients' delegations in the way are
/// recalled (a courtesy client's purged at once) and the caller answers DELAY.
fn deleg_conflict(
    c: &Compound<'_>,
    x: &ExportScope,
    key: &FileKey,
    access: Access,
    truncate: bool,
) -> R4<()> {
    if !c.ctx.state.hooks.delegations_possible() {
        return Ok(());
    }
    let who = c.client.map_or(Caller::Other, Caller::Client);
    let file = state_key(x, key);
    let now = c.ctx.state.now;
    with_locking(c, |l| l.deleg_conflict(who, &file, access, truncate, now))
        .map_err(|e| lerr(c, &e))
}

/// The status for a locking refusal in this compound's minor version.
fn lerr(c: &Compound<'_>, e: &LockingError) -> Nfs4Error {
    Nfs4Error::from_locking(e, c.minor)
}

/// Whether a new open or lock must wait (NFS4ERR_GRACE): for grace to end, or for the
/// client to send RECLAIM_COMPLETE.
fn check_not_grace(c: &Compound<'_>) -> R4<()> {
    let st = &c.ctx.state;
    if st.hooks.in_grace(st.now) || !st.hooks.reclaim_completed(c.client()?) {
        return Err(Nfs4Error::Grace);
    }
    Ok(())
}

/// Whether a reclaim is allowed: in grace, by a client that may reclaim (NO_GRACE
/// otherwise).
fn check_reclaim(c: &Compound<'_>) -> R4<()> {
    let st = &c.ctx.state;
    let client = c.client()?;
    if st.hooks.in_grace(st.now) && st.hooks.may_reclaim(client, st.now) {
        Ok(())
    } else {
        Err(Nfs4Error::NoGrace)
    }
}

/// The key the locking state knows a file by: the backend's key, which names one file
/// whichever export reaches it (the local backend's is device, inode and generation; the
/// memory backend's is unique to its instance), so that opens of one file through two
/// exports see each other's share reservations.
fn state_key(_: &ExportScope, k: &FileKey) -> FileKey {
    k.clone()
}

#[cfg(test)]
mod tests;
