//! Helpers shared by the rnfs fuzz targets and the seed generator.
//!
//! - [`check_canonical`] / [`check_prefix`]: the XDR round-trip properties every decoder
//!   must have (decode, encode, compare bytes, decode again, compare values);
//! - [`harness`]: one `NfsServer` over a `MemFs`, populated with a few objects whose handles
//!   the `server_dispatch` target can splice into its calls;
//! - [`structured_call`]: the structured input format of `server_dispatch`;
//! - [`check_reply`]: what every reply of the server must satisfy.
#![allow(missing_docs)]

use rnfs_proto::nfs3::{self as p3, FileHandle3};
use rnfs_proto::rpc::{AuthSysParams, CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus, AUTH_SYS};
use rnfs_proto::{mount3, portmap};
use rnfs_rpc::transport::{ConnInfo, Service};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::Backend;
use rnfs_xdr::{from_bytes, to_bytes, Opaque, Reader, VarArray, Writer, Xdr, XdrString};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// Makes every panic, including one that the code under test catches with `catch_unwind`
/// (`NfsServer::call` turns handler panics into SYSTEM_ERR), print its message and a
/// backtrace and then abort, so that libFuzzer records it as a crash.
pub fn abort_on_panic() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("rnfs-fuzz: panic: {info}");
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
            std::process::abort();
        }));
    });
}

/// If `input` decodes as `T` with `from_bytes` (whole input consumed), its re-encoding must
/// be exactly `input` (XDR is canonical: fixed widths, 0/1 booleans, zero padding), and the
/// re-encoding must decode to the same value. Returns whether `input` decoded.
pub fn check_canonical<T: Xdr + PartialEq + Debug>(input: &[u8]) -> bool {
    let Ok(v) = from_bytes::<T>(input) else {
        return false;
    };
    let enc = to_bytes(&v);
    assert!(
        enc == input,
        "{}: re-encoding of {v:?} differs from the input\n input: {input:02x?}\n   enc: {enc:02x?}",
        std::any::type_name::<T>()
    );
    let again = from_bytes::<T>(&enc).expect("a re-encoding does not decode");
    assert_eq!(
        again,
        v,
        "{}: decode(encode(v)) != v",
        std::any::type_name::<T>()
    );
    true
}

/// Decodes one `T` from the front of `input` (trailing bytes allowed). On success the bytes
/// consumed must be exactly the re-encoding, and must decode alone to the same value.
/// Returns the number of bytes consumed.
pub fn check_prefix<T: Xdr + PartialEq + Debug>(input: &[u8]) -> Option<usize> {
    let mut r = Reader::new(input);
    let v = T::decode(&mut r).ok()?;
    let used = r.position();
    assert_eq!(used + r.remaining(), input.len());
    let enc = to_bytes(&v);
    assert!(
        enc == input[..used],
        "{}: re-encoding of {v:?} differs from the {used} bytes consumed",
        std::any::type_name::<T>()
    );
    assert!(check_canonical::<T>(&input[..used]));
    Some(used)
}

/// Both properties for one type.
pub fn check_type<T: Xdr + PartialEq + Debug>(input: &[u8]) {
    check_canonical::<T>(input);
    check_prefix::<T>(input);
}

/// A list of `T` in the singly-linked form (`*entry`), as MOUNT's DUMP and EXPORT replies
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: Xdr> Xdr for List<T> {
    fn encode(&self, w: &mut Writer) {
        rnfs_proto::encode_list(&self.0, w)
    }
    fn decode(r: &mut Reader<'_>) -> rnfs_xdr::Result<Self> {
        Ok(Self(rnfs_proto::decode_list(r, 4096)?))
    }
}

/// The MOUNT `exports` reply body.
pub type ExportList = List<mount3::ExportNode>;
/// The MOUNT `mountlist` reply body.
pub type MountList = List<mount3::MountBody>;
/// Portmap mapping, also fuzzed by the `mount3` target.
pub type PmapMapping = portmap::Mapping;

// ---------------------------------------------------------------- server harness

/// The server under test and the handles of the objects made at start.
pub struct Harness {
    pub server: NfsServer,
    pub conn: ConnInfo,
    /// root, d (dir), f (file with data), l (symlink to f), p (fifo), d/g (file).
    pub handles: Vec<FileHandle3>,
}

static XID: AtomicU32 = AtomicU32::new(0x1000);

/// A fresh transaction id (so that the duplicate request cache does not replay old replies
/// for new inputs, though a structured input can still force a replay by repeating a call).
pub fn next_xid() -> u32 {
    XID.fetch_add(1, Ordering::Relaxed)
}

