//! The FUSE mount of an rnfs client: unmodified programs on an NFSv3 export.
//!
//! [`MountConfig`] is the typed form of `-o` options; [`run`] mounts and serves in the
//! calling thread until the file system is unmounted; [`Mounted`] does the same in the
//! background (tests, embedding). The file system itself is [`fs::RnfsFs`].
//!
//! fuser is used without libfuse: the mount is made with the `mount(2)` system call when
//! running as root, else through `fusermount3` (Debian package fuse3), which also serves
//! `rnfs umount` for users.
pub mod fs;
pub mod options;

pub use fs::RnfsFs;
pub use options::{MountConfig, OptionError};

use fuser::MountOption;
use rnfs_client::{Client, NfsUrl};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `-o` option was refused.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// The NFS side failed (URL, MOUNT, first calls).
    #[error("{0}")]
    Nfs(#[from] rnfs_client::Error),
    /// The FUSE side failed (no /dev/fuse, mount point, permissions).
    #[error("FUSE mount on {path}: {err}")]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// What the system said.
        err: std::io::Error,
    },
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("rnfs-fuse")
        .enable_all()
        .build()
}

fn fuse_options(url: &NfsUrl, cfg: &MountConfig) -> Vec<MountOption> {
    let mut o = vec![
        MountOption::FSName(format!("{}:{}", url.host, url.path)),
        MountOption::Subtype("rnfs".into()),
    ];
    if cfg.ro {
        o.push(MountOption::RO);
    }
    if cfg.allow_other {
        o.push(MountOption::AllowOther);
    }
    if cfg.default_permissions {
        o.push(MountOption::DefaultPermissions);
    }
    o
}

async fn setup(url: &NfsUrl, cfg: &MountConfig) -> Result<RnfsFs, MountError> {
    let c = Client::mount_with(url, cfg.client_options(url)).await?;
    Ok(RnfsFs::new(c, cfg.clone()).await?)
}

fn prepare(url: &str, cfg: &MountConfig) -> Result<NfsUrl, MountError> {
    let mut u = NfsUrl::parse(url)?;
    cfg.apply_to_url(&mut u)?;
    Ok(u)
}

/// Mounts `url` on `mountpoint` and serves it in this thread until it is unmounted
/// (`rnfs umount`, `fusermount3 -u`, or SIGINT/SIGTERM, which unmount). `ready` runs once
/// the mount is in place. Files still open at the end are written back.
pub fn run(
    url: &str,
    mountpoint: &Path,
    cfg: &MountConfig,
    ready: impl FnOnce(),
) -> Result<(), MountError> {
    let u = prepare(url, cfg)?;
    let fuse_err = |err| MountError::Fuse {
        path: mountpoint.to_path_buf(),
        err,
    };
    let rt = runtime().map_err(fuse_err)?;
    let fs = rt.block_on(setup(&u, cfg))?;
    let closer = fs.closer();
    let mut session =
        fuser::Session::new(fs, mountpoint, &fuse_options(&u, cfg)).map_err(fuse_err)?;
    let mut unmounter = session.unmount_callable();
    let mnt = mountpoint.to_path_buf();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal: unmounting {}", mnt.display());
        if let Err(e) = unmounter.unmount() {
            tracing::error!("unmount of {} failed: {e}", mnt.display());
        }
    });
    let m = mountpoint.to_path_buf();
    std::thread::spawn(move || raise_kernel_readahead(&m));
    ready();
    let r = session.run();
    drop(session);
    let failed = rt.block_on(closer.close_all());
    if failed > 0 {
        tracing::error!("{failed} file(s) open at unmount could not be written back");
    }
    r.map_err(fuse_err)
}

/// A mount served by threads of this process; unmounted when dropped.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    closer: fs::Closer,
    rt: Arc<tokio::runtime::Runtime>,
    path: PathBuf,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

