//! Changes made beside NFS to a delegated file of a local export recall its delegation
//! (issue 15; pynfs DELEG16-20): a small NFSv4.0 client of our own (blocking std sockets,
//! `common::v40`) gets read delegations, then the test changes the files directly
//! in the exported directory (chmod, rename, a rename over it, unlink, link) and sees a
//! CB_RECALL for each on its callback service; the holder's own SETATTR through NFS
//! recalls nothing (the server's own change), and a change beside NFS after it does.
#![allow(clippy::unwrap_used, missing_docs)]
mod common;
use common::v40::{cb_service, uaddr, CbCall, Client};
use common::{TestServer, V4_WAIT as WAIT};
use rnfs_proto::nfs4::*;
use rnfs_rpc::transport::Config;
use rnfs_server::v4::service::V4Options;
use rnfs_server::v4::state::delegations::OWN_CHANGE_WINDOW_MS;
use rnfs_server::v4::state::ids::ClientId;
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_xdr::{Opaque, VarArray};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A server of `dir` (the local backend) over NFSv4.0-4.2 with delegations.
fn start(dir: &Path) -> TestServer {
    let fs = Arc::new(rnfs_vfs::local::LocalFs::new(dir, false).unwrap());
    let cfg = ServerConfig {
        v4: Some(V4Options {
            minors: (0, 2),
            delegations: true,
            ..V4Options::default()
        }),
        ..ServerConfig::default()
    };
    TestServer::start_with(fs, cfg, Config::default())
}

/// The stateid (`other`) of the next CB_RECALL the service receives within `wait`
/// (CB_NULL probes skipped), or `None`.
fn next_recall(calls: &mpsc::Receiver<CbCall>, wait: Duration) -> Option<[u8; 12]> {
    let until = Instant::now() + wait;
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        let call = calls.recv_timeout(left).ok()?;
        let Some(a) = call.args else { continue };
        for op in &a.argarray.0 {
            if let NfsCbArgop4::OpCbRecall(r) = op {
                return Some(r.stateid.other.0);
            }
        }
    }
}

/// OPEN (creating it, UNCHECKED) `name` in the export's root for read, with an owner of
/// its own (confirmed when the server asks): its handle, open stateid and the read
/// delegation's stateid.
fn open_read(c: &mut Client, id: u64, name: &[u8]) -> (Vec<u8>, Stateid4, Stateid4) {
    let (st, r) = c.compound(vec![
        NfsArgop4::OpPutrootfh,
        NfsArgop4::OpOpen(Open4args {
            seqid: 0,
            share_access: 1,
            share_deny: 0,
            owner: StateOwner4 {
                clientid: id,
                owner: Opaque(name.to_vec()),
            },
            openhow: Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
                attrmask: VarArray(vec![]),
                attr_vals: Opaque(vec![]),
            })),
            claim: OpenClaim4::ClaimNull(Opaque(name.to_vec())),
        }),
        NfsArgop4::OpGetfh,
    ]);
    assert_eq!(st, 0, "OPEN {r:?}");
    let NfsResop4::OpOpen(Open4res::Nfs4Ok(ok)) = &r[1] else {
        panic!("{r:?}")
    };
    let NfsResop4::OpGetfh(Getfh4res::Nfs4Ok(fh)) = &r[2] else {
        panic!("{r:?}")
    };
    let fh = fh.object.0.clone();
    let OpenDelegation4::OpenDelegateRead(d) = &ok.delegation else {
        panic!("no read delegation: {:?}", ok.delegation)
    };
    let mut sid = ok.stateid.clone();
    if ok.rflags & 2 != 0 {
        // OPEN4_RESULT_CONFIRM
        let (st, r) = c.compound(vec![
            NfsArgop4::OpPutfh(Putfh4args {
                object: Opaque(fh.clone()),
            }),
            NfsArgop4::OpOpenConfirm(OpenConfirm4args {
                open_stateid: sid,
                seqid: 1,
            }),
        ]);
        assert_eq!(st, 0, "OPEN_CONFIRM {r:?}");
        let NfsResop4::OpOpenConfirm(OpenConfirm4res::Nfs4Ok(ok)) = &r[1] else {
            panic!("{r:?}")
        };
        sid = ok.open_stateid.clone();
    }
    (fh, sid, d.stateid.clone())
}

