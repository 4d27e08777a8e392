//! The client commands (`rnfs ls/cat/cp/mkdir/rm/mv/stat/df/ln`), run as the real binary
//! against an `rnfs serve --memory` process, or against an external server when
//! `RNFS_TEST_URL=nfs://host/export?version=3&nfsport=N&mountport=M` is set (then each test
//! works in its own directory of that export; run with `--test-threads=1`;
//! tests/interop/client-ganesha.sh does it for nfs-ganesha). A test that needs an rnfs server
//! process prints `SKIPPED` (and appends to `$RNFS_TEST_SKIP_LOG`) when it cannot run.
#![allow(clippy::unwrap_used)]
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rnfs");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if rnfs_testkit::listening(std::net::SocketAddr::from(([127, 0, 0, 1], port))) {
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("rnfs serve exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("rnfs serve did not listen on {port}");
}

/// A test that does not apply to the external server: a recorded skip (rnfs-testkit).
fn not_applicable(why: &str) {
    rnfs_testkit::not_applicable(why);
}

/// The server a test talks to, and the directory of the export it works in.
struct Server {
    child: Option<Child>,
    /// `nfs://host[:port]/export` without a trailing slash.
    base: String,
    /// `version=3&...`, without `?`.
    query: String,
    /// The test's directory inside the export (`""` for an rnfs server of its own).
    dir: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn external() -> Option<String> {
    std::env::var("RNFS_TEST_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

impl Server {
    fn start(test: &str) -> Server {
        if let Some(u) = external() {
            let (base, query) = u.split_once('?').unwrap_or((&u, "version=3"));
            let mut s = Server {
                child: None,
                base: base.trim_end_matches('/').to_string(),
                query: query.to_string(),
                dir: String::new(),
            };
            let _ = rnfs(&["rm", "-r", &s.url(&format!("/t-{test}"))]);
            ok(&["mkdir", "-p", &s.url(&format!("/t-{test}"))]);
            s.dir = format!("/t-{test}");
            return s;
        }
        Self::spawn(&["--memory", "64MiB"], "")
    }

    /// `rnfs serve ARGS --listen 127.0.0.1:PORT --no-rpcbind`, the export named `export`.
    fn spawn(args: &[&str], export: &str) -> Server {
        let port = free_port();
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-rpcbind"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(port, &mut child);
        Server {
            child: Some(child),
            base: format!("nfs://127.0.0.1:{port}{export}"),
            query: format!("version=3&mountport={port}"),
            dir: String::new(),
        }
    }

    /// URL of `path` inside the test's directory.
    fn url(&self, path: &str) -> String {
        format!("{}{}{path}?{}", self.base, self.dir, self.query)
    }

    /// The same with more URL parameters.
    fn url_with(&self, path: &str, extra: &str) -> String {
        format!("{}&{extra}", self.url(path))
    }
}

fn rnfs(args: &[&str]) -> Output {
    let t0 = Instant::now();
    let o = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        // Errors are for users: no backtrace even when one is asked for.
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "rnfs {args:?} took {:?}",
        t0.elapsed()
    );
    o
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = rnfs(args);
    assert!(
        o.status.success(),
        "rnfs {args:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs and expects failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = rnfs(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "rnfs {args:?} succeeded: {err}");
    assert_ne!(o.status.code(), None, "killed by a signal: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("acktrace"), "{err}");
    // `rnfs: what: why`, or clap's `error: ...` for a bad command line.
    assert!(
        err.lines()
            .any(|l| l.starts_with("rnfs: ") || l.starts_with("error: ")),
        "an error line: {err}"
    );
    err
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// Every file and symbolic link below `root`, with contents (links: their target).
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                todo.push(p);
            } else if t.is_symlink() {
                let l = std::fs::read_link(&p).unwrap();
                out.push((format!("{rel}@"), l.to_string_lossy().as_bytes().to_vec()));
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ls_cat_mkdir_stat_df_ln() {
    let s = Server::start("basic");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("hello.txt");
    std::fs::write(&local, b"hello, nfs\n").unwrap();

    ok(&["mkdir", "-p", &s.url("/a/b/c")]);
    ok(&["mkdir", "-p", &s.url("/a/b/c")]); // existing: fine with -p
    let e = fails(&["mkdir", &s.url("/a/b")]);
    assert!(e.contains("/a/b") && e.contains("exists"), "{e}");
    ok(&["cp", local.to_str().unwrap(), &s.url("/a/hello.txt")]);
    ok(&["ln", "-s", "hello.txt", &s.url("/a/link")]);

    assert_eq!(ok(&["ls", &s.url("/a")]), "b\nhello.txt\nlink\n");
    let long = ok(&["ls", "-l", &s.url("/a")]);
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines.len(), 3, "{long}");
    assert!(
        lines[0].starts_with("drwx") && lines[0].ends_with(" b"),
        "{long}"
    );
    assert!(
        lines[1].starts_with("-rw")
            && lines[1].contains(" 11 ")
            && lines[1].ends_with(" hello.txt"),
        "{long}"
    );
    assert!(
        lines[2].starts_with('l') && lines[2].ends_with(" link"),
        "{long}"
    );

    let rec = ok(&["ls", "-R", &s.url("/a")]);
    for want in ["/a:", "/a/b:", "/a/b/c:", "hello.txt"] {
        assert!(rec.lines().any(|l| l.ends_with(want)), "{want} in {rec}");
    }

    assert_eq!(ok(&["cat", &s.url("/a/hello.txt")]), "hello, nfs\n");
    let st = ok(&["stat", &s.url("/a/hello.txt")]);
    assert!(
        st.contains("Size: 11") && st.contains("regular file"),
        "{st}"
    );
    let st = ok(&["stat", &s.url("/a/link")]);
    assert!(st.contains("symbolic link"), "{st}");
    let st = ok(&["stat", &s.url("/a/b")]);
    assert!(st.contains("directory"), "{st}");
    let df = ok(&["df", &s.url("/")]);
    assert!(df.contains("Size") && df.contains("Avail"), "{df}");
    let sizes: Vec<u64> = df
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(sizes[0] > 0 && sizes[2] <= sizes[0], "{df}");
}

#[test]
fn cp_local_to_nfs_to_nfs_to_local_recursive_and_parallel() {
    let s = Server::start("cp");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    for i in 0..12u8 {
        let dir = match i % 3 {
            0 => src.clone(),
            1 => src.join("sub"),
            _ => src.join("sub/deeper"),
        };
        let len = 1000 + usize::from(i) * 37_000;
        std::fs::write(dir.join(format!("f{i}")), pattern(len, i)).unwrap();
    }
    std::fs::write(src.join("zero"), b"").unwrap();
    std::os::unix::fs::symlink("sub/f1", src.join("link")).unwrap();
    let want = tree(&src);

    // Local tree -> NFS, 3 files at a time.
    ok(&[
        "cp",
        "-r",
        "-j",
        "3",
        src.to_str().unwrap(),
        &s.url("/copy1"),
    ]);
    // NFS -> NFS (into an existing directory: it receives the source's name).
    ok(&["mkdir", &s.url("/into")]);
    ok(&["cp", "-r", &s.url("/copy1"), &s.url("/into")]);
    // NFS -> local.
    let back = tmp.path().join("back");
    ok(&[
        "cp",
        "-R",
        "--jobs",
        "8",
        &s.url("/into/copy1"),
        back.to_str().unwrap(),
    ]);
    assert_eq!(tree(&back), want);

    // Single files in every direction, and several sources into a directory.
    let one = tmp.path().join("one");
    ok(&["cp", &s.url("/copy1/sub/f4"), one.to_str().unwrap()]);
    assert_eq!(std::fs::read(&one).unwrap(), pattern(1000 + 4 * 37_000, 4));
    ok(&["cp", &s.url("/copy1/sub/f4"), &s.url("/f4-again")]);
    let o = rnfs(&["cat", &s.url("/f4-again")]);
    assert!(o.status.success());
    assert_eq!(o.stdout, pattern(1000 + 4 * 37_000, 4));
    ok(&["mkdir", &s.url("/many")]);
    let f0 = src.join("f0");
    let f3 = src.join("f3");
    ok(&[
        "cp",
        "-j",
        "2",
        f0.to_str().unwrap(),
        f3.to_str().unwrap(),
        &s.url("/copy1/sub/f1"),
        &s.url("/many"),
    ]);
    assert_eq!(ok(&["ls", &s.url("/many")]), "f0\nf1\nf3\n");
    // Several sources need a directory as the target.
    let e = fails(&[
        "cp",
        f0.to_str().unwrap(),
        f3.to_str().unwrap(),
        &s.url("/f4-again"),
    ]);
    assert!(
        e.contains("not a directory") && e.contains("f4-again"),
        "{e}"
    );
    // A directory without -r is refused; the other sources are still copied.
    let e = fails(&[
        "cp",
        src.to_str().unwrap(),
        f0.to_str().unwrap(),
        &s.url("/into"),
    ]);
    assert!(
        e.contains("is a directory (use -r)") && e.contains("src"),
        "{e}"
    );
    assert!(ok(&["ls", &s.url("/into")]).contains("f0"));
}

#[test]
fn mv_and_rm_r() {
    let s = Server::start("mvrm");
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    std::fs::write(&f, b"data").unwrap();
    ok(&["mkdir", "-p", &s.url("/t/x/y")]);
    ok(&["cp", f.to_str().unwrap(), &s.url("/t/x/y/f")]);
    ok(&["cp", f.to_str().unwrap(), &s.url("/t/g")]);
    ok(&["mv", &s.url("/t/g"), &s.url("/t/h")]);
    ok(&["mv", &s.url("/t/h"), &s.url("/t/x")]); // into a directory
    assert_eq!(ok(&["ls", &s.url("/t/x")]), "h\ny\n");
    let e = fails(&["rm", &s.url("/t/x")]);
    assert!(e.contains("/t/x") && e.contains("is a directory"), "{e}");
    ok(&["rm", &s.url("/t/x/h")]);
    ok(&["rm", "-r", &s.url("/t")]);
    let e = fails(&["ls", &s.url("/t")]);
    assert!(e.contains("/t") && e.contains("no such file"), "{e}");
}

#[test]
fn progress_bar_only_on_a_terminal_or_when_asked() {
    let s = Server::start("progress");
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("big");
    std::fs::write(&f, pattern(3 << 20, 1)).unwrap();
    let fs = f.to_str().unwrap();

    let o = rnfs(&["cp", fs, &s.url("/quiet")]);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "no tty, no bar: {:?}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = rnfs(&["cp", "--progress", fs, &s.url("/loud")]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("100%") && err.contains("1/1 files") && err.contains("3.0 MiB"),
        "{err}"
    );

    // On a terminal (script(1) gives the command a pty), the bar is on by default.
    if Path::new("/usr/bin/script").exists() {
        let cmd = format!("{BIN} cp '{fs}' '{}'", s.url("/tty"));
        let o = Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("100%"), "{out}");
    }
    let o = rnfs(&["cp", "--progress", "--no-progress", fs, &s.url("/x")]);
    assert!(!o.status.success());
}

#[test]
fn errors_name_the_path_and_exit_non_zero() {
    let s = Server::start("errors");
    let tmp = tempfile::tempdir().unwrap();

    // A missing file, for each kind of command.
    let missing = s.url("/no/such-file");
    for args in [
        vec!["cat", missing.as_str()],
        vec!["ls", missing.as_str()],
        vec!["stat", missing.as_str()],
        vec!["rm", missing.as_str()],
        vec!["cp", missing.as_str(), tmp.path().to_str().unwrap()],
    ] {
        let e = fails(&args);
        assert!(
            e.contains("such-file") && e.contains("no such file"),
            "{args:?}: {e}"
        );
    }
    let e = fails(&["cp", "/nonexistent/local", &s.url("/x")]);
    assert!(e.contains("/nonexistent/local"), "{e}");

    // Permission denied: a 0700 directory of root's, read as uid 1000.
    ok(&["mkdir", &s.url("/secret")]);
    let f = tmp.path().join("f");
    std::fs::write(&f, b"s").unwrap();
    ok(&["cp", f.to_str().unwrap(), &s.url("/secret/f")]);
    let c = rnfs_client::blocking::BlockingClient::mount(&s.url("/secret")).unwrap();
    let p = c.client().url_path().to_string();
    c.block_on(c.client().setattr(&p, rnfs_client::SetAttr::mode(0o700)))
        .unwrap();
    drop(c);
    for (args, name) in [
        (vec!["ls", "URL"], "/secret"),
        (vec!["cat", "URL/f"], "/secret/f"),
        (vec!["cp", "LOCAL", "URL/g"], "/secret/g"),
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "URL" => s.url_with("/secret", "uid=1000&gid=1000"),
                "URL/f" => s.url_with("/secret/f", "uid=1000&gid=1000"),
                "URL/g" => s.url_with("/secret/g", "uid=1000&gid=1000"),
                "LOCAL" => f.to_str().unwrap().to_string(),
                a => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = fails(&args);
        assert!(
            e.contains(name) && e.contains("permission denied"),
            "{args:?}: {e}"
        );
    }

    // Nobody listening: a clear error within the soft timeout, naming the address.
    let dead = free_port();
    let url = format!("nfs://127.0.0.1:{dead}/x?version=3&mountport={dead}&timeo=5&retrans=2");
    let t0 = Instant::now();
    let e = fails(&["ls", &url]);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(
        e.contains(&format!("127.0.0.1:{dead}")) && e.to_lowercase().contains("refused"),
        "{e}"
    );
    // Bad URLs and bad usage.
    let e = fails(&["ls", "nfs://127.0.0.1/x?sec=krb5"]);
    assert!(e.contains("sec"), "{e}");
    fails(&["cp", "-j", "0", "a", "b"]);
}

#[test]
fn privport_reaches_a_secure_export() {
    if external().is_some() {
        return not_applicable("needs an rnfs server process with a `secure` exports file");
    }
    if !rnfs_testkit::require_root() {
        return; // binding a source port below 1024 needs root
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("hello"), b"secure hello").unwrap();
    let exports = tmp.path().join("exports");
    // `secure` is the default: only source ports below 1024.
    std::fs::write(
        &exports,
        format!("{} 127.0.0.1(rw,no_root_squash)\n", dir.display()),
    )
    .unwrap();
    let s = Server::spawn(
        &["--exports", exports.to_str().unwrap()],
        dir.to_str().unwrap(),
    );
    let e = fails(&["ls", &s.url("/")]);
    assert!(
        e.contains("refused") || e.contains("denied") || e.contains("Acces"),
        "{e}"
    );
    assert_eq!(ok(&["ls", &s.url_with("/", "privport=1")]), "hello\n");
    assert_eq!(
        ok(&["cat", &s.url_with("/hello", "privport=1")]),
        "secure hello"
    );
    let local = tmp.path().join("up");
    std::fs::write(&local, b"up").unwrap();
    ok(&[
        "cp",
        local.to_str().unwrap(),
        &s.url_with("/up", "privport=1"),
    ]);
    assert_eq!(std::fs::read(dir.join("up")).unwrap(), b"up");
}
