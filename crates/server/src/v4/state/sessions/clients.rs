//! The client and session table: EXCHANGE_ID, CREATE_SESSION, SEQUENCE, DESTROY_SESSION,
//! DESTROY_CLIENTID, BIND_CONN_TO_SESSION, RECLAIM_COMPLETE, leases and the laundromat.
//!
//! The contract (RFC 8881 sections named), each clause tested in `tests.rs`:
//! - C1 (18.35.5): EXCHANGE_ID follows the nine cases of the RFC: (1) new owner; (2)
//!   non-update on a confirmed record with the same verifier and principal (same id,
//!   confirmed); (3) another principal on a confirmed record: `CLID_INUSE` while that
//!   client holds sessions or state and its lease is current, else the old client is
//!   purged and the owner starts afresh; (4) an unconfirmed record is replaced; (5) a new
//!   verifier (client restart) makes a new unconfirmed record beside the confirmed one;
//!   (6) an update with the right verifier and principal succeeds; (7) `NOENT` without a
//!   confirmed record, (8) `NOT_SAME` with another verifier, (9) `PERM` by another
//!   principal.
//! - C2 (18.36.4): CREATE_SESSION has its own one-slot replay cache per client: the
//!   sequence id handed out by EXCHANGE_ID is new, the same id again returns the cached
//!   result, anything else is `SEQ_MISORDERED`. It confirms the client, and confirming a
//!   restarted client purges its previous incarnation. Transient refusals (`DELAY`,
//!   `RESOURCE`) do not consume the sequence id.
//! - C3: the connection a session is created or used on is bound to it (SP4_NONE binds
//!   implicitly on SEQUENCE, RFC 8881 2.10.8.1); a close notice unbinds it;
//!   DESTROY_SESSION is refused on a connection not bound to the session.
//! - C4 (18.46, 2.10.6): SEQUENCE runs the slot rules of [`super::slots`], renews the
//!   lease (bringing a courtesy client back) and reports the slot limits and status flags
//!   from what the caller says about the callback path, never guessing.
//! - C5 (8.3): a confirmed client whose lease ran out becomes a courtesy client: its state
//!   is kept until someone conflicts with it ([`ClientTable::expire_courtesy`]), it comes
//!   back, the courtesy bound runs out, or courtesy clients exceed their count; then it is
//!   expired and its id returned for the caller to purge. Unconfirmed records expire after
//!   one lease.
//! - C6 (8.4.2): grace, as [`super::grace`]; RECLAIM_COMPLETE once per client
//!   (`COMPLETE_ALREADY`), which also asks the caller to record the client.
//! - C7: bounds on clients, unconfirmed clients, sessions per client and in total
//!   (through the reply-cache budget), connections per session; each refusal is counted.
//!   At the unconfirmed bound the oldest unconfirmed record is dropped rather than the
//!   newcomer refused: a flood of EXCHANGE_IDs then delays other clients only while it
//!   lasts (their CREATE_SESSION gets `STALE_CLIENTID` and they start again), instead of
//!   locking every new client out for a lease.
use super::api::*;
use super::error::SessionError;
use super::grace::Grace;
use super::records::{StableRecord, MAX_OWNER, MAX_PRINCIPAL};
use super::sizing::{ReplyCacheBudget, MAX_CACHED_REPLY, MAX_SLOTS_PER_SESSION};
use super::slots::{SlotStart, SlotTable};
use crate::v4::state::ids::{ClientId, SessionId, Time, Verifier};
use std::collections::{BTreeMap, BTreeSet};

mod v40;
pub use v40::{Callback40, SetClientIdArgs, SetClientIdOk};

#[derive(Debug, Clone)]
struct Client {
    owner: Vec<u8>,
    verifier: Verifier,
    principal: Principal,
    confirmed: bool,
    /// The last `csa_sequence` executed.
    cs_seq: u32,
    /// Its result, for a replay.
    cs_reply: Option<Result<CreateSessionOk, SessionError>>,
    sessions: BTreeSet<SessionId>,
    renewed: Time,
    courtesy: bool,
    reclaim_complete: bool,
    /// The caller was asked to record it.
    recorded: bool,
    /// An NFSv4.0 client (SETCLIENTID): its confirm verifier and callback ([`v40`]).
    v40: Option<v40::V40>,
}

