//! Tests of the locking state (issue 14, acceptance 4 and 5): share reservations, seqid
//! rules, locks through stateids, bounds, purge; and after every error path, that nothing
//! was taken or left behind (seed entry 9): the counts are as before and the audit of
//! every reference passes.
use super::*;
use crate::v4::state::locks::{LockRequest, Locker};
use crate::v4::state::opens::OpenRequest;
use crate::v4::state::ranges::LockKind::{self, Read, Write};

const A: ClientId = ClientId(1);
const B: ClientId = ClientId(2);

fn table() -> Locking {
    Locking::new(7, Limits::default())
}
fn file(n: u8) -> FileKey {
    FileKey(vec![n])
}
fn open(
    t: &mut Locking,
    client: ClientId,
    owner: &[u8],
    f: u8,
    access: ShareAccess,
    deny: ShareDeny,
) -> Result<Stateid, LockingError> {
    t.open(&OpenRequest {
        client,
        owner: owner.to_vec(),
        file: file(f),
        access,
        deny,
        reclaim: false,
    })
    .map(|o| o.stateid)
}
// Mirrors LOCK's arguments one to one, which reads best in the tests.
#[allow(clippy::too_many_arguments)]
fn lock_new(
    t: &mut Locking,
    client: ClientId,
    open: Stateid,
    owner: &[u8],
    f: u8,
    kind: LockKind,
    offset: u64,
    length: u64,
) -> Result<Stateid, LockingError> {
    t.lock(&LockRequest {
        client,
        file: file(f),
        locker: Locker::New {
            open,
            owner: owner.to_vec(),
        },
        kind,
        offset,
        length,
    })
}
fn lock_more(
    t: &mut Locking,
    client: ClientId,
    lock: Stateid,
    f: u8,
    kind: LockKind,
    offset: u64,
    length: u64,
) -> Result<Stateid, LockingError> {
    t.lock(&LockRequest {
        client,
        file: file(f),
        locker: Locker::Existing { lock },
        kind,
        offset,
        length,
    })
}
/// The table holds exactly `before` and every reference is accounted for.
#[track_caller]
fn unchanged(t: &Locking, before: Counts) {
    assert_eq!(t.counts(), before, "the error path changed what is held");
    if let Err(e) = t.audit() {
        panic!("audit: {e}");
    }
}
#[track_caller]
fn audit(t: &Locking) {
    if let Err(e) = t.audit() {
        panic!("audit: {e}");
    }
}
fn older(s: Stateid) -> Stateid {
    Stateid {
        seqid: s.seqid - 1,
        ..s
    }
}
use ShareAccess as Acc;
use ShareDeny as Deny;

#[test]
fn open_then_close_holds_then_frees_everything() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::READ, Deny::NONE).expect("open");
    assert_eq!(s.seqid, 1);
    let c = t.counts();
    assert_eq!((c.open_owners, c.opens, c.files, c.clients), (1, 1, 1, 1));
    assert_eq!(c.references, 2, "the open holds its owner and its file");
    audit(&t);
    assert_eq!(t.close(A, &s, &file(1)), Ok(Stateid::INVALID));
    unchanged(&t, Counts::default());
    // Closed: the stateid names nothing now.
    assert_eq!(t.close(A, &s, &file(1)), Err(LockingError::BadStateid));
}

#[test]
fn a_second_open_by_the_owner_upgrades_and_bumps_the_seqid() {
    let mut t = table();
    let s1 = open(&mut t, A, b"o", 1, Acc::READ, Deny::NONE).expect("open");
    let s2 = open(&mut t, A, b"o", 1, Acc::WRITE, Deny::NONE).expect("upgrade");
    assert_eq!(s2.other, s1.other, "one open stateid per (owner, file)");
    assert_eq!(s2.seqid, 2);
    let info = t.open_info(A, &s2).expect("info");
    assert_eq!((info.access, info.deny), (Acc::BOTH, Deny::NONE));
    assert_eq!(t.counts().opens, 1);
    // Seed 9: CLOSE with the pre-upgrade stateid is OLD_STATEID and leaves all in place.
    let before = t.counts();
    assert_eq!(t.close(A, &s1, &file(1)), Err(LockingError::OldStateid));
    unchanged(&t, before);
    // Seqid 0 means "the current one" in NFSv4.1.
    let zero = Stateid { seqid: 0, ..s1 };
    assert_eq!(t.close(A, &zero, &file(1)), Ok(Stateid::INVALID));
    unchanged(&t, Counts::default());
}

