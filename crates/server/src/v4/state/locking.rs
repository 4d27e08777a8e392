//! The NFSv4 locking state (RFC 8881 chapter 9): open owners, opens with their share
//! reservations, lock owners, lock stateids and the byte-range table behind them.
//!
//! [`Locking`] is one table for the whole server. The operations are in [`super::opens`]
//! (OPEN, OPEN_DOWNGRADE, CLOSE) and [`super::locks`] (LOCK, LOCKT, LOCKU,
//! RELEASE_LOCKOWNER); this file holds the table, stateid lookup, TEST_STATEID,
//! FREE_STATEID, the check of stateids used for READ/WRITE/SETATTR, `purge_client`, the
//! bounds and the counters.
//!
//! What each piece holds (the references counted by [`Counts::references`]):
//! - an open stateid holds its open owner and its file; a lock stateid holds its lock owner,
//!   its file and its open (an open cannot go while a lock stateid hangs on it);
//! - an owner or file lives exactly as long as something holds it.
//!
//! Seed entry 9 (a lock left held on an OLD_STATEID path): every operation checks all it
//! needs (stateid, seqid, share and range conflicts, bounds) before it changes anything, so
//! an error path has nothing to release. [`Locking::audit`] recomputes every reference
//! from the states and the tests call it, with [`Locking::counts`], after each error path.
//!
//! Bounds: every client may hold at most [`Limits`] states, owners and ranges, and the
//! server as a whole too. A client over its own limit gets [`LockingError::Resource`]: it
//! is its own doing, waiting will not help, and the Linux client turns it into an error for
//! the application (EREMOTEIO) instead of retrying forever. A request refused because the
//! server as a whole is full gets [`LockingError::Delay`]: it is not this client's fault,
//! and space comes back when others close (or when the caller expires courtesy clients).
use super::delegations::{
    Access, Caller, DelegError, DelegKind, DelegLimits, Delegations, GrantRequest, NoDeleg, Openers,
};
use super::ids::{ClientId, Stateid, Time};
use super::ranges::{RangeOwner, RangeTable};
use super::seqid::SeqidTable;
use super::share::{Asked, ShareAccess, ShareDeny};
use super::stateid::{
    check_seqid, special, SeqidCheck, Special, StateidKind, StateidMint, Unknown,
};
use rnfs_vfs::FileKey;
use std::collections::{BTreeSet, HashMap};

/// Longest open or lock owner (`NFS4_OPAQUE_LIMIT`).
pub const OWNER_MAX: usize = 1024;

/// Why an operation on the locking state failed; nothing changed. Each names the
/// `nfsstat4` it maps to ([`LockingError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockingError {
    // The client broke a rule.
    /// `NFS4ERR_BAD_STATEID`: unknown, special where not allowed, another client's, of the
    /// wrong kind or file, or a seqid we never handed out.
    #[error("bad stateid")]
    BadStateid,
    /// `NFS4ERR_OLD_STATEID`: a seqid older than the current one.
    #[error("old stateid")]
    OldStateid,
    /// From an earlier server instance. NFSv4.1 answers `NFS4ERR_BAD_STATEID` (RFC 8881
    /// obsoletes STALE_STATEID, as knfsd does); NFSv4.0 `NFS4ERR_STALE_STATEID`.
    #[error("stateid from an earlier server instance")]
    StaleStateid,
    /// `NFS4ERR_INVAL`: a bad range, share mode or owner, or an OPEN_DOWNGRADE to modes
    /// that are not the union of OPENs asked.
    #[error("invalid argument")]
    Inval,
    /// `NFS4ERR_LOCKS_HELD`: CLOSE, FREE_STATEID or RELEASE_LOCKOWNER while locks remain.
    #[error("locks held")]
    LocksHeld,
    /// `NFS4ERR_OPENMODE`: a lock or I/O the open's access does not allow.
    #[error("open mode does not allow this")]
    OpenMode,
    // Someone else holds what was asked.
    /// `NFS4ERR_SHARE_DENIED`, with the clients whose opens conflict.
    #[error("share reservation conflict")]
    ShareDenied {
        /// The clients holding conflicting opens (courtesy clients among them may be expired
        /// and the request retried).
        clients: Vec<ClientId>,
    },
    /// `NFS4ERR_DENIED`, with the `LOCK4denied` to return.
    #[error("byte-range lock conflict")]
    Denied(Box<Denied>),
    /// `NFS4ERR_LOCKED`: I/O under a special stateid against a deny reservation.
    #[error("denied by a share reservation")]
    Locked,
    // Bounds.
    /// `NFS4ERR_RESOURCE`: this client holds as much state as it may.
    #[error("client state limit reached")]
    Resource,
    /// `NFS4ERR_DELAY`: the server's state is full; retry later.
    #[error("server state limit reached")]
    Delay,
    // Delegations.
    /// `NFS4ERR_DELAY`: other clients' delegations are in the way; their recall is ordered
    /// (courtesy clients among `clients` may be expired and the request retried).
    #[error("delegations being recalled")]
    Recalling {
        /// The clients holding the delegations in the way.
        clients: Vec<ClientId>,
    },
    /// `NFS4ERR_DELEG_REVOKED`: a delegation stateid that was revoked.
    #[error("delegation revoked")]
    DelegRevoked,
}

