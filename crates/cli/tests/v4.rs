//! `rnfs serve` over NFSv4.1, against the real binary on 127.0.0.1 (ports 26500-26999):
//! NULL, EXCHANGE_ID -> CREATE_SESSION -> SEQUENCE + PUTROOTFH + GETATTR, a retried slot
//! answered with the same bytes, a closed connection unbound from its session, minor
//! version 0 refused, `--versions 3` refusing NFSv4, and a restart with a recorded client:
//! grace, ended early by its RECLAIM_COMPLETE.
#![allow(clippy::unwrap_used)]
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::client::SyncClient;
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Xdr};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROG: u32 = 100_003;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `rnfs serve --memory` on `port`, metrics on `port + 1`, with `extra` arguments.
fn serve(port: u16, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args(["serve", "--memory", "16MiB", "--no-rpcbind"])
        .args(["--listen", &addr(port).to_string()])
        .args(["--metrics", &addr(port + 1).to_string()])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !rnfs_testkit::listening(addr(port)) || !rnfs_testkit::listening(addr(port + 1)) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("rnfs serve exited: {st}");
        }
        assert!(t.elapsed() < Duration::from_secs(20), "did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child)
}

/// The value of metric line `name` (with its labels) at the metrics port.
fn metric(port: u16, name: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(addr(port + 1)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits (up to 10 s: a generous bound for a loaded machine) for a metric to reach `want`.
fn wait_metric(port: u16, name: &str, want: u64) {
    let t = Instant::now();
    loop {
        let got = metric(port, name);
        if got == Some(want) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name} is {got:?}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client(port: u16) -> SyncClient {
    let mut c = SyncClient::connect(addr(port)).unwrap();
    c.auth_sys(0, 0, &[]);
    c
}

fn compound_args(minor: u32, ops: Vec<NfsArgop4>) -> Vec<u8> {
    rnfs_xdr::to_bytes(&Compound4args {
        tag: Opaque(b"t".to_vec()),
        minorversion: minor,
        argarray: VarArray(ops),
    })
}

/// Sends a COMPOUND with `xid`; the COMPOUND4res bytes.
fn send(c: &mut SyncClient, xid: u32, args: &[u8]) -> Vec<u8> {
    let (h, body) = c.call_raw_xid(xid, PROG, 4, 1, args).unwrap();
    assert_eq!(h.status, ReplyStatus::Success);
    body
}

/// The status and the results of a COMPOUND4res.
fn results(res: &[u8]) -> (u32, Vec<NfsResop4>) {
    let mut r = Reader::new(res);
    let status = r.u32().unwrap();
    let _tag = Opaque::<1024>::decode(&mut r).unwrap();
    let n = r.u32().unwrap();
    let ops = (0..n).map(|_| NfsResop4::decode(&mut r).unwrap()).collect();
    (status, ops)
}

fn run(c: &mut SyncClient, minor: u32, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
    let xid = c.xid();
    results(&send(c, xid, &compound_args(minor, ops)))
}

fn channel() -> ChannelAttrs4 {
    ChannelAttrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 64 << 10,
        ca_maxoperations: 16,
        ca_maxrequests: 8,
        ca_rdma_ird: VarArray(Vec::new()),
    }
}

/// EXCHANGE_ID and CREATE_SESSION for `owner`: the session id.
fn session(c: &mut SyncClient, owner: &[u8]) -> (u64, [u8; 16]) {
    session_with(c, owner, 0)
}

/// [`session`] with CREATE_SESSION flags `flags`.
fn session_with(c: &mut SyncClient, owner: &[u8], flags: u32) -> (u64, [u8; 16]) {
    let (st, r) = run(
        c,
        1,
        vec![NfsArgop4::OpExchangeId(ExchangeId4args {
            eia_clientowner: ClientOwner4 {
                co_verifier: OpaqueFixed([1; 8]),
                co_ownerid: Opaque(owner.to_vec()),
            },
            eia_flags: 0,
            eia_state_protect: StateProtect4A::Sp4None,
            eia_client_impl_id: VarArray(Vec::new()),
        })],
    );
    assert_eq!(st, 0, "EXCHANGE_ID: {r:?}");
    let NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(eid)) = &r[0] else {
        panic!("{r:?}")
    };
    let (st, r) = run(
        c,
        1,
        vec![NfsArgop4::OpCreateSession(CreateSession4args {
            csa_clientid: eid.eir_clientid,
            csa_sequence: eid.eir_sequenceid,
            csa_flags: flags,
            csa_fore_chan_attrs: channel(),
            csa_back_chan_attrs: channel(),
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: VarArray(vec![CallbackSecParms4::AuthNone]),
        })],
    );
    assert_eq!(st, 0, "CREATE_SESSION: {r:?}");
    let NfsResop4::OpCreateSession(CreateSession4res::Nfs4Ok(cs)) = &r[0] else {
        panic!("{r:?}")
    };
    (eid.eir_clientid, cs.csr_sessionid.0)
}

fn sequence(sid: [u8; 16], seq: u32, slot: u32) -> NfsArgop4 {
    NfsArgop4::OpSequence(Sequence4args {
        sa_sessionid: OpaqueFixed(sid),
        sa_sequenceid: seq,
        sa_slotid: slot,
        sa_highest_slotid: 0,
        sa_cachethis: true,
    })
}

fn getattr_type() -> NfsArgop4 {
    NfsArgop4::OpGetattr(Getattr4args {
        attr_request: VarArray(vec![1 << 1]), // FATTR4_TYPE
    })
}

#[test]
fn a_session_runs_compounds_and_a_retried_slot_answers_the_same_bytes() {
    let port = 26510;
    let _s = serve(port, &[]);
    let mut c = client(port);
    let (h, body) = c.call_raw_xid(1, PROG, 4, 0, &[]).unwrap();
    assert_eq!((h.status, body.len()), (ReplyStatus::Success, 0), "NULL");

    // NFSv4.0 is not served.
    let (st, _) = run(&mut c, 0, vec![NfsArgop4::OpPutrootfh]);
    assert_eq!(st, Nfsstat4::Nfs4errMinorVersMismatch as u32);

    let (_, sid) = session(&mut c, b"rnfs test client one");
    let args = compound_args(
        1,
        vec![sequence(sid, 1, 0), NfsArgop4::OpPutrootfh, getattr_type()],
    );
    let first = send(&mut c, 100, &args);
    let (st, r) = results(&first);
    assert_eq!((st, r.len()), (0, 3), "{r:?}");
    let NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok)) = &r[2] else {
        panic!("{r:?}")
    };
    assert_eq!(ok.obj_attributes.attrmask.0, vec![1 << 1]);
    // The same slot and sequence id again, as a client retrying after a lost reply: the
    // cached reply, byte for byte, under the retry's xid.
    let again = send(&mut c, 101, &args);
    assert_eq!(again, first);
    wait_metric(port, "rnfs_nfs4_sequence_replays_total", 1);
    // The next sequence id runs anew.
    let (st, _) = run(&mut c, 1, vec![sequence(sid, 2, 0), NfsArgop4::OpPutrootfh]);
    assert_eq!(st, 0);
    wait_metric(port, "rnfs_nfs4_ops_total{op=\"sequence\"}", 2);
}

