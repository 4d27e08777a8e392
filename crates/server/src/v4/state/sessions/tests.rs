//! Virtual-time tests of the client and session table (clauses C1-C7 of [`super::clients`]).
use super::api::*;
use super::clients::ClientTable;
use super::error::SessionError;
use super::records::StableRecord;
use super::slots::RequestDigest;
use crate::v4::state::ids::{ClientId, SessionId, Time, Verifier};

const LEASE: u64 = 90_000;
const CONN: ConnId = ConnId(1);

/// The open and lock tables' answer for a client without opens or locks.
fn no_state(_: ClientId) -> bool {
    false
}

fn cfg() -> Config {
    Config {
        lease_ms: LEASE,
        courtesy_ms: 10 * LEASE,
        ..Config::default()
    }
}

fn table() -> ClientTable {
    ClientTable::new(cfg(), Vec::new(), Time(0), 7)
}

fn who(p: &str) -> Principal {
    Principal(p.as_bytes().to_vec())
}

fn exid(owner: &str, verf: u8, principal: &str, update: bool) -> ExchangeIdArgs {
    ExchangeIdArgs {
        owner: owner.as_bytes().to_vec(),
        verifier: Verifier([verf; 8]),
        principal: who(principal),
        update,
    }
}

fn attrs(slots: u32) -> ChannelAttrs {
    ChannelAttrs {
        header_pad_size: 0,
        max_request_size: 1 << 20,
        max_response_size: 1 << 20,
        max_response_size_cached: 4096,
        max_operations: 16,
        max_requests: slots,
    }
}

fn cs_args(id: ClientId, sequence: u32, principal: &str) -> CreateSessionArgs {
    CreateSessionArgs {
        clientid: id,
        sequence,
        principal: who(principal),
        back_chan: true,
        fore: attrs(64),
        back: attrs(2),
        conn: CONN,
    }
}

/// EXCHANGE_ID + CREATE_SESSION for `owner` by principal "p" at `now`.
fn mount(t: &mut ClientTable, owner: &str, now: Time) -> (ClientId, SessionId) {
    let ok = t
        .exchange_id(now, &exid(owner, 1, "p", false), &no_state)
        .unwrap();
    let cs = t
        .create_session(now, &cs_args(ok.clientid, ok.sequenceid, "p"))
        .unwrap();
    (ok.clientid, cs.reply.sessionid)
}

fn seq_args(sid: SessionId, slot: u32, seqid: u32, req: &str) -> SequenceArgs {
    SequenceArgs {
        sessionid: sid,
        sequenceid: seqid,
        slotid: slot,
        highest_slotid: slot,
        cachethis: true,
        digest: RequestDigest::of(req.as_bytes()),
        conn: CONN,
        callback: CallbackHealth::default(),
    }
}

fn seq(t: &mut ClientTable, now: Time, args: &SequenceArgs) -> Result<SequenceOk, SessionError> {
    match t.sequence(now, args)? {
        SequenceOutcome::Execute(ok) => {
            t.sequence_done(args.sessionid, args.slotid, b"reply")
                .unwrap();
            Ok(ok)
        }
        SequenceOutcome::Replay(r) => panic!("unexpected replay {r:?}"),
    }
}

// C1: EXCHANGE_ID, case by case (RFC 8881 18.35.5).

#[test]
fn case1_new_owner_gets_unconfirmed_id_and_sequence() {
    let mut t = table();
    let ok = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    assert!(!ok.confirmed);
    assert_eq!(ok.sequenceid, 1);
    assert_eq!(t.stats().unconfirmed, 1);
    let other = t
        .exchange_id(Time(0), &exid("b", 1, "p", false), &no_state)
        .unwrap();
    assert_ne!(ok.clientid, other.clientid);
}

#[test]
fn case2_same_verifier_and_principal_returns_the_confirmed_id() {
    let mut t = table();
    let (id, _) = mount(&mut t, "a", Time(0));
    let again = t
        .exchange_id(Time(10), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    assert_eq!(again.clientid, id);
    assert!(again.confirmed);
    assert_eq!(again.sequenceid, 2, "the next CREATE_SESSION sequence id");
}

#[test]
fn case3_other_principal_live_is_clid_inuse_expired_is_replaced() {
    let mut t = table();
    let (id, _) = mount(&mut t, "a", Time(0));
    assert_eq!(
        t.exchange_id(Time(1), &exid("a", 1, "intruder", false), &no_state),
        Err(SessionError::ClidInuse)
    );
    assert_eq!(t.lease_state(id), Some(LeaseState::Active));
    // Once the lease has run out, the owner may be taken over; the old client is purged.
    let tick = t.tick(Time(LEASE + 1));
    assert_eq!(tick.courtesy, vec![id]);
    let ok = t
        .exchange_id(Time(LEASE + 2), &exid("a", 1, "new", false), &no_state)
        .unwrap();
    assert_eq!(ok.purge, vec![id]);
    assert_ne!(ok.clientid, id);
    assert_eq!(t.lease_state(id), None);
}

#[test]
fn case3_a_live_client_without_sessions_or_state_is_replaced() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    t.destroy_session(sid, CONN).unwrap();
    let holds_state = |c: ClientId| c == id;
    assert_eq!(
        t.exchange_id(Time(1), &exid("a", 1, "intruder", false), &holds_state),
        Err(SessionError::ClidInuse),
        "it still holds opens or locks"
    );
    let ok = t
        .exchange_id(Time(1), &exid("a", 1, "intruder", false), &no_state)
        .unwrap();
    assert_eq!(ok.purge, vec![id]);
    assert!(!ok.confirmed);
}

