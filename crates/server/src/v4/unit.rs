//! The routing unit of NFS version 4 (program 100003, version 4; see [`crate::route`]):
//! NULL and COMPOUND, for the minor versions the server serves.
//!
//! - **Classification**: a COMPOUND's operations are only known by decoding them one by
//!   one, and its SEQUENCE takes a slot as it runs, so a compound cannot be tried on the
//!   connection's task and given up half-way to the pool as NFSv3 calls are (the slot
//!   would be held by a request that never finishes there). Compounds therefore run on
//!   the connection's task when no export's backend ever blocks (memory), and on the pool
//!   otherwise.
//! - **Replay caching**: NFSv4.1 has its slot cache per session. An NFSv4.0 compound that
//!   holds an operation a retransmission must not run twice and that no open or lock
//!   owner's seqid orders (CREATE, LINK, REMOVE, RENAME, SETATTR: [`cached40`]) goes
//!   through the server's duplicate request cache, as knfsd caches the 4.0 compounds of
//!   its "cache me" operations: the retry (same xid, same client address and port, same
//!   credential and arguments) gets the first reply instead of EXIST or NOENT (pynfs
//!   RPLY14). OPEN, CLOSE, LOCK and the other seqid operations replay through their
//!   owner's reply cache (RFC 7530 9.1.7).
//! - **Statistics**: one counter table by operation number ([`NFS4_OPS`]), fed by the
//!   engine as each operation answers, and the client, session and locking gauges.
use super::compound::{run_compound, Ctx, Limits, StateCtx};
use super::error::Nfs4Error;
use super::owner::OwnerMap;
use super::pseudo::{Caller, PseudoFs};
use super::service::V4State;
use super::session_ops::{CompoundSessions, RPC_REPLY_HEADER};
use crate::route::{Env, Peek, Unit};
use crate::stats::{Counters, CountersSnapshot, TableMetrics};
use crate::{ExportTable, NfsServer, Req};
use parking_lot::Mutex;
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::{reply_error, reply_success};
use rnfs_rpc::transport::Blocking;
use std::fmt::Write;
use std::sync::Arc;

pub use rnfs_proto::nfs4::{PROGRAM, VERSION};

/// Operation names by number, for the counters: 0 counts OP_ILLEGAL (unknown numbers).
pub static NFS4_OPS: [&str; 76] = [
    "illegal",
    "reserved1",
    "reserved2",
    "access",
    "close",
    "commit",
    "create",
    "delegpurge",
    "delegreturn",
    "getattr",
    "getfh",
    "link",
    "lock",
    "lockt",
    "locku",
    "lookup",
    "lookupp",
    "nverify",
    "open",
    "openattr",
    "open_confirm",
    "open_downgrade",
    "putfh",
    "putpubfh",
    "putrootfh",
    "read",
    "readdir",
    "readlink",
    "remove",
    "rename",
    "renew",
    "restorefh",
    "savefh",
    "secinfo",
    "setattr",
    "setclientid",
    "setclientid_confirm",
    "verify",
    "write",
    "release_lockowner",
    "backchannel_ctl",
    "bind_conn_to_session",
    "exchange_id",
    "create_session",
    "destroy_session",
    "free_stateid",
    "get_dir_delegation",
    "getdeviceinfo",
    "getdevicelist",
    "layoutcommit",
    "layoutget",
    "layoutreturn",
    "secinfo_no_name",
    "sequence",
    "set_ssv",
    "test_stateid",
    "want_delegation",
    "destroy_clientid",
    "reclaim_complete",
    "allocate",
    "copy",
    "copy_notify",
    "deallocate",
    "io_advise",
    "layouterror",
    "layoutstats",
    "offload_cancel",
    "offload_status",
    "read_plus",
    "seek",
    "write_same",
    "clone",
    "getxattr",
    "setxattr",
    "listxattrs",
    "removexattr",
];

/// The routing unit of NFS version 4. See the module documentation.
pub struct Nfs4 {
    state: Arc<V4State>,
    owners: OwnerMap,
    counters: Counters,
    /// The pseudo file system of the export table it was built from (rebuilt when the
    /// exports are reloaded).
    pseudo: Mutex<Option<(Arc<ExportTable>, Arc<PseudoFs>)>>,
}

impl Nfs4 {
    /// The unit over `state`, mapping owners as its options say
    /// ([`super::service::V4Options::owner_domain`]).
    pub fn new(state: Arc<V4State>) -> Self {
        let owners = match &state.opts.owner_domain {
            Some(d) => {
                OwnerMap::with_domain(d, Arc::new(super::owner::SystemIds), state.opts.owner_names)
            }
            None => OwnerMap::numeric(),
        };
        Self {
            state,
            owners,
            counters: Counters::new(&NFS4_OPS),
            pseudo: Mutex::default(),
        }
    }