#[test]
fn share_reservations_conflict_between_clients_and_owners() {
    let mut t = table();
    let a = open(&mut t, A, b"a", 1, Acc::BOTH, Deny::WRITE).expect("A opens, denying writes");
    let before = t.counts();
    // Another client wanting write access: denied, naming A; nothing created for B.
    assert_eq!(
        open(&mut t, B, b"b", 1, Acc::WRITE, Deny::NONE),
        Err(LockingError::ShareDenied { clients: vec![A] })
    );
    unchanged(&t, before);
    // Another owner of the same client is held to the reservation too.
    assert_eq!(
        open(&mut t, A, b"a2", 1, Acc::WRITE, Deny::NONE),
        Err(LockingError::ShareDenied { clients: vec![A] })
    );
    unchanged(&t, before);
    // Denying what A has (read) is refused as well.
    assert_eq!(
        open(&mut t, B, b"b", 1, Acc::READ, Deny::READ),
        Err(LockingError::ShareDenied { clients: vec![A] })
    );
    // Reading alongside is fine; another file is unaffected.
    let b = open(&mut t, B, b"b", 1, Acc::READ, Deny::NONE).expect("B reads");
    open(&mut t, B, b"b", 2, Acc::WRITE, Deny::BOTH).expect("other file");
    // An upgrade that would conflict is refused and leaves B's open as it was.
    let before = t.counts();
    assert_eq!(
        open(&mut t, B, b"b", 1, Acc::READ, Deny::WRITE),
        Err(LockingError::ShareDenied { clients: vec![A] })
    );
    unchanged(&t, before);
    assert_eq!(t.open_info(B, &b).map(|i| i.seqid), Ok(1));
    // Once A closes, B may write.
    t.close(A, &a, &file(1)).expect("close");
    open(&mut t, B, b"b", 1, Acc::WRITE, Deny::NONE).expect("now free");
    assert_eq!(t.stats().share_denied, 4);
    audit(&t);
}

#[test]
fn downgrade_only_to_what_was_opened() {
    let mut t = table();
    open(&mut t, A, b"o", 1, Acc::READ, Deny::NONE).expect("read");
    let s = open(&mut t, A, b"o", 1, Acc::WRITE, Deny::NONE).expect("write");
    let before = t.counts();
    // Never opened with deny READ: INVAL, nothing changes (seqid included).
    assert_eq!(
        t.open_downgrade(A, &s, &file(1), Acc::READ, Deny::READ),
        Err(LockingError::Inval)
    );
    unchanged(&t, before);
    assert_eq!(t.open_info(A, &s).map(|i| i.seqid), Ok(2));
    let d = t
        .open_downgrade(A, &s, &file(1), Acc::READ, Deny::NONE)
        .expect("back to read");
    assert_eq!((d.other, d.seqid), (s.other, 3));
    // The pre-downgrade stateid is old now.
    assert_eq!(
        t.open_downgrade(A, &s, &file(1), Acc::READ, Deny::NONE),
        Err(LockingError::OldStateid)
    );
    // Write was given up: it cannot come back by downgrade.
    assert_eq!(
        t.open_downgrade(A, &d, &file(1), Acc::WRITE, Deny::NONE),
        Err(LockingError::Inval)
    );
    // And another client may now deny writes.
    open(&mut t, B, b"b", 1, Acc::READ, Deny::WRITE).expect("no writer left");
    unchanged(&t, t.counts());
}

