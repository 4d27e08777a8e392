//! The asynchronous RPC client: many calls in flight on one TCP connection, matched by xid.
//!
//! [`core::CallTable`] (the table of [`rnfs_rpc::xid`]) holds all the logic (xids, timeouts, retransmission, replay after
//! reconnect); this module is the thin tokio driver around it. One driver task owns the
//! table and both halves of the connection: it writes calls without waiting (what the
//! socket does not take waits in an outbox, written when the socket drains, so a slow
//! reader on the other side never stops us from reading replies) and reads replies.
//! Callers talk to the driver through a channel and wait on a oneshot, or leave a function
//! for the driver to run with the reply ([`RpcClient::start_call`]).
//!
//! The server may call the client on the same connection (the NFSv4.1 backchannel): such
//! CALL records go to [`RpcConfig::on_call`], whose reply is sent back on the connection
//! the call came on; without a handler they are dropped (counted as malformed replies).
pub mod buf;
pub mod core;

use self::buf::{BufPool, FrameStats, Framer, Reply, Slice};
use self::core::{Backoff, CallSpec, CallTable, Output, Record, RetryPolicy, TableStats};
use crate::error::RpcError;
use parking_lot::Mutex;
use rnfs_proto::rpc::{AuthSysParams, OpaqueAuth, AUTH_SYS};
use rnfs_rpc::outbox::Outbox;
use rnfs_xdr::{VarArray, Xdr, XdrString};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tracing::{debug, Instrument};

/// Settings of one RPC client.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Timeouts and hard/soft mode.
    pub retry: RetryPolicy,
    /// Calls in flight at once; further callers wait for a slot (bounds memory).
    pub max_in_flight: usize,
    /// Largest reply record accepted; a bigger one resets the connection.
    pub max_record: usize,
    /// Idle receive buffers kept for reuse, in bytes (large replies are read into buffers
    /// of their own; reusing them spares the kernel faulting fresh memory in).
    pub recv_pool: usize,
    /// First delay between reconnection attempts (doubles up to `reconnect_max`, and comes
    /// back only once a connection has delivered a reply).
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
    /// Credential sent with every call.
    pub cred: OpaqueAuth,
    /// Connect from a privileged source port (below 1024), for servers that only accept
    /// those (`secure` exports). Needs root or `CAP_NET_BIND_SERVICE`.
    pub privileged_port: bool,
    /// Answers the calls the server sends on the connection (the v4.1 backchannel).
    pub on_call: Option<CallHandler>,
}

/// Answers a call the server sends to the client: given the whole call message, returns
/// the whole reply message, or `None` to send nothing. Runs on the connection's driver
/// task: must be quick and never block (hand longer work to a task and answer from what
/// is known, as a callback service does).
#[derive(Clone)]
pub struct CallHandler(Arc<HandlerFn>);

type HandlerFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

impl CallHandler {
    /// A handler running `f` for each call.
    pub fn new(f: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for CallHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallHandler")
    }
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            max_in_flight: 128,
            max_record: (4 << 20) + 64 * 1024,
            recv_pool: 16 << 20,
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_secs(5),
            cred: OpaqueAuth::none(),
            privileged_port: false,
            on_call: None,
        }
    }
}

/// Connects to `addr`, from a privileged source port when `privileged` (tried from 1023
/// down to 512, as the kernel's `resvport` does, skipping ports in use).
pub async fn connect_tcp(addr: SocketAddr, privileged: bool) -> std::io::Result<TcpStream> {
    if !privileged {
        // SO_REUSEADDR from the start, so that a reconnection can bind this socket's port
        // again while the old connection is still closing (see reconnect_tcp).
        let sock = tcp_socket(addr)?;
        sock.set_reuseaddr(true)?;
        return sock.connect(addr).await;
    }
    connect_privileged(addr).await
}

