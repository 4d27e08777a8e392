//! OPEN, OPEN_DOWNGRADE and CLOSE (RFC 8881 18.16, 18.18, 18.2): the file side (lookup,
//! create, permission) here, the share reservations in [`crate::v4::state::opens`].
//!
//! Claims: CLAIM_NULL (a name in the current directory) and CLAIM_FH (the current file)
//! open anew and answer GRACE during grace; CLAIM_PREVIOUS reclaims an open held before a
//! restart, only in grace and by a client the hooks allow (NO_GRACE otherwise), with the
//! delegation it held then if it says so (granted again, see [`reclaimed`]).
//! CLAIM_DELEGATE_CUR and CLAIM_DELEG_CUR_FH open under a delegation the client holds
//! (the stateid must name the client's delegation on that file: BAD_STATEID otherwise,
//! DELEG_REVOKED for a revoked one), in grace too. CLAIM_DELEGATE_PREV and
//! CLAIM_DELEG_PREV_FH reclaim delegations across a client restart, which a server that
//! does not keep delegations in stable storage does not support: NOTSUPP (RFC 8881
//! 18.16.3, knfsd too).
//!
//! Delegations (RFC 8881 10.4): every OPEN first runs the conflict check (other clients'
//! delegations in the way are recalled and the OPEN answers DELAY); once the open is
//! granted, a delegation is offered by the policy of [`crate::v4::state::delegations`]: a
//! write delegation for an open with write access, a read one otherwise, shaped by the
//! NFSv4.1 "want" bits; refused when asked for, OPEN_DELEGATE_NONE_EXT says why.
//!
//! Creation: UNCHECKED4 opens an existing file (applying only the size), GUARDED4 fails
//! with EXIST, EXCLUSIVE4 and EXCLUSIVE4_1 create once per verifier: the backend stores
//! the verifier with the file (in its times on disk, as knfsd) and a retry with the same
//! verifier opens the file it created; EXCLUSIVE4_1 then sets its attributes, which may
//! only be those of `suppattr_exclcreat`. An OPEN that is refused leaves no file behind:
//! what can be checked before creating (the size without write access, the client's and
//! the server's state limits) is checked first, and a file this OPEN created (it did not
//! exist before) is removed again when a later step refuses; a file that existed is never
//! removed. Delegations: see [`delegation`] (granted by the policy of
//! [`crate::v4::state::delegations`]; NONE_EXT with the reason when asked for and refused).
//!
//! Removal while open: in NFSv4.1 OPEN sets `OPEN4_RESULT_PRESERVE_UNLINKED` when the
//! backend keeps the file for as long as state is held on it ([`rnfs_vfs::Backend::keep_open`],
//! held through [`crate::v4::compound::StateHooks::keep_unlinked`], let go at the last CLOSE
//! or by the laundromat), so the client removes an open file instead of renaming it.
use super::{
    check_not_grace, check_reclaim, lerr, put_cinfo, put_stateid, state_key, stateid, with_locking,
};
use crate::v4::attrs::{self, Bitmap, Fattr};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::{check_component, ExportScope, Place};
use crate::v4::state::delegations::{Access, Caller, DelegKind};
use crate::v4::state::ids::{ClientId, Stateid};
use crate::v4::state::opens::{OpenRequest, Opened};
use crate::v4::state::share::{ShareAccess, ShareDeny};
use rnfs_proto::nfs4::{
    Close4args, Createhow4, Fattr4, Open4args, OpenClaim4, OpenDelegationType4, OpenDowngrade4args,
    Openflag4,
};
use rnfs_vfs::{Attr, CreateMode, FileKey, FileType, SetAttr};
use rnfs_xdr::Writer;

