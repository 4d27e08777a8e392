//! NFSv4 protocol state, free of I/O and of the clock.
//!
//! Every function that depends on time takes a [`ids::Time`]; nothing here sleeps, reads the
//! clock, touches a file or a socket. The server's COMPOUND engine owns one instance, locks
//! it, passes `now` in and acts on what it returns (replies to send, clients to expire, records
//! to persist).
//!
//! - [`ids`]: the identifiers every part shares (client ids, session ids, stateids, time).
pub mod backchannel;
pub mod callback40;
pub mod delegations;
pub mod ids;
pub mod locking;
pub mod locks;
pub mod opens;
pub mod ranges;
pub mod seqid;
pub mod sessions;
pub mod share;
pub mod stateid;
