//! The file and state operations through `run_compound`, against the memory backend, with
//! a test session layer that names a client per compound and test hooks for grace,
//! reclaim and courtesy clients.
#![allow(clippy::unwrap_used)]
use crate::v4::compound::{run_compound, Ctx, Limits, SessionStep, Sessions, StateCtx, StateHooks};
use crate::v4::error::Nfs4Error;
use crate::v4::owner::OwnerMap;
use crate::v4::pseudo::{Caller, PseudoFs};
use crate::v4::state::ids::{ClientId, Time};
use crate::v4::state::locking::{Counts, Locking};
use crate::{Export, NfsServer};
use rnfs_proto::nfs4::*;
use rnfs_rpc::message::Auth;
use rnfs_vfs::memory::MemFs;
use rnfs_vfs::{Backend, Ctx as VCtx, SetAttr};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

const VERF: [u8; 8] = *b"writevrf";

/// SEQUENCE names the client the test says.
struct As(ClientId);

impl Sessions for As {
    fn run(&self, op: &NfsArgop4, _: usize, _: usize, out: &mut Writer) -> SessionStep {
        if !matches!(op, NfsArgop4::OpSequence(_)) {
            return SessionStep::Err(Nfs4Error::NotSupp);
        }
        out.raw(&[0; 36]);
        SessionStep::Sequenced {
            limits: None,
            client: self.0,
        }
    }
}

#[derive(Default)]
struct Hooks {
    grace: Cell<bool>,
    reclaimers: RefCell<Vec<ClientId>>,
    courtesy: RefCell<Vec<ClientId>>,
    asked: RefCell<Vec<ClientId>>,
    /// Clients that have not sent RECLAIM_COMPLETE.
    unfinished: RefCell<Vec<ClientId>>,
    /// Files kept after their last name is removed (as V4State keeps them).
    kept: RefCell<std::collections::HashMap<rnfs_vfs::FileKey, rnfs_vfs::Kept>>,
    /// Every client's callback path is verified (delegations may be granted).
    cb_ok: Cell<bool>,
    /// Asynchronous copies (run at once, in the COPY, when `cb_ok`), and the ends their
    /// CB_OFFLOAD would tell: stateid, bytes, status.
    offloads: crate::v4::offload::Offloads,
    offloaded: RefCell<Vec<(crate::v4::state::ids::Stateid, u64, u32)>>,
}

impl StateHooks for Hooks {
    fn in_grace(&self, _: Time) -> bool {
        self.grace.get()
    }
    fn may_reclaim(&self, client: ClientId, _: Time) -> bool {
        self.reclaimers.borrow().contains(&client)
    }
    fn reclaim_completed(&self, client: ClientId) -> bool {
        !self.unfinished.borrow().contains(&client)
    }
    fn expire_courtesy(&self, clients: &[ClientId], l: &mut Locking, _: Time) -> bool {
        self.asked.borrow_mut().extend_from_slice(clients);
        let mut any = false;
        for c in clients {
            if self.courtesy.borrow().contains(c) {
                l.purge_client(*c);
                any = true;
            }
        }
        any
    }
    fn keep_unlinked(
        &self,
        _: u16,
        file: &rnfs_vfs::FileKey,
        keep: &mut dyn FnMut() -> Option<rnfs_vfs::Kept>,
    ) -> bool {
        if self.kept.borrow().contains_key(file) {
            return true;
        }
        let Some(k) = keep() else { return false };
        self.kept.borrow_mut().insert(file.clone(), k);
        true
    }
    fn let_go_unheld(&self, file: &rnfs_vfs::FileKey, l: &Locking) {
        if !l.holds_file(file) {
            self.kept.borrow_mut().remove(file);
        }
    }
    fn callback_ok(&self, _: ClientId) -> bool {
        self.cb_ok.get()
    }
    fn start_copy(
        &self,
        client: ClientId,
        job: crate::v4::offload::CopyJob,
        _verf: [u8; 8],
    ) -> Option<crate::v4::state::ids::Stateid> {
        if !self.cb_ok.get() {
            return None;
        }
        let (sid, copied, cancel) = self.offloads.register(client, 1)?;
        let (n, status) = crate::v4::offload::run(&job, &copied, &cancel);
        self.offloads.finish(&sid, status);
        self.offloaded.borrow_mut().push((sid, n, status));
        self.offloads.retire(&sid);
        Some(sid)
    }
    fn offload_status(
        &self,
        client: ClientId,
        sid: &crate::v4::state::ids::Stateid,
    ) -> Option<crate::v4::offload::Progress> {
        self.offloads.status(client, sid).ok()
    }
    fn offload_cancel(&self, client: ClientId, sid: &crate::v4::state::ids::Stateid) -> bool {
        self.offloads.cancel(client, sid).is_ok()
    }
}

struct World {
    _server: NfsServer,
    fs: Arc<dyn Backend>,
    _ro: Arc<dyn Backend>,
    pseudo: PseudoFs,
    owners: OwnerMap,
    locking: parking_lot::Mutex<Locking>,
    hooks: Hooks,
    /// The backend answers STALE for every file's key (as for files removed meanwhile).
    all_gone: Cell<bool>,
    /// The time compounds run at, in milliseconds.
    now: Cell<u64>,
    /// The minor version compounds carry (1 unless a test says).
    minor: Cell<u32>,
}

static NONE: Auth = Auth::None;

fn world() -> World {
    world_on(Arc::new(MemFs::with_root(1 << 24, 0, 0, 0o777)))
}

/// The test world with `fs` exported at /srv/a (and a memory backend at /ro).
fn world_on(fs: Arc<dyn Backend>) -> World {
    world_of(fs, Arc::new(MemFs::new(1 << 20)))
}

/// The test world with `fs` exported at /srv/a and `ro` at /ro.
/// The test world over a local directory anyone may create in (the backend that keeps
/// exclusive-create verifiers in the file's times, and refuses what `off_t` cannot hold).
fn local_world() -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
    (dir, world_on(fs))
}

fn world_of(fs: Arc<dyn Backend>, ro: Arc<dyn Backend>) -> World {
    let (server, pseudo) = crate::v4::pseudo::test_exports(fs.clone(), ro.clone());
    World {
        _server: server,
        fs,
        _ro: ro,
        pseudo,
        owners: OwnerMap::numeric(),
        locking: parking_lot::Mutex::new(Locking::new(1, Default::default())),
        hooks: Hooks::default(),
        all_gone: Cell::new(false),
        now: Cell::new(0),
        minor: Cell::new(1),
    }
}

const WIDE: Limits = Limits {
    max_ops: 64,
    max_reply: 1 << 22,
    max_cached: None,
};

impl World {
    /// Runs SEQUENCE + `ops` as client `client`; the results after SEQUENCE.
    fn run(&self, client: u64, ops: Vec<NfsArgop4>) -> (u32, Vec<NfsResop4>) {
        let s = As(ClientId(client));
        let locate = |_: &Arc<Export>, _: &rnfs_vfs::FileKey| {
            if self.all_gone.get() {
                Err(Nfs4Error::Stale)
            } else {
                Ok(())
            }
        };
        let mut all = vec![NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed([0; 16]),
            sa_sequenceid: 0,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })];
        all.extend(ops);
        let now = Time(self.now.get());
        let (status, mut v) = self.compound(self.minor.get(), &s, &locate, now, all);
        v.remove(0);
        (status, v)
    }

    /// Runs `ops` as a compound of minor version `minor` with `sessions` and `locate` at
    /// `now`: its status and every result.
    fn compound(
        &self,
        minor: u32,
        sessions: &dyn Sessions,
        locate: &crate::v4::compound::Locate<'_>,
        now: Time,
        ops: Vec<NfsArgop4>,
    ) -> (u32, Vec<NfsResop4>) {
        let ctx = Ctx {
            pseudo: &self.pseudo,
            caller: Caller {
                peer: "10.0.0.1:900".parse().unwrap(),
                auth: &NONE,
            },
            owners: &self.owners,
            lease_time: 90,
            max_io: 1 << 20,
            minors: (minor.min(1), 2),
            limits: WIDE,
            sessions,
            locate,
            state: StateCtx {
                locking: &self.locking,
                hooks: &self.hooks,
                now,
                write_verf: VERF,
            },
        };
        let args = Compound4args {
            tag: Opaque(vec![]),
            minorversion: minor,
            argarray: VarArray(ops),
        };
        let mut w = Writer::new();
        args.encode(&mut w);
        let reply = run_compound(&ctx, w.as_slice()).unwrap();
        let res = Compound4res::decode(&mut Reader::new(&reply)).unwrap();
        (res.status as u32, res.resarray.0)
    }
    fn counts(&self) -> Counts {
        let l = self.locking.lock();
        l.audit().unwrap();
        l.counts()
    }
}

