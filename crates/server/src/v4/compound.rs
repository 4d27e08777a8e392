//! The COMPOUND engine (RFC 8881 sections 15.2, 16.2): runs the operations of one
//! COMPOUND in order against the pseudo file system, the backends and the state, and
//! encodes the reply.
//!
//! - **The op table** ([`OPS`], as knfsd's `nfsd4_ops[]`): for every operation number of
//!   NFSv4.0, 4.1 and 4.2, its name, the minor versions that have it, its flags (needs a
//!   current filehandle, is a session operation that may start a compound, modifies
//!   state, clears the current stateid) and an estimate of its reply size; and its handler
//!   (`ops/`), or none: a known operation not built yet answers NFS4ERR_NOTSUPP. A number
//!   the table does not know (or one of another minor version) is NFS4ERR_OP_ILLEGAL, with
//!   OP_ILLEGAL in the reply.
//! - **Order**: operations are decoded one at a time, as they run, so a compound of 10,000
//!   operations costs nothing before its first runs and holds no per-operation memory;
//!   the first failing operation ends the compound, and its status is the compound's.
//! - **NFSv4.0** (minor version 0, RFC 7530): no SEQUENCE; the 4.1 operations are
//!   OP_ILLEGAL there and the 4.0-only ones (SETCLIENTID, RENEW, OPEN_CONFIRM, ...)
//!   NOTSUPP in 4.1. Each operation finds its client and the owners' seqids order and
//!   replay the state changes ([`ops::v40`]); no slot caches a minor-0 reply.
//! - **Sessions**: in NFSv4.1 and later the first operation is SEQUENCE, or one of the
//!   operations allowed without a session, alone (NFS4ERR_OP_NOT_IN_SESSION,
//!   NFS4ERR_NOT_ONLY_OP); SEQUENCE anywhere else is NFS4ERR_SEQUENCE_POS. The session
//!   operations themselves are built with the state ([`Sessions`]): the engine hands
//!   them their arguments and takes back the result, the session's limits, or a cached
//!   reply to send again as it is.
//! - **Limits** ([`Limits`]): more operations than allowed is NFS4ERR_TOO_MANY_OPS; an
//!   operation whose reply could pass the largest reply is NFS4ERR_REP_TOO_BIG (checked
//!   with its estimate before it runs, and with its real size after), and past the largest
//!   cached reply, NFS4ERR_REP_TOO_BIG_TO_CACHE.
//! - **Current and saved filehandle and stateid** ([`Compound`]): SAVEFH and RESTOREFH
//!   carry both; operations that set the filehandle without a stateid clear the current
//!   stateid; the special "current" stateid is replaced by it (RFC 8881 16.2.3.1.2).
//!
//! [`run_compound`] is the entry: request bytes (the COMPOUND4args) in, reply bytes (the
//! COMPOUND4res) out. It is not wired into the RPC dispatch yet.
use super::attrs::ServerAttrs;
use super::error::{Nfs4Error, R4};
use super::ops;
use super::owner::OwnerMap;
use super::pseudo::{Caller, Place, PseudoFs};
use super::state::delegations::{CbGetattrOrder, SizeChange};
use super::state::ids::{ClientId, Stateid, Time};
use super::state::locking::Locking;
use rnfs_proto::nfs4::{
    decode_compound_args, CompoundError, CompoundLimits, NfsArgop4, Setclientid4args,
    SetclientidConfirm4args,
};
use rnfs_vfs::{FileKey, Kept};
use rnfs_xdr::Writer;
use std::os::fd::OwnedFd;

/// What one compound may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most operations (`ca_maxoperations`).
    pub max_ops: u32,
    /// Largest COMPOUND4res, in bytes (`ca_maxresponsesize` less the RPC header).
    pub max_reply: usize,
    /// Largest reply the session caches for this compound (`ca_maxresponsesize_cached`
    /// when SEQUENCE asked for caching), if it is to be cached.
    pub max_cached: Option<usize>,
}

/// The session operations, built with the NFSv4 state: SEQUENCE, EXCHANGE_ID,
/// CREATE_SESSION, DESTROY_SESSION, BIND_CONN_TO_SESSION, DESTROY_CLIENTID.
pub trait Sessions {
    /// Runs session operation `op` (its arguments decoded), at position `index` of a
    /// compound of `count` operations; on success writes its result body (what follows
    /// the status) to `out`.
    fn run(&self, op: &NfsArgop4, index: usize, count: usize, out: &mut Writer) -> SessionStep;

    /// The compound is done, and this is its reply: SEQUENCE's slot keeps it when asked.
    /// Called for every compound that ran (the implementation knows whether a SEQUENCE
    /// of its own took a slot).
    fn finish(&self, reply: &[u8]) {
        let _ = reply;
    }

    /// RECLAIM_COMPLETE (RFC 8881 18.51) for `client`, the client the compound's SEQUENCE
    /// named: the session layer keeps the grace period and the stable records.
    fn reclaim_complete(&self, client: ClientId, one_fs: bool) -> R4<()> {
        let _ = (client, one_fs);
        Err(Nfs4Error::NotSupp)
    }

    /// SETCLIENTID (RFC 7530 16.33, NFSv4.0): on success writes SETCLIENTID4resok to `out`;
    /// on CLID_INUSE the `clientaddr4` that follows that status.
    fn setclientid(&self, a: &Setclientid4args, out: &mut Writer) -> R4<()> {
        let _ = (a, out);
        Err(Nfs4Error::NotSupp)
    }

    /// SETCLIENTID_CONFIRM (RFC 7530 16.34, NFSv4.0).
    fn setclientid_confirm(&self, a: &SetclientidConfirm4args) -> R4<()> {
        let _ = a;
        Err(Nfs4Error::NotSupp)
    }

    /// An NFSv4.0 operation uses `client`'s state (RENEW, or any operation naming the
    /// client or its state): STALE_CLIENTID unless it is a confirmed client; renews its
    /// lease (RFC 7530 9.5).
    fn use_client40(&self, client: ClientId) -> R4<()> {
        let _ = client;
        Err(Nfs4Error::Status(STALE_CLIENTID))
    }

    /// Operation `num` of the compound answered `status` (for the per-operation
    /// statistics; OP_ILLEGAL for a number no operation has).
    fn op_done(&self, num: u32, status: u32) {
        let _ = (num, status);
    }
}

/// What a session operation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStep {
    /// Done; for SEQUENCE, the session's limits, which apply to the rest of the compound.
    Ok(Option<Limits>),
    /// SEQUENCE done: the session's limits, which apply to the rest of the compound, and
    /// the client the session belongs to, for whom the compound's operations then act
    /// ([`Compound::client`]).
    Sequenced {
        /// The session's limits, if they differ from the server's.
        limits: Option<Limits>,
        /// The session's client.
        client: ClientId,
    },
    /// Failed with this status (no result body).
    Err(Nfs4Error),
    /// A retry of a request whose reply is cached: send this reply, as it is.
    Replay(Vec<u8>),
}

/// No sessions: every session operation answers NOTSUPP (until the state is wired in).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSessions;

impl Sessions for NoSessions {
    fn run(&self, _: &NfsArgop4, _: usize, _: usize, _: &mut Writer) -> SessionStep {
        SessionStep::Err(Nfs4Error::NotSupp)
    }
}

