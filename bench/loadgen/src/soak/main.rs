//! `rnfs-soak`: normal NFSv3 clients measured while hostile connections press on the
//! server (issue 12); driven by `bench/soak.sh`.
//!
//! Order of a run: MOUNT and LOOKUP once (to learn the handles and the file's size); open
//! the hostile connections (`--idle`, `--loris`, `--unread`, `--forge` of them, at most 128
//! connection attempts at a time) and wait until each has tried once (`--ramp-timeout`);
//! let them work `--settle` seconds; then run `--normal` clients for `--duration`
//! seconds; stop everything. Every loop ends by the stop signal or a timeout, so the run
//! ends by itself: at most ramp + settle + duration + 2 call timeouts + 10 s.
//!
//! Output on stdout, one `key=value` line each: `GROUP kind=...` per hostile group and
//! `RESULT ...` for the normal clients; `ERROR text` lines with the first error of the
//! clients that had one. Progress (`PHASE ...`) goes to stderr.
//!
//! Usage: rnfs-soak --nfs ADDR:PORT --mount ADDR:PORT --export PATH --duration SECS
//!          [--normal N] [--idle N] [--loris N] [--unread N] [--forge N] [--rate OPS]
//!          [--file NAME] [--big NAME] [--read-size BYTES] [--settle SECS]
//!          [--ramp-timeout SECS] [--call-timeout SECS] [--loris-bps BYTES]
//!          [--unread-calls N] [--threads N]
mod hostile;
mod normal;
mod wire;

use hostile::{Counters, Kind};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

#[derive(Debug, Clone)]
struct Opts {
    nfs: SocketAddr,
    mount: SocketAddr,
    export: String,
    duration: f64,
    normal: u64,
    groups: [(Kind, u64); 4],
    rate: f64,
    file: String,
    big: String,
    read_size: u32,
    settle: f64,
    ramp_timeout: f64,
    call_timeout: f64,
    loris_bps: u64,
    unread_calls: u32,
    threads: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut a = std::env::args().skip(1);
    let (mut nfs, mut mount, mut export, mut duration) = (None, None, None, None);
    let mut o = Opts {
        nfs: "127.0.0.1:2049".parse().map_err(|_| "addr")?,
        mount: "127.0.0.1:2049".parse().map_err(|_| "addr")?,
        export: String::new(),
        duration: 0.0,
        normal: 100,
        groups: [
            (Kind::Idle, 0),
            (Kind::Loris, 0),
            (Kind::Unread, 0),
            (Kind::Forge, 0),
        ],
        rate: 50.0,
        file: "data.bin".into(),
        big: "big.bin".into(),
        read_size: 64 * 1024,
        settle: 3.0,
        ramp_timeout: 60.0,
        call_timeout: 10.0,
        loris_bps: 64 * 1024,
        unread_calls: 64,
        threads: 2,
    };
    while let Some(k) = a.next() {
        let v = a.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k}: {e}"));
        let int = |v: &str| v.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        let group = |o: &mut Opts, kind: Kind| -> Result<(), String> {
            let n = int(&v)?;
            for g in o.groups.iter_mut().filter(|g| g.0 == kind) {
                g.1 = n;
            }
            Ok(())
        };
        match k.as_str() {
            "--nfs" => nfs = Some(v.parse().map_err(|e| format!("--nfs: {e}"))?),
            "--mount" => mount = Some(v.parse().map_err(|e| format!("--mount: {e}"))?),
            "--export" => export = Some(v),
            "--duration" => duration = Some(num(&v)?),
            "--normal" => o.normal = int(&v)?,
            "--idle" => group(&mut o, Kind::Idle)?,
            "--loris" => group(&mut o, Kind::Loris)?,
            "--unread" => group(&mut o, Kind::Unread)?,
            "--forge" => group(&mut o, Kind::Forge)?,
            "--rate" => o.rate = num(&v)?,
            "--file" => o.file = v,
            "--big" => o.big = v,
            "--read-size" => o.read_size = int(&v)?.clamp(1, 1 << 20) as u32,
            "--settle" => o.settle = num(&v)?,
            "--ramp-timeout" => o.ramp_timeout = num(&v)?,
            "--call-timeout" => o.call_timeout = num(&v)?,
            "--loris-bps" => o.loris_bps = int(&v)?.max(1),
            "--unread-calls" => o.unread_calls = int(&v)?.min(1024) as u32,
            "--threads" => o.threads = int(&v)?.clamp(1, 64) as usize,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    o.nfs = nfs.ok_or("--nfs is required")?;
    o.mount = mount.unwrap_or(o.nfs);
    o.export = export.ok_or("--export is required")?;
    o.duration = duration.ok_or("--duration is required")?;
    let bounded = |x: f64| x.is_finite() && (0.0..=86_400.0).contains(&x);
    if !(bounded(o.duration) && bounded(o.settle) && bounded(o.ramp_timeout) && bounded(o.rate)) {
        return Err("durations and --rate must be between 0 and 86400".into());
    }
    if !(o.call_timeout > 0.0 && o.call_timeout <= 600.0) {
        return Err("--call-timeout must be in (0, 600] seconds".into());
    }
    Ok(o)
}

/// A deterministic pseudo-random u64 per index (splitmix64).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The handles the run needs: root (for forging), the normal clients' file, the big file.
async fn setup(o: &Opts) -> Result<(Vec<u8>, u64, Vec<u8>), String> {
    let tmo = Duration::from_secs_f64(o.call_timeout);
    let root = {
        let mut m = wire::Conn::connect(o.mount, tmo, 1).await?;
        tokio::time::timeout(tmo, wire::mnt(&mut m, &o.export))
            .await
            .map_err(|_| "MNT timed out")??
    };
    let mut c = wire::Conn::connect(o.nfs, tmo, 2).await?;
    let r = tokio::time::timeout(tmo * 4, async {
        let file = wire::lookup(&mut c, &root, &o.file).await?;
        let size = wire::size(&mut c, &file).await?;
        let big = wire::lookup(&mut c, &root, &o.big).await?;
        Ok::<_, String>((size, big))
    })
    .await
    .map_err(|_| "LOOKUP/GETATTR timed out")??;
    if r.0 < u64::from(o.read_size) {
        return Err(format!(
            "{} is {} bytes, smaller than one READ",
            o.file, r.0
        ));
    }
    Ok((root, r.0, r.1))
}

async fn run(o: Opts) -> Result<(), String> {
    let (root, file_size, big_fh) = setup(&o).await?;
    let forger = hostile::Forger::new(root, &o.export);
    let forge_mode = forger.mode();
    let x = Arc::new(hostile::Ctx {
        nfs: o.nfs,
        connecting: Semaphore::new(128),
        connect_timeout: Duration::from_secs(5),
        big_fh,
        forger,
        loris_bps: o.loris_bps,
        unread_calls: o.unread_calls,
    });
    let counters: Vec<(Kind, u64, Arc<Counters>)> = o
        .groups
        .iter()
        .map(|&(k, n)| (k, n, Arc::new(Counters::default())))
        .collect();
    let hostile_total: u64 = counters.iter().map(|g| g.1).sum();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut attackers = tokio::task::JoinSet::new();
    // interleave the kinds, so that every group ramps up at the same pace
    let most = counters.iter().map(|g| g.1).max().unwrap_or(0);
    for i in 0..most {
        for (k, n, c) in &counters {
            if i < *n {
                let id = i * 4 + *k as u64;
                attackers.spawn(hostile::run(*k, id, x.clone(), c.clone(), stop_rx.clone()));
            }
        }
    }
    let t0 = Instant::now();
    let ramp_end = t0 + Duration::from_secs_f64(o.ramp_timeout);
    while counters
        .iter()
        .map(|g| g.2.started.load(Relaxed))
        .sum::<u64>()
        < hostile_total
        && Instant::now() < ramp_end
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp_secs = t0.elapsed().as_secs_f64();
    let open: u64 = counters.iter().map(|g| g.2.connects.load(Relaxed)).sum();
    eprintln!("PHASE hostile-ready conns={open}/{hostile_total} ramp_secs={ramp_secs:.1}");
    if hostile_total > 0 {
        tokio::time::sleep(Duration::from_secs_f64(o.settle)).await;
    }

    let cfg = Arc::new(normal::Cfg {
        nfs: o.nfs,
        mnt: o.mount,
        export: o.export.clone(),
        file: o.file.clone(),
        file_size,
        read_size: o.read_size,
        rate: o.rate,
        call_timeout: Duration::from_secs_f64(o.call_timeout),
    });
    eprintln!(
        "PHASE normal-start clients={} secs={}",
        o.normal, o.duration
    );
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.duration);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..o.normal {
        let cfg = cfg.clone();
        clients.spawn(async move { normal::client(i, &cfg, start, end).await });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = clients.join_next().await {
        outcomes.push(r.map_err(|e| format!("client task: {e}"))?);
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("PHASE normal-done secs={secs:.1}");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while attackers.join_next().await.is_some() {}
    })
    .await;
    attackers.abort_all();

