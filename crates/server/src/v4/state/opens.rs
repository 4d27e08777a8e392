//! OPEN, OPEN_DOWNGRADE and CLOSE on the locking state (RFC 8881 18.16, 18.18, 18.2).
//!
//! One open stateid per (open owner, file): a second OPEN by the same owner upgrades it to
//! the union of the share modes and bumps its seqid. Share reservations are checked
//! against every open of the file, whoever holds it, the owner's own included (RFC 7530
//! 9.9 and 16.16.5: an owner that denies itself read cannot read-open again; knfsd and
//! NFS-Ganesha refuse it too; see [`super::share::conflicts_own`] for knfsd's exception of
//! an access the owner already opened). In NFSv4.1 the open owner's own
//! seqid is not used (the session orders requests), so only stateid seqids are checked.
use super::ids::{ClientId, Stateid};
use super::locking::{Body, Locking, LockingError, Need, Open, OwnerKey, State};
use super::share::{conflicts, conflicts_own, Asked, ShareAccess, ShareDeny};
use super::stateid::{next_seqid, StateidKind};
use rnfs_vfs::FileKey;

/// An OPEN, after the COMPOUND layer resolved the file and (for CLAIM_PREVIOUS) decided that
/// the server is in grace.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// The client (from the session).
    pub client: ClientId,
    /// The `open_owner4` owner bytes.
    pub owner: Vec<u8>,
    /// The file opened.
    pub file: FileKey,
    /// Access wanted.
    pub access: ShareAccess,
    /// Access denied to others.
    pub deny: ShareDeny,
    /// CLAIM_PREVIOUS: reclaiming an open held before the restart. The caller allows it
    /// only in grace (and new opens only outside it); the table records it.
    pub reclaim: bool,
}

/// An open stateid's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenInfo {
    /// Share access held (the union of the OPENs, less downgrades).
    pub access: ShareAccess,
    /// Share deny held.
    pub deny: ShareDeny,
    /// Some OPEN of it was a reclaim (CLAIM_PREVIOUS).
    pub reclaimed: bool,
    /// The current seqid.
    pub seqid: u32,
}

/// A granted OPEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The open stateid to return.
    pub stateid: Stateid,
    /// The owner already had this file open: the stateid was upgraded, not created.
    pub upgraded: bool,
}

impl Locking {
    /// OPEN (RFC 8881 18.16): a new open stateid, or the owner's existing one on this file
    /// upgraded to the union of the modes. `ShareDenied` names the clients whose opens are
    /// in the way.
    pub fn open(&mut self, req: &OpenRequest) -> Result<Opened, LockingError> {
        let r = self.open_inner(req);
        self.count_err(r)
    }

    /// Whether a new open by `owner` of `client`, of a file nobody holds open (one the
    /// OPEN is about to create), would fit: the checks of [`Locking::open`] that need no
    /// file (the owner's name, the client's and the server's limits). Call it before
    /// creating the file, so that a refusal leaves nothing behind. Changes nothing but the
    /// refusal counters.
    pub fn check_new_open(&mut self, client: ClientId, owner: &[u8]) -> Result<(), LockingError> {
        let r = self.new_open_room(client, owner);
        self.count_err(r)
    }

    fn new_open_room(&self, client: ClientId, owner: &[u8]) -> Result<(), LockingError> {
        let owner = OwnerKey::new(client, owner)?;
        let mut needs = vec![Need::State];
        if !self.open_owners.contains_key(&owner) {
            needs.push(Need::Owner);
        }
        self.room(client, &needs)
    }

