//! NFSv4 attributes: `bitmap4` sets, the supported set, the encoding of `fattr4` for
//! GETATTR and READDIR, the decoding of the settable ones for SETATTR (and OPEN, CREATE),
//! and the comparison of VERIFY and NVERIFY (RFC 8881 section 5).
//!
//! A `fattr4` is a `bitmap4` (which attributes) and an `attrlist4`: opaque bytes holding
//! each attribute's XDR in ascending attribute number. Encoding writes the values with the
//! XDR [`Writer`] directly; nothing here needs the generated wire types, which carry a
//! `fattr4` as its two parts ([`Fattr`]).
//!
//! **Supported.** Every REQUIRED attribute, and the RECOMMENDED ones the Linux client asks
//! for (its `nfs4_fattr_bitmap`, statfs, fsinfo and pathconf sets), as [`supported`] lists:
//! no ACLs (`aclsupport` is 0), no named attributes, no pNFS (`fs_layout_types` is empty),
//! no quotas, no `fs_locations` (no referrals). Attributes of NFSv4.1 are reported only to
//! NFSv4.1 and later, `xattr_support` (RFC 8276) only to NFSv4.2, per object: whether the
//! backend keeps user extended attributes on it. A GETATTR of unsupported attributes leaves them out of the reply's
//! bitmap; asking for a set-only one (`time_access_set`, `time_modify_set`) is INVAL
//! (RFC 8881 5.5).
//!
//! **`change`** is the backend's change attribute ([`rnfs_vfs::Attr::change`]): the memory
//! backend counts every modification; the local backend reports the ctime in nanoseconds,
//! which every modification sets (on kernels with fine-grained or multigrain timestamps it
//! differs between any two changes a client can see; on a coarse clock two changes within
//! one tick can share it, as knfsd without `i_version` has it). A pseudo directory's
//! changes only when the exports are reloaded.
//!
//! **Settable** ([`SETTABLE`]): `size`, `mode`, `owner`, `owner_group`, `time_access_set`,
//! `time_modify_set`. Setting an unsupported attribute is ATTRNOTSUPP; setting a supported
//! one that is read-only is INVAL (RFC 8881 5.5); an `attrlist4` that does not decode to
//! exactly the attributes of its bitmap is BADXDR.
use super::error::{Nfs4Error, R4};
use super::owner::{OwnerMap, MAX_OWNER};
use super::pseudo::ObjectAttrs;
use rnfs_vfs::{ChangeKind, FileType, FsStat, Limits, SetAttr, SetTime, Timestamp};
use rnfs_xdr::{Reader, Writer};

/// Attribute numbers (RFC 8881 section 5.6, 5.7, 5.8), those this module knows.
pub mod num {
    #![allow(missing_docs)]
    pub const SUPPORTED_ATTRS: u32 = 0;
    pub const TYPE: u32 = 1;
    pub const FH_EXPIRE_TYPE: u32 = 2;
    pub const CHANGE: u32 = 3;
    pub const SIZE: u32 = 4;
    pub const LINK_SUPPORT: u32 = 5;
    pub const SYMLINK_SUPPORT: u32 = 6;
    pub const NAMED_ATTR: u32 = 7;
    pub const FSID: u32 = 8;
    pub const UNIQUE_HANDLES: u32 = 9;
    pub const LEASE_TIME: u32 = 10;
    pub const RDATTR_ERROR: u32 = 11;
    pub const ACL: u32 = 12;
    pub const ACLSUPPORT: u32 = 13;
    pub const CANSETTIME: u32 = 15;
    pub const CASE_INSENSITIVE: u32 = 16;
    pub const CASE_PRESERVING: u32 = 17;
    pub const CHOWN_RESTRICTED: u32 = 18;
    pub const FILEHANDLE: u32 = 19;
    pub const FILEID: u32 = 20;
    pub const FILES_AVAIL: u32 = 21;
    pub const FILES_FREE: u32 = 22;
    pub const FILES_TOTAL: u32 = 23;
    pub const HOMOGENEOUS: u32 = 26;
    pub const MAXFILESIZE: u32 = 27;
    pub const MAXLINK: u32 = 28;
    pub const MAXNAME: u32 = 29;
    pub const MAXREAD: u32 = 30;
    pub const MAXWRITE: u32 = 31;
    pub const MODE: u32 = 33;
    pub const NO_TRUNC: u32 = 34;
    pub const NUMLINKS: u32 = 35;
    pub const OWNER: u32 = 36;
    pub const OWNER_GROUP: u32 = 37;
    pub const RAWDEV: u32 = 41;
    pub const SPACE_AVAIL: u32 = 42;
    pub const SPACE_FREE: u32 = 43;
    pub const SPACE_TOTAL: u32 = 44;
    pub const SPACE_USED: u32 = 45;
    pub const TIME_ACCESS: u32 = 47;
    pub const TIME_ACCESS_SET: u32 = 48;
    pub const TIME_DELTA: u32 = 51;
    pub const TIME_METADATA: u32 = 52;
    pub const TIME_MODIFY: u32 = 53;
    pub const TIME_MODIFY_SET: u32 = 54;
    pub const MOUNTED_ON_FILEID: u32 = 55;
    pub const FS_LAYOUT_TYPES: u32 = 62;
    pub const SUPPATTR_EXCLCREAT: u32 = 75;
    pub const CLONE_BLKSIZE: u32 = 77;
    pub const SPACE_FREED: u32 = 78;
    pub const CHANGE_ATTR_TYPE: u32 = 79;
    pub const XATTR_SUPPORT: u32 = 82;
    pub const OPEN_ARGUMENTS: u32 = 86;
}

