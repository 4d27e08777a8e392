#!/bin/bash
# bench/report.sh OUT CONFIG... : the markdown table of OUT/results.tsv (written by run.sh):
# per workload and configuration, the median and min-max over the runs; then the ratios the
# issue sets targets for. Plain awk (mawk or gawk).
set -euo pipefail
OUT=$1; shift
CONFIGS="$*"
awk -F'\t' -v configs="$CONFIGS" '
function sortv(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t } }
function med(k,   n, a, i, s) {
  n = split(vals[k], a, " "); for (i = 1; i <= n; i++) a[i] += 0; sortv(a, n)
  if (n == 0) return ""
  return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function cell(k,   n, a, i, m) {
  if (!(k in vals)) return "-"
  n = split(vals[k], a, " "); for (i = 1; i <= n; i++) a[i] += 0; sortv(a, n)
  m = med(k)
  if (n == 1) return fmt(m)
  return fmt(m) " (" fmt(a[1]) "-" fmt(a[n]) ")"
}
function fmt(x) { return (x >= 100 || x == int(x)) ? sprintf("%.0f", x) : sprintf("%.2f", x) }
function storage(c) { return (c == "rnfs-mem") ? "mem" : substr(c, index(c, "/") + 1) }
function kind(c) { return (c == "rnfs-mem") ? "rnfs-mem" : substr(c, 1, index(c, "/") - 1) }
{
  k = $2 SUBSEP $1
  vals[k] = (k in vals) ? vals[k] " " $4 : $4
  if (!($2 in seen)) { seen[$2] = 1; rows[++nrows] = $2 }
}
END {
  nc = split(configs, C, " ")
  ns = 0
  for (i = 1; i <= nc; i++) { s = storage(C[i]); if (s != "mem" && !(s in hasst)) { hasst[s] = 1; S[++ns] = s } }
  hdr = "| workload (median, min-max of runs) |"; sep = "|---|"
  for (i = 1; i <= nc; i++) { hdr = hdr " " C[i] " |"; sep = sep "---|" }
  for (j = 1; j <= ns; j++) { hdr = hdr " rnfs / best peer (" S[j] ") |"; sep = sep "---|" }
  print hdr; print sep
  for (r = 1; r <= nrows; r++) {
    w = rows[r]; line = "| " w " |"
    for (i = 1; i <= nc; i++) line = line " " cell(w SUBSEP C[i]) " |"
    higher = (w !~ /RSS|ratio|iperf3|load/)
    for (j = 1; j <= ns; j++) {
      rn = med(w SUBSEP "rnfs/" S[j]); best = ""
      for (i = 1; i <= nc; i++) {
        if (storage(C[i]) != S[j] || kind(C[i]) == "rnfs") continue
        v = med(w SUBSEP C[i]); if (v == "") continue
        if (best == "" || v > best) best = v
      }
      line = line " " ((higher && rn != "" && best != "" && best > 0) ? sprintf("%.2fx", rn / best) : "-") " |"
    }
    print line
  }
  # The targets that are ratios within one configuration.
  print ""
  h2 = "| derived (medians) |"; s2 = "|---|"
  for (i = 1; i <= nc; i++) { h2 = h2 " " C[i] " |"; s2 = s2 "---|" }
  print h2; print s2
  split("seq read warm (QD 32) MB/s|seq read cold (QD 32) MB/s", R, "|")
  for (x = 1; x <= 2; x++) {
    line = "| " ((x == 1) ? "seq read warm / loopback TCP" : "seq read cold / loopback TCP") " |"
    for (i = 1; i <= nc; i++) {
      a = med(R[x] SUBSEP C[i]); b = med("loopback TCP (iperf3, 1 stream) MB/s" SUBSEP C[i])
      line = line " " ((a != "" && b != "" && b > 0) ? sprintf("%.0f%%", 100 * a / b) : "-") " |"
    }
    print line
  }
  split("rnfs client write MB/s:libnfs nfs-cp write MB/s:rnfs client read cold MB/s:libnfs nfs-cat read cold MB/s", P, ":")
  for (x = 1; x <= 3; x += 2) {
    line = "| " ((x == 1) ? "rnfs client / libnfs, write" : "rnfs client / libnfs, read cold") " |"
    for (i = 1; i <= nc; i++) {
      a = med(P[x] SUBSEP C[i]); b = med(P[x+1] SUBSEP C[i])
      line = line " " ((a != "" && b != "" && b > 0) ? sprintf("%.2fx", a / b) : "-") " |"
    }
    print line
  }
}' "$OUT/results.tsv"
