//! The byte-range lock table with POSIX semantics, shared by NFSv4 (LOCK, LOCKT, LOCKU) and,
//! later, NLM for NFSv3.
//!
//! Each owner holds, per file, a sorted list of disjoint ranges, each READ or WRITE. Locking
//! a range replaces whatever the owner held in it (so an upgrade, a downgrade and a split
//! are one rule), then joins neighbours of the same type that touch or overlap (merge), as
//! `fcntl(F_SETLK)` does. Two owners conflict when their ranges overlap and at least one of
//! the two is WRITE. A request that conflicts, or that would make the owner hold more ranges
//! than the caller's budget allows, changes nothing.
//!
//! The owner is generic ([`RangeOwner`]): an NFSv4 lock owner (client id + opaque owner) or
//! an NLM owner (host + svid), so that v3 and v4 locks exclude each other in one table.
use super::ids::ClientId;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Who holds a byte-range lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RangeOwner {
    /// An NFSv4 `lock_owner4`: the client and its opaque owner (at most 1024 bytes).
    V4 {
        /// The client.
        client: ClientId,
        /// The opaque owner the client chose.
        owner: Vec<u8>,
    },
    /// An NLM owner: the NLM layer's identifier for the client host and the process id
    /// (`svid`) it sent.
    Nlm {
        /// The host, as the NLM layer numbers them.
        host: u64,
        /// The locking process on that host.
        svid: u32,
    },
}

/// A lock's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// Shared (READ_LT / READW_LT).
    Read,
    /// Exclusive (WRITE_LT / WRITEW_LT).
    Write,
}

/// A valid byte range: `start..=end`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (`u64::MAX` for "to the end of the file").
    pub end: u64,
}

/// The offset and length of a LOCK, LOCKT or LOCKU are not a valid range (`NFS4ERR_INVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRange;

impl ByteRange {
    /// The range of a request (RFC 8881 18.10.4): length `u64::MAX` means to the end of the
    /// file; length 0, or an offset + length past 2^64 - 1, is invalid.
    pub fn new(offset: u64, length: u64) -> Result<Self, InvalidRange> {
        if length == 0 {
            return Err(InvalidRange);
        }
        if length == u64::MAX {
            return Ok(Self {
                start: offset,
                end: u64::MAX,
            });
        }
        match offset.checked_add(length) {
            Some(_) => Ok(Self {
                start: offset,
                end: offset + (length - 1),
            }),
            None => Err(InvalidRange),
        }
    }

    /// The offset and length to report (LOCK4denied): a range to the end reports length
    /// `u64::MAX`.
    pub fn offset_length(&self) -> (u64, u64) {
        if self.end == u64::MAX {
            (self.start, u64::MAX)
        } else {
            (self.start, self.end - self.start + 1)
        }
    }

    fn overlaps(&self, o: &ByteRange) -> bool {
        self.start <= o.end && o.start <= self.end
    }
}

/// One held range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The bytes.
    pub range: ByteRange,
    /// Its type.
    pub kind: LockKind,
}

/// A conflicting lock: the first one found (lowest owner, then lowest offset), and every
/// owner in conflict (so the caller can expire courtesy clients among them and retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner of the lock reported.
    pub owner: RangeOwner,
    /// The lock reported.
    pub held: Held,
    /// Every owner holding a conflicting lock, the reported one included.
    pub owners: Vec<RangeOwner>,
}

/// Why a lock or unlock was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRefusal {
    /// Another owner holds a conflicting lock.
    Conflict(Box<Conflict>),
    /// The owner would hold more ranges than the budget given.
    OverBudget,
}

/// The table: per file, per owner, the ranges held.
#[derive(Debug)]
pub struct RangeTable<F> {
    files: HashMap<F, BTreeMap<RangeOwner, Vec<Held>>>,
    per_owner: HashMap<RangeOwner, usize>,
    total: usize,
}

impl<F> Default for RangeTable<F> {
    fn default() -> Self {
        Self {
            files: HashMap::new(),
            per_owner: HashMap::new(),
            total: 0,
        }
    }
}

