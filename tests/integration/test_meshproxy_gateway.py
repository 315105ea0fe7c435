"""meshproxy as an Istio ingress gateway (issue 13), end to end without
meshd: the proxy engine in router mode (BUILD/tests/bench/proxy/pxserve
--router 1, the node type router of meshproxy --node-id router~...) with a
spec in istiod's gateway shapes (tests/unit/dataplane/pxspec.h "gw" lines:
0.0.0.0_PORT-style listeners bound by the proxy itself, one filter chain
per server selected by SNI, DownstreamTlsContexts with file certificates,
RDS route configs with require_tls), driven by curl and openssl from
outside.

Covered: no virtualOutbound/virtualInbound in router mode, httpsRedirect
(require_tls ALL: 301 with Location https://HOST/PATH exactly), two SNI
hosts getting two certificates (exact and wildcard server_names), MUTUAL
refusing a client without a certificate and serving one with it, ALPN h2
after termination (curl --http2), http/1.1 over TLS, tls_params (a chain
with TLS 1.3 minimum refusing a TLS 1.2 client), PASSTHROUGH reaching an
openssl s_server whose certificate the client sees, AUTO_PASSTHROUGH
(SNI outbound_.PORT_._.HOST to cluster outbound|PORT||HOST), the
gateway's X-Forwarded-* handling (use_remote_address), OPTIONAL_MUTUAL,
MUTUAL's subjectAltNames, a TLS-terminating TCP server, and SIGTERM draining the gateway's listeners (not only inbound ones).

MeshdGatewayTest: the real meshd (Gateway + VirtualService in file mode,
files certificates) and the real meshproxy with a router node id: only the
Gateway's ports bound, httpsRedirect, SIMPLE TLS with h2, minProtocolVersion.

Certificates are made at test time with the openssl CLI.  Nothing here
asserts on timing; every wait is bounded.  Runs in a few seconds.
"""
import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

from meshtest import BUILD, Meshd, free_port, wait_for

PXSERVE = os.path.join(BUILD, "tests", "bench", "proxy", "pxserve")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, **kw)


def make_certs(d):
    """A root and leaves for a.example.com, b.example.com, c.example.com and a client (EC P-256)."""
    def ossl(*a):
        r = run("openssl", *a, cwd=d)
        if r.returncode:
            raise AssertionError("openssl %s: %s" % (" ".join(a), r.stderr))

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
         "-out", "ca.crt", "-subj", "/CN=gateway-test-root", "-days", "1")
    for name, cn in (("a", "a.example.com"), ("b", "b.example.com"), ("c", "c.example.com"), ("client", "client")):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", "/CN=" + cn)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % cn)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext")


class Echo:
    """Answers every GET with the request's header block as its body."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                body = ("path=%s\n%s" % (self.path, self.headers)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pxgw-it-")
        make_certs(cls.dir)
        cls.echo = Echo()
        cls.p80, cls.p443, cls.tls_be, cls.admin = free_port(), free_port(), free_port(), free_port()
        cls.out_port = free_port()
        cls.p6 = free_port()  # an IPv6 listener ([::1]): free on 127.0.0.1 too, so likely on ::1
        # the TLS backend PASSTHROUGH reaches: its own certificate (c.example.com)
        cls.sserver = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % cls.tls_be, "-cert", "c.crt", "-key", "c.key",
             "-www", "-quiet"], cwd=cls.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # stopped even when the rest of setUpClass fails (tearDownClass would not run)
        cls.addClassCleanup(lambda: (cls.sserver.kill(), cls.sserver.wait()))
        cls.addClassCleanup(cls.echo.stop)
        d = cls.dir
        spec = """
