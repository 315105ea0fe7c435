"""meshproxy's HTTP/1.1 engine end to end: curl and raw sockets through
the proxy engine (BUILD/tests/bench/proxy/pxserve: the engine, its admin
port and a configuration built from a spec file, until meshproxy's xDS
client lands) to small Python http.server backends on loopback.

Covered: routing by Host and by absolute-form (http_proxy), keep-alive on
both sides, chunked streaming both ways, retries on a failing backend,
route timeout (504 UT), no route (404 NR), connect failure (503 UF),
request smuggling answered 400 while other connections are unaffected,
CONNECT refused (404 NR), an unrequested upstream 101 (502 UPE, as Envoy's ProtocolError), h2c
upgrades stripped,
the access log's Envoy fields, /clusters and /stats/prometheus, a config
swap (SIGHUP) between requests and a graceful drain on SIGTERM.

Nothing here asserts on timing; every wait is bounded.
"""
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from meshtest import BUILD, free_port, wait_for

PXSERVE = os.path.join(BUILD, "tests", "bench", "proxy", "pxserve")


class Backend:
    """An HTTP/1.1 server on loopback answering by path; it counts requests and connections."""

    def __init__(self, name):
        self.name = name
        self.requests = 0
        self.conns = set()
        self.fail_next = 0
        self.last_headers = {}
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body, extra=()):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length", "0") or 0)
                return self.rfile.read(n) if n else b""

            def handle_one(self):
                with outer.lock:
                    outer.requests += 1
                    outer.conns.add(self.client_address)
                    outer.last_headers = dict((k.lower(), v) for k, v in self.headers.items())
                    fail = outer.fail_next > 0
                    if fail:
                        outer.fail_next -= 1
                body = self.read_body()
                if fail:
                    return self.reply(503, b"failing")
                p = self.path
                if "/delay/" in p:
                    time.sleep(int(p.split("/delay/")[1].split("/")[0]) / 1000.0)
                    return self.reply(200, b"late")
                if p.startswith("/status/"):
                    return self.reply(int(p.split("/")[2]), b"status")
                if p.startswith("/chunked/"):
                    n = int(p.split("/")[2])
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(n):
                        chunk = (b"%05d" % i) * 200
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    return None
                if "/echo" in p:
                    return self.reply(200, body, [("X-Backend", outer.name), ("X-Drop", "1")])
                if p.startswith("/ws"):
                    self.send_response(101)
                    self.send_header("Upgrade", "websocket")
                    self.send_header("Connection", "Upgrade")
                    self.end_headers()
                    self.wfile.flush()
                    while True:
                        data = self.connection.recv(65536)
                        if not data:
                            break
                        self.connection.sendall(data.upper())
                    self.close_connection = True
                    return None
                return self.reply(200, ("%s %s" % (outer.name, p)).encode())

            do_GET = do_POST = do_PUT = do_HEAD = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    def __init__(self, spec):
        self.dir = tempfile.mkdtemp(prefix="pxserve-it-")
        self.spec = os.path.join(self.dir, "spec")
        self.alog = os.path.join(self.dir, "access.log")
        self.write_spec(spec)
        self.out_port, self.in_port, self.admin_port = free_port(), free_port(), free_port()
        self.log = open(os.path.join(self.dir, "pxserve.log"), "w+")
        self.proc = subprocess.Popen(
            [PXSERVE, "--spec", self.spec, "--outbound-addr", "127.0.0.1:%d" % self.out_port,
             "--inbound-addr", "127.0.0.1:%d" % self.in_port, "--admin-addr", "127.0.0.1:%d" % self.admin_port,
             "--access-log", self.alog],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.connectable, what="pxserve listeners")

    def write_spec(self, spec):
        with open(self.spec, "w") as f:
            f.write(spec)

    def connectable(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError("pxserve exited %d: %s" % (self.proc.returncode, self.log.read()))
        try:
            socket.create_connection(("127.0.0.1", self.admin_port), timeout=1).close()
            return True
        except OSError:
            return False

    def curl(self, *args, env=None):
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "15", "-w", "\n%{http_code} %{num_connects}"] + list(args),
                             capture_output=True, text=True, timeout=30, env=env)
        body, _, tail = out.stdout.rpartition("\n")
        code, _, conns = tail.partition(" ")
        return int(code or 0), body, int(conns or 0)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.out_port, path)

    def admin(self, path):
        return self.curl("http://127.0.0.1:%d%s" % (self.admin_port, path))[1]

    def access_log(self):
        # lines are flushed every 200 ms: wait until the expected count is there
        try:
            with open(self.alog) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        log = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        # under make SAN=1 a sanitizer report (leaks at exit included) fails the run
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if bad in log:
                raise AssertionError("pxserve: %s\n%s" % (bad, log[-4000:]))


