//! MOUNT v3 procedures (RFC 1813 appendix I) and the mount list they keep.
//!
//! **The mount list** (what DUMP reports) is advisory, as knfsd's rmtab is: RFC 1813 I.5.2
//! warns that it may be inaccurate, and nothing else depends on it. So it is bounded, and
//! a full list forgets its oldest entries rather than refusing a mount:
//! - paths are recorded in their [canonical](canonical) form (`/srv`, `//srv/`, `/./srv`
//!   are one entry), as mountd records the `realpath` of what it mounted;
//! - each client address keeps at most [`crate::ServerConfig::mounts_per_client`] entries (its
//!   oldest goes first), and the whole list at most [`crate::ServerConfig::mounts_total`] (the
//!   oldest of all goes first); refreshing an entry (a second MNT) makes it the newest.
//!
//! **What a caller may see.** nfs-utils' mountd answers DUMP and EXPORT to anyone with
//! everything it has; Ganesha lists in EXPORT only the exports the caller may use. rnfs
//! does the latter for both: EXPORT lists the exports whose rules admit the caller's
//! address, and DUMP lists only mounts of those exports (so a host no export admits
//! learns nothing, not even who else mounts). No reply is larger than [`MAX_REPLY`]
//! bytes: a longer list is cut there, and the cut is logged.
//!
//! `..` in a MNT path is refused (MNT3ERR_INVAL) rather than resolved lexically: resolving
//! it by text would disagree with the file system wherever a component is a symbolic link
//! (mountd resolves links; rnfs never follows them), and no client needs it.
use super::status;
use crate::route::{Env, Peek, Unit};
use crate::stats::{Counters, CountersSnapshot};
use crate::{handle, Denied, NfsServer, Req};
use rnfs_proto::mount3::*;
use rnfs_proto::rpc::{ReplyStatus, AUTH_SYS};
use rnfs_rpc::message::{reply_error, reply_success, reply_with};
use rnfs_rpc::transport::Blocking;
use rnfs_vfs::FileType;
use rnfs_xdr::{VarArray, Xdr};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest DUMP or EXPORT reply, in bytes (RPC header included).
pub const MAX_REPLY: usize = 256 * 1024;

/// MOUNT v3 procedure names, by number.
pub const MOUNT3_PROCS: [&str; 6] = ["null", "mnt", "dump", "umnt", "umntall", "export"];

/// The routing unit of MOUNT version 3 (see [`crate::route`]).
#[derive(Debug)]
pub struct Mount3 {
    counters: Counters,
}

/// The unit, its counters at zero.
impl Default for Mount3 {
    fn default() -> Self {
        Self {
            counters: Counters::new(&MOUNT3_PROCS),
        }
    }
}

impl Unit for Mount3 {
    fn program(&self) -> u32 {
        PROGRAM
    }

    fn version(&self) -> u32 {
        VERSION
    }

    /// NULL (and every call, when no backend ever blocks) at once; the others look up
    /// paths in the backend, rarely waiting.
    fn classify(&self, call: &Peek<'_>, env: &Env) -> Blocking {
        if env.never_blocks || call.proc_ == Proc::Null as u32 {
            return Blocking::Never;
        }
        Blocking::Rarely
    }

    /// Every call is counted, whatever its reply; none goes through the reply cache (MNT
    /// and UMNT only change the advisory mount list, and running one again is harmless).
    fn dispatch(&self, s: &NfsServer, req: &Req<'_>, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let Some(p) = Proc::from_u32(proc_) else {
            return reply_error(xid, ReplyStatus::ProcUnavail);
        };
        self.counters.call(p as usize);
        dispatch(s, req, xid, p, args)
    }

    fn counters(&self) -> Vec<CountersSnapshot> {
        vec![self.counters.snapshot()]
    }

    fn metrics(&self, o: &mut String) {
        use std::fmt::Write;
        crate::admin::family(
            o,
            "rnfs_mount3_calls_total",
            "counter",
            "MOUNT v3 calls by procedure.",
        );
        let st = self.counters.snapshot();
        for (name, n) in st.names.iter().zip(&st.calls) {
            let _ = writeln!(o, "rnfs_mount3_calls_total{{proc=\"{name}\"}} {n}");
        }
    }
}