/// What the state operations (OPEN, LOCK, READ's stateid check...) need from the session
/// and lease machinery, implemented over it by the server. Each call gets the time as an
/// input: no operation reads a clock.
pub trait StateHooks {
    /// Whether the server is in its grace period (RFC 8881 8.4.2): reclaims are allowed,
    /// new opens and locks answer NFS4ERR_GRACE.
    fn in_grace(&self, now: Time) -> bool;
    /// Whether `client` may reclaim now: it held state before the restart (it has a stable
    /// record) and has not sent RECLAIM_COMPLETE. A reclaim from any other client, or
    /// outside grace, answers NFS4ERR_NO_GRACE.
    fn may_reclaim(&self, client: ClientId, now: Time) -> bool;
    /// Whether `client` has sent RECLAIM_COMPLETE for all its file systems. Until it has,
    /// its non-reclaim OPEN and LOCK answer NFS4ERR_GRACE, in grace or not (RFC 8881
    /// 18.51.3: a client sends it after establishing a client ID, before its first
    /// non-reclaim locking operation; knfsd answers so too).
    fn reclaim_completed(&self, client: ClientId) -> bool;
    /// `clients` hold state in the way of a request (share or lock conflict, as
    /// [`Locking`] reports them): expires those that are courtesy clients (their lease
    /// ran out, their state was kept until someone conflicts), purging their state from
    /// `locking` (the lock the caller holds). Returns whether any was expired: the caller
    /// then retries the request once.
    fn expire_courtesy(&self, clients: &[ClientId], locking: &mut Locking, now: Time) -> bool;
    /// Keeps file `file` (the locking table's key) of export `export` reachable after its
    /// last name is removed, for as long as open or lock state is held on it: `keep` asks
    /// the backend for its hold ([`rnfs_vfs::Backend::keep_open`]; called only when none
    /// is kept yet). Whether the file is kept: OPEN then promises
    /// `OPEN4_RESULT_PRESERVE_UNLINKED` (RFC 8881 18.16.4), and the Linux client removes
    /// the file instead of renaming it to `.nfsXXXX`. By default nothing is kept.
    fn keep_unlinked(
        &self,
        _export: u16,
        _file: &FileKey,
        _keep: &mut dyn FnMut() -> Option<Kept>,
    ) -> bool {
        false
    }
    /// A delegation was just granted on `file` (the locking table's key): watch it for
    /// changes made beside NFS ([`crate::v4::outside`]); `open` gives the backend's
    /// descriptor of it ([`rnfs_vfs::Backend::watch_fd`]; called only when a watch is to be
    /// added). By default nothing is watched.
    fn watch_delegated(&self, _file: &FileKey, _open: &mut dyn FnMut() -> Option<OwnedFd>) {}
    /// Lets go of what is kept of `file` if `locking` holds no state on it any more (after
    /// CLOSE; the laundromat lets go of the files of expired clients).
    fn let_go_unheld(&self, _file: &FileKey, _locking: &Locking) {}
    /// Whether `client`'s callback path is verified and not known to be down (a
    /// delegation is granted only then). None by default: no callbacks, no delegations.
    fn callback_ok(&self, client: ClientId) -> bool {
        let _ = client;
        false
    }
    /// Whether a delegation can exist at all: when not (the server grants none), the
    /// conflict checks of READ, WRITE, SETATTR and the namespace operations skip the
    /// locking table. Yes by default (the check is then always made).
    fn delegations_possible(&self) -> bool {
        true
    }
    /// Whether NFSv4.0 client `client`'s callback path is known to be down (RENEW answers
    /// CB_PATH_DOWN to a client holding delegations then). Never by default.
    fn callback_down40(&self, client: ClientId) -> bool {
        let _ = client;
        false
    }
    /// A conflict has just ordered recalls: send those due now (called without the
    /// locking table held). Without callbacks, nothing.
    fn send_recalls(&self, now: Time) {
        let _ = now;
    }
    /// CB_GETATTR (D8 of [`crate::v4::state::delegations`]) to the holder of write
    /// delegation `o`, for another client's GETATTR: waits on the calling thread a short
    /// while for the size and change the holder reports. Called without the locking
    /// table held. Not asked by default (the server's own attributes stand).
    fn cb_getattr(&self, o: &CbGetattrOrder) -> CbGetattr {
        let _ = o;
        CbGetattr::NotAsked
    }
    /// Starts `job`, an asynchronous COPY for `client` (RFC 7862 15.2.3), off the
    /// compound's thread: its copy stateid, or `None` when it cannot run so now (no
    /// verified back channel for CB_OFFLOAD, or the bounds of [`super::offload`]): the
    /// caller copies synchronously then. `verf` is the write verifier CB_OFFLOAD reports.
    /// None by default.
    fn start_copy(
        &self,
        client: ClientId,
        job: super::offload::CopyJob,
        verf: [u8; 8],
    ) -> Option<Stateid> {
        let _ = (client, job, verf);
        None
    }
    /// OFFLOAD_STATUS (RFC 7862 15.9) of `client`'s copy `sid`; `None` for a stateid of no
    /// copy of its. None by default.
    fn offload_status(&self, client: ClientId, sid: &Stateid) -> Option<super::offload::Progress> {
        let _ = (client, sid);
        None
    }
    /// OFFLOAD_CANCEL (RFC 7862 15.8) of `client`'s copy `sid`; whether there was one.
    fn offload_cancel(&self, client: ClientId, sid: &Stateid) -> bool {
        let _ = (client, sid);
        false
    }
}

/// What became of a [`StateHooks::cb_getattr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CbGetattr {
    /// The holder reported these.
    Reported(SizeChange),
    /// Not asked (no CB_GETATTR to this client: an NFSv4.0 client); the server's own
    /// attributes stand.
    NotAsked,
    /// Asked, no answer in time (or no path, or too many callers waiting): the caller
    /// treats the delegation as a conflict (its recall ordered, NFS4ERR_DELAY).
    NoAnswer,
}

/// No grace, no reclaims, no courtesy clients (a server without the lease machinery, and
/// tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl StateHooks for NoHooks {
    fn in_grace(&self, _: Time) -> bool {
        false
    }
    fn may_reclaim(&self, _: ClientId, _: Time) -> bool {
        false
    }
    fn reclaim_completed(&self, _: ClientId) -> bool {
        true
    }
    fn expire_courtesy(&self, _: &[ClientId], _: &mut Locking, _: Time) -> bool {
        false
    }
}

/// The state a compound's operations use, besides the namespace.
pub struct StateCtx<'a> {
    /// The server's locking state (opens, share reservations, locks). Operations hold the
    /// lock for one state change or check, never across backend I/O (OPEN creates the
    /// file first, then records the open; UNCHECKED4's size is set after that).
    pub locking: &'a parking_lot::Mutex<Locking>,
    /// Grace, reclaim and courtesy clients.
    pub hooks: &'a dyn StateHooks,
    /// The time the compound runs at (the caller reads the clock once per compound).
    pub now: Time,
    /// The write verifier of this server instance (changes on restart; the one NFSv3
    /// uses, [`crate::NfsServer::write_verifier`]).
    pub write_verf: [u8; 8],
}

/// Everything a compound runs against.
pub struct Ctx<'a> {
    /// The namespace, the exports and their backends.
    pub pseudo: &'a PseudoFs,
    /// Who calls.
    pub caller: Caller<'a>,
    /// Owner strings.
    pub owners: &'a OwnerMap,
    /// `lease_time` in seconds.
    pub lease_time: u32,
    /// Largest READ and WRITE (`maxread`, `maxwrite`).
    pub max_io: u32,
    /// Minor versions served, lowest and highest.
    pub minors: (u32, u32),
    /// The limits before a SEQUENCE sets the session's: the server's own bounds.
    pub limits: Limits,
    /// The session operations.
    pub sessions: &'a dyn Sessions,
    /// Makes sure the backend can place the key of a handle given by PUTFH before any
    /// operation uses it: a key the backend must search for (after a restart, see
    /// [`crate::search`]) is searched for here, within the server's bounds, or the call
    /// answers DELAY or STALE, as NFSv3 does in `NfsServer::place`. [`any_key`] when no
    /// backend ever needs a search.
    pub locate: &'a Locate<'a>,
    /// The locking state, grace and the write verifier.
    pub state: StateCtx<'a>,
}

/// See [`Ctx::locate`].
pub type Locate<'a> = dyn Fn(&std::sync::Arc<crate::Export>, &rnfs_vfs::FileKey) -> R4<()> + 'a;

/// A [`Ctx::locate`] for backends that never need a search: every key is placed.
pub fn any_key(_: &std::sync::Arc<crate::Export>, _: &rnfs_vfs::FileKey) -> R4<()> {
    Ok(())
}

/// The state of one compound as it runs (RFC 8881 16.2.3.1).
pub struct Compound<'a> {
    /// What it runs against.
    pub ctx: &'a Ctx<'a>,
    /// Its minor version.
    pub minor: u32,
    /// The current filehandle.
    pub current: Option<Place>,
    /// The saved filehandle.
    pub saved: Option<Place>,
    /// The current stateid.
    pub current_stateid: Option<Stateid>,
    /// The stateid saved with the saved filehandle.
    pub saved_stateid: Option<Stateid>,
    /// The client the compound acts for: the session's, from SEQUENCE.
    pub client: Option<ClientId>,
    /// Bytes the result of the running operation may take after its op number and status
    /// within the largest reply (what operations that choose their reply's length, as
    /// LISTXATTRS, hold theirs to).
    pub reply_room: usize,
}

impl<'a> Compound<'a> {
    /// A compound of minor version `minor` before its first operation.
    pub fn new(ctx: &'a Ctx<'a>, minor: u32) -> Self {
        Self {
            ctx,
            minor,
            current: None,
            saved: None,
            current_stateid: None,
            saved_stateid: None,
            client: None,
            reply_room: ctx.limits.max_reply,
        }
    }

    /// The client the compound acts for. In NFSv4.1 every compound that reaches a state
    /// operation began with SEQUENCE, which names it; without one (a session layer that
    /// did not say) the state cannot be used: NFS4ERR_OP_NOT_IN_SESSION.
    pub fn client(&self) -> R4<ClientId> {
        self.client.ok_or(Nfs4Error::OpNotInSession)
    }

    /// The current filehandle: NOFILEHANDLE when there is none.
    pub fn fh(&self) -> R4<&Place> {
        self.current.as_ref().ok_or(Nfs4Error::NoFileHandle)
    }

