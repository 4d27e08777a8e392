//! The table of RPC calls in flight, keyed by xid: sans-IO, shared by the client (its
//! calls to a server) and the server (its callbacks on a client's connection, the NFSv4.1
//! backchannel, see [`crate::transport::backchannel`]).
//!
//! It takes events (a call to start, a record received, a tick of the clock, a connection
//! made or lost) together with the current time, and says what to send and which callers to
//! wake. It never reads the clock or touches a socket, so timeouts, retransmissions,
//! reconnects and hostile replies are tested deterministically (seed entry 19: the table
//! stays consistent under timeouts, retransmissions, duplicate, late and unknown replies).
//! What a call's record is (`R`: its bytes, shared or not) and what a received record is
//! (`B`: a buffer of the driver's choosing) are the driver's business; the table only reads
//! the reply header from `B` and hands both back.
//!
//! Invariants, checked by the tests below:
//! - a call is in the table from `start` until exactly one of: its reply matched, it timed
//!   out (soft mode), it was cancelled, or the table was shut down; its waiter is returned
//!   exactly once;
//! - a reply whose xid is not in the table changes nothing (it is counted as a duplicate
//!   if the xid completed recently, otherwise as unknown);
//! - a retransmission (after a timeout or a reconnect) sends the same bytes, same xid;
//! - a try ends when its timer expires or when the connection it was sent on is lost
//!   (closed or reset by the peer, or its record stream broken): either way it counts, so a
//!   soft call fails after its tries whatever the connection does, and its timer runs
//!   across reconnects (as the Linux client's major timeout does);
//! - after a failed connection attempt or a lost connection the next attempt waits a delay
//!   that doubles up to a cap and shrinks back only once a connection has delivered a
//!   reply ([`Backoff`]), so a server that accepts and closes is never reconnected to in a
//!   hot loop, not even by a hard mount.
use rnfs_proto::rpc::{ReplyHeader, ReplyStatus};
use rnfs_xdr::Reader;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Deref;
use std::time::{Duration, Instant};

/// Why an RPC call did not produce results. Cloneable: one write-back failure is reported
/// to every handle whose cursor predates it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Soft mode: no reply after the configured number of tries.
    #[error("no reply after {tries} tries")]
    TimedOut {
        /// Transmissions made.
        tries: u32,
    },
    /// The server answered but did not execute the call (RFC 5531 section 9).
    #[error("call rejected by the server: {0:?}")]
    Rejected(ReplyStatus),
    /// The server executed the call but its results could not be decoded (peer's fault).
    #[error("undecodable results: {0}")]
    Decode(rnfs_xdr::Error),
    /// The server could not be reached (soft mode, after the configured tries).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Address tried.
        addr: std::net::SocketAddr,
        /// What the system said.
        reason: String,
    },
    /// The client was shut down while the call was waiting.
    #[error("RPC client shut down")]
    Shutdown,
}

/// A transaction id (RFC 5531 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid(pub u32);

/// When to give up on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Retransmit until answered (NFS `hard`).
    Hard,
    /// Fail with [`RpcError::TimedOut`] after this many tries (NFS `soft,retrans`); a try
    /// ends when its timer expires or when the connection it was sent on is lost.
    Soft {
        /// Tries before failing (at least 1).
        tries: u32,
    },
}

/// Timeouts and retransmission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Time to wait for a reply before the first retransmission (NFS `timeo`).
    pub timeout: Duration,
    /// Upper bound for the doubling timeout.
    pub max_timeout: Duration,
    /// Hard or soft.
    pub mode: RetryMode,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            mode: RetryMode::Hard,
        }
    }
}

