//! The callback paths of NFSv4.0 clients (RFC 7530 3.3.2, 10.2.1, 16.33, 16.34): the
//! server connects to the address a client named in SETCLIENTID, probes it with CB_NULL,
//! and sends CB_RECALL on that connection. No I/O and no clock: the driver
//! ([`crate::v4::callback40`]) connects, sends, and reports how each attempt ended; `C` is
//! its connection handle (owned here: dropping it closes the connection).
//!
//! The contract, each clause tested below:
//! - P1 probe: a client confirmed (SETCLIENTID_CONFIRM) with a callback the server has not
//!   probed, or whose path is down, is probed: the target must parse, be the client's own
//!   address ([`check_target`]) and pass the server-wide [`ConnectLimiter`]; otherwise the
//!   path is down at once and nothing is attempted. A retransmitted confirm with a path up
//!   or being probed starts nothing; a callback update (a new SETCLIENTID confirmed) drops
//!   the old connection and probes the new address. A path down is probed again on the
//!   next recall or after a while ([`Paths40::reprobe_due`]), except when its target was
//!   refused (only a new SETCLIENTID naming another target changes that: confirming the
//!   same one again neither tries nor reports it again).
//! - P1 backoff: one path is tried (a probe started, or refused by the limiter) at most
//!   once per [`RETRY_MS`], however many recalls, confirms or laundromat passes ask; only
//!   a path up that was lost (a closed connection, a lost callback) is probed again at
//!   once, by the next recall. The laundromat's
//!   pass stops at the limiter's first refusal (the paths left are due at the next pass),
//!   so a crowd of paths down is probed at the limiter's rate, not refused each in turn.
//!   Why a path was not tried is logged once per state change (a target refused once per
//!   target named; a deferral by the limiter once until the path is up again), never at
//!   error (the client's mistake, or the server's own limit), at info only for a target
//!   refused that is not the unspecified address (how clients say "no callbacks") and then
//!   one line a second server-wide at most (with the count of those left out); all are
//!   counted ([`Paths40::counts`]).
//! - P2 verified: the path is up only once a connection answered CB_NULL; only then may
//!   the client get delegations. Results of an older probe (an earlier generation) are
//!   ignored, their connection dropped.
//! - P3 recall: a recall goes on the path's connection when it is up and open; a path
//!   whose connection closed is down, and (as a path already down) is probed again, at
//!   most one probe at a time; the recall itself reports a path down (the delegation layer
//!   retries it on its backoff schedule).
//! - P4 health: a callback the client answered keeps the path up; one lost (no reply in
//!   time, a refused credential, a malformed reply) marks it down. RENEW reports
//!   `CB_PATH_DOWN` to a client holding delegations while its path is not up (down, or
//!   being probed again).
//! - P5 bounds: one path, and at most one connection, per confirmed 4.0 client; a client
//!   gone (expired, purged, replaced) loses its path and its connection.
use super::ids::{ClientId, Time};
use super::sessions::clients::Callback40;
use rnfs_rpc::transport::outgoing::{check_target, parse_uaddr, ConnectLimiter, TargetError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The least time between two tries of one path down (P1 backoff), in milliseconds: as
/// the delegation layer's first recall retry, so a recall retried finds the path tried
/// again.
pub const RETRY_MS: u64 = 1_000;

/// What the paths did, for the server's statistics (P1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// Probes started (a connection and CB_NULL).
    pub probes: u64,
    /// Targets refused (not the client's address, not TCP, malformed): never tried.
    pub refused: u64,
    /// Tries deferred by the server-wide connection limiter.
    pub deferred: u64,
}

/// Where a client's callback path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// A connection and CB_NULL under way.
    Probing,
    /// A connection answered: callbacks go there.
    Up,
    /// No usable path (refused target, failed probe, lost callback, closed connection).
    Down,
}

