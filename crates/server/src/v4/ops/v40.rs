//! NFSv4.0 (minor version 0, RFC 7530) on the COMPOUND engine.
//!
//! A minor-0 compound has no SEQUENCE: each operation that uses state names its client
//! (OPEN's and LOCKT's owner, a new lock owner, RELEASE_LOCKOWNER, RENEW) or reaches it
//! through a stateid. [`run`] finds that client before the operation runs, checks that it
//! is confirmed (`STALE_CLIENTID`) and renews its lease (RFC 7530 9.5: any operation that
//! uses a client's state renews it), then runs the operation through the engine's
//! dispatch.
//!
//! The operations that change an owner's state (OPEN, OPEN_CONFIRM, OPEN_DOWNGRADE,
//! CLOSE, LOCK, LOCKU) are ordered by the owner's seqid ([`crate::v4::state::seqid`]): a
//! retransmission gets the reply kept from the first time (and OPEN's file handle back as
//! the current one), a seqid out of order `BAD_SEQID`. A new open owner's first OPEN asks
//! for OPEN_CONFIRM (`OPEN4_RESULT_CONFIRM`); until then its stateid serves only
//! OPEN_CONFIRM (`BAD_STATEID` otherwise, as knfsd). Replies are not cached in session
//! slots: the seqids and the RPC duplicate request cache are 4.0's replay protection.
//!
//! SETCLIENTID, SETCLIENTID_CONFIRM and RENEW are the session layer's
//! ([`crate::v4::compound::Sessions`]), with the client table.
use super::open::current_file;
use super::{lerr, put_stateid, stateid};
use crate::v4::compound::{dispatch, Compound, STALE_CLIENTID};
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::state::ids::{ClientId, Stateid};
use crate::v4::state::seqid::{Kept, OwnerKind, SeqOwner, SeqStart};
use rnfs_proto::nfs4::{
    Locker4, NfsArgop4, OpenConfirm4args, Putfh4args, ReleaseLockowner4args, Stateid4,
};
use rnfs_xdr::Writer;

/// `NFS4ERR_BAD_SEQID`.
pub const BAD_SEQID: u32 = 10026;
/// `OPEN4_RESULT_CONFIRM`.
const RESULT_CONFIRM: u32 = 0x2;
/// Where OPEN4resok's `rflags` sits: after the stateid (16 bytes) and change_info4 (20).
const RFLAGS_AT: usize = 36;
/// The client of an operation on a stateid nobody holds, or a special one: none (client
/// ids are never 0); the locking table answers for the stateid.
const NO_CLIENT: ClientId = ClientId(0);

/// Whose seqid an operation uses, and which.
struct SeqOp {
    owner: SeqOwner,
    seqid: u32,
    /// OPEN (an unconfirmed owner may start afresh).
    open: bool,
    /// LOCK for a new lock owner: the lock owner and its first seqid.
    new_lock_owner: Option<(SeqOwner, u32)>,
    /// The stateid the arguments name (a retransmission names it again, even when the
    /// first time freed it: CLOSE).
    other: Option<[u8; 12]>,
}

fn owner(kind: OwnerKind, client: u64, name: &[u8]) -> SeqOwner {
    SeqOwner {
        kind,
        client: ClientId(client),
        name: name.to_vec(),
    }
}

/// The seqid operation `op` is, if it is one. A stateid nobody holds fails here, as the
/// operation itself would (BAD_STATEID or STALE_STATEID, which leave seqids alone).
fn seq_op(c: &Compound<'_>, op: &NfsArgop4) -> R4<Option<SeqOp>> {
    use NfsArgop4 as A;
    let by_stateid = |s: &Stateid4, seqid: u32| -> R4<SeqOp> {
        let o = c
            .ctx
            .state
            .locking
            .lock()
            .seqid_owner(&stateid(s))
            .map_err(|e| lerr(c, &e))?;
        Ok(SeqOp {
            owner: o,
            seqid,
            open: false,
            new_lock_owner: None,
            other: Some(s.other.0),
        })
    };
    Ok(Some(match op {
        A::OpOpen(a) => SeqOp {
            owner: owner(OwnerKind::Open, a.owner.clientid, &a.owner.owner.0),
            seqid: a.seqid,
            open: true,
            new_lock_owner: None,
            other: None,
        },
        A::OpOpenConfirm(a) => by_stateid(&a.open_stateid, a.seqid)?,
        A::OpOpenDowngrade(a) => by_stateid(&a.open_stateid, a.seqid)?,
        A::OpClose(a) => by_stateid(&a.open_stateid, a.seqid)?,
        A::OpLocku(a) => by_stateid(&a.lock_stateid, a.seqid)?,
        A::OpLock(a) => match &a.locker {
            Locker4::True(o) => SeqOp {
                new_lock_owner: Some((
                    owner(
                        OwnerKind::Lock,
                        o.lock_owner.clientid,
                        &o.lock_owner.owner.0,
                    ),
                    o.lock_seqid,
                )),
                ..by_stateid(&o.open_stateid, o.open_seqid)?
            },
            Locker4::False(e) => by_stateid(&e.lock_stateid, e.lock_seqid)?,
        },
        _ => return Ok(None),
    }))
}

