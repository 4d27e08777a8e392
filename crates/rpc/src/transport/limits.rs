//! What a peer can make the server hold, and the rules that bound it: connections (shed the
//! one idle longest at the limit, as knfsd does), time (an idle connection, a record that
//! never completes), and memory (one budget for every connection's received bytes and
//! unsent replies). The accounting and the decisions are here, free of I/O, with time as an
//! argument; the accept loop and the connection tasks ([`super::conn`]) apply them.
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Descriptors kept for everything but connections: listeners, the runtime's epoll and
/// eventfds, standard streams, logs (64), plus the backends' descriptor caches (each local
/// export caches at most 2 x min(limit/16, 256) descriptors): a quarter of the limit,
/// at most 4096 (eight exports' worth).
fn fd_reserve(nofile: u64) -> u64 {
    64 + (nofile / 4).min(4096)
}

/// The default connection limit under a descriptor limit of `nofile`: every descriptor
/// but [`fd_reserve`]'s, so that accept never meets EMFILE before the connection limit
/// sheds load, and the backends always find a descriptor to open a file. At least 16.
pub fn default_max_connections(nofile: u64) -> usize {
    let n = nofile.saturating_sub(fd_reserve(nofile)).max(16);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The default memory budget on a machine with `ram` bytes: a sixteenth, at most 1 GiB,
/// at least 64 MiB. The rest belongs to the page cache and the backends; 1 GiB is a
/// thousand 1 MiB calls or replies in flight, far beyond what a 10 GbE link keeps busy
/// (its bandwidth-delay product at 1 ms is about 1.2 MB); 64 MiB still lets a small
/// machine serve dozens of 1 MiB calls at once.
pub fn default_memory_budget(ram: u64) -> usize {
    let b = (ram / 16).clamp(64 << 20, 1 << 30);
    usize::try_from(b).unwrap_or(1 << 30)
}

/// How much of a request for `want` more bytes a connection holding `held` may take (0:
/// none, when less than `least` would be granted), when `open` connections hold `total`
/// of `limit` in all.
///
/// Below three quarters of the limit any connection grows; above that mark only
/// connections holding less than their share of the last quarter (split evenly over the
/// open connections) do, up to that share. So when memory runs short the heaviest
/// connections stop first and the light ones (a GETATTR, a NULL) keep being served, and
/// the total never passes the limit.
pub fn grant(
    limit: usize,
    total: usize,
    open: usize,
    held: usize,
    want: usize,
    least: usize,
) -> usize {
    let reserve = limit / 4;
    let mark = limit - reserve;
    let common = mark.saturating_sub(total);
    let share = (reserve / open.max(1))
        .saturating_sub(held)
        .min(limit.saturating_sub(total));
    let g = want.min(common.max(share));
    if g >= least.max(1) {
        g
    } else {
        0
    }
}

/// The server-wide memory account: bytes of requests being received and replies waiting
/// to be sent (and reserved for calls running), over every connection of every listener.
#[derive(Debug, Default)]
pub struct Memory {
    limit: AtomicUsize,
    total: AtomicUsize,
    /// The highest total since [`Memory::take_peak`] last looked.
    peak: AtomicUsize,
    /// Signalled when the total falls below the three-quarter mark, where connections
    /// stopped for being heavy may go on.
    pub(crate) freed: Notify,
}

impl Memory {
    /// Sets the budget (at the start of serving).
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Relaxed);
    }

    /// The budget.
    pub fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    /// Bytes held now.
    pub fn total(&self) -> usize {
        self.total.load(Relaxed)
    }

    /// Takes what [`grant`] allows of `want` bytes for a connection holding `held`; the
    /// caller adds the result to what it holds.
    pub(crate) fn take(&self, open: usize, held: usize, want: usize, least: usize) -> usize {
        let limit = self.limit().max(1);
        let mut total = self.total();
        loop {
            let g = grant(limit, total, open, held, want, least);
            if g == 0 {
                return 0;
            }
            match self
                .total
                .compare_exchange_weak(total, total + g, Relaxed, Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(total + g, Relaxed);
                    return g;
                }
                Err(t) => total = t,
            }
        }
    }

    /// Adds bytes held whatever the budget says (a reply that came out larger than its
    /// reservation: it exists already).
    pub(crate) fn add(&self, n: usize) {
        let before = self.total.fetch_add(n, Relaxed);
        self.peak.fetch_max(before + n, Relaxed);
    }

    /// The highest total since the last call (to tell when a burst has passed and the
    /// memory it used can be given back to the system).
    pub fn take_peak(&self) -> usize {
        self.peak.swap(self.total(), Relaxed)
    }

    /// Gives back `n` bytes; wakes the connections waiting for memory when the total
    /// falls below the mark.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.total.fetch_sub(n, Relaxed);
        let limit = self.limit();
        let mark = limit - limit / 4;
        if before > mark && before - n <= mark {
            self.freed.notify_waiters();
        }
    }
}

