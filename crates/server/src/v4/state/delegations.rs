//! NFSv4 delegations (RFC 8881 10.2, 10.4): who holds one on which file, the grant
//! policy, recalls with their retry schedule, revocation, DELEGRETURN and FREE_STATEID of a
//! revoked delegation. Free of I/O and of the clock: time comes in, recall orders go out
//! (the laundromat hands them to the callback sender, which reports each outcome back).
//!
//! The contract, each clause with its tests below:
//! - **D1 grant policy**: a read delegation only when no other client has the file open
//!   for write and no other client holds a write delegation on it; a write delegation only
//!   when no other client has it open at all and holds no delegation on it; none while a
//!   recall is under way on the file; none when the client's callback path is not verified;
//!   none to a client whose recall failed (path down) or whose delegation was revoked
//!   within the last lease; none past the per-client or the total bound.
//! - **D2 one recall per delegation**: a conflict orders the recall of each delegation in
//!   the way once; further conflicts while it is under way order nothing more. The recall
//!   is re-sent only on the backoff schedule ([`BACKOFF_FIRST_MS`] doubling up to
//!   [`BACKOFF_MAX_MS`]) after an outcome other than `Delivered`. At most
//!   [`DelegLimits::outstanding`] recalls are in flight at once: a recall storm cannot
//!   happen, whatever the callers do.
//! - **D3 revocation**: a delegation not returned one lease after its recall was first
//!   ordered is revoked, whatever became of the callbacks: a client that ignores recalls
//!   holds up others for at most one lease. The revoked stateid then answers
//!   `NFS4ERR_DELEG_REVOKED` and the client sees `SEQ4_STATUS_RECALLABLE_STATE_REVOKED`
//!   until it frees the stateid with FREE_STATEID (RFC 8881 8.2.4, 18.46.3).
//! - **D4 bounds**: delegations held are bounded per client and in all (the total derived
//!   from memory, [`DelegLimits::from_ram`]); revoked stateids kept for FREE_STATEID are
//!   bounded too (a client with one gets no new delegation, so it keeps at most as many as
//!   it held); the recall bookkeeping is per delegation. Refusals are counted.
//! - **D5 purge**: a client purged (lease expired, courtesy client in someone's way,
//!   DESTROY_CLIENTID) loses its delegations and revoked stateids at once.
//! - **D6 CB_RECALL_ANY**: while the delegations held are at the total bound (where D1
//!   grants no more), the clients holding the most are asked with CB_RECALL_ANY to
//!   return half of theirs ([`Delegations::due_recall_any`]), as many as it takes to
//!   bring the count down to [`RECALL_ANY_TARGET`] of the bound, at most
//!   [`RECALL_ANY_PER_PASS`] clients at a time. At most one CB_RECALL_ANY per client is
//!   outstanding, and a client is not asked again until a lease after its last one ended:
//!   nothing here can storm either.
//! - **D7 changes made beside NFS**: a delegated file changed on the exported directory by
//!   something other than this server (the server's watch of it reports the change, see
//!   [`crate::v4::outside`]) has every delegation on it recalled as for an NFSv3 caller
//!   (D2, D3 apply). The server's own changes raise the same reports and must not recall
//!   the holder's delegation (its own SETATTR or WRITE): every conflict check of a change
//!   (WRITE, SETATTR, a truncating or writing OPEN, REMOVE, RENAME, LINK, from any client
//!   or protocol) notes the time it touched the file, and a report within
//!   [`OWN_CHANGE_WINDOW_MS`] of that is taken for the server's own. The race this leaves:
//!   a change beside NFS within that window after one through NFS is not seen. Notes are
//!   kept only for delegated files, and dropped with their last delegation or once past
//!   the window, so they are bounded by the delegations (D4).
//! - **D8 CB_GETATTR**: another client's GETATTR of the size or change of a file under a
//!   write delegation is answered from what the holder says (RFC 8881 10.4.3): the caller
//!   asks [`Delegations::write_holder`] whom to ask, sends CB_GETATTR, and gives the reply
//!   to [`Delegations::cb_getattr_answer`]. The holder's change differing from the one
//!   the server had when it granted the delegation means the holder has modified the file
//!   in its cache: the answer is then the holder's size and a change past the server's own
//!   (and past any such answer before, so changes seen by others only grow); otherwise
//!   the server's own size and change stand. No reply in time is a conflict like any
//!   other (the caller orders the recall, D2).
use super::ids::{ClientId, Stateid, Time};
use super::stateid::{check_seqid, SeqidCheck};
use crate::v4::callback::{RecallOrder, RecallOutcome};
use rnfs_vfs::FileKey;
use std::collections::{BTreeSet, HashMap};

/// How long after the server itself changes a delegated file (its conflict check) a
/// report of a change to that file is taken for the server's own (D7), in milliseconds:
/// the time from the check to the system call and on to the watcher's reading of the
/// report, with room for a slow disk.
pub const OWN_CHANGE_WINDOW_MS: u64 = 2_000;

/// What a change made beside NFS to a file means for its delegations (D7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutsideChange {
    /// No delegation is held on the file (any more): nothing to do.
    NotHeld,
    /// The server changed the file within [`OWN_CHANGE_WINDOW_MS`]: taken for its own.
    Own,
    /// The delegations on the file are being recalled (ordered now, or before).
    Recall(Conflict),
}

