#![allow(clippy::unwrap_used)]
//! The RPC client through a fault-injecting proxy in front of the real rnfs server: many
//! calls in flight, replies dropped, duplicated, delayed past the timeout, preceded by
//! garbage and unknown xids, connections killed and framing broken. Every call must get its
//! own answer, and the table of calls in flight must end empty (seed entry 19).
mod common;
use common::{FaultProxy, Faults, TestServer};
use rnfs_client::rpc::core::{RetryMode, RetryPolicy};
use rnfs_client::rpc::{auth_sys, RpcClient, RpcConfig};
use rnfs_client::RpcError;
use rnfs_proto::mount3::{self, MountRes};
use rnfs_proto::nfs3::*;
use rnfs_rpc::client::SyncClient;
use rnfs_xdr::XdrString;
use std::collections::HashMap;
use std::time::Duration;

/// Mounts "/" and creates `n` files; returns the root handle and each file's handle.
fn setup(srv: &TestServer, n: usize) -> (FileHandle3, HashMap<String, FileHandle3>) {
    let mut c = SyncClient::connect(srv.addr).unwrap();
    c.auth_sys(0, 0, &[]);
    let MountRes::Ok(ok) = c
        .call::<_, MountRes>(
            mount3::PROGRAM,
            mount3::VERSION,
            mount3::Proc::Mnt as u32,
            &XdrString::<1024>(b"/".to_vec()),
        )
        .unwrap()
    else {
        panic!("mount")
    };
    let root = ok.fhandle;
    let mut files = HashMap::new();
    for i in 0..n {
        let name = format!("f{i}");
        let a = CreateArgs {
            where_: DirOpArgs3 {
                dir: root.clone(),
                name: XdrString(name.clone().into_bytes()),
            },
            how: CreateHow3::Unchecked(Sattr3::default()),
        };
        let r: CreateRes = c.call(PROGRAM, VERSION, Proc::Create as u32, &a).unwrap();
        let Res::Ok(o) = r else { panic!("create") };
        files.insert(name, o.obj.unwrap());
    }
    (root, files)
}

fn cfg(mode: RetryMode, timeout_ms: u64) -> RpcConfig {
    RpcConfig {
        retry: RetryPolicy {
            timeout: Duration::from_millis(timeout_ms),
            max_timeout: Duration::from_millis(timeout_ms * 4),
            mode,
        },
        reconnect_min: Duration::from_millis(5),
        reconnect_max: Duration::from_millis(100),
        cred: auth_sys(0, 0, &[]),
        ..Default::default()
    }
}

/// Every kind of fault the proxy injects, often enough that each happens in a few hundred
/// calls.
fn every_fault() -> Faults {
    Faults {
        drop: 20,
        duplicate: 50,
        delay: 50,
        delay_ms: 300,
        garbage: 20,
        unknown: 20,
        kill: 4,
        break_framing: 2,
    }
}

/// Every reply dropped: a silent server.
fn replies_dropped() -> Faults {
    Faults {
        drop: 1000,
        ..Default::default()
    }
}

fn lookup_args(root: &FileHandle3, name: &str) -> DirOpArgs3 {
    DirOpArgs3 {
        dir: root.clone(),
        name: XdrString(name.as_bytes().to_vec()),
    }
}

/// A LOOKUP through `start_call`: `done` gets the decoded results.
fn start_lookup(
    c: &RpcClient,
    root: &FileHandle3,
    name: &str,
    done: impl FnOnce(Result<LookupRes, RpcError>) + Send + 'static,
) {
    let args = rnfs_xdr::to_bytes(&lookup_args(root, name));
    c.start_call(PROGRAM, VERSION, Proc::Lookup as u32, args, move |r| {
        done(r.and_then(|reply| rnfs_xdr::from_bytes(reply.body()).map_err(RpcError::Decode)))
    });
}

