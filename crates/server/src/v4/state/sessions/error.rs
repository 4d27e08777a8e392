//! The refusals of the client and session state, each naming the `nfsstat4` it becomes.

/// Why an operation on clients, sessions or slots was refused. Each variant is one
/// `NFS4ERR_*` (RFC 8881 section 15); [`SessionError::code`] gives its value so the COMPOUND
/// layer maps it in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SessionError {
    // The peer broke a rule of the protocol.
    /// `NFS4ERR_STALE_CLIENTID`: no such client (never existed, expired, or before a restart).
    #[error("NFS4ERR_STALE_CLIENTID")]
    StaleClientid,
    /// `NFS4ERR_EXPIRED`: an NFSv4.0 client id this server instance handed out, whose
    /// client is gone (its lease expired and its state was taken; RFC 7530 16.29.5).
    #[error("NFS4ERR_EXPIRED")]
    Expired,
    /// `NFS4ERR_BADSESSION`: no such session.
    #[error("NFS4ERR_BADSESSION")]
    BadSession,
    /// `NFS4ERR_BADSLOT`: the slot is beyond what the server currently accepts.
    #[error("NFS4ERR_BADSLOT")]
    BadSlot,
    /// `NFS4ERR_SEQ_MISORDERED`: neither the next sequence id of the slot nor a retry.
    #[error("NFS4ERR_SEQ_MISORDERED")]
    SeqMisordered,
    /// `NFS4ERR_SEQ_FALSE_RETRY`: same slot and sequence id as the last request, but a
    /// different request.
    #[error("NFS4ERR_SEQ_FALSE_RETRY")]
    SeqFalseRetry,
    /// `NFS4ERR_RETRY_UNCACHED_REP`: a retry of a request whose reply was not cached.
    #[error("NFS4ERR_RETRY_UNCACHED_REP")]
    RetryUncachedRep,
    /// `NFS4ERR_REP_TOO_BIG_TO_CACHE`: the client asked for the reply to be cached and it is
    /// larger than the negotiated cached reply size.
    #[error("NFS4ERR_REP_TOO_BIG_TO_CACHE")]
    RepTooBigToCache,
    /// `NFS4ERR_CLID_INUSE`: the client owner is held by another principal.
    #[error("NFS4ERR_CLID_INUSE")]
    ClidInuse,
    /// `NFS4ERR_NOT_SAME`: an update of a confirmed record with the wrong verifier.
    #[error("NFS4ERR_NOT_SAME")]
    NotSame,
    /// `NFS4ERR_PERM`: an update of a confirmed record by another principal.
    #[error("NFS4ERR_PERM")]
    Perm,
    /// `NFS4ERR_NOENT`: an update of a record that is not confirmed.
    #[error("NFS4ERR_NOENT")]
    Noent,
    /// `NFS4ERR_CLIENTID_BUSY`: DESTROY_CLIENTID while the client has sessions or state.
    #[error("NFS4ERR_CLIENTID_BUSY")]
    ClientidBusy,
    /// `NFS4ERR_COMPLETE_ALREADY`: a second RECLAIM_COMPLETE.
    #[error("NFS4ERR_COMPLETE_ALREADY")]
    CompleteAlready,
    /// `NFS4ERR_CONN_NOT_BOUND_TO_SESSION`: the connection is not bound to the session.
    #[error("NFS4ERR_CONN_NOT_BOUND_TO_SESSION")]
    ConnNotBoundToSession,
    /// `NFS4ERR_TOOSMALL`: channel attributes below what any request needs.
    #[error("NFS4ERR_TOOSMALL")]
    TooSmall,
    /// `NFS4ERR_INVAL`: an argument out of its domain (zero slots, an over-long owner).
    #[error("NFS4ERR_INVAL")]
    Inval,
    /// `NFS4ERR_GRACE`: new state during the grace period.
    #[error("NFS4ERR_GRACE")]
    Grace,
    /// `NFS4ERR_NO_GRACE`: a reclaim outside the grace period, or by a client that has
    /// nothing to reclaim.
    #[error("NFS4ERR_NO_GRACE")]
    NoGrace,
    // A bound was reached.
    /// `NFS4ERR_DELAY`: try again later (the bound frees itself: unconfirmed records age
    /// out, a request on the slot is still running).
    #[error("NFS4ERR_DELAY")]
    Delay,
    /// `NFS4ERR_RESOURCE`: a hard bound (clients, sessions per client, connections per
    /// session) is reached.
    #[error("NFS4ERR_RESOURCE")]
    Resource,
}