/// Decodes, runs and encodes one MOUNT call.
pub fn dispatch(s: &NfsServer, req: &Req<'_>, xid: u32, proc_: Proc, args: &[u8]) -> Vec<u8> {
    let garbage = || reply_error(xid, ReplyStatus::GarbageArgs);
    let peer = crate::exports::canonical(req.conn.peer.ip());
    match proc_ {
        Proc::Null => match rnfs_xdr::from_bytes::<()>(args) {
            Ok(()) => reply_with(xid, &()),
            Err(_) => garbage(),
        },
        Proc::Mnt => match rnfs_xdr::from_bytes::<DirPath>(args) {
            Ok(path) => {
                let res = match canonical(&path.0) {
                    Some(p) => {
                        let res = mnt(s, req, &p);
                        if let MountRes::Ok(_) = res {
                            let p = String::from_utf8_lossy(&p).into_owned();
                            s.mounts.lock().add(peer, p);
                        }
                        res
                    }
                    None => MountRes::Err(MountStat3::Inval),
                };
                reply_with(xid, &res)
            }
            Err(_) => garbage(),
        },
        Proc::Dump => {
            let table = s.exports();
            let visible = |path: &str| {
                table
                    .by_path(path.as_bytes())
                    .is_some_and(|(e, _)| e.rule_for(peer).is_some())
            };
            let list: Vec<MountBody> = s
                .mounts
                .lock()
                .iter()
                .filter(|(_, p)| visible(p))
                .filter_map(|(ip, p)| {
                    Some(MountBody {
                        hostname: Name::new(ip.to_string()).ok()?,
                        directory: DirPath::new(p.clone()).ok()?,
                    })
                })
                .collect();
            bounded_list(s, xid, &list, "DUMP")
        }
        Proc::Umnt => match rnfs_xdr::from_bytes::<DirPath>(args) {
            Ok(path) => {
                if let Some(p) = canonical(&path.0) {
                    s.mounts.lock().remove(peer, &String::from_utf8_lossy(&p));
                }
                reply_with(xid, &())
            }
            Err(_) => garbage(),
        },
        Proc::Umntall => {
            s.mounts.lock().remove_client(peer);
            reply_with(xid, &())
        }
        Proc::Export => {
            let table = s.exports();
            let nodes: Vec<ExportNode> = table
                .exports
                .iter()
                .filter(|e| e.rule_for(peer).is_some())
                .filter_map(|e| {
                    Some(ExportNode {
                        dir: DirPath::new(e.path.clone()).ok()?,
                        groups: e
                            .rules
                            .iter()
                            .filter_map(|r| Name::new(r.spec.clone()).ok())
                            .collect(),
                    })
                })
                .collect();
            bounded_list(s, xid, &nodes, "EXPORT")
        }
    }
}

/// The reply carrying `items` as an XDR list, cut before it would pass [`MAX_REPLY`]
/// bytes. A cut is logged for the first time and then every thousandth time (a client can
/// ask as often as it likes; the log must not grow with it).
fn bounded_list<T: Xdr>(s: &NfsServer, xid: u32, items: &[T], what: &str) -> Vec<u8> {
    let mut w = reply_success(xid, 4096);
    let mut kept = 0;
    for item in items {
        let bytes = rnfs_xdr::to_bytes(item);
        // This item's "more follows" word and body, then the closing word.
        if w.len() + 4 + bytes.len() + 4 > MAX_REPLY {
            break;
        }
        w.bool(true);
        w.raw(&bytes);
        kept += 1;
    }
    w.bool(false);
    if kept < items.len() {
        let n = s.mount_replies_cut.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            tracing::warn!(
                kept,
                total = items.len(),
                max_bytes = MAX_REPLY,
                "{what} reply cut to its size limit (logged once per 1000 cuts)"
            );
        }
    }
    w.into_inner()
}

/// The canonical form of a MOUNT path: `/` and the components, each once, separated by
/// one `/`; empty components and `.` dropped, so `/`, `//`, `/./` and `` are all `/`, and
/// `/srv/`, `//srv` and `/srv/.` are `/srv`. `None` when a component is `..` (see the
/// module documentation).
pub fn canonical(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// MNT: the handle of `path` (canonical), an export's mount path or a directory below it.
/// Each component is looked up without following symbolic links, so MNT cannot leave the
/// export.
fn mnt(s: &NfsServer, req: &Req<'_>, path: &[u8]) -> MountRes {
    let table = s.exports();
    let Some((export, rest)) = table.by_path(path) else {
        return MountRes::Err(MountStat3::NoEnt);
    };
    let scope = match s.admit(export, req) {
        Ok(x) => x,
        Err(Denied::NotListed) => {
            tracing::info!(peer = %req.conn.peer, "MNT refused: no rule of the export lists this client");
            return MountRes::Err(MountStat3::Acces);
        }
        Err(Denied::InsecurePort) => {
            tracing::info!(peer = %req.conn.peer, "MNT from an unprivileged port refused (export is secure)");
            return MountRes::Err(MountStat3::Acces);
        }
    };
    let fs = &export.fs;
    let mut key = fs.root();
    for comp in rest.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        match fs.lookup(&scope.ctx, &key, comp) {
            Ok((k, a)) if a.ftype == FileType::Directory => key = k,
            Ok(_) => return MountRes::Err(MountStat3::NotDir),
            Err(e) => return MountRes::Err(status::mount3(e)),
        }
    }
    if let Err(e) = fs.getattr(&scope.ctx, &key) {
        return MountRes::Err(status::mount3(e));
    }
    MountRes::Ok(MountResOk {
        fhandle: handle::encode(export, &key),
        auth_flavors: VarArray(vec![AUTH_SYS]),
    })
}

