//! Tests of the delegation state in virtual time, one or more per clause of the module
//! doc (D1-D8).
#![allow(clippy::unwrap_used)]
use super::*;
use crate::v4::state::stateid::StateidMint;

const A: ClientId = ClientId(1);
const B: ClientId = ClientId(2);
const LEASE: u64 = 90_000;

struct T {
    d: Delegations,
    mint: StateidMint,
}

impl T {
    fn new() -> Self {
        Self::with(DelegLimits {
            per_client: 8,
            total: 16,
            outstanding: 4,
        })
    }
    fn with(limits: DelegLimits) -> Self {
        Self {
            d: Delegations::new(limits, LEASE),
            mint: StateidMint::new(3),
        }
    }
    fn sid(&mut self) -> Stateid {
        let k = self.mint.mint();
        Stateid {
            seqid: 1,
            other: self.mint.other(k),
        }
    }
    fn grant_with(
        &mut self,
        client: ClientId,
        f: u8,
        kind: DelegKind,
        openers: Openers,
        now: u64,
    ) -> Result<Stateid, NoDeleg> {
        let sid = self.sid();
        let req = GrantRequest {
            client,
            file: file(f),
            fh: vec![0xf0, f],
            kind,
            openers,
            cb_ok: true,
            reclaim: false,
        };
        self.d.grant(&req, sid, Time(now)).map(|(s, _)| s)
    }
    fn grant(&mut self, client: ClientId, f: u8, kind: DelegKind, now: u64) -> Stateid {
        self.grant_with(client, f, kind, Openers::default(), now)
            .unwrap()
    }
}

fn file(n: u8) -> FileKey {
    FileKey(vec![n])
}

/// D1: read delegations are shared, a write delegation is exclusive; another client's
/// opens decide as the policy says.
#[test]
fn grant_policy_by_openers_and_delegations() {
    let mut t = T::new();
    let w = Openers {
        others: true,
        others_write: true,
    };
    let r = Openers {
        others: true,
        others_write: false,
    };
    assert_eq!(
        t.grant_with(A, 1, DelegKind::Read, w, 0),
        Err(NoDeleg::Contention)
    );
    assert_eq!(
        t.grant_with(A, 1, DelegKind::Write, r, 0),
        Err(NoDeleg::Contention)
    );
    // Others only read: a read delegation is fine.
    let s = t.grant_with(A, 1, DelegKind::Read, r, 0).unwrap();
    assert_eq!(t.d.held_by(A, &file(1)), Some((s, DelegKind::Read)));
    // B may read-delegate too; not write.
    t.grant(B, 1, DelegKind::Read, 0);
    assert_eq!(
        t.grant_with(B, 2, DelegKind::Write, Openers::default(), 0)
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        t.grant_with(A, 2, DelegKind::Read, Openers::default(), 0),
        Err(NoDeleg::Contention),
        "B holds a write delegation on file 2"
    );
    // A client already holding one on the file gets no second.
    assert_eq!(
        t.grant_with(A, 1, DelegKind::Read, Openers::default(), 0),
        Err(NoDeleg::Contention)
    );
    let st = t.d.stats();
    assert_eq!((st.held, st.held_write), (3, 1));
    assert_eq!((st.granted_read, st.granted_write), (2, 1));
    assert_eq!(st.refused_contention, 4);
}

