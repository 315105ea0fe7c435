#!/bin/sh
# The cost of telemetry in meshproxy (make bench-telemetry, part of make
# bench-proxy; issue 14): CPU per 1,000 requests, measured as
# tests/bench/proxy/run.sh measures it (utime+stime of the proxy from /proc
# over a fixed-rate pxrate run of HTTP/1.1 GETs answered 200 + 1 KiB by
# pxbackend), for four sidecars, each a real meshproxy fed by its own real
# meshd, configured the way an Istio user configures them:
#
#   metrics on    Istio's standard metrics (the default), tracing off
#   metrics off   a mesh-wide Telemetry disabling every metric of the
#                 prometheus provider, tracing off
#   trace 100%    metrics on, MeshConfig tracing to a Zipkin provider,
#                 defaultConfig.tracing.sampling 100
#   trace 0%      the same provider, sampling 0 (each also as a mesh-wide
#                 Telemetry randomSamplingPercentage: 0 in MeshConfig is 1%)
#
# The Zipkin collector is a sink that answers 202 and discards (it counts
# the spans it was sent, so the table shows sampling took effect).  nginx
# (one worker, as run.sh) runs in the same loop as the yardstick of
# DESIGN.md's CPU target.  Modes alternate within each repetition; each
# figure is the median of PXBENCH_REPS runs.  A mode whose configuration
# the proxy does not honour (metrics still counted with metrics off, or no
# spans at 100%) is flagged, not hidden.  Asserts nothing.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
DUR=${PXBENCH_SECONDS:-5}
RATE=${PXBENCH_RATE:-1000}
REPS=${PXBENCH_REPS:-3}
PCPU=${PXBENCH_PROXY_CPU:-0}
LCPU=${PXBENCH_LOAD_CPU:-1}
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	ON_PROXY="taskset -c $PCPU"
	ON_LOAD="taskset -c $LCPU"
else
	ON_PROXY=""
	ON_LOAD=""
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "bench-telemetry: nginx missing (sh scripts/deps.sh)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/pxtelem.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	ngpid=$(cat "$dir/nginx.pid" 2>/dev/null || true)
	[ -n "$ngpid" ] && kill "$ngpid" 2>/dev/null || true
	sleep 0.2
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BPORT=$(port); NPORT=$(port)

$ON_LOAD "$B/pxbackend" "$BPORT" > "$dir/backend.log" 2>&1 &
pids="$pids $!"

# The Zipkin sink: POST /api/v2/spans -> 202, the body's spans counted
# (a JSON array of span objects: counted by their "traceId" keys) and
# dropped; GET /count answers the total.
cat > "$dir/sink.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
spans = 0
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        global spans
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        spans += body.count(b'"traceId"')
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        b = str(spans).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
PY

MODES="metrics_on metrics_off trace_100 trace_0"
for m in $MODES; do
	mkdir -p "$dir/$m/config"
	ZPORT=$(port)
	echo "$ZPORT" > "$dir/$m/zport"
	cat > "$dir/$m/config/mesh.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench, namespace: bench}
spec:
  hosts: [bench.demo]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: $BPORT}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9411, name: http-zipkin, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http-zipkin: $ZPORT}}]
YAML
	case $m in
	trace_*)
		cat > "$dir/$m/meshconfig.yaml" <<YAML
