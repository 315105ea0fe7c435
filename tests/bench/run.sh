#!/bin/sh
# tests/bench/run.sh [BUILD] [--smoke] [--delta] - the scale benchmark (`make bench`).
#
# For each proxy count: write a fresh mesh of services (meshbench config),
# start meshd on it (loopback ports), connect the simulated proxies
# (meshbench run), wait until all are synced, make config changes at a set
# rate and measure change -> every concerned proxy ACKed, meshd's RSS and
# CPU, and bytes pushed; stop meshd.  Then print a table against the
# targets in DESIGN.md and how each figure grows with the proxy count.
#
# Full run: 1,000 services; 100, 500, 1,000 and 2,000 proxies (the last is
# the headline), 20 changes each.  --smoke: 20 services, 50 proxies, one
# change of each kind; proves the load generator works (exit status 0).
# --delta: every proxy count runs twice, state of the world then Delta xDS
# (DeltaAggregatedResources), and bytes per push are compared; --smoke
# always does both.
#
# Then the soak row: 2,000 proxies (state of the world) and 1,000 changes
# at a short interval; meshd's RSS after the last change is compared with
# its RSS after the 20th (what each change leaves behind for good shows as
# growth).  Its changes include the add-service kind, made bounded
# (meshbench --replace-services): each new service replaces the one the
# previous add-service change added: the proxies that asked for the old
# one unsubscribe from it and subscribe to the new one (as a gRPC client
# closing a channel and opening another), and the old one's file is
# deleted.  So the mesh stays at N+1 services and the subscriptions at
# their count, while every kind of change still runs, a service still
# appears for proxies already waiting for it, and a deleted service must
# leave nothing behind in meshd (cache entries, resources, per-stream
# state).  Growing the mesh instead (200 services and 4,000 subscriptions
# over 1,000 changes) grew meshd's RSS by ~14% from the workload alone and
# hid what churn leaves behind.  BENCH_SOAK_STEADY=1 leaves the add-service
# changes out altogether (meshbench --steady).  --smoke runs a tiny soak (50 proxies, 50 changes) that only
# exercises the code path.
#
# Then the sidecar row: SIDECARS simulated sidecars (meshbench --sidecar:
# Envoy's chain, LDS/CDS wildcard, no GENERATOR, 20 workloads' label sets)
# each holding the whole mesh, twice: state of the world, then Delta xDS
# (what meshproxy, and Envoy under Istio >= 1.22, speak by default: LDS/CDS
# wildcard, ACKs by nonce); endpoint and VirtualService (weight) changes
# alternate; sync time, RSS, change -> all ACKed p50/p99 per kind, bytes
# and meshd CPU per push, beside DESIGN.md's sidecar targets.  Full run:
# 2,000 sidecars on the 1,000-service mesh; --smoke: 50 sidecars on 20
# services.  BENCH_SIDECAR_PROTOS ("sotw delta") picks the protocols.
#
# Environment overrides: BENCH_SERVICES, BENCH_PROXIES ("100 500"; 0: no proxyless rows),
# BENCH_CHANGES, BENCH_INTERVAL_MS, BENCH_CHANNELS, BENCH_TARGETS;
# BENCH_SOAK_PROXIES, BENCH_SOAK_CHANGES (0: no soak row),
# BENCH_SOAK_INTERVAL_MS, BENCH_SOAK_STEADY; BENCH_SIDECARS (0: no sidecar
# row), BENCH_SIDECAR_CHANGES, BENCH_SIDECAR_INTERVAL_MS, BENCH_SIDECAR_WORKLOADS;
# BENCH_KEEP_LOGS=DIR keeps meshd's logs there (each push logs where its
# time went: "config generation ... built in" and "push to N streams").
set -eu

BUILD=build
SMOKE=0
PROTOS=sotw
for a in "$@"; do
	case "$a" in
	--smoke) SMOKE=1; PROTOS="sotw delta" ;;
	--delta) PROTOS="sotw delta" ;;
	-*) echo "usage: $0 [BUILD] [--smoke] [--delta]" >&2; exit 2 ;;
	*) BUILD=$a ;;
	esac
