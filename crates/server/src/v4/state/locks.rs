//! LOCK, LOCKT, LOCKU and RELEASE_LOCKOWNER on the locking state (RFC 8881 18.10-18.12,
//! RFC 7530 16.37).
//!
//! One lock stateid per (lock owner, file), tied to the open it was created from; the
//! ranges themselves live in the shared [`super::ranges::RangeTable`]. A LOCK that is denied,
//! over a bound or refused for its stateid leaves no lock owner, lock stateid or range
//! behind (seed entry 9).
use super::ids::{ClientId, Stateid};
use super::locking::{Body, Denied, Lock, Locking, LockingError, Need, OwnerKey, State};
use super::ranges::{ByteRange, Conflict, LockKind, RangeOwner, RangeRefusal};
use super::stateid::{next_seqid, StateidKind};
use rnfs_vfs::FileKey;

/// Who asks for a lock (`locker4`).
#[derive(Debug, Clone)]
pub enum Locker {
    /// `open_to_lock_owner4`: the first lock of this lock owner on the file, under an open.
    /// In NFSv4.1, if the lock owner already has a lock stateid for the file under the same
    /// open, that one is used.
    New {
        /// The open stateid.
        open: Stateid,
        /// The `lock_owner4` owner bytes.
        owner: Vec<u8>,
    },
    /// `exist_lock_owner4`: the lock stateid from an earlier LOCK.
    Existing {
        /// The lock stateid.
        lock: Stateid,
    },
}

/// A LOCK request.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// The client (from the session).
    pub client: ClientId,
    /// The file (current filehandle).
    pub file: FileKey,
    /// Who asks.
    pub locker: Locker,
    /// READ or WRITE (the blocking variants are the caller's business).
    pub kind: LockKind,
    /// First byte.
    pub offset: u64,
    /// Bytes (`u64::MAX`: to the end).
    pub length: u64,
}

impl Locking {
    /// LOCK (RFC 8881 18.10): sets the range for the lock owner, POSIX style. Returns the
    /// lock stateid (seqid 1 when created, bumped otherwise). `Denied` carries LOCK4denied.
    pub fn lock(&mut self, req: &LockRequest) -> Result<Stateid, LockingError> {
        let r = self.lock_inner(req);
        self.count_err(r)
    }

    fn lock_inner(&mut self, req: &LockRequest) -> Result<Stateid, LockingError> {
        let range = ByteRange::new(req.offset, req.length).map_err(|_| LockingError::Inval)?;
        let client = req.client;
        // Who: (open, lock owner, lock stateid if it exists). Nothing is created yet.
        let (open_k, owner, existing) = match &req.locker {
            Locker::New { open, owner } => {
                let open_k = self.find(client, open, Some(StateidKind::Open), Some(&req.file))?;
                let owner = OwnerKey::new(client, owner)?;
                let existing = self
                    .lock_index
                    .get(&(owner.clone(), req.file.clone()))
                    .copied();
                if let Some(l) = existing {
                    match self.states.get(&l).map(|s| &s.body) {
                        Some(Body::Lock(lk)) if lk.open == open_k => {}
                        _ => return Err(LockingError::BadStateid),
                    }
                }
                (open_k, owner, existing)
            }
            Locker::Existing { lock } => {
                let k = self.find(client, lock, Some(StateidKind::Lock), Some(&req.file))?;
                match self.states.get(&k).map(|s| &s.body) {
                    Some(Body::Lock(l)) => (l.open, l.owner.clone(), Some(k)),
                    _ => return Err(LockingError::BadStateid),
                }
            }
        };
        let open = self.open_of(open_k).ok_or(LockingError::BadStateid)?;
        let allowed = match req.kind {
            LockKind::Read => open.access.reads(),
            LockKind::Write => open.access.writes(),
        };
        if !allowed {
            return Err(LockingError::OpenMode);
        }
        let ro = owner.range_owner();
        if let Some(c) = self.ranges.test(&req.file, &ro, range, req.kind) {
            return Err(denied(c));
        }
        if existing.is_none() {
            let mut needs = vec![Need::State];
            if !self.lock_owners.contains_key(&owner) {
                needs.push(Need::Owner);
            }
            self.room(client, &needs)?;
        }
        self.set_ranges(client, &ro, |t, budget| {
            t.lock(&req.file, &ro, range, req.kind, budget)
        })?;
        // Granted: from here on nothing fails.
        let (k, seqid) = match existing {
            Some(k) => (k, self.bump(k)),
            None => {
                let k = self.mint.mint();
                self.insert_state(
                    k,
                    State {
                        client,
                        file: req.file.clone(),
                        seqid: 1,
                        body: Body::Lock(Lock {
                            owner,
                            open: open_k,
                        }),
                    },
                );
                (k, 1)
            }
        };
        self.stats.locks += 1;
        Ok(self.stateid(k, seqid))
    }

