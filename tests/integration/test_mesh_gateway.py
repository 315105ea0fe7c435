"""The ingress gateway end to end (issue 13): the real meshd, a real meshproxy
running as a gateway (node type router, labels istio=ingressgateway) that binds
the ports of the Gateway servers on its own loopback address, a meshproxy
sidecar in front of one workload, real backends, and clients from outside the
mesh (curl, Python's ssl, python3-grpcio).

  curl / ssl / grpc --> gateway 127.0.0.31:{HTTP,HTTPS,PASS}
                          |-- HTTP ---------------------------------> api (127.0.0.1, no sidecar)
                          |-- HTTP over ISTIO_MUTUAL (auto mTLS) --> web sidecar (inbound 127.0.0.32:P) --> web app (127.0.0.1:P)
                          |-- h2c -----------------------------------> greeter (gRPC, 127.0.0.1)
                          `-- TLS bytes as they came (PASSTHROUGH) --> pass (a TLS server, 127.0.0.1)

The gateway gets its workload certificate from meshd's CA (token file:
istio-system/istio-ingressgateway-service-account) and its credentialName
certificates as SDS secrets `kubernetes://NAME` (Secrets in istio-system, the
gateway's namespace, as Istio reads them).  Certificates are made here with
openssl: an "edge" CA signs the servers' certificates, a "client" CA the
MUTUAL client's, a "backend" CA the PASSTHROUGH backend's.

Cases (one meshd, one gateway, one sidecar; the whole file in ~5 s here,
about 10 s under ASan):
  - HTTP routing by host and by path (web.example.com/ -> web through its
    sidecar with mTLS: the app sees the gateway's SPIFFE id in XFCC;
    web.example.com/api and api.example.com -> api); an unknown host is 404;
    the gateway's edge headers (X-Forwarded-For/-Proto, Host kept);
  - httpsRedirect: 301 to https://, never forwarded;
  - SIMPLE TLS, two hosts on one port, two certificates chosen by SNI;
    HTTP/2 (ALPN h2) and HTTP/1.1 to the client after termination;
  - MUTUAL: a client without a certificate, or with one from another CA,
    is refused; one with a certificate from the client CA is served;
  - PASSTHROUGH: the client's TLS reaches the backend, whose certificate
    the client sees (not the gateway's); an SNI no server takes is closed;
  - a credentialName Secret rewritten while a client keeps calling (a new
    connection per call): not one call fails, new handshakes get the new
    certificate from then on, and a connection opened before keeps its
    certificate and goes on serving;
  - gRPC through the gateway over TLS (ALPN h2) and as h2c on the HTTP port;
  - the seed documents' Gateway + VirtualServices (003/02, 03, 04, ports
    adapted to loopback) pass `meshctl validate`, order.a4co.local routes
    through the gateway on both servers, payment (mesh only) does not.

Loopback without iptables: the gateway's HTTP port is the web workload's
port, because a sidecar's inbound port reached directly takes the
application port from the request's Host (DESIGN.md) and the gateway keeps
the client's Host.

Every wait is bounded; nothing here asserts on timing.
"""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

import grpc

from meshhttp import MESHPROXY, NS, Backend, Sidecar, fqdn, service_yaml, slow
from meshtest import MESHCTL, ROOT, Backend as GrpcBackend, METHOD, Meshd, free_port, wait_for

GW_IP = "127.0.0.31"
WEB_IP = "127.0.0.32"
GW_NS = "istio-system"
GW_SA = "istio-ingressgateway"  # as deploy/gateway/ names it (the chart: the release name)
GW_ID = "spiffe://cluster.local/ns/%s/sa/%s" % (GW_NS, GW_SA)
# the seed documents as written (their Gateway and VirtualServices: 003/02-04)
SEED = os.path.join(ROOT, "tests", "data", "seed-yaml")


