//! The write-back engine of one file: a sans-IO state machine (events in, actions out, time
//! passed in) that owns the file's unwritten data and its write-back errors.
//!
//! Data moves through three states: *dirty* (only here), *in flight* (a WRITE was sent) and
//! *unstable* (the server acknowledged an UNSTABLE WRITE under some write verifier; kept
//! until a COMMIT returns the same verifier). The driver executes [`WbAction`]s and feeds
//! their outcomes back.
//!
//! The error contract (SEED-DIGEST section 1) lives here:
//! - W1: every handle has an [`ErrCursor`] sampled at open; [`WriteBack::check`] reports an
//!   error newer than the cursor exactly once and advances it; a reported error is *seen*.
//! - W2: [`WriteBack::open_cursor`] samples past every seen error.
//! - W3: an unseen error is older than a new handle's cursor, so its first check reports
//!   it; failures are recorded before the data is dropped, so none is lost.
//! - W4: the only early failure of `write()` is [`WriteBack::check`] on its own cursor.
//! - W5: after a failed WRITE the engine enters *sync mode*: one FILE_SYNC WRITE at a time.
//!   It leaves sync mode when a WRITE succeeds or when the error has been reported to a
//!   handle (once the application knows, there is nothing left to be careful about), so a
//!   stale error never keeps a file in synchronous writes.
//! - W6: a WRITE or COMMIT reply whose verifier differs from the one the unstable data was
//!   written under moves that data back to dirty and starts sending it at once.
use crate::error::Error;
use crate::extents::Extents;
use crate::nfs::WriteVerf;
use crate::rpc::buf::Slice;
use crate::types::Stability;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long to wait before retrying after NFS3ERR_JUKEBOX.
pub(crate) const JUKEBOX_DELAY: Duration = Duration::from_millis(500);

fn is_jukebox(e: &Error) -> bool {
    matches!(e, Error::Nfs(crate::types::Status::Jukebox))
}

/// Tuning of the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WbConfig {
    /// Largest WRITE payload.
    pub(crate) wsize: u32,
    /// WRITEs in flight at once per file.
    pub(crate) max_in_flight: usize,
    /// Dirty data older than this is written even if the file is not being flushed.
    pub(crate) dirty_expire: Duration,
}

impl Default for WbConfig {
    fn default() -> Self {
        Self {
            wsize: 1 << 20,
            max_in_flight: 8,
            dirty_expire: Duration::from_secs(5),
        }
    }
}

/// Identifies one WRITE or COMMIT the engine asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OpId(pub u64);

/// What the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WbAction {
    /// A WRITE of `data` at `offset`.
    Write {
        /// Answer with [`WriteBack::on_write_done`] and this id.
        op: OpId,
        /// File offset.
        offset: u64,
        /// Bytes (at most wsize), shared with the engine (which keeps them until the server
        /// has them).
        data: Slice,
        /// Stability to ask for.
        stable: Stability,
    },
    /// A COMMIT of the whole file.
    Commit {
        /// Answer with [`WriteBack::on_commit_done`] and this id.
        op: OpId,
    },
}

/// A successful WRITE reply, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteReply {
    /// Bytes the server wrote (may be short).
    pub(crate) count: u32,
    /// Stability reached.
    pub(crate) committed: Stability,
    /// The server's verifier.
    pub(crate) verf: WriteVerf,
}

/// A handle's position in the file's error sequence (W1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ErrCursor(u64);

/// Counters of one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WbStats {
    /// WRITEs asked for with UNSTABLE.
    pub unstable_writes: u64,
    /// WRITEs asked for with FILE_SYNC (sync mode).
    pub sync_writes: u64,
    /// COMMITs asked for.
    pub commits: u64,
    /// Bytes moved back to dirty because the write verifier changed (W6).
    pub resent_bytes: u64,
    /// Write-back errors recorded.
    pub errors: u64,
}

#[derive(Debug)]
struct InFlight {
    offset: u64,
    data: Slice,
}

/// Unstable data: written under this verifier, by the WRITE with this sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    verf: WriteVerf,
    seq: u64,
}

