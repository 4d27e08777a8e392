//! Typed NFSv4.1 calls over a [`Session`] (issue 16): the client's NFSv4.1 edge, with the
//! same methods, types and errors as [`crate::nfs::Nfs3`], so that the layers above (open
//! files, the page cache, write-back, the FUSE mount, the tools) run unchanged on either
//! version (the private `wire::Wire` chooses).
//!
//! Each method sends one COMPOUND (PUTFH and the operation, GETFH/GETATTR where the NFSv3
//! call returns a handle or attributes) and maps a failure's status in `status`, the one
//! place NFSv4 statuses become the client's. What NFSv4 does differently stays here:
//! - **Open state.** A regular file is created with OPEN (and closed again: the open-file
//!   layer opens it itself), and every open file holds a server open
//!   ([`Nfs4::open_state`], [`Nfs4::close_state`]) kept in the I/O-free
//!   [`OpenTable`] (rules O1-O5). READ, WRITE and SETATTR of the size carry the open's
//!   stateid, or the anonymous one when no open covers them (write-back after the last
//!   close); OLD_STATEID is retried as the table says (O4, seed entry 9).
//! - **Removal by type.** REMOVE removes a file or a directory alike; `remove` and `rmdir`
//!   keep NFSv3's meaning by checking the type in the same COMPOUND (NVERIFY/VERIFY of
//!   `type`), so a directory is never unlinked nor a file removed by `rmdir`.
//! - **`..` of the export root** is the root itself, as an NFSv3 server has it: LOOKUPP
//!   there would leave the export for the server's pseudo file system.
//! - **Reclaim.** After a server restart the session's recovery asks this layer to reclaim
//!   its opens (CLAIM_PREVIOUS, privileged calls, before RECLAIM_COMPLETE); an open the
//!   server refuses goes on under the anonymous stateid.
//! - **Delegations** are not asked for yet (OPEN says WANT_NO_DELEG); one granted anyway
//!   is handed to the session, which returns it when recalled.
use crate::error::{Error, RpcError, ServerError};
use crate::nfs::{FsLimits, IoCounters, IoStats, Listed, Listing, ReadData, WriteDone, WriteVerf};
use crate::rpc::buf::Slice;
use crate::rpc::RpcClient;
use crate::types::{
    Attr, CreateHow, FileHandle, FsStat, SetAttr, SpecialFile, Stability, Status, Time,
};
use crate::v4::attr::{self, bitmap, Decoded, ATTR_BITS, FSSTAT_BITS};
use crate::v4::opens::{ClosePlan, OldStateid, OpenPlan, OpenTable, Stateid};
use crate::v4::recovery::Trouble;
use crate::v4::session::{Session, SessionError, StateHolder};
use crate::v4::slots::Class;
use parking_lot::Mutex;
use rnfs_proto::nfs4::*;
use rnfs_xdr::{Opaque, OpaqueFixed};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The anonymous stateid (RFC 8881 section 8.2.3): I/O outside any open.
const ANONYMOUS: Stateid = Stateid {
    seqid: 0,
    other: [0; 12],
};
/// How long a call answered DELAY or GRACE is sent again before the status stands (a
/// grace period is at most two leases of 90 s).
const RETRY_LATER_FOR: Duration = Duration::from_secs(200);
/// Names and groups remembered per kind (owner strings mapped to ids).
const ID_CACHE_MAX: usize = 1024;

/// An NFSv4 status as the client's [`Status`]: the numbers NFSv3 shares mean the same;
/// the state statuses a caller may meet are mapped by what they mean to it.
pub(crate) fn status(s: u32) -> Status {
    use rnfs_proto::nfs3::Nfsstat3;
    match s {
        10015 | 10038 => Status::Acces, // SHARE_DENIED, OPENMODE
        10016 => Status::Perm,          // WRONGSEC
        10032 => Status::NotSupp,       // ATTRNOTSUPP
        10039 | 10036 => Status::Inval, // BADOWNER, BADXDR
        10029 => Status::NotDir,        // SYMLINK: a link where a directory was needed
        10027 => Status::BadCookie,     // NOT_SAME: READDIR's cookie verifier is stale
        10040 | 10041 => Status::Inval, // BADCHAR, BADNAME
        10013 => Status::Jukebox,       // GRACE (after the retries of `raw`)
        0 => Status::ServerFault,
        n => match Nfsstat3::from_u32(n) {
            Some(v) => v.into(),
            None => Status::Other(n),
        },
    }
}

fn fh_arg(fh: &FileHandle) -> NfsArgop4 {
    NfsArgop4::OpPutfh(Putfh4args {
        object: Opaque(fh.as_bytes().to_vec()),
    })
}

fn getattr(bits: &[u32]) -> NfsArgop4 {
    NfsArgop4::OpGetattr(Getattr4args {
        attr_request: bitmap(bits),
    })
}

fn component(n: &str) -> Result<Component4, Error> {
    if n.is_empty() || n.contains('/') || n.contains('\0') {
        return Err(Error::Invalid(
            "a file name must be non-empty, without '/' or NUL",
        ));
    }
    if n.len() > 255 {
        return Err(Error::Nfs(Status::NameTooLong));
    }
    Ok(Opaque(n.as_bytes().to_vec()))
}

