//! The normal clients: each mounts the export, then alternates GETATTR and READ of one file
//! at a fixed pace, timing every call.
//!
//! Each client is paced (`rate` calls a second; 0: one after the other as fast as the
//! server answers). A call that starts late because the one before took long does not
//! make up for it: slots that pass are lost, so throughput falls when the server is slow.
//! A call that fails or takes longer than `call_timeout` counts as an error, and the client
//! mounts again on a new connection (as a real client would); that time is in the next
//! call's latency.
use crate::wire::{self, Conn};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What every normal client does.
#[derive(Debug, Clone)]
pub struct Cfg {
    /// The server's NFS address.
    pub nfs: SocketAddr,
    /// Its MOUNT address.
    pub mnt: SocketAddr,
    /// The export to mount.
    pub export: String,
    /// The file read, in the export's root.
    pub file: String,
    /// Its size in bytes (READs stay inside it).
    pub file_size: u64,
    /// Bytes per READ.
    pub read_size: u32,
    /// Calls a second per client; 0 for no pacing.
    pub rate: f64,
    /// Longest wait for one call (and the connection and mount it may need first).
    pub call_timeout: Duration,
}

/// What one client did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Calls that succeeded.
    pub ops: u64,
    /// Calls that failed or timed out.
    pub errors: u64,
    /// Latency of each successful call, in microseconds (at most `MAX_SAMPLES`).
    pub lat_us: Vec<u32>,
    /// The first error seen.
    pub first_error: Option<String>,
}

/// Latency samples kept per client (a bound on memory for any rate and duration).
const MAX_SAMPLES: usize = 1 << 20;

struct Session {
    c: Conn,
    fh: Vec<u8>,
}

/// MOUNT (on its own connection when MOUNT has its own port), then LOOKUP of the file.
async fn mount(cfg: &Cfg, seed: u32) -> Result<Session, String> {
    let mut c = Conn::connect(cfg.nfs, cfg.call_timeout, seed).await?;
    let root = if cfg.mnt == cfg.nfs {
        wire::mnt(&mut c, &cfg.export).await?
    } else {
        let mut m = Conn::connect(cfg.mnt, cfg.call_timeout, seed ^ 0x5555).await?;
        wire::mnt(&mut m, &cfg.export).await?
    };
    let fh = wire::lookup(&mut c, &root, &cfg.file).await?;
    Ok(Session { c, fh })
}

/// Runs client `i` from `start` until `end`.
pub async fn client(i: u64, cfg: &Cfg, start: Instant, end: Instant) -> Outcome {
    let mut o = Outcome::default();
    let mut sess: Option<Session> = None;
    let interval = (cfg.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.rate));
    // spread the clients' first calls over one interval
    let mut next = start + interval.map_or(Duration::ZERO, |d| d.mul_f64((i % 100) as f64 / 100.0));
    let blocks = (cfg.file_size / u64::from(cfg.read_size)).max(1);
    let mut k = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(d) = interval {
            if next > now {
                tokio::time::sleep_until(next.min(end).into()).await;
            }
            let now = Instant::now();
            if now >= end {
                break;
            }
            // the next slot; when this call starts a whole slot late or more, the slots
            // in between are lost (a timer that wakes a little late loses none)
            next += d;
            if now > next {
                next = now;
            }
        }
        k += 1;
        let t = Instant::now();
        let r = tokio::time::timeout(cfg.call_timeout, async {
            if sess.is_none() {
                sess = Some(mount(cfg, (i as u32) << 16 | (k as u32 & 0xffff)).await?);
            }
            let Some(s) = sess.as_mut() else {
                return Err("no session".to_string());
            };
            if k.is_multiple_of(2) {
                wire::getattr(&mut s.c, &s.fh).await
            } else {
                let off = (crate::mix(i << 40 ^ k) % blocks) * u64::from(cfg.read_size);
                wire::read(&mut s.c, &s.fh, off, cfg.read_size).await
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", cfg.call_timeout)));
        match r {
            Ok(()) => {
                o.ops += 1;
                if o.lat_us.len() < MAX_SAMPLES {
                    o.lat_us
                        .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
            Err(e) => {
                o.errors += 1;
                o.first_error.get_or_insert(e);
                sess = None;
            }
        }
    }
    o
}

/// The value at quantile `q` (0..=1) of sorted `v`, in milliseconds; 0 when empty.
pub fn quantile_ms(v: &[u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    f64::from(v[i.min(v.len() - 1)]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_set() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
