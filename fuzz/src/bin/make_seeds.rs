//! Writes the seed corpora under fuzz/corpus-seed/TARGET/: a few valid inputs per target.
//!
//! cargo run --manifest-path fuzz/Cargo.toml --features make-seeds --bin make_seeds [DIR]
//!
//! (DIR defaults to corpus-seed next to fuzz/Cargo.toml.) The seeds are small and committed;
//! rerun this after a wire type changes.
#![allow(missing_docs)]

use rnfs_fuzz::{auth_sys, call_message, FH_MARKER};
use rnfs_proto::mount3::{self, DirPath, ExportNode, MountBody, MountRes, MountResOk, MountStat3};
use rnfs_proto::nfs3::*;
use rnfs_proto::rpc::{AuthStat, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_rpc::record::encode_record;
use rnfs_xdr::{to_bytes, OpaqueFixed, VarArray, Writer, Xdr, XdrString};
use std::path::{Path, PathBuf};

struct Out {
    dir: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let d = self.dir.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write seed");
        self.count += 1;
    }
}

fn with_sel(sel: u8, b: Vec<u8>) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend(b);
    v
}

// ------------------------------------------------------------------ sample values

fn attr(ftype: Ftype3) -> Fattr3 {
    let t = NfsTime3 {
        seconds: 1_700_000_000,
        nseconds: 5,
    };
    Fattr3 {
        ftype,
        mode: 0o644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        size: 14,
        used: 4096,
        rdev: SpecData3::default(),
        fsid: 1,
        fileid: 42,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

fn fh(n: u8) -> FileHandle3 {
    FileHandle3(vec![
        b'R', 1, 0, 1, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, 9, 9, 9, 9,
    ])
}

fn name(s: &str) -> Filename3 {
    XdrString(s.as_bytes().to_vec())
}

fn wcc() -> WccData {
    WccData {
        before: Some(WccAttr {
            size: 3,
            mtime: NfsTime3::default(),
            ctime: NfsTime3::default(),
        }),
        after: Some(attr(Ftype3::Dir)),
    }
}

fn sattr() -> Sattr3 {
    Sattr3 {
        mode: Some(0o600),
        uid: None,
        gid: Some(100),
        size: Some(10),
        atime: SetTime::ServerTime,
        mtime: SetTime::ClientTime(NfsTime3 {
            seconds: 7,
            nseconds: 8,
        }),
    }
}

// ---------------------------------------------------- structured server inputs

/// A placeholder handle whose encoding `splice` turns into an `FF 'F' 'H' i` marker.
fn dummy(i: u8) -> FileHandle3 {
    FileHandle3(vec![0xAA, 0xBB, 0xCC, 0xDD, 0, 0, 0, i])
}

fn splice(args: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let enc_len = [0, 0, 0, 8, 0xAA, 0xBB, 0xCC, 0xDD, 0, 0, 0];
        if args[i..].starts_with(&enc_len) && i + 12 <= args.len() {
            out.extend_from_slice(&FH_MARKER);
            out.push(args[i + 11]);
            i += 12;
        } else {
            out.push(args[i]);
            i += 1;
        }
    }
    out
}

/// A structured `server_dispatch` input: `flags` (even), procedure, and arguments in which
/// dummy handles become markers; a leading dummy handle becomes the handle selector.
fn structured(flags: u8, proc_: u8, args: &[u8]) -> Vec<u8> {
    assert_eq!(flags & 1, 0);
    let mut v = vec![flags, proc_];
    let first = to_bytes(&dummy(0));
    if args.len() >= 12 && args[..11] == first[..11] {
        v.push(args[11]);
        v.extend(splice(&args[12..]));
    } else {
        v.push(0xff);
        v.extend(splice(args));
    }
    v
}

const ROOT: u8 = 0;
const D: u8 = 1;
const F: u8 = 2;
const L: u8 = 3;
const P: u8 = 4;

fn dirop(dir: u8, n: &str) -> DirOpArgs3 {
    DirOpArgs3 {
        dir: dummy(dir),
        name: name(n),
    }
}

fn server_seeds(o: &mut Out) {
    let t = "server_dispatch";
    let nfs: Vec<(&str, u8, Vec<u8>)> = vec![
        ("null", 0, vec![]),
        ("getattr", 1, to_bytes(&GetattrArgs { object: dummy(F) })),
        (
            "setattr",
            2,
            to_bytes(&SetattrArgs {
                object: dummy(F),
                new_attributes: sattr(),
                guard: None,
            }),
        ),
        ("lookup", 3, to_bytes(&dirop(ROOT, "f"))),
        ("lookup-dotdot", 3, to_bytes(&dirop(D, ".."))),
        (
            "access",
            4,
            to_bytes(&AccessArgs {
                object: dummy(F),
                access: 0x3f,
            }),
        ),
        ("readlink", 5, to_bytes(&GetattrArgs { object: dummy(L) })),
        (
            "read",
            6,
            to_bytes(&ReadArgs {
                file: dummy(F),
                offset: 3,
                count: 100,
            }),
        ),
        (
            "write",
            7,
            to_bytes(&WriteArgs {
                file: dummy(F),
                offset: 5,
                count: 5,
                stable: StableHow::Unstable,
                data: Data(b"abcde".to_vec()),
            }),
        ),
        (
            "create",
            8,
            to_bytes(&CreateArgs {
                where_: dirop(ROOT, "new"),
                how: CreateHow3::Unchecked(sattr()),
            }),
        ),
        (
            "create-excl",
            8,
            to_bytes(&CreateArgs {
                where_: dirop(D, "x"),
                how: CreateHow3::Exclusive(OpaqueFixed([7; 8])),
            }),
        ),
        (
            "mkdir",
            9,
            to_bytes(&MkdirArgs {
                where_: dirop(D, "sub"),
                attributes: Sattr3::default(),
            }),
        ),
        (
            "symlink",
            10,
            to_bytes(&SymlinkArgs {
                where_: dirop(ROOT, "s2"),
                symlink_attributes: Sattr3::default(),
                symlink_data: XdrString(b"../../etc".to_vec()),
            }),
        ),
        (
            "mknod-chr",
            11,
            to_bytes(&MknodArgs {
                where_: dirop(ROOT, "c"),
                what: MknodData3::Chr(Sattr3::default(), SpecData3 { major: 1, minor: 3 }),
            }),
        ),
        (
            "mknod-sock",
            11,
            to_bytes(&MknodArgs {
                where_: dirop(D, "s"),
                what: MknodData3::Sock(Sattr3::default()),
            }),
        ),
        ("remove", 12, to_bytes(&dirop(ROOT, "p"))),
        ("rmdir", 13, to_bytes(&dirop(ROOT, "d"))),
        (
            "rename",
            14,
            to_bytes(&RenameArgs {
                from: dirop(ROOT, "new"),
                to: dirop(D, "moved"),
            }),
        ),
        (
            "link",
            15,
            to_bytes(&LinkArgs {
                file: dummy(F),
                link: dirop(D, "hard"),
            }),
        ),
        (
            "readdir",
            16,
            to_bytes(&ReaddirArgs {
                dir: dummy(ROOT),
                cookie: 0,
                cookieverf: OpaqueFixed([0; 8]),
                count: 4096,
            }),
        ),
        (
            "readdirplus",
            17,
            to_bytes(&ReaddirplusArgs {
                dir: dummy(D),
                cookie: 0,
                cookieverf: OpaqueFixed([0; 8]),
                dircount: 512,
                maxcount: 8192,
            }),
        ),
        (
            "fsstat",
            18,
            to_bytes(&GetattrArgs {
                object: dummy(ROOT),
            }),
        ),
        ("fsinfo", 19, to_bytes(&GetattrArgs { object: dummy(P) })),
        ("pathconf", 20, to_bytes(&GetattrArgs { object: dummy(F) })),
        (
            "commit",
            21,
            to_bytes(&CommitArgs {
                file: dummy(F),
                offset: 0,
                count: 0,
            }),
        ),
    ];
    for (n, p, args) in &nfs {
        o.put(t, &format!("nfs-{n}"), &structured(0, *p, args));
    }
    // Other credentials: uid 1000 and AUTH_NONE.
    o.put(t, "nfs-write-uid1000", &structured(2, 7, &nfs[8].2));
    o.put(t, "nfs-create-anon", &structured(4, 8, &nfs[9].2));
    // MOUNT (bits 3-4 = 3).
    let dp = |s: &str| to_bytes(&DirPath::new(s).expect("path"));
    o.put(t, "mnt-root", &structured(0x18, 1, &dp("/")));
    o.put(t, "mnt-d", &structured(0x18, 1, &dp("/d/./")));
    o.put(t, "mnt-f", &structured(0x18, 1, &dp("/f")));
    o.put(t, "mnt-dump", &structured(0x18, 2, &[]));
    o.put(t, "mnt-umnt", &structured(0x18, 3, &dp("/")));
    o.put(t, "mnt-umntall", &structured(0x18, 4, &[]));
    o.put(t, "mnt-export", &structured(0x18, 5, &[]));
    // Raw messages (first byte odd): a whole call, and malformed ones.
    let raw_xid = 0x0100_0001;
    // (The real handles change with every MemFs instance, so a raw message can only carry
    // a stale one; the structured inputs above reach real objects.)
    let getattr_root = to_bytes(&GetattrArgs { object: fh(1) });
    o.put(
        t,
        "raw-getattr",
        &call_message(raw_xid, PROGRAM, 1, auth_sys(0, 0), &getattr_root),
    );
    o.put(
        t,
        "raw-null-none",
        &call_message(raw_xid, PROGRAM, 0, OpaqueAuth::none(), &[]),
    );
    o.put(
        t,
        "raw-mnt",
        &call_message(raw_xid, mount3::PROGRAM, 1, auth_sys(0, 0), &dp("/")),
    );
    o.put(
        t,
        "raw-badprog",
        &call_message(raw_xid, 100000, 3, auth_sys(0, 0), &[]),
    );
    o.put(t, "raw-badvers", &{
        let mut m = call_message(raw_xid, PROGRAM, 0, auth_sys(0, 0), &[]);
        m[8..12].copy_from_slice(&3u32.to_be_bytes());
        m
    });
    o.put(
        t,
        "raw-truncated",
        &call_message(raw_xid, PROGRAM, 0, auth_sys(0, 0), &[])[..20],
    );
}

// ------------------------------------------------------------------ decoders

fn nfs3_seeds(o: &mut Out) {
    let t = "nfs3_args";
    let items: Vec<(u8, &str, Vec<u8>)> = vec![
        (0, "null", vec![]),
        (1, "getattr", to_bytes(&GetattrArgs { object: fh(1) })),
        (
            2,
            "setattr",
            to_bytes(&SetattrArgs {
                object: fh(1),
                new_attributes: sattr(),
                guard: Some(NfsTime3 {
                    seconds: 1,
                    nseconds: 2,
                }),
            }),
        ),
        (
            3,
            "lookup",
            to_bytes(&DirOpArgs3 {
                dir: fh(1),
                name: name("hello"),
            }),
        ),
        (
            4,
            "access",
            to_bytes(&AccessArgs {
                object: fh(2),
                access: 0x1f,
            }),
        ),
        (
            6,
            "read",
            to_bytes(&ReadArgs {
                file: fh(3),
                offset: 1 << 40,
                count: 65536,
            }),
        ),
        (
            7,
            "write",
            to_bytes(&WriteArgs {
                file: fh(3),
                offset: 0,
                count: 3,
                stable: StableHow::FileSync,
                data: Data(vec![1, 2, 3]),
            }),
        ),
        (
            8,
            "create-guarded",
            to_bytes(&CreateArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("n"),
                },
                how: CreateHow3::Guarded(sattr()),
            }),
        ),
        (
            8,
            "create-excl",
            to_bytes(&CreateArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("n"),
                },
                how: CreateHow3::Exclusive(OpaqueFixed([1; 8])),
            }),
        ),
        (
            9,
            "mkdir",
            to_bytes(&MkdirArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("dir"),
                },
                attributes: Sattr3::default(),
            }),
        ),
        (
            10,
            "symlink",
            to_bytes(&SymlinkArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("l"),
                },
                symlink_attributes: sattr(),
                symlink_data: XdrString(b"target/x".to_vec()),
            }),
        ),
        (
            11,
            "mknod-blk",
            to_bytes(&MknodArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("b"),
                },
                what: MknodData3::Blk(sattr(), SpecData3 { major: 8, minor: 1 }),
            }),
        ),
        (
            11,
            "mknod-fifo",
            to_bytes(&MknodArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("f"),
                },
                what: MknodData3::Fifo(Sattr3::default()),
            }),
        ),
        (
            11,
            "mknod-other",
            to_bytes(&MknodArgs {
                where_: DirOpArgs3 {
                    dir: fh(1),
                    name: name("f"),
                },
                what: MknodData3::Other(Ftype3::Reg),
            }),
        ),
        (
            14,
            "rename",
            to_bytes(&RenameArgs {
                from: DirOpArgs3 {
                    dir: fh(1),
                    name: name("a"),
                },
                to: DirOpArgs3 {
                    dir: fh(2),
                    name: name("b"),
                },
            }),
        ),
        (
            15,
            "link",
            to_bytes(&LinkArgs {
                file: fh(3),
                link: DirOpArgs3 {
                    dir: fh(1),
                    name: name("h"),
                },
            }),
        ),
        (
            16,
            "readdir",
            to_bytes(&ReaddirArgs {
                dir: fh(1),
                cookie: 5,
                cookieverf: OpaqueFixed([3; 8]),
                count: 1024,
            }),
        ),
        (
            17,
            "readdirplus",
            to_bytes(&ReaddirplusArgs {
                dir: fh(1),
                cookie: 0,
                cookieverf: OpaqueFixed([0; 8]),
                dircount: 100,
                maxcount: 1000,
            }),
        ),
        (
            21,
            "commit",
            to_bytes(&CommitArgs {
                file: fh(3),
                offset: 10,
                count: 20,
            }),
        ),
        (
            23,
            "getattr-res",
            to_bytes(&GetattrRes::Ok(attr(Ftype3::Reg))),
        ),
        (
            23,
            "getattr-res-fail",
            to_bytes(&GetattrRes::Fail(Nfsstat3::Stale, ())),
        ),
        (
            24,
            "setattr-res",
            to_bytes(&SetattrRes::Fail(Nfsstat3::NotSync, wcc())),
        ),
        (
            25,
            "lookup-res",
            to_bytes(&LookupRes::Ok(LookupOk {
                object: fh(4),
                obj_attributes: Some(attr(Ftype3::Lnk)),
                dir_attributes: None,
            })),
        ),
        (
            26,
            "access-res",
            to_bytes(&AccessRes::Ok(AccessOk {
                obj_attributes: None,
                access: 3,
            })),
        ),
        (
            27,
            "readlink-res",
            to_bytes(&ReadlinkRes::Ok(ReadlinkOk {
                symlink_attributes: None,
                data: XdrString(b"/a/b".to_vec()),
            })),
        ),
        (
            28,
            "read-res",
            to_bytes(&ReadRes::Ok(ReadOk {
                file_attributes: Some(attr(Ftype3::Reg)),
                count: 5,
                eof: true,
                data: Data(b"hello".to_vec()),
            })),
        ),
        (
            29,
            "write-res",
            to_bytes(&WriteRes::Ok(WriteOk {
                file_wcc: wcc(),
                count: 5,
                committed: StableHow::DataSync,
                verf: OpaqueFixed([9; 8]),
            })),
        ),
        (
            30,
            "create-res",
            to_bytes(&CreateRes::Ok(CreateOk {
                obj: Some(fh(5)),
                obj_attributes: Some(attr(Ftype3::Reg)),
                dir_wcc: wcc(),
            })),
        ),
        (
            36,
            "rename-res",
            to_bytes(&RenameRes::Ok(RenameWcc {
                fromdir_wcc: wcc(),
                todir_wcc: WccData::default(),
            })),
        ),
        (
            37,
            "link-res",
            to_bytes(&LinkRes::Fail(Nfsstat3::Xdev, LinkWcc::default())),
        ),
        (
            38,
            "readdir-res",
            to_bytes(&ReaddirRes::Ok(ReaddirOk {
                dir_attributes: Some(attr(Ftype3::Dir)),
                cookieverf: OpaqueFixed([1; 8]),
                entries: vec![
                    Entry3 {
                        fileid: 1,
                        name: name("."),
                        cookie: 1,
                    },
                    Entry3 {
                        fileid: 2,
                        name: name("file"),
                        cookie: 2,
                    },
                ],
                eof: true,
            })),
        ),
        (
            39,
            "readdirplus-res",
            to_bytes(&ReaddirplusRes::Ok(ReaddirplusOk {
                dir_attributes: None,
                cookieverf: OpaqueFixed([2; 8]),
                entries: vec![EntryPlus3 {
                    fileid: 9,
                    name: name("a"),
                    cookie: 77,
                    name_attributes: Some(attr(Ftype3::Reg)),
                    name_handle: Some(fh(6)),
                }],
                eof: false,
            })),
        ),
        (
            40,
            "fsstat-res",
            to_bytes(&FsstatRes::Ok(FsstatOk {
                obj_attributes: None,
                tbytes: 1 << 30,
                fbytes: 1 << 29,
                abytes: 1 << 29,
                tfiles: 100,
                ffiles: 50,
                afiles: 50,
                invarsec: 0,
            })),
        ),
        (
            41,
            "fsinfo-res",
            to_bytes(&FsinfoRes::Ok(FsinfoOk {
                obj_attributes: None,
                rtmax: 1 << 20,
                rtpref: 1 << 20,
                rtmult: 4096,
                wtmax: 1 << 20,
                wtpref: 1 << 20,
                wtmult: 4096,
                dtpref: 8192,
                maxfilesize: u64::MAX,
                time_delta: NfsTime3 {
                    seconds: 0,
                    nseconds: 1,
                },
                properties: fsf::LINK | fsf::SYMLINK,
            })),
        ),
        (
            42,
            "pathconf-res",
            to_bytes(&PathconfRes::Ok(PathconfOk {
                obj_attributes: None,
                linkmax: 32000,
                name_max: 255,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            })),
        ),
        (
            43,
            "commit-res",
            to_bytes(&CommitRes::Ok(CommitOk {
                file_wcc: wcc(),
                verf: OpaqueFixed([4; 8]),
            })),
        ),
    ];
    for (sel, n, b) in items {
        o.put(t, n, &with_sel(sel, b));
    }
}

