//! `-o` options of `rnfs mount`, parsed into one typed structure (seed entry 5): every
//! option is either understood or refused with a message that names it; none is ignored.
//!
//! The names are those of nfs(5) where the kernel client has the same knob (`ro`, `rsize`,
//! `actimeo`, `hard`, `timeo`, ...), plus the FUSE ones that change what the mount does
//! (`allow_other`, `default_permissions`).
use rnfs_client::{MountOptions, NfsUrl, NfsVersion};
use std::time::Duration;

/// Why an option string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Not an option rnfs knows.
    #[error("unknown mount option {0:?}")]
    Unknown(String),
    /// An option rnfs knows but does not implement yet; refused rather than ignored.
    #[error("mount option {opt:?} is not supported: {why}")]
    Unsupported {
        /// The option as given.
        opt: String,
        /// What rnfs does instead, or what is missing.
        why: &'static str,
    },
    /// A value that does not parse or is out of range.
    #[error("bad value in mount option {opt:?}: {why}")]
    BadValue {
        /// The option as given.
        opt: String,
        /// What is expected.
        why: String,
    },
    /// A flag given with a value, or a valued option without one.
    #[error("mount option {0:?} takes {1}")]
    Form(String, &'static str),
    /// Two options that contradict each other (`ro,rw`, `hard,soft`, `acregmin>acregmax`).
    #[error("conflicting mount options: {0}")]
    Conflict(String),
}

/// Everything `-o` can say, typed. Fields left `None` take the URL's value, then the
/// client's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountConfig {
    /// Read-only mount (`ro`; `rw` is the default).
    pub ro: bool,
    /// Largest READ in bytes (`rsize`).
    pub rsize: Option<u32>,
    /// Bytes read ahead of a sequential reader (`readahead`, 0: none).
    pub readahead: Option<u64>,
    /// Largest WRITE in bytes (`wsize`).
    pub wsize: Option<u32>,
    /// Attribute cache minimum for files (`acregmin`, seconds).
    pub acregmin: Option<u32>,
    /// Attribute cache maximum for files (`acregmax`, seconds).
    pub acregmax: Option<u32>,
    /// Attribute cache minimum for directories (`acdirmin`, seconds).
    pub acdirmin: Option<u32>,
    /// Attribute cache maximum for directories (`acdirmax`, seconds).
    pub acdirmax: Option<u32>,
    /// `soft` (Some(true)) or `hard` (Some(false)).
    pub soft: Option<bool>,
    /// First RPC timeout in tenths of a second (`timeo`).
    pub timeo: Option<u32>,
    /// Retransmissions before a soft mount gives up (`retrans`; `retrans + 1` tries).
    pub retrans: Option<u32>,
    /// AUTH_SYS user id of the client's calls (`uid`).
    pub uid: Option<u32>,
    /// AUTH_SYS group id of the client's calls (`gid`).
    pub gid: Option<u32>,
    /// NFS version (`vers`, `nfsvers`, `version`): 3, or 4.1 (`4` means 4.1); none: 4.1
    /// first, then 3.
    pub version: Option<NfsVersion>,
    /// NFS port (`port`), if not in the URL.
    pub port: Option<u16>,
    /// MOUNT port (`mountport`), if not in the URL.
    pub mountport: Option<u16>,
    /// FUSE `allow_other`: users other than the one who mounted may use the mount.
    pub allow_other: bool,
    /// FUSE `default_permissions`: the kernel checks mode bits against the attributes.
    pub default_permissions: bool,
}

/// Defaults of the attribute cache, in seconds (those of nfs(5)).
const AC_DEFAULTS: (u32, u32, u32, u32) = (3, 60, 30, 60);

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, OptionError> {
    v.parse().map_err(|_| OptionError::BadValue {
        opt: opt.into(),
        why: format!("{v:?} is not a number in range"),
    })
}

