#!/bin/sh
# HTTPS through the ingress gateway vs nginx terminating TLS with the same
# certificate, one run (make bench-gateway; part of make bench-proxy):
#   gateway: wrk (https) -> meshproxy as a router node (Gateway server HTTPS
#            SIMPLE, hosts ["*"], credentialName bench-cert served by meshd
#            over SDS) -> pxbackend (127.0.0.1:P, plaintext keep-alive)
#   nginx:   wrk (https) -> nginx (listen ssl, the same certificate and key,
#            one worker, keep-alive upstream, access log off) -> pxbackend
# Two loads: keep-alive connections (wrk -c50: TLS bytes, the HTTP path) and
# a new connection per request (Connection: close: one full handshake per
# request).  Prints req/s, CPU per 1,000 requests of the proxy (utime+stime
# from /proc during the run) and errors, beside DESIGN.md's "mTLS handshake
# and bytes: >= nginx's TLS proxy throughput" and "CPU per 1,000 requests
# <= nginx's".  The certificate is made here (openssl, P-256); the gateway's
# identity comes from meshd's CA (xDS and Secrets over TLS on 15012).
# Placement as bench-proxy: the proxy under test on CPU PXBENCH_PROXY_CPU,
# wrk, meshd and the backend on PXBENCH_LOAD_CPU.  Asserts nothing.
set -eu
BUILD=${1:-build}
B="$BUILD/tests/bench/proxy"
DUR=${PXBENCH_SECONDS:-5}
PCPU=${PXBENCH_PROXY_CPU:-0}
LCPU=${PXBENCH_LOAD_CPU:-1}
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	ON_PROXY="taskset -c $PCPU"
	ON_LOAD="taskset -c $LCPU"
else
	ON_PROXY=""
	ON_LOAD=""
fi
for t in wrk nginx openssl; do
	command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "bench-gateway: $t missing (sh scripts/deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/pxbench-gw.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	ngpid=$(cat "$dir/ng/nginx.pid" 2>/dev/null || true)
	[ -n "$ngpid" ] && kill "$ngpid" 2>/dev/null || true
	sleep 0.2
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(port); GW=$(port); NG=$(port); GADM=$(port); XPORT=$(port); HPORT=$(port); SPORT=$(port)

$ON_LOAD "$B/pxbackend" "$P" > "$dir/backend.log" 2>&1 &
pids="$pids $!"

# one certificate for both proxies
(
	cd "$dir"
	o() { openssl "$@" > /dev/null 2>&1; }
	o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 1 -subj /O=bench-ca
	o req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout gw.key -out gw.csr -subj /CN=bench.example.com
	printf 'subjectAltName=DNS:bench.example.com\n' > gw.ext
	o x509 -req -in gw.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out gw.crt -days 1 -extfile gw.ext
)