fn mount3_seeds(o: &mut Out) {
    let t = "mount3";
    let node = ExportNode {
        dir: DirPath::new("/export").expect("path"),
        groups: vec![XdrString(b"*".to_vec()), XdrString(b"10.0.0.0/8".to_vec())],
    };
    let body = MountBody {
        hostname: XdrString(b"client".to_vec()),
        directory: DirPath::new("/").expect("path"),
    };
    let ok = MountResOk {
        fhandle: fh(1),
        auth_flavors: VarArray(vec![1, 0]),
    };
    o.put(
        t,
        "dirpath",
        &with_sel(0, to_bytes(&DirPath::new("/srv/nfs").expect("path"))),
    );
    o.put(
        t,
        "mountres-ok",
        &with_sel(1, to_bytes(&MountRes::Ok(ok.clone()))),
    );
    o.put(
        t,
        "mountres-err",
        &with_sel(1, to_bytes(&MountRes::Err(MountStat3::Acces))),
    );
    o.put(
        t,
        "dump",
        &with_sel(
            2,
            to_bytes(&rnfs_fuzz::List(vec![body.clone(), body.clone()])),
        ),
    );
    o.put(
        t,
        "exports",
        &with_sel(3, to_bytes(&rnfs_fuzz::List(vec![node.clone()]))),
    );
    o.put(t, "exportnode", &with_sel(4, to_bytes(&node)));
    o.put(t, "mountbody", &with_sel(5, to_bytes(&body)));
    o.put(t, "mountresok", &with_sel(6, to_bytes(&ok)));
    o.put(
        t,
        "pmap-mapping",
        &with_sel(
            10,
            to_bytes(&rnfs_proto::portmap::Mapping {
                prog: PROGRAM,
                vers: 3,
                prot: 6,
                port: 2049,
            }),
        ),
    );
}

