//! The server's callbacks over the NFSv4.1 back channel, end to end over TCP on 127.0.0.1:
//! a small client of our own (blocking std sockets) creates a session with a back channel,
//! the server sends it CB_NULL and CB_RECALL (through `V4State::dispatch_recalls`, as the
//! laundromat does), and the client sees CB_SEQUENCE + CB_RECALL with the right stateid and
//! AUTH_SYS credential; a client that drops callbacks yields PathDown after the timeout and
//! SEQUENCE reports the path down until a new connection is bound and answers the probe.
#![allow(clippy::unwrap_used, missing_docs)]
mod common;
use common::{TestServer, V4_WAIT as WAIT};
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus, AUTH_SYS};
use rnfs_server::v4::callback::{RecallOrder, RecallOutcome};
use rnfs_server::v4::service::{V4Options, V4State};
use rnfs_server::v4::state::ids::{ClientId, Stateid};
use rnfs_testkit::nfs4::{
    channel_attrs, compound_call, compound_reply, exchange_id_op, open_op, read_record,
    write_record,
};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr, XdrString};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const CB_PROG: u32 = 0x4000_0000;

/// A server with delegations.
fn start() -> TestServer {
    TestServer::start_v4(V4Options {
        delegations: true,
        ..V4Options::default()
    })
}

/// The recall outcomes, as the laundromat takes them for the delegation state.
fn outcomes(srv: &TestServer) -> Outcomes {
    Outcomes(srv.v4().clone(), Default::default())
}

/// The state, and outcomes taken from it not looked at yet.
struct Outcomes(
    Arc<V4State>,
    std::cell::RefCell<std::collections::VecDeque<(RecallOrder, RecallOutcome)>>,
);

impl Outcomes {
    /// The next outcome, waiting up to `wait` for it.
    fn recv_timeout(&self, wait: Duration) -> Result<(RecallOrder, RecallOutcome), &'static str> {
        let until = std::time::Instant::now() + wait;
        loop {
            self.1.borrow_mut().extend(self.0.take_recall_outcomes());
            if let Some(o) = self.1.borrow_mut().pop_front() {
                return Ok(o);
            }
            if std::time::Instant::now() > until {
                return Err("no outcome");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every outcome known now.
    fn try_iter(&self) -> Vec<(RecallOrder, RecallOutcome)> {
        let mut b = self.1.borrow_mut();
        b.extend(self.0.take_recall_outcomes());
        b.drain(..).collect()
    }
}

/// A call the server sent us.
#[derive(Debug)]
struct CbCall {
    xid: u32,
    proc_: u32,
    cred: OpaqueAuth,
    args: Option<CbCompound4args>,
}

/// What the test client does with a CB_COMPOUND.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// CB_SEQUENCE OK, then the operation's result with this status.
    Status(Nfsstat4),
    /// Nothing (a client that drops callbacks).
    Drop,
}

/// One connection of the test client.
struct Conn {
    s: TcpStream,
    xid: u32,
    /// Calls the server sent, in order.
    calls: Vec<CbCall>,
    answer: Answer,
    /// The size and change CB_GETATTR is answered with.
    cb_attrs: (u64, u64),
    /// The callback program the server is to use.
    prog: u32,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Self {
            s,
            xid: 100,
            calls: Vec::new(),
            answer: Answer::Status(Nfsstat4::Nfs4Ok),
            cb_attrs: (0, 0),
            prog: CB_PROG,
        }
    }

