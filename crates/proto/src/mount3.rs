//! MOUNT protocol version 3 (RFC 1813 appendix I).
use crate::nfs3::FileHandle3;
use rnfs_xdr::{xdr_enum, xdr_struct, Reader, Result, VarArray, Writer, Xdr, XdrString};

/// MOUNT program number.
pub const PROGRAM: u32 = 100005;
/// Protocol version 3.
pub const VERSION: u32 = 3;
/// Longest path accepted by MNT.
pub const MNTPATHLEN: u32 = 1024;
/// Longest host or group name.
pub const MNTNAMLEN: u32 = 255;

/// A path on the server (`dirpath`).
pub type DirPath = XdrString<MNTPATHLEN>;
/// A host or group name (`name`).
pub type Name = XdrString<MNTNAMLEN>;

xdr_enum! {
    /// MOUNT procedures.
    pub enum Proc {
        /// Do nothing.
        Null = 0,
        /// Mount a path, getting its root handle.
        Mnt = 1,
        /// List mounts.
        Dump = 2,
        /// Forget one mount.
        Umnt = 3,
        /// Forget all mounts of the caller.
        Umntall = 4,
        /// List exports.
        Export = 5,
    }
}

xdr_enum! {
    /// Status of MNT.
    pub enum MountStat3 {
        /// Success.
        Ok = 0,
        /// Not owner.
        Perm = 1,
        /// No such file or directory.
        NoEnt = 2,
        /// I/O error.
        Io = 5,
        /// Permission denied.
        Acces = 13,
        /// Not a directory.
        NotDir = 20,
        /// Invalid argument.
        Inval = 22,
        /// Filename too long.
        NameTooLong = 63,
        /// Operation not supported.
        NotSupp = 10004,
        /// A failure on the server.
        ServerFault = 10006,
    }
}

xdr_struct! {
    /// Successful MNT result.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MountResOk {
        /// Root handle of the mounted path.
        pub fhandle: FileHandle3,
        /// Authentication flavours the server accepts, most preferred first.
        pub auth_flavors: VarArray<u32, 64>,
    }
}

/// MNT result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRes {
    /// Mounted.
    Ok(MountResOk),
    /// Refused.
    Err(MountStat3),
}

impl Xdr for MountRes {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Ok(ok) => {
                w.u32(0);
                ok.encode(w)
            }
            Self::Err(s) => s.encode(w),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        match MountStat3::decode(r)? {
            MountStat3::Ok => Ok(Self::Ok(MountResOk::decode(r)?)),
            s => Ok(Self::Err(s)),
        }
    }
}

xdr_struct! {
    /// One DUMP entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MountBody {
        /// Client host.
        pub hostname: Name,
        /// Path it mounted.
        pub directory: DirPath,
    }
}

/// One EXPORT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportNode {
    /// Exported path.
    pub dir: DirPath,
    /// Groups (clients) allowed to mount it.
    pub groups: Vec<Name>,
}

impl Xdr for ExportNode {
    fn encode(&self, w: &mut Writer) {
        self.dir.encode(w);
        crate::encode_list(&self.groups, w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            dir: DirPath::decode(r)?,
            groups: crate::decode_list(r, 4096)?,
        })
    }
}
