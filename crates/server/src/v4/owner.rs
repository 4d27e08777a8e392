//! NFSv4 owners: the `owner` and `owner_group` attributes are strings, not ids (RFC 8881
//! section 5.9).
//!
//! **By default** ids travel as numeric strings both ways (`"1000"`), as knfsd does for
//! AUTH_SYS callers with `nfs4_disable_idmapping` (its default) and as the Linux client
//! sends them for `sec=sys`: no name service is consulted, and client and server agree on
//! ids as they do for NFSv3.
//!
//! **With a domain configured** ([`OwnerMap::with_domain`]), `user@domain` and
//! `group@domain` are accepted too and mapped through the system's user and group
//! database ([`SystemIds`]: getpwnam/getgrnam, so NSS sources such as LDAP count); the
//! domain is compared without regard to case. Replies may then carry names as well
//! (`names_in_replies`), falling back to the number for an id with no name.
//!
//! What cannot be mapped (an unknown name, another domain, a bare name, a number out of
//! range, a string that is not UTF-8) is NFS4ERR_BADOWNER: the Linux client switches
//! between names and numbers on it.
use super::error::{Nfs4Error, R4};
use std::sync::Arc;

/// A user and group database: names to ids and back.
pub trait IdDb: Send + Sync {
    /// The uid of user `name`.
    fn uid(&self, name: &str) -> Option<u32>;
    /// The gid of group `name`.
    fn gid(&self, name: &str) -> Option<u32>;
    /// The name of user `uid`.
    fn user_name(&self, uid: u32) -> Option<String>;
    /// The name of group `gid`.
    fn group_name(&self, gid: u32) -> Option<String>;
}

/// The system's database, through the C library (and so NSS). Each call may read files
/// or ask a directory service: call it from a blocking thread, as every backend call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemIds;

impl IdDb for SystemIds {
    fn uid(&self, name: &str) -> Option<u32> {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    }
    fn gid(&self, name: &str) -> Option<u32> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }
    fn user_name(&self, uid: u32) -> Option<String> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }
    fn group_name(&self, gid: u32) -> Option<String> {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
    }
}

/// Longest owner string accepted (knfsd's IDMAP_NAMESZ is 128; names plus a domain).
pub const MAX_OWNER: usize = 1024;

/// How owners are mapped. See the module documentation.
#[derive(Clone)]
pub struct OwnerMap {
    /// The NFSv4 domain, when names are accepted.
    domain: Option<String>,
    /// Reply with `name@domain` where the id has a name.
    names_in_replies: bool,
    db: Arc<dyn IdDb>,
}

impl std::fmt::Debug for OwnerMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerMap")
            .field("domain", &self.domain)
            .field("names_in_replies", &self.names_in_replies)
            .finish_non_exhaustive()
    }
}

impl Default for OwnerMap {
    fn default() -> Self {
        Self::numeric()
    }
}

/// Which kind of id.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Group,
}

impl OwnerMap {
    /// Numeric strings only (the default).
    pub fn numeric() -> Self {
        Self {
            domain: None,
            names_in_replies: false,
            db: Arc::new(SystemIds),
        }
    }

    /// Numeric strings, and `name@domain` mapped through `db`; replies carry names when
    /// `names_in_replies`.
    pub fn with_domain(domain: &str, db: Arc<dyn IdDb>, names_in_replies: bool) -> Self {
        Self {
            domain: Some(domain.to_string()),
            names_in_replies,
            db,
        }
    }

    /// The `owner` attribute of `uid`.
    pub fn owner(&self, uid: u32) -> String {
        self.render(Kind::User, uid)
    }

    /// The `owner_group` attribute of `gid`.
    pub fn group(&self, gid: u32) -> String {
        self.render(Kind::Group, gid)
    }

    /// The uid an `owner` string names.
    pub fn uid(&self, owner: &[u8]) -> R4<u32> {
        self.parse(Kind::User, owner)
    }

    /// The gid an `owner_group` string names.
    pub fn gid(&self, group: &[u8]) -> R4<u32> {
        self.parse(Kind::Group, group)
    }

    fn render(&self, kind: Kind, id: u32) -> String {
        if let (true, Some(d)) = (self.names_in_replies, &self.domain) {
            let name = match kind {
                Kind::User => self.db.user_name(id),
                Kind::Group => self.db.group_name(id),
            };
            if let Some(n) = name {
                return format!("{n}@{d}");
            }
        }
        id.to_string()
    }

