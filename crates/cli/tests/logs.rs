//! Log lines written to a file (or the journal) are plain text: no terminal colour codes.
#![allow(clippy::unwrap_used)]
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn logs_to_a_file_carry_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args(["serve", "--memory", "16MiB", "--no-rpcbind"])
        .args(["--listen", "127.0.0.1:0"])
        // Colour must follow the terminal, not the absence of NO_COLOR.
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // The startup line comes once the listener is bound; wait for it (generously: the
    // machine may be busy), then stop the server.
    let t = Instant::now();
    let serving = loop {
        let text = std::fs::read(&log_path).unwrap();
        if String::from_utf8_lossy(&text).contains("rnfs serving") {
            break true;
        }
        if t.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read(&log_path).unwrap();
    assert!(
        serving,
        "no startup line logged: {:?}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        !text.contains(&0x1b),
        "escape codes in a log file: {:?}",
        String::from_utf8_lossy(&text)
    );
}