#[test]
fn case4_unconfirmed_record_is_replaced() {
    let mut t = table();
    let first = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    let second = t
        .exchange_id(Time(0), &exid("a", 2, "q", false), &no_state)
        .unwrap();
    assert_ne!(first.clientid, second.clientid);
    assert_eq!(t.stats().unconfirmed, 1);
    assert_eq!(
        t.create_session(Time(0), &cs_args(first.clientid, 1, "p")),
        Err(SessionError::StaleClientid)
    );
    t.create_session(Time(0), &cs_args(second.clientid, 1, "q"))
        .unwrap();
}

#[test]
fn case5_client_restart_replaces_confirmed_record_on_confirmation() {
    let mut t = table();
    let (old, old_sid) = mount(&mut t, "a", Time(0));
    let ok = t
        .exchange_id(Time(5), &exid("a", 9, "p", false), &no_state)
        .unwrap();
    assert_ne!(ok.clientid, old);
    assert!(!ok.confirmed);
    assert!(ok.purge.is_empty());
    // The old incarnation works until the new one is confirmed.
    seq(&mut t, Time(6), &seq_args(old_sid, 0, 1, "x")).unwrap();
    let cs = t
        .create_session(Time(7), &cs_args(ok.clientid, ok.sequenceid, "p"))
        .unwrap();
    assert_eq!(cs.purge, Some(old));
    assert_eq!(t.lease_state(old), None);
    assert_eq!(
        t.sequence(Time(8), &seq_args(old_sid, 0, 2, "y")),
        Err(SessionError::BadSession)
    );
    assert_eq!(t.stats().clients, 1);
}

#[test]
fn cases6_to_9_updates_rfc_numbering() {
    let mut t = table();
    assert_eq!(
        t.exchange_id(Time(0), &exid("a", 1, "p", true), &no_state),
        Err(SessionError::Noent),
        "case 7: nothing to update"
    );
    let unconf = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    assert_eq!(
        t.exchange_id(Time(0), &exid("a", 1, "p", true), &no_state),
        Err(SessionError::Noent),
        "case 7: only an unconfirmed record"
    );
    t.create_session(Time(0), &cs_args(unconf.clientid, 1, "p"))
        .unwrap();
    let ok = t
        .exchange_id(Time(1), &exid("a", 1, "p", true), &no_state)
        .unwrap();
    assert_eq!(
        (ok.clientid, ok.confirmed),
        (unconf.clientid, true),
        "case 6"
    );
    assert_eq!(
        t.exchange_id(Time(1), &exid("a", 2, "p", true), &no_state),
        Err(SessionError::NotSame),
        "case 8"
    );
    assert_eq!(
        t.exchange_id(Time(1), &exid("a", 1, "q", true), &no_state),
        Err(SessionError::Perm),
        "case 9"
    );
}

#[test]
fn overlong_owner_is_inval() {
    let mut t = table();
    let mut a = exid("a", 1, "p", false);
    a.owner = vec![b'x'; 1025];
    assert_eq!(
        t.exchange_id(Time(0), &a, &no_state),
        Err(SessionError::Inval)
    );
}

// C2: CREATE_SESSION and its replay cache.