/// A set of attribute numbers below 128 (`bitmap4`; no attribute defined so far is past 88).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bitmap(pub u128);

/// Most words of a `bitmap4` accepted from the wire (knfsd takes up to 1000 and reads 3).
pub const MAX_BITMAP_WORDS: u32 = 64;

impl Bitmap {
    /// The set of these attribute numbers (each below 128).
    pub const fn of(nums: &[u32]) -> Self {
        let mut b = 0u128;
        let mut i = 0;
        while i < nums.len() {
            b |= 1 << nums[i];
            i += 1;
        }
        Self(b)
    }

    /// Whether attribute `n` is in the set.
    pub fn contains(self, n: u32) -> bool {
        n < 128 && self.0 & (1 << n) != 0
    }

    /// The attributes in both sets.
    pub fn and(self, o: Bitmap) -> Bitmap {
        Bitmap(self.0 & o.0)
    }

    /// The attributes of `self` not in `o`.
    pub fn minus(self, o: Bitmap) -> Bitmap {
        Bitmap(self.0 & !o.0)
    }

    /// Whether the sets share an attribute.
    pub fn intersects(self, o: Bitmap) -> bool {
        self.0 & o.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attribute numbers, ascending.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..128).filter(move |&n| self.contains(n))
    }

    /// The set of `bitmap4` words, and whether a word past the fourth had a bit set.
    pub fn from_words(words: &[u32]) -> (Self, bool) {
        let mut b = 0u128;
        for (i, w) in words.iter().take(4).enumerate() {
            b |= u128::from(*w) << (32 * i);
        }
        (Self(b), words.iter().skip(4).any(|&w| w != 0))
    }

    /// The `bitmap4` words, without trailing zero words.
    pub fn words(self) -> Vec<u32> {
        let n = (128 - self.0.leading_zeros()).div_ceil(32) as usize;
        (0..n).map(|i| (self.0 >> (32 * i)) as u32).collect()
    }

    /// Writes the `bitmap4`.
    pub fn encode(self, w: &mut Writer) {
        let words = self.words();
        w.u32(words.len() as u32);
        for x in words {
            w.u32(x);
        }
    }
}

/// A `fattr4` as it arrives: the bitmap and the undecoded `attrlist4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fattr<'a> {
    /// The attributes named.
    pub mask: Bitmap,
    /// A bit was set past attribute 127 (no such attribute is supported).
    pub beyond: bool,
    /// Their values.
    pub vals: &'a [u8],
}

/// Longest `attrlist4` accepted from the wire: far more than the settable attributes need
/// (two owner strings of [`MAX_OWNER`] bytes and a few words).
pub const MAX_ATTRLIST: u32 = 8192;

impl<'a> Fattr<'a> {
    /// A `fattr4` from its parts (as the generated wire types carry it).
    pub fn from_parts(words: &[u32], vals: &'a [u8]) -> Self {
        let (mask, beyond) = Bitmap::from_words(words);
        Self { mask, beyond, vals }
    }

    /// Decodes a `fattr4`, each length checked before anything is read.
    pub fn decode(r: &mut Reader<'a>) -> rnfs_xdr::Result<Self> {
        let (mask, beyond) = decode_bitmap(r)?;
        let vals = r.opaque(MAX_ATTRLIST)?;
        Ok(Self { mask, beyond, vals })
    }
}

/// Decodes a `bitmap4` (at most [`MAX_BITMAP_WORDS`] words, their count checked before
/// any is read), and says whether a bit past attribute 127 was set.
pub fn decode_bitmap(r: &mut Reader<'_>) -> rnfs_xdr::Result<(Bitmap, bool)> {
    let n = r.array_len(MAX_BITMAP_WORDS, 4)?;
    let mut words = [0u32; 4];
    let mut beyond = false;
    for i in 0..n {
        let x = r.u32()?;
        match words.get_mut(i) {
            Some(w) => *w = x,
            None => beyond |= x != 0,
        }
    }
    Ok((Bitmap::from_words(&words).0, beyond))
}

/// Writes a `fattr4` of these attributes and their encoded values.
pub fn write_fattr(w: &mut Writer, mask: Bitmap, vals: &[u8]) {
    mask.encode(w);
    w.opaque(vals);
}

/// Attributes a client may set (SETATTR, and the attributes of OPEN and CREATE).
pub const SETTABLE: Bitmap = Bitmap::of(&[
    num::SIZE,
    num::MODE,
    num::OWNER,
    num::OWNER_GROUP,
    num::TIME_ACCESS_SET,
    num::TIME_MODIFY_SET,
]);

/// Attributes that may only be set, never read (RFC 8881 5.5).
pub const SET_ONLY: Bitmap = Bitmap::of(&[num::TIME_ACCESS_SET, num::TIME_MODIFY_SET]);

