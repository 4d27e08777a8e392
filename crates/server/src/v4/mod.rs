//! NFSv4.1 (RFC 8881) and its minor versions: the COMPOUND engine, one unit per operation,
//! and the protocol state (clients, sessions, opens, locks) in [`state`].
//!
//! Layering, so that later minor versions and delegations slot in:
//! - [`state`] is the protocol state machinery. It does no I/O and never reads a clock: the
//!   caller passes the time in, so lease expiry, grace and slot replay are tested
//!   deterministically.
//! - The COMPOUND engine (next to this file) decodes operations one at a time, runs each
//!   against the backend and the state, and maps errors to `nfsstat4` in one place.
pub mod attrs;
pub mod compound;
pub mod error;
pub mod ops;
pub mod owner;
pub mod pseudo;
pub mod state;
