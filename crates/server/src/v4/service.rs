//! The NFSv4 state a server holds, over the I/O-free cores of [`super::state`]: the client
//! and session table, the locking table, the clock, the stable client records, and what
//! is known of each session's back channel.
//!
//! - **Time**: [`V4State::now`] is the one place the clock is read (milliseconds since the
//!   state was made); every core call gets it as an input.
//! - **Lock order**: the locking table before the client table, everywhere (EXCHANGE_ID and
//!   DESTROY_CLIENTID ask the locking table whether a client holds state while the client
//!   table is locked; the courtesy hook is called with the locking table held).
//! - **Stable records** are written while the client table's lock is still held after
//!   taking its changes (through the records' own lock), so two changes to one record are
//!   written in the order they were made.
//! - **The laundromat** ([`V4State::tick`]): the runner calls it about once a second; it
//!   expires leases, turns clients courtesy, purges what must go, ends grace.
//! - **The back channel**: a session created (or a connection bound) for callbacks is
//!   probed with CB_NULL over the transport's call-on-connection; SEQUENCE reports
//!   `SEQ4_STATUS_CB_PATH_DOWN` only when the client asked for a back channel and it has
//!   no connection for it, or the probe failed.
use super::callback::{CallbackCounters, RecallOrder, RecallOutcome, CB_SLOTS_CAP};
use super::compound::{CbGetattr, StateHooks};
use super::outside::{WatchStats, Watcher};
use super::state::backchannel::BackSlots;
use super::state::callback40::Paths40;
use super::state::delegations::{
    Access, Caller, CbGetattrOrder, DelegLimits, DelegStats, OutsideChange,
};
use super::state::ids::{ClientId, SessionId, Stateid, Time};
use super::state::locking::{Limits as LockLimits, Locking, LockingError};
use super::state::sessions::api::{CallbackHealth, ChannelAttrs, Config, SessionStats};
use super::state::sessions::clients::ClientTable;
use crate::state::ClientRecords;
use parking_lot::Mutex;
use rnfs_proto::rpc::OpaqueAuth;
use rnfs_rpc::transport::outgoing::CallbackConn;
use rnfs_rpc::transport::{ConnId, ConnStats};
use rnfs_vfs::{FileKey, Kept};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the NFSv4 service is set up.
#[derive(Debug, Clone)]
pub struct V4Options {
    /// Minor versions served, lowest and highest (1 and 2: NFSv4.1 and 4.2).
    pub minors: (u32, u32),
    /// The lease, in seconds (90 by default, as knfsd and Ganesha).
    pub lease_secs: u32,
    /// Where the stable client records are kept (the state directory); `None`: nowhere,
    /// so no grace after a restart.
    pub state_dir: Option<PathBuf>,
    /// What clients may make the server hold.
    pub bounds: V4Bounds,
    /// The NFSv4 owner domain (knfsd's and nfsidmap's `Domain`): with one, `owner` and
    /// `owner_group` strings `name@domain` are accepted and mapped through the system's
    /// user and group database, besides numeric strings (see [`super::owner`]). `None`:
    /// numeric strings only.
    pub owner_domain: Option<String>,
    /// With an owner domain: replies carry `name@domain` for ids that have a name
    /// (numeric strings otherwise, and always without a domain).
    pub owner_names: bool,
    /// Whether NFSv4.1 clients may be granted delegations (on in `rnfs serve` unless
    /// `--no-delegations`). Off in this library default, which tests build on: the Linux client caches byte-range locks under
    /// a delegation, so two mounts of one client (`nosharecache`) no longer see each
    /// other's locks, and it keeps a removed file's open (and the file's space) until the
    /// delegation goes.
    pub delegations: bool,
    /// How long, in milliseconds, an NFSv3 call that must wait for a delegation's return
    /// is held on the blocking pool before it is answered JUKEBOX (0: answered at once).
    /// The Linux NFSv3 client retries a JUKEBOX only after 5 s, while a recall usually
    /// comes back within a few hundred milliseconds: held, the call goes through as soon
    /// as the delegation is returned. At most [`MAX_HELD`] calls are held at once.
    pub conflict_hold_ms: u64,
}

/// Most NFSv3 calls held at once waiting for a delegation's return (each holds a thread of
/// the blocking pool); beyond, they are answered JUKEBOX at once.
pub const MAX_HELD: usize = 32;

/// One of the [`MAX_HELD`] places, given back when dropped ([`V4State::hold_thread`]).
struct HeldThread<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for HeldThread<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
/// The longest another client's GETATTR waits for the CB_GETATTR reply of a write
/// delegation's holder before the delegation is treated as a conflict (recalled, the
/// GETATTR answered NFS4ERR_DELAY). The Linux client answers from memory, at once.
pub const CB_GETATTR_WAIT: Duration = Duration::from_millis(500);