/// `OPEN4_RESULT_LOCKTYPE_POSIX`: byte-range locks have POSIX semantics.
const RESULT_LOCKTYPE_POSIX: u32 = 4;
/// `OPEN4_RESULT_PRESERVE_UNLINKED` (NFSv4.1): the file stays usable through this open
/// after its last name is removed.
const RESULT_PRESERVE_UNLINKED: u32 = 8;
/// The "want" bits of `share_access` (RFC 8881 18.16.3): the delegation wanted, and
/// flags: SIGNAL_DELEG_WHEN_RESRC_AVAIL and PUSH_DELEG_WHEN_UNCONTENDED (RFC 8881), and
/// RFC 9754's WANT_DELEG_TIMESTAMPS and WANT_OPEN_XOR_DELEGATION. All four are hints the
/// server may leave unmet: it signals and pushes nothing, delegates no timestamps and
/// always returns an open stateid (`open_arguments` advertises none of them).
const WANT_MASK: u32 = 0xff00;
const WANT_FLAGS: u32 = 0x3_0000 | 0x30_0000;
const WANT_READ_DELEG: u32 = 0x0100;
const WANT_WRITE_DELEG: u32 = 0x0200;
pub(super) const WANT_NO_DELEG: u32 = 0x0400;
pub(super) const WANT_CANCEL: u32 = 0x0500;
/// `why_no_delegation4` values used.
pub(super) const WND4_NOT_WANTED: u32 = 0;
const WND4_CONTENTION: u32 = 1;
const WND4_RESOURCE: u32 = 2;
const WND4_NOT_SUPP_UPGRADE: u32 = 5;
pub(super) const WND4_CANCELLED: u32 = 7;
/// `open_delegation_type4` values.
const DELEGATE_NONE: u32 = 0;
const DELEGATE_READ: u32 = 1;
const DELEGATE_WRITE: u32 = 2;
const DELEGATE_NONE_EXT: u32 = 3;
/// `limit_by4`: `NFS_LIMIT_SIZE`.
const NFS_LIMIT_SIZE: u32 = 1;
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
    /// This OPEN made the file (it did not exist before): removed again if the OPEN is
    /// refused after all ([`undo_create`]).
    new: bool,
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

