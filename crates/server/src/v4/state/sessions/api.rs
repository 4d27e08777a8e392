//! The requests and results of the client and session operations: plain Rust values
//! that the COMPOUND layer converts from and to the wire types (RFC 8881 18.34-18.51).
use super::records::StableRecord;
use super::slots::RequestDigest;
use crate::v4::state::ids::{ClientId, SessionId, Verifier};

/// A transport connection, as the transport names it (opaque here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Who sent a request, in the form the COMPOUND layer gives it (for AUTH_SYS the uid and
/// machine name, for RPCSEC_GSS the principal). Compared for equality only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Principal(pub Vec<u8>);

/// Limits and timing of the table.
#[derive(Debug, Clone)]
pub struct Config {
    /// The lease, in milliseconds (90 s by default, as knfsd and Ganesha).
    pub lease_ms: u64,
    /// How long a courtesy client's state is kept at most (24 h, as Linux).
    pub courtesy_ms: u64,
    /// Courtesy clients kept at most; the longest silent is expired first.
    pub max_courtesy: usize,
    /// Client records (confirmed and unconfirmed) at most.
    pub max_clients: usize,
    /// Unconfirmed client records at most.
    pub max_unconfirmed: usize,
    /// Sessions per client at most.
    pub max_sessions_per_client: usize,
    /// Connections bound to one session at most.
    pub max_conns_per_session: usize,
    /// Sessions in total at most (fewer if the reply-cache budget cannot hold them).
    pub max_sessions: u32,
    /// Memory of the machine, from which the reply-cache budget is derived.
    pub ram_bytes: u64,
    /// The largest request the server accepts (`ca_maxrequestsize`).
    pub max_request_size: u32,
    /// The largest reply the server sends (`ca_maxresponsesize`).
    pub max_response_size: u32,
    /// Operations per COMPOUND at most (`ca_maxoperations`).
    pub max_operations: u32,
    /// Back-channel slots at most.
    pub max_back_slots: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lease_ms: 90_000,
            courtesy_ms: 24 * 3600 * 1000,
            max_courtesy: 1024,
            max_clients: 4096,
            max_unconfirmed: 256,
            max_sessions_per_client: 16,
            max_conns_per_session: 16,
            max_sessions: 4096,
            ram_bytes: 1 << 30,
            max_request_size: (1 << 20) + 4096,
            max_response_size: (1 << 20) + 4096,
            max_operations: 64,
            max_back_slots: 16,
        }
    }
}

/// The smallest `ca_maxrequestsize` / `ca_maxresponsesize` that fits a SEQUENCE compound.
pub const MIN_CHANNEL_SIZE: u32 = 128;

/// `channel_attrs4` (RFC 8881 18.36.2), without RDMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelAttrs {
    /// `ca_headerpadsize`.
    pub header_pad_size: u32,
    /// `ca_maxrequestsize`.
    pub max_request_size: u32,
    /// `ca_maxresponsesize`.
    pub max_response_size: u32,
    /// `ca_maxresponsesize_cached`.
    pub max_response_size_cached: u32,
    /// `ca_maxoperations`.
    pub max_operations: u32,
    /// `ca_maxrequests` (slots).
    pub max_requests: u32,
}

/// EXCHANGE_ID arguments the state needs (state protection SP4_NONE; the COMPOUND layer
/// refuses the others).
#[derive(Debug, Clone)]
pub struct ExchangeIdArgs {
    /// `co_ownerid`.
    pub owner: Vec<u8>,
    /// `co_verifier`: changes when the client reboots.
    pub verifier: Verifier,
    /// The caller.
    pub principal: Principal,
    /// `EXCHGID4_FLAG_UPD_CONFIRMED_REC_A`.
    pub update: bool,
}

