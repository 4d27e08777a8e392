//! An NFSv4.1 session over one RPC connection (issue 16): the I/O around the cores of this
//! module's siblings. [`Session::establish`] runs EXCHANGE_ID, CREATE_SESSION (with a back
//! channel on the same connection) and RECLAIM_COMPLETE; [`Session::compound`] sends
//! COMPOUNDs with SEQUENCE on a slot of the [`SlotTable`]; one worker task runs what the
//! [`Recovery`] machine asks (a new session, a new client id, renewal) and the returns the
//! [`DelegTable`] plans; the back channel answers CB_NULL and CB_SEQUENCE with CB_RECALL
//! and CB_RECALL_ANY on the connection's driver task, never waiting.
//!
//! Reclaims after a server restart are run by the [`StateHolder`] (the open files' layer,
//! `crate::nfs4`), which the session asks whether it holds state. Not yet here (issue 16
//! goes on): reclaiming locks, writing back and
//! reopening before a DELEGRETURN (the page cache is not on v4 yet), CB_GETATTR (answered
//! NOTSUPP: the server then recalls the delegation).
use super::delegs::{DelegStateid, DelegTable, Returned};
use super::recovery::{Phase, Recovery, Task, TaskResult, Trouble};
use super::slots::{CallId, Class, Grant, Next, SeqResult, SlotTable, Time};
use crate::rpc::{CallHandler, RpcClient, RpcConfig};
use parking_lot::Mutex;
use rnfs_proto::nfs4::*;
use rnfs_proto::rpc::{CallHeader, ReplyHeader, ReplyStatus};
use rnfs_rpc::xid::RpcError;
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// The NFS program and its COMPOUND procedure.
const NFS_PROGRAM: u32 = 100_003;
const NFSPROC4_COMPOUND: u32 = 1;
/// The callback program number the client asks the server to use.
const CB_PROGRAM: u32 = 0x4000_0052;
/// Fore-channel slots asked for.
const FORE_SLOTS: u32 = 64;
/// The largest request and reply asked for: a 1 MiB READ or WRITE and its operations.
const MAX_MSG: u32 = (1 << 20) + 4096;
/// The lease assumed until the server says (`lease_time`).
const LEASE_GUESS_MS: u64 = 90_000;

/// What holds state over a session (the open files' layer): asked whether it holds any, so
/// that a lost client id is followed by reclaims (R3), and to run them.
pub trait StateHolder: Send + Sync {
    /// Whether opens, locks or delegations are held.
    fn holds_state(&self) -> bool;
    /// Reclaims everything held (CLAIM_PREVIOUS opens, reclaim locks) with privileged
    /// calls ([`Session::compound`] with [`Class::Privileged`]): ordinary calls wait
    /// until it is done. An error that may pass (no reply) makes recovery try again.
    fn reclaim(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Trouble>> + Send + '_>>;
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The client owner (`co_ownerid`): the same for the same client across restarts.
    pub owner: Vec<u8>,
    /// The RPC settings (its credential is used for every call and for the back channel).
    pub rpc: RpcConfig,
    /// Most delegations held at once.
    pub max_delegations: usize,
}

/// Why a compound could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The RPC layer failed (no reply in soft mode, rejected, undecodable).
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// The server answered something a v4.1 server must not.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// Session establishment failed with this NFSv4 status.
    #[error("NFSv4 status {0}")]
    Status(u32),
    /// The call's outcome is unknown (its reply was lost, or the server no longer has it).
    #[error("outcome unknown")]
    Unknown,
}

struct St {
    slots: SlotTable,
    rec: Recovery,
    delegs: DelegTable<Vec<u8>>,
    waiters: HashMap<CallId, oneshot::Sender<Grant>>,
    next_call: u64,
    clientid: u64,
    create_seq: u32,
    /// The current session and the slot-table generation it goes with.
    current: Option<(u64, [u8; 16])>,
    ready: Vec<oneshot::Sender<()>>,
    /// The back channel's one slot: last seqid and its cached reply.
    back: (u32, Option<Vec<u8>>),
    /// The fore channel's largest request and reply.
    sizes: (u32, u32),
}

