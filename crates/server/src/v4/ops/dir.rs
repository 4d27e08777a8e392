//! Directory operations: CREATE, REMOVE, RENAME, LINK (RFC 8881 18.4, 18.25, 18.26, 18.9)
//! and READDIR (18.23).
//!
//! Each change answers `change_info4` from the directory's change attribute read before
//! and after (never atomic: the backend does not hold the directory between the reads).
//! The pseudo file system is read-only (ROFS); RENAME and LINK between two exports are
//! XDEV.
//!
//! READDIR uses the cookies of [`rnfs_vfs::cookie`], hashes of the names, as NFSv3 does:
//! resuming after a cookie means "the entries whose hash is above it", whatever was added
//! or removed in between, so an entry present for the whole listing is returned exactly
//! once (seed entry 4 cannot happen). Cookies 1 and 2 are reserved (RFC 8881 18.23.3:
//! BAD_COOKIE); the cookie verifier ties a cookie to its directory (NOT_SAME otherwise).
//! `maxcount` bounds the whole result (TOOSMALL when not even one entry fits, or not even
//! the 16 bytes of an empty listing; `dircount`
//! is a hint the server may ignore, RFC 8881 18.23.3, and knfsd does too); an entry
//! whose attributes cannot be read carries `rdattr_error` when asked for, else fails the
//! listing.
use super::{deleg_conflict, put_cinfo, writable};
use crate::v4::attrs::{self, num, Bitmap, Fattr, Source};
use crate::v4::compound::Compound;
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::{check_component, ExportScope, Place};
use crate::v4::state::delegations::Access;
use rnfs_proto::nfs4::{
    Create4args, Createtype4, Link4args, Readdir4args, Remove4args, Rename4args,
};
use rnfs_vfs::{cookie, FileKey, FileType, SpecialKind};
use rnfs_xdr::Writer;

/// The change attribute of directory `dk` (NOTDIR when it is not one).
fn dir_change(x: &ExportScope, dk: &FileKey) -> R4<u64> {
    let a = x.export.fs.getattr(&x.ctx, dk)?;
    if a.ftype != FileType::Directory {
        return Err(Nfs4Error::NotDir);
    }
    Ok(a.change)
}

fn name_max(x: &ExportScope) -> u32 {
    x.export.fs.limits().name_max
}

/// CREATE: a directory, symbolic link or special file (a regular file is OPEN's: BADTYPE)
/// named in the current directory, which it becomes.
pub fn create(c: &mut Compound<'_>, a: &Create4args, w: &mut Writer) -> R4<()> {
    let (x, dk) = writable(c)?;
    let f = Fattr::from_parts(&a.createattrs.attrmask.0, &a.createattrs.attr_vals.0);
    let (mask, set) = attrs::decode_settable(&f, c.minor, c.ctx.owners)?;
    check_component(&a.objname.0, name_max(&x))?;
    let before = dir_change(&x, &dk)?;
    let fs = &x.export.fs;
    let name = &a.objname.0;
    let special = |k| fs.mknod(&x.ctx, &dk, name, k, &set);
    let (key, _) = match &a.objtype {
        Createtype4::Nf4dir => fs.mkdir(&x.ctx, &dk, name, &set)?,
        Createtype4::Nf4lnk(t) => {
            if t.0.is_empty() {
                return Err(Nfs4Error::Inval);
            }
            fs.symlink(&x.ctx, &dk, name, &t.0, &set)?
        }
        Createtype4::Nf4blk(d) => special(SpecialKind::Block(d.specdata1, d.specdata2))?,
        Createtype4::Nf4chr(d) => special(SpecialKind::Char(d.specdata1, d.specdata2))?,
        Createtype4::Nf4sock => special(SpecialKind::Socket)?,
        Createtype4::Nf4fifo => special(SpecialKind::Fifo)?,
        Createtype4::Default(_) => return Err(Nfs4Error::BadType),
    };
    let after = dir_change(&x, &dk)?;
    put_cinfo(w, before, after);
    mask.encode(w);
    c.set_fh(Place::Export {
        export: x.export.clone(),
        key,
    });
    Ok(())
}

