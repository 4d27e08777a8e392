//! READ, with the reply encoded in place: the backend reads the data straight into the
//! reply message at its final place, so a READ costs one buffer of the right size and no
//! zeroing or copying of the data in user space; and the same READ tried on a
//! connection's task, answered only if the backend need not wait.
use super::attr::fattr3;
use super::nfs::{scope, st};
use crate::v4::state::delegations::Access;
use crate::{NfsServer, Req, Scope};
use rnfs_proto::nfs3::*;
use rnfs_proto::rpc::{ReplyHeader, ReplyStatus};
use rnfs_rpc::message::{reply_error, reply_with};
use rnfs_rpc::transport::Service;
use rnfs_vfs::{Attr, FileKey, ReadDone};
use rnfs_xdr::{Writer, Xdr};

/// READ, with the reply encoded here rather than through [`ReadRes`]: the backend reads
/// the data straight into the reply message at its final place, so a READ costs one
/// buffer of the right size and no zeroing or copying of the data in user space.
pub(crate) fn read_reply(s: &NfsServer, req: &Req<'_>, xid: u32, args: &[u8]) -> Vec<u8> {
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
    let (x, k) = match scope(s, req, &a.file) {
        Ok(v) => v,
        Err(e) => return Err(reply_with(xid, &ReadRes::Fail(e, None))),
    };
    // Another client's write delegation may hold data not written yet: recalled first.
    if let Err(e) = s.deleg_conflict(req, &k, Access::Read, false) {
        return Err(reply_with(xid, &ReadRes::Fail(st(e), x.post_op(&k))));
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{handle, Export, ServerConfig};
    use rnfs_rpc::message::Auth;
    use rnfs_rpc::transport::ConnInfo;
    use rnfs_vfs::{Backend, Ctx};
    use rnfs_vfs::{CreateMode, Stability};
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

    /// A server with delegations (v3 calls held at most `hold_ms` for a return) and a
    /// file "0123456789" NFSv4 client 1 holds a write delegation on: the backend, the
    /// file, the server, its NFSv4 state and the delegation's stateid.
    #[allow(clippy::type_complexity)]
    fn write_delegated(
        hold_ms: u64,
    ) -> (
        Arc<rnfs_vfs::memory::MemFs>,
        rnfs_vfs::FileKey,
        NfsServer,
        Arc<crate::v4::service::V4State>,
        crate::v4::state::ids::Stateid,
    ) {
        use crate::v4::state::delegations::DelegKind;
        use crate::v4::state::ids::{ClientId, Time};
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let k = file_with(&*fs, b"0123456789");
        let cfg = ServerConfig {
            v4: Some(crate::v4::service::V4Options {
                delegations: true,
                conflict_hold_ms: hold_ms,
                ..crate::v4::service::V4Options::default()
            }),
            ..ServerConfig::default()
        };
        let s = NfsServer::new(Export::new(1, "/", fs.clone()), cfg);
        let v4 = s.v4().unwrap().clone();
        let (sid, _) = v4
            .locking
            .lock()
            .grant_delegation(
                ClientId(1),
                &k,
                vec![1],
                DelegKind::Write,
                true,
                false,
                Time(0),
            )
            .unwrap();
        (fs, k, s, v4, sid)
    }

    /// Issue 15: an NFSv3 READ of a file another (NFSv4) client holds a write delegation
    /// on answers JUKEBOX and orders that delegation's recall, once however often it is
    /// retried; once the delegation is returned, the READ goes through.
    #[test]
    fn a_read_of_a_write_delegated_file_waits_for_the_recall() {
        use crate::v4::state::ids::{ClientId, Time};
        // answered at once, not held (see the next test)
        let (fs, k, s, v4, sid) = write_delegated(0);
        let ctx = Ctx::default();
        let conn = test_conn();
        let req = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: None,
        };
        let fh = handle::encode(&s.exports().exports[0], &k);
        let at = fs.getattr(&ctx, &k).unwrap();
        for xid in 0..5 {
            assert_eq!(
                read_reply(&s, &req, xid, &read_args(&fh, 0, 4)),
                reply_with(xid, &ReadRes::Fail(Nfsstat3::Jukebox, Some(fattr3(&at))))
            );
        }
        let d = v4.delegation_stats();
        assert_eq!((d.recalls, d.conflicts), (1, 5));
        v4.locking
            .lock()
            .delegreturn(ClientId(1), &sid, &k, Time(0))
            .unwrap();
        let got = read_reply(&s, &req, 9, &read_args(&fh, 0, 4));
        assert_ne!(
            got,
            reply_with(9, &ReadRes::Fail(Nfsstat3::Jukebox, Some(fattr3(&at))))
        );
        assert_eq!(v4.delegation_stats().held, 0);
    }

    /// Issue 15: an NFSv3 READ that must wait for a delegation's return is held on the
    /// pool (not answered JUKEBOX, which the Linux client retries only after 5 s) and goes
    /// through once the holder returns the delegation; tried on the connection's task, it
    /// is sent to the pool instead of waiting there.
    #[test]
    fn a_read_waiting_for_a_recall_is_held_until_the_return() {
        use crate::v4::state::ids::{ClientId, Time};
        use std::cell::Cell;
        // far longer than the return below takes: the READ must not time out
        let (fs, k, s, v4, sid) = write_delegated(600_000);
        let ctx = Ctx::default();
        let conn = test_conn();
        let fh = handle::encode(&s.exports().exports[0], &k);
        // On the connection's task: given up to the pool, no reply.
        let deferred = Cell::new(false);
        let inline = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: Some(&deferred),
        };
        let _ = read_reply(&s, &inline, 1, &read_args(&fh, 0, 4));
        assert!(deferred.get(), "a READ that must wait is sent to the pool");
        // On the pool: held until the holder returns its delegation (another thread).
        let holder = {
            let v4 = v4.clone();
            let k = k.clone();
            std::thread::spawn(move || {
                while v4.delegation_stats().recalls == 0 {
                    std::thread::yield_now();
                }
                v4.locking
                    .lock()
                    .delegreturn(ClientId(1), &sid, &k, Time(1))
                    .unwrap();
            })
        };
        let req = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: None,
        };
        let at = fs.getattr(&ctx, &k).unwrap();
        let got = read_reply(&s, &req, 2, &read_args(&fh, 0, 4));
        holder.join().unwrap();
        assert_ne!(
            got,
            reply_with(2, &ReadRes::Fail(Nfsstat3::Jukebox, Some(fattr3(&at))))
        );
        let d = v4.delegation_stats();
        assert_eq!((d.held, d.recalls, d.returned), (0, 1, 1));
    }

    /// Issue 15: an NFSv3 GETATTR or LOOKUP of a file another client holds a write
    /// delegation on recalls it (the server's size and times are stale until the holder
    /// writes back: RFC 8881 10.4.3) and answers JUKEBOX; a read delegation is left alone.
    #[test]
    fn attributes_of_a_write_delegated_file_recall_it() {
        use crate::v4::state::delegations::DelegKind;
        use crate::v4::state::ids::{ClientId, Time};
        use rnfs_proto::nfs3::{DirOpArgs3, GetattrArgs, Proc};
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let k = file_with(&*fs, b"0123456789");
        let cfg = ServerConfig {
            v4: Some(crate::v4::service::V4Options {
                delegations: true,
                conflict_hold_ms: 0,
                ..crate::v4::service::V4Options::default()
            }),
            ..ServerConfig::default()
        };
        let s = NfsServer::new(Export::new(1, "/", fs.clone()), cfg);
        let v4 = s.v4().unwrap().clone();
        let conn = test_conn();
        let req = Req {
            conn: &conn,
            auth: &Auth::None,
            defer: None,
        };
        let fh = handle::encode(&s.exports().exports[0], &k);
        let root = handle::encode(&s.exports().exports[0], &fs.root());
        let getattr = rnfs_xdr::to_bytes(&GetattrArgs { object: fh.clone() });
        let lookup = rnfs_xdr::to_bytes(&DirOpArgs3 {
            dir: root,
            name: rnfs_xdr::XdrString(b"f".to_vec()),
        });
        let call = |xid, p, a: &[u8]| crate::v3::nfs::dispatch(&s, &req, xid, p, a);
        // A read delegation: the attributes are the server's, nothing to recall.
        let (rsid, _) = v4
            .locking
            .lock()
            .grant_delegation(
                ClientId(1),
                &k,
                vec![1],
                DelegKind::Read,
                true,
                false,
                Time(0),
            )
            .unwrap();
        let _ = call(1, Proc::Getattr, &getattr);
        let _ = call(2, Proc::Lookup, &lookup);
        assert_eq!(v4.delegation_stats().conflicts, 0);
        v4.locking
            .lock()
            .delegreturn(ClientId(1), &rsid, &k, Time(0))
            .unwrap();
        // A write delegation: recalled, and both calls must wait.
        v4.locking
            .lock()
            .grant_delegation(
                ClientId(1),
                &k,
                vec![1],
                DelegKind::Write,
                true,
                false,
                Time(0),
            )
            .unwrap();
        let g = call(3, Proc::Getattr, &getattr);
        let l = call(4, Proc::Lookup, &lookup);
        let d = v4.delegation_stats();
        assert_eq!((d.recalls, d.conflicts), (1, 2));
        // NFS3ERR_JUKEBOX (10008) follows the 24-byte accepted-reply header.
        let jukebox = 10008u32.to_be_bytes();
        assert_eq!(g[24..28], jukebox);
        assert_eq!(l[24..28], jukebox);
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