    /// Reads one record; a call from the server is recorded (and answered unless the
    /// client drops callbacks): `None`. A reply is returned.
    fn read_one(&mut self) -> Option<Vec<u8>> {
        let msg = read_record(&mut self.s).unwrap();
        if msg[4..8] != [0, 0, 0, 0] {
            return Some(msg);
        }
        let mut r = Reader::new(&msg);
        let h = CallHeader::decode(&mut r).unwrap();
        assert_eq!((h.prog, h.vers), (self.prog, 1), "the session's cb_program");
        let args = (h.proc_ == 1).then(|| CbCompound4args::decode(&mut r).unwrap());
        let call = CbCall {
            xid: h.xid,
            proc_: h.proc_,
            cred: h.cred,
            args,
        };
        let reply = match (&call.args, self.answer) {
            (None, _) => Some(Vec::new()),
            (Some(_), Answer::Drop) => None,
            (Some(a), Answer::Status(st)) => Some(cb_reply(a, st, self.cb_attrs)),
        };
        if let Some(body) = reply {
            let mut w = Writer::new();
            ReplyHeader::with_status(call.xid, ReplyStatus::Success).encode(&mut w);
            w.raw(&body);
            write_record(&mut self.s, &w.into_inner());
        }
        self.calls.push(call);
        None
    }

    /// Reads until `n` CB_COMPOUNDs in all were received.
    fn wait_compounds(&mut self, n: usize) {
        while self.calls.iter().filter(|c| c.proc_ == 1).count() < n {
            assert!(self.read_one().is_none(), "no reply expected");
        }
    }

    /// Sends COMPOUND `ops` (minor version 1) and returns its status and results, taking
    /// the server's calls that come meanwhile.
    fn compound(&mut self, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
        self.xid += 1;
        write_record(&mut self.s, &compound_call(self.xid, 1, ops));
        loop {
            if let Some(reply) = self.read_one() {
                return compound_reply(&reply, self.xid);
            }
        }
    }
}

/// The CB_COMPOUND4res answering `a`: CB_SEQUENCE OK, then the second operation's `st`
/// (CB_GETATTR answered OK with `(size, change)`).
fn cb_reply(a: &CbCompound4args, st: Nfsstat4, (size, change): (u64, u64)) -> Vec<u8> {
    let NfsCbArgop4::OpCbSequence(seq) = &a.argarray.0[0] else {
        panic!("CB_SEQUENCE first: {a:?}")
    };
    let mut res = vec![NfsCbResop4::OpCbSequence(CbSequence4res::Nfs4Ok(
        CbSequence4resok {
            csr_sessionid: seq.csa_sessionid,
            csr_sequenceid: seq.csa_sequenceid,
            csr_slotid: seq.csa_slotid,
            csr_highest_slotid: seq.csa_highest_slotid,
            csr_target_highest_slotid: seq.csa_highest_slotid,
        },
    ))];
    res.push(match &a.argarray.0[1] {
        NfsCbArgop4::OpCbRecall(_) => NfsCbResop4::OpCbRecall(CbRecall4res { status: st }),
        NfsCbArgop4::OpCbGetattr(g) => {
            assert_eq!(
                g.attr_request.0,
                vec![(1 << 3) | (1 << 4)],
                "change and size"
            );
            let mut v = change.to_be_bytes().to_vec();
            v.extend_from_slice(&size.to_be_bytes());
            NfsCbResop4::OpCbGetattr(CbGetattr4res::Nfs4Ok(CbGetattr4resok {
                obj_attributes: Fattr4 {
                    attrmask: VarArray(vec![(1 << 3) | (1 << 4)]),
                    attr_vals: Opaque(v),
                },
            }))
        }
        other => panic!("unexpected {other:?}"),
    });
    rnfs_xdr::to_bytes(&CbCompound4res {
        status: st,
        tag: Opaque(Vec::new()),
        resarray: VarArray(res),
    })
}

fn auth_sys() -> AuthsysParms {
    AuthsysParms {
        stamp: 7,
        machinename: XdrString(b"cbtest".to_vec()),
        uid: 0,
        gid: 0,
        gids: VarArray(Vec::new()),
    }
}

