//! rnfs-vfs
