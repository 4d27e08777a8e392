//! User extended attributes of the local backend (NFSv4.2 xattrs, RFC 8276): the names a
//! client sees are those of the host's `user.` namespace without the prefix; no other
//! namespace is ever named (a client cannot reach `trusted.`, `security.` or `system.`).
//!
//! Each call opens the object with `O_PATH | O_NOFOLLOW` relative to its located
//! directory, checks the descriptor is the key's inode, and calls the path forms of the
//! xattr system calls on the descriptor's `/proc/self/fd` link, which leads to exactly
//! that inode (the `f*xattr` calls refuse `O_PATH` descriptors). Only regular files and
//! directories are handed to the kernel, so the link is never a symbolic link that the
//! call could follow. The calls run with the caller's identity, so the host kernel decides
//! permission as for a local process (read permission to read and list, write permission
//! to change; no owner override here, as Linux has none for `user.` attributes).
//! Symbolic links and special files hold no user attributes on Linux: reading finds none,
//! listing lists none, changing is PERM.
use super::{ftype_of, parts_of, statx_fd, KeyParts, LocalFs};
use crate::{
    check_xattr_name, Ctx, FileKey, FileType, VfsError, VfsResult, XattrSet, XATTR_LIST_MAX,
    XATTR_SIZE_MAX,
};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags, XattrFlags};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

const PREFIX: &[u8] = b"user.";

/// An object opened for an xattr call: its `O_PATH` descriptor (kept open while its
/// `/proc/self/fd` path is used) and its type.
struct Target {
    fd: OwnedFd,
    ftype: FileType,
}

impl Target {
    fn path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }

    /// Whether Linux keeps user attributes on this object.
    fn holds_xattrs(&self) -> bool {
        matches!(self.ftype, FileType::Regular | FileType::Directory)
    }
}

/// The host's name of user attribute `name` (checked).
fn host_name(name: &[u8]) -> VfsResult<Vec<u8>> {
    check_xattr_name(name)?;
    let mut n = PREFIX.to_vec();
    n.extend_from_slice(name);
    Ok(n)
}

impl LocalFs {
    /// Opens the object of `key` for an xattr call (see the module documentation).
    fn xattr_target(&self, key: &FileKey) -> VfsResult<Target> {
        let k = KeyParts::decode(key)?;
        let l = self.locate(key)?;
        if !self.inside(&l.stx) {
            return Err(VfsError::Stale);
        }
        let fd = rustix::fs::openat(
            &l.dir,
            l.name(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stx = statx_fd(fd.as_fd())?;
        if parts_of(&stx) != k || !self.inside(&stx) {
            return Err(VfsError::Stale);
        }
        Ok(Target {
            fd,
            ftype: ftype_of(u32::from(stx.stx_mode)),
        })
    }

    pub(super) fn xattr_get(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<Vec<u8>> {
        let host = host_name(name)?;
        let t = self.xattr_target(key)?;
        if !t.holds_xattrs() {
            return Err(VfsError::NoXattr);
        }
        let mut buf = vec![0u8; XATTR_SIZE_MAX];
        let _g = self.creds(ctx)?;
        let n = rustix::fs::getxattr(t.path().as_str(), OsStr::from_bytes(&host), &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    pub(super) fn xattr_set(
        &self,
        ctx: &Ctx,
        key: &FileKey,
        name: &[u8],
        value: &[u8],
        how: XattrSet,
    ) -> VfsResult<()> {
        self.check_writable()?;
        let host = host_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(VfsError::Xattr2Big);
        }
        let t = self.xattr_target(key)?;
        if !t.holds_xattrs() {
            return Err(VfsError::Perm);
        }
        let flags = match how {
            XattrSet::Either => XattrFlags::empty(),
            XattrSet::Create => XattrFlags::CREATE,
            XattrSet::Replace => XattrFlags::REPLACE,
        };
        let _g = self.creds(ctx)?;
        Ok(rustix::fs::setxattr(
            t.path().as_str(),
            OsStr::from_bytes(&host),
            value,
            flags,
        )?)
    }

    pub(super) fn xattr_list(&self, ctx: &Ctx, key: &FileKey) -> VfsResult<Vec<Vec<u8>>> {
        let t = self.xattr_target(key)?;
        if !t.holds_xattrs() {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; XATTR_LIST_MAX];
        let n = {
            let _g = self.creds(ctx)?;
            rustix::fs::listxattr(t.path().as_str(), &mut buf[..])?
        };
        let mut names: Vec<Vec<u8>> = buf[..n.min(buf.len())]
            .split(|&b| b == 0)
            .filter_map(|n| n.strip_prefix(PREFIX))
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub(super) fn xattr_remove(&self, ctx: &Ctx, key: &FileKey, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        let host = host_name(name)?;
        let t = self.xattr_target(key)?;
        if !t.holds_xattrs() {
            return Err(VfsError::Perm);
        }
        let _g = self.creds(ctx)?;
        Ok(rustix::fs::removexattr(
            t.path().as_str(),
            OsStr::from_bytes(&host),
        )?)
    }
}