#[test]
fn a_closed_connection_is_unbound_from_its_session() {
    let port = 26520;
    let _s = serve(port, &[]);
    let mut c = client(port);
    let (_, sid) = session(&mut c, b"rnfs test client two");
    wait_metric(port, "rnfs_nfs4_state{kind=\"connections\"}", 1);
    let mut other = client(port);
    let (st, _) = run(&mut other, 1, vec![sequence(sid, 1, 0)]);
    assert_eq!(st, 0);
    wait_metric(port, "rnfs_nfs4_state{kind=\"connections\"}", 2);
    drop(other);
    wait_metric(port, "rnfs_nfs4_state{kind=\"connections\"}", 1);
    // The session goes on on the first connection.
    let (st, _) = run(&mut c, 1, vec![sequence(sid, 2, 0), NfsArgop4::OpPutrootfh]);
    assert_eq!(st, 0);
}

#[test]
fn versions_3_refuses_nfsv4_with_the_range_it_serves() {
    let port = 26530;
    let _s = serve(port, &["--versions", "3"]);
    let mut c = client(port);
    let (h, _) = c.call_raw_xid(1, PROG, 4, 0, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::ProgMismatch { low: 3, high: 3 });
    let (h, _) = c.call_raw_xid(2, PROG, 3, 0, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::Success);
}