fn code(e: Nfs4Error) -> u32 {
    e.code()
}

fn name(n: &[u8]) -> Component4 {
    Opaque(n.to_vec())
}

/// PUTROOTFH, LOOKUP srv, LOOKUP a: the export's root.
fn at_export() -> Vec<NfsArgop4> {
    vec![NfsArgop4::OpPutrootfh, lookup_op(b"srv"), lookup_op(b"a")]
}

fn lookup_op(n: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpLookup(Lookup4args { objname: name(n) })
}

/// `n` in the export's root as the saved handle, the export's root as the current one:
/// ready for a LINK or RENAME from `n`.
fn saved_then_export(n: &[u8]) -> Vec<NfsArgop4> {
    let mut v = at_export();
    v.push(lookup_op(n));
    v.push(NfsArgop4::OpSavefh);
    v.extend(at_export());
    v
}

/// SETATTR under `stateid` of the attributes `mask` with their encoded values `vals`.
fn setattr_op(stateid: Stateid4, mask: Vec<u32>, vals: Vec<u8>) -> NfsArgop4 {
    NfsArgop4::OpSetattr(Setattr4args {
        stateid,
        obj_attributes: Fattr4 {
            attrmask: VarArray(mask),
            attr_vals: Opaque(vals),
        },
    })
}

fn no_attrs() -> Fattr4 {
    Fattr4 {
        attrmask: VarArray(vec![]),
        attr_vals: Opaque(vec![]),
    }
}

fn open_op(owner: &[u8], access: u32, deny: u32, how: Openflag4, claim: OpenClaim4) -> NfsArgop4 {
    NfsArgop4::OpOpen(Open4args {
        seqid: 0,
        share_access: access,
        share_deny: deny,
        owner: StateOwner4 {
            clientid: 0,
            owner: Opaque(owner.to_vec()),
        },
        openhow: how,
        claim,
    })
}

/// OPEN of `file` in the export's root (created UNCHECKED), then GETFH.
fn open_file(owner: &[u8], file: &[u8], access: u32, deny: u32) -> Vec<NfsArgop4> {
    let mut v = at_export();
    v.push(open_op(
        owner,
        access,
        deny,
        Openflag4::Open4Create(Createhow4::Unchecked4(no_attrs())),
        OpenClaim4::ClaimNull(name(file)),
    ));
    v.push(NfsArgop4::OpGetfh);
    v
}

fn opened(r: &NfsResop4) -> Open4resok {
    match r {
        NfsResop4::OpOpen(Open4res::Nfs4Ok(ok)) => ok.clone(),
        other => panic!("not opened: {other:?}"),
    }
}

fn fh_of(r: &NfsResop4) -> Vec<u8> {
    match r {
        NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(ok)) => ok.object.0.clone(),
        other => panic!("no fh: {other:?}"),
    }
}

fn putfh(fh: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpPutfh(Putfh4args {
        object: Opaque(fh.to_vec()),
    })
}

/// Opens `file` as `client`/`owner`: its handle and open stateid.
fn open_ok(
    w: &World,
    client: u64,
    owner: &[u8],
    file: &[u8],
    access: u32,
    deny: u32,
) -> (Vec<u8>, Stateid4) {
    let (s, r) = w.run(client, open_file(owner, file, access, deny));
    assert_eq!(s, 0, "{r:?}");
    (fh_of(&r[4]), opened(&r[3]).stateid)
}

fn write_op(sid: &Stateid4, offset: u64, data: &[u8], stable: StableHow4) -> NfsArgop4 {
    NfsArgop4::OpWrite(Write4args {
        stateid: sid.clone(),
        offset,
        stable,
        data: Opaque(data.to_vec()),
    })
}

fn read_op(sid: &Stateid4, offset: u64, count: u32) -> NfsArgop4 {
    NfsArgop4::OpRead(Read4args {
        stateid: sid.clone(),
        offset,
        count,
    })
}

fn close_op(sid: &Stateid4) -> NfsArgop4 {
    NfsArgop4::OpClose(Close4args {
        seqid: 0,
        open_stateid: sid.clone(),
    })
}

/// The "current stateid" special value.
fn current() -> Stateid4 {
    Stateid4 {
        seqid: 1,
        other: OpaqueFixed([0; 12]),
    }
}

fn anonymous() -> Stateid4 {
    Stateid4 {
        seqid: 0,
        other: OpaqueFixed([0; 12]),
    }
}

const READ: u32 = 1;
const WRITE: u32 = 2;
const BOTH: u32 = 3;

#[test]
fn open_write_read_commit_close() {
    let w = world();
    let mut ops = open_file(b"o1", b"f", BOTH, 0);
    ops.push(write_op(
        &current(),
        0,
        b"hello world",
        StableHow4::Unstable4,
    ));
    ops.push(read_op(&current(), 6, 100));
    ops.push(NfsArgop4::OpCommit(Commit4args {
        offset: 0,
        count: 0,
    }));
    ops.push(close_op(&current()));
    let (s, r) = w.run(1, ops);
    assert_eq!(s, 0, "{r:?}");
    let o = opened(&r[3]);
    assert_eq!(o.rflags, OPEN4_RESULT_LOCKTYPE_POSIX);
    assert_eq!(o.delegation, OpenDelegation4::OpenDelegateNone);
    assert_eq!(o.stateid.seqid, 1);
    assert!(o.cinfo.after != o.cinfo.before, "the directory changed");
    match &r[5] {
        NfsResop4::OpWrite(Write4res::Nfs4Ok(ok)) => {
            assert_eq!((ok.count, ok.writeverf.0), (11, VERF));
        }
        other => panic!("{other:?}"),
    }
    match &r[6] {
        NfsResop4::OpRead(Read4res::Nfs4Ok(ok)) => {
            assert_eq!((ok.eof, ok.data.0.as_slice()), (true, &b"world"[..]));
        }
        other => panic!("{other:?}"),
    }
    match &r[7] {
        NfsResop4::OpCommit(Commit4res::Nfs4Ok(ok)) => assert_eq!(ok.writeverf.0, VERF),
        other => panic!("{other:?}"),
    }
    // CLOSE answers the invalid special stateid and leaves nothing held.
    match &r[8] {
        NfsResop4::OpClose(Close4res::Nfs4Ok(sid)) => assert_eq!(sid.seqid, u32::MAX),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.counts(), Counts::default());
    // The closed stateid is gone; the anonymous one still reads.
    let fh = fh_of(&r[4]);
    let (s, _) = w.run(1, vec![putfh(&fh), read_op(&o.stateid, 0, 5)]);
    assert_eq!(s, code(Nfs4Error::BadStateid));
    let (s, _) = w.run(1, vec![putfh(&fh), read_op(&anonymous(), 0, 5)]);
    assert_eq!(s, 0);
}

#[test]
fn open_checks_its_arguments_and_the_file_type() {
    let w = world();
    let ctx = VCtx::default();
    w.fs.mkdir(&ctx, &w.fs.root(), b"d", &SetAttr::default())
        .unwrap();
    let nocreate = |n: &[u8], access| {
        let mut v = at_export();
        v.push(open_op(
            b"o",
            access,
            0,
            Openflag4::Default(Opentype4::Open4Nocreate),
            OpenClaim4::ClaimNull(name(n)),
        ));
        v
    };
    assert_eq!(
        w.run(1, nocreate(b"nothere", READ)).0,
        code(Nfs4Error::NoEnt)
    );
    assert_eq!(w.run(1, nocreate(b"d", READ)).0, code(Nfs4Error::IsDir));
    assert_eq!(w.run(1, nocreate(b"d", 0)).0, code(Nfs4Error::Inval));
    assert_eq!(w.run(1, nocreate(b"..", READ)).0, code(Nfs4Error::BadName));
    // GUARDED on an existing file.
    open_ok(&w, 1, b"o", b"f", READ, 0);
    let mut v = at_export();
    v.push(open_op(
        b"o",
        READ,
        0,
        Openflag4::Open4Create(Createhow4::Guarded4(no_attrs())),
        OpenClaim4::ClaimNull(name(b"f")),
    ));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Exist));
    // Creating in the read-only export.
    let v = vec![
        NfsArgop4::OpPutrootfh,
        lookup_op(b"ro"),
        open_op(
            b"o",
            READ,
            0,
            Openflag4::Open4Create(Createhow4::Unchecked4(no_attrs())),
            OpenClaim4::ClaimNull(name(b"new")),
        ),
    ];
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Rofs));
    // Wanting a delegation: none, and why (NFSv4.1 "want" bits).
    let (s, r) = w.run(1, open_file(b"o2", b"g", READ | 0x0300, 0));
    assert_eq!(s, 0);
    assert_eq!(
        opened(&r[3]).delegation,
        OpenDelegation4::OpenDelegateNoneExt(OpenNoneDelegation4::Wnd4Resource(false))
    );
}

