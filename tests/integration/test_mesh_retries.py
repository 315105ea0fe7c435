"""Retries, timeouts, faults, HTTP/1.0 and drain end to end, as Istio + Envoy
do them: the real meshd (sidecar flavour), a real meshproxy sidecar and a
small Python backend whose failure mode each test sets.

The backend answers /k/KEY/... from a plan the test gives for KEY: one
action per attempt, in order ("503", "409", "418", "502", "503o" (503 with
x-envoy-overloaded), "reset" (closes the connection with an RST before any
answer), "sleep" (holds the request past a perTryTimeout), "200"); the
last action repeats.  It counts attempts per key and keeps their bodies.

- one retryOn condition per test: 5xx, gateway-error, connect-failure (an
  endpoint whose port refuses), retriable-4xx (409), retriable-status-codes,
  reset; Istio's default policy (no `retries`) retrying a 503, and a
  `retries` block without retryOn keeping it; perTryTimeout -> retry -> 200;
  a POST with a body retried with its body; a 503 with x-envoy-overloaded
  not retried;
- a route timeout does not count the fault delay, and starts only once the
  request body is in;
- HTTP/1.0 answered 426 (Istio leaves accept_http_10 off);
- SIGTERM: an outbound call made after it still succeeds, an inbound
  response during the drain carries connection: close, /healthz/ready
  answers 503, and the proxy exits 0 once its last connection is gone.

Nothing here asserts on timing: where a test sleeps, it only makes an old
bug show (a timer started too early) and never bounds how fast anything is.
"""
import http.client
import http.server
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from meshhttp import MESHPROXY, NS, PORT, Backend, MeshCase, fqdn, service_yaml, slow, wait_for
from meshtest import free_port


