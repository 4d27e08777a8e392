//! Share reservations (RFC 8881 9.7): the access an open wants and the access it denies to
//! everyone else, and the OPEN_DOWNGRADE rule (18.18.3).
//!
//! Two opens conflict when one's access meets the other's deny. An open owner's opens of
//! one file are one open stateid holding the union of what was asked; OPEN_DOWNGRADE may
//! only return to the union of some subset of those OPENs, so the (access, deny) pairs
//! asked are remembered (at most 3 x 4 of them, one bit each).

/// `OPEN4_SHARE_ACCESS_*`: READ (1), WRITE (2) or BOTH (3). The v4.1 "want" flags in the
/// upper bits are the COMPOUND layer's concern and are not part of this value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareAccess(u8);

/// `OPEN4_SHARE_DENY_*`: NONE (0), READ (1), WRITE (2) or BOTH (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareDeny(u8);

impl ShareAccess {
    /// Read access.
    pub const READ: ShareAccess = ShareAccess(1);
    /// Write access.
    pub const WRITE: ShareAccess = ShareAccess(2);
    /// Both.
    pub const BOTH: ShareAccess = ShareAccess(3);

    /// From the wire's low two bits; `None` for 0 (`NFS4ERR_INVAL`).
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            1..=3 => Some(Self(bits as u8)),
            _ => None,
        }
    }
    /// The wire value.
    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }
    /// Whether this includes read access.
    pub fn reads(self) -> bool {
        self.0 & 1 != 0
    }
    /// Whether this includes write access.
    pub fn writes(self) -> bool {
        self.0 & 2 != 0
    }
    fn union(self, o: ShareAccess) -> ShareAccess {
        ShareAccess(self.0 | o.0)
    }
}

impl ShareDeny {
    /// Deny nothing.
    pub const NONE: ShareDeny = ShareDeny(0);
    /// Deny reads.
    pub const READ: ShareDeny = ShareDeny(1);
    /// Deny writes.
    pub const WRITE: ShareDeny = ShareDeny(2);
    /// Deny both.
    pub const BOTH: ShareDeny = ShareDeny(3);

    /// From the wire; `None` above 3 (`NFS4ERR_INVAL`).
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            0..=3 => Some(Self(bits as u8)),
            _ => None,
        }
    }
    /// The wire value.
    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }
    fn union(self, o: ShareDeny) -> ShareDeny {
        ShareDeny(self.0 | o.0)
    }
}

/// Whether an open with `a` access and `a_deny` may coexist with one holding `b`/`b_deny`.
pub fn conflicts(a: ShareAccess, a_deny: ShareDeny, b: ShareAccess, b_deny: ShareDeny) -> bool {
    a.0 & b_deny.0 != 0 || a_deny.0 & b.0 != 0
}

/// Whether a new OPEN of `a` access and `a_deny`, by the owner of an open holding
/// `own`/`own_deny` built from the OPENs `asked`, conflicts with that open of its own:
/// always when it denies access the owner holds; when it asks for access its own open
/// denies, unless one of the owner's OPENs already asked for exactly that access (that
/// open holds it: nothing new is opened). This is knfsd's rule (pynfs OPEN21, OPEN25,
/// OPEN30), which lets the holder of BOTH with DENY_WRITE open BOTH again.
pub fn conflicts_own(
    a: ShareAccess,
    a_deny: ShareDeny,
    own: ShareAccess,
    own_deny: ShareDeny,
    asked: Asked,
) -> bool {
    (a.0 & own_deny.0 != 0 && !asked.has_access(a)) || a_deny.0 & own.0 != 0
}

/// The (access, deny) pairs the OPENs of one open stateid asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Asked(u16);