impl From<DelegError> for LockingError {
    fn from(e: DelegError) -> Self {
        match e {
            DelegError::BadStateid => LockingError::BadStateid,
            DelegError::OldStateid => LockingError::OldStateid,
            DelegError::Revoked => LockingError::DelegRevoked,
            DelegError::OpenMode => LockingError::OpenMode,
        }
    }
}

impl LockingError {
    /// The NFSv4.1 `nfsstat4` value (RFC 8881 15.1).
    pub fn code(&self) -> u32 {
        match self {
            LockingError::BadStateid | LockingError::StaleStateid => 10025,
            LockingError::OldStateid => 10024,
            LockingError::Inval => 22,
            LockingError::LocksHeld => 10037,
            LockingError::OpenMode => 10038,
            LockingError::ShareDenied { .. } => 10015,
            LockingError::Denied(_) => 10010,
            LockingError::Locked => 10012,
            LockingError::Resource => 10018,
            LockingError::Delay | LockingError::Recalling { .. } => 10008,
            LockingError::DelegRevoked => 10087,
        }
    }
}

/// `LOCK4denied`: the conflicting lock reported, and every client in conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Offset of the conflicting lock.
    pub offset: u64,
    /// Its length (`u64::MAX` for "to the end").
    pub length: u64,
    /// Its type.
    pub kind: super::ranges::LockKind,
    /// Its owner (an NLM owner is reported by the COMPOUND layer in a v4 form).
    pub owner: RangeOwner,
    /// The NFSv4 clients holding conflicting locks.
    pub clients: Vec<ClientId>,
}

/// How much state one client, and the server in all, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open and lock stateids per client.
    pub states_per_client: usize,
    /// Open and lock owners per client.
    pub owners_per_client: usize,
    /// Byte ranges locked per client.
    pub ranges_per_client: usize,
    /// Stateids in all.
    pub states: usize,
    /// Owners in all (each up to [`OWNER_MAX`] bytes: 256 Ki owners bound that to 256 MiB).
    pub owners: usize,
    /// Byte ranges in all.
    pub ranges: usize,
}

impl Default for Limits {
    /// A busy client (a build farm node) keeps tens of thousands of files open; a server
    /// serves hundreds of clients. Each state costs about 200 bytes.
    fn default() -> Self {
        Self {
            states_per_client: 65_536,
            owners_per_client: 16_384,
            ranges_per_client: 65_536,
            states: 1 << 20,
            owners: 1 << 18,
            ranges: 1 << 20,
        }
    }
}

/// What the table holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Open owners.
    pub open_owners: usize,
    /// Lock owners.
    pub lock_owners: usize,
    /// Open stateids.
    pub opens: usize,
    /// Lock stateids.
    pub lock_states: usize,
    /// Byte ranges locked.
    pub ranges: usize,
    /// Files with state.
    pub files: usize,
    /// References held: on owners, on files and on opens (by lock stateids).
    pub references: usize,
    /// Clients with state.
    pub clients: usize,
}

/// Counters since start, and what is held now (for `rnfs stats` and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockingStats {
    /// What is held now.
    pub held: Counts,
    /// Opens granted (new open stateids).
    pub opens: u64,
    /// OPENs that upgraded an existing open stateid.
    pub upgrades: u64,
    /// OPENs with CLAIM_PREVIOUS granted.
    pub reclaims: u64,
    /// OPEN_DOWNGRADEs.
    pub downgrades: u64,
    /// CLOSEs.
    pub closes: u64,
    /// LOCKs granted.
    pub locks: u64,
    /// LOCKUs.
    pub unlocks: u64,
    /// LOCKTs.
    pub lock_tests: u64,
    /// Stateids freed by FREE_STATEID or RELEASE_LOCKOWNER.
    pub freed: u64,
    /// Clients whose state was purged.
    pub purged_clients: u64,
    /// NFS4ERR_SHARE_DENIED answers.
    pub share_denied: u64,
    /// NFS4ERR_DENIED answers (LOCK and LOCKT).
    pub denied: u64,
    /// NFS4ERR_BAD_STATEID answers (stale included).
    pub bad_stateid: u64,
    /// NFS4ERR_OLD_STATEID answers.
    pub old_stateid: u64,
    /// Requests refused for a client's own limit (NFS4ERR_RESOURCE).
    pub refused_client_limit: u64,
    /// Requests refused for the server's limit (NFS4ERR_DELAY).
    pub refused_server_limit: u64,
}