#[test]
fn an_exclusive_create_retried_with_its_verifier_succeeds() {
    exclusive_create(world());
}

#[test]
fn an_exclusive_create_on_the_local_backend() {
    // The local backend keeps the verifier in the file's times, as knfsd does: the
    // attributes EXCLUSIVE4_1 sets afterwards (a mode) must not lose it.
    let (_dir, w) = local_world();
    exclusive_create(w);
}

/// GETATTR of `numlinks` as the result's value.
fn numlinks(r: &NfsResop4) -> u32 {
    match r {
        NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok)) => {
            let v = &ok.obj_attributes.attr_vals.0;
            u32::from_be_bytes(v[..4].try_into().unwrap())
        }
        other => panic!("no attributes: {other:?}"),
    }
}

#[test]
fn a_file_removed_while_open_stays_usable_until_close() {
    // OPEN4_RESULT_PRESERVE_UNLINKED: the Linux client then sends REMOVE for an open
    // file instead of renaming it to .nfsXXXX, and keeps using its open stateid.
    let (dir, w) = local_world();
    let (s, r) = w.run(1, open_file(b"o", b"f", BOTH, 0));
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(
        opened(&r[3]).rflags,
        4 | 8,
        "LOCKTYPE_POSIX | PRESERVE_UNLINKED"
    );
    let (fh, sid) = (fh_of(&r[4]), opened(&r[3]).stateid);
    let mut v = at_export();
    v.push(NfsArgop4::OpRemove(Remove4args { target: name(b"f") }));
    assert_eq!(w.run(1, v).0, 0);
    assert!(!dir.path().join("f").exists());
    let links = NfsArgop4::OpGetattr(Getattr4args {
        attr_request: VarArray(vec![0, 1 << (35 - 32)]),
    });
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            write_op(&sid, 0, b"still here", StableHow4::Unstable4),
            read_op(&sid, 0, 64),
            links.clone(),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    match &r[2] {
        NfsResop4::OpRead(Read4res::Nfs4Ok(ok)) => assert_eq!(ok.data.0, b"still here"),
        other => panic!("{other:?}"),
    }
    assert_eq!(numlinks(&r[3]), 0);
    // The last CLOSE lets it go: the handle is stale.
    assert_eq!(w.run(1, vec![putfh(&fh), close_op(&sid)]).0, 0);
    assert!(w.hooks.kept.borrow().is_empty());
    let (s, _) = w.run(1, vec![putfh(&fh), links]);
    assert_eq!(s, code(Nfs4Error::Stale));
}

#[test]
fn no_preserve_unlinked_promise_from_a_backend_that_cannot_keep() {
    let w = world();
    let (s, r) = w.run(1, open_file(b"o", b"f", BOTH, 0));
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(opened(&r[3]).rflags, 4, "LOCKTYPE_POSIX alone");
    assert!(w.hooks.kept.borrow().is_empty());
}

fn exclusive_create(w: World) {
    let excl = |verf: [u8; 8], attrs: Fattr4| {
        let mut v = at_export();
        v.push(open_op(
            b"o",
            WRITE,
            0,
            Openflag4::Open4Create(Createhow4::Exclusive41(Creatverfattr {
                cva_verf: OpaqueFixed(verf),
                cva_attrs: attrs,
            })),
            OpenClaim4::ClaimNull(name(b"x")),
        ));
        v.push(NfsArgop4::OpGetfh);
        v
    };
    // mode 0640 with the create.
    let mode = Fattr4 {
        attrmask: VarArray(vec![0, 1 << (33 - 32)]),
        attr_vals: Opaque(0o640u32.to_be_bytes().to_vec()),
    };
    let (s, r) = w.run(1, excl([1; 8], mode.clone()));
    assert_eq!(s, 0, "{r:?}");
    let first = fh_of(&r[4]);
    assert_eq!(opened(&r[3]).attrset.0, vec![0, 2]);
    // The retry (its reply lost): the same file, opened.
    let (s, r) = w.run(1, excl([1; 8], mode.clone()));
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(fh_of(&r[4]), first);
    // Another verifier: someone else's file.
    assert_eq!(w.run(1, excl([2; 8], no_attrs())).0, code(Nfs4Error::Exist));
    // Attributes outside suppattr_exclcreat (time_modify_set).
    let times = Fattr4 {
        attrmask: VarArray(vec![0, 1 << (54 - 32)]),
        attr_vals: Opaque(0u32.to_be_bytes().to_vec()),
    };
    assert_eq!(w.run(1, excl([3; 8], times)).0, code(Nfs4Error::Inval));
    let a = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"x").unwrap().1;
    assert_eq!(a.mode & 0o777, 0o640);
    // After the retry, the file is an ordinary file: its size may change, and its
    // times are real ones.
    let (s, _) = w.run(1, excl([1; 8], mode));
    assert_eq!(s, 0);
}

#[test]
fn a_conflicting_open_does_not_truncate() {
    let w = world();
    let mut ops = open_file(b"o1", b"f", BOTH, WRITE);
    ops.push(write_op(&current(), 0, b"data", StableHow4::FileSync4));
    assert_eq!(w.run(1, ops).0, 0);
    let trunc = |owner: &[u8], access| {
        let mut v = at_export();
        v.push(open_op(
            owner,
            access,
            0,
            Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
                attrmask: VarArray(vec![1 << 4]),
                attr_vals: Opaque(0u64.to_be_bytes().to_vec()),
            })),
            OpenClaim4::ClaimNull(name(b"f")),
        ));
        v
    };
    let size = || {
        w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f")
            .unwrap()
            .1
            .size
    };
    let held = w.counts();
    assert_eq!(
        w.run(2, trunc(b"o2", WRITE)).0,
        code(Nfs4Error::ShareDenied)
    );
    assert_eq!(size(), 4, "the refused OPEN truncated the file");
    // A size without write access.
    assert_eq!(w.run(2, trunc(b"o2", READ)).0, code(Nfs4Error::Inval));
    assert_eq!((size(), w.counts()), (4, held));
    // The holder truncates.
    assert_eq!(w.run(1, trunc(b"o1", BOTH)).0, 0);
    assert_eq!(size(), 0);
}

#[test]
fn share_reservations_between_clients_and_courtesy_clients() {
    let w = world();
    let (fh, sid1) = open_ok(&w, 1, b"o1", b"f", BOTH, WRITE);
    // Client 2 may read but not write while client 1 denies writes.
    let (s, _) = w.run(2, open_file(b"o2", b"f", WRITE, 0));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    assert_eq!(*w.hooks.asked.borrow(), [ClientId(1)]);
    let before = w.counts();
    let (_, sid2) = open_ok(&w, 2, b"o2", b"f", READ, 0);
    // The anonymous stateid may not write past the deny either.
    let (s, _) = w.run(
        2,
        vec![
            putfh(&fh),
            write_op(&anonymous(), 0, b"x", StableHow4::FileSync4),
        ],
    );
    assert_eq!(s, code(Nfs4Error::Locked));
    // Client 2's read-only open cannot write; client 1's stateid is not client 2's.
    let (s, _) = w.run(
        2,
        vec![putfh(&fh), write_op(&sid2, 0, b"x", StableHow4::FileSync4)],
    );
    assert_eq!(s, code(Nfs4Error::OpenMode));
    let (s, _) = w.run(2, vec![putfh(&fh), read_op(&sid1, 0, 1)]);
    assert_eq!(s, code(Nfs4Error::BadStateid));
    assert_eq!(w.counts().opens, before.opens + 1);
    // Client 1 becomes a courtesy client: the conflict expires it and client 2 gets in.
    w.hooks.courtesy.borrow_mut().push(ClientId(1));
    let (s, _) = w.run(2, open_file(b"o3", b"f", WRITE, 0));
    assert_eq!(s, 0);
    let (s, _) = w.run(1, vec![putfh(&fh), read_op(&sid1, 0, 1)]);
    assert_eq!(
        s,
        code(Nfs4Error::BadStateid),
        "client 1's state was purged"
    );
}

