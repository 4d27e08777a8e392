//! Property tests of the NFSv4 wire types: arguments and results of every family of
//! operations (files, state, sessions, pNFS, NFSv4.2, xattrs, callbacks), unions with default
//! arms, optional data and lists survive encode → decode unchanged, alone and inside a
//! COMPOUND decoded op by op. Every strict prefix of an encoding is refused as truncated.
use proptest::prelude::*;
use rnfs_proto::nfs4::*;
use rnfs_xdr::{
    from_bytes, to_bytes, Error, Opaque, OpaqueFixed, VarArray, Xdr, XdrList, XdrString,
};
use std::fmt::Debug;

fn bytes<const N: u32>(max: usize) -> impl Strategy<Value = Opaque<N>> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Opaque)
}

fn fixed<const N: usize>() -> impl Strategy<Value = OpaqueFixed<N>> {
    prop::collection::vec(any::<u8>(), N).prop_map(|v| {
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        OpaqueFixed(a)
    })
}

fn name() -> impl Strategy<Value = Component4> {
    bytes(40)
}

fn bitmap() -> impl Strategy<Value = Bitmap4> {
    prop::collection::vec(any::<u32>(), 0..=8).prop_map(VarArray)
}

fn stateid() -> impl Strategy<Value = Stateid4> {
    (any::<u32>(), fixed()).prop_map(|(seqid, other)| Stateid4 { seqid, other })
}

fn fattr() -> impl Strategy<Value = Fattr4> {
    (bitmap(), bytes(64)).prop_map(|(attrmask, attr_vals)| Fattr4 {
        attrmask,
        attr_vals,
    })
}

fn fh() -> impl Strategy<Value = NfsFh4> {
    bytes(128)
}

fn owner() -> impl Strategy<Value = StateOwner4> {
    (any::<u64>(), bytes(64)).prop_map(|(clientid, owner)| StateOwner4 { clientid, owner })
}

fn time() -> impl Strategy<Value = Nfstime4> {
    (any::<i64>(), any::<u32>()).prop_map(|(seconds, nseconds)| Nfstime4 { seconds, nseconds })
}

/// Error statuses that are no union's explicit case, for `Default` arms.
fn error_status() -> impl Strategy<Value = Nfsstat4> {
    prop_oneof![
        Just(Nfsstat4::Nfs4errAccess),
        Just(Nfsstat4::Nfs4errStale),
        Just(Nfsstat4::Nfs4errDelay),
        Just(Nfsstat4::Nfs4errBadStateid),
        Just(Nfsstat4::Nfs4errOpIllegal),
        Just(Nfsstat4::Nfs4errOffloadDenied),
    ]
}

fn lock_type() -> impl Strategy<Value = NfsLockType4> {
    prop_oneof![
        Just(NfsLockType4::ReadLt),
        Just(NfsLockType4::WriteLt),
        Just(NfsLockType4::WritewLt)
    ]
}

fn netloc() -> impl Strategy<Value = Netloc4> {
    prop_oneof![
        bytes(20).prop_map(Netloc4::Nl4Name),
        bytes(20).prop_map(Netloc4::Nl4Url),
        (
            prop::collection::vec(any::<u8>(), 0..8),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(n, a)| Netloc4::Nl4Netaddr(Netaddr4 {
                na_r_netid: XdrString(n),
                na_r_addr: XdrString(a)
            })),
    ]
}

fn channel_attrs() -> impl Strategy<Value = ChannelAttrs4> {
    (any::<[u32; 6]>(), prop::option::of(any::<u32>())).prop_map(|(a, ird)| ChannelAttrs4 {
        ca_headerpadsize: a[0],
        ca_maxrequestsize: a[1],
        ca_maxresponsesize: a[2],
        ca_maxresponsesize_cached: a[3],
        ca_maxoperations: a[4],
        ca_maxrequests: a[5],
        ca_rdma_ird: VarArray(ird.into_iter().collect()),
    })
}