    /// Sets the current filehandle (an operation that sets no stateid clears it: the op
    /// table's [`CLEARS_STATEID`]).
    pub fn set_fh(&mut self, p: Place) {
        self.current = Some(p);
    }

    /// The stateid an operation is to use: the current one for the special "current"
    /// stateid (BAD_STATEID when there is none), else `s` (RFC 8881 16.2.3.1.2).
    pub fn stateid(&self, s: Stateid) -> R4<Stateid> {
        // NFSv4.0 has no "current" stateid: there it is just a stateid nobody holds.
        if s == Stateid::CURRENT && self.minor > 0 {
            return self.current_stateid.ok_or(Nfs4Error::BadStateid);
        }
        Ok(s)
    }

    /// The figures attributes report for this compound.
    pub fn server_attrs(&self) -> ServerAttrs {
        ServerAttrs {
            minor: self.minor,
            lease_time: self.ctx.lease_time,
            max_read: u64::from(self.ctx.max_io),
            max_write: u64::from(self.ctx.max_io),
        }
    }
}

/// The operation needs a current filehandle.
pub const NEEDS_FH: u8 = 1;
/// A session operation, which may start a compound without SEQUENCE ([`Sessions`]).
pub const SESSION: u8 = 2;
/// The operation changes the file system or the state.
pub const MODIFIES: u8 = 4;
/// The operation sets the current filehandle but no stateid: the current stateid is
/// cleared (RFC 8881 16.2.3.1.2).
pub const CLEARS_STATEID: u8 = 8;

/// One row of the op table.
#[derive(Clone, Copy)]
pub struct OpDesc {
    /// `nfs_opnum4`.
    pub num: u32,
    /// Its name, for logs and statistics.
    pub name: &'static str,
    /// Lowest minor version that has it.
    pub since: u32,
    /// Whether minor versions from 1 on have dropped it (the NFSv4.0-only operations:
    /// they answer NOTSUPP there, RFC 8881 section 18).
    pub v40_only: bool,
    /// [`NEEDS_FH`], [`SESSION`], [`MODIFIES`], [`CLEARS_STATEID`].
    pub flags: u8,
    /// Bytes its result may take, besides the op number and status (an estimate checked
    /// against the largest reply before the op runs).
    pub reply_size: usize,
    /// Whether it is built (the engine's dispatch runs it); unbuilt ones answer NOTSUPP.
    pub built: bool,
}

const fn op(num: u32, name: &'static str, since: u32, flags: u8, reply_size: usize) -> OpDesc {
    OpDesc {
        num,
        name,
        since,
        v40_only: false,
        flags,
        reply_size,
        built: false,
    }
}

const fn v40(num: u32, name: &'static str, flags: u8, reply_size: usize) -> OpDesc {
    OpDesc {
        v40_only: true,
        ..built(op(num, name, 0, flags, reply_size))
    }
}

/// A built operation.
const fn built(d: OpDesc) -> OpDesc {
    OpDesc { built: true, ..d }
}

/// Room for a file handle and its length (NFS4_FHSIZE is 128).
const FH_REPLY: usize = 4 + 128;
/// A GETATTR's usual size (all supported attributes with numeric owners take 400 to 500
/// bytes): the estimate errs low rather than refuse GETATTRs a small session could hold,
/// and the real size is checked after the operation.
const ATTR_REPLY: usize = 512;

/// The op table, by operation number from 3 (ACCESS) to 75 (REMOVEXATTR, RFC 8276).
pub static OPS: [OpDesc; 73] = [
    built(op(3, "ACCESS", 0, NEEDS_FH, 8)),
    built(op(4, "CLOSE", 0, NEEDS_FH | MODIFIES, 16)),
    built(op(5, "COMMIT", 0, NEEDS_FH | MODIFIES, 8)),
    built(op(6, "CREATE", 0, NEEDS_FH | MODIFIES | CLEARS_STATEID, 64)),
    op(7, "DELEGPURGE", 0, MODIFIES, 0),
    built(op(8, "DELEGRETURN", 0, NEEDS_FH | MODIFIES, 0)),
    built(op(9, "GETATTR", 0, NEEDS_FH, ATTR_REPLY)),
    built(op(10, "GETFH", 0, NEEDS_FH, FH_REPLY)),
    built(op(11, "LINK", 0, NEEDS_FH | MODIFIES, 20)),
    built(op(12, "LOCK", 0, NEEDS_FH | MODIFIES, 40 + 1024)),
    built(op(13, "LOCKT", 0, NEEDS_FH, 40 + 1024)),
    built(op(14, "LOCKU", 0, NEEDS_FH | MODIFIES, 16)),
    built(op(15, "LOOKUP", 0, NEEDS_FH | CLEARS_STATEID, 0)),
    built(op(16, "LOOKUPP", 0, NEEDS_FH | CLEARS_STATEID, 0)),
    built(op(17, "NVERIFY", 0, NEEDS_FH, 0)),
    built(op(18, "OPEN", 0, NEEDS_FH | MODIFIES, 128)),
    op(19, "OPENATTR", 0, NEEDS_FH, 0),
    v40(20, "OPEN_CONFIRM", NEEDS_FH | MODIFIES, 16),
    built(op(21, "OPEN_DOWNGRADE", 0, NEEDS_FH | MODIFIES, 16)),
    built(op(22, "PUTFH", 0, CLEARS_STATEID, 0)),
    built(op(23, "PUTPUBFH", 0, CLEARS_STATEID, 0)),
    built(op(24, "PUTROOTFH", 0, CLEARS_STATEID, 0)),
    built(op(25, "READ", 0, NEEDS_FH, 8)),
    built(op(26, "READDIR", 0, NEEDS_FH, 8)),
    built(op(27, "READLINK", 0, NEEDS_FH, 4 + 4096)),
    built(op(28, "REMOVE", 0, NEEDS_FH | MODIFIES, 20)),
    built(op(29, "RENAME", 0, NEEDS_FH | MODIFIES, 40)),
    v40(30, "RENEW", MODIFIES, 0),
    built(op(31, "RESTOREFH", 0, 0, 0)),
    built(op(32, "SAVEFH", 0, NEEDS_FH, 0)),
    built(op(33, "SECINFO", 0, NEEDS_FH, 64)),
    built(op(34, "SETATTR", 0, NEEDS_FH | MODIFIES, 16)),
    v40(35, "SETCLIENTID", MODIFIES, 16 + 2 * 1028),
    v40(36, "SETCLIENTID_CONFIRM", MODIFIES, 0),
    built(op(37, "VERIFY", 0, NEEDS_FH, 0)),
    built(op(38, "WRITE", 0, NEEDS_FH | MODIFIES, 16)),
    v40(39, "RELEASE_LOCKOWNER", MODIFIES, 0),
    op(40, "BACKCHANNEL_CTL", 1, SESSION | MODIFIES, 0),
    op(41, "BIND_CONN_TO_SESSION", 1, SESSION | MODIFIES, 24),
    op(42, "EXCHANGE_ID", 1, SESSION | MODIFIES, 2048),
    op(43, "CREATE_SESSION", 1, SESSION | MODIFIES, 128),
    op(44, "DESTROY_SESSION", 1, SESSION | MODIFIES, 0),
    built(op(45, "FREE_STATEID", 1, MODIFIES, 0)),
    op(46, "GET_DIR_DELEGATION", 1, NEEDS_FH | MODIFIES, 64),
    op(47, "GETDEVICEINFO", 1, 0, 64),
    op(48, "GETDEVICELIST", 1, NEEDS_FH, 64),
    op(49, "LAYOUTCOMMIT", 1, NEEDS_FH | MODIFIES, 16),
    op(50, "LAYOUTGET", 1, NEEDS_FH | MODIFIES, 64),
    op(51, "LAYOUTRETURN", 1, NEEDS_FH | MODIFIES, 16),
    built(op(52, "SECINFO_NO_NAME", 1, NEEDS_FH, 64)),
    op(53, "SEQUENCE", 1, SESSION | MODIFIES, 40),
    op(54, "SET_SSV", 1, MODIFIES, 64),
    built(op(55, "TEST_STATEID", 1, 0, 4 + 4 * 1024)),
    built(op(56, "WANT_DELEGATION", 1, NEEDS_FH | MODIFIES, 64)),
    op(57, "DESTROY_CLIENTID", 1, SESSION | MODIFIES, 0),
    built(op(58, "RECLAIM_COMPLETE", 1, MODIFIES, 0)),
    built(op(59, "ALLOCATE", 2, NEEDS_FH | MODIFIES, 0)),
    built(op(60, "COPY", 2, NEEDS_FH | MODIFIES, 64)),
    op(61, "COPY_NOTIFY", 2, NEEDS_FH | MODIFIES, 64),
    built(op(62, "DEALLOCATE", 2, NEEDS_FH | MODIFIES, 0)),
    op(63, "IO_ADVISE", 2, NEEDS_FH, 16),
    op(64, "LAYOUTERROR", 2, NEEDS_FH | MODIFIES, 0),
    op(65, "LAYOUTSTATS", 2, NEEDS_FH | MODIFIES, 0),
    built(op(66, "OFFLOAD_CANCEL", 2, NEEDS_FH | MODIFIES, 0)),
    built(op(67, "OFFLOAD_STATUS", 2, NEEDS_FH, 16)),
    built(op(68, "READ_PLUS", 2, NEEDS_FH, 16)),
    built(op(69, "SEEK", 2, NEEDS_FH, 16)),
    op(70, "WRITE_SAME", 2, NEEDS_FH | MODIFIES, 32),
    built(op(71, "CLONE", 2, NEEDS_FH | MODIFIES, 0)),
    built(op(72, "GETXATTR", 2, NEEDS_FH, 8)),
    built(op(73, "SETXATTR", 2, NEEDS_FH | MODIFIES, 24)),
    built(op(74, "LISTXATTRS", 2, NEEDS_FH, 64)),
    built(op(75, "REMOVEXATTR", 2, NEEDS_FH | MODIFIES, 24)),
];

