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

/// What one open connection costs the server besides its buffers (its task and state, the
/// runtime's registration of its socket, its registry entry), charged to the memory budget
/// while it is open, so that the budget bounds the server's memory, not only its buffers.
/// Measured: 575 idle connections added ~6 MiB of RSS (~11 KiB each); rounded up. Charged
/// whatever the budget says (a connection is never refused for memory; the connection
/// limit bounds them): those accepted while the budget is full pass it by this much each,
/// until buffers are given back.
pub const CONN_COST: usize = 16 * 1024;

/// The least share of the last quarter of the budget a connection may hold however many
/// are open (see [`grant`]): a 64 KiB READ's reply with its call and a first receive
/// buffer. Without it, 2,000 open connections split a 64 MiB quarter into 32 KiB shares
/// and no READ could start once memory ran short: the soak benchmark's normal clients
/// waited for memory while hostile ones held the budget (docs/benchmarks.md).
pub const MIN_SHARE: usize = 128 * 1024;

/// How much of a request for `want` more bytes a connection holding `held` may take (0:
/// none, when less than `least` would be granted), when `open` connections hold `total`
/// of `limit` in all.
///
/// Below three quarters of the limit any connection grows; above that mark only
/// connections holding less than their share of the last quarter (split evenly over the
/// open connections, but at least [`MIN_SHARE`]) do, up to that share. So when memory
/// runs short the heaviest connections stop first and the light ones (a GETATTR, a NULL,
/// a 64 KiB READ) keep being served, and the total never passes the limit.
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
        .max(MIN_SHARE.min(reserve))
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
    /// Tells the connection to close, as chosen to be shed; false if it is ending on its own
    /// right now ([`Entry::end`]): then it is not shed, and not counted as such.
    fn shed(&self) -> bool {
        if self
            .closing
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_err()
        {
            return false;
        }
        self.close.notify_one();
        true
    }

    /// The connection ends: from now on no one chooses it to be shed. True if someone had
    /// (and counted it as shed): then it must not be counted again for another reason. The
    /// choice and the end race on one atomic, so exactly one of them counts.
    pub(crate) fn end(&self) -> bool {
        self.closing.swap(true, Relaxed)
    }

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

/// How often, at most, the open connections are searched for one to shed when memory runs
/// short ([`Registry::shed_stalled`]). Every connection refused memory asks, and each
/// search looks at every connection under the registry's lock: unbounded, 1,500 starved
/// connections spent a tenth of the server's CPU searching (perf, soak benchmark). 200
/// searches a second still shed faster than any client reconnects.
pub const SHED_SEARCH_EVERY: Duration = Duration::from_millis(5);

/// The open connections, for shedding.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Entry>>>,
    /// Milliseconds since the epoch before which no search for a stalled connection runs.
    next_search: AtomicU64,
    /// Searches for a stalled connection run (at most one per [`SHED_SEARCH_EVERY`]).
    pub(crate) searches: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::default(),
            next_search: AtomicU64::new(0),
            searches: AtomicU64::new(0),
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
        victim
            .and_then(|id| conns.get(&id))
            .is_some_and(|e| e.shed())
    }
}

impl Registry {
    /// When memory runs short: tells the connection stalled for [`STALL`] (replies
    /// unwritten, or a record arriving) that holds the most (see [`pick_stalled`]) to
    /// close, so that its memory goes to connections whose clients read and send; false
    /// when none qualifies, or when another search ran less than [`SHED_SEARCH_EVERY`]
    /// before `now`.
    pub(crate) fn shed_stalled(&self, now: Instant) -> bool {
        let t = millis_since(self.epoch, now);
        let next = self.next_search.load(Relaxed);
        let every = u64::try_from(SHED_SEARCH_EVERY.as_millis()).unwrap_or(u64::MAX);
        if t < next
            || self
                .next_search
                .compare_exchange(next, t.saturating_add(every), Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        self.searches.fetch_add(1, Relaxed);
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
            t,
            stall,
        );
        victim
            .and_then(|id| conns.get(&id))
            .is_some_and(|e| e.shed())
    }
}

