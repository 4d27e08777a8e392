//! A small bounded cache of open descriptors, keyed by file identity, for the local backend.
//!
//! Two of them live in [`crate::local::LocalFs`]: one of directory `O_PATH` descriptors (so a
//! call on a file in a hot directory does not walk the export from its root) and one of
//! regular files open for I/O (so READ, WRITE and COMMIT do not locate, open and close the
//! file every time; knfsd's "filecache" does the same).
//!
//! Correctness rules, which the callers rely on:
//! - An entry is only trusted for [`REVALIDATE`] after the object was last located from the
//!   export root; after that, [`FdCache::get`] misses and the caller locates it again (which
//!   proves the object is still inside the export) and re-inserts it. A rename done behind
//!   our back, for example out of the export, is thus noticed within that time.
//! - Every change made through the backend that can end an object's life (REMOVE, RMDIR,
//!   RENAME over it) calls [`FdCache::invalidate`], which also bumps an epoch: an insert
//!   prepared before the invalidation (a call that located the object before it was
//!   removed) is refused, so a removed file is never kept open by the cache.
//! - The callers still check each hit with a `statx` of the descriptor (a link count of zero
//!   means the object was removed behind our back).
//! - The number of entries is bounded; the least recently used one is closed to make room,
//!   and [`FdCache::sweep`] closes entries idle for longer than a limit.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long an entry is trusted after its object was located from the export root.
pub(crate) const REVALIDATE: Duration = Duration::from_secs(1);

/// (dev, ino) of the object.
pub(crate) type Id = (u64, u64);

struct Slot<T> {
    val: Arc<T>,
    gen: u32,
    validated: Instant,
    last_used: Instant,
    tick: u64,
}

struct Inner<T> {
    map: HashMap<Id, Slot<T>>,
    tick: u64,
    epoch: u64,
}

/// See the module documentation.
pub(crate) struct FdCache<T> {
    inner: Mutex<Inner<T>>,
    cap: usize,
}