fn sid4(s: Stateid) -> Stateid4 {
    Stateid4 {
        seqid: s.seqid,
        other: OpaqueFixed(s.other),
    }
}

fn sid(s: &Stateid4) -> Stateid {
    Stateid {
        seqid: s.seqid,
        other: s.other.0,
    }
}

fn bad_reply(what: &'static str) -> Error {
    Error::Server(ServerError::BadReply(what))
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Rpc(r) => Error::Rpc(r),
            SessionError::Unknown => Error::Rpc(RpcError::TimedOut { tries: 1 }),
            SessionError::Protocol(w) => bad_reply(w),
            SessionError::Status(s) => Error::Nfs(status(s)),
        }
    }
}

/// Results of a COMPOUND that succeeded, taken in order.
struct Results(std::vec::IntoIter<NfsResop4>);

impl Results {
    fn next(&mut self) -> Result<NfsResop4, Error> {
        self.0
            .next()
            .ok_or_else(|| bad_reply("a COMPOUND reply lacks results"))
    }

    fn skip(&mut self, n: usize) -> Result<(), Error> {
        for _ in 0..n {
            self.next()?;
        }
        Ok(())
    }

    fn fh(&mut self) -> Result<FileHandle, Error> {
        match self.next()? {
            NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(g)) => {
                FileHandle::new(g.object.0).ok_or_else(|| bad_reply("a handle over 128 bytes"))
            }
            _ => Err(bad_reply("GETFH result expected")),
        }
    }

    fn attrs(&mut self) -> Result<Decoded, Error> {
        match self.next()? {
            NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(g)) => attr::decode(&g.obj_attributes)
                .map_err(|_| bad_reply("attributes that do not decode")),
            _ => Err(bad_reply("GETATTR result expected")),
        }
    }
}

struct Inner {
    session: Arc<Session>,
    /// A hard mount: calls whose outcome is unknown are sent again, never failed.
    hard: bool,
    /// Calls sent again after their outcome was unknown.
    resent: std::sync::atomic::AtomicU64,
    counters: Arc<IoCounters>,
    opens: Mutex<OpenTable<FileHandle>>,
    /// Woken when an OPEN, OPEN_DOWNGRADE or CLOSE ends (rule O1's waits).
    open_changed: Notify,
    /// The open owner of every open (one per client, as one credential per mount).
    owner: Vec<u8>,
    /// The export's root, where `..` stays.
    root: Mutex<Option<FileHandle>>,
    users: Mutex<HashMap<String, Option<u32>>>,
    groups: Mutex<HashMap<String, Option<u32>>>,
    /// An OPEN said `OPEN4_RESULT_PRESERVE_UNLINKED`: the server keeps a removed file
    /// while it is open (RFC 8881 18.16.4), so no silly rename is needed.
    preserve_unlinked: std::sync::atomic::AtomicBool,
    /// Opens reclaimed, and refused.
    reclaims: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
}

impl Inner {
    /// Asks the open table with `ask` until its plan is not to wait (rule O1: a call of the
    /// entry is in flight), waiting for the end of an OPEN, OPEN_DOWNGRADE or CLOSE in
    /// between. The wait is armed before the table is asked, so no end is missed.
    async fn plan<P>(
        &self,
        mut ask: impl FnMut(&mut OpenTable<FileHandle>) -> P,
        wait: impl Fn(&P) -> bool,
    ) -> P {
        loop {
            let changed = self.open_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let p = ask(&mut self.opens.lock());
            if !wait(&p) {
                return p;
            }
            changed.await;
        }
    }

    /// OPEN by this client's open owner, asking for no delegation.
    fn open_op(&self, access: u32, how: Openflag4, claim: OpenClaim4) -> NfsArgop4 {
        NfsArgop4::OpOpen(Open4args {
            seqid: 0,
            share_access: access | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            share_deny: OPEN4_SHARE_DENY_NONE,
            owner: StateOwner4 {
                clientid: self.session.clientid(),
                owner: Opaque(self.owner.clone()),
            },
            openhow: how,
            claim,
        })
    }
}

impl StateHolder for Inner {
    fn holds_state(&self) -> bool {
        self.opens.lock().holds_state()
    }

    /// R3: OPEN with CLAIM_PREVIOUS of every server open, with the access it carried; the
    /// new stateids replace the old (the server's new instance made them).
    fn reclaim(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Trouble>> + Send + '_>> {
        Box::pin(async move {
            let list = self.opens.lock().reclaim_list();
            for (fh, access) in list {
                let ops = vec![
                    fh_arg(&fh),
                    self.open_op(
                        access,
                        Openflag4::Default(Opentype4::Open4Nocreate),
                        OpenClaim4::ClaimPrevious(OpenDelegationType4::OpenDelegateNone),
                    ),
                ];
                let got = match self.session.compound(ops, Class::Privileged).await {
                    Ok((0, res)) => match res.into_iter().nth(1) {
                        Some(NfsResop4::OpOpen(Open4res::Nfs4Ok(o))) => {
                            self.session
                                .delegation_granted(fh.as_bytes().to_vec(), &o.delegation);
                            Some(sid(&o.stateid))
                        }
                        _ => None,
                    },
                    // NO_GRACE, RECLAIM_BAD, RECLAIM_CONFLICT, STALE (the file is gone): this
                    // open is lost; the others are still reclaimed.
                    Ok((10033 | 10034 | 10035 | 70 | 2, _)) => None,
                    // The client id or session went again: recovery starts over.
                    Ok((10022, _)) => return Err(Trouble::StaleClientId),
                    Ok((10052 | 10078, _)) => return Err(Trouble::SessionGone),
                    Ok(_) | Err(_) => return Err(Trouble::Transient),
                };
                let n = if got.is_some() {
                    &self.reclaims.0
                } else {
                    &self.reclaims.1
                };
                n.fetch_add(1, Ordering::Relaxed);
                self.opens.lock().reclaimed(&fh, got);
            }
            self.open_changed.notify_waiters();
            Ok(())
        })
    }
}

