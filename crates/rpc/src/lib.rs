//! ONC-RPC (RFC 5531) for rnfs.
//!
//! - [`record`]: record marking (RFC 5531 section 11), sans-IO, with a bound on record size.
//! - [`message`]: decoding a call's header and credential, encoding replies and rejections.
//! - [`client`]: a small blocking client for tests and tools.
//! - [`drc`]: the duplicate request cache for non-idempotent procedures.
//! - [`xid`]: the table of calls in flight by xid, sans-IO, shared by the client and the
//!   server's callbacks.
//! - [`transport`]: the tokio TCP server: many connections, many calls in flight on each,
//!   replies in completion order; connection ids and close notices; calls sent on a
//!   client's connection with their replies routed back (the NFSv4.1 backchannel). The
//!   only module that does I/O.
#![forbid(unsafe_code)]

pub mod client;
pub mod drc;
pub mod message;
pub mod outbox;
pub mod record;
pub mod rpcbind;
pub mod transport;
pub mod xid;

pub use message::{Auth, Call};
