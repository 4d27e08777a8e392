//! The TCP transport of the server: the only part of the RPC layer that does I/O.
//!
//! One task per connection reads records, runs calls and writes replies. A call runs either
//! on that task ("inline": no thread hand-off at all) or on the blocking pool, as
//! [`Service::blocking`] says: calls that never block always run inline; calls that rarely
//! block run inline only when the connection has nothing else to do (no other call running
//! or received), so they cannot hold up another call; calls that may block but can tell
//! beforehand (a READ of data in the page cache or not) are tried inline, at that same
//! moment, with [`Service::try_call`], which never waits: when it answers
//! [`Attempt::WouldBlock`] the call goes to the pool like the rest. The others, and every
//! call at a higher queue depth, go to the pool, which reports each reply back to the
//! connection task.
//! Replies go out in completion order, in any order relative to the calls, framed without a
//! copy (record mark and message as two slices of one vectored write), and every reply
//! waiting when the socket is writable goes out in the same `writev`.
//!
//! At most `max_in_flight` calls are running or waiting for their reply to be written per
//! connection; beyond that nothing more is read from the socket, which bounds memory per
//! connection. A malformed stream (a record over the size limit) closes the connection;
//! nothing the peer sends can make the server allocate more than the limits allow.
use crate::outbox::{Outbox, Pieces};
use crate::record::{single_fragment_header, RecordDecoder};
use parking_lot::Mutex;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{debug, error, info, warn, Instrument};

/// Whether a call may wait (on a disk, a lock held for long) while it runs, as the service
/// judges from the call message before running it. See [`Service::blocking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// Finishes on the CPU without waiting (memory backend, an error reply): runs on the
    /// connection's task.
    Never,
    /// Usually quick (metadata and data in the kernel's caches) but may wait: runs on the
    /// connection's task when it is the only call the connection has, on the pool otherwise.
    Rarely,
    /// May wait (a READ of data not in the page cache), but the service can tell without
    /// waiting: when it is the connection's only call, [`Service::try_call`] runs on the
    /// connection's task, and only if that answers [`Attempt::WouldBlock`] does
    /// [`Service::call`] run on the pool. On the pool directly otherwise.
    TryInline,
    /// May wait for long (fsync, ...): always runs on the blocking pool.
    Likely,
}

/// What an inline attempt ([`Service::try_call`]) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The call ran without waiting: its reply, as [`Service::call`] returns it.
    Done(Option<Vec<u8>>),
    /// The call would have had to wait, and did nothing that shows (no reply, no state
    /// changed): run it again with [`Service::call`] on the blocking pool.
    WouldBlock,
}

/// A program (or set of programs) answering calls.
pub trait Service: Send + Sync + 'static {
    /// Handles one call message (without record mark); returns the reply message, or
    /// `None` to send nothing (a duplicate in progress, an undecodable message). Runs on
    /// the blocking pool or on the connection's task, as [`Service::blocking`] says.
    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>>;

    /// Whether [`Service::call`] may block on this message; must be cheap (it runs on the
    /// connection's task for every call) and must not fail. The default sends every call to
    /// the blocking pool.
    fn blocking(&self, conn: &ConnInfo, msg: &[u8]) -> Blocking {
        let _ = (conn, msg);
        Blocking::Likely
    }

    /// Runs a call classified [`Blocking::TryInline`] on the connection's task, if it can
    /// finish without waiting; otherwise does nothing that shows and answers
    /// [`Attempt::WouldBlock`], and the call is run again with [`Service::call`] on the
    /// pool. Must never wait: every other call of the connection waits for it. The default
    /// always answers [`Attempt::WouldBlock`].
    fn try_call(&self, conn: &ConnInfo, msg: &[u8]) -> Attempt {
        let _ = (conn, msg);
        Attempt::WouldBlock
    }

    /// Gives back a reply's buffer once it is written, for reuse (a large buffer that stays
    /// mapped costs no page faults next time). Runs on the connection's task: must be cheap.
    /// The default frees it.
    fn recycle(&self, reply: Vec<u8>) {
        drop(reply);
    }
}

/// What a service knows about the connection a call came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
}

