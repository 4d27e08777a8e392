#!/bin/bash
# Side-by-side NFSv3 benchmarks on 127.0.0.1: rnfs (local and memory backends) against
# nfs-ganesha (FSAL VFS) and nfsserve (crates.io, through bench/nfsserve-adapter), with the
# loopback TCP ceiling (iperf3) in the same run. Run as root (drops the page cache, mounts
# tmpfs, installs Debian packages that are missing).
#
#   bench/run.sh                 the full bench: 1 GiB files, 10,000 files, 100,000 entries,
#                                3 runs, storage "dir" (ext4 under $RNFS_BENCH_WORK) and tmpfs
#   bench/run.sh --smoke         seconds: 8 MiB, 200 files, 1,000 entries, 1 run, rnfs only
#
# Options: --runs N  --size SIZE  --files N  --dirents N  --ops N (random I/O calls per run)
#          --servers ganesha,nfsserve,rnfs,rnfs-mem  --storage dir,tmpfs  --out DIR
#          --no-chart
# Output: a markdown table on stdout (medians, min-max over the runs), and in --out
# (default $RNFS_BENCH_WORK/results): results.tsv (every sample), table.md, chart.png,
# machine.txt, logs/. Exit status 0 only if every workload ran and gave every number it
# reports (a missing or non-positive field fails the workload rather than recording inf).
# Ends with "bench: N passed, N failed, N skipped" (workloads).
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
. "$REPO/tests/harness/lib.sh"

ARGS="$*"
SMOKE= RUNS=3 SIZE=1GiB FILES=10000 DIRENTS=100000 OPS= CHART=1
SERVERS=ganesha,nfsserve,rnfs,rnfs-mem STORAGE=dir,tmpfs OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; RUNS=1; SIZE=8MiB; FILES=200; DIRENTS=1000; OPS=500
             SERVERS=rnfs,rnfs-mem; STORAGE=dir ;;
    --runs) RUNS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --files) FILES=$2; shift ;;
    --dirents) DIRENTS=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --storage) STORAGE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-chart) CHART= ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) rnfs_die "unknown option $1 (see --help)" ;;
  esac
  shift
done

W=${RNFS_BENCH_WORK:-$RNFS_TEST_WORK/bench}
OUT=${OUT:-$W/results}
mkdir -p "$W" "$OUT"
OUT=$(realpath "$OUT")
LOGS=$OUT/logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
RES=$OUT/results.tsv
: > "$RES"
ROOT=; [ "$(id -u)" = 0 ] && ROOT=1

to_bytes() { # 8MiB -> bytes
  local s=$1 n u
  n=${s%%[!0-9]*}; u=${s#"$n"}
  case "$u" in ''|B) echo "$n" ;; k|K|KiB) echo $((n << 10)) ;; m|M|MiB) echo $((n << 20)) ;;
    g|G|GiB) echo $((n << 30)) ;; *) rnfs_die "bad size $s" ;; esac
}
SIZE_B=$(to_bytes "$SIZE")
# Random I/O: enough calls for ~seconds at QD 32, fewer at QD 1.
OPS32=${OPS:-40000}
OPS1=${OPS:-10000}
[ -n "$OPS" ] || OPS1=5000
has() { [[ ",$1," == *",$2,"* ]]; }

# ---- tools and builds -------------------------------------------------------------------
PKGS=(iproute2 util-linux libnfs-utils)
[ -n "$SMOKE" ] || PKGS+=(iperf3)
has "$SERVERS" ganesha && PKGS+=(nfs-ganesha nfs-ganesha-vfs rpcbind)
[ -n "$CHART" ] && [ -z "$SMOKE" ] && PKGS+=(gnuplot-nox)
[ -n "$ROOT" ] && rnfs_need_pkgs "${PKGS[@]}"
command -v cargo >/dev/null || rnfs_die "cargo not found (install the Rust toolchain)"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
rnfs_log "building rnfs, the load generator$(has "$SERVERS" nfsserve && echo ' and the nfsserve adapter') (target dir $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build -q --release -p rnfs-cli) >"$LOGS/build.log" 2>&1 ||
  { tail -30 "$LOGS/build.log"; rnfs_die "build of rnfs failed"; }
