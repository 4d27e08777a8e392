//! The rnfs NFSv3 client.
//!
//! Layers, bottom up:
//! - [`rpc`]: ONC-RPC over TCP with many calls in flight, timeouts, retransmission with the
//!   same xid, reconnect and replay, hard and soft modes; its logic is the sans-IO
//!   [`rpc::core::CallTable`].
//! - [`url`]: `nfs://host[:port]/export/path?version=3&...` addresses (libnfs form).
#![forbid(unsafe_code)]

pub mod error;
pub mod rpc;

pub use error::{Error, RpcError};
