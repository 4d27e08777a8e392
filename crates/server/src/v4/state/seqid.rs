//! NFSv4.0 per-owner seqids and the replay cache of each owner's last reply (RFC 7530
//! 9.1.7, 9.1.9, 16.18.5, 16.20). NFSv4.1 orders requests with session slots; NFSv4.0
//! orders the state-changing requests of each open owner and lock owner by a seqid the
//! owner bumps with each of them, and a server answers a retransmission with the reply it
//! sent the first time.
//!
//! The contract, each clause tested below with virtual time:
//! - Q1: an owner the table does not know (a new one) takes any seqid; a known one takes
//!   its last seqid plus one (wrapping), or its last seqid again, which is a
//!   retransmission: the reply then is the one sent before, byte for byte, with its
//!   status (and for OPEN the file handle it set). Anything else is `BAD_SEQID`.
//! - Q2: every reply moves the owner's seqid on and is kept, except those RFC 7530 9.1.7
//!   names (STALE_CLIENTID, STALE_STATEID, BAD_STATEID, BAD_SEQID, BADXDR, RESOURCE,
//!   NOFILEHANDLE, MOVED): the request did not reach the owner's state.
//! - Q3: an open owner is unconfirmed from its first OPEN until OPEN_CONFIRM; an OPEN by
//!   an unconfirmed owner that is not a retransmission starts the owner afresh (the
//!   client gave up on confirming it, as knfsd treats it).
//! - Q4 (bounds): a kept reply is at most [`MAX_REPLY`] bytes (larger ones are not kept:
//!   their retransmission is `BAD_SEQID`, counted); the table holds at most its bound of
//!   owners, the least recently used going first when a new one comes (counted); an owner
//!   that has held no state (the caller says) for a lease, and sent nothing for as long, is
//!   forgotten by [`SeqidTable::tick`]: a client's owners outlive the purge of its state by
//!   a lease (its stateids then still name the client, so that they answer EXPIRED); [`SeqidTable::purge_client`] forgets a client's owners at
//!   once. The bytes held are a gauge.
//! - Q5: the stateid an owner's last request named maps back to the owner, so that a
//!   retransmitted CLOSE (whose stateid is gone) still finds its reply.
use super::ids::{ClientId, Stateid, Time};
use super::locking::{Body, Locking, LockingError, OwnerKey};
use super::stateid::{next_seqid, special, StateidKind, Unknown};
use rnfs_vfs::FileKey;
use std::collections::{BTreeMap, HashMap};

/// Largest reply body kept for an owner: a LOCK denied with a 1024-byte owner (1056 bytes)
/// fits, as does any OPEN result.
pub const MAX_REPLY: usize = 1280;

/// Which kind of owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKind {
    /// An open owner (OPEN, OPEN_CONFIRM, OPEN_DOWNGRADE, CLOSE; LOCK for a new lock owner).
    Open,
    /// A lock owner (LOCK with an existing lock stateid, LOCKU).
    Lock,
}

/// An owner: its kind, client and opaque name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqOwner {
    /// Open or lock owner.
    pub kind: OwnerKind,
    /// Its client.
    pub client: ClientId,
    /// The owner bytes.
    pub name: Vec<u8>,
}

/// A kept reply: the operation's status and its result body (what follows the status),
/// and for OPEN the file handle it made current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// `nfsstat4`.
    pub status: u32,
    /// The result body.
    pub body: Vec<u8>,
    /// The current file handle after the operation (OPEN), else empty.
    pub fh: Vec<u8>,
}

/// What [`SeqidTable::start`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqStart {
    /// A new owner (or an unconfirmed one started afresh, Q3): run the operation.
    New,
    /// The next seqid: run the operation.
    Next,
    /// A retransmission: send this again.
    Replay(Kept),
}

/// `NFS4ERR_BAD_SEQID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("NFS4ERR_BAD_SEQID")]
pub struct BadSeqid;

