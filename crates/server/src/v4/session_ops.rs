//! The session operations of one COMPOUND ([`Sessions`]) over the server's NFSv4 state:
//! the wire arguments become the session core's requests ([`super::state::sessions::api`]),
//! its results the wire results. One [`CompoundSessions`] per COMPOUND: it knows the
//! connection, the caller, the request's digest (for the slot's replay check) and, once
//! SEQUENCE ran, the slot that is to keep the reply.
use super::compound::{Limits, SessionStep, Sessions};
use super::error::{Nfs4Error, R4};
use super::service::{core_conn, SessionInfo, V4State};
use super::state::ids::{ClientId, SessionId, Time, Verifier};
use super::state::sessions::api::{
    BindDir, ChannelAttrs, ConnDir, CreateSessionArgs, ExchangeIdArgs, Principal, SequenceArgs,
    SequenceOutcome,
};
use super::state::sessions::clients::{Callback40, SetClientIdArgs};
use super::state::sessions::error::SessionError;
use super::state::sessions::slots::RequestDigest;
use super::unit::NFS4_OPS;
use crate::stats::Counters;
use rnfs_proto::nfs4 as p4;
use rnfs_proto::nfs4::NfsArgop4;
use rnfs_proto::rpc::{OpaqueAuth, AUTH_SYS};
use rnfs_rpc::message::Auth;
use rnfs_rpc::transport::ConnId;
use rnfs_xdr::{OpaqueFixed, VarArray, Writer, Xdr};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

/// The RPC reply header before the COMPOUND4res (xid, REPLY, MSG_ACCEPTED, an AUTH_NONE
/// verifier, SUCCESS): what `ca_maxresponsesize` counts besides the compound's results.
pub const RPC_REPLY_HEADER: u32 = 24;

/// The flags a client may set in EXCHANGE_ID (RFC 8881 18.35.3, knfsd's
/// EXCHGID4_FLAG_MASK_A); any other is NFS4ERR_INVAL (pynfs EID4 sends 0x4).
const EXCHGID_CLIENT_FLAGS: u32 = 0x1 | 0x2 | 0x100 | 0x1_0000 | 0x2_0000 | 0x4_0000 | 0x4000_0000;
/// The flags CREATE_SESSION defines (RFC 8881 18.36.1: PERSIST, CONN_BACK_CHAN,
/// CONN_RDMA); any other is NFS4ERR_INVAL, as knfsd (pynfs CSESS15 sends 0xf).
const CREATE_SESSION_FLAGS: u32 = p4::CREATE_SESSION4_FLAG_PERSIST
    | p4::CREATE_SESSION4_FLAG_CONN_BACK_CHAN
    | p4::CREATE_SESSION4_FLAG_CONN_RDMA;
/// The least an RPC call header takes before the COMPOUND4args (xid, CALL, RPC version,
/// program, version, procedure, then an AUTH_NONE credential and verifier): what
/// `ca_maxrequestsize` counts besides the compound's arguments. Credentials of other
/// flavours are longer, so a request judged by this is never refused wrongly.
pub const RPC_CALL_HEADER_MIN: usize = 40;
/// `EXCHGID4_FLAG_UPD_CONFIRMED_REC_A`.
const EXCHGID_UPDATE: u32 = 0x4000_0000;
/// `EXCHGID4_FLAG_USE_NON_PNFS`: no pNFS here.
const EXCHGID_NON_PNFS: u32 = 0x1_0000;
/// `EXCHGID4_FLAG_CONFIRMED_R`.
const EXCHGID_CONFIRMED: u32 = 0x8000_0000;
/// The server scope: every rnfs server is of one scope (the owner's major id is per server,
/// [`V4State::owner_major`]).
const SERVER_SCOPE: &[u8] = b"rnfs";

