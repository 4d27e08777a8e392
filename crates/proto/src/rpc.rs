//! ONC-RPC version 2 message headers (RFC 5531 section 9) and AUTH_SYS credentials.
use rnfs_xdr::{
    xdr_enum, xdr_struct, Error, Opaque, Reader, Result, VarArray, Writer, Xdr, XdrString,
};

/// The only RPC version (RFC 5531 section 9).
pub const RPC_VERSION: u32 = 2;
/// Largest opaque_auth body (RFC 5531 section 8.2).
pub const MAX_AUTH_BYTES: u32 = 400;

/// `AUTH_NONE` flavour.
pub const AUTH_NONE: u32 = 0;
/// `AUTH_SYS` (formerly AUTH_UNIX) flavour.
pub const AUTH_SYS: u32 = 1;

/// Credential or verifier: a flavour and its opaque body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueAuth {
    /// Authentication flavour.
    pub flavor: u32,
    /// Flavour-specific body, at most 400 bytes.
    pub body: Opaque<MAX_AUTH_BYTES>,
}

impl OpaqueAuth {
    /// The AUTH_NONE credential/verifier.
    pub fn none() -> Self {
        Self::default()
    }
}

impl Xdr for OpaqueAuth {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.flavor);
        self.body.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            flavor: r.u32()?,
            body: Opaque::decode(r)?,
        })
    }
}

xdr_struct! {
    /// AUTH_SYS credentials body (RFC 5531 appendix A).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct AuthSysParams {
        /// Arbitrary id chosen by the caller.
        pub stamp: u32,
        /// The caller's host name.
        pub machine_name: XdrString<255>,
        /// Effective user id.
        pub uid: u32,
        /// Effective group id.
        pub gid: u32,
        /// Supplementary groups, at most 16.
        pub gids: VarArray<u32, 16>,
    }
}

xdr_enum! {
    /// Why an accepted call was not executed (RFC 5531 section 9).
    pub enum AcceptStat {
        /// Executed successfully.
        Success = 0,
        /// Remote has not exported the program.
        ProgUnavail = 1,
        /// Remote cannot support the version.
        ProgMismatch = 2,
        /// Program cannot support the procedure.
        ProcUnavail = 3,
        /// Procedure cannot decode the parameters.
        GarbageArgs = 4,
        /// Memory allocation failure and the like.
        SystemErr = 5,
    }
}

xdr_enum! {
    /// Why authentication failed (RFC 5531 section 9).
    pub enum AuthStat {
        /// Success.
        Ok = 0,
        /// Bad credential (seal broken).
        BadCred = 1,
        /// Client must begin a new session.
        RejectedCred = 2,
        /// Bad verifier.
        BadVerf = 3,
        /// Verifier expired or replayed.
        RejectedVerf = 4,
        /// Rejected for security reasons.
        TooWeak = 5,
        /// Bogus response verifier.
        InvalidResp = 6,
        /// Reason unknown.
        Failed = 7,
    }
}

/// The header of an RPC call, up to the procedure arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    /// Transaction id.
    pub xid: u32,
    /// RPC protocol version; must be 2.
    pub rpcvers: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// Credential.
    pub cred: OpaqueAuth,
    /// Verifier.
    pub verf: OpaqueAuth,
}

/// Message type discriminants.
pub const CALL: u32 = 0;
/// Message type discriminants.
pub const REPLY: u32 = 1;

impl CallHeader {
    /// Decodes a call header; the reader is left at the procedure arguments.
    ///
    /// Returns the xid alone when the message is not a call at all, so that the caller can
    /// decide whether to drop it.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let xid = r.u32()?;
        let mtype = r.u32()?;
        if mtype != CALL {
            return Err(Error::BadDiscriminant {
                what: "msg_type (expected CALL)",
                value: mtype,
            });
        }
        Ok(Self {
            xid,
            rpcvers: r.u32()?,
            prog: r.u32()?,
            vers: r.u32()?,
            proc_: r.u32()?,
            cred: OpaqueAuth::decode(r)?,
            verf: OpaqueAuth::decode(r)?,
        })
    }

    /// Encodes the header of a call (the caller appends the arguments).
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.xid);
        w.u32(CALL);
        w.u32(self.rpcvers);
        w.u32(self.prog);
        w.u32(self.vers);
        w.u32(self.proc_);
        self.cred.encode(w);
        self.verf.encode(w);
    }
}

/// The outcome carried by a reply header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStatus {
    /// MSG_ACCEPTED with SUCCESS: results follow.
    Success,
    /// MSG_ACCEPTED, program not available.
    ProgUnavail,
    /// MSG_ACCEPTED, version out of the supported range.
    ProgMismatch {
        /// Lowest version supported.
        low: u32,
        /// Highest version supported.
        high: u32,
    },
    /// MSG_ACCEPTED, unknown procedure.
    ProcUnavail,
    /// MSG_ACCEPTED, arguments undecodable.
    GarbageArgs,
    /// MSG_ACCEPTED, server-side failure.
    SystemErr,
    /// MSG_DENIED, RPC version not 2.
    RpcMismatch {
        /// Lowest version supported.
        low: u32,
        /// Highest version supported.
        high: u32,
    },
    /// MSG_DENIED, authentication failed.
    AuthError(AuthStat),
}

