//! NFSv4 protocol state, free of I/O and of the clock.
//!
//! Every function that depends on time takes a [`ids::Time`]; nothing here sleeps, reads the
//! clock, touches a file or a socket. The server's COMPOUND engine owns one instance, locks
//! it, passes `now` in and acts on what it returns (replies to send, clients to expire, records
//! to persist).
//!
//! - [`ids`]: the identifiers every part shares (client ids, session ids, stateids, time).
pub mod ids;
/// The locking state: owners, opens, lock stateids, bounds, TEST/FREE_STATEID, purge.
pub mod locking;
/// LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER.
pub mod locks;
/// OPEN, OPEN_DOWNGRADE, CLOSE.
pub mod opens;
/// The byte-range lock table, POSIX semantics, shared with NLM later.
pub mod ranges;
/// Share reservations and the OPEN_DOWNGRADE rule (RFC 8881 9.7, 18.18).
pub mod share;
/// Stateids: minting, the seqid rules, the special stateids (RFC 8881 8.2).
pub mod stateid;
