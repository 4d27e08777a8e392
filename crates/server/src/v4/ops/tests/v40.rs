//! NFSv4.0 compounds (minor version 0) through `run_compound`: client resolution without
//! SEQUENCE, the 4.0-only operations, and the per-owner seqid replay cache (RFC 7530
//! 9.1.7), in virtual time.
use super::*;
use crate::v4::state::seqid::MAX_REPLY;

/// The 4.0 client layer of the test: client 5 is confirmed, any other is stale; RENEWs
/// and state uses are recorded.
#[derive(Default)]
struct V40 {
    used: RefCell<Vec<u64>>,
    /// Client ME expired (its id was handed out, its record is gone).
    gone: Cell<bool>,
}

const ME: u64 = 5;
const BAD_SEQID: u32 = 10026;
const STALE_CLIENTID: u32 = 10022;
const EXPIRED: u32 = 10011;
const OPEN4_RESULT_CONFIRM: u32 = 2;

impl Sessions for V40 {
    fn run(&self, _: &NfsArgop4, _: usize, _: usize, _: &mut Writer) -> SessionStep {
        SessionStep::Err(Nfs4Error::NotSupp)
    }
    fn use_client40(&self, client: ClientId) -> Result<(), Nfs4Error> {
        self.used.borrow_mut().push(client.0);
        if client.0 == ME && self.gone.get() {
            Err(Nfs4Error::Status(EXPIRED))
        } else if client.0 == ME {
            Ok(())
        } else {
            Err(Nfs4Error::Status(STALE_CLIENTID))
        }
    }
}

impl World {
    /// Runs `ops` as a minor-0 compound; the status and the results.
    fn run0(&self, s: &V40, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
        self.compound(0, s, &crate::v4::compound::any_key, Time(0), ops)
    }
}

fn open40(owner: &[u8], client: u64, seqid: u32, file: &[u8]) -> Vec<NfsArgop4> {
    let mut v = open_file(owner, file, 3, 0);
    if let NfsArgop4::OpOpen(a) = &mut v[3] {
        a.seqid = seqid;
        a.owner.clientid = client;
    }
    v
}

fn confirm(sid: &Stateid4, seqid: u32) -> NfsArgop4 {
    NfsArgop4::OpOpenConfirm(OpenConfirm4args {
        open_stateid: sid.clone(),
        seqid,
    })
}

fn close40(sid: &Stateid4, seqid: u32) -> NfsArgop4 {
    NfsArgop4::OpClose(Close4args {
        seqid,
        open_stateid: sid.clone(),
    })
}

fn status_of(r: &NfsResop4) -> u32 {
    let mut w = Writer::new();
    r.encode(&mut w);
    let b = w.as_slice();
    u32::from_be_bytes([b[4], b[5], b[6], b[7]])
}

/// A new owner's OPEN asks for OPEN_CONFIRM: the open and its confirmed stateid.
fn open_confirmed(w: &World, s: &V40, owner: &[u8], file: &[u8]) -> (Vec<u8>, Stateid4) {
    let (st, r) = w.run0(s, open40(owner, ME, 1, file));
    assert_eq!(st, 0, "{r:?}");
    let ok = opened(&r[3]);
    assert_eq!(ok.rflags & OPEN4_RESULT_CONFIRM, OPEN4_RESULT_CONFIRM);
    let fh = fh_of(&r[4]);
    let (st, r) = w.run0(s, vec![putfh(&fh), confirm(&ok.stateid, 2)]);
    assert_eq!(st, 0, "{r:?}");
    let NfsResop4::OpOpenConfirm(OpenConfirm4res::Nfs4Ok(c)) = &r[1] else {
        panic!("{r:?}")
    };
    assert_eq!(c.open_stateid.seqid, ok.stateid.seqid + 1);
    (fh, c.open_stateid.clone())
}

