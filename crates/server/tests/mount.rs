//! The MOUNT list and listings (issue 12, finding 5): MNT once recorded each path as sent,
//! so `/`, `//`, `/./` ... were distinct entries and a flood of MNT calls grew the list
//! without bound; DUMP answered anyone with all of it in one reply of any size, and EXPORT
//! listed every export to every host.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use rnfs_proto::mount3::{self, ExportNode, MountBody, MountRes};
use rnfs_rpc::client::SyncClient;
use rnfs_server::exports::parse_exports;
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_xdr::{Reader, XdrString};
use std::net::SocketAddr;

fn connect_from(server: SocketAddr, src: &str) -> SyncClient {
    let mut c = SyncClient::connect_from(format!("{src}:0").parse().unwrap(), server).unwrap();
    c.auth_sys(0, 0, &[]);
    c
}

fn mnt(c: &mut SyncClient, path: &[u8]) -> MountRes {
    c.call(
        mount3::PROGRAM,
        3,
        mount3::Proc::Mnt as u32,
        &XdrString::<1024>(path.to_vec()),
    )
    .unwrap()
}

/// A DUMP or EXPORT call: the whole reply message's length, and the decoded list.
fn listing<T: rnfs_xdr::Xdr>(c: &mut SyncClient, proc_: mount3::Proc) -> (usize, Vec<T>) {
    let xid = c.xid();
    let msg = c.call_message(xid, mount3::PROGRAM, 3, proc_ as u32, &[]);
    c.send_message(&msg).unwrap();
    let reply = c.recv_record().unwrap();
    let mut r = Reader::new(&reply);
    rnfs_proto::rpc::ReplyHeader::decode(&mut r).unwrap();
    (
        reply.len(),
        rnfs_proto::decode_list(&mut r, 1 << 20).unwrap(),
    )
}

fn dump(c: &mut SyncClient) -> (usize, Vec<(String, String)>) {
    let (len, l) = listing::<MountBody>(c, mount3::Proc::Dump);
    let l = l
        .into_iter()
        .map(|b| {
            (
                b.hostname.lossy().into_owned(),
                b.directory.lossy().into_owned(),
            )
        })
        .collect();
    (len, l)
}

#[test]
fn spellings_of_a_path_are_one_entry_and_a_client_has_a_bound() {
    let s = TestServer::start(memory(1 << 20));
    let mut nfs = s.client();
    let root = nfs.root.clone();
    let mut c = connect_from(s.addr, "127.0.0.1");
    for p in ["/", "//", "/./", "/.//./", "", "///.//"] {
        assert!(
            matches!(mnt(&mut c, p.as_bytes()), MountRes::Ok(_)),
            "{p:?}"
        );
    }
    let (_, l) = dump(&mut c);
    assert_eq!(l, [("127.0.0.1".to_string(), "/".to_string())]);
    // `..` is refused, not recorded.
    assert_eq!(
        mnt(&mut c, b"/d/.."),
        MountRes::Err(mount3::MountStat3::Inval)
    );
    // 100 directories mounted: the client keeps its newest 64 entries (the default bound).
    for i in 0..100 {
        nfs.mkdir(&root, &format!("d{i}")).unwrap();
        assert!(matches!(
            mnt(&mut c, format!("//d{i}/").as_bytes()),
            MountRes::Ok(_)
        ));
    }
    let (_, l) = dump(&mut c);
    let want: Vec<(String, String)> = (36..100)
        .map(|i| ("127.0.0.1".to_string(), format!("/d{i}")))
        .collect();
    assert_eq!(l, want);
    assert_eq!(s.server.mount_list_stats(), (64, 37));
    // UMNT under another spelling forgets the entry; UMNTALL forgets the client.
    let () = c
        .call(
            mount3::PROGRAM,
            3,
            mount3::Proc::Umnt as u32,
            &XdrString::<1024>(b"/./d99//".to_vec()),
        )
        .unwrap();
    assert_eq!(dump(&mut c).1.len(), 63);
    let () = c
        .call(mount3::PROGRAM, 3, mount3::Proc::Umntall as u32, &())
        .unwrap();
    assert_eq!(dump(&mut c).1.len(), 0);
}

