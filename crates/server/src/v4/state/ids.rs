//! Identifiers shared by the whole NFSv4 state: wire-neutral forms of `clientid4`,
//! `sessionid4`, `stateid4` and `verifier4` (RFC 8881 section 3.3), and time.
//!
//! They are plain values: the COMPOUND layer converts them from and to the wire types.

/// A point in time, in milliseconds since an arbitrary origin (the server's start). The
/// state never reads a clock; callers pass `Time` in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }
    /// Milliseconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `clientid4`: a short-hand for a client, handed out by EXCHANGE_ID (RFC 8881 18.35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// `sessionid4` (RFC 8881 2.10.3): 16 opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 16]);

/// `verifier4`: 8 opaque bytes (client boot verifier, exclusive-create verifier, write
/// verifier, cookie verifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Verifier(pub [u8; 8]);

/// `stateid4` (RFC 8881 8.2): a sequence number and 12 opaque bytes naming the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stateid {
    /// Bumped on every change of the state it names; 0 on the wire means "the current one".
    pub seqid: u32,
    /// Which state (opaque to the client).
    pub other: [u8; 12],
}

impl Stateid {
    /// The anonymous stateid (all zeros, RFC 8881 8.2.3).
    pub const ANONYMOUS: Stateid = Stateid {
        seqid: 0,
        other: [0; 12],
    };
    /// The READ bypass stateid (all ones).
    pub const BYPASS: Stateid = Stateid {
        seqid: u32::MAX,
        other: [0xff; 12],
    };
    /// The "current stateid" special value (seqid 1, other all zeros; RFC 8881 16.2.3.1.2).
    pub const CURRENT: Stateid = Stateid {
        seqid: 1,
        other: [0; 12],
    };
    /// The invalid stateid (seqid u32::MAX, other all zeros).
    pub const INVALID: Stateid = Stateid {
        seqid: u32::MAX,
        other: [0; 12],
    };
}
