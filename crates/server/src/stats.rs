//! Server statistics (seed entry 18): calls per procedure, errors by status, bytes moved.
use rnfs_proto::{mount3, nfs3};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters, updated lock-free on every call.
#[derive(Debug, Default)]
pub struct Stats {
    nfs_calls: [AtomicU64; 22],
    nfs_errors: [AtomicU64; 22],
    mount_calls: [AtomicU64; 6],
    bad_calls: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    status_counts: parking_lot::Mutex<std::collections::BTreeMap<u32, u64>>,
    handles: HandleCounters,
}

/// Handle checks and searches for unknown keys (see [`crate::search`]).
#[derive(Debug, Default)]
struct HandleCounters {
    mac_failures: AtomicU64,
    searches_started: AtomicU64,
    searches_given_up: AtomicU64,
    searches_refused: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// NFSv3 calls by procedure number.
    pub nfs_calls: Vec<u64>,
    /// NFSv3 replies with a status other than NFS3_OK, by procedure number.
    pub nfs_errors: Vec<u64>,
    /// MOUNT calls by procedure number.
    pub mount_calls: Vec<u64>,
    /// Calls refused at the RPC level (malformed, bad version, bad credentials).
    pub bad_calls: u64,
    /// Bytes returned by READ.
    pub read_bytes: u64,
    /// Bytes accepted by WRITE.
    pub written_bytes: u64,
    /// Replies by NFSv3 status (only non-OK statuses).
    pub by_status: Vec<(u32, u64)>,
    /// Handles refused unchecked: not of our format, or their MAC tag did not match
    /// (forged or damaged).
    pub handle_mac_failures: u64,
    /// Searches started for keys the backend did not know.
    pub searches_started: u64,
    /// Searches given up at their limit (directories or time).
    pub searches_given_up: u64,
    /// Calls answered JUKEBOX because the client (or the server) had too many searches.
    pub searches_refused: u64,
}

impl Stats {
    /// Counts an NFSv3 reply, reading its status from the encoded reply.
    pub fn nfs_reply(&self, p: nfs3::Proc, reply: &[u8]) {
        // Header: xid, REPLY, MSG_ACCEPTED, verifier (flavour, empty body), accept_stat.
        // A call whose arguments did not decode is a bad call, not a call of `p`.
        if reply.len() < 24 || reply[20..24] != [0, 0, 0, 0] {
            self.rpc_bad_calls();
            return;
        }
        let i = p as usize;
        self.nfs_calls[i].fetch_add(1, Relaxed);
        // Our replies carry an AUTH_NONE verifier: the status follows 24 header bytes.
        if p != nfs3::Proc::Null && reply.len() >= 28 {
            let st = u32::from_be_bytes([reply[24], reply[25], reply[26], reply[27]]);
            if st != 0 {
                self.nfs_errors[i].fetch_add(1, Relaxed);
                *self.status_counts.lock().entry(st).or_default() += 1;
            }
        }
    }
    /// Counts a MOUNT call.
    pub fn mount_call(&self, p: mount3::Proc) {
        self.mount_calls[p as usize].fetch_add(1, Relaxed);
    }
    /// Counts a call refused before reaching a program.
    pub fn rpc_bad_calls(&self) {
        self.bad_calls.fetch_add(1, Relaxed);
    }
    /// Counts bytes read.
    pub fn bytes_read(&self, n: usize) {
        self.read_bytes.fetch_add(n as u64, Relaxed);
    }
    /// Counts bytes written.
    pub fn bytes_written(&self, n: usize) {
        self.written_bytes.fetch_add(n as u64, Relaxed);
    }
    /// Counts a handle refused: not of our format, or its MAC tag did not match.
    pub fn handle_mac_failure(&self) {
        self.handles.mac_failures.fetch_add(1, Relaxed);
    }
    /// Counts a search started.
    pub fn search_started(&self) {
        self.handles.searches_started.fetch_add(1, Relaxed);
    }
    /// Counts a search given up at its limit.
    pub fn search_given_up(&self) {
        self.handles.searches_given_up.fetch_add(1, Relaxed);
    }
    /// Counts a search refused by a cap.
    pub fn search_refused(&self) {
        self.handles.searches_refused.fetch_add(1, Relaxed);
    }
    /// A consistent-enough copy for display.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            nfs_calls: self.nfs_calls.iter().map(|c| c.load(Relaxed)).collect(),
            nfs_errors: self.nfs_errors.iter().map(|c| c.load(Relaxed)).collect(),
            mount_calls: self.mount_calls.iter().map(|c| c.load(Relaxed)).collect(),
            bad_calls: self.bad_calls.load(Relaxed),
            read_bytes: self.read_bytes.load(Relaxed),
            written_bytes: self.written_bytes.load(Relaxed),
            by_status: self
                .status_counts
                .lock()
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            handle_mac_failures: self.handles.mac_failures.load(Relaxed),
            searches_started: self.handles.searches_started.load(Relaxed),
            searches_given_up: self.handles.searches_given_up.load(Relaxed),
            searches_refused: self.handles.searches_refused.load(Relaxed),
        }
    }
}
