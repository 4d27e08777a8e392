//! Tests of the open state, one or more per clause of the module doc (O1-O5).
#![allow(clippy::unwrap_used)]
use super::*;

const R: u32 = ACCESS_READ;
const W: u32 = ACCESS_WRITE;
const RW: u32 = R | W;

fn sid(seqid: u32) -> Stateid {
    Stateid {
        seqid,
        other: [7; 12],
    }
}

#[test]
fn o1_local_opens_share_one_server_open_and_upgrades_ask_for_the_union() {
    let mut t = OpenTable::new();
    assert_eq!(t.open(&1, R), OpenPlan::Send { access: R });
    assert_eq!(t.open(&1, R), OpenPlan::Wait, "the OPEN is in flight");
    t.open_done(&1, Ok((sid(1), R)));
    assert_eq!(t.open(&1, R), OpenPlan::Covered(sid(1)));
    assert_eq!(t.io_stateid(&1, false), Some(sid(1)));
    assert_eq!(t.io_stateid(&1, true), None, "not open for write");
    assert_eq!(t.open(&1, W), OpenPlan::Send { access: RW });
    t.open_done(&1, Ok((sid(2), RW)));
    assert_eq!(t.open(&1, RW), OpenPlan::Covered(sid(2)));
    assert_eq!(t.io_stateid(&1, true), Some(sid(2)));
    let s = t.stats();
    assert_eq!((s.entries, s.local_opens, s.opens_sent), (1, 4, 2));
    t.audit().unwrap();
}

#[test]
fn o1_a_close_waits_for_an_open_in_flight_and_an_open_for_a_close() {
    let mut t = OpenTable::new();
    t.open(&1, R);
    t.open_done(&1, Ok((sid(1), R)));
    assert_eq!(t.open(&1, W), OpenPlan::Send { access: RW });
    assert_eq!(
        t.close(&1, R),
        ClosePlan::Wait,
        "no CLOSE racing the upgrade"
    );
    t.open_done(&1, Ok((sid(2), RW)));
    assert_eq!(
        t.close(&1, W),
        ClosePlan::Downgrade {
            stateid: sid(2),
            access: R
        }
    );
    assert_eq!(
        t.open(&1, R),
        OpenPlan::Wait,
        "no OPEN racing the downgrade"
    );
    t.close_done(&1, Ok(Some(sid(3))));
    assert_eq!(t.open(&1, R), OpenPlan::Covered(sid(3)));
    t.audit().unwrap();
}

#[test]
fn o2_the_newest_stateid_wins_whatever_the_order_of_replies() {
    let mut t = OpenTable::new();
    t.open(&1, R);
    t.open_done(&1, Ok((sid(5), R)));
    // An older seqid reported after (a DOWNGRADE's reply overtaken): kept the newest.
    t.open(&1, W);
    t.open_done(&1, Ok((sid(4), RW)));
    assert_eq!(t.io_stateid(&1, false), Some(sid(5)));
    // Serial-number order across the wrap.
    assert!(newer(1, u32::MAX));
    assert!(!newer(u32::MAX, 1));
    assert!(!newer(3, 3));
}

#[test]
fn o3_the_last_close_of_a_mode_downgrades_and_the_last_of_all_closes() {
    let mut t = OpenTable::new();
    t.open(&1, R);
    t.open_done(&1, Ok((sid(1), R)));
    t.open(&1, R);
    t.open(&1, W);
    t.open_done(&1, Ok((sid(2), RW)));
    assert_eq!(t.close(&1, R), ClosePlan::Nothing, "another reader");
    assert_eq!(
        t.close(&1, W),
        ClosePlan::Downgrade {
            stateid: sid(2),
            access: R
        }
    );
    t.close_done(&1, Ok(Some(sid(3))));
    assert_eq!(t.io_stateid(&1, true), None);
    assert_eq!(t.close(&1, R), ClosePlan::Close { stateid: sid(3) });
    t.close_done(&1, Ok(None));
    assert_eq!(t.stats().entries, 0);
    assert_eq!(t.close(&1, R), ClosePlan::Nothing, "closed twice: nothing");
}

#[test]
fn o3_a_failed_open_gives_back_exactly_its_own_local_open() {
    let mut t = OpenTable::new();
    t.open(&1, R);
    t.open_done(&1, Ok((sid(1), R)));
    assert_eq!(t.open(&1, W), OpenPlan::Send { access: RW });
    t.open_done(&1, Err(()));
    assert_eq!(t.io_stateid(&1, true), None);
    assert_eq!(
        t.close(&1, W),
        ClosePlan::Nothing,
        "the write open was given back"
    );
    assert_eq!(t.close(&1, R), ClosePlan::Close { stateid: sid(1) });
    t.close_done(&1, Err(()));
    assert_eq!(t.stats().entries, 0, "a failed CLOSE holds nothing here");
    // A first OPEN that fails leaves no entry.
    t.open(&2, RW);
    t.open_done(&2, Err(()));
    assert_eq!(t.stats().entries, 0);
}

