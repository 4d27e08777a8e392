//! The server's callbacks to NFSv4.1 clients over the session back channel (RFC 8881
//! 2.10.3.1, 20): CB_RECALL of delegations, sent on the orders of the delegation state,
//! CB_RECALL_ANY when the delegations held reach their bound, and CB_GETATTR when another
//! client asks for the size or change of a file under a write delegation.
//!
//! The seam with the delegation layer: the laundromat asks the delegation state for the
//! recalls that are due ([`RecallOrder`]s) and hands them to
//! [`super::service::V4State::dispatch_recalls`]; each order's outcome comes back as a
//! [`RecallOutcome`] to the delegation state (`Delegations::recall_outcome`).
use super::service::{SessionInfo, V4State};
use super::state::backchannel::{BackSlots, CbSequence, NoSlot, SeqReply, Verdict};
use super::state::delegations::{CbGetattrOrder, RecallAnyOrder, SizeChange};
use super::state::ids::{ClientId, SessionId, Stateid};
use super::state::sessions::api::ConnId as CoreConnId;
use rnfs_proto::nfs4 as p4;
use rnfs_proto::rpc::OpaqueAuth;
use rnfs_rpc::transport::{Backchannel, CallbackCall, CallbackError, CallbackReply, ConnId};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Xdr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// One delegation to recall: CB_RECALL (RFC 8881 20.2) to the client holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallOrder {
    /// The client holding the delegation.
    pub client: ClientId,
    /// The delegation's stateid.
    pub stateid: Stateid,
    /// The file's handle, as the client knows it (the wire form).
    pub fh: Vec<u8>,
    /// `truncate`: the file is about to be truncated to zero (the client need not flush).
    pub truncate: bool,
}

/// What became of one [`RecallOrder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecallOutcome {
    /// The client answered CB_RECALL with NFS4_OK: it will return the delegation.
    Delivered,
    /// The client answered with this status (e.g. NFS4ERR_BADHANDLE), or the server could
    /// not send the call now (NFS4ERR_DELAY: the bound on outstanding callbacks); the
    /// delegation layer decides whether to retry.
    Refused(u32),
    /// No working callback path: no back channel, no reply in time, or the connection
    /// was lost.
    PathDown,
}

/// The most slots of a back channel the server uses, whatever the client grants.
pub(crate) const CB_SLOTS_CAP: u32 = 16;
/// Recalls waiting for a slot, per session: past it an order is refused with
/// NFS4ERR_DELAY (the delegation layer retries with backoff).
pub(crate) const MAX_QUEUED_PER_SESSION: usize = 256;
/// Callbacks accepted and not yet ended (queued or in flight), over all clients.
pub(crate) const MAX_CALLBACKS: u64 = 4096;
/// How often one order is sent again when the client did not run it (a retry answered
/// NFS4ERR_RETRY_UNCACHED_REP, a probe answered misordered, a retired slot).
const MAX_RESENDS: u8 = 3;
/// `NFS4ERR_DELAY`.
const NFS4ERR_DELAY: u32 = 10008;
/// `NFS4ERR_BADHANDLE`.
const NFS4ERR_BADHANDLE: u32 = 10001;
/// The callback program's COMPOUND procedure (RFC 8881 20).
const CB_COMPOUND: u32 = 1;
/// Its version.
const CB_VERSION: u32 = 1;

/// Counters of the server's callbacks (gauges marked so).
#[derive(Debug, Default)]
pub struct CallbackCounters {
    /// CB_COMPOUNDs sent.
    pub sent: AtomicU64,
    /// Recalls the client answered NFS4_OK.
    pub delivered: AtomicU64,
    /// Recalls the client refused, or not sent at a bound (NFS4ERR_DELAY).
    pub refused: AtomicU64,
    /// Recalls without a working path (no back channel, no reply in time, lost).
    pub path_down: AtomicU64,
    /// Recalls sent again (the client did not run them).
    pub resent: AtomicU64,
    /// Recalls refused at the bounds (per session queue, total).
    pub over_bound: AtomicU64,
    /// Gauge: recalls accepted and not ended (queued or in flight).
    pub pending: AtomicU64,
    /// Outcomes dropped because nobody took them ([`MAX_OUTCOMES`]).
    pub outcomes_dropped: AtomicU64,
    /// CB_GETATTRs sent.
    pub getattr_sent: AtomicU64,
    /// CB_GETATTRs answered with the attributes in time.
    pub getattr_answered: AtomicU64,
}

/// A snapshot of [`CallbackCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackCounts {
    /// See [`CallbackCounters::sent`].
    pub sent: u64,
    /// See [`CallbackCounters::delivered`].
    pub delivered: u64,
    /// See [`CallbackCounters::refused`].
    pub refused: u64,
    /// See [`CallbackCounters::path_down`].
    pub path_down: u64,
    /// See [`CallbackCounters::resent`].
    pub resent: u64,
    /// See [`CallbackCounters::over_bound`].
    pub over_bound: u64,
    /// See [`CallbackCounters::pending`].
    pub pending: u64,
    /// See [`CallbackCounters::outcomes_dropped`].
    pub outcomes_dropped: u64,
    /// See [`CallbackCounters::getattr_sent`].
    pub getattr_sent: u64,
    /// See [`CallbackCounters::getattr_answered`].
    pub getattr_answered: u64,
}

impl CallbackCounters {
    /// The counters now.
    pub fn snapshot(&self) -> CallbackCounts {
        CallbackCounts {
            sent: self.sent.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            refused: self.refused.load(Relaxed),
            path_down: self.path_down.load(Relaxed),
            resent: self.resent.load(Relaxed),
            over_bound: self.over_bound.load(Relaxed),
            pending: self.pending.load(Relaxed),
            outcomes_dropped: self.outcomes_dropped.load(Relaxed),
            getattr_sent: self.getattr_sent.load(Relaxed),
            getattr_answered: self.getattr_answered.load(Relaxed),
        }
    }
}

