//! Changes made beside NFS to a delegated file of a local export recall its delegation
//! (issue 15; pynfs DELEG16-20): a small NFSv4.0 client of our own (blocking std sockets,
//! as in callbacks40.rs) gets read delegations, then the test changes the files directly
//! in the exported directory (chmod, rename, a rename over it, unlink, link) and sees a
//! CB_RECALL for each on its callback service; the holder's own SETATTR through NFS
//! recalls nothing (the server's own change), and a change beside NFS after it does.
#![allow(clippy::unwrap_used, missing_docs)]
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_rpc::transport::{serve, Config};
use rnfs_server::v4::service::{V4Options, V4State};
use rnfs_server::v4::state::delegations::OWN_CHANGE_WINDOW_MS;
use rnfs_server::v4::state::ids::ClientId;
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr, XdrString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const CB_PROG: u32 = 0x4000_0123;
const IDENT: u32 = 42;
/// Generous: only a server that never recalls makes a test wait this long.
const WAIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    nfs: Arc<NfsServer>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// A server of `dir` (the local backend) over NFSv4.0-4.2 with delegations.
    fn start(dir: &Path) -> Self {
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir, false).unwrap());
        let cfg = ServerConfig {
            v4: Some(V4Options {
                minors: (0, 2),
                delegations: true,
                ..V4Options::default()
            }),
            ..ServerConfig::default()
        };
        let nfs = Arc::new(NfsServer::new(Export::new(1, "/", fs), cfg));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (atx, arx) = mpsc::channel();
        let s2 = nfs.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                let stats = s2.conn_stats.clone();
                serve(l, s2, Config::default(), stats, rx).await.unwrap();
            });
        });
        let addr = arx.recv().unwrap();
        Self {
            addr,
            nfs,
            shutdown: tx,
            thread: Some(thread),
        }
    }

    fn v4(&self) -> &Arc<V4State> {
        self.nfs.v4().unwrap()
    }

    /// Waits until `f` holds of the state.
    fn until(&self, what: &str, f: impl Fn(&V4State) -> bool) {
        let until = Instant::now() + WAIT;
        while !f(self.v4()) {
            assert!(Instant::now() < until, "never {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_record(s: &mut TcpStream, msg: &[u8]) {
    let mark = 0x8000_0000u32 | msg.len() as u32;
    let mut b = mark.to_be_bytes().to_vec();
    b.extend_from_slice(msg);
    s.write_all(&b).unwrap();
}

fn read_record(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut h = [0; 4];
        s.read_exact(&mut h).ok()?;
        let h = u32::from_be_bytes(h);
        let mut frag = vec![0; (h & 0x7fff_ffff) as usize];
        s.read_exact(&mut frag).ok()?;
        out.extend_from_slice(&frag);
        if h & 0x8000_0000 != 0 {
            return Some(out);
        }
    }
}

/// A call the server sent to the callback service.
#[derive(Debug)]
#[allow(dead_code)] // as in callbacks40.rs; only `args` is looked at here
struct CbCall {
    proc_: u32,
    prog: u32,
    cred: OpaqueAuth,
    args: Option<CbCompound4args>,
}

/// The client's callback service: every call is sent on `calls`; CB_NULL is answered,
/// CB_COMPOUND answered NFS4_OK unless `drop` is set. Each connection accepted is served
/// on a thread of its own.
fn cb_service(drop_compounds: Arc<AtomicBool>) -> (SocketAddr, mpsc::Receiver<CbCall>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let tx = tx.clone();
            let dropping = drop_compounds.clone();
            std::thread::spawn(move || {
                while let Some(msg) = read_record(&mut s) {
                    let mut r = Reader::new(&msg);
                    let h = CallHeader::decode(&mut r).unwrap();
                    let args = (h.proc_ == 1).then(|| CbCompound4args::decode(&mut r).unwrap());
                    let answer = match &args {
                        None => Some(Vec::new()),
                        Some(_) if dropping.load(Ordering::SeqCst) => None,
                        Some(a) => Some(recall_ok(a)),
                    };
                    if let Some(body) = answer {
                        let mut w = Writer::new();
                        ReplyHeader::with_status(h.xid, ReplyStatus::Success).encode(&mut w);
                        w.raw(&body);
                        write_record(&mut s, &w.into_inner());
                    }
                    let call = CbCall {
                        proc_: h.proc_,
                        prog: h.prog,
                        cred: h.cred,
                        args,
                    };
                    if tx.send(call).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// CB_COMPOUND4res: NFS4_OK for each operation (CB_RECALL).
fn recall_ok(a: &CbCompound4args) -> Vec<u8> {
    let res = a
        .argarray
        .0
        .iter()
        .map(|_| {
            NfsCbResop4::OpCbRecall(CbRecall4res {
                status: Nfsstat4::Nfs4Ok,
            })
        })
        .collect();
    rnfs_xdr::to_bytes(&CbCompound4res {
        status: Nfsstat4::Nfs4Ok,
        tag: Opaque(Vec::new()),
        resarray: VarArray(res),
    })
}

/// A 4.0 client's connection to the server.
struct Client {
    s: TcpStream,
    xid: u32,
}

impl Client {
    fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Self { s, xid: 100 }
    }

    /// COMPOUND `ops` (minor version 0): its status and results.
    fn compound(&mut self, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
        self.xid += 1;
        let mut w = Writer::new();
        CallHeader {
            xid: self.xid,
            rpcvers: 2,
            prog: 100_003,
            vers: 4,
            proc_: 1,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        Compound4args {
            tag: Opaque(Vec::new()),
            minorversion: 0,
            argarray: VarArray(ops),
        }
        .encode(&mut w);
        write_record(&mut self.s, &w.into_inner());
        let reply = read_record(&mut self.s).unwrap();
        let mut r = Reader::new(&reply);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!(h.xid, self.xid);
        let status = r.u32().unwrap();
        let _tag = Opaque::<1024>::decode(&mut r).unwrap();
        let n = r.u32().unwrap();
        let res = (0..n).map(|_| NfsResop4::decode(&mut r).unwrap()).collect();
        (status, res)
    }

    /// SETCLIENTID naming `cb` (netid "tcp") and SETCLIENTID_CONFIRM: the client id.
    fn setclientid(&mut self, owner: &[u8], cb: &str) -> u64 {
        let (st, r) = self.compound(vec![NfsArgop4::OpSetclientid(Setclientid4args {
            client: NfsClientId4 {
                verifier: OpaqueFixed([3; 8]),
                id: Opaque(owner.to_vec()),
            },
            callback: CbClient4 {
                cb_program: CB_PROG,
                cb_location: Netaddr4 {
                    na_r_netid: XdrString(b"tcp".to_vec()),
                    na_r_addr: XdrString(cb.as_bytes().to_vec()),
                },
            },
            callback_ident: IDENT,
        })]);
        let NfsResop4::OpSetclientid(Setclientid4res::Nfs4Ok(ok)) = &r[0] else {
            panic!("{st} {r:?}")
        };
        let (st, _) = self.compound(vec![NfsArgop4::OpSetclientidConfirm(
            SetclientidConfirm4args {
                clientid: ok.clientid,
                setclientid_confirm: ok.setclientid_confirm,
            },
        )]);
        assert_eq!(st, 0, "SETCLIENTID_CONFIRM");
        ok.clientid
    }
}

/// The universal address of `a` (an IPv4 socket address).
fn uaddr(a: SocketAddr) -> String {
    format!("{}.{}.{}", a.ip(), a.port() >> 8, a.port() & 0xff)
}

/// The stateid (`other`) of the next CB_RECALL the service receives within `wait`
/// (CB_NULL probes skipped), or `None`.
fn next_recall(calls: &mpsc::Receiver<CbCall>, wait: Duration) -> Option<[u8; 12]> {
    let until = Instant::now() + wait;
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        let call = calls.recv_timeout(left).ok()?;
        let Some(a) = call.args else { continue };
        for op in &a.argarray.0 {
            if let NfsCbArgop4::OpCbRecall(r) = op {
                return Some(r.stateid.other.0);
            }
        }
    }
}

/// OPEN (creating it, UNCHECKED) `name` in the export's root for read, with an owner of
/// its own (confirmed when the server asks): its handle, open stateid and the read
/// delegation's stateid.
fn open_read(c: &mut Client, id: u64, name: &[u8]) -> (Vec<u8>, Stateid4, Stateid4) {
    let (st, r) = c.compound(vec![
        NfsArgop4::OpPutrootfh,
        NfsArgop4::OpOpen(Open4args {
            seqid: 0,
            share_access: 1,
            share_deny: 0,
            owner: StateOwner4 {
                clientid: id,
                owner: Opaque(name.to_vec()),
            },
            openhow: Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
                attrmask: VarArray(vec![]),
                attr_vals: Opaque(vec![]),
            })),
            claim: OpenClaim4::ClaimNull(Opaque(name.to_vec())),
        }),
        NfsArgop4::OpGetfh,
    ]);
    assert_eq!(st, 0, "OPEN {r:?}");
    let NfsResop4::OpOpen(Open4res::Nfs4Ok(ok)) = &r[1] else {
        panic!("{r:?}")
    };
    let NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(fh)) = &r[2] else {
        panic!("{r:?}")
    };
    let fh = fh.object.0.clone();
    let OpenDelegation4::OpenDelegateRead(d) = &ok.delegation else {
        panic!("no read delegation: {:?}", ok.delegation)
    };
    let mut sid = ok.stateid.clone();
    if ok.rflags & 2 != 0 {
        // OPEN4_RESULT_CONFIRM
        let (st, r) = c.compound(vec![
            NfsArgop4::OpPutfh(Putfh4args {
                object: Opaque(fh.clone()),
            }),
            NfsArgop4::OpOpenConfirm(OpenConfirm4args {
                open_stateid: sid,
                seqid: 1,
            }),
        ]);
        assert_eq!(st, 0, "OPEN_CONFIRM {r:?}");
        let NfsResop4::OpOpenConfirm(OpenConfirm4res::Nfs4Ok(ok)) = &r[1] else {
            panic!("{r:?}")
        };
        sid = ok.open_stateid.clone();
    }
    (fh, sid, d.stateid.clone())
}

