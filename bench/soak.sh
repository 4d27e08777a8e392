#!/bin/bash
# Soak under hostile clients (issue 12): normal NFSv3 clients measured alone (run A) and
# while hostile connections press on the same server (run B), for rnfs and nfs-ganesha in
# the same run. Run as root (installs Debian packages that are missing, sets descriptor
# limits, runs ganesha).
#
#   bench/soak.sh            2,000 connections: 100 normal + 1,900 hostile (475 each idle,
#                            slow-loris, never-reading, forging), 60 s per run, an export
#                            of 20,000 directories; rnfs and ganesha (~6 min)
#   bench/soak.sh --smoke    ~30 s: rnfs only, 10 normal + 40 hostile, 5 s per run
#
# Options: --servers rnfs,ganesha  --duration SECS  --normal N  --hostile N
#          --groups idle,loris,unread,forge (the hostile kinds of run B; N split evenly)
#          --rate OPS (per normal client; 0: unpaced)  --dirs N  --nofile N (4096)
#          --mem-cap SIZE (4GiB)  --max-conns N (3000)  --idle-timeout SECS (30)
#          --record-timeout SECS (10)  --memory-budget SIZE (256MiB)  --out DIR  --check
# Output: a markdown table on stdout; in --out (default /tmp/soak/results): table.md,
# results.tsv, machine.txt, logs/. Exit status 0 if every run ran and run A served all its
# clients; with --check, also only if rnfs met the goal (B/A >= 0.80, peak RSS within
# the memory budget when rnfs has one).
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
. "$REPO/tests/harness/lib.sh"

ARGS="$*"
SERVERS=rnfs,ganesha DURATION=60 NORMAL=100 HOSTILE=1900 RATE=50 DIRS=20000
NOFILE=4096 MEMCAP=4GiB MAXCONNS=3000 IDLE_TMO=30 RECORD_TMO=10 BUDGET=256MiB
UNREAD_CALLS=64 SETTLE=3 OUT= CHECK= KINDS=idle,loris,unread,forge
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SERVERS=rnfs DURATION=5 NORMAL=10 HOSTILE=40 DIRS=200 UNREAD_CALLS=8 SETTLE=1 ;;
    --servers) SERVERS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --normal) NORMAL=$2; shift ;;
    --hostile) HOSTILE=$2; shift ;;
    --groups) KINDS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --dirs) DIRS=$2; shift ;;
    --nofile) NOFILE=$2; shift ;;
    --mem-cap) MEMCAP=$2; shift ;;
    --max-conns) MAXCONNS=$2; shift ;;
    --idle-timeout) IDLE_TMO=$2; shift ;;
    --record-timeout) RECORD_TMO=$2; shift ;;
    --memory-budget) BUDGET=$2; shift ;;
    --out) OUT=$2; shift ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) rnfs_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || rnfs_die "run as root (descriptor limits, ganesha, packages)"