/// Why a connection was closed by the server rather than by its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing received or sent, and no call running, for the idle timeout.
    Idle,
    /// A record begun and not completed within the record timeout.
    Record,
}

/// When a connection expires, and why: `record_started` is when the first byte of a
/// record still incomplete arrived, `last_active` when a byte last moved either way or a
/// call last completed, `pool_calls` the calls running on the pool (a connection waiting
/// for its own calls is not idle).
pub fn deadline(
    last_active: Instant,
    record_started: Option<Instant>,
    pool_calls: usize,
    idle_timeout: Duration,
    record_timeout: Duration,
) -> Option<(Instant, Expiry)> {
    let record = record_started.map(|t| (t + record_timeout, Expiry::Record));
    let idle = (pool_calls == 0).then(|| (last_active + idle_timeout, Expiry::Idle));
    match (record, idle) {
        (Some(r), Some(i)) => Some(if r.0 <= i.0 { r } else { i }),
        (r, i) => r.or(i),
    }
}

/// How long a connection's replies must have waited with none of them written, or a record
/// of it been arriving, before, when memory runs short, the connection may be closed to
/// give its memory to others (see [`pick_stalled`]). A client that reads its replies
/// empties its outbox within a round trip, and sends a 1 MiB call in well under a second
/// on any link worth serving; one that does not read, or trickles a record (slow-loris),
/// holds what it holds until it is closed.
pub const STALL: Duration = Duration::from_secs(2);

/// One connection as the accept loop sees it, updated by the connection's task.
#[derive(Debug)]
pub struct Entry {
    /// Milliseconds since the registry's epoch at the last activity.
    last_active: AtomicU64,
    /// Nothing received, running or waiting to be sent.
    idle: AtomicBool,
    /// Bytes the connection holds (charged to the memory budget).
    held: AtomicUsize,
    /// Milliseconds since the epoch since when replies have waited with none written, or a
    /// record has been arriving (the earlier); `u64::MAX` when neither.
    stalled_since: AtomicU64,
    /// Chosen to be shed; told to close.
    closing: AtomicBool,
    /// Wakes the connection's task to close.
    pub(crate) close: Notify,
}

fn millis_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

impl Entry {
    /// Records the connection's state: when it was last active, whether it is idle, what
    /// it holds, and since when its replies have waited unwritten or a record has been
    /// arriving (if so).
    pub(crate) fn update(
        &self,
        epoch: Instant,
        last_active: Instant,
        idle: bool,
        held: usize,
        stalled_since: Option<Instant>,
    ) {
        self.last_active
            .store(millis_since(epoch, last_active), Relaxed);
        self.idle.store(idle, Relaxed);
        self.held.store(held, Relaxed);
        let stalled = stalled_since.map_or(u64::MAX, |t| millis_since(epoch, t));
        self.stalled_since.store(stalled, Relaxed);
    }
}

