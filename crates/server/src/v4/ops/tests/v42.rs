//! The NFSv4.2 sparse-file operations (RFC 7862): SEEK, ALLOCATE and DEALLOCATE through
//! compounds of minor version 2, on the memory backend (chunks of 4 KiB are its extents).
use super::*;

const K: u64 = 4096;

fn w42() -> World {
    let w = world();
    w.minor.set(2);
    w
}

fn seek_op(sid: &Stateid4, offset: u64, hole: bool) -> NfsArgop4 {
    NfsArgop4::OpSeek(Seek4args {
        sa_stateid: sid.clone(),
        sa_offset: offset,
        sa_what: if hole {
            DataContent4::Nfs4ContentHole
        } else {
            DataContent4::Nfs4ContentData
        },
    })
}

fn alloc_op(sid: &Stateid4, offset: u64, length: u64) -> NfsArgop4 {
    NfsArgop4::OpAllocate(Allocate4args {
        aa_stateid: sid.clone(),
        aa_offset: offset,
        aa_length: length,
    })
}

fn dealloc_op(sid: &Stateid4, offset: u64, length: u64) -> NfsArgop4 {
    NfsArgop4::OpDeallocate(Deallocate4args {
        da_stateid: sid.clone(),
        da_offset: offset,
        da_length: length,
    })
}

/// A SEEK result: `(eof, offset)`.
fn sought(r: &NfsResop4) -> (bool, u64) {
    match r {
        NfsResop4::OpSeek(Seek4res::Nfs4Ok(ok)) => (ok.sr_eof, ok.sr_offset),
        other => panic!("{other:?}"),
    }
}

/// The status of the last operation of a compound of `ops` run by client 1.
fn last_status(w: &World, ops: Vec<NfsArgop4>) -> u32 {
    w.run(1, ops).0
}

fn size_of(w: &World) -> u64 {
    w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f")
        .unwrap()
        .1
        .size
}

#[test]
fn seek_finds_data_and_holes_of_a_sparse_file() {
    let w = w42();
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    // Data in the first chunk and the fourth; the file 6 chunks long.
    let (s, _) = w.run(
        1,
        vec![
            putfh(&fh),
            write_op(&sid, 0, b"abc", StableHow4::FileSync4),
            write_op(&sid, 3 * K + 1, b"x", StableHow4::FileSync4),
        ],
    );
    assert_eq!(s, 0);
    let (k, _) = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap();
    let grow = SetAttr {
        size: Some(6 * K),
        ..SetAttr::default()
    };
    w.fs.setattr(&VCtx::default(), &k, &grow, None).unwrap();
    let asks = [
        (0, false, (false, 0)),
        (0, true, (false, K)),
        (10, false, (false, 10)),
        (K, false, (false, 3 * K)),
        (3 * K, true, (false, 4 * K)),
        (4 * K + 3, true, (false, 4 * K + 3)),
        // No data before the end: the end, with eof (RFC 7862 15.11.3).
        (4 * K, false, (true, 6 * K)),
    ];
    let mut ops = vec![putfh(&fh)];
    ops.extend(asks.iter().map(|&(at, hole, _)| seek_op(&sid, at, hole)));
    let (s, r) = w.run(1, ops);
    assert_eq!(s, 0, "{r:?}");
    for (i, &(at, hole, want)) in asks.iter().enumerate() {
        assert_eq!(sought(&r[i + 1]), want, "SEEK {at} hole={hole}");
    }
    // At or past the end: NXIO; the anonymous stateid reads, so it seeks too.
    for at in [6 * K, u64::MAX] {
        let s = last_status(&w, vec![putfh(&fh), seek_op(&anonymous(), at, true)]);
        assert_eq!(s, code(Nfs4Error::Nxio), "at {at}");
    }
    let (s, r) = w.run(1, vec![putfh(&fh), seek_op(&anonymous(), 0, true)]);
    assert_eq!((s, sought(&r[1])), (0, (false, K)));
}

