//! GETATTR, VERIFY and NVERIFY (RFC 8881 18.7, 18.31, 18.15), over [`crate::v4::attrs`].
//!
//! Another client's GETATTR of the size or change of a file under a write delegation asks
//! the holder with CB_GETATTR and answers what it says (RFC 8881 10.4.3; D8 of
//! [`crate::v4::state::delegations`]): a holder that modified the file in its cache
//! makes the answer its size, a change past the server's and the times now; no answer in
//! time recalls the delegation and answers NFS4ERR_DELAY.
use super::{deleg_conflict, state_key};
use crate::v4::attrs::{self, num, Bitmap, Fattr, Source};
use crate::v4::compound::{CbGetattr, Compound};
use crate::v4::error::{Nfs4Error, R4};
use crate::v4::pseudo::{ObjectAttrs, Place};
use crate::v4::state::delegations::{Access, Caller, SizeChange};
use rnfs_proto::nfs4::{Fattr4, Getattr4args, Nverify4args, Verify4args};
use rnfs_vfs::{FileType, Timestamp};
use rnfs_xdr::Writer;

/// The attributes a write delegation's holder may have changed in its cache.
const DELEGATED: Bitmap = Bitmap::of(&[
    num::CHANGE,
    num::SIZE,
    num::SPACE_USED,
    num::TIME_METADATA,
    num::TIME_MODIFY,
]);

/// D8: `obj`'s size, change and times as another client's write delegation has them.
fn delegated(c: &Compound<'_>, obj: &mut ObjectAttrs) -> R4<()> {
    let st = &c.ctx.state;
    if !st.hooks.delegations_possible() || obj.attr.ftype != FileType::Regular {
        return Ok(());
    }
    let Place::Export { export, key } = c.fh()? else {
        return Ok(());
    };
    let x = c.ctx.pseudo.scope(&c.ctx.caller, export)?;
    let file = state_key(&x, key);
    let who = c.client.map_or(Caller::Other, Caller::Client);
    let Some(o) = st.locking.lock().delegations().write_holder(who, &file) else {
        return Ok(());
    };
    match st.hooks.cb_getattr(&o) {
        CbGetattr::NotAsked => Ok(()),
        // Like any other conflict: the recall ordered, DELAY (or the way is clear now).
        CbGetattr::NoAnswer => deleg_conflict(c, &x, key, Access::Read, false),
        CbGetattr::Reported(r) => {
            let server = SizeChange {
                size: obj.attr.size,
                change: obj.attr.change,
            };
            let a = st
                .locking
                .lock()
                .delegations_mut()
                .cb_getattr_answer(&o.stateid, r, server);
            if a.modified {
                obj.attr.size = a.attrs.size;
                obj.attr.change = a.attrs.change;
                let now = Timestamp::now();
                obj.attr.mtime = now;
                obj.attr.ctime = now;
            }
            Ok(())
        }
    }
}

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
    let (mut obj, fsstat, fh) = fetch(c, mask)?;
    if mask.intersects(DELEGATED) {
        delegated(c, &mut obj)?;
    }
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