gw gw80 127.0.0.1:{p80} http http.80
gw gw6 ::1:{p6} http http.80
gw gw443 127.0.0.1:{p443} https a.example.com https.443.a cert={d}/a.crt key={d}/a.key alpn=h2,http/1.1
gw gw443 127.0.0.1:{p443} https b.example.com,*.b.example.com https.443.b cert={d}/b.crt key={d}/b.key ca={d}/ca.crt mode=mutual alpn=h2,http/1.1
gw gw443 127.0.0.1:{p443} https new.example.com https.443.a cert={d}/a.crt key={d}/a.key min=1.3 alpn=http/1.1
gw gw443 127.0.0.1:{p443} https opt.example.com https.443.a cert={d}/a.crt key={d}/a.key ca={d}/ca.crt mode=optional
gw gw443 127.0.0.1:{p443} https san.example.com https.443.a cert={d}/a.crt key={d}/a.key ca={d}/ca.crt mode=mutual san=client
gw gw443 127.0.0.1:{p443} https nosan.example.com https.443.a cert={d}/a.crt key={d}/a.key ca={d}/ca.crt mode=mutual san=someone-else
gw gw443 127.0.0.1:{p443} tcps tcp.example.com echo cert={d}/a.crt key={d}/a.key
gw gw443 127.0.0.1:{p443} pass c.example.com outbound|443||c.example.com
gw gw443 127.0.0.1:{p443} auto *.svc.cluster.local
vhost http.80 redirect a.example.com,a.example.com:* require_tls=all
vhost http.80 plain plain.example.com
route http.80 plain / cluster=echo
vhost https.443.a a *
route https.443.a a / cluster=echo
vhost https.443.b b *
route https.443.b b / cluster=echo
cluster echo static 127.0.0.1:{echo}
cluster outbound|443||c.example.com static 127.0.0.1:{be}
cluster outbound|8443||s.ns.svc.cluster.local static 127.0.0.1:{be}
""".format(p80=cls.p80, p443=cls.p443, d=d, echo=cls.echo.port, be=cls.tls_be, p6=cls.p6)
        with open(os.path.join(d, "spec"), "w") as f:
            f.write(spec)
        cls.log = open(os.path.join(d, "pxserve.log"), "w+")
        cls.proc = subprocess.Popen(
            [PXSERVE, "--spec", os.path.join(d, "spec"), "--router", "1",
             "--outbound-addr", "127.0.0.1:%d" % cls.out_port, "--inbound-addr", "127.0.0.1:%d" % free_port(),
             "--admin-addr", "127.0.0.1:%d" % cls.admin],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(lambda: cls.proc.poll() is None and (cls.proc.kill(), cls.proc.wait()))

        def up(port):
            if cls.proc.poll() is not None:
                cls.log.seek(0)
                raise AssertionError("pxserve exited %d: %s" % (cls.proc.returncode, cls.log.read()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        for port in (cls.admin, cls.p80, cls.p443, cls.tls_be):
            wait_for(lambda: up(port), what="port %d" % port)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGINT)
            try:
                cls.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait()
        cls.log.seek(0)
        log = cls.log.read()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if bad in log:
                raise AssertionError("pxserve: %s\n%s" % (bad, log[-4000:]))

    def curl(self, host, path="/", *args, port=None):
        """curl https://HOST:443-port/PATH resolved to the gateway; returns (exit code, code, http version,
        body, verbose stderr)."""
        port = port or self.p443
        r = run("curl", "-s", "-v", "--max-time", "10", "--resolve", "%s:%d:127.0.0.1" % (host, port),
                "-w", "\n%{http_code} %{http_version}", *args, "https://%s:%d%s" % (host, port, path))
        body, _, tail = r.stdout.rpartition("\n")
        code, _, ver = tail.partition(" ")
        return r.returncode, int(code or 0), ver, body, r.stderr

    def cacert(self):
        return ["--cacert", os.path.join(self.dir, "ca.crt")]

    def client_cert(self):
        return ["--cert", os.path.join(self.dir, "client.crt"), "--key", os.path.join(self.dir, "client.key")]

    def test_router_mode_binds_only_lds_listeners(self):
        r = run("curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/listeners" % self.admin)
        self.assertIn("gw80::127.0.0.1:%d" % self.p80, r.stdout)
        self.assertIn("gw443::127.0.0.1:%d" % self.p443, r.stdout)
        self.assertNotIn("virtualOutbound", r.stdout)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.out_port), timeout=2).close()

    def test_https_redirect_301(self):
        r = run("curl", "-s", "-i", "--max-time", "10", "-H", "Host: a.example.com",
                "http://127.0.0.1:%d/some/path?x=1" % self.p80)
        # (text mode: curl's CRLF read as "\n")
        head = r.stdout.split("\n\n")[0].lower()
        self.assertTrue(head.startswith("http/1.1 301 moved permanently\n"), head)
        self.assertIn("\nlocation: https://a.example.com/some/path?x=1\n", head + "\n")
        # a Host with its port keeps it, as Envoy's createSslRedirectPath
        r = run("curl", "-s", "-i", "--max-time", "10", "-H", "Host: a.example.com:8080",
                "http://127.0.0.1:%d/p" % self.p80)
        self.assertIn("location: https://a.example.com:8080/p", r.stdout.lower())
        # another virtual host of the same route config is served in plaintext
        r = run("curl", "-s", "--max-time", "10", "-H", "Host: plain.example.com",
                "http://127.0.0.1:%d/p" % self.p80)
        self.assertIn("path=/p", r.stdout)
        self.assertIn("x-forwarded-proto: http\n", r.stdout)

    def test_two_hosts_two_certificates_by_sni(self):
        rc, code, ver, body, err = self.curl("a.example.com", "/a", *self.cacert())
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=a.example.com", err)
        self.assertIn("path=/a", body)
        rc, code, ver, body, err = self.curl("b.example.com", "/b", *self.cacert(), *self.client_cert())
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=b.example.com", err)
        # the wildcard server name selects b's chain too (its certificate: -k)
        rc, code, ver, body, err = self.curl("x.b.example.com", "/w", "-k", *self.client_cert())
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=b.example.com", err)
        # no chain for an unknown name: the connection is closed
        rc, code, ver, body, err = self.curl("zzz.example.com", "/", "-k")
        self.assertNotEqual(rc, 0)
        self.assertEqual(code, 0)

    def test_mutual_refuses_a_client_without_certificate(self):
        rc, code, ver, body, err = self.curl("b.example.com", "/b", *self.cacert())
        self.assertNotEqual(rc, 0, err)
        self.assertEqual(code, 0)
        # a client certificate the validation context does not trust is refused too
        other = os.path.join(self.dir, "other")
        os.makedirs(other, exist_ok=True)
        make_certs(other)
        rc, code, ver, body, err = self.curl("b.example.com", "/b", *self.cacert(), "--cert",
                                             os.path.join(other, "client.crt"), "--key",
                                             os.path.join(other, "client.key"))
        self.assertNotEqual(rc, 0, err)
        self.assertEqual(code, 0)

    def test_optional_mutual(self):
        # OPTIONAL_MUTUAL: no certificate is fine, an untrusted one is not
        rc, code, ver, body, err = self.curl("opt.example.com", "/o", "-k")
        self.assertEqual((rc, code), (0, 200), err)
        rc, code, ver, body, err = self.curl("opt.example.com", "/o", "-k", *self.client_cert())
        self.assertEqual((rc, code), (0, 200), err)
        other = os.path.join(self.dir, "other-opt")
        os.makedirs(other, exist_ok=True)
        make_certs(other)
        rc, code, ver, body, err = self.curl("opt.example.com", "/o", "-k", "--cert",
                                             os.path.join(other, "client.crt"), "--key",
                                             os.path.join(other, "client.key"))
        self.assertNotEqual(rc, 0, err)

    def test_mutual_subject_alt_names(self):
        # MUTUAL with subjectAltNames: the client certificate's SAN must be one of them
        rc, code, ver, body, err = self.curl("san.example.com", "/s", "-k", *self.client_cert())
        self.assertEqual((rc, code), (0, 200), err)
        rc, code, ver, body, err = self.curl("nosan.example.com", "/s", "-k", *self.client_cert())
        self.assertNotEqual(rc, 0, err)
        self.assertEqual(code, 0)

    def test_tls_terminated_tcp_server(self):
        # a TLS server whose chain is a TCP proxy: terminated here, the plaintext bytes go on
        rc, code, ver, body, err = self.curl("tcp.example.com", "/t", "-k", "--http1.1")
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=a.example.com", err)
        self.assertIn("path=/t", body)
        self.assertNotIn("x-forwarded-proto", body.lower())  # no HTTP processing on the way

    def test_zz_sigterm_drains_gateway_listeners(self):
        # last (alphabetical order): Istio's agent drains a gateway's every
        # listener, not only inbound ones; an idle keep-alive connection on
        # the gateway's port is closed at once
        s = socket.create_connection(("127.0.0.1", self.p80), timeout=10)
        s.sendall(b"GET /k HTTP/1.1\r\nHost: plain.example.com\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += s.recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), first)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += s.recv(65536)
        self.proc.send_signal(signal.SIGTERM)
        s.settimeout(4)  # below the 5 s drain period: the close comes from the drain
        rest = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rest += b
        finally:
            s.close()
        self.assertEqual(rest, b"")
        self.proc.wait(timeout=20)

    def test_alpn_h2_and_http11_after_termination(self):
        rc, code, ver, body, err = self.curl("a.example.com", "/h2", "--http2", *self.cacert())
        self.assertEqual((rc, code, ver), (0, 200, "2"), err)
        self.assertIn("path=/h2", body)
        rc, code, ver, body, err = self.curl("a.example.com", "/h1", "--http1.1", *self.cacert())
        self.assertEqual((rc, code, ver), (0, 200, "1.1"), err)
        # several h2 requests on one connection keep the chain (its route config)
        r = run("curl", "-s", "--http2", "--max-time", "10", *self.cacert(), "--resolve",
                "a.example.com:%d:127.0.0.1" % self.p443, "-w", "%{http_version} %{num_connects}\n",
                "https://a.example.com:%d/1" % self.p443, "-o", "/dev/null",
                "https://a.example.com:%d/2" % self.p443, "-o", "/dev/null")
        self.assertEqual(r.stdout.split("\n")[:2], ["2 1", "2 0"], r.stderr)

    def test_tls_params_minimum_version(self):
        rc, code, ver, body, err = self.curl("new.example.com", "/", "-k", "--tls-max", "1.2")
        self.assertNotEqual(rc, 0, err)
        rc, code, ver, body, err = self.curl("new.example.com", "/", "-k", "--tlsv1.3")
        self.assertEqual((rc, code), (0, 200), err)

    def test_passthrough_by_sni(self):
        # the backend's own certificate reaches the client: TLS is not terminated
        rc, code, ver, body, err = self.curl("c.example.com", "/", *self.cacert())
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=c.example.com", err)
        self.assertIn("s_server", body)

    def test_auto_passthrough_cluster_from_sni(self):
        rc, code, ver, body, err = self.curl("outbound_.8443_._.s.ns.svc.cluster.local", "/", "-k")
        self.assertEqual((rc, code), (0, 200), err)
        self.assertIn("subject: CN=c.example.com", err)
        # an SNI naming no cluster: closed
        rc, code, ver, body, err = self.curl("outbound_.1_._.nosuch.ns.svc.cluster.local", "/", "-k")
        self.assertNotEqual(rc, 0)

    def test_forwarded_headers_at_the_edge(self):
        rc, code, ver, body, err = self.curl("a.example.com", "/hdr", "--http1.1", *self.cacert(),
                                             "-H", "x-forwarded-for: 203.0.113.7",
                                             "-H", "x-forwarded-proto: http",
                                             "-H", "x-envoy-external-address: 198.51.100.1",
                                             "-H", "x-request-id: from-client")
        self.assertEqual((rc, code), (0, 200), err)
        lines = body.lower().split("\n")
        # use_remote_address: the peer appended, the scheme the connection's, a loopback client internal
        self.assertIn("x-forwarded-for: 203.0.113.7,127.0.0.1", lines)
        self.assertIn("x-forwarded-proto: https", lines)
        self.assertIn("x-envoy-internal: true", lines)
        self.assertNotIn("x-envoy-external-address: 198.51.100.1", lines)
        # an internal client's request id is kept
        self.assertIn("x-request-id: from-client", lines)
        self.assertEqual(sum(1 for l in lines if l.startswith("x-forwarded-proto:")), 1)


    def test_forwarded_for_ipv6_client(self):
        # a listener on [::1]: the client's IPv6 address is appended to XFF
        # and judged internal like an IPv4 one (it was left out: a client's
        # XFF went on unchecked)
        r = run("curl", "-s", "--max-time", "10", "-H", "Host: plain.example.com",
                "-H", "x-forwarded-for: 203.0.113.7", "http://[::1]:%d/hdr" % self.p6)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.lower().split("\n")
        self.assertIn("x-forwarded-for: 203.0.113.7,::1", lines)
        self.assertIn("x-envoy-internal: true", lines)
        self.assertIn("x-forwarded-proto: http", lines)


class MeshdGatewayTest(unittest.TestCase):
    """The same proxy as meshproxy proper, fed by the real meshd: a router
    node (--node-id router~..., labels istio=ingressgateway) gets istiod's
    gateway listeners for a Gateway with an httpsRedirect HTTP server and a
    SIMPLE HTTPS server with file certificates and minProtocolVersion
    TLSV1_3, and a VirtualService bound to it."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pxgw-meshd-it-")
        make_certs(cls.dir)
        cls.echo = Echo()
        cls.p80, cls.p443, cls.admin = free_port(), free_port(), free_port()
        cfg = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: demo}}
