#!/bin/bash
# bench/chart.sh OUT CONFIG... : OUT/chart.png, one group of bars per workload, each bar the
# median of a configuration as a percentage of the best median of that workload (all the
# throughput-like rows of OUT/results.tsv; higher is better). Needs gnuplot.
set -euo pipefail
OUT=$1; shift
CONFIGS="$*"
awk -F'\t' -v configs="$CONFIGS" '
function sortv(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t } }
function med(k,   n, a, i) {
  if (!(k in vals)) return ""
  n = split(vals[k], a, " "); for (i = 1; i <= n; i++) a[i] += 0; sortv(a, n)
  return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
$2 ~ /RSS|ratio|iperf3|load/ { next }
{ k = $2 SUBSEP $1; vals[k] = (k in vals) ? vals[k] " " $4 : $4; if (!($2 in seen)) { seen[$2] = 1; rows[++n] = $2 } }
END {
  nc = split(configs, C, " ")
  printf "workload"; for (i = 1; i <= nc; i++) printf "\t\"%s\"", C[i]; print ""
  for (r = 1; r <= n; r++) {
    best = 0
    for (i = 1; i <= nc; i++) { v = med(rows[r] SUBSEP C[i]); if (v != "" && v + 0 > best) best = v + 0 }
    w = rows[r]; gsub(/ (MB\/s|IOPS|files\/s|entries\/s)$/, "", w); gsub(/"/, "", w)
    printf "\"%s\"", w
    for (i = 1; i <= nc; i++) { v = med(rows[r] SUBSEP C[i]); printf "\t%s", (v == "" || best == 0) ? "0" : sprintf("%.1f", 100 * v / best) }
    print ""
  }
}' "$OUT/results.tsv" > "$OUT/chart.dat"
nc=$#
gnuplot <<GP
set terminal pngcairo size 1600,800 font ",10" noenhanced
set output "$OUT/chart.png"
set title "NFSv3 on 127.0.0.1: median of each configuration, % of the best in each workload (higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set ylabel "% of best"
set yrange [0:110]
set grid ytics
set key outside right top
set xtics rotate by -35 scale 0
set bmargin 12
plot for [i=2:$((nc + 1))] "$OUT/chart.dat" using i:xtic(1) title columnheader(i)
GP
