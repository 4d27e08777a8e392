//! The NFSv4.2 extended attribute operations (RFC 8276): GETXATTR, SETXATTR, LISTXATTRS,
//! REMOVEXATTR, `xattr_support` and the ACCESS xattr bits, through compounds of minor
//! version 2 on the memory backend (and once on the local one).
use super::*;

const XAREAD: u32 = 0x40;
const XAWRITE: u32 = 0x80;
const XALIST: u32 = 0x100;

fn w42() -> World {
    let w = world();
    w.minor.set(2);
    w
}

fn get_op(n: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpGetxattr(Getxattr4args { gxa_name: name(n) })
}

fn set_op(how: SetxattrOption4, n: &[u8], v: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpSetxattr(Setxattr4args {
        sxa_option: how,
        sxa_key: name(n),
        sxa_value: Opaque(v.to_vec()),
    })
}

fn list_op(cookie: u64, maxcount: u32) -> NfsArgop4 {
    NfsArgop4::OpListxattrs(Listxattrs4args {
        lxa_cookie: cookie,
        lxa_maxcount: maxcount,
    })
}

fn remove_op(n: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpRemovexattr(Removexattr4args { rxa_name: name(n) })
}

const EITHER: SetxattrOption4 = SetxattrOption4::Setxattr4Either;
const CREATE: SetxattrOption4 = SetxattrOption4::Setxattr4Create;
const REPLACE: SetxattrOption4 = SetxattrOption4::Setxattr4Replace;

fn value(r: &NfsResop4) -> Vec<u8> {
    match r {
        NfsResop4::OpGetxattr(Getxattr4res::Nfs4Ok(v)) => v.0.clone(),
        other => panic!("{other:?}"),
    }
}

fn cinfo(r: &NfsResop4) -> ChangeInfo4 {
    match r {
        NfsResop4::OpSetxattr(Setxattr4res::Nfs4Ok(c))
        | NfsResop4::OpRemovexattr(Removexattr4res::Nfs4Ok(c)) => c.clone(),
        other => panic!("{other:?}"),
    }
}

/// A LISTXATTRS result: `(cookie, names, eof)`.
fn listed(r: &NfsResop4) -> (u64, Vec<Vec<u8>>, bool) {
    match r {
        NfsResop4::OpListxattrs(Listxattrs4res::Nfs4Ok(ok)) => (
            ok.lxr_cookie,
            ok.lxr_names.0.iter().map(|n| n.0.clone()).collect(),
            ok.lxr_eof,
        ),
        other => panic!("{other:?}"),
    }
}

/// A file `f` in the export's root: its handle.
fn file(w: &World) -> Vec<u8> {
    let (s, r) = w.run(1, open_file(b"o1", b"f", BOTH, 0));
    assert_eq!(s, 0, "{r:?}");
    fh_of(&r[4])
}

fn status(w: &World, ops: Vec<NfsArgop4>) -> u32 {
    w.run(1, ops).0
}

#[test]
fn set_get_and_remove_with_create_and_replace() {
    let w = w42();
    let fh = file(&w);
    let on = |op| status(&w, vec![putfh(&fh), op]);
    assert_eq!(on(get_op(b"a")), code(Nfs4Error::NoXattr));
    assert_eq!(on(set_op(REPLACE, b"a", b"1")), code(Nfs4Error::NoXattr));
    assert_eq!(on(remove_op(b"a")), code(Nfs4Error::NoXattr));
    let (s, r) = w.run(
        1,
        vec![
            putfh(&fh),
            set_op(CREATE, b"a", b"1"),
            get_op(b"a"),
            set_op(REPLACE, b"a", b"22"),
            get_op(b"a"),
            set_op(EITHER, b"b", b""),
            get_op(b"b"),
            remove_op(b"a"),
        ],
    );
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(value(&r[2]), b"1");
    assert_eq!(value(&r[4]), b"22");
    assert_eq!(value(&r[6]), b"");
    // change_info4 of the file: each change moves its change attribute.
    for i in [1, 3, 5, 7] {
        let c = cinfo(&r[i]);
        assert!(c.after > c.before, "op {i}: {c:?}");
        assert!(!c.atomic);
    }
    assert_eq!(cinfo(&r[3]).before, cinfo(&r[1]).after);
    assert_eq!(on(set_op(CREATE, b"b", b"x")), code(Nfs4Error::Exist));
    assert_eq!(on(get_op(b"a")), code(Nfs4Error::NoXattr));
    // Names: empty is INVAL, longer than the host takes is NAMETOOLONG.
    assert_eq!(on(get_op(b"")), code(Nfs4Error::Inval));
    assert_eq!(
        on(set_op(EITHER, &[b'n'; 251], b"")),
        code(Nfs4Error::NameTooLong)
    );
    // The largest value there is.
    let big = vec![5u8; rnfs_vfs::XATTR_SIZE_MAX];
    let (s, r) = w.run(
        1,
        vec![putfh(&fh), set_op(EITHER, b"big", &big), get_op(b"big")],
    );
    assert_eq!(s, 0);
    assert_eq!(value(&r[2]), big);
}