#[test]
fn minor_zero_has_no_sequence_and_refuses_the_41_operations() {
    let w = world();
    let s = V40::default();
    // PUTROOTFH first is fine in 4.0.
    let (st, r) = w.run0(&s, vec![NfsArgop4::OpPutrootfh, NfsArgop4::OpGetfh]);
    assert_eq!((st, r.len()), (0, 2));
    // SEQUENCE and the other 4.1 operations are illegal in 4.0 (RFC 7530 16: not in
    // its operation list).
    let (st, r) = w.run0(
        &s,
        vec![NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed([0; 16]),
            sa_sequenceid: 0,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })],
    );
    assert_eq!(st, code(Nfs4Error::OpIllegal));
    assert!(matches!(r[0], NfsResop4::OpIllegal(_)), "{r:?}");
    let (st, _) = w.run0(
        &s,
        vec![
            NfsArgop4::OpPutrootfh,
            NfsArgop4::OpSecinfoNoName(SecinfoStyle4::SecinfoStyle4CurrentFh),
        ],
    );
    assert_eq!(st, code(Nfs4Error::OpIllegal));
}

#[test]
fn state_operations_name_their_client_and_renew_it() {
    let w = world();
    let s = V40::default();
    // An OPEN by an unknown client: STALE_CLIENTID, nothing opened.
    let (st, _) = w.run0(&s, open40(b"o", 77, 1, b"f"));
    assert_eq!(st, STALE_CLIENTID);
    assert_eq!(w.counts().opens, 0);
    let (fh, sid) = open_confirmed(&w, &s, b"o", b"f");
    s.used.borrow_mut().clear();
    let (st, _) = w.run0(&s, vec![putfh(&fh), read_op(&sid, 0, 10)]);
    assert_eq!(st, 0);
    assert_eq!(
        *s.used.borrow(),
        [ME],
        "READ renewed the lease of the stateid's client"
    );
    let (st, _) = w.run0(&s, vec![NfsArgop4::OpRenew(Renew4args { clientid: ME })]);
    assert_eq!(st, 0);
    let (st, _) = w.run0(&s, vec![NfsArgop4::OpRenew(Renew4args { clientid: 9 })]);
    assert_eq!(st, STALE_CLIENTID);
}

#[test]
fn an_unconfirmed_owner_serves_only_open_confirm() {
    let w = world();
    let s = V40::default();
    let (st, r) = w.run0(&s, open40(b"o", ME, 1, b"f"));
    assert_eq!(st, 0);
    let sid = opened(&r[3]).stateid;
    let fh = fh_of(&r[4]);
    let (st, _) = w.run0(&s, vec![putfh(&fh), close40(&sid, 2)]);
    assert_eq!(st, code(Nfs4Error::BadStateid));
    // BAD_STATEID left the seqid at 1: OPEN_CONFIRM with 2 works, 2 again is replayed,
    // and a second OPEN_CONFIRM (seqid 3) of a confirmed owner is BAD_STATEID.
    let (st, r1) = w.run0(&s, vec![putfh(&fh), confirm(&sid, 2)]);
    assert_eq!(st, 0);
    let (st, r2) = w.run0(&s, vec![putfh(&fh), confirm(&sid, 2)]);
    assert_eq!(
        (st, &r2[1]),
        (0, &r1[1]),
        "the retransmission gets the same reply"
    );
    let NfsResop4::OpOpenConfirm(OpenConfirm4res::Nfs4Ok(c)) = &r1[1] else {
        panic!()
    };
    let (st, _) = w.run0(&s, vec![putfh(&fh), confirm(&c.open_stateid, 3)]);
    assert_eq!(st, code(Nfs4Error::BadStateid));
    // The owner is confirmed: its next OPEN does not ask again.
    let (st, r) = w.run0(&s, open40(b"o", ME, 3, b"g"));
    assert_eq!(st, 0);
    assert_eq!(opened(&r[3]).rflags & OPEN4_RESULT_CONFIRM, 0);
}