impl Mounted {
    /// Mounts `url` on `mountpoint` in the background.
    pub fn new(url: &str, mountpoint: &Path, cfg: &MountConfig) -> Result<Self, MountError> {
        let u = prepare(url, cfg)?;
        let fuse_err = |err| MountError::Fuse {
            path: mountpoint.to_path_buf(),
            err,
        };
        let rt = Arc::new(runtime().map_err(fuse_err)?);
        let fs = rt.block_on(setup(&u, cfg))?;
        let closer = fs.closer();
        let session = fuser::Session::new(fs, mountpoint, &fuse_options(&u, cfg))
            .and_then(fuser::Session::spawn)
            .map_err(fuse_err)?;
        let m = mountpoint.to_path_buf();
        std::thread::spawn(move || raise_kernel_readahead(&m));
        Ok(Self {
            session: Some(session),
            closer,
            rt,
            path: mountpoint.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and waits for the session to end; writes back files still open.
    pub fn unmount(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(s) = self.session.take() {
            release_mount(&self.path);
            s.join();
            let failed = self.rt.block_on(self.closer.close_all());
            if failed > 0 {
                tracing::error!("{failed} file(s) open at unmount could not be written back");
            }
        }
    }
}

/// The kernel's read-ahead on a mount, in KiB: how far ahead of a sequential reader it
/// asks, and so the size of its READ requests (up to the 1 MiB `max_write` gives as the
/// request size limit at INIT).
pub const KERNEL_READAHEAD_KB: u32 = 1024;

/// FUSE's `statfs` type.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

fn is_fuse(path: &Path) -> bool {
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == FUSE_SUPER_MAGIC)
}

/// Raises the kernel's read-ahead on the mount at `path` to [`KERNEL_READAHEAD_KB`]. The
/// kernel starts a FUSE mount at 128 KiB (the smaller of its default and what the file
/// system asks for at INIT), so a sequential read reached us as 128 KiB requests, each a
/// round trip through /dev/fuse and our tasks: `dd bs=1M` of 1 GiB read at 1.2 GB/s, and
/// at 1.9 GB/s with 1 MiB requests. Only root may write the setting
/// (`/sys/class/bdi/MAJ:MIN/read_ahead_kb`); otherwise it stays as the kernel set it.
/// `stat` of the mount point waits for the INIT exchange, so this runs on a thread of its
/// own while the session starts serving.
fn raise_kernel_readahead(path: &Path) {
    let Ok(st) = rustix::fs::stat(path) else {
        return;
    };
    // Only our FUSE mount (an anonymous device, major 0), never the file system under it
    // if the mount already went away.
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    if major != 0 || !is_fuse(path) {
        return;
    }
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&knob, KERNEL_READAHEAD_KB.to_string()) {
        Ok(()) => tracing::debug!("{knob}: {KERNEL_READAHEAD_KB}"),
        Err(e) => tracing::debug!("kernel read-ahead left as it was ({knob}: {e})"),
    }
}

/// Unmounts `path` so that the session ends. A file closed just before may still be being
/// released by the kernel, which answers EBUSY for that moment: retry for up to 2 s, then
/// detach lazily (the session ends once the kernel lets go). fuser's own unmount, which
/// gives up at the first EBUSY and leaves its thread reading /dev/fuse (and `join` waiting)
/// forever, then finds nothing left to do. Without the right to unmount (not root), fuser's
/// `fusermount -u` does it.
fn release_mount(path: &Path) {
    use rustix::mount::{unmount, UnmountFlags};
    // Only a FUSE mount (already unmounted by someone else: nothing of ours is there).
    if !is_fuse(path) {
        return;
    }
    for _ in 0..40 {
        match unmount(path, UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Ok(()) | Err(_) => return,
        }
    }
    tracing::warn!("{} still busy after 2 s: detaching it", path.display());
    let _ = unmount(path, UnmountFlags::DETACH);
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.finish();
    }
}