/// The NFSv4.1 program on one server, over one session. Cheap to clone.
#[derive(Clone)]
pub struct Nfs4 {
    i: Arc<Inner>,
}

impl std::fmt::Debug for Nfs4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nfs4")
            .field("session", &self.i.session)
            .finish()
    }
}

fn cached_id(
    cache: &Mutex<HashMap<String, Option<u32>>>,
    name: &str,
    find: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    if let Some(v) = cache.lock().get(name) {
        return *v;
    }
    let v = find(name);
    let mut c = cache.lock();
    if c.len() >= ID_CACHE_MAX {
        c.clear();
    }
    c.insert(name.to_string(), v);
    v
}

impl Nfs4 {
    /// NFSv4.1 over an established session; `owner` names this client's open owner;
    /// `hard`: calls are never failed for want of a reply. The opens are the session's
    /// state to reclaim after a server restart.
    pub fn new(session: Arc<Session>, owner: Vec<u8>, hard: bool) -> Self {
        let me = Self {
            i: Arc::new(Inner {
                session,
                hard,
                resent: Default::default(),
                counters: Arc::default(),
                opens: Mutex::new(OpenTable::new()),
                open_changed: Notify::new(),
                owner,
                root: Mutex::new(None),
                users: Mutex::default(),
                groups: Mutex::default(),
                reclaims: Default::default(),
                preserve_unlinked: Default::default(),
            }),
        };
        let holder: Arc<dyn StateHolder> = me.i.clone();
        me.i.session.set_state_holder(Arc::downgrade(&holder));
        me
    }

    /// Whether the server keeps a file removed while open usable until its last CLOSE
    /// (`OPEN4_RESULT_PRESERVE_UNLINKED` seen on an OPEN).
    pub fn preserves_unlinked(&self) -> bool {
        self.i.preserve_unlinked.load(Ordering::Relaxed)
    }

    /// Opens reclaimed after server restarts, and those the server refused (`NO_GRACE`,
    /// `RECLAIM_BAD`: the grace period was over; the open files go on without).
    pub fn reclaim_stats(&self) -> (u64, u64) {
        let r = &self.i.reclaims;
        (r.0.load(Ordering::Relaxed), r.1.load(Ordering::Relaxed))
    }

    /// The session the calls go over.
    pub fn session(&self) -> &Arc<Session> {
        &self.i.session
    }

    /// The RPC client (for its counters).
    pub(crate) fn rpc(&self) -> &RpcClient {
        self.i.session.rpc()
    }

    /// Data operation counters.
    pub fn io_stats(&self) -> IoStats {
        self.i.counters.snapshot()
    }

    /// Calls sent again because their outcome was unknown (hard mounts).
    pub fn resent(&self) -> u64 {
        self.i.resent.load(Ordering::Relaxed)
    }

    /// Open state counters (rules O1-O5).
    pub fn open_stats(&self) -> crate::v4::opens::OpenStats {
        self.i.opens.lock().stats()
    }

    /// Checks the open table's counts (rule O4's audit).
    pub fn audit_opens(&self) -> Result<(), String> {
        self.i.opens.lock().audit()
    }

    fn to_attr(&self, d: &Decoded) -> Option<Attr> {
        let users = |n: &str| {
            cached_id(&self.i.users, n, |n| {
                nix::unistd::User::from_name(n)
                    .ok()
                    .flatten()
                    .map(|u| u.uid.as_raw())
            })
        };
        let groups = |n: &str| {
            cached_id(&self.i.groups, n, |n| {
                nix::unistd::Group::from_name(n)
                    .ok()
                    .flatten()
                    .map(|g| g.gid.as_raw())
            })
        };
        d.to_attr(&users, &groups)
    }

    fn attr_of(&self, d: &Decoded) -> Result<Attr, Error> {
        self.to_attr(d)
            .ok_or_else(|| bad_reply("attributes without a file type"))
    }

