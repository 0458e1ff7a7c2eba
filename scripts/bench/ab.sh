#!/usr/bin/env bash
# scripts/bench/ab.sh: one change measured as a ratio, the previous dnsfront binary (A)
# against the new one (B) on the same server, in one run, alternating A B A B so that
# the drift of a shared machine falls on both.
#
#   cp bin/dnsfront bin/dnsfront.prev   # before the change
#   make build                          # after it
#   CASES="hs conns" ROUNDS=3 scripts/bench/ab.sh
#
# Cases (CASES, default "hs"):
#   hs     TLS 1.3 full handshakes to the stapled DoT bind (CURVES, default X25519),
#          HS_CONCURRENCY in flight, DURATION each
#   udp    Do53 UDP queries, Q_CONNECTIONS sockets with Q_INFLIGHT each
#   conns  a ramp of MEM_CONNS idle DoT connections, RSS per connection at the peak and
#          after MEM_SETTLE, a fresh server per ramp; conns-doh the same over DoH
# The load generator is always B's binary, so that only the server differs.
# Environment: BIN_A (bin/dnsfront.prev), BIN_B (bin/dnsfront), ROUNDS (3), and those of
# lib.sh. Writes bench/results/ab-DATE/{rN/*.json,ab.md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5s}
CURVES=${CURVES-X25519}
BIN_A=${BIN_A:-bin/dnsfront.prev}
BIN_B=${BIN_B:-bin/dnsfront}
BIN=$BIN_B
. scripts/bench/lib.sh

[ -x "$BIN_A" ] || die "$BIN_A missing (cp bin/dnsfront bin/dnsfront.prev before the change)"
[ -x "$BIN_B" ] || die "$BIN_B not built (make build)"
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-hs}
RESULTS=${RESULTS:-bench/results}
out=$RESULTS/ab-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"

make_pki
start_backend
for r in $(seq "$ROUNDS"); do
	mkdir -p "$out/r$r"
	for side in A B; do
		srv=$BIN_A
		[ "$side" = B ] && srv=$BIN_B
		for c in $CASES; do
			BIN=$srv start_dnsfront 11000
			common=(--sni dns.test --ca "$PKI/ca.pem" --server-pid "$SERVER_PID" --label "$side $c")
			log "round $r, $side ($srv): $c"
			case $c in
			hs)
				flag=()
				[ -n "$CURVES" ] && flag=(--curves "$CURVES")
				"$BIN_B" bench handshake --target 127.0.0.1:11853 --tls 1.3 "${flag[@]}" \
					--concurrency "$HS_CONCURRENCY" --duration "$DURATION" "${common[@]}" \
					--json "$out/r$r/$c.$side.json" >/dev/null
				;;
			udp)
				"$BIN_B" bench query --target 127.0.0.1:11053 --proto udp --connections "$Q_CONNECTIONS" \
					--inflight "$Q_INFLIGHT" --duration "$DURATION" "${common[@]}" \
					--json "$out/r$r/$c.$side.json" >/dev/null
				;;
			conns)
				"$BIN_B" bench conns --target 127.0.0.1:11853 --proto dot --count "$MEM_CONNS" \
					--settle "$MEM_SETTLE" "${common[@]}" --json "$out/r$r/$c.$side.json" >/dev/null
				;;
			conns-doh)
				"$BIN_B" bench conns --target 127.0.0.1:11443 --proto doh --count "$MEM_CONNS" \
					--settle "$MEM_SETTLE" "${common[@]}" --json "$out/r$r/$c.$side.json" >/dev/null
				;;
			*) die "unknown case $c" ;;
			esac
			stop_server
		done
	done
done

{
	echo "# $BIN_A (A) against $BIN_B (B), $(date -u +%Y-%m-%d), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "$ROUNDS alternating rounds (A B), DURATION=$DURATION; ratios are B/A of the rounds' means."
	for c in $CASES; do
		as=() bs=()
		for r in $(seq "$ROUNDS"); do
			as+=("$out/r$r/$c.A.json")
			bs+=("$out/r$r/$c.B.json")
		done
		echo
		echo "## $c"
		echo
		"$BIN_B" bench compare --markdown "$(IFS=,; echo "${as[*]}")" "$(IFS=,; echo "${bs[*]}")"
		echo
		echo "Each round:"
		echo
		for r in $(seq "$ROUNDS"); do
			echo "- round $r:"
			"$BIN_B" bench compare --markdown "$out/r$r/$c.A.json" "$out/r$r/$c.B.json" | grep -Ei 'rate per server core|server CPU per op|RSS' | sed 's/^/  /' || true
		done
	done
} >"$out/ab.md"
cat "$out/ab.md"
log "results in $out"