/// Who mounted what, oldest first, bounded per client and in total (see the module
/// documentation). Operations are linear in the list's length, which the bounds keep small
/// (thousands); MNT is rare next to NFS calls.
#[derive(Debug)]
pub(crate) struct MountList {
    entries: VecDeque<(IpAddr, String)>,
    per_client: usize,
    total: usize,
    /// Entries forgotten to make room.
    dropped: AtomicU64,
}

impl MountList {
    /// An empty list of at most `per_client` entries per client and `total` in all.
    pub(crate) fn new(per_client: usize, total: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            per_client,
            total,
            dropped: AtomicU64::new(0),
        }
    }

    /// Records that `ip` mounted `path`, forgetting an older entry if a bound is reached.
    pub(crate) fn add(&mut self, ip: IpAddr, path: String) {
        if self.per_client == 0 || self.total == 0 {
            return;
        }
        if let Some(i) = self
            .entries
            .iter()
            .position(|(a, p)| *a == ip && *p == path)
        {
            self.entries.remove(i);
        } else if self.entries.iter().filter(|(a, _)| *a == ip).count() >= self.per_client {
            if let Some(i) = self.entries.iter().position(|(a, _)| *a == ip) {
                self.entries.remove(i);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        } else if self.entries.len() >= self.total {
            self.entries.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.entries.push_back((ip, path));
    }

    /// Forgets that `ip` mounted `path`.
    pub(crate) fn remove(&mut self, ip: IpAddr, path: &str) {
        self.entries.retain(|(a, p)| !(*a == ip && p == path));
    }

    /// Forgets every mount of `ip`.
    pub(crate) fn remove_client(&mut self, ip: IpAddr) {
        self.entries.retain(|(a, _)| *a != ip);
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(IpAddr, String)> {
        self.entries.iter()
    }

    /// How many entries the list holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many entries were forgotten to make room, since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn spellings_of_a_path_are_one_path() {
        for p in ["/", "//", "/./", "", ".", "/.//./"] {
            assert_eq!(canonical(p.as_bytes()).as_deref(), Some(&b"/"[..]), "{p:?}");
        }
        for p in ["/srv/a", "//srv/a/", "/./srv//a/.", "srv/a", "/srv/./a//"] {
            assert_eq!(
                canonical(p.as_bytes()).as_deref(),
                Some(&b"/srv/a"[..]),
                "{p:?}"
            );
        }
        for p in ["/..", "/srv/../etc", "..", "/srv/a/.."] {
            assert_eq!(canonical(p.as_bytes()), None, "{p:?}");
        }
        // `...` and names merely containing dots are names.
        assert_eq!(canonical(b"/.../a..b").as_deref(), Some(&b"/.../a..b"[..]));
    }

    #[test]
    fn a_client_at_its_bound_loses_its_oldest_entry() {
        let mut l = MountList::new(3, 100);
        for i in 0..5 {
            l.add(ip(1), format!("/e{i}"));
        }
        l.add(ip(2), "/x".into());
        let of = |l: &MountList, n: u8| -> Vec<String> {
            l.iter()
                .filter(|(a, _)| *a == ip(n))
                .map(|(_, p)| p.clone())
                .collect()
        };
        assert_eq!(of(&l, 1), ["/e2", "/e3", "/e4"]);
        assert_eq!(of(&l, 2), ["/x"]);
        assert_eq!(l.dropped(), 2);
        // A repeated MNT refreshes its entry rather than adding one.
        l.add(ip(1), "/e2".into());
        assert_eq!(of(&l, 1), ["/e3", "/e4", "/e2"]);
        assert_eq!(l.len(), 4);
        l.remove(ip(1), "/e3");
        assert_eq!(of(&l, 1), ["/e4", "/e2"]);
        l.remove_client(ip(1));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_full_list_loses_its_oldest_entry() {
        let mut l = MountList::new(10, 4);
        for n in 0..6 {
            l.add(ip(n), "/".into());
        }
        let hosts: Vec<IpAddr> = l.iter().map(|(a, _)| *a).collect();
        assert_eq!(hosts, [ip(2), ip(3), ip(4), ip(5)]);
        assert_eq!(l.dropped(), 2);
        // Bounds of zero keep nothing.
        let mut l = MountList::new(0, 4);
        l.add(ip(1), "/".into());
        assert_eq!(l.len(), 0);
    }
}
