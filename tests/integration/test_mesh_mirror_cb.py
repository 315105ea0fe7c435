"""Mirroring and circuit breaking end to end, as Istio + Envoy do them: the
real meshd (sidecar flavour), a real meshproxy sidecar, and backends on
127.0.0.x that count what reaches them -- requests, bodies, and the TCP
connections the proxy opens and closes.

- mirrors[]: every entry gets its copies (Istio emits one
  request_mirror_policies entry per mirror, each with its own percentage);
  a POST body (Content-Length and chunked) reaches the mirror whole; a body
  past the shadow buffer is not mirrored and the main request still works;
- http2MaxRequests (max_requests): one request held, the next answered 503
  with x-envoy-overloaded and response flag UO;
- maxRetries (max_retries: 1): two failing requests at once, only one retry
  reaches the backend, the other 503 comes back unretried;
- maxRequestsPerConnection: the backend sees a new connection every N
  requests;
- http.idleTimeout: the pooled upstream connection is closed by the proxy;
- tcp.maxConnectionDuration: a request longer than the limit completes,
  then its connection is closed and the next request opens another;
- tcp.tcpKeepalive: the pooled upstream socket has a keepalive timer
  (`ss -o`), one to a backend without it has none.

Every wait is bounded; nothing asserts on timing (a sleep here only lets a
limit pass, the assertion is on counts at the backend).
"""
import http.client
import http.server
import json
import subprocess
import threading
import time
import unittest

from meshhttp import NS, PORT, MeshCase, fqdn, service_yaml, slow, wait_for


