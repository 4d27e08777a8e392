//! The one place NFSv3 wire types (RFC 1813) meet the client's own ([`crate::types`]):
//! every conversion either way. [`crate::nfs::Nfs3`] calls these at the edge; nothing
//! above it sees an NFSv3 type.
use crate::types::{
    change_from_ctime, Attr, CreateHow, Device, FileHandle, FileType, FsStat, Fsid, SetAttr,
    SetTime, SpecialFile, Stability, Status, Time,
};
use rnfs_proto::nfs3::{
    CreateHow3, Fattr3, FileHandle3, FsstatOk, Ftype3, MknodData3, NfsTime3, Nfsstat3, Sattr3,
    SetTime as SetTime3, SpecData3, StableHow,
};
use rnfs_xdr::OpaqueFixed;

impl From<Nfsstat3> for Status {
    fn from(s: Nfsstat3) -> Self {
        match s {
            // Never a failure's status (a reply saying OK decodes as success); should a
            // caller pass it, a failure reported as success is the server's fault.
            Nfsstat3::Ok | Nfsstat3::ServerFault => Status::ServerFault,
            Nfsstat3::Perm => Status::Perm,
            Nfsstat3::NoEnt => Status::NoEnt,
            Nfsstat3::Io => Status::Io,
            Nfsstat3::Nxio => Status::Nxio,
            Nfsstat3::Acces => Status::Acces,
            Nfsstat3::Exist => Status::Exist,
            Nfsstat3::Xdev => Status::Xdev,
            Nfsstat3::NoDev => Status::NoDev,
            Nfsstat3::NotDir => Status::NotDir,
            Nfsstat3::IsDir => Status::IsDir,
            Nfsstat3::Inval => Status::Inval,
            Nfsstat3::FBig => Status::FBig,
            Nfsstat3::NoSpc => Status::NoSpc,
            Nfsstat3::Rofs => Status::Rofs,
            Nfsstat3::MLink => Status::MLink,
            Nfsstat3::NameTooLong => Status::NameTooLong,
            Nfsstat3::NotEmpty => Status::NotEmpty,
            Nfsstat3::DQuot => Status::DQuot,
            Nfsstat3::Stale => Status::Stale,
            Nfsstat3::Remote => Status::Remote,
            Nfsstat3::BadHandle => Status::BadHandle,
            Nfsstat3::NotSync => Status::NotSync,
            Nfsstat3::BadCookie => Status::BadCookie,
            Nfsstat3::NotSupp => Status::NotSupp,
            Nfsstat3::TooSmall => Status::TooSmall,
            Nfsstat3::BadType => Status::BadType,
            Nfsstat3::Jukebox => Status::Jukebox,
        }
    }
}

impl From<FileHandle3> for FileHandle {
    fn from(f: FileHandle3) -> Self {
        // An NFSv3 handle has at most 64 bytes (its decoder checks), within FH_MAX.
        FileHandle::from_bounded(f.0)
    }
}

impl From<&FileHandle> for FileHandle3 {
    fn from(f: &FileHandle) -> Self {
        FileHandle3(f.as_bytes().to_vec())
    }
}

impl From<Ftype3> for FileType {
    fn from(t: Ftype3) -> Self {
        match t {
            Ftype3::Reg => FileType::Reg,
            Ftype3::Dir => FileType::Dir,
            Ftype3::Blk => FileType::Blk,
            Ftype3::Chr => FileType::Chr,
            Ftype3::Lnk => FileType::Lnk,
            Ftype3::Sock => FileType::Sock,
            Ftype3::Fifo => FileType::Fifo,
        }
    }
}

impl From<NfsTime3> for Time {
    fn from(t: NfsTime3) -> Self {
        Time {
            seconds: i64::from(t.seconds),
            nseconds: t.nseconds,
        }
    }
}