/// Outcomes kept for [`V4State::take_recall_outcomes`]; past it the oldest is dropped
/// (and counted): the laundromat takes them every second, so only a server whose
/// laundromat stopped gets here.
pub(crate) const MAX_OUTCOMES: usize = 2 * MAX_CALLBACKS as usize;

/// One callback operation after CB_SEQUENCE.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CbOp<'a> {
    /// CB_RECALL (RFC 8881 20.2).
    Recall(&'a RecallOrder),
    /// CB_RECALL_ANY (RFC 8881 20.6): keep at most `keep` objects of the types in `mask`
    /// (a bitmap word of `RCA4_TYPE_MASK_*`).
    #[allow(dead_code)]
    RecallAny {
        /// `craa_objects_to_keep`.
        keep: u32,
        /// `craa_type_mask`, first word.
        mask: u32,
    },
    /// CB_GETATTR (RFC 8881 20.1) of the size and change of the file with this handle.
    Getattr(&'a [u8]),
    /// CB_OFFLOAD (RFC 7862 16.1): the end of an asynchronous copy.
    Offload(&'a OffloadEnd),
}

/// The end of an asynchronous copy, for CB_OFFLOAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffloadEnd {
    /// The destination's wire handle.
    pub(crate) fh: Vec<u8>,
    /// The copy stateid.
    pub(crate) stateid: Stateid,
    /// Bytes copied.
    pub(crate) copied: u64,
    /// 0, or the nfsstat4 the copy failed with.
    pub(crate) status: u32,
    /// The write verifier (the data is left UNSTABLE).
    pub(crate) verf: [u8; 8],
}

/// `change` and `size`, the attributes CB_GETATTR asks for.
const CB_GETATTR_MASK: u32 = (1 << 3) | (1 << 4);

/// The CB_COMPOUND arguments (RFC 8881 20.1.1 / 16.2.3 of the callback program):
/// CB_SEQUENCE on `session` as `seq` says, then `op`. `None` when `op` cannot be
/// encoded (a file handle longer than NFS4_FHSIZE: not one of ours).
pub(crate) fn encode_cb_compound(
    session: SessionId,
    minor: u32,
    seq: &CbSequence,
    op: CbOp<'_>,
) -> Option<Vec<u8>> {
    let second = match op {
        CbOp::Recall(o) => p4::NfsCbArgop4::OpCbRecall(p4::CbRecall4args {
            stateid: p4::Stateid4 {
                seqid: o.stateid.seqid,
                other: OpaqueFixed(o.stateid.other),
            },
            truncate: o.truncate,
            fh: Opaque::new(o.fh.clone()).ok()?,
        }),
        CbOp::RecallAny { keep, mask } => p4::NfsCbArgop4::OpCbRecallAny(p4::CbRecallAny4args {
            craa_objects_to_keep: keep,
            craa_type_mask: VarArray(vec![mask]),
        }),
        CbOp::Getattr(fh) => p4::NfsCbArgop4::OpCbGetattr(p4::CbGetattr4args {
            fh: Opaque::new(fh.to_vec()).ok()?,
            attr_request: VarArray(vec![CB_GETATTR_MASK]),
        }),
        CbOp::Offload(e) => p4::NfsCbArgop4::OpCbOffload(p4::CbOffload4args {
            coa_fh: Opaque::new(e.fh.clone()).ok()?,
            coa_stateid: p4::Stateid4 {
                seqid: e.stateid.seqid,
                other: OpaqueFixed(e.stateid.other),
            },
            coa_offload_info: match p4::Nfsstat4::from_u32(e.status) {
                Some(p4::Nfsstat4::Nfs4Ok) => p4::OffloadInfo4::Nfs4Ok(p4::WriteResponse4 {
                    wr_callback_id: VarArray(Vec::new()),
                    wr_count: e.copied,
                    wr_committed: p4::StableHow4::Unstable4,
                    wr_writeverf: OpaqueFixed(e.verf),
                }),
                Some(st) => p4::OffloadInfo4::Default(st, e.copied),
                None => p4::OffloadInfo4::Default(p4::Nfsstat4::Nfs4errServerfault, e.copied),
            },
        }),
    };
    let args = p4::CbCompound4args {
        tag: Opaque(Vec::new()),
        minorversion: minor,
        // Ignored by NFSv4.1 clients (RFC 8881 20.1.1: the session identifies the client).
        callback_ident: 0,
        argarray: VarArray(vec![
            p4::NfsCbArgop4::OpCbSequence(p4::CbSequence4args {
                csa_sessionid: OpaqueFixed(session.0),
                csa_sequenceid: seq.sequenceid,
                csa_slotid: seq.slotid,
                csa_highest_slotid: seq.highest_slotid,
                csa_cachethis: false,
                csa_referring_call_lists: VarArray(Vec::new()),
            }),
            second,
        ]),
    };
    Some(rnfs_xdr::to_bytes(&args))
}

/// What a CB_COMPOUND reply says: CB_SEQUENCE's result and the second operation's status
/// (the compound's status when there is no second result), and for CB_GETATTR the size
/// and change the client reported (`None` when it did not report both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CbReply {
    pub(crate) seq: SeqReply,
    pub(crate) op_status: u32,
    pub(crate) attrs: Option<SizeChange>,
}