/// D1: no delegation without a verified callback path, nor to a client whose recall
/// failed or whose delegation was revoked within the last lease.
#[test]
fn no_grant_without_callback_path_or_after_failures() {
    let mut t = T::new();
    let sid = t.sid();
    let req = GrantRequest {
        client: A,
        file: file(1),
        fh: vec![1],
        kind: DelegKind::Read,
        openers: Openers::default(),
        cb_ok: false,
        reclaim: false,
    };
    assert_eq!(t.d.grant(&req, sid, Time(0)), Err(NoDeleg::Resource));
    // A's recall meets a dead path: no new delegation to A for a lease.
    let s = t.grant(A, 1, DelegKind::Read, 0);
    assert!(t
        .d
        .conflict(Caller::Client(B), &file(1), Access::Write, false, Time(10))
        .is_err());
    let o = t.d.due_recalls(Time(10));
    assert_eq!(o.len(), 1);
    t.d.recall_outcome(&s, RecallOutcome::PathDown, Time(20));
    assert_eq!(
        t.grant_with(A, 2, DelegKind::Read, Openers::default(), 30),
        Err(NoDeleg::Resource)
    );
    // B is not affected.
    t.grant(B, 2, DelegKind::Read, 30);
    // A lease later, A may have one again (once its revoked stateid is freed: the first
    // delegation was revoked a lease after its recall).
    assert_eq!(t.d.revoke_overdue(Time(10 + LEASE)), 1);
    assert_eq!(
        t.grant_with(A, 3, DelegKind::Read, Openers::default(), 10 + LEASE),
        Err(NoDeleg::Resource),
        "revoked just now"
    );
    t.d.free_stateid(A, &s).unwrap();
    assert_eq!(
        t.grant_with(A, 3, DelegKind::Read, Openers::default(), 10 + 2 * LEASE),
        Ok(Stateid {
            seqid: 1,
            other: t.mint.other(6)
        })
    );
}

/// D1, reclaim (CLAIM_PREVIOUS after a restart): granted without a verified callback
/// path, but pre-recalled then (its recall ordered at once, revoked a lease later if not
/// returned); with a verified path, an ordinary delegation. Bounds and conflicts still hold.
#[test]
fn reclaim_is_granted_pre_recalled_without_a_verified_path() {
    let mut t = T::new();
    let mut req = GrantRequest {
        client: A,
        file: file(1),
        fh: vec![1],
        kind: DelegKind::Read,
        openers: Openers::default(),
        cb_ok: false,
        reclaim: true,
    };
    let sid = t.sid();
    let (s, kind) = t.d.grant(&req, sid, Time(0)).unwrap();
    assert_eq!(kind, DelegKind::Read);
    let o = t.d.due_recalls(Time(0));
    assert_eq!(o.len(), 1, "its recall is ordered at once");
    assert_eq!(o[0].stateid, s);
    assert_eq!(
        t.d.revoke_overdue(Time(LEASE)),
        1,
        "not returned: revoked a lease later"
    );
    // Verified path: an ordinary delegation, no recall.
    req.file = file(2);
    req.client = B;
    req.cb_ok = true;
    let sid = t.sid();
    t.d.grant(&req, sid, Time(LEASE)).unwrap();
    assert!(t.d.due_recalls(Time(LEASE)).is_empty());
    // A write delegation reclaimed over B's read one on file 2: contention.
    req.client = ClientId(3);
    req.kind = DelegKind::Write;
    let sid = t.sid();
    assert_eq!(t.d.grant(&req, sid, Time(LEASE)), Err(NoDeleg::Contention));
}

/// D2 and D3: a conflict orders one recall; the delegation returned clears the way.
#[test]
fn recall_then_return() {
    let mut t = T::new();
    let s = t.grant(A, 1, DelegKind::Write, 0);
    // A's own access is no conflict.
    assert_eq!(
        t.d.conflict(Caller::Client(A), &file(1), Access::Write, false, Time(5)),
        Ok(())
    );
    let e =
        t.d.conflict(Caller::Client(B), &file(1), Access::Read, false, Time(5))
            .unwrap_err();
    assert_eq!(e.holders, vec![A]);
    let o = t.d.due_recalls(Time(5));
    assert_eq!(
        o,
        vec![RecallOrder {
            client: A,
            stateid: s,
            fh: vec![0xf0, 1],
            truncate: false
        }]
    );
    assert_eq!(t.d.stats().outstanding, 1);
    t.d.recall_outcome(&s, RecallOutcome::Delivered, Time(6));
    assert_eq!(t.d.stats().outstanding, 0);
    // Still in the way until returned; nothing more is sent.
    assert!(t
        .d
        .conflict(Caller::Client(B), &file(1), Access::Read, false, Time(7))
        .is_err());
    assert!(t.d.due_recalls(Time(LEASE / 2)).is_empty());
    // Returned at LEASE / 2 + 5, the CB_RECALL went out at 5: the round trip counted.
    t.d.delegreturn(A, &s, &file(1), Time(LEASE / 2 + 5))
        .unwrap();
    assert_eq!(
        t.d.conflict(
            Caller::Client(B),
            &file(1),
            Access::Read,
            false,
            Time(LEASE / 2 + 6)
        ),
        Ok(())
    );
    assert_eq!(t.d.check(A, &s, None, false), Err(DelegError::BadStateid));
    let st = t.d.stats();
    assert_eq!((st.held, st.recalls, st.returned, st.revoked), (0, 1, 1, 0));
    assert_eq!(
        (
            st.recall_returns,
            st.recall_return_ms_sum,
            st.recall_return_ms_last,
            st.recall_return_ms_max
        ),
        (1, LEASE / 2, LEASE / 2, LEASE / 2)
    );
    assert!(!t.d.has_state(A));
}