/// The first retry of a recall whose callback failed, in milliseconds.
pub const BACKOFF_FIRST_MS: u64 = 1_000;
/// The longest wait between two sends of one recall, in milliseconds.
pub const BACKOFF_MAX_MS: u64 = 16_000;
/// `NFS4ERR_DELAY`.
const NFS4ERR_DELAY: u32 = 10008;
/// What CB_RECALL_ANY aims at: the delegations held brought back to this fraction
/// (numerator, denominator) of the total bound.
pub const RECALL_ANY_TARGET: (usize, usize) = (3, 4);
/// The most clients one pass of [`Delegations::due_recall_any`] asks.
pub const RECALL_ANY_PER_PASS: usize = 16;
/// `RCA4_TYPE_MASK_RDATA_DLG` and `RCA4_TYPE_MASK_WDATA_DLG` as bits of
/// `craa_type_mask` (RFC 8881 20.6.1).
const RCA4_RDATA_DLG: u32 = 1 << 0;
const RCA4_WDATA_DLG: u32 = 1 << 1;

/// One CB_RECALL_ANY (RFC 8881 20.6) to send: `client` is to keep at most `keep` of its
/// delegations of the kinds in `mask` and return the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecallAnyOrder {
    /// The client asked.
    pub client: ClientId,
    /// `craa_objects_to_keep`.
    pub keep: u32,
    /// `craa_type_mask` (one word: `RCA4_TYPE_MASK_RDATA_DLG` / `WDATA_DLG` bits).
    pub mask: u32,
}

/// The kind of a delegation (`open_delegation_type4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelegKind {
    /// `OPEN_DELEGATE_READ`: the client may cache reads and attributes, and open for read
    /// locally.
    Read,
    /// `OPEN_DELEGATE_WRITE`: the client may also write locally and open for write.
    Write,
}

/// Why a delegation was not granted (the `why_no_delegation4` of RFC 8881 18.16.3, when
/// the client asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDeleg {
    /// Another client's open or delegation is in the way, or a recall is under way on the
    /// file, or the client already holds one on it (`WND4_CONTENTION`).
    Contention,
    /// A bound is reached, the callback path is not verified, or the client's recalls
    /// failed recently (`WND4_RESOURCE`).
    Resource,
}

impl NoDeleg {
    /// The `why_no_delegation4` value.
    pub fn wnd(self) -> u32 {
        match self {
            NoDeleg::Contention => 1,
            NoDeleg::Resource => 2,
        }
    }
}

/// Why a delegation stateid cannot be used; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegError {
    /// `NFS4ERR_BAD_STATEID`: not a delegation of this client (on this file).
    BadStateid,
    /// `NFS4ERR_OLD_STATEID`.
    OldStateid,
    /// `NFS4ERR_DELEG_REVOKED`: it was revoked; FREE_STATEID it.
    Revoked,
    /// `NFS4ERR_OPENMODE`: a WRITE under a read delegation.
    OpenMode,
}

/// What a client does to a file, as the conflict check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Opens or reads it: conflicts with another client's write delegation.
    Read,
    /// Opens it for write, writes it or changes its size: conflicts with any other
    /// client's delegation.
    Write,
    /// Removes, renames, links it or changes its attributes: conflicts with any other
    /// client's delegation (RFC 8881 10.4.4: the holder caches the attributes and name).
    Meta,
}

/// Who asks, for the conflict check: an NFSv4 client (its own delegations are no conflict)
/// or anyone else (NFSv3, NLM, the server itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An NFSv4 client.
    Client(ClientId),
    /// NFSv3 or another protocol without delegations.
    Other,
}

/// The conflict check found delegations of other clients in the way: their recall is
/// ordered (once); the caller answers `NFS4ERR_DELAY` / `NFS3ERR_JUKEBOX`. `holders` are
/// the clients in the way: those that are courtesy clients may be expired at once
/// (purging their delegations) and the check run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The clients holding the delegations in the way.
    pub holders: Vec<ClientId>,
}

/// What the other clients have on a file, as the locking table knows it (the input of the
/// grant policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Openers {
    /// Another client has the file open (for anything).
    pub others: bool,
    /// Another client has the file open for write.
    pub others_write: bool,
}

/// One OPEN's request for a delegation.
#[derive(Debug, Clone)]
pub struct GrantRequest {
    /// The client opening.
    pub client: ClientId,
    /// The file.
    pub file: FileKey,
    /// Its handle as the client knows it (for CB_RECALL).
    pub fh: Vec<u8>,
    /// The kind wanted: `Write` only when the open has write access.
    pub kind: DelegKind,
    /// What other clients hold on the file.
    pub openers: Openers,
    /// The client's callback path was verified (a probe answered) and is not known down.
    pub cb_ok: bool,
    /// An OPEN with CLAIM_PREVIOUS reclaiming a delegation the client held before the
    /// server restarted (RFC 7530 16.16.5, RFC 8881 10.2.1): granted whatever the callback
    /// path (the client held it; the server kept no record), within the bounds and if
    /// nothing conflicts. With the path not verified it is granted pre-recalled (the
    /// `recall` flag of `open_read_delegation4`) and its recall is ordered at once, so it
    /// is revoked a lease later if not returned (D3).
    pub reclaim: bool,
}

