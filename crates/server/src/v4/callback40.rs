//! The server's callbacks to NFSv4.0 clients (RFC 7530 3.3.2, 10.2, 16.33): on a
//! connection the server opens to the address the client named in SETCLIENTID, not on a
//! back channel. The decisions are [`super::state::callback40`]'s (I/O-free); this drives
//! them: it connects ([`rnfs_rpc::transport::outgoing`], with its address guard and rate
//! limit), sends CB_NULL as the probe and CB_RECALL as a `CB_COMPOUND` of minor version 0
//! carrying the client's `callback_ident` (no CB_SEQUENCE), with an AUTH_SYS credential,
//! and reports each recall's [`RecallOutcome`] through the same queue as the 4.1 back
//! channel: one dispatch path ([`V4State::dispatch_recalls`]), two transports, one retry
//! schedule (the delegation layer's).
//!
//! Locks: the paths' lock is taken after the locking and client tables when held with
//! them, and nothing is sent or dropped while it is held.
use super::callback::{RecallOrder, RecallOutcome, MAX_CALLBACKS};
use super::service::V4State;
use super::state::callback40::{PathCounts, Probe, Route};
use super::state::ids::ClientId;
use rnfs_proto::nfs4 as p4;
use rnfs_proto::rpc::{OpaqueAuth, AUTH_SYS};
use rnfs_rpc::transport::outgoing::CallbackConn;
use rnfs_rpc::transport::{CallbackCall, CallbackConfig, CallbackError, CallbackReply, ConnId};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Xdr, XdrString};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The callback program's version (RFC 7530 16.33.1: `NFS_CB` is version 1).
const CB_VERSION: u32 = 1;
/// CB_NULL and CB_COMPOUND.
const CB_NULL: u32 = 0;
const CB_COMPOUND: u32 = 1;
/// How long connecting and the CB_NULL probe each may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// `NFS4ERR_DELAY`, `NFS4ERR_BADHANDLE`.
const NFS4ERR_DELAY: u32 = 10008;
const NFS4ERR_BADHANDLE: u32 = 10001;
/// Calls in flight on one client's callback connection (the transport refuses more:
/// NFS4ERR_DELAY, retried on the delegation layer's schedule).
const MAX_OUTSTANDING: usize = 16;

/// The credential of the server's 4.0 callbacks: AUTH_SYS as root of machine "rnfs" (as
/// knfsd's machine credential; the Linux client's callback service refuses AUTH_NONE for
/// anything but CB_NULL).
pub(crate) fn cred40() -> OpaqueAuth {
    let parms = p4::AuthsysParms {
        stamp: 0,
        machinename: XdrString(b"rnfs".to_vec()),
        uid: 0,
        gid: 0,
        gids: VarArray(Vec::new()),
    };
    OpaqueAuth {
        flavor: AUTH_SYS,
        body: Opaque(rnfs_xdr::to_bytes(&parms)),
    }
}

/// CB_COMPOUND4args of minor version 0 for recall `o`: CB_RECALL alone, with the
/// client's `callback_ident`. `None` for a handle longer than NFS4_FHSIZE (not ours).
pub(crate) fn encode_recall40(ident: u32, o: &RecallOrder) -> Option<Vec<u8>> {
    let args = p4::CbCompound4args {
        tag: Opaque(Vec::new()),
        minorversion: 0,
        callback_ident: ident,
        argarray: VarArray(vec![p4::NfsCbArgop4::OpCbRecall(p4::CbRecall4args {
            stateid: p4::Stateid4 {
                seqid: o.stateid.seqid,
                other: OpaqueFixed(o.stateid.other),
            },
            truncate: o.truncate,
            fh: Opaque::new(o.fh.clone()).ok()?,
        })]),
    };
    Some(rnfs_xdr::to_bytes(&args))
}

/// CB_RECALL's status from a CB_COMPOUND4res of minor version 0 (the compound's status
/// when it failed before the operation); a malformed reply is an error.
pub(crate) fn decode_recall40(body: &[u8]) -> Result<u32, rnfs_xdr::Error> {
    let mut r = Reader::new(body);
    let res = p4::CbCompound4res::decode(&mut r)?;
    r.finish()?;
    match res.resarray.0.first() {
        Some(p4::NfsCbResop4::OpCbRecall(x)) => Ok(x.status as u32),
        Some(p4::NfsCbResop4::OpCbIllegal(x)) => Ok(x.status as u32),
        None if res.status as u32 != 0 => Ok(res.status as u32),
        other => Err(rnfs_xdr::Error::BadDiscriminant {
            what: "nfs_cb_resop4 (CB_RECALL)",
            value: other.map_or(0, |o| o.discriminant()),
        }),
    }
}

