#!/bin/sh
# The proxy benchmark (make bench-proxy, part of make bench): in one run on
# this machine, wrk straight to a tiny C backend (pxbackend: 200 + 1 KiB),
# through the real meshproxy binary configured by the real meshd over ADS
# (a 1,000-service mesh of ServiceEntries, 3 endpoints each, plus the
# bench service pointing at the backend: meshproxy holds what meshd's
# sidecar generator emits for it, 1,000+ clusters) and through nginx
# configured as the equivalent reverse proxy (one worker, keep-alive
# upstream, access log off like meshproxy's default).  Prints peak
# throughput (wrk), latency at a fixed 1,000 rps (pxrate: p50/p99 from each
# request's scheduled time), CPU per 1,000 requests (utime+stime from /proc
# during the fixed-rate run) and the proxy's RSS, each the median of
# PXBENCH_REPS runs (meshproxy and nginx alternating), beside DESIGN.md's
# targets with ok/MISSED.  PXBENCH_ENGINE=pxserve runs the engine from a
# spec file instead (no meshd, no xDS client), as before meshproxy had one.
#
# Placement: the proxy under test on CPU PXBENCH_PROXY_CPU (0), wrk, pxrate,
# the backend and meshd (idle once meshproxy is ready) on PXBENCH_LOAD_CPU
# (1), the same for meshproxy and nginx; the backend's CPU share during the
# proxied peak runs is printed so that a saturated backend (a meaningless
# peak) shows.  Asserts nothing.
#
# BENCH_RSS_ONLY=1: only the idle-RSS row (~15 s, no wrk or nginx): meshd
# and meshproxy on the same mesh, one request through the proxy, then
# meshproxy's VmRSS and its smaps split (heap, anonymous maps, file-backed)
# once the heap has been trimmed.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
DUR=${PXBENCH_SECONDS:-5}
RATE=${PXBENCH_RATE:-1000}
CLUSTERS=${PXBENCH_CLUSTERS:-1000}
EPS=${PXBENCH_ENDPOINTS:-3}
REPS=${PXBENCH_REPS:-3}
ENGINE=${PXBENCH_ENGINE:-meshproxy}
PCPU=${PXBENCH_PROXY_CPU:-0}
LCPU=${PXBENCH_LOAD_CPU:-1}
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	ON_PROXY="taskset -c $PCPU"
	ON_LOAD="taskset -c $LCPU"
else
	ON_PROXY=""
	ON_LOAD=""
fi
RSS_ONLY=${BENCH_RSS_ONLY:-0}
[ "$RSS_ONLY" = 1 ] && ENGINE=meshproxy
[ "$RSS_ONLY" = 1 ] || for t in wrk nginx; do
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
BPORT=$(port); PXPORT=$(port); NPORT=$(port); APORT=$(port); XPORT=$(port); HPORT=$(port); SPORT=$(port)

$ON_LOAD "$B/pxbackend" "$BPORT" > "$dir/backend.log" 2>&1 &
BEPID=$!
pids="$pids $BEPID"

