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
use super::compound::StateHooks;
use super::state::ids::{ClientId, SessionId, Time};
use super::state::locking::{Limits as LockLimits, Locking};
use super::state::sessions::api::{CallbackHealth, ChannelAttrs, Config, SessionStats};
use super::state::sessions::clients::ClientTable;
use crate::state::ClientRecords;
use parking_lot::Mutex;
use rnfs_proto::rpc::OpaqueAuth;
use rnfs_rpc::transport::{ConnId, ConnStats};
use std::collections::HashMap;
use std::path::PathBuf;
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
    /// The last probe's outcome: `None` before any answered.
    pub(crate) probe_ok: Option<bool>,
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
            locking: Mutex::new(Locking::new(boot, LockLimits::default())),
            records: records.map(Mutex::new),
            sessions: Mutex::default(),
            conn_stats: conn_stats.clone(),
            started: Instant::now(),
            limits: (config.max_operations, config.max_response_size),
            opts,
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

    /// The laundromat, called about once a second: leases, courtesy clients, grace.
    pub fn tick(&self) {
        let now = self.now();
        let mut locking = self.locking.lock();
        let mut clients = self.clients.lock();
        let t = clients.tick(now);
        for id in &t.expired {
            locking.purge_client(*id);
        }
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
        let mut s = self.sessions.lock();
        for id in stale {
            s.remove(&id);
        }
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
    pub(crate) fn callback_health(
        &self,
        clients: &ClientTable,
        session: SessionId,
    ) -> CallbackHealth {
        let s = self.sessions.lock();
        let Some(info) = s.get(&session) else {
            return CallbackHealth::default();
        };
        let down = info.wants_back
            && (clients.back_channel_conns(session).is_empty() || info.probe_ok == Some(false));
        CallbackHealth {
            path_down: down,
            session_path_down: down,
            recallable_state_revoked: false,
        }
    }

    /// Sends CB_NULL on `session`'s back-channel connections, recording whether one
    /// answered. Needs a tokio runtime (the server's); without one nothing is sent.
    pub(crate) fn probe_back_channel(self: &Arc<Self>, session: SessionId) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
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
        let me = self.clone();
        rt.spawn(async move {
            let mut ok = false;
            for bc in chans {
                let call = rnfs_rpc::transport::CallbackCall {
                    prog,
                    vers: CB_VERSION,
                    proc_: 0,
                    cred: &cred,
                    args: &[],
                };
                match bc.call(call, PROBE_TIMEOUT).await {
                    Ok(_) => {
                        ok = true;
                        break;
                    }
                    Err(e) => {
                        tracing::info!(conn = bc.conn().0, error = %e, "CB_NULL probe failed")
                    }
                }
            }
            if let Some(i) = me.sessions.lock().get_mut(&session) {
                i.probe_ok = Some(ok);
            }
        });
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
}