#[test]
fn create_session_replay_and_misorder() {
    let mut t = table();
    let ok = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    let id = ok.clientid;
    // An unconfirmed record belongs to the principal that made it (pynfs CSESS9).
    assert_eq!(
        t.create_session(Time(0), &cs_args(id, 1, "intruder")),
        Err(SessionError::ClidInuse)
    );
    assert_eq!(
        t.create_session(Time(0), &cs_args(id, 2, "p")),
        Err(SessionError::SeqMisordered)
    );
    assert_eq!(
        t.create_session(Time(0), &cs_args(id, 0, "p")),
        Err(SessionError::SeqMisordered),
        "nothing cached yet"
    );
    let first = t.create_session(Time(0), &cs_args(id, 1, "p")).unwrap();
    let replay = t.create_session(Time(1), &cs_args(id, 1, "p")).unwrap();
    assert_eq!(replay.reply, first.reply);
    assert_eq!(t.stats().sessions, 1, "a replay creates nothing");
    assert_eq!(t.stats().create_session_replays, 1);
    assert_eq!(
        t.create_session(Time(1), &cs_args(id, 3, "p")),
        Err(SessionError::SeqMisordered)
    );
    // Once confirmed, another principal may create sessions (RFC 8881 18.36.4 without
    // SP4_MACH_CRED; pynfs CSESS10).
    let other = t.create_session(Time(1), &cs_args(id, 2, "other")).unwrap();
    assert_ne!(other.reply.sessionid, first.reply.sessionid);
    assert_eq!(
        t.create_session(Time(1), &cs_args(ClientId(12345), 1, "p")),
        Err(SessionError::StaleClientid)
    );
    let second = t.create_session(Time(1), &cs_args(id, 3, "p")).unwrap();
    assert_ne!(second.reply.sessionid, first.reply.sessionid);
    assert_ne!(second.reply.sessionid, other.reply.sessionid);
}

/// Attributes the server cannot meet (TOOSMALL, INVAL) and transient refusals (RESOURCE)
/// leave the sequence id unused: the client retries it with better attributes, as knfsd
/// allows (pynfs CSESS29 sends 10000 TOOSMALL ones, then the same sequence id succeeds).
#[test]
fn create_session_refusals_do_not_consume_the_sequence_id() {
    let mut t = ClientTable::new(
        Config {
            max_sessions_per_client: 1,
            ..cfg()
        },
        Vec::new(),
        Time(0),
        1,
    );
    let id = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap()
        .clientid;
    let mut small = cs_args(id, 1, "p");
    small.back.max_request_size = 10;
    for _ in 0..3 {
        assert_eq!(
            t.create_session(Time(0), &small),
            Err(SessionError::TooSmall)
        );
    }
    let mut zero = cs_args(id, 1, "p");
    zero.fore.max_requests = 0;
    assert_eq!(t.create_session(Time(0), &zero), Err(SessionError::Inval));
    let s = t.create_session(Time(0), &cs_args(id, 1, "p")).unwrap();
    assert_eq!(t.stats().create_session_replays, 0);
    // The bound on sessions per client refuses, without consuming sequence id 2.
    assert_eq!(
        t.create_session(Time(0), &cs_args(id, 2, "p")),
        Err(SessionError::Resource)
    );
    t.destroy_session(s.reply.sessionid, CONN).unwrap();
    t.create_session(Time(0), &cs_args(id, 2, "p")).unwrap();
    assert_eq!(t.stats().refused_sessions, 1);
}

#[test]
fn channel_attributes_are_negotiated_down() {
    let mut t = table();
    let id = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap()
        .clientid;
    let mut a = cs_args(id, 1, "p");
    a.fore = ChannelAttrs {
        header_pad_size: 99,
        max_request_size: u32::MAX,
        max_response_size: u32::MAX,
        max_response_size_cached: u32::MAX,
        max_operations: u32::MAX,
        max_requests: u32::MAX,
    };
    let r = t.create_session(Time(0), &a).unwrap().reply;
    let c = Config::default();
    assert_eq!(r.fore.header_pad_size, 0);
    assert_eq!(r.fore.max_request_size, c.max_request_size);
    assert_eq!(r.fore.max_response_size, c.max_response_size);
    assert_eq!(
        r.fore.max_response_size_cached,
        super::sizing::MAX_CACHED_REPLY
    );
    assert_eq!(r.fore.max_operations, c.max_operations);
    assert_eq!(r.fore.max_requests, super::sizing::MAX_SLOTS_PER_SESSION);
    assert_eq!(r.back.max_requests, 2);
    assert!(r.back_chan);
}

// C3: connections.

#[test]
fn a_session_without_a_back_channel_binds_new_connections_for_the_fore_channel_only() {
    let mut t = table();
    let ok = t
        .exchange_id(Time(0), &exid("nb", 1, "p", false), &no_state)
        .unwrap();
    let mut a = cs_args(ok.clientid, ok.sequenceid, "p");
    a.back_chan = false;
    let sid = t.create_session(Time(0), &a).unwrap().reply.sessionid;
    let mut a = seq_args(sid, 0, 1, "x");
    a.conn = ConnId(2);
    assert!(!seq(&mut t, Time(1), &a).unwrap().bound_back);
    assert!(t.back_channel_conns(sid).is_empty());
    // Once a connection is bound for callbacks, the next ones carry them too.
    assert_eq!(
        t.bind_conn(sid, ConnId(3), BindDir::Back),
        Ok(ConnDir::Back)
    );
    a.conn = ConnId(4);
    a.sequenceid = 2;
    assert!(seq(&mut t, Time(2), &a).unwrap().bound_back);
    assert_eq!(t.back_channel_conns(sid), vec![ConnId(3), ConnId(4)]);
}

