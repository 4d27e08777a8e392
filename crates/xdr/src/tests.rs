use super::*;
use proptest::prelude::*;

xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        a: u32,
        b: i64,
        c: bool,
        d: Opaque<16>,
        e: XdrString<8>,
        f: Option<u32>,
        g: VarArray<u32, 4>,
        h: OpaqueFixed<5>,
    }
}

xdr_enum! {
    enum Color { Red = 1, Green = 2 }
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        any::<u32>(),
        any::<i64>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..=16),
        prop::collection::vec(any::<u8>(), 0..=8),
        any::<Option<u32>>(),
        prop::collection::vec(any::<u32>(), 0..=4),
        any::<[u8; 5]>(),
    )
        .prop_map(|(a, b, c, d, e, f, g, h)| Sample {
            a,
            b,
            c,
            d: Opaque(d),
            e: XdrString(e),
            f,
            g: VarArray(g),
            h: OpaqueFixed(h),
        })
}

proptest! {
    #[test]
    fn roundtrip(s in sample()) {
        let bytes = to_bytes(&s);
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(from_bytes::<Sample>(&bytes).unwrap(), s);
    }

    #[test]
    fn truncation_is_an_error(s in sample(), cut in 1usize..8) {
        let bytes = to_bytes(&s);
        let cut = cut.min(bytes.len());
        prop_assert!(from_bytes::<Sample>(&bytes[..bytes.len() - cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_bytes::<Sample>(&b);
    }
}

#[test]
fn floats_and_fixed_arrays() {
    let v: ([u32; 3], f32, f64) = ([1, 2, 3], 1.5, -2.25);
    let mut w = Writer::new();
    v.0.encode(&mut w);
    v.1.encode(&mut w);
    v.2.encode(&mut w);
    let b = w.into_inner();
    assert_eq!(b.len(), 12 + 4 + 8);
    assert_eq!(&b[12..16], &1.5f32.to_bits().to_be_bytes());
    let mut r = Reader::new(&b);
    assert_eq!(<[u32; 3]>::decode(&mut r).unwrap(), v.0);
    assert_eq!(f32::decode(&mut r).unwrap(), v.1);
    assert_eq!(f64::decode(&mut r).unwrap(), v.2);
    assert!(<[u32; 4]>::decode(&mut Reader::new(&b[..12])).is_err());
}

#[test]
fn length_checked_before_allocation() {
    // An opaque announcing 4 GiB in a 8-byte message fails without allocating.
    let msg = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert!(matches!(
        Reader::new(&msg).opaque(u32::MAX),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        Reader::new(&msg).opaque(1024),
        Err(Error::TooLong { .. })
    ));
    // An array whose count cannot fit in the remaining input is refused up front.
    let msg = [0, 0, 0, 3, 0, 0, 0, 1];
    assert!(matches!(
        from_bytes::<VarArray<u32, 4>>(&msg),
        Err(Error::Truncated { .. })
    ));
    let msg = [0, 0, 0, 5];
    assert!(matches!(
        from_bytes::<VarArray<u32, 4>>(&msg),
        Err(Error::TooLong { .. })
    ));
}

#[test]
fn padding_and_trailing_bytes() {
    assert_eq!(
        to_bytes(&Opaque::<8>(vec![1, 2, 3])),
        [0, 0, 0, 3, 1, 2, 3, 0]
    );
    assert_eq!(
        from_bytes::<Opaque<8>>(&[0, 0, 0, 3, 1, 2, 3, 9]),
        Err(Error::BadPadding)
    );
    assert_eq!(
        from_bytes::<u32>(&[0, 0, 0, 1, 0]),
        Err(Error::TrailingBytes(1))
    );
    assert_eq!(from_bytes::<bool>(&[0, 0, 0, 2]), Err(Error::BadBool(2)));
}

#[test]
fn enums_reject_unknown_values() {
    assert_eq!(from_bytes::<Color>(&[0, 0, 0, 2]), Ok(Color::Green));
    assert!(matches!(
        from_bytes::<Color>(&[0, 0, 0, 3]),
        Err(Error::BadDiscriminant { value: 3, .. })
    ));
}

#[test]
fn linked_lists_roundtrip_and_are_bounded() {
    let l = XdrList::<u32, 2>(vec![7, 8]);
    let b = to_bytes(&l);
    assert_eq!(
        b,
        [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0]
    );
    assert_eq!(from_bytes::<XdrList<u32, 2>>(&b), Ok(l));
    assert_eq!(
        from_bytes::<XdrList<u32, 1>>(&b),
        Err(Error::TooLong { len: 2, max: 1 })
    );
    assert_eq!(
        from_bytes::<XdrList<u32, 2>>(&[0, 0, 0, 2]),
        Err(Error::BadBool(2))
    );
    assert!(matches!(
        from_bytes::<XdrList<u32, 2>>(&b[..16]),
        Err(Error::Truncated { .. })
    ));
}