#[test]
fn no_dump_reply_is_larger_than_its_bound() {
    let s = TestServer::start(memory(16 << 20));
    let mut nfs = s.client();
    // 64 paths of about 1,000 bytes each, mounted from 10 addresses: a list of ~650 KB.
    let mut dir = nfs.root.clone();
    let mut prefix = String::new();
    for l in ["a", "b", "c"] {
        let n = l.repeat(240);
        dir = nfs.mkdir(&dir, &n).unwrap();
        prefix = format!("{prefix}/{n}");
    }
    let paths: Vec<String> = (0..64)
        .map(|i| {
            let n = format!("{i:03}{}", "x".repeat(237));
            nfs.mkdir(&dir, &n).unwrap();
            format!("{prefix}/{n}")
        })
        .collect();
    for host in 1..=10 {
        let mut c = connect_from(s.addr, &format!("127.0.0.{host}"));
        for p in &paths {
            assert!(matches!(mnt(&mut c, p.as_bytes()), MountRes::Ok(_)));
        }
    }
    assert_eq!(s.server.mount_list_stats().0, 640);
    let mut c = connect_from(s.addr, "127.0.0.1");
    let (len, l) = dump(&mut c);
    assert!(
        len <= rnfs_server::v3::mount::MAX_REPLY,
        "a DUMP reply of {len} bytes"
    );
    // Cut at the bound, not far below it: as many whole entries as fit.
    assert!(l.len() >= 200 && l.len() < 640, "{} entries", l.len());
    // The oldest entries come first, whole.
    assert_eq!(l[0], ("127.0.0.1".to_string(), paths[0].clone()));
}

#[test]
fn dump_and_export_show_a_host_only_the_exports_it_may_use() {
    let text = "/a 127.0.0.1(rw,insecure)\n/b 127.0.0.2(rw,insecure) 10.0.0.0/8(ro)\n";
    let cfg = parse_exports("test", text).unwrap();
    let exports = cfg
        .exports
        .iter()
        .map(|spec| Export::from_spec(spec, memory(1 << 20)))
        .collect();
    let s = TestServer::start_server(
        NfsServer::with_exports(exports, ServerConfig::default()),
        Default::default(),
    );
    let mut one = connect_from(s.addr, "127.0.0.1");
    let mut two = connect_from(s.addr, "127.0.0.2");
    let mut three = connect_from(s.addr, "127.0.0.3");
    assert!(matches!(mnt(&mut one, b"/a"), MountRes::Ok(_)));
    assert!(matches!(mnt(&mut two, b"/b/"), MountRes::Ok(_)));
    assert!(matches!(mnt(&mut three, b"/a"), MountRes::Err(_)));

    let exports = |c: &mut SyncClient| -> Vec<(String, Vec<String>)> {
        listing::<ExportNode>(c, mount3::Proc::Export)
            .1
            .into_iter()
            .map(|e| {
                (
                    e.dir.lossy().into_owned(),
                    e.groups.iter().map(|g| g.lossy().into_owned()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        exports(&mut one),
        [("/a".to_string(), vec!["127.0.0.1".to_string()])]
    );
    assert_eq!(
        exports(&mut two),
        [(
            "/b".to_string(),
            vec!["127.0.0.2".to_string(), "10.0.0.0/8".to_string()]
        )]
    );
    assert!(exports(&mut three).is_empty());

    let entry = |h: &str, p: &str| (h.to_string(), p.to_string());
    assert_eq!(dump(&mut one).1, [entry("127.0.0.1", "/a")]);
    assert_eq!(dump(&mut two).1, [entry("127.0.0.2", "/b")]);
    assert!(dump(&mut three).1.is_empty());
}
