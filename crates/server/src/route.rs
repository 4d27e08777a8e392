//! The routing point: one [`Unit`] per (program, version).
//!
//! A call names its program, version and procedure in the fixed part of its RPC header
//! (RFC 5531 section 9: xid, CALL, rpcvers, prog, vers, proc, then the credential and the
//! verifier). The server reads those three words ([`Peek`]), finds the unit registered for
//! the (program, version) pair in its [`Routes`], and leaves the rest to the unit. A unit
//! owns, for its program and version:
//! - **classification**: how long a call may wait ([`Unit::classify`], what the transport
//!   asks through `Service::blocking`), from the procedure and, where it wants to, the
//!   arguments (NFSv4 classifies each COMPOUND by its operations);
//! - **replay caching**: whether a call goes through the server's duplicate request cache
//!   ([`Unit::cached`]: the non-idempotent NFSv3 procedures; NFSv4.1 has its own slot
//!   cache per session and says no);
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
pub(crate) const SMALL_REPLY: usize = 8 * 1024;

/// The words of a call message the routing reads without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peek<'a> {
    /// Program number.
    pub(crate) prog: u32,
    /// Program version.
    pub(crate) vers: u32,
    /// Procedure number.
    pub(crate) proc_: u32,
    /// The encoded arguments, after the credential and the verifier; `None` when those
    /// do not fit in the message (it will be answered with an error once decoded).
    pub(crate) args: Option<&'a [u8]>,
}

impl<'a> Peek<'a> {
    /// The program, version and procedure of `msg`, if its header reaches that far.
    pub(crate) fn of(msg: &'a [u8]) -> Option<Self> {
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
pub(crate) struct Env {
    /// No export's backend ever blocks ([`crate::Export::never_blocks`]).
    pub(crate) never_blocks: bool,
    /// Every export keeps its data in memory ([`crate::Export::data_in_memory`]).
    pub(crate) data_in_memory: bool,
}

/// One (program, version) the server serves. See the module documentation.
pub(crate) trait Unit: Send + Sync {
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

    /// Whether procedure `proc_` goes through the duplicate request cache.
    fn cached(&self, _proc_: u32) -> bool {
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
