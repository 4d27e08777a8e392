//! The NFSv4.2 copy operations (RFC 7862): COPY and CLONE through compounds of minor
//! version 2, SAVED_FH the source and CURRENT_FH the destination.
use super::*;
use crate::v4::offload::ASYNC_MIN;
use crate::v4::ops::copy::COPY_MAX;

fn w42(w: World) -> World {
    w.minor.set(2);
    w
}

fn copy_op(src: &Stateid4, dst: &Stateid4, src_off: u64, dst_off: u64, count: u64) -> NfsArgop4 {
    NfsArgop4::OpCopy(Copy4args {
        ca_src_stateid: src.clone(),
        ca_dst_stateid: dst.clone(),
        ca_src_offset: src_off,
        ca_dst_offset: dst_off,
        ca_count: count,
        ca_consecutive: false,
        ca_synchronous: false,
        ca_source_server: VarArray(vec![]),
    })
}

fn clone_op(src: &Stateid4, dst: &Stateid4, src_off: u64, dst_off: u64, count: u64) -> NfsArgop4 {
    NfsArgop4::OpClone(Clone4args {
        cl_src_stateid: src.clone(),
        cl_dst_stateid: dst.clone(),
        cl_src_offset: src_off,
        cl_dst_offset: dst_off,
        cl_count: count,
    })
}

/// PUTFH `src`, SAVEFH, PUTFH `dst`, then `op`.
fn between(src: &[u8], dst: &[u8], op: NfsArgop4) -> Vec<NfsArgop4> {
    vec![putfh(src), NfsArgop4::OpSavefh, putfh(dst), op]
}

fn copied(r: &NfsResop4) -> Copy4resok {
    match r {
        NfsResop4::OpCopy(Copy4res::Nfs4Ok(ok)) => ok.clone(),
        other => panic!("{other:?}"),
    }
}

fn data(r: &NfsResop4) -> Vec<u8> {
    match r {
        NfsResop4::OpRead(Read4res::Nfs4Ok(ok)) => ok.data.0.clone(),
        other => panic!("{other:?}"),
    }
}

/// Two open files, `f` holding `content` and `g` empty: their handles and stateids.
fn two_files(w: &World, content: &[u8]) -> ((Vec<u8>, Stateid4), (Vec<u8>, Stateid4)) {
    let f = open_ok(w, 1, b"o1", b"f", BOTH, 0);
    let g = open_ok(w, 1, b"o2", b"g", BOTH, 0);
    let (s, r) = w.run(
        1,
        vec![
            putfh(&f.0),
            write_op(&f.1, 0, content, StableHow4::FileSync4),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    (f, g)
}

fn copies_synchronously(w: World) {
    let w = w42(w);
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let ((f, fs), (g, gs)) = two_files(&w, &content);
    // All of it (count 0: to the end), at an offset of the destination.
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, 0, 7, 0)));
    assert_eq!(s, 0, "{r:?}");
    let ok = copied(&r[3]);
    assert!(
        ok.cr_response.wr_callback_id.0.is_empty(),
        "synchronous: no callback"
    );
    assert_eq!(ok.cr_response.wr_count, 100_000);
    assert_eq!(ok.cr_response.wr_writeverf.0, VERF);
    assert!(ok.cr_requirements.cr_synchronous && ok.cr_requirements.cr_consecutive);
    let (s, r) = w.run(1, vec![putfh(&g), read_op(&gs, 7, 200_000)]);
    assert_eq!(s, 0);
    assert_eq!(data(&r[1]), content);
    // A part, with the anonymous stateid on both sides; an empty range at the end.
    let (s, r) = w.run(
        1,
        between(&f, &g, copy_op(&anonymous(), &anonymous(), 10, 0, 5)),
    );
    assert_eq!((s, copied(&r[3]).cr_response.wr_count), (0, 5));
    let (s, r) = w.run(1, vec![putfh(&g), read_op(&gs, 0, 5)]);
    assert_eq!((s, data(&r[1])), (0, content[10..15].to_vec()));
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, 100_000, 0, 0)));
    assert_eq!((s, copied(&r[3]).cr_response.wr_count), (0, 0));
    // Within one file, ranges apart.
    let (s, r) = w.run(1, between(&f, &f, copy_op(&fs, &fs, 0, 100_000, 10)));
    assert_eq!((s, copied(&r[3]).cr_response.wr_count), (0, 10));
}

#[test]
fn copy_within_the_memory_backend() {
    copies_synchronously(world());
}

#[test]
fn copy_within_the_local_backend() {
    let (_d, w) = local_world();
    copies_synchronously(w);
}

