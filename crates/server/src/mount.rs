//! MOUNT v3 procedures (RFC 1813 appendix I).
use crate::{handle, status, NfsServer};
use rnfs_proto::mount3::*;
use rnfs_proto::rpc::{ReplyStatus, AUTH_SYS};
use rnfs_rpc::message::{reply_error, reply_success, reply_with};
use rnfs_rpc::transport::ConnInfo;
use rnfs_vfs::{Ctx, FileType};
use rnfs_xdr::VarArray;

/// Decodes, runs and encodes one MOUNT call.
pub fn dispatch(
    s: &NfsServer,
    conn: &ConnInfo,
    ctx: &Ctx,
    xid: u32,
    proc_: Proc,
    args: &[u8],
) -> Vec<u8> {
    let garbage = || reply_error(xid, ReplyStatus::GarbageArgs);
    match proc_ {
        Proc::Null => match rnfs_xdr::from_bytes::<()>(args) {
            Ok(()) => reply_with(xid, &()),
            Err(_) => garbage(),
        },
        Proc::Mnt => match rnfs_xdr::from_bytes::<DirPath>(args) {
            Ok(path) => {
                let res = mnt(s, ctx, &path.0);
                if let MountRes::Ok(_) = res {
                    s.mounts
                        .lock()
                        .insert((conn.peer.ip(), path.lossy().into_owned()));
                }
                reply_with(xid, &res)
            }
            Err(_) => garbage(),
        },
        Proc::Dump => {
            let list: Vec<MountBody> = s
                .mounts
                .lock()
                .iter()
                .filter_map(|(ip, p)| {
                    Some(MountBody {
                        hostname: Name::new(ip.to_string()).ok()?,
                        directory: DirPath::new(p.clone()).ok()?,
                    })
                })
                .collect();
            let mut w = reply_success(xid, 64 * list.len());
            rnfs_proto::encode_list(&list, &mut w);
            w.into_inner()
        }
        Proc::Umnt => match rnfs_xdr::from_bytes::<DirPath>(args) {
            Ok(path) => {
                s.mounts
                    .lock()
                    .remove(&(conn.peer.ip(), path.lossy().into_owned()));
                reply_with(xid, &())
            }
            Err(_) => garbage(),
        },
        Proc::Umntall => {
            s.mounts.lock().retain(|(ip, _)| *ip != conn.peer.ip());
            reply_with(xid, &())
        }
        Proc::Export => {
            let mut w = reply_success(xid, 64);
            let Ok(dir) = DirPath::new(s.export.path.clone()) else {
                return reply_error(xid, ReplyStatus::SystemErr);
            };
            let node = ExportNode {
                dir,
                groups: vec![rnfs_xdr::XdrString(b"*".to_vec())],
            };
            rnfs_proto::encode_list(&[node], &mut w);
            w.into_inner()
        }
    }
}

/// MNT: the handle of `path`, which is the export's path or a directory below it. Each
/// component is looked up without following symbolic links, so MNT cannot leave the export.
fn mnt(s: &NfsServer, ctx: &Ctx, path: &[u8]) -> MountRes {
    let export = s.export.path.as_bytes();
    let rest = if export == b"/" {
        path
    } else if let Some(r) = path.strip_prefix(export) {
        if !r.is_empty() && r[0] != b'/' {
            return MountRes::Err(MountStat3::NoEnt);
        }
        r
    } else {
        return MountRes::Err(MountStat3::NoEnt);
    };
    let fs = &s.export.fs;
    let mut key = fs.root();
    for comp in rest
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if comp == b".." {
            return MountRes::Err(MountStat3::Inval);
        }
        match fs.lookup(ctx, &key, comp) {
            Ok((k, a)) if a.ftype == FileType::Directory => key = k,
            Ok(_) => return MountRes::Err(MountStat3::NotDir),
            Err(e) => return MountRes::Err(status::mount3(e)),
        }
    }
    if let Err(e) = fs.getattr(ctx, &key) {
        return MountRes::Err(status::mount3(e));
    }
    MountRes::Ok(MountResOk {
        fhandle: handle::encode(&s.export, &key),
        auth_flavors: VarArray(vec![AUTH_SYS]),
    })
}
