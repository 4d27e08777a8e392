#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target under fuzz/ once, then runs each for
# SECONDS_PER_TARGET seconds (default 10) starting from a copy of its seed corpus
# (fuzz/corpus-seed/TARGET), and fails if any target crashes, hangs or runs out of memory.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]
#
# Works with the stable toolchain only: cargo-fuzz passes nightly flags (-Zsanitizer=...),
# which RUSTC_BOOTSTRAP=1 lets the stable compiler accept. AddressSanitizer is used when its
# runtime ships with the toolchain (it does for x86_64-unknown-linux-gnu); otherwise the
# script uses `-s none` (coverage-guided, no sanitizer). FUZZ_SANITIZER=none|address|...
# forces a choice. Crash inputs are left in fuzz/artifacts/TARGET/ (git-ignored); copy one to
# fuzz/crashes-found/ to keep it.
set -euo pipefail

secs="${1:-10}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

# Tools: cargo-fuzz from crates.io, and a C++ compiler for libFuzzer (built by libfuzzer-sys).
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "fuzz-smoke: installing g++" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        echo "fuzz-smoke: a C++ compiler (g++) is needed to build libFuzzer" >&2
        exit 1
    fi
fi

targets=()
for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
done

# AddressSanitizer needs its runtime from the toolchain (librustc-*_rt.asan.a).
host="$(rustc -vV | sed -n 's/^host: //p')"
sanitizer="${FUZZ_SANITIZER:-}"
if [ -z "$sanitizer" ]; then
    if ls "$(rustc --print target-libdir)"/librustc-*_rt.asan.a >/dev/null 2>&1; then
        sanitizer=address
    else
        echo "fuzz-smoke: no ASan runtime in this toolchain; building without a sanitizer" >&2
        sanitizer=none
    fi
fi

# Build once for all targets, then run the binaries themselves: `cargo fuzz run` would run
# cargo again before each target.
start=$(date +%s)
cargo fuzz build --fuzz-dir fuzz -s "$sanitizer"
echo "fuzz-smoke: built ${#targets[@]} targets (sanitizer: $sanitizer) in $(($(date +%s) - start)) s"
bindir="fuzz/target/$host/release"
if [ "$sanitizer" = address ]; then
    export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rnfs-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus-seed/$t" ]; then
        cp -R "fuzz/corpus-seed/$t/." "$corpus/"
    fi
    extra=()
    # The server target keeps one server (and its file system, reply cache and mount list)
    # across inputs by design; LeakSanitizer's per-input checks would report that state
    # and, scanning the whole heap after every input that grows it, slow runs 40-fold.
    if [ "$t" = server_dispatch ]; then
        extra+=(-detect_leaks=0)
    fi
    log="$work/$t.log"
    t0=$(date +%s)
    mkdir -p "fuzz/artifacts/$t"
    if "$bindir/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" \
        -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 ${extra[@]+"${extra[@]}"} \
        "$corpus" >"$log" 2>&1; then
        runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
        if [ "${runs:-0}" -gt 0 ]; then
            echo "fuzz $t: $runs runs, ok ($(($(date +%s) - t0)) s)"
        else
            # Exit status 0 without a single input run (no "Done N runs" line, or N = 0)
            # tested nothing: a failure, not a pass.
            echo "fuzz $t: FAILED: ${runs:-no} runs reported ($(($(date +%s) - t0)) s); last lines of its log:"
            tail -n 12 "$log" | sed 's/^/    /'
            failed+=("$t")
        fi
    else
        echo "fuzz $t: FAILED ($(($(date +%s) - t0)) s); from its log:"
        grep -a -m 8 -A 4 -E '^rnfs-fuzz: panic|^==[0-9]+==ERROR|^SUMMARY' "$log" | sed 's/^/    /' || true
        echo "    ..."
        tail -n 12 "$log" | sed 's/^/    /'
        ls -1 "fuzz/artifacts/$t/" 2>/dev/null | sed "s|^|    artifact: fuzz/artifacts/$t/|" || true
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
    echo "fuzz-smoke: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} passed, 0 failed"
