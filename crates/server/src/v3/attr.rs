//! Conversions between backend attributes and NFSv3 wire attributes.
use rnfs_proto::nfs3::{
    Fattr3, Ftype3, NfsTime3, Sattr3, SetTime as WireSetTime, SpecData3, WccAttr,
};
use rnfs_vfs::{Attr, FileType, SetAttr, SetTime, Timestamp};

/// Wire time from a backend time; times outside NFSv3's unsigned 32-bit seconds are clamped.
pub fn time3(t: Timestamp) -> NfsTime3 {
    NfsTime3 {
        seconds: t.secs.clamp(0, i64::from(u32::MAX)) as u32,
        nseconds: t.nsecs,
    }
}

/// Backend time from a wire time.
pub fn time_from3(t: NfsTime3) -> Timestamp {
    Timestamp {
        secs: i64::from(t.seconds),
        nsecs: t.nseconds.min(999_999_999),
    }
}

/// The wire file type.
pub fn ftype3(t: FileType) -> Ftype3 {
    match t {
        FileType::Regular => Ftype3::Reg,
        FileType::Directory => Ftype3::Dir,
        FileType::BlockDevice => Ftype3::Blk,
        FileType::CharDevice => Ftype3::Chr,
        FileType::Symlink => Ftype3::Lnk,
        FileType::Socket => Ftype3::Sock,
        FileType::Fifo => Ftype3::Fifo,
    }
}

/// Full wire attributes.
pub fn fattr3(a: &Attr) -> Fattr3 {
    Fattr3 {
        ftype: ftype3(a.ftype),
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.used,
        rdev: SpecData3 {
            major: a.rdev.0,
            minor: a.rdev.1,
        },
        fsid: a.fsid,
        fileid: a.fileid,
        atime: time3(a.atime),
        mtime: time3(a.mtime),
        ctime: time3(a.ctime),
    }
}

/// Pre-operation attributes for weak cache consistency.
pub fn wcc_attr(a: &Attr) -> WccAttr {
    WccAttr {
        size: a.size,
        mtime: time3(a.mtime),
        ctime: time3(a.ctime),
    }
}

/// Backend attribute changes from wire ones.
pub fn setattr(s: &Sattr3) -> SetAttr {
    let conv = |t: WireSetTime| match t {
        WireSetTime::DontChange => SetTime::Keep,
        WireSetTime::ServerTime => SetTime::Now,
        WireSetTime::ClientTime(t) => SetTime::At(time_from3(t)),
    };
    SetAttr {
        mode: s.mode.map(|m| m & 0o7777),
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: conv(s.atime),
        mtime: conv(s.mtime),
    }
}