/// A successful EXCHANGE_ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIdOk {
    /// `eir_clientid`.
    pub clientid: ClientId,
    /// `eir_sequenceid`: the `csa_sequence` of the next CREATE_SESSION.
    pub sequenceid: u32,
    /// `EXCHGID4_FLAG_CONFIRMED_R`.
    pub confirmed: bool,
    /// Clients expired to make room or because another principal took over their owner:
    /// the caller purges their state.
    pub purge: Vec<ClientId>,
}

/// CREATE_SESSION arguments.
#[derive(Debug, Clone)]
pub struct CreateSessionArgs {
    /// `csa_clientid`.
    pub clientid: ClientId,
    /// `csa_sequence`.
    pub sequence: u32,
    /// The caller.
    pub principal: Principal,
    /// `CREATE_SESSION4_FLAG_CONN_BACK_CHAN`: use this connection for callbacks too.
    pub back_chan: bool,
    /// `csa_fore_chan_attrs`.
    pub fore: ChannelAttrs,
    /// `csa_back_chan_attrs`.
    pub back: ChannelAttrs,
    /// The connection the request came on.
    pub conn: ConnId,
}

/// A CREATE_SESSION result (cached for its replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionOk {
    /// `csr_sessionid`.
    pub sessionid: SessionId,
    /// `csr_sequence`.
    pub sequence: u32,
    /// `CREATE_SESSION4_FLAG_CONN_BACK_CHAN` granted (never PERSIST: sessions do not
    /// survive a restart).
    pub back_chan: bool,
    /// `csr_fore_chan_attrs`.
    pub fore: ChannelAttrs,
    /// `csr_back_chan_attrs`.
    pub back: ChannelAttrs,
}

/// A CREATE_SESSION that was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionDone {
    /// The reply.
    pub reply: CreateSessionOk,
    /// The previous incarnation of a restarted client, purged by this confirmation: the
    /// caller purges its state.
    pub purge: Option<ClientId>,
}

/// What the backchannel and delegation layers know, for the SEQUENCE status flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackHealth {
    /// No callback path works for the client (`SEQ4_STATUS_CB_PATH_DOWN`).
    pub path_down: bool,
    /// This session's backchannel does not work (`SEQ4_STATUS_CB_PATH_DOWN_SESSION`).
    pub session_path_down: bool,
    /// A recallable object (delegation, layout) was revoked
    /// (`SEQ4_STATUS_RECALLABLE_STATE_REVOKED`).
    pub recallable_state_revoked: bool,
}

/// `sr_status_flags` bits (RFC 8881 18.46.3).
pub mod seq4_status {
    /// `SEQ4_STATUS_CB_PATH_DOWN`.
    pub const CB_PATH_DOWN: u32 = 0x1;
    /// `SEQ4_STATUS_RECALLABLE_STATE_REVOKED`.
    pub const RECALLABLE_STATE_REVOKED: u32 = 0x40;
    /// `SEQ4_STATUS_CB_PATH_DOWN_SESSION`.
    pub const CB_PATH_DOWN_SESSION: u32 = 0x200;
}

/// SEQUENCE arguments.
#[derive(Debug, Clone)]
pub struct SequenceArgs {
    /// `sa_sessionid`.
    pub sessionid: SessionId,
    /// `sa_sequenceid`.
    pub sequenceid: u32,
    /// `sa_slotid`.
    pub slotid: u32,
    /// `sa_highest_slotid`: the highest slot the client uses now.
    pub highest_slotid: u32,
    /// `sa_cachethis`.
    pub cachethis: bool,
    /// Digest of the whole COMPOUND arguments.
    pub digest: RequestDigest,
    /// The connection the request came on.
    pub conn: ConnId,
    /// State of the callback path.
    pub callback: CallbackHealth,
}