fn rpc_seeds(o: &mut Out) {
    let t = "rpc_call";
    o.put(
        t,
        "call-sys",
        &call_message(
            7,
            PROGRAM,
            1,
            auth_sys(1000, 100),
            &to_bytes(&GetattrArgs { object: fh(1) }),
        ),
    );
    o.put(
        t,
        "call-none",
        &call_message(8, mount3::PROGRAM, 0, OpaqueAuth::none(), &[]),
    );
    o.put(
        t,
        "call-badcred",
        &call_message(
            9,
            PROGRAM,
            0,
            OpaqueAuth {
                flavor: 1,
                body: rnfs_xdr::Opaque(vec![0, 0, 0, 1]),
            },
            &[],
        ),
    );
    o.put(
        t,
        "call-gss",
        &call_message(
            10,
            PROGRAM,
            0,
            OpaqueAuth {
                flavor: 6,
                body: rnfs_xdr::Opaque(vec![1; 12]),
            },
            &[],
        ),
    );
    let mut v3 = call_message(11, PROGRAM, 0, OpaqueAuth::none(), &[]);
    v3[8..12].copy_from_slice(&3u32.to_be_bytes());
    o.put(t, "call-rpcv3", &v3);
    o.put(
        t,
        "call-truncated",
        &call_message(12, PROGRAM, 0, auth_sys(0, 0), &[])[..30],
    );
    let reply = |status: ReplyStatus| {
        let mut w = Writer::new();
        ReplyHeader::with_status(13, status).encode(&mut w);
        w.into_inner()
    };
    o.put(t, "reply-success", &reply(ReplyStatus::Success));
    o.put(
        t,
        "reply-mismatch",
        &reply(ReplyStatus::ProgMismatch { low: 2, high: 3 }),
    );
    o.put(
        t,
        "reply-rpcmismatch",
        &reply(ReplyStatus::RpcMismatch { low: 2, high: 2 }),
    );
    o.put(
        t,
        "reply-autherr",
        &reply(ReplyStatus::AuthError(AuthStat::TooWeak)),
    );

    let t = "rpc_record";
    // Mode 0 (raw stream): limit 1024 (two bytes of int_in_range input), chunk size, data.
    let mut raw = vec![0u8, 0x04, 0x00, 0x00, 0x20];
    raw.extend(encode_record(b"hello world", 4));
    raw.extend(encode_record(&[0u8; 40], 16));
    o.put(t, "raw-two-records", &raw);
    let mut big = vec![0u8, 0x00, 0x10, 0x00, 0x08];
    big.extend(0x8000_1000u32.to_be_bytes());
    o.put(t, "raw-too-large", &big);
    // Mode 1 (roundtrip): fragment size, message count, messages, limit choice, chunks.
    let mut rt = vec![1u8, 0x00, 0x07, 2];
    rt.extend([0x00, 0x05]);
    rt.extend(b"abcde");
    rt.extend([0x00, 0x03]);
    rt.extend(b"xyz");
    rt.extend([1, 0, 0x00, 0x03, 0x00, 0x01]);
    o.put(t, "roundtrip", &rt);

    let t = "xdr_primitives";
    let mut w = Writer::new();
    w.u32(7);
    w.u64(1 << 40);
    w.bool(true);
    w.opaque(b"abc");
    XdrString::<255>(b"name".to_vec()).encode(&mut w);
    Some(5u32).encode(&mut w);
    VarArray::<u32, 16>(vec![1, 2, 3]).encode(&mut w);
    // ops: u32, u64, bool, opaque (max 8 = code 45), string<255>, option<u32>, vararray<u32>
    let mut seed = vec![7u8, 0, 2, 4, 45, 8, 13, 15];
    seed.extend(w.into_inner());
    o.put(t, "sequence", &seed);
    let mut s2 = vec![3u8, 12, 18, 16];
    s2.extend(to_bytes(&OpaqueFixed([1u8; 8])));
    s2.extend(to_bytes(&Box::new(Some(OpaqueFixed([2u8; 5])))));
    s2.extend(to_bytes(&VarArray::<rnfs_xdr::Opaque<8>, 4>(vec![
        rnfs_xdr::Opaque(vec![1]),
        rnfs_xdr::Opaque(vec![]),
    ])));
    o.put(t, "containers", &s2);
    o.put(
        t,
        "empty-ops-string",
        &with_sel(0, to_bytes(&XdrString::<1024>(b"just a string".to_vec()))),
    );
}