fn reclaim_complete(c: &mut SyncClient, sid: [u8; 16]) -> u32 {
    let (st, _) = run(
        c,
        1,
        vec![
            sequence(sid, 1, 0),
            NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs: false }),
        ],
    );
    st
}

fn restart_grace(state: &Path) {
    let port = 26540;
    let owner = b"rnfs test client restarting";
    {
        let _s = serve(port, &["--state-dir", state.to_str().unwrap()]);
        wait_metric(port, "rnfs_nfs4_grace", 0); // nothing recorded: no grace
        let mut c = client(port);
        let (_, sid) = session(&mut c, owner);
        assert_eq!(reclaim_complete(&mut c, sid), 0);
    }
    // Restarted with a 90 s lease: grace lasts until the recorded client is done.
    let _s = serve(port, &["--state-dir", state.to_str().unwrap()]);
    wait_metric(port, "rnfs_nfs4_grace", 1);
    let mut c = client(port);
    let (_, sid) = session(&mut c, owner);
    wait_metric(port, "rnfs_nfs4_grace", 1);
    assert_eq!(reclaim_complete(&mut c, sid), 0);
    wait_metric(port, "rnfs_nfs4_grace", 0);
}

#[test]
fn after_a_restart_a_recorded_client_gets_grace_and_its_reclaim_complete_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    restart_grace(dir.path());
}

/// The server's calls on the client's own connection (the back channel): sends a
/// COMPOUND, answers every call that comes before its reply (each with SUCCESS and no
/// results, as CB_NULL's reply is), and returns those calls' (prog, vers, proc) and the
/// COMPOUND4res.
fn send_answering_calls(c: &mut SyncClient, args: &[u8]) -> (Vec<(u32, u32, u32)>, Vec<u8>) {
    send_seeing_calls(c, args, true)
}

/// Sends a COMPOUND and reads its reply, noting each call the server sends meanwhile
/// (program, version, procedure) and answering it with SUCCESS if `answer`.
fn send_seeing_calls(
    c: &mut SyncClient,
    args: &[u8],
    answer: bool,
) -> (Vec<(u32, u32, u32)>, Vec<u8>) {
    let xid = c.xid();
    let msg = c.call_message(xid, PROG, 4, 1, args);
    c.send_message(&msg).unwrap();
    let mut calls = Vec::new();
    loop {
        let rec = c.recv_record().unwrap();
        let mut r = Reader::new(&rec);
        let (rxid, kind) = (r.u32().unwrap(), r.u32().unwrap());
        if kind == 0 {
            let _rpcvers = r.u32().unwrap();
            calls.push((r.u32().unwrap(), r.u32().unwrap(), r.u32().unwrap()));
            if !answer {
                continue;
            }
            // REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS.
            let mut reply = rxid.to_be_bytes().to_vec();
            for w in [1u32, 0, 0, 0, 0] {
                reply.extend_from_slice(&w.to_be_bytes());
            }
            c.send_message(&reply).unwrap();
            continue;
        }
        assert_eq!(rxid, xid);
        let h = rnfs_proto::rpc::ReplyHeader::decode(&mut Reader::new(&rec)).unwrap();
        assert_eq!(h.status, ReplyStatus::Success);
        // xid, REPLY, MSG_ACCEPTED, an AUTH_NONE verifier (2 words), SUCCESS.
        return (calls, rec[24..].to_vec());
    }
}

/// Like [`send_answering_calls`], for a client that never answers calls the server sends
/// on its connection (it reads past them): the calls seen, and the COMPOUND4res bytes.
fn send_ignoring_calls(c: &mut SyncClient, args: &[u8]) -> (Vec<(u32, u32, u32)>, Vec<u8>) {
    send_seeing_calls(c, args, false)
}

fn status_flags(r: &[NfsResop4]) -> u32 {
    let NfsResop4::OpSequence(Sequence4res::Nfs4Ok(ok)) = &r[0] else {
        panic!("{r:?}")
    };
    ok.sr_status_flags
}

