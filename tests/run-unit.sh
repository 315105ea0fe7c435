#!/bin/sh
# Run every Check unit-test binary, MESH_UNIT_JOBS at a time (default: the
# number of cores; most binaries spend their time waiting on sockets, child
# processes and timers, not on the CPU); print each failure's output, the
# slowest binaries and one summary line; exit non-zero on any failure.
set -u
dir=$1
shift
# Check's per-test timeout is a hang guard, not a speed check: a loaded
# machine (or ASan) must not turn it into a failure
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
jobs=${MESH_UNIT_JOBS:-$(nproc 2>/dev/null || echo 2)}
logs=$(mktemp -d "${TMPDIR:-/tmp}/mesh-unit.XXXXXX") || exit 2
trap 'rm -rf "$logs"' EXIT INT TERM

# one line per binary: "rc seconds path", its output in $logs/N.log
n=0
for t in "$@"; do
	n=$((n + 1))
	printf '%s %s\n' "$n" "$t"
done | xargs -P "$jobs" -n 2 sh -c '
	s=$(date +%s)
	CK_FORK=yes "$2" >"$0/$1.log" 2>&1
	rc=$?
	echo "$rc $(( $(date +%s) - s )) $2" >"$0/$1.res"
' "$logs"

pass=0
fail=0
for r in "$logs"/*.res; do
	[ -e "$r" ] || continue
	read -r rc secs t <"$r"
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
	else
		echo "==== FAILED: $t (exit $rc)"
		tail -n 60 "${r%.res}.log"
		fail=$((fail + 1))
	fi
done
missing=$(( $# - pass - fail ))
[ "$missing" -eq 0 ] || { echo "unit: $missing binaries did not report"; fail=$((fail + missing)); }
echo "unit: slowest (s): $(cat "$logs"/*.res 2>/dev/null | sort -k2,2nr | head -n 5 | awk '{n = split($3, p, "/"); printf "%s %s  ", p[n], $2}')"
echo "unit: $pass passed, $fail failed ($jobs at a time)"
[ "$fail" -eq 0 ]
