//! RPC call decoding (rnfs_rpc::message::decode_call) and reply headers.
//!
//! On arbitrary bytes, decode_call must not panic; a decoded call re-encodes (header + the
//! arguments it left) to exactly the input, with RPC version 2 and a credential matching its
//! flavour; a rejection reply decodes with ReplyHeader::decode, carries the call's xid, a
//! non-success status and nothing after the header; a silent drop only happens when the
//! message is not a call with an xid. The same bytes are also decoded as a reply header,
//! which must re-encode to the bytes it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_proto::rpc::{AuthSysParams, ReplyHeader, ReplyStatus, AUTH_NONE, AUTH_SYS};
use rnfs_rpc::message::{decode_call, Auth, BadCall};
use rnfs_xdr::{from_bytes, Reader, Writer};

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let word = |i: usize| {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match decode_call(data) {
        Ok(call) => {
            let h = &call.header;
            assert_eq!(h.rpcvers, 2);
            assert_eq!(Some(h.xid), word(0));
            assert_eq!(word(1), Some(0));
            let mut w = Writer::new();
            h.encode(&mut w);
            w.raw(call.args);
            assert_eq!(w.as_slice(), data, "call header re-encoding differs");
            match (&call.auth, h.cred.flavor) {
                (Auth::None, AUTH_NONE) => {}
                (Auth::Sys(p), AUTH_SYS) => {
                    assert_eq!(from_bytes::<AuthSysParams>(&h.cred.body.0).as_ref(), Ok(p));
                }
                (a, f) => panic!("auth {a:?} for flavor {f}"),
            }
        }
        Err(BadCall::Reply(reply)) => {
            let mut r = Reader::new(&reply);
            let hdr = ReplyHeader::decode(&mut r).expect("rejection reply does not decode");
            r.finish().expect("bytes after a rejection reply header");
            assert_eq!(Some(hdr.xid), word(0));
            assert_eq!(word(1), Some(0), "rejection reply to a non-call");
            assert!(hdr.status != ReplyStatus::Success);
            // Re-encoding the decoded header gives the reply back.
            let mut w = Writer::new();
            hdr.encode(&mut w);
            assert_eq!(w.as_slice(), &reply[..]);
        }
        Err(BadCall::Drop) => {
            assert!(
                word(0).is_none() || word(1) != Some(0),
                "a call with an xid was dropped without a reply"
            );
        }
    }

    // The same bytes as a reply header (what the client and rpcbind code decode).
    let mut r = Reader::new(data);
    if let Ok(hdr) = ReplyHeader::decode(&mut r) {
        let used = r.position();
        let mut w = Writer::new();
        hdr.encode(&mut w);
        assert_eq!(
            w.as_slice(),
            &data[..used],
            "reply header re-encoding differs: {hdr:?}"
        );
        let again = ReplyHeader::decode(&mut Reader::new(w.as_slice())).expect("re-decode");
        assert_eq!(again, hdr);
    }
});
