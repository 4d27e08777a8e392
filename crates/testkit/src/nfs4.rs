//! The wire of hand-made NFSv4 test clients (the server's and the binary's integration
//! tests): RPC record marking on blocking sockets (RFC 5531 11), COMPOUND arguments and
//! results (RFC 8881 16.2), an OPEN as most tests send it. Panics on what a test server
//! should never send: these are test helpers.
#![allow(clippy::unwrap_used)]
use rnfs_proto::nfs4::{
    ChannelAttrs4, ClientOwner4, Compound4args, Createhow4, ExchangeId4args, Fattr4, NfsArgop4,
    NfsResop4, Open4args, OpenClaim4, Openflag4, Opentype4, StateOwner4, StateProtect4A,
};
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader};
use rnfs_xdr::{Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr};
use std::io::{Read, Write};

/// Writes `msg` as one record (one last fragment).
pub fn write_record(s: &mut impl Write, msg: &[u8]) {
    let mark = 0x8000_0000u32 | u32::try_from(msg.len()).unwrap();
    let mut b = mark.to_be_bytes().to_vec();
    b.extend_from_slice(msg);
    s.write_all(&b).unwrap();
}

/// Reads one record (its fragments joined); `None` once the stream ends or fails.
pub fn read_record(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut h = [0; 4];
        s.read_exact(&mut h).ok()?;
        let h = u32::from_be_bytes(h);
        let mut frag = vec![0; (h & 0x7fff_ffff) as usize];
        s.read_exact(&mut frag).ok()?;
        out.extend_from_slice(&frag);
        if h & 0x8000_0000 != 0 {
            return Some(out);
        }
    }
}

/// COMPOUND4args of minor version `minor` with `tag`: the call's body.
pub fn compound_args(tag: &[u8], minor: u32, ops: Vec<NfsArgop4>) -> Vec<u8> {
    rnfs_xdr::to_bytes(&Compound4args {
        tag: Opaque(tag.to_vec()),
        minorversion: minor,
        argarray: VarArray(ops),
    })
}

/// The status and the results of the COMPOUND4res that `r` is at.
pub fn compound_results(r: &mut Reader<'_>) -> (u32, Vec<NfsResop4>) {
    let status = r.u32().unwrap();
    let _tag = Opaque::<1024>::decode(r).unwrap();
    let n = r.u32().unwrap();
    let ops = (0..n).map(|_| NfsResop4::decode(r).unwrap()).collect();
    (status, ops)
}

/// The RPC call of COMPOUND (NFS program 100003, version 4, AUTH_NONE) with `xid`: the
/// whole message, for [`write_record`].
pub fn compound_call(xid: u32, minor: u32, ops: Vec<NfsArgop4>) -> Vec<u8> {
    let mut w = Writer::new();
    CallHeader {
        xid,
        rpcvers: 2,
        prog: 100_003,
        vers: 4,
        proc_: 1,
        cred: OpaqueAuth::none(),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    w.raw(&compound_args(b"", minor, ops));
    w.into_inner()
}

/// The status and the results of the RPC reply `msg` to the COMPOUND call `xid`.
pub fn compound_reply(msg: &[u8], xid: u32) -> (u32, Vec<NfsResop4>) {
    let mut r = Reader::new(msg);
    let h = ReplyHeader::decode(&mut r).unwrap();
    assert_eq!(h.xid, xid, "the reply to the call sent");
    compound_results(&mut r)
}

/// Channel attributes asking for `slots` slots, 1 MiB requests and replies, 8 KiB of
/// cached reply, 8 operations a compound (CREATE_SESSION).
pub fn channel_attrs(slots: u32) -> ChannelAttrs4 {
    ChannelAttrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 8192,
        ca_maxoperations: 8,
        ca_maxrequests: slots,
        ca_rdma_ird: VarArray(Vec::new()),
    }
}

/// EXCHANGE_ID of client owner `owner` (verifier 1s, no flags, SP4_NONE, no
/// implementation id).
pub fn exchange_id_op(owner: &[u8]) -> NfsArgop4 {
    NfsArgop4::OpExchangeId(ExchangeId4args {
        eia_clientowner: ClientOwner4 {
            co_verifier: OpaqueFixed([1; 8]),
            co_ownerid: Opaque(owner.to_vec()),
        },
        eia_flags: 0,
        eia_state_protect: StateProtect4A::Sp4None,
        eia_client_impl_id: VarArray(Vec::new()),
    })
}

/// OPEN of `name` in the current directory by open owner `owner` (seqid 0, client id 0:
/// NFSv4.1) with `access` and no deny: created UNCHECKED with no attributes when
/// `create`.
pub fn open_op(owner: &[u8], name: &[u8], access: u32, create: bool) -> NfsArgop4 {
    let openhow = if create {
        Openflag4::Open4Create(Createhow4::Unchecked4(Fattr4 {
            attrmask: VarArray(vec![]),
            attr_vals: Opaque(vec![]),
        }))
    } else {
        Openflag4::Default(Opentype4::Open4Nocreate)
    };
    NfsArgop4::OpOpen(Open4args {
        seqid: 0,
        share_access: access,
        share_deny: 0,
        owner: StateOwner4 {
            clientid: 0,
            owner: Opaque(owner.to_vec()),
        },
        openhow,
        claim: OpenClaim4::ClaimNull(Opaque(name.to_vec())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_whole_and_a_short_stream_is_none() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello");
        assert_eq!(buf[..4], [0x80, 0, 0, 5]);
        assert_eq!(read_record(&mut &buf[..]), Some(b"hello".to_vec()));
        assert_eq!(read_record(&mut &buf[..6]), None);
        // Two fragments, the first not last.
        let two = [&[0, 0, 0, 1, b'a', 0x80, 0, 0, 1][..], b"b"].concat();
        assert_eq!(read_record(&mut &two[..]), Some(b"ab".to_vec()));
    }
}
