//! The NFSv4.1 session layer (`client::v4::session`) against the rnfs server over TCP on
//! 127.0.0.1: many calls sharing the slots, a session destroyed under the client, a
//! server restart (a new client id), and a delegation recalled over the back channel and
//! returned by the worker on the privileged path (seed entry 3 over TCP).
#![allow(clippy::unwrap_used, missing_docs)]
mod common;

use common::TestServer;
use rnfs_client::rpc::{RpcClient, RpcConfig};
use rnfs_client::v4::session::{Session, SessionConfig};
use rnfs_client::v4::slots::Class;
use rnfs_proto::nfs4::*;
use rnfs_server::v4::service::V4Options;
use rnfs_server::ServerConfig;
use rnfs_xdr::{Opaque, OpaqueFixed, VarArray};
use std::sync::Arc;
use std::time::Duration;

fn v4_server() -> TestServer {
    // A root anyone may create in (the session's calls are AUTH_NONE).
    let fs = Arc::new(rnfs_vfs::memory::MemFs::with_root(64 << 20, 0, 0, 0o777));
    let cfg = ServerConfig {
        v4: Some(V4Options {
            delegations: true,
            ..V4Options::default()
        }),
        ..ServerConfig::default()
    };
    TestServer::start_with(fs, cfg)
}

async fn session(srv: &TestServer, owner: &str) -> Arc<Session> {
    let cfg = SessionConfig {
        owner: owner.as_bytes().to_vec(),
        rpc: RpcConfig::default(),
        max_delegations: 64,
    };
    Session::establish(srv.addr, cfg).await.unwrap()
}

fn getattr_root() -> Vec<NfsArgop4> {
    vec![
        NfsArgop4::OpPutrootfh,
        NfsArgop4::OpGetattr(Getattr4args {
            attr_request: VarArray(vec![1 << 1]),
        }),
    ]
}

/// PUTROOTFH, OPEN `name` (created UNCHECKED) for read and write, GETFH.
fn open_ops(name: &str, access: u32) -> Vec<NfsArgop4> {
    vec![
        NfsArgop4::OpPutrootfh,
        NfsArgop4::OpOpen(Open4args {
            seqid: 0,
            share_access: access,
            share_deny: 0,
            owner: StateOwner4 {
                clientid: 0,
                owner: Opaque(b"owner".to_vec()),
            },
            openhow: Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
                attrmask: VarArray(vec![]),
                attr_vals: Opaque(vec![]),
            })),
            claim: OpenClaim4::ClaimNull(Opaque(name.as_bytes().to_vec())),
        }),
        NfsArgop4::OpGetfh,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_share_the_slots_and_leave_none_held() {
    let srv = v4_server();
    let s = session(&srv, "many").await;
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.compound(getattr_root(), Class::Normal).await.unwrap().0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0);
    }
    let st = s.slot_stats();
    assert_eq!((st.busy, st.waiting, st.lost, st.misordered), (0, 0, 0, 0));
    assert!(st.max_wait_ms < 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_destroyed_under_the_client_is_replaced_and_calls_go_on() {
    let srv = v4_server();
    let s = session(&srv, "destroyed").await;
    assert_eq!(
        s.compound(getattr_root(), Class::Normal).await.unwrap().0,
        0
    );
    // Someone (an administrator, a bug) destroys the session on the server.
    let sid = s.session_id().unwrap();
    // From another connection, bound to the session first (SP4_NONE allows it).
    let raw = RpcClient::new(srv.addr, RpcConfig::default());
    let r: Compound4res = raw
        .call(
            100_003,
            4,
            1,
            &Compound4args {
                tag: Opaque(Vec::new()),
                minorversion: 1,
                argarray: VarArray(vec![NfsArgop4::OpBindConnToSession(
                    BindConnToSession4args {
                        bctsa_sessid: OpaqueFixed(sid),
                        bctsa_dir: ChannelDirFromClient4::Cdfc4Fore,
                        bctsa_use_conn_in_rdma_mode: false,
                    },
                )]),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status as u32, 0, "{r:?}");
    let r: Compound4res = raw
        .call(
            100_003,
            4,
            1,
            &Compound4args {
                tag: Opaque(Vec::new()),
                minorversion: 1,
                argarray: VarArray(vec![NfsArgop4::OpDestroySession(DestroySession4args {
                    dsa_sessionid: OpaqueFixed(sid),
                })]),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status as u32, 0, "{r:?}");
    // The next call meets BADSESSION; the client makes a new session and goes on.
    assert_eq!(
        s.compound(getattr_root(), Class::Normal).await.unwrap().0,
        0
    );
    assert_ne!(s.session_id().unwrap(), sid);
    let r = s.recovery_stats();
    assert_eq!((r.session_resets, r.client_resets), (1, 0));
    let st = s.slot_stats();
    assert_eq!((st.busy, st.waiting), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_gets_a_new_client_id_and_calls_go_on() {
    let srv = v4_server();
    let s = session(&srv, "restart").await;
    let before = s.clientid();
    srv.restart();
    for _ in 0..3 {
        assert_eq!(
            s.compound(getattr_root(), Class::Normal).await.unwrap().0,
            0
        );
    }
    assert_ne!(s.clientid(), before);
    let r = s.recovery_stats();
    assert_eq!(r.client_resets, 1, "{r:?}");
}

/// Seed entry 3 over TCP: client A holds a write delegation; client B's OPEN of the file
/// makes the server recall it; A's back channel answers at once, its worker returns the
/// delegation on the privileged path, and B's OPEN goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_delegation_is_returned_and_the_other_client_gets_in() {
    let srv = v4_server();
    let a = session(&srv, "holder").await;
    // The server grants delegations once A's back channel answered its probe: open fresh
    // files until one comes (the first, normally).
    let mut n = 0;
    let name = loop {
        n += 1;
        assert!(n < 100, "no delegation granted");
        let name = format!("f{n}");
        let (st, r) = a.compound(open_ops(&name, 3), Class::Normal).await.unwrap();
        assert_eq!(st, 0);
        let (
            Some(NfsResop4::OpOpen(Open4res::Nfs4Ok(o))),
            Some(NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(fh))),
        ) = (r.get(1), r.get(2))
        else {
            panic!("{r:?}")
        };
        if matches!(o.delegation, OpenDelegation4::OpenDelegateWrite(_)) {
            a.delegation_granted(fh.object.0.clone(), &o.delegation);
            break name;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(a.deleg_stats().held, 1);
    let b = session(&srv, "other").await;
    let mut delays = 0;
    loop {
        let (st, _) = b.compound(open_ops(&name, 1), Class::Normal).await.unwrap();
        if st == 0 {
            break;
        }
        assert_eq!(st, Nfsstat4::Nfs4errDelay as u32);
        delays += 1;
        assert!(delays < 200, "the delegation was never returned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delays >= 1, "B's first OPEN should have met the delegation");
    let d = a.deleg_stats();
    assert_eq!((d.held, d.recalls, d.returned), (0, 1, 1));
    let server = srv.server();
    let sd = server.v4().unwrap().delegation_stats();
    assert_eq!((sd.recalls, sd.returned, sd.revoked), (1, 1, 0));
}
