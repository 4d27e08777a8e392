//! NFS version 3 (RFC 1813): every type, and the arguments and results of all 22
//! procedures.
use rnfs_xdr::{xdr_enum, xdr_struct, Error, OpaqueFixed, Reader, Result, Writer, Xdr, XdrString};

/// NFS program number.
pub const PROGRAM: u32 = 100003;
/// Protocol version 3.
pub const VERSION: u32 = 3;
/// Largest file handle (`NFS3_FHSIZE`).
pub const FHSIZE: usize = 64;
/// Longest name the decoder accepts; handlers refuse names over 255 with NAMETOOLONG.
pub const NAME_DECODE_MAX: u32 = 1024;
/// Longest symlink target the decoder accepts.
pub const PATH_DECODE_MAX: u32 = 4096;
/// Largest READ/WRITE payload the decoder accepts (a little above what FSINFO advertises).
pub const DATA_DECODE_MAX: u32 = 4 << 20;

xdr_enum! {
    /// NFSv3 procedures.
    pub enum Proc {
        /// Do nothing.
        Null = 0,
        /// Get attributes.
        Getattr = 1,
        /// Set attributes.
        Setattr = 2,
        /// Look up a name.
        Lookup = 3,
        /// Check access.
        Access = 4,
        /// Read a symbolic link.
        Readlink = 5,
        /// Read from a file.
        Read = 6,
        /// Write to a file.
        Write = 7,
        /// Create a file.
        Create = 8,
        /// Create a directory.
        Mkdir = 9,
        /// Create a symbolic link.
        Symlink = 10,
        /// Create a special file.
        Mknod = 11,
        /// Remove a file.
        Remove = 12,
        /// Remove a directory.
        Rmdir = 13,
        /// Rename.
        Rename = 14,
        /// Create a hard link.
        Link = 15,
        /// Read a directory.
        Readdir = 16,
        /// Read a directory with attributes and handles.
        Readdirplus = 17,
        /// Dynamic file system information.
        Fsstat = 18,
        /// Static file system information.
        Fsinfo = 19,
        /// POSIX information.
        Pathconf = 20,
        /// Commit cached data to stable storage.
        Commit = 21,
    }
}

impl Proc {
    /// Whether a retransmission of this procedure can observe a different outcome than the
    /// original call, so that its reply must come from the duplicate request cache.
    pub fn is_non_idempotent(self) -> bool {
        matches!(
            self,
            Self::Setattr
                | Self::Create
                | Self::Mkdir
                | Self::Symlink
                | Self::Mknod
                | Self::Remove
                | Self::Rmdir
                | Self::Rename
                | Self::Link
        )
    }
}

xdr_enum! {
    /// Status of an NFSv3 call (RFC 1813 section 2.6).
    pub enum Nfsstat3 {
        /// Success.
        Ok = 0,
        /// Not owner.
        Perm = 1,
        /// No such file or directory.
        NoEnt = 2,
        /// I/O error.
        Io = 5,
        /// No such device or address.
        Nxio = 6,
        /// Permission denied.
        Acces = 13,
        /// File exists.
        Exist = 17,
        /// Cross-device link.
        Xdev = 18,
        /// No such device.
        NoDev = 19,
        /// Not a directory.
        NotDir = 20,
        /// Is a directory.
        IsDir = 21,
        /// Invalid argument.
        Inval = 22,
        /// File too large.
        FBig = 27,
        /// No space left on device.
        NoSpc = 28,
        /// Read-only file system.
        Rofs = 30,
        /// Too many hard links.
        MLink = 31,
        /// Name too long.
        NameTooLong = 63,
        /// Directory not empty.
        NotEmpty = 66,
        /// Quota exceeded.
        DQuot = 69,
        /// Stale file handle.
        Stale = 70,
        /// Too many levels of remote in path.
        Remote = 71,
        /// Illegal NFS file handle.
        BadHandle = 10001,
        /// Update synchronization mismatch (SETATTR guard).
        NotSync = 10002,
        /// READDIR cookie is stale.
        BadCookie = 10003,
        /// Operation not supported.
        NotSupp = 10004,
        /// Buffer or request too small.
        TooSmall = 10005,
        /// Server fault.
        ServerFault = 10006,
        /// Type not supported by the server.
        BadType = 10007,
        /// Request is being processed; try later.
        Jukebox = 10008,
    }
}

