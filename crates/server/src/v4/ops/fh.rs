//! Operations on the current and saved filehandle: PUTROOTFH, PUTPUBFH, PUTFH, GETFH,
//! SAVEFH, RESTOREFH, LOOKUP, LOOKUPP (RFC 8881 18.19-18.22, 18.8, 18.13, 18.14, 18.27,
//! 18.28), and SECINFO and SECINFO_NO_NAME (18.29, 18.45), which consume it.
use super::state_key;
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::Place;
use crate::Export;
use rnfs_proto::nfs3::FileHandle3;
use rnfs_proto::nfs4::{Lookup4args, Putfh4args, Secinfo4args, SecinfoStyle4};
use rnfs_vfs::FileKey;
use rnfs_xdr::Writer;
use std::sync::Arc;

/// PUTROOTFH: the root of the pseudo file system (or the export at `/`).
pub fn putrootfh(c: &mut Compound<'_>) -> R4<()> {
    let p = c.ctx.pseudo.root(&c.ctx.caller)?;
    c.set_fh(p);
    Ok(())
}

/// PUTPUBFH: the public filehandle is the root here (RFC 8881 18.20.3 allows it).
pub fn putpubfh(c: &mut Compound<'_>) -> R4<()> {
    putrootfh(c)
}

/// PUTFH: the handle given, checked (see [`crate::v4::pseudo::PseudoFs::resolve`]).
pub fn putfh(c: &mut Compound<'_>, a: &Putfh4args) -> R4<()> {
    let fh = FileHandle3(a.object.0.clone());
    let p = c.ctx.pseudo.resolve(&c.ctx.caller, &fh)?;
    if let Place::Export { export, key } = &p {
        match (c.ctx.locate)(export, key) {
            // A file removed while open (REMOVE, or RENAME over it) keeps its handle for
            // the state held on it: CLOSE and LOCKU name the file by it and must still
            // release that state (knfsd keeps the inode while it is open; pynfs RNM21).
            // Operations that reach the backend still answer STALE.
            Err(Nfs4Error::Stale) if holds_state(c, export, key)? => {}
            r => r?,
        }
    }
    c.set_fh(p);
    Ok(())
}

/// Whether the locking state holds an open or lock on the file `key` of `export`.
fn holds_state(c: &Compound<'_>, export: &Arc<Export>, key: &FileKey) -> R4<bool> {
    let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
    Ok(c.ctx.state.locking.lock().holds_file(&state_key(&x, key)))
}

/// GETFH: the current filehandle.
pub fn getfh(c: &mut Compound<'_>, w: &mut Writer) -> R4<()> {
    let fh = c.ctx.pseudo.fh(c.fh()?);
    w.opaque(&fh.0);
    Ok(())
}

/// SAVEFH: saves the current filehandle, and the current stateid with it.
pub fn savefh(c: &mut Compound<'_>) -> R4<()> {
    c.saved = Some(c.fh()?.clone());
    c.saved_stateid = c.current_stateid;
    Ok(())
}

/// RESTOREFH: the saved filehandle and stateid become current; RESTOREFH when none.
pub fn restorefh(c: &mut Compound<'_>) -> R4<()> {
    let p = c.saved.clone().ok_or(Nfs4Error::RestoreFh)?;
    c.current = Some(p);
    c.current_stateid = c.saved_stateid;
    Ok(())
}

/// LOOKUP: the named entry of the current directory.
pub fn lookup(c: &mut Compound<'_>, a: &Lookup4args) -> R4<()> {
    let p = c.ctx.pseudo.lookup(&c.ctx.caller, c.fh()?, &a.objname.0)?;
    c.set_fh(p);
    Ok(())
}

/// LOOKUPP: the parent of the current directory.
pub fn lookupp(c: &mut Compound<'_>) -> R4<()> {
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
pub fn secinfo(c: &mut Compound<'_>, a: &Secinfo4args, w: &mut Writer) -> R4<()> {
    let f = c.ctx.pseudo.secinfo(&c.ctx.caller, c.fh()?, &a.name.0)?;
    write_flavors(w, &f);
    c.current = None;
    Ok(())
}

/// SECINFO_NO_NAME: the flavours of the current filehandle or of its parent; consumes
/// the current filehandle.
pub fn secinfo_no_name(c: &mut Compound<'_>, style: SecinfoStyle4, w: &mut Writer) -> R4<()> {
    let p = c.fh()?;
    let f = match style {
        SecinfoStyle4::SecinfoStyle4CurrentFh => c.ctx.pseudo.flavors(p),
        SecinfoStyle4::SecinfoStyle4Parent => {
            let parent = c.ctx.pseudo.lookupp(&c.ctx.caller, p)?;
            c.ctx.pseudo.flavors(&parent)
        }
    };
    write_flavors(w, &f);
    c.current = None;
    Ok(())
}
