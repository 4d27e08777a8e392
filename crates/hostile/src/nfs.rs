//! The answers: MOUNT and NFSv3 procedures over the scripted [`Tree`], as a normal server
//! would give them except where the tree lies. Free of I/O: a call's bytes in, a reply's
//! bytes out.
use crate::tree::{self, Content, Found, Kind, NodeId, Tree};
use crate::Mode;
use rnfs_proto::mount3::{self, MountRes, MountResOk};
use rnfs_proto::nfs3::{self as p3, *};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::message::{reply_error, reply_with, Call};
use rnfs_xdr::{from_bytes, OpaqueFixed, VarArray, Writer, Xdr, XdrString};

/// A file handle: a tag (0: a node of the tree, 1: a file of an endless listing) and a
/// number.
fn handle(f: Found) -> FileHandle3 {
    let (tag, n) = match f {
        Found::Node(id) => (0u8, id as u64),
        Found::Endless(n) => (1u8, n),
    };
    let mut v = vec![tag];
    v.extend_from_slice(&n.to_be_bytes());
    FileHandle3(v)
}

/// What a handle names, if it is one of ours.
fn found(fh: &FileHandle3, t: &Tree) -> Option<Found> {
    let (&tag, rest) = fh.0.split_first()?;
    let n = u64::from_be_bytes(rest.try_into().ok()?);
    match tag {
        0 => {
            let id = usize::try_from(n).ok()?;
            (id < t.nodes.len()).then_some(Found::Node(id))
        }
        1 => Some(Found::Endless(n)),
        _ => None,
    }
}

fn attr(t: &Tree, f: Found) -> Fattr3 {
    let (ftype, mode, size, fileid) = match f {
        Found::Endless(n) => (Ftype3::Reg, 0o644, 0, 1_000_000 + n),
        Found::Node(id) => {
            let fileid = id as u64 + 1;
            match &t.nodes[id].kind {
                Kind::Dir(_) => (Ftype3::Dir, 0o755, 4096, fileid),
                Kind::File(c) => (Ftype3::Reg, 0o644, c.size(), fileid),
                Kind::Link(target) => (Ftype3::Lnk, 0o777, target.len() as u64, fileid),
            }
        }
    };
    let time = NfsTime3 {
        seconds: 1_700_000_000,
        nseconds: 0,
    };
    Fattr3 {
        ftype,
        mode,
        nlink: if ftype == Ftype3::Dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        size,
        used: size,
        rdev: SpecData3::default(),
        fsid: 1,
        fileid,
        atime: time,
        mtime: time,
        ctime: time,
    }
}

fn node(f: Found) -> Option<NodeId> {
    match f {
        Found::Node(id) => Some(id),
        Found::Endless(_) => None,
    }
}

/// Answers one call; `None` drops it.
pub(crate) fn answer(t: &mut Tree, mode: Mode, call: &Call<'_>) -> Option<Vec<u8>> {
    let h = &call.header;
    let xid = h.xid;
    match (h.prog, h.vers) {
        (mount3::PROGRAM, mount3::VERSION) => Some(mount(t, xid, h.proc_)),
        (p3::PROGRAM, p3::VERSION) => Some(nfs(t, mode, xid, h.proc_, call.args)),
        (mount3::PROGRAM, _) | (p3::PROGRAM, _) => Some(reply_error(
            xid,
            ReplyStatus::ProgMismatch { low: 3, high: 3 },
        )),
        _ => Some(reply_error(xid, ReplyStatus::ProgUnavail)),
    }
}

fn mount(t: &Tree, xid: u32, proc_: u32) -> Vec<u8> {
    match mount3::Proc::from_u32(proc_) {
        Some(mount3::Proc::Null) | Some(mount3::Proc::Umnt) | Some(mount3::Proc::Umntall) => {
            reply_with(xid, &())
        }
        Some(mount3::Proc::Mnt) => {
            // Any path is the export, and its root is the tree's root.
            let _ = t;
            let ok = MountResOk {
                fhandle: handle(Found::Node(tree::ROOT)),
                auth_flavors: VarArray(vec![0, 1]),
            };
            reply_with(xid, &MountRes::Ok(ok))
        }
        _ => reply_error(xid, ReplyStatus::ProcUnavail),
    }
}

/// Decodes the arguments or answers GARBAGE_ARGS.
macro_rules! args {
    ($ty:ty, $xid:expr, $bytes:expr) => {
        match from_bytes::<$ty>($bytes) {
            Ok(a) => a,
            Err(_) => return reply_error($xid, ReplyStatus::GarbageArgs),
        }
    };
}