#[test]
fn connections_bind_unbind_and_destroy_session_needs_a_bound_one() {
    let mut t = table();
    let (_, sid) = mount(&mut t, "a", Time(0));
    assert_eq!(t.back_channel_conns(sid), vec![CONN]);
    assert_eq!(
        t.destroy_session(sid, ConnId(2)),
        Err(SessionError::ConnNotBoundToSession)
    );
    // SEQUENCE on a new connection binds it (SP4_NONE), for both channels: the session
    // has a back channel (RFC 8881 2.10.3.1), and the caller is told to probe it.
    let mut a = seq_args(sid, 0, 1, "x");
    a.conn = ConnId(2);
    assert!(seq(&mut t, Time(1), &a).unwrap().bound_back);
    assert_eq!(t.back_channel_conns(sid), vec![CONN, ConnId(2)]);
    a.sequenceid = 2;
    assert!(
        !seq(&mut t, Time(1), &a).unwrap().bound_back,
        "bound once, probed once"
    );
    assert_eq!(
        t.bind_conn(sid, ConnId(3), BindDir::Fore),
        Ok(ConnDir::Fore)
    );
    assert_eq!(
        t.bind_conn(sid, ConnId(4), BindDir::BackOrBoth),
        Ok(ConnDir::Both)
    );
    assert_eq!(t.back_channel_conns(sid), vec![CONN, ConnId(2), ConnId(4)]);
    t.connection_closed(ConnId(2));
    assert_eq!(
        t.destroy_session(sid, ConnId(2)),
        Err(SessionError::ConnNotBoundToSession)
    );
    assert_eq!(
        t.bind_conn(SessionId([9; 16]), ConnId(2), BindDir::Fore),
        Err(SessionError::BadSession)
    );
    t.destroy_session(sid, ConnId(3)).unwrap();
    assert_eq!(
        t.destroy_session(sid, ConnId(3)),
        Err(SessionError::BadSession)
    );
    assert_eq!(t.stats().connections, 0);
}

#[test]
fn connections_per_session_are_bounded() {
    let mut t = ClientTable::new(
        Config {
            max_conns_per_session: 2,
            ..cfg()
        },
        Vec::new(),
        Time(0),
        1,
    );
    let (_, sid) = mount(&mut t, "a", Time(0));
    t.bind_conn(sid, ConnId(2), BindDir::Fore).unwrap();
    assert_eq!(
        t.bind_conn(sid, ConnId(3), BindDir::Fore),
        Err(SessionError::Resource)
    );
    let mut a = seq_args(sid, 0, 1, "x");
    a.conn = ConnId(3);
    assert_eq!(t.sequence(Time(1), &a), Err(SessionError::Resource));
    // Rebinding a bound one is fine; a closed one frees its place.
    assert_eq!(
        t.bind_conn(sid, ConnId(2), BindDir::Back),
        Ok(ConnDir::Back)
    );
    t.connection_closed(ConnId(2));
    seq(&mut t, Time(1), &a).unwrap();
    assert_eq!(t.stats().refused_connections, 2);
}

// C4: SEQUENCE through the table.

#[test]
fn sequence_replays_bit_for_bit_and_refuses_the_rest() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    let a = seq_args(sid, 3, 1, "OPEN foo");
    let SequenceOutcome::Execute(ok) = t.sequence(Time(1), &a).unwrap() else {
        panic!("not new");
    };
    assert_eq!((ok.clientid, ok.slotid, ok.sequenceid), (id, 3, 1));
    let reply = [0u8, 1, 2, 0xfe, 0xff, 0x80];
    t.sequence_done(sid, 3, &reply).unwrap();
    assert_eq!(
        t.sequence(Time(2), &a),
        Ok(SequenceOutcome::Replay(reply.to_vec()))
    );
    assert_eq!(
        t.sequence(Time(2), &seq_args(sid, 3, 1, "OPEN bar")),
        Err(SessionError::SeqFalseRetry)
    );
    assert_eq!(
        t.sequence(Time(2), &seq_args(sid, 3, 5, "x")),
        Err(SessionError::SeqMisordered)
    );
    assert_eq!(
        t.sequence(Time(2), &seq_args(sid, ok.highest_slotid + 1, 1, "x")),
        Err(SessionError::BadSlot)
    );
    assert_eq!(
        t.sequence(Time(2), &seq_args(SessionId([0; 16]), 0, 1, "x")),
        Err(SessionError::BadSession)
    );
    let mut uncached = seq_args(sid, 3, 2, "READ");
    uncached.cachethis = false;
    seq(&mut t, Time(3), &uncached).unwrap();
    assert_eq!(
        t.sequence(Time(3), &uncached),
        Err(SessionError::RetryUncachedRep)
    );
    let st = t.stats();
    assert_eq!((st.sequence_replays, st.sequence_refused), (1, 4));
    assert_eq!(st.reply_cache_held, 0);
}