/// Counters of the table (a snapshot; cheap to copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Calls started.
    pub calls: u64,
    /// Calls completed by a matching reply.
    pub replies: u64,
    /// Retransmissions after a timeout.
    pub retransmits: u64,
    /// Calls sent again because the connection was re-established.
    pub replays: u64,
    /// Replies for a call that had already completed.
    pub duplicate_replies: u64,
    /// Replies whose xid was never (or not recently) in the table.
    pub unknown_replies: u64,
    /// Records that are not a decodable reply header.
    pub malformed_replies: u64,
    /// Calls failed after exhausting their tries (soft mode).
    pub timeouts: u64,
    /// Tries ended by the loss of the connection they were sent on.
    pub lost_tries: u64,
    /// Calls cancelled by their caller.
    pub cancelled: u64,
    /// Calls in the table now.
    pub live: u64,
}

/// A reply that matched its call: the record received and where the procedure's results
/// start in it.
#[derive(Debug)]
pub struct Answer<B> {
    /// The whole reply message.
    pub record: B,
    /// Offset of the results in `record` (just past the reply header).
    pub body: usize,
}

impl<B: Deref<Target = [u8]>> Answer<B> {
    /// The encoded results.
    pub fn body(&self) -> &[u8] {
        self.record.get(self.body..).unwrap_or_default()
    }
}

/// What the driver must do after an event.
#[derive(Debug)]
pub enum Output<W, R, B> {
    /// Send this record on the current connection.
    Send(R),
    /// Wake this caller with this outcome: the reply, or an error.
    Complete(W, Result<Answer<B>, RpcError>),
}

#[derive(Debug)]
struct Pending<W, R> {
    record: R,
    waiter: W,
    deadline: Instant,
    timeout: Duration,
    tries: u32,
    sent: bool,
}

/// The delay before the next connection attempt: it doubles from `min` up to `max` after
/// each failed attempt or lost connection, and goes back to `min` only when a connection
/// has delivered a reply to a call, not merely connected (a server that accepts and
/// closes, or breaks every reply, is otherwise reconnected to as fast as it can accept).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `min` to `max` (`max` is raised to `min` if below it).
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// A connection attempt failed, or the connection was lost, at `now`: when to try next.
    pub fn failed(&mut self, now: Instant) -> Instant {
        let at = now + self.next;
        self.next = (self.next * 2).min(self.max);
        at
    }

    /// A connection delivered a reply to a call: the server works, the next loss of a
    /// connection is retried quickly again.
    pub fn delivered(&mut self) {
        self.next = self.min;
    }
}

/// How many completed xids are remembered to tell duplicates from unknown replies.
const RECENT: usize = 1024;

/// The table of calls in flight: `W` wakes a caller, `R` is a call's record as sent, `B`
/// a record as received.
#[derive(Debug)]
pub struct CallTable<W, R, B> {
    policy: RetryPolicy,
    next_xid: u32,
    pending: HashMap<Xid, Pending<W, R>>,
    recent: VecDeque<Xid>,
    recent_set: HashSet<Xid>,
    connected: bool,
    stats: TableStats,
    _received: std::marker::PhantomData<fn(B)>,
}

impl<W, R: Clone, B: Deref<Target = [u8]>> CallTable<W, R, B> {
    /// An empty table. `first_xid` should differ between client instances (the server's
    /// duplicate request cache is keyed by xid), e.g. derived from the time and pid.
    pub fn new(policy: RetryPolicy, first_xid: u32) -> Self {
        Self {
            policy,
            next_xid: first_xid,
            pending: HashMap::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            connected: false,
            stats: TableStats::default(),
            _received: std::marker::PhantomData,
        }
    }