#[test]
fn stateid_rules_bad_old_stale_foreign_kind_file_special() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    let l = lock_new(&mut t, A, s, b"L", 1, Write, 0, 10).expect("lock");
    let before = t.counts();
    let f = file(1);
    let future = Stateid {
        seqid: s.seqid + 1,
        ..s
    };
    let unknown = Stateid {
        seqid: 1,
        other: Locking::new(7, Limits::default()).mint.other(99),
    };
    let stale = Stateid {
        seqid: 1,
        other: StateidMint::new(6).other(1),
    };
    let cases = [
        (
            A,
            future,
            LockingError::BadStateid,
            "seqid never handed out",
        ),
        (A, unknown, LockingError::BadStateid, "counter never minted"),
        (B, s, LockingError::BadStateid, "another client's"),
        (
            A,
            l,
            LockingError::BadStateid,
            "a lock stateid where an open is needed",
        ),
        (
            A,
            stale,
            LockingError::StaleStateid,
            "an earlier server instance",
        ),
        (A, Stateid::ANONYMOUS, LockingError::BadStateid, "anonymous"),
        (A, Stateid::BYPASS, LockingError::BadStateid, "bypass"),
        (
            A,
            Stateid::CURRENT,
            LockingError::BadStateid,
            "current, not substituted",
        ),
        (A, Stateid::INVALID, LockingError::BadStateid, "invalid"),
    ];
    for (client, sid, want, why) in cases {
        assert_eq!(t.close(client, &sid, &f), Err(want.clone()), "CLOSE: {why}");
        assert_eq!(
            t.open_downgrade(client, &sid, &f, Acc::READ, Deny::NONE),
            Err(want.clone()),
            "OPEN_DOWNGRADE: {why}"
        );
        unchanged(&t, before);
    }
    // The open on another file: BAD_STATEID.
    assert_eq!(t.close(A, &s, &file(2)), Err(LockingError::BadStateid));
    // Stale maps to BAD_STATEID in NFSv4.1.
    assert_eq!(LockingError::StaleStateid.code(), 10025);
    // TEST_STATEID tells the same story without needing a file or a kind.
    assert_eq!(t.test_stateid(A, &s), Ok(()));
    assert_eq!(t.test_stateid(A, &l), Ok(()));
    assert_eq!(t.test_stateid(B, &l), Err(LockingError::BadStateid));
    assert_eq!(t.test_stateid(A, &future), Err(LockingError::BadStateid));
    assert_eq!(
        t.test_stateid(A, &Stateid::ANONYMOUS),
        Err(LockingError::BadStateid)
    );
    let l2 = lock_more(&mut t, A, l, 1, Read, 0, 10).expect("downgrade the lock");
    assert_eq!(t.test_stateid(A, &l), Err(LockingError::OldStateid));
    assert_eq!(t.test_stateid(A, &l2), Ok(()));
    audit(&t);
    let st = t.stats();
    assert!(st.bad_stateid >= 20 && st.old_stateid == 1, "{st:?}");
}

#[test]
fn denied_lock_reports_the_holder_and_creates_nothing() {
    let mut t = table();
    let sa = open(&mut t, A, b"oa", 1, Acc::BOTH, Deny::NONE).expect("A");
    let sb = open(&mut t, B, b"ob", 1, Acc::BOTH, Deny::NONE).expect("B");
    lock_new(&mut t, A, sa, b"LA", 1, Write, 100, u64::MAX).expect("A locks to the end");
    let before = t.counts();
    let got = lock_new(&mut t, B, sb, b"LB", 1, Read, 0, 200);
    let Err(LockingError::Denied(d)) = got else {
        panic!("expected DENIED, got {got:?}");
    };
    assert_eq!((d.offset, d.length, d.kind), (100, u64::MAX, Write));
    assert_eq!(
        d.owner,
        RangeOwner::V4 {
            client: A,
            owner: b"LA".to_vec()
        }
    );
    assert_eq!(d.clients, vec![A]);
    // Seed 9: no lock owner, lock stateid or range was left behind for B.
    unchanged(&t, before);
    assert_eq!(t.counts().lock_owners, 1);
    // Below A's range B is granted.
    lock_new(&mut t, B, sb, b"LB", 1, Write, 0, 100).expect("B below");
    audit(&t);
    assert_eq!(t.stats().denied, 1);
}