/// Reconnects to `addr` from `port`, the source port of the connection that was lost, as
/// the Linux client does: a server's duplicate request cache knows a client by address
/// and port (knfsd's and ours), so only a retransmission from the same port finds the
/// reply of a non-idempotent call that ran before the connection broke. When the port
/// cannot be had again (taken, or the old connection still in TIME_WAIT), any port that
/// [`connect_tcp`] would use: the call is then retransmitted as a new client's.
pub async fn reconnect_tcp(
    addr: SocketAddr,
    port: u16,
    privileged: bool,
) -> std::io::Result<TcpStream> {
    // The old connection may take a moment to leave the kernel's tables (its last ACK):
    // a few short waits, 630 ms in all, before giving the port up.
    let mut wait = Duration::from_millis(10);
    for _ in 0..6 {
        match connect_from(addr, port).await {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
                ) =>
            {
                debug!("reconnect from port {port}: {e}; again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                debug!("reconnect from port {port}: {e}; from another port");
                break;
            }
        }
    }
    connect_tcp(addr, privileged).await
}

fn tcp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
}

fn any_address(addr: SocketAddr, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = if addr.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, port)
}

async fn connect_from(addr: SocketAddr, port: u16) -> std::io::Result<TcpStream> {
    let sock = tcp_socket(addr)?;
    sock.set_reuseaddr(true)?;
    sock.bind(any_address(addr, port))?;
    sock.connect(addr).await
}