has() { [[ ",$1," == *",$2,"* ]]; }
to_bytes() { # 4GiB, 4G, 256MiB, 1024 -> bytes
  local v=${1%B}
  case "$v" in *i) numfmt --from=iec-i "$v" ;; *) numfmt --from=iec "$v" ;; esac || rnfs_die "bad size $1"
}
MEMCAP_KB=$(($(to_bytes "$MEMCAP") / 1024))
IFS=, read -ra GR <<<"$KINDS"
for g in "${GR[@]}"; do case "$g" in idle|loris|unread|forge) ;; *) rnfs_die "unknown group $g" ;; esac; done
PER=$((HOSTILE / ${#GR[@]}))

W=${SOAK_WORK:-/tmp/soak}
OUT=${OUT:-$W/results}
mkdir -p "$W" "$OUT"
OUT=$(realpath "$OUT")
LOGS=$OUT/logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
RES=$OUT/results.tsv
: > "$RES"

# ---- tools, builds, limits ------------------------------------------------------------------
PKGS=(iproute2 util-linux coreutils)
has "$SERVERS" ganesha && PKGS+=(nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils)
rnfs_need_pkgs "${PKGS[@]}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
rnfs_log "building rnfs and rnfs-soak (target dir $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build -q --release -p rnfs-cli) >"$LOGS/build.log" 2>&1 ||
  { tail -30 "$LOGS/build.log"; rnfs_die "build of rnfs failed"; }
cargo build -q --release --manifest-path "$BENCH/loadgen/Cargo.toml" --bin rnfs-soak >>"$LOGS/build.log" 2>&1 ||
  { tail -30 "$LOGS/build.log"; rnfs_die "build of bench/loadgen failed"; }
RNFS=$CARGO_TARGET_DIR/release/rnfs SOAK=$CARGO_TARGET_DIR/release/rnfs-soak
# this process (and so the load generator) needs a descriptor per connection, and more
fds=$((NORMAL * 2 + HOSTILE + 256))
[ "$(ulimit -Hn)" -ge "$fds" ] || ulimit -Hn "$fds" || rnfs_die "cannot raise RLIMIT_NOFILE to $fds"
ulimit -n "$(ulimit -Hn)"

# rnfs's limits, each passed only if this rnfs has the option
HELP=$("$RNFS" serve --help)
RNFS_LIMITS=()
lim() { if grep -q -- "$1" <<<"$HELP"; then RNFS_LIMITS+=("$1" "$2"); fi; }
lim --max-connections "$MAXCONNS"
lim --idle-timeout "$IDLE_TMO"
lim --record-timeout "$RECORD_TMO"
lim --memory-budget "$BUDGET"
HAS_BUDGET=; [[ " ${RNFS_LIMITS[*]} " == *" --memory-budget "* ]] && HAS_BUDGET=1
# ganesha's equivalents (no record timeout, no memory budget in 4.3)
export GANESHA_CORE_EXTRA="  RPC_Max_Connections = $MAXCONNS;
  RPC_Idle_Timeout_S = $IDLE_TMO;"

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command: bench/soak.sh $ARGS"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "rnfs: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
  echo "rnfs limits: ${RNFS_LIMITS[*]:-(none: this rnfs has no limit options)}"
  has "$SERVERS" ganesha && echo "nfs-ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha), RPC_Max_Connections=$MAXCONNS RPC_Idle_Timeout_S=$IDLE_TMO"
  echo "servers: RLIMIT_NOFILE $NOFILE (soft and hard); killed by this script if VmRSS > $MEMCAP"
  echo "export: $DIRS directories, data.bin 1 MiB (normal READs of 64 KiB and GETATTRs), big.bin $UNREAD_CALLS MiB sparse"
  echo "clients: $NORMAL normal at $RATE calls/s each, $DURATION s; run B adds $PER each of ${KINDS//,/, } (unread: $UNREAD_CALLS READs of 1 MiB; loris: 64 KiB/s)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---- the export (the same directory for both servers; nothing writes to it) ----------------
E=$W/export
if [ "$(cat "$E/.made" 2>/dev/null)" != "$DIRS $UNREAD_CALLS" ]; then
  rnfs_log "making the export: $DIRS directories"
  rm -rf "$E"; mkdir -p "$E/tree"
  head -c $((1 << 20)) /dev/urandom > "$E/data.bin"
  truncate -s $((UNREAD_CALLS << 20)) "$E/big.bin"
  top=$(( DIRS < 100 ? 1 : 100 ))
  for t in $(seq 1 "$top"); do
    mkdir "$E/tree/t$t"
    (cd "$E/tree/t$t" && seq -f 'd%05g' 1 $((DIRS / top)) | xargs mkdir)
  done
  chmod -R a+rX "$E"
  echo "$DIRS $UNREAD_CALLS" > "$E/.made"
fi

# ---- servers --------------------------------------------------------------------------------
SRV= SRV_PID= SRV_PGID= PORT= MPORT= EXPORT=
free_port() { # a free port in 27000-27999 (this bench's range), other than the arguments
  local p x ok
  for p in $(shuf -i 27000-27999 -n 200); do
    ok=1; for x in "$@"; do [ "$x" != "$p" ] || ok=; done
    [ -n "$ok" ] && ! rnfs_port_busy "$p" && { echo "$p"; return 0; }
  done
  rnfs_die "no free port in 27000-27999"
}

start_server() { # start_server rnfs|ganesha LOG_PREFIX
  local log=$2.log
  SRV=$1 PORT=$(free_port)
  case "$SRV" in
    rnfs)
      echo "+ prlimit --nofile=$NOFILE:$NOFILE $RNFS serve $E --listen 127.0.0.1:$PORT --no-rpcbind ${RNFS_LIMITS[*]}" > "$log"
      setsid prlimit --nofile="$NOFILE:$NOFILE" "$RNFS" serve "$E" --listen "127.0.0.1:$PORT" \
        --no-rpcbind "${RNFS_LIMITS[@]}" >>"$log" 2>&1 </dev/null &
      SRV_PID=$! SRV_PGID=$! MPORT=$PORT EXPORT=/
      rnfs_wait_listen "$PORT" 30 "$SRV_PID" || { tail "$log" >&2; rnfs_die "rnfs did not start"; } ;;
    ganesha)
      MPORT=$(free_port "$PORT")
      export GANESHA_STATE=$W/ganesha
      prlimit --nofile="$NOFILE:$NOFILE" "$REPO/tests/harness/ganesha.sh" start "$E" "$PORT" "$MPORT" >"$log" 2>&1 ||
        { cat "$log" >&2; rnfs_die "ganesha did not start"; }
      SRV_PID=$(cat "$GANESHA_STATE/ganesha.pid") EXPORT=/export ;;
  esac
  grep -E 'Max open files' "/proc/$SRV_PID/limits" >> "$log"
  local i
  for i in $(seq 20); do # one normal call proves that the server answers
    timeout 20 "$SOAK" --nfs "127.0.0.1:$PORT" --mount "127.0.0.1:$MPORT" --export "$EXPORT" \
      --duration 0.2 --normal 1 --rate 0 >/dev/null 2>>"$log" && return 0
    sleep 0.5
  done
  rnfs_die "$SRV on port $PORT does not answer (see $log)"
}

stop_server() {
  case "$SRV" in
    ganesha) "$REPO/tests/harness/ganesha.sh" stop >/dev/null 2>&1 || true ;;
    rnfs) rnfs_kill_group "$SRV_PGID" 10 ;;
  esac
  SRV= SRV_PID= SRV_PGID=
}

