//! Hostile NFSv4.1 clients against the real `rnfs serve` over TCP on 127.0.0.1 (ports
//! 22000-22499; issue 14, acceptance 6): malformed COMPOUNDs (10,000 operations, huge
//! tags, unknown operations, SEQUENCE out of place, forged session ids, garbage and
//! truncated records) and clients creating state without end (EXCHANGE_ID floods, sessions,
//! open and lock owners, opens, locked ranges), while a well-behaved client keeps being
//! served.
//!
//! Each attack is repeated (a hostile client does not give up) until the steady client
//! has completed a given number of calls since the attack began, each answered correctly:
//! that proves it was served while the attack ran, without any wall-clock threshold.
//! Every refusal is the specific error the server's design names, and every bound reached
//! shows in the metrics (the gauge sits at the bound, the refusal counter moved).
#![allow(clippy::unwrap_used)]
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::client::SyncClient;
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PROG: u32 = 100_003;
/// Steady calls that must complete while each attack runs.
const SERVED: u64 = 20;
/// The server's peak resident set after the attacks, at most (a memory bound, not a timing).
const MAX_RSS_KIB: u64 = 64 << 10;
/// A guard against a hang (a dead server or steady client), not a performance bound.
const HANG: Duration = Duration::from_secs(120);

// The nfsstat4 values the attacks must get.
const OK: u32 = 0;
const BADXDR: u32 = Nfsstat4::Nfs4errBadxdr as u32;
const TOO_MANY_OPS: u32 = Nfsstat4::Nfs4errTooManyOps as u32;
const OP_ILLEGAL: u32 = Nfsstat4::Nfs4errOpIllegal as u32;
const SEQUENCE_POS: u32 = Nfsstat4::Nfs4errSequencePos as u32;
const OP_NOT_IN_SESSION: u32 = Nfsstat4::Nfs4errOpNotInSession as u32;
const BADSESSION: u32 = Nfsstat4::Nfs4errBadsession as u32;
const RESOURCE: u32 = Nfsstat4::Nfs4errResource as u32;
const DELAY: u32 = Nfsstat4::Nfs4errDelay as u32;
/// The op number of an OP_ILLEGAL result.
const ILLEGAL_OP: u32 = 10044;
const OP_SEQUENCE: u32 = 53;
const OP_PUTROOTFH: u32 = 24;