xdr_enum! {
    /// File type.
    pub enum Ftype3 {
        /// Regular file.
        Reg = 1,
        /// Directory.
        Dir = 2,
        /// Block device.
        Blk = 3,
        /// Character device.
        Chr = 4,
        /// Symbolic link.
        Lnk = 5,
        /// Socket.
        Sock = 6,
        /// Named pipe.
        Fifo = 7,
    }
}

xdr_enum! {
    /// How stable a WRITE must be before the reply.
    pub enum StableHow {
        /// May be cached; COMMIT later.
        Unstable = 0,
        /// Data (and metadata needed to read it) on stable storage.
        DataSync = 1,
        /// Data and all metadata on stable storage.
        FileSync = 2,
    }
}

/// An NFSv3 file handle: opaque, at most 64 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FileHandle3(pub Vec<u8>);

impl std::fmt::Debug for FileHandle3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fh:")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Xdr for FileHandle3 {
    fn encode(&self, w: &mut Writer) {
        w.opaque(&self.0)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self(r.opaque(FHSIZE as u32)?.to_vec()))
    }
}

/// A file name component.
pub type Filename3 = XdrString<NAME_DECODE_MAX>;
/// A symbolic link's target.
pub type NfsPath3 = XdrString<PATH_DECODE_MAX>;
/// READDIR cookie verifier.
pub type CookieVerf3 = OpaqueFixed<8>;
/// Exclusive CREATE verifier.
pub type CreateVerf3 = OpaqueFixed<8>;
/// WRITE/COMMIT verifier.
pub type WriteVerf3 = OpaqueFixed<8>;

/// Bulk data of READ and WRITE. Kept as a plain byte vector.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Data(pub Vec<u8>);

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Data({} bytes)", self.0.len())
    }
}

impl Xdr for Data {
    fn encode(&self, w: &mut Writer) {
        w.opaque(&self.0)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self(r.opaque(DATA_DECODE_MAX)?.to_vec()))
    }
}

xdr_struct! {
    /// Device numbers of a special file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SpecData3 { /** Major. */ pub major: u32, /** Minor. */ pub minor: u32 }
}

xdr_struct! {
    /// A time: seconds and nanoseconds since the epoch.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
    pub struct NfsTime3 { /** Seconds. */ pub seconds: u32, /** Nanoseconds. */ pub nseconds: u32 }
}

xdr_struct! {
    /// File attributes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Fattr3 {
        /// Type.
        pub ftype: Ftype3,
        /// Permission bits (07777).
        pub mode: u32,
        /// Hard links.
        pub nlink: u32,
        /// Owner.
        pub uid: u32,
        /// Group.
        pub gid: u32,
        /// Size in bytes.
        pub size: u64,
        /// Bytes of storage used.
        pub used: u64,
        /// Device numbers.
        pub rdev: SpecData3,
        /// File system id.
        pub fsid: u64,
        /// File id (inode number).
        pub fileid: u64,
        /// Last access.
        pub atime: NfsTime3,
        /// Last data change.
        pub mtime: NfsTime3,
        /// Last attribute change.
        pub ctime: NfsTime3,
    }
}

/// Attributes returned after an operation, if the server can.
pub type PostOpAttr = Option<Fattr3>;
/// A handle returned after a create, if the server can.
pub type PostOpFh3 = Option<FileHandle3>;

xdr_struct! {
    /// Attributes used for weak cache consistency.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct WccAttr {
        /// Size before.
        pub size: u64,
        /// mtime before.
        pub mtime: NfsTime3,
        /// ctime before.
        pub ctime: NfsTime3,
    }
}

xdr_struct! {
    /// Weak cache consistency data: attributes before and after an operation.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WccData {
        /// Before.
        pub before: Option<WccAttr>,
        /// After.
        pub after: PostOpAttr,
    }
}

/// How SETATTR sets a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    /// Leave it.
    #[default]
    DontChange,
    /// Use the server's clock.
    ServerTime,
    /// Use the given time.
    ClientTime(NfsTime3),
}

impl Xdr for SetTime {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::DontChange => w.u32(0),
            Self::ServerTime => w.u32(1),
            Self::ClientTime(t) => {
                w.u32(2);
                t.encode(w)
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        match r.u32()? {
            0 => Ok(Self::DontChange),
            1 => Ok(Self::ServerTime),
            2 => Ok(Self::ClientTime(NfsTime3::decode(r)?)),
            v => Err(Error::BadDiscriminant {
                what: "time_how",
                value: v,
            }),
        }
    }
}