/// Attributes settable in an EXCLUSIVE4_1 create (`suppattr_exclcreat`): the settable ones
/// but the times, which a server may use to keep the create verifier (RFC 8881 18.16.3).
pub const EXCLCREAT: Bitmap = Bitmap::of(&[num::SIZE, num::MODE, num::OWNER, num::OWNER_GROUP]);

/// Attributes whose values come from the file system's space figures: whoever encodes
/// them fetches an [`FsStat`] first ([`Source::fsstat`]).
pub const FSSTAT_ATTRS: Bitmap = Bitmap::of(&[
    num::FILES_AVAIL,
    num::FILES_FREE,
    num::FILES_TOTAL,
    num::SPACE_AVAIL,
    num::SPACE_FREE,
    num::SPACE_TOTAL,
]);

const V40: Bitmap = Bitmap::of(&[
    num::SUPPORTED_ATTRS,
    num::TYPE,
    num::FH_EXPIRE_TYPE,
    num::CHANGE,
    num::SIZE,
    num::LINK_SUPPORT,
    num::SYMLINK_SUPPORT,
    num::NAMED_ATTR,
    num::FSID,
    num::UNIQUE_HANDLES,
    num::LEASE_TIME,
    num::RDATTR_ERROR,
    num::ACLSUPPORT,
    num::CANSETTIME,
    num::CASE_INSENSITIVE,
    num::CASE_PRESERVING,
    num::CHOWN_RESTRICTED,
    num::FILEHANDLE,
    num::FILEID,
    num::FILES_AVAIL,
    num::FILES_FREE,
    num::FILES_TOTAL,
    num::HOMOGENEOUS,
    num::MAXFILESIZE,
    num::MAXLINK,
    num::MAXNAME,
    num::MAXREAD,
    num::MAXWRITE,
    num::MODE,
    num::NO_TRUNC,
    num::NUMLINKS,
    num::OWNER,
    num::OWNER_GROUP,
    num::RAWDEV,
    num::SPACE_AVAIL,
    num::SPACE_FREE,
    num::SPACE_TOTAL,
    num::SPACE_USED,
    num::TIME_ACCESS,
    num::TIME_ACCESS_SET,
    num::TIME_DELTA,
    num::TIME_METADATA,
    num::TIME_MODIFY,
    num::TIME_MODIFY_SET,
    num::MOUNTED_ON_FILEID,
]);

/// NFSv4.1 and later. `open_arguments` (RFC 9754) is an NFSv4.2 extension; it is served
/// to 4.1 clients too, as it only describes what OPEN takes (a client that does not know
/// attribute 86 ignores its bit; pynfs' 4.1 delegation tests ask for it).
const V41: Bitmap = Bitmap(
    V40.0
        | Bitmap::of(&[
            num::FS_LAYOUT_TYPES,
            num::SUPPATTR_EXCLCREAT,
            num::OPEN_ARGUMENTS,
        ])
        .0,
);

/// NFSv4.2 (RFC 7862 section 12.2): `clone_blksize` (the backend's alignment for CLONE, 0
/// when it cannot clone), `space_freed` (the storage a REMOVE would free: none while other
/// links keep a file) and `change_attr_type` (what `change` is made of: the memory
/// backend's counter, the local backend's ctime), and `xattr_support` (RFC 8276 section
/// 8.1, answered per object).
const V42: Bitmap = Bitmap(
    V41.0
        | Bitmap::of(&[
            num::CLONE_BLKSIZE,
            num::SPACE_FREED,
            num::CHANGE_ATTR_TYPE,
            num::XATTR_SUPPORT,
        ])
        .0,
);

/// `change_attr_type4` of a backend's change attribute.
fn change_attr_type(k: ChangeKind) -> u32 {
    match k {
        ChangeKind::Counter => 0,   // NFS4_CHANGE_TYPE_IS_MONOTONIC_INCR
        ChangeKind::Ctime => 3,     // NFS4_CHANGE_TYPE_IS_TIME_METADATA
        ChangeKind::Undefined => 4, // NFS4_CHANGE_TYPE_IS_UNDEFINED
    }
}

/// `open_arguments` (RFC 9754 3.1): what OPEN takes, five `bitmap4`s whose bits are the
/// values of each argument: share access READ, WRITE, BOTH; share deny NONE to BOTH; of
/// the "want" values ANY_DELEG, NO_DELEG, CANCEL (READ_DELEG and WRITE_DELEG have no
/// bit of their own in RFC 9754; the flags are not advertised: the server honours none);
/// all seven claim types; the four create modes.
fn open_arguments(w: &mut Writer) {
    for word in [
        0b1110,
        0b1111,
        (1 << 3) | (1 << 4) | (1 << 5),
        0b111_1111,
        0b1111,
    ] {
        w.u32(1);
        w.u32(word);
    }
}

/// The attributes supported for NFSv4 minor version `minor` (`supported_attrs`).
pub fn supported(minor: u32) -> Bitmap {
    match minor {
        0 => V40,
        1 => V41,
        _ => V42,
    }
}

