//! The server-wide budget for the session reply caches (seed entry 13).
//!
//! Every slot of every session may hold one cached reply, so slots x cached reply size is
//! memory a client can make us hold. knfsd sizes it from RAM (1/128 of it) and, on machines
//! with 768 GiB or more, overflowed a 32-bit intermediate and handed sessions nonsense slot
//! counts. Here:
//! - B1: the budget is 1/128 of RAM, at least [`MIN_BUDGET`]; every product and sum is
//!   `u64` from `u32` factors (at most 2^32 x 2^32 < 2^64, so none can overflow) and every
//!   subtraction is checked or saturating.
//! - B2: half the budget at most is reserved for one slot per session, sized for the largest
//!   slot; the number of sessions is bounded so that reserve is never exceeded: a session
//!   that is admitted always gets at least one slot.
//! - B3: the other half is shared fairly: a session gets extra slots up to what it asked
//!   for, its fair share (the pool divided by the sessions), and what is free.
//! - B4: the total charged never exceeds the budget.
//! - B5: slot tables grow and shrink as sessions come and go: [`ReplyCacheBudget::fair_slots`]
//!   is the target the session table moves each session towards.
use super::error::SessionError;

/// Bytes of bookkeeping per slot besides the cached reply (sequence id, request digest,
/// the reply's vector header), charged with each slot.
pub const SLOT_OVERHEAD: u64 = 128;
/// The largest cached reply we agree to keep per slot (`ca_maxresponsesize_cached`).
pub const MAX_CACHED_REPLY: u32 = 4096;
/// The largest slot, as charged: the reply plus the overhead.
pub const MAX_SLOT_BYTES: u64 = MAX_CACHED_REPLY as u64 + SLOT_OVERHEAD;
/// The most slots one session gets (`ca_maxrequests`).
pub const MAX_SLOTS_PER_SESSION: u32 = 128;
/// The smallest budget, whatever the RAM: room for a few hundred sessions of one slot.
pub const MIN_BUDGET: u64 = 4 << 20;
/// The share of RAM given to reply caches, as a shift (1/128, as knfsd).
pub const RAM_SHIFT: u32 = 7;

/// How many slots a session was given and what each is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotGrant {
    /// Slots charged now (at least 1).
    pub slots: u32,
    /// Bytes charged per slot.
    pub slot_bytes: u64,
}

/// The reply-cache memory of the whole server: what is charged to sessions and what is left.
#[derive(Debug, Clone)]
pub struct ReplyCacheBudget {
    total: u64,
    max_sessions: u32,
    sessions: u32,
    /// Charged for the first slot of each session (B2).
    base_used: u64,
    /// Charged for every further slot (B3).
    extra_used: u64,
}

impl ReplyCacheBudget {
    /// The budget for a machine with `ram` bytes of memory (B1), admitting at most
    /// `max_sessions` sessions (fewer if the budget cannot reserve a slot for each, B2).
    pub fn from_ram(ram: u64, max_sessions: u32) -> Self {
        Self::with_total((ram >> RAM_SHIFT).max(MIN_BUDGET), max_sessions)
    }

