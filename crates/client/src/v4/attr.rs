//! NFSv4 attributes on the client's side (RFC 8881 section 5), free of I/O: the `bitmap4`
//! sets the client asks for, the decoding of a `fattr4` into the client's own types
//! ([`Attr`], [`FsStat`], limits), and the encoding of a [`SetAttr`] as a `fattr4`.
//!
//! A `fattr4`'s values carry no lengths: each attribute's XDR follows the previous one in
//! ascending attribute number, so an attribute the decoder does not know ends the decoding
//! (the reply is refused as undecodable, never read at the wrong offset). The client only
//! asks for attributes it knows, and a server may only answer a subset of what was asked
//! (RFC 8881 section 15.1.15.1: attributes it does not support are left out).
//!
//! Owners (`owner`, `owner_group`) are strings: numeric strings (RFC 8881 section 5.9, what
//! servers send to AUTH_SYS clients without an id mapping) are numbers; `name@domain` is
//! mapped by the caller's `ids` (the system's user database, as the Linux client's
//! idmapper does); a name nobody knows is `nobody` (65534), as there.
use crate::types::{Attr, Device, FileHandle, FileType, FsStat, Fsid, SetAttr, SetTime, Time};
use rnfs_proto::nfs4::*;
use rnfs_xdr::{Reader, VarArray, Writer};

/// The id of an owner nobody knows (the Linux idmapper's `nobody`).
pub const NOBODY: u32 = 65534;
/// The longest owner string accepted (the server's bound, RFC 8881 gives none).
const OWNER_MAX: u32 = 1024;

/// A bitmap of these attributes.
pub fn bitmap(bits: &[u32]) -> Bitmap4 {
    let mut b = VarArray(Vec::new());
    for &n in bits {
        bitmap_set(&mut b, n);
    }
    b
}

/// The attributes of an [`Attr`].
pub const ATTR_BITS: &[u32] = &[
    FATTR4_TYPE,
    FATTR4_CHANGE,
    FATTR4_SIZE,
    FATTR4_FSID,
    FATTR4_FILEID,
    FATTR4_MODE,
    FATTR4_NUMLINKS,
    FATTR4_OWNER,
    FATTR4_OWNER_GROUP,
    FATTR4_RAWDEV,
    FATTR4_SPACE_USED,
    FATTR4_TIME_ACCESS,
    FATTR4_TIME_METADATA,
    FATTR4_TIME_MODIFY,
];

/// The attributes of an [`FsStat`].
pub const FSSTAT_BITS: &[u32] = &[
    FATTR4_FILES_AVAIL,
    FATTR4_FILES_FREE,
    FATTR4_FILES_TOTAL,
    FATTR4_SPACE_AVAIL,
    FATTR4_SPACE_FREE,
    FATTR4_SPACE_TOTAL,
];

/// Every attribute this module decodes, as a `fattr4` may carry them: each field is the
/// attribute of that name (RFC 8881 section 5), `None` when the server did not send it.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    pub ftype: Option<FileType>,
    pub change: Option<u64>,
    pub size: Option<u64>,
    pub fsid: Option<Fsid>,
    pub lease_time: Option<u32>,
    pub rdattr_error: Option<u32>,
    pub fh: Option<FileHandle>,
    pub fileid: Option<u64>,
    pub files_avail: Option<u64>,
    pub files_free: Option<u64>,
    pub files_total: Option<u64>,
    pub maxread: Option<u64>,
    pub maxwrite: Option<u64>,
    pub mode: Option<u32>,
    pub nlink: Option<u32>,
    pub owner: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    pub rawdev: Option<Device>,
    pub space_avail: Option<u64>,
    pub space_free: Option<u64>,
    pub space_total: Option<u64>,
    pub space_used: Option<u64>,
    pub atime: Option<Time>,
    pub ctime: Option<Time>,
    pub mtime: Option<Time>,
    pub mounted_on_fileid: Option<u64>,
}

fn time(r: &mut Reader<'_>) -> rnfs_xdr::Result<Time> {
    let seconds = r.i64()?;
    let nseconds = r.u32()?;
    Ok(Time {
        seconds,
        nseconds: nseconds.min(999_999_999),
    })
}

fn ftype(t: u32) -> Option<FileType> {
    Some(match t {
        1 => FileType::Reg,
        2 => FileType::Dir,
        3 => FileType::Blk,
        4 => FileType::Chr,
        5 => FileType::Lnk,
        6 => FileType::Sock,
        7 => FileType::Fifo,
        // NF4ATTRDIR and NF4NAMEDATTR: not asked for (no named attributes).
        _ => return None,
    })
}

