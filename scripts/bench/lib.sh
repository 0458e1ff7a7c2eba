# Shared by run.sh and compare.sh: a dev PKI and staple, processes started
# and killed, readiness checks, and the benchmark suite itself.
# Everything listens on 127.0.0.1. Sourced, not executed.

BIN=${BIN:-bin/dnsfront}
DURATION=${DURATION:-5s}          # per run; the suite is 12 runs
HS_CONCURRENCY=${HS_CONCURRENCY:-8}
Q_CONNECTIONS=${Q_CONNECTIONS:-4}
Q_INFLIGHT=${Q_INFLIGHT:-16}
# Key exchanges the handshake client offers; empty: Go's default (X25519MLKEM768 first).
CURVES=${CURVES:-}
# The memory ramp: idle connections per protocol, and how long they stay idle.
MEM_CONNS=${MEM_CONNS:-10000}
MEM_SETTLE=${MEM_SETTLE:-20s}
MEM_PROTOS=${MEM_PROTOS:-"dot doh tcp"}
# ONLY: run only these cases of the suite (names as in SUITE_CASES, e.g. "query-udp"); empty: all.
ONLY=${ONLY:-}
BACKEND_ADDR=${BACKEND_ADDR:-}     # an existing backend to use instead of starting one
BACKEND_PORT=${BACKEND_PORT:-11054}
# KEEP_WORK=1 keeps the temporary directory (configs, PKI, server logs).

# Ramps hold MEM_CONNS connections: both servers and the client need the descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dnsfront-bench.XXXXXX")

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${KEEP_WORK:-}" ]; then
		log "kept $WORK (configs, PKI, server logs)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# wait_port HOST:PORT [tcp|udp]: until something listens (10 s at most).