/// What NFSv4 clients may make the server hold (`rnfs serve --v4-limit NAME=N`): the
/// client table's bounds (C7 of [`ClientTable`]) and the locking table's [`LockLimits`].
/// Sessions in total are bounded by the reply-cache budget, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Bounds {
    /// Client records, confirmed and unconfirmed.
    pub clients: usize,
    /// Unconfirmed client records (at the bound the oldest is dropped).
    pub unconfirmed: usize,
    /// Sessions per client.
    pub sessions_per_client: usize,
    /// Connections bound to one session.
    pub conns_per_session: usize,
    /// Opens, locks, owners and ranges, per client and in all.
    pub locking: LockLimits,
    /// Delegations in all (`None`: [`DelegLimits::from_ram`]'s); at the bound none is
    /// granted and holders are asked to return some with CB_RECALL_ANY.
    pub delegations: Option<usize>,
    /// Delegations per client (`None`: [`DelegLimits::from_ram`]'s).
    pub delegations_per_client: Option<usize>,
}

impl Default for V4Bounds {
    fn default() -> Self {
        let c = Config::default();
        Self {
            clients: c.max_clients,
            unconfirmed: c.max_unconfirmed,
            sessions_per_client: c.max_sessions_per_client,
            conns_per_session: c.max_conns_per_session,
            locking: LockLimits::default(),
            delegations: None,
            delegations_per_client: None,
        }
    }
}

impl V4Bounds {
    /// The names [`V4Bounds::set`] takes, in the order of the documentation.
    pub const NAMES: [&'static str; 12] = [
        "clients",
        "unconfirmed",
        "sessions-per-client",
        "conns-per-session",
        "states-per-client",
        "owners-per-client",
        "ranges-per-client",
        "states",
        "owners",
        "ranges",
        "delegations",
        "delegations-per-client",
    ];

    /// Sets bound `name` (one of [`V4Bounds::NAMES`]) to `n` (at least 1).
    pub fn set(&mut self, name: &str, n: usize) -> Result<(), String> {
        if n == 0 {
            return Err(format!("{name}: a bound of 0 would refuse every client"));
        }
        match name {
            "delegations" => {
                self.delegations = Some(n);
                return Ok(());
            }
            "delegations-per-client" => {
                self.delegations_per_client = Some(n);
                return Ok(());
            }
            _ => {}
        }
        let l = &mut self.locking;
        let field = match name {
            "clients" => &mut self.clients,
            "unconfirmed" => &mut self.unconfirmed,
            "sessions-per-client" => &mut self.sessions_per_client,
            "conns-per-session" => &mut self.conns_per_session,
            "states-per-client" => &mut l.states_per_client,
            "owners-per-client" => &mut l.owners_per_client,
            "ranges-per-client" => &mut l.ranges_per_client,
            "states" => &mut l.states,
            "owners" => &mut l.owners,
            "ranges" => &mut l.ranges,
            _ => {
                return Err(format!(
                    "unknown NFSv4 bound {name:?}: one of {}",
                    Self::NAMES.join(", ")
                ))
            }
        };
        *field = n;
        Ok(())
    }
}

impl Default for V4Options {
    fn default() -> Self {
        Self {
            minors: (1, 2),
            lease_secs: 90,
            state_dir: None,
            bounds: V4Bounds::default(),
            owner_domain: None,
            owner_names: false,
            delegations: false,
            conflict_hold_ms: 2000,
        }
    }
}

/// The NFSv4.1 callback program's NULL procedure is sent as version 1 (RFC 8881 20).
const CB_VERSION: u32 = 1;
/// How long a CB_NULL probe waits for its reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What is known of one session's back channel.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    /// The fore channel's attributes, as negotiated.
    pub(crate) fore: ChannelAttrs,
    /// The client asked for a back channel (CREATE_SESSION4_FLAG_CONN_BACK_CHAN, or a
    /// connection bound for it later).
    pub(crate) wants_back: bool,
    /// `csa_cb_program`.
    pub(crate) cb_program: u32,
    /// The credential callbacks use (AUTH_NONE or AUTH_SYS from `csa_sec_parms`).
    pub(crate) cb_cred: OpaqueAuth,
    /// The last probe's (or callback's) outcome: `None` before any answered.
    pub(crate) probe_ok: Option<bool>,
    /// The client that owns the session.
    pub(crate) client: ClientId,
    /// The minor version the session was created with (CB_COMPOUND's `minorversion`).
    pub(crate) minor: u32,
    /// The back channel's slots (the server as requester).
    pub(crate) back: BackSlots,
    /// Recalls waiting for a slot, with how often each was sent already (bounded by
    /// [`super::callback::MAX_QUEUED_PER_SESSION`]).
    pub(crate) queue: VecDeque<(RecallOrder, u8)>,
    /// Someone is sending this session's queue; `again`: look once more before stopping.
    pub(crate) pumping: bool,
    pub(crate) again: bool,
    /// The back-channel connection that answered last (probe or callback): callbacks go
    /// there first, not to a connection whose calls time out.
    pub(crate) good_conn: Option<ConnId>,
}

