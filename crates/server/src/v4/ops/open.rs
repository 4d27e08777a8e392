//! OPEN, OPEN_DOWNGRADE and CLOSE (RFC 8881 18.16, 18.18, 18.2): the file side (lookup,
//! create, permission) here, the share reservations in [`crate::v4::state::opens`].
//!
//! Claims: CLAIM_NULL (a name in the current directory) and CLAIM_FH (the current file)
//! open anew and answer GRACE during grace; CLAIM_PREVIOUS reclaims an open held before a
//! restart, only in grace and by a client the hooks allow (NO_GRACE otherwise), and only
//! of an open without a delegation (this server never granted one: RECLAIM_BAD).
//! CLAIM_DELEGATE_CUR and CLAIM_DELEG_CUR_FH open under a delegation the client holds:
//! no delegation is ever granted, so the stateid they carry names none: BAD_STATEID (as
//! knfsd, whose delegation lookup fails the same way). CLAIM_DELEGATE_PREV and
//! CLAIM_DELEG_PREV_FH reclaim delegations across a client restart, which a server that
//! does not keep delegations in stable storage does not support: NOTSUPP (RFC 8881
//! 18.16.3, knfsd too).
//!
//! Creation: UNCHECKED4 opens an existing file (applying only the size), GUARDED4 fails
//! with EXIST, EXCLUSIVE4 and EXCLUSIVE4_1 create once per verifier: the backend stores
//! the verifier with the file (in its times on disk, as knfsd) and a retry with the same
//! verifier opens the file it created; EXCLUSIVE4_1 then sets its attributes, which may
//! only be those of `suppattr_exclcreat`. The delegation is always none: NFSv4.1 clients
//! that asked for one through the "want" bits get OPEN_DELEGATE_NONE_EXT with the reason.
use super::{
    check_not_grace, check_reclaim, lerr, put_cinfo, put_stateid, state_key, stateid, with_locking,
};
use crate::v4::attrs::{self, Bitmap, Fattr};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::{check_component, ExportScope, Place};
use crate::v4::state::opens::OpenRequest;
use crate::v4::state::share::{ShareAccess, ShareDeny};
use rnfs_proto::nfs4::{
    Close4args, Createhow4, Fattr4, Open4args, OpenClaim4, OpenDelegationType4, OpenDowngrade4args,
    Openflag4,
};
use rnfs_vfs::{Attr, CreateMode, FileKey, FileType, SetAttr};
use rnfs_xdr::Writer;

/// `OPEN4_RESULT_LOCKTYPE_POSIX`: byte-range locks have POSIX semantics.
const RESULT_LOCKTYPE_POSIX: u32 = 4;
/// The "want" bits of `share_access` (RFC 8881 18.16.3): the delegation wanted, and two
/// flags.
const WANT_MASK: u32 = 0xff00;
const WANT_FLAGS: u32 = 0x3_0000;
const WANT_NO_DELEG: u32 = 0x0400;
const WANT_CANCEL: u32 = 0x0500;
/// `why_no_delegation4` values used.
const WND4_NOT_WANTED: u32 = 0;
const WND4_RESOURCE: u32 = 2;
const WND4_CANCELLED: u32 = 7;
/// `OPEN_DELEGATE_NONE` and `OPEN_DELEGATE_NONE_EXT`.
const DELEGATE_NONE: u32 = 0;
const DELEGATE_NONE_EXT: u32 = 3;
/// The ACCESS bits an open needs: READ for read access, MODIFY for write access.
const ACCESS_READ: u32 = 0x01;
const ACCESS_MODIFY: u32 = 0x04;

