//! NFSv4 COMPOUND and CB_COMPOUND, arguments and results (rnfs_proto::nfs4).
//!
//! The whole input is decoded as each of COMPOUND4args, COMPOUND4res, CB_COMPOUND4args and
//! CB_COMPOUND4res (`check_type`: whatever decodes re-encodes to exactly its bytes and
//! decodes again to the same value), and by the bounded op-by-op decoders the server and
//! client use: every operation they yield re-encodes to exactly the bytes it consumed, the
//! header limits hold, and where the whole-message decoder succeeds (with no unknown
//! operation) both agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_fuzz::check_type;
use rnfs_proto::nfs4::*;
use rnfs_xdr::{from_bytes, to_bytes};
use std::fmt::Debug;

/// Limits as generous as the whole-message types' own (tag 4096 bytes, 1024 ops), so the
/// two decoders can be compared.
const WIDE: CompoundLimits = CompoundLimits {
    max_tag: 4096,
    max_ops: 1024,
};

/// Runs an op iterator to its end, checking each op's bytes; returns the ops if the
/// message was consumed exactly.
fn walk<T: Op + Debug>(input: &[u8], mut ops: Ops<'_, T>, max_ops: u32) -> Option<Vec<T>> {
    assert!(ops.remaining() <= max_ops);
    let mut out = Vec::new();
    let mut at = ops.position();
    while let Some(op) = ops.next() {
        let Ok(op) = op else { return None };
        let end = ops.position();
        assert_eq!(
            to_bytes(&op),
            input[at..end],
            "op {op:?} re-encodes differently"
        );
        at = end;
        out.push(op);
    }
    ops.finish().ok().map(|()| out)
}

fn compare<T: PartialEq + Debug>(whole: Option<&[T]>, by_op: Option<Vec<T>>, unknown: bool) {
    if let (Some(w), false) = (whole, unknown) {
        assert_eq!(
            by_op.as_deref(),
            Some(w),
            "op-by-op decoding disagrees with the whole message"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    check_type::<Compound4args>(data);
    check_type::<Compound4res>(data);
    check_type::<CbCompound4args>(data);
    check_type::<CbCompound4res>(data);

    // A server's tight limits: refusals come from the header alone.
    let tight = CompoundLimits {
        max_tag: 16,
        max_ops: 8,
    };
    match decode_compound_args(data, &tight) {
        Ok((h, ops)) => {
            assert!(h.tag.0.len() <= 16 && h.op_count <= 8);
            walk(data, ops, 8);
        }
        Err(CompoundError::TagTooLong { len, max }) => assert!(len > max),
        Err(CompoundError::TooManyOps { count, max, .. }) => assert!(count > max),
        Err(CompoundError::Xdr(_)) => {}
    }

    let whole = from_bytes::<Compound4args>(data).ok();
    if let Ok((h, ops)) = decode_compound_args(data, &WIDE) {
        let unknown = whole
            .as_ref()
            .is_some_and(|c| c.argarray.0.iter().any(Op::is_unknown));
        if let Some(c) = &whole {
            assert_eq!((&h.tag, h.minorversion), (&c.tag, c.minorversion));
        }
        compare(
            whole.as_ref().map(|c| &c.argarray.0[..]),
            walk(data, ops, 1024),
            unknown,
        );
    }
    let whole = from_bytes::<Compound4res>(data).ok();
    if let Ok((h, ops)) = decode_compound_res(data, &WIDE) {
        if let Some(c) = &whole {
            assert_eq!((h.status, &h.tag), (c.status, &c.tag));
        }
        compare(
            whole.as_ref().map(|c| &c.resarray.0[..]),
            walk(data, ops, 1024),
            false,
        );
    }
    let whole = from_bytes::<CbCompound4args>(data).ok();
    if let Ok((h, ops)) = decode_cb_compound_args(data, &WIDE) {
        let unknown = whole
            .as_ref()
            .is_some_and(|c| c.argarray.0.iter().any(Op::is_unknown));
        if let Some(c) = &whole {
            assert_eq!(h.callback_ident, c.callback_ident);
        }
        compare(
            whole.as_ref().map(|c| &c.argarray.0[..]),
            walk(data, ops, 1024),
            unknown,
        );
    }
    let whole = from_bytes::<CbCompound4res>(data).ok();
    if let Ok((_, ops)) = decode_cb_compound_res(data, &WIDE) {
        compare(
            whole.as_ref().map(|c| &c.resarray.0[..]),
            walk(data, ops, 1024),
            false,
        );
    }
    // Results written through ResultsWriter read back the same.
    if let Ok(c) = from_bytes::<Compound4res>(data) {
        let mut w = rnfs_xdr::Writer::new();
        let mut rw = ResultsWriter::begin(&mut w, &c.tag);
        for r in &c.resarray.0 {
            rw.push(&mut w, r);
        }
        rw.finish(&mut w, c.status);
        assert_eq!(w.as_slice(), data);
    }
});