/// D2: read access by another client does not conflict with read delegations; the v3
/// side (Caller::Other) conflicts as any other client does.
#[test]
fn what_conflicts() {
    let mut t = T::new();
    t.grant(A, 1, DelegKind::Read, 0);
    assert_eq!(
        t.d.conflict(Caller::Client(B), &file(1), Access::Read, false, Time(1)),
        Ok(())
    );
    assert_eq!(
        t.d.conflict(Caller::Other, &file(1), Access::Read, false, Time(1)),
        Ok(())
    );
    assert!(t
        .d
        .conflict(Caller::Other, &file(1), Access::Meta, false, Time(1))
        .is_err());
    // Another file is free.
    assert_eq!(
        t.d.conflict(Caller::Other, &file(2), Access::Write, false, Time(1)),
        Ok(())
    );
    // Once recalling, no new delegation on the file, not even a read one to another.
    assert_eq!(
        t.grant_with(B, 1, DelegKind::Read, Openers::default(), 2),
        Err(NoDeleg::Contention)
    );
}

/// D2: a thousand conflicting requests produce one recall, and nothing more is sent
/// while it is in flight or acknowledged.
#[test]
fn no_recall_storm() {
    let mut t = T::new();
    let s = t.grant(A, 1, DelegKind::Read, 0);
    let mut orders = Vec::new();
    for i in 0..1000u64 {
        let who = if i % 2 == 0 {
            Caller::Client(B)
        } else {
            Caller::Other
        };
        assert!(t
            .d
            .conflict(who, &file(1), Access::Write, false, Time(i))
            .is_err());
        orders.extend(t.d.due_recalls(Time(i)));
    }
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].stateid, s);
    let st = t.d.stats();
    assert_eq!((st.recalls, st.recall_retries, st.conflicts), (1, 0, 1000));
}

/// D2: a failed recall is sent again on the backoff schedule, not before; D3: the
/// delegation is revoked a lease after the first recall, however the sends went, and the
/// client is told (revoked state, DELEG_REVOKED) until it frees the stateid.
#[test]
fn retry_backoff_then_revoke() {
    let mut t = T::new();
    let s = t.grant(A, 1, DelegKind::Write, 0);
    assert!(t
        .d
        .conflict(Caller::Client(B), &file(1), Access::Write, true, Time(100))
        .is_err());
    let mut sends = vec![];
    let mut now = 100;
    while now < 100 + LEASE {
        for o in t.d.due_recalls(Time(now)) {
            assert!(o.truncate);
            sends.push(now);
            t.d.recall_outcome(&o.stateid, RecallOutcome::Refused(10008), Time(now));
        }
        now += 100;
    }
    // 100, then +1s, +2s, +4s, +8s, +16s, +16s ... within the lease.
    let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(&gaps[..5], &[1_000, 2_000, 4_000, 8_000, 16_000]);
    assert!(gaps[5..].iter().all(|g| *g == 16_000), "{gaps:?}");
    assert_eq!(t.d.stats().recall_retries as usize, sends.len() - 1);
    // One lease after the recall: revoked; the conflicting caller goes through.
    assert!(t
        .d
        .conflict(
            Caller::Client(B),
            &file(1),
            Access::Write,
            false,
            Time(100 + LEASE - 1)
        )
        .is_err());
    assert_eq!(
        t.d.conflict(
            Caller::Client(B),
            &file(1),
            Access::Write,
            false,
            Time(100 + LEASE)
        ),
        Ok(())
    );
    assert!(t.d.has_revoked(A));
    assert_eq!(t.d.check(A, &s, None, false), Err(DelegError::Revoked));
    assert_eq!(
        t.d.delegreturn(A, &s, &file(1), Time(101 + LEASE)),
        Err(DelegError::Revoked)
    );
    assert_eq!(t.d.check(B, &s, None, false), Err(DelegError::BadStateid));
    let st = t.d.stats();
    assert_eq!(
        (st.held, st.revoked, st.revoked_held, st.outstanding),
        (0, 1, 1, 0)
    );
    // FREE_STATEID clears it.
    assert_eq!(t.d.free_stateid(B, &s), Err(Some(DelegError::BadStateid)));
    t.d.free_stateid(A, &s).unwrap();
    assert!(!t.d.has_revoked(A));
    assert!(!t.d.knows(&s.other));
    assert!(!t.d.has_state(A));
}