#[test]
fn retransmitted_open_close_lock_locku_get_their_original_replies() {
    let w = world();
    let s = V40::default();
    let (fh, _) = open_confirmed(&w, &s, b"o", b"f");
    // OPEN seqid 3 (an upgrade of the same file): retransmitted, the same stateid comes
    // back and the file handle is the current one again.
    let mut again = open40(b"o", ME, 3, b"f");
    again.push(NfsArgop4::OpGetfh);
    let (st, r1) = w.run0(&s, again.clone());
    assert_eq!(st, 0);
    let held = w.counts();
    let (st, r2) = w.run0(&s, again);
    assert_eq!(st, 0);
    assert_eq!(r2[3], r1[3], "OPEN replayed");
    assert_eq!(fh_of(&r2[5]), fh, "the replay made the opened file current");
    assert_eq!(w.counts(), held, "the replay changed nothing");
    let sid = opened(&r1[3]).stateid;
    assert_eq!(sid.other, opened(&r1[3]).stateid.other);
    // LOCK for a new lock owner (open seqid 4, lock seqid 0), then LOCKU with lock seqid 1.
    let mut lock = lock_new(&sid, b"L", NfsLockType4::WriteLt, 0, 10);
    if let NfsArgop4::OpLock(Lock4args {
        locker: Locker4::True(o),
        ..
    }) = &mut lock
    {
        o.open_seqid = 4;
        o.lock_seqid = 0;
        o.lock_owner.clientid = ME;
    }
    let (st, l1) = w.run0(&s, vec![putfh(&fh), lock.clone()]);
    assert_eq!(st, 0, "{l1:?}");
    let (st, l2) = w.run0(&s, vec![putfh(&fh), lock]);
    assert_eq!((st, &l2[1]), (0, &l1[1]), "LOCK replayed");
    assert_eq!(w.counts().ranges, 1);
    let NfsResop4::OpLock(Lock4res::Nfs4Ok(ok)) = &l1[1] else {
        panic!()
    };
    let locku = NfsArgop4::OpLocku(Locku4args {
        locktype: NfsLockType4::WriteLt,
        seqid: 1,
        lock_stateid: ok.lock_stateid.clone(),
        offset: 0,
        length: 10,
    });
    let (st, u1) = w.run0(&s, vec![putfh(&fh), locku.clone()]);
    assert_eq!(st, 0);
    let (st, u2) = w.run0(&s, vec![putfh(&fh), locku]);
    assert_eq!((st, &u2[1]), (0, &u1[1]), "LOCKU replayed");
    // A lock seqid out of order.
    let stray = NfsArgop4::OpLocku(Locku4args {
        locktype: NfsLockType4::WriteLt,
        seqid: 7,
        lock_stateid: ok.lock_stateid.clone(),
        offset: 0,
        length: 10,
    });
    assert_eq!(w.run0(&s, vec![putfh(&fh), stray]).0, BAD_SEQID);
    // CLOSE (open seqid 5): the stateid is gone afterwards, yet the retransmission finds
    // its reply.
    let (st, c1) = w.run0(&s, vec![putfh(&fh), close40(&sid, 5)]);
    assert_eq!(st, 0);
    let (st, c2) = w.run0(&s, vec![putfh(&fh), close40(&sid, 5)]);
    assert_eq!((st, &c2[1]), (0, &c1[1]), "CLOSE replayed");
    let (st, _) = w.run0(&s, vec![putfh(&fh), close40(&sid, 9)]);
    assert_ne!(st, 0);
    // An OPEN seqid that is neither the last nor the next.
    let (st, r) = w.run0(&s, open40(b"o", ME, 9, b"f"));
    assert_eq!((st, status_of(&r[3])), (BAD_SEQID, BAD_SEQID));
    // RELEASE_LOCKOWNER: no locks left, so it goes.
    let rel = NfsArgop4::OpReleaseLockowner(ReleaseLockowner4args {
        lock_owner: StateOwner4 {
            clientid: ME,
            owner: Opaque(b"L".to_vec()),
        },
    });
    assert_eq!(w.run0(&s, vec![rel]).0, 0);
    let st = w.locking.lock().seqids().stats();
    assert_eq!(st.replays, 4, "OPEN, LOCK, LOCKU, CLOSE");
    assert!(st.kept_bytes > 0 && st.kept_bytes <= st.owners * MAX_REPLY as u64);
}

