"""Egress end to end (issue 13): the real meshd turns ServiceEntries with
`resolution: DNS` / `DNS_ROUND_ROBIN` into STRICT_DNS / LOGICAL_DNS
clusters whose endpoints are host names, and a real meshproxy sidecar
resolves them itself, off its loop; outboundTrafficPolicy REGISTRY_ONLY
answers an unknown host 502 as Istio's block_all does.  Requests go
through the sidecar's outbound port, absolute-form (as http_proxy sends
them) and with curl -x.

- (a) a DNS ServiceEntry api.egress.test whose endpoint is the name
  `localhost` (every Debian /etc/hosts has it): the sidecar resolves it to
  127.0.0.1 and reaches the backend there; /clusters shows the resolved
  address; Envoy's update_attempt / update_success count the resolutions;
- (b) DNS_ROUND_ROBIN (LOGICAL_DNS) to the same name;
- (c) an endpoint name that does not resolve (RFC 6761 .invalid): 503 UH,
  update_failure counted, the failure logged once (not at every refresh);
- (d) REGISTRY_ONLY: an unknown host is 502 (the block_all route), counted
  in Istio's istio_requests_total as destination_service_name
  BlackHoleCluster;
- (f) a TCP ServiceEntry with `resolution: DNS` written while the proxies
  run: a sidecar with captureMode NONE (Sidecar resource) binds its port
  and the bytes of its first connection reach the echo backend `localhost`
  names (a connection arriving before the first resolution waits for it);
- (e) as root only: a second sidecar runs in its own mount namespace with a
  hosts file bind-mounted over /etc/hosts; the name moving.egress.test
  first resolves to 127.0.0.2, then the file says 127.0.0.3 and the sidecar
  follows at its next refresh (Envoy's default 5 s: meshd sends no
  dns_refresh_rate), the old backend no longer called.  Skipped when not
  root or when mount namespaces are not available.

Nothing here asserts on timing; every wait is bounded.
"""
import os
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import unittest

from meshhttp import Backend, MeshCase, Sidecar, slow
from meshtest import free_port, wait_for

MESH = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
HTTP_PORT = 8080
API = "api.egress.test"
RR = "rr.egress.test"
BAD = "bad.egress.test"
MOVING = "moving.egress.test"
MOVING_NAME = "backend.egress.test"  # the endpoint name the hosts file maps


def se_yaml(name, host, resolution, address, port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: demo}
spec:
  hosts: [%(host)s]
  location: MESH_EXTERNAL
  resolution: %(res)s
  ports:
  - {number: %(sport)d, name: http, protocol: HTTP}
  endpoints:
  - address: %(addr)s
    ports: {http: %(port)d}
""" % {"name": name, "host": host, "res": resolution, "sport": HTTP_PORT, "addr": address, "port": port}


TCP_HOST = "tcp.egress.test"


def tcp_se_yaml(port, echo_port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp, namespace: demo}
spec:
  hosts: [%(host)s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: %(port)d, name: tcp, protocol: TCP}
  endpoints:
  - address: localhost
    ports: {tcp: %(echo)d}
""" % {"host": TCP_HOST, "port": port, "echo": echo_port}


def tcp_sidecar_yaml():
    """Binds the TCP service's port on 127.0.0.1 (only that service: no fixed ports)."""
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: tcpc, namespace: demo}
spec:
  workloadSelector:
    labels: {app: tcpc}
  egress:
  - hosts: ["demo/%s"]
    captureMode: NONE
""" % TCP_HOST


class Echo:
    """A TCP echo backend on 127.0.0.1: echoes until the client's FIN, then closes."""

    def __init__(self):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    d = self.request.recv(65536)
                    if not d:
                        break
                    self.request.sendall(d)
                self.request.shutdown(socket.SHUT_WR)

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def hosts_text(ip):
    return "127.0.0.1 localhost\n%s %s\n" % (ip, MOVING_NAME)


def write_in_place(path, text):
    """Rewrite path keeping its inode: the bind mount over /etc/hosts shows it."""
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def mount_ns_works():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def prom(sidecar, metric, cluster):
    body = sidecar.admin("/stats/prometheus")[1]
    m = re.search(r'^%s\{cluster_name="%s"\} (\d+)$' % (re.escape(metric), re.escape(cluster)), body, re.M)
    return int(m.group(1)) if m else None


