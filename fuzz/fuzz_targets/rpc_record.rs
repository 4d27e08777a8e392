//! RPC record marking (rnfs_rpc::record).
//!
//! Mode 0 (first byte even): arbitrary bytes pushed in arbitrary chunks into a
//! `RecordDecoder` with a small limit. It must never panic, never yield a record over the
//! limit, never hold more than limit + 3 bytes once it has said "need more", and never yield
//! more record bytes than were pushed.
//! Mode 1 (first byte odd): messages framed by `encode_record` with an arbitrary fragment
//! size, concatenated and pushed in arbitrary chunks, must come back identical with nothing
//! left buffered (with a limit at least the largest message), or be refused with TooLarge no
//! later than the first message over the limit (with a smaller limit).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use rnfs_rpc::record::{encode_record, RecordDecoder, RecordError};

fn raw(u: &mut Unstructured<'_>) -> AResult<()> {
    let max = usize::from(u.int_in_range(0u16..=4096)?);
    let mut d = RecordDecoder::new(max);
    let mut pushed = 0usize;
    let mut yielded = 0usize;
    while !u.is_empty() {
        let n = usize::from(u.int_in_range(0u16..=512)?);
        let chunk = u.bytes(n.min(u.len()))?;
        d.push(chunk);
        pushed += chunk.len();
        loop {
            match d.next_record() {
                Ok(Some(rec)) => {
                    assert!(
                        rec.len() <= max,
                        "record of {} bytes over the limit {max}",
                        rec.len()
                    );
                    yielded += rec.len() + 4;
                    assert!(yielded <= pushed);
                }
                Ok(None) => {
                    assert!(
                        d.buffered() <= max + 3,
                        "{} bytes buffered with a limit of {max}",
                        d.buffered()
                    );
                    break;
                }
                Err(RecordError::TooLarge { size, max: m }) => {
                    assert_eq!(m, max);
                    assert!(size > max);
                    return Ok(()); // the transport closes the connection here
                }
            }
        }
    }
    Ok(())
}

fn roundtrip(u: &mut Unstructured<'_>) -> AResult<()> {
    let frag = usize::from(u.int_in_range(0u16..=300)?); // 0 is clamped to 1
    let count = u.int_in_range(1u8..=6)?;
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..count {
        let n = usize::from(u.int_in_range(0u16..=600)?);
        msgs.push(u.bytes(n.min(u.len()))?.to_vec());
    }
    let largest = msgs.iter().map(Vec::len).max().unwrap_or(0);
    let max = if u.arbitrary::<bool>()? {
        largest + usize::from(u.int_in_range(0u8..=8)?)
    } else {
        usize::from(u.int_in_range(0u16..=600)?)
    };
    let mut wire = Vec::new();
    for m in &msgs {
        let rec = encode_record(m, frag);
        let f = frag.max(1);
        let frags = m.len().div_ceil(f).max(1);
        assert_eq!(rec.len(), m.len() + 4 * frags, "record framing size");
        wire.extend(rec);
    }
    let mut d = RecordDecoder::new(max);
    let mut got = Vec::new();
    let mut rest = &wire[..];
    let mut refused = false;
    'feed: while !rest.is_empty() {
        let n = usize::from(u.int_in_range(1u16..=700).unwrap_or(700)).min(rest.len());
        d.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.next_record() {
                Ok(Some(r)) => got.push(r),
                Ok(None) => break,
                Err(RecordError::TooLarge { .. }) => {
                    refused = true;
                    break 'feed;
                }
            }
        }
    }
    let first_big = msgs.iter().position(|m| m.len() > max);
    match first_big {
        None => {
            assert!(!refused, "refused with limit {max} >= every message");
            assert_eq!(got, msgs);
            assert_eq!(d.buffered(), 0);
        }
        Some(i) => {
            assert!(
                refused,
                "message {i} of {} bytes accepted with limit {max}",
                msgs[i].len()
            );
            assert_eq!(got[..], msgs[..got.len()]);
            assert!(got.len() <= i);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 0 {
        raw(&mut u)
    } else {
        roundtrip(&mut u)
    };
});