done

if [ "$SMOKE" = 1 ]; then
	SERVICES=${BENCH_SERVICES:-20}
	SIZES=${BENCH_PROXIES:-50}
	CHANGES=${BENCH_CHANGES:-5}
	INTERVAL=${BENCH_INTERVAL_MS:-300}
	CHANNELS=${BENCH_CHANNELS:-4}
	SOAK_PROXIES=${BENCH_SOAK_PROXIES:-50}
	SOAK_CHANGES=${BENCH_SOAK_CHANGES:-50}
	SOAK_INTERVAL=${BENCH_SOAK_INTERVAL_MS:-20}
	SIDECARS=${BENCH_SIDECARS:-50}
	SC_CHANGES=${BENCH_SIDECAR_CHANGES:-4}
	SC_INTERVAL=${BENCH_SIDECAR_INTERVAL_MS:-300}
else
	SERVICES=${BENCH_SERVICES:-1000}
	SIZES=${BENCH_PROXIES:-100 500 1000 2000}
	CHANGES=${BENCH_CHANGES:-20}
	INTERVAL=${BENCH_INTERVAL_MS:-800}
	CHANNELS=${BENCH_CHANNELS:-16}
	SOAK_PROXIES=${BENCH_SOAK_PROXIES:-2000}
	SOAK_CHANGES=${BENCH_SOAK_CHANGES:-1000}
	SOAK_INTERVAL=${BENCH_SOAK_INTERVAL_MS:-100}
	SIDECARS=${BENCH_SIDECARS:-2000}
	SC_CHANGES=${BENCH_SIDECAR_CHANGES:-20}
	SC_INTERVAL=${BENCH_SIDECAR_INTERVAL_MS:-3000}
fi
SC_WORKLOADS=${BENCH_SIDECAR_WORKLOADS:-20}
SC_PROTOS=${BENCH_SIDECAR_PROTOS:-sotw delta}
TARGETS=${BENCH_TARGETS:-5}

MESHD=$BUILD/bin/meshd
BENCH=$BUILD/bench/meshbench
make --no-print-directory -s BUILD="$BUILD" "$MESHD" "$BENCH" >/dev/null