/// EXCHANGE_ID and CREATE_SESSION (with a back channel when `back`): client and session.
fn session(c: &mut Conn, owner: &[u8], back: bool) -> (u64, [u8; 16]) {
    let (_, r) = c.compound(vec![exchange_id_op(owner)]);
    let NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(e)) = &r[0] else {
        panic!("{r:?}")
    };
    let (_, r) = c.compound(vec![NfsArgop4::OpCreateSession(CreateSession4args {
        csa_clientid: e.eir_clientid,
        csa_sequence: e.eir_sequenceid,
        csa_flags: if back {
            CREATE_SESSION4_FLAG_CONN_BACK_CHAN
        } else {
            0
        },
        csa_fore_chan_attrs: channel_attrs(8),
        csa_back_chan_attrs: channel_attrs(2),
        csa_cb_program: CB_PROG,
        // AUTH_NONE listed first: AUTH_SYS must still be chosen.
        csa_sec_parms: VarArray(vec![
            CallbackSecParms4::AuthNone,
            CallbackSecParms4::AuthSys(auth_sys()),
        ]),
    })]);
    let NfsResop4::OpCreateSession(CreateSession4res::Nfs4Ok(cs)) = &r[0] else {
        panic!("{r:?}")
    };
    (e.eir_clientid, cs.csr_sessionid.0)
}

/// SEQUENCE alone: its status flags.
fn sequence(c: &mut Conn, sid: [u8; 16], seq: u32) -> u32 {
    let (st, r) = c.compound(vec![NfsArgop4::OpSequence(Sequence4args {
        sa_sessionid: OpaqueFixed(sid),
        sa_sequenceid: seq,
        sa_slotid: 0,
        sa_highest_slotid: 0,
        sa_cachethis: false,
    })]);
    let NfsResop4::OpSequence(Sequence4res::Nfs4Ok(ok)) = &r[0] else {
        panic!("{st} {r:?}")
    };
    ok.sr_status_flags
}

fn order(client: u64, n: u8) -> RecallOrder {
    RecallOrder {
        client: ClientId(client),
        stateid: Stateid {
            seqid: 1,
            other: [n; 12],
        },
        fh: vec![0xfe, n, 3],
        truncate: false,
    }
}

const PATH_DOWN: u32 = 0x1 | 0x200;

#[test]
fn a_recall_reaches_the_client_on_its_back_channel_with_auth_sys() {
    let srv = start();
    let outcomes = outcomes(&srv);
    let mut c = Conn::open(srv.addr);
    let (client, sid) = session(&mut c, b"recall", true);
    // The first recall, then a second on the same slot with the next sequence id.
    for (n, want_seq) in [(1u8, 1u32), (2, 2)] {
        srv.v4().dispatch_recalls(vec![order(client, n)]);
        c.wait_compounds(n as usize);
        let (o, r) = outcomes.recv_timeout(WAIT).unwrap();
        assert_eq!((o, r), (order(client, n), RecallOutcome::Delivered));
        let call = c.calls.iter().rfind(|c| c.proc_ == 1).unwrap();
        assert_eq!(
            call.cred.flavor, AUTH_SYS,
            "the Linux client refuses AUTH_NONE"
        );
        assert_eq!(
            AuthsysParms::decode(&mut Reader::new(&call.cred.body.0)).unwrap(),
            auth_sys()
        );
        let a = call.args.as_ref().unwrap();
        assert_eq!(a.minorversion, 1);
        let NfsCbArgop4::OpCbSequence(seq) = &a.argarray.0[0] else {
            panic!("{a:?}")
        };
        assert_eq!(seq.csa_sessionid.0, sid);
        assert_eq!((seq.csa_slotid, seq.csa_sequenceid), (0, want_seq));
        assert!(!seq.csa_cachethis);
        let NfsCbArgop4::OpCbRecall(rc) = &a.argarray.0[1] else {
            panic!("{a:?}")
        };
        assert_eq!(rc.stateid.seqid, 1);
        assert_eq!(rc.stateid.other.0, [n; 12]);
        assert_eq!(rc.fh.0, vec![0xfe, n, 3]);
    }
    // The probe came and was answered: the path is up.
    assert!(c.calls.iter().any(|c| c.proc_ == 0), "CB_NULL probe");
    assert_eq!(sequence(&mut c, sid, 1) & PATH_DOWN, 0);
    let n = srv.v4().callback_counts();
    assert_eq!((n.sent, n.delivered, n.pending), (2, 2, 0));
}