/// REMOVE: the named entry of the current directory, a file or an empty directory.
pub fn remove(c: &mut Compound<'_>, a: &Remove4args, w: &mut Writer) -> R4<()> {
    let (x, dk) = writable(c)?;
    let name = &a.target.0;
    check_component(name, name_max(&x))?;
    let before = dir_change(&x, &dk)?;
    let fs = &x.export.fs;
    let (key, attr) = fs.lookup(&x.ctx, &dk, name)?;
    deleg_conflict(c, &x, &key, Access::Meta, false)?;
    if attr.ftype == FileType::Directory {
        fs.rmdir(&x.ctx, &dk, name)?;
    } else {
        fs.remove(&x.ctx, &dk, name)?;
    }
    put_cinfo(w, before, dir_change(&x, &dk)?);
    Ok(())
}

/// The saved filehandle's export object, for RENAME and LINK, which act between it and
/// the current one: XDEV when they are not of one export, ROFS in the pseudo file system.
fn saved_and_current(c: &Compound<'_>) -> R4<(ExportScope, FileKey, FileKey)> {
    let saved = c.saved.as_ref().ok_or(Nfs4Error::NoFileHandle)?;
    let current = c.fh()?;
    match (saved, current) {
        (Place::Export { export: a, key: ka }, Place::Export { export: b, key: kb }) => {
            if a.id != b.id {
                return Err(Nfs4Error::Xdev);
            }
            let (x, _) = writable(c)?;
            Ok((x, ka.clone(), kb.clone()))
        }
        (Place::Pseudo(_), Place::Pseudo(_)) => Err(Nfs4Error::Rofs),
        _ => Err(Nfs4Error::Xdev),
    }
}

/// RENAME: `oldname` of the saved directory becomes `newname` of the current one; the
/// change info of both.
pub fn rename(c: &mut Compound<'_>, a: &Rename4args, w: &mut Writer) -> R4<()> {
    let (x, from, to) = saved_and_current(c)?;
    check_component(&a.oldname.0, name_max(&x))?;
    check_component(&a.newname.0, name_max(&x))?;
    let (b1, b2) = (dir_change(&x, &from)?, dir_change(&x, &to)?);
    // The file renamed, and the one it replaces, may be delegated to another client.
    for (d, n) in [(&from, &a.oldname.0), (&to, &a.newname.0)] {
        if let Ok((key, _)) = x.export.fs.lookup(&x.ctx, d, n) {
            deleg_conflict(c, &x, &key, Access::Meta, false)?;
        }
    }
    x.export
        .fs
        .rename(&x.ctx, &from, &a.oldname.0, &to, &a.newname.0)?;
    put_cinfo(w, b1, dir_change(&x, &from)?);
    put_cinfo(w, b2, dir_change(&x, &to)?);
    Ok(())
}

/// LINK: a new name in the current directory for the saved object, which must not be a
/// directory (ISDIR, RFC 7530 16.9.5 and RFC 8881 18.9.4, rather than the backend's EPERM).
pub fn link(c: &mut Compound<'_>, a: &Link4args, w: &mut Writer) -> R4<()> {
    let (x, obj, dk) = saved_and_current(c)?;
    check_component(&a.newname.0, name_max(&x))?;
    if x.export.fs.getattr(&x.ctx, &obj)?.ftype == FileType::Directory {
        return Err(Nfs4Error::IsDir);
    }
    let before = dir_change(&x, &dk)?;
    deleg_conflict(c, &x, &obj, Access::Meta, false)?;
    x.export.fs.link(&x.ctx, &obj, &dk, &a.newname.0)?;
    put_cinfo(w, before, dir_change(&x, &dk)?);
    Ok(())
}

/// The cookie verifier of a directory (the NFSv3 scheme: cookies never go stale, the
/// verifier only ties them to their directory).
fn cookieverf(fileid: u64) -> [u8; 8] {
    (fileid ^ 0x726e_6673_636b_0001).to_be_bytes()
}

/// Bytes of the result besides the entries: the verifier, the end of the list, eof.
const FIXED: usize = 8 + 4 + 4;