    /// Sends `ops` (after SEQUENCE) as `class`: the results, or the failing operation's
    /// status with how many results came (the failed one included).
    async fn raw(
        &self,
        ops: Vec<NfsArgop4>,
        class: Class,
    ) -> Result<Result<Results, (u32, usize)>, Error> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let (st, res) = match self.i.session.compound(ops.clone(), class).await {
                Ok(r) => r,
                // No reply (lost with its connection, or undecodable): a hard mount sends
                // it again, as NFSv3's retransmits (a changing call may then find its own
                // work done: EXIST, NOENT, as over NFSv3 without a reply cache).
                Err(SessionError::Unknown) if self.i.hard => {
                    self.i.resent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(SessionError::Unknown) => {
                    return Err(Error::Rpc(RpcError::TimedOut { tries: 1 }))
                }
                Err(e) => return Err(e.into()),
            };
            // A retransmission the server had seen and whose reply it did not keep (the
            // call asked for no caching: it changes nothing): as a lost reply.
            if st == 10068 {
                if self.i.hard {
                    self.i.resent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                return Err(Error::Rpc(RpcError::TimedOut { tries: 1 }));
            }
            match st {
                0 => return Ok(Ok(Results(res.into_iter()))),
                // DELAY and GRACE: not done, try again later (as NFSv3's JUKEBOX is).
                10008 | 10013 if started.elapsed() < RETRY_LATER_FOR => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                _ => return Ok(Err((st, res.len()))),
            }
        }
    }

    async fn run(&self, ops: Vec<NfsArgop4>) -> Result<Results, Error> {
        self.raw(ops, Class::Normal)
            .await?
            .map_err(|(s, _)| Error::Nfs(status(s)))
    }

    /// The export root's handle, from the root of the server's namespace: PUTROOTFH and
    /// LOOKUP of each component. Also returns the path inside the export's root that
    /// the URL named, split where the file system (fsid) last changed on the way: the
    /// export is the deepest mount point on the path, or the namespace's root.
    pub async fn root(&self, comps: &[&str]) -> Result<(FileHandle, Attr, String, String), Error> {
        let mut r = self
            .run(vec![
                NfsArgop4::OpPutrootfh,
                NfsArgop4::OpGetfh,
                getattr(ATTR_BITS),
            ])
            .await?;
        r.skip(1)?;
        let mut found = vec![(r.fh()?, self.attr_of(&r.attrs()?)?)];
        // One COMPOUND per component: a server bounds the operations per COMPOUND
        // (`ca_maxoperations`, 16 or fewer).
        for c in comps {
            let Some((dir, _)) = found.last() else { break };
            match self.lookup(dir, c).await {
                Ok((fh, Some(a))) => found.push((fh, a)),
                Ok((_, None)) => return Err(bad_reply("LOOKUP without attributes")),
                // This component and those after it do not exist: the export is among
                // those before; the rest is a path inside it that the caller may be about
                // to create, as MOUNT's remainder over NFSv3.
                Err(Error::Nfs(Status::NoEnt)) => break,
                Err(e) => return Err(e),
            }
        }
        let mut at = 0;
        for n in 1..found.len() {
            if found[n].1.fsid != found[n - 1].1.fsid {
                at = n;
            }
        }
        let (fh, a) = found.swap_remove(at);
        *self.i.root.lock() = Some(fh.clone());
        Ok((
            fh,
            a,
            format!("/{}", comps[at..].join("/")),
            format!("/{}", comps[..at].join("/")),
        ))
    }

    /// The server's lease and the session's sizes: READ and WRITE limits (FSINFO's part).
    pub async fn fsinfo(&self, fh: &FileHandle) -> Result<FsLimits, Error> {
        let mut bits = ATTR_BITS.to_vec();
        bits.extend([FATTR4_MAXREAD, FATTR4_MAXWRITE]);
        bits.sort_unstable();
        let mut r = self.run(vec![fh_arg(fh), getattr(&bits)]).await?;
        r.skip(1)?;
        let d = r.attrs()?;
        // What a READ reply or a WRITE call may carry besides the data.
        let (req, resp) = self.i.session.max_sizes();
        let room = |chan: u32| u64::from(chan.saturating_sub(1024));
        let lim = |server: Option<u64>, chan| {
            let v = server
                .filter(|v| *v > 0)
                .unwrap_or(u64::MAX)
                .min(room(chan));
            u32::try_from(v).unwrap_or(u32::MAX)
        };
        Ok(FsLimits {
            rtmax: lim(d.maxread, resp),
            wtmax: lim(d.maxwrite, req),
            attr: self.to_attr(&d),
        })
    }

    /// NULL: checks that the server answers.
    pub async fn null(&self) -> Result<(), Error> {
        self.rpc()
            .call::<_, ()>(PROGRAM, VERSION, 0, &())
            .await
            .map_err(Error::from)
    }

    /// GETATTR.
    pub async fn getattr(&self, fh: &FileHandle) -> Result<Attr, Error> {
        let mut r = self.run(vec![fh_arg(fh), getattr(ATTR_BITS)]).await?;
        r.skip(1)?;
        self.attr_of(&r.attrs()?)
    }