    /// A budget of exactly `total` bytes (tests; an operator's explicit setting).
    pub fn with_total(total: u64, max_sessions: u32) -> Self {
        let reservable = total / 2 / MAX_SLOT_BYTES;
        let max_sessions = u64::from(max_sessions).min(reservable);
        Self {
            total,
            // `max_sessions` is at most the u32 it came from.
            max_sessions: u32::try_from(max_sessions).unwrap_or(u32::MAX),
            sessions: 0,
            base_used: 0,
            extra_used: 0,
        }
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Bytes charged to sessions now.
    pub fn used(&self) -> u64 {
        self.base_used + self.extra_used
    }
    /// Sessions admitted now.
    pub fn sessions(&self) -> u32 {
        self.sessions
    }
    /// The most sessions this budget admits.
    pub fn max_sessions(&self) -> u32 {
        self.max_sessions
    }

    /// What one slot costs when replies up to `cached_reply` bytes are cached.
    pub fn slot_bytes(cached_reply: u32) -> u64 {
        u64::from(cached_reply.min(MAX_CACHED_REPLY)) + SLOT_OVERHEAD
    }

    fn extra_pool(&self) -> u64 {
        self.total
            .saturating_sub(u64::from(self.max_sessions) * MAX_SLOT_BYTES)
    }

    /// The slot count a session with slots of `slot_bytes` that asked for `ceiling` slots
    /// should have now (B3, B5): 1 plus its fair share of the extra pool, at most `ceiling`.
    pub fn fair_slots(&self, slot_bytes: u64, ceiling: u32) -> u32 {
        let share = self.extra_pool() / u64::from(self.sessions.max(1));
        fit(1 + share / slot_bytes.max(1), ceiling)
    }

    /// Admits a session that asks for `want` slots (already clamped to
    /// [`MAX_SLOTS_PER_SESSION`] and at least 1) of `slot_bytes` each. `RESOURCE` when the
    /// session bound is reached.
    pub fn open_session(&mut self, want: u32, slot_bytes: u64) -> Result<SlotGrant, SessionError> {
        if self.sessions >= self.max_sessions {
            return Err(SessionError::Resource);
        }
        let slot_bytes = slot_bytes.clamp(1, MAX_SLOT_BYTES);
        self.sessions += 1;
        self.base_used += slot_bytes;
        let fair = self.fair_slots(slot_bytes, want.max(1));
        let slots = self.grow(slot_bytes, 1, fair);
        Ok(SlotGrant { slots, slot_bytes })
    }

    /// Charges more slots to a session that has `current` (>= 1) and should have `target`:
    /// as many as the extra pool has free. Returns the new count.
    pub fn grow(&mut self, slot_bytes: u64, current: u32, target: u32) -> u32 {
        if target <= current {
            return current;
        }
        let free = self.extra_pool().saturating_sub(self.extra_used);
        let more = u64::from(target - current).min(free / slot_bytes.max(1));
        self.extra_used += more * slot_bytes;
        // `more` is at most `target - current`, a u32.
        current + u32::try_from(more).unwrap_or(0)
    }

    /// Releases the slots of a session going from `current` to `to` (both >= 1).
    pub fn shrink(&mut self, slot_bytes: u64, current: u32, to: u32) {
        let fewer = u64::from(current.saturating_sub(to.max(1)));
        self.extra_used = self.extra_used.saturating_sub(fewer * slot_bytes);
    }

    /// Releases everything a session with `slots` slots of `slot_bytes` was charged.
    pub fn close_session(&mut self, slot_bytes: u64, slots: u32) {
        self.shrink(slot_bytes, slots, 1);
        self.base_used = self.base_used.saturating_sub(slot_bytes);
        self.sessions = self.sessions.saturating_sub(1);
    }
}

/// `n` as a slot count in 1..=ceiling.
fn fit(n: u64, ceiling: u32) -> u32 {
    u32::try_from(n.min(u64::from(ceiling)))
        .unwrap_or(ceiling)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    /// Opens sessions (asking for the most of everything) until the budget refuses, checking
    /// every grant; returns the grants.
    fn fill(budget: &mut ReplyCacheBudget) -> Vec<SlotGrant> {
        let mut grants = Vec::new();
        let slot = ReplyCacheBudget::slot_bytes(MAX_CACHED_REPLY);
        loop {
            match budget.open_session(MAX_SLOTS_PER_SESSION, slot) {
                Ok(g) => {
                    assert!(g.slots >= 1 && g.slots <= MAX_SLOTS_PER_SESSION, "{g:?}");
                    assert!(budget.used() <= budget.total());
                    grants.push(g);
                }
                Err(e) => {
                    assert_eq!(e, SessionError::Resource);
                    return grants;
                }
            }
        }
    }

    /// B1-B4 at the four machine sizes of seed 13: every admitted session gets a sane,
    /// non-zero table and the total stays within the budget.
    #[test]
    fn seed13_sizes_every_session_sane_and_total_within_budget() {
        for (ram, sessions_wanted) in [
            (256 << 20, 4096u32),
            (768 * GIB, 4096),
            (TIB, 4096),
            (16 * TIB, 4096),
        ] {
            let mut b = ReplyCacheBudget::from_ram(ram, sessions_wanted);
            assert!(b.total() >= ram >> RAM_SHIFT);
            assert!(b.max_sessions() > 100, "ram {ram}: {}", b.max_sessions());
            let grants = fill(&mut b);
            assert_eq!(grants.len() as u32, b.max_sessions());
            let charged: u64 = grants
                .iter()
                .map(|g| u64::from(g.slots) * g.slot_bytes)
                .sum();
            assert_eq!(charged, b.used());
            assert!(charged <= b.total(), "ram {ram}: {charged} > {}", b.total());
            if ram >= 768 * GIB {
                // Where knfsd overflowed, every session gets all it asked for.
                assert!(grants.iter().all(|g| g.slots == MAX_SLOTS_PER_SESSION));
                assert_eq!(b.max_sessions(), sessions_wanted);
            }
        }
    }

    /// B1: the arithmetic holds at the extreme of u64 RAM and at a zero-byte machine.
    #[test]
    fn extreme_ram_does_not_overflow() {
        let mut b = ReplyCacheBudget::from_ram(u64::MAX, u32::MAX);
        assert_eq!(b.max_sessions(), u32::MAX);
        let g = b
            .open_session(MAX_SLOTS_PER_SESSION, MAX_SLOT_BYTES)
            .unwrap();
        assert_eq!(g.slots, MAX_SLOTS_PER_SESSION);
        let mut tiny = ReplyCacheBudget::from_ram(0, 10);
        assert_eq!(tiny.total(), MIN_BUDGET);
        assert_eq!(tiny.open_session(1, MAX_SLOT_BYTES).unwrap().slots, 1);
    }

    /// B2: a budget too small to reserve one slot admits nobody rather than a zero table.
    #[test]
    fn no_reserve_no_session() {
        let mut b = ReplyCacheBudget::with_total(MAX_SLOT_BYTES, 10);
        assert_eq!(b.max_sessions(), 0);
        assert_eq!(b.open_session(1, 200), Err(SessionError::Resource));
    }

    /// B3/B5: under pressure sessions get a fair share; when others leave, the target of
    /// the remaining one rises and it can grow to what it asked for.
    #[test]
    fn tables_grow_when_sessions_leave() {
        let slot = ReplyCacheBudget::slot_bytes(MAX_CACHED_REPLY);
        let mut b = ReplyCacheBudget::with_total(MIN_BUDGET, 400);
        let grants = fill(&mut b);
        let first = grants[0];
        let last = *grants.last().unwrap();
        assert!(
            last.slots < MAX_SLOTS_PER_SESSION,
            "the budget was not under pressure"
        );
        // Everyone but the last leaves.
        for g in &grants[..grants.len() - 1] {
            b.close_session(g.slot_bytes, g.slots);
        }
        assert_eq!(b.sessions(), 1);
        let target = b.fair_slots(slot, MAX_SLOTS_PER_SESSION);
        assert_eq!(target, MAX_SLOTS_PER_SESSION);
        assert_eq!(b.grow(slot, last.slots, target), MAX_SLOTS_PER_SESSION);
        assert!(b.used() <= b.total());
        assert!(first.slots >= last.slots);
        // Shrinking gives memory back.
        let before = b.used();
        b.shrink(slot, MAX_SLOTS_PER_SESSION, 1);
        assert_eq!(
            before - b.used(),
            u64::from(MAX_SLOTS_PER_SESSION - 1) * slot
        );
        b.close_session(slot, 1);
        assert_eq!(b.used(), 0);
    }
}
