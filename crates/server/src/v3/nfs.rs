//! The NFSv3 procedures (RFC 1813 section 3.3), one function each. Each takes decoded
//! arguments and returns the procedure's result type; [`dispatch`] does the decoding and
//! encoding around them.
use super::attr::{fattr3, setattr, time_from3, wcc_attr};
use super::{dir, read, status};
use crate::v4::state::delegations::Access;
use crate::{handle, NfsServer, Req, Scope};
use rnfs_proto::nfs3::*;
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::{reply_error, reply_with};
use rnfs_vfs::{Attr, CreateMode, FileKey, SpecialKind, Stability, VfsError};
use rnfs_xdr::{OpaqueFixed, Xdr};

/// Decodes the arguments of `proc_`, runs it and encodes the reply message.
pub fn dispatch(s: &NfsServer, req: &Req<'_>, xid: u32, proc_: Proc, args: &[u8]) -> Vec<u8> {
    fn run<A: Xdr, R: Xdr>(xid: u32, args: &[u8], f: impl FnOnce(A) -> R) -> Vec<u8> {
        match rnfs_xdr::from_bytes::<A>(args) {
            Ok(a) => reply_with(xid, &f(a)),
            Err(e) => {
                tracing::debug!(xid, error = %e, "undecodable arguments");
                reply_error(xid, ReplyStatus::GarbageArgs)
            }
        }
    }
    match proc_ {
        Proc::Null => run(xid, args, |()| ()),
        Proc::Getattr => run(xid, args, |a| getattr(s, req, a)),
        Proc::Setattr => run(xid, args, |a| setattr_(s, req, a)),
        Proc::Lookup => run(xid, args, |a| lookup(s, req, a)),
        Proc::Access => run(xid, args, |a| access(s, req, a)),
        Proc::Readlink => run(xid, args, |a| readlink(s, req, a)),
        Proc::Read => read::read_reply(s, req, xid, args),
        Proc::Write => run(xid, args, |a| write(s, req, a)),
        Proc::Create => run(xid, args, |a| create(s, req, a)),
        Proc::Mkdir => run(xid, args, |a| mkdir(s, req, a)),
        Proc::Symlink => run(xid, args, |a| symlink(s, req, a)),
        Proc::Mknod => run(xid, args, |a| mknod(s, req, a)),
        Proc::Remove => run(xid, args, |a| remove(s, req, a, false)),
        Proc::Rmdir => run(xid, args, |a| remove(s, req, a, true)),
        Proc::Rename => run(xid, args, |a| rename(s, req, a)),
        Proc::Link => run(xid, args, |a| link(s, req, a)),
        Proc::Readdir => run(xid, args, |a| dir::readdir(s, req, a)),
        Proc::Readdirplus => run(xid, args, |a| dir::readdirplus(s, req, a)),
        Proc::Fsstat => run(xid, args, |a| fsstat(s, req, a)),
        Proc::Fsinfo => run(xid, args, |a| fsinfo(s, req, a)),
        Proc::Pathconf => run(xid, args, |a| pathconf(s, req, a)),
        Proc::Commit => run(xid, args, |a| commit(s, req, a)),
    }
}

/// A procedure's result before encoding: the NFSv3 status of a failure.
pub(super) type R<T> = Result<T, Nfsstat3>;

/// The export and key of a handle, the caller admitted ([`NfsServer::scope`]), with the
/// refusal as an NFSv3 status.
pub(super) fn scope(s: &NfsServer, req: &Req<'_>, fh: &FileHandle3) -> R<(Scope, FileKey)> {
    s.scope(req, &fh.0).map_err(st)
}

/// A second handle of the same call ([`NfsServer::key_in`]), refused with an NFSv3 status.
fn key_in(s: &NfsServer, req: &Req<'_>, x: &Scope, fh: &FileHandle3) -> R<FileKey> {
    s.key_in(req, x, &fh.0).map_err(st)
}

/// What NFSv3 adds to a [`Scope`]: its handles and its attributes.
impl Scope {
    pub(super) fn fh(&self, key: &FileKey) -> FileHandle3 {
        handle::encode(&self.export, key)
    }
    pub(super) fn post_op(&self, key: &FileKey) -> PostOpAttr {
        self.attr_of(key).as_ref().map(fattr3)
    }
    pub(super) fn wcc(&self, key: &FileKey, before: &Option<Attr>) -> WccData {
        WccData {
            before: before.as_ref().map(wcc_attr),
            after: self.post_op(key),
        }
    }
}

/// The NFSv3 status of a backend (or handle, or export) error.
pub(super) fn st(e: VfsError) -> Nfsstat3 {
    status::nfs3(e)
}