/// An open or lock owner: the client and its opaque name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct OwnerKey {
    pub(super) client: ClientId,
    pub(super) name: Vec<u8>,
}

impl OwnerKey {
    pub(super) fn new(client: ClientId, name: &[u8]) -> Result<Self, LockingError> {
        if name.len() > OWNER_MAX {
            return Err(LockingError::Inval);
        }
        Ok(Self {
            client,
            name: name.to_vec(),
        })
    }
    pub(super) fn range_owner(&self) -> RangeOwner {
        RangeOwner::V4 {
            client: self.client,
            owner: self.name.clone(),
        }
    }
}

/// One stateid's state.
#[derive(Debug)]
pub(super) struct State {
    pub(super) client: ClientId,
    pub(super) file: FileKey,
    pub(super) seqid: u32,
    pub(super) body: Body,
}

#[derive(Debug)]
pub(super) enum Body {
    Open(Open),
    Lock(Lock),
}

#[derive(Debug)]
pub(super) struct Open {
    pub(super) owner: OwnerKey,
    pub(super) access: ShareAccess,
    pub(super) deny: ShareDeny,
    pub(super) asked: Asked,
    pub(super) reclaimed: bool,
    /// Lock stateids tied to this open.
    pub(super) locks: BTreeSet<u64>,
}

#[derive(Debug)]
pub(super) struct Lock {
    pub(super) owner: OwnerKey,
    pub(super) open: u64,
}

/// What a client holds, for its limits and for `purge_client`.
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub(super) states: BTreeSet<u64>,
    pub(super) owners: usize,
    pub(super) ranges: usize,
}

/// Which limit a request would cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    State,
    Owner,
}

/// What `purge_client` freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Open stateids.
    pub opens: usize,
    /// Lock stateids.
    pub lock_states: usize,
    /// Byte ranges.
    pub ranges: usize,
    /// Delegations (revoked ones not counted).
    pub delegations: usize,
}

/// I/O checked by [`Locking::check_io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// READ.
    Read,
    /// WRITE, or SETATTR of the size.
    Write,
}

/// The locking state of the server. See the module doc.
#[derive(Debug)]
pub struct Locking {
    pub(super) mint: StateidMint,
    pub(super) limits: Limits,
    pub(super) stats: LockingStats,
    pub(super) states: HashMap<u64, State>,
    pub(super) open_index: HashMap<(OwnerKey, FileKey), u64>,
    pub(super) lock_index: HashMap<(OwnerKey, FileKey), u64>,
    /// Open owners and lock owners, with the number of stateids holding each.
    pub(super) open_owners: HashMap<OwnerKey, usize>,
    pub(super) lock_owners: HashMap<OwnerKey, usize>,
    /// Per file, the open stateids on it and the number of stateids holding it.
    pub(super) files: HashMap<FileKey, FileEntry>,
    pub(super) clients: HashMap<ClientId, Usage>,
    pub(super) ranges: RangeTable<FileKey>,
    /// The delegations: their stateids come from the same mint, so one stateid space
    /// names opens, locks and delegations.
    pub(super) deleg: Delegations,
    /// NFSv4.0 owners' seqids and kept replies ([`super::seqid`]).
    pub(super) seqids: SeqidTable,
}

#[derive(Debug, Default)]
pub(super) struct FileEntry {
    pub(super) opens: BTreeSet<u64>,
    pub(super) refs: usize,
}

impl Locking {
    /// An empty table for the server instance `epoch` (see [`StateidMint::new`]).
    pub fn new(epoch: u32, limits: Limits) -> Self {
        Self {
            mint: StateidMint::new(epoch),
            limits,
            stats: LockingStats::default(),
            states: HashMap::new(),
            open_index: HashMap::new(),
            lock_index: HashMap::new(),
            open_owners: HashMap::new(),
            lock_owners: HashMap::new(),
            files: HashMap::new(),
            clients: HashMap::new(),
            ranges: RangeTable::new(),
            deleg: Delegations::new(DelegLimits::from_ram(0), 90_000),
            seqids: SeqidTable::new(limits.owners),
        }
    }

