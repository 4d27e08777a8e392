//! MOUNT v3 procedures (RFC 1813 appendix I).
use crate::{handle, status, Denied, NfsServer, Req};
use rnfs_proto::mount3::*;
use rnfs_proto::rpc::{ReplyStatus, AUTH_SYS};
use rnfs_rpc::message::{reply_error, reply_success, reply_with};
use rnfs_vfs::FileType;
use rnfs_xdr::VarArray;

/// Decodes, runs and encodes one MOUNT call.
pub fn dispatch(s: &NfsServer, req: &Req<'_>, xid: u32, proc_: Proc, args: &[u8]) -> Vec<u8> {
    let garbage = || reply_error(xid, ReplyStatus::GarbageArgs);
    let peer = req.conn.peer.ip();
    match proc_ {
        Proc::Null => match rnfs_xdr::from_bytes::<()>(args) {
            Ok(()) => reply_with(xid, &()),
            Err(_) => garbage(),
        },
        Proc::Mnt => match rnfs_xdr::from_bytes::<DirPath>(args) {
            Ok(path) => {
                let res = mnt(s, req, &path.0);
                if let MountRes::Ok(_) = res {
                    s.mounts.lock().insert((peer, path.lossy().into_owned()));
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
                s.mounts.lock().remove(&(peer, path.lossy().into_owned()));
                reply_with(xid, &())
            }
            Err(_) => garbage(),
        },
        Proc::Umntall => {
            s.mounts.lock().retain(|(ip, _)| *ip != peer);
            reply_with(xid, &())
        }
        Proc::Export => {
            let table = s.exports();
            let nodes: Vec<ExportNode> = table
                .exports
                .iter()
                .filter_map(|e| {
                    Some(ExportNode {
                        dir: DirPath::new(e.path.clone()).ok()?,
                        groups: e
                            .rules
                            .iter()
                            .filter_map(|r| Name::new(r.spec.clone()).ok())
                            .collect(),
                    })
                })
                .collect();
            let mut w = reply_success(xid, 64 * nodes.len());
            rnfs_proto::encode_list(&nodes, &mut w);
            w.into_inner()
        }
    }
}

/// MNT: the handle of `path`, an export's mount path or a directory below it. Each
/// component is looked up without following symbolic links, so MNT cannot leave the export.
fn mnt(s: &NfsServer, req: &Req<'_>, path: &[u8]) -> MountRes {
    let table = s.exports();
    let Some((export, rest)) = table.by_path(path) else {
        return MountRes::Err(MountStat3::NoEnt);
    };
    let scope = match s.admit(export, req) {
        Ok(x) => x,
        Err(Denied::NotListed) => {
            tracing::info!(peer = %req.conn.peer, "MNT refused: no rule of the export lists this client");
            return MountRes::Err(MountStat3::Acces);
        }
        Err(Denied::InsecurePort) => {
            tracing::info!(peer = %req.conn.peer, "MNT from an unprivileged port refused (export is secure)");
            return MountRes::Err(MountStat3::Acces);
        }
    };
    let fs = &export.fs;
    let mut key = fs.root();
    for comp in rest
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if comp == b".." {
            return MountRes::Err(MountStat3::Inval);
        }
        match fs.lookup(&scope.ctx, &key, comp) {
            Ok((k, a)) if a.ftype == FileType::Directory => key = k,
            Ok(_) => return MountRes::Err(MountStat3::NotDir),
            Err(e) => return MountRes::Err(status::mount3(e)),
        }
    }
    if let Err(e) = fs.getattr(&scope.ctx, &key) {
        return MountRes::Err(status::mount3(e));
    }
    MountRes::Ok(MountResOk {
        fhandle: handle::encode(export, &key),
        auth_flavors: VarArray(vec![AUTH_SYS]),
    })
}