cargo build -q --release --manifest-path "$BENCH/loadgen/Cargo.toml" >>"$LOGS/build.log" 2>&1 ||
  { tail -30 "$LOGS/build.log"; rnfs_die "build of bench/loadgen failed"; }
if has "$SERVERS" nfsserve; then
  # no Cargo.lock is kept for the adapter: this resolves the newest nfsserve 0.x release
  (cd "$BENCH/nfsserve-adapter" && cargo update -q && cargo build -q --release) >>"$LOGS/build.log" 2>&1 ||
    { tail -30 "$LOGS/build.log"; rnfs_die "build of bench/nfsserve-adapter failed"; }
  NFSSERVE_VERSION=$(cd "$BENCH/nfsserve-adapter" && cargo tree -q --depth 1 -i nfsserve 2>/dev/null | head -1)
fi
BIN=$CARGO_TARGET_DIR/release
RNFS=$BIN/rnfs LOADGEN=$BIN/rnfs-loadgen ADAPTER=$BIN/nfsserve-adapter

# ---- machine ------------------------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command: $([ -n "${CARGO_TARGET_DIR:-}" ] && echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR ")bench/run.sh $ARGS"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -srm)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "dir storage: $(df -T "$W" | awk 'NR==2 {print $2" on "$1}')"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rnfs: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
  has "$SERVERS" ganesha && echo "nfs-ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null)"
  has "$SERVERS" nfsserve && echo "nfsserve: ${NFSSERVE_VERSION:-?}"
  echo "libnfs-utils: $(dpkg-query -W -f '${Version}' libnfs-utils 2>/dev/null)"
  echo "sizes: file $SIZE, $FILES files, $DIRENTS entries, $OPS1/$OPS32 random calls at QD 1/32, $RUNS run(s)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---- helpers --------------------------------------------------------------------------------
SRV_PID= SRV_KIND= URL= CPURL= PORT= SRV_PGID=
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RES"; } # config workload run value
drop_caches() { sync; [ -n "$ROOT" ] && echo 3 > /proc/sys/vm/drop_caches || true; }
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<" $2"; }

# lg CONFIG RUN WORKLOAD_LABEL METRIC ARGS... : run the load generator, record the metric
# (mbps: bytes/s/1e6, iops: ops/s, rate:N: N/secs).
FAILS=0 OKS=0 SKIPS=0
skipped() { echo "SKIPPED bench/$1: $2"; SKIPS=$((SKIPS + 1)); }
# positive X: X is a plain positive number (not empty, inf or nan)
positive() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] && awk -v x="$1" 'BEGIN{exit !(x > 0)}'; }
lg() {
  local cfg=$1 run=$2 label=$3 metric=$4 out secs v f need log=$LOGS/${1//\//-}.loadgen; shift 4
  if ! out=$(timeout 900 "$LOADGEN" "$URL" "$@" 2>>"$log.err"); then
    rnfs_log "  $label: FAILED (see $log.err)"; FAILS=$((FAILS + 1)); return 0
  fi
  echo "$label $out" >> "$log.out"
  out=$(grep '^RESULT' <<<"$out")
  case "$metric" in mbps) need="secs bytes" ;; iops) need="secs ops" ;; ratio) need=ratio ;; *) need=secs ;; esac
  for f in $need; do
    positive "$(field "$f" "$out")" && continue
    rnfs_log "  $label: FAILED: no positive $f= in the load generator's result: ${out:-no RESULT line}"
    FAILS=$((FAILS + 1)); return 0
  done
  secs=$(field secs "$out")
  case "$metric" in
    mbps) v=$(awk -v b="$(field bytes "$out")" -v s="$secs" 'BEGIN{printf "%.1f", b/s/1e6}') ;;
    iops) v=$(awk -v o="$(field ops "$out")" -v s="$secs" 'BEGIN{printf "%.0f", o/s}') ;;
    rate:*) v=$(awk -v n="${metric#rate:}" -v s="$secs" 'BEGIN{printf "%.0f", n/s}') ;;
    ratio) v=$(field ratio "$out") ;;
  esac
  record "$cfg" "$label" "$run" "$v"; OKS=$((OKS + 1))
  rnfs_log "  $label: $v"
}

