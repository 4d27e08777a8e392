//! Client commands: `ls`, `cat`, `cp`, `mkdir`, `rm`, `mv`, `stat`, `df`, `ln -s`, over
//! the rnfs client library. Addresses are libnfs-style URLs:
//! `nfs://host[:port]/export/path?version=3&nfsport=N&mountport=M&uid=U&gid=G`.
//!
//! `privport=1` in a URL connects from a source port below 1024 (needed by `secure`
//! exports; needs root).
//!
//! Unless the URL says `hard`, the tools mount `soft` (a dead server gives an error, not a
//! hang). Every failure prints one line naming the operation and the path, and the
//! command exits non-zero.
//!
//! `cp SRC... DST` copies local to NFS, NFS to local or NFS to NFS; `-r` copies trees
//! (symbolic links as links), `-j N` copies N files at once (default 4), and a progress
//! bar is drawn on stderr when it is a terminal (`--progress` / `--no-progress` force it).
//! An NFS destination file is closed before it counts as copied, so a write-back error
//! (e.g. ENOSPC) fails the copy.
use anyhow::{anyhow, bail, Context, Result};
use rnfs_client::{Attr, Client, FileType, MountOptions, NfsUrl, OpenOptions, Status};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The client commands.
#[derive(clap::Subcommand)]
pub(crate) enum ToolCmd {
    /// List a directory on an NFS server.
    Ls {
        /// Long format: type, mode, links, owner, size, time.
        #[arg(short = 'l')]
        long: bool,
        /// Recurse into subdirectories.
        #[arg(short = 'R')]
        recursive: bool,
        /// nfs:// URL of the directory (or file).
        url: String,
    },
    /// Print files to standard output.
    Cat {
        /// nfs:// URLs.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// Copy files: local to NFS, NFS to local, or NFS to NFS; several files at once.
    ///
    /// `cp SRC DST`, or `cp SRC... DIR` (DIR must be an existing directory). With -r, a
    /// directory is copied with everything in it (symbolic links as links). A progress
    /// bar is shown on stderr when it is a terminal.
    Cp {
        /// Copy directories recursively.
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// Files copied in parallel.
        #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        /// Show the progress bar even when stderr is not a terminal.
        #[arg(long, conflicts_with = "no_progress")]
        progress: bool,
        /// Never show the progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Sources (local paths or nfs:// URLs), then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Create a directory.
    Mkdir {
        /// Create missing parents; an existing directory is not an error.
        #[arg(short = 'p')]
        parents: bool,
        /// nfs:// URL.
        url: String,
    },
    /// Remove a file (or, with -r, a directory tree).
    Rm {
        /// Remove directories and their contents.
        #[arg(short = 'r')]
        recursive: bool,
        /// nfs:// URL.
        url: String,
    },
    /// Rename within one export.
    Mv {
        /// nfs:// URL of the source.
        src: String,
        /// nfs:// URL of the destination (same server and export).
        dst: String,
    },
    /// Show attributes of a path.
    Stat {
        /// nfs:// URL.
        url: String,
    },
    /// Show space on an export.
    Df {
        /// nfs:// URL.
        url: String,
    },
    /// Create a symbolic link.
    Ln {
        /// Make a symbolic link (the only kind supported).
        #[arg(short = 's', required = true)]
        symbolic: bool,
        /// Link target (stored as given).
        target: String,
        /// nfs:// URL of the link to create.
        url: String,
    },
}

pub(crate) fn is_nfs(s: &str) -> bool {
    s.starts_with("nfs://")
}

pub(crate) async fn mount(url: &str) -> Result<(Client, String)> {
    let u = NfsUrl::parse(url)?;
    let mut o = MountOptions::from_url(&u);
    if u.soft.is_none() {
        o.soft = true;
        o.retrans = u.retrans.unwrap_or(2);
        if u.timeo.is_none() {
            o.timeo = Duration::from_secs(5);
        }
    }
    let c = Client::mount_with(&u, o)
        .await
        .with_context(|| format!("cannot mount {url}"))?;
    let p = c.url_path().to_string();
    Ok((c, p))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs one client command.
pub(crate) fn run(cmd: ToolCmd) -> Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            ToolCmd::Ls {
                long,
                recursive,
                url,
            } => ls(&url, long, recursive).await,
            ToolCmd::Cat { urls } => {
                for u in urls {
                    cat(&u).await?;
                }
                Ok(())
            }
            ToolCmd::Cp {
                recursive,
                jobs,
                progress,
                no_progress,
                mut paths,
            } => {
                let dst = paths.pop().unwrap_or_default();
                let show = !no_progress && (progress || std::io::stderr().is_terminal());
                copy::cp(&paths, &dst, recursive, usize::from(jobs), show).await
            }
            ToolCmd::Mkdir { parents, url } => {
                let (c, p) = mount(&url).await?;
                if parents {
                    c.mkdir_all(&p, 0o755).await
                } else {
                    c.mkdir(&p, 0o755).await
                }
                .with_context(|| format!("mkdir {url}"))?;
                Ok(())
            }
            ToolCmd::Rm { recursive, url } => {
                let (c, p) = mount(&url).await?;
                rm(&c, &p, recursive)
                    .await
                    .with_context(|| format!("rm {url}"))
            }
            ToolCmd::Mv { src, dst } => mv(&src, &dst).await,
            ToolCmd::Stat { url } => {
                let (c, p) = mount(&url).await?;
                let a = c
                    .metadata(&p)
                    .await
                    .with_context(|| format!("stat {url}"))?;
                print_stat(&p, &a);
                Ok(())
            }
            ToolCmd::Df { url } => {
                let (c, _) = mount(&url).await?;
                let s = c.fsstat().await.with_context(|| format!("df {url}"))?;
                println!(
                    "{:>14} {:>14} {:>14} {:>5}  Mounted",
                    "Size", "Used", "Avail", "Use%"
                );
                let used = s.tbytes.saturating_sub(s.fbytes);
                let pct = used.saturating_mul(100).checked_div(s.tbytes).unwrap_or(0);
                println!(
                    "{:>14} {:>14} {:>14} {:>4}%  {url}",
                    s.tbytes, used, s.abytes, pct
                );
                Ok(())
            }
            ToolCmd::Ln { target, url, .. } => {
                let (c, p) = mount(&url).await?;
                c.symlink(&target, &p)
                    .await
                    .with_context(|| format!("ln -s {target} {url}"))
            }
        }
    })
}

