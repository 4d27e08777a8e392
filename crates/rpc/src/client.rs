//! A small blocking RPC client over TCP: for tests, tools and the rpcbind registration.
//! The full asynchronous client (many calls in flight, retransmission, reconnect) belongs
//! to the client crate.
use crate::record::{encode_record, RecordDecoder};
use rnfs_proto::rpc::{AuthSysParams, CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus, AUTH_SYS};
use rnfs_xdr::{Reader, VarArray, Writer, Xdr, XdrString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or closed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// The reply could not be decoded.
    #[error("undecodable reply: {0}")]
    Decode(#[from] rnfs_xdr::Error),
    /// The server did not execute the call.
    #[error("call rejected: {0:?}")]
    Rejected(ReplyStatus),
    /// A reply arrived for another call.
    #[error("reply for xid {got}, expected {want}")]
    XidMismatch {
        /// Received.
        got: u32,
        /// Expected.
        want: u32,
    },
}

/// A blocking client: one call at a time on one connection (plus raw access for tests).
pub struct SyncClient {
    stream: TcpStream,
    dec: RecordDecoder,
    next_xid: u32,
    cred: OpaqueAuth,
}

impl SyncClient {
    /// Connects with AUTH_NONE credentials.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            dec: RecordDecoder::new(64 << 20),
            next_xid: 0x1000,
            cred: OpaqueAuth::none(),
        })
    }

    /// Connects from a chosen source address and port (to test per-client export rules and
    /// privileged ports; port 0 picks any).
    pub fn connect_from(local: SocketAddr, addr: SocketAddr) -> std::io::Result<Self> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        sock.set_reuse_address(true)?;
        sock.bind(&local.into())?;
        sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            dec: RecordDecoder::new(64 << 20),
            next_xid: 0x1000,
            cred: OpaqueAuth::none(),
        })
    }

    /// Uses AUTH_SYS with these ids from now on.
    pub fn auth_sys(&mut self, uid: u32, gid: u32, gids: &[u32]) {
        let p = AuthSysParams {
            stamp: 0,
            machine_name: XdrString(b"rnfs".to_vec()),
            uid,
            gid,
            gids: VarArray(gids.iter().copied().take(16).collect()),
        };
        self.cred = OpaqueAuth {
            flavor: AUTH_SYS,
            body: rnfs_xdr::Opaque(rnfs_xdr::to_bytes(&p)),
        };
    }

    /// A fresh transaction id.
    pub fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.next_xid
    }

    /// Encodes a call message (header and arguments) without sending it.
    pub fn call_message(&self, xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(args.len() + 64);
        CallHeader {
            xid,
            rpcvers: 2,
            prog,
            vers,
            proc_,
            cred: self.cred.clone(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        w.raw(args);
        w.into_inner()
    }

    /// Sends bytes exactly as given (no record mark added).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one message as a record.
    pub fn send_message(&mut self, msg: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&encode_record(msg, 1 << 20))
    }

    /// Receives the next record.
    pub fn recv_record(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.dec.next_record() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.dec.push(&buf[..n]);
        }
    }

    /// Calls with pre-encoded arguments using transaction id `xid`; returns the reply
    /// header and the encoded results.
    pub fn call_raw_xid(
        &mut self,
        xid: u32,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<(ReplyHeader, Vec<u8>), ClientError> {
        let msg = self.call_message(xid, prog, vers, proc_, args);
        self.send_message(&msg)?;
        let reply = self.recv_record()?;
        let mut r = Reader::new(&reply);
        let h = ReplyHeader::decode(&mut r)?;
        if h.xid != xid {
            return Err(ClientError::XidMismatch {
                got: h.xid,
                want: xid,
            });
        }
        Ok((h, r.rest().to_vec()))
    }

    /// Calls and decodes typed results; a call the server did not execute is an error.
    pub fn call<A: Xdr, R: Xdr>(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &A,
    ) -> Result<R, ClientError> {
        let xid = self.xid();
        let (h, body) = self.call_raw_xid(xid, prog, vers, proc_, &rnfs_xdr::to_bytes(args))?;
        if h.status != ReplyStatus::Success {
            return Err(ClientError::Rejected(h.status));
        }
        Ok(rnfs_xdr::from_bytes(&body)?)
    }
}