/// The share modes of an OPEN or OPEN_DOWNGRADE and the delegation wanted (INVAL for
/// modes outside the protocol's, or "want" bits in NFSv4.0).
fn modes(c: &Compound<'_>, access: u32, deny: u32) -> R4<(ShareAccess, ShareDeny, u32)> {
    let want = access & (WANT_MASK | WANT_FLAGS);
    if access & !(0xff | WANT_MASK | WANT_FLAGS) != 0
        || (want != 0 && c.minor == 0)
        || (access & WANT_MASK) > WANT_CANCEL
    {
        return Err(Nfs4Error::Inval);
    }
    let a = ShareAccess::from_bits(access & 0xff).ok_or(Nfs4Error::Inval)?;
    let d = ShareDeny::from_bits(deny).ok_or(Nfs4Error::Inval)?;
    Ok((a, d, want))
}

/// What opening found: the file, its attributes, whether this OPEN created it, the
/// directory's change attribute before and after, the attributes set.
struct Found {
    key: FileKey,
    attr: Attr,
    created: bool,
    cinfo: (u64, u64),
    attrset: Bitmap,
    /// UNCHECKED4's size, to set once the open is granted.
    truncate: Option<u64>,
}

/// The attributes a create carries, decoded.
fn create_attrs(c: &Compound<'_>, f: &Fattr4) -> R4<(Bitmap, SetAttr)> {
    let f = Fattr::from_parts(&f.attrmask.0, &f.attr_vals.0);
    attrs::decode_settable(&f, c.minor, c.ctx.owners)
}

/// CLAIM_NULL: `name` in directory `dk`, created as `how` says.
fn by_name(
    c: &Compound<'_>,
    x: &ExportScope,
    dk: &FileKey,
    name: &[u8],
    how: &Openflag4,
) -> R4<Found> {
    let fs = &x.export.fs;
    check_component(name, fs.limits().name_max)?;
    let before = fs.getattr(&x.ctx, dk)?;
    if before.ftype != FileType::Directory {
        return Err(Nfs4Error::NotDir);
    }
    let Openflag4::Open4Create(how) = how else {
        let (key, attr) = fs.lookup(&x.ctx, dk, name)?;
        return Ok(Found {
            key,
            attr,
            created: false,
            cinfo: (before.change, before.change),
            attrset: Bitmap::default(),
            truncate: None,
        });
    };
    if !x.rw {
        return Err(Nfs4Error::Rofs);
    }
    let (mode, attrset, after_set) = match how {
        Createhow4::Unchecked4(f) => {
            let (mask, set) = create_attrs(c, f)?;
            // The size (O_TRUNC) is applied once the share reservation is granted: a
            // conflicting OPEN must not truncate someone else's file.
            let existed = fs.lookup(&x.ctx, dk, name).is_ok();
            let no_size = SetAttr { size: None, ..set };
            // An existing file is opened: of the attributes, only a size of 0 applies.
            let set_mask = if existed && set.size == Some(0) {
                mask.and(Bitmap::of(&[attrs::num::SIZE]))
            } else if existed {
                Bitmap::default()
            } else {
                mask
            };
            let mut f = create_now(
                x,
                dk,
                name,
                CreateMode::Unchecked(no_size),
                set_mask,
                None,
                &before,
            )?;
            f.created = !existed;
            // An existing file is truncated by a size of 0 (O_TRUNC); any other size is
            // ignored, as the other attributes are (knfsd too; pynfs 4.0 OPEN2).
            f.truncate = set.size.filter(|s| !existed || *s == 0);
            return Ok(f);
        }
        Createhow4::Guarded4(f) => {
            let (mask, set) = create_attrs(c, f)?;
            (CreateMode::Guarded(set), mask, None)
        }
        Createhow4::Exclusive4(v) => (CreateMode::Exclusive(v.0), Bitmap::default(), None),
        Createhow4::Exclusive41(cva) => {
            if c.minor == 0 {
                return Err(Nfs4Error::Inval);
            }
            let (mask, set) = create_attrs(c, &cva.cva_attrs)?;
            if !mask.minus(attrs::EXCLCREAT).is_empty() {
                return Err(Nfs4Error::Inval);
            }
            (CreateMode::Exclusive(cva.cva_verf.0), mask, Some(set))
        }
    };
    create_now(x, dk, name, mode, attrset, after_set, &before)
}

