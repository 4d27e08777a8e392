//! GETATTR, VERIFY and NVERIFY (RFC 8881 18.7, 18.31, 18.15), over [`crate::v4::attrs`].
use super::xdr;
use crate::v4::attrs::{self, Bitmap, Fattr, Source};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::ObjectAttrs;
use rnfs_xdr::{Reader, Writer};

/// The current object's attributes and what else encoding `mask` needs.
fn fetch(c: &Compound<'_>, mask: Bitmap) -> R4<(ObjectAttrs, Option<rnfs_vfs::FsStat>, Vec<u8>)> {
    let fs = c.ctx.pseudo;
    let p = c.fh()?;
    let obj = fs.attrs(&c.ctx.caller, p)?;
    let stat = if attrs::needs_fsstat(mask) {
        Some(fs.fsstat(&c.ctx.caller, p)?)
    } else {
        None
    };
    Ok((obj, stat, fs.fh(p).0))
}

/// GETATTR: the attributes asked for that the server has.
pub fn getattr(c: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> R4<()> {
    let (mask, _) = xdr(attrs::decode_bitmap(r))?;
    let (obj, fsstat, fh) = fetch(c, mask)?;
    let src = Source {
        obj: &obj,
        fh: &fh,
        limits: c.ctx.pseudo.limits(c.fh()?),
        fsstat,
        rdattr_error: 0,
    };
    let (done, vals) = attrs::encode(mask, &src, &c.server_attrs(), c.ctx.owners)?;
    attrs::write_fattr(w, done, &vals);
    Ok(())
}

/// Whether the attributes of the `fattr4` in `r` equal the current object's.
fn same(c: &Compound<'_>, r: &mut Reader<'_>) -> R4<bool> {
    let f = xdr(Fattr::decode(r))?;
    let (obj, fsstat, fh) = fetch(c, f.mask)?;
    let src = Source {
        obj: &obj,
        fh: &fh,
        limits: c.ctx.pseudo.limits(c.fh()?),
        fsstat,
        rdattr_error: 0,
    };
    attrs::same(&f, &src, &c.server_attrs(), c.ctx.owners)
}

/// VERIFY: NOT_SAME unless the attributes are equal.
pub fn verify(c: &mut Compound<'_>, r: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    if same(c, r)? {
        Ok(())
    } else {
        Err(Nfs4Error::NotSame)
    }
}

/// NVERIFY: SAME if the attributes are equal.
pub fn nverify(c: &mut Compound<'_>, r: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    if same(c, r)? {
        Err(Nfs4Error::Same)
    } else {
        Ok(())
    }
}
