//! Calls the server makes on a connection a client opened, and the replies routed back: the
//! NFSv4.1 backchannel (RFC 8881 section 2.10.3.1), which delegations use for CB_RECALL.
//!
//! Every accepted connection has a channel, registered in the server's [`Channels`]
//! under its [`ConnId`] while the connection is open. A service that sees a call on
//! connection `id` asks [`Channels::backchannel`] for a [`Backchannel`] handle (cloneable,
//! `Send`) and sends calls with [`Backchannel::call`]: the call message is queued for the
//! connection's task, which writes it between replies as one whole record, and the future
//! resolves when the connection's task reads a REPLY record with its xid (any record whose
//! `msg_type` is REPLY is routed here rather than to the service).
//!
//! Bounds: at most [`CallbackConfig::max_outstanding`] calls wait for a reply per
//! connection (v4.1 negotiates back-channel slots; a caller over the bound gets
//! [`CallbackError::Busy`] at once, never a queue); a reply longer than
//! [`CallbackConfig::max_reply`] fails its call with [`CallbackError::TooLarge`] (it was
//! received whole first: the connection's record limit and memory budget bound that).
//! Every call leaves the table exactly once: matched by its reply, timed out, its future
//! dropped, or failed when the connection closes ([`CallbackError::Closed`]); the
//! [`CallbackStats::outstanding`] gauge counts what is left.
use super::{CloseReason, ConnId};
use crate::xid::{Answer, CallTable, Output, RetryMode, RetryPolicy, RpcError, Xid};
use parking_lot::Mutex;
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_xdr::{Reader, Writer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// Limits of the calls sent on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackConfig {
    /// Calls waiting for their reply at once, per connection. Default 16 (the Linux
    /// client offers a handful of back-channel slots; the session sizes this in practice).
    pub max_outstanding: usize,
    /// Largest reply accepted, in bytes. Default 64 KiB: callback replies are small
    /// (CB_SEQUENCE, CB_RECALL, CB_GETATTR answers).
    pub max_reply: usize,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            max_outstanding: 16,
            max_reply: 64 * 1024,
        }
    }
}

/// Why a call on a client's connection did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The connection closed (before the call was sent, or while it waited).
    #[error("connection closed ({0:?})")]
    Closed(CloseReason),
    /// No reply within the time the caller gave.
    #[error("no reply in time")]
    TimedOut,
    /// The reply was longer than [`CallbackConfig::max_reply`] (the peer's fault).
    #[error("reply of {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A reply with this call's xid whose header could not be decoded (the peer's fault).
    #[error("malformed reply")]
    Malformed,
    /// The peer answered but did not run the call (RFC 5531 section 9: program
    /// unavailable, authentication error, ...).
    #[error("call denied: {0:?}")]
    Denied(ReplyStatus),
    /// [`CallbackConfig::max_outstanding`] calls already wait on this connection (our
    /// caller's to handle: try later or another connection).
    #[error("{limit} calls already outstanding on the connection")]
    Busy {
        /// The bound.
        limit: usize,
    },
}

/// A reply to a call on a client's connection: the message and where the results start
/// ([`Answer::body`]).
pub type CallbackReply = Answer<Vec<u8>>;

/// One call to send: program, version, procedure, credential (AUTH_NONE or AUTH_SYS as
/// the session's callback security says) and the encoded arguments.
#[derive(Debug, Clone, Copy)]
pub struct CallbackCall<'a> {
    /// Program number (for NFSv4.1: the `cb_program` of CREATE_SESSION).
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// Credential.
    pub cred: &'a OpaqueAuth,
    /// Encoded arguments.
    pub args: &'a [u8],
}

/// Counters of the calls sent on clients' connections, over every connection sharing a
/// [`super::ConnStats`].
#[derive(Debug, Default)]
pub struct CallbackStats {
    /// Calls queued for sending.
    pub sent: AtomicU64,
    /// Calls answered by a reply (including denials).
    pub replied: AtomicU64,
    /// Calls that got no reply in time.
    pub timed_out: AtomicU64,
    /// Calls failed because their connection closed.
    pub closed: AtomicU64,
    /// Calls refused at the per-connection bound.
    pub busy: AtomicU64,
    /// Replies refused as too large.
    pub too_large: AtomicU64,
    /// Replies whose header could not be decoded.
    pub malformed: AtomicU64,
    /// Replies dropped because no call waited for their xid (unknown, late or duplicate).
    pub unknown_replies: AtomicU64,
    /// Calls waiting for their reply now.
    pub outstanding: AtomicU64,
}

