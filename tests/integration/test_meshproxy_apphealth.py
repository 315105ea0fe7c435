"""meshproxy answers the probes the injector rewrote (issue 15): on its status
port, /app-health/CONTAINER/livez|readyz|startupz runs the original probe
from ISTIO_KUBE_APP_PROBERS against the app on loopback and answers with its
outcome, without blocking the loop: a probe waiting on its app does not
delay /healthz/ready or another probe.  Also `meshproxy wait`, the
postStart hook of holdApplicationUntilProxyStarts.

Real peers: a Python HTTP app whose /ready status the test switches, a TCP
listener, a socket the test answers by hand; curl as the kubelet.
"""
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
from concurrent import futures

import grpc

from meshtest import free_port, wait_for

sys.path.insert(0, os.path.dirname(__file__))
from test_meshproxy_admin import MESHPROXY, Proxy  # noqa: E402


class App:
    """An HTTP app (HTTPS with tls_dir's cert.pem/key.pem): /ready answers
    self.status, every request counted."""

    def __init__(self, tls_dir=None):
        app = self
        self.status = 200
        self.paths = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                app.paths.append((self.path, self.headers.get("X-Probe")))
                self.send_response(app.status if self.path == "/ready" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), H)
        if tls_dir:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class HealthServer:
    """grpc.health.v1.Health/Check on python3-grpcio (raw bytes: no generated
    code): SERVING for "", NOT_SERVING for "down", NOT_FOUND otherwise."""

    def __init__(self):
        self.port = free_port()
        self.seen = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))

        def check(request, context):
            service = request[2:].decode() if request[:1] == b"\x0a" else ""
            self.seen.append(service)
            if service == "":
                return b"\x08\x01"
            if service == "down":
                return b"\x08\x02"
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("127.0.0.1:%d" % self.port)
        self.server.start()

    def stop(self):
        self.server.stop(None)


class AppHealthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = App()
        cls.health = HealthServer()
        # an HTTPS app with a self-signed certificate made now (the probe does not verify it)
        cls.tls_dir = tempfile.mkdtemp(prefix="apphealth-tls-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=app", "-days", "1", "-keyout", os.path.join(cls.tls_dir, "key.pem"),
                        "-out", os.path.join(cls.tls_dir, "cert.pem")], check=True, capture_output=True, timeout=30)
        cls.tls_app = App(cls.tls_dir)
        cls.tcp = socket.socket()
        cls.tcp.bind(("127.0.0.1", free_port()))
        cls.tcp.listen(16)
        # an app the test answers by hand: the probe waits until it does
        cls.mute = socket.socket()
        cls.mute.bind(("127.0.0.1", free_port()))
        cls.mute.listen(16)
        closed = free_port()  # nothing listens there
        probers = {
            "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": cls.app.port,
                                                   "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
                                       "timeoutSeconds": 2},
            "/app-health/web/livez": {"tcpSocket": {"port": cls.tcp.getsockname()[1]}, "timeoutSeconds": 1},
            "/app-health/web/startupz": {"tcpSocket": {"port": closed}, "timeoutSeconds": 1},
            "/app-health/secure/readyz": {"httpGet": {"path": "/ready", "port": cls.tls_app.port, "scheme": "HTTPS"}},
            "/app-health/g/livez": {"grpc": {"port": cls.health.port}, "timeoutSeconds": 5},
            "/app-health/g/readyz": {"grpc": {"port": cls.health.port, "service": "down"}, "timeoutSeconds": 5},
            "/app-health/g/startupz": {"grpc": {"port": cls.health.port, "service": "nope"}, "timeoutSeconds": 5},
            "/app-health/slow/readyz": {"httpGet": {"path": "/", "port": cls.mute.getsockname()[1]},
                                        "timeoutSeconds": 20},
        }
        os.environ["ISTIO_KUBE_APP_PROBERS"] = json.dumps(probers)
        try:
            cls.proxy = Proxy()
        finally:
            del os.environ["ISTIO_KUBE_APP_PROBERS"]

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.app.stop()
        cls.tls_app.stop()
        subprocess.run(["rm", "-rf", cls.tls_dir])
        cls.health.stop()
        cls.tcp.close()
        cls.mute.close()
        if rc != 0:
            raise AssertionError("meshproxy exited %s" % rc)

    def probe(self, path):
        return self.proxy.curl(self.proxy.url(path, self.proxy.status_port))[0]

    def test_http_probe_passes_the_app_status(self):
        self.app.status = 200
        self.assertEqual(self.probe("/app-health/web/readyz"), 200)
        self.assertIn(("/ready", "yes"), self.app.paths)
        self.app.status = 503
        try:
            self.assertEqual(self.probe("/app-health/web/readyz"), 503)
        finally:
            self.app.status = 200
        self.assertEqual(self.probe("/app-health/web/readyz"), 200)

    def test_tcp_probes(self):
        self.assertEqual(self.probe("/app-health/web/livez"), 200)
        self.assertEqual(self.probe("/app-health/web/startupz"), 500)  # connection refused
        self.assertEqual(self.probe("/app-health/nope/livez"), 404)

    def test_https_probe(self):
        self.tls_app.status = 200
        self.assertEqual(self.probe("/app-health/secure/readyz"), 200)
        self.tls_app.status = 500
        try:
            self.assertEqual(self.probe("/app-health/secure/readyz"), 500)
        finally:
            self.tls_app.status = 200
        self.assertIn("/ready", [p for p, _ in self.tls_app.paths])

    def test_grpc_health_probes(self):
        self.assertEqual(self.probe("/app-health/g/livez"), 200)      # SERVING
        self.assertEqual(self.probe("/app-health/g/readyz"), 500)     # NOT_SERVING
        self.assertEqual(self.probe("/app-health/g/startupz"), 500)   # NOT_FOUND
        self.assertEqual(sorted(set(self.health.seen)), ["", "down", "nope"])

    def test_pending_probe_blocks_nothing(self):
        """While one probe waits on its app (which the test answers only at
        the end), other probes and /healthz/ready are answered."""
        done = []
        t = threading.Thread(target=lambda: done.append(self.probe("/app-health/slow/readyz")))
        t.start()
        self.mute.settimeout(20)
        conn, _ = self.mute.accept()  # the probe reached the app and waits
        try:
            self.assertEqual(self.probe("/app-health/web/livez"), 200)
            self.assertEqual(self.probe("/app-health/web/readyz"), 200)
            self.assertIn(self.proxy.curl(self.proxy.url("/healthz/ready", self.proxy.status_port))[0], (200, 503))
            self.assertEqual(done, [])
            req = conn.recv(4096)
            self.assertTrue(req.startswith(b"GET / HTTP/1.1\r\n"), req)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        finally:
            conn.close()
        t.join(30)
        self.assertEqual(done, [204])


class WaitTest(unittest.TestCase):
    def test_wait_until_ready(self):
        port = free_port()
        url = "http://127.0.0.1:%d/healthz/ready" % port
        # nothing listens: not ready in time
        p = subprocess.run([MESHPROXY, "wait", "--url", url, "--timeout-seconds", "1", "--period-millis", "100"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/healthz/ready" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            p = subprocess.run([MESHPROXY, "wait", "--url", url, "--timeout-seconds", "20"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == "__main__":
    unittest.main()
