//! Mounting: ports from the portmapper, export prefixes, URL options, clear errors.
#![allow(clippy::unwrap_used)]
mod common;
use common::{FakePortmap, TestServer};
use rnfs_client::blocking::BlockingClient;
use rnfs_client::{Client, Error, MountOptions, NfsUrl, OpenOptions};
use rnfs_proto::{mount3, nfs3};
use std::io::{Read, Write};
use std::time::Duration;

fn opts(url: &NfsUrl, pmap: u16) -> MountOptions {
    let mut o = MountOptions::from_url(url);
    o.portmap_port = pmap;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_come_from_the_portmapper_when_the_url_has_none() {
    let srv = TestServer::memory(16 << 20);
    let port = srv.addr.port();
    let pm = FakePortmap::start(vec![(nfs3::PROGRAM, port), (mount3::PROGRAM, port)]).await;
    let url = NfsUrl::parse("nfs://127.0.0.1/sub/dir?version=3&uid=0&gid=0").unwrap();
    // The export is "/", the rest is a path inside it.
    let c = Client::mount_with(&url, opts(&url, pm.addr.port()))
        .await
        .unwrap();
    assert_eq!(c.url_path(), "/sub/dir");
    assert_eq!(pm.queries.load(std::sync::atomic::Ordering::Relaxed), 2);
    c.mkdir_all(c.url_path(), 0o755).await.unwrap();
    assert!(c.metadata("/sub/dir").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_programs_and_refused_exports_are_clear_errors() {
    let pm = FakePortmap::start(vec![]).await;
    let url = NfsUrl::parse("nfs://127.0.0.1/?version=3").unwrap();
    let e = Client::mount_with(&url, opts(&url, pm.addr.port()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not registered"), "{e}");

    // A closed port in soft mode: an error, not a hang.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap().port();
    drop(l);
    let url = NfsUrl::parse(&format!(
        "nfs://127.0.0.1:{dead}/?version=3&mountport={dead}&soft&timeo=1&retrans=2"
    ))
    .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), Client::mount(&url))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, Error::Rpc(rnfs_client::RpcError::Connect { .. })),
        "{e}"
    );
    assert_eq!(e.errno(), 111);

    // Paths through a non-directory: NOTDIR, named as such.
    let srv = TestServer::memory(1 << 20);
    let c = Client::mount(&NfsUrl::parse(&srv.url("/")).unwrap())
        .await
        .unwrap();
    let mut f = c
        .open("/file", OpenOptions::create_truncate())
        .await
        .unwrap();
    f.write(b"x").await.unwrap();
    f.close().await.unwrap();
    let e = c
        .open("/file/below", OpenOptions::read())
        .await
        .unwrap_err();
    assert_eq!(e, Error::Nfs(rnfs_client::Status::NotDir));
}

#[test]
fn blocking_client_reads_and_writes_with_std_io() {
    let srv = TestServer::memory(16 << 20);
    let c = BlockingClient::mount(&srv.url("/")).unwrap();
    let mut f = c.open("/b", OpenOptions::create_truncate()).unwrap();
    f.write_all(&vec![7u8; 200_000]).unwrap();
    f.close().unwrap();
    let mut f = c.open("/b", OpenOptions::read()).unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back, vec![7u8; 200_000]);
    assert_eq!(c.metadata("/b").unwrap().size, 200_000);
    assert_eq!(c.read_dir("/").unwrap().len(), 1);
    let e = c.open("/nope", OpenOptions::read()).unwrap_err();
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_version_gets_4_1_where_served_and_3_where_not() {
    use rnfs_server::v4::service::V4Options;
    use rnfs_server::ServerConfig;
    let fs = || std::sync::Arc::new(rnfs_vfs::memory::MemFs::new(16 << 20));
    let both = TestServer::start_with(
        fs(),
        ServerConfig {
            v4: Some(V4Options::default()),
            ..ServerConfig::default()
        },
    );
    let v3_only = TestServer::start_with(fs(), ServerConfig::default());
    for (srv, want) in [(&both, "4.1"), (&v3_only, "3")] {
        let p = srv.addr.port();
        let url = format!("nfs://127.0.0.1:{p}/d?mountport={p}&uid=0&gid=0");
        let c = Client::mount(&NfsUrl::parse(&url).unwrap()).await.unwrap();
        assert_eq!(c.version(), want, "{url}");
        // Either way the URL's path is a path inside the export, made and used alike.
        assert_eq!(c.url_path(), "/d");
        c.mkdir_all(c.url_path(), 0o755).await.unwrap();
        let mut f = c
            .open("/d/f", OpenOptions::create_truncate())
            .await
            .unwrap();
        f.write(b"x").await.unwrap();
        f.close().await.unwrap();
        assert_eq!(c.metadata("/d/f").await.unwrap().size, 1);
    }
    // Both spelled out: each version is the one asked for.
    let p = both.addr.port();
    for v in ["3", "4.1"] {
        let url = format!("nfs://127.0.0.1:{p}/?version={v}&mountport={p}&uid=0&gid=0");
        let c = Client::mount(&NfsUrl::parse(&url).unwrap()).await.unwrap();
        assert_eq!(c.version(), v);
    }
}