/// Creates (or opens, per `mode`) `name`, then sets `after_set` on it.
fn create_now(
    x: &ExportScope,
    dk: &FileKey,
    name: &[u8],
    mode: CreateMode,
    attrset: Bitmap,
    after_set: Option<SetAttr>,
    before: &Attr,
) -> R4<Found> {
    let fs = &x.export.fs;
    let (key, mut attr) = fs.create(&x.ctx, dk, name, &mode)?;
    if let Some(set) = after_set.filter(|s| !s.is_empty()) {
        attr = fs.setattr(&x.ctx, &key, &set, None)?;
    }
    let after = fs.getattr(&x.ctx, dk)?;
    Ok(Found {
        key,
        attr,
        // GUARDED4 and EXCLUSIVE4 succeed only for a file they created (an exclusive
        // retry: created by the same client, its verifier says); UNCHECKED4 says itself.
        created: true,
        cinfo: (before.change, after.change),
        attrset,
        truncate: None,
    })
}

/// The file must be a regular file the caller may open as asked (a file this OPEN
/// created is the caller's, whatever its mode).
fn check_open_access(x: &ExportScope, f: &Found, write: bool, read: bool) -> R4<()> {
    match f.attr.ftype {
        FileType::Regular => {}
        FileType::Directory => return Err(Nfs4Error::IsDir),
        FileType::Symlink => return Err(Nfs4Error::Symlink),
        _ => return Err(Nfs4Error::WrongType),
    }
    if write && !x.rw {
        return Err(Nfs4Error::Rofs);
    }
    if f.created {
        return Ok(());
    }
    let need = if read { ACCESS_READ } else { 0 } | if write { ACCESS_MODIFY } else { 0 };
    if x.export.fs.access(&x.ctx, &f.key, need)? & need != need {
        return Err(Nfs4Error::Access);
    }
    Ok(())
}

