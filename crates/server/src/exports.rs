//! Export rules: which directories are exported, to which clients, with which options.
//!
//! Two file formats produce the same [`ExportsConfig`]:
//! - exports(5) syntax: `/path  client(options) client(options) ...`, `#` comments, `\`
//!   continuations, and `-opt,opt` default options after the path;
//! - TOML: `[[export]] path = "/srv", name = "/srv"` (optional mount path) with
//!   `[[export.client]] match = "10.0.0.0/8"`, `options = "rw,no_root_squash"`.
//!
//! Clients are an IP address, a CIDR network, a host name (resolved when the file is read),
//! or `*`. Options: `rw`/`ro`, `root_squash` (default) / `no_root_squash` / `all_squash` /
//! `no_all_squash`, `anonuid=N`, `anongid=N`, `secure` (default: source port below 1024) /
//! `insecure`, `sec=sys`, `fsid=N` (the export's id in file handles), `crossmnt` (see
//! below), and the knfsd options that describe what rnfs always does: `sync`,
//! `no_subtree_check`, `wdelay`, `no_wdelay`, `hide`. Any other option, an unsupported
//! flavour (`sec=krb5`), host wildcards other than `*` or netgroups are refused with the
//! line number and the reason, never silently ignored.
//!
//! **Mounts inside an export** (a bind mount, another file system) are not crossed: their
//! mount point answers LOOKUP with NFS3ERR_XDEV and nothing behind it is reachable, as
//! knfsd does not cross them either. `crossmnt` crosses them, as in exports(5); rnfs
//! applies it to the whole export (its boundary is the backend's, shared by all clients),
//! so it must be given for every client of an export or for none. `nohide` is refused:
//! in exports(5) it makes a sub-export visible inside its parent export with the
//! sub-export's own options, and rnfs does not graft one export into another (export the
//! inner directory separately, or give the outer export `crossmnt`).
use std::net::IpAddr;
use std::path::PathBuf;

/// An error in an exports file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ExportsError {
    /// File name, for messages.
    pub file: String,
    /// 1-based line number (0 when not known, as in some TOML errors).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// How caller identities are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Squash {
    /// Keep every identity.
    None,
    /// Map uid 0 and gid 0 to the anonymous ids (the exports(5) default).
    Root,
    /// Map every identity to the anonymous ids.
    All,
}

/// Options of one client rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Writes allowed.
    pub rw: bool,
    /// Identity mapping.
    pub squash: Squash,
    /// Anonymous uid.
    pub anonuid: u32,
    /// Anonymous gid.
    pub anongid: u32,
    /// Require a source port below 1024.
    pub secure: bool,
    /// Cross mounts inside the export (`crossmnt`; see the module documentation).
    pub crossmnt: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            rw: false,
            squash: Squash::Root,
            anonuid: 65534,
            anongid: 65534,
            secure: true,
            crossmnt: false,
        }
    }
}

impl ExportOptions {
    /// The options of `rnfs serve PATH`: read-write, no squashing, any port (a developer's
    /// share on loopback).
    pub fn open(read_only: bool) -> Self {
        Self {
            rw: !read_only,
            squash: Squash::None,
            anonuid: 65534,
            anongid: 65534,
            secure: false,
            crossmnt: false,
        }
    }
}

/// Which clients a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMatch {
    /// Everyone.
    Any,
    /// Addresses (a host name may resolve to several).
    Hosts(Vec<IpAddr>),
    /// A network.
    Cidr(IpAddr, u8),
}

impl ClientMatch {
    /// How specific a match of `ip` is (higher wins), or `None` when it does not match.
    pub fn specificity(&self, ip: IpAddr) -> Option<u32> {
        let ip = canonical(ip);
        match self {
            Self::Any => Some(0),
            Self::Hosts(v) => v.iter().any(|h| canonical(*h) == ip).then_some(1000),
            Self::Cidr(net, bits) => {
                in_net(ip, canonical(*net), *bits).then_some(1 + u32::from(*bits))
            }
        }
    }
}

/// The address as a client rule sees it: an IPv4-mapped IPv6 address is its IPv4 address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One client rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRule {
    /// Who.
    pub matcher: ClientMatch,
    /// The text it came from, for messages and EXPORT replies.
    pub spec: String,
    /// What they get.
    pub options: ExportOptions,
}

