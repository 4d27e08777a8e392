//! The routing point: one [`Unit`] per (program, version).
//!
//! A call names its program, version and procedure in the fixed part of its RPC header
//! (RFC 5531 section 9: xid, CALL, rpcvers, prog, vers, proc, then the credential and the
//! verifier). The server reads those three words ([`Peek`]), finds the unit registered for
//! the (program, version) pair in its table of routes, and leaves the rest to the unit. A unit
//! owns, for its program and version:
//! - **classification**: how long a call may wait ([`Unit::classify`], what the transport
//!   asks through `Service::blocking`), from the procedure and, where it wants to, the
//!   arguments (NFSv4 classifies each COMPOUND by its operations);
//! - **replay caching**: whether a call goes through the server's duplicate request cache
//!   ([`Unit::cached`]: the non-idempotent NFSv3 procedures, and the NFSv4.0 compounds
//!   holding a non-idempotent operation; NFSv4.1 has its own slot cache per session);
//! - **dispatch**: decoding, running and encoding ([`Unit::dispatch`], and
//!   [`Unit::try_call`] for the calls it classes as worth trying on the connection's task);
//! - **statistics**: its own named counters ([`crate::stats::Counters`], one table per
//!   procedure list, another per operation list for a program whose calls carry
//!   operations) and their lines in the metrics text ([`Unit::metrics`]).
//!
//! A known program at a version no unit serves is answered PROG_MISMATCH with the lowest
//! and highest versions registered for that program; an unknown program PROG_UNAVAIL; a
//! procedure the unit does not have PROC_UNAVAIL (the unit answers that itself).
//!
//! Why trait objects in a list: there are few units (NFSv3, MOUNT v3, the admin program;
//! NFSv4 next), fixed when the server is made, each with state of its own (counters; the
//! NFSv4 unit its sessions). A lookup is a scan of those few entries; a new version is a
//! new type in its own module rather than a new arm in every `match` of the server.
use crate::stats::CountersSnapshot;
use crate::{NfsServer, Req};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::Call;
use rnfs_rpc::transport::{Attempt, Blocking, ConnInfo};

/// A reply size estimate for calls whose replies are small (see [`Unit::reply_hint`]).
pub const SMALL_REPLY: usize = 8 * 1024;

/// The words of a call message the routing reads without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek<'a> {
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// The encoded arguments, after the credential and the verifier; `None` when those
    /// do not fit in the message (it will be answered with an error once decoded).
    pub args: Option<&'a [u8]>,
}

impl<'a> Peek<'a> {
    /// The program, version and procedure of `msg`, if its header reaches that far.
    pub fn of(msg: &'a [u8]) -> Option<Self> {
        let word = |at: usize| {
            msg.get(at..at.checked_add(4)?)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
        };
        // Skips an opaque (length word, body padded to 4) at `at`; where the next item starts.
        let skip = |at: usize| -> Option<usize> {
            let len = usize::try_from(word(at)?).ok()?;
            at.checked_add(4)?.checked_add(len.checked_add(3)? & !3)
        };
        // xid, CALL, rpcvers, prog, vers, proc, then the credential's flavour at 24 and
        // its body at 28, the verifier's flavour and body after it.
        let (prog, vers, proc_) = (word(12)?, word(16)?, word(20)?);
        let args = skip(28)
            .and_then(|verf| skip(verf.checked_add(4)?))
            .and_then(|at| msg.get(at..));
        Some(Self {
            prog,
            vers,
            proc_,
            args,
        })
    }
}

/// What classification may depend on besides the call: the backends in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env {
    /// No export's backend ever blocks ([`crate::Export::never_blocks`]).
    pub never_blocks: bool,
    /// Every export keeps its data in memory ([`crate::Export::data_in_memory`]).
    pub data_in_memory: bool,
}

/// One (program, version) the server serves. See the module documentation.
pub trait Unit: Send + Sync {
    /// The program number.
    fn program(&self) -> u32;

    /// The version.
    fn version(&self) -> u32;

    /// Whether a caller on `conn` may see this program at all; one that may not is
    /// answered as if the program were unknown (the admin program: loopback only).
    fn serves(&self, _conn: &ConnInfo) -> bool {
        true
    }