impl SessionInfo {
    /// What a callback's reply on `conn` says of the path (`None`: nothing): the session's
    /// path is up or down, and `conn` is the one to use first, or no longer.
    pub(crate) fn note_path(&mut self, conn: ConnId, path_ok: Option<bool>) {
        let Some(ok) = path_ok else { return };
        self.probe_ok = Some(ok);
        if ok {
            self.good_conn = Some(conn);
        } else if self.good_conn == Some(conn) {
            self.good_conn = None;
        }
    }

    /// A session just created, with a back channel of `back_slots` slots.
    pub(crate) fn new(
        client: ClientId,
        minor: u32,
        fore: ChannelAttrs,
        back_slots: u32,
        wants_back: bool,
        cb_program: u32,
        cb_cred: OpaqueAuth,
    ) -> Self {
        Self {
            fore,
            wants_back,
            cb_program,
            cb_cred,
            probe_ok: None,
            client,
            minor,
            back: BackSlots::new(back_slots, CB_SLOTS_CAP),
            queue: VecDeque::new(),
            pumping: false,
            again: false,
            good_conn: None,
        }
    }
}

/// The NFSv4 state of a server. See the module documentation.
pub struct V4State {
    pub(crate) opts: V4Options,
    pub(crate) clients: Mutex<ClientTable>,
    pub(crate) locking: Mutex<Locking>,
    records: Option<Mutex<ClientRecords>>,
    pub(crate) sessions: Mutex<HashMap<SessionId, SessionInfo>>,
    pub(crate) conn_stats: Arc<ConnStats>,
    started: Instant,
    /// Operations per COMPOUND and the largest reply, before a SEQUENCE names a session.
    pub(crate) limits: (u32, u32),
    /// Counters of the callbacks sent.
    pub(crate) cb: CallbackCounters,
    /// Recall outcomes not taken yet (bounded by [`super::callback::MAX_OUTCOMES`]).
    pub(crate) recall_outcomes: Mutex<VecDeque<(RecallOrder, RecallOutcome)>>,
    /// CB_RECALL_ANY outcomes not taken yet (one order in flight per client at most).
    pub(crate) recall_any_outcomes: Mutex<Vec<(ClientId, RecallOutcome)>>,
    /// How long a callback waits for its reply, in milliseconds.
    pub(crate) cb_timeout_ms: AtomicU64,
    /// The backends' holds on open files, by locking key (then export), so that a file
    /// removed while open stays usable ([`StateHooks::keep_unlinked`]). At most one per
    /// file with state in the locking table and export, which bounds them; let go at the
    /// file's last CLOSE, or by the laundromat once no state is held on it.
    kept: Mutex<HashMap<FileKey, Vec<(u16, Kept)>>>,
    /// Callers held now on the blocking pool (NFSv3 calls waiting for a delegation's
    /// return, GETATTRs waiting for a CB_GETATTR reply; at most [`MAX_HELD`]).
    held: std::sync::atomic::AtomicUsize,
    /// This state, for the hooks that send recalls (set once, just after creation).
    me: std::sync::OnceLock<std::sync::Weak<V4State>>,
    /// The callback paths of NFSv4.0 clients, each with its connection (one per client;
    /// see [`super::callback40`]). Locked after the locking and client tables.
    pub(crate) cb40: Mutex<Paths40<CallbackConn>>,
    /// The server owner's major id EXCHANGE_ID answers (see [`owner_major`]).
    pub(crate) owner_major: Vec<u8>,
    /// The watches of delegated files for changes made beside NFS (with delegations on,
    /// when inotify is available; set once, just after creation). Locked after the
    /// locking table.
    outside: std::sync::OnceLock<Arc<Watcher>>,
    /// Asynchronous COPYs, running and finished ([`super::offload`]).
    pub(crate) offloads: super::offload::Offloads,
}

/// The name of the state directory's file that keeps [`owner_major`].
const OWNER_FILE: &str = "server-owner";