/// The server's own figures that attributes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAttrs {
    /// The minor version of the compound (decides the supported set).
    pub minor: u32,
    /// `lease_time`, in seconds.
    pub lease_time: u32,
    /// `maxread`: largest READ.
    pub max_read: u64,
    /// `maxwrite`: largest WRITE.
    pub max_write: u64,
}

/// What the attributes of one object are encoded from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The object's attributes, file system and mount point.
    pub obj: &'a ObjectAttrs,
    /// Its file handle (`filehandle`).
    pub fh: &'a [u8],
    /// Its file system's limits.
    pub limits: Limits,
    /// Its file system's space figures, when fetched: [`FSSTAT_ATTRS`] are left out of the
    /// reply without them (the caller fetches them when [`needs_fsstat`] says so).
    pub fsstat: Option<FsStat>,
    /// `rdattr_error`: the status of fetching the attributes (READDIR), `0` (NFS4_OK) else.
    pub rdattr_error: u32,
}

/// Whether encoding `req` needs the file system's space figures.
pub fn needs_fsstat(req: Bitmap) -> bool {
    req.intersects(FSSTAT_ATTRS)
}

/// `fh_expire_type` FH4_PERSISTENT: handles are made with the server's secret, kept in its
/// state directory, and name backend keys that outlive restarts.
const FH4_PERSISTENT: u32 = 0;

/// The `nfs_ftype4` of a file type.
fn ftype4(t: FileType) -> u32 {
    match t {
        FileType::Regular => 1,
        FileType::Directory => 2,
        FileType::BlockDevice => 3,
        FileType::CharDevice => 4,
        FileType::Symlink => 5,
        FileType::Socket => 6,
        FileType::Fifo => 7,
    }
}

fn time4(w: &mut Writer, t: Timestamp) {
    w.i64(t.secs);
    w.u32(t.nsecs);
}

/// GETATTR: the attributes of `req` this server has, encoded. Returns the bitmap of those
/// encoded and the `attrlist4` bytes. INVAL when `req` names a set-only attribute.
pub fn encode(
    req: Bitmap,
    src: &Source<'_>,
    srv: &ServerAttrs,
    owners: &OwnerMap,
) -> R4<(Bitmap, Vec<u8>)> {
    if req.intersects(SET_ONLY) {
        return Err(Nfs4Error::Inval);
    }
    let mut mask = req.and(supported(srv.minor)).minus(SET_ONLY);
    if src.fsstat.is_none() {
        mask = mask.minus(FSSTAT_ATTRS);
    }
    let mut w = Writer::with_capacity(256);
    let a = &src.obj.attr;
    let fsstat = src.fsstat.unwrap_or_default();
    for n in mask.iter() {
        match n {
            num::SUPPORTED_ATTRS => supported(srv.minor).encode(&mut w),
            num::TYPE => w.u32(ftype4(a.ftype)),
            num::FH_EXPIRE_TYPE => w.u32(FH4_PERSISTENT),
            num::CHANGE => w.u64(a.change),
            num::SIZE => w.u64(a.size),
            num::LINK_SUPPORT | num::SYMLINK_SUPPORT => w.bool(true),
            num::NAMED_ATTR => w.bool(false),
            num::FSID => {
                w.u64(src.obj.fsid.major);
                w.u64(src.obj.fsid.minor);
            }
            num::UNIQUE_HANDLES => w.bool(true),
            num::LEASE_TIME => w.u32(srv.lease_time),
            num::RDATTR_ERROR => w.u32(src.rdattr_error),
            num::ACLSUPPORT => w.u32(0),
            num::CANSETTIME => w.bool(true),
            num::CASE_INSENSITIVE => w.bool(false),
            num::CASE_PRESERVING => w.bool(true),
            num::CHOWN_RESTRICTED => w.bool(true),
            num::FILEHANDLE => w.opaque(src.fh),
            num::FILEID => w.u64(a.fileid),
            num::FILES_AVAIL => w.u64(fsstat.avail_files),
            num::FILES_FREE => w.u64(fsstat.free_files),
            num::FILES_TOTAL => w.u64(fsstat.total_files),
            num::HOMOGENEOUS => w.bool(true),
            num::MAXFILESIZE => w.u64(src.limits.max_file_size),
            num::MAXLINK => w.u32(src.limits.link_max),
            num::MAXNAME => w.u32(src.limits.name_max),
            num::MAXREAD => w.u64(srv.max_read),
            num::MAXWRITE => w.u64(srv.max_write),
            num::MODE => w.u32(a.mode & 0o7777),
            num::NO_TRUNC => w.bool(true),
            num::NUMLINKS => w.u32(a.nlink),
            num::OWNER => w.opaque(owners.owner(a.uid).as_bytes()),
            num::OWNER_GROUP => w.opaque(owners.group(a.gid).as_bytes()),
            num::RAWDEV => {
                w.u32(a.rdev.0);
                w.u32(a.rdev.1);
            }
            num::SPACE_AVAIL => w.u64(fsstat.avail_bytes),
            num::SPACE_FREE => w.u64(fsstat.free_bytes),
            num::SPACE_TOTAL => w.u64(fsstat.total_bytes),
            num::SPACE_USED => w.u64(a.used),
            num::TIME_ACCESS => time4(&mut w, a.atime),
            num::TIME_DELTA => {
                let g = src.limits.time_granularity_ns;
                w.i64(i64::from(g / 1_000_000_000));
                w.u32(g % 1_000_000_000);
            }
            num::TIME_METADATA => time4(&mut w, a.ctime),
            num::TIME_MODIFY => time4(&mut w, a.mtime),
            num::MOUNTED_ON_FILEID => w.u64(src.obj.mounted_on_fileid),
            num::FS_LAYOUT_TYPES => w.u32(0),
            num::SUPPATTR_EXCLCREAT => EXCLCREAT.encode(&mut w),
            num::OPEN_ARGUMENTS => open_arguments(&mut w),
            num::CLONE_BLKSIZE => w.u32(src.limits.clone_blksize),
            num::SPACE_FREED => w.u64(if a.ftype == FileType::Directory || a.nlink <= 1 {
                a.used
            } else {
                0
            }),
            num::CHANGE_ATTR_TYPE => w.u32(change_attr_type(src.limits.change)),
            num::XATTR_SUPPORT => w.bool(src.obj.xattr_support),
            // `supported` and this match list the same attributes (the test
            // `every_supported_attribute_encodes` holds them together).
            _ => return Err(Nfs4Error::ServerFault),
        }
    }
    Ok((mask, w.into_inner()))
}

