//! XDR primitives and containers of rnfs_xdr.
//!
//! Input: `data[0]` = number of operations n (mod 17), then n operation bytes, then the XDR
//! payload. Each operation decodes one item from a shared `Reader` over the payload; every
//! item that decodes must re-encode to exactly the bytes it consumed, decode again to the
//! same value, and agree with the `Reader` method of the same primitive. When all items
//! decode and the payload is consumed, the concatenated re-encodings equal the payload.
//! Independently, the whole payload is tried with `from_bytes` as each of several types.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_fuzz::{check_canonical, check_type};
use rnfs_xdr::{
    from_bytes, to_bytes, Opaque, OpaqueFixed, Reader, VarArray, Writer, Xdr, XdrString,
};
use std::fmt::Debug;

/// Decodes one `T` at the reader's position and checks it against the bytes it consumed.
fn item<T: Xdr + PartialEq + Debug>(r: &mut Reader<'_>, out: &mut Writer) -> bool {
    let start = r.rest();
    let before = r.position();
    let Ok(v) = T::decode(r) else {
        return false;
    };
    let used = r.position() - before;
    let enc = to_bytes(&v);
    assert_eq!(enc, start[..used], "{}: {v:?}", std::any::type_name::<T>());
    assert_eq!(from_bytes::<T>(&enc).as_ref(), Ok(&v));
    v.encode(out);
    true
}

/// The `Reader` method and the `Xdr` impl of a primitive must agree.
fn prim<T: Xdr + PartialEq + Debug>(
    r: &mut Reader<'_>,
    out: &mut Writer,
    direct: impl Fn(&mut Reader<'_>) -> rnfs_xdr::Result<T>,
) -> bool {
    let d = direct(&mut r.clone());
    let ok = item::<T>(r, out);
    assert_eq!(d.is_ok(), ok);
    ok
}

fn op(code: u8, r: &mut Reader<'_>, out: &mut Writer) -> bool {
    match code % 20 {
        0 => prim::<u32>(r, out, |r| r.u32()),
        1 => prim::<i32>(r, out, |r| r.i32()),
        2 => prim::<u64>(r, out, |r| r.u64()),
        3 => prim::<i64>(r, out, |r| r.i64()),
        4 => prim::<bool>(r, out, |r| r.bool()),
        5 => {
            // Raw opaque through the Reader with a limit taken from the op code.
            let max = u32::from(code / 20) * 4;
            let before = r.clone();
            match r.opaque(max) {
                Ok(b) => {
                    assert!(b.len() <= max as usize);
                    let mut w = Writer::new();
                    w.opaque(b);
                    assert_eq!(
                        w.as_slice(),
                        &before.rest()[..r.position() - before.position()]
                    );
                    out.opaque(b);
                    true
                }
                Err(_) => false,
            }
        }
        6 => item::<Opaque<16>>(r, out),
        7 => item::<Opaque<1024>>(r, out),
        8 => item::<XdrString<255>>(r, out),
        9 => item::<XdrString<4>>(r, out),
        10 => item::<OpaqueFixed<0>>(r, out),
        11 => item::<OpaqueFixed<3>>(r, out),
        12 => item::<OpaqueFixed<8>>(r, out),
        13 => item::<Option<u32>>(r, out),
        14 => item::<Option<XdrString<8>>>(r, out),
        15 => item::<VarArray<u32, 16>>(r, out),
        16 => item::<VarArray<Opaque<8>, 4>>(r, out),
        17 => item::<VarArray<(), 8>>(r, out),
        18 => item::<Box<Option<OpaqueFixed<5>>>>(r, out),
        _ => {
            // Fixed opaque of a length from the op code, through the Reader.
            let n = usize::from(code / 20);
            let before = r.position();
            match r.opaque_fixed(n) {
                Ok(b) => {
                    assert_eq!(b.len(), n);
                    assert_eq!(r.position() - before, n.div_ceil(4) * 4);
                    out.opaque_fixed(b);
                    true
                }
                Err(_) => false,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 17).min(rest.len());
    let (ops, payload) = rest.split_at(n);

    let mut r = Reader::new(payload);
    let mut out = Writer::new();
    let mut all = true;
    // End of the last item that decoded (a failed decode may have consumed part of its
    // item: the reader is not rewound on error).
    let mut good = 0;
    for &code in ops {
        let pos = r.position();
        let ok = op(code, &mut r, &mut out);
        assert!(r.position() >= pos);
        assert_eq!(r.position() + r.remaining(), payload.len());
        if !ok {
            all = false;
            break;
        }
        good = r.position();
    }
    // Everything decoded re-encodes to exactly the bytes it was decoded from.
    assert_eq!(out.as_slice(), &payload[..good]);
    if all && r.finish().is_ok() {
        assert_eq!(out.as_slice(), payload);
    }

    // The whole payload as a single value of each of several types.
    check_type::<u32>(payload);
    check_type::<u64>(payload);
    check_type::<bool>(payload);
    check_type::<Opaque<64>>(payload);
    check_type::<XdrString<1024>>(payload);
    check_type::<OpaqueFixed<7>>(payload);
    check_type::<Option<Box<u64>>>(payload);
    check_type::<VarArray<XdrString<16>, 32>>(payload);
    check_type::<VarArray<Option<u32>, 1000>>(payload);
    check_type::<()>(payload);
    assert_eq!(check_canonical::<()>(payload), payload.is_empty());
});
