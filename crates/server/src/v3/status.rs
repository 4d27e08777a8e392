//! The one mapping from neutral errors to NFSv3 and MOUNT v3 statuses.
//!
//! Everything below the procedures fails with [`VfsError`]: the backend, and the server's
//! own checks of handles, exports and searches (`BADHANDLE`, `STALE`, `ACCES`/`PERM` for a
//! client an export refuses, `XDEV` for a second handle of another export, `JUKEBOX` for a
//! search refused at its cap, `ROFS`). NFSv4 maps the same errors in its own module.
use rnfs_proto::mount3::MountStat3;
use rnfs_proto::nfs3::Nfsstat3;
use rnfs_vfs::VfsError;

/// The NFSv3 status for a backend error.
pub fn nfs3(e: VfsError) -> Nfsstat3 {
    use VfsError as E;
    match e {
        E::Perm => Nfsstat3::Perm,
        E::NoEnt => Nfsstat3::NoEnt,
        E::Io => Nfsstat3::Io,
        E::Nxio => Nfsstat3::Nxio,
        E::Acces => Nfsstat3::Acces,
        E::Exist => Nfsstat3::Exist,
        E::Xdev => Nfsstat3::Xdev,
        E::NoDev => Nfsstat3::NoDev,
        E::NotDir => Nfsstat3::NotDir,
        E::IsDir => Nfsstat3::IsDir,
        E::Inval => Nfsstat3::Inval,
        E::FBig => Nfsstat3::FBig,
        E::NoSpc => Nfsstat3::NoSpc,
        E::Rofs => Nfsstat3::Rofs,
        E::MLink => Nfsstat3::MLink,
        E::NameTooLong => Nfsstat3::NameTooLong,
        E::NotEmpty => Nfsstat3::NotEmpty,
        E::DQuot => Nfsstat3::DQuot,
        E::Stale => Nfsstat3::Stale,
        E::BadHandle => Nfsstat3::BadHandle,
        E::NotSync => Nfsstat3::NotSync,
        E::BadCookie => Nfsstat3::BadCookie,
        E::NotSupp => Nfsstat3::NotSupp,
        E::BadType => Nfsstat3::BadType,
        E::Jukebox => Nfsstat3::Jukebox,
        // NFSv3 has no ELOOP: a symlink met where none may be followed is an invalid
        // argument for the caller (knfsd answers the same way).
        E::Loop => Nfsstat3::Inval,
        // NFSv3 has no extended attributes: no procedure of it reaches these.
        E::NoXattr | E::Xattr2Big => Nfsstat3::Io,
        E::ServerFault => Nfsstat3::ServerFault,
    }
}

/// The MOUNT status for a backend error.
pub fn mount3(e: VfsError) -> MountStat3 {
    use VfsError as E;
    match e {
        E::Perm => MountStat3::Perm,
        E::NoEnt | E::Stale => MountStat3::NoEnt,
        E::Acces => MountStat3::Acces,
        E::NotDir => MountStat3::NotDir,
        E::Inval | E::Loop => MountStat3::Inval,
        E::NameTooLong => MountStat3::NameTooLong,
        E::NotSupp => MountStat3::NotSupp,
        E::Io => MountStat3::Io,
        _ => MountStat3::ServerFault,
    }
}