/// A probe to run: connect to `target` (on the runtime of connection `via`), send CB_NULL
/// to `program`, and report with [`Paths40::probe_done`] under `gen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The client.
    pub client: ClientId,
    /// Names this attempt.
    pub gen: u64,
    /// The checked target.
    pub target: SocketAddr,
    /// `cb_program`.
    pub program: u32,
    /// The transport connection the client's calls came on last.
    pub via: u64,
}

/// Where a recall goes.
#[derive(Debug)]
pub enum Route<'a, C> {
    /// On this connection, with the client's program and `callback_ident`.
    Send {
        /// The path's generation, for [`Paths40::call_done`].
        gen: u64,
        /// The connection.
        conn: &'a C,
        /// `cb_program`.
        program: u32,
        /// `callback_ident`.
        ident: u32,
    },
    /// No path now (a probe to run, when one may start).
    Down(Option<Probe>),
    /// Not a 4.0 client with a callback path.
    Unknown,
}

#[derive(Debug)]
struct Path<C> {
    cb: Callback40,
    peer: IpAddr,
    via: u64,
    state: PathState,
    conn: Option<C>,
    gen: u64,
    /// When the path was last tried: a probe started, or refused (P1 backoff).
    tried: Time,
    /// The path was up and went down since: the next recall tries it at once.
    lost: bool,
    /// The target itself was refused (not the client's address, not TCP, malformed):
    /// never tried again until the client names another.
    refused: bool,
    /// Why the path was last reported not tried, until it is up again: the same reason
    /// is not logged twice (P1).
    reported: Option<TargetError>,
}

/// How a try of a path ended.
enum Attempt {
    Started(Probe),
    /// The target refused, or the path not to be tried.
    Skipped,
    /// The limiter refused: no other path can be tried now either.
    Deferred,
}

impl Attempt {
    fn probe(self) -> Option<Probe> {
        match self {
            Attempt::Started(p) => Some(p),
            Attempt::Skipped | Attempt::Deferred => None,
        }
    }
}

/// The callback paths of NFSv4.0 clients. See the module documentation.
#[derive(Debug)]
pub struct Paths40<C> {
    paths: HashMap<ClientId, Path<C>>,
    limiter: ConnectLimiter,
    next_gen: u64,
    counts: PathCounts,
    /// When a path not tried was last logged at info, and how many such lines were left
    /// out since (P1: one a second at most).
    last_info: Option<Time>,
    unlogged: u64,
    /// Paths reported not tried (once per state change), and the lines at info among
    /// them (the unit tests count them).
    #[cfg(test)]
    reports: u64,
    #[cfg(test)]
    info_lines: u64,
}

impl<C> Default for Paths40<C> {
    fn default() -> Self {
        Self::new(ConnectLimiter::default())
    }
}

impl<C> Paths40<C> {
    /// No paths; connection attempts limited by `limiter`.
    pub fn new(limiter: ConnectLimiter) -> Self {
        Self {
            paths: HashMap::new(),
            limiter,
            next_gen: 1,
            counts: PathCounts::default(),
            last_info: None,
            unlogged: 0,
            #[cfg(test)]
            reports: 0,
            #[cfg(test)]
            info_lines: 0,
        }
    }

    /// What the paths did so far (P1).
    pub fn counts(&self) -> PathCounts {
        self.counts
    }

    /// Paths known (one per confirmed 4.0 client).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether `client` has a path (it is a confirmed 4.0 client).
    pub fn knows(&self, client: ClientId) -> bool {
        self.paths.contains_key(&client)
    }

    /// The state of `client`'s path.
    pub fn state(&self, client: ClientId) -> Option<PathState> {
        self.paths.get(&client).map(|p| p.state)
    }

    /// Whether `client`'s path answered (P2): the delegation policy's "verified".
    pub fn verified(&self, client: ClientId) -> bool {
        self.state(client) == Some(PathState::Up)
    }

    /// Whether `client`'s path is down, or not known to be up again (being probed) (P4:
    /// RENEW's `CB_PATH_DOWN`, to a client holding delegations, so whose path was up).
    pub fn is_down(&self, client: ClientId) -> bool {
        matches!(
            self.state(client),
            Some(PathState::Down | PathState::Probing)
        )
    }