/// CLAIM_NULL: `name` in directory `dk`, created as `how` says, for `owner` wanting
/// write access or not (`writes`).
fn by_name(
    c: &Compound<'_>,
    x: &ExportScope,
    dk: &FileKey,
    name: &[u8],
    how: &Openflag4,
    owner: &[u8],
    writes: bool,
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
            new: false,
            cinfo: (before.change, before.change),
            attrset: Bitmap::default(),
            truncate: None,
        });
    };
    if !x.rw {
        return Err(Nfs4Error::Rofs);
    }
    // Whether the file is there already: if not, this OPEN is to create it, and what
    // would refuse the open afterwards is checked first (a file that is there is never
    // removed, so it needs no such care).
    let existed = fs.lookup(&x.ctx, dk, name).is_ok();
    if !existed {
        let client = c.client()?;
        with_locking(c, |l| l.check_new_open(client, owner)).map_err(|e| lerr(c, &e))?;
    }
    let (mode, attrset, after_set) = match how {
        Createhow4::Unchecked4(f) => {
            let (mask, set) = create_attrs(c, f)?;
            if set.size.is_some() && !writes {
                // knfsd too: a size needs write access.
                return Err(Nfs4Error::Inval);
            }
            // The size (O_TRUNC) is applied once the share reservation is granted: a
            // conflicting OPEN must not truncate someone else's file.
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
                !existed,
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
    // GUARDED4 fails on a file that exists; an EXCLUSIVE4 retry opens the file the
    // first try created (not new to this OPEN).
    create_now(x, dk, name, mode, attrset, after_set, &before, !existed)
}

/// Creates (or opens, per `mode`) `name`, then sets `after_set` on it; `new`: the file
/// did not exist before, and is removed again if a step after its creation fails.
#[allow(clippy::too_many_arguments)]
fn create_now(
    x: &ExportScope,
    dk: &FileKey,
    name: &[u8],
    mode: CreateMode,
    attrset: Bitmap,
    after_set: Option<SetAttr>,
    before: &Attr,
    new: bool,
) -> R4<Found> {
    let fs = &x.export.fs;
    let (key, attr) = fs.create(&x.ctx, dk, name, &mode)?;
    let then = || -> R4<(Attr, Attr)> {
        let attr = match after_set.filter(|s| !s.is_empty()) {
            Some(set) => fs.setattr(&x.ctx, &key, &set, None)?,
            None => attr,
        };
        Ok((attr, fs.getattr(&x.ctx, dk)?))
    };
    let (attr, after) = match then() {
        Ok(v) => v,
        Err(e) => {
            if new {
                undo_create(x, dk, name, &key);
            }
            return Err(e);
        }
    };
    Ok(Found {
        key,
        attr,
        // GUARDED4 and EXCLUSIVE4 succeed only for a file they created (an exclusive
        // retry: created by the same client, its verifier says); UNCHECKED4 says itself.
        created: true,
        new,
        cinfo: (before.change, after.change),
        attrset,
        truncate: None,
    })
}

/// Removes `name` from `dk` again, if it still names `key`: the file an OPEN created
/// before it was refused. Best effort: a failure is logged, the OPEN's error stands.
fn undo_create(x: &ExportScope, dk: &FileKey, name: &[u8], key: &FileKey) {
    let fs = &x.export.fs;
    let same = matches!(fs.lookup(&x.ctx, dk, name), Ok((k, _)) if k == *key);
    if !same {
        return;
    }
    if let Err(e) = fs.remove(&x.ctx, dk, name) {
        tracing::warn!(error = ?e, "could not remove the file of a refused OPEN");
    }
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
    // CLAIM_PREVIOUS of an open that held a delegation: the kind reclaimed.
    let mut reclaim_deleg = None;
    // For a file this OPEN creates: where, to remove it if the OPEN is refused after all.
    let mut made = None;
    // The delegation stateid of a CLAIM_DELEGATE_CUR / CLAIM_DELEG_CUR_FH.
    let mut under_deleg = None;
    let (x, found) = match &a.claim {
        OpenClaim4::ClaimNull(_) | OpenClaim4::ClaimDelegateCur(_) => {
            let name = match &a.claim {
                OpenClaim4::ClaimDelegateCur(d) => {
                    // Opening under a delegation held is allowed in grace (RFC 8881
                    // 18.16.3); the file is the one named.
                    under_deleg = Some(c.stateid(stateid(&d.delegate_stateid))?);
                    if matches!(a.openhow, Openflag4::Open4Create(_)) {
                        return Err(Nfs4Error::Inval);
                    }
                    &d.file
                }
                OpenClaim4::ClaimNull(name) => {
                    check_not_grace(c)?;
                    name
                }
                _ => return Err(Nfs4Error::ServerFault),
            };
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
            let f = by_name(
                c,
                &x,
                &dk,
                &name.0,
                &a.openhow,
                &a.owner.owner.0,
                access.writes(),
            )?;
            if f.new {
                made = Some((dk, name.0.clone()));
            }
            (x, f)
        }
        OpenClaim4::ClaimFh | OpenClaim4::ClaimPrevious(_) | OpenClaim4::ClaimDelegCurFh(_) => {
            match &a.claim {
                OpenClaim4::ClaimPrevious(d) => {
                    check_reclaim(c)?;
                    // The delegation the client held before the restart, granted again
                    // (see `reclaimed`).
                    reclaim_deleg = match d {
                        OpenDelegationType4::OpenDelegateNone => None,
                        OpenDelegationType4::OpenDelegateRead => Some(DelegKind::Read),
                        OpenDelegationType4::OpenDelegateWrite => Some(DelegKind::Write),
                        OpenDelegationType4::OpenDelegateNoneExt => return Err(Nfs4Error::Inval),
                    };
                    reclaim = true;
                }
                OpenClaim4::ClaimDelegCurFh(sid) => {
                    under_deleg = Some(c.stateid(stateid(sid))?);
                }
                _ => check_not_grace(c)?,
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
                new: false,
                cinfo: (0, 0),
                attrset: Bitmap::default(),
                truncate: None,
            };
            (x, f)
        }
        // Delegations are not kept across a server restart, so there is none to reclaim
        // after a client restart either (RFC 8881 18.16.3 makes these claims optional;
        // knfsd answers NOTSUPP too).
        OpenClaim4::ClaimDelegatePrev(_) | OpenClaim4::ClaimDelegPrevFh => {
            return Err(Nfs4Error::NotSupp)
        }
    };
    let req = OpenRequest {
        client,
        owner: a.owner.owner.0.clone(),
        file: state_key(&x, &found.key),
        access,
        deny,
        reclaim,
    };
    let opened = match grant(c, &x, &found, &req, under_deleg.as_ref()) {
        Ok(o) => o,
        Err(e) => {
            if let Some((dk, name)) = &made {
                undo_create(&x, dk, name, &found.key);
            }
            return Err(e);
        }
    };
    // While open, the file outlives its last name where the backend can keep it (NFSv4.1:
    // minor version 0 has no such flag, and its clients rename an open file they remove).
    let hooks = c.ctx.state.hooks;
    let kept = c.minor >= 1
        && hooks.keep_unlinked(x.export.id, &req.file, &mut || {
            x.export.fs.keep_open(&found.key).ok().flatten()
        });
    let place = Place::Export {
        export: x.export.clone(),
        key: found.key,
    };
    let deleg = if let Some(kind) = reclaim_deleg {
        reclaimed(c, client, &req.file, &place, kind)
    } else if reclaim || under_deleg.is_some() {
        Deleg::None(None)
    } else {
        delegation(c, client, &req.file, &place, access.writes(), want)
    };
    put_stateid(w, &opened.stateid);
    put_cinfo(w, found.cinfo.0, found.cinfo.1);
    w.u32(if kept {
        RESULT_LOCKTYPE_POSIX | RESULT_PRESERVE_UNLINKED
    } else {
        RESULT_LOCKTYPE_POSIX
    });
    found.attrset.encode(w);
    put_delegation(w, &deleg);
    c.set_fh(place);
    c.current_stateid = Some(opened.stateid);
    Ok(())
}

/// The rest of OPEN once the file is found (or created): the access check, the share
/// reservation and the open stateid, then UNCHECKED4's size.
fn grant(
    c: &Compound<'_>,
    x: &ExportScope,
    found: &Found,
    req: &OpenRequest,
    under_deleg: Option<&Stateid>,
) -> R4<Opened> {
    check_open_access(x, found, req.access.writes(), req.access.reads())?;
    let now = c.ctx.state.now;
    let conflict = if req.access.writes() {
        Access::Write
    } else {
        Access::Read
    };
    let truncate = found.truncate == Some(0);
    let opened = with_locking(c, |l| {
        if let Some(sid) = under_deleg {
            // The delegation must be the client's, on this file (BAD_STATEID otherwise).
            l.check_delegation(req.client, sid, &req.file)?;
        }
        // Other clients' delegations in the way are recalled; this OPEN answers DELAY.
        l.deleg_conflict(
            Caller::Client(req.client),
            &req.file,
            conflict,
            truncate,
            now,
        )?;
        l.open(req)
    })
    .map_err(|e| lerr(c, &e))?;
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
                    .close(req.client, &opened.stateid, &req.file);
            }
            return Err(e.into());
        }
    }
    Ok(opened)
}