async fn connect_privileged(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut last = None;
    for port in (512..1024u16).rev() {
        let sock = tcp_socket(addr)?;
        sock.set_reuseaddr(true)?;
        match sock.bind(any_address(addr, port)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind privileged source port {port}: {e} (privport needs root or CAP_NET_BIND_SERVICE)"
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        match sock.connect(addr).await {
            Ok(s) => return Ok(s),
            // The same (source, destination) pair is still in TIME_WAIT: try another port.
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrNotAvailable
                    || e.kind() == std::io::ErrorKind::AddrInUse =>
            {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free privileged port")))
}

/// An AUTH_SYS credential (RFC 5531 appendix A) with these ids.
pub fn auth_sys(uid: u32, gid: u32, gids: &[u32]) -> OpaqueAuth {
    let p = AuthSysParams {
        stamp: 0,
        machine_name: XdrString(b"rnfs-client".to_vec()),
        uid,
        gid,
        gids: VarArray(gids.iter().copied().take(16).collect()),
    };
    OpaqueAuth {
        flavor: AUTH_SYS,
        body: rnfs_xdr::Opaque(rnfs_xdr::to_bytes(&p)),
    }
}

/// Counters of a client: the call table's, plus connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// The call table's counters (`live` is the number of calls in flight).
    pub table: TableStats,
    /// Connections established.
    pub connects: u64,
    /// Connections lost (closed by the peer, reset, or broken framing).
    pub disconnects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Calls received from the server and handed to [`RpcConfig::on_call`].
    pub calls_received: u64,
    /// Record marking of the replies received, over all connections (fragments, and the
    /// bytes moved reassembling records of several).
    pub framing: FrameStats,
}

/// Who hears of a call's outcome: a caller awaiting it, or a function the driver task runs
/// as it reads the reply (no task to wake up: see [`RpcClient::start_call`]).
enum Waiter {
    Chan(oneshot::Sender<Result<Reply, RpcError>>),
    Call(Done),
}

impl Waiter {
    fn complete(self, r: Result<Reply, RpcError>) {
        match self {
            // The caller may have gone away; nothing to do then.
            Waiter::Chan(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Call(f) => f(r),
        }
    }

    /// Nobody wants the outcome any more (a function always does).
    fn is_abandoned(&self) -> bool {
        match self {
            Waiter::Chan(tx) => tx.is_closed(),
            Waiter::Call(_) => false,
        }
    }
}

struct Cmd {
    prog: u32,
    vers: u32,
    proc_: u32,
    args: Vec<u8>,
    bulk: Option<Slice>,
    reply: Waiter,
}

type Done = Box<dyn FnOnce(Result<Reply, RpcError>) + Send>;

/// A call of [`RpcClient::start_call`] waiting for a slot.
struct CallOf {
    prog: u32,
    vers: u32,
    proc_: u32,
    args: Vec<u8>,
    done: Done,
}

impl CallOf {
    fn send(self, inner: &Inner, permit: tokio::sync::OwnedSemaphorePermit) {
        let done = self.done;
        // The slot is free again before `done` runs (it may start the next call).
        let reply = Waiter::Call(Box::new(move |r| {
            drop(permit);
            done(r);
        }));
        let cmd = Cmd {
            prog: self.prog,
            vers: self.vers,
            proc_: self.proc_,
            args: self.args,
            bulk: None,
            reply,
        };
        if let Err(mpsc::error::SendError(c)) = inner.cmd.send(cmd) {
            c.reply.complete(Err(RpcError::Shutdown));
        }
    }
}

/// A connection to one server address. Cheap to clone; the driver stops when the last
/// clone is dropped (calls still waiting fail with [`RpcError::Shutdown`]).
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    cmd: mpsc::UnboundedSender<Cmd>,
    slots: Arc<Semaphore>,
    stats: Arc<Mutex<RpcStats>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.inner.addr)
            .finish()
    }
}

impl RpcClient {
    /// A client for `addr`; connects lazily (at the first call) and reconnects as needed.
    /// Must be called inside a tokio runtime.
    pub fn new(addr: SocketAddr, cfg: RpcConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(RpcStats::default()));
        let first_xid = {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_nanos() as u32) ^ (std::process::id() << 16)
        };
        let slots = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
        let driver = Driver {
            addr,
            table: CallTable::new(cfg.retry, first_xid),
            cfg,
            stats: stats.clone(),
            rx,
        };
        tokio::spawn(driver.run().instrument(tracing::debug_span!("rpc", %addr)));
        Self {
            inner: Arc::new(Inner {
                addr,
                cmd: tx,
                slots,
                stats,
            }),
        }
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RpcStats {
        *self.inner.stats.lock()
    }

    /// Calls `proc_` of `prog`/`vers` with encoded arguments; returns the reply, whose
    /// [`Reply::body`] is the encoded results. Dropping the future cancels the call (it
    /// leaves the table at the next tick).
    pub async fn call_raw(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: Vec<u8>,
    ) -> Result<Reply, RpcError> {
        self.call_bulk(prog, vers, proc_, args, None).await
    }

    /// [`RpcClient::call_raw`] with bulk data after the arguments, sent from where it is
    /// (no copy): `args` ends with the length of an XDR opaque whose contents are `bulk`.
    pub async fn call_bulk(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: Vec<u8>,
        bulk: Option<Slice>,
    ) -> Result<Reply, RpcError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| RpcError::Shutdown)?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd {
                prog,
                vers,
                proc_,
                args,
                bulk,
                reply: Waiter::Chan(tx),
            })
            .map_err(|_| RpcError::Shutdown)?;
        rx.await.map_err(|_| RpcError::Shutdown)?
    }

    /// Starts a call whose outcome (the reply, or the error that ends it) is given to
    /// `done`, run by the connection's driver task as it reads the reply: a caller that
    /// does not need to wait saves a task wake-up per call, e.g. the page cache storing a
    /// READ's pages. `done` must be quick and never block. It is dropped without being
    /// called only if the runtime shuts down. Must be called inside a tokio runtime.
    pub fn start_call(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: Vec<u8>,
        done: impl FnOnce(Result<Reply, RpcError>) + Send + 'static,
    ) {
        let call = CallOf {
            prog,
            vers,
            proc_,
            args,
            done: Box::new(done),
        };
        match self.inner.slots.clone().try_acquire_owned() {
            Ok(permit) => call.send(&self.inner, permit),
            // Every slot taken: wait for one in a task of its own.
            Err(_) => {
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    match inner.slots.clone().acquire_owned().await {
                        Ok(permit) => call.send(&inner, permit),
                        Err(_) => (call.done)(Err(RpcError::Shutdown)),
                    }
                });
            }
        }
    }

    /// Calls with typed arguments and results.
    pub async fn call<A: Xdr, R: Xdr>(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &A,
    ) -> Result<R, RpcError> {
        let reply = self
            .call_raw(prog, vers, proc_, rnfs_xdr::to_bytes(args))
            .await?;
        rnfs_xdr::from_bytes(reply.body()).map_err(RpcError::Decode)
    }
}

/// The read side of a connection, with the framer of replies. The driver task owns it and
/// the write side ([`Out`]), both set and dropped together, so a call goes out and a reply
/// is handled without waking any other task.
struct Conn {
    read: tokio::net::tcp::OwnedReadHalf,
    framer: Framer,
}