#[test]
fn sequence_flags_only_from_what_the_caller_says() {
    let mut t = table();
    let (_, sid) = mount(&mut t, "a", Time(0));
    let ok = seq(&mut t, Time(1), &seq_args(sid, 0, 1, "a")).unwrap();
    assert_eq!(ok.status_flags, 0, "a healthy channel reports nothing");
    let mut a = seq_args(sid, 0, 2, "b");
    a.callback.session_path_down = true;
    assert_eq!(
        seq(&mut t, Time(1), &a).unwrap().status_flags,
        seq4_status::CB_PATH_DOWN_SESSION
    );
    let mut a = seq_args(sid, 0, 3, "c");
    a.callback.path_down = true;
    a.callback.recallable_state_revoked = true;
    assert_eq!(
        seq(&mut t, Time(1), &a).unwrap().status_flags,
        seq4_status::CB_PATH_DOWN | seq4_status::RECALLABLE_STATE_REVOKED
    );
    // A closed connection alone does not make the path "down": the caller decides.
    t.connection_closed(CONN);
    assert_eq!(
        seq(&mut t, Time(1), &seq_args(sid, 0, 4, "d"))
            .unwrap()
            .status_flags,
        0
    );
    // Nor does a session without a back channel (the client did not ask for one).
    let id = t
        .exchange_id(Time(1), &exid("b", 1, "p", false), &no_state)
        .unwrap()
        .clientid;
    let mut a = cs_args(id, 1, "p");
    a.back_chan = false;
    let sid = t.create_session(Time(1), &a).unwrap().reply.sessionid;
    assert!(t.back_channel_conns(sid).is_empty());
    let flags = seq(&mut t, Time(1), &seq_args(sid, 0, 1, "e"))
        .unwrap()
        .status_flags;
    assert_eq!(flags, 0);
}

// Seed 13 through the table: slot tables shrink and grow as sessions come and go.

#[test]
fn slot_tables_follow_the_sessions_within_budget() {
    let mut t = ClientTable::new(
        Config {
            ram_bytes: 256 << 20,
            max_clients: 10_000,
            max_unconfirmed: 10_000,
            ..cfg()
        },
        Vec::new(),
        Time(0),
        1,
    );
    let ask = |t: &mut ClientTable, owner: &str| {
        let ok = t
            .exchange_id(Time(0), &exid(owner, 1, "p", false), &no_state)
            .unwrap();
        let mut a = cs_args(ok.clientid, ok.sequenceid, "p");
        a.fore.max_requests = 128;
        t.create_session(Time(0), &a).map(|d| d.reply)
    };
    let first = ask(&mut t, "first").unwrap();
    assert_eq!(first.fore.max_requests, 128);
    let mut others = Vec::new();
    loop {
        match ask(&mut t, &format!("c{}", others.len())) {
            Ok(r) => {
                assert!(r.fore.max_requests >= 1);
                others.push(r.sessionid);
            }
            Err(e) => {
                assert_eq!(e, SessionError::Resource);
                break;
            }
        }
        let st = t.stats();
        assert!(st.reply_cache_charged <= st.reply_cache_budget);
    }
    assert!(others.len() > 100, "{}", others.len());
    // The first session is asked to shrink; it does once the client stops using the
    // high slots.
    let (len, target) = t.slot_counts(first.sessionid).unwrap();
    assert_eq!(len, 128);
    assert!(target < len);
    let mut a = seq_args(first.sessionid, 0, 1, "x");
    a.highest_slotid = 127;
    let ok = seq(&mut t, Time(1), &a).unwrap();
    assert_eq!(
        (ok.highest_slotid, ok.target_highest_slotid),
        (127, target - 1)
    );
    let mut a = seq_args(first.sessionid, 0, 2, "y");
    a.highest_slotid = target - 1;
    let ok = seq(&mut t, Time(1), &a).unwrap();
    assert_eq!(ok.highest_slotid, target - 1);
    // The others leave: the first grows back to what it asked for.
    for sid in others {
        t.destroy_session(sid, CONN).unwrap();
    }
    let ok = seq(&mut t, Time(2), &seq_args(first.sessionid, 0, 3, "z")).unwrap();
    assert_eq!((ok.highest_slotid, ok.target_highest_slotid), (127, 127));
    let st = t.stats();
    assert!(st.reply_cache_charged <= st.reply_cache_budget);
}

// C5: leases and courtesy clients.