class PlanBackend:
    """An HTTP/1.1 backend acting out, per key, the plan the test set."""

    def __init__(self, name, ip):
        self.name = name
        self.ip = ip
        self.version = "v1"
        self.lock = threading.Lock()
        self.plans = {}
        self.seen = {}
        self.release = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(n) if n else b""
                parts = self.path.split("/")
                key = parts[2] if len(parts) > 2 and parts[1] == "k" else ""
                with outer.lock:
                    outer.seen.setdefault(key, []).append(
                        (body, self.headers.get("x-envoy-attempt-count")))
                    plan = outer.plans.get(key, ["200"])
                    act = plan.pop(0) if len(plan) > 1 else plan[0]
                if act == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if act == "sleep":
                    outer.release.wait(30)
                    act = "200"
                code = int(act[:3])
                out = body if body else ("%s %s" % (outer.name, self.path)).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-backend", outer.name)
                if act == "503o":
                    self.send_header("x-envoy-overloaded", "true")
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = handle_one

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass

        self.server = Server((ip, 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def plan(self, key, actions):
        with self.lock:
            self.plans[key] = list(actions)
            self.seen[key] = []

    def attempts(self, key):
        with self.lock:
            return list(self.seen.get(key, []))

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Dead:
    """A WorkloadEntry target whose port refuses connections."""

    def __init__(self, name, ip):
        self.name, self.ip, self.version = name, ip, "v1"
        self.port = free_port()

    def stop(self):
        pass


def route(match, body, host):
    return """  - match: [{uri: {prefix: /k/%s}}]
%s
    route: [{destination: {host: %s}}]
""" % (match, body, host)


class MeshRetriesTest(MeshCase):
    SIDECARS = {"client": ("client", "app=client")}

    @classmethod
    def backends(cls):
        return {
            "plan": PlanBackend("plan", "127.0.0.2"),
            "dead": Dead("dead", "127.0.0.3"),
            "live": PlanBackend("live", "127.0.0.4"),
        }

    @classmethod
    def config(cls, b):
        p, c = fqdn("plan"), fqdn("conn")
        routes = "".join([
            route("r5xx", "    retries: {attempts: 2, retryOn: 5xx}", p),
            route("rgw", "    retries: {attempts: 2, retryOn: gateway-error}", p),
            route("r4xx", "    retries: {attempts: 2, retryOn: retriable-4xx}", p),
            route("rcodes", "    retries: {attempts: 2, retryOn: \"retriable-status-codes,418\"}", p),
            route("rreset", "    retries: {attempts: 2, retryOn: reset}", p),
            route("rnoon", "    retries: {attempts: 3}", p),
            route("rptt", "    retries: {attempts: 2, perTryTimeout: 2s, retryOn: 5xx}", p),
            route("rover", "    retries: {attempts: 3, retryOn: 5xx}", p),
            route("roff", "    retries: {attempts: 0}", p),
            route("tfault", "    timeout: 1s\n    fault: {delay: {percentage: {value: 100}, fixedDelay: 1.5s}}", p),
            route("tbody", "    timeout: 1s", p),
        ])
        vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plan, namespace: %(ns)s}
spec:
  hosts: [%(p)s]
  http:
%(routes)s  - route: [{destination: {host: %(p)s}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: conn, namespace: %(ns)s}
spec:
  hosts: [%(c)s]
  http:
  - match: [{uri: {prefix: /k/off}}]
    retries: {attempts: 0}
    route: [{destination: {host: %(c)s}}]
  - retries: {attempts: 3, retryOn: connect-failure}
    route: [{destination: {host: %(c)s}}]
""" % {"ns": NS, "p": p, "c": c, "routes": routes}
        return {
            "plan.yaml": service_yaml("plan", [b["plan"]]),
            "conn.yaml": service_yaml("conn", [b["dead"], b["live"]]),
            "vs.yaml": vs,
        }

    def check(self, key, plan, want_status, want_attempts, path_tail="", **kw):
        b = self.b["plan"]
        b.plan(key, plan)
        r = self.px.get("plan", "/k/%s%s" % (key, path_tail), **kw)
        self.assertEqual(r.status, want_status, r)
        got = b.attempts(key)
        self.assertEqual(len(got), want_attempts, got)
        return r, got

    # ---- one test per retryOn condition

    def test_5xx(self):
        _, got = self.check("r5xx", ["500", "200"], 200, 2)
        self.assertEqual([a for _, a in got], ["1", "2"])

    def test_gateway_error(self):
        self.check("rgw", ["502", "504", "200"], 200, 3)
        # gateway-error is 502-504 only: a 500 is not retried
        self.check("rgw", ["500", "200"], 500, 1)

    def test_retriable_4xx(self):
        self.check("r4xx", ["409", "200"], 200, 2)
        self.check("r4xx", ["404", "200"], 404, 1)

    def test_retriable_status_codes(self):
        self.check("rcodes", ["418", "200"], 200, 2)
        self.check("rcodes", ["503", "200"], 503, 1)

    def test_reset(self):
        self.check("rreset", ["reset", "200"], 200, 2)

    def test_connect_failure(self):
        # two endpoints, one refusing: with connect-failure every call ends 200
        # (previous_hosts sends the retry to the other one); without retries
        # the refused picks show as 503
        live = self.b["live"]
        live.plan("cf", ["200"])
        rs = [self.px.get("conn", "/k/cf") for _ in range(20)]
        self.assertEqual([r.status for r in rs], [200] * 20, rs)
        rs = [self.px.get("conn", "/k/off") for _ in range(30)]
        self.assertIn(503, [r.status for r in rs])
        self.assertIn(200, [r.status for r in rs])

    # ---- Istio's defaults

    def test_default_policy_retries_503(self):
        # no retries block: Istio's default (2 attempts, retriable_status_codes [503])
        self.check("dflt", ["503", "200"], 200, 2)
        # ... which does not cover a 500
        self.check("dflt", ["500", "200"], 500, 1)
        # a retries block without retryOn keeps the default conditions
        self.check("rnoon", ["503", "503", "200"], 200, 3)
        # attempts: 0 turns retries off
        self.check("roff", ["503", "200"], 503, 1)

    def test_per_try_timeout(self):
        r, got = self.check("rptt", ["sleep", "200"], 200, 2)
        self.assertEqual(r.backend, "plan")

    def test_post_body_retried(self):
        body = b"a body to replay " * 100
        r, got = self.check("r5xx", ["503", "200"], 200, 2, path_tail="/post", method="POST", body=body,
                            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual([x for x, _ in got], [body, body])
        self.assertEqual(r.body, body)

    def test_overloaded_not_retried(self):
        r, _ = self.check("rover", ["503o", "200"], 503, 1)
        self.assertEqual(r.headers.get("x-envoy-overloaded"), "true")
        # the same 503 without the header is retried
        self.check("rover", ["503", "200"], 200, 2)

    # ---- timeouts

    def test_fault_delay_not_in_route_timeout(self):
        # a 1.5s fault delay before a route with a 1s timeout: the router starts
        # after the delay, so the call succeeds
        self.check("tfault", ["200"], 200, 1)

    def test_route_timeout_starts_after_body(self):
        # the head arrives, the body 1.5s later; a 1s route timeout counts from
        # the end of the request, so the answer is the backend's
        b = self.b["plan"]
        b.plan("tbody", ["200"])
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(("POST http://%s:%d/k/tbody HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 5\r\n\r\n"
                       % (fqdn("plan"), PORT, fqdn("plan"), PORT)).encode())
            time.sleep(1.5)
            s.sendall(b"hello")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)

    # ---- HTTP/1.0

    def test_http10_upgrade_required(self):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(("GET http://%s:%d/k/h10 HTTP/1.0\r\nHost: %s:%d\r\n\r\n"
                       % (fqdn("plan"), PORT, fqdn("plan"), PORT)).encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 426"), data)
        self.assertEqual(self.b["plan"].attempts("h10"), [])


class MeshDrainTest(MeshCase):
    """SIGTERM as Istio's agent drains Envoy: inbound only, gracefully."""

    SIDECARS = {}

    @classmethod
    def backends(cls):
        return {"out": Backend("out", "127.0.0.5"), "app": Backend("app", "127.0.0.1")}

    @classmethod
    def config(cls, b):
        return {"out.yaml": service_yaml("out", [b["out"]]), "app.yaml": service_yaml("app", [b["app"]])}

    def start_sidecar(self, *extra, drain="60s"):
        d = tempfile.mkdtemp(prefix="meshproxy-drain-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        self.out_port, self.in_port = free_port(), free_port()
        self.admin_port, self.health_port = free_port(), free_port()
        log = open(os.path.join(d, "meshproxy.log"), "w")
        self.addCleanup(log.close)
        wrapper = os.environ.get("MESHPROXY_WRAPPER", "").split()
        node = "sidecar~127.0.0.1~app.%s~%s.svc.cluster.local" % (NS, NS)
        proc = subprocess.Popen(
            wrapper + [MESHPROXY, "--xds-addr", "127.0.0.1:%d" % self.meshd.xds_port, "--node-id", node,
                       "--labels", "app=app", "--admin-addr", "127.0.0.1:%d" % self.admin_port,
                       "--outbound-addr", "127.0.0.1:%d" % self.out_port,
                       "--inbound-addr", "127.0.0.1:%d" % self.in_port,
                       "--status-addr", "", "--health-addr", "127.0.0.1:%d" % self.health_port,
                       "--drain-duration", drain, "--log-level", "debug"] + list(extra),
            stdout=log, stderr=subprocess.STDOUT)
        self.log_path = os.path.join(d, "meshproxy.log")

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)
        wait_for(lambda: self.health() == 200, timeout=120 if slow() else 30, what="meshproxy ready")
        return proc

    def health(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=10)
            try:
                c.request("GET", "/healthz/ready")
                r = c.getresponse()
                r.read()
                return r.status
            finally:
                c.close()
        except OSError:
            return None

    def outbound(self, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.out_port, timeout=20)
        try:
            c.request("GET", "http://%s:%d/after" % (fqdn("out"), PORT))
            r = c.getresponse()
            r.read()
            return r
        finally:
            if conn is None:
                c.close()

    def test_sigterm_drains_inbound_only(self):
        proc = self.start_sidecar("--exit-on-zero-active-connections")
        # an outbound keep-alive connection the application holds across the drain
        held = http.client.HTTPConnection("127.0.0.1", self.out_port, timeout=20)
        self.assertEqual(self.outbound(held).status, 200)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: self.health() == 503, what="/healthz/ready 503 while draining")
        # outbound: a new call after SIGTERM still succeeds, and keeps its connection
        r = self.outbound()
        self.assertEqual((r.status, r.getheader("x-backend")), (200, "out"))
        r = self.outbound(held)
        self.assertEqual(r.status, 200)
        self.assertNotEqual((r.getheader("connection") or "").lower(), "close")
        # inbound: still accepted, answered with connection: close
        app = self.b["app"]
        c = http.client.HTTPConnection("127.0.0.1", self.in_port, timeout=20)
        try:
            c.request("GET", "/in-drain", headers={"Host": "%s:%d" % (fqdn("app"), app.port)})
            r = c.getresponse()
            r.read()
        finally:
            c.close()
        self.assertEqual((r.status, r.getheader("x-backend")), (200, "app"))
        self.assertEqual((r.getheader("connection") or "").lower(), "close")
        self.assertIsNone(proc.poll(), "meshproxy exited while a connection was open")
        # the last connection gone, the proxy exits (well before the 60s drain
        # period: --exit-on-zero-active-connections, Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS)
        held.close()
        self.assertEqual(proc.wait(timeout=50), 0)
        with open(self.log_path) as f:
            self.assertIn("drain: no connection left", f.read())

    def test_sigterm_waits_the_drain_period_by_default(self):
        # Istio's agent waits terminationDrainDuration in full: nothing in
        # flight and no connection open, the proxy still ends only when the
        # period does (what its log says, not a clock)
        proc = self.start_sidecar(drain="2s")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: self.health() == 503, what="/healthz/ready 503 while draining")
        self.assertEqual(proc.wait(timeout=60), 0)
        with open(self.log_path) as f:
            log = f.read()
        self.assertIn("drain: period ended", log)
        self.assertNotIn("drain: no connection left", log)


if __name__ == "__main__":
    unittest.main()