impl Asked {
    fn bit(a: ShareAccess, d: ShareDeny) -> u16 {
        1 << (a.0 * 4 + d.0)
    }
    /// Remembers one OPEN's pair.
    pub fn add(&mut self, a: ShareAccess, d: ShareDeny) {
        self.0 |= Self::bit(a, d);
    }
    /// Whether some OPEN asked for exactly access `a`, whatever it denied.
    pub fn has_access(self, a: ShareAccess) -> bool {
        (self.0 >> (a.0 * 4)) & 0xf != 0
    }
    /// The union of every pair asked.
    pub fn union(self) -> Option<(ShareAccess, ShareDeny)> {
        self.pairs()
            .reduce(|(a, d), (b, e)| (a.union(b), d.union(e)))
    }
    fn pairs(self) -> impl Iterator<Item = (ShareAccess, ShareDeny)> {
        (1u8..=3)
            .flat_map(|a| (0u8..=3).map(move |d| (ShareAccess(a), ShareDeny(d))))
            .filter(move |&(a, d)| self.0 & Self::bit(a, d) != 0)
    }
    /// The OPEN_DOWNGRADE rule: `(a, d)` must be exactly the union of some subset of the
    /// OPENs asked. The pairs inside `(a, d)` form the largest candidate subset: if any
    /// subset's union is `(a, d)`, so is theirs. Returns what remains asked after the
    /// downgrade, or `None` (`NFS4ERR_INVAL`).
    pub fn downgrade(self, a: ShareAccess, d: ShareDeny) -> Option<Asked> {
        let mut kept = Asked::default();
        for (x, y) in self.pairs() {
            if x.0 & !a.0 == 0 && y.0 & !d.0 == 0 {
                kept.add(x, y);
            }
        }
        (kept.union() == Some((a, d))).then_some(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_meets_deny() {
        use ShareAccess as A;
        use ShareDeny as D;
        assert!(!conflicts(A::READ, D::NONE, A::BOTH, D::NONE));
        assert!(conflicts(A::READ, D::NONE, A::READ, D::READ));
        assert!(conflicts(A::READ, D::WRITE, A::WRITE, D::NONE));
        assert!(!conflicts(A::READ, D::WRITE, A::READ, D::WRITE));
        assert!(conflicts(A::WRITE, D::NONE, A::READ, D::BOTH));
        assert_eq!(A::from_bits(0), None);
        assert_eq!(D::from_bits(4), None);
    }

    #[test]
    fn an_owner_s_own_open_conflicts_as_knfsd_says() {
        use ShareAccess as A;
        use ShareDeny as D;
        let mut asked = Asked::default();
        asked.add(A::BOTH, D::READ);
        // New access against its own deny (OPEN21), unless that access was opened.
        assert!(conflicts_own(A::READ, D::NONE, A::BOTH, D::READ, asked));
        assert!(!conflicts_own(A::BOTH, D::NONE, A::BOTH, D::READ, asked));
        assert!(!conflicts_own(A::WRITE, D::NONE, A::BOTH, D::READ, asked));
        // A deny against its own access, always (OPEN30).
        assert!(conflicts_own(A::BOTH, D::WRITE, A::BOTH, D::READ, asked));
        let mut read = Asked::default();
        read.add(A::READ, D::NONE);
        assert!(conflicts_own(A::READ, D::BOTH, A::READ, D::NONE, read));
        assert!(!conflicts_own(A::WRITE, D::NONE, A::READ, D::NONE, read));
        assert!(!conflicts_own(A::BOTH, D::WRITE, A::READ, D::NONE, read));
    }

    #[test]
    fn downgrade_only_to_a_union_of_opens_asked() {
        use ShareAccess as A;
        use ShareDeny as D;
        let mut asked = Asked::default();
        asked.add(A::READ, D::NONE);
        asked.add(A::WRITE, D::NONE);
        assert_eq!(asked.union(), Some((A::BOTH, D::NONE)));
        let back = asked.downgrade(A::READ, D::NONE).expect("read was opened");
        assert_eq!(back.union(), Some((A::READ, D::NONE)));
        assert!(asked.downgrade(A::BOTH, D::NONE).is_some());
        // Deny was never asked: not a subset.
        assert!(asked.downgrade(A::READ, D::READ).is_none());

        // Opened BOTH at once: READ alone was never asked (RFC 8881 18.18.3).
        let mut both = Asked::default();
        both.add(A::BOTH, D::NONE);
        assert!(both.downgrade(A::READ, D::NONE).is_none());

        // (READ, deny WRITE) and (WRITE, NONE): (BOTH, WRITE) is their union, (WRITE,
        // WRITE) is no union of any subset.
        let mut mixed = Asked::default();
        mixed.add(A::READ, D::WRITE);
        mixed.add(A::WRITE, D::NONE);
        assert!(mixed.downgrade(A::BOTH, D::WRITE).is_some());
        assert!(mixed.downgrade(A::WRITE, D::WRITE).is_none());
        assert!(mixed.downgrade(A::READ, D::WRITE).is_some());
    }
}
