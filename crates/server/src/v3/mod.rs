//! NFSv3 (RFC 1813) and MOUNT v3: the procedures, their routing units, and the mapping of
//! backend errors to their statuses.
//! - [`Nfs3`]: the routing unit of NFS version 3 (see [`crate::route`]): how long each
//!   procedure may wait, which go through the duplicate request cache, statistics;
//! - [`nfs`]: the 22 procedures, one small function each, and [`read`] (READ, encoded in
//!   place) and [`dir`] (READDIR, READDIRPLUS);
//! - [`mount`]: the MOUNT procedures, their unit and the mount list;
//! - [`status`]: the one place where backend errors become NFSv3 and MOUNT statuses;
//! - [`attr`]: backend attributes to and from the wire.
pub mod attr;
pub mod dir;
pub mod mount;
pub mod nfs;
pub mod read;
pub mod status;

use crate::route::{Env, Peek, Unit, SMALL_REPLY};
use crate::stats::{Counters, CountersSnapshot, TableMetrics};
use crate::{NfsServer, Req};
use rnfs_proto::nfs3::{self as p3, Proc};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::{reply_error, Call};
use rnfs_rpc::transport::{Attempt, Blocking, ConnInfo};
use std::cell::Cell;
use std::sync::atomic::Ordering;

/// NFSv3 procedure names, by number.
pub const NFS3_PROCS: [&str; 22] = [
    "null",
    "getattr",
    "setattr",
    "lookup",
    "access",
    "readlink",
    "read",
    "write",
    "create",
    "mkdir",
    "symlink",
    "mknod",
    "remove",
    "rmdir",
    "rename",
    "link",
    "readdir",
    "readdirplus",
    "fsstat",
    "fsinfo",
    "pathconf",
    "commit",
];

/// The routing unit of NFS version 3.
#[derive(Debug)]
pub struct Nfs3 {
    counters: Counters,
}

/// The unit, its counters at zero.
impl Default for Nfs3 {
    fn default() -> Self {
        Self {
            counters: Counters::new(&NFS3_PROCS),
        }
    }
}

impl Nfs3 {
    /// Counts a reply of `p`, reading its status from the encoded reply.
    fn count(&self, s: &NfsServer, p: Proc, reply: &[u8]) {
        // Header: xid, REPLY, MSG_ACCEPTED, verifier (flavour, empty body), accept_stat.
        // A call whose arguments did not decode is a bad call, not a call of `p`.
        if reply.len() < 24 || reply[20..24] != [0, 0, 0, 0] {
            s.stats.rpc_bad_calls();
            return;
        }
        // Our replies carry an AUTH_NONE verifier: the status follows 24 header bytes.
        match reply.get(24..28) {
            Some(st) if p != Proc::Null => {
                let st = u32::from_be_bytes([st[0], st[1], st[2], st[3]]);
                self.counters.result(p as usize, st);
            }
            _ => self.counters.call(p as usize),
        }
    }
}

/// The NFSv3 status of an accepted, successful reply (our replies carry an AUTH_NONE
/// verifier, so it follows 24 header bytes); `None` for any other reply.
fn reply_status(reply: &[u8]) -> Option<u32> {
    // xid, REPLY, MSG_ACCEPTED, verifier (flavour, empty body), accept_stat SUCCESS.
    if reply.get(8..24)? != [0; 16] {
        return None;
    }
    let st = reply.get(24..28)?;
    Some(u32::from_be_bytes([st[0], st[1], st[2], st[3]]))
}

impl Unit for Nfs3 {
    fn program(&self) -> u32 {
        p3::PROGRAM
    }

    fn version(&self) -> u32 {
        p3::VERSION
    }

    /// From the procedure alone.
    ///
    /// Data calls never simply run inline: a READ of data not in the page cache waits for
    /// the disk (or forever, on a hung device), a WRITE can be throttled by the kernel's
    /// dirty limits, COMMIT and stable WRITEs fsync. Run inline, any of them would stall
    /// every other call of its connection (the FUSE test
    /// `slow_read_does_not_hold_up_other_requests` holds a READ at the server and caught
    /// exactly that). A READ is tried inline with a read that fails rather than waits
    /// (`Backend::try_read_into`), and goes to the pool only when that fails; WRITE and
    /// COMMIT always go to the pool (no kernel here takes a buffered write that fails
    /// rather than waits, on ext4 or tmpfs: docs/performance.md). Metadata calls, served
    /// from the kernel's caches nearly always, run inline when they are the connection's
    /// only call. Backends whose data is in memory (tmpfs) have data calls that wait no
    /// more than metadata calls do.
    /// Every NFS call is *tried* inline (not simply run): a handle whose key the backend
    /// must search for sends the call to the pool (`Req::defer`, the `search` module), so
    /// no walk of the export ever runs on a connection's task.
    fn classify(&self, call: &Peek<'_>, env: &Env) -> Blocking {
        let proc_ = call.proc_;
        if env.never_blocks || proc_ == Proc::Null as u32 {
            return Blocking::Never;
        }
        let data = [Proc::Read, Proc::Write, Proc::Commit];
        if env.data_in_memory && data.iter().any(|p| *p as u32 == proc_) {
            return Blocking::TryInline;
        }
        if [Proc::Write, Proc::Commit]
            .iter()
            .any(|p| *p as u32 == proc_)
        {
            return Blocking::Likely;
        }
        Blocking::TryInline
    }

