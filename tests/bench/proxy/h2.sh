#!/bin/sh
# The HTTP/2 row of the proxy benchmark (make bench-h2): h2load (Debian
# nghttp2-client) with h2c prior knowledge, in one run on this machine,
# through meshproxy (engine from a spec file: pxserve, one route to the
# backend) and through nginx (one worker, listen ... http2, keep-alive
# upstream), both proxying to the same HTTP/1.1 backend (pxbackend: 200 +
# 1 KiB).  Prints requests/s for each, the median of H2BENCH_REPS runs
# (meshproxy and nginx alternating), and the ratio against DESIGN.md's
# "peak throughput >= 1.0x nginx (h2c/gRPC via h2load)".  Asserts nothing.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
N=${H2BENCH_REQUESTS:-20000}
CONNS=${H2BENCH_CONNS:-4}
STREAMS=${H2BENCH_STREAMS:-16}
REPS=${H2BENCH_REPS:-3}
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	ON_PROXY="taskset -c ${PXBENCH_PROXY_CPU:-0}"
	ON_LOAD="taskset -c ${PXBENCH_LOAD_CPU:-1}"
else
	ON_PROXY=""
	ON_LOAD=""
fi
for t in h2load nginx; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "bench-h2: $t missing (sh scripts/deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/h2bench.XXXXXX)
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
BPORT=$(port); PXPORT=$(port); NPORT=$(port); APORT=$(port); IPORT=$(port)

$ON_LOAD "$B/pxbackend" "$BPORT" > "$dir/backend.log" 2>&1 &
pids="$pids $!"

cat > "$dir/spec" <<SPEC
outbound registry_only
listener 8080
vhost 8080 bench bench.demo,bench.demo:8080
route 8080 bench / cluster=outbound|8080||bench.demo timeout=15000 retries=2 retry_on=connect-failure,refused-stream
cluster outbound|8080||bench.demo eds 127.0.0.1:$BPORT
SPEC
$ON_PROXY "$B/pxserve" --spec "$dir/spec" --outbound-addr "127.0.0.1:$PXPORT" --inbound-addr "127.0.0.1:$IPORT" \
	--admin-addr "127.0.0.1:$APORT" > "$dir/pxserve.log" 2>&1 &
pids="$pids $!"

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
		listen 127.0.0.1:$NPORT http2;
		location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
NGX
$ON_PROXY "$NGINX" -p "$dir/nginx" -c "$dir/nginx.conf" > "$dir/nginx.log" 2>&1 &
pids="$pids $!"

i=0
until curl -s -o /dev/null --http2-prior-knowledge -H "Host: bench.demo:8080" "http://127.0.0.1:$PXPORT/" &&
	curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$NPORT/"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "bench-h2: servers did not start"; cat "$dir"/*.log; exit 1; }
	sleep 0.1
done

rps() { # url -> requests/s (h2load's "finished in ..., N req/s")
	$ON_LOAD h2load -n "$N" -c "$CONNS" -m "$STREAMS" -H ":authority: bench.demo:8080" "$1" 2>/dev/null |
		awk '/^finished in/ {gsub(",", ""); for (i = 1; i <= NF; i++) if ($(i + 1) == "req/s") print int($i)}'
}
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

mp=""; ng=""
r=0
while [ $r -lt "$REPS" ]; do
	mp="$mp $(rps "http://127.0.0.1:$PXPORT/")"
	ng="$ng $(rps "http://127.0.0.1:$NPORT/")"
	r=$((r + 1))
done
M=$(echo $mp | tr ' ' '\n' | median)
G=$(echo $ng | tr ' ' '\n' | median)
echo "h2c peak throughput (h2load -n $N -c $CONNS -m $STREAMS, 1 KiB, HTTP/1.1 upstream; median of $REPS)"
printf "  %-10s %8s req/s\n" meshproxy "$M" nginx "$G"
awk -v m="$M" -v g="$G" 'BEGIN { if (g > 0) printf "  meshproxy/nginx %.2fx (target >= 1.0x): %s\n", m / g, (m >= g ? "ok" : "MISSED") }'
