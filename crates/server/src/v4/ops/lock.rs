//! LOCK, LOCKT, LOCKU (RFC 8881 18.10-18.12), TEST_STATEID, FREE_STATEID (18.48, 18.38)
//! DELEGRETURN (18.6) and WANT_DELEGATION (18.49), over the byte-range table of
//! [`crate::v4::state::locks`].
//!
//! New locks (and LOCKT) answer GRACE during grace; a LOCK with `reclaim` is allowed only
//! in grace, by a client the hooks allow (NO_GRACE otherwise). A conflict answers DENIED
//! with LOCK4denied naming the conflicting lock and its owner, after courtesy clients in
//! the way were expired and the request tried once more. RELEASE_LOCKOWNER is NFSv4.0
//! only (NOTSUPP in NFSv4.1 through the op table); the LAYOUT operations and
//! GETDEVICEINFO answer NOTSUPP through the table until pNFS.
use super::io::regular;
use super::open::{delegation, put_delegation, Deleg, WANT_CANCEL, WND4_NOT_WANTED};
use super::{
    check_not_grace, check_reclaim, in_export, lerr, put_stateid, state_key, stateid, with_locking,
};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::state::locking::{Denied, LockingError};
use crate::v4::state::locks::{LockRequest, Locker};
use crate::v4::state::ranges::{LockKind, RangeOwner};
use rnfs_proto::nfs4::{
    DelegClaim4, Delegreturn4args, FreeStateid4args, Lock4args, Locker4, Lockt4args, Locku4args,
    NfsLockType4, TestStateid4args, WantDelegation4args,
};
use rnfs_xdr::Writer;

fn kind(t: NfsLockType4) -> LockKind {
    match t {
        NfsLockType4::ReadLt | NfsLockType4::ReadwLt => LockKind::Read,
        NfsLockType4::WriteLt | NfsLockType4::WritewLt => LockKind::Write,
    }
}

/// Writes LOCK4denied. An NLM owner (a v3 client's lock) is reported as client id 0 and
/// an owner naming its host and process.
fn put_denied(w: &mut Writer, d: &Denied) {
    w.u64(d.offset);
    w.u64(d.length);
    w.u32(match d.kind {
        LockKind::Read => 1,
        LockKind::Write => 2,
    });
    match &d.owner {
        RangeOwner::V4 { client, owner } => {
            w.u64(client.0);
            w.opaque(owner);
        }
        RangeOwner::Nlm { host, svid } => {
            w.u64(0);
            w.opaque(format!("nlm:{host}:{svid}").as_bytes());
        }
    }
}

/// The status of a refusal, with LOCK4denied written for a conflict.
fn refused(c: &Compound<'_>, e: &LockingError, w: &mut Writer) -> Nfs4Error {
    if let LockingError::Denied(d) = e {
        put_denied(w, d);
    }
    lerr(c, e)
}

/// LOCK: sets a byte-range lock for a new lock owner (`open_to_lock_owner4`) or an
/// existing lock stateid; the lock stateid becomes current.
pub fn lock(c: &mut Compound<'_>, a: &Lock4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    regular(&x, &k)?;
    if a.reclaim {
        check_reclaim(c)?;
    } else {
        check_not_grace(c)?;
    }
    let locker = match &a.locker {
        Locker4::True(o) => Locker::New {
            open: c.stateid(stateid(&o.open_stateid))?,
            owner: o.lock_owner.owner.0.clone(),
        },
        Locker4::False(e) => Locker::Existing {
            lock: c.stateid(stateid(&e.lock_stateid))?,
        },
    };
    let req = LockRequest {
        client,
        file: state_key(&x, &k),
        locker,
        kind: kind(a.locktype),
        offset: a.offset,
        length: a.length,
    };
    match with_locking(c, |l| l.lock(&req)) {
        Ok(s) => {
            put_stateid(w, &s);
            c.current_stateid = Some(s);
            Ok(())
        }
        Err(e) => Err(refused(c, &e, w)),
    }
}

