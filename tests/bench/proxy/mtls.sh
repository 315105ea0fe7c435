#!/bin/sh
# Two hops with mutual TLS (make bench-proxy prints it after run.sh's table;
# `sh tests/bench/proxy/mtls.sh build` alone): DESIGN.md's "latency added
# over direct, p99 at 1,000 rps: two hops with mTLS <= +0.3 ms" (Istio 1.20
# measured +0.298 ms) and "mTLS handshake and bytes: >= nginx's TLS proxy
# throughput", in one run on this machine:
#   direct:     pxrate / wrk -> pxbackend (127.0.0.1:P)
#   meshproxy:  -> client sidecar (outbound) ==mTLS==> server sidecar
#               (inbound 127.0.0.9:P) -> pxbackend; both sidecars configured
#               by the real meshd over ADS, certificates from its CA (auto
#               mTLS: the WorkloadEntry says tlsMode istio; SPIFFE SAN checked)
#   nginx:      -> nginx A (plain in, proxy_pass https with a client
#               certificate, verify on, keep-alive) ==mTLS==> nginx B
#               (ssl_verify_client on) -> pxbackend; certificates made here
#               with openssl (P-256, as meshd's CA issues)
# Both proxies of a pair on CPU PXBENCH_PROXY_CPU, the load, the backend and
# meshd on PXBENCH_LOAD_CPU.  Prints peak throughput (wrk -c50), p50/p99 at
# a fixed rate (pxrate), the p99 added over direct against the target, and
# CPU per 1,000 requests (both hops), medians of PXBENCH_REPS runs.
# Asserts nothing.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
DUR=${PXBENCH_SECONDS:-5}
RATE=${PXBENCH_RATE:-1000}
REPS=${PXBENCH_REPS:-3}
PCPU=${PXBENCH_PROXY_CPU:-0}
LCPU=${PXBENCH_LOAD_CPU:-1}
SIP=127.0.0.9 # the server workload's address (its sidecar's inbound)
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	ON_PROXY="taskset -c $PCPU"
	ON_LOAD="taskset -c $LCPU"
else
	ON_PROXY=""
	ON_LOAD=""
fi
for t in wrk nginx openssl; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "bench-mtls: $t missing (sh scripts/deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/pxbench-mtls.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for f in "$dir"/nga/nginx.pid "$dir"/ngb/nginx.pid; do
		ngpid=$(cat "$f" 2>/dev/null || true)
		[ -n "$ngpid" ] && kill "$ngpid" 2>/dev/null || true
	done
	sleep 0.2
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# P: free on 127.0.0.1 (the backend, inbound|P||) and on SIP (the server sidecar)
P=$(/usr/bin/python3 -c '
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("'$SIP'", p)); print(p); break
    except OSError: pass
    finally: a.close(); b.close()
')
CPORT=$(port); CIN=$(port); CADM=$(port); SADM=$(port); XPORT=$(port); HPORT=$(port); SPORT=$(port); NA=$(port); NB=$(port)

$ON_LOAD "$B/pxbackend" "$P" > "$dir/backend.log" 2>&1 &
BEPID=$!
pids="$pids $BEPID"

# meshd: the service, its workload (tlsMode istio, service account server), the CA and the tokens
mkdir -p "$dir/config"
cat > "$dir/config/mesh.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: benchtls, namespace: bench}
spec:
  hosts: [benchtls.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: $P, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1, namespace: bench}
spec:
  address: $SIP
  ports: {http: $P}
  serviceAccount: server
  labels: {app: server, security.istio.io/tlsMode: istio}
YAML
printf 'client-token bench client\nserver-token bench server\n' > "$dir/tokens"
echo client-token > "$dir/client.token"
echo server-token > "$dir/server.token"
$ON_LOAD "$BUILD/bin/meshd" --config-dir "$dir/config" --xds-addr "127.0.0.1:$XPORT" --http-addr "127.0.0.1:$HPORT" \
	--secure-addr "127.0.0.1:$SPORT" --webhook-addr "" --ca-dir "$dir/ca" --ca-token-file "$dir/tokens" --log-level warn \
	> "$dir/meshd.log" 2>&1 &
