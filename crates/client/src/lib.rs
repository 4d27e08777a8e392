//! The rnfs NFSv3 client.
//!
//! Layers, bottom up:
//! - [`rpc`]: ONC-RPC over TCP with many calls in flight, timeouts, retransmission with the
//!   same xid, reconnect and replay, hard and soft modes; its logic is the sans-IO
//!   [`rpc::core::CallTable`].
//! - [`nfs`]: typed NFSv3 calls, MOUNT and portmap lookups, counters of WRITE/COMMIT.
//! - [`writeback`]: the sans-IO write-back engine of one file and the W1-W6 error
//!   contract (per-handle error cursors).
//! - [`client`], [`mod@file`], [`inode`], [`readdir`]: the mounted export, open files over a
//!   page cache, one inode per handle, READDIRPLUS with a cookie cache.
//! - [`blocking`]: the same behind a private runtime, with `std::io` traits.
//! - [`url`]: `nfs://host[:port]/export/path?version=3&...` addresses (libnfs form).
//!
//! What is guaranteed, and the test that shows it:
//! - The table of calls in flight stays consistent under dropped, duplicated, delayed,
//!   unknown and garbage replies, killed connections and broken framing; every call gets
//!   its own reply and the table ends empty (seed 19): `rpc::core` unit tests,
//!   `tests/rpc_faults.rs`.
//! - W1-W6 (SEED-DIGEST section 1): `writeback` unit tests (deterministic, virtual time),
//!   and over TCP against the memory backend in `tests/files.rs`, including the seed
//!   scenario `seed_scenario_enospc_then_success_without_sync_writes`.
//! - Every name of a 3000-entry directory exactly once when listed in small chunks with the
//!   cache dropped; BAD_COOKIE restarts; one inode per handle (seeds 4, 15):
//!   `tests/dirs_and_faults.rs`.
//! - Live counters (calls in flight, pages, bytes, inodes) return to baseline after
//!   workloads with injected faults; concurrent readers get data or an error, never hang
//!   (seeds 2, 6-12): `tests/dirs_and_faults.rs`.
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
