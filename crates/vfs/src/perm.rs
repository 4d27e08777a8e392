//! POSIX permission checks for backends that do not delegate them to a host kernel.
use crate::{Attr, Creds, FileType};

/// Read permission bit (in the "other" position).
pub const R: u32 = 4;
/// Write permission bit.
pub const W: u32 = 2;
/// Execute/search permission bit.
pub const X: u32 = 1;

/// Whether `c` holds all of `want` (a mix of [`R`], [`W`], [`X`]) on a file with `a`.
/// Root holds read and write always, and execute if anyone does (or on a directory).
pub fn allowed(c: &Creds, a: &Attr, want: u32) -> bool {
    if c.uid == 0 {
        if want & X != 0 && a.ftype != FileType::Directory && a.mode & 0o111 == 0 {
            return false;
        }
        return true;
    }
    let bits = if c.uid == a.uid {
        (a.mode >> 6) & 7
    } else if c.in_group(a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    bits & want == want
}

/// The NFSv3 ACCESS bits of `mask` that `c` holds on `a`.
pub fn access_mask(c: &Creds, a: &Attr, mask: u32) -> u32 {
    const READ: u32 = 0x01;
    const LOOKUP: u32 = 0x02;
    const MODIFY: u32 = 0x04;
    const EXTEND: u32 = 0x08;
    const DELETE: u32 = 0x10;
    const EXECUTE: u32 = 0x20;
    let mut got = 0;
    let is_dir = a.ftype == FileType::Directory;
    if allowed(c, a, R) {
        got |= READ;
    }
    if allowed(c, a, W) {
        got |= MODIFY | EXTEND;
        if is_dir {
            got |= DELETE;
        }
    }
    if allowed(c, a, X) {
        got |= if is_dir { LOOKUP } else { EXECUTE };
    }
    got & mask
}

/// Whether `c` may remove or rename an entry owned by `owner` from directory `dir`
/// (write and search on the directory, and the sticky-bit rule).
pub fn may_delete(c: &Creds, dir: &Attr, owner: u32) -> bool {
    if !allowed(c, dir, W | X) {
        return false;
    }
    if dir.mode & 0o1000 != 0 && c.uid != 0 && c.uid != dir.uid && c.uid != owner {
        return false;
    }
    true
}
