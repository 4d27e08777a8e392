//! Why an NFSv4 operation failed, and the one map from backend errors to it.
//!
//! [`Nfs4Error`] names the `nfsstat4` values (RFC 8881 section 15.1) that the pseudo file
//! system, the attributes and the owner mapping produce. [`Nfs4Error::code`] is the number
//! on the wire; the COMPOUND engine converts it to the generated `nfsstat4` type in one
//! place. [`Nfs4Error::from_vfs`] is the one map from backend errors.
use crate::v4::state::locking::LockingError;
use rnfs_vfs::VfsError;

/// An `nfsstat4` other than `NFS4_OK`, for the errors this layer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Nfs4Error {
    /// NFS4ERR_PERM: not owner; also an unprivileged source port on a `secure` export.
    #[error("NFS4ERR_PERM")]
    Perm,
    /// NFS4ERR_NOENT: no such file, or a pseudo node the client may not see.
    #[error("NFS4ERR_NOENT")]
    NoEnt,
    /// NFS4ERR_IO.
    #[error("NFS4ERR_IO")]
    Io,
    /// NFS4ERR_NXIO.
    #[error("NFS4ERR_NXIO")]
    Nxio,
    /// NFS4ERR_ACCESS: permission denied, or an export that does not list the client.
    #[error("NFS4ERR_ACCESS")]
    Access,
    /// NFS4ERR_EXIST.
    #[error("NFS4ERR_EXIST")]
    Exist,
    /// NFS4ERR_XDEV.
    #[error("NFS4ERR_XDEV")]
    Xdev,
    /// NFS4ERR_NOTDIR.
    #[error("NFS4ERR_NOTDIR")]
    NotDir,
    /// NFS4ERR_ISDIR.
    #[error("NFS4ERR_ISDIR")]
    IsDir,
    /// NFS4ERR_INVAL.
    #[error("NFS4ERR_INVAL")]
    Inval,
    /// NFS4ERR_FBIG.
    #[error("NFS4ERR_FBIG")]
    FBig,
    /// NFS4ERR_NOSPC.
    #[error("NFS4ERR_NOSPC")]
    NoSpc,
    /// NFS4ERR_ROFS.
    #[error("NFS4ERR_ROFS")]
    Rofs,
    /// NFS4ERR_MLINK.
    #[error("NFS4ERR_MLINK")]
    MLink,
    /// NFS4ERR_NAMETOOLONG.
    #[error("NFS4ERR_NAMETOOLONG")]
    NameTooLong,
    /// NFS4ERR_NOTEMPTY.
    #[error("NFS4ERR_NOTEMPTY")]
    NotEmpty,
    /// NFS4ERR_DQUOT.
    #[error("NFS4ERR_DQUOT")]
    DQuot,
    /// NFS4ERR_STALE.
    #[error("NFS4ERR_STALE")]
    Stale,
    /// NFS4ERR_BADHANDLE.
    #[error("NFS4ERR_BADHANDLE")]
    BadHandle,
    /// NFS4ERR_BAD_COOKIE.
    #[error("NFS4ERR_BAD_COOKIE")]
    BadCookie,
    /// NFS4ERR_NOTSUPP.
    #[error("NFS4ERR_NOTSUPP")]
    NotSupp,
    /// NFS4ERR_SERVERFAULT.
    #[error("NFS4ERR_SERVERFAULT")]
    ServerFault,
    /// NFS4ERR_BADTYPE.
    #[error("NFS4ERR_BADTYPE")]
    BadType,
    /// NFS4ERR_DELAY.
    #[error("NFS4ERR_DELAY")]
    Delay,
    /// NFS4ERR_SYMLINK: a symbolic link where a directory was needed.
    #[error("NFS4ERR_SYMLINK")]
    Symlink,
    /// NFS4ERR_ATTRNOTSUPP: an attribute the server does not support.
    #[error("NFS4ERR_ATTRNOTSUPP")]
    AttrNotSupp,
    /// NFS4ERR_BADXDR: arguments that do not decode.
    #[error("NFS4ERR_BADXDR")]
    BadXdr,
    /// NFS4ERR_BADOWNER: an owner or group string that cannot be mapped to an id.
    #[error("NFS4ERR_BADOWNER")]
    BadOwner,
    /// NFS4ERR_BADNAME: a name that cannot be a component (`.`, `..`, a `/` or a NUL in it).
    #[error("NFS4ERR_BADNAME")]
    BadName,
    /// NFS4ERR_NOT_SAME: VERIFY found the attributes differ.
    #[error("NFS4ERR_NOT_SAME")]
    NotSame,
    /// NFS4ERR_SAME: NVERIFY found the attributes equal.
    #[error("NFS4ERR_SAME")]
    Same,
    /// NFS4ERR_NOFILEHANDLE: an operation that needs a current filehandle found none.
    #[error("NFS4ERR_NOFILEHANDLE")]
    NoFileHandle,
    /// NFS4ERR_RESTOREFH: RESTOREFH with no saved filehandle.
    #[error("NFS4ERR_RESTOREFH")]
    RestoreFh,
    /// NFS4ERR_BAD_STATEID: the current stateid used when there is none.
    #[error("NFS4ERR_BAD_STATEID")]
    BadStateid,
    /// NFS4ERR_MINOR_VERS_MISMATCH: a minor version this server does not speak.
    #[error("NFS4ERR_MINOR_VERS_MISMATCH")]
    MinorVersMismatch,
    /// NFS4ERR_OP_ILLEGAL: an operation number that names no operation.
    #[error("NFS4ERR_OP_ILLEGAL")]
    OpIllegal,
    /// NFS4ERR_SEQUENCE_POS: SEQUENCE anywhere but first.
    #[error("NFS4ERR_SEQUENCE_POS")]
    SequencePos,
    /// NFS4ERR_REQ_TOO_BIG: a request larger than the session allows.
    #[error("NFS4ERR_REQ_TOO_BIG")]
    ReqTooBig,
    /// NFS4ERR_REP_TOO_BIG: the reply would exceed the session's largest reply.
    #[error("NFS4ERR_REP_TOO_BIG")]
    RepTooBig,
    /// NFS4ERR_REP_TOO_BIG_TO_CACHE: the reply would exceed the largest cached reply.
    #[error("NFS4ERR_REP_TOO_BIG_TO_CACHE")]
    RepTooBigToCache,
    /// NFS4ERR_TOO_MANY_OPS: more operations than the session (or the server) allows.
    #[error("NFS4ERR_TOO_MANY_OPS")]
    TooManyOps,
    /// NFS4ERR_OP_NOT_IN_SESSION: an NFSv4.1 compound that does not start with SEQUENCE
    /// (nor with an operation allowed without a session).
    #[error("NFS4ERR_OP_NOT_IN_SESSION")]
    OpNotInSession,
    /// NFS4ERR_NOT_ONLY_OP: an operation allowed without a session, not alone.
    #[error("NFS4ERR_NOT_ONLY_OP")]
    NotOnlyOp,
    /// NFS4ERR_TOOSMALL: READDIR: not even one entry fits in `maxcount`.
    #[error("NFS4ERR_TOOSMALL")]
    TooSmall,
    /// NFS4ERR_DENIED: a byte-range lock conflicts (LOCK, LOCKT; the result carries LOCK4denied).
    #[error("NFS4ERR_DENIED")]
    Denied,
    /// NFS4ERR_LOCKED: I/O under a special stateid against a deny reservation.
    #[error("NFS4ERR_LOCKED")]
    Locked,
    /// NFS4ERR_GRACE: a new open or lock while the server is in its grace period.
    #[error("NFS4ERR_GRACE")]
    Grace,
    /// NFS4ERR_SHARE_DENIED: an OPEN whose share reservation conflicts with another open.
    #[error("NFS4ERR_SHARE_DENIED")]
    ShareDenied,
    /// NFS4ERR_RESOURCE: the client holds as much state as it may.
    #[error("NFS4ERR_RESOURCE")]
    Resource,
    /// NFS4ERR_STALE_STATEID: NFSv4.0: a stateid of an earlier server instance.
    #[error("NFS4ERR_STALE_STATEID")]
    StaleStateid,
    /// NFS4ERR_OLD_STATEID: a stateid seqid older than the current one.
    #[error("NFS4ERR_OLD_STATEID")]
    OldStateid,
    /// NFS4ERR_NO_GRACE: a reclaim outside grace, or by a client with nothing to reclaim.
    #[error("NFS4ERR_NO_GRACE")]
    NoGrace,
    /// NFS4ERR_RECLAIM_BAD: a reclaim of what the server cannot have granted (a delegation).
    #[error("NFS4ERR_RECLAIM_BAD")]
    ReclaimBad,
    /// NFS4ERR_LOCKS_HELD: CLOSE or FREE_STATEID while byte-range locks remain.
    #[error("NFS4ERR_LOCKS_HELD")]
    LocksHeld,
    /// NFS4ERR_OPENMODE: a lock or I/O the open's access does not allow.
    #[error("NFS4ERR_OPENMODE")]
    OpenMode,
    /// NFS4ERR_WRONG_TYPE: OPEN of a file that is neither regular, a directory nor a link.
    #[error("NFS4ERR_WRONG_TYPE")]
    WrongType,
    /// NFS4ERR_DELEG_REVOKED: a delegation stateid that was revoked (until FREE_STATEID).
    #[error("NFS4ERR_DELEG_REVOKED")]
    DelegRevoked,
    /// NFS4ERR_NOXATTR: no such extended attribute (RFC 8276 section 8.4).
    #[error("NFS4ERR_NOXATTR")]
    NoXattr,
    /// NFS4ERR_XATTR2BIG: an extended attribute value too large to set or to return.
    #[error("NFS4ERR_XATTR2BIG")]
    Xattr2Big,
    /// Another `nfsstat4`, by number (from the session operations, built elsewhere).
    #[error("nfsstat4 {0}")]
    Status(u32),
}