/// What OPEN (or WANT_DELEGATION) answers of the delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deleg {
    /// None: `OPEN_DELEGATE_NONE`, or `OPEN_DELEGATE_NONE_EXT` with the reason when the
    /// client asked (NFSv4.1 want bits).
    None(Option<u32>),
    /// A delegation granted; `true`: pre-recalled (a reclaim the server wants back at
    /// once, the `recall` flag of `open_read_delegation4`).
    Granted(Stateid, DelegKind, bool),
}

/// The delegation for an open just granted, by the want bits and the policy: a write
/// delegation for an open with write access (when wanted), else a read one.
pub(super) fn delegation(
    c: &Compound<'_>,
    client: ClientId,
    file: &FileKey,
    place: &Place,
    writes: bool,
    want: u32,
) -> Deleg {
    let asked = want & WANT_MASK;
    let kind = match asked {
        WANT_NO_DELEG => return Deleg::None(Some(WND4_NOT_WANTED)),
        WANT_CANCEL => return Deleg::None(Some(WND4_CANCELLED)),
        WANT_READ_DELEG => DelegKind::Read,
        WANT_WRITE_DELEG if !writes => return Deleg::None(Some(WND4_NOT_SUPP_UPGRADE)),
        _ if writes => DelegKind::Write,
        _ => DelegKind::Read,
    };
    let st = &c.ctx.state;
    let cb_ok = st.hooks.callback_ok(client);
    let fh = c.ctx.pseudo.fh(place).0;
    let r = st
        .locking
        .lock()
        .grant_delegation(client, file, fh, kind, cb_ok, false, st.now);
    match r {
        Ok((sid, kind)) => {
            granted(c, file, place, &sid, kind);
            Deleg::Granted(sid, kind, false)
        }
        // No preference expressed: plain OPEN_DELEGATE_NONE.
        Err(_) if asked == 0 => Deleg::None(None),
        Err(why) => Deleg::None(Some(why.wnd())),
    }
}

