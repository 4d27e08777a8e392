//! A blocking wrapper: the async client driven by its own small tokio runtime, for tools
//! and programs without an executor. Do not use it from inside an async context.
use crate::client::{Client, MountOptions};
use crate::error::Error;
use crate::file::{File, OpenOptions};
use crate::readdir::DirEntry;
use crate::types::{Attr, FsStat};
use crate::url::NfsUrl;
use std::io::SeekFrom;
use std::sync::Arc;
use tokio::runtime::Runtime;

/// A mounted export with blocking methods.
pub struct BlockingClient {
    rt: Arc<Runtime>,
    c: Client,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.c.fmt(f)
    }
}

fn runtime() -> Result<Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|_| Error::Invalid("cannot start the client's runtime"))
}

impl BlockingClient {
    /// Mounts the export named by `url` (see [`Client::mount`]).
    pub fn mount(url: &str) -> Result<Self, Error> {
        let u = NfsUrl::parse(url)?;
        let o = MountOptions::from_url(&u);
        Self::mount_with(&u, o)
    }

    /// Mounts with explicit options.
    pub fn mount_with(url: &NfsUrl, o: MountOptions) -> Result<Self, Error> {
        let rt = Arc::new(runtime()?);
        let c = rt.block_on(Client::mount_with(url, o))?;
        Ok(Self { rt, c })
    }

    /// The async client (use with [`BlockingClient::block_on`]).
    pub fn client(&self) -> &Client {
        &self.c
    }

    /// Runs a future on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Opens a file.
    pub fn open(&self, path: &str, o: OpenOptions) -> Result<BlockingFile, Error> {
        let f = self.rt.block_on(self.c.open(path, o))?;
        Ok(BlockingFile {
            rt: self.rt.clone(),
            f: Some(f),
        })
    }

    /// Attributes of a path.
    pub fn metadata(&self, path: &str) -> Result<Attr, Error> {
        self.rt.block_on(self.c.metadata(path))
    }

    /// Lists a directory.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        self.rt.block_on(self.c.read_dir(path))
    }

    /// Creates a directory.
    pub fn mkdir(&self, path: &str, mode: u32) -> Result<(), Error> {
        self.rt.block_on(self.c.mkdir(path, mode)).map(|_| ())
    }

    /// Removes a file.
    pub fn remove(&self, path: &str) -> Result<(), Error> {
        self.rt.block_on(self.c.remove(path))
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, path: &str) -> Result<(), Error> {
        self.rt.block_on(self.c.rmdir(path))
    }

    /// Renames.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        self.rt.block_on(self.c.rename(from, to))
    }

    /// Space figures.
    pub fn fsstat(&self) -> Result<FsStat, Error> {
        self.rt.block_on(self.c.fsstat())
    }
}

/// An open file with `std::io` traits. Dropping it without [`BlockingFile::close`] writes
/// back in the background and leaves any error to the next opener (W3).
pub struct BlockingFile {
    rt: Arc<Runtime>,
    f: Option<File>,
}

impl std::fmt::Debug for BlockingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingFile")
            .field("file", &self.f)
            .finish()
    }
}

impl BlockingFile {
    fn file(&mut self) -> Result<&mut File, Error> {
        self.f.as_mut().ok_or(Error::Invalid("file closed"))
    }

    /// Writes back and commits; reports write-back errors once (W1).
    pub fn fsync(&mut self) -> Result<(), Error> {
        let rt = self.rt.clone();
        rt.block_on(self.file()?.fsync())
    }

    /// Closes, reporting write-back errors like `fsync`.
    pub fn close(mut self) -> Result<(), Error> {
        let f = self.f.take().ok_or(Error::Invalid("file closed"))?;
        self.rt.block_on(f.close())
    }

    /// Attributes.
    pub fn metadata(&mut self) -> Result<Attr, Error> {
        let rt = self.rt.clone();
        rt.block_on(self.file()?.metadata())
    }

    /// Truncates or extends.
    pub fn set_len(&mut self, len: u64) -> Result<(), Error> {
        let rt = self.rt.clone();
        rt.block_on(self.file()?.set_len(len))
    }
}

impl std::io::Read for BlockingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rt = self.rt.clone();
        Ok(rt.block_on(self.file()?.read(buf))?)
    }
}

impl std::io::Write for BlockingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let rt = self.rt.clone();
        Ok(rt.block_on(self.file()?.write(buf))?)
    }
    /// Data is written back at `fsync`/`close`; `flush` only hands it to the cache.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for BlockingFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let rt = self.rt.clone();
        Ok(rt.block_on(self.file()?.seek(pos))?)
    }
}

impl Drop for BlockingFile {
    fn drop(&mut self) {
        let _g = self.rt.enter();
        drop(self.f.take());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn a_bad_url_is_refused_before_any_io() {
        let e = super::BlockingClient::mount("nfs://h/x?sec=krb5").unwrap_err();
        assert!(e.to_string().contains("sec"));
    }
}