/// One export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// Directory on this host.
    pub dir: PathBuf,
    /// Path clients mount (defaults to `dir`).
    pub name: String,
    /// Export id in handles (`fsid=`), or derived from the name.
    pub id: u16,
    /// Client rules.
    pub clients: Vec<ClientRule>,
}

impl ExportSpec {
    /// Whether the export crosses mounts inside it (`crossmnt`, the same for every client).
    pub fn crossmnt(&self) -> bool {
        self.clients.iter().any(|c| c.options.crossmnt)
    }

    /// The rule for a client, most specific first; `None`: no access.
    pub fn rule_for(&self, ip: IpAddr) -> Option<&ExportOptions> {
        self.clients
            .iter()
            .filter_map(|r| r.matcher.specificity(ip).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| &r.options)
    }
}

/// All exports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportsConfig {
    /// In file order.
    pub exports: Vec<ExportSpec>,
}

/// A stable export id from its mount path (FNV-1a folded to 16 bits, never 0).
pub fn id_of(name: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (((h >> 16) ^ h) as u16).max(1)
}

struct Ctx<'a> {
    file: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn err(&self, msg: impl Into<String>) -> ExportsError {
        ExportsError {
            file: self.file.to_string(),
            line: self.line,
            msg: msg.into(),
        }
    }
}

fn apply_option(
    c: &Ctx<'_>,
    o: &mut ExportOptions,
    fsid: &mut Option<u16>,
    opt: &str,
) -> Result<(), ExportsError> {
    let (k, v) = match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    let num = |v: Option<&str>| -> Result<u32, ExportsError> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| c.err(format!("option {k} needs a number, as {k}=65534")))
    };
    match (k, v) {
        ("rw", None) => o.rw = true,
        ("ro", None) => o.rw = false,
        ("root_squash", None) => o.squash = Squash::Root,
        ("no_root_squash", None) => {
            if o.squash != Squash::All {
                o.squash = Squash::None
            }
        }
        ("all_squash", None) => o.squash = Squash::All,
        ("no_all_squash", None) => {
            if o.squash == Squash::All {
                o.squash = Squash::Root
            }
        }
        ("anonuid", v) => o.anonuid = num(v)?,
        ("anongid", v) => o.anongid = num(v)?,
        ("secure", None) => o.secure = true,
        ("insecure", None) => o.secure = false,
        ("sec", Some(flavors)) => {
            for f in flavors.split(':') {
                if f != "sys" {
                    return Err(c.err(format!("sec={f} is not supported (only sec=sys for now)")));
                }
            }
        }
        ("fsid", v) => {
            let n = num(v)?;
            *fsid = Some(
                u16::try_from(n)
                    .ok()
                    .filter(|&n| n != 0)
                    .ok_or_else(|| c.err("fsid must be 1..65535"))?,
            );
        }
        ("crossmnt", None) => o.crossmnt = true,
        ("nohide", None) => {
            return Err(c.err(
                "nohide is not supported: export the inner directory separately, \
                 or give the outer export crossmnt",
            ))
        }
        ("sync" | "no_subtree_check" | "wdelay" | "no_wdelay" | "hide", None) => {}
        ("async", None) => {
            return Err(c.err("async is not supported: rnfs honours every stable write"))
        }
        ("subtree_check", None) => {
            return Err(c.err("subtree_check is not supported: handles never name paths"))
        }
        _ => return Err(c.err(format!("unknown export option {opt:?}"))),
    }
    Ok(())
}

