//! READ_PLUS (RFC 7862 15.10) through compounds of minor version 2: holes sent as holes,
//! the reply within its count and segment bounds.
use super::*;
use crate::v4::ops::readplus::MAX_SEGMENTS;

const K: u64 = 4096;

fn read_plus_op(sid: &Stateid4, offset: u64, count: u32) -> NfsArgop4 {
    NfsArgop4::OpReadPlus(ReadPlus4args {
        rpa_stateid: sid.clone(),
        rpa_offset: offset,
        rpa_count: count,
    })
}

/// A segment, simplified: `(offset, Some(data))` or `(offset, None)` with a hole's length.
#[derive(Debug, PartialEq, Eq)]
enum Seg {
    Data(u64, Vec<u8>),
    Hole(u64, u64),
}

fn segments(r: &NfsResop4) -> (bool, Vec<Seg>) {
    match r {
        NfsResop4::OpReadPlus(ReadPlus4res::Nfs4Ok(ok)) => (
            ok.rpr_eof,
            ok.rpr_contents
                .0
                .iter()
                .map(|c| match c {
                    ReadPlusContent::Nfs4ContentData(d) => {
                        Seg::Data(d.d_offset, d.d_data.0.clone())
                    }
                    ReadPlusContent::Nfs4ContentHole(h) => Seg::Hole(h.di_offset, h.di_length),
                    other => panic!("{other:?}"),
                })
                .collect(),
        ),
        other => panic!("{other:?}"),
    }
}

/// `f` with "abc" at 0 and "x" at 3K + 1, 6K long: data in chunks 0 and 3.
fn sparse(w: &World) -> (Vec<u8>, Stateid4) {
    let (fh, sid) = open_ok(w, 1, b"o1", b"f", BOTH, 0);
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
    (fh, sid)
}

fn chunk_with(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![0; K as usize];
    v[at..at + bytes.len()].copy_from_slice(bytes);
    v
}

#[test]
fn read_plus_sends_holes_as_holes() {
    let w = world();
    w.minor.set(2);
    let (fh, sid) = sparse(&w);
    let (s, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, 0, 1 << 20)]);
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(
        segments(&r[1]),
        (
            true,
            vec![
                Seg::Data(0, chunk_with(0, b"abc")),
                Seg::Hole(K, 2 * K),
                Seg::Data(3 * K, chunk_with(1, b"x")),
                Seg::Hole(4 * K, 2 * K),
            ]
        )
    );
    // Within a hole, cut at the end asked; within data, at the end of the file.
    let (_, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, K + 5, 10)]);
    assert_eq!(segments(&r[1]), (false, vec![Seg::Hole(K + 5, 10)]));
    let (_, r) = w.run(
        1,
        vec![putfh(&fh), read_plus_op(&anonymous(), 6 * K - 2, 10)],
    );
    assert_eq!(segments(&r[1]), (true, vec![Seg::Hole(6 * K - 2, 2)]));
    // At or past the end: eof and nothing; a count of zero: nothing, not the end.
    for at in [6 * K, u64::MAX] {
        let (s, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, at, 10)]);
        assert_eq!((s, segments(&r[1])), (0, (true, vec![])));
    }
    let (_, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, 0, 0)]);
    assert_eq!(segments(&r[1]), (false, vec![]));
    // The count holds the segments' headers too: 40 bytes leave 24 of data.
    let (_, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, 0, 40)]);
    let mut want = b"abc".to_vec();
    want.resize(24, 0);
    assert_eq!(segments(&r[1]), (false, vec![Seg::Data(0, want)]));
}

#[test]
fn read_plus_bounds_its_segments_and_checks_as_read_does() {
    let w = world();
    w.minor.set(2);
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    // A byte in every other chunk: a segment per chunk.
    let ops: Vec<_> = (0..40)
        .map(|i| write_op(&sid, 2 * i * K, b"y", StableHow4::Unstable4))
        .collect();
    let mut all = vec![putfh(&fh)];
    all.extend(ops);
    assert_eq!(w.run(1, all).0, 0);
    let (s, r) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, 0, 1 << 20)]);
    assert_eq!(s, 0);
    let (eof, segs) = segments(&r[1]);
    assert_eq!((eof, segs.len()), (false, MAX_SEGMENTS));
    assert_eq!(segs[1], Seg::Hole(K, K));
    // Errors as READ's.
    let bad = Stateid4 {
        seqid: 1,
        other: OpaqueFixed([9; 12]),
    };
    let (s, _) = w.run(1, vec![putfh(&fh), read_plus_op(&bad, 0, 10)]);
    assert_eq!(s, code(Nfs4Error::BadStateid));
    let mut dir = at_export();
    dir.push(read_plus_op(&anonymous(), 0, 10));
    assert_eq!(w.run(1, dir).0, code(Nfs4Error::IsDir));
    // NFSv4.1 has no READ_PLUS.
    w.minor.set(1);
    let (s, _) = w.run(1, vec![putfh(&fh), read_plus_op(&sid, 0, 10)]);
    assert_eq!(s, code(Nfs4Error::OpIllegal));
}

/// On the local backend the segments, put together, are what READ reads.
#[test]
fn read_plus_on_the_local_backend_reads_what_read_reads() {
    let (_d, w) = local_world();
    w.minor.set(2);
    const M: u64 = 1 << 20;
    let (fh, sid) = open_ok(&w, 1, b"o1", b"f", BOTH, 0);
    let (s, _) = w.run(
        1,
        vec![
            putfh(&fh),
            write_op(&sid, 5, b"head", StableHow4::FileSync4),
            write_op(&sid, M + 7, b"middle", StableHow4::FileSync4),
        ],
    );
    assert_eq!(s, 0);
    let (k, _) = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap();
    let grow = SetAttr {
        size: Some(3 * M),
        ..SetAttr::default()
    };
    w.fs.setattr(&VCtx::default(), &k, &grow, None).unwrap();
    let mut got = Vec::new();
    let mut holes = 0;
    let mut eof = false;
    while !eof {
        let (s, r) = w.run(
            1,
            vec![putfh(&fh), read_plus_op(&sid, got.len() as u64, 1 << 20)],
        );
        assert_eq!(s, 0, "{r:?}");
        let (e, segs) = segments(&r[1]);
        eof = e;
        for seg in segs {
            match seg {
                Seg::Data(at, d) => {
                    assert_eq!(at, got.len() as u64);
                    got.extend(d);
                }
                Seg::Hole(at, n) => {
                    assert_eq!(at, got.len() as u64);
                    got.resize(got.len() + n as usize, 0);
                    holes += 1;
                }
            }
        }
    }
    let mut want = vec![0; 3 * M as usize];
    want[5..9].copy_from_slice(b"head");
    want[M as usize + 7..M as usize + 13].copy_from_slice(b"middle");
    assert!(got == want, "READ_PLUS rebuilds the file");
    eprintln!("{holes} holes");
}