SAMPLER=
# sample_rss FILE : every 0.25 s, the server's VmRSS and VmHWM (kB) into FILE; kills the
# server (SIGKILL) when VmRSS passes the cap, and says so in FILE.
sample_rss() {
  local f=$1 rss hwm t0=$SECONDS
  while kill -0 "$SRV_PID" 2>/dev/null; do
    read -r rss hwm < <(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r+0, h+0}' "/proc/$SRV_PID/status" 2>/dev/null) || break
    echo "$(date +%s.%N) $rss $hwm" >> "$f"
    if [ "$rss" -gt "$MEMCAP_KB" ]; then
      echo "KILLED after=$((SECONDS - t0)) rss_kb=$rss" >> "$f"
      kill -KILL "$SRV_PID" 2>/dev/null
      break
    fi
    sleep 0.25
  done
}

cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$SRV" ] && stop_server
  return 0
}
trap cleanup EXIT

counters() { # the server's counters now, one line: key=value ...
  local c
  c="conns=$(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l)"
  if [ "$SRV" = rnfs ]; then
    if timeout 10 "$RNFS" stats --server "127.0.0.1:$PORT" --prometheus > "$1.prom" 2>&1; then
      c+=" $(grep -E '^rnfs_[a-z_]*(conn|shed|buffer|budget|memory|mac|walk|timeout|idle|record|handle)[a-z_]*(\{[^}]*\})? ' "$1.prom" |
        sed -E 's/^rnfs_//; s/\{[^}]*"([^"]*)"\}/.\1/; s/ /=/' | tr '\n' ' ')"
    else
      c+=" stats=unanswered"
    fi
  fi
  echo "$c"
}

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<" $2" | head -1; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RES"; } # server run key value
FAILS=0