pids="$pids $!"
i=0
until [ -s "$dir/ca/root-cert.pem" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HPORT/ready")" = 200 ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && { echo "bench-mtls: meshd not ready"; cat "$dir/meshd.log"; exit 1; }
	sleep 0.1
done
sidecar() { # name ip outbound inbound admin
	$ON_PROXY "$BUILD/bin/meshproxy" --xds-addr "127.0.0.1:$XPORT" \
		--node-id "sidecar~$2~$1-1.bench~bench.svc.cluster.local" --labels "app=$1" --service-account "$1" \
		--ca-addr "127.0.0.1:$SPORT" --root-cert "$dir/ca/root-cert.pem" --token-file "$dir/$1.token" \
		--outbound-addr "127.0.0.1:$3" --inbound-addr "$4" --admin-addr "127.0.0.1:$5" \
		--status-addr "" --health-addr "" --log-level warn > "$dir/$1.log" 2>&1 &
}
sidecar client 127.0.0.1 "$CPORT" "127.0.0.1:$CIN" "$CADM"
CPID=$!
pids="$pids $CPID"
sidecar server "$SIP" "$(port)" "$SIP:$P" "$SADM"
SPID=$!
pids="$pids $SPID"
for a in "$CADM" "$SADM"; do
	i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$a/ready")" = 200 ] &&
		curl -s "http://127.0.0.1:$a/certs" | grep -q '"generation": *[1-9]'; do
		i=$((i + 1))
		[ $i -gt 600 ] && { echo "bench-mtls: meshproxy not ready with a certificate"; cat "$dir"/*.log; exit 1; }
		sleep 0.1
	done
done

# nginx's pair: certificates made now
(
	cd "$dir"
	o() { openssl "$@" > /dev/null 2>&1; }
	o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 1 -subj /O=bench-ca
	for n in server client; do
		o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /O=bench-$n
		printf 'subjectAltName=DNS:%s.bench,URI:spiffe://cluster.local/ns/bench/sa/%s\n' $n $n > $n.ext
		o x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 1 -extfile $n.ext
	done
)
nginx_conf() { # prefix server-block
	mkdir -p "$dir/$1"
	cat > "$dir/$1/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $dir/$1/nginx.pid;
error_log $dir/$1/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/$1/body;
	proxy_temp_path $dir/$1/proxy;
	fastcgi_temp_path $dir/$1/fcgi;
	uwsgi_temp_path $dir/$1/uwsgi;
	scgi_temp_path $dir/$1/scgi;
$2
}
NGX
}
nginx_conf nga "	upstream b { server 127.0.0.1:$NB; keepalive 64; }
	server {
		listen 127.0.0.1:$NA;
		location / {
			proxy_pass https://b; proxy_http_version 1.1; proxy_set_header Connection \"\";
			proxy_ssl_certificate $dir/client.crt; proxy_ssl_certificate_key $dir/client.key;
			proxy_ssl_trusted_certificate $dir/ca.crt; proxy_ssl_verify on; proxy_ssl_name server.bench;
			proxy_ssl_server_name on; proxy_ssl_session_reuse on;
		}
	}"
nginx_conf ngb "	upstream be { server 127.0.0.1:$P; keepalive 64; }
	server {
		listen 127.0.0.1:$NB ssl;
		ssl_certificate $dir/server.crt; ssl_certificate_key $dir/server.key;
		ssl_client_certificate $dir/ca.crt; ssl_verify_client on;
		location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
	}"
for n in nga ngb; do
	$ON_PROXY "$NGINX" -p "$dir/$n" -c "$dir/$n/nginx.conf" > "$dir/$n.log" 2>&1 &
	pids="$pids $!"
done

HOST="benchtls.bench.svc.cluster.local:$P"
i=0
until curl -sf -o /dev/null "http://127.0.0.1:$P/" && curl -sf -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CPORT/" &&
	curl -sf -o /dev/null "http://127.0.0.1:$NA/"; do
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "bench-mtls: a path does not answer"; cat "$dir"/*.log "$dir"/ng*/error.log; exit 1; }
	sleep 0.1