/// The `change` and `size` of a CB_GETATTR reply's `fattr4`: both must be there, and
/// nothing before them (attributes after them, such as RFC 9754's delegated times, are
/// left unread).
fn size_change(f: &p4::Fattr4) -> Option<SizeChange> {
    let words = &f.attrmask.0;
    let w0 = words.first().copied().unwrap_or(0);
    if w0 & CB_GETATTR_MASK != CB_GETATTR_MASK || w0 & 0b111 != 0 {
        return None;
    }
    let mut r = Reader::new(&f.attr_vals.0);
    let change = r.u64().ok()?;
    let size = r.u64().ok()?;
    Some(SizeChange { size, change })
}

/// Decodes a CB_COMPOUND4res (the reply's results); any error is the client's fault.
pub(crate) fn decode_cb_reply(body: &[u8]) -> Result<CbReply, rnfs_xdr::Error> {
    let mut r = Reader::new(body);
    let res = p4::CbCompound4res::decode(&mut r)?;
    r.finish()?;
    let status = res.status as u32;
    let ops = &res.resarray.0;
    let seq = match ops.first() {
        Some(p4::NfsCbResop4::OpCbSequence(p4::CbSequence4res::Nfs4Ok(ok))) => SeqReply::Ok {
            target_highest_slotid: ok.csr_target_highest_slotid,
        },
        Some(p4::NfsCbResop4::OpCbSequence(p4::CbSequence4res::Default(s))) => {
            SeqReply::Err(*s as u32)
        }
        // No CB_SEQUENCE result: the compound failed before it (e.g. a minor version the
        // client does not take); the slot did not move.
        None if status != 0 => SeqReply::Err(status),
        _ => {
            return Err(rnfs_xdr::Error::BadDiscriminant {
                what: "nfs_cb_resop4 (CB_SEQUENCE first)",
                value: ops.first().map_or(0, |o| o.discriminant()),
            })
        }
    };
    let mut attrs = None;
    let op_status = match ops.get(1) {
        Some(p4::NfsCbResop4::OpCbGetattr(p4::CbGetattr4res::Nfs4Ok(ok))) => {
            attrs = size_change(&ok.obj_attributes);
            0
        }
        Some(p4::NfsCbResop4::OpCbGetattr(p4::CbGetattr4res::Default(s))) => *s as u32,
        Some(p4::NfsCbResop4::OpCbRecall(r)) => r.status as u32,
        Some(p4::NfsCbResop4::OpCbRecallAny(r)) => r.crar_status as u32,
        Some(p4::NfsCbResop4::OpCbIllegal(r)) => r.status as u32,
        _ => status,
    };
    Ok(CbReply {
        seq,
        op_status,
        attrs,
    })
}

/// What one pass of the pump decided, acted on outside the locks.
enum Pumped {
    Send {
        chan: Backchannel,
        seq: CbSequence,
        order: RecallOrder,
        tries: u8,
        msg: Vec<u8>,
        prog: u32,
        cred: OpaqueAuth,
    },
    Fail(Vec<(RecallOrder, RecallOutcome)>),
    Again,
    Stop,
}

impl V4State {
    /// The outcomes of the recalls handed to [`V4State::dispatch_recalls`] since the last
    /// call, oldest first, for the delegation state (`Delegations::recall_outcome`). Kept
    /// rather than pushed into the delegation state, so no outcome ever runs under a lock
    /// its dispatcher holds (dispatch_recalls may be called with the locking table held,
    /// and some outcomes are known at once): the laundromat takes them each tick.
    pub fn take_recall_outcomes(&self) -> Vec<(RecallOrder, RecallOutcome)> {
        self.recall_outcomes.lock().drain(..).collect()
    }