/// AUTH_SYS credential for `uid`/`gid`.
pub fn auth_sys(uid: u32, gid: u32) -> OpaqueAuth {
    let p = AuthSysParams {
        stamp: 1,
        machine_name: XdrString(b"fuzz".to_vec()),
        uid,
        gid,
        gids: VarArray(vec![gid]),
    };
    OpaqueAuth {
        flavor: AUTH_SYS,
        body: Opaque(to_bytes(&p)),
    }
}

/// A call message: header then the already-encoded `args`.
pub fn call_message(xid: u32, prog: u32, proc_: u32, cred: OpaqueAuth, args: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    CallHeader {
        xid,
        rpcvers: 2,
        prog,
        vers: 3,
        proc_,
        cred,
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    w.raw(args);
    w.into_inner()
}

fn call_ok<R: Xdr + Debug>(
    h: &NfsServer,
    conn: &ConnInfo,
    prog: u32,
    proc_: u32,
    args: &[u8],
) -> R {
    let msg = call_message(next_xid(), prog, proc_, auth_sys(0, 0), args);
    let reply = h.call(conn, &msg).expect("setup call got no reply");
    let mut r = Reader::new(&reply);
    let hdr = ReplyHeader::decode(&mut r).expect("setup reply header");
    assert_eq!(
        hdr.status,
        ReplyStatus::Success,
        "setup call {prog}/{proc_}"
    );
    let res = R::decode(&mut r).expect("setup results");
    r.finish().expect("setup reply has trailing bytes");
    res
}

fn created(res: p3::CreateRes, what: &str) -> FileHandle3 {
    match res {
        p3::Res::Ok(ok) => ok.obj.unwrap_or_else(|| panic!("setup: {what}: no handle")),
        p3::Res::Fail(s, _) => panic!("setup: {what}: {s:?}"),
    }
}

fn where_(dir: &FileHandle3, name: &str) -> p3::DirOpArgs3 {
    p3::DirOpArgs3 {
        dir: dir.clone(),
        name: XdrString(name.as_bytes().to_vec()),
    }
}

fn build_harness() -> Harness {
    let fs = Arc::new(rnfs_vfs::memory::MemFs::new(16 << 20));
    // A fixed handle secret: the same handles in every run, so inputs that carry one stay
    // meaningful.
    let cfg = ServerConfig {
        handle_secret: rnfs_server::handle::HandleSecret::from_bytes([7; 32]),
        ..Default::default()
    };
    let server = NfsServer::new(Export::new(1, "/", fs.clone()), cfg);
    let root = rnfs_server::handle::encode(&server.exports().exports[0], &fs.root());
    let conn = ConnInfo {
        id: rnfs_rpc::transport::ConnId::next(),
        peer: "127.0.0.1:700".parse().expect("addr"),
        local: "127.0.0.1:2049".parse().expect("addr"),
    };
    let s = &server;
    // MNT "/" must give the same root handle.
    let m: mount3::MountRes = call_ok(
        s,
        &conn,
        mount3::PROGRAM,
        1,
        &to_bytes(&mount3::DirPath::new("/").expect("path")),
    );
    match m {
        mount3::MountRes::Ok(ok) => assert_eq!(ok.fhandle, root, "MNT / handle"),
        mount3::MountRes::Err(e) => panic!("setup: MNT: {e:?}"),
    }
    let sattr = p3::Sattr3 {
        mode: Some(0o755),
        ..Default::default()
    };
    let d = created(
        call_ok(
            s,
            &conn,
            p3::PROGRAM,
            9,
            &to_bytes(&p3::MkdirArgs {
                where_: where_(&root, "d"),
                attributes: sattr,
            }),
        ),
        "mkdir d",
    );
    let file_sattr = p3::Sattr3 {
        mode: Some(0o666),
        ..Default::default()
    };
    let f = created(
        call_ok(
            s,
            &conn,
            p3::PROGRAM,
            8,
            &to_bytes(&p3::CreateArgs {
                where_: where_(&root, "f"),
                how: p3::CreateHow3::Unchecked(file_sattr),
            }),
        ),
        "create f",
    );
    let data = b"hello, fuzzer\n".repeat(8);
    let w: p3::WriteRes = call_ok(
        s,
        &conn,
        p3::PROGRAM,
        7,
        &to_bytes(&p3::WriteArgs {
            file: f.clone(),
            offset: 0,
            count: data.len() as u32,
            stable: p3::StableHow::FileSync,
            data: p3::Data(data),
        }),
    );
    assert!(matches!(w, p3::Res::Ok(_)), "setup: write f: {w:?}");
    let l = created(
        call_ok(
            s,
            &conn,
            p3::PROGRAM,
            10,
            &to_bytes(&p3::SymlinkArgs {
                where_: where_(&root, "l"),
                symlink_attributes: p3::Sattr3::default(),
                symlink_data: XdrString(b"f".to_vec()),
            }),
        ),
        "symlink l",
    );
    let p = created(
        call_ok(
            s,
            &conn,
            p3::PROGRAM,
            11,
            &to_bytes(&p3::MknodArgs {
                where_: where_(&root, "p"),
                what: p3::MknodData3::Fifo(file_sattr),
            }),
        ),
        "mknod p",
    );
    let g = created(
        call_ok(
            s,
            &conn,
            p3::PROGRAM,
            8,
            &to_bytes(&p3::CreateArgs {
                where_: where_(&d, "g"),
                how: p3::CreateHow3::Guarded(file_sattr),
            }),
        ),
        "create d/g",
    );
    Harness {
        server,
        conn,
        handles: vec![root, d, f, l, p, g],
    }
}

/// The one server shared by every run of `server_dispatch` (built on first use).
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(build_harness)
}