/// Calls in a row a connection may get wrong by its own fault before it is slowed down
/// ([`Penalty`]): a client with a few handles gone bad (BADHANDLE after a new secret) is
/// not slowed for those.
pub const FREE_FAULTS: u32 = 8;

/// The first delay, doubled for each further fault in a row, up to [`PENALTY_CAP`].
pub const PENALTY_FIRST: Duration = Duration::from_millis(1);

/// The longest delay between two calls of a connection whose calls keep failing by its
/// own fault: such a connection gets one call a second answered. 475 connections
/// flooding forged handles got ~58,000 BADHANDLEs a second on 2 cores, and the CPU that
/// took was the normal clients' (docs/benchmarks.md, soak); at the cap they get 475.
pub const PENALTY_CAP: Duration = Duration::from_secs(1);

/// Slows down a connection whose calls keep failing by its client's own fault (a forged
/// handle, arguments that do not decode, a program or procedure that does not exist; the
/// service judges, [`super::Service::peer_fault`]): after [`FREE_FAULTS`] such calls in a
/// row, the connection's next call is read or started only after a delay, from
/// [`PENALTY_FIRST`] doubling to [`PENALTY_CAP`]; one call that does not fail so ends it.
/// Per connection, so it works however many clients share an address (loopback, NAT).
#[derive(Debug, Default, Clone)]
pub struct Penalty {
    faults: u32,
}

impl Penalty {
    /// Records the outcome of one call; how long the connection waits before its next
    /// call is read or started (zero: at once).
    pub fn after(&mut self, fault: bool) -> Duration {
        if !fault {
            self.faults = 0;
            return Duration::ZERO;
        }
        self.faults = self.faults.saturating_add(1);
        match self.faults.saturating_sub(FREE_FAULTS) {
            0 => Duration::ZERO,
            n => PENALTY_FIRST
                .saturating_mul(1 << (n - 1).min(20))
                .min(PENALTY_CAP),
        }
    }
}

/// Whether an RPC reply says the call was refused for its caller's own fault (RFC 5531
/// section 9): denied (RPC version or authentication), or accepted with PROG_UNAVAIL,
/// PROG_MISMATCH, PROC_UNAVAIL or GARBAGE_ARGS. SYSTEM_ERR is the server's fault; a reply
/// that does not parse is not judged.
pub fn rpc_fault(reply: &[u8]) -> bool {
    match (word(reply, 8), accept_stat(reply)) {
        (Some(1), _) => true,                       // MSG_DENIED
        (Some(0), Some(s)) => (1..=4).contains(&s), // MSG_ACCEPTED
        _ => false,
    }
}

/// The first word of the procedure's result in an accepted, successful RPC reply (the
/// status of every NFSv3 and NFSv4 reply), if there is one.
pub fn result_status(reply: &[u8]) -> Option<u32> {
    let at = body_at(reply)?;
    match (word(reply, 8), word(reply, at)) {
        (Some(0), Some(0)) => word(reply, at.checked_add(4)?),
        _ => None,
    }
}

/// The big-endian word at `at`.
fn word(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(w.try_into().ok()?))
}

/// Where the accept status of an accepted reply is: after xid, REPLY, MSG_ACCEPTED and
/// the verifier (flavor, length, body padded to 4).
fn body_at(reply: &[u8]) -> Option<usize> {
    let len = usize::try_from(word(reply, 16)?).ok()?;
    20usize.checked_add(len.checked_add(3)? & !3)
}

