//! Non-overlapping byte extents of a file, each with a piece of metadata: the building block
//! of the write-back engine (dirty data, data written UNSTABLE and not yet committed).
//!
//! The bytes are [`Slice`]s: splitting an extent, taking it for a WRITE and keeping it
//! until COMMIT share the buffer the application's write was copied into, without copies.
use crate::rpc::buf::Slice;
use std::collections::BTreeMap;

/// A set of non-overlapping extents `offset -> (bytes, meta)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extents<M> {
    map: BTreeMap<u64, (Slice, M)>,
    bytes: u64,
}

impl<M: Clone> Extents<M> {
    pub(crate) fn new() -> Self {
        Self {
            map: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Total bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// One past the last byte held.
    pub(crate) fn end(&self) -> u64 {
        self.map
            .iter()
            .next_back()
            .map_or(0, |(o, (d, _))| o + d.len() as u64)
    }

    /// Removes `[off, off+len)`, splitting extents at the edges; returns the removed pieces.
    pub(crate) fn remove_range(&mut self, off: u64, len: u64) -> Vec<(u64, Slice, M)> {
        let end = off.saturating_add(len);
        let mut out = Vec::new();
        if len == 0 {
            return out;
        }
        // Extents starting before `off` may overlap it; only the last such one can.
        let first = self.map.range(..off).next_back().map(|(o, _)| *o);
        let mut keys: Vec<u64> = first.into_iter().collect();
        keys.extend(self.map.range(off..end).map(|(o, _)| *o));
        for k in keys {
            let Some((data, meta)) = self.map.remove(&k) else {
                continue;
            };
            let e_end = k + data.len() as u64;
            if e_end <= off || k >= end {
                self.map.insert(k, (data, meta));
                continue;
            }
            self.bytes -= data.len() as u64;
            let cut_from = off.max(k);
            let cut_to = end.min(e_end);
            let a = (cut_from - k) as usize;
            let b = (cut_to - k) as usize;
            if a > 0 {
                self.bytes += a as u64;
                self.map.insert(k, (data.sub(0, a), meta.clone()));
            }
            if b < data.len() {
                self.bytes += (data.len() - b) as u64;
                self.map
                    .insert(cut_to, (data.sub(b, data.len() - b), meta.clone()));
            }
            out.push((cut_from, data.sub(a, b - a), meta));
        }
        out
    }

    /// Stores `data` at `off`, replacing whatever was there.
    pub(crate) fn insert(&mut self, off: u64, data: Slice, meta: M) {
        if data.is_empty() {
            return;
        }
        self.remove_range(off, data.len() as u64);
        self.bytes += data.len() as u64;
        self.map.insert(off, (data, meta));
    }

    /// The parts of `[off, off+len)` not covered by any extent.
    pub(crate) fn gaps(&self, off: u64, len: u64) -> Vec<(u64, u64)> {
        let end = off.saturating_add(len);
        let mut gaps = Vec::new();
        let mut pos = off;
        let start = self
            .map
            .range(..off)
            .next_back()
            .map(|(o, _)| *o)
            .unwrap_or(off);
        for (o, (d, _)) in self.map.range(start..end) {
            let e_end = o + d.len() as u64;
            if e_end <= pos {
                continue;
            }
            if *o > pos {
                gaps.push((pos, *o - pos));
            }
            pos = pos.max(e_end);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            gaps.push((pos, end - pos));
        }
        gaps
    }

    /// Stores the parts of `data` at `off` that no extent covers (older data under newer).
    pub(crate) fn fill_gaps(&mut self, off: u64, data: &Slice, meta: M) {
        for (g, l) in self.gaps(off, data.len() as u64) {
            let a = (g - off) as usize;
            self.insert(g, data.sub(a, l as usize), meta.clone());
        }
    }

    /// Copies held bytes that fall in `[off, off+buf.len())` into `buf`.
    pub(crate) fn overlay(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        let start = self
            .map
            .range(..off)
            .next_back()
            .map(|(o, _)| *o)
            .unwrap_or(off);
        for (o, (d, _)) in self.map.range(start..end) {
            let e_end = o + d.len() as u64;
            let from = off.max(*o);
            let to = end.min(e_end);
            if from >= to {
                continue;
            }
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&d[(from - o) as usize..(to - o) as usize]);
        }
    }

    /// Removes and returns the first run of contiguous extents, at most `max` bytes, that
    /// `pick` accepts (given the run's offset, length and the metadata of its extents).
    pub(crate) fn take_run(
        &mut self,
        max: usize,
        mut pick: impl FnMut(u64, usize, &[&M]) -> bool,
    ) -> Option<(u64, Slice, Vec<M>)> {
        let mut runs: Vec<(u64, usize)> = Vec::new();
        for (o, (d, _)) in &self.map {
            match runs.last_mut() {
                Some((ro, rl)) if *ro + *rl as u64 == *o && *rl < max => *rl += d.len(),
                _ => runs.push((*o, d.len())),
            }
        }
        for (ro, rl) in runs {
            let len = rl.min(max);
            let metas: Vec<&M> = self
                .map
                .range(ro..ro + len as u64)
                .map(|(_, (_, m))| m)
                .collect();
            if pick(ro, len, &metas) {
                let mut pieces = self.remove_range(ro, len as u64);
                if pieces.len() == 1 {
                    // one extent (an application write of wsize or more): no copy
                    let (_, d, m) = pieces.remove(0);
                    return Some((ro, d, vec![m]));
                }
                let mut data = Vec::with_capacity(len);
                let mut ms = Vec::new();
                for (_, d, m) in pieces {
                    data.extend_from_slice(&d);
                    ms.push(m);
                }
                return Some((ro, Slice::from_vec(data), ms));
            }
        }
        None
    }

    /// Drops everything at or beyond `len`.
    pub(crate) fn truncate(&mut self, len: u64) {
        self.remove_range(len, u64::MAX - len);
    }

    /// Removes the extents `drop` selects.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &M) -> bool) -> Vec<(u64, Slice, M)> {
        let keys: Vec<u64> = self
            .map
            .iter()
            .filter(|(o, (_, m))| !keep(**o, m))
            .map(|(o, _)| *o)
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some((d, m)) = self.map.remove(&k) {
                self.bytes -= d.len() as u64;
                out.push((k, d, m));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn flat(e: &Extents<u8>, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        e.overlay(0, &mut b);
        b
    }

    #[test]
    fn insert_overwrites_and_splits() {
        let mut e = Extents::new();
        e.insert(0, Slice::from_vec(vec![1; 10]), 0u8);
        e.insert(4, Slice::from_vec(vec![2; 2]), 1);
        assert_eq!(flat(&e, 12), vec![1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0]);
        assert_eq!(e.bytes(), 10);
        assert_eq!(e.len(), 3);
        let r = e.remove_range(3, 5);
        assert_eq!(r.iter().map(|p| p.1.len()).sum::<usize>(), 5);
        assert_eq!(e.bytes(), 5);
        assert_eq!(e.gaps(0, 12), vec![(3, 5), (10, 2)]);
        e.fill_gaps(0, &Slice::from_vec(vec![9; 12]), 2);
        assert_eq!(flat(&e, 12), vec![1, 1, 1, 9, 9, 9, 9, 9, 1, 1, 9, 9]);
        e.truncate(9);
        assert_eq!(e.end(), 9);
        assert_eq!(e.bytes(), 9);
    }

    #[test]
    fn runs_are_contiguous_and_bounded() {
        let mut e = Extents::new();
        e.insert(0, Slice::from_vec(vec![1; 3]), 0u8);
        e.insert(3, Slice::from_vec(vec![2; 3]), 0);
        e.insert(10, Slice::from_vec(vec![3; 3]), 0);
        let (o, d, _) = e.take_run(4, |_, _, _| true).unwrap();
        assert_eq!((o, &d[..]), (0, &[1, 1, 1, 2][..]));
        let (o, d, _) = e.take_run(4, |_, l, _| l == 2).unwrap();
        assert_eq!((o, &d[..]), (4, &[2, 2][..]));
        assert_eq!(e.bytes(), 3);
    }
}