/// The server owner's major id (RFC 8881 2.10.5): one per server, so that a client never
/// takes two rnfs servers for trunks of one (the Linux client merges two mounts whose
/// servers give the same major id and the same client id, and rnfs's client ids come from
/// the start time in seconds: two servers started in the same second would be merged).
/// Random, kept in the state directory so that a restart is the same server; a fresh one
/// per process without a state directory (no restart is recognised then anyway). The
/// scope stays "rnfs": a client reclaims only within one scope.
fn owner_major(state_dir: Option<&std::path::Path>) -> Vec<u8> {
    let fresh = || {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            // Only before Linux 3.17: the time then, which still tells processes apart.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b = (t ^ u64::from(std::process::id())).to_be_bytes();
        }
        format!("rnfs-{}", u64::from_be_bytes(b))
    };
    let Some(dir) = state_dir else {
        return fresh().into_bytes();
    };
    let path = dir.join(OWNER_FILE);
    // At most a line of ours: anything else (too long, not ours) is replaced.
    let kept = std::fs::read(&path).ok().filter(|b| {
        b.len() <= 64 && b.starts_with(b"rnfs-") && b[5..].iter().all(u8::is_ascii_digit)
    });
    if let Some(b) = kept {
        return b;
    }
    let id = fresh();
    let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
    if let Err(e) = std::fs::write(&tmp, &id).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::warn!(file = %path.display(), error = %e, "server owner not kept: a restart will look like another server to NFSv4.1 clients' trunking detection");
    }
    id.into_bytes()
}

