#!/usr/bin/env bash
# make bench: dnsfront's benchmark suite on loopback.
#
# Starts the demo backend and dnsfront (Do53, DoT with and without a staple
# on the same certificate, DoH), runs handshakes (TLS 1.3 and 1.2, full and
# resumed, stapled and bare) and queries (UDP, TCP, DoT, DoH), and writes
# one JSON report per run, summary.md, stapling.md and suite.svg under
# bench/results/run-DATE/ (and bench/results/latest.md).
#
# Environment: BIN (bin/dnsfront), DURATION per run (5s; 12 runs),
# HS_CONCURRENCY, Q_CONNECTIONS, Q_INFLIGHT, BACKEND_ADDR, RESULTS,
# MEM_CONNS (10000; 0 skips the memory ramps), MEM_SETTLE, MEM_PROTOS.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/lib.sh

[ -x "$BIN" ] || die "$BIN not built (make build)"
RESULTS=${RESULTS:-bench/results}
out=$RESULTS/run-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"

make_pki
start_backend
start_dnsfront 11000
run_suite dnsfront 11000 "$out"
stop_server
[ "$MEM_CONNS" -gt 0 ] && run_memory dnsfront "$out"

files=()
for c in $SUITE_CASES $( [ "$MEM_CONNS" -gt 0 ] && echo "$MEM_CASES"); do files+=("$out/$c.dnsfront.json"); done
{
	echo "# dnsfront bench, $(date -u +%Y-%m-%d), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
	echo
	echo "Client and server on one machine, loopback; DURATION=$DURATION per run."
	echo
	"$BIN" bench summary --markdown --chart "$out/suite.svg" --title "dnsfront bench $(date -u +%Y-%m-%d)" "${files[@]}"
} >"$out/summary.md"

# Stapling cost: each bare run against its stapled twin (B/A < 1: stapling costs).
{
	echo "# Stapling cost (A: no staple, B: staple)"
	for v in 1.3 1.2; do
		for mode in full resumed; do
			echo
			echo "## TLS $v $mode"
			echo
			"$BIN" bench compare --markdown "$out/hs-tls$v-$mode-bare.dnsfront.json" "$out/hs-tls$v-$mode-stapled.dnsfront.json"
		done
	done
} >"$out/stapling.md"

cp "$out/summary.md" "$RESULTS/latest.md"
cat "$out/summary.md"
log "results in $out"