#[test]
fn lock_stateid_seqids_split_merge_and_in_place_changes() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    let l1 = lock_new(&mut t, A, s, b"L", 1, Write, 0, 100).expect("lock");
    assert_eq!(l1.seqid, 1);
    // A second open_to_lock_owner for the same owner and file reuses the stateid.
    let l2 = lock_new(&mut t, A, s, b"L", 1, Write, 200, 10).expect("again");
    assert_eq!((l2.other, l2.seqid), (l1.other, 2));
    let l3 = t.unlock(A, &l2, &file(1), 40, 10).expect("split");
    assert_eq!(l3.seqid, 3);
    assert_eq!(t.counts().ranges, 3);
    let l4 = lock_more(&mut t, A, l3, 1, Write, 40, 10).expect("fill the hole: merge");
    assert_eq!(t.counts().ranges, 2);
    let l5 = lock_more(&mut t, A, l4, 1, Read, 0, 300).expect("downgrade all");
    assert_eq!(t.counts().ranges, 1);
    // Seed 9: LOCK and LOCKU with an old lock stateid change nothing.
    let before = t.counts();
    assert_eq!(
        lock_more(&mut t, A, l4, 1, Write, 0, 1),
        Err(LockingError::OldStateid)
    );
    assert_eq!(
        t.unlock(A, &l4, &file(1), 0, 1),
        Err(LockingError::OldStateid)
    );
    unchanged(&t, before);
    // Invalid ranges: INVAL, nothing changes.
    assert_eq!(
        lock_more(&mut t, A, l5, 1, Write, 5, 0),
        Err(LockingError::Inval)
    );
    assert_eq!(
        t.unlock(A, &l5, &file(1), u64::MAX, 2),
        Err(LockingError::Inval)
    );
    assert_eq!(
        lock_new(&mut t, A, s, b"other", 1, Write, 10, u64::MAX - 9),
        Err(LockingError::Inval)
    );
    unchanged(&t, before);
    let l6 = t.unlock(A, &l5, &file(1), 0, u64::MAX).expect("unlock all");
    assert_eq!(l6.seqid, 6);
    assert_eq!(t.counts().ranges, 0);
    assert_eq!(t.counts().lock_states, 1, "LOCKU keeps the stateid");
    audit(&t);
}

#[test]
fn lock_type_must_fit_the_open() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::READ, Deny::NONE).expect("read-only");
    let before = t.counts();
    assert_eq!(
        lock_new(&mut t, A, s, b"L", 1, Write, 0, 1),
        Err(LockingError::OpenMode)
    );
    unchanged(&t, before);
    lock_new(&mut t, A, s, b"L", 1, Read, 0, 1).expect("read lock");
    // The open stateid of another file cannot create lock state here.
    assert_eq!(
        lock_new(&mut t, A, s, b"L2", 2, Read, 0, 1),
        Err(LockingError::BadStateid)
    );
    audit(&t);
}

#[test]
fn lockt_tests_without_creating_state() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    lock_new(&mut t, A, s, b"L", 1, Read, 0, 10).expect("read lock");
    let before = t.counts();
    assert_eq!(t.lock_test(B, b"x", &file(1), Read, 0, 10), Ok(()));
    let got = t.lock_test(B, b"x", &file(1), Write, 5, 1);
    assert!(
        matches!(&got, Err(LockingError::Denied(d)) if d.offset == 0 && d.length == 10 && d.kind == Read),
        "{got:?}"
    );
    // The holder's own owner does not conflict with itself.
    assert_eq!(t.lock_test(A, b"L", &file(1), Write, 0, 10), Ok(()));
    // Same client, other owner: conflicts (POSIX owners, not clients).
    assert!(t.lock_test(A, b"M", &file(1), Write, 0, 10).is_err());
    assert_eq!(
        t.lock_test(B, b"x", &file(1), Write, 1, 0),
        Err(LockingError::Inval)
    );
    unchanged(&t, before);
    assert_eq!(t.stats().lock_tests, 5);
}

#[test]
fn close_with_locks_held_then_after_unlock() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    let l = lock_new(&mut t, A, s, b"L", 1, Write, 0, 10).expect("lock");
    let before = t.counts();
    assert_eq!(t.close(A, &s, &file(1)), Err(LockingError::LocksHeld));
    unchanged(&t, before);
    t.unlock(A, &l, &file(1), 0, 10).expect("unlock");
    t.close(A, &s, &file(1))
        .expect("close frees the empty lock stateid too");
    unchanged(&t, Counts::default());
    assert_eq!(t.test_stateid(A, &l), Err(LockingError::BadStateid));
}