impl Nfs4Error {
    /// The `nfsstat4` value on the wire (RFC 8881 section 15.1, RFC 5662).
    pub fn code(self) -> u32 {
        use Nfs4Error as E;
        match self {
            E::Perm => 1,
            E::NoEnt => 2,
            E::Io => 5,
            E::Nxio => 6,
            E::Access => 13,
            E::Exist => 17,
            E::Xdev => 18,
            E::NotDir => 20,
            E::IsDir => 21,
            E::Inval => 22,
            E::FBig => 27,
            E::NoSpc => 28,
            E::Rofs => 30,
            E::MLink => 31,
            E::NameTooLong => 63,
            E::NotEmpty => 66,
            E::DQuot => 69,
            E::Stale => 70,
            E::BadHandle => 10001,
            E::BadCookie => 10003,
            E::NotSupp => 10004,
            E::ServerFault => 10006,
            E::BadType => 10007,
            E::Delay => 10008,
            E::Same => 10009,
            E::NotSame => 10027,
            E::Symlink => 10029,
            E::AttrNotSupp => 10032,
            E::BadXdr => 10036,
            E::BadOwner => 10039,
            E::BadName => 10041,
            E::NoFileHandle => 10020,
            E::MinorVersMismatch => 10021,
            E::BadStateid => 10025,
            E::RestoreFh => 10030,
            E::OpIllegal => 10044,
            E::SequencePos => 10064,
            E::ReqTooBig => 10065,
            E::RepTooBig => 10066,
            E::RepTooBigToCache => 10067,
            E::TooManyOps => 10070,
            E::OpNotInSession => 10071,
            E::NotOnlyOp => 10081,
            E::TooSmall => 10005,
            E::Denied => 10010,
            E::Locked => 10012,
            E::Grace => 10013,
            E::ShareDenied => 10015,
            E::Resource => 10018,
            E::StaleStateid => 10023,
            E::OldStateid => 10024,
            E::NoGrace => 10033,
            E::ReclaimBad => 10034,
            E::LocksHeld => 10037,
            E::OpenMode => 10038,
            E::WrongType => 10083,
            E::DelegRevoked => 10087,
            E::NoXattr => 10095,
            E::Xattr2Big => 10096,
            E::Status(n) => n,
        }
    }

