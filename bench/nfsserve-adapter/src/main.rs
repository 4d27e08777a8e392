//! `nfsserve-adapter DIR [--listen 127.0.0.1:PORT]`: serves DIR over NFSv3 with the
//! `nfsserve` crate, whose published package ships no binary and no example file system.
//!
//! The crate's `NFSFileSystem` trait names files by a u64 id; this adapter keeps an id <->
//! path table (ids are never reused, the root is 1), lists directories sorted by name
//! (cached per directory while its mtime is unchanged, so a long listing is not re-read for
//! every READDIRPLUS chunk), and does its I/O with positioned `std::fs` calls. MOUNT answers
//! on the NFS port; the export is `/`.
use async_trait::async_trait;
use nfsserve::fs_util::{metadata_to_fattr3, path_setattr};
use nfsserve::nfs::{fattr3, fileid3, filename3, nfspath3, nfsstat3, sattr3, set_mode3};
use nfsserve::tcp::{NFSTcp, NFSTcpListener};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

struct Listing {
    mtime: SystemTime,
    entries: Vec<(Vec<u8>, fileid3)>,
    index: HashMap<fileid3, usize>,
}

struct DirFs {
    ids: RwLock<(Vec<PathBuf>, HashMap<PathBuf, fileid3>)>,
    listings: Mutex<HashMap<fileid3, Arc<Listing>>>,
}

fn err(e: std::io::Error) -> nfsstat3 {
    match e.kind() {
        ErrorKind::NotFound => nfsstat3::NFS3ERR_NOENT,
        ErrorKind::AlreadyExists => nfsstat3::NFS3ERR_EXIST,
        ErrorKind::PermissionDenied => nfsstat3::NFS3ERR_ACCES,
        _ => match e.raw_os_error() {
            Some(28) => nfsstat3::NFS3ERR_NOSPC,
            Some(39) => nfsstat3::NFS3ERR_NOTEMPTY,
            Some(20) => nfsstat3::NFS3ERR_NOTDIR,
            Some(21) => nfsstat3::NFS3ERR_ISDIR,
            _ => nfsstat3::NFS3ERR_IO,
        },
    }
}