#[test]
fn allocate_grows_and_deallocate_punches_without_changing_the_size() {
    let w = w42();
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            write_op(&sid, 0, &[7; 3 * K as usize], StableHow4::FileSync4),
            // ALLOCATE past the end grows the file; its new bytes read as zeros.
            alloc_op(&sid, 2 * K, 4 * K),
            read_op(&sid, 3 * K - 1, 2),
            // DEALLOCATE the middle chunk and a bit of the first: zeros there.
            dealloc_op(&sid, K - 1, K + 1),
            read_op(&sid, K - 2, 3),
            seek_op(&sid, 0, true),
            // Past the end or past the largest size: nothing, and no error.
            dealloc_op(&sid, 100 * K, u64::MAX),
            dealloc_op(&sid, u64::MAX, 1),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    let data = |r: &NfsResop4| match r {
        NfsResop4::OpRead(Read4res::Nfs4Ok(ok)) => ok.data.0.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(data(&r[3]), [7, 0]);
    assert_eq!(data(&r[5]), [7, 0, 0]);
    assert_eq!(sought(&r[6]), (false, K));
    assert_eq!(size_of(&w), 6 * K);
}

#[test]
fn space_operations_refuse_what_write_refuses() {
    let w = w42();
    let (fh, rw) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    let (_, ro) = open_ok(&w, 1, b"o2", b"f", READ, 0);
    let bad = Stateid4 {
        seqid: 1,
        other: OpaqueFixed([9; 12]),
    };
    let on_file = |op: NfsArgop4| last_status(&w, vec![putfh(&fh), op]);
    // Stateids: one the server never gave, and a read-only open for the writing ones.
    assert_eq!(
        on_file(seek_op(&bad, 0, false)),
        code(Nfs4Error::BadStateid)
    );
    assert_eq!(on_file(alloc_op(&bad, 0, 1)), code(Nfs4Error::BadStateid));
    assert_eq!(on_file(dealloc_op(&bad, 0, 1)), code(Nfs4Error::BadStateid));
    assert_eq!(on_file(alloc_op(&ro, 0, 1)), code(Nfs4Error::OpenMode));
    assert_eq!(on_file(dealloc_op(&ro, 0, 1)), code(Nfs4Error::OpenMode));
    // Lengths: zero is INVAL; an end past off_t is FBIG; more than the space is NOSPC.
    assert_eq!(on_file(alloc_op(&rw, 0, 0)), code(Nfs4Error::Inval));
    assert_eq!(on_file(dealloc_op(&rw, 0, 0)), code(Nfs4Error::Inval));
    assert_eq!(
        on_file(alloc_op(&rw, i64::MAX as u64, 1)),
        code(Nfs4Error::FBig)
    );
    assert_eq!(on_file(alloc_op(&rw, u64::MAX, 1)), code(Nfs4Error::FBig));
    assert_eq!(on_file(alloc_op(&rw, 0, 1 << 40)), code(Nfs4Error::NoSpc));
    assert_eq!(size_of(&w), 0, "a refused ALLOCATE changes nothing");
    // An empty file has nothing to seek in, not even its final hole.
    assert_eq!(on_file(seek_op(&rw, 0, true)), code(Nfs4Error::Nxio));
    // A directory, the pseudo root, a read-only export.
    let mut dir = at_export();
    dir.push(seek_op(&anonymous(), 0, false));
    assert_eq!(last_status(&w, dir), code(Nfs4Error::IsDir));
    let mut dir = at_export();
    dir.push(alloc_op(&anonymous(), 0, 1));
    assert_eq!(last_status(&w, dir), code(Nfs4Error::IsDir));
    let root = |op| last_status(&w, vec![NfsArgop4::OpPutrootfh, op]);
    assert_eq!(
        root(seek_op(&anonymous(), 0, false)),
        code(Nfs4Error::IsDir)
    );
    assert_eq!(root(alloc_op(&anonymous(), 0, 1)), code(Nfs4Error::Rofs));
    assert_eq!(root(dealloc_op(&anonymous(), 0, 1)), code(Nfs4Error::Rofs));
    w._ro
        .create(
            &VCtx::default(),
            &w._ro.root(),
            b"g",
            &rnfs_vfs::CreateMode::Unchecked(SetAttr::default()),
        )
        .unwrap();
    let in_ro = |op| {
        let look = |n: &[u8]| NfsArgop4::OpLookup(Lookup4args { objname: name(n) });
        last_status(
            &w,
            vec![NfsArgop4::OpPutrootfh, look(b"ro"), look(b"g"), op],
        )
    };
    assert_eq!(in_ro(alloc_op(&anonymous(), 0, 1)), code(Nfs4Error::Rofs));
    assert_eq!(in_ro(dealloc_op(&anonymous(), 0, 1)), code(Nfs4Error::Rofs));
    // No current filehandle.
    assert_eq!(
        last_status(&w, vec![seek_op(&anonymous(), 0, false)]),
        code(Nfs4Error::NoFileHandle)
    );
    // NFSv4.1 has none of them.
    w.minor.set(1);
    let (s, r) = w.run(1, vec![putfh(&fh), seek_op(&rw, 0, false)]);
    assert_eq!(s, code(Nfs4Error::OpIllegal), "{r:?}");
}

#[test]
fn another_clients_write_delegation_is_recalled_first() {
    let w = w42();
    w.hooks.cb_ok.set(true);
    let (s, r) = w.run(1, open_file(b"o1", b"f", BOTH, 0));
    assert_eq!(s, 0);
    let fh = fh_of(&r[4]);
    let d = deleg_of(&r[3]);
    assert!(matches!(d, OpenDelegation4::OpenDelegateWrite(_)), "{d:?}");
    let dsid = deleg_sid(&d);
    // The holder itself uses its delegation stateid.
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            alloc_op(&dsid, 0, K),
            dealloc_op(&dsid, 0, 1),
            seek_op(&dsid, 0, false),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    // Another client waits, for each of the three.
    for op in [
        seek_op(&anonymous(), 0, false),
        alloc_op(&anonymous(), 0, K),
        dealloc_op(&anonymous(), 0, 1),
    ] {
        assert_eq!(w.run(2, vec![putfh(&fh), op]).0, code(Nfs4Error::Delay));
    }
    let orders = w.locking.lock().delegations_mut().due_recalls(Time(0));
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].client, ClientId(1));
}
