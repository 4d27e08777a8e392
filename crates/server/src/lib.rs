//! The rnfs server: MOUNT v3 and NFSv3 (RFC 1813) over a [`rnfs_vfs::Backend`].
//!
//! [`NfsServer`] is an [`rnfs_rpc::transport::Service`]: it takes one call message and
//! returns the reply message, with no I/O of its own beyond the backend, so every procedure
//! can be tested by feeding it bytes. The pieces:
//! - [`Export`], [`ExportTable`]: what is served; [`Req`] and the scope of a call (who
//!   calls, the export and rights it is admitted to, a handle checked and placed);
//! - [`route`]: one unit per (program, version), which owns its classification, replay
//!   caching, dispatch and statistics; the server routes each call to its unit;
//! - [`handle`]: wire file handles (export id, backend key, MAC tag);
//! - [`state`]: the state directory, which keeps the handle secret across restarts;
//! - [`search`]: bounds on searching for keys the backend does not know;
//! - [`v3`]: NFSv3 and MOUNT v3, their units, and the one place where backend errors
//!   become their statuses; [`v4`]: NFSv4;
//! - [`admin`]: the administration program (statistics for `rnfs stats`, metrics);
//! - [`stats`]: server-wide counters, and the named counter tables of the units.
//!
//! Below the protocol layers (exports, handles, searches, the backend) errors are neutral
//! ([`rnfs_vfs::VfsError`]); each protocol version maps them to its statuses once.
#![forbid(unsafe_code)]

pub mod admin;
mod export_table;
pub mod exports;
pub mod handle;
pub mod route;
mod scope;
pub mod search;
pub mod state;
pub mod stats;
pub mod v3;
pub mod v4;

use parking_lot::{Mutex, RwLock};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::drc::{Drc, DrcKey, Lookup};
use rnfs_rpc::message::{decode_call, reply_error, BadCall};
use rnfs_rpc::transport::{Attempt, Blocking, ConnInfo, Service};
use route::{Env, Peek, Route, Routes};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use v3::mount;

pub use export_table::{Export, ExportTable};
pub use scope::Req;
pub(crate) use scope::{Denied, Scope};

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
    /// Mount list (what MOUNT DUMP reports): most entries per client address; its oldest
    /// is forgotten beyond (see [`mount`]).
    pub mounts_per_client: usize,
    /// Mount list: most entries in all; the oldest is forgotten beyond.
    pub mounts_total: usize,
    /// The secret that keys handle MACs ([`handle`]): the same secret gives the same
    /// handles, so a server that must keep its handles across restarts loads it from its
    /// state directory ([`state::load_or_create`]). The default is a new random one.
    pub handle_secret: handle::HandleSecret,
    /// Bounds on searching for keys the backend does not know.
    pub search: search::SearchConfig,
    /// Serve NFSv3 and MOUNT v3 (on by default).
    pub nfs3: bool,
    /// Serve NFSv4 (its minor versions, lease and records): off by default in the library
    /// (`rnfs serve` turns it on).
    pub v4: Option<v4::service::V4Options>,
}

/// Default of [`ServerConfig::mounts_per_client`].
pub const DEFAULT_MOUNTS_PER_CLIENT: usize = 64;
/// Default of [`ServerConfig::mounts_total`].
pub const DEFAULT_MOUNTS_TOTAL: usize = 4096;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            max_io: 1 << 20,
            drc_entries: 4096,
            drc_bytes: 16 << 20,
            mounts_per_client: DEFAULT_MOUNTS_PER_CLIENT,
            mounts_total: DEFAULT_MOUNTS_TOTAL,
            // getrandom(2) fails only before Linux 3.17; rnfs needs openat2 (5.6).
            #[allow(clippy::expect_used)]
            handle_secret: handle::HandleSecret::random()
                .expect("the kernel's random number generator"),
            search: search::SearchConfig::default(),
            nfs3: true,
            v4: None,
        }
    }
}