fn createhow() -> impl Strategy<Value = Createhow4> {
    prop_oneof![
        fattr().prop_map(Createhow4::Unchecked4),
        fattr().prop_map(Createhow4::Guarded4),
        fixed().prop_map(Createhow4::Exclusive4),
        (fixed(), fattr()).prop_map(|(cva_verf, cva_attrs)| Createhow4::Exclusive41(
            Creatverfattr {
                cva_verf,
                cva_attrs
            }
        )),
    ]
}

fn open_args() -> impl Strategy<Value = Open4args> {
    let openhow = prop_oneof![
        Just(Openflag4::Default(Opentype4::Open4Nocreate)),
        createhow().prop_map(Openflag4::Open4Create),
    ];
    let claim = prop_oneof![
        name().prop_map(OpenClaim4::ClaimNull),
        Just(OpenClaim4::ClaimPrevious(
            OpenDelegationType4::OpenDelegateNone
        )),
        (stateid(), name()).prop_map(|(delegate_stateid, file)| OpenClaim4::ClaimDelegateCur(
            OpenClaimDelegateCur4 {
                delegate_stateid,
                file
            }
        )),
        Just(OpenClaim4::ClaimFh),
        Just(OpenClaim4::ClaimDelegPrevFh),
        stateid().prop_map(OpenClaim4::ClaimDelegCurFh),
    ];
    (any::<u32>(), 1..4u32, 0..4u32, owner(), openhow, claim).prop_map(
        |(seqid, share_access, share_deny, owner, openhow, claim)| Open4args {
            seqid,
            share_access,
            share_deny,
            owner,
            openhow,
            claim,
        },
    )
}

fn create_args() -> impl Strategy<Value = Create4args> {
    let objtype = prop_oneof![
        bytes(64).prop_map(Createtype4::Nf4lnk),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Createtype4::Nf4blk(Specdata4 {
            specdata1: a,
            specdata2: b
        })),
        Just(Createtype4::Nf4dir),
        Just(Createtype4::Nf4fifo),
        // The default arm: a type that is none of the cases.
        Just(Createtype4::Default(NfsFtype4::Nf4reg)),
        Just(Createtype4::Default(NfsFtype4::Nf4namedattr)),
    ];
    (objtype, name(), fattr()).prop_map(|(objtype, objname, createattrs)| Create4args {
        objtype,
        objname,
        createattrs,
    })
}

fn lock_args() -> impl Strategy<Value = Lock4args> {
    let locker = prop_oneof![
        (any::<u32>(), stateid(), any::<u32>(), owner()).prop_map(|(a, s, b, o)| Locker4::True(
            OpenToLockOwner4 {
                open_seqid: a,
                open_stateid: s,
                lock_seqid: b,
                lock_owner: o
            }
        )),
        (stateid(), any::<u32>()).prop_map(|(lock_stateid, lock_seqid)| Locker4::False(
            ExistLockOwner4 {
                lock_stateid,
                lock_seqid
            }
        )),
    ];
    (
        lock_type(),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        locker,
    )
        .prop_map(|(locktype, reclaim, offset, length, locker)| Lock4args {
            locktype,
            reclaim,
            offset,
            length,
            locker,
        })
}

fn exchange_id_args() -> impl Strategy<Value = ExchangeId4args> {
    let ops =
        (bitmap(), bitmap()).prop_map(|(spo_must_enforce, spo_must_allow)| StateProtectOps4 {
            spo_must_enforce,
            spo_must_allow,
        });
    let protect = prop_oneof![
        Just(StateProtect4A::Sp4None),
        ops.prop_map(StateProtect4A::Sp4MachCred),
    ];
    let impl_id =
        (bytes(20), bytes(20), time()).prop_map(|(nii_domain, nii_name, nii_date)| NfsImplId4 {
            nii_domain,
            nii_name,
            nii_date,
        });
    (
        fixed(),
        bytes(64),
        any::<u32>(),
        protect,
        prop::option::of(impl_id),
    )
        .prop_map(
            |(co_verifier, co_ownerid, eia_flags, eia_state_protect, imp)| ExchangeId4args {
                eia_clientowner: ClientOwner4 {
                    co_verifier,
                    co_ownerid,
                },
                eia_flags,
                eia_state_protect,
                eia_client_impl_id: VarArray(imp.into_iter().collect()),
            },
        )
}

