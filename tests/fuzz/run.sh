#!/bin/sh
# make fuzz: each libFuzzer target for SECONDS from its seed corpus
# (tests/fuzz/corpus/TARGET, the same files `make test` replays) and its
# dictionary (tests/fuzz/TARGET.dict) when there is one; what it finds goes
# to FUZZ_BUILD/corpus-TARGET.  A crash, leak or failed invariant fails the
# run and leaves its input in FUZZ_BUILD (crash-*, leak-*, oom-*).
# Prints per target: executions, coverage (cov: edges, ft: features),
# corpus size and crashes.
# Usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS TARGET...
set -eu
B=$1
S=$2
shift 2
status=0
printf '%-12s %12s %6s %7s %8s %s\n' target execs cov ft corpus crashes
for t in "$@"; do
	mkdir -p "$B/corpus-$t"
	dict=
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
	# the configuration-sized inputs need more room than a request
	case $t in config|inject|validate) len=16384 ;; *) len=4096 ;; esac
	rc=0
	"$B/fuzz_$t" -max_total_time="$S" -max_len=$len -print_final_stats=1 -artifact_prefix="$B/" $dict \
		"$B/corpus-$t" "tests/fuzz/corpus/$t" >"$B/fuzz_$t.log" 2>&1 || rc=1
	[ $rc -eq 0 ] || status=1
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/fuzz_$t.log" | tail -n 1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$B/fuzz_$t.log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$B/corpus-$t" | wc -l)
	printf '%-12s %12s %6s %7s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$rc"
	[ $rc -eq 0 ] || grep -E 'ERROR|SUMMARY|Test unit written' "$B/fuzz_$t.log" | head -n 5
done
if [ "$status" -ne 0 ]; then
	echo "fuzz: FAILED (see $B/fuzz_*.log and the crash-* files in $B)"
	exit 1
fi
echo "fuzz: ok"