/// Why a `fattr4` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrError {
    /// The values ended early or are malformed.
    Xdr,
    /// An attribute the client does not know (and did not ask for).
    Unknown(u32),
    /// A value out of its range (a file type, a handle's length).
    Invalid(u32),
}

/// Decodes a `fattr4`: every attribute its bitmap names, in ascending order; bytes left
/// after them are an error too (the values do not match the bitmap).
pub fn decode(f: &Fattr4) -> Result<Decoded, AttrError> {
    let mut d = Decoded::default();
    let mut r = Reader::new(&f.attr_vals.0);
    let x = |_| AttrError::Xdr;
    for (w, word) in f.attrmask.0.iter().enumerate() {
        for b in 0..32u32 {
            if word & (1 << b) == 0 {
                continue;
            }
            let n = w as u32 * 32 + b;
            match n {
                FATTR4_TYPE => {
                    d.ftype = Some(ftype(r.u32().map_err(x)?).ok_or(AttrError::Invalid(n))?)
                }
                FATTR4_CHANGE => d.change = Some(r.u64().map_err(x)?),
                FATTR4_SIZE => d.size = Some(r.u64().map_err(x)?),
                FATTR4_FSID => {
                    d.fsid = Some(Fsid {
                        major: r.u64().map_err(x)?,
                        minor: r.u64().map_err(x)?,
                    })
                }
                FATTR4_LEASE_TIME => d.lease_time = Some(r.u32().map_err(x)?),
                FATTR4_RDATTR_ERROR => d.rdattr_error = Some(r.u32().map_err(x)?),
                FATTR4_FILEHANDLE => {
                    let h = r.opaque(128).map_err(x)?.to_vec();
                    d.fh = Some(FileHandle::new(h).ok_or(AttrError::Invalid(n))?);
                }
                FATTR4_FILEID => d.fileid = Some(r.u64().map_err(x)?),
                FATTR4_FILES_AVAIL => d.files_avail = Some(r.u64().map_err(x)?),
                FATTR4_FILES_FREE => d.files_free = Some(r.u64().map_err(x)?),
                FATTR4_FILES_TOTAL => d.files_total = Some(r.u64().map_err(x)?),
                FATTR4_MAXREAD => d.maxread = Some(r.u64().map_err(x)?),
                FATTR4_MAXWRITE => d.maxwrite = Some(r.u64().map_err(x)?),
                FATTR4_MODE => d.mode = Some(r.u32().map_err(x)? & 0o7777),
                FATTR4_NUMLINKS => d.nlink = Some(r.u32().map_err(x)?),
                FATTR4_OWNER => d.owner = Some(r.opaque(OWNER_MAX).map_err(x)?.to_vec()),
                FATTR4_OWNER_GROUP => d.group = Some(r.opaque(OWNER_MAX).map_err(x)?.to_vec()),
                FATTR4_RAWDEV => {
                    d.rawdev = Some(Device {
                        major: r.u32().map_err(x)?,
                        minor: r.u32().map_err(x)?,
                    })
                }
                FATTR4_SPACE_AVAIL => d.space_avail = Some(r.u64().map_err(x)?),
                FATTR4_SPACE_FREE => d.space_free = Some(r.u64().map_err(x)?),
                FATTR4_SPACE_TOTAL => d.space_total = Some(r.u64().map_err(x)?),
                FATTR4_SPACE_USED => d.space_used = Some(r.u64().map_err(x)?),
                FATTR4_TIME_ACCESS => d.atime = Some(time(&mut r).map_err(x)?),
                FATTR4_TIME_METADATA => d.ctime = Some(time(&mut r).map_err(x)?),
                FATTR4_TIME_MODIFY => d.mtime = Some(time(&mut r).map_err(x)?),
                FATTR4_MOUNTED_ON_FILEID => d.mounted_on_fileid = Some(r.u64().map_err(x)?),
                other => return Err(AttrError::Unknown(other)),
            }
        }
    }
    if r.remaining() != 0 {
        return Err(AttrError::Xdr);
    }
    Ok(d)
}

/// An owner string as a number: a numeric string is its number; `name@domain` (or a bare
/// name) is what `ids` says of the name; else [`NOBODY`].
pub fn owner_id(s: &[u8], ids: &dyn Fn(&str) -> Option<u32>) -> u32 {
    let Ok(s) = std::str::from_utf8(s) else {
        return NOBODY;
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().unwrap_or(NOBODY);
    }
    let name = s.split_once('@').map_or(s, |(n, _)| n);
    if name.is_empty() {
        return NOBODY;
    }
    ids(name).unwrap_or(NOBODY)
}