    /// Runs `ops(stateid)` with the stateid of `fh`'s open for `write` (the anonymous one
    /// without), sending again after OLD_STATEID as the open table says (O4).
    async fn with_stateid(
        &self,
        fh: &FileHandle,
        write: bool,
        ops: impl Fn(Stateid4) -> Vec<NfsArgop4>,
    ) -> Result<Results, Error> {
        let mut s = self
            .i
            .opens
            .lock()
            .io_stateid(fh, write)
            .unwrap_or(ANONYMOUS);
        for tries in 1.. {
            match self.raw(ops(sid4(s)), Class::Normal).await? {
                Ok(r) => return Ok(r),
                Err((10024, _)) => match self.i.opens.lock().old_stateid(fh, s, tries) {
                    OldStateid::Retry(n) => s = n,
                    OldStateid::GiveUp => return Err(Error::Nfs(Status::Other(10024))),
                },
                // The open is gone at the server (expired, revoked, a restart that was
                // not reclaimed): the I/O goes on outside it, as NFSv3's would.
                Err((10025 | 10023 | 10011, _)) if s != ANONYMOUS => s = ANONYMOUS,
                Err((st, _)) => return Err(Error::Nfs(status(st))),
            }
        }
        unreachable!("the loop returns")
    }

    /// SETATTR; returns the attributes after.
    pub async fn setattr(&self, fh: &FileHandle, attrs: SetAttr) -> Result<Option<Attr>, Error> {
        let f = attr::encode_set(&attrs);
        let fh2 = fh.clone();
        let mut r = self
            .with_stateid(fh, attrs.size.is_some(), move |s| {
                vec![
                    fh_arg(&fh2),
                    NfsArgop4::OpSetattr(Setattr4args {
                        stateid: s,
                        obj_attributes: f.clone(),
                    }),
                    getattr(ATTR_BITS),
                ]
            })
            .await?;
        r.skip(2)?;
        Ok(self.to_attr(&r.attrs()?))
    }

    /// LOOKUP (`..` is LOOKUPP, and the export root's own `..` is the root).
    pub async fn lookup(
        &self,
        dir: &FileHandle,
        n: &str,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let op = match n {
            "." => None,
            ".." if self.i.root.lock().as_ref() == Some(dir) => None,
            ".." => Some(NfsArgop4::OpLookupp),
            _ => Some(NfsArgop4::OpLookup(Lookup4args {
                objname: component(n)?,
            })),
        };
        let mut ops = vec![fh_arg(dir)];
        let moved = op.is_some();
        ops.extend(op);
        ops.extend([NfsArgop4::OpGetfh, getattr(ATTR_BITS)]);
        let mut r = self.run(ops).await?;
        r.skip(if moved { 2 } else { 1 })?;
        let fh = r.fh()?;
        let a = self.to_attr(&r.attrs()?);
        Ok((fh, a))
    }

    /// ACCESS: the bits of `mask` granted, with the object's attributes.
    pub async fn access(&self, fh: &FileHandle, mask: u32) -> Result<(u32, Option<Attr>), Error> {
        let mut r = self
            .run(vec![
                fh_arg(fh),
                NfsArgop4::OpAccess(Access4args { access: mask }),
                getattr(ATTR_BITS),
            ])
            .await?;
        r.skip(1)?;
        let granted = match r.next()? {
            NfsResop4::OpAccess(Access4res::Nfs4Ok(a)) => a.access & a.supported & mask,
            _ => return Err(bad_reply("ACCESS result expected")),
        };
        Ok((granted, self.to_attr(&r.attrs()?)))
    }

    /// READLINK.
    pub async fn readlink(&self, fh: &FileHandle) -> Result<Vec<u8>, Error> {
        let mut r = self.run(vec![fh_arg(fh), NfsArgop4::OpReadlink]).await?;
        r.skip(1)?;
        match r.next()? {
            NfsResop4::OpReadlink(Readlink4res::Nfs4Ok(l)) => Ok(l.link.0),
            _ => Err(bad_reply("READLINK result expected")),
        }
    }

    /// READ with the open's stateid.
    pub async fn read(&self, fh: &FileHandle, offset: u64, count: u32) -> Result<ReadData, Error> {
        self.i.counters.reads.fetch_add(1, Ordering::Relaxed);
        let fh2 = fh.clone();
        let mut r = self
            .with_stateid(fh, false, move |s| {
                vec![
                    fh_arg(&fh2),
                    NfsArgop4::OpRead(Read4args {
                        stateid: s,
                        offset,
                        count,
                    }),
                ]
            })
            .await?;
        r.skip(1)?;
        match r.next()? {
            NfsResop4::OpRead(Read4res::Nfs4Ok(d)) => {
                if d.data.0.len() > count as usize {
                    return Err(bad_reply("a READ reply longer than asked"));
                }
                self.i
                    .counters
                    .bytes_read
                    .fetch_add(d.data.0.len() as u64, Ordering::Relaxed);
                Ok(ReadData {
                    attr: None,
                    eof: d.eof,
                    data: Slice::from_vec(d.data.0),
                })
            }
            _ => Err(bad_reply("READ result expected")),
        }
    }

    /// READ, its outcome given to `done` from a task of its own.
    pub fn read_then(
        &self,
        fh: &FileHandle,
        offset: u64,
        count: u32,
        done: impl FnOnce(Result<ReadData, Error>) + Send + 'static,
    ) {
        let (me, fh) = (self.clone(), fh.clone());
        tokio::spawn(async move { done(me.read(&fh, offset, count).await) });
    }