#[test]
fn sequence_renews_the_lease() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    seq(&mut t, Time(80_000), &seq_args(sid, 0, 1, "a")).unwrap();
    assert_eq!(t.tick(Time(LEASE + 1)), Tick::default());
    assert_eq!(
        t.tick(Time(80_000 + LEASE)),
        Tick::default(),
        "exactly one lease"
    );
    let tick = t.tick(Time(80_000 + LEASE + 1));
    assert_eq!(tick.courtesy, vec![id]);
    assert_eq!(t.lease_state(id), Some(LeaseState::Courtesy));
}

#[test]
fn courtesy_client_comes_back() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    t.tick(Time(LEASE + 1));
    assert_eq!(t.stats().courtesy, 1);
    seq(&mut t, Time(5 * LEASE), &seq_args(sid, 0, 1, "a")).unwrap();
    assert_eq!(t.lease_state(id), Some(LeaseState::Active));
    let st = t.stats();
    assert_eq!((st.courtesy, st.courtesy_resumed), (0, 1));
}

#[test]
fn courtesy_client_expires_on_conflict() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    let (other, _) = mount(&mut t, "b", Time(LEASE));
    assert!(!t.expire_courtesy(id), "an active client is not expired");
    t.tick(Time(LEASE + 1));
    assert_eq!(t.lease_state(other), Some(LeaseState::Active));
    assert!(t.expire_courtesy(id));
    assert_eq!(t.lease_state(id), None);
    assert_eq!(
        t.sequence(Time(LEASE + 2), &seq_args(sid, 0, 1, "a")),
        Err(SessionError::BadSession)
    );
    assert!(!t.expire_courtesy(id));
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn courtesy_has_a_time_bound_and_a_count_bound() {
    let mut t = ClientTable::new(
        Config {
            max_courtesy: 1,
            ..cfg()
        },
        Vec::new(),
        Time(0),
        1,
    );
    let (a, _) = mount(&mut t, "a", Time(0));
    let (b, _) = mount(&mut t, "b", Time(10));
    let tick = t.tick(Time(LEASE + 20));
    assert_eq!(
        tick.expired,
        vec![a],
        "over the count, the longest silent goes"
    );
    assert_eq!(tick.courtesy, vec![b]);
    assert_eq!(
        t.tick(Time(11 * LEASE + 10)).expired,
        Vec::<ClientId>::new()
    );
    assert_eq!(t.tick(Time(11 * LEASE + 11)).expired, vec![b]);
    assert_eq!(t.stats().clients, 0);
    assert_eq!(
        t.stats().reply_cache_charged,
        0,
        "expired sessions free their slots"
    );
}

#[test]
fn unconfirmed_records_expire_after_a_lease() {
    let mut t = table();
    let ok = t
        .exchange_id(Time(0), &exid("a", 1, "p", false), &no_state)
        .unwrap();
    assert_eq!(t.tick(Time(LEASE + 1)), Tick::default());
    assert_eq!(t.stats().unconfirmed, 0);
    assert_eq!(t.stats().unconfirmed_expired, 1);
    assert_eq!(
        t.create_session(Time(LEASE + 2), &cs_args(ok.clientid, 1, "p")),
        Err(SessionError::StaleClientid)
    );
}

// DESTROY_CLIENTID.

#[test]
fn destroy_clientid_busy_while_sessions_or_state() {
    let mut t = table();
    let (id, sid) = mount(&mut t, "a", Time(0));
    assert_eq!(
        t.destroy_clientid(id, false),
        Err(SessionError::ClientidBusy)
    );
    t.destroy_session(sid, CONN).unwrap();
    assert_eq!(
        t.destroy_clientid(id, true),
        Err(SessionError::ClientidBusy)
    );
    t.destroy_clientid(id, false).unwrap();
    assert_eq!(
        t.destroy_clientid(id, false),
        Err(SessionError::StaleClientid)
    );
    // The owner starts afresh.
    assert!(
        !t.exchange_id(Time(1), &exid("a", 1, "p", false), &no_state)
            .unwrap()
            .confirmed
    );
}

// C6: grace, reclaim and records.

fn record(owner: &str) -> StableRecord {
    StableRecord {
        owner: owner.as_bytes().to_vec(),
        principal: b"p".to_vec(),
    }
}