/// D3: a client that acknowledges the recall and never returns is revoked too; the
/// laundromat does it without any conflicting caller retrying.
#[test]
fn acknowledged_but_never_returned() {
    let mut t = T::new();
    let s = t.grant(A, 1, DelegKind::Read, 0);
    assert!(t
        .d
        .conflict(Caller::Other, &file(1), Access::Meta, false, Time(0))
        .is_err());
    let o = t.d.due_recalls(Time(0));
    t.d.recall_outcome(&o[0].stateid, RecallOutcome::Delivered, Time(1));
    assert!(t.d.due_recalls(Time(LEASE - 1)).is_empty());
    assert!(t.d.holds_file(&file(1)));
    assert!(t.d.due_recalls(Time(LEASE)).is_empty());
    assert!(!t.d.holds_file(&file(1)));
    assert_eq!(
        t.d.check(A, &s, Some(&file(1)), false),
        Err(DelegError::Revoked)
    );
}

/// D2: the bound on recalls in flight: more due recalls than room wait for room, oldest
/// first; a sender that never reports does not leak room past the revocation.
#[test]
fn outstanding_recalls_are_bounded() {
    let mut t = T::new();
    let sids: Vec<Stateid> = (0..6).map(|f| t.grant(A, f, DelegKind::Read, 0)).collect();
    for f in 0..6u8 {
        assert!(t
            .d
            .conflict(
                Caller::Other,
                &file(f),
                Access::Write,
                false,
                Time(u64::from(f))
            )
            .is_err());
    }
    let first = t.d.due_recalls(Time(10));
    assert_eq!(first.len(), 4);
    assert_eq!(
        first.iter().map(|o| o.stateid).collect::<Vec<_>>(),
        sids[..4].to_vec()
    );
    assert!(t.d.due_recalls(Time(11)).is_empty());
    assert_eq!(t.d.stats().outstanding, 4);
    t.d.recall_outcome(&sids[0], RecallOutcome::Delivered, Time(12));
    // An outcome twice, or for an order not in flight, changes nothing.
    t.d.recall_outcome(&sids[0], RecallOutcome::Delivered, Time(12));
    t.d.recall_outcome(&sids[5], RecallOutcome::PathDown, Time(12));
    assert_eq!(t.d.stats().outstanding, 3);
    let next = t.d.due_recalls(Time(13));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].stateid, sids[4]);
    // Nobody reports again; all are revoked a lease later and the room is back.
    t.d.due_recalls(Time(LEASE + 10));
    let st = t.d.stats();
    assert_eq!((st.held, st.outstanding, st.revoked), (0, 0, 6));
}

/// D4: the per-client and the total bound, counted; revoked stateids count against the
/// client until freed.
#[test]
fn bounds() {
    let mut t = T::with(DelegLimits {
        per_client: 3,
        total: 5,
        outstanding: 4,
    });
    for f in 0..3 {
        t.grant(A, f, DelegKind::Read, 0);
    }
    assert_eq!(
        t.grant_with(A, 9, DelegKind::Read, Openers::default(), 0),
        Err(NoDeleg::Resource)
    );
    t.grant(B, 10, DelegKind::Read, 0);
    t.grant(B, 11, DelegKind::Read, 0);
    assert_eq!(
        t.grant_with(B, 12, DelegKind::Read, Openers::default(), 0),
        Err(NoDeleg::Resource),
        "total"
    );
    assert_eq!(t.d.stats().refused_resource, 2);
    let l = DelegLimits::from_ram(256 << 20);
    assert_eq!((l.total, l.per_client), (1024, 256));
    let l = DelegLimits::from_ram(1 << 40);
    assert_eq!(l.total, 1 << 20);
}

