//! Tests of the recovery state machine, one or more per clause of the module doc (R1-R7),
//! in virtual time.
#![allow(clippy::unwrap_used)]
use super::*;

const LEASE: u64 = 15_000;

/// Runs every task that is due at `now`, each answered by `answer`; the tasks run, in
/// order.
fn run(r: &mut Recovery, now: u64, mut answer: impl FnMut(Task) -> TaskResult) -> Vec<Task> {
    let mut ran = Vec::new();
    while let Some(t) = r.next_task(Time(now)) {
        ran.push(t);
        r.task_done(t, answer(t), Time(now));
        assert!(ran.len() < 50, "runaway: {ran:?}");
    }
    ran
}

fn ready() -> Recovery {
    let mut r = Recovery::new(LEASE);
    run(&mut r, 0, |_| TaskResult::Done);
    r.sequence_ok(Time(0), 0);
    assert_eq!(r.phase(), Phase::Ready);
    r
}

#[test]
fn r1_a_new_client_exchanges_ids_makes_a_session_and_says_reclaim_complete() {
    let mut r = Recovery::new(LEASE);
    assert!(r.holds_ordinary_calls());
    let ran = run(&mut r, 0, |_| TaskResult::Done);
    assert_eq!(
        ran,
        vec![Task::ExchangeId, Task::CreateSession, Task::ReclaimComplete]
    );
    assert_eq!(r.phase(), Phase::Ready);
    assert!(!r.holds_ordinary_calls());
}

#[test]
fn r2_a_lost_session_makes_a_new_one_on_the_same_client_id_and_reclaims_nothing() {
    let mut r = ready();
    r.set_holds_state(true);
    r.trouble(Trouble::SessionGone);
    r.trouble(Trouble::SessionGone); // many calls in flight say it
    assert!(r.holds_ordinary_calls());
    assert_eq!(
        run(&mut r, 1, |_| TaskResult::Done),
        vec![Task::CreateSession]
    );
    assert_eq!(r.phase(), Phase::Ready);
    assert_eq!(r.stats().session_resets, 1);
    assert!(!r.take_lost());
}

#[test]
fn r2_a_session_refused_for_a_stale_client_id_becomes_a_restart() {
    let mut r = ready();
    r.set_holds_state(true);
    r.trouble(Trouble::SessionGone);
    // The first CREATE_SESSION finds the client id gone; the next one works.
    let mut first = true;
    let ran = run(&mut r, 1, |t| {
        if t == Task::CreateSession && std::mem::take(&mut first) {
            TaskResult::Failed(Trouble::StaleClientId)
        } else {
            TaskResult::Done
        }
    });
    assert_eq!(
        ran,
        vec![
            Task::CreateSession,
            Task::ExchangeId,
            Task::CreateSession,
            Task::Reclaim,
            Task::ReclaimComplete
        ]
    );
    assert_eq!(r.phase(), Phase::Ready);
    let s = r.stats();
    assert_eq!((s.session_resets, s.client_resets, s.state_lost), (1, 1, 0));
}

#[test]
fn r3_a_server_restart_reclaims_in_grace_before_any_ordinary_call() {
    let mut r = ready();
    r.set_holds_state(true);
    r.trouble(Trouble::StaleClientId);
    r.trouble(Trouble::StaleClientId);
    let ran = run(&mut r, 5, |_| TaskResult::Done);
    assert_eq!(
        ran,
        vec![
            Task::ExchangeId,
            Task::CreateSession,
            Task::Reclaim,
            Task::ReclaimComplete
        ]
    );
    assert_eq!(r.phase(), Phase::Ready);
    assert_eq!(r.stats().client_resets, 1, "asked twice, done once");

    // Ordinary calls wait through the reclaim.
    let mut r = ready();
    r.set_holds_state(true);
    r.sequence_ok(Time(1), flags::RESTART_RECLAIM_NEEDED);
    for expect in [Task::ExchangeId, Task::CreateSession, Task::Reclaim] {
        let t = r.next_task(Time(2)).unwrap();
        assert_eq!(t, expect);
        assert!(r.holds_ordinary_calls(), "{t:?}");
        r.task_done(t, TaskResult::Done, Time(2));
    }
    assert_eq!(r.phase(), Phase::Reclaiming);
    let t = r.next_task(Time(2)).unwrap();
    r.task_done(t, TaskResult::Done, Time(2));
    assert!(!r.holds_ordinary_calls());
}