/// The server process and its own state directory (so no client recorded by another run
/// puts it in grace).
struct Server(Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Whether the process still runs.
    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// Its peak resident set (VmHWM), in KiB.
    fn peak_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let l = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `rnfs serve --memory` on `port`, metrics on `port + 1`, with `extra` arguments.
fn serve(port: u16, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args(["serve", "--memory", "16MiB", "--no-rpcbind"])
        .arg("--state-dir")
        .arg(dir.path())
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
    Server(child, dir)
}

/// The value of metric line `name` (with its labels) at the metrics port.
fn metric(port: u16, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr(port + 1)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn state(port: u16, kind: &str) -> u64 {
    metric(port, &format!("rnfs_nfs4_state{{kind=\"{kind}\"}}"))
}

fn refused(port: u16, bound: &str) -> u64 {
    metric(
        port,
        &format!("rnfs_nfs4_refused_total{{bound=\"{bound}\"}}"),
    )
}

fn status_count(port: u16, code: u32) -> u64 {
    let name = format!("rnfs_nfs4_status_total{{status=\"{code}\"}}");
    let mut s = TcpStream::connect(addr(port + 1)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(&name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn client(port: u16) -> SyncClient {
    let mut c = SyncClient::connect(addr(port)).unwrap();
    c.auth_sys(0, 0, &[]);
    c
}

/// COMPOUND4args of `ops`, each already encoded, with `tag`.
fn raw_compound(tag: &[u8], ops: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.opaque(tag);
    w.u32(1);
    w.u32(ops.len() as u32);
    for op in ops {
        w.raw(op);
    }
    w.into_inner()
}

fn enc(op: &NfsArgop4) -> Vec<u8> {
    rnfs_xdr::to_bytes(op)
}

/// A COMPOUND4res: its status, its tag and its results.
struct Res {
    status: u32,
    tag: Vec<u8>,
    ops: Vec<NfsResop4>,
}

impl Res {
    /// (op number, status) of each result.
    fn codes(&self) -> Vec<(u32, u32)> {
        self.ops
            .iter()
            .map(|o| {
                let b = rnfs_xdr::to_bytes(o);
                let w = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
                (w(0), w(4))
            })
            .collect()
    }
}

fn parse(res: &[u8]) -> Res {
    let mut r = Reader::new(res);
    let status = r.u32().unwrap();
    let tag = Opaque::<1024>::decode(&mut r).unwrap().0;
    let n = r.u32().unwrap();
    let ops = (0..n).map(|_| NfsResop4::decode(&mut r).unwrap()).collect();
    assert_eq!(r.remaining(), 0, "trailing bytes in the reply");
    Res { status, tag, ops }
}

/// Sends COMPOUND4args bytes; the reply, which must be an accepted SUCCESS.
fn send(c: &mut SyncClient, args: &[u8]) -> Res {
    let xid = c.xid();
    let (h, body) = c.call_raw_xid(xid, PROG, 4, 1, args).unwrap();
    assert_eq!(h.status, ReplyStatus::Success);
    parse(&body)
}

fn run(c: &mut SyncClient, ops: Vec<NfsArgop4>) -> Res {
    let ops: Vec<Vec<u8>> = ops.iter().map(enc).collect();
    send(c, &raw_compound(b"t", &ops))
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

fn exchange_id(c: &mut SyncClient, owner: &[u8]) -> Res {
    run(c, vec![rnfs_testkit::nfs4::exchange_id_op(owner)])
}

fn create_session(c: &mut SyncClient, clientid: u64, seq: u32) -> Res {
    run(
        c,
        vec![NfsArgop4::OpCreateSession(CreateSession4args {
            csa_clientid: clientid,
            csa_sequence: seq,
            csa_flags: 0,
            csa_fore_chan_attrs: channel(),
            csa_back_chan_attrs: channel(),
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: VarArray(vec![CallbackSecParms4::AuthNone]),
        })],
    )
}

/// A client with a session on a connection of its own.
struct V4Client {
    c: SyncClient,
    clientid: u64,
    sid: [u8; 16],
    seq: u32,
}

impl V4Client {
    /// EXCHANGE_ID and CREATE_SESSION for `owner`; `Err` with the status of the first
    /// that fails.
    fn try_new(port: u16, owner: &[u8]) -> Result<Self, u32> {
        let mut c = client(port);
        let r = exchange_id(&mut c, owner);
        let NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(eid)) = &r.ops[0] else {
            return Err(r.status);
        };
        let r = create_session(&mut c, eid.eir_clientid, eid.eir_sequenceid);
        let NfsResop4::OpCreateSession(CreateSession4res::Nfs4Ok(cs)) = &r.ops[0] else {
            return Err(r.status);
        };
        Ok(Self {
            c,
            clientid: eid.eir_clientid,
            sid: cs.csr_sessionid.0,
            seq: 0,
        })
    }

    /// [`V4Client::try_new`], then RECLAIM_COMPLETE (before it a client gets
    /// NFS4ERR_GRACE for new state, RFC 8881 18.51.3).
    fn new(port: u16, owner: &[u8]) -> Self {
        let mut c = Self::try_new(port, owner).unwrap();
        let rc = NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs: false });
        assert_eq!(c.run(vec![rc]).status, OK);
        c
    }

    fn sequence(&mut self) -> NfsArgop4 {
        self.seq += 1;
        NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed(self.sid),
            sa_sequenceid: self.seq,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })
    }

    /// SEQUENCE, then `ops`.
    fn run(&mut self, ops: Vec<NfsArgop4>) -> Res {
        let mut all = vec![self.sequence()];
        all.extend(ops);
        run(&mut self.c, all)
    }

    /// OPEN (creating it) of `name` in the root by open owner `owner`: the status and the
    /// open stateid.
    fn open(&mut self, owner: &[u8], name: &[u8]) -> (u32, Option<Stateid4>) {
        let open = NfsArgop4::OpOpen(Open4args {
            seqid: 0,
            share_access: OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            share_deny: OPEN4_SHARE_DENY_NONE,
            owner: StateOwner4 {
                clientid: self.clientid,
                owner: Opaque(owner.to_vec()),
            },
            // FATTR4_MODE (33) 0644.
            openhow: Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
                attrmask: VarArray(vec![0, 1 << 1]),
                attr_vals: Opaque(0o644u32.to_be_bytes().to_vec()),
            })),
            claim: OpenClaim4::ClaimNull(Opaque(name.to_vec())),
        });
        let r = self.run(vec![NfsArgop4::OpPutrootfh, open]);
        match r.ops.last() {
            Some(NfsResop4::OpOpen(Open4res::Nfs4Ok(ok))) => (r.status, Some(ok.stateid.clone())),
            _ => (r.status, None),
        }
    }

    /// LOCK of byte `at` (a read lock) of the file opened with `open` (the current
    /// filehandle is set by a LOOKUP of `name`): a new lock owner `owner` when `locker` is
    /// `None`, else the lock stateid given. The status and the lock stateid.
    fn lock(&mut self, name: &[u8], at: u64, locker: Locker4) -> (u32, Option<Stateid4>) {
        let lock = NfsArgop4::OpLock(Lock4args {
            locktype: NfsLockType4::ReadLt,
            reclaim: false,
            offset: at,
            length: 1,
            locker,
        });
        let lookup = NfsArgop4::OpLookup(Lookup4args {
            objname: Opaque(name.to_vec()),
        });
        let r = self.run(vec![NfsArgop4::OpPutrootfh, lookup, lock]);
        match r.ops.last() {
            Some(NfsResop4::OpLock(Lock4res::Nfs4Ok(ok))) => {
                (r.status, Some(ok.lock_stateid.clone()))
            }
            _ => (r.status, None),
        }
    }

    fn new_lock_owner(&self, open: &Stateid4, owner: &[u8]) -> Locker4 {
        Locker4::True(OpenToLockOwner4 {
            open_seqid: 0,
            open_stateid: open.clone(),
            lock_seqid: 0,
            lock_owner: StateOwner4 {
                clientid: self.clientid,
                owner: Opaque(owner.to_vec()),
            },
        })
    }
}

