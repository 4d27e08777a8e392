//! The client's own types: attributes, handles, statuses, stability, what to set and what
//! to create. They say what the client means, not what one protocol version puts on the
//! wire: NFSv3 replies are mapped to them in one place (the private module `v3`), and NFSv4 will
//! map to the same types, so the layers above (open files, the FUSE mount, the tools)
//! never see a protocol version.

/// The most bytes a file handle may have: NFSv4's `NFS4_FHSIZE` (RFC 8881 section 4.2.1;
/// NFSv3 handles have at most 64, RFC 1813 section 2.5).
pub const FH_MAX: usize = 128;

/// A server's file handle: opaque bytes, at most [`FH_MAX`] of them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileHandle(Vec<u8>);

impl FileHandle {
    /// A handle of these bytes; `None` when there are more than [`FH_MAX`].
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= FH_MAX).then_some(Self(bytes))
    }

    /// A handle a decoder has already bounded to [`FH_MAX`] bytes or fewer (NFSv3's has
    /// 64); longer ones are cut, which cannot happen.
    pub(crate) fn from_bounded(mut bytes: Vec<u8>) -> Self {
        debug_assert!(bytes.len() <= FH_MAX);
        bytes.truncate(FH_MAX);
        Self(bytes)
    }

    /// The handle's bytes, as the server sent them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fh:")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What kind of object a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Reg,
    /// A directory.
    Dir,
    /// A block device.
    Blk,
    /// A character device.
    Chr,
    /// A symbolic link.
    Lnk,
    /// A socket.
    Sock,
    /// A named pipe.
    Fifo,
}

/// A time: seconds (negative before 1970) and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Seconds since 1970-01-01 00:00 UTC.
    pub seconds: i64,
    /// Nanoseconds within the second (below 1,000,000,000).
    pub nseconds: u32,
}

impl Time {
    /// The time as a [`std::time::SystemTime`].
    pub fn to_system(self) -> std::time::SystemTime {
        let n = std::time::Duration::from_nanos(u64::from(self.nseconds.min(999_999_999)));
        let s = std::time::Duration::from_secs(self.seconds.unsigned_abs());
        if self.seconds >= 0 {
            std::time::UNIX_EPOCH + s + n
        } else {
            std::time::UNIX_EPOCH - s + n
        }
    }

    /// A [`std::time::SystemTime`] as a time.
    pub fn from_system(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nseconds: d.subsec_nanos(),
            },
            Err(e) => {
                // Before the epoch: whole seconds down, nanoseconds up from there.
                let d = e.duration();
                let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nseconds = 0;
                if d.subsec_nanos() > 0 {
                    seconds -= 1;
                    nseconds = 1_000_000_000 - d.subsec_nanos();
                }
                Self { seconds, nseconds }
            }
        }
    }
}

/// Major and minor number of a device file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Device {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// The file system a file is on: NFSv4's `fsid4` (RFC 8881 section 5.8.1.9); an NFSv3
/// `fsid` is the major part, with minor 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Fsid {
    /// Major part.
    pub major: u64,
    /// Minor part.
    pub minor: u64,
}

impl std::fmt::Display for Fsid {
    /// `major` alone when minor is 0 (every NFSv3 fsid), else `major.minor`; padded as
    /// asked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.minor == 0 {
            f.pad(&self.major.to_string())
        } else {
            f.pad(&format!("{}.{}", self.major, self.minor))
        }
    }
}

/// Attributes of a file, as the client knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// What kind of file.
    pub ftype: FileType,
    /// Permission bits (0o7777).
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Owner (a number; servers that speak names are mapped to numbers below this type).
    pub uid: u32,
    /// Group (a number).
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Bytes of storage used.
    pub used: u64,
    /// Device numbers (of a device file).
    pub rdev: Device,
    /// The file system the file is on.
    pub fsid: Fsid,
    /// File id (inode number), unique within the file system.
    pub fileid: u64,
    /// Last access.
    pub atime: Time,
    /// Last data change.
    pub mtime: Time,
    /// Last attribute change.
    pub ctime: Time,
    /// A value that changes whenever the file's data or attributes change (NFSv4's
    /// `change` attribute, RFC 8881 section 5.8.1.4). NFSv3 has none: it is derived from
    /// ctime as the Linux client does (`nfs_timespec_to_change_attr`: seconds shifted up
    /// by 30 bits, plus nanoseconds), see [`change_from_ctime`].
    pub change: u64,
}

