#!/bin/sh
# The proxy benchmark (make bench-proxy, part of make bench): in one run on
# this machine, wrk straight to a tiny C backend (pxbackend: 200 + 1 KiB),
# through meshproxy's engine (pxserve, holding 1,000 clusters) and through
# nginx configured as the equivalent reverse proxy (one worker, keep-alive
# upstream).  Prints peak throughput (wrk), latency at a fixed 1,000 rps
# (pxrate: p50/p99 from each request's scheduled time), CPU per 1,000
# requests (utime+stime from /proc during the fixed-rate run) and the
# proxy's RSS, beside DESIGN.md's targets.  Asserts nothing.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
DUR=${PXBENCH_SECONDS:-5}
RATE=${PXBENCH_RATE:-1000}
CLUSTERS=${PXBENCH_CLUSTERS:-1000}
for t in wrk nginx; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "bench-proxy: $t missing (sh scripts/deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/pxbench.XXXXXX)
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
BPORT=$(port); PXPORT=$(port); NPORT=$(port); APORT=$(port)

"$B/pxbackend" "$BPORT" > "$dir/backend.log" 2>&1 &
pids="$pids $!"

# meshproxy: the bench service first, then CLUSTERS more services each with a vhost and an EDS cluster
{
	echo "outbound"
	echo "listener 8080"
	echo "vhost 8080 bench bench.demo,bench.demo:8080"
	echo "route 8080 bench / cluster=outbound|8080||bench.demo timeout=15000 retries=2 retry_on=connect-failure,refused-stream"
	echo "cluster outbound|8080||bench.demo eds 127.0.0.1:$BPORT"
	i=0
	while [ $i -lt "$CLUSTERS" ]; do
		echo "vhost 8080 svc$i svc$i.demo,svc$i.demo:8080"
		echo "route 8080 svc$i / cluster=outbound|8080||svc$i.demo"
		echo "cluster outbound|8080||svc$i.demo eds 127.0.0.1:$((20000 + i % 20000))"
		i=$((i + 1))
	done
} > "$dir/spec"
"$B/pxserve" --spec "$dir/spec" --outbound-addr "127.0.0.1:$PXPORT" --inbound-addr "" \
	--admin-addr "127.0.0.1:$APORT" > "$dir/pxserve.log" 2>&1 &
PXPID=$!
pids="$pids $PXPID"

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
"$NGINX" -p "$dir/nginx" -c "$dir/nginx.conf" > "$dir/nginx.log" 2>&1 &
pids="$pids $!"

i=0
until curl -s -o /dev/null "http://127.0.0.1:$BPORT/" && curl -s -o /dev/null -H "Host: bench.demo:8080" "http://127.0.0.1:$PXPORT/" &&
	curl -s -o /dev/null "http://127.0.0.1:$NPORT/"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "bench-proxy: servers did not start"; cat "$dir"/*.log; exit 1; }
	sleep 0.1
done
NGPID=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -1)
[ -n "$NGPID" ] || NGPID=$(cat "$dir/nginx.pid")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

thr() { # name url host
	wrk -t1 -c50 -d"${DUR}s" -H "Host: $3" "$2" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}'
}
rate() { # url-host:port host pid -> "p50 p99 cpu_ms_per_1k"
	t0=$(cpu_ticks "$3")
	out=$("$B/pxrate" "$1" "$2" "$RATE" "$DUR" 32)
	t1=$(cpu_ticks "$3")
	hz=$(getconf CLK_TCK)
	echo "$out" | awk -v d=$((t1 - t0)) -v hz="$hz" -v n=$((RATE * DUR)) \
		'{for (i = 1; i < NF; i++) v[$i] = $(i + 1); printf "%d %d %.1f %d\n", v["p50_us"], v["p99_us"], d * 1000.0 / hz / (n / 1000.0), v["errors"]}'
}

echo "proxy benchmark: wrk -t1 -c50 ${DUR}s; fixed ${RATE} rps for ${DUR}s; meshproxy holds $((CLUSTERS + 1)) clusters"
D_THR=$(thr direct "http://127.0.0.1:$BPORT/" "bench.demo")
P_THR=$(thr meshproxy "http://127.0.0.1:$PXPORT/" "bench.demo:8080")
N_THR=$(thr nginx "http://127.0.0.1:$NPORT/" "bench.demo")
set -- $(rate "127.0.0.1:$BPORT" bench.demo "$(pgrep -f "pxbackend $BPORT" | head -1)")
D_P50=$1 D_P99=$2
set -- $(rate "127.0.0.1:$PXPORT" bench.demo:8080 "$PXPID")
P_P50=$1 P_P99=$2 P_CPU=$3 P_ERR=$4
set -- $(rate "127.0.0.1:$NPORT" bench.demo "$NGPID")
N_P50=$1 N_P99=$2 N_CPU=$3 N_ERR=$4
P_RSS=$(rss_kb "$PXPID")
N_RSS=$(rss_kb "$NGPID")

awk -v d="$D_THR" -v p="$P_THR" -v n="$N_THR" -v dp50="$D_P50" -v dp99="$D_P99" -v pp50="$P_P50" -v pp99="$P_P99" \
	-v np50="$N_P50" -v np99="$N_P99" -v pcpu="$P_CPU" -v ncpu="$N_CPU" -v prss="$P_RSS" -v nrss="$N_RSS" \
	-v perr="$P_ERR" -v nerr="$N_ERR" -v cl="$((CLUSTERS + 1))" 'BEGIN {
	printf "%-34s %12s %12s %12s   %s\n", "", "direct", "meshproxy", "nginx", "target (DESIGN.md)";
	printf "%-34s %12d %12d %12d   %s\n", "peak throughput (req/s)", d, p, n, "meshproxy >= 1.0x nginx";
	printf "%-34s %12s %11.2fx %11.2fx   meshproxy/nginx = %.2fx\n", "  ratio to direct", "1.00x", p / d, n / d, p / n;
	printf "%-34s %12.3f %12.3f %12.3f\n", "p50 at fixed rate (ms)", dp50 / 1000, pp50 / 1000, np50 / 1000;
	printf "%-34s %12.3f %12.3f %12.3f\n", "p99 at fixed rate (ms)", dp99 / 1000, pp99 / 1000, np99 / 1000;
	printf "%-34s %12s %+12.3f %+12.3f   meshproxy <= nginx\n", "  p99 added over direct (ms)", "", (pp99 - dp99) / 1000, (np99 - dp99) / 1000;
	printf "%-34s %12s %12.1f %12.1f   meshproxy <= nginx\n", "CPU per 1,000 requests (ms)", "", pcpu, ncpu;
	printf "%-34s %12s %12.1f %12.1f   meshproxy <= 10 MB (%d clusters)\n", "RSS (MB)", "", prss / 1024, nrss / 1024, cl;
	printf "%-34s %12s %12d %12d\n", "errors at fixed rate", "", perr, nerr;
}'