/// One COPY copies at most COPY_MAX (a sparse source: the host copies zeros, or holes).
#[test]
fn a_large_copy_answers_a_short_count() {
    let (_d, w) = local_world();
    let w = w42(w);
    let ((f, fs), (g, gs)) = two_files(&w, b"x");
    let (k, _) = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap();
    let grow = SetAttr {
        size: Some(COPY_MAX + 4096),
        ..SetAttr::default()
    };
    w.fs.setattr(&VCtx::default(), &k, &grow, None).unwrap();
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, 0, 0, 0)));
    assert_eq!((s, copied(&r[3]).cr_response.wr_count), (0, COPY_MAX));
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, COPY_MAX, COPY_MAX, 0)));
    assert_eq!((s, copied(&r[3]).cr_response.wr_count), (0, 4096));
}

#[test]
fn copy_and_clone_refuse_what_read_and_write_refuse() {
    let w = w42(world());
    let ((f, fs), (g, gs)) = two_files(&w, &[1; 100]);
    let (_, g_ro) = open_ok(&w, 1, b"o3", b"g", READ, 0);
    let status = |ops| w.run(1, ops).0;
    for op in [
        |s: &Stateid4, d: &Stateid4, so, dof, n| copy_op(s, d, so, dof, n),
        |s: &Stateid4, d: &Stateid4, so, dof, n| clone_op(s, d, so, dof, n),
    ] {
        // No saved filehandle.
        assert_eq!(
            status(vec![putfh(&g), op(&fs, &gs, 0, 0, 1)]),
            code(Nfs4Error::NoFileHandle)
        );
        // Past the end of the source; overlapping in one file.
        assert_eq!(
            status(between(&f, &g, op(&fs, &gs, 50, 0, 51))),
            code(Nfs4Error::Inval)
        );
        assert_eq!(
            status(between(&f, &g, op(&fs, &gs, 101, 0, 0))),
            code(Nfs4Error::Inval)
        );
        assert_eq!(
            status(between(&f, &f, op(&fs, &fs, 0, 50, 60))),
            code(Nfs4Error::Inval)
        );
        // Past the largest size of the destination.
        assert_eq!(
            status(between(&f, &g, op(&fs, &gs, 0, i64::MAX as u64, 10))),
            code(Nfs4Error::FBig)
        );
        // A stateid that may not write the destination; one never given.
        assert_eq!(
            status(between(&f, &g, op(&fs, &g_ro, 0, 0, 1))),
            code(Nfs4Error::OpenMode)
        );
        let bad = Stateid4 {
            seqid: 1,
            other: OpaqueFixed([9; 12]),
        };
        assert_eq!(
            status(between(&f, &g, op(&bad, &gs, 0, 0, 1))),
            code(Nfs4Error::BadStateid)
        );
        // A directory on either side; the pseudo root.
        let mut dir_src = at_export();
        dir_src.push(NfsArgop4::OpSavefh);
        dir_src.push(putfh(&g));
        dir_src.push(op(&anonymous(), &gs, 0, 0, 1));
        assert_eq!(status(dir_src), code(Nfs4Error::WrongType));
        let mut dir_dst = vec![putfh(&f), NfsArgop4::OpSavefh];
        dir_dst.extend(at_export());
        dir_dst.push(op(&fs, &anonymous(), 0, 0, 1));
        assert_eq!(status(dir_dst), code(Nfs4Error::WrongType));
        let root = vec![
            putfh(&f),
            NfsArgop4::OpSavefh,
            NfsArgop4::OpPutrootfh,
            op(&fs, &anonymous(), 0, 0, 1),
        ];
        assert_eq!(status(root), code(Nfs4Error::WrongType));
        // Another export: XDEV.
        w._ro
            .create(
                &VCtx::default(),
                &w._ro.root(),
                b"h",
                &rnfs_vfs::CreateMode::Unchecked(SetAttr::default()),
            )
            .ok();
        let other = vec![
            NfsArgop4::OpPutrootfh,
            lookup_op(b"ro"),
            lookup_op(b"h"),
            NfsArgop4::OpSavefh,
            putfh(&g),
            op(&anonymous(), &gs, 0, 0, 0),
        ];
        assert_eq!(status(other), code(Nfs4Error::Xdev));
    }
    // From another server: OFFLOAD_NO_REQS, with the requirements it could have met.
    let mut from_afar = copy_op(&fs, &gs, 0, 0, 1);
    if let NfsArgop4::OpCopy(a) = &mut from_afar {
        a.ca_source_server = VarArray(vec![Netloc4::Nl4Name(Opaque(b"elsewhere".to_vec()))]);
    }
    let (s, r) = w.run(1, between(&f, &g, from_afar));
    assert_eq!(s, 10094);
    assert!(matches!(
        &r[3],
        NfsResop4::OpCopy(Copy4res::Nfs4errOffloadNoReqs(_))
    ));
}