async fn lookup(c: &RpcClient, root: &FileHandle3, name: &str) -> Result<LookupRes, RpcError> {
    c.call(
        PROGRAM,
        VERSION,
        Proc::Lookup as u32,
        &lookup_args(root, name),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_its_own_reply_under_all_faults() {
    let srv = TestServer::memory(64 << 20);
    let (root, files) = setup(&srv, 50);
    let proxy = FaultProxy::start(srv.addr, every_fault(), 0x5eed).await;
    let c = RpcClient::new(proxy.addr, cfg(RetryMode::Hard, 150));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..800usize {
        let c = c.clone();
        let root = root.clone();
        let name = format!("f{}", i % 50);
        tasks.spawn(async move { (name.clone(), lookup(&c, &root, &name).await) });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        let (name, r) = r.unwrap();
        match r {
            Ok(Res::Ok(o)) => assert_eq!(&o.object, &files[&name], "reply for another call"),
            other => panic!("{name}: {other:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 800);
    let s = c.stats();
    let p = &proxy.stats;
    use std::sync::atomic::Ordering::Relaxed;
    eprintln!("client {s:?}\nproxy {p:?}");
    assert_eq!(s.table.live, 0, "table of calls in flight must be empty");
    assert_eq!(s.table.replies, 800);
    assert!(
        s.table.retransmits > 0,
        "dropped replies force retransmissions"
    );
    assert!(
        s.disconnects > 0 && s.connects > 1,
        "killed connections force reconnects"
    );
    assert!(
        s.table.replays > 0,
        "unanswered calls are replayed after a reconnect"
    );
    assert!(s.table.duplicate_replies > 0);
    assert!(s.table.unknown_replies > 0);
    assert!(s.table.malformed_replies > 0);
    assert!(p.killed.load(Relaxed) > 0 && p.delayed.load(Relaxed) > 0);
    // Quiet network: the same client keeps working.
    proxy.set(Faults::default());
    assert!(matches!(lookup(&c, &root, "f1").await, Ok(Res::Ok(_))));
    assert!(matches!(
        lookup(&c, &root, "nope").await,
        Ok(Res::Fail(Nfsstat3::NoEnt, _))
    ));
    assert_eq!(c.stats().table.live, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_mode_times_out_and_leaves_no_call_behind() {
    let srv = TestServer::memory(1 << 20);
    let (root, _) = setup(&srv, 1);
    let proxy = FaultProxy::start(srv.addr, replies_dropped(), 1).await;
    let c = RpcClient::new(proxy.addr, cfg(RetryMode::Soft { tries: 3 }, 50));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (c, root) = (c.clone(), root.clone());
        tasks.spawn(async move { lookup(&c, &root, "f0").await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap_err(), RpcError::TimedOut { tries: 3 });
    }
    let s = c.stats();
    assert_eq!(s.table.live, 0);
    assert_eq!(s.table.timeouts, 20);
    assert_eq!(s.table.retransmits, 40);
    // Replies come back: the client recovers without a new connection.
    proxy.set(Faults::default());
    assert!(matches!(lookup(&c, &root, "f0").await, Ok(Res::Ok(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_mode_reports_an_unreachable_server() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = RpcClient::new(addr, cfg(RetryMode::Soft { tries: 2 }, 50));
    let r = c.call_raw(PROGRAM, VERSION, 0, Vec::new()).await;
    assert!(matches!(r, Err(RpcError::Connect { .. })), "{r:?}");
    assert_eq!(c.stats().table.live, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_are_reaped_and_hard_calls_survive_a_silent_server() {
    let srv = TestServer::memory(1 << 20);
    let (root, _) = setup(&srv, 1);
    let proxy = FaultProxy::start(srv.addr, replies_dropped(), 2).await;
    let c = RpcClient::new(proxy.addr, cfg(RetryMode::Hard, 50));
    // Callers that give up: their calls must leave the table.
    for _ in 0..10 {
        let r = tokio::time::timeout(Duration::from_millis(30), lookup(&c, &root, "f0")).await;
        assert!(r.is_err());
    }
    // A hard call waits through the silence and completes when replies flow again.
    let (c2, root2) = (c.clone(), root.clone());
    let hard = tokio::spawn(async move { lookup(&c2, &root2, "f0").await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!hard.is_finished());
    proxy.set(Faults::default());
    assert!(matches!(hard.await.unwrap(), Ok(Res::Ok(_))));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = c.stats();
    assert_eq!(s.table.live, 0, "{s:?}");
    assert_eq!(s.table.cancelled, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_call_replayed_after_a_lost_connection_keeps_its_first_outcome() {
    // The REMOVE executes, the connection dies before the reply; the replay on the new
    // connection carries the same xid and comes from the same port (the server's reply
    // cache knows a client by address and port), so the cache answers "done" instead of
    // a second execution answering NOENT. Reusing the port is best effort (it may be taken
    // meanwhile by another test's connection): an attempt where the proxy saw no
    // reconnection from the old port proves nothing and is tried again, with another file.
    let srv = TestServer::memory(1 << 20);
    let (root, _) = setup(&srv, 5);
    let proxy = FaultProxy::start(srv.addr, Faults::default(), 3).await;
    let c = RpcClient::new(proxy.addr, cfg(RetryMode::Hard, 200));
    for attempt in 0..5 {
        let name = format!("f{attempt}");
        assert!(matches!(lookup(&c, &root, &name).await, Ok(Res::Ok(_))));
        let (killed, resumed) = (
            proxy
                .stats
                .killed
                .load(std::sync::atomic::Ordering::Relaxed),
            proxy
                .stats
                .resumed
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        proxy.set(Faults {
            kill: 1000,
            ..Default::default()
        });
        let (c2, root2, n2) = (c.clone(), root.clone(), name.clone());
        let remove = tokio::spawn(async move {
            let a = DirOpArgs3 {
                dir: root2,
                name: XdrString(n2.into_bytes()),
            };
            c2.call::<_, RemoveRes>(PROGRAM, VERSION, Proc::Remove as u32, &a)
                .await
        });
        while proxy
            .stats
            .killed
            .load(std::sync::atomic::Ordering::Relaxed)
            == killed
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.set(Faults::default());
        let r = remove.await.unwrap().unwrap();
        if proxy
            .stats
            .resumed
            .load(std::sync::atomic::Ordering::Relaxed)
            == resumed
        {
            eprintln!("attempt {attempt}: no reconnection from the old port; again");
            continue;
        }
        assert!(matches!(r, Res::Ok(_)), "{r:?}");
        let s = c.stats();
        assert!(s.disconnects >= 1 && s.table.replays >= 1, "{s:?}");
        assert!(matches!(
            lookup(&c, &root, &name).await,
            Ok(Res::Fail(Nfsstat3::NoEnt, _))
        ));
        return;
    }
    panic!("in 5 attempts the client never reconnected from its old port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_started_without_waiting_each_get_their_own_outcome_under_faults() {
    // `start_call` hands the outcome to a function the driver runs: the same guarantees as
    // awaited calls, also with more calls than slots (the rest wait for one).
    let srv = TestServer::memory(64 << 20);
    let (root, files) = setup(&srv, 50);
    let proxy = FaultProxy::start(srv.addr, every_fault(), 0xca11).await;
    let c = RpcClient::new(
        proxy.addr,
        RpcConfig {
            max_in_flight: 32,
            ..cfg(RetryMode::Hard, 150)
        },
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..400usize {
        let name = format!("f{}", i % 50);
        let tx = tx.clone();
        start_lookup(&c, &root, &name.clone(), move |r| {
            let _ = tx.send((name, r));
        });
    }
    drop(tx);
    let mut n = 0;
    while let Some((name, r)) = rx.recv().await {
        match r {
            Ok(Res::Ok(o)) => assert_eq!(&o.object, &files[&name], "reply for another call"),
            other => panic!("{name}: {other:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 400, "every function ran once");
    let s = c.stats();
    assert_eq!((s.table.live, s.table.replies), (0, 400), "{s:?}");
    assert!(s.disconnects > 0 && s.table.replays > 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_call_ends_with_an_error_when_the_server_stays_silent_in_soft_mode() {
    let srv = TestServer::memory(1 << 20);
    let (root, _) = setup(&srv, 1);
    let proxy = FaultProxy::start(srv.addr, replies_dropped(), 5).await;
    let c = RpcClient::new(proxy.addr, cfg(RetryMode::Soft { tries: 2 }, 50));
    let (tx, rx) = tokio::sync::oneshot::channel();
    start_lookup(&c, &root, "f0", move |r| {
        let _ = tx.send(r.map(|_| ()));
    });
    assert_eq!(rx.await.unwrap(), Err(RpcError::TimedOut { tries: 2 }));
    assert_eq!(c.stats().table.live, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_read_while_calls_wait_for_a_peer_that_does_not_read() {
    // A server that answers its first call but reads nothing more: the large calls after it
    // fill the socket and wait to be written; the reply to the first must still be read.
    use rnfs_client::rpc::buf::Slice;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (got_first, first_in) = tokio::sync::oneshot::channel::<()>();
    let (answer, go) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark).await.unwrap();
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        let mut call = vec![0u8; len];
        s.read_exact(&mut call).await.unwrap();
        let _ = got_first.send(());
        go.await.unwrap();
        let mut w = rnfs_xdr::Writer::new();
        let xid = u32::from_be_bytes([call[0], call[1], call[2], call[3]]);
        rnfs_proto::rpc::ReplyHeader::success(xid).encode(&mut w);
        let rec = rnfs_rpc::record::encode_record(&w.into_inner(), 1 << 20);
        s.write_all(&rec).await.unwrap();
        // Hold the connection, reading nothing, until the test ends.
        std::future::pending::<()>().await;
    });
    let c = RpcClient::new(addr, cfg(RetryMode::Hard, 60_000));
    let c1 = c.clone();
    let first = tokio::spawn(async move { c1.call_raw(PROGRAM, VERSION, 0, Vec::new()).await });
    first_in.await.unwrap();
    // 64 MiB of WRITE-sized calls: more than the socket buffers on both sides hold.
    let data = Slice::from_vec(vec![7u8; 4 << 20]);
    let mut big = Vec::new();
    for _ in 0..16 {
        let (c, d) = (c.clone(), data.clone());
        let mut args = Vec::new();
        args.extend_from_slice(&(d.len() as u32).to_be_bytes());
        big.push(tokio::spawn(async move {
            c.call_bulk(PROGRAM, VERSION, 7, args, Some(d)).await
        }));
    }
    // Let the writes fill the socket, then answer the first call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    answer.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the reply was not read while calls waited to be written");
    assert!(r.unwrap().is_ok());
    assert!(
        big.iter().all(|t| !t.is_finished()),
        "nobody read those calls"
    );
    for t in big {
        t.abort();
    }
    server.abort();
}

/// What a misbehaving server does on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaks {
    /// Accepts and closes at once.
    AcceptClose,
    /// Reads the call, sends half a reply, closes.
    HalfReply,
    /// Reads the call, sends a record mark far over the client's limit, stays open.
    OversizedMark,
}

/// Reads one call record (of any number of fragments); returns its xid.
async fn read_call(s: &mut tokio::net::TcpStream) -> std::io::Result<u32> {
    use tokio::io::AsyncReadExt;
    let mut call = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark).await?;
        let (last, len) = rnfs_rpc::record::fragment_header(mark);
        let at = call.len();
        call.resize(at + len.min(1 << 20), 0);
        s.read_exact(&mut call[at..]).await?;
        if last {
            break;
        }
    }
    Ok(u32::from_be_bytes([call[0], call[1], call[2], call[3]]))
}

/// A server on 127.0.0.1 that breaks every connection the way `how` says; returns its
/// address and the count of connections it accepted.
async fn breaking_server(
    how: Breaks,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let n = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            n.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                match how {
                    Breaks::AcceptClose => drop(s),
                    Breaks::HalfReply => {
                        let Ok(xid) = read_call(&mut s).await else {
                            return;
                        };
                        let mut w = rnfs_xdr::Writer::new();
                        rnfs_proto::rpc::ReplyHeader::success(xid).encode(&mut w);
                        w.raw(&[0; 64]);
                        let rec = rnfs_rpc::record::encode_record(&w.into_inner(), 1 << 20);
                        let _ = s.write_all(&rec[..rec.len() / 2]).await;
                    }
                    Breaks::OversizedMark => {
                        if read_call(&mut s).await.is_ok() {
                            let _ = s.write_all(&0xffff_ff00u32.to_be_bytes()).await;
                            // Hold the connection: the client must break it.
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                }
            });
        }
    });
    (addr, accepts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_calls_time_out_against_a_server_that_breaks_every_connection() {
    // Issue 13, finding 4: each reconnect restarted the call's timer without counting a
    // try, so these servers got the same call forever. Each connection lost is now a try:
    // with `retrans=2` the call fails after at most two connections, within its timeouts
    // (timeo 200 ms, then 400 ms: 600 ms, plus reconnect delays of 5-10 ms; it takes tens
    // of milliseconds). The bound of 5 s is that with room for a loaded machine; the count
    // of connections is the sharper check.
    use std::sync::atomic::Ordering::Relaxed;
    for how in [
        Breaks::AcceptClose,
        Breaks::HalfReply,
        Breaks::OversizedMark,
    ] {
        let (addr, accepts) = breaking_server(how).await;
        let c = RpcClient::new(addr, cfg(RetryMode::Soft { tries: 2 }, 200));
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            c.call_raw(PROGRAM, VERSION, 0, Vec::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("{how:?}: still waiting after 5 s, {:?}", c.stats()));
        assert_eq!(r.unwrap_err(), RpcError::TimedOut { tries: 2 }, "{how:?}");
        // Nothing left to send: no more connections.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = accepts.load(Relaxed);
        eprintln!("{how:?}: timed out after {n} connections");
        assert!((1..=2).contains(&n), "{how:?}: {n} connections");
        let s = c.stats();
        assert_eq!(s.table.live, 0, "{how:?}: {s:?}");
        assert_eq!(s.table.timeouts, 1, "{how:?}: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_call_reconnects_at_a_bounded_rate_to_a_server_that_breaks_every_connection() {
    // Issue 13, finding 4: the reconnect delay went back to its minimum at every connect,
    // so a server that accepts and closes saw a connection every 5 ms (`reconnect_min`
    // here: ~400 in 2 s). It now doubles until a connection delivers a reply: 5, 10, 20,
    // 40, 80, then 100 ms (`reconnect_max`): about 25 connections in 2 s. The bound of 60
    // leaves room for a slow machine without letting a hot loop through.
    use std::sync::atomic::Ordering::Relaxed;
    for how in [Breaks::AcceptClose, Breaks::OversizedMark] {
        let (addr, accepts) = breaking_server(how).await;
        let c = RpcClient::new(addr, cfg(RetryMode::Hard, 200));
        let c2 = c.clone();
        let call = tokio::spawn(async move { c2.call_raw(PROGRAM, VERSION, 0, Vec::new()).await });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n = accepts.load(Relaxed);
        eprintln!("{how:?}: {n} connections in 2 s");
        assert!(!call.is_finished(), "{how:?}: a hard call does not give up");
        assert!((5..=60).contains(&n), "{how:?}: {n} connections in 2 s");
        call.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mib_read_reply_in_1_byte_fragments_arrives_whole_at_linear_cost() {
    // Issue 13, finding 5: the record grew by each fragment's size, one copy of the whole
    // record per fragment (2^39 bytes for 1 MiB: minutes of CPU). It now doubles: the
    // bytes moved to reassemble are at most the record's size again. The 60 s bound only
    // stops the old behaviour from holding the test for minutes; it takes well under a
    // second now (5 MiB on the loopback).
    use tokio::io::AsyncWriteExt;
    let data: Vec<u8> = (0..1u32 << 20).map(|k| (k % 251) as u8).collect();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let sent = data.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let xid = read_call(&mut s).await.unwrap();
        let mut w = rnfs_xdr::Writer::new();
        rnfs_proto::rpc::ReplyHeader::success(xid).encode(&mut w);
        let res: ReadRes = Res::Ok(ReadOk {
            file_attributes: None,
            count: sent.len() as u32,
            eof: true,
            data: Data(sent),
        });
        rnfs_xdr::Xdr::encode(&res, &mut w);
        let reply = w.into_inner();
        let rec = rnfs_rpc::record::encode_record(&reply, 1);
        assert_eq!(rec.len(), 5 * reply.len());
        s.write_all(&rec).await.unwrap();
        let _ = read_call(&mut s).await; // hold the connection until the client goes
        reply.len()
    });
    let c = RpcClient::new(addr, cfg(RetryMode::Hard, 60_000));
    let nfs = rnfs_client::nfs::Nfs3::new(c.clone());
    let fh = rnfs_client::FileHandle::new(vec![1; 8]).expect("8 bytes");
    let r = tokio::time::timeout(Duration::from_secs(60), nfs.read(&fh, 0, 1 << 20))
        .await
        .expect("no reply in 60 s")
        .unwrap();
    assert!(r.eof);
    assert!(r.data[..] == data[..], "the data, byte for byte");
    let s = c.stats();
    drop((nfs, c));
    let len = server.await.unwrap() as u64;
    assert_eq!(s.framing.fragments, len, "{s:?}");
    assert_eq!((s.framing.records, s.framing.reassembled), (1, 1), "{s:?}");
    assert!(
        s.framing.moved <= 2 * len,
        "{} bytes moved to reassemble {len}",
        s.framing.moved
    );
}
