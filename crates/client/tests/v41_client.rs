//! The client over NFSv4.1 against the rnfs server where NFSv4.1 behaves unlike NFSv3:
//! a server restart with a file open in the middle of a write (issue 16, acceptance 4: the
//! open is reclaimed in the grace period and the data is intact).
mod common;
use common::TestServer;
use rnfs_client::{Client, NfsUrl, OpenOptions};
use rnfs_server::v4::service::V4Options;
use rnfs_server::ServerConfig;
use std::sync::Arc;
use std::time::Duration;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_write_reclaims_the_open_in_grace_and_loses_nothing() {
    // Stable client records in a state directory: the restarted server has a grace period
    // in which the client it knew may reclaim.
    let state = std::env::temp_dir().join(format!("rnfs-v41-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let cfg = ServerConfig {
        v4: Some(V4Options {
            lease_secs: 3,
            state_dir: Some(state.clone()),
            ..V4Options::default()
        }),
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with(Arc::new(rnfs_vfs::memory::MemFs::new(64 << 20)), cfg);
    let url = format!(
        "nfs://127.0.0.1:{}/?version=4.1&uid=0&gid=0&timeo=10",
        srv.addr.port()
    );
    let c = Client::mount(&NfsUrl::parse(&url).unwrap()).await.unwrap();
    assert_eq!(c.version(), "4.1");
    let n4 = c.nfs4().unwrap().clone();
    let data = pattern(2 << 20, 5);
    let mut f = c.open("/f", OpenOptions::create_truncate()).await.unwrap();
    let half = data.len() / 2;
    f.write(&data[..half]).await.unwrap();
    f.fsync().await.unwrap();
    assert_eq!(n4.open_stats().entries, 1, "the file holds a server open");
    let resets = n4.session().recovery_stats().client_resets;

    srv.restart();
    // The rest of the write, then close: the first call after the restart finds the
    // client id stale; recovery makes a new one, reclaims the open, then goes on.
    f.write(&data[half..]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), f.close())
        .await
        .expect("close hung")
        .unwrap();
    assert!(
        n4.session().recovery_stats().client_resets > resets,
        "the restart was noticed: {:?}",
        n4.session().recovery_stats()
    );
    assert_eq!(
        n4.reclaim_stats(),
        (1, 0),
        "the open was reclaimed, none refused"
    );

    let mut back = vec![0u8; data.len() + 1];
    let r = c.open("/f", OpenOptions::read()).await.unwrap();
    let mut n = 0;
    loop {
        let k = r.read_at(n as u64, &mut back[n..]).await.unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    assert!(back[..n] == data[..], "{n} bytes read back");
    drop(r);
    common::assert_no_state_held(&c).await;
    let _ = std::fs::remove_dir_all(&state);
}