fn lock_new(
    open: &Stateid4,
    owner: &[u8],
    kind: NfsLockType4,
    offset: u64,
    length: u64,
) -> NfsArgop4 {
    NfsArgop4::OpLock(Lock4args {
        locktype: kind,
        reclaim: false,
        offset,
        length,
        locker: Locker4::True(OpenToLockOwner4 {
            open_seqid: 0,
            open_stateid: open.clone(),
            lock_seqid: 0,
            lock_owner: StateOwner4 {
                clientid: 0,
                owner: Opaque(owner.to_vec()),
            },
        }),
    })
}

fn lockt_op(owner: &[u8], offset: u64, length: u64) -> NfsArgop4 {
    NfsArgop4::OpLockt(Lockt4args {
        locktype: NfsLockType4::WriteLt,
        offset,
        length,
        owner: StateOwner4 {
            clientid: 0,
            owner: Opaque(owner.to_vec()),
        },
    })
}

#[test]
fn byte_range_locks_between_clients() {
    let w = world();
    let (fh, o1) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    let (_, o2) = open_ok(&w, 2, b"o2", b"f", BOTH, 0);
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            lock_new(&o1, b"l1", NfsLockType4::WriteLt, 0, 100),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    let l1 = match &r[1] {
        NfsResop4::OpLock(Lock4res::Nfs4Ok(ok)) => ok.lock_stateid.clone(),
        other => panic!("{other:?}"),
    };
    let held = w.counts();
    // Client 2 overlaps: DENIED, naming client 1's owner and range; nothing created.
    let (s, r) = w.run(
        2,
        vec![
            putfh(&fh),
            lock_new(&o2, b"l2", NfsLockType4::ReadLt, 50, 10),
        ],
    );
    assert_eq!(s, code(Nfs4Error::Denied));
    let want = Lock4denied {
        offset: 0,
        length: 100,
        locktype: NfsLockType4::WriteLt,
        owner: StateOwner4 {
            clientid: 1,
            owner: Opaque(b"l1".to_vec()),
        },
    };
    assert_eq!(
        r[1],
        NfsResop4::OpLock(Lock4res::Nfs4errDenied(want.clone()))
    );
    assert_eq!(w.counts(), held, "a denied LOCK leaves nothing behind");
    let (s, r) = w.run(2, vec![putfh(&fh), lockt_op(b"l2", 99, 1)]);
    assert_eq!(s, code(Nfs4Error::Denied));
    assert_eq!(r[1], NfsResop4::OpLockt(Lockt4res::Nfs4errDenied(want)));
    assert_eq!(w.run(2, vec![putfh(&fh), lockt_op(b"l2", 100, 1)]).0, 0);
    // CLOSE while the lock is held: LOCKS_HELD.
    assert_eq!(
        w.run(1, vec![putfh(&fh), close_op(&o1)]).0,
        code(Nfs4Error::LocksHeld)
    );
    // FREE_STATEID of a lock stateid holding a range: LOCKS_HELD too.
    let free = |sid: &Stateid4| {
        NfsArgop4::OpFreeStateid(FreeStateid4args {
            fsa_stateid: sid.clone(),
        })
    };
    assert_eq!(w.run(1, vec![free(&l1)]).0, code(Nfs4Error::LocksHeld));
    // LOCKU, then client 2 gets its lock.
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            NfsArgop4::OpLocku(Locku4args {
                locktype: NfsLockType4::WriteLt,
                seqid: 0,
                lock_stateid: l1.clone(),
                offset: 0,
                length: u64::MAX,
            }),
        ],
    );
    assert_eq!(s, 0);
    let l1b = match &r[1] {
        NfsResop4::OpLocku(Locku4res::Nfs4Ok(sid)) => sid.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(l1b.seqid, l1.seqid + 1);
    let (s, _) = w.run(
        2,
        vec![
            putfh(&fh),
            lock_new(&o2, b"l2", NfsLockType4::ReadLt, 50, 10),
        ],
    );
    assert_eq!(s, 0);
    // TEST_STATEID: the current lock stateid, the old one, a made-up one.
    let mut bogus = l1b.clone();
    bogus.other.0[11] ^= 0xff;
    let (s, r) = w.run(
        1,
        vec![NfsArgop4::OpTestStateid(TestStateid4args {
            ts_stateids: VarArray(vec![l1b.clone(), l1.clone(), bogus]),
        })],
    );
    assert_eq!(s, 0);
    match &r[0] {
        NfsResop4::OpTestStateid(TestStateid4res::Nfs4Ok(ok)) => assert_eq!(
            ok.tsr_status_codes.0,
            [
                Nfsstat4::Nfs4Ok,
                Nfsstat4::Nfs4errOldStateid,
                Nfsstat4::Nfs4errBadStateid
            ]
        ),
        other => panic!("{other:?}"),
    }
    // Unlocked: FREE_STATEID frees it, and the open closes.
    assert_eq!(w.run(1, vec![free(&l1b)]).0, 0);
    assert_eq!(w.run(1, vec![putfh(&fh), close_op(&o1)]).0, 0);
}

#[test]
fn old_and_bad_stateids_through_compounds_leak_nothing() {
    // Seed entry 9: every refused stateid leaves the table as it was.
    let w = world();
    let (fh, s1) = open_ok(&w, 1, b"o1", b"f", READ, 0);
    // The same owner opens again: one stateid, seqid 2.
    let (_, s2) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    assert_eq!((s2.seqid, &s2.other), (2, &s1.other));
    let held = w.counts();
    let refused = [
        (
            vec![putfh(&fh), write_op(&s1, 0, b"x", StableHow4::FileSync4)],
            Nfs4Error::OldStateid,
        ),
        (vec![putfh(&fh), close_op(&s1)], Nfs4Error::OldStateid),
        (
            vec![putfh(&fh), lock_new(&s1, b"l", NfsLockType4::WriteLt, 0, 1)],
            Nfs4Error::OldStateid,
        ),
        (
            vec![
                putfh(&fh),
                NfsArgop4::OpOpenDowngrade(OpenDowngrade4args {
                    open_stateid: s1.clone(),
                    seqid: 0,
                    share_access: READ,
                    share_deny: 0,
                }),
            ],
            Nfs4Error::OldStateid,
        ),
        (
            vec![
                putfh(&fh),
                lock_new(
                    &Stateid4 {
                        seqid: 9,
                        ..s2.clone()
                    },
                    b"l",
                    NfsLockType4::WriteLt,
                    0,
                    1,
                ),
            ],
            Nfs4Error::BadStateid,
        ),
        (
            vec![putfh(&fh), lock_new(&s2, b"l", NfsLockType4::WriteLt, 0, 0)],
            Nfs4Error::Inval,
        ),
        (vec![putfh(&fh), read_op(&s1, 0, 1)], Nfs4Error::OldStateid),
        (
            vec![
                putfh(&fh),
                setattr_op(s1.clone(), vec![1 << 4], 0u64.to_be_bytes().to_vec()),
            ],
            Nfs4Error::OldStateid,
        ),
        // Another client's stateid.
        (vec![putfh(&fh), close_op(&s2)], Nfs4Error::BadStateid),
        // The current stateid when none is set.
        (
            vec![putfh(&fh), close_op(&current())],
            Nfs4Error::BadStateid,
        ),
    ];
    for (i, (ops, e)) in refused.into_iter().enumerate() {
        let client = if i == 8 { 2 } else { 1 };
        assert_eq!(w.run(client, ops).0, code(e), "case {i}");
        assert_eq!(w.counts(), held, "case {i} leaked");
    }
    // A lock stateid, then its old versions through LOCK (exist_lock_owner) and LOCKU.
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            lock_new(&s2, b"l", NfsLockType4::WriteLt, 0, 10),
        ],
    );
    assert_eq!(s, 0);
    let l1 = match &r[1] {
        NfsResop4::OpLock(Lock4res::Nfs4Ok(ok)) => ok.lock_stateid.clone(),
        other => panic!("{other:?}"),
    };
    let unlock = |sid: &Stateid4| {
        NfsArgop4::OpLocku(Locku4args {
            locktype: NfsLockType4::WriteLt,
            seqid: 0,
            lock_stateid: sid.clone(),
            offset: 0,
            length: 5,
        })
    };
    assert_eq!(w.run(1, vec![putfh(&fh), unlock(&l1)]).0, 0);
    let held = w.counts();
    let existing = NfsArgop4::OpLock(Lock4args {
        locktype: NfsLockType4::WriteLt,
        reclaim: false,
        offset: 20,
        length: 1,
        locker: Locker4::False(ExistLockOwner4 {
            lock_stateid: l1.clone(),
            lock_seqid: 0,
        }),
    });
    assert_eq!(
        w.run(1, vec![putfh(&fh), existing]).0,
        code(Nfs4Error::OldStateid)
    );
    assert_eq!(
        w.run(1, vec![putfh(&fh), unlock(&l1)]).0,
        code(Nfs4Error::OldStateid)
    );
    assert_eq!(w.counts(), held, "old lock stateids leaked");
    let l2 = Stateid4 {
        seqid: l1.seqid + 1,
        ..l1.clone()
    };
    let unlock_all = NfsArgop4::OpLocku(Locku4args {
        locktype: NfsLockType4::WriteLt,
        seqid: 0,
        lock_stateid: l2.clone(),
        offset: 0,
        length: u64::MAX,
    });
    let free = NfsArgop4::OpFreeStateid(FreeStateid4args { fsa_stateid: l2 });
    assert_eq!(w.run(1, vec![putfh(&fh), unlock_all, free]).0, 0);
    // OPEN_DOWNGRADE to READ (asked first) works; to WRITE alone (never asked) is INVAL.
    let down = |sid: &Stateid4, access| {
        NfsArgop4::OpOpenDowngrade(OpenDowngrade4args {
            open_stateid: sid.clone(),
            seqid: 0,
            share_access: access,
            share_deny: 0,
        })
    };
    assert_eq!(
        w.run(1, vec![putfh(&fh), down(&s2, WRITE)]).0,
        code(Nfs4Error::Inval)
    );
    let (s, r) = w.run(1, vec![putfh(&fh), down(&s2, READ), close_op(&current())]);
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(w.counts(), Counts::default());
}