xdr_struct! {
    /// Attributes to set.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Sattr3 {
        /// New mode.
        pub mode: Option<u32>,
        /// New owner.
        pub uid: Option<u32>,
        /// New group.
        pub gid: Option<u32>,
        /// New size.
        pub size: Option<u64>,
        /// New atime.
        pub atime: SetTime,
        /// New mtime.
        pub mtime: SetTime,
    }
}

xdr_struct! {
    /// A directory and a name in it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DirOpArgs3 { /** Directory. */ pub dir: FileHandle3, /** Name. */ pub name: Filename3 }
}

/// Result of an NFSv3 procedure: status, then the body for success or for failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res<T, F> {
    /// NFS3_OK.
    Ok(T),
    /// Any other status, with the failure body.
    Fail(Nfsstat3, F),
}

impl<T: Xdr, F: Xdr> Xdr for Res<T, F> {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Ok(v) => {
                w.u32(0);
                v.encode(w)
            }
            Self::Fail(s, f) => {
                s.encode(w);
                f.encode(w)
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        match Nfsstat3::decode(r)? {
            Nfsstat3::Ok => Ok(Self::Ok(T::decode(r)?)),
            s => Ok(Self::Fail(s, F::decode(r)?)),
        }
    }
}

impl<T, F> Res<T, F> {
    /// The status code.
    pub fn status(&self) -> Nfsstat3 {
        match self {
            Self::Ok(_) => Nfsstat3::Ok,
            Self::Fail(s, _) => *s,
        }
    }
}

// ---- GETATTR (1)
xdr_struct! {
    /// GETATTR arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GetattrArgs { /** Object. */ pub object: FileHandle3 }
}
/// GETATTR result.
pub type GetattrRes = Res<Fattr3, ()>;

// ---- SETATTR (2)
xdr_struct! {
    /// SETATTR arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SetattrArgs {
        /// Object.
        pub object: FileHandle3,
        /// What to set.
        pub new_attributes: Sattr3,
        /// Only if the object's ctime equals this.
        pub guard: Option<NfsTime3>,
    }
}
/// SETATTR result.
pub type SetattrRes = Res<WccData, WccData>;

// ---- LOOKUP (3)
xdr_struct! {
    /// LOOKUP success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LookupOk {
        /// Handle of the object found.
        pub object: FileHandle3,
        /// Its attributes.
        pub obj_attributes: PostOpAttr,
        /// Attributes of the directory.
        pub dir_attributes: PostOpAttr,
    }
}
/// LOOKUP result.
pub type LookupRes = Res<LookupOk, PostOpAttr>;

// ---- ACCESS (4)
/// ACCESS bits.
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
xdr_struct! {
    /// ACCESS arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AccessArgs { /** Object. */ pub object: FileHandle3, /** Bits asked. */ pub access: u32 }
}
xdr_struct! {
    /// ACCESS success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AccessOk { /** Attributes. */ pub obj_attributes: PostOpAttr, /** Bits granted. */ pub access: u32 }
}
/// ACCESS result.
pub type AccessRes = Res<AccessOk, PostOpAttr>;

// ---- READLINK (5)
xdr_struct! {
    /// READLINK success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadlinkOk { /** Attributes. */ pub symlink_attributes: PostOpAttr, /** Target. */ pub data: NfsPath3 }
}
/// READLINK arguments.
pub type ReadlinkArgs = GetattrArgs;
/// READLINK result.
pub type ReadlinkRes = Res<ReadlinkOk, PostOpAttr>;

// ---- READ (6)
xdr_struct! {
    /// READ arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadArgs { /** File. */ pub file: FileHandle3, /** Offset. */ pub offset: u64, /** Bytes wanted. */ pub count: u32 }
}
xdr_struct! {
    /// READ success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadOk {
        /// Attributes.
        pub file_attributes: PostOpAttr,
        /// Bytes returned.
        pub count: u32,
        /// Whether the read reached the end of the file.
        pub eof: bool,
        /// The bytes.
        pub data: Data,
    }
}
/// READ result.
pub type ReadRes = Res<ReadOk, PostOpAttr>;

// ---- WRITE (7)
xdr_struct! {
    /// WRITE arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WriteArgs {
        /// File.
        pub file: FileHandle3,
        /// Offset.
        pub offset: u64,
        /// Bytes to write (must equal the data's length).
        pub count: u32,
        /// Stability asked for.
        pub stable: StableHow,
        /// The bytes.
        pub data: Data,
    }
}
xdr_struct! {
    /// WRITE success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WriteOk {
        /// File attributes before/after.
        pub file_wcc: WccData,
        /// Bytes written.
        pub count: u32,
        /// Stability achieved.
        pub committed: StableHow,
        /// Server instance verifier.
        pub verf: WriteVerf3,
    }
}
/// WRITE result.
pub type WriteRes = Res<WriteOk, WccData>;

