#!/bin/bash
# What NFSv4.1 delegations buy the Linux client: open, read and close of many small files,
# twice, against three servers in one boot of the linux-client VM (Debian's kernel under QEMU
# TCG, tests/harness/linux-client): rnfs with --delegations, rnfs with --no-delegations, and
# nfs-ganesha with its defaults (Debian's 4.3: NFSV4 Delegations = false, so it grants none). Run as root.
#
#   bench/v4-deleg.sh           3 rounds over 10,000 files of 4 KiB in 100 directories
#   bench/v4-deleg.sh --smoke   1 round over 200 files in 4 directories (about a minute);
#                               fails also if the delegating rnfs granted no delegation
#
# Options: --rounds N  --files N  --dirs N  --size BYTES  --out DIR
#          --client-watermark N  (the guest client's nfsv4 delegation_watermark: how many
#                                 delegations it keeps before returning unused ones; 5000
#                                 by default in Debian's 6.1)
# The files are made on the host, in each server's export directory (the same tree three
# times, on the same file system under the work dir), before the guest mounts: making them
# through the TCG guest would take ~0.1 s a file. The guest (tests/guest/nfs4-deleg-bench.sh)
# mounts rnfs-deleg at /mnt (guest port 2049), rnfs-nodeleg at /mnt2 (guest port 20048) and
# ganesha at /mnt3 (guest port 2050), all vers=4.1,proto=tcp. Each round: drop caches once
# (timed: evicting the inodes returns the delegations the client holds), then for each server
# (the order rotating) pass 1 and pass 2, each a `cat` of every file (xargs cat > /dev/null),
# timed, with the client's calls during the pass (deltas of /proc/self/mountstats).
# Output (stdout and DIR/report.md): seconds per pass (median [min-max] over the rounds) with
# the ratios rnfs-deleg/ganesha, rnfs-nodeleg/ganesha and rnfs-deleg/rnfs-nodeleg, the
# client's calls per pass (median over the rounds), and rnfs's own counters (`rnfs stats`,
# whole run) for both rnfs servers; samples in DIR/results.tsv and DIR/ops.tsv, `uptime` before
# and after in DIR/machine.txt, `rnfs stats` in DIR/stats-rnfs-{deleg,nodeleg}.txt (and
# .prom). DIR defaults to $RNFS_BENCH_WORK/v4-deleg ($RNFS_TEST_WORK/bench/v4-deleg).
# Ends with "bench: N passed, N failed"; exit status 0 only if every pass gave a number for
# every server in every round, each rnfs served the OPENs of its own mount (no two servers
# merged by the client's trunking detection), rnfs-deleg granted delegations and
# rnfs-nodeleg none.
# RNFS_BIN: bench this rnfs binary instead of building target/release/rnfs.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
. "$REPO/tests/harness/lib.sh"
. "$BENCH/v4-lib.sh"
H=$RNFS_HARNESS

ROUNDS=3 FILES=10000 DIRS=100 SIZE=4096 OUT= WATERMARK=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) ROUNDS=1; FILES=200; DIRS=4 ;;
    --rounds) ROUNDS=$2; shift ;;
    --files) FILES=$2; shift ;;
    --dirs) DIRS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --client-watermark) WATERMARK=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) rnfs_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
