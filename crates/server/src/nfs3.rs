//! The NFSv3 procedures (RFC 1813 section 3.3), one function each. Each takes decoded
//! arguments and returns the procedure's result type; [`dispatch`] does the decoding and
//! encoding around them.
use crate::attr::{fattr3, setattr, time_from3, wcc_attr};
use crate::{handle, status, NfsServer, Req, Scope};
use rnfs_proto::nfs3::*;
use rnfs_proto::rpc::{ReplyHeader, ReplyStatus};
use rnfs_rpc::message::{reply_error, reply_with};
use rnfs_rpc::transport::Service;
use rnfs_vfs::{cookie, Attr, CreateMode, FileKey, ReadDone, SpecialKind, Stability, VfsError};
use rnfs_xdr::{OpaqueFixed, Writer, Xdr};

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
        Proc::Read => read_reply(s, req, xid, args),
        Proc::Write => run(xid, args, |a| write(s, req, a)),
        Proc::Create => run(xid, args, |a| create(s, req, a)),
        Proc::Mkdir => run(xid, args, |a| mkdir(s, req, a)),
        Proc::Symlink => run(xid, args, |a| symlink(s, req, a)),
        Proc::Mknod => run(xid, args, |a| mknod(s, req, a)),
        Proc::Remove => run(xid, args, |a| remove(s, req, a, false)),
        Proc::Rmdir => run(xid, args, |a| remove(s, req, a, true)),
        Proc::Rename => run(xid, args, |a| rename(s, req, a)),
        Proc::Link => run(xid, args, |a| link(s, req, a)),
        Proc::Readdir => run(xid, args, |a| readdir(s, req, a)),
        Proc::Readdirplus => run(xid, args, |a| readdirplus(s, req, a)),
        Proc::Fsstat => run(xid, args, |a| fsstat(s, req, a)),
        Proc::Fsinfo => run(xid, args, |a| fsinfo(s, req, a)),
        Proc::Pathconf => run(xid, args, |a| pathconf(s, req, a)),
        Proc::Commit => run(xid, args, |a| commit(s, req, a)),
    }
}

type R<T> = Result<T, Nfsstat3>;

impl Scope {
    fn fs(&self) -> &dyn rnfs_vfs::Backend {
        &*self.export.fs
    }
    fn fh(&self, key: &FileKey) -> FileHandle3 {
        handle::encode(&self.export, key)
    }
    fn attr_of(&self, key: &FileKey) -> Option<Attr> {
        self.fs().getattr(&self.ctx, key).ok()
    }
    fn post_op(&self, key: &FileKey) -> PostOpAttr {
        self.attr_of(key).as_ref().map(fattr3)
    }
    fn wcc(&self, key: &FileKey, before: &Option<Attr>) -> WccData {
        WccData {
            before: before.as_ref().map(wcc_attr),
            after: self.post_op(key),
        }
    }
    fn writable(&self) -> R<()> {
        if !self.rw {
            return Err(Nfsstat3::Rofs);
        }
        Ok(())
    }
    fn is_root(&self, key: &FileKey) -> bool {
        *key == self.export.fs.root()
    }
}

fn st(e: VfsError) -> Nfsstat3 {
    status::nfs3(e)
}

/// Checks a name from the wire: NAMETOOLONG past the limit, ACCES/INVAL for what cannot be
/// a single component.
fn name_ok(x: &Scope, n: &Filename3) -> R<()> {
    rnfs_vfs::check_name(&n.0, x.fs().limits().name_max).map_err(st)
}

fn getattr(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> GetattrRes {
    let r = (|| {
        let (x, k) = s.scope(req, &a.object)?;
        x.fs().getattr(&x.ctx, &k).map_err(st)
    })();
    match r {
        Ok(at) => Res::Ok(fattr3(&at)),
        Err(e) => Res::Fail(e, ()),
    }
}

fn setattr_(s: &NfsServer, req: &Req<'_>, a: SetattrArgs) -> SetattrRes {
    let (x, k) = match s.scope(req, &a.object) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&k);
    let r = x.writable().and_then(|()| {
        x.fs()
            .setattr(
                &x.ctx,
                &k,
                &setattr(&a.new_attributes),
                a.guard.map(time_from3),
            )
            .map_err(st)
    });
    let wcc = x.wcc(&k, &before);
    match r {
        Ok(_) => Res::Ok(wcc),
        Err(e) => Res::Fail(e, wcc),
    }
}

