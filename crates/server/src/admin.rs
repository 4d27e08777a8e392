//! The administration program: statistics for `rnfs stats` and the metrics endpoint.
//!
//! Program [`PROGRAM`] version 1 answers on the NFS port, to loopback callers only:
//! procedure 0 is NULL, procedure 1 returns the counters in the Prometheus text format
//! (the same text the `--metrics` endpoint serves), so there is one source of truth.
use crate::route::{Env, Peek, Unit};
use crate::v3::mount::MOUNT3_PROCS;
use crate::v3::NFS3_PROCS;
use crate::{NfsServer, Req};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::{reply_error, reply_success, reply_with};
use rnfs_rpc::transport::{Blocking, ConnInfo};
use std::fmt::Write;

/// Program number (in the range RFC 5531 leaves to users).
pub const PROGRAM: u32 = 0x2052_4e46;
/// Version.
pub const VERSION: u32 = 1;
/// Procedure returning the metrics text.
pub const PROC_METRICS: u32 = 1;

/// The routing unit of the administration program (see [`crate::route`]): loopback
/// callers only, answered at once, never through the reply cache, not counted.
#[derive(Debug)]
pub(crate) struct Admin;

impl Unit for Admin {
    fn program(&self) -> u32 {
        PROGRAM
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn serves(&self, conn: &ConnInfo) -> bool {
        conn.peer.ip().is_loopback()
    }

    fn classify(&self, _call: &Peek<'_>, _env: &Env) -> Blocking {
        Blocking::Never
    }

    fn dispatch(
        &self,
        s: &NfsServer,
        _req: &Req<'_>,
        xid: u32,
        proc_: u32,
        _args: &[u8],
    ) -> Vec<u8> {
        match proc_ {
            0 => reply_with(xid, &()),
            PROC_METRICS => {
                let text = metrics_text(s);
                let mut w = reply_success(xid, text.len() + 8);
                w.opaque(text.as_bytes());
                w.into_inner()
            }
            _ => reply_error(xid, ReplyStatus::ProcUnavail),
        }
    }
}

/// Writes the HELP and TYPE lines of a metric family.
pub(crate) fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every counter in the Prometheus text exposition format: each unit's (see
/// [`crate::route::Unit::metrics`]), then the server's.
pub fn metrics_text(s: &NfsServer) -> String {
    let st = s.stats.snapshot();
    let drc = s.drc_stats();
    let mut o = String::new();
    for unit in s.routes.iter() {
        unit.metrics(&mut o);
    }
    let simple = [
        (
            "rnfs_rpc_bad_calls_total",
            "counter",
            "Calls refused at the RPC level.",
            st.bad_calls,
        ),
        (
            "rnfs_read_bytes_total",
            "counter",
            "Bytes returned by READ.",
            st.read_bytes,
        ),
        (
            "rnfs_written_bytes_total",
            "counter",
            "Bytes accepted by WRITE.",
            st.written_bytes,
        ),
        (
            "rnfs_drc_hits_total",
            "counter",
            "Retransmissions answered from the duplicate request cache.",
            drc.hits,
        ),
        (
            "rnfs_drc_misses_total",
            "counter",
            "Non-idempotent calls not found in the cache.",
            drc.misses,
        ),
        (
            "rnfs_drc_in_progress_total",
            "counter",
            "Retransmissions dropped while the original ran.",
            drc.in_progress,
        ),
        (
            "rnfs_connections_open",
            "gauge",
            "Connections open now.",
            s.conn_stats.open.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "rnfs_connections_total",
            "counter",
            "Connections accepted.",
            s.conn_stats
                .total
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, v) in simple {
        family(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {v}");
    }
    let (mounts, dropped) = s.mount_list_stats();
    let mount_list = [
        (
            "rnfs_mount_list_entries",
            "gauge",
            "Entries in the MOUNT list (what DUMP reports) now.",
            mounts as u64,
        ),
        (
            "rnfs_mount_list_dropped_total",
            "counter",
            "MOUNT list entries forgotten at the list's bounds.",
            dropped,
        ),
    ];
    for (name, kind, help, v) in mount_list {
        family(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {v}");
    }
    handle_metrics(s, &st, &mut o);
    limits_text(&mut o, &s.conn_stats);
    o
}

/// Handle MAC failures and searches for unknown keys (see [`crate::search`]).
fn handle_metrics(s: &NfsServer, st: &crate::stats::Snapshot, o: &mut String) {
    let rows = [
        (
            "rnfs_handle_mac_failures_total",
            "counter",
            "Handles refused: not of our format, or their MAC tag did not match (forged or damaged).",
            st.handle_mac_failures,
        ),
        (
            "rnfs_searches_started_total",
            "counter",
            "Searches of an export for a key the backend did not know.",
            st.searches_started,
        ),
        (
            "rnfs_searches_given_up_total",
            "counter",
            "Searches given up at their directory or time limit.",
            st.searches_given_up,
        ),
        (
            "rnfs_searches_refused_total",
            "counter",
            "Calls answered JUKEBOX because too many searches were running.",
            st.searches_refused,
        ),
        (
            "rnfs_searches_running",
            "gauge",
            "Searches running now.",
            s.searches.running() as u64,
        ),
    ];
    for (name, kind, help, v) in rows {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
}

/// The transport's limits, what they shed and what is buffered (README "Limits").
fn limits_text(o: &mut String, c: &rnfs_rpc::transport::ConnStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        o,
        "# HELP rnfs_connections_shed_total Connections the server closed or refused, by reason.\n\
         # TYPE rnfs_connections_shed_total counter"
    );
    for (reason, v) in [
        ("idle_for_new", &c.shed_for_new),
        ("refused_at_limit", &c.refused),
        ("idle_timeout", &c.closed_idle),
        ("record_timeout", &c.closed_record),
        ("accept_no_descriptor", &c.accept_no_fd),
        ("stalled_memory_short", &c.shed_stalled),
    ] {
        let _ = writeln!(
            o,
            "rnfs_connections_shed_total{{reason=\"{reason}\"}} {}",
            v.load(Relaxed)
        );
    }
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    for (name, help, v) in [
        (
            "rnfs_connections_throttled_total",
            "Times a connection whose calls kept failing by its own fault (forged handles, garbage) was made to wait before its next call.",
            c.throttled.load(Relaxed),
        ),
        (
            "rnfs_shed_searches_total",
            "Searches of the open connections for a stalled one to shed when memory ran short (at most one per 5 ms).",
            c.shed_searches(),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    for (name, help, v) in [
        (
            "rnfs_buffered_bytes",
            "Bytes of calls being received and replies waiting to be sent (and reserved for calls running).",
            n(c.memory.total()),
        ),
        (
            "rnfs_limit_memory_budget_bytes",
            "Memory budget for buffered bytes (--memory-budget).",
            n(c.memory.limit()),
        ),
        (
            "rnfs_limit_max_connections",
            "Connections open at once (--max-connections).",
            c.max_connections.load(Relaxed),
        ),
        (
            "rnfs_limit_idle_timeout_seconds",
            "Idle connections are closed after this (--idle-timeout).",
            c.idle_timeout_secs.load(Relaxed),
        ),
        (
            "rnfs_limit_record_timeout_seconds",
            "A record not complete this long after its first byte closes its connection (--record-timeout).",
            c.record_timeout_secs.load(Relaxed),
        ),
        (
            "rnfs_limit_max_unsent_bytes",
            "Replies a connection may owe before its requests stop being read (--max-unsent).",
            c.max_unsent.load(Relaxed),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    callbacks_text(o, c.callbacks());
}

/// The calls the server sends on clients' connections (the v4.1 backchannel).
fn callbacks_text(o: &mut String, b: &rnfs_rpc::transport::CallbackStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        o,
        "# HELP rnfs_callbacks_total Calls sent on clients' connections, by outcome.\n\
         # TYPE rnfs_callbacks_total counter"
    );
    for (outcome, v) in [
        ("sent", &b.sent),
        ("replied", &b.replied),
        ("timed_out", &b.timed_out),
        ("connection_closed", &b.closed),
        ("busy", &b.busy),
        ("reply_too_large", &b.too_large),
        ("reply_malformed", &b.malformed),
        ("unknown_reply_dropped", &b.unknown_replies),
    ] {
        let _ = writeln!(
            o,
            "rnfs_callbacks_total{{outcome=\"{outcome}\"}} {}",
            v.load(Relaxed)
        );
    }
    let _ = writeln!(
        o,
        "# HELP rnfs_callbacks_outstanding Calls on clients' connections waiting for a reply.\n\
         # TYPE rnfs_callbacks_outstanding gauge\nrnfs_callbacks_outstanding {}",
        b.outstanding.load(Relaxed)
    );
}

/// Parses metrics text back into `(name with labels, value)` pairs (for `rnfs stats`).
pub fn parse_metrics(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Renders metrics in a layout like nfsstat's server section.
pub fn nfsstat_layout(m: &[(String, u64)]) -> String {
    let get = |k: &str| m.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(0);
    let mut o = String::new();
    let nfs: Vec<u64> = NFS3_PROCS
        .iter()
        .map(|p| get(&format!("rnfs_nfs3_calls_total{{proc=\"{p}\"}}")))
        .collect();
    let mnt: Vec<u64> = MOUNT3_PROCS
        .iter()
        .map(|p| get(&format!("rnfs_mount3_calls_total{{proc=\"{p}\"}}")))
        .collect();
    let total: u64 = nfs.iter().sum::<u64>() + mnt.iter().sum::<u64>();
    let _ = writeln!(
        o,
        "Server rpc stats:\ncalls      badcalls   connections open\n{:<10} {:<10} {:<11} {}\n",
        total,
        get("rnfs_rpc_bad_calls_total"),
        get("rnfs_connections_total"),
        get("rnfs_connections_open")
    );
    let table = |o: &mut String, title: &str, names: &[&str], vals: &[u64]| {
        let sum: u64 = vals.iter().sum::<u64>().max(1);
        let _ = writeln!(o, "{title}:");
        for chunk in names.iter().zip(vals).collect::<Vec<_>>().chunks(6) {
            let mut head = String::new();
            let mut line = String::new();
            for (n, v) in chunk {
                let _ = write!(head, "{n:<13}");
                let _ = write!(line, "{:<13}", format!("{v} {}%", **v * 100 / sum));
            }
            let _ = writeln!(o, "{}\n{}", head.trim_end(), line.trim_end());
        }
        let _ = writeln!(o);
    };
    table(&mut o, "Server nfs v3", &NFS3_PROCS, &nfs);
    table(&mut o, "Server mount v3", &MOUNT3_PROCS, &mnt);
    // NFSv4: the operations seen (the metrics list only those), and the state held.
    let ops: Vec<(&str, u64)> = m
        .iter()
        .filter_map(|(n, v)| {
            let op = n
                .strip_prefix("rnfs_nfs4_ops_total{op=\"")?
                .strip_suffix("\"}")?;
            Some((op, *v))
        })
        .collect();
    if m.iter().any(|(n, _)| n.starts_with("rnfs_nfs4_")) {
        let names: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
        let vals: Vec<u64> = ops.iter().map(|(_, v)| *v).collect();
        table(&mut o, "Server nfs v4 operations", &names, &vals);
        let state = |k: &str| get(&format!("rnfs_nfs4_state{{kind=\"{k}\"}}"));
        let _ = writeln!(
            o,
            "NFSv4 state: clients {}  courtesy {}  sessions {}  opens {}  locks {}  grace {}\n",
            state("clients"),
            state("courtesy_clients"),
            state("sessions"),
            state("opens"),
            state("lock_states"),
            if get("rnfs_nfs4_grace") == 1 {
                "yes"
            } else {
                "no"
            },
        );
        let dev = |e: &str| get(&format!("rnfs_nfs4_delegations_total{{event=\"{e}\"}}"));
        let _ = writeln!(
            o,
            "NFSv4 delegations: held {} (write {})  granted {}  recalled {}  returned {}  \
             revoked {}  DELAY for a recall {}\n",
            state("delegations"),
            state("write_delegations"),
            dev("granted_read") + dev("granted_write"),
            dev("recalled"),
            dev("returned"),
            dev("revoked"),
            dev("conflicts"),
        );
    }
    let errs: Vec<(&String, &u64)> = m
        .iter()
        .filter(|(n, _)| n.starts_with("rnfs_nfs3_status_total"))
        .map(|(n, v)| (n, v))
        .collect();
    let _ = writeln!(o, "Errors by status:");
    if errs.is_empty() {
        let _ = writeln!(o, "none");
    }
    for (n, v) in errs {
        let st = n.split('"').nth(1).unwrap_or(n);
        let _ = writeln!(o, "{st:<16} {v}");
    }
    let shed = |r: &str| get(&format!("rnfs_connections_shed_total{{reason=\"{r}\"}}"));
    let _ = writeln!(
        o,
        "\nConnections: open {} of {}  shed: idle for new {}  refused {}  idle timeout {}  \
         record timeout {}  out of descriptors {}\nBuffered: {} of {} bytes",
        get("rnfs_connections_open"),
        get("rnfs_limit_max_connections"),
        shed("idle_for_new"),
        shed("refused_at_limit"),
        shed("idle_timeout"),
        shed("record_timeout"),
        shed("accept_no_descriptor"),
        get("rnfs_buffered_bytes"),
        get("rnfs_limit_memory_budget_bytes"),
    );
    let _ = writeln!(
        o,
        "Bytes: read {}  written {}\nReply cache: hits {}  misses {}  in progress {}",
        get("rnfs_read_bytes_total"),
        get("rnfs_written_bytes_total"),
        get("rnfs_drc_hits_total"),
        get("rnfs_drc_misses_total"),
        get("rnfs_drc_in_progress_total")
    );
    let _ = writeln!(
        o,
        "Handles: MAC failures {}  searches started {}  given up {}  refused {}  running {}",
        get("rnfs_handle_mac_failures_total"),
        get("rnfs_searches_started_total"),
        get("rnfs_searches_given_up_total"),
        get("rnfs_searches_refused_total"),
        get("rnfs_searches_running")
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nfsstat_layout_shows_nfsv4_operations_and_state_when_served() {
        let m = |lines: &[(&str, u64)]| -> Vec<(String, u64)> {
            lines.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        let v4 = nfsstat_layout(&m(&[
            ("rnfs_nfs4_ops_total{op=\"sequence\"}", 7),
            ("rnfs_nfs4_ops_total{op=\"putrootfh\"}", 3),
            ("rnfs_nfs4_state{kind=\"sessions\"}", 2),
            ("rnfs_nfs4_grace", 1),
        ]));
        assert!(v4.contains("Server nfs v4 operations:"), "{v4}");
        assert!(v4.contains("sequence") && v4.contains("7 70%"), "{v4}");
        assert!(
            v4.contains("sessions 2") && v4.contains("grace yes"),
            "{v4}"
        );
        let v3 = nfsstat_layout(&m(&[("rnfs_nfs3_calls_total{proc=\"null\"}", 1)]));
        assert!(!v3.contains("nfs v4"), "{v3}");
    }
}
