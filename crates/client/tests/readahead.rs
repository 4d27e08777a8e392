#![allow(clippy::unwrap_used)]
//! Read-ahead in the client's page cache: READs of rsize bytes, several in flight, a window
//! that grows on sequential reads and drops on a random one, no READ past the end of file,
//! readers waiting for a READ already in flight instead of sending it again, errors of
//! read-ahead READs reaching the readers (who retry them) without hangs or leftovers, and
//! no stale page cached by a READ that raced with a WRITE of the same range.
//!
//! The READ-counting tests run against the in-process rnfs server over memory (rtmax 1 MiB);
//! the others also through `common::Target` (tmpfs or an external server). A "gate" proxy
//! between client and server holds READ replies, or answers READs with an error, on
//! demand: that makes concurrency and races observable without any timing assumption.
mod common;
use common::{FaultProxy, Faults, Target, TestServer};
use parking_lot::Mutex;
use rnfs_client::{Client, Error, File, MountOptions, NfsUrl, OpenOptions};
use rnfs_proto::nfs3::{Nfsstat3, Proc, ReadArgs, ReadRes};
use rnfs_proto::rpc::{CallHeader, ReplyHeader};
use rnfs_rpc::record::{encode_record, RecordDecoder};
use rnfs_xdr::{Reader, Writer, Xdr};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const MIB: usize = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 16) as u8)
        .collect()
}

async fn mount_url(url: &str, tweak: impl FnOnce(&mut MountOptions)) -> Client {
    let u = NfsUrl::parse(url).unwrap();
    let mut o = MountOptions::from_url(&u);
    o.timeo = Duration::from_secs(5);
    tweak(&mut o);
    Client::mount_with(&u, o).await.unwrap()
}

/// A client whose NFS calls go through a [`Gate`] in front of `srv` (MOUNT goes direct).
async fn gated(srv: &TestServer) -> (Gate, Client) {
    let gate = Gate::start(srv.addr).await;
    let url = format!(
        "nfs://127.0.0.1:{}/?version=3&mountport={}&uid=0&gid=0",
        gate.addr.port(),
        srv.addr.port()
    );
    let c = mount_url(&url, |_| {}).await;
    (gate, c)
}

async fn put(c: &Client, path: &str, data: &[u8]) {
    let mut f = c.open(path, OpenOptions::create_truncate()).await.unwrap();
    f.write(data).await.unwrap();
    f.close().await.unwrap();
}

/// Reads the whole file with `read` calls of `bs` bytes.
async fn read_seq(c: &Client, path: &str, bs: usize) -> Result<Vec<u8>, Error> {
    let mut f = c.open(path, OpenOptions::read()).await?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; bs];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

/// Reads `f` to its end with `read` calls of `bs` bytes, checking each against `data` (the
/// whole file), calling `each` after every read.
async fn read_checking(f: &mut File, data: &[u8], bs: usize, mut each: impl FnMut(&File)) {
    let mut buf = vec![0u8; bs];
    let mut pos = 0;
    loop {
        let n = f.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n] == data[pos..pos + n], "at {pos}");
        pos += n;
        each(f);
    }
    assert_eq!(pos, data.len());
}

// ---- the gate proxy ----------------------------------------------------------------------

#[derive(Default)]
struct GateState {
    /// Hold every READ reply until opened.
    closed: bool,
    /// Held replies, with the offset of their READ.
    held: Vec<(mpsc::UnboundedSender<Vec<u8>>, Vec<u8>, u64)>,
    /// READ calls seen going to the server.
    reads: u64,
    /// Delay every READ reply by this much (a link with that round trip).
    delay: Option<Duration>,
    /// Answer the next `fail_left` READs sent for offsets >= this with NFS3ERR_IO.
    fail_from: Option<u64>,
    fail_left: u64,
    failed: u64,
}