fn create_session_args() -> impl Strategy<Value = CreateSession4args> {
    let sys = (
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..16),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(stamp, m, uid, gid)| {
            CallbackSecParms4::AuthSys(AuthsysParms {
                stamp,
                machinename: XdrString(m),
                uid,
                gid,
                gids: VarArray(vec![gid, 4]),
            })
        });
    let parms = prop::collection::vec(prop_oneof![Just(CallbackSecParms4::AuthNone), sys], 0..3);
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        channel_attrs(),
        channel_attrs(),
        parms,
    )
        .prop_map(
            |(csa_clientid, csa_sequence, csa_flags, fore, back, parms)| CreateSession4args {
                csa_clientid,
                csa_sequence,
                csa_flags,
                csa_fore_chan_attrs: fore,
                csa_back_chan_attrs: back,
                csa_cb_program: 0x4000_0000,
                csa_sec_parms: VarArray(parms),
            },
        )
}

/// Arguments of operations from every family.
fn argop() -> impl Strategy<Value = NfsArgop4> {
    let files = prop_oneof![
        any::<u32>().prop_map(|access| NfsArgop4::OpAccess(Access4args { access })),
        create_args().prop_map(NfsArgop4::OpCreate),
        bitmap().prop_map(|attr_request| NfsArgop4::OpGetattr(Getattr4args { attr_request })),
        Just(NfsArgop4::OpGetfh),
        name().prop_map(|objname| NfsArgop4::OpLookup(Lookup4args { objname })),
        fh().prop_map(|object| NfsArgop4::OpPutfh(Putfh4args { object })),
        Just(NfsArgop4::OpPutrootfh),
        (stateid(), any::<u64>(), any::<u32>()).prop_map(|(stateid, offset, count)| {
            NfsArgop4::OpRead(Read4args {
                stateid,
                offset,
                count,
            })
        }),
        (any::<u64>(), fixed(), any::<u32>(), any::<u32>(), bitmap()).prop_map(
            |(c, v, d, m, b)| {
                NfsArgop4::OpReaddir(Readdir4args {
                    cookie: c,
                    cookieverf: v,
                    dircount: d,
                    maxcount: m,
                    attr_request: b,
                })
            }
        ),
        (name(), name())
            .prop_map(|(oldname, newname)| NfsArgop4::OpRename(Rename4args { oldname, newname })),
        (stateid(), fattr()).prop_map(|(stateid, obj_attributes)| NfsArgop4::OpSetattr(
            Setattr4args {
                stateid,
                obj_attributes
            }
        )),
        (stateid(), any::<u64>(), bytes(300)).prop_map(|(stateid, offset, data)| {
            NfsArgop4::OpWrite(Write4args {
                stateid,
                offset,
                stable: StableHow4::FileSync4,
                data,
            })
        }),
        Just(NfsArgop4::OpIllegal),
    ];
    let state = prop_oneof![
        open_args().prop_map(NfsArgop4::OpOpen),
        lock_args().prop_map(NfsArgop4::OpLock),
        (any::<u32>(), stateid()).prop_map(|(seqid, open_stateid)| NfsArgop4::OpClose(
            Close4args {
                seqid,
                open_stateid
            }
        )),
        prop::collection::vec(stateid(), 0..4).prop_map(|v| NfsArgop4::OpTestStateid(
            TestStateid4args {
                ts_stateids: VarArray(v)
            }
        )),
        owner().prop_map(
            |lock_owner| NfsArgop4::OpReleaseLockowner(ReleaseLockowner4args { lock_owner })
        ),
    ];
    let sessions = prop_oneof![
        exchange_id_args().prop_map(NfsArgop4::OpExchangeId),
        create_session_args().prop_map(NfsArgop4::OpCreateSession),
        (
            fixed(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(s, q, sl, h, c)| {
                NfsArgop4::OpSequence(Sequence4args {
                    sa_sessionid: s,
                    sa_sequenceid: q,
                    sa_slotid: sl,
                    sa_highest_slotid: h,
                    sa_cachethis: c,
                })
            }),
        any::<bool>().prop_map(
            |rca_one_fs| NfsArgop4::OpReclaimComplete(ReclaimComplete4args { rca_one_fs })
        ),
        Just(NfsArgop4::OpSecinfoNoName(
            SecinfoStyle4::SecinfoStyle4Parent
        )),
    ];
    let v42 = prop_oneof![
        (
            stateid(),
            stateid(),
            any::<u64>(),
            prop::collection::vec(netloc(), 0..3)
        )
            .prop_map(|(src, dst, n, servers)| NfsArgop4::OpCopy(Copy4args {
                ca_src_stateid: src,
                ca_dst_stateid: dst,
                ca_src_offset: n,
                ca_dst_offset: n / 2,
                ca_count: n / 3,
                ca_consecutive: true,
                ca_synchronous: false,
                ca_source_server: VarArray(servers),
            })),
        (stateid(), any::<u64>()).prop_map(|(sa_stateid, sa_offset)| NfsArgop4::OpSeek(
            Seek4args {
                sa_stateid,
                sa_offset,
                sa_what: DataContent4::Nfs4ContentHole
            }
        )),
        (stateid(), any::<u64>(), any::<u32>()).prop_map(|(s, o, c)| NfsArgop4::OpLayoutget(
            Layoutget4args {
                loga_signal_layout_avail: false,
                loga_layout_type: Layouttype4::Layout4Nfsv41Files,
                loga_iomode: Layoutiomode4::Layoutiomode4Rw,
                loga_offset: o,
                loga_length: o,
                loga_minlength: 0,
                loga_stateid: s,
                loga_maxcount: c,
            }
        )),
    ];
    prop_oneof![files, state, sessions, v42]
}

fn resop() -> impl Strategy<Value = NfsResop4> {
    let denied = (any::<u64>(), any::<u64>(), lock_type(), owner()).prop_map(
        |(offset, length, locktype, owner)| Lock4denied {
            offset,
            length,
            locktype,
            owner,
        },
    );
    let entry = (any::<u64>(), name(), fattr()).prop_map(|(cookie, name, attrs)| Entry4 {
        cookie,
        name,
        attrs,
    });
    let delegation = prop_oneof![
        Just(OpenDelegation4::OpenDelegateNone),
        any::<bool>().prop_map(|b| OpenDelegation4::OpenDelegateNoneExt(
            OpenNoneDelegation4::Wnd4Contention(b)
        )),
        Just(OpenDelegation4::OpenDelegateNoneExt(
            OpenNoneDelegation4::Default(WhyNoDelegation4::Wnd4NotWanted)
        )),
    ];
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(supported, access)| NfsResop4::OpAccess(
            Access4res::Nfs4Ok(Access4resok { supported, access })
        )),
        error_status().prop_map(|s| NfsResop4::OpAccess(Access4res::Default(s))),
        stateid().prop_map(|s| NfsResop4::OpLock(Lock4res::Nfs4Ok(Lock4resok { lock_stateid: s }))),
        denied.prop_map(|d| NfsResop4::OpLock(Lock4res::Nfs4errDenied(d))),
        error_status().prop_map(|s| NfsResop4::OpLock(Lock4res::Default(s))),
        (any::<bool>(), bytes(300))
            .prop_map(|(eof, data)| NfsResop4::OpRead(Read4res::Nfs4Ok(Read4resok { eof, data }))),
        (fixed(), prop::collection::vec(entry, 0..5), any::<bool>()).prop_map(
            |(cookieverf, es, eof)| {
                NfsResop4::OpReaddir(Readdir4res::Nfs4Ok(Readdir4resok {
                    cookieverf,
                    reply: Dirlist4 {
                        entries: XdrList(es),
                        eof,
                    },
                }))
            }
        ),
        (stateid(), any::<u32>(), bitmap(), delegation).prop_map(
            |(stateid, rflags, attrset, delegation)| {
                NfsResop4::OpOpen(Open4res::Nfs4Ok(Open4resok {
                    stateid,
                    cinfo: ChangeInfo4 {
                        atomic: true,
                        before: 1,
                        after: 2,
                    },
                    rflags,
                    attrset,
                    delegation,
                }))
            }
        ),
        (fixed(), any::<[u32; 5]>()).prop_map(|(s, n)| NfsResop4::OpSequence(
            Sequence4res::Nfs4Ok(Sequence4resok {
                sr_sessionid: s,
                sr_sequenceid: n[0],
                sr_slotid: n[1],
                sr_highest_slotid: n[2],
                sr_target_highest_slotid: n[3],
                sr_status_flags: n[4],
            })
        )),
        any::<u32>()
            .prop_map(|n| NfsResop4::OpGetdeviceinfo(Getdeviceinfo4res::Nfs4errToosmall(n))),
        // SECINFO: a u32 discriminant with a default arm (flavors other than RPCSEC_GSS).
        prop::collection::vec(prop_oneof![Just(0u32), Just(1), Just(390003)], 0..4).prop_map(
            |fl| {
                let mut v: Vec<Secinfo4> = fl.into_iter().map(Secinfo4::Default).collect();
                v.push(Secinfo4::RpcsecGss(RpcsecGssInfo {
                    oid: Opaque(vec![0x2a, 0x86]),
                    qop: 0,
                    service: RpcGssSvcT::RpcGssSvcIntegrity,
                }));
                NfsResop4::OpSecinfo(Secinfo4res::Nfs4Ok(VarArray(v)))
            }
        ),
        (any::<u64>(), prop::option::of(error_status())).prop_map(|(osr_count, c)| {
            NfsResop4::OpOffloadStatus(OffloadStatus4res::Nfs4Ok(OffloadStatus4resok {
                osr_count,
                osr_complete: VarArray(c.into_iter().collect()),
            }))
        }),
        (any::<bool>(), bytes(40), any::<u64>()).prop_map(|(eof, d, off)| {
            NfsResop4::OpReadPlus(ReadPlus4res::Nfs4Ok(ReadPlusRes4 {
                rpr_eof: eof,
                rpr_contents: VarArray(vec![
                    ReadPlusContent::Nfs4ContentData(Data4 {
                        d_offset: off,
                        d_data: d,
                    }),
                    ReadPlusContent::Nfs4ContentHole(DataInfo4 {
                        di_offset: off,
                        di_length: 4096,
                    }),
                ]),
            }))
        }),
        Just(NfsResop4::OpIllegal(Illegal4res {
            status: Nfsstat4::Nfs4errOpIllegal
        })),
    ]
}