/// The statuses that leave the seqid where it was (Q2).
const NO_BUMP: [u32; 8] = [10022, 10023, 10025, 10026, 10036, 10018, 10020, 10019];

/// Counters and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqidStats {
    /// Owners known now.
    pub owners: u64,
    /// Bytes of kept replies now.
    pub kept_bytes: u64,
    /// Retransmissions answered from the cache.
    pub replays: u64,
    /// BAD_SEQID answers.
    pub bad_seqid: u64,
    /// Replies too large to keep.
    pub too_big: u64,
    /// Owners dropped at the bound.
    pub evicted: u64,
}

#[derive(Debug)]
struct Entry {
    last: u32,
    confirmed: bool,
    kept: Option<Kept>,
    /// The LRU stamp.
    stamp: u64,
    used: Time,
    /// Since when the laundromat has seen the owner hold no state.
    orphan: Option<Time>,
    /// The `other` of the stateid of the last request (Q5).
    other: Option<[u8; 12]>,
}

/// The seqids of all NFSv4.0 owners. See the module documentation.
#[derive(Debug)]
pub struct SeqidTable {
    max_owners: usize,
    owners: HashMap<SeqOwner, Entry>,
    lru: BTreeMap<u64, SeqOwner>,
    by_other: HashMap<[u8; 12], SeqOwner>,
    next_stamp: u64,
    kept_bytes: usize,
    stats: SeqidStats,
}

fn kept_len(k: &Option<Kept>) -> usize {
    k.as_ref().map_or(0, |k| k.body.len() + k.fh.len())
}

impl SeqidTable {
    /// An empty table of at most `max_owners` owners.
    pub fn new(max_owners: usize) -> Self {
        Self {
            max_owners: max_owners.max(1),
            owners: HashMap::new(),
            lru: BTreeMap::new(),
            by_other: HashMap::new(),
            next_stamp: 0,
            kept_bytes: 0,
            stats: SeqidStats::default(),
        }
    }

    /// Before running a seqid operation of `owner` with `seqid` (Q1, Q3); `open` for OPEN.
    pub fn start(
        &mut self,
        owner: &SeqOwner,
        seqid: u32,
        open: bool,
    ) -> Result<SeqStart, BadSeqid> {
        let Some(e) = self.owners.get(owner) else {
            return Ok(SeqStart::New);
        };
        if seqid == e.last {
            if let Some(k) = &e.kept {
                self.stats.replays += 1;
                return Ok(SeqStart::Replay(k.clone()));
            }
        } else if seqid == e.last.wrapping_add(1) {
            return Ok(SeqStart::Next);
        }
        if open && !e.confirmed {
            self.remove(owner);
            return Ok(SeqStart::New);
        }
        self.stats.bad_seqid += 1;
        Err(BadSeqid)
    }

    /// After running it: keeps the reply and moves the seqid on (Q2, Q4, Q5). `confirmed`
    /// is what a new owner starts as (an open owner's first OPEN: false); `other` the
    /// stateid the request named.
    pub fn finish(
        &mut self,
        owner: &SeqOwner,
        seqid: u32,
        kept: Kept,
        other: Option<[u8; 12]>,
        confirmed: bool,
        now: Time,
    ) {
        if NO_BUMP.contains(&kept.status) {
            return;
        }
        let kept = if kept.body.len() + kept.fh.len() > MAX_REPLY {
            self.stats.too_big += 1;
            None
        } else {
            Some(kept)
        };
        if !self.owners.contains_key(owner) {
            while self.owners.len() >= self.max_owners {
                let Some((_, oldest)) = self.lru.iter().next().map(|(s, o)| (*s, o.clone())) else {
                    break;
                };
                self.remove(&oldest);
                self.stats.evicted += 1;
            }
        }
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let e = self.owners.entry(owner.clone()).or_insert(Entry {
            last: seqid,
            confirmed,
            kept: None,
            stamp,
            used: now,
            orphan: None,
            other: None,
        });
        self.lru.remove(&e.stamp);
        self.lru.insert(stamp, owner.clone());
        self.kept_bytes = self.kept_bytes - kept_len(&e.kept) + kept_len(&kept);
        e.last = seqid;
        e.kept = kept;
        e.stamp = stamp;
        e.used = now;
        if let Some(o) = other {
            if let Some(old) = e.other.replace(o) {
                if self.by_other.get(&old) == Some(owner) {
                    self.by_other.remove(&old);
                }
            }
            self.by_other.insert(o, owner.clone());
        }
    }

