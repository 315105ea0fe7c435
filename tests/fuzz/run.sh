#!/bin/sh
# make fuzz: each libFuzzer target for SECONDS from its seed corpus; a crash,
# leak or failed invariant stops the run and leaves its input in FUZZ_BUILD.
# Usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS HTTP_GOLDEN_BIN
set -eu
B=$1
S=$2
GOLDEN=$3
mkdir -p "$B/corpus-http1" "$B/corpus-config" "$B/seed-http1"
for d in tests/http/[0-9]*; do
	"$GOLDEN" --raw "$d/input" > "$B/seed-http1/$(basename "$d")"
done
status=0
echo "fuzz: fuzz_http1 for ${S}s"
"$B/fuzz_http1" -max_total_time="$S" -max_len=4096 -print_final_stats=1 -artifact_prefix="$B/" \
	"$B/corpus-http1" "$B/seed-http1" 2>"$B/fuzz_http1.log" || status=1
tail -n 12 "$B/fuzz_http1.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done' || true
echo "fuzz: fuzz_config for ${S}s"
"$B/fuzz_config" -max_total_time="$S" -max_len=16384 -print_final_stats=1 -artifact_prefix="$B/" \
	"$B/corpus-config" tests/data/config 2>"$B/fuzz_config.log" || status=1
tail -n 12 "$B/fuzz_config.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done' || true
echo "fuzz: fuzz_jwt for ${S}s"
mkdir -p "$B/corpus-jwt"
"$B/fuzz_jwt" -max_total_time="$S" -max_len=4096 -print_final_stats=1 -artifact_prefix="$B/" \
	"$B/corpus-jwt" 2>"$B/fuzz_jwt.log" || status=1
tail -n 12 "$B/fuzz_jwt.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done' || true
echo "fuzz: fuzz_inject for ${S}s"
mkdir -p "$B/corpus-inject" "$B/seed-inject"
for d in tests/inject/[0-9]*; do
	# the first byte picks the configuration (fuzz_inject.c)
	printf '\000' | cat - "$d/request.json" > "$B/seed-inject/$(basename "$d")"
	# and the Pod alone (inject_pod's input)
	/usr/bin/python3 -c 'import json,sys; print("\003" + json.dumps(json.load(open(sys.argv[1]))["request"]["object"]))' \
		"$d/request.json" 2>/dev/null > "$B/seed-inject/pod-$(basename "$d")" || rm -f "$B/seed-inject/pod-$(basename "$d")"
done
"$B/fuzz_inject" -max_total_time="$S" -max_len=16384 -print_final_stats=1 -artifact_prefix="$B/" \
	"$B/corpus-inject" "$B/seed-inject" 2>"$B/fuzz_inject.log" || status=1
tail -n 12 "$B/fuzz_inject.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done' || true
echo "fuzz: fuzz_validate for ${S}s"
mkdir -p "$B/corpus-validate" "$B/seed-validate"
# every object of tests/data/config as the API server would send it for validation
/usr/bin/python3 - "$B/seed-validate" tests/data/config <<'PY' || true
import glob, json, os, sys, yaml
out, n = sys.argv[1], 0
for path in sorted(glob.glob(os.path.join(sys.argv[2], "**", "*.y*ml"), recursive=True)):
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if isinstance(d, dict)]
    except Exception:
        continue
    for d in docs:
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "u", "operation": "CREATE", "dryRun": n % 2 == 1, "object": d,
                              "resource": {"group": "networking.istio.io", "version": "v1", "resource": "x"}}}
        with open(os.path.join(out, "seed-%d" % n), "w") as f:
            json.dump(review, f, default=str)
        n += 1
PY
"$B/fuzz_validate" -max_total_time="$S" -max_len=16384 -print_final_stats=1 -artifact_prefix="$B/" \
	"$B/corpus-validate" "$B/seed-validate" 2>"$B/fuzz_validate.log" || status=1
tail -n 12 "$B/fuzz_validate.log" | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done' || true
if [ "$status" -ne 0 ]; then
	echo "fuzz: FAILED (see $B/*.log and the crash-* files in $B)"
	exit 1
fi
echo "fuzz: ok"