/// The write side of a connection, with the records not yet written: a peer slow to read
/// only makes records wait here (the driver goes on reading replies).
struct Out {
    write: tokio::net::tcp::OwnedWriteHalf,
    q: Outbox<Record>,
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

struct Driver {
    addr: SocketAddr,
    cfg: RpcConfig,
    table: CallTable<Waiter>,
    stats: Arc<Mutex<RpcStats>>,
    rx: mpsc::UnboundedReceiver<Cmd>,
}

/// Most calls taken from the queue before writing (they go out together).
const BATCH: usize = 64;

/// How often calls abandoned by their callers are reaped when nothing else happens.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Whether a record is an RPC call (its `msg_type`, the second word, is CALL = 0).
fn is_call(rec: &[u8]) -> bool {
    rec.get(4..8) == Some(&[0, 0, 0, 0])
}

/// Receives into the area the connection's framer asks for (cancel safe: nothing is
/// taken as received unless the read completed).
async fn read_some(conn: &mut Option<Conn>) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.read.read(c.framer.recv_area()).await,
        None => std::future::pending().await,
    }
}

/// Waits until the socket takes more, if records are waiting for that.
async fn writable(out: &Option<Out>) -> std::io::Result<()> {
    match out {
        Some(o) if !o.q.is_empty() => o.write.writable().await,
        _ => std::future::pending().await,
    }
}