// ---- CREATE (8), MKDIR (9), SYMLINK (10), MKNOD (11)
/// How CREATE treats an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateHow3 {
    /// Create or truncate, no checks.
    Unchecked(Sattr3),
    /// Fail if the name exists.
    Guarded(Sattr3),
    /// Create once: a retransmission with the same verifier succeeds.
    Exclusive(CreateVerf3),
}

impl Xdr for CreateHow3 {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Unchecked(s) => {
                w.u32(0);
                s.encode(w)
            }
            Self::Guarded(s) => {
                w.u32(1);
                s.encode(w)
            }
            Self::Exclusive(v) => {
                w.u32(2);
                v.encode(w)
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        match r.u32()? {
            0 => Ok(Self::Unchecked(Sattr3::decode(r)?)),
            1 => Ok(Self::Guarded(Sattr3::decode(r)?)),
            2 => Ok(Self::Exclusive(CreateVerf3::decode(r)?)),
            v => Err(Error::BadDiscriminant {
                what: "createmode3",
                value: v,
            }),
        }
    }
}

xdr_struct! {
    /// CREATE arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CreateArgs { /** Where. */ pub where_: DirOpArgs3, /** How. */ pub how: CreateHow3 }
}
xdr_struct! {
    /// Success of CREATE, MKDIR, SYMLINK and MKNOD.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CreateOk {
        /// New object's handle.
        pub obj: PostOpFh3,
        /// Its attributes.
        pub obj_attributes: PostOpAttr,
        /// Directory before/after.
        pub dir_wcc: WccData,
    }
}
/// Result of CREATE, MKDIR, SYMLINK and MKNOD.
pub type CreateRes = Res<CreateOk, WccData>;

xdr_struct! {
    /// MKDIR arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MkdirArgs { /** Where. */ pub where_: DirOpArgs3, /** Attributes. */ pub attributes: Sattr3 }
}
xdr_struct! {
    /// SYMLINK arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SymlinkArgs {
        /// Where.
        pub where_: DirOpArgs3,
        /// Attributes of the link.
        pub symlink_attributes: Sattr3,
        /// Target.
        pub symlink_data: NfsPath3,
    }
}

/// What MKNOD creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MknodData3 {
    /// A character device.
    Chr(Sattr3, SpecData3),
    /// A block device.
    Blk(Sattr3, SpecData3),
    /// A socket.
    Sock(Sattr3),
    /// A named pipe.
    Fifo(Sattr3),
    /// Any other type: the server answers BADTYPE.
    Other(Ftype3),
}

impl Xdr for MknodData3 {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Chr(s, d) => {
                Ftype3::Chr.encode(w);
                s.encode(w);
                d.encode(w)
            }
            Self::Blk(s, d) => {
                Ftype3::Blk.encode(w);
                s.encode(w);
                d.encode(w)
            }
            Self::Sock(s) => {
                Ftype3::Sock.encode(w);
                s.encode(w)
            }
            Self::Fifo(s) => {
                Ftype3::Fifo.encode(w);
                s.encode(w)
            }
            Self::Other(t) => t.encode(w),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(match Ftype3::decode(r)? {
            Ftype3::Chr => Self::Chr(Sattr3::decode(r)?, SpecData3::decode(r)?),
            Ftype3::Blk => Self::Blk(Sattr3::decode(r)?, SpecData3::decode(r)?),
            Ftype3::Sock => Self::Sock(Sattr3::decode(r)?),
            Ftype3::Fifo => Self::Fifo(Sattr3::decode(r)?),
            t => Self::Other(t),
        })
    }
}

xdr_struct! {
    /// MKNOD arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MknodArgs { /** Where. */ pub where_: DirOpArgs3, /** What. */ pub what: MknodData3 }
}

// ---- REMOVE (12), RMDIR (13)
/// REMOVE and RMDIR result.
pub type RemoveRes = Res<WccData, WccData>;

