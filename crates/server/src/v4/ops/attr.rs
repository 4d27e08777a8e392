//! GETATTR, VERIFY and NVERIFY (RFC 8881 18.7, 18.31, 18.15), over [`crate::v4::attrs`].
use crate::v4::attrs::{self, Bitmap, Fattr, Source};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::ObjectAttrs;
use rnfs_proto::nfs4::{Fattr4, Getattr4args, Nverify4args, Verify4args};
use rnfs_xdr::Writer;

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
pub fn getattr(c: &mut Compound<'_>, a: &Getattr4args, w: &mut Writer) -> R4<()> {
    let (mask, _) = Bitmap::from_words(&a.attr_request.0);
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

/// Whether the attributes of `f` equal the current object's.
fn same(c: &Compound<'_>, f: &Fattr4) -> R4<bool> {
    let f = Fattr::from_parts(&f.attrmask.0, &f.attr_vals.0);
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
pub fn verify(c: &mut Compound<'_>, a: &Verify4args) -> R4<()> {
    if same(c, &a.obj_attributes)? {
        Ok(())
    } else {
        Err(Nfs4Error::NotSame)
    }
}

/// NVERIFY: SAME if the attributes are equal.
pub fn nverify(c: &mut Compound<'_>, a: &Nverify4args) -> R4<()> {
    if same(c, &a.obj_attributes)? {
        Err(Nfs4Error::Same)
    } else {
        Ok(())
    }
}
