//! The few raw ONC-RPC calls the soak makes, encoded by hand on purpose.
//!
//! The hostile clients must send bytes no well-behaved client library would (a record
//! header that is never completed, calls whose replies are never read, forged handles),
//! and the normal clients must behave the same whatever the rnfs client crate does about
//! timeouts and reconnects, so both talk to the server through this module: one call at a
//! time on a plain `TcpStream`, AUTH_SYS as root, record marking of RFC 5531 section 11.
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus, RPC_VERSION};
use rnfs_xdr::{Reader, Writer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// NFS program and the procedures used (RFC 1813).
pub const NFS_PROG: u32 = 100_003;
/// MOUNT program (RFC 1813 appendix I).
pub const MOUNT_PROG: u32 = 100_005;
/// NFSPROC3_GETATTR.
pub const GETATTR: u32 = 1;
/// NFSPROC3_LOOKUP.
pub const LOOKUP: u32 = 3;
/// NFSPROC3_READ.
pub const READ: u32 = 6;
/// MOUNTPROC3_MNT.
pub const MNT: u32 = 1;
/// NFS3ERR_STALE.
pub const STALE: u32 = 70;
/// NFS3ERR_BADHANDLE.
pub const BADHANDLE: u32 = 10_001;

/// Largest reply record read: a 1 MiB READ plus headers (normal clients read far less).
const MAX_REPLY: usize = (1 << 20) + 4096;

/// The credential of every call: AUTH_SYS, uid 0, gid 0 (both servers export without
/// root squashing; the files are world-readable anyway).
pub fn cred() -> OpaqueAuth {
    rnfs_client::rpc::auth_sys(0, 0, &[])
}

/// One call message in a record of one fragment: mark, header, arguments.
pub fn call_record(xid: u32, prog: u32, proc_: u32, args: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::with_capacity(160);
    w.u32(0); // the record mark, patched below
    CallHeader {
        xid,
        rpcvers: RPC_VERSION,
        prog,
        vers: 3,
        proc_,
        cred: cred(),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    args(&mut w);
    let len = (w.len() - 4) as u32;
    w.patch_u32(0, 0x8000_0000 | len);
    w.into_inner()
}

/// The arguments of READ3 (RFC 1813 3.3.6).
pub fn read_args(fh: &[u8], offset: u64, count: u32) -> impl FnOnce(&mut Writer) + '_ {
    move |w| {
        w.opaque(fh);
        w.u64(offset);
        w.u32(count);
    }
}

/// Opens a TCP connection within `tmo`; `rcvbuf` sets SO_RCVBUF before connecting.
pub async fn connect(
    addr: SocketAddr,
    tmo: Duration,
    rcvbuf: Option<u32>,
) -> Result<TcpStream, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let s = tokio::time::timeout(tmo, sock.connect(addr))
        .await
        .map_err(|_| format!("connect to {addr}: timed out after {tmo:?}"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(s)
}

/// Reads one whole record (all its fragments), at most [`MAX_REPLY`] bytes.
pub async fn read_record(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut rec = Vec::new();
    loop {
        let mark = match s.read_u32().await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("connection closed by the server".into())
            }
            Err(e) => return Err(format!("read: {e}")),
        };
        let len = (mark & 0x7fff_ffff) as usize;
        if rec.len() + len > MAX_REPLY {
            return Err(format!("reply record over {MAX_REPLY} bytes"));
        }
        let at = rec.len();
        rec.resize(at + len, 0);
        s.read_exact(&mut rec[at..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if mark & 0x8000_0000 != 0 {
            return Ok(rec);
        }
    }
}

/// A connection that makes one call at a time.
pub struct Conn {
    s: TcpStream,
    xid: u32,
}

impl Conn {
    /// Connects to `addr` within `tmo`; `seed` makes xids differ between connections.
    pub async fn connect(addr: SocketAddr, tmo: Duration, seed: u32) -> Result<Self, String> {
        Ok(Self {
            s: connect(addr, tmo, None).await?,
            xid: seed.wrapping_mul(0x9e37_79b9),
        })
    }

    /// Makes a call and returns the body of its reply after the RPC header, or an error if
    /// the server refused it at the RPC level or the connection failed.
    pub async fn call(
        &mut self,
        prog: u32,
        proc_: u32,
        args: impl FnOnce(&mut Writer),
    ) -> Result<Vec<u8>, String> {
        self.xid = self.xid.wrapping_add(1);
        let xid = self.xid;
        let rec = call_record(xid, prog, proc_, args);
        self.s
            .write_all(&rec)
            .await
            .map_err(|e| format!("write: {e}"))?;
        loop {
            let reply = read_record(&mut self.s).await?;
            let mut r = Reader::new(&reply);
            let h = ReplyHeader::decode(&mut r).map_err(|e| format!("bad reply: {e}"))?;
            if h.xid != xid {
                continue; // a late reply to an earlier call that timed out
            }
            if h.status != ReplyStatus::Success {
                return Err(format!("call refused: {:?}", h.status));
            }
            return Ok(r.rest().to_vec());
        }
    }
}

/// The NFS status that starts every NFSv3 result.
pub fn status(body: &[u8]) -> Result<u32, String> {
    Reader::new(body)
        .u32()
        .map_err(|e| format!("bad result: {e}"))
}

/// MNT `path` (RFC 1813 I.5.2): the export's root handle.
pub async fn mnt(c: &mut Conn, path: &str) -> Result<Vec<u8>, String> {
    let body = c
        .call(MOUNT_PROG, MNT, |w| w.opaque(path.as_bytes()))
        .await?;
    let mut r = Reader::new(&body);
    let st = r.u32().map_err(|e| format!("bad MNT reply: {e}"))?;
    if st != 0 {
        return Err(format!("MNT {path}: status {st}"));
    }
    Ok(r.opaque(64)
        .map_err(|e| format!("bad MNT handle: {e}"))?
        .to_vec())
}

/// LOOKUP `name` in directory `dir` (RFC 1813 3.3.3): the handle found.
pub async fn lookup(c: &mut Conn, dir: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let body = c
        .call(NFS_PROG, LOOKUP, |w| {
            w.opaque(dir);
            w.opaque(name.as_bytes());
        })
        .await?;
    let mut r = Reader::new(&body);
    let st = r.u32().map_err(|e| format!("bad LOOKUP reply: {e}"))?;
    if st != 0 {
        return Err(format!("LOOKUP {name}: status {st}"));
    }
    Ok(r.opaque(64)
        .map_err(|e| format!("bad LOOKUP handle: {e}"))?
        .to_vec())
}

/// GETATTR of `fh` that must succeed.
pub async fn getattr(c: &mut Conn, fh: &[u8]) -> Result<(), String> {
    match status(&c.call(NFS_PROG, GETATTR, |w| w.opaque(fh)).await?)? {
        0 => Ok(()),
        st => Err(format!("GETATTR: status {st}")),
    }
}

/// GETATTR of `fh` that must succeed: the file's size (fattr3 `size`, RFC 1813 2.6).
pub async fn size(c: &mut Conn, fh: &[u8]) -> Result<u64, String> {
    let body = c.call(NFS_PROG, GETATTR, |w| w.opaque(fh)).await?;
    let mut r = Reader::new(&body);
    let bad = |e: rnfs_xdr::Error| format!("bad GETATTR reply: {e}");
    match r.u32().map_err(bad)? {
        0 => {
            r.take(20).map_err(bad)?; // type, mode, nlink, uid, gid
            r.u64().map_err(bad)
        }
        st => Err(format!("GETATTR: status {st}")),
    }
}

/// READ of `count` bytes at `offset` of `fh` that must return all of them.
pub async fn read(c: &mut Conn, fh: &[u8], offset: u64, count: u32) -> Result<(), String> {
    let body = c.call(NFS_PROG, READ, read_args(fh, offset, count)).await?;
    let mut r = Reader::new(&body);
    let bad = |e: rnfs_xdr::Error| format!("bad READ reply: {e}");
    let st = r.u32().map_err(bad)?;
    if st != 0 {
        return Err(format!("READ: status {st}"));
    }
    if r.bool().map_err(bad)? {
        r.take(84).map_err(bad)?; // fattr3
    }
    let n = r.u32().map_err(bad)?;
    let _eof = r.bool().map_err(bad)?;
    let data = r.opaque(count).map_err(bad)?;
    if n != count || data.len() != count as usize {
        return Err(format!("short READ: {} of {count} bytes", data.len()));
    }
    Ok(())
}