impl DirFs {
    fn new(root: PathBuf) -> Self {
        let mut m = HashMap::new();
        m.insert(root.clone(), 1);
        DirFs {
            // ids[0] is a placeholder so that ids[id] is the path of id (the root is 1).
            ids: RwLock::new((vec![PathBuf::new(), root], m)),
            listings: Mutex::new(HashMap::new()),
        }
    }
    fn path(&self, id: fileid3) -> Result<PathBuf, nfsstat3> {
        let t = self.ids.read().unwrap();
        match t.0.get(id as usize) {
            Some(p) if id != 0 => Ok(p.clone()),
            _ => Err(nfsstat3::NFS3ERR_STALE),
        }
    }
    fn intern(&self, p: PathBuf) -> fileid3 {
        if let Some(id) = self.ids.read().unwrap().1.get(&p) {
            return *id;
        }
        let mut t = self.ids.write().unwrap();
        if let Some(id) = t.1.get(&p) {
            return *id;
        }
        let id = t.0.len() as fileid3;
        t.0.push(p.clone());
        t.1.insert(p, id);
        id
    }
    fn child(&self, dirid: fileid3, name: &[u8]) -> Result<PathBuf, nfsstat3> {
        if name.is_empty() || name.contains(&b'/') {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        Ok(self.path(dirid)?.join(OsStr::from_bytes(name)))
    }
    fn attr(&self, id: fileid3, p: &Path) -> Result<fattr3, nfsstat3> {
        let m = std::fs::symlink_metadata(p).map_err(err)?;
        Ok(metadata_to_fattr3(id, &m))
    }
    fn listing(&self, dirid: fileid3) -> Result<Arc<Listing>, nfsstat3> {
        let dir = self.path(dirid)?;
        let mtime = std::fs::metadata(&dir).map_err(err)?.modified().map_err(err)?;
        if let Some(l) = self.listings.lock().unwrap().get(&dirid) {
            if l.mtime == mtime {
                return Ok(l.clone());
            }
        }
        let mut names = Vec::new();
        for d in std::fs::read_dir(&dir).map_err(err)? {
            names.push(d.map_err(err)?.file_name().as_bytes().to_vec());
        }
        names.sort();
        let entries: Vec<_> = names
            .into_iter()
            .map(|n| {
                let id = self.intern(dir.join(OsStr::from_bytes(&n)));
                (n, id)
            })
            .collect();
        let index = entries.iter().enumerate().map(|(i, e)| (e.1, i)).collect();
        let l = Arc::new(Listing { mtime, entries, index });
        self.listings.lock().unwrap().insert(dirid, l.clone());
        Ok(l)
    }
    fn created(&self, p: PathBuf) -> Result<(fileid3, fattr3), nfsstat3> {
        let id = self.intern(p.clone());
        Ok((id, self.attr(id, &p)?))
    }
}

#[async_trait]
impl NFSFileSystem for DirFs {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadWrite
    }
    fn root_dir(&self) -> fileid3 {
        1
    }
    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let dir = self.path(dirid)?;
        let p = match filename.0.as_slice() {
            b"." => dir,
            b".." => {
                if dirid == 1 {
                    dir
                } else {
                    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
                }
            }
            n => self.child(dirid, n)?,
        };
        std::fs::symlink_metadata(&p).map_err(err)?;
        Ok(self.intern(p))
    }
    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        let p = self.path(id)?;
        self.attr(id, &p)
    }
    async fn setattr(&self, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let p = self.path(id)?;
        path_setattr(&p, &setattr).await?;
        self.attr(id, &p)
    }
    async fn read(&self, id: fileid3, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        let f = std::fs::File::open(self.path(id)?).map_err(err)?;
        let len = f.metadata().map_err(err)?.len();
        let want = (count as u64).min(len.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match f.read_at(&mut buf[got..], offset + got as u64).map_err(err)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok((buf, offset + got as u64 >= len))
    }
    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path(id)?)
            .map_err(err)?;
        f.write_all_at(data, offset).map_err(err)?;
        Ok(metadata_to_fattr3(id, &f.metadata().map_err(err)?))
    }
    async fn create(&self, dirid: fileid3, filename: &filename3, attr: sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, &filename.0)?;
        let mode = match attr.mode {
            set_mode3::mode(m) => m & 0o7777,
            _ => 0o644,
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&p)
            .map_err(err)?;
        path_setattr(&p, &attr).await?;
        self.created(p)
    }
    async fn create_exclusive(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        let p = self.child(dirid, &filename.0)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&p)
            .map_err(err)?;
        Ok(self.intern(p))
    }
    async fn mkdir(&self, dirid: fileid3, dirname: &filename3) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, &dirname.0)?;
        std::fs::create_dir(&p).map_err(err)?;
        self.created(p)
    }
    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        let p = self.child(dirid, &filename.0)?;
        let m = std::fs::symlink_metadata(&p).map_err(err)?;
        if m.is_dir() {
            std::fs::remove_dir(&p).map_err(err)
        } else {
            std::fs::remove_file(&p).map_err(err)
        }
    }
    async fn rename(&self, from_dirid: fileid3, from_filename: &filename3, to_dirid: fileid3, to_filename: &filename3) -> Result<(), nfsstat3> {
        let from = self.child(from_dirid, &from_filename.0)?;
        let to = self.child(to_dirid, &to_filename.0)?;
        std::fs::rename(&from, &to).map_err(err)?;
        // Repoint the moved object's id (descendants of a moved directory keep stale paths:
        // good enough for the benchmark, which renames nothing).
        let mut t = self.ids.write().unwrap();
        if let Some(id) = t.1.remove(&from) {
            t.0[id as usize] = to.clone();
            t.1.insert(to, id);
        }
        Ok(())
    }
    async fn readdir(&self, dirid: fileid3, start_after: fileid3, max_entries: usize) -> Result<ReadDirResult, nfsstat3> {
        let l = self.listing(dirid)?;
        let start = if start_after == 0 {
            0
        } else {
            match l.index.get(&start_after) {
                Some(i) => i + 1,
                None => return Err(nfsstat3::NFS3ERR_BAD_COOKIE),
            }
        };
        let mut entries = Vec::new();
        let mut i = start;
        while i < l.entries.len() && entries.len() < max_entries {
            let (name, id) = &l.entries[i];
            let p = self.path(*id)?;
            if let Ok(attr) = self.attr(*id, &p) {
                entries.push(DirEntry { fileid: *id, name: name.clone().into(), attr });
            }
            i += 1;
        }
        Ok(ReadDirResult { entries, end: i >= l.entries.len() })
    }
    async fn symlink(&self, dirid: fileid3, linkname: &filename3, symlink: &nfspath3, _attr: &sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        let p = self.child(dirid, &linkname.0)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(&symlink.0), &p).map_err(err)?;
        self.created(p)
    }
    async fn readlink(&self, id: fileid3) -> Result<nfspath3, nfsstat3> {
        let t = std::fs::read_link(self.path(id)?).map_err(err)?;
        Ok(t.as_os_str().as_bytes().to_vec().into())
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut listen) = (None, "127.0.0.1:11111".to_string());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR:PORT"),
            _ => dir = Some(a),
        }
    }
    let dir = std::fs::canonicalize(dir.expect("usage: nfsserve-adapter DIR [--listen ADDR:PORT]"))
        .expect("DIR must exist");
    let l = NFSTcpListener::bind(&listen, DirFs::new(dir)).await.expect("bind");
    eprintln!("nfsserve-adapter: listening on {listen}");
    l.handle_forever().await.expect("serve");
}
