//! Virtual-time tests of the NFSv4.0 clients in the client table (clauses V1-V4 of
//! `clients/v40.rs`).
use super::api::*;
use super::clients::{Callback40, ClientTable, SetClientIdArgs, SetClientIdOk};
use super::error::SessionError;
use super::records::StableRecord;
use crate::v4::state::ids::{ClientId, Time, Verifier};

const LEASE: u64 = 90_000;

fn no_state(_: ClientId) -> bool {
    false
}

fn table() -> ClientTable {
    let cfg = Config {
        lease_ms: LEASE,
        courtesy_ms: 10 * LEASE,
        ..Config::default()
    };
    ClientTable::new(cfg, Vec::new(), Time(0), 7)
}

fn who(p: &str) -> Principal {
    Principal(p.as_bytes().to_vec())
}

fn cb(port: u8) -> Callback40 {
    Callback40 {
        program: 0x4000_0000,
        netid: "tcp".into(),
        uaddr: format!("127.0.0.1.3.{port}"),
        ident: 1,
    }
}

fn sc(owner: &str, verf: u8, principal: &str, port: u8) -> SetClientIdArgs {
    SetClientIdArgs {
        owner: owner.as_bytes().to_vec(),
        verifier: Verifier([verf; 8]),
        principal: who(principal),
        callback: cb(port),
    }
}

fn setclientid(t: &mut ClientTable, a: &SetClientIdArgs, now: Time) -> SetClientIdOk {
    t.setclientid(now, a, &no_state).unwrap()
}

/// SETCLIENTID + SETCLIENTID_CONFIRM by principal "p".
fn mount(t: &mut ClientTable, owner: &str, verf: u8, now: Time) -> ClientId {
    let ok = setclientid(t, &sc(owner, verf, "p", 1), now);
    t.setclientid_confirm(now, ok.clientid, ok.confirm, &who("p"))
        .unwrap();
    ok.clientid
}

#[test]
fn v1_v2_a_new_client_is_confirmed_and_recorded() {
    let mut t = table();
    let ok = setclientid(&mut t, &sc("a", 1, "p", 1), Time(0));
    assert!(ok.purge.is_empty());
    // Unconfirmed: not usable, no callback yet.
    assert_eq!(
        t.use_client40(ok.clientid, Time(1)),
        Err(SessionError::StaleClientid)
    );
    assert_eq!(t.callback40(ok.clientid), None);
    // The wrong verifier, another principal, an unknown id.
    let wrong = Verifier([9; 8]);
    assert_eq!(
        t.setclientid_confirm(Time(1), ok.clientid, wrong, &who("p")),
        Err(SessionError::StaleClientid)
    );
    assert_eq!(
        t.setclientid_confirm(Time(1), ok.clientid, ok.confirm, &who("q")),
        Err(SessionError::ClidInuse)
    );
    assert_eq!(
        t.setclientid_confirm(Time(1), ClientId(12345), ok.confirm, &who("p")),
        Err(SessionError::StaleClientid)
    );
    assert_eq!(
        t.setclientid_confirm(Time(1), ok.clientid, ok.confirm, &who("p")),
        Ok(None)
    );
    assert_eq!(t.use_client40(ok.clientid, Time(2)), Ok(()));
    assert_eq!(t.callback40(ok.clientid), Some(cb(1)));
    // A retransmitted confirm is fine.
    assert_eq!(
        t.setclientid_confirm(Time(3), ok.clientid, ok.confirm, &who("p")),
        Ok(None)
    );
    assert_eq!(
        t.take_record_changes(),
        vec![RecordChange::Insert(StableRecord {
            owner: b"a".to_vec(),
            principal: b"p".to_vec(),
        })]
    );
    assert_eq!(t.stats().clients, 1);
}

#[test]
fn v1_same_verifier_is_a_callback_update_with_the_same_id() {
    let mut t = table();
    let id = mount(&mut t, "a", 1, Time(0));
    let up = setclientid(&mut t, &sc("a", 1, "p", 2), Time(10));
    assert_eq!(up.clientid, id);
    // Pending until confirmed; the old confirm verifier still confirms nothing new.
    assert_eq!(t.callback40(id), Some(cb(1)));
    assert_eq!(
        t.setclientid_confirm(Time(11), id, up.confirm, &who("p")),
        Ok(None)
    );
    assert_eq!(t.callback40(id), Some(cb(2)));
    assert_eq!(t.use_client40(id, Time(12)), Ok(()));
}