#[test]
fn listxattrs_pages_by_cookie_within_maxcount() {
    let w = w42();
    let fh = file(&w);
    let (s, r) = w.run(1, vec![putfh(&fh), list_op(0, 8192)]);
    assert_eq!(s, 0);
    assert_eq!(listed(&r[1]), (0, vec![], true));
    let names: Vec<Vec<u8>> = (1..=6).map(|i| format!("attr{i}").into_bytes()).collect();
    let mut ops = vec![putfh(&fh)];
    ops.extend(names.iter().map(|n| set_op(CREATE, n, b"v")));
    assert_eq!(status(&w, ops), 0);
    let (s, r) = w.run(1, vec![putfh(&fh), list_op(0, 8192)]);
    assert_eq!(s, 0);
    assert_eq!(listed(&r[1]), (6, names.clone(), true));
    // Each name takes 4 + 8 bytes; 16 more for the cookie, the count and eof: 40 bytes
    // hold two names.
    let mut got = Vec::new();
    let mut cookie = 0;
    loop {
        let (s, r) = w.run(1, vec![putfh(&fh), list_op(cookie, 40)]);
        assert_eq!(s, 0, "{r:?}");
        let (next, n, eof) = listed(&r[1]);
        assert_eq!(n.len(), 2);
        got.extend(n);
        cookie = next;
        if eof {
            break;
        }
    }
    assert_eq!(got, names);
    // Not one name fits: TOOSMALL; a cookie past the end: BAD_COOKIE.
    let on = |op| status(&w, vec![putfh(&fh), op]);
    assert_eq!(on(list_op(0, 27)), code(Nfs4Error::TooSmall));
    assert_eq!(on(list_op(0, 28)), 0);
    assert_eq!(on(list_op(7, 8192)), code(Nfs4Error::BadCookie));
    assert_eq!(on(list_op(u64::MAX, 8192)), code(Nfs4Error::BadCookie));
    // At the end: nothing more, eof.
    let (_, r) = w.run(1, vec![putfh(&fh), list_op(6, 16)]);
    assert_eq!(listed(&r[1]), (6, vec![], true));
}