    /// The status for a backend error: the one place where they are mapped for NFSv4.
    pub fn from_vfs(e: VfsError) -> Self {
        use Nfs4Error as N;
        use VfsError as E;
        match e {
            E::Perm => N::Perm,
            E::NoEnt => N::NoEnt,
            E::Io => N::Io,
            E::Nxio => N::Nxio,
            E::Acces => N::Access,
            E::Exist => N::Exist,
            E::Xdev => N::Xdev,
            // NFSv4 has no ENODEV; knfsd answers IO for it.
            E::NoDev => N::Io,
            E::NotDir => N::NotDir,
            E::IsDir => N::IsDir,
            E::Inval => N::Inval,
            E::FBig => N::FBig,
            E::NoSpc => N::NoSpc,
            E::Rofs => N::Rofs,
            E::MLink => N::MLink,
            E::NameTooLong => N::NameTooLong,
            E::NotEmpty => N::NotEmpty,
            E::DQuot => N::DQuot,
            E::Stale => N::Stale,
            E::BadHandle => N::BadHandle,
            // NFSv4 has no NOT_SYNC (its SETATTR guard is a stateid, not a ctime).
            E::NotSync => N::Inval,
            E::BadCookie => N::BadCookie,
            E::NotSupp => N::NotSupp,
            E::BadType => N::BadType,
            E::Jukebox => N::Delay,
            // A symbolic link met where none may be followed (RFC 8881 15.1.2.9).
            E::Loop => N::Symlink,
            E::NoXattr => N::NoXattr,
            E::Xattr2Big => N::Xattr2Big,
            E::ServerFault => N::ServerFault,
        }
    }
}