#[test]
fn grace_and_reclaim() {
    let w = world();
    let (fh, _) = open_ok(&w, 1, b"o1", b"f", READ, 0);
    w.locking.lock().purge_client(ClientId(1));
    w.hooks.grace.set(true);
    w.hooks.reclaimers.borrow_mut().push(ClientId(1));
    // New opens wait for grace to end.
    assert_eq!(
        w.run(2, open_file(b"o2", b"f", READ, 0)).0,
        code(Nfs4Error::Grace)
    );
    let reclaim = |d| {
        vec![
            putfh(&fh),
            open_op(
                b"o1",
                BOTH,
                0,
                Openflag4::Default(Opentype4::Open4Nocreate),
                OpenClaim4::ClaimPrevious(d),
            ),
        ]
    };
    // Client 1 may reclaim; client 2 has nothing to reclaim.
    assert_eq!(
        w.run(2, reclaim(OpenDelegationType4::OpenDelegateNone)).0,
        code(Nfs4Error::NoGrace)
    );
    // A delegation held before the restart is granted again; the callback path is not
    // verified yet: pre-recalled (RFC 7530 16.16.5).
    let (s, r) = w.run(1, reclaim(OpenDelegationType4::OpenDelegateRead));
    assert_eq!(s, 0, "{r:?}");
    match deleg_of(&r[1]) {
        OpenDelegation4::OpenDelegateRead(d) => assert!(d.recall, "pre-recalled"),
        other => panic!("no read delegation reclaimed: {other:?}"),
    }
    let (s, r) = w.run(1, reclaim(OpenDelegationType4::OpenDelegateNone));
    assert_eq!(s, 0);
    let sid = opened(&r[1]).stateid;
    // A lock: new ones wait, reclaims go through.
    let mut l = lock_new(&sid, b"l1", NfsLockType4::WriteLt, 0, 10);
    assert_eq!(
        w.run(1, vec![putfh(&fh), l.clone()]).0,
        code(Nfs4Error::Grace)
    );
    if let NfsArgop4::OpLock(a) = &mut l {
        a.reclaim = true;
    }
    assert_eq!(w.run(1, vec![putfh(&fh), l.clone()]).0, 0);
    // Grace over: reclaims are NO_GRACE, new opens fine.
    w.hooks.grace.set(false);
    assert_eq!(
        w.run(1, reclaim(OpenDelegationType4::OpenDelegateNone)).0,
        code(Nfs4Error::NoGrace)
    );
    assert_eq!(w.run(2, open_file(b"o2", b"f", READ, 0)).0, 0);
}

#[test]
fn new_opens_and_locks_wait_for_the_clients_reclaim_complete() {
    let w = world();
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    w.hooks
        .unfinished
        .borrow_mut()
        .extend([ClientId(1), ClientId(2)]);
    // Out of grace still: RFC 8881 18.51.3.
    assert_eq!(
        w.run(2, open_file(b"o2", b"f", READ, 0)).0,
        code(Nfs4Error::Grace)
    );
    let l = lock_new(&sid, b"l1", NfsLockType4::WriteLt, 0, 10);
    assert_eq!(
        w.run(1, vec![putfh(&fh), l.clone()]).0,
        code(Nfs4Error::Grace)
    );
    // What it holds already it still uses and gives back.
    assert_eq!(w.run(1, vec![putfh(&fh), read_op(&sid, 0, 1)]).0, 0);
    w.hooks
        .unfinished
        .borrow_mut()
        .retain(|c| *c != ClientId(1));
    assert_eq!(w.run(1, vec![putfh(&fh), l]).0, 0);
    assert_eq!(
        w.run(2, open_file(b"o2", b"f", READ, 0)).0,
        code(Nfs4Error::Grace)
    );
    w.hooks.unfinished.borrow_mut().clear();
    open_ok(&w, 2, b"o2", b"f", READ, 0);
}

#[test]
fn a_file_removed_while_open_can_still_be_closed() {
    let w = world();
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    let (other, osid) = open_ok(&w, 1, b"o1", b"g", BOTH, 0);
    assert_eq!(w.run(1, vec![putfh(&other), close_op(&osid)]).0, 0);
    // Both files removed (RENAME over them): the backend no longer places their keys.
    w.all_gone.set(true);
    assert_eq!(
        w.run(1, vec![putfh(&other), NfsArgop4::OpGetfh]).0,
        code(Nfs4Error::Stale)
    );
    let (s, r) = w.run(1, vec![putfh(&fh), close_op(&sid)]);
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(w.counts(), Counts::default());
    // Its state gone, so is its handle.
    assert_eq!(
        w.run(1, vec![putfh(&fh), NfsArgop4::OpGetfh]).0,
        code(Nfs4Error::Stale)
    );
}

#[test]
fn delegation_claims_without_delegations() {
    let w = world();
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", READ, 0);
    let claim = |c| {
        vec![
            putfh(&fh),
            open_op(
                b"o1",
                READ,
                0,
                Openflag4::Default(Opentype4::Open4Nocreate),
                c,
            ),
        ]
    };
    assert_eq!(
        w.run(1, claim(OpenClaim4::ClaimDelegCurFh(sid.clone()))).0,
        code(Nfs4Error::BadStateid)
    );
    assert_eq!(
        w.run(1, claim(OpenClaim4::ClaimDelegPrevFh)).0,
        code(Nfs4Error::NotSupp)
    );
    let v = vec![
        putfh(&fh),
        NfsArgop4::OpDelegreturn(Delegreturn4args { deleg_stateid: sid }),
    ];
    assert_eq!(w.run(1, v).0, code(Nfs4Error::BadStateid));
}

#[test]
fn setattr_of_the_size_needs_a_stateid_that_writes() {
    let w = world();
    let (fh, ro) = open_ok(&w, 1, b"o1", b"f", READ, 0);
    let size =
        |sid: &Stateid4, n: u64| setattr_op(sid.clone(), vec![1 << 4], n.to_be_bytes().to_vec());
    let (s, r) = w.run(1, vec![putfh(&fh), size(&ro, 10)]);
    assert_eq!(s, code(Nfs4Error::OpenMode));
    assert_eq!(
        r[1],
        NfsResop4::OpSetattr(Setattr4res {
            status: Nfsstat4::Nfs4errOpenmode,
            attrsset: VarArray(vec![]),
        })
    );
    let (_, rw) = open_ok(&w, 1, b"o2", b"f", BOTH, 0);
    let (s, r) = w.run(1, vec![putfh(&fh), size(&rw, 10)]);
    assert_eq!(s, 0);
    assert_eq!(
        r[1],
        NfsResop4::OpSetattr(Setattr4res {
            status: Nfsstat4::Nfs4Ok,
            attrsset: VarArray(vec![1 << 4]),
        })
    );
    let a = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap().1;
    assert_eq!(a.size, 10);
}

