"""Attacks on meshproxy's AuthorizationPolicy enforcement (issue 12), each
one a way a request once got past a DENY rule; the fix for each is named in
the commit that added its test.

One meshd (file source), one meshproxy sidecar for namespace foo,
app=httpbin, whose `Sidecar` ingress listener (captureMode NONE) binds a
free port and forwards to a real HTTP backend on 127.0.0.1 (the setup of
test_mesh_authz.py).  One DENY policy holds every rule the attacks aim at:
  - paths "/admin", "/admin/*" and the suffix "*/secret";
  - hosts "evil.example";
  - remoteIpBlocks 10.9.9.9 (the sidecar's HCM: use_remote_address false,
    no trusted hops, so the remote address is XFF's rightmost entry, as
    Envoy takes it from the merged header).
Requests are written byte for byte on a socket (no client library fixes
them up).  The invariant checked besides the named attacks: whatever the
sidecar forwards, the path the backend receives, sent again as it is, gets
the same answer (RBAC judged the path that went upstream).

About 20 s (15 of them waiting for a stalled TLS handshake to be closed):
a few meshd and sidecars, a few dozen requests; every wait is bounded and
nothing asserts on timing.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import meshhttp
from meshhttp import Backend, Sidecar, slow
from meshtest import Meshd, free_port, netns_usable, run_in_netns, wait_for
from test_mesh_authz import service_yaml, sidecar_yaml

NS = "foo"
POLICY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-attacks, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*", "*/secret"]}}]
  - to: [{operation: {hosts: ["evil.example"]}}]
  - from: [{source: {remoteIpBlocks: ["10.9.9.9"]}}]
"""
# the head limit is 60 KiB: these stay well inside it, and far over the
# few hundred bytes a request line usually has
LONG = 3000


def raw_target_backend():
    """meshhttp's Backend, keeping the request-target as it came (Python's
    server turns a leading "//" into "/", which would hide what went upstream)."""
    app = Backend("app", "127.0.0.1")
    base = app.server.RequestHandlerClass

    class Raw(base):
        def parse_request(self):
            ok = base.parse_request(self)
            if ok:
                self.path = self.requestline.split(" ")[1]
            return ok
    app.server.RequestHandlerClass = Raw
    return app


class MeshSecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = raw_target_backend()
        cls.port = free_port()
        tcp_port = free_port()
        cls.meshd = Meshd({"service.yaml": service_yaml([cls.port], tcp_port, cls.app.port),
                           "sidecar.yaml": sidecar_yaml([cls.port], tcp_port, cls.app.port),
                           "policy.yaml": POLICY})
        cls.sc = None
        try:
            cls.meshd.start()
            saved, meshhttp.NS = meshhttp.NS, NS
            try:
                cls.sc = Sidecar(cls.meshd, "httpbin-1", "app=httpbin,version=v1")
            finally:
                meshhttp.NS = saved
            cls.sc.wait_ready()
            wait_for(lambda: cls.status(b"GET /admin HTTP/1.1\r\nHost: h\r\n\r\n") == 403,
                     timeout=60 if slow() else 30, what="the DENY policy applied")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        cls.meshd.finish(cls.app)
        if cls.sc:
            cls.sc.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    @classmethod
    def status(cls, data):
        """Writes one raw request; the answer's status code (0: closed unanswered)."""
        with socket.create_connection(("127.0.0.1", cls.port), timeout=10) as s:
            s.sendall(data)
            got = b""
            while b"\r\n" not in got:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        parts = got.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0

    def get(self, path, headers=()):
        """GET path with Host h and the extra header lines: (status, path the backend got or None)."""
        self.app.reset()
        head = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n"
        for line in headers:
            head += line.encode() + b"\r\n"
        st = self.status(head + b"\r\n")
        last = self.app.last()
        return st, (last[1] if last else None)

    # ------------------------------------------------------------ paths

    def test_long_path_keeps_its_suffix(self):
        # RBAC once judged only the path's first ~2 KB (the stream's fixed
        # metadata buffer) while the whole path went upstream
        st, seen = self.get("/" + "a" * LONG + "/secret")
        self.assertEqual((st, seen), (403, None))

    def test_long_path_dot_segments(self):
        # the dots past the cut were never normalized, yet went upstream
        st, seen = self.get("/public/" + "a" * LONG + "/../../admin/x")
        self.assertEqual((st, seen), (403, None))

    def test_forwarded_path_is_the_judged_path(self):
        tricks = ["//admin", "/%2e%2e/admin", "/admin%2Fx", "/x%2f..%2fadmin", "/x/..%2fadmin", "/x/..%5cadmin",
                  "/ADMIN", "/admin;x", "/admin;/x", "/%c0%ae%c0%ae/admin", "/admin%20", "/admin%23x",
                  "/admin%3fx", "/%2561dmin", "/admin/..", "/x/.%2e/admin", "/x\\..\\admin", "/admin\\x",
                  "/%61dmin", "/adm%69n?x=/admin", "/p?q=" + "b" * LONG]
        for p in tricks:
            st, seen = self.get(p)
            self.assertIn(st, (200, 400, 403), p)
            if st != 200:
                continue
            # what went upstream, sent as it is, is judged the same
            st2, seen2 = self.get(seen)
            self.assertEqual((st2, seen2), (200, seen), "%r went upstream as %r" % (p, seen))
        # spot checks of Envoy's BASE normalization
        self.assertEqual(self.get("/x/../admin"), (403, None))
        self.assertEqual(self.get("/%2e%2e/admin"), (403, None))
        self.assertEqual(self.get("/admin%00"), (400, None))
        self.assertEqual(self.get("/admin#frag"), (400, None))

    # ------------------------------------------------------------ hosts

    def test_long_path_keeps_the_host(self):
        # the authority was cut off behind a long path
        self.assertEqual(self.status(b"GET /" + b"a" * LONG + b" HTTP/1.1\r\nHost: evil.example\r\n\r\n"), 403)
        self.assertEqual(self.status(b"GET / HTTP/1.1\r\nHost: evil.example\r\nHost: h\r\n\r\n"), 400)

    # ------------------------------------------------------------ X-Forwarded-For

    def test_xff_after_a_long_user_agent(self):
        # XFF was cut short behind a long User-Agent: "1.2.3.4, 10.9.9.9"
        # kept only its first entry (the UA filled the 2 KB but ~10 bytes)
        st, _ = self.get("/", ["User-Agent: " + "u" * 2025, "X-Forwarded-For: 1.2.3.4, 10.9.9.9"])
        self.assertEqual(st, 403)

    def test_repeated_xff_is_one_list(self):
        # Envoy joins repeated X-Forwarded-For lines (an inline header) with
        # ","; only the first line was read
        self.assertEqual(self.get("/", ["X-Forwarded-For: 1.2.3.4", "X-Forwarded-For: 10.9.9.9"])[0], 403)
        self.assertEqual(self.get("/", ["X-Forwarded-For: 10.9.9.9", "X-Forwarded-For: 1.2.3.4"])[0], 200)
        self.assertEqual(self.get("/", ["X-Forwarded-For: 1.2.3.4, 10.9.9.9"])[0], 403)

    # ------------------------------------------------------------ x-forwarded-client-cert

    def test_xfcc_from_a_plaintext_client_is_dropped(self):
        # the application learns its mTLS peer from XFCC: a plaintext client
        # must not be able to name one (Envoy removes the header unless the
        # connection presented a certificate)
        spoof = "By=spiffe://cluster.local/ns/foo/sa/httpbin;URI=spiffe://cluster.local/ns/prod/sa/admin"
        self.app.reset()
        st = self.status(b"GET /xfcc HTTP/1.1\r\nHost: h\r\nX-Forwarded-Client-Cert: %s\r\n\r\n" % spoof.encode())
        self.assertEqual(st, 200)
        self.assertNotIn("x-forwarded-client-cert", self.app.last()[2])