wait_port() {
	local addr=$1 proto=${2:-tcp} i
	for i in $(seq 100); do
		if [ "$proto" = tcp ] && (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
			return 0
		fi
		# NOERROR, not just an answer: a frontend whose backend has not passed its first
		# health check answers SERVFAIL, and a run started then measures nothing.
		if [ "$proto" = udp ] && dig +time=1 +tries=1 -p "${addr##*:}" @"${addr%:*}" www.dnsfront.test A 2>/dev/null |
			grep -q 'status: NOERROR'; then
			return 0
		fi
		sleep 0.1
	done
	die "nothing answers on $addr ($proto)"
}

# make_pki: a CA, an ECDSA P-256 leaf for dns.test and 127.0.0.1, and a
# good OCSP response for it, in $WORK/pki. The staple is minted by
# `dnsfront ocsp generate` when the binary has it, else by `openssl ocsp`.
make_pki() {
	local d=$WORK/pki
	mkdir -p "$d"
	(
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
			-days 30 -subj "/CN=dnsfront bench CA" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
			-subj "/CN=dns.test" 2>/dev/null
		printf 'subjectAltName=DNS:dns.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' >ext.cnf
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 \
			-extfile ext.cnf 2>/dev/null
		# Leaf then CA: dnsfront checks a staple against the issuer in the chain.
		cat server.pem ca.pem >server.chain.pem
	) || die "openssl could not make the dev PKI"
	# openssl looks a response up by the CertID hash it is told: dnsfront mints SHA-256
	# CertIDs, openssl's own responder SHA-1.
	local idhash=-sha1
	if "$BIN" ocsp generate --help 2>/dev/null | grep -q -- --ca-key; then
		idhash=-sha256
		"$BIN" ocsp generate --cert "$d/server.chain.pem" --ca-cert "$d/ca.pem" --ca-key "$d/ca.key" \
			--out "$d/server.ocsp" --days 7 --minutes 0 || die "dnsfront ocsp generate failed"
	else
		local serial exp
		serial=$(openssl x509 -in "$d/server.pem" -noout -serial | cut -d= -f2)
		exp=$(date -u -d '+30 days' +%y%m%d%H%M%SZ)
		printf 'V\t%s\t\t%s\tunknown\t/CN=dns.test\n' "$exp" "$serial" >"$d/index.txt"
		openssl ocsp -index "$d/index.txt" -rsigner "$d/ca.pem" -rkey "$d/ca.key" -CA "$d/ca.pem" \
			-issuer "$d/ca.pem" -cert "$d/server.pem" -ndays 7 -no_nonce -respout "$d/server.ocsp" >/dev/null 2>&1 ||
			die "openssl ocsp could not mint the staple"
	fi
	openssl ocsp -respin "$d/server.ocsp" -issuer "$d/ca.pem" -CAfile "$d/ca.pem" "$idhash" -cert "$d/server.pem" -no_nonce 2>&1 |
		grep -q 'server.pem: good' || die "the minted staple does not verify"
	PKI=$d
}

# start_backend: the demo backend (authoritative for dnsfront.test) in a
# dnsfront process of its own, so that its CPU is never charged to the
# frontend being measured. BACKEND is set to its address.
start_backend() {
	if [ -n "$BACKEND_ADDR" ]; then
		BACKEND=$BACKEND_ADDR
		return
	fi
	BACKEND=127.0.0.1:$BACKEND_PORT
	local relay=127.0.0.1:$((BACKEND_PORT + 1))
	# The schema is config's; keep this heredoc the only place
	# that knows it.
	cat >"$WORK/backend.yaml" <<-YAML
	acl: ["127.0.0.0/8"]
	binds:
	  - listen_address: "$relay"
	    protocol: Do53
	backends:
	  - address: "$BACKEND"
	    name: demo
	demo_backend:
	  listen_address: "$BACKEND"
	YAML
	"$BIN" serve --config "$WORK/backend.yaml" >"$WORK/backend.log" 2>&1 &
	PIDS+=($!)
	wait_port "$BACKEND" udp
}

# start_dnsfront PORTBASE: Do53 on PORTBASE+53, DoT with the staple on
# +853, DoT without on +854 (same certificate), DoH with the staple on +443.
# Sets SERVER_PID.
start_dnsfront() {
	local base=$1
	cat >"$WORK/dnsfront.yaml" <<-YAML
	acl: ["127.0.0.0/8"]
	general:
	  event_loops: 0
	  # Long enough for the memory ramp's idle connections to stay open (dnsdist
	  # gets the same below).
	  tcp_idle_timeout: 300s
	binds:
	  - listen_address: "127.0.0.1:$((base + 53))"
	    protocol: Do53
	  - listen_address: "127.0.0.1:$((base + 853))"
	    protocol: DoT
	    tls:
	      certificates:
	        - certificate: "$PKI/server.chain.pem"
	          key: "$PKI/server.key"
	      ocsp_response_files: ["$PKI/server.ocsp"]
	      minimum_version: "tls1.2"
	      session_tickets: true
	  - listen_address: "127.0.0.1:$((base + 854))"
	    protocol: DoT
	    tls:
	      certificates:
	        - certificate: "$PKI/server.chain.pem"
	          key: "$PKI/server.key"
	      minimum_version: "tls1.2"
	      session_tickets: true
	  - listen_address: "127.0.0.1:$((base + 443))"
	    protocol: DoH
	    tls:
	      certificates:
	        - certificate: "$PKI/server.chain.pem"
	          key: "$PKI/server.key"
	      ocsp_response_files: ["$PKI/server.ocsp"]
	      minimum_version: "tls1.2"
	    doh:
	      paths: ["/dns-query"]
	      idle_timeout: 300
	backends:
	  - address: "$BACKEND"
	    name: backend
	YAML
	"$BIN" check-config --config "$WORK/dnsfront.yaml" >&2 || die "dnsfront rejects the bench config ($WORK/dnsfront.yaml)"
	"$BIN" serve --config "$WORK/dnsfront.yaml" >"$WORK/dnsfront.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_port "127.0.0.1:$((base + 53))" udp
	wait_port "127.0.0.1:$((base + 853))"
	wait_port "127.0.0.1:$((base + 854))"
	wait_port "127.0.0.1:$((base + 443))"
}

# start_dnsdist PORTBASE: the same four listeners in dnsdist (Debian
# package), its staples given with ocspResponses. Sets SERVER_PID.
start_dnsdist() {
	local base=$1
	command -v dnsdist >/dev/null || die "dnsdist is not installed (apt-get install -y dnsdist)"
	cat >"$WORK/dnsdist.conf" <<-LUA
	setSecurityPollSuffix('')
	setACL({'127.0.0.0/8'})
	setLocal('127.0.0.1:$((base + 53))')
	setTCPRecvTimeout(300)
	setMaxTCPConnectionsPerClient(0)
	newServer({address='$BACKEND', name='backend'})
	addTLSLocal('127.0.0.1:$((base + 853))', '$PKI/server.chain.pem', '$PKI/server.key', {ocspResponses={'$PKI/server.ocsp'}, minTLSVersion='tls1.2'})
	addTLSLocal('127.0.0.1:$((base + 854))', '$PKI/server.chain.pem', '$PKI/server.key', {minTLSVersion='tls1.2'})
	addDOHLocal('127.0.0.1:$((base + 443))', '$PKI/server.chain.pem', '$PKI/server.key', {'/dns-query'}, {ocspResponses={'$PKI/server.ocsp'}, minTLSVersion='tls1.2', idleTimeout=300})
	LUA
	dnsdist --check-config -C "$WORK/dnsdist.conf" >&2 || die "dnsdist rejects $WORK/dnsdist.conf"
	dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" >"$WORK/dnsdist.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_port "127.0.0.1:$((base + 53))" udp
	wait_port "127.0.0.1:$((base + 853))"
	wait_port "127.0.0.1:$((base + 854))"
	wait_port "127.0.0.1:$((base + 443))"
}

# stop_server: end the frontend started last (compare.sh alternates them).
stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}

