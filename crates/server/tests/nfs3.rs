//! Every NFSv3 procedure over TCP, against the local and the memory backend.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use rnfs_proto::nfs3::*;
use rnfs_xdr::{OpaqueFixed, XdrString};

fn both(f: impl Fn(&mut Nfs, &str)) {
    let (_d, fs) = local();
    let s = TestServer::start(fs);
    f(&mut s.client(), "local");
    let s = TestServer::start(memory(64 << 20));
    f(&mut s.client(), "memory");
}

#[test]
fn null_getattr_fsinfo_pathconf_fsstat() {
    both(|c, _| {
        let () = c.call(Proc::Null, &());
        let a = c.getattr(&c.root.clone()).unwrap();
        assert_eq!(a.ftype, Ftype3::Dir);
        let info: FsinfoRes = c.call(
            Proc::Fsinfo,
            &GetattrArgs {
                object: c.root.clone(),
            },
        );
        let Res::Ok(info) = info else { panic!() };
        assert!(info.rtmax >= 1 << 20 && info.wtmax >= 1 << 20, "{info:?}");
        let pc: PathconfRes = c.call(
            Proc::Pathconf,
            &GetattrArgs {
                object: c.root.clone(),
            },
        );
        let Res::Ok(pc) = pc else { panic!() };
        assert_eq!(pc.name_max, 255);
        assert!(pc.no_trunc);
        let st: FsstatRes = c.call(
            Proc::Fsstat,
            &GetattrArgs {
                object: c.root.clone(),
            },
        );
        let Res::Ok(st) = st else { panic!() };
        assert!(st.tbytes >= st.fbytes && st.fbytes >= st.abytes);
    });
}

#[test]
fn write_read_commit_and_verifier() {
    both(|c, _| {
        let root = c.root.clone();
        let f = c.file(&root, "data");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let w1 = c
            .write(&f, 0, &data[..100_000], StableHow::Unstable)
            .unwrap();
        let w2 = c
            .write(&f, 100_000, &data[100_000..], StableHow::FileSync)
            .unwrap();
        assert_eq!(w1.count, 100_000);
        assert_eq!(w1.verf, w2.verf, "one verifier per server instance");
        assert!(matches!(w2.committed, StableHow::FileSync));
        let w = w2.file_wcc;
        assert_eq!(w.before.unwrap().size, 100_000);
        assert_eq!(w.after.unwrap().size, 200_000);
        let res: CommitRes = c.call(
            Proc::Commit,
            &CommitArgs {
                file: f.clone(),
                offset: 0,
                count: 0,
            },
        );
        let Res::Ok(ok) = res else { panic!() };
        assert_eq!(ok.verf, w1.verf);
        let (back, eof) = c.read(&f, 0, 300_000).unwrap();
        assert!(eof);
        assert_eq!(back, data);
        assert_eq!(
            c.read(&f, 199_990, 5).unwrap(),
            (data[199_990..199_995].to_vec(), false)
        );
        assert_eq!(c.read(&f, 500_000, 5).unwrap(), (vec![], true));
        assert_eq!(c.read(&root, 0, 5), Err(Nfsstat3::IsDir));
    });
}

#[test]
fn setattr_truncate_chmod_times_and_guard() {
    both(|c, _| {
        let root = c.root.clone();
        let f = c.file(&root, "f");
        c.write(&f, 0, b"0123456789", StableHow::FileSync).unwrap();
        let before = c.getattr(&f).unwrap();
        let set = Sattr3 {
            mode: Some(0o600),
            size: Some(4),
            mtime: SetTime::ClientTime(NfsTime3 {
                seconds: 1_000_000,
                nseconds: 5,
            }),
            ..Default::default()
        };
        let r: SetattrRes = c.call(
            Proc::Setattr,
            &SetattrArgs {
                object: f.clone(),
                new_attributes: set,
                guard: Some(before.ctime),
            },
        );
        assert!(matches!(r, Res::Ok(_)), "{r:?}");
        let a = c.getattr(&f).unwrap();
        assert_eq!((a.mode, a.size, a.mtime.seconds), (0o600, 4, 1_000_000));
        // The guard holds the old ctime now: NOT_SYNC, nothing changed.
        let set = Sattr3 {
            mode: Some(0o644),
            ..Default::default()
        };
        let r: SetattrRes = c.call(
            Proc::Setattr,
            &SetattrArgs {
                object: f.clone(),
                new_attributes: set,
                guard: Some(before.ctime),
            },
        );
        assert_eq!(r.status(), Nfsstat3::NotSync);
        assert_eq!(c.getattr(&f).unwrap().mode, 0o600);
    });
}

