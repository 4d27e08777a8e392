//! Tests of the client's delegations, one or more per clause of the module doc (C1-C4).
#![allow(clippy::unwrap_used)]
use super::*;

fn sid(n: u8) -> DelegStateid {
    DelegStateid {
        seqid: 1,
        other: [n; 12],
    }
}

#[test]
fn c1_a_read_delegation_serves_read_opens_and_a_write_one_all() {
    let mut t = DelegTable::new(8);
    t.granted(1u32, sid(1), Kind::Read, Time(0));
    t.granted(2u32, sid(2), Kind::Write, Time(0));
    assert!(t.open_locally(&1, false, Time(1)));
    assert!(
        !t.open_locally(&1, true, Time(1)),
        "no write under a read delegation"
    );
    assert!(t.open_locally(&2, true, Time(1)));
    assert!(!t.open_locally(&3, false, Time(1)), "none held");
    assert!(t.covers(&1, false) && !t.covers(&1, true) && t.covers(&2, true));
    // Being returned: nothing more is served under it.
    t.recall(&sid(1));
    assert!(!t.open_locally(&1, false, Time(2)));
    assert!(!t.covers(&1, false));
}

#[test]
fn c2_a_recall_is_answered_at_once_and_its_return_planned_once() {
    let mut t = DelegTable::new(8);
    t.granted(1u32, sid(1), Kind::Write, Time(0));
    assert!(t.open_locally(&1, true, Time(1)));
    assert!(t.open_locally(&1, false, Time(1)));
    assert_eq!(t.recall(&sid(1)), 0);
    assert_eq!(t.recall(&sid(1)), 0, "recalled again: queued once");
    assert_eq!(t.recall(&sid(9)), NFS4ERR_BAD_STATEID);
    let p = t.next_return().unwrap();
    assert_eq!(
        p,
        ReturnPlan {
            key: 1,
            stateid: sid(1),
            flush: true,
            local_opens: 2
        }
    );
    assert_eq!(t.next_return(), None, "once");
    t.return_done(&1, Returned::Ok);
    let s = t.stats();
    assert_eq!(
        (
            s.held,
            s.returning,
            s.recalls,
            s.recalls_unknown,
            s.returned
        ),
        (0, 0, 2, 1, 1)
    );
    // A recall of the returned one is unknown now.
    assert_eq!(t.recall(&sid(1)), NFS4ERR_BAD_STATEID);
}

#[test]
fn c3_past_the_limit_the_least_recently_used_idle_one_goes() {
    let mut t = DelegTable::new(2);
    t.granted(1u32, sid(1), Kind::Read, Time(0));
    t.granted(2u32, sid(2), Kind::Read, Time(1));
    assert!(t.open_locally(&1, false, Time(2))); // 1 is in use, and used last
    t.granted(3u32, sid(3), Kind::Read, Time(3));
    assert_eq!(
        t.next_return().unwrap().key,
        2,
        "the idle one, not the open one"
    );
    t.return_done(&2, Returned::Ok);
    // All in use: the new grant itself goes back.
    assert!(t.open_locally(&3, false, Time(4)));
    t.granted(4u32, sid(4), Kind::Read, Time(5));
    assert_eq!(t.next_return().unwrap().key, 4);
}

#[test]
fn c3_recall_any_returns_the_least_recently_used_of_the_kinds_asked() {
    let mut t = DelegTable::new(16);
    for k in 0..6u32 {
        let kind = if k % 2 == 0 { Kind::Read } else { Kind::Write };
        t.granted(k, sid(k as u8), kind, Time(u64::from(k)));
    }
    t.open_locally(&0, false, Time(10)); // the oldest read one, used last
    assert_eq!(t.recall_any(1, true, false), 0);
    let mut back = Vec::new();
    while let Some(p) = t.next_return() {
        back.push(p.key);
        t.return_done(&p.key, Returned::Ok);
    }
    back.sort();
    assert_eq!(back, vec![2, 4], "reads 2 and 4 go, 0 (used last) stays");
    assert_eq!(t.stats().held, 4);
}

#[test]
fn c4_transient_failures_retry_and_revocations_report_the_opens_lost() {
    let mut t = DelegTable::new(8);
    t.granted(1u32, sid(1), Kind::Write, Time(0));
    t.open_locally(&1, true, Time(0));
    t.recall(&sid(1));
    let p = t.next_return().unwrap();
    t.return_done(&p.key, Returned::Transient);
    t.return_done(&p.key, Returned::Transient); // twice: ignored
    let p = t.next_return().unwrap();
    assert_eq!(p.key, 1);
    t.return_done(&1, Returned::Revoked);
    assert_eq!(t.take_lost(), vec![1]);
    assert!(t.take_lost().is_empty());
    // Revoked while held, with nothing open under it: forgotten, nothing lost.
    t.granted(2u32, sid(2), Kind::Read, Time(1));
    t.revoked(&sid(2));
    assert!(t.take_lost().is_empty());
    let s = t.stats();
    assert_eq!((s.held, s.returned, s.lost), (0, 2, 1));
    // A new grant on a file replaces the old delegation's stateid.
    t.granted(3u32, sid(3), Kind::Read, Time(2));
    t.granted(3u32, sid(4), Kind::Write, Time(3));
    assert_eq!(t.recall(&sid(3)), NFS4ERR_BAD_STATEID);
    assert_eq!(t.recall(&sid(4)), 0);
    assert_eq!(t.stats().held, 1);
}