fn parse_client(c: &Ctx<'_>, spec: &str) -> Result<ClientMatch, ExportsError> {
    if spec == "*" {
        return Ok(ClientMatch::Any);
    }
    if spec.starts_with('@') {
        return Err(c.err(format!("netgroups ({spec}) are not supported")));
    }
    if spec.contains('*') || spec.contains('?') {
        return Err(c.err(format!(
            "host wildcards ({spec}) are not supported: they need reverse DNS; use a network"
        )));
    }
    if let Some((net, bits)) = spec.split_once('/') {
        let ip: IpAddr = net
            .parse()
            .map_err(|_| c.err(format!("bad network address {net:?}")))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = match bits.parse::<u8>() {
            Ok(b) if b <= max => b,
            _ => match (ip, bits.parse::<std::net::Ipv4Addr>()) {
                (IpAddr::V4(_), Ok(mask)) => {
                    let m = u32::from(mask);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return Err(c.err(format!("bad netmask {bits:?}")));
                    }
                    m.leading_ones() as u8
                }
                _ => return Err(c.err(format!("bad prefix length {bits:?}"))),
            },
        };
        return Ok(ClientMatch::Cidr(ip, bits));
    }
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(ClientMatch::Hosts(vec![ip]));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (spec, 0)
        .to_socket_addrs()
        .map_err(|e| c.err(format!("cannot resolve host {spec:?}: {e}")))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(c.err(format!("host {spec:?} has no address")));
    }
    Ok(ClientMatch::Hosts(addrs))
}

fn finish(
    c: &Ctx<'_>,
    cfg: &mut ExportsConfig,
    mut e: ExportSpec,
    fsid: Option<u16>,
) -> Result<(), ExportsError> {
    if !e.dir.is_absolute() {
        return Err(c.err(format!("export path {} is not absolute", e.dir.display())));
    }
    if !e.name.starts_with('/') {
        return Err(c.err(format!("mount path {} must start with /", e.name)));
    }
    if e.clients.is_empty() {
        return Err(c.err(format!("export {} names no client", e.name)));
    }
    if e.clients.iter().any(|r| r.options.crossmnt != e.crossmnt()) {
        return Err(c.err(format!(
            "crossmnt must be given for every client of {} or for none: \
             it applies to the whole export",
            e.name
        )));
    }
    e.id = fsid.unwrap_or_else(|| id_of(&e.name));
    if let Some(o) = cfg.exports.iter().find(|o| o.name == e.name) {
        return Err(c.err(format!(
            "{} is exported twice (also as {})",
            e.name,
            o.dir.display()
        )));
    }
    if let Some(o) = cfg.exports.iter().find(|o| o.id == e.id) {
        return Err(c.err(format!(
            "{} and {} have the same export id {}: set fsid= on one",
            e.name, o.name, e.id
        )));
    }
    cfg.exports.push(e);
    Ok(())
}

/// Parses exports(5) text.
pub fn parse_exports(file: &str, text: &str) -> Result<ExportsConfig, ExportsError> {
    let mut cfg = ExportsConfig::default();
    let mut logical = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        if logical.is_empty() {
            start = i + 1;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        let c = Ctx { file, line: start };
        let mut words = tokenize(&c, &l)?.into_iter();
        let Some(path) = words.next() else { continue };
        let mut defaults = ExportOptions::default();
        let mut fsid = None;
        let mut e = ExportSpec {
            dir: PathBuf::from(&path),
            name: path.clone(),
            id: 0,
            clients: Vec::new(),
        };
        for w in words {
            if let Some(opts) = w.strip_prefix('-') {
                for o in opts.split(',').filter(|o| !o.is_empty()) {
                    apply_option(&c, &mut defaults, &mut fsid, o)?;
                }
                continue;
            }
            let (who, opts) = match w.find('(') {
                Some(p) => {
                    let Some(inner) = w[p + 1..].strip_suffix(')') else {
                        return Err(c.err(format!("unbalanced parenthesis in {w:?}")));
                    };
                    (&w[..p], Some(inner))
                }
                None => (w.as_str(), None),
            };
            let who = if who.is_empty() { "*" } else { who };
            let mut o = defaults.clone();
            for opt in opts.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
                apply_option(&c, &mut o, &mut fsid, opt.trim())?;
            }
            e.clients.push(ClientRule {
                matcher: parse_client(&c, who)?,
                spec: who.to_string(),
                options: o,
            });
        }
        finish(&c, &mut cfg, e, fsid)?;
    }
    Ok(cfg)
}

