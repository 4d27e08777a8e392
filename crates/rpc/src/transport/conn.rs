//! One connection's task: reads records, runs calls (inline or on the pool), writes replies,
//! within the limits of [`super::limits`]: what it holds is charged to the server's memory
//! budget, it stops reading when its replies are not being read, and it closes when idle
//! too long, when a record takes too long, or when the accept loop sheds it.
//!
//! It also writes the calls the server sends on the connection ([`super::backchannel`]),
//! each as a whole record between replies, and hands the REPLY records it reads to them.
use super::backchannel::{is_reply, Channel};
use super::limits::{self, Entry, Expiry};
use super::{Attempt, Blocking, CloseReason, Config, ConnInfo, ConnStats, Service};
use crate::outbox::{Outbox, Pieces};
use crate::record::{single_fragment_header, RecordDecoder};
use parking_lot::Mutex;
use std::io::ErrorKind;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// Replies of calls that ran on the blocking pool, waiting for the connection task, each
/// with the bytes reserved for it and whether it failed by the client's fault.
#[derive(Default)]
struct Finished {
    replies: Mutex<Vec<Done>>,
    wake: Notify,
}

/// A pool call's outcome.
struct Done {
    reserved: usize,
    reply: Option<Vec<u8>>,
    /// It failed by the client's fault ([`Service::peer_fault`]).
    fault: bool,
}

impl Finished {
    fn push(&self, reserved: usize, reply: Option<Vec<u8>>, fault: bool) {
        self.replies.lock().push(Done {
            reserved,
            reply,
            fault,
        });
        self.wake.notify_one();
    }
}

/// Hands a pool call's reply to its connection; when dropped unused (the call panicked, or
/// never ran because the runtime is shutting down) it reports "no reply", so the connection
/// never waits for a call that is gone.
struct Completion(Option<Arc<Finished>>, usize);

impl Completion {
    fn send(mut self, reply: Option<Vec<u8>>, fault: bool) {
        if let Some(fin) = self.0.take() {
            fin.push(self.1, reply, fault);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(fin) = self.0.take() {
            fin.push(self.1, None, false);
        }
    }
}

/// Most room made for one read from a socket while a record is arriving. The room made
/// is what is buffered already (at least [`FIRST_READ`]), so the buffer at most doubles
/// per read: a record trickled in small pieces (slow-loris) takes about twice its bytes,
/// not 256 KiB more than it sent for every piece (and gives it back after each read).
const READ_CHUNK: usize = 256 * 1024;

/// Room made for the first read after the buffer emptied: most calls are small, and an
/// idle connection should not hold a large buffer.
const FIRST_READ: usize = 16 * 1024;

/// Least worth reading when memory is short.
const MIN_READ: usize = 1024;

/// Most replies sent by one vectored write (two slices each; IOV_MAX is 1024).
const MAX_BATCH: usize = 256;

/// Bytes of replies from inline calls worth sending before running the next call: small
/// replies are gathered into one write, large ones go out while the next call runs.
const SEND_EARLY: usize = 64 * 1024;

/// How often a connection stopped for want of memory looks again, besides being woken
/// when the total falls below the mark.
const MEMORY_RETRY: Duration = Duration::from_millis(250);

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

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer closed, the stream broke, or the server shut down: which, said.
    Closed(CloseReason),
    /// Expired (see [`Expiry`]).
    Expired(Expiry),
    /// Shed by the accept loop to make room for a new connection, or for memory.
    Shed,
}

impl End {
    /// The reason told to whoever waits for the connection to close.
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            End::Closed(why) => why,
            End::Expired(Expiry::Idle) => CloseReason::IdleTimeout,
            End::Expired(Expiry::Record) => CloseReason::RecordTimeout,
            End::Shed => CloseReason::Shed,
        }
    }
}

/// What the connection holds, charged to the server's memory budget.
struct Held<'a> {
    shared: &'a ConnStats,
    /// Bytes charged to the budget.
    charged: usize,
    /// Capacity of the replies in the outbox.
    replies: usize,
    /// Reserved for calls running on the pool (their message and expected reply).
    reserved: usize,
}