    /// The count of a READ, READDIR or READDIRPLUS (at most `max_io`) plus its headers, a
    /// few KiB for any other call. Read from a few words; what cannot be read is small.
    fn reply_hint(&self, call: &Peek<'_>, max_io: u32) -> usize {
        let Some(args) = call.args else {
            return SMALL_REPLY;
        };
        let word = |at: usize| {
            args.get(at..at.checked_add(4)?)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
        };
        // The file handle first (an opaque: length word, body padded to 4).
        let count_at = |after_fh: usize| -> Option<u32> {
            let len = usize::try_from(word(0)?).ok()?;
            let fh_end = 4usize.checked_add(len.checked_add(3)? & !3)?;
            word(fh_end.checked_add(after_fh)?)
        };
        let proc_ = call.proc_;
        let count = if proc_ == Proc::Read as u32 {
            count_at(8) // offset
        } else if proc_ == Proc::Readdir as u32 {
            count_at(16) // cookie, verifier
        } else if proc_ == Proc::Readdirplus as u32 {
            count_at(20) // cookie, verifier, dircount
        } else {
            None
        };
        count.map_or(SMALL_REPLY, |c| c.min(max_io) as usize + 4096)
    }

    /// The non-idempotent procedures (RFC 1813 section 3.3: CREATE, REMOVE, RENAME...):
    /// a retransmission must get the first reply, not run again.
    fn cached(&self, proc_: u32, _: &[u8]) -> bool {
        Proc::from_u32(proc_).is_some_and(|p| p.is_non_idempotent())
    }

    fn dispatch(&self, s: &NfsServer, req: &Req<'_>, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let Some(p) = Proc::from_u32(proc_) else {
            return reply_error(xid, ReplyStatus::ProcUnavail);
        };
        let reply = nfs::dispatch(s, req, xid, p, args);
        if !req.deferred() {
            self.count(s, p, &reply);
        }
        reply
    }

    /// A READ of data at hand, and any other call whose handles the backend can place
    /// without a search.
    fn try_call(&self, s: &NfsServer, conn: &ConnInfo, msg: &[u8], call: &Call<'_>) -> Attempt {
        let h = &call.header;
        let deferred = Cell::new(false);
        // A READ of data in memory waits no more than a metadata call: run it whole.
        let data_at_hand = s.data_in_memory.load(Ordering::Relaxed);
        if h.proc_ != Proc::Read as u32 || data_at_hand {
            let r = s.dispatch(conn, msg, Some(&deferred));
            return if deferred.get() {
                Attempt::WouldBlock
            } else {
                Attempt::Done(r)
            };
        }
        let _span =
            tracing::debug_span!("call", xid = h.xid, prog = h.prog, proc = h.proc_).entered();
        let req = Req {
            conn,
            auth: &call.auth,
            defer: Some(&deferred),
        };
        match read::try_read_reply(s, &req, h.xid, call.args) {
            _ if deferred.get() => Attempt::WouldBlock,
            Some(reply) => {
                self.count(s, Proc::Read, &reply);
                Attempt::Done(Some(reply))
            }
            None => Attempt::WouldBlock,
        }
    }

    /// BADHANDLE: a handle whose tag does not match, forged or damaged, never one we
    /// issued. STALE is not the client's fault.
    fn client_fault(&self, reply: &[u8]) -> bool {
        reply_status(reply) == Some(p3::Nfsstat3::BadHandle as u32)
    }

    fn counters(&self) -> Vec<CountersSnapshot> {
        vec![self.counters.snapshot()]
    }

    fn metrics(&self, o: &mut String) {
        self.counters.snapshot().write_metrics(
            o,
            &TableMetrics {
                calls: ("rnfs_nfs3_calls_total", "NFSv3 calls by procedure."),
                errors: (
                    "rnfs_nfs3_errors_total",
                    "NFSv3 replies with a status other than NFS3_OK, by procedure.",
                ),
                statuses: ("rnfs_nfs3_status_total", "NFSv3 error replies by status."),
                label: "proc",
                skip_zero: false,
                status_name: |code| match p3::Nfsstat3::from_u32(code) {
                    Some(v) => format!("{v:?}"),
                    None => code.to_string(),
                },
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_rpc::message::reply_with;

    #[test]
    fn only_a_badhandle_reply_is_the_clients_fault() {
        let u = Nfs3::default();
        let st = |s: p3::Nfsstat3| reply_with(7, &(s as u32));
        assert!(u.client_fault(&st(p3::Nfsstat3::BadHandle)));
        assert!(!u.client_fault(&st(p3::Nfsstat3::Stale)));
        assert!(!u.client_fault(&st(p3::Nfsstat3::Ok)));
        assert!(!u.client_fault(&reply_error(7, ReplyStatus::GarbageArgs)));
        assert!(!u.client_fault(&[0; 10]));
    }
}
