//! `rnfs mount` and `rnfs umount`: an NFS export as a FUSE mount (crate `rnfs-fuse`).
//!
//! By default `rnfs mount` returns once the mount is in place and keeps serving it from a
//! background process (itself, started again with `--foreground`); `-f` serves in the
//! foreground until unmounted or interrupted.
use anyhow::{bail, Context, Result};
use rnfs_fuse::MountConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub(crate) struct MountArgs {
    /// The export: nfs://host[:port]/export[/path][?version=3&mountport=N...]
    url: String,
    /// Where to mount it (an existing directory).
    mountpoint: PathBuf,
    /// Mount options, comma-separated (ro, rsize=, wsize=, actimeo=, acregmin=, acregmax=,
    /// acdirmin=, acdirmax=, noac, hard, soft, timeo=, retrans=, uid=, gid=, vers=3 or vers=4.1,
    /// port=, mountport=, allow_other, default_permissions). Anything else is refused.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Serve in the foreground until unmounted (SIGINT/SIGTERM unmount).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// In the background, append the server process's log here (default: discarded once
    /// the mount is up; errors before that are printed).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct UmountArgs {
    /// The mount point.
    mountpoint: PathBuf,
    /// Detach now even if busy; cleaned up when no longer used (umount -l).
    #[arg(short = 'z', long)]
    lazy: bool,
}

/// Whether `path` is a FUSE mount point now (from /proc/self/mountinfo).
fn is_fuse_mount(path: &Path) -> bool {
    let Ok(p) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        f.get(4) == Some(&want.as_str()) && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

pub(crate) fn mount(a: MountArgs) -> Result<()> {
    // Refuse bad options before anything else, in this process.
    let cfg = MountConfig::parse_all(&a.options)?;
    if !a.mountpoint.is_dir() {
        bail!("mount point {} is not a directory", a.mountpoint.display());
    }
    if a.foreground {
        rnfs_fuse::run(&a.url, &a.mountpoint, &cfg, || {
            tracing::info!("{} mounted on {}", a.url, a.mountpoint.display())
        })?;
        return Ok(());
    }
    if is_fuse_mount(&a.mountpoint) {
        bail!("{} is already a FUSE mount point", a.mountpoint.display());
    }
    let exe = std::env::current_exe().context("cannot find the rnfs executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("--foreground")
        .arg(&a.url)
        .arg(&a.mountpoint);
    for o in &a.options {
        cmd.arg("-o").arg(o);
    }
    let errlog = match &a.log {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open log {}", p.display()))?,
        None => tempfile_in_tmp()?,
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errlog.try_clone()?)
        .process_group(0);
    use std::os::unix::process::CommandExt;
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            let msg = a
                .log
                .as_ref()
                .map(|p| format!("see {}", p.display()))
                .unwrap_or_else(|| read_back(&errlog));
            bail!("mount failed ({st}): {msg}");
        }
        if is_fuse_mount(&a.mountpoint) {
            println!(
                "{} mounted on {} (pid {})",
                a.url,
                a.mountpoint.display(),
                child.id()
            );
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            bail!("mount did not appear within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An unnamed temporary file for the child's early errors.
fn tempfile_in_tmp() -> Result<std::fs::File> {
    let p = std::env::temp_dir().join(format!("rnfs-mount-{}.log", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)?;
    let _ = std::fs::remove_file(&p);
    Ok(f)
}

fn read_back(f: &std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut f = f;
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "no message".into()
    } else {
        s.to_string()
    }
}

pub(crate) fn umount(a: UmountArgs) -> Result<()> {
    if !is_fuse_mount(&a.mountpoint) {
        bail!("{} is not a FUSE mount point", a.mountpoint.display());
    }
    let mut tried = Vec::new();
    for (prog, args) in [
        ("fusermount3", vec![if a.lazy { "-uz" } else { "-u" }]),
        ("fusermount", vec![if a.lazy { "-uz" } else { "-u" }]),
        ("umount", if a.lazy { vec!["-l"] } else { vec![] }),
    ] {
        match Command::new(prog).args(&args).arg(&a.mountpoint).status() {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => tried.push(format!("{prog}: {s}")),
            Err(e) => tried.push(format!("{prog}: {e}")),
        }
        if !is_fuse_mount(&a.mountpoint) {
            return Ok(());
        }
    }
    bail!(
        "cannot unmount {} ({})",
        a.mountpoint.display(),
        tried.join("; ")
    )
}
