//! RPC-level behaviour: rejections, malformed and oversized input, pipelining, the
//! duplicate request cache.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use rnfs_proto::nfs3::*;
use rnfs_proto::rpc::{AuthStat, ReplyHeader, ReplyStatus};
use rnfs_rpc::client::SyncClient;
use rnfs_rpc::transport::Config;
use rnfs_xdr::{Reader, Writer, Xdr};

fn status_of(reply: &[u8]) -> ReplyStatus {
    ReplyHeader::decode(&mut Reader::new(reply)).unwrap().status
}

#[test]
fn rejections() {
    let s = TestServer::start(memory(1 << 20));
    let mut c = SyncClient::connect(s.addr).unwrap();
    let (h, _) = c.call_raw_xid(1, 100099, 1, 0, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::ProgUnavail);
    let (h, _) = c.call_raw_xid(2, PROGRAM, 4, 0, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::ProgMismatch { low: 3, high: 3 });
    let (h, _) = c.call_raw_xid(3, PROGRAM, 3, 22, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::ProcUnavail);
    let (h, _) = c
        .call_raw_xid(4, PROGRAM, 3, Proc::Getattr as u32, &[0, 0, 0])
        .unwrap();
    assert_eq!(h.status, ReplyStatus::GarbageArgs);
    let (h, _) = c
        .call_raw_xid(
            5,
            PROGRAM,
            3,
            Proc::Getattr as u32,
            &[0xff, 0xff, 0xff, 0xff],
        )
        .unwrap();
    assert_eq!(
        h.status,
        ReplyStatus::GarbageArgs,
        "a 4 GiB handle length is refused, not allocated"
    );
    // RPC version 3.
    let mut msg = c.call_message(6, PROGRAM, 3, 0, &[]);
    msg[11] = 3;
    c.send_message(&msg).unwrap();
    assert_eq!(
        status_of(&c.recv_record().unwrap()),
        ReplyStatus::RpcMismatch { low: 2, high: 2 }
    );
    // An unknown authentication flavour (RPCSEC_GSS).
    let mut w = Writer::new();
    for v in [7u32, 0, 2, PROGRAM, 3, 0, 6, 0, 0, 0] {
        w.u32(v);
    }
    c.send_message(&w.into_inner()).unwrap();
    assert_eq!(
        status_of(&c.recv_record().unwrap()),
        ReplyStatus::AuthError(AuthStat::RejectedCred)
    );
    // Still serving on the same connection.
    let (h, _) = c.call_raw_xid(8, PROGRAM, 3, 0, &[]).unwrap();
    assert_eq!(h.status, ReplyStatus::Success);
    assert!(s.server.stats.snapshot().bad_calls >= 2);
}

#[test]
fn oversized_record_closes_the_connection_and_nothing_else() {
    let s = TestServer::start_with(
        memory(1 << 20),
        Default::default(),
        Config {
            max_record: 64 * 1024,
            max_in_flight: 8,
            ..Config::default()
        },
    );
    let mut bad = SyncClient::connect(s.addr).unwrap();
    bad.send_raw(&0xffff_fff0u32.to_be_bytes()).unwrap();
    assert!(bad.recv_record().is_err(), "connection closed");
    // Many small fragments adding up past the limit too.
    let mut bad = SyncClient::connect(s.addr).unwrap();
    for _ in 0..20 {
        let mut frag = 8000u32.to_be_bytes().to_vec();
        frag.extend(vec![0u8; 8000]);
        if bad.send_raw(&frag).is_err() {
            break;
        }
    }
    assert!(bad.recv_record().is_err());
    // Garbage that is not even a call is dropped without a reply, and without harm.
    let mut g = SyncClient::connect(s.addr).unwrap();
    g.send_message(&[1, 2, 3]).unwrap();
    let mut c = s.client();
    let () = c.call(Proc::Null, &());
}

#[test]
fn pipelined_calls_are_answered_by_xid() {
    let s = TestServer::start(memory(16 << 20));
    let mut c = s.client();
    let root = c.root.clone();
    let f = c.file(&root, "f");
    c.write(&f, 0, &vec![1u8; 1 << 20], StableHow::Unstable)
        .unwrap();
    // Send 64 calls before reading any reply: big READs mixed with GETATTRs.
    let mut want = std::collections::HashSet::new();
    for i in 0..64u32 {
        let xid = 10_000 + i;
        let msg = if i % 2 == 0 {
            c.c.call_message(
                xid,
                PROGRAM,
                3,
                Proc::Read as u32,
                &rnfs_xdr::to_bytes(&ReadArgs {
                    file: f.clone(),
                    offset: 0,
                    count: 1 << 20,
                }),
            )
        } else {
            c.c.call_message(
                xid,
                PROGRAM,
                3,
                Proc::Getattr as u32,
                &rnfs_xdr::to_bytes(&GetattrArgs { object: f.clone() }),
            )
        };
        c.c.send_message(&msg).unwrap();
        want.insert(xid);
    }
    for _ in 0..64 {
        let r = c.c.recv_record().unwrap();
        let mut rd = Reader::new(&r);
        let h = ReplyHeader::decode(&mut rd).unwrap();
        assert!(want.remove(&h.xid), "unexpected or duplicate xid {}", h.xid);
        if h.xid.is_multiple_of(2) {
            let Res::Ok(ok) = ReadRes::decode(&mut rd).unwrap() else {
                panic!()
            };
            assert_eq!(ok.data.0.len(), 1 << 20);
        }
    }
    assert!(want.is_empty());
}