/// `OP_ILLEGAL`: the op number of the result for an operation number no operation has.
pub const OP_ILLEGAL: u32 = 10044;
/// `OP_SEQUENCE`.
pub const OP_SEQUENCE: u32 = 53;
/// `OP_SETATTR`.
pub const OP_SETATTR: u32 = 34;
/// `NFS4ERR_STALE_CLIENTID`.
pub const STALE_CLIENTID: u32 = 10022;

/// The row of operation `num` in minor version `minor`, if it has one.
pub fn describe(num: u32, minor: u32) -> Option<&'static OpDesc> {
    let d = OPS.get(usize::try_from(num.checked_sub(3)?).ok()?)?;
    (d.since <= minor).then_some(d)
}

/// Longest COMPOUND tag accepted (echoed in the reply; knfsd takes 128 bytes).
pub const MAX_TAG: u32 = 1024;

/// Runs one COMPOUND (RFC 8881 16.2): `request` is the COMPOUND4args, the result the
/// COMPOUND4res. `Err` when the header does not decode (the caller answers GARBAGE_ARGS).
pub fn run_compound(ctx: &Ctx<'_>, request: &[u8]) -> rnfs_xdr::Result<Vec<u8>> {
    let bounds = CompoundLimits {
        max_tag: MAX_TAG,
        max_ops: ctx.limits.max_ops,
    };
    let mut out = Writer::with_capacity(512);
    let (header, mut ops) = match decode_compound_args(request, &bounds) {
        Ok(v) => v,
        Err(CompoundError::Xdr(e)) => return Err(e),
        // A tag this long is not echoed: the compound fails with no results.
        Err(CompoundError::TagTooLong { .. }) => {
            Header::begin(&mut out, &[]).finish(&mut out, Nfs4Error::BadXdr.code(), 0);
            return Ok(out.into_inner());
        }
        // More operations than the server takes: none is read, none is run.
        // NFSv4.0 has no TOO_MANY_OPS: RESOURCE there (RFC 7530 15.2; knfsd too).
        Err(CompoundError::TooManyOps { tag, .. }) => {
            let minor = request
                .get(4 + tag.0.len().div_ceil(4) * 4..)
                .and_then(|b| Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)));
            let e = if minor == Some(0) {
                Nfs4Error::Resource
            } else {
                Nfs4Error::TooManyOps
            };
            Header::begin(&mut out, &tag.0).finish(&mut out, e.code(), 0);
            return Ok(out.into_inner());
        }
    };
    let res = Header::begin(&mut out, &header.tag.0);
    let minor = header.minorversion;
    if minor < ctx.minors.0 || minor > ctx.minors.1 {
        res.finish(&mut out, Nfs4Error::MinorVersMismatch.code(), 0);
        return Ok(out.into_inner());
    }
    let mut c = Compound::new(ctx, minor);
    let count = header.op_count as usize;
    let mut limits = ctx.limits;
    let mut status = 0;
    let mut done = 0;
    for index in 0..count {
        let start = out.len();
        let step = match ops.peek_opnum() {
            // No operation where one was announced.
            None => fail(&mut out, OP_ILLEGAL, Nfs4Error::BadXdr),
            Some(num) => match check(&c, &limits, num, index, count, start) {
                Err(e) => fail(&mut out, result_op(num, minor), e),
                Ok(d) => match ops.next() {
                    Some(Ok(op)) => {
                        c.reply_room = limits.max_reply.saturating_sub(start + 8);
                        run_one(&mut c, &mut limits, d, &op, index, count, &mut out)
                    }
                    // Arguments that do not decode.
                    _ => fail(&mut out, num, Nfs4Error::BadXdr),
                },
            },
        };
        let written_op = ops_num(&out, start);
        let r = match step {
            Step::Replay(reply) => return Ok(reply),
            Step::Result(r) => r,
        };
        done += 1;
        // Its real size against the limits (the estimate may have been short).
        let r = match r {
            Ok(()) if out.len() > limits.max_reply => Err(Nfs4Error::RepTooBig),
            Ok(()) if limits.max_cached.is_some_and(|m| out.len() > m) => {
                Err(Nfs4Error::RepTooBigToCache)
            }
            r => r,
        };
        ctx.sessions
            .op_done(written_op, r.as_ref().err().map_or(0, |e| e.code()));
        if let Err(e) = r {
            if matches!(e, Nfs4Error::RepTooBig | Nfs4Error::RepTooBigToCache) {
                let mut v = std::mem::take(&mut out).into_inner();
                v.truncate(start);
                out = Writer::from_vec(v);
                fail(&mut out, written_op, e);
            }
            status = e.code();
            break;
        }
    }
    res.finish(&mut out, status, done);
    let reply = out.into_inner();
    ctx.sessions.finish(&reply);
    Ok(reply)
}

/// The COMPOUND4res header, its status and result count filled in at the end (the
/// results are written as they come, already encoded, so the proto crate's
/// `ResultsWriter`, which encodes typed results, does not serve).
struct Header {
    status_at: usize,
    count_at: usize,
}

impl Header {
    fn begin(out: &mut Writer, tag: &[u8]) -> Self {
        let status_at = out.len();
        out.u32(0);
        out.opaque(tag);
        let count_at = out.len();
        out.u32(0);
        Self {
            status_at,
            count_at,
        }
    }
    fn finish(self, out: &mut Writer, status: u32, count: u32) {
        out.patch_u32(self.status_at, status);
        out.patch_u32(self.count_at, count);
    }
}

enum Step {
    Result(R4<()>),
    Replay(Vec<u8>),
}

/// The op number a result carries: OP_ILLEGAL for one no operation has.
fn result_op(num: u32, minor: u32) -> u32 {
    if describe(num, minor).is_some() {
        num
    } else {
        OP_ILLEGAL
    }
}

/// Appends a result of status `e` (no body) for op number `num`.
fn fail(out: &mut Writer, num: u32, e: Nfs4Error) -> Step {
    out.u32(num);
    out.u32(e.code());
    // SETATTR4res is the one result that is not a union on its status: its `attrsset`
    // follows whatever the status (RFC 8881 18.30), empty when nothing was set.
    if num == OP_SETATTR {
        out.u32(0);
    }
    Step::Result(Err(e))
}

/// The op number of the result written at `start`.
fn ops_num(out: &Writer, start: usize) -> u32 {
    out.as_slice()
        .get(start..start + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(OP_ILLEGAL, u32::from_be_bytes)
}

/// What is known of operation `num` before its arguments are decoded: OP_ILLEGAL for a
/// number no operation (of this minor version) has, the session rules (RFC 8881 2.10.6,
/// 18.46.3), the reply-size estimate, NOTSUPP for one not built (its arguments are then
/// never decoded, nor a WRITE's data copied).
fn check(
    c: &Compound<'_>,
    limits: &Limits,
    num: u32,
    index: usize,
    count: usize,
    reply_len: usize,
) -> R4<&'static OpDesc> {
    let d = describe(num, c.minor).ok_or(Nfs4Error::OpIllegal)?;
    if d.v40_only && c.minor > 0 {
        return Err(Nfs4Error::NotSupp);
    }
    if c.minor > 0 {
        if index == 0 && d.flags & SESSION == 0 {
            return Err(Nfs4Error::OpNotInSession);
        }
        if index == 0 && d.num != OP_SEQUENCE && count > 1 {
            return Err(Nfs4Error::NotOnlyOp);
        }
        if index > 0 && d.num == OP_SEQUENCE {
            return Err(Nfs4Error::SequencePos);
        }
    }
    if reply_len + 8 + d.reply_size > limits.max_reply {
        return Err(Nfs4Error::RepTooBig);
    }
    if d.flags & SESSION == 0 && !d.built {
        return Err(Nfs4Error::NotSupp);
    }
    if d.flags & NEEDS_FH != 0 && c.current.is_none() {
        return Err(Nfs4Error::NoFileHandle);
    }
    Ok(d)
}