# ---------------------------------------------------------------- captured traffic
#
# With iptables capture every inbound port reaches virtualInbound, also the
# ports no Service declares: Istio's passthrough chains keep the workload's
# AuthorizationPolicy (network RBAC) and PeerAuthentication (STRICT: TLS
# only) there too.  Capture needs a network namespace of its own and
# iptables (root): the test re-runs this file's CaptureInNetns inside
# `unshare -n`, and is skipped where that cannot be done.

WL_IP = "127.0.0.5"       # the workload's address (captured: redirected to the sidecar)
CLIENT_OK = "127.0.0.8"   # a client the policy lets through
CLIENT_DENIED = "127.0.0.9"  # a client the policy denies (source ipBlocks)
CAPTURE_DENY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["%s"]}}]
""" % CLIENT_DENIED
CAPTURE_STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: demo}
spec:
  mtls: {mode: STRICT}
"""


def capture_service(declared):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: demo}
spec:
  hosts: [web.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %d, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: demo}
spec: {address: %s, labels: {app: web}, serviceAccount: web}
""" % (declared, WL_IP)


class MeshCaptureSecurityTest(unittest.TestCase):
    def test_undeclared_port_in_netns(self):
        ok, why = netns_usable()
        if not ok:
            self.skipTest("no network namespace with iptables here: %s" % why)
        run_in_netns(self, __file__, "test_mesh_security.CaptureInNetns", "MESH_IT_NETNS")


@unittest.skipUnless(os.environ.get("MESH_IT_NETNS") == "1", "run by MeshCaptureSecurityTest in its own namespace")
class CaptureInNetns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
        cls.declared = declared = free_port()
        cls.undeclared = free_port()
        # the application listens on the Service's port (inbound|P|| is
        # 127.0.0.1:P) and on a port no Service declares
        cls.app_declared = Backend("web-declared", "127.0.0.1", port=declared)
        s = socket.socket()
        s.bind((WL_IP, cls.undeclared))
        s.close()
        cls.app = Backend("web", WL_IP, port=cls.undeclared)
        cls.meshd = Meshd({"web.yaml": capture_service(declared), "deny.yaml": CAPTURE_DENY})
        cls.sc = None
        try:
            cls.meshd.start()
            saved, meshhttp.NS = meshhttp.NS, "demo"
            try:
                cls.sc = Sidecar(cls.meshd, "web-1", "app=web", ip=WL_IP)
            finally:
                meshhttp.NS = saved
            cls.sc.wait_ready()
            # istio-init's REDIRECT, for the clients only (the sidecar's own
            # connections come from 127.0.0.1, as its uid is excluded in a pod)
            subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "!", "-s", "127.0.0.1", "-d", WL_IP,
                            "-j", "REDIRECT", "--to-ports", str(cls.sc.in_port)], check=True, timeout=30)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        cls.meshd.finish(cls.app, cls.app_declared)
        if cls.sc:
            cls.sc.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    def get(self, src, path, port=None, host="web"):
        """A plaintext GET from src to the workload (its undeclared port unless
        told): status, 0 when closed unanswered."""
        try:
            with socket.create_connection((WL_IP, port or self.undeclared), timeout=10,
                                          source_address=(src, 0)) as s:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(),
                                                                                         host.encode()))
                got = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    got += b
        except (ConnectionResetError, socket.timeout):
            got = b""
        parts = got.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0

    def test_1_original_destination(self):
        # a redirected connection is served by its original destination's
        # port, whatever port the Host names (capture was never detected:
        # the kernel leaves SO_ORIGINAL_DST's length as passed)
        self.assertEqual(self.get(CLIENT_OK, "/declared", port=self.declared, host="web:1"), 200)
        self.assertEqual(self.app_declared.last()[1], "/declared")

    def test_2_undeclared_port(self):
        # captured and passed through to the application as it is
        self.assertEqual(self.get(CLIENT_OK, "/probe"), 200)
        self.assertEqual(self.app.last()[1], "/probe")
        # the workload's DENY policy holds on that port too
        before = self.app.count()
        self.assertEqual(self.get(CLIENT_DENIED, "/denied"), 0)
        self.assertEqual(self.app.count(), before)
        # STRICT: plaintext is refused on that port too
        self.meshd.write("strict.yaml", CAPTURE_STRICT)
        wait_for(lambda: self.get(CLIENT_OK, "/strict-probe") == 0, timeout=60 if slow() else 30,
                 what="STRICT on the undeclared port")
        self.app.reset()
        self.assertEqual(self.get(CLIENT_OK, "/strict"), 0)
        self.assertIsNone(self.app.last())


# ---------------------------------------------------------------- straight to the inbound port
#
# A connection sent straight to virtualInbound's port (not redirected) takes
# the application port from each request's authority: each request must be
# judged for its own port.

DIRECT_DENY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-port, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {ports: ["%d"]}}]
"""


