//! `rnfs serve --state-dir`: handles survive a restart of the real binary with the same
//! state directory, not with another; a state directory that cannot be used is a clear
//! error naming it.
#![allow(clippy::unwrap_used)]
use rnfs_proto::mount3;
use rnfs_proto::nfs3::*;
use rnfs_rpc::client::SyncClient;
use rnfs_xdr::XdrString;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child, SocketAddr);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, state: &Path) -> Server {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .arg("serve")
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .args(["--no-rpcbind", "--listen", &addr.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !rnfs_testkit::listening(addr) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("rnfs serve exited: {st}");
        }
        assert!(t.elapsed() < Duration::from_secs(20), "did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, addr)
}

fn client(s: &Server) -> (SyncClient, FileHandle3) {
    let mut c = SyncClient::connect(s.1).unwrap();
    c.auth_sys(0, 0, &[]);
    let r: mount3::MountRes = c
        .call(mount3::PROGRAM, 3, 1, &XdrString::<1024>(b"/".to_vec()))
        .unwrap();
    let mount3::MountRes::Ok(ok) = r else {
        panic!("{r:?}")
    };
    (c, ok.fhandle)
}

fn getattr(c: &mut SyncClient, fh: &FileHandle3) -> Nfsstat3 {
    let args = GetattrArgs { object: fh.clone() };
    c.call::<_, GetattrRes>(PROGRAM, 3, 1, &args)
        .unwrap()
        .status()
}

#[test]
fn handles_survive_a_restart_with_the_same_state_dir_only() {
    let d = tempfile::tempdir().unwrap();
    let (dir, state, other) = (
        d.path().join("export"),
        d.path().join("state"),
        d.path().join("other"),
    );
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/f"), b"data").unwrap();
    let f = {
        let s = serve(&dir, &state);
        let (mut c, root) = client(&s);
        let mut fh = root;
        for n in ["a", "b", "f"] {
            let args = DirOpArgs3 {
                dir: fh,
                name: XdrString(n.into()),
            };
            let Res::Ok(ok) = c.call::<_, LookupRes>(PROGRAM, 3, 3, &args).unwrap() else {
                panic!("lookup {n}")
            };
            fh = ok.object;
        }
        fh
    };
    let secret = std::fs::read_to_string(state.join("handle-secret")).unwrap();
    // Restarted on the same state directory: the old handle works (found by a search,
    // the new process has never seen it).
    let s = serve(&dir, &state);
    let (mut c, _) = client(&s);
    assert_eq!(getattr(&mut c, &f), Nfsstat3::Ok);
    assert_eq!(
        std::fs::read_to_string(state.join("handle-secret")).unwrap(),
        secret,
        "kept, not made again"
    );
    drop(s);
    // Another state directory, another secret: the handle does not verify.
    let s = serve(&dir, &other);
    let (mut c, root) = client(&s);
    assert_eq!(getattr(&mut c, &root), Nfsstat3::Ok);
    assert_eq!(getattr(&mut c, &f), Nfsstat3::BadHandle);
}

/// Runs `rnfs serve` expecting it to fail at start; its stderr.
fn failing_start(dir: &Path, state: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .arg("serve")
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .args(["--no-rpcbind", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with state dir {state:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unusable_state_dir_is_a_clear_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    // Below a regular file: cannot be made, not even by root.
    std::fs::write(d.path().join("file"), b"x").unwrap();
    let bad = d.path().join("file/state");
    let err = failing_start(d.path(), &bad);
    assert!(
        err.contains("cannot create the handle secret") && err.contains(&*bad.to_string_lossy()),
        "{err}"
    );
    // A secret file that is not one: named, not replaced.
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("handle-secret"), b"not a secret\n").unwrap();
    let err = failing_start(d.path(), &state);
    let file = state.join("handle-secret");
    assert!(
        err.contains("is not an rnfs handle secret") && err.contains(&*file.to_string_lossy()),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a secret\n");
}
