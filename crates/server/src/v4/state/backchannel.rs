//! The server as requester on a session's back channel (RFC 8881 2.10.3.1, 2.10.6): the
//! back channel's slot table, what CB_SEQUENCE says, and what a reply (or its absence)
//! does to a slot. No I/O, no clock: the driver ([`crate::v4::service`]) sends the calls
//! and reports how each ended.
//!
//! - **Slots**: as many as the client granted in CREATE_SESSION's `csa_back_chan_attrs`
//!   (`ca_maxrequests`, capped by the server's configuration), never more than the
//!   client's last `csr_target_highest_slotid` + 1 in use. One call per slot at a time:
//!   the outstanding callbacks of a session are bounded by its slot count.
//! - **Sequence ids**: a slot's first call carries sequence id 1; a reply to CB_SEQUENCE
//!   (NFS4_OK) advances the slot.
//! - **A lost reply** (timeout, connection loss) leaves the slot *uncertain*: the client
//!   may or may not have run the call, so its slot is at `seq` or at `seq - 1`. A new,
//!   different call must not go out with `seq` (RFC 8881 2.10.6.2: the client would take
//!   it for a retry and answer from its reply cache, or with
//!   NFS4ERR_RETRY_UNCACHED_REP, without running it). The next call on that slot goes out
//!   with `seq + 1` as a probe: NFS4_OK means the client had run the lost call (the slot
//!   is settled); NFS4ERR_SEQ_MISORDERED means it had not, so the slot is settled at
//!   `seq` and the call is to be sent again ([`Verdict::Resend`]).
//! - **Other CB_SEQUENCE errors**: NFS4ERR_RETRY_UNCACHED_REP (the client had run a call
//!   with this sequence id: the slot advances, ours did not run, send again);
//!   NFS4ERR_SEQ_MISORDERED on a settled slot or NFS4ERR_BADSLOT: the client's view of
//!   this slot is not ours, so the slot is retired (never guessed at); every slot
//!   retired, or NFS4ERR_BADSESSION: the back channel is dead until the session is
//!   replaced ([`BackSlots::is_dead`]), and callbacks report a path down.
use super::ids::Time;

/// `NFS4ERR_BADSESSION`.
const BADSESSION: u32 = 10052;
/// `NFS4ERR_BADSLOT`.
const BADSLOT: u32 = 10053;
/// `NFS4ERR_SEQ_MISORDERED`.
const SEQ_MISORDERED: u32 = 10063;
/// `NFS4ERR_RETRY_UNCACHED_REP`.
const RETRY_UNCACHED_REP: u32 = 10068;

/// Names one call in flight on a [`BackSlots`] (never reused within it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(pub u64);

/// The CB_SEQUENCE arguments of a call just started (RFC 8881 20.9.1). `csa_cachethis`
/// is always false and the referring call lists empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CbSequence {
    /// The call, for [`BackSlots::on_reply`] / [`BackSlots::on_lost`].
    pub call: CallId,
    /// `csa_slotid`.
    pub slotid: u32,
    /// `csa_sequenceid`.
    pub sequenceid: u32,
    /// `csa_highest_slotid`: the highest slot we may use now.
    pub highest_slotid: u32,
}

/// Why no call can start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Every usable slot has a call in flight: wait for one to end.
    Busy,
    /// The back channel is dead (every slot retired, or the client does not know the
    /// session): callbacks cannot be sent on this session.
    Dead,
}

/// What CB_SEQUENCE answered, from the reply's first result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqReply {
    /// NFS4_OK, with the client's `csr_target_highest_slotid`.
    Ok {
        /// `csr_target_highest_slotid`.
        target_highest_slotid: u32,
    },
    /// Any other status.
    Err(u32),
}

/// What the caller does with a call once it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The client ran the call: its results stand.
    Done,
    /// The client did not run it; sending it again (on a fresh sequence id) is safe.
    Resend,
    /// The client did not run it and this session cannot carry it (the status, or none
    /// for a call whose reply was lost).
    Failed(Option<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Free; the next call carries `next`.
    Idle { next: u32 },
    /// A call in flight with `seq`; `probe`: the slot was uncertain before it (the client
    /// is at `seq - 1` or `seq - 2`).
    Busy {
        seq: u32,
        call: CallId,
        probe: bool,
        since: Time,
    },
    /// The reply to `seq` was lost.
    Uncertain { seq: u32 },
    /// Not to be used again on this session.
    Retired,
}

