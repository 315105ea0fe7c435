#!/bin/sh
# Run every Check unit-test binary; print one summary line; exit non-zero on any failure.
set -u
shift
pass=0
fail=0
for t in "$@"; do
	if CK_FORK=yes "$t"; then
		pass=$((pass + 1))
	else
		echo "FAILED: $t"
		fail=$((fail + 1))
	fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