#[test]
fn restart_grace_reclaim_and_early_end() {
    let mut t = ClientTable::new(cfg(), vec![record("a"), record("b")], Time(1000), 2);
    assert!(t.in_grace());
    assert_eq!(t.check_new_state(), Err(SessionError::Grace));
    let (a, _) = mount(&mut t, "a", Time(1001));
    let (c, _) = mount(&mut t, "c", Time(1001));
    assert_eq!(t.check_reclaim(a), Ok(()));
    assert_eq!(
        t.check_reclaim(c),
        Err(SessionError::NoGrace),
        "not recorded"
    );
    t.reclaim_complete(a, false).unwrap();
    assert_eq!(
        t.reclaim_complete(a, false),
        Err(SessionError::CompleteAlready)
    );
    assert_eq!(t.check_reclaim(a), Err(SessionError::NoGrace), "completed");
    assert!(t.in_grace(), "b has not completed");
    t.reclaim_complete(c, false).unwrap();
    assert!(t.in_grace(), "c was not recorded, so it does not count");
    let (b, _) = mount(&mut t, "b", Time(1002));
    t.reclaim_complete(b, true).unwrap();
    assert!(t.in_grace(), "one_fs changes nothing");
    t.reclaim_complete(b, false).unwrap();
    assert!(!t.in_grace());
    assert_eq!(t.check_new_state(), Ok(()));
    assert_eq!(
        t.take_record_changes(),
        vec![
            RecordChange::Insert(record("a")),
            RecordChange::Insert(record("c")),
            RecordChange::Insert(record("b")),
        ]
    );
}

#[test]
fn grace_ends_after_one_lease_and_forgets_unreclaimed_records() {
    let mut t = ClientTable::new(cfg(), vec![record("gone")], Time(0), 2);
    assert!(!t.tick(Time(LEASE - 1)).grace_ended);
    assert!(t.tick(Time(LEASE)).grace_ended);
    assert!(!t.in_grace());
    assert_eq!(
        t.take_record_changes(),
        vec![RecordChange::Remove(record("gone"))]
    );
    let (a, _) = mount(&mut t, "gone", Time(LEASE + 1));
    assert_eq!(t.check_reclaim(a), Err(SessionError::NoGrace));
}

#[test]
fn no_records_no_grace_and_expiry_removes_the_record() {
    let mut t = table();
    assert!(!t.in_grace());
    let (a, _) = mount(&mut t, "a", Time(0));
    assert_eq!(t.check_reclaim(a), Err(SessionError::NoGrace));
    t.reclaim_complete(a, false).unwrap();
    t.tick(Time(LEASE + 1));
    assert!(t.expire_courtesy(a));
    assert_eq!(
        t.take_record_changes(),
        vec![
            RecordChange::Insert(record("a")),
            RecordChange::Remove(record("a"))
        ]
    );
}

// C7: bounds on clients.

#[test]
fn client_bounds_refuse_or_evict_courtesy_clients() {
    let mut t = ClientTable::new(
        Config {
            max_clients: 2,
            max_unconfirmed: 1,
            ..cfg()
        },
        Vec::new(),
        Time(0),
        1,
    );
    let u = t
        .exchange_id(Time(0), &exid("u", 1, "p", false), &no_state)
        .unwrap();
    let v = t
        .exchange_id(Time(1), &exid("v", 1, "p", false), &no_state)
        .unwrap();
    // At the unconfirmed bound, the oldest unconfirmed record makes room.
    assert_eq!(t.stats().unconfirmed, 1);
    assert_eq!(
        t.create_session(Time(2), &cs_args(u.clientid, 1, "p")),
        Err(SessionError::StaleClientid)
    );
    let vs = t
        .create_session(Time(2), &cs_args(v.clientid, 1, "p"))
        .unwrap();
    t.destroy_session(vs.reply.sessionid, CONN).unwrap();
    t.destroy_clientid(v.clientid, false).unwrap();
    let (a, _) = mount(&mut t, "a", Time(LEASE + 1));
    let (_b, _) = mount(&mut t, "b", Time(LEASE + 2));
    assert_eq!(
        t.exchange_id(Time(LEASE + 3), &exid("c", 1, "p", false), &no_state),
        Err(SessionError::Resource)
    );
    // Once a is a courtesy client, a newcomer takes its place.
    t.tick(Time(2 * LEASE + 2));
    let ok = t
        .exchange_id(Time(2 * LEASE + 3), &exid("c", 1, "p", false), &no_state)
        .unwrap();
    assert_eq!(ok.purge, vec![a]);
    let st = t.stats();
    assert_eq!((st.unconfirmed_evicted, st.refused_clients), (1, 1));
}

// The client table with the locking table, as the COMPOUND engine will drive them.

mod with_locking {
    use super::*;
    use crate::v4::state::locking::{Limits, Locking, LockingError};
    use crate::v4::state::locks::{LockRequest, Locker};
    use crate::v4::state::opens::OpenRequest;
    use crate::v4::state::ranges::LockKind;
    use crate::v4::state::share::{ShareAccess, ShareDeny};
    use rnfs_vfs::FileKey;