#[test]
fn changes_beside_nfs_recall_read_delegations_but_the_holders_own_do_not() {
    let d = tempfile::tempdir().unwrap();
    // The client calls with AUTH_NONE (nobody, when the test runs as root).
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let srv = Server::start(d.path());
    let (cb, calls) = cb_service(Arc::new(AtomicBool::new(false)));
    let mut c = Client::open(srv.addr);
    let id = c.setclientid(b"outside-a", &uaddr(cb));
    srv.until("verified", |v| v.callback40_verified(ClientId(id)));
    let names: [&[u8]; 6] = [b"own", b"chmod", b"rename", b"over", b"unlink", b"link"];
    let mut deleg = Vec::new();
    let mut own = None;
    for n in names {
        let (fh, sid, dsid) = open_read(&mut c, id, n);
        deleg.push(dsid.other.0);
        if n == b"own" {
            own = Some((fh, sid));
        }
    }
    std::fs::write(d.path().join("other"), b"x").unwrap();
    let w = srv.v4().outside_stats().unwrap();
    assert_eq!(w.watched, names.len(), "{w:?}");

    // The holder's own SETATTR (mode 0600) is no change beside NFS: nothing recalled.
    let (fh, sid) = own.unwrap();
    let (st, r) = c.compound(vec![
        NfsArgop4::OpPutfh(Putfh4args {
            object: Opaque(fh.clone()),
        }),
        NfsArgop4::OpSetattr(Setattr4args {
            stateid: sid,
            obj_attributes: Fattr4 {
                attrmask: VarArray(vec![0, 1 << 1]),
                attr_vals: Opaque(0o600u32.to_be_bytes().to_vec()),
            },
        }),
    ]);
    assert_eq!(st, 0, "own SETATTR {r:?}");
    let set_at = Instant::now();
    assert_eq!(
        next_recall(&calls, Duration::from_millis(500)),
        None,
        "the holder's own SETATTR recalled its delegation"
    );

    // Each change made in the exported directory recalls the delegation on its file.
    let p = |n: &str| d.path().join(n);
    std::fs::set_permissions(p("chmod"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[1]), "chmod");
    std::fs::rename(p("rename"), p("rename-2")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[2]), "rename");
    std::fs::rename(p("other"), p("over")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[3]), "rename over");
    std::fs::remove_file(p("unlink")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[4]), "unlink");
    std::fs::hard_link(p("link"), p("link-2")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[5]), "link");

    // Past the window of its own SETATTR, a chmod beside NFS recalls the holder's file.
    let window = Duration::from_millis(OWN_CHANGE_WINDOW_MS + 100);
    if let Some(left) = window.checked_sub(set_at.elapsed()) {
        std::thread::sleep(left);
    }
    std::fs::set_permissions(p("own"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        next_recall(&calls, WAIT),
        Some(deleg[0]),
        "chmod after the window"
    );
    let s = srv.v4().delegation_stats();
    assert_eq!(s.outside_changes, 6, "{s:?}");
    assert!(s.outside_own >= 1, "{s:?}");
}

/// The memory backend cannot be changed beside the server: nothing is watched.
#[test]
fn nothing_is_watched_on_a_backend_only_nfs_changes() {
    let fs = Arc::new(rnfs_vfs::memory::MemFs::with_root(1 << 20, 0, 0, 0o777));
    let cfg = ServerConfig {
        v4: Some(V4Options {
            minors: (0, 2),
            delegations: true,
            ..V4Options::default()
        }),
        ..ServerConfig::default()
    };
    let nfs = NfsServer::new(Export::new(1, "/", fs), cfg);
    let v4 = nfs.v4().unwrap();
    assert_eq!(v4.outside_stats().map(|w| w.watched), Some(0));
}
