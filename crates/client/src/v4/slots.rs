//! The NFSv4.1 client's fore-channel slot table (RFC 8881 2.10.6), free of I/O and of the
//! clock: calls ask for a slot, the receiver reports what became of each, and the table says
//! what the caller does next and which waiting calls got a slot. Time comes in only to
//! measure waits.
//!
//! The contract, each clause with its tests below:
//! - **S1 seqids**: a slot's next call carries the seqid after the last one the server is
//!   believed to hold; a call that got no reply (timed out, its connection lost, given
//!   up) leaves its slot *uncertain*: the next call on it carries the following seqid,
//!   and if the server answers `SEQ_MISORDERED` (it never saw the lost one) the slot steps
//!   back one and the call is sent again. A reply lost to a timeout never wedges its slot.
//!   A slot the server disagrees with for any other reason is retired; a table whose
//!   slots are all retired asks for a new session.
//! - **S2 slots are freed when the reply arrives**: the receiver reports each call's
//!   outcome ([`SlotTable::complete`]) as soon as its reply (or its loss) is known, not
//!   when the caller has finished with the reply. Whatever the caller then waits on, a
//!   slot never waits on it.
//! - **S3 the privileged path (seed entry 3)**: calls that return or recover state
//!   (DELEGRETURN, CLOSE, LAYOUTRETURN, reclaims, RECLAIM_COMPLETE: [`Class::Privileged`])
//!   never wait for a drain, which may itself be waiting on them, and one slot (when the
//!   server gives two or more) is kept from ordinary calls, so a state-returning call
//!   always finds a slot once the replies in flight have arrived, even when every
//!   ordinary call in flight waits on it at the server. Privileged waiters go first.
//! - **S4 the server's limits**: `sr_target_highest_slotid` bounds the slots given to
//!   new calls (calls in flight above it finish where they are), `sr_highest_slotid`
//!   retires the slots above it, and `BADSLOT` retires the slot and those above; the
//!   table never grows past what CREATE_SESSION negotiated.
//! - **S5 drain and reset**: [`SlotTable::start_drain`] stops ordinary calls from getting
//!   slots; the table is drained when no call holds one. [`SlotTable::reset`] (a new
//!   session) gives every slot a fresh seqid; calls still holding a slot of the old
//!   session are told to recover when they complete, and their slots are not touched.
//!   [`SlotTable::end_drain`] lets the waiters in.
//! - **S6 nothing leaks**: every call granted a slot gives it back exactly once, on every
//!   path (`complete`, `cancel`); a queued call that gives up leaves the queue; the table
//!   counts what it holds ([`SlotStats`]) and the tests check it returns to zero.
use std::collections::VecDeque;

/// A call of the client, as the table knows it (the caller's own numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Milliseconds on the caller's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Time(pub u64);

/// What kind of call asks for a slot (S3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Ordinary calls: they wait while the table drains, and leave one slot free.
    Normal,
    /// Calls that return or recover state: never held by a drain, first in line.
    Privileged,
}

/// A slot given to a call: what its SEQUENCE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The call.
    pub call: CallId,
    /// `sa_slotid`.
    pub slot: u32,
    /// `sa_sequenceid`.
    pub seqid: u32,
    /// `sa_highest_slotid`: the highest slot the client has in use, this one included.
    pub highest_slotid: u32,
    /// The session generation the grant belongs to ([`SlotTable::reset`] starts a new one).
    pub generation: u64,
}

/// What became of a call's SEQUENCE, as the receiver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqResult {
    /// SEQUENCE succeeded (whatever the operations after it did), with the server's
    /// `sr_highest_slotid` and `sr_target_highest_slotid`.
    Ok {
        /// `sr_highest_slotid`.
        highest: u32,
        /// `sr_target_highest_slotid`.
        target: u32,
    },
    /// `NFS4ERR_DELAY` on SEQUENCE: not run, the slot did not move.
    Delay,
    /// `NFS4ERR_SEQ_MISORDERED`.
    Misordered,
    /// `NFS4ERR_BADSLOT`.
    BadSlot,
    /// `NFS4ERR_RETRY_UNCACHED_REP`: the server holds this seqid but not its reply; the
    /// call's effect is unknown.
    RetryUncached,
    /// `NFS4ERR_BADSESSION`, `DEADSESSION` and the like: the session is gone.
    SessionGone,
    /// No reply will come: timed out and given up, or the connection lost. The server may
    /// or may not have run it.
    Lost,
}