impl<F: Clone + Eq + Hash> RangeTable<F> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ranges held in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Ranges `owner` holds over all files.
    pub fn owner_count(&self, owner: &RangeOwner) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    /// Ranges `owner` holds on `file`.
    pub fn held(&self, file: &F, owner: &RangeOwner) -> &[Held] {
        self.files
            .get(file)
            .and_then(|f| f.get(owner))
            .map_or(&[], |v| v.as_slice())
    }

    /// The first lock of another owner that conflicts with `kind` over `range` (LOCKT).
    pub fn test(
        &self,
        file: &F,
        owner: &RangeOwner,
        range: ByteRange,
        kind: LockKind,
    ) -> Option<Conflict> {
        let f = self.files.get(file)?;
        let mut found: Option<Conflict> = None;
        for (o, list) in f.iter().filter(|(o, _)| *o != owner) {
            let hit = list.iter().find(|h| {
                h.range.overlaps(&range) && (h.kind == LockKind::Write || kind == LockKind::Write)
            });
            if let Some(h) = hit {
                match &mut found {
                    None => {
                        found = Some(Conflict {
                            owner: o.clone(),
                            held: *h,
                            owners: vec![o.clone()],
                        })
                    }
                    Some(c) => c.owners.push(o.clone()),
                }
            }
        }
        found
    }

    /// Sets `range` to `kind` for `owner` (LOCK): replaces what the owner held there,
    /// splitting and merging as needed. Refused without change on a conflict, or when the
    /// owner's count of ranges would grow by more than `budget`.
    pub fn lock(
        &mut self,
        file: &F,
        owner: &RangeOwner,
        range: ByteRange,
        kind: LockKind,
        budget: usize,
    ) -> Result<(), RangeRefusal> {
        if let Some(c) = self.test(file, owner, range, kind) {
            return Err(RangeRefusal::Conflict(Box::new(c)));
        }
        self.replace(file, owner, range, Some(kind), budget)
    }

    /// Releases `range` for `owner` (LOCKU): bytes not held are fine. Unlocking the middle
    /// of a range splits it, so this too can need one range of `budget`.
    pub fn unlock(
        &mut self,
        file: &F,
        owner: &RangeOwner,
        range: ByteRange,
        budget: usize,
    ) -> Result<(), RangeRefusal> {
        self.replace(file, owner, range, None, budget)
    }

    /// Drops every range of `owner` on `file`; returns how many.
    pub fn release(&mut self, file: &F, owner: &RangeOwner) -> usize {
        let Some(f) = self.files.get_mut(file) else {
            return 0;
        };
        let n = f.remove(owner).map_or(0, |v| v.len());
        if f.is_empty() {
            self.files.remove(file);
        }
        self.account(owner, n, 0);
        n
    }

    fn replace(
        &mut self,
        file: &F,
        owner: &RangeOwner,
        range: ByteRange,
        kind: Option<LockKind>,
        budget: usize,
    ) -> Result<(), RangeRefusal> {
        let old = self.held(file, owner);
        let new = carve(old, range, kind);
        let (before, after) = (old.len(), new.len());
        if after > before && after - before > budget {
            return Err(RangeRefusal::OverBudget);
        }
        if new.is_empty() {
            self.release(file, owner);
            return Ok(());
        }
        self.files
            .entry(file.clone())
            .or_default()
            .insert(owner.clone(), new);
        self.account(owner, before, after);
        Ok(())
    }

    fn account(&mut self, owner: &RangeOwner, before: usize, after: usize) {
        self.total = self.total - before + after;
        let now = self.owner_count(owner) - before + after;
        if now == 0 {
            self.per_owner.remove(owner);
        } else {
            self.per_owner.insert(owner.clone(), now);
        }
    }
}