impl V4State {
    /// The state of a server starting now, with the records kept in `opts.state_dir` (a
    /// directory that cannot be used is logged, and the server runs without records).
    pub fn new(opts: V4Options, conn_stats: Arc<ConnStats>) -> Arc<Self> {
        // The instance's epoch in client ids and stateids: random, so that two instances
        // started within one second (a quick restart) never take each other's ids for
        // their own (the boot time in seconds, knfsd's choice, would); the time if no
        // randomness is to be had.
        let boot = {
            let mut b = [0u8; 4];
            match getrandom::fill(&mut b) {
                Ok(()) => u32::from_be_bytes(b).max(1),
                Err(_) => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs() as u32),
            }
        };
        let config = Config {
            lease_ms: u64::from(opts.lease_secs.max(1)) * 1000,
            ram_bytes: rnfs_rpc::transport::total_ram().max(256 << 20),
            max_clients: opts.bounds.clients,
            max_unconfirmed: opts.bounds.unconfirmed,
            max_sessions_per_client: opts.bounds.sessions_per_client,
            max_conns_per_session: opts.bounds.conns_per_session,
            ..Config::default()
        };
        let records = opts.state_dir.as_ref().and_then(|d| match ClientRecords::open(d) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "no NFSv4 client records: no grace after a restart");
                None
            }
        });
        let kept = records
            .as_ref()
            .map(|r| r.load(config.max_clients).unwrap_or_default())
            .unwrap_or_default();
        if !kept.is_empty() {
            tracing::info!(
                clients = kept.len(),
                lease_s = opts.lease_secs,
                "NFSv4 grace period: recorded clients may reclaim"
            );
        }
        let state = Arc::new(Self {
            clients: Mutex::new(ClientTable::new(config.clone(), kept, Time(0), boot)),
            locking: Mutex::new({
                let mut l = Locking::new(boot, opts.bounds.locking);
                let mut limits = DelegLimits::from_ram(config.ram_bytes);
                let b = &opts.bounds;
                limits.total = b.delegations.unwrap_or(limits.total);
                limits.per_client = b.delegations_per_client.unwrap_or(limits.per_client);
                l.set_delegations(limits, config.lease_ms);
                l
            }),
            records: records.map(Mutex::new),
            sessions: Mutex::default(),
            conn_stats: conn_stats.clone(),
            started: Instant::now(),
            limits: (config.max_operations, config.max_response_size),
            cb: CallbackCounters::default(),
            recall_outcomes: Mutex::default(),
            recall_any_outcomes: Mutex::default(),
            // A tenth of the lease (as knfsd's callback RPC timeout), 1 to 15 seconds: a
            // client that does not answer is known within a lease, with room for retries.
            me: std::sync::OnceLock::new(),
            cb_timeout_ms: AtomicU64::new((u64::from(opts.lease_secs) * 100).clamp(1000, 15_000)),
            kept: Mutex::default(),
            held: std::sync::atomic::AtomicUsize::new(0),
            cb40: Mutex::default(),
            owner_major: owner_major(opts.state_dir.as_deref()),
            outside: std::sync::OnceLock::new(),
            offloads: Default::default(),
            opts,
        });
        let _ = state.me.set(Arc::downgrade(&state));
        if state.opts.delegations {
            // One watch per delegated file, kept until the laundromat's next pass once the
            // last delegation on it goes: room for the bound's worth held and as many
            // returned within a second.
            let max = state.locking.lock().delegations().limits().total;
            let max = max.saturating_mul(2);
            if let Some(w) = Watcher::start(Arc::downgrade(&state), max) {
                let _ = state.outside.set(w);
            }
        }
        let weak = Arc::downgrade(&state);
        conn_stats.on_close(move |id, _| {
            if let Some(s) = weak.upgrade() {
                s.connection_closed(id);
            }
        });
        state
    }

    /// The time now, for the cores: milliseconds since the state was made.
    pub fn now(&self) -> Time {
        Time(self.started.elapsed().as_millis() as u64)
    }

    /// The transport closed connection `id`: it is bound to no session any more.
    pub fn connection_closed(&self, id: ConnId) {
        self.clients.lock().connection_closed(core_conn(id));
    }

    /// The laundromat, called about once a second: leases, courtesy clients, grace;
    /// delegations overdue revoked and the recalls due handed to the callback sender, and
    /// CB_RECALL_ANY at the delegations' bound.
    pub fn tick(self: &Arc<Self>) {
        let now = self.now();
        let mut locking = self.locking.lock();
        let mut clients = self.clients.lock();
        let t = clients.tick(now);
        for id in &t.expired {
            locking.purge_client(*id);
        }
        // Copies of clients gone (expired, destroyed) stop, and are forgotten.
        self.offloads.prune(|c| clients.lease_state(c).is_some());
        // Files kept for opens that are gone another way than CLOSE (expired or courtesy
        // clients, DESTROY_CLIENTID): the space of those removed meanwhile is freed.
        self.kept.lock().retain(|f, _| locking.holds_file(f));
        if let Some(w) = self.outside.get() {
            w.prune(|f| locking.delegations().holds_file(f));
        }
        let recalls = self.recalls_due(&mut locking, now);
        for (client, outcome) in self.take_recall_any_outcomes() {
            locking
                .delegations_mut()
                .recall_any_outcome(client, outcome, now);
        }
        let recall_any = locking.delegations_mut().due_recall_any(now);
        // NFSv4.0 has no FREE_STATEID: a 4.0 client's revoked delegations are forgotten
        // at once (their stateids are then unknown, as in knfsd), and the paths of 4.0
        // clients gone are closed.
        let (gone, reprobe) = {
            let mut paths = self.cb40.lock();
            locking.delegations_mut().forget_revoked(|c| paths.knows(c));
            let gone = paths.retain(|c| clients.callback40(c).is_some());
            (gone, paths.reprobe_due(now, clients.lease_ms()))
        };
        locking.seqid_tick(now, clients.lease_ms());
        if t.grace_ended {
            tracing::info!("NFSv4 grace period over");
        }
        if !t.expired.is_empty() || !t.courtesy.is_empty() {
            tracing::debug!(
                expired = t.expired.len(),
                courtesy = t.courtesy.len(),
                "leases"
            );
        }
        let stale: Vec<SessionId> = {
            let s = self.sessions.lock();
            s.keys()
                .filter(|id| clients.slot_counts(**id).is_none())
                .copied()
                .collect()
        };
        self.write_records(clients);
        drop(locking);
        for id in stale {
            self.remove_session(id);
        }
        drop(gone);
        for p in reprobe {
            self.run_probe40(p);
        }
        self.dispatch_recalls(recalls);
        self.dispatch_recall_any(recall_any);
    }

    /// A watched delegated file was changed, maybe beside NFS (see [`super::outside`]):
    /// its delegations are recalled as for an NFSv3 caller's change (a courtesy holder is
    /// expired at once), unless the server changed it itself just before (rule D7 of
    /// [`super::state::delegations`]).
    pub fn changed_outside(&self, file: &FileKey) {
        let now = self.now();
        let mut l = self.locking.lock();
        let holders = match l.delegations_mut().changed_outside(file, now) {
            OutsideChange::Recall(c) => c.holders,
            OutsideChange::NotHeld | OutsideChange::Own => return,
        };
        tracing::debug!(
            holders = holders.len(),
            "delegated file changed beside NFS: recalled"
        );
        self.expire_courtesy(&holders, &mut l, now);
        drop(l);
        self.send_recalls(now);
    }

    /// The watches of delegated files (`None` without them: delegations off, or no
    /// inotify).
    pub fn outside_stats(&self) -> Option<WatchStats> {
        self.outside.get().map(|w| w.stats())
    }

    /// Whether the server is in its grace period.
    pub fn in_grace(&self) -> bool {
        self.clients.lock().in_grace()
    }

    /// The locking table's counters (its refusals at the bounds among them).
    pub fn locking_stats(&self) -> super::state::locking::LockingStats {
        self.locking.lock().stats()
    }

    /// Client and session counters, and the locking table's counts.
    pub fn stats(&self) -> (SessionStats, super::state::locking::Counts) {
        let counts = self.locking.lock().counts();
        (self.clients.lock().stats(), counts)
    }

    /// Writes the record changes the client table asked for, then lets it go.
    pub(crate) fn write_records(&self, mut clients: parking_lot::MutexGuard<'_, ClientTable>) {
        let changes = clients.take_record_changes();
        if changes.is_empty() {
            return;
        }
        match &self.records {
            Some(r) => {
                let r = r.lock();
                drop(clients);
                r.apply(&changes);
            }
            None => drop(clients),
        }
    }

    /// What SEQUENCE reports of `session`'s callback path (never a guess: down only when
    /// a back channel was asked for and has no connection, or its probe failed).
    /// `revoked`: the session's client has a revoked delegation it has not freed.
    pub(crate) fn callback_health(
        &self,
        clients: &ClientTable,
        session: SessionId,
        revoked: bool,
    ) -> CallbackHealth {
        let s = self.sessions.lock();
        let Some(info) = s.get(&session) else {
            return CallbackHealth::default();
        };
        let down = info.wants_back
            && (clients.back_channel_conns(session).is_empty()
                || info.probe_ok == Some(false)
                || info.back.is_dead());
        CallbackHealth {
            path_down: down,
            session_path_down: down,
            recallable_state_revoked: revoked,
        }
    }

    /// Whether `client` has a session whose back channel has a connection and answered
    /// its probe: the delegation grant policy's "callback path verified" (lock order:
    /// the client table, then the sessions).
    pub(crate) fn callback_verified(&self, clients: &ClientTable, client: ClientId) -> bool {
        let s = self.sessions.lock();
        let v41 = s.iter().any(|(id, i)| {
            i.client == client
                && i.wants_back
                && i.probe_ok == Some(true)
                && !i.back.is_dead()
                && !clients.back_channel_conns(*id).is_empty()
        });
        drop(s);
        // An NFSv4.0 client: its callback connection answered CB_NULL.
        v41 || self.callback40_verified(client)
    }

    /// The recalls to send now (see [`super::state::delegations`]), once the outcomes of
    /// those sent before are told to the delegation state: the callbacks queue outcomes
    /// ([`V4State::take_recall_outcomes`]) rather than calling back into the locking table,
    /// which the sender may hold. Lock order: the locking table, then the outcome queue.
    fn recalls_due(&self, locking: &mut Locking, now: Time) -> Vec<RecallOrder> {
        for (order, outcome) in self.take_recall_outcomes() {
            locking
                .delegations_mut()
                .recall_outcome(&order.stateid, outcome, now);
        }
        locking.delegations_mut().due_recalls(now)
    }

    /// What became of a recall, told to the delegation state (tests and callers that hold
    /// no lock; the laundromat takes the callbacks' outcomes in bulk).
    pub fn recall_outcome(&self, order: &RecallOrder, outcome: RecallOutcome) {
        let now = self.now();
        self.locking
            .lock()
            .delegations_mut()
            .recall_outcome(&order.stateid, outcome, now);
    }

    /// The delegation conflict check for a caller without delegations (NFSv3): whether it
    /// must wait (its recall ordered) for `access` to `file`. A courtesy client in the way
    /// is expired at once instead.
    pub fn conflicts(&self, file: &rnfs_vfs::FileKey, access: Access, truncate: bool) -> bool {
        if !self.opts.delegations {
            return false; // none granted: no need to look (nor to take the lock)
        }
        let now = self.now();
        let mut l = self.locking.lock();
        let wait = match l.deleg_conflict(Caller::Other, file, access, truncate, now) {
            Err(LockingError::Recalling { clients }) => {
                !(self.expire_courtesy(&clients, &mut l, now)
                    && l.deleg_conflict(Caller::Other, file, access, truncate, now)
                        .is_ok())
            }
            _ => false,
        };
        drop(l);
        if wait {
            // The recall goes out now, not at the laundromat's next pass.
            self.send_recalls(now);
        }
        wait
    }

    /// Holds the calling thread (of the blocking pool) until no other client's delegation
    /// is in the way of `access` to `file` any more, for at most `conflict_hold_ms`,
    /// checking every 10 ms: whether the way is clear. The recall must have been ordered
    /// ([`V4State::conflicts`]); nothing is ordered here. Beyond [`MAX_HELD`] callers
    /// holding at once, returns false at once.
    pub fn hold_for_return(&self, file: &rnfs_vfs::FileKey, access: Access) -> bool {
        let max = Duration::from_millis(self.opts.conflict_hold_ms);
        if max.is_zero() {
            return false;
        }
        let Some(_held) = self.hold_thread() else {
            return false;
        };
        let start = Instant::now();
        loop {
            if !self
                .locking
                .lock()
                .deleg_in_way(Caller::Other, file, access)
            {
                return true;
            }
            if start.elapsed() >= max {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A place among the [`MAX_HELD`] callers that may wait on the blocking pool for a
    /// client (a delegation's return, a CB_GETATTR reply), given back when dropped; `None`
    /// when all are taken.
    fn hold_thread(&self) -> Option<HeldThread<'_>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.held
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_HELD).then_some(n + 1))
            .ok()
            .map(|_| HeldThread(&self.held))
    }

    /// The delegations' counters and what they hold now.
    pub fn delegation_stats(&self) -> DelegStats {
        self.locking.lock().delegations().stats()
    }

    /// Sends CB_NULL on `session`'s back-channel connections, recording whether one
    /// answered. The transport waits for the replies on its own runtime
    /// ([`rnfs_rpc::transport::Backchannel::send`]); this returns at once.
    pub(crate) fn probe_back_channel(self: &Arc<Self>, session: SessionId) {
        let conns = self.clients.lock().back_channel_conns(session);
        let Some((prog, cred)) = self
            .sessions
            .lock()
            .get(&session)
            .map(|i| (i.cb_program, i.cb_cred.clone()))
        else {
            return;
        };
        let chans: Vec<_> = conns
            .iter()
            .filter_map(|c| self.conn_stats.backchannel(ConnId(c.0)))
            .collect();
        if chans.is_empty() {
            return;
        }
        // (connections not answered yet, one answered)
        let tally = Arc::new(Mutex::new((chans.len(), false)));
        for bc in chans {
            let call = rnfs_rpc::transport::CallbackCall {
                prog,
                vers: CB_VERSION,
                proc_: 0,
                cred: &cred,
                args: &[],
            };
            let me = Arc::downgrade(self);
            let tally = tally.clone();
            let conn = bc.conn();
            bc.send(call, PROBE_TIMEOUT, move |r| {
                if let Err(e) = &r {
                    tracing::info!(conn = conn.0, error = %e, "CB_NULL probe failed");
                }
                let done = {
                    let mut t = tally.lock();
                    t.0 -= 1;
                    t.1 |= r.is_ok();
                    // Settled by the first answer, or by the last failure.
                    (r.is_ok() || t.0 == 0).then_some(t.1)
                };
                if let (Some(ok), Some(me)) = (done, me.upgrade()) {
                    if let Some(i) = me.sessions.lock().get_mut(&session) {
                        i.probe_ok = Some(ok);
                        if r.is_ok() {
                            i.good_conn = Some(conn);
                        }
                    }
                }
            });
        }
    }
}