#[test]
fn a_refusal_is_reported_with_its_status_and_no_back_channel_is_path_down() {
    let srv = start();
    let outcomes = outcomes(&srv);
    let mut c = Conn::open(srv.addr);
    let (client, _) = session(&mut c, b"refuse", true);
    c.answer = Answer::Status(Nfsstat4::Nfs4errBadhandle);
    srv.v4().dispatch_recalls(vec![order(client, 1)]);
    c.wait_compounds(1);
    assert_eq!(
        outcomes.recv_timeout(WAIT).unwrap().1,
        RecallOutcome::Refused(10001)
    );
    // A client whose session has no back channel, and a client unknown: nothing is sent.
    let mut c2 = Conn::open(srv.addr);
    let (client2, _) = session(&mut c2, b"noback", false);
    srv.v4()
        .dispatch_recalls(vec![order(client2, 2), order(0xdead, 3)]);
    let got: Vec<_> = (0..2)
        .map(|_| outcomes.recv_timeout(WAIT).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            (order(client2, 2), RecallOutcome::PathDown),
            (order(0xdead, 3), RecallOutcome::PathDown)
        ]
    );
    assert_eq!(srv.v4().callback_counts().sent, 1);
}

#[test]
fn a_client_that_drops_callbacks_is_path_down_until_a_new_connection_answers() {
    let srv = start();
    srv.v4().set_callback_timeout(Duration::from_millis(300));
    let outcomes = outcomes(&srv);
    let mut c = Conn::open(srv.addr);
    let (client, sid) = session(&mut c, b"dropper", true);
    c.answer = Answer::Drop;
    srv.v4().dispatch_recalls(vec![order(client, 1)]);
    c.wait_compounds(1);
    assert_eq!(
        outcomes.recv_timeout(WAIT).unwrap(),
        (order(client, 1), RecallOutcome::PathDown)
    );
    assert_eq!(
        sequence(&mut c, sid, 1) & PATH_DOWN,
        PATH_DOWN,
        "calls on the back channel fail: down"
    );
    // The client reconnects: SEQUENCE on the new connection binds it for callbacks too,
    // the server probes it, and once the probe is answered the path is up again.
    let mut c2 = Conn::open(srv.addr);
    sequence(&mut c2, sid, 2);
    let mut seq = 3;
    loop {
        assert!(seq < 10_000, "the path never came back up");
        let flags = sequence(&mut c2, sid, seq);
        seq += 1;
        if flags & PATH_DOWN == 0 {
            break;
        }
        // The probe may still be on its way: take it.
        while !c2.calls.iter().any(|c| c.proc_ == 0) {
            assert!(c2.read_one().is_none());
        }
    }
    assert!(c2.calls.iter().any(|c| c.proc_ == 0), "re-probed");
    // A recall now goes out: the slot whose reply was lost is probed with seq + 1 (the
    // client here had run the lost call, so it answers).
    srv.v4().dispatch_recalls(vec![order(client, 2)]);
    c2.wait_compounds(1);
    assert_eq!(
        outcomes.recv_timeout(WAIT).unwrap(),
        (order(client, 2), RecallOutcome::Delivered)
    );
    let a = c2.calls.iter().rfind(|c| c.proc_ == 1).unwrap();
    let NfsCbArgop4::OpCbSequence(s) = &a.args.as_ref().unwrap().argarray.0[0] else {
        panic!()
    };
    // Slot 1 is idle (never used), so it goes before the uncertain slot 0.
    assert_eq!((s.csa_slotid, s.csa_sequenceid), (1, 1));
    assert_eq!(srv.v4().callback_counts().pending, 0);
}