/// A reply header (RFC 5531 section 9), up to the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Transaction id of the call answered.
    pub xid: u32,
    /// Verifier of an accepted reply.
    pub verf: OpaqueAuth,
    /// What happened.
    pub status: ReplyStatus,
}

impl ReplyHeader {
    /// A successful reply header with an AUTH_NONE verifier.
    pub fn success(xid: u32) -> Self {
        Self {
            xid,
            verf: OpaqueAuth::none(),
            status: ReplyStatus::Success,
        }
    }

    /// A reply header with the given status and an AUTH_NONE verifier.
    pub fn with_status(xid: u32, status: ReplyStatus) -> Self {
        Self {
            xid,
            verf: OpaqueAuth::none(),
            status,
        }
    }

    /// Encodes the header; for `Success` the caller appends the results.
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.xid);
        w.u32(REPLY);
        match &self.status {
            ReplyStatus::RpcMismatch { low, high } => {
                w.u32(1); // MSG_DENIED
                w.u32(0); // RPC_MISMATCH
                w.u32(*low);
                w.u32(*high);
            }
            ReplyStatus::AuthError(s) => {
                w.u32(1); // MSG_DENIED
                w.u32(1); // AUTH_ERROR
                s.encode(w);
            }
            accepted => {
                w.u32(0); // MSG_ACCEPTED
                self.verf.encode(w);
                match accepted {
                    ReplyStatus::Success => w.u32(AcceptStat::Success as u32),
                    ReplyStatus::ProgUnavail => w.u32(AcceptStat::ProgUnavail as u32),
                    ReplyStatus::ProgMismatch { low, high } => {
                        w.u32(AcceptStat::ProgMismatch as u32);
                        w.u32(*low);
                        w.u32(*high);
                    }
                    ReplyStatus::ProcUnavail => w.u32(AcceptStat::ProcUnavail as u32),
                    ReplyStatus::GarbageArgs => w.u32(AcceptStat::GarbageArgs as u32),
                    ReplyStatus::SystemErr => w.u32(AcceptStat::SystemErr as u32),
                    ReplyStatus::RpcMismatch { .. } | ReplyStatus::AuthError(_) => {}
                }
            }
        }
    }

    /// Decodes a reply header; on `Success` the reader is left at the results.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let xid = r.u32()?;
        let mtype = r.u32()?;
        if mtype != REPLY {
            return Err(Error::BadDiscriminant {
                what: "msg_type (expected REPLY)",
                value: mtype,
            });
        }
        match r.u32()? {
            0 => {
                let verf = OpaqueAuth::decode(r)?;
                let status = match AcceptStat::decode(r)? {
                    AcceptStat::Success => ReplyStatus::Success,
                    AcceptStat::ProgUnavail => ReplyStatus::ProgUnavail,
                    AcceptStat::ProgMismatch => ReplyStatus::ProgMismatch {
                        low: r.u32()?,
                        high: r.u32()?,
                    },
                    AcceptStat::ProcUnavail => ReplyStatus::ProcUnavail,
                    AcceptStat::GarbageArgs => ReplyStatus::GarbageArgs,
                    AcceptStat::SystemErr => ReplyStatus::SystemErr,
                };
                Ok(Self { xid, verf, status })
            }
            1 => {
                let status = match r.u32()? {
                    0 => ReplyStatus::RpcMismatch {
                        low: r.u32()?,
                        high: r.u32()?,
                    },
                    1 => ReplyStatus::AuthError(AuthStat::decode(r)?),
                    v => {
                        return Err(Error::BadDiscriminant {
                            what: "reject_stat",
                            value: v,
                        })
                    }
                };
                Ok(Self {
                    xid,
                    verf: OpaqueAuth::none(),
                    status,
                })
            }
            v => Err(Error::BadDiscriminant {
                what: "reply_stat",
                value: v,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_headers_roundtrip() {
        for status in [
            ReplyStatus::Success,
            ReplyStatus::ProgUnavail,
            ReplyStatus::ProgMismatch { low: 3, high: 3 },
            ReplyStatus::ProcUnavail,
            ReplyStatus::GarbageArgs,
            ReplyStatus::SystemErr,
            ReplyStatus::RpcMismatch { low: 2, high: 2 },
            ReplyStatus::AuthError(AuthStat::TooWeak),
        ] {
            let h = ReplyHeader::with_status(7, status);
            let mut w = Writer::new();
            h.encode(&mut w);
            let b = w.into_inner();
            let mut r = Reader::new(&b);
            assert_eq!(ReplyHeader::decode(&mut r).unwrap(), h);
            r.finish().unwrap();
        }
    }

    #[test]
    fn call_header_roundtrip() {
        let cred = AuthSysParams {
            uid: 1000,
            gid: 100,
            gids: VarArray(vec![1, 2]),
            ..Default::default()
        };
        let h = CallHeader {
            xid: 9,
            rpcvers: 2,
            prog: 100003,
            vers: 3,
            proc_: 1,
            cred: OpaqueAuth {
                flavor: AUTH_SYS,
                body: Opaque(rnfs_xdr::to_bytes(&cred)),
            },
            verf: OpaqueAuth::none(),
        };
        let mut w = Writer::new();
        h.encode(&mut w);
        let b = w.into_inner();
        assert_eq!(CallHeader::decode(&mut Reader::new(&b)).unwrap(), h);
    }
}
