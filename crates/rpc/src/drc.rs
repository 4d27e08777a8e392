//! Duplicate request cache.
//!
//! A retransmitted non-idempotent call (CREATE, REMOVE, RENAME ...) must get the reply of
//! the original execution, not a second execution's spurious error (EEXIST, ENOENT).
//! Entries are keyed by client address, xid, program, version, procedure and a checksum of
//! the arguments (so an xid reused for a different call is not mistaken for a retry), and
//! bounded by count and bytes, oldest evicted first.
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

/// What identifies a call for the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DrcKey {
    /// Client address (the port may change on reconnect, so only the IP counts).
    pub client: IpAddr,
    /// Transaction id.
    pub xid: u32,
    /// Program, version, procedure.
    pub call: (u32, u32, u32),
    /// Checksum of the arguments.
    pub args_sum: u64,
}

impl DrcKey {
    /// Builds a key, hashing the arguments.
    pub fn new(client: IpAddr, xid: u32, call: (u32, u32, u32), args: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in args.iter().take(1024) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= args.len() as u64;
        Self {
            client,
            xid,
            call,
            args_sum: h,
        }
    }
}

/// State of a cached call.
#[derive(Debug, Clone)]
enum Slot {
    InProgress,
    Done(Arc<Vec<u8>>),
}

/// What the cache says about a call about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// New call: run it, then [`Drc::complete`].
    New,
    /// The same call is running now: drop this copy (the original's reply will answer it).
    InProgress,
    /// Already answered: send this reply again.
    Replay(Arc<Vec<u8>>),
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<DrcKey, Slot>,
    order: VecDeque<DrcKey>,
    bytes: usize,
}

/// Counters of cache activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrcStats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Copies dropped because the original was still running.
    pub in_progress: u64,
    /// Calls not found in the cache.
    pub misses: u64,
}

/// The cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Drc {
    inner: Mutex<Inner>,
    stats: Mutex<DrcStats>,
    max_entries: usize,
    max_bytes: usize,
}

impl Drc {
    /// A cache of at most `max_entries` replies and `max_bytes` of reply data.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::default(),
            stats: Mutex::default(),
            max_entries,
            max_bytes,
        }
    }

    /// Looks a call up before running it; a new call is marked in progress.
    pub fn begin(&self, key: &DrcKey) -> Lookup {
        let mut g = self.inner.lock();
        let r = match g.map.get(key) {
            Some(Slot::InProgress) => Lookup::InProgress,
            Some(Slot::Done(r)) => Lookup::Replay(r.clone()),
            None => {
                g.map.insert(key.clone(), Slot::InProgress);
                g.order.push_back(key.clone());
                Self::evict(&mut g, self.max_entries, self.max_bytes);
                Lookup::New
            }
        };
        drop(g);
        let mut s = self.stats.lock();
        match r {
            Lookup::New => s.misses += 1,
            Lookup::InProgress => s.in_progress += 1,
            Lookup::Replay(_) => s.hits += 1,
        }
        r
    }

    /// Stores the reply of a call begun with [`Drc::begin`].
    pub fn complete(&self, key: &DrcKey, reply: Arc<Vec<u8>>) {
        let mut g = self.inner.lock();
        let len = reply.len();
        if let Some(slot) = g.map.get_mut(key) {
            *slot = Slot::Done(reply);
            g.bytes += len;
        }
        Self::evict(&mut g, self.max_entries, self.max_bytes);
    }

    /// Forgets a call that produced no reply (so a retry runs it again).
    pub fn abandon(&self, key: &DrcKey) {
        let mut g = self.inner.lock();
        if let Some(Slot::InProgress) = g.map.get(key) {
            g.map.remove(key);
        }
    }

    /// Activity counters.
    pub fn stats(&self) -> DrcStats {
        *self.stats.lock()
    }

    fn evict(g: &mut Inner, max_entries: usize, max_bytes: usize) {
        while g.order.len() > max_entries || g.bytes > max_bytes {
            let Some(k) = g.order.pop_front() else { break };
            match g.map.remove(&k) {
                Some(Slot::Done(r)) => g.bytes -= r.len(),
                Some(Slot::InProgress) | None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32, args: &[u8]) -> DrcKey {
        DrcKey::new("127.0.0.1".parse().unwrap(), xid, (100003, 3, 8), args)
    }

    #[test]
    fn retransmission_gets_the_original_reply() {
        let d = Drc::new(10, 1 << 20);
        let k = key(1, b"create x");
        assert_eq!(d.begin(&k), Lookup::New);
        assert_eq!(d.begin(&k), Lookup::InProgress);
        d.complete(&k, Arc::new(b"reply".to_vec()));
        assert_eq!(d.begin(&k), Lookup::Replay(Arc::new(b"reply".to_vec())));
        // Same xid, different arguments: a new call.
        assert_eq!(d.begin(&key(1, b"create y")), Lookup::New);
        assert_eq!(
            d.stats(),
            DrcStats {
                hits: 1,
                in_progress: 1,
                misses: 2
            }
        );
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let d = Drc::new(3, 10);
        for x in 0..5 {
            let k = key(x, b"a");
            d.begin(&k);
            d.complete(&k, Arc::new(vec![0; 4]));
        }
        let g = d.inner.lock();
        assert!(
            g.map.len() <= 3 && g.bytes <= 10,
            "{} entries, {} bytes",
            g.map.len(),
            g.bytes
        );
    }
}