/// Checks a client's bitmap against what the server supports: ATTRNOTSUPP for any
/// attribute it does not.
fn check_supported(f: &Fattr<'_>, minor: u32) -> R4<()> {
    if f.beyond || !f.mask.minus(supported(minor)).is_empty() {
        return Err(Nfs4Error::AttrNotSupp);
    }
    Ok(())
}

fn settime(r: &mut Reader<'_>) -> R4<SetTime> {
    let bad = |_| Nfs4Error::BadXdr;
    match r.u32().map_err(bad)? {
        0 => Ok(SetTime::Now),
        1 => {
            let secs = r.i64().map_err(bad)?;
            let nsecs = r.u32().map_err(bad)?;
            if nsecs >= 1_000_000_000 {
                return Err(Nfs4Error::Inval);
            }
            Ok(SetTime::At(Timestamp { secs, nsecs }))
        }
        _ => Err(Nfs4Error::BadXdr),
    }
}

/// SETATTR (and the attributes of OPEN and CREATE): the changes a `fattr4` asks for, and
/// the bitmap of the attributes it sets. See the module documentation for the errors.
pub fn decode_settable(f: &Fattr<'_>, minor: u32, owners: &OwnerMap) -> R4<(Bitmap, SetAttr)> {
    check_supported(f, minor)?;
    if !f.mask.minus(SETTABLE).is_empty() {
        return Err(Nfs4Error::Inval);
    }
    let bad = |_| Nfs4Error::BadXdr;
    let mut r = Reader::new(f.vals);
    let mut set = SetAttr::default();
    for n in f.mask.iter() {
        match n {
            num::SIZE => set.size = Some(r.u64().map_err(bad)?),
            num::MODE => set.mode = Some(r.u32().map_err(bad)? & 0o7777),
            num::OWNER => set.uid = Some(owners.uid(r.opaque(MAX_OWNER as u32).map_err(bad)?)?),
            num::OWNER_GROUP => {
                set.gid = Some(owners.gid(r.opaque(MAX_OWNER as u32).map_err(bad)?)?)
            }
            num::TIME_ACCESS_SET => set.atime = settime(&mut r)?,
            num::TIME_MODIFY_SET => set.mtime = settime(&mut r)?,
            // Only SETTABLE attributes are left (checked above).
            _ => return Err(Nfs4Error::Inval),
        }
    }
    r.finish().map_err(bad)?;
    Ok((f.mask, set))
}

