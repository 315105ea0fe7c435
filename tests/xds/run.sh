#!/bin/sh
# Run every golden xDS case (tests/xds/NNNN/) with BUILD/tests/xds/golden;
# print one summary line; exit non-zero on any failure.
#   sh tests/xds/run.sh BUILD [CASE...]     (GOLDEN_UPDATE=1 rewrites expected/)
set -u
build=${1:?usage: run.sh BUILD [CASE...]}
shift
bin=$build/tests/xds/golden
dir=$(dirname "$0")
if [ ! -x "$bin" ]; then
	echo "xds-golden: $bin not built (make xds-golden)"
	exit 2
fi
if [ $# -eq 0 ]; then
	set -- $(ls -d "$dir"/[0-9][0-9][0-9][0-9] 2>/dev/null)
fi
# meshd's log (e.g. the rejection a case is about) is shown only when the case fails
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pass=0
fail=0
# each case's warm-cache pass starts from the cache of the case before it
# (golden.c: the case is an edit of that one)
prev=
for c in "$@"; do
	if "$bin" "$c" $prev 2>"$log"; then
		pass=$((pass + 1))
	else
		cat "$log"
		echo "FAILED: $c ($(sed -n 1p "$c/README" 2>/dev/null))"
		fail=$((fail + 1))
	fi
	prev=$c
done
echo "xds-golden: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
