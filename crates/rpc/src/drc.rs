//! Duplicate request cache.
//!
//! A retransmitted non-idempotent call (CREATE, REMOVE, RENAME ...) must get the reply of
//! the original execution, not a second execution's spurious error (EEXIST, ENOENT).
//!
//! As knfsd compares the whole request, a call matches a cached one only when everything
//! that makes it the same request matches: the client's address *and port*, the xid,
//! program, version and procedure, the credential (flavour and its whole body) and a
//! checksum of the arguments. So a second user on the same host who sends the same xid and
//! arguments (on another connection, or even on the same one with another uid) gets a
//! fresh execution, never the first user's reply; an xid reused for another call is not
//! mistaken for a retry either. A genuine retransmission comes on the same connection or,
//! after a reconnection, from the same source port: Linux's client rebinds the port it had
//! precisely so that the server's reply cache recognises it (RFC 5531 leaves this to the
//! implementations). A client that reconnects from a new port runs its retry afresh, as
//! with knfsd.
//!
//! The cache is bounded by count and bytes (the replies and the credentials kept in the
//! keys), oldest evicted first.
use parking_lot::Mutex;
use rnfs_proto::rpc::OpaqueAuth;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// What identifies a call for the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DrcKey {
    /// Client address and port (see the module documentation for the port).
    pub client: SocketAddr,
    /// Transaction id.
    pub xid: u32,
    /// Program, version, procedure.
    pub call: (u32, u32, u32),
    /// The credential as sent: flavour and whole body (at most 400 bytes, RFC 5531 8.2),
    /// compared byte for byte.
    pub cred: (u32, Vec<u8>),
    /// Checksum of the arguments.
    pub args_sum: u64,
}

impl DrcKey {
    /// Builds the key of a call from `client` with credential `cred`, hashing the arguments.
    pub fn new(
        client: SocketAddr,
        cred: &OpaqueAuth,
        xid: u32,
        call: (u32, u32, u32),
        args: &[u8],
    ) -> Self {
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
            cred: (cred.flavor, cred.body.0.clone()),
            args_sum: h,
        }
    }

    /// Bytes this key holds beyond its fixed size (counted against the byte bound).
    fn held(&self) -> usize {
        self.cred.1.len()
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
                g.bytes += key.held();
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

    /// Forgets a call that produced no reply (so a retry runs it again). Its place in the
    /// eviction order goes too: left there, it would evict the entry of the call's next run
    /// early. Searched from the back, where a call just begun stands.
    pub fn abandon(&self, key: &DrcKey) {
        let mut g = self.inner.lock();
        if let Some(Slot::InProgress) = g.map.get(key) {
            g.map.remove(key);
            g.bytes -= key.held();
            if let Some(i) = g.order.iter().rposition(|k| k == key) {
                g.order.remove(i);
            }
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
                Some(Slot::Done(r)) => g.bytes -= r.len() + k.held(),
                Some(Slot::InProgress) => g.bytes -= k.held(),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(uid: u32) -> OpaqueAuth {
        let mut body = vec![0; 20];
        body[12..16].copy_from_slice(&uid.to_be_bytes());
        OpaqueAuth {
            flavor: rnfs_proto::rpc::AUTH_SYS,
            body: rnfs_xdr::Opaque(body),
        }
    }

    fn key_from(client: &str, cred: &OpaqueAuth, xid: u32, args: &[u8]) -> DrcKey {
        DrcKey::new(client.parse().unwrap(), cred, xid, (100003, 3, 8), args)
    }

    fn key(xid: u32, args: &[u8]) -> DrcKey {
        key_from("127.0.0.1:700", &sys(0), xid, args)
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

    /// A call abandoned (deferred to the pool) and begun again holds one place in the
    /// eviction order: the first place, left behind, would evict the second run's reply
    /// when the cache fills, and its retransmission would run the call twice.
    #[test]
    fn an_abandoned_call_begun_again_keeps_its_reply() {
        let d = Drc::new(2, 1 << 20);
        let k = key(1, b"remove x");
        assert_eq!(d.begin(&k), Lookup::New);
        d.abandon(&k);
        assert_eq!(d.begin(&k), Lookup::New);
        d.complete(&k, Arc::new(b"removed".to_vec()));
        // One more call: two entries, within the bound of two.
        assert_eq!(d.begin(&key(2, b"create y")), Lookup::New);
        assert_eq!(d.begin(&k), Lookup::Replay(Arc::new(b"removed".to_vec())));
    }

    #[test]
    fn another_user_or_port_is_another_call() {
        let d = Drc::new(10, 1 << 20);
        let k = key_from("127.0.0.1:700", &sys(1000), 5, b"create x");
        assert_eq!(d.begin(&k), Lookup::New);
        d.complete(&k, Arc::new(b"first".to_vec()));
        // Same host, xid and arguments, another uid: a fresh execution.
        let other_user = key_from("127.0.0.1:700", &sys(1001), 5, b"create x");
        assert_eq!(d.begin(&other_user), Lookup::New);
        // Another flavour with the same body bytes is another credential too.
        let mut none = sys(1000);
        none.flavor = rnfs_proto::rpc::AUTH_NONE;
        let other_flavor = key_from("127.0.0.1:700", &none, 5, b"create x");
        assert_eq!(d.begin(&other_flavor), Lookup::New);
        // Same user from another port (another connection): a fresh execution.
        let other_port = key_from("127.0.0.1:701", &sys(1000), 5, b"create x");
        assert_eq!(d.begin(&other_port), Lookup::New);
        // The retransmission (same port, as after a reconnection from it): the reply.
        let again = key_from("127.0.0.1:700", &sys(1000), 5, b"create x");
        assert_eq!(d.begin(&again), Lookup::Replay(Arc::new(b"first".to_vec())));
    }

    #[test]
    fn credentials_count_against_the_byte_bound() {
        let d = Drc::new(100, 200);
        for x in 0..10 {
            let k = key(x, b"a");
            d.begin(&k);
            d.complete(&k, Arc::new(vec![0; 4]));
        }
        let g = d.inner.lock();
        // Each entry holds 4 reply bytes and a 20-byte credential: at most 8 fit in 200.
        assert_eq!((g.map.len(), g.bytes), (8, 8 * 24));
        drop(g);
        let k = key(99, b"a");
        d.begin(&k);
        d.abandon(&k);
        assert_eq!(
            d.inner.lock().bytes,
            7 * 24,
            "an abandoned call gives its bytes back"
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
