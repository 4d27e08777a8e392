//! Test-only helpers for the rnfs workspace (a dev-dependency, never published).
//!
//! A test that cannot run where it is (not root, no `/dev/fuse`, a file system without the
//! feature it checks) must not look like a pass. It calls [`skip`] (or [`require_root`],
//! [`require_fuse`], which call it) and returns early; `skip`:
//! - prints `SKIPPED <binary>/<test>: <reason>` on stderr, and appends that line to the file
//!   named by `$RNFS_TEST_SKIP_LOG` when set. `scripts/test-all.sh` and
//!   `tests/interop/client-lib.sh` set it, move each such test from "passed" to "skipped"
//!   and print the lines;
//! - panics instead when `RNFS_NO_SKIP=1`: where everything is installed (CI runs as root with
//!   FUSE), a test that would skip is a failure, not a quiet pass.
//!
//! [`not_applicable`] records a test that does not apply to the server the environment
//! chose (e.g. it needs the in-process server, and `RNFS_TEST_URL` points at nfs-ganesha):
//! counted as skipped the same way, but `RNFS_NO_SKIP` does not turn it into a failure.
//!
//! The test's name is the libtest thread's name (libtest names each test's thread after
//! the test), so a call from a helper thread names that thread instead.
#![forbid(unsafe_code)]

//!
//! [`nfs4`] is the wire of the hand-made NFSv4 clients that integration tests drive the
//! server with (record marking on blocking sockets, COMPOUND arguments and results, OPEN).

pub mod nfs4;

use std::io::Write;
use std::path::Path;

/// The environment variable naming the file that skip lines are appended to.
pub const SKIP_LOG_ENV: &str = "RNFS_TEST_SKIP_LOG";
/// The environment variable that, set to `1`, makes [`skip`] panic.
pub const NO_SKIP_ENV: &str = "RNFS_NO_SKIP";

/// Records that the calling test does not run here, for `reason` (or panics under
/// `RNFS_NO_SKIP=1`). The caller returns right after. For a part of a test, say which part
/// in `reason`: the rest of the test still runs and passes or fails on its own.
pub fn skip(reason: &str) {
    let line = skip_line(reason);
    if no_skip(std::env::var(NO_SKIP_ENV).ok().as_deref()) {
        panic!("{line} (and {NO_SKIP_ENV}=1: nothing may skip here)");
    }
    record(&line);
}

/// Records that the calling test does not apply to the selected test target (`reason`
/// says why). Never panics: the choice of target is the harness's, not the machine's.
pub fn not_applicable(reason: &str) {
    record(&skip_line(reason));
}

/// Whether the process runs as root; when not, records a skip (see [`skip`]) and returns
/// `false`. Use: `if !rnfs_testkit::require_root() { return; }`.
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    skip("needs root");
    false
}

/// Whether FUSE mounts can be made (root and `/dev/fuse`); when not, records a skip and
/// returns `false`. Use: `if !rnfs_testkit::require_fuse() { return; }`.
pub fn require_fuse() -> bool {
    if !is_root() {
        skip("needs root (FUSE mounts)");
        false
    } else if !Path::new("/dev/fuse").exists() {
        skip("needs /dev/fuse");
        false
    } else {
        true
    }
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether the value of `RNFS_NO_SKIP` forbids skipping.
fn no_skip(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("1" | "true" | "yes"))
}

fn skip_line(reason: &str) -> String {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_owned();
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| binary_name(&n).to_owned())
        .unwrap_or_default();
    format_line(&bin, &test, reason)
}

/// `name-0123456789abcdef` (cargo's test binary) -> `name`.
fn binary_name(file: &str) -> &str {
    match file.rsplit_once('-') {
        Some((n, h)) if h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) => n,
        _ => file,
    }
}

fn format_line(bin: &str, test: &str, reason: &str) -> String {
    // One line per skip, whatever the reason holds.
    let reason = reason.replace('\n', " ");
    if bin.is_empty() {
        format!("SKIPPED {test}: {reason}")
    } else {
        format!("SKIPPED {bin}/{test}: {reason}")
    }
}

/// Prints `line` on stderr and appends it to `$RNFS_TEST_SKIP_LOG` (one write, so lines
/// from parallel tests do not mix).
fn record(line: &str) {
    eprintln!("{line}");
    if let Some(p) = std::env::var_os(SKIP_LOG_ENV) {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = r {
            // A skip that cannot be counted would be counted as a pass.
            panic!(
                "{line}: cannot record it in {}: {e}",
                Path::new(&p).display()
            );
        }
    }
}

/// Whether something listens at `addr`, a TCP address on this machine, for tests that wait
/// for a server they started. A successful connect is not enough: when nothing listens
/// yet and the ephemeral port Linux picks for the connection is `addr`'s own, the
/// connection is made to itself (TCP simultaneous open), and polling a port a server is
/// about to bind does meet that now and then.
pub fn listening(addr: std::net::SocketAddr) -> bool {
    match std::net::TcpStream::connect(addr) {
        Ok(s) => s.local_addr().is_ok_and(|l| l != addr),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names_lose_cargos_hash_only() {
        assert_eq!(binary_name("mount-0123456789abcdef"), "mount");
        assert_eq!(binary_name("rnfs_vfs-fedcba9876543210"), "rnfs_vfs");
        assert_eq!(
            binary_name("dirs_and_faults-0123456789abcdef"),
            "dirs_and_faults"
        );
        assert_eq!(binary_name("my-tool"), "my-tool");
        assert_eq!(binary_name("x-0123456789abcdeg"), "x-0123456789abcdeg");
    }

    #[test]
    fn a_skip_is_one_line_that_names_the_test() {
        assert_eq!(
            format_line("mount", "seed_dd_scenario", "needs\n/dev/fuse"),
            "SKIPPED mount/seed_dd_scenario: needs /dev/fuse"
        );
        assert_eq!(format_line("", "t", "r"), "SKIPPED t: r");
    }

    #[test]
    fn only_an_explicit_yes_forbids_skipping() {
        for v in ["1", "true", "yes", " 1 "] {
            assert!(no_skip(Some(v)), "{v:?}");
        }
        for v in [None, Some(""), Some("0"), Some("no")] {
            assert!(!no_skip(v), "{v:?}");
        }
    }

    #[test]
    fn the_test_name_is_the_libtest_thread_name() {
        let line = skip_line("why");
        assert!(
            line.ends_with("tests::the_test_name_is_the_libtest_thread_name: why"),
            "{line}"
        );
        assert!(line.starts_with("SKIPPED rnfs_testkit"), "{line}");
    }
}