def pick_port(*ips):
    """A port free on 127.0.0.1 and on every ip given."""
    for _ in range(50):
        p = free_port()
        ok = True
        for ip in ips:
            s = socket.socket()
            try:
                s.bind((ip, p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise AssertionError("no port free on %s" % (ips,))


# ---------------------------------------------------------------- certificates

def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


class Certs:
    """CAs and leaf certificates made with openssl in a directory (EC P-256)."""

    def __init__(self, d):
        self.d = d

    def path(self, name, ext):
        return os.path.join(self.d, "%s.%s" % (name, ext))

    def ca(self, name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", self.path(name, "key"), "-out", self.path(name, "crt"), "-days", "2",
                "-subj", "/O=meshd tests/CN=%s" % name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(name, "crt")

    def leaf(self, name, ca, sans, usage="serverAuth"):
        ext = self.path(name, "ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n"
                    % (",".join("DNS:" + s for s in sans), usage))
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", self.path(name, "key"), "-out", self.path(name, "csr"), "-subj", "/CN=%s" % sans[0])
        openssl("x509", "-req", "-in", self.path(name, "csr"), "-CA", self.path(ca, "crt"),
                "-CAkey", self.path(ca, "key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                "-days", "2", "-extfile", ext, "-out", self.path(name, "crt"))
        return self.path(name, "crt")

    def read(self, name, ext):
        with open(self.path(name, ext)) as f:
            return f.read()

    def der(self, name):
        return ssl.PEM_cert_to_DER_cert(self.read(name, "crt"))

    def secret(self, secret_name, name, ca=None):
        """A kubernetes.io/tls Secret in the gateway's namespace (Istio reads
        credentialName Secrets there), ca.crt from the CA named ca."""
        import base64

        def b64(text):
            return base64.b64encode(text.encode()).decode()
        data = {"tls.crt": self.read(name, "crt"), "tls.key": self.read(name, "key")}
        if ca:
            data["ca.crt"] = self.read(ca, "crt")
        return ("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: kubernetes.io/tls\n"
                "data:\n%s" % (secret_name, GW_NS, "".join("  %s: %s\n" % (k, b64(v)) for k, v in data.items())))


# ---------------------------------------------------------------- config

def config(t):
    """Services, the Gateway `edge` (demo) and the VirtualServices bound to it."""
    web = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  serviceAccount: web
  labels: {app: web, security.istio.io/tlsMode: istio}
""" % {"ns": NS, "host": fqdn("web"), "port": t.web_port, "ip": WEB_IP}
    greeter = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %(port)d}}]
""" % {"ns": NS, "host": fqdn("greeter"), "port": t.greeter.port}
    passsvc = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pass, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %(port)d}}]
""" % {"ns": NS, "host": fqdn("pass"), "port": t.pass_port}
    gw = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: %(ns)s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %(http)d, name: http, protocol: HTTP}
    bind: %(ip)s
    hosts: [web.example.com, api.example.com, grpc.example.com]
  - port: {number: %(http)d, name: http-redirect, protocol: HTTP}
    bind: %(ip)s
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: %(https)d, name: https-a, protocol: HTTPS}
    bind: %(ip)s
    hosts: [a.example.com, secure.example.com, grpc.example.com]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: %(https)d, name: https-b, protocol: HTTPS}
    bind: %(ip)s
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: b-cred}
  - port: {number: %(https)d, name: https-mtls, protocol: HTTPS}
    bind: %(ip)s
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-cred}
  - port: {number: %(https)d, name: https-rot, protocol: HTTPS}
    bind: %(ip)s
    hosts: [rot.example.com]
    tls: {mode: SIMPLE, credentialName: rot-cred}
  - port: {number: %(pass)d, name: tls-pass, protocol: TLS}
    bind: %(ip)s
    hosts: [pass.example.com]
    tls: {mode: PASSTHROUGH}
""" % {"ns": NS, "ip": GW_IP, "http": t.http_port, "https": t.https_port, "pass": t.pass_gw_port}
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-web, namespace: %(ns)s}
spec:
  hosts: [web.example.com]
  gateways: [edge]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: %(api)s, port: {number: 8080}}}]
  - route: [{destination: {host: %(web)s, port: {number: %(webport)d}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-api, namespace: %(ns)s}
spec:
  hosts: [api.example.com, a.example.com, b.example.com, secure.example.com, mtls.example.com, rot.example.com]
  gateways: [%(ns)s/edge]
  http:
  - route: [{destination: {host: %(api)s, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-grpc, namespace: %(ns)s}
spec:
  hosts: [grpc.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: %(greeter)s, port: {number: 50051}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-pass, namespace: %(ns)s}
spec:
  hosts: [pass.example.com]
  gateways: [edge]
  tls:
  - match: [{port: %(passgw)d, sniHosts: [pass.example.com]}]
    route: [{destination: {host: %(pass)s, port: {number: 8443}}}]
""" % {"ns": NS, "api": fqdn("api"), "web": fqdn("web"), "webport": t.web_port, "greeter": fqdn("greeter"),
       "pass": fqdn("pass"), "passgw": t.pass_gw_port}
    c = t.certs
    return {
        "api.yaml": service_yaml("api", [t.api]),
        "web.yaml": web,
        "greeter.yaml": greeter,
        "pass.yaml": passsvc,
        "gateway.yaml": gw,
        "vs.yaml": vs,
        "a-cred.yaml": c.secret("a-cred", "a"),
        "b-cred.yaml": c.secret("b-cred", "b"),
        "mtls-cred.yaml": c.secret("mtls-cred", "mtls", ca="client-ca"),
        "rot-cred.yaml": c.secret("rot-cred", "rot1"),
    }


def seed_docs(http_port, https_port):
    """The seed documents' Gateway (003/02.yaml) and VirtualServices (03, 04) as
    written, with only the ports moved to loopback ones and a bind address
    added (a gateway on a shared machine cannot take 80 and 443)."""
    out = {}
    for n in ("02", "03", "04"):
        with open(os.path.join(SEED, "003", n + ".yaml"), encoding="utf-8", errors="replace") as f:
            text = f.read()
        if n == "02":
            text = re.sub(r"number: 80\b", "number: %d" % http_port, text)
            text = re.sub(r"number: 443\b", "number: %d" % https_port, text)
            text = text.replace("  - port:\n", "  - bind: %s\n    port:\n" % GW_IP)
        out["seed-%s.yaml" % n] = text
    return out


SEED_SERVICES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: order-service, namespace: a4co}
spec:
  hosts: [order-service.a4co.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 3004, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: order-service}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: order-1, namespace: a4co}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: order-service, version: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: order-service, namespace: a4co}
spec:
  host: order-service
  subsets: [{name: v1, labels: {version: v1}}]
"""


# ---------------------------------------------------------------- the gateway proxy

class GatewayProxy(Sidecar):
    """meshproxy as Istio's ingress gateway: node type router in istio-system,
    labels istio=ingressgateway, service account GW_SA, its workload
    certificate from meshd's CA with the token in token_file (xDS over TLS:
    Secrets are served there only), its admin port on ip."""

    def __init__(self, meshd, token_file, root, ip=GW_IP):
        self.ip = ip
        self.dir = tempfile.mkdtemp(prefix="meshproxy-gw-")
        self.node_id = "router~%s~istio-ingressgateway-1.%s~%s.svc.cluster.local" % (ip, GW_NS, GW_NS)
        self.admin_port = free_port()
        self.out_port = self.in_port = None
        self.alog = os.path.join(self.dir, "access.log")
        self.log_path = os.path.join(self.dir, "meshproxy.log")
        self.log = open(self.log_path, "w")
        wrapper = os.environ.get("MESHPROXY_WRAPPER", "").split()
        self.proc = subprocess.Popen(
            wrapper + [MESHPROXY,
                       "--xds-addr", "127.0.0.1:%d" % meshd.secure_port,
                       "--ca-addr", "127.0.0.1:%d" % meshd.secure_port, "--root-cert", root,
                       "--token-file", token_file, "--service-account", GW_SA,
                       "--node-id", self.node_id,
                       "--labels", "istio=ingressgateway,app=istio-ingressgateway",
                       "--admin-addr", "%s:%d" % (ip, self.admin_port),
                       "--status-addr", "", "--health-addr", "",
                       "--access-log", self.alog, "--log-level", "debug",
                       "--exit-on-zero-active-connections"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def admin(self, path):
        c = http.client.HTTPConnection(self.ip, self.admin_port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()


# ---------------------------------------------------------------- clients

class TlsResp:
    def __init__(self, status, headers, body, peer_der):
        self.status = status
        self.headers = headers
        self.body = body
        self.peer_der = peer_der

    def __repr__(self):
        return "TlsResp(%s, %r, %r)" % (self.status, self.headers, self.body[:200])


def tls_get(port, sni, path="/", cafile=None, cert=None, ip=GW_IP, timeout=10):
    """One HTTP/1.1 GET over TLS to ip:port with SNI and Host sni; the server's
    certificate (DER) comes back with the answer.  cafile verifies the server
    (None: not verified); cert is (crt, key) to present."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["http/1.1"])
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection((ip, port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=sni)
        der = s.getpeercert(binary_form=True)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, sni)).encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        body = r.read()
        s.close()
        return TlsResp(r.status, {k.lower(): v for k, v in r.getheaders()}, body, der)
    finally:
        raw.close()


class SniConnection(http.client.HTTPSConnection):
    """A keep-alive HTTPS connection to ip:port whose SNI and Host are the name."""

    def __init__(self, ip, port, name, cafile):
        super().__init__(name, port, timeout=10, context=ssl.create_default_context(cafile=cafile))
        self.ip = ip

    def connect(self):
        raw = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)

    def get(self, path):
        self.request("GET", path)
        r = self.getresponse()
        r.read()
        return r.status, self.sock.getpeercert(binary_form=True)


def curl(*args):
    """curl from outside the mesh: (status, headers, body)."""
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "-D", "-"] + list(args),
                         capture_output=True, timeout=30)
    head, _, body = out.stdout.decode("latin-1").partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return None, {"curl-exit": str(out.returncode), "stderr": out.stderr.decode(errors="replace")}, ""
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


class TlsBackend:
    """A TLS HTTP/1.1 server on 127.0.0.1 that answers `pass-backend` (the
    PASSTHROUGH destination): the client's handshake is with it."""

    def __init__(self, crt, key):
        import http.server

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                out = b"pass-backend"
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-backend", "pass")
                self.end_headers()
                self.wfile.write(out)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.server = Server(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the case

class MeshGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-gw-")
        cls.procs = {}
        cls.stoppable = []
        c = cls.certs = Certs(cls.tmp)
        c.ca("edge-ca")
        c.ca("client-ca")
        c.ca("backend-ca")
        c.leaf("a", "edge-ca", ["a.example.com", "secure.example.com", "grpc.example.com"])
        c.leaf("b", "edge-ca", ["b.example.com"])
        c.leaf("mtls", "edge-ca", ["mtls.example.com"])
        c.leaf("rot1", "edge-ca", ["rot.example.com"])
        c.leaf("rot2", "edge-ca", ["rot.example.com"])
        c.leaf("client", "client-ca", ["client.example.com"], usage="clientAuth")
        c.leaf("pass", "backend-ca", ["pass.example.com"])
        c.leaf("a4co", "edge-ca", ["*.a4co.local"])
        cls.edge_ca = c.path("edge-ca", "crt")

        # the web app listens on 127.0.0.1:P, its sidecar's inbound on WEB_IP:P;
        # the gateway's HTTP port is P too: without iptables a sidecar's
        # inbound port takes the application port from the Host's port
        # (DESIGN.md), and the gateway keeps the client's Host (web.example.com:P)
        cls.web_port = cls.http_port = pick_port(GW_IP, WEB_IP)
        cls.https_port = pick_port(GW_IP)
        cls.pass_gw_port = pick_port(GW_IP)
        cls.seed_http, cls.seed_https = pick_port(GW_IP), pick_port(GW_IP)
        cls.api = Backend("api")
        cls.web = Backend("web", port=cls.web_port)
        cls.order = Backend("order")
        cls.greeter = GrpcBackend("greeter")
        cls.passb = TlsBackend(c.path("pass", "crt"), c.path("pass", "key"))
        cls.pass_port = cls.passb.port
        cls.stoppable = [cls.api, cls.web, cls.order, cls.greeter, cls.passb]

        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("gateway-token %s %s\nweb-token %s web\n" % (GW_NS, GW_SA, NS))
        for name in ("gateway", "web"):
            with open(os.path.join(cls.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd(config(cls), extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.gw = cls.web_sidecar = None
        try:
            cls.meshd.start()
            root = os.path.join(ca_dir, "root-cert.pem")
            cls.web_sidecar = Sidecar(cls.meshd, "web-1", "app=web", ip=WEB_IP, args=[
                "--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", root,
                "--token-file", os.path.join(cls.tmp, "web.token"), "--service-account", "web",
                "--inbound-addr", "%s:%d" % (WEB_IP, cls.web_port)])
            cls.gw = GatewayProxy(cls.meshd, os.path.join(cls.tmp, "gateway.token"), root)
            cls.web_sidecar.wait_ready()
            cls.gw.wait_ready()
            # the gateway binds its server ports once its listeners are applied
            wait_for(lambda: curl("--resolve", "api.example.com:%d:%s" % (cls.http_port, GW_IP),
                                  "http://api.example.com:%d/ready" % cls.http_port)[0] == 200,
                     timeout=120 if slow() else 30, what="the gateway serving api.example.com")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in (("gateway", cls.gw), ("web", cls.web_sidecar)):
            if s is None:
                continue
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(*cls.stoppable)
        for s in (cls.gw, cls.web_sidecar):
            if s is not None:
                s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def resolve(self, host, port):
        return ["--resolve", "%s:%d:%s" % (host, port, GW_IP)]

    def http(self, host, path="/", *args):
        return curl(*(self.resolve(host, self.http_port) + list(args)
                      + ["http://%s:%d%s" % (host, self.http_port, path)]))

    def https(self, host, path="/", *args):
        return curl(*(self.resolve(host, self.https_port) + ["--cacert", self.edge_ca] + list(args)
                      + ["https://%s:%d%s" % (host, self.https_port, path)]))

    # ------------------------------------------------------------ HTTP

    def test_http_routing_by_host_and_path(self):
        status, h, body = self.http("web.example.com", "/hello")
        self.assertEqual((status, h.get("x-backend")), (200, "web"), (h, body))
        # through the web sidecar over mTLS: the app sees the gateway's identity
        _, path, hdrs, _ = self.web.last()
        self.assertEqual(path, "/hello")
        self.assertIn("URI=" + GW_ID, hdrs.get("x-forwarded-client-cert", ""))
        status, h, _ = self.http("web.example.com", "/api/x")
        self.assertEqual((status, h.get("x-backend")), (200, "api"))
        self.assertEqual(self.api.last()[1], "/api/x")
        status, h, _ = self.http("api.example.com", "/other")
        self.assertEqual((status, h.get("x-backend")), (200, "api"))
        # Host is kept; the gateway says who the client was
        hdrs = self.api.last()[2]
        self.assertEqual(hdrs.get("host"), "api.example.com:%d" % self.http_port)
        self.assertIn("127.0.0.1", hdrs.get("x-forwarded-for", ""))
        self.assertEqual(hdrs.get("x-forwarded-proto"), "http")
        # a host no server of the port names
        status, _, _ = self.http("nobody.example.com", "/")
        self.assertEqual(status, 404)

    def test_https_redirect(self):
        n = self.api.count()
        status, h, _ = self.http("secure.example.com", "/login?x=1")
        self.assertEqual(status, 301, h)
        self.assertTrue(h.get("location", "").startswith("https://secure.example.com"), h)
        self.assertTrue(h["location"].endswith("/login?x=1"), h)
        self.assertEqual(self.api.count(), n)  # never forwarded
        # the same host over TLS is served
        status, h, _ = self.https("secure.example.com", "/login")
        self.assertEqual((status, h.get("x-backend")), (200, "api"), h)

    # ------------------------------------------------------------ TLS

    def test_simple_tls_two_certificates_by_sni(self):
        for host, cert in (("a.example.com", "a"), ("b.example.com", "b")):
            r = tls_get(self.https_port, host, "/sni", cafile=self.edge_ca)
            self.assertEqual((r.status, r.headers.get("x-backend")), (200, "api"), r)
            self.assertEqual(r.peer_der, self.certs.der(cert), host)
            self.assertEqual(self.api.last()[2].get("x-forwarded-proto"), "https")
        # curl, verifying each host's certificate with the edge CA
        for host in ("a.example.com", "b.example.com"):
            status, h, _ = self.https(host, "/curl")
            self.assertEqual((status, h.get("x-backend")), (200, "api"), h)
        # HTTP/2 to the client after termination (ALPN h2), HTTP/1.1 when asked
        for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "10",
                                  "-w", "%{http_version} %{http_code}", flag, "--cacert", self.edge_ca] + self.resolve("a.example.com", self.https_port)
                                 + ["https://a.example.com:%d/h2" % self.https_port],
                                 capture_output=True, text=True, timeout=30).stdout
            self.assertEqual(out, "%s 200" % version)

    def test_mutual_tls(self):
        # without a client certificate: the handshake (or the first read) fails
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
            tls_get(self.https_port, "mtls.example.com", "/nocert", cafile=self.edge_ca)
        status, h, _ = self.https("mtls.example.com", "/nocert")
        self.assertIsNone(status, h)
        n = self.api.count()
        # a certificate from the client CA is accepted
        r = tls_get(self.https_port, "mtls.example.com", "/cert", cafile=self.edge_ca,
                    cert=(self.certs.path("client", "crt"), self.certs.path("client", "key")))
        self.assertEqual((r.status, r.headers.get("x-backend")), (200, "api"), r)
        self.assertEqual(r.peer_der, self.certs.der("mtls"))
        self.assertEqual(self.api.count(), n + 1)
        # one from another CA is not
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
            tls_get(self.https_port, "mtls.example.com", "/wrongca", cafile=self.edge_ca,
                    cert=(self.certs.path("pass", "crt"), self.certs.path("pass", "key")))

    def test_passthrough(self):
        r = tls_get(self.pass_gw_port, "pass.example.com", "/through", cafile=self.certs.path("backend-ca", "crt"))
        self.assertEqual((r.status, r.body), (200, b"pass-backend"), r)
        # the handshake was the backend's: its certificate, not one of the gateway's
        self.assertEqual(r.peer_der, self.certs.der("pass"))
        # a name no PASSTHROUGH server takes is not forwarded
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
            tls_get(self.pass_gw_port, "other.example.com", "/", timeout=5)

    def test_secret_rotation_under_calls(self):
        results = []
        stop = threading.Event()

        def caller():
            while not stop.is_set():
                try:
                    r = tls_get(self.https_port, "rot.example.com", "/rot", cafile=self.edge_ca)
                    results.append((r.status, r.peer_der))
                except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                    results.append((repr(e), None))

        old, new = self.certs.der("rot1"), self.certs.der("rot2")
        # a connection open across the rotation keeps its certificate and goes on
        held = SniConnection(GW_IP, self.https_port, "rot.example.com", self.edge_ca)
        t = threading.Thread(target=caller, daemon=True)
        t.start()
        try:
            self.assertEqual(held.get("/held/1"), (200, old))
            sock = held.sock
            wait_for(lambda: len(results) >= 5, timeout=30, what="calls before the rotation")
            self.meshd.write("rot-cred.yaml", self.certs.secret("rot-cred", "rot2"))
            wait_for(lambda: any(d == new for _, d in results[-3:]), timeout=60 if slow() else 20,
                     what="the new certificate served")
            k = len(results)
            wait_for(lambda: len(results) >= k + 5, timeout=30, what="calls after the rotation")
            self.assertEqual(held.get("/held/2"), (200, old))
            self.assertIs(held.sock, sock)  # the same connection, not a new one
        finally:
            stop.set()
            t.join(30)
            held.close()
        failed = [r for r in results if r[0] != 200]
        self.assertEqual(failed, [], "%d of %d calls failed" % (len(failed), len(results)))
        self.assertEqual(results[0][1], old)
        seen = [d for _, d in results]
        first_new = seen.index(new)
        # once the new certificate is served, new handshakes never get the old one
        self.assertNotIn(old, seen[first_new + 1:])

    # ------------------------------------------------------------ gRPC

    def test_grpc_through_the_gateway(self):
        with open(self.edge_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel("%s:%d" % (GW_IP, self.https_port), creds,
                                 options=[("grpc.ssl_target_name_override", "grpc.example.com"),
                                          ("grpc.default_authority", "grpc.example.com")])
        try:
            stub = ch.unary_unary(METHOD)
            for _ in range(3):
                self.assertEqual(stub(b"hi", timeout=10), b"greeter")
        finally:
            ch.close()
        # and as h2c (prior knowledge) on the plain HTTP port
        ch = grpc.insecure_channel("%s:%d" % (GW_IP, self.http_port),
                                   options=[("grpc.default_authority", "grpc.example.com")])
        try:
            self.assertEqual(ch.unary_unary(METHOD)(b"hi", timeout=10), b"greeter")
        finally:
            ch.close()

    # ------------------------------------------------------------ the seed documents

    def test_seed_documents_validate_and_route(self):
        docs = seed_docs(self.seed_http, self.seed_https)
        d = tempfile.mkdtemp(prefix="seed-gw-", dir=self.tmp)
        for name, text in docs.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        r = subprocess.run([MESHCTL, "validate", "-f", d], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 rejected", r.stdout + r.stderr)
        self.assertNotIn("Gateway is validated and listed, but no proxy receives it", r.stdout + r.stderr)
        # served: the seed's Gateway takes its (moved) ports on the gateway
        files = dict(docs)
        files["seed-services.yaml"] = SEED_SERVICES % self.order.port
        # in the gateway's namespace, where Istio looks for credentialName
        files["seed-cert.yaml"] = self.certs.secret("a4co-tls-cert", "a4co")
        for name, text in files.items():
            self.meshd.write(name, text)
        try:
            def routed():
                status, h, _ = curl("--resolve", "order.a4co.local:%d:%s" % (self.seed_http, GW_IP),
                                    "http://order.a4co.local:%d/orders/1" % self.seed_http)
                return status == 200 and h.get("x-backend") == "order"
            wait_for(routed, timeout=60 if slow() else 20, what="order.a4co.local/orders through the seed Gateway")
            self.assertEqual(self.order.last()[1], "/orders/1")
            status, h, _ = curl("--resolve", "order.a4co.local:%d:%s" % (self.seed_https, GW_IP),
                                "--cacert", self.edge_ca, "https://order.a4co.local:%d/orders/2" % self.seed_https)
            self.assertEqual((status, h.get("x-backend")), (200, "order"), h)
            # payment-service is bound to the mesh only: not on the gateway
            status, _, _ = curl("--resolve", "payment.a4co.local:%d:%s" % (self.seed_http, GW_IP),
                                "http://payment.a4co.local:%d/payments" % self.seed_http)
            self.assertEqual(status, 404)
        finally:
            for name in files:
                self.meshd.remove(name)


class ExampleGatewayTest(unittest.TestCase):
    """README "Ingress gateway": what `make run` serves (examples/gateway-certs.sh
    making the certificate, the Secret and the token into a directory that
    links examples/) and the gateway command the README gives, on the
    example's ports moved to free ones in a copy of examples/ (so neither a
    `make run` gateway holding 18000/18443 nor a parallel test collides;
    meshd's ports are free ones too).  No backend runs
    (examples/run.sh's would take fixed ports other tests use): the redirect
    is the gateway's own answer, and over TLS the certificate is checked with
    the generated CA while the missing backend answers 503."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mesh-gw-example-")
        self.meshd = self.gw = None
        # examples/ as it is, but for the gateway's two ports (18000, 18443)
        self.examples = os.path.join(self.tmp, "examples")
        shutil.copytree(os.path.join(ROOT, "examples"), self.examples, symlinks=True)
        self.HTTP, self.HTTPS = free_port(), free_port()
        path = os.path.join(self.examples, "gateway.yaml")
        with open(path) as f:
            text = f.read()
        self.assertIn("number: 18000", text)
        self.assertIn("number: 18443", text)
        with open(path, "w") as f:
            f.write(text.replace("number: 18000", "number: %d" % self.HTTP)
                    .replace("number: 18443", "number: %d" % self.HTTPS))
        out = os.path.join(self.tmp, "run-gateway")
        r = subprocess.run(["sh", os.path.join(ROOT, "examples", "gateway-certs.sh"), out,
                            self.examples], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.out = out

    def tearDown(self):
        rc = self.gw.stop() if self.gw else 0
        logs = self.gw.logs() if self.gw else ""
        if self.meshd:
            self.meshd.stop()
            self.meshd.cleanup()
        if self.gw:
            self.gw.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, logs)

    def test_make_run_gateway(self):
        # what `make run` gives meshd: the linked examples/ and the Secret beside them
        r = subprocess.run([MESHCTL, "validate", "-f", os.path.join(self.out, "config")], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 rejected", r.stdout + r.stderr)
        self.assertIn("kubernetes.io/tls", open(os.path.join(self.out, "config", "web-example-tls.yaml")).read())
        ca = os.path.join(self.out, "ca.crt")
        self.assertEqual(subprocess.run(["openssl", "verify", "-CAfile", ca,
                                         os.path.join(self.out, "web.example.com.crt")],
                                        capture_output=True, timeout=30).returncode, 0)
        # a second run keeps the certificate (a client's --cacert stays good)
        with open(ca) as f:
            before = f.read()
        subprocess.run(["sh", os.path.join(ROOT, "examples", "gateway-certs.sh"), self.out,
                        self.examples], check=True, timeout=60)
        with open(ca) as f:
            self.assertEqual(f.read(), before)

        # meshd as the Makefile's run target starts it (ports moved), then the README's gateway
        self.meshd = Meshd(extra_args=["--ca-dir", os.path.join(self.tmp, "ca"),
                                       "--ca-token-file", os.path.join(self.out, "tokens")])
        os.rmdir(self.meshd.config_dir)
        os.symlink(os.path.join(self.out, "config"), self.meshd.config_dir)
        self.meshd.start()
        # the README's command (its admin port moved)
        self.gw = GatewayProxy(self.meshd, os.path.join(self.out, "gateway.token"),
                               os.path.join(self.tmp, "ca", "root-cert.pem"), ip="127.0.0.1")
        self.gw.wait_ready()

        def redirect():
            status, h, _ = curl("--resolve", "web.example.com:%d:127.0.0.1" % self.HTTP,
                                "http://web.example.com:%d/hello" % self.HTTP)
            return (status, h.get("location"))
        self.assertEqual(wait_for(lambda: redirect()[0] == 301 and redirect(), timeout=30, what="the example's 301"),
                         (301, "https://web.example.com:%d/hello" % self.HTTP))
        # the certificate make run generated, verified with its CA: the
        # handshake succeeds and the (absent) backend is the gateway's 503
        status, h, _ = curl("--resolve", "web.example.com:%d:127.0.0.1" % self.HTTPS, "--cacert", ca,
                            "https://web.example.com:%d/hello" % self.HTTPS)
        self.assertEqual(status, 503, h)


if __name__ == "__main__":
    unittest.main()
