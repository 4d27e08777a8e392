//! A scripted hostile NFSv3 server, for testing the rnfs client, the `rnfs` tools and the
//! FUSE mount against a peer that lies (issue 13).
//!
//! It answers MOUNT (MNT of any path gives the root) and the NFSv3 procedures a reader
//! needs (NULL, GETATTR, LOOKUP, ACCESS, READLINK, READ, READDIR, READDIRPLUS, FSSTAT,
//! FSINFO, PATHCONF) as a normal read-only server would, except in the one respect its
//! [`Mode`] names. Every mode serves a directory `/top` where its trick is; an unknown name
//! looked up anywhere is a small file saying "pwned" (a hostile server may answer any
//! LOOKUP), so that a client that follows a bad name finds something to write.
//!
//! From a test: `let h = Hostile::start(Mode::DotDot)?; h.url("/top")` gives an
//! `nfs://127.0.0.1:PORT/top?version=3&nfsport=PORT&mountport=PORT` URL; the server stops
//! when `h` is dropped. From a shell: `rnfs-hostile MODE [--listen 127.0.0.1:PORT]` prints
//! the URL and serves until killed.
#![forbid(unsafe_code)]

mod nfs;
mod tree;

use rnfs_rpc::record::{encode_record, RecordDecoder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does wrong (one misbehaviour per mode; the finding of issue 13 each
/// one reproduces in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Nothing: `/top` holds `a.txt`, `sub/b.txt`, `link -> a.txt` and `big1m` (1 MiB).
    Plain,
    /// `/top` lists a file named `../../escaped-dotdot` (1).
    DotDot,
    /// `/top` lists `l -> ../../victim`, then a file named `l/pwned-through-link` (1).
    LinkThenEntry,
    /// `/top` lists `etc -> ../../victim`, whose first LOOKUP says link and later ones a
    /// directory, then a directory named `etc/` holding `pwned-through-etc` (1).
    EtcSlash,
    /// `/top` lists an entry with an empty name that is `/top` itself (2).
    EmptyName,
    /// `/top`'s listing sends the client back to a cookie it already used, never EOF (3).
    CookieLoop,
    /// `/top`'s listing is a reply with no entries and no EOF (3).
    EmptyChunk,
    /// `/top`'s listing is fresh file names forever, never EOF (3).
    Endless,
    /// The tree of `Plain`, but every NFS call other than NULL and FSINFO is answered by
    /// closing the connection (4).
    AcceptClose,
    /// The tree of `Plain`, but NFS calls other than NULL and FSINFO get half a reply, then
    /// the connection is closed (4).
    HalfReply,
    /// The tree of `Plain`, but NFS calls other than NULL and FSINFO get a record header
    /// announcing 2 GiB, then the connection is closed (4).
    HugeRecord,
    /// The tree of `Plain`, every reply sent in fragments of one byte (5).
    OneByteFragments,
    /// `/top/huge` claims 2^40 bytes; every READ returns no data and EOF (6).
    HugeSize,
    /// `/top` lists `ok.txt`, then names with `/`, empty, with NUL, `.` and `..`, then
    /// `zz-last.txt` (6).
    BadNames,
    /// `/top` lists names with control characters (escape, newline, bell), a backslash and
    /// a byte that is not UTF-8, and `ok.txt` (6).
    ControlNames,
    /// The tree of `Plain`; FSSTAT says more free than total and more available than
    /// free (6).
    AbsurdFsstat,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 16] = [
        Mode::Plain,
        Mode::DotDot,
        Mode::LinkThenEntry,
        Mode::EtcSlash,
        Mode::EmptyName,
        Mode::CookieLoop,
        Mode::EmptyChunk,
        Mode::Endless,
        Mode::AcceptClose,
        Mode::HalfReply,
        Mode::HugeRecord,
        Mode::OneByteFragments,
        Mode::HugeSize,
        Mode::BadNames,
        Mode::ControlNames,
        Mode::AbsurdFsstat,
    ];

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::DotDot => "dotdot",
            Mode::LinkThenEntry => "link-then-entry",
            Mode::EtcSlash => "etc-slash",
            Mode::EmptyName => "empty-name",
            Mode::CookieLoop => "cookie-loop",
            Mode::EmptyChunk => "empty-chunk",
            Mode::Endless => "endless",
            Mode::AcceptClose => "accept-close",
            Mode::HalfReply => "half-reply",
            Mode::HugeRecord => "huge-record",
            Mode::OneByteFragments => "one-byte-fragments",
            Mode::HugeSize => "huge-size",
            Mode::BadNames => "bad-names",
            Mode::ControlNames => "control-names",
            Mode::AbsurdFsstat => "absurd-fsstat",
        }
    }

    /// Whether NFS calls other than NULL and FSINFO meet the mode's connection fault.
    fn breaks(self, prog: u32, proc_: u32) -> bool {
        use rnfs_proto::nfs3::{Proc, PROGRAM};
        matches!(self, Mode::AcceptClose | Mode::HalfReply | Mode::HugeRecord)
            && prog == PROGRAM
            && proc_ != Proc::Null as u32
            && proc_ != Proc::Fsinfo as u32
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mode {s:?} (modes: {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server saw, so that a test can check the event under test happened.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Calls received (answered or not).
    pub calls: AtomicU64,
    /// READDIR and READDIRPLUS calls received.
    pub readdirs: AtomicU64,
    /// READ calls received.
    pub reads: AtomicU64,
}

/// Largest call accepted (the server reads small calls only).
const MAX_CALL: usize = 64 << 10;

/// Serves `mode` on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    mode: Mode,
    stats: Arc<Stats>,
    stop: impl std::future::Future<Output = ()>,
) {
    let tree = Arc::new(Mutex::new(tree::Tree::for_mode(mode)));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => {
                let Ok((s, _)) = a else { continue };
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let (tree, stats) = (tree.clone(), stats.clone());
                tokio::spawn(async move {
                    let _ = connection(s, mode, tree, stats).await;
                });
            }
        }
    }
}