impl Decoded {
    /// The attributes as the client's [`Attr`]; `None` without a file type. Attributes
    /// the server did not send are 0 (its `change` falls back to ctime, as over v3).
    pub fn to_attr(
        &self,
        users: &dyn Fn(&str) -> Option<u32>,
        groups: &dyn Fn(&str) -> Option<u32>,
    ) -> Option<Attr> {
        let ctime = self.ctime.unwrap_or_default();
        Some(Attr {
            ftype: self.ftype?,
            mode: self.mode.unwrap_or(0),
            nlink: self.nlink.unwrap_or(1),
            uid: self.owner.as_deref().map_or(NOBODY, |o| owner_id(o, users)),
            gid: self
                .group
                .as_deref()
                .map_or(NOBODY, |g| owner_id(g, groups)),
            size: self.size.unwrap_or(0),
            used: self.space_used.unwrap_or(0),
            rdev: self.rawdev.unwrap_or_default(),
            fsid: self.fsid.unwrap_or_default(),
            fileid: self.fileid.or(self.mounted_on_fileid).unwrap_or(0),
            atime: self.atime.unwrap_or_default(),
            mtime: self.mtime.unwrap_or_default(),
            ctime,
            change: self
                .change
                .unwrap_or_else(|| crate::types::change_from_ctime(ctime)),
        })
    }

    /// The space and file figures as an [`FsStat`] (0 where not sent).
    pub fn to_fsstat(&self) -> FsStat {
        FsStat {
            tbytes: self.space_total.unwrap_or(0),
            fbytes: self.space_free.unwrap_or(0),
            abytes: self.space_avail.unwrap_or(0),
            tfiles: self.files_total.unwrap_or(0),
            ffiles: self.files_free.unwrap_or(0),
            afiles: self.files_avail.unwrap_or(0),
        }
    }
}

fn settime(w: &mut Writer, t: SetTime) {
    match t {
        SetTime::ServerTime | SetTime::DontChange => w.u32(0), // SET_TO_SERVER_TIME4
        SetTime::ClientTime(t) => {
            w.u32(1); // SET_TO_CLIENT_TIME4
            w.i64(t.seconds);
            w.u32(t.nseconds);
        }
    }
}