#[test]
fn backchannel_ctl_changes_the_program_and_the_credential_and_reprobes() {
    let srv = start();
    let outcomes = outcomes(&srv);
    let mut c = Conn::open(srv.addr);
    let (client, sid) = session(&mut c, b"ctl", true);
    // Outside a session it is refused.
    let ctl = |prog| {
        NfsArgop4::OpBackchannelCtl(BackchannelCtl4args {
            bca_cb_program: prog,
            bca_sec_parms: VarArray(vec![CallbackSecParms4::AuthSys(AuthsysParms {
                stamp: 8,
                ..auth_sys()
            })]),
        })
    };
    let (st, _) = c.compound(vec![ctl(CB_PROG + 1)]);
    assert_eq!(st, 10071, "NFS4ERR_OP_NOT_IN_SESSION");
    // Take the first probe (the old program) before the program changes.
    while !c.calls.iter().any(|c| c.proc_ == 0) {
        assert!(c.read_one().is_none());
    }
    // The new program's probe may come before the reply.
    c.prog = CB_PROG + 1;
    let (st, r) = c.compound(vec![
        NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed(sid),
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        }),
        ctl(CB_PROG + 1),
    ]);
    assert_eq!(st, 0, "{r:?}");
    while c.calls.iter().filter(|c| c.proc_ == 0).count() < 2 {
        assert!(c.read_one().is_none());
    }
    srv.v4().dispatch_recalls(vec![order(client, 1)]);
    c.wait_compounds(1);
    assert_eq!(
        outcomes.recv_timeout(WAIT).unwrap().1,
        RecallOutcome::Delivered
    );
    let call = c.calls.iter().rfind(|c| c.proc_ == 1).unwrap();
    let p = AuthsysParms::decode(&mut Reader::new(&call.cred.body.0)).unwrap();
    assert_eq!(p.stamp, 8, "the credential BACKCHANNEL_CTL gave");
}

#[test]
fn recalls_past_a_session_queue_are_refused_with_delay_at_once() {
    let srv = start();
    let outcomes = outcomes(&srv);
    let mut c = Conn::open(srv.addr);
    let (client, _) = session(&mut c, b"flood", true);
    c.answer = Answer::Drop;
    // 256 wait for the two slots; the three past the queue's bound are refused before
    // dispatch_recalls returns.
    let orders: Vec<_> = (0..259u32).map(|i| order(client, i as u8)).collect();
    srv.v4().dispatch_recalls(orders);
    let refused = outcomes.try_iter();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused
        .iter()
        .all(|(_, r)| *r == RecallOutcome::Refused(10008)));
    let n = srv.v4().callback_counts();
    assert_eq!((n.over_bound, n.pending), (3, 256));
    // Two went out, one per slot; the rest wait.
    c.wait_compounds(2);
    assert_eq!(srv.v4().callback_counts().sent, 2, "one call per slot");
    let text = rnfs_server::admin::metrics_text(&srv.server);
    assert!(
        text.contains("rnfs_nfs4_recalls_total{outcome=\"over_bound\"} 3"),
        "{text}"
    );
    assert!(text.contains("rnfs_nfs4_recalls_pending 256"), "{text}");
}

fn seq_op(sid: [u8; 16], seq: u32) -> NfsArgop4 {
    NfsArgop4::OpSequence(Sequence4args {
        sa_sessionid: OpaqueFixed(sid),
        sa_sequenceid: seq,
        sa_slotid: 0,
        sa_highest_slotid: 0,
        sa_cachethis: false,
    })
}

/// SEQUENCE, RECLAIM_COMPLETE: a new client may open files after it.
fn reclaim_complete(c: &mut Conn, sid: [u8; 16], seq: u32) {
    let (st, r) = c.compound(vec![
        seq_op(sid, seq),
        NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs: false }),
    ]);
    assert_eq!(st, 0, "{r:?}");
}

