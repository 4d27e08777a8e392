//! A small NFSv4.0 client of our own for the server's tests (blocking std sockets): a
//! connection running minor-0 COMPOUNDs with SETCLIENTID naming a callback service, and
//! that service, which answers CB_NULL and CB_RECALL and reports every call it gets.
use super::V4_WAIT as WAIT;
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_testkit::nfs4::{compound_call, compound_reply, read_record, write_record};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr, XdrString};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// The callback program and `callback_ident` the client names.
pub const CB_PROG: u32 = 0x4000_0123;
pub const IDENT: u32 = 42;

/// A call the server sent to the callback service.
#[derive(Debug)]
pub struct CbCall {
    pub proc_: u32,
    pub prog: u32,
    pub cred: OpaqueAuth,
    pub args: Option<CbCompound4args>,
}

/// The client's callback service: every call is sent on `calls`; CB_NULL is answered,
/// CB_COMPOUND answered NFS4_OK unless `drop` is set. Each connection accepted is served
/// on a thread of its own.
pub fn cb_service(drop_compounds: Arc<AtomicBool>) -> (SocketAddr, mpsc::Receiver<CbCall>) {
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
pub fn recall_ok(a: &CbCompound4args) -> Vec<u8> {
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
pub struct Client {
    pub s: TcpStream,
    xid: u32,
}

impl Client {
    pub fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Self { s, xid: 100 }
    }

    /// COMPOUND `ops` (minor version 0): its status and results.
    pub fn compound(&mut self, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
        self.xid += 1;
        write_record(&mut self.s, &compound_call(self.xid, 0, ops));
        compound_reply(&read_record(&mut self.s).unwrap(), self.xid)
    }

    /// SETCLIENTID naming `cb` (netid "tcp") and SETCLIENTID_CONFIRM: the client id.
    pub fn setclientid(&mut self, owner: &[u8], cb: &str) -> u64 {
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
pub fn uaddr(a: SocketAddr) -> String {
    format!("{}.{}.{}", a.ip(), a.port() >> 8, a.port() & 0xff)
}