for v in "$ROUNDS" "$FILES" "$DIRS" "$SIZE"; do
  [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || rnfs_die "--rounds, --files, --dirs and --size take a number of at least 1"
done
[ -z "$WATERMARK" ] || [[ $WATERMARK =~ ^[0-9]+$ ]] || rnfs_die "--client-watermark takes a number"
[ "$DIRS" -le "$FILES" ] || rnfs_die "--dirs more than --files"
[ "$(id -u)" = 0 ] || rnfs_die "run as root (drop_caches in the VM, apt-get)"

v4_bench_dirs v4-deleg
SERVERS="rnfs-deleg rnfs-nodeleg ganesha"

rnfs_need_pkgs iproute2 util-linux nfs-ganesha nfs-ganesha-vfs rpcbind python3
v4_bench_binary
v4_bench_vm

# ---- the servers and their files ----------------------------------------------------------
EXP=$W/exports
cleanup() {
  RNFS_STATE=$W/rnfs-deleg "$H/rnfs.sh" stop >/dev/null 2>&1 || true
  RNFS_STATE=$W/rnfs-nodeleg "$H/rnfs.sh" stop >/dev/null 2>&1 || true
  GANESHA_STATE=$W/ganesha "$H/ganesha.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$EXP" "$W/rnfs-deleg" "$W/rnfs-nodeleg" "$W/ganesha"
mkdir -p "$EXP"
ADD=$W/guest-add
rm -rf "$ADD"; mkdir -p "$ADD/bench"
# the tree: FILES files of SIZE bytes (each its own bytes), spread over DIRS directories;
# made once, then copied into each export
rnfs_log "making $FILES files of $SIZE bytes in $DIRS directories, three times"
python3 - "$EXP/tree" "$FILES" "$DIRS" "$SIZE" "$ADD/bench/files" <<'EOF'
import os, sys
root, files, dirs, size, listing = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
paths = []
for i in range(files):
    d = "d%03d" % (i * dirs // files)
    os.makedirs(os.path.join(root, d), exist_ok=True)
    p = "%s/f%05d" % (d, i)
    seed = ("%s\n" % p).encode()
    with open(os.path.join(root, p), "wb") as f:
        f.write((seed * (size // len(seed) + 1))[:size])
    paths.append(p)
with open(listing, "w") as f:
    f.write("\n".join(paths) + "\n")
EOF
for s in $SERVERS; do cp -a "$EXP/tree" "$EXP/$s"; done
rm -rf "$EXP/tree"
FS=$(df -T "$EXP" | awk 'NR==2{print $2}')

P1=$(rnfs_free_port)
P2=$(rnfs_free_port "$P1")
GP=$(rnfs_free_port "$P1" "$P2")
GM=$(rnfs_free_port "$P1" "$P2" "$GP")
RNFS_SERVE_EXTRA="${RNFS_SERVE_EXTRA:-} --delegations" RNFS_STATE=$W/rnfs-deleg \
  "$H/rnfs.sh" start "$EXP/rnfs-deleg" "$P1" >"$LOGS/rnfs-deleg-start.log" 2>&1 ||
  { cat "$LOGS/rnfs-deleg-start.log"; rnfs_die "rnfs --delegations did not start"; }
# not in the same second: rnfs's client ids are its start time in seconds and a count, and
# its server owner is the same string in every instance; the Linux client takes two servers
# answering the same client id and owner major id for one (nfs41_walk_client_list: trunking)
sleep 1.1
# delegations are on by default since --no-delegations exists (older binaries: off by default)
NODELEG=
if "$RNFS_BIN" serve --help 2>/dev/null | grep -q -- '--no-delegations'; then NODELEG=--no-delegations; fi
RNFS_SERVE_EXTRA="${RNFS_SERVE_EXTRA:-} $NODELEG" RNFS_STATE=$W/rnfs-nodeleg "$H/rnfs.sh" start "$EXP/rnfs-nodeleg" "$P2" >"$LOGS/rnfs-nodeleg-start.log" 2>&1 ||
  { cat "$LOGS/rnfs-nodeleg-start.log"; rnfs_die "rnfs did not start"; }
GANESHA_STATE=$W/ganesha "$H/ganesha.sh" start "$EXP/ganesha" "$GP" "$GM" >"$LOGS/ganesha-start.log" 2>&1 ||
  { cat "$LOGS/ganesha-start.log"; rnfs_die "ganesha did not start"; }
GANESHA_VERSION=$(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null || echo '?')
rnfs_log "rnfs --delegations on 127.0.0.1:$P1, rnfs on 127.0.0.1:$P2, ganesha $GANESHA_VERSION on 127.0.0.1:$GP; exports on $FS ($EXP)"

cat > "$ADD/bench/conf" <<EOF
A_NAME=rnfs-deleg
B_NAME=rnfs-nodeleg
B_OPTS=vers=4.1,proto=tcp,port=20048
B_EXPORT=/
C_NAME=ganesha
C_OPTS=vers=4.1,proto=tcp,port=2050
C_EXPORT=/export
ROUNDS=$ROUNDS
NFILES=$FILES
SIZE=$SIZE
WATERMARK=$WATERMARK
EOF
v4_bench_machine \
  "servers: rnfs --delegations, rnfs (no delegations), nfs-ganesha $GANESHA_VERSION (defaults: no delegations)${RNFS_SERVE_EXTRA:+; both rnfs with $RNFS_SERVE_EXTRA}" \
  "files: $FILES of $SIZE bytes in $DIRS directories per export ($FS, $EXP)" \
  "rounds: $ROUNDS${WATERMARK:+; guest client delegation_watermark $WATERMARK}"

# ---- the VM ---------------------------------------------------------------------------------
TMO=$((600 + ROUNDS * FILES * 6 / 10))   # ~75 ms a file in a cold pass here, under load
rnfs_log "guest runs tests/guest/nfs4-deleg-bench.sh: $ROUNDS round(s) of $FILES files (timeout $TMO s)"
vrc=0
"$H/linux-client/run.sh" -o vers=4.1,proto=tcp,port=2049 -p "$P1,$P2" -f "2050:$GP" -e / -a "$ADD" \
  -t "$REPO/tests/guest/nfs4-deleg-bench.sh" -T "$TMO" -d "$VMDIR" > "$OUT/guest.out" 2>&1 || vrc=$?
echo "uptime after: $(uptime)" >> "$OUT/machine.txt"
rm -f "$VMDIR/initrd.img" "$VMDIR/extra.cpio.gz"
cp "$OUT/guest.out" "$LOGS/guest.out"
[ "$vrc" = 0 ] || rnfs_log "guest exit status $vrc; console $VMDIR/console.txt, server logs under $W"
grep '^BENCH-FAIL' "$OUT/guest.out" || true
# rnfs's own counters over the whole run (the guest has unmounted: delegations returned)
for s in rnfs-deleg rnfs-nodeleg; do
  p=$P1; [ "$s" = rnfs-deleg ] || p=$P2
  "$RNFS_BIN" stats --server "127.0.0.1:$p" > "$OUT/stats-$s.txt" 2>&1 || rnfs_log "rnfs stats of $s failed"
  "$RNFS_BIN" stats --server "127.0.0.1:$p" --prometheus > "$OUT/stats-$s.prom" 2>&1 || true
done
prom() { awk -v k="$2" '$1 == k {print $2; f=1} END{if(!f) print 0}' "$OUT/stats-$1.prom"; }
op() { prom "$1" "rnfs_nfs4_ops_total{op=\"${2,,}\"}"; }   # rnfs names operations in lower case
deleg() { prom "$1" "rnfs_nfs4_delegations_total{event=\"$2\"}"; }

# ---- the report -----------------------------------------------------------------------------
RES=$OUT/results.tsv OPS=$OUT/ops.tsv
printf 'server\tstep\tround\tseconds\n' > "$RES"
awk '$1=="BENCH-SAMPLE"{printf "%s\t%s\t%s\t%s\n", $2, $3, $4, $5}' "$OUT/guest.out" >> "$RES"
printf 'server\tstep\tround\top\tcalls\n' > "$OPS"
awk '$1=="BENCH-OPS"{for(i=5;i<=NF;i++){split($i,kv,"="); printf "%s\t%s\t%s\t%s\t%s\n", $2, $3, $4, kv[1], kv[2]}}' "$OUT/guest.out" >> "$OPS"
# calls_of SERVER STEP OP: the median over the rounds of OP's calls (0 for a round without it)
calls_of() {
  awk -F'\t' -v s="$1" -v w="$2" -v o="$3" -v n="$ROUNDS" '$1==s && $2==w && $4==o {v[$3]=$5}
    END{for(r=1;r<=n;r++) print v[r]+0}' "$OPS" | sort -g |
    awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%d\n", m}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a > 0 && b > 0) printf "%.2f", a / b; else print "-"}'; }
passed=0 failed=0
declare -A MED
{
  echo "| step (seconds, median [min-max] of $ROUNDS) | rnfs-deleg | rnfs-nodeleg | ganesha | deleg/ganesha | nodeleg/ganesha | deleg/nodeleg |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for st in pass1 pass2; do
    case $st in
      pass1) row="| pass 1: cat of $FILES files, cold" ;;
      pass2) row="| pass 2: the same again" ;;
    esac
    ok=1
    for s in $SERVERS; do
      read -r m lo hi n <<< "$(stat_of "$s" "$st")"
      MED[$s]=$m
      row+=" | $m [$lo-$hi]"
      [ "$n" = "$ROUNDS" ] || ok=0
    done
    row+=" | $(ratio "${MED[rnfs-deleg]}" "${MED[ganesha]}") | $(ratio "${MED[rnfs-nodeleg]}" "${MED[ganesha]}") | $(ratio "${MED[rnfs-deleg]}" "${MED[rnfs-nodeleg]}") |"
    echo "$row"
    if [ "$ok" = 1 ] && ! grep -qE "^BENCH-FAIL [^ ]+ $st " "$OUT/guest.out"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  read -r m lo hi n <<< "$(stat_of all drop)"
  echo
  echo "Drop caches at each round's start, all three mounts at once: $m s [$lo-$hi]; the DELEGRETURNs" \
    "it sent (median of $ROUNDS; round 1 has nothing to return): rnfs-deleg $(calls_of rnfs-deleg drop DELEGRETURN)," \
    "rnfs-nodeleg $(calls_of rnfs-nodeleg drop DELEGRETURN), ganesha $(calls_of ganesha drop DELEGRETURN)."
  echo
  echo "| client calls per pass (median of $ROUNDS) | rnfs-deleg 1 | rnfs-deleg 2 | rnfs-nodeleg 1 | rnfs-nodeleg 2 | ganesha 1 | ganesha 2 |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for o in OPEN OPEN_NOATTR CLOSE GETATTR ACCESS LOOKUP READ DELEGRETURN TEST_STATEID SEQUENCE; do
    row="| $o" any=0
    for s in $SERVERS; do
      for st in pass1 pass2; do
        c=$(calls_of "$s" "$st" "$o"); row+=" | $c"; [ "$c" = 0 ] || any=1
      done
    done
    [ "$o" = OPEN ] || [ "$o" = GETATTR ] || [ "$any" = 1 ] || continue
    echo "$row |"
  done
  echo
  echo "| rnfs's own counters (whole run, every step) | rnfs-deleg | rnfs-nodeleg |"
  echo "|---|---:|---:|"
  for o in OPEN CLOSE GETATTR ACCESS LOOKUP READ DELEGRETURN SEQUENCE; do
    echo "| $o operations | $(op rnfs-deleg "$o") | $(op rnfs-nodeleg "$o") |"
  done
  for e in granted_read granted_write returned recalled refused_resource; do
    echo "| delegations $e | $(deleg rnfs-deleg "$e") | $(deleg rnfs-nodeleg "$e") |"
  done
} > "$OUT/report.md"
echo
cat "$OUT/machine.txt"
echo
cat "$OUT/report.md"
echo
# each rnfs served its own mount: the client's OPENs of every pass 1 reached it (were two
# servers with the same owner merged by the client, one would see none)
for s in rnfs-deleg rnfs-nodeleg; do
  n=$(op "$s" OPEN)
  if [ "$n" -lt "$((FILES * ROUNDS))" ]; then
    rnfs_log "$s served $n OPENs, fewer than the $((FILES * ROUNDS)) of the passes 1: did its mount reach it?"
    failed=$((failed + 1))
  fi
done
g=$(( $(deleg rnfs-deleg granted_read) + $(deleg rnfs-deleg granted_write) ))
[ "$g" -gt 0 ] || { rnfs_log "rnfs --delegations granted no delegation"; failed=$((failed + 1)); }
g=$(( $(deleg rnfs-nodeleg granted_read) + $(deleg rnfs-nodeleg granted_write) ))
[ "$g" = 0 ] || { rnfs_log "rnfs without --delegations granted $g delegations"; failed=$((failed + 1)); }
if ! grep -q '^nfs4-deleg-bench: [0-9]* samples, 0 failures' "$OUT/guest.out" || [ "$vrc" != 0 ]; then
  rnfs_log "the guest did not finish cleanly (status $vrc): $(grep '^nfs4-deleg-bench:' "$OUT/guest.out" || echo 'no closing line')"
  failed=$((failed + 1))
fi
echo "results: $OUT (report.md, results.tsv, ops.tsv, machine.txt, guest.out, stats-*.txt, vm/)"
echo "bench: $passed passed, $failed failed"
[ "$failed" = 0 ]