impl Nfs4Error {
    /// The wire type's form; SERVERFAULT for a number it does not know (only
    /// [`Nfs4Error::Status`] can carry one).
    pub fn status(self) -> rnfs_proto::nfs4::Nfsstat4 {
        use rnfs_proto::nfs4::Nfsstat4;
        Nfsstat4::from_u32(self.code()).unwrap_or(Nfsstat4::Nfs4errServerfault)
    }
}

impl Nfs4Error {
    /// The status for a refusal of the locking state, in minor version `minor`: the one
    /// place where they are mapped. A stateid of an earlier server instance is
    /// BAD_STATEID from NFSv4.1 on (RFC 8881 obsoletes STALE_STATEID), as in knfsd.
    pub fn from_locking(e: &LockingError, minor: u32) -> Self {
        use LockingError as L;
        match e {
            L::BadStateid => Self::BadStateid,
            L::StaleStateid if minor == 0 => Self::StaleStateid,
            L::StaleStateid => Self::BadStateid,
            L::OldStateid => Self::OldStateid,
            L::Inval => Self::Inval,
            L::LocksHeld => Self::LocksHeld,
            L::OpenMode => Self::OpenMode,
            L::ShareDenied { .. } => Self::ShareDenied,
            L::Denied(_) => Self::Denied,
            L::Locked => Self::Locked,
            L::Resource => Self::Resource,
            L::Delay | L::Recalling { .. } => Self::Delay,
            L::DelegRevoked => Self::DelegRevoked,
        }
    }
}

impl From<VfsError> for Nfs4Error {
    fn from(e: VfsError) -> Self {
        Self::from_vfs(e)
    }
}