/// How many delegations may be held, and recalls be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegLimits {
    /// Delegations (held and revoked-not-freed) per client.
    pub per_client: usize,
    /// Delegations in all.
    pub total: usize,
    /// Recalls handed to the sender and not yet answered.
    pub outstanding: usize,
}

impl DelegLimits {
    /// Limits for a server with `ram` bytes: four delegations per MiB (knfsd's figure; a
    /// delegation here costs about 250 bytes with its file key and handle, so they take
    /// at most a few thousandths of memory), at least 1,024 and at most 2^20; a client may
    /// hold an eighth of them, at least 256; 1,024 recalls in flight.
    pub fn from_ram(ram: u64) -> Self {
        let total = usize::try_from((ram >> 20).saturating_mul(4))
            .unwrap_or(usize::MAX)
            .clamp(1024, 1 << 20);
        Self {
            per_client: (total / 8).max(256),
            total,
            outstanding: 1024,
        }
    }
}

/// Counters since start, and what is held now (for `rnfs stats` and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DelegStats {
    /// Delegations held now.
    pub held: usize,
    /// Of which write delegations.
    pub held_write: usize,
    /// Revoked stateids not yet freed.
    pub revoked_held: usize,
    /// Recalls in flight now.
    pub outstanding: usize,
    /// Read delegations granted.
    pub granted_read: u64,
    /// Write delegations granted.
    pub granted_write: u64,
    /// Not granted for contention.
    pub refused_contention: u64,
    /// Not granted: a bound, no verified callback path, or recent recall failures.
    pub refused_resource: u64,
    /// Recalls ordered (first sends).
    pub recalls: u64,
    /// Recalls re-sent after a failed callback.
    pub recall_retries: u64,
    /// Conflicting requests answered DELAY.
    pub conflicts: u64,
    /// Delegations returned (DELEGRETURN).
    pub returned: u64,
    /// Delegations revoked (not returned within a lease of the recall).
    pub revoked: u64,
    /// Delegations dropped by a client purge.
    pub purged: u64,
    /// Changes made beside NFS to delegated files that ordered recalls (D7).
    pub outside_changes: u64,
    /// Reports of changes to delegated files taken for the server's own (D7).
    pub outside_own: u64,
    /// CB_RECALL_ANYs ordered (at the total bound, D6).
    pub recall_any: u64,
    /// Of which the client refused, or could not be reached.
    pub recall_any_failed: u64,
    /// CB_RECALL_ANYs in flight now.
    pub recall_any_outstanding: usize,
    /// Delegations returned after their CB_RECALL was sent (the recalls whose round trip
    /// is measured below).
    pub recall_returns: u64,
    /// Sum over those of the milliseconds from the first CB_RECALL send to the DELEGRETURN
    /// (the recall's round trip, the holder's flush of its dirty data included).
    pub recall_return_ms_sum: u64,
    /// The last such round trip, in milliseconds.
    pub recall_return_ms_last: u64,
    /// The longest such round trip, in milliseconds.
    pub recall_return_ms_max: u64,
}

/// Where a client's CB_RECALL_ANY is (D6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecallAny {
    /// Handed to the sender at `since`; its outcome is awaited (forgotten two leases
    /// on, should it never come).
    InFlight { since: Time },
    /// Ended; not to be sent again before `until`.
    Quiet { until: Time },
}

/// Where a delegation's recall is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recall {
    /// Not recalled.
    None,
    /// To be sent at `at` (the first time, or again after a failure).
    Due { at: Time },
    /// Handed to the sender; its outcome is awaited.
    InFlight,
    /// The client said it will return it.
    Acked,
}

#[derive(Debug, Clone)]
struct Deleg {
    client: ClientId,
    file: FileKey,
    fh: Vec<u8>,
    kind: DelegKind,
    seqid: u32,
    recall: Recall,
    /// When the recall was first ordered (revocation is a lease after).
    recalled_at: Option<Time>,
    /// When its CB_RECALL was first handed to the sender (the start of the round trip
    /// that DELEGRETURN ends).
    sent_at: Option<Time>,
    /// Sends so far (for the backoff).
    sends: u32,
    truncate: bool,
    /// CB_GETATTR (D8): the change attribute the server had when it granted the
    /// delegation, and the last change handed out for the holder's modifications.
    cb: CbSeen,
}

/// What D8 remembers of one write delegation.
#[derive(Debug, Clone, Copy, Default)]
struct CbSeen {
    /// The file's change attribute when the delegation was granted (set by the caller
    /// right after the grant; else at the first CB_GETATTR).
    base: Option<u64>,
    /// The holder's change in its last reply that said "modified", and the change the
    /// server answered for it.
    last: Option<(u64, u64)>,
}

/// The holder of a write delegation to ask with CB_GETATTR (D8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbGetattrOrder {
    /// The client holding it.
    pub client: ClientId,
    /// The delegation.
    pub stateid: Stateid,
    /// The file's handle, as the client knows it.
    pub fh: Vec<u8>,
}

/// A file's size and change attribute: the server's own, or what a holder reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeChange {
    /// `size`.
    pub size: u64,
    /// `change`.
    pub change: u64,
}