/// Counters of one back channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackStats {
    /// Calls started.
    pub started: u64,
    /// Calls the client ran.
    pub done: u64,
    /// Calls whose reply was lost.
    pub lost: u64,
    /// Calls to send again.
    pub resend: u64,
    /// Slots retired.
    pub retired: u64,
}

/// The back channel of one session. See the module documentation.
#[derive(Debug, Clone)]
pub struct BackSlots {
    slots: Vec<Slot>,
    /// The client's last `csr_target_highest_slotid`: slots above it are not started.
    target: u32,
    dead: bool,
    next_call: u64,
    stats: BackStats,
}

impl BackSlots {
    /// A back channel of `granted` slots (the negotiated `ca_maxrequests`), at most `cap`
    /// (at least one).
    pub fn new(granted: u32, cap: u32) -> Self {
        let n = granted.clamp(1, cap.max(1));
        Self {
            slots: vec![Slot::Idle { next: 1 }; n as usize],
            target: n - 1,
            dead: false,
            next_call: 1,
            stats: BackStats::default(),
        }
    }

    /// Slots in the table.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no slot (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Calls in flight.
    pub fn outstanding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Busy { .. }))
            .count()
    }

    /// Whether no callback can be sent on this session any more.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Counters.
    pub fn stats(&self) -> BackStats {
        self.stats
    }

    /// The longest a call in flight has waited at `now`, in milliseconds (0 if none).
    pub fn oldest_ms(&self, now: Time) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Busy { since, .. } => Some(now.since(*since)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Starts a call at `now`: the CB_SEQUENCE arguments it carries. Idle slots are
    /// preferred (lowest first), then uncertain ones (probed with the next sequence id).
    pub fn start(&mut self, now: Time) -> Result<CbSequence, NoSlot> {
        if self.dead {
            return Err(NoSlot::Dead);
        }
        let usable = (self.target as usize + 1).min(self.slots.len());
        let pick = self.slots[..usable]
            .iter()
            .position(|s| matches!(s, Slot::Idle { .. }))
            .or_else(|| {
                self.slots[..usable]
                    .iter()
                    .position(|s| matches!(s, Slot::Uncertain { .. }))
            });
        let Some(i) = pick else {
            return Err(NoSlot::Busy);
        };
        let (seq, probe) = match self.slots[i] {
            Slot::Idle { next } => (next, false),
            Slot::Uncertain { seq } => (seq.wrapping_add(1), true),
            // Only idle and uncertain slots are picked above.
            Slot::Busy { .. } | Slot::Retired => return Err(NoSlot::Busy),
        };
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.slots[i] = Slot::Busy {
            seq,
            call,
            probe,
            since: now,
        };
        self.stats.started += 1;
        Ok(CbSequence {
            call,
            slotid: i as u32,
            sequenceid: seq,
            highest_slotid: usable as u32 - 1,
        })
    }

    fn find(&self, call: CallId) -> Option<(usize, u32, bool)> {
        self.slots.iter().enumerate().find_map(|(i, s)| match *s {
            Slot::Busy {
                seq,
                call: c,
                probe,
                ..
            } if c == call => Some((i, seq, probe)),
            _ => None,
        })
    }

    /// The reply to `call` came, with CB_SEQUENCE's result: what to do with the call.
    /// A call not in flight (ended already) is [`Verdict::Failed`] and changes nothing.
    pub fn on_reply(&mut self, call: CallId, reply: SeqReply) -> Verdict {
        let Some((i, seq, probe)) = self.find(call) else {
            return Verdict::Failed(None);
        };
        match reply {
            SeqReply::Ok {
                target_highest_slotid,
            } => {
                self.slots[i] = Slot::Idle {
                    next: seq.wrapping_add(1),
                };
                self.target = target_highest_slotid.min(self.slots.len() as u32 - 1);
                self.stats.done += 1;
                Verdict::Done
            }
            SeqReply::Err(RETRY_UNCACHED_REP) => {
                self.slots[i] = Slot::Idle {
                    next: seq.wrapping_add(1),
                };
                self.stats.resend += 1;
                Verdict::Resend
            }
            SeqReply::Err(SEQ_MISORDERED) if probe => {
                // The client had not run the lost call: it expects `seq - 1`.
                self.slots[i] = Slot::Idle {
                    next: seq.wrapping_sub(1),
                };
                self.stats.resend += 1;
                Verdict::Resend
            }
            SeqReply::Err(BADSESSION) => {
                self.slots[i] = Slot::Retired;
                self.stats.retired += 1;
                self.dead = true;
                Verdict::Failed(Some(BADSESSION))
            }
            SeqReply::Err(s @ (SEQ_MISORDERED | BADSLOT)) => {
                self.slots[i] = Slot::Retired;
                self.stats.retired += 1;
                if self.slots.iter().all(|s| *s == Slot::Retired) {
                    self.dead = true;
                }
                Verdict::Failed(Some(s))
            }
            SeqReply::Err(s) => {
                // Any other refusal of CB_SEQUENCE (e.g. NFS4ERR_DELAY): the client did
                // not run the call and its slot did not move.
                // A probe refused so leaves it still unknown where the client's slot is.
                self.slots[i] = if probe {
                    Slot::Uncertain {
                        seq: seq.wrapping_sub(1),
                    }
                } else {
                    Slot::Idle { next: seq }
                };
                Verdict::Failed(Some(s))
            }
        }
    }

    /// The reply to `call` was malformed (no CB_SEQUENCE result could be read): treated
    /// as lost, since the client may have run it.
    pub fn on_malformed(&mut self, call: CallId) {
        self.on_lost(call);
    }

    /// No reply to `call` will come (timed out, connection lost): its slot is uncertain.
    pub fn on_lost(&mut self, call: CallId) {
        let Some((i, seq, probe)) = self.find(call) else {
            return;
        };
        // A lost probe leaves the client at one of `seq - 2`, `seq - 1`, `seq`: probing
        // again with `seq + 1` cannot tell these apart, so the slot is retired.
        self.slots[i] = if probe {
            self.stats.retired += 1;
            Slot::Retired
        } else {
            Slot::Uncertain { seq }
        };
        self.stats.lost += 1;
        if self.slots.iter().all(|s| *s == Slot::Retired) {
            self.dead = true;
        }
    }

    /// `call` was never sent (the transport refused it at once): its slot is as before.
    pub fn on_unsent(&mut self, call: CallId) {
        let Some((i, seq, probe)) = self.find(call) else {
            return;
        };
        self.slots[i] = if probe {
            Slot::Uncertain {
                seq: seq.wrapping_sub(1),
            }
        } else {
            Slot::Idle { next: seq }
        };
        self.stats.started = self.stats.started.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: Time = Time(0);
    const OK: SeqReply = SeqReply::Ok {
        target_highest_slotid: 15,
    };

    #[test]
    fn slots_are_as_granted_and_capped_and_bound_the_calls_in_flight() {
        let mut b = BackSlots::new(64, 4);
        assert_eq!(b.len(), 4);
        let calls: Vec<_> = (0..4).map(|_| b.start(T).unwrap()).collect();
        assert_eq!(
            calls.iter().map(|c| c.slotid).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert!(calls
            .iter()
            .all(|c| c.sequenceid == 1 && c.highest_slotid == 3));
        assert_eq!(b.start(T), Err(NoSlot::Busy), "one call per slot");
        assert_eq!(b.outstanding(), 4);
        assert_eq!(BackSlots::new(0, 16).len(), 1, "at least one slot");
        assert_eq!(b.oldest_ms(Time(2500)), 2500);
    }

    #[test]
    fn a_reply_advances_the_slot_and_the_client_target_limits_the_slots_used() {
        let mut b = BackSlots::new(4, 16);
        let c = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(
                c.call,
                SeqReply::Ok {
                    target_highest_slotid: 0
                }
            ),
            Verdict::Done
        );
        let c = b.start(T).unwrap();
        assert_eq!((c.slotid, c.sequenceid, c.highest_slotid), (0, 2, 0));
        assert_eq!(
            b.start(T),
            Err(NoSlot::Busy),
            "the client asked for one slot"
        );
        assert_eq!(b.on_reply(c.call, OK), Verdict::Done);
        assert_eq!(b.on_reply(c.call, OK), Verdict::Failed(None), "ended once");
        assert_eq!(b.start(T).unwrap().sequenceid, 3);
    }

    #[test]
    fn a_lost_reply_is_probed_with_the_next_seqid_never_reused_blindly() {
        // The client had run the lost call: the probe succeeds and the slot moves on.
        let mut b = BackSlots::new(1, 16);
        let c = b.start(T).unwrap();
        b.on_lost(c.call);
        let p = b.start(T).unwrap();
        assert_eq!(
            (p.slotid, p.sequenceid),
            (0, 2),
            "seq + 1, not the lost seq"
        );
        assert_eq!(b.on_reply(p.call, OK), Verdict::Done);
        assert_eq!(b.start(T).unwrap().sequenceid, 3);

        // The client had not run it: misordered, and the slot settles at the lost seq.
        let mut b = BackSlots::new(1, 16);
        let c = b.start(T).unwrap();
        b.on_lost(c.call);
        let p = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(p.call, SeqReply::Err(SEQ_MISORDERED)),
            Verdict::Resend
        );
        let again = b.start(T).unwrap();
        assert_eq!(again.sequenceid, 1, "the client never saw seq 1");
        assert_eq!(b.on_reply(again.call, OK), Verdict::Done);
        assert_eq!(b.stats().lost, 1);
        assert_eq!(b.stats().resend, 1);
    }

    #[test]
    fn idle_slots_go_before_uncertain_ones() {
        let mut b = BackSlots::new(2, 16);
        let c0 = b.start(T).unwrap();
        b.on_lost(c0.call);
        let c = b.start(T).unwrap();
        assert_eq!((c.slotid, c.sequenceid), (1, 1));
    }

    #[test]
    fn a_retry_answered_uncached_advances_and_asks_for_a_resend() {
        let mut b = BackSlots::new(1, 16);
        let c = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(c.call, SeqReply::Err(RETRY_UNCACHED_REP)),
            Verdict::Resend
        );
        assert_eq!(b.start(T).unwrap().sequenceid, 2);
    }

    #[test]
    fn a_slot_the_client_disagrees_on_is_retired_and_all_retired_is_dead() {
        let mut b = BackSlots::new(2, 16);
        let c0 = b.start(T).unwrap();
        let c1 = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(c0.call, SeqReply::Err(SEQ_MISORDERED)),
            Verdict::Failed(Some(SEQ_MISORDERED))
        );
        assert!(!b.is_dead());
        assert_eq!(
            b.on_reply(c1.call, SeqReply::Err(BADSLOT)),
            Verdict::Failed(Some(BADSLOT))
        );
        assert!(b.is_dead());
        assert_eq!(b.start(T), Err(NoSlot::Dead));

        let mut b = BackSlots::new(4, 16);
        let c = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(c.call, SeqReply::Err(BADSESSION)),
            Verdict::Failed(Some(BADSESSION))
        );
        assert!(b.is_dead(), "the client does not know the session");
    }

    #[test]
    fn a_lost_probe_retires_the_slot() {
        let mut b = BackSlots::new(1, 16);
        let c = b.start(T).unwrap();
        b.on_lost(c.call);
        let p = b.start(T).unwrap();
        b.on_lost(p.call);
        assert!(b.is_dead());
        assert_eq!(b.stats().retired, 1);
    }

    #[test]
    fn a_refusal_or_an_unsent_call_leaves_the_slot_where_it_was() {
        let mut b = BackSlots::new(1, 16);
        let c = b.start(T).unwrap();
        assert_eq!(
            b.on_reply(c.call, SeqReply::Err(10008)),
            Verdict::Failed(Some(10008))
        );
        let c = b.start(T).unwrap();
        assert_eq!(c.sequenceid, 1);
        b.on_unsent(c.call);
        let c = b.start(T).unwrap();
        assert_eq!(c.sequenceid, 1);
        b.on_lost(c.call);
        let p = b.start(T).unwrap();
        b.on_unsent(p.call);
        assert_eq!(b.start(T).unwrap().sequenceid, 2, "still a probe");
    }
}
