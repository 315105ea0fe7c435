"""TCP services through real meshproxy sidecars (issue 12, "Protocols"):
meshproxy runs envoy.filters.network.tcp_proxy for TCP chains, byte for
byte, instead of reading them as HTTP.

Real meshd (file source), two real meshproxy sidecars without iptables
(captureMode NONE, so each binds its listeners, as test_mesh_capture_none):
  client (app=client): egress captureMode NONE, so every service port is an
      outbound listener bound on 127.0.0.1:SVCPORT (TCP proxy chains);
  server (app=echo):   ingress {port: ING, protocol: TCP} bound on 127.0.0.7,
      defaultEndpoint 127.0.0.1:ECHO (the echo backend).
Services (ServiceEntry, protocol TCP):
  tcp-echo     SVC   -> the server sidecar's ingress (two hops: client
                        sidecar, server sidecar, then the echo backend);
  tcp-limited  LIM   -> the echo backend directly, with a DestinationRule
                        connectionPool.tcp {maxConnections: 1, idleTimeout: 1s};
  tcp-who      WHO   -> two backends (v1, v2) that say their name and close,
                        with a VirtualService `tcp:` route weighting v1/v2;
  tcp-auto     AUTO  -> a backend speaking HTTP or echoing, on a port
                        without a declared protocol (auto-detected);
  secure       TLSP  -> two TLS backends (v1, v2; certificate made at test
                        time) behind `tls:` routes by SNI.

- (a) bytes intact both ways through both sidecars (1 MiB of random bytes,
  sent while reading), and half-close: the client's FIN reaches the echo
  backend, which finishes echoing and closes, and that FIN comes back;
  the access log has Envoy's TCP line ("- - -" 0 ... and the upstream host),
  the cluster's upstream_cx_tx_bytes_total counted the bytes;
- (b) maxConnections 1: while one connection is open a second one is closed
  at once, and its access log line says UO (upstream_cx_overflow counted);
- (c) idleTimeout 1s: an idle connection is closed by the proxy (bounded
  wait, never an assertion on how long it took);
- (d) a `tcp:` weighted route sends connections to both subsets;
- (e) the undeclared port: curl gets HTTP through the HTTP connection
  manager (a request line in the access log) and raw bytes are echoed
  through the TCP proxy, on the same port (http_inspector);
- (f) `tls:` routes: the ClientHello's SNI picks the backend (exact and
  *.wildcard), TLS passing through untouched; another name goes to the
  service's own chain;
- (g) outlier detection: an endpoint that refuses connections is ejected
  after its connect failure (consecutive5xxErrors 1), the rest reach the
  live one (tcp-od: one live backend, one closed port);
- (h) a server-first backend on an undeclared port (tcp-first): MeshConfig
  protocolDetectionTimeout 1s ends the sniffing and the TCP chain carries
  the greeting;
- (i) maxConnectionDuration 1s closes a busy connection (tcp-dur).

MeshTcpMtlsTest (its own meshd with a CA, two sidecars with identities, as
test_mesh_mtls.py): a TCP service under STRICT mTLS, the client sidecar's
TCP proxy originating auto mTLS and the server sidecar terminating it and
proxying to the echo app; plaintext to the server's port is refused.

Each case fails against a proxy that reads TCP as HTTP (the echo would get
a 400 or a timeout), ignores the breaker or the idle timeout, routes to one
subset, does not sniff, or does not read the SNI.  Every wait is bounded; nothing asserts on timing.
"""
import json
import os
import socket
import shutil
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from meshhttp import NS, MeshCase, Sidecar, fqdn, slow
from meshtest import Meshd, free_port, wait_for

SERVER_IP = "127.0.0.7"
ING = free_port()
SVC = free_port()
LIM = free_port()
WHO = free_port()
AUTO = free_port()
TLSP = free_port()
ODP = free_port()
FIRST = free_port()
DUR = free_port()
DEAD = free_port()  # nothing listens on 127.0.0.9:DEAD
CERT_DIR = tempfile.mkdtemp(prefix="mesh-tcp-certs-")
MESH_FILE = os.path.join(CERT_DIR, "mesh.yaml")
with open(MESH_FILE, "w") as _f:
    _f.write("protocolDetectionTimeout: 1s\n")