type Waiter = oneshot::Sender<Result<CallbackReply, CallbackError>>;

/// What a connection's callbacks share between the callers and the connection's task.
struct State {
    table: CallTable<Waiter, (), Vec<u8>>,
    /// Call messages (without record mark) for the connection's task to write.
    queue: Vec<Vec<u8>>,
    closed: Option<CloseReason>,
}

/// One connection's backchannel: created when the connection is accepted, closed when it
/// ends.
pub(crate) struct Channel {
    id: ConnId,
    cfg: CallbackConfig,
    state: Mutex<State>,
    /// Wakes the connection's task: calls to write.
    pub(crate) wake: Notify,
    /// Turns to the reason once the connection has closed.
    closed: watch::Sender<Option<CloseReason>>,
    stats: Arc<CallbackStats>,
    /// The runtime of the connection's task, which waits for the replies of
    /// [`Backchannel::send`]: callers need not know it (`None` outside a runtime).
    rt: Option<tokio::runtime::Handle>,
}

impl Channel {
    fn new(id: ConnId, cfg: CallbackConfig, stats: Arc<CallbackStats>) -> Self {
        // Never ticked: a call's time limit is its caller's (the future times out and
        // cancels it), and a call is never sent twice on a connection.
        let policy = RetryPolicy {
            timeout: Duration::from_secs(u32::MAX.into()),
            max_timeout: Duration::from_secs(u32::MAX.into()),
            mode: RetryMode::Soft { tries: 1 },
        };
        let mut table = CallTable::new(policy, first_xid(id));
        table.on_connect();
        Self {
            id,
            cfg,
            state: Mutex::new(State {
                table,
                queue: Vec::new(),
                closed: None,
            }),
            wake: Notify::new(),
            closed: watch::channel(None).0,
            stats,
            rt: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The call messages waiting to be written (the connection's task takes them).
    pub(crate) fn take_queued(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state.lock().queue)
    }

    /// A REPLY record arrived on the connection: wakes the call it answers, or drops and
    /// counts it.
    pub(crate) fn on_reply(&self, msg: Vec<u8>) {
        let xid = Xid(msg
            .get(..4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        let mut st = self.state.lock();
        let fail = if msg.len() > self.cfg.max_reply {
            self.stats.too_large.fetch_add(1, Relaxed);
            Some(CallbackError::TooLarge {
                len: msg.len(),
                limit: self.cfg.max_reply,
            })
        } else if ReplyHeader::decode(&mut Reader::new(&msg)).is_err() {
            self.stats.malformed.fetch_add(1, Relaxed);
            Some(CallbackError::Malformed)
        } else {
            None
        };
        if let Some(e) = fail {
            if let Some(w) = st.table.cancel(xid) {
                self.stats.outstanding.fetch_sub(1, Relaxed);
                let _ = w.send(Err(e));
            }
            return;
        }
        let (w, r) = match st.table.on_record(msg) {
            Some(Output::Complete(w, r)) => (w, r),
            Some(Output::Send(())) | None => {
                self.stats.unknown_replies.fetch_add(1, Relaxed);
                return;
            }
        };
        drop(st);
        self.stats.outstanding.fetch_sub(1, Relaxed);
        self.stats.replied.fetch_add(1, Relaxed);
        let r = r.map_err(|e| match e {
            RpcError::Rejected(s) => CallbackError::Denied(s),
            _ => CallbackError::Malformed,
        });
        let _ = w.send(r);
    }

    /// The connection ended: every call waiting fails, nothing more can be sent.
    fn close(&self, why: CloseReason) {
        let waiters = {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(why);
            st.queue.clear();
            st.table.drain()
        };
        let n = u64::try_from(waiters.len()).unwrap_or(u64::MAX);
        self.stats.outstanding.fetch_sub(n, Relaxed);
        self.stats.closed.fetch_add(n, Relaxed);
        for w in waiters {
            let _ = w.send(Err(CallbackError::Closed(why)));
        }
        self.closed.send_replace(Some(why));
    }

    /// Queues `call` for the connection's task and enters it in the table: its xid and
    /// where its reply will come. Fails at once on a closed connection or at the bound.
    #[allow(clippy::type_complexity)]
    fn start(
        &self,
        call: &CallbackCall<'_>,
    ) -> Result<(Xid, oneshot::Receiver<Result<CallbackReply, CallbackError>>), CallbackError> {
        let (tx, rx) = oneshot::channel();
        let xid = {
            let mut st = self.state.lock();
            if let Some(why) = st.closed {
                return Err(CallbackError::Closed(why));
            }
            let limit = self.cfg.max_outstanding.max(1);
            if st.table.len() >= limit {
                self.stats.busy.fetch_add(1, Relaxed);
                return Err(CallbackError::Busy { limit });
            }
            let now = std::time::Instant::now();
            let (xid, _) = st.table.start(now, tx, |_| ());
            st.queue.push(encode_call(xid, call));
            xid
        };
        self.stats.sent.fetch_add(1, Relaxed);
        self.stats.outstanding.fetch_add(1, Relaxed);
        self.wake.notify_one();
        Ok((xid, rx))
    }

    /// Takes a call out of the table (its caller gave up); true if it was still there.
    fn cancel(&self, xid: Xid) -> bool {
        let gone = self.state.lock().table.cancel(xid).is_some();
        if gone {
            self.stats.outstanding.fetch_sub(1, Relaxed);
        }
        gone
    }
}

/// The first xid of a connection's calls: differs between connections (a client's reply
/// cache may be keyed by xid), deterministic for tests.
fn first_xid(id: ConnId) -> u32 {
    // The low and high halves of the id, spread over the xid space.
    let x = id.0 ^ (id.0 >> 32);
    (x as u32).wrapping_mul(0x9e37_79b9)
}

/// Sends calls on one client's connection; see the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Backchannel {
    chan: Arc<Channel>,
}

impl std::fmt::Debug for Backchannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backchannel")
            .field("conn", &self.chan.id)
            .finish()
    }
}

/// Takes a call out of the table when its future ends without a reply (timed out or
/// dropped), so a caller that goes away leaves nothing behind.
struct Outstanding<'a> {
    chan: &'a Channel,
    xid: Xid,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.chan.cancel(self.xid);
    }
}