/// What a GETATTR answers after CB_GETATTR (D8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CbAnswer {
    /// The size and change to answer with.
    pub attrs: SizeChange,
    /// Whether the holder has modified the file (the caller then also reports the
    /// modification and metadata times as now, as knfsd does).
    pub modified: bool,
}

#[derive(Debug, Clone)]
struct Revoked {
    client: ClientId,
    file: FileKey,
}

/// The delegations of the server. See the module doc.
#[derive(Debug)]
pub struct Delegations {
    limits: DelegLimits,
    lease_ms: u64,
    stats: DelegStats,
    delegs: HashMap<[u8; 12], Deleg>,
    by_file: HashMap<FileKey, BTreeSet<[u8; 12]>>,
    by_client: HashMap<ClientId, BTreeSet<[u8; 12]>>,
    revoked: HashMap<[u8; 12], Revoked>,
    /// Revoked stateids per client (SEQUENCE asks on every call: no walk).
    revoked_per_client: HashMap<ClientId, usize>,
    /// Clients that get no delegation until this time (a recall failed or a delegation of
    /// theirs was revoked).
    penalty: HashMap<ClientId, Time>,
    in_flight: usize,
    /// Clients asked with CB_RECALL_ANY lately (D6): at most those holding delegations
    /// when asked, each entry gone two leases later at most.
    recall_any: HashMap<ClientId, RecallAny>,
    /// When the server last changed each delegated file (D7; only files in `by_file`,
    /// dropped once past the window or with the file's last delegation).
    touched: HashMap<FileKey, Time>,
}

impl Delegations {
    /// No delegations, with `limits` and a lease of `lease_ms`.
    pub fn new(limits: DelegLimits, lease_ms: u64) -> Self {
        Self {
            limits,
            lease_ms: lease_ms.max(1),
            stats: DelegStats::default(),
            delegs: HashMap::new(),
            by_file: HashMap::new(),
            by_client: HashMap::new(),
            revoked: HashMap::new(),
            revoked_per_client: HashMap::new(),
            penalty: HashMap::new(),
            in_flight: 0,
            recall_any: HashMap::new(),
            touched: HashMap::new(),
        }
    }

    /// Counters and what is held.
    pub fn stats(&self) -> DelegStats {
        DelegStats {
            held: self.delegs.len(),
            held_write: self
                .delegs
                .values()
                .filter(|d| d.kind == DelegKind::Write)
                .count(),
            revoked_held: self.revoked.len(),
            outstanding: self.in_flight,
            recall_any_outstanding: self
                .recall_any
                .values()
                .filter(|r| matches!(r, RecallAny::InFlight { .. }))
                .count(),
            ..self.stats
        }
    }

    /// Whether `other` names a delegation, held or revoked (for the stateid dispatch).
    pub fn knows(&self, other: &[u8; 12]) -> bool {
        self.delegs.contains_key(other) || self.revoked.contains_key(other)
    }

    /// Whether `client` holds any delegation or revoked stateid (a courtesy client
    /// without one can go at once).
    pub fn has_state(&self, client: ClientId) -> bool {
        self.by_client.contains_key(&client)
    }

    /// Whether `client` has a revoked delegation it has not freed: SEQUENCE reports
    /// `SEQ4_STATUS_RECALLABLE_STATE_REVOKED`.
    pub fn has_revoked(&self, client: ClientId) -> bool {
        self.revoked_per_client.contains_key(&client)
    }

    /// The bounds in force.
    pub fn limits(&self) -> DelegLimits {
        self.limits
    }

    /// Whether a delegation is held on `file` (its handle stays usable, as for opens).
    pub fn holds_file(&self, file: &FileKey) -> bool {
        self.by_file.contains_key(file)
    }

    /// The delegation `client` holds on `file`, if any.
    pub fn held_by(&self, client: ClientId, file: &FileKey) -> Option<(Stateid, DelegKind)> {
        self.by_file.get(file)?.iter().find_map(|k| {
            let d = self.delegs.get(k)?;
            (d.client == client).then_some((
                Stateid {
                    seqid: d.seqid,
                    other: *k,
                },
                d.kind,
            ))
        })
    }

    /// The grant policy (D1) for an OPEN that has just been granted; `sid` is a fresh
    /// stateid (seqid 1) to name the delegation if one is granted. Counts refusals.
    pub fn grant(
        &mut self,
        req: &GrantRequest,
        sid: Stateid,
        now: Time,
    ) -> Result<(Stateid, DelegKind), NoDeleg> {
        let r = self.may_grant(req, now);
        match r {
            Err(NoDeleg::Contention) => self.stats.refused_contention += 1,
            Err(NoDeleg::Resource) => self.stats.refused_resource += 1,
            Ok(()) => {}
        }
        r?;
        // A reclaim over a path not verified is granted pre-recalled.
        let pre_recalled = req.reclaim && !req.cb_ok;
        self.delegs.insert(
            sid.other,
            Deleg {
                client: req.client,
                file: req.file.clone(),
                fh: req.fh.clone(),
                kind: req.kind,
                seqid: sid.seqid,
                recall: if pre_recalled {
                    Recall::Due { at: now }
                } else {
                    Recall::None
                },
                recalled_at: pre_recalled.then_some(now),
                sent_at: None,
                sends: 0,
                truncate: false,
                cb: CbSeen::default(),
            },
        );
        self.by_file
            .entry(req.file.clone())
            .or_default()
            .insert(sid.other);
        self.by_client
            .entry(req.client)
            .or_default()
            .insert(sid.other);
        match req.kind {
            DelegKind::Read => self.stats.granted_read += 1,
            DelegKind::Write => self.stats.granted_write += 1,
        }
        Ok((sid, req.kind))
    }