#[test]
fn many_connections_at_once() {
    let s = TestServer::start(memory(16 << 20));
    let addr = s.addr;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Nfs::connect(addr);
                let root = c.root.clone();
                let f = c.file(&root, &format!("t{t}"));
                for i in 0..20u64 {
                    c.write(&f, i * 100, &[t as u8; 100], StableHow::Unstable)
                        .unwrap();
                }
                assert_eq!(c.read(&f, 0, 2000).unwrap().0, vec![t as u8; 2000]);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn retransmitted_non_idempotent_calls_get_the_original_reply() {
    let (_d, fs) = local();
    let s = TestServer::start(fs);
    let mut c = s.client();
    let root = c.root.clone();
    let f = c.file(&root, "victim");
    let args = rnfs_xdr::to_bytes(&dirop(&root, "victim"));
    let (_, first) =
        c.c.call_raw_xid(777, PROGRAM, 3, Proc::Remove as u32, &args)
            .unwrap();
    let (_, again) =
        c.c.call_raw_xid(777, PROGRAM, 3, Proc::Remove as u32, &args)
            .unwrap();
    assert_eq!(
        rnfs_xdr::from_bytes::<RemoveRes>(&first).unwrap().status(),
        Nfsstat3::Ok
    );
    assert_eq!(
        first, again,
        "the retry is answered from the cache, not with NOENT"
    );
    // A genuinely new call (new xid) runs again.
    let (_, third) =
        c.c.call_raw_xid(778, PROGRAM, 3, Proc::Remove as u32, &args)
            .unwrap();
    assert_eq!(
        rnfs_xdr::from_bytes::<RemoveRes>(&third).unwrap().status(),
        Nfsstat3::NoEnt
    );
    assert_eq!(c.getattr(&f), Err(Nfsstat3::Stale));
    // Same for a guarded CREATE, MKDIR and RENAME.
    let create = rnfs_xdr::to_bytes(&CreateArgs {
        where_: dirop(&root, "g"),
        how: CreateHow3::Guarded(Default::default()),
    });
    let (_, a) =
        c.c.call_raw_xid(900, PROGRAM, 3, Proc::Create as u32, &create)
            .unwrap();
    let (_, b) =
        c.c.call_raw_xid(900, PROGRAM, 3, Proc::Create as u32, &create)
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        rnfs_xdr::from_bytes::<CreateRes>(&b).unwrap().status(),
        Nfsstat3::Ok
    );
    let rename = rnfs_xdr::to_bytes(&RenameArgs {
        from: dirop(&root, "g"),
        to: dirop(&root, "h"),
    });
    let (_, a) =
        c.c.call_raw_xid(901, PROGRAM, 3, Proc::Rename as u32, &rename)
            .unwrap();
    let (_, b) =
        c.c.call_raw_xid(901, PROGRAM, 3, Proc::Rename as u32, &rename)
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        rnfs_xdr::from_bytes::<RenameRes>(&b).unwrap().status(),
        Nfsstat3::Ok
    );
    assert!(s.server.drc_stats().hits >= 3);
}

/// Issue 12, finding 6: the reply cache once keyed on the client's address alone, so a
/// second user on the same host who sent the same xid and arguments on another connection
/// received the first user's cached CREATE reply (and its handle) instead of EXIST.
#[test]
fn a_replay_from_another_user_or_port_runs_afresh() {
    let (d, fs) = local();
    // Any uid may create in the export's root.
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let s = TestServer::start(fs);
    let create = |c: &mut Nfs| {
        let args = rnfs_xdr::to_bytes(&CreateArgs {
            where_: dirop(&c.root, "mine"),
            how: CreateHow3::Guarded(Sattr3 {
                mode: Some(0o600),
                ..Default::default()
            }),
        });
        let (_, r) =
            c.c.call_raw_xid(4242, PROGRAM, 3, Proc::Create as u32, &args)
                .unwrap();
        r
    };
    let status = |r: &[u8]| rnfs_xdr::from_bytes::<CreateRes>(r).unwrap().status();
    let mut alice = s.client();
    alice.c.auth_sys(1000, 1000, &[]);
    let first = create(&mut alice);
    assert_eq!(status(&first), Nfsstat3::Ok);
    // Another user, another connection from 127.0.0.1, same xid and arguments.
    let mut mallory = s.client();
    mallory.c.auth_sys(1001, 1001, &[]);
    let replay = create(&mut mallory);
    assert_ne!(
        replay, first,
        "another user got the first user's cached reply"
    );
    assert_eq!(status(&replay), Nfsstat3::Exist);
    // The same user on another connection (another port) runs afresh too.
    let mut alice2 = s.client();
    alice2.c.auth_sys(1000, 1000, &[]);
    assert_eq!(status(&create(&mut alice2)), Nfsstat3::Exist);
    // A genuine retransmission, on the first connection, still gets the original reply.
    assert_eq!(create(&mut alice), first);
}
