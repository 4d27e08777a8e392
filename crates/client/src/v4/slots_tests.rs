//! Tests of the slot table, one or more per clause of the module doc (S1-S6), in virtual
//! time.
#![allow(clippy::unwrap_used)]
use super::*;

const T0: Time = Time(0);

fn ok(highest: u32, target: u32) -> SeqResult {
    SeqResult::Ok { highest, target }
}

fn got(t: &mut SlotTable, call: u64, class: Class) -> Grant {
    t.acquire(CallId(call), class, T0)
        .unwrap_or_else(|| panic!("call {call} got no slot: {:?}", t.stats()))
}

#[test]
fn s1_each_slot_counts_its_own_seqids() {
    let mut t = SlotTable::new(4);
    let a = got(&mut t, 1, Class::Normal);
    let b = got(&mut t, 2, Class::Normal);
    assert_eq!((a.slot, a.seqid, a.highest_slotid), (0, 1, 0));
    assert_eq!((b.slot, b.seqid, b.highest_slotid), (1, 1, 1));
    assert_eq!(t.complete(&a, ok(3, 3), T0).next, Next::Done);
    let c = got(&mut t, 3, Class::Normal);
    assert_eq!((c.slot, c.seqid, c.highest_slotid), (0, 2, 1));
    // A DELAY leaves the slot where it was: the call goes again with the same seqid.
    assert_eq!(t.complete(&c, SeqResult::Delay, T0).next, Next::Delay);
    let c2 = got(&mut t, 3, Class::Normal);
    assert_eq!((c2.slot, c2.seqid), (0, 2));
}

#[test]
fn s1_a_reply_lost_to_a_timeout_does_not_wedge_its_slot() {
    // The server never saw the lost call: the next one is misordered, steps back, goes.
    let mut t = SlotTable::new(1);
    let a = got(&mut t, 1, Class::Normal);
    assert_eq!(t.complete(&a, ok(0, 0), T0).next, Next::Done);
    let lost = got(&mut t, 2, Class::Normal);
    assert_eq!(lost.seqid, 2);
    assert_eq!(t.complete(&lost, SeqResult::Lost, T0).next, Next::Unknown);
    let b = got(&mut t, 3, Class::Normal);
    assert_eq!(b.seqid, 3);
    assert_eq!(t.complete(&b, SeqResult::Misordered, T0).next, Next::Retry);
    let b2 = got(&mut t, 3, Class::Normal);
    assert_eq!(
        (b2.slot, b2.seqid),
        (0, 2),
        "the lost call's seqid, now for this one"
    );
    assert_eq!(t.complete(&b2, ok(0, 0), T0).next, Next::Done);
    assert_eq!(got(&mut t, 4, Class::Normal).seqid, 3);

    // The server did run the lost call: the next seqid is simply accepted.
    let mut t = SlotTable::new(1);
    let lost = got(&mut t, 1, Class::Normal);
    t.complete(&lost, SeqResult::Lost, T0);
    let b = got(&mut t, 2, Class::Normal);
    assert_eq!(b.seqid, 2);
    assert_eq!(t.complete(&b, ok(0, 0), T0).next, Next::Done);
    let s = t.stats();
    assert_eq!((s.lost, s.misordered, s.retired, s.busy), (1, 0, 0, 0));
}

#[test]
fn s1_a_slot_the_server_disagrees_with_is_retired_and_all_retired_asks_for_a_session() {
    let mut t = SlotTable::new(2);
    let a = got(&mut t, 1, Class::Privileged);
    assert_eq!(t.complete(&a, SeqResult::Misordered, T0).next, Next::Retry);
    assert_eq!(t.stats().retired, 1);
    let b = got(&mut t, 2, Class::Normal);
    assert_eq!(b.slot, 1, "the retired slot is not used again");
    assert_eq!(
        t.complete(&b, SeqResult::Misordered, T0).next,
        Next::Recover
    );
    assert!(t.needs_reset());
    assert_eq!(t.acquire(CallId(3), Class::Privileged, T0), None);
    let woken = t.reset(2, Time(5));
    assert_eq!(woken.len(), 1);
    assert_eq!(
        (woken[0].call, woken[0].slot, woken[0].seqid),
        (CallId(3), 0, 1)
    );
}

#[test]
fn s1_retry_uncached_moves_the_slot_and_leaves_the_outcome_to_the_caller() {
    let mut t = SlotTable::new(1);
    let a = got(&mut t, 1, Class::Normal);
    assert_eq!(
        t.complete(&a, SeqResult::RetryUncached, T0).next,
        Next::Unknown
    );
    assert_eq!(got(&mut t, 2, Class::Normal).seqid, 2);
}