    for (k, n, c) in &counters {
        if *n == 0 {
            continue;
        }
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
        println!(
            "GROUP kind={} conns={n} connects={} connect_failed={} closed_by_server={} calls={} replies={} ok={} badhandle={} stale={} other={} bytes={}",
            k.name(),
            g(&c.connects),
            g(&c.connect_failed),
            g(&c.closed_by_server),
            g(&c.calls),
            g(&c.replies),
            g(&c.ok),
            g(&c.badhandle),
            g(&c.stale),
            g(&c.other),
            g(&c.bytes),
        );
    }
    let ops: u64 = outcomes.iter().map(|c| c.ops).sum();
    let errors: u64 = outcomes.iter().map(|c| c.errors).sum();
    let served = outcomes.iter().filter(|c| c.ops > 0).count();
    let min_ops = outcomes.iter().map(|c| c.ops).min().unwrap_or(0);
    let mut lat: Vec<u32> = outcomes
        .iter()
        .flat_map(|c| c.lat_us.iter().copied())
        .collect();
    lat.sort_unstable();
    println!(
        "RESULT clients={} served={served} ops={ops} errors={errors} secs={secs:.3} ops_per_s={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} min_client_ops={min_ops} hostile={hostile_total} hostile_open_at_start={open} ramp_secs={ramp_secs:.1} rate={} forge_mode={forge_mode}",
        o.normal,
        ops as f64 / secs.max(1e-9),
        normal::quantile_ms(&lat, 0.5),
        normal::quantile_ms(&lat, 0.99),
        normal::quantile_ms(&lat, 1.0),
        o.rate,
    );
    for (i, c) in outcomes.iter().enumerate() {
        if let Some(e) = &c.first_error {
            println!("ERROR client {i} ({} errors): {e}", c.errors);
        }
    }
    Ok(())
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(m) => {
            eprintln!("rnfs-soak: {m}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rnfs-soak: runtime: {e}");
            std::process::exit(1);
        }
    };
    let r = rt.block_on(run(o));
    // the hostile tasks that did not stop in time must not hold up the exit
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Err(m) = r {
        eprintln!("rnfs-soak: {m}");
        std::process::exit(1);
    }
}