# nfscp CONFIG RUN LABEL SRC DST BYTES : time libnfs nfs-cp (DST - : nfs-cat to /dev/null,
# as nfs-cp cannot write to a character device)
nfscp() {
  local cfg=$1 run=$2 label=$3 src=$4 dst=$5 bytes=$6 t0 t1 v log=$LOGS/${1//\//-}.nfs-cp.log
  command -v nfs-cp >/dev/null || { skipped "$label" "no nfs-cp (libnfs-utils)"; return 0; }
  t0=$(date +%s.%N)
  if [ "$dst" = - ]; then
    timeout 900 nfs-cat "$src" 2>>"$log" >/dev/null
  else
    timeout 900 nfs-cp "$src" "$dst" >>"$log" 2>&1
  fi || { rnfs_log "  $label: FAILED (see $log)"; FAILS=$((FAILS + 1)); return 0; }
  t1=$(date +%s.%N)
  v=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN{printf "%.1f", b/(z-a)/1e6}')
  record "$cfg" "$label" "$run" "$v"; OKS=$((OKS + 1))
  rnfs_log "  $label: $v"
}

# rcp CONFIG RUN LABEL SRC DST BYTES : time the real `rnfs cp SRC DST` (one file, no
# progress bar), next to nfs-cp; reads go to /dev/null, as nfs-cat's do.
rcp() {
  local cfg=$1 run=$2 label=$3 src=$4 dst=$5 bytes=$6 t0 t1 v log=$LOGS/${1//\//-}.rnfs-cp.log
  t0=$(date +%s.%N)
  timeout 900 "$RNFS" cp --no-progress "$src" "$dst" >>"$log" 2>&1 ||
    { rnfs_log "  $label: FAILED (see $log)"; FAILS=$((FAILS + 1)); return 0; }
  t1=$(date +%s.%N)
  v=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN{printf "%.1f", b/(z-a)/1e6}')
  record "$cfg" "$label" "$run" "$v"; OKS=$((OKS + 1))
  rnfs_log "  $label: $v"
}

# start_server KIND DIR|SIZE : sets SRV_PID (the server process), URL (load generator),
# CPURL (prefix for nfs-cp file URLs, with %s for the file name).
start_server() {
  local kind=$1 arg=$2
  SRV_KIND=$kind SRV_PGID=
  PORT=$(rnfs_free_port)
  case "$kind" in
    rnfs|rnfs-mem)
      local src=("$arg"); [ "$kind" = rnfs-mem ] && src=(--memory "$arg")
      setsid "$RNFS" serve "${src[@]}" --listen "127.0.0.1:$PORT" --no-rpcbind \
        >"$LOGS/server-$kind.log" 2>&1 </dev/null &
      SRV_PID=$! SRV_PGID=$!
      rnfs_wait_listen "$PORT" 30 "$SRV_PID" || rnfs_die "rnfs did not start (see $LOGS/server-$kind.log)"
      URL="nfs://127.0.0.1/?version=3&nfsport=$PORT&mountport=$PORT"
      CPURL="nfs://127.0.0.1//%s?version=3&nfsport=$PORT&mountport=$PORT" ;;
    nfsserve)
      setsid "$ADAPTER" "$arg" --listen "127.0.0.1:$PORT" >"$LOGS/server-nfsserve.log" 2>&1 </dev/null &
      SRV_PID=$! SRV_PGID=$!
      rnfs_wait_listen "$PORT" 30 "$SRV_PID" || rnfs_die "nfsserve-adapter did not start"
      URL="nfs://127.0.0.1/?version=3&nfsport=$PORT&mountport=$PORT"
      CPURL="nfs://127.0.0.1//%s?version=3&nfsport=$PORT&mountport=$PORT" ;;
    ganesha)
      export GANESHA_STATE=$W/ganesha
      "$REPO/tests/harness/ganesha.sh" start "$arg" "$PORT" >"$LOGS/server-ganesha.log" 2>&1 ||
        { cat "$LOGS/server-ganesha.log" >&2; rnfs_die "ganesha did not start"; }
      local MNT_PORT=
      . "$GANESHA_STATE/state"
      SRV_PID=$(cat "$GANESHA_STATE/ganesha.pid" 2>/dev/null || pgrep -g "$PGID" -x ganesha.nfsd)
      URL="nfs://127.0.0.1/export?version=3&nfsport=$PORT&mountport=$MNT_PORT"
      CPURL="nfs://127.0.0.1/export/%s?version=3&nfsport=$PORT&mountport=$MNT_PORT" ;;
  esac
  # a MOUNT + NULL round trip proves the server answers
  local i
  for i in $(seq 50); do
    timeout 10 "$LOADGEN" "$URL" null --ops 1 --qd 1 >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  rnfs_die "$kind on port $PORT does not answer"
}

