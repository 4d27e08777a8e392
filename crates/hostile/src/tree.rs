//! The scripted file tree a mode serves: a few nodes, listings that may lie about their
//! names, LOOKUPs that may answer differently the second time, and files whose size may
//! lie. Free of I/O; the procedures in `nfs` read it.
use crate::Mode;
use std::collections::HashMap;

/// Where a node is: its index in [`Tree::nodes`].
pub(crate) type NodeId = usize;

/// What a node is.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A directory and how it lists.
    Dir(Listing),
    /// A regular file.
    File(Content),
    /// A symbolic link and its target.
    Link(Vec<u8>),
}

/// A regular file's data, as READ answers it.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of a pattern (byte `i` is `i % 251`).
    Pattern(u64),
    /// Claims `size` bytes, but every READ returns no data and end of file.
    Lie(u64),
}

impl Content {
    /// The size GETATTR reports.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Pattern(n) | Content::Lie(n) => *n,
        }
    }

    /// READ of `count` bytes at `off`: the data and whether it reaches the end of file.
    pub(crate) fn read(&self, off: u64, count: u32) -> (Vec<u8>, bool) {
        let size = match self {
            Content::Lie(_) => return (Vec::new(), true),
            c => c.size(),
        };
        let from = off.min(size);
        let to = off.saturating_add(u64::from(count)).min(size);
        let data = match self {
            Content::Bytes(b) => b[from as usize..to as usize].to_vec(),
            _ => (from..to).map(|i| (i % 251) as u8).collect(),
        };
        (data, to >= size)
    }
}

/// How a directory answers READDIR and READDIRPLUS.
#[derive(Debug, Clone)]
pub(crate) enum Listing {
    /// Its entries (names exactly as sent), a few per reply, cookies 1, 2, ..., then EOF.
    Entries(Vec<(Vec<u8>, NodeId)>),
    /// From cookie 0: two entries ending at cookie 2, no EOF; from any other cookie: two
    /// more entries whose last cookie is 2 again, no EOF. The client is sent back to a
    /// chunk it already has, forever.
    CookieLoop,
    /// No entries and no EOF.
    EmptyChunk,
    /// [`ENDLESS_CHUNK`] fresh file names per reply, cookies counting up, never EOF.
    Endless,
}

/// Entries per reply of an endless listing.
pub(crate) const ENDLESS_CHUNK: u64 = 128;

/// One node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) parent: NodeId,
}

/// The file tree of a mode.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) nodes: Vec<Node>,
    /// LOOKUPs answered by a sequence: the `n`-th LOOKUP of `(dir, name)` answers the
    /// `n`-th node (the last one from then on).
    shifting: HashMap<(NodeId, Vec<u8>), Vec<NodeId>>,
    /// How many times each shifting name was looked up.
    looked_up: HashMap<(NodeId, Vec<u8>), usize>,
    /// What every unknown name resolves to: a small file saying "pwned".
    pub(crate) ghost: NodeId,
}

/// The root directory.
pub(crate) const ROOT: NodeId = 0;

/// What LOOKUP finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A node of the tree.
    Node(NodeId),
    /// File number `n` of an endless listing.
    Endless(u64),
}

impl Tree {
    fn empty() -> Self {
        let mut t = Tree {
            nodes: vec![Node {
                kind: Kind::Dir(Listing::Entries(Vec::new())),
                parent: ROOT,
            }],
            shifting: HashMap::new(),
            looked_up: HashMap::new(),
            ghost: 0,
        };
        t.ghost = t.add(ROOT, Kind::File(Content::Bytes(b"pwned\n".to_vec())));
        t
    }

    /// Adds a node under `parent` without listing it.
    fn add(&mut self, parent: NodeId, kind: Kind) -> NodeId {
        self.nodes.push(Node { kind, parent });
        self.nodes.len() - 1
    }

    /// Adds a node under `parent`, listed as `name`.
    fn put(&mut self, parent: NodeId, name: &[u8], kind: Kind) -> NodeId {
        let id = self.add(parent, kind);
        self.list(parent, name, id);
        id
    }

    /// Lists `id` in `dir` as `name`.
    fn list(&mut self, dir: NodeId, name: &[u8], id: NodeId) {
        if let Kind::Dir(Listing::Entries(v)) = &mut self.nodes[dir].kind {
            v.push((name.to_vec(), id));
        }
    }