/// Seed entry 3: the state manager drains the table for a session reset while every
/// ordinary call in flight waits, at the server, on a delegation the client must return
/// (the worst case: the server answers none of them until the DELEGRETURN arrives). The
/// DELEGRETURN gets the slot kept from ordinary calls at once, drain or not; its reply
/// releases the others, the drain ends, and the waiters go on the new session. Without
/// S3, the DELEGRETURN would wait for the drain, which waits for calls that wait for it.
#[test]
fn s3_seed_entry_3_a_delegreturn_during_a_drain_never_waits_for_it() {
    let mut t = SlotTable::new(4);
    // Ordinary calls take what they may: three of four slots.
    let held: Vec<Grant> = (1..=3).map(|c| got(&mut t, c, Class::Normal)).collect();
    assert_eq!(
        t.acquire(CallId(4), Class::Normal, Time(1)),
        None,
        "one slot kept"
    );
    t.start_drain();
    assert_eq!(t.acquire(CallId(5), Class::Normal, Time(2)), None);
    // The DELEGRETURN, while draining and with every ordinary slot busy.
    let d = t
        .acquire(CallId(99), Class::Privileged, Time(3))
        .expect("the privileged path never waits for the drain");
    assert_eq!(d.slot, 3);
    assert!(!t.is_drained());
    // Its reply comes; the server then answers the ordinary calls.
    let c = t.complete(&d, ok(3, 3), Time(4));
    assert_eq!(
        (c.next, c.woken),
        (Next::Done, vec![]),
        "no ordinary call during a drain"
    );
    for g in &held {
        let c = t.complete(g, SeqResult::SessionGone, Time(5));
        assert_eq!(c.next, Next::Recover);
        assert!(c.woken.is_empty());
    }
    assert!(t.is_drained());
    // The state manager makes a new session, ends the drain: the waiters go, in order,
    // and the three to resend ask again behind them.
    assert!(t.reset(4, Time(6)).is_empty(), "still draining");
    let woken = t.end_drain(Time(7));
    assert_eq!(
        woken
            .iter()
            .map(|g| (g.call, g.slot, g.seqid))
            .collect::<Vec<_>>(),
        vec![(CallId(4), 0, 1), (CallId(5), 1, 1)]
    );
    assert_eq!(t.stats().max_wait_ms, 6);
}

#[test]
fn s3_a_waiting_privileged_call_goes_before_ordinary_ones_even_while_draining() {
    let mut t = SlotTable::new(1);
    let a = got(&mut t, 1, Class::Normal);
    assert_eq!(t.acquire(CallId(2), Class::Normal, T0), None);
    assert_eq!(t.acquire(CallId(3), Class::Normal, T0), None);
    t.start_drain();
    assert_eq!(t.acquire(CallId(4), Class::Privileged, T0), None);
    let c = t.complete(&a, ok(0, 0), Time(10));
    assert_eq!(c.woken.len(), 1);
    assert_eq!(c.woken[0].call, CallId(4));
    let c = t.complete(&c.woken[0], ok(0, 0), Time(11));
    assert!(
        c.woken.is_empty(),
        "ordinary calls wait for the drain's end"
    );
    let w = t.end_drain(Time(12));
    assert_eq!(
        w.iter().map(|g| g.call).collect::<Vec<_>>(),
        vec![CallId(2)]
    );
    let c = t.complete(&w[0], ok(0, 0), Time(13));
    assert_eq!(c.woken[0].call, CallId(3), "first come, first served");
}

#[test]
fn s3_a_single_slot_is_shared_and_two_keep_one_for_returns() {
    let mut t = SlotTable::new(1);
    let a = got(&mut t, 1, Class::Normal);
    t.complete(&a, ok(0, 0), T0);
    let mut t = SlotTable::new(2);
    let _a = got(&mut t, 1, Class::Normal);
    assert_eq!(t.acquire(CallId(2), Class::Normal, T0), None);
    let p = got(&mut t, 3, Class::Privileged);
    assert_eq!(p.slot, 1);
}

#[test]
fn s4_the_servers_target_and_highest_bound_the_table() {
    let mut t = SlotTable::new(8);
    let a = got(&mut t, 1, Class::Normal);
    // The server wants at most slots 0-1 used, and still has all eight.
    t.complete(&a, ok(7, 1), T0);
    assert_eq!(t.stats().usable, 2);
    let b = got(&mut t, 2, Class::Privileged);
    let c = got(&mut t, 3, Class::Privileged);
    assert_eq!((b.slot, c.slot), (0, 1));
    assert_eq!(t.acquire(CallId(4), Class::Privileged, T0), None);
    // It gives more back, up to what was negotiated, never past.
    let w = t.complete(&b, ok(7, 100), T0).woken;
    assert_eq!(w.len(), 1);
    assert_eq!(t.stats().usable, 8);
    // It shrinks its highest: the free slots above are retired.
    t.complete(&c, ok(2, 2), T0);
    let s = t.stats();
    assert_eq!((s.usable, s.retired), (3, 5));
    // BADSLOT retires the slot and those above it.
    let mut t = SlotTable::new(4);
    let held: Vec<Grant> = (1..=3).map(|c| got(&mut t, c, Class::Normal)).collect();
    assert_eq!(held[2].slot, 2);
    assert_eq!(
        t.complete(&held[2], SeqResult::BadSlot, T0).next,
        Next::Retry
    );
    assert_eq!(t.stats().retired, 2);
}

