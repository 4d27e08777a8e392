//! Errors of the client, grouped by who is at fault.
use crate::types::Status;
use rnfs_proto::mount3::MountStat3;

/// Why an RPC call did not produce results (shared with the server's callbacks).
pub use rnfs_rpc::xid::RpcError;

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server refused the operation with this NFS status.
    #[error("NFS error: {0}")]
    Nfs(Status),
    /// MOUNT refused the export path.
    #[error("mount refused: {0:?}")]
    Mount(MountStat3),
    /// The call could not be completed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The address is not a valid `nfs://` URL.
    #[error("bad NFS URL: {0}")]
    Url(String),
    /// The caller asked for something this object cannot do (our caller's mistake).
    #[error("invalid use: {0}")]
    Invalid(&'static str),
    /// More symbolic links in one path than a path may follow (ELOOP).
    #[error("too many levels of symbolic links")]
    TooManyLinks,
    /// An absolute symbolic link points outside the mounted export.
    #[error("symbolic link to {0:?} points outside the export")]
    LinkOutsideExport(String),
    /// The server's answer breaks a rule or contradicts itself (the peer's fault).
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// How a server's answer was impossible: refused so that a hostile or broken server can
/// neither make the client loop, nor hold unbounded memory, nor make it act on a name
/// that is not a single file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// A directory listing held a name that cannot name an entry of that directory: empty,
    /// `.` or `..` as an ordinary entry is dropped, but these never are.
    #[error("{dir}: the server listed an invalid name {name:?} ({why})")]
    BadName {
        /// The directory listed.
        dir: String,
        /// The name, as text (invalid UTF-8 replaced), quoted with escapes when shown.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A listing sent the client back to a cookie it had already continued from.
    #[error("{dir}: the server's listing loops (cookie {cookie} came back)")]
    CookieLoop {
        /// The directory listed.
        dir: String,
        /// The cookie seen twice.
        cookie: u64,
    },
    /// A listing reply had no entries and did not say the listing was complete.
    #[error("{dir}: the server's listing makes no progress (a reply without entries or end)")]
    NoProgress {
        /// The directory listed.
        dir: String,
    },
    /// A listing went past the client's bound on entries or name bytes per directory
    /// ([`crate::MountOptions::max_dir_entries`], [`crate::MountOptions::max_dir_bytes`]).
    #[error("{dir}: the listing exceeds {limit} (the server may be sending names forever)")]
    ListingTooLarge {
        /// The directory listed.
        dir: String,
        /// The bound passed, in words.
        limit: String,
    },
    /// A reply that breaks the protocol: results missing or of the wrong operation,
    /// attributes that do not decode, more data than asked for.
    #[error("the server's reply breaks the protocol: {0}")]
    BadReply(&'static str),
    /// FSSTAT figures that cannot all be true.
    #[error("impossible file system figures from the server: {0}")]
    Fsstat(String),
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::Nfs(s)
    }
}

impl Error {
    /// The closest Linux errno, for tools and the FUSE layer (an NFS status by name:
    /// [`Status::errno`]).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Nfs(s) => s.errno(),
            Error::Mount(s) => match s {
                MountStat3::Ok => 0,
                MountStat3::Perm => 1,
                MountStat3::NoEnt => 2,
                MountStat3::Io => 5,
                MountStat3::Acces => 13,
                MountStat3::NotDir => 20,
                MountStat3::Inval => 22,
                MountStat3::NameTooLong => 36,
                MountStat3::NotSupp => 95,
                MountStat3::ServerFault => 5,
            },
            Error::Rpc(RpcError::TimedOut { .. }) => 110,
            Error::Rpc(RpcError::Connect { .. }) => 111,
            Error::Rpc(_) => 5,
            Error::Url(_) | Error::Invalid(_) => 22,
            Error::TooManyLinks => 40,         // ELOOP
            Error::LinkOutsideExport(_) => 18, // EXDEV
            // A listing that loops is ELOOP, as the Linux client says; the rest EIO.
            Error::Server(ServerError::CookieLoop { .. } | ServerError::NoProgress { .. }) => 40,
            Error::Server(_) => 5,
        }
    }

    /// The NFS status, if the server gave one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Nfs(s) => Some(*s),
            _ => None,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let code = e.errno();
        std::io::Error::new(
            std::io::Error::from_raw_os_error(code).kind(),
            e.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_linux_errnos_not_nfs_numbers() {
        for (s, want) in [
            (Status::NoEnt, std::io::ErrorKind::NotFound),
            (Status::Acces, std::io::ErrorKind::PermissionDenied),
            (Status::Exist, std::io::ErrorKind::AlreadyExists),
        ] {
            assert_eq!(std::io::Error::from(Error::Nfs(s)).kind(), want, "{s:?}");
        }
        // (ErrorKinds for the rest need Rust 1.83; the workspace supports 1.80.)
        assert_eq!(Error::Nfs(Status::NoSpc).errno(), 28);
        assert_eq!(Error::Nfs(Status::Rofs).errno(), 30);
        assert_eq!(Error::Nfs(Status::NameTooLong).errno(), 36);
        assert_eq!(Error::Nfs(Status::NotEmpty).errno(), 39);
        assert_eq!(Error::Nfs(Status::Stale).errno(), 116);
        assert_eq!(Error::Nfs(Status::DQuot).errno(), 122);
        assert_eq!(Error::Mount(MountStat3::NameTooLong).errno(), 36);
        assert_eq!(Error::Mount(MountStat3::NotSupp).errno(), 95);
    }
}