/// The NFS server: MOUNT v3 and NFSv3 over a table of exports.
pub struct NfsServer {
    table: RwLock<Arc<ExportTable>>,
    /// The units, by (program, version): see [`route`].
    routes: Routes,
    /// Every export in force never blocks (see [`Export::never_blocks`]).
    never_blocks: AtomicBool,
    /// Every export in force keeps its data in memory (see [`Export::data_in_memory`]).
    data_in_memory: AtomicBool,
    /// Large reply buffers the transport gave back after sending them (see
    /// [`NfsServer::reply_buffer`]); at most [`POOL_BUFFERS`].
    buffers: Mutex<Vec<Vec<u8>>>,
    pub(crate) cfg: ServerConfig,
    pub(crate) drc: Drc,
    /// Changes at every start so clients resend uncommitted UNSTABLE writes (RFC 1813 3.3.7).
    pub(crate) write_verf: [u8; 8],
    pub(crate) mounts: Mutex<mount::MountList>,
    /// DUMP and EXPORT replies cut to [`mount::MAX_REPLY`].
    pub(crate) mount_replies_cut: std::sync::atomic::AtomicU64,
    /// Searches for unknown keys running now, by client.
    pub(crate) searches: search::Searches,
    /// Counters.
    pub stats: stats::Stats,
    /// Connection counters, shared with the transport.
    pub conn_stats: Arc<rnfs_rpc::transport::ConnStats>,
    /// The NFSv4 state, when NFSv4 is served.
    v4: Option<Arc<v4::service::V4State>>,
}

impl NfsServer {
    /// A server with one export.
    pub fn new(export: Export, cfg: ServerConfig) -> Self {
        Self::with_exports(vec![export], cfg)
    }

