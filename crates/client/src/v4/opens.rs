//! The NFSv4.1 client's open state (RFC 8881 9.1.4, 8.2.2, 18.16, 18.18, 18.2), free of
//! I/O: which OPEN, OPEN_DOWNGRADE or CLOSE each local open and close needs, the stateid
//! each READ and WRITE carries, and what to do when the server says a stateid is old. One
//! entry per file and open owner; the I/O layer runs the calls and reports their outcomes.
//!
//! The contract, each clause with its tests below:
//! - **O1 one server open per file and owner**: local opens share it; an open needing
//!   more access than the stateid carries sends OPEN with the union of what is in use
//!   (an upgrade); one covered by it sends nothing. While an OPEN or a CLOSE/DOWNGRADE
//!   of the entry is in flight, another local open or close of it waits (is told to ask
//!   again when that call ends): the server never sees a CLOSE racing an OPEN of the
//!   same owner (the Linux client's "CLOSE with an old stateid" bugs).
//! - **O2 stateid order**: replies of the entry's calls carry seqids; the entry keeps the
//!   newest (in seqid order with wrap-around), whatever order the replies arrive in.
//! - **O3 close and downgrade**: the last local close of a mode downgrades to the modes
//!   still in use (OPEN_DOWNGRADE), the last of all closes (CLOSE); a failed OPEN gives
//!   back exactly the local open it was for.
//! - **O4 OLD_STATEID (seed entry 9)**: a call refused with `OLD_STATEID` is sent again
//!   with the entry's newest stateid if it is newer than the one sent, else with seqid 0
//!   ("the current one", RFC 8881 8.2.2); at most [`MAX_OLD_RETRIES`] times, then the
//!   error stands. No path takes a reference it does not give back: [`OpenTable::audit`]
//!   recomputes every count, and an entry with no local open and no call in flight is
//!   gone.
//! - **O5 bounds**: the table holds at most the entries of files the client has open, plus
//!   those whose CLOSE is in flight; its size is counted ([`OpenStats`]).
use std::collections::HashMap;
use std::hash::Hash;

/// Share access bits (`OPEN4_SHARE_ACCESS_READ`, `_WRITE`).
pub const ACCESS_READ: u32 = 1;
/// See [`ACCESS_READ`].
pub const ACCESS_WRITE: u32 = 2;
/// How often one call is sent again after `OLD_STATEID`.
pub const MAX_OLD_RETRIES: u32 = 3;

/// A stateid (`stateid4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stateid {
    /// `seqid`.
    pub seqid: u32,
    /// `other`.
    pub other: [u8; 12],
}

impl Stateid {
    /// The same stateid with seqid 0: "the current one" (RFC 8881 8.2.2).
    pub fn current(self) -> Self {
        Stateid { seqid: 0, ..self }
    }
}

/// Whether seqid `a` is newer than `b` (serial-number order; 0 is never a real seqid).
fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// What a local open needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenPlan {
    /// Nothing: the server open covers it; use this stateid.
    Covered(Stateid),
    /// Send OPEN with this share access (the union of the modes in use); report it with
    /// [`OpenTable::open_done`].
    Send {
        /// `share_access`.
        access: u32,
    },
    /// An OPEN or CLOSE of the entry is in flight: ask again when it ends.
    Wait,
}

/// What a local close needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosePlan {
    /// Nothing: other local opens still use the modes.
    Nothing,
    /// Send OPEN_DOWNGRADE of `stateid` to `access`; report with [`OpenTable::close_done`].
    Downgrade {
        /// The stateid to send.
        stateid: Stateid,
        /// The modes still in use.
        access: u32,
    },
    /// Send CLOSE of `stateid`; report with [`OpenTable::close_done`].
    Close {
        /// The stateid to send.
        stateid: Stateid,
    },
    /// A call of the entry is in flight: ask again when it ends (the local open is still
    /// counted until then).
    Wait,
}

/// What to do after a call was refused with `OLD_STATEID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldStateid {
    /// Send it again with this stateid.
    Retry(Stateid),
    /// Give up: the error stands.
    GiveUp,
}