/// The client a non-seqid operation acts for, if it names one.
fn client_of(c: &Compound<'_>, op: &NfsArgop4) -> Option<ClientId> {
    use NfsArgop4 as A;
    let sid = match op {
        A::OpLockt(a) => return Some(ClientId(a.owner.clientid)),
        A::OpRead(a) => &a.stateid,
        A::OpWrite(a) => &a.stateid,
        A::OpSetattr(a) => &a.stateid,
        A::OpDelegreturn(a) => &a.deleg_stateid,
        _ => return None,
    };
    let l = c.ctx.state.locking.lock();
    let sid = stateid(sid);
    l.seqid_owner(&sid)
        .ok()
        .map(|o| o.client)
        // A delegation stateid (DELEGRETURN, or READ, WRITE, SETATTR under a delegation).
        .or_else(|| l.delegations().client_of(&sid.other))
}

/// Runs operation `op` of a minor-0 compound (see the module documentation).
pub(crate) fn run(c: &mut Compound<'_>, op: &NfsArgop4, w: &mut Writer) -> R4<()> {
    let Some(seq) = seq_op(c, op)? else {
        let client = client_of(c, op);
        if let Some(id) = client {
            c.ctx.sessions.use_client40(id)?;
        }
        c.client = Some(client.unwrap_or(NO_CLIENT));
        return dispatch(c, op, w);
    };
    c.ctx.sessions.use_client40(seq.owner.client)?;
    // A new lock owner belongs to the open owner's client (pynfs LOCK10).
    if let Some((lo, _)) = &seq.new_lock_owner {
        if lo.client != seq.owner.client {
            return Err(Nfs4Error::Status(STALE_CLIENTID));
        }
    }
    c.client = Some(seq.owner.client);
    let now = c.ctx.state.now;
    let (start, confirmed) = {
        let mut l = c.ctx.state.locking.lock();
        let start = l.seqids().start(&seq.owner, seq.seqid, seq.open);
        (start, l.seqids().confirmed(&seq.owner))
    };
    let start = start.map_err(|_| Nfs4Error::Status(BAD_SEQID))?;
    if let SeqStart::Replay(kept) = start {
        return replay(c, kept, w);
    }
    // The stateid of an open owner not yet confirmed serves only OPEN_CONFIRM.
    if seq.owner.kind == OwnerKind::Open
        && !seq.open
        && confirmed == Some(false)
        && !matches!(op, NfsArgop4::OpOpenConfirm(_))
    {
        return Err(Nfs4Error::BadStateid);
    }
    let r = match (op, dispatch(c, op, w)) {
        // NFSv4.0 has no WRONG_TYPE: OPEN of a special file is SYMLINK there (RFC 7530
        // 16.16.6; knfsd too).
        (NfsArgop4::OpOpen(_), Err(Nfs4Error::WrongType)) => Err(Nfs4Error::Symlink),
        (_, r) => r,
    };
    let new_owner = seq.open && start == SeqStart::New;
    if new_owner && r.is_ok() {
        let flags = w
            .as_slice()
            .get(RFLAGS_AT..RFLAGS_AT + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes);
        if let Some(f) = flags {
            w.patch_u32(RFLAGS_AT, f | RESULT_CONFIRM);
        }
    }
    let fh = match (op, &r, &c.current) {
        (NfsArgop4::OpOpen(_), Ok(()), Some(p)) => c.ctx.pseudo.fh(p).0,
        _ => Vec::new(),
    };
    let kept = Kept {
        status: r.as_ref().err().map_or(0, |e| e.code()),
        body: w.as_slice().to_vec(),
        fh,
    };
    let mut l = c.ctx.state.locking.lock();
    if let (Some((lo, lseq)), Ok(())) = (&seq.new_lock_owner, &r) {
        let first = Kept {
            fh: Vec::new(),
            ..kept.clone()
        };
        // The lock stateid LOCK returned maps back to the lock owner (Q5).
        let lock_other = first
            .body
            .get(4..16)
            .and_then(|b| <[u8; 12]>::try_from(b).ok());
        l.seqids().finish(lo, *lseq, first, lock_other, true, now);
    }
    l.seqids()
        .finish(&seq.owner, seq.seqid, kept, seq.other, !new_owner, now);
    r
}