#[test]
fn create_modes_mkdir_symlink_mknod_link_rename_remove() {
    both(|c, _| {
        let root = c.root.clone();
        // GUARDED fails on an existing name; UNCHECKED succeeds.
        c.file(&root, "x");
        assert_eq!(
            c.create(&root, "x", CreateHow3::Guarded(Sattr3::default())),
            Err(Nfsstat3::Exist)
        );
        c.create(&root, "x", CreateHow3::Unchecked(Sattr3::default()))
            .unwrap();
        // EXCLUSIVE: the same verifier again succeeds with the same file; another fails.
        let e1 = c
            .create(
                &root,
                "ex",
                CreateHow3::Exclusive(OpaqueFixed(*b"verifier")),
            )
            .unwrap();
        let e2 = c
            .create(
                &root,
                "ex",
                CreateHow3::Exclusive(OpaqueFixed(*b"verifier")),
            )
            .unwrap();
        assert_eq!(e1, e2);
        assert_eq!(
            c.create(
                &root,
                "ex",
                CreateHow3::Exclusive(OpaqueFixed(*b"another!"))
            ),
            Err(Nfsstat3::Exist)
        );

        let d = c.mkdir(&root, "d").unwrap();
        assert_eq!(c.mkdir(&root, "d"), Err(Nfsstat3::Exist));
        let sl = SymlinkArgs {
            where_: dirop(&d, "link"),
            symlink_attributes: Sattr3::default(),
            symlink_data: XdrString(b"../x".to_vec()),
        };
        let r: CreateRes = c.call(Proc::Symlink, &sl);
        let Res::Ok(ok) = r else { panic!("{r:?}") };
        let rl: ReadlinkRes = c.call(
            Proc::Readlink,
            &GetattrArgs {
                object: ok.obj.unwrap(),
            },
        );
        let Res::Ok(rl) = rl else { panic!() };
        assert_eq!(rl.data.0, b"../x");

        let mk = MknodArgs {
            where_: dirop(&d, "fifo"),
            what: MknodData3::Fifo(Sattr3 {
                mode: Some(0o600),
                ..Default::default()
            }),
        };
        let r: CreateRes = c.call(Proc::Mknod, &mk);
        assert!(matches!(r, Res::Ok(_)), "{r:?}");
        assert_eq!(c.lookup(&d, "fifo").unwrap().1.ftype, Ftype3::Fifo);
        let mk = MknodArgs {
            where_: dirop(&d, "bad"),
            what: MknodData3::Other(Ftype3::Reg),
        };
        let r: CreateRes = c.call(Proc::Mknod, &mk);
        assert_eq!(r.status(), Nfsstat3::BadType);

        let x = c.lookup(&root, "x").unwrap().0;
        let r: LinkRes = c.call(
            Proc::Link,
            &LinkArgs {
                file: x.clone(),
                link: dirop(&d, "hard"),
            },
        );
        let Res::Ok(l) = r else { panic!("{r:?}") };
        assert_eq!(l.file_attributes.unwrap().nlink, 2);

        let r: RenameRes = c.call(
            Proc::Rename,
            &RenameArgs {
                from: dirop(&root, "x"),
                to: dirop(&d, "y"),
            },
        );
        assert!(matches!(r, Res::Ok(_)), "{r:?}");
        assert_eq!(c.lookup(&root, "x"), Err(Nfsstat3::NoEnt));
        assert_eq!(
            c.lookup(&d, "y").unwrap().0,
            x,
            "a handle survives a rename"
        );
        assert_eq!(c.getattr(&x).unwrap().nlink, 2);

        let r: RemoveRes = c.call(Proc::Rmdir, &dirop(&root, "d"));
        assert_eq!(r.status(), Nfsstat3::NotEmpty);
        for n in ["link", "fifo", "hard", "y"] {
            c.remove(&d, n).unwrap();
        }
        assert_eq!(c.getattr(&x), Err(Nfsstat3::Stale));
        assert_eq!(c.remove(&d, "y"), Err(Nfsstat3::NoEnt));
        let r: RemoveRes = c.call(Proc::Rmdir, &dirop(&root, "d"));
        assert!(matches!(r, Res::Ok(_)), "{r:?}");
        assert_eq!(c.getattr(&d), Err(Nfsstat3::Stale));
    });
}

#[test]
fn names_are_checked() {
    both(|c, _| {
        let root = c.root.clone();
        let long = "n".repeat(256);
        assert_eq!(
            c.create(&root, &long, CreateHow3::Unchecked(Sattr3::default())),
            Err(Nfsstat3::NameTooLong)
        );
        assert!(c
            .create(&root, "a/b", CreateHow3::Unchecked(Sattr3::default()))
            .is_err());
        assert!(c
            .create(&root, "..", CreateHow3::Unchecked(Sattr3::default()))
            .is_err());
        assert!(c
            .create(&root, "", CreateHow3::Unchecked(Sattr3::default()))
            .is_err());
    });
}