// ------------------------------------------------------- structured call format

/// Four bytes that [`structured_call`] replaces, anywhere in the arguments, by the XDR
/// encoding (length + bytes) of one of the harness's handles: `FF 'F' 'H' index`.
pub const FH_MARKER: [u8; 3] = [0xff, b'F', b'H'];

/// Builds the call message of a structured input (first byte even):
///
/// - `data[0]`: bits 1-2 the credential (AUTH_SYS uid 0; AUTH_SYS uid/gid 1000; AUTH_NONE;
///   AUTH_SYS uid 0 with gid 1000), bits 3-4 the program (3: MOUNT, else NFS);
/// - `data[1]`: the procedure, modulo 22 (NFS) or 6 (MOUNT);
/// - `data[2]`: which handle goes at the front of the arguments (past the last: none);
/// - the rest: the arguments, in which each `FF 'F' 'H' i` is replaced by handle `i`.
///
/// Returns the message and (program, procedure).
pub fn structured_call(h: &Harness, data: &[u8]) -> (Vec<u8>, u32, u32) {
    let b = |i: usize| data.get(i).copied().unwrap_or(0);
    let cred = match (b(0) >> 1) & 3 {
        0 => auth_sys(0, 0),
        1 => auth_sys(1000, 1000),
        2 => OpaqueAuth::none(),
        _ => auth_sys(0, 1000),
    };
    let (prog, proc_) = if (b(0) >> 3) & 3 == 3 {
        (mount3::PROGRAM, u32::from(b(1) % 6))
    } else {
        (p3::PROGRAM, u32::from(b(1) % 22))
    };
    let mut w = Writer::new();
    let sel = b(2) as usize;
    if prog == p3::PROGRAM && sel < h.handles.len() {
        h.handles[sel].encode(&mut w);
    }
    let rest = data.get(3..).unwrap_or(&[]);
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with(&FH_MARKER) && i + 3 < rest.len() {
            h.handles[rest[i + 3] as usize % h.handles.len()].encode(&mut w);
            i += 4;
        } else {
            w.raw(&rest[i..i + 1]);
            i += 1;
        }
    }
    (
        call_message(next_xid(), prog, proc_, cred, w.as_slice()),
        prog,
        proc_,
    )
}

// ------------------------------------------------------------- reply checks

fn max_io() -> u32 {
    ServerConfig::default().max_io
}

fn results<R: Xdr + Debug>(what: &str, body: &[u8]) -> R {
    let mut r = Reader::new(body);
    let v = R::decode(&mut r)
        .unwrap_or_else(|e| panic!("{what}: results do not decode: {e}\n body: {body:02x?}"));
    if let Err(e) = r.finish() {
        panic!("{what}: {e} after the results {v:?}");
    }
    v
}

