//! Calls the server sends on a connection it accepted (the NFSv4.1 backchannel), over
//! 127.0.0.1, with a raw TCP peer playing the client: it makes ordinary calls, and answers
//! (or not) the calls it receives, in whatever order a test says.
#![allow(clippy::unwrap_used, missing_docs)]
use parking_lot::Mutex;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_rpc::message::{decode_call, reply_success};
use rnfs_rpc::record::{encode_record, RecordDecoder};
use rnfs_rpc::transport::{
    serve, Blocking, CallbackCall, CallbackConfig, CallbackError, CloseReason, Config, ConnId,
    ConnInfo, ConnStats, Service,
};
use rnfs_xdr::{Reader, Writer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Echoes every call's arguments, and tells the test which connection each came on.
/// Procedure 2 runs on the pool and answers with the reply to a call it makes on the
/// caller's own connection with the same arguments (a call that waits for the client).
struct Echo {
    conns: mpsc::UnboundedSender<ConnInfo>,
    stats: Arc<ConnStats>,
    rt: tokio::runtime::Handle,
}

impl Service for Echo {
    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        let call = decode_call(msg).ok()?;
        let _ = self.conns.send(*conn);
        let mut w = reply_success(call.header.xid, call.args.len());
        if call.header.proc_ == 2 {
            let bc = self.stats.backchannel(conn.id)?;
            let r = self.rt.block_on(bc.call(cb(call.args), LONG)).ok()?;
            w.raw(r.body());
        } else {
            w.raw(call.args);
        }
        Some(w.into_inner())
    }
    fn blocking(&self, _: &ConnInfo, msg: &[u8]) -> Blocking {
        match decode_call(msg) {
            Ok(c) if c.header.proc_ == 2 => Blocking::Likely,
            _ => Blocking::Never,
        }
    }
}

struct Server {
    addr: SocketAddr,
    stats: Arc<ConnStats>,
    conns: mpsc::UnboundedReceiver<ConnInfo>,
    stop: watch::Sender<bool>,
}

async fn start(cfg: Config) -> Server {
    let (tx, conns) = mpsc::unbounded_channel();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(ConnStats::default());
    let (stop, rx) = watch::channel(false);
    let svc = Arc::new(Echo {
        conns: tx,
        stats: stats.clone(),
        rt: tokio::runtime::Handle::current(),
    });
    let s = stats.clone();
    tokio::spawn(async move { serve(l, svc, cfg, s, rx).await });
    Server {
        addr,
        stats,
        conns,
        stop,
    }
}

fn callbacks(max_outstanding: usize, max_reply: usize) -> Config {
    Config {
        callbacks: CallbackConfig {
            max_outstanding,
            max_reply,
        },
        ..Config::default()
    }
}

/// The client's end: blocking, run on a thread of its own.
struct Peer {
    s: TcpStream,
    dec: RecordDecoder,
    xid: u32,
}

/// A message the peer received.
#[derive(Debug)]
enum Msg {
    /// The server's call: its xid and arguments.
    Call(u32, Vec<u8>),
    /// A reply to one of ours: its results.
    Reply(Vec<u8>),
}

