//! Typed NFSv3 calls (RFC 1813 section 3.3) over [`RpcClient`], and MOUNT/portmap helpers.
//!
//! Each method sends one call and turns a non-OK status into [`Error::Nfs`]. Counters of
//! WRITE by stability and of COMMIT make the write-back behaviour observable in tests (W5:
//! "did the client fall into synchronous writes?" is a counter, not a stopwatch).
use crate::error::{Error, RpcError};
use crate::rpc::buf::{Reply, Slice};
use crate::rpc::RpcClient;
use rnfs_proto::nfs3::*;
use rnfs_proto::{mount3, portmap};
use rnfs_xdr::{OpaqueFixed, Xdr, XdrString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A server's write verifier (RFC 1813 section 3.3.7): changes when the server may have
/// lost UNSTABLE data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WriteVerf(pub [u8; 8]);

/// Counters of data operations sent (live values).
#[derive(Debug, Default)]
pub struct IoCounters {
    /// WRITE calls sent with UNSTABLE.
    pub unstable_writes: AtomicU64,
    /// WRITE calls sent with DATA_SYNC or FILE_SYNC.
    pub sync_writes: AtomicU64,
    /// COMMIT calls sent.
    pub commits: AtomicU64,
    /// READ calls sent.
    pub reads: AtomicU64,
    /// Bytes sent in WRITE calls.
    pub bytes_written: AtomicU64,
    /// Bytes received in READ replies.
    pub bytes_read: AtomicU64,
}

/// A snapshot of [`IoCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// WRITE calls sent with UNSTABLE.
    pub unstable_writes: u64,
    /// WRITE calls sent with DATA_SYNC or FILE_SYNC.
    pub sync_writes: u64,
    /// COMMIT calls sent.
    pub commits: u64,
    /// READ calls sent.
    pub reads: u64,
    /// Bytes sent in WRITE calls.
    pub bytes_written: u64,
    /// Bytes received in READ replies.
    pub bytes_read: u64,
}

impl IoCounters {
    /// A snapshot.
    pub fn snapshot(&self) -> IoStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoStats {
            unstable_writes: l(&self.unstable_writes),
            sync_writes: l(&self.sync_writes),
            commits: l(&self.commits),
            reads: l(&self.reads),
            bytes_written: l(&self.bytes_written),
            bytes_read: l(&self.bytes_read),
        }
    }
}

fn name(n: &str) -> Result<Filename3, Error> {
    if n.is_empty() || n.contains('/') || n.contains('\0') {
        return Err(Error::Invalid(
            "a file name must be non-empty, without '/' or NUL",
        ));
    }
    XdrString::new(n.as_bytes().to_vec()).map_err(|_| Error::Nfs(Nfsstat3::NameTooLong))
}

fn dirop(dir: &FileHandle3, n: &str) -> Result<DirOpArgs3, Error> {
    Ok(DirOpArgs3 {
        dir: dir.clone(),
        name: name(n)?,
    })
}

fn ok<T, F>(r: Res<T, F>) -> Result<T, Error> {
    match r {
        Res::Ok(v) => Ok(v),
        Res::Fail(s, _) => Err(Error::Nfs(s)),
    }
}

/// Decodes READ results up to the data: the attributes, eof, and where the data is in
/// `body` (offset, length); or the failure status.
#[allow(clippy::type_complexity)]
fn read_head(body: &[u8]) -> rnfs_xdr::Result<Result<(PostOpAttr, bool, usize, usize), Nfsstat3>> {
    let mut r = rnfs_xdr::Reader::new(body);
    let status = Nfsstat3::decode(&mut r)?;
    let attrs = PostOpAttr::decode(&mut r)?;
    if status != Nfsstat3::Ok {
        return Ok(Err(status));
    }
    let _count = r.u32()?;
    let eof = r.bool()?;
    let at = r.position() + 4;
    let len = r.opaque(DATA_DECODE_MAX)?.len();
    Ok(Ok((attrs, eof, at, len)))
}

/// The results of a READ from its reply (the data stays where it was received).
fn read_results(counters: &IoCounters, reply: Reply) -> Result<ReadData, Error> {
    let (attrs, eof, at, len) = match read_head(reply.body()).map_err(RpcError::Decode)? {
        Ok(v) => v,
        Err(status) => return Err(Error::Nfs(status)),
    };
    counters.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
    Ok(ReadData {
        file_attributes: attrs,
        eof,
        data: reply.into_slice(at, len),
    })
}

