//! NFSv4.1 clients and sessions: the part of the state that says who the clients are, how
//! they talk to us (sessions, slots, connections), whether their leases hold, and whether
//! the server is in grace. No I/O and no clock: time comes in as [`crate::v4::state::ids::Time`].
//!
//! - [`clients`]: the table the COMPOUND engine calls for EXCHANGE_ID, CREATE_SESSION,
//!   SEQUENCE, DESTROY_*, BIND_CONN_TO_SESSION, RECLAIM_COMPLETE and the laundromat.
//! - [`api`]: the plain-Rust requests and results of those operations.
//! - [`slots`]: one session's slot table and its exactly-once rules.
//! - [`sizing`]: the reply-cache memory budget (seed entry 13).
//! - [`grace`]: the grace period after a restart.
//! - [`records`]: the stable client records' format.
//! - [`error`]: the refusals, each one `NFS4ERR_*`.
pub mod api;
pub mod clients;
pub mod error;
pub mod grace;
pub mod records;
pub mod sizing;
pub mod slots;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v40;