#[test]
fn free_stateid_and_release_lockowner() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    let l = lock_new(&mut t, A, s, b"L", 1, Write, 0, 10).expect("lock");
    let before = t.counts();
    assert_eq!(t.free_stateid(A, &l), Err(LockingError::LocksHeld));
    assert_eq!(
        t.free_stateid(A, &s),
        Err(LockingError::LocksHeld),
        "an open is a lock"
    );
    assert_eq!(t.free_stateid(B, &l), Err(LockingError::BadStateid));
    assert_eq!(t.release_lock_owner(A, b"L"), Err(LockingError::LocksHeld));
    unchanged(&t, before);
    let l = t.unlock(A, &l, &file(1), 0, 10).expect("unlock");
    // FREE_STATEID takes any seqid of the stateid.
    t.free_stateid(A, &older(l)).expect("free");
    let c = t.counts();
    assert_eq!((c.lock_states, c.lock_owners, c.opens), (0, 0, 1));
    audit(&t);
    // RELEASE_LOCKOWNER frees a lock owner's empty stateids; an unknown owner is fine.
    let l = lock_new(&mut t, A, s, b"L", 1, Write, 0, 10).expect("lock again");
    t.unlock(A, &l, &file(1), 0, 10).expect("unlock");
    t.release_lock_owner(A, b"L").expect("release");
    t.release_lock_owner(A, b"nobody").expect("unknown owner");
    let c = t.counts();
    assert_eq!((c.lock_states, c.lock_owners, c.opens), (0, 0, 1));
    audit(&t);
    assert_eq!(t.stats().freed, 2);
}

#[test]
fn purging_a_courtesy_client_lets_the_conflicting_request_through() {
    let mut t = table();
    let sa = open(&mut t, A, b"oa", 1, Acc::BOTH, Deny::WRITE).expect("A");
    lock_new(&mut t, A, sa, b"LA", 1, Write, 0, 10).expect("A locks");
    open(&mut t, A, b"oa", 2, Acc::READ, Deny::NONE).expect("A, file 2");
    // B is refused and told who is in the way; the caller finds A is a courtesy client.
    let got = open(&mut t, B, b"ob", 1, Acc::BOTH, Deny::NONE);
    assert_eq!(got, Err(LockingError::ShareDenied { clients: vec![A] }));
    let p = t.purge_client(A);
    assert_eq!(
        p,
        Purged {
            opens: 2,
            lock_states: 1,
            ranges: 1,
            delegations: 0
        }
    );
    unchanged(&t, Counts::default());
    assert!(!t.has_state(A));
    let sb = open(&mut t, B, b"ob", 1, Acc::BOTH, Deny::NONE).expect("B after the purge");
    lock_new(&mut t, B, sb, b"LB", 1, Write, 0, 10).expect("B locks");
    // A's stateids are gone.
    assert_eq!(t.test_stateid(A, &sa), Err(LockingError::BadStateid));
    assert_eq!(t.purge_client(A), Purged::default());
    audit(&t);
    assert_eq!(
        t.stats().purged_clients,
        1,
        "purging a client without state counts nothing"
    );
}

#[test]
fn a_lock_denied_by_a_courtesy_client_is_granted_after_its_purge() {
    let mut t = table();
    let sa = open(&mut t, A, b"oa", 1, Acc::BOTH, Deny::NONE).expect("A");
    lock_new(&mut t, A, sa, b"LA", 1, Read, 0, 10).expect("A reads 0..10");
    let sb = open(&mut t, B, b"ob", 1, Acc::BOTH, Deny::NONE).expect("B");
    lock_new(&mut t, B, sb, b"LB", 1, Read, 5, 10).expect("B reads 5..15");
    let c = ClientId(3);
    let sc = open(&mut t, c, b"oc", 1, Acc::BOTH, Deny::NONE).expect("C");
    let before = t.counts();
    // C wants to write over both: the first holder is reported, both clients are named.
    let got = lock_new(&mut t, c, sc, b"LC", 1, Write, 0, u64::MAX);
    let Err(LockingError::Denied(d)) = got else {
        panic!("expected DENIED, got {got:?}");
    };
    assert_eq!((d.offset, d.length, d.kind), (0, 10, Read));
    assert_eq!(d.clients, vec![A, B]);
    unchanged(&t, before);
    // The caller expires the courtesy clients among them and retries.
    t.purge_client(A);
    let got = lock_new(&mut t, c, sc, b"LC", 1, Write, 0, u64::MAX);
    assert!(
        matches!(&got, Err(LockingError::Denied(d)) if d.clients == vec![B] && d.offset == 5),
        "{got:?}"
    );
    t.purge_client(B);
    let l = lock_new(&mut t, c, sc, b"LC", 1, Write, 0, u64::MAX).expect("granted");
    assert_eq!(l.seqid, 1);
    let held = t.counts();
    assert_eq!((held.clients, held.lock_states, held.ranges), (1, 1, 1));
    audit(&t);
}