    /// The pseudo file system over the exports in force.
    fn pseudo(&self, s: &NfsServer) -> Arc<PseudoFs> {
        let table = s.exports();
        let mut g = self.pseudo.lock();
        if let Some((t, p)) = &*g {
            if Arc::ptr_eq(t, &table) {
                return p.clone();
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let built = rnfs_vfs::Timestamp {
            secs: now.as_secs() as i64,
            nsecs: now.subsec_nanos(),
        };
        let p = Arc::new(PseudoFs::new(
            table.clone(),
            &s.cfg.handle_secret,
            s.cfg.read_only,
            built,
        ));
        *g = Some((table, p.clone()));
        p
    }

    fn compound(&self, s: &NfsServer, req: &Req<'_>, xid: u32, args: &[u8]) -> Vec<u8> {
        let pseudo = self.pseudo(s);
        let st = &self.state;
        let now = st.now();
        let sessions = CompoundSessions::new(st, req.conn.id, req.auth, args, now, &self.counters)
            .with_peer(req.conn.peer.ip());
        let locate = |e: &Arc<crate::Export>, k: &rnfs_vfs::FileKey| {
            s.locate_key(req, e, k).map_err(Nfs4Error::from)
        };
        let server = st.limits;
        let ctx = Ctx {
            pseudo: &pseudo,
            caller: Caller {
                peer: req.conn.peer,
                auth: req.auth,
            },
            owners: &self.owners,
            lease_time: st.opts.lease_secs,
            max_io: s.cfg.max_io,
            minors: st.opts.minors,
            limits: Limits {
                max_ops: server.0,
                max_reply: server.1.saturating_sub(RPC_REPLY_HEADER) as usize,
                max_cached: None,
            },
            sessions: &sessions,
            locate: &locate,
            state: StateCtx {
                locking: &st.locking,
                hooks: &**st,
                now,
                write_verf: s.write_verf,
            },
        };
        match run_compound(&ctx, args) {
            Ok(res) => {
                let mut w = reply_success(xid, res.len());
                w.raw(&res);
                w.into_inner()
            }
            Err(_) => {
                s.stats.rpc_bad_calls();
                reply_error(xid, ReplyStatus::GarbageArgs)
            }
        }
    }
}

impl Unit for Nfs4 {
    fn program(&self) -> u32 {
        PROGRAM
    }

    fn version(&self) -> u32 {
        VERSION
    }

    /// See the module documentation.
    fn classify(&self, _call: &Peek<'_>, env: &Env) -> Blocking {
        if env.never_blocks {
            Blocking::Never
        } else {
            Blocking::Likely
        }
    }

    /// A COMPOUND's reply from a bounded look at its operations ([`compound_reply_hint`]).
    fn reply_hint(&self, call: &Peek<'_>, max_io: u32) -> usize {
        match (call.proc_, call.args) {
            (1, Some(args)) => compound_reply_hint(args, max_io),
            _ => crate::route::SMALL_REPLY,
        }
    }

    /// NFSv4.0 compounds of non-idempotent operations (see the module documentation).
    fn cached(&self, proc_: u32, args: &[u8]) -> bool {
        proc_ == 1 && cached40(args)
    }

    fn dispatch(&self, s: &NfsServer, req: &Req<'_>, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        match proc_ {
            0 => reply_success(xid, 0).into_inner(),
            1 => self.compound(s, req, xid, args),
            _ => reply_error(xid, ReplyStatus::ProcUnavail),
        }
    }

    fn counters(&self) -> Vec<CountersSnapshot> {
        vec![self.counters.snapshot()]
    }

    fn metrics(&self, o: &mut String) {
        self.counters.snapshot().write_metrics(
            o,
            &TableMetrics {
                calls: ("rnfs_nfs4_ops_total", "NFSv4 operations by name."),
                errors: (
                    "rnfs_nfs4_op_errors_total",
                    "NFSv4 operations that answered a status other than NFS4_OK, by name.",
                ),
                statuses: (
                    "rnfs_nfs4_status_total",
                    "NFSv4 operation errors by status number.",
                ),
                label: "op",
                skip_zero: true,
                status_name: |code| code.to_string(),
            },
        );
        let family = crate::admin::family;
        let (c, l) = self.state.stats();
        family(
            o,
            "rnfs_nfs4_state",
            "gauge",
            "NFSv4 state held now, by kind.",
        );
        for (kind, v) in [
            ("clients", c.clients),
            ("unconfirmed_clients", c.unconfirmed),
            ("courtesy_clients", c.courtesy),
            ("sessions", c.sessions),
            ("connections", c.connections),
            ("reply_cache_bytes", c.reply_cache_held),
            ("open_owners", l.open_owners as u64),
            ("lock_owners", l.lock_owners as u64),
            ("opens", l.opens as u64),
            ("lock_states", l.lock_states as u64),
            ("locked_ranges", l.ranges as u64),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_state{{kind=\"{kind}\"}} {v}");
        }
        family(
            o,
            "rnfs_nfs4_grace",
            "gauge",
            "1 while the server is in its NFSv4 grace period.",
        );
        let _ = writeln!(o, "rnfs_nfs4_grace {}", u8::from(self.state.in_grace()));
        family(
            o,
            "rnfs_nfs4_sequence_replays_total",
            "counter",
            "SEQUENCEs answered from a slot's cache.",
        );
        let _ = writeln!(o, "rnfs_nfs4_sequence_replays_total {}", c.sequence_replays);
        family(
            o,
            "rnfs_nfs4_clients_expired_total",
            "counter",
            "NFSv4 clients expired (lease, conflict, pressure).",
        );
        let _ = writeln!(o, "rnfs_nfs4_clients_expired_total {}", c.expired);
        let d = self.state.delegation_stats();
        for (kind, v) in [
            ("delegations", d.held),
            ("write_delegations", d.held_write),
            ("revoked_delegations", d.revoked_held),
            ("recalls_in_flight", d.outstanding),
            ("recall_any_in_flight", d.recall_any_outstanding),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_state{{kind=\"{kind}\"}} {v}");
        }
        family(
            o,
            "rnfs_nfs4_delegations_total",
            "counter",
            "NFSv4 delegation events: granted (read, write), refused (contention, resource), \
             recalled (first sends), recall_retries, conflicts answered DELAY, returned, \
             revoked (not returned a lease after the recall), purged with their client, \
             recall_any (CB_RECALL_ANY sent at the total bound), recall_any_failed, \
             outside_changes (a delegated file changed beside NFS: recalled), outside_own \
             (a reported change taken for the server's own).",
        );
        for (event, v) in [
            ("granted_read", d.granted_read),
            ("granted_write", d.granted_write),
            ("refused_contention", d.refused_contention),
            ("refused_resource", d.refused_resource),
            ("recalled", d.recalls),
            ("recall_retries", d.recall_retries),
            ("conflicts", d.conflicts),
            ("returned", d.returned),
            ("revoked", d.revoked),
            ("purged", d.purged),
            ("recall_any", d.recall_any),
            ("recall_any_failed", d.recall_any_failed),
            ("outside_changes", d.outside_changes),
            ("outside_own", d.outside_own),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_delegations_total{{event=\"{event}\"}} {v}");
        }
        if let Some(w) = self.state.outside_stats() {
            family(
                o,
                "rnfs_nfs4_outside_watches",
                "gauge",
                "Delegated files watched (inotify) for changes made beside NFS.",
            );
            let _ = writeln!(o, "rnfs_nfs4_outside_watches {}", w.watched);
            family(
                o,
                "rnfs_nfs4_outside_watch_events_total",
                "counter",
                "The watches of delegated files: added, unwatched (at the bound or refused by \
                 the kernel), reports of a change, overflows of the kernel's queue.",
            );
            for (event, v) in [
                ("added", w.added),
                ("unwatched", w.unwatched),
                ("reports", w.reports),
                ("overflows", w.overflows),
            ] {
                let _ = writeln!(
                    o,
                    "rnfs_nfs4_outside_watch_events_total{{event=\"{event}\"}} {v}"
                );
            }
        }
        family(
            o,
            "rnfs_nfs4_recall_returns_total",
            "counter",
            "Delegations returned after their CB_RECALL was sent (the recalls whose round trip \
             is measured).",
        );
        let _ = writeln!(o, "rnfs_nfs4_recall_returns_total {}", d.recall_returns);
        family(
            o,
            "rnfs_nfs4_recall_return_ms_total",
            "counter",
            "Sum of the milliseconds from a CB_RECALL's first send to the DELEGRETURN (the \
             holder's flush of its dirty data included).",
        );
        let _ = writeln!(
            o,
            "rnfs_nfs4_recall_return_ms_total {}",
            d.recall_return_ms_sum
        );
        family(
            o,
            "rnfs_nfs4_recall_return_ms",
            "gauge",
            "Milliseconds from CB_RECALL sent to DELEGRETURN: the last recall returned, and the \
             longest.",
        );
        for (which, v) in [
            ("last", d.recall_return_ms_last),
            ("max", d.recall_return_ms_max),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_recall_return_ms{{which=\"{which}\"}} {v}");
        }
        let cb = self.state.callback_counts();
        family(
            o,
            "rnfs_nfs4_recalls_total",
            "counter",
            "CB_RECALLs ended, by outcome (refused includes over_bound: not sent at a bound).",
        );
        for (outcome, v) in [
            ("delivered", cb.delivered),
            ("refused", cb.refused),
            ("path_down", cb.path_down),
            ("over_bound", cb.over_bound),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_recalls_total{{outcome=\"{outcome}\"}} {v}");
        }
        family(
            o,
            "rnfs_nfs4_callbacks_sent_total",
            "counter",
            "CB_COMPOUNDs sent on session back channels (resends included).",
        );
        let _ = writeln!(o, "rnfs_nfs4_callbacks_sent_total {}", cb.sent);
        family(
            o,
            "rnfs_nfs4_recalls_resent_total",
            "counter",
            "CB_RECALLs sent again because the client did not run them.",
        );
        let _ = writeln!(o, "rnfs_nfs4_recalls_resent_total {}", cb.resent);
        family(
            o,
            "rnfs_nfs4_recalls_pending",
            "gauge",
            "CB_RECALLs queued or in flight (bounded per session and in total).",
        );
        let _ = writeln!(o, "rnfs_nfs4_recalls_pending {}", cb.pending);
        family(
            o,
            "rnfs_nfs4_recall_outcomes_dropped_total",
            "counter",
            "Recall outcomes dropped because the laundromat did not take them in time.",
        );
        let _ = writeln!(
            o,
            "rnfs_nfs4_recall_outcomes_dropped_total {}",
            cb.outcomes_dropped
        );
        family(
            o,
            "rnfs_nfs4_cb_getattr_total",
            "counter",
            "CB_GETATTRs sent to write-delegation holders for another client's GETATTR, by \
             result (answered: the holder's size and change came back in time).",
        );
        let _ = writeln!(
            o,
            "rnfs_nfs4_cb_getattr_total{{result=\"answered\"}} {}",
            cb.getattr_answered
        );
        let _ = writeln!(
            o,
            "rnfs_nfs4_cb_getattr_total{{result=\"unanswered\"}} {}",
            cb.getattr_sent.saturating_sub(cb.getattr_answered)
        );
        family(
            o,
            "rnfs_nfs4_refused_total",
            "counter",
            "NFSv4 requests refused at a bound on state, by bound (client_state: a client's \
             own opens, locks or owners, NFS4ERR_RESOURCE; server_state: the server's, \
             NFS4ERR_DELAY).",
        );
        let off = &self.state.offloads;
        family(
            o,
            "rnfs_nfs4_async_copies",
            "gauge",
            "Asynchronous COPYs running now (at most 2 per client and 8 in all).",
        );
        let _ = writeln!(o, "rnfs_nfs4_async_copies {}", off.running());
        family(
            o,
            "rnfs_nfs4_async_copies_total",
            "counter",
            "Asynchronous COPYs, by event (cb_failed: a CB_OFFLOAD the client did not take).",
        );
        for (event, v) in [
            ("started", &off.started),
            ("ended", &off.ended),
            ("cancelled", &off.cancelled),
            ("cb_failed", &off.cb_failed),
        ] {
            let v = v.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(o, "rnfs_nfs4_async_copies_total{{event=\"{event}\"}} {v}");
        }
        let ls = self.state.locking_stats();
        for (bound, n) in [
            ("clients", c.refused_clients),
            ("sessions", c.refused_sessions),
            ("connections", c.refused_connections),
            ("client_state", ls.refused_client_limit),
            ("server_state", ls.refused_server_limit),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_refused_total{{bound=\"{bound}\"}} {n}");
        }
        family(
            o,
            "rnfs_nfs4_unconfirmed_evicted_total",
            "counter",
            "Unconfirmed NFSv4 client records dropped to make room for a newer one.",
        );
        let _ = writeln!(
            o,
            "rnfs_nfs4_unconfirmed_evicted_total {}",
            c.unconfirmed_evicted
        );
        let q = self.state.locking.lock().seqid_stats();
        family(
            o,
            "rnfs_nfs4_v40_owners",
            "gauge",
            "NFSv4.0 open and lock owners whose seqid is kept, and the bytes of their kept replies.",
        );
        let _ = writeln!(o, "rnfs_nfs4_v40_owners{{kind=\"owners\"}} {}", q.owners);
        let _ = writeln!(
            o,
            "rnfs_nfs4_v40_owners{{kind=\"reply_bytes\"}} {}",
            q.kept_bytes
        );
        family(
            o,
            "rnfs_nfs4_v40_seqid_total",
            "counter",
            "NFSv4.0 seqid outcomes: replies replayed, BAD_SEQID, replies too large to keep, owners evicted at the bound.",
        );
        for (what, n) in [
            ("replayed", q.replays),
            ("bad_seqid", q.bad_seqid),
            ("too_big", q.too_big),
            ("evicted", q.evicted),
        ] {
            let _ = writeln!(o, "rnfs_nfs4_v40_seqid_total{{outcome=\"{what}\"}} {n}");
        }
        let t = self.state.callback40_counts();
        family(
            o,
            "rnfs_nfs4_v40_callback_tries_total",
            "counter",
            "NFSv4.0 callback path tries: probes started, targets refused (not the client's own \
             address, not TCP, malformed), tries deferred by the connection rate limit.",
        );
        for (what, n) in [
            ("probe", t.probes),
            ("refused", t.refused),
            ("deferred", t.deferred),
        ] {
            let _ = writeln!(
                o,
                "rnfs_nfs4_v40_callback_tries_total{{outcome=\"{what}\"}} {n}"
            );
        }
    }
}

/// Operations of an NFSv4.0 compound looked at for [`cached40`], at most.
const CACHE_SCAN_OPS: u32 = 128;

/// Whether COMPOUND arguments `args` are NFSv4.0 (minor version 0) with an operation whose
/// retransmission must get the first reply rather than run again (CREATE, LINK, REMOVE,
/// RENAME, SETATTR) among their first [`CACHE_SCAN_OPS`]. Decodes the operations one by
/// one (a WRITE's data only skipped), stopping at the first that does not decode: the
/// compound stops there too.
pub fn cached40(args: &[u8]) -> bool {
    use rnfs_proto::nfs4::{NfsArgop4, NfsOpnum4};
    let mut r = rnfs_xdr::Reader::new(args);
    let header = (|| {
        r.opaque(super::compound::MAX_TAG)?;
        let minor = r.u32()?;
        Ok::<_, rnfs_xdr::Error>((minor, r.u32()?))
    })();
    let Ok((0, count)) = header else {
        return false;
    };
    for _ in 0..count.min(CACHE_SCAN_OPS) {
        let mut peek = r.clone();
        let Ok(op) = peek.u32() else { return false };
        if op == NfsOpnum4::OpWrite as u32 {
            // stateid (seqid and 12 bytes), offset, stable, then the data, only skipped.
            if peek
                .take(16 + 8 + 4)
                .and_then(|_| peek.opaque(u32::MAX))
                .is_err()
            {
                return false;
            }
        } else {
            peek = r.clone();
            match <NfsArgop4 as rnfs_xdr::Xdr>::decode(&mut peek) {
                Ok(
                    NfsArgop4::OpCreate(_)
                    | NfsArgop4::OpLink(_)
                    | NfsArgop4::OpRemove(_)
                    | NfsArgop4::OpRename(_)
                    | NfsArgop4::OpSetattr(_),
                ) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        r = peek;
    }
    false
}

/// Operations looked at for a reply estimate, at most; a compound with more is charged
/// the most a reply may take.
const HINT_OPS: u32 = 64;
/// What the reply header and the status of each operation take, about.
const HINT_BASE: usize = 4096;
/// A GETATTR's result, about (the attributes a client asks for; ACLs and locations are
/// larger, but seldom).
const HINT_GETATTR: usize = 1024;
/// Any other operation's result (a handle, a stateid, change info...).
const HINT_OP: usize = 256;

/// About how large the reply to COMPOUND arguments `args` is: a small part per operation,
/// plus the data a READ, READ_PLUS, READDIR or LISTXATTRS asks for (each capped at
/// `max_io`), the whole capped at `max_io` + 4 KiB, which no reply exceeds. Looks at no
/// more than [`HINT_OPS`] operations and allocates nothing for a WRITE's data. Arguments
/// that do not decode stop the count where they fail: the compound stops there too (or is
/// refused whole), so what follows never runs.
pub fn compound_reply_hint(args: &[u8], max_io: u32) -> usize {
    let most = max_io as usize + 4096;
    let mut r = rnfs_xdr::Reader::new(args);
    let header = (|| {
        r.opaque(super::compound::MAX_TAG)?;
        r.u32()?; // minorversion
        r.u32()
    })();
    let Ok(count) = header else {
        return crate::route::SMALL_REPLY;
    };
    if count > HINT_OPS {
        return most;
    }
    let mut sum = HINT_BASE;
    for _ in 0..count {
        let Some(size) = op_reply_hint(&mut r, max_io) else {
            break;
        };
        sum = sum.saturating_add(size);
        if sum >= most {
            return most;
        }
    }
    sum
}

/// The reply of the operation `r` is at (decoding it, or skipping a WRITE's data), or
/// `None` if it does not decode.
fn op_reply_hint(r: &mut rnfs_xdr::Reader<'_>, max_io: u32) -> Option<usize> {
    use rnfs_proto::nfs4::{NfsArgop4, NfsOpnum4};
    let data = |count: u32| count.min(max_io) as usize + HINT_OP;
    let mut peek = r.clone();
    let size = if peek.u32().ok()? == NfsOpnum4::OpWrite as u32 {
        // stateid (seqid and 12 bytes), offset, stable, then the data, only skipped.
        peek.take(16 + 8 + 4).ok()?;
        peek.opaque(u32::MAX).ok()?;
        HINT_OP
    } else {
        peek = r.clone();
        match <NfsArgop4 as rnfs_xdr::Xdr>::decode(&mut peek).ok()? {
            NfsArgop4::OpRead(a) => data(a.count),
            NfsArgop4::OpReadPlus(a) => data(a.rpa_count),
            NfsArgop4::OpReaddir(a) => data(a.maxcount),
            NfsArgop4::OpListxattrs(a) => data(a.lxa_maxcount),
            NfsArgop4::OpGetattr(_) => HINT_GETATTR,
            _ => HINT_OP,
        }
    };
    *r = peek;
    Some(size)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v4::service::V4Options;
    use crate::{Export, ServerConfig};
    use rnfs_proto::nfs4::*;
    use rnfs_rpc::transport::{ConnId, ConnInfo, Service};
    use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray};

    fn server() -> NfsServer {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let cfg = ServerConfig {
            v4: Some(V4Options::default()),
            ..ServerConfig::default()
        };
        NfsServer::new(Export::new(1, "/", fs), cfg)
    }

    fn conn(id: ConnId) -> ConnInfo {
        ConnInfo {
            id,
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        }
    }

    /// Runs a COMPOUND of `ops` on `conn`: the COMPOUND4res bytes.
    fn compound(
        s: &NfsServer,
        conn: &ConnInfo,
        xid: u32,
        minor: u32,
        ops: Vec<NfsArgop4>,
    ) -> Vec<u8> {
        compound_reply(s, conn, xid, minor, ops)[24..].to_vec()
    }

    /// Runs a COMPOUND of `ops` on `conn`: the whole RPC reply.
    fn compound_reply(
        s: &NfsServer,
        conn: &ConnInfo,
        xid: u32,
        minor: u32,
        ops: Vec<NfsArgop4>,
    ) -> Vec<u8> {
        let call = rnfs_testkit::nfs4::compound_call(xid, minor, ops);
        s.call(conn, &call).unwrap()
    }

    fn results(res: &[u8]) -> (u32, Vec<NfsResop4>) {
        rnfs_testkit::nfs4::compound_results(&mut Reader::new(res))
    }

    fn attrs() -> ChannelAttrs4 {
        rnfs_testkit::nfs4::channel_attrs(4)
    }

    /// EXCHANGE_ID and CREATE_SESSION on `c`: the client and session ids.
    fn session(s: &NfsServer, c: &ConnInfo, owner: &[u8]) -> (u64, [u8; 16]) {
        let (id, res) = session_with(s, c, owner, 0, attrs());
        let CreateSession4res::Nfs4Ok(cs) = res else {
            panic!("{res:?}")
        };
        (id, cs.csr_sessionid.0)
    }

    /// EXCHANGE_ID, then CREATE_SESSION with `flags` and fore channel `fore`: the client
    /// id and CREATE_SESSION's result.
    fn session_with(
        s: &NfsServer,
        c: &ConnInfo,
        owner: &[u8],
        flags: u32,
        fore: ChannelAttrs4,
    ) -> (u64, CreateSession4res) {
        let eid = rnfs_testkit::nfs4::exchange_id_op(owner);
        let (st, r) = results(&compound(s, c, 1, 1, vec![eid]));
        let NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(e)) = &r[0] else {
            panic!("{st} {r:?}")
        };
        let cs = NfsArgop4::OpCreateSession(CreateSession4args {
            csa_clientid: e.eir_clientid,
            csa_sequence: e.eir_sequenceid,
            csa_flags: flags,
            csa_fore_chan_attrs: fore,
            csa_back_chan_attrs: attrs(),
            csa_cb_program: 1,
            csa_sec_parms: VarArray(vec![CallbackSecParms4::AuthNone]),
        });
        let (st, mut r) = results(&compound(s, c, 2, 1, vec![cs]));
        let Some(NfsResop4::OpCreateSession(cs)) = r.pop() else {
            panic!("{st} {r:?}")
        };
        (e.eir_clientid, cs)
    }

    fn sequence(sid: [u8; 16], seq: u32) -> NfsArgop4 {
        NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed(sid),
            sa_sequenceid: seq,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: true,
        })
    }

    #[test]
    fn a_retried_slot_gets_the_first_reply_and_runs_nothing() {
        let s = server();
        let c = conn(ConnId::next());
        let (_, sid) = session(&s, &c, b"owner");
        let ops = || vec![sequence(sid, 1), NfsArgop4::OpPutrootfh, NfsArgop4::OpGetfh];
        let first = compound(&s, &c, 10, 1, ops());
        assert_eq!(results(&first).0, 0);
        let again = compound(&s, &c, 11, 1, ops());
        assert_eq!(again, first);
        // Run once: PUTROOTFH counted once, SEQUENCE once (the replay ran no operation).
        let t = &s.unit_counters(super::PROGRAM, super::VERSION)[0];
        assert_eq!(t.calls[24], 1, "putrootfh");
        assert_eq!(t.calls[53], 1, "sequence");
        assert_eq!(s.v4().unwrap().stats().0.sequence_replays, 1);
    }

    /// A panic in an operation after SEQUENCE costs the call (SYSTEM_ERR), not the slot:
    /// the retry is told the reply was not kept, and the slot's next sequence id runs.
    #[test]
    fn a_panic_after_sequence_frees_the_slot() {
        let s = server();
        let c = conn(ConnId::next());
        let (_, sid) = session(&s, &c, b"owner");
        let ops = |seq| vec![sequence(sid, seq), NfsArgop4::OpPutrootfh];
        crate::v4::session_ops::tests::panic_at(Some(24));
        let reply = compound_reply(&s, &c, 10, 1, ops(1));
        crate::v4::session_ops::tests::panic_at(None);
        // xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SYSTEM_ERR (5).
        assert_eq!(
            reply,
            [0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]
        );
        let (st, _) = results(&compound(&s, &c, 11, 1, ops(1)));
        assert_eq!(st, Nfsstat4::Nfs4errRetryUncachedRep as u32);
        let (st, r) = results(&compound(&s, &c, 12, 1, ops(2)));
        assert_eq!((st, r.len()), (0, 2), "{r:?}");
    }

    /// The COMPOUND4args of `ops`.
    fn args_of(ops: Vec<NfsArgop4>) -> Vec<u8> {
        rnfs_xdr::to_bytes(&Compound4args {
            tag: Opaque(b"tag".to_vec()),
            minorversion: 1,
            argarray: VarArray(ops),
        })
    }

    fn read(count: u32) -> NfsArgop4 {
        NfsArgop4::OpRead(Read4args {
            stateid: Stateid4 {
                seqid: 0,
                other: OpaqueFixed([0; 12]),
            },
            offset: 0,
            count,
        })
    }

    fn small_ops() -> Vec<NfsArgop4> {
        vec![
            sequence([7; 16], 1),
            NfsArgop4::OpPutfh(Putfh4args {
                object: Opaque(vec![1; 40]),
            }),
            NfsArgop4::OpGetattr(Getattr4args {
                attr_request: VarArray(vec![0x0010_011a, 0x00b0_a23a]),
            }),
        ]
    }

    /// A COMPOUND is charged what its operations ask for, not the largest READ: small
    /// operations little, READ / READDIR their count (each capped at max_io), the whole at
    /// most max_io + 4 KiB; a WRITE's data is not a reply.
    #[test]
    fn compound_reply_hints_follow_the_operations() {
        const MIB: u32 = 1 << 20;
        let most = MIB as usize + 4096;
        let hint = |ops: Vec<NfsArgop4>| compound_reply_hint(&args_of(ops), MIB);
        let small = HINT_BASE + 2 * HINT_OP + HINT_GETATTR;
        assert_eq!(hint(small_ops()), small);
        assert!(small <= crate::route::SMALL_REPLY);
        let with = |op: NfsArgop4| {
            let mut v = small_ops();
            v.push(op);
            hint(v)
        };
        assert_eq!(with(read(4096)), small + 4096 + HINT_OP);
        assert_eq!(with(read(u32::MAX)), most);
        let readdir = NfsArgop4::OpReaddir(Readdir4args {
            cookie: 0,
            cookieverf: OpaqueFixed([0; 8]),
            dircount: 8192,
            maxcount: 32768,
            attr_request: VarArray(vec![0x18]),
        });
        assert_eq!(with(readdir), small + 32768 + HINT_OP);
        let write = NfsArgop4::OpWrite(Write4args {
            stateid: Stateid4 {
                seqid: 0,
                other: OpaqueFixed([0; 12]),
            },
            offset: 0,
            stable: StableHow4::FileSync4,
            data: Opaque(vec![5; MIB as usize]),
        });
        assert_eq!(with(write), small + HINT_OP);
        // Two large READs: capped at what one reply may take.
        assert_eq!(hint(vec![read(600 << 10), read(600 << 10)]), most);
        // More operations than are looked at: the most.
        assert_eq!(hint(vec![NfsArgop4::OpGetfh; HINT_OPS as usize + 1]), most);
        // Truncated or damaged anywhere: at most what the whole asks, never a panic; a
        // header that does not decode is small.
        let mut ops = small_ops();
        ops.push(read(65536));
        let m = args_of(ops);
        let whole = compound_reply_hint(&m, MIB);
        for cut in 0..m.len() {
            assert!(compound_reply_hint(&m[..cut], MIB) <= whole, "{cut}");
        }
        assert_eq!(
            compound_reply_hint(&m[..10], MIB),
            crate::route::SMALL_REPLY
        );
        let mut bad = m.clone();
        bad[0..4].copy_from_slice(&u32::MAX.to_be_bytes()); // tag length
        assert_eq!(compound_reply_hint(&bad, MIB), crate::route::SMALL_REPLY);
        // Through the server: NULL small, COMPOUND as estimated.
        let s = server();
        let msg = |proc_: u32, args: &[u8]| {
            crate::route::tests::call_to(1, super::PROGRAM, super::VERSION, proc_, args)
        };
        let c = conn(ConnId::next());
        let max_io = s.cfg.max_io;
        assert_eq!(
            s.reply_size_hint(&c, &msg(1, &m)),
            Some(compound_reply_hint(&m, max_io))
        );
        assert_eq!(
            s.reply_size_hint(&c, &msg(0, &[])),
            Some(crate::route::SMALL_REPLY)
        );
    }

    #[test]
    fn exchange_id_with_an_undefined_flag_is_inval() {
        let s = server();
        let c = conn(ConnId::next());
        for (flags, want) in [(0x4, Nfsstat4::Nfs4errInval as u32), (0x1_0000, 0)] {
            let eid = NfsArgop4::OpExchangeId(ExchangeId4args {
                eia_clientowner: ClientOwner4 {
                    co_verifier: OpaqueFixed([1; 8]),
                    co_ownerid: Opaque(b"flags".to_vec()),
                },
                eia_flags: flags,
                eia_state_protect: StateProtect4A::Sp4None,
                eia_client_impl_id: VarArray(Vec::new()),
            });
            assert_eq!(
                results(&compound(&s, &c, 1, 1, vec![eid])).0,
                want,
                "{flags:#x}"
            );
        }
    }

    /// pynfs CSESS15: flags CREATE_SESSION does not define are INVAL (0x8 here); the
    /// defined ones are accepted.
    #[test]
    fn create_session_with_an_undefined_flag_is_inval() {
        let s = server();
        let c = conn(ConnId::next());
        let (_, res) = session_with(&s, &c, b"csflags", 0xf, attrs());
        assert!(
            matches!(res, CreateSession4res::Default(Nfsstat4::Nfs4errInval)),
            "{res:?}"
        );
        let (_, res) = session_with(&s, &c, b"csflags", 0x1, attrs());
        assert!(matches!(res, CreateSession4res::Nfs4Ok(_)), "{res:?}");
    }

    /// pynfs SEQ6: a compound larger than the session's ca_maxrequestsize answers
    /// REQ_TOO_BIG on its SEQUENCE and runs nothing; one that fits runs.
    #[test]
    fn a_request_larger_than_the_session_allows_is_req_too_big() {
        let s = server();
        let c = conn(ConnId::next());
        let fore = ChannelAttrs4 {
            ca_maxrequestsize: 512,
            ..attrs()
        };
        let (_, res) = session_with(&s, &c, b"small", 0, fore);
        let CreateSession4res::Nfs4Ok(cs) = res else {
            panic!("{res:?}")
        };
        assert_eq!(cs.csr_fore_chan_attrs.ca_maxrequestsize, 512);
        let sid = cs.csr_sessionid.0;
        let lookup = |name: Vec<u8>| {
            vec![
                sequence(sid, 1),
                NfsArgop4::OpPutrootfh,
                NfsArgop4::OpLookup(Lookup4args {
                    objname: Opaque(name),
                }),
            ]
        };
        let (st, r) = results(&compound(&s, &c, 3, 1, lookup(b"12345".repeat(100))));
        assert_eq!(st, Nfsstat4::Nfs4errReqTooBig as u32);
        assert_eq!(r.len(), 1, "{r:?}");
        // The slot was not used: sequence id 1 runs now, with a request that fits.
        let (st, r) = results(&compound(&s, &c, 4, 1, lookup(b"x".to_vec())));
        assert_eq!(r.len(), 3, "{st} {r:?}");
    }

    /// A compound with more operations than the session's ca_maxoperations answers
    /// TOO_MANY_OPS on its SEQUENCE before the slot is touched (as knfsd): the same
    /// sequence id then runs a compound that fits.
    #[test]
    fn more_operations_than_the_session_allows_leave_the_slot_alone() {
        let s = server();
        let c = conn(ConnId::next());
        let fore = ChannelAttrs4 {
            ca_maxoperations: 3,
            ..attrs()
        };
        let (_, res) = session_with(&s, &c, b"fewops", 0, fore);
        let CreateSession4res::Nfs4Ok(cs) = res else {
            panic!("{res:?}")
        };
        assert_eq!(cs.csr_fore_chan_attrs.ca_maxoperations, 3);
        let sid = cs.csr_sessionid.0;
        let ops = |n: usize| {
            let mut v = vec![sequence(sid, 1), NfsArgop4::OpPutrootfh];
            v.extend(std::iter::repeat_n(NfsArgop4::OpGetfh, n));
            v
        };
        let (st, r) = results(&compound(&s, &c, 3, 1, ops(2)));
        assert_eq!(st, Nfsstat4::Nfs4errTooManyOps as u32);
        assert_eq!(r.len(), 1, "{r:?}");
        // Sequence id 1 again, and not a replay of the refusal: it runs.
        let (st, r) = results(&compound(&s, &c, 4, 1, ops(1)));
        assert_eq!((st, r.len()), (0, 3), "{r:?}");
    }

    /// pynfs RPLY14: an NFSv4.0 CREATE retransmitted (same xid, same connection) gets the
    /// first reply from the duplicate request cache instead of running again (EXIST).
    #[test]
    fn a_retransmitted_v40_create_gets_its_first_reply() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::with_root(1 << 20, 0, 0, 0o777));
        let cfg = ServerConfig {
            v4: Some(V4Options {
                minors: (0, 2),
                ..V4Options::default()
            }),
            ..ServerConfig::default()
        };
        let s = NfsServer::new(Export::new(1, "/", fs), cfg);
        let c = conn(ConnId::next());
        let mkdir = |n: &[u8]| {
            vec![
                NfsArgop4::OpPutrootfh,
                NfsArgop4::OpCreate(Create4args {
                    objtype: Createtype4::Nf4dir,
                    objname: Opaque(n.to_vec()),
                    createattrs: Fattr4 {
                        attrmask: VarArray(vec![]),
                        attr_vals: Opaque(vec![]),
                    },
                }),
            ]
        };
        let first = compound(&s, &c, 10, 0, mkdir(b"d"));
        assert_eq!(results(&first).0, 0, "{:?}", results(&first));
        assert_eq!(compound(&s, &c, 10, 0, mkdir(b"d")), first);
        assert_eq!(compound(&s, &c, 10, 0, mkdir(b"d")), first);
        let t = &s.unit_counters(super::PROGRAM, super::VERSION)[0];
        assert_eq!(t.calls[6], 1, "create ran once");
        // A new xid runs: the directory is there.
        let (st, _) = results(&compound(&s, &c, 11, 0, mkdir(b"d")));
        assert_eq!(st, Nfsstat4::Nfs4errExist as u32);
        // From another port (another client), the same xid runs too.
        let mut other = conn(ConnId::next());
        other.peer = "127.0.0.1:701".parse().unwrap();
        let (st, _) = results(&compound(&s, &other, 10, 0, mkdir(b"d")));
        assert_eq!(st, Nfsstat4::Nfs4errExist as u32);
    }

    /// Which compounds go through the duplicate request cache: NFSv4.0 ones with an
    /// operation a retry must not run twice; never NFSv4.1 (its slots replay).
    #[test]
    fn only_v40_compounds_of_non_idempotent_operations_are_cached() {
        let of = |minor, ops| {
            rnfs_xdr::to_bytes(&Compound4args {
                tag: Opaque(b"t".to_vec()),
                minorversion: minor,
                argarray: VarArray(ops),
            })
        };
        let remove = NfsArgop4::OpRemove(Remove4args {
            target: Opaque(b"x".to_vec()),
        });
        let write = NfsArgop4::OpWrite(Write4args {
            stateid: Stateid4 {
                seqid: 0,
                other: OpaqueFixed([0; 12]),
            },
            offset: 0,
            stable: StableHow4::FileSync4,
            data: Opaque(vec![7; 4000]),
        });
        let look = [NfsArgop4::OpPutrootfh, read(10), write];
        let with = |op: &NfsArgop4| {
            let mut v = look.to_vec();
            v.push(op.clone());
            v
        };
        assert!(cached40(&of(0, with(&remove))));
        assert!(!cached40(&of(1, with(&remove))));
        assert!(!cached40(&of(0, look.to_vec())));
        for op in [
            NfsArgop4::OpRename(Rename4args {
                oldname: Opaque(b"a".to_vec()),
                newname: Opaque(b"b".to_vec()),
            }),
            NfsArgop4::OpLink(Link4args {
                newname: Opaque(b"b".to_vec()),
            }),
        ] {
            assert!(cached40(&of(0, with(&op))), "{op:?}");
        }
        // Truncated arguments: not cached (the compound fails where they stop).
        let a = of(0, with(&remove));
        assert!(!cached40(&a[..a.len() - 3]));
        assert!(!cached40(&[]));
    }

    #[test]
    fn minor_version_zero_and_three_are_refused() {
        let s = server();
        let c = conn(ConnId::next());
        for minor in [0, 3] {
            let (st, r) = results(&compound(&s, &c, 1, minor, vec![NfsArgop4::OpPutrootfh]));
            assert_eq!(
                (st, r.len()),
                (Nfsstat4::Nfs4errMinorVersMismatch as u32, 0)
            );
        }
    }

    #[test]
    fn a_closed_connection_no_longer_counts_for_its_session() {
        let s = server();
        let (a, b) = (conn(ConnId::next()), conn(ConnId::next()));
        let (_, sid) = session(&s, &a, b"owner");
        assert_eq!(
            results(&compound(&s, &b, 3, 1, vec![sequence(sid, 1)])).0,
            0
        );
        let st = s.v4().unwrap();
        assert_eq!(st.stats().0.connections, 2);
        st.connection_closed(b.id);
        assert_eq!(st.stats().0.connections, 1);
        // DESTROY_SESSION alone on a connection not bound to the session is refused.
        let destroy = || {
            vec![NfsArgop4::OpDestroySession(DestroySession4args {
                dsa_sessionid: OpaqueFixed(sid),
            })]
        };
        let (code, _) = results(&compound(&s, &b, 4, 1, destroy()));
        assert_eq!(code, Nfsstat4::Nfs4errConnNotBoundToSession as u32);
        assert_eq!(results(&compound(&s, &a, 5, 1, destroy())).0, 0);
        assert_eq!(st.stats().0.sessions, 0);
    }

    #[test]
    fn reclaim_complete_needs_a_session_and_is_answered_once() {
        let s = server();
        let c = conn(ConnId::next());
        let rc = || NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs: false });
        let (st, _) = results(&compound(&s, &c, 1, 1, vec![rc()]));
        assert_eq!(st, Nfsstat4::Nfs4errOpNotInSession as u32);
        let (_, sid) = session(&s, &c, b"owner");
        assert_eq!(
            results(&compound(&s, &c, 2, 1, vec![sequence(sid, 1), rc()])).0,
            0
        );
        let (st, _) = results(&compound(&s, &c, 3, 1, vec![sequence(sid, 2), rc()]));
        assert_eq!(st, Nfsstat4::Nfs4errCompleteAlready as u32);
    }

    #[test]
    fn v4_is_off_unless_configured_and_v3_can_be_turned_off() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let only3 = NfsServer::new(Export::new(1, "/", fs.clone()), ServerConfig::default());
        assert!(only3.v4().is_none());
        let cfg = ServerConfig {
            nfs3: false,
            v4: Some(V4Options::default()),
            ..ServerConfig::default()
        };
        let only4 = NfsServer::new(Export::new(1, "/", fs), cfg);
        assert!(only4.unit_counters(100_003, 3).is_empty());
        assert_eq!(only4.unit_counters(super::PROGRAM, super::VERSION).len(), 1);
    }
}