    /// How long `call` may wait.
    fn classify(&self, call: &Peek<'_>, env: &Env) -> Blocking;

    /// About how large the reply to `call` is, with READ-sized replies at most `max_io`
    /// bytes of data (see `Service::reply_size_hint`).
    fn reply_hint(&self, _call: &Peek<'_>, _max_io: u32) -> usize {
        SMALL_REPLY
    }

    /// Whether a call of procedure `proc_` with arguments `args` goes through the duplicate
    /// request cache.
    fn cached(&self, _proc_: u32, _args: &[u8]) -> bool {
        false
    }

    /// Decodes the arguments of `proc_`, runs it, counts it in the unit's statistics and
    /// encodes the reply message (PROC_UNAVAIL for a procedure the unit does not have).
    /// A call given up to run on the pool ([`Req::defer`]) is not counted.
    fn dispatch(&self, s: &NfsServer, req: &Req<'_>, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8>;

    /// Runs `call` on the connection's task if it can finish there without waiting (see
    /// `Service::try_call`); only asked for calls [`Unit::classify`] classed
    /// [`Blocking::TryInline`].
    fn try_call(&self, _s: &NfsServer, _conn: &ConnInfo, _msg: &[u8], _call: &Call<'_>) -> Attempt {
        Attempt::WouldBlock
    }

    /// Whether `reply` (to a call of this unit) says the caller was at fault in a way a
    /// well-behaved client never is (a forged handle), for a transport that slows such
    /// callers down. RPC-level refusals are judged by the transport, not here.
    fn client_fault(&self, _reply: &[u8]) -> bool {
        false
    }

    /// The unit's counter tables (see [`crate::stats::Counters`]).
    fn counters(&self) -> Vec<CountersSnapshot> {
        Vec::new()
    }

    /// Appends the unit's counters to the metrics text (Prometheus text format).
    fn metrics(&self, _out: &mut String) {}
}

/// The units a server serves, looked up by (program, version).
#[derive(Default)]
pub(crate) struct Routes {
    units: Vec<Box<dyn Unit>>,
}

/// Where a call goes.
pub(crate) enum Route<'a> {
    /// To this unit.
    Unit(&'a dyn Unit),
    /// Nowhere: send this error reply.
    Refused(ReplyStatus),
}

impl Routes {
    /// Adds a unit; a unit registered for the same (program, version) is replaced.
    pub(crate) fn register(&mut self, unit: Box<dyn Unit>) {
        let key = (unit.program(), unit.version());
        self.units.retain(|u| (u.program(), u.version()) != key);
        self.units.push(unit);
    }

    /// The unit for (`prog`, `vers`), whoever calls (for classification, before the
    /// caller is known).
    pub(crate) fn unit(&self, prog: u32, vers: u32) -> Option<&dyn Unit> {
        self.units
            .iter()
            .find(|u| u.program() == prog && u.version() == vers)
            .map(|u| &**u)
    }

    /// Where a call from `conn` to (`prog`, `vers`) goes.
    pub(crate) fn route(&self, conn: &ConnInfo, prog: u32, vers: u32) -> Route<'_> {
        let mut range: Option<(u32, u32)> = None;
        for u in self.units.iter().filter(|u| u.program() == prog) {
            if !u.serves(conn) {
                continue;
            }
            if u.version() == vers {
                return Route::Unit(&**u);
            }
            let v = u.version();
            range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
        match range {
            Some((low, high)) => Route::Refused(ReplyStatus::ProgMismatch { low, high }),
            None => Route::Refused(ReplyStatus::ProgUnavail),
        }
    }

    /// Every unit, in the order registered (the order of the metrics text).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &dyn Unit> {
        self.units.iter().map(|u| &**u)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{admin, stats, Export, ServerConfig};
    use rnfs_proto::rpc::{CallHeader, OpaqueAuth};
    use rnfs_proto::{mount3, nfs3 as p3};
    use rnfs_rpc::transport::Service;
    use rnfs_xdr::Writer;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    fn mem_server() -> NfsServer {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        NfsServer::new(Export::new(1, "/", fs), ServerConfig::default())
    }

    /// A call message to any program and version, with AUTH_NONE.
    pub(crate) fn call_to(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        CallHeader {
            xid,
            rpcvers: 2,
            prog,
            vers,
            proc_,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        let mut m = w.into_inner();
        m.extend_from_slice(args);
        m
    }

    fn status_of(reply: &[u8]) -> ReplyStatus {
        rnfs_proto::rpc::ReplyHeader::decode(&mut rnfs_xdr::Reader::new(reply))
            .unwrap()
            .status
    }

    fn conn_from(ip: [u8; 4]) -> ConnInfo {
        ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: std::net::SocketAddr::from((ip, 700)),
            local: "127.0.0.1:2049".parse().unwrap(),
        }
    }

    #[test]
    fn an_unknown_version_gets_the_range_the_program_has_and_an_unknown_program_unavail() {
        let s = mem_server();
        let lo = conn_from([127, 0, 0, 1]);
        let refusal = |conn: &ConnInfo, prog, vers| {
            status_of(&s.call(conn, &call_to(1, prog, vers, 0, &[])).unwrap())
        };
        let v3 = ReplyStatus::ProgMismatch { low: 3, high: 3 };
        for v in [0, 2, 4, u32::MAX] {
            assert_eq!(refusal(&lo, p3::PROGRAM, v), v3, "NFS version {v}");
            assert_eq!(refusal(&lo, mount3::PROGRAM, v), v3, "MOUNT version {v}");
        }
        let admin_range = ReplyStatus::ProgMismatch { low: 1, high: 1 };
        assert_eq!(refusal(&lo, admin::PROGRAM, 2), admin_range);
        assert_eq!(refusal(&lo, 100099, 3), ReplyStatus::ProgUnavail);
        // The admin program exists only for loopback callers: to others, it is unknown.
        let far = conn_from([10, 0, 0, 1]);
        for v in [1, 2] {
            assert_eq!(refusal(&far, admin::PROGRAM, v), ReplyStatus::ProgUnavail);
        }
        assert_eq!(refusal(&lo, admin::PROGRAM, 1), ReplyStatus::Success);
        // A procedure the unit does not have.
        let r = s.call(&lo, &call_to(2, p3::PROGRAM, 3, 22, &[])).unwrap();
        assert_eq!(status_of(&r), ReplyStatus::ProcUnavail);
        let r = s
            .call(&lo, &call_to(2, mount3::PROGRAM, 3, 6, &[]))
            .unwrap();
        assert_eq!(status_of(&r), ReplyStatus::ProcUnavail);
        // Refusals are not calls of any unit.
        assert!(s.unit_counters(p3::PROGRAM, 3)[0]
            .calls
            .iter()
            .all(|c| *c == 0));
        assert!(s.unit_counters(mount3::PROGRAM, 3)[0]
            .calls
            .iter()
            .all(|c| *c == 0));
    }

    /// A unit for a made-up program: procedure 1 carries "operations" (each word of its
    /// arguments one, as a COMPOUND carries several) counted in a table of their own;
    /// procedure 2 goes through the reply cache; procedure 3 may wait for long.
    struct Fake {
        vers: u32,
        procs: stats::Counters,
        ops: stats::Counters,
        runs: std::sync::atomic::AtomicU64,
    }

    const FAKE: u32 = 0x2fff_0001;

    impl Fake {
        fn new(vers: u32) -> Self {
            Self {
                vers,
                procs: stats::Counters::new(&["null", "compound", "create", "sync"]),
                ops: stats::Counters::new(&["op_a", "op_b"]),
                runs: Default::default(),
            }
        }
    }

    impl Unit for Fake {
        fn program(&self) -> u32 {
            FAKE
        }
        fn version(&self) -> u32 {
            self.vers
        }
        fn classify(&self, call: &Peek<'_>, env: &Env) -> Blocking {
            match (call.proc_, call.args.map(<[u8]>::len)) {
                (3, _) if !env.never_blocks => Blocking::Likely,
                (1, Some(n)) if n > 8 => Blocking::Rarely, // more than two operations
                _ => Blocking::Never,
            }
        }
        fn cached(&self, proc_: u32, _: &[u8]) -> bool {
            proc_ == 2
        }
        fn dispatch(
            &self,
            _s: &NfsServer,
            _req: &Req<'_>,
            xid: u32,
            proc_: u32,
            args: &[u8],
        ) -> Vec<u8> {
            self.runs.fetch_add(1, Ordering::Relaxed);
            if proc_ == 1 {
                for op in args.chunks(4) {
                    let op = u32::from_be_bytes(op.try_into().unwrap());
                    self.ops.result(op as usize, u32::from(op == 1));
                }
            }
            self.procs.call(proc_ as usize);
            rnfs_rpc::message::reply_with(xid, &self.runs.load(Ordering::Relaxed))
        }
        fn counters(&self) -> Vec<stats::CountersSnapshot> {
            vec![self.procs.snapshot(), self.ops.snapshot()]
        }
        fn metrics(&self, out: &mut String) {
            let ops = self.ops.snapshot();
            for (n, c) in ops.names.iter().zip(&ops.calls) {
                out.push_str(&format!("fake_ops_total{{op=\"{n}\"}} {c}\n"));
            }
        }
    }

    #[test]
    fn a_unit_registered_for_a_program_owns_its_classification_caching_and_counters() {
        let mut s = mem_server();
        s.routes.register(Box::new(Fake::new(2)));
        s.routes.register(Box::new(Fake::new(5)));
        let conn = conn_from([10, 0, 0, 9]);
        // Versions: the program's range, from every unit registered for it.
        let r = s.call(&conn, &call_to(1, FAKE, 3, 0, &[])).unwrap();
        assert_eq!(status_of(&r), ReplyStatus::ProgMismatch { low: 2, high: 5 });
        // Classification is the unit's, from the procedure and the arguments.
        let ops = |n: u32| {
            (0..n)
                .flat_map(|i| (i % 2).to_be_bytes())
                .collect::<Vec<u8>>()
        };
        assert_eq!(s.classify(&call_to(1, FAKE, 5, 3, &[])), Blocking::Likely);
        assert_eq!(
            s.classify(&call_to(1, FAKE, 5, 1, &ops(2))),
            Blocking::Never
        );
        assert_eq!(
            s.classify(&call_to(1, FAKE, 5, 1, &ops(3))),
            Blocking::Rarely
        );
        s.never_blocks.store(true, Ordering::Relaxed);
        assert_eq!(s.classify(&call_to(1, FAKE, 5, 3, &[])), Blocking::Never);
        // NFSv3 keeps its own: a WRITE under a backend that never blocks runs inline.
        let write = call_to(1, p3::PROGRAM, 3, p3::Proc::Write as u32, &[]);
        assert_eq!(s.classify(&write), Blocking::Never);
        // Counters: per procedure, and per operation inside a call.
        s.call(&conn, &call_to(2, FAKE, 5, 1, &ops(3))).unwrap();
        s.call(&conn, &call_to(3, FAKE, 2, 1, &ops(1))).unwrap();
        let c = s.unit_counters(FAKE, 5);
        assert_eq!(c[0].calls_of("compound"), Some(1));
        assert_eq!(
            (c[1].calls_of("op_a"), c[1].calls_of("op_b")),
            (Some(2), Some(1))
        );
        assert_eq!(c[1].by_status, [(1, 1)]);
        assert_eq!(s.unit_counters(FAKE, 2)[1].calls_of("op_a"), Some(1));
        assert!(s.unit_counters(p3::PROGRAM, 3)[0]
            .calls
            .iter()
            .all(|c| *c == 0));
        // Reply caching is the unit's choice: procedure 2 is replayed, 1 runs again.
        let create = call_to(9, FAKE, 5, 2, &[]);
        let first = s.call(&conn, &create).unwrap();
        assert_eq!(s.call(&conn, &create).unwrap(), first, "replayed");
        let compound = call_to(10, FAKE, 5, 1, &[]);
        let first = s.call(&conn, &compound).unwrap();
        assert_ne!(s.call(&conn, &compound).unwrap(), first, "run again");
        assert_eq!(s.drc_stats().hits, 1);
        // Its metrics are in the server's text.
        assert!(admin::metrics_text(&s).contains("fake_ops_total{op=\"op_a\"} 2\n"));
    }
}
