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
//!
//! What a peer can make the server hold is bounded server-wide ([`limits`]): connections
//! (at [`Config::max_connections`] the connection idle longest is shed), time (idle
//! connections and records that never complete are closed) and memory (one budget for the
//! bytes received and the replies unsent of every connection; when it runs short the
//! heaviest connections stop being read first, and a connection whose replies are not read
//! stops having its requests read).
//!
//! Each accepted connection has a [`ConnId`], never reused in the process, which the
//! service sees with every call ([`ConnInfo::id`]); the server can learn when and why a
//! connection closed ([`ConnStats::on_close`]) and send calls of its own on it, with the
//! replies routed back by xid ([`backchannel`], the NFSv4.1 backchannel).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

pub mod backchannel;
mod conn;
pub mod limits;
pub mod outgoing;

pub use backchannel::{
    Backchannel, CallbackCall, CallbackConfig, CallbackError, CallbackReply, CallbackStats,
    Completion,
};

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

    /// About how many bytes the reply to this message takes (a READ's count, ...), so that
    /// what calls in flight will hold is charged to the memory budget before they run.
    /// Must be cheap. The default, `None`, stands for [`Config::max_record`].
    fn reply_size_hint(&self, conn: &ConnInfo, msg: &[u8]) -> Option<usize> {
        let _ = (conn, msg);
        None
    }

    /// Whether `reply`, the answer to `msg`, says the call failed by its client's own fault
    /// (a forged handle, arguments that do not decode, a program or procedure that does
    /// not exist): a connection whose calls keep failing so is slowed down
    /// ([`limits::Penalty`]). Must be cheap. The default judges the RPC header only
    /// ([`limits::rpc_fault`]).
    fn peer_fault(&self, conn: &ConnInfo, msg: &[u8], reply: &[u8]) -> bool {
        let _ = (conn, msg);
        limits::rpc_fault(reply)
    }

    /// Gives back a reply's buffer once it is written, for reuse (a large buffer that stays
    /// mapped costs no page faults next time). Runs on the connection's task: must be cheap.
    /// The default frees it.
    fn recycle(&self, reply: Vec<u8>) {
        drop(reply);
    }
}

/// A connection's identity: assigned when it is accepted, never reused in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// A new id, unique in the process (the transport takes one per accepted connection;
    /// tests that build a [`ConnInfo`] by hand take one too).
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it (end of stream).
    PeerClosed,
    /// Nothing happened on it for [`Config::idle_timeout`].
    IdleTimeout,
    /// A record did not complete within [`Config::record_timeout`].
    RecordTimeout,
    /// Closed to make room for a new connection, or because memory ran short while its
    /// client did not read its replies.
    Shed,
    /// The socket failed, or the peer sent a record over the limit.
    Error,
    /// The server shut down.
    Shutdown,
}

/// What a service knows about the connection a call came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The connection (to send calls on it, see [`ConnStats::backchannel`], or to know
    /// the calls of one connection from another's).
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
}

/// Transport limits. Each bounds something a peer can make the server hold; see
/// [`limits`] for how they are applied.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest record accepted (a WRITE of wtmax plus headers must fit).
    pub max_record: usize,
    /// Calls running or waiting for their reply to be written, per connection; nothing more
    /// is read from the connection while this many are.
    pub max_in_flight: usize,
    /// Connections open at once, over every listener sharing a [`ConnStats`]. At the limit
    /// a new connection makes the one idle longest close; when none is idle the new one is
    /// refused. Default: [`limits::default_max_connections`] of the descriptor limit.
    pub max_connections: usize,
    /// A connection with no call running and no byte received or sent for this long is
    /// closed. Default 6 minutes, knfsd's value: longer than the 5 minutes after which the
    /// Linux client closes an idle connection itself, so a well-behaved client normally
    /// closes first.
    pub idle_timeout: Duration,
    /// A record whose first byte arrived but which is not complete this much later closes
    /// its connection (a peer trickling bytes to hold memory). Default 30 s: a 1 MiB WRITE
    /// needs under 30 s down to 300 kbit/s; slower links should use a smaller wsize.
    pub record_timeout: Duration,
    /// Bytes of requests being received, replies waiting to be sent and reservations for
    /// calls running, over every connection sharing a [`ConnStats`]. Default:
    /// [`limits::default_memory_budget`] of the machine's RAM.
    pub memory_budget: usize,
    /// Bytes of replies a connection may owe (queued unsent, or expected from its calls
    /// running) before it stops starting calls and reading requests: a peer that does not
    /// read its replies holds at most this much. Default 16 MiB: fifteen 1 MiB READs in
    /// flight, as many as the Linux client's read-ahead sends on one connection.
    pub max_unsent: usize,
    /// Limits of the calls the server sends on a client's connection (the backchannel).
    pub callbacks: CallbackConfig,
}