/// LOCKT: whether another owner's lock conflicts (DENIED with LOCK4denied if so).
pub fn lockt(c: &mut Compound<'_>, a: &Lockt4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    regular(&x, &k)?;
    check_not_grace(c)?;
    let file = state_key(&x, &k);
    let owner = &a.owner.owner.0;
    with_locking(c, |l| {
        l.lock_test(client, owner, &file, kind(a.locktype), a.offset, a.length)
    })
    .map_err(|e| refused(c, &e, w))
}

/// LOCKU: releases a range; the lock stateid, its seqid bumped, becomes current.
pub fn locku(c: &mut Compound<'_>, a: &Locku4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    regular(&x, &k)?;
    let sid = c.stateid(stateid(&a.lock_stateid))?;
    let file = state_key(&x, &k);
    let s = c
        .ctx
        .state
        .locking
        .lock()
        .unlock(client, &sid, &file, a.offset, a.length)
        .map_err(|e| lerr(c, &e))?;
    put_stateid(w, &s);
    c.current_stateid = Some(s);
    Ok(())
}

/// TEST_STATEID: a status for each stateid (the special ones are BAD_STATEID).
pub fn test_stateid(c: &mut Compound<'_>, a: &TestStateid4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let mut l = c.ctx.state.locking.lock();
    w.u32(a.ts_stateids.0.len() as u32);
    for s in &a.ts_stateids.0 {
        w.u32(match l.test_stateid(client, &stateid(s)) {
            Ok(()) => 0,
            Err(e) => lerr(c, &e).code(),
        });
    }
    Ok(())
}

/// FREE_STATEID: frees a lock stateid that holds no locks.
pub fn free_stateid(c: &mut Compound<'_>, a: &FreeStateid4args) -> R4<()> {
    let client = c.client()?;
    let sid = c.stateid(stateid(&a.fsa_stateid))?;
    let r = c.ctx.state.locking.lock().free_stateid(client, &sid);
    r.map_err(|e| lerr(c, &e))
}

/// DELEGRETURN: the client gives back its delegation on the current file (BAD_STATEID
/// when the stateid names none of its delegations there, DELEG_REVOKED for one revoked:
/// FREE_STATEID is what frees that). A removed file held only for it is let go.
pub fn delegreturn(c: &mut Compound<'_>, a: &Delegreturn4args) -> R4<()> {
    let client = c.client()?;
    let sid = c.stateid(stateid(&a.deleg_stateid))?;
    let (x, k) = in_export(c, Nfs4Error::BadStateid)?;
    let file = state_key(&x, &k);
    let now = c.ctx.state.now;
    let mut l = c.ctx.state.locking.lock();
    l.delegreturn(client, &sid, &file, now)
        .map_err(|e| lerr(c, &e))?;
    // A removed file kept for the delegation goes now, as at its last CLOSE, not at the
    // laundromat's next pass: its space is free when the client's next call comes.
    c.ctx.state.hooks.let_go_unheld(&file, &l);
    Ok(())
}

/// WANT_DELEGATION (RFC 8881 18.49) for the current file (CLAIM_FH): a delegation by the
/// same policy as OPEN's, of the kind the want bits name (a read one for no preference).
/// Reclaiming one (CLAIM_PREVIOUS, CLAIM_DELEG_PREV_FH) is not supported: delegations are
/// not kept across restarts.
pub fn want_delegation(c: &mut Compound<'_>, a: &WantDelegation4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    if !matches!(a.wda_claim, DelegClaim4::ClaimFh) {
        return Err(Nfs4Error::NotSupp);
    }
    if a.wda_want & !(0xff00 | 0x3_0000) != 0 || a.wda_want & 0xff00 > WANT_CANCEL {
        return Err(Nfs4Error::Inval);
    }
    let (x, k) = in_export(c, Nfs4Error::IsDir)?;
    regular(&x, &k)?;
    let file = state_key(&x, &k);
    let place = c.fh()?.clone();
    let writes = a.wda_want & 0xff00 == 0x0200;
    let d = match a.wda_want & 0xff00 {
        // Nothing was asked for: say so rather than leave it unanswered.
        0 => match delegation(c, client, &file, &place, writes, 0x0300) {
            Deleg::None(_) => Deleg::None(Some(WND4_NOT_WANTED)),
            d => d,
        },
        want => delegation(c, client, &file, &place, writes, want),
    };
    put_delegation(w, &d);
    Ok(())
}