/// The change attribute of a server that only gives ctime (NFSv3): the Linux client's
/// `(seconds << 30) + nanoseconds`, which orders as ctime does.
pub fn change_from_ctime(ctime: Time) -> u64 {
    ((ctime.seconds as u64) << 30).wrapping_add(u64::from(ctime.nseconds))
}

/// How to set a time attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    /// Leave it.
    #[default]
    DontChange,
    /// To the server's clock.
    ServerTime,
    /// To this time.
    ClientTime(Time),
}

/// Attributes to set; `None` (or [`SetTime::DontChange`]) leaves one as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: SetTime,
    /// New modification time.
    pub mtime: SetTime,
}

impl SetAttr {
    /// Only the permission bits.
    pub fn mode(mode: u32) -> Self {
        Self {
            mode: Some(mode),
            ..Self::default()
        }
    }
}

/// How CREATE treats a name that exists (RFC 1813 3.3.8, RFC 8881 section 18.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateHow {
    /// Create, or truncate per the attributes if it exists.
    Unchecked(SetAttr),
    /// Fail with [`Status::Exist`] if it exists.
    Guarded(SetAttr),
    /// Create once: a retransmission with the same verifier succeeds, another verifier
    /// gets [`Status::Exist`]. The server may keep the verifier in the times, so set them
    /// afterwards.
    Exclusive([u8; 8]),
}

/// A special file to create (MKNOD in NFSv3, CREATE in NFSv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialFile {
    /// A named pipe.
    Fifo,
    /// A socket.
    Sock,
    /// A character device.
    Chr(Device),
    /// A block device.
    Blk(Device),
}

/// How far a WRITE's data has gone towards stable storage (RFC 1813 3.3.7 `stable_how`,
/// RFC 8881 section 18.32 `stable_how4`); ordered from least to most stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stability {
    /// Only in the server's memory: COMMIT before relying on it.
    Unstable,
    /// The data is on stable storage, metadata perhaps not.
    DataSync,
    /// Data and metadata on stable storage.
    FileSync,
}

/// Space and file-slot figures of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    /// Total bytes.
    pub tbytes: u64,
    /// Free bytes.
    pub fbytes: u64,
    /// Free bytes available to the caller.
    pub abytes: u64,
    /// Total file slots.
    pub tfiles: u64,
    /// Free file slots.
    pub ffiles: u64,
    /// Free file slots available to the caller.
    pub afiles: u64,
}

/// Bits of an access check (RFC 1813 3.3.4, the same values in RFC 8881 section 18.1).
pub mod access {
    /// Read data or list a directory.
    pub const READ: u32 = 0x0001;
    /// Look up a name in a directory.
    pub const LOOKUP: u32 = 0x0002;
    /// Rewrite existing data.
    pub const MODIFY: u32 = 0x0004;
    /// Write new data or add directory entries.
    pub const EXTEND: u32 = 0x0008;
    /// Delete a directory entry.
    pub const DELETE: u32 = 0x0010;
    /// Execute a file.
    pub const EXECUTE: u32 = 0x0020;
}

/// Why a server refused an operation: the client's own statuses. NFSv3's map to them in
/// the private module `v3`; NFSv4 shares most (same meaning, same names) and its state statuses
/// (stale state ids, grace, sessions) are handled below the client's API, so they are
/// added here only as far as a caller must tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Not owner (EPERM).
    Perm,
    /// No such file or directory.
    NoEnt,
    /// A hard I/O error.
    Io,
    /// No such device or address.
    Nxio,
    /// Permission denied.
    Acces,
    /// The file exists.
    Exist,
    /// A link across file systems.
    Xdev,
    /// No such device.
    NoDev,
    /// Not a directory.
    NotDir,
    /// Is a directory.
    IsDir,
    /// An invalid argument.
    Inval,
    /// File too large.
    FBig,
    /// No space left on the device.
    NoSpc,
    /// Read-only file system.
    Rofs,
    /// Too many hard links.
    MLink,
    /// Name too long.
    NameTooLong,
    /// Directory not empty.
    NotEmpty,
    /// Quota exceeded.
    DQuot,
    /// Stale file handle.
    Stale,
    /// Too many levels of remote in path.
    Remote,
    /// An invalid file handle.
    BadHandle,
    /// A guarded SETATTR's check failed.
    NotSync,
    /// A directory cookie is stale.
    BadCookie,
    /// The operation is not supported.
    NotSupp,
    /// A buffer or request is too small.
    TooSmall,
    /// The server failed in a way it could not name.
    ServerFault,
    /// The server does not support the type of object.
    BadType,
    /// Try again later (NFS3ERR_JUKEBOX, NFS4ERR_DELAY).
    Jukebox,
    /// A status the client has no name for, with its number as the server sent it.
    Other(u32),
}