    /// WRITE with the open's stateid, then GETATTR.
    pub async fn write(
        &self,
        fh: &FileHandle,
        offset: u64,
        data: Slice,
        stable: Stability,
    ) -> Result<WriteDone, Error> {
        self.i.counters.count_write(stable, data.len());
        let how = match stable {
            Stability::Unstable => StableHow4::Unstable4,
            Stability::DataSync => StableHow4::DataSync4,
            Stability::FileSync => StableHow4::FileSync4,
        };
        let bytes = data.as_ref().to_vec();
        let fh2 = fh.clone();
        let mut r = self
            .with_stateid(fh, true, move |s| {
                vec![
                    fh_arg(&fh2),
                    NfsArgop4::OpWrite(Write4args {
                        stateid: s,
                        offset,
                        stable: how,
                        data: Opaque(bytes.clone()),
                    }),
                    getattr(ATTR_BITS),
                ]
            })
            .await?;
        r.skip(1)?;
        let w = match r.next()? {
            NfsResop4::OpWrite(Write4res::Nfs4Ok(w)) => w,
            _ => return Err(bad_reply("WRITE result expected")),
        };
        let attr = self.to_attr(&r.attrs()?);
        Ok(WriteDone {
            count: w.count,
            committed: match w.committed {
                StableHow4::Unstable4 => Stability::Unstable,
                StableHow4::DataSync4 => Stability::DataSync,
                StableHow4::FileSync4 => Stability::FileSync,
            },
            verf: WriteVerf(w.writeverf.0),
            attr,
        })
    }

    /// COMMIT of the whole file; returns the server's write verifier.
    pub async fn commit(&self, fh: &FileHandle) -> Result<WriteVerf, Error> {
        self.i.counters.commits.fetch_add(1, Ordering::Relaxed);
        let mut r = self
            .run(vec![
                fh_arg(fh),
                NfsArgop4::OpCommit(Commit4args {
                    offset: 0,
                    count: 0,
                }),
            ])
            .await?;
        r.skip(1)?;
        match r.next()? {
            NfsResop4::OpCommit(Commit4res::Nfs4Ok(c)) => Ok(WriteVerf(c.writeverf.0)),
            _ => Err(bad_reply("COMMIT result expected")),
        }
    }

    /// The stateid of an OPEN's result, handing a delegation granted anyway to the
    /// session (which returns it when recalled).
    fn opened(&self, fh: &FileHandle, res: NfsResop4) -> Result<Stateid, Error> {
        match res {
            NfsResop4::OpOpen(Open4res::Nfs4Ok(o)) => {
                if o.rflags & OPEN4_RESULT_PRESERVE_UNLINKED != 0 {
                    self.i.preserve_unlinked.store(true, Ordering::Relaxed);
                }
                self.i
                    .session
                    .delegation_granted(fh.as_bytes().to_vec(), &o.delegation);
                Ok(sid(&o.stateid))
            }
            _ => Err(bad_reply("OPEN result expected")),
        }
    }

    /// CLOSE of a stateid outside the open table (an OPEN that only created a file).
    async fn close_now(&self, fh: &FileHandle, s: Stateid) {
        let ops = vec![
            fh_arg(fh),
            NfsArgop4::OpClose(Close4args {
                seqid: 0,
                open_stateid: sid4(s),
            }),
        ];
        // A CLOSE that fails leaves the server to drop the open at the lease's end.
        let _ = self.raw(ops, Class::Privileged).await;
    }

    /// Creates a regular file with OPEN, then CLOSE (a file made, not opened).
    pub async fn create(
        &self,
        dir: &FileHandle,
        n: &str,
        how: CreateHow,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let (fh, a, s) = self
            .create_opening(dir, n, how, OPEN4_SHARE_ACCESS_WRITE)
            .await?;
        self.close_now(&fh, s).await;
        Ok((fh, a))
    }

    /// Creates a regular file with OPEN for `mode` and keeps that open as a local open of
    /// `mode` (rule O1), as [`Nfs4::open_state`] would: the creator may write the file
    /// whatever mode it was created with, as open(2) allows.
    pub async fn create_open(
        &self,
        dir: &FileHandle,
        n: &str,
        how: CreateHow,
        mode: u32,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let (fh, a, s) = self.create_opening(dir, n, how, mode).await?;
        let wait = |p: &OpenPlan| *p == OpenPlan::Wait;
        let plan = self.i.plan(|t| t.open(&fh, mode), wait).await;
        // The server merged the OPEN into the owner's open of the file, whose access is
        // the union of both (RFC 8881 section 18.16.3).
        if let OpenPlan::Send { access } = plan {
            self.i.opens.lock().open_done(&fh, Ok((s, access)));
            self.i.open_changed.notify_waiters();
        }
        Ok((fh, a))
    }

    async fn create_opening(
        &self,
        dir: &FileHandle,
        n: &str,
        how: CreateHow,
        access: u32,
    ) -> Result<(FileHandle, Option<Attr>, Stateid), Error> {
        let how = match how {
            CreateHow::Unchecked(s) => Createhow4::Unchecked4(attr::encode_set(&s)),
            CreateHow::Guarded(s) => Createhow4::Guarded4(attr::encode_set(&s)),
            CreateHow::Exclusive(v) => Createhow4::Exclusive41(Creatverfattr {
                cva_verf: OpaqueFixed(v),
                cva_attrs: attr::encode_set(&SetAttr::default()),
            }),
        };
        let ops = vec![
            fh_arg(dir),
            self.i.open_op(
                access,
                Openflag4::Open4Create(how),
                OpenClaim4::ClaimNull(component(n)?),
            ),
            NfsArgop4::OpGetfh,
            getattr(ATTR_BITS),
        ];
        let mut r = self.run(ops).await?;
        r.skip(1)?;
        let open = r.next()?;
        let fh = r.fh()?;
        let a = self.to_attr(&r.attrs()?);
        let s = self.opened(&fh, open)?;
        Ok((fh, a, s))
    }