/// The session operations of one COMPOUND. See the module documentation.
pub struct CompoundSessions<'a> {
    state: &'a Arc<V4State>,
    conn: ConnId,
    principal: Principal,
    request: &'a [u8],
    now: Time,
    /// The slot SEQUENCE took, which keeps the reply; taken by `finish`, else released
    /// uncached on drop (a panic in an operation unwinds through here).
    slot: Cell<Option<(SessionId, u32)>>,
    counters: &'a Counters,
    /// The COMPOUND's minor version (a session created by it gets callbacks of it).
    minor: u32,
    /// The caller's address: an NFSv4.0 client's callback address must be its own.
    peer: Option<IpAddr>,
}

impl<'a> CompoundSessions<'a> {
    /// The session operations of the COMPOUND `request` (its whole arguments), sent on
    /// `conn` with credentials `auth`, at `now`; operations are counted in `counters`.
    pub fn new(
        state: &'a Arc<V4State>,
        conn: ConnId,
        auth: &Auth,
        request: &'a [u8],
        now: Time,
        counters: &'a Counters,
    ) -> Self {
        Self {
            state,
            conn,
            principal: principal_of(auth),
            request,
            now,
            slot: Cell::new(None),
            counters,
            minor: minor_of(request),
            peer: None,
        }
    }

    /// The caller's address (without one, no NFSv4.0 callback path is tried).
    pub fn with_peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    fn exchange_id(&self, a: &p4::ExchangeId4args, out: &mut Writer) -> R4<()> {
        if a.eia_flags & !EXCHGID_CLIENT_FLAGS != 0 {
            return Err(Nfs4Error::Inval);
        }
        if !matches!(a.eia_state_protect, p4::StateProtect4A::Sp4None) {
            // SP4_MACH_CRED and SP4_SSV need RPCSEC_GSS: not offered.
            return Err(Nfs4Error::NotSupp);
        }
        let args = ExchangeIdArgs {
            owner: a.eia_clientowner.co_ownerid.0.clone(),
            verifier: Verifier(a.eia_clientowner.co_verifier.0),
            principal: self.principal.clone(),
            update: a.eia_flags & EXCHGID_UPDATE != 0,
        };
        let st = self.state;
        let mut locking = st.locking.lock();
        let mut clients = st.clients.lock();
        let ok = clients.exchange_id(self.now, &args, &|id| locking.has_state(id))?;
        for id in &ok.purge {
            locking.purge_client(*id);
        }
        st.write_records(clients);
        drop(locking);
        let mut flags = EXCHGID_NON_PNFS;
        if ok.confirmed {
            flags |= EXCHGID_CONFIRMED;
        }
        p4::ExchangeId4resok {
            eir_clientid: ok.clientid.0,
            eir_sequenceid: ok.sequenceid,
            eir_flags: flags,
            eir_state_protect: p4::StateProtect4R::Sp4None,
            eir_server_owner: p4::ServerOwner4 {
                so_minor_id: 0,
                so_major_id: rnfs_xdr::Opaque(self.state.owner_major.clone()),
            },
            eir_server_scope: rnfs_xdr::Opaque(SERVER_SCOPE.to_vec()),
            eir_server_impl_id: VarArray(Vec::new()),
        }
        .encode(out);
        Ok(())
    }

