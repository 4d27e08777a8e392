//! Searching for objects whose keys the backend does not know, within bounds.
//!
//! After a restart, or when a file was moved behind the server's back, a valid handle can
//! name an object the backend cannot place from its key alone
//! ([`rnfs_vfs::Backend::needs_search`]). Finding it means walking the export, which costs
//! time in proportion to its size, so a client must not be able to make the server do it
//! at will. The handle MAC ([`crate::handle`]) keeps forged keys from ever getting here;
//! what is left (handles of removed files, a restart under many clients) is bounded here:
//! - the search never runs on a connection's task: a call that needs one and was tried
//!   there is run again on the blocking pool ([`crate::Req::defer`]);
//! - each search reads at most [`SearchConfig::max_dirs`] directories and gives up after
//!   [`SearchConfig::max_time`] (a handle given up on is STALE, as one of a removed file);
//! - at most [`SearchConfig::per_client`] searches run at once for one client address, and
//!   [`SearchConfig::total`] in all. A call beyond either cap is answered NFS3ERR_JUKEBOX
//!   (RFC 1813 section 2.6: "the server initiated the request, but was not able to
//!   complete it in a timely fashion"): the condition is passing, and the client retries
//!   after a delay, by which time the searches before it have filled the backend's name
//!   map. STALE would be final: the client would drop a handle that is valid.
//!
//! A key searched for in vain is remembered by the backend for a few seconds, so replaying
//! a stale handle does not walk the export again.
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Bounds on searching for keys the backend does not know (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchConfig {
    /// Most directories one search reads.
    pub max_dirs: usize,
    /// Longest one search runs.
    pub max_time: Duration,
    /// Most searches running at once for one client address.
    pub per_client: usize,
    /// Most searches running at once in all (each holds a blocking thread).
    pub total: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            max_dirs: 100_000,
            max_time: Duration::from_secs(2),
            per_client: 2,
            total: 8,
        }
    }
}

/// The searches running, by client address.
#[derive(Debug, Default)]
pub(crate) struct Searches {
    /// (searches in all, searches by address): an address is listed while it has one.
    running: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A search's place under the caps; given back on drop.
pub(crate) struct Permit<'a> {
    searches: &'a Searches,
    ip: IpAddr,
}

impl Searches {
    /// A place for a search by `ip`, unless that would pass a cap of `cfg`.
    pub(crate) fn admit(&self, ip: IpAddr, cfg: &SearchConfig) -> Option<Permit<'_>> {
        let mut g = self.running.lock();
        let (total, by_ip) = &mut *g;
        let mine = by_ip.get(&ip).copied().unwrap_or(0);
        if *total >= cfg.total || mine >= cfg.per_client {
            return None;
        }
        *total += 1;
        by_ip.insert(ip, mine + 1);
        Some(Permit { searches: self, ip })
    }

    /// Searches running now.
    pub(crate) fn running(&self) -> usize {
        self.running.lock().0
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut g = self.searches.running.lock();
        let (total, by_ip) = &mut *g;
        *total = total.saturating_sub(1);
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn searches_are_capped_per_client_and_in_all() {
        let cfg = SearchConfig {
            per_client: 2,
            total: 3,
            ..Default::default()
        };
        let s = Searches::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = s.admit(a, &cfg).unwrap();
        let a2 = s.admit(a, &cfg).unwrap();
        assert!(s.admit(a, &cfg).is_none(), "a third for one client");
        let b1 = s.admit(b, &cfg).unwrap();
        assert!(s.admit(c, &cfg).is_none(), "a fourth in all");
        assert_eq!(s.running(), 3);
        drop(a1);
        assert!(s.admit(c, &cfg).is_some(), "a place freed");
        drop((a2, b1));
        assert_eq!(s.running(), 0);
        assert!(s.running.lock().1.is_empty(), "no address kept");
    }
}