    /// Whether `owner` is known and confirmed (`None`: unknown).
    pub fn confirmed(&self, owner: &SeqOwner) -> Option<bool> {
        self.owners.get(owner).map(|e| e.confirmed)
    }

    /// OPEN_CONFIRM: the owner is confirmed from now on.
    pub fn confirm(&mut self, owner: &SeqOwner) {
        if let Some(e) = self.owners.get_mut(owner) {
            e.confirmed = true;
        }
    }

    /// The owner whose last request named the stateid `other` (Q5).
    pub fn owner_of(&self, other: &[u8; 12]) -> Option<&SeqOwner> {
        self.by_other.get(other)
    }

    /// Forgets `owner` (RELEASE_LOCKOWNER, eviction).
    pub fn remove(&mut self, owner: &SeqOwner) {
        let Some(e) = self.owners.remove(owner) else {
            return;
        };
        self.lru.remove(&e.stamp);
        self.kept_bytes -= kept_len(&e.kept);
        if let Some(o) = e.other {
            if self.by_other.get(&o) == Some(owner) {
                self.by_other.remove(&o);
            }
        }
    }

    /// Forgets every owner of `client` (its state was purged).
    pub fn purge_client(&mut self, client: ClientId) {
        let gone: Vec<SeqOwner> = self
            .owners
            .keys()
            .filter(|o| o.client == client)
            .cloned()
            .collect();
        for o in &gone {
            self.remove(o);
        }
    }

    /// The laundromat (Q4): forgets owners that have held no state (`holds_state` says)
    /// for more than `lease_ms`, counted from the first tick that saw them without any
    /// (so a client's owners outlive the purge of its state by a lease) and from their
    /// last request.
    pub fn tick(&mut self, now: Time, lease_ms: u64, holds_state: &dyn Fn(&SeqOwner) -> bool) {
        let mut idle = Vec::new();
        for (o, e) in self.owners.iter_mut() {
            if holds_state(o) {
                e.orphan = None;
                continue;
            }
            let since = *e.orphan.get_or_insert(now);
            if now.since(since) > lease_ms && now.since(e.used) > lease_ms {
                idle.push(o.clone());
            }
        }
        for o in &idle {
            self.remove(o);
        }
    }

    /// Counters and gauges now.
    pub fn stats(&self) -> SeqidStats {
        SeqidStats {
            owners: self.owners.len() as u64,
            kept_bytes: self.kept_bytes as u64,
            ..self.stats
        }
    }
}

impl Locking {
    /// The NFSv4.0 seqid table.
    pub fn seqids(&mut self) -> &mut SeqidTable {
        &mut self.seqids
    }

    /// The owner whose seqid an operation on open or lock stateid `sid` uses: the owner of
    /// the state, or for a stateid no longer held (a retransmitted CLOSE), the owner whose
    /// last reply named it (Q5). `BAD_STATEID` or `STALE_STATEID` for one nobody has.
    pub fn seqid_owner(&self, sid: &Stateid) -> Result<SeqOwner, LockingError> {
        if special(sid).is_some() {
            return Err(LockingError::BadStateid);
        }
        let k = self.mint.parse(&sid.other).map_err(|u| match u {
            Unknown::Stale => LockingError::StaleStateid,
            Unknown::Bad => LockingError::BadStateid,
        })?;
        let (kind, owner) = match self.states.get(&k).map(|s| &s.body) {
            Some(Body::Open(o)) => (OwnerKind::Open, &o.owner),
            Some(Body::Lock(l)) => (OwnerKind::Lock, &l.owner),
            None => {
                return self
                    .seqids
                    .owner_of(&sid.other)
                    .cloned()
                    .ok_or(LockingError::BadStateid)
            }
        };
        Ok(SeqOwner {
            kind,
            client: owner.client,
            name: owner.name.clone(),
        })
    }

