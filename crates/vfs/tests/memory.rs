//! Tests of the in-memory backend through the `Backend` trait.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use rnfs_vfs::memory::{MemFs, CHUNK, ENTRY_COST, INODE_COST};
use rnfs_vfs::*;

fn root() -> Ctx {
    Ctx::default()
}

fn user(uid: u32) -> Ctx {
    Ctx::new(Creds {
        uid,
        gid: uid,
        gids: vec![],
    })
}

fn mode(m: u32) -> SetAttr {
    SetAttr {
        mode: Some(m),
        ..SetAttr::default()
    }
}

fn file(fs: &MemFs, ctx: &Ctx, dir: &FileKey, name: &str, m: u32) -> FileKey {
    fs.create(ctx, dir, name.as_bytes(), &CreateMode::Guarded(mode(m)))
        .unwrap()
        .0
}

fn dir(fs: &MemFs, ctx: &Ctx, parent: &FileKey, name: &str, m: u32) -> FileKey {
    fs.mkdir(ctx, parent, name.as_bytes(), &mode(m)).unwrap().0
}

/// A directory in the root that everyone may write to (mode 0777, owned by root).
fn public(fs: &MemFs) -> FileKey {
    dir(fs, &root(), &fs.root(), "pub", 0o777)
}

fn names(fs: &MemFs, ctx: &Ctx, d: &FileKey) -> Vec<String> {
    let page = fs.readdir(ctx, d, 0, usize::MAX, false).unwrap();
    assert!(page.eof);
    page.entries
        .iter()
        .map(|e| String::from_utf8(e.name.clone()).unwrap())
        .collect()
}

