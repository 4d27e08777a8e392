//! The rnfs server: MOUNT v3 and NFSv3 (RFC 1813) over a [`rnfs_vfs::Backend`].
//!
//! [`NfsServer`] is an [`rnfs_rpc::transport::Service`]: it takes one call message and
//! returns the reply message, with no I/O of its own beyond the backend, so every procedure
//! can be tested by feeding it bytes. The pieces:
//! - [`handle`]: wire file handles (export id, backend key, check value);
//! - [`status`]: the one place where backend errors become NFS and MOUNT statuses;
//! - [`nfs3`]: the 22 NFSv3 procedures, one small function each;
//! - [`mount`]: the MOUNT procedures;
//! - [`stats`]: counters per procedure, errors, bytes and reply-cache activity.
#![forbid(unsafe_code)]

pub mod attr;
pub mod handle;
pub mod mount;
pub mod nfs3;
pub mod stats;
pub mod status;

use parking_lot::Mutex;
use rnfs_proto::rpc::ReplyStatus;
use rnfs_proto::{mount3, nfs3 as p3};
use rnfs_rpc::drc::{Drc, DrcKey, Lookup};
use rnfs_rpc::message::{decode_call, reply_error, Auth, BadCall};
use rnfs_rpc::transport::{ConnInfo, Service};
use rnfs_vfs::{Backend, Creds, Ctx};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// Identity used for AUTH_NONE callers (and, later, squashed ones).
pub const ANON_ID: u32 = 65534;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Refuse every change with ROFS.
    pub read_only: bool,
    /// Largest READ/WRITE payload advertised and accepted.
    pub max_io: u32,
    /// Duplicate request cache: most replies kept.
    pub drc_entries: usize,
    /// Duplicate request cache: most reply bytes kept.
    pub drc_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            max_io: 1 << 20,
            drc_entries: 4096,
            drc_bytes: 16 << 20,
        }
    }
}

/// One exported file system.
pub struct Export {
    /// Identifier carried in every handle of this export.
    pub id: u16,
    /// The path clients mount (`/` for the simple form).
    pub path: String,
    /// The backend.
    pub fs: Arc<dyn Backend>,
    /// Key that makes handle check values specific to this export.
    pub(crate) secret: u64,
}

impl Export {
    /// An export of `fs` mounted as `path`.
    pub fn new(id: u16, path: impl Into<String>, fs: Arc<dyn Backend>) -> Self {
        let path = path.into();
        let mut secret = 0x5bd1_e995_u64 ^ u64::from(id);
        for b in path.bytes().chain(fs.root().0.iter().copied()) {
            secret = (secret ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            id,
            path,
            fs,
            secret,
        }
    }
}

/// The NFSv3 + MOUNT server.
pub struct NfsServer {
    pub(crate) export: Export,
    pub(crate) cfg: ServerConfig,
    pub(crate) drc: Drc,
    /// Changes at every start so clients resend uncommitted UNSTABLE writes (RFC 1813 3.3.7).
    pub(crate) write_verf: [u8; 8],
    pub(crate) mounts: Mutex<BTreeSet<(IpAddr, String)>>,
    /// Counters.
    pub stats: stats::Stats,
}

impl NfsServer {
    /// A server exporting `export`.
    pub fn new(export: Export, cfg: ServerConfig) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let v = (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 48);
        Self {
            drc: Drc::new(cfg.drc_entries, cfg.drc_bytes),
            export,
            cfg,
            write_verf: v.to_be_bytes(),
            mounts: Mutex::default(),
            stats: stats::Stats::default(),
        }
    }

    /// Duplicate request cache counters.
    pub fn drc_stats(&self) -> rnfs_rpc::drc::DrcStats {
        self.drc.stats()
    }

    /// The write verifier of this server instance.
    pub fn write_verifier(&self) -> [u8; 8] {
        self.write_verf
    }

    fn ctx(auth: &Auth) -> Ctx {
        match auth {
            Auth::Sys(p) => Ctx::new(Creds {
                uid: p.uid,
                gid: p.gid,
                gids: p.gids.0.clone(),
            }),
            Auth::None => Ctx::new(Creds {
                uid: ANON_ID,
                gid: ANON_ID,
                gids: Vec::new(),
            }),
        }
    }

    fn dispatch(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        let call = match decode_call(msg) {
            Ok(c) => c,
            Err(BadCall::Reply(r)) => {
                self.stats.rpc_bad_calls();
                return Some(r);
            }
            Err(BadCall::Drop) => {
                self.stats.rpc_bad_calls();
                return None;
            }
        };
        let h = &call.header;
        let _span =
            tracing::debug_span!("call", xid = h.xid, prog = h.prog, proc = h.proc_).entered();
        let ctx = Self::ctx(&call.auth);
        match h.prog {
            p3::PROGRAM => {
                if h.vers != p3::VERSION {
                    return Some(reply_error(
                        h.xid,
                        ReplyStatus::ProgMismatch { low: 3, high: 3 },
                    ));
                }
                let Some(proc_) = p3::Proc::from_u32(h.proc_) else {
                    return Some(reply_error(h.xid, ReplyStatus::ProcUnavail));
                };
                if !proc_.is_non_idempotent() {
                    return Some(self.run_nfs(&ctx, h.xid, proc_, call.args));
                }
                let key = DrcKey::new(conn.peer.ip(), h.xid, (h.prog, h.vers, h.proc_), call.args);
                match self.drc.begin(&key) {
                    Lookup::Replay(r) => Some((*r).clone()),
                    Lookup::InProgress => None,
                    Lookup::New => {
                        let r = self.run_nfs(&ctx, h.xid, proc_, call.args);
                        self.drc.complete(&key, Arc::new(r.clone()));
                        Some(r)
                    }
                }
            }
            mount3::PROGRAM => {
                if h.vers != mount3::VERSION {
                    return Some(reply_error(
                        h.xid,
                        ReplyStatus::ProgMismatch { low: 3, high: 3 },
                    ));
                }
                let Some(proc_) = mount3::Proc::from_u32(h.proc_) else {
                    return Some(reply_error(h.xid, ReplyStatus::ProcUnavail));
                };
                self.stats.mount_call(proc_);
                Some(mount::dispatch(self, conn, &ctx, h.xid, proc_, call.args))
            }
            _ => Some(reply_error(h.xid, ReplyStatus::ProgUnavail)),
        }
    }

    fn run_nfs(&self, ctx: &Ctx, xid: u32, proc_: p3::Proc, args: &[u8]) -> Vec<u8> {
        let reply = nfs3::dispatch(self, ctx, xid, proc_, args);
        self.stats.nfs_reply(proc_, &reply);
        reply
    }
}

impl Service for NfsServer {
    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        // A bug in a handler must cost one call, not the server: answer SYSTEM_ERR.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.dispatch(conn, msg))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("handler panicked; answering SYSTEM_ERR");
                let mut r = rnfs_xdr::Reader::new(msg);
                r.u32()
                    .ok()
                    .map(|xid| reply_error(xid, ReplyStatus::SystemErr))
            }
        }
    }
}