    async fn create_obj(
        &self,
        dir: &FileHandle,
        n: &str,
        objtype: Createtype4,
        s: SetAttr,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let ops = vec![
            fh_arg(dir),
            NfsArgop4::OpCreate(Create4args {
                objtype,
                objname: component(n)?,
                createattrs: attr::encode_set(&s),
            }),
            NfsArgop4::OpGetfh,
            getattr(ATTR_BITS),
        ];
        let mut r = self.run(ops).await?;
        r.skip(2)?;
        let fh = r.fh()?;
        Ok((fh, self.to_attr(&r.attrs()?)))
    }

    /// CREATE of a directory.
    pub async fn mkdir(
        &self,
        dir: &FileHandle,
        n: &str,
        mode: u32,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        self.create_obj(dir, n, Createtype4::Nf4dir, SetAttr::mode(mode))
            .await
    }

    /// CREATE of a symbolic link.
    pub async fn symlink(
        &self,
        dir: &FileHandle,
        n: &str,
        target: &str,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        if target.len() > 4096 {
            return Err(Error::Nfs(Status::NameTooLong));
        }
        let t = Createtype4::Nf4lnk(Opaque(target.as_bytes().to_vec()));
        self.create_obj(dir, n, t, SetAttr::default()).await
    }

    /// CREATE of a device, socket or pipe.
    pub async fn mknod(
        &self,
        dir: &FileHandle,
        n: &str,
        what: SpecialFile,
        s: SetAttr,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let dev = |d: crate::types::Device| Specdata4 {
            specdata1: d.major,
            specdata2: d.minor,
        };
        let t = match what {
            SpecialFile::Fifo => Createtype4::Nf4fifo,
            SpecialFile::Sock => Createtype4::Nf4sock,
            SpecialFile::Chr(d) => Createtype4::Nf4chr(dev(d)),
            SpecialFile::Blk(d) => Createtype4::Nf4blk(dev(d)),
        };
        self.create_obj(dir, n, t, s).await
    }

    /// REMOVE of `n` in `dir` if its type is (`dir_wanted`) or is not a directory: the
    /// check is NVERIFY/VERIFY in the same COMPOUND.
    async fn remove_typed(&self, dir: &FileHandle, n: &str, dir_wanted: bool) -> Result<(), Error> {
        let name = component(n)?;
        let is_dir = Fattr4 {
            attrmask: bitmap(&[FATTR4_TYPE]),
            attr_vals: Opaque(2u32.to_be_bytes().to_vec()),
        };
        let check = if dir_wanted {
            NfsArgop4::OpVerify(Verify4args {
                obj_attributes: is_dir,
            })
        } else {
            NfsArgop4::OpNverify(Nverify4args {
                obj_attributes: is_dir,
            })
        };
        let ops = vec![
            fh_arg(dir),
            NfsArgop4::OpSavefh,
            NfsArgop4::OpLookup(Lookup4args {
                objname: name.clone(),
            }),
            check,
            NfsArgop4::OpRestorefh,
            NfsArgop4::OpRemove(Remove4args { target: name }),
        ];
        match self.raw(ops, Class::Normal).await? {
            Ok(_) => Ok(()),
            // The type check failed (the 4th result): the object is of the other kind.
            Err((10009, 4)) => Err(Error::Nfs(Status::IsDir)), // SAME
            Err((10027, 4)) => Err(Error::Nfs(Status::NotDir)), // NOT_SAME
            Err((s, _)) => Err(Error::Nfs(status(s))),
        }
    }

    /// REMOVE of a non-directory.
    pub async fn remove(&self, dir: &FileHandle, n: &str) -> Result<(), Error> {
        self.remove_typed(dir, n, false).await
    }

    /// REMOVE of a directory.
    pub async fn rmdir(&self, dir: &FileHandle, n: &str) -> Result<(), Error> {
        self.remove_typed(dir, n, true).await
    }

    /// RENAME.
    pub async fn rename(
        &self,
        from: &FileHandle,
        fname: &str,
        to: &FileHandle,
        tname: &str,
    ) -> Result<(), Error> {
        self.run(vec![
            fh_arg(from),
            NfsArgop4::OpSavefh,
            fh_arg(to),
            NfsArgop4::OpRename(Rename4args {
                oldname: component(fname)?,
                newname: component(tname)?,
            }),
        ])
        .await
        .map(|_| ())
    }

    /// LINK.
    pub async fn link(&self, file: &FileHandle, dir: &FileHandle, n: &str) -> Result<(), Error> {
        self.run(vec![
            fh_arg(file),
            NfsArgop4::OpSavefh,
            fh_arg(dir),
            NfsArgop4::OpLink(Link4args {
                newname: component(n)?,
            }),
        ])
        .await
        .map(|_| ())
    }