/// A well-behaved client on a thread of its own: SEQUENCE, PUTROOTFH, GETATTR(type) again
/// and again, each reply checked, until stopped.
struct Steady {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Steady {
    fn start(port: u16) -> Self {
        let mut c = V4Client::new(port, b"rnfs hostile test: the steady client");
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (done.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let getattr = NfsArgop4::OpGetattr(Getattr4args {
                    attr_request: VarArray(vec![1 << 1]), // FATTR4_TYPE
                });
                let r = c.run(vec![NfsArgop4::OpPutrootfh, getattr]);
                assert_eq!((r.status, r.ops.len()), (OK, 3), "{:?}", r.codes());
                let NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok)) = &r.ops[2] else {
                    panic!("{:?}", r.ops[2])
                };
                assert_eq!(ok.obj_attributes.attrmask.0, vec![1 << 1]);
                // NF4DIR: the root is a directory.
                assert_eq!(ok.obj_attributes.attr_vals.0, 2u32.to_be_bytes());
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self {
            done,
            stop,
            thread: Some(thread),
        }
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn check_running(&mut self) {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            let t = self.thread.take().unwrap();
            match t.join() {
                Ok(()) => panic!("the steady client stopped"),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    /// Stops it; the calls it completed.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
        self.done()
    }

    /// Runs `attempt(0)`, `attempt(1)`, ... (each asserting its own outcome) until at
    /// least `min` attempts were made and this client completed [`SERVED`] calls since
    /// the first: a hostile client that does not give up while another is served.
    fn hammer(&mut self, what: &str, min: u64, mut attempt: impl FnMut(u64)) {
        let start = self.done();
        let t = Instant::now();
        let mut i = 0;
        while i < min || self.done() < start + SERVED {
            attempt(i);
            i += 1;
            self.check_running();
            assert!(t.elapsed() < HANG, "{what}: hung");
        }
        eprintln!(
            "{what}: {i} attempts while the steady client completed {} calls",
            self.done() - start
        );
    }
}

/// Reads from `s` until end of stream: the server closed the connection (an error such as
/// a reset counts too). Panics if a reply arrives instead.
fn closed_by_server(s: &mut TcpStream) {
    s.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 4096];
    if let Ok(n @ 1..) = s.read(&mut buf) {
        panic!("{n} bytes came instead of a close");
    }
}

/// A record mark and `body` as one last fragment.
fn record(body: &[u8]) -> Vec<u8> {
    let mut v = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn malformed_compounds_get_their_errors_while_another_client_is_served() {
    let port = 22010;
    let mut server = serve(port, &[]);
    let mut steady = Steady::start(port);
    let mut h = V4Client::new(port, b"rnfs hostile test: malformed compounds");
    let putrootfh = enc(&NfsArgop4::OpPutrootfh);

    // 10,000 operations: NFS4ERR_TOO_MANY_OPS for the compound before any operation runs
    // (the header's count is checked against the server's limit, 64 before a session is
    // known, and none is decoded), the tag echoed. NFSv4.1 has TOO_MANY_OPS for this
    // where NFSv4.0 answered RESOURCE.
    let before = status_count(port, TOO_MANY_OPS);
    steady.hammer("10,000 operations", 2, |_| {
        let mut ops = vec![enc(&h.sequence())];
        ops.extend((1..10_000).map(|_| putrootfh.clone()));
        let r = send(&mut h.c, &raw_compound(b"ten thousand", &ops));
        assert_eq!(
            (r.status, r.tag.as_slice()),
            (TOO_MANY_OPS, &b"ten thousand"[..])
        );
        assert!(r.ops.is_empty(), "nothing runs: {:?}", r.codes());
        // The slot was not used: the next compound takes the same sequence id.
        h.seq -= 1;
    });
    // 17 operations: within the server's limit before a session is known, past this
    // session's 16 (ca_maxoperations, 2.10.6.4): SEQUENCE answers TOO_MANY_OPS.
    let mut ops = vec![enc(&h.sequence())];
    ops.extend((1..17).map(|_| putrootfh.clone()));
    let r = send(&mut h.c, &raw_compound(b"", &ops));
    assert_eq!(
        (r.status, r.codes()),
        (TOO_MANY_OPS, vec![(OP_SEQUENCE, TOO_MANY_OPS)])
    );
    // The refusal came before the slot was touched (as knfsd): the next compound takes the
    // same sequence id (a later one would be SEQ_MISORDERED).
    h.seq -= 1;
    // The compound-level refusals have no operation to count; SEQUENCE's does.
    assert_eq!(status_count(port, TOO_MANY_OPS), before + 1);

    // A tag past its bound (1024 bytes): BADXDR with no tag and no results.
    steady.hammer("a 1025-byte tag", 2, |_| {
        let r = send(
            &mut h.c,
            &raw_compound(&[b'x'; 1025], std::slice::from_ref(&putrootfh)),
        );
        assert_eq!((r.status, r.tag.len(), r.ops.len()), (BADXDR, 0, 0));
    });
    // A tag of 2 MiB: the record is past the transport's largest (1 MiB and 64 KiB), so
    // the connection is closed before the call is read.
    steady.hammer("a 2 MiB tag", 2, |_| {
        let mut c = client(port);
        let args = raw_compound(&vec![b'x'; 2 << 20], std::slice::from_ref(&putrootfh));
        let xid = c.xid();
        let msg = c.call_message(xid, PROG, 4, 1, &args);
        // The server may close while this is still being written.
        let _ = c.send_message(&msg);
        assert!(c.recv_record().is_err(), "a reply to a 2 MiB record");
    });

    // Unknown operation numbers: NFS4ERR_OP_ILLEGAL, the result as OP_ILLEGAL.
    let before = status_count(port, OP_ILLEGAL);
    let mut n = 0;
    steady.hammer("unknown operations", 4, |i| {
        let bad = [0u32, 1, 2, 77, 9999, u32::MAX][i as usize % 6];
        let args = raw_compound(b"", &[enc(&h.sequence()), bad.to_be_bytes().to_vec()]);
        let r = send(&mut h.c, &args);
        assert_eq!(r.status, OP_ILLEGAL, "op {bad}");
        assert_eq!(
            r.codes(),
            [(OP_SEQUENCE, OK), (ILLEGAL_OP, OP_ILLEGAL)],
            "op {bad}"
        );
        n += 1;
    });
    assert_eq!(status_count(port, OP_ILLEGAL), before + n);
    // As the first operation of a compound too (no session then).
    let r = send(
        &mut h.c,
        &raw_compound(b"", &[77u32.to_be_bytes().to_vec()]),
    );
    assert_eq!(
        (r.status, r.codes()),
        (OP_ILLEGAL, vec![(ILLEGAL_OP, OP_ILLEGAL)])
    );

    // SEQUENCE not first: SEQUENCE_POS where it stands; no SEQUENCE at all:
    // OP_NOT_IN_SESSION.
    steady.hammer("SEQUENCE out of place", 2, |_| {
        let seq = h.sequence();
        let mut again = seq.clone();
        if let NfsArgop4::OpSequence(a) = &mut again {
            a.sa_sequenceid += 1;
        }
        let r = run(&mut h.c, vec![seq, NfsArgop4::OpPutrootfh, again]);
        assert_eq!(r.status, SEQUENCE_POS);
        assert_eq!(
            r.codes(),
            [
                (OP_SEQUENCE, OK),
                (OP_PUTROOTFH, OK),
                (OP_SEQUENCE, SEQUENCE_POS)
            ]
        );
        let r = run(
            &mut h.c,
            vec![NfsArgop4::OpPutrootfh, NfsArgop4::OpPutrootfh],
        );
        assert_eq!(r.status, OP_NOT_IN_SESSION);
        assert_eq!(r.codes(), [(OP_PUTROOTFH, OP_NOT_IN_SESSION)]);
    });

    // Forged session ids: BADSESSION, nothing run after.
    let before = metric(port, "rnfs_nfs4_state{kind=\"sessions\"}");
    steady.hammer("forged session ids", 4, |i| {
        let mut sid = [0u8; 16];
        sid[..8].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
        sid[8..].copy_from_slice(&h.sid[8..]);
        let forged = NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed(sid),
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: true,
        });
        let r = run(&mut h.c, vec![forged, NfsArgop4::OpPutrootfh]);
        assert_eq!(
            (r.status, r.codes()),
            (BADSESSION, vec![(OP_SEQUENCE, BADSESSION)])
        );
    });
    assert_eq!(metric(port, "rnfs_nfs4_state{kind=\"sessions\"}"), before);

