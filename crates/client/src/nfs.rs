//! Typed NFSv3 calls (RFC 1813 section 3.3) over [`RpcClient`], and MOUNT/portmap helpers:
//! the client's NFSv3 edge. Each method takes and returns the client's own types
//! ([`crate::types`], mapped in the private module `v3`), so that the layers above never see the
//! protocol version; tools that measure raw calls (`bench/loadgen`) use it directly.
//!
//! Each method sends one call and turns a non-OK status into [`Error::Nfs`]. Counters of
//! WRITE by stability and of COMMIT make the write-back behaviour observable in tests (W5:
//! "did the client fall into synchronous writes?" is a counter, not a stopwatch).
use crate::error::{Error, RpcError};
use crate::rpc::buf::{Reply, Slice};
use crate::rpc::RpcClient;
use crate::types::{
    Attr, CreateHow, FileHandle, FsStat, SetAttr, SpecialFile, Stability, Status, Time,
};
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
pub(crate) struct IoCounters {
    /// WRITE calls sent with UNSTABLE.
    pub(crate) unstable_writes: AtomicU64,
    /// WRITE calls sent with DATA_SYNC or FILE_SYNC.
    pub(crate) sync_writes: AtomicU64,
    /// COMMIT calls sent.
    pub(crate) commits: AtomicU64,
    /// READ calls sent.
    pub(crate) reads: AtomicU64,
    /// Bytes sent in WRITE calls.
    pub(crate) bytes_written: AtomicU64,
    /// Bytes received in READ replies.
    pub(crate) bytes_read: AtomicU64,
}

