//! Portmap version 2 (RFC 1833 section 3), enough to register with rpcbind and to look up
//! ports.
use rnfs_xdr::xdr_struct;

/// Portmapper program number.
pub const PROGRAM: u32 = 100000;
/// Portmap protocol version.
pub const VERSION: u32 = 2;
/// Well-known port.
pub const PORT: u16 = 111;
/// PMAPPROC_NULL.
pub const PROC_NULL: u32 = 0;
/// PMAPPROC_SET.
pub const PROC_SET: u32 = 1;
/// PMAPPROC_UNSET.
pub const PROC_UNSET: u32 = 2;
/// PMAPPROC_GETPORT.
pub const PROC_GETPORT: u32 = 3;
/// IPPROTO_TCP.
pub const IPPROTO_TCP: u32 = 6;
/// IPPROTO_UDP.
pub const IPPROTO_UDP: u32 = 17;

xdr_struct! {
    /// A (program, version, protocol) to port mapping.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Mapping {
        /// Program number.
        pub prog: u32,
        /// Program version.
        pub vers: u32,
        /// IP protocol number.
        pub prot: u32,
        /// Port.
        pub port: u32,
    }
}
