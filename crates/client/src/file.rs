//! Open files: reads through the page cache, writes into the write-back engine, `fsync`
//! and `close` report write-back errors through the handle's error cursor (W1-W4).
//!
//! Consistency is close-to-open: `open` fetches fresh attributes (dropping cached pages if
//! the file changed), `close` writes and commits everything.
use crate::client::{Attr, Client};
use crate::error::Error;
use crate::inode::{Inode, PAGE};
use crate::writeback::ErrCursor;
use rnfs_proto::nfs3::{access, Ftype3, Nfsstat3, Sattr3};
use std::io::SeekFrom;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// How to open a file, like [`std::fs::OpenOptions`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Allow reading.
    pub read: bool,
    /// Allow writing.
    pub write: bool,
    /// Every write goes to the end of the file.
    pub append: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Fail if the file exists, even as a symbolic link (implies `create`; sent as an
    /// EXCLUSIVE CREATE, so a retransmitted call cannot fail with EEXIST).
    pub create_new: bool,
    /// Truncate to zero length.
    pub truncate: bool,
    /// Mode of a created file (0o644 if 0).
    pub mode: u32,
}

impl OpenOptions {
    /// Read only.
    pub fn read() -> Self {
        Self {
            read: true,
            ..Default::default()
        }
    }

    /// Write, create and truncate (what `>` in a shell does).
    pub fn create_truncate() -> Self {
        Self {
            write: true,
            create: true,
            truncate: true,
            ..Default::default()
        }
    }
}

/// An open regular file.
#[derive(Debug)]
pub struct File {
    c: Client,
    ino: Arc<Inode>,
    pos: u64,
    cursor: ErrCursor,
    opts: OpenOptions,
    closed: bool,
}

impl Client {
    /// Opens (and maybe creates or truncates) the file at `path`.
    pub async fn open(&self, path: &str, o: OpenOptions) -> Result<File, Error> {
        let create = o.create || o.create_new;
        if (create || o.truncate || o.append) && !o.write {
            return Err(Error::Invalid(
                "create, truncate and append need write access",
            ));
        }
        // What an existing file must grant (a file this open creates grants its creator
        // everything, whatever its mode, as open(2) does).
        let mut mask = 0;
        if o.read {
            mask |= access::READ;
        }
        if o.write {
            mask |= if o.append {
                access::EXTEND
            } else {
                access::MODIFY
            };
        }
        let mode = if o.mode == 0 { 0o644 } else { o.mode };
        // Close-to-open: fresh attributes at every open (from the ACCESS reply).
        let (ino, attr, _) = self
            .open_path(path, o.create, o.create_new, mode, mask)
            .await?;
        match attr.ftype {
            Ftype3::Reg => {}
            Ftype3::Dir => return Err(Error::Nfs(Nfsstat3::IsDir)),
            _ => return Err(Error::Invalid("not a regular file")),
        }
        let cursor = ino.wb.lock().open_cursor();
        let mut f = File {
            c: self.clone(),
            ino,
            pos: 0,
            cursor,
            opts: o,
            closed: false,
        };
        if o.truncate {
            f.set_len(0).await?;
        }
        Ok(f)
    }
}

impl File {
    /// The inode.
    pub fn inode(&self) -> &Arc<Inode> {
        &self.ino
    }

    /// Bytes of this file not yet acknowledged by the server (dirty or in flight).
    pub fn unwritten_bytes(&self) -> u64 {
        self.ino.wb.lock().unwritten_bytes()
    }

    /// Bytes of this file written UNSTABLE and not yet committed (W6: resent if the
    /// server's write verifier changes).
    pub fn uncommitted_bytes(&self) -> u64 {
        self.ino.wb.lock().uncommitted_bytes()
    }

    /// Counters of the file's write-back engine.
    pub fn wb_stats(&self) -> crate::writeback::WbStats {
        self.ino.wb.lock().stats()
    }

    /// Attributes, with the size including data not yet written back.
    pub async fn metadata(&self) -> Result<Attr, Error> {
        self.c.getattr(&self.ino).await
    }

