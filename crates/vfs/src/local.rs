//! Local directory backend (being written).