    // Garbage records: a record mark announcing more than the largest record closes the
    // connection at once; a record cut short by the peer's close is dropped; a complete
    // record that is not an RPC call is not answered and the connection goes on.
    steady.hammer("garbage records", 2, |i| {
        let mut s = TcpStream::connect(addr(port)).unwrap();
        s.write_all(&0xffff_ffffu32.to_be_bytes()).unwrap();
        closed_by_server(&mut s);

        let mut s = TcpStream::connect(addr(port)).unwrap();
        let mut cut = (0x8000_0000u32 | 400).to_be_bytes().to_vec();
        cut.extend_from_slice(&[7; 100]);
        s.write_all(&cut).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        closed_by_server(&mut s);

        let mut c = client(port);
        let junk: Vec<u8> = (0..64u32).map(|b| (b * 37 + i as u32) as u8).collect();
        c.send_raw(&record(&junk)).unwrap();
        let (h, body) = c.call_raw_xid(7, PROG, 4, 0, &[]).unwrap();
        assert_eq!(
            (h.status, body.len()),
            (ReplyStatus::Success, 0),
            "NULL after junk"
        );
        // A call whose COMPOUND4args do not decode: GARBAGE_ARGS.
        let (h, _) = c.call_raw_xid(8, PROG, 4, 1, &[0, 0, 0]).unwrap();
        assert_eq!(h.status, ReplyStatus::GarbageArgs);
    });