/// D5: a purge drops everything of the client, in flight or revoked, and frees the room
/// its recalls took.
#[test]
fn purge_client() {
    let mut t = T::new();
    let s1 = t.grant(A, 1, DelegKind::Read, 0);
    let s2 = t.grant(A, 2, DelegKind::Write, 0);
    t.grant(B, 3, DelegKind::Read, 0);
    assert!(t
        .d
        .conflict(Caller::Other, &file(1), Access::Write, false, Time(0))
        .is_err());
    assert!(t
        .d
        .conflict(
            Caller::Other,
            &file(2),
            Access::Write,
            false,
            Time(LEASE / 2)
        )
        .is_err());
    assert_eq!(t.d.due_recalls(Time(LEASE / 2)).len(), 2);
    t.d.revoke_overdue(Time(LEASE));
    assert_eq!(t.d.check(A, &s1, None, false), Err(DelegError::Revoked));
    assert_eq!(t.d.purge_client(A), 1);
    assert!(!t.d.knows(&s1.other) && !t.d.knows(&s2.other));
    assert!(!t.d.has_state(A) && !t.d.has_revoked(A));
    assert_eq!(
        t.d.conflict(Caller::Other, &file(2), Access::Write, false, Time(LEASE)),
        Ok(())
    );
    let st = t.d.stats();
    assert_eq!(
        (st.held, st.outstanding, st.revoked_held, st.purged),
        (1, 0, 0, 1)
    );
}

/// Stateid checks: seqid, file, kind of I/O.
#[test]
fn stateid_checks() {
    let mut t = T::new();
    let r = t.grant(A, 1, DelegKind::Read, 0);
    let w = t.grant(A, 2, DelegKind::Write, 0);
    assert_eq!(t.d.check(A, &r, Some(&file(1)), false), Ok(DelegKind::Read));
    assert_eq!(
        t.d.check(A, &r, Some(&file(1)), true),
        Err(DelegError::OpenMode)
    );
    assert_eq!(t.d.check(A, &w, Some(&file(2)), true), Ok(DelegKind::Write));
    assert_eq!(
        t.d.check(A, &w, Some(&file(1)), true),
        Err(DelegError::BadStateid)
    );
    let zero = Stateid { seqid: 0, ..w };
    assert_eq!(t.d.check(A, &zero, None, true), Ok(DelegKind::Write));
    let future = Stateid { seqid: 2, ..w };
    assert_eq!(
        t.d.check(A, &future, None, true),
        Err(DelegError::BadStateid)
    );
    assert_eq!(t.d.free_stateid(A, &w), Err(None), "held: in use");
    assert_eq!(
        t.d.delegreturn(B, &w, &file(2), Time(0)),
        Err(DelegError::BadStateid)
    );
}