impl Default for Config {
    /// Defaults for this machine: the connection limit from the current descriptor limit
    /// (raise it first, see [`raise_fd_limit`]), the memory budget from its RAM.
    fn default() -> Self {
        Self {
            max_record: (1 << 20) + 64 * 1024,
            max_in_flight: 64,
            max_connections: limits::default_max_connections(fd_limit()),
            idle_timeout: Duration::from_secs(360),
            record_timeout: Duration::from_secs(30),
            memory_budget: limits::default_memory_budget(total_ram()),
            max_unsent: 16 << 20,
            callbacks: CallbackConfig::default(),
        }
    }
}

/// The soft limit on open descriptors (RLIMIT_NOFILE); 1024 when unknown.
pub fn fd_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024)
}

/// Raises the soft limit on open descriptors to the hard limit (each connection takes
/// one); call once at start, before opening backends (they size their descriptor caches
/// from it). Returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        setrlimit(Resource::Nofile, l)?;
    }
    Ok(fd_limit())
}

/// The machine's RAM in bytes.
// `c_ulong` is 32 bits on 32-bit targets: the conversion is not useless there.
#[allow(clippy::useless_conversion)]
pub fn total_ram() -> u64 {
    let s = rustix::system::sysinfo();
    u64::from(s.totalram).saturating_mul(u64::from(s.mem_unit.max(1)))
}

/// Connection counters, and the state shared by every connection of the listeners serving
/// with it (the connection registry and the memory account).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Idle connections closed to make room for a new one at the connection limit.
    pub shed_for_new: AtomicU64,
    /// New connections refused at the connection limit, none being idle.
    pub refused: AtomicU64,
    /// Connections closed by the idle timeout.
    pub closed_idle: AtomicU64,
    /// Connections closed by the record timeout.
    pub closed_record: AtomicU64,
    /// Accepts that failed for want of descriptors (EMFILE, ENFILE).
    pub accept_no_fd: AtomicU64,
    /// Connections closed when memory ran short because their replies had waited
    /// unwritten, or a record of theirs had been arriving, for [`limits::STALL`] (clients
    /// that do not read their replies, or trickle their calls).
    pub shed_stalled: AtomicU64,
    /// Times a connection was made to wait before its next call because its calls kept
    /// failing by its own fault ([`limits::Penalty`]).
    pub throttled: AtomicU64,
    /// The limits in force (0 until serving starts).
    pub max_connections: AtomicU64,
    /// The idle timeout in force, in seconds.
    pub idle_timeout_secs: AtomicU64,
    /// The per-connection bound on replies owed, in bytes.
    pub max_unsent: AtomicU64,
    /// The record timeout in force, in seconds.
    pub record_timeout_secs: AtomicU64,
    /// The memory account: [`limits::Memory::total`] is the bytes buffered now (received
    /// and unsent), [`limits::Memory::limit`] the budget.
    pub memory: limits::Memory,
    /// Which connections are open, for shedding.
    registry: limits::Registry,
    /// Signalled when a connection closes (accepting may go on after EMFILE).
    closed: Notify,
    /// The open connections' backchannels, close hooks and callback counters.
    pub channels: Arc<backchannel::Channels>,
}

impl ConnStats {
    /// A handle to send calls on connection `id` (see [`backchannel`]); `None` once it
    /// has closed.
    pub fn backchannel(&self, id: ConnId) -> Option<Backchannel> {
        self.channels.backchannel(id)
    }

    /// Runs `hook` with the id and reason of every connection that closes from now on;
    /// see [`backchannel::Channels::on_close`].
    pub fn on_close(&self, hook: impl Fn(ConnId, CloseReason) + Send + Sync + 'static) {
        self.channels.on_close(hook);
    }

