//! What pynfs' NFSv4.0 suite checks of the operations shared by every minor version
//! (docs/pynfs40-known-failures.txt): ACCESS bits by object type, unknown attributes in
//! GETATTR, an owner's own share reservations, empty owners, READDIR's TOOSMALL, LINK of
//! a directory, offsets and sizes past `off_t`. (RPLY14, the NFSv4.0 replay through the
//! duplicate request cache, is tested in `v4::unit`.)
use super::*;

const A_READ: u32 = 0x01;
const A_LOOKUP: u32 = 0x02;
const A_DELETE: u32 = 0x10;
const A_EXECUTE: u32 = 0x20;
const A_ALL: u32 = 0x3f;

fn access_of(w: &World, path: &[&[u8]], bits: u32) -> (u32, u32) {
    let mut v = at_export();
    for p in path {
        v.push(lookup_op(p));
    }
    v.push(NfsArgop4::OpAccess(Access4args { access: bits }));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    match r.last().unwrap() {
        NfsResop4::OpAccess(Access4res::Nfs4Ok(ok)) => (ok.supported, ok.access),
        other => panic!("{other:?}"),
    }
}

#[test]
fn access_answers_only_the_bits_meaningful_for_the_type() {
    // pynfs ACC2*: LOOKUP and DELETE mean nothing for a non-directory, EXECUTE nothing for
    // a directory; such bits are neither supported nor granted.
    let w = world();
    let ctx = VCtx::default();
    let root = w.fs.root();
    let all = SetAttr {
        mode: Some(0o777),
        ..SetAttr::default()
    };
    w.fs.mkdir(&ctx, &root, b"d", &all).unwrap();
    w.fs.create(&ctx, &root, b"f", &rnfs_vfs::CreateMode::Guarded(all))
        .unwrap();
    w.fs.symlink(&ctx, &root, b"l", b"f", &all).unwrap();
    let (s, a) = access_of(&w, &[b"d"], A_ALL);
    assert_eq!((s, a & s), (A_ALL & !A_EXECUTE, a));
    for obj in [&b"f"[..], b"l"] {
        let (s, a) = access_of(&w, &[obj], A_ALL);
        assert_eq!(s, A_ALL & !(A_LOOKUP | A_DELETE), "{obj:?}");
        assert_eq!(a & !s, 0, "{obj:?}");
        assert_ne!(a & A_READ, 0, "{obj:?}");
    }
    // Only what is asked for is answered.
    assert_eq!(access_of(&w, &[b"f"], A_LOOKUP), (0, 0));
    assert_eq!(access_of(&w, &[b"d"], A_EXECUTE), (0, 0));
    // A pseudo directory: no EXECUTE either.
    let v = vec![
        NfsArgop4::OpPutrootfh,
        NfsArgop4::OpAccess(Access4args { access: A_ALL }),
    ];
    let (st, r) = w.run(1, v);
    assert_eq!(st, 0);
    match &r[1] {
        NfsResop4::OpAccess(Access4res::Nfs4Ok(ok)) => {
            assert_eq!(ok.supported & A_EXECUTE, 0);
            assert_eq!(ok.access, A_READ | A_LOOKUP);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn getattr_leaves_out_attributes_it_does_not_know() {
    // pynfs GATT4*: attribute 1000 (a bitmap of 32 words) is no error; the reply's bitmap
    // holds only what the server has.
    let w = world();
    let mut words = vec![0u32; 32];
    words[0] = 1 << 1; // type
    words[1000 / 32] = 1 << (1000 % 32);
    let mut v = at_export();
    v.push(NfsArgop4::OpGetattr(Getattr4args {
        attr_request: VarArray(words),
    }));
    let (s, r) = w.run(1, v);
    assert_eq!(s, 0, "{r:?}");
    match r.last().unwrap() {
        NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok)) => {
            assert_eq!(ok.obj_attributes.attrmask.0, vec![1 << 1]);
            assert_eq!(ok.obj_attributes.attr_vals.0, 2u32.to_be_bytes()); // NF4DIR
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_owner_s_own_deny_modes_refuse_its_next_open() {
    // pynfs OPEN21, OPEN25: the same open owner asks for access its own open denies.
    let w = world();
    const DENY_READ: u32 = 1;
    const DENY_WRITE: u32 = 2;
    open_ok(&w, 1, b"o", b"r", BOTH, DENY_READ);
    let (s, _) = w.run(1, open_file(b"o", b"r", READ, 0));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    open_ok(&w, 1, b"o", b"w", BOTH, DENY_WRITE);
    let (s, _) = w.run(1, open_file(b"o", b"w", WRITE, 0));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    // Denying what the owner's own open holds: refused too.
    open_ok(&w, 1, b"o", b"x", READ, 0);
    let (s, _) = w.run(1, open_file(b"o", b"x", READ, DENY_READ));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    // An upgrade nothing denies still works, on the same stateid; so does opening again
    // an access the owner opened already, whatever its own deny (knfsd's rule).
    let (_, s1) = open_ok(&w, 1, b"o", b"u", READ, 0);
    let (_, s2) = open_ok(&w, 1, b"o", b"u", BOTH, DENY_WRITE);
    assert_eq!((s2.seqid, &s2.other), (2, &s1.other));
    let (_, s3) = open_ok(&w, 1, b"o", b"u", BOTH, 0);
    assert_eq!((s3.seqid, &s3.other), (3, &s1.other));
    // Another owner of the same client is held off like any other.
    let (s, _) = w.run(1, open_file(b"p", b"u", WRITE, 0));
    assert_eq!(s, code(Nfs4Error::ShareDenied));
    w.counts();
}

#[test]
fn an_empty_owner_or_group_is_invalid() {
    // pynfs SATT16, SATT17: a zero-length principal is INVAL (a name that maps to no one
    // stays BADOWNER).
    let w = world();
    let (fh, _) = open_ok(&w, 1, b"o", b"f", BOTH, 0);
    let set = |bit: u32, val: &[u8]| {
        let mut v = Writer::new();
        v.opaque(val);
        setattr_op(anonymous(), vec![0, 1 << (bit - 32)], v.into_inner())
    };
    const OWNER: u32 = 36;
    const OWNER_GROUP: u32 = 37;
    for bit in [OWNER, OWNER_GROUP] {
        let (s, _) = w.run(1, vec![putfh(&fh), set(bit, b"")]);
        assert_eq!(s, code(Nfs4Error::Inval), "attribute {bit}");
        let (s, _) = w.run(1, vec![putfh(&fh), set(bit, b"nobody@nowhere")]);
        assert_eq!(s, code(Nfs4Error::BadOwner), "attribute {bit}");
    }
}

#[test]
fn readdir_without_room_for_an_empty_listing_is_too_small() {
    // pynfs RDDR8: an empty directory's listing is 16 bytes (verifier, end, eof).
    let w = world();
    w.fs.mkdir(&VCtx::default(), &w.fs.root(), b"e", &SetAttr::default())
        .unwrap();
    let list = |maxcount| {
        let mut v = at_export();
        v.push(lookup_op(b"e"));
        v.push(readdir_op(0, [0; 8], maxcount, vec![]));
        w.run(1, v).0
    };
    assert_eq!(list(15), code(Nfs4Error::TooSmall));
    assert_eq!(list(0), code(Nfs4Error::TooSmall));
    assert_eq!(list(16), 0);
}

#[test]
fn link_of_a_directory_is_isdir() {
    // pynfs LINK1d: ISDIR, not the backend's refusal (EPERM).
    let w = world();
    w.fs.mkdir(&VCtx::default(), &w.fs.root(), b"d", &SetAttr::default())
        .unwrap();
    let mut v = saved_then_export(b"d");
    v.push(NfsArgop4::OpLink(Link4args {
        newname: name(b"d2"),
    }));
    assert_eq!(w.run(1, v).0, code(Nfs4Error::IsDir));
    assert!(w.fs.lookup(&VCtx::default(), &w.fs.root(), b"d2").is_err());
}

#[test]
fn sizes_and_offsets_past_off_t() {
    // pynfs RD5a: a READ near 2^63 is the end of the file; SATT12x: a size of 2^64 - 1 is
    // FBIG (not the IO of a size the backend cannot convert).
    let (_dir, w) = local_world();
    let (fh, sid) = open_ok(&w, 1, b"o", b"f", BOTH, 0);
    for offset in [0x7fff_ffff_ffff_fffc, i64::MAX as u64, u64::MAX] {
        let (s, r) = w.run(1, vec![putfh(&fh), read_op(&sid, offset, 10)]);
        assert_eq!(s, 0, "{offset:#x}: {r:?}");
        match &r[1] {
            NfsResop4::OpRead(Read4res::Nfs4Ok(ok)) => {
                assert!(ok.eof && ok.data.0.is_empty(), "{offset:#x}")
            }
            other => panic!("{other:?}"),
        }
    }
    for size in [u64::MAX, i64::MAX as u64 + 1] {
        let v = vec![
            putfh(&fh),
            setattr_op(sid.clone(), vec![1 << 4], size.to_be_bytes().to_vec()),
        ];
        assert_eq!(w.run(1, v).0, code(Nfs4Error::FBig), "{size:#x}");
    }
}