    fn dir() -> Kind {
        Kind::Dir(Listing::Entries(Vec::new()))
    }

    fn file(data: &[u8]) -> Kind {
        Kind::File(Content::Bytes(data.to_vec()))
    }

    /// The tree `mode` serves. Every mode has a directory `/top` where its trick is.
    pub(crate) fn for_mode(mode: Mode) -> Self {
        let mut t = Tree::empty();
        let top = t.put(ROOT, b"top", Tree::dir());
        match mode {
            Mode::DotDot => {
                t.put(top, b"ok.txt", Tree::file(b"ok\n"));
                t.put(top, b"../../escaped-dotdot", Tree::file(b"pwned\n"));
            }
            Mode::LinkThenEntry => {
                t.put(top, b"ok.txt", Tree::file(b"ok\n"));
                t.put(top, b"l", Kind::Link(b"../../victim".to_vec()));
                t.put(top, b"l/pwned-through-link", Tree::file(b"pwned\n"));
            }
            Mode::EtcSlash => {
                t.put(top, b"ok.txt", Tree::file(b"ok\n"));
                // `etc` is listed as a link, and its first LOOKUP says so; from then on it
                // is a directory, also listed as `etc/`.
                let link = t.put(top, b"etc", Kind::Link(b"../../victim".to_vec()));
                let dir = t.add(top, Tree::dir());
                t.list(top, b"etc/", dir);
                t.put(dir, b"pwned-through-etc", Tree::file(b"pwned\n"));
                t.shifting.insert((top, b"etc".to_vec()), vec![link, dir]);
            }
            Mode::EmptyName => {
                t.put(top, b"a.txt", Tree::file(b"a\n"));
                // An empty name that is the directory itself.
                t.list(top, b"", top);
            }
            Mode::CookieLoop => t.nodes[top].kind = Kind::Dir(Listing::CookieLoop),
            Mode::EmptyChunk => t.nodes[top].kind = Kind::Dir(Listing::EmptyChunk),
            Mode::Endless => t.nodes[top].kind = Kind::Dir(Listing::Endless),
            Mode::HugeSize => {
                t.put(top, b"huge", Kind::File(Content::Lie(1 << 40)));
            }
            Mode::BadNames => {
                t.put(top, b"ok.txt", Tree::file(b"ok\n"));
                let f = t.put(top, b"a/b", Tree::file(b"pwned\n"));
                t.list(top, b"", f);
                t.list(top, b"nul\0byte", f);
                t.list(top, b"..", ROOT);
                t.list(top, b".", top);
                t.put(top, b"zz-last.txt", Tree::file(b"last\n"));
            }
            Mode::ControlNames => {
                t.put(top, b"ok.txt", Tree::file(b"ok\n"));
                t.put(top, b"red\x1b[31mX", Tree::file(b"x\n"));
                t.put(top, b"new\nline", Tree::file(b"x\n"));
                t.put(top, b"bell\x07", Tree::file(b"x\n"));
                t.put(top, b"back\\slash", Tree::file(b"x\n"));
                t.put(top, b"bad-utf8-\xff", Tree::file(b"x\n"));
            }
            Mode::Plain
            | Mode::AbsurdFsstat
            | Mode::AcceptClose
            | Mode::HalfReply
            | Mode::HugeRecord
            | Mode::OneByteFragments => {
                t.put(top, b"a.txt", Tree::file(b"hello\n"));
                let sub = t.put(top, b"sub", Tree::dir());
                t.put(sub, b"b.txt", Tree::file(b"world\n"));
                t.put(top, b"link", Kind::Link(b"a.txt".to_vec()));
                t.put(top, b"big1m", Kind::File(Content::Pattern(1 << 20)));
            }
        }
        t
    }