def server_tls_ctx():
    """A TLS server context with a self-signed certificate made now (no key is committed)."""
    key, crt = os.path.join(CERT_DIR, "key.pem"), os.path.join(CERT_DIR, "crt.pem")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=secure.test"],
                       check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx


class EchoServer:
    """A TCP backend on IP:random port: echoes every byte until the client's
    FIN, then closes its side.  who=NAME instead sends NAME and closes;
    tls_ctx: the same over TLS (the server side of that ssl context);
    http=True answers a connection that starts with "GET " as HTTP/1.1
    (200, x-backend: auto, body "http") and echoes any other."""

    def __init__(self, ip="127.0.0.1", who=None, http=False, tls_ctx=None, port=0):
        self.ip = ip
        self.who = who
        self.conns = 0
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                outer.conns += 1
                s = self.request
                if outer.who:
                    s.sendall(outer.who.encode() + b"\n")
                    return
                first = True
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    if first and http and d.startswith(b"GET "):
                        while b"\r\n\r\n" not in d:
                            more = s.recv(65536)
                            if not more:
                                return
                            d += more
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nx-backend: auto\r\n"
                                  b"Connection: close\r\n\r\nhttp")
                        return
                    first = False
                    s.sendall(d)
                s.shutdown(socket.SHUT_WR)

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        if tls_ctx:
            plain = H

            class H(plain):  # noqa: F811 (the TLS form of the same handler)
                def setup(self):
                    self.request = tls_ctx.wrap_socket(self.request, server_side=True)

        self.server = S((ip, port), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def service(name, port, endpoints, labels=None, protocol="TCP"):
    """A STATIC ServiceEntry NAME:PORT (protocol TCP unless told, None:
    undeclared; port name tcp-NAME) and a WorkloadEntry per (ip, port,
    version)."""
    docs = ["""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: tcp-%(name)s%(proto)s}
  workloadSelector:
    labels: {svc: %(name)s}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port,
       "proto": ", protocol: %s" % protocol if protocol else ""}]
    for i, (ip, bport, version) in enumerate(endpoints):
        docs.append("""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-%(i)d, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {tcp-%(name)s: %(bport)d}
  labels: {svc: %(name)s, version: %(version)s%(extra)s}
""" % {"name": name, "i": i, "ns": NS, "ip": ip, "bport": bport, "version": version,
       "extra": "".join(", %s: %s" % kv for kv in (labels or {}).items())})
    return "---\n".join(docs)


def sidecars_yaml(echo_port):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: client}
  egress:
  - hosts: ["*/*"]
    captureMode: NONE
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: echo, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: echo}
  ingress:
  - port: {number: %(ing)d, protocol: TCP, name: tcp-echo}
    defaultEndpoint: 127.0.0.1:%(echo)d
    bind: %(ip)s
    captureMode: NONE
  egress:
  - hosts: ["./*"]
""" % {"ns": NS, "ing": ING, "echo": echo_port, "ip": SERVER_IP}


def secure_yaml(v1_port, v2_port):
    """secure:TLSP (protocol TLS) with v1/v2 endpoints; `tls:` routes by SNI:
    a.example.com -> v1, *.b.example.com -> v2, anything else the service."""
    return service("secure", TLSP, [("127.0.0.5", v1_port, "v1"), ("127.0.0.6", v2_port, "v2")],
                   protocol="TLS") + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: %(ns)s}
spec:
  host: %(host)s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: %(ns)s}
spec:
  hosts: [%(host)s, a.example.com, "*.b.example.com"]
  tls:
  - match: [{port: %(port)d, sniHosts: [a.example.com]}]
    route: [{destination: {host: %(host)s, subset: v1}}]
  - match: [{sniHosts: ["*.b.example.com"]}]
    route: [{destination: {host: %(host)s, subset: v2}}]
""" % {"ns": NS, "host": fqdn("secure"), "port": TLSP}



def policies_yaml():
    return """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-limited, namespace: %(ns)s}
