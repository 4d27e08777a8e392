//! Wire file handles.
//!
//! Layout (at most 64 bytes): `'R'`, format version, export id (2 bytes), the backend's key
//! (at most 48 bytes), and a 4-byte check value over all of that, keyed per export. A handle
//! that is too short, of another format, or whose check value does not match (a forged or
//! damaged handle) is BADHANDLE; one of an unknown export is STALE. A well-formed handle
//! still goes through the backend, which answers STALE for objects that are gone.
use crate::Export;
use rnfs_proto::nfs3::{FileHandle3, Nfsstat3};
use rnfs_vfs::FileKey;

const MAGIC: u8 = b'R';
const VERSION: u8 = 1;
const HEADER: usize = 4;
const CHECK: usize = 4;

fn check_value(secret: u64, bytes: &[u8]) -> [u8; 4] {
    let mut h = secret ^ 0x9e37_79b9_7f4a_7c15;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 31;
    }
    ((h ^ (h >> 32)) as u32).to_be_bytes()
}

/// Makes the wire handle of `key` in `export`.
pub fn encode(export: &Export, key: &FileKey) -> FileHandle3 {
    let mut v = Vec::with_capacity(HEADER + key.0.len() + CHECK);
    v.extend_from_slice(&[MAGIC, VERSION]);
    v.extend_from_slice(&export.id.to_be_bytes());
    v.extend_from_slice(&key.0);
    let c = check_value(export.secret, &v);
    v.extend_from_slice(&c);
    FileHandle3(v)
}

/// The export id of a handle of our format.
pub fn export_id(fh: &FileHandle3) -> Result<u16, Nfsstat3> {
    let b = &fh.0;
    if b.len() < HEADER + CHECK || b[0] != MAGIC || b[1] != VERSION {
        return Err(Nfsstat3::BadHandle);
    }
    Ok(u16::from_be_bytes([b[2], b[3]]))
}

/// Checks a wire handle and extracts the backend key.
pub fn decode(export: &Export, fh: &FileHandle3) -> Result<FileKey, Nfsstat3> {
    let b = &fh.0;
    if export_id(fh)? != export.id {
        return Err(Nfsstat3::Stale);
    }
    let (body, check) = b.split_at(b.len() - CHECK);
    if check_value(export.secret, body) != check {
        return Err(Nfsstat3::BadHandle);
    }
    Ok(FileKey(body[HEADER..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_single_bit_flip_is_detected() {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let e = Export::new(1, "/", fs);
        let key = FileKey((0..20).collect());
        let fh = encode(&e, &key);
        assert!(fh.0.len() <= 64);
        assert_eq!(decode(&e, &fh).unwrap(), key);
        for bit in 0..fh.0.len() * 8 {
            let mut bad = fh.clone();
            bad.0[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&e, &bad).is_err(), "bit {bit}");
        }
    }
}
