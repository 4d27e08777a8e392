//! The NFSv4.1 client's lease and recovery state machine (RFC 8881 2.10.13, 8.3, 8.4.2,
//! 18.46.3), free of I/O and of the clock: replies and timer ticks come in, the recovery
//! tasks to run come out, one at a time, in the order recovery needs them. The I/O layer
//! runs each task with the privileged slot class ([`super::slots::Class::Privileged`]) and
//! keeps the slot table drained while [`Recovery::holds_ordinary_calls`] says so.
//!
//! The contract, each clause with its tests below:
//! - **R1 establishing**: a new client sends EXCHANGE_ID, CREATE_SESSION, then
//!   RECLAIM_COMPLETE (RFC 8881 18.51.3: before its first non-reclaim open) and is ready.
//! - **R2 a lost session** (`BADSESSION`, `DEADSESSION`): ordinary calls are held, a new
//!   session is made on the same client id (CREATE_SESSION); no state is reclaimed (it
//!   belongs to the client id, which lives on). CREATE_SESSION answering `STALE_CLIENTID`
//!   turns it into R3.
//! - **R3 a lost client id** (`STALE_CLIENTID`: the server restarted; or
//!   `SEQ4_STATUS_RESTART_RECLAIM_NEEDED`): EXCHANGE_ID, CREATE_SESSION, then, if the
//!   client held state, the reclaims (CLAIM_PREVIOUS opens, reclaim locks), then
//!   RECLAIM_COMPLETE; ordinary calls wait until then. A reclaim refused with `NO_GRACE`
//!   (the grace period is over) loses that state: counted, reported to the caller, and
//!   recovery goes on.
//! - **R4 lost state** (`EXPIRED`, `SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED`): as R3 but
//!   nothing can be reclaimed: the state is lost at once.
//! - **R5 the lease**: a SEQUENCE that succeeds renews the lease from the time it was sent
//!   (RFC 8881 8.3); a client idle for two thirds of the lease sends a lone SEQUENCE
//!   (RENEW); one whose last renewal is a whole lease old is told its lease has lapsed.
//! - **R6 status flags and connections**: `CB_PATH_DOWN`, `CB_PATH_DOWN_SESSION`,
//!   `BACKCHANNEL_FAULT` ask for the back channel to be bound again; `RECALLABLE_STATE_REVOKED`,
//!   `ADMIN_STATE_REVOKED`, `EXPIRED_SOME_STATE_REVOKED` for TEST_STATEID/FREE_STATEID; a
//!   connection lost (or `CONN_NOT_BOUND_TO_SESSION`) for BIND_CONN_TO_SESSION. Each task
//!   is queued at most once however often it is asked for.
//! - **R7 retries**: a task that failed for a transient reason (no reply, DELAY) runs again
//!   after a back-off that doubles from [`RETRY_FIRST_MS`] to [`RETRY_MAX_MS`]; one that
//!   failed for a lasting reason moves recovery to the step that cures it (R2 to R3).
use super::slots::Time;
use std::collections::BTreeSet;

/// The first back-off of a task that failed for a transient reason, in milliseconds.
pub const RETRY_FIRST_MS: u64 = 100;
/// The longest back-off between two tries of a task.
pub const RETRY_MAX_MS: u64 = 15_000;

/// `SEQ4_STATUS_*` bits (RFC 8881 18.46.3) this machine acts on.
pub mod flags {
    #![allow(missing_docs)]
    pub const CB_PATH_DOWN: u32 = 0x1;
    pub const EXPIRED_ALL_STATE_REVOKED: u32 = 0x8;
    pub const EXPIRED_SOME_STATE_REVOKED: u32 = 0x10;
    pub const ADMIN_STATE_REVOKED: u32 = 0x20;
    pub const RECALLABLE_STATE_REVOKED: u32 = 0x40;
    pub const RESTART_RECLAIM_NEEDED: u32 = 0x100;
    pub const CB_PATH_DOWN_SESSION: u32 = 0x200;
    pub const BACKCHANNEL_FAULT: u32 = 0x400;
}

/// A recovery task, run by the I/O layer. The order is the order of need: a task earlier
/// in it runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// EXCHANGE_ID: a client id.
    ExchangeId,
    /// CREATE_SESSION on the client id.
    CreateSession,
    /// BIND_CONN_TO_SESSION of the current connection (both channels).
    BindConn,
    /// Reclaims of the state held before the server restarted (CLAIM_PREVIOUS opens,
    /// reclaim locks), in grace.
    Reclaim,
    /// RECLAIM_COMPLETE.
    ReclaimComplete,
    /// TEST_STATEID / FREE_STATEID of revoked state.
    FreeRevoked,
    /// The back channel bound again (BIND_CONN_TO_SESSION for the back channel, or
    /// BACKCHANNEL_CTL).
    FixBackchannel,
    /// A lone SEQUENCE, to renew the lease of an idle client.
    Renew,
}