#[test]
fn disk_full_then_remove_then_write_works() {
    let cap = 1 << 20;
    let fs = MemFs::new(cap);
    let c = root();
    let r = fs.root();
    let f = file(&fs, &c, &r, "big", 0o644);
    let buf = vec![7u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        match fs.write(&c, &f, off, &buf, Stability::Unstable) {
            Ok(s) => {
                assert_eq!(s, Stability::FileSync);
                off += buf.len() as u64;
            }
            Err(VfsError::NoSpc) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(off >= cap - 128 * 1024, "filled only {off}");
    // The failed write changed nothing.
    let a = fs.getattr(&c, &f).unwrap();
    assert_eq!(a.size, off);
    // Fill the rest chunk by chunk, until nothing fits.
    let mut off2 = off;
    while fs
        .write(&c, &f, off2, &[1u8; CHUNK as usize], Stability::FileSync)
        .is_ok()
    {
        off2 += CHUNK;
    }
    assert_eq!(
        fs.write(&c, &f, off2, b"x", Stability::FileSync),
        Err(VfsError::NoSpc)
    );
    assert_eq!(fs.getattr(&c, &f).unwrap().size, off2);
    let st = fs.fsstat(&c, &r).unwrap();
    assert!(st.free_bytes < CHUNK);
    assert_eq!(st.total_bytes, cap);
    // Overwriting allocated data needs no space.
    fs.write(&c, &f, 0, b"hello", Stability::FileSync).unwrap();
    assert_eq!(
        fs.read(&c, &f, 0, 6).unwrap(),
        (b"hello\x07".to_vec(), false)
    );
    // Even a new empty file may not fit any more; metadata-only changes still work.
    fs.setattr(&c, &f, &mode(0o600), None).unwrap();

    // rm, then writing works again.
    fs.remove(&c, &r, b"big").unwrap();
    assert_eq!(fs.getattr(&c, &f), Err(VfsError::Stale));
    let st = fs.fsstat(&c, &r).unwrap();
    assert_eq!(st.free_bytes, cap - INODE_COST, "only the root is left");
    let g = file(&fs, &c, &r, "again", 0o644);
    for i in 0..8 {
        fs.write(&c, &g, i * buf.len() as u64, &buf, Stability::FileSync)
            .unwrap();
    }
    assert_eq!(fs.getattr(&c, &g).unwrap().size, 8 * buf.len() as u64);

    // Truncation also gives space back.
    let before = fs.fsstat(&c, &r).unwrap().free_bytes;
    fs.setattr(
        &c,
        &g,
        &SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    let after = fs.fsstat(&c, &r).unwrap().free_bytes;
    assert_eq!(after - before, 8 * buf.len() as u64);
    assert_eq!(fs.getattr(&c, &g).unwrap().used, 0);
}

#[test]
fn many_empty_files_run_out_of_space() {
    let cap = 64 * 1024;
    let fs = MemFs::new(cap);
    let c = root();
    let r = fs.root();
    let mut n = 0;
    loop {
        match fs.create(
            &c,
            &r,
            format!("f{n}").as_bytes(),
            &CreateMode::Guarded(SetAttr::default()),
        ) {
            Ok(_) => n += 1,
            Err(VfsError::NoSpc) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(n < 1000, "no limit on inodes");
    }
    assert!(n >= (cap / (INODE_COST + ENTRY_COST + 8)) as usize - 10);
    assert_eq!(
        fs.lookup(&c, &r, format!("f{n}").as_bytes()),
        Err(VfsError::NoEnt)
    );
    assert_eq!(
        fs.mkdir(&c, &r, b"d", &SetAttr::default()),
        Err(VfsError::NoSpc)
    );
    assert_eq!(
        fs.symlink(&c, &r, b"s", b"target", &SetAttr::default()),
        Err(VfsError::NoSpc)
    );
    fs.remove(&c, &r, b"f0").unwrap();
    fs.remove(&c, &r, b"f1").unwrap();
    fs.mkdir(&c, &r, b"d", &SetAttr::default()).unwrap();
}

#[test]
fn sparse_files() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let f = file(&fs, &c, &r, "sparse", 0o644);
    // Far larger than the capacity: only written chunks count.
    fs.setattr(
        &c,
        &f,
        &SetAttr {
            size: Some(1 << 40),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    let a = fs.getattr(&c, &f).unwrap();
    assert_eq!((a.size, a.used), (1 << 40, 0));
    assert_eq!(
        fs.read(&c, &f, 1 << 39, 10).unwrap(),
        (vec![0u8; 10], false)
    );
    fs.write(&c, &f, (1 << 40) - 3, b"abcdef", Stability::FileSync)
        .unwrap();
    let a = fs.getattr(&c, &f).unwrap();
    assert_eq!((a.size, a.used), ((1 << 40) + 3, 2 * CHUNK));
    assert_eq!(
        fs.read(&c, &f, (1 << 40) - 5, 100).unwrap(),
        (b"\0\0abcdef".to_vec(), true)
    );
    // Shrink into the middle of a chunk, then grow: the cut part reads as zeros.
    fs.setattr(
        &c,
        &f,
        &SetAttr {
            size: Some((1 << 40) - 1),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    fs.setattr(
        &c,
        &f,
        &SetAttr {
            size: Some((1 << 40) + 10),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    let (data, eof) = fs.read(&c, &f, (1 << 40) - 3, 13).unwrap();
    assert_eq!(data, b"ab\0\0\0\0\0\0\0\0\0\0\0".to_vec());
    assert!(eof);
    assert_eq!(fs.getattr(&c, &f).unwrap().used, CHUNK);
    // Beyond the largest file size.
    assert_eq!(
        fs.write(&c, &f, i64::MAX as u64, b"x", Stability::FileSync),
        Err(VfsError::FBig)
    );
    assert_eq!(
        fs.setattr(
            &c,
            &f,
            &SetAttr {
                size: Some(u64::MAX),
                ..SetAttr::default()
            },
            None
        ),
        Err(VfsError::FBig)
    );
}

#[test]
fn read_and_write_edges() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let f = file(&fs, &c, &r, "f", 0o644);
    assert_eq!(fs.read(&c, &f, 0, 10).unwrap(), (vec![], true));
    fs.write(&c, &f, 0, b"0123456789", Stability::Unstable)
        .unwrap();
    assert_eq!(fs.read(&c, &f, 0, 4).unwrap(), (b"0123".to_vec(), false));
    assert_eq!(fs.read(&c, &f, 6, 4).unwrap(), (b"6789".to_vec(), true));
    assert_eq!(fs.read(&c, &f, 8, 100).unwrap(), (b"89".to_vec(), true));
    assert_eq!(fs.read(&c, &f, 10, 1).unwrap(), (vec![], true));
    assert_eq!(fs.read(&c, &f, 1000, 1).unwrap(), (vec![], true));
    // Across a chunk boundary.
    let big: Vec<u8> = (0..3 * CHUNK as usize).map(|i| (i % 251) as u8).collect();
    fs.write(&c, &f, 100, &big, Stability::Unstable).unwrap();
    assert_eq!(
        fs.read(&c, &f, 100, big.len() as u32).unwrap(),
        (big.clone(), true)
    );
    assert_eq!(
        fs.read(&c, &f, 0, 100).unwrap().0,
        b"0123456789"
            .iter()
            .copied()
            .chain([0u8; 90])
            .collect::<Vec<_>>()
    );
    fs.commit(&c, &f, 0, 0).unwrap();

    assert_eq!(fs.read(&c, &r, 0, 10), Err(VfsError::IsDir));
    assert_eq!(
        fs.write(&c, &r, 0, b"x", Stability::FileSync),
        Err(VfsError::IsDir)
    );
    let (s, sa) = fs
        .symlink(&c, &r, b"link", b"f", &SetAttr::default())
        .unwrap();
    assert_eq!((sa.ftype, sa.size, sa.mode), (FileType::Symlink, 1, 0o777));
    assert_eq!(fs.read(&c, &s, 0, 10), Err(VfsError::Inval));
    assert_eq!(
        fs.write(&c, &s, 0, b"x", Stability::FileSync),
        Err(VfsError::Inval)
    );
    assert_eq!(fs.readlink(&c, &s).unwrap(), b"f".to_vec());
    assert_eq!(fs.readlink(&c, &f), Err(VfsError::Inval));
    assert_eq!(
        fs.symlink(&c, &r, b"empty", b"", &SetAttr::default()),
        Err(VfsError::NoEnt)
    );
    // Symlinks are not followed by lookup.
    let (k, a) = fs.lookup(&c, &r, b"link").unwrap();
    assert_eq!((k, a.ftype), (s.clone(), FileType::Symlink));
    assert_eq!(fs.lookup(&c, &s, b"x"), Err(VfsError::NotDir));
    assert_eq!(fs.lookup(&c, &f, b"x"), Err(VfsError::NotDir));
}

#[test]
fn exclusive_create_retry() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let (k1, a1) = fs
        .create(&c, &r, b"x", &CreateMode::Exclusive(*b"verifier"))
        .unwrap();
    assert_eq!((a1.ftype, a1.size), (FileType::Regular, 0));
    fs.write(&c, &k1, 0, b"data", Stability::FileSync).unwrap();
    // A retry of the same call finds the same file, untouched.
    let (k2, a2) = fs
        .create(&c, &r, b"x", &CreateMode::Exclusive(*b"verifier"))
        .unwrap();
    assert_eq!(k1, k2);
    assert_eq!((a2.fileid, a2.size), (a1.fileid, 4));
    // Another verifier: someone else's file.
    assert_eq!(
        fs.create(&c, &r, b"x", &CreateMode::Exclusive(*b"other-vf")),
        Err(VfsError::Exist)
    );
    // A file not created exclusively never matches.
    file(&fs, &c, &r, "y", 0o644);
    assert_eq!(
        fs.create(&c, &r, b"y", &CreateMode::Exclusive([0; 8])),
        Err(VfsError::Exist)
    );
    // Guarded on an existing name.
    assert_eq!(
        fs.create(&c, &r, b"x", &CreateMode::Guarded(SetAttr::default())),
        Err(VfsError::Exist)
    );
    // Unchecked opens the existing file, applying only the size.
    let (k3, a3) = fs
        .create(
            &c,
            &r,
            b"x",
            &CreateMode::Unchecked(SetAttr {
                size: Some(0),
                mode: Some(0o600),
                ..SetAttr::default()
            }),
        )
        .unwrap();
    assert_eq!(k3, k1);
    assert_eq!(a3.size, 0);
    assert_eq!(
        a3.mode, 0o600,
        "the exclusive create left the file private until a SETATTR"
    );
    let (_, a4) = fs
        .create(&c, &r, b"x", &CreateMode::Unchecked(SetAttr::default()))
        .unwrap();
    assert_eq!(a4.fileid, a1.fileid);
    // Unchecked on a directory: exists.
    fs.mkdir(&c, &r, b"d", &SetAttr::default()).unwrap();
    assert_eq!(
        fs.create(&c, &r, b"d", &CreateMode::Unchecked(SetAttr::default())),
        Err(VfsError::Exist)
    );
    assert_eq!(
        fs.create(&c, &r, b"d", &CreateMode::Exclusive(*b"verifier")),
        Err(VfsError::Exist)
    );
    // Unchecked on a new name creates.
    let (_, a5) = fs
        .create(&c, &r, b"z", &CreateMode::Unchecked(mode(0o640)))
        .unwrap();
    assert_eq!(a5.mode, 0o640);
    assert_eq!(
        fs.create(&c, &r, b".", &CreateMode::Unchecked(SetAttr::default())),
        Err(VfsError::Exist)
    );
}

#[test]
fn stale_and_bad_keys() {
    let fs = MemFs::new(1 << 20);
    let other = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    assert_eq!(r.0.len(), 16);
    assert!(r.0.len() <= FileKey::MAX);
    let f = file(&fs, &c, &r, "f", 0o644);
    let fid = fs.getattr(&c, &f).unwrap().fileid;
    fs.remove(&c, &r, b"f").unwrap();
    assert_eq!(fs.getattr(&c, &f), Err(VfsError::Stale));
    assert_eq!(fs.read(&c, &f, 0, 1), Err(VfsError::Stale));
    assert_eq!(fs.setattr(&c, &f, &mode(0o600), None), Err(VfsError::Stale));
    assert_eq!(fs.link(&c, &f, &r, b"g"), Err(VfsError::Stale));
    // A new file never reuses the number.
    let g = file(&fs, &c, &r, "f", 0o644);
    assert_ne!(g, f);
    assert_ne!(fs.getattr(&c, &g).unwrap().fileid, fid);
    // Keys of another instance are stale here, the root's included.
    assert_ne!(other.root(), r);
    assert_eq!(fs.getattr(&c, &other.root()), Err(VfsError::Stale));
    assert_eq!(fs.lookup(&c, &other.root(), b"f"), Err(VfsError::Stale));
    // Wrong lengths.
    assert_eq!(fs.getattr(&c, &FileKey(vec![])), Err(VfsError::BadHandle));
    assert_eq!(
        fs.getattr(&c, &FileKey(vec![0; 15])),
        Err(VfsError::BadHandle)
    );
    assert_eq!(
        fs.getattr(&c, &FileKey(vec![0; 17])),
        Err(VfsError::BadHandle)
    );
    assert_eq!(fs.getattr(&c, &FileKey(vec![0; 16])), Err(VfsError::Stale));
    // A removed directory.
    let d = dir(&fs, &c, &r, "d", 0o755);
    fs.rmdir(&c, &r, b"d").unwrap();
    assert_eq!(fs.readdir(&c, &d, 0, 10, false), Err(VfsError::Stale));
    assert_eq!(
        fs.create(&c, &d, b"x", &CreateMode::Guarded(SetAttr::default())),
        Err(VfsError::Stale)
    );
}

#[test]
fn lookup_dot_and_dotdot() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let a = dir(&fs, &c, &r, "a", 0o755);
    let b = dir(&fs, &c, &a, "b", 0o755);
    assert_eq!(fs.lookup(&c, &b, b".").unwrap().0, b);
    assert_eq!(fs.lookup(&c, &b, b"..").unwrap().0, a);
    assert_eq!(fs.lookup(&c, &a, b"..").unwrap().0, r);
    assert_eq!(fs.lookup(&c, &r, b"..").unwrap().0, r);
    assert_eq!(fs.parent(&c, &r).unwrap().0, r);
    assert_eq!(fs.lookup(&c, &r, b"nope"), Err(VfsError::NoEnt));
    assert_eq!(fs.lookup(&c, &r, b""), Err(VfsError::NoEnt));
    assert_eq!(fs.getattr(&c, &r).unwrap().fileid, 1);
    assert_eq!(fs.rmdir(&c, &a, b"."), Err(VfsError::Inval));
    assert_eq!(fs.rmdir(&c, &a, b".."), Err(VfsError::NotEmpty));
    assert_eq!(
        fs.mkdir(&c, &a, b"..", &SetAttr::default()),
        Err(VfsError::Exist)
    );
}

#[test]
fn permissions_of_a_plain_user() {
    let fs = MemFs::new(1 << 20);
    let rt = root();
    let u = user(1000);
    let other = user(2000);
    let r = fs.root();
    // The root directory is 0755 root: no creating there.
    assert_eq!(
        fs.create(&u, &r, b"f", &CreateMode::Guarded(SetAttr::default())),
        Err(VfsError::Acces)
    );
    assert_eq!(
        fs.mkdir(&u, &r, b"d", &SetAttr::default()),
        Err(VfsError::Acces)
    );
    let p = public(&fs);
    let (f, a) = fs
        .create(&u, &p, b"f", &CreateMode::Guarded(mode(0o640)))
        .unwrap();
    assert_eq!((a.uid, a.gid, a.mode), (1000, 1000, 0o640));
    // An existing name is reported before missing write permission.
    assert_eq!(
        fs.mkdir(&u, &r, b"pub", &SetAttr::default()),
        Err(VfsError::Exist)
    );
    // Non-owners may read only with read permission.
    fs.write(&u, &f, 0, b"secret", Stability::FileSync).unwrap();
    assert_eq!(fs.read(&other, &f, 0, 10), Err(VfsError::Acces));
    assert_eq!(
        fs.write(&other, &f, 0, b"x", Stability::FileSync),
        Err(VfsError::Acces)
    );
    assert!(fs.read(&rt, &f, 0, 10).is_ok());
    let mut in_group = user(2000);
    in_group.creds.gids = vec![1000];
    assert!(fs.read(&in_group, &f, 0, 10).is_ok());
    assert_eq!(
        fs.write(&in_group, &f, 0, b"x", Stability::FileSync),
        Err(VfsError::Acces)
    );
    // The owner keeps access through the NFS server even after chmod 0 (as knfsd).
    fs.setattr(&u, &f, &mode(0), None).unwrap();
    assert!(fs.read(&u, &f, 0, 10).is_ok());
    fs.write(&u, &f, 0, b"S", Stability::FileSync).unwrap();
    assert_eq!(
        fs.access(&u, &f, 0x3f).unwrap(),
        0,
        "ACCESS still tells the client the truth"
    );
    fs.setattr(&u, &f, &mode(0o640), None).unwrap();
    // Search permission.
    let private = dir(&fs, &u, &p, "private", 0o700);
    file(&fs, &u, &private, "inner", 0o644);
    assert_eq!(fs.lookup(&other, &private, b"inner"), Err(VfsError::Acces));
    assert_eq!(fs.lookup(&other, &private, b".."), Err(VfsError::Acces));
    assert_eq!(
        fs.readdir(&other, &private, 0, 10, false),
        Err(VfsError::Acces)
    );
    assert!(fs.lookup(&rt, &private, b"inner").is_ok());
    // Read but no search: names only.
    fs.setattr(&u, &private, &mode(0o744), None).unwrap();
    let page = fs.readdir(&other, &private, 0, 10, true).unwrap();
    assert_eq!(page.entries.len(), 1);
    assert!(page.entries[0].plus.is_none());
    assert!(fs.readdir(&u, &private, 0, 10, true).unwrap().entries[0]
        .plus
        .is_some());
    // Removal needs write permission on the directory.
    assert_eq!(fs.remove(&other, &private, b"inner"), Err(VfsError::Acces));
    fs.setattr(&u, &private, &mode(0o777), None).unwrap();
    fs.remove(&other, &private, b"inner").unwrap();

    // chmod: owner or root only.
    assert_eq!(
        fs.setattr(&other, &f, &mode(0o777), None),
        Err(VfsError::Perm)
    );
    fs.setattr(&rt, &f, &mode(0o666), None).unwrap();
    // chown: only root gives a file away.
    let to = |uid: Option<u32>, gid: Option<u32>| SetAttr {
        uid,
        gid,
        ..SetAttr::default()
    };
    assert_eq!(
        fs.setattr(&u, &f, &to(Some(2000), None), None),
        Err(VfsError::Perm)
    );
    fs.setattr(&u, &f, &to(Some(1000), None), None).unwrap();
    assert_eq!(
        fs.setattr(&other, &f, &to(Some(1000), None), None),
        Err(VfsError::Perm)
    );
    // chgrp: the owner to a group it is in.
    assert_eq!(
        fs.setattr(&u, &f, &to(None, Some(3000)), None),
        Err(VfsError::Perm)
    );
    let mut u2 = user(1000);
    u2.creds.gids = vec![3000];
    let a = fs.setattr(&u2, &f, &to(None, Some(3000)), None).unwrap();
    assert_eq!((a.uid, a.gid), (1000, 3000));
    assert_eq!(
        fs.setattr(&other, &f, &to(None, Some(2000)), None),
        Err(VfsError::Perm)
    );
    let a = fs
        .setattr(&rt, &f, &to(Some(2000), Some(2000)), None)
        .unwrap();
    assert_eq!((a.uid, a.gid), (2000, 2000));
    fs.setattr(&rt, &f, &to(Some(1000), Some(1000)), None)
        .unwrap();

    // Times: explicit for the owner only, "now" for anyone who may write.
    let t = Timestamp {
        secs: 1_000_000,
        nsecs: 5,
    };
    let at = SetAttr {
        atime: SetTime::At(t),
        mtime: SetTime::At(t),
        ..SetAttr::default()
    };
    let now = SetAttr {
        atime: SetTime::Now,
        mtime: SetTime::Now,
        ..SetAttr::default()
    };
    fs.setattr(&rt, &f, &mode(0o666), None).unwrap();
    assert_eq!(fs.setattr(&other, &f, &at, None), Err(VfsError::Perm));
    fs.setattr(&other, &f, &now, None).unwrap();
    let a = fs.setattr(&u, &f, &at, None).unwrap();
    assert_eq!((a.atime, a.mtime), (t, t));
    fs.setattr(&u, &f, &mode(0o644), None).unwrap();
    assert_eq!(fs.setattr(&other, &f, &now, None), Err(VfsError::Acces));
    // Truncation needs write permission.
    let trunc = SetAttr {
        size: Some(1),
        ..SetAttr::default()
    };
    assert_eq!(fs.setattr(&other, &f, &trunc, None), Err(VfsError::Acces));
    fs.setattr(&u, &f, &trunc, None).unwrap();
    assert_eq!(fs.setattr(&rt, &r, &trunc, None), Err(VfsError::IsDir));
}

#[test]
fn set_id_bits() {
    let fs = MemFs::new(1 << 20);
    let rt = root();
    let u = user(1000);
    let p = public(&fs);
    let f = file(&fs, &u, &p, "prog", 0o755);
    // Owner sets setuid; setgid only for its own group.
    assert_eq!(
        fs.setattr(&u, &f, &mode(0o6755), None).unwrap().mode,
        0o6755
    );
    fs.setattr(
        &rt,
        &f,
        &SetAttr {
            gid: Some(5),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(
        fs.getattr(&u, &f).unwrap().mode,
        0o755,
        "even root's chown drops both (as Linux)"
    );
    assert_eq!(
        fs.setattr(&u, &f, &mode(0o6755), None).unwrap().mode,
        0o4755,
        "not in group 5"
    );
    assert_eq!(
        fs.setattr(&rt, &f, &mode(0o6755), None).unwrap().mode,
        0o6755
    );
    // A write by a plain user clears both; by root, neither.
    fs.write(&rt, &f, 0, b"#!", Stability::FileSync).unwrap();
    assert_eq!(fs.getattr(&u, &f).unwrap().mode, 0o6755);
    fs.write(&u, &f, 0, b"#!", Stability::FileSync).unwrap();
    assert_eq!(fs.getattr(&u, &f).unwrap().mode, 0o755);
    // A truncation too.
    fs.setattr(&rt, &f, &mode(0o4755), None).unwrap();
    fs.setattr(
        &u,
        &f,
        &SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(fs.getattr(&u, &f).unwrap().mode, 0o755);
    // chown by the owner to its own ids still clears setuid on a file, not on a directory.
    fs.setattr(&rt, &f, &mode(0o4755), None).unwrap();
    fs.setattr(
        &u,
        &f,
        &SetAttr {
            uid: Some(1000),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(fs.getattr(&u, &f).unwrap().mode, 0o755);
    let d = dir(&fs, &u, &p, "d", 0o755);
    fs.setattr(&u, &d, &mode(0o2755), None).unwrap();
    fs.setattr(
        &u,
        &d,
        &SetAttr {
            gid: Some(1000),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(fs.getattr(&u, &d).unwrap().mode, 0o2755);

    // A set-group-id directory hands its group down, and the bit to subdirectories.
    let sg = dir(&fs, &rt, &p, "sg", 0o777);
    fs.setattr(
        &rt,
        &sg,
        &SetAttr {
            gid: Some(77),
            mode: Some(0o2777),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    let (_, a) = fs
        .create(&u, &sg, b"f", &CreateMode::Guarded(mode(0o644)))
        .unwrap();
    assert_eq!((a.uid, a.gid, a.mode), (1000, 77, 0o644));
    let (_, a) = fs.mkdir(&u, &sg, b"sub", &mode(0o755)).unwrap();
    assert_eq!((a.uid, a.gid, a.mode), (1000, 77, 0o2755));
    // A non-member cannot create a set-group-id file in that group.
    let (_, a) = fs
        .create(&u, &sg, b"g", &CreateMode::Guarded(mode(0o2755)))
        .unwrap();
    assert_eq!(a.mode, 0o755);
    // mkdir ignores set-id bits of the requested mode outside such a directory.
    let (_, a) = fs.mkdir(&u, &p, b"plain", &mode(0o6755)).unwrap();
    assert_eq!(a.mode, 0o755);
    // A plain user's uid/gid in CREATE attributes are ignored; root's are honoured.
    let own = SetAttr {
        uid: Some(5),
        gid: Some(6),
        ..SetAttr::default()
    };
    let (_, a) = fs.create(&u, &p, b"o1", &CreateMode::Guarded(own)).unwrap();
    assert_eq!((a.uid, a.gid), (1000, 1000));
    let (_, a) = fs
        .create(&rt, &p, b"o2", &CreateMode::Guarded(own))
        .unwrap();
    assert_eq!((a.uid, a.gid), (5, 6));
}

#[test]
fn sticky_directories() {
    let fs = MemFs::new(1 << 20);
    let rt = root();
    let alice = user(1000);
    let bob = user(2000);
    let owner = user(3000);
    let r = fs.root();
    let t = dir(&fs, &rt, &r, "tmp", 0o777);
    fs.setattr(
        &rt,
        &t,
        &SetAttr {
            mode: Some(0o1777),
            uid: Some(3000),
            ..SetAttr::default()
        },
        None,
    )
    .unwrap();
    for n in ["a1", "a2", "a3", "a4"] {
        file(&fs, &alice, &t, n, 0o666);
    }
    dir(&fs, &alice, &t, "ad", 0o777);
    assert_eq!(fs.remove(&bob, &t, b"a1"), Err(VfsError::Perm));
    assert_eq!(fs.rmdir(&bob, &t, b"ad"), Err(VfsError::Perm));
    assert_eq!(fs.rename(&bob, &t, b"a1", &t, b"b1"), Err(VfsError::Perm));
    // Replacing someone else's file is a deletion too.
    file(&fs, &bob, &t, "b", 0o666);
    assert_eq!(fs.rename(&bob, &t, b"b", &t, b"a1"), Err(VfsError::Perm));
    assert_eq!(fs.rename(&alice, &t, b"a1", &t, b"b"), Err(VfsError::Perm));
    fs.rename(&alice, &t, b"a1", &t, b"a1x").unwrap();
    fs.remove(&alice, &t, b"a1x").unwrap();
    fs.remove(&bob, &t, b"b").unwrap();
    fs.remove(&owner, &t, b"a2").unwrap();
    fs.remove(&rt, &t, b"a3").unwrap();
    fs.rmdir(&alice, &t, b"ad").unwrap();
    assert_eq!(names(&fs, &rt, &t), vec!["a4".to_string()]);
    // Without the sticky bit anyone with write permission may remove.
    fs.setattr(&rt, &t, &mode(0o777), None).unwrap();
    fs.remove(&bob, &t, b"a4").unwrap();
}

#[test]
fn rename_cases() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let a = dir(&fs, &c, &r, "a", 0o755);
    let b = dir(&fs, &c, &a, "b", 0o755);
    let f = file(&fs, &c, &r, "f", 0o644);
    let g = file(&fs, &c, &r, "g", 0o644);
    fs.write(&c, &f, 0, b"F", Stability::FileSync).unwrap();
    let empty = dir(&fs, &c, &r, "empty", 0o755);

    // File over file: the target goes away.
    fs.rename(&c, &r, b"f", &r, b"g").unwrap();
    assert_eq!(fs.lookup(&c, &r, b"g").unwrap().0, f);
    assert_eq!(fs.lookup(&c, &r, b"f"), Err(VfsError::NoEnt));
    assert_eq!(fs.getattr(&c, &g), Err(VfsError::Stale));
    // Onto itself (same inode, even under another name): nothing happens.
    fs.rename(&c, &r, b"g", &r, b"g").unwrap();
    fs.link(&c, &f, &r, b"hard").unwrap();
    fs.rename(&c, &r, b"g", &r, b"hard").unwrap();
    assert_eq!(fs.lookup(&c, &r, b"g").unwrap().0, f);
    assert_eq!(fs.lookup(&c, &r, b"hard").unwrap().0, f);
    assert_eq!(fs.getattr(&c, &f).unwrap().nlink, 2);
    // File over a hard link of another file: the other survives with one link less.
    let h = file(&fs, &c, &r, "h", 0o644);
    fs.link(&c, &h, &a, b"h2").unwrap();
    fs.rename(&c, &r, b"hard", &r, b"h").unwrap();
    assert_eq!(fs.getattr(&c, &h).unwrap().nlink, 1);
    assert_eq!(fs.getattr(&c, &f).unwrap().nlink, 2);
    // File over directory, directory over file.
    assert_eq!(fs.rename(&c, &r, b"g", &r, b"empty"), Err(VfsError::IsDir));
    assert_eq!(fs.rename(&c, &r, b"empty", &r, b"g"), Err(VfsError::NotDir));
    // Directory over an empty directory, then over a non-empty one.
    fs.rename(&c, &r, b"empty", &a, b"b").unwrap();
    assert_eq!(
        fs.getattr(&c, &b),
        Err(VfsError::Stale),
        "the empty b was replaced"
    );
    let b = fs.lookup(&c, &a, b"b").unwrap().0;
    assert_eq!(b, empty);
    file(&fs, &c, &b, "x", 0o644);
    let e2 = dir(&fs, &c, &r, "e2", 0o755);
    assert_eq!(fs.rename(&c, &r, b"e2", &r, b"a"), Err(VfsError::NotEmpty));
    // Into its own subtree.
    assert_eq!(fs.rename(&c, &r, b"a", &b, b"z"), Err(VfsError::Inval));
    assert_eq!(fs.rename(&c, &r, b"a", &a, b"z"), Err(VfsError::Inval));
    // Over an ancestor of the source (Linux checks this first, whatever the source).
    assert_eq!(fs.rename(&c, &b, b"x", &r, b"a"), Err(VfsError::NotEmpty));
    let d3 = dir(&fs, &c, &b, "d3", 0o755);
    assert_eq!(fs.rename(&c, &b, b"d3", &r, b"a"), Err(VfsError::NotEmpty));
    // Moving a directory updates '..' and the link counts.
    assert_eq!(fs.getattr(&c, &b).unwrap().nlink, 3);
    fs.rename(&c, &b, b"d3", &e2, b"moved").unwrap();
    assert_eq!(fs.lookup(&c, &d3, b"..").unwrap().0, e2);
    assert_eq!(fs.getattr(&c, &b).unwrap().nlink, 2);
    assert_eq!(fs.getattr(&c, &e2).unwrap().nlink, 3);
    // Missing source; dots.
    assert_eq!(fs.rename(&c, &r, b"nope", &r, b"x"), Err(VfsError::NoEnt));
    assert_eq!(fs.rename(&c, &r, b".", &r, b"x"), Err(VfsError::Inval));
    assert_eq!(fs.rename(&c, &r, b"g", &r, b".."), Err(VfsError::Inval));
    assert_eq!(fs.rename(&c, &r, b"g", &f, b"x"), Err(VfsError::NotDir));

    // Permissions: moving a directory to another parent needs write on it.
    let u = user(1000);
    let p = public(&fs);
    let p2 = dir(&fs, &c, &r, "pub2", 0o777);
    let ro = dir(&fs, &u, &p, "ro", 0o555);
    assert_eq!(fs.rename(&u, &p, b"ro", &p2, b"ro"), Err(VfsError::Acces));
    fs.rename(&u, &p, b"ro", &p, b"ro2").unwrap();
    fs.setattr(&u, &ro, &mode(0o755), None).unwrap();
    fs.rename(&u, &p, b"ro2", &p2, b"ro").unwrap();
    // ...and write on both directories.
    file(&fs, &u, &p, "uf", 0o644);
    assert_eq!(fs.rename(&u, &p, b"uf", &r, b"uf"), Err(VfsError::Acces));
    assert_eq!(fs.rename(&u, &r, b"g", &p, b"g"), Err(VfsError::Acces));
    // Times: both directories and the moved object's ctime change.
    let before = fs.getattr(&c, &p).unwrap();
    let before_f = fs
        .getattr(&c, &fs.lookup(&c, &p, b"uf").unwrap().0)
        .unwrap();
    fs.rename(&u, &p, b"uf", &p2, b"uf").unwrap();
    let after = fs.getattr(&c, &p).unwrap();
    let (_, after_f) = fs.lookup(&c, &p2, b"uf").unwrap();
    assert!(
        after.mtime > before.mtime && after.ctime > before.ctime && after.change > before.change
    );
    assert!(after_f.ctime > before_f.ctime);
    assert_eq!(after_f.mtime, before_f.mtime);
}

#[test]
fn link_rules() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let d = dir(&fs, &c, &r, "d", 0o755);
    let f = file(&fs, &c, &r, "f", 0o644);
    assert_eq!(fs.link(&c, &d, &r, b"d2"), Err(VfsError::Perm));
    assert_eq!(fs.link(&c, &f, &r, b"d"), Err(VfsError::Exist));
    assert_eq!(fs.link(&c, &f, &f, b"x"), Err(VfsError::NotDir));
    let ct = fs.getattr(&c, &f).unwrap().ctime;
    fs.link(&c, &f, &d, b"f").unwrap();
    let a = fs.getattr(&c, &f).unwrap();
    assert_eq!(a.nlink, 2);
    assert!(a.ctime > ct);
    fs.remove(&c, &r, b"f").unwrap();
    assert_eq!(fs.getattr(&c, &f).unwrap().nlink, 1);
    assert_eq!(fs.read(&c, &f, 0, 1).unwrap(), (vec![], true));
    assert_eq!(fs.remove(&c, &r, b"d"), Err(VfsError::IsDir));
    assert_eq!(fs.rmdir(&c, &d, b"f"), Err(VfsError::NotDir));
    assert_eq!(fs.rmdir(&c, &r, b"d"), Err(VfsError::NotEmpty));
    fs.remove(&c, &d, b"f").unwrap();
    assert_eq!(fs.getattr(&c, &f), Err(VfsError::Stale));
    fs.rmdir(&c, &r, b"d").unwrap();
    let u = user(1000);
    let p = public(&fs);
    let g = file(&fs, &c, &r, "g", 0o644);
    assert_eq!(fs.link(&u, &g, &r, b"g2"), Err(VfsError::Acces));
    fs.link(&u, &g, &p, b"g2").unwrap();
    assert_eq!(fs.limits().link_max, 65000);
}

#[test]
fn nlink_of_directories() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    assert_eq!(fs.getattr(&c, &r).unwrap().nlink, 2);
    let a = dir(&fs, &c, &r, "a", 0o755);
    assert_eq!(fs.getattr(&c, &r).unwrap().nlink, 3);
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 2);
    for i in 0..5 {
        dir(&fs, &c, &a, &format!("s{i}"), 0o755);
    }
    file(&fs, &c, &a, "file", 0o644);
    fs.symlink(&c, &a, b"sym", b"file", &SetAttr::default())
        .unwrap();
    fs.mknod(&c, &a, b"fifo", SpecialKind::Fifo, &SetAttr::default())
        .unwrap();
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 7);
    fs.rmdir(&c, &a, b"s0").unwrap();
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 6);
    fs.rename(&c, &a, b"s1", &r, b"s1").unwrap();
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 5);
    assert_eq!(fs.getattr(&c, &r).unwrap().nlink, 4);
    // Back, replacing the empty s2: one in, one out.
    fs.rename(&c, &r, b"s1", &a, b"s2").unwrap();
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 5);
    assert_eq!(fs.getattr(&c, &r).unwrap().nlink, 3);
    // Within the directory, replacing an empty one: one out.
    fs.rename(&c, &a, b"s3", &a, b"s4").unwrap();
    assert_eq!(fs.getattr(&c, &a).unwrap().nlink, 4);
    assert_eq!(names(&fs, &c, &a).len(), 5);
}

#[test]
fn readdir_in_small_chunks_while_changing() {
    let fs = MemFs::new(64 << 20);
    let c = root();
    let r = fs.root();
    let d = dir(&fs, &c, &r, "big", 0o755);
    for i in 0..3000 {
        fs.create(
            &c,
            &d,
            format!("stay-{i}").as_bytes(),
            &CreateMode::Guarded(SetAttr::default()),
        )
        .unwrap();
        fs.create(
            &c,
            &d,
            format!("gone-{i}").as_bytes(),
            &CreateMode::Guarded(SetAttr::default()),
        )
        .unwrap();
    }
    let mut seen: Vec<String> = Vec::new();
    let mut after = 0;
    let mut round = 0;
    let mut last = 0;
    loop {
        let page = fs.readdir(&c, &d, after, 7, round % 2 == 0).unwrap();
        assert!(page.entries.len() <= 7);
        for e in &page.entries {
            assert!(e.cookie > last, "cookies ascend");
            last = e.cookie;
            assert_eq!(e.cookie, cookie::of_name(&e.name));
            if round % 2 == 0 {
                let (k, a) = e.plus.as_ref().unwrap();
                assert_eq!(a.fileid, e.fileid);
                assert_eq!(fs.lookup(&c, &d, &e.name).unwrap().0, *k);
            } else {
                assert!(e.plus.is_none());
            }
            seen.push(String::from_utf8(e.name.clone()).unwrap());
        }
        if page.eof {
            break;
        }
        assert_eq!(page.entries.len(), 7);
        after = page.entries.last().unwrap().cookie;
        // Churn: remove some, add some.
        for k in 0..3 {
            let n = (round * 3 + k) % 3000;
            let _ = fs.remove(&c, &d, format!("gone-{n}").as_bytes());
            let _ = fs.create(
                &c,
                &d,
                format!("new-{round}-{k}").as_bytes(),
                &CreateMode::Guarded(SetAttr::default()),
            );
        }
        round += 1;
    }
    let mut count = std::collections::HashMap::new();
    for n in &seen {
        *count.entry(n.as_str()).or_insert(0) += 1;
    }
    for i in 0..3000 {
        assert_eq!(
            count.get(format!("stay-{i}").as_str()),
            Some(&1),
            "stay-{i}"
        );
    }
    assert!(count.values().all(|&v| v == 1), "nothing twice");
    // A full listing at the end matches lookups.
    let all: BTreeSet<String> = names(&fs, &c, &d).into_iter().collect();
    assert!(all.len() > 3000);
    // Edge cases: max 0, and past the last cookie.
    let p = fs.readdir(&c, &d, 0, 0, false).unwrap();
    assert!(p.entries.is_empty() && !p.eof);
    let p = fs.readdir(&c, &d, last, 10, false).unwrap();
    assert!(p.entries.is_empty() && p.eof);
    let p = fs.readdir(&c, &d, u64::MAX, 10, false).unwrap();
    assert!(p.entries.is_empty() && p.eof);
    let empty = dir(&fs, &c, &r, "empty", 0o755);
    let p = fs.readdir(&c, &empty, 0, 10, true).unwrap();
    assert!(p.entries.is_empty() && p.eof);
    assert_eq!(
        fs.readdir(&c, &fs.lookup(&c, &d, b"stay-1").unwrap().0, 0, 10, false),
        Err(VfsError::NotDir)
    );
}

#[test]
fn setattr_guard_and_times() {
    let fs = MemFs::new(1 << 20);
    let c = root();
    let r = fs.root();
    let f = file(&fs, &c, &r, "f", 0o644);
    let a = fs.getattr(&c, &f).unwrap();
    let wrong = Timestamp {
        secs: a.ctime.secs - 1,
        nsecs: 0,
    };
    assert_eq!(
        fs.setattr(&c, &f, &mode(0o600), Some(wrong)),
        Err(VfsError::NotSync)
    );
    assert_eq!(fs.getattr(&c, &f).unwrap().mode, 0o644);
    let b = fs.setattr(&c, &f, &mode(0o600), Some(a.ctime)).unwrap();
    assert_eq!(b.mode, 0o600);
    assert!(b.ctime > a.ctime && b.change > a.change);
    assert_eq!(b.mtime, a.mtime, "chmod is no data change");
    // A write changes mtime and ctime.
    fs.write(&c, &f, 0, b"x", Stability::FileSync).unwrap();
    let w = fs.getattr(&c, &f).unwrap();
    assert!(w.mtime > b.mtime && w.ctime > b.ctime && w.change > b.change);
    // Creating an entry changes the directory's mtime.
    let d0 = fs.getattr(&c, &r).unwrap();
    file(&fs, &c, &r, "g", 0o644);
    let d1 = fs.getattr(&c, &r).unwrap();
    assert!(d1.mtime > d0.mtime && d1.change > d0.change && d1.size > d0.size);
    // A size change of a file sets mtime, the same size only ctime.
    let s0 = fs.getattr(&c, &f).unwrap();
    let s1 = fs
        .setattr(
            &c,
            &f,
            &SetAttr {
                size: Some(1),
                ..SetAttr::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(s1.mtime, s0.mtime);
    assert!(s1.ctime > s0.ctime);
    let s2 = fs
        .setattr(
            &c,
            &f,
            &SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
            None,
        )
        .unwrap();
    assert!(s2.mtime > s1.mtime);
    // Mode on a symlink is ignored; size on a fifo is invalid.
    let (s, _) = fs.symlink(&c, &r, b"s", b"f", &SetAttr::default()).unwrap();
    assert_eq!(fs.setattr(&c, &s, &mode(0o600), None).unwrap().mode, 0o777);
    let (p, _) = fs
        .mknod(&c, &r, b"p", SpecialKind::Fifo, &mode(0o600))
        .unwrap();
    assert_eq!(
        fs.setattr(
            &c,
            &p,
            &SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
            None
        ),
        Err(VfsError::Inval)
    );
    // Initial times from the attributes.
    let t = Timestamp {
        secs: 12345,
        nsecs: 6,
    };
    let at = SetAttr {
        mtime: SetTime::At(t),
        ..SetAttr::default()
    };
    let (_, a) = fs
        .create(&c, &r, b"timed", &CreateMode::Guarded(at))
        .unwrap();
    assert_eq!(a.mtime, t);
    assert_eq!(a.fsid, fs.getattr(&c, &r).unwrap().fsid);
}

#[test]
fn special_files() {
    let fs = MemFs::new(1 << 20);
    let rt = root();
    let u = user(1000);
    let p = public(&fs);
    let (_, a) = fs
        .mknod(&u, &p, b"fifo", SpecialKind::Fifo, &mode(0o640))
        .unwrap();
    assert_eq!((a.ftype, a.mode, a.uid), (FileType::Fifo, 0o640, 1000));
    let (_, a) = fs
        .mknod(&u, &p, b"sock", SpecialKind::Socket, &SetAttr::default())
        .unwrap();
    assert_eq!(a.ftype, FileType::Socket);
    assert_eq!(
        fs.mknod(&u, &p, b"chr", SpecialKind::Char(1, 3), &SetAttr::default()),
        Err(VfsError::Perm)
    );
    assert_eq!(
        fs.mknod(
            &u,
            &p,
            b"blk",
            SpecialKind::Block(8, 0),
            &SetAttr::default()
        ),
        Err(VfsError::Perm)
    );
    assert_eq!(
        fs.mknod(
            &u,
            &fs.root(),
            b"fifo2",
            SpecialKind::Fifo,
            &SetAttr::default()
        ),
        Err(VfsError::Acces)
    );
    let (_, a) = fs
        .mknod(
            &rt,
            &p,
            b"chr",
            SpecialKind::Char(1, 3),
            &SetAttr::default(),
        )
        .unwrap();
    assert_eq!((a.ftype, a.rdev), (FileType::CharDevice, (1, 3)));
    let (k, a) = fs
        .mknod(
            &rt,
            &p,
            b"blk",
            SpecialKind::Block(8, 1),
            &SetAttr::default(),
        )
        .unwrap();
    assert_eq!((a.ftype, a.rdev), (FileType::BlockDevice, (8, 1)));
    assert_eq!(fs.read(&rt, &k, 0, 1), Err(VfsError::Inval));
    assert_eq!(
        fs.mknod(&rt, &p, b"chr", SpecialKind::Fifo, &SetAttr::default()),
        Err(VfsError::Exist)
    );
    fs.remove(&u, &p, b"chr").unwrap();
}

#[test]
fn concurrent_use() {
    let fs = Arc::new(MemFs::new(64 << 20));
    let r = fs.root();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fs = Arc::clone(&fs);
            let r = r.clone();
            std::thread::spawn(move || {
                let c = root();
                let d = fs
                    .mkdir(&c, &r, format!("t{t}").as_bytes(), &SetAttr::default())
                    .unwrap()
                    .0;
                let mut keys = HashSet::new();
                for i in 0..200 {
                    let name = format!("f{i}");
                    let k = fs
                        .create(
                            &c,
                            &d,
                            name.as_bytes(),
                            &CreateMode::Guarded(SetAttr::default()),
                        )
                        .unwrap()
                        .0;
                    fs.write(&c, &k, 0, name.as_bytes(), Stability::Unstable)
                        .unwrap();
                    assert_eq!(fs.read(&c, &k, 0, 100).unwrap().0, name.as_bytes());
                    assert!(keys.insert(k));
                    if i % 2 == 0 {
                        fs.remove(&c, &d, name.as_bytes()).unwrap();
                    }
                }
                let _ = fs.readdir(&c, &r, 0, 100, true).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = root();
    assert_eq!(fs.getattr(&c, &r).unwrap().nlink, 6);
    for t in 0..4 {
        let d = fs.lookup(&c, &r, format!("t{t}").as_bytes()).unwrap().0;
        assert_eq!(names(&fs, &c, &d).len(), 100);
    }
}