/// SEQUENCE, PUTROOTFH, OPEN `name` (created UNCHECKED) with `access`, GETFH: status,
/// the OPEN result and the handle.
fn open_named(
    c: &mut Conn,
    sid: [u8; 16],
    seq: u32,
    name: &[u8],
    access: u32,
) -> (u32, Option<(Open4resok, Vec<u8>)>) {
    let (st, r) = c.compound(vec![
        seq_op(sid, seq),
        NfsArgop4::OpPutrootfh,
        open_op(b"owner", name, access, true),
        NfsArgop4::OpGetfh,
    ]);
    match (&r.get(2), &r.get(3)) {
        (
            Some(NfsResop4::OpOpen(Open4res::Nfs4Ok(o))),
            Some(NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(fh))),
        ) => (st, Some((o.clone(), fh.object.0.clone()))),
        _ => (st, None),
    }
}

/// Client A with a back channel that answered its probe, holding a write delegation on
/// a file it created and keeps open.
struct Holder {
    a: Conn,
    sa: [u8; 16],
    /// A's next slot seqid.
    seq: u32,
    name: String,
    deleg: Stateid4,
    fh: Vec<u8>,
}

fn holder_with_write_delegation(srv: &TestServer) -> Holder {
    let mut a = Conn::open(srv.addr);
    let (_, sa) = session(&mut a, b"holder", true);
    while !a.calls.iter().any(|c| c.proc_ == 0) {
        assert!(a.read_one().is_none());
    }
    reclaim_complete(&mut a, sa, 1);
    // The probe's reply is taken by the server asynchronously: open fresh files until
    // a delegation comes (the first, normally).
    let mut seq = 2;
    loop {
        assert!(seq < 50, "no delegation granted");
        let name = format!("f{seq}");
        let (st, got) = open_named(&mut a, sa, seq, name.as_bytes(), 3);
        seq += 1;
        assert_eq!(st, 0);
        let (o, fh) = got.unwrap();
        if let OpenDelegation4::OpenDelegateWrite(w) = o.delegation {
            return Holder {
                a,
                sa,
                seq,
                name,
                deleg: w.stateid,
                fh,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 15, end to end: client A, whose back channel answered its probe, gets a write
/// delegation on OPEN; client B's OPEN of the file answers DELAY and makes the server
/// send A one CB_RECALL of that delegation (at once, not at the laundromat's next pass);
/// once A returns it, B's OPEN goes through.
#[test]
fn a_conflicting_open_recalls_the_delegation_and_goes_through_once_returned() {
    let srv = start();
    let Holder {
        mut a,
        sa,
        seq,
        name,
        deleg,
        fh,
    } = holder_with_write_delegation(&srv);
    let mut b = Conn::open(srv.addr);
    let (_, sb) = session(&mut b, b"other", false);
    reclaim_complete(&mut b, sb, 1);
    let (st, _) = open_named(&mut b, sb, 2, name.as_bytes(), 1);
    assert_eq!(st, Nfsstat4::Nfs4errDelay as u32);
    a.wait_compounds(1);
    let call = a.calls.iter().find(|c| c.proc_ == 1).unwrap();
    let NfsCbArgop4::OpCbRecall(rc) = &call.args.as_ref().unwrap().argarray.0[1] else {
        panic!("{call:?}")
    };
    assert_eq!(rc.stateid, deleg);
    assert_eq!(rc.fh.0, fh);
    // B retries before the return: DELAY again, and no second recall.
    let (st, _) = open_named(&mut b, sb, 3, name.as_bytes(), 1);
    assert_eq!(st, Nfsstat4::Nfs4errDelay as u32);
    let (st, _) = a.compound(vec![
        seq_op(sa, seq),
        NfsArgop4::OpPutfh(Putfh4args {
            object: Opaque(fh.clone()),
        }),
        NfsArgop4::OpDelegreturn(Delegreturn4args {
            deleg_stateid: deleg,
        }),
    ]);
    assert_eq!(st, 0);
    let (st, got) = open_named(&mut b, sb, 4, name.as_bytes(), 1);
    assert_eq!(st, 0);
    // A still has it open for write: no delegation for B.
    assert_eq!(got.unwrap().0.delegation, OpenDelegation4::OpenDelegateNone);
    let d = srv.v4().delegation_stats();
    assert_eq!(
        (d.granted_write, d.recalls, d.returned, d.held),
        (1, 1, 1, 0)
    );
    assert_eq!(a.calls.iter().filter(|c| c.proc_ == 1).count(), 1);
}

/// SEQUENCE, PUTFH `fh`, GETATTR of change and size: the status and (change, size).
fn change_size(c: &mut Conn, sid: [u8; 16], seq: u32, fh: &[u8]) -> (u32, Option<(u64, u64)>) {
    let (st, r) = c.compound(vec![
        seq_op(sid, seq),
        NfsArgop4::OpPutfh(Putfh4args {
            object: Opaque(fh.to_vec()),
        }),
        NfsArgop4::OpGetattr(Getattr4args {
            attr_request: VarArray(vec![(1 << 3) | (1 << 4)]),
        }),
    ]);
    let got = match r.get(2) {
        Some(NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(g))) => {
            let mut rd = Reader::new(&g.obj_attributes.attr_vals.0);
            Some((rd.u64().unwrap(), rd.u64().unwrap()))
        }
        _ => None,
    };
    (st, got)
}

/// Issue 15, CB_GETATTR (RFC 8881 10.4.3): client B's GETATTR of a file under A's write
/// delegation asks A, and answers A's size with a change past the server's when A says it
/// modified the file; when A does not answer in time, the delegation is recalled and B's
/// GETATTR answers DELAY. A's own GETATTR asks nobody.
#[test]
fn another_clients_getattr_asks_the_write_delegation_holder() {
    let srv = start();
    let Holder {
        mut a, sa, seq, fh, ..
    } = holder_with_write_delegation(&srv);
    let (st, own) = change_size(&mut a, sa, seq, &fh);
    assert_eq!(st, 0);
    let (change0, size0) = own.unwrap();
    assert_eq!(size0, 0);
    assert_eq!(
        a.calls.iter().filter(|c| c.proc_ == 1).count(),
        0,
        "nobody asked"
    );

    let mut b = Conn::open(srv.addr);
    let (_, sb) = session(&mut b, b"other", false);
    reclaim_complete(&mut b, sb, 1);
    // A has written 5 bytes in its cache: its change moved on.
    a.cb_attrs = (5, change0 + 1);
    let holder = std::thread::spawn(move || {
        assert!(a.read_one().is_none());
        a
    });
    let (st, got) = change_size(&mut b, sb, 2, &fh);
    let mut a = holder.join().unwrap();
    assert_eq!(st, 0);
    let (change1, size1) = got.unwrap();
    assert_eq!(size1, 5, "the holder's size");
    assert!(change1 > change0, "{change1} > {change0}");
    let call = a.calls.iter().find(|c| c.proc_ == 1).unwrap();
    let NfsCbArgop4::OpCbGetattr(g) = &call.args.as_ref().unwrap().argarray.0[1] else {
        panic!("{call:?}")
    };
    assert_eq!(g.fh.0, fh);

    // A does not answer: B waits a little, then DELAY, and the delegation is recalled.
    a.answer = Answer::Drop;
    let holder = std::thread::spawn(move || {
        assert!(a.read_one().is_none());
        a
    });
    let (st, _) = change_size(&mut b, sb, 3, &fh);
    let mut a = holder.join().unwrap();
    assert_eq!(st, Nfsstat4::Nfs4errDelay as u32);
    a.answer = Answer::Status(Nfsstat4::Nfs4Ok);
    a.wait_compounds(3);
    let last = a.calls.iter().rev().find(|c| c.proc_ == 1).unwrap();
    assert!(
        matches!(
            last.args.as_ref().unwrap().argarray.0[1],
            NfsCbArgop4::OpCbRecall(_)
        ),
        "{last:?}"
    );
    let cb = srv.v4().callback_counts();
    assert_eq!((cb.getattr_sent, cb.getattr_answered), (2, 1));
    assert_eq!(srv.v4().delegation_stats().recalls, 1);
}