    /// LOCKT (RFC 8881 18.11): `Denied` if a lock of another owner conflicts. The owner need
    /// not exist; nothing is created.
    pub fn lock_test(
        &mut self,
        client: ClientId,
        owner: &[u8],
        file: &FileKey,
        kind: LockKind,
        offset: u64,
        length: u64,
    ) -> Result<(), LockingError> {
        self.stats.lock_tests += 1;
        let r = ByteRange::new(offset, length)
            .map_err(|_| LockingError::Inval)
            .and_then(|range| {
                let ro = OwnerKey::new(client, owner)?.range_owner();
                match self.ranges.test(file, &ro, range, kind) {
                    Some(c) => Err(denied(c)),
                    None => Ok(()),
                }
            });
        self.count_err(r)
    }

    /// LOCKU (RFC 8881 18.12): releases the range (bytes not locked are fine). The lock
    /// stateid stays until FREE_STATEID or CLOSE. Returns it with its seqid bumped.
    pub fn unlock(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        offset: u64,
        length: u64,
    ) -> Result<Stateid, LockingError> {
        let r = self.unlock_inner(client, sid, file, offset, length);
        self.count_err(r)
    }

    fn unlock_inner(
        &mut self,
        client: ClientId,
        sid: &Stateid,
        file: &FileKey,
        offset: u64,
        length: u64,
    ) -> Result<Stateid, LockingError> {
        let range = ByteRange::new(offset, length).map_err(|_| LockingError::Inval)?;
        let k = self.find(client, sid, Some(StateidKind::Lock), Some(file))?;
        let ro = match self.states.get(&k).map(|s| &s.body) {
            Some(Body::Lock(l)) => l.owner.range_owner(),
            _ => return Err(LockingError::BadStateid),
        };
        self.set_ranges(client, &ro, |t, budget| t.unlock(file, &ro, range, budget))?;
        let seqid = self.bump(k);
        self.stats.unlocks += 1;
        Ok(self.stateid(k, seqid))
    }

    /// RELEASE_LOCKOWNER (RFC 7530 16.37; NFSv4.0 only, NFSv4.1 uses FREE_STATEID): frees
    /// the lock owner and its lock stateids, or `LocksHeld` while it holds any range. An
    /// unknown owner is fine.
    pub fn release_lock_owner(
        &mut self,
        client: ClientId,
        owner: &[u8],
    ) -> Result<(), LockingError> {
        let r = OwnerKey::new(client, owner).and_then(|owner| {
            if self.ranges.owner_count(&owner.range_owner()) > 0 {
                return Err(LockingError::LocksHeld);
            }
            let mine: Vec<u64> = self
                .clients
                .get(&client)
                .map(|u| {
                    u.states
                        .iter()
                        .copied()
                        .filter(|k| {
                            matches!(self.states.get(k).map(|s| &s.body),
                                Some(Body::Lock(l)) if l.owner == owner)
                        })
                        .collect()
                })
                .unwrap_or_default();
            for k in &mine {
                self.drop_lock_state(*k);
            }
            self.stats.freed += mine.len() as u64;
            Ok(())
        });
        self.count_err(r)
    }

    /// Runs a range change for `owner` with the budget left by the client's and the
    /// server's range limits, and keeps the client's count of ranges in step.
    fn set_ranges(
        &mut self,
        client: ClientId,
        owner: &RangeOwner,
        change: impl FnOnce(&mut super::ranges::RangeTable<FileKey>, usize) -> Result<(), RangeRefusal>,
    ) -> Result<(), LockingError> {
        let (mine, all) = self.range_room(client);
        let before = self.ranges.owner_count(owner);
        match change(&mut self.ranges, mine.min(all)) {
            Ok(()) => {}
            Err(RangeRefusal::Conflict(c)) => return Err(denied(*c)),
            Err(RangeRefusal::OverBudget) if mine <= all => return Err(LockingError::Resource),
            Err(RangeRefusal::OverBudget) => return Err(LockingError::Delay),
        }
        let after = self.ranges.owner_count(owner);
        let usage = self.clients.entry(client).or_default();
        usage.ranges = usage.ranges + after - before;
        Ok(())
    }

    /// Bumps state `k`'s seqid; returns the new one.
    fn bump(&mut self, k: u64) -> u32 {
        match self.states.get_mut(&k) {
            Some(st) => {
                st.seqid = next_seqid(st.seqid);
                st.seqid
            }
            None => 0,
        }
    }
}

/// LOCK4denied from a conflict, with the NFSv4 clients in it.
fn denied(c: Conflict) -> LockingError {
    let (offset, length) = c.held.range.offset_length();
    let mut clients: Vec<ClientId> = c
        .owners
        .iter()
        .filter_map(|o| match o {
            RangeOwner::V4 { client, .. } => Some(*client),
            RangeOwner::Nlm { .. } => None,
        })
        .collect();
    clients.sort();
    clients.dedup();
    LockingError::Denied(Box::new(Denied {
        offset,
        length,
        kind: c.held.kind,
        owner: c.owner,
        clients,
    }))
}