    fn open_and_lock(l: &mut Locking, client: ClientId, owner: &[u8]) -> Result<(), LockingError> {
        let open = l
            .open(&OpenRequest {
                client,
                owner: owner.to_vec(),
                file: FileKey(vec![1]),
                access: ShareAccess::BOTH,
                deny: ShareDeny::NONE,
                reclaim: false,
            })?
            .stateid;
        l.lock(&LockRequest {
            client,
            file: FileKey(vec![1]),
            locker: Locker::New {
                open,
                owner: owner.to_vec(),
            },
            kind: LockKind::Write,
            offset: 0,
            length: u64::MAX,
        })
        .map(|_| ())
    }

    /// What the engine does with a conflict: expire the courtesy clients in the way,
    /// purge their state, and say whether anything was cleared.
    fn clear_courtesy(t: &mut ClientTable, l: &mut Locking, in_the_way: &[ClientId]) -> bool {
        let mut cleared = false;
        for c in in_the_way {
            if t.expire_courtesy(*c) {
                l.purge_client(*c);
                cleared = true;
            }
        }
        cleared
    }

    fn holders(e: &LockingError) -> Vec<ClientId> {
        match e {
            LockingError::Denied(d) => d.clients.clone(),
            LockingError::ShareDenied { clients } => clients.clone(),
            other => panic!("not a conflict: {other:?}"),
        }
    }

    /// Acceptance 4: a client whose lease ran out keeps its lock until someone conflicts;
    /// then it is expired, its state purged, and the other's lock granted.
    #[test]
    fn courtesy_client_keeps_its_lock_until_a_conflict() {
        let mut t = table();
        let mut l = Locking::new(7, Limits::default());
        let (a, a_sid) = mount(&mut t, "a", Time(0));
        open_and_lock(&mut l, a, b"a-owner").unwrap();
        let (b, _) = mount(&mut t, "b", Time(0));
        // While a's lease holds, b is simply denied.
        let e = open_and_lock(&mut l, b, b"b-owner").unwrap_err();
        assert_eq!(holders(&e), vec![a]);
        assert!(!clear_courtesy(&mut t, &mut l, &holders(&e)));
        assert!(l.has_state(a));
        // a goes silent; b keeps renewing.
        let later = Time(LEASE + 1);
        let renew = |t: &mut ClientTable| {
            let sid = t
                .create_session(later, &cs_args(b, 2, "p"))
                .unwrap()
                .reply
                .sessionid;
            seq(t, later, &seq_args(sid, 0, 1, "renew")).unwrap();
        };
        renew(&mut t);
        let tick = t.tick(later);
        assert_eq!((tick.courtesy, tick.expired), (vec![a], vec![]));
        assert!(l.has_state(a), "a courtesy client keeps its state");
        // b conflicts: a is expired and purged, b's lock is granted.
        let e = open_and_lock(&mut l, b, b"b-owner").unwrap_err();
        assert!(clear_courtesy(&mut t, &mut l, &holders(&e)));
        open_and_lock(&mut l, b, b"b-owner").unwrap();
        assert!(!l.has_state(a));
        assert_eq!(
            t.sequence(later, &seq_args(a_sid, 0, 1, "late")),
            Err(SessionError::BadSession),
            "a learns it lost its lease and starts over"
        );
        // DESTROY_CLIENTID asks the locking table whether b still holds state.
        assert_eq!(
            t.destroy_clientid(b, l.has_state(b)),
            Err(SessionError::ClientidBusy)
        );
    }

    /// Acceptance 4: after a restart, new state waits for grace; a recorded client
    /// reclaims, an unrecorded one cannot.
    #[test]
    fn grace_gates_new_state_and_admits_reclaims() {
        let rec = StableRecord {
            owner: b"a".to_vec(),
            principal: b"p".to_vec(),
        };
        let mut t = ClientTable::new(cfg(), vec![rec], Time(0), 3);
        let mut l = Locking::new(8, Limits::default());
        let (a, _) = mount(&mut t, "a", Time(1));
        let (b, _) = mount(&mut t, "b", Time(1));
        assert_eq!(t.check_new_state(), Err(SessionError::Grace));
        assert_eq!(t.check_reclaim(b), Err(SessionError::NoGrace));
        t.check_reclaim(a).unwrap();
        l.open(&OpenRequest {
            client: a,
            owner: b"a-owner".to_vec(),
            file: FileKey(vec![1]),
            access: ShareAccess::BOTH,
            deny: ShareDeny::BOTH,
            reclaim: true,
        })
        .unwrap();
        t.reclaim_complete(a, false).unwrap();
        assert_eq!(t.check_new_state(), Ok(()), "every recorded client is back");
        let e = l
            .open(&OpenRequest {
                client: b,
                owner: b"b-owner".to_vec(),
                file: FileKey(vec![1]),
                access: ShareAccess::READ,
                deny: ShareDeny::NONE,
                reclaim: false,
            })
            .unwrap_err();
        assert_eq!(holders(&e), vec![a], "the reclaimed open still excludes b");
    }
}