/// Sends a kept reply again: its body and status, OPEN's file handle current again, and
/// the stateid it named current.
fn replay(c: &mut Compound<'_>, kept: Kept, w: &mut Writer) -> R4<()> {
    if !kept.fh.is_empty() {
        let a = Putfh4args {
            object: rnfs_xdr::Opaque(kept.fh),
        };
        super::fh::putfh(c, &a)?;
    }
    w.raw(&kept.body);
    if kept.status != 0 {
        return Err(Nfs4Error::Status(kept.status));
    }
    let sid = kept.body.get(..16).and_then(|b| {
        Some(Stateid {
            seqid: u32::from_be_bytes(b.get(..4)?.try_into().ok()?),
            other: b.get(4..16)?.try_into().ok()?,
        })
    });
    if sid.is_some() {
        c.current_stateid = sid;
    }
    Ok(())
}

/// OPEN_CONFIRM (RFC 7530 16.20): confirms the open owner of an open stateid; the
/// stateid, its seqid bumped, becomes current. An owner already confirmed:
/// `BAD_STATEID` (knfsd too).
pub fn open_confirm(c: &mut Compound<'_>, a: &OpenConfirm4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let sid = stateid(&a.open_stateid);
    let file = current_file(c)?;
    let mut l = c.ctx.state.locking.lock();
    let o = l.seqid_owner(&sid).map_err(|e| lerr(c, &e))?;
    if o.kind != OwnerKind::Open || l.seqids().confirmed(&o) == Some(true) {
        return Err(Nfs4Error::BadStateid);
    }
    let s = l
        .open_confirm(client, &sid, &file)
        .map_err(|e| lerr(c, &e))?;
    l.seqids().confirm(&o);
    drop(l);
    put_stateid(w, &s);
    c.current_stateid = Some(s);
    Ok(())
}

/// RENEW (RFC 7530 16.29): the lease is renewed; a client holding delegations whose
/// callback path is down is told so (`CB_PATH_DOWN`, after renewing: RFC 7530 16.29.4).
pub fn renew(c: &mut Compound<'_>, client: u64) -> R4<()> {
    let id = ClientId(client);
    c.ctx.sessions.use_client40(id)?;
    let holds = c.ctx.state.locking.lock().delegations().has_state(id);
    let down = holds && c.ctx.state.hooks.callback_down40(id);
    tracing::debug!(client = id.0, holds, down, "RENEW");
    if down {
        return Err(Nfs4Error::Status(CB_PATH_DOWN));
    }
    Ok(())
}

/// `NFS4ERR_CB_PATH_DOWN`.
const CB_PATH_DOWN: u32 = 10048;

/// RELEASE_LOCKOWNER (RFC 7530 16.37): frees a lock owner that holds no locks
/// (`LOCKS_HELD` otherwise), its seqid with it.
pub fn release_lockowner(c: &mut Compound<'_>, a: &ReleaseLockowner4args) -> R4<()> {
    let client = ClientId(a.lock_owner.clientid);
    c.ctx.sessions.use_client40(client)?;
    let mut l = c.ctx.state.locking.lock();
    l.release_lock_owner(client, &a.lock_owner.owner.0)
        .map_err(|e| lerr(c, &e))?;
    l.seqids()
        .remove(&owner(OwnerKind::Lock, client.0, &a.lock_owner.owner.0));
    Ok(())
}