    /// Sets the delegations' bounds and the lease their revocation waits for (at start,
    /// before any is granted: the delegations held are dropped).
    pub fn set_delegations(&mut self, limits: DelegLimits, lease_ms: u64) {
        self.deleg = Delegations::new(limits, lease_ms);
    }

    /// The delegations.
    pub fn delegations(&self) -> &Delegations {
        &self.deleg
    }

    /// The delegations, to change (the laundromat's recalls and their outcomes).
    pub fn delegations_mut(&mut self) -> &mut Delegations {
        &mut self.deleg
    }

    /// What clients other than `client` have open on `file` (the grant policy's input).
    pub fn openers(&self, client: ClientId, file: &FileKey) -> Openers {
        let mut o = Openers::default();
        for k in self
            .files
            .get(file)
            .into_iter()
            .flat_map(|f| f.opens.iter())
        {
            let Some(st) = self.states.get(k) else {
                continue;
            };
            if st.client == client {
                continue;
            }
            o.others = true;
            if let Body::Open(op) = &st.body {
                o.others_write |= op.access.writes();
            }
        }
        o
    }

    /// Grants `client` a delegation of `kind` on `file` if the policy allows (see
    /// [`Delegations::grant`]); `cb_ok`: its callback path is verified; `reclaim`: an OPEN
    /// with CLAIM_PREVIOUS reclaims it ([`GrantRequest::reclaim`]).
    #[allow(clippy::too_many_arguments)] // the grant request's fields, each one plain
    pub fn grant_delegation(
        &mut self,
        client: ClientId,
        file: &FileKey,
        fh: Vec<u8>,
        kind: DelegKind,
        cb_ok: bool,
        reclaim: bool,
        now: Time,
    ) -> Result<(Stateid, DelegKind), NoDeleg> {
        let req = GrantRequest {
            client,
            file: file.clone(),
            fh,
            kind,
            openers: self.openers(client, file),
            cb_ok,
            reclaim,
        };
        let k = self.mint.mint();
        let sid = self.stateid(k, 1);
        self.deleg.grant(&req, sid, now)
    }

    /// The conflict check of every operation that reads, writes, changes or removes a file
    /// (NFSv4 and NFSv3 alike): other clients' delegations in the way have their recall
    /// ordered and the caller gets [`LockingError::Recalling`] (DELAY, JUKEBOX).
    pub fn deleg_conflict(
        &mut self,
        who: Caller,
        file: &FileKey,
        access: Access,
        truncate: bool,
        now: Time,
    ) -> Result<(), LockingError> {
        self.deleg
            .conflict(who, file, access, truncate, now)
            .map_err(|c| LockingError::Recalling { clients: c.holders })
    }

    /// Whether a delegation of another client than `who` is in the way of `access` to
    /// `file` (see [`Delegations::in_way`]); orders nothing.
    pub fn deleg_in_way(&self, who: Caller, file: &FileKey, access: Access) -> bool {
        self.deleg.in_way(who, file, access)
    }

    /// DELEGRETURN of `sid` on `file` at `now` (RFC 8881 18.6).
    pub fn delegreturn(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        now: Time,
    ) -> Result<(), LockingError> {
        let r = self.delegation_key(sid).and_then(|()| {
            self.deleg
                .delegreturn(client, sid, file, now)
                .map_err(LockingError::from)
        });
        self.count_err(r)
    }

    /// Checks that `sid` names `client`'s delegation on `file` (an OPEN with
    /// CLAIM_DELEGATE_CUR or CLAIM_DELEG_CUR_FH).
    pub fn check_delegation(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
    ) -> Result<DelegKind, LockingError> {
        let r = self.delegation_key(sid).and_then(|()| {
            self.deleg
                .check(client, sid, Some(file), false)
                .map_err(LockingError::from)
        });
        self.count_err(r)
    }

    /// A stateid that is a delegation's (held or revoked), or the error a stateid that
    /// names none gets.
    fn delegation_key(&self, sid: &Stateid) -> Result<(), LockingError> {
        if special(sid).is_some() {
            return Err(LockingError::BadStateid);
        }
        self.mint.parse(&sid.other).map_err(|u| match u {
            Unknown::Stale => LockingError::StaleStateid,
            Unknown::Bad => LockingError::BadStateid,
        })?;
        if self.deleg.knows(&sid.other) {
            Ok(())
        } else {
            Err(LockingError::BadStateid)
        }
    }

