//! The export boundary (seed entry 14) and file handle integrity: nothing outside the
//! export is ever named, listed or reached, whatever the client sends.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use rnfs_proto::nfs3::*;
use rnfs_xdr::{OpaqueFixed, XdrString};

#[test]
fn dotdot_at_the_root_is_the_root() {
    let (_d, fs) = local();
    let s = TestServer::start(fs);
    let mut c = s.client();
    let root = c.root.clone();
    let root_id = c.getattr(&root).unwrap().fileid;
    let (h, a) = c.lookup(&root, "..").unwrap();
    assert_eq!((h, a.fileid), (root.clone(), root_id));
    // `..` of `..` of a subdirectory stops at the root too.
    let sub = c.mkdir(&root, "sub").unwrap();
    let (up, _) = c.lookup(&sub, "..").unwrap();
    assert_eq!(up, root);
    let (upup, _) = c.lookup(&up, "..").unwrap();
    assert_eq!(upup, root);
    // READDIRPLUS of the root: `..` carries the root's own handle and attributes.
    for plus in [true, false] {
        let mut seen = false;
        if plus {
            let a = ReaddirplusArgs {
                dir: root.clone(),
                cookie: 0,
                cookieverf: OpaqueFixed([0; 8]),
                dircount: 8192,
                maxcount: 32768,
            };
            let Res::Ok(ok) = c.call::<_, ReaddirplusRes>(Proc::Readdirplus, &a) else {
                panic!()
            };
            for e in ok.entries {
                if e.name.0 == b".." {
                    seen = true;
                    assert_eq!(e.fileid, root_id);
                    assert_eq!(e.name_handle, Some(root.clone()));
                    assert_eq!(e.name_attributes.unwrap().fileid, root_id);
                }
            }
        } else {
            let a = ReaddirArgs {
                dir: root.clone(),
                cookie: 0,
                cookieverf: OpaqueFixed([0; 8]),
                count: 8192,
            };
            let Res::Ok(ok) = c.call::<_, ReaddirRes>(Proc::Readdir, &a) else {
                panic!()
            };
            for e in ok.entries {
                if e.name.0 == b".." {
                    seen = true;
                    assert_eq!(e.fileid, root_id);
                }
            }
        }
        assert!(seen);
    }
}