fn cb_argop() -> impl Strategy<Value = NfsCbArgop4> {
    let referring =
        (fixed(), any::<u32>(), any::<u32>()).prop_map(|(s, q, sl)| ReferringCallList4 {
            rcl_sessionid: s,
            rcl_referring_calls: VarArray(vec![ReferringCall4 {
                rc_sequenceid: q,
                rc_slotid: sl,
            }]),
        });
    prop_oneof![
        (
            fixed(),
            any::<u32>(),
            prop::collection::vec(referring, 0..2)
        )
            .prop_map(|(s, q, r)| {
                NfsCbArgop4::OpCbSequence(CbSequence4args {
                    csa_sessionid: s,
                    csa_sequenceid: q,
                    csa_slotid: 0,
                    csa_highest_slotid: 0,
                    csa_cachethis: false,
                    csa_referring_call_lists: VarArray(r),
                })
            }),
        (stateid(), any::<bool>(), fh()).prop_map(|(stateid, truncate, fh)| {
            NfsCbArgop4::OpCbRecall(CbRecall4args {
                stateid,
                truncate,
                fh,
            })
        }),
        (fh(), stateid(), error_status(), any::<u64>()).prop_map(|(coa_fh, coa_stateid, st, n)| {
            NfsCbArgop4::OpCbOffload(CbOffload4args {
                coa_fh,
                coa_stateid,
                // The default arm with a body.
                coa_offload_info: OffloadInfo4::Default(st, n),
            })
        }),
        Just(NfsCbArgop4::OpCbIllegal),
    ]
}