/// Splits a line into words; a double-quoted path may contain spaces. A space between a
/// client and its options (`host (rw)`) is an error, as it changes the meaning in exports(5).
fn tokenize(c: &Ctx<'_>, l: &str) -> Result<Vec<String>, ExportsError> {
    let mut out = Vec::new();
    let mut chars = l.chars().peekable();
    while let Some(&ch) = chars.peek() {
        if ch.is_whitespace() {
            chars.next();
            continue;
        }
        let mut w = String::new();
        if ch == '"' {
            chars.next();
            for ch in chars.by_ref() {
                if ch == '"' {
                    break;
                }
                w.push(ch);
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                w.push(ch);
                chars.next();
            }
        }
        if w.starts_with('(') && !out.is_empty() {
            return Err(c.err(format!(
                "space before {w:?}: write host(options) with no space"
            )));
        }
        out.push(w);
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    export: Vec<TomlExport>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlExport {
    path: String,
    name: Option<String>,
    #[serde(default)]
    options: String,
    #[serde(default)]
    client: Vec<TomlClient>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlClient {
    #[serde(rename = "match")]
    matcher: String,
    #[serde(default)]
    options: String,
}

/// Parses the TOML form.
pub fn parse_toml(file: &str, text: &str) -> Result<ExportsConfig, ExportsError> {
    // Byte offsets from the TOML parser need not fall on a character boundary: count bytes.
    let line_of = |off: usize| {
        text.as_bytes()[..off.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    };
    let f: TomlFile = toml::from_str(text).map_err(|e| ExportsError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(s.start)).unwrap_or(0),
        msg: e.message().to_string(),
    })?;
    let mut cfg = ExportsConfig::default();
    for (i, x) in f.export.into_iter().enumerate() {
        // Point messages at the i-th [[export]] table.
        let line = text
            .match_indices("[[export]]")
            .nth(i)
            .map(|(o, _)| line_of(o))
            .unwrap_or(0);
        let c = Ctx { file, line };
        let mut defaults = ExportOptions::default();
        let mut fsid = None;
        for o in x
            .options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            apply_option(&c, &mut defaults, &mut fsid, o)?;
        }
        let mut e = ExportSpec {
            dir: PathBuf::from(&x.path),
            name: x.name.unwrap_or(x.path),
            id: 0,
            clients: Vec::new(),
        };
        for cl in x.client {
            let mut o = defaults.clone();
            for opt in cl
                .options
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
            {
                apply_option(&c, &mut o, &mut fsid, opt)?;
            }
            e.clients.push(ClientRule {
                matcher: parse_client(&c, &cl.matcher)?,
                spec: cl.matcher,
                options: o,
            });
        }
        finish(&c, &mut cfg, e, fsid)?;
    }
    Ok(cfg)
}

/// Reads an exports file, choosing the format by the `.toml` extension.
pub fn load(path: &std::path::Path) -> Result<ExportsConfig, ExportsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ExportsError {
        file: name.clone(),
        line: 0,
        msg: e.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "toml") {
        parse_toml(&name, &text)
    } else {
        parse_exports(&name, &text)
    }
}

