//! The NFSv4.1 client's delegations (RFC 8881 10.2, 10.4, 20.2, 20.6), free of I/O and
//! of the clock: which delegations the client holds, what they let it do locally, and the
//! returns to run (after a CB_RECALL, a CB_RECALL_ANY, or past the client's own bound).
//!
//! The contract, each clause with its tests below:
//! - **C1 what a delegation allows**: a read delegation lets the client open the file for
//!   read and trust its cached attributes without asking the server; a write delegation
//!   also opens for write and writes back lazily. Opens served so are counted on the
//!   delegation; nothing is allowed on a delegation being returned.
//! - **C2 recall**: CB_RECALL of a delegation the client holds is answered OK at once (the
//!   callback handler never waits for the return, which needs slots and maybe a drain:
//!   seed entry 3) and queues its return; of one it does not know, `BAD_STATEID`.
//!   A return is planned as: write back dirty data (write delegation), open at the server
//!   each local open served under it (CLAIM_DELEG_CUR_FH), then DELEGRETURN, each with
//!   the privileged slot class. Queued once however often recalled.
//! - **C3 bounds**: the client holds at most its limit of delegations; a grant past it
//!   queues the return of the least recently used one that serves no open (none if all
//!   do: the grant is then returned itself). CB_RECALL_ANY returns the least recently used
//!   of the kinds asked until at most the number to keep remain.
//! - **C4 ends**: a DELEGRETURN answered OK, `BAD_STATEID`, `DELEG_REVOKED` or `EXPIRED`
//!   forgets the delegation (the last three: the server has dropped it; the opens served
//!   under it are reported lost when it was revoked); a transient failure queues it again.
//!   A delegation revoked by the server (TEST_STATEID) is forgotten the same way. Nothing
//!   is kept for a forgotten delegation: the table counts what it holds.
use super::slots::Time;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// `NFS4ERR_BAD_STATEID`: the answer to CB_RECALL of an unknown delegation.
pub const NFS4ERR_BAD_STATEID: u32 = 10025;

/// A delegation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `OPEN_DELEGATE_READ`.
    Read,
    /// `OPEN_DELEGATE_WRITE`.
    Write,
}

/// A delegation stateid (`stateid4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DelegStateid {
    /// `seqid`.
    pub seqid: u32,
    /// `other`.
    pub other: [u8; 12],
}

/// A return to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPlan<K> {
    /// The file.
    pub key: K,
    /// The delegation.
    pub stateid: DelegStateid,
    /// Write back the file's dirty data first (a write delegation).
    pub flush: bool,
    /// Local opens served under the delegation, to open at the server first.
    pub local_opens: u32,
}

/// What became of a DELEGRETURN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// `NFS4_OK`.
    Ok,
    /// `BAD_STATEID`, `EXPIRED`: the server no longer has it.
    Gone,
    /// `DELEG_REVOKED`: the server took it back; what was done under it may be lost.
    Revoked,
    /// No reply, `DELAY`, a lost session: try again.
    Transient,
}

/// Counters and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DelegStats {
    /// Delegations held (being returned included).
    pub held: usize,
    /// Returns queued or running.
    pub returning: usize,
    /// CB_RECALLs answered OK.
    pub recalls: u64,
    /// CB_RECALLs of unknown delegations.
    pub recalls_unknown: u64,
    /// Returns done (any end).
    pub returned: u64,
    /// Delegations lost to revocation with opens served under them.
    pub lost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    /// Queued for return, or its return running (`running`).
    Returning {
        running: bool,
    },
}

#[derive(Debug, Clone)]
struct Held {
    stateid: DelegStateid,
    kind: Kind,
    state: State,
    local_opens: u32,
    last_used: Time,
}

/// The delegations of one client (one server), per file key `K`. See the module doc.
#[derive(Debug)]
pub struct DelegTable<K: Hash + Eq + Clone + Ord> {
    limit: usize,
    held: HashMap<K, Held>,
    by_other: HashMap<[u8; 12], K>,
    /// Returns queued, in key order (each once).
    queue: BTreeSet<K>,
    stats: DelegStats,
    lost: Vec<K>,
}

impl<K: Hash + Eq + Clone + Ord> DelegTable<K> {
    /// A table of at most `limit` delegations (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            held: HashMap::new(),
            by_other: HashMap::new(),
            queue: BTreeSet::new(),
            stats: DelegStats::default(),
            lost: Vec::new(),
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> DelegStats {
        DelegStats {
            held: self.held.len(),
            returning: self
                .held
                .values()
                .filter(|h| matches!(h.state, State::Returning { .. }))
                .count(),
            ..self.stats
        }
    }

    /// The files whose delegation was revoked with opens served under it, since the last
    /// call (the caller fails those opens).
    pub fn take_lost(&mut self) -> Vec<K> {
        std::mem::take(&mut self.lost)
    }

