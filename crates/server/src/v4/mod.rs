//! NFSv4.1 (RFC 8881) and its minor versions: the COMPOUND engine, one unit per operation,
//! and the protocol state (clients, sessions, opens, locks) in [`state`].
//!
//! Layering, so that later minor versions and delegations slot in:
//! - [`state`] is the protocol state machinery. It does no I/O and never reads a clock: the
//!   caller passes the time in, so lease expiry, grace and slot replay are tested
//!   deterministically.
//! - [`compound`] is the COMPOUND engine: it decodes operations one at a time, checks each
//!   against the op table, runs it (one handler per operation in [`ops`]) against the
//!   namespace, the backend and the state, and writes its result.
//! - [`pseudo`] is the namespace: the pseudo file system joining the exports, with the
//!   export rules applied as for NFSv3; [`attrs`] encodes and decodes `fattr4`;
//!   [`owner`] maps owner strings to ids; [`error`] is the one map to `nfsstat4`.
//! - [`unit`] is the routing unit (program 100003 version 4); [`service`] the state a
//!   server holds over the cores (clock, laundromat, stable records, back channel);
//!   [`session_ops`] the session operations of one COMPOUND over it; [`outside`] watches
//!   delegated files for changes made beside NFS; [`offload`] runs asynchronous COPYs.
pub mod attrs;
pub mod callback;
pub mod callback40;
pub mod compound;
pub mod error;
pub mod offload;
pub mod ops;
pub mod outside;
pub mod owner;
pub mod pseudo;
pub mod service;
pub mod session_ops;
pub mod state;
pub mod unit;