spec:
  hosts: [web.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {be}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {p80}, name: http, protocol: HTTP}}
    hosts: ["*"]
    tls: {{httpsRedirect: true}}
  - port: {{number: {p443}, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {d}/a.crt, privateKey: {d}/a.key, minProtocolVersion: TLSV1_3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: demo}}
spec:
  hosts: [a.example.com]
  gateways: [istio-system/ingress]
  http:
  - route: [{{destination: {{host: web.demo.svc.cluster.local}}}}]
""".format(be=cls.echo.port, p80=cls.p80, p443=cls.p443, d=cls.dir)
        cls.addClassCleanup(cls.echo.stop)
        cls.meshd = Meshd(files={"gateway.yaml": cfg})
        cls.addClassCleanup(lambda: (cls.meshd.stop(), cls.meshd.cleanup()))
        cls.meshd.start()
        cls.log = open(os.path.join(cls.dir, "meshproxy.log"), "w+")
        cls.proc = subprocess.Popen(
            [os.path.join(BUILD, "bin", "meshproxy"), "--xds-addr", "127.0.0.1:%d" % cls.meshd.xds_port,
             "--node-id", "router~127.0.0.1~ingress-1.istio-system~istio-system.svc.cluster.local",
             "--labels", "istio=ingressgateway", "--admin-addr", "127.0.0.1:%d" % cls.admin,
             "--status-addr", "", "--health-addr", ""],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(lambda: cls.proc.poll() is None and (cls.proc.kill(), cls.proc.wait()))

        def ready():
            if cls.proc.poll() is not None:
                cls.log.seek(0)
                raise AssertionError("meshproxy exited: %s" % cls.log.read())
            r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/ready" % cls.admin)
            return r.stdout == "200"

        wait_for(ready, what="meshproxy router ready")

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGINT)
        try:
            cls.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.seek(0)
        log = cls.log.read()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if bad in log:
                raise AssertionError("meshproxy: %s\n%s" % (bad, log[-4000:]))
        rc = cls.meshd.stop()  # (under ASan, 0 also means no leak)
        if rc != 0:
            raise AssertionError("meshd exited %s: %s" % (rc, cls.meshd.logs()[-4000:]))

    def test_gateway_from_meshd(self):
        # only the Gateway's ports: no 15001/15006 (router mode)
        r = run("curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/listeners" % self.admin)
        self.assertIn("0.0.0.0_%d::0.0.0.0:%d" % (self.p80, self.p80), r.stdout)
        self.assertIn("0.0.0.0_%d::0.0.0.0:%d" % (self.p443, self.p443), r.stdout)
        self.assertNotIn("virtual", r.stdout)
        # httpsRedirect
        r = run("curl", "-s", "-i", "--max-time", "10", "-H", "Host: a.example.com", "http://127.0.0.1:%d/x?y=1" % self.p80)
        self.assertTrue(r.stdout.startswith("HTTP/1.1 301 Moved Permanently"), r.stdout)
        self.assertIn("location: https://a.example.com/x?y=1\n", r.stdout.lower())
        # SIMPLE TLS, h2 to the bound VirtualService's destination
        r = run("curl", "-s", "-v", "--http2", "--max-time", "10", "--cacert", os.path.join(self.dir, "ca.crt"),
                "--resolve", "a.example.com:%d:127.0.0.1" % self.p443, "https://a.example.com:%d/h" % self.p443)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("subject: CN=a.example.com", r.stderr)
        self.assertIn("< HTTP/2 200", r.stderr)
        self.assertIn("path=/h", r.stdout)
        self.assertIn("x-forwarded-proto: https", r.stdout.lower())
        # minProtocolVersion TLSV1_3
        r = run("curl", "-s", "-k", "--max-time", "10", "--tls-max", "1.2", "--resolve",
                "a.example.com:%d:127.0.0.1" % self.p443, "https://a.example.com:%d/h" % self.p443)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
