//! Stable directory cookies.
//!
//! A cookie is a 63-bit hash of the entry's name, and a listing returns entries in cookie
//! order. Resuming "after cookie C" therefore means "entries whose hash is above C", which
//! does not depend on what else was created or removed in between: an entry that exists for
//! the whole listing is returned exactly once, however the listing is split into chunks and
//! whatever happens to the directory meanwhile (the failure of seed entry 4 cannot occur).
//! Cookies survive a server restart because the hash has a fixed key.
//!
//! Cookies 1 and 2 are reserved for `.` and `..`; hashes are mapped above them.

/// First cookie a real entry can have.
pub const FIRST: u64 = 3;
/// Cookie of `.`.
pub const DOT: u64 = 1;
/// Cookie of `..`.
pub const DOTDOT: u64 = 2;

/// The cookie of a name (FNV-1a 64 folded to 63 bits, then lifted above the reserved ones).
pub fn of_name(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the high bits down so short names spread over the whole range.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    let v = h >> 1; // below 2^63: some clients treat cookies as signed
    v.max(FIRST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_above_reserved() {
        assert_eq!(of_name(b"a"), of_name(b"a"));
        assert_ne!(of_name(b"a"), of_name(b"b"));
        for i in 0..10000u32 {
            let c = of_name(format!("f{i}").as_bytes());
            assert!((FIRST..1 << 63).contains(&c));
        }
    }

    #[test]
    fn no_collisions_in_a_large_directory() {
        let mut v: Vec<u64> = (0..100_000u32)
            .map(|i| of_name(format!("file-{i}").as_bytes()))
            .collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 100_000);
    }
}
