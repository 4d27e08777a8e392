//! The NFSv4 pseudo file system: one namespace joining every export (RFC 8881 section 7).
//!
//! NFSv4 has no MOUNT protocol: a client starts at the root (PUTROOTFH) and walks down
//! with LOOKUP. The exports file is the source: every export's mount path (`/srv/a`) becomes
//! a chain of read-only pseudo directories (`/`, `/srv`) ending at the export, whose root
//! directory takes the place of the last node (`a`). Below an export root everything is
//! the export's backend; an export inside another (`/srv` and `/srv/a`) is reached through
//! the outer one's backend, with the outer one's rules, as NFSv3 MNT of `/srv` then LOOKUP
//! `a` does (rnfs does not graft one export into another; see [`crate::exports`]).
//!
//! **What a client sees.** As knfsd and Ganesha do, a client sees only the pseudo nodes
//! that lead to an export whose rules list its address; every other name answers NOENT,
//! as if absent. At a node whose export lists the client, LOOKUP crosses into the export
//! root, and the export's rules apply exactly as for NFSv3 (the same functions):
//! `secure` with a source port of 1024 or above is PERM (logged at info), squashing maps
//! the caller's identity ([`crate::exports::squash_creds`]), `ro` (or a read-only server or
//! backend) makes the scope read-only. A node whose export does not list the client, but
//! which leads to one that does, stays a pseudo directory for that client.
//!
//! **Handles** of pseudo nodes are a form of their own (see [`crate::handle`]): the node's
//! id, MAC'd with the pseudo key. A node's id is derived from its path, so its handle
//! survives restarts and reloads that keep the node; a handle of a node gone is STALE.
//! Export handles are those of NFSv3 (the same handle names the same file in both).
//!
//! **File system ids.** The pseudo file system is fsid (0, 0); an export's objects are
//! (export id, the backend's fsid), so a client sees a new file system at each export root
//! (and, with `crossmnt`, at each mount inside an export). An export root's
//! `mounted_on_fileid` is the file id of the pseudo node it covers (RFC 8881 5.8.2.23).
//!
//! [`PseudoFs`] is built from the export table and rebuilt with it on reload; it does no
//! I/O of its own beyond the backends, and takes the build time as an input.
use super::error::{Nfs4Error, R4};
use crate::exports::squash_creds;
use crate::handle::{self, HandleKey, HandleSecret};
use crate::{Export, ExportTable};
use rnfs_proto::nfs3::FileHandle3;
use rnfs_rpc::message::Auth;
use rnfs_vfs::{Attr, Ctx, FileKey, FileType, FsStat, Limits, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

/// The RPC security flavour AUTH_SYS (RFC 5531), the only one exports offer for now.
pub const AUTH_SYS: u32 = 1;

/// Who is calling: the connection's peer and the call's credentials.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The client's address and source port.
    pub peer: SocketAddr,
    /// The credentials of the call, as sent.
    pub auth: &'a Auth,
}

/// `fsid4`: the file system an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid {
    /// The export id (0 for the pseudo file system).
    pub major: u64,
    /// The backend's file system id (0 for the pseudo file system).
    pub minor: u64,
}

/// The fsid of the pseudo file system.
pub const PSEUDO_FSID: Fsid = Fsid { major: 0, minor: 0 };

/// What a file handle names: a pseudo directory, or an object of an export.
#[derive(Clone)]
pub enum Place {
    /// A pseudo directory, by node id.
    Pseudo(u64),
    /// An object of an export.
    Export {
        /// The export.
        export: Arc<Export>,
        /// The backend's key of the object.
        key: FileKey,
    },
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Pseudo(id) => write!(f, "Pseudo({id:#x})"),
            Place::Export { export, key } => write!(f, "Export({}, {key:?})", export.id),
        }
    }
}

impl PartialEq for Place {
    /// The same object: the same node, or the same key in the same export (ids are unique
    /// in a table).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Place::Pseudo(a), Place::Pseudo(b)) => a == b,
            (
                Place::Export { export: e, key: k },
                Place::Export {
                    export: e2,
                    key: k2,
                },
            ) => e.id == e2.id && k == k2,
            _ => false,
        }
    }
}
impl Eq for Place {}

/// A caller admitted to an export: its mapped identity and whether it may write.
#[derive(Clone)]
pub struct ExportScope {
    /// The export.
    pub export: Arc<Export>,
    /// The caller's identity after squashing, for every backend call.
    pub ctx: Ctx,
    /// Writes allowed (the rule is `rw`, and neither the server nor the backend is read-only).
    pub rw: bool,
}