/// The transport's connection id as the session core names it.
pub(crate) fn core_conn(id: ConnId) -> super::state::sessions::api::ConnId {
    super::state::sessions::api::ConnId(id.0)
}

/// Grace, reclaims and courtesy clients, from the client table (lock order: the caller
/// holds the locking table; these take the client table after it).
impl StateHooks for V4State {
    fn in_grace(&self, _now: Time) -> bool {
        self.clients.lock().in_grace()
    }

    fn may_reclaim(&self, client: ClientId, _now: Time) -> bool {
        self.clients.lock().check_reclaim(client).is_ok()
    }

    fn reclaim_completed(&self, client: ClientId) -> bool {
        self.clients.lock().reclaim_completed(client)
    }

    fn expire_courtesy(&self, ids: &[ClientId], locking: &mut Locking, _now: Time) -> bool {
        let mut clients = self.clients.lock();
        let mut any = false;
        for id in ids {
            if clients.expire_courtesy(*id) {
                locking.purge_client(*id);
                any = true;
            }
        }
        self.write_records(clients);
        any
    }

    fn keep_unlinked(
        &self,
        export: u16,
        file: &FileKey,
        keep: &mut dyn FnMut() -> Option<Kept>,
    ) -> bool {
        let has = |m: &HashMap<FileKey, Vec<(u16, Kept)>>| {
            m.get(file)
                .is_some_and(|v| v.iter().any(|(e, _)| *e == export))
        };
        if has(&self.kept.lock()) {
            return true;
        }
        // The backend opens the file: not under the lock.
        let Some(hold) = keep() else {
            return false;
        };
        let mut m = self.kept.lock();
        if !has(&m) {
            m.entry(file.clone()).or_default().push((export, hold));
        }
        true
    }