peak_rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$SRV_PID/status" 2>/dev/null || echo; }

stop_server() {
  case "$SRV_KIND" in
    ganesha) "$REPO/tests/harness/ganesha.sh" stop >>"$LOGS/server-ganesha.log" 2>&1 || true ;;
    *) [ -n "$SRV_PGID" ] && rnfs_kill_group "$SRV_PGID" 10 ;;
  esac
  SRV_PID= SRV_KIND= SRV_PGID=
}

TMPFS_MOUNTS=()
cleanup() {
  [ -n "$SRV_KIND" ] && stop_server
  local m
  for m in "${TMPFS_MOUNTS[@]}"; do mountpoint -q "$m" && umount "$m"; done
  [ -n "${IPERF_PID:-}" ] && kill "$IPERF_PID" 2>/dev/null
  return 0
}
trap cleanup EXIT

# fresh_storage KIND DIR [TMPFS_SIZE] : an empty export directory of that kind
fresh_storage() {
  local kind=$1 d=$2 sz=${3:-}
  if mountpoint -q "$d"; then umount "$d"; fi
  rm -rf "$d"; mkdir -p "$d"
  if [ "$kind" = tmpfs ]; then
    [ -n "$ROOT" ] || rnfs_die "tmpfs storage needs root"
    mount -t tmpfs -o "size=$sz,mode=0777" rnfs-bench "$d"
    TMPFS_MOUNTS+=("$d")
  fi
}

# The source of nfs-cp and rnfs cp writes lives on /dev/shm (never dropped from memory),
# one file per size, made whole before it is renamed into place: a bench run of another
# size at the same time must not change it under this one (it did: 256 MiB copied and
# counted as 1 GiB).
SRCDIR=/dev/shm/rnfs-bench
SRC=$SRCDIR/src-$SIZE_B.dat
mkdir -p "$SRCDIR"
if [ "$(stat -c %s "$SRC" 2>/dev/null)" != "$SIZE_B" ]; then
  head -c "$SIZE_B" /dev/urandom > "$SRC.$$" && mv "$SRC.$$" "$SRC"
fi