/// A time as NFSv3 can carry it: seconds from 1970 to 2106; a time outside is clamped to
/// the nearest end (what the FUSE mount did before these types, kept so that `touch -d`
/// far out behaves as it did).
fn time3(t: Time) -> NfsTime3 {
    NfsTime3 {
        seconds: u32::try_from(t.seconds.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nseconds.min(999_999_999),
    }
}

impl From<Fattr3> for Attr {
    fn from(a: Fattr3) -> Self {
        let ctime = Time::from(a.ctime);
        Attr {
            ftype: a.ftype.into(),
            mode: a.mode,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            used: a.used,
            rdev: Device {
                major: a.rdev.major,
                minor: a.rdev.minor,
            },
            fsid: Fsid {
                major: a.fsid,
                minor: 0,
            },
            fileid: a.fileid,
            atime: a.atime.into(),
            mtime: a.mtime.into(),
            ctime,
            change: change_from_ctime(ctime),
        }
    }
}

fn set_time3(t: SetTime) -> SetTime3 {
    match t {
        SetTime::DontChange => SetTime3::DontChange,
        SetTime::ServerTime => SetTime3::ServerTime,
        SetTime::ClientTime(t) => SetTime3::ClientTime(time3(t)),
    }
}

impl From<SetAttr> for Sattr3 {
    fn from(s: SetAttr) -> Self {
        Sattr3 {
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size,
            atime: set_time3(s.atime),
            mtime: set_time3(s.mtime),
        }
    }
}

impl From<CreateHow> for CreateHow3 {
    fn from(h: CreateHow) -> Self {
        match h {
            CreateHow::Unchecked(s) => CreateHow3::Unchecked(s.into()),
            CreateHow::Guarded(s) => CreateHow3::Guarded(s.into()),
            CreateHow::Exclusive(v) => CreateHow3::Exclusive(OpaqueFixed(v)),
        }
    }
}

/// MKNOD's `mknoddata3` for a special file with these attributes.
pub(crate) fn mknod_data(what: SpecialFile, s: SetAttr) -> MknodData3 {
    let dev = |d: Device| SpecData3 {
        major: d.major,
        minor: d.minor,
    };
    match what {
        SpecialFile::Fifo => MknodData3::Fifo(s.into()),
        SpecialFile::Sock => MknodData3::Sock(s.into()),
        SpecialFile::Chr(d) => MknodData3::Chr(s.into(), dev(d)),
        SpecialFile::Blk(d) => MknodData3::Blk(s.into(), dev(d)),
    }
}

impl From<Stability> for StableHow {
    fn from(s: Stability) -> Self {
        match s {
            Stability::Unstable => StableHow::Unstable,
            Stability::DataSync => StableHow::DataSync,
            Stability::FileSync => StableHow::FileSync,
        }
    }
}

impl From<StableHow> for Stability {
    fn from(s: StableHow) -> Self {
        match s {
            StableHow::Unstable => Stability::Unstable,
            StableHow::DataSync => Stability::DataSync,
            StableHow::FileSync => Stability::FileSync,
        }
    }
}

impl From<FsstatOk> for FsStat {
    fn from(s: FsstatOk) -> Self {
        FsStat {
            tbytes: s.tbytes,
            fbytes: s.fbytes,
            abytes: s.abytes,
            tfiles: s.tfiles,
            ffiles: s.ffiles,
            afiles: s.afiles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v3_failure_status_keeps_its_name_and_errno() {
        use Nfsstat3 as S;
        for (s, errno) in [
            (S::Perm, 1),
            (S::NoEnt, 2),
            (S::Io, 5),
            (S::Nxio, 6),
            (S::Acces, 13),
            (S::Exist, 17),
            (S::Xdev, 18),
            (S::NoDev, 19),
            (S::NotDir, 20),
            (S::IsDir, 21),
            (S::Inval, 22),
            (S::FBig, 27),
            (S::NoSpc, 28),
            (S::Rofs, 30),
            (S::MLink, 31),
            (S::NameTooLong, 36),
            (S::NotEmpty, 39),
            (S::DQuot, 122),
            (S::Stale, 116),
            (S::Remote, 66),
            (S::BadHandle, 22),
            (S::NotSync, 22),
            (S::BadCookie, 22),
            (S::NotSupp, 95),
            (S::TooSmall, 22),
            (S::ServerFault, 5),
            (S::BadType, 22),
            (S::Jukebox, 11),
        ] {
            let n = Status::from(s);
            assert_eq!(format!("{n:?}"), format!("{s:?}"), "same name");
            assert_eq!(n.errno(), errno, "{s:?}");
        }
        assert_eq!(Status::from(S::Ok), Status::ServerFault);
    }

    #[test]
    fn v3_attributes_map_field_by_field_with_a_change_from_ctime() {
        let a3 = Fattr3 {
            ftype: Ftype3::Chr,
            mode: 0o640,
            nlink: 2,
            uid: 10,
            gid: 20,
            size: 30,
            used: 40,
            rdev: SpecData3 { major: 4, minor: 5 },
            fsid: 6,
            fileid: 7,
            atime: NfsTime3 {
                seconds: 8,
                nseconds: 9,
            },
            mtime: NfsTime3 {
                seconds: 10,
                nseconds: 11,
            },
            ctime: NfsTime3 {
                seconds: 12,
                nseconds: 13,
            },
        };
        let a = Attr::from(a3);
        assert_eq!(a.ftype, FileType::Chr);
        assert_eq!((a.mode, a.nlink, a.uid, a.gid), (0o640, 2, 10, 20));
        assert_eq!((a.size, a.used, a.fileid), (30, 40, 7));
        assert_eq!(a.rdev, Device { major: 4, minor: 5 });
        assert_eq!(a.fsid, Fsid { major: 6, minor: 0 });
        assert_eq!((a.atime.seconds, a.mtime.nseconds), (8, 11));
        assert_eq!(a.change, (12 << 30) + 13);
    }

    #[test]
    fn times_v3_cannot_carry_are_clamped() {
        let t = |seconds| {
            time3(Time {
                seconds,
                nseconds: 1,
            })
        };
        assert_eq!(t(-5).seconds, 0);
        assert_eq!(t(1 << 40).seconds, u32::MAX);
        assert_eq!(t(77).seconds, 77);
    }

    #[test]
    fn stability_round_trips() {
        for s in [
            Stability::Unstable,
            Stability::DataSync,
            Stability::FileSync,
        ] {
            assert_eq!(Stability::from(StableHow::from(s)), s);
        }
    }
}
