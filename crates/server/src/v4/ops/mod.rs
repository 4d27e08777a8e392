//! The NFSv4 operations, one small handler each, grouped by family. Each takes its
//! decoded arguments (the generated wire types), runs against the [`Compound`] and writes
//! its result body (what follows the status); the op table in [`super::compound`] says
//! which need a current filehandle and what they may cost.
//!
//! [`Compound`]: super::compound::Compound
pub mod access;
pub mod attr;
pub mod fh;
