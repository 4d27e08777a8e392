//! NFSv4.0 clients in the one client table: SETCLIENTID, SETCLIENTID_CONFIRM and RENEW
//! (RFC 7530 16.33, 16.34, 16.29).
//!
//! A 4.0 client is a [`super::Client`] like a 4.1 one (so leases, courtesy, the bounds on
//! clients and unconfirmed records and the stable records apply to both); it has no
//! sessions, and it carries [`V40`]: the verifier SETCLIENTID_CONFIRM must present and the
//! callback address, which the callbacks layer reads with [`ClientTable::callback40`].
//!
//! The contract, each clause tested in `tests.rs` (`v40_*`):
//! - V1 (16.33.5): SETCLIENTID for an owner with no confirmed record, or whose confirmed
//!   record has another boot verifier, makes a new unconfirmed record with a new client
//!   id, replacing any unconfirmed one of the owner; with the confirmed record's verifier
//!   and principal, it is a callback update: same client id, new confirm verifier, the
//!   new callback pending until confirmed. Another principal than the confirmed
//!   record's: `CLID_INUSE` while that client holds state and its lease is current,
//!   else the old client is expired and the owner starts afresh.
//! - V2 (16.34.5): SETCLIENTID_CONFIRM with the unconfirmed record's id and verifier
//!   confirms it, expiring (for the caller to purge) the owner's previous confirmed
//!   record, and writes the stable record the client reclaims with after a restart; a
//!   pending callback update is applied; a retransmission (a confirmed record and its
//!   current verifier) is `OK`; another principal `CLID_INUSE`; anything else
//!   `STALE_CLIENTID`.
//! - V3 (16.29): RENEW, and every 4.0 operation that uses a client's state
//!   ([`ClientTable::use_client40`]), renews its lease (a courtesy client comes back);
//!   a client id this instance handed out whose client is gone is `EXPIRED`; any other
//!   unknown or unconfirmed one `STALE_CLIENTID`.
//! - V4: a 4.0 client has no RECLAIM_COMPLETE: it may reclaim through grace, and its new
//!   opens wait only for grace to end.
use super::{Client, ClientTable, OwnerIds};
use crate::v4::state::ids::{ClientId, Time, Verifier};
use crate::v4::state::sessions::api::{Principal, RecordChange};
use crate::v4::state::sessions::error::SessionError;
use crate::v4::state::sessions::records::{MAX_OWNER, MAX_PRINCIPAL};
use std::collections::BTreeSet;

/// Longest callback netid or universal address kept (an IPv6 uaddr is at most 51 bytes).
pub(crate) const MAX_CB_ADDR: usize = 128;

/// Where an NFSv4.0 client takes callbacks (`cb_client4` and `callback_ident`, RFC 7530
/// 16.33.1): for the callbacks layer, which connects to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Callback40 {
    /// `cb_program`.
    pub program: u32,
    /// `na_r_netid` ("tcp", "tcp6").
    pub netid: String,
    /// `na_r_addr`, the universal address (h1.h2.h3.h4.p1.p2).
    pub uaddr: String,
    /// `callback_ident`, sent back in every CB_COMPOUND.
    pub ident: u32,
}

/// What a 4.0 client adds to its record.
#[derive(Debug, Clone)]
pub(super) struct V40 {
    /// The verifier SETCLIENTID_CONFIRM presents.
    confirm: Verifier,
    /// The callback in force.
    callback: Callback40,
    /// A callback update (V1) waiting for its SETCLIENTID_CONFIRM.
    pending: Option<(Verifier, Callback40)>,
}

/// SETCLIENTID's arguments.
#[derive(Debug, Clone)]
pub struct SetClientIdArgs {
    /// `nfs_client_id4.id`.
    pub owner: Vec<u8>,
    /// `nfs_client_id4.verifier`: changes when the client reboots.
    pub verifier: Verifier,
    /// The caller.
    pub principal: Principal,
    /// The callback.
    pub callback: Callback40,
}

/// A successful SETCLIENTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetClientIdOk {
    /// `clientid`.
    pub clientid: ClientId,
    /// `setclientid_confirm`.
    pub confirm: Verifier,
    /// Clients expired to make room or because another principal took their owner: the
    /// caller purges their state.
    pub purge: Vec<ClientId>,
}

impl ClientTable {
    fn new_confirm(&mut self, id: ClientId) -> Verifier {
        // Unique per record and per call: the client id's low half and a counter.
        self.next_confirm = self.next_confirm.wrapping_add(1);
        let mut b = [0; 8];
        b[..4].copy_from_slice(&(id.0 as u32).to_be_bytes());
        b[4..].copy_from_slice(&self.next_confirm.to_be_bytes());
        Verifier(b)
    }

