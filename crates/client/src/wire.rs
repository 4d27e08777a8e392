//! The protocol version a mount speaks, chosen once at mount time: every call of the layers
//! above goes through [`Wire`], which hands it to the NFSv3 or the NFSv4.1 edge. Both take
//! and return the client's own types, so this is only dispatch; what a version does
//! differently lives in its edge ([`crate::nfs`], [`crate::nfs4`]).
use crate::error::Error;
use crate::nfs::{FsLimits, IoStats, Listing, Nfs3, ReadData, WriteDone, WriteVerf};
use crate::nfs4::Nfs4;
use crate::rpc::buf::Slice;
use crate::rpc::RpcClient;
use crate::types::{Attr, CreateHow, FileHandle, FsStat, SetAttr, SpecialFile, Stability};

/// The edge of one mount.
#[derive(Clone, Debug)]
pub(crate) enum Wire {
    V3(Nfs3),
    V4(Nfs4),
}

/// `$e` with `$n` bound to whichever edge this is.
macro_rules! each {
    ($w:expr, $n:ident => $e:expr) => {
        match $w {
            Wire::V3($n) => $e,
            Wire::V4($n) => $e,
        }
    };
}

type Made = Result<(FileHandle, Option<Attr>), Error>;

impl Wire {
    /// The version as users write it.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Wire::V3(_) => "3",
            Wire::V4(_) => "4.1",
        }
    }

    pub(crate) fn rpc(&self) -> &RpcClient {
        each!(self, n => n.rpc())
    }

    pub(crate) fn io_stats(&self) -> IoStats {
        each!(self, n => n.io_stats())
    }

    pub(crate) async fn getattr(&self, fh: &FileHandle) -> Result<Attr, Error> {
        each!(self, n => n.getattr(fh).await)
    }

    pub(crate) async fn setattr(&self, fh: &FileHandle, s: SetAttr) -> Result<Option<Attr>, Error> {
        each!(self, n => n.setattr(fh, s).await)
    }

    pub(crate) async fn lookup(&self, dir: &FileHandle, name: &str) -> Made {
        each!(self, n => n.lookup(dir, name).await)
    }

    pub(crate) async fn access(
        &self,
        fh: &FileHandle,
        mask: u32,
    ) -> Result<(u32, Option<Attr>), Error> {
        each!(self, n => n.access(fh, mask).await)
    }

    pub(crate) async fn readlink(&self, fh: &FileHandle) -> Result<Vec<u8>, Error> {
        each!(self, n => n.readlink(fh).await)
    }

    pub(crate) async fn read(
        &self,
        fh: &FileHandle,
        offset: u64,
        count: u32,
    ) -> Result<ReadData, Error> {
        each!(self, n => n.read(fh, offset, count).await)
    }

    pub(crate) fn read_then(
        &self,
        fh: &FileHandle,
        offset: u64,
        count: u32,
        done: impl FnOnce(Result<ReadData, Error>) + Send + 'static,
    ) {
        each!(self, n => n.read_then(fh, offset, count, done))
    }

    pub(crate) async fn write(
        &self,
        fh: &FileHandle,
        offset: u64,
        data: Slice,
        stable: Stability,
    ) -> Result<WriteDone, Error> {
        each!(self, n => n.write(fh, offset, data, stable).await)
    }

    pub(crate) async fn commit(&self, fh: &FileHandle) -> Result<WriteVerf, Error> {
        each!(self, n => n.commit(fh).await)
    }

    pub(crate) async fn create(&self, dir: &FileHandle, name: &str, how: CreateHow) -> Made {
        each!(self, n => n.create(dir, name, how).await)
    }

    /// Creates a regular file for an open of `mode`: NFSv4 creates it with the OPEN that
    /// the open then uses (`true`: [`Wire::open_state`] is done); NFSv3 only creates it.
    pub(crate) async fn create_open(
        &self,
        dir: &FileHandle,
        name: &str,
        how: CreateHow,
        mode: u32,
    ) -> Result<(FileHandle, Option<Attr>, bool), Error> {
        match self {
            Wire::V3(n) => n.create(dir, name, how).await.map(|(f, a)| (f, a, false)),
            Wire::V4(n) => n
                .create_open(dir, name, how, mode)
                .await
                .map(|(f, a)| (f, a, true)),
        }
    }

    pub(crate) async fn mkdir(&self, dir: &FileHandle, name: &str, mode: u32) -> Made {
        each!(self, n => n.mkdir(dir, name, mode).await)
    }

    pub(crate) async fn symlink(&self, dir: &FileHandle, name: &str, target: &str) -> Made {
        each!(self, n => n.symlink(dir, name, target).await)
    }

    pub(crate) async fn mknod(
        &self,
        dir: &FileHandle,
        name: &str,
        what: SpecialFile,
        s: SetAttr,
    ) -> Made {
        each!(self, n => n.mknod(dir, name, what, s).await)
    }

    pub(crate) async fn remove(&self, dir: &FileHandle, name: &str) -> Result<(), Error> {
        each!(self, n => n.remove(dir, name).await)
    }

    pub(crate) async fn rmdir(&self, dir: &FileHandle, name: &str) -> Result<(), Error> {
        each!(self, n => n.rmdir(dir, name).await)
    }

    pub(crate) async fn rename(
        &self,
        from: &FileHandle,
        fname: &str,
        to: &FileHandle,
        tname: &str,
    ) -> Result<(), Error> {
        each!(self, n => n.rename(from, fname, to, tname).await)
    }

    pub(crate) async fn link(
        &self,
        file: &FileHandle,
        dir: &FileHandle,
        name: &str,
    ) -> Result<(), Error> {
        each!(self, n => n.link(file, dir, name).await)
    }

    pub(crate) async fn readdir(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        each!(self, n => n.readdir(dir, cookie, verf, count).await)
    }

    pub(crate) async fn readdirplus(
        &self,
        dir: &FileHandle,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Error> {
        each!(self, n => n.readdirplus(dir, cookie, verf, count).await)
    }

    pub(crate) async fn fsstat(&self, fh: &FileHandle) -> Result<FsStat, Error> {
        each!(self, n => n.fsstat(fh).await)
    }

    pub(crate) async fn fsinfo(&self, fh: &FileHandle) -> Result<FsLimits, Error> {
        each!(self, n => n.fsinfo(fh).await)
    }

    /// Whether local opens hold server state ([`Wire::open_state`]).
    pub(crate) fn holds_opens(&self) -> bool {
        matches!(self, Wire::V4(_))
    }

    /// A local open of `fh` for `mode` (1 read, 2 write, 3 both): NFSv4 holds a server
    /// open for it; NFSv3 has none.
    pub(crate) async fn open_state(&self, fh: &FileHandle, mode: u32) -> Result<(), Error> {
        match self {
            Wire::V3(_) => Ok(()),
            Wire::V4(n) => n.open_state(fh, mode).await,
        }
    }

    /// The local close that goes with [`Wire::open_state`], once its data is written.
    pub(crate) async fn close_state(&self, fh: &FileHandle, mode: u32) {
        if let Wire::V4(n) = self {
            n.close_state(fh, mode).await;
        }
    }
}
