//! Stateids: how they are made and the seqid rules they are checked by (RFC 8881 8.2).
//!
//! A stateid's 12 `other` bytes are ours to choose. We put the server's boot epoch in the
//! first 4 (so a stateid from before a restart is recognised as stale, not mistaken for a
//! live one) and a counter in the last 8 (never reused within an epoch, never 0, so no
//! stateid of ours collides with the special ones, whose counter would be 0 or all ones).
//!
//! The seqid half is bumped on every change of the state (OPEN upgrade, OPEN_DOWNGRADE,
//! LOCK, LOCKU, CLOSE). A client presenting a stateid is checked as RFC 8881 8.2.2 says:
//! seqid 0 means "whatever is current" (NFSv4.1), the current seqid is accepted, an older
//! one gets `NFS4ERR_OLD_STATEID` and a newer one, which we never handed out,
//! `NFS4ERR_BAD_STATEID`.
use super::ids::Stateid;

/// What a stateid names. Delegation stateids are reserved for issue 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateidKind {
    /// An open (share reservation) of one open owner on one file.
    Open,
    /// The byte-range locks of one lock owner on one file.
    Lock,
    /// A delegation (not issued yet).
    Delegation,
}

/// The special stateids of RFC 8881 8.2.3, recognised by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// All zeros: I/O without an open (subject to share reservations).
    Anonymous,
    /// All ones: READ that bypasses share reservations.
    Bypass,
    /// seqid 1, other zeros: the COMPOUND's current stateid; the engine substitutes it
    /// before the state sees the operation.
    Current,
    /// seqid all ones, other zeros: never valid.
    Invalid,
}

/// Which special stateid `s` is, if any. Any other stateid with an all-zeros or all-ones
/// `other` is reserved and never ours: [`StateidMint::parse`] rejects it.
pub fn special(s: &Stateid) -> Option<Special> {
    match *s {
        Stateid::ANONYMOUS => Some(Special::Anonymous),
        Stateid::BYPASS => Some(Special::Bypass),
        Stateid::CURRENT => Some(Special::Current),
        Stateid::INVALID => Some(Special::Invalid),
        _ => None,
    }
}

/// Why a stateid's `other` names nothing of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Made by an earlier server instance (another boot epoch).
    Stale,
    /// A special or reserved value, or a counter we never handed out.
    Bad,
}

/// Hands out the `other` half of stateids for one server instance.
#[derive(Debug)]
pub struct StateidMint {
    epoch: u32,
    next: u64,
}

impl StateidMint {
    /// A mint for the server instance `epoch` (a number that differs between restarts, e.g.
    /// a boot count kept in the state directory or the boot time in seconds).
    pub fn new(epoch: u32) -> Self {
        Self { epoch, next: 1 }
    }

    /// A fresh key, never handed out before in this epoch. The counter is 64 bits: at a
    /// billion stateids a second it lasts 584 years, so it is not expected to wrap.
    pub fn mint(&mut self) -> u64 {
        let k = self.next;
        self.next = self.next.saturating_add(1);
        k
    }

    /// The `other` bytes for key `k`.
    pub fn other(&self, k: u64) -> [u8; 12] {
        let mut o = [0u8; 12];
        o[..4].copy_from_slice(&self.epoch.to_be_bytes());
        o[4..].copy_from_slice(&k.to_be_bytes());
        o
    }

    /// The key in `other`, if it was made by this epoch and could be one of ours.
    pub fn parse(&self, other: &[u8; 12]) -> Result<u64, Unknown> {
        if other.iter().all(|&b| b == 0) || other.iter().all(|&b| b == 0xff) {
            return Err(Unknown::Bad);
        }
        let mut e = [0u8; 4];
        e.copy_from_slice(&other[..4]);
        let mut k = [0u8; 8];
        k.copy_from_slice(&other[4..]);
        if u32::from_be_bytes(e) != self.epoch {
            return Err(Unknown::Stale);
        }
        match u64::from_be_bytes(k) {
            k if k == 0 || k >= self.next => Err(Unknown::Bad),
            k => Ok(k),
        }
    }
}

/// The result of checking a presented seqid against the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqidCheck {
    /// 0 (NFSv4.1 "current") or equal to the current seqid.
    Current,
    /// Older than the current one: `NFS4ERR_OLD_STATEID`.
    Old,
    /// Newer than anything handed out: `NFS4ERR_BAD_STATEID`.
    Future,
}

/// Checks `given` against `current` (RFC 8881 8.2.2). Seqids wrap from `u32::MAX` to 1,
/// so "older" is decided in serial-number arithmetic: within half the space behind.
pub fn check_seqid(given: u32, current: u32) -> SeqidCheck {
    if given == 0 || given == current {
        return SeqidCheck::Current;
    }
    // Distance from given forward to current, as a signed 32-bit serial difference.
    let ahead = current.wrapping_sub(given) as i32;
    if ahead > 0 {
        SeqidCheck::Old
    } else {
        SeqidCheck::Future
    }
}

/// The seqid after `s`: 0 is skipped, as it means "current" on the wire.
pub fn next_seqid(s: u32) -> u32 {
    match s.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqid_rules() {
        assert_eq!(check_seqid(0, 7), SeqidCheck::Current);
        assert_eq!(check_seqid(7, 7), SeqidCheck::Current);
        assert_eq!(check_seqid(6, 7), SeqidCheck::Old);
        assert_eq!(check_seqid(1, 7), SeqidCheck::Old);
        assert_eq!(check_seqid(8, 7), SeqidCheck::Future);
        // Across the wrap: current 2 came after u32::MAX and 1.
        assert_eq!(check_seqid(u32::MAX, 2), SeqidCheck::Old);
        assert_eq!(check_seqid(3, u32::MAX), SeqidCheck::Future);
        assert_eq!(next_seqid(u32::MAX), 1);
        assert_eq!(next_seqid(1), 2);
    }

    #[test]
    fn other_round_trips_and_recognises_strangers() {
        let mut m = StateidMint::new(42);
        let k = m.mint();
        assert_eq!(m.parse(&m.other(k)), Ok(k));
        // A later counter we never minted.
        assert_eq!(m.parse(&m.other(k + 1)), Err(Unknown::Bad));
        // The same counter from the previous boot.
        let old = StateidMint::new(41);
        assert_eq!(m.parse(&old.other(k)), Err(Unknown::Stale));
        // Special values.
        assert_eq!(m.parse(&[0; 12]), Err(Unknown::Bad));
        assert_eq!(m.parse(&[0xff; 12]), Err(Unknown::Bad));
        // Epoch 0 still never makes an all-zeros other: counters start at 1.
        let mut z = StateidMint::new(0);
        let k = z.mint();
        assert_ne!(z.other(k), [0; 12]);
    }

    #[test]
    fn specials_by_value() {
        assert_eq!(special(&Stateid::ANONYMOUS), Some(Special::Anonymous));
        assert_eq!(special(&Stateid::BYPASS), Some(Special::Bypass));
        assert_eq!(special(&Stateid::CURRENT), Some(Special::Current));
        assert_eq!(special(&Stateid::INVALID), Some(Special::Invalid));
        let s = Stateid {
            seqid: 2,
            other: [0; 12],
        };
        assert_eq!(special(&s), None);
    }
}