ceiling() { # ceiling CONFIG RUN : loopback TCP, one stream
  command -v iperf3 >/dev/null || return 0
  local p v
  p=$(rnfs_free_port)
  iperf3 -s -1 -B 127.0.0.1 -p "$p" >/dev/null 2>&1 & IPERF_PID=$!
  rnfs_wait_listen "$p" 10 "$IPERF_PID" || return 0
  v=$(iperf3 -c 127.0.0.1 -p "$p" -t "$([ -n "$SMOKE" ] && echo 1 || echo 3)" -f m 2>/dev/null |
    awk '/receiver/ {for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") printf "%.1f", $i / 8}')
  wait "$IPERF_PID" 2>/dev/null || true; IPERF_PID=
  [ -n "$v" ] && record "$1" "loopback TCP (iperf3, 1 stream) MB/s" "$2" "$v" && rnfs_log "  iperf3: $v MB/s"
  return 0
}

# ---- one server over one storage, one run ---------------------------------------------------
bench_config() { # bench_config CONFIG KIND STORAGE RUN
  local cfg=$1 kind=$2 st=$3 run=$4 d=$W/export-$3 rss
  rnfs_log "$cfg: run $run (load $(cut -d' ' -f1 /proc/loadavg))"
  record "$cfg" "host load average (1 min) at start" "$run" "$(cut -d' ' -f1 /proc/loadavg)"
  ceiling "$cfg" "$run"
  if [ "$kind" != rnfs-mem ]; then
    fresh_storage "$st" "$d" "$((SIZE_B * 3 / 1048576 + 1024))m"
    # the READDIRPLUS directory is made on the file system itself (seconds, not minutes)
    mkdir "$d/big" && (cd "$d/big" && seq -f 'e%07.0f' 1 "$DIRENTS" | xargs touch)
    chmod 0777 "$d"
    start_server "$kind" "$d"
  else
    start_server rnfs-mem "$((SIZE_B * 3 / 1048576 + 512))MiB"
    timeout 900 "$LOADGEN" "$URL" mkfiles --name big --count "$DIRENTS" --qd 32 >/dev/null 2>>"$LOGS/$cfg.loadgen.err" ||
      { rnfs_log "mkfiles failed"; FAILS=$((FAILS + 1)); }
  fi
  local q=(--qd 32)
  lg "$cfg" "$run" "seq write $SIZE (UNSTABLE+COMMIT, QD 32) MB/s" mbps seq-write --size "$SIZE_B" "${q[@]}"
  drop_caches
  lg "$cfg" "$run" "seq read cold (QD 32) MB/s" mbps seq-read --size "$SIZE_B" "${q[@]}"
  lg "$cfg" "$run" "seq read warm (QD 32) MB/s" mbps seq-read --size "$SIZE_B" "${q[@]}"
  lg "$cfg" "$run" "4 KiB random read QD 1 IOPS" iops rand-read --size "$SIZE_B" --bs 4096 --qd 1 --ops "$OPS1"
  lg "$cfg" "$run" "4 KiB random read QD 32 IOPS" iops rand-read --size "$SIZE_B" --bs 4096 --qd 32 --ops "$OPS32"
  lg "$cfg" "$run" "4 KiB random write QD 1 IOPS" iops rand-write --size "$SIZE_B" --bs 4096 --qd 1 --ops "$OPS1"
  lg "$cfg" "$run" "4 KiB random write QD 32 IOPS" iops rand-write --size "$SIZE_B" --bs 4096 --qd 32 --ops "$OPS32"
  lg "$cfg" "$run" "create+stat+remove $FILES files (QD 32) files/s" "rate:$FILES" meta --name meta --count "$FILES" --qd 32
  lg "$cfg" "$run" "READDIRPLUS $DIRENTS entries (128 KiB replies) entries/s" "rate:$DIRENTS" readdirplus --name big --count "$DIRENTS" --bs 131072
  # the clients: libnfs nfs-cp and the rnfs client's file API (page cache + write-back)
  # shellcheck disable=SC2059
  nfscp "$cfg" "$run" "libnfs nfs-cp write MB/s" "$SRC" "$(printf "$CPURL" cp.dat)" "$SIZE_B"
  drop_caches
  # shellcheck disable=SC2059
  nfscp "$cfg" "$run" "libnfs nfs-cat read cold MB/s" "$(printf "$CPURL" cp.dat)" - "$SIZE_B"
  # the real `rnfs cp` binary, each direction, right after nfs-cp (its file is removed
  # first so that the export holds no more than before)
  # shellcheck disable=SC2059
  "$RNFS" rm "$(printf "$CPURL" cp.dat)" >>"$LOGS/${cfg//\//-}.rnfs-cp.log" 2>&1 || true
  # shellcheck disable=SC2059
  rcp "$cfg" "$run" "rnfs cp write MB/s" "$SRC" "$(printf "$CPURL" rcp.dat)" "$SIZE_B"
  drop_caches
  # shellcheck disable=SC2059
  rcp "$cfg" "$run" "rnfs cp read cold MB/s" "$(printf "$CPURL" rcp.dat)" /dev/null "$SIZE_B"
  # shellcheck disable=SC2059
  "$RNFS" rm "$(printf "$CPURL" rcp.dat)" >>"$LOGS/${cfg//\//-}.rnfs-cp.log" 2>&1 || true
  lg "$cfg" "$run" "rnfs client write MB/s" mbps client-write --name cl.dat --size "$SIZE_B"
  drop_caches
  lg "$cfg" "$run" "rnfs client read cold MB/s" mbps client-read --name cl.dat --size "$SIZE_B"
  rss=$(peak_rss)
  [ -n "$rss" ] && record "$cfg" "server peak RSS (VmHWM) MiB" "$run" "$rss"
  stop_server
  [ "$kind" != rnfs-mem ] && fresh_storage dir "$d"
  return 0
}

