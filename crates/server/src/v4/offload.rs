//! Asynchronous COPY (RFC 7862 sections 4.4, 15.2.3, 15.8, 15.9, 16.1): a copy larger
//! than [`ASYNC_MIN`] that the client did not ask to be synchronous runs on a thread of
//! its own; COPY answers at once with a copy stateid, OFFLOAD_STATUS reports its progress,
//! OFFLOAD_CANCEL stops it, and CB_OFFLOAD tells the client its end over the session's
//! back channel.
//!
//! Bounds (a gauge and counters in the NFSv4 metrics): at most [`MAX_RUNNING_PER_CLIENT`]
//! copies have a thread per client and [`MAX_RUNNING`] in all (a thread lives until its
//! CB_OFFLOAD is answered or given up); past them, and for a client without a verified
//! back channel, COPY copies synchronously (its bounded piece, see `ops::copy`). Finished
//! copies are remembered for OFFLOAD_STATUS, at most [`MAX_DONE_PER_CLIENT`] per client
//! (the oldest forgotten first; OFFLOAD_CANCEL forgets one). A client's copies are
//! cancelled and forgotten when its state goes.
use super::state::ids::{ClientId, Stateid};
use parking_lot::Mutex;
use rnfs_vfs::{Backend, Ctx, FileKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Smallest copy run asynchronously (when the client allows it).
pub const ASYNC_MIN: u64 = 64 << 20;
/// Most asynchronous copies running per client.
pub const MAX_RUNNING_PER_CLIENT: usize = 2;
/// Most asynchronous copies running in all (each holds a thread).
pub const MAX_RUNNING: usize = 8;
/// Most finished copies remembered per client.
pub const MAX_DONE_PER_CLIENT: usize = 16;
/// Bytes per backend call of an asynchronous copy (the cancel flag is read between).
const STEP: u64 = 16 << 20;

/// What an asynchronous copy is to do (COPY's arguments, checked).
pub struct CopyJob {
    /// The backend of the export holding both files.
    pub fs: Arc<dyn Backend>,
    /// The caller's identity for the backend.
    pub ctx: Ctx,
    /// Source file.
    pub src: FileKey,
    /// Destination file.
    pub dst: FileKey,
    /// Source offset.
    pub src_off: u64,
    /// Destination offset.
    pub dst_off: u64,
    /// Bytes to copy.
    pub len: u64,
    /// The destination's wire handle, for CB_OFFLOAD.
    pub dst_fh: Vec<u8>,
}

/// One copy, running or finished.
struct Entry {
    client: ClientId,
    stateid: Stateid,
    copied: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    /// `None` while it runs; the status it ended with (0: done).
    end: Option<u32>,
    /// Its thread still runs (copying, or sending CB_OFFLOAD): it counts against the
    /// bounds, and stays remembered, until [`Offloads::retire`].
    alive: bool,
    /// When it finished (for forgetting the oldest), from a counter.
    order: u64,
}

/// The asynchronous copies of a server.
#[derive(Default)]
pub struct Offloads {
    copies: Mutex<HashMap<[u8; 12], Entry>>,
    next: AtomicU64,
    /// Copies started asynchronously.
    pub started: AtomicU64,
    /// Copies that ended (done, failed or cancelled).
    pub ended: AtomicU64,
    /// Copies cancelled by OFFLOAD_CANCEL or with their client.
    pub cancelled: AtomicU64,
    /// CB_OFFLOADs the client did not take (no path, refused).
    pub cb_failed: AtomicU64,
}

/// What OFFLOAD_STATUS reports: bytes copied so far, and the end status once ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `osr_count`.
    pub copied: u64,
    /// `osr_complete`: `None` while running.
    pub end: Option<u32>,
}

/// Why an offload operation found no copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCopy;

impl Offloads {
    /// Copies whose thread runs now, copying or telling the client its end (gauge).
    pub fn running(&self) -> usize {
        self.copies.lock().values().filter(|e| e.alive).count()
    }

