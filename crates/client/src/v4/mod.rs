//! The NFSv4.1 client's protocol cores, free of I/O (issue 16): what the session layer and
//! the state manager build on.
//! - [`attr`]: NFSv4 attributes decoded into the client's types, and SETATTR's encoded.
//! - [`session`]: the I/O around them: a session over one RPC connection, its worker and
//!   its back channel.
//! - [`slots`]: the fore-channel slot table, with the privileged path for calls that return
//!   state (seed entry 3).
//! - [`recovery`]: the lease and recovery state machine (lost sessions, lost client ids,
//!   reclaim in grace, renewal, status flags).
//! - [`opens`]: open state per file and owner: OPEN, OPEN_DOWNGRADE and CLOSE for local
//!   opens and closes, stateid order, OLD_STATEID (seed entry 9).
//! - [`delegs`]: the delegations held, what they allow locally, and the returns to run
//!   (CB_RECALL, CB_RECALL_ANY, the client's own bound).
pub mod attr;
pub mod delegs;
pub mod opens;
pub mod recovery;
pub mod session;
pub mod slots;