/// Runs operation `op` (at `index` of `count`), which [`check`] let through, and appends
/// its result.
fn run_one(
    c: &mut Compound<'_>,
    limits: &mut Limits,
    d: &OpDesc,
    op: &NfsArgop4,
    index: usize,
    count: usize,
    out: &mut Writer,
) -> Step {
    let num = d.num;
    if d.flags & SESSION != 0 {
        let mut body = Writer::new();
        let step = c.ctx.sessions.run(op, index, count, &mut body);
        return match step.clone() {
            SessionStep::Replay(reply) => Step::Replay(reply),
            SessionStep::Err(e) => fail(out, num, e),
            SessionStep::Ok(l) | SessionStep::Sequenced { limits: l, .. } => {
                if let SessionStep::Sequenced { client, .. } = step {
                    c.client = Some(client);
                }
                if let Some(l) = l {
                    *limits = l;
                    if count > l.max_ops as usize {
                        return fail(out, num, Nfs4Error::TooManyOps);
                    }
                }
                out.u32(num);
                out.u32(0);
                out.raw(body.as_slice());
                Step::Result(Ok(()))
            }
        };
    }
    let mut body = Writer::new();
    let r = if c.minor == 0 {
        ops::v40::run(c, op, &mut body)
    } else {
        dispatch(c, op, &mut body)
    };
    if r.is_ok() && d.flags & CLEARS_STATEID != 0 {
        c.current_stateid = None;
    }
    out.u32(num);
    out.u32(match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    });
    out.raw(body.as_slice());
    Step::Result(r)
}