/// Checks a name from the wire: NAMETOOLONG past the limit, ACCES/INVAL for what cannot be
/// a single component.
fn name_ok(x: &Scope, n: &Filename3) -> R<()> {
    rnfs_vfs::check_name(&n.0, x.fs().limits().name_max).map_err(st)
}

fn getattr(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> GetattrRes {
    let r = (|| {
        let (x, k) = scope(s, req, &a.object)?;
        // Another client's write delegation may hold a size and times not written yet
        // (RFC 8881 10.4.3): recalled first.
        s.deleg_conflict(req, &k, Access::Read, false).map_err(st)?;
        x.fs().getattr(&x.ctx, &k).map_err(st)
    })();
    match r {
        Ok(at) => Res::Ok(fattr3(&at)),
        Err(e) => Res::Fail(e, ()),
    }
}

fn setattr_(s: &NfsServer, req: &Req<'_>, a: SetattrArgs) -> SetattrRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&k);
    let set = setattr(&a.new_attributes);
    let access = if set.size.is_some() {
        Access::Write
    } else {
        Access::Meta
    };
    let r = x.writable().map_err(st).and_then(|()| {
        s.deleg_conflict(req, &k, access, set.size == Some(0))
            .map_err(st)?;
        x.fs()
            .setattr(&x.ctx, &k, &set, a.guard.map(time_from3))
            .map_err(st)
    });
    let wcc = x.wcc(&k, &before);
    match r {
        Ok(_) => Res::Ok(wcc),
        Err(e) => Res::Fail(e, wcc),
    }
}

fn lookup(s: &NfsServer, req: &Req<'_>, a: DirOpArgs3) -> LookupRes {
    let (x, dk) = match scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    let r = (|| {
        name_ok(&x, &a.name)?;
        // The export boundary (seed entry 14): `..` of the export root is the root itself.
        if a.name.0 == b".." && x.is_root(&dk) {
            let at = x.fs().getattr(&x.ctx, &dk).map_err(st)?;
            x.fs().lookup(&x.ctx, &dk, b".").map_err(st)?; // search permission
            return Ok((dk.clone(), at));
        }
        let (k, at) = x.fs().lookup(&x.ctx, &dk, &a.name.0).map_err(st)?;
        // The attributes returned are the client's (as GETATTR's): a write delegation
        // in the way is recalled first.
        s.deleg_conflict(req, &k, Access::Read, false).map_err(st)?;
        Ok((k, at))
    })();
    match r {
        Ok((k, at)) => Res::Ok(LookupOk {
            object: x.fh(&k),
            obj_attributes: Some(fattr3(&at)),
            dir_attributes: x.post_op(&dk),
        }),
        Err(e) => Res::Fail(e, x.post_op(&dk)),
    }
}

fn access(s: &NfsServer, req: &Req<'_>, a: AccessArgs) -> AccessRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    match x.fs().access(&x.ctx, &k, a.access) {
        Ok(mut bits) => {
            if x.writable().is_err() {
                bits &= !(access::MODIFY | access::EXTEND | access::DELETE);
            }
            Res::Ok(AccessOk {
                obj_attributes: x.post_op(&k),
                access: bits,
            })
        }
        Err(e) => Res::Fail(st(e), x.post_op(&k)),
    }
}

fn readlink(s: &NfsServer, req: &Req<'_>, a: ReadlinkArgs) -> ReadlinkRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    match x.fs().readlink(&x.ctx, &k) {
        Ok(t) => match NfsPath3::new(t) {
            Ok(p) => Res::Ok(ReadlinkOk {
                symlink_attributes: x.post_op(&k),
                data: p,
            }),
            Err(_) => Res::Fail(Nfsstat3::NameTooLong, x.post_op(&k)),
        },
        Err(e) => Res::Fail(st(e), x.post_op(&k)),
    }
}

fn write(s: &NfsServer, req: &Req<'_>, a: WriteArgs) -> WriteRes {
    let (x, k) = match scope(s, req, &a.file) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&k);
    let r = (|| {
        x.writable().map_err(st)?;
        if a.data.0.len() > s.cfg.max_io as usize || (a.count as usize) > a.data.0.len() {
            return Err(Nfsstat3::Inval);
        }
        let data = &a.data.0[..a.count as usize];
        s.deleg_conflict(req, &k, Access::Write, false)
            .map_err(st)?;
        let stable = match a.stable {
            StableHow::Unstable => Stability::Unstable,
            StableHow::DataSync => Stability::DataSync,
            StableHow::FileSync => Stability::FileSync,
        };
        let got = x
            .fs()
            .write(&x.ctx, &k, a.offset, data, stable)
            .map_err(st)?;
        s.stats.bytes_written(data.len());
        Ok((data.len() as u32, got))
    })();
    let wcc = x.wcc(&k, &before);
    match r {
        Ok((count, got)) => Res::Ok(WriteOk {
            file_wcc: wcc,
            count,
            committed: match got {
                Stability::Unstable => StableHow::Unstable,
                Stability::DataSync => StableHow::DataSync,
                Stability::FileSync => StableHow::FileSync,
            },
            verf: OpaqueFixed(s.write_verf),
        }),
        Err(e) => Res::Fail(e, wcc),
    }
}

