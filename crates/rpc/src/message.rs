//! Call decoding and reply encoding, independent of any transport.
use rnfs_proto::rpc::{
    AuthStat, AuthSysParams, CallHeader, ReplyHeader, ReplyStatus, AUTH_NONE, AUTH_SYS, RPC_VERSION,
};
use rnfs_xdr::{Reader, Writer, Xdr};

/// The caller's authentication, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// AUTH_NONE.
    None,
    /// AUTH_SYS with its parameters.
    Sys(AuthSysParams),
}

/// A decoded call: header, authentication and the undecoded arguments.
#[derive(Debug)]
pub struct Call<'a> {
    /// Header.
    pub header: CallHeader,
    /// Authentication.
    pub auth: Auth,
    /// The procedure's arguments, still encoded.
    pub args: &'a [u8],
}

/// What to do with a message that is not a well-formed call.
#[derive(Debug, PartialEq, Eq)]
pub enum BadCall {
    /// Send this reply (RPC_MISMATCH, AUTH_ERROR, GARBAGE_ARGS...).
    Reply(Vec<u8>),
    /// Not even an xid could be read, or it is not a call: drop it silently.
    Drop,
}

/// Decodes a call message. Errors that can be answered produce the reply to send.
pub fn decode_call(msg: &[u8]) -> Result<Call<'_>, BadCall> {
    let mut r = Reader::new(msg);
    let header = match CallHeader::decode(&mut r) {
        Ok(h) => h,
        Err(_) => {
            // A truncated header: answer GARBAGE_ARGS if it was a call with an xid.
            let mut r = Reader::new(msg);
            return match (r.u32(), r.u32()) {
                (Ok(xid), Ok(0)) => Err(BadCall::Reply(reply_error(xid, ReplyStatus::GarbageArgs))),
                _ => Err(BadCall::Drop),
            };
        }
    };
    if header.rpcvers != RPC_VERSION {
        let st = ReplyStatus::RpcMismatch {
            low: RPC_VERSION,
            high: RPC_VERSION,
        };
        return Err(BadCall::Reply(reply_error(header.xid, st)));
    }
    let auth = match header.cred.flavor {
        AUTH_NONE => Auth::None,
        AUTH_SYS => match rnfs_xdr::from_bytes::<AuthSysParams>(&header.cred.body.0) {
            Ok(p) => Auth::Sys(p),
            Err(_) => {
                return Err(BadCall::Reply(reply_error(
                    header.xid,
                    ReplyStatus::AuthError(AuthStat::BadCred),
                )))
            }
        },
        _ => {
            return Err(BadCall::Reply(reply_error(
                header.xid,
                ReplyStatus::AuthError(AuthStat::RejectedCred),
            )))
        }
    };
    let args = r.rest();
    Ok(Call { header, auth, args })
}

/// A complete reply message for a call that was not executed.
pub fn reply_error(xid: u32, status: ReplyStatus) -> Vec<u8> {
    let mut w = Writer::with_capacity(32);
    ReplyHeader::with_status(xid, status).encode(&mut w);
    w.into_inner()
}

/// A writer holding a successful reply header; the caller appends the results.
pub fn reply_success(xid: u32, capacity: usize) -> Writer {
    let mut w = Writer::with_capacity(capacity + 24);
    ReplyHeader::success(xid).encode(&mut w);
    w
}

/// A complete successful reply with `results` encoded after the header.
pub fn reply_with<T: Xdr>(xid: u32, results: &T) -> Vec<u8> {
    let mut w = reply_success(xid, 128);
    results.encode(&mut w);
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_proto::rpc::OpaqueAuth;

    fn call(rpcvers: u32, cred: OpaqueAuth) -> Vec<u8> {
        let mut w = Writer::new();
        CallHeader {
            xid: 5,
            rpcvers,
            prog: 100003,
            vers: 3,
            proc_: 0,
            cred,
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        w.into_inner()
    }

    fn status(reply: &[u8]) -> ReplyStatus {
        ReplyHeader::decode(&mut Reader::new(reply)).unwrap().status
    }

    #[test]
    fn rejections() {
        match decode_call(&call(3, OpaqueAuth::none())) {
            Err(BadCall::Reply(r)) => {
                assert_eq!(status(&r), ReplyStatus::RpcMismatch { low: 2, high: 2 })
            }
            other => panic!("{other:?}"),
        }
        let bad = OpaqueAuth {
            flavor: AUTH_SYS,
            body: rnfs_xdr::Opaque(vec![1, 2, 3]),
        };
        match decode_call(&call(2, bad)) {
            Err(BadCall::Reply(r)) => {
                assert_eq!(status(&r), ReplyStatus::AuthError(AuthStat::BadCred))
            }
            other => panic!("{other:?}"),
        }
        let gss = OpaqueAuth {
            flavor: 6,
            body: Default::default(),
        };
        match decode_call(&call(2, gss)) {
            Err(BadCall::Reply(r)) => {
                assert_eq!(status(&r), ReplyStatus::AuthError(AuthStat::RejectedCred))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_call(&[0, 0, 0, 1]).unwrap_err(), BadCall::Drop);
        match decode_call(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]) {
            Err(BadCall::Reply(r)) => assert_eq!(status(&r), ReplyStatus::GarbageArgs),
            other => panic!("{other:?}"),
        }
    }
}