    /// `client` was confirmed with callback `cb`, its calls coming from `peer` on
    /// connection `via` (P1): the probe to run, if any.
    pub fn confirmed(
        &mut self,
        client: ClientId,
        cb: Callback40,
        peer: IpAddr,
        via: u64,
        now: Time,
    ) -> Option<Probe> {
        if let Some(p) = self.paths.get_mut(&client) {
            p.via = via;
            if p.cb == cb && p.peer == peer {
                // The same callback confirmed again: a path up or being probed stays, a
                // refused target stays refused (nothing about it changed), a path down is
                // probed again within the backoff.
                if p.state != PathState::Down || p.refused || now.since(p.tried) < RETRY_MS {
                    return None;
                }
                return self.try_path(client, now).probe();
            }
        }
        self.paths.insert(
            client,
            Path {
                cb,
                peer,
                via,
                state: PathState::Down,
                conn: None,
                gen: 0,
                tried: now,
                lost: false,
                refused: false,
                reported: None,
            },
        );
        self.try_path(client, now).probe()
    }

    /// `client`'s calls now come on connection `via` (a later probe connects from there).
    pub fn seen_on(&mut self, client: ClientId, via: u64) {
        if let Some(p) = self.paths.get_mut(&client) {
            p.via = via;
        }
    }

    /// Tries `client`'s path at `now`: starts a probe unless the target was refused or the
    /// limiter refuses; a reason not reported yet for this path is logged.
    fn try_path(&mut self, client: ClientId, now: Time) -> Attempt {
        let Some(p) = self.paths.get_mut(&client).filter(|p| !p.refused) else {
            return Attempt::Skipped;
        };
        let gen = self.next_gen;
        self.next_gen += 1;
        p.gen = gen;
        p.conn = None;
        p.tried = now;
        p.lost = false;
        let target = parse_uaddr(&p.cb.netid, &p.cb.uaddr)
            .and_then(|t| check_target(t, p.peer).map(|()| t))
            .and_then(|t| {
                self.limiter
                    .try_take(Duration::from_millis(now.0))
                    .map(|()| t)
            });
        match target {
            Ok(target) => {
                self.counts.probes += 1;
                p.state = PathState::Probing;
                Attempt::Started(Probe {
                    client,
                    gen,
                    target,
                    program: p.cb.program,
                    via: p.via,
                })
            }
            Err(e) => {
                p.state = PathState::Down;
                let deferred = e == TargetError::RateLimited;
                p.refused = !deferred;
                if deferred {
                    self.counts.deferred += 1;
                } else {
                    self.counts.refused += 1;
                }
                if p.reported.as_ref() != Some(&e) {
                    // At info (a target refused), one line a second server-wide at most:
                    // a client making clients cannot flood the log; the others counted.
                    let info = !deferred && !no_callback(&e);
                    if !info {
                        log_not_tried(client, p.peer, &e, None);
                    } else if self.last_info.is_none_or(|t| now.since(t) >= RETRY_MS) {
                        log_not_tried(client, p.peer, &e, Some(self.unlogged));
                        self.last_info = Some(now);
                        self.unlogged = 0;
                        #[cfg(test)]
                        {
                            self.info_lines += 1;
                        }
                    } else {
                        self.unlogged += 1;
                    }
                    #[cfg(test)]
                    {
                        self.reports += 1;
                    }
                    p.reported = Some(e);
                }
                if deferred {
                    Attempt::Deferred
                } else {
                    Attempt::Skipped
                }
            }
        }
    }