/// An NFSv4.1 session. See the module doc.
pub struct Session {
    rpc: RpcClient,
    holder: OnceLock<Weak<dyn StateHolder>>,
    cfg: SessionConfig,
    start: Instant,
    st: Mutex<St>,
    wake: Arc<Notify>,
    verifier: [u8; 8],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.rpc.addr())
            .finish()
    }
}

/// Whether an operation may run twice with the same outcome (no reply cache needed).
fn idempotent(op: &NfsArgop4) -> bool {
    matches!(
        op,
        NfsArgop4::OpPutfh(_)
            | NfsArgop4::OpPutrootfh
            | NfsArgop4::OpGetfh
            | NfsArgop4::OpGetattr(_)
            | NfsArgop4::OpLookup(_)
            | NfsArgop4::OpLookupp
            | NfsArgop4::OpAccess(_)
            | NfsArgop4::OpRead(_)
            | NfsArgop4::OpReadlink
            | NfsArgop4::OpReaddir(_)
            | NfsArgop4::OpSavefh
            | NfsArgop4::OpRestorefh
            | NfsArgop4::OpVerify(_)
            | NfsArgop4::OpNverify(_)
            | NfsArgop4::OpCommit(_)
    )
}

/// What a SEQUENCE reply said, for the slot table and the recovery machine.
fn seq_result(res: &Compound4res) -> (SeqResult, u32, Option<Trouble>) {
    match res.resarray.0.first() {
        Some(NfsResop4::OpSequence(Sequence4res::Nfs4Ok(ok))) => (
            SeqResult::Ok {
                highest: ok.sr_highest_slotid,
                target: ok.sr_target_highest_slotid,
            },
            ok.sr_status_flags,
            None,
        ),
        Some(NfsResop4::OpSequence(Sequence4res::Default(s))) => {
            let s = *s as u32;
            let r = match s {
                10008 => SeqResult::Delay,
                10063 => SeqResult::Misordered,
                10053 => SeqResult::BadSlot,
                10068 => SeqResult::RetryUncached,
                // BADSESSION, DEADSESSION, and anything else SEQUENCE should not answer:
                // the session is of no use.
                _ => SeqResult::SessionGone,
            };
            let t = match s {
                10052 | 10078 => Some(Trouble::SessionGone),
                10022 => Some(Trouble::StaleClientId),
                10011 => Some(Trouble::Expired),
                10055 => Some(Trouble::ConnNotBound),
                _ => None,
            };
            (r, 0, t)
        }
        // No SEQUENCE result: the compound failed before it (e.g. a minor version the
        // server does not take); the slot did not move.
        _ => (SeqResult::Delay, 0, None),
    }
}

