//! One session's fore-channel slot table: exactly-once execution (RFC 8881 2.10.6).
//!
//! The contract, each clause tested below:
//! - S1: a request whose sequence id is the slot's last plus one (wrapping) is new; the slot
//!   is busy until [`SlotTable::finish`] hands it the reply.
//! - S2: a request with the slot's last sequence id is a retry: the cached reply is returned
//!   bit for bit; if the reply was not cached (`sa_cachethis` false or too big),
//!   `RETRY_UNCACHED_REP`; if it is still being executed, `DELAY`.
//! - S3: a retry whose request differs from the one executed (by digest) is
//!   `SEQ_FALSE_RETRY`, never answered with another request's reply.
//! - S4: any other sequence id is `SEQ_MISORDERED`; a slot beyond the table is `BADSLOT`.
//!   Neither changes the slot.
//! - S5: a reply is cached only when the request asked for it; an uncached reply still
//!   advances the slot. A reply larger than the negotiated size is not cached and the caller
//!   is told (`REP_TOO_BIG_TO_CACHE`).
//! - S6: the table shrinks only to a size the client has acknowledged (its
//!   `sa_highest_slotid` is below the new size) and never drops a busy slot; slots added
//!   later start afresh (sequence id 1 is new).
//! - S7: a request whose execution was given up (a handler panicked) releases its slot with
//!   no reply kept ([`SlotTable::abandon`]): a retry is `RETRY_UNCACHED_REP`, the next
//!   sequence id is new, so one bug costs the client one call, not the slot.
use super::error::SessionError;
use sha2::{Digest, Sha256};

/// A digest of a request (the COMPOUND arguments), kept per slot to tell a retry from a
/// different request at the same sequence id (S3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestDigest(pub [u8; 32]);

/// Bytes hashed at each end of a large request.
pub const DIGEST_EDGE: usize = 2048;

impl RequestDigest {
    /// The digest of the request bytes: SHA-256 of its length and, for requests larger than
    /// `2 * DIGEST_EDGE`, of its first and last [`DIGEST_EDGE`] bytes only, so a 1 MiB
    /// WRITE costs microseconds, not a pass over its data. The operations, their
    /// arguments and the head of the data are in the first part, so a false retry (a client
    /// bug) differing only in the middle of a large payload goes unnoticed; a replay then
    /// returns the earlier reply to that client only.
    pub fn of(request: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update((request.len() as u64).to_be_bytes());
        if request.len() <= 2 * DIGEST_EDGE {
            h.update(request);
        } else {
            h.update(&request[..DIGEST_EDGE]);
            h.update(&request[request.len() - DIGEST_EDGE..]);
        }
        Self(h.finalize().into())
    }
}

/// What a slot holds from its last request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// Never used (or added after a shrink).
    Fresh,
    /// The request is being executed.
    Busy {
        /// Whether to keep the reply.
        cache: bool,
    },
    /// The reply, kept for a retry.
    Reply(Vec<u8>),
    /// Executed, reply not kept.
    Uncached,
}

#[derive(Debug, Clone)]
struct Slot {
    seqid: u32,
    digest: Option<RequestDigest>,
    held: Held,
}

impl Slot {
    fn fresh() -> Self {
        Slot {
            seqid: 0,
            digest: None,
            held: Held::Fresh,
        }
    }
}

/// What to do with a SEQUENCE that passed the slot checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotStart {
    /// A new request: execute it, then call [`SlotTable::finish`].
    New,
    /// A retry: send these bytes (the earlier reply) and do not execute anything.
    Replay(Vec<u8>),
}

/// The slots of one session's fore channel.
#[derive(Debug, Clone)]
pub struct SlotTable {
    slots: Vec<Slot>,
    /// The slot count the server wants the client to use (`target_highest_slotid + 1`).
    target: u32,
    max_cached: u32,
    cached_bytes: u64,
}