/// What a finished CB_RECALL means: its outcome, and for the path `Some(true)` (the
/// client answered), `Some(false)` (lost), `None` (not sent).
fn judge40(r: Result<CallbackReply, CallbackError>) -> (RecallOutcome, Option<bool>) {
    match r {
        Ok(reply) => match decode_recall40(reply.body()) {
            Ok(0) => (RecallOutcome::Delivered, Some(true)),
            Ok(s) => (RecallOutcome::Refused(s), Some(true)),
            Err(e) => {
                tracing::info!(error = %e, "malformed NFSv4.0 CB_COMPOUND reply");
                (RecallOutcome::PathDown, Some(false))
            }
        },
        Err(CallbackError::Busy { .. }) => (RecallOutcome::Refused(NFS4ERR_DELAY), None),
        Err(
            CallbackError::Denied(_)
            | CallbackError::TimedOut
            | CallbackError::TooLarge { .. }
            | CallbackError::Malformed
            | CallbackError::Closed(_),
        ) => (RecallOutcome::PathDown, Some(false)),
    }
}

impl V4State {
    /// NFSv4.0 client `id` was confirmed by a call from `peer` on connection `via`: its
    /// callback path is probed unless it is up (or being probed) at the same address.
    pub(crate) fn callback40_confirmed(self: &Arc<Self>, id: ClientId, peer: IpAddr, via: ConnId) {
        let Some(cb) = self.clients.lock().callback40(id) else {
            return;
        };
        let now = self.now();
        let probe = self.cb40.lock().confirmed(id, cb, peer, via.0, now);
        if let Some(p) = probe {
            self.run_probe40(p);
        }
    }

    /// NFSv4.0 client `id` called on connection `via` (a later probe connects from its
    /// runtime).
    pub(crate) fn callback40_seen(&self, id: ClientId, via: ConnId) {
        self.cb40.lock().seen_on(id, via.0);
    }

    /// Whether NFSv4.0 client `id`'s callback path answered.
    pub fn callback40_verified(&self, id: ClientId) -> bool {
        self.cb40.lock().verified(id)
    }

    /// Whether NFSv4.0 client `id`'s callback path is down (RENEW's CB_PATH_DOWN).
    pub fn callback40_down(&self, id: ClientId) -> bool {
        self.cb40.lock().is_down(id)
    }

    /// What the NFSv4.0 callback paths did (probes, refused targets, deferrals).
    pub fn callback40_counts(&self) -> PathCounts {
        self.cb40.lock().counts()
    }

    /// Forgets the paths of clients gone (their connections closed).
    pub(crate) fn forget40(&self, ids: &[ClientId]) {
        let conns: Vec<CallbackConn> = {
            let mut p = self.cb40.lock();
            ids.iter().filter_map(|id| p.remove(*id)).collect()
        };
        drop(conns);
    }