    async fn list(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
        plus: bool,
    ) -> Result<Listing, Error> {
        let mut bits = vec![FATTR4_RDATTR_ERROR, FATTR4_TYPE, FATTR4_FILEID];
        if plus {
            bits.extend_from_slice(ATTR_BITS);
            bits.push(FATTR4_FILEHANDLE);
        }
        bits.sort_unstable();
        bits.dedup();
        let mut r = self
            .run(vec![
                fh_arg(dir),
                getattr(&[FATTR4_TIME_MODIFY]),
                NfsArgop4::OpReaddir(Readdir4args {
                    cookie,
                    cookieverf: OpaqueFixed(verf),
                    dircount: count,
                    maxcount: count,
                    attr_request: bitmap(&bits),
                }),
            ])
            .await?;
        r.skip(1)?;
        let dir_mtime: Option<Time> = r.attrs()?.mtime;
        let rd = match r.next()? {
            NfsResop4::OpReaddir(Readdir4res::Nfs4Ok(rd)) => rd,
            _ => return Err(bad_reply("READDIR result expected")),
        };
        let mut entries = Vec::with_capacity(rd.reply.entries.0.len());
        for e in rd.reply.entries.0 {
            let d = attr::decode(&e.attrs).unwrap_or_default();
            let (fh, a) = if plus && d.rdattr_error.unwrap_or(0) == 0 {
                (d.fh.clone(), self.to_attr(&d))
            } else {
                (None, None)
            };
            entries.push(Listed {
                cookie: e.cookie,
                name: e.name.0,
                fileid: d.fileid.or(d.mounted_on_fileid).unwrap_or(0),
                fh,
                attr: a,
            });
        }
        Ok(Listing {
            entries,
            eof: rd.reply.eof,
            verf: rd.cookieverf.0,
            dir_mtime,
        })
    }

    /// READDIR: names and file ids only.
    pub async fn readdir(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        self.list(dir, cookie, verf, count, false).await
    }

    /// READDIR with handles and attributes (NFSv3's READDIRPLUS).
    pub async fn readdirplus(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        self.list(dir, cookie, verf, count, true).await
    }

    /// The file system's space and file figures.
    pub async fn fsstat(&self, fh: &FileHandle) -> Result<FsStat, Error> {
        let mut r = self.run(vec![fh_arg(fh), getattr(FSSTAT_BITS)]).await?;
        r.skip(1)?;
        Ok(r.attrs()?.to_fsstat())
    }

    /// Rule O1: a local open of `fh` for `mode` (share access bits) holds a server open
    /// with at least that access; OPEN (or an upgrade) is sent when none covers it.
    pub async fn open_state(&self, fh: &FileHandle, mode: u32) -> Result<(), Error> {
        let wait = |p: &OpenPlan| *p == OpenPlan::Wait;
        let OpenPlan::Send { access } = self.i.plan(|t| t.open(fh, mode), wait).await else {
            return Ok(()); // covered by the server open there is
        };
        let ops = vec![
            fh_arg(fh),
            self.i.open_op(
                access,
                Openflag4::Default(Opentype4::Open4Nocreate),
                OpenClaim4::ClaimFh,
            ),
        ];
        let r = match self.run(ops).await {
            Ok(mut r) => r
                .skip(1)
                .and_then(|()| r.next())
                .and_then(|o| self.opened(fh, o)),
            Err(e) => Err(e),
        };
        self.i
            .opens
            .lock()
            .open_done(fh, r.as_ref().map(|s| (*s, access)).map_err(|_| ()));
        self.i.open_changed.notify_waiters();
        r.map(|_| ())
    }

    /// Rule O3: the local close of an open of `fh` for `mode`: OPEN_DOWNGRADE or CLOSE
    /// when it was the last of its mode. A failure leaves the server to expire the open.
    pub async fn close_state(&self, fh: &FileHandle, mode: u32) {
        let wait = |p: &ClosePlan| *p == ClosePlan::Wait;
        let (op, downgrade) = match self.i.plan(|t| t.close(fh, mode), wait).await {
            // `plan` never ends on Wait.
            ClosePlan::Nothing | ClosePlan::Wait => return,
            ClosePlan::Close { stateid } => (
                NfsArgop4::OpClose(Close4args {
                    seqid: 0,
                    open_stateid: sid4(stateid),
                }),
                false,
            ),
            ClosePlan::Downgrade { stateid, access } => (
                NfsArgop4::OpOpenDowngrade(OpenDowngrade4args {
                    open_stateid: sid4(stateid),
                    seqid: 0,
                    share_access: access,
                    share_deny: OPEN4_SHARE_DENY_NONE,
                }),
                true,
            ),
        };
        let r = match self.raw(vec![fh_arg(fh), op], Class::Privileged).await {
            Ok(Ok(mut r)) => match (r.skip(1).and_then(|()| r.next()), downgrade) {
                (Ok(NfsResop4::OpOpenDowngrade(OpenDowngrade4res::Nfs4Ok(d))), true) => {
                    Ok(Some(sid(&d.open_stateid)))
                }
                (Ok(_), false) => Ok(None),
                _ => Err(()),
            },
            _ => Err(()),
        };
        self.i.opens.lock().close_done(fh, r);
        self.i.open_changed.notify_waiters();
    }
}