impl SlotTable {
    /// A table of `slots` (>= 1) slots caching replies up to `max_cached` bytes.
    pub fn new(slots: u32, max_cached: u32) -> Self {
        let slots = slots.max(1);
        Self {
            slots: (0..slots).map(|_| Slot::fresh()).collect(),
            target: slots,
            max_cached,
            cached_bytes: 0,
        }
    }

    /// `sr_highest_slotid`: the highest slot the server accepts now.
    pub fn highest_slotid(&self) -> u32 {
        self.len() - 1
    }
    /// `sr_target_highest_slotid`: the highest slot the server wants the client to use.
    pub fn target_highest_slotid(&self) -> u32 {
        self.target - 1
    }
    /// Slots in the table (what is charged to the budget).
    pub fn len(&self) -> u32 {
        // The table never holds more than a u32 count of slots (`new`, `grow_to`).
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }
    /// Never true: a table has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    /// The largest reply kept per slot.
    pub fn max_cached(&self) -> u32 {
        self.max_cached
    }
    /// Bytes of replies held now.
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }

    /// Checks a SEQUENCE against slot `slotid` (S1-S4).
    pub fn start(
        &mut self,
        slotid: u32,
        seqid: u32,
        digest: RequestDigest,
        cache: bool,
    ) -> Result<SlotStart, SessionError> {
        let slot = self
            .slots
            .get_mut(slotid as usize)
            .ok_or(SessionError::BadSlot)?;
        if seqid == slot.seqid.wrapping_add(1) {
            if matches!(slot.held, Held::Busy { .. }) {
                // The client cannot have seen the reply of the previous request yet.
                return Err(SessionError::SeqMisordered);
            }
            if let Held::Reply(r) = &slot.held {
                self.cached_bytes -= r.len() as u64;
            }
            slot.seqid = seqid;
            slot.digest = Some(digest);
            slot.held = Held::Busy { cache };
            return Ok(SlotStart::New);
        }
        if seqid != slot.seqid || slot.held == Held::Fresh {
            return Err(SessionError::SeqMisordered);
        }
        if slot.digest != Some(digest) {
            return Err(SessionError::SeqFalseRetry);
        }
        match &slot.held {
            Held::Reply(r) => Ok(SlotStart::Replay(r.clone())),
            Held::Busy { .. } => Err(SessionError::Delay),
            Held::Uncached | Held::Fresh => Err(SessionError::RetryUncachedRep),
        }
    }

    /// Hands the slot the reply of the request started on it (S5). Keeps the bytes when
    /// the request asked for caching; `REP_TOO_BIG_TO_CACHE` (and nothing kept) when they
    /// exceed [`SlotTable::max_cached`]. A slot that is not busy is left alone.
    pub fn finish(&mut self, slotid: u32, reply: &[u8]) -> Result<(), SessionError> {
        let Some(slot) = self.slots.get_mut(slotid as usize) else {
            return Ok(());
        };
        let Held::Busy { cache } = slot.held else {
            return Ok(());
        };
        if !cache {
            slot.held = Held::Uncached;
            return Ok(());
        }
        if reply.len() > self.max_cached as usize {
            slot.held = Held::Uncached;
            return Err(SessionError::RepTooBigToCache);
        }
        self.cached_bytes += reply.len() as u64;
        slot.held = Held::Reply(reply.to_vec());
        Ok(())
    }

    /// The request started on slot `slotid` will not be finished (its execution was given
    /// up: a handler panicked): the slot is released with no reply kept (S7). A slot that
    /// is not busy is left alone.
    pub fn abandon(&mut self, slotid: u32) {
        if let Some(slot) = self.slots.get_mut(slotid as usize) {
            if matches!(slot.held, Held::Busy { .. }) {
                slot.held = Held::Uncached;
            }
        }
    }

    /// Sets the slot count the server wants (1..=len, or more to be reached by
    /// [`SlotTable::grow_to`]).
    pub fn set_target(&mut self, slots: u32) {
        self.target = slots.max(1);
    }
    /// The slot count the server wants.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Adds fresh slots up to `slots` (S6).
    pub fn grow_to(&mut self, slots: u32) {
        while self.len() < slots {
            self.slots.push(Slot::fresh());
        }
    }

    /// The client said it uses slots up to `client_highest`: drop the slots above the
    /// target if the client is below it and none of them is busy (S6). Returns the new
    /// length.
    pub fn shrink_if_acknowledged(&mut self, client_highest: u32) -> u32 {
        if self.target >= self.len() || client_highest >= self.target {
            return self.len();
        }
        let keep = self.target as usize;
        if self.slots[keep..]
            .iter()
            .any(|s| matches!(s.held, Held::Busy { .. }))
        {
            return self.len();
        }
        for s in self.slots.drain(keep..) {
            if let Held::Reply(r) = s.held {
                self.cached_bytes -= r.len() as u64;
            }
        }
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> RequestDigest {
        RequestDigest::of(s.as_bytes())
    }

    /// S1, S2: a new request executes; its retry returns the very same bytes.
    #[test]
    fn retry_returns_cached_reply_bit_for_bit() {
        let mut t = SlotTable::new(4, 1024);
        assert_eq!(t.start(2, 1, d("a"), true), Ok(SlotStart::New));
        let reply = vec![0xde, 0xad, 0, 7, 0xff];
        t.finish(2, &reply).unwrap();
        assert_eq!(
            t.start(2, 1, d("a"), true),
            Ok(SlotStart::Replay(reply.clone()))
        );
        assert_eq!(t.cached_bytes(), 5);
        // The next request replaces the cached reply.
        assert_eq!(t.start(2, 2, d("b"), true), Ok(SlotStart::New));
        assert_eq!(t.cached_bytes(), 0);
    }

    /// S2: a retry while the first is still executing waits; S1: the next sequence id
    /// while busy is misordered.
    #[test]
    fn busy_slot_delays_retry() {
        let mut t = SlotTable::new(1, 1024);
        t.start(0, 1, d("a"), true).unwrap();
        assert_eq!(t.start(0, 1, d("a"), true), Err(SessionError::Delay));
        assert_eq!(
            t.start(0, 2, d("b"), true),
            Err(SessionError::SeqMisordered)
        );
    }

    /// S7: an abandoned request frees its slot with no reply: its retry is told the reply
    /// was not kept, the next sequence id runs; a slot that is not busy is untouched.
    #[test]
    fn abandoned_request_frees_the_slot_uncached() {
        let mut t = SlotTable::new(1, 1024);
        t.start(0, 1, d("a"), true).unwrap();
        t.abandon(0);
        assert_eq!(
            t.start(0, 1, d("a"), true),
            Err(SessionError::RetryUncachedRep)
        );
        assert_eq!(t.start(0, 2, d("b"), true), Ok(SlotStart::New));
        t.finish(0, b"reply").unwrap();
        t.abandon(0);
        t.abandon(7);
        assert_eq!(
            t.start(0, 2, d("b"), true),
            Ok(SlotStart::Replay(b"reply".to_vec()))
        );
    }

    /// S3: the digest tells requests apart by length, head and tail.
    #[test]
    fn digest_sees_length_head_and_tail() {
        let big = vec![7u8; 1 << 20];
        assert_eq!(RequestDigest::of(&big), RequestDigest::of(&big.clone()));
        for at in [0, DIGEST_EDGE - 1, big.len() - DIGEST_EDGE, big.len() - 1] {
            let mut other = big.clone();
            other[at] ^= 1;
            assert_ne!(
                RequestDigest::of(&big),
                RequestDigest::of(&other),
                "byte {at}"
            );
        }
        assert_ne!(RequestDigest::of(&big), RequestDigest::of(&big[1..]));
        let small = vec![1u8; 2 * DIGEST_EDGE];
        let mut middle = small.clone();
        middle[DIGEST_EDGE] = 2;
        assert_ne!(RequestDigest::of(&small), RequestDigest::of(&middle));
    }

    /// S3: a different request at the same sequence id is a false retry.
    #[test]
    fn false_retry_detected() {
        let mut t = SlotTable::new(1, 1024);
        t.start(0, 1, d("a"), true).unwrap();
        t.finish(0, b"reply").unwrap();
        assert_eq!(
            t.start(0, 1, d("b"), true),
            Err(SessionError::SeqFalseRetry)
        );
        // The slot is unchanged: the true retry still gets its reply.
        assert_eq!(
            t.start(0, 1, d("a"), true),
            Ok(SlotStart::Replay(b"reply".to_vec()))
        );
    }

    /// S4: misordered and bad slots leave the slot as it was.
    #[test]
    fn misordered_and_badslot() {
        let mut t = SlotTable::new(2, 1024);
        assert_eq!(
            t.start(0, 0, d("a"), true),
            Err(SessionError::SeqMisordered)
        );
        assert_eq!(
            t.start(0, 2, d("a"), true),
            Err(SessionError::SeqMisordered)
        );
        assert_eq!(t.start(2, 1, d("a"), true), Err(SessionError::BadSlot));
        t.start(0, 1, d("a"), true).unwrap();
        t.finish(0, b"r").unwrap();
        assert_eq!(
            t.start(0, 3, d("c"), true),
            Err(SessionError::SeqMisordered)
        );
        assert_eq!(t.start(0, 2, d("b"), true), Ok(SlotStart::New));
    }

    /// S1: sequence ids wrap from u32::MAX to 0.
    #[test]
    fn seqid_wraps() {
        let mut t = SlotTable::new(1, 1024);
        t.slots[0].seqid = u32::MAX - 1;
        t.slots[0].held = Held::Uncached;
        assert_eq!(t.start(0, u32::MAX, d("a"), false), Ok(SlotStart::New));
        t.finish(0, b"x").unwrap();
        assert_eq!(t.start(0, 0, d("b"), false), Ok(SlotStart::New));
    }

    /// S5: an uncached reply advances the slot; its retry is RETRY_UNCACHED_REP.
    #[test]
    fn uncached_reply_advances_slot() {
        let mut t = SlotTable::new(1, 1024);
        t.start(0, 1, d("a"), false).unwrap();
        t.finish(0, b"reply").unwrap();
        assert_eq!(t.cached_bytes(), 0);
        assert_eq!(
            t.start(0, 1, d("a"), false),
            Err(SessionError::RetryUncachedRep)
        );
        assert_eq!(t.start(0, 2, d("b"), false), Ok(SlotStart::New));
    }

    /// S5: a reply over the negotiated size is refused for the cache and not kept.
    #[test]
    fn too_big_to_cache() {
        let mut t = SlotTable::new(1, 4);
        t.start(0, 1, d("a"), true).unwrap();
        assert_eq!(t.finish(0, b"12345"), Err(SessionError::RepTooBigToCache));
        assert_eq!(t.cached_bytes(), 0);
        assert_eq!(
            t.start(0, 1, d("a"), true),
            Err(SessionError::RetryUncachedRep)
        );
    }

    /// S6: shrink waits for the client to acknowledge and for busy slots; grown slots are
    /// fresh.
    #[test]
    fn shrink_only_when_acknowledged_and_idle() {
        let mut t = SlotTable::new(8, 1024);
        t.set_target(4);
        assert_eq!(t.target_highest_slotid(), 3);
        assert_eq!(t.shrink_if_acknowledged(7), 8, "client still uses slot 7");
        assert_eq!(t.shrink_if_acknowledged(4), 8, "client still uses slot 4");
        t.start(6, 1, d("a"), true).unwrap();
        assert_eq!(t.shrink_if_acknowledged(3), 8, "slot 6 is busy");
        t.finish(6, b"r").unwrap();
        assert_eq!(t.cached_bytes(), 1);
        assert_eq!(t.shrink_if_acknowledged(3), 4);
        assert_eq!(t.cached_bytes(), 0);
        assert_eq!(t.highest_slotid(), 3);
        assert_eq!(t.start(6, 2, d("b"), true), Err(SessionError::BadSlot));
        t.set_target(8);
        t.grow_to(8);
        assert_eq!(t.start(6, 1, d("c"), true), Ok(SlotStart::New));
    }
}