SPEC = """
outbound registry_only
listener 9080
vhost 9080 reviews reviews.demo,reviews.demo:9080
route 9080 reviews /slow cluster=outbound|9080||reviews.demo timeout=300
route 9080 reviews / cluster=outbound|9080||reviews.demo retries=2 retry_on=5xx,connect-failure attempt_count=1
vhost 9080 ratings ratings.demo:9080
route 9080 ratings / cluster=outbound|9080||ratings.demo
vhost 9080 dead dead.demo:9080
route 9080 dead / cluster=outbound|9080||dead.demo
cluster outbound|9080||reviews.demo eds 127.0.0.1:{reviews}
cluster outbound|9080||ratings.demo eds 127.0.0.1:{ratings}
cluster outbound|9080||dead.demo eds 127.0.0.1:{dead}
"""


class MeshproxyHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.reviews = Backend("reviews")
        cls.ratings = Backend("ratings")
        cls.spec = SPEC.format(reviews=cls.reviews.port, ratings=cls.ratings.port, dead=free_port())
        cls.px = Proxy(cls.spec)

    @classmethod
    def tearDownClass(cls):
        cls.px.stop()
        cls.reviews.stop()
        cls.ratings.stop()

    def test_routing_by_host(self):
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", self.px.url("/a"))
        self.assertEqual((code, body), (200, "reviews /a"))
        code, body, _ = self.px.curl("-H", "Host: ratings.demo:9080", self.px.url("/b"))
        self.assertEqual((code, body), (200, "ratings /b"))
        self.assertEqual(self.ratings.last_headers.get("host"), "ratings.demo:9080")
        # Envoy's x-request-id: a version 4 UUID, 8-4-4-4-12 hex digits
        self.assertRegex(self.ratings.last_headers.get("x-request-id", ""),
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(self.ratings.last_headers.get("x-forwarded-proto"), "http")

    def test_absolute_form_http_proxy(self):
        env = dict(os.environ, http_proxy="http://127.0.0.1:%d" % self.px.out_port)
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
        code, body, _ = self.px.curl("http://reviews.demo:9080/abs", env=env)
        self.assertEqual((code, body), (200, "reviews /abs"))

    def test_keepalive_both_sides(self):
        before = len(self.reviews.conns)
        out = subprocess.run(["curl", "-s", "-w", " %{num_connects}\n", "-H", "Host: reviews.demo:9080",
                              self.px.url("/k1"), self.px.url("/k2"), self.px.url("/k3")],
                             capture_output=True, text=True, timeout=30).stdout
        self.assertIn("reviews /k1 1", out)
        self.assertIn("reviews /k2 0", out)  # the client connection was reused
        self.assertIn("reviews /k3 0", out)
        # one pooled upstream connection carried them (at most one new one)
        self.assertLessEqual(len(self.reviews.conns) - before, 1)

    def test_chunked_streaming(self):
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", self.px.url("/chunked/300"))
        self.assertEqual(code, 200)
        self.assertEqual(len(body), 300 * 1000)
        self.assertTrue(body.startswith("00000") and body.endswith("00299"))
        payload = "z" * 200000
        path = os.path.join(self.px.dir, "payload")
        with open(path, "w") as f:
            f.write(payload)
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", "-H", "Transfer-Encoding: chunked",
                                     "--data-binary", "@" + path, self.px.url("/echo"))
        self.assertEqual((code, body), (200, payload))
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", "--data-binary", "@" + path,
                                     self.px.url("/echo"))
        self.assertEqual((code, body), (200, payload))

    def test_retries_on_failing_backend(self):
        self.reviews.fail_next = 2
        n = self.reviews.requests
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", self.px.url("/r"))
        self.assertEqual((code, body), (200, "reviews /r"))
        self.assertEqual(self.reviews.requests - n, 3)
        self.assertEqual(self.reviews.last_headers.get("x-envoy-attempt-count"), "3")
        self.reviews.fail_next = 5
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", self.px.url("/r2"))
        self.assertEqual(code, 503)
        self.reviews.fail_next = 0
        wait_for(lambda: '"GET /r2 HTTP/1.1" 503 URX' in self.px.access_log(), what="URX in the access log")

    def test_timeout_504_ut(self):
        code, body, _ = self.px.curl("-H", "Host: reviews.demo:9080", self.px.url("/slow/delay/3000"))
        self.assertEqual((code, body), (504, "upstream request timeout"))
        wait_for(lambda: '"GET /slow/delay/3000 HTTP/1.1" 504 UT' in self.px.access_log(), what="UT log line")

    def test_no_route_404_nr(self):
        code, _, _ = self.px.curl("-H", "Host: unknown.demo:9080", self.px.url("/nr"))
        self.assertEqual(code, 404)
        wait_for(lambda: '"GET /nr HTTP/1.1" 404 NR' in self.px.access_log(), what="NR log line")
        code, _, _ = self.px.curl("-H", "Host: unknown.demo:7777", self.px.url("/bh"))
        self.assertEqual(code, 502)  # REGISTRY_ONLY: no listener for the port

    def test_connect_failure_503_uf(self):
        code, body, _ = self.px.curl("-H", "Host: dead.demo:9080", self.px.url("/uf"))
        self.assertEqual(code, 503)
        self.assertIn("connection failure", body)
        wait_for(lambda: '"GET /uf HTTP/1.1" 503 UF' in self.px.access_log(), what="UF log line")

    def raw(self, data, read_until_close=True):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=10)
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if not read_until_close:
                break
        s.close()
        return out

    def test_smuggling_400_others_unaffected(self):
        # an idle keep-alive connection opened before the attack
        other = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=10)
        cases = [
            b"POST / HTTP/1.1\r\nHost: reviews.demo:9080\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: reviews.demo:9080\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            b"GET / HTTP/1.1\r\nHost: reviews.demo:9080\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\nHost: reviews.demo:9080\n\n",
        ]
        n = self.reviews.requests
        for c in cases:
            out = self.raw(c)
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (c, out))
            self.assertEqual(out.count(b"HTTP/1.1 "), 1)
        self.assertEqual(self.reviews.requests, n)
        other.sendall(b"GET /still HTTP/1.1\r\nHost: reviews.demo:9080\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            chunk = other.recv(65536)
            if not chunk:
                break
            out += chunk
        other.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertTrue(out.endswith(b"reviews /still"), out)

    def test_admin_clusters_and_prometheus(self):
        self.px.curl("-H", "Host: ratings.demo:9080", self.px.url("/stats-probe"))
        clusters = self.px.admin("/clusters")
        self.assertRegex(clusters, r"outbound\|9080\|\|ratings\.demo::127\.0\.0\.1:%d::rq_total::[1-9]" % self.ratings.port)
        self.assertIn("outbound|9080||ratings.demo::127.0.0.1:%d::health_flags::healthy" % self.ratings.port, clusters)
        prom = self.px.admin("/stats/prometheus")
        self.assertRegex(prom, r'envoy_cluster_upstream_rq_total\{cluster_name="outbound\|9080\|\|ratings\.demo"\} [1-9]')
        self.assertIn('envoy_cluster_upstream_cx_active{cluster_name="outbound|9080||ratings.demo"}', prom)
        self.assertIn("envoy_cluster_upstream_rq_pending_overflow", prom)
        self.assertIn("envoy_cluster_outlier_detection_ejections_active", prom)

    def test_access_log_fields(self):
        self.px.curl("-H", "Host: reviews.demo:9080", "-H", "User-Agent: it-agent", "-H", "X-Request-Id: rid-123",
                     self.px.url("/logged"))
        wait_for(lambda: "rid-123" in self.px.access_log(), what="access log line")
        line = [l for l in self.px.access_log().splitlines() if "rid-123" in l][0]
        self.assertRegex(line, r'^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /logged HTTP/1\.1" 200 - 0 \d+ \d+ \d+ '
                               r'"-" "it-agent" "rid-123" "reviews\.demo:9080" "127\.0\.0\.1:%d"$' % self.reviews.port)


FEATURES = """
outbound
inbound
listener 9080
vhost 9080 web web.demo:9080
route 9080 web /edit cluster=outbound|9080||web.demo req_add=x-added:yes req_set=x-set:new req_remove=x-secret resp_add=x-resp:1 resp_remove=x-drop
route 9080 web /mirror cluster=outbound|9080||web.demo mirror=outbound|9080||shadow.demo
route 9080 web / cluster=outbound|9080||web.demo timeout=10000
vhost 9080 cors cors.demo:9080
route 9080 cors / cluster=outbound|9080||web.demo cors=http://ok.example
vhost 9080 cb cb.demo:9080
route 9080 cb / cluster=outbound|9080||cb.demo timeout=10000
cluster outbound|9080||web.demo eds 127.0.0.1:{web}
cluster outbound|9080||shadow.demo eds 127.0.0.1:{shadow}
cluster outbound|9080||cb.demo eds 127.0.0.1:{web} max_connections=1 max_pending=1
cluster inbound|{web}|| static 127.0.0.1:{web}
cluster PassthroughCluster original_dst
"""


class MeshproxyFeaturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = Backend("web")
        cls.shadow = Backend("shadow")
        cls.px = Proxy(FEATURES.format(web=cls.web.port, shadow=cls.shadow.port))

    @classmethod
    def tearDownClass(cls):
        cls.px.stop()
        cls.web.stop()
        cls.shadow.stop()

    def test_header_edits(self):
        out = subprocess.run(["curl", "-s", "-D", "-", "-H", "Host: web.demo:9080", "-H", "X-Set: old",
                              "-H", "X-Secret: s", "--data-binary", "b", self.px.url("/edit/echo")],
                             capture_output=True, text=True, timeout=30).stdout.lower()
        h = self.web.last_headers
        self.assertEqual(h.get("x-added"), "yes")
        self.assertEqual(h.get("x-set"), "new")
        self.assertNotIn("x-secret", h)
        self.assertIn("x-resp: 1", out)
        self.assertIn("x-backend: web", out)
        self.assertNotIn("x-drop", out)

    def test_mirror_fire_and_forget(self):
        n = self.shadow.requests
        code, body, _ = self.px.curl("-H", "Host: web.demo:9080", self.px.url("/mirror/m1"))
        self.assertEqual((code, body), (200, "web /mirror/m1"))
        wait_for(lambda: self.shadow.requests > n, what="mirrored request")
        self.assertEqual(self.shadow.last_headers.get("host"), "web.demo-shadow:9080")

    def test_circuit_breaker_uo(self):
        results = []

        def one(i):
            out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", "Host: cb.demo:9080",
                                  self.px.url("/delay/700/%d" % i)], capture_output=True, text=True, timeout=30)
            results.append(out.stdout.lower())

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        ok = [r for r in results if r.startswith("http/1.1 200")]
        uo = [r for r in results if r.startswith("http/1.1 503") and "x-envoy-overloaded: true" in r]
        self.assertEqual(len(ok) + len(uo), 4, results)
        self.assertGreaterEqual(len(ok), 1)  # one connection, one waiting: at least one is served
        self.assertGreaterEqual(len(uo), 1)  # four at once cannot all fit: overflow answered 503 UO
        wait_for(lambda: " 503 UO " in self.px.access_log(), what="UO log line")
        self.assertRegex(self.px.admin("/stats/prometheus"),
                         r'envoy_cluster_upstream_rq_pending_overflow\{cluster_name="outbound\|9080\|\|cb\.demo"\} [1-9]')

    def test_cors(self):
        n = self.web.requests
        out = subprocess.run(["curl", "-s", "-D", "-", "-X", "OPTIONS", "-H", "Host: cors.demo:9080",
                              "-H", "Origin: http://ok.example", "-H", "Access-Control-Request-Method: POST",
                              self.px.url("/c")], capture_output=True, text=True, timeout=30).stdout.lower()
        self.assertTrue(out.startswith("http/1.1 200"), out)
        self.assertIn("access-control-allow-origin: http://ok.example", out)
        self.assertIn("access-control-allow-methods: get,post", out)
        self.assertIn("access-control-max-age: 600", out)
        self.assertEqual(self.web.requests, n)  # the preflight was answered by the proxy
        out = subprocess.run(["curl", "-s", "-D", "-", "-H", "Host: cors.demo:9080", "-H", "Origin: http://ok.example",
                              self.px.url("/c")], capture_output=True, text=True, timeout=30).stdout.lower()
        self.assertIn("access-control-allow-origin: http://ok.example", out)
        self.assertIn("access-control-allow-credentials: true", out)
        self.assertIn("access-control-expose-headers: x-exposed", out)
        out = subprocess.run(["curl", "-s", "-D", "-", "-H", "Host: cors.demo:9080", "-H", "Origin: http://evil.example",
                              self.px.url("/c")], capture_output=True, text=True, timeout=30).stdout.lower()
        self.assertTrue(out.startswith("http/1.1 200"), out)
        self.assertNotIn("access-control-allow-origin", out)

    def test_expect_100_continue(self):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=10)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: web.demo:9080\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        first = s.recv(4096)
        self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first)
        s.sendall(b"hello")
        out = first
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        self.assertIn(b"HTTP/1.1 200", out)
        self.assertTrue(out.endswith(b"hello"), out)

    def test_websocket_upgrade_tunnel(self):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=10)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: web.demo:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"upgrade: websocket", head.lower())
        rest = head.split(b"\r\n\r\n", 1)[1]
        s.sendall(b"ping-through-tunnel")
        while len(rest) < 19:
            rest += s.recv(4096)
        self.assertEqual(rest, b"PING-THROUGH-TUNNEL")
        s.close()

    def raw(self, data):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=10)
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def test_connect_is_404_nr_not_a_tunnel(self):
        # no route enables a CONNECT upgrade (meshd never does): Envoy's 404 NR,
        # and the connection closes instead of carrying raw bytes anywhere
        before = self.web.requests
        for target in (b"127.0.0.1:%d" % self.web.port, b"web.demo:9080"):
            out = self.raw(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n"
                           b"GET /smuggled HTTP/1.1\r\nHost: web.demo:9080\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 404"), out)
            self.assertNotIn(b"/smuggled", out)
            self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)
        wait_for(lambda: '"CONNECT - HTTP/1.1" 404 NR' in self.px.access_log() or
                 re.search(r'"CONNECT \S+ HTTP/1.1" 404 NR', self.px.access_log()), what="CONNECT NR log line")
        self.assertEqual(self.web.requests, before)

    def test_unrequested_101_is_upstream_protocol_error(self):
        # the backend answers /ws with 101 whatever was asked: without an
        # Upgrade in the request that is a protocol error, never a tunnel
        out = self.raw(b"GET /ws HTTP/1.1\r\nHost: web.demo:9080\r\nConnection: close\r\n\r\nping")
        self.assertTrue(out.startswith(b"HTTP/1.1 502"), out)
        self.assertIn(b"protocol error", out)
        self.assertNotIn(b"PING", out)
        wait_for(lambda: '"GET /ws HTTP/1.1" 502 UPE' in self.px.access_log(), what="UPE log line")

    def test_h2c_upgrade_stripped(self):
        out = self.raw(b"GET /h2c/echo HTTP/1.1\r\nHost: web.demo:9080\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
                       b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        hdrs = self.web.last_headers
        self.assertNotIn("upgrade", hdrs)
        self.assertNotIn("http2-settings", hdrs)
        self.assertNotIn("upgrade", hdrs.get("connection", "").lower())
        # an h2c offer is not an upgrade: a 101 to it is refused, not tunnelled
        out = self.raw(b"GET /ws HTTP/1.1\r\nHost: web.demo:9080\r\nConnection: Upgrade, close\r\n"
                       b"Upgrade: h2c\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 502"), out)

    def test_inbound_to_application_port(self):
        code, body, _ = self.px.curl("-H", "Host: anything:%d" % self.web.port,
                                     "http://127.0.0.1:%d/inb" % self.px.in_port)
        self.assertEqual((code, body), (200, "web /inb"))

    def test_passthrough_allow_any(self):
        # no listener for the backend's port: virtualOutbound's PassthroughCluster forwards to the authority
        code, body, _ = self.px.curl("-H", "Host: 127.0.0.1:%d" % self.web.port, self.px.url("/pt"))
        self.assertEqual((code, body), (200, "web /pt"))
        env = dict(os.environ, http_proxy="http://127.0.0.1:%d" % self.px.out_port)
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
        code, body, _ = self.px.curl("http://localhost:%d/pt2" % self.web.port, env=env)
        self.assertEqual((code, body), (200, "web /pt2"))
        # a name: resolved off the loop (getaddrinfo_a), then forwarded
        name = socket.gethostname()
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, self.web.port, type=socket.SOCK_STREAM)}
        except OSError:
            self.skipTest("this machine cannot resolve its own name")
        code, body, _ = self.px.curl("-H", "Host: %s:%d" % (name, self.web.port), self.px.url("/pt3"))
        if addrs <= {"127.0.0.1", "::1"}:
            self.assertEqual((code, body), (200, "web /pt3"))
        else:
            self.assertIn(code, (200, 503))  # resolved to an address the backend may not listen on
        code, body, _ = self.px.curl("-H", "Host: no-such-name.invalid:%d" % self.web.port, self.px.url("/pt4"))
        self.assertEqual(code, 503)
        self.assertIn("dns resolution", body)