fn type_char(t: FileType) -> char {
    match t {
        FileType::Reg => '-',
        FileType::Dir => 'd',
        FileType::Blk => 'b',
        FileType::Chr => 'c',
        FileType::Lnk => 'l',
        FileType::Sock => 's',
        FileType::Fifo => 'p',
    }
}

fn mode_string(a: &Attr) -> String {
    let mut s = String::with_capacity(10);
    s.push(type_char(a.ftype));
    for shift in [6, 3, 0] {
        let m = (a.mode >> shift) & 7;
        s.push(if m & 4 != 0 { 'r' } else { '-' });
        s.push(if m & 2 != 0 { 'w' } else { '-' });
        s.push(if m & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, H. Hinnant).
fn time_string(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn long_line(a: &Attr, name: &str) -> String {
    format!(
        "{} {:>3} {:>5} {:>5} {:>10} {} {}",
        mode_string(a),
        a.nlink,
        a.uid,
        a.gid,
        a.size,
        time_string(a.mtime.seconds),
        name
    )
}

/// A name as `ls` shows it, escaped as GNU `ls -b` does so that a server cannot move the
/// cursor, recolour or clear the terminal, or forge lines: control characters (C0, DEL,
/// C1) as `\n`, `\t`... or `\ooo` (octal, per byte), bytes that are not UTF-8 as `\ooo`,
/// and a backslash doubled so the escapes stay unambiguous. Spaces are left alone.
pub(crate) fn shown(name: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            let esc = match c {
                '\\' => "\\\\",
                '\x07' => "\\a",
                '\x08' => "\\b",
                '\t' => "\\t",
                '\n' => "\\n",
                '\x0b' => "\\v",
                '\x0c' => "\\f",
                '\r' => "\\r",
                c if c.is_control() => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                    continue;
                }
                c => {
                    out.push(c);
                    continue;
                }
            };
            out.push_str(esc);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

async fn ls(url: &str, long: bool, recursive: bool) -> Result<()> {
    let (c, p) = mount(url).await?;
    let a = c.metadata(&p).await.with_context(|| format!("ls {url}"))?;
    if a.ftype != FileType::Dir {
        let name = shown(p.rsplit('/').next().unwrap_or(&p).as_bytes());
        println!("{}", if long { long_line(&a, &name) } else { name });
        return Ok(());
    }
    let mut todo = vec![p.clone()];
    let mut first = true;
    while let Some(dir) = todo.pop() {
        let mut entries = c
            .read_dir(&dir)
            .await
            .with_context(|| format!("ls {dir}"))?;
        entries.sort_by(|x, y| x.name.cmp(&y.name));
        if recursive {
            if !first {
                println!();
            }
            println!("{}:", shown(dir.as_bytes()));
        }
        first = false;
        let mut subdirs = Vec::new();
        for e in &entries {
            let name = e.name_lossy();
            let attr = match &e.attr {
                Some(a) => Some(a.clone()),
                None if long || recursive => c.metadata(&join(&dir, &name)).await.ok(),
                None => None,
            };
            let show = shown(&e.name);
            match (&attr, long) {
                (Some(a), true) => println!("{}", long_line(a, &show)),
                _ => println!("{show}"),
            }
            if recursive && attr.is_some_and(|a| a.ftype == FileType::Dir) {
                subdirs.push(join(&dir, &name));
            }
        }
        todo.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

async fn cat(url: &str) -> Result<()> {
    let (c, p) = mount(url).await?;
    let mut f = c
        .open(&p, OpenOptions::read())
        .await
        .with_context(|| format!("cat {url}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut out = std::io::stdout().lock();
    loop {
        let n = f
            .read(&mut buf)
            .await
            .with_context(|| format!("cat {url}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn base_name(s: &str) -> Result<String> {
    let path = if is_nfs(s) {
        NfsUrl::parse(s)?.path
    } else {
        s.to_string()
    };
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{s}: no file name to copy"))
}

async fn rm(c: &Client, p: &str, recursive: bool) -> Result<()> {
    let a = c.metadata(p).await?;
    if a.ftype != FileType::Dir {
        return Ok(c.remove(p).await?);
    }
    if !recursive {
        bail!("is a directory (use -r)");
    }
    // Depth first, iteratively.
    let mut stack = vec![(p.to_string(), false)];
    while let Some((dir, listed)) = stack.pop() {
        if listed {
            c.rmdir(&dir).await?;
            continue;
        }
        stack.push((dir.clone(), true));
        for e in c.read_dir(&dir).await? {
            let child = join(&dir, &e.name_lossy());
            let is_dir = match e.attr {
                Some(a) => a.ftype == FileType::Dir,
                None => c.metadata(&child).await?.ftype == FileType::Dir,
            };
            if is_dir {
                stack.push((child, false));
            } else {
                match c.remove(&child).await {
                    Ok(()) | Err(rnfs_client::Error::Nfs(Status::NoEnt)) => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {child}")),
                }
            }
        }
    }
    Ok(())
}

async fn mv(src: &str, dst: &str) -> Result<()> {
    let (c, p) = mount(src).await?;
    let su = NfsUrl::parse(src)?;
    let du = NfsUrl::parse(dst)?;
    if (&su.host, su.nfsport) != (&du.host, du.nfsport) {
        bail!("mv: {src} and {dst} are on different servers (use cp, then rm)");
    }
    // The export is the part of the source path that the URL path inside it does not cover.
    let export = su
        .path
        .strip_suffix(p.as_str())
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let rel = du
        .path
        .strip_prefix(&export)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| anyhow!("mv: {dst} is not in the export {export}/ of {src}"))?;
    let mut to = if rel.is_empty() {
        "/".to_string()
    } else {
        rel.to_string()
    };
    if let Ok(a) = c.metadata(&to).await {
        if a.ftype == FileType::Dir {
            to = join(&to, &base_name(src)?);
        }
    }
    c.rename(&p, &to)
        .await
        .with_context(|| format!("mv {src} {dst}"))
}

fn print_stat(p: &str, a: &Attr) {
    let kind = match a.ftype {
        FileType::Reg => "regular file",
        FileType::Dir => "directory",
        FileType::Blk => "block device",
        FileType::Chr => "character device",
        FileType::Lnk => "symbolic link",
        FileType::Sock => "socket",
        FileType::Fifo => "fifo",
    };
    println!("  File: {p}");
    println!("  Size: {:<12} Blocks used: {:<10} {kind}", a.size, a.used);
    println!(
        "Fileid: {:<12} Fsid: {:<10} Links: {}",
        a.fileid, a.fsid, a.nlink
    );
    println!(
        "Access: ({:04o}/{})  Uid: {}  Gid: {}",
        a.mode & 0o7777,
        mode_string(a),
        a.uid,
        a.gid
    );
    for (n, t) in [
        ("Access", a.atime),
        ("Modify", a.mtime),
        ("Change", a.ctime),
    ] {
        println!("{n}: {}.{:09} UTC", time_string(t.seconds), t.nseconds);
    }
}

/// `rnfs cp`: sources are walked first (directories created in order), then files are
/// copied by `jobs` tasks at once, with an optional progress bar.
mod copy {
    use super::{base_name, is_nfs, join, mount};
    use anyhow::{anyhow, bail, Context, Result};
    use rnfs_client::rpc::buf::{Gather, Slice};
    use rnfs_client::FileType;
    use rnfs_client::{Client, NfsUrl, OpenOptions};
    use rustix::fs::{AtFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// One side of a copy: the local file system or a mounted export.
    #[derive(Clone)]
    enum Fs {
        Local,
        /// The client, and `nfs://host/export` for messages.
        Nfs(Client, String),
    }

    /// Where a copy reads or writes. A local destination below the path the user named is
    /// reached only through directories held open (`at`), one name at a time with
    /// `O_NOFOLLOW`: nothing a server names can steer the copy through a symbolic link or
    /// `..` out of the destination (issue 13).
    #[derive(Clone)]
    struct Loc {
        fs: Fs,
        /// The path: for NFS, inside the export; for local, for messages (and for the
        /// paths the user named, which have no `at`).
        path: String,
        /// Local only: the directory holding this entry, and its name there.
        at: Option<(Arc<OwnedFd>, String)>,
        /// Local only: this directory, held open for creating what goes in it.
        open: Option<Arc<OwnedFd>>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        File,
        Dir,
        Link,
    }

    impl Loc {
        async fn parse(arg: &str) -> Result<Loc> {
            if !is_nfs(arg) {
                return Ok(Loc {
                    fs: Fs::Local,
                    path: arg.to_string(),
                    at: None,
                    open: None,
                });
            }
            let (c, p) = mount(arg).await?;
            // For messages: the URL without its query, up to the path inside the export.
            let base = arg.split('?').next().unwrap_or(arg).trim_end_matches('/');
            let prefix = match base.strip_suffix(p.trim_end_matches('/')) {
                Some(b) => b.to_string(),
                None => {
                    let u = NfsUrl::parse(arg)?;
                    let export = u.path.strip_suffix(p.as_str()).unwrap_or("");
                    format!("nfs://{}{}", u.host, export.trim_end_matches('/'))
                }
            };
            Ok(Loc {
                fs: Fs::Nfs(c, prefix),
                path: p,
                at: None,
                open: None,
            })
        }

        /// The entry `name` in this directory; `name` must be a single file name (the
        /// client refuses others from a listing already; this holds for every caller).
        fn child(&self, name: &str) -> Result<Loc> {
            if let Err(why) = rnfs_client::readdir::check_name(name.as_bytes()) {
                bail!("{}: refusing the name {name:?} ({why})", self.show());
            }
            Ok(Loc {
                fs: self.fs.clone(),
                path: join(&self.path, name),
                at: self.open.as_ref().map(|d| (d.clone(), name.to_string())),
                open: None,
            })
        }

        fn show(&self) -> String {
            match &self.fs {
                Fs::Local => self.path.clone(),
                Fs::Nfs(_, prefix) => format!("{prefix}{}", self.path),
            }
        }

        /// Kind and size, without following a final symbolic link.
        async fn stat(&self) -> Result<(Kind, u64)> {
            let (t, size) = match &self.fs {
                Fs::Local if self.at.is_some() => {
                    let (dir, name) = self.at.as_ref().ok_or_else(|| anyhow!("no directory"))?;
                    let st = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                    let k = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                        rustix::fs::FileType::Directory => Kind::Dir,
                        rustix::fs::FileType::Symlink => Kind::Link,
                        _ => Kind::File,
                    };
                    (k, st.st_size as u64)
                }
                Fs::Local => {
                    let m = std::fs::symlink_metadata(&self.path)?;
                    let t = m.file_type();
                    let k = if t.is_dir() {
                        Kind::Dir
                    } else if t.is_symlink() {
                        Kind::Link
                    } else {
                        Kind::File
                    };
                    (k, m.len())
                }
                Fs::Nfs(c, _) => {
                    let a = c.metadata(&self.path).await?;
                    let k = match a.ftype {
                        FileType::Dir => Kind::Dir,
                        FileType::Lnk => Kind::Link,
                        _ => Kind::File,
                    };
                    (k, a.size)
                }
            };
            Ok((t, size))
        }

        async fn list(&self) -> Result<Vec<String>> {
            let mut v = match &self.fs {
                Fs::Local => std::fs::read_dir(&self.path)?
                    .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
                    .collect::<std::io::Result<Vec<_>>>()?,
                Fs::Nfs(c, _) => c
                    .read_dir(&self.path)
                    .await?
                    .iter()
                    .map(|e| e.name_lossy())
                    .collect(),
            };
            v.sort();
            Ok(v)
        }

        /// Creates the directory (an existing directory is fine) and returns it ready to
        /// take entries: a local one held open. Below the path the user named, an
        /// existing symbolic link where the directory goes is an error, never followed.
        async fn mkdir(&self) -> Result<Loc> {
            match &self.fs {
                Fs::Local => {
                    let dir = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                    let fd = match &self.at {
                        Some((parent, name)) => {
                            match rustix::fs::mkdirat(parent, name.as_str(), Mode::from(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(e.into()),
                            }
                            rustix::fs::openat(
                                parent,
                                name.as_str(),
                                dir | OFlags::NOFOLLOW,
                                Mode::empty(),
                            )
                            .map_err(|e| match e {
                                Errno::LOOP => {
                                    anyhow!("it exists and is a symbolic link (not followed)")
                                }
                                Errno::NOTDIR => anyhow!("it exists and is not a directory"),
                                e => e.into(),
                            })?
                        }
                        None => {
                            match std::fs::create_dir(&self.path) {
                                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                                r => r?,
                            }
                            rustix::fs::open(self.path.as_str(), dir, Mode::empty())?
                        }
                    };
                    Ok(Loc {
                        open: Some(Arc::new(fd)),
                        ..self.clone()
                    })
                }
                Fs::Nfs(c, _) => match c.mkdir(&self.path, 0o755).await {
                    Err(rnfs_client::Error::Nfs(rnfs_client::Status::Exist))
                        if self.stat().await?.0 == Kind::Dir =>
                    {
                        Ok(self.clone())
                    }
                    r => Ok(r.map(|_| self.clone())?),
                },
            }
        }

        /// This directory (named by the user, so followed if a link), held open for
        /// creating entries in it.
        fn open_dir(&self) -> Result<Loc> {
            if !matches!(self.fs, Fs::Local) {
                return Ok(self.clone());
            }
            let fd = match &self.at {
                Some((parent, name)) => rustix::fs::openat(
                    parent,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?,
                None => rustix::fs::open(
                    self.path.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?,
            };
            Ok(Loc {
                open: Some(Arc::new(fd)),
                ..self.clone()
            })
        }

        /// Creates (or truncates) a local regular file; below the path the user named, an
        /// existing symbolic link in its place is an error, never followed.
        fn create_local(&self) -> Result<std::fs::File> {
            Ok(match &self.at {
                Some((dir, name)) => std::fs::File::from(
                    rustix::fs::openat(
                        dir,
                        name.as_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::TRUNC
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from(0o666),
                    )
                    .map_err(|e| match e {
                        Errno::LOOP => anyhow!("it exists and is a symbolic link (not followed)"),
                        e => e.into(),
                    })?,
                ),
                None => std::fs::File::create(&self.path)?,
            })
        }

        async fn readlink(&self) -> Result<String> {
            Ok(match &self.fs {
                Fs::Local => std::fs::read_link(&self.path)?
                    .to_string_lossy()
                    .into_owned(),
                Fs::Nfs(c, _) => c.readlink(&self.path).await?,
            })
        }

        /// Creates a symbolic link holding `target` (never followed here).
        async fn symlink(&self, target: &str) -> Result<()> {
            match &self.fs {
                Fs::Local => match &self.at {
                    Some((dir, name)) => rustix::fs::symlinkat(target, dir, name.as_str())?,
                    None => std::os::unix::fs::symlink(target, &self.path)?,
                },
                Fs::Nfs(c, _) => c.symlink(target, &self.path).await?,
            }
            Ok(())
        }
    }

    enum Reader {
        Local(std::fs::File),
        Nfs(Box<rnfs_client::File>),
    }

    impl Reader {
        /// The next bytes, at most `buf.len()`: from NFS as slices of the client's page
        /// cache (no copy), from a local file read into `buf`. Empty at the end.
        async fn next<'a>(&mut self, buf: &'a mut [u8]) -> Result<Chunk<'a>> {
            Ok(match self {
                Reader::Local(f) => {
                    let n = tokio::task::block_in_place(|| f.read(buf))?;
                    Chunk::Read(&buf[..n])
                }
                Reader::Nfs(f) => Chunk::Shared(f.read_shared(buf.len()).await?),
            })
        }
    }

    /// Bytes read for a copy.
    enum Chunk<'a> {
        /// Read into the copy buffer.
        Read(&'a [u8]),
        /// Shared with the client's page cache.
        Shared(Vec<Slice>),
    }

    impl Chunk<'_> {
        fn len(&self) -> usize {
            match self {
                Chunk::Read(b) => b.len(),
                Chunk::Shared(v) => v.iter().map(|s| s.len()).sum(),
            }
        }
    }

    /// Writes every byte of `parts` to `out`, in order, with vectored writes.
    fn write_parts(out: &mut std::fs::File, parts: &[Slice]) -> std::io::Result<()> {
        let mut g = Gather::new(parts);
        while !g.done(parts) {
            let n = out.write_vectored(&g.iov(parts))?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            g.advance(parts, n);
        }
        Ok(())
    }

    /// Bytes moved per read/write of a copy.
    const COPY_BUF: usize = 4 << 20;

    /// Copies one regular file; bytes are counted into `done` as they are written.
    async fn copy_file(src: &Loc, dst: &Loc, done: &AtomicU64) -> Result<()> {
        let mut r = match &src.fs {
            Fs::Local => Reader::Local(
                std::fs::File::open(&src.path)
                    .with_context(|| format!("cannot open {}", src.show()))?,
            ),
            Fs::Nfs(c, _) => Reader::Nfs(Box::new(
                c.open(&src.path, OpenOptions::read())
                    .await
                    .with_context(|| format!("cannot open {}", src.show()))?,
            )),
        };
        // A local source is read a large buffer at a time (fewer calls). An NFS source is
        // read one READ's worth at a time (at least 1 MiB), as slices of the client's page
        // cache, with its read-ahead in flight ahead: each READ's pages are handed over as
        // soon as they are in, and their buffer goes back to the receive pool while still
        // in the processor's cache (a 1 GiB copy from nfs-ganesha on tmpfs spent a quarter
        // less time in the socket receive copy than when it asked for 4 MiB at a time).
        let step = match &src.fs {
            Fs::Local => COPY_BUF,
            Fs::Nfs(c, _) => (c.rsize() as usize).clamp(1 << 20, COPY_BUF),
        };
        let mut buf = vec![0u8; step];
        let mut copied = 0u64;
        match &dst.fs {
            Fs::Local => {
                let mut out = dst
                    .create_local()
                    .with_context(|| format!("cannot create {}", dst.show()))?;
                loop {
                    let chunk = r
                        .next(&mut buf)
                        .await
                        .with_context(|| format!("reading {}", src.show()))?;
                    let n = chunk.len();
                    if n == 0 {
                        break;
                    }
                    tokio::task::block_in_place(|| match &chunk {
                        Chunk::Read(b) => out.write_all(b),
                        Chunk::Shared(parts) => write_parts(&mut out, parts),
                    })
                    .with_context(|| format!("writing {}", dst.show()))?;
                    done.fetch_add(n as u64, Ordering::Relaxed);
                    copied += n as u64;
                }
                // A device such as /dev/null has nothing to sync (and fsync(2) says EINVAL).
                let regular = out.metadata().is_ok_and(|m| m.is_file());
                if regular {
                    tokio::task::block_in_place(|| out.sync_all())
                        .with_context(|| format!("writing {}", dst.show()))?;
                }
            }
            Fs::Nfs(c, _) => {
                let mut f = c
                    .open(&dst.path, OpenOptions::create_truncate())
                    .await
                    .with_context(|| format!("cannot create {}", dst.show()))?;
                loop {
                    let chunk = r
                        .next(&mut buf)
                        .await
                        .with_context(|| format!("reading {}", src.show()))?;
                    let n = chunk.len();
                    if n == 0 {
                        break;
                    }
                    match chunk {
                        Chunk::Read(b) => f.write(b).await.map(|_| ()),
                        Chunk::Shared(parts) => {
                            async {
                                for p in parts {
                                    f.write_shared(p).await?;
                                }
                                Ok(())
                            }
                            .await
                        }
                    }
                    .with_context(|| format!("writing {}", dst.show()))?;
                    done.fetch_add(n as u64, Ordering::Relaxed);
                    copied += n as u64;
                }
                // Write-back errors are reported here (W1): the copy is not done before.
                f.close()
                    .await
                    .with_context(|| format!("writing {}", dst.show()))?;
            }
        }
        // The client ends a read where the server's data ends, even inside the size the
        // server claims (never zeros in its place). A copy shorter than that size is an
        // error, not a success: the file shrank while being copied, or the server
        // contradicts itself (issue 13: a claimed 2^40 bytes with empty READs).
        if let Reader::Nfs(f) = &r {
            let size = f
                .metadata()
                .await
                .with_context(|| format!("reading {}", src.show()))?
                .size;
            if copied < size {
                bail!(
                    "{}: incomplete copy: the server's data ended at byte {copied} of the \
                     {size} its attributes claim (the file shrank, or the server is \
                     inconsistent); {} holds the {copied} bytes read",
                    src.show(),
                    dst.show()
                );
            }
        }
        Ok(())
    }

    struct Job {
        src: Loc,
        dst: Loc,
        size: u64,
    }

    /// Walks `src` (copied to `dst`): creates directories and links as it goes, and
    /// queues regular files.
    async fn plan(src: Loc, dst: Loc, recursive: bool, jobs: &mut Vec<Job>) -> Result<()> {
        let (kind, size) = src
            .stat()
            .await
            .with_context(|| format!("cannot stat {}", src.show()))?;
        match kind {
            Kind::File => jobs.push(Job { src, dst, size }),
            Kind::Link if recursive => {
                let t = src
                    .readlink()
                    .await
                    .with_context(|| format!("cannot read link {}", src.show()))?;
                dst.symlink(&t)
                    .await
                    .with_context(|| format!("cannot create link {}", dst.show()))?;
            }
            Kind::Link => jobs.push(Job { src, dst, size }),
            Kind::Dir if !recursive => {
                bail!("{} is a directory (use -r)", src.show())
            }
            Kind::Dir => {
                let dst = dst
                    .mkdir()
                    .await
                    .with_context(|| format!("cannot create directory {}", dst.show()))?;
                let names = src
                    .list()
                    .await
                    .with_context(|| format!("cannot list {}", src.show()))?;
                for n in names {
                    Box::pin(plan(src.child(&n)?, dst.child(&n)?, recursive, jobs)).await?;
                }
            }
        }
        Ok(())
    }

    /// A one-line progress bar on stderr, redrawn every 200 ms.
    struct Progress {
        files: u64,
        bytes: u64,
        files_done: AtomicU64,
        bytes_done: AtomicU64,
        start: Instant,
    }

    fn human(b: f64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = b;
        let mut i = 0;
        while v >= 1024.0 && i + 1 < units.len() {
            v /= 1024.0;
            i += 1;
        }
        format!("{v:.1} {}", units[i])
    }

    impl Progress {
        fn line(&self) -> String {
            let (f, b) = (
                self.files_done.load(Ordering::Relaxed),
                self.bytes_done.load(Ordering::Relaxed),
            );
            let frac = if self.bytes > 0 {
                b as f64 / self.bytes as f64
            } else if self.files > 0 {
                f as f64 / self.files as f64
            } else {
                1.0
            };
            let frac = frac.clamp(0.0, 1.0);
            let width = 30;
            let fill = (frac * width as f64) as usize;
            let secs = self.start.elapsed().as_secs_f64().max(0.001);
            format!(
                "[{}{}] {:3.0}% {f}/{} files {} / {} {}/s",
                "#".repeat(fill),
                "-".repeat(width - fill),
                frac * 100.0,
                self.files,
                human(b as f64),
                human(self.bytes as f64),
                human(b as f64 / secs),
            )
        }

        fn draw(&self, last: bool) {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{}", self.line());
            if last {
                let _ = writeln!(e);
            }
            let _ = e.flush();
        }
    }

    pub(super) async fn cp(
        srcs: &[String],
        dst: &str,
        recursive: bool,
        jobs: usize,
        show: bool,
    ) -> Result<()> {
        let mut to = Loc::parse(dst).await?;
        let to_is_dir = matches!(to.stat().await, Ok((Kind::Dir, _)))
            || (!is_nfs(dst) && std::path::Path::new(dst).is_dir());
        if to_is_dir {
            to = to
                .open_dir()
                .with_context(|| format!("cannot open directory {dst}"))?;
        }
        if srcs.len() > 1 && !to_is_dir {
            bail!("cp: target {dst} is not a directory");
        }
        // Plan every source; a bad source is reported and the others are still copied.
        let mut queue = Vec::new();
        let mut failed = 0usize;
        for s in srcs {
            let r = async {
                let from = Loc::parse(s).await?;
                let target = if to_is_dir {
                    to.child(&base_name(s)?)?
                } else {
                    to.clone()
                };
                plan(from, target, recursive, &mut queue).await
            }
            .await;
            if let Err(e) = r {
                eprintln!("rnfs: cp: {e:#}");
                failed += 1;
            }
        }
        let prog = Arc::new(Progress {
            files: queue.len() as u64,
            bytes: queue.iter().map(|j| j.size).sum(),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            start: Instant::now(),
        });
        let drawer = show.then(|| {
            let p = prog.clone();
            tokio::spawn(async move {
                loop {
                    p.draw(false);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        let total = queue.len();
        let queue = Arc::new(parking_lot_free::Queue::new(queue));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..jobs.max(1).min(total.max(1)) {
            let (q, p) = (queue.clone(), prog.clone());
            tasks.spawn(async move {
                let mut errors = Vec::new();
                while let Some(j) = q.pop() {
                    if let Err(e) = copy_file(&j.src, &j.dst, &p.bytes_done).await {
                        errors.push(format!("{e:#}"));
                    }
                    p.files_done.fetch_add(1, Ordering::Relaxed);
                }
                errors
            });
        }
        let mut copy_failed = 0;
        while let Some(r) = tasks.join_next().await {
            for e in r.map_err(|e| anyhow!("cp: a copy task failed: {e}"))? {
                if show {
                    eprint!("\r\x1b[2K");
                }
                eprintln!("rnfs: cp: {e}");
                copy_failed += 1;
            }
        }
        if let Some(d) = drawer {
            d.abort();
            prog.draw(true);
        }
        if failed + copy_failed > 0 {
            bail!(
                "cp: {} of {} sources and {} of {total} files failed (see above)",
                failed,
                srcs.len(),
                copy_failed
            );
        }
        Ok(())
    }

    /// A shared work list without a lock crate: a mutex around a vector.
    mod parking_lot_free {
        pub(super) struct Queue<T>(std::sync::Mutex<Vec<T>>);
        impl<T> Queue<T> {
            pub(super) fn new(mut v: Vec<T>) -> Self {
                v.reverse();
                Self(std::sync::Mutex::new(v))
            }
            pub(super) fn pop(&self) -> Option<T> {
                self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names() {
        assert_eq!(time_string(0), "1970-01-01 00:00");
        assert_eq!(time_string(951_782_400), "2000-02-29 00:00");
        assert_eq!(base_name("nfs://h/a/b.txt").ok().as_deref(), Some("b.txt"));
        assert_eq!(base_name("/tmp/x/").ok().as_deref(), Some("x"));
        assert!(base_name("nfs://h/").is_err());
    }

    #[test]
    fn names_are_shown_with_control_characters_escaped() {
        assert_eq!(shown(b"plain name.txt"), "plain name.txt");
        assert_eq!(shown(b"red\x1b[31mX"), "red\\033[31mX");
        assert_eq!(shown(b"a\nb\tc\x07"), "a\\nb\\tc\\a");
        assert_eq!(shown(b"back\\slash"), "back\\\\slash");
        assert_eq!(shown(b"bad-\xff"), "bad-\\377");
        assert_eq!(shown("c1-\u{9b}".as_bytes()), "c1-\\302\\233");
        assert_eq!(shown("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }
}
