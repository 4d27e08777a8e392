//! `rnfs stats` and `--metrics` report counts that match a known sequence of calls, on a
//! real `rnfs serve` process.
#![allow(clippy::unwrap_used)]
use rnfs_proto::mount3;
use rnfs_proto::nfs3::*;
use rnfs_rpc::client::SyncClient;
use rnfs_xdr::XdrString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(addr: SocketAddr) {
    let t = Instant::now();
    while !rnfs_testkit::listening(addr) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
}

#[test]
fn counts_match_a_known_sequence_of_calls() {
    let (port, mport) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let _srv = Server(
        Command::new(env!("CARGO_BIN_EXE_rnfs"))
            .args([
                "serve",
                "--memory",
                "16MiB",
                "--no-rpcbind",
                "--listen",
                &addr.to_string(),
                "--metrics",
                &maddr.to_string(),
            ])
            .spawn()
            .unwrap(),
    );
    wait_listening(addr);
    wait_listening(maddr);

    // The known sequence: 1 MNT, 1 NULL, 3 GETATTR, 2 LOOKUP of missing names, 1 CREATE,
    // 2 WRITE of 10 bytes in all, 1 READ of 10 bytes, and 1 garbage call.
    let mut c = SyncClient::connect(addr).unwrap();
    c.auth_sys(0, 0, &[]);
    let r: mount3::MountRes = c
        .call(mount3::PROGRAM, 3, 1, &XdrString::<1024>(b"/".to_vec()))
        .unwrap();
    let mount3::MountRes::Ok(ok) = r else {
        panic!()
    };
    let root = ok.fhandle;
    let () = c.call(PROGRAM, 3, 0, &()).unwrap();
    for _ in 0..3 {
        let _: GetattrRes = c
            .call(
                PROGRAM,
                3,
                1,
                &GetattrArgs {
                    object: root.clone(),
                },
            )
            .unwrap();
    }
    for n in ["a", "b"] {
        let r: LookupRes = c
            .call(
                PROGRAM,
                3,
                3,
                &DirOpArgs3 {
                    dir: root.clone(),
                    name: XdrString(n.into()),
                },
            )
            .unwrap();
        assert_eq!(r.status(), Nfsstat3::NoEnt);
    }
    let args = CreateArgs {
        where_: DirOpArgs3 {
            dir: root.clone(),
            name: XdrString(b"f".to_vec()),
        },
        how: CreateHow3::Unchecked(Sattr3::default()),
    };
    let Res::Ok(cr) = c.call::<_, CreateRes>(PROGRAM, 3, 8, &args).unwrap() else {
        panic!()
    };
    let f = cr.obj.unwrap();
    for (off, d) in [(0u64, &b"hello"[..]), (5, &b"world"[..])] {
        let w = WriteArgs {
            file: f.clone(),
            offset: off,
            count: 5,
            stable: StableHow::Unstable,
            data: Data(d.to_vec()),
        };
        let _: WriteRes = c.call(PROGRAM, 3, 7, &w).unwrap();
    }
    let _: ReadRes = c
        .call(
            PROGRAM,
            3,
            6,
            &ReadArgs {
                file: f.clone(),
                offset: 0,
                count: 100,
            },
        )
        .unwrap();
    let (h, _) = c.call_raw_xid(99, PROGRAM, 3, 1, &[1, 2]).unwrap();
    assert_eq!(h.status, rnfs_proto::rpc::ReplyStatus::GarbageArgs);

    // `rnfs stats --prometheus` (the administration RPC) ...
    let out = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args(["stats", "--prometheus", "--server", &addr.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via_rpc = String::from_utf8(out.stdout).unwrap();
    // ... and the HTTP endpoint must say the same.
    let mut s = TcpStream::connect(maddr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut http = String::new();
    s.read_to_string(&mut http).unwrap();
    assert!(http.starts_with("HTTP/1.1 200"), "{http}");
    for text in [&via_rpc, &http] {
        assert_eq!(metric(text, "rnfs_mount3_calls_total{proc=\"mnt\"}"), 1);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"null\"}"), 1);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"getattr\"}"), 3);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"lookup\"}"), 2);
        assert_eq!(metric(text, "rnfs_nfs3_errors_total{proc=\"lookup\"}"), 2);
        assert_eq!(metric(text, "rnfs_nfs3_status_total{status=\"NoEnt\"}"), 2);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"create\"}"), 1);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"write\"}"), 2);
        assert_eq!(metric(text, "rnfs_nfs3_calls_total{proc=\"read\"}"), 1);
        assert_eq!(metric(text, "rnfs_written_bytes_total"), 10);
        assert_eq!(metric(text, "rnfs_read_bytes_total"), 10);
        assert_eq!(
            metric(text, "rnfs_drc_misses_total"),
            1,
            "CREATE is the one non-idempotent call"
        );
        assert_eq!(
            metric(text, "rnfs_rpc_bad_calls_total"),
            1,
            "the garbage call"
        );
        assert!(metric(text, "rnfs_connections_total") >= 2);
    }
    // The nfsstat-like layout.
    let out = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args(["stats", "--server", &addr.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("Server nfs v3:") && table.contains("getattr") && table.contains("NoEnt"),
        "{table}"
    );
    // Other paths of the endpoint: 404.
    let mut s = TcpStream::connect(maddr).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.1 404"));
}

#[test]
fn a_bad_exports_file_is_refused_with_its_line_number() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("exports");
    std::fs::write(
        &f,
        format!(
            "# test\n{} 127.0.0.1(rw)\n{} *(rw,sec=krb5)\n",
            d.path().display(),
            d.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rnfs"))
        .args([
            "serve",
            "--no-rpcbind",
            "--listen",
            "127.0.0.1:0",
            "--exports",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3:") && err.contains("krb5"), "{err}");
}