spec:
  host: %(lim)s
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, idleTimeout: 1s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-who, namespace: %(ns)s}
spec:
  host: %(who)s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-who, namespace: %(ns)s}
spec:
  hosts: [%(who)s]
  tcp:
  - match: [{port: %(whoport)d}]
    route:
    - {destination: {host: %(who)s, subset: v1}, weight: 50}
    - {destination: {host: %(who)s, subset: v2}, weight: 50}
""" % {"ns": NS, "lim": fqdn("tcp-limited"), "who": fqdn("tcp-who"), "whoport": WHO}


def connect(port, timeout=20):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_all(s):
    out = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            return bytes(out)
        out += d


class MeshTcpTest(MeshCase):
    SIDECARS = {"client": ("client", "app=client"), "server": ("echo", "app=echo")}

    @classmethod
    def backends(cls):
        return {"echo": EchoServer("127.0.0.1"), "who1": EchoServer("127.0.0.2", who="v1"),
                "who2": EchoServer("127.0.0.3", who="v2"), "auto": EchoServer("127.0.0.4", http=True),
                "tls1": EchoServer("127.0.0.5", who="v1", tls_ctx=server_tls_ctx()),
                "tls2": EchoServer("127.0.0.6", who="v2", tls_ctx=server_tls_ctx()),
                "od": EchoServer("127.0.0.8", who="alive"),
                "first": EchoServer("127.0.0.10", who="server speaks first")}

    @classmethod
    def config(cls, b):
        return {
            "echo.yaml": service("tcp-echo", SVC, [(SERVER_IP, ING, "v1")]),
            "limited.yaml": service("tcp-limited", LIM, [("127.0.0.1", b["echo"].port, "v1")]),
            "who.yaml": service("tcp-who", WHO, [("127.0.0.2", b["who1"].port, "v1"),
                                                 ("127.0.0.3", b["who2"].port, "v2")]),
            "secure.yaml": secure_yaml(b["tls1"].port, b["tls2"].port),
            "od.yaml": service("tcp-od", ODP, [("127.0.0.8", b["od"].port, "v1"), ("127.0.0.9", DEAD, "v1")]) +
            """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-od, namespace: %s}