/// What follows a delegation's grant, by OPEN or by a reclaim: for a write delegation,
/// the change CB_GETATTR replies are compared with (D8; the file was just opened, so one
/// stat, write grants only); and a watch of the file for changes made beside NFS (see
/// [`crate::v4::outside`]), through the backend's descriptor of it.
fn granted(c: &Compound<'_>, file: &FileKey, place: &Place, sid: &Stateid, kind: DelegKind) {
    if kind == DelegKind::Write {
        if let Ok(a) = c.ctx.pseudo.attrs(&c.ctx.caller, place) {
            c.ctx
                .state
                .locking
                .lock()
                .delegations_mut()
                .set_cb_baseline(sid, a.attr.change);
        }
    }
    if let Place::Export { export, key } = place {
        c.ctx
            .state
            .hooks
            .watch_delegated(file, &mut || export.fs.watch_fd(key).ok().flatten());
    }
}

/// The delegation reclaimed by an OPEN with CLAIM_PREVIOUS (RFC 7530 16.16.5 and 10.2.1,
/// RFC 8881 10.2.1): the client held a delegation of `kind` on the file before the server
/// restarted, and the server kept no record of it (nor needs one: in grace no one else
/// can have opened the file since). Granted again by the policy's reclaim rule
/// ([`crate::v4::state::delegations::GrantRequest::reclaim`]): pre-recalled when the
/// client's callback path is not verified yet; none (OPEN_DELEGATE_NONE, the open still
/// reclaimed) at a bound or when another reclaim is in the way.
fn reclaimed(
    c: &Compound<'_>,
    client: ClientId,
    file: &FileKey,
    place: &Place,
    kind: DelegKind,
) -> Deleg {
    let st = &c.ctx.state;
    if !st.hooks.delegations_possible() {
        return Deleg::None(None);
    }
    let cb_ok = st.hooks.callback_ok(client);
    let fh = c.ctx.pseudo.fh(place).0;
    let r = st
        .locking
        .lock()
        .grant_delegation(client, file, fh, kind, cb_ok, true, st.now);
    match r {
        Ok((sid, kind)) => {
            granted(c, file, place, &sid, kind);
            if !cb_ok {
                // Its recall was ordered with the grant: sent once the path answers.
                st.hooks.send_recalls(st.now);
            }
            Deleg::Granted(sid, kind, !cb_ok)
        }
        Err(_) => Deleg::None(None),
    }
}

/// Writes an `open_delegation4` (RFC 8881 18.16.2): a read delegation with no recall
/// pending and an empty ACE (the client checks access with ACCESS, as with knfsd); a
/// write delegation also with an unlimited space limit (`NFS_LIMIT_SIZE`, all ones).
pub(super) fn put_delegation(w: &mut Writer, d: &Deleg) {
    match d {
        Deleg::None(None) => w.u32(DELEGATE_NONE),
        Deleg::None(Some(why)) => {
            w.u32(DELEGATE_NONE_EXT);
            w.u32(*why);
            if *why == WND4_CONTENTION || *why == WND4_RESOURCE {
                // The server will not push or signal.
                w.bool(false);
            }
        }
        Deleg::Granted(sid, kind, recall) => {
            w.u32(match kind {
                DelegKind::Read => DELEGATE_READ,
                DelegKind::Write => DELEGATE_WRITE,
            });
            put_stateid(w, sid);
            w.bool(*recall);
            if *kind == DelegKind::Write {
                w.u32(NFS_LIMIT_SIZE);
                w.u64(u64::MAX);
            }
            // nfsace4: ALLOWED, no flags, no mask, no who.
            w.u32(0);
            w.u32(0);
            w.u32(0);
            w.opaque(b"");
        }
    }
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
    let s = {
        let mut l = c.ctx.state.locking.lock();
        let s = l.close(client, &sid, &file).map_err(|e| lerr(c, &e))?;
        c.ctx.state.hooks.let_go_unheld(&file, &l);
        s
    };
    put_stateid(w, &s);
    c.current_stateid = Some(s);
    Ok(())
}