/// Transport limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest record accepted (a WRITE of wtmax plus headers must fit).
    pub max_record: usize,
    /// Calls running or waiting for their reply to be written, per connection; nothing more
    /// is read from the connection while this many are.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_record: (1 << 20) + 64 * 1024,
            max_in_flight: 64,
        }
    }
}

/// Connection counters.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
}

/// Accepts connections on `listener` until `shutdown` turns true, then stops accepting,
/// lets each connection finish the calls it has started and returns.
pub async fn serve(
    listener: TcpListener,
    svc: Arc<dyn Service>,
    cfg: Config,
    stats: Arc<ConnStats>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (sock, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let local = sock.local_addr()?;
                let _ = sock.set_nodelay(true);
                let conn = ConnInfo { peer, local };
                let svc = svc.clone();
                let stats = stats.clone();
                let sd = shutdown.clone();
                stats.open.fetch_add(1, Ordering::Relaxed);
                stats.total.fetch_add(1, Ordering::Relaxed);
                conns.spawn(async move {
                    connection(sock, conn, svc, cfg, sd).await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                }.instrument(tracing::info_span!("conn", %peer)));
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    info!(
        connections = conns.len(),
        "listener closed; finishing calls in flight"
    );
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Replies of calls that ran on the blocking pool, waiting for the connection task.
#[derive(Default)]
struct Finished {
    replies: Mutex<Vec<Option<Vec<u8>>>>,
    wake: Notify,
}

impl Finished {
    fn push(&self, reply: Option<Vec<u8>>) {
        self.replies.lock().push(reply);
        self.wake.notify_one();
    }
}

/// Hands a pool call's reply to its connection; when dropped unused (the call panicked, or
/// never ran because the runtime is shutting down) it reports "no reply", so the connection
/// never waits for a call that is gone.
struct Completion(Option<Arc<Finished>>);

impl Completion {
    fn send(mut self, reply: Option<Vec<u8>>) {
        if let Some(fin) = self.0.take() {
            fin.push(reply);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(fin) = self.0.take() {
            fin.push(None);
        }
    }
}

/// Room made for each read from a socket.
const READ_CHUNK: usize = 256 * 1024;

/// Most replies sent by one vectored write (two slices each; IOV_MAX is 1024).
const MAX_BATCH: usize = 256;

/// Bytes of replies from inline calls worth sending before running the next call: small
/// replies are gathered into one write, large ones go out while the next call runs.
const SEND_EARLY: usize = 64 * 1024;

/// A reply with its record mark, as it waits in the outbox.
struct Framed {
    mark: [u8; 4],
    body: Vec<u8>,
}

impl Pieces for Framed {
    fn pieces(&self) -> [&[u8]; 3] {
        [&self.mark, &self.body, &[]]
    }
}

/// Queues a reply as one record (one larger than a record can be is dropped, logged).
fn push_reply(out: &mut Outbox<Framed>, reply: Vec<u8>) {
    match single_fragment_header(reply.len()) {
        Some(mark) => out.push(Framed { mark, body: reply }),
        None => error!(len = reply.len(), "reply too large for a record; dropped"),
    }
}

/// Writes what the socket takes of the replies waiting, giving each written reply's
/// buffer back to `svc`.
fn flush(out: &mut Outbox<Framed>, sock: &TcpStream, svc: &dyn Service) -> std::io::Result<bool> {
    out.flush(|iov| sock.try_write_vectored(iov), |f| svc.recycle(f.body))
}

/// Runs a call on the current thread (with [`Service::try_call`] when `attempt`); a panic
/// costs this call's reply, nothing else.
fn call_inline(svc: &dyn Service, conn: &ConnInfo, msg: &[u8], attempt: bool) -> Attempt {
    let run = || {
        if attempt {
            svc.try_call(conn, msg)
        } else {
            Attempt::Done(svc.call(conn, msg))
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => {
            error!("call handler panicked; no reply");
            Attempt::Done(None)
        }
    }
}

async fn connection(
    mut sock: TcpStream,
    conn: ConnInfo,
    svc: Arc<dyn Service>,
    cfg: Config,
    mut shutdown: watch::Receiver<bool>,
) {
    debug!("connected");
    let max = cfg.max_in_flight.max(1);
    let fin = Arc::new(Finished::default());
    let mut dec = RecordDecoder::new(cfg.max_record);
    let mut out = Outbox::with_batch(MAX_BATCH);
    // Calls running on the blocking pool.
    let mut running = 0usize;
    // Whether to read more from the socket: not after end of stream, shutdown, a bad record
    // or a failed write.
    let mut reading = !*shutdown.borrow_and_update();
    // Whether to take more calls out of what was read: not after a bad record.
    let mut decoding = true;
    // The socket failed: replies can no longer be sent.
    let mut broken = false;
    let mut watch_shutdown = true;
    loop {
        if running > 0 {
            let done = std::mem::take(&mut *fin.replies.lock());
            running -= done.len();
            if !broken {
                for r in done.into_iter().flatten() {
                    push_reply(&mut out, r);
                }
            }
        }
        // Start the calls received, up to the bound.
        while decoding && running + out.len() < max {
            let msg = match dec.next_record() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "closing connection: bad record");
                    decoding = false;
                    reading = false;
                    break;
                }
            };
            // Nothing else running or received: this call cannot hold up another one.
            let alone = running == 0 && !dec.has_record();
            let attempt = match svc.blocking(&conn, &msg) {
                Blocking::Never => call_inline(&*svc, &conn, &msg, false),
                Blocking::Rarely if alone => call_inline(&*svc, &conn, &msg, false),
                Blocking::TryInline if alone => call_inline(&*svc, &conn, &msg, true),
                Blocking::Rarely | Blocking::TryInline | Blocking::Likely => Attempt::WouldBlock,
            };
            if let Attempt::Done(reply) = attempt {
                if let Some(r) = reply {
                    push_reply(&mut out, r);
                }
                if out.bytes() >= SEND_EARLY {
                    if let Err(e) = flush(&mut out, &sock, &*svc) {
                        debug!(error = %e, "write failed");
                        broken = true;
                        reading = false;
                        decoding = false;
                        out.clear();
                    }
                }
            } else {
                let done = Completion(Some(fin.clone()));
                let svc = svc.clone();
                running += 1;
                tokio::task::spawn_blocking(move || done.send(svc.call(&conn, &msg)));
            }
        }
        if !out.is_empty() {
            if let Err(e) = flush(&mut out, &sock, &*svc) {
                debug!(error = %e, "write failed");
                broken = true;
                reading = false;
                decoding = false;
                out.clear();
            }
        }
        let more = decoding && running + out.len() < max && dec.has_record();
        if more {
            continue;
        }
        if !reading && running == 0 && out.is_empty() {
            break;
        }
        tokio::select! {
            r = sock.readable(), if reading && !dec.has_record() => match r {
                // Straight into the decoder's buffer, without zeroing it first.
                Ok(()) => match sock.try_read_buf(dec.recv_buf(READ_CHUNK)) {
                    Ok(0) => reading = false,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => {
                        debug!(error = %e, "read failed");
                        reading = false;
                    }
                },
                Err(e) => {
                    debug!(error = %e, "read failed");
                    reading = false;
                }
            },
            r = sock.writable(), if !out.is_empty() => {
                if let Err(e) = r {
                    debug!(error = %e, "write failed");
                    broken = true;
                    reading = false;
                    decoding = false;
                    out.clear();
                }
            }
            () = fin.wake.notified(), if running > 0 => {}
            r = shutdown.changed(), if reading && watch_shutdown => match r {
                Ok(()) => {
                    if *shutdown.borrow_and_update() {
                        reading = false;
                    }
                }
                Err(_) => watch_shutdown = false,
            },
        }
    }
    if !broken {
        let _ = sock.shutdown().await;
    }
    debug!("closed");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::encode_record;
    use std::io::{Read, Write};
    use std::sync::mpsc;

    /// A toy service: message byte 0 says how it blocks (0 Never, 1 Rarely, 2 Likely, 3
    /// TryInline), byte 1 what it does (0 echo, 1 wait for the gate then echo, 2 panic, 3
    /// echo 3 MiB of the byte 2, 4 no reply). Tried inline, a call that would wait for the
    /// gate answers WouldBlock; the others run.
    #[derive(Default)]
    struct Toy {
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        /// Calls run by `call`, and by `try_call`; attempts that answered WouldBlock.
        calls: AtomicU64,
        tried: AtomicU64,
        would_block: AtomicU64,
    }

    impl Service for Toy {
        fn try_call(&self, _: &ConnInfo, msg: &[u8]) -> Attempt {
            if msg.get(1) == Some(&1) {
                self.would_block.fetch_add(1, Ordering::SeqCst);
                return Attempt::WouldBlock;
            }
            self.tried.fetch_add(1, Ordering::SeqCst);
            Attempt::Done(self.answer(msg))
        }
        fn call(&self, _: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer(msg)
        }
        fn blocking(&self, _: &ConnInfo, msg: &[u8]) -> Blocking {
            match msg.first() {
                Some(0) => Blocking::Never,
                Some(1) => Blocking::Rarely,
                Some(3) => Blocking::TryInline,
                _ => Blocking::Likely,
            }
        }
    }

    impl Toy {
        fn answer(&self, msg: &[u8]) -> Option<Vec<u8>> {
            match msg.get(1) {
                Some(1) => {
                    let rx = self.gate.lock().take().unwrap();
                    rx.recv().unwrap();
                    Some(msg.to_vec())
                }
                Some(2) => panic!("handler bug"),
                Some(3) => Some(vec![msg[2]; 3 << 20]),
                Some(4) => None,
                _ => Some(msg.to_vec()),
            }
        }
    }

    struct Server {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        done: mpsc::Receiver<()>,
        gate: mpsc::Sender<()>,
        svc: Arc<Toy>,
    }

    fn start(cfg: Config) -> Server {
        let (gtx, grx) = mpsc::channel();
        let svc = Arc::new(Toy {
            gate: Mutex::new(Some(grx)),
            ..Toy::default()
        });
        let toy = svc.clone();
        let (stop, rx) = watch::channel(false);
        let (atx, arx) = mpsc::channel();
        let (dtx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                serve(l, svc, cfg, Arc::default(), rx).await.unwrap();
            });
            let _ = dtx.send(());
        });
        Server {
            addr: arx.recv().unwrap(),
            stop,
            done,
            gate: gtx,
            svc: toy,
        }
    }

    struct Peer {
        s: std::net::TcpStream,
        dec: RecordDecoder,
    }

    impl Peer {
        fn connect(addr: SocketAddr) -> Self {
            Self {
                s: std::net::TcpStream::connect(addr).unwrap(),
                dec: RecordDecoder::new(1 << 30),
            }
        }
        fn send(&mut self, msg: &[u8]) {
            self.s.write_all(&encode_record(msg, 1 << 30)).unwrap();
        }
        /// The next reply, or `None` at the end of the stream.
        fn recv(&mut self) -> Option<Vec<u8>> {
            let mut buf = [0u8; 64 * 1024];
            loop {
                if let Some(r) = self.dec.next_record().unwrap() {
                    return Some(r);
                }
                match self.s.read(&mut buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.dec.push(&buf[..n]),
                }
            }
        }
    }

    #[test]
    fn inline_and_pool_calls_answer_out_of_order() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        // A pool call that waits, then inline calls behind it on the same connection.
        p.send(&[2, 1, 0xaa]);
        for i in 0..10u8 {
            p.send(&[0, 0, i]);
            p.send(&[1, 0, i]);
        }
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(p.recv().unwrap());
        }
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..10u8)
            .flat_map(|i| [vec![0, 0, i], vec![1, 0, i]])
            .collect();
        want.sort();
        assert_eq!(got, want, "answered while the first call still runs");
        srv.gate.send(()).unwrap();
        assert_eq!(p.recv().unwrap(), vec![2, 1, 0xaa]);
    }

    #[test]
    fn a_lone_call_tried_inline_is_answered_without_the_pool() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        for i in 0..5u8 {
            p.send(&[3, 0, i]);
            assert_eq!(p.recv().unwrap(), vec![3, 0, i]);
        }
        let n = |c: &AtomicU64| c.load(Ordering::SeqCst);
        assert_eq!((n(&srv.svc.tried), n(&srv.svc.calls)), (5, 0));
    }

    #[test]
    fn a_call_that_would_block_is_rerun_on_the_pool_without_stalling_others() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        let n = |c: &AtomicU64| c.load(Ordering::SeqCst);
        // Alone on its connection, so tried inline: it would wait for the gate, so it runs
        // on the pool and waits there.
        p.send(&[3, 1, 0xbb]);
        while n(&srv.svc.would_block) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Calls behind it are answered meanwhile, whatever their kind; those that could be
        // tried inline go straight to the pool while another call runs.
        for i in 0..10u8 {
            p.send(&[3, 0, i]);
            p.send(&[0, 0, i]);
            p.send(&[1, 0, i]);
        }
        let mut got = Vec::new();
        for _ in 0..30 {
            got.push(p.recv().unwrap());
        }
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..10u8)
            .flat_map(|i| [vec![3, 0, i], vec![0, 0, i], vec![1, 0, i]])
            .collect();
        want.sort();
        assert_eq!(got, want, "answered while the first call waits on the pool");
        assert_eq!(n(&srv.svc.would_block), 1);
        assert_eq!(n(&srv.svc.tried), 0, "not tried while another call runs");
        srv.gate.send(()).unwrap();
        assert_eq!(p.recv().unwrap(), vec![3, 1, 0xbb]);
        // And alone again, a call is tried inline again.
        p.send(&[3, 0, 0xcc]);
        assert_eq!(p.recv().unwrap(), vec![3, 0, 0xcc]);
        assert_eq!(n(&srv.svc.tried), 1);
    }

    #[test]
    fn large_replies_are_framed_whole_through_partial_writes() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        // 3 MiB replies exceed the socket buffers: the writes are partial; the peer reads
        // only after sending everything, so inline and pool replies queue up.
        for i in 0..8u8 {
            p.send(&[i % 4, 3, i]);
            p.send(&[i % 4, 0, i]);
        }
        let mut big = Vec::new();
        let mut small = Vec::new();
        for _ in 0..16 {
            let r = p.recv().unwrap();
            if r.len() == 3 << 20 {
                assert!(r.iter().all(|&b| b == r[0]));
                big.push(r[0]);
            } else {
                small.push(r);
            }
        }
        big.sort_unstable();
        assert_eq!(big, (0..8).collect::<Vec<u8>>());
        assert_eq!(small.len(), 8);
    }

    #[test]
    fn a_panic_costs_one_call() {
        let srv = start(Config {
            max_record: 1024,
            max_in_flight: 2,
        });
        let mut p = Peer::connect(srv.addr);
        // More panics and silent calls than max_in_flight: none may hold a slot.
        for _ in 0..3 {
            p.send(&[0, 2]);
            p.send(&[2, 2]);
            p.send(&[3, 2]);
            p.send(&[1, 4]);
            p.send(&[2, 4]);
            p.send(&[3, 4]);
        }
        p.send(&[0, 0, 1]);
        p.send(&[2, 0, 2]);
        let mut got = vec![p.recv().unwrap(), p.recv().unwrap()];
        got.sort();
        assert_eq!(got, vec![vec![0, 0, 1], vec![2, 0, 2]]);
    }

    #[test]
    fn shutdown_finishes_calls_in_flight_and_sends_their_replies() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        p.send(&[2, 1, 7]);
        p.send(&[0, 0, 8]);
        assert_eq!(p.recv().unwrap(), vec![0, 0, 8]);
        srv.stop.send(true).unwrap();
        // The listener closes; the running call still completes and is answered.
        srv.gate.send(()).unwrap();
        assert_eq!(p.recv().unwrap(), vec![2, 1, 7]);
        assert_eq!(p.recv(), None, "closed after the last reply");
        srv.done.recv().unwrap();
    }

    #[test]
    fn a_bad_record_closes_after_the_good_ones() {
        let srv = start(Config {
            max_record: 1024,
            max_in_flight: 4,
        });
        let mut p = Peer::connect(srv.addr);
        let mut wire = Vec::new();
        for i in 0..6u8 {
            wire.extend(encode_record(&[i % 3, 0, i], 1 << 30));
        }
        wire.extend(0xffff_fff0u32.to_be_bytes());
        p.s.write_all(&wire).unwrap();
        let mut n = 0;
        while p.recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 6);
    }
}