/// `list` with `range` cut out, then (when `kind` is given) `range` added as `kind` and
/// neighbours of one type joined. `list` and the result are sorted and disjoint.
fn carve(list: &[Held], range: ByteRange, kind: Option<LockKind>) -> Vec<Held> {
    let mut out = Vec::with_capacity(list.len() + 2);
    for h in list {
        if !h.range.overlaps(&range) {
            out.push(*h);
            continue;
        }
        // Overlap: keep the parts outside `range`. `range.start > h.range.start >= 0` and
        // `range.end < h.range.end <= u64::MAX` make the +-1 safe.
        if h.range.start < range.start {
            out.push(Held {
                range: ByteRange {
                    start: h.range.start,
                    end: range.start - 1,
                },
                kind: h.kind,
            });
        }
        if h.range.end > range.end {
            out.push(Held {
                range: ByteRange {
                    start: range.end + 1,
                    end: h.range.end,
                },
                kind: h.kind,
            });
        }
    }
    if let Some(kind) = kind {
        out.push(Held { range, kind });
    }
    out.sort_by_key(|h| h.range.start);
    let mut merged: Vec<Held> = Vec::with_capacity(out.len());
    for h in out {
        match merged.last_mut() {
            Some(p) if p.kind == h.kind && p.range.end.checked_add(1) == Some(h.range.start) => {
                p.range.end = h.range.end;
            }
            _ => merged.push(h),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(n: u8) -> RangeOwner {
        RangeOwner::V4 {
            client: ClientId(u64::from(n)),
            owner: vec![n],
        }
    }
    fn r(offset: u64, length: u64) -> ByteRange {
        ByteRange::new(offset, length).expect("valid test range")
    }
    fn spans(t: &RangeTable<u32>, o: &RangeOwner) -> Vec<(u64, u64, LockKind)> {
        t.held(&1, o)
            .iter()
            .map(|h| {
                let (off, len) = h.range.offset_length();
                (off, len, h.kind)
            })
            .collect()
    }
    use LockKind::{Read, Write};

    #[test]
    fn range_validation() {
        assert_eq!(ByteRange::new(0, 0), Err(InvalidRange));
        assert_eq!(ByteRange::new(1, u64::MAX).map(|r| r.end), Ok(u64::MAX));
        assert_eq!(ByteRange::new(u64::MAX - 1, 2), Err(InvalidRange));
        assert_eq!(ByteRange::new(10, u64::MAX - 5), Err(InvalidRange));
        assert_eq!(
            ByteRange::new(u64::MAX - 2, 2),
            Ok(ByteRange {
                start: u64::MAX - 2,
                end: u64::MAX - 1
            })
        );
        assert_eq!(r(5, u64::MAX).offset_length(), (5, u64::MAX));
    }

    #[test]
    fn split_on_unlock_and_on_downgrade() {
        let mut t = RangeTable::new();
        let a = owner(1);
        t.lock(&1, &a, r(0, 100), Write, 10).expect("lock");
        t.unlock(&1, &a, r(40, 10), 10).expect("unlock");
        assert_eq!(spans(&t, &a), vec![(0, 40, Write), (50, 50, Write)]);
        // Downgrade in the middle of the first part splits it in three.
        t.lock(&1, &a, r(10, 10), Read, 10).expect("downgrade");
        assert_eq!(
            spans(&t, &a),
            vec![
                (0, 10, Write),
                (10, 10, Read),
                (20, 20, Write),
                (50, 50, Write)
            ]
        );
        assert_eq!(t.total(), 4);
        assert_eq!(t.owner_count(&a), 4);
    }

    #[test]
    fn merge_adjacent_and_overlapping_of_one_type() {
        let mut t = RangeTable::new();
        let a = owner(1);
        t.lock(&1, &a, r(0, 10), Read, 10).expect("lock");
        t.lock(&1, &a, r(10, 10), Read, 10).expect("adjacent");
        assert_eq!(spans(&t, &a), vec![(0, 20, Read)]);
        t.lock(&1, &a, r(15, 20), Read, 10).expect("overlapping");
        assert_eq!(spans(&t, &a), vec![(0, 35, Read)]);
        // Another type next to it does not merge.
        t.lock(&1, &a, r(35, 5), Write, 10).expect("write");
        assert_eq!(spans(&t, &a), vec![(0, 35, Read), (35, 5, Write)]);
        // Upgrading the whole span in place joins everything into one write lock.
        t.lock(&1, &a, r(0, 40), Write, 10).expect("upgrade");
        assert_eq!(spans(&t, &a), vec![(0, 40, Write)]);
        assert_eq!(t.total(), 1);
        // Unlocking all of it leaves nothing, and the table forgets the file.
        t.unlock(&1, &a, r(0, u64::MAX), 10).expect("unlock");
        assert_eq!(t.total(), 0);
        assert!(t.files.is_empty() && t.per_owner.is_empty());
    }

    #[test]
    fn conflicts_report_the_holder_and_every_owner() {
        let mut t = RangeTable::new();
        let (a, b, c) = (owner(1), owner(2), owner(3));
        t.lock(&1, &a, r(0, 10), Read, 10).expect("a");
        t.lock(&1, &b, r(5, 10), Read, 10).expect("readers share");
        let err = t.lock(&1, &c, r(8, 1), Write, 10);
        let Err(RangeRefusal::Conflict(conflict)) = err else {
            panic!("expected a conflict, got {err:?}");
        };
        assert_eq!(conflict.owner, a);
        assert_eq!(conflict.held.range.offset_length(), (0, 10));
        assert_eq!(conflict.held.kind, Read);
        assert_eq!(conflict.owners, vec![a.clone(), b.clone()]);
        assert_eq!(t.held(&1, &c), &[]);
        // Beyond both: granted. Own locks never conflict.
        t.lock(&1, &c, r(15, u64::MAX), Write, 10).expect("c");
        t.lock(&1, &c, r(15, 1), Read, 10).expect("own");
        assert!(t.test(&1, &a, r(100, 1), Read).is_some());
        assert!(t.test(&2, &a, r(100, 1), Write).is_none());
    }

    #[test]
    fn nlm_and_v4_owners_exclude_each_other() {
        let mut t = RangeTable::new();
        let nlm = RangeOwner::Nlm { host: 7, svid: 99 };
        t.lock(&1, &nlm, r(0, 1), Write, 10).expect("nlm");
        assert!(matches!(
            t.lock(&1, &owner(1), r(0, 1), Read, 10),
            Err(RangeRefusal::Conflict(_))
        ));
    }

    #[test]
    fn budget_refuses_growth_without_change() {
        let mut t = RangeTable::new();
        let a = owner(1);
        t.lock(&1, &a, r(0, 100), Write, 1).expect("first");
        assert_eq!(
            t.lock(&1, &a, r(200, 1), Write, 0),
            Err(RangeRefusal::OverBudget)
        );
        assert_eq!(t.unlock(&1, &a, r(10, 1), 0), Err(RangeRefusal::OverBudget));
        assert_eq!(spans(&t, &a), vec![(0, 100, Write)]);
        // Changes that do not grow the count need no budget.
        t.lock(&1, &a, r(0, 100), Read, 0).expect("downgrade all");
        t.unlock(&1, &a, r(0, 10), 0).expect("trim");
        assert_eq!(spans(&t, &a), vec![(10, 90, Read)]);
        assert_eq!(t.total(), 1);
    }

    /// Bytes 0..MODEL; the last index stands for everything from there to 2^64 - 1 (requests
    /// below end before it: offsets under 40, lengths under 10, or to the end).
    const MODEL: usize = 52;

    #[derive(Debug, Clone)]
    enum Op {
        Lock(u8, u64, u64, bool),
        Unlock(u8, u64, u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let len = prop_oneof![1u64..10, Just(u64::MAX)];
        prop_oneof![
            (0u8..3, 0u64..40, len.clone(), any::<bool>())
                .prop_map(|(o, a, l, w)| Op::Lock(o, a, l, w)),
            (0u8..3, 0u64..40, len).prop_map(|(o, a, l)| Op::Unlock(o, a, l)),
        ]
    }

    fn indices(r: ByteRange) -> std::ops::Range<usize> {
        let last = MODEL as u64 - 1;
        r.start as usize..(r.end.min(last) as usize + 1)
    }

    proptest::proptest! {
        /// The table against a byte-by-byte model of POSIX locks: same grants and refusals,
        /// same bytes held, and each owner's list normalised (sorted, disjoint, touching
        /// ranges of one type merged), whatever the sequence of requests.
        #[test]
        fn agrees_with_a_byte_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut t: RangeTable<u32> = RangeTable::new();
            let mut model: [[Option<LockKind>; MODEL]; 3] = [[None; MODEL]; 3];
            for op in ops {
                match op {
                    Op::Lock(o, off, len, w) => {
                        let r = r(off, len);
                        let kind = if w { Write } else { Read };
                        let clash = (0..3usize).filter(|&x| x != usize::from(o)).any(|x| {
                            indices(r).any(|i| match model[x][i] {
                                Some(k) => k == Write || kind == Write,
                                None => false,
                            })
                        });
                        let got = t.lock(&1, &owner(o), r, kind, usize::MAX);
                        proptest::prop_assert_eq!(got.is_err(), clash);
                        if let Err(RangeRefusal::Conflict(c)) = got {
                            // The holder reported really conflicts.
                            proptest::prop_assert!(c.held.range.overlaps(&r));
                            proptest::prop_assert!(c.held.kind == Write || kind == Write);
                            proptest::prop_assert!(c.owners.contains(&c.owner));
                        } else {
                            for i in indices(r) {
                                model[usize::from(o)][i] = Some(kind);
                            }
                        }
                    }
                    Op::Unlock(o, off, len) => {
                        let r = r(off, len);
                        proptest::prop_assert!(t.unlock(&1, &owner(o), r, usize::MAX).is_ok());
                        for i in indices(r) {
                            model[usize::from(o)][i] = None;
                        }
                    }
                }
                let mut total = 0;
                for (x, bytes) in model.iter().enumerate() {
                    let held = t.held(&1, &owner(x as u8));
                    total += held.len();
                    proptest::prop_assert_eq!(t.owner_count(&owner(x as u8)), held.len());
                    let mut seen = [None; MODEL];
                    for (j, h) in held.iter().enumerate() {
                        for i in indices(h.range) {
                            seen[i] = Some(h.kind);
                        }
                        if let Some(n) = held.get(j + 1) {
                            proptest::prop_assert!(h.range.end < n.range.start);
                            proptest::prop_assert!(
                                h.kind != n.kind || h.range.end + 1 < n.range.start,
                                "touching ranges of one type not merged: {:?}", held
                            );
                        }
                    }
                    // A range reaching the model's last index must run to the end: only
                    // to-end requests reach it.
                    if let Some(h) = held.last() {
                        if h.range.end >= MODEL as u64 - 1 {
                            proptest::prop_assert_eq!(h.range.end, u64::MAX);
                        }
                    }
                    proptest::prop_assert_eq!(&seen, bytes);
                }
                proptest::prop_assert_eq!(t.total(), total);
            }
        }
    }
}