/// D6: below the total bound no CB_RECALL_ANY; at it, the clients holding the most are
/// asked to keep half, as many as it takes to get back to three quarters of the bound;
/// one in flight per client, none again within a lease of the last outcome; a purge
/// forgets the client.
#[test]
fn recall_any_at_the_total_bound() {
    const C: ClientId = ClientId(3);
    let mut t = T::with(DelegLimits {
        per_client: 8,
        total: 12,
        outstanding: 4,
    });
    // A 6 (one a write delegation), B 4, C 1: 11, one below the bound.
    for f in 0..5 {
        t.grant(A, f, DelegKind::Read, 0);
    }
    t.grant(A, 5, DelegKind::Write, 0);
    for f in 10..14 {
        t.grant(B, f, DelegKind::Read, 0);
    }
    t.grant(C, 20, DelegKind::Read, 0);
    assert!(t.d.due_recall_any(Time(1)).is_empty(), "below the bound");
    t.grant(C, 21, DelegKind::Read, 0);
    // At the bound (12): no more grants; 12 - 9 = 3 to return: A's 3 are enough.
    assert_eq!(
        t.grant_with(C, 22, DelegKind::Read, Openers::default(), 2),
        Err(NoDeleg::Resource)
    );
    let rw = RCA4_RDATA_DLG | RCA4_WDATA_DLG;
    assert_eq!(
        t.d.due_recall_any(Time(2)),
        vec![RecallAnyOrder {
            client: A,
            keep: 3,
            mask: rw
        }]
    );
    assert_eq!(t.d.stats().recall_any_outstanding, 1);
    // Still at the bound: A's order in flight counts, nobody else is asked.
    assert!(t.d.due_recall_any(Time(3)).is_empty());
    // A says yes but returns nothing yet: A is left alone for a lease, so the next in
    // line are asked.
    t.d.recall_any_outcome(A, RecallOutcome::Delivered, Time(4));
    t.d.recall_any_outcome(A, RecallOutcome::Delivered, Time(4)); // twice: ignored
    assert_eq!(t.d.stats().recall_any_outstanding, 0);
    assert_eq!(
        t.d.due_recall_any(Time(5)),
        vec![
            RecallAnyOrder {
                client: B,
                keep: 2,
                mask: RCA4_RDATA_DLG
            },
            RecallAnyOrder {
                client: C,
                keep: 1,
                mask: RCA4_RDATA_DLG
            }
        ],
        "B's 2 and C's 1 make the 3"
    );
    // B's path is down: counted, and B gets no delegation for a lease.
    t.d.recall_any_outcome(B, RecallOutcome::PathDown, Time(6));
    t.d.recall_any_outcome(C, RecallOutcome::Refused(10008), Time(6));
    assert_eq!(t.d.stats().recall_any_failed, 2);
    // A lease after A's outcome A is asked again (B and C are quiet a little longer).
    assert!(t.d.due_recall_any(Time(LEASE + 3)).is_empty());
    assert_eq!(
        t.d.due_recall_any(Time(LEASE + 4)),
        vec![RecallAnyOrder {
            client: A,
            keep: 3,
            mask: rw
        }]
    );
    // A returns one: below the bound, nothing more is asked, and grants resume (not to
    // B, whose path was down within the lease).
    let s = t.d.held_by(A, &file(0)).unwrap().0;
    t.d.delegreturn(A, &s, &file(0), Time(LEASE + 5)).unwrap();
    assert!(t.d.due_recall_any(Time(LEASE + 10)).is_empty());
    assert_eq!(
        t.grant_with(B, 30, DelegKind::Read, Openers::default(), LEASE + 5),
        Err(NoDeleg::Resource)
    );
    t.grant(C, 30, DelegKind::Read, LEASE + 11);
    // A purge forgets the client's order at once.
    assert_eq!(t.d.stats().recall_any_outstanding, 1);
    let mut t2 = T::with(t.d.limits);
    t.d.purge_client(A);
    assert_eq!(t.d.stats().recall_any_outstanding, 0);
    assert_eq!(t.d.stats().recall_any, 4);
    // An order whose outcome never comes is forgotten two leases on (and the client may
    // be asked again).
    for f in 0..6 {
        t2.grant(A, f, DelegKind::Read, 0);
        t2.grant(B, f + 10, DelegKind::Read, 0);
    }
    let once = t2.d.due_recall_any(Time(0));
    assert_eq!(once.len(), 1);
    assert!(t2.d.due_recall_any(Time(2 * LEASE - 1)).is_empty());
    assert_eq!(t2.d.due_recall_any(Time(2 * LEASE)), once);
}