#[test]
fn a_client_over_its_limit_is_refused_and_others_are_served() {
    let limits = Limits {
        states_per_client: 3,
        owners_per_client: 2,
        ranges_per_client: 2,
        states: 5,
        owners: 10,
        ranges: 3,
    };
    let mut t = Locking::new(7, limits);
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("1");
    open(&mut t, A, b"o", 2, Acc::BOTH, Deny::NONE).expect("2");
    open(&mut t, A, b"o", 3, Acc::BOTH, Deny::NONE).expect("3");
    let before = t.counts();
    assert_eq!(
        open(&mut t, A, b"o", 4, Acc::BOTH, Deny::NONE),
        Err(LockingError::Resource)
    );
    // An upgrade needs no new state: still served.
    open(&mut t, A, b"o", 3, Acc::READ, Deny::NONE).expect("upgrade");
    // A lock stateid is a state too.
    assert_eq!(
        lock_new(&mut t, A, s, b"L", 1, Write, 0, 1),
        Err(LockingError::Resource)
    );
    unchanged(&t, before);
    // B is served; when the server as a whole is full, B gets DELAY (not its fault).
    let sb = open(&mut t, B, b"p", 1, Acc::READ, Deny::NONE).expect("B 1");
    open(&mut t, B, b"p", 2, Acc::READ, Deny::NONE).expect("B 2");
    let before = t.counts();
    assert_eq!(
        open(&mut t, B, b"p", 3, Acc::READ, Deny::NONE),
        Err(LockingError::Delay)
    );
    unchanged(&t, before);
    // Owners per client: A has 1, a second and a third owner would need 2 more.
    let st = t.stats();
    assert_eq!((st.refused_client_limit, st.refused_server_limit), (2, 1));
    // Ranges: free a state first, then B's ranges meet the per-client limit of 2.
    t.close(A, &s, &file(1)).expect("close");
    let lb = lock_new(&mut t, B, sb, b"L", 1, Read, 0, 100).expect("range 1");
    let lb = lock_more(&mut t, B, lb, 1, Read, 200, 1).expect("range 2");
    let before = t.counts();
    assert_eq!(
        lock_more(&mut t, B, lb, 1, Read, 300, 1),
        Err(LockingError::Resource)
    );
    // Splitting a range by LOCKU needs one more range too.
    assert_eq!(
        t.unlock(B, &lb, &file(1), 50, 10),
        Err(LockingError::Resource)
    );
    unchanged(&t, before);
    // Filling the gap merges all into one range: no budget needed.
    lock_more(&mut t, B, lb, 1, Read, 100, 100).expect("merge");
    assert_eq!(t.counts().ranges, 1);
    audit(&t);
}

#[test]
fn io_checks_under_each_kind_of_stateid() {
    let mut t = table();
    let f = file(1);
    let r = open(&mut t, A, b"o", 1, Acc::READ, Deny::WRITE).expect("read, deny write");
    // Anonymous I/O honours deny reservations; bypass reads past them.
    assert_eq!(t.check_io(B, &Stateid::ANONYMOUS, &f, Io::Read), Ok(()));
    assert_eq!(
        t.check_io(B, &Stateid::ANONYMOUS, &f, Io::Write),
        Err(LockingError::Locked)
    );
    assert_eq!(
        t.check_io(B, &Stateid::BYPASS, &f, Io::Write),
        Err(LockingError::Locked)
    );
    assert_eq!(t.check_io(B, &Stateid::BYPASS, &f, Io::Read), Ok(()));
    assert_eq!(
        t.check_io(A, &Stateid::CURRENT, &f, Io::Read),
        Err(LockingError::BadStateid)
    );
    // The open's own access.
    assert_eq!(t.check_io(A, &r, &f, Io::Read), Ok(()));
    assert_eq!(
        t.check_io(A, &r, &f, Io::Write),
        Err(LockingError::OpenMode)
    );
    assert_eq!(
        t.check_io(A, &r, &file(2), Io::Read),
        Err(LockingError::BadStateid)
    );
    assert_eq!(
        t.check_io(B, &r, &f, Io::Read),
        Err(LockingError::BadStateid)
    );
    // A lock stateid stands for its open.
    let l = lock_new(&mut t, A, r, b"L", 1, Read, 0, 1).expect("lock");
    assert_eq!(t.check_io(A, &l, &f, Io::Read), Ok(()));
    assert_eq!(
        t.check_io(A, &l, &f, Io::Write),
        Err(LockingError::OpenMode)
    );
    // Write-only opens may read (partial-page fills), as knfsd allows.
    let w = open(&mut t, B, b"w", 2, Acc::WRITE, Deny::NONE).expect("write-only");
    assert_eq!(t.check_io(B, &w, &file(2), Io::Read), Ok(()));
    audit(&t);
}

