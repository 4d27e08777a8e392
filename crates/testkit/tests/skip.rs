//! `skip` seen from outside: this test runs its own binary again as a child that skips.
#![allow(missing_docs, clippy::unwrap_used)]
use std::process::Command;

const TEST: &str = "a_skip_is_recorded_or_under_no_skip_fails";

fn child(log: &std::path::Path, no_skip: Option<&str>) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", TEST, "--test-threads=1"])
        .env("RNFS_TESTKIT_CHILD", "1")
        .env(rnfs_testkit::SKIP_LOG_ENV, log)
        .env_remove(rnfs_testkit::NO_SKIP_ENV);
    if let Some(v) = no_skip {
        c.env(rnfs_testkit::NO_SKIP_ENV, v);
    }
    c.output().unwrap()
}

#[test]
fn a_skip_is_recorded_or_under_no_skip_fails() {
    if std::env::var_os("RNFS_TESTKIT_CHILD").is_some() {
        rnfs_testkit::skip("the child's reason");
        return;
    }
    let log = std::env::temp_dir().join(format!("rnfs-testkit-{}.skips", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let line = format!("SKIPPED skip/{TEST}: the child's reason\n");

    let out = child(&log, None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), line);

    // Under RNFS_NO_SKIP=1 the same test fails, and records nothing.
    let out = child(&log, Some("1"));
    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), line);
    std::fs::remove_file(&log).unwrap();
}
