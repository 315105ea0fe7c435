"""Helpers for the end-to-end HTTP mesh tests (test_mesh_*.py): the real
meshd serving the sidecar flavour, real meshproxy sidecars fed over ADS,
real HTTP backends on 127.0.0.x loopback addresses, and clients (Python
http.client, curl) sending their requests through a sidecar's outbound port
the way `http_proxy=http://127.0.0.1:PORT` does.

MESHPROXY_WRAPPER (like meshtest's MESHD_WRAPPER) runs meshproxy under
valgrind or another wrapper; a sidecar must exit 0 on SIGTERM, which under
`valgrind --error-exitcode=99` also means no memory error.

Every wait is bounded; nothing here asserts on timing.
"""
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from meshtest import BUILD, Meshd, free_port, wait_for

MESHPROXY = os.path.join(BUILD, "bin", "meshproxy")
NS = "demo"
PORT = 8080  # the service port every test service uses (route config "8080")


def fqdn(name):
    return "%s.%s.svc.cluster.local" % (name, NS)


def slow():
    """True when the binaries run under a wrapper (valgrind): waits get longer."""
    return bool(os.environ.get("MESHPROXY_WRAPPER") or os.environ.get("MESHD_WRAPPER"))


# ---------------------------------------------------------------- backends

class Backend:
    """An HTTP/1.1 server on IP:random port that says who it is.

    Every answer carries `x-backend: NAME` and a JSON body {backend, method,
    path, headers}.  Paths: /status/N answers N; /delay/MS sleeps MS first;
    /hold waits until release() (circuit breaking); anything else 200.
    fail_every=n makes every n-th request (1-based) answer 503; fail_all
    makes every request answer 503 (outlier detection).  It counts requests
    and keeps the last ones (method, path, lower-cased headers).
    """

    def __init__(self, name, ip="127.0.0.1", version="v1", fail_every=0, port=0):
        self.name = name
        self.ip = ip
        self.version = version
        self.fail_every = fail_every
        self.fail_all = False
        self.lock = threading.Lock()
        self.requests = []
        self.gate = threading.Event()
        self.holding = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    outer.requests.append((self.command, self.path, hdrs, body))
                    count = len(outer.requests)
                    fail = outer.fail_all or (outer.fail_every and count % outer.fail_every == 0)
                code = 200
                p = self.path
                if fail:
                    code = 503
                elif p.startswith("/status/"):
                    code = int(p.split("/")[2].split("?")[0])
                elif p.startswith("/delay/"):
                    time.sleep(int(p.split("/")[2].split("?")[0]) / 1000.0)
                elif p.startswith("/hold"):
                    with outer.lock:
                        outer.holding += 1
                    outer.gate.wait(30)
                    with outer.lock:
                        outer.holding -= 1
                out = json.dumps({"backend": outer.name, "method": self.command, "path": p,
                                  "headers": hdrs, "body": body.decode("latin-1")}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-backend", outer.name)
                self.send_header("x-drop-me", "1")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_one

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a peer reset (the proxy cancelling a request) is not news here

        self.server = Server((ip, port), H)  # port 0: any
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def reset(self):
        with self.lock:
            self.requests = []

    def release(self):
        self.gate.set()

    def stop(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- config

def service_yaml(name, backends, port=PORT, protocol="HTTP"):
    """A MESH_INTERNAL STATIC ServiceEntry NAME.demo.svc.cluster.local:PORT
    selecting WorkloadEntries (one per backend, labels app=NAME, version)."""
    docs = ["""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: %(proto)s}
  workloadSelector:
    labels: {app: %(name)s}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port, "proto": protocol}]
    for b in backends:
        docs.append("""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-%(b)s, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(bport)d}
  labels: {app: %(name)s, version: %(version)s}
""" % {"name": name, "b": b.name, "ns": NS, "ip": b.ip, "bport": b.port, "version": b.version})
    return "---\n".join(docs)


# ---------------------------------------------------------------- clients

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def backend(self):
        return self.headers.get("x-backend")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Resp(%d, %r, %r)" % (self.status, self.headers, self.body[:200])


class Sidecar:
    """meshproxy as the sidecar of workload LABELS, fed by meshd over ADS,
    with its outbound, inbound and admin ports on 127.0.0.1 and an access log."""

    def __init__(self, meshd, pod="client", labels="app=client", ip="127.0.0.1", args=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="meshproxy-e2e-")
        self.node_id = "sidecar~%s~%s.%s~%s.svc.cluster.local" % (ip, pod, NS, NS)
        self.out_port, self.in_port, self.admin_port = free_port(), free_port(), free_port()
        self.alog = os.path.join(self.dir, "access.log")
        self.log_path = os.path.join(self.dir, "meshproxy.log")
        self.log = open(self.log_path, "w")
        wrapper = os.environ.get("MESHPROXY_WRAPPER", "").split()
        self.proc = subprocess.Popen(
            wrapper + [MESHPROXY, "--xds-addr", "127.0.0.1:%d" % meshd.xds_port, "--node-id", self.node_id,
                       "--labels", labels, "--admin-addr", "127.0.0.1:%d" % self.admin_port,
                       "--outbound-addr", "127.0.0.1:%d" % self.out_port,
                       "--inbound-addr", "127.0.0.1:%d" % self.in_port,
                       "--status-addr", "", "--health-addr", "",
                       "--access-log", self.alog, "--log-level", "debug",
                       # teardown: SIGTERM ends once nothing is left, not after the 5 s drain period
                       "--exit-on-zero-active-connections"] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("meshproxy exited %s:\n%s" % (self.proc.returncode, self.logs()))
            try:
                return self.admin("/ready")[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout=120 if slow() else 30, what="meshproxy /ready")
        return self

    def logs(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-20000:]
        except OSError:
            return ""

    def access_log(self):
        try:
            with open(self.alog, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def admin(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def clusters(self):
        return self.admin("/clusters")[1]

    def stats(self):
        body = self.admin("/stats")[1]
        return {k: v.strip() for k, _, v in (line.partition(":") for line in body.splitlines())}

    def dump_has(self, text):
        return text in self.admin("/config_dump")[1]

    def request(self, url, method="GET", headers=None, body=None, timeout=20, port=None):
        """One request through the outbound port, absolute-form (as http_proxy sends)."""
        c = http.client.HTTPConnection("127.0.0.1", port or self.out_port, timeout=timeout)
        try:
            c.request(method, url, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            c.close()

    def get(self, name, path="/", headers=None, **kw):
        return self.request("http://%s:%d%s" % (fqdn(name), PORT, path), headers=headers, **kw)

    def curl(self, url, *args):
        """curl through the sidecar as http_proxy: (status, headers dict, body)."""
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-D", "-", "-x",
                              "http://127.0.0.1:%d" % self.out_port, url] + list(args),
                             capture_output=True, timeout=30)
        head, _, body = out.stdout.decode("latin-1").partition("\r\n\r\n")
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/"):
            raise AssertionError("curl: %r %r" % (out.stdout, out.stderr))
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), headers, body

    def stop(self):
        """SIGTERM; returns the exit code (0 expected)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tally(resps):
    """{backend or status: count} over a list of Resp."""
    out = {}
    for r in resps:
        k = r.backend if r.status == 200 and r.backend else r.status
        out[k] = out.get(k, 0) + 1
    return out


class MeshCase(unittest.TestCase):
    """One meshd, its backends and sidecars for a test class.

    Subclasses define backends() -> {name: Backend} and config(b) -> {file: yaml},
    and may set SIDECARS = {key: (pod, labels[, env])}.
    """

    SIDECARS = {"client": ("client", "app=client")}

    @classmethod
    def setUpClass(cls):
        cls.b = cls.backends()
        cls.meshd = Meshd(cls.config(cls.b), extra_args=cls.meshd_args())
        cls.sidecars = {}
        try:
            cls.meshd.start()
            for key, spec in cls.SIDECARS.items():
                # (pod, labels) or (pod, labels, environment)
                cls.sidecars[key] = Sidecar(cls.meshd, spec[0], spec[1], env=spec[2] if len(spec) > 2 else None)
            for s in cls.sidecars.values():
                s.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars.get("client")

    @classmethod
    def meshd_args(cls):
        """Extra meshd flags of the class (e.g. --mesh-config)."""
        return ()

    @classmethod
    def tearDownClass(cls):
        rcs = {}
        for key, s in cls.sidecars.items():
            rcs[key] = (s.stop(), s.logs())
        cls.meshd.finish(*cls.b.values())
        for s in cls.sidecars.values():
            s.cleanup()
        bad = {k: v for k, v in rcs.items() if v[0] != 0}
        if bad:
            raise AssertionError("meshproxy exited non-zero: %s" %
                                 "\n".join("%s: %s\n%s" % (k, v[0], v[1]) for k, v in bad.items()))

    def wait_applied(self, pred, what, sidecar=None):
        """Wait (bounded) until pred(sidecar) holds after a config edit."""
        s = sidecar or self.px
        return wait_for(lambda: pred(s), timeout=120 if slow() else 30, what=what)

    def many(self, n, name, path="/", headers=None, sidecar=None):
        s = sidecar or self.px
        return [s.get(name, path, headers) for _ in range(n)]