impl Client {
    fn record(&self) -> StableRecord {
        StableRecord {
            owner: self.owner.clone(),
            principal: self.principal.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    client: ClientId,
    slots: SlotTable,
    slot_bytes: u64,
    /// The most slots this session may grow to.
    ceiling: u32,
    conns: BTreeMap<ConnId, ConnDir>,
    /// The client wants callbacks on this session (CREATE_SESSION4_FLAG_CONN_BACK_CHAN, or
    /// a connection bound for the back channel since): a connection SEQUENCE binds
    /// implicitly carries both channels.
    back_chan: bool,
}

/// The confirmed and unconfirmed records of one owner.
#[derive(Debug, Clone, Copy, Default)]
struct OwnerIds {
    confirmed: Option<ClientId>,
    unconfirmed: Option<ClientId>,
}

/// All clients and sessions of the server. One instance, behind a lock; every method
/// that depends on time takes `now`.
#[derive(Debug)]
pub struct ClientTable {
    config: Config,
    boot: u32,
    next_client: u32,
    next_session: u32,
    /// Makes SETCLIENTID's confirm verifiers unique.
    next_confirm: u32,
    clients: BTreeMap<ClientId, Client>,
    owners: BTreeMap<Vec<u8>, OwnerIds>,
    sessions: BTreeMap<SessionId, Session>,
    conns: BTreeMap<ConnId, BTreeSet<SessionId>>,
    budget: ReplyCacheBudget,
    grace: Grace,
    changes: Vec<RecordChange>,
    counters: SessionStats,
}

impl ClientTable {
    /// The table of a server started at `now` whose stable storage held `records`; `boot`
    /// differs at every start (e.g. the start time in seconds) so ids from before a restart
    /// are never reused.
    pub fn new(config: Config, records: Vec<StableRecord>, now: Time, boot: u32) -> Self {
        let budget = ReplyCacheBudget::from_ram(config.ram_bytes, config.max_sessions);
        let grace = Grace::start(records, now, config.lease_ms);
        Self {
            config,
            boot,
            next_client: 0,
            next_session: 0,
            next_confirm: 0,
            clients: BTreeMap::new(),
            owners: BTreeMap::new(),
            sessions: BTreeMap::new(),
            conns: BTreeMap::new(),
            budget,
            grace,
            changes: Vec::new(),
            counters: SessionStats::default(),
        }
    }

    /// The lease in milliseconds (`lease_time` attribute).
    pub fn lease_ms(&self) -> u64 {
        self.config.lease_ms
    }

    /// Whether the server is in its grace period.
    pub fn in_grace(&self) -> bool {
        self.grace.active()
    }

    /// EXCHANGE_ID (RFC 8881 18.35; C1, C7). `has_state` tells whether a client holds
    /// opens, locks or delegations (the open and lock tables know).
    pub fn exchange_id(
        &mut self,
        now: Time,
        args: &ExchangeIdArgs,
        has_state: &dyn Fn(ClientId) -> bool,
    ) -> Result<ExchangeIdOk, SessionError> {
        if args.owner.len() > MAX_OWNER || args.principal.0.len() > MAX_PRINCIPAL {
            return Err(SessionError::Inval);
        }
        let ids = self.owners.get(&args.owner).copied().unwrap_or_default();
        let confirmed = ids
            .confirmed
            .and_then(|id| Some((id, self.clients.get(&id)?)));
        let mut purge = Vec::new();
        if args.update {
            // Cases 6 to 9 (RFC numbering: 7 no record, 8 verifier, 9 principal).
            let Some((id, c)) = confirmed else {
                return Err(SessionError::Noent);
            };
            if c.principal != args.principal {
                return Err(SessionError::Perm);
            }
            if c.verifier != args.verifier {
                return Err(SessionError::NotSame);
            }
            let sequenceid = c.cs_seq.wrapping_add(1);
            self.renew(id, now);
            return Ok(ExchangeIdOk {
                clientid: id,
                sequenceid,
                confirmed: true,
                purge,
            });
        }
        if let Some((id, c)) = confirmed {
            if c.principal != args.principal {
                // Case 3: a client in use keeps its owner; one without sessions or state,
                // or whose lease has run out, is replaced.
                if !c.courtesy && (!c.sessions.is_empty() || has_state(id)) {
                    return Err(SessionError::ClidInuse);
                }
                self.expire(id);
                purge.push(id);
            } else if c.verifier == args.verifier {
                // Case 2.
                let sequenceid = c.cs_seq.wrapping_add(1);
                self.renew(id, now);
                return Ok(ExchangeIdOk {
                    clientid: id,
                    sequenceid,
                    confirmed: true,
                    purge,
                });
            }
            // Case 5 (a new verifier): a new unconfirmed record beside the confirmed one.
        }
        // Cases 1, 4 and 5: any unconfirmed record of the owner is replaced.
        if let Some(old) = ids.unconfirmed {
            self.remove_client(old);
        } else {
            self.make_room(&mut purge)?;
        }
        let id = self.new_client_id();
        self.clients.insert(
            id,
            Client {
                owner: args.owner.clone(),
                verifier: args.verifier,
                principal: args.principal.clone(),
                confirmed: false,
                cs_seq: 0,
                cs_reply: None,
                sessions: BTreeSet::new(),
                renewed: now,
                courtesy: false,
                reclaim_complete: false,
                recorded: false,
                v40: None,
            },
        );
        self.owners
            .entry(args.owner.clone())
            .or_default()
            .unconfirmed = Some(id);
        Ok(ExchangeIdOk {
            clientid: id,
            sequenceid: 1,
            confirmed: false,
            purge,
        })
    }

    /// Makes room for one more unconfirmed record (C7): at the unconfirmed bound, drops the
    /// oldest unconfirmed record; at the client bound, expires the longest-silent courtesy
    /// client, else `RESOURCE`.
    fn make_room(&mut self, purge: &mut Vec<ClientId>) -> Result<(), SessionError> {
        let unconfirmed = self.clients.values().filter(|c| !c.confirmed).count();
        if unconfirmed >= self.config.max_unconfirmed {
            let oldest = self
                .clients
                .iter()
                .filter(|(_, c)| !c.confirmed)
                .min_by_key(|(_, c)| c.renewed)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.remove_client(id);
                self.counters.unconfirmed_evicted += 1;
            }
        }
        if self.clients.len() < self.config.max_clients {
            return Ok(());
        }
        let oldest = self
            .clients
            .iter()
            .filter(|(_, c)| c.courtesy)
            .min_by_key(|(_, c)| c.renewed)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                self.expire(id);
                purge.push(id);
                Ok(())
            }
            None => {
                self.counters.refused_clients += 1;
                Err(SessionError::Resource)
            }
        }
    }

    fn new_client_id(&mut self) -> ClientId {
        loop {
            self.next_client = self.next_client.wrapping_add(1);
            let id = ClientId(u64::from(self.boot) << 32 | u64::from(self.next_client));
            // Terminates: at most `max_clients` ids are in use.
            if !self.clients.contains_key(&id) {
                return id;
            }
        }
    }

    fn new_session_id(&mut self, client: ClientId) -> SessionId {
        loop {
            self.next_session = self.next_session.wrapping_add(1);
            let mut b = [0; 16];
            b[..8].copy_from_slice(&client.0.to_be_bytes());
            b[8..12].copy_from_slice(&self.boot.to_be_bytes());
            b[12..].copy_from_slice(&self.next_session.to_be_bytes());
            let id = SessionId(b);
            // Terminates: at most `max_sessions` ids are in use.
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// CREATE_SESSION (RFC 8881 18.36; C2, C3, C7).
    pub fn create_session(
        &mut self,
        now: Time,
        args: &CreateSessionArgs,
    ) -> Result<CreateSessionDone, SessionError> {
        // Channel attributes the server cannot meet are refused before the sequence id is
        // looked at, and the refusal is not cached: the client may send the same sequence
        // id again with better attributes (knfsd does the same; pynfs CSESS29).
        self.negotiate(&args.fore, &args.back)?;
        let c = self
            .clients
            .get(&args.clientid)
            .ok_or(SessionError::StaleClientid)?;
        // Only an unconfirmed record is tied to the principal that created it (18.36.4:
        // CLID_INUSE); once confirmed, another principal may create sessions (pynfs
        // CSESS10), as no SP4_MACH_CRED state protection is offered.
        if !c.confirmed && c.principal != args.principal {
            return Err(SessionError::ClidInuse);
        }
        if args.sequence == c.cs_seq {
            if let Some(cached) = c.cs_reply.clone() {
                self.counters.create_session_replays += 1;
                return cached.map(|reply| CreateSessionDone { reply, purge: None });
            }
        }
        if args.sequence != c.cs_seq.wrapping_add(1) {
            return Err(SessionError::SeqMisordered);
        }
        let result = self.open_session(now, args);
        if matches!(result, Err(SessionError::Delay | SessionError::Resource)) {
            // Transient: the client may send the same sequence id again.
            return result.map(|reply| CreateSessionDone { reply, purge: None });
        }
        let Some(c) = self.clients.get_mut(&args.clientid) else {
            return Err(SessionError::StaleClientid);
        };
        c.cs_seq = args.sequence;
        c.cs_reply = Some(result.clone());
        let reply = result?;
        let purge = self.confirm(args.clientid, now);
        Ok(CreateSessionDone { reply, purge })
    }

    /// Marks a client confirmed; purges the confirmed record it replaces (case 5).
    fn confirm(&mut self, id: ClientId, now: Time) -> Option<ClientId> {
        let c = self.clients.get_mut(&id)?;
        c.renewed = now;
        if c.confirmed {
            return None;
        }
        c.confirmed = true;
        let owner = c.owner.clone();
        let ids = self.owners.entry(owner).or_default();
        let previous = ids.confirmed.replace(id);
        ids.unconfirmed = None;
        let previous = previous.filter(|p| *p != id)?;
        self.expire(previous);
        Some(previous)
    }

    /// Negotiates the channels and admits the session (C7).
    fn open_session(
        &mut self,
        now: Time,
        args: &CreateSessionArgs,
    ) -> Result<CreateSessionOk, SessionError> {
        let (fore, back) = self.negotiate(&args.fore, &args.back)?;
        let c = self
            .clients
            .get(&args.clientid)
            .ok_or(SessionError::StaleClientid)?;
        if c.sessions.len() >= self.config.max_sessions_per_client {
            self.counters.refused_sessions += 1;
            return Err(SessionError::Resource);
        }
        let ceiling = args.fore.max_requests.min(MAX_SLOTS_PER_SESSION);
        let slot_bytes = ReplyCacheBudget::slot_bytes(fore.max_response_size_cached);
        let grant = match self.budget.open_session(ceiling, slot_bytes) {
            Ok(g) => g,
            Err(e) => {
                self.counters.refused_sessions += 1;
                return Err(e);
            }
        };
        let id = self.new_session_id(args.clientid);
        let mut session = Session {
            client: args.clientid,
            slots: SlotTable::new(grant.slots, fore.max_response_size_cached),
            slot_bytes: grant.slot_bytes,
            ceiling,
            conns: BTreeMap::new(),
            back_chan: args.back_chan,
        };
        let dir = if args.back_chan {
            ConnDir::Both
        } else {
            ConnDir::Fore
        };
        session.conns.insert(args.conn, dir);
        self.sessions.insert(id, session);
        self.conns.entry(args.conn).or_default().insert(id);
        if let Some(c) = self.clients.get_mut(&args.clientid) {
            c.sessions.insert(id);
            c.renewed = now;
        }
        self.rebalance();
        Ok(CreateSessionOk {
            sessionid: id,
            sequence: args.sequence,
            back_chan: args.back_chan,
            fore: ChannelAttrs {
                max_requests: grant.slots,
                ..fore
            },
            back,
        })
    }

    /// The channel attributes the server grants for what the client asked (18.36.3).
    fn negotiate(
        &self,
        fore: &ChannelAttrs,
        back: &ChannelAttrs,
    ) -> Result<(ChannelAttrs, ChannelAttrs), SessionError> {
        if fore.max_requests == 0 || back.max_requests == 0 {
            return Err(SessionError::Inval);
        }
        for ch in [fore, back] {
            if ch.max_request_size < MIN_CHANNEL_SIZE || ch.max_response_size < MIN_CHANNEL_SIZE {
                return Err(SessionError::TooSmall);
            }
        }
        let cfg = &self.config;
        let clamp = |ch: &ChannelAttrs, slots: u32| {
            let max_response_size = ch.max_response_size.min(cfg.max_response_size);
            ChannelAttrs {
                header_pad_size: 0,
                max_request_size: ch.max_request_size.min(cfg.max_request_size),
                max_response_size,
                max_response_size_cached: ch
                    .max_response_size_cached
                    .min(MAX_CACHED_REPLY)
                    .min(max_response_size),
                max_operations: ch.max_operations.min(cfg.max_operations),
                max_requests: ch.max_requests.min(slots),
            }
        };
        Ok((
            clamp(fore, MAX_SLOTS_PER_SESSION),
            clamp(back, cfg.max_back_slots),
        ))
    }

    /// Moves every session's slot table towards its fair share of the budget (B5):
    /// targets fall for all when sessions come, rise when they go; tables grow as memory
    /// is free and shrink as clients acknowledge.
    fn rebalance(&mut self) {
        for s in self.sessions.values_mut() {
            let fair = self.budget.fair_slots(s.slot_bytes, s.ceiling);
            let len = s.slots.len();
            if fair > len {
                let grown = self.budget.grow(s.slot_bytes, len, fair);
                s.slots.grow_to(grown);
                s.slots.set_target(grown);
            } else {
                s.slots.set_target(fair);
            }
        }
    }

    /// SEQUENCE (RFC 8881 18.46; C3, C4).
    pub fn sequence(
        &mut self,
        now: Time,
        args: &SequenceArgs,
    ) -> Result<SequenceOutcome, SessionError> {
        let s = self
            .sessions
            .get_mut(&args.sessionid)
            .ok_or(SessionError::BadSession)?;
        let mut bound_back = false;
        if !s.conns.contains_key(&args.conn) {
            if s.conns.len() >= self.config.max_conns_per_session {
                self.counters.refused_connections += 1;
                return Err(SessionError::Resource);
            }
            // Bound implicitly (RFC 8881 2.10.3.1, 18.34: as CDFC4_FORE_OR_BOTH), a
            // connection carries the back channel too when the session has one: a client
            // that reconnects (the Linux client does, and relies on it) gets its callbacks
            // on the new connection, which the caller probes ([`SequenceOk::bound_back`]).
            let dir = if s.back_chan {
                bound_back = true;
                ConnDir::Both
            } else {
                ConnDir::Fore
            };
            s.conns.insert(args.conn, dir);
            self.conns
                .entry(args.conn)
                .or_default()
                .insert(args.sessionid);
        }
        let start = s
            .slots
            .start(args.slotid, args.sequenceid, args.digest, args.cachethis);
        let client = s.client;
        match start {
            Err(e) => {
                if e != SessionError::Delay {
                    self.counters.sequence_refused += 1;
                }
                return Err(e);
            }
            Ok(SlotStart::Replay(bytes)) => {
                self.counters.sequence_replays += 1;
                self.renew(client, now);
                return Ok(SequenceOutcome::Replay(bytes));
            }
            Ok(SlotStart::New) => {}
        }
        let before = s.slots.len();
        let after = s.slots.shrink_if_acknowledged(args.highest_slotid);
        let slot_bytes = s.slot_bytes;
        if after < before {
            self.budget.shrink(slot_bytes, before, after);
            self.rebalance();
        }
        self.renew(client, now);
        let s = self
            .sessions
            .get(&args.sessionid)
            .ok_or(SessionError::BadSession)?;
        let cb = args.callback;
        let mut flags = 0;
        if cb.path_down {
            flags |= seq4_status::CB_PATH_DOWN;
        }
        if cb.session_path_down {
            flags |= seq4_status::CB_PATH_DOWN_SESSION;
        }
        if cb.recallable_state_revoked {
            flags |= seq4_status::RECALLABLE_STATE_REVOKED;
        }
        Ok(SequenceOutcome::Execute(SequenceOk {
            clientid: client,
            sessionid: args.sessionid,
            sequenceid: args.sequenceid,
            slotid: args.slotid,
            highest_slotid: s.slots.highest_slotid(),
            target_highest_slotid: s.slots.target_highest_slotid(),
            status_flags: flags,
            bound_back,
        }))
    }

    /// Hands the slot of a SEQUENCE that was executed its reply (S5): the bytes are kept
    /// when the request asked for it. A session destroyed meanwhile is fine.
    pub fn sequence_done(
        &mut self,
        session: SessionId,
        slotid: u32,
        reply: &[u8],
    ) -> Result<(), SessionError> {
        match self.sessions.get_mut(&session) {
            Some(s) => s.slots.finish(slotid, reply),
            None => Ok(()),
        }
    }

    /// The compound that SEQUENCE started on `slotid` was given up before it had a reply
    /// (a handler panicked): the slot is free again, with no reply kept (S7).
    pub fn sequence_abandoned(&mut self, session: SessionId, slotid: u32) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.slots.abandon(slotid);
        }
    }

    /// The largest reply the session caches (for `REP_TOO_BIG_TO_CACHE` before executing).
    pub fn max_cached_reply(&self, session: SessionId) -> Option<u32> {
        Some(self.sessions.get(&session)?.slots.max_cached())
    }

    fn renew(&mut self, id: ClientId, now: Time) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.renewed = now;
            if c.courtesy {
                c.courtesy = false;
                self.counters.courtesy_resumed += 1;
            }
        }
    }

    /// BIND_CONN_TO_SESSION (RFC 8881 18.34; C3, C7).
    pub fn bind_conn(
        &mut self,
        session: SessionId,
        conn: ConnId,
        dir: BindDir,
    ) -> Result<ConnDir, SessionError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(SessionError::BadSession)?;
        if !s.conns.contains_key(&conn) && s.conns.len() >= self.config.max_conns_per_session {
            self.counters.refused_connections += 1;
            return Err(SessionError::Resource);
        }
        let granted = match dir {
            BindDir::Fore => ConnDir::Fore,
            BindDir::Back => ConnDir::Back,
            BindDir::ForeOrBoth | BindDir::BackOrBoth => ConnDir::Both,
        };
        s.conns.insert(conn, granted);
        s.back_chan |= granted.back();
        self.conns.entry(conn).or_default().insert(session);
        Ok(granted)
    }

    /// The transport closed `conn`: it is bound to nothing any more (C3).
    pub fn connection_closed(&mut self, conn: ConnId) {
        for sid in self.conns.remove(&conn).unwrap_or_default() {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.conns.remove(&conn);
            }
        }
    }

    /// Connections bound to the session's back channel, for the callback path.
    pub fn back_channel_conns(&self, session: SessionId) -> Vec<ConnId> {
        self.sessions.get(&session).map_or_else(Vec::new, |s| {
            s.conns
                .iter()
                .filter(|(_, d)| d.back())
                .map(|(c, _)| *c)
                .collect()
        })
    }

    /// DESTROY_SESSION (RFC 8881 18.37; C3).
    pub fn destroy_session(
        &mut self,
        session: SessionId,
        conn: ConnId,
    ) -> Result<(), SessionError> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(SessionError::BadSession)?;
        if !s.conns.contains_key(&conn) {
            return Err(SessionError::ConnNotBoundToSession);
        }
        self.drop_session(session);
        self.rebalance();
        Ok(())
    }

    fn drop_session(&mut self, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        self.budget.close_session(s.slot_bytes, s.slots.len());
        for conn in s.conns.keys() {
            if let Some(set) = self.conns.get_mut(conn) {
                set.remove(&session);
                if set.is_empty() {
                    self.conns.remove(conn);
                }
            }
        }
        if let Some(c) = self.clients.get_mut(&s.client) {
            c.sessions.remove(&session);
        }
    }

    /// DESTROY_CLIENTID (RFC 8881 18.50): `CLIENTID_BUSY` while the client has sessions or
    /// (as the caller's open and lock tables say) state.
    pub fn destroy_clientid(&mut self, id: ClientId, has_state: bool) -> Result<(), SessionError> {
        let c = self.clients.get(&id).ok_or(SessionError::StaleClientid)?;
        if !c.sessions.is_empty() || has_state {
            return Err(SessionError::ClientidBusy);
        }
        self.remove_client(id);
        Ok(())
    }

    /// RECLAIM_COMPLETE (RFC 8881 18.51; C6). With `one_fs` it concerns one migrated file
    /// system and changes nothing here.
    pub fn reclaim_complete(&mut self, id: ClientId, one_fs: bool) -> Result<(), SessionError> {
        let c = self
            .clients
            .get_mut(&id)
            .ok_or(SessionError::StaleClientid)?;
        if one_fs {
            return Ok(());
        }
        if c.reclaim_complete {
            return Err(SessionError::CompleteAlready);
        }
        c.reclaim_complete = true;
        c.recorded = true;
        let record = c.record();
        self.grace.reclaim_complete(&record);
        self.changes.push(RecordChange::Insert(record));
        Ok(())
    }

    /// May `id` reclaim state (OPEN/LOCK with reclaim) now (C6)?
    pub fn check_reclaim(&self, id: ClientId) -> Result<(), SessionError> {
        let c = self.clients.get(&id).ok_or(SessionError::StaleClientid)?;
        // An NFSv4.0 client has no RECLAIM_COMPLETE: it may reclaim all through grace.
        self.grace
            .check_reclaim(&c.record(), c.reclaim_complete && c.v40.is_none())
    }

    /// Has `id` sent RECLAIM_COMPLETE for all its file systems? An unknown client answers
    /// true: the operation's other checks answer for it; so does an NFSv4.0 client, which
    /// has no RECLAIM_COMPLETE (its new state waits only for grace to end).
    pub fn reclaim_completed(&self, id: ClientId) -> bool {
        self.clients
            .get(&id)
            .is_none_or(|c| c.reclaim_complete || c.v40.is_some())
    }

    /// May new (non-reclaim) state be created now (C6)?
    pub fn check_new_state(&self) -> Result<(), SessionError> {
        self.grace.check_new_state()
    }

    /// Where `id`'s lease stands, `None` for an unknown (expired, destroyed) client. The
    /// open and lock tables ask this when a request conflicts with `id`'s state.
    pub fn lease_state(&self, id: ClientId) -> Option<LeaseState> {
        let c = self.clients.get(&id)?;
        Some(if c.courtesy {
            LeaseState::Courtesy
        } else {
            LeaseState::Active
        })
    }

    /// Someone conflicts with courtesy client `id`: expire it (C5). True when it was a
    /// courtesy client and is now gone (the caller purges its state and grants the
    /// request); false for an active or unknown client.
    pub fn expire_courtesy(&mut self, id: ClientId) -> bool {
        if self.lease_state(id) != Some(LeaseState::Courtesy) {
            return false;
        }
        self.expire(id);
        true
    }

    /// The laundromat (C5, C6): call every few seconds with the time.
    pub fn tick(&mut self, now: Time) -> Tick {
        let mut t = Tick::default();
        if self.grace.tick(now) {
            t.grace_ended = true;
        }
        if t.grace_ended {
            // The records of clients that did not come back. One that did, but never
            // completed reclaiming (an NFSv4.0 client has no RECLAIM_COMPLETE), was
            // recorded anew at its SETCLIENTID_CONFIRM under the same name: removing the
            // record would leave an active client unrecorded, with no reclaim after the
            // next restart (pynfs REBT1 after REBT10).
            let active: std::collections::HashSet<StableRecord> = self
                .clients
                .values()
                .filter(|c| c.confirmed && c.recorded)
                .map(Client::record)
                .collect();
            let stale: Vec<StableRecord> = self
                .grace
                .unreclaimed()
                .filter(|r| !active.contains(*r))
                .cloned()
                .collect();
            self.changes
                .extend(stale.into_iter().map(RecordChange::Remove));
        }
        let lease = self.config.lease_ms;
        let courtesy_end = lease.saturating_add(self.config.courtesy_ms);
        let mut unconfirmed = Vec::new();
        for (id, c) in self.clients.iter_mut() {
            let silent = now.since(c.renewed);
            if !c.confirmed {
                if silent > lease {
                    unconfirmed.push(*id);
                }
            } else if silent > courtesy_end {
                t.expired.push(*id);
            } else if silent > lease && !c.courtesy {
                c.courtesy = true;
                self.counters.courtesy_entered += 1;
                t.courtesy.push(*id);
            }
        }
        for id in unconfirmed {
            self.remove_client(id);
            self.counters.unconfirmed_expired += 1;
        }
        for id in &t.expired {
            self.expire(*id);
        }
        // Resource pressure: the longest-silent courtesy clients go first.
        let mut courtesy: Vec<(Time, ClientId)> = self
            .clients
            .iter()
            .filter(|(_, c)| c.courtesy)
            .map(|(id, c)| (c.renewed, *id))
            .collect();
        if courtesy.len() > self.config.max_courtesy {
            courtesy.sort();
            let excess = courtesy.len() - self.config.max_courtesy;
            for (_, id) in courtesy.into_iter().take(excess) {
                self.expire(id);
                t.expired.push(id);
                t.courtesy.retain(|c| *c != id);
            }
        }
        t
    }

    /// Expires a client: counted, its record dropped.
    fn expire(&mut self, id: ClientId) {
        if self.clients.contains_key(&id) {
            self.counters.expired += 1;
            self.remove_client(id);
        }
    }

    /// Removes a client with its sessions and, if it was recorded, its stable record.
    fn remove_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.remove(&id) else {
            return;
        };
        for sid in &c.sessions {
            self.drop_session(*sid);
        }
        if !c.sessions.is_empty() {
            self.rebalance();
        }
        if let Some(ids) = self.owners.get_mut(&c.owner) {
            if ids.confirmed == Some(id) {
                ids.confirmed = None;
            }
            if ids.unconfirmed == Some(id) {
                ids.unconfirmed = None;
            }
            if ids.confirmed.is_none() && ids.unconfirmed.is_none() {
                self.owners.remove(&c.owner);
            }
        }
        if c.recorded {
            self.changes.push(RecordChange::Remove(c.record()));
        }
    }

    /// The stable-record changes since the last call, in order, for the caller to write.
    pub fn take_record_changes(&mut self) -> Vec<RecordChange> {
        std::mem::take(&mut self.changes)
    }

    /// Counters and gauges now.
    pub fn stats(&self) -> SessionStats {
        let mut s = self.counters;
        s.clients = self.clients.values().filter(|c| c.confirmed).count() as u64;
        s.unconfirmed = self.clients.len() as u64 - s.clients;
        s.courtesy = self.clients.values().filter(|c| c.courtesy).count() as u64;
        s.sessions = self.sessions.len() as u64;
        s.connections = self.sessions.values().map(|x| x.conns.len() as u64).sum();
        s.reply_cache_budget = self.budget.total();
        s.reply_cache_charged = self.budget.used();
        s.reply_cache_held = self.sessions.values().map(|x| x.slots.cached_bytes()).sum();
        s
    }

    /// Slots charged to a session now and its target (tests, `rnfs stats`).
    pub fn slot_counts(&self, session: SessionId) -> Option<(u32, u32)> {
        let s = self.sessions.get(&session)?;
        Some((s.slots.len(), s.slots.target()))
    }
}