    fn open_inner(&mut self, req: &OpenRequest) -> Result<Opened, LockingError> {
        let owner = OwnerKey::new(req.client, &req.owner)?;
        let existing = self
            .open_index
            .get(&(owner.clone(), req.file.clone()))
            .copied();
        // Checks first: no state changes before every check passed. The owner's own open
        // of the file counts too.
        let mut in_the_way = Vec::new();
        if let Some(f) = self.files.get(&req.file) {
            for k in &f.opens {
                if let Some(State {
                    client,
                    body: Body::Open(o),
                    ..
                }) = self.states.get(k)
                {
                    let conflict = if Some(*k) == existing {
                        conflicts_own(req.access, req.deny, o.access, o.deny, o.asked)
                    } else {
                        conflicts(req.access, req.deny, o.access, o.deny)
                    };
                    if conflict && !in_the_way.contains(client) {
                        in_the_way.push(*client);
                    }
                }
            }
        }
        if !in_the_way.is_empty() {
            in_the_way.sort();
            return Err(LockingError::ShareDenied {
                clients: in_the_way,
            });
        }
        if let Some(k) = existing {
            let seqid = match self.states.get_mut(&k) {
                Some(State {
                    seqid,
                    body: Body::Open(o),
                    ..
                }) => {
                    o.asked.add(req.access, req.deny);
                    let (access, deny) = o.asked.union().unwrap_or((req.access, req.deny));
                    o.access = access;
                    o.deny = deny;
                    o.reclaimed |= req.reclaim;
                    *seqid = next_seqid(*seqid);
                    *seqid
                }
                // The index names only opens (audit checks it).
                _ => return Err(LockingError::BadStateid),
            };
            self.stats.upgrades += 1;
            self.stats.reclaims += u64::from(req.reclaim);
            return Ok(Opened {
                stateid: self.stateid(k, seqid),
                upgraded: true,
            });
        }
        let mut needs = vec![Need::State];
        if !self.open_owners.contains_key(&owner) {
            needs.push(Need::Owner);
        }
        self.room(req.client, &needs)?;
        let k = self.mint.mint();
        let mut asked = Asked::default();
        asked.add(req.access, req.deny);
        self.insert_state(
            k,
            State {
                client: req.client,
                file: req.file.clone(),
                seqid: 1,
                body: Body::Open(Open {
                    owner,
                    access: req.access,
                    deny: req.deny,
                    asked,
                    reclaimed: req.reclaim,
                    locks: Default::default(),
                }),
            },
        );
        self.stats.opens += 1;
        self.stats.reclaims += u64::from(req.reclaim);
        Ok(Opened {
            stateid: self.stateid(k, 1),
            upgraded: false,
        })
    }

    /// OPEN_DOWNGRADE (RFC 8881 18.18): the open keeps only `access`/`deny`, which must be
    /// the union of some of the OPENs it was built from (else `Inval`). Returns the new
    /// stateid.
    pub fn open_downgrade(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        access: ShareAccess,
        deny: ShareDeny,
    ) -> Result<Stateid, LockingError> {
        let r = self.downgrade_inner(client, sid, file, access, deny);
        self.count_err(r)
    }

    fn downgrade_inner(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        access: ShareAccess,
        deny: ShareDeny,
    ) -> Result<Stateid, LockingError> {
        let k = self.find(client, sid, Some(StateidKind::Open), Some(file))?;
        let Some(State {
            seqid,
            body: Body::Open(o),
            ..
        }) = self.states.get_mut(&k)
        else {
            return Err(LockingError::BadStateid);
        };
        let kept = o.asked.downgrade(access, deny).ok_or(LockingError::Inval)?;
        o.asked = kept;
        o.access = access;
        o.deny = deny;
        *seqid = next_seqid(*seqid);
        let seqid = *seqid;
        self.stats.downgrades += 1;
        Ok(self.stateid(k, seqid))
    }

    /// CLOSE (RFC 8881 18.2): releases the open and its lock stateids. `LocksHeld` while any
    /// of its lock owners still holds ranges on the file (the RFC lets a server refuse
    /// rather than drop them). Returns the invalid special stateid, as RFC 8881 18.2.4
    /// recommends for NFSv4.1.
    pub fn close(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
    ) -> Result<Stateid, LockingError> {
        let r = self.close_inner(client, sid, file);
        self.count_err(r)
    }

    fn close_inner(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
    ) -> Result<Stateid, LockingError> {
        let k = self.find(client, sid, Some(StateidKind::Open), Some(file))?;
        let Some(State {
            body: Body::Open(o),
            ..
        }) = self.states.get(&k)
        else {
            return Err(LockingError::BadStateid);
        };
        let holding = o.locks.iter().any(|l| match self.states.get(l) {
            Some(State {
                file,
                body: Body::Lock(lk),
                ..
            }) => !self.ranges.held(file, &lk.owner.range_owner()).is_empty(),
            _ => false,
        });
        if holding {
            return Err(LockingError::LocksHeld);
        }
        self.drop_open(k);
        self.stats.closes += 1;
        Ok(Stateid::INVALID)
    }

    /// What open stateid `sid` holds now (for OPEN replies, and for the caller's reclaim
    /// bookkeeping).
    pub fn open_info(&self, client: ClientId, sid: &Stateid) -> Result<OpenInfo, LockingError> {
        let k = self.find(client, sid, Some(StateidKind::Open), None)?;
        match self.states.get(&k) {
            Some(State {
                seqid,
                body: Body::Open(o),
                ..
            }) => Ok(OpenInfo {
                access: o.access,
                deny: o.deny,
                reclaimed: o.reclaimed,
                seqid: *seqid,
            }),
            _ => Err(LockingError::BadStateid),
        }
    }
}