class MeshproxyLbTest(unittest.TestCase):
    """Load balancing and outlier detection through pxlb's upstream modules."""

    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = Backend("a"), Backend("b")
        cls.px = Proxy(
            "outbound registry_only\nlistener 9080\n"
            "vhost 9080 rr rr.demo:9080\nroute 9080 rr / cluster=rr\n"
            "vhost 9080 rh rh.demo:9080\nroute 9080 rh / cluster=rh hash_header=x-user\n"
            "vhost 9080 od od.demo:9080\nroute 9080 od / cluster=od\n"
            "cluster rr eds 127.0.0.1:{a} 127.0.0.1:{b}\n"
            "cluster rh eds 127.0.0.1:{a} 127.0.0.1:{b} lb=ring_hash\n"
            "cluster od eds 127.0.0.1:{a} 127.0.0.1:{b} outlier=3:5000\n".format(a=cls.a.port, b=cls.b.port))

    @classmethod
    def tearDownClass(cls):
        cls.px.stop()
        cls.a.stop()
        cls.b.stop()

    def names(self, host, n, *extra):
        out = []
        for i in range(n):
            code, body, _ = self.px.curl("-H", "Host: %s" % host, *extra, self.px.url("/n%d" % i))
            out.append(body.split(" ")[0] if code == 200 else str(code))
        return out

    def test_round_robin_spreads(self):
        got = self.names("rr.demo:9080", 10)
        self.assertEqual(set(got), {"a", "b"}, got)

    def test_ring_hash_sticky(self):
        for user in ("alice", "bob", "carol"):
            got = self.names("rh.demo:9080", 8, "-H", "x-user: " + user)
            self.assertEqual(len(set(got)), 1, (user, got))  # one user, one backend

    def test_outlier_ejection_moves_traffic(self):
        self.b.fail_next = 1000  # b answers 503 from now on
        try:
            # round robin: b sees its three consecutive 5xx within a few requests and is ejected
            def ejected():
                self.px.curl("-H", "Host: od.demo:9080", self.px.url("/drive"))
                return "::health_flags::/failed_outlier_check" in self.px.admin("/clusters")

            wait_for(ejected, what="b ejected", timeout=30)
            clusters = self.px.admin("/clusters")
            self.assertIn("od::127.0.0.1:%d::health_flags::/failed_outlier_check" % self.b.port, clusters)
            self.assertIn("od::127.0.0.1:%d::health_flags::healthy" % self.a.port, clusters)
            got = self.names("od.demo:9080", 10)
            self.assertEqual(got, ["a"] * 10)
            self.assertRegex(self.px.admin("/stats/prometheus"),
                             r'envoy_cluster_outlier_detection_ejections_active\{cluster_name="od"\} 1')
        finally:
            self.b.fail_next = 0
        # b is well again: after its ejection time (5 s here) it is back in the rotation
        def back():
            return "od::127.0.0.1:%d::health_flags::healthy" % self.b.port in self.px.admin("/clusters")

        wait_for(back, what="b unejected", timeout=30)
        got = self.names("od.demo:9080", 10)
        self.assertIn("b", got)