/// D3 for NFSv4.0 clients (no FREE_STATEID): their revoked stateids are forgotten, so they
/// hold nothing and may get delegations again once the penalty is over; a delegation
/// stateid names its client (4.0 finds a DELEGRETURN's client so).
#[test]
fn revoked_stateids_of_4_0_clients_are_forgotten() {
    let mut t = T::new();
    let a = t.grant(A, 1, DelegKind::Read, 0);
    let b = t.grant(B, 2, DelegKind::Read, 0);
    assert_eq!(t.d.client_of(&a.other), Some(A));
    assert_eq!(t.d.client_of(&[0xee; 12]), None);
    for f in [1, 2] {
        assert!(t
            .d
            .conflict(Caller::Other, &file(f), Access::Write, false, Time(10))
            .is_err());
    }
    assert_eq!(t.d.revoke_overdue(Time(10 + LEASE)), 2);
    assert_eq!(t.d.client_of(&a.other), Some(A), "revoked, still known");
    // Only A is a 4.0 client.
    assert_eq!(t.d.forget_revoked(|c| c == A), 1);
    assert!(!t.d.has_revoked(A) && !t.d.has_state(A));
    assert!(!t.d.knows(&a.other));
    assert_eq!(t.d.check(A, &a, None, false), Err(DelegError::BadStateid));
    assert!(t.d.has_revoked(B), "a 4.1 client frees its own");
    assert_eq!(t.d.check(B, &b, None, false), Err(DelegError::Revoked));
    assert_eq!(t.d.stats().revoked_held, 1);
}

// D8: CB_GETATTR.

fn sc(size: u64, change: u64) -> SizeChange {
    SizeChange { size, change }
}

#[test]
fn d8_only_another_clients_write_delegation_is_asked() {
    let mut t = T::new();
    let r = t.grant(A, 1, DelegKind::Read, 0);
    assert_eq!(t.d.write_holder(Caller::Client(B), &file(1)), None);
    let _ = r;
    let w = t.grant(B, 2, DelegKind::Write, 0);
    // The holder's own GETATTR asks nobody.
    assert_eq!(t.d.write_holder(Caller::Client(B), &file(2)), None);
    let o = t.d.write_holder(Caller::Client(A), &file(2)).unwrap();
    assert_eq!((o.client, o.stateid, o.fh), (B, w, vec![0xf0, 2]));
    assert_eq!(
        t.d.write_holder(Caller::Other, &file(2)).map(|o| o.client),
        Some(B)
    );
    // Returned: nobody to ask.
    t.d.delegreturn(B, &w, &file(2), Time(5)).unwrap();
    assert_eq!(t.d.write_holder(Caller::Other, &file(2)), None);
}

#[test]
fn d8_the_holders_unchanged_change_leaves_the_servers_attributes() {
    let mut t = T::new();
    let w = t.grant(B, 2, DelegKind::Write, 0);
    t.d.set_cb_baseline(&w, 100);
    // The server's own change moved on (the holder wrote back): the holder still reports
    // the change it was granted with, as the Linux client does with nothing dirty.
    let a = t.d.cb_getattr_answer(&w, sc(7, 100), sc(4096, 150));
    assert_eq!(
        a,
        CbAnswer {
            attrs: sc(4096, 150),
            modified: false
        }
    );
}

#[test]
fn d8_a_modification_answers_the_holders_size_and_a_growing_change() {
    let mut t = T::new();
    let w = t.grant(B, 2, DelegKind::Write, 0);
    t.d.set_cb_baseline(&w, 100);
    t.d.set_cb_baseline(&w, 999); // kept only the first time
    let a = t.d.cb_getattr_answer(&w, sc(5, 101), sc(0, 100));
    assert_eq!(
        a,
        CbAnswer {
            attrs: sc(5, 101),
            modified: true
        }
    );
    // Asked again with the same modification: the same answer.
    let b = t.d.cb_getattr_answer(&w, sc(5, 101), sc(0, 100));
    assert_eq!(b.attrs, sc(5, 101));
    // A further modification: a change past the last one answered.
    let c = t.d.cb_getattr_answer(&w, sc(9, 102), sc(0, 100));
    assert_eq!(c.attrs, sc(9, 102));
    // The server's own change passed it (the holder wrote back some): past that too.
    let d = t.d.cb_getattr_answer(&w, sc(9, 103), sc(9, 500));
    assert_eq!(d.attrs, sc(9, 501));
    assert!(d.modified);
}