    /// A server with several exports (ids must differ).
    pub fn with_exports(exports: Vec<Export>, cfg: ServerConfig) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let v = (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 48);
        let table = ExportTable {
            exports: exports
                .into_iter()
                .map(|e| Arc::new(e.keyed(&cfg.handle_secret)))
                .collect(),
            retired: Default::default(),
        };
        let mounts = mount::MountList::new(cfg.mounts_per_client, cfg.mounts_total);
        let mut routes = Routes::default();
        if cfg.nfs3 {
            routes.register(Box::new(v3::Nfs3::default()));
            routes.register(Box::new(mount::Mount3::default()));
        }
        let conn_stats: Arc<rnfs_rpc::transport::ConnStats> = Arc::default();
        let v4 = cfg
            .v4
            .clone()
            .map(|o| v4::service::V4State::new(o, conn_stats.clone()));
        if let Some(st) = &v4 {
            routes.register(Box::new(v4::unit::Nfs4::new(st.clone())));
        }
        routes.register(Box::new(admin::Admin));
        Self {
            routes,
            never_blocks: AtomicBool::new(table.never_blocks()),
            data_in_memory: AtomicBool::new(table.data_in_memory()),
            buffers: Mutex::default(),
            table: RwLock::new(Arc::new(table)),
            drc: Drc::new(cfg.drc_entries, cfg.drc_bytes),
            cfg,
            write_verf: v.to_be_bytes(),
            mounts: Mutex::new(mounts),
            mount_replies_cut: Default::default(),
            searches: search::Searches::default(),
            stats: stats::Stats::default(),
            conn_stats,
            v4,
        }
    }

    /// Replaces the exports, keeping connections and calls in flight. Handles of exports
    /// that disappear get ACCES from now on.
    pub fn reload(&self, exports: Vec<Export>) {
        let mut g = self.table.write();
        let mut retired = g.retired.clone();
        for e in &g.exports {
            retired.insert(e.id);
        }
        let exports: Vec<Arc<Export>> = exports
            .into_iter()
            .map(|e| Arc::new(e.keyed(&self.cfg.handle_secret)))
            .collect();
        for e in &exports {
            retired.remove(&e.id);
        }
        let table = ExportTable { exports, retired };
        self.never_blocks
            .store(table.never_blocks(), Ordering::Relaxed);
        self.data_in_memory
            .store(table.data_in_memory(), Ordering::Relaxed);
        *g = Arc::new(table);
    }

    /// The configuration the server was made with (a restarted server given the same
    /// keeps the same handles).
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The exports in force now.
    pub fn exports(&self) -> Arc<ExportTable> {
        self.table.read().clone()
    }

    /// An empty buffer with room for a reply of `len` bytes: one already sent and given
    /// back by the transport when `len` is large (its pages are mapped, so filling it
    /// costs no page faults, unlike a fresh allocation of 1 MiB), else a new one.
    pub fn reply_buffer(&self, len: usize) -> Vec<u8> {
        if len >= POOL_MIN {
            let mut pool = self.buffers.lock();
            if let Some(i) = pool.iter().position(|b| b.capacity() >= len) {
                return pool.swap_remove(i);
            }
        }
        Vec::with_capacity(len)
    }

    /// Duplicate request cache counters.
    pub fn drc_stats(&self) -> rnfs_rpc::drc::DrcStats {
        self.drc.stats()
    }

    /// Mount list counters: entries now, and entries forgotten to make room since start.
    pub fn mount_list_stats(&self) -> (usize, u64) {
        let l = self.mounts.lock();
        (l.len(), l.dropped())
    }

    /// The write verifier of this server instance (NFSv3 and NFSv4 share it).
    pub fn write_verifier(&self) -> [u8; 8] {
        self.write_verf
    }

    /// The NFSv4 state, when NFSv4 is served.
    pub fn v4(&self) -> Option<&Arc<v4::service::V4State>> {
        self.v4.as_ref()
    }

    /// The delegation conflict check for an NFSv3 call about to do `access` to `key`
    /// (issue 15: the delegation layer is the one place that knows about conflicts): an
    /// NFSv4 client's delegation in the way is recalled and the call answers JUKEBOX
    /// until it is returned or revoked. A call that must wait is first held a while on the
    /// blocking pool ([`v4::service::V4State::hold_for_return`]; one tried on the
    /// connection's task is sent there), so that a recall answered quickly does not cost
    /// the client its JUKEBOX back-off (5 s for Linux). Nothing without NFSv4.
    pub(crate) fn deleg_conflict(
        &self,
        req: &Req<'_>,
        key: &rnfs_vfs::FileKey,
        access: v4::state::delegations::Access,
        truncate: bool,
    ) -> Result<(), rnfs_vfs::VfsError> {
        let Some(st) = self.v4.as_ref().filter(|st| st.opts.delegations) else {
            return Ok(()); // no delegation is ever granted: nothing to look up
        };
        if !st.conflicts(key, access, truncate) {
            return Ok(());
        }
        if st.opts.conflict_hold_ms > 0 {
            if let Some(d) = req.defer {
                d.set(true);
                return Err(rnfs_vfs::VfsError::Jukebox); // never sent: the call runs again
            }
            if st.hold_for_return(key, access) && !st.conflicts(key, access, truncate) {
                return Ok(());
            }
        }
        Err(rnfs_vfs::VfsError::Jukebox)
    }

    /// The NFSv4 laundromat: the runner calls this about once a second (see
    /// [`v4::service::V4State::tick`]); nothing without NFSv4.
    pub fn v4_tick(&self) {
        if let Some(st) = &self.v4 {
            st.tick();
        }
    }

    /// Decodes a call and routes it to its unit ([`route`]), through the duplicate request
    /// cache when the unit says so: the reply, or `None` to send nothing (a retransmission
    /// of a call still running, a message that is not a call, a call given up to the pool).
    fn dispatch(&self, conn: &ConnInfo, msg: &[u8], defer: Option<&Cell<bool>>) -> Option<Vec<u8>> {
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
        let req = Req {
            conn,
            auth: &call.auth,
            defer,
        };
        let unit = match self.routes.route(conn, h.prog, h.vers) {
            Route::Unit(u) => u,
            Route::Refused(status) => return Some(reply_error(h.xid, status)),
        };
        if !unit.cached(h.proc_, call.args) {
            return Some(unit.dispatch(self, &req, h.xid, h.proc_, call.args));
        }
        let key = DrcKey::new(
            conn.peer,
            &h.cred,
            h.xid,
            (h.prog, h.vers, h.proc_),
            call.args,
        );
        match self.drc.begin(&key) {
            Lookup::Replay(r) => Some((*r).clone()),
            Lookup::InProgress => None,
            Lookup::New => {
                let r = unit.dispatch(self, &req, h.xid, h.proc_, call.args);
                if req.deferred() {
                    self.drc.abandon(&key); // it runs again, on the pool
                    return None;
                }
                self.drc.complete(&key, Arc::new(r.clone()));
                Some(r)
            }
        }
    }

    /// Runs a call on the connection's task if it can finish without waiting (see
    /// [`Service::try_call`]): only a call its unit classes [`Blocking::TryInline`], and
    /// only as the unit decides ([`route::Unit::try_call`]). Anything else, and any call
    /// that does not decode, is left to [`NfsServer::dispatch`] on the pool.
    fn try_dispatch(&self, conn: &ConnInfo, msg: &[u8]) -> Attempt {
        // Only what the transport may try (it asks `blocking` first): never a WRITE or
        // COMMIT that may wait, whoever calls.
        if self.blocking(conn, msg) != Blocking::TryInline {
            return Attempt::WouldBlock;
        }
        let Ok(call) = decode_call(msg) else {
            return Attempt::WouldBlock;
        };
        match self.routes.route(conn, call.header.prog, call.header.vers) {
            Route::Unit(u) => u.try_call(self, conn, msg, &call),
            Route::Refused(_) => Attempt::WouldBlock,
        }
    }

    /// How much a call may wait, from its message alone (see [`Service::blocking`]): its
    /// unit decides. Anything unreadable, or for no unit, is answered with an error at
    /// once, so it never blocks.
    fn classify(&self, msg: &[u8]) -> Blocking {
        let Some(call) = Peek::of(msg) else {
            return Blocking::Never;
        };
        let env = Env {
            never_blocks: self.never_blocks.load(Ordering::Relaxed),
            data_in_memory: self.data_in_memory.load(Ordering::Relaxed),
        };
        self.routes
            .unit(call.prog, call.vers)
            .map_or(Blocking::Never, |u| u.classify(&call, &env))
    }

    /// Whether `reply` to the call `msg` shows the caller at fault in a way a
    /// well-behaved client never is, as the call's unit judges it
    /// ([`route::Unit::client_fault`]: for NFSv3, a forged or damaged handle).
    pub fn client_fault(&self, msg: &[u8], reply: &[u8]) -> bool {
        Peek::of(msg)
            .and_then(|c| self.routes.unit(c.prog, c.vers))
            .is_some_and(|u| u.client_fault(reply))
    }

    /// The counters of the unit serving (`prog`, `vers`): one table per list of names it
    /// counts (procedures; operations, for a program whose calls carry several).
    pub fn unit_counters(&self, prog: u32, vers: u32) -> Vec<stats::CountersSnapshot> {
        self.routes
            .unit(prog, vers)
            .map(|u| u.counters())
            .unwrap_or_default()
    }
}

