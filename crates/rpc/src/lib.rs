//! rnfs-rpc