def direct_service(ports):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: demo}
spec:
  hosts: [web.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
%s  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: demo}
spec: {address: 127.0.0.1, labels: {app: web}, serviceAccount: web}
""" % "".join("  - {number: %d, name: tcp-%d, protocol: TCP}\n" % (p, p) for p in ports)


class MeshDirectInboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.open_app = Backend("open", "127.0.0.1")
        cls.denied_app = Backend("denied", "127.0.0.1")
        ports = [cls.open_app.port, cls.denied_app.port]
        cls.meshd = Meshd({"web.yaml": direct_service(ports), "deny.yaml": DIRECT_DENY % cls.denied_app.port})
        cls.sc = None
        try:
            cls.meshd.start()
            saved, meshhttp.NS = meshhttp.NS, "demo"
            try:
                cls.sc = Sidecar(cls.meshd, "web-1", "app=web")
            finally:
                meshhttp.NS = saved
            cls.sc.wait_ready()
            wait_for(lambda: cls.exchange([cls.denied_app.port]) == [0], timeout=60 if slow() else 30,
                     what="the DENY on the port applied")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        cls.meshd.finish(cls.open_app, cls.denied_app)
        if cls.sc:
            cls.sc.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    @classmethod
    def exchange(cls, ports):
        """One connection to the inbound port, one request per port named
        (its authority web:PORT): the statuses, 0 for each left unanswered."""
        out = []
        with socket.create_connection(("127.0.0.1", cls.sc.in_port), timeout=10) as s:
            f = s.makefile("rb")
            for p in ports:
                try:
                    s.sendall(b"GET /p%d HTTP/1.1\r\nHost: web:%d\r\n\r\n" % (p, p))
                    line = f.readline()
                except OSError:
                    line = b""
                if not line.startswith(b"HTTP/"):
                    out.append(0)
                    continue
                out.append(int(line.split()[1]))
                n = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        n = int(h.split(b":")[1])
                f.read(n)
        return out

    def test_each_request_judged_for_its_port(self):
        self.assertEqual(self.exchange([self.open_app.port]), [200])
        # the connection's first request, allowed, once let every later one
        # through unjudged (TCP chains are judged once per connection)
        self.denied_app.reset()
        got = self.exchange([self.open_app.port, self.denied_app.port])
        self.assertEqual(got[0], 200)
        self.assertIsNone(self.denied_app.last())
        self.assertNotEqual(got[1], 200)

    def test_http10_without_host(self):
        # no authority at all: an empty copy of a NULL span (UBSan aborted
        # the sidecar here: make test runs this file under the sanitizers)
        with socket.create_connection(("127.0.0.1", self.sc.in_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 "))
        self.assertEqual(self.exchange([self.open_app.port]), [200])


# ---------------------------------------------------------------- a port with a listener of its own
#
# A Sidecar ingress port with captureMode NONE gets a listener of its own
# (with the workload's RBAC); the rest stay behind virtualInbound.  Sent
# straight to virtualInbound's port, a request naming the bound port in its
# authority must not reach that port's application around its listener.

BOUND_DENY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"]}}]
"""


