//! The grace period after a restart (RFC 8881 8.4.2).
//!
//! - G1: the server starts in grace when the stable records name at least one client; with
//!   none recorded there is nothing to reclaim and grace is skipped.
//! - G2: grace lasts one lease from the start, and ends early once every recorded client
//!   has sent RECLAIM_COMPLETE.
//! - G3: during grace, reclaims are allowed for recorded clients that have not completed
//!   reclaiming; new state is refused with `GRACE` for everyone.
//! - G4: after grace, reclaims get `NO_GRACE`; so do reclaims by clients that were not
//!   recorded or have already completed.
use super::error::SessionError;
use super::records::StableRecord;
use crate::v4::state::ids::Time;
use std::collections::BTreeSet;

/// Whether the server is in its grace period and who may still reclaim.
#[derive(Debug, Clone)]
pub struct Grace {
    /// When grace ends at the latest; `None` once it has ended (or never began).
    until: Option<Time>,
    /// The records loaded at start.
    recorded: BTreeSet<StableRecord>,
    /// Recorded clients that have not sent RECLAIM_COMPLETE yet.
    pending: BTreeSet<StableRecord>,
}

impl Grace {
    /// Starts after a restart at `now` with the records kept before it (G1, G2).
    pub fn start(
        records: impl IntoIterator<Item = StableRecord>,
        now: Time,
        lease_ms: u64,
    ) -> Self {
        let recorded: BTreeSet<StableRecord> = records.into_iter().collect();
        Self {
            until: (!recorded.is_empty()).then(|| now.plus_ms(lease_ms)),
            pending: recorded.clone(),
            recorded,
        }
    }

    /// Whether the server is in grace.
    pub fn active(&self) -> bool {
        self.until.is_some()
    }

    /// Ends grace if its time is up; true when it ended by this call (G2).
    pub fn tick(&mut self, now: Time) -> bool {
        match self.until {
            Some(t) if now >= t => {
                self.until = None;
                true
            }
            _ => false,
        }
    }

    /// Whether `who` was recorded before the restart.
    pub fn is_recorded(&self, who: &StableRecord) -> bool {
        self.recorded.contains(who)
    }

    /// Records that were never reclaimed (to drop from stable storage when grace ends).
    pub fn unreclaimed(&self) -> impl Iterator<Item = &StableRecord> {
        self.pending.iter()
    }

    /// `who` sent RECLAIM_COMPLETE; true when that ended grace (G2).
    pub fn reclaim_complete(&mut self, who: &StableRecord) -> bool {
        self.pending.remove(who);
        if self.active() && self.pending.is_empty() {
            self.until = None;
            return true;
        }
        false
    }

    /// May `who` (which has or has not completed reclaiming) reclaim state now (G3, G4)?
    pub fn check_reclaim(&self, who: &StableRecord, completed: bool) -> Result<(), SessionError> {
        if !self.active() || completed || !self.recorded.contains(who) {
            return Err(SessionError::NoGrace);
        }
        Ok(())
    }

    /// May anyone create new (non-reclaim) state now (G3)?
    pub fn check_new_state(&self) -> Result<(), SessionError> {
        if self.active() {
            return Err(SessionError::Grace);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 90_000;

    fn rec(n: u8) -> StableRecord {
        StableRecord {
            owner: vec![n],
            principal: b"p".to_vec(),
        }
    }

    /// G1: no records, no grace.
    #[test]
    fn skipped_without_records() {
        let g = Grace::start([], Time(5), LEASE);
        assert!(!g.active());
        assert_eq!(g.check_new_state(), Ok(()));
        assert_eq!(g.check_reclaim(&rec(1), false), Err(SessionError::NoGrace));
    }

    /// G2, G3, G4: one lease of grace, reclaims only then and only by recorded clients.
    #[test]
    fn lasts_one_lease() {
        let mut g = Grace::start([rec(1)], Time(1000), LEASE);
        assert!(g.active());
        assert_eq!(g.check_new_state(), Err(SessionError::Grace));
        assert_eq!(g.check_reclaim(&rec(1), false), Ok(()));
        assert_eq!(g.check_reclaim(&rec(2), false), Err(SessionError::NoGrace));
        let other_principal = StableRecord {
            owner: vec![1],
            principal: b"q".to_vec(),
        };
        assert_eq!(
            g.check_reclaim(&other_principal, false),
            Err(SessionError::NoGrace)
        );
        assert!(!g.tick(Time(1000 + LEASE - 1)));
        assert!(g.active());
        assert!(g.tick(Time(1000 + LEASE)));
        assert!(!g.active());
        assert_eq!(g.check_new_state(), Ok(()));
        assert_eq!(g.check_reclaim(&rec(1), false), Err(SessionError::NoGrace));
        assert_eq!(g.unreclaimed().count(), 1);
    }

    /// G2: ends when the last recorded client completes; G4: a completed client reclaims
    /// no more.
    #[test]
    fn ends_early_when_all_complete() {
        let mut g = Grace::start([rec(1), rec(2)], Time(0), LEASE);
        assert!(!g.reclaim_complete(&rec(1)));
        assert_eq!(g.check_reclaim(&rec(1), true), Err(SessionError::NoGrace));
        assert!(g.active());
        assert!(
            !g.reclaim_complete(&rec(3)),
            "an unrecorded client ends nothing"
        );
        assert!(g.reclaim_complete(&rec(2)));
        assert!(!g.active());
        assert_eq!(g.unreclaimed().count(), 0);
    }
}