spec:
  host: %s
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 300s, maxEjectionPercent: 100}
""" % (NS, fqdn("tcp-od")),
            "dur.yaml": service("tcp-dur", DUR, [("127.0.0.1", b["echo"].port, "v1")]) + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-dur, namespace: %s}
spec:
  host: %s
  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 1s}
""" % (NS, fqdn("tcp-dur")),
            "first.yaml": service("tcp-first", FIRST, [("127.0.0.10", b["first"].port, "v1")], protocol=None),
            "auto.yaml": service("tcp-auto", AUTO, [("127.0.0.4", b["auto"].port, "v1")], protocol=None),
            "sidecars.yaml": sidecars_yaml(b["echo"].port),
            "policies.yaml": policies_yaml(),
        }

    @classmethod
    def meshd_args(cls):
        return ("--mesh-config", MESH_FILE)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.client = cls.sidecars["client"]
        cls.server = cls.sidecars["server"]
        for port in (SVC, LIM, WHO, AUTO, TLSP, ODP, FIRST, DUR):
            wait_for(lambda: "127.0.0.1_%d::" % port in cls.client.admin("/listeners")[1],
                     timeout=120 if slow() else 30, what="the client's bound listener for port %d" % port)
        wait_for(lambda: "%s_%d::" % (SERVER_IP, ING) in cls.server.admin("/listeners")[1],
                 timeout=120 if slow() else 30, what="the server's bound ingress")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(CERT_DIR, ignore_errors=True)

    @staticmethod
    def prom_value(prom, metric, label):
        for x in prom.splitlines():
            if x.startswith(metric + "{") and label in x:
                return int(x.split()[-1])
        return None

    def logs(self):
        """Both sidecars' access logs and the end of their logs, for a failure message."""
        return "\n".join(["client:"] + self.client.access_log() + ["server:"] + self.server.access_log()) + \
            "\n" + self.client.logs()[-3000:] + "\n" + self.server.logs()[-3000:]

    def test_a_bytes_and_half_close_two_hops(self):
        data = os.urandom(1 << 20)
        s = connect(SVC)
        got = {}

        def reader():
            got["data"] = recv_all(s)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        # half-close: our FIN goes through both sidecars to the backend,
        # which then finishes and closes; we still read everything
        s.shutdown(socket.SHUT_WR)
        t.join(60)
        s.close()
        self.assertFalse(t.is_alive(), "the echo never ended (FIN not passed on)")
        self.assertEqual(len(got["data"]), len(data))
        self.assertTrue(got["data"] == data, "bytes changed on the way")

        # a small exchange in both directions before the FIN
        s = connect(SVC)
        s.sendall(b"ping\r\n")
        self.assertEqual(s.recv(100), b"ping\r\n", self.logs())
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s), b"")
        s.close()

        # Envoy's default access log line on a TCP chain
        up = "%s:%d" % (SERVER_IP, ING)
        lines = wait_for(lambda: [x for x in self.client.access_log() if '"%s"' % up in x],
                         timeout=60 if slow() else 20, what="the client's TCP access log line")
        self.assertIn('"- - -" 0 - %d %d ' % (len(data), len(data)), lines[0])
        prom = self.client.admin("/stats/prometheus")[1]
        tx = [x for x in prom.splitlines() if x.startswith("envoy_cluster_upstream_cx_tx_bytes_total{")
              and "tcp-echo" in x]
        self.assertEqual(len(tx), 1, prom[-3000:])
        self.assertGreaterEqual(int(tx[0].split()[-1]), len(data) + 6)
        # Envoy's tcp.STAT_PREFIX stats (Istio's stat_prefix: the cluster)
        prefix = 'envoy_tcp_prefix="outbound|%d||%s"' % (SVC, fqdn("tcp-echo"))
        self.assertEqual(self.prom_value(prom, "envoy_tcp_downstream_cx_total", prefix), 2, prom[-3000:])
        self.assertEqual(self.prom_value(prom, "envoy_tcp_downstream_cx_rx_bytes_total", prefix), len(data) + 6)

    def test_b_max_connections(self):
        first = connect(LIM)
        try:
            first.sendall(b"one")
            self.assertEqual(first.recv(10), b"one")
            second = connect(LIM)
            try:
                # closed by the proxy without a byte: EOF (or a reset)
                try:
                    self.assertEqual(second.recv(10), b"")
                except ConnectionResetError:
                    pass
            finally:
                second.close()
            # the first one still works
            first.sendall(b"two")
            self.assertEqual(first.recv(10), b"two", self.logs())
        finally:
            first.close()
        wait_for(lambda: [x for x in self.client.access_log() if '"- - -" 0 UO ' in x],
                 timeout=60 if slow() else 20, what="the UO line in the access log")
        prom = self.client.admin("/stats/prometheus")[1]
        ov = [x for x in prom.splitlines() if x.startswith("envoy_cluster_upstream_cx_overflow{")
              and "tcp-limited" in x]
        self.assertEqual(len(ov), 1)
        self.assertGreaterEqual(int(ov[0].split()[-1]), 1)

    def test_c_idle_timeout(self):
        # after test_b's connection is gone (the breaker allows one)
        wait_for(lambda: "::cx_active::0" in "".join(
            x for x in self.client.clusters().splitlines() if "tcp-limited" in x and "cx_active" in x),
            timeout=60 if slow() else 20, what="no open connection to tcp-limited")
        s = connect(LIM, timeout=30)
        try:
            s.sendall(b"hi")
            self.assertEqual(s.recv(10), b"hi")
            # idle from here on: the proxy closes it (idleTimeout 1s); a
            # proxy without the timeout leaves recv waiting until the socket
            # timeout, which fails the test
            self.assertEqual(s.recv(10), b"")
        finally:
            s.close()
        prefix = 'envoy_tcp_prefix="outbound|%d||%s"' % (LIM, fqdn("tcp-limited"))
        self.assertGreaterEqual(self.prom_value(self.client.admin("/stats/prometheus")[1], "envoy_tcp_idle_timeout",
                                                prefix) or 0, 1)

    def test_d_weighted_tcp_route(self):
        seen = {}
        for _ in range(24):
            s = connect(WHO)
            try:
                name = recv_all(s).strip().decode()
            finally:
                s.close()
            seen[name] = seen.get(name, 0) + 1
        # 50/50 over 24 connections: each side at least once (the chance of
        # missing one is 2 * 2^-24)
        self.assertEqual(set(seen), {"v1", "v2"}, seen)

    def test_e_undeclared_protocol_sniffed(self):
        # a port without a protocol (Istio's auto-detection): HTTP and raw
        # bytes on the same port, told apart by http_inspector
        host = "%s:%d" % (fqdn("tcp-auto"), AUTO)
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-D", "-", "--connect-to",
                              "%s:127.0.0.1:%d" % (host, AUTO), "http://%s/x" % host],
                             capture_output=True, timeout=30)
        head = out.stdout.decode("latin-1")
        self.assertTrue(head.startswith("HTTP/1.1 200"), (head, out.stderr, self.logs()))
        self.assertIn("x-backend: auto", head.lower())
        self.assertTrue(head.endswith("http"), head)
        s = connect(AUTO)
        try:
            s.sendall(b"\x00\x01raw bytes, not HTTP\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"\x00\x01raw bytes, not HTTP\n", self.logs())
        finally:
            s.close()
        # the HTTP one went through the HTTP connection manager (a request
        # line in the access log), the other through the TCP proxy
        lines = wait_for(lambda: [x for x in self.client.access_log() if '"127.0.0.4:%d"' % self.b["auto"].port in x]
                         if len([x for x in self.client.access_log()
                                 if '"127.0.0.4:%d"' % self.b["auto"].port in x]) >= 2 else None,
                         timeout=60 if slow() else 20, what="both access log lines")
        self.assertTrue(any('"GET /x HTTP/1.1" 200' in x for x in lines), lines)
        self.assertTrue(any('"- - -" 0 - 22 22 ' in x for x in lines), lines)

    def test_h_server_first_on_undeclared_port(self):
        # the client sends nothing: http_inspector waits protocolDetectionTimeout
        # (1s, MeshConfig) and the connection continues on the TCP chain, so
        # the server's greeting arrives; without the timeout it would never
        s = connect(FIRST, timeout=30)
        try:
            self.assertEqual(s.recv(100), b"server speaks first\n", self.logs())
        finally:
            s.close()

    def test_i_max_connection_duration(self):
        # busy, never idle: maxConnectionDuration 1s still ends it (Envoy's
        # max_downstream_connection_duration), counted under the cluster
        s = connect(DUR, timeout=5)
        closed = False
        try:
            for _ in range(100):  # at most ~20 s of pings, 0.2 s apart
                try:
                    s.sendall(b"ping")
                    if s.recv(10) == b"":
                        closed = True
                        break
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
                time.sleep(0.2)
        finally:
            s.close()
        self.assertTrue(closed, "the connection outlived its maximum duration")
        prefix = 'envoy_tcp_prefix="outbound|%d||%s"' % (DUR, fqdn("tcp-dur"))
        self.assertGreaterEqual(self.prom_value(self.client.admin("/stats/prometheus")[1],
                                                "envoy_tcp_max_downstream_connection_duration", prefix) or 0, 1)

    def tls_name(self, sni):
        """The backend a TLS connection with SNI sni reaches (it says its name)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with connect(TLSP) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                return recv_all(s).strip().decode()

    def test_f_tls_route_by_sni(self):
        # TLS passthrough: the sidecar reads the ClientHello's SNI
        # (tls_inspector) and picks the chain, never terminating TLS
        for _ in range(3):
            self.assertEqual(self.tls_name("a.example.com"), "v1", self.logs())
            self.assertEqual(self.tls_name("x.b.example.com"), "v2", self.logs())
            self.assertEqual(self.tls_name("deep.x.b.example.com"), "v2")
        # no route for the name: the service's own chain (either subset)
        self.assertIn(self.tls_name("other.example.com"), ("v1", "v2"))

    def test_g_outlier_detection_on_connect_failure(self):
        # one endpoint refuses connections: its connect failure counts as a
        # 5xx for consecutive5xxErrors 1, so it is ejected and every later
        # connection reaches the live one
        def one():
            s = connect(ODP)
            try:
                return recv_all(s).strip().decode()
            except ConnectionResetError:
                return ""
            finally:
                s.close()
        # until the picker has tried the dead one (each pick about even:
        # 40 misses in a row would be a 2^-40 chance)
        results = []
        while "" not in results and len(results) < 40:
            results.append(one())
        self.assertIn("", results, "the refusing endpoint was never picked")
        after = [one() for _ in range(6)]
        self.assertEqual(after, ["alive"] * 6, results)
        clusters = self.client.clusters()
        self.assertIn("127.0.0.9:%d::health_flags::/failed_outlier_check" % DEAD, clusters)
        wait_for(lambda: [x for x in self.client.access_log() if '"- - -" 0 UF ' in x],
                 timeout=60 if slow() else 20, what="the UF line of the refused connection")


MTLS_IP = "127.0.0.12"      # the server sidecar's virtualInbound socket (--inbound-addr)
MTLS_CLIENT = "127.0.0.13"  # where the client sidecar binds the service port (egress bind)


def pick_port():
    """A port free on 127.0.0.1 (the echo app) and on MTLS_IP (the server sidecar's inbound)."""
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((MTLS_IP, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no port free on both addresses")


class MeshTcpMtlsTest(unittest.TestCase):
    """A TCP service between two sidecars with identities from meshd's CA
    (as test_mesh_mtls.py does for HTTP): the client sidecar's TCP proxy
    originates mTLS (auto mTLS: the endpoint says tlsMode istio), the server
    sidecar's virtualInbound terminates it (STRICT) and its TCP chain carries
    the bytes to the echo app.  A plaintext client straight to the inbound
    port is refused, so the bytes that came back went over mTLS."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-tcp-mtls-")
        cls.port = pick_port()
        cls.app = EchoServer("127.0.0.1", port=cls.port)
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\nweb-token %s web\n" % (NS, NS))
        for name in ("client", "web"):
            with open(os.path.join(cls.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        config = {"sec.yaml": """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-sec, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: tcp-sec, protocol: TCP}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {tcp-sec: %(port)d}
  serviceAccount: web
  labels: {app: web, security.istio.io/tlsMode: istio}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: client}
  egress:
  - hosts: ["*/*"]
    captureMode: NONE
    bind: %(cip)s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %(ns)s}
spec:
  mtls: {mode: STRICT}
""" % {"ns": NS, "host": fqdn("tcp-sec"), "port": cls.port, "ip": MTLS_IP, "cip": MTLS_CLIENT}}
        cls.meshd = Meshd(config, extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.sidecars = {}
        try:
            cls.meshd.start()
            root = os.path.join(ca_dir, "root-cert.pem")

            def idargs(name):
                return ["--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", root,
                        "--token-file", os.path.join(cls.tmp, name + ".token"), "--service-account", name]
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client", args=idargs("client"))
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web", ip=MTLS_IP,
                                          args=idargs("web") + ["--inbound-addr", "%s:%d" % (MTLS_IP, cls.port)])
            for s in cls.sidecars.values():
                s.wait_ready()
            for s in cls.sidecars.values():
                wait_for(lambda: json.loads(s.admin("/certs")[1])["generation"] >= 1,
                         timeout=60 if slow() else 20, what="a workload certificate")
            wait_for(lambda: "%s_%d::" % (MTLS_CLIENT, cls.port) in cls.sidecars["client"].admin("/listeners")[1],
                     timeout=120 if slow() else 30, what="the client's bound TCP listener")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(cls.app)
        for s in cls.sidecars.values():
            s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def test_tcp_over_mtls(self):
        client, web = self.sidecars["client"], self.sidecars["web"]
        data = os.urandom(200000)
        s = socket.create_connection((MTLS_CLIENT, self.port), timeout=20)
        got = {}
        t = threading.Thread(target=lambda: got.update(data=recv_all(s)))
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join(60)
        s.close()
        self.assertFalse(t.is_alive(), "the echo never ended")
        self.assertTrue(got.get("data") == data,
                        "%d bytes back\n%s\n%s" % (len(got.get("data") or b""), client.logs()[-3000:],
                                                     web.logs()[-3000:]))
        # both sidecars logged a TCP connection: the client's to the web
        # sidecar, the web sidecar's to the application
        wait_for(lambda: [x for x in client.access_log() if '"- - -" 0 - ' in x and
                          '"%s:%d"' % (MTLS_IP, self.port) in x],
                 timeout=60 if slow() else 20, what="the client's TCP line")
        wait_for(lambda: [x for x in web.access_log() if '"- - -" 0 - %d %d ' % (len(data), len(data)) in x],
                 timeout=60 if slow() else 20, what="the web sidecar's TCP line: %s" % web.access_log())
        # issue 14: Istio's TCP metrics, both reporters; the inbound side
        # knows the client's SPIFFE id and that the connection was mTLS
        def tcp_metric(sc, name, *parts):
            return sum(int(x.split()[-1]) for x in sc.admin("/stats/prometheus")[1].splitlines()
                       if x.startswith(name + "{") and all(p in x for p in parts))
        inbound = ('reporter="destination"', 'source_principal="spiffe://cluster.local/ns/%s/sa/client"' % NS,
                   'destination_workload="web-1"', 'request_protocol="tcp"',
                   'connection_security_policy="mutual_tls"')
        self.assertEqual(tcp_metric(web, "istio_tcp_connections_opened_total", *inbound), 1)
        self.assertEqual(tcp_metric(web, "istio_tcp_connections_closed_total", *inbound), 1)
        self.assertEqual(tcp_metric(web, "istio_tcp_received_bytes_total", *inbound), len(data))
        self.assertEqual(tcp_metric(web, "istio_tcp_sent_bytes_total", *inbound), len(data))
        outbound = ('reporter="source"', 'source_workload="client"', 'destination_service="%s"' % fqdn("tcp-sec"))
        self.assertEqual(tcp_metric(client, "istio_tcp_connections_closed_total", *outbound), 1)
        self.assertEqual(tcp_metric(client, "istio_tcp_received_bytes_total", *outbound), len(data))
        # Istio's TCP metadata exchange (ALPN istio-peer-exchange): each
        # reporter knows the other side's workload, on every series of the
        # connection (opened too)
        opened = [x for x in web.admin("/stats/prometheus")[1].splitlines()
                  if x.startswith("istio_tcp_connections_opened_total{")]
        self.assertEqual(tcp_metric(web, "istio_tcp_connections_opened_total", *inbound,
                                    'source_workload="client"', 'source_app="client"'), 1, opened)
        self.assertEqual(tcp_metric(client, "istio_tcp_connections_opened_total", *outbound,
                                    'destination_workload="web-1"', 'destination_app="web"'), 1)
        self.assertEqual(tcp_metric(client, "istio_tcp_sent_bytes_total", *outbound,
                                    'destination_workload="web-1"'), len(data))
        # STRICT: plaintext straight to the inbound port gets nothing back:
        # no filter chain takes it (Envoy's no_filter_chain_match)
        p = socket.create_connection((MTLS_IP, self.port), timeout=20)
        try:
            p.sendall(b"plaintext\n")
            try:
                self.assertEqual(p.recv(100), b"")
            except ConnectionResetError:
                pass
        finally:
            p.close()
        metric = 'envoy_listener_no_filter_chain_match{envoy_listener_address="%s_%d"}' % (MTLS_IP, self.port)
        line = [x for x in web.admin("/stats/prometheus")[1].splitlines() if x.startswith(metric)]
        self.assertEqual(len(line), 1, web.admin("/stats/prometheus")[1][-2000:])
        self.assertGreaterEqual(int(line[0].split()[-1]), 1)


if __name__ == "__main__":
    unittest.main()
