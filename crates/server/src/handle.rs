//! Wire file handles, and the keyed MAC that makes them unforgeable.
//!
//! Layout (at most 64 bytes, RFC 1813 section 2.3.3): `'R'`, format version, export id
//! (2 bytes), the backend's key (at most [`FileKey::MAX`] = 48 bytes), and a tag of
//! [`TAG`] = 12 bytes: HMAC-SHA-256 over everything before it, truncated (96 bits), keyed
//! with the export's key. An export's key is HMAC-SHA-256 of the export id under the
//! server's secret ([`HandleSecret`]: 32 random bytes kept in the state directory, so
//! handles survive restarts). Only a holder of the secret can make a handle the server
//! accepts: one with a tag that does not match (forged, or damaged) is BADHANDLE, found
//! before any lookup work, with a comparison in constant time. A handle of an unknown
//! export with a valid tag is STALE. (The errors are the backend's neutral ones,
//! [`VfsError::BadHandle`] and [`VfsError::Stale`]: each protocol version maps them to its
//! status, as it maps every backend error.) A valid handle still goes through the backend, which
//! answers STALE for objects that are gone.
//!
//! Why HMAC-SHA-256 (the `hmac` and `sha2` crates): the standard MAC, in small, pure-Rust,
//! well-reviewed crates with a constant-time truncated verify; its cost (two SHA-256
//! blocks, well under a microsecond) is small next to any NFS call. A keyed BLAKE3 is
//! faster but pulls in a larger crate with C and assembly to build; SipHash is built for
//! hash tables more than as a long-lived MAC.
use crate::Export;
use hmac::{Hmac, Mac};
use rnfs_proto::nfs3::FileHandle3;
use rnfs_vfs::{FileKey, VfsError};
use sha2::Sha256;

const MAGIC: u8 = b'R';
/// Version 2: the HMAC tag (version 1 carried a 4-byte check value from public data).
const VERSION: u8 = 2;
const HEADER: usize = 4;
/// Bytes of tag kept: 96 bits, so that 4 + 48 + 12 = 64.
pub const TAG: usize = 12;

/// The server's secret for handle MACs. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HandleSecret([u8; 32]);

impl HandleSecret {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// A secret of these bytes (as read from the state directory).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// A new random secret from the kernel.
    pub fn random() -> std::io::Result<Self> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(std::io::Error::other)?;
        Ok(Self(b))
    }

    /// The bytes, to store them.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for HandleSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleSecret(..)")
    }
}

/// The MAC key of one export, ready to use (the HMAC's keyed state, computed once).
#[derive(Clone)]
pub(crate) struct HandleKey(Hmac<Sha256>);