#[test]
fn o4_old_stateid_retries_with_the_newest_then_seqid_zero_then_gives_up() {
    let mut t = OpenTable::new();
    t.open(&1, R);
    t.open_done(&1, Ok((sid(1), R)));
    t.open(&1, W);
    t.open_done(&1, Ok((sid(2), RW)));
    // A WRITE sent with seqid 1 while the upgrade ran: the newest.
    assert_eq!(t.old_stateid(&1, sid(1), 1), OldStateid::Retry(sid(2)));
    // Refused again with the newest: "the current one".
    assert_eq!(
        t.old_stateid(&1, sid(2), 2),
        OldStateid::Retry(sid(2).current())
    );
    assert_eq!(t.old_stateid(&1, sid(0), 3), OldStateid::GiveUp);
    assert_eq!(
        t.old_stateid(&1, sid(1), MAX_OLD_RETRIES + 1),
        OldStateid::GiveUp
    );
    let other = Stateid {
        seqid: 1,
        other: [9; 12],
    };
    assert_eq!(
        t.old_stateid(&1, other, 1),
        OldStateid::GiveUp,
        "not this open's"
    );
    assert_eq!(t.old_stateid(&5, sid(1), 1), OldStateid::GiveUp, "no open");
    assert_eq!(t.stats().old_stateid_retries, 2);
    t.audit().unwrap();
}

/// O4, O5 under a storm (seed entry 9): random opens, closes, failures, reorderings and
/// OLD_STATEID retries over a few files: the audit holds after every step, and once
/// every local open is closed the table is empty.
#[test]
fn o4_o5_random_workloads_leak_nothing() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut t: OpenTable<u8> = OpenTable::new();
    let mut open: Vec<(u8, u32)> = Vec::new(); // local opens the "application" holds
    let mut pending_open: HashMap<u8, u32> = HashMap::new(); // key -> mode of OPEN in flight
    let mut pending_close: HashMap<u8, (u32, u32)> = HashMap::new(); // key -> (mode, access)
    let mut seq: HashMap<u8, u32> = HashMap::new();
    for step in 0..20_000 {
        let key = next(4) as u8;
        match next(6) {
            0 | 1 => {
                let mode = 1 + next(3) as u32;
                match t.open(&key, mode) {
                    OpenPlan::Covered(_) => open.push((key, mode)),
                    OpenPlan::Send { access } => {
                        assert!(access & mode == mode);
                        pending_open.insert(key, mode);
                        let _ = access;
                    }
                    OpenPlan::Wait => {}
                }
            }
            2 => {
                if let Some(mode) = pending_open.remove(&key) {
                    if next(5) == 0 {
                        t.open_done(&key, Err(()));
                    } else {
                        let s = seq.entry(key).or_insert(0);
                        *s += 1;
                        let e = t.entries.get(&key).unwrap();
                        let access = e.in_use() | e.granted;
                        t.open_done(&key, Ok((sid(*s), access)));
                        open.push((key, mode));
                    }
                }
            }
            3 => {
                if open.is_empty() {
                    continue;
                }
                let i = next(open.len() as u64) as usize;
                let (k, mode) = open[i];
                match t.close(&k, mode) {
                    ClosePlan::Nothing => {
                        open.swap_remove(i);
                    }
                    ClosePlan::Downgrade { access, .. } => {
                        open.swap_remove(i);
                        pending_close.insert(k, (mode, access));
                    }
                    ClosePlan::Close { .. } => {
                        open.swap_remove(i);
                        pending_close.insert(k, (mode, 0));
                    }
                    ClosePlan::Wait => {}
                }
            }
            4 => {
                if let Some((_, access)) = pending_close.remove(&key) {
                    let r = if next(6) == 0 {
                        Err(())
                    } else if access == 0 {
                        Ok(None)
                    } else {
                        let s = seq.entry(key).or_insert(0);
                        *s += 1;
                        Ok(Some(sid(*s)))
                    };
                    t.close_done(&key, r);
                }
            }
            _ => {
                if let Some(cur) = t.entries.get(&key).and_then(|e| e.stateid) {
                    let sent = sid(cur.seqid.wrapping_sub(next(2) as u32));
                    match t.old_stateid(&key, sent, 1 + next(4) as u32) {
                        OldStateid::Retry(s) => assert!(s == cur || s == cur.current()),
                        OldStateid::GiveUp => {}
                    }
                }
            }
        }
        t.audit().unwrap_or_else(|e| panic!("step {step}: {e}"));
    }
    // Everything in flight ends, everything open is closed.
    for (k, _) in std::mem::take(&mut pending_open) {
        t.open_done(&k, Err(()));
    }
    for (k, (_, access)) in std::mem::take(&mut pending_close) {
        t.close_done(&k, if access == 0 { Ok(None) } else { Err(()) });
    }
    while let Some((k, mode)) = open.pop() {
        match t.close(&k, mode) {
            ClosePlan::Nothing => {}
            ClosePlan::Downgrade { .. } => t.close_done(&k, Err(())),
            ClosePlan::Close { .. } => t.close_done(&k, Ok(None)),
            ClosePlan::Wait => panic!("nothing is in flight"),
        }
    }
    assert_eq!(t.stats().entries, 0, "{:?}", t.entries);
}