/// VERIFY and NVERIFY (RFC 8881 18.31, 18.15): whether the attributes of `f` equal the
/// object's, compared as encoded (as knfsd does). ATTRNOTSUPP for an unsupported attribute;
/// INVAL for a set-only one or `rdattr_error` (meaningful only in READDIR).
pub fn same(f: &Fattr<'_>, src: &Source<'_>, srv: &ServerAttrs, owners: &OwnerMap) -> R4<bool> {
    check_supported(f, srv.minor)?;
    if f.mask.intersects(SET_ONLY) || f.mask.contains(num::RDATTR_ERROR) {
        return Err(Nfs4Error::Inval);
    }
    let (mask, ours) = encode(f.mask, src, srv, owners)?;
    if mask != f.mask {
        // The space figures were not fetched: the caller's mistake, not the client's.
        return Err(Nfs4Error::ServerFault);
    }
    Ok(ours == f.vals)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v4::pseudo::{Fsid, ObjectAttrs};
    use rnfs_vfs::Attr;

    fn obj() -> ObjectAttrs {
        let t = |s| Timestamp { secs: s, nsecs: 7 };
        ObjectAttrs {
            attr: Attr {
                ftype: FileType::Regular,
                mode: 0o100644,
                nlink: 2,
                uid: 1000,
                gid: 0,
                size: 0x1_0000_0002,
                used: 4096,
                rdev: (8, 1),
                fsid: 0x55,
                fileid: 0x1234,
                atime: t(1),
                mtime: t(-1),
                ctime: t(3),
                change: 0xabcd,
            },
            fsid: Fsid {
                major: 9,
                minor: 0x55,
            },
            mounted_on_fileid: 0x1234,
            xattr_support: true,
        }
    }

    const SRV: ServerAttrs = ServerAttrs {
        minor: 1,
        lease_time: 90,
        max_read: 1 << 20,
        max_write: 1 << 20,
    };

    fn src(o: &ObjectAttrs) -> Source<'_> {
        Source {
            obj: o,
            fh: b"handle",
            limits: Limits::default(),
            fsstat: Some(FsStat {
                total_bytes: 100,
                free_bytes: 50,
                avail_bytes: 40,
                total_files: 10,
                free_files: 5,
                avail_files: 4,
            }),
            rdattr_error: 0,
        }
    }

    /// Big-endian words, for writing expected layouts.
    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn bitmaps_are_words_of_32_attributes() {
        // RFC 8881 3.3.7: bit n of word n / 32 names attribute n.
        assert_eq!(Bitmap::of(&[num::TYPE]).words(), [0x2]);
        assert_eq!(Bitmap::of(&[num::MODE]).words(), [0, 0x2]);
        assert_eq!(
            Bitmap::of(&[num::SUPPATTR_EXCLCREAT]).words(),
            [0, 0, 0x800]
        );
        assert!(Bitmap::default().words().is_empty());
        let mut w = Writer::new();
        Bitmap::of(&[num::SIZE, num::OWNER]).encode(&mut w);
        assert_eq!(w.into_inner(), be(&[2, 0x10, 0x10]));
        assert_eq!(
            Bitmap::from_words(&[0x10, 0, 0, 0, 1]),
            (Bitmap::of(&[num::SIZE]), true)
        );
        assert_eq!(
            Bitmap::from_words(&[0x10, 0, 0, 0, 0]),
            (Bitmap::of(&[num::SIZE]), false)
        );
        let b = Bitmap::of(&[0, 31, 32, 127]);
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 31, 32, 127]);
        assert_eq!(Bitmap::from_words(&b.words()).0, b);
    }

    #[test]
    fn a_getattr_reply_has_the_rfc_layout() {
        let o = obj();
        let req = Bitmap::of(&[num::TYPE, num::SIZE, num::FSID, num::MODE, num::OWNER]);
        let (mask, vals) = encode(req, &src(&o), &SRV, &OwnerMap::numeric()).unwrap();
        assert_eq!(mask, req);
        let mut want = be(&[1]); // type: NF4REG
        want.extend(be(&[1, 2])); // size 0x1_0000_0002
        want.extend(be(&[0, 9, 0, 0x55])); // fsid { major 9, minor 0x55 }
        want.extend(be(&[0o644])); // mode: permission bits only
        want.extend(be(&[4])); // owner "1000"
        want.extend(b"1000");
        assert_eq!(vals, want);
        let mut w = Writer::new();
        write_fattr(&mut w, mask, &vals);
        let mut full = be(&[2, 0x112, 0x12, want.len() as u32]);
        full.extend(&want);
        assert_eq!(w.into_inner(), full);
        // And a fattr4 decodes back to its parts.
        let mut r = Reader::new(&full);
        let f = Fattr::decode(&mut r).unwrap();
        assert_eq!((f.mask, f.beyond, f.vals), (req, false, &want[..]));
    }

    #[test]
    fn times_owners_and_server_figures() {
        let o = obj();
        let s = src(&o);
        let one = |n: u32| {
            encode(Bitmap::of(&[n]), &s, &SRV, &OwnerMap::numeric())
                .unwrap()
                .1
        };
        // nfstime4 { int64 seconds; uint32 nseconds }: -1 s is all ones.
        assert_eq!(one(num::TIME_MODIFY), be(&[u32::MAX, u32::MAX, 7]));
        assert_eq!(one(num::TIME_METADATA), be(&[0, 3, 7]));
        assert_eq!(one(num::TIME_DELTA), be(&[0, 0, 1]), "1 ns granularity");
        // utf8str: length, bytes, zero padding to 4.
        assert_eq!(one(num::OWNER_GROUP), [0, 0, 0, 1, b'0', 0, 0, 0]);
        assert_eq!(one(num::RAWDEV), be(&[8, 1]));
        assert_eq!(one(num::LEASE_TIME), be(&[90]));
        assert_eq!(one(num::FH_EXPIRE_TYPE), be(&[0]), "FH4_PERSISTENT");
        assert_eq!(
            one(num::FILEHANDLE),
            [&be(&[6])[..], b"handle", &[0, 0]].concat()
        );
        assert_eq!(one(num::FS_LAYOUT_TYPES), be(&[0]), "no layout types");
        assert_eq!(one(num::CHANGE), be(&[0, 0xabcd]));
        assert_eq!(one(num::MOUNTED_ON_FILEID), be(&[0, 0x1234]));
        assert_eq!(one(num::SPACE_AVAIL), be(&[0, 40]));
        assert_eq!(one(num::FILES_TOTAL), be(&[0, 10]));
        assert_eq!(one(num::SPACE_USED), be(&[0, 4096]));
        assert_eq!(one(num::SUPPATTR_EXCLCREAT), be(&[2, 0x10, 0x32]));
        assert_eq!(one(num::RDATTR_ERROR), be(&[0]));
        // NFSv4.2's: the backend's clone alignment and change kind, what REMOVE frees.
        let one42 = |n| {
            let srv = ServerAttrs { minor: 2, ..SRV };
            encode(Bitmap::of(&[n]), &s, &srv, &OwnerMap::numeric())
                .unwrap()
                .1
        };
        assert_eq!(one42(num::CLONE_BLKSIZE), be(&[s.limits.clone_blksize]));
        assert_eq!(one42(num::CHANGE_ATTR_TYPE), be(&[4]), "undefined");
        assert_eq!(
            one42(num::SPACE_FREED),
            be(&[0, 0]),
            "another link keeps it"
        );
        assert!(
            one(num::CLONE_BLKSIZE).is_empty(),
            "not an NFSv4.1 attribute"
        );
        let mut with_error = s;
        with_error.rdattr_error = Nfs4Error::Access.code();
        let (_, v) = encode(
            Bitmap::of(&[num::RDATTR_ERROR]),
            &with_error,
            &SRV,
            &OwnerMap::numeric(),
        )
        .unwrap();
        assert_eq!(v, be(&[13]));
    }

    #[test]
    fn every_supported_attribute_encodes() {
        let o = obj();
        for minor in [0, 1, 2] {
            let srv = ServerAttrs { minor, ..SRV };
            for n in supported(minor).minus(SET_ONLY).iter() {
                let (mask, v) = encode(Bitmap::of(&[n]), &src(&o), &srv, &OwnerMap::numeric())
                    .unwrap_or_else(|e| panic!("attribute {n}: {e}"));
                assert_eq!(mask, Bitmap::of(&[n]));
                assert!(!v.is_empty() && v.len() % 4 == 0, "attribute {n}");
            }
        }
        // supported_attrs lists the set-only ones too; NFSv4.0 has none of 4.1's.
        assert!(supported(1).contains(num::TIME_MODIFY_SET));
        assert!(!supported(0).contains(num::FS_LAYOUT_TYPES));
        assert!(!supported(0).contains(num::SUPPATTR_EXCLCREAT));
        assert!(supported(1).contains(num::SUPPATTR_EXCLCREAT));
        // xattr_support is NFSv4.2's (RFC 8276).
        assert!(!supported(1).contains(num::XATTR_SUPPORT));
        assert!(supported(2).contains(num::XATTR_SUPPORT));
        let required = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 19, 75];
        assert!(required.iter().all(|&n| supported(1).contains(n)));
    }

    #[test]
    fn getattr_leaves_out_what_it_lacks_and_refuses_set_only() {
        let o = obj();
        let s = src(&o);
        let own = OwnerMap::numeric();
        // ACL (12) is not supported, nor is attribute 100: left out.
        let (mask, v) = encode(Bitmap::of(&[num::ACL, num::TYPE, 100]), &s, &SRV, &own).unwrap();
        assert_eq!((mask, v), (Bitmap::of(&[num::TYPE]), be(&[1])));
        let v40 = ServerAttrs { minor: 0, ..SRV };
        let (mask, _) = encode(Bitmap::of(&[num::FS_LAYOUT_TYPES]), &s, &v40, &own).unwrap();
        assert!(mask.is_empty(), "an NFSv4.1 attribute asked over NFSv4.0");
        let mut no_stat = s;
        no_stat.fsstat = None;
        let (mask, _) = encode(
            Bitmap::of(&[num::SPACE_FREE, num::SIZE]),
            &no_stat,
            &SRV,
            &own,
        )
        .unwrap();
        assert_eq!(mask, Bitmap::of(&[num::SIZE]));
        assert!(needs_fsstat(Bitmap::of(&[num::FILES_FREE])));
        assert!(!needs_fsstat(Bitmap::of(&[num::SPACE_USED])));
        assert_eq!(
            encode(Bitmap::of(&[num::TIME_MODIFY_SET]), &s, &SRV, &own),
            Err(Nfs4Error::Inval)
        );
    }

    fn fattr(words: &[u32], vals: &[u8]) -> (Vec<u32>, Vec<u8>) {
        (words.to_vec(), vals.to_vec())
    }

    #[test]
    fn settable_attributes_decode() {
        let own = OwnerMap::numeric();
        // size 5, mode 04755, owner "7", owner_group "8", atime now, mtime (2, 3).
        let mask = Bitmap::of(&[
            num::SIZE,
            num::MODE,
            num::OWNER,
            num::OWNER_GROUP,
            num::TIME_ACCESS_SET,
            num::TIME_MODIFY_SET,
        ]);
        let mut vals = be(&[0, 5, 0o104755]);
        vals.extend([0, 0, 0, 1, b'7', 0, 0, 0, 0, 0, 0, 1, b'8', 0, 0, 0]);
        vals.extend(be(&[0, 1, 0, 2, 3]));
        let (w, v) = fattr(&mask.words(), &vals);
        let (set_mask, set) = decode_settable(&Fattr::from_parts(&w, &v), 1, &own).unwrap();
        assert_eq!(set_mask, mask);
        assert_eq!(
            set,
            SetAttr {
                mode: Some(0o4755),
                uid: Some(7),
                gid: Some(8),
                size: Some(5),
                atime: SetTime::Now,
                mtime: SetTime::At(Timestamp { secs: 2, nsecs: 3 }),
            }
        );
        let empty = decode_settable(&Fattr::from_parts(&[], &[]), 1, &own).unwrap();
        assert!(empty.1.is_empty());
    }

    #[test]
    fn settable_errors_follow_the_rfc() {
        let own = OwnerMap::numeric();
        let dec =
            |words: &[u32], vals: &[u8]| decode_settable(&Fattr::from_parts(words, vals), 1, &own);
        let mode = Bitmap::of(&[num::MODE]).words();
        let size = Bitmap::of(&[num::SIZE]).words();
        // Unsupported (ACL, a bit past 127): ATTRNOTSUPP; supported but read-only: INVAL.
        assert_eq!(
            dec(&Bitmap::of(&[num::ACL]).words(), &[]),
            Err(Nfs4Error::AttrNotSupp)
        );
        assert_eq!(dec(&[0, 0, 0, 0, 1], &[]), Err(Nfs4Error::AttrNotSupp));
        assert_eq!(
            dec(&Bitmap::of(&[num::TYPE]).words(), &be(&[1])),
            Err(Nfs4Error::Inval)
        );
        assert_eq!(
            dec(&Bitmap::of(&[num::TIME_MODIFY]).words(), &be(&[0, 0, 0])),
            Err(Nfs4Error::Inval)
        );
        // Values that do not match the bitmap: BADXDR.
        assert_eq!(
            dec(&mode, &be(&[0o644, 0])),
            Err(Nfs4Error::BadXdr),
            "trailing"
        );
        assert_eq!(dec(&size, &be(&[0])), Err(Nfs4Error::BadXdr), "truncated");
        let mtime = Bitmap::of(&[num::TIME_MODIFY_SET]).words();
        assert_eq!(
            dec(&mtime, &be(&[2])),
            Err(Nfs4Error::BadXdr),
            "time_how4 2"
        );
        assert_eq!(
            dec(&mtime, &be(&[1, 0, 0, 1_000_000_000])),
            Err(Nfs4Error::Inval)
        );
        // An owner that cannot be mapped.
        let owner = Bitmap::of(&[num::OWNER]).words();
        let alice = [0, 0, 0, 5, b'a', b'l', b'i', b'c', b'e', 0, 0, 0];
        assert_eq!(dec(&owner, &alice), Err(Nfs4Error::BadOwner));
        // NFSv4.0 knows no suppattr_exclcreat (and it is read-only anyway).
        let excl = Bitmap::of(&[num::SUPPATTR_EXCLCREAT]).words();
        assert_eq!(
            decode_settable(&Fattr::from_parts(&excl, &[]), 0, &own),
            Err(Nfs4Error::AttrNotSupp)
        );
    }

    #[test]
    fn fattr_lengths_are_checked_before_reading() {
        let mut too_many = be(&[MAX_BITMAP_WORDS + 1]);
        too_many.extend(vec![0; 4 * (MAX_BITMAP_WORDS as usize + 1) + 4]);
        assert!(Fattr::decode(&mut Reader::new(&too_many)).is_err());
        let long = be(&[0, MAX_ATTRLIST + 1]);
        assert!(Fattr::decode(&mut Reader::new(&long)).is_err());
        // A bitmap claiming more words than the message holds.
        assert!(Fattr::decode(&mut Reader::new(&be(&[3, 1]))).is_err());
    }

    #[test]
    fn verify_compares_the_encoded_values() {
        let o = obj();
        let s = src(&o);
        let own = OwnerMap::numeric();
        let req = Bitmap::of(&[num::SIZE, num::CHANGE, num::OWNER]);
        let (mask, vals) = encode(req, &s, &SRV, &own).unwrap();
        let words = mask.words();
        assert_eq!(
            same(&Fattr::from_parts(&words, &vals), &s, &SRV, &own),
            Ok(true)
        );
        let mut changed = o.clone();
        changed.attr.change += 1;
        assert_eq!(
            same(
                &Fattr::from_parts(&words, &vals),
                &src(&changed),
                &SRV,
                &own
            ),
            Ok(false)
        );
        let set_only = Bitmap::of(&[num::TIME_ACCESS_SET]).words();
        assert_eq!(
            same(&Fattr::from_parts(&set_only, &be(&[0])), &s, &SRV, &own),
            Err(Nfs4Error::Inval)
        );
        let rderr = Bitmap::of(&[num::RDATTR_ERROR]).words();
        assert_eq!(
            same(&Fattr::from_parts(&rderr, &be(&[0])), &s, &SRV, &own),
            Err(Nfs4Error::Inval)
        );
        let acl = Bitmap::of(&[num::ACL]).words();
        assert_eq!(
            same(&Fattr::from_parts(&acl, &[]), &s, &SRV, &own),
            Err(Nfs4Error::AttrNotSupp)
        );
    }
}