#[test]
fn the_back_channel_is_probed_and_reported_down_only_when_it_is() {
    let port = 26550;
    // A 10 s lease makes the callback timeout 1 s (lease/10, at least 1 s).
    let _s = serve(port, &["--lease", "10"]);
    let mut a = client(port);
    let (_, sid) = session_with(
        &mut a,
        b"rnfs test client callbacks",
        CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
    );
    // The CB_NULL probe arrives on this connection; answer it, then SEQUENCE says all is
    // well (the probe may come before or after SEQUENCE's reply).
    let mut seen = Vec::new();
    let mut seq = 1;
    let t = Instant::now();
    while seen.is_empty() {
        let (calls, res) =
            send_answering_calls(&mut a, &compound_args(1, vec![sequence(sid, seq, 0)]));
        seq += 1;
        let (st, r) = results(&res);
        assert_eq!(
            (st, status_flags(&r)),
            (0, 0),
            "a working back channel is never reported down"
        );
        seen.extend(calls);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no CB_NULL probe came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        seen[0],
        (0x4000_0000, 1, 0),
        "CB_NULL to the session's callback program"
    );
    // The back channel's only connection goes away. SEQUENCE on a new connection binds it
    // to both channels (the session has a back channel) and the server probes it there;
    // this client never answers, so once the probe times out SEQUENCE says the path is down.
    let mut b = client(port);
    drop(a);
    let t = Instant::now();
    let mut probes = Vec::new();
    loop {
        let (calls, res) =
            send_ignoring_calls(&mut b, &compound_args(1, vec![sequence(sid, seq, 0)]));
        probes.extend(calls);
        seq += 1;
        let (st, r) = results(&res);
        assert_eq!(st, 0);
        // Down may be said at once (the only back-channel connection just went); the
        // probe on the new connection follows, and finds no answer.
        let probed = probes.contains(&(0x4000_0000, 1, 0));
        if probed && status_flags(&r) & SEQ4_STATUS_CB_PATH_DOWN != 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no CB_NULL probe on the new connection ({probes:?}), or CB_PATH_DOWN never set"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SEQUENCE, PUTROOTFH, SETATTR of the `owner` attribute to `owner`: the status.
fn set_owner(c: &mut SyncClient, sid: [u8; 16], seq: u32, owner: &str) -> u32 {
    let mut vals = (owner.len() as u32).to_be_bytes().to_vec();
    vals.extend(owner.as_bytes());
    vals.resize(vals.len().next_multiple_of(4), 0);
    let set = NfsArgop4::OpSetattr(Setattr4args {
        stateid: Stateid4 {
            seqid: 0,
            other: OpaqueFixed([0; 12]),
        },
        obj_attributes: Fattr4 {
            attrmask: VarArray(vec![0, 1 << (36 - 32)]), // FATTR4_OWNER
            attr_vals: Opaque(vals),
        },
    });
    run(
        c,
        1,
        vec![sequence(sid, seq, 0), NfsArgop4::OpPutrootfh, set],
    )
    .0
}

/// SEQUENCE, PUTROOTFH, GETATTR of `owner`: the string answered.
fn owner_of(c: &mut SyncClient, sid: [u8; 16], seq: u32) -> String {
    let get = NfsArgop4::OpGetattr(Getattr4args {
        attr_request: VarArray(vec![0, 1 << (36 - 32)]),
    });
    let (st, r) = run(
        c,
        1,
        vec![sequence(sid, seq, 0), NfsArgop4::OpPutrootfh, get],
    );
    assert_eq!(st, 0, "{r:?}");
    let NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok)) = &r[2] else {
        panic!("{r:?}")
    };
    let v = &ok.obj_attributes.attr_vals.0;
    let len = u32::from_be_bytes(v[..4].try_into().unwrap()) as usize;
    String::from_utf8(v[4..4 + len].to_vec()).unwrap()
}