    fn may_grant(&self, req: &GrantRequest, now: Time) -> Result<(), NoDeleg> {
        if !req.reclaim && (!req.cb_ok || self.penalty.get(&req.client).is_some_and(|t| now < *t)) {
            return Err(NoDeleg::Resource);
        }
        let mine = self.by_client.get(&req.client).map_or(0, |s| s.len());
        if mine >= self.limits.per_client || self.delegs.len() >= self.limits.total {
            return Err(NoDeleg::Resource);
        }
        if self.has_revoked(req.client) {
            return Err(NoDeleg::Resource);
        }
        let in_way = match req.kind {
            DelegKind::Read => req.openers.others_write,
            DelegKind::Write => req.openers.others,
        };
        if in_way {
            return Err(NoDeleg::Contention);
        }
        for k in self.by_file.get(&req.file).into_iter().flatten() {
            let Some(d) = self.delegs.get(k) else {
                continue;
            };
            if d.client == req.client
                || d.recall != Recall::None
                || d.kind == DelegKind::Write
                || req.kind == DelegKind::Write
            {
                return Err(NoDeleg::Contention);
            }
        }
        Ok(())
    }

    /// The conflict check (D2): `who` is about to do `access` to `file`. Every other
    /// client's delegation in the way has its recall ordered (once: a delegation already
    /// being recalled is left as it is) and the caller is told to wait. Delegations
    /// overdue are revoked first (D3), so a caller retrying sees the way clear exactly one
    /// lease after the recall. `truncate` is passed to CB_RECALL (the file is about to be
    /// truncated to zero).
    pub fn conflict(
        &mut self,
        who: Caller,
        file: &FileKey,
        access: Access,
        truncate: bool,
        now: Time,
    ) -> Result<(), Conflict> {
        if !self.by_file.contains_key(file) {
            return Ok(());
        }
        if access != Access::Read || truncate {
            // The caller is about to change the file: its watch will report it (D7).
            self.touched.insert(file.clone(), now);
        }
        self.recall_in_way(who, file, access, truncate, now)
    }

    /// The recalls of [`Delegations::conflict`], without noting the change.
    fn recall_in_way(
        &mut self,
        who: Caller,
        file: &FileKey,
        access: Access,
        truncate: bool,
        now: Time,
    ) -> Result<(), Conflict> {
        let Some(keys) = self.by_file.get(file) else {
            return Ok(());
        };
        let in_way: Vec<[u8; 12]> = keys
            .iter()
            .filter(|k| {
                self.delegs.get(*k).is_some_and(|d| {
                    who != Caller::Client(d.client)
                        && (access != Access::Read || d.kind == DelegKind::Write)
                })
            })
            .copied()
            .collect();
        if in_way.is_empty() {
            return Ok(());
        }
        self.revoke_overdue(now);
        let mut holders = Vec::new();
        for k in in_way {
            let Some(d) = self.delegs.get_mut(&k) else {
                continue;
            };
            if d.recall == Recall::None {
                d.recall = Recall::Due { at: now };
                d.recalled_at = Some(now);
                d.truncate = truncate;
            }
            if !holders.contains(&d.client) {
                holders.push(d.client);
            }
        }
        if holders.is_empty() {
            // All revoked just now: the way is clear.
            return Ok(());
        }
        self.stats.conflicts += 1;
        Err(Conflict { holders })
    }

    /// A change to `file` was made, or reported, at `now` that the server may not have made
    /// itself (D7): unless the server changed the file within [`OWN_CHANGE_WINDOW_MS`],
    /// every delegation on it is recalled as for an NFSv3 caller's change of its
    /// attributes (a courtesy holder in the way may then be expired by the caller).
    pub fn changed_outside(&mut self, file: &FileKey, now: Time) -> OutsideChange {
        if !self.by_file.contains_key(file) {
            return OutsideChange::NotHeld;
        }
        if self
            .touched
            .get(file)
            .is_some_and(|t| now.0.saturating_sub(t.0) <= OWN_CHANGE_WINDOW_MS)
        {
            self.stats.outside_own += 1;
            return OutsideChange::Own;
        }
        match self.recall_in_way(Caller::Other, file, Access::Meta, false, now) {
            Ok(()) => OutsideChange::NotHeld,
            Err(c) => {
                self.stats.outside_changes += 1;
                OutsideChange::Recall(c)
            }
        }
    }

    /// Whether another client's delegation stands in the way of `who`'s `access` to
    /// `file`, as [`Delegations::conflict`] decides it, without ordering anything (for a
    /// caller waiting for a recall it has ordered already).
    pub fn in_way(&self, who: Caller, file: &FileKey, access: Access) -> bool {
        self.by_file.get(file).is_some_and(|keys| {
            keys.iter().any(|k| {
                self.delegs.get(k).is_some_and(|d| {
                    who != Caller::Client(d.client)
                        && (access != Access::Read || d.kind == DelegKind::Write)
                })
            })
        })
    }