impl Peer {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self {
            s,
            dec: RecordDecoder::new(1 << 24),
            xid: 0x5000,
        }
    }

    fn send(&mut self, msg: &[u8]) {
        self.s.write_all(&encode_record(msg, 1 << 30)).unwrap();
    }

    /// An ordinary call (program 1, procedure 1) with these arguments.
    fn call(&mut self, args: &[u8]) {
        self.call_proc(1, args);
    }

    /// A call of program 1, procedure `proc_`, with these arguments.
    fn call_proc(&mut self, proc_: u32, args: &[u8]) {
        self.xid += 1;
        let mut w = Writer::new();
        CallHeader {
            xid: self.xid,
            rpcvers: 2,
            prog: 1,
            vers: 1,
            proc_,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        w.raw(args);
        self.send(&w.into_inner());
    }

    /// Answers the server's call `xid` with these results.
    fn answer(&mut self, xid: u32, results: &[u8]) {
        let mut w = Writer::new();
        ReplyHeader::success(xid).encode(&mut w);
        w.raw(results);
        self.send(&w.into_inner());
    }

    fn recv(&mut self) -> Msg {
        let mut buf = [0u8; 64 * 1024];
        let rec = loop {
            if let Some(r) = self.dec.next_record().unwrap() {
                break r;
            }
            let n = self.s.read(&mut buf).unwrap();
            assert!(n > 0, "closed by the server");
            self.dec.push(&buf[..n]);
        };
        if let Ok(c) = decode_call(&rec) {
            return Msg::Call(c.header.xid, c.args.to_vec());
        }
        let mut r = Reader::new(&rec);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!(h.status, ReplyStatus::Success);
        Msg::Reply(r.rest().to_vec())
    }

    /// The next call from the server (none of ours is outstanding).
    fn recv_call(&mut self) -> (u32, Vec<u8>) {
        match self.recv() {
            Msg::Call(x, a) => (x, a),
            m => panic!("expected a call: {m:?}"),
        }
    }
}

/// Connects, makes one call so the server knows the connection: the peer and its id.
async fn connect(srv: &mut Server) -> (Peer, ConnInfo) {
    let addr = srv.addr;
    let p = tokio::task::spawn_blocking(move || {
        let mut p = Peer::connect(addr);
        p.call(&[0, 0, 0, 0]);
        assert!(matches!(p.recv(), Msg::Reply(_)));
        p
    })
    .await
    .unwrap();
    let info = srv.conns.recv().await.unwrap();
    (p, info)
}

fn cb(args: &[u8]) -> CallbackCall<'_> {
    static CRED: std::sync::OnceLock<OpaqueAuth> = std::sync::OnceLock::new();
    CallbackCall {
        prog: 0x4000_0000,
        vers: 1,
        proc_: 1,
        cred: CRED.get_or_init(auth_sys),
        args,
    }
}