/// `--idmap-domain`: `root@DOMAIN` is accepted (any case of the domain), another domain
/// is BADOWNER; numeric ids still work and are what replies carry unless `--idmap-names`,
/// which answers `root@DOMAIN`. Without the flag, a name is BADOWNER.
#[test]
fn idmap_domain_accepts_and_answers_owner_names() {
    let bad = Nfsstat4::Nfs4errBadowner as u32;
    let port = 26980;
    let s = serve(port, &["--idmap-domain", "example.org"]);
    let mut c = client(port);
    let (_, sid) = session(&mut c, b"rnfs idmap client");
    assert_eq!(set_owner(&mut c, sid, 1, "root@example.org"), 0);
    assert_eq!(set_owner(&mut c, sid, 2, "root@EXAMPLE.ORG"), 0);
    assert_eq!(set_owner(&mut c, sid, 3, "root@other.org"), bad);
    assert_eq!(set_owner(&mut c, sid, 4, "0"), 0);
    assert_eq!(owner_of(&mut c, sid, 5), "0");
    drop(s);

    let port = 26984;
    let _s = serve(port, &["--idmap-domain", "example.org", "--idmap-names"]);
    let mut c = client(port);
    let (_, sid) = session(&mut c, b"rnfs idmap client");
    assert_eq!(set_owner(&mut c, sid, 1, "root@example.org"), 0);
    assert_eq!(owner_of(&mut c, sid, 2), "root@example.org");

    let port = 26988;
    let _s = serve(port, &[]);
    let mut c = client(port);
    let (_, sid) = session(&mut c, b"rnfs idmap client");
    assert_eq!(set_owner(&mut c, sid, 1, "root@example.org"), bad);
    assert_eq!(set_owner(&mut c, sid, 2, "0"), 0);
}

/// A measurement, not a check (run by hand, `--ignored`): SEQUENCE + PUTROOTFH + GETATTR
/// compounds against `rnfs serve` of a local directory, from `RNFS_BENCH_CLIENTS`
/// connections (default 1 and 8 in turn), each with its own session, for
/// `RNFS_BENCH_SECS` seconds (default 5) each; prints compounds per second. The binary
/// is `RNFS_BENCH_BIN` (default this build's), the port `RNFS_BENCH_PORT` (default 24100),
/// the directory a new one under `RNFS_TEST_WORK` (default the system's temp dir).
#[test]
#[ignore]
fn bench_small_compounds() {
    let env = |k: &str| std::env::var(k).ok();
    let port: u16 = env("RNFS_BENCH_PORT").map_or(24100, |p| p.parse().unwrap());
    let secs: u64 = env("RNFS_BENCH_SECS").map_or(5, |p| p.parse().unwrap());
    let bin = env("RNFS_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_rnfs").to_string());
    let work = env("RNFS_TEST_WORK").map_or_else(std::env::temp_dir, Into::into);
    std::fs::create_dir_all(&work).unwrap();
    let dir = tempfile::tempdir_in(&work).unwrap();
    std::fs::write(dir.path().join("f"), b"data").unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.path())
        .args(["--no-rpcbind", "--state-dir"])
        .arg(dir.path().join(".state"))
        .args(["--listen", &addr(port).to_string()])
        .args(["--metrics", &addr(port + 1).to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _s = Server(child);
    let t = Instant::now();
    while !rnfs_testkit::listening(addr(port)) {
        assert!(t.elapsed() < Duration::from_secs(20), "did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let clients: Vec<usize> = env("RNFS_BENCH_CLIENTS").map_or(vec![1, 8], |v| {
        v.split(',').map(|n| n.parse().unwrap()).collect()
    });
    let get = || {
        NfsArgop4::OpGetattr(Getattr4args {
            // type, change, size; mode, numlinks, owner, time_modify
            attr_request: VarArray(vec![
                1 << 1 | 1 << 3 | 1 << 4,
                1 << 1 | 1 << 3 | 1 << 4 | 1 << 21,
            ]),
        })
    };
    for n in clients {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(secs);
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut c = client(port);
                    let (_, sid) = session(&mut c, format!("bench {n} {i}").as_bytes());
                    let mut seq = 1;
                    while Instant::now() < until {
                        let ops = vec![sequence(sid, seq, 0), NfsArgop4::OpPutrootfh, get()];
                        let (st, _) = run(&mut c, 1, ops);
                        assert_eq!(st, 0);
                        seq += 1;
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = done.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "clients {n}: {total} compounds in {secs} s: {:.0}/s",
            total as f64 / secs as f64
        );
    }
}