impl Backchannel {
    /// The connection this handle sends on.
    pub fn conn(&self) -> ConnId {
        self.chan.id
    }

    /// Why the connection closed, if it has.
    pub fn closed_reason(&self) -> Option<CloseReason> {
        *self.chan.closed.borrow()
    }

    /// Resolves when the connection closes, with the reason (at once if it has).
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.chan.closed.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                // The channel is gone with its connection: as good as closed.
                return CloseReason::Error;
            }
        }
    }

    /// Sends `call` on the connection and waits up to `timeout` for its reply. Fails at
    /// once with [`CallbackError::Busy`] at the per-connection bound and with
    /// [`CallbackError::Closed`] on a closed connection. Dropping the future cancels the
    /// call (a late reply is then dropped and counted as unknown).
    pub async fn call(
        &self,
        call: CallbackCall<'_>,
        timeout: Duration,
    ) -> Result<CallbackReply, CallbackError> {
        let (xid, rx) = self.chan.start(&call)?;
        self.finish(xid, rx, timeout).await
    }

    /// Waits up to `timeout` for the reply of the call `xid` started with
    /// [`Channel::start`]; the call leaves the table however this ends.
    async fn finish(
        &self,
        xid: Xid,
        mut rx: oneshot::Receiver<Result<CallbackReply, CallbackError>>,
        timeout: Duration,
    ) -> Result<CallbackReply, CallbackError> {
        let chan = &*self.chan;
        // Dropped with this future however it ends: a call answered is no longer in the
        // table, so only a call given up (timed out, or the future dropped) is taken out.
        let guard = Outstanding { chan, xid };
        let r = tokio::time::timeout(timeout, &mut rx).await;
        match r {
            Ok(Ok(r)) => r,
            // The waiter is dropped only with the table, after the close completed it.
            Ok(Err(_)) => Err(CallbackError::Closed(CloseReason::Error)),
            Err(_) => {
                drop(guard);
                // The reply may have come in between the timer and the cancel.
                match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => {
                        chan.stats.timed_out.fetch_add(1, Relaxed);
                        Err(CallbackError::TimedOut)
                    }
                }
            }
        }
    }
}