#[test]
fn overlong_owners_and_bad_ranges_are_inval_and_create_nothing() {
    let mut t = table();
    let s = open(&mut t, A, b"o", 1, Acc::BOTH, Deny::NONE).expect("open");
    let before = t.counts();
    let long = vec![b'x'; OWNER_MAX + 1];
    assert_eq!(
        open(&mut t, A, &long, 2, Acc::READ, Deny::NONE),
        Err(LockingError::Inval)
    );
    assert_eq!(
        lock_new(&mut t, A, s, &long, 1, Read, 0, 1),
        Err(LockingError::Inval)
    );
    assert_eq!(
        t.lock_test(A, &long, &file(1), Read, 0, 1),
        Err(LockingError::Inval)
    );
    assert_eq!(t.release_lock_owner(A, &long), Err(LockingError::Inval));
    unchanged(&t, before);
    // The longest owner allowed is fine.
    let max = vec![b'x'; OWNER_MAX];
    lock_new(&mut t, A, s, &max, 1, Read, 0, 1).expect("1024-byte owner");
    audit(&t);
}

#[test]
fn reclaims_are_recorded() {
    let mut t = table();
    let o = t
        .open(&OpenRequest {
            client: A,
            owner: b"o".to_vec(),
            file: file(1),
            access: Acc::READ,
            deny: Deny::NONE,
            reclaim: true,
        })
        .expect("reclaim");
    assert!(t.open_info(A, &o.stateid).map(|i| i.reclaimed) == Ok(true));
    assert_eq!(t.stats().reclaims, 1);
}

/// One step of a random workload. `usize` picks a stateid among all handed out so far (old
/// versions and special ones included); the step then acts as that stateid's client on its
/// file, unless `stray` is set, when it uses its own client `u8` and file `u8` instead
/// (another client's stateid, the wrong file).
#[derive(Debug, Clone)]
enum Step {
    Open(u8, u8, u8, u32, u32),
    Close(Pick),
    Downgrade(Pick, u32, u32),
    LockNew(Pick, u8, bool, u64, u64),
    LockMore(Pick, bool, u64, u64),
    Unlock(Pick, u64, u64),
    Free(Pick),
    Release(u8, u8),
    Purge(u8),
}

/// Which stateid a step uses, and whether it strays to another client or file.
#[derive(Debug, Clone, Copy)]
struct Pick {
    index: usize,
    stray: bool,
    client: u8,
    file: u8,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let pick = (any::<usize>(), prop::bool::weighted(0.1), 0u8..2, 0u8..2).prop_map(
        |(index, stray, client, file)| Pick {
            index,
            stray,
            client,
            file,
        },
    );
    let len = prop_oneof![6 => 1u64..8, 1 => Just(u64::MAX), 1 => Just(0u64)];
    let deny = prop_oneof![3 => Just(0u32), 1 => 0u32..4];
    prop_oneof![
        3 => (0u8..2, 0u8..2, 0u8..2, 1u32..4, deny.clone())
            .prop_map(|(c, o, f, a, d)| Step::Open(c, o, f, a, d)),
        1 => pick.clone().prop_map(Step::Close),
        1 => (pick.clone(), 1u32..4, deny).prop_map(|(p, a, d)| Step::Downgrade(p, a, d)),
        3 => (pick.clone(), 0u8..2, any::<bool>(), 0u64..16, len.clone())
            .prop_map(|(p, o, w, a, l)| Step::LockNew(p, o, w, a, l)),
        3 => (pick.clone(), any::<bool>(), 0u64..16, len.clone())
            .prop_map(|(p, w, a, l)| Step::LockMore(p, w, a, l)),
        2 => (pick.clone(), 0u64..16, len).prop_map(|(p, a, l)| Step::Unlock(p, a, l)),
        1 => pick.prop_map(Step::Free),
        1 => (0u8..2, 0u8..2).prop_map(|(c, o)| Step::Release(c, o)),
        1 => (0u8..6).prop_map(Step::Purge),
    ]
}