#[test]
fn clone_shares_a_whole_range_or_nothing() {
    let w = w42(world());
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
    let ((f, fs), (g, gs)) = two_files(&w, &content);
    let (s, r) = w.run(1, between(&f, &g, clone_op(&fs, &gs, 0, 0, 0)));
    assert_eq!(s, 0, "{r:?}");
    let (s, r) = w.run(1, vec![putfh(&g), read_op(&gs, 0, 20_000)]);
    assert_eq!((s, data(&r[1])), (0, content.clone()));
    let (s, _) = w.run(1, between(&f, &g, clone_op(&fs, &gs, 100, 20_000, 50)));
    assert_eq!(s, 0);
    let (s, r) = w.run(1, vec![putfh(&g), read_op(&gs, 20_000, 100)]);
    assert_eq!((s, data(&r[1])), (0, content[100..150].to_vec()));
}

/// Without asynchronous copies (these hooks have none), a large COPY that allows one is
/// synchronous, and OFFLOAD_STATUS and OFFLOAD_CANCEL know no stateid.
#[test]
fn without_asynchronous_copies_offload_operations_know_no_stateid() {
    let w = w42(world());
    let ((f, fs), (g, gs)) = two_files(&w, b"abc");
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, 0, 0, 0)));
    assert_eq!(s, 0);
    assert!(copied(&r[3]).cr_requirements.cr_synchronous);
    let status = NfsArgop4::OpOffloadStatus(OffloadStatus4args {
        osa_stateid: fs.clone(),
    });
    let cancel = NfsArgop4::OpOffloadCancel(OffloadCancel4args { oca_stateid: fs });
    assert_eq!(
        w.run(1, vec![putfh(&g), status]).0,
        code(Nfs4Error::BadStateid)
    );
    assert_eq!(
        w.run(1, vec![putfh(&g), cancel]).0,
        code(Nfs4Error::BadStateid)
    );
}

/// With a back channel, a large COPY the client lets run asynchronously answers a copy
/// stateid; OFFLOAD_STATUS reports its end, OFFLOAD_CANCEL forgets it; another client
/// knows nothing of it; a COPY asked synchronous stays so.
#[test]
fn a_large_copy_runs_asynchronously_and_offload_operations_follow_it() {
    let (_d, w) = local_world();
    let w = w42(w);
    w.hooks.cb_ok.set(true);
    let ((f, fs), (g, gs)) = two_files(&w, b"x");
    let (k, _) = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap();
    let grow = SetAttr {
        size: Some(ASYNC_MIN),
        ..SetAttr::default()
    };
    w.fs.setattr(&VCtx::default(), &k, &grow, None).unwrap();
    let (s, r) = w.run(1, between(&f, &g, copy_op(&fs, &gs, 0, 0, 0)));
    assert_eq!(s, 0, "{r:?}");
    let ok = copied(&r[3]);
    assert!(!ok.cr_requirements.cr_synchronous);
    let [sid] = &ok.cr_response.wr_callback_id.0[..] else {
        panic!("{ok:?}")
    };
    assert_eq!(ok.cr_response.wr_writeverf.0, VERF);
    let ends = w.hooks.offloaded.borrow().clone();
    assert_eq!(ends.len(), 1);
    assert_eq!(
        (ends[0].0.other, ends[0].1, ends[0].2),
        (sid.other.0, ASYNC_MIN, 0)
    );
    assert_eq!(
        w.fs.getattr(
            &VCtx::default(),
            &w.fs.lookup(&VCtx::default(), &w.fs.root(), b"g").unwrap().0
        )
        .unwrap()
        .size,
        ASYNC_MIN
    );
    let status_op = || {
        NfsArgop4::OpOffloadStatus(OffloadStatus4args {
            osa_stateid: sid.clone(),
        })
    };
    let (s, r) = w.run(1, vec![putfh(&g), status_op()]);
    assert_eq!(s, 0);
    let NfsResop4::OpOffloadStatus(OffloadStatus4res::Nfs4Ok(st)) = &r[1] else {
        panic!("{r:?}")
    };
    assert_eq!(st.osr_count, ASYNC_MIN);
    assert_eq!(st.osr_complete.0, vec![Nfsstat4::Nfs4Ok]);
    assert_eq!(
        w.run(2, vec![putfh(&g), status_op()]).0,
        code(Nfs4Error::BadStateid)
    );
    let cancel = NfsArgop4::OpOffloadCancel(OffloadCancel4args {
        oca_stateid: sid.clone(),
    });
    assert_eq!(w.run(1, vec![putfh(&g), cancel]).0, 0);
    assert_eq!(
        w.run(1, vec![putfh(&g), status_op()]).0,
        code(Nfs4Error::BadStateid)
    );
    // Asked synchronous: synchronous, at most COPY_MAX.
    let mut sync = copy_op(&fs, &gs, 0, 0, 0);
    if let NfsArgop4::OpCopy(a) = &mut sync {
        a.ca_synchronous = true;
    }
    let (s, r) = w.run(1, between(&f, &g, sync));
    assert_eq!(s, 0);
    assert!(copied(&r[3]).cr_requirements.cr_synchronous);
    assert_eq!(w.hooks.offloaded.borrow().len(), 1);
}