    pub(crate) fn run_probe40(self: &Arc<Self>, p: Probe) {
        tracing::info!(client = p.client.0, target = %p.target, "NFSv4.0 callback path: connecting");
        let me = Arc::downgrade(self);
        let cfg = CallbackConfig {
            max_outstanding: MAX_OUTSTANDING,
            ..CallbackConfig::default()
        };
        self.conn_stats
            .connect_callback(ConnId(p.via), p.target, PROBE_TIMEOUT, cfg, move |r| {
                let Some(me) = me.upgrade() else { return };
                let conn = match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(client = p.client.0, target = %p.target, error = %e, "NFSv4.0 callback path: cannot connect");
                        me.probe40_done(&p, None);
                        return;
                    }
                };
                let bc = conn.backchannel().clone();
                let cred = cred40();
                let call = CallbackCall {
                    prog: p.program,
                    vers: CB_VERSION,
                    proc_: CB_NULL,
                    cred: &cred,
                    args: &[],
                };
                let weak = Arc::downgrade(&me);
                bc.send(call, PROBE_TIMEOUT, move |r| {
                    let Some(me) = weak.upgrade() else { return };
                    match r {
                        Ok(_) => me.probe40_done(&p, Some(conn)),
                        Err(e) => {
                            tracing::info!(client = p.client.0, error = %e, "NFSv4.0 CB_NULL probe failed");
                            me.probe40_done(&p, None);
                        }
                    }
                });
            });
    }

    fn probe40_done(&self, p: &Probe, conn: Option<CallbackConn>) {
        let up = conn.is_some();
        let stale = self.cb40.lock().probe_done(p.client, p.gen, conn);
        tracing::debug!(client = p.client.0, up, "NFSv4.0 callback path probed");
        drop(stale);
    }

    /// Sends the recall `o` to NFSv4.0 client `o.client` on its callback connection; its
    /// outcome is reported as the 4.1 ones are. `Err` gives the order back when the
    /// client has no 4.0 callback path at all (it is not a 4.0 client).
    pub(crate) fn recall40(self: &Arc<Self>, o: RecallOrder) -> Result<(), RecallOrder> {
        let now = self.now();
        let route = {
            let mut paths = self.cb40.lock();
            match paths.route(o.client, now, |c: &CallbackConn| {
                c.backchannel().closed_reason().is_none()
            }) {
                Route::Unknown => None,
                Route::Down(p) => Some(Err(p)),
                Route::Send {
                    gen,
                    conn,
                    program,
                    ident,
                } => Some(Ok((gen, conn.backchannel().clone(), program, ident))),
            }
        };
        let (gen, bc, program, ident) = match route {
            None => return Err(o),
            Some(Err(probe)) => {
                if let Some(p) = probe {
                    self.run_probe40(p);
                }
                self.report(&o, RecallOutcome::PathDown, false);
                return Ok(());
            }
            Some(Ok(r)) => r,
        };
        if self.cb.pending.load(Relaxed) >= MAX_CALLBACKS {
            self.cb.over_bound.fetch_add(1, Relaxed);
            self.report(&o, RecallOutcome::Refused(NFS4ERR_DELAY), false);
            return Ok(());
        }
        let Some(msg) = encode_recall40(ident, &o) else {
            self.report(&o, RecallOutcome::Refused(NFS4ERR_BADHANDLE), false);
            return Ok(());
        };
        self.cb.pending.fetch_add(1, Relaxed);
        self.cb.sent.fetch_add(1, Relaxed);
        let cred = cred40();
        let call = CallbackCall {
            prog: program,
            vers: CB_VERSION,
            proc_: CB_COMPOUND,
            cred: &cred,
            args: &msg,
        };
        let me = self.clone();
        bc.send(call, self.callback_timeout(), move |r| {
            let (outcome, path) = judge40(r);
            let dropped = me.cb40.lock().call_done(o.client, gen, path);
            drop(dropped);
            me.report(&o, outcome, true);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v4::callback::tests::order;

    #[test]
    fn a_4_0_recall_is_cb_recall_alone_with_the_callback_ident() {
        let msg = encode_recall40(77, &order()).unwrap();
        let a: p4::CbCompound4args = rnfs_xdr::from_bytes(&msg).unwrap();
        assert_eq!((a.minorversion, a.callback_ident), (0, 77));
        let [p4::NfsCbArgop4::OpCbRecall(r)] = &a.argarray.0[..] else {
            panic!("{a:?}")
        };
        assert_eq!((r.stateid.seqid, r.stateid.other.0), (2, [7; 12]));
        assert_eq!(r.fh.0, vec![1, 2, 3]);
        assert!(r.truncate, "as ordered");
        let mut long = order();
        long.fh = vec![0; 129];
        assert!(encode_recall40(1, &long).is_none());
        // The credential: AUTH_SYS, uid 0.
        let c = cred40();
        assert_eq!(c.flavor, AUTH_SYS);
        let p: p4::AuthsysParms = rnfs_xdr::from_bytes(&c.body.0).unwrap();
        assert_eq!((p.uid, p.gid, &p.machinename.0[..]), (0, 0, &b"rnfs"[..]));
    }

    fn res(status: p4::Nfsstat4, ops: Vec<p4::NfsCbResop4>) -> Vec<u8> {
        rnfs_xdr::to_bytes(&p4::CbCompound4res {
            status,
            tag: Opaque(Vec::new()),
            resarray: VarArray(ops),
        })
    }

    #[test]
    fn a_4_0_reply_gives_cb_recalls_status() {
        use p4::Nfsstat4 as S;
        let ok = res(
            S::Nfs4Ok,
            vec![p4::NfsCbResop4::OpCbRecall(p4::CbRecall4res {
                status: S::Nfs4Ok,
            })],
        );
        assert_eq!(decode_recall40(&ok).unwrap(), 0);
        let bad = res(
            S::Nfs4errBadStateid,
            vec![p4::NfsCbResop4::OpCbRecall(p4::CbRecall4res {
                status: S::Nfs4errBadStateid,
            })],
        );
        assert_eq!(decode_recall40(&bad).unwrap(), 10025);
        assert_eq!(
            decode_recall40(&res(S::Nfs4errResource, vec![])).unwrap(),
            10018
        );
        assert!(decode_recall40(&res(S::Nfs4Ok, vec![])).is_err());
        assert!(decode_recall40(&[]).is_err());
        // Judged: answered is the path up, lost is down, a busy transport is a retry.
        assert_eq!(
            judge40(Err(CallbackError::TimedOut)),
            (RecallOutcome::PathDown, Some(false))
        );
        assert_eq!(
            judge40(Err(CallbackError::Busy { limit: 16 })).0,
            RecallOutcome::Refused(NFS4ERR_DELAY)
        );
    }
}
