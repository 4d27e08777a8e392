//! rnfs-server