    fn create_session(&self, a: &p4::CreateSession4args, out: &mut Writer) -> R4<()> {
        if a.csa_flags & !CREATE_SESSION_FLAGS != 0 {
            return Err(Nfs4Error::Inval);
        }
        let back_chan = a.csa_flags & p4::CREATE_SESSION4_FLAG_CONN_BACK_CHAN != 0;
        let cb_cred = callback_cred(&a.csa_sec_parms.0);
        let args = CreateSessionArgs {
            clientid: ClientId(a.csa_clientid),
            sequence: a.csa_sequence,
            principal: self.principal.clone(),
            back_chan,
            fore: attrs_in(&a.csa_fore_chan_attrs),
            back: attrs_in(&a.csa_back_chan_attrs),
            conn: core_conn(self.conn),
        };
        let st = self.state;
        let mut locking = st.locking.lock();
        let mut clients = st.clients.lock();
        let done = clients.create_session(self.now, &args)?;
        if let Some(id) = done.purge {
            locking.purge_client(id);
        }
        st.write_records(clients);
        drop(locking);
        let r = &done.reply;
        let probe = r.back_chan && cb_cred.is_some();
        st.sessions.lock().insert(
            r.sessionid,
            SessionInfo::new(
                ClientId(a.csa_clientid),
                self.minor,
                r.fore,
                r.back.max_requests,
                back_chan,
                a.csa_cb_program,
                cb_cred.unwrap_or_else(OpaqueAuth::none),
            ),
        );
        if probe {
            st.probe_back_channel(r.sessionid);
        }
        p4::CreateSession4resok {
            csr_sessionid: OpaqueFixed(r.sessionid.0),
            csr_sequence: r.sequence,
            csr_flags: if r.back_chan {
                p4::CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            } else {
                0
            },
            csr_fore_chan_attrs: attrs_out(&r.fore),
            csr_back_chan_attrs: attrs_out(&r.back),
        }
        .encode(out);
        Ok(())
    }

    fn sequence(&self, a: &p4::Sequence4args, count: usize, out: &mut Writer) -> SessionStep {
        let sid = SessionId(a.sa_sessionid.0);
        let st = self.state;
        // RFC 8881 18.46.3 / 2.10.6.4: a request larger than the session's
        // ca_maxrequestsize, or with more operations than its ca_maxoperations, is refused
        // before the slot is touched (pynfs SEQ6; as knfsd): the client may send the same
        // sequence id again with a smaller request. An unknown session is left to the core
        // (BADSESSION).
        let known = st
            .sessions
            .lock()
            .get(&sid)
            .map(|i| (i.fore.max_request_size, i.fore.max_operations, i.client));
        if let Some((max, max_ops, _)) = known {
            if self.request.len().saturating_add(RPC_CALL_HEADER_MIN) > max as usize {
                return SessionStep::Err(Nfs4Error::ReqTooBig);
            }
            if count > max_ops as usize {
                return SessionStep::Err(Nfs4Error::TooManyOps);
            }
        }
        // Asked before the client table is locked (lock order: locking first); nothing to
        // ask when the server grants no delegations.
        let revoked = st.opts.delegations
            && known.is_some_and(|(_, _, c)| st.locking.lock().delegations().has_revoked(c));
        let mut clients = st.clients.lock();
        let args = SequenceArgs {
            sessionid: sid,
            sequenceid: a.sa_sequenceid,
            slotid: a.sa_slotid,
            highest_slotid: a.sa_highest_slotid,
            cachethis: a.sa_cachethis,
            digest: RequestDigest::of(self.request),
            conn: core_conn(self.conn),
            callback: st.callback_health(&clients, sid, revoked),
        };
        let ok = match clients.sequence(self.now, &args) {
            Err(e) => return SessionStep::Err(e.into()),
            Ok(SequenceOutcome::Replay(bytes)) => return SessionStep::Replay(bytes),
            Ok(SequenceOutcome::Execute(ok)) => ok,
        };
        let max_cached = clients.max_cached_reply(sid);
        drop(clients);
        if ok.bound_back {
            // A new connection carries the back channel now: see whether it works.
            st.probe_back_channel(sid);
        }
        self.slot.set(Some((sid, ok.slotid)));
        let fore = st.sessions.lock().get(&sid).map(|i| i.fore);
        let limits = fore.map(|f| Limits {
            max_ops: f.max_operations,
            max_reply: f.max_response_size.saturating_sub(RPC_REPLY_HEADER) as usize,
            max_cached: a
                .sa_cachethis
                .then(|| max_cached.unwrap_or(f.max_response_size_cached) as usize),
        });
        p4::Sequence4resok {
            sr_sessionid: OpaqueFixed(ok.sessionid.0),
            sr_sequenceid: ok.sequenceid,
            sr_slotid: ok.slotid,
            sr_highest_slotid: ok.highest_slotid,
            sr_target_highest_slotid: ok.target_highest_slotid,
            sr_status_flags: ok.status_flags,
        }
        .encode(out);
        SessionStep::Sequenced {
            limits,
            client: ok.clientid,
        }
    }