struct Gate {
    addr: SocketAddr,
    st: Arc<Mutex<GateState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gate {
    async fn start(target: SocketAddr) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let st: Arc<Mutex<GateState>> = Arc::default();
        let st2 = st.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((c, _)) = l.accept().await {
                let Ok(s) = TcpStream::connect(target).await else {
                    continue;
                };
                conns.spawn(gate_pump(c, s, st2.clone()));
            }
        });
        Self { addr, st, task }
    }

    fn close(&self) {
        self.st.lock().closed = true;
    }

    fn open(&self) {
        let held = {
            let mut s = self.st.lock();
            s.closed = false;
            std::mem::take(&mut s.held)
        };
        for (tx, rec, _) in held {
            let _ = tx.send(rec);
        }
    }

    /// Lets the held replies to READs below `off` go (the gate stays closed).
    fn release_below(&self, off: u64) {
        let go: Vec<_> = {
            let mut s = self.st.lock();
            let (go, keep) = std::mem::take(&mut s.held)
                .into_iter()
                .partition(|h| h.2 < off);
            s.held = keep;
            go
        };
        for (tx, rec, _) in go {
            let _ = tx.send(rec);
        }
    }

    fn held(&self) -> usize {
        self.st.lock().held.len()
    }

    /// Waits (polling; the bound only turns a hang into a failure) until `cond` holds.
    async fn wait_for(&self, what: &str, cond: impl Fn(&GateState) -> bool) {
        for _ in 0..3000 {
            if cond(&self.st.lock()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gate: never saw {what}");
    }

    fn fail_reads_from(&self, off: u64, times: u64) {
        let mut s = self.st.lock();
        s.fail_from = Some(off);
        s.fail_left = times;
    }
}

/// xid -> (offset, whether to answer with an error) of the READs of one connection (the
/// error is decided when the call goes up, so in the order READs are sent).
type Reads = Arc<Mutex<HashMap<u32, (u64, bool)>>>;

async fn gate_pump(client: TcpStream, server: TcpStream, st: Arc<Mutex<GateState>>) {
    let (mut cr, cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let reads: Reads = Arc::default();
    let (r2, st2) = (reads.clone(), st.clone());
    let up = tokio::spawn(async move {
        let mut b = vec![0u8; 256 * 1024];
        let mut dec = RecordDecoder::new(64 << 20);
        loop {
            let n = match cr.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            dec.push(&b[..n]);
            while let Ok(Some(rec)) = dec.next_record() {
                let mut r = Reader::new(&rec);
                let Ok(h) = CallHeader::decode(&mut r) else {
                    continue;
                };
                if h.prog == rnfs_proto::nfs3::PROGRAM && h.proc_ == Proc::Read as u32 {
                    if let Ok(a) = ReadArgs::decode(&mut r) {
                        let mut s = st2.lock();
                        s.reads += 1;
                        let fail = s.fail_from.is_some_and(|f| a.offset >= f) && s.fail_left > 0;
                        if fail {
                            s.fail_left -= 1;
                        }
                        r2.lock().insert(h.xid, (a.offset, fail));
                    }
                }
            }
            if sw.write_all(&b[..n]).await.is_err() {
                break;
            }
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut cw = cw;
        while let Some(b) = rx.recv().await {
            if cw.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut dec = RecordDecoder::new(64 << 20);
    let mut b = vec![0u8; 256 * 1024];
    loop {
        let n = match sr.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        dec.push(&b[..n]);
        while let Ok(Some(rec)) = dec.next_record() {
            let xid = rec
                .get(..4)
                .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
            let read_at = reads.lock().remove(&xid);
            let mut framed = encode_record(&rec, 1 << 30);
            if let Some((off, fail)) = read_at {
                let mut s = st.lock();
                if fail {
                    s.failed += 1;
                    let mut w = Writer::new();
                    ReplyHeader::success(xid).encode(&mut w);
                    ReadRes::Fail(Nfsstat3::Io, None).encode(&mut w);
                    framed = encode_record(&w.into_inner(), 1 << 30);
                }
                if s.closed {
                    s.held.push((tx.clone(), framed, off));
                    continue;
                }
                if let Some(d) = s.delay {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tx.send(framed);
                    });
                    continue;
                }
            }
            let _ = tx.send(framed);
        }
    }
    up.abort();
    drop(tx);
    let _ = writer.await;
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_read_is_rsize_reads_each_byte_fetched_once_and_none_past_eof() {
    let srv = TestServer::memory(64 << 20);
    let c = mount_url(&srv.url("/"), |_| {}).await;
    let size = 16 * MIB;
    let data = pattern(size, 1);
    put(&c, "/f", &data).await;
    c.drop_caches();
    let before = c.io_stats();
    let mut f = c.open("/f", OpenOptions::read()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; MIB];
    loop {
        let n = f.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert!(out == data, "data differs");
    let io = c.io_stats();
    assert_eq!(
        io.reads - before.reads,
        16,
        "one 1 MiB READ per MiB, not 256 of 64 KiB"
    );
    assert_eq!(io.bytes_read - before.bytes_read, size as u64);
    assert!(
        c.readahead_stats().pages >= 200,
        "{:?}",
        c.readahead_stats()
    );
    // At the end of file: no READ at all, however often we ask.
    for _ in 0..10 {
        assert_eq!(f.read(&mut buf).await.unwrap(), 0);
    }
    assert_eq!(c.io_stats().reads, io.reads);
    assert_eq!(c.cache_stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_sets_the_read_ahead_limit() {
    let srv = TestServer::memory(64 << 20);
    let data = pattern(4 * MIB, 5);
    for (param, ahead) in [("readahead=0", false), ("readahead=4194304", true)] {
        let c = mount_url(&format!("{}&{param}", srv.url("/")), |_| {}).await;
        put(&c, "/f", &data).await;
        c.drop_caches();
        assert!(read_seq(&c, "/f", 64 * 1024).await.unwrap() == data);
        let pages = c.readahead_stats().pages;
        assert_eq!(pages > 0, ahead, "{param}: {pages} pages read ahead");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_keeps_several_reads_in_flight() {
    // With every READ reply held, a sequential reader's first read must already have
    // sent its own READ and the read-ahead ones, concurrently (one at a time would leave
    // a single READ held forever).
    let srv = TestServer::memory(64 << 20);
    let (gate, c) = gated(&srv).await;
    let data = pattern(12 * MIB + 4321, 2);
    put(&c, "/f", &data).await;
    c.drop_caches();
    let f = c.open("/f", OpenOptions::read()).await.unwrap();
    gate.close();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; MIB];
        let n = f.read_at(0, &mut buf).await.unwrap();
        (f, buf, n)
    });
    gate.wait_for("3 READs in flight at once", |s| s.held.len() >= 3)
        .await;
    assert_eq!(c.cache_stats().fetches as usize, gate.held());
    gate.open();
    let (f, buf, n) = reader.await.unwrap();
    assert_eq!(n, MIB);
    assert!(buf[..] == data[..MIB]);
    // A large read of pages not cached is also fetched concurrently (no read-ahead
    // involved: it does not start where the last read ended).
    c.set_readahead(0);
    gate.close();
    let data2 = data.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4 * MIB];
        let n = f.read_at(8 * MIB as u64 + 5, &mut buf).await.unwrap();
        assert_eq!(n, 4 * MIB);
        assert!(buf[..] == data2[8 * MIB + 5..12 * MIB + 5]);
    });
    gate.wait_for("4 READs of one large read in flight", |s| s.held.len() >= 4)
        .await;
    gate.open();
    reader.await.unwrap();
    assert_eq!(c.cache_stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_grows_to_the_limit_when_the_link_is_slow() {
    // 20 ms on every READ: the stream's rate grows with the READs in flight, so the window
    // keeps doubling up to the read-ahead limit. (How far it stops short of the limit on a
    // server-bound link is timing, left to `pace`'s unit tests with made-up times.)
    let srv = TestServer::memory(64 << 20);
    let (gate, c) = gated(&srv).await;
    let limit = 4 * MIB as u64;
    c.set_readahead(limit);
    let data = pattern(24 * MIB, 8);
    put(&c, "/slow", &data).await;
    c.drop_caches();
    gate.st.lock().delay = Some(Duration::from_millis(20));
    let mut f = c.open("/slow", OpenOptions::read()).await.unwrap();
    assert_eq!(f.readahead_window(), 0);
    let mut widest = 0;
    read_checking(&mut f, &data, 256 * 1024, |f| {
        widest = widest.max(f.readahead_window())
    })
    .await;
    assert_eq!(widest, limit, "the window stopped short of the limit");
    // A read elsewhere ends the stream: no window.
    f.read_at(0, &mut [0u8; 4096]).await.unwrap();
    assert_eq!(f.readahead_window(), 0);
    drop(f);
    c.drop_caches();
    assert_eq!(c.cache_stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reads_do_not_read_ahead_and_the_window_comes_back_when_sequential() {
    let srv = TestServer::memory(64 << 20);
    let c = mount_url(&srv.url("/"), |_| {}).await;
    let data = pattern(8 * MIB, 3);
    put(&c, "/f", &data).await;
    c.drop_caches();
    let f = c.open("/f", OpenOptions::read()).await.unwrap();
    let before = c.io_stats();
    let mut b = vec![0u8; 4096];
    let offs = [
        5 * MIB + 4096 * 3,
        MIB + 100,
        7 * MIB,
        3 * MIB + 65535,
        2 * MIB + 7,
        6 * MIB + 1,
    ];
    for &o in &offs {
        assert_eq!(f.read_at(o as u64, &mut b).await.unwrap(), 4096);
        assert!(b[..] == data[o..o + 4096], "at {o}");
    }
    assert_eq!(
        c.readahead_stats().pages,
        0,
        "random reads read nothing ahead"
    );
    let io = c.io_stats();
    // One READ per read (3*MIB + 65535 straddles two pages: one READ of both).
    assert_eq!(io.reads - before.reads, offs.len() as u64);
    // Sequential again: the window opens.
    let mut pos = 4 * MIB as u64;
    for _ in 0..3 {
        pos += f.read_at(pos, &mut b).await.unwrap() as u64;
    }
    assert!(c.readahead_stats().pages > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_right_across_page_read_and_buffer_boundaries() {
    let t = Target::new(64 << 20);
    let size = 3 * MIB + 12345;
    let data = pattern(size, 4);
    // rsize 1 MiB (16 pages per READ), 100000 (not a multiple of a page) and 16 KiB
    // (several READs per page).
    for rsize in [MIB as u32, 100_000, 16 * 1024] {
        let c = t.mount(|o| o.rsize = rsize).await;
        put(&c, "/b", &data).await;
        for bs in [333, 4095, 65536 + 7, MIB + 3, 3 * MIB] {
            c.drop_caches();
            let back = read_seq(&c, "/b", bs).await.unwrap();
            assert!(back == data, "rsize {rsize}, reads of {bs}");
        }
        // Reads at odd offsets, crossing pages, backwards (random), cache kept.
        let f = c.open("/b", OpenOptions::read()).await.unwrap();
        for (o, len) in [
            (65535usize, 3),
            (size - 10, 100),
            (MIB - 1, 65538),
            (2 * MIB + 65536 * 3 - 5, 200_000),
            (0, 1),
            (size - 1, 1),
        ] {
            let mut b = vec![0u8; len];
            let n = f.read_at(o as u64, &mut b).await.unwrap();
            let want = len.min(size - o);
            assert_eq!(n, want, "at {o}");
            assert!(b[..n] == data[o..o + n], "rsize {rsize}, at {o}");
        }
        assert_eq!(c.cache_stats().fetches, 0);
        c.remove("/b").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sequential_readers_share_the_reads_in_flight() {
    let srv = TestServer::memory(64 << 20);
    let c = mount_url(&srv.url("/"), |_| {}).await;
    let size = 12 * MIB + 999;
    let data = Arc::new(pattern(size, 5));
    put(&c, "/s", &data).await;
    c.drop_caches();
    let before = c.io_stats();
    let mut js = tokio::task::JoinSet::new();
    for bs in [MIB, 300_000] {
        let (c, data) = (c.clone(), data.clone());
        js.spawn(async move {
            let back = read_seq(&c, "/s", bs).await.unwrap();
            assert!(back[..] == data[..], "reads of {bs}");
        });
    }
    while let Some(r) = js.join_next().await {
        r.unwrap();
    }
    // Every byte came over the wire once: a page being read was waited for, never read
    // again.
    let io = c.io_stats();
    assert_eq!(io.bytes_read - before.bytes_read, size as u64);
    assert_eq!(c.readahead_stats().retries, 0);
    assert_eq!(c.cache_stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_stays_within_the_page_cache_bound() {
    let srv = TestServer::memory(64 << 20);
    let limit = 2 * MIB as u64;
    let c = mount_url(&srv.url("/"), |o| o.page_cache_bytes = limit).await;
    let data = pattern(10 * MIB + 5, 6);
    put(&c, "/m", &data).await;
    put(&c, "/n", &data[..MIB]).await;
    c.drop_caches();
    assert!(read_seq(&c, "/n", 4096).await.unwrap()[..] == data[..MIB]);
    let before = c.io_stats();
    let mut f = c.open("/m", OpenOptions::read()).await.unwrap();
    let mut peak = 0;
    read_checking(&mut f, &data, 256 * 1024, |_| {
        peak = peak.max(c.cache_stats().page_bytes)
    })
    .await;
    assert!(peak <= limit, "page cache {peak} over its bound {limit}");
    // The window never exceeds a quarter of the cache: no page was dropped before it
    // was read, none fetched twice.
    assert_eq!(
        c.io_stats().bytes_read - before.bytes_read,
        data.len() as u64
    );
    drop(f);
    c.drop_caches();
    let s = c.cache_stats();
    assert_eq!((s.pages, s.page_bytes, s.fetches), (0, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_ahead_read_is_retried_by_the_reader_and_a_lasting_error_reaches_it() {
    let srv = TestServer::memory(64 << 20);
    let (gate, c) = gated(&srv).await;
    c.drop_caches();
    let base = c.cache_stats();
    let data = Arc::new(pattern(6 * MIB, 7));
    put(&c, "/e", &data).await;
    c.drop_caches();
    // The first two READs past 1 MiB fail: those are the read-ahead READs of the first
    // read. Their replies are held until the reader waits for them; it gets their error,
    // retries with its own READs and gets the data.
    gate.fail_reads_from(MIB as u64, 2);
    gate.close();
    let (c2, d2) = (c.clone(), data.clone());
    let reader = tokio::spawn(async move {
        let back = read_seq(&c2, "/e", MIB).await.unwrap();
        assert!(back[..] == d2[..]);
    });
    gate.wait_for("the first READ and 2 read-ahead READs", |s| {
        s.held.len() >= 3
    })
    .await;
    gate.release_below(MIB as u64);
    for _ in 0..3000 {
        if c.readahead_stats().waits > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        c.readahead_stats().waits > 0,
        "the reader waits for read-ahead"
    );
    gate.open();
    reader.await.unwrap();
    assert_eq!(gate.st.lock().failed, 2);
    // The reader redoes a failed READ's pages with one READ of its own, not one per page
    // (16 per MiB); the second failed READ may have left before the reader needed it.
    let retries = c.readahead_stats().retries;
    assert!(
        (1..=2).contains(&retries),
        "retries: {:?}",
        c.readahead_stats()
    );
    assert_eq!(c.cache_stats().fetches, 0, "no READ marker left behind");
    // Every READ past 2 MiB fails: the reader gets the error, never hangs, and no READ
    // is left in flight.
    c.drop_caches();
    gate.fail_reads_from(2 * MIB as u64, u64::MAX);
    let r = tokio::time::timeout(Duration::from_secs(60), read_seq(&c, "/e", MIB)).await;
    assert_eq!(
        r.expect("the reader hung"),
        Err(Error::Nfs(rnfs_client::Status::Io)),
        "the error reached the reader"
    );
    assert_eq!(c.cache_stats().fetches, 0, "no READ marker left behind");
    common::settle(&c).await;
    assert_eq!(c.rpc_stats().table.live, 0, "no READ left in flight");
    // Once the server is well again the same file reads fine.
    gate.fail_reads_from(0, 0);
    assert!(read_seq(&c, "/e", MIB).await.unwrap()[..] == data[..]);
    c.drop_caches();
    assert_eq!(
        c.cache_stats(),
        base,
        "inodes, pages, READs back to baseline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sent_before_a_write_completes_never_caches_the_old_data() {
    // A READ of the range (read-ahead included) is answered with the old data, its
    // reply held until a WRITE of the same range was sent, answered and committed. The
    // old data must not be cached: the next reads see the new data.
    let srv = TestServer::memory(64 << 20);
    let (gate, c) = gated(&srv).await;
    let old = pattern(4 * MIB, 8);
    put(&c, "/w", &old).await;
    c.drop_caches();
    let f = Arc::new(c.open("/w", OpenOptions::read()).await.unwrap());
    gate.close();
    let f2 = f.clone();
    let reader = tokio::spawn(async move {
        let mut b = vec![0u8; 64 * 1024];
        let n = f2.read_at(0, &mut b).await.unwrap();
        (n, b)
    });
    // The reader's READ and its read-ahead are at the server (answered, held here).
    gate.wait_for("the READs", |s| s.held.len() >= 2).await;
    let reads_held = gate.held();
    let new = pattern(128 * 1024, 9);
    let mut w = c
        .open(
            "/w",
            OpenOptions {
                write: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.seek(std::io::SeekFrom::Start(64 * 1024)).await.unwrap();
    w.write(&new).await.unwrap(); // pages 1 and 2: read ahead, held at the gate
    w.close().await.unwrap(); // WRITE + COMMIT pass the gate
    gate.open();
    let (n, b) = reader.await.unwrap();
    assert_eq!(n, 64 * 1024);
    assert!(b[..] == old[..64 * 1024], "page 0 was not written");
    // Let the read-ahead READ end too (it has its old data now).
    for _ in 0..3000 {
        if c.cache_stats().fetches == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        c.cache_stats().fetches,
        0,
        "the read-ahead READ never ended"
    );
    let mut b = vec![0u8; 256 * 1024];
    assert_eq!(f.read_at(0, &mut b).await.unwrap(), b.len());
    assert!(b[..64 * 1024] == old[..64 * 1024]);
    assert!(
        b[64 * 1024..192 * 1024] == new[..],
        "the old pages were cached (read-ahead raced with the write)"
    );
    assert!(b[192 * 1024..] == old[192 * 1024..256 * 1024]);
    eprintln!(
        "{reads_held} READs held; {:?}; {:?}",
        c.readahead_stats(),
        c.io_stats()
    );
    assert_eq!(c.cache_stats().fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_under_faults_gives_data_or_errors_never_hangs_and_drains() {
    let t = Target::new(64 << 20);
    let direct = t.mount(|_| {}).await;
    let data = Arc::new(pattern(3 * MIB + 777, 10));
    put(&direct, "/z", &data).await;
    let proxy = FaultProxy::start(t.nfs_addr(), Faults::default(), 0x4ead).await;
    for soft in [false, true] {
        let c = t
            .mount_url(&t.url_via(proxy.addr), |o| {
                o.soft = soft;
                o.retrans = 2;
                o.timeo = Duration::from_millis(150);
                o.rsize = 128 * 1024;
            })
            .await;
        c.drop_caches();
        let base = c.cache_stats();
        proxy.set(Faults {
            drop: if soft { 200 } else { 40 },
            duplicate: 30,
            delay: 50,
            delay_ms: 200,
            kill: 10,
            ..Default::default()
        });
        let mut js = tokio::task::JoinSet::new();
        for i in 0..6usize {
            let (c, data) = (c.clone(), data.clone());
            js.spawn(async move {
                let bs = [MIB, 100_000, 65536, 7777, 2 * MIB, 300_000][i];
                let r = tokio::time::timeout(Duration::from_secs(120), read_seq(&c, "/z", bs));
                match r.await.expect("a reader hung") {
                    Ok(b) => {
                        assert!(b[..] == data[..], "reads of {bs}");
                        true
                    }
                    Err(e) => {
                        assert!(soft, "hard mount: {e}");
                        assert!(matches!(e, Error::Rpc(_)), "{e}");
                        false
                    }
                }
            });
        }
        let mut ok = 0;
        while let Some(r) = js.join_next().await {
            ok += usize::from(r.unwrap());
        }
        proxy.set(Faults::default());
        eprintln!(
            "soft={soft}: {ok}/6 readers got data; {:?}; {:?}",
            c.readahead_stats(),
            c.rpc_stats()
        );
        common::assert_no_state_held(&c).await;
        common::settle(&c).await;
        assert_eq!(c.rpc_stats().table.live, 0, "no call left in flight");
        assert_eq!(c.cache_stats().fetches, 0, "no READ marker left behind");
        c.drop_caches();
        assert_eq!(c.cache_stats(), base, "back to baseline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_truncate_and_rewrite_during_and_after_a_read() {
    let t = Target::new(64 << 20);
    let c1 = t.mount(|_| {}).await;
    let c2 = t.mount(|_| {}).await;
    let old = pattern(6 * MIB, 11);
    put(&c1, "/t", &old).await;
    c1.drop_caches();
    // c1 reads 2 MiB of it sequentially: read-ahead is in flight or cached past that.
    let mut f = c1.open("/t", OpenOptions::read()).await.unwrap();
    let mut b = vec![0u8; MIB];
    for i in 0..2 {
        assert_eq!(f.read(&mut b).await.unwrap(), MIB);
        assert!(b[..] == old[i * MIB..(i + 1) * MIB]);
    }
    // Meanwhile c2 truncates the file to 1 MiB. c1 (open, attributes cached) goes on to
    // what it believes is the end: whatever it gets, it gets it without an error or a
    // hang, and never more than the file it opened.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut g = c2.open("/t", OpenOptions::create_truncate()).await.unwrap();
    g.set_len(MIB as u64).await.unwrap();
    g.close().await.unwrap();
    let rest = async {
        let mut n = 2 * MIB;
        loop {
            let k = f.read(&mut b).await?;
            if k == 0 {
                return Ok::<_, Error>(n);
            }
            n += k;
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(60), rest)
        .await
        .expect("the reader hung")
        .unwrap();
    assert!(n <= old.len(), "{n}");
    drop(f);
    // c2 writes new contents; the next open of c1 sees them (close-to-open), none of
    // the old pages, and fetches each byte once, none past the new end.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new = pattern(2 * MIB + 5555, 12);
    put(&c2, "/t", &new).await;
    let before = c1.io_stats();
    let back = read_seq(&c1, "/t", MIB).await.unwrap();
    assert!(back == new, "c1 sees c2's new contents");
    assert_eq!(
        c1.io_stats().bytes_read - before.bytes_read,
        new.len() as u64
    );
    assert_eq!(c1.cache_stats().fetches, 0);
}