fn lookup(s: &NfsServer, req: &Req<'_>, a: DirOpArgs3) -> LookupRes {
    let (x, dk) = match s.scope(req, &a.dir) {
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
        x.fs().lookup(&x.ctx, &dk, &a.name.0).map_err(st)
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
    let (x, k) = match s.scope(req, &a.object) {
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
    let (x, k) = match s.scope(req, &a.object) {
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

/// READ, with the reply encoded here rather than through [`ReadRes`]: the backend reads
/// the data straight into the reply message at its final place, so a READ costs one
/// buffer of the right size and no zeroing or copying of the data in user space.
fn read_reply(s: &NfsServer, req: &Req<'_>, xid: u32, args: &[u8]) -> Vec<u8> {
    let (x, k, a, count) = match read_args(s, req, xid, args) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let (mut buf, head_at) = read_buffer(s, xid, count);
    let done = match x.fs().read_into(&x.ctx, &k, a.offset, count, &mut buf) {
        Ok(d) => d,
        Err(e) => return reply_with(xid, &ReadRes::Fail(st(e), x.post_op(&k))),
    };
    let attr = done.attr.or_else(|| x.attr_of(&k));
    read_done(s, xid, buf, head_at, count, done.eof, attr)
}

/// READ on a connection's task, only if it need not wait (see
/// [`rnfs_vfs::Backend::try_read_into`]): the reply [`read_reply`] would give, or `None`
/// when the backend would have to wait (or failed: the error reply carries attributes got
/// by a call that may wait), and the READ must run on the pool.
pub(crate) fn try_read_reply(
    s: &NfsServer,
    req: &Req<'_>,
    xid: u32,
    args: &[u8],
) -> Option<Vec<u8>> {
    // Undecodable arguments and refused handles are answered without the backend.
    let (x, k, a, count) = match read_args(s, req, xid, args) {
        Ok(v) => v,
        Err(reply) => return Some(reply),
    };
    let (mut buf, head_at) = read_buffer(s, xid, count);
    match x.fs().try_read_into(&x.ctx, &k, a.offset, count, &mut buf) {
        Some(Ok(ReadDone {
            eof,
            attr: Some(attr),
        })) => Some(read_done(s, xid, buf, head_at, count, eof, Some(attr))),
        _ => {
            s.recycle(buf);
            None
        }
    }
}

/// Between the RPC header and the data of a READ reply: status, post_op_attr with
/// attributes, count, eof, the data's length.
const READ_FIXED: usize = 4 + (4 + 84) + 4 + 4 + 4;
/// Bytes of an accepted-success RPC reply header with an AUTH_NONE verifier.
const RPC_REPLY_HEADER: usize = 24;

/// The arguments of a READ, its export and file, and the count to read; or the reply that
/// refuses it.
fn read_args(
    s: &NfsServer,
    req: &Req<'_>,
    xid: u32,
    args: &[u8],
) -> Result<(Scope, FileKey, ReadArgs, u32), Vec<u8>> {
    let a = match rnfs_xdr::from_bytes::<ReadArgs>(args) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(xid, error = %e, "undecodable arguments");
            return Err(reply_error(xid, ReplyStatus::GarbageArgs));
        }
    };
    let (x, k) = match s.scope(req, &a.file) {
        Ok(v) => v,
        Err(e) => return Err(reply_with(xid, &ReadRes::Fail(e, None))),
    };
    let count = a.count.min(s.cfg.max_io);
    Ok((x, k, a, count))
}

/// The buffer of a READ reply of up to `count` bytes: the RPC header written, room for
/// the fixed part, the data to be appended; and where the fixed part starts.
fn read_buffer(s: &NfsServer, xid: u32, count: u32) -> (Vec<u8>, usize) {
    // From the server's pool of recycled reply buffers: their pages are mapped already, so
    // the data lands in memory that needs no page faults (fresh 1 MiB allocations cost
    // ~30% of the READ path's CPU; docs/performance.md).
    let len = RPC_REPLY_HEADER + READ_FIXED + count as usize + 3;
    let mut w = Writer::from_vec(s.reply_buffer(len));
    ReplyHeader::success(xid).encode(&mut w);
    let mut buf = w.into_inner();
    let head_at = buf.len();
    buf.resize(head_at + READ_FIXED, 0);
    (buf, head_at)
}

/// Completes the READ reply in `buf` (see [`read_buffer`]) once the data is appended.
fn read_done(
    s: &NfsServer,
    xid: u32,
    mut buf: Vec<u8>,
    head_at: usize,
    count: u32,
    eof: bool,
    attr: Option<Attr>,
) -> Vec<u8> {
    let n = buf.len() - head_at - READ_FIXED;
    // The backend reads at most `count` bytes; anything else is a backend bug, which must
    // not put a wrong length on the wire.
    let Some(n32) = u32::try_from(n).ok().filter(|&v| v <= count) else {
        tracing::error!(xid, n, count, "backend returned more than asked");
        return reply_with(xid, &ReadRes::Fail(Nfsstat3::ServerFault, None));
    };
    s.stats.bytes_read(n);
    let mut head = Writer::with_capacity(READ_FIXED);
    head.u32(0); // NFS3_OK
    attr.as_ref().map(fattr3).encode(&mut head);
    head.u32(n32);
    head.bool(eof);
    head.u32(n32);
    let head = head.into_inner();
    if head.len() == READ_FIXED {
        buf[head_at..head_at + READ_FIXED].copy_from_slice(&head);
    } else {
        // No attributes to return: the header is shorter and the data moves up.
        buf.splice(head_at..head_at + READ_FIXED, head);
    }
    buf.extend_from_slice(&[0u8; 3][..rnfs_xdr::padding(n)]);
    buf
}

fn write(s: &NfsServer, req: &Req<'_>, a: WriteArgs) -> WriteRes {
    let (x, k) = match s.scope(req, &a.file) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&k);
    let r = (|| {
        x.writable()?;
        if a.data.0.len() > s.cfg.max_io as usize || (a.count as usize) > a.data.0.len() {
            return Err(Nfsstat3::Inval);
        }
        let data = &a.data.0[..a.count as usize];
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
    let (x, dk) = match s.scope(req, &w.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
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
    let (x, dk) = match s.scope(req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, WccData::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
        .and_then(|()| name_ok(&x, &a.name))
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

fn rename(s: &NfsServer, req: &Req<'_>, a: RenameArgs) -> RenameRes {
    let (x, fk, tk) = match s
        .scope(req, &a.from.dir)
        .and_then(|(x, f)| Ok((s.key_in(req, &x, &a.to.dir)?, x, f)))
    {
        Ok((t, x, f)) => (x, f, t),
        Err(e) => return Res::Fail(e, RenameWcc::default()),
    };
    let (fb, tb) = (x.attr_of(&fk), x.attr_of(&tk));
    let r = x
        .writable()
        .and_then(|()| name_ok(&x, &a.from.name))
        .and_then(|()| name_ok(&x, &a.to.name))
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
    let (x, k, dk) = match s
        .scope(req, &a.file)
        .and_then(|(x, k)| Ok((s.key_in(req, &x, &a.link.dir)?, x, k)))
    {
        Ok((d, x, k)) => (x, k, d),
        Err(e) => return Res::Fail(e, LinkWcc::default()),
    };
    let before = x.attr_of(&dk);
    let r = x
        .writable()
        .and_then(|()| name_ok(&x, &a.link.name))
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

/// The cookie verifier of a directory: cookies are name hashes and never go stale, so the
/// verifier only ties a cookie to the directory (and cookie scheme) it came from.
fn cookieverf(dir: &Attr) -> CookieVerf3 {
    let v = dir.fileid ^ 0x726e_6673_636b_0001; // "rnfsck" + scheme 1
    OpaqueFixed(v.to_be_bytes())
}

/// One entry of a listing, before encoding.
struct Listed {
    name: Vec<u8>,
    fileid: u64,
    cookie: u64,
    plus: Option<(FileKey, Attr)>,
}

/// Collects `.`, `..` and backend entries after `cookie`, while `fits` accepts them.
fn list(
    x: &Scope,
    dk: &FileKey,
    dir: &Attr,
    cookie: u64,
    verf: &CookieVerf3,
    plus: bool,
    mut fits: impl FnMut(&Listed) -> bool,
) -> R<(Vec<Listed>, bool)> {
    if cookie != 0 && verf.0 != [0; 8] && *verf != cookieverf(dir) {
        return Err(Nfsstat3::BadCookie);
    }
    if dir.ftype != rnfs_vfs::FileType::Directory {
        return Err(Nfsstat3::NotDir);
    }
    let fs = x.fs();
    let mut out = Vec::new();
    if cookie < cookie::DOT {
        let l = Listed {
            name: b".".to_vec(),
            fileid: dir.fileid,
            cookie: cookie::DOT,
            plus: Some((dk.clone(), dir.clone())),
        };
        if !fits(&l) {
            return Ok((out, false));
        }
        out.push(l);
    }
    if cookie < cookie::DOTDOT {
        // `..` of the export root is the root itself (seed entry 14).
        let (pk, pa) = if x.is_root(dk) {
            (dk.clone(), dir.clone())
        } else {
            fs.parent(&x.ctx, dk).map_err(st)?
        };
        let l = Listed {
            name: b"..".to_vec(),
            fileid: pa.fileid,
            cookie: cookie::DOTDOT,
            plus: Some((pk, pa)),
        };
        if !fits(&l) {
            return Ok((out, false));
        }
        out.push(l);
    }
    let mut after = cookie.max(cookie::DOTDOT);
    loop {
        let page = fs.readdir(&x.ctx, dk, after, 256, plus).map_err(st)?;
        for e in page.entries {
            let l = Listed {
                name: e.name,
                fileid: e.fileid,
                cookie: e.cookie,
                plus: e.plus,
            };
            after = l.cookie;
            if !fits(&l) {
                return Ok((out, false));
            }
            out.push(l);
        }
        if page.eof {
            return Ok((out, true));
        }
    }
}

fn entry_name(n: Vec<u8>) -> Filename3 {
    rnfs_xdr::XdrString(n)
}

/// The scope, key and attributes of the directory a listing reads.
fn dir_scope(s: &NfsServer, req: &Req<'_>, fh: &FileHandle3) -> R<(Scope, FileKey, Attr)> {
    let (x, dk) = s.scope(req, fh)?;
    let dir = x.fs().getattr(&x.ctx, &dk).map_err(st)?;
    Ok((x, dk, dir))
}

fn readdir(s: &NfsServer, req: &Req<'_>, a: ReaddirArgs) -> ReaddirRes {
    let (x, dk, dir) = match dir_scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    // Reply: status, post_op_attr, verifier, entries, end marker, eof.
    let budget = (a.count.min(s.cfg.max_io) as usize).max(256);
    let mut used = 4 + 4 + 84 + 8 + 4 + 4;
    let r = list(&x, &dk, &dir, a.cookie, &a.cookieverf, false, |l| {
        let sz = 4 + 8 + 4 + l.name.len().div_ceil(4) * 4 + 8;
        used += sz;
        used <= budget
    });
    match r {
        Ok((entries, eof)) => {
            if entries.is_empty() && !eof {
                return Res::Fail(Nfsstat3::TooSmall, Some(fattr3(&dir)));
            }
            Res::Ok(ReaddirOk {
                dir_attributes: Some(fattr3(&dir)),
                cookieverf: cookieverf(&dir),
                entries: entries
                    .into_iter()
                    .map(|l| Entry3 {
                        fileid: l.fileid,
                        name: entry_name(l.name),
                        cookie: l.cookie,
                    })
                    .collect(),
                eof,
            })
        }
        Err(e) => Res::Fail(e, Some(fattr3(&dir))),
    }
}

fn readdirplus(s: &NfsServer, req: &Req<'_>, a: ReaddirplusArgs) -> ReaddirplusRes {
    let (x, dk, dir) = match dir_scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    let budget = (a.maxcount.min(s.cfg.max_io) as usize).max(256);
    let dbudget = (a.dircount as usize).max(64);
    let (mut used, mut dused) = (4 + 4 + 84 + 8 + 4 + 4, 0usize);
    let r = list(&x, &dk, &dir, a.cookie, &a.cookieverf, true, |l| {
        let d = 8 + 4 + l.name.len().div_ceil(4) * 4 + 8;
        let attrs = if l.plus.is_some() {
            4 + 84 + 4 + 4 + 64
        } else {
            4 + 4
        };
        used += 4 + d + attrs;
        dused += d;
        used <= budget && dused <= dbudget
    });
    match r {
        Ok((entries, eof)) => {
            if entries.is_empty() && !eof {
                return Res::Fail(Nfsstat3::TooSmall, Some(fattr3(&dir)));
            }
            let entries = entries
                .into_iter()
                .map(|l| {
                    let (h, at) = match l.plus {
                        Some((k, at)) => (Some(x.fh(&k)), Some(fattr3(&at))),
                        None => (None, None),
                    };
                    EntryPlus3 {
                        fileid: l.fileid,
                        name: entry_name(l.name),
                        cookie: l.cookie,
                        name_attributes: at,
                        name_handle: h,
                    }
                })
                .collect();
            Res::Ok(ReaddirplusOk {
                dir_attributes: Some(fattr3(&dir)),
                cookieverf: cookieverf(&dir),
                entries,
                eof,
            })
        }
        Err(e) => Res::Fail(e, Some(fattr3(&dir))),
    }
}

fn fsstat(s: &NfsServer, req: &Req<'_>, a: GetattrArgs) -> FsstatRes {
    let (x, k) = match s.scope(req, &a.object) {
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
    let (x, k) = match s.scope(req, &a.object) {
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
    let (x, k) = match s.scope(req, &a.object) {
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
    let (x, k) = match s.scope(req, &a.file) {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Export, ServerConfig};
    use rnfs_rpc::message::Auth;
    use rnfs_rpc::transport::ConnInfo;
    use rnfs_vfs::{Backend, Ctx};
    use std::sync::Arc;

    fn test_conn() -> ConnInfo {
        ConnInfo {
            id: rnfs_rpc::transport::ConnId::next(),
            peer: "127.0.0.1:700".parse().unwrap(),
            local: "127.0.0.1:2049".parse().unwrap(),
        }
    }

    /// A file `f` holding `data` (with LocalFs: its descriptor cached and its data in the
    /// page cache).
    fn file_with(fs: &dyn Backend, data: &[u8]) -> FileKey {
        let ctx = Ctx::default();
        let (k, _) = fs
            .create(
                &ctx,
                &fs.root(),
                b"f",
                &CreateMode::Unchecked(Default::default()),
            )
            .unwrap();
        fs.write(&ctx, &k, 0, data, Stability::Unstable).unwrap();
        k
    }

    fn read_args(fh: &FileHandle3, offset: u64, count: u32) -> Vec<u8> {
        rnfs_xdr::to_bytes(&ReadArgs {
            file: fh.clone(),
            offset,
            count,
        })
    }

    /// The hand-encoded READ reply is byte for byte what encoding a [`ReadRes`] gives.
    #[test]
    fn read_reply_matches_the_generic_encoding() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let ctx = Ctx::default();
        let k = file_with(&*fs, b"0123456789");
        let s = NfsServer::new(Export::new(1, "/", fs.clone()), ServerConfig::default());
        let conn = test_conn();
        let req = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: None,
        };
        let fh = s.exports().exports[0].clone();
        let fh = handle::encode(&fh, &k);
        for (offset, count) in [
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 3),
            (0, 4),
            (3, 5),
            (8, 100),
            (50, 4),
        ] {
            let args = read_args(&fh, offset, count);
            let got = read_reply(&s, &req, 7, &args);
            let (data, eof) = fs.read(&ctx, &k, offset, count).unwrap();
            let want = reply_with(
                7,
                &ReadRes::Ok(ReadOk {
                    file_attributes: Some(fattr3(&fs.getattr(&ctx, &k).unwrap())),
                    count: data.len() as u32,
                    eof,
                    data: Data(data),
                }),
            );
            assert_eq!(got, want, "offset {offset} count {count}");
        }
        // A failure is the generic failure reply.
        let args = read_args(&handle::encode(&s.exports().exports[0], &fs.root()), 0, 10);
        let got = read_reply(&s, &req, 8, &args);
        let at = fs.getattr(&ctx, &fs.root()).unwrap();
        assert_eq!(
            got,
            reply_with(8, &ReadRes::Fail(Nfsstat3::IsDir, Some(fattr3(&at))))
        );
        assert_eq!(
            read_reply(&s, &req, 9, &[1, 2]),
            reply_error(9, ReplyStatus::GarbageArgs)
        );
    }

    /// A READ tried inline gives exactly the reply of the pool's READ when the backend
    /// reads without waiting, and nothing when it cannot tell.
    #[test]
    fn a_read_tried_inline_gives_the_pool_reply_or_nothing() {
        let conn = test_conn();
        let req = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: None,
        };
        let ctx = Ctx::default();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        // The reply without the access time, which a read may move.
        let decoded = |reply: &[u8]| {
            let mut r = rnfs_xdr::from_bytes::<ReadRes>(&reply[RPC_REPLY_HEADER..]).unwrap();
            if let Res::Ok(ok) = &mut r {
                if let Some(a) = &mut ok.file_attributes {
                    a.atime = Default::default();
                }
            }
            r
        };

        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir.path(), false).unwrap());
        let k = file_with(&*fs, &data);
        let s = NfsServer::new(Export::new(1, "/", fs.clone()), ServerConfig::default());
        let fh = handle::encode(&s.exports().exports[0], &k);
        let mut tried = 0;
        for (offset, count) in [(0, 4096), (1, 3), (9_999, 10), (10_000, 1), (20_000, 5)] {
            let a = read_args(&fh, offset, count);
            let want = read_reply(&s, &req, 7, &a);
            if let Some(got) = try_read_reply(&s, &req, 7, &a) {
                assert_eq!(decoded(&got), decoded(&want), "offset {offset}");
                tried += 1;
            }
        }
        // Where the file system answers RWF_NOWAIT reads (ext4, xfs; not tmpfs), cached
        // data is always answered inline.
        let mut probe = Vec::new();
        if fs.try_read_into(&ctx, &k, 0, 1, &mut probe).is_some() {
            assert_eq!(tried, 5, "every READ of cached data answered inline");
        } else {
            eprintln!("the temporary directory's file system has no RWF_NOWAIT reads: {tried} of 5 inline");
        }
        // Refusals need no backend: answered as the pool would.
        let mut forged = fh.clone();
        if let Some(b) = forged.0.last_mut() {
            *b ^= 1; // the check value no longer matches
        }
        let a = read_args(&forged, 0, 1);
        assert_eq!(
            try_read_reply(&s, &req, 8, &a),
            Some(read_reply(&s, &req, 8, &a))
        );
        assert_eq!(
            try_read_reply(&s, &req, 9, &[1, 2]),
            Some(reply_error(9, ReplyStatus::GarbageArgs))
        );

        // A backend that cannot tell (here the memory backend, not declared as never
        // waiting): every READ goes to the pool.
        let mem = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let k = file_with(&*mem, &data);
        let s = NfsServer::new(Export::new(1, "/", mem), ServerConfig::default());
        let fh = handle::encode(&s.exports().exports[0], &k);
        assert_eq!(try_read_reply(&s, &req, 7, &read_args(&fh, 0, 4096)), None);
    }
}