    /// How long a callback waits for its reply before its path counts as down.
    pub fn set_callback_timeout(&self, t: Duration) {
        self.cb_timeout_ms
            .store(u64::try_from(t.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Sends the CB_COMPOUND `msg` to program `prog` on `chan` with `cred`, counted as sent;
    /// `done` gets the reply or the failure (within the callback timeout).
    fn send_cb_compound(
        &self,
        chan: &Backchannel,
        prog: u32,
        cred: &OpaqueAuth,
        msg: &[u8],
        done: impl FnOnce(Result<CallbackReply, CallbackError>) + Send + 'static,
    ) {
        let call = CallbackCall {
            prog,
            vers: CB_VERSION,
            proc_: CB_COMPOUND,
            cred,
            args: msg,
        };
        self.cb.sent.fetch_add(1, Relaxed);
        chan.send(call, self.callback_timeout(), done);
    }

    pub(crate) fn callback_timeout(&self) -> Duration {
        Duration::from_millis(self.cb_timeout_ms.load(Relaxed))
    }

    /// Counters of the callbacks.
    pub fn callback_counts(&self) -> CallbackCounts {
        self.cb.snapshot()
    }

    /// Sends CB_RECALL for each order on its client's session back channel; each order's
    /// [`RecallOutcome`] is kept for [`V4State::take_recall_outcomes`], exactly once (at
    /// once for an order that cannot be sent). Never blocks on the network, and takes no
    /// lock of the locking table: it may be called with that held.
    pub fn dispatch_recalls(self: &Arc<Self>, orders: Vec<RecallOrder>) {
        let mut touched: Vec<SessionId> = Vec::new();
        for o in orders {
            // An NFSv4.0 client's recall goes on its callback connection.
            let Err(o) = self.recall40(o) else { continue };
            match self.enqueue(o) {
                Ok(sid) => {
                    if !touched.contains(&sid) {
                        touched.push(sid);
                    }
                }
                Err((o, outcome)) => self.report(&o, outcome, false),
            }
        }
        for sid in touched {
            self.pump(sid);
        }
    }

    /// Queues `o` on its client's session that has a back channel (the least loaded), or
    /// says why not.
    fn enqueue(&self, o: RecallOrder) -> Result<SessionId, (RecallOrder, RecallOutcome)> {
        if self.cb.pending.load(Relaxed) >= MAX_CALLBACKS {
            self.cb.over_bound.fetch_add(1, Relaxed);
            return Err((o, RecallOutcome::Refused(NFS4ERR_DELAY)));
        }
        let clients = self.clients.lock();
        let mut s = self.sessions.lock();
        let best = s
            .iter()
            .filter(|(id, i)| {
                i.client == o.client
                    && i.wants_back
                    && !i.back.is_dead()
                    && !clients.back_channel_conns(**id).is_empty()
            })
            .min_by_key(|(_, i)| i.queue.len() + i.back.outstanding())
            .map(|(id, _)| *id);
        drop(clients);
        let Some(sid) = best else {
            return Err((o, RecallOutcome::PathDown));
        };
        let Some(info) = s.get_mut(&sid) else {
            return Err((o, RecallOutcome::PathDown));
        };
        if info.queue.len() >= MAX_QUEUED_PER_SESSION {
            self.cb.over_bound.fetch_add(1, Relaxed);
            return Err((o, RecallOutcome::Refused(NFS4ERR_DELAY)));
        }
        info.queue.push_back((o, 0));
        self.cb.pending.fetch_add(1, Relaxed);
        Ok(sid)
    }

    /// Keeps the outcome; `accepted`: the order was counted in `pending`.
    pub(crate) fn report(&self, o: &RecallOrder, outcome: RecallOutcome, accepted: bool) {
        if accepted {
            self.cb.pending.fetch_sub(1, Relaxed);
        }
        let c = match outcome {
            RecallOutcome::Delivered => &self.cb.delivered,
            RecallOutcome::Refused(_) => &self.cb.refused,
            RecallOutcome::PathDown => &self.cb.path_down,
        };
        c.fetch_add(1, Relaxed);
        tracing::debug!(client = o.client.0, ?outcome, "CB_RECALL");
        let mut q = self.recall_outcomes.lock();
        if q.len() >= MAX_OUTCOMES {
            q.pop_front();
            self.cb.outcomes_dropped.fetch_add(1, Relaxed);
        }
        q.push_back((o.clone(), outcome));
    }

    /// Sends what `sid`'s queue holds while slots are free. One caller pumps a session at
    /// a time; a completion arriving meanwhile (even on the same thread, from a send that
    /// failed at once) asks that caller for another pass instead of recursing.
    fn pump(self: &Arc<Self>, sid: SessionId) {
        {
            let mut s = self.sessions.lock();
            let Some(info) = s.get_mut(&sid) else { return };
            if info.pumping {
                info.again = true;
                return;
            }
            info.pumping = true;
        }
        loop {
            match self.pump_once(sid) {
                Pumped::Stop => return,
                Pumped::Again => {}
                Pumped::Fail(list) => {
                    for (o, outcome) in list {
                        self.report(&o, outcome, true);
                    }
                }
                Pumped::Send {
                    chan,
                    seq,
                    order,
                    tries,
                    msg,
                    prog,
                    cred,
                } => {
                    let me = self.clone();
                    let conn = chan.conn();
                    self.send_cb_compound(&chan, prog, &cred, &msg, move |r| {
                        me.recall_done(sid, conn, seq, order, tries, r);
                    });
                }
            }
        }
    }

    /// The back channel to call `info`'s client on, among the session's connections
    /// `conns`: the connection that answered last, else the first that is open.
    fn pick_back_channel(&self, info: &SessionInfo, conns: &[CoreConnId]) -> Option<Backchannel> {
        info.good_conn
            .filter(|g| conns.iter().any(|c| c.0 == g.0))
            .and_then(|g| self.conn_stats.backchannel(g))
            .or_else(|| {
                conns
                    .iter()
                    .find_map(|c| self.conn_stats.backchannel(ConnId(c.0)))
            })
    }

    /// One decision of [`Self::pump`], under the locks.
    fn pump_once(&self, sid: SessionId) -> Pumped {
        let conns = self.clients.lock().back_channel_conns(sid);
        let now = self.now();
        let mut s = self.sessions.lock();
        let Some(info) = s.get_mut(&sid) else {
            return Pumped::Stop;
        };
        let chan = self.pick_back_channel(info, &conns);
        let stop = |info: &mut SessionInfo| {
            if std::mem::take(&mut info.again) {
                Pumped::Again
            } else {
                info.pumping = false;
                Pumped::Stop
            }
        };
        if info.queue.is_empty() {
            return stop(info);
        }
        let Some(chan) = chan else {
            let list = info
                .queue
                .drain(..)
                .map(|(o, _)| (o, RecallOutcome::PathDown))
                .collect();
            return Pumped::Fail(list);
        };
        let seq = match info.back.start(now) {
            Ok(seq) => seq,
            Err(NoSlot::Busy) => return stop(info),
            Err(NoSlot::Dead) => {
                let list = info
                    .queue
                    .drain(..)
                    .map(|(o, _)| (o, RecallOutcome::PathDown))
                    .collect();
                return Pumped::Fail(list);
            }
        };
        let Some((order, tries)) = info.queue.pop_front() else {
            info.back.on_unsent(seq.call);
            return stop(info);
        };
        let Some(msg) = encode_cb_compound(sid, info.minor, &seq, CbOp::Recall(&order)) else {
            info.back.on_unsent(seq.call);
            return Pumped::Fail(vec![(order, RecallOutcome::Refused(NFS4ERR_BADHANDLE))]);
        };
        Pumped::Send {
            chan,
            seq,
            order,
            tries,
            msg,
            prog: info.cb_program,
            cred: info.cb_cred.clone(),
        }
    }

    /// The call carrying `order` ended with `r`: the slot learns what happened, the order
    /// is reported or queued again, and the session's queue moves on.
    fn recall_done(
        self: &Arc<Self>,
        sid: SessionId,
        conn: ConnId,
        seq: CbSequence,
        order: RecallOrder,
        tries: u8,
        r: Result<CallbackReply, CallbackError>,
    ) {
        let outcome = {
            let mut s = self.sessions.lock();
            match s.get_mut(&sid) {
                None => Some(RecallOutcome::PathDown),
                Some(info) => {
                    let (o, path_ok, _) = judge(&mut info.back, seq, r);
                    info.note_path(conn, path_ok);
                    match o {
                        Some(o) => Some(o),
                        None if tries < MAX_RESENDS => {
                            self.cb.resent.fetch_add(1, Relaxed);
                            info.queue.push_front((order.clone(), tries + 1));
                            None
                        }
                        None => Some(RecallOutcome::Refused(NFS4ERR_DELAY)),
                    }
                }
            }
        };
        if let Some(o) = outcome {
            self.report(&order, o, true);
        }
        self.pump(sid);
    }

    /// Takes `sid` out of the table (destroyed, or its client gone): the recalls queued
    /// on it have no path.
    pub(crate) fn remove_session(&self, sid: SessionId) {
        let queued: Vec<_> = match self.sessions.lock().remove(&sid) {
            Some(mut i) => i.queue.drain(..).map(|(o, _)| o).collect(),
            None => Vec::new(),
        };
        for o in queued {
            self.report(&o, RecallOutcome::PathDown, true);
        }
    }
}

/// CB_RECALL_ANY (RFC 8881 20.6), ordered by the delegation state at its bound (D6 of
/// [`super::state::delegations`]): at most one per client is in flight, so these take a
/// back-channel slot directly instead of the recall queue; no free slot is a refusal
/// with NFS4ERR_DELAY (asked again a lease later).
impl V4State {
    /// The outcomes of the CB_RECALL_ANYs handed to [`V4State::dispatch_recall_any`]
    /// since the last call, for `Delegations::recall_any_outcome`. At most one per client
    /// with delegations, so bounded by the client table.
    pub fn take_recall_any_outcomes(&self) -> Vec<(ClientId, RecallOutcome)> {
        std::mem::take(&mut *self.recall_any_outcomes.lock())
    }

    /// Sends each order on a back channel of its client; each outcome is kept exactly
    /// once for [`V4State::take_recall_any_outcomes`]. Never blocks on the network.
    pub fn dispatch_recall_any(self: &Arc<Self>, orders: Vec<RecallAnyOrder>) {
        for o in orders {
            if let Err(outcome) = self.send_recall_any(o) {
                self.recall_any_outcomes.lock().push((o.client, outcome));
            }
        }
    }

    fn send_recall_any(self: &Arc<Self>, o: RecallAnyOrder) -> Result<(), RecallOutcome> {
        let op = CbOp::RecallAny {
            keep: o.keep,
            mask: o.mask,
        };
        let d = self.start_direct(o.client, op)?;
        let me = self.clone();
        self.send_direct(d, move |got, _| {
            // Not run by the client (a resend would be due): asked again later instead.
            let outcome = got.unwrap_or(RecallOutcome::Refused(NFS4ERR_DELAY));
            tracing::debug!(client = o.client.0, ?outcome, "CB_RECALL_ANY");
            me.recall_any_outcomes.lock().push((o.client, outcome));
        });
        Ok(())
    }

    /// A callback that takes a back-channel slot of one of `client`'s sessions directly,
    /// not through the recall queue (CB_RECALL_ANY, CB_GETATTR): the slot taken and the
    /// call encoded, or why not (no free slot is a refusal with NFS4ERR_DELAY).
    fn start_direct(&self, client: ClientId, op: CbOp<'_>) -> Result<Direct, RecallOutcome> {
        let now = self.now();
        let clients = self.clients.lock();
        let mut s = self.sessions.lock();
        let mut best: Option<(SessionId, Vec<_>)> = None;
        for (id, i) in s.iter() {
            if i.client != client || !i.wants_back || i.back.is_dead() {
                continue;
            }
            let conns = clients.back_channel_conns(*id);
            if !conns.is_empty() {
                best = Some((*id, conns));
                break;
            }
        }
        drop(clients);
        let (sid, conns) = best.ok_or(RecallOutcome::PathDown)?;
        let info = s.get_mut(&sid).ok_or(RecallOutcome::PathDown)?;
        let chan = self
            .pick_back_channel(info, &conns)
            .ok_or(RecallOutcome::PathDown)?;
        let seq = info.back.start(now).map_err(|e| match e {
            NoSlot::Busy => RecallOutcome::Refused(NFS4ERR_DELAY),
            NoSlot::Dead => RecallOutcome::PathDown,
        })?;
        let Some(msg) = encode_cb_compound(sid, info.minor, &seq, op) else {
            info.back.on_unsent(seq.call);
            return Err(RecallOutcome::Refused(NFS4ERR_DELAY));
        };
        Ok(Direct {
            sid,
            chan,
            seq,
            msg,
            prog: info.cb_program,
            cred: info.cb_cred.clone(),
        })
    }

    /// Sends a call [`Self::start_direct`] prepared; `done` gets what became of it (as
    /// [`judge`] says) and the attributes a CB_GETATTR reply reported. The slot is then
    /// free again for the recalls queued meanwhile.
    fn send_direct(
        self: &Arc<Self>,
        d: Direct,
        done: impl FnOnce(Option<RecallOutcome>, Option<SizeChange>) + Send + 'static,
    ) {
        let me = self.clone();
        let conn = d.chan.conn();
        let (sid, seq) = (d.sid, d.seq);
        self.send_cb_compound(&d.chan, d.prog, &d.cred, &d.msg, move |r| {
            let (got, attrs) = {
                let mut s = me.sessions.lock();
                match s.get_mut(&sid) {
                    None => (Some(RecallOutcome::PathDown), None),
                    Some(info) => {
                        let (got, path_ok, attrs) = judge(&mut info.back, seq, r);
                        info.note_path(conn, path_ok);
                        (got, attrs)
                    }
                }
            };
            done(got, attrs);
            me.pump(sid);
        });
    }

    /// CB_GETATTR (D8 of [`super::state::delegations`]) to the holder of the write
    /// delegation `o`, waiting on the calling thread (of the blocking pool) at most `wait`
    /// for the reply: the size and change the holder reported, or `None` (no back
    /// channel, no free slot, no reply in time, a refusal). A reply after the wait only
    /// frees its slot.
    pub(crate) fn cb_getattr_wait(
        self: &Arc<Self>,
        o: &CbGetattrOrder,
        wait: Duration,
    ) -> Option<SizeChange> {
        let d = match self.start_direct(o.client, CbOp::Getattr(&o.fh)) {
            Ok(d) => d,
            Err(why) => {
                tracing::debug!(client = o.client.0, ?why, "CB_GETATTR not sent");
                return None;
            }
        };
        self.cb.getattr_sent.fetch_add(1, Relaxed);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let client = o.client;
        self.send_direct(d, move |got, attrs| {
            let got = match (got, attrs) {
                (Some(RecallOutcome::Delivered), Some(a)) => Some(a),
                (outcome, _) => {
                    tracing::debug!(client = client.0, ?outcome, "CB_GETATTR without attributes");
                    None
                }
            };
            // The waiter may have given up: then nobody reads it.
            let _ = tx.try_send(got);
        });
        let got = rx.recv_timeout(wait).ok().flatten();
        if got.is_some() {
            self.cb.getattr_answered.fetch_add(1, Relaxed);
        }
        got
    }
}

impl V4State {
    /// CB_OFFLOAD (RFC 7862 16.1) of the copy `e` to `client`, waiting on the calling
    /// thread (the copy's own) for the reply; sent again while the back channel is busy,
    /// a few times. Whether the client took it.
    pub(crate) fn cb_offload_wait(self: &Arc<Self>, client: ClientId, e: &OffloadEnd) -> bool {
        for attempt in 0..8u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << attempt.min(4)));
            }
            let d = match self.start_direct(client, CbOp::Offload(e)) {
                Ok(d) => d,
                Err(RecallOutcome::Refused(NFS4ERR_DELAY)) => continue,
                Err(why) => {
                    tracing::debug!(client = client.0, ?why, "CB_OFFLOAD not sent");
                    return false;
                }
            };
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.send_direct(d, move |got, _| {
                let _ = tx.try_send(got);
            });
            match rx.recv_timeout(self.callback_timeout() + Duration::from_secs(1)) {
                Ok(Some(RecallOutcome::Delivered)) => return true,
                // Not run by the client, or a busy slot: again.
                Ok(None | Some(RecallOutcome::Refused(NFS4ERR_DELAY))) => continue,
                Ok(Some(outcome)) => {
                    tracing::debug!(client = client.0, ?outcome, "CB_OFFLOAD refused");
                    return false;
                }
                Err(_) => return false,
            }
        }
        false
    }
}