    fn parse(&self, kind: Kind, s: &[u8]) -> R4<u32> {
        // An empty owner is no principal at all: INVAL, as knfsd and NFS-Ganesha answer
        // (pynfs SATT16, SATT17), where a name that maps to no one is BADOWNER.
        if s.is_empty() {
            return Err(Nfs4Error::Inval);
        }
        if s.len() > MAX_OWNER {
            return Err(Nfs4Error::BadOwner);
        }
        let s = std::str::from_utf8(s).map_err(|_| Nfs4Error::BadOwner)?;
        if s.bytes().all(|b| b.is_ascii_digit()) {
            // Digits only: `parse` would also take a sign, which no id has.
            return s.parse::<u32>().map_err(|_| Nfs4Error::BadOwner);
        }
        let (Some(domain), Some((name, d))) = (&self.domain, s.rsplit_once('@')) else {
            return Err(Nfs4Error::BadOwner);
        };
        if name.is_empty() || !d.eq_ignore_ascii_case(domain) {
            return Err(Nfs4Error::BadOwner);
        }
        match kind {
            Kind::User => self.db.uid(name),
            Kind::Group => self.db.gid(name),
        }
        .ok_or(Nfs4Error::BadOwner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database of two users and one group.
    struct Fixed;
    impl IdDb for Fixed {
        fn uid(&self, name: &str) -> Option<u32> {
            [("alice", 1000), ("bob", 1001)]
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, u)| *u)
        }
        fn gid(&self, name: &str) -> Option<u32> {
            (name == "staff").then_some(50)
        }
        fn user_name(&self, uid: u32) -> Option<String> {
            (uid == 1000).then(|| "alice".to_string())
        }
        fn group_name(&self, gid: u32) -> Option<String> {
            (gid == 50).then(|| "staff".to_string())
        }
    }

    #[test]
    fn numeric_by_default_both_ways() {
        let m = OwnerMap::numeric();
        assert_eq!(m.owner(1000), "1000");
        assert_eq!(m.group(0), "0");
        assert_eq!(m.uid(b"1000"), Ok(1000));
        assert_eq!(m.gid(b"4294967295"), Ok(u32::MAX));
        assert_eq!(m.uid(b""), Err(Nfs4Error::Inval));
        assert_eq!(m.gid(b""), Err(Nfs4Error::Inval));
        for bad in [
            &b"4294967296"[..],
            b"-1",
            b"+5",
            b" 5",
            b"alice@example.com",
            b"alice",
            b"\xff\xfe",
        ] {
            assert_eq!(m.uid(bad), Err(Nfs4Error::BadOwner), "{bad:?}");
        }
        assert_eq!(m.uid(&[b'1'; MAX_OWNER + 1]), Err(Nfs4Error::BadOwner));
    }

    #[test]
    fn names_in_the_configured_domain_map_through_the_database() {
        let m = OwnerMap::with_domain("example.com", Arc::new(Fixed), false);
        assert_eq!(m.uid(b"alice@example.com"), Ok(1000));
        assert_eq!(m.uid(b"bob@EXAMPLE.com"), Ok(1001));
        assert_eq!(m.gid(b"staff@example.com"), Ok(50));
        assert_eq!(m.uid(b"7"), Ok(7), "numbers still accepted");
        for bad in [
            &b"carol@example.com"[..],
            b"alice@other.org",
            b"alice",
            b"@example.com",
            b"staff@example.com",
        ] {
            assert_eq!(m.uid(bad), Err(Nfs4Error::BadOwner), "{bad:?}");
        }
        // Replies stay numeric unless names are asked for.
        assert_eq!(m.owner(1000), "1000");
        let n = OwnerMap::with_domain("example.com", Arc::new(Fixed), true);
        assert_eq!(n.owner(1000), "alice@example.com");
        assert_eq!(n.group(50), "staff@example.com");
        assert_eq!(n.owner(4242), "4242", "no name: the number");
    }

    #[test]
    fn the_system_database_knows_root() {
        // uid and gid 0 are "root" on every Linux system.
        assert_eq!(SystemIds.uid("root"), Some(0));
        assert_eq!(SystemIds.user_name(0).as_deref(), Some("root"));
        assert_eq!(SystemIds.gid("root"), Some(0));
        let m = OwnerMap::with_domain("localdomain", Arc::new(SystemIds), true);
        assert_eq!(m.uid(b"root@localdomain"), Ok(0));
        assert_eq!(m.owner(0), "root@localdomain");
    }
}
