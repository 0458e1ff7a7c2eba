#!/usr/bin/env bash
# fresh-runs.sh [-n RUNS] [-r REV] [-o DIR] [--no-hog]
#
# Runs `CI=true make test` RUNS times (default 5), one after another, each in a new clone
# of this repository checked out at REV (default HEAD), while one busy loop per CPU runs
# alongside for the whole series. It stops at the first failing run. Each run's output is
# DIR/runN.log (default: a new directory under /tmp) and DIR/summary.txt has a line per run
# with its exit status, duration and load average.
set -eu

runs=5 rev=HEAD out="" hog=1
while [ $# -gt 0 ]; do
	case $1 in
	-n) runs=$2; shift 2 ;;
	-r) rev=$2; shift 2 ;;
	-o) out=$2; shift 2 ;;
	--no-hog) hog=0; shift ;;
	*) echo "usage: $0 [-n RUNS] [-r REV] [-o DIR] [--no-hog]" >&2; exit 2 ;;
	esac
done

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --short "$rev")
[ -n "$out" ] || out=$(mktemp -d /tmp/dnsfront-fresh-runs.XXXXXX)
mkdir -p "$out"
work=$(mktemp -d /tmp/dnsfront-fresh-clone.XXXXXX)

hogs=()
cleanup() {
	[ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
if [ $hog = 1 ]; then
	for _ in $(seq "$(nproc)"); do
		(while :; do :; done) &
		hogs+=($!)
	done
fi

failed=0
for i in $(seq "$runs"); do
	dir=$work/run$i
	git clone -q "$repo" "$dir"
	git -C "$dir" checkout -q "$commit"
	start=$(date +%s)
	rc=0
	(cd "$dir" && CI=true make test) >"$out/run$i.log" 2>&1 || rc=$?
	echo "run $i commit $commit rc=$rc secs=$(($(date +%s) - start)) load=$(cut -d' ' -f1-3 /proc/loadavg) hog=$hog" | tee -a "$out/summary.txt"
	rm -rf "$dir"
	if [ $rc != 0 ]; then
		failed=1
		grep -- '--- FAIL' "$out/run$i.log" || true
		break
	fi
done
echo "logs: $out"
exit $failed
