//! The server's callbacks to NFSv4.1 clients over the session back channel (RFC 8881
//! 2.10.3.1, 20): CB_RECALL of delegations, sent on the orders of the delegation state.
//!
//! The seam with the delegation layer: the laundromat asks the delegation state for the
//! recalls that are due ([`RecallOrder`]s) and hands them to
//! [`super::service::V4State::dispatch_recalls`]; each order's outcome comes back as a
//! [`RecallOutcome`] to the delegation state (`Delegations::recall_outcome`).
use super::state::ids::{ClientId, Stateid};

/// One delegation to recall: CB_RECALL (RFC 8881 20.2) to the client holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallOrder {
    /// The client holding the delegation.
    pub client: ClientId,
    /// The delegation's stateid.
    pub stateid: Stateid,
    /// The file's handle, as the client knows it (the wire form).
    pub fh: Vec<u8>,
    /// `truncate`: the file is about to be truncated to zero (the client need not flush).
    pub truncate: bool,
}

/// What became of one [`RecallOrder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecallOutcome {
    /// The client answered CB_RECALL with NFS4_OK: it will return the delegation.
    Delivered,
    /// The client answered with this status (e.g. NFS4ERR_BADHANDLE), or the server could
    /// not send the call now (NFS4ERR_DELAY: the bound on outstanding callbacks); the
    /// delegation layer decides whether to retry.
    Refused(u32),
    /// No working callback path: no back channel, no reply in time, or the connection
    /// was lost.
    PathDown,
}