#[test]
fn d8_without_a_baseline_the_first_answer_sets_it_and_gone_delegations_answer_the_server() {
    let mut t = T::new();
    let w = t.grant(B, 2, DelegKind::Write, 0);
    // No baseline given at the grant: the server's change at the first CB_GETATTR.
    let a = t.d.cb_getattr_answer(&w, sc(3, 40), sc(3, 40));
    assert!(!a.modified);
    let b = t.d.cb_getattr_answer(&w, sc(8, 41), sc(3, 40));
    assert_eq!(
        b,
        CbAnswer {
            attrs: sc(8, 41),
            modified: true
        }
    );
    t.d.delegreturn(B, &w, &file(2), Time(5)).unwrap();
    let c = t.d.cb_getattr_answer(&w, sc(8, 41), sc(8, 77));
    assert_eq!(
        c,
        CbAnswer {
            attrs: sc(8, 77),
            modified: false
        }
    );
}

/// D7: a change made beside NFS recalls every delegation on the file, the holder's too,
/// once (D2), unless the server itself changed the file within the window: the holder's
/// own SETATTR or WRITE does not recall its delegation. A read through NFS is no change.
#[test]
fn changes_beside_nfs_recall_unless_the_server_made_them() {
    let mut t = T::new();
    assert_eq!(
        t.d.changed_outside(&file(1), Time(0)),
        OutsideChange::NotHeld
    );
    let s = t.grant(A, 1, DelegKind::Read, 0);
    t.grant(B, 1, DelegKind::Read, 0);
    // A changes its file through NFS (its own SETATTR: no conflict for a read delegation
    // of its own, but B's is recalled as for any change); the report of it is A's own.
    let _ =
        t.d.conflict(Caller::Client(A), &file(1), Access::Meta, false, Time(100));
    let recalled_for_a = t.d.due_recalls(Time(100));
    assert_eq!(recalled_for_a.len(), 1, "B's delegation, not A's");
    assert_ne!(recalled_for_a[0].stateid, s);
    assert_eq!(t.d.changed_outside(&file(1), Time(150)), OutsideChange::Own);
    assert_eq!(
        t.d.changed_outside(&file(1), Time(100 + OWN_CHANGE_WINDOW_MS)),
        OutsideChange::Own,
        "the window's end is still inside"
    );
    // Past the window, a reported change is someone else's: A's delegation is recalled.
    let now = 101 + OWN_CHANGE_WINDOW_MS;
    match t.d.changed_outside(&file(1), Time(now)) {
        OutsideChange::Recall(c) => assert!(c.holders.contains(&A)),
        other => panic!("{other:?}"),
    }
    let o = t.d.due_recalls(Time(now));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].stateid, s);
    // Reported again (a rename after the chmod): no second recall.
    assert!(matches!(
        t.d.changed_outside(&file(1), Time(now + 10)),
        OutsideChange::Recall(_)
    ));
    assert!(t.d.due_recalls(Time(now + 10)).is_empty());
    let st = t.d.stats();
    assert_eq!((st.outside_own, st.outside_changes), (2, 2));
    // A read through NFS notes nothing: a change reported right after it recalls.
    t.grant(A, 2, DelegKind::Read, now);
    let _ =
        t.d.conflict(Caller::Client(A), &file(2), Access::Read, false, Time(now));
    assert!(matches!(
        t.d.changed_outside(&file(2), Time(now + 1)),
        OutsideChange::Recall(_)
    ));
}

/// D7 and D4: the notes of the server's changes are kept only for delegated files and
/// dropped past the window or with the file's last delegation.
#[test]
fn change_notes_are_bounded_by_the_delegations() {
    let mut t = T::new();
    for f in 10..20 {
        let _ =
            t.d.conflict(Caller::Client(A), &file(f), Access::Write, false, Time(0));
    }
    assert!(t.d.touched.is_empty(), "no note for an undelegated file");
    let s = t.grant(A, 1, DelegKind::Write, 0);
    let _ =
        t.d.conflict(Caller::Client(A), &file(1), Access::Write, false, Time(5));
    assert_eq!(t.d.touched.len(), 1);
    t.d.delegreturn(A, &s, &file(1), Time(6)).unwrap();
    t.d.due_recalls(Time(7));
    assert!(t.d.touched.is_empty(), "dropped with the last delegation");
    t.grant(A, 2, DelegKind::Write, 10);
    let _ =
        t.d.conflict(Caller::Client(A), &file(2), Access::Meta, false, Time(10));
    t.d.due_recalls(Time(11 + OWN_CHANGE_WINDOW_MS));
    assert!(t.d.touched.is_empty(), "dropped past the window");
}
