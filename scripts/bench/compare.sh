#!/usr/bin/env bash
# make bench-compare: the suite of run.sh against dnsdist (Debian package)
# and dnsfront, alternating A B A B so that drift of the machine (thermal,
# neighbours) falls on both, then ratio tables (B/A: dnsfront/dnsdist).
#
# Both frontends get the same certificate, staple and backend (the demo
# backend in a process of its own). Only one frontend runs at a time.
# Writes bench/results/compare-DATE/{*.json,compare.md,summary.md,suite.svg}.
#
# Environment: as run.sh (MEM_CONNS=0 skips the memory ramps), plus ROUNDS (2). The default DURATION of 4s keeps
# the whole comparison (2 rounds x 2 servers x 12 runs) under 4 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-4s}
# Debian's dnsdist (OpenSSL 3.0) has no post-quantum key exchange: offer X25519 alone so
# that both servers do the same work per handshake. CURVES= (empty) offers Go's default.
CURVES=${CURVES-X25519}
. scripts/bench/lib.sh

[ -x "$BIN" ] || die "$BIN not built (make build)"
ROUNDS=${ROUNDS:-2}
SERVERS=${SERVERS:-"dnsdist dnsfront"}
RESULTS=${RESULTS:-bench/results}
out=$RESULTS/compare-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"

make_pki
start_backend
for r in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		mkdir -p "$out/r$r"
		case $s in
		dnsdist) start_dnsdist 12000; base=12000 ;;
		dnsfront) start_dnsfront 11000; base=11000 ;;
		*) die "unknown server $s" ;;
		esac
		run_suite "$s" "$base" "$out/r$r"
		stop_server
		[ "$MEM_CONNS" -gt 0 ] && run_memory "$s" "$out/r$r"
	done
done

set -- $SERVERS
a=$1 b=${2:-}
{
	echo "# dnsfront vs dnsdist, $(date -u +%Y-%m-%d), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
	echo
	echo "A: $a, B: $b; $ROUNDS alternating rounds of DURATION=$DURATION per run, averaged. $(dnsdist --version 2>/dev/null | head -1)"
	for c in $SUITE_CASES $( [ "$MEM_CONNS" -gt 0 ] && echo "$MEM_CASES"); do
		as=() bs=()
		for r in $(seq "$ROUNDS"); do
			as+=("$out/r$r/$c.$a.json")
			[ -n "$b" ] && bs+=("$out/r$r/$c.$b.json")
		done
		[ -n "$b" ] || continue
		echo
		echo "## $c"
		echo
		"$BIN" bench compare --markdown "$(IFS=,; echo "${as[*]}")" "$(IFS=,; echo "${bs[*]}")"
	done
} >"$out/compare.md"
"$BIN" bench summary --markdown --chart "$out/suite.svg" --title "dnsfront vs dnsdist" "$out"/r1/*.json >"$out/summary.md"
cp "$out/compare.md" "$RESULTS/latest-compare.md"
cat "$out/compare.md"
log "results in $out"