fn create_op(t: Createtype4, n: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpCreate(Create4args {
        objtype: t,
        objname: name(n),
        createattrs: no_attrs(),
    })
}

#[test]
fn create_remove_rename_link() {
    let w = world();
    let mut v = at_export();
    v.push(NfsArgop4::OpSavefh);
    v.push(create_op(Createtype4::Nf4dir, b"d"));
    v.push(create_op(Createtype4::Nf4fifo, b"p"));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    let ctx = VCtx::default();
    let (dk, _) = w.fs.lookup(&ctx, &w.fs.root(), b"d").unwrap();
    assert!(
        w.fs.lookup(&ctx, &dk, b"p").is_ok(),
        "CREATE made d current"
    );
    // A regular file is OPEN's to create; the pseudo file system is read-only.
    let mut v = at_export();
    v.push(create_op(Createtype4::Default(NfsFtype4::Nf4reg), b"r"));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::BadType));
    let v = vec![NfsArgop4::OpPutrootfh, create_op(Createtype4::Nf4dir, b"x")];
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Rofs));
    // RENAME d/p to the root as q; LINK q as q2; REMOVE q and d.
    let mut v = saved_then_export(b"d");
    v.push(NfsArgop4::OpRename(Rename4args {
        oldname: name(b"p"),
        newname: name(b"q"),
    }));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    match r.last().unwrap() {
        NfsResop4::OpRename(Rename4res::Nfs4Ok(ok)) => {
            assert_ne!(ok.source_cinfo.before, ok.source_cinfo.after);
            assert_ne!(ok.target_cinfo.before, ok.target_cinfo.after);
        }
        other => panic!("{other:?}"),
    }
    let mut v = saved_then_export(b"q");
    v.push(NfsArgop4::OpLink(Link4args {
        newname: name(b"q2"),
    }));
    v.push(NfsArgop4::OpRemove(Remove4args { target: name(b"q") }));
    v.push(NfsArgop4::OpRemove(Remove4args { target: name(b"d") }));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    assert!(w.fs.lookup(&ctx, &w.fs.root(), b"q2").is_ok());
    assert!(w.fs.lookup(&ctx, &w.fs.root(), b"d").is_err());
    // LINK across exports: XDEV.
    let mut v = at_export();
    v.push(lookup_op(b"q2"));
    v.push(NfsArgop4::OpSavefh);
    v.push(NfsArgop4::OpPutrootfh);
    v.push(lookup_op(b"ro"));
    v.push(NfsArgop4::OpLink(Link4args {
        newname: name(b"q3"),
    }));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Xdev));
}

fn readdir_op(cookie: u64, verf: [u8; 8], maxcount: u32, attrs: Vec<u32>) -> NfsArgop4 {
    NfsArgop4::OpReaddir(Readdir4args {
        cookie,
        cookieverf: OpaqueFixed(verf),
        dircount: 0,
        maxcount,
        attr_request: VarArray(attrs),
    })
}

fn listed(r: &NfsResop4) -> Readdir4resok {
    match r {
        NfsResop4::OpReaddir(Readdir4res::Nfs4Ok(ok)) => ok.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn readdir_never_skips_while_the_directory_changes() {
    // Seed entry 4 over NFSv4: entries added and removed between the calls of a listing
    // never make it skip (or repeat) an entry present all along.
    let w = world();
    let ctx = VCtx::default();
    let root = w.fs.root();
    let mk = |n: &str| {
        w.fs.create(
            &ctx,
            &root,
            n.as_bytes(),
            &rnfs_vfs::CreateMode::Guarded(SetAttr::default()),
        )
        .unwrap();
    };
    for i in 0..300 {
        mk(&format!("keep-{i}"));
    }
    for i in 0..100 {
        mk(&format!("gone-{i}"));
    }
    let mut seen = std::collections::HashMap::new();
    let (mut cookie, mut verf) = (0, [0; 8]);
    let mut calls = 0;
    loop {
        let mut v = at_export();
        v.push(readdir_op(cookie, verf, 1024, vec![1 << 11 | 1 << 1]));
        let (s, r) = w.run(1, v);
        assert_eq!(s, 0, "{r:?}");
        let ok = listed(&r[3]);
        verf = ok.cookieverf.0;
        for e in &ok.reply.entries.0 {
            *seen.entry(e.name.0.clone()).or_insert(0) += 1;
            cookie = e.cookie;
        }
        // Between the calls: remove some, add others.
        for i in (calls * 10)..(calls * 10 + 10) {
            let _ = w.fs.remove(&ctx, &root, format!("gone-{i}").as_bytes());
            mk(&format!("new-{calls}-{i}"));
        }
        calls += 1;
        if ok.reply.eof {
            break;
        }
        assert!(!ok.reply.entries.0.is_empty());
    }
    assert!(calls > 5, "the listing took several calls ({calls})");
    for i in 0..300 {
        assert_eq!(
            seen.get(format!("keep-{i}").as_bytes()),
            Some(&1),
            "keep-{i}"
        );
    }
    assert!(seen.values().all(|n| *n == 1));
    // The reserved cookies, another directory's verifier, a maxcount too small.
    let mut v = at_export();
    v.push(readdir_op(2, [0; 8], 1024, vec![]));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::BadCookie));
    let mut v = at_export();
    v.push(readdir_op(cookie, [9; 8], 1024, vec![]));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::NotSame));
    let mut v = at_export();
    v.push(readdir_op(0, [0; 8], 20, vec![]));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::TooSmall));
}

#[test]
fn readdir_of_the_pseudo_root_and_rdattr_error() {
    let w = world();
    // rdattr_error (11) and type (1): the pseudo root lists srv and ro, directories.
    let (s, r) = w.run(
        1,
        vec![
            NfsArgop4::OpPutrootfh,
            readdir_op(0, [0; 8], 4096, vec![1 << 11 | 1 << 1]),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    let ok = listed(&r[1]);
    let mut names: Vec<_> = ok
        .reply
        .entries
        .0
        .iter()
        .map(|e| e.name.0.clone())
        .collect();
    names.sort();
    assert_eq!(names, [b"ro".to_vec(), b"srv".to_vec()]);
    assert!(ok.reply.eof);
    for e in &ok.reply.entries.0 {
        assert_eq!(e.attrs.attrmask.0, [1 << 11 | 1 << 1]);
        assert_eq!(
            e.attrs.attr_vals.0,
            [0, 0, 0, 2, 0, 0, 0, 0],
            "NF4DIR, no error"
        );
    }
}

#[test]
fn a_client_past_its_state_limit_gets_resource_and_others_are_served() {
    let mut w = world();
    w.locking = parking_lot::Mutex::new(Locking::new(
        1,
        crate::v4::state::locking::Limits {
            states_per_client: 2,
            ..Default::default()
        },
    ));
    open_ok(&w, 1, b"o", b"f1", READ, 0);
    open_ok(&w, 1, b"o", b"f2", READ, 0);
    let held = w.counts();
    assert_eq!(
        w.run(1, open_file(b"o", b"f3", READ, 0)).0,
        code(Nfs4Error::Resource)
    );
    assert_eq!(w.counts(), held);
    // Refused before the file was created: none is left behind.
    assert!(!exists(&w, b"f3"));
    // A file that existed is opened (and refused) as it is: never removed.
    w.fs.create(
        &VCtx::default(),
        &w.fs.root(),
        b"there",
        &rnfs_vfs::CreateMode::Unchecked(SetAttr::default()),
    )
    .unwrap();
    assert_eq!(
        w.run(1, open_file(b"o", b"there", READ, 0)).0,
        code(Nfs4Error::Resource)
    );
    assert!(exists(&w, b"there"));
    open_ok(&w, 2, b"o", b"f3", READ, 0);
    let stats = w.locking.lock().stats();
    assert_eq!(stats.refused_client_limit, 2);
}

/// Whether the export's root has `name`.
fn exists(w: &World, name: &[u8]) -> bool {
    w.fs.lookup(&VCtx::default(), &w.fs.root(), name).is_ok()
}

/// OPEN (UNCHECKED4, attributes: the size) of `file` in the export's root.
fn open_sized(file: &[u8], access: u32, size: u64) -> Vec<NfsArgop4> {
    let mut v = at_export();
    v.push(open_op(
        b"o",
        access,
        0,
        Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
            attrmask: VarArray(vec![1 << 4]),
            attr_vals: Opaque(size.to_be_bytes().to_vec()),
        })),
        OpenClaim4::ClaimNull(name(file)),
    ));
    v
}

