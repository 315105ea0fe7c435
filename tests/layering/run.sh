#!/bin/sh
# Layering check (make check-layering): first the planted-violation fixture
# must be rejected with exactly the expected violations, so a checker that
# accepts anything fails; then the real tree must pass.
#
# Usage: tests/layering/run.sh      (from the repository root)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHECK="$ROOT/scripts/check_layering.pl"
FIX="$HERE/fixtures/bad"

out=$(perl "$CHECK" "$FIX")
rc=$?
if [ "$rc" -ne 1 ]; then
	echo "layering: FAIL: the checker exited $rc on the planted violations (want 1)"
	echo "$out"
	exit 1
fi
got=$(printf '%s\n' "$out" | grep -v '^check-layering:' | cut -d: -f1-3)
if [ "$got" != "$(cat "$FIX/EXPECTED")" ]; then
	echo "layering: FAIL: the planted violations were not reported exactly as in $FIX/EXPECTED"
	echo "--- got"
	printf '%s\n' "$got"
	echo "--- want"
	cat "$FIX/EXPECTED"
	exit 1
fi
perl "$CHECK" "$ROOT" || exit 1
echo "layering: ok (fixture: $(grep -c . "$FIX/EXPECTED") planted violations caught; tree clean)"