    /// C1, C3: OPEN granted a delegation on `key`. One already held on it is replaced
    /// (the server's newer word). Past the limit, a return is queued.
    pub fn granted(&mut self, key: K, stateid: DelegStateid, kind: Kind, now: Time) {
        if let Some(old) = self.held.remove(&key) {
            self.by_other.remove(&old.stateid.other);
        }
        self.by_other.insert(stateid.other, key.clone());
        self.held.insert(
            key.clone(),
            Held {
                stateid,
                kind,
                state: State::Held,
                local_opens: 0,
                last_used: now,
            },
        );
        let kept = self
            .held
            .values()
            .filter(|h| h.state == State::Held)
            .count();
        if kept > self.limit {
            // The least recently used one serving no open; else the new one itself.
            let victim = self
                .held
                .iter()
                .filter(|(k, h)| h.state == State::Held && h.local_opens == 0 && **k != key)
                .min_by_key(|(k, h)| (h.last_used, (*k).clone()))
                .map(|(k, _)| k.clone())
                .unwrap_or(key);
            self.queue_return(&victim);
        }
    }

    fn usable(&self, key: &K, write: bool) -> bool {
        self.held
            .get(key)
            .is_some_and(|h| h.state == State::Held && (!write || h.kind == Kind::Write))
    }

    /// C1: whether a local open of `key` (for write if `write`) is served by a delegation;
    /// if so it is counted on it until [`Self::local_close`].
    pub fn open_locally(&mut self, key: &K, write: bool, now: Time) -> bool {
        if !self.usable(key, write) {
            return false;
        }
        if let Some(h) = self.held.get_mut(key) {
            h.local_opens += 1;
            h.last_used = now;
        }
        true
    }

    /// C1: a local open served by the delegation of `key` was closed.
    pub fn local_close(&mut self, key: &K, now: Time) {
        if let Some(h) = self.held.get_mut(key) {
            h.local_opens = h.local_opens.saturating_sub(1);
            h.last_used = now;
        }
    }

    /// C1: whether the cached attributes of `key` may be trusted without asking the server
    /// (`write`: whether its data may be written back lazily, a write delegation).
    pub fn covers(&self, key: &K, write: bool) -> bool {
        self.usable(key, write)
    }

    /// C2: CB_RECALL of `stateid`: the status to answer with (0 or `BAD_STATEID`); the
    /// return is queued.
    pub fn recall(&mut self, stateid: &DelegStateid) -> u32 {
        let Some(key) = self.by_other.get(&stateid.other).cloned() else {
            self.stats.recalls_unknown += 1;
            return NFS4ERR_BAD_STATEID;
        };
        self.stats.recalls += 1;
        self.queue_return(&key);
        0
    }

    /// C3: CB_RECALL_ANY: keep at most `keep` delegations of the kinds asked (`read`,
    /// `write`), returning the least recently used of the rest. The status is always OK.
    pub fn recall_any(&mut self, keep: usize, read: bool, write: bool) -> u32 {
        let mut of_kind: Vec<(Time, K)> = self
            .held
            .iter()
            .filter(|(_, h)| {
                h.state == State::Held
                    && match h.kind {
                        Kind::Read => read,
                        Kind::Write => write,
                    }
            })
            .map(|(k, h)| (h.last_used, k.clone()))
            .collect();
        of_kind.sort();
        let excess = of_kind.len().saturating_sub(keep);
        for (_, k) in of_kind.into_iter().take(excess) {
            self.queue_return(&k);
        }
        0
    }

    fn queue_return(&mut self, key: &K) {
        if let Some(h) = self.held.get_mut(key) {
            if h.state == State::Held {
                h.state = State::Returning { running: false };
                self.queue.insert(key.clone());
            }
        }
    }

    /// C2: the next return to run, marked running until [`Self::return_done`].
    pub fn next_return(&mut self) -> Option<ReturnPlan<K>> {
        let key = self.queue.pop_first()?;
        let h = self.held.get_mut(&key)?;
        h.state = State::Returning { running: true };
        Some(ReturnPlan {
            key,
            stateid: h.stateid,
            flush: h.kind == Kind::Write,
            local_opens: h.local_opens,
        })
    }

    /// C4: what became of the return of `key`.
    pub fn return_done(&mut self, key: &K, r: Returned) {
        let Some(h) = self.held.get_mut(key) else {
            return;
        };
        if h.state != (State::Returning { running: true }) {
            return; // not running: reported twice
        }
        match r {
            Returned::Transient => {
                h.state = State::Returning { running: false };
                self.queue.insert(key.clone());
            }
            Returned::Ok | Returned::Gone => self.forget(key, false),
            Returned::Revoked => self.forget(key, true),
        }
    }

    /// C4: the server revoked `stateid` (TEST_STATEID said so, or an operation answered
    /// DELEG_REVOKED): forgotten.
    pub fn revoked(&mut self, stateid: &DelegStateid) {
        if let Some(key) = self.by_other.get(&stateid.other).cloned() {
            self.forget(&key, true);
        }
    }

    fn forget(&mut self, key: &K, revoked: bool) {
        if let Some(h) = self.held.remove(key) {
            self.by_other.remove(&h.stateid.other);
            self.queue.remove(key);
            self.stats.returned += 1;
            if revoked && h.local_opens > 0 {
                self.stats.lost += 1;
                self.lost.push(key.clone());
            }
        }
    }
}

#[cfg(test)]
#[path = "delegs_tests.rs"]
mod tests;
