//! Stable client records (RFC 8881 8.4.2.1): what the server keeps on disk so that after a
//! restart it knows which clients may reclaim. The caller does the file I/O; this is the
//! format, versioned:
//!
//! ```text
//! version: u8 = 1
//! owner length: u32 big-endian, owner bytes (at most MAX_OWNER)
//! principal length: u32 big-endian, principal bytes (at most MAX_PRINCIPAL)
//! ```
//! and nothing after it.

/// The longest client owner (`co_ownerid`, NFS4_OPAQUE_LIMIT).
pub const MAX_OWNER: usize = 1024;
/// The longest principal we record.
pub const MAX_PRINCIPAL: usize = 1024;
/// The version this code writes.
pub const RECORD_VERSION: u8 = 1;

/// One client that held state before a restart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StableRecord {
    /// `co_ownerid` of the client.
    pub owner: Vec<u8>,
    /// The principal that created the client (a reclaim must come from the same one).
    pub principal: Vec<u8>,
}

/// Why bytes are not a record (the file is damaged or from another version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end inside the record.
    #[error("client record truncated")]
    Truncated,
    /// A version this code does not know.
    #[error("client record version {0} not supported")]
    Version(u8),
    /// An owner or principal longer than allowed.
    #[error("client record field of {0} bytes is too long")]
    TooLong(u64),
    /// Bytes after the record.
    #[error("client record has trailing bytes")]
    Trailing,
}

impl StableRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.owner.len() + self.principal.len());
        out.push(RECORD_VERSION);
        for field in [&self.owner, &self.principal] {
            // Fields are bounded by MAX_OWNER / MAX_PRINCIPAL when the records are made.
            out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// Reads a record written by [`StableRecord::encode`], checking every length before
    /// allocating.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (&version, mut rest) = bytes.split_first().ok_or(RecordError::Truncated)?;
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let owner = field(&mut rest, MAX_OWNER)?;
        let principal = field(&mut rest, MAX_PRINCIPAL)?;
        if !rest.is_empty() {
            return Err(RecordError::Trailing);
        }
        Ok(Self { owner, principal })
    }
}

fn field(rest: &mut &[u8], max: usize) -> Result<Vec<u8>, RecordError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(RecordError::Truncated)?;
    let len = u32::from_be_bytes(*len);
    if len as usize > max {
        return Err(RecordError::TooLong(u64::from(len)));
    }
    let (value, tail) = tail
        .split_at_checked(len as usize)
        .ok_or(RecordError::Truncated)?;
    *rest = tail;
    Ok(value.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> StableRecord {
        StableRecord {
            owner: b"Linux NFSv4.1 host-a".to_vec(),
            principal: b"sys:0@10.0.0.1".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let r = rec();
        assert_eq!(StableRecord::decode(&r.encode()), Ok(r));
        let empty = StableRecord {
            owner: vec![],
            principal: vec![],
        };
        assert_eq!(StableRecord::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn damaged_records_are_refused() {
        let bytes = rec().encode();
        for cut in 0..bytes.len() {
            assert_eq!(
                StableRecord::decode(&bytes[..cut]),
                Err(RecordError::Truncated)
            );
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(StableRecord::decode(&v2), Err(RecordError::Version(2)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(StableRecord::decode(&trailing), Err(RecordError::Trailing));
        let mut huge = vec![RECORD_VERSION];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            StableRecord::decode(&huge),
            Err(RecordError::TooLong(u64::from(u32::MAX)))
        );
    }
}