    /// The probes due at `now` (P1): paths down whose last probe started `every_ms` ago
    /// or more are probed again (a client refused by the limiter, or whose service was
    /// away, gets its path back without a new SETCLIENTID), within the limiter.
    /// The longest waiting first; the pass stops at the limiter's first refusal (P1
    /// backoff).
    pub fn reprobe_due(&mut self, now: Time, every_ms: u64) -> Vec<Probe> {
        let mut due: Vec<(Time, ClientId)> = self
            .paths
            .iter()
            .filter(|(_, p)| {
                p.state == PathState::Down && !p.refused && now.since(p.tried) >= every_ms
            })
            .map(|(c, p)| (p.tried, *c))
            .collect();
        due.sort_unstable();
        let mut probes = Vec::new();
        for (_, c) in due {
            match self.try_path(c, now) {
                Attempt::Started(p) => probes.push(p),
                Attempt::Skipped => {}
                Attempt::Deferred => break,
            }
        }
        probes
    }

    /// Probe `gen` of `client` ended: `conn` is the connection that answered CB_NULL, or
    /// `None` (P2). Returns the connection when it is not wanted (a stale probe), for the
    /// caller to drop outside its locks.
    pub fn probe_done(&mut self, client: ClientId, gen: u64, conn: Option<C>) -> Option<C> {
        let Some(p) = self.paths.get_mut(&client).filter(|p| p.gen == gen) else {
            return conn;
        };
        if p.state != PathState::Probing {
            return conn;
        }
        match conn {
            Some(c) => {
                p.state = PathState::Up;
                p.conn = Some(c);
                p.reported = None;
            }
            None => p.state = PathState::Down,
        }
        None
    }

    /// Where a recall to `client` goes at `now` (P3); `open` tells whether a connection is
    /// still open.
    pub fn route(
        &mut self,
        client: ClientId,
        now: Time,
        open: impl Fn(&C) -> bool,
    ) -> Route<'_, C> {
        let Some(p) = self.paths.get_mut(&client) else {
            return Route::Unknown;
        };
        // A path up that was lost (its connection found closed here, or a callback lost) is
        // probed again at once; a path down already, once per backoff (P1), however many
        // recalls ask.
        if p.state == PathState::Up && !p.conn.as_ref().is_some_and(&open) {
            p.state = PathState::Down;
            p.conn = None;
            p.lost = true;
        }
        match p.state {
            PathState::Probing => Route::Down(None),
            PathState::Down if !p.lost && now.since(p.tried) < RETRY_MS => Route::Down(None),
            PathState::Down => Route::Down(self.try_path(client, now).probe()),
            PathState::Up => match self.paths.get(&client) {
                Some(Path {
                    conn: Some(conn),
                    gen,
                    cb,
                    ..
                }) => Route::Send {
                    gen: *gen,
                    conn,
                    program: cb.program,
                    ident: cb.ident,
                },
                _ => Route::Down(None),
            },
        }
    }

    /// A callback on path `gen` of `client` ended (P4): `Some(true)` the client answered,
    /// `Some(false)` the path failed (its connection dropped), `None` nothing learnt.
    /// Returns the connection dropped, for the caller to drop outside its locks.
    pub fn call_done(&mut self, client: ClientId, gen: u64, answered: Option<bool>) -> Option<C> {
        let p = self.paths.get_mut(&client).filter(|p| p.gen == gen)?;
        match answered {
            Some(true) if p.state == PathState::Up => None,
            Some(false) if p.state == PathState::Up => {
                p.state = PathState::Down;
                p.lost = true;
                p.conn.take()
            }
            _ => None,
        }
    }

    /// Keeps the paths of the clients `alive` says are still there (P5); returns the
    /// connections of the others, for the caller to drop outside its locks.
    pub fn retain(&mut self, alive: impl Fn(ClientId) -> bool) -> Vec<C> {
        let gone: Vec<ClientId> = self.paths.keys().filter(|c| !alive(**c)).copied().collect();
        gone.into_iter().filter_map(|c| self.remove(c)).collect()
    }

    /// Forgets `client`'s path (P5); returns its connection.
    pub fn remove(&mut self, client: ClientId) -> Option<C> {
        self.paths.remove(&client).and_then(|p| p.conn)
    }
}

