//! The server's callbacks to NFSv4.0 clients, end to end over TCP on 127.0.0.1: a small
//! 4.0 client of our own (blocking std sockets) runs SETCLIENTID / SETCLIENTID_CONFIRM
//! naming a callback service it listens on; the server connects there and probes it with
//! CB_NULL, sends CB_RECALL (through `V4State::dispatch_recalls`, as the laundromat does)
//! as a minor-0 CB_COMPOUND with the client's callback_ident and an AUTH_SYS credential;
//! a service that drops callbacks makes the path down (PathDown, `callback40_down`) until a
//! new probe answers; an address that is not the client's own is never connected to.
#![allow(clippy::unwrap_used, missing_docs)]
mod common;
use common::v40::{cb_service, uaddr, Client, CB_PROG, IDENT};
use common::{TestServer, V4_WAIT as WAIT};
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::AUTH_SYS;
use rnfs_server::v4::callback::{RecallOrder, RecallOutcome};
use rnfs_server::v4::service::V4Options;
use rnfs_server::v4::state::ids::{ClientId, Stateid};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server of NFSv4.0 (and 4.1, 4.2) with delegations.
fn start() -> TestServer {
    TestServer::start_v4(V4Options {
        minors: (0, 2),
        delegations: true,
        ..V4Options::default()
    })
}

/// The next recall outcome, waiting up to [`WAIT`].
fn outcome(srv: &TestServer) -> (RecallOrder, RecallOutcome) {
    let until = Instant::now() + WAIT;
    loop {
        if let Some(o) = srv.v4().take_recall_outcomes().into_iter().next() {
            return o;
        }
        assert!(Instant::now() < until, "no outcome");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn order(client: u64) -> RecallOrder {
    RecallOrder {
        client: ClientId(client),
        stateid: Stateid {
            seqid: 1,
            other: [5; 12],
        },
        fh: vec![9; 16],
        truncate: false,
    }
}

#[test]
fn a_4_0_client_is_probed_and_recalled_on_its_callback_address() {
    let srv = start();
    let drop_compounds = Arc::new(AtomicBool::new(false));
    let (cb, calls) = cb_service(drop_compounds.clone());
    let mut c = Client::open(srv.addr);
    let id = c.setclientid(b"cb40-a", &uaddr(cb));
    // The probe: CB_NULL on the client's program.
    let null = calls.recv_timeout(WAIT).unwrap();
    assert_eq!((null.proc_, null.prog), (0, CB_PROG));
    srv.until("verified", |v| v.callback40_verified(ClientId(id)));
    assert!(!srv.v4().callback40_down(ClientId(id)));

    // A recall: CB_COMPOUND of minor version 0, the client's ident, CB_RECALL alone.
    srv.v4().dispatch_recalls(vec![order(id)]);
    let call = calls.recv_timeout(WAIT).unwrap();
    assert_eq!((call.proc_, call.prog), (1, CB_PROG));
    assert_eq!(call.cred.flavor, AUTH_SYS, "AUTH_SYS, not AUTH_NONE");
    let a = call.args.unwrap();
    assert_eq!((a.minorversion, a.callback_ident), (0, IDENT));
    let [NfsCbArgop4::OpCbRecall(r)] = &a.argarray.0[..] else {
        panic!("{a:?}")
    };
    assert_eq!((r.stateid.seqid, r.stateid.other.0), (1, [5; 12]));
    assert_eq!(r.fh.0, vec![9; 16]);
    assert_eq!(outcome(&srv), (order(id), RecallOutcome::Delivered));

    // A service that drops callbacks: the path is down once the reply is overdue.
    srv.v4().set_callback_timeout(Duration::from_millis(300));
    drop_compounds.store(true, Ordering::SeqCst);
    srv.v4().dispatch_recalls(vec![order(id)]);
    assert!(calls.recv_timeout(WAIT).unwrap().args.is_some());
    assert_eq!(outcome(&srv), (order(id), RecallOutcome::PathDown));
    assert!(srv.v4().callback40_down(ClientId(id)));
    assert!(!srv.v4().callback40_verified(ClientId(id)));
    // RENEW still renews a client without delegations (CB_PATH_DOWN is for holders).
    let (st, _) = c.compound(vec![NfsArgop4::OpRenew(Renew4args { clientid: id })]);
    assert_eq!(st, 0);

    // The next recall finds the path down: reported so at once, and a new connection is
    // probed; once it answers, recalls go through again.
    drop_compounds.store(false, Ordering::SeqCst);
    srv.v4().dispatch_recalls(vec![order(id)]);
    assert_eq!(outcome(&srv), (order(id), RecallOutcome::PathDown));
    let again = calls.recv_timeout(WAIT).unwrap();
    assert_eq!(again.proc_, 0, "CB_NULL on a new connection");
    srv.until("verified again", |v| v.callback40_verified(ClientId(id)));
    srv.v4().dispatch_recalls(vec![order(id)]);
    assert_eq!(outcome(&srv), (order(id), RecallOutcome::Delivered));
}

#[test]
fn a_callback_address_not_the_clients_own_is_never_connected_to() {
    let srv = start();
    let (cb, calls) = cb_service(Arc::new(AtomicBool::new(false)));
    let mut c = Client::open(srv.addr);
    // The client calls from 127.0.0.1 and names 127.0.0.2.
    let foreign = format!("127.0.0.2.{}.{}", cb.port() >> 8, cb.port() & 0xff);
    let id = c.setclientid(b"cb40-b", &foreign);
    srv.until("down", |v| v.callback40_down(ClientId(id)));
    // Refused once, said once (the metric counts it), and not tried again by a recall.
    assert_eq!(srv.v4().callback40_counts().refused, 1);
    srv.v4().dispatch_recalls(vec![order(id)]);
    assert_eq!(outcome(&srv), (order(id), RecallOutcome::PathDown));
    assert!(
        calls.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing sent"
    );
    let n = srv.v4().callback40_counts();
    assert_eq!((n.refused, n.probes), (1, 0));
    // A callback update to its own address is probed.
    let id2 = c.setclientid(b"cb40-b", &uaddr(cb));
    assert_eq!(id2, id, "the same client: a callback update");
    assert_eq!(calls.recv_timeout(WAIT).unwrap().proc_, 0);
    srv.until("verified", |v| v.callback40_verified(ClientId(id)));
}
