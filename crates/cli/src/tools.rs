//! Client commands: `ls`, `cat`, `cp`, `mkdir`, `rm`, `mv`, `stat`, `df`, `ln -s`, over
//! the rnfs client library. Addresses are libnfs-style URLs:
//! `nfs://host[:port]/export/path?version=3&nfsport=N&mountport=M&uid=U&gid=G`.
//!
//! Unless the URL says `hard`, the tools mount `soft` (a dead server gives an error, not a
//! hang). Every failure prints one line naming the operation and the path, and the
//! command exits non-zero.
use anyhow::{anyhow, bail, Context, Result};
use rnfs_client::{Attr, Client, MountOptions, NfsUrl, OpenOptions};
use rnfs_proto::nfs3::{Ftype3, Nfsstat3};
use std::io::{Read, Write};
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
    /// Copy a file: local to NFS, NFS to local, or NFS to NFS.
    Cp {
        /// Source: a local path or an nfs:// URL.
        src: String,
        /// Destination: a local path or an nfs:// URL (an existing directory receives the
        /// source's name).
        dst: String,
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

fn is_nfs(s: &str) -> bool {
    s.starts_with("nfs://")
}

async fn mount(url: &str) -> Result<(Client, String)> {
    let u = NfsUrl::parse(url)?;
    let mut o = MountOptions::from_url(&u);
    if u.soft.is_none() {
        o.soft = true;
        o.retrans = u.retrans.unwrap_or(3);
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
            ToolCmd::Cp { src, dst } => cp(&src, &dst).await,
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
                let pct = if s.tbytes > 0 {
                    used * 100 / s.tbytes
                } else {
                    0
                };
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

fn type_char(t: Ftype3) -> char {
    match t {
        Ftype3::Reg => '-',
        Ftype3::Dir => 'd',
        Ftype3::Blk => 'b',
        Ftype3::Chr => 'c',
        Ftype3::Lnk => 'l',
        Ftype3::Sock => 's',
        Ftype3::Fifo => 'p',
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
fn time_string(secs: u32) -> String {
    let secs = i64::from(secs);
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

fn join(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

async fn ls(url: &str, long: bool, recursive: bool) -> Result<()> {
    let (c, p) = mount(url).await?;
    let a = c.metadata(&p).await.with_context(|| format!("ls {url}"))?;
    if a.ftype != Ftype3::Dir {
        let name = p.rsplit('/').next().unwrap_or(&p);
        println!(
            "{}",
            if long {
                long_line(&a, name)
            } else {
                name.to_string()
            }
        );
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
            println!("{dir}:");
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
            match (&attr, long) {
                (Some(a), true) => println!("{}", long_line(a, &name)),
                _ => println!("{name}"),
            }
            if recursive && attr.is_some_and(|a| a.ftype == Ftype3::Dir) {
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

fn base_name(s: &str) -> Result<String> {
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

async fn cp(src: &str, dst: &str) -> Result<()> {
    // Source.
    enum Src {
        Local(std::fs::File),
        Nfs(rnfs_client::File),
    }
    let mut source = if is_nfs(src) {
        let (c, p) = mount(src).await?;
        Src::Nfs(
            c.open(&p, OpenOptions::read())
                .await
                .with_context(|| format!("cp: cannot open {src}"))?,
        )
    } else {
        Src::Local(std::fs::File::open(src).with_context(|| format!("cp: cannot open {src}"))?)
    };
    let name = base_name(src)?;
    let mut buf = vec![0u8; 1 << 20];
    if is_nfs(dst) {
        let (c, mut p) = mount(dst).await?;
        if let Ok(a) = c.metadata(&p).await {
            if a.ftype == Ftype3::Dir {
                p = join(&p, &name);
            }
        }
        let mut f = c
            .open(&p, OpenOptions::create_truncate())
            .await
            .with_context(|| format!("cp: cannot create {dst}"))?;
        loop {
            let n = match &mut source {
                Src::Local(l) => l.read(&mut buf)?,
                Src::Nfs(r) => r.read(&mut buf).await?,
            };
            if n == 0 {
                break;
            }
            f.write(&buf[..n])
                .await
                .with_context(|| format!("cp: writing {dst}"))?;
        }
        f.close()
            .await
            .with_context(|| format!("cp: writing {dst}"))?;
    } else {
        let mut path = std::path::PathBuf::from(dst);
        if path.is_dir() {
            path.push(&name);
        }
        let mut out = std::fs::File::create(&path)
            .with_context(|| format!("cp: cannot create {}", path.display()))?;
        loop {
            let n = match &mut source {
                Src::Local(l) => l.read(&mut buf)?,
                Src::Nfs(r) => r.read(&mut buf).await?,
            };
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
    }
    Ok(())
}

async fn rm(c: &Client, p: &str, recursive: bool) -> Result<()> {
    let a = c.metadata(p).await?;
    if a.ftype != Ftype3::Dir {
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
                Some(a) => a.ftype == Ftype3::Dir,
                None => c.metadata(&child).await?.ftype == Ftype3::Dir,
            };
            if is_dir {
                stack.push((child, false));
            } else {
                match c.remove(&child).await {
                    Ok(()) | Err(rnfs_client::Error::Nfs(Nfsstat3::NoEnt)) => {}
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
        if a.ftype == Ftype3::Dir {
            to = join(&to, &base_name(src)?);
        }
    }
    c.rename(&p, &to)
        .await
        .with_context(|| format!("mv {src} {dst}"))
}

fn print_stat(p: &str, a: &Attr) {
    let kind = match a.ftype {
        Ftype3::Reg => "regular file",
        Ftype3::Dir => "directory",
        Ftype3::Blk => "block device",
        Ftype3::Chr => "character device",
        Ftype3::Lnk => "symbolic link",
        Ftype3::Sock => "socket",
        Ftype3::Fifo => "fifo",
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
}