/// What GETATTR needs to know of an object besides the server's own figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAttrs {
    /// The object's attributes (made up for a pseudo directory).
    pub attr: Attr,
    /// Its file system.
    pub fsid: Fsid,
    /// The file id of what it is mounted on: the covered pseudo node for an export root,
    /// else its own file id.
    pub mounted_on_fileid: u64,
    /// Whether it can hold user extended attributes (`xattr_support`, RFC 8276 8.1):
    /// never for a pseudo directory.
    pub xattr_support: bool,
}

struct Node {
    id: u64,
    parent: Option<usize>,
    children: BTreeMap<Vec<u8>, usize>,
    export: Option<Arc<Export>>,
}

/// The pseudo file system over one export table. See the module documentation.
pub struct PseudoFs {
    table: Arc<ExportTable>,
    /// Index 0 is the root.
    nodes: Vec<Node>,
    by_id: HashMap<u64, usize>,
    /// Export id -> the node it is mounted on.
    mounted: HashMap<u16, usize>,
    key: HandleKey,
    /// To check the tag of a handle of an export not (or no longer) served, as NFSv3 does.
    secret: HandleSecret,
    read_only: bool,
    built: Timestamp,
}

/// Longest name of a pseudo directory's entry (as the backends' usual NAME_MAX).
const PSEUDO_NAME_MAX: u32 = 255;

/// The id of the node at `path` (canonical), and file id of the pseudo directory: from a
/// hash of the path, so that it survives restarts; never 0 (some programs skip directory
/// entries with inode 0) nor 1. `salt` separates the (astronomically unlikely) collisions.
fn node_id(path: &[u8], salt: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(b"rnfs pseudo node\0");
    h.update(salt.to_be_bytes());
    h.update(path);
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b).max(2)
}