if [ "$ENGINE" = pxserve ]; then
# meshproxy: the bench service first, then CLUSTERS services as meshd's
# sidecar output has them: a virtual host with the FQDN, short names,
# host:port and VIP domains, and an EDS cluster with EPS endpoints
{
	echo "outbound"
	echo "listener 8080"
	echo "vhost 8080 bench bench.demo,bench.demo:8080"
	echo "route 8080 bench / cluster=outbound|8080||bench.demo timeout=15000 retries=2 retry_on=connect-failure,refused-stream"
	echo "cluster outbound|8080||bench.demo eds 127.0.0.1:$BPORT"
	awk -v n="$CLUSTERS" -v eps="$EPS" 'BEGIN {
		for (i = 0; i < n; i++) {
			ns = "ns" (i % 10); s = "svc" i; f = s "." ns ".svc.cluster.local"
			vip = "10.96." int(i / 250) "." (i % 250 + 1)
			printf "vhost 8080 %s %s,%s:8080,%s,%s:8080,%s.%s,%s.%s:8080,%s.%s.svc,%s.%s.svc:8080,%s,%s:8080\n", \
				s, f, f, s, s, s, ns, s, ns, s, ns, s, ns, vip, vip
			printf "route 8080 %s / cluster=outbound|8080||%s timeout=15000 retries=2 retry_on=connect-failure,refused-stream\n", s, f
			printf "cluster outbound|8080||%s eds", f
			for (e = 0; e < eps; e++)
				printf " 10.1.%d.%d:8080", int(i / 250), (i % 250) + e
			printf "\n"
		}
	}'
} > "$dir/spec"
$ON_PROXY "$B/pxserve" --spec "$dir/spec" --outbound-addr "127.0.0.1:$PXPORT" --inbound-addr "" \
	--admin-addr "127.0.0.1:$APORT" > "$dir/pxserve.log" 2>&1 &
PXPID=$!
pids="$pids $PXPID"
else
# meshd's config: the bench service (a ServiceEntry whose endpoint is the
# backend) and CLUSTERS services as ServiceEntries with a VIP, an HTTP port
# 8080 and EPS static endpoints each
mkdir -p "$dir/config"
{
	cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench, namespace: bench}
spec:
  hosts: [bench.demo]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: $BPORT}}]
YAML
	awk -v n="$CLUSTERS" -v eps="$EPS" 'BEGIN {
		for (i = 0; i < n; i++) {
			printf "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
			printf "metadata: {name: svc%d, namespace: bench}\nspec:\n", i
			printf "  hosts: [svc%d.bench.svc.cluster.local]\n", i
			printf "  addresses: [10.96.%d.%d]\n", int(i / 250), i % 250 + 1
			printf "  location: MESH_INTERNAL\n  resolution: STATIC\n"
			printf "  ports: [{number: 8080, name: http, protocol: HTTP}]\n  endpoints:\n"
			for (e = 0; e < eps; e++)
				printf "  - {address: 10.1.%d.%d}\n", int(i / 250), (i % 250) + e
		}
	}'
} > "$dir/config/mesh.yaml"
$ON_LOAD "$BUILD/bin/meshd" --config-dir "$dir/config" --xds-addr "127.0.0.1:$XPORT" --http-addr "127.0.0.1:$HPORT" \
	--secure-addr "127.0.0.1:$SPORT" --webhook-addr "" --ca-dir "$dir/ca" --log-level warn > "$dir/meshd.log" 2>&1 &
pids="$pids $!"
$ON_PROXY "$BUILD/bin/meshproxy" --xds-addr "127.0.0.1:$XPORT" --node-id "sidecar~127.0.0.1~client.bench~bench.svc.cluster.local" \
	--outbound-addr "127.0.0.1:$PXPORT" --inbound-addr "127.0.0.1:$(port)" --admin-addr "127.0.0.1:$APORT" \
	--status-addr "" --health-addr "" --log-level warn > "$dir/meshproxy.log" 2>&1 &
