//! Files over the in-process server: the page cache, write-back and the W1-W6 error
//! contract, including the seed scenario (ENOSPC, then success without synchronous writes).
//!
//! Each test runs against the server `common::Target` picks: the memory backend (default),
//! `LocalFs` on a 16 MiB tmpfs (`RNFS_TEST_BACKEND=tmpfs`, root), or an external server
//! (`RNFS_TEST_URL`, e.g. nfs-ganesha over a 16 MiB tmpfs: tests/interop/client-ganesha.sh).
#![allow(clippy::unwrap_used)]
mod common;
use common::Target;
use rnfs_client::Status;
use rnfs_client::{Client, Error, MountOptions, OpenOptions};
use std::sync::Arc;
use std::time::Duration;

const W: usize = 64 * 1024;

async fn mount(t: &Target, tweak: impl FnOnce(&mut MountOptions)) -> Client {
    t.mount(|o| {
        o.wsize = W as u32;
        o.rsize = W as u32;
        o.timeo = Duration::from_secs(2);
        tweak(o);
    })
    .await
}

/// COMMITs sent: exactly `want` against our server (which answers UNSTABLE WRITEs with
/// UNSTABLE); at most `want` against an external server, which may answer FILE_SYNC (then
/// nothing needs committing).
fn assert_commits(t: &Target, got: u64, want: u64) {
    if t.is_external() {
        assert!(got <= want, "{got} COMMITs, expected at most {want}");
    } else {
        assert_eq!(got, want, "COMMITs");
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn read_all(c: &Client, path: &str) -> Vec<u8> {
    let mut f = c.open(path, OpenOptions::read()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 100_000];
    loop {
        let n = f.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_seek_set_len_roundtrip() {
    let t = Target::new(64 << 20);
    let c = mount(&t, |_| {}).await;
    let data = pattern(3 * W + 123, 1);
    let mut f = c.open("/a", OpenOptions::create_truncate()).await.unwrap();
    // Small unaligned writes coalesce into wsize WRITEs.
    for chunk in data.chunks(1000) {
        f.write(chunk).await.unwrap();
    }
    assert_eq!(f.metadata().await.unwrap().size, data.len() as u64);
    f.close().await.unwrap();
    assert_eq!(read_all(&c, "/a").await, data);
    let io = c.io_stats();
    assert_eq!(io.sync_writes, 0);
    assert_eq!(io.unstable_writes, 4);
    assert_commits(&t, io.commits, 1);

    // Read-modify-write in place, seek, and reading our own unwritten data.
    let mut f = c.open("/a", OpenOptions::read_write()).await.unwrap();
    f.seek(std::io::SeekFrom::Start(10)).await.unwrap();
    f.write(b"hello").await.unwrap();
    let mut b = [0u8; 9];
    f.seek(std::io::SeekFrom::Start(8)).await.unwrap();
    f.read(&mut b).await.unwrap();
    assert_eq!(&b[2..7], b"hello");
    assert_eq!(b[0], data[8]);
    f.set_len(20).await.unwrap();
    assert_eq!(f.metadata().await.unwrap().size, 20);
    f.close().await.unwrap();
    let back = read_all(&c, "/a").await;
    assert_eq!(back.len(), 20);
    assert_eq!(&back[10..15], b"hello");
    // Errors are clear.
    let e = c.open("/missing", OpenOptions::read()).await.unwrap_err();
    assert_eq!(e, Error::Nfs(Status::NoEnt));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_reads_and_writes_move_the_same_bytes_without_copies() {
    let t = Target::new(64 << 20);
    let c = mount(&t, |_| {}).await;
    let data = pattern(5 * W + 777, 3);
    let mut f = c
        .open("/src", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(&data).await.unwrap();
    f.close().await.unwrap();
    // A copy through read_shared / write_shared (what `rnfs cp` does NFS to NFS).
    let mut src = c.open("/src", OpenOptions::read()).await.unwrap();
    let mut dst = c
        .open("/dst", OpenOptions::create_truncate())
        .await
        .unwrap();
    let mut parts = 0;
    loop {
        let got = src.read_shared(100_000).await.unwrap();
        if got.is_empty() {
            break;
        }
        for s in got {
            parts += 1;
            dst.write_shared(s).await.unwrap();
        }
    }
    dst.close().await.unwrap();
    assert!(parts >= 6, "slices of pages, not one buffer: {parts}");
    assert_eq!(read_all(&c, "/dst").await, data);
    // Data not yet written back is seen through read_shared too.
    let mut f = c.open("/src", OpenOptions::read_write()).await.unwrap();
    f.seek(std::io::SeekFrom::Start(W as u64 - 2))
        .await
        .unwrap();
    f.write(b"edge").await.unwrap();
    f.seek(std::io::SeekFrom::Start(W as u64 - 10))
        .await
        .unwrap();
    let got = f.read_shared(20).await.unwrap();
    let flat: Vec<u8> = got.iter().flat_map(|s| s.iter().copied()).collect();
    let mut want = data[W - 10..W + 10].to_vec();
    want[8..12].copy_from_slice(b"edge");
    assert_eq!(flat, want);
    // Past the end: nothing.
    f.seek(std::io::SeekFrom::Start(10 * W as u64))
        .await
        .unwrap();
    assert!(f.read_shared(10).await.unwrap().is_empty());
    f.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_back_data_before_and_after_it_is_written_back() {
    // A page fetched while the data was only in our write-back cache is short (the server
    // did not have it yet). Reading inside it past its end used to panic, and once the
    // data was written back and committed the short page gave zeros (found by the FUSE
    // layer: git's index-pack reads back the pack it writes).
    let t = Target::new(16 << 20);
    let c = mount(&t, |o| o.dirty_expire = Duration::from_secs(600)).await;
    let data = pattern(3 * 4096 + 100, 9);
    let mut f = c
        .open(
            "/rb",
            OpenOptions {
                read: true,
                ..OpenOptions::create_truncate()
            },
        )
        .await
        .unwrap();
    f.write(&data).await.unwrap();
    let mut b = vec![0u8; 5000];
    for off in [10usize, 4096 + 7, 0] {
        assert_eq!(f.read_at(off as u64, &mut b).await, Ok(5000), "at {off}");
        assert_eq!(
            &b[..],
            &data[off..off + 5000],
            "before write-back, at {off}"
        );
    }
    f.fsync().await.unwrap();
    for off in [10usize, 4096 + 7, 0] {
        assert_eq!(f.read_at(off as u64, &mut b).await, Ok(5000), "at {off}");
        assert_eq!(&b[..], &data[off..off + 5000], "after write-back, at {off}");
    }
    f.close().await.unwrap();
    assert_eq!(read_all(&c, "/rb").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_before_data_not_yet_written_back_reads_as_zeros() {
    // A read past the server's end of file gives zeros only where our own unwritten data
    // extends the file (a read stops where the server's data ends otherwise: issue 13).
    let t = Target::new(16 << 20);
    let c = mount(&t, |o| o.dirty_expire = Duration::from_secs(600)).await;
    let mut f = c
        .open(
            "/hole",
            OpenOptions {
                read: true,
                ..OpenOptions::create_truncate()
            },
        )
        .await
        .unwrap();
    f.write_at(3 * 4096 + 5, b"tail").await.unwrap();
    let mut b = vec![0xffu8; 3 * 4096 + 9];
    assert_eq!(f.read_at(0, &mut b).await, Ok(3 * 4096 + 9));
    assert!(b[..3 * 4096 + 5].iter().all(|&x| x == 0), "the hole");
    assert_eq!(&b[3 * 4096 + 5..], b"tail");
    f.close().await.unwrap();
}

/// Fills the server with a file named `nospc` until write-back fails with NOSPC.
/// Removes fill()'s file and, on a tmpfs, checks that its space is free as soon as the
/// REMOVE answered (the client closed it: no NFS client uses it any more), so that a later
/// NOSPC is not blamed on the client's write-back when the file was still held open.
async fn remove_filler(t: &Target, c: &Client) {
    c.remove("/nospc").await.unwrap();
    if let Some(dir) = t.tmpfs_dir() {
        let s = rustix::fs::statvfs(dir).unwrap();
        let free = s.f_bavail * s.f_frsize;
        assert!(
            free >= common::TMPFS_BYTES / 2,
            "REMOVE answered, but the removed file's space is not free ({free} bytes free)"
        );
    }
}

async fn fill(c: &Client) {
    let mut f = c
        .open("/nospc", OpenOptions::create_truncate())
        .await
        .unwrap();
    let mb = vec![0xaa; 1 << 20];
    for _ in 0..64 {
        f.write(&mb).await.unwrap();
        if let Err(e) = f.fsync().await {
            assert_eq!(e, Error::Nfs(Status::NoSpc));
            f.close().await.unwrap(); // already reported to this handle
            return;
        }
    }
    panic!("server never filled up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_enospc_then_success_without_sync_writes() {
    let t = Target::new(16 << 20);
    let c = mount(&t, |_| {}).await;
    fill(&c).await;

    // dd #1: the error is reported at close (W1, W3).
    let mut f = c
        .open("/file", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(&vec![0; 1 << 20]).await.unwrap();
    assert_eq!(f.close().await, Err(Error::Nfs(Status::NoSpc)));

    // W2: a handle opened after the error was seen does not report it.
    let mut g = c
        .open("/file", OpenOptions::create_truncate())
        .await
        .unwrap();
    assert_eq!(g.fsync().await, Ok(()));
    g.close().await.unwrap();

    remove_filler(&t, &c).await;

    // dd #2: succeeds, reports nothing stale, and is not synchronous (W5).
    let before = c.io_stats();
    let data = pattern(1 << 20, 7);
    let mut f = c
        .open("/file", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(&data).await.unwrap();
    assert_eq!(f.close().await, Ok(()));
    let after = c.io_stats();
    assert_eq!(
        after.sync_writes - before.sync_writes,
        0,
        "no synchronous WRITE"
    );
    assert_eq!(
        after.unstable_writes - before.unstable_writes,
        16,
        "1 MiB in wsize UNSTABLE WRITEs"
    );
    assert_commits(&t, after.commits - before.commits, 1);
    assert_eq!(read_all(&c, "/file").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_w3_every_handle_and_the_next_opener_hear_of_an_unseen_error() {
    let t = Target::new(16 << 20);
    let c = mount(&t, |_| {}).await;
    fill(&c).await;
    let rw = OpenOptions {
        create: true,
        ..OpenOptions::read_write()
    };
    let mut a = c.open("/f", rw).await.unwrap();
    let mut b = c.open("/f", rw).await.unwrap();
    a.write(&vec![1; 4 * W]).await.unwrap();
    // Both handles predate the failure: each hears of it once (W1).
    assert_eq!(a.fsync().await, Err(Error::Nfs(Status::NoSpc)));
    assert_eq!(a.fsync().await, Ok(()));
    assert_eq!(b.fsync().await, Err(Error::Nfs(Status::NoSpc)));
    assert_eq!(b.close().await, Ok(()));
    a.close().await.unwrap();

    // A handle dropped without close: its failure stays unseen and goes to the next
    // opener's first fsync (W3), and to nobody after that (W2).
    {
        let mut d = c.open("/f", rw).await.unwrap();
        d.write(&vec![2; 2 * W]).await.unwrap();
        drop(d);
    }
    let mut e = c.open("/f", rw).await.unwrap();
    let mut r = e.fsync().await;
    for _ in 0..100 {
        if r.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = e.fsync().await;
    }
    assert_eq!(r, Err(Error::Nfs(Status::NoSpc)));
    let mut g = c.open("/f", rw).await.unwrap();
    assert_eq!(g.fsync().await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w2_w4_w5_a_seen_error_never_fails_a_later_write_and_writes_stay_cached() {
    let t = Target::new(16 << 20);
    let c = mount(&t, |_| {}).await;
    fill(&c).await;
    let rw = OpenOptions {
        create: true,
        ..OpenOptions::read_write()
    };
    let mut a = c.open("/f", rw).await.unwrap();
    a.write(&vec![1; 4 * W]).await.unwrap();
    assert_eq!(a.fsync().await, Err(Error::Nfs(Status::NoSpc)));
    // A handle opened after the error was seen: its write() does not fail because of
    // that error (W2, W4) — the error was reported, so the file is back to cached writes
    // (W5) — and its own failure, newer than its cursor, comes at fsync (W1).
    let mut b = c.open("/f", rw).await.unwrap();
    // Past everything a wrote, so that it needs new space.
    b.seek(std::io::SeekFrom::Start(64 * W as u64))
        .await
        .unwrap();
    assert_eq!(b.write(&vec![2; W]).await, Ok(W));
    assert_eq!(b.fsync().await, Err(Error::Nfs(Status::NoSpc)));
    assert_eq!(b.close().await, Ok(()));
    // b's failure is newer than a's cursor: a hears of it once (W1), then nothing.
    assert_eq!(a.fsync().await, Err(Error::Nfs(Status::NoSpc)));
    assert_eq!(a.close().await, Ok(()));

    remove_filler(&t, &c).await;
    // Space again: the next handle's writes succeed, cached and UNSTABLE (W5).
    let before = c.io_stats();
    let mut d = c.open("/f", OpenOptions::create_truncate()).await.unwrap();
    for i in 0..16u8 {
        assert_eq!(d.write(&pattern(W, i)).await, Ok(W), "write {i}");
    }
    assert_eq!(d.close().await, Ok(()));
    let after = c.io_stats();
    assert_eq!(
        after.sync_writes - before.sync_writes,
        0,
        "no synchronous WRITE"
    );
    assert_eq!(after.unstable_writes - before.unstable_writes, 16);
    let mut want = Vec::new();
    for i in 0..16u8 {
        want.extend(pattern(W, i));
    }
    assert_eq!(read_all(&c, "/f").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w6_server_restart_makes_uncommitted_data_go_out_again() {
    // Our server is restarted for real (same files, new write verifier). A server we cannot
    // restart (RNFS_TEST_URL) is reached through a proxy that changes the write verifier
    // of its WRITE and COMMIT replies instead: to the client, the same thing.
    const NAME: &str = "w6_server_restart_makes_uncommitted_data_go_out_again";
    let t = Target::new(64 << 20);
    let proxy = common::FaultProxy::start(t.nfs_addr(), Default::default(), 6).await;
    let c = if t.is_external() {
        t.mount_url(&t.url_via(proxy.addr), |o| {
            o.wsize = W as u32;
            o.rsize = W as u32;
            o.timeo = Duration::from_secs(2);
        })
        .await
    } else {
        mount(&t, |_| {}).await
    };
    let data = pattern(16 * W, 3);
    let mut f = c
        .open(
            "/v",
            OpenOptions {
                read: true,
                ..OpenOptions::create_truncate()
            },
        )
        .await
        .unwrap();
    f.write(&data).await.unwrap();
    // Full wsize runs are written in the background, UNSTABLE, without a COMMIT.
    for _ in 0..500 {
        if f.unwritten_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(f.unwritten_bytes(), 0);
    if t.is_external() && f.uncommitted_bytes() == 0 {
        return common::skip(
            NAME,
            "the server answered every UNSTABLE WRITE with FILE_SYNC: nothing to resend",
        );
    }
    assert_eq!(f.uncommitted_bytes(), data.len() as u64);
    let before = c.io_stats();
    assert_eq!(before.commits, 0);
    if t.is_external() {
        proxy.new_verifier();
    } else {
        t.srv().restart(); // new write verifier
    }
    f.fsync().await.unwrap();
    let after = c.io_stats();
    assert_eq!(
        after.unstable_writes - before.unstable_writes,
        16,
        "all of it again"
    );
    assert_eq!(after.commits - before.commits, 2);
    assert_eq!(f.wb_stats().resent_bytes, data.len() as u64);
    assert_eq!(f.uncommitted_bytes(), 0);
    f.close().await.unwrap();
    assert_eq!(read_all(&c, "/v").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_to_open_sees_another_clients_change_and_cache_is_bounded() {
    let t = Target::new(64 << 20);
    let c1 = mount(&t, |o| o.page_cache_bytes = 4 * W as u64).await;
    let c2 = mount(&t, |_| {}).await;
    let mut f = c1.open("/x", OpenOptions::create_truncate()).await.unwrap();
    f.write(&pattern(16 * W, 1)).await.unwrap();
    f.close().await.unwrap();
    assert_eq!(read_all(&c1, "/x").await, pattern(16 * W, 1));
    assert!(
        c1.cache_stats().page_bytes <= 4 * W as u64,
        "{:?}",
        c1.cache_stats()
    );
    let reads = c1.io_stats().reads;
    // Cached: reading the last pages again costs no READ.
    let r = c1.open("/x", OpenOptions::read()).await.unwrap();
    let mut b = vec![0u8; W];
    r.read_at(15 * W as u64, &mut b).await.unwrap();
    assert_eq!(c1.io_stats().reads, reads);
    // Reading another file evicts the first one's pages (least recently used first).
    let mut y = c1.open("/y", OpenOptions::create_truncate()).await.unwrap();
    y.write(&pattern(8 * W, 2)).await.unwrap();
    y.close().await.unwrap();
    assert_eq!(read_all(&c1, "/y").await, pattern(8 * W, 2));
    let reads = c1.io_stats().reads;
    let yr = c1.open("/y", OpenOptions::read()).await.unwrap();
    yr.read_at(7 * W as u64, &mut b).await.unwrap();
    assert_eq!(
        c1.io_stats().reads,
        reads,
        "the last pages of /y are cached"
    );
    assert!(c1.cache_stats().page_bytes <= 4 * W as u64);
    // Another client rewrites the file; the next open of c1 sees it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut g = c2.open("/x", OpenOptions::create_truncate()).await.unwrap();
    g.write(&pattern(16 * W, 9)).await.unwrap();
    g.close().await.unwrap();
    assert_eq!(read_all(&c1, "/x").await, pattern(16 * W, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_inode_per_handle_and_counters_return_to_baseline() {
    let t = Target::new(64 << 20);
    let c = mount(&t, |_| {}).await;
    c.drop_caches();
    let base = c.cache_stats();
    c.mkdir("/d", 0o755).await.unwrap();
    let mut f = c
        .open("/d/f", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(b"x").await.unwrap();
    f.close().await.unwrap();
    let a = c.resolve("/d/f").await.unwrap();
    let b = c.resolve("d//f").await.unwrap();
    let listed = c.read_dir("/d").await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(Arc::ptr_eq(&a, listed[0].inode.as_ref().unwrap()));
    drop((a, b, listed));
    c.drop_caches();
    assert_eq!(
        c.cache_stats(),
        base,
        "inodes, pages and bytes back to baseline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_data_is_bounded_and_expires_while_the_file_stays_open() {
    let t = Target::new(64 << 20);
    let c = mount(&t, |o| {
        o.dirty_bytes_per_file = 4 * W as u64;
        o.dirty_expire = Duration::from_millis(100);
    })
    .await;
    let mut f = c
        .open("/big", OpenOptions::create_truncate())
        .await
        .unwrap();
    let chunk = pattern(W / 2, 5);
    let mut peak = 0;
    for _ in 0..64 {
        f.write(&chunk).await.unwrap();
        peak = peak.max(c.cache_stats().wb_bytes);
    }
    assert!(
        peak <= 5 * W as u64,
        "write-back memory bounded: peak {peak}"
    );
    f.fsync().await.unwrap();
    // A small write on a file left open goes out once it expires, without fsync.
    let before = c.io_stats().unstable_writes;
    f.write(b"tail").await.unwrap();
    for _ in 0..100 {
        if f.unwritten_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.unwritten_bytes(), 0);
    assert_eq!(c.io_stats().unstable_writes, before + 1);
    f.close().await.unwrap();
    assert_eq!(c.cache_stats().wb_bytes, 0);
}

#[test]
fn a_file_dropped_outside_any_runtime_is_still_written_back() {
    // The inode keeps its dirty data; the client's background write-back sends it once it
    // expires, even though the handle was dropped where no runtime could run a flush.
    let t = Target::new(16 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(mount(&t, |o| {
        o.dirty_expire = Duration::from_millis(100);
        o.inode_cache = 0;
    }));
    let f = rt.block_on(async {
        let mut f = c
            .open("/orphan", OpenOptions::create_truncate())
            .await
            .unwrap();
        f.write(b"still here").await.unwrap();
        f
    });
    std::thread::spawn(move || drop(f)).join().unwrap();
    let got = rt.block_on(async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if c.cache_stats().wb_bytes == 0 {
                break;
            }
        }
        c.drop_caches();
        read_all(&c, "/orphan").await
    });
    assert_eq!(got, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_the_one_the_environment_asked_for() {
    // Guards the harness: the tmpfs and external variants must not silently run against
    // the memory backend. All three have 16 MiB here, so the size cannot tell them apart:
    // a file written through the client must show up in the tmpfs, on the host's side.
    let name = common::backend_name();
    let t = Target::new(common::TMPFS_BYTES);
    let c = mount(&t, |_| {}).await;
    let s = c.fsstat().await.unwrap();
    eprintln!("backend {name}: {s:?}");
    assert_eq!(s.tbytes, common::TMPFS_BYTES, "{s:?}");
    assert_eq!(c.read_dir("/").await.unwrap().len(), 0, "starts empty");
    let mut f = c
        .open("/proof", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(name.as_bytes()).await.unwrap();
    f.close().await.unwrap();
    match name {
        "tmpfs" => {
            let dir = t.tmpfs_dir().expect("the tmpfs backend serves a tmpfs");
            assert_eq!(std::fs::read(dir.join("proof")).unwrap(), b"tmpfs");
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
            let d = dir.to_str().unwrap();
            assert!(
                mounts.lines().any(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    f.len() > 2 && f[1] == d && f[2] == "tmpfs"
                }),
                "{d} is not a tmpfs mount point"
            );
        }
        "memory" => assert!(t.tmpfs_dir().is_none() && t.srv.is_some()),
        _ => assert!(t.is_external() && t.srv.is_none()),
    }
    // What the harness checks (tests/interop/client-*.sh): the backend really used.
    if let Some(p) = std::env::var_os("RNFS_TEST_BACKEND_PROOF") {
        std::fs::write(p, format!("{name}\n")).unwrap();
    }
}