impl Held<'_> {
    /// Replies owed: queued or expected from calls running.
    fn owed(&self) -> usize {
        self.replies + self.reserved
    }

    /// Takes up to `want` (at least `least`) from the budget for a connection holding
    /// `held`; what was granted. Grants not yet brought back to what is held by
    /// [`Held::sync`] count as held (several calls started in one turn).
    fn take(&mut self, held: usize, want: usize, least: usize) -> usize {
        let open = usize::try_from(self.shared.open.load(Relaxed)).unwrap_or(usize::MAX);
        let held = held.max(self.charged);
        let g = self.shared.memory.take(open, held, want, least);
        self.charged += g;
        g
    }

    /// Brings the charge to `now`, what the connection holds.
    fn sync(&mut self, now: usize) {
        if now > self.charged {
            self.shared.memory.add(now - self.charged);
        } else {
            self.shared.memory.release(self.charged - now);
        }
        self.charged = now;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.shared.memory.release(self.charged);
    }
}

/// The connection's state between events.
struct Conn<'a> {
    sock: &'a TcpStream,
    conn: ConnInfo,
    svc: Arc<dyn Service>,
    cfg: Config,
    fin: Arc<Finished>,
    /// The calls the server sends on this connection.
    chan: Arc<Channel>,
    /// Why reading stopped, first cause (none yet: still open, or ending otherwise).
    why: Option<CloseReason>,
    dec: RecordDecoder,
    /// A call taken from the decoder and not yet started (waiting for memory or for the
    /// peer to read replies).
    pending: Option<Vec<u8>>,
    out: Outbox<Framed>,
    held: Held<'a>,
    /// Calls running on the blocking pool.
    running: usize,
    /// Whether to read more from the socket: not after end of stream, shutdown, a bad
    /// record or a failed write.
    reading: bool,
    /// Whether to take more calls out of what was read: not after a bad record.
    decoding: bool,
    /// The socket failed: replies can no longer be sent.
    broken: bool,
    /// Stopped reading or starting calls for want of memory.
    starved: bool,
    last_active: Instant,
    record_started: Option<Instant>,
    /// Since when replies have waited with none of them written (None: none wait).
    unsent_since: Option<Instant>,
    /// Calls failing by the client's fault, in a row.
    penalty: limits::Penalty,
    /// Nothing is read or started before then (the penalty's delay).
    hold_until: Option<Instant>,
}

