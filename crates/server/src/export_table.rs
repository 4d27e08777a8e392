//! The exports a server serves: one [`Export`] per exported file system, and the
//! [`ExportTable`] in force (replaced as a whole on reload).
use crate::{exports, handle, mount};
use rnfs_vfs::Backend;
use std::net::IpAddr;
use std::sync::Arc;

/// One exported file system.
pub struct Export {
    /// Identifier carried in every handle of this export.
    pub id: u16,
    /// The path clients mount (`/` for the simple form).
    pub path: String,
    /// The backend.
    pub fs: Arc<dyn Backend>,
    /// Who may use it, and how.
    pub rules: Vec<exports::ClientRule>,
    /// The host directory, for backends that serve one (reload keeps their backend).
    pub dir: Option<std::path::PathBuf>,
    /// The backend never waits (on a disk, a lock held for long): its calls may run on
    /// the connection's task instead of the blocking pool (see [`Export::never_blocks`]).
    pub never_blocks: bool,
    /// The backend's data calls never wait for a device ([`Backend::data_in_memory`]):
    /// they are classed with metadata calls.
    pub data_in_memory: bool,
    /// The key of this export's handle MACs: derived from the server's secret when a
    /// server takes the export ([`crate::NfsServer::with_exports`], [`crate::NfsServer::reload`]).
    pub(crate) key: handle::HandleKey,
}

impl Export {
    /// An export of `fs` mounted as `path`, open to every client with no squashing (the
    /// simple `rnfs serve PATH` form); see [`Export::with_rules`].
    pub fn new(id: u16, path: impl Into<String>, fs: Arc<dyn Backend>) -> Self {
        let path = path.into();
        let rules = vec![exports::ClientRule {
            matcher: exports::ClientMatch::Any,
            spec: "*".into(),
            options: exports::ExportOptions::open(false),
        }];
        Self {
            id,
            path,
            data_in_memory: fs.data_in_memory(),
            fs,
            rules,
            dir: None,
            never_blocks: false,
            // Replaced by the server's key when a server takes the export.
            key: handle::HandleKey::derive(&handle::HandleSecret::from_bytes([0; 32]), id),
        }
    }

    /// Declares that the backend never waits while it works (the memory backend), so its
    /// calls run on the connection's task with no thread hand-off. Only for backends whose
    /// every call finishes on the CPU: a call that waits there stalls every other call of
    /// its connection.
    pub fn never_blocks(mut self) -> Self {
        self.never_blocks = true;
        self
    }

    /// The export an exports file describes, served by `fs`.
    pub fn from_spec(spec: &exports::ExportSpec, fs: Arc<dyn Backend>) -> Self {
        Self::new(spec.id, spec.name.clone(), fs).with_rules(spec.clients.clone())
    }

    /// Records the host directory the backend serves.
    pub fn with_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    /// This export with its handle key derived from the server's `secret`.
    pub(crate) fn keyed(mut self, secret: &handle::HandleSecret) -> Self {
        self.key = handle::HandleKey::derive(secret, self.id);
        self
    }

    /// Replaces the client rules.
    pub fn with_rules(mut self, rules: Vec<exports::ClientRule>) -> Self {
        self.rules = rules;
        self
    }

    /// The options that apply to a client address, if it may use this export at all.
    pub fn rule_for(&self, ip: IpAddr) -> Option<&exports::ExportOptions> {
        self.rules
            .iter()
            .filter_map(|r| r.matcher.specificity(ip).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| &r.options)
    }
}

/// The exports in force; replaced as a whole on reload.
#[derive(Default)]
pub struct ExportTable {
    /// Exports, in configuration order.
    pub exports: Vec<Arc<Export>>,
    /// Ids of exports removed by a reload: their handles get ACCES, not STALE.
    pub(crate) retired: std::collections::HashSet<u16>,
}

impl ExportTable {
    /// Whether no export's backend ever blocks.
    pub(crate) fn never_blocks(&self) -> bool {
        self.exports.iter().all(|e| e.never_blocks)
    }

    /// Whether every export's data lives in memory (see [`Export::data_in_memory`]).
    pub(crate) fn data_in_memory(&self) -> bool {
        self.exports
            .iter()
            .all(|e| e.never_blocks || e.data_in_memory)
    }

    /// The export with handle id `id`.
    pub fn by_id(&self, id: u16) -> Option<&Arc<Export>> {
        self.exports.iter().find(|e| e.id == id)
    }

    /// The export whose mount path is the longest prefix of `path` (by components), and
    /// the rest of the path below it. `path` is in its [canonical](mount::canonical) form;
    /// so are the export paths compared with it.
    pub fn by_path<'p>(&self, path: &'p [u8]) -> Option<(&Arc<Export>, &'p [u8])> {
        let mut best: Option<(&Arc<Export>, &[u8])> = None;
        for e in &self.exports {
            let Some(ep) = mount::canonical(e.path.as_bytes()) else {
                continue;
            };
            let ep = if ep == b"/" { &[][..] } else { &ep[..] };
            let Some(rest) = path.strip_prefix(ep) else {
                continue;
            };
            if !rest.is_empty() && rest[0] != b'/' {
                continue;
            }
            if best.is_none_or(|(b, _)| b.path.len() < e.path.len()) {
                best = Some((e, rest));
            }
        }
        best
    }
}