    /// Moves the position.
    pub async fn seek(&mut self, to: SeekFrom) -> Result<u64, Error> {
        let p = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.metadata().await?.size.checked_add_signed(d),
        };
        self.pos = p.ok_or(Error::Nfs(Nfsstat3::Inval))?;
        Ok(self.pos)
    }

    /// Reads at the position and advances it; 0 at end of file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.read_at(self.pos, buf).await?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads at `off` through the page cache, with data not yet written back on top.
    pub async fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Error> {
        if !self.opts.read {
            return Err(Error::Invalid("file not opened for reading"));
        }
        let size = self.metadata().await?.size;
        if off >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - off) as usize;
        let end = off + n as u64;
        let mut pos = off;
        while pos < end {
            let idx = pos / PAGE;
            let page = self.page(idx).await?;
            let in_page = (pos - idx * PAGE) as usize;
            let take = ((end - pos) as usize).min(PAGE as usize - in_page);
            let dst = &mut buf[(pos - off) as usize..(pos - off) as usize + take];
            let avail = page.len().saturating_sub(in_page).min(take);
            if avail > 0 {
                dst[..avail].copy_from_slice(&page[in_page..in_page + avail]);
            }
            dst[avail..].fill(0); // beyond the server's EOF: a hole our writes will fill
            pos += take as u64;
        }
        self.ino.wb.lock().overlay(off, &mut buf[..n]);
        Ok(n)
    }

    async fn page(&self, idx: u64) -> Result<Arc<Vec<u8>>, Error> {
        if let Some(p) = self.ino.page(idx) {
            return Ok(p);
        }
        let gen = self.ino.data_gen.load(Ordering::Acquire);
        let mut data = Vec::with_capacity(PAGE as usize);
        let start = idx * PAGE;
        while (data.len() as u64) < PAGE {
            let want = (PAGE - data.len() as u64).min(u64::from(self.c.s.rsize)) as u32;
            let r = self
                .c
                .s
                .nfs
                .read(self.ino.fh(), start + data.len() as u64, want)
                .await?;
            let got = r.data.0.len();
            data.extend_from_slice(&r.data.0);
            if r.eof || got == 0 {
                break;
            }
        }
        let page = Arc::new(data);
        // Cache only if no write raced with this READ.
        if self.ino.data_gen.load(Ordering::Acquire) == gen {
            self.c.s.inodes.evict_pages(page.len() as u64, &self.ino);
            self.ino.store_page(idx, page.clone());
        }
        Ok(page)
    }

    /// Writes at the position (or at the end, in append mode) and advances it.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if self.opts.append {
            self.pos = self.metadata().await?.size;
        }
        let n = self.write_at(self.pos, buf).await?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Writes at `off` into the cache. Fails early only with a write-back error newer than
    /// this handle's cursor (W4), and waits for the data to be written when the file is in
    /// sync mode after a failure (W5) or when the file holds too much unwritten data.
    pub async fn write_at(&mut self, off: u64, buf: &[u8]) -> Result<usize, Error> {
        if !self.opts.write {
            return Err(Error::Invalid("file not opened for writing"));
        }
        if self.closed {
            return Err(Error::Invalid("file closed"));
        }
        off.checked_add(buf.len() as u64)
            .ok_or(Error::Nfs(Nfsstat3::FBig))?;
        let sync = {
            let mut wb = self.ino.wb.lock();
            if wb.sync_mode() {
                wb.check(&mut self.cursor)?;
            }
            wb.sync_mode()
        };
        self.ino.invalidate_range(off, buf.len() as u64);
        let acts = self.ino.with_wb(|wb| {
            wb.write(Instant::now(), off, buf);
            wb.poll(Instant::now())
        });
        self.c.run(&self.ino, acts);
        if sync {
            self.c.wait_wb(&self.ino, true, |wb| wb.is_written()).await;
            self.ino.wb.lock().check(&mut self.cursor)?;
        } else if self.ino.wb.lock().held_bytes() > self.c.s.opts.dirty_bytes_per_file {
            let limit = self.c.s.opts.dirty_bytes_per_file / 2;
            self.c
                .wait_wb(&self.ino, true, move |wb| wb.held_bytes() <= limit)
                .await;
        }
        Ok(buf.len())
    }

    /// Writes everything and commits it; reports write-back errors newer than this
    /// handle's cursor, once (W1).
    pub async fn fsync(&mut self) -> Result<(), Error> {
        self.c.wait_wb(&self.ino, true, |wb| wb.is_clean()).await;
        self.ino.wb.lock().check(&mut self.cursor)
    }

    /// Truncates or extends the file: drops cached data beyond `len`, waits for WRITEs in
    /// flight (so none lands past the new end), then SETATTR.
    pub async fn set_len(&mut self, len: u64) -> Result<(), Error> {
        if !self.opts.write {
            return Err(Error::Invalid("file not opened for writing"));
        }
        self.ino.with_wb(|wb| wb.truncate(len));
        self.c
            .wait_wb(&self.ino, false, |wb| {
                wb.unwritten_bytes() == 0 || wb.local_end() <= len
            })
            .await;
        self.ino.invalidate_all();
        let a = self
            .c
            .s
            .nfs
            .setattr(
                self.ino.fh(),
                Sattr3 {
                    size: Some(len),
                    ..Default::default()
                },
            )
            .await?;
        match a {
            Some(a) => {
                self.ino.set_attr(Instant::now(), a);
            }
            None => self.ino.expire_attr(),
        }
        Ok(())
    }

    /// Flushes, commits and reports errors like [`File::fsync`]; the handle is finished.
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        if !self.opts.write {
            return Ok(());
        }
        self.fsync().await
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if self.closed || !self.opts.write {
            return;
        }
        // Dropped without close: write back in the background; any error stays unseen and
        // is reported to the next handle (W3).
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let (c, ino) = (self.c.clone(), self.ino.clone());
            h.spawn(async move { c.wait_wb(&ino, true, |wb| wb.is_clean()).await });
        } else {
            // No runtime here: the inode stays in the table with its data, and the
            // client's background write-back sends and commits it once it expires.
            self.c.s.inodes.touch(&self.ino);
        }
    }
}