/// What the caller does with its call after [`SlotTable::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The reply stands.
    Done,
    /// Ask for a slot again and send the call again (a new SEQUENCE).
    Retry,
    /// As `Retry`, after a pause (the caller's back-off: the server said DELAY).
    Delay,
    /// The session is gone: wait for the new one ([`SlotTable::reset`]), then send again.
    Recover,
    /// The call's outcome is unknown and it was not sent again (lost, or the server no
    /// longer has its reply): the caller decides (an idempotent call is sent again).
    Unknown,
}

/// What [`SlotTable::complete`] and the other steps decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// What the completed call does next.
    pub next: Next,
    /// Waiting calls that got a slot now, in order: send them.
    pub woken: Vec<Grant>,
}

/// What the table holds, and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotStats {
    /// Slots usable now (not retired, within the server's target).
    pub usable: u32,
    /// Calls holding a slot.
    pub busy: usize,
    /// Calls waiting for a slot.
    pub waiting: usize,
    /// Slots retired (the server disagreed with them, or shrank the table).
    pub retired: u32,
    /// Calls lost (no reply), in all.
    pub lost: u64,
    /// `SEQ_MISORDERED` replies, in all.
    pub misordered: u64,
    /// The longest any call waited for a slot, in milliseconds.
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Held by `call`, sent with `seqid`.
    Busy {
        call: CallId,
        seqid: u32,
    },
    /// The server disagreed with it, or shrank the table past it: never used again in
    /// this session.
    Retired,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    /// The last seqid the server is believed to hold for this slot.
    seqid: u32,
    /// The last call on it got no reply: the server may hold `seqid` or `seqid - 1`.
    uncertain: bool,
}

impl Slot {
    fn fresh() -> Self {
        Slot {
            state: SlotState::Free,
            seqid: 0,
            uncertain: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    call: CallId,
    class: Class,
    since: Time,
}

/// The slot table of one session's fore channel. See the module doc.
#[derive(Debug)]
pub struct SlotTable {
    slots: Vec<Slot>,
    /// The highest slot id new calls may use (`sr_target_highest_slotid`).
    target: u32,
    draining: bool,
    generation: u64,
    /// Calls of earlier generations still holding a slot index (not counted as busy
    /// slots of this session; their completion only tells them to recover).
    stale: Vec<CallId>,
    waiting: VecDeque<Waiter>,
    stats: SlotStats,
}

impl SlotTable {
    /// A table of `slots` slots, as CREATE_SESSION granted (`ca_maxrequests`; at least 1).
    pub fn new(slots: u32) -> Self {
        let n = slots.max(1);
        Self {
            slots: vec![Slot::fresh(); n as usize],
            target: n - 1,
            draining: false,
            generation: 0,
            stale: Vec::new(),
            waiting: VecDeque::new(),
            stats: SlotStats::default(),
        }
    }

    /// What the table holds now, and its counters.
    pub fn stats(&self) -> SlotStats {
        SlotStats {
            usable: self.usable(),
            busy: self.busy() + self.stale.len(),
            waiting: self.waiting.len(),
            retired: self
                .slots
                .iter()
                .filter(|s| s.state == SlotState::Retired)
                .count() as u32,
            ..self.stats
        }
    }

    /// The session generation: one more at each [`Self::reset`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the table is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Whether no call holds a slot (of this session or an old one): a drain is done.
    pub fn is_drained(&self) -> bool {
        self.busy() == 0 && self.stale.is_empty()
    }

    /// Whether every slot is retired: the session is of no use, make a new one.
    pub fn needs_reset(&self) -> bool {
        self.slots.iter().all(|s| s.state == SlotState::Retired)
    }

    fn busy(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Busy { .. }))
            .count()
    }