    /// What is held now; costs a pass over the owners and files, not the states.
    pub fn counts(&self) -> Counts {
        // One index entry per open and per lock stateid (the audit checks it).
        let opens = self.open_index.len();
        let owner_refs: usize =
            self.open_owners.values().sum::<usize>() + self.lock_owners.values().sum::<usize>();
        let file_refs: usize = self.files.values().map(|f| f.refs).sum();
        let lock_states = self.lock_index.len();
        Counts {
            open_owners: self.open_owners.len(),
            lock_owners: self.lock_owners.len(),
            opens,
            lock_states,
            ranges: self.ranges.total(),
            files: self.files.len(),
            // Each lock stateid holds its open.
            references: owner_refs + file_refs + lock_states,
            clients: self.clients.len(),
        }
    }

    /// Counters and what is held.
    pub fn stats(&self) -> LockingStats {
        LockingStats {
            held: self.counts(),
            ..self.stats
        }
    }

    /// Whether `client` holds any locking state (a courtesy client without state can go at
    /// once).
    pub fn has_state(&self, client: ClientId) -> bool {
        self.clients.contains_key(&client) || self.deleg.has_state(client)
    }

    /// Whether any open or lock is held on `file`: its handle stays usable for that state
    /// (CLOSE, LOCKU) after the file is removed (see [`crate::v4::ops`]'s PUTFH).
    pub fn holds_file(&self, file: &FileKey) -> bool {
        self.files.contains_key(file) || self.deleg.holds_file(file)
    }

    /// The wire stateid for key `k` with seqid `seqid`.
    pub(super) fn stateid(&self, k: u64, seqid: u32) -> Stateid {
        Stateid {
            seqid,
            other: self.mint.other(k),
        }
    }

    /// Finds the state `sid` names for `client` (RFC 8881 8.2): of `kind` when given, on
    /// `file` when given, with a seqid that is current. Changes nothing.
    pub(super) fn find(
        &self,
        client: ClientId,
        sid: &Stateid,
        kind: Option<StateidKind>,
        file: Option<&FileKey>,
    ) -> Result<u64, LockingError> {
        if special(sid).is_some() {
            return Err(LockingError::BadStateid);
        }
        let k = self.mint.parse(&sid.other).map_err(|u| match u {
            Unknown::Stale => LockingError::StaleStateid,
            Unknown::Bad => LockingError::BadStateid,
        })?;
        let st = self.states.get(&k).ok_or(LockingError::BadStateid)?;
        let st_kind = match st.body {
            Body::Open(_) => StateidKind::Open,
            Body::Lock(_) => StateidKind::Lock,
        };
        if st.client != client
            || kind.is_some_and(|want| want != st_kind)
            || file.is_some_and(|f| *f != st.file)
        {
            return Err(LockingError::BadStateid);
        }
        match check_seqid(sid.seqid, st.seqid) {
            SeqidCheck::Current => Ok(k),
            SeqidCheck::Old => Err(LockingError::OldStateid),
            SeqidCheck::Future => Err(LockingError::BadStateid),
        }
    }

    /// TEST_STATEID for one stateid (RFC 8881 18.48): `Ok` if `client` may use it now.
    pub fn test_stateid(&mut self, client: ClientId, sid: &Stateid) -> Result<(), LockingError> {
        let r = if special(sid).is_none() && self.deleg.knows(&sid.other) {
            self.deleg
                .check(client, sid, None, false)
                .map(|_| ())
                .map_err(LockingError::from)
        } else {
            self.find(client, sid, None, None).map(|_| ())
        };
        self.count_err(r)
    }

    /// FREE_STATEID (RFC 8881 18.38): frees a lock stateid that holds no ranges. A lock
    /// stateid with ranges, or an open stateid (an open is a lock), is `LocksHeld`. The seqid
    /// is not checked: the stateid is going, whichever version the client has.
    pub fn free_stateid(&mut self, client: ClientId, sid: &Stateid) -> Result<(), LockingError> {
        if special(sid).is_none() && self.deleg.knows(&sid.other) {
            // A held delegation is in use (DELEGRETURN it); a revoked one is forgotten.
            let r = match self.deleg.free_stateid(client, sid) {
                Ok(()) => {
                    self.stats.freed += 1;
                    Ok(())
                }
                Err(None) => Err(LockingError::LocksHeld),
                Err(Some(e)) => Err(e.into()),
            };
            return self.count_err(r);
        }
        let any_seqid = Stateid { seqid: 0, ..*sid };
        let r = self.find(client, &any_seqid, None, None).and_then(|k| {
            let st = self.states.get(&k).ok_or(LockingError::BadStateid)?;
            match &st.body {
                Body::Open(_) => Err(LockingError::LocksHeld),
                Body::Lock(l) => {
                    if self
                        .ranges
                        .held(&st.file, &l.owner.range_owner())
                        .is_empty()
                    {
                        Ok(k)
                    } else {
                        Err(LockingError::LocksHeld)
                    }
                }
            }
        });
        let r = r.map(|k| {
            self.drop_lock_state(k);
            self.stats.freed += 1;
        });
        self.count_err(r)
    }