/// An OPEN refused after it created its file removes the file (and holds no open); one
/// refused before creating creates nothing; a file that existed stays.
#[test]
fn a_refused_open_leaves_no_file_it_created() {
    let w = world();
    let held = w.counts();
    // A size without write access: refused before anything is created.
    let (s, _) = w.run(1, open_sized(b"ro", READ, 0));
    assert_eq!(s, code(Nfs4Error::Inval));
    assert!(!exists(&w, b"ro"));
    // A size the backend refuses (past i64::MAX: FBIG) is set after the open is granted,
    // so after the create: the new file goes, the open with it.
    let (s, _) = w.run(1, open_sized(b"big", WRITE, u64::MAX));
    assert_eq!(s, code(Nfs4Error::FBig));
    assert!(!exists(&w, b"big"));
    assert_eq!(w.counts(), held);
    // An OPEN of a file that existed, refused (another client denies writers): the file
    // stays. (Its createattrs would be ignored but for a size of 0, RFC 8881 18.16.3.)
    open_ok(&w, 2, b"x", b"big", READ, 2);
    let (s, _) = w.run(1, open_sized(b"big", WRITE, 0));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    assert!(exists(&w, b"big"));
}

#[test]
fn setattr_of_mode_and_times() {
    let w = world();
    let (fh, _) = open_ok(&w, 1, b"o1", b"f", READ, 0);
    // mode 0600 and time_modify_set to 1000 s: no stateid needed.
    let mut vals = 0o600u32.to_be_bytes().to_vec();
    vals.extend(1u32.to_be_bytes());
    vals.extend(1000i64.to_be_bytes());
    vals.extend(0u32.to_be_bytes());
    let set = setattr_op(anonymous(), vec![0, 1 << 1 | 1 << (54 - 32)], vals);
    let (s, r) = w.run(1, vec![putfh(&fh), set]);
    assert_eq!(s, 0, "{r:?}");
    let a = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap().1;
    assert_eq!((a.mode & 0o7777, a.mtime.secs), (0o600, 1000));
    // In the pseudo file system: ROFS, its bitmap empty.
    let set = setattr_op(
        anonymous(),
        vec![0, 1 << 1],
        0o700u32.to_be_bytes().to_vec(),
    );
    let (s, _) = w.run(1, vec![NfsArgop4::OpPutrootfh, set]);
    assert_eq!(s, code(Nfs4Error::Rofs));
}

#[test]
fn an_unchecked_open_of_an_existing_file() {
    let w = world();
    let ctx = VCtx::default();
    // root's file, 0600: nobody may open it, UNCHECKED4 or not.
    let set = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    w.fs.create(
        &ctx,
        &w.fs.root(),
        b"mine",
        &rnfs_vfs::CreateMode::Guarded(set),
    )
    .unwrap();
    assert_eq!(
        w.run(1, open_file(b"o", b"mine", READ, 0)).0,
        code(Nfs4Error::Access)
    );
    // An existing file of the caller's: opened, and of the attributes asked (mode) none
    // is set, so attrset is empty.
    open_ok(&w, 1, b"o", b"f", BOTH, 0);
    let mut v = at_export();
    v.push(open_op(
        b"o",
        BOTH,
        0,
        Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
            attrmask: VarArray(vec![0, 1 << 1]),
            attr_vals: Opaque(0o600u32.to_be_bytes().to_vec()),
        })),
        OpenClaim4::ClaimNull(name(b"f")),
    ));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0);
    let o = opened(&r[3]);
    assert!(o.attrset.0.iter().all(|w| *w == 0), "{:?}", o.attrset);
    assert_eq!(o.stateid.seqid, 2, "the owner's open upgraded");
}

#[test]
fn operations_without_a_use_here_answer_notsupp() {
    let w = world();
    let (fh, _) = open_ok(&w, 1, b"o", b"f", READ, 0);
    // RELEASE_LOCKOWNER is NFSv4.0's (4.1 frees lock stateids with FREE_STATEID); no pNFS.
    let release = NfsArgop4::OpReleaseLockowner(ReleaseLockowner4args {
        lock_owner: StateOwner4 {
            clientid: 1,
            owner: Opaque(b"l".to_vec()),
        },
    });
    assert_eq!(w.run(1, vec![release]).0, code(Nfs4Error::NotSupp));
    let getdeviceinfo = NfsArgop4::OpGetdeviceinfo(Getdeviceinfo4args {
        gdia_device_id: OpaqueFixed([0; 16]),
        gdia_layout_type: Layouttype4::Layout4Nfsv41Files,
        gdia_maxcount: 1000,
        gdia_notify_types: VarArray(vec![]),
    });
    assert_eq!(w.run(1, vec![getdeviceinfo]).0, code(Nfs4Error::NotSupp));
    let layoutreturn = NfsArgop4::OpLayoutreturn(Layoutreturn4args {
        lora_reclaim: false,
        lora_layout_type: Layouttype4::Layout4Nfsv41Files,
        lora_iomode: Layoutiomode4::Layoutiomode4Any,
        lora_layoutreturn: Layoutreturn4::Default(LayoutreturnType4::Layoutreturn4All),
    });
    assert_eq!(
        w.run(1, vec![putfh(&fh), layoutreturn]).0,
        code(Nfs4Error::NotSupp)
    );
}

#[test]
fn create_a_symlink_and_read_it() {
    let w = world();
    let mut v = at_export();
    v.push(create_op(
        Createtype4::Nf4lnk(Opaque(b"../target".to_vec())),
        b"l",
    ));
    v.push(NfsArgop4::OpReadlink);
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    match &r[4] {
        NfsResop4::OpReadlink(Readlink4res::Nfs4Ok(ok)) => assert_eq!(ok.link.0, b"../target"),
        other => panic!("{other:?}"),
    }
    // An empty target is INVAL; a name taken is EXIST.
    let mut v = at_export();
    v.push(create_op(Createtype4::Nf4lnk(Opaque(vec![])), b"l2"));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Inval));
    let mut v = at_export();
    v.push(create_op(Createtype4::Nf4dir, b"l"));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::Exist));
}

#[test]
fn one_file_through_two_exports_has_one_set_of_reservations() {
    // /srv/a and /ro export the same file system: a deny through one holds through the
    // other (the locking state knows files by the backend's key, not per export).
    let fs: Arc<dyn Backend> = Arc::new(MemFs::with_root(1 << 24, 0, 0, 0o777));
    let w = world_of(fs.clone(), fs);
    let mut v = at_export();
    v.push(open_op(
        b"o1",
        BOTH,
        READ,
        Openflag4::Open4Create(Createhow4::Unchecked4(no_attrs())),
        OpenClaim4::ClaimNull(name(b"f")),
    ));
    assert_eq!(w.run(1, v).0, 0);
    let other = |access| {
        vec![
            NfsArgop4::OpPutrootfh,
            lookup_op(b"ro"),
            open_op(
                b"o2",
                access,
                0,
                Openflag4::Default(Opentype4::Open4Nocreate),
                OpenClaim4::ClaimNull(name(b"f")),
            ),
        ]
    };
    assert_eq!(w.run(2, other(READ)).0, code(Nfs4Error::ShareDenied));
}

fn deleg_of(r: &NfsResop4) -> OpenDelegation4 {
    opened(r).delegation
}

fn deleg_sid(d: &OpenDelegation4) -> Stateid4 {
    match d {
        OpenDelegation4::OpenDelegateRead(r) => r.stateid.clone(),
        OpenDelegation4::OpenDelegateWrite(w) => w.stateid.clone(),
        other => panic!("no delegation: {other:?}"),
    }
}

fn open_fh(owner: &[u8], fh: &[u8], access: u32) -> Vec<NfsArgop4> {
    vec![
        putfh(fh),
        open_op(
            owner,
            access,
            0,
            Openflag4::Default(Opentype4::Open4Nocreate),
            OpenClaim4::ClaimFh,
        ),
    ]
}