fn nfs(t: &mut Tree, mode: Mode, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let Some(p) = Proc::from_u32(proc_) else {
        return reply_error(xid, ReplyStatus::ProcUnavail);
    };
    match p {
        Proc::Null => reply_with(xid, &()),
        Proc::Getattr => {
            let a = args!(GetattrArgs, xid, args);
            let r: GetattrRes = match found(&a.object, t) {
                Some(f) => Res::Ok(attr(t, f)),
                None => Res::Fail(Nfsstat3::Stale, ()),
            };
            reply_with(xid, &r)
        }
        Proc::Lookup => {
            let a = args!(DirOpArgs3, xid, args);
            let dir = found(&a.dir, t);
            let r: LookupRes = match dir.and_then(node) {
                Some(d) => match t.lookup(d, &a.name.0) {
                    Some(f) => Res::Ok(LookupOk {
                        object: handle(f),
                        obj_attributes: Some(attr(t, f)),
                        dir_attributes: Some(attr(t, Found::Node(d))),
                    }),
                    None => Res::Fail(Nfsstat3::NoEnt, None),
                },
                None => Res::Fail(Nfsstat3::NotDir, None),
            };
            reply_with(xid, &r)
        }
        Proc::Access => {
            let a = args!(AccessArgs, xid, args);
            let r: AccessRes = match found(&a.object, t) {
                Some(f) => Res::Ok(AccessOk {
                    obj_attributes: Some(attr(t, f)),
                    access: a.access,
                }),
                None => Res::Fail(Nfsstat3::Stale, None),
            };
            reply_with(xid, &r)
        }
        Proc::Readlink => {
            let a = args!(ReadlinkArgs, xid, args);
            let f = found(&a.object, t);
            let r: ReadlinkRes = match f.and_then(node).map(|id| &t.nodes[id].kind) {
                Some(Kind::Link(target)) => Res::Ok(ReadlinkOk {
                    symlink_attributes: f.map(|f| attr(t, f)),
                    data: XdrString(target.clone()),
                }),
                _ => Res::Fail(Nfsstat3::Inval, None),
            };
            reply_with(xid, &r)
        }
        Proc::Read => {
            let a = args!(ReadArgs, xid, args);
            let f = found(&a.file, t);
            let r: ReadRes = match f.map(|f| (f, node(f).map(|id| &t.nodes[id].kind))) {
                Some((f, Some(Kind::File(c)))) => {
                    let (data, eof) = c.read(a.offset, a.count.min(1 << 20));
                    Res::Ok(ReadOk {
                        file_attributes: Some(attr(t, f)),
                        count: data.len() as u32,
                        eof,
                        data: Data(data),
                    })
                }
                Some((f, None)) => {
                    let (data, eof) = Content::Bytes(Vec::new()).read(a.offset, a.count);
                    Res::Ok(ReadOk {
                        file_attributes: Some(attr(t, f)),
                        count: 0,
                        eof,
                        data: Data(data),
                    })
                }
                Some((_, Some(Kind::Dir(_)))) => Res::Fail(Nfsstat3::IsDir, None),
                Some((_, Some(Kind::Link(_)))) => Res::Fail(Nfsstat3::Inval, None),
                None => Res::Fail(Nfsstat3::Stale, None),
            };
            reply_with(xid, &r)
        }
        Proc::Readdir | Proc::Readdirplus => {
            let (dir, cookie) = if p == Proc::Readdir {
                let a = args!(ReaddirArgs, xid, args);
                (a.dir, a.cookie)
            } else {
                let a = args!(ReaddirplusArgs, xid, args);
                (a.dir, a.cookie)
            };
            let d = found(&dir, t).and_then(node);
            let listing = match d.map(|id| &t.nodes[id].kind) {
                Some(Kind::Dir(l)) => l.clone(),
                Some(_) => return reply_with(xid, &ReaddirRes::Fail(Nfsstat3::NotDir, None)),
                None => return reply_with(xid, &ReaddirRes::Fail(Nfsstat3::Stale, None)),
            };
            let (entries, eof) = tree::list(&listing, cookie);
            let dir_attributes = d.map(|id| attr(t, Found::Node(id)));
            let cookieverf = OpaqueFixed([0; 8]);
            let fileid = |f: Found| attr(t, f).fileid;
            if p == Proc::Readdir {
                let entries = entries
                    .into_iter()
                    .map(|(name, f, cookie)| Entry3 {
                        fileid: fileid(f),
                        name: XdrString(name),
                        cookie,
                    })
                    .collect();
                let r: ReaddirRes = Res::Ok(ReaddirOk {
                    dir_attributes,
                    cookieverf,
                    entries,
                    eof,
                });
                reply_with(xid, &r)
            } else {
                let entries = entries
                    .into_iter()
                    .map(|(name, f, cookie)| EntryPlus3 {
                        fileid: fileid(f),
                        name: XdrString(name),
                        cookie,
                        name_attributes: Some(attr(t, f)),
                        name_handle: Some(handle(f)),
                    })
                    .collect();
                let r: ReaddirplusRes = Res::Ok(ReaddirplusOk {
                    dir_attributes,
                    cookieverf,
                    entries,
                    eof,
                });
                reply_with(xid, &r)
            }
        }
        Proc::Fsstat => {
            let (tbytes, fbytes, abytes, tfiles, ffiles, afiles) = if mode == Mode::AbsurdFsstat {
                // Free more than total, available more than free.
                (1 << 20, 1 << 30, 1 << 40, 10, 1000, 100_000)
            } else {
                (1 << 30, 1 << 29, 1 << 29, 1000, 500, 500)
            };
            let r: FsstatRes = Res::Ok(FsstatOk {
                obj_attributes: None,
                tbytes,
                fbytes,
                abytes,
                tfiles,
                ffiles,
                afiles,
                invarsec: 0,
            });
            reply_with(xid, &r)
        }
        Proc::Fsinfo => {
            let r: FsinfoRes = Res::Ok(FsinfoOk {
                obj_attributes: Some(attr(t, Found::Node(tree::ROOT))),
                rtmax: 1 << 20,
                rtpref: 1 << 20,
                rtmult: 4096,
                wtmax: 1 << 20,
                wtpref: 1 << 20,
                wtmult: 4096,
                dtpref: 32 << 10,
                maxfilesize: u64::MAX,
                time_delta: NfsTime3 {
                    seconds: 0,
                    nseconds: 1,
                },
                properties: fsf::LINK | fsf::SYMLINK | fsf::HOMOGENEOUS | fsf::CANSETTIME,
            });
            reply_with(xid, &r)
        }
        Proc::Pathconf => {
            let r: PathconfRes = Res::Ok(PathconfOk {
                obj_attributes: None,
                linkmax: 32000,
                name_max: 255,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            });
            reply_with(xid, &r)
        }
        // Everything that would change the tree: a read-only file system. The failure
        // bodies are empty weak cache consistency data (one per directory for RENAME,
        // attributes and one for LINK).
        _ => {
            let mut w = Writer::new();
            Nfsstat3::Rofs.encode(&mut w);
            let empty = match p {
                Proc::Rename => 4,
                Proc::Link => 3,
                _ => 2,
            };
            for _ in 0..empty {
                w.bool(false);
            }
            let mut r = rnfs_rpc::message::reply_success(xid, w.len());
            r.raw(w.as_slice());
            r.into_inner()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader};
    use rnfs_xdr::Reader;

    fn call<A: Xdr>(t: &mut Tree, prog: u32, proc_: u32, args: &A) -> Vec<u8> {
        let mut w = Writer::new();
        CallHeader {
            xid: 9,
            rpcvers: 2,
            prog,
            vers: 3,
            proc_,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        args.encode(&mut w);
        let msg = w.into_inner();
        let c = rnfs_rpc::message::decode_call(&msg).unwrap();
        answer(t, Mode::Plain, &c).unwrap()
    }

    fn results<T: Xdr>(reply: &[u8]) -> T {
        let mut r = Reader::new(reply);
        ReplyHeader::decode(&mut r).unwrap();
        T::decode(&mut r).unwrap()
    }

    #[test]
    fn mount_lookup_read_and_list_like_a_server() {
        let mut t = Tree::for_mode(Mode::Plain);
        let root = match results::<MountRes>(&call(
            &mut t,
            mount3::PROGRAM,
            1,
            &XdrString::<1024>(b"/".to_vec()),
        )) {
            MountRes::Ok(ok) => ok.fhandle,
            other => panic!("{other:?}"),
        };
        let top = match results::<LookupRes>(&call(
            &mut t,
            p3::PROGRAM,
            Proc::Lookup as u32,
            &DirOpArgs3 {
                dir: root,
                name: XdrString(b"top".to_vec()),
            },
        )) {
            Res::Ok(ok) => ok.object,
            other => panic!("{other:?}"),
        };
        let args = ReaddirplusArgs {
            dir: top,
            cookie: 0,
            cookieverf: OpaqueFixed([0; 8]),
            dircount: 4096,
            maxcount: 32768,
        };
        let list = match results::<ReaddirplusRes>(&call(&mut t, p3::PROGRAM, 17, &args)) {
            Res::Ok(ok) => ok,
            other => panic!("{other:?}"),
        };
        let names: Vec<_> = list.entries.iter().map(|e| e.name.0.clone()).collect();
        assert_eq!(
            names,
            [b"a.txt".to_vec(), b"sub".to_vec(), b"link".to_vec()]
        );
        assert!(!list.eof);
        let a = list.entries[0].name_handle.clone().unwrap();
        let r = ReadArgs {
            file: a,
            offset: 0,
            count: 100,
        };
        match results::<ReadRes>(&call(&mut t, p3::PROGRAM, 6, &r)) {
            Res::Ok(ok) => assert_eq!((ok.data.0, ok.eof), (b"hello\n".to_vec(), true)),
            other => panic!("{other:?}"),
        }
    }
}