/// A snapshot of the counters of data operations sent.
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
    /// Counts a WRITE of `len` bytes sent with `stable`.
    pub(crate) fn count_write(&self, stable: Stability, len: usize) {
        match stable {
            Stability::Unstable => &self.unstable_writes,
            Stability::DataSync | Stability::FileSync => &self.sync_writes,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> IoStats {
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
    XdrString::new(n.as_bytes().to_vec()).map_err(|_| Error::Nfs(Status::NameTooLong))
}

fn dirop(dir: &FileHandle, n: &str) -> Result<DirOpArgs3, Error> {
    Ok(DirOpArgs3 {
        dir: dir.into(),
        name: name(n)?,
    })
}

fn ok<T, F>(r: Res<T, F>) -> Result<T, Error> {
    match r {
        Res::Ok(v) => Ok(v),
        Res::Fail(s, _) => Err(Error::Nfs(s.into())),
    }
}

fn attr(a: PostOpAttr) -> Option<Attr> {
    a.map(Attr::from)
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
        Err(status) => return Err(Error::Nfs(status.into())),
    };
    counters.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
    Ok(ReadData {
        attr: attr(attrs),
        eof,
        data: reply.into_slice(at, len),
    })
}

/// The results of a READ.
#[derive(Debug, Clone)]
pub struct ReadData {
    /// Attributes of the file after the read, if the server sent them.
    pub attr: Option<Attr>,
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
    pub(crate) fn rpc(&self) -> &RpcClient {
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
    pub async fn getattr(&self, fh: &FileHandle) -> Result<Attr, Error> {
        let a = GetattrArgs { object: fh.into() };
        Ok(ok(self.call::<_, GetattrRes>(Proc::Getattr, &a).await?)?.into())
    }

    /// SETATTR (3.3.2); returns the attributes after, if the server sent them.
    pub async fn setattr(&self, fh: &FileHandle, attrs: SetAttr) -> Result<Option<Attr>, Error> {
        let a = SetattrArgs {
            object: fh.into(),
            new_attributes: attrs.into(),
            guard: None,
        };
        Ok(attr(
            ok(self.call::<_, SetattrRes>(Proc::Setattr, &a).await?)?.after,
        ))
    }

    /// LOOKUP (3.3.3).
    pub async fn lookup(
        &self,
        dir: &FileHandle,
        n: &str,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let o = ok(self
            .call::<_, LookupRes>(Proc::Lookup, &dirop(dir, n)?)
            .await?)?;
        Ok((o.object.into(), attr(o.obj_attributes)))
    }

    /// ACCESS (3.3.4): the bits of `mask` the server grants the caller, with the
    /// object's attributes when the server sent them.
    pub async fn access(&self, fh: &FileHandle, mask: u32) -> Result<(u32, Option<Attr>), Error> {
        let a = AccessArgs {
            object: fh.into(),
            access: mask,
        };
        let o = ok(self.call::<_, AccessRes>(Proc::Access, &a).await?)?;
        Ok((o.access & mask, attr(o.obj_attributes)))
    }

    /// READLINK (3.3.5).
    pub async fn readlink(&self, fh: &FileHandle) -> Result<Vec<u8>, Error> {
        let o = ok(self
            .call::<_, ReadlinkRes>(Proc::Readlink, &GetattrArgs { object: fh.into() })
            .await?)?;
        Ok(o.data.0)
    }

    /// READ (3.3.6). The data is a slice of the reply's receive buffer: no copy.
    pub async fn read(&self, fh: &FileHandle, offset: u64, count: u32) -> Result<ReadData, Error> {
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
        fh: &FileHandle,
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

    fn read_args(&self, fh: &FileHandle, offset: u64, count: u32) -> Vec<u8> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        rnfs_xdr::to_bytes(&ReadArgs {
            file: fh.into(),
            offset,
            count,
        })
    }

    /// WRITE (3.3.7). The data goes to the socket from where it is (no copy).
    pub async fn write(
        &self,
        fh: &FileHandle,
        offset: u64,
        data: Slice,
        stable: Stability,
    ) -> Result<WriteDone, Error> {
        self.counters.count_write(stable, data.len());
        // WRITE3args as the type encodes them, up to the data's length (the encoding of
        // empty data is its length alone); the data follows as the call's bulk.
        let count = data.len() as u32;
        let mut args = rnfs_xdr::to_bytes(&WriteArgs {
            file: fh.into(),
            offset,
            count,
            stable: stable.into(),
            data: Data(Vec::new()),
        });
        let at = args.len() - 4;
        args[at..].copy_from_slice(&count.to_be_bytes());
        let reply = self
            .rpc
            .call_bulk(PROGRAM, VERSION, Proc::Write as u32, args, Some(data))
            .await?;
        let w = ok(rnfs_xdr::from_bytes::<WriteRes>(reply.body()).map_err(RpcError::Decode)?)?;
        Ok(WriteDone {
            count: w.count,
            committed: w.committed.into(),
            verf: WriteVerf(w.verf.0),
            attr: attr(w.file_wcc.after),
        })
    }

    /// COMMIT of the whole file (3.3.21); returns the server's write verifier.
    pub async fn commit(&self, fh: &FileHandle) -> Result<WriteVerf, Error> {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        let a = CommitArgs {
            file: fh.into(),
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
        dir: &FileHandle,
        n: &str,
        r: CreateRes,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let o = ok(r)?;
        match o.obj {
            Some(fh) => Ok((fh.into(), attr(o.obj_attributes))),
            // RFC 1813 allows a server to omit the handle; find it by name.
            None => self.lookup(dir, n).await,
        }
    }

    /// CREATE (3.3.8).
    pub async fn create(
        &self,
        dir: &FileHandle,
        n: &str,
        how: CreateHow,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let a = CreateArgs {
            where_: dirop(dir, n)?,
            how: how.into(),
        };
        let r = self.call::<_, CreateRes>(Proc::Create, &a).await?;
        self.created(dir, n, r).await
    }

    /// MKDIR (3.3.9).
    pub async fn mkdir(
        &self,
        dir: &FileHandle,
        n: &str,
        mode: u32,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
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
        dir: &FileHandle,
        n: &str,
        target: &str,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let a = SymlinkArgs {
            where_: dirop(dir, n)?,
            symlink_attributes: Sattr3::default(),
            symlink_data: XdrString::new(target.as_bytes().to_vec())
                .map_err(|_| Error::Nfs(Status::NameTooLong))?,
        };
        let r = self.call::<_, CreateRes>(Proc::Symlink, &a).await?;
        self.created(dir, n, r).await
    }

    /// MKNOD (3.3.11): a FIFO, socket or device file with attributes `s`.
    pub async fn mknod(
        &self,
        dir: &FileHandle,
        n: &str,
        what: SpecialFile,
        s: SetAttr,
    ) -> Result<(FileHandle, Option<Attr>), Error> {
        let a = MknodArgs {
            where_: dirop(dir, n)?,
            what: crate::v3::mknod_data(what, s),
        };
        let r = self.call::<_, CreateRes>(Proc::Mknod, &a).await?;
        self.created(dir, n, r).await
    }

    /// REMOVE (3.3.12).
    pub async fn remove(&self, dir: &FileHandle, n: &str) -> Result<(), Error> {
        ok(self
            .call::<_, RemoveRes>(Proc::Remove, &dirop(dir, n)?)
            .await?)
        .map(|_| ())
    }

    /// RMDIR (3.3.13).
    pub async fn rmdir(&self, dir: &FileHandle, n: &str) -> Result<(), Error> {
        ok(self
            .call::<_, RemoveRes>(Proc::Rmdir, &dirop(dir, n)?)
            .await?)
        .map(|_| ())
    }

    /// RENAME (3.3.14).
    pub async fn rename(
        &self,
        from: &FileHandle,
        fname: &str,
        to: &FileHandle,
        tname: &str,
    ) -> Result<(), Error> {
        let a = RenameArgs {
            from: dirop(from, fname)?,
            to: dirop(to, tname)?,
        };
        ok(self.call::<_, RenameRes>(Proc::Rename, &a).await?).map(|_| ())
    }

    /// LINK (3.3.15).
    pub async fn link(&self, file: &FileHandle, dir: &FileHandle, n: &str) -> Result<(), Error> {
        let a = LinkArgs {
            file: file.into(),
            link: dirop(dir, n)?,
        };
        ok(self.call::<_, LinkRes>(Proc::Link, &a).await?).map(|_| ())
    }

    /// READDIR (3.3.16): names and file ids only.
    pub async fn readdir(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        let a = ReaddirArgs {
            dir: dir.into(),
            cookie,
            cookieverf: OpaqueFixed(verf),
            count,
        };
        let r = ok(self.call::<_, ReaddirRes>(Proc::Readdir, &a).await?)?;
        Ok(Listing {
            entries: r
                .entries
                .into_iter()
                .map(|e| Listed {
                    cookie: e.cookie,
                    name: e.name.0,
                    fileid: e.fileid,
                    fh: None,
                    attr: None,
                })
                .collect(),
            eof: r.eof,
            verf: r.cookieverf.0,
            dir_mtime: r.dir_attributes.map(|a| a.mtime.into()),
        })
    }

    /// READDIRPLUS (3.3.17): names with handles and attributes.
    pub async fn readdirplus(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        let a = ReaddirplusArgs {
            dir: dir.into(),
            cookie,
            cookieverf: OpaqueFixed(verf),
            dircount: count,
            maxcount: count,
        };
        let r = ok(self
            .call::<_, ReaddirplusRes>(Proc::Readdirplus, &a)
            .await?)?;
        Ok(Listing {
            entries: r
                .entries
                .into_iter()
                .map(|e| Listed {
                    cookie: e.cookie,
                    name: e.name.0,
                    fileid: e.fileid,
                    fh: e.name_handle.map(FileHandle::from),
                    attr: attr(e.name_attributes),
                })
                .collect(),
            eof: r.eof,
            verf: r.cookieverf.0,
            dir_mtime: r.dir_attributes.map(|a| a.mtime.into()),
        })
    }

    /// FSSTAT (3.3.18).
    pub async fn fsstat(&self, fh: &FileHandle) -> Result<FsStat, Error> {
        let a = GetattrArgs { object: fh.into() };
        Ok(ok(self.call::<_, FsstatRes>(Proc::Fsstat, &a).await?)?.into())
    }

    /// FSINFO (3.3.19).
    pub async fn fsinfo(&self, fh: &FileHandle) -> Result<FsLimits, Error> {
        let a = GetattrArgs { object: fh.into() };
        let o = ok(self.call::<_, FsinfoRes>(Proc::Fsinfo, &a).await?)?;
        Ok(FsLimits {
            rtmax: o.rtmax,
            wtmax: o.wtmax,
            attr: attr(o.obj_attributes),
        })
    }
}

/// What a WRITE did.
#[derive(Debug, Clone)]
pub struct WriteDone {
    /// Bytes written.
    pub count: u32,
    /// How stable the server made them.
    pub committed: Stability,
    /// The server's write verifier.
    pub verf: WriteVerf,
    /// Attributes of the file after the write, if the server sent them.
    pub attr: Option<Attr>,
}

/// Limits of a file system (FSINFO), with the attributes of the object asked about.
#[derive(Debug, Clone)]
pub struct FsLimits {
    /// Largest READ (0: not said).
    pub rtmax: u32,
    /// Largest WRITE (0: not said).
    pub wtmax: u32,
    /// Attributes of the object, if the server sent them.
    pub attr: Option<Attr>,
}

/// One entry of a listing reply, in the server's order (`.` and `..` included, if sent).
#[derive(Debug, Clone)]
pub struct Listed {
    /// Cookie to continue after this entry.
    pub cookie: u64,
    /// The name's bytes.
    pub name: Vec<u8>,
    /// File id.
    pub fileid: u64,
    /// The entry's handle, if the server sent it.
    pub fh: Option<FileHandle>,
    /// The entry's attributes, if the server sent them.
    pub attr: Option<Attr>,
}

/// One READDIR or READDIRPLUS reply.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Entries.
    pub entries: Vec<Listed>,
    /// Whether the listing is complete.
    pub eof: bool,
    /// The cookie verifier to send with the next cookie.
    pub verf: [u8; 8],
    /// The directory's modification time, if the server sent its attributes.
    pub dir_mtime: Option<Time>,
}

/// MNT (RFC 1813 appendix I): the root handle of `path` on the MOUNT server behind `rpc`.
pub(crate) async fn mnt(rpc: &RpcClient, path: &str) -> Result<FileHandle, Error> {
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
        mount3::MountRes::Ok(o) => Ok(o.fhandle.into()),
        mount3::MountRes::Err(s) => Err(Error::Mount(s)),
    }
}

/// PMAPPROC_GETPORT (RFC 1833 section 3.2) over TCP; `None` when not registered.
pub(crate) async fn getport(rpc: &RpcClient, prog: u32, vers: u32) -> Result<Option<u16>, Error> {
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
