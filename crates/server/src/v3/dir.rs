//! READDIR and READDIRPLUS: the listing (`.`, `..`, then the backend's entries after a
//! cookie) and its encoding within the sizes the client asked for.
use super::attr::fattr3;
use super::nfs::{scope, st, R};
use crate::{NfsServer, Req, Scope};
use rnfs_proto::nfs3::*;
use rnfs_vfs::{cookie, Attr, FileKey};
use rnfs_xdr::OpaqueFixed;

/// The cookie verifier of a directory: cookies are name hashes and never go stale, so the
/// verifier only ties a cookie to the directory (and cookie scheme) it came from.
fn cookieverf(dir: &Attr) -> CookieVerf3 {
    let v = dir.fileid ^ 0x726e_6673_636b_0001; // "rnfsck" + scheme 1
    OpaqueFixed(v.to_be_bytes())
}

/// One entry of a listing, before encoding.
struct Listed {
    name: Vec<u8>,
    fileid: u64,
    cookie: u64,
    plus: Option<(FileKey, Attr)>,
}

/// Collects `.`, `..` and backend entries after `cookie`, while `fits` accepts them.
fn list(
    x: &Scope,
    dk: &FileKey,
    dir: &Attr,
    cookie: u64,
    verf: &CookieVerf3,
    plus: bool,
    mut fits: impl FnMut(&Listed) -> bool,
) -> R<(Vec<Listed>, bool)> {
    if cookie != 0 && verf.0 != [0; 8] && *verf != cookieverf(dir) {
        return Err(Nfsstat3::BadCookie);
    }
    if dir.ftype != rnfs_vfs::FileType::Directory {
        return Err(Nfsstat3::NotDir);
    }
    let fs = x.fs();
    let mut out = Vec::new();
    if cookie < cookie::DOT {
        let l = Listed {
            name: b".".to_vec(),
            fileid: dir.fileid,
            cookie: cookie::DOT,
            plus: Some((dk.clone(), dir.clone())),
        };
        if !fits(&l) {
            return Ok((out, false));
        }
        out.push(l);
    }
    if cookie < cookie::DOTDOT {
        // `..` of the export root is the root itself (seed entry 14).
        let (pk, pa) = if x.is_root(dk) {
            (dk.clone(), dir.clone())
        } else {
            fs.parent(&x.ctx, dk).map_err(st)?
        };
        let l = Listed {
            name: b"..".to_vec(),
            fileid: pa.fileid,
            cookie: cookie::DOTDOT,
            plus: Some((pk, pa)),
        };
        if !fits(&l) {
            return Ok((out, false));
        }
        out.push(l);
    }
    let mut after = cookie.max(cookie::DOTDOT);
    loop {
        let page = fs.readdir(&x.ctx, dk, after, 256, plus).map_err(st)?;
        for e in page.entries {
            let l = Listed {
                name: e.name,
                fileid: e.fileid,
                cookie: e.cookie,
                plus: e.plus,
            };
            after = l.cookie;
            if !fits(&l) {
                return Ok((out, false));
            }
            out.push(l);
        }
        if page.eof {
            return Ok((out, true));
        }
    }
}

fn entry_name(n: Vec<u8>) -> Filename3 {
    rnfs_xdr::XdrString(n)
}

/// The scope, key and attributes of the directory a listing reads.
fn dir_scope(s: &NfsServer, req: &Req<'_>, fh: &FileHandle3) -> R<(Scope, FileKey, Attr)> {
    let (x, dk) = scope(s, req, fh)?;
    let dir = x.fs().getattr(&x.ctx, &dk).map_err(st)?;
    Ok((x, dk, dir))
}

pub(crate) fn readdir(s: &NfsServer, req: &Req<'_>, a: ReaddirArgs) -> ReaddirRes {
    let (x, dk, dir) = match dir_scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    // Reply: status, post_op_attr, verifier, entries, end marker, eof.
    let budget = (a.count.min(s.cfg.max_io) as usize).max(256);
    let mut used = 4 + 4 + 84 + 8 + 4 + 4;
    let r = list(&x, &dk, &dir, a.cookie, &a.cookieverf, false, |l| {
        let sz = 4 + 8 + 4 + l.name.len().div_ceil(4) * 4 + 8;
        used += sz;
        used <= budget
    });
    match r {
        Ok((entries, eof)) => {
            if entries.is_empty() && !eof {
                return Res::Fail(Nfsstat3::TooSmall, Some(fattr3(&dir)));
            }
            Res::Ok(ReaddirOk {
                dir_attributes: Some(fattr3(&dir)),
                cookieverf: cookieverf(&dir),
                entries: entries
                    .into_iter()
                    .map(|l| Entry3 {
                        fileid: l.fileid,
                        name: entry_name(l.name),
                        cookie: l.cookie,
                    })
                    .collect(),
                eof,
            })
        }
        Err(e) => Res::Fail(e, Some(fattr3(&dir))),
    }
}

pub(crate) fn readdirplus(s: &NfsServer, req: &Req<'_>, a: ReaddirplusArgs) -> ReaddirplusRes {
    let (x, dk, dir) = match dir_scope(s, req, &a.dir) {
        Ok(v) => v,
        Err(e) => return Res::Fail(e, None),
    };
    let budget = (a.maxcount.min(s.cfg.max_io) as usize).max(256);
    let dbudget = (a.dircount as usize).max(64);
    let (mut used, mut dused) = (4 + 4 + 84 + 8 + 4 + 4, 0usize);
    let r = list(&x, &dk, &dir, a.cookie, &a.cookieverf, true, |l| {
        let d = 8 + 4 + l.name.len().div_ceil(4) * 4 + 8;
        let attrs = if l.plus.is_some() {
            4 + 84 + 4 + 4 + 64
        } else {
            4 + 4
        };
        used += 4 + d + attrs;
        dused += d;
        used <= budget && dused <= dbudget
    });
    match r {
        Ok((entries, eof)) => {
            if entries.is_empty() && !eof {
                return Res::Fail(Nfsstat3::TooSmall, Some(fattr3(&dir)));
            }
            let entries = entries
                .into_iter()
                .map(|l| {
                    let (h, at) = match l.plus {
                        Some((k, at)) => (Some(x.fh(&k)), Some(fattr3(&at))),
                        None => (None, None),
                    };
                    EntryPlus3 {
                        fileid: l.fileid,
                        name: entry_name(l.name),
                        cookie: l.cookie,
                        name_attributes: at,
                        name_handle: h,
                    }
                })
                .collect();
            Res::Ok(ReaddirplusOk {
                dir_attributes: Some(fattr3(&dir)),
                cookieverf: cookieverf(&dir),
                entries,
                eof,
            })
        }
        Err(e) => Res::Fail(e, Some(fattr3(&dir))),
    }
}