    /// Checks the stateid of a READ, WRITE or SETATTR of the size on `file` (RFC 8881
    /// 8.2.3, 9.1.4). The anonymous stateid is subject to every open's deny; the bypass
    /// stateid reads past them. An open or lock stateid must be current and on this file;
    /// WRITE needs write access. READ is allowed with write-only access, as knfsd does: the
    /// Linux client reads to fill partial pages of files it opened write-only. Byte-range
    /// locks are advisory and not checked here.
    pub fn check_io(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        io: Io,
    ) -> Result<(), LockingError> {
        let r = self.check_io_inner(client, sid, file, io);
        self.count_err(r)
    }

    fn check_io_inner(
        &self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        io: Io,
    ) -> Result<(), LockingError> {
        match special(sid) {
            Some(Special::Bypass) if io == Io::Read => return Ok(()),
            Some(Special::Anonymous) | Some(Special::Bypass) => {
                let denied = self.files.get(file).is_some_and(|f| {
                    f.opens
                        .iter()
                        .any(|k| match self.states.get(k).map(|s| &s.body) {
                            Some(Body::Open(o)) => match io {
                                Io::Read => o.deny.bits() & 1 != 0,
                                Io::Write => o.deny.bits() & 2 != 0,
                            },
                            _ => false,
                        })
                });
                return if denied {
                    Err(LockingError::Locked)
                } else {
                    Ok(())
                };
            }
            Some(Special::Current) | Some(Special::Invalid) => {
                return Err(LockingError::BadStateid)
            }
            None => {}
        }
        if self.deleg.knows(&sid.other) {
            return self
                .deleg
                .check(client, sid, Some(file), io == Io::Write)
                .map(|_| ())
                .map_err(LockingError::from);
        }
        let k = self.find(client, sid, None, Some(file))?;
        let open = self.open_of(k).ok_or(LockingError::BadStateid)?;
        match io {
            Io::Write if !open.access.writes() => Err(LockingError::OpenMode),
            _ => Ok(()),
        }
    }

    /// The open of state `k`: itself, or the open a lock stateid hangs on.
    pub(super) fn open_of(&self, k: u64) -> Option<&Open> {
        match &self.states.get(&k)?.body {
            Body::Open(o) => Some(o),
            Body::Lock(l) => match &self.states.get(&l.open)?.body {
                Body::Open(o) => Some(o),
                Body::Lock(_) => None,
            },
        }
    }

    /// Frees all of `client`'s state: its opens, lock stateids, ranges and owners (lease
    /// expiry, a courtesy client in someone's way, DESTROY_CLIENTID, a client rebooted).
    pub fn purge_client(&mut self, client: ClientId) -> Purged {
        // The client's NFSv4.0 owners stay in the seqid table (bounded, forgotten a lease
        // later): a stateid of theirs then still names its client, whose operations
        // answer EXPIRED (RFC 7530 9.6.3) rather than BAD_STATEID.
        let mut purged = Purged {
            delegations: self.deleg.purge_client(client),
            ..Purged::default()
        };
        let Some(usage) = self.clients.get(&client) else {
            return purged;
        };
        purged.ranges = usage.ranges;
        let keys: Vec<u64> = usage.states.iter().copied().collect();
        // Lock stateids first: they hold their opens.
        for k in &keys {
            if let Some(State {
                body: Body::Lock(_),
                ..
            }) = self.states.get(k)
            {
                self.drop_lock_state(*k);
                purged.lock_states += 1;
            }
        }
        for k in &keys {
            if self.states.contains_key(k) {
                self.drop_open(*k);
                purged.opens += 1;
            }
        }
        self.stats.purged_clients += 1;
        purged
    }

    /// Whether one more `need` fits `client`'s limits and the server's; changes nothing.
    pub(super) fn room(&self, client: ClientId, needs: &[Need]) -> Result<(), LockingError> {
        let usage = self.clients.get(&client);
        let states = usage.map_or(0, |u| u.states.len());
        let owners = usage.map_or(0, |u| u.owners);
        let l = &self.limits;
        let mut n_states = 0;
        let mut n_owners = 0;
        for n in needs {
            match n {
                Need::State => n_states += 1,
                Need::Owner => n_owners += 1,
            }
        }
        if states + n_states > l.states_per_client || owners + n_owners > l.owners_per_client {
            return Err(LockingError::Resource);
        }
        let all_owners = self.open_owners.len() + self.lock_owners.len();
        if self.states.len() + n_states > l.states || all_owners + n_owners > l.owners {
            return Err(LockingError::Delay);
        }
        Ok(())
    }

