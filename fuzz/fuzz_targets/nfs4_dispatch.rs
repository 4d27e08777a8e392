//! The whole server with NFSv4 on (NfsServer over a MemFs), fed COMPOUNDs.
//!
//! First byte odd: the input is the call message as it is. First byte even: a COMPOUND of
//! minor version 1 whose first operation is a valid SEQUENCE on a session the harness made
//! (EXCHANGE_ID + CREATE_SESSION once, at start), then `data[1] % 16` more operations whose
//! bytes are the rest of the input: so the inputs reach the operations themselves, past the
//! session checks, rather than stopping at SEQUENCE. The harness follows the slot's sequence
//! id from the replies (a SEQUENCE that succeeded advances it).
//!
//! Properties: no panic (the panic hook aborts even where NfsServer::call catches one); every
//! reply is an accepted RPC reply whose COMPOUND4res decodes op by op to its end. The server
//! keeps its state (files, opens, locks) between inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth};
use rnfs_rpc::transport::{ConnId, ConnInfo, Service};
use rnfs_server::v4::service::V4Options;
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_xdr::{Opaque, OpaqueFixed, VarArray, Writer, Xdr};
use std::sync::{Arc, Mutex, OnceLock};

struct V4Harness {
    server: NfsServer,
    conn: ConnInfo,
    session: [u8; 16],
    /// The sequence id the next SEQUENCE on slot 0 must carry.
    next_seq: Mutex<u32>,
}

const LIMITS: CompoundLimits = CompoundLimits {
    max_tag: 4096,
    max_ops: 1024,
};

fn call(h_server: &NfsServer, conn: &ConnInfo, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    CallHeader {
        xid: 7,
        rpcvers: 2,
        prog: PROGRAM,
        vers: 4,
        proc_: 1,
        cred: rnfs_fuzz::auth_sys(0, 0),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    let mut msg = w.into_inner();
    msg.extend_from_slice(body);
    h_server.call(conn, &msg).expect("a COMPOUND is answered")
}

/// The COMPOUND4res of an accepted reply (xid, REPLY, accepted, verifier AUTH_NONE,
/// SUCCESS); `None` for GARBAGE_ARGS, the answer (as knfsd's) to a COMPOUND whose header or
/// operation count the message cannot hold: then no operation ran.
fn body(reply: &[u8]) -> Option<&[u8]> {
    assert!(reply.len() >= 24, "short reply");
    assert_eq!(&reply[8..12], &[0, 0, 0, 0], "reply not accepted");
    match reply[20..24] {
        [0, 0, 0, 0] => Some(&reply[24..]),
        [0, 0, 0, 4] => {
            assert_eq!(reply.len(), 24, "GARBAGE_ARGS with a body");
            None
        }
        _ => panic!("accept status {:?}", &reply[20..24]),
    }
}

fn compound(minor: u32, ops: Vec<NfsArgop4>) -> Vec<u8> {
    let mut w = Writer::new();
    Compound4args {
        tag: Opaque(Vec::new()),
        minorversion: minor,
        argarray: VarArray(ops),
    }
    .encode(&mut w);
    w.into_inner()
}

fn first_ok(reply_body: &[u8]) -> Option<NfsResop4> {
    let (_, mut ops) = decode_compound_res(reply_body, &LIMITS).ok()?;
    ops.next()?.ok()
}

fn attrs() -> ChannelAttrs4 {
    ChannelAttrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 64 << 10,
        ca_maxoperations: 32,
        ca_maxrequests: 1,
        ca_rdma_ird: VarArray(Vec::new()),
    }
}