/// Why a reply or a task went wrong, as far as recovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// `NFS4ERR_BADSESSION`, `NFS4ERR_DEADSESSION`.
    SessionGone,
    /// `NFS4ERR_CONN_NOT_BOUND_TO_SESSION`.
    ConnNotBound,
    /// `NFS4ERR_STALE_CLIENTID`.
    StaleClientId,
    /// `NFS4ERR_EXPIRED`: the lease expired and the server dropped the client's state.
    Expired,
    /// `NFS4ERR_NO_GRACE`, to a reclaim: the grace period is over.
    NoGrace,
    /// No reply, `NFS4ERR_DELAY`, or anything else worth another try later.
    Transient,
}

/// What became of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskResult {
    /// It did its work.
    Done,
    /// It failed.
    Failed(Trouble),
}

/// Where recovery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Ordinary calls go.
    Ready,
    /// A session (and maybe a client id) is being made; ordinary calls wait.
    Establishing,
    /// Reclaiming after a server restart; ordinary calls wait.
    Reclaiming,
}

/// Counters of recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryStats {
    /// New sessions made after a lost one (R2).
    pub session_resets: u64,
    /// New client ids after a lost one (R3, R4).
    pub client_resets: u64,
    /// Times state was lost (R3's NO_GRACE, R4).
    pub state_lost: u64,
    /// Tasks retried after a transient failure.
    pub retries: u64,
    /// Lone SEQUENCEs sent to renew the lease.
    pub renewals: u64,
}

/// The recovery state of one client (one server). See the module doc.
#[derive(Debug)]
pub struct Recovery {
    lease_ms: u64,
    phase: Phase,
    queued: BTreeSet<Task>,
    running: Option<Task>,
    /// Consecutive transient failures of the running task's kind, and when it may run
    /// again.
    backoff: Option<(Task, u32, Time)>,
    /// The send time of the last SEQUENCE that succeeded.
    renewed: Option<Time>,
    /// Whether the client holds state to reclaim after a restart (the caller says so).
    holds_state: bool,
    /// State lost since the caller last asked ([`Recovery::take_lost`]).
    lost: bool,
    stats: RecoveryStats,
}

impl Recovery {
    /// A client with no client id yet, and a lease of `lease_ms` (the server's
    /// `lease_time`; until known, the caller passes a guess and [`Self::set_lease`] later).
    pub fn new(lease_ms: u64) -> Self {
        let mut r = Self {
            lease_ms: lease_ms.max(1),
            phase: Phase::Establishing,
            queued: BTreeSet::new(),
            running: None,
            backoff: None,
            renewed: None,
            holds_state: false,
            lost: false,
            stats: RecoveryStats::default(),
        };
        r.queued.insert(Task::ExchangeId);
        r
    }

    /// The server's `lease_time`, in milliseconds.
    pub fn set_lease(&mut self, lease_ms: u64) {
        self.lease_ms = lease_ms.max(1);
    }

    /// Where recovery is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Counters.
    pub fn stats(&self) -> RecoveryStats {
        self.stats
    }

    /// Whether ordinary calls must wait (the slot table drains meanwhile).
    pub fn holds_ordinary_calls(&self) -> bool {
        self.phase != Phase::Ready
    }

    /// The caller's word on whether the client holds opens, locks or delegations (what
    /// R3 reclaims).
    pub fn set_holds_state(&mut self, holds: bool) {
        self.holds_state = holds;
    }

    /// Whether state was lost since the last call (the caller fails the files concerned).
    pub fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    /// R2-R4: what an ordinary call's reply says of the session or client id.
    pub fn trouble(&mut self, t: Trouble) {
        match t {
            Trouble::SessionGone => self.lose_session(),
            Trouble::ConnNotBound => {
                self.queued.insert(Task::BindConn);
            }
            Trouble::StaleClientId => self.lose_client_id(true),
            Trouble::Expired => self.lose_client_id(false),
            Trouble::NoGrace | Trouble::Transient => {}
        }
    }

    /// R6: the connection was lost and a new one made.
    pub fn connection_replaced(&mut self) {
        if self.phase == Phase::Ready || self.phase == Phase::Reclaiming {
            self.queued.insert(Task::BindConn);
        }
    }

    fn lose_session(&mut self) {
        if self.phase == Phase::Ready || self.phase == Phase::Reclaiming {
            self.stats.session_resets += 1;
        }
        // A reclaim under way goes on after the new session: the client id lives on.
        if self.phase == Phase::Ready {
            self.phase = Phase::Establishing;
        }
        self.queued.remove(&Task::BindConn);
        self.queued.remove(&Task::Renew);
        self.queued.insert(Task::CreateSession);
    }

    fn lose_client_id(&mut self, reclaim: bool) {
        if self.queued.contains(&Task::ExchangeId) || self.running == Some(Task::ExchangeId) {
            return; // already on its way
        }
        self.stats.client_resets += 1;
        self.phase = Phase::Establishing;
        self.queued.clear();
        self.queued.insert(Task::ExchangeId);
        self.queued.insert(Task::CreateSession);
        if reclaim && self.holds_state {
            self.queued.insert(Task::Reclaim);
        } else if self.holds_state {
            self.state_lost();
        }
        self.queued.insert(Task::ReclaimComplete);
    }