#[test]
fn symlinks_pointing_outside_are_never_followed() {
    let (d, fs) = local();
    std::os::unix::fs::symlink("/", d.path().join("slash")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../", d.path().join("up")).unwrap();
    let s = TestServer::start(fs);
    let mut c = s.client();
    let root = c.root.clone();
    for n in ["slash", "up"] {
        let (h, a) = c.lookup(&root, n).unwrap();
        assert_eq!(a.ftype, Ftype3::Lnk);
        assert_eq!(c.lookup(&h, "etc"), Err(Nfsstat3::NotDir));
        assert!(c.list(&h, 4096, true).is_err());
        let mk = MkdirArgs {
            where_: dirop(&h, "evil"),
            attributes: Sattr3::default(),
        };
        assert!(matches!(
            c.call::<_, CreateRes>(Proc::Mkdir, &mk),
            Res::Fail(..)
        ));
    }
    let (h, _) = c.lookup(&root, "passwd").unwrap();
    assert!(
        c.read(&h, 0, 100).is_err(),
        "READ of a symlink must not read its target"
    );
    let w = c.write(&h, 0, b"x", StableHow::FileSync);
    assert!(w.is_err());
    // MOUNT of a path through a symlink is refused as well.
    let r: rnfs_proto::mount3::MountRes =
        c.c.call(
            rnfs_proto::mount3::PROGRAM,
            3,
            1,
            &XdrString::<1024>(b"/slash/etc".to_vec()),
        )
        .unwrap();
    assert!(matches!(r, rnfs_proto::mount3::MountRes::Err(_)), "{r:?}");
    let r: rnfs_proto::mount3::MountRes =
        c.c.call(
            rnfs_proto::mount3::PROGRAM,
            3,
            1,
            &XdrString::<1024>(b"/../..".to_vec()),
        )
        .unwrap();
    assert!(matches!(r, rnfs_proto::mount3::MountRes::Err(_)), "{r:?}");
}

#[test]
fn altered_handles_are_refused_bit_by_bit() {
    for fs in [local().1, memory(1 << 20)] {
        let s = TestServer::start(fs);
        let mut c = s.client();
        let root = c.root.clone();
        let f = c.file(&root, "f");
        for h in [root.clone(), f.clone()] {
            for bit in 0..h.0.len() * 8 {
                let mut bad = h.clone();
                bad.0[bit / 8] ^= 1 << (bit % 8);
                let r = c.getattr(&bad);
                assert!(
                    matches!(r, Err(Nfsstat3::BadHandle) | Err(Nfsstat3::Stale)),
                    "bit {bit}: {r:?}"
                );
                // So many forged handles in a row would slow the connection down (the
                // transport's penalty): a good call in between ends it.
                c.null();
            }
            // Truncated, extended and empty handles.
            for bad in [
                FileHandle3(h.0[..h.0.len() - 1].to_vec()),
                FileHandle3([h.0.clone(), vec![0]].concat()),
                FileHandle3(vec![]),
            ] {
                assert!(matches!(
                    c.getattr(&bad),
                    Err(Nfsstat3::BadHandle) | Err(Nfsstat3::Stale)
                ));
            }
        }
    }
}

#[test]
fn handles_survive_a_server_restart() {
    use rnfs_rpc::transport::Config;
    use rnfs_server::{state, ServerConfig};
    let (d, fs) = local();
    let state_dir = tempfile::tempdir().unwrap();
    // Each start reads the secret from the state directory, as `rnfs serve` does.
    let cfg = || ServerConfig {
        handle_secret: state::load_or_create(state_dir.path()).unwrap(),
        ..Default::default()
    };
    let (fh, dir) = {
        let s = TestServer::start_with(fs, cfg(), Config::default());
        let mut c = s.client();
        let root = c.root.clone();
        let a = c.mkdir(&root, "a").unwrap();
        let b = c.mkdir(&a, "b").unwrap();
        let f = c.file(&b, "deep");
        c.write(&f, 0, b"persistent", StableHow::FileSync).unwrap();
        (f, b)
    };
    // A new server process on the same directory: the old handles still work.
    let fs = std::sync::Arc::new(rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap());
    let s = TestServer::start_with(fs, cfg(), Config::default());
    let mut c = s.client();
    assert_eq!(c.read(&fh, 0, 100).unwrap(), (b"persistent".to_vec(), true));
    assert_eq!(c.list(&dir, 4096, true).unwrap().len(), 3);
    // Renamed behind the server's back, still found.
    std::fs::rename(d.path().join("a/b"), d.path().join("moved")).unwrap();
    let fs = std::sync::Arc::new(rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap());
    let s = TestServer::start_with(fs, cfg(), Config::default());
    let mut c = s.client();
    assert_eq!(c.read(&fh, 0, 4).unwrap(), (b"pers".to_vec(), false));
    let searched = s.server.stats.snapshot().searches_started;
    assert!(searched >= 1, "found by a search");
    // A server with another state directory's secret: the handles do not verify, and
    // nothing is searched for.
    let other = tempfile::tempdir().unwrap();
    let fs = std::sync::Arc::new(rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap());
    let cfg2 = ServerConfig {
        handle_secret: state::load_or_create(other.path()).unwrap(),
        ..Default::default()
    };
    let s = TestServer::start_with(fs, cfg2, Config::default());
    let mut c = s.client();
    assert_eq!(c.read(&fh, 0, 4), Err(Nfsstat3::BadHandle));
    assert_eq!(c.getattr(&dir), Err(Nfsstat3::BadHandle));
    let st = s.server.stats.snapshot();
    assert_eq!((st.searches_started, st.handle_mac_failures), (0, 2));
}

/// A bind mount, undone (lazily, so a failed test cannot leave it busy) when dropped.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(src: &std::path::Path, dst: &std::path::Path) -> Self {
        let ok = std::process::Command::new("mount")
            .arg("--bind")
            .args([src, dst])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount --bind {} {}", src.display(), dst.display());
        Self(dst.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Issue 12, finding 7: with `mount --bind SRC EXPORT/bm`, LOOKUP, READ and READDIRPLUS
/// of `bm/passwd` succeeded, because the boundary compared only device numbers (and a
/// bind mount of the same file system has the same device).
#[test]
fn bind_mounts_inside_the_export_are_crossed_only_with_crossmnt() {
    if !rnfs_testkit::require_root() {
        return;
    }
    // Both directories in the same parent: the same file system, so the device check
    // alone cannot tell them apart.
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), b"secret").unwrap();
    std::fs::create_dir(d.path().join("bm")).unwrap();
    let _m = BindMount::new(outside.path(), &d.path().join("bm"));
    let plus_handle = |c: &mut Nfs, dir: &FileHandle3, name: &str| {
        let a = ReaddirplusArgs {
            dir: dir.clone(),
            cookie: 0,
            cookieverf: OpaqueFixed([0; 8]),
            dircount: 8192,
            maxcount: 32768,
        };
        let Res::Ok(ok) = c.call::<_, ReaddirplusRes>(Proc::Readdirplus, &a) else {
            panic!("READDIRPLUS failed")
        };
        let e = ok.entries.into_iter().find(|e| e.name.0 == name.as_bytes());
        e.unwrap_or_else(|| panic!("{name} not listed")).name_handle
    };

    // With crossmnt the mount is part of the export.
    let (bm, passwd) = {
        let fs = rnfs_vfs::local::LocalFs::new(d.path(), false)
            .unwrap()
            .cross_mounts(true);
        let s = TestServer::start(std::sync::Arc::new(fs));
        let mut c = s.client();
        let root = c.root.clone();
        let (bm, _) = c.lookup(&root, "bm").unwrap();
        let (passwd, _) = c.lookup(&bm, "passwd").unwrap();
        assert_eq!(c.read(&passwd, 0, 100).unwrap().0, b"secret");
        assert!(plus_handle(&mut c, &bm, "passwd").is_some());
        assert!(plus_handle(&mut c, &root, "bm").is_some());
        (bm, passwd)
    };

    // Without it, nothing behind the mount point is reachable: not by name, not by a
    // listing, not with the handles issued above.
    let fs = rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap();
    let s = TestServer::start(std::sync::Arc::new(fs));
    let mut c = s.client();
    let root = c.root.clone();
    assert_eq!(c.lookup(&root, "bm").map(|_| ()), Err(Nfsstat3::Xdev));
    assert_eq!(
        plus_handle(&mut c, &root, "bm"),
        None,
        "a handle for the mount point"
    );
    assert!(c.getattr(&bm).is_err());
    assert!(c.lookup(&bm, "passwd").is_err());
    assert!(c.list(&bm, 4096, true).is_err());
    assert!(c.read(&passwd, 0, 100).is_err());
    assert!(c.getattr(&passwd).is_err());
    // The rest of the export is served as before.
    let f = c.file(&root, "f");
    assert!(c.getattr(&f).is_ok());
}
