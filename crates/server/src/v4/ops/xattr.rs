//! The NFSv4.2 extended attribute operations (RFC 8276 section 8.4): GETXATTR, SETXATTR,
//! LISTXATTRS and REMOVEXATTR, on the backend's user extended attributes
//! ([`Backend::getxattr`] and the others; the local backend's are the host's `user.`
//! namespace). Names travel without a namespace prefix (RFC 8276 section 6).
//!
//! An object whose `xattr_support` is false (a pseudo directory, a symbolic link or special
//! file, a backend without xattrs) answers NOTSUPP. Permission is the backend's (read to
//! get and list, write to set and remove: ACCESS4_XAREAD, XALIST and XAWRITE of RFC 8276
//! section 8.3 answer the same). SETXATTR and REMOVEXATTR follow SETATTR: ROFS on a
//! read-only export, another client's delegation recalled first (it caches the change
//! attribute these move), and `change_info4` of the object itself (section 8.4.2.2).
//!
//! Sizes: a value is at most [`XATTR_SIZE_MAX`] (the decoder refuses more); one that does
//! not fit in what is left of the session's largest reply is TOOSMALL, as knfsd answers it
//! (the Linux client makes that `ERANGE`, what `getxattr(2)` says of a short buffer).
//! LISTXATTRS fills at most `lxa_maxcount` bytes of LISTXATTRS4resok (cookie, names, eof)
//! and no more than the reply has room for; TOOSMALL when not one name fits. Its cookie
//! is the count of names already returned, in the backend's sorted order; one past the
//! end is BAD_COOKIE.
//!
//! [`Backend::getxattr`]: rnfs_vfs::Backend::getxattr
use super::{deleg_conflict, in_export, put_cinfo, writable};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::ExportScope;
use crate::v4::state::delegations::Access;
use rnfs_proto::nfs4::{
    Getxattr4args, Listxattrs4args, Removexattr4args, Setxattr4args, SetxattrOption4,
};
use rnfs_vfs::{FileKey, XattrSet, XATTR_SIZE_MAX};
use rnfs_xdr::Writer;

/// Most names one LISTXATTRS returns (the wire type's bound on decode).
const MAX_NAMES: usize = 1024;

/// Bytes a `xattrkey4` or opaque of `len` bytes takes on the wire.
fn xdr_len(len: usize) -> usize {
    4 + len.div_ceil(4) * 4
}

/// The current object, if it holds extended attributes (NOTSUPP otherwise), and its
/// change attribute.
fn target(c: &Compound<'_>) -> R4<(ExportScope, FileKey, u64)> {
    let (x, k) = in_export(c, Nfs4Error::NotSupp)?;
    let a = x.export.fs.getattr(&x.ctx, &k)?;
    if !x.export.fs.xattr_support(&a) {
        return Err(Nfs4Error::NotSupp);
    }
    Ok((x, k, a.change))
}

/// Like [`target`], for a change: ROFS on a read-only scope, another client's delegation
/// recalled (DELAY until it is returned).
fn writable_target(c: &Compound<'_>) -> R4<(ExportScope, FileKey, u64)> {
    writable(c)?;
    let (x, k, change) = target(c)?;
    deleg_conflict(c, &x, &k, Access::Meta, false)?;
    Ok((x, k, change))
}

/// GETXATTR: the value of one attribute; NOXATTR when there is none.
pub fn getxattr(c: &mut Compound<'_>, a: &Getxattr4args, w: &mut Writer) -> R4<()> {
    let (x, k, _) = target(c)?;
    let value = x.export.fs.getxattr(&x.ctx, &k, &a.gxa_name.0)?;
    if value.len() > XATTR_SIZE_MAX || xdr_len(value.len()) > c.reply_room {
        return Err(Nfs4Error::TooSmall);
    }
    w.opaque(&value);
    Ok(())
}

/// SETXATTR: creates or replaces one attribute as `sxa_option` says (EXIST, NOXATTR).
pub fn setxattr(c: &mut Compound<'_>, a: &Setxattr4args, w: &mut Writer) -> R4<()> {
    let (x, k, before) = writable_target(c)?;
    let how = match a.sxa_option {
        SetxattrOption4::Setxattr4Either => XattrSet::Either,
        SetxattrOption4::Setxattr4Create => XattrSet::Create,
        SetxattrOption4::Setxattr4Replace => XattrSet::Replace,
    };
    x.export
        .fs
        .setxattr(&x.ctx, &k, &a.sxa_key.0, &a.sxa_value.0, how)?;
    let after = x.export.fs.getattr(&x.ctx, &k)?.change;
    put_cinfo(w, before, after);
    Ok(())
}

/// LISTXATTRS: the names after `lxa_cookie`, as many as `lxa_maxcount` holds.
pub fn listxattrs(c: &mut Compound<'_>, a: &Listxattrs4args, w: &mut Writer) -> R4<()> {
    let (x, k, _) = target(c)?;
    let names = x.export.fs.listxattrs(&x.ctx, &k)?;
    let start = usize::try_from(a.lxa_cookie)
        .ok()
        .filter(|&s| s <= names.len())
        .ok_or(Nfs4Error::BadCookie)?;
    let budget = usize::try_from(a.lxa_maxcount)
        .unwrap_or(usize::MAX)
        .min(c.reply_room);
    // cookie, array length, eof
    let mut used = 8 + 4 + 4;
    let mut taken = 0;
    for n in &names[start..] {
        let cost = xdr_len(n.len());
        if used + cost > budget || taken == MAX_NAMES {
            break;
        }
        used += cost;
        taken += 1;
    }
    let end = start + taken;
    if taken == 0 && end < names.len() {
        return Err(Nfs4Error::TooSmall);
    }
    w.u64(end as u64);
    w.u32(taken as u32);
    for n in &names[start..end] {
        w.opaque(n);
    }
    w.bool(end == names.len());
    Ok(())
}

/// REMOVEXATTR: removes one attribute; NOXATTR when there is none.
pub fn removexattr(c: &mut Compound<'_>, a: &Removexattr4args, w: &mut Writer) -> R4<()> {
    let (x, k, before) = writable_target(c)?;
    x.export.fs.removexattr(&x.ctx, &k, &a.rxa_name.0)?;
    let after = x.export.fs.getattr(&x.ctx, &k)?.change;
    put_cinfo(w, before, after);
    Ok(())
}