proptest::proptest! {
    /// Whatever a pair of clients do, with limits small enough to be hit: every refused
    /// request leaves the table exactly as it was, every reference is accounted for after
    /// every step, no client or the server exceeds its limits, and purging both clients
    /// leaves nothing.
    #[test]
    fn random_workloads_leak_nothing(steps in proptest::collection::vec(step(), 1..80)) {
        let limits = Limits {
            states_per_client: 4,
            owners_per_client: 3,
            ranges_per_client: 4,
            states: 7,
            owners: 5,
            ranges: 6,
        };
        let mut t = Locking::new(7, limits);
        // (client, file, stateid) of everything handed out, and two special stateids.
        let mut pool: Vec<(u8, u8, Stateid)> =
            vec![(0, 0, Stateid::ANONYMOUS), (1, 1, Stateid::CURRENT)];
        let client = |c: u8| ClientId(u64::from(c) + 1);
        for s in steps {
            let before = t.counts();
            let at = |p: Pick| {
                let (c, f, sid) = pool[p.index % pool.len()];
                if p.stray { (client(p.client), p.file, sid) } else { (client(c), f, sid) }
            };
            let kind = |w: bool| if w { Write } else { Read };
            let got: Result<Option<(ClientId, u8, Stateid)>, LockingError> = match s {
                Step::Open(c, o, f, a, d) => open(
                    &mut t,
                    client(c),
                    &[o],
                    f,
                    ShareAccess::from_bits(a).expect("1..4"),
                    ShareDeny::from_bits(d).expect("0..4"),
                )
                .map(|sid| Some((client(c), f, sid))),
                Step::Close(p) => {
                    let (c, f, sid) = at(p);
                    t.close(c, &sid, &file(f)).map(|_| None)
                }
                Step::Downgrade(p, a, d) => {
                    let (c, f, sid) = at(p);
                    t.open_downgrade(
                        c,
                        &sid,
                        &file(f),
                        ShareAccess::from_bits(a).expect("1..4"),
                        ShareDeny::from_bits(d).expect("0..4"),
                    )
                    .map(|sid| Some((c, f, sid)))
                }
                Step::LockNew(p, o, w, a, l) => {
                    let (c, f, sid) = at(p);
                    lock_new(&mut t, c, sid, &[b'L', o], f, kind(w), a, l).map(|sid| Some((c, f, sid)))
                }
                Step::LockMore(p, w, a, l) => {
                    let (c, f, sid) = at(p);
                    lock_more(&mut t, c, sid, f, kind(w), a, l).map(|sid| Some((c, f, sid)))
                }
                Step::Unlock(p, a, l) => {
                    let (c, f, sid) = at(p);
                    t.unlock(c, &sid, &file(f), a, l).map(|sid| Some((c, f, sid)))
                }
                Step::Free(p) => {
                    let (c, _, sid) = at(p);
                    t.free_stateid(c, &sid).map(|_| None)
                }
                Step::Release(c, o) => t.release_lock_owner(client(c), &[b'L', o]).map(|_| None),
                Step::Purge(c) => {
                    // Rarely: 2 in 6.
                    if c < 2 {
                        t.purge_client(client(c));
                    }
                    Ok(None)
                }
            };
            match got {
                Ok(Some((c, f, sid))) => pool.push(((c.0 - 1) as u8, f, sid)),
                Ok(None) => {}
                Err(e) => proptest::prop_assert_eq!(t.counts(), before, "{:?} changed state", e),
            }
            if let Err(e) = t.audit() {
                proptest::prop_assert!(false, "audit after {:?}: {}", s, e);
            }
            for u in t.clients.values() {
                proptest::prop_assert!(u.states.len() <= limits.states_per_client);
                proptest::prop_assert!(u.owners <= limits.owners_per_client);
                proptest::prop_assert!(u.ranges <= limits.ranges_per_client);
            }
            let c = t.counts();
            proptest::prop_assert!(c.opens + c.lock_states <= limits.states);
            proptest::prop_assert!(c.open_owners + c.lock_owners <= limits.owners);
            proptest::prop_assert!(c.ranges <= limits.ranges);
        }
        t.purge_client(client(0));
        t.purge_client(client(1));
        proptest::prop_assert_eq!(t.counts(), Counts::default());
    }
}
