//! NFS URLs in the libnfs form:
//! `nfs://host[:port]/export/path?version=3&nfsport=N&mountport=M&uid=U&gid=G`.
//!
//! `version` (alias `vers`) is `3`, `4.1` (`4` means 4.1, the only NFSv4 minor version the
//! client speaks) or absent: then NFSv4.1 is tried first and NFSv3 when the server does
//! not speak it, as the Linux client's mount does ([`NfsUrl::version`]).
//!
//! Besides libnfs' `version`, `nfsport`, `mountport`, `uid` and `gid`, rnfs accepts
//! `soft`, `hard`, `timeo` (tenths of a second), `retrans`, `rsize` and `wsize`, as the
//! kernel's mount options name them, `readahead=N` (bytes read ahead of a sequential
//! reader, 0 for none), and `privport=1` (alias `resvport`): connect from a
//! source port below 1024, for servers whose export is `secure`. Any other parameter is refused (never ignored: seed
//! entry 5). A port in the authority is the NFS port.
use crate::error::Error;

/// The NFS version a URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfsVersion {
    /// NFSv3 (RFC 1813), with MOUNT.
    V3,
    /// NFSv4.1 (RFC 8881), sessions and open state.
    V41,
}

/// A parsed `nfs://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsUrl {
    /// Host name or address (without IPv6 brackets).
    pub host: String,
    /// The path: the export followed by the path inside it, `/`-separated, decoded.
    pub path: String,
    /// NFS port, if given (else found through the portmapper).
    pub nfsport: Option<u16>,
    /// MOUNT port, if given (else found through the portmapper).
    pub mountport: Option<u16>,
    /// AUTH_SYS user id (default: 0... see [`NfsUrl::parse`]).
    pub uid: Option<u32>,
    /// AUTH_SYS group id.
    pub gid: Option<u32>,
    /// Soft mode: give up after `retrans` retransmissions (`retrans + 1` tries).
    pub soft: Option<bool>,
    /// First timeout in tenths of a second.
    pub timeo: Option<u32>,
    /// Tries in soft mode.
    pub retrans: Option<u32>,
    /// Largest READ.
    pub rsize: Option<u32>,
    /// `readahead=N`: most bytes read ahead of a sequential reader (0: none).
    pub readahead: Option<u64>,
    /// Largest WRITE.
    pub wsize: Option<u32>,
    /// Connect from a privileged source port (`privport=1`; `privport=0` or absent: any).
    pub privport: Option<bool>,
    /// The NFS version asked for (`None`: whichever the server speaks, 4.1 first).
    pub version: Option<NfsVersion>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Url(msg.into())
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| bad(format!("truncated escape in {s:?}")))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("bad escape %{hex} in {s:?}")))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("{s:?} is not UTF-8 once decoded")))
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| bad(format!("parameter {k}={v:?} is not a valid number")))
}

