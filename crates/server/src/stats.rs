//! Server statistics (seed entry 18).
//!
//! Two kinds:
//! - [`Stats`]: what the server counts whatever the program (calls refused before reaching
//!   one, bytes moved, handle checks and searches);
//! - [`Counters`]: a table of named counters that a routing unit ([`crate::route`]) keeps
//!   for itself: calls (and error replies, and error statuses) by procedure, or by
//!   operation for a program whose calls carry several. Each unit renders its own tables
//!   in the metrics text, so a new version brings its names and counters with it.
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters, updated lock-free on every call.
#[derive(Debug, Default)]
pub struct Stats {
    bad_calls: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
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
    /// Calls refused at the RPC level (malformed, bad version, bad credentials).
    pub bad_calls: u64,
    /// Bytes returned by READ.
    pub read_bytes: u64,
    /// Bytes accepted by WRITE.
    pub written_bytes: u64,
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
            bad_calls: self.bad_calls.load(Relaxed),
            read_bytes: self.read_bytes.load(Relaxed),
            written_bytes: self.written_bytes.load(Relaxed),
            handle_mac_failures: self.handles.mac_failures.load(Relaxed),
            searches_started: self.handles.searches_started.load(Relaxed),
            searches_given_up: self.handles.searches_given_up.load(Relaxed),
            searches_refused: self.handles.searches_refused.load(Relaxed),
        }
    }
}

/// Named counters of one list of procedures or operations: calls, replies with an error
/// status, and error replies by status. Indexed by the procedure (or operation) number;
/// numbers past the list are not counted (the caller answers them PROC_UNAVAIL, or
/// counts them as illegal operations under a name of its own).
#[derive(Debug)]
pub struct Counters {
    names: &'static [&'static str],
    calls: Box<[AtomicU64]>,
    errors: Box<[AtomicU64]>,
    by_status: Mutex<BTreeMap<u32, u64>>,
}

/// A copy of a [`Counters`] table at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// The names, by number.
    pub names: Vec<&'static str>,
    /// Calls by number.
    pub calls: Vec<u64>,
    /// Replies with a status other than OK, by number.
    pub errors: Vec<u64>,
    /// Error replies by status (only statuses seen).
    pub by_status: Vec<(u32, u64)>,
}

impl CountersSnapshot {
    /// The calls counted under `name`.
    pub fn calls_of(&self, name: &str) -> Option<u64> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.calls.get(i).copied()
    }

    /// Appends the table to the metrics text (Prometheus text format) as `m` names it:
    /// calls and errors by entry, error replies by status. What each unit's
    /// `route::Unit::metrics` writes for its counters.
    pub fn write_metrics(&self, o: &mut String, m: &TableMetrics<'_>) {
        use std::fmt::Write;
        let family = crate::admin::family;
        let label = m.label;
        for ((name, help), values) in [(m.calls, &self.calls), (m.errors, &self.errors)] {
            family(o, name, "counter", help);
            for (entry, n) in self.names.iter().zip(values) {
                if *n > 0 || !m.skip_zero {
                    let _ = writeln!(o, "{name}{{{label}=\"{entry}\"}} {n}");
                }
            }
        }
        let (name, help) = m.statuses;
        family(o, name, "counter", help);
        for (code, n) in &self.by_status {
            let status = (m.status_name)(*code);
            let _ = writeln!(o, "{name}{{status=\"{status}\"}} {n}");
        }
    }
}

/// How a counter table appears in the metrics text ([`CountersSnapshot::write_metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct TableMetrics<'a> {
    /// The family of calls by entry, and its help text.
    pub calls: (&'a str, &'a str),
    /// The family of replies with a status other than OK by entry, and its help text.
    pub errors: (&'a str, &'a str),
    /// The family of error replies by status, and its help text.
    pub statuses: (&'a str, &'a str),
    /// The label naming an entry (`proc`, `op`).
    pub label: &'a str,
    /// Leave out entries at zero (a long table of which clients use a few).
    pub skip_zero: bool,
    /// The `status` label's value for a status number.
    pub status_name: fn(u32) -> String,
}

impl Counters {
    /// A table for the procedures (or operations) `names`, numbered from 0.
    pub fn new(names: &'static [&'static str]) -> Self {
        let zeros = || names.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            names,
            calls: zeros(),
            errors: zeros(),
            by_status: Mutex::default(),
        }
    }

    /// Counts a call of number `i` that had no status (or whose status is not counted).
    pub fn call(&self, i: usize) {
        if let Some(c) = self.calls.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts a call of number `i` that ended with `status` (0 is OK).
    pub fn result(&self, i: usize, status: u32) {
        let (Some(c), Some(e)) = (self.calls.get(i), self.errors.get(i)) else {
            return;
        };
        c.fetch_add(1, Relaxed);
        if status != 0 {
            e.fetch_add(1, Relaxed);
            *self.by_status.lock().entry(status).or_default() += 1;
        }
    }

    /// A consistent-enough copy for display.
    pub fn snapshot(&self) -> CountersSnapshot {
        let load = |v: &[AtomicU64]| v.iter().map(|c| c.load(Relaxed)).collect();
        CountersSnapshot {
            names: self.names.to_vec(),
            calls: load(&self.calls),
            errors: load(&self.errors),
            by_status: self
                .by_status
                .lock()
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_by_name_and_ignore_numbers_past_the_list() {
        let c = Counters::new(&["null", "a", "b"]);
        c.result(1, 0);
        c.result(1, 2);
        c.result(2, 2);
        c.call(0);
        c.result(3, 5);
        c.call(9);
        let s = c.snapshot();
        assert_eq!(s.calls, [1, 2, 1]);
        assert_eq!(s.errors, [0, 1, 1]);
        assert_eq!(s.by_status, [(2, 2)]);
        assert_eq!(s.calls_of("a"), Some(2));
        assert_eq!(s.calls_of("c"), None);
    }

    #[test]
    fn a_table_is_written_as_three_families() {
        let c = Counters::new(&["null", "a", "b"]);
        c.result(1, 0);
        c.result(1, 2);
        let m = |skip_zero| TableMetrics {
            calls: ("x_calls_total", "Calls."),
            errors: ("x_errors_total", "Errors."),
            statuses: ("x_status_total", "Statuses."),
            label: "proc",
            skip_zero,
            status_name: |c| format!("s{c}"),
        };
        let mut all = String::new();
        c.snapshot().write_metrics(&mut all, &m(false));
        let family = |o: &mut String, n, h| crate::admin::family(o, n, "counter", h);
        let mut want = String::new();
        family(&mut want, "x_calls_total", "Calls.");
        want += "x_calls_total{proc=\"null\"} 0\nx_calls_total{proc=\"a\"} 2\n";
        want += "x_calls_total{proc=\"b\"} 0\n";
        family(&mut want, "x_errors_total", "Errors.");
        want += "x_errors_total{proc=\"null\"} 0\nx_errors_total{proc=\"a\"} 1\n";
        want += "x_errors_total{proc=\"b\"} 0\n";
        family(&mut want, "x_status_total", "Statuses.");
        want += "x_status_total{status=\"s2\"} 1\n";
        assert_eq!(all, want);
        let mut some = String::new();
        c.snapshot().write_metrics(&mut some, &m(true));
        let kept: Vec<_> = some.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            kept,
            [
                "x_calls_total{proc=\"a\"} 2",
                "x_errors_total{proc=\"a\"} 1",
                "x_status_total{status=\"s2\"} 1"
            ]
        );
    }
}