    /// D8: the write delegation on `file` held by a client other than `who`, whose holder
    /// a GETATTR of `file`'s size or change must ask with CB_GETATTR; `None` when there is
    /// none (the server's own attributes are right).
    pub fn write_holder(&self, who: Caller, file: &FileKey) -> Option<CbGetattrOrder> {
        self.by_file.get(file)?.iter().find_map(|k| {
            let d = self.delegs.get(k)?;
            (d.kind == DelegKind::Write && who != Caller::Client(d.client)).then(|| {
                CbGetattrOrder {
                    client: d.client,
                    stateid: Stateid {
                        seqid: d.seqid,
                        other: *k,
                    },
                    fh: d.fh.clone(),
                }
            })
        })
    }

    /// D8: the change attribute of the file when write delegation `sid` was granted (the
    /// baseline a holder's CB_GETATTR reply is compared with). Kept only the first time.
    pub fn set_cb_baseline(&mut self, sid: &Stateid, change: u64) {
        if let Some(d) = self.delegs.get_mut(&sid.other) {
            d.cb.base.get_or_insert(change);
        }
    }

    /// D8: what a GETATTR answers of the size and change of the file under write
    /// delegation `sid`, now that its holder replied `reported` to CB_GETATTR and the
    /// server's own attributes are `server`. A delegation gone meanwhile (returned,
    /// revoked) leaves the server's own.
    pub fn cb_getattr_answer(
        &mut self,
        sid: &Stateid,
        reported: SizeChange,
        server: SizeChange,
    ) -> CbAnswer {
        let unmodified = CbAnswer {
            attrs: server,
            modified: false,
        };
        let Some(d) = self.delegs.get_mut(&sid.other) else {
            return unmodified;
        };
        let base = *d.cb.base.get_or_insert(server.change);
        if reported.change == base {
            return unmodified;
        }
        let change = match d.cb.last {
            // The same modification as last time: the same answer, unless the server's
            // own change has passed it since (the holder wrote some back).
            Some((seen, answered)) if seen == reported.change => {
                answered.max(server.change.saturating_add(1))
            }
            Some((_, answered)) => answered
                .saturating_add(1)
                .max(server.change.saturating_add(1)),
            None => server.change.saturating_add(1),
        };
        d.cb.last = Some((reported.change, change));
        CbAnswer {
            attrs: SizeChange {
                size: reported.size,
                change,
            },
            modified: true,
        }
    }

    /// The laundromat's step: revokes overdue delegations (D3), then returns the recalls
    /// to send now (D2), at most as many as the bound on outstanding recalls leaves room
    /// for; each is in flight until [`Delegations::recall_outcome`] reports on it.
    pub fn due_recalls(&mut self, now: Time) -> Vec<RecallOrder> {
        self.revoke_overdue(now);
        self.penalty.retain(|_, t| now < *t);
        let by_file = &self.by_file;
        self.touched.retain(|f, t| {
            by_file.contains_key(f) && now.0.saturating_sub(t.0) <= OWN_CHANGE_WINDOW_MS
        });
        let room = self.limits.outstanding.saturating_sub(self.in_flight);
        let mut due: Vec<(Time, [u8; 12])> = self
            .delegs
            .iter()
            .filter_map(|(k, d)| match d.recall {
                Recall::Due { at } if at <= now => Some((at, *k)),
                _ => None,
            })
            .collect();
        // Oldest first, so a flood of new recalls cannot starve a retry.
        due.sort_unstable();
        due.truncate(room);
        let mut orders = Vec::with_capacity(due.len());
        for (_, k) in due {
            let Some(d) = self.delegs.get_mut(&k) else {
                continue;
            };
            d.recall = Recall::InFlight;
            if d.sends == 0 {
                self.stats.recalls += 1;
                d.sent_at = Some(now);
            } else {
                self.stats.recall_retries += 1;
            }
            d.sends = d.sends.saturating_add(1);
            self.in_flight += 1;
            orders.push(RecallOrder {
                client: d.client,
                stateid: Stateid {
                    seqid: d.seqid,
                    other: k,
                },
                fh: d.fh.clone(),
                truncate: d.truncate,
            });
        }
        orders
    }