    /// Slots that may be given to new calls: not retired, within the target.
    fn usable(&self) -> u32 {
        self.slots
            .iter()
            .take(self.target as usize + 1)
            .filter(|s| s.state != SlotState::Retired)
            .count() as u32
    }

    /// S3: whether a call of `class` may take a slot now (one is free, and for an ordinary
    /// call: no drain, and one slot stays free for state-returning calls).
    fn may_take(&self, class: Class) -> Option<usize> {
        let free = self
            .slots
            .iter()
            .take(self.target as usize + 1)
            .position(|s| s.state == SlotState::Free)?;
        if class == Class::Privileged {
            return Some(free);
        }
        if self.draining {
            return None;
        }
        let usable = self.usable() as usize;
        let busy_usable = self
            .slots
            .iter()
            .take(self.target as usize + 1)
            .filter(|s| matches!(s.state, SlotState::Busy { .. }))
            .count();
        let reserve = usize::from(usable >= 2);
        (busy_usable + 1 + reserve <= usable).then_some(free)
    }

    fn take(&mut self, i: usize, call: CallId) -> Grant {
        let s = &mut self.slots[i];
        let seqid = s.seqid.wrapping_add(1);
        s.state = SlotState::Busy { call, seqid };
        let highest = self
            .slots
            .iter()
            .rposition(|s| matches!(s.state, SlotState::Busy { .. }))
            .unwrap_or(i);
        Grant {
            call,
            slot: i as u32,
            seqid,
            highest_slotid: highest as u32,
            generation: self.generation,
        }
    }

    /// Asks for a slot for `call`: the grant, or `None` and the call waits (its grant
    /// comes in a later [`Completion::woken`]). Privileged calls go before ordinary ones
    /// already waiting; within a class, first come first served.
    pub fn acquire(&mut self, call: CallId, class: Class, now: Time) -> Option<Grant> {
        let ahead = self
            .waiting
            .iter()
            .any(|w| class == Class::Normal || w.class == Class::Privileged);
        if !ahead {
            if let Some(i) = self.may_take(class) {
                return Some(self.take(i, call));
            }
        }
        let w = Waiter {
            call,
            class,
            since: now,
        };
        match class {
            Class::Normal => self.waiting.push_back(w),
            Class::Privileged => {
                let at = self
                    .waiting
                    .iter()
                    .position(|w| w.class == Class::Normal)
                    .unwrap_or(self.waiting.len());
                self.waiting.insert(at, w);
            }
        }
        None
    }

