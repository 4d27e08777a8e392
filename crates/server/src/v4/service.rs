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
use super::callback::{CallbackCounters, RecallHook, RecallOrder, RecallOutcome, CB_SLOTS_CAP};
use super::compound::StateHooks;
use super::state::backchannel::BackSlots;
use super::state::delegations::{Access, Caller, DelegLimits, DelegStats};
use super::state::ids::{ClientId, SessionId, Time};
use super::state::locking::{Limits as LockLimits, Locking, LockingError};
use super::state::sessions::api::{CallbackHealth, ChannelAttrs, Config, SessionStats};
use super::state::sessions::clients::ClientTable;
use crate::state::ClientRecords;
use parking_lot::Mutex;
use rnfs_proto::rpc::OpaqueAuth;
use rnfs_rpc::transport::{ConnId, ConnStats};
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
}

impl Default for V4Options {
    fn default() -> Self {
        Self {
            minors: (1, 2),
            lease_secs: 90,
            state_dir: None,
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
    /// Told of every recall's outcome.
    pub(crate) recall_hook: Mutex<Option<RecallHook>>,
    /// How long a callback waits for its reply, in milliseconds.
    pub(crate) cb_timeout_ms: AtomicU64,
    /// This state, for the hooks that send recalls (set once, just after creation).
    me: std::sync::OnceLock<std::sync::Weak<V4State>>,
}

impl V4State {
    /// The state of a server starting now, with the records kept in `opts.state_dir` (a
    /// directory that cannot be used is logged, and the server runs without records).
    pub fn new(opts: V4Options, conn_stats: Arc<ConnStats>) -> Arc<Self> {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let config = Config {
            lease_ms: u64::from(opts.lease_secs.max(1)) * 1000,
            ram_bytes: rnfs_rpc::transport::total_ram().max(256 << 20),
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
                let mut l = Locking::new(boot, LockLimits::default());
                l.set_delegations(DelegLimits::from_ram(config.ram_bytes), config.lease_ms);
                l
            }),
            records: records.map(Mutex::new),
            sessions: Mutex::default(),
            conn_stats: conn_stats.clone(),
            started: Instant::now(),
            limits: (config.max_operations, config.max_response_size),
            cb: CallbackCounters::default(),
            recall_hook: Mutex::new(None),
            // A tenth of the lease (as knfsd's callback RPC timeout), 1 to 15 seconds: a
            // client that does not answer is known within a lease, with room for retries.
            me: std::sync::OnceLock::new(),
            cb_timeout_ms: AtomicU64::new((u64::from(opts.lease_secs) * 100).clamp(1000, 15_000)),
            opts,
        });
        let _ = state.me.set(Arc::downgrade(&state));
        // Every recall's outcome goes to the delegation state.
        let weak = Arc::downgrade(&state);
        state.on_recall_outcome(move |o, r| {
            if let Some(s) = weak.upgrade() {
                s.recall_outcome(o, r);
            }
        });
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
    /// delegations overdue revoked and the recalls due handed to the callback sender.
    pub fn tick(self: &Arc<Self>) {
        let now = self.now();
        let mut locking = self.locking.lock();
        let mut clients = self.clients.lock();
        let t = clients.tick(now);
        for id in &t.expired {
            locking.purge_client(*id);
        }
        let recalls = locking.delegations_mut().due_recalls(now);
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
        self.dispatch_recalls(recalls);
    }

    /// Whether the server is in its grace period.
    pub fn in_grace(&self) -> bool {
        self.clients.lock().in_grace()
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
        s.iter().any(|(id, i)| {
            i.client == client
                && i.wants_back
                && i.probe_ok == Some(true)
                && !i.back.is_dead()
                && !clients.back_channel_conns(*id).is_empty()
        })
    }

    /// What became of a recall (the callback sender reports each order's outcome here).
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

    fn callback_ok(&self, client: ClientId) -> bool {
        let clients = self.clients.lock();
        self.callback_verified(&clients, client)
    }

    fn send_recalls(&self, now: Time) {
        let orders = self.locking.lock().delegations_mut().due_recalls(now);
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