// ---- RENAME (14)
xdr_struct! {
    /// RENAME arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RenameArgs { /** From. */ pub from: DirOpArgs3, /** To. */ pub to: DirOpArgs3 }
}
xdr_struct! {
    /// RENAME success and failure body.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RenameWcc { /** Source directory. */ pub fromdir_wcc: WccData, /** Target directory. */ pub todir_wcc: WccData }
}
/// RENAME result.
pub type RenameRes = Res<RenameWcc, RenameWcc>;

// ---- LINK (15)
xdr_struct! {
    /// LINK arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LinkArgs { /** Existing file. */ pub file: FileHandle3, /** New name. */ pub link: DirOpArgs3 }
}
xdr_struct! {
    /// LINK success and failure body.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LinkWcc { /** File attributes. */ pub file_attributes: PostOpAttr, /** Directory. */ pub linkdir_wcc: WccData }
}
/// LINK result.
pub type LinkRes = Res<LinkWcc, LinkWcc>;

// ---- READDIR (16)
xdr_struct! {
    /// READDIR arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReaddirArgs {
        /// Directory.
        pub dir: FileHandle3,
        /// Where to resume (0: start).
        pub cookie: u64,
        /// Verifier from the previous reply (zero with cookie 0).
        pub cookieverf: CookieVerf3,
        /// Maximum reply size.
        pub count: u32,
    }
}
xdr_struct! {
    /// A READDIR entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Entry3 { /** File id. */ pub fileid: u64, /** Name. */ pub name: Filename3, /** Cookie. */ pub cookie: u64 }
}
/// READDIR success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaddirOk {
    /// Directory attributes.
    pub dir_attributes: PostOpAttr,
    /// Verifier for the cookies.
    pub cookieverf: CookieVerf3,
    /// Entries.
    pub entries: Vec<Entry3>,
    /// Whether the listing is complete.
    pub eof: bool,
}

/// Largest number of entries a client decoder takes from one READDIR(PLUS) reply.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

/// The XDR form shared by READDIR and READDIRPLUS results: directory attributes, cookie
/// verifier, a linked list of entries, end-of-directory flag.
macro_rules! dirlist_xdr {
    ($t:ty) => {
        impl Xdr for $t {
            fn encode(&self, w: &mut Writer) {
                self.dir_attributes.encode(w);
                self.cookieverf.encode(w);
                crate::encode_list(&self.entries, w);
                w.bool(self.eof);
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self> {
                Ok(Self {
                    dir_attributes: Xdr::decode(r)?,
                    cookieverf: Xdr::decode(r)?,
                    entries: crate::decode_list(r, MAX_DIR_ENTRIES)?,
                    eof: r.bool()?,
                })
            }
        }
    };
}

dirlist_xdr!(ReaddirOk);
/// READDIR result.
pub type ReaddirRes = Res<ReaddirOk, PostOpAttr>;

// ---- READDIRPLUS (17)
xdr_struct! {
    /// READDIRPLUS arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReaddirplusArgs {
        /// Directory.
        pub dir: FileHandle3,
        /// Where to resume.
        pub cookie: u64,
        /// Verifier from the previous reply.
        pub cookieverf: CookieVerf3,
        /// Maximum bytes of directory information (names and cookies).
        pub dircount: u32,
        /// Maximum reply size.
        pub maxcount: u32,
    }
}
xdr_struct! {
    /// A READDIRPLUS entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct EntryPlus3 {
        /// File id.
        pub fileid: u64,
        /// Name.
        pub name: Filename3,
        /// Cookie.
        pub cookie: u64,
        /// Attributes.
        pub name_attributes: PostOpAttr,
        /// Handle.
        pub name_handle: PostOpFh3,
    }
}
/// READDIRPLUS success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaddirplusOk {
    /// Directory attributes.
    pub dir_attributes: PostOpAttr,
    /// Verifier for the cookies.
    pub cookieverf: CookieVerf3,
    /// Entries.
    pub entries: Vec<EntryPlus3>,
    /// Whether the listing is complete.
    pub eof: bool,
}

dirlist_xdr!(ReaddirplusOk);
/// READDIRPLUS result.
pub type ReaddirplusRes = Res<ReaddirplusOk, PostOpAttr>;

// ---- FSSTAT (18)
xdr_struct! {
    /// FSSTAT success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FsstatOk {
        /// Attributes.
        pub obj_attributes: PostOpAttr,
        /// Total bytes.
        pub tbytes: u64,
        /// Free bytes.
        pub fbytes: u64,
        /// Bytes available to the caller.
        pub abytes: u64,
        /// Total file slots.
        pub tfiles: u64,
        /// Free file slots.
        pub ffiles: u64,
        /// Slots available to the caller.
        pub afiles: u64,
        /// Seconds the figures are not expected to change.
        pub invarsec: u32,
    }
}
/// FSSTAT result.
pub type FsstatRes = Res<FsstatOk, PostOpAttr>;