impl SessionError {
    /// The `nfsstat4` value (RFC 8881 section 15.1; RFC 5662 `nfsstat4`).
    pub fn code(self) -> u32 {
        match self {
            SessionError::Perm => 1,
            SessionError::Noent => 2,
            SessionError::Inval => 22,
            SessionError::TooSmall => 10005,
            SessionError::Delay => 10008,
            SessionError::Grace => 10013,
            SessionError::ClidInuse => 10017,
            SessionError::Resource => 10018,
            SessionError::StaleClientid => 10022,
            SessionError::Expired => 10011,
            SessionError::NotSame => 10027,
            SessionError::NoGrace => 10033,
            SessionError::BadSession => 10052,
            SessionError::BadSlot => 10053,
            SessionError::CompleteAlready => 10054,
            SessionError::ConnNotBoundToSession => 10055,
            SessionError::SeqMisordered => 10063,
            SessionError::RepTooBigToCache => 10067,
            SessionError::RetryUncachedRep => 10068,
            SessionError::ClientidBusy => 10074,
            SessionError::SeqFalseRetry => 10076,
        }
    }
}

impl From<SessionError> for crate::v4::error::Nfs4Error {
    /// The status the COMPOUND engine answers: the engine's own variant where it has one,
    /// else the number.
    fn from(e: SessionError) -> Self {
        use crate::v4::error::Nfs4Error as N;
        match e {
            SessionError::Perm => N::Perm,
            SessionError::Noent => N::NoEnt,
            SessionError::Inval => N::Inval,
            SessionError::Delay => N::Delay,
            SessionError::NotSame => N::NotSame,
            SessionError::RepTooBigToCache => N::RepTooBigToCache,
            other => N::Status(other.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4::error::Nfs4Error;
    use rnfs_proto::nfs4::Nfsstat4 as W;

    /// Each code is the generated `nfsstat4` of the same name (a typo in a number shows),
    /// and survives the conversion to the engine's error.
    #[test]
    fn codes_are_the_generated_statuses_of_the_same_name() {
        use SessionError as S;
        for (e, w) in [
            (S::StaleClientid, W::Nfs4errStaleClientid),
            (S::Expired, W::Nfs4errExpired),
            (S::BadSession, W::Nfs4errBadsession),
            (S::BadSlot, W::Nfs4errBadslot),
            (S::SeqMisordered, W::Nfs4errSeqMisordered),
            (S::SeqFalseRetry, W::Nfs4errSeqFalseRetry),
            (S::RetryUncachedRep, W::Nfs4errRetryUncachedRep),
            (S::RepTooBigToCache, W::Nfs4errRepTooBigToCache),
            (S::ClidInuse, W::Nfs4errClidInuse),
            (S::NotSame, W::Nfs4errNotSame),
            (S::Perm, W::Nfs4errPerm),
            (S::Noent, W::Nfs4errNoent),
            (S::ClientidBusy, W::Nfs4errClientidBusy),
            (S::CompleteAlready, W::Nfs4errCompleteAlready),
            (S::ConnNotBoundToSession, W::Nfs4errConnNotBoundToSession),
            (S::TooSmall, W::Nfs4errToosmall),
            (S::Inval, W::Nfs4errInval),
            (S::Grace, W::Nfs4errGrace),
            (S::NoGrace, W::Nfs4errNoGrace),
            (S::Delay, W::Nfs4errDelay),
            (S::Resource, W::Nfs4errResource),
        ] {
            assert_eq!(W::from_u32(e.code()), Some(w), "{e}");
            assert_eq!(Nfs4Error::from(e).status(), w, "{e}");
        }
    }
}