    /// How many more ranges `client` may hold: by its own limit and by the server's.
    pub(super) fn range_room(&self, client: ClientId) -> (usize, usize) {
        let used = self.clients.get(&client).map_or(0, |u| u.ranges);
        (
            self.limits.ranges_per_client.saturating_sub(used),
            self.limits.ranges.saturating_sub(self.ranges.total()),
        )
    }

    /// Records a new state `k` and takes its references (owner, file, client).
    pub(super) fn insert_state(&mut self, k: u64, st: State) {
        let usage = self.clients.entry(st.client).or_default();
        usage.states.insert(k);
        let (owners, key) = match &st.body {
            Body::Open(o) => (&mut self.open_owners, o.owner.clone()),
            Body::Lock(l) => (&mut self.lock_owners, l.owner.clone()),
        };
        let refs = owners.entry(key.clone()).or_insert(0);
        if *refs == 0 {
            usage.owners += 1;
        }
        *refs += 1;
        let file = self.files.entry(st.file.clone()).or_default();
        file.refs += 1;
        match &st.body {
            Body::Open(_) => {
                file.opens.insert(k);
                self.open_index.insert((key, st.file.clone()), k);
            }
            Body::Lock(l) => {
                if let Some(State {
                    body: Body::Open(o),
                    ..
                }) = self.states.get_mut(&l.open)
                {
                    o.locks.insert(k);
                }
                self.lock_index.insert((key, st.file.clone()), k);
            }
        }
        self.states.insert(k, st);
    }

    /// Removes lock stateid `k` with its ranges and releases what it held.
    pub(super) fn drop_lock_state(&mut self, k: u64) {
        let Some(st) = self.states.remove(&k) else {
            return;
        };
        let Body::Lock(l) = &st.body else {
            // Not a lock stateid: put it back untouched (callers never do this).
            self.states.insert(k, st);
            return;
        };
        let n = self.ranges.release(&st.file, &l.owner.range_owner());
        if let Some(u) = self.clients.get_mut(&st.client) {
            u.ranges -= n;
        }
        if let Some(State {
            body: Body::Open(o),
            ..
        }) = self.states.get_mut(&l.open)
        {
            o.locks.remove(&k);
        }
        self.lock_index.remove(&(l.owner.clone(), st.file.clone()));
        let owner = l.owner.clone();
        self.release_refs(k, &st, &owner, false);
    }

    /// Removes open stateid `k`, its lock stateids first, and releases what it held.
    pub(super) fn drop_open(&mut self, k: u64) {
        let locks: Vec<u64> = match self.states.get(&k).map(|s| &s.body) {
            Some(Body::Open(o)) => o.locks.iter().copied().collect(),
            _ => return,
        };
        for l in locks {
            self.drop_lock_state(l);
        }
        let Some(st) = self.states.remove(&k) else {
            return;
        };
        let Body::Open(o) = &st.body else {
            return;
        };
        let owner = o.owner.clone();
        self.open_index.remove(&(owner.clone(), st.file.clone()));
        if let Some(f) = self.files.get_mut(&st.file) {
            f.opens.remove(&k);
        }
        self.release_refs(k, &st, &owner, true);
    }

    fn release_refs(&mut self, k: u64, st: &State, owner: &OwnerKey, is_open: bool) {
        let owners = if is_open {
            &mut self.open_owners
        } else {
            &mut self.lock_owners
        };
        let mut owner_gone = false;
        if let Some(refs) = owners.get_mut(owner) {
            *refs -= 1;
            if *refs == 0 {
                owners.remove(owner);
                owner_gone = true;
            }
        }
        if let Some(f) = self.files.get_mut(&st.file) {
            f.refs -= 1;
            if f.refs == 0 {
                self.files.remove(&st.file);
            }
        }
        if let Some(u) = self.clients.get_mut(&st.client) {
            u.states.remove(&k);
            if owner_gone {
                u.owners -= 1;
            }
            if u.states.is_empty() && u.owners == 0 && u.ranges == 0 {
                self.clients.remove(&st.client);
            }
        }
    }