fn url_seeds(o: &mut Out) {
    let t = "nfs_url";
    for (n, u) in [
        (
            "full",
            "nfs://server/export/dir?uid=1000&gid=100&soft&timeo=50&retrans=3",
        ),
        ("ipv6-port", "nfs://[::1]:2049/srv?version=3&mountport=635"),
        (
            "escapes",
            "nfs://host//a%20b/c%2Fd?rsize=65536&wsize=65536&hard",
        ),
        ("bare", "nfs://10.0.0.1"),
        ("dotdot", "nfs://h/a/../b"),
    ] {
        o.put(t, n, u.as_bytes());
    }
    // An odd first byte stands for "nfs://".
    o.put(t, "implicit-scheme", b"1host:111/x?nfsport=2049");
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus-seed"));
    let mut o = Out { dir, count: 0 };
    url_seeds(&mut o);
    server_seeds(&mut o);
    nfs3_seeds(&mut o);
    mount3_seeds(&mut o);
    rpc_seeds(&mut o);
    nfs4::seeds(&mut o);
    println!("wrote {} seeds under {}", o.count, o.dir.display());
}

/// Seeds of the `nfs4_compound` target: typical COMPOUNDs and CB_COMPOUNDs of a Linux
/// NFSv4.1 client and their replies, one with an unknown operation.
mod nfs4 {
    use super::Out;
    use rnfs_proto::nfs4::*;
    use rnfs_xdr::{to_bytes, Opaque, OpaqueFixed, VarArray, XdrList};