/// An AUTH_SYS credential, as the Linux callback service wants for anything but CB_NULL.
fn auth_sys() -> OpaqueAuth {
    let p = rnfs_proto::rpc::AuthSysParams {
        stamp: 0,
        machine_name: rnfs_xdr::XdrString(b"server".to_vec()),
        uid: 0,
        gid: 0,
        gids: rnfs_xdr::VarArray(Vec::new()),
    };
    OpaqueAuth {
        flavor: rnfs_proto::rpc::AUTH_SYS,
        body: rnfs_xdr::Opaque(rnfs_xdr::to_bytes(&p)),
    }
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_round_trip_and_every_connection_its_own_id() {
    let mut srv = start(Config::default()).await;
    let (mut a, ia) = connect(&mut srv).await;
    let (_b, ib) = connect(&mut srv).await;
    assert_ne!(ia.id, ib.id, "one id per connection");
    assert_eq!(ia.local, srv.addr);
    assert_eq!(ia.peer, a.s.local_addr().unwrap());
    let bc = srv.stats.backchannel(ia.id).unwrap();
    assert_eq!(bc.conn(), ia.id);
    let peer = tokio::task::spawn_blocking(move || {
        let (xid, args) = a.recv_call();
        let mut rev = args.clone();
        rev.reverse();
        a.answer(xid, &rev);
        a
    });
    let r = bc.call(cb(&[1, 2, 3, 4]), LONG).await.unwrap();
    assert_eq!(r.body(), &[4, 3, 2, 1]);
    let _a = peer.await.unwrap();
    let s = srv.stats.callbacks();
    assert_eq!((s.sent.load(Relaxed), s.replied.load(Relaxed)), (1, 1));
    assert_eq!(s.outstanding.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outstanding_calls_answered_out_of_order_reach_their_callers() {
    let mut srv = start(Config::default()).await;
    let (mut p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    let peer = tokio::task::spawn_blocking(move || {
        let mut calls: Vec<(u32, Vec<u8>)> = (0..8).map(|_| p.recv_call()).collect();
        // Answered last first, each with its own arguments.
        calls.reverse();
        for (xid, args) in calls {
            p.answer(xid, &args);
        }
        p
    });
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let bc = bc.clone();
        tasks.push(tokio::spawn(async move {
            let r = bc.call(cb(&[0, 0, 0, i]), LONG).await.unwrap();
            assert_eq!(r.body(), &[0, 0, 0, i], "call {i} got another's reply");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _p = peer.await.unwrap();
    assert_eq!(srv.stats.callbacks().replied.load(Relaxed), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_fails_pending_calls_tells_who_listens_and_leaves_nothing() {
    let mut srv = start(Config::default()).await;
    let closes = Arc::new(Mutex::new(Vec::<(ConnId, CloseReason)>::new()));
    let c2 = closes.clone();
    srv.stats.on_close(move |id, why| c2.lock().push((id, why)));
    let (mut p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    let mut tasks = Vec::new();
    for i in 0..3u8 {
        let bc = bc.clone();
        tasks.push(tokio::spawn(
            async move { bc.call(cb(&[i; 4]), LONG).await },
        ));
    }
    // The peer reads the three calls, then closes without answering.
    tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            p.recv_call();
        }
    })
    .await
    .unwrap();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap_err(),
            CallbackError::Closed(CloseReason::PeerClosed)
        );
    }
    assert_eq!(bc.closed().await, CloseReason::PeerClosed);
    assert_eq!(*closes.lock(), vec![(info.id, CloseReason::PeerClosed)]);
    assert!(srv.stats.backchannel(info.id).is_none());
    assert_eq!(
        bc.call(cb(&[]), LONG).await.unwrap_err(),
        CallbackError::Closed(CloseReason::PeerClosed)
    );
    let s = srv.stats.callbacks();
    assert_eq!(
        (s.closed.load(Relaxed), s.outstanding.load(Relaxed)),
        (3, 0)
    );
    assert_eq!(
        srv.stats.channels.len(),
        0,
        "no channel left for a closed connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reasons_idle_and_shutdown() {
    let mut srv = start(Config {
        idle_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let (_idle, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    // Generous: the idle timer fires 200 ms after the last activity.
    let why = tokio::time::timeout(LONG, bc.closed()).await.unwrap();
    assert_eq!(why, CloseReason::IdleTimeout);

    let mut srv = start(Config::default()).await;
    let (_p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    srv.stop.send(true).unwrap();
    let why = tokio::time::timeout(LONG, bc.closed()).await.unwrap();
    assert_eq!(why, CloseReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_xid_is_dropped_and_counted_and_a_large_reply_refused() {
    let mut srv = start(callbacks(16, 1024)).await;
    let (mut p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    let peer = tokio::task::spawn_blocking(move || {
        let (xid, _) = p.recv_call();
        // A reply nobody asked for, then the real one.
        p.answer(xid ^ 0x8000_0000, &[9; 4]);
        p.answer(xid, &[1; 4]);
        // The next call gets a reply over the limit.
        let (xid, _) = p.recv_call();
        p.answer(xid, &[7; 4096]);
        // The connection goes on: an ordinary call is answered.
        p.call(&[5; 4]);
        match p.recv() {
            Msg::Reply(r) => assert_eq!(r, [5; 4]),
            m => panic!("{m:?}"),
        }
        p
    });
    assert_eq!(bc.call(cb(&[]), LONG).await.unwrap().body(), &[1; 4]);
    let e = bc.call(cb(&[]), LONG).await.unwrap_err();
    assert!(
        matches!(e, CallbackError::TooLarge { limit: 1024, .. }),
        "{e:?}"
    );
    let _p = peer.await.unwrap();
    let s = srv.stats.callbacks();
    assert_eq!(s.unknown_replies.load(Relaxed), 1);
    assert_eq!(s.too_large.load(Relaxed), 1);
    assert_eq!(s.outstanding.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outstanding_bound_refuses_more_and_ordinary_calls_go_on() {
    let mut srv = start(callbacks(2, 64 * 1024)).await;
    let (mut p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    let (b1, b2) = (bc.clone(), bc.clone());
    let t1 = tokio::spawn(async move { b1.call(cb(&[1; 4]), LONG).await });
    let t2 = tokio::spawn(async move { b2.call(cb(&[2; 4]), LONG).await });
    // The peer holds both calls unanswered and makes ordinary calls meanwhile: they are
    // answered while the server's calls wait.
    let peer = tokio::task::spawn_blocking(move || {
        let held = [p.recv_call(), p.recv_call()];
        for i in 0..20u8 {
            p.call(&[i; 4]);
            match p.recv() {
                Msg::Reply(r) => assert_eq!(r, [i; 4]),
                m => panic!("{m:?}"),
            }
        }
        (p, held)
    });
    let (mut p, held) = peer.await.unwrap();
    // Both are outstanding: a third is refused at once.
    assert_eq!(
        bc.call(cb(&[3; 4]), LONG).await.unwrap_err(),
        CallbackError::Busy { limit: 2 }
    );
    assert_eq!(srv.stats.callbacks().busy.load(Relaxed), 1);
    let peer = tokio::task::spawn_blocking(move || {
        for (xid, args) in held {
            p.answer(xid, &args);
        }
        p
    });
    assert_eq!(t1.await.unwrap().unwrap().body(), &[1; 4]);
    assert_eq!(t2.await.unwrap().unwrap().body(), &[2; 4]);
    // Room again.
    let mut p = peer.await.unwrap();
    let peer = tokio::task::spawn_blocking(move || {
        let (xid, args) = p.recv_call();
        p.answer(xid, &args);
        p
    });
    assert_eq!(bc.call(cb(&[4; 4]), LONG).await.unwrap().body(), &[4; 4]);
    let _p = peer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_not_answered_in_time_times_out_and_its_late_reply_is_dropped() {
    let mut srv = start(Config::default()).await;
    let (mut p, info) = connect(&mut srv).await;
    let bc = srv.stats.backchannel(info.id).unwrap();
    let e = bc
        .call(cb(&[]), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(e, CallbackError::TimedOut);
    let s = srv.stats.callbacks();
    assert_eq!(
        (s.timed_out.load(Relaxed), s.outstanding.load(Relaxed)),
        (1, 0)
    );
    tokio::task::spawn_blocking(move || {
        let (xid, _) = p.recv_call();
        p.answer(xid, &[]);
        // Answered in order: once this ordinary call's reply is back, the late reply has
        // been read.
        p.call(&[]);
        assert!(matches!(p.recv(), Msg::Reply(_)));
    })
    .await
    .unwrap();
    assert_eq!(s.unknown_replies.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_read_even_when_the_connection_has_its_most_calls_in_flight() {
    // One call in flight at most: the call waiting for the client's reply holds it, and
    // the reply must still be read, or neither could ever finish.
    let mut srv = start(Config {
        max_in_flight: 1,
        ..Config::default()
    })
    .await;
    let (mut p, _) = connect(&mut srv).await;
    let done = tokio::task::spawn_blocking(move || {
        p.call_proc(2, &[6; 4]);
        let (xid, args) = p.recv_call();
        assert_eq!(args, [6; 4]);
        p.answer(xid, &[8; 4]);
        match p.recv() {
            Msg::Reply(r) => r,
            m => panic!("{m:?}"),
        }
    });
    assert_eq!(done.await.unwrap(), [8; 4]);
    assert_eq!(srv.stats.callbacks().replied.load(Relaxed), 1);
}