/// Shared shape of CREATE, MKDIR, SYMLINK and MKNOD.
fn make(
    s: &NfsServer,
    req: &Req<'_>,
    w: &DirOpArgs3,
    f: impl FnOnce(&Scope, &FileKey, &[u8]) -> Result<(FileKey, Attr), VfsError>,
) -> CreateRes {
    let (x, dk) = match scope(s, req, &w.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
        .map_err(st)
        .and_then(|()| name_ok(&x, &w.name))
        .and_then(|()| f(&x, &dk, &w.name.0).map_err(st));
    let dir_wcc = x.wcc(&dk, &before);
    match r {
        Ok((k, at)) => Res::Ok(CreateOk {
            obj: Some(x.fh(&k)),
            obj_attributes: Some(fattr3(&at)),
            dir_wcc,
        }),
        Err(e) => Res::Fail(e, dir_wcc),
    }
}

fn create(s: &NfsServer, req: &Req<'_>, a: CreateArgs) -> CreateRes {
    let how = match &a.how {
        CreateHow3::Unchecked(sa) => CreateMode::Unchecked(setattr(sa)),
        CreateHow3::Guarded(sa) => CreateMode::Guarded(setattr(sa)),
        CreateHow3::Exclusive(v) => CreateMode::Exclusive(v.0),
    };
    make(s, req, &a.where_, |x, d, n| {
        x.fs().create(&x.ctx, d, n, &how)
    })
}

fn mkdir(s: &NfsServer, req: &Req<'_>, a: MkdirArgs) -> CreateRes {
    make(s, req, &a.where_, |x, d, n| {
        x.fs().mkdir(&x.ctx, d, n, &setattr(&a.attributes))
    })
}

fn symlink(s: &NfsServer, req: &Req<'_>, a: SymlinkArgs) -> CreateRes {
    make(s, req, &a.where_, |x, d, n| {
        x.fs().symlink(
            &x.ctx,
            d,
            n,
            &a.symlink_data.0,
            &setattr(&a.symlink_attributes),
        )
    })
}

fn mknod(s: &NfsServer, req: &Req<'_>, a: MknodArgs) -> CreateRes {
    let (kind, sa) = match &a.what {
        MknodData3::Chr(sa, d) => (SpecialKind::Char(d.major, d.minor), sa),
        MknodData3::Blk(sa, d) => (SpecialKind::Block(d.major, d.minor), sa),
        MknodData3::Sock(sa) => (SpecialKind::Socket, sa),
        MknodData3::Fifo(sa) => (SpecialKind::Fifo, sa),
        MknodData3::Other(_) => {
            return make(s, req, &a.where_, |_, _, _| Err(VfsError::BadType));
        }
    };
    make(s, req, &a.where_, |x, d, n| {
        x.fs().mknod(&x.ctx, d, n, kind, &setattr(sa))
    })
}

fn remove(s: &NfsServer, req: &Req<'_>, a: DirOpArgs3, dir: bool) -> RemoveRes {
    let (x, dk) = match scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
        .map_err(st)
        .and_then(|()| name_ok(&x, &a.name))
        .and_then(|()| named_conflict(s, req, &x, &dk, &a.name))
        .and_then(|()| {
            if dir {
                x.fs().rmdir(&x.ctx, &dk, &a.name.0)
            } else {
                x.fs().remove(&x.ctx, &dk, &a.name.0)
            }
            .map_err(st)
        });
    let wcc = x.wcc(&dk, &before);
    match r {
        Ok(()) => Res::Ok(wcc),
        Err(e) => Res::Fail(e, wcc),
    }
}

/// The delegation conflict check for the file `name` of directory `dk` (REMOVE, RENAME):
/// the name and the attributes a delegation holder caches change. A name that is not
/// there is left to the operation to refuse.
fn named_conflict(
    s: &NfsServer,
    req: &Req<'_>,
    x: &Scope,
    dk: &FileKey,
    name: &Filename3,
) -> R<()> {
    match x.fs().lookup(&x.ctx, dk, &name.0) {
        Ok((k, _)) => s.deleg_conflict(req, &k, Access::Meta, false).map_err(st),
        Err(_) => Ok(()),
    }
}

fn rename(s: &NfsServer, req: &Req<'_>, a: RenameArgs) -> RenameRes {
    let (x, fk, tk) = match scope(s, req, &a.from.dir)
        .and_then(|(x, f)| Ok((key_in(s, req, &x, &a.to.dir)?, x, f)))
    {
        Ok((t, x, f)) => (x, f, t),
        Err(e) => return Res::Fail(e, RenameWcc::default()),
    };
    let (fb, tb) = (x.attr_of(&fk), x.attr_of(&tk));
    let r = x
        .writable()
        .map_err(st)
        .and_then(|()| name_ok(&x, &a.from.name))
        .and_then(|()| name_ok(&x, &a.to.name))
        .and_then(|()| named_conflict(s, req, &x, &fk, &a.from.name))
        .and_then(|()| named_conflict(s, req, &x, &tk, &a.to.name))
        .and_then(|()| {
            x.fs()
                .rename(&x.ctx, &fk, &a.from.name.0, &tk, &a.to.name.0)
                .map_err(st)
        });
    let w = RenameWcc {
        fromdir_wcc: x.wcc(&fk, &fb),
        todir_wcc: x.wcc(&tk, &tb),
    };
    match r {
        Ok(()) => Res::Ok(w),
        Err(e) => Res::Fail(e, w),
    }
}

fn link(s: &NfsServer, req: &Req<'_>, a: LinkArgs) -> LinkRes {
    let (x, k, dk) = match scope(s, req, &a.file)
        .and_then(|(x, k)| Ok((key_in(s, req, &x, &a.link.dir)?, x, k)))
    {
        Ok((d, x, k)) => (x, k, d),
        Err(e) => return Res::Fail(e, LinkWcc::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
        .map_err(st)
        .and_then(|()| name_ok(&x, &a.link.name))
        .and_then(|()| s.deleg_conflict(req, &k, Access::Meta, false).map_err(st))
        .and_then(|()| x.fs().link(&x.ctx, &k, &dk, &a.link.name.0).map_err(st));
    let w = LinkWcc {
        file_attributes: x.post_op(&k),
        linkdir_wcc: x.wcc(&dk, &before),
    };
    match r {
        Ok(()) => Res::Ok(w),
        Err(e) => Res::Fail(e, w),
    }
}

fn fsstat(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> FsstatRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    match x.fs().fsstat(&x.ctx, &k) {
        Ok(f) => Res::Ok(FsstatOk {
            obj_attributes: x.post_op(&k),
            tbytes: f.total_bytes,
            fbytes: f.free_bytes,
            abytes: f.avail_bytes,
            tfiles: f.total_files,
            ffiles: f.free_files,
            afiles: f.avail_files,
            invarsec: 0,
        }),
        Err(e) => Res::Fail(st(e), x.post_op(&k)),
    }
}

fn fsinfo(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> FsinfoRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    let attrs = match x.fs().getattr(&x.ctx, &k) {
        Ok(at) => at,
        Err(e) => return Res::Fail(st(e), None),
    };
    let lim = x.fs().limits();
    let io = s.cfg.max_io;
    Res::Ok(FsinfoOk {
        obj_attributes: Some(fattr3(&attrs)),
        rtmax: io,
        rtpref: io,
        rtmult: 4096,
        wtmax: io,
        wtpref: io,
        wtmult: 4096,
        dtpref: 64 * 1024,
        maxfilesize: lim.max_file_size,
        time_delta: NfsTime3 {
            seconds: 0,
            nseconds: lim.time_granularity_ns,
        },
        properties: fsf::LINK | fsf::SYMLINK | fsf::HOMOGENEOUS | fsf::CANSETTIME,
    })
}

fn pathconf(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> PathconfRes {
    let (x, k) = match scope(s, req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    let attrs = match x.fs().getattr(&x.ctx, &k) {
        Ok(at) => at,
        Err(e) => return Res::Fail(st(e), None),
    };
    let lim = x.fs().limits();
    Res::Ok(PathconfOk {
        obj_attributes: Some(fattr3(&attrs)),
        linkmax: lim.link_max,
        name_max: lim.name_max,
        no_trunc: true,
        chown_restricted: true,
        case_insensitive: false,
        case_preserving: true,
    })
}

fn commit(s: &NfsServer, req: &Req<'_>, a: CommitArgs) -> CommitRes {
    let (x, k) = match scope(s, req, &a.file) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&k);
    let r = x.fs().commit(&x.ctx, &k, a.offset, a.count);
    let wcc = x.wcc(&k, &before);
    match r {
        Ok(()) => Res::Ok(CommitOk {
            file_wcc: wcc,
            verf: OpaqueFixed(s.write_verf),
        }),
        Err(e) => Res::Fail(st(e), wcc),
    }
}
