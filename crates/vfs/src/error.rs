/// What went wrong in a backend. The server maps each variant to one NFS status in one
/// place; variants follow the errno values a POSIX file system produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VfsError {
    /// Not owner (EPERM).
    #[error("operation not permitted")]
    Perm,
    /// No such file or directory.
    #[error("no such file or directory")]
    NoEnt,
    /// Input/output error.
    #[error("I/O error")]
    Io,
    /// No such device or address.
    #[error("no such device or address")]
    Nxio,
    /// Permission denied (EACCES).
    #[error("permission denied")]
    Acces,
    /// File exists.
    #[error("file exists")]
    Exist,
    /// Cross-device link.
    #[error("cross-device link")]
    Xdev,
    /// No such device.
    #[error("no such device")]
    NoDev,
    /// Not a directory.
    #[error("not a directory")]
    NotDir,
    /// Is a directory.
    #[error("is a directory")]
    IsDir,
    /// Invalid argument.
    #[error("invalid argument")]
    Inval,
    /// File too large.
    #[error("file too large")]
    FBig,
    /// No space left on device.
    #[error("no space left on device")]
    NoSpc,
    /// Read-only file system.
    #[error("read-only file system")]
    Rofs,
    /// Too many links.
    #[error("too many links")]
    MLink,
    /// Name too long.
    #[error("file name too long")]
    NameTooLong,
    /// Directory not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// Disk quota exceeded.
    #[error("disk quota exceeded")]
    DQuot,
    /// The object a key named no longer exists.
    #[error("stale file handle")]
    Stale,
    /// The key is not one this backend could have made.
    #[error("bad file handle")]
    BadHandle,
    /// SETATTR guard mismatch.
    #[error("ctime guard mismatch")]
    NotSync,
    /// A directory cookie is no longer valid.
    #[error("bad cookie")]
    BadCookie,
    /// Not supported by this backend.
    #[error("operation not supported")]
    NotSupp,
    /// Type of object not supported (e.g. MKNOD of an unknown kind).
    #[error("type not supported")]
    BadType,
    /// Try again later.
    #[error("resource temporarily unavailable")]
    Jukebox,
    /// Symbolic link loop or a symlink where none may be followed (ELOOP).
    #[error("too many levels of symbolic links")]
    Loop,
    /// No such extended attribute (ENODATA from an xattr call).
    #[error("no such extended attribute")]
    NoXattr,
    /// An extended attribute value or list too large (E2BIG, ERANGE).
    #[error("extended attribute too large")]
    Xattr2Big,
    /// Any other failure of the host; logged where it happens.
    #[error("server fault")]
    ServerFault,
}

/// Result of a backend call.
pub type VfsResult<T> = Result<T, VfsError>;

impl VfsError {
    /// Maps a host errno to the error it means.
    pub fn from_errno(e: i32) -> Self {
        match e {
            libc::EPERM => Self::Perm,
            libc::ENOENT => Self::NoEnt,
            libc::EIO => Self::Io,
            libc::ENXIO => Self::Nxio,
            libc::EACCES => Self::Acces,
            libc::EEXIST => Self::Exist,
            libc::EXDEV => Self::Xdev,
            libc::ENODEV => Self::NoDev,
            libc::ENOTDIR => Self::NotDir,
            libc::EISDIR => Self::IsDir,
            libc::EINVAL => Self::Inval,
            libc::EFBIG => Self::FBig,
            libc::ENOSPC => Self::NoSpc,
            libc::EROFS => Self::Rofs,
            libc::EMLINK => Self::MLink,
            libc::ENAMETOOLONG => Self::NameTooLong,
            libc::ENOTEMPTY => Self::NotEmpty,
            libc::EDQUOT => Self::DQuot,
            libc::ESTALE => Self::Stale,
            libc::EOPNOTSUPP => Self::NotSupp,
            libc::EAGAIN => Self::Jukebox,
            libc::ELOOP => Self::Loop,
            libc::ETXTBSY => Self::Acces,
            libc::EBADF => Self::Stale,
            // Only the xattr calls answer these.
            libc::ENODATA => Self::NoXattr,
            libc::E2BIG | libc::ERANGE => Self::Xattr2Big,
            _ => {
                tracing::warn!(errno = e, "unexpected errno from the host file system");
                Self::ServerFault
            }
        }
    }
}

impl From<std::io::Error> for VfsError {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Self::from_errno(n),
            None => {
                tracing::warn!(error = %e, "I/O error without errno");
                Self::Io
            }
        }
    }
}

impl From<rustix::io::Errno> for VfsError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::from_errno(e.raw_os_error())
    }
}