    fn watch_delegated(
        &self,
        file: &FileKey,
        open: &mut dyn FnMut() -> Option<std::os::fd::OwnedFd>,
    ) {
        if let Some(w) = self.outside.get() {
            w.watch(file, open);
        }
    }

    fn let_go_unheld(&self, file: &FileKey, locking: &Locking) {
        if !locking.holds_file(file) {
            self.kept.lock().remove(file);
        }
    }

    fn callback_ok(&self, client: ClientId) -> bool {
        if !self.opts.delegations {
            return false;
        }
        let clients = self.clients.lock();
        self.callback_verified(&clients, client)
    }

    fn delegations_possible(&self) -> bool {
        self.opts.delegations
    }

    fn start_copy(
        &self,
        client: ClientId,
        job: super::offload::CopyJob,
        verf: [u8; 8],
    ) -> Option<Stateid> {
        let me = self.me.get()?.upgrade()?;
        if !self.callback_verified(&self.clients.lock(), client) {
            return None;
        }
        let (sid, copied, cancel) = self.offloads.register(client, std::process::id())?;
        let spawned = std::thread::Builder::new()
            .name("rnfs-copy".into())
            .spawn(move || {
                let (n, status) = super::offload::run(&job, &copied, &cancel);
                me.offloads.finish(&sid, status);
                let end = super::callback::OffloadEnd {
                    fh: job.dst_fh,
                    stateid: sid,
                    copied: n,
                    status,
                    verf,
                };
                if !me.cb_offload_wait(client, &end) {
                    me.offloads
                        .cb_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                me.offloads.retire(&sid);
            });
        match spawned {
            Ok(_) => Some(sid),
            Err(e) => {
                tracing::warn!(error = %e, "no thread for an asynchronous copy");
                self.offloads
                    .finish(&sid, super::error::Nfs4Error::Delay.code());
                self.offloads.retire(&sid);
                None
            }
        }
    }

    fn offload_status(&self, client: ClientId, sid: &Stateid) -> Option<super::offload::Progress> {
        self.offloads.status(client, sid).ok()
    }

    fn offload_cancel(&self, client: ClientId, sid: &Stateid) -> bool {
        self.offloads.cancel(client, sid).is_ok()
    }

    fn callback_down40(&self, client: ClientId) -> bool {
        self.callback40_down(client)
    }

    fn cb_getattr(&self, o: &CbGetattrOrder) -> CbGetattr {
        if self.cb40.lock().knows(o.client) {
            // Not built for NFSv4.0 holders (CB_GETATTR on their callback connection).
            return CbGetattr::NotAsked;
        }
        let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return CbGetattr::NotAsked;
        };
        // Callers waiting share the bound of the NFSv3 calls held for a return.
        let Some(_held) = self.hold_thread() else {
            return CbGetattr::NoAnswer;
        };
        let wait = self.callback_timeout().min(CB_GETATTR_WAIT);
        me.cb_getattr_wait(o, wait)
            .map_or(CbGetattr::NoAnswer, CbGetattr::Reported)
    }