    /// Counts an error in the stats and passes the result on.
    pub(super) fn count_err<T>(&mut self, r: Result<T, LockingError>) -> Result<T, LockingError> {
        if let Err(e) = &r {
            let s = &mut self.stats;
            match e {
                LockingError::BadStateid | LockingError::StaleStateid => s.bad_stateid += 1,
                LockingError::OldStateid => s.old_stateid += 1,
                LockingError::ShareDenied { .. } => s.share_denied += 1,
                LockingError::Denied(_) => s.denied += 1,
                LockingError::Resource => s.refused_client_limit += 1,
                LockingError::Delay => s.refused_server_limit += 1,
                LockingError::Inval
                | LockingError::Recalling { .. }
                | LockingError::DelegRevoked
                | LockingError::LocksHeld
                | LockingError::OpenMode
                | LockingError::Locked => {}
            }
        }
        r
    }

    /// Recomputes every reference and per-client count from the states and compares them
    /// with what the table keeps; describes the first difference. For tests (seed entry 9:
    /// nothing leaks) and debug assertions.
    pub fn audit(&self) -> Result<(), String> {
        let mut open_owners: HashMap<&OwnerKey, usize> = HashMap::new();
        let mut lock_owners: HashMap<&OwnerKey, usize> = HashMap::new();
        let mut files: HashMap<&FileKey, (usize, BTreeSet<u64>)> = HashMap::new();
        let mut states: HashMap<ClientId, BTreeSet<u64>> = HashMap::new();
        let mut ranges: HashMap<ClientId, usize> = HashMap::new();
        for (k, st) in &self.states {
            states.entry(st.client).or_default().insert(*k);
            let f = files.entry(&st.file).or_default();
            f.0 += 1;
            match &st.body {
                Body::Open(o) => {
                    f.1.insert(*k);
                    *open_owners.entry(&o.owner).or_default() += 1;
                    if self.open_index.get(&(o.owner.clone(), st.file.clone())) != Some(k) {
                        return Err(format!("open {k} missing from the open index"));
                    }
                    for l in &o.locks {
                        match self.states.get(l).map(|s| &s.body) {
                            Some(Body::Lock(lk)) if lk.open == *k => {}
                            _ => return Err(format!("open {k} lists lock {l} not tied to it")),
                        }
                    }
                }
                Body::Lock(l) => {
                    *lock_owners.entry(&l.owner).or_default() += 1;
                    *ranges.entry(st.client).or_default() +=
                        self.ranges.held(&st.file, &l.owner.range_owner()).len();
                    match self.states.get(&l.open).map(|s| &s.body) {
                        Some(Body::Open(o)) if o.locks.contains(k) => {}
                        _ => return Err(format!("lock {k} hangs on a missing open {}", l.open)),
                    }
                    if self.lock_index.get(&(l.owner.clone(), st.file.clone())) != Some(k) {
                        return Err(format!("lock {k} missing from the lock index"));
                    }
                }
            }
        }
        let same = |a: &HashMap<&OwnerKey, usize>, b: &HashMap<OwnerKey, usize>| {
            a.len() == b.len() && a.iter().all(|(o, n)| b.get(*o) == Some(n))
        };
        if !same(&open_owners, &self.open_owners) {
            return Err(format!(
                "open owners {:?} vs {open_owners:?}",
                self.open_owners
            ));
        }
        if !same(&lock_owners, &self.lock_owners) {
            return Err(format!(
                "lock owners {:?} vs {lock_owners:?}",
                self.lock_owners
            ));
        }
        if self.open_index.len() + self.lock_index.len() != self.states.len() {
            return Err("an index names a state that is gone".into());
        }
        if files.len() != self.files.len()
            || files.iter().any(|(f, (refs, opens))| {
                self.files
                    .get(*f)
                    .is_none_or(|e| e.refs != *refs || e.opens != *opens)
            })
        {
            return Err("file references differ".into());
        }
        let total_ranges: usize = ranges.values().sum();
        if total_ranges != self.ranges.total() {
            return Err(format!(
                "{} ranges held, {total_ranges} reachable from lock stateids",
                self.ranges.total()
            ));
        }
        if states.len() != self.clients.len() {
            return Err(format!(
                "{} clients recorded, {} with state",
                self.clients.len(),
                states.len()
            ));
        }
        for (c, ks) in &states {
            let u = self
                .clients
                .get(c)
                .ok_or(format!("client {c:?} not recorded"))?;
            let owners = open_owners.keys().filter(|o| o.client == *c).count()
                + lock_owners.keys().filter(|o| o.client == *c).count();
            if u.states != *ks
                || u.owners != owners
                || u.ranges != ranges.get(c).copied().unwrap_or(0)
            {
                return Err(format!("client {c:?} usage differs"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "locking_tests.rs"]
mod tests;