def bound_sidecar(bound, captured, app_port):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: httpbin, namespace: foo}
spec:
  workloadSelector:
    labels: {app: httpbin}
  ingress:
  - port: {number: %d, protocol: HTTP, name: http-bound}
    defaultEndpoint: 127.0.0.1:%d
    captureMode: NONE
  - port: {number: %d, protocol: HTTP, name: http-captured}
    defaultEndpoint: 127.0.0.1:%d
  egress:
  - hosts: ["istio-system/*"]
""" % (bound, app_port, captured, app_port)


class MeshBoundPortTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = Backend("app", "127.0.0.1")
        cls.bound, cls.captured = free_port(), free_port()
        cls.meshd = Meshd({"service.yaml": service_yaml([cls.bound, cls.captured], free_port(), cls.app.port),
                           "sidecar.yaml": bound_sidecar(cls.bound, cls.captured, cls.app.port),
                           "policy.yaml": BOUND_DENY})
        cls.sc = None
        try:
            cls.meshd.start()
            saved, meshhttp.NS = meshhttp.NS, NS
            try:
                cls.sc = Sidecar(cls.meshd, "httpbin-1", "app=httpbin,version=v1")
            finally:
                meshhttp.NS = saved
            cls.sc.wait_ready()
            wait_for(lambda: cls.get(cls.bound, "h") == 403, timeout=60 if slow() else 30,
                     what="the bound listener and its policy")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        cls.meshd.finish(cls.app)
        if cls.sc:
            cls.sc.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    @classmethod
    def get(cls, port, host):
        """GET /admin on 127.0.0.1:port with that Host: the status, 0 when none."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /admin HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
                got = s.recv(100)
        except OSError:
            return 0
        parts = got.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0

    def test_bound_port_not_reached_through_the_inbound_port(self):
        self.app.reset()
        self.assertNotEqual(self.get(self.sc.in_port, "h:%d" % self.bound), 200)
        self.assertIsNone(self.app.last())
        # the port virtualInbound serves is judged there as always
        self.assertEqual(self.get(self.sc.in_port, "h:%d" % self.captured), 403)


# ---------------------------------------------------------------- a stalled TLS handshake

class MeshTlsHandshakeTest(unittest.TestCase):
    """A sidecar with a workload certificate from meshd's CA: a client that
    starts a TLS handshake and stalls in it held the connection for the
    whole idle timeout (1 h); the handshake now has a bound of its own
    (15 s, Envoy's listener_filters_timeout).  The test's wait is a bound,
    not a timing claim."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-sec-tls-")
        cls.app = Backend("web", "127.0.0.1")
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("web-token demo web\n")
        with open(os.path.join(cls.tmp, "web.token"), "w") as f:
            f.write("web-token\n")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd({"web.yaml": direct_service([cls.app.port])},
                          extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.sc = None
        try:
            cls.meshd.start()
            saved, meshhttp.NS = meshhttp.NS, "demo"
            try:
                cls.sc = Sidecar(cls.meshd, "web-1", "app=web", args=[
                    "--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port,
                    "--root-cert", os.path.join(ca_dir, "root-cert.pem"),
                    "--token-file", os.path.join(cls.tmp, "web.token"), "--service-account", "web"])
            finally:
                meshhttp.NS = saved
            cls.sc.wait_ready()
            wait_for(lambda: json.loads(cls.sc.admin("/certs")[1])["generation"] >= 1,
                     timeout=60 if slow() else 20, what="a workload certificate")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        cls.meshd.finish(cls.app)
        if cls.sc:
            cls.sc.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    def test_stalled_handshake_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.sc.in_port), timeout=40) as c:
            c.sendall(b"\x16\x03\x01")  # a record header, then nothing
            try:
                self.assertEqual(c.recv(100), b"")
            except ConnectionResetError:
                pass


if __name__ == "__main__":
    unittest.main()