async fn connecting(c: &mut Option<Connecting>) -> std::io::Result<TcpStream> {
    match c {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Queues the records to send and completes the calls that ended.
    fn complete(&self, outs: Vec<Output<Waiter>>, out: &mut Option<Out>) {
        // Counters first, so that a woken caller sees its call gone from `live`.
        self.publish(|_| {});
        for o in outs {
            match o {
                Output::Send(rec) => {
                    if let Some(o) = out.as_mut() {
                        o.q.push(rec);
                    }
                }
                Output::Complete(w, r) => w.complete(r.map(|a| Reply::new(a.record, a.body))),
            }
        }
    }

    fn publish(&self, extra: impl FnOnce(&mut RpcStats)) {
        let mut s = self.stats.lock();
        s.table = self.table.stats();
        extra(&mut s);
    }

    /// Runs the handler for a call the server sent; its reply goes to the outbox.
    fn answer_call(&self, msg: &[u8], out: &mut Option<Out>) {
        let Some(h) = &self.cfg.on_call else { return };
        let reply = (h.0)(msg);
        self.publish(|s| s.calls_received += 1);
        match (reply.as_deref().and_then(Record::message), out.as_mut()) {
            (Some(rec), Some(o)) => o.q.push(rec),
            (None, _) if reply.is_some() => debug!("reply to the server's call too long; dropped"),
            _ => {}
        }
    }

    /// Starts a call; its record goes to the outbox.
    fn start(&mut self, c: Cmd, out: &mut Option<Out>) {
        let cred = self.cfg.cred.clone();
        let spec = CallSpec {
            prog: c.prog,
            vers: c.vers,
            proc_: c.proc_,
            cred: &cred,
            args: &c.args,
            bulk: c.bulk,
        };
        let (_, send) = self.table.start(Instant::now().into_std(), c.reply, |x| {
            core::record(x, spec)
        });
        if let (Some(rec), Some(o)) = (send, out.as_mut()) {
            o.q.push(rec);
        }
    }

    async fn run(mut self) {
        let mut conn: Option<Conn> = None;
        let mut out: Option<Out> = None;
        let mut pending_connect: Option<Connecting> = None;
        let mut backoff = Backoff::new(self.cfg.reconnect_min, self.cfg.reconnect_max);
        let mut next_connect = Instant::now();
        let pool = BufPool::new(self.cfg.recv_pool);
        let mut closed = false;
        // The source port of the last connection, to reconnect from (see reconnect_tcp).
        let mut last_port: Option<u16> = None;
        // Record marking counters of the connections gone.
        let mut framing = FrameStats::default();
        loop {
            let now = Instant::now();
            if conn.is_none()
                && pending_connect.is_none()
                && !self.table.is_empty()
                && now >= next_connect
            {
                let addr = self.addr;
                let privileged = self.cfg.privileged_port;
                pending_connect = Some(Box::pin(async move {
                    let s = match last_port {
                        Some(p) => reconnect_tcp(addr, p, privileged).await?,
                        None => connect_tcp(addr, privileged).await?,
                    };
                    s.set_nodelay(true)?;
                    Ok(s)
                }));
            }
            if closed && self.table.is_empty() {
                break;
            }
            let mut wake = now + REAP_EVERY;
            if let Some(d) = self.table.next_deadline() {
                wake = wake.min(Instant::from_std(d));
            }
            if conn.is_none() && pending_connect.is_none() && !self.table.is_empty() {
                wake = wake.min(next_connect);
            }
            let mut lost = false;
            tokio::select! {
                cmd = self.rx.recv(), if !closed => match cmd {
                    Some(c) => {
                        self.start(c, &mut out);
                        // Take what else is waiting: written together below.
                        for _ in 1..BATCH {
                            match self.rx.try_recv() {
                                Ok(c) => self.start(c, &mut out),
                                Err(_) => break,
                            }
                        }
                    }
                    None => closed = true,
                },
                r = read_some(&mut conn) => match r {
                    Ok(0) | Err(_) => lost = true,
                    Ok(n) => {
                        let mut outs = Vec::new();
                        if let Some(c) = conn.as_mut() {
                            c.framer.received(n);
                            loop {
                                match c.framer.next_record() {
                                    Ok(Some(rec)) if is_call(&rec) && self.cfg.on_call.is_some() => {
                                        self.answer_call(&rec, &mut out);
                                    }
                                    Ok(Some(rec)) => {
                                        if let Some(o) = self.table.on_record(rec) {
                                            backoff.delivered();
                                            outs.push(o);
                                        }
                                    }
                                    Ok(None) => break,
                                    Err(e) => {
                                        debug!("broken record stream: {e}");
                                        lost = true;
                                        break;
                                    }
                                }
                            }
                            // Before the callers wake, as the table's counters.
                            let f = framing + c.framer.stats();
                            self.publish(|s| s.framing = f);
                        }
                        self.complete(outs, &mut out);
                    }
                },
                r = writable(&out) => lost |= r.is_err(),
                r = connecting(&mut pending_connect) => {
                    pending_connect = None;
                    match r {
                        Ok(stream) => {
                            debug!("connected");
                            last_port = stream.local_addr().ok().map(|a| a.port());
                            let (read, write) = stream.into_split();
                            conn = Some(Conn { read, framer: Framer::new(self.cfg.max_record, pool.clone()) });
                            out = Some(Out { write, q: Outbox::with_batch(BATCH) });
                            let outs = self.table.on_connect();
                            self.complete(outs, &mut out);
                            self.publish(|s| s.connects += 1);
                        }
                        Err(e) => {
                            debug!("connect failed: {e}");
                            next_connect = Instant::from_std(backoff.failed(Instant::now().into_std()));
                            let outs = self.table.on_connect_failed(self.addr, &e.to_string());
                            self.complete(outs, &mut out);
                            self.publish(|s| s.connect_failures += 1);
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    let outs = self.table.on_tick(Instant::now().into_std());
                    self.complete(outs, &mut out);
                    self.table.reap(|w| w.is_abandoned());
                    pool.trim_if_idle();
                },
            }
            if let Some(o) = out.as_mut() {
                if let Err(e) = o.q.flush(|iov| o.write.try_write_vectored(iov), drop) {
                    debug!("send failed: {e}");
                    lost = true;
                }
            }
            if let Some(c) = conn.take_if(|_| lost) {
                debug!("connection lost; calls will be replayed");
                framing = framing + c.framer.stats();
                out = None;
                let now = Instant::now().into_std();
                let outs = self.table.on_disconnect(now);
                self.complete(outs, &mut out);
                next_connect = Instant::from_std(backoff.failed(now));
                self.publish(|s| s.disconnects += 1);
            }
            let f = framing + conn.as_ref().map(|c| c.framer.stats()).unwrap_or_default();
            self.publish(|s| s.framing = f);
        }
        let outs = self.table.shutdown();
        self.complete(outs, &mut out);
        self.publish(|_| {});
    }
}