#[test]
fn changes_beside_nfs_recall_read_delegations_but_the_holders_own_do_not() {
    let d = tempfile::tempdir().unwrap();
    // The client calls with AUTH_NONE (nobody, when the test runs as root).
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let srv = start(d.path());
    let (cb, calls) = cb_service(Arc::new(AtomicBool::new(false)));
    let mut c = Client::open(srv.addr);
    let id = c.setclientid(b"outside-a", &uaddr(cb));
    srv.until("verified", |v| v.callback40_verified(ClientId(id)));
    let names: [&[u8]; 6] = [b"own", b"chmod", b"rename", b"over", b"unlink", b"link"];
    let mut deleg = Vec::new();
    let mut own = None;
    for n in names {
        let (fh, sid, dsid) = open_read(&mut c, id, n);
        deleg.push(dsid.other.0);
        if n == b"own" {
            own = Some((fh, sid));
        }
    }
    std::fs::write(d.path().join("other"), b"x").unwrap();
    let w = srv.v4().outside_stats().unwrap();
    assert_eq!(w.watched, names.len(), "{w:?}");

    // The holder's own SETATTR (mode 0600) is no change beside NFS: nothing recalled.
    let (fh, sid) = own.unwrap();
    let (st, r) = c.compound(vec![
        NfsArgop4::OpPutfh(Putfh4args {
            object: Opaque(fh.clone()),
        }),
        NfsArgop4::OpSetattr(Setattr4args {
            stateid: sid,
            obj_attributes: Fattr4 {
                attrmask: VarArray(vec![0, 1 << 1]),
                attr_vals: Opaque(0o600u32.to_be_bytes().to_vec()),
            },
        }),
    ]);
    assert_eq!(st, 0, "own SETATTR {r:?}");
    let set_at = Instant::now();
    assert_eq!(
        next_recall(&calls, Duration::from_millis(500)),
        None,
        "the holder's own SETATTR recalled its delegation"
    );

    // Each change made in the exported directory recalls the delegation on its file.
    let p = |n: &str| d.path().join(n);
    std::fs::set_permissions(p("chmod"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[1]), "chmod");
    std::fs::rename(p("rename"), p("rename-2")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[2]), "rename");
    std::fs::rename(p("other"), p("over")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[3]), "rename over");
    std::fs::remove_file(p("unlink")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[4]), "unlink");
    std::fs::hard_link(p("link"), p("link-2")).unwrap();
    assert_eq!(next_recall(&calls, WAIT), Some(deleg[5]), "link");

    // Past the window of its own SETATTR, a chmod beside NFS recalls the holder's file.
    let window = Duration::from_millis(OWN_CHANGE_WINDOW_MS + 100);
    if let Some(left) = window.checked_sub(set_at.elapsed()) {
        std::thread::sleep(left);
    }
    std::fs::set_permissions(p("own"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        next_recall(&calls, WAIT),
        Some(deleg[0]),
        "chmod after the window"
    );
    let s = srv.v4().delegation_stats();
    assert_eq!(s.outside_changes, 6, "{s:?}");
    assert!(s.outside_own >= 1, "{s:?}");
}

/// The memory backend cannot be changed beside the server: nothing is watched.
#[test]
fn nothing_is_watched_on_a_backend_only_nfs_changes() {
    let fs = Arc::new(rnfs_vfs::memory::MemFs::with_root(1 << 20, 0, 0, 0o777));
    let cfg = ServerConfig {
        v4: Some(V4Options {
            minors: (0, 2),
            delegations: true,
            ..V4Options::default()
        }),
        ..ServerConfig::default()
    };
    let nfs = NfsServer::new(Export::new(1, "/", fs), cfg);
    let v4 = nfs.v4().unwrap();
    assert_eq!(v4.outside_stats().map(|w| w.watched), Some(0));
}