fn build() -> V4Harness {
    let fs = Arc::new(rnfs_vfs::memory::MemFs::new(64 << 20));
    let cfg = ServerConfig {
        v4: Some(V4Options::default()),
        ..ServerConfig::default()
    };
    let server = NfsServer::new(Export::new(1, "/", fs), cfg);
    let conn = ConnInfo {
        id: ConnId::next(),
        peer: "127.0.0.1:700".parse().expect("address"),
        local: "127.0.0.1:2049".parse().expect("address"),
    };
    let eid = NfsArgop4::OpExchangeId(ExchangeId4args {
        eia_clientowner: ClientOwner4 {
            co_verifier: OpaqueFixed([1; 8]),
            co_ownerid: Opaque(b"fuzz".to_vec()),
        },
        eia_flags: 0,
        eia_state_protect: StateProtect4A::Sp4None,
        eia_client_impl_id: VarArray(Vec::new()),
    });
    let r = call(&server, &conn, &compound(1, vec![eid]));
    let Some(NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(e))) = first_ok(body(&r).expect("accepted")) else {
        panic!("EXCHANGE_ID failed")
    };
    let cs = NfsArgop4::OpCreateSession(CreateSession4args {
        csa_clientid: e.eir_clientid,
        csa_sequence: e.eir_sequenceid,
        csa_flags: 0,
        csa_fore_chan_attrs: attrs(),
        csa_back_chan_attrs: attrs(),
        csa_cb_program: 1,
        csa_sec_parms: VarArray(vec![CallbackSecParms4::AuthNone]),
    });
    let r = call(&server, &conn, &compound(1, vec![cs]));
    let Some(NfsResop4::OpCreateSession(CreateSession4res::Nfs4Ok(cs))) = first_ok(body(&r).expect("accepted"))
    else {
        panic!("CREATE_SESSION failed")
    };
    // A client sends RECLAIM_COMPLETE before its first new open or lock (RFC 8881 18.51.3).
    let session = cs.csr_sessionid.0;
    let rc = vec![
        NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed(session),
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        }),
        NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs: false }),
    ];
    let r = call(&server, &conn, &compound(1, rc));
    assert_eq!(&body(&r).expect("accepted")[..4], &[0, 0, 0, 0], "RECLAIM_COMPLETE failed");
    V4Harness {
        server,
        conn,
        session,
        next_seq: Mutex::new(2),
    }
}

fn harness() -> &'static V4Harness {
    static H: OnceLock<V4Harness> = OnceLock::new();
    H.get_or_init(build)
}

/// Checks that a COMPOUND4res decodes op by op to its end.
fn check(reply_body: &[u8]) {
    let (_, mut ops) = decode_compound_res(reply_body, &LIMITS).expect("COMPOUND4res header");
    for op in ops.by_ref() {
        op.expect("every result decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let h = harness();
    let Some(&first) = data.first() else {
        return;
    };
    if first & 1 == 1 {
        if let Some(reply) = h.server.call(&h.conn, &data[1..]) {
            assert!(reply.len() >= 12, "short reply");
        }
        return;
    }
    let more = u32::from(data.get(1).copied().unwrap_or(0) % 16);
    let mut seq = h.next_seq.lock().expect("not poisoned");
    let mut w = Writer::new();
    Opaque::<4096>(Vec::new()).encode(&mut w); // tag
    1u32.encode(&mut w); // minor version
    (1 + more).encode(&mut w);
    NfsArgop4::OpSequence(Sequence4args {
        sa_sessionid: OpaqueFixed(h.session),
        sa_sequenceid: *seq,
        sa_slotid: 0,
        sa_highest_slotid: 0,
        sa_cachethis: data.get(1).is_some_and(|b| b & 0x80 != 0),
    })
    .encode(&mut w);
    let mut args = w.into_inner();
    args.extend_from_slice(data.get(2..).unwrap_or(&[]));
    let reply = call(&h.server, &h.conn, &args);
    let Some(b) = body(&reply) else {
        return;
    };
    check(b);
    if let Some(NfsResop4::OpSequence(Sequence4res::Nfs4Ok(_))) = first_ok(b) {
        *seq = seq.wrapping_add(1);
    }
});