mkdir -p "$dir/config"
cat > "$dir/config/mesh.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench, namespace: bench}
spec:
  hosts: [bench.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: $P}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench, namespace: bench}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $GW, name: https, protocol: HTTPS}
    bind: 127.0.0.1
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: bench-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench, namespace: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - route: [{destination: {host: bench.bench.svc.cluster.local, port: {number: 8080}}}]
---
apiVersion: v1
kind: Secret
metadata: {name: bench-cert, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$dir/gw.crt")
  tls.key: $(base64 -w0 "$dir/gw.key")
YAML
printf 'gw-token istio-system istio-ingressgateway\n' > "$dir/tokens"
echo gw-token > "$dir/gw.token"
$ON_LOAD "$BUILD/bin/meshd" --config-dir "$dir/config" --xds-addr "127.0.0.1:$XPORT" --http-addr "127.0.0.1:$HPORT" \
	--secure-addr "127.0.0.1:$SPORT" --webhook-addr "" --ca-dir "$dir/ca" --ca-token-file "$dir/tokens" --log-level warn \
	> "$dir/meshd.log" 2>&1 &
pids="$pids $!"
i=0
until [ -s "$dir/ca/root-cert.pem" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HPORT/ready")" = 200 ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && { echo "bench-gateway: meshd not ready"; cat "$dir/meshd.log"; exit 1; }
	sleep 0.1
done
$ON_PROXY "$BUILD/bin/meshproxy" --xds-addr "127.0.0.1:$SPORT" --ca-addr "127.0.0.1:$SPORT" \
	--root-cert "$dir/ca/root-cert.pem" --token-file "$dir/gw.token" --service-account istio-ingressgateway \
	--node-id "router~127.0.0.1~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local" \
	--labels istio=ingressgateway,app=istio-ingressgateway --admin-addr "127.0.0.1:$GADM" \
	--outbound-addr "127.0.0.1:$(port)" --inbound-addr "127.0.0.1:$(port)" \
	--status-addr "" --health-addr "" --log-level warn > "$dir/gateway.log" 2>&1 &
GPID=$!
pids="$pids $GPID"

mkdir -p "$dir/ng"
cat > "$dir/ng/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $dir/ng/nginx.pid;
error_log $dir/ng/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/ng/body;
	proxy_temp_path $dir/ng/proxy;
	fastcgi_temp_path $dir/ng/fcgi;
	uwsgi_temp_path $dir/ng/uwsgi;
	scgi_temp_path $dir/ng/scgi;
	upstream be { server 127.0.0.1:$P; keepalive 64; }
	server {
		listen 127.0.0.1:$NG ssl;
		ssl_certificate $dir/gw.crt; ssl_certificate_key $dir/gw.key;
		# as the gateway: TLS 1.3 offered (nginx 1.22's default stops at
		# 1.2), no session tickets and no session cache (meshproxy sends
		# none), so a handshake per request is a full handshake on both
		ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off; ssl_session_cache off;
		location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
NGX
$ON_PROXY "$NGINX" -p "$dir/ng" -c "$dir/ng/nginx.conf" > "$dir/ng.log" 2>&1 &
pids="$pids $!"

get() { curl -sf -o /dev/null --resolve "bench.example.com:$1:127.0.0.1" --cacert "$dir/ca.crt" "https://bench.example.com:$1/"; }
i=0
until get "$GW" && get "$NG"; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "bench-gateway: the gateway or nginx does not answer over TLS (needs meshd's gateway generator and"
		echo "meshproxy's gateway mode and SDS, issue 13); nothing measured"
		tail -5 "$dir/gateway.log" "$dir/meshd.log" "$dir"/ng/error.log
		exit 0
	fi
	sleep 0.1
done
NPID=$(pgrep -P "$(cat "$dir/ng/nginx.pid")" | head -1)
# what each negotiates with an OpenSSL client, printed beside the figures
tls_of() { echo | openssl s_client -connect "127.0.0.1:$1" -servername bench.example.com 2>/dev/null |
	awk '/^New, / {sub(/,$/, "", $2); p = $2 " " $NF} /Server Temp Key/ {k = $4} END {sub(/,$/, "", k); print p " " k}'; }
G_TLS=$(tls_of "$GW")
N_TLS=$(tls_of "$NG")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk on https://127.0.0.1:PORT with Host bench.example.com -> "req/s cpu_ms_per_1k errors"
run() { # port pid [extra wrk args]
	p=$1 pid=$2
	shift 2
	c0=$(cpu_ticks "$pid")
	out=$($ON_LOAD wrk -t1 -c50 -d"${DUR}s" -H "Host: bench.example.com" "$@" "https://127.0.0.1:$p/" 2>&1)
	d=$(($(cpu_ticks "$pid") - c0))
	echo "$out" | awk -v d="$d" -v hz="$(getconf CLK_TCK)" -v dur="$DUR" '
		/requests in/ {n = $1}
		/Requests\/sec/ {r = $2}
		/Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) e += $i}
		/Non-2xx/ {e += $NF}
		END {printf "%d %.1f %d\n", r, n ? d * 1000.0 / hz / (n / 1000.0) : 0, e}'
}
echo "HTTPS through the gateway vs nginx terminating TLS (same certificate, P-256), wrk -t1 -c50 ${DUR}s, one run"
echo "  gateway: meshproxy as a router node, certificate from a credentialName Secret over SDS;"
echo "  nginx: listen ssl, one worker; both proxy to the same backend with keep-alive"
echo "  negotiated: gateway $G_TLS; nginx $N_TLS"
[ -n "$ON_PROXY" ] && echo "  placement: the proxy on CPU $PCPU; wrk, meshd and the backend on CPU $LCPU"
set -- $(run "$GW" "$GPID"); G_KA=$1 G_KA_CPU=$2 G_KA_ERR=$3
set -- $(run "$NG" "$NPID"); N_KA=$1 N_KA_CPU=$2 N_KA_ERR=$3
set -- $(run "$GW" "$GPID" -H "Connection: close"); G_HS=$1 G_HS_CPU=$2 G_HS_ERR=$3
set -- $(run "$NG" "$NPID" -H "Connection: close"); N_HS=$1 N_HS_CPU=$2 N_HS_ERR=$3
awk -v gka="$G_KA" -v nka="$N_KA" -v gkc="$G_KA_CPU" -v nkc="$N_KA_CPU" -v gke="$G_KA_ERR" -v nke="$N_KA_ERR" \
	-v ghs="$G_HS" -v nhs="$N_HS" -v ghc="$G_HS_CPU" -v nhc="$N_HS_CPU" -v ghe="$G_HS_ERR" -v nhe="$N_HS_ERR" '
function v(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
	printf "%-40s %12s %12s   %s\n", "HTTPS at the edge", "gateway", "nginx", "target (DESIGN.md)";
	printf "%-40s %12d %12d   gateway >= nginx TLS: %.2fx %s\n", "keep-alive: req/s", gka, nka, nka ? gka / nka : 0, v(gka >= nka);
	printf "%-40s %12.1f %12.1f   gateway <= nginx: %s\n", "keep-alive: CPU per 1,000 requests (ms)", gkc, nkc, v(gkc <= nkc);
	printf "%-40s %12d %12d   gateway >= nginx TLS: %.2fx %s\n", "a handshake per request: req/s", ghs, nhs, nhs ? ghs / nhs : 0, v(ghs >= nhs);
	printf "%-40s %12.1f %12.1f\n", "a handshake per request: CPU/1k req (ms)", ghc, nhc;
	printf "%-40s %12d %12d\n", "errors (both loads)", gke + ghe, nke + nhe;
}'