    /// Counters, with `live` filled in.
    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.pending.len() as u64,
            ..self.stats
        }
    }

    /// Calls waiting for a reply.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the driver currently has a connection.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The earliest time at which [`CallTable::on_tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    fn alloc_xid(&mut self) -> Xid {
        loop {
            self.next_xid = self.next_xid.wrapping_add(1);
            let x = Xid(self.next_xid);
            if !self.pending.contains_key(&x) {
                return x;
            }
        }
    }

    /// Starts a call: assigns an xid, has `encode` make the call's record with it, and
    /// returns the record to send now (`None` when not connected; it is sent by
    /// [`CallTable::on_connect`]).
    pub fn start(
        &mut self,
        now: Instant,
        waiter: W,
        encode: impl FnOnce(Xid) -> R,
    ) -> (Xid, Option<R>) {
        let xid = self.alloc_xid();
        let record = encode(xid);
        self.stats.calls += 1;
        let send = self.connected.then(|| record.clone());
        self.pending.insert(
            xid,
            Pending {
                record,
                waiter,
                deadline: now + self.policy.timeout,
                timeout: self.policy.timeout,
                tries: 1,
                sent: send.is_some(),
            },
        );
        (xid, send)
    }

    fn remember(&mut self, xid: Xid) {
        if self.recent_set.insert(xid) {
            self.recent.push_back(xid);
            if self.recent.len() > RECENT {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    /// A record arrived. Returns the caller to wake, if the record answers a call in the
    /// table; anything else (garbage, a duplicate, an unknown xid) leaves the table as is.
    pub fn on_record(&mut self, record: B) -> Option<Output<W, R, B>> {
        let mut r = Reader::new(&record);
        let h = match ReplyHeader::decode(&mut r) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed_replies += 1;
                return None;
            }
        };
        let xid = Xid(h.xid);
        let Some(p) = self.pending.remove(&xid) else {
            if self.recent_set.contains(&xid) {
                self.stats.duplicate_replies += 1;
            } else {
                self.stats.unknown_replies += 1;
            }
            return None;
        };
        self.remember(xid);
        self.stats.replies += 1;
        let body = r.position();
        let result = match h.status {
            ReplyStatus::Success => Ok(Answer { record, body }),
            s => Err(RpcError::Rejected(s)),
        };
        Some(Output::Complete(p.waiter, result))
    }

    /// The clock advanced to `now`: retransmits calls whose timeout passed (same xid, same
    /// bytes, doubled timeout) and, in soft mode, fails those out of tries.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Output<W, R, B>> {
        let mut out = Vec::new();
        let due: Vec<Xid> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(x, _)| *x)
            .collect();
        for xid in due {
            let exhausted = match (self.policy.mode, self.pending.get(&xid)) {
                (RetryMode::Soft { tries }, Some(p)) => p.tries >= tries.max(1),
                _ => false,
            };
            if exhausted {
                if let Some(p) = self.pending.remove(&xid) {
                    self.remember(xid);
                    self.stats.timeouts += 1;
                    out.push(Output::Complete(
                        p.waiter,
                        Err(RpcError::TimedOut { tries: p.tries }),
                    ));
                }
                continue;
            }
            let max = self.policy.max_timeout;
            if let Some(p) = self.pending.get_mut(&xid) {
                p.tries += 1;
                p.timeout = (p.timeout * 2).min(max);
                p.deadline = now + p.timeout;
                if self.connected {
                    self.stats.retransmits += 1;
                    out.push(Output::Send(p.record.clone()));
                }
            }
        }
        out
    }

    /// A connection was established: every call not yet answered is sent (again), oldest
    /// xid first. Timers go on as they were: a call's time runs across reconnects.
    pub fn on_connect(&mut self) -> Vec<Output<W, R, B>> {
        self.connected = true;
        let last = self.next_xid;
        let mut xs: Vec<(&Xid, &mut Pending<W, R>)> = self.pending.iter_mut().collect();
        // Oldest first: the largest distance back from the last xid allocated.
        xs.sort_by_key(|(x, _)| std::cmp::Reverse(last.wrapping_sub(x.0)));
        let mut out = Vec::with_capacity(xs.len());
        for (_, p) in xs {
            if p.sent {
                self.stats.replays += 1;
            }
            p.sent = true;
            out.push(Output::Send(p.record.clone()));
        }
        out
    }

    /// The connection was lost (closed or reset by the peer, or its record stream broken;
    /// we never close one with calls in flight). Every call in the table was sent on it,
    /// and that try has failed: it counts as one, as a timeout does. In soft mode a call
    /// out of tries fails with [`RpcError::TimedOut`]; the others stay in the table, to be
    /// replayed at the next connection, and the timer of their next try starts now (it
    /// runs while there is no connection, so a server that cannot be reached again fails
    /// soft calls in time too).
    pub fn on_disconnect(&mut self, now: Instant) -> Vec<Output<W, R, B>> {
        if !std::mem::replace(&mut self.connected, false) {
            return Vec::new();
        }
        let budget = match self.policy.mode {
            RetryMode::Soft { tries } => tries.max(1),
            RetryMode::Hard => u32::MAX,
        };
        let mut out = Vec::new();
        let xs: Vec<Xid> = self.pending.keys().copied().collect();
        for xid in xs {
            self.stats.lost_tries += 1;
            let spent = match self.pending.get_mut(&xid) {
                Some(p) if p.tries >= budget => true,
                Some(p) => {
                    p.tries = p.tries.saturating_add(1);
                    p.deadline = now + p.timeout;
                    false
                }
                None => false,
            };
            if spent {
                if let Some(p) = self.pending.remove(&xid) {
                    self.remember(xid);
                    self.stats.timeouts += 1;
                    out.push(Output::Complete(
                        p.waiter,
                        Err(RpcError::TimedOut { tries: p.tries }),
                    ));
                }
            }
        }
        out
    }

    /// A connection attempt failed. In soft mode this counts as one try of every waiting
    /// call, so that an unreachable server fails calls instead of hanging them.
    pub fn on_connect_failed(
        &mut self,
        addr: std::net::SocketAddr,
        reason: &str,
    ) -> Vec<Output<W, R, B>> {
        let RetryMode::Soft { tries } = self.policy.mode else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let xs: Vec<Xid> = self.pending.keys().copied().collect();
        for xid in xs {
            let done = match self.pending.get_mut(&xid) {
                Some(p) => {
                    p.tries += 1;
                    p.tries > tries.max(1)
                }
                None => false,
            };
            if done {
                if let Some(p) = self.pending.remove(&xid) {
                    self.remember(xid);
                    self.stats.timeouts += 1;
                    out.push(Output::Complete(
                        p.waiter,
                        Err(RpcError::Connect {
                            addr,
                            reason: reason.to_string(),
                        }),
                    ));
                }
            }
        }
        out
    }

    /// Removes calls whose caller has gone away (`gone` says so for a waiter).
    pub fn reap(&mut self, mut gone: impl FnMut(&W) -> bool) {
        let before = self.pending.len();
        self.pending.retain(|_, p| !gone(&p.waiter));
        self.stats.cancelled += (before - self.pending.len()) as u64;
    }

    /// Removes one call; returns its waiter if it was still in the table.
    pub fn cancel(&mut self, xid: Xid) -> Option<W> {
        let p = self.pending.remove(&xid)?;
        self.remember(xid);
        self.stats.cancelled += 1;
        Some(p.waiter)
    }

    /// Empties the table, handing back every caller, for a driver that fails them with an
    /// error of its own (the connection a callback was sent on closed).
    pub fn drain(&mut self) -> Vec<W> {
        let xs: Vec<Xid> = self.pending.keys().copied().collect();
        let mut out = Vec::with_capacity(xs.len());
        for xid in xs {
            if let Some(p) = self.pending.remove(&xid) {
                self.remember(xid);
                out.push(p.waiter);
            }
        }
        out
    }

    /// Empties the table, failing every call with [`RpcError::Shutdown`].
    pub fn shutdown(&mut self) -> Vec<Output<W, R, B>> {
        self.pending
            .drain()
            .map(|(_, p)| Output::Complete(p.waiter, Err(RpcError::Shutdown)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rnfs_xdr::Writer;

    fn reply(xid: u32, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        ReplyHeader::success(xid).encode(&mut w);
        w.raw(body);
        w.into_inner()
    }

    /// Records received are plain vectors here; the client's are pooled buffers.
    fn rb(v: Vec<u8>) -> Vec<u8> {
        v
    }

    /// A record to send: here just its xid (the client's records are tested in its crate).
    fn spec(x: Xid) -> Vec<u8> {
        x.0.to_be_bytes().to_vec()
    }

    fn xid_of(record: &[u8]) -> u32 {
        u32::from_be_bytes([record[0], record[1], record[2], record[3]])
    }

    type Table<W> = CallTable<W, Vec<u8>, Vec<u8>>;

    fn soft(tries: u32) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(4),
            mode: RetryMode::Soft { tries },
        }
    }

    #[test]
    fn replies_match_by_xid_in_any_order() {
        let t0 = Instant::now();
        let mut t: Table<u32> = CallTable::new(RetryPolicy::default(), 100);
        t.on_connect();
        let xs: Vec<Xid> = (0..10).map(|i| t.start(t0, i, spec).0).collect();
        assert_eq!(t.len(), 10);
        for (i, x) in xs.iter().enumerate().rev() {
            match t.on_record(rb(reply(x.0, &[0, 0, 0, i as u8]))) {
                Some(Output::Complete(w, Ok(b))) => {
                    assert_eq!(w, i as u32);
                    assert_eq!(b.body(), [0, 0, 0, i as u8]);
                }
                o => panic!("{o:?}"),
            }
        }
        assert!(t.is_empty());
        assert_eq!(t.stats().replies, 10);
    }

    #[test]
    fn duplicate_unknown_and_malformed_replies_change_nothing() {
        let t0 = Instant::now();
        let mut t: Table<&str> = CallTable::new(RetryPolicy::default(), 7);
        t.on_connect();
        let (a, _) = t.start(t0, "a", spec);
        let (b, _) = t.start(t0, "b", spec);
        assert!(matches!(
            t.on_record(rb(reply(a.0, &[]))),
            Some(Output::Complete("a", Ok(_)))
        ));
        // The same reply again (a duplicate), a reply nobody asked for, garbage.
        assert!(t.on_record(rb(reply(a.0, &[]))).is_none());
        assert!(t.on_record(rb(reply(0xdead_beef, &[]))).is_none());
        assert!(t.on_record(rb(vec![1, 2, 3])).is_none());
        assert!(t.on_record(rb(Vec::new())).is_none());
        let mut call_not_reply = reply(b.0, &[]);
        call_not_reply[7] = 0; // msg_type CALL
        assert!(t.on_record(rb(call_not_reply)).is_none());
        let s = t.stats();
        assert_eq!(
            (s.duplicate_replies, s.unknown_replies, s.malformed_replies),
            (1, 1, 3)
        );
        assert_eq!(t.len(), 1);
        assert!(matches!(
            t.on_record(rb(reply(b.0, &[]))),
            Some(Output::Complete("b", Ok(_)))
        ));
        assert!(t.is_empty());
    }

    #[test]
    fn timeouts_retransmit_same_bytes_and_soft_mode_gives_up() {
        let t0 = Instant::now();
        let mut t: Table<u8> = CallTable::new(soft(3), 1);
        t.on_connect();
        let (x, first) = t.start(t0, 1, spec);
        let first = first.expect("connected: sent at once");
        assert!(t.on_tick(t0 + Duration::from_millis(999)).is_empty());
        let o = t.on_tick(t0 + Duration::from_secs(1));
        assert!(matches!(&o[..], [Output::Send(r)] if *r == first));
        // Timeout doubled: next retransmission at 1 + 2 s.
        assert!(t.on_tick(t0 + Duration::from_millis(2999)).is_empty());
        let o = t.on_tick(t0 + Duration::from_secs(3));
        assert!(matches!(&o[..], [Output::Send(r)] if xid_of(r) == x.0));
        // Third try exhausted after 4 more seconds.
        let o = t.on_tick(t0 + Duration::from_secs(7));
        assert!(matches!(
            &o[..],
            [Output::Complete(1, Err(RpcError::TimedOut { tries: 3 }))]
        ));
        assert!(t.is_empty());
        // The late reply is a duplicate, not a crash or a second completion.
        assert!(t.on_record(rb(reply(x.0, &[]))).is_none());
        assert_eq!(t.stats().duplicate_replies, 1);
        assert_eq!(t.stats().retransmits, 2);
    }

    #[test]
    fn hard_mode_retries_forever_with_capped_timeout() {
        let t0 = Instant::now();
        let pol = RetryPolicy {
            timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(4),
            mode: RetryMode::Hard,
        };
        let mut t: Table<()> = CallTable::new(pol, 1);
        t.on_connect();
        t.start(t0, (), spec);
        let mut now = t0;
        for _ in 0..100 {
            now = t.next_deadline().expect("pending");
            assert!(now - t0 <= Duration::from_secs(4 * 101));
            let o = t.on_tick(now);
            assert!(matches!(&o[..], [Output::Send(_)]));
        }
        assert_eq!(t.len(), 1);
        assert!(now - t0 >= Duration::from_secs(4 * 90));
    }

    #[test]
    fn disconnect_holds_calls_and_reconnect_replays_them_oldest_first() {
        let t0 = Instant::now();
        let mut t: Table<u32> = CallTable::new(RetryPolicy::default(), u32::MAX - 2);
        let (a, sent) = t.start(t0, 0, spec);
        assert!(sent.is_none(), "not connected yet");
        t.on_connect();
        let (b, _) = t.start(t0, 1, spec);
        let (c, _) = t.start(t0, 2, spec); // xids wrap around 0
        assert!(t.on_disconnect(t0).is_empty(), "hard: calls stay");
        assert!(t.on_record(rb(reply(b.0, &[]))).is_some());
        let o = t.on_connect();
        let xs: Vec<u32> = o
            .iter()
            .map(|o| match o {
                Output::Send(r) => xid_of(r),
                Output::Complete(..) => panic!(),
            })
            .collect();
        assert_eq!(xs, vec![a.0, c.0]);
        assert_eq!(t.stats().replays, 2);
    }

    #[test]
    fn a_lost_connection_ends_a_try_and_soft_calls_fail_after_their_tries() {
        // A server that accepts and closes (or sends half a reply, or a record mark over
        // the limit): each connection lost is a try, so the call fails long before its
        // timer, instead of being replayed on every new connection forever.
        let t0 = Instant::now();
        let mut t: Table<u8> = CallTable::new(soft(2), 1);
        t.on_connect();
        let (x, _) = t.start(t0, 1, spec);
        assert!(t.on_disconnect(t0 + Duration::from_millis(10)).is_empty());
        let o = t.on_connect();
        assert!(matches!(&o[..], [Output::Send(r)] if xid_of(r) == x.0));
        let o = t.on_disconnect(t0 + Duration::from_millis(20));
        assert!(
            matches!(
                &o[..],
                [Output::Complete(1, Err(RpcError::TimedOut { tries: 2 }))]
            ),
            "{o:?}"
        );
        assert!(t.is_empty() && t.next_deadline().is_none());
        let s = t.stats();
        assert_eq!((s.lost_tries, s.timeouts, s.replays), (2, 1, 1));
        // Losing a connection that is already gone changes nothing.
        assert!(t.on_disconnect(t0 + Duration::from_millis(30)).is_empty());
        assert_eq!(t.stats().lost_tries, 2);
    }

    #[test]
    fn a_calls_timer_runs_across_reconnects_and_while_disconnected() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t: Table<u8> = CallTable::new(soft(3), 1);
        t.on_connect();
        let (x, _) = t.start(t0, 1, spec);
        // Lost at 0.5 s (try 2, its timer from now), a new connection at 0.6 s: the call
        // is replayed but its timer is not restarted, so the silent new connection gets
        // the retransmission at 1.5 s, not at 1.6 s.
        assert!(t.on_disconnect(t0 + ms(500)).is_empty());
        assert!(matches!(&t.on_connect()[..], [Output::Send(_)]));
        assert_eq!(t.next_deadline(), Some(t0 + ms(1500)));
        let o = t.on_tick(t0 + ms(1500));
        assert!(
            matches!(&o[..], [Output::Send(r)] if xid_of(r) == x.0),
            "{o:?}"
        );
        // Third try (timeout doubled to 2 s) ends at 3.5 s: the call fails.
        assert!(t.on_tick(t0 + ms(3499)).is_empty());
        let o = t.on_tick(t0 + ms(3500));
        assert!(matches!(
            &o[..],
            [Output::Complete(1, Err(RpcError::TimedOut { tries: 3 }))]
        ));
        // Without a new connection the timer runs on: lost at once, failed 1 s later.
        let mut t: Table<u8> = CallTable::new(soft(2), 1);
        t.on_connect();
        t.start(t0, 2, spec);
        assert!(t.on_disconnect(t0).is_empty());
        assert!(t.on_tick(t0 + ms(999)).is_empty());
        let o = t.on_tick(t0 + ms(1000));
        assert!(matches!(
            &o[..],
            [Output::Complete(2, Err(RpcError::TimedOut { tries: 2 }))]
        ));
    }

    #[test]
    fn hard_calls_survive_any_number_of_lost_connections() {
        let t0 = Instant::now();
        let mut t: Table<u8> = CallTable::new(RetryPolicy::default(), 1);
        t.on_connect();
        let (x, _) = t.start(t0, 1, spec);
        for i in 0..100 {
            assert!(t.on_disconnect(t0 + Duration::from_millis(i)).is_empty());
            assert!(matches!(&t.on_connect()[..], [Output::Send(_)]));
        }
        assert_eq!(t.stats().lost_tries, 100);
        assert!(matches!(
            t.on_record(rb(reply(x.0, &[]))),
            Some(Output::Complete(1, Ok(_)))
        ));
    }

    #[test]
    fn the_reconnect_delay_doubles_to_its_cap_and_shrinks_only_after_a_reply() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(100));
        // Connections lost (or attempts failed) one after the other: connecting in between
        // is no reason to hurry, only a reply is.
        let delays: Vec<Duration> = (0..7).map(|_| b.failed(t0) - t0).collect();
        assert_eq!(
            delays,
            [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100), ms(100)]
        );
        b.delivered();
        assert_eq!(b.failed(t0) - t0, ms(10));
        assert_eq!(b.failed(t0) - t0, ms(20));
        // A cap below the start is raised to it.
        let mut b = Backoff::new(ms(50), ms(5));
        assert_eq!((b.failed(t0) - t0, b.failed(t0) - t0), (ms(50), ms(50)));
    }

    #[test]
    fn unreachable_server_fails_soft_calls_and_cancel_and_reap_remove() {
        let t0 = Instant::now();
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut t: Table<u32> = CallTable::new(soft(2), 1);
        t.start(t0, 0, spec);
        assert!(t.on_connect_failed(addr, "refused").is_empty());
        let o = t.on_connect_failed(addr, "refused");
        assert!(matches!(
            &o[..],
            [Output::Complete(0, Err(RpcError::Connect { .. }))]
        ));
        let (x, _) = t.start(t0, 1, spec);
        t.start(t0, 2, spec);
        t.start(t0, 3, spec);
        assert_eq!(t.cancel(x), Some(1));
        assert_eq!(t.cancel(x), None);
        t.reap(|w| *w == 2);
        assert_eq!(t.len(), 1);
        let o = t.shutdown();
        assert!(matches!(
            &o[..],
            [Output::Complete(3, Err(RpcError::Shutdown))]
        ));
        assert_eq!(t.stats().cancelled, 2);
        assert_eq!(t.stats().live, 0);
    }
}