/// The victim when memory runs short: among `(id, closing, held, stalled since)` (times in
/// milliseconds), the connection not already closing that has been stalled (replies
/// unwritten, or a record arriving) for at least `stall` by `now` and that holds the most;
/// `None` when none has.
pub fn pick_stalled(
    conns: impl IntoIterator<Item = (u64, bool, usize, u64)>,
    now: u64,
    stall: u64,
) -> Option<u64> {
    conns
        .into_iter()
        .filter(|&(_, closing, held, since)| {
            !closing && held > 0 && since != u64::MAX && since.saturating_add(stall) <= now
        })
        .max_by_key(|&(id, _, held, _)| (held, std::cmp::Reverse(id)))
        .map(|(id, ..)| id)
}

/// The victim when a connection must be shed: among `(id, idle, closing, last active)`,
/// the idle one not already closing whose last activity is oldest; `None` when no
/// connection is idle.
pub fn pick_idle(conns: impl IntoIterator<Item = (u64, bool, bool, u64)>) -> Option<u64> {
    conns
        .into_iter()
        .filter(|&(_, idle, closing, _)| idle && !closing)
        .min_by_key(|&(id, _, _, at)| (at, id))
        .map(|(id, ..)| id)
}

/// The open connections, for shedding.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Entry>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::default(),
        }
    }
}