/// Answers the calls of one connection in order.
async fn connection(
    mut s: TcpStream,
    mode: Mode,
    tree: Arc<Mutex<tree::Tree>>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut dec = RecordDecoder::new(MAX_CALL);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while let Some(msg) = dec
            .next_record()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            stats.calls.fetch_add(1, Ordering::Relaxed);
            let Ok(call) = rnfs_rpc::message::decode_call(&msg) else {
                continue;
            };
            let (prog, proc_) = (call.header.prog, call.header.proc_);
            if prog == rnfs_proto::nfs3::PROGRAM {
                let p = rnfs_proto::nfs3::Proc::from_u32(proc_);
                if matches!(
                    p,
                    Some(rnfs_proto::nfs3::Proc::Readdir | rnfs_proto::nfs3::Proc::Readdirplus)
                ) {
                    stats.readdirs.fetch_add(1, Ordering::Relaxed);
                }
                if p == Some(rnfs_proto::nfs3::Proc::Read) {
                    stats.reads.fetch_add(1, Ordering::Relaxed);
                }
            }
            let reply = {
                let mut t = tree.lock().unwrap_or_else(|e| e.into_inner());
                nfs::answer(&mut t, mode, &call)
            };
            let Some(reply) = reply else { continue };
            if mode.breaks(prog, proc_) {
                match mode {
                    Mode::HalfReply => {
                        let rec = encode_record(&reply, usize::MAX);
                        s.write_all(&rec[..rec.len() / 2]).await?;
                    }
                    Mode::HugeRecord => {
                        s.write_all(&0xffff_ffffu32.to_be_bytes()).await?;
                        s.write_all(&reply).await?;
                    }
                    _ => {}
                }
                s.flush().await?;
                return Ok(());
            }
            let frag = if mode == Mode::OneByteFragments {
                1
            } else {
                usize::MAX
            };
            s.write_all(&encode_record(&reply, frag)).await?;
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        dec.push(&buf[..n]);
    }
}

/// A hostile server running on a thread of its own; stopped when dropped.
#[derive(Debug)]
pub struct Hostile {
    addr: SocketAddr,
    mode: Mode,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    /// Starts `mode` on a free port of 127.0.0.1.
    pub fn start(mode: Mode) -> std::io::Result<Self> {
        Self::start_on(mode, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts `mode` on `addr`.
    pub fn start_on(mode: Mode, addr: SocketAddr) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("hostile-{mode}"))
            .spawn(move || {
                rt.block_on(serve(listener, mode, st, async {
                    let _ = rx.await;
                }))
            })?;
        Ok(Self {
            addr,
            mode,
            stats,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The mode it serves.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// What it saw so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The `nfs://` URL of `path` (e.g. `/top`) on this server, with the ports given (no
    /// portmapper needed); append `&soft&timeo=...` as needed.
    pub fn url(&self, path: &str) -> String {
        let p = self.addr.port();
        format!(
            "nfs://{}:{p}{path}?version=3&nfsport={p}&mountport={p}",
            self.addr.ip()
        )
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_a_name_that_parses_back() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>(), Ok(m));
        }
        assert!("nope".parse::<Mode>().is_err());
    }

    #[test]
    fn connection_faults_spare_the_mount() {
        use rnfs_proto::nfs3::{Proc, PROGRAM};
        assert!(Mode::HalfReply.breaks(PROGRAM, Proc::Getattr as u32));
        assert!(!Mode::HalfReply.breaks(PROGRAM, Proc::Fsinfo as u32));
        assert!(!Mode::HalfReply.breaks(rnfs_proto::mount3::PROGRAM, 1));
        assert!(!Mode::Plain.breaks(PROGRAM, Proc::Getattr as u32));
    }
}