impl<T> FdCache<T> {
    /// A cache of at most `cap` entries (at least 1).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::with_capacity(cap.max(1)),
                tick: 0,
                epoch: 0,
            }),
            cap: cap.max(1),
        }
    }

    /// The entry for `id` of generation `gen`, if one was validated recently.
    pub(crate) fn get(&self, id: Id, gen: u32) -> Option<Arc<T>> {
        self.get_with(id, Some(gen))
    }

    /// The entry for `id`, whatever its generation, if one was validated recently.
    pub(crate) fn get_any(&self, id: Id) -> Option<Arc<T>> {
        self.get_with(id, None)
    }

    fn get_with(&self, id: Id, gen: Option<u32>) -> Option<Arc<T>> {
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let s = g.map.get_mut(&id)?;
        if gen.is_some_and(|x| x != s.gen) || s.validated.elapsed() >= REVALIDATE {
            return None;
        }
        s.tick = tick;
        s.last_used = Instant::now();
        Some(s.val.clone())
    }

    /// The current epoch: read it before locating an object, pass it to [`FdCache::insert`].
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Caches `val` for `(id, gen)`, just located, unless something was invalidated since
    /// `epoch` was read. Makes room by closing the least recently used entry.
    pub(crate) fn insert(&self, id: Id, gen: u32, val: Arc<T>, epoch: u64) {
        let mut g = self.inner.lock();
        if g.epoch != epoch {
            return;
        }
        if !g.map.contains_key(&id) && g.map.len() >= self.cap {
            let oldest = g.map.iter().min_by_key(|(_, s)| s.tick).map(|(k, _)| *k);
            if let Some(k) = oldest {
                g.map.remove(&k);
            }
        }
        g.tick += 1;
        let now = Instant::now();
        let slot = Slot {
            val,
            gen,
            validated: now,
            last_used: now,
            tick: g.tick,
        };
        g.map.insert(id, slot);
    }

    /// Drops the entry of `id` (its object was removed or renamed) and refuses inserts
    /// prepared before now.
    pub(crate) fn invalidate(&self, id: Id) {
        let old = {
            let mut g = self.inner.lock();
            g.epoch += 1;
            g.map.remove(&id)
        };
        drop(old); // closed outside the lock
    }

    /// Closes entries unused for `idle` or more.
    pub(crate) fn sweep(&self, idle: Duration) {
        let mut gone = Vec::new();
        {
            let mut g = self.inner.lock();
            let old: Vec<Id> = g
                .map
                .iter()
                .filter(|(_, s)| s.last_used.elapsed() >= idle)
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                if let Some(s) = g.map.remove(&k) {
                    gone.push(s);
                }
            }
        }
        drop(gone);
    }

    /// Closes the entries for which `keep` is false (called without the lock held, so
    /// `keep` may make system calls).
    ///
    /// The snapshot holds weak references only, and each entry is held strongly just for
    /// its own `keep`: had it held all of them, a file removed (and invalidated) meanwhile
    /// would stay open, its space not freed, until the walk ended, after its REMOVE answered.
    pub(crate) fn retain(&self, keep: impl Fn(&T) -> bool) {
        let snapshot: Vec<(Id, Weak<T>)> = {
            let g = self.inner.lock();
            g.map
                .iter()
                .map(|(k, s)| (*k, Arc::downgrade(&s.val)))
                .collect()
        };
        for (id, w) in snapshot {
            let Some(v) = w.upgrade() else { continue };
            if !keep(&v) {
                let old = {
                    let mut g = self.inner.lock();
                    if g.map.get(&id).is_some_and(|s| Arc::ptr_eq(&s.val, &v)) {
                        g.map.remove(&id)
                    } else {
                        None
                    }
                };
                drop(old); // closed outside the lock
            }
        }
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Every value held now.
    #[cfg(test)]
    pub(crate) fn values(&self) -> Vec<Arc<T>> {
        self.inner
            .lock()
            .map
            .values()
            .map(|s| s.val.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lru_and_generation() {
        let c = FdCache::new(2);
        let e = c.epoch();
        c.insert((1, 1), 7, Arc::new(1), e);
        c.insert((1, 2), 7, Arc::new(2), e);
        assert_eq!(c.get((1, 1), 7).as_deref(), Some(&1)); // (1,2) is now the oldest
        c.insert((1, 3), 7, Arc::new(3), e);
        assert_eq!(c.len(), 2);
        assert!(c.get((1, 2), 7).is_none());
        assert!(
            c.get((1, 1), 8).is_none(),
            "another generation is another file"
        );
        assert_eq!(c.get_any((1, 1)).as_deref(), Some(&1));
    }

    #[test]
    fn an_insert_prepared_before_an_invalidation_is_refused() {
        let c = FdCache::new(4);
        let e = c.epoch();
        c.invalidate((1, 1)); // e.g. a REMOVE finished while a READ was opening the file
        c.insert((1, 1), 0, Arc::new(()), e);
        assert_eq!(c.len(), 0);
        c.insert((1, 1), 0, Arc::new(()), c.epoch());
        assert_eq!(c.len(), 1);
        c.invalidate((1, 1));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn retain_holds_no_other_entry_open_while_it_checks_one() {
        let c = FdCache::new(4);
        let (a, b) = (Arc::new(1), Arc::new(2));
        c.insert((1, 1), 0, a.clone(), c.epoch());
        c.insert((1, 2), 0, b.clone(), c.epoch());
        let (wa, wb) = (Arc::downgrade(&a), Arc::downgrade(&b));
        drop((a, b));
        let checked = std::cell::Cell::new(0);
        c.retain(|v| {
            checked.set(checked.get() + 1);
            // The entry not being checked is held by the cache alone (or, checked first
            // and dropped, by no one: the map's order is arbitrary): a REMOVE that
            // invalidated it now would close it at once.
            let other = if *v == 1 { &wb } else { &wa };
            assert!(
                other.strong_count() <= 1,
                "retain holds entry {v}'s neighbour ({} holders)",
                other.strong_count()
            );
            *v != 1
        });
        assert_eq!(checked.get(), 2);
        assert_eq!(c.len(), 1);
        assert_eq!(wa.strong_count(), 0, "the entry retain dropped is closed");
    }

    #[test]
    fn sweep_closes_idle_entries() {
        let c = FdCache::new(4);
        c.insert((1, 1), 0, Arc::new(()), c.epoch());
        c.sweep(Duration::from_secs(3600));
        assert_eq!(c.len(), 1);
        c.sweep(Duration::ZERO);
        assert_eq!(c.len(), 0);
    }
}