impl NfsUrl {
    /// Parses a URL. Repeated slashes in the path are collapsed; `.` and `..` components
    /// are refused (the server resolves names, and `..` must not be guessed client-side).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let rest = s
            .strip_prefix("nfs://")
            .ok_or_else(|| bad(format!("{s:?} does not start with nfs://")))?;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match main.find('/') {
            Some(i) => (&main[..i], &main[i..]),
            None => (main, "/"),
        };
        if authority.is_empty() {
            return Err(bad(format!("{s:?} has no host")));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| bad(format!("unclosed [ in {authority:?}")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(num::<u16>("port", p)?),
                None if after.is_empty() => None,
                None => return Err(bad(format!("junk after ] in {authority:?}"))),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(num::<u16>("port", p)?)),
                None => (authority.to_string(), None),
            }
        };
        let mut comps = Vec::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let c = percent_decode(c)?;
            if c == "." || c == ".." || c.contains('/') || c.contains('\0') {
                return Err(bad(format!("path component {c:?} is not allowed")));
            }
            comps.push(c);
        }
        let mut u = NfsUrl {
            host,
            path: format!("/{}", comps.join("/")),
            nfsport: port,
            mountport: None,
            uid: None,
            gid: None,
            soft: None,
            timeo: None,
            retrans: None,
            rsize: None,
            readahead: None,
            wsize: None,
            privport: None,
            version: None,
        };
        for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "version" | "vers" => {
                    u.version = Some(match v {
                        "3" => NfsVersion::V3,
                        "4" | "4.1" => NfsVersion::V41,
                        _ => {
                            return Err(bad(format!("NFS version {v:?} is not supported (3, 4.1)")))
                        }
                    })
                }
                "nfsport" => u.nfsport = Some(num(k, v)?),
                "mountport" => u.mountport = Some(num(k, v)?),
                "uid" => u.uid = Some(num(k, v)?),
                "gid" => u.gid = Some(num(k, v)?),
                "soft" => u.soft = Some(true),
                "hard" => u.soft = Some(false),
                "timeo" => u.timeo = Some(num(k, v)?),
                "retrans" => u.retrans = Some(num(k, v)?),
                "rsize" => u.rsize = Some(num(k, v)?),
                "readahead" => u.readahead = Some(num(k, v)?),
                "wsize" => u.wsize = Some(num(k, v)?),
                "privport" | "resvport" => {
                    u.privport = Some(match v {
                        "" | "1" | "yes" | "true" => true,
                        "0" | "no" | "false" => false,
                        _ => return Err(bad(format!("parameter {k}={v:?} is not 0 or 1"))),
                    })
                }
                _ => return Err(bad(format!("unsupported URL parameter {k:?}"))),
            }
        }
        Ok(u)
    }

    /// The path split into components.
    pub fn components(&self) -> Vec<&str> {
        self.path.split('/').filter(|c| !c.is_empty()).collect()
    }
}

impl std::str::FromStr for NfsUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn libnfs_form() {
        let u = NfsUrl::parse("nfs://127.0.0.1//?version=3&nfsport=2049&mountport=2049").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.path, "/");
        assert_eq!((u.nfsport, u.mountport), (Some(2049), Some(2049)));
        let u = NfsUrl::parse("nfs://server:2050/export/dir/my%20file?uid=1000&gid=100").unwrap();
        assert_eq!(u.host, "server");
        assert_eq!(u.nfsport, Some(2050));
        assert_eq!(u.components(), vec!["export", "dir", "my file"]);
        assert_eq!((u.uid, u.gid), (Some(1000), Some(100)));
        let u = NfsUrl::parse("nfs://[::1]:2049/x?soft&timeo=5&retrans=2&wsize=65536").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.soft, Some(true));
        assert_eq!(
            (u.timeo, u.retrans, u.wsize),
            (Some(5), Some(2), Some(65536))
        );
        assert_eq!(
            NfsUrl::parse("nfs://h/?readahead=0").unwrap().readahead,
            Some(0)
        );
        let u = NfsUrl::parse("nfs://h").unwrap();
        assert_eq!((u.path.as_str(), u.nfsport, u.privport), ("/", None, None));
        assert_eq!(
            NfsUrl::parse("nfs://h/?privport=1").unwrap().privport,
            Some(true)
        );
        assert_eq!(
            NfsUrl::parse("nfs://h/?resvport").unwrap().privport,
            Some(true)
        );
        assert_eq!(
            NfsUrl::parse("nfs://h/?privport=0").unwrap().privport,
            Some(false)
        );
    }

    #[test]
    fn refusals_are_clear() {
        for (s, want) in [
            ("http://h/x", "nfs://"),
            ("nfs:///x", "no host"),
            ("nfs://h/x?version=4.0", "version"),
            ("nfs://h/x?version=2", "version"),
            ("nfs://h/x?sec=krb5", "unsupported URL parameter \"sec\""),
            ("nfs://h/x?uid=root", "not a valid number"),
            ("nfs://h:99999/x", "port"),
            ("nfs://h/a/../b", "not allowed"),
            ("nfs://h/a%2", "escape"),
            ("nfs://h/?privport=2", "not 0 or 1"),
        ] {
            let e = NfsUrl::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