impl PseudoFs {
    /// The pseudo file system over `table`'s exports. `secret` keys pseudo handles;
    /// `read_only` is the server's setting; `built` is the time of the build (the pseudo
    /// directories' times and change attribute).
    pub fn new(
        table: Arc<ExportTable>,
        secret: &HandleSecret,
        read_only: bool,
        built: Timestamp,
    ) -> Self {
        let mut fs = Self {
            table: table.clone(),
            nodes: Vec::new(),
            by_id: HashMap::new(),
            mounted: HashMap::new(),
            key: HandleKey::pseudo(secret),
            secret: secret.clone(),
            read_only,
            built,
        };
        fs.add_node(b"/", Vec::new(), None);
        for e in &table.exports {
            if e.id == handle::PSEUDO_EXPORT {
                tracing::warn!(path = %e.path, "export id 0 is reserved for the NFSv4 pseudo file system: not reachable over NFSv4");
                continue;
            }
            let Some(path) = crate::mount::canonical(e.path.as_bytes()) else {
                continue;
            };
            let mut at = 0;
            let mut sofar = Vec::new();
            for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
                sofar.push(b'/');
                sofar.extend_from_slice(comp);
                at = match fs.nodes[at].children.get(comp) {
                    Some(&c) => c,
                    None => fs.add_node(&sofar, comp.to_vec(), Some(at)),
                };
            }
            if fs.nodes[at].export.is_some() {
                tracing::warn!(path = %e.path, "two exports at one path: NFSv4 reaches the first");
                continue;
            }
            fs.nodes[at].export = Some(e.clone());
            fs.mounted.insert(e.id, at);
        }
        fs
    }

    fn add_node(&mut self, path: &[u8], name: Vec<u8>, parent: Option<usize>) -> usize {
        let mut salt = 0;
        let id = loop {
            let id = node_id(path, salt);
            if !self.by_id.contains_key(&id) {
                break id;
            }
            salt += 1;
        };
        let i = self.nodes.len();
        self.nodes.push(Node {
            id,
            parent,
            children: BTreeMap::new(),
            export: None,
        });
        self.by_id.insert(id, i);
        if let Some(p) = parent {
            self.nodes[p].children.insert(name, i);
        }
        i
    }

    /// The file handle of `place`.
    pub fn fh(&self, place: &Place) -> FileHandle3 {
        match place {
            Place::Pseudo(id) => handle::encode_pseudo(&self.key, *id),
            Place::Export { export, key } => handle::encode(export, key),
        }
    }

    /// Admits `who` to `export`, as NFSv3 does: ACCESS when no rule lists its address,
    /// PERM from an unprivileged port to a `secure` export.
    pub fn scope(&self, who: &Caller<'_>, export: &Arc<Export>) -> R4<ExportScope> {
        let o = export.rule_for(who.peer.ip()).ok_or(Nfs4Error::Access)?;
        if o.secure && who.peer.port() >= 1024 {
            tracing::info!(peer = %who.peer, export = %export.path, "NFSv4 request from an unprivileged port refused (export is secure)");
            return Err(Nfs4Error::Perm);
        }
        Ok(ExportScope {
            export: export.clone(),
            ctx: Ctx::new(squash_creds(who.auth, o)),
            rw: o.rw && !self.read_only && !export.fs.read_only(),
        })
    }

    /// Whether node `i` leads `who` to an export whose rules list it.
    fn visible(&self, i: usize, who: &Caller<'_>) -> bool {
        let n = &self.nodes[i];
        n.export
            .as_ref()
            .is_some_and(|e| e.rule_for(who.peer.ip()).is_some())
            || n.children.values().any(|&c| self.visible(c, who))
    }

    /// What `who` finds at node `i`: the export root when the node's export lists it, the
    /// pseudo directory when it leads to one that does, else nothing (NOENT).
    fn enter(&self, i: usize, who: &Caller<'_>) -> R4<Place> {
        let n = &self.nodes[i];
        if let Some(e) = n.export.as_ref() {
            if e.rule_for(who.peer.ip()).is_some() {
                self.scope(who, e)?;
                return Ok(Place::Export {
                    export: e.clone(),
                    key: e.fs.root(),
                });
            }
        }
        if self.visible(i, who) {
            Ok(Place::Pseudo(n.id))
        } else {
            Err(Nfs4Error::NoEnt)
        }
    }

    fn node(&self, id: u64) -> R4<usize> {
        self.by_id.get(&id).copied().ok_or(Nfs4Error::Stale)
    }

    /// PUTROOTFH (RFC 8881 18.21): the root, or the export at `/` when there is one that
    /// lists the caller. A caller that may mount nothing gets an empty root.
    pub fn root(&self, who: &Caller<'_>) -> R4<Place> {
        match self.enter(0, who) {
            Err(Nfs4Error::NoEnt) => Ok(Place::Pseudo(self.nodes[0].id)),
            r => r,
        }
    }

    /// PUTFH (RFC 8881 18.19): what a handle names, checked as NFSv3 checks it: BADHANDLE
    /// for one not ours or whose tag does not match, STALE for an export (or a pseudo
    /// node) no longer there, ACCESS for a removed export or one that does not list the
    /// caller (and for a pseudo node it may not see), PERM for a `secure` export from an
    /// unprivileged port. A key the backend must search for is the caller's to handle
    /// (as `NfsServer::place` does for NFSv3) before it uses the key.
    pub fn resolve(&self, who: &Caller<'_>, fh: &FileHandle3) -> R4<Place> {
        let bad = |_| Nfs4Error::BadHandle;
        let id = handle::export_id(fh).map_err(bad)?;
        if id == handle::PSEUDO_EXPORT {
            let node = handle::decode_pseudo(&self.key, fh).map_err(bad)?;
            let i = self.node(node)?;
            if !self.visible(i, who) {
                return Err(Nfs4Error::Access);
            }
            return Ok(Place::Pseudo(node));
        }
        let e = self.table.by_id(id);
        let key = match e {
            Some(e) => handle::verify(&e.key, fh),
            None => handle::verify(&HandleKey::derive(&self.secret, id), fh),
        }
        .map_err(bad)?;
        let Some(e) = e else {
            return Err(if self.table.retired.contains(&id) {
                Nfs4Error::Access
            } else {
                Nfs4Error::Stale
            });
        };
        self.scope(who, e)?;
        Ok(Place::Export {
            export: e.clone(),
            key,
        })
    }

    /// LOOKUP (RFC 8881 18.13) of `name` in directory `dir`.
    pub fn lookup(&self, who: &Caller<'_>, dir: &Place, name: &[u8]) -> R4<Place> {
        match dir {
            Place::Pseudo(id) => {
                check_component(name, PSEUDO_NAME_MAX)?;
                let i = self.node(*id)?;
                match self.nodes[i].children.get(name) {
                    Some(&c) => self.enter(c, who),
                    None => Err(Nfs4Error::NoEnt),
                }
            }
            Place::Export { export, key } => {
                let x = self.scope(who, export)?;
                check_component(name, export.fs.limits().name_max)?;
                match export.fs.lookup(&x.ctx, key, name) {
                    Ok((k, _)) => Ok(Place::Export {
                        export: export.clone(),
                        key: k,
                    }),
                    Err(rnfs_vfs::VfsError::NotDir) => Err(not_a_dir(&x, key)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// LOOKUPP (RFC 8881 18.14): the parent of directory `dir`. From an export root it is
    /// the pseudo directory above the export; from the root, NOENT.
    pub fn lookupp(&self, who: &Caller<'_>, dir: &Place) -> R4<Place> {
        match dir {
            Place::Pseudo(id) => {
                let i = self.node(*id)?;
                match self.nodes[i].parent {
                    Some(p) => Ok(Place::Pseudo(self.nodes[p].id)),
                    None => Err(Nfs4Error::NoEnt),
                }
            }
            Place::Export { export, key } => {
                let x = self.scope(who, export)?;
                let fs = &export.fs;
                let a = fs.getattr(&x.ctx, key)?;
                if a.ftype != FileType::Directory {
                    return Err(not_a_dir(&x, key));
                }
                if *key != fs.root() {
                    let (k, _) = fs.parent(&x.ctx, key)?;
                    return Ok(Place::Export {
                        export: export.clone(),
                        key: k,
                    });
                }
                // Search permission on the root, as LOOKUP of ".." would need.
                fs.lookup(&x.ctx, key, b".")?;
                let at = self
                    .mounted
                    .get(&export.id)
                    .copied()
                    .ok_or(Nfs4Error::Stale)?;
                match self.nodes[at].parent {
                    Some(p) => Ok(Place::Pseudo(self.nodes[p].id)),
                    None => Err(Nfs4Error::NoEnt),
                }
            }
        }
    }

    /// SECINFO (RFC 8881 18.29) of `name` in `dir`: the flavours of the object's export.
    pub fn secinfo(&self, who: &Caller<'_>, dir: &Place, name: &[u8]) -> R4<Vec<u32>> {
        let p = self.lookup(who, dir, name)?;
        Ok(self.flavors(&p))
    }

    /// The security flavours that reach `place` (SECINFO_NO_NAME, RFC 8881 18.45):
    /// AUTH_SYS, the only flavour an exports file may give today (`sec=sys`).
    pub fn flavors(&self, place: &Place) -> Vec<u32> {
        let _ = place;
        vec![AUTH_SYS]
    }

    /// The attributes of `place` for GETATTR (see [`ObjectAttrs`]).
    pub fn attrs(&self, who: &Caller<'_>, place: &Place) -> R4<ObjectAttrs> {
        match place {
            Place::Pseudo(id) => {
                let i = self.node(*id)?;
                let n = &self.nodes[i];
                let attr = Attr {
                    ftype: FileType::Directory,
                    mode: 0o555,
                    nlink: u32::try_from(n.children.len()).unwrap_or(u32::MAX - 2) + 2,
                    uid: 0,
                    gid: 0,
                    size: 4096,
                    used: 0,
                    rdev: (0, 0),
                    fsid: 0,
                    fileid: n.id,
                    atime: self.built,
                    mtime: self.built,
                    ctime: self.built,
                    // A rebuild (reload) is the only change of a pseudo directory.
                    change: (self.built.secs as u64)
                        .wrapping_mul(1_000_000_000)
                        .wrapping_add(u64::from(self.built.nsecs)),
                };
                Ok(ObjectAttrs {
                    attr,
                    fsid: PSEUDO_FSID,
                    mounted_on_fileid: n.id,
                    xattr_support: false,
                })
            }
            Place::Export { export, key } => {
                let x = self.scope(who, export)?;
                let attr = export.fs.getattr(&x.ctx, key)?;
                // An export at `/` covers no directory a client sees: its own file id.
                let mounted_on_fileid = match self.mounted.get(&export.id) {
                    Some(&at) if *key == export.fs.root() && at != 0 => self.nodes[at].id,
                    _ => attr.fileid,
                };
                Ok(ObjectAttrs {
                    fsid: Fsid {
                        major: u64::from(export.id),
                        minor: attr.fsid,
                    },
                    mounted_on_fileid,
                    xattr_support: export.fs.xattr_support(&attr),
                    attr,
                })
            }
        }
    }

    /// Space figures of `place`'s file system (all zero for the pseudo file system).
    pub fn fsstat(&self, who: &Caller<'_>, place: &Place) -> R4<FsStat> {
        match place {
            Place::Pseudo(_) => Ok(FsStat::default()),
            Place::Export { export, key } => {
                let x = self.scope(who, export)?;
                Ok(export.fs.fsstat(&x.ctx, key)?)
            }
        }
    }

    /// Limits of `place`'s file system.
    pub fn limits(&self, place: &Place) -> Limits {
        match place {
            Place::Pseudo(_) => Limits {
                name_max: PSEUDO_NAME_MAX,
                ..Limits::default()
            },
            Place::Export { export, .. } => export.fs.limits(),
        }
    }

    /// The names in pseudo directory `id` that `who` may see, in name order, with the
    /// place each leads to (for READDIR of the pseudo file system).
    pub fn entries(&self, who: &Caller<'_>, id: u64) -> R4<Vec<(Vec<u8>, Place)>> {
        let i = self.node(id)?;
        let mut out = Vec::new();
        for (name, &c) in &self.nodes[i].children {
            match self.enter(c, who) {
                Ok(p) => out.push((name.clone(), p)),
                // Listed for the export but from the wrong port: still shown (LOOKUP says
                // why), as a pseudo directory would be.
                Err(Nfs4Error::Perm) => out.push((name.clone(), Place::Pseudo(self.nodes[c].id))),
                Err(_) => {}
            }
        }
        Ok(out)
    }
}

/// NOTDIR, or SYMLINK when `key` is a symbolic link (RFC 8881 18.13.3, 18.14.3).
fn not_a_dir(x: &ExportScope, key: &FileKey) -> Nfs4Error {
    match x.export.fs.getattr(&x.ctx, key) {
        Ok(a) if a.ftype == FileType::Symlink => Nfs4Error::Symlink,
        _ => Nfs4Error::NotDir,
    }
}

/// Checks a `component4` (RFC 8881 18.13.3, as knfsd): INVAL when empty, NAMETOOLONG past
/// `name_max`, BADNAME for `.`, `..` and names with a `/` or a NUL.
pub fn check_component(name: &[u8], name_max: u32) -> R4<()> {
    if name.is_empty() {
        return Err(Nfs4Error::Inval);
    }
    if name.len() > name_max as usize {
        return Err(Nfs4Error::NameTooLong);
    }
    if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(Nfs4Error::BadName);
    }
    Ok(())
}

/// The server the NFSv4 unit tests run against: `fs` exported read-write to everyone at
/// /srv/a, `ro` read-only to 10.0.0.1 at /ro (both `insecure`), a fixed handle secret; and
/// its pseudo file system.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_exports(
    fs: std::sync::Arc<dyn rnfs_vfs::Backend>,
    ro: std::sync::Arc<dyn rnfs_vfs::Backend>,
) -> (crate::NfsServer, PseudoFs) {
    let cfg =
        crate::exports::parse_exports("t", "/srv/a *(rw,insecure)\n/ro 10.0.0.1(ro,insecure)\n")
            .unwrap();
    let exports = vec![
        crate::Export::from_spec(&cfg.exports[0], fs),
        crate::Export::from_spec(&cfg.exports[1], ro),
    ];
    let server = crate::NfsServer::with_exports(
        exports,
        crate::ServerConfig {
            handle_secret: crate::handle::HandleSecret::from_bytes([1; 32]),
            ..crate::ServerConfig::default()
        },
    );
    let pseudo = PseudoFs::new(
        server.exports(),
        &server.config().handle_secret,
        false,
        rnfs_vfs::Timestamp { secs: 1, nsecs: 0 },
    );
    (server, pseudo)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{exports, NfsServer, ServerConfig};
    use rnfs_proto::rpc::AuthSysParams;
    use rnfs_vfs::memory::MemFs;
    use rnfs_vfs::{Backend, SetAttr};
    use rnfs_xdr::{VarArray, XdrString};

    const EXPORTS: &str = "\
/srv/a 10.0.0.1(rw,insecure) 10.0.0.9(ro,insecure)
/srv/b 10.0.0.2(rw,insecure)
/data  10.0.0.1(rw,no_root_squash)
/srv   10.0.0.9(rw,insecure)
";

    struct Fixture {
        server: NfsServer,
        fs: Vec<Arc<MemFs>>,
    }

    fn fixture(text: &str) -> Fixture {
        let cfg = exports::parse_exports("t", text).unwrap();
        let mut fs = Vec::new();
        let exports = cfg
            .exports
            .iter()
            .map(|spec| {
                let m = Arc::new(MemFs::new(1 << 20));
                fs.push(m.clone());
                Export::from_spec(spec, m)
            })
            .collect();
        let cfg = ServerConfig {
            handle_secret: HandleSecret::from_bytes([7; 32]),
            ..ServerConfig::default()
        };
        Fixture {
            server: NfsServer::with_exports(exports, cfg),
            fs,
        }
    }

    impl Fixture {
        fn pseudo(&self) -> PseudoFs {
            PseudoFs::new(
                self.server.exports(),
                &self.server.config().handle_secret,
                false,
                Timestamp { secs: 5, nsecs: 6 },
            )
        }
        fn export(&self, path: &str) -> Arc<Export> {
            let t = self.server.exports();
            t.exports.iter().find(|e| e.path == path).unwrap().clone()
        }
    }

    fn caller(addr: &str) -> Caller<'static> {
        static NONE: Auth = Auth::None;
        Caller {
            peer: addr.parse().unwrap(),
            auth: &NONE,
        }
    }

    fn names(fs: &PseudoFs, who: &Caller<'_>, p: &Place) -> Vec<String> {
        let Place::Pseudo(id) = p else {
            panic!("not a pseudo directory: {p:?}")
        };
        fs.entries(who, *id)
            .unwrap()
            .into_iter()
            .map(|(n, _)| String::from_utf8(n).unwrap())
            .collect()
    }

    #[test]
    fn a_client_sees_only_the_way_to_its_exports() {
        let f = fixture(EXPORTS);
        let fs = f.pseudo();
        let one = caller("10.0.0.1:700");
        let root = fs.root(&one).unwrap();
        assert!(matches!(root, Place::Pseudo(_)));
        assert_eq!(names(&fs, &one, &root), ["data", "srv"]);
        let srv = fs.lookup(&one, &root, b"srv").unwrap();
        // /srv is an export, but not for 10.0.0.1: a pseudo directory leading to /srv/a.
        assert_eq!(names(&fs, &one, &srv), ["a"]);
        assert_eq!(fs.lookup(&one, &srv, b"b"), Err(Nfs4Error::NoEnt));
        assert_eq!(fs.lookup(&one, &srv, b"zz"), Err(Nfs4Error::NoEnt));
        let a = fs.lookup(&one, &srv, b"a").unwrap();
        let ea = f.export("/srv/a");
        assert_eq!(
            a,
            Place::Export {
                export: ea.clone(),
                key: ea.fs.root()
            }
        );
        // And back up: the export root's parent is the pseudo directory it is mounted in.
        assert_eq!(fs.lookupp(&one, &a).unwrap(), srv);
        assert_eq!(fs.lookupp(&one, &srv).unwrap(), root);
        assert_eq!(fs.lookupp(&one, &root), Err(Nfs4Error::NoEnt));

        // 10.0.0.2 sees /srv/b only; a stranger sees an empty root.
        let two = caller("10.0.0.2:700");
        let root2 = fs.root(&two).unwrap();
        assert_eq!(names(&fs, &two, &root2), ["srv"]);
        let srv2 = fs.lookup(&two, &root2, b"srv").unwrap();
        assert_eq!(names(&fs, &two, &srv2), ["b"]);
        assert_eq!(fs.lookup(&two, &root2, b"data"), Err(Nfs4Error::NoEnt));
        let stranger = caller("192.168.1.1:700");
        let r = fs.root(&stranger).unwrap();
        assert!(names(&fs, &stranger, &r).is_empty());
        assert_eq!(fs.lookup(&stranger, &r, b"srv"), Err(Nfs4Error::NoEnt));

        // 10.0.0.9 may mount /srv itself: LOOKUP "srv" crosses into that export, and "a"
        // below it is /srv's own directory (no grafting), not the export /srv/a.
        let nine = caller("10.0.0.9:700");
        let srv9 = fs.lookup(&nine, &fs.root(&nine).unwrap(), b"srv").unwrap();
        let es = f.export("/srv");
        assert_eq!(
            srv9,
            Place::Export {
                export: es.clone(),
                key: es.fs.root()
            }
        );
        let ctx = Ctx::default();
        f.fs[3]
            .mkdir(&ctx, &es.fs.root(), b"a", &SetAttr::default())
            .unwrap();
        let inner = fs.lookup(&nine, &srv9, b"a").unwrap();
        assert!(matches!(&inner, Place::Export { export, .. } if export.id == es.id));
    }

    #[test]
    fn handles_round_trip_and_are_checked() {
        let f = fixture(EXPORTS);
        let fs = f.pseudo();
        let one = caller("10.0.0.1:700");
        let root = fs.root(&one).unwrap();
        let srv = fs.lookup(&one, &root, b"srv").unwrap();
        let a = fs.lookup(&one, &srv, b"a").unwrap();
        for p in [&root, &srv, &a] {
            let fh = fs.fh(p);
            assert_eq!(&fs.resolve(&one, &fh).unwrap(), p);
            let mut bad = fh.clone();
            let last = bad.0.len() - 1;
            bad.0[last] ^= 1;
            assert_eq!(fs.resolve(&one, &bad), Err(Nfs4Error::BadHandle));
        }
        // A rebuild (a restart, a reload keeping the node) gives the same handles.
        let again = f.pseudo();
        assert_eq!(again.fh(&srv), fs.fh(&srv));
        assert_eq!(again.resolve(&one, &fs.fh(&srv)).unwrap(), srv);
        // A client who may not see a node, or use an export, is refused with its handle.
        let two = caller("10.0.0.2:700");
        assert_eq!(fs.resolve(&two, &fs.fh(&a)), Err(Nfs4Error::Access));
        let data = fs.lookup(&one, &root, b"data").unwrap();
        assert_eq!(fs.resolve(&two, &fs.fh(&data)), Err(Nfs4Error::Access));
        // A node no longer there is STALE; a removed export is ACCESS, as for NFSv3.
        let fewer = fixture("/srv/b 10.0.0.2(rw,insecure,fsid=77)\n");
        let eb = fewer.export("/srv/b");
        fewer.server.reload(vec![]);
        let gone = PseudoFs::new(
            fewer.server.exports(),
            &fewer.server.config().handle_secret,
            false,
            Timestamp::default(),
        );
        assert_eq!(gone.resolve(&one, &fs.fh(&srv)), Err(Nfs4Error::Stale));
        let fh_b = gone.fh(&Place::Export {
            key: eb.fs.root(),
            export: eb,
        });
        assert_eq!(gone.resolve(&two, &fh_b), Err(Nfs4Error::Access));
        // An export id never served: STALE.
        assert_eq!(fs.resolve(&two, &fh_b), Err(Nfs4Error::Stale));
    }

    #[test]
    fn export_rules_apply_as_for_v3() {
        let f = fixture(EXPORTS);
        let fs = f.pseudo();
        // /data is secure: an unprivileged port is PERM, crossing in and with a handle.
        let low = caller("10.0.0.1:700");
        let high = caller("10.0.0.1:40000");
        let root = fs.root(&low).unwrap();
        let data = fs.lookup(&low, &root, b"data").unwrap();
        assert_eq!(fs.lookup(&high, &root, b"data"), Err(Nfs4Error::Perm));
        assert_eq!(fs.resolve(&high, &fs.fh(&data)), Err(Nfs4Error::Perm));
        assert_eq!(
            names(&fs, &high, &root),
            ["data", "srv"],
            "still listed: LOOKUP says why"
        );
        // Squashing and ro/rw, by the same rule as NFSv3.
        let auth = Auth::Sys(AuthSysParams {
            stamp: 0,
            machine_name: XdrString(b"c".to_vec()),
            uid: 0,
            gid: 0,
            gids: VarArray(vec![0, 5]),
        });
        let root_at = |addr: &str| Caller {
            peer: addr.parse().unwrap(),
            auth: &auth,
        };
        let x = fs
            .scope(&root_at("10.0.0.1:700"), &f.export("/data"))
            .unwrap();
        assert_eq!((x.ctx.creds.uid, x.rw), (0, true), "no_root_squash, rw");
        let x = fs
            .scope(&root_at("10.0.0.1:700"), &f.export("/srv/a"))
            .unwrap();
        assert_eq!(
            (x.ctx.creds.uid, x.ctx.creds.gids.clone(), x.rw),
            (65534, vec![65534, 5], true)
        );
        let x = fs
            .scope(&root_at("10.0.0.9:700"), &f.export("/srv/a"))
            .unwrap();
        assert!(!x.rw, "ro for 10.0.0.9");
        let ro = PseudoFs::new(
            f.server.exports(),
            &f.server.config().handle_secret,
            true,
            Timestamp::default(),
        );
        assert!(
            !ro.scope(&root_at("10.0.0.1:700"), &f.export("/data"))
                .unwrap()
                .rw
        );
        assert_eq!(
            fs.scope(&root_at("10.0.0.2:700"), &f.export("/data")).err(),
            Some(Nfs4Error::Access)
        );
        assert_eq!(fs.flavors(&data), [AUTH_SYS]);
        assert_eq!(fs.secinfo(&low, &root, b"data").unwrap(), [AUTH_SYS]);
        assert_eq!(fs.secinfo(&low, &root, b"nope"), Err(Nfs4Error::NoEnt));
    }

    #[test]
    fn lookups_inside_an_export() {
        let f = fixture("/ *(rw,insecure,no_root_squash)\n");
        let fs = f.pseudo();
        let who = caller("10.1.1.1:3000");
        // The export at `/` is the root itself.
        let root = fs.root(&who).unwrap();
        let e = f.export("/");
        assert_eq!(
            root,
            Place::Export {
                export: e.clone(),
                key: e.fs.root()
            }
        );
        assert_eq!(fs.lookupp(&who, &root), Err(Nfs4Error::NoEnt));
        let ra = fs.attrs(&who, &root).unwrap();
        assert_eq!(ra.mounted_on_fileid, ra.attr.fileid);
        let ctx = Ctx::default();
        let m = &f.fs[0];
        let (d, _) = m.mkdir(&ctx, &m.root(), b"d", &SetAttr::default()).unwrap();
        let (l, _) = m
            .symlink(&ctx, &d, b"l", b"/x", &SetAttr::default())
            .unwrap();
        let pd = fs.lookup(&who, &root, b"d").unwrap();
        assert_eq!(
            pd,
            Place::Export {
                export: e.clone(),
                key: d
            }
        );
        assert_eq!(fs.lookupp(&who, &pd).unwrap(), root);
        let pl = fs.lookup(&who, &pd, b"l").unwrap();
        assert_eq!(
            pl,
            Place::Export {
                export: e.clone(),
                key: l
            }
        );
        assert_eq!(fs.lookup(&who, &pl, b"x"), Err(Nfs4Error::Symlink));
        assert_eq!(fs.lookupp(&who, &pl), Err(Nfs4Error::Symlink));
        assert_eq!(fs.lookup(&who, &pd, b"none"), Err(Nfs4Error::NoEnt));
        for (name, err) in [
            (&b""[..], Nfs4Error::Inval),
            (b".", Nfs4Error::BadName),
            (b"..", Nfs4Error::BadName),
            (b"a/b", Nfs4Error::BadName),
            (b"a\0b", Nfs4Error::BadName),
            (&[b'x'; 256][..], Nfs4Error::NameTooLong),
        ] {
            assert_eq!(fs.lookup(&who, &pd, name), Err(err), "{name:?}");
        }
    }

    #[test]
    fn file_systems_and_mount_points() {
        let f = fixture(EXPORTS);
        let fs = f.pseudo();
        let one = caller("10.0.0.1:700");
        let root = fs.root(&one).unwrap();
        let srv = fs.lookup(&one, &root, b"srv").unwrap();
        let a = fs.lookup(&one, &srv, b"a").unwrap();
        let ps = fs.attrs(&one, &srv).unwrap();
        let pr = fs.attrs(&one, &root).unwrap();
        assert_eq!(ps.fsid, PSEUDO_FSID);
        assert_eq!(ps.attr.ftype, FileType::Directory);
        assert_ne!(ps.attr.fileid, pr.attr.fileid);
        assert_eq!(ps.mounted_on_fileid, ps.attr.fileid);
        assert_eq!(
            ps.attr.nlink, 4,
            "2 and a link per node below (a, b), seen or not"
        );
        let pa = fs.attrs(&one, &a).unwrap();
        let ea = f.export("/srv/a");
        assert_eq!(pa.fsid.major, u64::from(ea.id));
        assert_ne!(pa.fsid, PSEUDO_FSID);
        // The export root is mounted on the pseudo node "a": its file id, not the root's.
        let node_a = node_id(b"/srv/a", 0);
        assert_eq!(pa.mounted_on_fileid, node_a);
        assert_ne!(pa.attr.fileid, node_a);
        // Below the root, mounted_on_fileid is the object's own file id.
        let ctx = Ctx::default();
        f.fs[0]
            .mkdir(&ctx, &ea.fs.root(), b"d", &SetAttr::default())
            .unwrap();
        let d = fs.lookup(&one, &a, b"d").unwrap();
        let pd = fs.attrs(&one, &d).unwrap();
        assert_eq!(pd.mounted_on_fileid, pd.attr.fileid);
        assert_eq!(pd.fsid, pa.fsid);
        assert_eq!(fs.fsstat(&one, &srv).unwrap(), FsStat::default());
        assert!(fs.fsstat(&one, &a).unwrap().total_bytes > 0);
    }
}