impl Status {
    /// The closest Linux errno. NFS status numbers are not errnos past EROFS/EMLINK
    /// (NFS3ERR_NAMETOOLONG is 63, Linux's ENAMETOOLONG 36), so each is mapped by name.
    pub fn errno(self) -> i32 {
        match self {
            Status::Perm => 1,                           // EPERM
            Status::NoEnt => 2,                          // ENOENT
            Status::Io => 5,                             // EIO
            Status::Nxio => 6,                           // ENXIO
            Status::Acces => 13,                         // EACCES
            Status::Exist => 17,                         // EEXIST
            Status::Xdev => 18,                          // EXDEV
            Status::NoDev => 19,                         // ENODEV
            Status::NotDir => 20,                        // ENOTDIR
            Status::IsDir => 21,                         // EISDIR
            Status::Inval => 22,                         // EINVAL
            Status::FBig => 27,                          // EFBIG
            Status::NoSpc => 28,                         // ENOSPC
            Status::Rofs => 30,                          // EROFS
            Status::MLink => 31,                         // EMLINK
            Status::NameTooLong => 36,                   // ENAMETOOLONG
            Status::NotEmpty => 39,                      // ENOTEMPTY
            Status::Remote => 66,                        // EREMOTE
            Status::Stale => 116,                        // ESTALE
            Status::DQuot => 122,                        // EDQUOT
            Status::NotSupp => 95,                       // EOPNOTSUPP
            Status::Jukebox => 11,                       // EAGAIN
            Status::ServerFault | Status::Other(_) => 5, // EIO
            Status::BadHandle
            | Status::NotSync
            | Status::BadCookie
            | Status::TooSmall
            | Status::BadType => 22, // EINVAL
        }
    }

    /// The status as `strerror` would say it.
    pub fn text(self) -> &'static str {
        match self {
            Status::Perm => "operation not permitted",
            Status::NoEnt => "no such file or directory",
            Status::Io => "input/output error",
            Status::Nxio => "no such device or address",
            Status::Acces => "permission denied",
            Status::Exist => "file exists",
            Status::Xdev => "cross-device link",
            Status::NoDev => "no such device",
            Status::NotDir => "not a directory",
            Status::IsDir => "is a directory",
            Status::Inval => "invalid argument",
            Status::FBig => "file too large",
            Status::NoSpc => "no space left on device",
            Status::Rofs => "read-only file system",
            Status::MLink => "too many links",
            Status::NameTooLong => "file name too long",
            Status::NotEmpty => "directory not empty",
            Status::DQuot => "disk quota exceeded",
            Status::Stale => "stale file handle",
            Status::Remote => "too many levels of remote in path",
            Status::BadHandle => "illegal NFS file handle",
            Status::NotSync => "update synchronization mismatch",
            Status::BadCookie => "stale directory cookie",
            Status::NotSupp => "operation not supported",
            Status::TooSmall => "buffer too small",
            Status::ServerFault => "server fault",
            Status::BadType => "type not supported by the server",
            Status::Jukebox => "try again later",
            Status::Other(_) => "unknown NFS status",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({self:?})", self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_system_time_on_both_sides_of_the_epoch() {
        for t in [
            Time {
                seconds: 0,
                nseconds: 0,
            },
            Time {
                seconds: 1_700_000_000,
                nseconds: 123,
            },
            Time {
                seconds: -1,
                nseconds: 999_999_999,
            },
            Time {
                seconds: -86_400,
                nseconds: 5,
            },
        ] {
            assert_eq!(Time::from_system(t.to_system()), t);
        }
    }

    #[test]
    fn the_change_attribute_from_ctime_orders_as_ctime_does() {
        let c = |seconds, nseconds| change_from_ctime(Time { seconds, nseconds });
        assert!(c(10, 999_999_999) < c(11, 0));
        assert!(c(10, 1) < c(10, 2));
        assert_eq!(c(1, 0), 1 << 30);
    }

    #[test]
    fn handles_are_bounded_by_the_v4_limit() {
        assert!(FileHandle::new(vec![0; FH_MAX]).is_some());
        assert!(FileHandle::new(vec![0; FH_MAX + 1]).is_none());
    }
}