/// The identity a caller gets under `o`: squashing and the anonymous ids (exports(5)).
/// The rule both NFS versions apply; NFSv4's pseudo file system calls it (`v4::pseudo`).
pub fn squash_creds(auth: &rnfs_rpc::message::Auth, o: &ExportOptions) -> rnfs_vfs::Creds {
    use rnfs_rpc::message::Auth;
    use rnfs_vfs::Creds;
    let anon = Creds {
        uid: o.anonuid,
        gid: o.anongid,
        gids: Vec::new(),
    };
    match (auth, o.squash) {
        (Auth::None, _) | (_, Squash::All) => anon,
        (Auth::Sys(p), Squash::None) => Creds {
            uid: p.uid,
            gid: p.gid,
            gids: p.gids.0.clone(),
        },
        (Auth::Sys(p), Squash::Root) => {
            let g = |g: u32| if g == 0 { o.anongid } else { g };
            Creds {
                uid: if p.uid == 0 { o.anonuid } else { p.uid },
                gid: g(p.gid),
                gids: p.gids.0.iter().map(|&x| g(x)).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn exports5_syntax() {
        let cfg = parse_exports(
            "x",
            "# comment\n/srv/a  127.0.0.1(rw,no_root_squash) 10.0.0.0/8(ro) *(ro,all_squash,anonuid=1000,insecure)\n\
             /srv/b -rw,insecure \\\n   127.0.0.2 192.168.0.0/255.255.0.0(ro)\n\n",
        )
        .unwrap();
        assert_eq!(cfg.exports.len(), 2);
        let a = &cfg.exports[0];
        let r = a.rule_for(ip("127.0.0.1")).unwrap();
        assert!(r.rw && r.squash == Squash::None && r.secure);
        let r = a.rule_for(ip("10.1.2.3")).unwrap();
        assert!(!r.rw && r.squash == Squash::Root);
        let r = a.rule_for(ip("127.0.0.9")).unwrap();
        assert!(!r.rw && r.squash == Squash::All && r.anonuid == 1000 && !r.secure);
        let b = &cfg.exports[1];
        assert!(b.rule_for(ip("127.0.0.2")).unwrap().rw);
        assert!(!b.rule_for(ip("192.168.7.7")).unwrap().rw);
        assert!(b.rule_for(ip("127.0.0.1")).is_none());
        assert!(
            b.rule_for(ip("::ffff:127.0.0.2")).is_some(),
            "v4-mapped addresses match"
        );
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_exports("f", "/a *(rw)\n/b *(rw,sec=krb5)\n").unwrap_err();
        assert_eq!((e.line, e.msg.contains("krb5")), (2, true), "{e}");
        let e = parse_exports("f", "\n\n/a *(frobnicate)").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("f:3: unknown export option"));
        assert!(parse_exports("f", "/a *.example.com(rw)").is_err());
        assert!(parse_exports("f", "/a @trusted(rw)").is_err());
        assert!(parse_exports("f", "/a 10.0.0.0/33(rw)").is_err());
        assert!(parse_exports("f", "relative *(rw)").is_err());
        assert!(parse_exports("f", "/a").is_err());
        assert!(parse_exports("f", "/a host (rw)").is_err());
        assert!(parse_exports("f", "/a *(rw)\n/a *(ro)").is_err());
        assert!(parse_exports("f", "/a *(rw,async)").is_err());
        let e = parse_exports("f", "/a *(rw,nohide)").unwrap_err();
        assert!(e.msg.contains("nohide is not supported"), "{e}");
        let e = parse_exports("f", "/a 10.0.0.1(rw,crossmnt) 10.0.0.2(ro)").unwrap_err();
        assert!(e.msg.contains("every client"), "{e}");
    }

    #[test]
    fn crossmnt_is_an_export_option() {
        let cfg = parse_exports(
            "x",
            "/a *(rw,hide)\n/b -crossmnt 10.0.0.1(rw) 10.0.0.2(ro)\n/c 10.0.0.1(crossmnt)\n",
        )
        .unwrap();
        let crossing: Vec<bool> = cfg.exports.iter().map(|e| e.crossmnt()).collect();
        assert_eq!(crossing, [false, true, true]);
    }

    #[test]
    fn toml_form() {
        let cfg = parse_toml(
            "t.toml",
            r#"
[[export]]
path = "/srv/a"
name = "/a"
options = "rw"
[[export.client]]
match = "127.0.0.0/8"
options = "no_root_squash,insecure"
[[export.client]]
match = "*"
options = "ro"
"#,
        )
        .unwrap();
        let a = &cfg.exports[0];
        assert_eq!(a.name, "/a");
        let r = a.rule_for(ip("127.0.0.5")).unwrap();
        assert!(r.rw && r.squash == Squash::None && !r.secure);
        assert!(!a.rule_for(ip("8.8.8.8")).unwrap().rw);
        let e = parse_toml("t.toml", "[[export]]\npath = \"/x\"\nbogus = 1\n").unwrap_err();
        assert!(
            parse_toml("t.toml", "[[export]]\npath = \"é\u{1F600}\" é = 1\n").is_err(),
            "multi-byte text in errors"
        );
        assert!(e.msg.contains("bogus"), "{e}");
        let e = parse_toml("t.toml", "[[export]]\npath = \"/x\"\n[[export.client]]\nmatch = \"*\"\noptions = \"sec=krb5p\"\n")
            .unwrap_err();
        assert_eq!(e.line, 1);
    }
}