#[test]
fn s5_calls_of_an_old_session_are_told_to_recover_and_hold_nothing_new() {
    let mut t = SlotTable::new(2);
    let a = got(&mut t, 1, Class::Privileged);
    t.complete(&a, ok(1, 1), T0);
    let b = got(&mut t, 2, Class::Privileged);
    assert_eq!(b.seqid, 2);
    t.reset(2, T0);
    assert!(!t.is_drained(), "the old call is still out");
    // The new session's slot 0 starts afresh, whatever the old call does.
    let c = got(&mut t, 3, Class::Privileged);
    assert_eq!((c.slot, c.seqid, c.generation), (0, 1, 1));
    assert_eq!(t.complete(&b, ok(1, 1), T0).next, Next::Recover);
    assert_eq!(
        t.complete(&b, ok(1, 1), T0).next,
        Next::Done,
        "twice: nothing"
    );
    t.complete(&c, ok(1, 1), T0);
    assert!(t.is_drained());
}

#[test]
fn s6_a_queued_call_that_gives_up_leaves_the_queue_and_reports_twice_change_nothing() {
    let mut t = SlotTable::new(1);
    let a = got(&mut t, 1, Class::Normal);
    assert_eq!(t.acquire(CallId(2), Class::Normal, T0), None);
    assert!(t.cancel(CallId(2)));
    assert!(!t.cancel(CallId(2)));
    let c = t.complete(&a, ok(0, 0), T0);
    assert!(c.woken.is_empty());
    assert_eq!(t.complete(&a, ok(0, 0), T0).next, Next::Done);
    let s = t.stats();
    assert_eq!((s.busy, s.waiting), (0, 0));
    assert_eq!(got(&mut t, 3, Class::Normal).seqid, 2, "counted once");
}

/// S6 under a storm: many calls of both classes, every outcome the receiver can report,
/// drains and resets at random points (a fixed seed): every call ends exactly once, and
/// the table ends empty with no slot wedged.
#[test]
fn s6_nothing_leaks_whatever_the_outcomes() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut t = SlotTable::new(6);
    let mut in_flight: Vec<Grant> = Vec::new();
    let mut to_send: Vec<CallId> = Vec::new();
    let mut ended = std::collections::HashSet::new();
    let mut now = 0;
    let calls = 2000u64;
    let mut started = 0u64;
    while ended.len() < calls as usize {
        now += 1;
        let now_t = Time(now);
        if started < calls && next(3) > 0 {
            started += 1;
            let class = if next(5) == 0 {
                Class::Privileged
            } else {
                Class::Normal
            };
            // Privileged calls keep their class on resend; good enough: class by id.
            let id = CallId(started * 2 + u64::from(class == Class::Privileged));
            if let Some(g) = t.acquire(id, class, now_t) {
                in_flight.push(g);
            }
        }
        for id in std::mem::take(&mut to_send) {
            let class = if id.0 % 2 == 1 {
                Class::Privileged
            } else {
                Class::Normal
            };
            if let Some(g) = t.acquire(id, class, now_t) {
                in_flight.push(g);
            }
        }
        if !in_flight.is_empty() && next(2) == 0 {
            let g = in_flight.swap_remove(next(in_flight.len() as u64) as usize);
            let result = match next(10) {
                0 => SeqResult::Lost,
                1 => SeqResult::Delay,
                2 => SeqResult::Misordered,
                3 => SeqResult::SessionGone,
                _ => ok(5, 5),
            };
            let c = t.complete(&g, result, now_t);
            match c.next {
                Next::Done | Next::Unknown => assert!(ended.insert(g.call), "{g:?} ended twice"),
                Next::Retry | Next::Delay | Next::Recover => to_send.push(g.call),
            }
            in_flight.extend(c.woken);
        }
        if next(200) == 0 && !t.is_draining() {
            t.start_drain();
        }
        if t.is_draining() && t.is_drained() || t.needs_reset() {
            let mut w = t.reset(6, now_t);
            w.extend(t.end_drain(now_t));
            in_flight.extend(w);
        }
        assert!(now < 1_000_000, "no progress: {:?}", t.stats());
    }
    let s = t.stats();
    assert_eq!((s.busy, s.waiting), (0, 0), "{s:?}");
    assert!(in_flight.is_empty() && to_send.is_empty());
}