    fn bind_conn(&self, a: &p4::BindConnToSession4args, out: &mut Writer) -> R4<()> {
        let sid = SessionId(a.bctsa_sessid.0);
        let dir = match a.bctsa_dir {
            p4::ChannelDirFromClient4::Cdfc4Fore => BindDir::Fore,
            p4::ChannelDirFromClient4::Cdfc4Back => BindDir::Back,
            p4::ChannelDirFromClient4::Cdfc4ForeOrBoth => BindDir::ForeOrBoth,
            p4::ChannelDirFromClient4::Cdfc4BackOrBoth => BindDir::BackOrBoth,
        };
        let st = self.state;
        let granted = st
            .clients
            .lock()
            .bind_conn(sid, core_conn(self.conn), dir)?;
        if granted.back() {
            let known = match st.sessions.lock().get_mut(&sid) {
                Some(i) => {
                    i.wants_back = true;
                    true
                }
                None => false,
            };
            if known {
                st.probe_back_channel(sid);
            }
        }
        p4::BindConnToSession4resok {
            bctsr_sessid: a.bctsa_sessid,
            bctsr_dir: match granted {
                ConnDir::Fore => p4::ChannelDirFromServer4::Cdfs4Fore,
                ConnDir::Back => p4::ChannelDirFromServer4::Cdfs4Back,
                ConnDir::Both => p4::ChannelDirFromServer4::Cdfs4Both,
            },
            bctsr_use_conn_in_rdma_mode: false,
        }
        .encode(out);
        Ok(())
    }

    fn destroy_session(&self, a: &p4::DestroySession4args) -> R4<()> {
        let sid = SessionId(a.dsa_sessionid.0);
        self.state
            .clients
            .lock()
            .destroy_session(sid, core_conn(self.conn))?;
        self.state.remove_session(sid);
        Ok(())
    }

    /// BACKCHANNEL_CTL (RFC 8881 18.33): the session of this COMPOUND's SEQUENCE takes
    /// a new callback program and security, and its back channel is probed again.
    fn backchannel_ctl(&self, a: &p4::BackchannelCtl4args) -> R4<()> {
        let Some((sid, _)) = self.slot.get() else {
            return Err(Nfs4Error::OpNotInSession);
        };
        // Only RPCSEC_GSS offered: nothing we can send with (knfsd: NFS4ERR_INVAL).
        let cred = callback_cred(&a.bca_sec_parms.0).ok_or(Nfs4Error::Inval)?;
        let st = self.state;
        match st.sessions.lock().get_mut(&sid) {
            Some(i) => {
                i.cb_program = a.bca_cb_program;
                i.cb_cred = cred;
                i.probe_ok = None;
            }
            None => return Err(SessionError::BadSession.into()),
        }
        st.probe_back_channel(sid);
        Ok(())
    }

    fn destroy_clientid(&self, a: &p4::DestroyClientid4args) -> R4<()> {
        let id = ClientId(a.dca_clientid);
        let st = self.state;
        let locking = st.locking.lock();
        let mut clients = st.clients.lock();
        clients.destroy_clientid(id, locking.has_state(id))?;
        st.write_records(clients);
        Ok(())
    }
}