# run_suite NAME PORTBASE OUTDIR: the handshake suite (TLS 1.3 and 1.2, full
# and resumed, with and without a staple) then the query suite (UDP, TCP,
# DoT, DoH), one JSON report per run named CASE.NAME.json.
run_suite() {
	local name=$1 base=$2 out=$3 v mode staple port flag q
	local common=(--sni dns.test --ca "$PKI/ca.pem" --duration "$DURATION" --server-pid "$SERVER_PID")
	for v in 1.3 1.2; do
		for mode in full resumed; do
			for staple in stapled bare; do
				wanted "hs-tls$v-$mode-$staple" || continue
				port=$((base + 853))
				[ "$staple" = bare ] && port=$((base + 854))
				flag=()
				[ "$mode" = resumed ] && flag=(--resume)
				log "$name: handshakes TLS $v $mode $staple"
				# Only TLS 1.3 has a post-quantum key exchange to leave out.
				[ -n "$CURVES" ] && [ "$v" = 1.3 ] && flag+=(--curves "$CURVES")
				"$BIN" bench handshake --target "127.0.0.1:$port" --tls "$v" "${flag[@]}" \
					--concurrency "$HS_CONCURRENCY" "${common[@]}" \
					--label "$name hs tls$v $mode $staple" --json "$out/hs-tls$v-$mode-$staple.$name.json" >/dev/null
			done
		done
	done
	for q in udp tcp dot doh; do
		wanted "query-$q" || continue
		case $q in
		udp | tcp) port=$((base + 53)) ;;
		dot) port=$((base + 853)) ;;
		doh) port=$((base + 443)) ;;
		esac
		log "$name: queries over $q"
		"$BIN" bench query --target "127.0.0.1:$port" --proto "$q" --connections "$Q_CONNECTIONS" \
			--inflight "$Q_INFLIGHT" "${common[@]}" \
			--label "$name query $q" --json "$out/query-$q.$name.json" >/dev/null
	done
}

# run_memory NAME OUTDIR: for each protocol of MEM_PROTOS, a fresh server
# (start_NAME on port base 13000), a ramp of MEM_CONNS idle connections,
# and the server's RSS per connection at the peak and after MEM_SETTLE.
# A fresh process per protocol, so that one ramp's heap is not reused by
# the next. Writes mem-PROTO.NAME.json.
run_memory() {
	local name=$1 out=$2 p port
	for p in $MEM_PROTOS; do
		"start_$name" 13000
		case $p in
		tcp) port=13053 ;;
		dot) port=13853 ;;
		doh) port=13443 ;;
		esac
		log "$name: memory, $MEM_CONNS idle $p connections"
		"$BIN" bench conns --target "127.0.0.1:$port" --proto "$p" --count "$MEM_CONNS" --settle "$MEM_SETTLE" \
			--sni dns.test --ca "$PKI/ca.pem" --server-pid "$SERVER_PID" \
			--label "$name mem $p" --json "$out/mem-$p.$name.json" >/dev/null
		stop_server
	done
}

# wanted CASE: whether ONLY lets CASE run.
wanted() {
	[ -z "$ONLY" ] && return 0
	case " $ONLY " in *" $1 "*) return 0 ;; esac
	return 1
}

# The cases of run_suite, in order, for tables (those ONLY lets run).
SUITE_CASES=$(for c in hs-tls1.3-full-stapled hs-tls1.3-full-bare hs-tls1.3-resumed-stapled hs-tls1.3-resumed-bare \
	hs-tls1.2-full-stapled hs-tls1.2-full-bare hs-tls1.2-resumed-stapled hs-tls1.2-resumed-bare \
	query-udp query-tcp query-dot query-doh; do if wanted "$c"; then printf "%s " "$c"; fi; done)
MEM_CASES=$(for p in $MEM_PROTOS; do printf 'mem-%s ' "$p"; done)
