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
            what: "NfsResop4",
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

#[test]
fn oversized_items_give_too_long_before_reading_them() {
    fn too_long<T>(len: u64, max: u64) -> Result<T> {
        Err(Error::TooLong { len, max })
    }
    // bitmap4: 64 words at most.
    assert_eq!(from_bytes::<Bitmap4>(&words(&[65])), too_long(65, 64));
    // nfs_fh4: NFS4_FHSIZE bytes.
    assert_eq!(from_bytes::<NfsFh4>(&words(&[129])), too_long(129, 128));
    // WRITE data: 4 MiB + 4 KiB, refused on the length alone.
    let mut w = words(&[0; 4]); // stateid: seqid + 12 bytes of other
    w.extend(words(&[0, 0, 2, WRITE_DATA_MAX + 1])); // offset, FILE_SYNC4, data length
    assert_eq!(
        from_bytes::<Write4args>(&w),
        too_long(u64::from(WRITE_DATA_MAX) + 1, 4198400)
    );
    // attrlist4 in a fattr4: 1 MiB.
    assert_eq!(
        from_bytes::<Fattr4>(&words(&[0, 1 << 20 | 1])),
        too_long(1048577, 1048576)
    );
    // Owners: NFS4_OPAQUE_LIMIT.
    assert_eq!(
        from_bytes::<StateOwner4>(&words(&[0, 0, 1025])),
        too_long(1025, 1024)
    );
    // The whole-message COMPOUND form bounds its op array too.
    assert_eq!(
        from_bytes::<Compound4args>(&words(&[0, 1, 1025])),
        too_long(1025, 1024)
    );
}

#[test]
fn counts_beyond_the_message_are_truncated_not_allocated() {
    // 1000 stateids announced (within the 1024 limit), none present: refused before
    // reserving room for them.
    let r = from_bytes::<TestStateid4args>(&words(&[1000]));
    assert_eq!(r, Err(Error::Truncated { needed: 4000 }));
}

#[test]
fn readdir_list_is_bounded_and_not_recursive() {
    // 65,537 minimal entries: refused at the limit, decoded by a loop (a recursive
    // decoder would need 65,537 stack frames here).
    let entry = words(&[1, 0, 0, 0, 0, 0]); // TRUE, cookie (2 words), name "", bitmap [], attrs ""
    let mut b = words(&[0]); // NFS4_OK
    b.extend_from_slice(&[0; 8]); // cookieverf
    for _ in 0..65_537 {
        b.extend_from_slice(&entry);
    }
    b.extend(words(&[0, 1])); // end of list, eof
    assert_eq!(
        from_bytes::<Readdir4res>(&b),
        Err(Error::TooLong {
            len: 65_537,
            max: 65_536
        })
    );
    // One fewer decodes.
    let cut = b.len() - 8 - entry.len();
    let mut ok = b[..cut].to_vec();
    ok.extend(words(&[0, 1]));
    let Readdir4res::Nfs4Ok(r) = from_bytes::<Readdir4res>(&ok).unwrap() else {
        panic!("not OK")
    };
    assert_eq!(r.reply.entries.0.len(), 65_536);
}

#[test]
fn closed_enums_and_unions_reject_unknown_values() {
    // 10073 is the one unused nfsstat4 value in the NFSv4.1 range.
    assert_eq!(
        from_bytes::<Nfsstat4>(&words(&[10073])),
        Err(Error::BadDiscriminant {
            what: "Nfsstat4",
            value: 10073
        })
    );
    // A default arm still checks that its discriminant is a status.
    assert_eq!(
        from_bytes::<Access4res>(&words(&[10073])),
        Err(Error::BadDiscriminant {
            what: "Nfsstat4",
            value: 10073
        })
    );
    // A union without default: open_claim4 has cases 0..=6 only.
    assert_eq!(
        from_bytes::<OpenClaim4>(&words(&[7])),
        Err(Error::BadDiscriminant {
            what: "OpenClaim4",
            value: 7
        })
    );
    // A bool-switched union (locker4) refuses a bool that is neither 0 nor 1.
    assert_eq!(from_bytes::<Locker4>(&words(&[2])), Err(Error::BadBool(2)));
    // Fall-through cases: NF4BLK and NF4CHR both carry specdata4.
    let chr = from_bytes::<Createtype4>(&words(&[4, 1, 2])).unwrap();
    assert_eq!(
        chr,
        Createtype4::Nf4chr(Specdata4 {
            specdata1: 1,
            specdata2: 2
        })
    );
    assert_eq!(
        from_bytes::<Createtype4>(&words(&[1])).unwrap(),
        Createtype4::Default(NfsFtype4::Nf4reg)
    );
}

#[test]
fn cb_compound_header_is_bounded_too() {
    let limits = CompoundLimits {
        max_tag: 8,
        max_ops: 4,
    };
    assert!(matches!(
        decode_cb_compound_args(&words(&[9]), &limits),
        Err(CompoundError::TagTooLong { len: 9, max: 8 })
    ));
    assert!(matches!(
        decode_cb_compound_args(&words(&[0, 1, 7, 5]), &limits),
        Err(CompoundError::TooManyOps { count: 5, .. })
    ));
    // CB_SEQUENCE, then an unknown callback op.
    let mut b = words(&[0, 1, 7, 2, 11]);
    b.extend_from_slice(&[1; 16]);
    b.extend(words(&[1, 0, 0, 0, 0, 99]));
    let (h, ops) = decode_cb_compound_args(&b, &limits).unwrap();
    assert_eq!((h.minorversion, h.callback_ident, h.op_count), (1, 7, 2));
    let ops: Vec<_> = ops.collect::<Result<_>>().unwrap();
    assert!(matches!(ops[0], NfsCbArgop4::OpCbSequence(_)));
    assert_eq!(ops[1], NfsCbArgop4::Unknown(99));
}

#[test]
fn ops_stop_after_a_malformed_op_and_finish_reports_leftovers() {
    // Two ops announced; the first is a GETATTR whose bitmap is too long.
    let b = words(&[0, 1, 2, 9, 65]);
    let (_, mut ops) = decode_compound_args(&b, &CompoundLimits::default()).unwrap();
    assert_eq!(ops.next(), Some(Err(Error::TooLong { len: 65, max: 64 })));
    assert_eq!(ops.next(), None);
    assert!(ops.finish().is_err());
    // All ops decoded but bytes left over.
    let b = words(&[0, 1, 1, 24, 0]);
    let (_, mut ops) = decode_compound_args(&b, &CompoundLimits::default()).unwrap();
    assert_eq!(ops.next(), Some(Ok(NfsArgop4::OpPutrootfh)));
    assert_eq!(ops.finish(), Err(Error::TrailingBytes(4)));
}

#[test]
fn bitmap_helpers() {
    let mut b = Bitmap4::default();
    bitmap_set(&mut b, FATTR4_SUPPATTR_EXCLCREAT);
    bitmap_set(&mut b, FATTR4_TYPE);
    assert_eq!(
        b.0,
        vec![1 << FATTR4_TYPE, 0, 1 << (FATTR4_SUPPATTR_EXCLCREAT - 64)]
    );
    assert!(bitmap_has(&b, FATTR4_SUPPATTR_EXCLCREAT));
    assert!(!bitmap_has(&b, FATTR4_SEC_LABEL));
    assert!(!bitmap_has(&b, 255));
}