impl Conn<'_> {
    /// Bytes held: receive buffers, the call waiting, replies and reservations.
    fn holding(&self) -> usize {
        self.dec.held() + self.pending.as_ref().map_or(0, Vec::capacity) + self.held.owed()
    }

    /// The socket failed: drop what waits, stop everything.
    fn broke(&mut self, e: &std::io::Error) {
        debug!(error = %e, "write failed");
        self.stop(CloseReason::Error);
        self.broken = true;
        self.reading = false;
        self.decoding = false;
        self.pending = None;
        self.out.clear();
        self.unsent_since = None;
        self.held.replies = 0;
    }

    /// Stops reading, for this reason if it is the first.
    fn stop(&mut self, why: CloseReason) {
        self.reading = false;
        self.why.get_or_insert(why);
    }

    /// Queues the calls the server sends on this connection, each as one record between
    /// replies (dropped when the socket has failed: they fail when the connection closes).
    fn send_callbacks(&mut self) {
        for call in self.chan.take_queued() {
            if !self.broken {
                self.push_reply(call);
            }
        }
    }

    /// Queues a reply as one record (one larger than a record can be is dropped, logged).
    fn push_reply(&mut self, reply: Vec<u8>) {
        match single_fragment_header(reply.len()) {
            Some(mark) => {
                self.held.replies += reply.capacity();
                if self.out.is_empty() {
                    self.unsent_since = Some(Instant::now());
                }
                self.out.push(Framed { mark, body: reply });
            }
            None => error!(len = reply.len(), "reply too large for a record; dropped"),
        }
    }

    /// Writes what the socket takes of the replies waiting, giving each written reply's
    /// buffer back to the service.
    fn flush(&mut self) {
        let before = self.out.bytes();
        let svc = &*self.svc;
        let sock = self.sock;
        let replies = &mut self.held.replies;
        let r = self.out.flush(
            |iov| sock.try_write_vectored(iov),
            |f| {
                *replies -= f.body.capacity().min(*replies);
                svc.recycle(f.body);
            },
        );
        if self.out.bytes() < before {
            self.last_active = Instant::now();
            self.unsent_since = (!self.out.is_empty()).then_some(self.last_active);
        }
        if let Err(e) = r {
            self.broke(&e);
        }
    }

    /// Takes in the replies of pool calls that finished.
    fn collect(&mut self) {
        if self.running == 0 {
            return;
        }
        let done = std::mem::take(&mut *self.fin.replies.lock());
        if done.is_empty() {
            return;
        }
        self.last_active = Instant::now();
        for Done {
            reserved,
            reply: r,
            fault,
        } in done
        {
            self.running -= 1;
            self.held.reserved -= reserved.min(self.held.reserved);
            if r.is_some() {
                self.judged(fault);
            }
            if let Some(r) = r.filter(|_| !self.broken) {
                self.push_reply(r);
            }
        }
    }

    /// Applies [`limits::Penalty`] to a call's outcome: a connection whose calls keep
    /// failing by its own fault reads and starts nothing until the delay has passed; a
    /// call that does not fail so lifts it.
    fn judged(&mut self, fault: bool) {
        let d = self.penalty.after(fault);
        if d.is_zero() {
            if !fault {
                self.hold_until = None;
            }
            return;
        }
        self.held.shared.throttled.fetch_add(1, Relaxed);
        let until = Instant::now() + d;
        self.hold_until = Some(self.hold_until.map_or(until, |t| t.max(until)));
    }

    /// Starts the calls received, up to the bounds: calls in flight, unsent replies, memory.
    /// Replies to the server's own calls are handed to them as they come, even at the
    /// bound on calls in flight (a call may be waiting for one).
    fn start_calls(&mut self) {
        let max = self.cfg.max_in_flight.max(1);
        while self.decoding && self.hold_until.is_none() {
            let full = self.running + self.out.len() >= max;
            if full && self.pending.is_some() {
                break;
            }
            let msg = match self.pending.take() {
                Some(m) => m,
                None => match self.dec.next_record() {
                    Ok(Some(m)) => {
                        self.record_started = None;
                        if is_reply(&m) {
                            self.last_active = Instant::now();
                            self.chan.on_reply(m);
                            continue;
                        }
                        m
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "closing connection: bad record");
                        self.decoding = false;
                        self.stop(CloseReason::Error);
                        break;
                    }
                },
            };
            if full {
                self.pending = Some(msg);
                break;
            }
            let hint = self
                .svc
                .reply_size_hint(&self.conn, &msg)
                .unwrap_or(self.cfg.max_record);
            // The peer does not read its replies: run nothing more for it (one call at a
            // time always runs).
            let owed = self.held.owed();
            if owed > 0 && owed + hint > self.cfg.max_unsent {
                self.pending = Some(msg);
                break;
            }
            let holding = self.holding();
            if self.held.take(holding, hint, hint) == 0 {
                self.starved = true;
                self.shed_for_memory();
                self.pending = Some(msg);
                break;
            }
            self.run(msg, hint);
        }
    }

    /// Runs one call, inline or on the pool.
    fn run(&mut self, msg: Vec<u8>, hint: usize) {
        // Nothing else running or received: this call cannot hold up another one.
        let alone = self.running == 0 && !self.dec.has_record();
        let (svc, conn) = (&*self.svc, &self.conn);
        let attempt = match svc.blocking(conn, &msg) {
            Blocking::Never => call_inline(svc, conn, &msg, false),
            Blocking::Rarely if alone => call_inline(svc, conn, &msg, false),
            Blocking::TryInline if alone => call_inline(svc, conn, &msg, true),
            Blocking::Rarely | Blocking::TryInline | Blocking::Likely => Attempt::WouldBlock,
        };
        if let Attempt::Done(reply) = attempt {
            if let Some(r) = reply {
                self.judged(svc.peer_fault(conn, &msg, &r));
                self.push_reply(r);
            }
            if self.out.bytes() >= SEND_EARLY {
                self.flush();
            }
        } else {
            let reserved = hint + msg.capacity();
            self.held.reserved += reserved;
            let done = Completion(Some(self.fin.clone()), reserved);
            let svc = self.svc.clone();
            let conn = self.conn;
            self.running += 1;
            tokio::task::spawn_blocking(move || {
                let r = svc.call(&conn, &msg);
                let fault = r.as_deref().is_some_and(|r| svc.peer_fault(&conn, &msg, r));
                done.send(r, fault);
            });
        }
    }

    /// Reads what the socket has, as far as the memory budget allows.
    fn read(&mut self) {
        let want = self.dec.buffered().clamp(FIRST_READ, READ_CHUNK);
        let growth = self.dec.growth_for(want);
        let room = if growth == 0 {
            want
        } else {
            let holding = self.holding();
            let g = self.held.take(holding, growth, growth.min(MIN_READ));
            if g == 0 {
                self.starved = true;
                self.shed_for_memory();
                return;
            }
            want - (growth - g)
        };
        // Straight into the decoder's buffer, without zeroing it first.
        match self.sock.try_read_buf(self.dec.recv_buf(room)) {
            Ok(0) => self.stop(CloseReason::PeerClosed),
            Ok(_) => self.last_active = Instant::now(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                debug!(error = %e, "read failed");
                self.stop(CloseReason::Error);
            }
        }
    }

    /// Memory is short for this connection: close the heaviest connection whose client
    /// does not read its replies, if there is one (see [`limits::pick_stalled`]).
    fn shed_for_memory(&self) {
        let s = self.held.shared;
        if s.registry.shed_stalled(Instant::now()) {
            s.shed_stalled.fetch_add(1, Relaxed);
        }
    }

    /// Whether the socket should be read now.
    fn wants_read(&self) -> bool {
        self.reading
            && !self.starved
            && self.hold_until.is_none()
            && self.pending.is_none()
            && !self.dec.has_record()
            && self.held.owed() < self.cfg.max_unsent
    }
}