/// A SEQUENCE that starts a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceOk {
    /// The session's client (for the rest of the COMPOUND).
    pub clientid: ClientId,
    /// `sr_sessionid`.
    pub sessionid: SessionId,
    /// `sr_sequenceid`.
    pub sequenceid: u32,
    /// `sr_slotid`.
    pub slotid: u32,
    /// `sr_highest_slotid`.
    pub highest_slotid: u32,
    /// `sr_target_highest_slotid`.
    pub target_highest_slotid: u32,
    /// `sr_status_flags`.
    pub status_flags: u32,
    /// This SEQUENCE bound its connection to the session's back channel (the session
    /// has one): the caller probes it.
    pub bound_back: bool,
}

/// What a SEQUENCE asks the COMPOUND engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceOutcome {
    /// Execute the COMPOUND, then hand the reply to [`super::clients::ClientTable::sequence_done`].
    Execute(SequenceOk),
    /// A retry: send these bytes as the reply, execute nothing.
    Replay(Vec<u8>),
}

/// BIND_CONN_TO_SESSION's `bctsa_dir` (RFC 8881 18.34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindDir {
    /// `CDFC4_FORE`.
    Fore,
    /// `CDFC4_BACK`.
    Back,
    /// `CDFC4_FORE_OR_BOTH`.
    ForeOrBoth,
    /// `CDFC4_BACK_OR_BOTH`.
    BackOrBoth,
}

/// The channels a connection is bound to (`bctsr_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnDir {
    /// Fore channel only.
    Fore,
    /// Back channel only.
    Back,
    /// Both.
    Both,
}

impl ConnDir {
    /// Whether callbacks may use the connection.
    pub fn back(self) -> bool {
        matches!(self, ConnDir::Back | ConnDir::Both)
    }
}

/// Where a client's lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The lease is current (or the record is not confirmed yet).
    Active,
    /// The lease ran out; state is kept until someone conflicts with it.
    Courtesy,
}

/// What the laundromat decided at one tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Clients that became courtesy clients.
    pub courtesy: Vec<ClientId>,
    /// Clients expired: the caller purges their opens, locks and delegations.
    pub expired: Vec<ClientId>,
    /// The grace period ended at this tick.
    pub grace_ended: bool,
}

/// A change the caller makes to the stable records (RFC 8881 8.4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    /// Keep this client: it may reclaim after a restart.
    Insert(StableRecord),
    /// Forget this client.
    Remove(StableRecord),
}

/// Counters and gauges, for `rnfs stats` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Confirmed clients (gauge).
    pub clients: u64,
    /// Unconfirmed client records (gauge).
    pub unconfirmed: u64,
    /// Courtesy clients (gauge).
    pub courtesy: u64,
    /// Sessions (gauge).
    pub sessions: u64,
    /// Bound connections, counted per session (gauge).
    pub connections: u64,
    /// Reply-cache budget in bytes (gauge).
    pub reply_cache_budget: u64,
    /// Reply-cache bytes charged to slot tables (gauge).
    pub reply_cache_charged: u64,
    /// Reply bytes held in slots (gauge).
    pub reply_cache_held: u64,
    /// SEQUENCEs answered from a slot's cache.
    pub sequence_replays: u64,
    /// SEQUENCEs refused as misordered, false retry, uncached retry or bad slot.
    pub sequence_refused: u64,
    /// CREATE_SESSIONs answered from the client's cache.
    pub create_session_replays: u64,
    /// Refusals because the client bound was reached.
    pub refused_clients: u64,
    /// Unconfirmed records dropped to make room for a newer one.
    pub unconfirmed_evicted: u64,
    /// Refusals because a session bound (per client or total) was reached.
    pub refused_sessions: u64,
    /// Refusals because a session had its most connections.
    pub refused_connections: u64,
    /// Clients that became courtesy clients.
    pub courtesy_entered: u64,
    /// Courtesy clients that came back.
    pub courtesy_resumed: u64,
    /// Clients expired (laundromat, conflict, pressure, takeover).
    pub expired: u64,
    /// Unconfirmed records dropped after a lease.
    pub unconfirmed_expired: u64,
}