#[test]
fn r3_a_restart_with_nothing_held_reclaims_nothing_and_no_grace_loses_the_state() {
    let mut r = ready();
    r.trouble(Trouble::StaleClientId);
    let ran = run(&mut r, 5, |_| TaskResult::Done);
    assert!(!ran.contains(&Task::Reclaim), "{ran:?}");
    assert!(!r.take_lost());

    let mut r = ready();
    r.set_holds_state(true);
    r.trouble(Trouble::StaleClientId);
    let ran = run(&mut r, 5, |t| match t {
        Task::Reclaim => TaskResult::Failed(Trouble::NoGrace),
        _ => TaskResult::Done,
    });
    assert_eq!(ran.last(), Some(&Task::ReclaimComplete));
    assert_eq!(r.phase(), Phase::Ready);
    assert!(r.take_lost());
    assert!(!r.take_lost(), "told once");
    assert_eq!(r.stats().state_lost, 1);
}

#[test]
fn r4_an_expired_lease_loses_the_state_and_starts_afresh_without_reclaims() {
    for how in 0..2 {
        let mut r = ready();
        r.set_holds_state(true);
        if how == 0 {
            r.trouble(Trouble::Expired);
        } else {
            r.sequence_ok(Time(3), flags::EXPIRED_ALL_STATE_REVOKED);
        }
        assert!(r.take_lost());
        let ran = run(&mut r, 5, |_| TaskResult::Done);
        assert_eq!(
            ran,
            vec![Task::ExchangeId, Task::CreateSession, Task::ReclaimComplete]
        );
        assert_eq!(r.phase(), Phase::Ready);
    }
}

#[test]
fn r5_an_idle_client_renews_at_two_thirds_of_the_lease_counted_from_the_send() {
    let mut r = ready();
    // A SEQUENCE sent at 1000 but answered later renews from 1000.
    r.sequence_ok(Time(1_000), 0);
    r.sequence_ok(Time(500), 0); // an older one answered late changes nothing
    assert!(!r.tick(Time(10_999)));
    assert_eq!(r.next_task(Time(10_999)), None);
    assert!(!r.tick(Time(11_000)));
    assert_eq!(r.next_task(Time(11_000)), Some(Task::Renew));
    assert!(!r.tick(Time(12_000)));
    assert_eq!(r.next_task(Time(12_000)), None, "one at a time, once");
    r.task_done(
        Task::Renew,
        TaskResult::Failed(Trouble::Transient),
        Time(12_000),
    );
    // No renewal for a whole lease: lapsed.
    assert!(r.tick(Time(16_000)));
    r.sequence_ok(Time(16_000), 0);
    assert!(!r.tick(Time(16_001)));
    assert_eq!(r.stats().renewals, 1);
}

#[test]
fn r6_flags_and_connections_queue_each_task_once() {
    let mut r = ready();
    for _ in 0..3 {
        r.sequence_ok(
            Time(1),
            flags::CB_PATH_DOWN | flags::RECALLABLE_STATE_REVOKED,
        );
        r.connection_replaced();
    }
    r.trouble(Trouble::ConnNotBound);
    let ran = run(&mut r, 2, |_| TaskResult::Done);
    assert_eq!(
        ran,
        vec![Task::BindConn, Task::FreeRevoked, Task::FixBackchannel]
    );
    assert!(
        !r.holds_ordinary_calls(),
        "none of these holds ordinary calls"
    );
}

#[test]
fn r7_transient_failures_back_off_doubling_to_a_bound() {
    let mut r = Recovery::new(LEASE);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..10 {
        let t = loop {
            if let Some(t) = r.next_task(Time(now)) {
                break t;
            }
            now += 1;
        };
        assert_eq!(t, Task::ExchangeId);
        waits.push(now);
        r.task_done(t, TaskResult::Failed(Trouble::Transient), Time(now));
    }
    let gaps: Vec<u64> = waits.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 15_000]
    );
    r.task_done(Task::ExchangeId, TaskResult::Done, Time(now)); // not running: ignored
    let t = r.next_task(Time(now + 15_000)).unwrap();
    r.task_done(t, TaskResult::Done, Time(now + 15_000));
    assert_eq!(
        r.next_task(Time(now + 15_000)),
        Some(Task::CreateSession),
        "no back-off left"
    );
    assert_eq!(r.stats().retries, 10);
}
