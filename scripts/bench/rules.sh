#!/usr/bin/env bash
# The cost of the traffic policy: Do53 UDP throughput through dnsfront with
# no rules, then with 100 typical query rules and dynamic rules that count
# every query and answer (none of them matches, so every query pays for the
# whole list), runs alternated A B A B. Writes query-udp-norules.N.json and
# query-udp-rules100.N.json and rules.md (bench compare B/A) under OUT.
#
# Usage: scripts/bench/rules.sh [OUT]   (BIN, DURATION, Q_CONNECTIONS,
# Q_INFLIGHT, ROUNDS as in lib.sh; ROUNDS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/lib.sh

[ -x "$BIN" ] || die "$BIN not built (make build)"
out=${1:-bench/results/rules-$(date -u +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-2}
mkdir -p "$out"
start_backend

# rules_yaml N: N query rules of four kinds (a suffix spoofed, ANY under a
# suffix truncated, a network dropped, a name refused) and dynamic rules.
rules_yaml() {
	local n=$1 i
	[ "$n" -gt 0 ] || return 0
	echo "query_rules:"
	for i in $(seq 0 $((n - 1))); do
		case $((i % 4)) in
		0) echo "  - {name: r$i, selector: {type: QNameSuffix, suffixes: [\"z$i.example.net.\"]}, action: {type: Spoof, ips: [\"192.0.2.9\"]}}" ;;
		1) echo "  - {name: r$i, selector: {type: And, selectors: [{type: QType, qtype: ANY}, {type: QNameSuffix, suffixes: [\"a$i.example.org.\"]}]}, action: {type: TC}}" ;;
		2) echo "  - {name: r$i, selector: {type: NetmaskGroup, netmasks: [\"10.$((i % 250)).0.0/16\"]}, action: {type: Drop}}" ;;
		3) echo "  - {name: r$i, selector: {type: QName, qname: \"exact$i.example.com.\"}, action: {type: RCode, rcode: Refused}}" ;;
		esac
	done
	cat <<-YAML
	dynamic_rules:
	  - name: floods
	    rules:
	      - {type: query-rate, rate: 100000000, seconds: 10, action_duration: 60, action: Refused}
	      - {type: rcode-rate, rcode: NXDOMAIN, rate: 100000000, seconds: 10, action_duration: 60, action: Drop}
	YAML
}

# run_case NAME NRULES ROUND
run_case() {
	local name=$1 n=$2 round=$3 port=11153
	{
		cat <<-YAML
		acl: ["127.0.0.0/8"]
		binds:
		  - listen_address: "127.0.0.1:$port"
		    protocol: Do53
		backends:
		  - address: "$BACKEND"
		    name: backend
		YAML
		rules_yaml "$n"
	} >"$WORK/$name.yaml"
	"$BIN" check-config --config "$WORK/$name.yaml" >&2 || die "dnsfront rejects $WORK/$name.yaml"
	"$BIN" serve --config "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_port "127.0.0.1:$port" udp
	log "$name (round $round): queries over udp"
	"$BIN" bench query --target "127.0.0.1:$port" --proto udp --connections "$Q_CONNECTIONS" \
		--inflight "$Q_INFLIGHT" --duration "$DURATION" --server-pid "$SERVER_PID" \
		--label "udp $name" --json "$out/query-udp-$name.$round.json" >/dev/null
	stop_server
}

a=() b=()
for r in $(seq "$ROUNDS"); do
	run_case norules 0 "$r"
	run_case rules100 100 "$r"
	a+=("$out/query-udp-norules.$r.json")
	b+=("$out/query-udp-rules100.$r.json")
done
join() { local IFS=,; echo "$*"; }
{
	echo "# Traffic policy cost: Do53 UDP, no rules (A) against 100 rules and dynamic rules (B)"
	echo
	echo "$(nproc) CPUs, client and server on one machine, DURATION=$DURATION per run, $ROUNDS rounds alternated."
	echo
	"$BIN" bench compare --markdown "$(join "${a[@]}")" "$(join "${b[@]}")"
} >"$out/rules.md"
cat "$out/rules.md"
log "results in $out"
