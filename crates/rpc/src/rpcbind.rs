//! Registering with the local rpcbind (portmap v2 over TCP on 127.0.0.1:111), so that
//! clients find our programs without port options.
use crate::record::{encode_record, RecordDecoder};
use rnfs_proto::portmap::{Mapping, IPPROTO_TCP, PORT, PROC_SET, PROC_UNSET, PROGRAM, VERSION};
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_xdr::{Reader, Writer, Xdr};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why talking to rpcbind failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcbindError {
    /// No rpcbind reachable.
    #[error("rpcbind not reachable: {0}")]
    Unreachable(std::io::Error),
    /// It answered something we could not use.
    #[error("bad reply from rpcbind")]
    BadReply,
    /// It refused the mapping.
    #[error("rpcbind refused the mapping")]
    Refused,
}

fn call(proc_: u32, m: Mapping) -> Result<bool, RpcbindError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], PORT));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(RpcbindError::Unreachable)?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut w = Writer::new();
    let xid = std::process::id() ^ proc_.rotate_left(16) ^ m.prog;
    CallHeader {
        xid,
        rpcvers: 2,
        prog: PROGRAM,
        vers: VERSION,
        proc_,
        cred: OpaqueAuth::none(),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    m.encode(&mut w);
    s.write_all(&encode_record(&w.into_inner(), 1 << 20))
        .map_err(RpcbindError::Unreachable)?;
    let mut dec = RecordDecoder::new(4096);
    let mut buf = [0u8; 512];
    let msg = loop {
        let n = s.read(&mut buf).map_err(RpcbindError::Unreachable)?;
        if n == 0 {
            return Err(RpcbindError::BadReply);
        }
        dec.push(&buf[..n]);
        if let Some(m) = dec.next_record().map_err(|_| RpcbindError::BadReply)? {
            break m;
        }
    };
    let mut r = Reader::new(&msg);
    let h = ReplyHeader::decode(&mut r).map_err(|_| RpcbindError::BadReply)?;
    if h.xid != xid || h.status != ReplyStatus::Success {
        return Err(RpcbindError::BadReply);
    }
    r.bool().map_err(|_| RpcbindError::BadReply)
}

/// Registers (prog, vers) on TCP `port`, replacing any older registration.
pub fn register(prog: u32, vers: u32, port: u16) -> Result<(), RpcbindError> {
    let _ = call(
        PROC_UNSET,
        Mapping {
            prog,
            vers,
            prot: IPPROTO_TCP,
            port: 0,
        },
    );
    if call(
        PROC_SET,
        Mapping {
            prog,
            vers,
            prot: IPPROTO_TCP,
            port: port.into(),
        },
    )? {
        Ok(())
    } else {
        Err(RpcbindError::Refused)
    }
}

/// Removes the registration of (prog, vers).
pub fn unregister(prog: u32, vers: u32) -> Result<(), RpcbindError> {
    call(
        PROC_UNSET,
        Mapping {
            prog,
            vers,
            prot: IPPROTO_TCP,
            port: 0,
        },
    )
    .map(|_| ())
}