/// A [`SetAttr`] as a `fattr4` (owners as numeric strings, RFC 8881 section 5.9).
pub fn encode_set(s: &SetAttr) -> Fattr4 {
    let mut bits = Vec::new();
    let mut w = Writer::new();
    if let Some(size) = s.size {
        bits.push(FATTR4_SIZE);
        w.u64(size);
    }
    if let Some(mode) = s.mode {
        bits.push(FATTR4_MODE);
        w.u32(mode & 0o7777);
    }
    if let Some(uid) = s.uid {
        bits.push(FATTR4_OWNER);
        w.opaque(uid.to_string().as_bytes());
    }
    if let Some(gid) = s.gid {
        bits.push(FATTR4_OWNER_GROUP);
        w.opaque(gid.to_string().as_bytes());
    }
    if s.atime != SetTime::DontChange {
        bits.push(FATTR4_TIME_ACCESS_SET);
        settime(&mut w, s.atime);
    }
    if s.mtime != SetTime::DontChange {
        bits.push(FATTR4_TIME_MODIFY_SET);
        settime(&mut w, s.mtime);
    }
    Fattr4 {
        attrmask: bitmap(&bits),
        attr_vals: rnfs_xdr::Opaque(w.into_inner()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fattr(bits: &[u32], vals: impl FnOnce(&mut Writer)) -> Fattr4 {
        let mut w = Writer::new();
        vals(&mut w);
        Fattr4 {
            attrmask: bitmap(bits),
            attr_vals: rnfs_xdr::Opaque(w.into_inner()),
        }
    }

    fn no_ids(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn a_files_attributes_decode_in_ascending_order() {
        let f = fattr(ATTR_BITS, |w| {
            w.u32(1); // type
            w.u64(77); // change
            w.u64(4096); // size
            w.u64(9);
            w.u64(3); // fsid
            w.u64(1234); // fileid
            w.u32(0o100644); // mode (type bits dropped)
            w.u32(2); // numlinks
            w.opaque(b"1000"); // owner
            w.opaque(b"staff@example.org"); // group
            w.u32(0);
            w.u32(0); // rawdev
            w.u64(8192); // used
            for s in [10u64, 20, 30] {
                w.u64(s);
                w.u32(5);
            }
        });
        let d = decode(&f).unwrap();
        let groups = |n: &str| (n == "staff").then_some(50);
        let a = d.to_attr(&no_ids, &groups).unwrap();
        assert_eq!(a.ftype, FileType::Reg);
        assert_eq!((a.change, a.size, a.fileid), (77, 4096, 1234));
        assert_eq!(a.fsid, Fsid { major: 9, minor: 3 });
        assert_eq!((a.mode, a.nlink, a.uid, a.gid), (0o644, 2, 1000, 50));
        assert_eq!(a.used, 8192);
        assert_eq!(
            (a.atime.seconds, a.ctime.seconds, a.mtime.seconds),
            (10, 20, 30)
        );
    }

    #[test]
    fn an_attribute_the_client_does_not_know_stops_the_decoding() {
        // Attribute 12 (acl) has no decoder here: its length is unknown.
        let f = fattr(&[FATTR4_TYPE, 12], |w| {
            w.u32(2);
            w.u32(0);
        });
        assert_eq!(decode(&f), Err(AttrError::Unknown(12)));
    }

    #[test]
    fn values_short_of_or_beyond_the_bitmap_are_refused() {
        let short = fattr(&[FATTR4_SIZE], |w| w.u32(1));
        assert_eq!(decode(&short), Err(AttrError::Xdr));
        let long = fattr(&[FATTR4_TYPE], |w| {
            w.u32(1);
            w.u32(9);
        });
        assert_eq!(decode(&long), Err(AttrError::Xdr));
        let badtype = fattr(&[FATTR4_TYPE], |w| w.u32(99));
        assert_eq!(decode(&badtype), Err(AttrError::Invalid(FATTR4_TYPE)));
        let longfh = fattr(&[FATTR4_FILEHANDLE], |w| w.opaque(&[0; 129]));
        assert_eq!(decode(&longfh), Err(AttrError::Xdr));
    }

    #[test]
    fn owners_are_numbers_names_or_nobody() {
        let users = |n: &str| (n == "alice").then_some(1001);
        assert_eq!(owner_id(b"0", &users), 0);
        assert_eq!(owner_id(b"alice@dom", &users), 1001);
        assert_eq!(owner_id(b"alice", &users), 1001);
        assert_eq!(owner_id(b"bob@dom", &users), NOBODY);
        assert_eq!(owner_id(b"@dom", &users), NOBODY);
        assert_eq!(owner_id(b"", &users), NOBODY);
        assert_eq!(owner_id(b"99999999999", &users), NOBODY);
        assert_eq!(owner_id(&[0xff], &users), NOBODY);
    }

    #[test]
    fn no_change_attribute_falls_back_to_ctime() {
        let f = fattr(&[FATTR4_TYPE, FATTR4_TIME_METADATA], |w| {
            w.u32(2);
            w.u64(3);
            w.u32(4);
        });
        let a = decode(&f).unwrap().to_attr(&no_ids, &no_ids).unwrap();
        assert_eq!(
            a.change,
            crate::types::change_from_ctime(Time {
                seconds: 3,
                nseconds: 4
            })
        );
        assert!(decode(&fattr(&[FATTR4_SIZE], |w| w.u64(1)))
            .unwrap()
            .to_attr(&no_ids, &no_ids)
            .is_none());
    }

    #[test]
    fn a_setattr_encodes_in_ascending_order_and_decodes_back() {
        let s = SetAttr {
            mode: Some(0o600),
            uid: Some(7),
            gid: Some(8),
            size: Some(10),
            atime: SetTime::ServerTime,
            mtime: SetTime::ClientTime(Time {
                seconds: 5,
                nseconds: 6,
            }),
        };
        let f = encode_set(&s);
        assert_eq!(
            f.attrmask,
            bitmap(&[
                FATTR4_SIZE,
                FATTR4_MODE,
                FATTR4_OWNER,
                FATTR4_OWNER_GROUP,
                FATTR4_TIME_ACCESS_SET,
                FATTR4_TIME_MODIFY_SET
            ])
        );
        let mut r = Reader::new(&f.attr_vals.0);
        assert_eq!(r.u64().unwrap(), 10);
        assert_eq!(r.u32().unwrap(), 0o600);
        assert_eq!(r.opaque(16).unwrap(), b"7");
        assert_eq!(r.opaque(16).unwrap(), b"8");
        assert_eq!(r.u32().unwrap(), 0);
        assert_eq!(
            (r.u32().unwrap(), r.u64().unwrap(), r.u32().unwrap()),
            (1, 5, 6)
        );
        assert_eq!(r.remaining(), 0);
        assert!(encode_set(&SetAttr::default()).attrmask.0.is_empty());
    }
}
