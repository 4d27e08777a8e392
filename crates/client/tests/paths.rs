//! Paths and opens: symbolic links followed as the kernel follows them, EXCLUSIVE create,
//! ACCESS at open, and READDIR where READDIRPLUS is not wanted or not supported.
//!
//! Like the other client tests these run against the server `common::Target` picks (the
//! memory backend, `LocalFs` on a tmpfs, or an external server such as nfs-ganesha).
#![allow(clippy::unwrap_used)]
mod common;
use common::Target;
use rnfs_client::types::access;
use rnfs_client::{Client, Error, OpenOptions};
use rnfs_client::{CreateHow, Device, FileType, SetAttr, SetTime, SpecialFile, Status, Time};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

async fn put(c: &Client, path: &str, data: &[u8]) {
    let mut f = c.open(path, OpenOptions::create_truncate()).await.unwrap();
    f.write(data).await.unwrap();
    f.close().await.unwrap();
}

async fn get(c: &Client, path: &str) -> Vec<u8> {
    let mut f = c.open(path, OpenOptions::read()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = f.read(&mut out).await.unwrap();
    out.truncate(n);
    out
}

fn names(v: Vec<rnfs_client::DirEntry>) -> Vec<String> {
    let mut n: Vec<String> = v.into_iter().map(|e| e.name_lossy()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_are_followed_in_paths_as_the_kernel_follows_them() {
    let t = Target::new(64 << 20);
    let c = t.mount(|_| {}).await;
    c.mkdir("/d", 0o755).await.unwrap();
    c.mkdir("/x", 0o755).await.unwrap();
    put(&c, "/d/f", b"hello").await;
    c.symlink("d", "/ld").await.unwrap();
    c.symlink("../d/f", "/x/lf").await.unwrap();
    // An absolute target names a path on the server: under the export it resolves inside.
    let abs = format!("{}/d", c.export_path().trim_end_matches('/'));
    c.symlink(&abs, "/abs").await.unwrap();

    assert_eq!(get(&c, "/ld/f").await, b"hello", "link to a directory");
    assert_eq!(get(&c, "/x/lf").await, b"hello", "relative link with ..");
    assert_eq!(get(&c, "/abs/f").await, b"hello", "absolute link");
    assert_eq!(get(&c, "/x/../ld/../d/./f").await, b"hello", ".. and .");

    // lstat and stat.
    assert_eq!(c.metadata("/ld").await.unwrap().ftype, FileType::Lnk);
    assert_eq!(c.stat("/ld").await.unwrap().ftype, FileType::Dir);
    assert_eq!(c.stat("/x/lf").await.unwrap().size, 5);
    assert_eq!(c.readlink("/x/lf").await.unwrap(), "../d/f");
    assert_eq!(names(c.read_dir("/ld").await.unwrap()), ["f"]);

    // SETATTR of a path changes what it names itself: the link, not its target.
    let when = Time {
        seconds: 1_000_000_000,
        nseconds: 0,
    };
    c.setattr(
        "/ld",
        SetAttr {
            mtime: SetTime::ClientTime(when),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(c.stat("/ld").await.unwrap().mtime, when, "not the target's");
    if !t.is_external() {
        // rnfs sets a link's own times (utimensat with AT_SYMLINK_NOFOLLOW); nfs-ganesha's
        // VFS backend answers OK and leaves them.
        assert_eq!(c.metadata("/ld").await.unwrap().mtime, when);
    }

    // Creating through links: a file, a directory tree, a rename into a linked directory.
    put(&c, "/ld/g", b"g").await;
    assert_eq!(get(&c, "/d/g").await, b"g");
    c.mkdir_all("/ld/sub/deeper", 0o755).await.unwrap();
    assert_eq!(c.stat("/d/sub/deeper").await.unwrap().ftype, FileType::Dir);
    c.rename("/d/g", "/abs/sub/g").await.unwrap();
    assert_eq!(get(&c, "/d/sub/g").await, b"g");

    // REMOVE of a path whose last component is a link removes the link, not its target.
    c.remove("/x/lf").await.unwrap();
    assert_eq!(get(&c, "/d/f").await, b"hello");
    assert_eq!(
        c.metadata("/x/lf").await.unwrap_err(),
        Error::Nfs(Status::NoEnt)
    );
    // A file in the middle of a path.
    assert_eq!(
        c.stat("/d/f/nope").await.unwrap_err(),
        Error::Nfs(Status::NotDir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_link_is_created_through_but_never_by_an_exclusive_open() {
    let t = Target::new(64 << 20);
    let c = t.mount(|_| {}).await;
    c.mkdir("/d", 0o755).await.unwrap();
    c.symlink("d/made", "/new").await.unwrap();
    // open(O_CREAT) through a dangling link creates its target, as open(2) does.
    put(&c, "/new", b"abc").await;
    assert_eq!(get(&c, "/d/made").await, b"abc");
    assert_eq!(c.metadata("/new").await.unwrap().ftype, FileType::Lnk);
    // O_CREAT|O_EXCL fails on any existing name, a link included.
    let excl = OpenOptions {
        write: true,
        create_new: true,
        ..Default::default()
    };
    assert_eq!(
        c.open("/new", excl).await.unwrap_err(),
        Error::Nfs(Status::Exist)
    );
    c.symlink("nowhere", "/dangling").await.unwrap();
    assert_eq!(
        c.open("/dangling", OpenOptions::read()).await.unwrap_err(),
        Error::Nfs(Status::NoEnt)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_loops_end_in_eloop_not_a_hang() {
    let t = Target::new(64 << 20);
    let c = t.mount(|_| {}).await;
    c.symlink("b", "/a").await.unwrap();
    c.symlink("a", "/b").await.unwrap();
    c.symlink("deeper/x", "/deeper").await.unwrap();
    for p in ["/a", "/b", "/a/x", "/deeper"] {
        let e = c.open(p, OpenOptions::read()).await.unwrap_err();
        assert_eq!(e, Error::TooManyLinks, "{p}");
        assert_eq!(e.errno(), 40, "ELOOP");
    }
    // The links themselves are fine to look at.
    assert_eq!(c.metadata("/a").await.unwrap().ftype, FileType::Lnk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_create_sets_mode_and_real_times_and_survives_a_retransmission() {
    let t = Target::new(64 << 20);
    let c = t.mount(|_| {}).await;
    put(&c, "/before", b"").await;
    let before = c.metadata("/before").await.unwrap();
    let excl = OpenOptions {
        write: true,
        create_new: true,
        mode: 0o600,
        ..Default::default()
    };
    let mut f = c.open("/e", excl).await.unwrap();
    f.write(b"data").await.unwrap();
    f.close().await.unwrap();
    let a = c.metadata("/e").await.unwrap();
    assert_eq!(a.mode & 0o7777, 0o600);
    assert_eq!(a.size, 4);
    // EXCLUSIVE keeps the verifier in the times until the SETATTR that follows it.
    let t = |x: Time| (x.seconds, x.nseconds);
    assert!(t(a.mtime) >= t(before.mtime), "{:?} {:?}", a.mtime, before);
    assert!(t(a.atime) >= t(before.mtime), "{:?} {:?}", a.atime, before);
    assert_eq!(
        c.open("/e", excl).await.unwrap_err(),
        Error::Nfs(Status::Exist)
    );

    // What EXCLUSIVE is for: the same CREATE sent again (a retransmission the server's
    // reply cache no longer holds) finds its own file; another verifier gets EEXIST.
    let root = c.root();
    let v = [7; 8];
    let x1 = c
        .create_in(&root, "x", CreateHow::Exclusive(v))
        .await
        .unwrap();
    let x2 = c
        .create_in(&root, "x", CreateHow::Exclusive(v))
        .await
        .unwrap();
    assert_eq!(x1.fh(), x2.fh());
    assert!(std::sync::Arc::ptr_eq(&x1, &x2), "one inode per handle");
    assert_eq!(
        c.create_in(&root, "x", CreateHow::Exclusive([8; 8]))
            .await
            .unwrap_err(),
        Error::Nfs(Status::Exist)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_asks_access_for_the_callers_credentials() {
    let t = Target::new(64 << 20);
    let root = t.mount(|_| {}).await;
    let mk = |mode| OpenOptions {
        write: true,
        create_new: true,
        mode,
        ..Default::default()
    };
    root.open("/secret", mk(0o600))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    root.open("/public", mk(0o644))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    root.mkdir("/pub", 0o777).await.unwrap();

    let u = t
        .mount(|o| {
            o.uid = 1000;
            o.gid = 1000;
        })
        .await;
    let e = u.open("/secret", OpenOptions::read()).await.unwrap_err();
    assert_eq!(e, Error::Nfs(Status::Acces));
    assert_eq!(e.errno(), 13);
    u.open("/public", OpenOptions::read()).await.unwrap();
    let rw = OpenOptions::read_write();
    assert_eq!(
        u.open("/public", rw).await.unwrap_err(),
        Error::Nfs(Status::Acces)
    );
    let (r, m) = (access::READ, access::MODIFY);
    assert_eq!(u.access("/public", r | m).await.unwrap(), r);
    assert_eq!(root.access("/public", r | m).await.unwrap(), r | m);
    // The caller's own new file is open for writing whatever mode it was created with.
    let mut f = u.open("/pub/mine", mk(0o444)).await.unwrap();
    f.write(b"x").await.unwrap();
    f.close().await.unwrap();
    let a = u.metadata("/pub/mine").await.unwrap();
    assert_eq!((a.uid, a.mode & 0o777, a.size), (1000, 0o444, 1));
}

async fn list_in_small_chunks(c: &Client, dir: &str) -> Vec<String> {
    let mut s = c.open_dir(dir).await.unwrap();
    let mut names = Vec::new();
    while let Some(chunk) = s.next_chunk().await.unwrap() {
        for e in chunk {
            assert!(
                e.inode.is_none() && e.attr.is_none(),
                "READDIR has no attributes"
            );
            names.push(e.name_lossy());
        }
        c.drop_dir_caches();
    }
    names
}

async fn make(c: &Client, dir: &str, n: usize) {
    let d = c.mkdir(dir, 0o755).await.unwrap();
    for i in 0..n {
        c.create_in(
            &d,
            &format!("e{i:04}"),
            CreateHow::Unchecked(Default::default()),
        )
        .await
        .unwrap();
    }
}

fn assert_each_once(names: &[String], n: usize) {
    let set: HashSet<&String> = names.iter().collect();
    assert_eq!(names.len(), n, "no duplicates");
    assert_eq!(set.len(), n);
    for i in 0..n {
        assert!(set.contains(&format!("e{i:04}")), "e{i:04}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_readdir_lists_every_name_once_in_small_chunks() {
    let t = Target::new(64 << 20);
    let c = t
        .mount(|o| {
            o.readdirplus = false;
            o.readdir_bytes = 512;
        })
        .await;
    make(&c, "/big", 1500).await;
    let names = list_in_small_chunks(&c, "/big").await;
    assert_each_once(&names, 1500);
    // `ls -l` still works: attributes come from LOOKUP.
    assert_eq!(c.metadata("/big/e0042").await.unwrap().ftype, FileType::Reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_readdirplus_gets_readdir_from_then_on() {
    let t = Target::new(64 << 20);
    if !t.require_internal(
        "a_server_without_readdirplus_gets_readdir_from_then_on",
        "the in-process server is made to refuse READDIRPLUS",
    ) {
        return;
    }
    if common::version() != "3" {
        // NFSv4 has one READDIR, which the client always asks attributes of.
        return common::skip(
            "a_server_without_readdirplus_gets_readdir_from_then_on",
            "READDIRPLUS is NFSv3's",
        );
    }
    let srv = t.srv.as_ref().unwrap();
    srv.svc.no_readdirplus.store(true, Ordering::Relaxed);
    let c = t.mount(|o| o.readdir_bytes = 512).await;
    make(&c, "/big", 300).await;
    let names = list_in_small_chunks(&c, "/big").await;
    assert_each_once(&names, 300);
    assert_eq!(
        srv.svc.readdirplus_calls.load(Ordering::Relaxed),
        1,
        "asked once, then READDIR"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribute_cache_keeps_files_and_directories_for_their_own_times() {
    use std::time::Duration;
    let t = Target::new(64 << 20);
    let c = t
        .mount(|o| {
            o.acregmin = Duration::from_secs(3600);
            o.acregmax = Duration::from_secs(3600);
            o.acdirmin = Duration::ZERO;
            o.acdirmax = Duration::ZERO;
        })
        .await;
    c.mkdir("/d", 0o755).await.unwrap();
    put(&c, "/d/f", b"x").await;
    let (d, f) = (
        c.resolve("/d").await.unwrap(),
        c.resolve("/d/f").await.unwrap(),
    );
    let calls = || c.rpc_stats().table.calls;
    let n = calls();
    c.getattr(&f).await.unwrap();
    assert_eq!(
        calls() - n,
        0,
        "a file's attributes are cached for acregmin"
    );
    c.getattr(&d).await.unwrap();
    c.getattr(&d).await.unwrap();
    assert_eq!(calls() - n, 2, "a directory's are not (acdirmax 0)");

    let c2 = t
        .mount(|o| {
            o.acregmin = Duration::ZERO;
            o.acregmax = Duration::ZERO;
        })
        .await;
    let f2 = c2.resolve("/d/f").await.unwrap();
    let n = c2.rpc_stats().table.calls;
    c2.getattr(&f2).await.unwrap();
    assert_eq!(c2.rpc_stats().table.calls - n, 1, "noac asks every time");
}

/// The inode-level API a file system layer (the FUSE mount) uses: every kind of object it
/// makes, and each change shows in the next listing at once (a call that changes a
/// directory forgets the client's cached listing of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inode_api_makes_every_kind_of_object_and_listings_follow_at_once() {
    let t = Target::new(64 << 20);
    let c = t.mount(|_| {}).await;
    let root = c.root();
    let d = c.mkdir_in(&root, "d", 0o755).await.unwrap();
    let ls = |c: Client| async move { names(c.read_dir("/d").await.unwrap()) };
    assert!(ls(c.clone()).await.is_empty());

    let p = c.mknod_in(&d, "p", SpecialFile::Fifo, 0o640).await.unwrap();
    let a = c.getattr(&p).await.unwrap();
    assert_eq!((a.ftype, a.mode & 0o7777), (FileType::Fifo, 0o640));
    let dev = Device { major: 1, minor: 3 };
    let chr = c
        .mknod_in(&d, "c", SpecialFile::Chr(dev), 0o600)
        .await
        .unwrap();
    let a = c.getattr(&chr).await.unwrap();
    assert_eq!((a.ftype, a.rdev), (FileType::Chr, dev));
    let f = c
        .create_in(&d, "f", CreateHow::Guarded(SetAttr::mode(0o644)))
        .await
        .unwrap();
    assert_eq!(ls(c.clone()).await, ["c", "f", "p"]);
    assert_eq!(
        c.create_in(&d, "f", CreateHow::Guarded(SetAttr::mode(0o644)))
            .await
            .unwrap_err(),
        Error::Nfs(Status::Exist)
    );

    c.link_in(&f, &d, "g").await.unwrap();
    assert_eq!(
        c.getattr(&f).await.unwrap().nlink,
        2,
        "LINK expires the attributes"
    );
    let l = c.symlink_in(&d, "l", "f").await.unwrap();
    assert_eq!(c.readlink_of(&l).await.unwrap(), b"f");
    assert_eq!(ls(c.clone()).await, ["c", "f", "g", "l", "p"]);
    c.rename_in(&d, "g", &root, "g2").await.unwrap();
    assert_eq!(ls(c.clone()).await, ["c", "f", "l", "p"]);
    let g2 = c.lookup_in(&root, "g2").await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&g2, &f), "one inode per handle");

    c.setattr_of(
        &f,
        SetAttr {
            size: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.getattr(&f).await.unwrap().size, 3);
    assert_eq!(
        c.access_of(&f, access::READ | access::MODIFY)
            .await
            .unwrap(),
        access::READ | access::MODIFY
    );

    c.remove_in(&d, "p").await.unwrap();
    let sub = c.mkdir_in(&d, "sub", 0o700).await.unwrap();
    assert_eq!(c.getattr(&sub).await.unwrap().ftype, FileType::Dir);
    assert_eq!(
        c.rmdir_in(&root, "d").await.unwrap_err(),
        Error::Nfs(Status::NotEmpty)
    );
    c.rmdir_in(&d, "sub").await.unwrap();
    assert_eq!(ls(c.clone()).await, ["c", "f", "l"]);
    assert_eq!(
        c.lookup_in(&d, "p").await.unwrap_err(),
        Error::Nfs(Status::NoEnt)
    );
    let fs = c.fsstat().await.unwrap();
    assert!(fs.abytes <= fs.fbytes && fs.fbytes <= fs.tbytes, "{fs:?}");
}