/// Reply buffers kept for reuse, at most.
const POOL_BUFFERS: usize = 16;
/// Smallest reply buffer worth keeping (smaller ones come from malloc's free lists).
const POOL_MIN: usize = 64 * 1024;

impl Service for NfsServer {
    /// Each call's unit classifies it ([`route::Unit::classify`]). For NFSv3: every call
    /// to backends that never block runs inline; WRITE and COMMIT to others
    /// always go to the blocking pool; other NFS calls are tried inline when they are the
    /// connection's only call (see [`Service::try_call`]): a READ of data at hand, and
    /// metadata calls (served from the kernel's caches most of the time) whose handles
    /// need no search.
    fn blocking(&self, _conn: &ConnInfo, msg: &[u8]) -> Blocking {
        self.classify(msg)
    }

    /// Keeps large reply buffers (READ replies) for [`NfsServer::reply_buffer`], up to
    /// [`POOL_BUFFERS`] of at most twice the largest READ.
    fn recycle(&self, mut reply: Vec<u8>) {
        let cap = reply.capacity();
        if cap < POOL_MIN || cap > 2 * (self.cfg.max_io as usize + 4096) {
            return;
        }
        let mut pool = self.buffers.lock();
        if pool.len() < POOL_BUFFERS {
            reply.clear();
            pool.push(reply);
        }
    }

    /// The RPC-level refusals, and what the call's unit judges the client's fault
    /// ([`NfsServer::client_fault`]: NFSv3's BADHANDLE, a handle whose tag does not match,
    /// forged or damaged, never one we issued), slow a connection down when they keep
    /// coming (`rnfs_rpc::transport::limits::Penalty`). STALE is not the client's fault.
    fn peer_fault(&self, _conn: &ConnInfo, msg: &[u8], reply: &[u8]) -> bool {
        // The call's unit judges its own statuses (`route::Unit::client_fault`).
        rnfs_rpc::transport::limits::rpc_fault(reply) || self.client_fault(msg, reply)
    }