/// Runs a built operation: one arm per operation, its handler in `ops/`. The op table's
/// `built` flag lists the same operations (the test `the_table_and_dispatch_agree` holds
/// them together).
pub(crate) fn dispatch(c: &mut Compound<'_>, op: &NfsArgop4, w: &mut Writer) -> R4<()> {
    use ops::{access, attr, copy, dir, fh, io, lock, open, readplus, space, v40, xattr};
    use NfsArgop4 as A;
    match op {
        A::OpAccess(a) => access::access(c, a, w),
        A::OpClose(a) => open::close(c, a, w),
        A::OpCommit(a) => io::commit(c, a, w),
        A::OpCreate(a) => dir::create(c, a, w),
        A::OpDelegreturn(a) => lock::delegreturn(c, a),
        A::OpFreeStateid(a) => lock::free_stateid(c, a),
        A::OpLink(a) => dir::link(c, a, w),
        A::OpLock(a) => lock::lock(c, a, w),
        A::OpLockt(a) => lock::lockt(c, a, w),
        A::OpLocku(a) => lock::locku(c, a, w),
        A::OpOpen(a) => open::open(c, a, w),
        A::OpOpenDowngrade(a) => open::open_downgrade(c, a, w),
        A::OpRead(a) => io::read(c, a, w),
        A::OpReaddir(a) => dir::readdir(c, a, w),
        A::OpRemove(a) => dir::remove(c, a, w),
        A::OpRename(a) => dir::rename(c, a, w),
        A::OpSetattr(a) => io::setattr(c, a, w),
        A::OpTestStateid(a) => lock::test_stateid(c, a, w),
        A::OpWantDelegation(a) => lock::want_delegation(c, a, w),
        A::OpWrite(a) => io::write(c, a, w),
        A::OpAllocate(a) => space::allocate(c, a),
        A::OpDeallocate(a) => space::deallocate(c, a),
        A::OpSeek(a) => space::seek(c, a, w),
        A::OpGetxattr(a) => xattr::getxattr(c, a, w),
        A::OpSetxattr(a) => xattr::setxattr(c, a, w),
        A::OpListxattrs(a) => xattr::listxattrs(c, a, w),
        A::OpRemovexattr(a) => xattr::removexattr(c, a, w),
        A::OpCopy(a) => copy::copy(c, a, w),
        A::OpClone(a) => copy::clone(c, a),
        A::OpOffloadStatus(a) => copy::offload_status(c, a, w),
        A::OpOffloadCancel(a) => copy::offload_cancel(c, a),
        A::OpReadPlus(a) => readplus::read_plus(c, a, w),
        A::OpGetattr(a) => attr::getattr(c, a, w),
        A::OpGetfh => fh::getfh(c, w),
        A::OpLookup(a) => fh::lookup(c, a),
        A::OpLookupp => fh::lookupp(c),
        A::OpNverify(a) => attr::nverify(c, a),
        A::OpPutfh(a) => fh::putfh(c, a),
        A::OpPutpubfh => fh::putpubfh(c),
        A::OpPutrootfh => fh::putrootfh(c),
        A::OpReadlink => access::readlink(c, w),
        A::OpRestorefh => fh::restorefh(c),
        A::OpSavefh => fh::savefh(c),
        A::OpSecinfo(a) => fh::secinfo(c, a, w),
        A::OpSecinfoNoName(a) => fh::secinfo_no_name(c, *a, w),
        A::OpVerify(a) => attr::verify(c, a),
        A::OpReclaimComplete(a) => c.ctx.sessions.reclaim_complete(c.client()?, a.rca_one_fs),
        A::OpOpenConfirm(a) => v40::open_confirm(c, a, w),
        A::OpRenew(a) => v40::renew(c, a.clientid),
        A::OpSetclientid(a) => c.ctx.sessions.setclientid(a, w),
        A::OpSetclientidConfirm(a) => c.ctx.sessions.setclientid_confirm(a),
        A::OpReleaseLockowner(a) => v40::release_lockowner(c, a),
        _ => Err(Nfs4Error::NotSupp),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v4::attrs::{num, Bitmap};
    use crate::{Export, NfsServer};
    use rnfs_rpc::message::Auth;
    use rnfs_vfs::memory::MemFs;
    use rnfs_vfs::{Backend, Ctx as VCtx, SetAttr};
    use rnfs_xdr::Reader;
    use std::cell::RefCell;
    use std::sync::Arc;

    const SEQ: u32 = OP_SEQUENCE;
    const PUTROOTFH: u32 = 24;
    const PUTFH: u32 = 22;
    const GETFH: u32 = 10;
    const LOOKUP: u32 = 15;
    const LOOKUPP: u32 = 16;
    const GETATTR: u32 = 9;
    const SAVEFH: u32 = 32;
    const RESTOREFH: u32 = 31;
    const SECINFO: u32 = 33;
    const SECINFO_NO_NAME: u32 = 52;
    const ACCESS: u32 = 3;
    const READLINK: u32 = 27;
    const VERIFY: u32 = 37;
    const NVERIFY: u32 = 17;
    const EXCHANGE_ID: u32 = 42;
    const DESTROY_SESSION: u32 = 44;

    /// SEQUENCE for the tests: takes its 32 bytes of arguments, answers 36 bytes, and
    /// gives the limits it was made with; or replays a reply.
    struct FakeSessions {
        limits: Option<Limits>,
        replay: Option<Vec<u8>>,
        finished: RefCell<Vec<Vec<u8>>>,
    }

    impl Sessions for FakeSessions {
        fn run(&self, op: &NfsArgop4, _: usize, _: usize, out: &mut Writer) -> SessionStep {
            if !matches!(op, NfsArgop4::OpSequence(_)) {
                return SessionStep::Err(Nfs4Error::NotSupp);
            }
            if let Some(reply) = &self.replay {
                return SessionStep::Replay(reply.clone());
            }
            out.raw(&[0; 36]);
            SessionStep::Sequenced {
                limits: self.limits,
                client: ClientId(7),
            }
        }
        fn finish(&self, reply: &[u8]) {
            self.finished.borrow_mut().push(reply.to_vec());
        }
    }

    fn sessions() -> FakeSessions {
        FakeSessions {
            limits: None,
            replay: None,
            finished: RefCell::default(),
        }
    }

    const WIDE: Limits = Limits {
        max_ops: 64,
        max_reply: 1 << 20,
        max_cached: None,
    };

    struct World {
        server: NfsServer,
        fs: Arc<MemFs>,
        pseudo: PseudoFs,
        owners: OwnerMap,
        locking: parking_lot::Mutex<Locking>,
    }

    fn world() -> World {
        let fs = Arc::new(MemFs::new(1 << 20));
        let (server, pseudo) =
            super::super::pseudo::test_exports(fs.clone(), Arc::new(MemFs::new(1 << 20)));
        World {
            server,
            fs,
            pseudo,
            owners: OwnerMap::numeric(),
            locking: parking_lot::Mutex::new(Locking::new(1, Default::default())),
        }
    }

    static NONE: Auth = Auth::None;

    impl World {
        fn ctx<'a>(&'a self, s: &'a dyn Sessions, limits: Limits) -> Ctx<'a> {
            Ctx {
                pseudo: &self.pseudo,
                caller: Caller {
                    peer: "10.0.0.1:900".parse().unwrap(),
                    auth: &NONE,
                },
                owners: &self.owners,
                lease_time: 90,
                max_io: 1 << 20,
                minors: (1, 2),
                limits,
                sessions: s,
                locate: &any_key,
                state: StateCtx {
                    locking: &self.locking,
                    hooks: &NoHooks,
                    now: Time(0),
                    write_verf: [7; 8],
                },
            }
        }
        fn run(&self, req: &[u8]) -> Reply {
            let s = sessions();
            Reply::parse(run_compound(&self.ctx(&s, WIDE), req).unwrap())
        }
        fn root_key(&self) -> rnfs_vfs::FileKey {
            self.fs.root()
        }
    }

    /// Builds a COMPOUND4args.
    struct Req {
        w: Writer,
        n: u32,
        at: usize,
    }

    fn req(tag: &[u8], minor: u32) -> Req {
        let mut w = Writer::new();
        w.opaque(tag);
        w.u32(minor);
        let at = w.len();
        w.u32(0);
        Req { w, n: 0, at }
    }

    impl Req {
        fn op(mut self, num: u32, args: impl FnOnce(&mut Writer)) -> Self {
            self.w.u32(num);
            args(&mut self.w);
            self.n += 1;
            self
        }
        fn plain(self, num: u32) -> Self {
            self.op(num, |_| {})
        }
        fn seq(self) -> Self {
            self.op(SEQ, |w| w.raw(&[0; 32]))
        }
        fn name(self, num: u32, name: &[u8]) -> Self {
            self.op(num, |w| w.opaque(name))
        }
        fn done(mut self) -> Vec<u8> {
            self.w.patch_u32(self.at, self.n);
            self.w.into_inner()
        }
    }

    /// A COMPOUND4res, its results left to read in order.
    struct Reply {
        bytes: Vec<u8>,
        status: u32,
        tag: Vec<u8>,
        count: u32,
        pos: usize,
    }

    impl Reply {
        fn parse(bytes: Vec<u8>) -> Self {
            let mut r = Reader::new(&bytes);
            let status = r.u32().unwrap();
            let tag = r.opaque(MAX_TAG).unwrap().to_vec();
            let count = r.u32().unwrap();
            let pos = r.position();
            Self {
                bytes,
                status,
                tag,
                count,
                pos,
            }
        }
        /// The next result's op number and status, and a reader of what follows.
        fn next(&mut self) -> (u32, u32, Reader<'_>) {
            let mut r = Reader::new(&self.bytes[self.pos..]);
            let op = r.u32().unwrap();
            let st = r.u32().unwrap();
            self.pos += 8;
            (op, st, Reader::new(&self.bytes[self.pos..]))
        }
        /// Skips `n` bytes of the current result's body.
        fn skip(&mut self, n: usize) {
            self.pos += n;
        }
        /// The statuses of all results, for replies whose bodies are known to be empty
        /// but for the SEQUENCE at the start and the failing one at the end.
        fn ops(&mut self) -> Vec<(u32, u32)> {
            (0..self.count)
                .map(|_| {
                    let (op, st, _) = self.next();
                    if op == SEQ && st == 0 {
                        self.skip(36);
                    }
                    (op, st)
                })
                .collect()
        }
    }

    fn code(e: Nfs4Error) -> u32 {
        e.code()
    }

    #[test]
    fn the_minor_version_is_checked_first() {
        let w = world();
        for minor in [0, 3, 99] {
            let mut r = w.run(&req(b"t1", minor).plain(PUTROOTFH).done());
            assert_eq!(r.status, code(Nfs4Error::MinorVersMismatch));
            assert_eq!((r.tag.as_slice(), r.count), (&b"t1"[..], 0));
            assert!(r.ops().is_empty());
        }
        let r = w.run(&req(b"t2", 2).seq().plain(PUTROOTFH).done());
        assert_eq!((r.status, r.count), (0, 2), "4.2 is served");
    }

    #[test]
    fn a_v41_compound_starts_with_sequence() {
        let w = world();
        let mut r = w.run(&req(b"", 1).plain(PUTROOTFH).plain(GETFH).done());
        assert_eq!(r.status, code(Nfs4Error::OpNotInSession));
        assert_eq!(r.ops(), [(PUTROOTFH, code(Nfs4Error::OpNotInSession))]);
        let mut r = w.run(&req(b"", 1).seq().seq().done());
        assert_eq!(r.ops(), [(SEQ, 0), (SEQ, code(Nfs4Error::SequencePos))]);
        let mut r = w.run(&req(b"", 1).op(EXCHANGE_ID, |_| {}).plain(PUTROOTFH).done());
        assert_eq!(r.ops(), [(EXCHANGE_ID, code(Nfs4Error::NotOnlyOp))]);
        // Alone, it goes to the session operations, decoded (here: not built)...
        let mut r = w.run(&req(b"", 1).op(DESTROY_SESSION, |x| x.raw(&[0; 16])).done());
        assert_eq!(r.ops(), [(DESTROY_SESSION, code(Nfs4Error::NotSupp))]);
        // ... if its arguments decode.
        let mut r = w.run(&req(b"", 1).op(EXCHANGE_ID, |_| {}).done());
        assert_eq!(r.ops(), [(EXCHANGE_ID, code(Nfs4Error::BadXdr))]);
    }

    #[test]
    fn unknown_and_unbuilt_operations() {
        let w = world();
        for bad in [0, 1, 2, 76, 9999, OP_ILLEGAL] {
            let mut r = w.run(&req(b"", 1).seq().plain(bad).plain(PUTROOTFH).done());
            assert_eq!(r.status, code(Nfs4Error::OpIllegal), "op {bad}");
            assert_eq!(
                r.ops(),
                [(SEQ, 0), (OP_ILLEGAL, code(Nfs4Error::OpIllegal))]
            );
        }
        // ALLOCATE and WRITE_SAME are NFSv4.2: illegal in 4.1; in 4.2 ALLOCATE is built
        // (here without a current filehandle), WRITE_SAME is known but not built.
        let mut r = w.run(&req(b"", 1).seq().plain(59).done());
        assert_eq!(r.ops()[1], (OP_ILLEGAL, code(Nfs4Error::OpIllegal)));
        let mut r = w.run(&req(b"", 2).seq().plain(59).done());
        assert_eq!(r.ops()[1], (59, code(Nfs4Error::NoFileHandle)));
        let mut r = w.run(&req(b"", 2).seq().plain(70).done());
        assert_eq!(r.ops()[1], (70, code(Nfs4Error::NotSupp)));
        // OPENATTR is not built; OPEN_CONFIRM is NFSv4.0 only.
        let mut r = w.run(&req(b"", 1).seq().plain(PUTROOTFH).plain(19).done());
        assert_eq!(r.ops()[2], (19, code(Nfs4Error::NotSupp)));
        let mut r = w.run(&req(b"", 1).seq().plain(20).done());
        assert_eq!(r.ops()[1], (20, code(Nfs4Error::NotSupp)));
        // The table is indexed by op number.
        for (i, d) in OPS.iter().enumerate() {
            assert_eq!(d.num as usize, i + 3, "{}", d.name);
        }
    }

    #[test]
    fn walking_the_pseudo_fs_into_an_export_and_back() {
        let w = world();
        let want = |p: &Place| w.pseudo.fh(p).0;
        let mut r = w.run(
            &req(b"walk", 1)
                .seq()
                .plain(PUTROOTFH)
                .plain(GETFH)
                .name(LOOKUP, b"srv")
                .name(LOOKUP, b"a")
                .plain(GETFH)
                .plain(LOOKUPP)
                .plain(LOOKUPP)
                .plain(GETFH)
                .done(),
        );
        assert_eq!((r.status, r.count, r.tag.as_slice()), (0, 9, &b"walk"[..]));
        let caller = Caller {
            peer: "10.0.0.1:900".parse().unwrap(),
            auth: &NONE,
        };
        let root = w.pseudo.root(&caller).unwrap();
        let a = w
            .pseudo
            .lookup(
                &caller,
                &w.pseudo.lookup(&caller, &root, b"srv").unwrap(),
                b"a",
            )
            .unwrap();
        r.next();
        r.skip(36);
        r.next();
        let (op, st, mut b) = r.next();
        assert_eq!((op, st), (GETFH, 0));
        let fh = b.opaque(128).unwrap().to_vec();
        assert_eq!(fh, want(&root));
        r.skip(4 + fh.len().div_ceil(4) * 4);
        r.next();
        r.next();
        let (_, _, mut b) = r.next();
        let fh = b.opaque(128).unwrap().to_vec();
        assert_eq!(fh, want(&a));
        assert!(matches!(&a, Place::Export { key, .. } if *key == w.root_key()));
        r.skip(4 + fh.len().div_ceil(4) * 4);
        r.next();
        r.next();
        let (_, _, mut b) = r.next();
        assert_eq!(b.opaque(128).unwrap(), &want(&root)[..]);
        // PUTFH of a handle from GETFH lands in the same place.
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .op(PUTFH, |x| x.opaque(&want(&a)))
                .name(LOOKUP, b"nope")
                .done(),
        );
        assert_eq!(r.ops()[1..], [(PUTFH, 0), (LOOKUP, code(Nfs4Error::NoEnt))]);
        // A key the backend cannot place (here: never) stops at PUTFH.
        let s = sessions();
        let nowhere = |_: &Arc<Export>, _: &rnfs_vfs::FileKey| Err(Nfs4Error::Stale);
        let ctx = Ctx {
            locate: &nowhere,
            ..w.ctx(&s, WIDE)
        };
        let q = req(b"", 1).seq().op(PUTFH, |x| x.opaque(&want(&a))).done();
        let mut r = Reply::parse(run_compound(&ctx, &q).unwrap());
        assert_eq!(r.ops()[1], (PUTFH, code(Nfs4Error::Stale)));
        // Pseudo nodes are not the backend's to place.
        let q = req(b"", 1)
            .seq()
            .op(PUTFH, |x| x.opaque(&want(&root)))
            .done();
        assert_eq!(Reply::parse(run_compound(&ctx, &q).unwrap()).status, 0);
        let mut bad = want(&a);
        bad[5] ^= 1;
        let mut r = w.run(&req(b"", 1).seq().op(PUTFH, |x| x.opaque(&bad)).done());
        assert_eq!(r.ops()[1], (PUTFH, code(Nfs4Error::BadHandle)));
    }

    #[test]
    fn the_current_and_saved_filehandles() {
        let w = world();
        let mut r = w.run(&req(b"", 1).seq().plain(GETFH).done());
        assert_eq!(r.ops()[1], (GETFH, code(Nfs4Error::NoFileHandle)));
        let mut r = w.run(&req(b"", 1).seq().plain(PUTROOTFH).plain(RESTOREFH).done());
        assert_eq!(r.ops()[2], (RESTOREFH, code(Nfs4Error::RestoreFh)));
        let mut r = w.run(&req(b"", 1).seq().plain(SAVEFH).done());
        assert_eq!(r.ops()[1], (SAVEFH, code(Nfs4Error::NoFileHandle)));
        // SAVEFH at the root, LOOKUP away, RESTOREFH: GETFH gives the root again.
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .plain(SAVEFH)
                .name(LOOKUP, b"srv")
                .plain(RESTOREFH)
                .plain(GETFH)
                .done(),
        );
        assert_eq!(r.status, 0);
        assert_eq!(r.next().0, SEQ);
        r.skip(36);
        for op in [PUTROOTFH, SAVEFH, LOOKUP, RESTOREFH] {
            assert_eq!(r.next().0, op);
        }
        let (_, _, mut b) = r.next();
        let caller = Caller {
            peer: "10.0.0.1:900".parse().unwrap(),
            auth: &NONE,
        };
        assert_eq!(
            b.opaque(128).unwrap(),
            &w.pseudo.fh(&w.pseudo.root(&caller).unwrap()).0[..]
        );
    }

    #[test]
    fn secinfo_consumes_the_current_filehandle() {
        let w = world();
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .op(SECINFO_NO_NAME, |x| x.u32(0))
                .plain(GETFH)
                .done(),
        );
        r.next();
        r.skip(36);
        r.next();
        let (op, st, mut b) = r.next();
        assert_eq!((op, st), (SECINFO_NO_NAME, 0));
        assert_eq!(
            (b.u32().unwrap(), b.u32().unwrap()),
            (1, 1),
            "one flavour: AUTH_SYS"
        );
        r.skip(8);
        assert_eq!(r.next().1, code(Nfs4Error::NoFileHandle));
        // SECINFO of a name; of the parent of the root: NOENT.
        let r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .name(SECINFO, b"srv")
                .done(),
        );
        assert_eq!(r.status, 0);
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .op(SECINFO_NO_NAME, |x| x.u32(1))
                .done(),
        );
        assert_eq!(r.ops()[2], (SECINFO_NO_NAME, code(Nfs4Error::NoEnt)));
    }

    #[test]
    fn too_many_operations() {
        let w = world();
        let s = sessions();
        let cap = Limits {
            max_ops: 16,
            ..WIDE
        };
        // 10,000 operations: TOO_MANY_OPS, the tag echoed, nothing run.
        let mut big = req(b"big", 1).seq();
        for _ in 0..9_999 {
            big = big.plain(PUTROOTFH);
        }
        let r = Reply::parse(run_compound(&w.ctx(&s, cap), &big.done()).unwrap());
        assert_eq!(r.status, code(Nfs4Error::TooManyOps));
        assert_eq!((r.tag.as_slice(), r.count), (&b"big"[..], 0));
        assert!(r.bytes.len() < 64);
        // At the bound, the compound runs.
        let mut at = req(b"", 1).seq();
        for _ in 1..16 {
            at = at.plain(PUTROOTFH);
        }
        let r = Reply::parse(run_compound(&w.ctx(&s, cap), &at.done()).unwrap());
        assert_eq!((r.status, r.count), (0, 16));
        // The session's own limit, from SEQUENCE, applies to the rest.
        let s = FakeSessions {
            limits: Some(Limits { max_ops: 2, ..WIDE }),
            ..sessions()
        };
        let three = req(b"", 1).seq().plain(PUTROOTFH).plain(GETFH).done();
        let mut r = Reply::parse(run_compound(&w.ctx(&s, WIDE), &three).unwrap());
        assert_eq!(r.ops(), [(SEQ, code(Nfs4Error::TooManyOps))]);
    }

    #[test]
    fn reply_sizes_are_held_to_the_limits() {
        let w = world();
        let s = FakeSessions {
            limits: Some(Limits {
                max_reply: 200,
                ..WIDE
            }),
            ..sessions()
        };
        let getattr = |x: &mut Writer| Bitmap::of(&[num::TYPE]).encode(x);
        // GETATTR's estimate (every attribute) does not fit in 200 bytes.
        let q = req(b"", 1)
            .seq()
            .plain(PUTROOTFH)
            .op(GETATTR, getattr)
            .done();
        let mut r = Reply::parse(run_compound(&w.ctx(&s, WIDE), &q).unwrap());
        assert_eq!(r.ops()[2], (GETATTR, code(Nfs4Error::RepTooBig)));
        // A cached reply is held to the cache's limit.
        let s = FakeSessions {
            limits: Some(Limits {
                max_cached: Some(70),
                ..WIDE
            }),
            ..sessions()
        };
        let q = req(b"", 1).seq().plain(PUTROOTFH).plain(GETFH).done();
        let mut r = Reply::parse(run_compound(&w.ctx(&s, WIDE), &q).unwrap());
        assert_eq!(r.status, code(Nfs4Error::RepTooBigToCache));
        assert_eq!(
            r.ops()[1..],
            [(PUTROOTFH, 0), (GETFH, code(Nfs4Error::RepTooBigToCache))]
        );
        assert!(r.bytes.len() <= 70 + 8);
        assert_eq!(s.finished.borrow().len(), 1, "the session sees the reply");
    }

    #[test]
    fn a_retried_request_gets_the_cached_reply() {
        let w = world();
        let s = FakeSessions {
            replay: Some(b"cached reply".to_vec()),
            ..sessions()
        };
        let q = req(b"", 1).seq().plain(PUTROOTFH).done();
        assert_eq!(run_compound(&w.ctx(&s, WIDE), &q).unwrap(), b"cached reply");
    }

    #[test]
    fn malformed_compounds() {
        let w = world();
        // A tag past its bound is not echoed.
        let mut q = Writer::new();
        q.opaque(&vec![b'x'; MAX_TAG as usize + 1]);
        q.u32(1);
        q.u32(0);
        let r = w.run(&q.into_inner());
        assert_eq!(
            (r.status, r.tag.len(), r.count),
            (code(Nfs4Error::BadXdr), 0, 0)
        );
        // Fewer operations than announced: the missing one is BADXDR.
        let mut q = req(b"", 1).seq().done();
        q[11] = 3; // the count
        let mut r = w.run(&q);
        assert_eq!(r.status, code(Nfs4Error::BadXdr));
        assert_eq!(r.ops(), [(SEQ, 0), (OP_ILLEGAL, code(Nfs4Error::BadXdr))]);
        // SETATTR failing before it runs (its arguments cut short) still carries its
        // `attrsset`, so the reply decodes (found by the nfs4_dispatch fuzz target).
        let mut q = req(b"", 1).seq().op(PUTROOTFH, |_| {}).done();
        q.extend_from_slice(&[0, 0, 0, 34, 24, 0, 0, 0, 24]);
        q[11] = 3; // the count
        let r = w.run(&q);
        assert_eq!(r.status, code(Nfs4Error::BadXdr));
        let lim = rnfs_proto::nfs4::CompoundLimits {
            max_tag: MAX_TAG,
            max_ops: 16,
        };
        let (_, ops) = rnfs_proto::nfs4::decode_compound_res(&r.bytes, &lim).unwrap();
        let ops: Vec<_> = ops.collect::<Result<_, _>>().unwrap();
        assert_eq!(ops.len(), 3);
        // A handle longer than NFS4_FHSIZE.
        let mut r = w.run(&req(b"", 1).seq().op(PUTFH, |x| x.opaque(&[0; 129])).done());
        assert_eq!(r.ops()[1], (PUTFH, code(Nfs4Error::BadXdr)));
        // A tag at its bound is echoed.
        let r = w.run(&req(&vec![b'x'; MAX_TAG as usize], 1).seq().done());
        assert_eq!((r.status, r.tag.len()), (0, MAX_TAG as usize));
        // A header that does not decode at all is the caller's GARBAGE_ARGS.
        let s = sessions();
        assert!(run_compound(&w.ctx(&s, WIDE), &[0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn getattr_verify_and_nverify() {
        let w = world();
        let mask = Bitmap::of(&[num::TYPE, num::FSID, num::MOUNTED_ON_FILEID]);
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .name(LOOKUP, b"srv")
                .name(LOOKUP, b"a")
                .op(GETATTR, |x| mask.encode(x))
                .done(),
        );
        assert_eq!(r.status, 0);
        r.next();
        r.skip(36);
        r.next();
        r.next();
        r.next();
        let (_, _, mut b) = r.next();
        let f = crate::v4::attrs::Fattr::decode(&mut b).unwrap();
        assert_eq!(f.mask, mask);
        let vals = f.vals.to_vec();
        let mut v = Reader::new(&vals);
        assert_eq!(v.u32().unwrap(), 2, "NF4DIR");
        let e = w.server.exports().exports[0].clone();
        assert_eq!(
            (v.u64().unwrap(), v.u64().unwrap()),
            (
                u64::from(e.id),
                w.fs.getattr(&VCtx::default(), &w.fs.root()).unwrap().fsid
            )
        );
        let mounted_on = v.u64().unwrap();
        let caller = Caller {
            peer: "10.0.0.1:900".parse().unwrap(),
            auth: &NONE,
        };
        let srv = w
            .pseudo
            .lookup(&caller, &w.pseudo.root(&caller).unwrap(), b"srv")
            .unwrap();
        let names = w.pseudo.entries(
            &caller,
            match srv {
                Place::Pseudo(id) => id,
                _ => unreachable!(),
            },
        );
        assert_eq!(names.unwrap().len(), 1);
        assert_ne!(
            mounted_on,
            w.fs.getattr(&VCtx::default(), &w.fs.root()).unwrap().fileid
        );
        // VERIFY with those values passes; NVERIFY answers SAME.
        let fattr = |x: &mut Writer| crate::v4::attrs::write_fattr(x, mask, &vals);
        let walk = || {
            req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .name(LOOKUP, b"srv")
                .name(LOOKUP, b"a")
        };
        let r = w.run(&walk().op(VERIFY, fattr).done());
        assert_eq!(r.status, 0);
        let r = w.run(&walk().op(NVERIFY, fattr).done());
        assert_eq!(r.status, code(Nfs4Error::Same));
        // After a change, VERIFY of the change attribute fails.
        let change = Bitmap::of(&[num::CHANGE]);
        let before = w.fs.getattr(&VCtx::default(), &w.fs.root()).unwrap().change;
        w.fs.mkdir(&VCtx::default(), &w.fs.root(), b"d", &SetAttr::default())
            .unwrap();
        let old = before.to_be_bytes();
        let r = w.run(
            &walk()
                .op(VERIFY, |x| crate::v4::attrs::write_fattr(x, change, &old))
                .done(),
        );
        assert_eq!(r.status, code(Nfs4Error::NotSame));
        let r = w.run(
            &walk()
                .op(NVERIFY, |x| crate::v4::attrs::write_fattr(x, change, &old))
                .done(),
        );
        assert_eq!(r.status, 0);
    }

    #[test]
    fn access_and_readlink() {
        let w = world();
        let ctx = VCtx::default();
        w.fs.symlink(&ctx, &w.fs.root(), b"l", b"target", &SetAttr::default())
            .unwrap();
        let asked = 0x1 | 0x2 | 0x4 | 0x40;
        // The pseudo root: read and lookup only; 0x40 (an NFSv4.2 xattr bit) unsupported.
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .op(ACCESS, |x| x.u32(asked))
                .done(),
        );
        r.next();
        r.skip(36);
        r.next();
        let (_, st, mut b) = r.next();
        assert_eq!((st, b.u32().unwrap(), b.u32().unwrap()), (0, 0x7, 0x3));
        // The read-only export: MODIFY is never granted, even to its owner.
        let mut r = w.run(
            &req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .name(LOOKUP, b"ro")
                .op(ACCESS, |x| x.u32(0x4))
                .done(),
        );
        r.next();
        r.skip(36);
        r.next();
        r.next();
        let (_, st, mut b) = r.next();
        assert_eq!((st, b.u32().unwrap(), b.u32().unwrap()), (0, 0x4, 0));
        // READLINK of a link, and of a directory.
        let walk = || {
            req(b"", 1)
                .seq()
                .plain(PUTROOTFH)
                .name(LOOKUP, b"srv")
                .name(LOOKUP, b"a")
        };
        let mut r = w.run(&walk().name(LOOKUP, b"l").plain(READLINK).done());
        assert_eq!(r.status, 0);
        for _ in 0..5 {
            let (op, _, _) = r.next();
            if op == SEQ {
                r.skip(36);
            }
        }
        let (_, _, mut b) = r.next();
        assert_eq!(b.opaque(100).unwrap(), b"target");
        let r = w.run(&walk().plain(READLINK).done());
        assert_eq!(r.status, code(Nfs4Error::Inval));
    }

    #[test]
    fn the_table_and_dispatch_agree() {
        // Every operation the wire types know, decoded from zeros (empty lengths), run on
        // the root: NOTSUPP exactly for those the table says are not built.
        let w = world();
        let s = sessions();
        let ctx = w.ctx(&s, WIDE);
        let caller = ctx.caller;
        // The NFSv4.0 client operations go to the session layer, like the 4.1 ones.
        for d in OPS.iter().filter(|d| d.flags & SESSION == 0 && !d.v40_only) {
            let mut bytes = d.num.to_be_bytes().to_vec();
            bytes.extend([0; 256]);
            let Ok(op) = <NfsArgop4 as rnfs_xdr::Xdr>::decode(&mut Reader::new(&bytes)) else {
                continue;
            };
            if matches!(op, NfsArgop4::Unknown(_)) {
                assert!(!d.built, "{} is built but has no wire type", d.name);
                continue;
            }
            let mut at = w.pseudo.root(&caller).unwrap();
            if (72..=75).contains(&d.num) {
                // The xattr operations answer NOTSUPP on a pseudo directory, which holds
                // none (RFC 8276 8.1): they run on the export's root.
                for n in [&b"srv"[..], b"a"] {
                    at = w.pseudo.lookup(&caller, &at, n).unwrap();
                }
            }
            let mut c = Compound {
                current: Some(at),
                ..Compound::new(&ctx, 2)
            };
            let r = dispatch(&mut c, &op, &mut Writer::new());
            assert_eq!(r == Err(Nfs4Error::NotSupp), !d.built, "{}: {r:?}", d.name);
        }
    }

    #[test]
    fn the_current_stateid() {
        let w = world();
        let s = sessions();
        let ctx = w.ctx(&s, WIDE);
        let mut c = Compound::new(&ctx, 1);
        assert_eq!(c.stateid(Stateid::CURRENT), Err(Nfs4Error::BadStateid));
        let mine = Stateid {
            seqid: 3,
            other: [9; 12],
        };
        assert_eq!(c.stateid(mine), Ok(mine));
        c.current_stateid = Some(mine);
        assert_eq!(c.stateid(Stateid::CURRENT), Ok(mine));
        // SAVEFH / RESTOREFH carry it; PUTROOTFH clears it (CLEARS_STATEID).
        let mut out = Writer::new();
        let mut l = WIDE;
        let d = describe(PUTROOTFH, 1).unwrap();
        let step = run_one(&mut c, &mut l, d, &NfsArgop4::OpPutrootfh, 1, 3, &mut out);
        assert!(matches!(step, Step::Result(Ok(()))));
        assert_eq!(c.current_stateid, None);
        c.current_stateid = Some(mine);
        ops::fh::savefh(&mut c).unwrap();
        c.current_stateid = None;
        ops::fh::restorefh(&mut c).unwrap();
        assert_eq!(c.current_stateid, Some(mine));
    }
}