    /// LOOKUP of `name` in `dir`: `.` and `..` as usual, a listed or shifting name, and
    /// anything else the ghost file (a hostile server may answer any name).
    pub(crate) fn lookup(&mut self, dir: NodeId, name: &[u8]) -> Option<Found> {
        let node = self.nodes.get(dir)?;
        match name {
            b"." => return Some(Found::Node(dir)),
            b".." => return Some(Found::Node(node.parent)),
            _ => {}
        }
        let key = (dir, name.to_vec());
        if let Some(seq) = self.shifting.get(&key) {
            let n = self.looked_up.entry(key).or_insert(0);
            let id = seq.get(*n).or(seq.last()).copied();
            *n += 1;
            return id.map(Found::Node);
        }
        match &node.kind {
            Kind::Dir(Listing::Entries(v)) => {
                let hit = v.iter().find(|(n, _)| n.as_slice() == name).map(|e| e.1);
                Some(Found::Node(hit.unwrap_or(self.ghost)))
            }
            Kind::Dir(Listing::Endless) => {
                let n = std::str::from_utf8(name)
                    .ok()
                    .and_then(|s| s.strip_prefix('f'))
                    .and_then(|s| s.parse().ok());
                Some(n.map_or(Found::Node(self.ghost), Found::Endless))
            }
            _ => Some(Found::Node(self.ghost)),
        }
    }
}

/// One entry of a READDIR(PLUS) reply: name, what it is, its cookie.
pub(crate) type ListEntry = (Vec<u8>, Found, u64);

/// Entries of a normal listing per reply (small, so that cookies are used).
const PER_REPLY: usize = 3;

/// The entries of `listing` from `cookie`, and whether that is the end.
pub(crate) fn list(listing: &Listing, cookie: u64) -> (Vec<ListEntry>, bool) {
    match listing {
        Listing::Entries(v) => {
            let from = usize::try_from(cookie).unwrap_or(usize::MAX).min(v.len());
            let to = (from + PER_REPLY).min(v.len());
            let out = v[from..to]
                .iter()
                .enumerate()
                .map(|(i, (n, id))| (n.clone(), Found::Node(*id), (from + i + 1) as u64))
                .collect();
            (out, to == v.len())
        }
        Listing::CookieLoop => {
            let names: [(&[u8], u64); 2] = if cookie == 0 {
                [(b"a", 1), (b"b", 2)]
            } else {
                [(b"c", 3), (b"d", 2)]
            };
            let out = names
                .iter()
                .map(|(n, c)| (n.to_vec(), Found::Endless(*c), *c))
                .collect();
            (out, false)
        }
        Listing::EmptyChunk => (Vec::new(), false),
        Listing::Endless => {
            let out = (cookie..cookie + ENDLESS_CHUNK)
                .map(|n| (format!("f{n}").into_bytes(), Found::Endless(n), n + 1))
                .collect();
            (out, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_name_is_a_link_first_then_a_directory() {
        let mut t = Tree::for_mode(Mode::EtcSlash);
        let top = match t.lookup(ROOT, b"top") {
            Some(Found::Node(n)) => n,
            other => panic!("{other:?}"),
        };
        let kind = |t: &Tree, f: Option<Found>| match f {
            Some(Found::Node(n)) => match t.nodes[n].kind {
                Kind::Link(_) => "link",
                Kind::Dir(_) => "dir",
                Kind::File(_) => "file",
            },
            _ => "none",
        };
        let first = t.lookup(top, b"etc");
        assert_eq!(kind(&t, first), "link");
        let second = t.lookup(top, b"etc");
        assert_eq!(kind(&t, second), "dir");
        let third = t.lookup(top, b"etc");
        assert_eq!(kind(&t, third), "dir");
    }

    #[test]
    fn listings_page_and_loop_as_scripted() {
        let l = Listing::Entries((0..7).map(|i| (vec![b'a' + i], ROOT)).collect());
        let (a, eof) = list(&l, 0);
        assert_eq!((a.len(), eof, a[2].2), (3, false, 3));
        let (b, eof) = list(&l, 6);
        assert_eq!((b.len(), eof, b[0].2), (1, true, 7));
        let (c, eof) = list(&Listing::CookieLoop, 2);
        assert_eq!((c.last().map(|e| e.2), eof), (Some(2), false));
        let (d, _) = list(&Listing::Endless, 1000);
        assert_eq!(d[0].0, b"f1000".to_vec());
        assert_eq!(d.len() as u64, ENDLESS_CHUNK);
    }

    #[test]
    fn lying_file_claims_a_size_and_reads_nothing() {
        let c = Content::Lie(1 << 40);
        assert_eq!(c.size(), 1 << 40);
        assert_eq!(c.read(0, 4096), (Vec::new(), true));
        let p = Content::Pattern(10);
        assert_eq!(p.read(8, 100), (vec![8, 9], true));
    }
}