/// READDIR: the entries after `cookie`, each with the attributes asked for, as many as
/// `maxcount` (and the server's largest I/O) allow.
pub fn readdir(c: &mut Compound<'_>, a: &Readdir4args, w: &mut Writer) -> R4<()> {
    let dir = c.fh()?.clone();
    let fs = c.ctx.pseudo;
    let dattr = fs.attrs(&c.ctx.caller, &dir)?.attr;
    if dattr.ftype != FileType::Directory {
        return Err(Nfs4Error::NotDir);
    }
    if a.cookie == cookie::DOT || a.cookie == cookie::DOTDOT {
        return Err(Nfs4Error::BadCookie);
    }
    let verf = cookieverf(dattr.fileid);
    if a.cookie != 0 && a.cookieverf.0 != [0; 8] && a.cookieverf.0 != verf {
        return Err(Nfs4Error::NotSame);
    }
    let (mask, _) = Bitmap::from_words(&a.attr_request.0);
    if mask.intersects(attrs::SET_ONLY) {
        return Err(Nfs4Error::Inval);
    }
    // Not even room for an empty listing (pynfs RDDR8: 15 bytes are too few, 16 do).
    if (a.maxcount as usize) < FIXED {
        return Err(Nfs4Error::TooSmall);
    }
    let budget = (a.maxcount.min(c.ctx.max_io) as usize).saturating_sub(FIXED);
    let mut body = Writer::new();
    let mut any = false;
    let mut after = a.cookie.max(cookie::DOTDOT);
    let eof = loop {
        let (page, page_eof) = page(c, &dir, after)?;
        let mut full = false;
        for (name, ck) in page {
            after = ck;
            let Some(entry) = entry(c, &dir, &name, ck, mask)? else {
                continue;
            };
            if body.len() + entry.len() > budget {
                full = true;
                break;
            }
            body.raw(&entry);
            any = true;
        }
        if full {
            break false;
        }
        if page_eof {
            break true;
        }
    };
    if !any && !eof {
        return Err(Nfs4Error::TooSmall);
    }
    w.opaque_fixed(&verf);
    w.raw(body.as_slice());
    w.bool(false);
    w.bool(eof);
    Ok(())
}

/// Up to a page of (name, cookie) after some cookie, in cookie order, and whether it ends
/// the directory.
type Page = (Vec<(Vec<u8>, u64)>, bool);

/// The page after `after`.
fn page(c: &Compound<'_>, dir: &Place, after: u64) -> R4<Page> {
    match dir {
        Place::Pseudo(id) => {
            let mut v: Vec<_> = c
                .ctx
                .pseudo
                .entries(&c.ctx.caller, *id)?
                .into_iter()
                .map(|(n, _)| {
                    let k = cookie::of_name(&n);
                    (n, k)
                })
                .filter(|(_, k)| *k > after)
                .collect();
            v.sort_by_key(|(_, k)| *k);
            Ok((v, true))
        }
        Place::Export { export, key } => {
            let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
            let p = export.fs.readdir(&x.ctx, key, after, 256, false)?;
            Ok((
                p.entries.into_iter().map(|e| (e.name, e.cookie)).collect(),
                p.eof,
            ))
        }
    }
}

/// One `entry4` (with its "value follows" marker), its attributes those of `mask` the
/// server has, or `rdattr_error` alone when they cannot be read and it was asked for.
/// `None` for an entry removed since the backend listed it.
fn entry(c: &Compound<'_>, dir: &Place, name: &[u8], ck: u64, mask: Bitmap) -> R4<Option<Vec<u8>>> {
    let mut w = Writer::new();
    w.bool(true);
    w.u64(ck);
    w.opaque(name);
    let encoded = (|| {
        if mask.is_empty() {
            return Ok((mask, Vec::new()));
        }
        let fs = c.ctx.pseudo;
        let p = fs.lookup(&c.ctx.caller, dir, name)?;
        let obj = fs.attrs(&c.ctx.caller, &p)?;
        let fsstat = if attrs::needs_fsstat(mask) {
            Some(fs.fsstat(&c.ctx.caller, &p)?)
        } else {
            None
        };
        let fh = fs.fh(&p).0;
        let src = Source {
            obj: &obj,
            fh: &fh,
            limits: fs.limits(&p),
            fsstat,
            rdattr_error: 0,
        };
        attrs::encode(mask, &src, &c.server_attrs(), c.ctx.owners)
    })();
    match encoded {
        Ok((done, vals)) => attrs::write_fattr(&mut w, done, &vals),
        Err(e) if mask.contains(num::RDATTR_ERROR) => attrs::write_fattr(
            &mut w,
            Bitmap::of(&[num::RDATTR_ERROR]),
            &e.code().to_be_bytes(),
        ),
        Err(Nfs4Error::NoEnt) => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(w.into_inner()))
}