class MeshEgressTest(MeshCase):
    SIDECARS = {"client": ("client", "app=client"), "tcpc": ("tcpc", "app=tcpc")}
    moving = None
    tmp = None
    echo = None

    @classmethod
    def backends(cls):
        cls.mport = free_port()
        return {
            "ext": Backend("ext", "127.0.0.1", "v1"),
            "old": Backend("old", "127.0.0.2", "v1", port=cls.mport),
            "new": Backend("new", "127.0.0.3", "v1", port=cls.mport),
        }

    @classmethod
    def config(cls, b):
        return {
            "api.yaml": se_yaml("api", API, "DNS", "localhost", b["ext"].port),
            "rr.yaml": se_yaml("rr", RR, "DNS_ROUND_ROBIN", "localhost", b["ext"].port),
            "bad.yaml": se_yaml("bad", BAD, "DNS", "no-such-host.invalid", 80),
            "moving.yaml": se_yaml("moving", MOVING, "DNS", MOVING_NAME, cls.mport),
            "tcpc.yaml": tcp_sidecar_yaml(),
        }

    @classmethod
    def meshd_args(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-egress-")
        path = os.path.join(cls.tmp, "mesh")
        with open(path, "w") as f:
            f.write(MESH)
        return ("--mesh-config", path)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not mount_ns_works():
            return
        # meshproxy in its own mount namespace, /etc/hosts bind-mounted from
        # a file the test rewrites; the network stays the host's
        cls.hosts = os.path.join(cls.tmp, "hosts")
        with open(cls.hosts, "w") as f:
            f.write(hosts_text("127.0.0.2"))
        wrap = os.path.join(cls.tmp, "wrap.sh")
        with open(wrap, "w") as f:
            f.write('#!/bin/sh\nmount --bind "%s" /etc/hosts || exit 97\nexec "$@"\n' % cls.hosts)
        os.chmod(wrap, 0o755)
        old = os.environ.get("MESHPROXY_WRAPPER")
        os.environ["MESHPROXY_WRAPPER"] = "unshare --mount --propagation private %s %s" % (wrap, old or "")
        try:
            cls.moving = Sidecar(cls.meshd, "mover", "app=mover")
        finally:
            if old is None:
                del os.environ["MESHPROXY_WRAPPER"]
            else:
                os.environ["MESHPROXY_WRAPPER"] = old
        cls.sidecars["mover"] = cls.moving
        try:
            cls.moving.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.echo:
                cls.echo.stop()
            if cls.tmp:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    def url(self, host, path="/"):
        return "http://%s:%d%s" % (host, HTTP_PORT, path)

    def test_a_strict_dns_resolves_localhost(self):
        cluster = "outbound|%d||%s" % (HTTP_PORT, API)
        # the first request may wait for the first resolution (the cluster warming)
        r = self.px.request(self.url(API, "/a"))
        self.assertEqual((r.status, r.backend), (200, "ext"), r)
        code, headers, _ = self.px.curl(self.url(API, "/curl"))
        self.assertEqual((code, headers.get("x-backend")), (200, "ext"))
        clusters = self.px.clusters()
        self.assertIn("%s::127.0.0.1:%d::" % (cluster, self.b["ext"].port), clusters)
        self.assertNotIn("%s::localhost:" % cluster, clusters)
        # Envoy's hostname row: the name the address came from
        self.assertIn("%s::127.0.0.1:%d::hostname::localhost\n" % (cluster, self.b["ext"].port), clusters)
        self.assertGreaterEqual(prom(self.px, "envoy_cluster_update_attempt", cluster), 1)
        self.assertGreaterEqual(prom(self.px, "envoy_cluster_update_success", cluster), 1)
        self.assertEqual(prom(self.px, "envoy_cluster_update_failure", cluster), 0)
        # what meshd sent: a STRICT_DNS cluster with the name as its endpoint
        self.assertTrue(self.px.dump_has("STRICT_DNS"))

    def test_b_logical_dns(self):
        r = self.px.request(self.url(RR, "/rr"))
        self.assertEqual((r.status, r.backend), (200, "ext"), r)
        self.assertTrue(self.px.dump_has("LOGICAL_DNS"))
        self.assertIn("outbound|%d||%s::127.0.0.1:%d::" % (HTTP_PORT, RR, self.b["ext"].port), self.px.clusters())

    def test_c_unresolvable_name(self):
        cluster = "outbound|%d||%s" % (HTTP_PORT, BAD)
        r = self.px.request(self.url(BAD, "/bad"))
        self.assertEqual(r.status, 503, r)
        line = wait_for(lambda: [x for x in self.px.access_log() if " /bad " in x],
                        timeout=60 if slow() else 20, what="the access log line of the 503")
        self.assertIn(" UH ", line[0])
        self.assertGreaterEqual(prom(self.px, "envoy_cluster_update_failure", cluster), 1)
        self.assertEqual(prom(self.px, "envoy_cluster_update_success", cluster), 0)
        # logged once, not at every refresh
        self.assertEqual(self.px.logs().count("resolving no-such-host.invalid failed"), 1)
        # the resolver's counters under Envoy's names (dns.cares.*)
        body = self.px.admin("/stats/prometheus")[1]
        glob = {k: int(v) for k, v in re.findall(r"^envoy_dns_cares_(\w+) (\d+)$", body, re.M)}
        self.assertGreaterEqual(glob.get("resolve_total", 0), 4)  # four names, at least once each
        self.assertGreaterEqual(glob.get("not_found", 0) + glob.get("get_addr_failure", 0), 1)

    def test_d_registry_only_blackhole(self):
        r = self.px.request(self.url("unknown.egress.test", "/blocked"))
        self.assertEqual(r.status, 502, r)
        self.assertIsNone(r.backend)
        code, _, _ = self.px.curl(self.url("unknown.egress.test", "/blocked-curl"))
        self.assertEqual(code, 502)

        def blackholed():
            # both requests: a stream is counted when it ends, which may be
            # a moment after the client has its answer
            body = self.px.admin("/stats/prometheus")[1]
            return [x for x in body.splitlines() if x.startswith("istio_requests_total{")
                    and 'destination_service_name="BlackHoleCluster"' in x
                    and 'response_code="502"' in x and int(x.rsplit(" ", 1)[1]) >= 2]
        lines = wait_for(blackholed, timeout=60 if slow() else 20, what="istio_requests_total for BlackHoleCluster")
        self.assertIn('destination_service="unknown.egress.test"', lines[0])

    def test_f_tcp_service_added_live(self):
        tcpc = self.sidecars["tcpc"]
        cls = type(self)
        cls.echo = Echo()
        port = free_port()
        self.meshd.write("tcp.yaml", tcp_se_yaml(port, cls.echo.port))
        wait_for(lambda: "127.0.0.1_%d::" % port in tcpc.admin("/listeners")[1],
                 timeout=120 if slow() else 30, what="the bound listener of the TCP service")
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            s.sendall(b"ping through a DNS cluster")
            s.shutdown(socket.SHUT_WR)
            got = bytearray()
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        finally:
            s.close()
        self.assertEqual(bytes(got), b"ping through a DNS cluster")
        self.assertIn("outbound|%d||%s::127.0.0.1:%d::" % (port, TCP_HOST, cls.echo.port), tcpc.clusters())

    def test_e_follows_a_changed_name(self):
        if not self.moving:
            self.skipTest("needs root and mount namespaces (unshare --mount)")
        cluster = "outbound|%d||%s" % (HTTP_PORT, MOVING)
        r = self.moving.request(self.url(MOVING, "/first"))
        self.assertEqual((r.status, r.backend), (200, "old"), r)
        write_in_place(self.hosts, hosts_text("127.0.0.3"))
        # the next refresh (5 s) picks the new address up
        r = wait_for(lambda: (lambda x: x if x.status == 200 and x.backend == "new" else None)(
            self.moving.request(self.url(MOVING, "/moved"))),
            timeout=60 if slow() else 30, what="the sidecar following the name to 127.0.0.3")
        old_before = self.b["old"].count()
        for _ in range(3):
            r = self.moving.request(self.url(MOVING, "/after"))
            self.assertEqual((r.status, r.backend), (200, "new"), r)
        self.assertEqual(self.b["old"].count(), old_before)
        clusters = self.moving.clusters()
        self.assertIn("%s::127.0.0.3:%d::" % (cluster, self.mport), clusters)
        self.assertNotIn("%s::127.0.0.2:%d::" % (cluster, self.mport), clusters)


if __name__ == "__main__":
    unittest.main()