/// Result of this layer.
pub type R4<T> = Result<T, Nfs4Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_those_of_the_rfc() {
        // A few from RFC 8881 section 15.1 / the XDR of RFC 5662, by hand.
        assert_eq!(Nfs4Error::Access.code(), 13);
        assert_eq!(Nfs4Error::Stale.code(), 70);
        assert_eq!(Nfs4Error::AttrNotSupp.code(), 10032);
        assert_eq!(Nfs4Error::BadOwner.code(), 10039);
        assert_eq!(Nfs4Error::BadName.code(), 10041);
        assert_eq!(Nfs4Error::from(VfsError::Jukebox), Nfs4Error::Delay);
        assert_eq!(Nfs4Error::from(VfsError::Loop), Nfs4Error::Symlink);
        // Each status is the generated type's of the same name (a typo in a number shows).
        use rnfs_proto::nfs4::Nfsstat4 as W;
        for (e, w) in [
            (Nfs4Error::Perm, W::Nfs4errPerm),
            (Nfs4Error::NoEnt, W::Nfs4errNoent),
            (Nfs4Error::Io, W::Nfs4errIo),
            (Nfs4Error::Nxio, W::Nfs4errNxio),
            (Nfs4Error::Access, W::Nfs4errAccess),
            (Nfs4Error::Exist, W::Nfs4errExist),
            (Nfs4Error::Xdev, W::Nfs4errXdev),
            (Nfs4Error::NotDir, W::Nfs4errNotdir),
            (Nfs4Error::IsDir, W::Nfs4errIsdir),
            (Nfs4Error::Inval, W::Nfs4errInval),
            (Nfs4Error::FBig, W::Nfs4errFbig),
            (Nfs4Error::NoSpc, W::Nfs4errNospc),
            (Nfs4Error::Rofs, W::Nfs4errRofs),
            (Nfs4Error::MLink, W::Nfs4errMlink),
            (Nfs4Error::NameTooLong, W::Nfs4errNametoolong),
            (Nfs4Error::NotEmpty, W::Nfs4errNotempty),
            (Nfs4Error::DQuot, W::Nfs4errDquot),
            (Nfs4Error::Stale, W::Nfs4errStale),
            (Nfs4Error::BadHandle, W::Nfs4errBadhandle),
            (Nfs4Error::BadCookie, W::Nfs4errBadCookie),
            (Nfs4Error::NotSupp, W::Nfs4errNotsupp),
            (Nfs4Error::ServerFault, W::Nfs4errServerfault),
            (Nfs4Error::BadType, W::Nfs4errBadtype),
            (Nfs4Error::Delay, W::Nfs4errDelay),
            (Nfs4Error::Symlink, W::Nfs4errSymlink),
            (Nfs4Error::AttrNotSupp, W::Nfs4errAttrnotsupp),
            (Nfs4Error::BadXdr, W::Nfs4errBadxdr),
            (Nfs4Error::BadOwner, W::Nfs4errBadowner),
            (Nfs4Error::BadName, W::Nfs4errBadname),
            (Nfs4Error::NotSame, W::Nfs4errNotSame),
            (Nfs4Error::Same, W::Nfs4errSame),
            (Nfs4Error::NoFileHandle, W::Nfs4errNofilehandle),
            (Nfs4Error::RestoreFh, W::Nfs4errRestorefh),
            (Nfs4Error::BadStateid, W::Nfs4errBadStateid),
            (Nfs4Error::MinorVersMismatch, W::Nfs4errMinorVersMismatch),
            (Nfs4Error::OpIllegal, W::Nfs4errOpIllegal),
            (Nfs4Error::SequencePos, W::Nfs4errSequencePos),
            (Nfs4Error::ReqTooBig, W::Nfs4errReqTooBig),
            (Nfs4Error::RepTooBig, W::Nfs4errRepTooBig),
            (Nfs4Error::RepTooBigToCache, W::Nfs4errRepTooBigToCache),
            (Nfs4Error::TooManyOps, W::Nfs4errTooManyOps),
            (Nfs4Error::OpNotInSession, W::Nfs4errOpNotInSession),
            (Nfs4Error::NotOnlyOp, W::Nfs4errNotOnlyOp),
            (Nfs4Error::TooSmall, W::Nfs4errToosmall),
            (Nfs4Error::Denied, W::Nfs4errDenied),
            (Nfs4Error::Locked, W::Nfs4errLocked),
            (Nfs4Error::Grace, W::Nfs4errGrace),
            (Nfs4Error::ShareDenied, W::Nfs4errShareDenied),
            (Nfs4Error::Resource, W::Nfs4errResource),
            (Nfs4Error::StaleStateid, W::Nfs4errStaleStateid),
            (Nfs4Error::OldStateid, W::Nfs4errOldStateid),
            (Nfs4Error::NoGrace, W::Nfs4errNoGrace),
            (Nfs4Error::ReclaimBad, W::Nfs4errReclaimBad),
            (Nfs4Error::LocksHeld, W::Nfs4errLocksHeld),
            (Nfs4Error::OpenMode, W::Nfs4errOpenmode),
            (Nfs4Error::WrongType, W::Nfs4errWrongType),
            (Nfs4Error::DelegRevoked, W::Nfs4errDelegRevoked),
            (Nfs4Error::NoXattr, W::Nfs4errNoxattr),
            (Nfs4Error::Xattr2Big, W::Nfs4errXattr2big),
        ] {
            assert_eq!(e.status(), w, "{e:?}");
        }
        assert_eq!(Nfs4Error::Status(10022).status(), W::Nfs4errStaleClientid);
        // The locking state's own numbers agree with the map.
        for e in [
            LockingError::BadStateid,
            LockingError::OldStateid,
            LockingError::StaleStateid,
            LockingError::Inval,
            LockingError::LocksHeld,
            LockingError::OpenMode,
            LockingError::ShareDenied { clients: vec![] },
            LockingError::Locked,
            LockingError::Resource,
            LockingError::Delay,
            LockingError::Recalling { clients: vec![] },
            LockingError::DelegRevoked,
        ] {
            assert_eq!(Nfs4Error::from_locking(&e, 1).code(), e.code(), "{e:?}");
        }
        assert_eq!(
            Nfs4Error::from_locking(&LockingError::StaleStateid, 0),
            Nfs4Error::StaleStateid
        );
        assert_eq!(Nfs4Error::Status(4242).status(), W::Nfs4errServerfault);
    }
}
