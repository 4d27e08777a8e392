//! Export rules seen from clients on different loopback addresses and ports.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use rnfs_proto::mount3::{self, MountRes, MountStat3};
use rnfs_proto::nfs3::*;
use rnfs_rpc::client::SyncClient;
use rnfs_server::exports::parse_exports;
use rnfs_server::Export;
use rnfs_xdr::XdrString;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

fn mount_from(server: SocketAddr, src: &str, port: u16, uid: u32) -> Result<Nfs, MountStat3> {
    let local: SocketAddr = format!("{src}:{port}").parse().unwrap();
    let mut c = SyncClient::connect_from(local, server).unwrap();
    c.auth_sys(uid, uid, &[]);
    let r: MountRes = c
        .call(
            mount3::PROGRAM,
            3,
            mount3::Proc::Mnt as u32,
            &XdrString::<1024>(b"/a".to_vec()),
        )
        .unwrap();
    match r {
        MountRes::Ok(ok) => Ok(Nfs {
            c,
            root: ok.fhandle,
        }),
        MountRes::Err(e) => Err(e),
    }
}

#[test]
fn rules_by_address_squashing_and_reload() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let text = format!(
        "{0}  127.0.0.1(rw,no_root_squash,insecure) 127.0.0.2(ro,insecure) 127.0.0.3(rw,insecure) \
         127.0.0.4(rw,all_squash,anonuid=4242,anongid=4243,insecure) 127.0.0.5(rw,no_root_squash)\n",
        d.path().display()
    );
    let mut cfg = parse_exports("test", &text).unwrap();
    cfg.exports[0].name = "/a".into();
    let fs: Arc<dyn rnfs_vfs::Backend> =
        Arc::new(rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap());
    let s = TestServer::start_export(Export::from_spec(&cfg.exports[0], fs.clone()));

    // 127.0.0.1: read-write, root stays root.
    let mut c = mount_from(s.addr, "127.0.0.1", 0, 0).unwrap();
    let root = c.root.clone();
    let f = c.file(&root, "by-root");
    assert_eq!(
        std::fs::metadata(d.path().join("by-root")).unwrap().uid(),
        0
    );

    // 127.0.0.2: read-only.
    let mut ro = mount_from(s.addr, "127.0.0.2", 0, 0).unwrap();
    assert_eq!(ro.read(&f, 0, 10).unwrap(), (vec![], true));
    assert_eq!(
        ro.create(&root, "nope", CreateHow3::Unchecked(Sattr3::default())),
        Err(Nfsstat3::Rofs)
    );
    assert_eq!(
        ro.write(&f, 0, b"x", StableHow::FileSync).map(|_| ()),
        Err(Nfsstat3::Rofs)
    );

    // 127.0.0.3: root_squash (the default): root's files belong to nobody.
    if rnfs_testkit::is_root() {
        let mut sq = mount_from(s.addr, "127.0.0.3", 0, 0).unwrap();
        sq.file(&root, "squashed");
        let m = std::fs::metadata(d.path().join("squashed")).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534));
        // An ordinary user keeps its identity.
        let mut user = mount_from(s.addr, "127.0.0.3", 0, 1000).unwrap();
        user.file(&root, "by-user");
        assert_eq!(
            std::fs::metadata(d.path().join("by-user")).unwrap().uid(),
            1000
        );
        // 127.0.0.4: all_squash with anonuid/anongid.
        let mut all = mount_from(s.addr, "127.0.0.4", 0, 1000).unwrap();
        all.file(&root, "all-squashed");
        let m = std::fs::metadata(d.path().join("all-squashed")).unwrap();
        assert_eq!((m.uid(), m.gid()), (4242, 4243));
    } else {
        rnfs_testkit::skip(
            "the squashing checks (127.0.0.3, 127.0.0.4): ownership needs per-call \
             credentials, which need root; the rest of the test ran",
        );
    }

    // 127.0.0.5: secure: an unprivileged source port is refused, a privileged one accepted.
    assert_eq!(
        mount_from(s.addr, "127.0.0.5", 0, 0).err(),
        Some(MountStat3::Acces)
    );
    let mut insecure_nfs =
        SyncClient::connect_from("127.0.0.5:0".parse().unwrap(), s.addr).unwrap();
    let r: GetattrRes = insecure_nfs
        .call(
            PROGRAM,
            3,
            Proc::Getattr as u32,
            &GetattrArgs {
                object: root.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        r.status(),
        Nfsstat3::Perm,
        "NFS calls from an unprivileged port are refused too"
    );
    if rnfs_testkit::is_root() {
        let port = 700 + (std::process::id() % 200) as u16;
        let mut sec = mount_from(s.addr, "127.0.0.5", port, 0).unwrap();
        sec.file(&root, "from-privileged-port");
    } else {
        rnfs_testkit::skip(
            "the privileged-port mount of a secure export (binding a port below 1024 needs \
             root); the rest of the test ran",
        );
    }

    // Anyone else: no access at all.
    assert_eq!(
        mount_from(s.addr, "127.0.0.9", 0, 0).err(),
        Some(MountStat3::Acces)
    );
    let mut stranger = SyncClient::connect_from("127.0.0.9:0".parse().unwrap(), s.addr).unwrap();
    let r: GetattrRes = stranger
        .call(
            PROGRAM,
            3,
            Proc::Getattr as u32,
            &GetattrArgs {
                object: root.clone(),
            },
        )
        .unwrap();
    assert_eq!(r.status(), Nfsstat3::Acces);

    // Reload without the export: the client's handles now get ACCES, not data.
    s.server.reload(vec![]);
    assert_eq!(c.getattr(&f), Err(Nfsstat3::Acces));
    assert_eq!(c.read(&f, 0, 1), Err(Nfsstat3::Acces));
    // And back: the same handles work again.
    s.server
        .reload(vec![Export::from_spec(&cfg.exports[0], fs)]);
    assert!(c.getattr(&f).is_ok());
}