/// A callback ready to send on a slot of its own ([`V4State::start_direct`]).
struct Direct {
    sid: SessionId,
    chan: Backchannel,
    seq: CbSequence,
    msg: Vec<u8>,
    prog: u32,
    cred: OpaqueAuth,
}

/// What the end of a call means for its order (`None`: send it again) and for the path
/// (`Some(true)`: the client answered; `Some(false)`: the path failed), and the attributes
/// a CB_GETATTR reply reported.
fn judge(
    back: &mut BackSlots,
    seq: CbSequence,
    r: Result<CallbackReply, CallbackError>,
) -> (Option<RecallOutcome>, Option<bool>, Option<SizeChange>) {
    let (o, path) = match r {
        Ok(reply) => match decode_cb_reply(reply.body()) {
            Ok(cb) => {
                return match back.on_reply(seq.call, cb.seq) {
                    Verdict::Done if cb.op_status == 0 => {
                        (Some(RecallOutcome::Delivered), Some(true), cb.attrs)
                    }
                    Verdict::Done => (Some(RecallOutcome::Refused(cb.op_status)), Some(true), None),
                    Verdict::Resend => (None, Some(true), None),
                    Verdict::Failed(_) if back.is_dead() => {
                        (Some(RecallOutcome::PathDown), Some(false), None)
                    }
                    Verdict::Failed(_) => (None, Some(true), None),
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "malformed CB_COMPOUND reply");
                back.on_malformed(seq.call);
                (Some(RecallOutcome::PathDown), Some(false))
            }
        },
        // Refused by the transport before it was sent.
        Err(CallbackError::Busy { .. }) => {
            back.on_unsent(seq.call);
            (None, None)
        }
        // The client's RPC layer refused it (e.g. the credential): not run.
        Err(CallbackError::Denied(_)) => {
            back.on_unsent(seq.call);
            (Some(RecallOutcome::PathDown), Some(false))
        }
        Err(
            CallbackError::TimedOut | CallbackError::TooLarge { .. } | CallbackError::Malformed,
        ) => {
            back.on_lost(seq.call);
            (Some(RecallOutcome::PathDown), Some(false))
        }
        // The connection closed: whether the path is down is the connections' to say.
        Err(CallbackError::Closed(_)) => {
            back.on_lost(seq.call);
            (Some(RecallOutcome::PathDown), None)
        }
    };
    (o, path, None)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seq() -> CbSequence {
        CbSequence {
            call: crate::v4::state::backchannel::CallId(1),
            slotid: 1,
            sequenceid: 5,
            highest_slotid: 3,
        }
    }

    /// A recall order (also the NFSv4.0 sender's tests' one).
    pub(crate) fn order() -> RecallOrder {
        RecallOrder {
            client: ClientId(9),
            stateid: Stateid {
                seqid: 2,
                other: [7; 12],
            },
            fh: vec![1, 2, 3],
            truncate: true,
        }
    }

    #[test]
    fn cb_compound_is_cb_sequence_then_the_operation() {
        let sid = SessionId([4; 16]);
        let msg = encode_cb_compound(sid, 2, &seq(), CbOp::Recall(&order())).unwrap();
        let a: p4::CbCompound4args = rnfs_xdr::from_bytes(&msg).unwrap();
        assert_eq!((a.minorversion, a.callback_ident), (2, 0));
        let [p4::NfsCbArgop4::OpCbSequence(s), p4::NfsCbArgop4::OpCbRecall(r)] = &a.argarray.0[..]
        else {
            panic!("{a:?}")
        };
        assert_eq!(s.csa_sessionid.0, [4; 16]);
        assert_eq!(
            (s.csa_slotid, s.csa_sequenceid, s.csa_highest_slotid),
            (1, 5, 3)
        );
        assert!(!s.csa_cachethis && s.csa_referring_call_lists.0.is_empty());
        assert_eq!((r.stateid.seqid, r.stateid.other.0), (2, [7; 12]));
        assert!(r.truncate);
        assert_eq!(r.fh.0, vec![1, 2, 3]);
        let any = encode_cb_compound(sid, 1, &seq(), CbOp::RecallAny { keep: 0, mask: 1 }).unwrap();
        let a: p4::CbCompound4args = rnfs_xdr::from_bytes(&any).unwrap();
        assert!(matches!(&a.argarray.0[1], p4::NfsCbArgop4::OpCbRecallAny(r)
            if r.craa_objects_to_keep == 0 && r.craa_type_mask.0 == vec![1]));
        // CB_OFFLOAD: a copy's write_response4, or its failure and the bytes copied.
        let mut end = OffloadEnd {
            fh: vec![9, 9],
            stateid: Stateid {
                seqid: 1,
                other: [3; 12],
            },
            copied: 1 << 27,
            status: 0,
            verf: *b"verifier",
        };
        let ok = encode_cb_compound(sid, 2, &seq(), CbOp::Offload(&end)).unwrap();
        let a: p4::CbCompound4args = rnfs_xdr::from_bytes(&ok).unwrap();
        let p4::NfsCbArgop4::OpCbOffload(o) = &a.argarray.0[1] else {
            panic!("{a:?}")
        };
        assert_eq!(
            (o.coa_fh.0.clone(), o.coa_stateid.other.0),
            (vec![9, 9], [3; 12])
        );
        assert!(matches!(&o.coa_offload_info, p4::OffloadInfo4::Nfs4Ok(w)
            if w.wr_count == 1 << 27 && w.wr_writeverf.0 == *b"verifier"
                && w.wr_callback_id.0.is_empty()));
        end.status = 28; // NFS4ERR_NOSPC
        end.copied = 5;
        let failed = encode_cb_compound(sid, 2, &seq(), CbOp::Offload(&end)).unwrap();
        let a: p4::CbCompound4args = rnfs_xdr::from_bytes(&failed).unwrap();
        assert!(matches!(&a.argarray.0[1], p4::NfsCbArgop4::OpCbOffload(o)
            if o.coa_offload_info == p4::OffloadInfo4::Default(p4::Nfsstat4::Nfs4errNospc, 5)));
        // A handle longer than NFS4_FHSIZE is not encoded.
        let mut long = order();
        long.fh = vec![0; 129];
        assert!(encode_cb_compound(sid, 1, &seq(), CbOp::Recall(&long)).is_none());
    }

    #[test]
    fn at_the_server_wide_bound_a_recall_is_refused_with_delay_at_once() {
        let st = V4State::new(
            crate::v4::service::V4Options::default(),
            Arc::new(rnfs_rpc::transport::ConnStats::default()),
        );
        st.cb.pending.store(MAX_CALLBACKS, Relaxed);
        st.dispatch_recalls(vec![order()]);
        assert_eq!(
            st.take_recall_outcomes(),
            vec![(order(), RecallOutcome::Refused(NFS4ERR_DELAY))]
        );
        assert_eq!(st.callback_counts().over_bound, 1);
        assert_eq!(st.callback_counts().pending, MAX_CALLBACKS, "not counted");
        // Below it, a client without a session has no path.
        st.cb.pending.store(MAX_CALLBACKS - 1, Relaxed);
        st.dispatch_recalls(vec![order()]);
        assert_eq!(
            st.take_recall_outcomes(),
            vec![(order(), RecallOutcome::PathDown)]
        );
        assert!(st.take_recall_outcomes().is_empty(), "taken once");
        assert_eq!(st.callback_counts().pending, MAX_CALLBACKS - 1);
    }

    #[test]
    fn outcomes_nobody_takes_are_bounded_oldest_dropped_first() {
        let st = V4State::new(
            crate::v4::service::V4Options::default(),
            Arc::new(rnfs_rpc::transport::ConnStats::default()),
        );
        // Every order to an unknown client ends at once (PathDown).
        let orders: Vec<_> = (0..=MAX_OUTCOMES as u32)
            .map(|i| RecallOrder {
                client: ClientId(u64::from(i)),
                ..order()
            })
            .collect();
        st.dispatch_recalls(orders);
        let kept = st.take_recall_outcomes();
        assert_eq!(kept.len(), MAX_OUTCOMES);
        assert_eq!(kept[0].0.client, ClientId(1), "the oldest went");
        assert_eq!(st.cb.outcomes_dropped.load(Relaxed), 1);
    }

    fn res(status: p4::Nfsstat4, ops: Vec<p4::NfsCbResop4>) -> Vec<u8> {
        rnfs_xdr::to_bytes(&p4::CbCompound4res {
            status,
            tag: Opaque(Vec::new()),
            resarray: VarArray(ops),
        })
    }

    fn seq_ok(target: u32) -> p4::NfsCbResop4 {
        p4::NfsCbResop4::OpCbSequence(p4::CbSequence4res::Nfs4Ok(p4::CbSequence4resok {
            csr_sessionid: OpaqueFixed([0; 16]),
            csr_sequenceid: 1,
            csr_slotid: 0,
            csr_highest_slotid: 0,
            csr_target_highest_slotid: target,
        }))
    }

    fn getattr_res(mask: Vec<u32>, vals: Vec<u8>) -> Vec<u8> {
        res(
            p4::Nfsstat4::Nfs4Ok,
            vec![
                seq_ok(0),
                p4::NfsCbResop4::OpCbGetattr(p4::CbGetattr4res::Nfs4Ok(p4::CbGetattr4resok {
                    obj_attributes: p4::Fattr4 {
                        attrmask: VarArray(mask),
                        attr_vals: Opaque(vals),
                    },
                })),
            ],
        )
    }

    #[test]
    fn cb_getattr_asks_change_and_size_and_its_reply_gives_them() {
        let seq = seq();
        let msg = encode_cb_compound(SessionId([7; 16]), 1, &seq, CbOp::Getattr(&[1, 2])).unwrap();
        let args = rnfs_xdr::from_bytes::<p4::CbCompound4args>(&msg).unwrap();
        match &args.argarray.0[1] {
            p4::NfsCbArgop4::OpCbGetattr(g) => {
                assert_eq!(g.fh.0, vec![1, 2]);
                assert_eq!(g.attr_request.0, vec![(1 << 3) | (1 << 4)]);
            }
            o => panic!("{o:?}"),
        }
        let mut v = Vec::new();
        v.extend_from_slice(&77u64.to_be_bytes()); // change
        v.extend_from_slice(&5u64.to_be_bytes()); // size
        let ok = decode_cb_reply(&getattr_res(vec![0x18], v.clone())).unwrap();
        assert_eq!(
            (ok.op_status, ok.attrs),
            (
                0,
                Some(SizeChange {
                    size: 5,
                    change: 77
                })
            )
        );
        // Attributes after them (RFC 9754's delegated times: 84, 85) are left unread.
        let mut more = v.clone();
        more.extend_from_slice(&[0; 24]);
        let later = decode_cb_reply(&getattr_res(vec![0x18, 0, 3 << 20], more)).unwrap();
        assert_eq!(later.attrs.map(|a| a.size), Some(5));
        // Without the size, or with an attribute before the change: nothing reported.
        let short = decode_cb_reply(&getattr_res(vec![0x08], 77u64.to_be_bytes().to_vec()));
        assert_eq!(short.unwrap().attrs, None);
        let mut typed = 1u32.to_be_bytes().to_vec();
        typed.extend_from_slice(&v);
        let before = decode_cb_reply(&getattr_res(vec![0x1a], typed)).unwrap();
        assert_eq!(before.attrs, None);
        // Truncated values: nothing reported, not an error of the reply.
        let cut = decode_cb_reply(&getattr_res(vec![0x18], v[..12].to_vec())).unwrap();
        assert_eq!(cut.attrs, None);
    }

    #[test]
    fn replies_give_cb_sequence_and_the_operation_status() {
        use p4::Nfsstat4 as S;
        let ok = res(
            S::Nfs4Ok,
            vec![
                seq_ok(3),
                p4::NfsCbResop4::OpCbRecall(p4::CbRecall4res { status: S::Nfs4Ok }),
            ],
        );
        assert_eq!(
            decode_cb_reply(&ok).unwrap(),
            CbReply {
                seq: SeqReply::Ok {
                    target_highest_slotid: 3
                },
                op_status: 0,
                attrs: None,
            }
        );
        let refused = res(
            S::Nfs4errBadStateid,
            vec![
                seq_ok(0),
                p4::NfsCbResop4::OpCbRecall(p4::CbRecall4res {
                    status: S::Nfs4errBadStateid,
                }),
            ],
        );
        assert_eq!(decode_cb_reply(&refused).unwrap().op_status, 10025);
        let misordered = res(
            S::Nfs4errSeqMisordered,
            vec![p4::NfsCbResop4::OpCbSequence(p4::CbSequence4res::Default(
                S::Nfs4errSeqMisordered,
            ))],
        );
        assert_eq!(
            decode_cb_reply(&misordered).unwrap().seq,
            SeqReply::Err(10063)
        );
        // Failed before any operation (e.g. CB_COMPOUND's minor version).
        let empty = res(S::Nfs4errMinorVersMismatch, vec![]);
        assert_eq!(decode_cb_reply(&empty).unwrap().seq, SeqReply::Err(10021));
        // Not CB_SEQUENCE first, nothing at all, trailing bytes: the client's fault.
        let wrong = res(
            S::Nfs4Ok,
            vec![p4::NfsCbResop4::OpCbRecall(p4::CbRecall4res {
                status: S::Nfs4Ok,
            })],
        );
        assert!(decode_cb_reply(&wrong).is_err());
        assert!(decode_cb_reply(&res(S::Nfs4Ok, vec![])).is_err());
        assert!(decode_cb_reply(&[]).is_err());
        let mut trailing = ok.clone();
        trailing.extend_from_slice(&[0; 4]);
        assert!(decode_cb_reply(&trailing).is_err());
    }
}
