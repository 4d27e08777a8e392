//! The rnfs NFSv3 client.
//!
//! Layers, bottom up:
//! - [`rpc`]: ONC-RPC over TCP with many calls in flight, timeouts, retransmission with the
//!   same xid, reconnect and replay, hard and soft modes; its logic is the sans-IO
//!   [`rpc::core::CallTable`].
//! - [`nfs`]: typed NFSv3 calls, MOUNT and portmap lookups, counters of WRITE/COMMIT.
//! - [`writeback`]: the sans-IO write-back engine of one file and the W1-W6 error
//!   contract (per-handle error cursors).
//! - [`url`]: `nfs://host[:port]/export/path?version=3&...` addresses (libnfs form).
#![forbid(unsafe_code)]

pub mod error;
mod extents;
pub mod nfs;
pub mod rpc;
pub mod url;
pub mod writeback;

pub use error::{Error, RpcError};