    fn stateid(n: u8) -> Stateid4 {
        Stateid4 {
            seqid: 1,
            other: OpaqueFixed([n; 12]),
        }
    }

    fn sequence() -> NfsArgop4 {
        NfsArgop4::OpSequence(Sequence4args {
            sa_sessionid: OpaqueFixed([7; 16]),
            sa_sequenceid: 2,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })
    }

    fn bitmap(bits: &[u32]) -> Bitmap4 {
        let mut b = Bitmap4::default();
        for &bit in bits {
            bitmap_set(&mut b, bit);
        }
        b
    }

    fn args(tag: &str, ops: Vec<NfsArgop4>) -> Vec<u8> {
        to_bytes(&Compound4args {
            tag: Opaque(tag.as_bytes().to_vec()),
            minorversion: 1,
            argarray: VarArray(ops),
        })
    }

    fn res(ops: Vec<NfsResop4>) -> Vec<u8> {
        to_bytes(&Compound4res {
            status: Nfsstat4::Nfs4Ok,
            tag: Opaque::default(),
            resarray: VarArray(ops),
        })
    }

    pub(super) fn seeds(o: &mut Out) {
        let t = "nfs4_compound";
        let fattr = Fattr4 {
            attrmask: bitmap(&[FATTR4_MODE]),
            attr_vals: Opaque(vec![0, 0, 1, 0xa4]),
        };
        o.put(
            t,
            "exchange-id",
            &args(
                "",
                vec![NfsArgop4::OpExchangeId(ExchangeId4args {
                    eia_clientowner: ClientOwner4 {
                        co_verifier: OpaqueFixed([1; 8]),
                        co_ownerid: Opaque(b"Linux NFSv4.1 client".to_vec()),
                    },
                    eia_flags: EXCHGID4_FLAG_USE_NON_PNFS,
                    eia_state_protect: StateProtect4A::Sp4None,
                    eia_client_impl_id: VarArray(vec![]),
                })],
            ),
        );
        let chan = ChannelAttrs4 {
            ca_headerpadsize: 0,
            ca_maxrequestsize: 1 << 20,
            ca_maxresponsesize: 1 << 20,
            ca_maxresponsesize_cached: 8192,
            ca_maxoperations: 16,
            ca_maxrequests: 64,
            ca_rdma_ird: VarArray(vec![]),
        };
        o.put(
            t,
            "create-session",
            &args(
                "",
                vec![NfsArgop4::OpCreateSession(CreateSession4args {
                    csa_clientid: 0x1234,
                    csa_sequence: 1,
                    csa_flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
                    csa_fore_chan_attrs: chan.clone(),
                    csa_back_chan_attrs: chan,
                    csa_cb_program: NFS4_CALLBACK,
                    csa_sec_parms: VarArray(vec![CallbackSecParms4::AuthNone]),
                })],
            ),
        );
        o.put(
            t,
            "getattr-root",
            &args(
                "",
                vec![
                    sequence(),
                    NfsArgop4::OpPutrootfh,
                    NfsArgop4::OpGetfh,
                    NfsArgop4::OpGetattr(Getattr4args {
                        attr_request: bitmap(&[FATTR4_TYPE, FATTR4_SIZE, FATTR4_MOUNTED_ON_FILEID]),
                    }),
                ],
            ),
        );
        o.put(
            t,
            "open-create",
            &args(
                "open",
                vec![
                    sequence(),
                    NfsArgop4::OpPutfh(Putfh4args {
                        object: Opaque(vec![1; 28]),
                    }),
                    NfsArgop4::OpOpen(Open4args {
                        seqid: 0,
                        share_access: OPEN4_SHARE_ACCESS_BOTH,
                        share_deny: OPEN4_SHARE_DENY_NONE,
                        owner: StateOwner4 {
                            clientid: 0x1234,
                            owner: Opaque(b"open id:\0\0\0\x01".to_vec()),
                        },
                        openhow: Openflag4::Open4Create(Createhow4::Exclusive41(Creatverfattr {
                            cva_verf: OpaqueFixed([9; 8]),
                            cva_attrs: fattr.clone(),
                        })),
                        claim: OpenClaim4::ClaimNull(Opaque(b"file".to_vec())),
                    }),
                    NfsArgop4::OpGetfh,
                ],
            ),
        );
        o.put(
            t,
            "write-lock",
            &args(
                "",
                vec![
                    sequence(),
                    NfsArgop4::OpPutfh(Putfh4args {
                        object: Opaque(vec![2; 28]),
                    }),
                    NfsArgop4::OpLock(Lock4args {
                        locktype: NfsLockType4::WriteLt,
                        reclaim: false,
                        offset: 0,
                        length: NFS4_UINT64_MAX,
                        locker: Locker4::True(OpenToLockOwner4 {
                            open_seqid: 0,
                            open_stateid: stateid(3),
                            lock_seqid: 0,
                            lock_owner: StateOwner4 {
                                clientid: 0x1234,
                                owner: Opaque(vec![5; 8]),
                            },
                        }),
                    }),
                    NfsArgop4::OpWrite(Write4args {
                        stateid: stateid(4),
                        offset: 4096,
                        stable: StableHow4::Unstable4,
                        data: Opaque(b"hello, world".to_vec()),
                    }),
                    NfsArgop4::OpSetattr(Setattr4args {
                        stateid: stateid(4),
                        obj_attributes: fattr,
                    }),
                ],
            ),
        );
        let mut unknown = args("", vec![sequence(), NfsArgop4::OpPutrootfh]);
        unknown[11] = 3; // one more operation than encoded: an unknown number follows
        unknown.extend_from_slice(&9999u32.to_be_bytes());
        o.put(t, "unknown-op", &unknown);
        o.put(
            t,
            "readdir-res",
            &res(vec![
                NfsResop4::OpPutfh(Putfh4res {
                    status: Nfsstat4::Nfs4Ok,
                }),
                NfsResop4::OpReaddir(Readdir4res::Nfs4Ok(Readdir4resok {
                    cookieverf: OpaqueFixed([0; 8]),
                    reply: Dirlist4 {
                        entries: XdrList(vec![
                            Entry4 {
                                cookie: 3,
                                name: Opaque(b"a".to_vec()),
                                attrs: Fattr4 {
                                    attrmask: bitmap(&[]),
                                    attr_vals: Opaque::default(),
                                },
                            },
                            Entry4 {
                                cookie: 4,
                                name: Opaque(b"bb".to_vec()),
                                attrs: Fattr4 {
                                    attrmask: bitmap(&[FATTR4_FILEID]),
                                    attr_vals: Opaque(vec![0; 8]),
                                },
                            },
                        ]),
                        eof: true,
                    },
                })),
            ]),
        );
        o.put(
            t,
            "lock-denied-res",
            &res(vec![NfsResop4::OpLock(Lock4res::Nfs4errDenied(
                Lock4denied {
                    offset: 0,
                    length: 10,
                    locktype: NfsLockType4::WriteLt,
                    owner: StateOwner4 {
                        clientid: 9,
                        owner: Opaque(vec![1]),
                    },
                },
            ))]),
        );
        o.put(
            t,
            "cb-sequence-recall",
            &to_bytes(&CbCompound4args {
                tag: Opaque::default(),
                minorversion: 1,
                callback_ident: 0,
                argarray: VarArray(vec![
                    NfsCbArgop4::OpCbSequence(CbSequence4args {
                        csa_sessionid: OpaqueFixed([7; 16]),
                        csa_sequenceid: 1,
                        csa_slotid: 0,
                        csa_highest_slotid: 0,
                        csa_cachethis: false,
                        csa_referring_call_lists: VarArray(vec![]),
                    }),
                    NfsCbArgop4::OpCbRecall(CbRecall4args {
                        stateid: stateid(6),
                        truncate: false,
                        fh: Opaque(vec![3; 28]),
                    }),
                ]),
            }),
        );
        o.put(
            t,
            "cb-res",
            &to_bytes(&CbCompound4res {
                status: Nfsstat4::Nfs4Ok,
                tag: Opaque::default(),
                resarray: VarArray(vec![NfsCbResop4::OpCbRecall(CbRecall4res {
                    status: Nfsstat4::Nfs4Ok,
                })]),
            }),
        );
    }
}