    fn reply_size_hint(&self, _conn: &ConnInfo, msg: &[u8]) -> Option<usize> {
        let hint = Peek::of(msg).and_then(|call| {
            let unit = self.routes.unit(call.prog, call.vers)?;
            Some(unit.reply_hint(&call, self.cfg.max_io))
        });
        Some(hint.unwrap_or(route::SMALL_REPLY))
    }

    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>> {
        // A bug in a handler must cost one call, not the server: answer SYSTEM_ERR.
        let run = || self.dispatch(conn, msg, None);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(r) => r,
            Err(_) => system_err(msg),
        }
    }

    /// A READ whose data the backend has at hand (in the page cache, for the local
    /// backend) is answered here, on the connection's task; any other is run again on the
    /// pool by [`Service::call`].
    fn try_call(&self, conn: &ConnInfo, msg: &[u8]) -> Attempt {
        let run = || self.try_dispatch(conn, msg);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(r) => r,
            Err(_) => Attempt::Done(system_err(msg)),
        }
    }
}

/// The SYSTEM_ERR reply to a call whose handler panicked (logged once here).
fn system_err(msg: &[u8]) -> Option<Vec<u8>> {
    tracing::error!("handler panicked; answering SYSTEM_ERR");
    let mut r = rnfs_xdr::Reader::new(msg);
    r.u32()
        .ok()
        .map(|xid| reply_error(xid, ReplyStatus::SystemErr))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rnfs_proto::rpc::{CallHeader, OpaqueAuth};
    use rnfs_proto::{mount3, nfs3 as p3};
    use rnfs_vfs::{Backend, Ctx};
    use rnfs_xdr::Writer;

    fn mem_server() -> NfsServer {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        NfsServer::new(Export::new(1, "/", fs), ServerConfig::default())
    }

    /// How a server whose backends never block (or keep their data in memory) classes `msg`.
    fn classify(msg: &[u8], never_blocks: bool, data_in_memory: bool) -> Blocking {
        let s = mem_server();
        s.never_blocks.store(never_blocks, Ordering::Relaxed);
        s.data_in_memory.store(data_in_memory, Ordering::Relaxed);
        s.classify(msg)
    }

    /// The reply size a server expects for `msg`.
    fn reply_hint(msg: &[u8], max_io: u32) -> usize {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let cfg = ServerConfig {
            max_io,
            ..Default::default()
        };
        let s = NfsServer::new(Export::new(1, "/", fs), cfg);
        let conn = ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        s.reply_size_hint(&conn, msg).unwrap()
    }

    fn call(prog: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        CallHeader {
            xid: 1,
            rpcvers: 2,
            prog,
            vers: 3,
            proc_,
            cred: OpaqueAuth {
                flavor: rnfs_proto::rpc::AUTH_SYS,
                body: rnfs_xdr::Opaque(vec![9; 27]),
            },
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        let mut m = w.into_inner();
        m.extend_from_slice(args);
        m
    }

    fn write(stable: p3::StableHow) -> Vec<u8> {
        let args = rnfs_xdr::to_bytes(&p3::WriteArgs {
            file: p3::FileHandle3(vec![1; 21]),
            offset: 7,
            count: 3,
            stable,
            data: p3::Data(vec![0; 3]),
        });
        call(p3::PROGRAM, p3::Proc::Write as u32, &args)
    }

    #[test]
    fn reply_buffers_are_reused_and_bounded() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let mut b = s.reply_buffer(1 << 20);
        b.extend_from_slice(&[7; 100]);
        let ptr = b.as_ptr();
        s.recycle(b);
        let again = s.reply_buffer(1 << 20);
        assert_eq!(
            (again.as_ptr(), again.len()),
            (ptr, 0),
            "the same buffer, emptied"
        );
        // Small and oversized buffers are not kept; neither is more than POOL_BUFFERS.
        s.recycle(Vec::with_capacity(100));
        s.recycle(Vec::with_capacity(64 << 20));
        for _ in 0..POOL_BUFFERS + 5 {
            s.recycle(Vec::with_capacity(1 << 20));
        }
        assert_eq!(s.buffers.lock().len(), POOL_BUFFERS);
        assert!(s.reply_buffer(16 << 20).capacity() >= 16 << 20);
    }

    #[test]
    fn reply_hints_follow_the_count_asked() {
        let read = |count: u32| {
            let args = rnfs_xdr::to_bytes(&p3::ReadArgs {
                file: p3::FileHandle3(vec![1; 21]),
                offset: 7,
                count,
            });
            call(p3::PROGRAM, p3::Proc::Read as u32, &args)
        };
        assert_eq!(reply_hint(&read(4096), 1 << 20), 4096 + 4096);
        assert_eq!(reply_hint(&read(u32::MAX), 1 << 20), (1 << 20) + 4096);
        let getattr = call(p3::PROGRAM, p3::Proc::Getattr as u32, &[0; 8]);
        assert_eq!(reply_hint(&getattr, 1 << 20), 8192);
        // Truncated: small, never a panic.
        let m = read(1 << 20);
        for cut in 0..m.len() {
            assert!(reply_hint(&m[..cut], 1 << 20) <= 8192);
        }
    }

    #[test]
    fn what_may_block() {
        use Blocking::*;
        let nfs = |p: p3::Proc| call(p3::PROGRAM, p as u32, &[]);
        assert_eq!(classify(&nfs(p3::Proc::Null), false, false), Never);
        // Metadata calls are tried inline: one whose handle needs a search goes to the pool.
        assert_eq!(classify(&nfs(p3::Proc::Getattr), false, false), TryInline);
        assert_eq!(classify(&nfs(p3::Proc::Read), false, false), TryInline);
        assert_eq!(classify(&nfs(p3::Proc::Commit), false, false), Likely);
        assert_eq!(
            classify(&write(p3::StableHow::Unstable), false, false),
            Likely
        );
        assert_eq!(
            classify(&write(p3::StableHow::FileSync), false, false),
            Likely
        );
        assert_eq!(
            classify(&write(p3::StableHow::DataSync), false, false),
            Likely
        );
        assert_eq!(
            classify(&call(mount3::PROGRAM, 1, &[]), false, false),
            Rarely
        );
        // Backends that never block: everything inline.
        assert_eq!(classify(&nfs(p3::Proc::Commit), true, false), Never);
        // data in memory (tmpfs): data calls are like metadata calls
        assert_eq!(classify(&nfs(p3::Proc::Read), false, true), TryInline);
        assert_eq!(classify(&nfs(p3::Proc::Commit), false, true), TryInline);
        assert_eq!(
            classify(&write(p3::StableHow::FileSync), false, true),
            TryInline
        );
        assert_eq!(classify(&nfs(p3::Proc::Lookup), false, true), TryInline);
        assert_eq!(
            classify(&write(p3::StableHow::FileSync), true, false),
            Never
        );
        // Other programs and garbage are answered at once.
        assert_eq!(classify(&call(100099, 1, &[]), false, false), Never);
        assert_eq!(classify(&[0, 0, 0, 1], false, false), Never);
        // A truncated WRITE, or one with a huge length word, is still a WRITE.
        let mut w = write(p3::StableHow::FileSync);
        w.truncate(w.len() - 12);
        assert_eq!(classify(&w, false, false), Likely);
        let mut w = write(p3::StableHow::FileSync);
        w[28..32].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(classify(&w, false, false), Likely);
    }

    /// A call message with AUTH_SYS credentials for `uid`.
    fn sys_call(xid: u32, prog: u32, proc_: u32, uid: u32, args: &[u8]) -> Vec<u8> {
        let cred = rnfs_proto::rpc::AuthSysParams {
            stamp: 0,
            machine_name: rnfs_xdr::XdrString(b"client".to_vec()),
            uid,
            gid: uid,
            gids: rnfs_xdr::VarArray(Vec::new()),
        };
        let mut w = Writer::new();
        CallHeader {
            xid,
            rpcvers: 2,
            prog,
            vers: 3,
            proc_,
            cred: OpaqueAuth {
                flavor: rnfs_proto::rpc::AUTH_SYS,
                body: rnfs_xdr::Opaque(rnfs_xdr::to_bytes(&cred)),
            },
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        let mut m = w.into_inner();
        m.extend_from_slice(args);
        m
    }

    /// A call message with AUTH_NONE.
    fn anon_call(proc_: p3::Proc, args: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        CallHeader {
            xid: 2,
            rpcvers: 2,
            prog: p3::PROGRAM,
            vers: 3,
            proc_: proc_ as u32,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        let mut m = w.into_inner();
        m.extend_from_slice(args);
        m
    }

    /// The results of a reply, after its header.
    fn results<T: rnfs_xdr::Xdr>(reply: &[u8]) -> T {
        let mut r = rnfs_xdr::Reader::new(reply);
        rnfs_proto::rpc::ReplyHeader::decode(&mut r).unwrap();
        T::decode(&mut r).unwrap()
    }

    #[test]
    fn a_retry_from_the_same_port_is_replayed_and_from_another_runs_again() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let from = |port: u16| ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        let path = rnfs_xdr::to_bytes(&rnfs_xdr::XdrString::<1024>(b"/".to_vec()));
        let mnt = s
            .call(&from(700), &sys_call(1, mount3::PROGRAM, 1, 0, &path))
            .unwrap();
        let mount3::MountRes::Ok(ok) = results::<mount3::MountRes>(&mnt) else {
            panic!("MNT failed")
        };
        let args = rnfs_xdr::to_bytes(&p3::CreateArgs {
            where_: p3::DirOpArgs3 {
                dir: ok.fhandle,
                name: rnfs_xdr::XdrString(b"f".to_vec()),
            },
            how: p3::CreateHow3::Guarded(Default::default()),
        });
        let create = sys_call(2, p3::PROGRAM, p3::Proc::Create as u32, 0, &args);
        let first = s.call(&from(700), &create).unwrap();
        assert_eq!(results::<p3::CreateRes>(&first).status(), p3::Nfsstat3::Ok);
        // The connection broke; the client reconnected from the same port and resent.
        assert_eq!(s.call(&from(700), &create).unwrap(), first);
        // The same call from another port is another client's: it runs again.
        let other = s.call(&from(701), &create).unwrap();
        assert_eq!(
            results::<p3::CreateRes>(&other).status(),
            p3::Nfsstat3::Exist
        );
        assert_eq!(s.drc_stats().hits, 1);
    }

    /// The NFS status of an accepted reply.
    fn nfs_status(reply: &[u8]) -> u32 {
        u32::from_be_bytes(reply[24..28].try_into().unwrap())
    }

    /// A handle the backend must search for (a file made before the backend started, as
    /// after a restart) is never searched for on the connection's task: the call tried
    /// there gives up with nothing shown, and on the pool the search runs and the call
    /// succeeds, a non-idempotent one too (the reply cache forgets the attempt).
    #[test]
    fn a_handle_that_needs_a_search_is_searched_for_on_the_pool_only() {
        use rnfs_vfs::{CreateMode, SetAttr};
        let dir = tempfile::tempdir().unwrap();
        let before = rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap();
        let (sub, _) = before
            .mkdir(&Ctx::default(), &before.root(), b"d", &SetAttr::default())
            .unwrap();
        let how = CreateMode::Unchecked(SetAttr::default());
        let (k, _) = before.create(&Ctx::default(), &sub, b"f", &how).unwrap();
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let fh = handle::encode(&s.exports().exports[0], &k);
        let conn = ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        let getattr = anon_call(
            p3::Proc::Getattr,
            &rnfs_xdr::to_bytes(&p3::GetattrArgs { object: fh.clone() }),
        );
        let setattr = anon_call(
            p3::Proc::Setattr,
            &rnfs_xdr::to_bytes(&p3::SetattrArgs {
                object: fh,
                // Nothing to change: allowed to anyone, still through the reply cache.
                new_attributes: p3::Sattr3::default(),
                guard: None,
            }),
        );
        assert_eq!(s.try_call(&conn, &getattr), Attempt::WouldBlock);
        assert_eq!(s.try_call(&conn, &setattr), Attempt::WouldBlock);
        let st = s.stats.snapshot();
        assert_eq!(st.searches_started, 0, "no search on the connection's task");
        let calls = &s.unit_counters(p3::PROGRAM, p3::VERSION)[0].calls;
        assert_eq!(calls.iter().sum::<u64>(), 0, "nothing counted");
        let reply = s.call(&conn, &setattr).expect("a reply, not a duplicate");
        assert_eq!(nfs_status(&reply), 0);
        assert_eq!(s.stats.snapshot().searches_started, 1);
        // Found: from now on the key is placed without a search, inline.
        match s.try_call(&conn, &getattr) {
            Attempt::Done(Some(r)) => assert_eq!(nfs_status(&r), 0),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.stats.snapshot().searches_started, 1);
    }

    /// Beyond the cap of searches for one client, a call is answered JUKEBOX (the client
    /// retries later) without searching.
    #[test]
    fn searches_beyond_the_cap_are_answered_jukebox() {
        let dir = tempfile::tempdir().unwrap();
        let before = rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap();
        let (k, _) = before
            .mkdir(&Ctx::default(), &before.root(), b"d", &Default::default())
            .unwrap();
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let fh = handle::encode(&s.exports().exports[0], &k);
        let conn = ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        let getattr = anon_call(
            p3::Proc::Getattr,
            &rnfs_xdr::to_bytes(&p3::GetattrArgs { object: fh }),
        );
        // The client's places are all taken (by searches of other calls).
        let ip = conn.peer.ip();
        let held: Vec<_> = (0..s.cfg.search.per_client)
            .map(|_| s.searches.admit(ip, &s.cfg.search).unwrap())
            .collect();
        let r = s.call(&conn, &getattr).unwrap();
        assert_eq!(nfs_status(&r), p3::Nfsstat3::Jukebox as u32);
        let st = s.stats.snapshot();
        assert_eq!((st.searches_started, st.searches_refused), (0, 1));
        drop(held);
        let r = s.call(&conn, &getattr).unwrap();
        assert_eq!(nfs_status(&r), 0);
        assert_eq!(s.stats.snapshot().searches_started, 1);
    }

    #[test]
    fn only_calls_that_need_not_wait_are_tried_inline() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let conn = ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        let root = handle::encode(&s.exports().exports[0], &s.exports().exports[0].fs.root());
        let commit = rnfs_xdr::to_bytes(&p3::CommitArgs {
            file: root.clone(),
            offset: 0,
            count: 0,
        });
        // WRITE, COMMIT (unless the data is in memory: a tmpfs TMPDIR), other programs
        // and garbage: left to call().
        let mut msgs = vec![anon_call(p3::Proc::Commit, &commit)];
        if s.data_in_memory.load(Ordering::Relaxed) {
            msgs.clear();
        }
        for msg in msgs.into_iter().chain([
            write(p3::StableHow::Unstable),
            call(mount3::PROGRAM, 1, &[]),
            vec![0, 0, 0, 1],
            // Credentials that do not decode: call() answers AUTH_ERROR.
            call(p3::PROGRAM, p3::Proc::Read as u32, &[]),
            call(p3::PROGRAM, p3::Proc::Getattr as u32, &[]),
        ]) {
            assert_eq!(s.try_call(&conn, &msg), Attempt::WouldBlock);
        }
        // A metadata call whose handle needs no search runs there.
        let getattr = anon_call(
            p3::Proc::Getattr,
            &rnfs_xdr::to_bytes(&p3::GetattrArgs { object: root }),
        );
        match s.try_call(&conn, &getattr) {
            Attempt::Done(Some(r)) => assert_eq!(nfs_status(&r), 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_forged_handle_or_an_unknown_procedure_is_the_clients_fault() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
        let s = NfsServer::new(Export::new(1, "/", fs), ServerConfig::default());
        let conn = ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        };
        let getattr = |fh: p3::FileHandle3| {
            anon_call(
                p3::Proc::Getattr,
                &rnfs_xdr::to_bytes(&p3::GetattrArgs { object: fh }),
            )
        };
        let judge = |msg: &[u8]| {
            let r = s.call(&conn, msg).unwrap();
            (nfs_status(&r), s.peer_fault(&conn, msg, &r))
        };
        let root = handle::encode(&s.exports().exports[0], &s.exports().exports[0].fs.root());
        assert_eq!(judge(&getattr(root.clone())), (0, false));
        let mut forged = root.clone();
        let last = forged.0.len() - 1;
        forged.0[last] ^= 1;
        let bad = p3::Nfsstat3::BadHandle as u32;
        assert_eq!(judge(&getattr(forged)), (bad, true));
        // A procedure that does not exist: refused at the RPC level, the caller's fault.
        let mut nope = getattr(root);
        nope[20..24].copy_from_slice(&99u32.to_be_bytes());
        let r = s.call(&conn, &nope).unwrap();
        assert!(s.peer_fault(&conn, &nope, &r));
    }
}