impl Session {
    /// Connects to `addr` and establishes a client id and a session. Must be called
    /// inside a tokio runtime.
    pub async fn establish(
        addr: SocketAddr,
        cfg: SessionConfig,
    ) -> Result<Arc<Self>, SessionError> {
        let cell: Arc<OnceLock<Weak<Session>>> = Arc::new(OnceLock::new());
        let mut rpc_cfg = cfg.rpc.clone();
        let c2 = cell.clone();
        rpc_cfg.on_call = Some(CallHandler::new(move |msg| {
            c2.get()
                .and_then(Weak::upgrade)
                .and_then(|s| s.callback(msg))
        }));
        let rpc = RpcClient::new(addr, rpc_cfg);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let me = Arc::new(Session {
            rpc,
            holder: OnceLock::new(),
            start: Instant::now(),
            st: Mutex::new(St {
                slots: SlotTable::new(1),
                rec: Recovery::new(LEASE_GUESS_MS),
                delegs: DelegTable::new(cfg.max_delegations),
                waiters: HashMap::new(),
                next_call: 0,
                clientid: 0,
                create_seq: 0,
                current: None,
                ready: Vec::new(),
                back: (0, None),
                sizes: (MAX_MSG, MAX_MSG),
            }),
            cfg,
            wake: Arc::new(Notify::new()),
            verifier: nanos.to_be_bytes(),
        });
        let _ = cell.set(Arc::downgrade(&me));
        // The first establishment runs here, so its failure is the caller's error.
        loop {
            let task = me.st.lock().rec.next_task(me.now());
            let Some(t) = task else { break };
            let r = me.run_task(t).await;
            if let TaskResult::Failed(Trouble::Transient) = r {
                me.st.lock().rec.task_done(t, r, me.now());
                return Err(SessionError::Protocol("session establishment failed"));
            }
            me.finish_task(t, r);
        }
        if me.st.lock().rec.phase() != Phase::Ready {
            return Err(SessionError::Protocol("session not established"));
        }
        // The server's lease, for the renewal timer.
        let (st, res) = me
            .compound(
                vec![
                    NfsArgop4::OpPutrootfh,
                    NfsArgop4::OpGetattr(Getattr4args {
                        attr_request: VarArray(vec![1 << 10]),
                    }),
                ],
                Class::Normal,
            )
            .await?;
        if let (0, Some(NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(g)))) = (st, res.get(1)) {
            let mut r = Reader::new(&g.obj_attributes.attr_vals.0);
            if let Ok(secs) = r.u32() {
                me.st.lock().rec.set_lease(u64::from(secs.max(1)) * 1000);
            }
        }
        let worker = Arc::downgrade(&me);
        tokio::spawn(async move { Session::worker(worker).await });
        Ok(me)
    }

    fn now(&self) -> Time {
        Time(self.start.elapsed().as_millis() as u64)
    }

    /// The slot table's counters (for tests and metrics).
    pub fn slot_stats(&self) -> super::slots::SlotStats {
        self.st.lock().slots.stats()
    }

    /// The recovery machine's counters.
    pub fn recovery_stats(&self) -> super::recovery::RecoveryStats {
        self.st.lock().rec.stats()
    }

    /// The delegations' counters.
    pub fn deleg_stats(&self) -> super::delegs::DelegStats {
        self.st.lock().delegs.stats()
    }

    /// Sets what holds state over this session (once; later calls are ignored).
    pub fn set_state_holder(&self, h: Weak<dyn StateHolder>) {
        let _ = self.holder.set(h);
    }

    fn holder(&self) -> Option<Arc<dyn StateHolder>> {
        self.holder.get().and_then(Weak::upgrade)
    }

    /// The RPC client the session's calls go over.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// The fore channel's largest request and reply, as CREATE_SESSION agreed.
    pub fn max_sizes(&self) -> (u32, u32) {
        self.st.lock().sizes
    }

    /// The current session's id.
    pub fn session_id(&self) -> Option<[u8; 16]> {
        self.st.lock().current.map(|c| c.1)
    }

    /// The client id the server gave.
    pub fn clientid(&self) -> u64 {
        self.st.lock().clientid
    }

    /// Records a delegation OPEN granted on the file with handle `fh`.
    pub fn delegation_granted(&self, fh: Vec<u8>, d: &OpenDelegation4) {
        let (sid, kind) = match d {
            OpenDelegation4::OpenDelegateRead(r) => (&r.stateid, super::delegs::Kind::Read),
            OpenDelegation4::OpenDelegateWrite(w) => (&w.stateid, super::delegs::Kind::Write),
            _ => return,
        };
        let sid = DelegStateid {
            seqid: sid.seqid,
            other: sid.other.0,
        };
        let now = self.now();
        self.st.lock().delegs.granted(fh, sid, kind, now);
        self.wake.notify_one();
    }

    /// Keeps the slot table's drain in step with the recovery phase, and wakes callers
    /// waiting for the session to be ready. Returns grants to deliver.
    fn sync_phase(st: &mut St, now: Time) -> Vec<Grant> {
        let hold = st.rec.holds_ordinary_calls();
        let mut woken = Vec::new();
        if hold && !st.slots.is_draining() {
            st.slots.start_drain();
        } else if !hold && st.slots.is_draining() {
            woken = st.slots.end_drain(now);
        }
        if !hold {
            for w in st.ready.drain(..) {
                let _ = w.send(());
            }
        }
        woken
    }

    fn deliver(st: &mut St, woken: Vec<Grant>) {
        for g in woken {
            if let Some(w) = st.waiters.remove(&g.call) {
                if let Err(g) = w.send(g) {
                    // The waiter is gone (its future dropped): give the slot back.
                    let again = st.slots.complete(&g, SeqResult::Delay, Time(0));
                    Self::deliver(st, again.woken);
                }
            }
        }
    }

    /// Waits until ordinary calls may go.
    async fn wait_ready(&self) {
        let rx = {
            let mut st = self.st.lock();
            if !st.rec.holds_ordinary_calls() {
                return;
            }
            let (tx, rx) = oneshot::channel();
            st.ready.push(tx);
            rx
        };
        self.wake.notify_one();
        let _ = rx.await;
    }

    /// A slot for a call of `class`, waiting for one if need be, and the session it is
    /// of; `None` when the session changed in between (the grant is given back: ask
    /// again).
    async fn acquire(&self, class: Class) -> Result<Option<(Grant, [u8; 16])>, SessionError> {
        let (call, rx) = {
            let mut st = self.st.lock();
            st.next_call += 1;
            let call = CallId(st.next_call);
            let now = self.now();
            match st.slots.acquire(call, class, now) {
                Some(g) => return Ok(Self::session_of(&mut st, g, now)),
                None => {
                    let (tx, rx) = oneshot::channel();
                    st.waiters.insert(call, tx);
                    (call, rx)
                }
            }
        };
        let _guard = CancelWaiter { s: self, call };
        let g = rx
            .await
            .map_err(|_| SessionError::Protocol("slot waiter dropped"))?;
        let mut st = self.st.lock();
        let now = self.now();
        Ok(Self::session_of(&mut st, g, now))
    }

    fn session_of(st: &mut St, g: Grant, now: Time) -> Option<(Grant, [u8; 16])> {
        match st.current {
            Some((gen, sid)) if gen == g.generation => Some((g, sid)),
            _ => {
                let c = st.slots.complete(&g, SeqResult::Delay, now);
                Self::deliver(st, c.woken);
                None
            }
        }
    }

    /// Sends `ops` after a SEQUENCE, as `class` (state-returning calls are privileged:
    /// [`Class::Privileged`]); recovers the session as needed and sends again. The
    /// compound's status and its results after SEQUENCE.
    pub async fn compound(
        &self,
        ops: Vec<NfsArgop4>,
        class: Class,
    ) -> Result<(u32, Vec<NfsResop4>), SessionError> {
        let mut delay = Duration::from_millis(10);
        loop {
            if class == Class::Normal {
                self.wait_ready().await;
            }
            let Some((g, sessionid)) = self.acquire(class).await? else {
                continue;
            };
            let mut args = Vec::with_capacity(ops.len() + 1);
            args.push(NfsArgop4::OpSequence(Sequence4args {
                sa_sessionid: OpaqueFixed(sessionid),
                sa_sequenceid: g.seqid,
                sa_slotid: g.slot,
                sa_highest_slotid: g.highest_slotid,
                // A retransmission of a call that changes something must get the
                // server's cached reply, not a second execution (RFC 8881 2.10.6.1.3).
                sa_cachethis: !ops.iter().all(idempotent),
            }));
            args.extend(ops.iter().cloned());
            let sent = self.now();
            let reply = self.raw_compound(args).await;
            let (result, flags, trouble, out) = match reply {
                Ok(res) => {
                    let (r, f, t) = seq_result(&res);
                    (r, f, t, Some(res))
                }
                // No reply (or none that decodes): whether it ran is unknown.
                Err(_) => (SeqResult::Lost, 0, None, None),
            };
            // Asked before the lock: whether a lost client id means reclaims (R3).
            let holds = self.holder().map(|h| h.holds_state());
            let next = {
                let mut st = self.st.lock();
                let now = self.now();
                if let Some(h) = holds {
                    st.rec.set_holds_state(h);
                }
                let c = st.slots.complete(&g, result, now);
                Self::deliver(&mut st, c.woken);
                if matches!(result, SeqResult::Ok { .. }) {
                    st.rec.sequence_ok(sent, flags);
                }
                if let Some(t) = trouble {
                    st.rec.trouble(t);
                } else if c.next == Next::Recover {
                    st.rec.trouble(Trouble::SessionGone);
                }
                let woken = Self::sync_phase(&mut st, now);
                Self::deliver(&mut st, woken);
                c.next
            };
            match next {
                Next::Done => {
                    let res = out.ok_or(SessionError::Protocol("no reply"))?;
                    let mut ops = res.resarray.0;
                    if !ops.is_empty() {
                        ops.remove(0);
                    }
                    self.wake.notify_one();
                    return Ok((res.status as u32, ops));
                }
                Next::Retry => {}
                Next::Delay => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Next::Recover => {
                    self.wake.notify_one();
                    if class == Class::Privileged {
                        // A state-returning call waits for the new session like any.
                        self.wait_ready().await;
                    }
                }
                Next::Unknown => return Err(SessionError::Unknown),
            }
        }
    }

    async fn raw_compound(&self, ops: Vec<NfsArgop4>) -> Result<Compound4res, SessionError> {
        let args = Compound4args {
            tag: Opaque(Vec::new()),
            minorversion: 1,
            argarray: VarArray(ops),
        };
        let r: Compound4res = self
            .rpc
            .call(NFS_PROGRAM, 4, NFSPROC4_COMPOUND, &args)
            .await?;
        Ok(r)
    }

    /// Runs one recovery task.
    async fn run_task(&self, t: Task) -> TaskResult {
        let r = match t {
            Task::ExchangeId => self.exchange_id().await,
            Task::CreateSession => self.create_session().await,
            Task::ReclaimComplete => {
                self.privileged(vec![NfsArgop4::OpReclaimComplete(ReclaimComplete4args {
                    rca_one_fs: false,
                })])
                .await
            }
            Task::Reclaim => match self.holder() {
                Some(h) => h.reclaim().await,
                None => Ok(()),
            },
            Task::Renew => self.privileged(Vec::new()).await,
            // The server binds a connection on its first SEQUENCE (SP4_NONE); a renewal
            // is such a SEQUENCE.
            Task::BindConn | Task::FixBackchannel => self.privileged(Vec::new()).await,
            Task::FreeRevoked => Ok(()),
        };
        match r {
            Ok(()) => TaskResult::Done,
            Err(t) => TaskResult::Failed(t),
        }
    }

    fn finish_task(&self, t: Task, r: TaskResult) {
        let mut st = self.st.lock();
        let now = self.now();
        st.rec.task_done(t, r, now);
        let woken = Self::sync_phase(&mut st, now);
        Self::deliver(&mut st, woken);
    }

    /// A privileged compound for recovery: its trouble, if any.
    async fn privileged(&self, ops: Vec<NfsArgop4>) -> Result<(), Trouble> {
        match self.compound(ops, Class::Privileged).await {
            Ok((0, _)) => Ok(()),
            Ok((10052 | 10078, _)) => Err(Trouble::SessionGone),
            Ok((10022, _)) => Err(Trouble::StaleClientId),
            // RECLAIM_COMPLETE answered COMPLETE_ALREADY: done.
            Ok((10054, _)) => Ok(()),
            Ok(_) | Err(_) => Err(Trouble::Transient),
        }
    }

    async fn exchange_id(&self) -> Result<(), Trouble> {
        let args = vec![NfsArgop4::OpExchangeId(ExchangeId4args {
            eia_clientowner: ClientOwner4 {
                co_verifier: OpaqueFixed(self.verifier),
                co_ownerid: Opaque(self.cfg.owner.clone()),
            },
            eia_flags: EXCHGID4_FLAG_USE_NON_PNFS,
            eia_state_protect: StateProtect4A::Sp4None,
            eia_client_impl_id: VarArray(Vec::new()),
        })];
        let res = self
            .raw_compound(args)
            .await
            .map_err(|_| Trouble::Transient)?;
        match res.resarray.0.first() {
            Some(NfsResop4::OpExchangeId(ExchangeId4res::Nfs4Ok(e))) => {
                let mut st = self.st.lock();
                st.clientid = e.eir_clientid;
                st.create_seq = e.eir_sequenceid;
                Ok(())
            }
            _ => Err(Trouble::Transient),
        }
    }

    async fn create_session(&self) -> Result<(), Trouble> {
        let (clientid, seq) = {
            let st = self.st.lock();
            (st.clientid, st.create_seq)
        };
        let attrs = |slots: u32| ChannelAttrs4 {
            ca_headerpadsize: 0,
            ca_maxrequestsize: MAX_MSG,
            ca_maxresponsesize: MAX_MSG,
            ca_maxresponsesize_cached: 8192,
            ca_maxoperations: 16,
            ca_maxrequests: slots,
            ca_rdma_ird: VarArray(Vec::new()),
        };
        let cred = &self.cfg.rpc.cred;
        let sec = if cred.flavor == rnfs_proto::rpc::AUTH_SYS {
            match rnfs_xdr::from_bytes::<AuthsysParms>(&cred.body.0) {
                Ok(p) => CallbackSecParms4::AuthSys(p),
                Err(_) => CallbackSecParms4::AuthNone,
            }
        } else {
            CallbackSecParms4::AuthNone
        };
        let args = vec![NfsArgop4::OpCreateSession(CreateSession4args {
            csa_clientid: clientid,
            csa_sequence: seq,
            csa_flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
            csa_fore_chan_attrs: attrs(FORE_SLOTS),
            csa_back_chan_attrs: attrs(1),
            csa_cb_program: CB_PROGRAM,
            csa_sec_parms: VarArray(vec![sec]),
        })];
        let res = self
            .raw_compound(args)
            .await
            .map_err(|_| Trouble::Transient)?;
        match res.resarray.0.first() {
            Some(NfsResop4::OpCreateSession(CreateSession4res::Nfs4Ok(cs))) => {
                let mut st = self.st.lock();
                st.create_seq = st.create_seq.wrapping_add(1);
                let now = self.now();
                let woken = st.slots.reset(cs.csr_fore_chan_attrs.ca_maxrequests, now);
                st.current = Some((st.slots.generation(), cs.csr_sessionid.0));
                st.back = (0, None);
                let f = &cs.csr_fore_chan_attrs;
                st.sizes = (
                    f.ca_maxrequestsize.min(MAX_MSG),
                    f.ca_maxresponsesize.min(MAX_MSG),
                );
                Self::deliver(&mut st, woken);
                Ok(())
            }
            Some(NfsResop4::OpCreateSession(CreateSession4res::Default(s))) => {
                Err(match *s as u32 {
                    10022 => Trouble::StaleClientId,
                    10011 => Trouble::Expired,
                    _ => Trouble::Transient,
                })
            }
            _ => Err(Trouble::Transient),
        }
    }

    /// The background worker: recovery tasks first, then delegation returns, then the
    /// lease timer.
    async fn worker(me: Weak<Session>) {
        loop {
            let Some(s) = me.upgrade() else { return };
            let task = {
                let mut st = s.st.lock();
                let now = s.now();
                st.rec.tick(now);
                st.rec.next_task(now)
            };
            if let Some(t) = task {
                let r = s.run_task(t).await;
                s.finish_task(t, r);
                continue;
            }
            let ret = {
                let mut st = s.st.lock();
                if st.rec.phase() == Phase::Ready {
                    st.delegs.next_return()
                } else {
                    None
                }
            };
            if let Some(p) = ret {
                let ops = vec![
                    NfsArgop4::OpPutfh(Putfh4args {
                        object: Opaque(p.key.clone()),
                    }),
                    NfsArgop4::OpDelegreturn(Delegreturn4args {
                        deleg_stateid: Stateid4 {
                            seqid: p.stateid.seqid,
                            other: OpaqueFixed(p.stateid.other),
                        },
                    }),
                ];
                let r = match s.compound(ops, Class::Privileged).await {
                    Ok((0, _)) => Returned::Ok,
                    Ok((10025 | 10011 | 10001 | 70, _)) => Returned::Gone,
                    Ok((10087, _)) => Returned::Revoked,
                    _ => Returned::Transient,
                };
                s.st.lock().delegs.return_done(&p.key, r);
                continue;
            }
            let notify = s.wake.clone();
            drop(s);
            // Woken by work, or every second for the lease timer; holding no reference
            // to the session, which goes when its last user drops it.
            let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
        }
    }

    /// The back channel: answers a call the server sent on the connection.
    fn callback(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let mut r = Reader::new(msg);
        let h = CallHeader::decode(&mut r).ok()?;
        let mut w = Writer::new();
        if h.prog != CB_PROGRAM || h.vers != 1 {
            ReplyHeader::with_status(h.xid, ReplyStatus::ProgUnavail).encode(&mut w);
            return Some(w.into_inner());
        }
        ReplyHeader::with_status(h.xid, ReplyStatus::Success).encode(&mut w);
        match h.proc_ {
            0 => {}
            1 => {
                let args = CbCompound4args::decode(&mut r).ok()?;
                w.raw(&self.cb_compound(&args));
            }
            _ => return None,
        }
        Some(w.into_inner())
    }

    fn cb_compound(&self, a: &CbCompound4args) -> Vec<u8> {
        let reply = |st: Nfsstat4, res: Vec<NfsCbResop4>| {
            rnfs_xdr::to_bytes(&CbCompound4res {
                status: st,
                tag: Opaque(Vec::new()),
                resarray: VarArray(res),
            })
        };
        // CB_SEQUENCE refused with `st`: nothing else is run.
        let refused = |st: Nfsstat4| {
            reply(
                st,
                vec![NfsCbResop4::OpCbSequence(CbSequence4res::Default(st))],
            )
        };
        let Some(NfsCbArgop4::OpCbSequence(seq)) = a.argarray.0.first() else {
            return reply(Nfsstat4::Nfs4errOpNotInSession, Vec::new());
        };
        let mut st = self.st.lock();
        if st.current.map(|c| c.1) != Some(seq.csa_sessionid.0) {
            return refused(Nfsstat4::Nfs4errBadsession);
        }
        if seq.csa_slotid != 0 {
            return refused(Nfsstat4::Nfs4errBadslot);
        }
        let (last, cached) = &st.back;
        if seq.csa_sequenceid == *last {
            if let Some(c) = cached {
                return c.clone();
            }
        }
        if seq.csa_sequenceid != last.wrapping_add(1) {
            return refused(Nfsstat4::Nfs4errSeqMisordered);
        }
        let mut res = vec![NfsCbResop4::OpCbSequence(CbSequence4res::Nfs4Ok(
            CbSequence4resok {
                csr_sessionid: seq.csa_sessionid,
                csr_sequenceid: seq.csa_sequenceid,
                csr_slotid: 0,
                csr_highest_slotid: 0,
                csr_target_highest_slotid: 0,
            },
        ))];
        let mut status = Nfsstat4::Nfs4Ok;
        let mut woke = false;
        for op in &a.argarray.0[1..] {
            let (r, s) = match op {
                NfsCbArgop4::OpCbRecall(rc) => {
                    let sid = DelegStateid {
                        seqid: rc.stateid.seqid,
                        other: rc.stateid.other.0,
                    };
                    woke = true;
                    let s = if st.delegs.recall(&sid) == 0 {
                        Nfsstat4::Nfs4Ok
                    } else {
                        Nfsstat4::Nfs4errBadStateid
                    };
                    (NfsCbResop4::OpCbRecall(CbRecall4res { status: s }), s)
                }
                NfsCbArgop4::OpCbRecallAny(ra) => {
                    let mask = ra.craa_type_mask.0.first().copied().unwrap_or(0);
                    st.delegs.recall_any(
                        ra.craa_objects_to_keep as usize,
                        mask & 1 != 0,
                        mask & 2 != 0,
                    );
                    woke = true;
                    (
                        NfsCbResop4::OpCbRecallAny(CbRecallAny4res {
                            crar_status: Nfsstat4::Nfs4Ok,
                        }),
                        Nfsstat4::Nfs4Ok,
                    )
                }
                _ => (
                    NfsCbResop4::OpCbIllegal(CbIllegal4res {
                        status: Nfsstat4::Nfs4errNotsupp,
                    }),
                    Nfsstat4::Nfs4errNotsupp,
                ),
            };
            res.push(r);
            if s != Nfsstat4::Nfs4Ok {
                status = s;
                break;
            }
        }
        let out = reply(status, res);
        st.back = (seq.csa_sequenceid, Some(out.clone()));
        drop(st);
        if woke {
            self.wake.notify_one();
        }
        out
    }
}

/// Takes a waiting call out of the queue if its future is dropped before it got a slot.
struct CancelWaiter<'a> {
    s: &'a Session,
    call: CallId,
}

impl Drop for CancelWaiter<'_> {
    fn drop(&mut self) {
        let mut st = self.s.st.lock();
        if st.waiters.remove(&self.call).is_some() {
            st.slots.cancel(self.call);
        }
    }
}