impl Sessions for CompoundSessions<'_> {
    fn run(&self, op: &NfsArgop4, _index: usize, count: usize, out: &mut Writer) -> SessionStep {
        let r = match op {
            NfsArgop4::OpSequence(a) => return self.sequence(a, count, out),
            NfsArgop4::OpExchangeId(a) => self.exchange_id(a, out),
            NfsArgop4::OpCreateSession(a) => self.create_session(a, out),
            NfsArgop4::OpBindConnToSession(a) => self.bind_conn(a, out),
            NfsArgop4::OpDestroySession(a) => self.destroy_session(a),
            NfsArgop4::OpDestroyClientid(a) => self.destroy_clientid(a),
            NfsArgop4::OpBackchannelCtl(a) => self.backchannel_ctl(a),
            _ => Err(Nfs4Error::NotSupp),
        };
        match r {
            Ok(()) => SessionStep::Ok(None),
            Err(e) => SessionStep::Err(e),
        }
    }

    fn finish(&self, reply: &[u8]) {
        if let Some((sid, slot)) = self.slot.take() {
            if let Err(e) = self.state.clients.lock().sequence_done(sid, slot, reply) {
                tracing::debug!(error = ?e, "slot did not keep the reply");
            }
        }
    }

    fn reclaim_complete(&self, client: ClientId, one_fs: bool) -> R4<()> {
        let st = self.state;
        let mut clients = st.clients.lock();
        clients.reclaim_complete(client, one_fs)?;
        st.write_records(clients);
        Ok(())
    }

    fn setclientid(&self, a: &p4::Setclientid4args, out: &mut Writer) -> R4<()> {
        let loc = &a.callback.cb_location;
        let args = SetClientIdArgs {
            owner: a.client.id.0.clone(),
            verifier: Verifier(a.client.verifier.0),
            principal: self.principal.clone(),
            callback: Callback40 {
                program: a.callback.cb_program,
                netid: String::from_utf8_lossy(&loc.na_r_netid.0).into_owned(),
                uaddr: String::from_utf8_lossy(&loc.na_r_addr.0).into_owned(),
                ident: a.callback_ident,
            },
        };
        let st = self.state;
        let mut locking = st.locking.lock();
        let mut clients = st.clients.lock();
        let ok = match clients.setclientid(self.now, &args, &|id| locking.has_state(id)) {
            Ok(ok) => ok,
            Err(e) => {
                if e == SessionError::ClidInuse {
                    // clientaddr4 of the client using the owner: not disclosed.
                    out.opaque(b"");
                    out.opaque(b"");
                }
                return Err(e.into());
            }
        };
        for id in &ok.purge {
            locking.purge_client(*id);
        }
        st.write_records(clients);
        drop(locking);
        st.forget40(&ok.purge);
        out.u64(ok.clientid.0);
        out.opaque_fixed(&ok.confirm.0);
        Ok(())
    }

    fn setclientid_confirm(&self, a: &p4::SetclientidConfirm4args) -> R4<()> {
        let st = self.state;
        let mut locking = st.locking.lock();
        let mut clients = st.clients.lock();
        let purge = clients.setclientid_confirm(
            self.now,
            ClientId(a.clientid),
            Verifier(a.setclientid_confirm.0),
            &self.principal,
        )?;
        if let Some(id) = purge {
            locking.purge_client(id);
        }
        st.write_records(clients);
        drop(locking);
        if let Some(id) = purge {
            st.forget40(&[id]);
        }
        // The callback path is probed (again after a callback update: RFC 7530 16.33.5).
        if let Some(peer) = self.peer {
            st.callback40_confirmed(ClientId(a.clientid), peer, self.conn);
        }
        Ok(())
    }

    fn use_client40(&self, client: ClientId) -> R4<()> {
        self.state.clients.lock().use_client40(client, self.now)?;
        self.state.callback40_seen(client, self.conn);
        Ok(())
    }

    fn op_done(&self, num: u32, status: u32) {
        #[cfg(test)]
        tests::maybe_panic(num);
        // OP_ILLEGAL (10044) is past the table: counted under the name "illegal".
        let i = if num as usize >= NFS4_OPS.len() {
            0
        } else {
            num as usize
        };
        self.counters.result(i, status);
    }
}

