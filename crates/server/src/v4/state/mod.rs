//! NFSv4 protocol state, free of I/O and of the clock.
//!
//! Every function that depends on time takes a [`ids::Time`]; nothing here sleeps, reads the
//! clock, touches a file or a socket. The server's COMPOUND engine owns one instance, locks
//! it, passes `now` in and acts on what it returns (replies to send, clients to expire, records
//! to persist).
//!
//! - [`ids`]: the identifiers every part shares (client ids, session ids, stateids, time).
pub mod ids;
/// Clients, sessions, slots, leases and grace (RFC 8881 sections 2.10, 8.3, 8.4, 18.35-18.51).
pub mod sessions;