class MeshproxyLifecycleTest(unittest.TestCase):
    def test_swap_and_drain(self):
        be = Backend("one")
        px = Proxy("outbound\nlistener 9080\nvhost 9080 v svc:9080\nroute 9080 v / direct=200:old\n"
                   "cluster c static 127.0.0.1:%d\n" % be.port)
        try:
            self.assertEqual(px.curl("-H", "Host: svc:9080", px.url("/"))[:2], (200, "old"))
            # a rejected spec keeps the old config; a good one swaps between requests
            px.write_spec("outbound\nlistener 9080\nvhost 9080 v svc:9080\nroute 9080 v / cluster=c\n"
                          "cluster c static 127.0.0.1:%d\n" % be.port)
            px.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: px.curl("-H", "Host: svc:9080", px.url("/new"))[1] == "one /new", what="swap")
            # drain: an in-flight request finishes, then the process exits 0
            result = {}

            def slow():
                result["r"] = px.curl("-H", "Host: svc:9080", px.url("/delay/500"))

            t = threading.Thread(target=slow)
            t.start()
            wait_for(lambda: be.requests >= 2, what="slow request at the backend")
            px.proc.send_signal(signal.SIGTERM)
            self.assertEqual(px.proc.wait(timeout=20), 0)
            t.join(timeout=20)
            self.assertEqual(result["r"][:2], (200, "late"))
        finally:
            px.stop()
            be.stop()


if __name__ == "__main__":
    unittest.main()