    /// SETCLIENTID (RFC 7530 16.33; V1). `has_state` tells whether a client holds opens or
    /// locks.
    pub fn setclientid(
        &mut self,
        now: Time,
        args: &SetClientIdArgs,
        has_state: &dyn Fn(ClientId) -> bool,
    ) -> Result<SetClientIdOk, SessionError> {
        if args.owner.len() > MAX_OWNER
            || args.principal.0.len() > MAX_PRINCIPAL
            || args.callback.netid.len() > MAX_CB_ADDR
            || args.callback.uaddr.len() > MAX_CB_ADDR
        {
            return Err(SessionError::Inval);
        }
        let ids: OwnerIds = self.owners.get(&args.owner).copied().unwrap_or_default();
        let mut purge = Vec::new();
        if let Some(id) = ids.confirmed {
            if let Some(c) = self.clients.get(&id) {
                if c.principal != args.principal {
                    if !c.courtesy && (!c.sessions.is_empty() || has_state(id)) {
                        return Err(SessionError::ClidInuse);
                    }
                    self.expire(id);
                    purge.push(id);
                } else if c.verifier == args.verifier {
                    // A callback update: the same client id, confirmed later.
                    if let Some(old) = ids.unconfirmed {
                        self.remove_client(old);
                    }
                    let confirm = self.new_confirm(id);
                    if let Some(c) = self.clients.get_mut(&id) {
                        let pending = Some((confirm, args.callback.clone()));
                        match &mut c.v40 {
                            Some(v) => v.pending = pending,
                            None => {
                                c.v40 = Some(V40 {
                                    confirm: Verifier::default(),
                                    callback: Callback40::default(),
                                    pending,
                                })
                            }
                        }
                    }
                    return Ok(SetClientIdOk {
                        clientid: id,
                        confirm,
                        purge,
                    });
                }
                // Otherwise a new verifier: the client rebooted; a new unconfirmed
                // record beside the confirmed one.
            }
        }
        if let Some(old) = ids.unconfirmed {
            self.remove_client(old);
        } else {
            self.make_room(&mut purge)?;
        }
        let id = self.new_client_id();
        let confirm = self.new_confirm(id);
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
                v40: Some(V40 {
                    confirm,
                    callback: args.callback.clone(),
                    pending: None,
                }),
            },
        );
        self.owners
            .entry(args.owner.clone())
            .or_default()
            .unconfirmed = Some(id);
        Ok(SetClientIdOk {
            clientid: id,
            confirm,
            purge,
        })
    }

    /// SETCLIENTID_CONFIRM (RFC 7530 16.34; V2). Returns the owner's previous client,
    /// expired, for the caller to purge.
    pub fn setclientid_confirm(
        &mut self,
        now: Time,
        id: ClientId,
        confirm: Verifier,
        principal: &Principal,
    ) -> Result<Option<ClientId>, SessionError> {
        let c = self
            .clients
            .get_mut(&id)
            .ok_or(SessionError::StaleClientid)?;
        let v = c.v40.as_mut().ok_or(SessionError::StaleClientid)?;
        if c.confirmed {
            let update = v.pending.as_ref().is_some_and(|(k, _)| *k == confirm);
            if !update && v.confirm != confirm {
                return Err(SessionError::StaleClientid);
            }
            if c.principal != *principal {
                return Err(SessionError::ClidInuse);
            }
            if update {
                if let Some((k, cb)) = v.pending.take() {
                    v.confirm = k;
                    v.callback = cb;
                }
            }
            self.renew(id, now);
            return Ok(None);
        }
        if v.confirm != confirm {
            return Err(SessionError::StaleClientid);
        }
        if c.principal != *principal {
            return Err(SessionError::ClidInuse);
        }
        let purge = self.confirm(id, now);
        if let Some(c) = self.clients.get_mut(&id) {
            c.recorded = true;
            let record = c.record();
            self.changes.push(RecordChange::Insert(record));
        }
        Ok(purge)
    }

    /// RENEW (RFC 7530 16.29), and the lease renewal of every NFSv4.0 operation that uses
    /// `id`'s state (V3): `STALE_CLIENTID` for an unknown or unconfirmed client.
    pub fn use_client40(&mut self, id: ClientId, now: Time) -> Result<(), SessionError> {
        match self.clients.get(&id) {
            Some(c) if c.confirmed => {
                self.renew(id, now);
                Ok(())
            }
            Some(_) => Err(SessionError::StaleClientid),
            // An id this instance handed out: its client expired (knfsd answers so too).
            None if self.issued(id) => Err(SessionError::Expired),
            None => Err(SessionError::StaleClientid),
        }
    }

    /// Whether this server instance handed out client id `id`.
    fn issued(&self, id: ClientId) -> bool {
        let low = id.0 as u32;
        (id.0 >> 32) as u32 == self.boot && low != 0 && low <= self.next_client
    }

    /// The callback address of NFSv4.0 client `id` (confirmed), for the callbacks layer.
    pub fn callback40(&self, id: ClientId) -> Option<Callback40> {
        let c = self.clients.get(&id).filter(|c| c.confirmed)?;
        Some(c.v40.as_ref()?.callback.clone())
    }
}