impl Registry {
    /// The instant activity times count from.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Adds a connection, active now.
    pub(crate) fn insert(&self, now: Instant) -> (u64, Arc<Entry>) {
        let id = self.next.fetch_add(1, Relaxed);
        let e = Arc::new(Entry {
            last_active: AtomicU64::new(0),
            idle: AtomicBool::new(true),
            held: AtomicUsize::new(0),
            stalled_since: AtomicU64::new(u64::MAX),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        e.update(self.epoch, now, true, 0, None);
        self.conns.lock().insert(id, e.clone());
        (id, e)
    }

    /// Removes a closed connection.
    pub(crate) fn remove(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    /// Tells the connection idle longest to close (see [`pick_idle`]); false when none is
    /// idle.
    pub(crate) fn shed_idle(&self) -> bool {
        let conns = self.conns.lock();
        let victim = pick_idle(conns.iter().map(|(&id, e)| {
            (
                id,
                e.idle.load(Relaxed),
                e.closing.load(Relaxed),
                e.last_active.load(Relaxed),
            )
        }));
        match victim.and_then(|id| conns.get(&id)) {
            Some(e) => {
                e.closing.store(true, Relaxed);
                e.close.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Registry {
    /// When memory runs short: tells the connection stalled for [`STALL`] (replies
    /// unwritten, or a record arriving) that holds the most (see [`pick_stalled`]) to
    /// close, so that its memory goes to connections whose clients read and send; false
    /// when none qualifies.
    pub(crate) fn shed_stalled(&self, now: Instant) -> bool {
        let conns = self.conns.lock();
        let stall = u64::try_from(STALL.as_millis()).unwrap_or(u64::MAX);
        let victim = pick_stalled(
            conns.iter().map(|(&id, e)| {
                (
                    id,
                    e.closing.load(Relaxed),
                    e.held.load(Relaxed),
                    e.stalled_since.load(Relaxed),
                )
            }),
            millis_since(self.epoch, now),
            stall,
        );
        match victim.and_then(|id| conns.get(&id)) {
            Some(e) => {
                e.closing.store(true, Relaxed);
                e.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// At most one log line per `every`, saying how many were suppressed since the last.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter letting one line through per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last line)` when a line may be logged at `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now < t + self.every) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn under_memory_pressure_the_heaviest_stalled_connection_goes() {
        // (id, closing, held, stalled since): times in ms, now 10_000, stall 2_000.
        let conns = [
            (1, false, 64 * MIB, u64::MAX), // heaviest, but its replies move
            (2, false, 16 * MIB, 7_000),    // stalled 3 s
            (3, false, 32 * MIB, 9_000),    // stalled only 1 s
            (4, true, 48 * MIB, 1_000),     // already closing
            (5, false, 8 * MIB, 2_000),     // stalled 8 s, lighter
            (6, false, 0, 0),               // holds nothing
        ];
        assert_eq!(pick_stalled(conns, 10_000, 2_000), Some(2));
        assert_eq!(pick_stalled(conns, 8_500, 2_000), Some(5));
        assert_eq!(pick_stalled(conns, 3_000, 2_000), None);
        assert_eq!(pick_stalled([], 10_000, 2_000), None);
    }

    #[test]
    fn defaults_leave_room_for_the_backends() {
        // systemd's default: 1024 descriptors; 64 + 256 kept back.
        assert_eq!(default_max_connections(1024), 704);
        // A large limit keeps at most 64 + 4096 back.
        assert_eq!(default_max_connections(524_288), 524_288 - 4160);
        assert_eq!(default_max_connections(50), 16, "never below 16");
        assert_eq!(default_memory_budget(512 << 20), 64 * MIB, "floor");
        assert_eq!(default_memory_budget(8 << 30), 512 * MIB);
        assert_eq!(default_memory_budget(64 << 30), 1024 * MIB, "ceiling");
    }

    #[test]
    fn below_the_mark_anyone_grows_above_it_only_the_light() {
        let limit = 100 * MIB;
        // Below 75 MiB: any connection, whatever it holds.
        assert_eq!(grant(limit, 10 * MIB, 10, 50 * MIB, MIB, MIB), MIB);
        // Up to the mark, then no further for a heavy connection.
        assert_eq!(grant(limit, 74 * MIB, 10, 50 * MIB, 4 * MIB, 1), MIB);
        assert_eq!(grant(limit, 75 * MIB, 10, 50 * MIB, 4 * MIB, 1), 0);
        // A light one (share of the last quarter: 25 MiB / 10) still grows, to its share.
        assert_eq!(grant(limit, 75 * MIB, 10, 0, MIB, 1), MIB);
        assert_eq!(grant(limit, 75 * MIB, 10, 0, 4 * MIB, 1), 25 * MIB / 10);
        assert_eq!(
            grant(limit, 75 * MIB, 10, MIB, 4 * MIB, 1),
            25 * MIB / 10 - MIB
        );
        // Not when less than it needs would be granted.
        assert_eq!(grant(limit, 75 * MIB, 10, MIB, 4 * MIB, 4 * MIB), 0);
        // And never past the limit.
        assert_eq!(grant(limit, limit - 10, 1, 0, MIB, 1), 10);
        assert_eq!(grant(limit, limit, 1, 0, MIB, 1), 0);
        assert_eq!(grant(limit, limit + MIB, 1, 0, MIB, 1), 0);
    }

    #[test]
    fn the_total_stays_within_the_limit_however_connections_ask() {
        // 400 connections each asking for 1 MiB until refused, in turns: the total ends
        // at most at the limit, and every refusal came to a connection above its share.
        let m = Memory::default();
        m.set_limit(64 * MIB);
        let open = 400;
        let mut held = vec![0usize; open];
        for _round in 0..100 {
            for h in held.iter_mut() {
                let g = m.take(open, *h, MIB, 1024);
                *h += g;
            }
        }
        assert_eq!(held.iter().sum::<usize>(), m.total());
        assert!(m.total() <= 64 * MIB, "total {}", m.total());
        // The quarter kept back was spread over the light connections.
        assert!(m.total() > 60 * MIB);
        let share = 16 * MIB / open;
        assert!(held.iter().filter(|&&h| h > share).count() <= 48);
    }

    #[tokio::test]
    async fn release_below_the_mark_wakes_the_waiting() {
        let m = Memory::default();
        m.set_limit(100);
        assert_eq!(m.take(1, 0, 80, 80), 0, "more than the mark and the share");
        assert_eq!(m.take(1, 0, 75, 75), 75);
        assert_eq!(
            m.take(2, 0, 5, 5),
            5,
            "a light connection, within its share"
        );
        let freed = m.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        m.release(1); // 79: still above the mark of 75
        assert!(futures_poll(freed.as_mut()).is_pending());
        m.release(10); // 69
        assert!(futures_poll(freed.as_mut()).is_ready());
        assert_eq!(m.total(), 69);
        assert_eq!(m.take_peak(), 80, "the high-water mark");
        assert_eq!(m.take_peak(), 69, "from the last look on");
    }

    fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<()> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).map(|_| ())
    }

    #[test]
    fn the_record_deadline_comes_first_and_a_waiting_call_is_not_idle() {
        let t0 = Instant::now();
        let (idle, rec) = (Duration::from_secs(360), Duration::from_secs(30));
        let s = Duration::from_secs;
        assert_eq!(
            deadline(t0, None, 0, idle, rec),
            Some((t0 + idle, Expiry::Idle))
        );
        assert_eq!(
            deadline(t0, Some(t0 + s(5)), 0, idle, rec),
            Some((t0 + s(35), Expiry::Record))
        );
        // A record begun long after the last... well, any order: the earlier wins.
        assert_eq!(
            deadline(t0, Some(t0 + s(400)), 0, idle, rec),
            Some((t0 + idle, Expiry::Idle))
        );
        assert_eq!(deadline(t0, None, 1, idle, rec), None);
        assert_eq!(
            deadline(t0, Some(t0), 3, idle, rec),
            Some((t0 + rec, Expiry::Record))
        );
    }

    #[test]
    fn the_idle_connection_idle_longest_is_shed_never_a_busy_one() {
        assert_eq!(
            pick_idle([
                (1, true, false, 50),
                (2, false, false, 10),
                (3, true, false, 40)
            ]),
            Some(3)
        );
        assert_eq!(pick_idle([(1, false, false, 5), (2, true, true, 1)]), None);
        assert_eq!(pick_idle([]), None);
        let r = Registry::default();
        let now = Instant::now();
        let (_, a) = r.insert(now);
        let (_, b) = r.insert(now);
        let (_, c) = r.insert(now);
        a.update(r.epoch(), now + Duration::from_secs(9), true, 0, None);
        b.update(r.epoch(), now + Duration::from_secs(1), false, 0, None);
        c.update(r.epoch(), now + Duration::from_secs(5), true, 0, None);
        assert!(r.shed_idle());
        assert!(c.closing.load(Relaxed), "c: idle, and idle longest");
        assert!(r.shed_idle());
        assert!(a.closing.load(Relaxed), "then a; b is busy");
        assert!(!r.shed_idle(), "nothing idle left");
    }

    #[test]
    fn the_registry_sheds_the_heaviest_stalled_connection_once() {
        let r = Registry::default();
        let t0 = Instant::now();
        let (_, a) = r.insert(t0);
        let (_, b) = r.insert(t0);
        let (_, c) = r.insert(t0);
        // a: replies unwritten for 5 s, 8 MiB; b: the same, 16 MiB; c: reads, 32 MiB.
        a.update(r.epoch(), t0, false, 8 * MIB, Some(t0));
        b.update(r.epoch(), t0, false, 16 * MIB, Some(t0));
        c.update(
            r.epoch(),
            t0 + Duration::from_secs(5),
            false,
            32 * MIB,
            None,
        );
        let now = t0 + Duration::from_secs(5);
        assert!(
            !r.shed_stalled(t0 + Duration::from_secs(1)),
            "not stalled long enough"
        );
        assert!(r.shed_stalled(now));
        assert!(
            b.closing.load(Relaxed),
            "b: stalled, and the heaviest of those"
        );
        assert!(r.shed_stalled(now));
        assert!(a.closing.load(Relaxed));
        assert!(
            !r.shed_stalled(now),
            "c reads its replies: never shed for memory"
        );
        assert!(!c.closing.load(Relaxed));
    }

    #[test]
    fn one_line_per_period_counting_the_rest() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(10)), Some(2));
    }
}