fn roundtrip<T: Xdr + PartialEq + Debug>(v: &T) -> std::result::Result<Vec<u8>, TestCaseError> {
    let b = to_bytes(v);
    prop_assert_eq!(
        &from_bytes::<T>(&b).map_err(|e| TestCaseError::fail(format!("{e}")))?,
        v
    );
    Ok(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn args_roundtrip(op in argop()) {
        let b = roundtrip(&op)?;
        prop_assert_eq!(op.discriminant(), u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }

    #[test]
    fn results_roundtrip(op in resop()) {
        roundtrip(&op)?;
    }

    #[test]
    fn cb_args_roundtrip(op in cb_argop()) {
        roundtrip(&op)?;
    }

    #[test]
    fn compound_decodes_op_by_op(ops in prop::collection::vec(argop(), 0..6), tag in bytes(16), mv in 0..3u32) {
        let c = Compound4args { tag, minorversion: mv, argarray: VarArray(ops) };
        let b = roundtrip(&c)?;
        let (h, it) = decode_compound_args(&b, &CompoundLimits::default()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&h.tag, &c.tag);
        prop_assert_eq!(h.minorversion, mv);
        let got: Vec<NfsArgop4> = it.collect::<rnfs_xdr::Result<_>>().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&got, &c.argarray.0);
    }

    #[test]
    fn compound_results_and_callbacks_roundtrip(
        res in prop::collection::vec(resop(), 0..5),
        cbs in prop::collection::vec(cb_argop(), 0..4),
    ) {
        let c = Compound4res { status: Nfsstat4::Nfs4Ok, tag: Opaque(b"x".to_vec()), resarray: VarArray(res) };
        let b = roundtrip(&c)?;
        let (_, it) = decode_compound_res(&b, &CompoundLimits::default()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(it.count(), c.resarray.0.len());
        let cb = CbCompound4args { tag: Opaque::default(), minorversion: 1, callback_ident: 0, argarray: VarArray(cbs) };
        let b = roundtrip(&cb)?;
        let (h, it) = decode_cb_compound_args(&b, &CompoundLimits::default()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(h.op_count as usize, cb.argarray.0.len());
        let got: Vec<NfsCbArgop4> = it.collect::<rnfs_xdr::Result<_>>().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&got, &cb.argarray.0);
    }

    #[test]
    fn every_strict_prefix_is_truncated(op in argop()) {
        let c = Compound4args { tag: Opaque::default(), minorversion: 1, argarray: VarArray(vec![op]) };
        let b = to_bytes(&c);
        for cut in 0..b.len() {
            match from_bytes::<Compound4args>(&b[..cut]) {
                Err(Error::Truncated { .. }) => {}
                other => prop_assert!(false, "prefix of {} bytes of {}: {:?}", cut, b.len(), other),
            }
        }
    }
}