/// Counters and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenStats {
    /// Entries (files and owners with a server open, or one on its way).
    pub entries: usize,
    /// Local opens counted.
    pub local_opens: u64,
    /// OPENs sent (new and upgrades).
    pub opens_sent: u64,
    /// CLOSEs and OPEN_DOWNGRADEs sent.
    pub closes_sent: u64,
    /// Calls sent again after OLD_STATEID.
    pub old_stateid_retries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// OPEN with this access, for a local open of `mode`.
    Open { mode: u32 },
    /// CLOSE or OPEN_DOWNGRADE to `access` (0: CLOSE), for the local close of `mode`.
    Close { mode: u32, access: u32 },
}

#[derive(Debug, Clone)]
struct Entry {
    /// The server's stateid, once an OPEN succeeded.
    stateid: Option<Stateid>,
    /// The share access the server open carries.
    granted: u32,
    /// Local opens per mode (index: the mode's access bits, 1-3).
    users: [u64; 4],
    in_flight: Option<InFlight>,
}

impl Entry {
    /// The modes in use by local opens.
    fn in_use(&self) -> u32 {
        (1..4u32)
            .filter(|m| self.users[*m as usize] > 0)
            .fold(0, |a, m| a | m)
    }

    fn local(&self) -> u64 {
        self.users.iter().sum()
    }

    fn take_newer(&mut self, sid: Stateid) {
        match self.stateid {
            Some(cur) if cur.other == sid.other && !newer(sid.seqid, cur.seqid) => {}
            _ => self.stateid = Some(sid),
        }
    }
}

/// The open state of one client, per (file, open owner) key `K`. See the module doc.
#[derive(Debug)]
pub struct OpenTable<K: Hash + Eq + Clone> {
    entries: HashMap<K, Entry>,
    stats: OpenStats,
}

impl<K: Hash + Eq + Clone> Default for OpenTable<K> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            stats: OpenStats::default(),
        }
    }
}

fn valid_mode(mode: u32) -> bool {
    (1..=3).contains(&mode)
}