/// `xattr_support` of the current object as GETATTR answers it (None: not answered).
fn xattr_support(w: &World, mut ops: Vec<NfsArgop4>) -> Option<bool> {
    ops.push(NfsArgop4::OpGetattr(Getattr4args {
        attr_request: VarArray(vec![0, 0, 1 << (82 - 64)]),
    }));
    let (s, r) = w.run(1, ops);
    assert_eq!(s, 0, "{r:?}");
    match r.last() {
        Some(NfsResop4::OpGetattr(Getattr4res::Nfs4Ok(ok))) => {
            let v = &ok.obj_attributes.attr_vals.0;
            (!v.is_empty()).then(|| v[..4] != [0; 4])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn xattr_support_per_object_and_only_in_4_2() {
    let w = w42();
    let fh = file(&w);
    assert_eq!(xattr_support(&w, vec![putfh(&fh)]), Some(true));
    assert_eq!(xattr_support(&w, at_export()), Some(true));
    assert_eq!(xattr_support(&w, vec![NfsArgop4::OpPutrootfh]), Some(false));
    w.fs.symlink(
        &VCtx::default(),
        &w.fs.root(),
        b"l",
        b"f",
        &SetAttr::default(),
    )
    .unwrap();
    let mut l = at_export();
    l.push(lookup_op(b"l"));
    assert_eq!(xattr_support(&w, l), Some(false));
    w.minor.set(1);
    assert_eq!(xattr_support(&w, vec![putfh(&fh)]), None);
}

#[test]
fn xattr_operations_refuse_what_they_must() {
    let w = w42();
    let fh = file(&w);
    // The pseudo root: no xattrs to read, read-only to change.
    let root = |op| status(&w, vec![NfsArgop4::OpPutrootfh, op]);
    assert_eq!(root(get_op(b"a")), code(Nfs4Error::NotSupp));
    assert_eq!(root(list_op(0, 8192)), code(Nfs4Error::NotSupp));
    assert_eq!(root(set_op(EITHER, b"a", b"")), code(Nfs4Error::Rofs));
    assert_eq!(root(remove_op(b"a")), code(Nfs4Error::Rofs));
    // A symbolic link holds none.
    w.fs.symlink(
        &VCtx::default(),
        &w.fs.root(),
        b"l",
        b"f",
        &SetAttr::default(),
    )
    .unwrap();
    let on_link = |op| {
        let mut v = at_export();
        v.push(lookup_op(b"l"));
        v.push(op);
        status(&w, v)
    };
    assert_eq!(on_link(get_op(b"a")), code(Nfs4Error::NotSupp));
    assert_eq!(on_link(set_op(EITHER, b"a", b"")), code(Nfs4Error::NotSupp));
    // A read-only export: reads work, changes are ROFS.
    w._ro
        .create(
            &VCtx::default(),
            &w._ro.root(),
            b"g",
            &rnfs_vfs::CreateMode::Unchecked(SetAttr::default()),
        )
        .unwrap();
    let in_ro = |op| {
        status(
            &w,
            vec![
                NfsArgop4::OpPutrootfh,
                lookup_op(b"ro"),
                lookup_op(b"g"),
                op,
            ],
        )
    };
    assert_eq!(in_ro(get_op(b"a")), code(Nfs4Error::NoXattr));
    assert_eq!(in_ro(list_op(0, 100)), 0);
    assert_eq!(in_ro(set_op(EITHER, b"a", b"")), code(Nfs4Error::Rofs));
    assert_eq!(in_ro(remove_op(b"a")), code(Nfs4Error::Rofs));
    // No current filehandle.
    assert_eq!(
        status(&w, vec![get_op(b"a")]),
        code(Nfs4Error::NoFileHandle)
    );
    // NFSv4.1 has none of them.
    w.minor.set(1);
    for op in [
        get_op(b"a"),
        set_op(EITHER, b"a", b""),
        list_op(0, 100),
        remove_op(b"a"),
    ] {
        let (s, r) = w.run(1, vec![putfh(&fh), op]);
        assert_eq!(s, code(Nfs4Error::OpIllegal), "{r:?}");
    }
}

#[test]
fn another_clients_delegation_is_recalled_before_a_change() {
    let w = w42();
    w.hooks.cb_ok.set(true);
    let (s, r) = w.run(1, open_file(b"o1", b"f", BOTH, 0));
    assert_eq!(s, 0);
    let fh = fh_of(&r[4]);
    assert!(matches!(
        deleg_of(&r[3]),
        OpenDelegation4::OpenDelegateWrite(_)
    ));
    // The holder changes them; another client reads them, but waits to change them.
    assert_eq!(status(&w, vec![putfh(&fh), set_op(EITHER, b"a", b"1")]), 0);
    let (s, r) = w.run(2, vec![putfh(&fh), get_op(b"a"), list_op(0, 100)]);
    assert_eq!(s, 0, "{r:?}");
    for op in [set_op(EITHER, b"a", b"2"), remove_op(b"a")] {
        assert_eq!(w.run(2, vec![putfh(&fh), op]).0, code(Nfs4Error::Delay));
    }
    let orders = w.locking.lock().delegations_mut().due_recalls(Time(0));
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].client, ClientId(1));
}

/// ACCESS of every bit: `(supported, access)`.
fn access(w: &World, mut ops: Vec<NfsArgop4>) -> (u32, u32) {
    ops.push(NfsArgop4::OpAccess(Access4args { access: 0x1ff }));
    let (s, r) = w.run(1, ops);
    assert_eq!(s, 0, "{r:?}");
    match r.last() {
        Some(NfsResop4::OpAccess(Access4res::Nfs4Ok(ok))) => (ok.supported, ok.access),
        other => panic!("{other:?}"),
    }
}

#[test]
fn access_answers_the_xattr_bits_in_4_2() {
    let w = w42();
    let fh = file(&w);
    let xa = XAREAD | XAWRITE | XALIST;
    let (sup, got) = access(&w, vec![putfh(&fh)]);
    assert_eq!(sup & xa, xa);
    assert_eq!(got & xa, xa, "the file is writable: {got:#x}");
    // Read-only to the caller: XAREAD and XALIST, not XAWRITE.
    let (k, _) = w.fs.lookup(&VCtx::default(), &w.fs.root(), b"f").unwrap();
    let ro = SetAttr {
        mode: Some(0o444),
        uid: Some(4242),
        ..SetAttr::default()
    };
    w.fs.setattr(&VCtx::default(), &k, &ro, None).unwrap();
    let (sup, got) = access(&w, vec![putfh(&fh)]);
    assert_eq!((sup & xa, got & xa), (xa, XAREAD | XALIST));
    // None on the pseudo root, nor in NFSv4.1.
    assert_eq!(access(&w, vec![NfsArgop4::OpPutrootfh]).0 & xa, 0);
    w.minor.set(1);
    assert_eq!(access(&w, vec![putfh(&fh)]).0 & xa, 0);
}

#[test]
fn xattrs_on_the_local_backend_are_the_hosts_user_namespace() {
    let (dir, w) = local_world();
    w.minor.set(2);
    let fh = file(&w);
    let (s, r) = w.run(1, vec![putfh(&fh), set_op(CREATE, b"a", b"1")]);
    if s == code(Nfs4Error::NotSupp) {
        eprintln!("this file system has no user xattrs: nothing more to check here");
        return;
    }
    assert_eq!(s, 0, "{r:?}");
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(dir.path().join("f"), "user.a", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"1");
    let (s, r) = w.run(
        1,
        vec![putfh(&fh), list_op(0, 100), get_op(b"a"), remove_op(b"a")],
    );
    assert_eq!(s, 0, "{r:?}");
    assert_eq!(listed(&r[1]), (1, vec![b"a".to_vec()], true));
    assert_eq!(value(&r[2]), b"1");
    assert_eq!(
        status(&w, vec![putfh(&fh), get_op(b"a")]),
        code(Nfs4Error::NoXattr)
    );
}