    /// What became of the recall of `sid` (the sender reports each order once). Delivered:
    /// the client will return it (revocation still comes a lease after the recall if it
    /// does not). Refused or path down: sent again on the backoff schedule; a path down
    /// also keeps new delegations from the client for a lease. An outcome for a
    /// delegation that is gone (returned, revoked, purged) is ignored.
    pub fn recall_outcome(&mut self, sid: &Stateid, outcome: RecallOutcome, now: Time) {
        let Some(d) = self.delegs.get_mut(&sid.other) else {
            return;
        };
        if d.recall != Recall::InFlight {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        match outcome {
            RecallOutcome::Delivered => d.recall = Recall::Acked,
            RecallOutcome::Refused(status) => {
                d.recall = Recall::Due {
                    at: now.plus_ms(backoff(d.sends)),
                };
                if status != NFS4ERR_DELAY {
                    tracing::debug!(client = d.client.0, status, "CB_RECALL refused");
                }
            }
            RecallOutcome::PathDown => {
                d.recall = Recall::Due {
                    at: now.plus_ms(backoff(d.sends)),
                };
                let until = now.plus_ms(self.lease_ms);
                self.penalty.insert(d.client, until);
            }
        }
    }

    /// The CB_RECALL_ANYs to send now (D6): none below the total bound; at it, the clients
    /// holding the most delegations, largest first, each asked to keep half of what it
    /// holds, until what they are asked to return (counting those already asked) brings
    /// the count to [`RECALL_ANY_TARGET`] of the bound. A client with one in flight, or
    /// whose last one ended less than a lease ago, is not asked. Each order is in flight
    /// until [`Delegations::recall_any_outcome`] reports on it.
    pub fn due_recall_any(&mut self, now: Time) -> Vec<RecallAnyOrder> {
        let lease = self.lease_ms;
        self.recall_any.retain(|_, r| match *r {
            RecallAny::InFlight { since } => now.since(since) < lease.saturating_mul(2),
            RecallAny::Quiet { until } => now < until,
        });
        let total = self.limits.total;
        let held = self.delegs.len();
        if held < total {
            return Vec::new();
        }
        let target = total / RECALL_ANY_TARGET.1 * RECALL_ANY_TARGET.0;
        let mut need = held.saturating_sub(target).max(1);
        // (held, client, kinds held) of every client holding delegations.
        let mut holders: Vec<(usize, ClientId, u32)> = self
            .by_client
            .iter()
            .filter_map(|(c, keys)| {
                let mut mask = 0;
                let n = keys
                    .iter()
                    .filter_map(|k| self.delegs.get(k))
                    .inspect(|d| {
                        mask |= match d.kind {
                            DelegKind::Read => RCA4_RDATA_DLG,
                            DelegKind::Write => RCA4_WDATA_DLG,
                        }
                    })
                    .count();
                (n > 0).then_some((n, *c, mask))
            })
            .collect();
        // The most first; among equals, the lowest client id (a stable order).
        holders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1 .0.cmp(&b.1 .0)));
        let mut orders = Vec::new();
        for (n, client, mask) in holders {
            if need == 0 || orders.len() >= RECALL_ANY_PER_PASS {
                break;
            }
            let keep = n / 2;
            let returns = n - keep;
            match self.recall_any.get(&client) {
                Some(RecallAny::InFlight { .. }) => {
                    need = need.saturating_sub(returns);
                    continue;
                }
                Some(RecallAny::Quiet { .. }) => continue,
                None => {}
            }
            need = need.saturating_sub(returns);
            self.recall_any
                .insert(client, RecallAny::InFlight { since: now });
            self.stats.recall_any += 1;
            orders.push(RecallAnyOrder {
                client,
                keep: u32::try_from(keep).unwrap_or(u32::MAX),
                mask,
            });
        }
        orders
    }

    /// What became of `client`'s CB_RECALL_ANY: whatever it was, the client is not asked
    /// again for a lease (a client that agreed returns delegations meanwhile); a path
    /// down also keeps new delegations from it for that lease, as for CB_RECALL. An
    /// outcome for a client with none in flight is ignored.
    pub fn recall_any_outcome(&mut self, client: ClientId, outcome: RecallOutcome, now: Time) {
        if !matches!(
            self.recall_any.get(&client),
            Some(RecallAny::InFlight { .. })
        ) {
            return;
        }
        let until = now.plus_ms(self.lease_ms);
        self.recall_any.insert(client, RecallAny::Quiet { until });
        match outcome {
            RecallOutcome::Delivered => {}
            RecallOutcome::Refused(_) => self.stats.recall_any_failed += 1,
            RecallOutcome::PathDown => {
                self.stats.recall_any_failed += 1;
                self.penalty.insert(client, until);
            }
        }
    }

    /// Revokes every delegation whose recall was ordered a lease ago or more (D3).
    /// Returns how many.
    pub fn revoke_overdue(&mut self, now: Time) -> usize {
        let lease = self.lease_ms;
        let overdue: Vec<[u8; 12]> = self
            .delegs
            .iter()
            .filter(|(_, d)| d.recalled_at.is_some_and(|t| now.since(t) >= lease))
            .map(|(k, _)| *k)
            .collect();
        for k in &overdue {
            let Some(d) = self.remove(k) else {
                continue;
            };
            tracing::info!(
                client = d.client.0,
                "delegation revoked: not returned within a lease of its recall"
            );
            self.stats.revoked += 1;
            self.penalty.insert(d.client, now.plus_ms(lease));
            self.revoked.insert(
                *k,
                Revoked {
                    client: d.client,
                    file: d.file,
                },
            );
            self.by_client.entry(d.client).or_default().insert(*k);
            *self.revoked_per_client.entry(d.client).or_default() += 1;
        }
        overdue.len()
    }

    /// Checks a delegation stateid `client` presents, on `file` when given; for
    /// `write`, it must be a write delegation.
    pub fn check(
        &self,
        client: ClientId,
        sid: &Stateid,
        file: Option<&FileKey>,
        write: bool,
    ) -> Result<DelegKind, DelegError> {
        if let Some(r) = self.revoked.get(&sid.other) {
            if r.client != client || file.is_some_and(|f| *f != r.file) {
                return Err(DelegError::BadStateid);
            }
            return Err(DelegError::Revoked);
        }
        let d = self.delegs.get(&sid.other).ok_or(DelegError::BadStateid)?;
        if d.client != client || file.is_some_and(|f| *f != d.file) {
            return Err(DelegError::BadStateid);
        }
        match check_seqid(sid.seqid, d.seqid) {
            SeqidCheck::Current => {}
            SeqidCheck::Old => return Err(DelegError::OldStateid),
            SeqidCheck::Future => return Err(DelegError::BadStateid),
        }
        if write && d.kind == DelegKind::Read {
            return Err(DelegError::OpenMode);
        }
        Ok(d.kind)
    }

    /// DELEGRETURN (RFC 8881 18.6) of `sid` on `file` at `now`: the delegation goes. A
    /// revoked one answers `Revoked` (and stays until FREE_STATEID). One returned after its
    /// CB_RECALL was sent has the recall's round trip counted.
    pub fn delegreturn(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        now: Time,
    ) -> Result<(), DelegError> {
        self.check(client, sid, Some(file), false)?;
        // An outcome still to come from the sender is then ignored.
        let sent_at = self.remove(&sid.other).and_then(|d| d.sent_at);
        self.stats.returned += 1;
        if let Some(t) = sent_at {
            let ms = now.since(t);
            let s = &mut self.stats;
            s.recall_returns += 1;
            s.recall_return_ms_sum = s.recall_return_ms_sum.saturating_add(ms);
            s.recall_return_ms_last = ms;
            s.recall_return_ms_max = s.recall_return_ms_max.max(ms);
            tracing::info!(
                client = client.0,
                ms,
                "delegation returned {ms} ms after its CB_RECALL was sent"
            );
        }
        Ok(())
    }

    /// FREE_STATEID (RFC 8881 18.38) of a delegation stateid: a revoked one is forgotten
    /// (the client has seen the revocation); a held one is still in use: `LocksHeld` in
    /// the caller's terms, here `Err(None)`.
    pub fn free_stateid(
        &mut self,
        client: ClientId,
        sid: &Stateid,
    ) -> Result<(), Option<DelegError>> {
        if let Some(r) = self.revoked.get(&sid.other) {
            if r.client != client {
                return Err(Some(DelegError::BadStateid));
            }
            self.revoked.remove(&sid.other);
            self.unindex_client(client, &sid.other);
            if let Some(n) = self.revoked_per_client.get_mut(&client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.revoked_per_client.remove(&client);
                }
            }
            return Ok(());
        }
        match self.delegs.get(&sid.other) {
            Some(d) if d.client == client => Err(None),
            _ => Err(Some(DelegError::BadStateid)),
        }
    }

    /// Forgets the revoked stateids of the clients `forget` names (NFSv4.0 clients, which
    /// have no FREE_STATEID: their revoked stateids would otherwise be kept, and keep
    /// delegations from them, until they go). Returns how many.
    pub fn forget_revoked(&mut self, forget: impl Fn(ClientId) -> bool) -> usize {
        let ks: Vec<([u8; 12], ClientId)> = self
            .revoked
            .iter()
            .filter(|(_, r)| forget(r.client))
            .map(|(k, r)| (*k, r.client))
            .collect();
        for (k, client) in &ks {
            self.revoked.remove(k);
            self.unindex_client(*client, k);
            self.revoked_per_client.remove(client);
        }
        ks.len()
    }

    /// The client of delegation stateid `other`, held or revoked.
    pub fn client_of(&self, other: &[u8; 12]) -> Option<ClientId> {
        self.delegs
            .get(other)
            .map(|d| d.client)
            .or_else(|| self.revoked.get(other).map(|r| r.client))
    }

    /// Drops every delegation and revoked stateid of `client` (D5). Returns how many
    /// delegations it held.
    pub fn purge_client(&mut self, client: ClientId) -> usize {
        let Some(keys) = self.by_client.get(&client).cloned() else {
            self.penalty.remove(&client);
            self.recall_any.remove(&client);
            return 0;
        };
        let mut n = 0;
        for k in &keys {
            if self.remove(k).is_some() {
                n += 1;
            }
            self.revoked.remove(k);
        }
        self.by_client.remove(&client);
        self.revoked_per_client.remove(&client);
        self.penalty.remove(&client);
        self.recall_any.remove(&client);
        self.stats.purged += n as u64;
        n
    }

    /// Removes a held delegation from the table and its indexes (and from the recalls in
    /// flight: the sender's report on it will be ignored).
    fn remove(&mut self, k: &[u8; 12]) -> Option<Deleg> {
        let d = self.delegs.remove(k)?;
        if d.recall == Recall::InFlight {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if let Some(s) = self.by_file.get_mut(&d.file) {
            s.remove(k);
            if s.is_empty() {
                self.by_file.remove(&d.file);
            }
        }
        self.unindex_client(d.client, k);
        Some(d)
    }

    fn unindex_client(&mut self, client: ClientId, k: &[u8; 12]) {
        if let Some(s) = self.by_client.get_mut(&client) {
            s.remove(k);
            if s.is_empty() {
                self.by_client.remove(&client);
            }
        }
    }
}

/// The wait before the next send of a recall sent `sends` times already.
fn backoff(sends: u32) -> u64 {
    let shift = sends.saturating_sub(1).min(16);
    (BACKOFF_FIRST_MS << shift).min(BACKOFF_MAX_MS)
}

#[cfg(test)]
#[path = "delegations_tests.rs"]
mod tests;