    /// OPEN_CONFIRM (RFC 7530 16.20) on the locking state: `client`'s current open
    /// stateid `sid` on `file`, its seqid bumped.
    pub fn open_confirm(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
    ) -> Result<Stateid, LockingError> {
        let r = self
            .find(client, sid, Some(StateidKind::Open), Some(file))
            .map(|k| {
                let seqid = match self.states.get_mut(&k) {
                    Some(st) => {
                        st.seqid = next_seqid(st.seqid);
                        st.seqid
                    }
                    None => sid.seqid,
                };
                self.stateid(k, seqid)
            });
        self.count_err(r)
    }

    /// The seqid table's counters and gauges.
    pub fn seqid_stats(&self) -> SeqidStats {
        self.seqids.stats()
    }

    /// The seqid laundromat (Q4): forgets owners idle for a lease that hold no state.
    pub fn seqid_tick(&mut self, now: Time, lease_ms: u64) {
        let (opens, locks) = (&self.open_owners, &self.lock_owners);
        self.seqids.tick(now, lease_ms, &|o| {
            let k = OwnerKey {
                client: o.client,
                name: o.name.clone(),
            };
            match o.kind {
                OwnerKind::Open => opens.contains_key(&k),
                OwnerKind::Lock => locks.contains_key(&k),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_owner(client: u64, name: &[u8]) -> SeqOwner {
        SeqOwner {
            kind: OwnerKind::Open,
            client: ClientId(client),
            name: name.to_vec(),
        }
    }

    fn kept(status: u32, body: &[u8]) -> Kept {
        Kept {
            status,
            body: body.to_vec(),
            fh: Vec::new(),
        }
    }

    #[test]
    fn q1_new_next_replay_and_bad_seqid() {
        let mut t = SeqidTable::new(16);
        let o = open_owner(1, b"a");
        assert_eq!(t.start(&o, 7, true), Ok(SeqStart::New));
        t.finish(&o, 7, kept(0, b"first"), Some([1; 12]), false, Time(0));
        // The same seqid again: the same reply, byte for byte.
        assert_eq!(
            t.start(&o, 7, true),
            Ok(SeqStart::Replay(kept(0, b"first")))
        );
        assert_eq!(t.start(&o, 8, false), Ok(SeqStart::Next));
        t.confirm(&o);
        // Neither last nor next.
        assert_eq!(t.start(&o, 9, false), Err(BadSeqid));
        assert_eq!(t.start(&o, 6, true), Err(BadSeqid));
        let s = t.stats();
        assert_eq!((s.replays, s.bad_seqid, s.owners), (1, 2, 1));
        // Wrapping.
        t.finish(&o, u32::MAX, kept(0, b"x"), None, true, Time(1));
        assert_eq!(t.start(&o, 0, false), Ok(SeqStart::Next));
    }

    #[test]
    fn q2_errors_that_do_not_reach_the_owner_leave_the_seqid() {
        let mut t = SeqidTable::new(16);
        let o = open_owner(1, b"a");
        t.finish(&o, 1, kept(0, b"ok"), None, true, Time(0));
        // BAD_STATEID on seqid 2: not kept; 2 is still the next one.
        t.finish(&o, 2, kept(10025, b""), None, true, Time(0));
        assert_eq!(t.start(&o, 2, false), Ok(SeqStart::Next));
        // SHARE_DENIED moves it on and is replayed.
        t.finish(&o, 2, kept(10015, b""), None, true, Time(0));
        assert_eq!(
            t.start(&o, 2, false),
            Ok(SeqStart::Replay(kept(10015, b"")))
        );
        assert_eq!(t.start(&o, 3, false), Ok(SeqStart::Next));
    }

    #[test]
    fn q3_an_unconfirmed_open_owner_starts_afresh() {
        let mut t = SeqidTable::new(16);
        let o = open_owner(1, b"a");
        t.finish(&o, 5, kept(0, b"r"), None, false, Time(0));
        assert_eq!(t.confirmed(&o), Some(false));
        // A retransmission is still a retransmission...
        assert!(matches!(t.start(&o, 5, true), Ok(SeqStart::Replay(_))));
        // ... but any other OPEN starts the owner again, and a non-OPEN is refused.
        assert_eq!(t.start(&o, 40, false), Err(BadSeqid));
        assert_eq!(t.start(&o, 40, true), Ok(SeqStart::New));
        assert_eq!(t.confirmed(&o), None);
        // A confirmed owner is held to its seqid.
        t.finish(&o, 40, kept(0, b"r"), None, false, Time(0));
        t.confirm(&o);
        assert_eq!(t.start(&o, 99, true), Err(BadSeqid));
    }

    #[test]
    fn q4_bounds_eviction_and_idle_owners() {
        let mut t = SeqidTable::new(2);
        let (a, b, c) = (
            open_owner(1, b"a"),
            open_owner(1, b"b"),
            open_owner(2, b"c"),
        );
        t.finish(&a, 1, kept(0, &[0; 100]), None, true, Time(0));
        t.finish(&b, 1, kept(0, &[0; 50]), None, true, Time(10));
        assert_eq!(t.stats().kept_bytes, 150);
        // a is used again, so b is the least recently used when c comes.
        t.finish(&a, 2, kept(0, &[0; 10]), None, true, Time(20));
        t.finish(&c, 1, kept(0, &[0; 5]), None, true, Time(30));
        assert_eq!(t.confirmed(&b), None);
        let s = t.stats();
        assert_eq!((s.owners, s.evicted, s.kept_bytes), (2, 1, 15));
        // Too large to keep: the seqid moves on, the retransmission is refused.
        t.finish(&a, 3, kept(0, &[0; MAX_REPLY + 1]), None, true, Time(40));
        assert_eq!(t.start(&a, 3, false), Err(BadSeqid));
        assert_eq!(t.stats().too_big, 1);
        // Idle for more than a lease: forgotten unless it holds state.
        // The first tick without state starts the count: nothing goes yet.
        t.tick(Time(5000), 1000, &|_| false);
        assert_eq!(t.stats().owners, 2, "seen without state only now: kept");
        t.tick(Time(6000), 1000, &|_| false);
        assert_eq!(
            t.stats().owners,
            2,
            "without state for exactly a lease: kept"
        );
        // a holds state again (its count starts afresh), c goes.
        t.tick(Time(6001), 1000, &|o| o.name == b"a");
        assert_eq!((t.confirmed(&a), t.confirmed(&c)), (Some(true), None));
        t.purge_client(ClientId(1));
        assert_eq!(
            t.stats(),
            SeqidStats {
                evicted: 1,
                too_big: 1,
                bad_seqid: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn q5_the_last_stateid_finds_its_owner() {
        let mut t = SeqidTable::new(4);
        let o = open_owner(1, b"a");
        t.finish(&o, 1, kept(0, b""), Some([1; 12]), true, Time(0));
        t.finish(&o, 2, kept(0, b""), Some([2; 12]), true, Time(0));
        assert_eq!(t.owner_of(&[1; 12]), None);
        assert_eq!(t.owner_of(&[2; 12]), Some(&o));
        t.remove(&o);
        assert_eq!(t.owner_of(&[2; 12]), None);
    }
}