impl MountConfig {
    /// Parses a comma-separated option list (`-o ro,rsize=65536,actimeo=0`). Later options
    /// override earlier ones of the same name, as with mount(8); contradictions within one
    /// kind (`ro,rw`) are resolved the same way, but `acregmin` above `acregmax` is refused.
    pub fn parse(s: &str) -> Result<Self, OptionError> {
        let mut c = MountConfig::default();
        for opt in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            c.apply(opt)?;
        }
        c.check()?;
        Ok(c)
    }

    /// Parses several `-o` arguments as if they were joined with commas.
    pub fn parse_all<S: AsRef<str>>(args: &[S]) -> Result<Self, OptionError> {
        let joined: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        Self::parse(&joined.join(","))
    }

    fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let flag = |set: &mut dyn FnMut()| -> Result<(), OptionError> {
            match v {
                None => {
                    set();
                    Ok(())
                }
                Some(_) => Err(OptionError::Form(opt.into(), "no value")),
            }
        };
        let val = || v.ok_or_else(|| OptionError::Form(opt.into(), "a value (NAME=VALUE)"));
        match k {
            "ro" => flag(&mut || self.ro = true),
            "rw" => flag(&mut || self.ro = false),
            "hard" => flag(&mut || self.soft = Some(false)),
            "soft" => flag(&mut || self.soft = Some(true)),
            "noac" => flag(&mut || self.set_actimeo(0)),
            "allow_other" => flag(&mut || self.allow_other = true),
            "default_permissions" => flag(&mut || self.default_permissions = true),
            // What rnfs always does, accepted because it describes the mount exactly:
            // locks are local to this machine (the kernel keeps POSIX locks of a FUSE mount
            // that does not implement them), `intr` is a no-op since Linux 2.6.25, and
            // NFSv3 directory operations are synchronous on the server.
            "nolock" | "intr" | "nointr" | "dirsync" => flag(&mut || {}),
            "rsize" | "wsize" => {
                let n: u32 = num(opt, val()?)?;
                if !(4096..=(1 << 20)).contains(&n) {
                    return Err(OptionError::BadValue {
                        opt: opt.into(),
                        why: "must be between 4096 and 1048576".into(),
                    });
                }
                if k == "rsize" {
                    self.rsize = Some(n);
                } else {
                    self.wsize = Some(n);
                }
                Ok(())
            }
            "readahead" => {
                self.readahead = Some(num(opt, val()?)?);
                Ok(())
            }
            "actimeo" => {
                let n = num(opt, val()?)?;
                self.set_actimeo(n);
                Ok(())
            }
            "acregmin" => {
                self.acregmin = Some(num(opt, val()?)?);
                Ok(())
            }
            "acregmax" => {
                self.acregmax = Some(num(opt, val()?)?);
                Ok(())
            }
            "acdirmin" => {
                self.acdirmin = Some(num(opt, val()?)?);
                Ok(())
            }
            "acdirmax" => {
                self.acdirmax = Some(num(opt, val()?)?);
                Ok(())
            }
            "timeo" => {
                let n: u32 = num(opt, val()?)?;
                if n == 0 {
                    return Err(OptionError::BadValue {
                        opt: opt.into(),
                        why: "must be at least 1 (tenths of a second)".into(),
                    });
                }
                self.timeo = Some(n);
                Ok(())
            }
            "retrans" => {
                self.retrans = Some(num(opt, val()?)?);
                Ok(())
            }
            "uid" => {
                self.uid = Some(num(opt, val()?)?);
                Ok(())
            }
            "gid" => {
                self.gid = Some(num(opt, val()?)?);
                Ok(())
            }
            "port" => {
                self.port = Some(num(opt, val()?)?);
                Ok(())
            }
            "mountport" => {
                self.mountport = Some(num(opt, val()?)?);
                Ok(())
            }
            "vers" | "nfsvers" | "version" => {
                let v = val()?;
                match v {
                    "3" => {
                        self.version = Some(NfsVersion::V3);
                        Ok(())
                    }
                    "4" | "4.1" => {
                        self.version = Some(NfsVersion::V41);
                        Ok(())
                    }
                    "2" | "4.0" | "4.2" => Err(OptionError::Unsupported {
                        opt: opt.into(),
                        why: "rnfs speaks NFS versions 3 and 4.1",
                    }),
                    _ => Err(OptionError::BadValue {
                        opt: opt.into(),
                        why: "not an NFS version".into(),
                    }),
                }
            }
            "proto" | "mountproto" => match val()? {
                "tcp" => Ok(()),
                "udp" | "rdma" => Err(OptionError::Unsupported {
                    opt: opt.into(),
                    why: "rnfs uses TCP only",
                }),
                _ => Err(OptionError::BadValue {
                    opt: opt.into(),
                    why: "not a transport".into(),
                }),
            },
            "sec" => match val()? {
                "sys" => Ok(()),
                "krb5" | "krb5i" | "krb5p" | "none" | "lkey" | "lkeyi" | "lkeyp" | "spkm"
                | "spkmi" | "spkmp" => Err(OptionError::Unsupported {
                    opt: opt.into(),
                    why: "only sec=sys (AUTH_SYS) exists in rnfs",
                }),
                _ => Err(OptionError::BadValue {
                    opt: opt.into(),
                    why: "not a security flavor".into(),
                }),
            },
            "lock" | "local_lock" | "fsc" | "bg" | "fg" | "retry" | "lookupcache" | "nocto"
            | "cto" | "sharecache" | "nosharecache" | "resvport" | "noresvport" | "clientaddr"
            | "minorversion" | "namlen" | "posix" | "noposix" | "acl" | "noacl" | "rdirplus"
            | "nordirplus" | "nconnect" | "max_connect" | "async" | "suid" | "dev" | "exec"
            | "noexec" | "atime" | "auto_unmount" | "allow_root" | "fsname" | "subtype"
            | "sync" | "noatime" | "nodiratime" | "relatime" | "strictatime" | "nosuid"
            | "nodev" => Err(OptionError::Unsupported {
                opt: opt.into(),
                why: "rnfs does not implement this option yet",
            }),
            _ => Err(OptionError::Unknown(opt.into())),
        }
    }

    fn set_actimeo(&mut self, n: u32) {
        self.acregmin = Some(n);
        self.acregmax = Some(n);
        self.acdirmin = Some(n);
        self.acdirmax = Some(n);
    }

    fn check(&self) -> Result<(), OptionError> {
        let (rmin, rmax) = (self.acregmin(), self.acregmax());
        if rmin > rmax {
            return Err(OptionError::Conflict(format!(
                "acregmin={rmin} is above acregmax={rmax}"
            )));
        }
        let (dmin, dmax) = (self.acdirmin(), self.acdirmax());
        if dmin > dmax {
            return Err(OptionError::Conflict(format!(
                "acdirmin={dmin} is above acdirmax={dmax}"
            )));
        }
        Ok(())
    }

    /// Seconds file attributes are trusted at least (and, in rnfs, at most).
    pub fn acregmin(&self) -> u32 {
        self.acregmin
            .unwrap_or(AC_DEFAULTS.0.min(self.acregmax.unwrap_or(u32::MAX)))
    }

    /// Upper bound of the file attribute timeout.
    pub fn acregmax(&self) -> u32 {
        self.acregmax
            .unwrap_or(AC_DEFAULTS.1.max(self.acregmin.unwrap_or(0)))
    }

    /// Seconds directory attributes are trusted.
    pub fn acdirmin(&self) -> u32 {
        self.acdirmin
            .unwrap_or(AC_DEFAULTS.2.min(self.acdirmax.unwrap_or(u32::MAX)))
    }

    /// Upper bound of the directory attribute timeout.
    pub fn acdirmax(&self) -> u32 {
        self.acdirmax
            .unwrap_or(AC_DEFAULTS.3.max(self.acdirmin.unwrap_or(0)))
    }

    /// The URL with `port`/`mountport` and the version filled in where the URL did not
    /// give them (one given in both places must agree).
    pub fn apply_to_url(&self, url: &mut NfsUrl) -> Result<(), OptionError> {
        for (o, u, name) in [
            (self.port, &mut url.nfsport, "port"),
            (self.mountport, &mut url.mountport, "mountport"),
        ] {
            match (o, *u) {
                (Some(a), Some(b)) if a != b => {
                    return Err(OptionError::Conflict(format!(
                        "{name}={a} but the URL says {b}"
                    )))
                }
                (Some(a), _) => *u = Some(a),
                _ => {}
            }
        }
        match (self.version, url.version) {
            (Some(a), Some(b)) if a != b => {
                return Err(OptionError::Conflict(format!(
                    "vers={a:?} but the URL says {b:?}"
                )))
            }
            (Some(a), _) => url.version = Some(a),
            _ => {}
        }
        Ok(())
    }

    /// The client's options: the URL's, overridden by these.
    pub fn client_options(&self, url: &NfsUrl) -> MountOptions {
        let d = MountOptions::from_url(url);
        let secs = |n: u32| Duration::from_secs(u64::from(n));
        MountOptions {
            uid: self.uid.unwrap_or(d.uid),
            gid: self.gid.unwrap_or(d.gid),
            soft: self.soft.unwrap_or(d.soft),
            timeo: self
                .timeo
                .map(|t| Duration::from_millis(u64::from(t) * 100))
                .unwrap_or(d.timeo),
            retrans: self.retrans.unwrap_or(d.retrans),
            rsize: self.rsize.unwrap_or(d.rsize),
            wsize: self.wsize.unwrap_or(d.wsize),
            readahead: self.readahead.unwrap_or(d.readahead),
            acregmin: secs(self.acregmin()),
            acregmax: secs(self.acregmax()),
            acdirmin: secs(self.acdirmin()),
            acdirmax: secs(self.acdirmax()),
            ..d
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        let c = MountConfig::parse("").unwrap();
        assert_eq!(c, MountConfig::default());
        assert_eq!((c.acregmin(), c.acregmax()), (3, 60));
        assert_eq!((c.acdirmin(), c.acdirmax()), (30, 60));
    }

    #[test]
    fn every_supported_option() {
        let c = MountConfig::parse(
            "ro,rsize=65536,wsize=131072,acregmin=1,acregmax=2,acdirmin=3,acdirmax=4,soft,\
             timeo=5,retrans=6,uid=7,gid=8,vers=3,port=2049,mountport=20048,allow_other,\
             default_permissions,nolock,proto=tcp,sec=sys,readahead=1048576",
        )
        .unwrap();
        assert_eq!(
            c,
            MountConfig {
                ro: true,
                rsize: Some(65536),
                readahead: Some(1 << 20),
                wsize: Some(131072),
                acregmin: Some(1),
                acregmax: Some(2),
                acdirmin: Some(3),
                acdirmax: Some(4),
                soft: Some(true),
                timeo: Some(5),
                retrans: Some(6),
                uid: Some(7),
                gid: Some(8),
                version: Some(NfsVersion::V3),
                port: Some(2049),
                mountport: Some(20048),
                allow_other: true,
                default_permissions: true,
            }
        );
    }

    #[test]
    fn actimeo_and_noac_set_all_four() {
        let c = MountConfig::parse("actimeo=7").unwrap();
        assert_eq!(
            (c.acregmin, c.acregmax, c.acdirmin, c.acdirmax),
            (Some(7), Some(7), Some(7), Some(7))
        );
        let c = MountConfig::parse("noac").unwrap();
        assert_eq!((c.acregmin(), c.acdirmax()), (0, 0));
        // A later specific option overrides actimeo.
        let c = MountConfig::parse("actimeo=7,acregmin=1").unwrap();
        assert_eq!((c.acregmin(), c.acregmax()), (1, 7));
    }

    #[test]
    fn later_wins() {
        assert!(!MountConfig::parse("ro,rw").unwrap().ro);
        assert_eq!(MountConfig::parse("soft,hard").unwrap().soft, Some(false));
        assert_eq!(
            MountConfig::parse_all(&["rsize=8192", "rsize=4096"])
                .unwrap()
                .rsize,
            Some(4096)
        );
    }

    #[test]
    fn unsupported_is_refused_by_name() {
        for (o, needle) in [
            ("sec=krb5", "sec=sys"),
            ("sec=krb5p", "sec=sys"),
            ("vers=4.0", "versions 3 and 4.1"),
            ("nfsvers=4.2", "versions 3 and 4.1"),
            ("vers=2", "versions 3 and 4.1"),
            ("proto=udp", "TCP only"),
            ("nconnect=4", "not implement"),
            ("lookupcache=none", "not implement"),
            ("nocto", "not implement"),
        ] {
            let e = MountConfig::parse(&format!("rw,{o}")).unwrap_err();
            assert!(matches!(e, OptionError::Unsupported { .. }), "{o}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(o) && msg.contains(needle), "{o}: {msg}");
        }
    }

    #[test]
    fn unknown_and_malformed_are_refused() {
        assert_eq!(
            MountConfig::parse("ro,frobnicate").unwrap_err(),
            OptionError::Unknown("frobnicate".into())
        );
        assert!(matches!(
            MountConfig::parse("ro=1").unwrap_err(),
            OptionError::Form(..)
        ));
        assert!(matches!(
            MountConfig::parse("rsize").unwrap_err(),
            OptionError::Form(..)
        ));
        for bad in [
            "rsize=abc",
            "rsize=100",
            "wsize=4194304",
            "timeo=0",
            "uid=-1",
            "retrans=1e3",
            "vers=five",
            "sec=rot13",
        ] {
            assert!(
                matches!(
                    MountConfig::parse(bad).unwrap_err(),
                    OptionError::BadValue { .. }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn contradictory_cache_bounds_are_refused() {
        assert!(matches!(
            MountConfig::parse("acregmin=10,acregmax=5").unwrap_err(),
            OptionError::Conflict(_)
        ));
        assert!(matches!(
            MountConfig::parse("actimeo=5,acdirmin=6").unwrap_err(),
            OptionError::Conflict(_)
        ));
        // A min above the default max raises the max (only explicit bounds can conflict).
        assert_eq!(MountConfig::parse("acregmin=90").unwrap().acregmax(), 90);
    }

    #[test]
    fn client_options_override_the_url() {
        let u = NfsUrl::parse("nfs://127.0.0.1:2049/x?uid=5&soft&rsize=8192").unwrap();
        let o = MountConfig::parse("uid=9,hard,timeo=15,actimeo=0")
            .unwrap()
            .client_options(&u);
        assert_eq!((o.uid, o.soft, o.rsize), (9, false, 8192));
        assert_eq!(o.timeo, Duration::from_millis(1500));
        assert_eq!(o.acregmin, Duration::ZERO);
        assert_eq!(o.acregmax, Duration::ZERO);
        assert_eq!(o.acdirmin, Duration::ZERO);
        assert_eq!(o.acdirmax, Duration::ZERO);
        let o = MountConfig::parse("acregmin=1,acregmax=7,acdirmin=2,acdirmax=9")
            .unwrap()
            .client_options(&u);
        let s = Duration::from_secs;
        assert_eq!(
            (o.acregmin, o.acregmax, o.acdirmin, o.acdirmax),
            (s(1), s(7), s(2), s(9))
        );
    }

    #[test]
    fn ports_fill_or_must_agree() {
        let mut u = NfsUrl::parse("nfs://127.0.0.1:2049/").unwrap();
        MountConfig::parse("mountport=3000")
            .unwrap()
            .apply_to_url(&mut u)
            .unwrap();
        assert_eq!((u.nfsport, u.mountport), (Some(2049), Some(3000)));
        assert!(MountConfig::parse("port=1")
            .unwrap()
            .apply_to_url(&mut u)
            .is_err());
    }
}