    /// Registers a copy for `client` if the bounds allow: its stateid, its progress counter
    /// and cancel flag. `boot` makes stateids of this server instance distinct from those
    /// of an earlier one.
    pub(crate) fn register(
        &self,
        client: ClientId,
        boot: u32,
    ) -> Option<(Stateid, Arc<AtomicU64>, Arc<AtomicBool>)> {
        let mut m = self.copies.lock();
        let running = m.values().filter(|e| e.alive);
        let (mut all, mut mine) = (0, 0);
        for e in running {
            all += 1;
            if e.client == client {
                mine += 1;
            }
        }
        if all >= MAX_RUNNING || mine >= MAX_RUNNING_PER_CLIENT {
            return None;
        }
        let n = self.next.fetch_add(1, Relaxed) + 1;
        let mut other = [0u8; 12];
        // "CP" marks copy stateids; the boot and a counter make them unique.
        other[..2].copy_from_slice(b"CP");
        other[2..4].copy_from_slice(&(boot as u16).to_be_bytes());
        other[4..].copy_from_slice(&n.to_be_bytes());
        let stateid = Stateid { seqid: 1, other };
        let copied = Arc::new(AtomicU64::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        m.insert(
            other,
            Entry {
                client,
                stateid,
                copied: copied.clone(),
                cancel: cancel.clone(),
                end: None,
                alive: true,
                order: 0,
            },
        );
        self.started.fetch_add(1, Relaxed);
        Some((stateid, copied, cancel))
    }

    /// The copy ended with `status` (its thread then tells the client, and retires).
    pub(crate) fn finish(&self, sid: &Stateid, status: u32) {
        let mut m = self.copies.lock();
        let order = self.next.fetch_add(1, Relaxed) + 1;
        if let Some(e) = m.get_mut(&sid.other) {
            e.end = Some(status);
            e.order = order;
            self.ended.fetch_add(1, Relaxed);
        }
    }

    /// The thread of copy `sid` is done (its CB_OFFLOAD sent or given up): its place is
    /// free, and it is remembered as a finished copy (within [`MAX_DONE_PER_CLIENT`]).
    pub(crate) fn retire(&self, sid: &Stateid) {
        let mut m = self.copies.lock();
        let Some(e) = m.get_mut(&sid.other) else {
            return;
        };
        e.alive = false;
        let client = e.client;
        let mut done: Vec<_> = m
            .values()
            .filter(|e| e.client == client && !e.alive)
            .map(|e| (e.order, e.stateid.other))
            .collect();
        if done.len() > MAX_DONE_PER_CLIENT {
            done.sort_unstable();
            for (_, k) in done.iter().take(done.len() - MAX_DONE_PER_CLIENT) {
                m.remove(k);
            }
        }
    }

    /// OFFLOAD_STATUS of `client`'s copy `sid`.
    pub fn status(&self, client: ClientId, sid: &Stateid) -> Result<Progress, UnknownCopy> {
        let m = self.copies.lock();
        match m.get(&sid.other) {
            Some(e) if e.client == client => Ok(Progress {
                copied: e.copied.load(Relaxed),
                end: e.end,
            }),
            _ => Err(UnknownCopy),
        }
    }

    /// OFFLOAD_CANCEL of `client`'s copy `sid`: a running one stops at its next piece (and
    /// still sends its CB_OFFLOAD); a finished one is forgotten.
    pub fn cancel(&self, client: ClientId, sid: &Stateid) -> Result<(), UnknownCopy> {
        let mut m = self.copies.lock();
        match m.get(&sid.other) {
            Some(e) if e.client == client => {
                if e.end.is_some() {
                    if !e.alive {
                        m.remove(&sid.other);
                    }
                } else if !e.cancel.swap(true, Relaxed) {
                    self.cancelled.fetch_add(1, Relaxed);
                }
                Ok(())
            }
            _ => Err(UnknownCopy),
        }
    }

    /// The copies of clients `known` says are gone: running ones stop, finished ones are
    /// forgotten (the laundromat, each tick).
    pub fn prune(&self, known: impl Fn(ClientId) -> bool) {
        let mut m = self.copies.lock();
        m.retain(|_, e| {
            if known(e.client) {
                return true;
            }
            if e.end.is_none() && !e.cancel.swap(true, Relaxed) {
                self.cancelled.fetch_add(1, Relaxed);
            }
            e.alive // kept until its thread is done
        });
    }
}

/// Runs `job`: copies in pieces of [`STEP`] until done, failed or cancelled. Returns the
/// bytes copied and the status (0, or the nfsstat4 of the failure; a cancelled copy ends
/// with NFS4_OK and what it copied). Called on the copy's own thread.
pub(crate) fn run(job: &CopyJob, copied: &AtomicU64, cancel: &AtomicBool) -> (u64, u32) {
    let mut done = 0u64;
    while done < job.len && !cancel.load(Relaxed) {
        let r = job.fs.copy_range(
            &job.ctx,
            &job.src,
            job.src_off + done,
            &job.dst,
            job.dst_off + done,
            (job.len - done).min(STEP),
        );
        match r {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                copied.store(done, Relaxed);
            }
            Err(e) => return (done, super::error::Nfs4Error::from(e).code()),
        }
    }
    (done, 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn copies_are_bounded_per_client_and_in_all_and_finished_ones_forgotten() {
        let o = Offloads::default();
        let a = ClientId(1);
        let (s1, _, _) = o.register(a, 7).unwrap();
        let (s2, _, c2) = o.register(a, 7).unwrap();
        assert!(o.register(a, 7).is_none(), "two per client");
        assert_ne!(s1, s2);
        for i in 0..(MAX_RUNNING - 2) {
            o.register(ClientId(10 + i as u64), 7).unwrap();
        }
        assert!(o.register(ClientId(99), 7).is_none(), "the total bound");
        assert_eq!(o.running(), MAX_RUNNING);
        // Status and cancel are the owner's only.
        assert_eq!(o.status(ClientId(2), &s1), Err(UnknownCopy));
        assert_eq!(
            o.status(a, &s1),
            Ok(Progress {
                copied: 0,
                end: None
            })
        );
        o.cancel(a, &s2).unwrap();
        assert!(c2.load(Relaxed));
        o.finish(&s1, 0);
        assert_eq!(o.status(a, &s1).unwrap().end, Some(0));
        assert!(
            o.register(a, 7).is_none(),
            "its thread still tells the client"
        );
        o.retire(&s1);
        assert!(o.register(a, 7).is_some(), "a retired copy frees its place");
        // Finished copies: at most MAX_DONE_PER_CLIENT remembered, oldest first forgotten.
        let fresh = Offloads::default();
        let b = ClientId(50);
        let mut all = Vec::new();
        for _ in 0..=MAX_DONE_PER_CLIENT {
            let (s, _, _) = fresh.register(b, 7).unwrap();
            fresh.finish(&s, 0);
            fresh.retire(&s);
            all.push(s);
        }
        assert_eq!(fresh.status(b, &all[0]), Err(UnknownCopy));
        assert!(fresh.status(b, &all[1]).is_ok());
        // OFFLOAD_CANCEL of a finished copy forgets it.
        fresh.cancel(b, &all[1]).unwrap();
        assert_eq!(fresh.status(b, &all[1]), Err(UnknownCopy));
        // A client's state going stops its copies.
        o.prune(|c| c != a);
        assert_eq!(o.status(a, &s1), Err(UnknownCopy));
    }
}