/// Where a connection is known server-wide: its entry in the registry of connections
/// (for shedding) and its backchannel.
pub(crate) struct Registered {
    pub(crate) entry: Arc<Entry>,
    pub(crate) chan: Arc<Channel>,
}

/// Serves one connection until it closes; says how it ended.
pub(crate) async fn connection(
    sock: TcpStream,
    conn: ConnInfo,
    svc: Arc<dyn Service>,
    cfg: Config,
    shared: Arc<ConnStats>,
    reg: Registered,
    mut shutdown: watch::Receiver<bool>,
) -> End {
    let Registered { entry, chan } = reg;
    debug!("connected");
    let mut sock = sock;
    let epoch = shared.registry.epoch();
    let mut c = Conn {
        sock: &sock,
        conn,
        svc,
        cfg,
        fin: Arc::new(Finished::default()),
        chan,
        why: None,
        dec: RecordDecoder::new(cfg.max_record),
        pending: None,
        out: Outbox::with_batch(MAX_BATCH),
        held: Held {
            shared: &shared,
            charged: 0,
            replies: 0,
            reserved: 0,
        },
        running: 0,
        reading: true,
        decoding: true,
        broken: false,
        starved: false,
        last_active: Instant::now(),
        record_started: None,
        unsent_since: None,
        penalty: limits::Penalty::default(),
        hold_until: None,
    };
    if *shutdown.borrow_and_update() {
        c.stop(CloseReason::Shutdown);
    }
    let mut watch_shutdown = true;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_at = None;
    let end = loop {
        c.collect();
        c.send_callbacks();
        c.start_calls();
        if !c.out.is_empty() {
            let owed = c.held.owed();
            c.flush();
            // Replies written may be what held a received call back (max_unsent): start
            // it now, as nothing else would wake this task for it once the outbox is empty.
            if c.pending.is_some() && c.held.owed() < owed {
                c.start_calls();
            }
        }
        let more = c.decoding
            && c.pending.is_none()
            && !c.starved
            && c.hold_until.is_none()
            && c.running + c.out.len() < cfg.max_in_flight.max(1)
            && c.dec.has_record();
        if more {
            continue;
        }
        let waiting = c.decoding && (c.pending.is_some() || c.dec.has_record());
        if !c.reading && c.running == 0 && c.out.is_empty() && !waiting {
            break End::Closed(c.why.unwrap_or(CloseReason::PeerClosed));
        }
        // A record is arriving while bytes of an incomplete one are buffered: its clock
        // starts when that is first seen (a record completed since restarts it).
        if c.dec.buffered() == 0 || c.dec.has_record() {
            c.record_started = None;
        } else if c.record_started.is_none() {
            c.record_started = Some(Instant::now());
        }
        c.dec.shrink();
        let holding = c.holding();
        c.held.sync(holding);
        let idle = c.running == 0 && c.out.is_empty() && c.pending.is_none() && holding == 0;
        // Stalled: replies waiting unwritten, or a record still arriving, since then.
        let stalled = match (c.unsent_since, c.record_started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.update(epoch, c.last_active, idle, holding, stalled);
        let due = limits::deadline(
            c.last_active,
            c.record_started,
            c.running,
            cfg.idle_timeout,
            cfg.record_timeout,
        );
        // The timer is moved only to an earlier deadline; when it fires early (activity
        // moved the deadline later) it is set again: one timer update per expiry, not per
        // read.
        match (due, timer_at) {
            (None, _) => timer_at = None,
            (Some((at, _)), Some(t)) if at >= t => {}
            (Some((at, _)), _) => {
                timer.as_mut().reset(at);
                timer_at = Some(at);
            }
        }
        // Registered before looking, so a release between the look and the wait wakes us.
        let freed = shared.memory.freed.notified();
        let hold = c.hold_until;
        tokio::select! {
            r = c.sock.readable(), if c.wants_read() => match r {
                Ok(()) => c.read(),
                Err(e) => {
                    debug!(error = %e, "read failed");
                    c.stop(CloseReason::Error);
                }
            },
            r = c.sock.writable(), if !c.out.is_empty() => {
                if let Err(e) = r {
                    c.broke(&e);
                }
            }
            () = c.fin.wake.notified(), if c.running > 0 => {}
            () = c.chan.wake.notified() => {}
            () = freed, if c.starved => c.starved = false,
            () = async { tokio::time::sleep_until(hold.unwrap_or_else(Instant::now)).await },
                if hold.is_some() => c.hold_until = None,
            () = async { tokio::time::sleep(MEMORY_RETRY).await }, if c.starved => {
                c.starved = false;
            }
            () = &mut timer, if timer_at.is_some() => {
                timer_at = None;
                if let Some((_, why)) = due.filter(|d| d.0 <= Instant::now()) {
                    debug!(?why, "closing connection: expired");
                    break End::Expired(why);
                }
            }
            () = entry.close.notified() => {
                debug!("closing connection: shed for a new one");
                break End::Shed;
            }
            r = shutdown.changed(), if c.reading && watch_shutdown => match r {
                Ok(()) => {
                    if *shutdown.borrow_and_update() {
                        c.stop(CloseReason::Shutdown);
                    }
                }
                Err(_) => watch_shutdown = false,
            },
        }
    };
    let broken = c.broken;
    // Whatever waits is dropped with the connection; calls still running on the pool
    // report to a `Finished` no one reads, and their reservations go with `Held`.
    drop(c);
    if !broken && matches!(end, End::Closed(_)) {
        let _ = sock.shutdown().await;
    }
    debug!("closed");
    end
}