    /// Counters of the calls sent on clients' connections.
    pub fn callbacks(&self) -> &CallbackStats {
        &self.channels.stats
    }

    /// Searches of the open connections for one to shed when memory ran short (at most one
    /// per [`limits::SHED_SEARCH_EVERY`]).
    pub fn shed_searches(&self) -> u64 {
        self.registry.searches.load(Ordering::Relaxed)
    }

    /// Records the limits in force.
    fn configure(&self, cfg: &Config) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.max_connections
            .store(n(cfg.max_connections), Ordering::Relaxed);
        self.idle_timeout_secs
            .store(cfg.idle_timeout.as_secs(), Ordering::Relaxed);
        self.record_timeout_secs
            .store(cfg.record_timeout.as_secs(), Ordering::Relaxed);
        self.max_unsent.store(n(cfg.max_unsent), Ordering::Relaxed);
        self.memory.set_limit(cfg.memory_budget);
    }
}

/// How long accepting pauses after EMFILE/ENFILE when no connection closes meanwhile.
const NO_FD_PAUSE: Duration = Duration::from_secs(1);

/// Whether an accept error means the process or the system is out of descriptors.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Accepts connections on `listener` until `shutdown` turns true, then stops accepting,
/// lets each connection finish the calls it has started and returns.
///
/// At [`Config::max_connections`] open connections (over every listener sharing `stats`),
/// a new one makes the connection idle longest close, or is refused (closed at once) when
/// none is idle, with a log line at most every 10 s. When accept fails for want of
/// descriptors, the idle connection idle longest is closed and accepting pauses until a
/// connection closes (or a second passes): never a busy retry.
pub async fn serve(
    listener: TcpListener,
    svc: Arc<dyn Service>,
    cfg: Config,
    stats: Arc<ConnStats>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stats.configure(&cfg);
    let max_conns = u64::try_from(cfg.max_connections.max(1)).unwrap_or(u64::MAX);
    let mut conns = tokio::task::JoinSet::new();
    let mut limit_log = limits::RateLimit::new(Duration::from_secs(10));
    let mut error_log = limits::RateLimit::new(Duration::from_secs(10));
    // Accepting paused (out of descriptors) until a connection closes or this instant.
    let mut paused: Option<Instant> = None;
    loop {
        let resume = paused.unwrap_or_else(Instant::now);
        tokio::select! {
            r = listener.accept(), if paused.is_none() => {
                let (sock, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        let now = Instant::now();
                        if out_of_descriptors(&e) {
                            stats.accept_no_fd.fetch_add(1, Ordering::Relaxed);
                            let shed = stats.registry.shed_idle();
                            if let Some(n) = limit_log.allow(now) {
                                warn!(error = %e, shed_idle = shed, suppressed = n,
                                    "out of descriptors: accepting paused until a connection closes; \
                                     raise LimitNOFILE or lower --max-connections");
                            }
                            paused = Some(now + NO_FD_PAUSE);
                        } else if let Some(n) = error_log.allow(now) {
                            // ECONNABORTED and the like: the next connection is fine.
                            warn!(error = %e, suppressed = n, "accept failed");
                        }
                        continue;
                    }
                };
                let open = stats.open.load(Ordering::Relaxed);
                if open >= max_conns {
                    if stats.registry.shed_idle() {
                        stats.shed_for_new.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = limit_log.allow(Instant::now()) {
                            info!(open, suppressed = n,
                                "connection limit reached: closing the connection idle longest \
                                 for a new one");
                        }
                    } else {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = limit_log.allow(Instant::now()) {
                            warn!(%peer, open, suppressed = n,
                                "connection limit reached and no connection idle: refused; \
                                 raise --max-connections");
                        }
                        drop(sock);
                        continue;
                    }
                }
                let local = sock.local_addr()?;
                let _ = sock.set_nodelay(true);
                let id = ConnId::next();
                let conn = ConnInfo { id, peer, local };
                let mut channel = stats.channels.open(id, cfg.callbacks);
                let svc = svc.clone();
                let stats = stats.clone();
                let sd = shutdown.clone();
                stats.open.fetch_add(1, Ordering::Relaxed);
                stats.total.fetch_add(1, Ordering::Relaxed);
                // Held whatever the budget says: the connection limit bounds it.
                stats.memory.add(limits::CONN_COST);
                let (slot, entry) = stats.registry.insert(Instant::now());
                conns.spawn(async move {
                    let reg = conn::Registered { entry, chan: channel.chan.clone() };
                    let end = conn::connection(sock, conn, svc, cfg, stats.clone(), reg, sd).await;
                    channel.why = end.reason();
                    match end {
                        conn::End::Expired(limits::Expiry::Idle) => {
                            stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                        }
                        conn::End::Expired(limits::Expiry::Record) => {
                            stats.closed_record.fetch_add(1, Ordering::Relaxed);
                        }
                        conn::End::Closed(_) | conn::End::Shed => {}
                    }
                    // Pending callbacks fail and close hooks run before the count drops.
                    drop(channel);
                    stats.registry.remove(slot);
                    stats.memory.release(limits::CONN_COST);
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                    stats.closed.notify_one();
                }.instrument(tracing::info_span!("conn", %peer, id = id.0)));
            }
            () = stats.closed.notified(), if paused.is_some() => paused = None,
            () = tokio::time::sleep_until(resume), if paused.is_some() => paused = None,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::{encode_record, RecordDecoder};
    use parking_lot::Mutex;
    use std::io::{ErrorKind, Read, Write};
    use std::sync::mpsc;

    /// A toy service: message byte 0 says how it blocks (0 Never, 1 Rarely, 2 Likely, 3
    /// TryInline), byte 1 what it does (0 echo, 1 wait for the gate then echo, 2 panic, 3
    /// echo 3 MiB of the byte 2, 4 no reply, 5 echo and judge it the client's fault).
    /// Tried inline, a call that would wait for the gate answers WouldBlock; the others
    /// run.
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
        fn peer_fault(&self, _: &ConnInfo, _: &[u8], reply: &[u8]) -> bool {
            reply.get(1) == Some(&5)
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
        stats: Arc<ConnStats>,
    }

    fn start(cfg: Config) -> Server {
        let (gtx, grx) = mpsc::channel();
        let svc = Arc::new(Toy {
            gate: Mutex::new(Some(grx)),
            ..Toy::default()
        });
        let toy = svc.clone();
        let stats = Arc::new(ConnStats::default());
        let st = stats.clone();
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
                serve(l, svc, cfg, st, rx).await.unwrap();
            });
            let _ = dtx.send(());
        });
        Server {
            addr: arx.recv().unwrap(),
            stop,
            done,
            gate: gtx,
            svc: toy,
            stats,
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
            ..Config::default()
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
            ..Config::default()
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

    /// True once the server has closed `s` (end of stream or reset), waiting at most 10 s.
    fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 64];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn at_the_connection_limit_the_idle_one_goes_and_else_the_new_one() {
        let srv = start(Config {
            max_connections: 2,
            ..Config::default()
        });
        let mut a = Peer::connect(srv.addr);
        a.send(&[0, 0, 1]);
        assert_eq!(a.recv().unwrap(), vec![0, 0, 1]);
        // b is busy: half a record.
        let mut b = Peer::connect(srv.addr);
        b.s.write_all(&[0x80, 0, 0, 9, 1]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // c takes a's place (a is idle), and is served.
        let mut c = Peer::connect(srv.addr);
        c.send(&[0, 0, 3]);
        assert_eq!(c.recv().unwrap(), vec![0, 0, 3]);
        assert!(closed_by_server(&mut a.s), "the idle connection was shed");
        // With b busy and c ... made busy too, d is refused: closed at once.
        c.s.write_all(&[0x80, 0, 0, 9, 1]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut d = Peer::connect(srv.addr);
        assert!(closed_by_server(&mut d.s), "refused");
        b.s.write_all(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        let r = b.recv().unwrap();
        assert_eq!(r.len(), 9, "b kept its place: {r:?}");
    }

    #[test]
    fn idle_connections_and_records_that_never_complete_are_closed() {
        let ms = std::time::Duration::from_millis;
        let srv = start(Config {
            idle_timeout: ms(300),
            record_timeout: ms(300),
            ..Config::default()
        });
        let mut idle = Peer::connect(srv.addr);
        let mut slow = Peer::connect(srv.addr);
        slow.s.write_all(&[0x80, 0, 0, 100, 0, 0]).unwrap();
        // One that keeps busy in between stays open.
        let mut busy = Peer::connect(srv.addr);
        let t = std::time::Instant::now();
        while t.elapsed() < ms(900) {
            busy.send(&[0, 0, 7]);
            assert_eq!(busy.recv().unwrap(), vec![0, 0, 7]);
            std::thread::sleep(ms(50));
        }
        assert!(closed_by_server(&mut idle.s));
        assert!(closed_by_server(&mut slow.s));
        busy.send(&[0, 0, 8]);
        assert_eq!(busy.recv().unwrap(), vec![0, 0, 8]);
    }

    #[test]
    fn a_connection_whose_calls_keep_failing_is_slowed_and_a_good_call_ends_it() {
        let srv = start(Config::default());
        let throttled = || srv.stats.throttled.load(Ordering::SeqCst);
        let mut p = Peer::connect(srv.addr);
        // Another connection, failing too: the penalty is per connection.
        let mut q = Peer::connect(srv.addr);
        let fail = |p: &mut Peer, n: u8| {
            for i in 0..n {
                // Inline and pool calls are judged alike.
                p.send(&[i % 3, 5, i]);
                assert_eq!(p.recv().unwrap(), vec![i % 3, 5, i]);
            }
        };
        let t = std::time::Instant::now();
        fail(&mut p, 16);
        // The 8 free faults, then 8 delayed: 1, 2, ... 64 ms waited before the 10th to
        // 16th calls were read (at least: the delay is a floor, never a ceiling).
        assert_eq!(throttled(), 8);
        assert!(t.elapsed() >= std::time::Duration::from_millis(127));
        fail(&mut q, 8);
        assert_eq!(throttled(), 8, "q's own faults are still free");
        // A good call (read once p's last delay has passed) ends p's penalty: its next
        // faults are free again.
        p.send(&[0, 0, 1]);
        assert_eq!(p.recv().unwrap(), vec![0, 0, 1]);
        fail(&mut p, 8);
        assert_eq!(throttled(), 8);
        fail(&mut p, 1);
        assert_eq!(throttled(), 9);
    }

    #[test]
    fn a_record_trickled_in_small_pieces_never_takes_much_more_than_it_sent() {
        let srv = start(Config::default());
        let mut p = Peer::connect(srv.addr);
        // The mark of a 1 MiB record, then 48 KiB of it in 1 KiB pieces, each read on its own.
        p.s.write_all(&(0x8000_0000u32 | (1 << 20)).to_be_bytes())
            .unwrap();
        for _ in 0..48 {
            p.s.write_all(&[0; 1024]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // What the connection holds is charged to the budget once it has read.
        let t = std::time::Instant::now();
        while srv.stats.memory.total() < limits::CONN_COST + 48 * 1024 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "never read"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The most ever charged, room made for reads included: about twice what arrived
        // (each read makes room for as much as is buffered), not 256 KiB more.
        let peak = srv.stats.memory.take_peak() - limits::CONN_COST;
        assert!(
            peak <= 2 * 48 * 1024 + 16 * 1024,
            "{peak} bytes taken for 48 KiB received"
        );
    }

    #[test]
    fn each_open_connection_is_charged_to_the_memory_budget() {
        let srv = start(Config::default());
        let total = || srv.stats.memory.total();
        let open = || srv.stats.open.load(Ordering::SeqCst);
        let mut peers: Vec<_> = (0..10).map(|_| Peer::connect(srv.addr)).collect();
        // Once served, each is open (its accept has run).
        for p in &mut peers {
            p.send(&[0, 0, 1]);
            assert_eq!(p.recv().unwrap(), vec![0, 0, 1]);
        }
        assert_eq!(open(), 10);
        // Each connection gives back what its call took just after sending the reply.
        let t = std::time::Instant::now();
        while total() != 10 * limits::CONN_COST {
            let n = total();
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "{n} bytes held"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(peers);
        while open() > 0 {
            assert!(t.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(total(), 0, "given back when they close");
    }
}