/// The results of a READ.
#[derive(Debug, Clone)]
pub struct ReadData {
    /// Attributes of the file after the read, if the server sent them.
    pub file_attributes: PostOpAttr,
    /// Whether the read reached the end of the file.
    pub eof: bool,
    /// The bytes (a slice of the reply as received).
    pub data: Slice,
}

/// The NFSv3 program on one server.
#[derive(Clone, Debug)]
pub struct Nfs3 {
    rpc: RpcClient,
    counters: Arc<IoCounters>,
}

impl Nfs3 {
    /// NFSv3 over this RPC client.
    pub fn new(rpc: RpcClient) -> Self {
        Self {
            rpc,
            counters: Arc::default(),
        }
    }

    /// The RPC client (for its counters).
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// Data operation counters.
    pub fn io_stats(&self) -> IoStats {
        self.counters.snapshot()
    }

    async fn call<A: Xdr, R: Xdr>(&self, p: Proc, a: &A) -> Result<R, RpcError> {
        self.rpc.call(PROGRAM, VERSION, p as u32, a).await
    }

    /// NULL: checks that the server answers.
    pub async fn null(&self) -> Result<(), Error> {
        Ok(self.call::<_, ()>(Proc::Null, &()).await?)
    }

    /// GETATTR (RFC 1813 3.3.1).
    pub async fn getattr(&self, fh: &FileHandle3) -> Result<Fattr3, Error> {
        ok(self
            .call::<_, GetattrRes>(Proc::Getattr, &GetattrArgs { object: fh.clone() })
            .await?)
    }

    /// SETATTR (3.3.2); returns the attributes after, if the server sent them.
    pub async fn setattr(&self, fh: &FileHandle3, attrs: Sattr3) -> Result<Option<Fattr3>, Error> {
        let a = SetattrArgs {
            object: fh.clone(),
            new_attributes: attrs,
            guard: None,
        };
        Ok(ok(self.call::<_, SetattrRes>(Proc::Setattr, &a).await?)?.after)
    }

    /// LOOKUP (3.3.3).
    pub async fn lookup(
        &self,
        dir: &FileHandle3,
        n: &str,
    ) -> Result<(FileHandle3, Option<Fattr3>), Error> {
        let o = ok(self
            .call::<_, LookupRes>(Proc::Lookup, &dirop(dir, n)?)
            .await?)?;
        Ok((o.object, o.obj_attributes))
    }

    /// ACCESS (3.3.4): the bits of `mask` the server grants the caller, with the
    /// object's attributes when the server sent them.
    pub async fn access(
        &self,
        fh: &FileHandle3,
        mask: u32,
    ) -> Result<(u32, Option<Fattr3>), Error> {
        let a = AccessArgs {
            object: fh.clone(),
            access: mask,
        };
        let o = ok(self.call::<_, AccessRes>(Proc::Access, &a).await?)?;
        Ok((o.access & mask, o.obj_attributes))
    }

    /// READLINK (3.3.5).
    pub async fn readlink(&self, fh: &FileHandle3) -> Result<Vec<u8>, Error> {
        let o = ok(self
            .call::<_, ReadlinkRes>(Proc::Readlink, &GetattrArgs { object: fh.clone() })
            .await?)?;
        Ok(o.data.0)
    }

    /// READ (3.3.6). The data is a slice of the reply's receive buffer: no copy.
    pub async fn read(&self, fh: &FileHandle3, offset: u64, count: u32) -> Result<ReadData, Error> {
        let args = self.read_args(fh, offset, count);
        let reply = self
            .rpc
            .call_raw(PROGRAM, VERSION, Proc::Read as u32, args)
            .await?;
        read_results(&self.counters, reply)
    }