/// Whether `e` refused an unspecified address (`0.0.0.0`, `::`): the way clients (pynfs
/// among them) say they take no callbacks; not worth a line at info.
fn no_callback(e: &TargetError) -> bool {
    matches!(e, TargetError::Foreign { target, .. } if target.ip().is_unspecified())
}

/// Why a path is down without a try (P1: once per state change; the client's mistake or
/// the server's own limit, so never at error). `unlogged`: at info, with how many such
/// lines were left out since the last one (one a second at most).
fn log_not_tried(client: ClientId, peer: IpAddr, e: &TargetError, unlogged: Option<u64>) {
    match unlogged {
        Some(n) => {
            tracing::info!(client = client.0, %peer, error = %e, unlogged_since = n, "NFSv4.0 callback path not tried: down")
        }
        None => {
            tracing::debug!(client = client.0, %peer, error = %e, "NFSv4.0 callback path not tried")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cb(port: u16) -> Callback40 {
        Callback40 {
            program: 0x4000_0001,
            netid: "tcp".into(),
            uaddr: format!("10.0.0.5.{}.{}", port >> 8, port & 0xff),
            ident: 7,
        }
    }

    const ME: ClientId = ClientId(1);
    fn peer() -> IpAddr {
        "10.0.0.5".parse().unwrap()
    }

    /// Connections are numbers here; "open" unless listed closed.
    fn paths() -> Paths40<u32> {
        Paths40::new(ConnectLimiter::new(100, Duration::from_millis(1)))
    }

    #[test]
    fn p1_a_confirmed_client_is_probed_once_and_again_after_a_callback_update() {
        let mut p = paths();
        let pr = p.confirmed(ME, cb(1000), peer(), 3, Time(0)).unwrap();
        assert_eq!(pr.target, "10.0.0.5:1000".parse().unwrap());
        assert_eq!((pr.program, pr.via, pr.client), (0x4000_0001, 3, ME));
        assert_eq!(p.state(ME), Some(PathState::Probing));
        assert!(!p.verified(ME), "not before CB_NULL answered");
        // A retransmitted confirm while probing, then once up: nothing new.
        assert_eq!(p.confirmed(ME, cb(1000), peer(), 4, Time(1)), None);
        assert_eq!(p.probe_done(ME, pr.gen, Some(11)), None);
        assert!(p.verified(ME));
        assert_eq!(p.confirmed(ME, cb(1000), peer(), 4, Time(2)), None);
        assert!(p.verified(ME));
        // A callback update: the new address is probed, the old connection let go.
        let up = p.confirmed(ME, cb(2000), peer(), 4, Time(3)).unwrap();
        assert_eq!(up.target.port(), 2000);
        assert_eq!(up.via, 4);
        assert!(!p.verified(ME));
        // The old probe's late answer is ignored; its connection handed back.
        assert_eq!(p.probe_done(ME, pr.gen, Some(12)), Some(12));
        assert_eq!(p.probe_done(ME, up.gen, None), None);
        assert!(p.is_down(ME));
        // Confirmed again while down: probed again, once the backoff passed.
        assert_eq!(p.confirmed(ME, cb(2000), peer(), 4, Time(4)), None);
        assert!(p.confirmed(ME, cb(2000), peer(), 4, Time(1_003)).is_some());
    }

    #[test]
    fn p1_a_foreign_or_malformed_target_or_the_limiter_is_down_without_a_try() {
        let mut p = paths();
        let mut other = cb(1000);
        other.uaddr = "10.0.0.6.3.232".into();
        assert_eq!(p.confirmed(ME, other, peer(), 1, Time(0)), None);
        assert!(p.is_down(ME));
        let mut udp = cb(1000);
        udp.netid = "udp".into();
        assert_eq!(p.confirmed(ClientId(2), udp, peer(), 1, Time(0)), None);
        assert!(p.is_down(ClientId(2)));
        let mut bad = cb(1000);
        bad.uaddr = "nonsense".into();
        assert_eq!(p.confirmed(ClientId(3), bad, peer(), 1, Time(0)), None);
        // Such a target is not tried again (a recall, the periodic probe), until the client
        // names another.
        assert!(matches!(p.route(ME, Time(1), |_| true), Route::Down(None)));
        assert!(p.reprobe_due(Time(1_000_000), 1).is_empty());
        assert!(p.confirmed(ME, cb(1000), peer(), 1, Time(2)).is_some());
        // The server-wide bucket: one attempt, then one a second.
        let mut p: Paths40<u32> = Paths40::new(ConnectLimiter::new(1, Duration::from_secs(1)));
        assert!(p
            .confirmed(ClientId(1), cb(1), peer(), 1, Time(0))
            .is_some());
        assert_eq!(p.confirmed(ClientId(2), cb(1), peer(), 1, Time(10)), None);
        assert!(p.is_down(ClientId(2)));
        assert!(p
            .confirmed(ClientId(2), cb(1), peer(), 1, Time(1_010))
            .is_some());
        // A path left down is probed again once `every` passed since its last try.
        let mut p: Paths40<u32> = Paths40::new(ConnectLimiter::new(1, Duration::from_secs(1)));
        assert!(p
            .confirmed(ClientId(1), cb(1), peer(), 1, Time(0))
            .is_some());
        assert_eq!(p.confirmed(ClientId(2), cb(1), peer(), 1, Time(0)), None);
        assert!(p.reprobe_due(Time(9_999), 10_000).is_empty());
        let again = p.reprobe_due(Time(10_000), 10_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].client, ClientId(2));
        assert!(
            p.reprobe_due(Time(10_001), 10_000).is_empty(),
            "probing now"
        );
        assert_eq!(p.probe_done(ClientId(2), again[0].gen, None), None);
        assert!(p.reprobe_due(Time(19_999), 10_000).is_empty());
        assert_eq!(p.reprobe_due(Time(20_000), 10_000).len(), 1);
    }

    /// Connections are numbers; the limiter gives `burst` at once, then one per 10 s.
    fn slow(burst: u32) -> Paths40<u32> {
        Paths40::new(ConnectLimiter::new(burst, Duration::from_secs(10)))
    }

    #[test]
    fn p1_backoff_recalls_to_a_deferred_path_try_it_once_per_backoff_and_report_it_once() {
        let mut p = slow(1);
        assert!(p
            .confirmed(ClientId(1), cb(1), peer(), 1, Time(0))
            .is_some());
        // The limiter's one token is gone: the second client's path is deferred, said once.
        let two = ClientId(2);
        assert_eq!(p.confirmed(two, cb(1), peer(), 1, Time(0)), None);
        assert_eq!((p.counts().deferred, p.reports), (1, 1));
        // 69 recalls of its delegations in one laundromat pass, and their retries within the
        // backoff: no try, no line.
        for i in 0..69 {
            assert!(matches!(
                p.route(two, Time(10 + i), |_| true),
                Route::Down(None)
            ));
        }
        assert_eq!((p.counts().deferred, p.reports), (1, 1));
        // A backoff later: tried once more (the limiter again), not reported again.
        for t in [1_000, 1_001, 1_500] {
            assert!(matches!(p.route(two, Time(t), |_| true), Route::Down(None)));
        }
        assert_eq!((p.counts().deferred, p.reports), (2, 1));
        // The limiter has a token: probed; the probe fails; the next try waits a backoff.
        let pr = match p.route(two, Time(10_000), |_| true) {
            Route::Down(Some(pr)) => pr,
            r => panic!("{r:?}"),
        };
        assert_eq!(p.probe_done(two, pr.gen, None), None);
        assert!(matches!(
            p.route(two, Time(10_999), |_| true),
            Route::Down(None)
        ));
        assert!(matches!(
            p.route(two, Time(11_000), |_| true),
            Route::Down(None)
        ));
        assert_eq!(
            p.counts(),
            PathCounts {
                probes: 2,
                refused: 0,
                deferred: 3
            }
        );
        assert_eq!(p.reports, 1, "still the same state: not said again");
        // Up, then its connection found closed: tried at once, and a deferral now is news.
        let pr = match p.route(two, Time(20_000), |_| true) {
            Route::Down(Some(pr)) => pr,
            r => panic!("{r:?}"),
        };
        p.probe_done(two, pr.gen, Some(5));
        assert!(matches!(
            p.route(two, Time(20_001), |c| *c != 5),
            Route::Down(None)
        ));
        assert_eq!((p.counts().deferred, p.reports), (4, 2));
    }

    #[test]
    fn p1_backoff_a_refused_target_confirmed_again_is_neither_tried_nor_reported_again() {
        let mut foreign = cb(1000);
        foreign.uaddr = "0.0.0.0.0.0".into();
        let mut p = paths();
        for t in 0..20 {
            assert_eq!(
                p.confirmed(ME, foreign.clone(), peer(), 1, Time(t * 700)),
                None
            );
            assert!(p.reprobe_due(Time(t * 700 + 1), 1).is_empty());
            assert!(matches!(
                p.route(ME, Time(t * 700 + 2), |_| true),
                Route::Down(None)
            ));
        }
        assert_eq!(
            p.counts(),
            PathCounts {
                probes: 0,
                refused: 1,
                deferred: 0
            }
        );
        assert_eq!(p.reports, 1);
        // Another target named: tried, and its refusal said.
        let mut other = foreign.clone();
        other.uaddr = "10.0.0.6.3.232".into();
        assert_eq!(p.confirmed(ME, other, peer(), 1, Time(20_000)), None);
        assert_eq!((p.counts().refused, p.reports), (2, 2));
    }

    #[test]
    fn p1_backoff_refused_targets_are_one_info_line_a_second_and_no_callback_none() {
        // pynfs' clients name 0.0.0.0.0.0 (no callbacks), a thousand of them in seconds.
        let mut p = paths();
        let mut none = cb(1000);
        none.uaddr = "0.0.0.0.0.0".into();
        let mut foreign = cb(1000);
        foreign.uaddr = "10.0.0.6.3.232".into();
        for i in 0..200 {
            assert_eq!(
                p.confirmed(ClientId(i), none.clone(), peer(), 1, Time(i)),
                None
            );
        }
        assert_eq!((p.counts().refused, p.reports, p.info_lines), (200, 200, 0));
        // Foreign targets: one line, then none within the second, one after it.
        for i in 200..300 {
            p.confirmed(ClientId(i), foreign.clone(), peer(), 1, Time(1_000 + i));
        }
        assert_eq!((p.reports, p.info_lines, p.unlogged), (300, 1, 99));
        p.confirmed(ClientId(300), foreign, peer(), 1, Time(2_200));
        assert_eq!((p.info_lines, p.unlogged), (2, 0));
    }

    #[test]
    fn p1_backoff_the_laundromat_probes_a_crowd_at_the_limiters_rate() {
        let mut p = slow(3);
        for i in 1..=3 {
            let pr = p.confirmed(ClientId(i), cb(1), peer(), 1, Time(0)).unwrap();
            p.probe_done(ClientId(i), pr.gen, None);
        }
        for i in 4..=10 {
            assert_eq!(p.confirmed(ClientId(i), cb(1), peer(), 1, Time(0)), None);
        }
        assert_eq!((p.counts().deferred, p.reports), (7, 7), "one each: news");
        // A lease later all ten are due; the limiter has one token: one probe, one deferral
        // (news for a path whose probe had failed), and the pass stops there.
        let first = p.reprobe_due(Time(15_000), 15_000);
        assert_eq!(first.len(), 1);
        assert_eq!((p.counts().deferred, p.reports), (8, 8));
        // Passes a second apart: one deferral each until the limiter refills.
        for t in 1..=4 {
            assert!(p.reprobe_due(Time(15_000 + t * 1_000), 15_000).is_empty());
        }
        assert_eq!((p.counts().deferred, p.reports), (12, 9));
        // The limiter's next token goes to the path waiting longest, not the one deferred.
        let next = p.reprobe_due(Time(25_000), 15_000);
        assert_eq!(next.len(), 1);
        assert_eq!(
            (first[0].client, next[0].client),
            (ClientId(1), ClientId(7))
        );
        assert_eq!(p.reports, 9);
    }

    #[test]
    fn p3_recalls_go_on_an_open_connection_and_a_closed_one_is_probed_again() {
        let mut p = paths();
        assert!(matches!(p.route(ME, Time(0), |_| true), Route::Unknown));
        let pr = p.confirmed(ME, cb(1000), peer(), 3, Time(0)).unwrap();
        assert!(
            matches!(p.route(ME, Time(0), |_| true), Route::Down(None)),
            "probing"
        );
        p.probe_done(ME, pr.gen, Some(11));
        match p.route(ME, Time(1), |_| true) {
            Route::Send {
                gen,
                conn,
                program,
                ident,
            } => assert_eq!((gen, *conn, program, ident), (pr.gen, 11, 0x4000_0001, 7)),
            r => panic!("{r:?}"),
        }
        // The client closed the connection: down, and a new probe from its last connection.
        p.seen_on(ME, 9);
        let again = match p.route(ME, Time(2), |c| *c != 11) {
            Route::Down(Some(pr)) => pr,
            r => panic!("{r:?}"),
        };
        assert_eq!(again.via, 9);
        assert!(
            matches!(p.route(ME, Time(3), |_| true), Route::Down(None)),
            "one at a time"
        );
        p.probe_done(ME, again.gen, Some(12));
        assert!(matches!(
            p.route(ME, Time(4), |_| true),
            Route::Send { conn: 12, .. }
        ));
    }

    #[test]
    fn p4_a_lost_callback_is_path_down_until_a_probe_answers() {
        let mut p = paths();
        let pr = p.confirmed(ME, cb(1000), peer(), 3, Time(0)).unwrap();
        p.probe_done(ME, pr.gen, Some(11));
        assert_eq!(p.call_done(ME, pr.gen, Some(true)), None);
        assert!(p.verified(ME));
        assert_eq!(p.call_done(ME, pr.gen, None), None);
        assert!(p.verified(ME));
        assert_eq!(p.call_done(ME, pr.gen, Some(false)), Some(11), "dropped");
        assert!(p.is_down(ME) && !p.verified(ME));
        // An answer on the old path changes nothing; the next recall probes.
        assert_eq!(p.call_done(ME, pr.gen, Some(true)), None);
        assert!(p.is_down(ME));
        let next = match p.route(ME, Time(1), |_| true) {
            Route::Down(Some(pr)) => pr,
            r => panic!("{r:?}"),
        };
        assert!(p.is_down(ME), "still down while probed again");
        assert_eq!(p.call_done(ME, pr.gen, Some(false)), None, "stale");
        p.probe_done(ME, next.gen, Some(13));
        assert!(p.verified(ME));
    }

    #[test]
    fn p5_a_client_gone_loses_its_path_and_connection() {
        let mut p = paths();
        for i in 1..=3 {
            let pr = p
                .confirmed(ClientId(i), cb(1000), peer(), 1, Time(0))
                .unwrap();
            p.probe_done(ClientId(i), pr.gen, Some(i as u32 * 10));
        }
        let mut gone = p.retain(|c| c != ClientId(2));
        gone.sort_unstable();
        assert_eq!(gone, vec![20]);
        assert_eq!(p.len(), 2);
        assert!(!p.knows(ClientId(2)));
        assert_eq!(p.remove(ClientId(3)), Some(30));
        assert_eq!(p.remove(ClientId(3)), None);
        // The same client confirmed twice keeps one path.
        p.confirmed(ClientId(1), cb(1001), peer(), 1, Time(0));
        assert_eq!(p.len(), 1);
    }
}