# run_soak SERVER A|B : one run against a fresh server
run_soak() {
  local s=$1 run=$2 tag=$LOGS/$1-$2 mix=() res dur=$DURATION rss0 killed= after alive mid=
  if [ "$run" = B ]; then for g in "${GR[@]}"; do mix+=("--$g" "$PER"); done; fi
  rnfs_log "$s run $run: ${mix[*]:-no hostile connections}"
  start_server "$s" "$tag-server"
  rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$SRV_PID/status")
  sample_rss "$tag.rss" & SAMPLER=$!
  # bound: ramp 60 + settle + duration + 2 call timeouts (10 s) + 10 s of stopping, + 30
  timeout -k 5 $((60 + SETTLE + ${dur%.*} + 20 + 10 + 30)) "$SOAK" --nfs "127.0.0.1:$PORT" \
    --mount "127.0.0.1:$MPORT" --export "$EXPORT" --duration "$dur" --normal "$NORMAL" \
    --rate "$RATE" --settle "$SETTLE" --unread-calls "$UNREAD_CALLS" "${mix[@]}" \
    >"$tag.out" 2>"$tag.err" & local lg=$!
  # the counters half-way through the normal clients' run
  local i
  for ((i = 0; i < 1200; i++)); do
    grep -q '^PHASE normal-start' "$tag.err" 2>/dev/null && break
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$lg" 2>/dev/null; then
    sleep "$(awk -v d="$dur" 'BEGIN {print d / 2}')"
    mid=$(counters "$tag-mid")
  fi
  wait "$lg" || { rnfs_log "  rnfs-soak failed (status $?): $(tail -1 "$tag.err")"; FAILS=$((FAILS + 1)); }
  sleep 2 # the hostile connections are closed: does memory come back?
  alive=yes; kill -0 "$SRV_PID" 2>/dev/null || alive=no
  after=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$SRV_PID/status" 2>/dev/null || echo -)
  [ "$alive" = yes ] && record "$s" "$run" counters_after "$(counters "$tag-after")"
  kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=
  killed=$(sed -n 's/^KILLED after=\([0-9]*\).*/\1/p' "$tag.rss")
  stop_server
  res=$(grep '^RESULT' "$tag.out" || true)
  local k
  for k in served clients ops errors ops_per_s p50_ms p99_ms max_ms min_client_ops hostile hostile_open_at_start ramp_secs forge_mode; do
    record "$s" "$run" "$k" "$(field "$k" "$res")"
  done
  record "$s" "$run" rss_idle_mib "$(awk -v k="$rss0" 'BEGIN {printf "%.0f", k/1024}')"
  record "$s" "$run" peak_rss_mib "$(awk '$1 != "KILLED" && $3 + 0 > m {m = $3 + 0} END {printf "%.0f", m/1024}' "$tag.rss")"
  record "$s" "$run" rss_after_mib "$after"
  record "$s" "$run" killed_at_cap "${killed:-no}"
  record "$s" "$run" alive_after "$alive"
  record "$s" "$run" counters_mid "${mid:--}"
  grep '^GROUP' "$tag.out" | while read -r line; do
    record "$s" "$run" "group_$(field kind "$line")" "${line#GROUP }"
  done || true
  res=${res:-no RESULT}; rnfs_log "  ${res%% rate=*}; peak RSS $(get "$s" "$run" peak_rss_mib) MiB${killed:+ (KILLED at the cap)}"
}

get() { awk -F'\t' -v s="$1" -v r="$2" -v k="$3" '$1 == s && $2 == r && $3 == k {v = $4} END {print v}' "$RES"; }

IFS=, read -ra SV <<<"$SERVERS"
for s in "${SV[@]}"; do
  case "$s" in rnfs|ganesha) ;; *) rnfs_die "unknown server $s (rnfs, ganesha)" ;; esac
  run_soak "$s" A
  run_soak "$s" B
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