/// OPEN (RFC 8881 18.16).
pub fn open(c: &mut Compound<'_>, a: &Open4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let (access, deny, want) = modes(c, a.share_access, a.share_deny)?;
    let mut reclaim = false;
    let (x, found) = match &a.claim {
        OpenClaim4::ClaimNull(name) => {
            check_not_grace(c)?;
            let (export, dk) = match c.fh()? {
                Place::Pseudo(_) => {
                    // Every name in the pseudo file system is a directory.
                    if matches!(a.openhow, Openflag4::Open4Create(_)) {
                        return Err(Nfs4Error::Rofs);
                    }
                    c.ctx.pseudo.lookup(&c.ctx.caller, c.fh()?, &name.0)?;
                    return Err(Nfs4Error::IsDir);
                }
                Place::Export { export, key } => (export.clone(), key.clone()),
            };
            let x = c.ctx.pseudo.scope(&c.ctx.caller, &export)?;
            let f = by_name(c, &x, &dk, &name.0, &a.openhow)?;
            (x, f)
        }
        OpenClaim4::ClaimFh | OpenClaim4::ClaimPrevious(_) => {
            if let OpenClaim4::ClaimPrevious(d) = &a.claim {
                check_reclaim(c)?;
                if *d != OpenDelegationType4::OpenDelegateNone {
                    return Err(Nfs4Error::ReclaimBad);
                }
                reclaim = true;
            } else {
                check_not_grace(c)?;
            }
            if matches!(a.openhow, Openflag4::Open4Create(_)) {
                return Err(Nfs4Error::Inval);
            }
            let (export, key) = match c.fh()? {
                Place::Pseudo(_) => return Err(Nfs4Error::IsDir),
                Place::Export { export, key } => (export.clone(), key.clone()),
            };
            let x = c.ctx.pseudo.scope(&c.ctx.caller, &export)?;
            let attr = x.export.fs.getattr(&x.ctx, &key)?;
            let f = Found {
                key,
                attr,
                created: false,
                cinfo: (0, 0),
                attrset: Bitmap::default(),
                truncate: None,
            };
            (x, f)
        }
        OpenClaim4::ClaimDelegateCur(_) | OpenClaim4::ClaimDelegCurFh(_) => {
            return Err(Nfs4Error::BadStateid)
        }
        OpenClaim4::ClaimDelegatePrev(_) | OpenClaim4::ClaimDelegPrevFh => {
            return Err(Nfs4Error::NotSupp)
        }
    };
    check_open_access(&x, &found, access.writes(), access.reads())?;
    if found.truncate.is_some() && !access.writes() {
        // knfsd too: a size needs write access.
        return Err(Nfs4Error::Inval);
    }
    let req = OpenRequest {
        client,
        owner: a.owner.owner.0.clone(),
        file: state_key(&x, &found.key),
        access,
        deny,
        reclaim,
    };
    let opened = with_locking(c, |l| l.open(&req)).map_err(|e| lerr(c, &e))?;
    if let Some(size) = found.truncate {
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        if let Err(e) = x.export.fs.setattr(&x.ctx, &found.key, &set, None) {
            // The open this OPEN made goes with it (an upgrade stays: the owner's
            // earlier OPENs hold it).
            if !opened.upgraded {
                let _ = c
                    .ctx
                    .state
                    .locking
                    .lock()
                    .close(client, &opened.stateid, &req.file);
            }
            return Err(e.into());
        }
    }
    put_stateid(w, &opened.stateid);
    put_cinfo(w, found.cinfo.0, found.cinfo.1);
    w.u32(RESULT_LOCKTYPE_POSIX);
    found.attrset.encode(w);
    match want & WANT_MASK {
        0 => w.u32(DELEGATE_NONE),
        WANT_NO_DELEG => {
            w.u32(DELEGATE_NONE_EXT);
            w.u32(WND4_NOT_WANTED);
        }
        WANT_CANCEL => {
            w.u32(DELEGATE_NONE_EXT);
            w.u32(WND4_CANCELLED);
        }
        // A delegation wanted: none is ever granted; the server will not signal.
        _ => {
            w.u32(DELEGATE_NONE_EXT);
            w.u32(WND4_RESOURCE);
            w.bool(false);
        }
    }
    c.set_fh(Place::Export {
        export: x.export.clone(),
        key: found.key,
    });
    c.current_stateid = Some(opened.stateid);
    Ok(())
}

/// The current file as the locking state knows it.
pub(super) fn current_file(c: &Compound<'_>) -> R4<FileKey> {
    match c.fh()? {
        Place::Pseudo(_) => Err(Nfs4Error::BadStateid),
        Place::Export { export, key } => {
            let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
            Ok(state_key(&x, key))
        }
    }
}

/// OPEN_DOWNGRADE (RFC 8881 18.18).
pub fn open_downgrade(c: &mut Compound<'_>, a: &OpenDowngrade4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let sid = c.stateid(stateid(&a.open_stateid))?;
    let file = current_file(c)?;
    let (access, deny, _) = modes(c, a.share_access & !(WANT_MASK | WANT_FLAGS), a.share_deny)?;
    let s = c
        .ctx
        .state
        .locking
        .lock()
        .open_downgrade(client, &sid, &file, access, deny)
        .map_err(|e| lerr(c, &e))?;
    put_stateid(w, &s);
    c.current_stateid = Some(s);
    Ok(())
}

/// CLOSE (RFC 8881 18.2).
pub fn close(c: &mut Compound<'_>, a: &Close4args, w: &mut Writer) -> R4<()> {
    let client = c.client()?;
    let sid = c.stateid(stateid(&a.open_stateid))?;
    let file = current_file(c)?;
    let s = c
        .ctx
        .state
        .locking
        .lock()
        .close(client, &sid, &file)
        .map_err(|e| lerr(c, &e))?;
    put_stateid(w, &s);
    c.current_stateid = Some(s);
    Ok(())
}