#[test]
fn a_denied_lock_moves_the_seqid_on_and_is_replayed_with_its_denial() {
    let w = world();
    let s = V40::default();
    let (fh, a) = open_confirmed(&w, &s, b"a", b"f");
    let mut l = lock_new(&a, b"LA", NfsLockType4::WriteLt, 0, 10);
    if let NfsArgop4::OpLock(Lock4args {
        locker: Locker4::True(o),
        ..
    }) = &mut l
    {
        (o.open_seqid, o.lock_seqid, o.lock_owner.clientid) = (3, 0, ME);
    }
    assert_eq!(w.run0(&s, vec![putfh(&fh), l]).0, 0);
    // Another owner's open (confirmed) and a conflicting LOCK.
    let (st, r) = w.run0(&s, open40(b"b", ME, 1, b"f"));
    assert_eq!(st, 0);
    let b = opened(&r[3]).stateid;
    let (st, r) = w.run0(&s, vec![putfh(&fh), confirm(&b, 2)]);
    assert_eq!(st, 0);
    let NfsResop4::OpOpenConfirm(OpenConfirm4res::Nfs4Ok(c)) = &r[1] else {
        panic!()
    };
    let mut l = lock_new(&c.open_stateid, b"LB", NfsLockType4::WriteLt, 5, 1);
    if let NfsArgop4::OpLock(Lock4args {
        locker: Locker4::True(o),
        ..
    }) = &mut l
    {
        (o.open_seqid, o.lock_seqid, o.lock_owner.clientid) = (3, 0, ME);
    }
    let (st, d1) = w.run0(&s, vec![putfh(&fh), l.clone()]);
    assert_eq!(st, code(Nfs4Error::Denied));
    let (st, d2) = w.run0(&s, vec![putfh(&fh), l]);
    assert_eq!((st, &d2[1]), (code(Nfs4Error::Denied), &d1[1]));
    // The open owner's seqid moved on past the denial: 4 is next.
    let (st, _) = w.run0(&s, vec![putfh(&fh), close40(&c.open_stateid, 4)]);
    assert_eq!(st, 0);
}

#[test]
fn the_stateids_of_a_purged_client_answer_expired() {
    let w = world();
    let s = V40::default();
    let (fh, sid) = open_confirmed(&w, &s, b"o", b"f");
    w.locking.lock().purge_client(ClientId(ME));
    s.gone.set(true);
    let (st, _) = w.run0(&s, vec![putfh(&fh), close40(&sid, 3)]);
    assert_eq!(st, EXPIRED);
    let (st, _) = w.run0(&s, vec![putfh(&fh), read_op(&sid, 0, 1)]);
    assert_eq!(st, EXPIRED);
}

#[test]
fn too_many_operations_is_resource_in_40_and_a_lock_owner_keeps_to_its_client() {
    let w = world();
    let s = V40::default();
    let (st, r) = w.run0(&s, vec![NfsArgop4::OpPutrootfh; WIDE.max_ops as usize + 1]);
    assert_eq!((st, r.len()), (code(Nfs4Error::Resource), 0));
    // A lock owner of another client than the open's.
    let (fh, sid) = open_confirmed(&w, &s, b"o", b"f");
    let mut l = lock_new(&sid, b"L", NfsLockType4::WriteLt, 0, 1);
    if let NfsArgop4::OpLock(Lock4args {
        locker: Locker4::True(o),
        ..
    }) = &mut l
    {
        (o.open_seqid, o.lock_seqid, o.lock_owner.clientid) = (3, 0, ME + 1);
    }
    assert_eq!(w.run0(&s, vec![putfh(&fh), l]).0, STALE_CLIENTID);
}