// ---- FSINFO (19)
/// FSINFO property bits.
pub mod fsf {
    /// Hard links supported.
    pub const LINK: u32 = 0x0001;
    /// Symbolic links supported.
    pub const SYMLINK: u32 = 0x0002;
    /// PATHCONF information is the same for every file.
    pub const HOMOGENEOUS: u32 = 0x0008;
    /// SETATTR can set times.
    pub const CANSETTIME: u32 = 0x0010;
}
xdr_struct! {
    /// FSINFO success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FsinfoOk {
        /// Attributes.
        pub obj_attributes: PostOpAttr,
        /// Largest READ.
        pub rtmax: u32,
        /// Preferred READ.
        pub rtpref: u32,
        /// READ size multiple.
        pub rtmult: u32,
        /// Largest WRITE.
        pub wtmax: u32,
        /// Preferred WRITE.
        pub wtpref: u32,
        /// WRITE size multiple.
        pub wtmult: u32,
        /// Preferred READDIR size.
        pub dtpref: u32,
        /// Largest file.
        pub maxfilesize: u64,
        /// Time granularity.
        pub time_delta: NfsTime3,
        /// FSF bits.
        pub properties: u32,
    }
}
/// FSINFO result.
pub type FsinfoRes = Res<FsinfoOk, PostOpAttr>;

// ---- PATHCONF (20)
xdr_struct! {
    /// PATHCONF success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PathconfOk {
        /// Attributes.
        pub obj_attributes: PostOpAttr,
        /// Most hard links.
        pub linkmax: u32,
        /// Longest name.
        pub name_max: u32,
        /// Long names are refused, not truncated.
        pub no_trunc: bool,
        /// Only root can chown.
        pub chown_restricted: bool,
        /// Names compare case-insensitively.
        pub case_insensitive: bool,
        /// Case is preserved.
        pub case_preserving: bool,
    }
}
/// PATHCONF result.
pub type PathconfRes = Res<PathconfOk, PostOpAttr>;

// ---- COMMIT (21)
xdr_struct! {
    /// COMMIT arguments.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CommitArgs { /** File. */ pub file: FileHandle3, /** Offset. */ pub offset: u64, /** Bytes (0: to the end). */ pub count: u32 }
}
xdr_struct! {
    /// COMMIT success.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CommitOk { /** File attributes. */ pub file_wcc: WccData, /** Server instance verifier. */ pub verf: WriteVerf3 }
}
/// COMMIT result.
pub type CommitRes = Res<CommitOk, WccData>;

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_xdr::{from_bytes, to_bytes};

    fn attr() -> Fattr3 {
        Fattr3 {
            ftype: Ftype3::Reg,
            mode: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 5,
            used: 4096,
            rdev: SpecData3::default(),
            fsid: 1,
            fileid: 42,
            atime: NfsTime3 {
                seconds: 1,
                nseconds: 2,
            },
            mtime: NfsTime3 {
                seconds: 3,
                nseconds: 4,
            },
            ctime: NfsTime3 {
                seconds: 5,
                nseconds: 6,
            },
        }
    }

    #[test]
    fn results_roundtrip() {
        let ok: ReaddirplusRes = Res::Ok(ReaddirplusOk {
            dir_attributes: Some(attr()),
            cookieverf: OpaqueFixed([1; 8]),
            entries: vec![EntryPlus3 {
                fileid: 9,
                name: Filename3::new("a").unwrap(),
                cookie: 77,
                name_attributes: Some(attr()),
                name_handle: Some(FileHandle3(vec![1, 2, 3])),
            }],
            eof: true,
        });
        assert_eq!(from_bytes::<ReaddirplusRes>(&to_bytes(&ok)).unwrap(), ok);
        let fail: CreateRes = Res::Fail(Nfsstat3::Exist, WccData::default());
        assert_eq!(from_bytes::<CreateRes>(&to_bytes(&fail)).unwrap(), fail);
    }

    #[test]
    fn oversized_handle_is_refused() {
        let mut w = Writer::new();
        w.opaque(&[0u8; 65]);
        assert!(from_bytes::<FileHandle3>(&w.into_inner()).is_err());
    }
}