fn test_stateid(w: &World, client: u64, sid: &Stateid4) -> u32 {
    let (s, r) = w.run(
        client,
        vec![NfsArgop4::OpTestStateid(TestStateid4args {
            ts_stateids: VarArray(vec![sid.clone()]),
        })],
    );
    assert_eq!(s, 0);
    match &r[0] {
        NfsResop4::OpTestStateid(TestStateid4res::Nfs4Ok(ok)) => ok.tsr_status_codes.0[0] as u32,
        other => panic!("{other:?}"),
    }
}

/// Issue 15: a read delegation is granted on OPEN when the callback path is verified;
/// another client's OPEN for write orders one recall and answers DELAY (however often it
/// retries) until the delegation is returned.
#[test]
fn read_delegation_recalled_by_a_conflicting_open() {
    let w = world();
    w.hooks.cb_ok.set(true);
    let (s, r) = w.run(1, open_file(b"o1", b"f", READ, 0));
    assert_eq!(s, 0, "{r:?}");
    let fh = fh_of(&r[4]);
    let d = deleg_of(&r[3]);
    assert!(matches!(d, OpenDelegation4::OpenDelegateRead(_)), "{d:?}");
    let dsid = deleg_sid(&d);
    // Another client reading does not conflict, and gets a read delegation too.
    let (s, r) = w.run(2, open_fh(b"o2", &fh, READ));
    assert_eq!(s, 0);
    let d2 = deleg_sid(&deleg_of(&r[1]));
    w.run(
        2,
        vec![
            putfh(&fh),
            NfsArgop4::OpDelegreturn(Delegreturn4args { deleg_stateid: d2 }),
        ],
    );
    // A third client opening for write: DELAY, one recall for all the retries.
    let mut orders = Vec::new();
    for _ in 0..10 {
        assert_eq!(
            w.run(3, open_fh(b"o3", &fh, BOTH)).0,
            code(Nfs4Error::Delay)
        );
        orders.extend(w.locking.lock().delegations_mut().due_recalls(Time(0)));
    }
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].client, ClientId(1));
    assert_eq!(orders[0].stateid.other, dsid.other.0);
    assert_eq!(orders[0].fh, fh);
    // Returned: the open goes through.
    let ret = vec![
        putfh(&fh),
        NfsArgop4::OpDelegreturn(Delegreturn4args {
            deleg_stateid: dsid.clone(),
        }),
    ];
    assert_eq!(w.run(1, ret.clone()).0, 0);
    assert_eq!(w.run(1, ret).0, code(Nfs4Error::BadStateid));
    let (s, r) = w.run(3, open_fh(b"o3", &fh, BOTH));
    assert_eq!(s, 0, "{r:?}");
    // Client 1 still has the file open for read: no write delegation for client 3.
    assert_eq!(deleg_of(&r[1]), OpenDelegation4::OpenDelegateNone);
}

/// Issue 15: a write delegation; its stateid works for I/O; another client's READ and
/// REMOVE wait; a lease after the recall it is revoked: the conflicting REMOVE goes
/// through and the holder sees DELEG_REVOKED until it frees the stateid.
#[test]
fn write_delegation_revoked_a_lease_after_the_recall() {
    let w = world();
    w.hooks.cb_ok.set(true);
    let (s, r) = w.run(1, open_file(b"o1", b"f", BOTH, 0));
    assert_eq!(s, 0);
    let fh = fh_of(&r[4]);
    let d = deleg_of(&r[3]);
    let OpenDelegation4::OpenDelegateWrite(wd) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(wd.space_limit, NfsSpaceLimit4::NfsLimitSize(u64::MAX));
    let dsid = wd.stateid.clone();
    let (s, _) = w.run(
        1,
        vec![
            putfh(&fh),
            write_op(&dsid, 0, b"abc", StableHow4::Unstable4),
        ],
    );
    assert_eq!(s, 0);
    // A read with another client's stateid: not valid for it.
    assert_eq!(
        w.run(2, vec![putfh(&fh), read_op(&dsid, 0, 3)]).0,
        code(Nfs4Error::BadStateid)
    );
    assert_eq!(
        w.run(2, vec![putfh(&fh), read_op(&anonymous(), 0, 3)]).0,
        code(Nfs4Error::Delay)
    );
    let mut rm = at_export();
    rm.push(NfsArgop4::OpRemove(Remove4args { target: name(b"f") }));
    w.now.set(1_000);
    assert_eq!(w.run(2, rm.clone()).0, code(Nfs4Error::Delay));
    w.now.set(90_000 - 1);
    assert_eq!(w.run(2, rm.clone()).0, code(Nfs4Error::Delay));
    assert_eq!(test_stateid(&w, 1, &dsid), 0);
    // One lease after the recall (ordered by the READ at time 0).
    w.now.set(90_000);
    assert_eq!(w.run(2, rm).0, 0);
    assert_eq!(test_stateid(&w, 1, &dsid), code(Nfs4Error::DelegRevoked));
    assert!(w.locking.lock().delegations().has_revoked(ClientId(1)));
    let free = |sid: &Stateid4| {
        vec![NfsArgop4::OpFreeStateid(FreeStateid4args {
            fsa_stateid: sid.clone(),
        })]
    };
    assert_eq!(w.run(2, free(&dsid)).0, code(Nfs4Error::BadStateid));
    assert_eq!(w.run(1, free(&dsid)).0, 0);
    assert_eq!(test_stateid(&w, 1, &dsid), code(Nfs4Error::BadStateid));
    assert!(!w.locking.lock().delegations().has_revoked(ClientId(1)));
    let st = w.locking.lock().delegations().stats();
    assert_eq!((st.granted_write, st.revoked, st.held), (1, 1, 0));
}

/// Issue 15: no delegation without a verified callback path; the want bits shape the
/// answer (NONE without a preference, NONE_EXT with the reason when asked).
#[test]
fn delegation_wants_and_refusals() {
    let w = world();
    let (s, r) = w.run(1, open_file(b"o1", b"f", READ, 0));
    assert_eq!(s, 0);
    assert_eq!(deleg_of(&r[3]), OpenDelegation4::OpenDelegateNone);
    let fh = fh_of(&r[4]);
    let (_, r) = w.run(1, open_fh(b"o1", &fh, READ | 0x0100));
    assert_eq!(
        deleg_of(&r[1]),
        OpenDelegation4::OpenDelegateNoneExt(OpenNoneDelegation4::Wnd4Resource(false))
    );
    let (_, r) = w.run(1, open_fh(b"o1", &fh, READ | 0x0400));
    assert_eq!(
        deleg_of(&r[1]),
        OpenDelegation4::OpenDelegateNoneExt(OpenNoneDelegation4::Default(
            WhyNoDelegation4::Wnd4NotWanted
        ))
    );
    w.hooks.cb_ok.set(true);
    // A write delegation wanted on a read-only open: refused with the reason.
    let (_, r) = w.run(1, open_fh(b"o1", &fh, READ | 0x0200));
    assert_eq!(
        deleg_of(&r[1]),
        OpenDelegation4::OpenDelegateNoneExt(OpenNoneDelegation4::Default(
            WhyNoDelegation4::Wnd4NotSuppUpgrade
        ))
    );
    let (_, r) = w.run(1, open_fh(b"o1", &fh, READ | 0x0100));
    let dsid = deleg_sid(&deleg_of(&r[1]));
    // Held already: contention.
    let (_, r) = w.run(1, open_fh(b"o1", &fh, READ | 0x0300));
    assert_eq!(
        deleg_of(&r[1]),
        OpenDelegation4::OpenDelegateNoneExt(OpenNoneDelegation4::Wnd4Contention(false))
    );
    // Opening under the delegation (CLAIM_DELEG_CUR_FH) works; another client cannot.
    let cur = |sid: &Stateid4| {
        vec![
            putfh(&fh),
            open_op(
                b"o9",
                READ,
                0,
                Openflag4::Default(Opentype4::Open4Nocreate),
                OpenClaim4::ClaimDelegCurFh(sid.clone()),
            ),
        ]
    };
    let (s, r) = w.run(1, cur(&dsid));
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(deleg_of(&r[1]), OpenDelegation4::OpenDelegateNone);
    assert_eq!(w.run(2, cur(&dsid)).0, code(Nfs4Error::BadStateid));
    // FREE_STATEID of a held delegation: still in use.
    let (s, _) = w.run(
        1,
        vec![NfsArgop4::OpFreeStateid(FreeStateid4args {
            fsa_stateid: dsid,
        })],
    );
    assert_eq!(s, code(Nfs4Error::LocksHeld));
}

mod copy;
mod p40;
mod readplus;
mod v40;
mod v42;
mod xattr;