impl<K: Hash + Eq + Clone> OpenTable<K> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> OpenStats {
        OpenStats {
            entries: self.entries.len(),
            ..self.stats
        }
    }

    /// The stateid READ (`write` false) or WRITE (`write` true) of `key` carries: the
    /// newest, if the server open has that access.
    pub fn io_stateid(&self, key: &K, write: bool) -> Option<Stateid> {
        let e = self.entries.get(key)?;
        let need = if write { ACCESS_WRITE } else { ACCESS_READ };
        (e.granted & need != 0).then_some(e.stateid).flatten()
    }

    /// O1: a local open of `key` for `mode` (share access bits, 1-3).
    pub fn open(&mut self, key: &K, mode: u32) -> OpenPlan {
        if !valid_mode(mode) {
            return OpenPlan::Wait;
        }
        let e = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            stateid: None,
            granted: 0,
            users: [0; 4],
            in_flight: None,
        });
        if e.in_flight.is_some() {
            return OpenPlan::Wait;
        }
        self.stats.local_opens += 1;
        e.users[mode as usize] += 1;
        match e.stateid {
            Some(sid) if e.granted & mode == mode => OpenPlan::Covered(sid),
            _ => {
                let access = e.in_use() | e.granted;
                e.in_flight = Some(InFlight::Open { mode });
                self.stats.opens_sent += 1;
                OpenPlan::Send { access }
            }
        }
    }

    /// O2, O3: the OPEN sent for `key` ended: its stateid and the access it asked for, or
    /// a failure (the local open it was for is given back).
    pub fn open_done(&mut self, key: &K, result: Result<(Stateid, u32), ()>) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Some(InFlight::Open { mode }) = e.in_flight else {
            return; // not ours: reported twice
        };
        e.in_flight = None;
        match result {
            Ok((sid, access)) => {
                e.take_newer(sid);
                e.granted |= access;
            }
            Err(()) => {
                e.users[mode as usize] = e.users[mode as usize].saturating_sub(1);
            }
        }
        self.forget_if_idle(key);
    }

    /// O3: a local close of `key` opened for `mode`.
    pub fn close(&mut self, key: &K, mode: u32) -> ClosePlan {
        let Some(e) = self.entries.get_mut(key) else {
            return ClosePlan::Nothing;
        };
        if !valid_mode(mode) || e.users[mode as usize] == 0 {
            return ClosePlan::Nothing; // not open so: nothing to give back
        }
        if e.in_flight.is_some() {
            return ClosePlan::Wait;
        }
        let Some(stateid) = e.stateid else {
            // Never opened at the server (its OPEN failed and was given back): just go.
            e.users[mode as usize] -= 1;
            self.forget_if_idle(key);
            return ClosePlan::Nothing;
        };
        let rest = {
            let mut u = e.users;
            u[mode as usize] -= 1;
            (1..4u32)
                .filter(|m| u[*m as usize] > 0)
                .fold(0, |a, m| a | m)
        };
        if rest == e.granted {
            e.users[mode as usize] -= 1;
            return ClosePlan::Nothing;
        }
        e.in_flight = Some(InFlight::Close { mode, access: rest });
        self.stats.closes_sent += 1;
        if rest == 0 {
            ClosePlan::Close { stateid }
        } else {
            ClosePlan::Downgrade {
                stateid,
                access: rest,
            }
        }
    }

    /// O3: the CLOSE or OPEN_DOWNGRADE sent for `key` ended: with the stateid the server
    /// returned (a DOWNGRADE's), or `Ok(None)` for a CLOSE, or a failure. The local
    /// close it was for is counted either way (a close cannot fail for the caller; a
    /// failed CLOSE leaves the server to expire the open).
    pub fn close_done(&mut self, key: &K, result: Result<Option<Stateid>, ()>) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Some(InFlight::Close { mode, access }) = e.in_flight else {
            return;
        };
        e.in_flight = None;
        e.users[mode as usize] = e.users[mode as usize].saturating_sub(1);
        match result {
            Ok(Some(sid)) => {
                e.take_newer(sid);
                e.granted = access;
            }
            Ok(None) | Err(()) if access == 0 => {
                e.stateid = None;
                e.granted = 0;
            }
            _ => {}
        }
        self.forget_if_idle(key);
    }

    /// O4: a call with stateid `sent` of `key`, sent `tries` times already, was refused
    /// with OLD_STATEID.
    pub fn old_stateid(&mut self, key: &K, sent: Stateid, tries: u32) -> OldStateid {
        // Seqid 0 is already "the current one": nothing newer to send.
        if tries > MAX_OLD_RETRIES || sent.seqid == 0 {
            return OldStateid::GiveUp;
        }
        let Some(cur) = self.entries.get(key).and_then(|e| e.stateid) else {
            return OldStateid::GiveUp;
        };
        if cur.other != sent.other {
            return OldStateid::GiveUp;
        }
        self.stats.old_stateid_retries += 1;
        if newer(cur.seqid, sent.seqid) {
            OldStateid::Retry(cur)
        } else {
            OldStateid::Retry(cur.current())
        }
    }

    /// R3: the server opens to reclaim after a server restart: every entry holding one,
    /// with the access it carries.
    pub fn reclaim_list(&self) -> Vec<(K, u32)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.stateid.is_some() && e.granted != 0)
            .map(|(k, e)| (k.clone(), e.granted))
            .collect()
    }

    /// Whether any entry holds a server open (what a restart makes the client reclaim).
    pub fn holds_state(&self) -> bool {
        self.entries.values().any(|e| e.stateid.is_some())
    }

    /// R3: the reclaim of `key`'s open ended: its new stateid (a new server instance's:
    /// it replaces the old whatever its seqid), or `None` when the server refused it
    /// (the grace period is over): the local opens go on without a server open.
    pub fn reclaimed(&mut self, key: &K, result: Option<Stateid>) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        match result {
            Some(sid) => e.stateid = Some(sid),
            None => {
                e.stateid = None;
                e.granted = 0;
            }
        }
        self.forget_if_idle(key);
    }

    fn forget_if_idle(&mut self, key: &K) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.local() == 0 && e.in_flight.is_none() && e.stateid.is_none())
        {
            self.entries.remove(key);
        }
    }

    /// O4: every entry is consistent: local opens counted per mode cover the access the
    /// server open carries once no call is in flight; an entry with nothing open and
    /// nothing in flight holds no server open. Returns the first inconsistency.
    pub fn audit(&self) -> Result<(), String> {
        for e in self.entries.values() {
            if e.in_flight.is_some() {
                continue;
            }
            if e.local() == 0 && e.stateid.is_some() {
                return Err(format!("a server open with no local open: {e:?}"));
            }
            if e.stateid.is_some() && e.in_use() & !e.granted != 0 {
                return Err(format!("local opens not covered by the server's: {e:?}"));
            }
            if e.local() == 0 {
                return Err(format!("an idle entry kept: {e:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "opens_tests.rs"]
mod tests;