    assert!(server.alive());
    let hostile_ok = h.run(vec![NfsArgop4::OpPutrootfh]);
    assert_eq!(
        hostile_ok.status, OK,
        "the hostile client's session still works"
    );
    let served = steady.finish();
    let peak = server.peak_kib();
    eprintln!("steady client: {served} calls; server peak RSS {peak} KiB");
    // About 9 MiB in practice (the 16 MiB memory export is filled lazily): nothing the
    // attacks sent or made it hold grew past its bound.
    assert!(peak < MAX_RSS_KIB, "peak RSS {peak} KiB");
}

/// The bounds the state test runs with: small, so each is reached in a few calls.
const BOUNDS: &[&str] = &[
    "--v4-limit",
    "clients=12",
    "--v4-limit",
    "unconfirmed=4",
    "--v4-limit",
    "sessions-per-client=3",
    "--v4-limit",
    "conns-per-session=3",
    "--v4-limit",
    "owners-per-client=6",
    "--v4-limit",
    "owners=24",
    "--v4-limit",
    "states-per-client=10",
    "--v4-limit",
    "ranges-per-client=10",
];

#[test]
fn clients_creating_state_without_end_reach_their_bounds_while_another_is_served() {
    let port = 22020;
    let mut server = serve(port, BOUNDS);
    let mut steady = Steady::start(port);
    let mut owners_held = 0;

    // An EXCHANGE_ID flood of new owners, never confirmed: each is answered, the oldest
    // unconfirmed record goes at the bound (4), so the flood holds at most 4 records.
    let mut c = client(port);
    steady.hammer("EXCHANGE_ID flood", 40, |i| {
        let r = exchange_id(&mut c, format!("rnfs hostile flood {i}").as_bytes());
        assert_eq!(r.status, OK);
    });
    assert_eq!(state(port, "unconfirmed_clients"), 4);
    let evicted = metric(port, "rnfs_nfs4_unconfirmed_evicted_total");
    assert!(evicted >= 36, "evicted {evicted}");

    // Sessions without end for one client: RESOURCE past 3.
    let mut a = V4Client::new(port, b"rnfs hostile sessions");
    let mut cs_seq = 2;
    steady.hammer("CREATE_SESSION flood", 4, |i| {
        let r = create_session(&mut a.c, a.clientid, cs_seq);
        if i < 2 {
            assert_eq!(r.status, OK, "session {}", i + 2);
            cs_seq += 1;
        } else {
            // Refused, and the sequence id not consumed.
            assert_eq!(r.codes(), [(43, RESOURCE)]);
        }
    });
    assert!(refused(port, "sessions") >= 2);
    assert_eq!(state(port, "sessions"), 1 + 3);

    // Connections without end for one session: SEQUENCE on a new connection binds it,
    // up to 3; past them RESOURCE (before the slot is looked at: the sequence id stays
    // free).
    let mut conns = Vec::new();
    let conns_before = state(port, "connections");
    steady.hammer("connections per session", 4, |i| {
        let mut c = client(port);
        let seq = a.sequence();
        let r = run(&mut c, vec![seq, NfsArgop4::OpPutrootfh]);
        if i < 2 {
            assert_eq!(r.status, OK, "connection {}", i + 2);
            conns.push(c);
        } else {
            assert_eq!(r.codes(), [(OP_SEQUENCE, RESOURCE)]);
            a.seq -= 1;
        }
    });
    assert_eq!(state(port, "connections"), conns_before + 2);
    assert!(refused(port, "connections") >= 2);
    let r = a.run(vec![NfsArgop4::OpPutrootfh]);
    assert_eq!(r.status, OK, "the session goes on on its own connections");

    // Open owners without end: RESOURCE past 6, the client's own bound.
    let mut b = V4Client::new(port, b"rnfs hostile open owners");
    steady.hammer("open owners", 8, |i| {
        let (st, _) = b.open(format!("owner {i}").as_bytes(), b"shared");
        assert_eq!(st, if i < 6 { OK } else { RESOURCE }, "owner {i}");
    });
    owners_held += 6;
    assert_eq!(state(port, "open_owners"), owners_held);
    let client_refusals = refused(port, "client_state");
    assert!(client_refusals >= 2);

    // Opens without end (one owner, new files): RESOURCE past 10 states.
    let mut d = V4Client::new(port, b"rnfs hostile opens");
    steady.hammer("opens", 12, |i| {
        let (st, _) = d.open(b"one owner", format!("file {i}").as_bytes());
        assert_eq!(st, if i < 10 { OK } else { RESOURCE }, "file {i}");
    });
    owners_held += 1;
    assert_eq!(state(port, "opens"), 6 + 10);
    assert!(refused(port, "client_state") >= client_refusals + 2);

    // Lock owners without end: one open owner and 5 lock owners make 6 owners; then
    // RESOURCE.
    let mut e = V4Client::new(port, b"rnfs hostile lock owners");
    let (st, open) = e.open(b"opener", b"locked");
    assert_eq!(st, OK);
    let open = open.unwrap();
    steady.hammer("lock owners", 7, |i| {
        let locker = e.new_lock_owner(&open, format!("lock owner {i}").as_bytes());
        let (st, _) = e.lock(b"locked", i, locker);
        assert_eq!(st, if i < 5 { OK } else { RESOURCE }, "lock owner {i}");
    });
    owners_held += 6;
    assert_eq!(
        state(port, "open_owners") + state(port, "lock_owners"),
        owners_held
    );
    assert_eq!(state(port, "lock_states"), 5);

    // Locked ranges without end (one lock owner, disjoint bytes): RESOURCE past 10.
    let mut f = V4Client::new(port, b"rnfs hostile ranges");
    let (st, open) = f.open(b"opener", b"ranges");
    assert_eq!(st, OK);
    let mut locker = Some(f.new_lock_owner(&open.unwrap(), b"ranger"));
    let mut last: Option<Stateid4> = None;
    steady.hammer("locked ranges", 12, |i| {
        let l = locker.take().unwrap_or_else(|| {
            Locker4::False(ExistLockOwner4 {
                lock_stateid: last.clone().unwrap(),
                lock_seqid: 0,
            })
        });
        let (st, sid) = f.lock(b"ranges", 2 * i, l);
        assert_eq!(st, if i < 10 { OK } else { RESOURCE }, "range {i}");
        if let Some(sid) = sid {
            last = Some(sid);
        }
    });
    owners_held += 2;
    assert_eq!(state(port, "locked_ranges"), 5 + 10);

    // Another client still creates state, up to its own bound.
    let mut good = V4Client::new(port, b"rnfs hostile test: a good client");
    for i in 0..7 {
        let (st, _) = good.open(format!("good owner {i}").as_bytes(), b"good");
        assert_eq!(st, if i < 6 { OK } else { RESOURCE }, "good owner {i}");
    }
    owners_held += 6;
    assert_eq!(owners_held, 21);
    assert_eq!(
        state(port, "open_owners") + state(port, "lock_owners"),
        owners_held
    );

    // The server's own bound (24 owners): past it, DELAY, for whoever asks.
    let mut g = V4Client::new(port, b"rnfs hostile server bound");
    let server_refusals = refused(port, "server_state");
    steady.hammer("the server's owners", 5, |i| {
        let (st, _) = g.open(format!("owner {i}").as_bytes(), b"shared");
        assert_eq!(st, if i < 3 { OK } else { DELAY }, "owner {i}");
    });
    assert_eq!(state(port, "open_owners") + state(port, "lock_owners"), 24);
    assert!(refused(port, "server_state") >= server_refusals + 2);

    // Clients without end: new owners confirmed one after another until the client
    // records are at their bound (12, unconfirmed ones included): RESOURCE.
    let mut made = Vec::new();
    let before = refused(port, "clients");
    steady.hammer("clients", 1, |i| {
        match V4Client::try_new(port, format!("rnfs hostile client {i}").as_bytes()) {
            Ok(c) => made.push(c),
            Err(st) => assert_eq!(st, RESOURCE, "client {i}"),
        }
    });
    assert!(refused(port, "clients") > before);
    assert_eq!(
        state(port, "clients") + state(port, "unconfirmed_clients"),
        12
    );

    // Nothing grew past its bound, and the clients already in are served.
    assert_eq!(state(port, "sessions"), state(port, "clients") + 2);
    let r = good.run(vec![NfsArgop4::OpPutrootfh]);
    assert_eq!(r.status, OK);
    assert!(server.alive());
    let served = steady.finish();
    let peak = server.peak_kib();
    eprintln!("steady client: {served} calls; server peak RSS {peak} KiB");
    // About 9 MiB in practice (the 16 MiB memory export is filled lazily): nothing the
    // attacks sent or made it hold grew past its bound.
    assert!(peak < MAX_RSS_KIB, "peak RSS {peak} KiB");
}