#[test]
fn access_for_another_user() {
    both(|c, _| {
        let root = c.root.clone();
        let f = c
            .create(
                &root,
                "private",
                CreateHow3::Unchecked(Sattr3 {
                    mode: Some(0o600),
                    ..Default::default()
                }),
            )
            .unwrap();
        let all = access::READ | access::MODIFY | access::EXTEND | access::EXECUTE;
        let r: AccessRes = c.call(
            Proc::Access,
            &AccessArgs {
                object: f.clone(),
                access: all,
            },
        );
        let Res::Ok(ok) = r else { panic!() };
        assert_eq!(
            ok.access & (access::READ | access::MODIFY),
            access::READ | access::MODIFY
        );
        c.c.auth_sys(1000, 1000, &[]);
        let r: AccessRes = c.call(
            Proc::Access,
            &AccessArgs {
                object: f.clone(),
                access: all,
            },
        );
        let Res::Ok(ok) = r else { panic!() };
        assert_eq!(ok.access, 0);
        assert_eq!(c.read(&f, 0, 10), Err(Nfsstat3::Acces));
    });
}

#[test]
fn readdir_3000_entries_in_small_chunks_and_plus() {
    both(|c, _| {
        let root = c.root.clone();
        let d = c.mkdir(&root, "many").unwrap();
        for i in 0..3000 {
            c.file(&d, &format!("file-{i:04}"));
        }
        for (count, plus) in [(512, false), (1024, true), (65536, false), (65536, true)] {
            let mut names = c.list(&d, count, plus).unwrap();
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "no duplicates (count {count}, plus {plus})");
            assert_eq!(
                n, 3002,
                "all 3000 plus . and .. (count {count}, plus {plus})"
            );
        }
        // A cookie presented with another directory's verifier is refused.
        let a = ReaddirArgs {
            dir: d.clone(),
            cookie: 0,
            cookieverf: OpaqueFixed([0; 8]),
            count: 4096,
        };
        let Res::Ok(first) = c.call::<_, ReaddirRes>(Proc::Readdir, &a) else {
            panic!()
        };
        let last = first.entries.last().unwrap().cookie;
        let a = ReaddirArgs {
            dir: d.clone(),
            cookie: last,
            cookieverf: OpaqueFixed(*b"elsewher"),
            count: 4096,
        };
        assert_eq!(
            c.call::<_, ReaddirRes>(Proc::Readdir, &a).status(),
            Nfsstat3::BadCookie
        );
        // Too small a buffer for even one entry.
        let a = ReaddirArgs {
            dir: d.clone(),
            cookie: 0,
            cookieverf: OpaqueFixed([0; 8]),
            count: 10,
        };
        let r = c.call::<_, ReaddirRes>(Proc::Readdir, &a);
        assert!(matches!(r, Res::Ok(_) | Res::Fail(Nfsstat3::TooSmall, _)));
    });
}

#[test]
fn memory_backend_fills_up_with_nospc_and_recovers() {
    let s = TestServer::start(memory(4 << 20));
    let mut c = s.client();
    let root = c.root.clone();
    let big = c.file(&root, "big");
    let chunk = vec![7u8; 1 << 20];
    let mut off = 0;
    let err = loop {
        match c.write(&big, off, &chunk, StableHow::Unstable) {
            Ok(_) => off += chunk.len() as u64,
            Err(e) => break e,
        }
        assert!(off <= 8 << 20, "capacity not enforced");
    };
    assert_eq!(err, Nfsstat3::NoSpc);
    c.remove(&root, "big").unwrap();
    let f = c.file(&root, "after");
    c.write(&f, 0, &chunk, StableHow::FileSync).unwrap();
}

#[test]
fn read_only_export_refuses_changes() {
    let (d, fs) = local();
    std::fs::write(d.path().join("f"), b"data").unwrap();
    let cfg = rnfs_server::ServerConfig {
        read_only: true,
        ..Default::default()
    };
    let s = TestServer::start_with(fs, cfg, Default::default());
    let mut c = s.client();
    let root = c.root.clone();
    let (f, _) = c.lookup(&root, "f").unwrap();
    assert_eq!(c.read(&f, 0, 10).unwrap().0, b"data");
    assert_eq!(
        c.write(&f, 0, b"x", StableHow::FileSync).map(|_| ()),
        Err(Nfsstat3::Rofs)
    );
    assert_eq!(
        c.create(&root, "new", CreateHow3::Unchecked(Sattr3::default())),
        Err(Nfsstat3::Rofs)
    );
    assert_eq!(c.mkdir(&root, "d"), Err(Nfsstat3::Rofs));
    assert_eq!(c.remove(&root, "f"), Err(Nfsstat3::Rofs));
    let set = SetattrArgs {
        object: f.clone(),
        new_attributes: Sattr3 {
            mode: Some(0o600),
            ..Default::default()
        },
        guard: None,
    };
    assert_eq!(
        c.call::<_, SetattrRes>(Proc::Setattr, &set).status(),
        Nfsstat3::Rofs
    );
    let r: AccessRes = c.call(
        Proc::Access,
        &AccessArgs {
            object: f.clone(),
            access: 0x3f,
        },
    );
    let Res::Ok(ok) = r else { panic!() };
    assert_eq!(
        ok.access & (access::MODIFY | access::EXTEND | access::DELETE),
        0
    );
    assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"data");
}