enableTracing: true
defaultConfig:
  tracing: {sampling: ${m#trace_}}
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
defaultProviders:
  tracing: [zipkin]
YAML
		# the percentage again as a mesh-wide Telemetry: Istio (and meshd)
		# read defaultConfig.tracing.sampling 0 as unset, that is 1%
		cat > "$dir/$m/config/telemetry.yaml" <<YAML
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: ${m#trace_}
YAML
		;;
	*)
		echo "enableTracing: false" > "$dir/$m/meshconfig.yaml"
		;;
	esac
	if [ "$m" = metrics_off ]; then
		cat > "$dir/$m/config/telemetry.yaml" <<YAML
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
YAML
	fi
	$ON_LOAD /usr/bin/python3 "$dir/sink.py" "$ZPORT" > "$dir/$m/sink.log" 2>&1 &
	pids="$pids $!"
	$ON_LOAD "$BUILD/bin/meshd" --config-dir "$dir/$m/config" --mesh-config "$dir/$m/meshconfig.yaml" \
		--xds-addr "127.0.0.1:$(port | tee "$dir/$m/xport")" --http-addr "127.0.0.1:$(port)" \
		--secure-addr "127.0.0.1:$(port)" --webhook-addr "" --ca-dir "$dir/$m/ca" --log-level warn > "$dir/$m/meshd.log" 2>&1 &
	pids="$pids $!"
	PX=$(port); AP=$(port)
	echo "$PX" > "$dir/$m/pxport"
	echo "$AP" > "$dir/$m/aport"
	$ON_PROXY "$BUILD/bin/meshproxy" --xds-addr "127.0.0.1:$(cat "$dir/$m/xport")" \
		--node-id "sidecar~127.0.0.1~client.bench~bench.svc.cluster.local" --labels app=client,version=v1 \
		--outbound-addr "127.0.0.1:$PX" --inbound-addr "127.0.0.1:$(port)" --admin-addr "127.0.0.1:$AP" \
		--status-addr "" --health-addr "" --log-level warn > "$dir/$m/meshproxy.log" 2>&1 &
	echo $! > "$dir/$m/pid"
	pids="$pids $!"
done

mkdir -p "$dir/nginx"
cat > "$dir/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/nginx/body;
	proxy_temp_path $dir/nginx/proxy;
	fastcgi_temp_path $dir/nginx/fcgi;
	uwsgi_temp_path $dir/nginx/uwsgi;
	scgi_temp_path $dir/nginx/scgi;
	upstream be { server 127.0.0.1:$BPORT; keepalive 64; }
	server {
		listen 127.0.0.1:$NPORT;
		location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
NGX
$ON_PROXY "$NGINX" -p "$dir/nginx" -c "$dir/nginx.conf" > "$dir/nginx.log" 2>&1 &
pids="$pids $!"

for m in $MODES; do
	i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$dir/$m/aport")/ready")" = 200 ] &&
		[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: bench.demo:8080" "http://127.0.0.1:$(cat "$dir/$m/pxport")/")" = 200 ]; do
		i=$((i + 1))
		[ $i -gt 600 ] && { echo "bench-telemetry: meshproxy ($m) not serving after 60 s"; cat "$dir/$m"/*.log; exit 1; }
		sleep 0.1
	done
done
i=0
until curl -s -o /dev/null "http://127.0.0.1:$NPORT/"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "bench-telemetry: nginx did not start"; cat "$dir"/nginx.log; exit 1; }
	sleep 0.1
done
NGPID=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -1)
[ -n "$NGPID" ] || NGPID=$(cat "$dir/nginx.pid")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rate() { # host:port host-header pid -> "p50_us p99_us cpu_ms_per_1k errors"
	t0=$(cpu_ticks "$3")
	out=$($ON_LOAD "$B/pxrate" "$1" "$2" "$RATE" "$DUR" 32)
	t1=$(cpu_ticks "$3")
	echo "$out" | awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n=$((RATE * DUR)) \
		'{for (i = 1; i < NF; i++) v[$i] = $(i + 1); printf "%d %d %.1f %d\n", v["p50_us"], v["p99_us"], d * 1000.0 / hz / (n / 1000.0), v["errors"]}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }

echo "telemetry cost: fixed ${RATE} rps for ${DUR}s, HTTP/1.1 200 + 1 KiB; median of $REPS runs; the modes alternate"
[ -n "$ON_PROXY" ] && echo "  placement: proxies on CPU $PCPU; pxrate, the backend, meshd and the Zipkin sinks on CPU $LCPU"
sleep 1
rep=0
while [ $rep -lt "$REPS" ]; do
	line="  run $((rep + 1)): CPU ms/1k"
	for m in $MODES; do
		set -- $(rate "127.0.0.1:$(cat "$dir/$m/pxport")" bench.demo:8080 "$(cat "$dir/$m/pid")")
		echo "$3" >> "$dir/$m/cpu"
		echo "$2" >> "$dir/$m/p99"
		echo "$4" >> "$dir/$m/err"
		line="$line $m $3"
	done
	set -- $(rate "127.0.0.1:$NPORT" bench.demo "$NGPID")
	echo "$3" >> "$dir/nginx.cpu"
	echo "$line nginx $3"
	rep=$((rep + 1))
done
# the spans sent to each mode's sink (the last batch flushes within 1 s)
sleep 1.5
for m in $MODES; do
	curl -s "http://127.0.0.1:$(cat "$dir/$m/zport")/count" > "$dir/$m/spans" || echo 0 > "$dir/$m/spans"
	curl -s "http://127.0.0.1:$(cat "$dir/$m/aport")/stats/prometheus" |
		awk '/^istio_requests_total/ {n += $NF} END {print n + 0}' > "$dir/$m/counted"
done
med() { median < "$1"; }
sum() { awk '{s += $1} END {print s + 0}' "$1"; }
awk -v mon="$(med "$dir/metrics_on/cpu")" -v moff="$(med "$dir/metrics_off/cpu")" \
	-v t100="$(med "$dir/trace_100/cpu")" -v t0="$(med "$dir/trace_0/cpu")" -v ng="$(med "$dir/nginx.cpu")" \
	-v pmon="$(med "$dir/metrics_on/p99")" -v pmoff="$(med "$dir/metrics_off/p99")" \
	-v pt100="$(med "$dir/trace_100/p99")" -v pt0="$(med "$dir/trace_0/p99")" \
	-v cmon="$(cat "$dir/metrics_on/counted")" -v cmoff="$(cat "$dir/metrics_off/counted")" \
	-v s100="$(cat "$dir/trace_100/spans")" -v s0="$(cat "$dir/trace_0/spans")" \
	-v err="$(( $(sum "$dir/metrics_on/err") + $(sum "$dir/metrics_off/err") + $(sum "$dir/trace_100/err") + $(sum "$dir/trace_0/err") ))" \
	'function v(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
	printf "%-36s %14s %10s   %s\n", "", "CPU ms per 1k", "p99 (ms)", "what the proxy did / target (DESIGN.md)";
	printf "%-36s %14.1f %10.3f   istio_requests_total counted %d\n", "metrics on (tracing off)", mon, pmon / 1000, cmon;
	printf "%-36s %14.1f %10.3f   counted %d%s\n", "metrics off (Telemetry, tracing off)", moff, pmoff / 1000, cmoff,
		(cmoff > 0 ? "  (NOT HONOURED: this build applies no Telemetry metrics)" : "");
	printf "%-36s %+14.1f %10s   %s\n", "  cost of Istio metrics", mon - moff, "", (cmoff > 0 ? "(not measurable here)" : "");
	printf "%-36s %14.1f %10.3f   spans sent to the collector %d\n", "tracing 100% (metrics on)", t100, pt100 / 1000, s100;
	printf "%-36s %14.1f %10.3f   spans %d%s\n", "tracing 0% (metrics on)", t0, pt0 / 1000, s0,
		(s100 == 0 ? "  (NOT HONOURED: no spans at 100%)" : "");
	printf "%-36s %+14.1f %10s\n", "  cost of 100% tracing", t100 - t0, "";
	printf "%-36s %14.1f %10s   meshproxy <= nginx, metrics on: %s; 100%% tracing: %s\n", "nginx (no telemetry)", ng, "",
		v(mon <= ng), v(t100 <= ng);
	printf "%-36s %14d\n", "errors at fixed rate (all modes)", err;
}'