/// A function told how a call sent with [`Backchannel::send`] ended.
pub type Completion = Box<dyn FnOnce(Result<CallbackReply, CallbackError>) + Send>;

/// Runs its completion exactly once: with the call's result, or, if the task waiting for
/// the reply never ran or was dropped (its runtime shut down), with a closed connection.
struct Once(Option<Completion>);

impl Once {
    fn run(mut self, r: Result<CallbackReply, CallbackError>) {
        if let Some(f) = self.0.take() {
            f(r);
        }
    }
}

impl Drop for Once {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(CallbackError::Closed(CloseReason::Error)));
        }
    }
}

impl Backchannel {
    /// Sends `call` and runs `done` once with its reply or why there is none (as
    /// [`Backchannel::call`]), on the connection's runtime: for callers that hand work
    /// over without an executor of their own (the protocol layers). `done` runs on a
    /// runtime worker, or at once on this thread when the call cannot be sent (busy,
    /// closed, no runtime): it must be quick and must not block.
    pub fn send(
        &self,
        call: CallbackCall<'_>,
        timeout: Duration,
        done: impl FnOnce(Result<CallbackReply, CallbackError>) + Send + 'static,
    ) {
        let done = Once(Some(Box::new(done)));
        let Some(rt) = self.chan.rt.clone() else {
            done.run(Err(CallbackError::Closed(CloseReason::Error)));
            return;
        };
        match self.chan.start(&call) {
            Err(e) => done.run(Err(e)),
            Ok((xid, rx)) => {
                let me = self.clone();
                rt.spawn(async move {
                    let r = me.finish(xid, rx, timeout).await;
                    done.run(r);
                });
            }
        }
    }
}

