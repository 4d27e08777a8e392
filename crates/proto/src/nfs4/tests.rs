//! Tests of the NFSv4 wire types: a COMPOUND laid out byte by byte from the RFC,
//! bounded header decoding, unknown operations, and round trips.
use super::*;
use rnfs_xdr::{from_bytes, to_bytes, Error, OpaqueFixed, VarArray};

/// Big-endian words, for building messages by hand.
fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A typical NFSv4.1 COMPOUND built from the RFC 5661 layout by hand: tag "t1",
/// minor version 1, SEQUENCE, PUTROOTFH, GETATTR {type, size}.
fn sequence_putroot_getattr() -> Vec<u8> {
    let mut b = words(&[2]);
    b.extend_from_slice(b"t1\0\0"); // tag: length 2, bytes, 2 bytes of padding
    b.extend(words(&[1, 3])); // minorversion 1, three operations
    b.extend(words(&[53])); // OP_SEQUENCE
    b.extend_from_slice(&[7; 16]); // sa_sessionid
    b.extend(words(&[9, 0, 4, 1])); // sequenceid 9, slot 0, highest slot 4, cachethis TRUE
    b.extend(words(&[24])); // OP_PUTROOTFH (void)
    b.extend(words(&[9, 1, 0b10010])); // OP_GETATTR, bitmap of 1 word: bits 1 (type), 4 (size)
    b
}

#[test]
fn compound_from_rfc_layout_decodes_to_expected_values() {
    let buf = sequence_putroot_getattr();
    let (h, mut ops) = decode_compound_args(&buf, &CompoundLimits::default()).unwrap();
    assert_eq!(h.tag.0, b"t1");
    assert_eq!((h.minorversion, h.op_count), (1, 3));
    let seq = Sequence4args {
        sa_sessionid: OpaqueFixed([7; 16]),
        sa_sequenceid: 9,
        sa_slotid: 0,
        sa_highest_slotid: 4,
        sa_cachethis: true,
    };
    assert_eq!(ops.next().unwrap().unwrap(), NfsArgop4::OpSequence(seq));
    assert_eq!(ops.next().unwrap().unwrap(), NfsArgop4::OpPutrootfh);
    let getattr = ops.next().unwrap().unwrap();
    let NfsArgop4::OpGetattr(ga) = &getattr else {
        panic!("not GETATTR: {getattr:?}")
    };
    assert!(bitmap_has(&ga.attr_request, FATTR4_TYPE));
    assert!(bitmap_has(&ga.attr_request, FATTR4_SIZE));
    assert!(!bitmap_has(&ga.attr_request, FATTR4_CHANGE));
    assert!(ops.next().is_none());
    ops.finish().unwrap();
    // The whole-message form agrees and re-encodes to the same bytes.
    let whole: Compound4args = from_bytes(&buf).unwrap();
    assert_eq!(whole.argarray.0.len(), 3);
    assert_eq!(to_bytes(&whole), buf);
}

#[test]
fn ten_thousand_ops_refused_after_the_count() {
    let buf = words(&[0, 1, 10_000]);
    // Only the header is present: the refusal must not depend on reading any op.
    let limits = CompoundLimits {
        max_tag: 64,
        max_ops: 16,
    };
    match decode_compound_args(&buf, &limits) {
        Err(CompoundError::TooManyOps {
            count: 10_000,
            max: 16,
            minorversion: 1,
            ..
        }) => {}
        other => panic!("expected TooManyOps, got {other:?}"),
    }
    // Within the limit but with no bytes for the ops: the count is checked against the
    // message before anything is reserved.
    assert!(matches!(
        decode_compound_args(&words(&[0, 1, 10]), &limits),
        Err(CompoundError::Xdr(Error::Truncated { needed: 40 }))
    ));
}

#[test]
fn huge_tag_refused_before_its_bytes() {
    let buf = words(&[0x7fff_ffff]);
    match decode_compound_args(&buf, &CompoundLimits::default()) {
        Err(CompoundError::TagTooLong {
            len: 0x7fff_ffff,
            max: 1024,
        }) => {}
        other => panic!("expected TagTooLong, got {other:?}"),
    }
}

#[test]
fn unknown_op_decodes_to_unknown_and_stops() {
    let mut buf = words(&[0, 1, 3, 24, 9999]);
    buf.extend(words(&[0xdead, 0xbeef])); // whatever follows cannot be interpreted
    let (_, mut ops) = decode_compound_args(&buf, &CompoundLimits::default()).unwrap();
    assert_eq!(ops.next().unwrap().unwrap(), NfsArgop4::OpPutrootfh);
    assert_eq!(ops.next().unwrap().unwrap(), NfsArgop4::Unknown(9999));
    assert!(ops.next().is_none());
    assert_eq!(NfsArgop4::Unknown(9999).discriminant(), 9999);
    // OP_ILLEGAL is a known number with no arguments.
    assert_eq!(
        from_bytes::<NfsArgop4>(&words(&[10044])).unwrap(),
        NfsArgop4::OpIllegal
    );
    // Results are closed: an unknown result number is an error.
    assert_eq!(
        from_bytes::<NfsResop4>(&words(&[9999])),
        Err(Error::BadDiscriminant {
            what: "nfs_resop4",
            value: 9999
        })
    );
}

#[test]
fn results_writer_patches_status_and_count() {
    let mut w = Writer::new();
    let tag = Opaque(b"abc".to_vec());
    let mut rw = ResultsWriter::begin(&mut w, &tag);
    rw.push(
        &mut w,
        &NfsResop4::OpPutrootfh(Putrootfh4res {
            status: Nfsstat4::Nfs4Ok,
        }),
    );
    rw.push(
        &mut w,
        &NfsResop4::OpGetfh(Getfh4res::Default(Nfsstat4::Nfs4errNofilehandle)),
    );
    rw.finish(&mut w, Nfsstat4::Nfs4errNofilehandle);
    let res: Compound4res = from_bytes(w.as_slice()).unwrap();
    assert_eq!(res.status, Nfsstat4::Nfs4errNofilehandle);
    assert_eq!(res.tag.0, b"abc");
    assert_eq!(res.resarray.0.len(), 2);
    let (h, ops) = decode_compound_res(w.as_slice(), &CompoundLimits::default()).unwrap();
    assert_eq!(h.op_count, 2);
    assert_eq!(ops.collect::<Result<Vec<_>>>().unwrap(), res.resarray.0);
}

#[test]
fn write_data_can_be_borrowed() {
    let args = Write4args {
        stateid: Stateid4 {
            seqid: 1,
            other: OpaqueFixed([2; 12]),
        },
        offset: 4096,
        stable: StableHow4::Unstable4,
        data: Opaque(vec![0xab; 5]),
    };
    let c = Compound4args {
        tag: Opaque::default(),
        minorversion: 2,
        argarray: VarArray(vec![
            NfsArgop4::OpPutrootfh,
            NfsArgop4::OpWrite(args.clone()),
        ]),
    };
    let buf = to_bytes(&c);
    let (_, mut ops) = decode_compound_args(&buf, &CompoundLimits::default()).unwrap();
    assert_eq!(ops.peek_opnum(), Some(NfsOpnum4::OpPutrootfh as u32));
    assert!(
        ops.next_write().is_none(),
        "next_write must refuse a non-WRITE"
    );
    ops.next().unwrap().unwrap();
    let w = ops.next_write().unwrap().unwrap();
    assert_eq!(w.data, &[0xab; 5]);
    assert_eq!(w.to_owned_args(), args);
    assert!(ops.next().is_none());
    ops.finish().unwrap();
}