PXPID=$!
pids="$pids $PXPID"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/ready")" = 200 ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && { echo "bench-proxy: meshproxy not ready after 60 s"; cat "$dir"/*.log; exit 1; }
	sleep 0.1
done
fi

if [ "$RSS_ONLY" = 1 ]; then
	i=0
	until curl -s -o /dev/null -H "Host: bench.demo:8080" "http://127.0.0.1:$PXPORT/"; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "bench-proxy: meshproxy did not proxy"; cat "$dir"/*.log; exit 1; }
		sleep 0.1
	done
	NCL=$(curl -s "http://127.0.0.1:$APORT/clusters" | awk -F:: '{print $1}' | sort -u | grep -c . || true)
	# as below: the heap is trimmed a second after the last connection closes
	sleep 2
	awk '/^(VmRSS|VmHWM|RssAnon|RssFile)/ {printf "%s %s kB  ", $1, $2} END {print ""}' "/proc/$PXPID/status"
	awk '/^[0-9a-f]+-[0-9a-f]+ / {n = ($6 == "") ? "[anon]" : ($6 ~ /^\[/ ? $6 : "file:" $6)}
		/^Rss:/ {rss[n] += $2} END {for (k in rss) if (rss[k] >= 64) printf "  %-60s %6d kB\n", k, rss[k]}' \
		"/proc/$PXPID/smaps" | sort -k2 -n -r
	awk -v cl="$NCL" '/^VmRSS/ {printf "RSS with the config, idle (MB) %.1f (%d clusters): %s\n", $2 / 1024, cl, $2 <= 10240 ? "ok" : "MISSED"}' \
		"/proc/$PXPID/status"
	exit 0
fi

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

thr() { # url host pid-of-proxy -> "req/s backend_cpu_%"
	b0=$(cpu_ticks "$BEPID")
	r=$($ON_LOAD wrk -t1 -c50 -d"${DUR}s" -H "Host: $2" "$1" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}')
	b1=$(cpu_ticks "$BEPID")
	echo "$r $(( (b1 - b0) * 100 / $(getconf CLK_TCK) / DUR ))"
}
rate() { # url-host:port host pid -> "p50 p99 cpu_ms_per_1k errors"
	t0=$(cpu_ticks "$3")
	out=$($ON_LOAD "$B/pxrate" "$1" "$2" "$RATE" "$DUR" 32)
	t1=$(cpu_ticks "$3")
	hz=$(getconf CLK_TCK)
	echo "$out" | awk -v d=$((t1 - t0)) -v hz="$hz" -v n=$((RATE * DUR)) \
		'{for (i = 1; i < NF; i++) v[$i] = $(i + 1); printf "%d %d %.1f %d\n", v["p50_us"], v["p99_us"], d * 1000.0 / hz / (n / 1000.0), v["errors"]}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }

NCL=$(curl -s "http://127.0.0.1:$APORT/clusters" | awk -F:: '{print $1}' | sort -u | grep -c . || true)
echo "proxy benchmark: wrk -t1 -c50 ${DUR}s; fixed ${RATE} rps for ${DUR}s; median of $REPS runs; $ENGINE holds $NCL clusters (the mesh: $((CLUSTERS + 1)) services, $EPS endpoints each)"
[ -n "$ON_PROXY" ] && echo "  placement: proxies on CPU $PCPU; wrk, pxrate and the backend on CPU $LCPU"
# idle means idle: meshproxy trims its heap a second after its last connection closes
sleep 2
P_RSS0=$(rss_kb "$PXPID")
N_RSS0=$(rss_kb "$NGPID")
D_THR="" P_THR="" N_THR="" D_P50="" D_P99="" P_P50="" P_P99="" P_CPU="" N_P50="" N_P99="" N_CPU="" P_ERR=0 N_ERR=0 BE_BUSY=""
rep=0
while [ $rep -lt "$REPS" ]; do
	set -- $(thr "http://127.0.0.1:$BPORT/" "bench.demo")
	D_THR="$D_THR $1"
	set -- $(thr "http://127.0.0.1:$PXPORT/" "bench.demo:8080")
	P_THR="$P_THR $1" BE_BUSY="$BE_BUSY $2"
	set -- $(thr "http://127.0.0.1:$NPORT/" "bench.demo")
	N_THR="$N_THR $1" BE_BUSY="$BE_BUSY $2"
	set -- $(rate "127.0.0.1:$BPORT" bench.demo "$BEPID")
	D_P50="$D_P50 $1" D_P99="$D_P99 $2"
	set -- $(rate "127.0.0.1:$PXPORT" bench.demo:8080 "$PXPID")
	P_P50="$P_P50 $1" P_P99="$P_P99 $2" P_CPU="$P_CPU $3" P_ERR=$((P_ERR + $4))
	set -- $(rate "127.0.0.1:$NPORT" bench.demo "$NGPID")
	N_P50="$N_P50 $1" N_P99="$N_P99 $2" N_CPU="$N_CPU $3" N_ERR=$((N_ERR + $4))
	echo "  run $((rep + 1)): req/s direct/meshproxy/nginx $(echo $D_THR | awk '{print $NF}')/$(echo $P_THR | awk '{print $NF}')/$(echo $N_THR | awk '{print $NF}'); p99 us $(echo $D_P99 | awk '{print $NF}')/$(echo $P_P99 | awk '{print $NF}')/$(echo $N_P99 | awk '{print $NF}'); CPU ms/1k meshproxy/nginx $(echo $P_CPU | awk '{print $NF}')/$(echo $N_CPU | awk '{print $NF}')"
	rep=$((rep + 1))
done
P_RSS=$(rss_kb "$PXPID")
N_RSS=$(rss_kb "$NGPID")
BE_MAX=$(echo $BE_BUSY | tr ' ' '\n' | sort -g | tail -1)

awk -v d="$(echo $D_THR | median)" -v p="$(echo $P_THR | median)" -v n="$(echo $N_THR | median)" \
	-v dp50="$(echo $D_P50 | median)" -v dp99="$(echo $D_P99 | median)" -v pp50="$(echo $P_P50 | median)" \
	-v pp99="$(echo $P_P99 | median)" -v np50="$(echo $N_P50 | median)" -v np99="$(echo $N_P99 | median)" \
	-v pcpu="$(echo $P_CPU | median)" -v ncpu="$(echo $N_CPU | median)" -v prss="$P_RSS" -v nrss="$N_RSS" -v prss0="$P_RSS0" -v nrss0="$N_RSS0" \
	-v perr="$P_ERR" -v nerr="$N_ERR" -v cl="$NCL" -v bemax="$BE_MAX" 'function v(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
	printf "%-34s %12s %12s %12s   %s\n", "", "direct", "meshproxy", "nginx", "target (DESIGN.md)";
	printf "%-34s %12d %12d %12d   meshproxy >= 1.0x nginx: %.2fx %s\n", "peak throughput (req/s)", d, p, n, p / n, v(p >= n);
	printf "%-34s %12s %11.2fx %11.2fx\n", "  ratio to direct", "1.00x", p / d, n / d;
	printf "%-34s %12.3f %12.3f %12.3f\n", "p50 at fixed rate (ms)", dp50 / 1000, pp50 / 1000, np50 / 1000;
	printf "%-34s %12.3f %12.3f %12.3f\n", "p99 at fixed rate (ms)", dp99 / 1000, pp99 / 1000, np99 / 1000;
	printf "%-34s %12s %+12.3f %+12.3f   meshproxy <= nginx: %s\n", "  p99 added over direct (ms)", "", (pp99 - dp99) / 1000, (np99 - dp99) / 1000, v(pp99 <= np99);
	printf "%-34s %12s %12.1f %12.1f   meshproxy <= nginx: %s\n", "CPU per 1,000 requests (ms)", "", pcpu, ncpu, v(pcpu <= ncpu);
	printf "%-34s %12s %12.1f %12.1f   meshproxy <= 10 MB (%d clusters): %s\n", "RSS with the config, idle (MB)", "", prss0 / 1024, nrss0 / 1024, cl, v(prss0 <= 10240);
	printf "%-34s %12s %12.1f %12.1f\n", "RSS after the runs (MB)", "", prss / 1024, nrss / 1024;
	printf "%-34s %12s %12d %12d   0: %s\n", "errors at fixed rate (all runs)", "", perr, nerr, v(perr == 0);
	printf "%-34s %11d%%   %s\n", "backend CPU at proxied peak (max)", bemax, bemax < 80 ? "(not the bottleneck)" : "(near saturation: peak ratios unreliable)";
}'
