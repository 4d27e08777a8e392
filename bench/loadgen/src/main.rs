//! `rnfs-loadgen`: the NFSv3 load generator of `bench/run.sh`.
//!
//! Built on the rnfs client (`crates/client`): [`Client::mount_with`] for MOUNT and FSINFO,
//! then the typed calls of [`Nfs3`] issued by `--qd` tasks at once over the client's one
//! pipelined, xid-matched TCP connection. The `client-*` and `seed-nospc` workloads go through
//! the client's file API instead (page cache and write-back), to compare that client with
//! libnfs `nfs-cp`.
//!
//! Every workload prints one line `RESULT secs=S bytes=B ops=N [extra=...]` on stdout;
//! run.sh turns it into MB/s or ops/s. Errors go to stderr with exit status 1.
//!
//! Usage: rnfs-loadgen URL WORKLOAD [--name F] [--size BYTES] [--bs BYTES] [--qd N]
//!                      [--ops N] [--count N] [--threads N]
//!   URL       nfs://127.0.0.1/EXPORT?version=3&nfsport=P&mountport=M (libnfs form)
//!   WORKLOAD  seq-write | seq-read | rand-read | rand-write | meta | mkfiles | readdirplus
//!             | client-write | client-read | seed-nospc | null
use rnfs_client::nfs::Nfs3;
use rnfs_client::rpc::buf::Slice;
use rnfs_client::{
    Client, CreateHow, Error, FileHandle, MountOptions, NfsUrl, OpenOptions, SetAttr, Stability,
    Status,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

type Res<T> = Result<T, String>;

#[derive(Debug, Clone)]
struct Opts {
    url: String,
    workload: String,
    name: String,
    size: u64,
    bs: u64,
    qd: usize,
    ops: u64,
    count: u64,
    threads: usize,
}

fn parse_size(s: &str) -> Res<u64> {
    let s = s.trim();
    let (num, mul) = match s.find(|c: char| !c.is_ascii_digit()) {
        None => (s, 1u64),
        Some(i) => {
            let m = match &s[i..] {
                "k" | "K" | "KiB" => 1 << 10,
                "m" | "M" | "MiB" => 1 << 20,
                "g" | "G" | "GiB" => 1 << 30,
                u => return Err(format!("unknown size unit {u:?}")),
            };
            (&s[..i], m)
        }
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|e| format!("bad size {s:?}: {e}"))
}

fn parse_args() -> Res<Opts> {
    let mut a = std::env::args().skip(1);
    let mut o = Opts {
        url: a
            .next()
            .ok_or("usage: rnfs-loadgen URL WORKLOAD [options]")?,
        workload: a.next().ok_or("missing WORKLOAD")?,
        name: "bench.dat".into(),
        size: 1 << 30,
        bs: 1 << 20,
        qd: 32,
        ops: 20_000,
        count: 10_000,
        threads: 1,
    };
    while let Some(k) = a.next() {
        let v = a.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--name" => o.name = v,
            "--size" => o.size = parse_size(&v)?,
            "--bs" => o.bs = parse_size(&v)?,
            "--qd" => o.qd = v.parse().map_err(|e| format!("--qd: {e}"))?,
            "--ops" => o.ops = parse_size(&v)?,
            "--count" => o.count = parse_size(&v)?,
            "--threads" => o.threads = v.parse().map_err(|e| format!("--threads: {e}"))?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if o.qd == 0 || o.bs == 0 {
        return Err("--qd and --bs must be positive".into());
    }
    Ok(o)
}

fn e(x: Error) -> String {
    x.to_string()
}

/// Runs `f(i)` for i in 0..n with `qd` calls in flight (qd tasks pulling from one counter).
async fn parallel<F, Fut>(qd: usize, n: u64, f: F) -> Res<()>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut set: tokio::task::JoinSet<Res<()>> = tokio::task::JoinSet::new();
    for _ in 0..qd.min(n.max(1) as usize) {
        let (f, next) = (f.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                f(i).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|x| format!("task: {x}"))??;
    }
    Ok(())
}

/// A deterministic pseudo-random u64 per index (splitmix64).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut i = seed;
    while v.len() < len {
        v.extend_from_slice(&mix(i).to_le_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

struct Ctx {
    c: Client,
    nfs: Nfs3,
    root: FileHandle,
    rtmax: u64,
    wtmax: u64,
}

fn report(secs: f64, bytes: u64, ops: u64, extra: &str) {
    println!("RESULT secs={secs:.6} bytes={bytes} ops={ops}{extra}");
}

async fn lookup(x: &Ctx, name: &str) -> Res<FileHandle> {
    Ok(x.nfs.lookup(&x.root, name).await.map_err(e)?.0)
}

async fn seq_write(x: &Ctx, o: &Opts) -> Res<()> {
    let bs = o.bs.min(x.wtmax);
    let n = o.size.div_ceil(bs);
    let data = Slice::from_vec(pattern(bs as usize, 1));
    let t = Instant::now();
    let sattr = SetAttr {
        mode: Some(0o644),
        size: Some(0),
        ..Default::default()
    };
    let (fh, _) = x
        .nfs
        .create(&x.root, &o.name, CreateHow::Unchecked(sattr))
        .await
        .map_err(e)?;
    let (nfs, size, fh2) = (x.nfs.clone(), o.size, fh.clone());
    let need_commit = Arc::new(AtomicBool::new(false));
    let nc0 = need_commit.clone();
    parallel(o.qd, n, move |i| {
        let (nfs, fh, data, nc) = (nfs.clone(), fh2.clone(), data.clone(), nc0.clone());
        async move {
            let off = i * bs;
            let len = bs.min(size - off) as usize;
            let r = nfs
                .write(&fh, off, data.sub(0, len), Stability::Unstable)
                .await
                .map_err(e)?;
            if r.committed == Stability::Unstable {
                nc.store(true, Ordering::Relaxed);
            }
            if u64::from(r.count) != len as u64 {
                return Err(format!("short write at {off}: {} of {len}", r.count));
            }
            Ok(())
        }
    })
    .await?;
    // COMMIT only when a reply said UNSTABLE (RFC 1813 3.3.7): a FILE_SYNC reply needs
    // none, and nfsserve does not implement COMMIT at all.
    if need_commit.load(Ordering::Relaxed) {
        x.nfs.commit(&fh).await.map_err(e)?;
    }
    report(t.elapsed().as_secs_f64(), o.size, n + 2, "");
    Ok(())
}

async fn seq_read(x: &Ctx, o: &Opts) -> Res<()> {
    let bs = o.bs.min(x.rtmax);
    let t = Instant::now();
    let fh = lookup(x, &o.name).await?;
    let n = o.size.div_ceil(bs);
    let total = Arc::new(AtomicU64::new(0));
    let (nfs, tot) = (x.nfs.clone(), total.clone());
    parallel(o.qd, n, move |i| {
        let (nfs, fh, tot) = (nfs.clone(), fh.clone(), tot.clone());
        async move {
            let r = nfs.read(&fh, i * bs, bs as u32).await.map_err(e)?;
            tot.fetch_add(r.data.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    let got = total.load(Ordering::Relaxed);
    if got != o.size {
        return Err(format!("read {got} bytes, expected {}", o.size));
    }
    report(t.elapsed().as_secs_f64(), got, n + 1, "");
    Ok(())
}

async fn rand_io(x: &Ctx, o: &Opts, write: bool) -> Res<()> {
    let bs = o.bs.min(if write { x.wtmax } else { x.rtmax });
    let fh = lookup(x, &o.name).await?;
    let blocks = (o.size / bs).max(1);
    let data = Slice::from_vec(pattern(bs as usize, 2));
    let nfs = x.nfs.clone();
    let fh2 = fh.clone();
    let need_commit = Arc::new(AtomicBool::new(false));
    let nc0 = need_commit.clone();
    let t = Instant::now();
    parallel(o.qd, o.ops, move |i| {
        let (nfs, fh, data, nc) = (nfs.clone(), fh2.clone(), data.clone(), nc0.clone());
        async move {
            let off = (mix(i ^ 0x5555) % blocks) * bs;
            if write {
                let r = nfs
                    .write(&fh, off, data.clone(), Stability::Unstable)
                    .await
                    .map_err(e)?;
                if r.committed == Stability::Unstable {
                    nc.store(true, Ordering::Relaxed);
                }
            } else {
                let r = nfs.read(&fh, off, bs as u32).await.map_err(e)?;
                if r.data.len() as u64 != bs {
                    return Err(format!("short read at {off}"));
                }
            }
            Ok(())
        }
    })
    .await?;
    if need_commit.load(Ordering::Relaxed) {
        x.nfs.commit(&fh).await.map_err(e)?;
    }
    report(t.elapsed().as_secs_f64(), o.ops * bs, o.ops, "");
    Ok(())
}

async fn mkdir_fresh(x: &Ctx, name: &str) -> Res<FileHandle> {
    match x.nfs.mkdir(&x.root, name, 0o755).await {
        Ok((fh, _)) => Ok(fh),
        Err(Error::Nfs(Status::Exist)) => lookup(x, name).await,
        Err(err) => Err(e(err)),
    }
}

/// Creates `count` empty files f0000000.. in directory `name` (GUARDED CREATE).
async fn create_files(x: &Ctx, dir: &FileHandle, count: u64, qd: usize) -> Res<()> {
    let (nfs, dir) = (x.nfs.clone(), dir.clone());
    parallel(qd, count, move |i| {
        let (nfs, dir) = (nfs.clone(), dir.clone());
        async move {
            let sattr = SetAttr {
                mode: Some(0o644),
                ..Default::default()
            };
            nfs.create(&dir, &format!("f{i:07}"), CreateHow::Guarded(sattr))
                .await
                .map_err(e)?;
            Ok(())
        }
    })
    .await
}

/// CREATE, then LOOKUP (a stat by name), then REMOVE of `count` files; each phase timed.
async fn meta(x: &Ctx, o: &Opts) -> Res<()> {
    let dir = mkdir_fresh(x, &o.name).await?;
    let t = Instant::now();
    create_files(x, &dir, o.count, o.qd).await?;
    let t_create = t.elapsed().as_secs_f64();
    let (nfs, d) = (x.nfs.clone(), dir.clone());
    parallel(o.qd, o.count, move |i| {
        let (nfs, d) = (nfs.clone(), d.clone());
        async move {
            let (_, a) = nfs.lookup(&d, &format!("f{i:07}")).await.map_err(e)?;
            a.ok_or("LOOKUP without attributes")?;
            Ok(())
        }
    })
    .await?;
    let t_stat = t.elapsed().as_secs_f64() - t_create;
    let (nfs, d) = (x.nfs.clone(), dir.clone());
    parallel(o.qd, o.count, move |i| {
        let (nfs, d) = (nfs.clone(), d.clone());
        async move { nfs.remove(&d, &format!("f{i:07}")).await.map_err(e) }
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    x.nfs.rmdir(&x.root, &o.name).await.map_err(e)?;
    report(
        secs,
        0,
        3 * o.count,
        &format!(
            " create_secs={t_create:.6} stat_secs={t_stat:.6} remove_secs={:.6}",
            secs - t_create - t_stat
        ),
    );
    Ok(())
}

async fn mkfiles(x: &Ctx, o: &Opts) -> Res<()> {
    let dir = mkdir_fresh(x, &o.name).await?;
    let t = Instant::now();
    create_files(x, &dir, o.count, o.qd).await?;
    report(t.elapsed().as_secs_f64(), 0, o.count, "");
    Ok(())
}

/// The whole listing of directory `name` with READDIRPLUS of `--bs` bytes per reply.
async fn readdirplus(x: &Ctx, o: &Opts) -> Res<()> {
    let t = Instant::now();
    let dir = lookup(x, &o.name).await?;
    let (mut cookie, mut verf, mut n, mut calls) = (0u64, [0u8; 8], 0u64, 0u64);
    loop {
        let r = x
            .nfs
            .readdirplus(&dir, cookie, verf, o.bs as u32)
            .await
            .map_err(e)?;
        calls += 1;
        verf = r.verf;
        for en in &r.entries {
            let nm = en.name.as_slice();
            if nm != b"." && nm != b".." {
                n += 1;
            }
            cookie = en.cookie;
        }
        if r.eof {
            break;
        }
        if r.entries.is_empty() {
            return Err("READDIRPLUS returned no entries and no eof".into());
        }
    }
    if n != o.count {
        return Err(format!("listed {n} entries, expected {}", o.count));
    }
    report(t.elapsed().as_secs_f64(), 0, n, &format!(" calls={calls}"));
    Ok(())
}

async fn client_write(x: &Ctx, o: &Opts) -> Res<()> {
    let chunk = pattern(1 << 20, 3);
    let t = Instant::now();
    let mut f =
        x.c.open(&format!("/{}", o.name), OpenOptions::create_truncate())
            .await
            .map_err(e)?;
    let mut left = o.size;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        f.write(&chunk[..k]).await.map_err(e)?;
        left -= k as u64;
    }
    f.close().await.map_err(e)?;
    report(t.elapsed().as_secs_f64(), o.size, 0, "");
    Ok(())
}

async fn client_read(x: &Ctx, o: &Opts) -> Res<()> {
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut f =
        x.c.open(&format!("/{}", o.name), OpenOptions::read())
            .await
            .map_err(e)?;
    let mut got = 0u64;
    loop {
        let k = f.read(&mut buf).await.map_err(e)?;
        if k == 0 {
            break;
        }
        got += k as u64;
    }
    f.close().await.map_err(e)?;
    if got != o.size {
        return Err(format!("read {got} bytes, expected {}", o.size));
    }
    report(t.elapsed().as_secs_f64(), got, 0, "");
    Ok(())
}

/// Writes `data` to a new or truncated `path` through the client and closes it.
async fn write_file(c: &Client, path: &str, data: &[u8]) -> Result<(), Error> {
    let mut f = c.open(path, OpenOptions::create_truncate()).await?;
    f.write(data).await?;
    f.close().await
}

/// The seed scenario: fill the export with `nospc`, see a 1 MiB write fail, remove `nospc`,
/// then time a 1 MiB write to that file against writes to fresh files.
async fn seed_nospc(x: &Ctx, _o: &Opts) -> Res<()> {
    let c = &x.c;
    let mb = pattern(1 << 20, 4);
    let mut f = c
        .open("/nospc", OpenOptions::create_truncate())
        .await
        .map_err(e)?;
    let mut filled = false;
    for _ in 0..4096 {
        if f.write(&mb).await.is_err() {
            filled = true;
            break;
        }
        if f.fsync().await.is_err() {
            filled = true;
            break;
        }
    }
    let _ = f.close().await;
    if !filled {
        return Err("the export never filled up (is it a small file system?)".into());
    }
    let failed = write_file(c, "/file", &mb).await;
    let Err(first) = failed else {
        return Err("a 1 MiB write on a full export succeeded".into());
    };
    c.remove("/nospc").await.map_err(e)?;
    let before = c.io_stats();
    let t = Instant::now();
    write_file(c, "/file", &mb).await.map_err(e)?;
    let t_after = t.elapsed().as_secs_f64();
    let sync_after = c.io_stats().sync_writes - before.sync_writes;
    let mut fresh = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        write_file(c, &format!("/fresh{i}"), &mb).await.map_err(e)?;
        fresh.push(t.elapsed().as_secs_f64());
    }
    fresh.sort_by(f64::total_cmp);
    let t_fresh = fresh[fresh.len() / 2];
    report(
        t_after,
        1 << 20,
        1,
        &format!(
            " fresh_secs={t_fresh:.6} ratio={:.3} sync_writes_after={sync_after} first_error={:?}",
            t_after / t_fresh,
            first.to_string()
        ),
    );
    Ok(())
}

async fn run(o: Opts) -> Res<()> {
    let url = NfsUrl::parse(&o.url).map_err(e)?;
    let mo = MountOptions {
        // Short timeouts make a hung peer fail the run instead of stalling it.
        soft: true,
        timeo: std::time::Duration::from_secs(30),
        retrans: 2,
        ..MountOptions::from_url(&url)
    };
    let c = Client::mount_with(&url, mo).await.map_err(e)?;
    // Raw calls are NFSv3's: a URL without `version=3` may have mounted NFSv4.1.
    let nfs = c
        .nfs()
        .cloned()
        .ok_or_else(|| format!("loadgen sends raw NFSv3 calls: add version=3 to {}", o.url))?;
    let root = c.root().fh().clone();
    let info = nfs.fsinfo(&root).await.map_err(e)?;
    let lim = |m: u32| if m == 0 { 1 << 20 } else { u64::from(m) };
    let x = Ctx {
        c,
        nfs,
        root,
        rtmax: lim(info.rtmax),
        wtmax: lim(info.wtmax),
    };
    match o.workload.as_str() {
        "null" => {
            let t = Instant::now();
            let nfs = x.nfs.clone();
            parallel(o.qd, o.ops, move |_| {
                let nfs = nfs.clone();
                async move { nfs.null().await.map_err(e) }
            })
            .await?;
            report(t.elapsed().as_secs_f64(), 0, o.ops, "");
            Ok(())
        }
        "seq-write" => seq_write(&x, &o).await,
        "seq-read" => seq_read(&x, &o).await,
        "rand-read" => rand_io(&x, &o, false).await,
        "rand-write" => rand_io(&x, &o, true).await,
        "meta" => meta(&x, &o).await,
        "mkfiles" => mkfiles(&x, &o).await,
        "readdirplus" => readdirplus(&x, &o).await,
        "client-write" => client_write(&x, &o).await,
        "client-read" => client_read(&x, &o).await,
        "seed-nospc" => seed_nospc(&x, &o).await,
        w => Err(format!("unknown workload {w}")),
    }
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(m) => {
            eprintln!("rnfs-loadgen: {m}");
            std::process::exit(2);
        }
    };
    let mut b = if o.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(o.threads);
        b
    };
    let rt = match b.enable_all().build() {
        Ok(rt) => rt,
        Err(x) => {
            eprintln!("rnfs-loadgen: runtime: {x}");
            std::process::exit(1);
        }
    };
    if let Err(m) = rt.block_on(run(o.clone())) {
        eprintln!("rnfs-loadgen {}: {m}", o.workload);
        std::process::exit(1);
    }
}