    fn send_recalls(&self, now: Time) {
        let orders = self.recalls_due(&mut self.locking.lock(), now);
        if orders.is_empty() {
            return;
        }
        match self.me.get().and_then(std::sync::Weak::upgrade) {
            Some(me) => me.dispatch_recalls(orders),
            // Only while the state is being dropped: the recalls stay in flight until
            // revoked, as for a path down.
            None => tracing::debug!("recalls not sent: the NFSv4 state is going"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4::state::opens::OpenRequest;
    use crate::v4::state::share::{ShareAccess, ShareDeny};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend's hold that counts its drops.
    struct Hold(Arc<AtomicUsize>);
    impl Drop for Hold {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Two servers never share a server owner (the Linux client would merge their mounts);
    /// a restart with the same state directory is the same server; a damaged file is
    /// replaced.
    #[test]
    fn the_server_owner_is_per_server_and_kept_across_restarts() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = owner_major(Some(a.path()));
        assert!(first.starts_with(b"rnfs-"), "{first:?}");
        assert_eq!(owner_major(Some(a.path())), first, "a restart");
        assert_ne!(
            owner_major(Some(b.path())),
            first,
            "another state directory"
        );
        assert_ne!(owner_major(None), owner_major(None), "no state directory");
        std::fs::write(a.path().join(OWNER_FILE), b"rnfs-\n../../x").unwrap();
        let again = owner_major(Some(a.path()));
        assert_ne!(again, b"rnfs-\n../../x");
        assert_eq!(owner_major(Some(a.path())), again);
    }

    #[test]
    fn files_are_kept_while_state_is_held_on_them() {
        let s = V4State::new(V4Options::default(), Arc::new(ConnStats::default()));
        let dropped = Arc::new(AtomicUsize::new(0));
        let asked = Cell::new(0);
        let mut keep = || {
            asked.set(asked.get() + 1);
            Some(Kept::new(Hold(dropped.clone())))
        };
        let file = FileKey(vec![7; 12]);
        let req = OpenRequest {
            client: ClientId(1),
            owner: b"o".to_vec(),
            file: file.clone(),
            access: ShareAccess::from_bits(3).unwrap(),
            deny: ShareDeny::from_bits(0).unwrap(),
            reclaim: false,
        };
        let mut l = s.locking.lock();
        let opened = l.open(&req).unwrap();
        assert!(s.keep_unlinked(1, &file, &mut keep));
        assert!(s.keep_unlinked(1, &file, &mut keep));
        assert_eq!(asked.get(), 1, "one hold per file and export");
        assert!(s.keep_unlinked(2, &file, &mut keep));
        assert_eq!(asked.get(), 2, "another export's backend keeps its own");
        // A backend that cannot keep the file: no promise.
        assert!(!s.keep_unlinked(1, &FileKey(vec![8; 12]), &mut || None));
        // Let go once no state is held on the file, not before.
        s.let_go_unheld(&file, &l);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        l.close(ClientId(1), &opened.stateid, &file).unwrap();
        s.let_go_unheld(&file, &l);
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        // State gone another way (an expired client): the laundromat lets go.
        assert!(s.keep_unlinked(1, &file, &mut keep));
        drop(l);
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        s.tick();
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
        assert!(s.kept.lock().is_empty());
    }
}