/// The write-back state of one file.
#[derive(Debug)]
pub(crate) struct WriteBack {
    cfg: WbConfig,
    dirty: Extents<Instant>,
    inflight: BTreeMap<OpId, InFlight>,
    unstable: Extents<Written>,
    /// The COMMIT in flight and the last WRITE sequence number it covers.
    commit: Option<(OpId, u64)>,
    next_op: u64,
    write_seq: u64,
    flushing: bool,
    err_seq: u64,
    seen_upto: u64,
    last_err: Option<Error>,
    sync_mode: bool,
    /// Last time data was written by the application or acknowledged by the server.
    last_activity: Option<Instant>,
    /// The server said JUKEBOX (RFC 1813 2.6: try again later): nothing is sent before.
    retry_at: Option<Instant>,
    /// Unstable bytes from which a COMMIT goes out while writes go on.
    commit_above: u64,
    stats: WbStats,
}

impl WriteBack {
    /// An engine with nothing to write.
    pub(crate) fn new(cfg: WbConfig) -> Self {
        Self {
            cfg,
            dirty: Extents::new(),
            inflight: BTreeMap::new(),
            unstable: Extents::new(),
            commit: None,
            next_op: 0,
            write_seq: 0,
            flushing: false,
            err_seq: 0,
            seen_upto: 0,
            last_err: None,
            sync_mode: false,
            last_activity: None,
            retry_at: None,
            commit_above: u64::MAX,
            stats: WbStats::default(),
        }
    }

    /// Commits in the background, while writes go on, whenever at least `bytes` written
    /// UNSTABLE are not committed yet. Without it a COMMIT waits until everything is
    /// written, so a writer that never pauses holds all its unstable data (kept for W6)
    /// until it must stop, drain its WRITEs and wait for one large COMMIT.
    pub(crate) fn commit_above(&mut self, bytes: u64) {
        self.commit_above = bytes.max(1);
    }

    /// Counters.
    pub(crate) fn stats(&self) -> WbStats {
        self.stats
    }

    /// Whether the engine writes synchronously (W5).
    pub(crate) fn sync_mode(&self) -> bool {
        self.sync_mode
    }

    /// Bytes held: dirty, in flight and unstable (the file's share of cache memory).
    pub(crate) fn held_bytes(&self) -> u64 {
        self.dirty.bytes()
            + self.unstable.bytes()
            + self
                .inflight
                .values()
                .map(|w| w.data.len() as u64)
                .sum::<u64>()
    }

    /// Bytes written UNSTABLE and not yet covered by a COMMIT (what a server restart
    /// would make the engine send again, W6).
    pub(crate) fn uncommitted_bytes(&self) -> u64 {
        self.unstable.bytes()
    }

    /// Bytes not yet acknowledged by the server (dirty or in flight).
    pub(crate) fn unwritten_bytes(&self) -> u64 {
        self.dirty.bytes()
            + self
                .inflight
                .values()
                .map(|w| w.data.len() as u64)
                .sum::<u64>()
    }

    /// Whether every byte written is on stable storage (or its failure was recorded).
    pub(crate) fn is_clean(&self) -> bool {
        self.dirty.is_empty()
            && self.inflight.is_empty()
            && self.unstable.is_empty()
            && self.commit.is_none()
    }

    /// Whether no data waits for a WRITE reply (unstable data may remain).
    pub(crate) fn is_written(&self) -> bool {
        self.dirty.is_empty() && self.inflight.is_empty()
    }

    /// One past the last byte of data the server may not have yet.
    pub(crate) fn local_end(&self) -> u64 {
        let inflight = self
            .inflight
            .values()
            .map(|w| w.offset + w.data.len() as u64)
            .max()
            .unwrap_or(0);
        self.dirty.end().max(inflight)
    }

    /// The cursor for a handle opened now (W2: past every error already seen; W3: before
    /// any unseen one).
    pub(crate) fn open_cursor(&self) -> ErrCursor {
        ErrCursor(self.seen_upto)
    }

    /// Reports the latest error newer than `cursor`, once, and advances the cursor (W1).
    pub(crate) fn check(&mut self, cursor: &mut ErrCursor) -> Result<(), Error> {
        if self.err_seq <= cursor.0 {
            return Ok(());
        }
        cursor.0 = self.err_seq;
        self.seen_upto = self.seen_upto.max(self.err_seq);
        // W5: the application has been told; stale errors do not keep us synchronous.
        self.sync_mode = false;
        Err(self
            .last_err
            .clone()
            .unwrap_or(Error::Invalid("write-back error without a cause")))
    }