done
worker() { pgrep -P "$(cat "$dir/$1/nginx.pid")" | head -1; }
NAPID=$(worker nga)
NBPID=$(worker ngb)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
thr() { # url host -> req/s
	$ON_LOAD wrk -t1 -c50 -d"${DUR}s" -H "Host: $2" "$1" 2>/dev/null | awk '/Requests\/sec/ {print int($2)}'
}
rate() { # host:port host pid pid -> "p50 p99 cpu_ms_per_1k errors" (CPU of both hops)
	a0=$(cpu_ticks "$3")
	b0=$(cpu_ticks "$4")
	out=$($ON_LOAD "$B/pxrate" "$1" "$2" "$RATE" "$DUR" 32)
	d=$(($(cpu_ticks "$3") - a0 + $(cpu_ticks "$4") - b0))
	echo "$out" | awk -v d="$d" -v hz="$(getconf CLK_TCK)" -v n=$((RATE * DUR)) \
		'{for (i = 1; i < NF; i++) v[$i] = $(i + 1); printf "%d %d %.1f %d\n", v["p50_us"], v["p99_us"], d * 1000.0 / hz / (n / 1000.0), v["errors"]}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }

echo "two hops with mTLS: wrk -t1 -c50 ${DUR}s; fixed ${RATE} rps for ${DUR}s; median of $REPS runs"
echo "  meshproxy: client sidecar -> server sidecar (ISTIO_MUTUAL by auto mTLS, certificates from meshd's CA);"
echo "  nginx: proxy_pass https with a client certificate -> ssl_verify_client on (both keep-alive)"
[ -n "$ON_PROXY" ] && echo "  placement: the four proxies on CPU $PCPU; wrk, pxrate, meshd and the backend on CPU $LCPU"
D_THR="" P_THR="" N_THR="" D_P50="" D_P99="" P_P50="" P_P99="" P_CPU="" N_P50="" N_P99="" N_CPU="" P_ERR=0 N_ERR=0
rep=0
while [ $rep -lt "$REPS" ]; do
	D_THR="$D_THR $(thr "http://127.0.0.1:$P/" "$HOST")"
	P_THR="$P_THR $(thr "http://127.0.0.1:$CPORT/" "$HOST")"
	N_THR="$N_THR $(thr "http://127.0.0.1:$NA/" "$HOST")"
	set -- $(rate "127.0.0.1:$P" "$HOST" "$BEPID" "$BEPID")
	D_P50="$D_P50 $1" D_P99="$D_P99 $2"
	set -- $(rate "127.0.0.1:$CPORT" "$HOST" "$CPID" "$SPID")
	P_P50="$P_P50 $1" P_P99="$P_P99 $2" P_CPU="$P_CPU $3" P_ERR=$((P_ERR + $4))
	set -- $(rate "127.0.0.1:$NA" "$HOST" "$NAPID" "$NBPID")
	N_P50="$N_P50 $1" N_P99="$N_P99 $2" N_CPU="$N_CPU $3" N_ERR=$((N_ERR + $4))
	echo "  run $((rep + 1)): req/s direct/meshproxy/nginx $(echo $D_THR | awk '{print $NF}')/$(echo $P_THR | awk '{print $NF}')/$(echo $N_THR | awk '{print $NF}'); p99 us $(echo $D_P99 | awk '{print $NF}')/$(echo $P_P99 | awk '{print $NF}')/$(echo $N_P99 | awk '{print $NF}')"
	rep=$((rep + 1))
done
HS=$(curl -s "http://127.0.0.1:$SADM/stats/prometheus" | awk '/^meshproxy_tls_handshake_failures / {print $2}')
# the TLS connections the client sidecar opened over all runs: handshakes, not requests
CX=$(curl -s "http://127.0.0.1:$CADM/clusters" | awk -F:: -v k="$SIP:$P" '$2 == k && $3 == "cx_total" {print $4}' | head -1)

awk -v d="$(echo $D_THR | median)" -v p="$(echo $P_THR | median)" -v n="$(echo $N_THR | median)" \
	-v dp50="$(echo $D_P50 | median)" -v dp99="$(echo $D_P99 | median)" -v pp50="$(echo $P_P50 | median)" \
	-v pp99="$(echo $P_P99 | median)" -v np50="$(echo $N_P50 | median)" -v np99="$(echo $N_P99 | median)" \
	-v pcpu="$(echo $P_CPU | median)" -v ncpu="$(echo $N_CPU | median)" -v perr="$P_ERR" -v nerr="$N_ERR" \
	-v hs="${HS:-?}" -v cx="${CX:-?}" 'function v(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
	printf "%-34s %12s %12s %12s   %s\n", "two hops, mTLS", "direct", "meshproxy", "nginx", "target (DESIGN.md)";
	printf "%-34s %12d %12d %12d   meshproxy >= nginx TLS: %.2fx %s\n", "peak throughput (req/s)", d, p, n, p / n, v(p >= n);
	printf "%-34s %12.3f %12.3f %12.3f\n", "p50 at fixed rate (ms)", dp50 / 1000, pp50 / 1000, np50 / 1000;
	printf "%-34s %12.3f %12.3f %12.3f\n", "p99 at fixed rate (ms)", dp99 / 1000, pp99 / 1000, np99 / 1000;
	printf "%-34s %12s %+12.3f %+12.3f   meshproxy <= +0.3 ms: %s\n", "  p99 added over direct (ms)", "", (pp99 - dp99) / 1000, (np99 - dp99) / 1000, v(pp99 - dp99 <= 300);
	printf "%-34s %12s %12.1f %12.1f   meshproxy <= nginx: %s\n", "CPU per 1,000 requests, 2 hops (ms)", "", pcpu, ncpu, v(pcpu <= ncpu);
	printf "%-34s %12s %12d %12d   0: %s\n", "errors at fixed rate (all runs)", "", perr, nerr, v(perr == 0);
	printf "%-34s %12s %12s\n", "meshproxy TLS connections opened", "", cx;
	printf "%-34s %12s %12s\n", "inbound handshake failures", "", hs;
}'