class CountingBackend:
    """An HTTP/1.1 backend counting connections and requests.

    Paths: /hold waits on gate (released by release()); /delay/MS sleeps;
    /r/... acts on x-envoy-attempt-count: attempt 1 waits on gate1 and
    answers 503, later attempts wait on gate2 and answer 200.  Each answer
    is JSON {backend, path, host, body, conn} (conn: the connection's
    number at this backend)."""

    def __init__(self, name, ip):
        self.name, self.ip, self.version = name, ip, "v1"
        self.lock = threading.Lock()
        self.requests = []       # (path, lower-cased headers, body, conn)
        self.conns_open = 0
        self.conns_total = 0
        self.per_conn = {}       # conn -> requests served on it
        self.holding = 0
        self.hold_mirrors = False  # /mhold waits on gate too (a mirror that never answers)
        self.gate, self.gate1, self.gate2 = threading.Event(), threading.Event(), threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.conns_total += 1
                    outer.conns_open += 1
                    self.conn_no = outer.conns_total
                    outer.per_conn[self.conn_no] = 0

            def finish(self):
                try:
                    super().finish()
                finally:
                    with outer.lock:
                        outer.conns_open -= 1

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length", "0") or 0)
                return self.rfile.read(n) if n else b""

            def handle_one(self):
                body = self.read_body()
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    outer.requests.append((self.path, hdrs, body, self.conn_no))
                    outer.per_conn[self.conn_no] += 1
                code = 200
                p = self.path
                if p.startswith("/hold") or (p.startswith("/mhold") and outer.hold_mirrors):
                    with outer.lock:
                        outer.holding += 1
                    outer.gate.wait(30)
                    with outer.lock:
                        outer.holding -= 1
                elif p.startswith("/delay/"):
                    time.sleep(int(p.split("/")[2]) / 1000.0)
                elif p.startswith("/r/"):
                    first = hdrs.get("x-envoy-attempt-count", "1") == "1"
                    with outer.lock:
                        outer.holding += 1
                    (outer.gate1 if first else outer.gate2).wait(30)
                    with outer.lock:
                        outer.holding -= 1
                    code = 503 if first else 200
                out = json.dumps({"backend": outer.name, "path": p, "host": hdrs.get("host"),
                                  "body": body.decode("latin-1"), "conn": self.conn_no}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-backend", outer.name)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = handle_one

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass

        self.server = Server((ip, 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, prefix):
        with self.lock:
            return [r for r in self.requests if r[0].startswith(prefix)]

    def snapshot(self):
        with self.lock:
            return self.conns_total, self.conns_open, dict(self.per_conn)

    def release(self):
        self.gate.set()
        self.gate1.set()
        self.gate2.set()

    def stop(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def dr(name, pool):
    return """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: %s}
spec:
  host: %s
  trafficPolicy:
    connectionPool:
%s
""" % (name, NS, fqdn(name), pool)


VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main, namespace: %(ns)s}
spec:
  hosts: [%(main)s]
  http:
  - route: [{destination: {host: %(main)s}}]
    mirrors:
    - destination: {host: %(sa)s}
    - destination: {host: %(sb)s}
      percentage: {value: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: retry, namespace: %(ns)s}
spec:
  hosts: [%(retry)s]
  http:
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: %(retry)s}}]
"""


class MeshMirrorCbTest(MeshCase):
    @classmethod
    def backends(cls):
        return {
            "main": CountingBackend("main", "127.0.0.2"),
            "sa": CountingBackend("sa", "127.0.0.3"),
            "sb": CountingBackend("sb", "127.0.0.4"),
            "maxrq": CountingBackend("maxrq", "127.0.0.5"),
            "retry": CountingBackend("retry", "127.0.0.6"),
            "perconn": CountingBackend("perconn", "127.0.0.7"),
            "idle": CountingBackend("idle", "127.0.0.8"),
            "age": CountingBackend("age", "127.0.0.9"),
            "ka": CountingBackend("ka", "127.0.0.10"),
        }

    @classmethod
    def config(cls, b):
        files = {n + ".yaml": service_yaml(n, [b[n]]) for n in b}
        files["vs.yaml"] = VS % {"ns": NS, "main": fqdn("main"), "sa": fqdn("sa"), "sb": fqdn("sb"),
                                 "retry": fqdn("retry")}
        files["dr.yaml"] = "---\n".join([
            dr("maxrq", "      http: {http2MaxRequests: 1}"),
            dr("retry", "      http: {maxRetries: 1}"),
            dr("perconn", "      http: {maxRequestsPerConnection: 2}"),
            dr("idle", "      http: {idleTimeout: 1s}"),
            dr("age", "      tcp: {maxConnectionDuration: 1s}"),
            dr("ka", "      tcp: {tcpKeepalive: {time: 77s, interval: 5s, probes: 4}}"),
        ])
        return files

    def url(self, name, path):
        return "http://%s:%d%s" % (fqdn(name), PORT, path)

    def stat(self, name):
        body = self.px.admin("/stats/prometheus")[1]
        for line in body.splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        raise AssertionError("no %s in /stats/prometheus" % name)

    # ---- mirroring

    def test_mirrors_all_entries(self):
        n = 40
        for i in range(n):
            r = self.px.get("main", "/all/%d" % i)
            self.assertEqual((r.status, r.headers.get("x-backend")), (200, "main"), r)
        sa, sb = self.b["sa"], self.b["sb"]
        wait_for(lambda: len(sa.seen("/all/")) >= n, what="every copy at the first mirror")
        # the second mirror's 50%: a wide band (sd ~3.2 for 40)
        wait_for(lambda: len(sb.seen("/all/")) >= 5, what="copies at the second mirror")
        time.sleep(0.5)  # late copies, if any, land before the upper bound is read
        self.assertLessEqual(len(sb.seen("/all/")), 35)
        self.assertEqual(len(sa.seen("/all/")), n)
        self.assertEqual(sa.seen("/all/")[0][1]["host"].split(":")[0], fqdn("main") + "-shadow")

    def test_mirror_with_body(self):
        sa = self.b["sa"]
        body = b"x" * 3000 + b"end"
        r = self.px.request(self.url("main", "/body/cl"), method="POST", body=body,
                            headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body"], body.decode())
        got = wait_for(lambda: sa.seen("/body/cl"), what="the POST copy at the mirror")
        self.assertEqual(got[0][2], body)
        # chunked (http.client frames an iterable body itself)
        c = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20)
        try:
            c.request("POST", self.url("main", "/body/chunked"), body=iter([b"abc", b"defg", b"h" * 100]),
                      encode_chunked=True)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["body"], "abcdefg" + "h" * 100)
        finally:
            c.close()
        got = wait_for(lambda: sa.seen("/body/chunked"), what="the chunked copy at the mirror")
        self.assertEqual(got[0][2], b"abcdefg" + b"h" * 100)
        # the 64 KiB cap counts body bytes, not the chunk framing: exactly
        # 64 KiB sent chunked (64 chunks) is mirrored whole
        c = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20)
        try:
            c.request("POST", self.url("main", "/body/chunked-64k"), body=iter([b"k" * 1024] * 64),
                      encode_chunked=True)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        got = wait_for(lambda: sa.seen("/body/chunked-64k"), what="the 64 KiB chunked copy at the mirror")
        self.assertEqual(got[0][2], b"k" * (64 * 1024))

    def test_mirror_body_over_buffer_not_mirrored(self):
        sa = self.b["sa"]
        dropped = self.stat("meshproxy_mirror_requests_dropped")
        body = b"y" * (200 * 1024)
        r = self.px.request(self.url("main", "/big"), method="POST", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["body"]), len(body))
        # both mirror policies were drawn or not; the first always is: >= 1 dropped
        wait_for(lambda: self.stat("meshproxy_mirror_requests_dropped") > dropped,
                 what="the over-buffer copy counted as dropped")
        # a later small request still mirrors, and the big one never arrived
        self.px.get("main", "/after-big")
        wait_for(lambda: sa.seen("/after-big"), what="the next copy at the mirror")
        self.assertEqual(sa.seen("/big"), [])

    def test_mirrors_bounded_never_slow_main(self):
        # mirrors that never answer: past the in-flight bound (128) copies
        # are dropped and counted, and every main request still answers
        sa, sb = self.b["sa"], self.b["sb"]
        sa.hold_mirrors = sb.hold_mirrors = True
        dropped = self.stat("meshproxy_mirror_requests_dropped")
        statuses = []
        lock = threading.Lock()

        def client(k):
            c = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20)
            try:
                for i in range(30):
                    c.request("GET", self.url("main", "/mhold/%d/%d" % (k, i)))
                    r = c.getresponse()
                    r.read()
                    with lock:
                        statuses.append(r.status)
            finally:
                c.close()
        try:
            ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            self.assertEqual(statuses, [200] * 240)
            self.assertGreater(self.stat("meshproxy_mirror_requests_dropped"), dropped)
        finally:
            sa.hold_mirrors = sb.hold_mirrors = False
            sa.gate.set()
            sb.gate.set()

    # ---- circuit breaking

    def test_max_requests_overflow(self):
        b = self.b["maxrq"]
        out = {}

        def held():
            out["r"] = self.px.get("maxrq", "/hold")
        t = threading.Thread(target=held)
        t.start()
        try:
            wait_for(lambda: b.holding == 1, what="one request held at the backend")
            r = self.px.get("maxrq", "/second")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.headers.get("x-envoy-overloaded"), "true", r)
            self.assertEqual(b.seen("/second"), [])
        finally:
            b.release()
            t.join(30)
        self.assertEqual(out["r"].status, 200)
        line = wait_for(lambda: [x for x in self.px.access_log() if " /second " in x],
                        what="the access log line of the overflow")[-1]
        self.assertIn(" 503 UO ", line)
        # with nothing in flight the next one passes again
        self.assertEqual(self.px.get("maxrq", "/third").status, 200)

    def test_max_retries(self):
        b = self.b["retry"]
        res = {}

        def call(k):
            res[k] = self.px.get("retry", "/r/%s" % k)
        ts = [threading.Thread(target=call, args=(k,)) for k in ("a", "b")]
        for t in ts:
            t.start()
        try:
            wait_for(lambda: b.holding == 2, what="both first attempts held")
            b.gate1.set()  # both answer 503: one retry fits under maxRetries 1
            wait_for(lambda: len(b.seen("/r/")) == 3 and b.holding == 1, what="one retry held")
            # the other request came back with its 503, unretried
            wait_for(lambda: len(res) == 1, what="the overflowed request's answer")
            (k, r), = res.items()
            self.assertEqual(r.status, 503, r)
        finally:
            b.gate2.set()
            for t in ts:
                t.join(30)
        self.assertEqual(sorted(r.status for r in res.values()), [200, 503])
        self.assertEqual(len(b.seen("/r/")), 3)

    def test_max_requests_per_connection(self):
        b = self.b["perconn"]
        total0, _, _ = b.snapshot()
        for i in range(6):
            self.assertEqual(self.px.get("perconn", "/pc/%d" % i).status, 200)
        total, _, per = b.snapshot()
        used = {c for (_, _, _, c) in b.seen("/pc/")}
        self.assertGreaterEqual(total - total0, 3, per)
        self.assertTrue(all(per[c] <= 2 for c in used), per)

    def test_http_idle_timeout(self):
        b = self.b["idle"]
        self.assertEqual(self.px.get("idle", "/i").status, 200)
        # Envoy's pool default would keep it an hour (meshproxy's: a minute);
        # idleTimeout 1s closes it from the proxy's side
        wait_for(lambda: b.snapshot()[1] == 0, timeout=60 if slow() else 15,
                 what="the idle upstream connection closed")

    def test_max_connection_duration(self):
        b = self.b["age"]
        t0, _, _ = b.snapshot()
        # longer than the 1s limit: it completes, then its connection goes
        r = self.px.get("age", "/delay/1500")
        self.assertEqual(r.status, 200, r)
        first = r.json()["conn"]
        r = self.px.get("age", "/next")
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.json()["conn"], first)
        self.assertEqual(b.snapshot()[0] - t0, 2)

    def test_tcp_keepalive(self):
        def timers(b):
            out = subprocess.run(["ss", "-tnoH", "state", "established", "dst", "%s:%d" % (b.ip, b.port)],
                                 capture_output=True, text=True, timeout=10).stdout
            return out
        ka, other = self.b["ka"], self.b["main"]
        self.assertEqual(self.px.get("ka", "/ka").status, 200)
        self.assertEqual(self.px.get("main", "/no-ka").status, 200)
        got = timers(ka)
        self.assertIn("timer:(keepalive,", got)
        # 77s idle time: the first probe is over a minute away
        self.assertRegex(got, r"keepalive,1m|keepalive,7\ds|keepalive,6\ds")
        self.assertNotIn("keepalive", timers(other))


if __name__ == "__main__":
    unittest.main()