    fn record_error(&mut self, e: Error) {
        self.err_seq += 1;
        self.last_err = Some(e);
        self.stats.errors += 1;
        self.sync_mode = true;
    }

    /// The application wrote `data` at `offset`: it is now dirty. Unstable data it
    /// replaces is forgotten (the new data will be written and committed instead).
    #[cfg(test)]
    pub(crate) fn write(&mut self, now: Instant, offset: u64, data: &[u8]) {
        self.write_slice(now, offset, Slice::from_vec(data.to_vec()));
    }

    /// [`WriteBack::write`] of bytes already in a buffer of their own.
    pub(crate) fn write_slice(&mut self, now: Instant, offset: u64, data: Slice) {
        if data.is_empty() {
            return;
        }
        self.unstable.remove_range(offset, data.len() as u64);
        self.dirty.insert(offset, data, now);
        self.last_activity = Some(now);
    }

    /// The file is truncated (or extended) to `len`: data beyond it is dropped.
    pub(crate) fn truncate(&mut self, len: u64) {
        self.dirty.truncate(len);
        self.unstable.truncate(len);
    }

    /// Copies data the server may not have (in flight, then dirty, newest last) over `buf`,
    /// which holds the file's bytes at `offset` as read from the server or the cache.
    pub(crate) fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for w in self.inflight.values() {
            let w_end = w.offset + w.data.len() as u64;
            let (from, to) = (offset.max(w.offset), end.min(w_end));
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&w.data[(from - w.offset) as usize..(to - w.offset) as usize]);
            }
        }
        self.dirty.overlay(offset, buf);
    }

    /// Whether data the server may not have (in flight or dirty) overlaps
    /// `[offset, offset+len)`: what [`WriteBack::overlay`] would copy there.
    pub(crate) fn holds_data_in(&self, offset: u64, len: u64) -> bool {
        len > 0
            && (self.overlaps_inflight(offset, len as usize)
                || self.dirty.gaps(offset, len) != [(offset, len)])
    }

    /// Asks for everything to reach stable storage: all dirty data is written, then
    /// committed. Completion is [`WriteBack::is_clean`].
    pub(crate) fn flush(&mut self) {
        self.flushing = true;
    }

    fn overlaps_inflight(&self, off: u64, len: usize) -> bool {
        let end = off + len as u64;
        self.inflight
            .values()
            .any(|w| w.offset < end && off < w.offset + w.data.len() as u64)
    }

    fn op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    /// What to send now: WRITEs for full wsize runs, for expired data, or for everything
    /// when flushing (one FILE_SYNC at a time in sync mode); then a COMMIT when flushing and
    /// all data is written. Unstable data left alone for `dirty_expire` is committed too,
    /// so that a file nobody flushes still reaches stable storage.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<WbAction> {
        // Written as a match: `Option::is_none_or` is newer than the workspace's MSRV.
        let idle = match self.last_activity {
            Some(t) => now.saturating_duration_since(t) >= self.cfg.dirty_expire,
            None => true,
        };
        if idle && self.is_written() && !self.unstable.is_empty() && self.commit.is_none() {
            self.flushing = true;
        }
        let mut out = Vec::new();
        match self.retry_at {
            Some(t) if now < t => return out,
            _ => self.retry_at = None,
        }
        let wsize = self.cfg.wsize.max(1) as usize;
        let limit = if self.sync_mode {
            1
        } else {
            self.cfg.max_in_flight.max(1)
        };
        while self.inflight.len() < limit {
            let flushing = self.flushing;
            let expire = self.cfg.dirty_expire;
            let inflight: Vec<(u64, u64)> = self
                .inflight
                .values()
                .map(|w| (w.offset, w.offset + w.data.len() as u64))
                .collect();
            let Some((offset, data, _)) = self.dirty.take_run(wsize, |o, l, metas| {
                let end = o + l as u64;
                let busy = inflight.iter().any(|(a, b)| *a < end && o < *b);
                !busy
                    && (flushing
                        || l >= wsize
                        || metas
                            .iter()
                            .any(|t| now.saturating_duration_since(**t) >= expire))
            }) else {
                break;
            };
            debug_assert!(!self.overlaps_inflight(offset, data.len()));
            let stable = if self.sync_mode {
                self.stats.sync_writes += 1;
                Stability::FileSync
            } else {
                self.stats.unstable_writes += 1;
                Stability::Unstable
            };
            let op = self.op();
            self.inflight.insert(
                op,
                InFlight {
                    offset,
                    data: data.clone(),
                },
            );
            out.push(WbAction::Write {
                op,
                offset,
                data,
                stable,
            });
        }
        if self.flushing && self.is_written() && self.commit.is_none() {
            if self.unstable.is_empty() {
                self.flushing = false;
            } else {
                let op = self.op();
                self.commit = Some((op, self.write_seq));
                self.stats.commits += 1;
                out.push(WbAction::Commit { op });
            }
        }
        if !self.sync_mode && self.commit.is_none() && self.unstable.bytes() >= self.commit_above {
            // Covers the WRITEs answered so far; later ones stay unstable until the next.
            let op = self.op();
            self.commit = Some((op, self.write_seq));
            self.stats.commits += 1;
            out.push(WbAction::Commit { op });
        }
        out
    }

    /// Unstable data written under another verifier than `verf` goes back to dirty, to be
    /// sent again at once (W6).
    fn verifier_seen(&mut self, now: Instant, verf: WriteVerf) {
        let stale = self.unstable.retain(|_, w| w.verf == verf);
        if stale.is_empty() {
            return;
        }
        for (off, data, _) in stale {
            self.stats.resent_bytes += data.len() as u64;
            // Newer dirty data in the same range wins.
            self.dirty.fill_gaps(off, &data, now);
        }
        self.flushing = true;
    }

    /// A WRITE finished.
    pub(crate) fn on_write_done(
        &mut self,
        now: Instant,
        op: OpId,
        r: Result<WriteReply, Error>,
    ) -> Vec<WbAction> {
        let Some(w) = self.inflight.remove(&op) else {
            return self.poll(now);
        };
        self.last_activity = Some(now);
        match r {
            Ok(rep) => {
                self.sync_mode = false;
                let n = (rep.count as usize).min(w.data.len());
                if n < w.data.len() {
                    // Short write: the rest is dirty again, under any newer data.
                    self.dirty.fill_gaps(
                        w.offset + n as u64,
                        &w.data.sub(n, w.data.len() - n),
                        now,
                    );
                }
                self.verifier_seen(now, rep.verf);
                if rep.committed == Stability::Unstable && n > 0 {
                    self.write_seq += 1;
                    let meta = Written {
                        verf: rep.verf,
                        seq: self.write_seq,
                    };
                    // Parts rewritten meanwhile are dirty and will be written again.
                    for (g, l) in self.dirty.gaps(w.offset, n as u64) {
                        let a = (g - w.offset) as usize;
                        self.unstable.insert(g, w.data.sub(a, l as usize), meta);
                    }
                }
            }
            Err(e) if is_jukebox(&e) => {
                // Not a failure: the data is dirty again, under any newer data, and goes
                // out after a delay.
                self.dirty.fill_gaps(w.offset, &w.data, now);
                self.retry_at = Some(now + JUKEBOX_DELAY);
            }
            Err(e) => self.record_error(e),
        }
        self.poll(now)
    }

    /// A COMMIT finished.
    pub(crate) fn on_commit_done(
        &mut self,
        now: Instant,
        op: OpId,
        r: Result<WriteVerf, Error>,
    ) -> Vec<WbAction> {
        let Some((cop, covers)) = self.commit else {
            return self.poll(now);
        };
        if cop != op {
            return self.poll(now);
        }
        self.commit = None;
        match r {
            Ok(verf) => {
                self.verifier_seen(now, verf);
                // What remains was written under `verf`; what the COMMIT covered is stable.
                self.unstable.retain(|_, w| w.seq > covers);
            }
            Err(e) if is_jukebox(&e) => self.retry_at = Some(now + JUKEBOX_DELAY),
            Err(e) => {
                self.unstable.retain(|_, w| w.seq > covers);
                self.record_error(e);
            }
        }
        self.poll(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::Status;

    const W: usize = 64 * 1024;
    const V1: WriteVerf = WriteVerf([1; 8]);
    const V2: WriteVerf = WriteVerf([2; 8]);

    fn engine() -> WriteBack {
        WriteBack::new(WbConfig {
            wsize: W as u32,
            max_in_flight: 4,
            dirty_expire: Duration::from_secs(5),
        })
    }

    fn ok(count: usize, committed: Stability, verf: WriteVerf) -> Result<WriteReply, Error> {
        Ok(WriteReply {
            count: count as u32,
            committed,
            verf,
        })
    }

    fn nospc() -> Error {
        Error::Nfs(Status::NoSpc)
    }

    /// Answers every WRITE and COMMIT with `f` until the engine asks for nothing more;
    /// returns (unstable WRITEs, FILE_SYNC WRITEs, COMMITs) seen.
    fn run(
        wb: &mut WriteBack,
        t: Instant,
        mut acts: Vec<WbAction>,
        mut wr: impl FnMut(&WbAction) -> Result<WriteReply, Error>,
        mut cm: impl FnMut() -> Result<WriteVerf, Error>,
    ) -> (usize, usize, usize) {
        let (mut u, mut s, mut c) = (0, 0, 0);
        while let Some(a) = acts.pop() {
            let more = match &a {
                WbAction::Write { op, stable, .. } => {
                    if *stable == Stability::Unstable {
                        u += 1
                    } else {
                        s += 1
                    }
                    let r = wr(&a);
                    wb.on_write_done(t, *op, r)
                }
                WbAction::Commit { op } => {
                    c += 1;
                    let r = cm();
                    wb.on_commit_done(t, *op, r)
                }
            };
            acts.extend(more);
        }
        (u, s, c)
    }

    fn len_of(a: &WbAction) -> usize {
        match a {
            WbAction::Write { data, .. } => data.len(),
            WbAction::Commit { .. } => 0,
        }
    }

    fn fail_all(wb: &mut WriteBack, t: Instant) {
        wb.flush();
        let acts = wb.poll(t);
        run(wb, t, acts, |_| Err(nospc()), || Err(nospc()));
        assert!(wb.is_clean());
    }

    #[test]
    fn w1_each_handle_reports_each_error_exactly_once() {
        let t = Instant::now();
        let mut wb = engine();
        let (mut a, mut b) = (wb.open_cursor(), wb.open_cursor());
        wb.write(t, 0, &[7; 100]);
        fail_all(&mut wb, t);
        assert_eq!(wb.check(&mut a), Err(nospc()));
        assert_eq!(wb.check(&mut a), Ok(()));
        assert_eq!(
            wb.check(&mut b),
            Err(nospc()),
            "b's cursor predates the error too"
        );
        assert_eq!(wb.check(&mut b), Ok(()));
        // A second error is reported again, once.
        wb.write(t, 0, &[7; 100]);
        fail_all(&mut wb, t);
        assert_eq!(wb.check(&mut a), Err(nospc()));
        assert_eq!(wb.check(&mut a), Ok(()));
    }

    #[test]
    fn w2_a_handle_opened_after_the_error_was_seen_never_reports_it() {
        let t = Instant::now();
        let mut wb = engine();
        let mut a = wb.open_cursor();
        wb.write(t, 0, &[1; 10]);
        fail_all(&mut wb, t);
        assert!(wb.check(&mut a).is_err());
        let mut c = wb.open_cursor();
        assert_eq!(wb.check(&mut c), Ok(()));
        wb.write(t, 0, &[1; 10]);
        wb.flush();
        let acts = wb.poll(t);
        run(
            &mut wb,
            t,
            acts,
            |a| ok(len_of(a), Stability::Unstable, V1),
            || Ok(V1),
        );
        assert_eq!(wb.check(&mut c), Ok(()));
        assert!(wb.is_clean());
    }

    #[test]
    fn w3_an_unseen_error_is_reported_to_the_next_handle_once() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &[1; 10]);
        fail_all(&mut wb, t); // no handle looked
        let mut c = wb.open_cursor();
        let mut d = wb.open_cursor();
        assert_eq!(wb.check(&mut c), Err(nospc()));
        assert_eq!(
            wb.check(&mut d),
            Err(nospc()),
            "opened before anyone saw it"
        );
        let mut e = wb.open_cursor();
        assert_eq!(wb.check(&mut e), Ok(()));
    }

    #[test]
    fn w3_a_failed_commit_is_an_error_too() {
        let t = Instant::now();
        let mut wb = engine();
        let mut a = wb.open_cursor();
        wb.write(t, 0, &[1; 10]);
        wb.flush();
        let acts = wb.poll(t);
        let (u, _, c) = run(
            &mut wb,
            t,
            acts,
            |a| ok(len_of(a), Stability::Unstable, V1),
            || Err(Error::Nfs(Status::Io)),
        );
        assert_eq!((u, c), (1, 1));
        assert!(wb.is_clean());
        assert_eq!(wb.check(&mut a), Err(Error::Nfs(Status::Io)));
    }

    #[test]
    fn w4_early_failure_only_with_an_error_newer_than_the_handle() {
        let t = Instant::now();
        let mut wb = engine();
        let mut old = wb.open_cursor();
        wb.write(t, 0, &[1; 10]);
        fail_all(&mut wb, t);
        assert!(wb.check(&mut old).is_err()); // seen
        let mut fresh = wb.open_cursor();
        // What write() does before accepting data: check its own cursor.
        assert_eq!(wb.check(&mut fresh), Ok(()));
        assert!(!wb.sync_mode());
    }

    #[test]
    fn w5_after_a_failure_one_sync_write_then_back_to_unstable() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &[1; 10]);
        fail_all(&mut wb, t); // unseen: sync mode stays
        assert!(wb.sync_mode());
        wb.write(t, 0, &vec![2; 4 * W]);
        wb.flush();
        let acts = wb.poll(t);
        assert!(matches!(
            &acts[..],
            [WbAction::Write {
                stable: Stability::FileSync,
                ..
            }]
        ));
        let WbAction::Write { op, .. } = &acts[0] else {
            unreachable!()
        };
        let next = wb.on_write_done(t, *op, ok(W, Stability::FileSync, V1));
        assert!(!wb.sync_mode());
        assert_eq!(next.len(), 3);
        assert!(next.iter().all(|a| matches!(
            a,
            WbAction::Write {
                stable: Stability::Unstable,
                ..
            }
        )));
    }

    #[test]
    fn w5_seed_scenario_second_write_is_not_synchronous() {
        let t = Instant::now();
        let mut wb = engine();
        // dd #1 on a full server: 1 MiB, every WRITE fails with NOSPC.
        let mut h1 = wb.open_cursor();
        wb.write(t, 0, &vec![0; 16 * W]);
        wb.flush();
        let acts = wb.poll(t);
        run(&mut wb, t, acts, |_| Err(nospc()), || Ok(V1));
        assert!(wb.is_clean());
        assert_eq!(wb.check(&mut h1), Err(nospc()), "reported at close");
        // rm nospc; dd #2: no stale error, no synchronous WRITE.
        let mut h2 = wb.open_cursor();
        assert_eq!(wb.check(&mut h2), Ok(()), "write() sees nothing stale");
        let before = wb.stats();
        wb.write(t, 0, &vec![0; 16 * W]);
        wb.flush();
        let acts = wb.poll(t);
        assert_eq!(acts.len(), 4, "several WRITEs in flight at once");
        let (u, s, c) = run(
            &mut wb,
            t,
            acts,
            |a| ok(len_of(a), Stability::Unstable, V1),
            || Ok(V1),
        );
        assert_eq!((u, s, c), (16, 0, 1));
        assert_eq!(wb.stats().sync_writes, before.sync_writes);
        assert!(wb.is_clean());
        assert_eq!(wb.check(&mut h2), Ok(()), "close reports nothing stale");
    }

    #[test]
    fn w6_a_changed_verifier_at_commit_resends_at_once() {
        let t = Instant::now();
        let mut wb = engine();
        let mut h = wb.open_cursor();
        wb.write(t, 0, &vec![5; 2 * W]);
        wb.flush();
        let acts = wb.poll(t);
        assert_eq!(acts.len(), 2);
        let mut commit = None;
        for a in acts {
            let WbAction::Write { op, data, .. } = a else {
                panic!()
            };
            for b in wb.on_write_done(t, op, ok(data.len(), Stability::Unstable, V1)) {
                commit = Some(b);
            }
        }
        let Some(WbAction::Commit { op }) = commit else {
            panic!("{commit:?}")
        };
        // The server restarted: COMMIT answers with another verifier.
        let resend = wb.on_commit_done(t, op, Ok(V2));
        assert_eq!(resend.len(), 2, "uncommitted data goes out again at once");
        assert_eq!(resend.iter().map(len_of).sum::<usize>(), 2 * W);
        assert_eq!(wb.stats().resent_bytes, 2 * W as u64);
        let (_, _, c) = run(
            &mut wb,
            t,
            resend,
            |a| ok(len_of(a), Stability::Unstable, V2),
            || Ok(V2),
        );
        assert_eq!(c, 1);
        assert!(wb.is_clean());
        assert_eq!(wb.check(&mut h), Ok(()));
    }

    #[test]
    fn w6_a_changed_verifier_on_a_write_resends_without_waiting_for_a_flush() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &vec![1; W]);
        let a = wb.poll(t); // a full wsize run goes out in the background
        let WbAction::Write { op, .. } = &a[0] else {
            panic!()
        };
        assert!(wb
            .on_write_done(t, *op, ok(W, Stability::Unstable, V1))
            .is_empty());
        wb.write(t, 4 * W as u64, &vec![2; W]);
        let b = wb.poll(t);
        let WbAction::Write { op, .. } = &b[0] else {
            panic!()
        };
        let again = wb.on_write_done(t, *op, ok(W, Stability::Unstable, V2));
        assert!(
            matches!(&again[0], WbAction::Write { offset: 0, .. }),
            "{again:?}"
        );
    }

    #[test]
    fn rewrites_of_data_in_flight_wait_and_win() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &[1; 100]);
        wb.flush();
        let first = wb.poll(t);
        assert_eq!(first.len(), 1);
        wb.write(t, 50, &[2; 100]);
        let mut buf = [0u8; 150];
        wb.overlay(0, &mut buf);
        assert_eq!((buf[49], buf[50], buf[149]), (1, 2, 2));
        assert!(
            wb.poll(t).is_empty(),
            "overlapping WRITE must not be reordered"
        );
        let WbAction::Write { op, .. } = &first[0] else {
            panic!()
        };
        let next = wb.on_write_done(t, *op, ok(100, Stability::Unstable, V1));
        assert!(
            matches!(&next[..], [WbAction::Write { offset: 50, data, .. }] if data.len() == 100)
        );
        // The first WRITE's bytes 50..100 were superseded: 0..50 is unstable from it, and
        // the second WRITE (100 bytes) is in flight.
        assert_eq!(wb.held_bytes(), 50 + 100);
    }

    #[test]
    fn short_writes_resend_the_rest_and_expiry_writes_partial_runs() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &[3; 1000]);
        assert!(wb.poll(t).is_empty(), "a partial run waits");
        let acts = wb.poll(t + Duration::from_secs(5));
        assert_eq!(acts.len(), 1, "until it expires");
        let WbAction::Write { op, .. } = &acts[0] else {
            panic!()
        };
        let more = wb.on_write_done(t, *op, ok(600, Stability::Unstable, V1));
        assert!(more.is_empty());
        wb.flush();
        let acts = wb.poll(t);
        assert!(
            matches!(&acts[..], [WbAction::Write { offset: 600, data, .. }] if data.len() == 400)
        );
        let (_, _, c) = run(
            &mut wb,
            t,
            acts,
            |a| ok(len_of(a), Stability::Unstable, V1),
            || Ok(V1),
        );
        assert_eq!(c, 1);
        assert!(wb.is_clean());
        assert_eq!(wb.held_bytes(), 0);
    }

    #[test]
    fn commit_above_commits_while_writes_go_on_and_covers_only_answered_writes() {
        let mut wb = engine();
        wb.commit_above(2 * W as u64);
        let t = Instant::now();
        wb.write(t, 0, &vec![1; 8 * W]);
        let acts = wb.poll(t);
        assert_eq!(acts.len(), 4, "4 WRITEs in flight");
        let ops: Vec<OpId> = acts
            .iter()
            .map(|a| match a {
                WbAction::Write { op, .. } => *op,
                WbAction::Commit { .. } => panic!("{a:?}"),
            })
            .collect();
        // One answer: 1 unstable wsize, below the bound; nothing but the next WRITE.
        let next = wb.on_write_done(t, ops[0], ok(W, Stability::Unstable, V1));
        assert!(matches!(&next[..], [WbAction::Write { .. }]), "{next:?}");
        // Two: the bound is reached with data still dirty and in flight: a COMMIT now.
        let next = wb.on_write_done(t, ops[1], ok(W, Stability::Unstable, V1));
        let commit = next.iter().find_map(|a| match a {
            WbAction::Commit { op } => Some(*op),
            WbAction::Write { .. } => None,
        });
        let Some(cop) = commit else {
            panic!("no COMMIT: {next:?}")
        };
        assert!(!wb.is_written());
        // A WRITE answered after the COMMIT was sent is not covered by it.
        wb.on_write_done(t, ops[2], ok(W, Stability::Unstable, V1));
        wb.on_commit_done(t, cop, Ok(V1));
        assert_eq!(wb.uncommitted_bytes(), W as u64);
        assert_eq!(wb.stats().commits, 1);
    }

    #[test]
    fn unstable_data_left_alone_is_committed_after_it_expires() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &vec![1; W]);
        let a = wb.poll(t);
        let WbAction::Write { op, .. } = &a[0] else {
            panic!()
        };
        assert!(wb
            .on_write_done(t, *op, ok(W, Stability::Unstable, V1))
            .is_empty());
        assert!(wb.poll(t + Duration::from_secs(4)).is_empty(), "not yet");
        let c = wb.poll(t + Duration::from_secs(5));
        assert!(matches!(&c[..], [WbAction::Commit { .. }]));
        let WbAction::Commit { op } = c[0] else {
            unreachable!()
        };
        assert!(wb.on_commit_done(t, op, Ok(V1)).is_empty());
        assert!(wb.is_clean());
    }

    #[test]
    fn jukebox_is_retried_later_not_reported() {
        let t = Instant::now();
        let mut wb = engine();
        let mut h = wb.open_cursor();
        wb.write(t, 0, &[4; 100]);
        wb.flush();
        let a = wb.poll(t);
        let WbAction::Write { op, .. } = &a[0] else {
            panic!()
        };
        let busy = Err(Error::Nfs(Status::Jukebox));
        assert!(
            wb.on_write_done(t, *op, busy.clone()).is_empty(),
            "no busy loop"
        );
        assert!(wb.poll(t + JUKEBOX_DELAY / 2).is_empty());
        let a = wb.poll(t + JUKEBOX_DELAY);
        assert!(matches!(&a[..], [WbAction::Write { data, .. }] if data.len() == 100));
        let WbAction::Write { op, .. } = &a[0] else {
            panic!()
        };
        let t2 = t + JUKEBOX_DELAY;
        let c = wb.on_write_done(t2, *op, ok(100, Stability::Unstable, V1));
        let WbAction::Commit { op } = c[0] else {
            panic!("{c:?}")
        };
        assert!(wb
            .on_commit_done(t2, op, Err(Error::Nfs(Status::Jukebox)))
            .is_empty());
        let c = wb.poll(t2 + JUKEBOX_DELAY);
        let WbAction::Commit { op } = c[0] else {
            panic!("{c:?}")
        };
        assert!(wb.on_commit_done(t2, op, Ok(V1)).is_empty());
        assert!(wb.is_clean());
        assert_eq!(wb.check(&mut h), Ok(()));
        assert_eq!(wb.stats().errors, 0);
    }

    #[test]
    fn truncate_drops_data_beyond_the_new_size() {
        let t = Instant::now();
        let mut wb = engine();
        wb.write(t, 0, &[1; 100]);
        wb.truncate(10);
        assert_eq!(wb.held_bytes(), 10);
        assert_eq!(wb.local_end(), 10);
    }
}