    fn state_lost(&mut self) {
        self.stats.state_lost += 1;
        self.lost = true;
        self.holds_state = false;
    }

    /// R5, R6: a SEQUENCE sent at `sent` succeeded with status flags `flags`.
    pub fn sequence_ok(&mut self, sent: Time, flags: u32) {
        if self.renewed.is_none_or(|r| r < sent) {
            self.renewed = Some(sent);
        }
        if flags & flags::EXPIRED_ALL_STATE_REVOKED != 0 {
            self.lose_client_id(false);
            return;
        }
        if flags & flags::RESTART_RECLAIM_NEEDED != 0 {
            self.lose_client_id(true);
            return;
        }
        if flags & (flags::CB_PATH_DOWN | flags::CB_PATH_DOWN_SESSION | flags::BACKCHANNEL_FAULT)
            != 0
        {
            self.queued.insert(Task::FixBackchannel);
        }
        if flags
            & (flags::RECALLABLE_STATE_REVOKED
                | flags::ADMIN_STATE_REVOKED
                | flags::EXPIRED_SOME_STATE_REVOKED)
            != 0
        {
            self.queued.insert(Task::FreeRevoked);
        }
    }

    /// R5: the timer. Queues a RENEW when the client has been idle for two thirds of the
    /// lease. Returns whether the lease has lapsed (no renewal for a whole lease: the
    /// server may have dropped the state; the next reply will say).
    pub fn tick(&mut self, now: Time) -> bool {
        let Some(r) = self.renewed else {
            return false;
        };
        let idle = now.0.saturating_sub(r.0);
        if self.phase == Phase::Ready && idle >= self.lease_ms * 2 / 3 {
            self.queued.insert(Task::Renew);
        }
        idle >= self.lease_ms
    }

    /// The task to run now, if any (none while one runs, or while the next waits for its
    /// back-off): it is marked running until [`Self::task_done`].
    pub fn next_task(&mut self, now: Time) -> Option<Task> {
        if self.running.is_some() {
            return None;
        }
        let t = *self.queued.iter().next()?;
        if let Some((k, _, at)) = self.backoff {
            if k == t && now < at {
                return None;
            }
        }
        self.queued.remove(&t);
        self.running = Some(t);
        if t == Task::Renew {
            self.stats.renewals += 1;
        }
        Some(t)
    }

    /// What became of the running task `t`, at `now`.
    pub fn task_done(&mut self, t: Task, r: TaskResult, now: Time) {
        if self.running != Some(t) {
            return; // not the one running: a report twice, nothing to do
        }
        self.running = None;
        match r {
            TaskResult::Done => {
                if self.backoff.is_some_and(|(k, _, _)| k == t) {
                    self.backoff = None;
                }
                self.done(t);
            }
            TaskResult::Failed(Trouble::Transient) => {
                let n = match self.backoff {
                    Some((k, n, _)) if k == t => n + 1,
                    _ => 1,
                };
                let wait = (RETRY_FIRST_MS << (n - 1).min(16)).min(RETRY_MAX_MS);
                self.backoff = Some((t, n, Time(now.0.saturating_add(wait))));
                self.stats.retries += 1;
                self.queued.insert(t);
            }
            TaskResult::Failed(Trouble::NoGrace) if t == Task::Reclaim => {
                // The grace period is over: what was not reclaimed is lost.
                self.state_lost();
                self.done(t);
            }
            TaskResult::Failed(Trouble::SessionGone) => {
                self.queued.insert(t);
                self.lose_session();
            }
            TaskResult::Failed(Trouble::ConnNotBound) => {
                self.queued.insert(t);
                self.queued.insert(Task::BindConn);
            }
            TaskResult::Failed(Trouble::StaleClientId) => self.lose_client_id(true),
            TaskResult::Failed(Trouble::Expired) => self.lose_client_id(false),
            // NO_GRACE to anything but a reclaim: the server is out of grace, which is
            // what the task wanted; it is done.
            TaskResult::Failed(Trouble::NoGrace) => self.done(t),
        }
    }

    /// The phase after task `t` did its work.
    fn done(&mut self, t: Task) {
        match t {
            Task::CreateSession => {
                let reclaiming = self.queued.contains(&Task::Reclaim)
                    || self.queued.contains(&Task::ReclaimComplete);
                self.phase = if reclaiming {
                    Phase::Reclaiming
                } else {
                    Phase::Ready
                };
            }
            Task::ExchangeId => {
                self.queued.insert(Task::CreateSession);
                // A brand new client id must say RECLAIM_COMPLETE before opening.
                self.queued.insert(Task::ReclaimComplete);
            }
            Task::ReclaimComplete
                if !self.queued.contains(&Task::Reclaim) && self.phase == Phase::Reclaiming =>
            {
                self.phase = Phase::Ready;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