TMP=$(mktemp -d /tmp/meshbench.XXXXXX)
MESHD_PID=
cleanup() {
	if [ -n "$MESHD_PID" ]; then
		kill "$MESHD_PID" 2>/dev/null || true
		wait "$MESHD_PID" 2>/dev/null || true
	fi
	if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
		mkdir -p "$BENCH_KEEP_LOGS" && cp "$TMP"/meshd-*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start meshd on $1 (config dir) with its log in $2; sets MESHD_PID and
# XDS_PORT.  Ports are picked at random; a start that fails because one is
# taken is retried with others.
PORT_TOP=$(awk '{print $1 - 3}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32765)
[ "$PORT_TOP" -gt 12000 ] 2>/dev/null || PORT_TOP=32765
start_meshd() {
	tries=0
	while [ $tries -lt 5 ]; do
		tries=$((tries + 1))
		# below the ephemeral range: outgoing connections (other
		# programs' thousands, on a shared machine) never hold those
		base=$(( ( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (PORT_TOP - 10000) ) + 10000 ))
		XDS_PORT=$base
		"$MESHD" --config-dir "$1" --xds-addr "127.0.0.1:$base" --secure-addr "127.0.0.1:$((base + 1))" \
			--http-addr "127.0.0.1:$((base + 2))" --webhook-addr "" >"$2" 2>&1 &
		MESHD_PID=$!
		# meshd logs "ready" once it serves the loaded config
		i=0
		while [ $i -lt 1200 ]; do
			if grep -q ' ready$' "$2" 2>/dev/null; then
				return 0
			fi
			kill -0 "$MESHD_PID" 2>/dev/null || break
			sleep 0.1
			i=$((i + 1))
		done
		kill "$MESHD_PID" 2>/dev/null || true
		wait "$MESHD_PID" 2>/dev/null || true
		MESHD_PID=
		grep -qE 'cannot (listen|serve)' "$2" || break
	done
	echo "run.sh: meshd did not get ready; the end of its log:" >&2
	tail -20 "$2" >&2
	return 1
}

stop_meshd() {
	kill "$MESHD_PID" 2>/dev/null || true
	wait "$MESHD_PID" 2>/dev/null || true
	MESHD_PID=
}

# One row: run_row NAME PROXIES PROTO CHANGES INTERVAL_MS RESULTS [FLAG].  A
# fresh mesh and a fresh meshd; the RESULT line is appended to RESULTS.
run_row() {
	run=$1
	cfg=$TMP/cfg-$run
	mkdir -p "$cfg"
	"$BENCH" config --dir "$cfg" --services "$SERVICES"
	start_meshd "$cfg" "$TMP/meshd-$run.log"
	flag=
	[ "$3" = delta ] && flag=--delta
	[ $# -ge 7 ] && flag="$flag $7"
	echo "== $SERVICES services, $2 proxies, $3, $4 changes every ${5}ms (meshd pid $MESHD_PID, xDS 127.0.0.1:$XDS_PORT)"
	if ! "$BENCH" run --xds "127.0.0.1:$XDS_PORT" --dir "$cfg" --services "$SERVICES" --proxies "$2" \
		--channels "$CHANNELS" --targets "$TARGETS" --changes "$4" --interval-ms "$5" \
		--meshd-pid "$MESHD_PID" --log-level warn $flag >"$TMP/out-$run" 2>"$TMP/err-$run"; then
		status=1
		echo "run.sh: meshbench failed in row $run:" >&2
		cat "$TMP/err-$run" >&2
	fi
	grep -v '^RESULT' "$TMP/out-$run" | sed 's/^/   /'
	grep '^RESULT' "$TMP/out-$run" >>"$6" || true
	if ! kill -0 "$MESHD_PID" 2>/dev/null; then
		status=1
		echo "run.sh: meshd exited during the run; its log:" >&2
		tail -20 "$TMP/meshd-$run.log" >&2
	fi
	stop_meshd
}

status=0
START=$(date +%s)
[ "$SIZES" = 0 ] && SIZES=
for m in $SIZES; do
for proto in $PROTOS; do
	run_row "$m-$proto" "$m" "$proto" "$CHANGES" "$INTERVAL" "$TMP/results"
done
done
ELAPSED=$(( $(date +%s) - START ))
SOAK_START=$(date +%s)
if [ "$SOAK_CHANGES" -gt 0 ]; then
	steady=--replace-services
	[ "${BENCH_SOAK_STEADY:-0}" = 1 ] && steady=--steady
	run_row "soak-$SOAK_PROXIES" "$SOAK_PROXIES" sotw "$SOAK_CHANGES" "$SOAK_INTERVAL" "$TMP/soak" $steady
fi
SOAK_ELAPSED=$(( $(date +%s) - SOAK_START ))
SC_START=$(date +%s)
if [ "$SIDECARS" -gt 0 ]; then
	for proto in $SC_PROTOS; do
		run_row "sidecar-$SIDECARS-$proto" "$SIDECARS" "$proto" "$SC_CHANGES" "$SC_INTERVAL" "$TMP/sidecar" \
			"--sidecar --workloads $SC_WORKLOADS --change-timeout-ms 30000 --sync-timeout-s 600"
	done
fi
SC_ELAPSED=$(( $(date +%s) - SC_START ))

[ -n "$SIZES" ] && [ ! -s "$TMP/results" ] && { echo "run.sh: no results" >&2; exit 1; }
[ -s "$TMP/results" ] && {

echo
echo "meshd scale benchmark: $SERVICES services, $TARGETS listeners per proxy (svc-0 in every proxy's set), $CHANGES changes per row, ${ELAPSED}s"
awk '
function kv(line, key,   i, n, f) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++)
		if (index(f[i], key "=") == 1)
			return substr(f[i], length(key) + 2)
	return ""
}
{
	rows++
	d[rows] = kv($0, "delta") + 0; epb[rows] = kv($0, "ep_bytes")
	p[rows] = kv($0, "proxies"); sync[rows] = kv($0, "sync_s")
	rss[rows] = kv($0, "rss_after_kb") / 1024; hwm[rows] = kv($0, "hwm_kb") / 1024
	p50[rows] = kv($0, "p50_ms"); p99[rows] = kv($0, "p99_ms"); mx[rows] = kv($0, "max_ms")
	fp99[rows] = kv($0, "full_p99_ms"); fcpu[rows] = kv($0, "full_cpu_s") * 1000
	ccpu[rows] = kv($0, "change_cpu_s") * 1000; fbytes[rows] = kv($0, "full_bytes")
	to[rows] = kv($0, "timeouts"); fail[rows] = kv($0, "failed")
}
END {
	printf "%8s %5s %8s %9s %9s %9s %9s %9s %11s %11s %11s %12s %5s\n", "proxies", "xds", "sync s", "RSS MB",
		"peak MB", "p50 ms", "p99 ms", "max ms", "full p99", "CPU ms/full", "CPU ms/chg", "bytes/full", "t/o"
	for (i = 1; i <= rows; i++)
		printf "%8d %5s %8.2f %9.1f %9.1f %9.1f %9.1f %9.1f %11.1f %11.1f %11.1f %12d %5d\n", p[i],
			d[i] ? "delta" : "sotw", sync[i], rss[i], hwm[i], p50[i], p99[i], mx[i], fp99[i], fcpu[i], ccpu[i],
			fbytes[i], to[i] + fail[i]
	ndelta = 0
	for (i = 1; i <= rows; i++)
		if (d[i])
			ndelta++
	if (ndelta) {
		printf "\nbytes per push (every proxy concerned), state of the world vs Delta:\n"
		for (i = 1; i <= rows; i++) {
			if (d[i])
				continue
			for (j = 1; j <= rows; j++)
				if (d[j] && p[j] == p[i])
					printf "  %d proxies: endpoint change %d vs %d bytes (x%.2f); endpoint or weight change %d vs %d bytes (x%.2f)\n",
						p[i], epb[i], epb[j], epb[i] ? epb[j] / epb[i] : 0, fbytes[i], fbytes[j],
						fbytes[i] ? fbytes[j] / fbytes[i] : 0
		}
	}
	# the targets and growth figures use the state-of-the-world rows
	n = 0
	for (i = 1; i <= rows; i++)
		if (!d[i]) {
			n++
			p[n] = p[i]; sync[n] = sync[i]; rss[n] = rss[i]; hwm[n] = hwm[i]; p99[n] = p99[i]
			fcpu[n] = fcpu[i]; fbytes[n] = fbytes[i]
		}
	rows = n
	l = rows
	# the DESIGN.md row for proxyless clients (5 services each): <= 60 MB RSS,
	# change -> all ACKed p99 <= 200 ms
	printf "\ntargets (DESIGN.md, proxyless clients) at %d proxies:\n", p[l]
	printf "  meshd RSS (peak)            %7.1f MB   target <= 60 MB    %s\n", hwm[l], hwm[l] + 0 <= 60 ? "ok" : "MISSED"
	printf "  change -> all ACKed p99     %7.1f ms   target <= 200 ms   %s\n", p99[l], p99[l] + 0 <= 200 ? "ok" : "MISSED"
	if (rows > 1) {
		printf "growth from %d to %d proxies (x%.0f):\n", p[1], p[l], p[l] / p[1]
		printf "  RSS x%.2f, p99 x%.2f, CPU per full push x%.2f, bytes per full push x%.2f\n",
			rss[1] ? rss[l] / rss[1] : 0, p99[1] ? p99[l] / p99[1] : 0, fcpu[1] ? fcpu[l] / fcpu[1] : 0,
			fbytes[1] ? fbytes[l] / fbytes[1] : 0
	}
}' "$TMP/results"
}

# the soak row: growth of meshd's RSS over many changes (a figure, never a
# failure: timings and memory are measured here, not asserted)
if [ -s "$TMP/soak" ]; then
	awk -v secs="$SOAK_ELAPSED" -v iv="$SOAK_INTERVAL" '
function kv(line, key,   i, n, f) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++)
		if (index(f[i], key "=") == 1)
			return substr(f[i], length(key) + 2)
	return ""
}
{
	p = kv($0, "proxies"); n = kv($0, "changes"); e = kv($0, "rss_early_change")
	a = kv($0, "rss_early_kb") / 1024; b = kv($0, "rss_last_kb") / 1024
	g = a > 0 ? 100 * (b - a) / a : 0
	printf "\nsoak: %d proxies, %d changes every %d ms or slower, %ds: RSS %.1f MB after change %d, %.1f MB after change %d\n",
		p, n, iv, secs, a, e, b, n
	printf "  RSS growth                  %+6.1f %%    target within 10%% of RSS after the 20th   %s\n", g,
		(a > 0 && g <= 10) ? "ok" : "MISSED"
	printf "  change -> all ACKed p99     %7.1f ms   (t/o %d)\n", kv($0, "p99_ms"), kv($0, "timeouts") + kv($0, "failed")
}' "$TMP/soak"
fi
# the sidecar row, beside DESIGN.md's sidecar targets
if [ -s "$TMP/sidecar" ]; then
	awk -v secs="$SC_ELAPSED" -v w="$SC_WORKLOADS" '
