//! Operations on the current and saved filehandle: PUTROOTFH, PUTPUBFH, PUTFH, GETFH,
//! SAVEFH, RESTOREFH, LOOKUP, LOOKUPP (RFC 8881 18.19-18.22, 18.8, 18.13, 18.14, 18.27,
//! 18.28), and SECINFO and SECINFO_NO_NAME (18.29, 18.45), which consume it.
use super::xdr;
use crate::v4::compound::{Compound, MAX_FH};
use crate::v4::error::{Nfs4Error, R4};
use rnfs_proto::nfs3::FileHandle3;
use rnfs_xdr::{Reader, Writer};

/// Longest component accepted from the wire: past any backend's name limit, so a long
/// name is NAMETOOLONG (from the name check), never BADXDR.
const MAX_COMPONENT: u32 = 4096;

/// PUTROOTFH: the root of the pseudo file system (or the export at `/`).
pub fn putrootfh(c: &mut Compound<'_>, _: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    let p = c.ctx.pseudo.root(&c.ctx.caller)?;
    c.set_fh(p);
    Ok(())
}

/// PUTPUBFH: the public filehandle is the root here (RFC 8881 18.20.3 allows it).
pub fn putpubfh(c: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> R4<()> {
    putrootfh(c, r, w)
}

/// PUTFH: the handle given, checked (see [`crate::v4::pseudo::PseudoFs::resolve`]).
pub fn putfh(c: &mut Compound<'_>, r: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    let fh = FileHandle3(xdr(r.opaque(MAX_FH))?.to_vec());
    let p = c.ctx.pseudo.resolve(&c.ctx.caller, &fh)?;
    c.set_fh(p);
    Ok(())
}

/// GETFH: the current filehandle.
pub fn getfh(c: &mut Compound<'_>, _: &mut Reader<'_>, w: &mut Writer) -> R4<()> {
    let fh = c.ctx.pseudo.fh(c.fh()?);
    w.opaque(&fh.0);
    Ok(())
}

/// SAVEFH: saves the current filehandle, and the current stateid with it.
pub fn savefh(c: &mut Compound<'_>, _: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    c.saved = Some(c.fh()?.clone());
    c.saved_stateid = c.current_stateid;
    Ok(())
}

/// RESTOREFH: the saved filehandle and stateid become current; RESTOREFH when none.
pub fn restorefh(c: &mut Compound<'_>, _: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    let p = c.saved.clone().ok_or(Nfs4Error::RestoreFh)?;
    c.current = Some(p);
    c.current_stateid = c.saved_stateid;
    Ok(())
}

/// LOOKUP: the named entry of the current directory.
pub fn lookup(c: &mut Compound<'_>, r: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    let name = xdr(r.opaque(MAX_COMPONENT))?;
    let p = c.ctx.pseudo.lookup(&c.ctx.caller, c.fh()?, name)?;
    c.set_fh(p);
    Ok(())
}

/// LOOKUPP: the parent of the current directory.
pub fn lookupp(c: &mut Compound<'_>, _: &mut Reader<'_>, _: &mut Writer) -> R4<()> {
    let p = c.ctx.pseudo.lookupp(&c.ctx.caller, c.fh()?)?;
    c.set_fh(p);
    Ok(())
}

/// Writes a SECINFO4resok: the flavours, none of them RPCSEC_GSS (no `rpcsec_gss_info`).
fn write_flavors(w: &mut Writer, flavors: &[u32]) {
    w.u32(flavors.len() as u32);
    for f in flavors {
        w.u32(*f);
    }
}

/// SECINFO: the flavours of the named entry; consumes the current filehandle (RFC 8881
/// 2.6.3.1.1.8).
pub fn secinfo(c: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> R4<()> {
    let name = xdr(r.opaque(MAX_COMPONENT))?;
    let f = c.ctx.pseudo.secinfo(&c.ctx.caller, c.fh()?, name)?;
    write_flavors(w, &f);
    c.current = None;
    Ok(())
}

/// SECINFO_NO_NAME: the flavours of the current filehandle (style 0) or of its parent
/// (style 1); consumes the current filehandle.
pub fn secinfo_no_name(c: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> R4<()> {
    let style = xdr(r.u32())?;
    let p = c.fh()?;
    let f = match style {
        0 => c.ctx.pseudo.flavors(p),
        1 => {
            let parent = c.ctx.pseudo.lookupp(&c.ctx.caller, p)?;
            c.ctx.pseudo.flavors(&parent)
        }
        _ => return Err(Nfs4Error::BadXdr),
    };
    write_flavors(w, &f);
    c.current = None;
    Ok(())
}