    /// A waiting call gives up (interrupted): it leaves the queue. Whether it was waiting.
    pub fn cancel(&mut self, call: CallId) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|w| w.call != call);
        before != self.waiting.len()
    }

    /// Hands free slots to the waiters who may take them, in order.
    fn wake(&mut self, now: Time) -> Vec<Grant> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let w = self.waiting[i];
            match self.may_take(w.class) {
                Some(slot) => {
                    self.waiting.remove(i);
                    let waited = now.0.saturating_sub(w.since.0);
                    self.stats.max_wait_ms = self.stats.max_wait_ms.max(waited);
                    out.push(self.take(slot, w.call));
                }
                // An ordinary call that may not go yet: those behind it are ordinary too
                // (privileged ones queue first), so none of them may.
                None if w.class == Class::Normal => break,
                None => i += 1,
            }
        }
        out
    }

    /// The receiver's report on `g`'s call: what the caller does next, and the waiters
    /// that got a slot.
    pub fn complete(&mut self, g: &Grant, result: SeqResult, now: Time) -> Completion {
        if g.generation != self.generation {
            // A call of a session reset since: its slot belongs to nobody now.
            let before = self.stale.len();
            self.stale.retain(|c| *c != g.call);
            let next = if before == self.stale.len() {
                Next::Done // reported twice: nothing more to do
            } else {
                Next::Recover
            };
            let woken = self.wake(now);
            return Completion { next, woken };
        }
        let i = g.slot as usize;
        let held = self.slots.get(i).is_some_and(|s| {
            s.state
                == SlotState::Busy {
                    call: g.call,
                    seqid: g.seqid,
                }
        });
        if !held {
            // Reported twice, or never granted: nothing held, nothing changes.
            return Completion {
                next: Next::Done,
                woken: Vec::new(),
            };
        }
        let next = self.settle(i, g.seqid, result);
        let woken = self.wake(now);
        Completion { next, woken }
    }

    /// S1, S4: the slot's state after `result` for a call sent with `seqid`.
    fn settle(&mut self, i: usize, seqid: u32, result: SeqResult) -> Next {
        let free = SlotState::Free;
        match result {
            SeqResult::Ok { highest, target } => {
                let s = &mut self.slots[i];
                s.state = free;
                s.seqid = seqid;
                s.uncertain = false;
                self.server_limits(highest, target);
                Next::Done
            }
            SeqResult::Delay => {
                self.slots[i].state = free;
                Next::Delay
            }
            SeqResult::Misordered => {
                self.stats.misordered += 1;
                let s = &mut self.slots[i];
                if s.uncertain {
                    // The lost call never reached the server: it holds one less.
                    s.uncertain = false;
                    s.seqid = s.seqid.wrapping_sub(1);
                    s.state = free;
                } else {
                    s.state = SlotState::Retired;
                }
                self.retry_or_recover()
            }
            SeqResult::BadSlot => {
                for s in self.slots.iter_mut().skip(i) {
                    if s.state == free {
                        s.state = SlotState::Retired;
                    }
                }
                self.slots[i].state = SlotState::Retired;
                self.retry_or_recover()
            }
            SeqResult::RetryUncached => {
                let s = &mut self.slots[i];
                s.state = free;
                s.seqid = seqid;
                s.uncertain = false;
                Next::Unknown
            }
            SeqResult::SessionGone => {
                self.slots[i].state = free;
                Next::Recover
            }
            SeqResult::Lost => {
                self.stats.lost += 1;
                let s = &mut self.slots[i];
                s.state = free;
                s.seqid = seqid;
                s.uncertain = true;
                Next::Unknown
            }
        }
    }

    fn retry_or_recover(&self) -> Next {
        if self.needs_reset() {
            Next::Recover
        } else {
            Next::Retry
        }
    }

    /// S4: the server's `sr_highest_slotid` and `sr_target_highest_slotid`.
    fn server_limits(&mut self, highest: u32, target: u32) {
        let top = self.slots.len() as u32 - 1;
        for s in self.slots.iter_mut().skip(highest as usize + 1) {
            if s.state == SlotState::Free {
                s.state = SlotState::Retired;
            }
        }
        self.target = target.min(highest).min(top);
    }

    /// S5: ordinary calls get no slot until [`Self::end_drain`]; privileged ones still do.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    /// S5: the drain is over; waiters that may take a slot now get one.
    pub fn end_drain(&mut self, now: Time) -> Vec<Grant> {
        self.draining = false;
        self.wake(now)
    }

    /// S5: a new session of `slots` slots replaces the old one: fresh seqids, nothing
    /// retired; calls still holding a slot of the old session will be told to recover.
    /// Waiters stay waiting (the drain, if any, goes on until [`Self::end_drain`]).
    pub fn reset(&mut self, slots: u32, now: Time) -> Vec<Grant> {
        for s in &self.slots {
            if let SlotState::Busy { call, .. } = s.state {
                self.stale.push(call);
            }
        }
        let n = slots.max(1);
        self.slots = vec![Slot::fresh(); n as usize];
        self.target = n - 1;
        self.generation += 1;
        self.wake(now)
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