#[test]
fn v1_v2_a_rebooted_client_gets_a_new_id_and_the_old_one_is_purged() {
    let mut t = table();
    let old = mount(&mut t, "a", 1, Time(0));
    let ok = setclientid(&mut t, &sc("a", 2, "p", 1), Time(10));
    assert_ne!(ok.clientid, old);
    // The old one still works until the new one is confirmed.
    assert_eq!(t.use_client40(old, Time(11)), Ok(()));
    assert_eq!(
        t.setclientid_confirm(Time(12), ok.clientid, ok.confirm, &who("p")),
        Ok(Some(old))
    );
    assert_eq!(t.use_client40(old, Time(13)), Err(SessionError::Expired));
    assert_eq!(
        t.use_client40(ClientId(0), Time(13)),
        Err(SessionError::StaleClientid),
        "never handed out"
    );
    assert_eq!(t.use_client40(ok.clientid, Time(13)), Ok(()));
    // A second SETCLIENTID before confirming replaces the unconfirmed record.
    let a = setclientid(&mut t, &sc("b", 1, "p", 1), Time(20));
    let b = setclientid(&mut t, &sc("b", 1, "p", 1), Time(21));
    assert_ne!(a.clientid, b.clientid);
    assert_eq!(
        t.setclientid_confirm(Time(22), a.clientid, a.confirm, &who("p")),
        Err(SessionError::StaleClientid)
    );
    assert_eq!(t.stats().unconfirmed, 1);
}

#[test]
fn v1_another_principal_is_refused_while_the_client_holds_state() {
    let mut t = table();
    let id = mount(&mut t, "a", 1, Time(0));
    assert_eq!(
        t.setclientid(Time(1), &sc("a", 1, "q", 1), &|c| c == id),
        Err(SessionError::ClidInuse)
    );
    // Without state it is taken over: the old client is purged.
    let ok = t
        .setclientid(Time(2), &sc("a", 1, "q", 1), &no_state)
        .unwrap();
    assert_eq!(ok.purge, vec![id]);
    assert_ne!(ok.clientid, id);
}

#[test]
fn v3_renew_and_state_use_keep_the_lease_and_bring_a_courtesy_client_back() {
    let mut t = table();
    let id = mount(&mut t, "a", 1, Time(0));
    t.tick(Time(LEASE / 2));
    assert_eq!(t.use_client40(id, Time(LEASE / 2)), Ok(()));
    // Renewed at LEASE/2: still active at LEASE + 1.
    assert!(t.tick(Time(LEASE + 1)).courtesy.is_empty());
    // Silent for more than a lease: courtesy; a RENEW brings it back.
    assert_eq!(t.tick(Time(2 * LEASE)).courtesy, vec![id]);
    assert_eq!(t.lease_state(id), Some(LeaseState::Courtesy));
    assert_eq!(t.use_client40(id, Time(2 * LEASE)), Ok(()));
    assert_eq!(t.lease_state(id), Some(LeaseState::Active));
    // Unconfirmed records go after a lease.
    let ok = setclientid(&mut t, &sc("b", 1, "p", 1), Time(2 * LEASE));
    t.tick(Time(3 * LEASE + 1));
    assert_eq!(
        t.setclientid_confirm(Time(3 * LEASE + 1), ok.clientid, ok.confirm, &who("p")),
        Err(SessionError::StaleClientid)
    );
}

#[test]
fn v4_a_v40_client_reclaims_through_grace_without_reclaim_complete() {
    let rec = StableRecord {
        owner: b"a".to_vec(),
        principal: b"p".to_vec(),
    };
    let cfg = Config {
        lease_ms: LEASE,
        ..Config::default()
    };
    let mut t = ClientTable::new(cfg, vec![rec], Time(0), 8);
    assert!(t.in_grace());
    let id = mount(&mut t, "a", 3, Time(1));
    assert_eq!(t.check_reclaim(id), Ok(()));
    assert!(t.reclaim_completed(id), "its new opens wait only for grace");
    let other = mount(&mut t, "z", 3, Time(1));
    assert_eq!(t.check_reclaim(other), Err(SessionError::NoGrace));
}

/// A recorded 4.0 client that comes back in grace (and never sends RECLAIM_COMPLETE, which
/// 4.0 has not) keeps its record when grace ends: it is recorded again at its confirm, and
/// the end of grace removes only the records of clients that did not come back. Without
/// this, the next restart found no record of it (pynfs REBT1 after REBT10: NO_GRACE).
#[test]
fn v4_a_v40_client_back_in_grace_keeps_its_record_when_grace_ends() {
    let rec = |o: &str| StableRecord {
        owner: o.as_bytes().to_vec(),
        principal: b"p".to_vec(),
    };
    let cfg = Config {
        lease_ms: LEASE,
        ..Config::default()
    };
    let mut t = ClientTable::new(cfg, vec![rec("a"), rec("gone")], Time(0), 8);
    let id = mount(&mut t, "a", 3, Time(1));
    assert_eq!(t.check_reclaim(id), Ok(()));
    let _ = t.take_record_changes();
    let mut now = 1;
    while t.in_grace() {
        now += 1000;
        assert_eq!(t.use_client40(id, Time(now)), Ok(()));
        t.tick(Time(now));
    }
    assert_eq!(
        t.take_record_changes(),
        vec![RecordChange::Remove(rec("gone"))],
        "only the client that did not come back"
    );
}

#[test]
fn v1_bounds_on_the_callback_address() {
    let mut t = table();
    let mut a = sc("a", 1, "p", 1);
    a.callback.uaddr = "9".repeat(200);
    assert_eq!(
        t.setclientid(Time(0), &a, &no_state),
        Err(SessionError::Inval)
    );
}