impl HandleKey {
    /// The key of export `id` under `secret`.
    pub(crate) fn derive(secret: &HandleSecret, id: u16) -> Self {
        // A 32-byte key is always accepted by HMAC (any length is).
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(b"rnfs export handle key v2");
        m.update(&id.to_be_bytes());
        let k = m.finalize().into_bytes();
        Self(
            <Hmac<Sha256> as Mac>::new_from_slice(&k)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    /// The key of pseudo file system handles under `secret` (see the module documentation).
    pub(crate) fn pseudo(secret: &HandleSecret) -> Self {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(b"rnfs pseudo fs handle key v2");
        let k = m.finalize().into_bytes();
        Self(
            <Hmac<Sha256> as Mac>::new_from_slice(&k)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG] {
        let mut m = self.0.clone();
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; TAG];
        t.copy_from_slice(&full[..TAG]);
        t
    }

    /// Whether `tag` is the tag of `body`, compared in constant time.
    fn verify(&self, body: &[u8], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(body);
        m.verify_truncated_left(tag).is_ok()
    }
}

/// Makes the wire handle of `key` in `export`.
pub fn encode(export: &Export, key: &FileKey) -> FileHandle3 {
    let mut v = Vec::with_capacity(HEADER + key.0.len() + TAG);
    v.extend_from_slice(&[MAGIC, VERSION]);
    v.extend_from_slice(&export.id.to_be_bytes());
    v.extend_from_slice(&key.0);
    let t = export.key.tag(&v);
    v.extend_from_slice(&t);
    FileHandle3(v)
}

/// The export id of pseudo file system handles (no export has it).
pub const PSEUDO_EXPORT: u16 = 0;

/// Makes the handle of pseudo file system node `node` (see the module documentation).
pub(crate) fn encode_pseudo(key: &HandleKey, node: u64) -> FileHandle3 {
    let mut v = Vec::with_capacity(HEADER + 8 + TAG);
    v.extend_from_slice(&[MAGIC, VERSION]);
    v.extend_from_slice(&PSEUDO_EXPORT.to_be_bytes());
    v.extend_from_slice(&node.to_be_bytes());
    let t = key.tag(&v);
    v.extend_from_slice(&t);
    FileHandle3(v)
}

/// The node id of a pseudo file system handle, its tag checked with the pseudo key:
/// BADHANDLE for one not of this form or whose tag does not match.
pub(crate) fn decode_pseudo(
    key: &HandleKey,
    fh: &(impl HandleBytes + ?Sized),
) -> Result<u64, VfsError> {
    let fh = fh.handle_bytes();
    if export_id(fh)? != PSEUDO_EXPORT || fh.len() != HEADER + 8 + TAG {
        return Err(VfsError::BadHandle);
    }
    let body = verify(key, fh)?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&body.0);
    Ok(u64::from_be_bytes(id))
}

/// The bytes of a wire handle, whichever protocol's type carries them.
pub trait HandleBytes {
    /// The handle's bytes.
    fn handle_bytes(&self) -> &[u8];
}

impl HandleBytes for [u8] {
    fn handle_bytes(&self) -> &[u8] {
        self
    }
}

impl HandleBytes for FileHandle3 {
    fn handle_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The export id of a handle of our format (its tag not yet checked).
pub fn export_id(fh: &(impl HandleBytes + ?Sized)) -> Result<u16, VfsError> {
    let b = fh.handle_bytes();
    if b.len() < HEADER + TAG || b.len() > HEADER + FileKey::MAX + TAG {
        return Err(VfsError::BadHandle);
    }
    if b[0] != MAGIC || b[1] != VERSION {
        return Err(VfsError::BadHandle);
    }
    Ok(u16::from_be_bytes([b[2], b[3]]))
}

/// Checks the tag of a wire handle with the key of its export and extracts the backend
/// key: BADHANDLE for a handle not of our format or whose tag does not match.
pub(crate) fn verify(
    key: &HandleKey,
    fh: &(impl HandleBytes + ?Sized),
) -> Result<FileKey, VfsError> {
    let fh = fh.handle_bytes();
    export_id(fh)?;
    let (body, tag) = fh.split_at(fh.len() - TAG);
    if !key.verify(body, tag) {
        return Err(VfsError::BadHandle);
    }
    Ok(FileKey(body[HEADER..].to_vec()))
}

/// Checks a wire handle of `export` and extracts the backend key: STALE for a handle of
/// another export, BADHANDLE for one not of our format or whose tag does not match.
pub fn decode(export: &Export, fh: &(impl HandleBytes + ?Sized)) -> Result<FileKey, VfsError> {
    if export_id(fh)? != export.id {
        return Err(VfsError::Stale);
    }
    verify(&export.key, fh)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    fn export(secret: &HandleSecret, id: u16) -> Export {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::new(1 << 20));
        let mut e = Export::new(id, "/", fs);
        e.key = HandleKey::derive(secret, id);
        e
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let e = export(&HandleSecret::random().unwrap(), 1);
        let key = FileKey((0..FileKey::MAX as u8).collect());
        let fh = encode(&e, &key);
        assert_eq!(fh.0.len(), 64);
        assert_eq!(decode(&e, &fh).unwrap(), key);
        for bit in 0..fh.0.len() * 8 {
            let mut bad = fh.clone();
            bad.0[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&e.key, &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn pseudo_handles_are_a_form_of_their_own() {
        let secret = HandleSecret::from_bytes([3; 32]);
        let pk = HandleKey::pseudo(&secret);
        let fh = encode_pseudo(&pk, 0x0102_0304_0506_0708);
        assert_eq!(fh.0.len(), HEADER + 8 + TAG);
        assert_eq!(export_id(&fh), Ok(PSEUDO_EXPORT));
        assert_eq!(decode_pseudo(&pk, &fh), Ok(0x0102_0304_0506_0708));
        // Another secret, or an export's key (even that of a would-be export 0), refuses it.
        let other = HandleKey::pseudo(&HandleSecret::from_bytes([4; 32]));
        assert_eq!(decode_pseudo(&other, &fh), Err(VfsError::BadHandle));
        assert_eq!(
            verify(&HandleKey::derive(&secret, PSEUDO_EXPORT), &fh),
            Err(VfsError::BadHandle)
        );
        // An export's handle is not a pseudo handle, whatever its length.
        let e = export(&secret, 1);
        let efh = encode(&e, &FileKey(vec![9; 8]));
        assert_eq!(decode_pseudo(&pk, &efh), Err(VfsError::BadHandle));
        for bit in 0..fh.0.len() * 8 {
            let mut bad = fh.clone();
            bad.0[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_pseudo(&pk, &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn the_tag_depends_on_the_secret_and_the_export() {
        let s1 = HandleSecret::from_bytes([1; 32]);
        let s2 = HandleSecret::from_bytes([2; 32]);
        let key = FileKey(vec![7; 20]);
        let fh = encode(&export(&s1, 1), &key);
        assert_eq!(decode(&export(&s1, 1), &fh), Ok(key.clone()));
        assert_eq!(decode(&export(&s2, 1), &fh), Err(VfsError::BadHandle));
        // The same key in export 2 under the same secret: another tag.
        let fh2 = encode(&export(&s1, 2), &key);
        assert_ne!(fh.0[HEADER + 20..], fh2.0[HEADER + 20..]);
        let mut moved = fh.clone();
        moved.0[2..4].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(
            verify(&export(&s1, 2).key, &moved),
            Err(VfsError::BadHandle)
        );
        // Too short, too long, another version.
        assert_eq!(
            export_id(&FileHandle3(vec![b'R', 2, 0, 1])),
            Err(VfsError::BadHandle)
        );
        assert_eq!(
            export_id(&FileHandle3(
                vec![b'R', 2, 0, 1].into_iter().chain([0; 61]).collect()
            )),
            Err(VfsError::BadHandle)
        );
        let mut v1 = fh.clone();
        v1.0[1] = 1;
        assert_eq!(export_id(&v1), Err(VfsError::BadHandle));
        assert_eq!(format!("{s1:?}"), "HandleSecret(..)");
    }
}