function kv(line, key,   i, n, f) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++)
		if (index(f[i], key "=") == 1)
			return substr(f[i], length(key) + 2)
	return ""
}
function verdict(v, t) { return v + 0 <= t ? "ok" : "MISSED" }
{
	p = kv($0, "proxies"); s = kv($0, "services"); hwm = kv($0, "hwm_kb") / 1024; rss = kv($0, "rss_after_kb") / 1024
	ep50 = kv($0, "ep_p50_ms"); ep99 = kv($0, "ep_p99_ms"); vs50 = kv($0, "vs_p50_ms"); vs99 = kv($0, "vs_p99_ms")
	proto = kv($0, "delta") + 0 ? "Delta xDS (what meshproxy and Envoy speak by default)" : "state of the world"
	printf "\nsidecars: %d sidecars (%d workloads) holding the whole %d-service mesh, %s (%ds both rows)\n", p, w, s, proto, secs
	printf "  sync (all ACKed)            %7.2f s    %.1f MB received\n", kv($0, "sync_s"), kv($0, "sync_bytes") / 1e6
	printf "  meshd RSS (peak)            %7.1f MB   target <= 150 MB    %s   (after the changes %.1f MB)\n", hwm, verdict(hwm, 150), rss
	printf "  endpoint change -> all ACKed    p50 %7.1f ms  p99 %7.1f ms   target p99 <= 300 ms   %s\n", ep50, ep99, verdict(ep99, 300)
	printf "  VirtualService change -> all    p50 %7.1f ms  p99 %7.1f ms   target p99 <= 1000 ms  %s\n", vs50, vs99, verdict(vs99, 1000)
	printf "  bytes per push              endpoint change %.0f, endpoint or weight change %.0f\n", kv($0, "ep_bytes"), kv($0, "full_bytes")
	printf "  meshd CPU per push          %7.1f ms   (t/o %d)\n", kv($0, "change_cpu_s") * 1000, kv($0, "timeouts") + kv($0, "failed")
}' "$TMP/sidecar"
fi
exit $status