# The seed scenario on a 16 MiB export: fill it, see a 1 MiB write fail, remove the filler,
# then the ratio of a 1 MiB write to that file over a 1 MiB write to a fresh file.
seed_config() { # seed_config CONFIG KIND RUN
  local cfg=$1 kind=$2 run=$3 d=$W/export-seed
  if [ "$kind" = rnfs-mem ]; then
    start_server rnfs-mem 16MiB
  else
    [ -n "$ROOT" ] || { skipped "$cfg seed ENOSPC" "tmpfs needs root"; return 0; }
    fresh_storage tmpfs "$d" 16m
    start_server "$kind" "$d"
  fi
  lg "$cfg" "$run" "seed ENOSPC: 1 MiB write after NOSPC / fresh write (time ratio)" ratio seed-nospc
  stop_server
  [ "$kind" != rnfs-mem ] && { umount "$d" 2>/dev/null || true; }
  return 0
}

CONFIGS=()
IFS=, read -ra ST <<<"$STORAGE"
IFS=, read -ra SV <<<"$SERVERS"
for st in "${ST[@]}"; do
  for s in "${SV[@]}"; do [ "$s" = rnfs-mem ] || CONFIGS+=("$s/$st"); done
done
has "$SERVERS" rnfs-mem && CONFIGS+=(rnfs-mem)

for run in $(seq "$RUNS"); do
  for c in "${CONFIGS[@]}"; do
    kind=${c%%/*} st=${c#*/}; [ "$c" = rnfs-mem ] && st=mem
    bench_config "$c" "$kind" "$st" "$run"
    seed_config "$c" "$kind" "$run"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

# ---- report ---------------------------------------------------------------------------------
"$BENCH/report.sh" "$OUT" "${CONFIGS[@]}" > "$OUT/table.md"
cat "$OUT/table.md"
if [ -n "$CHART" ] && command -v gnuplot >/dev/null; then
  "$BENCH/chart.sh" "$OUT" "${CONFIGS[@]}" && echo && echo "chart: $OUT/chart.png"
fi
echo "samples: $RES; logs: $LOGS"
echo "bench: $OKS passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" = 0 ] || { echo "$FAILS workload(s) failed" >&2; exit 1; }