# ---- report -----------------------------------------------------------------------------------
GOAL_MISSED=
{
  echo "$(sed -n 's/^date: //p' "$OUT/machine.txt"), rnfs $(sed -n 's/^rnfs: //p' "$OUT/machine.txt"); $(sed -n 's/^machine: //p' "$OUT/machine.txt")"
  echo
  echo "| server | run | normal ops/s | B/A | p50 ms | p99 ms | max ms | served | errors | peak RSS MiB | RSS after MiB | server state | counters (mid-run) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for s in "${SV[@]}"; do
    a=$(get "$s" A ops_per_s)
    for run in A B; do
      v=$(get "$s" "$run" ops_per_s)
      ratio=$(awk -v a="$a" -v b="$v" 'BEGIN {if (a > 0 && b != "") printf "%.2f", b / a; else print "-"}')
      [ "$run" = A ] && ratio=1
      state=up; [ "$(get "$s" "$run" alive_after)" = no ] && state=dead
      k=$(get "$s" "$run" killed_at_cap); [ "$k" = no ] || state="killed at $MEMCAP, ${k} s after start"
      lat="$(get "$s" "$run" p50_ms) | $(get "$s" "$run" p99_ms) | $(get "$s" "$run" max_ms)"
      [ "$(get "$s" "$run" ops)" = 0 ] && lat="- | - | -" # no successful call to time
      echo "| $s | $run | ${v:--} | $ratio | $lat | $(get "$s" "$run" served)/$(get "$s" "$run" clients) | $(get "$s" "$run" errors) | $(get "$s" "$run" peak_rss_mib) | $(get "$s" "$run" rss_after_mib) | $state | $(get "$s" "$run" counters_mid) |"
      if [ "$s" = rnfs ] && [ "$run" = B ]; then
        awk -v r="$ratio" 'BEGIN {exit !(r != "-" && r >= 0.80)}' || GOAL_MISSED+=" throughput"
        if [ -n "$HAS_BUDGET" ]; then
          awk -v p="$(get "$s" B peak_rss_mib)" -v b="$(($(to_bytes "$BUDGET") >> 20))" 'BEGIN {exit !(p <= b)}' || GOAL_MISSED+=" rss"
        fi
      fi
      [ "$run" = A ] && [ "$(get "$s" A served)" != "$(get "$s" A clients)" ] && { echo "(run A of $s did not serve every client: the instrument or the server is broken)" >&2; FAILS=$((FAILS + 1)); }
    done
  done
  echo
  echo "Hostile groups in run B (connects: connections made, reconnections included; closed: by the server):"
  for s in "${SV[@]}"; do
    echo "$s: $(get "$s" B hostile_open_at_start) of $(get "$s" B hostile) hostile connections open when the normal clients started (after $(get "$s" B ramp_secs) s of ramp, at most 60)."
  done
  echo
  echo "| server | group | conns | connects | connect failed | closed by server | calls | replies | OK/BADHANDLE/STALE/other |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for s in "${SV[@]}"; do
    for g in idle loris unread forge; do
      l=" $(get "$s" B "group_$g")"
      [ "$l" = " " ] && continue
      st=-; [ "$g" = forge ] && st="$(field ok "$l")/$(field badhandle "$l")/$(field stale "$l")/$(field other "$l") ($(get "$s" B forge_mode))"
      echo "| $s | $g | $(field conns "$l") | $(field connects "$l") | $(field connect_failed "$l") | $(field closed_by_server "$l") | $(field calls "$l") | $(field replies "$l") | $st |"
    done
  done
  echo
  echo "rnfs limits: $(sed -n 's/^rnfs limits: //p' "$OUT/machine.txt")"
  has "$SERVERS" rnfs && echo "rnfs goal (B/A >= 0.80$([ -n "$HAS_BUDGET" ] && echo ", peak RSS <= $BUDGET")): $([ -z "$GOAL_MISSED" ] && echo met || echo "MISSED:$GOAL_MISSED")"
} > "$OUT/table.md"
cat "$OUT/table.md"
echo "samples: $RES; logs: $LOGS"
[ "$FAILS" = 0 ] || { echo "$FAILS run(s) failed" >&2; exit 1; }
[ -z "$CHECK" ] || [ -z "$GOAL_MISSED" ] || ! has "$SERVERS" rnfs || { echo "goal missed:$GOAL_MISSED" >&2; exit 1; }