    /// READ, its outcome given to `done` by the connection's driver task as the reply is
    /// read ([`RpcClient::start_call`]: no task woken up). `done` must be quick.
    pub fn read_then(
        &self,
        fh: &FileHandle3,
        offset: u64,
        count: u32,
        done: impl FnOnce(Result<ReadData, Error>) + Send + 'static,
    ) {
        let args = self.read_args(fh, offset, count);
        let counters = self.counters.clone();
        self.rpc
            .start_call(PROGRAM, VERSION, Proc::Read as u32, args, move |r| {
                done(
                    r.map_err(Error::from)
                        .and_then(|reply| read_results(&counters, reply)),
                )
            });
    }

    fn read_args(&self, fh: &FileHandle3, offset: u64, count: u32) -> Vec<u8> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        rnfs_xdr::to_bytes(&ReadArgs {
            file: fh.clone(),
            offset,
            count,
        })
    }

    /// WRITE (3.3.7). The data goes to the socket from where it is (no copy).
    pub async fn write(
        &self,
        fh: &FileHandle3,
        offset: u64,
        data: Slice,
        stable: StableHow,
    ) -> Result<WriteOk, Error> {
        match stable {
            StableHow::Unstable => &self.counters.unstable_writes,
            StableHow::DataSync | StableHow::FileSync => &self.counters.sync_writes,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        // WRITE3args as the type encodes them, up to the data's length (the encoding of
        // empty data is its length alone); the data follows as the call's bulk.
        let count = data.len() as u32;
        let mut args = rnfs_xdr::to_bytes(&WriteArgs {
            file: fh.clone(),
            offset,
            count,
            stable,
            data: Data(Vec::new()),
        });
        let at = args.len() - 4;
        args[at..].copy_from_slice(&count.to_be_bytes());
        let reply = self
            .rpc
            .call_bulk(PROGRAM, VERSION, Proc::Write as u32, args, Some(data))
            .await?;
        ok(rnfs_xdr::from_bytes::<WriteRes>(reply.body()).map_err(RpcError::Decode)?)
    }

    /// COMMIT of the whole file (3.3.21); returns the server's write verifier.
    pub async fn commit(&self, fh: &FileHandle3) -> Result<WriteVerf, Error> {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        let a = CommitArgs {
            file: fh.clone(),
            offset: 0,
            count: 0,
        };
        Ok(WriteVerf(
            ok(self.call::<_, CommitRes>(Proc::Commit, &a).await?)?
                .verf
                .0,
        ))
    }

    async fn created(
        &self,
        dir: &FileHandle3,
        n: &str,
        r: CreateRes,
    ) -> Result<(FileHandle3, Option<Fattr3>), Error> {
        let o = ok(r)?;
        match o.obj {
            Some(fh) => Ok((fh, o.obj_attributes)),
            // RFC 1813 allows a server to omit the handle; find it by name.
            None => self.lookup(dir, n).await,
        }
    }

    /// CREATE (3.3.8).
    pub async fn create(
        &self,
        dir: &FileHandle3,
        n: &str,
        how: CreateHow3,
    ) -> Result<(FileHandle3, Option<Fattr3>), Error> {
        let a = CreateArgs {
            where_: dirop(dir, n)?,
            how,
        };
        let r = self.call::<_, CreateRes>(Proc::Create, &a).await?;
        self.created(dir, n, r).await
    }

    /// MKDIR (3.3.9).
    pub async fn mkdir(
        &self,
        dir: &FileHandle3,
        n: &str,
        mode: u32,
    ) -> Result<(FileHandle3, Option<Fattr3>), Error> {
        let a = MkdirArgs {
            where_: dirop(dir, n)?,
            attributes: Sattr3 {
                mode: Some(mode),
                ..Default::default()
            },
        };
        let r = self.call::<_, CreateRes>(Proc::Mkdir, &a).await?;
        self.created(dir, n, r).await
    }

    /// SYMLINK (3.3.10).
    pub async fn symlink(
        &self,
        dir: &FileHandle3,
        n: &str,
        target: &str,
    ) -> Result<(FileHandle3, Option<Fattr3>), Error> {
        let a = SymlinkArgs {
            where_: dirop(dir, n)?,
            symlink_attributes: Sattr3::default(),
            symlink_data: XdrString::new(target.as_bytes().to_vec())
                .map_err(|_| Error::Nfs(Nfsstat3::NameTooLong))?,
        };
        let r = self.call::<_, CreateRes>(Proc::Symlink, &a).await?;
        self.created(dir, n, r).await
    }

    /// REMOVE (3.3.12).
    pub async fn remove(&self, dir: &FileHandle3, n: &str) -> Result<(), Error> {
        ok(self
            .call::<_, RemoveRes>(Proc::Remove, &dirop(dir, n)?)
            .await?)
        .map(|_| ())
    }

    /// RMDIR (3.3.13).
    pub async fn rmdir(&self, dir: &FileHandle3, n: &str) -> Result<(), Error> {
        ok(self
            .call::<_, RemoveRes>(Proc::Rmdir, &dirop(dir, n)?)
            .await?)
        .map(|_| ())
    }

    /// RENAME (3.3.14).
    pub async fn rename(
        &self,
        from: &FileHandle3,
        fname: &str,
        to: &FileHandle3,
        tname: &str,
    ) -> Result<(), Error> {
        let a = RenameArgs {
            from: dirop(from, fname)?,
            to: dirop(to, tname)?,
        };
        ok(self.call::<_, RenameRes>(Proc::Rename, &a).await?).map(|_| ())
    }

    /// LINK (3.3.15).
    pub async fn link(&self, file: &FileHandle3, dir: &FileHandle3, n: &str) -> Result<(), Error> {
        let a = LinkArgs {
            file: file.clone(),
            link: dirop(dir, n)?,
        };
        ok(self.call::<_, LinkRes>(Proc::Link, &a).await?).map(|_| ())
    }

    /// READDIR (3.3.16): names and file ids only.
    pub async fn readdir(
        &self,
        dir: &FileHandle3,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<ReaddirOk, Error> {
        let a = ReaddirArgs {
            dir: dir.clone(),
            cookie,
            cookieverf: OpaqueFixed(verf),
            count,
        };
        ok(self.call::<_, ReaddirRes>(Proc::Readdir, &a).await?)
    }

    /// READDIRPLUS (3.3.17).
    pub async fn readdirplus(
        &self,
        dir: &FileHandle3,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<ReaddirplusOk, Error> {
        let a = ReaddirplusArgs {
            dir: dir.clone(),
            cookie,
            cookieverf: OpaqueFixed(verf),
            dircount: count,
            maxcount: count,
        };
        ok(self
            .call::<_, ReaddirplusRes>(Proc::Readdirplus, &a)
            .await?)
    }

    /// FSSTAT (3.3.18).
    pub async fn fsstat(&self, fh: &FileHandle3) -> Result<FsstatOk, Error> {
        ok(self
            .call::<_, FsstatRes>(Proc::Fsstat, &GetattrArgs { object: fh.clone() })
            .await?)
    }

    /// FSINFO (3.3.19).
    pub async fn fsinfo(&self, fh: &FileHandle3) -> Result<FsinfoOk, Error> {
        ok(self
            .call::<_, FsinfoRes>(Proc::Fsinfo, &GetattrArgs { object: fh.clone() })
            .await?)
    }
}

/// MNT (RFC 1813 appendix I): the root handle of `path` on the MOUNT server behind `rpc`.
pub async fn mnt(rpc: &RpcClient, path: &str) -> Result<FileHandle3, Error> {
    let p = XdrString::<{ mount3::MNTPATHLEN }>::new(path.as_bytes().to_vec())
        .map_err(|_| Error::Invalid("export path longer than 1024 bytes"))?;
    match rpc
        .call::<_, mount3::MountRes>(
            mount3::PROGRAM,
            mount3::VERSION,
            mount3::Proc::Mnt as u32,
            &p,
        )
        .await?
    {
        mount3::MountRes::Ok(o) => Ok(o.fhandle),
        mount3::MountRes::Err(s) => Err(Error::Mount(s)),
    }
}

/// PMAPPROC_GETPORT (RFC 1833 section 3.2) over TCP; `None` when not registered.
pub async fn getport(rpc: &RpcClient, prog: u32, vers: u32) -> Result<Option<u16>, Error> {
    let m = portmap::Mapping {
        prog,
        vers,
        prot: portmap::IPPROTO_TCP,
        port: 0,
    };
    let port: u32 = rpc
        .call(
            portmap::PROGRAM,
            portmap::VERSION,
            portmap::PROC_GETPORT,
            &m,
        )
        .await?;
    Ok(u16::try_from(port).ok().filter(|p| *p != 0))
}