/// Checks a reply of the server to `msg`: it must be a well-formed reply with the call's
/// xid; an executed NFSv3 or MOUNT call's results must decode as that procedure's result
/// type and fill the reply exactly; a few semantic bounds (READ returns at most what was
/// asked and says how much; WRITE reports at most what was sent).
pub fn check_reply(msg: &[u8], reply: &[u8]) {
    let mut r = Reader::new(reply);
    let hdr = ReplyHeader::decode(&mut r)
        .unwrap_or_else(|e| panic!("reply header does not decode: {e}\n reply: {reply:02x?}"));
    let xid = Reader::new(msg)
        .u32()
        .expect("a reply to a message without an xid");
    assert_eq!(hdr.xid, xid, "reply xid differs from the call's");
    assert!(
        hdr.status != ReplyStatus::SystemErr,
        "SYSTEM_ERR reply (a handler failed)"
    );
    let body = r.rest();
    if hdr.status != ReplyStatus::Success {
        assert!(
            body.is_empty(),
            "{} bytes after a non-success reply header",
            body.len()
        );
        return;
    }
    let call = match rnfs_rpc::message::decode_call(msg) {
        Ok(c) => c,
        Err(_) => panic!("SUCCESS reply to a message that is not a valid call"),
    };
    let (prog, proc_) = (call.header.prog, call.header.proc_);
    let what = format!("prog {prog} proc {proc_}");
    let what = what.as_str();
    if prog == p3::PROGRAM {
        match proc_ {
            0 => results::<()>(what, body),
            1 => drop(results::<p3::GetattrRes>(what, body)),
            2 => drop(results::<p3::SetattrRes>(what, body)),
            3 => drop(results::<p3::LookupRes>(what, body)),
            4 => drop(results::<p3::AccessRes>(what, body)),
            5 => drop(results::<p3::ReadlinkRes>(what, body)),
            6 => {
                if let p3::Res::Ok(ok) = results::<p3::ReadRes>(what, body) {
                    assert_eq!(
                        ok.count as usize,
                        ok.data.0.len(),
                        "READ count != data length"
                    );
                    if let Ok(a) = from_bytes::<p3::ReadArgs>(call.args) {
                        assert!(
                            ok.data.0.len() <= a.count as usize,
                            "READ returned {} bytes, {} asked",
                            ok.data.0.len(),
                            a.count
                        );
                    }
                }
            }
            7 => {
                if let p3::Res::Ok(ok) = results::<p3::WriteRes>(what, body) {
                    if let Ok(a) = from_bytes::<p3::WriteArgs>(call.args) {
                        assert!(
                            ok.count <= a.count,
                            "WRITE reports {} bytes written, {} sent",
                            ok.count,
                            a.count
                        );
                    }
                }
            }
            8..=11 => drop(results::<p3::CreateRes>(what, body)),
            12 | 13 => drop(results::<p3::RemoveRes>(what, body)),
            14 => drop(results::<p3::RenameRes>(what, body)),
            15 => drop(results::<p3::LinkRes>(what, body)),
            // READDIR(PLUS) replies stay within the size the client asked for (RFC 1813:
            // count / maxcount bound the whole result; rnfs raises a tiny one to 256).
            16 => {
                if let p3::Res::Ok(_) = results::<p3::ReaddirRes>(what, body) {
                    if let Ok(a) = from_bytes::<p3::ReaddirArgs>(call.args) {
                        let budget = (a.count.min(max_io()) as usize).max(256);
                        assert!(
                            body.len() <= budget,
                            "READDIR result of {} bytes for count {}",
                            body.len(),
                            a.count
                        );
                    }
                }
            }
            17 => {
                if let p3::Res::Ok(_) = results::<p3::ReaddirplusRes>(what, body) {
                    if let Ok(a) = from_bytes::<p3::ReaddirplusArgs>(call.args) {
                        let budget = (a.maxcount.min(max_io()) as usize).max(256);
                        assert!(
                            body.len() <= budget,
                            "READDIRPLUS result of {} bytes for maxcount {}",
                            body.len(),
                            a.maxcount
                        );
                    }
                }
            }
            18 => drop(results::<p3::FsstatRes>(what, body)),
            19 => drop(results::<p3::FsinfoRes>(what, body)),
            20 => drop(results::<p3::PathconfRes>(what, body)),
            21 => drop(results::<p3::CommitRes>(what, body)),
            _ => panic!("SUCCESS for unknown NFS procedure {proc_}"),
        }
    } else if prog == mount3::PROGRAM {
        match proc_ {
            0 | 3 | 4 => results::<()>(what, body),
            1 => drop(results::<mount3::MountRes>(what, body)),
            2 => drop(results::<MountList>(what, body)),
            5 => drop(results::<ExportList>(what, body)),
            _ => panic!("SUCCESS for unknown MOUNT procedure {proc_}"),
        }
    } else {
        panic!("SUCCESS for unknown program {prog}");
    }
}
