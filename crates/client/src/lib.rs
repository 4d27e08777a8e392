//! The rnfs NFSv3 client.
//!
//! Layers, bottom up:
//! - [`rpc`]: ONC-RPC over TCP with many calls in flight, timeouts, retransmission with the
//!   same xid, reconnect and replay, hard and soft modes; its logic is the sans-IO
//!   [`rpc::core::CallTable`].
//! - [`nfs`]: typed NFSv3 calls, MOUNT and portmap lookups, counters of WRITE/COMMIT.
//! - [`writeback`]: the sans-IO write-back engine of one file and the W1-W6 error
//!   contract (per-handle error cursors).
//! - [`client`], [`file`], [`inode`], [`readdir`]: the mounted export, open files over a
//!   page cache, one inode per handle, READDIRPLUS with a cookie cache.
//! - [`blocking`]: the same behind a private runtime, with `std::io` traits.
//! - [`url`]: `nfs://host[:port]/export/path?version=3&...` addresses (libnfs form).
#![forbid(unsafe_code)]

pub mod blocking;
pub mod client;
pub mod error;
mod extents;
pub mod file;
pub mod inode;
pub mod nfs;
pub mod readdir;
pub mod rpc;
pub mod url;
pub mod writeback;

pub use client::{Attr, Client, MountOptions};
pub use error::{Error, RpcError};
pub use file::{File, OpenOptions};
pub use readdir::{DirEntry, DirStream};
pub use url::NfsUrl;