fn accept_stat(reply: &[u8]) -> Option<u32> {
    word(reply, body_at(reply)?)
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
    fn a_read_starts_above_the_mark_however_many_connections_are_open() {
        // The soak benchmark's server: a 256 MiB budget, 2,000 connections open, the
        // total just above the mark (hostile connections hold it). A normal client's
        // 64 KiB READ (its reply's hint, 68 KiB) with a 16 KiB receive buffer held still
        // starts: 64 MiB / 2,000 is 32 KiB, but the share is at least MIN_SHARE.
        let limit = 256 * MIB;
        let above = 193 * MIB;
        let want = 68 * 1024;
        assert_eq!(grant(limit, above, 2000, 16 * 1024, want, want), want);
        // Not past the share: a connection holding MIN_SHARE gets nothing more.
        assert_eq!(grant(limit, above, 2000, MIN_SHARE, 1024, 1), 0);
        // Nor past the limit.
        assert_eq!(grant(limit, limit - 1024, 2000, 0, want, want), 0);
        // The share of a small budget is never more than its last quarter.
        assert_eq!(grant(400 * 1024, 300 * 1024, 1, 0, MIB, 1), 100 * 1024);
    }

    #[test]
    fn searches_for_a_stalled_connection_run_at_most_once_per_period() {
        let r = Registry::default();
        let t0 = Instant::now();
        let conns: Vec<_> = (0..3).map(|_| r.insert(t0).1).collect();
        for c in &conns {
            c.update(r.epoch(), t0, false, MIB, Some(t0));
        }
        let now = t0 + 2 * STALL;
        // Three connections short of memory at once: one search, one shed.
        let shed = (0..3).filter(|_| r.shed_stalled(now)).count();
        assert_eq!(shed, 1);
        assert_eq!(r.searches.load(Relaxed), 1);
        let later = now + SHED_SEARCH_EVERY;
        assert!(!r.shed_stalled(later - Duration::from_millis(1)));
        assert!(r.shed_stalled(later), "the next period searches again");
        assert_eq!(r.searches.load(Relaxed), 2);
    }

    #[test]
    fn a_connection_whose_calls_keep_failing_waits_longer_up_to_the_cap() {
        let mut p = Penalty::default();
        let ms = Duration::from_millis;
        for _ in 0..FREE_FAULTS {
            assert_eq!(p.after(true), Duration::ZERO, "the first faults are free");
        }
        let delays: Vec<_> = (0..12).map(|_| p.after(true)).collect();
        assert_eq!(delays[..4], [ms(1), ms(2), ms(4), ms(8)]);
        assert_eq!(delays[9], ms(512));
        assert_eq!(delays[10..], [PENALTY_CAP, PENALTY_CAP]);
        for _ in 0..1000 {
            assert!(p.after(true) <= PENALTY_CAP, "never past the cap");
        }
        // One call that does not fail by its client's fault ends it.
        assert_eq!(p.after(false), Duration::ZERO);
        for _ in 0..FREE_FAULTS {
            assert_eq!(p.after(true), Duration::ZERO);
        }
        assert_eq!(p.after(true), ms(1));
    }

    #[test]
    fn rpc_refusals_are_the_callers_fault_system_err_is_not() {
        // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE (flavor, empty body), accept_stat.
        let accepted = |stat: u32, rest: &[u32]| {
            let mut v = [7u32, 1, 0, 0, 0, stat].to_vec();
            v.extend_from_slice(rest);
            v.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>()
        };
        assert!(!rpc_fault(&accepted(0, &[10001])), "SUCCESS");
        for stat in 1..=4 {
            assert!(rpc_fault(&accepted(stat, &[])), "accept_stat {stat}");
        }
        assert!(!rpc_fault(&accepted(5, &[])), "SYSTEM_ERR: ours");
        // MSG_DENIED (AUTH_ERROR, AUTH_BADCRED).
        let denied: Vec<u8> = [7u32, 1, 1, 1, 1]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!(rpc_fault(&denied));
        assert_eq!(result_status(&accepted(0, &[10001])), Some(10001));
        assert_eq!(result_status(&accepted(4, &[10001])), None, "not SUCCESS");
        assert_eq!(result_status(&denied), None);
        // A verifier with a body: the status is after it, padded.
        let mut v = [7u32, 1, 0, 1, 5, 0xaabb_ccdd, 0xee00_0000, 0, 70]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect::<Vec<u8>>();
        assert_eq!(result_status(&v), Some(70));
        // Anything cut short is not judged, and never panics.
        while v.pop().is_some() {
            assert!(!rpc_fault(&v));
            assert_eq!(result_status(&v), None);
        }
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
        let share = (16 * MIB / open).max(MIN_SHARE);
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
        let now = now + SHED_SEARCH_EVERY;
        assert!(r.shed_stalled(now));
        assert!(a.closing.load(Relaxed));
        assert!(
            !r.shed_stalled(now + SHED_SEARCH_EVERY),
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