/// The slot guard: a compound that never reached `finish` (an operation panicked, and
/// the panic unwinds to the RPC layer, which answers SYSTEM_ERR) frees its slot with no
/// reply kept, as `rnfs_rpc`'s `Completion` frees a call's place. Otherwise the slot would
/// stay busy and the client's every later call on it be DELAY or SEQ_MISORDERED.
impl Drop for CompoundSessions<'_> {
    fn drop(&mut self) {
        if let Some((sid, slot)) = self.slot.take() {
            tracing::warn!(
                slot,
                "compound given up after SEQUENCE; slot freed uncached"
            );
            self.state.clients.lock().sequence_abandoned(sid, slot);
        }
    }
}

/// The minor version of COMPOUND arguments (after the tag); 1 if they cannot be read
/// (the engine refuses them anyway).
fn minor_of(request: &[u8]) -> u32 {
    let mut r = rnfs_xdr::Reader::new(request);
    p4::Utf8strCs::decode(&mut r)
        .and_then(|_| u32::decode(&mut r))
        .unwrap_or(1)
}

/// The credential for callbacks from the client's `callback_sec_parms4` list (RFC 8881
/// 18.36.3, 18.33.3): AUTH_SYS when offered (the Linux callback service refuses
/// AUTH_NONE for anything but CB_NULL), else AUTH_NONE; `None` when only RPCSEC_GSS is
/// offered (not supported: no callbacks).
fn callback_cred(parms: &[p4::CallbackSecParms4]) -> Option<OpaqueAuth> {
    let sys = parms.iter().find_map(|p| match p {
        p4::CallbackSecParms4::AuthSys(s) => Some(OpaqueAuth {
            flavor: AUTH_SYS,
            body: rnfs_xdr::Opaque(rnfs_xdr::to_bytes(s)),
        }),
        _ => None,
    });
    sys.or_else(|| {
        parms
            .iter()
            .any(|p| matches!(p, p4::CallbackSecParms4::AuthNone))
            .then(OpaqueAuth::none)
    })
}

/// The principal of a caller, as the client table compares it: AUTH_SYS's uid (knfsd
/// compares the uid and groups of AUTH_SYS credentials; the machine name may change
/// between a client's calls), nothing for AUTH_NONE.
fn principal_of(auth: &Auth) -> Principal {
    match auth {
        Auth::None => Principal(Vec::new()),
        Auth::Sys(p) => Principal(p.uid.to_be_bytes().to_vec()),
    }
}

fn attrs_in(a: &p4::ChannelAttrs4) -> ChannelAttrs {
    ChannelAttrs {
        header_pad_size: a.ca_headerpadsize,
        max_request_size: a.ca_maxrequestsize,
        max_response_size: a.ca_maxresponsesize,
        max_response_size_cached: a.ca_maxresponsesize_cached,
        max_operations: a.ca_maxoperations,
        max_requests: a.ca_maxrequests,
    }
}

fn attrs_out(a: &ChannelAttrs) -> p4::ChannelAttrs4 {
    p4::ChannelAttrs4 {
        ca_headerpadsize: a.header_pad_size,
        ca_maxrequestsize: a.max_request_size,
        ca_maxresponsesize: a.max_response_size,
        ca_maxresponsesize_cached: a.max_response_size_cached,
        ca_maxoperations: a.max_operations,
        ca_maxrequests: a.max_requests,
        ca_rdma_ird: VarArray(Vec::new()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// The operation number whose completion panics on this thread (tests only).
        static PANIC_AT: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Makes operation `num` panic as it answers, on this thread, until cleared with
    /// `None`: a stand-in for a handler bug (test builds only; nothing on the network
    /// reaches it).
    pub(crate) fn panic_at(num: Option<u32>) {
        PANIC_AT.with(|p| p.set(num));
    }

    pub(super) fn maybe_panic(num: u32) {
        if PANIC_AT.with(|p| p.get()) == Some(num) {
            panic!("injected panic in operation {num}");
        }
    }
}