/// A call message: the RPC header (RFC 5531 section 9) and the arguments.
fn encode_call(xid: Xid, call: &CallbackCall<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(call.args.len() + 64 + call.cred.body.0.len());
    CallHeader {
        xid: xid.0,
        rpcvers: 2,
        prog: call.prog,
        vers: call.vers,
        proc_: call.proc_,
        cred: call.cred.clone(),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    w.raw(call.args);
    w.into_inner()
}

/// Whether a record is an RPC reply (its `msg_type`, the second word, is REPLY = 1).
pub(crate) fn is_reply(msg: &[u8]) -> bool {
    msg.get(4..8) == Some(&[0, 0, 0, 1])
}

/// A function told of every connection that closes.
type CloseHook = Arc<dyn Fn(ConnId, CloseReason) + Send + Sync>;

/// The open connections' backchannels and who wants to hear of closes, shared by every
/// connection of the listeners serving with one [`super::ConnStats`].
#[derive(Default)]
pub struct Channels {
    open: Mutex<HashMap<ConnId, Arc<Channel>>>,
    hooks: Mutex<Vec<CloseHook>>,
    /// Counters of the calls sent.
    pub stats: Arc<CallbackStats>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("open", &self.open.lock().len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Channels {
    /// A handle to send calls on connection `id`; `None` once it has closed (or if it
    /// never was).
    pub fn backchannel(&self, id: ConnId) -> Option<Backchannel> {
        let chan = self.open.lock().get(&id)?.clone();
        Some(Backchannel { chan })
    }

    /// The runtime connection `id`'s task runs on, while it is open.
    pub(crate) fn runtime_of(&self, id: ConnId) -> Option<tokio::runtime::Handle> {
        self.open.lock().get(&id)?.rt.clone()
    }

    /// Runs `hook` with the id and the reason of every connection that closes from now on
    /// (so sessions unbind it and mark a backchannel down). It runs on the closing
    /// connection's task after its pending calls have failed: it must be quick and never
    /// block.
    pub fn on_close(&self, hook: impl Fn(ConnId, CloseReason) + Send + Sync + 'static) {
        self.hooks.lock().push(Arc::new(hook));
    }

    /// Connections open now with a backchannel (every accepted one).
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a new connection's channel; the guard closes it (with the reason set, or
    /// [`CloseReason::Error`] if the connection's task ended otherwise, e.g. by a panic).
    pub(crate) fn open(self: &Arc<Self>, id: ConnId, cfg: CallbackConfig) -> OpenChannel {
        let chan = Arc::new(Channel::new(id, cfg, self.stats.clone()));
        self.open.lock().insert(id, chan.clone());
        OpenChannel {
            channels: self.clone(),
            chan,
            why: CloseReason::Error,
        }
    }
}

/// A connection's channel while the connection is open; closes it when dropped.
pub(crate) struct OpenChannel {
    channels: Arc<Channels>,
    pub(crate) chan: Arc<Channel>,
    /// The reason given to the close.
    pub(crate) why: CloseReason,
}

impl Drop for OpenChannel {
    fn drop(&mut self) {
        self.channels.open.lock().remove(&self.chan.id);
        self.chan.close(self.why);
        let hooks = self.channels.hooks.lock().clone();
        for h in hooks {
            h(self.chan.id, self.why);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reply(xid: u32, status: ReplyStatus, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        ReplyHeader::with_status(xid, status).encode(&mut w);
        w.raw(body);
        w.into_inner()
    }

    fn xid_of(msg: &[u8]) -> u32 {
        u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]])
    }

    #[test]
    fn replies_and_calls_are_told_apart_by_msg_type() {
        assert!(is_reply(&reply(7, ReplyStatus::Success, &[])));
        let call = encode_call(
            Xid(7),
            &CallbackCall {
                prog: 0x4000_0000,
                vers: 1,
                proc_: 0,
                cred: &OpaqueAuth::none(),
                args: &[],
            },
        );
        assert!(!is_reply(&call));
        assert!(!is_reply(&[0, 0, 0, 1]));
    }

    #[tokio::test]
    async fn a_call_is_answered_denied_or_failed_and_never_left_behind() {
        let channels = Arc::new(Channels::default());
        let id = ConnId::next();
        let open = channels.open(id, CallbackConfig::default());
        let bc = channels.backchannel(id).unwrap();
        let cred = OpaqueAuth::none();
        let call = CallbackCall {
            prog: 0x4000_0000,
            vers: 1,
            proc_: 1,
            cred: &cred,
            args: &[0, 0, 0, 9],
        };
        let chan = open.chan.clone();
        // Answered.
        let c = bc.clone();
        let t = tokio::spawn(async move { c.call(call_owned(), Duration::from_secs(60)).await });
        let msg = wait_queued(&chan).await;
        chan.on_reply(reply(xid_of(&msg), ReplyStatus::Success, &[1, 2, 3, 4]));
        assert_eq!(t.await.unwrap().unwrap().body(), &[1, 2, 3, 4]);
        // Denied.
        let c = bc.clone();
        let t = tokio::spawn(async move { c.call(call_owned(), Duration::from_secs(60)).await });
        let msg = wait_queued(&chan).await;
        chan.on_reply(reply(xid_of(&msg), ReplyStatus::ProgUnavail, &[]));
        assert_eq!(
            t.await.unwrap().unwrap_err(),
            CallbackError::Denied(ReplyStatus::ProgUnavail)
        );
        // Timed out; its late reply is dropped and counted.
        let e = bc.call(call, Duration::from_millis(1)).await.unwrap_err();
        assert_eq!(e, CallbackError::TimedOut);
        let msg = chan.take_queued().pop().unwrap();
        chan.on_reply(reply(xid_of(&msg), ReplyStatus::Success, &[]));
        // Dropped by its caller.
        let c = bc.clone();
        let t = tokio::spawn(async move { c.call(call_owned(), Duration::from_secs(60)).await });
        wait_queued(&chan).await;
        t.abort();
        let _ = t.await;
        let s = &channels.stats;
        assert_eq!(s.outstanding.load(Relaxed), 0, "nothing left behind");
        assert_eq!(s.sent.load(Relaxed), 4);
        assert_eq!(s.replied.load(Relaxed), 2);
        assert_eq!(s.timed_out.load(Relaxed), 1);
        assert_eq!(s.unknown_replies.load(Relaxed), 1);
        // Closed: a close notice, and no handle any more.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        channels.on_close(move |id, why| s2.lock().push((id, why)));
        let mut open = open;
        open.why = CloseReason::PeerClosed;
        drop(open);
        assert_eq!(*seen.lock(), vec![(id, CloseReason::PeerClosed)]);
        assert!(channels.backchannel(id).is_none());
        assert_eq!(bc.closed().await, CloseReason::PeerClosed);
        assert_eq!(
            bc.call(call, Duration::from_secs(1)).await.unwrap_err(),
            CallbackError::Closed(CloseReason::PeerClosed)
        );
    }

    #[tokio::test]
    async fn send_runs_its_completion_once_however_the_call_ends() {
        let channels = Arc::new(Channels::default());
        let id = ConnId::next();
        let open = channels.open(id, CallbackConfig::default());
        let bc = channels.backchannel(id).unwrap();
        let chan = open.chan.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Answered: the completion gets the reply, from a task it did not have to spawn.
        let t = tx.clone();
        bc.send(call_owned(), Duration::from_secs(60), move |r| {
            let _ = t.send(r.map(|a| a.body().to_vec()));
        });
        let msg = wait_queued(&chan).await;
        chan.on_reply(reply(xid_of(&msg), ReplyStatus::Success, &[5, 6, 7, 8]));
        assert_eq!(rx.recv().await.unwrap(), Ok(vec![5, 6, 7, 8]));
        // No reply in time.
        let t = tx.clone();
        bc.send(call_owned(), Duration::from_millis(1), move |r| {
            let _ = t.send(r.map(|a| a.body().to_vec()));
        });
        assert_eq!(rx.recv().await.unwrap(), Err(CallbackError::TimedOut));
        chan.take_queued();
        // At the bound: refused at once, on the caller's thread.
        let tight = Arc::new(Channels::default());
        let id2 = ConnId::next();
        let open2 = tight.open(
            id2,
            CallbackConfig {
                max_outstanding: 1,
                ..CallbackConfig::default()
            },
        );
        let bc2 = tight.backchannel(id2).unwrap();
        let t = tx.clone();
        bc2.send(call_owned(), Duration::from_secs(60), move |r| {
            let _ = t.send(r.map(|a| a.body().to_vec()));
        });
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        bc2.send(call_owned(), Duration::from_secs(60), move |r| {
            *s2.lock() = Some(r.map(|a| a.body().to_vec()));
        });
        assert_eq!(
            seen.lock().take(),
            Some(Err(CallbackError::Busy { limit: 1 })),
            "refused before send returned"
        );
        // The connection closes under the waiting call.
        let mut open2 = open2;
        open2.why = CloseReason::PeerClosed;
        drop(open2);
        assert_eq!(
            rx.recv().await.unwrap(),
            Err(CallbackError::Closed(CloseReason::PeerClosed))
        );
        assert_eq!(tight.stats.outstanding.load(Relaxed), 0);
        assert_eq!(channels.stats.outstanding.load(Relaxed), 0);
        drop(open);
    }

    fn call_owned() -> CallbackCall<'static> {
        static CRED: std::sync::OnceLock<OpaqueAuth> = std::sync::OnceLock::new();
        CallbackCall {
            prog: 0x4000_0000,
            vers: 1,
            proc_: 1,
            cred: CRED.get_or_init(OpaqueAuth::none),
            args: &[],
        }
    }

    /// The next call message queued on `chan`.
    async fn wait_queued(chan: &Channel) -> Vec<u8> {
        loop {
            if let Some(m) = chan.take_queued().pop() {
                return m;
            }
            chan.wake.notified().await;
        }
    }
}
