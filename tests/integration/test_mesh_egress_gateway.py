"""The egress-gateway pattern end to end (issue 13), as Istio's task "Egress
Gateways" writes it: a ServiceEntry for an external host (`resolution: DNS`),
a Gateway `istio-egressgateway` (selector istio=egressgateway) for that host,
a DestinationRule for the egress gateway's service with a subset, and one
VirtualService bound to `[istio-egressgateway, mesh]` that sends the mesh's
traffic (match gateways [mesh]) to the egress gateway and the gateway's
traffic (match gateways [istio-egressgateway]) to the external host.

  client --> sidecar outbound --> egress gateway 127.0.0.41:G --> "external" server
             (absolute-form)      (router node, istio-system)     (host name `localhost`)

Three variants, each with its own external host so all live in one meshd:
  - HTTP: the gateway server is plain HTTP on port G;
  - ISTIO_MUTUAL: the gateway server on port T takes ISTIO_MUTUAL, the
    DestinationRule for the egress gateway's subset originates ISTIO_MUTUAL
    with `sni: HOST`; the sidecar and the gateway get their workload
    certificates from meshd's CA;
  - PASSTHROUGH (Istio's "HTTPS traffic" variant): the client's own TLS
    with SNI tls.egress.test goes to a second sidecar (captureMode NONE, so
    its TLS port binds 127.0.0.1), whose listener of that port is shared
    by the external host and the egress gateway's service, neither with a
    VIP, told apart by SNI; the gateway passes it by SNI to the external
    TLS server, whose certificate the client verifies.
The external server must see the request come from the egress gateway: the
gateway's access log has it, its cluster to the external host counted it,
and the sidecar's cluster to the egress gateway counted it (not a cluster
to the external host).  With outboundTrafficPolicy REGISTRY_ONLY a host no
ServiceEntry names is 502 at the sidecar.

Nothing asserts on timing; every wait is bounded.  The file takes about 2 s here.
"""
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from meshhttp import MESHPROXY, NS, Backend, Sidecar, slow
from meshtest import Meshd, free_port, wait_for
from test_mesh_gateway import Certs, TlsBackend, tls_get

GW_IP = "127.0.0.41"
GW_NS = "istio-system"
GW_SA = "istio-egressgateway"
GW_SVC = "istio-egressgateway.istio-system.svc.cluster.local"
EXT = "ext.egress.test"      # the HTTP variant's external host
SECURE = "secure.egress.test"  # the ISTIO_MUTUAL variant's external host
PASS = "tls.egress.test"  # the PASSTHROUGH variant's external host (TLS end to end)
MESH = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"


def config(t):
    """The documents of Istio's egress-gateway task, ports adapted to loopback."""
    d = {"ns": NS, "gwns": GW_NS, "gwsvc": GW_SVC, "ip": GW_IP, "sa": GW_SA,
         "ext": EXT, "secure": SECURE, "eport": t.ext.port, "sport": t.sec.port,
         "g": t.gw_http, "t": t.gw_mtls, "pass": PASS, "p": t.gw_pass, "q": t.passb.port}
    docs = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: istio-egressgateway, namespace: %(gwns)s}
spec:
  hosts: [%(gwsvc)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(g)d, name: http2, protocol: HTTP2}
  - {number: %(t)d, name: https, protocol: HTTPS}
  - {number: %(p)d, name: tls, protocol: TLS}
  workloadSelector: {labels: {istio: egressgateway}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: istio-egressgateway-1, namespace: %(gwns)s}
spec:
  address: %(ip)s
  serviceAccount: %(sa)s
  labels: {istio: egressgateway, app: istio-egressgateway}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: %(ns)s}
spec:
  hosts: [%(ext)s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: %(eport)d, name: http-port, protocol: HTTP}]
  endpoints: [{address: localhost}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: %(ns)s}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %(g)d, name: http, protocol: HTTP}
    bind: %(ip)s
    hosts: [%(ext)s]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-ext-through-egress-gateway, namespace: %(ns)s}
spec:
  hosts: [%(ext)s]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: %(eport)d}]
    route:
    - destination: {host: %(gwsvc)s, subset: ext, port: {number: %(g)d}}
  - match: [{gateways: [istio-egressgateway], port: %(g)d}]
    route:
    - destination: {host: %(ext)s, port: {number: %(eport)d}}
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: %(ns)s}
spec:
  hosts: [%(secure)s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: %(sport)d, name: http-port, protocol: HTTP}]
  endpoints: [{address: localhost}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway-mtls, namespace: %(ns)s}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %(t)d, name: https, protocol: HTTPS}
    bind: %(ip)s
    hosts: [%(secure)s]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway, namespace: %(ns)s}
spec:
  host: %(gwsvc)s
  subsets:
  - name: ext
  - name: secure
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      portLevelSettings:
      - port: {number: %(t)d}
        tls: {mode: ISTIO_MUTUAL, sni: %(secure)s}
  - name: pass
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-secure-through-egress-gateway, namespace: %(ns)s}
spec:
  hosts: [%(secure)s]
  gateways: [istio-egressgateway-mtls, mesh]
  http:
  - match: [{gateways: [mesh], port: %(sport)d}]
    route:
    - destination: {host: %(gwsvc)s, subset: secure, port: {number: %(t)d}}
  - match: [{gateways: [istio-egressgateway-mtls], port: %(t)d}]
    route:
    - destination: {host: %(secure)s, port: {number: %(sport)d}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: %(ns)s}
spec:
  hosts: [%(pass)s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: %(p)d, name: tls, protocol: TLS}]
  endpoints: [{address: localhost, ports: {tls: %(q)d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway-pass, namespace: %(ns)s}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %(p)d, name: tls, protocol: TLS}
    bind: %(ip)s
    hosts: [%(pass)s]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-tls-through-egress-gateway, namespace: %(ns)s}
spec:
  hosts: [%(pass)s]
  gateways: [mesh, istio-egressgateway-pass]
  tls:
  - match: [{gateways: [mesh], port: %(p)d, sniHosts: [%(pass)s]}]
    route:
    - destination: {host: %(gwsvc)s, subset: pass, port: {number: %(p)d}}
  - match: [{gateways: [istio-egressgateway-pass], port: %(p)d, sniHosts: [%(pass)s]}]
    route:
    - destination: {host: %(pass)s, port: {number: %(p)d}}
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: tlsc, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: tlsc}
  egress:
  - port: {number: %(p)d, protocol: TLS, name: tls}
    hosts: ["%(ns)s/%(pass)s", "%(gwns)s/%(gwsvc)s"]
    captureMode: NONE
  - hosts: ["%(gwns)s/%(gwsvc)s"]
""" % d
    return {"egress.yaml": docs, "mesh.yaml": MESH}


class EgressGatewayProxy(Sidecar):
    """meshproxy as Istio's egress gateway: node type router in istio-system,
    labels istio=egressgateway, its workload certificate from meshd's CA."""

    def __init__(self, meshd, token_file, root, ip=GW_IP):
        self.ip = ip
        self.dir = tempfile.mkdtemp(prefix="meshproxy-egw-")
        self.node_id = "router~%s~istio-egressgateway-1.%s~%s.svc.cluster.local" % (ip, GW_NS, GW_NS)
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
                       "--labels", "istio=egressgateway,app=istio-egressgateway",
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


def pick_port(ip):
    """A port free on 127.0.0.1 and on ip."""
    import socket
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((ip, p))
            return p
        except OSError:
            pass
        finally:
            s.close()
    raise AssertionError("no port free on %s" % ip)


def prom(px, cluster, metric="envoy_cluster_upstream_rq_total"):
    """metric of cluster at px (0 when absent)."""
    body = px.admin("/stats/prometheus")[1]
    m = re.search(r'^%s\{cluster_name="%s"\} (\d+)$' % (re.escape(metric), re.escape(cluster)), body, re.M)
    return int(m.group(1)) if m else 0


class MeshEgressGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-egw-")
        # as in Istio's task, the external host's port is the egress
        # gateway's HTTP port (80 there): the server on 127.0.0.1:G, the
        # gateway on 127.0.0.41:G
        cls.gw_http, cls.gw_mtls, cls.gw_pass = pick_port(GW_IP), pick_port(GW_IP), pick_port(GW_IP)
        cls.ext = Backend("ext", port=cls.gw_http)
        cls.sec = Backend("secure")
        c = cls.certs = Certs(cls.tmp)
        c.ca("ext-ca")
        c.leaf("tls", "ext-ca", [PASS])
        cls.passb = TlsBackend(c.path("tls", "crt"), c.path("tls", "key"))
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("gateway-token %s %s\nclient-token %s client\n" % (GW_NS, GW_SA, NS))
        for name in ("gateway", "client"):
            with open(os.path.join(cls.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        ca_dir = os.path.join(cls.tmp, "ca")
        files = config(cls)
        cls.meshd = Meshd({"egress.yaml": files["egress.yaml"]},
                          extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens,
                                      "--mesh-config", os.path.join(cls.tmp, "mesh.yaml")])
        with open(os.path.join(cls.tmp, "mesh.yaml"), "w") as f:
            f.write(files["mesh.yaml"])
        cls.gw = cls.px = cls.tlsc = None
        try:
            cls.meshd.start()
            root = os.path.join(ca_dir, "root-cert.pem")
            cls.px = Sidecar(cls.meshd, "client", "app=client", args=[
                "--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", root,
                "--token-file", os.path.join(cls.tmp, "client.token"), "--service-account", "client"])
            # the PASSTHROUGH variant's client: captureMode NONE (its Sidecar
            # resource), so its listener of the TLS port binds 127.0.0.1
            cls.tlsc = Sidecar(cls.meshd, "tlsc", "app=tlsc")
            cls.gw = EgressGatewayProxy(cls.meshd, os.path.join(cls.tmp, "gateway.token"), root)
            cls.px.wait_ready()
            cls.gw.wait_ready()
            cls.tlsc.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in (("gateway", cls.gw), ("client", cls.px), ("tlsc", cls.tlsc)):
            if s is None:
                continue
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(cls.ext, cls.sec, cls.passb)
        for s in (cls.gw, cls.px, cls.tlsc):
            if s is not None:
                s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def through(self, host, port, backend, gw_port, what):
        """A request from the client's sidecar to host:port reaches backend
        through the egress gateway's port gw_port."""
        url = "http://%s:%d/egress" % (host, port)
        ext_cluster = "outbound|%d||%s" % (port, host)
        before = backend.count()

        def served():
            r = self.px.request(url)
            return r if r.status == 200 and r.backend == backend.name else None
        r = wait_for(served, timeout=120 if slow() else 30,
                     what="%s through the egress gateway (sidecar log:\n%s\ngateway log:\n%s)"
                     % (what, self.px.logs()[-3000:], self.gw.logs()[-3000:]))
        self.assertGreater(backend.count(), before)
        self.assertEqual(r.json()["path"], "/egress")
        # the sidecar sent it to the egress gateway's subset, not to the host
        subset = "ext" if host == EXT else "secure"
        self.assertGreater(prom(self.px, "outbound|%d|%s|%s" % (gw_port, subset, GW_SVC)), 0)
        self.assertEqual(prom(self.px, ext_cluster), 0)
        # the gateway sent it to the external host, which saw the gateway's node
        self.assertGreater(prom(self.gw, ext_cluster), 0)
        self.assertTrue(r.json()["headers"].get("x-envoy-peer-metadata-id", "").startswith("router~%s~" % GW_IP),
                        r.json()["headers"])
        rid = r.json()["headers"]["x-request-id"]
        # both access logs have the request: the sidecar's upstream is the
        # gateway, the gateway's is the external server
        wait_for(lambda: any(rid in line and '"%s:%d"' % (GW_IP, gw_port) in line for line in self.px.access_log()),
                 what="the sidecar's access log line (%s)" % self.px.access_log()[-3:])
        wait_for(lambda: any(rid in line and '"127.0.0.1:%d"' % port in line for line in self.gw.access_log()),
                 what="the gateway's access log line (%s)" % self.gw.access_log()[-3:])
        return r

    def test_http_through_egress_gateway(self):
        r = self.through(EXT, self.ext.port, self.ext, self.gw_http, "HTTP")
        self.assertEqual(r.json()["headers"]["host"], "%s:%d" % (EXT, self.ext.port))
        self.assertEqual(r.json()["headers"].get("x-forwarded-proto"), "http", r.json()["headers"])

    def test_istio_mutual_to_egress_gateway(self):
        r = self.through(SECURE, self.sec.port, self.sec, self.gw_mtls, "ISTIO_MUTUAL")
        # the gateway terminated TLS (its X-Forwarded-Proto says so); the
        # sidecar's cluster to the subset originates ISTIO_MUTUAL with the DR's SNI
        self.assertEqual(r.json()["headers"].get("x-forwarded-proto"), "https", r.json()["headers"])
        dump = self.px.admin("/config_dump")[1]
        self.assertIn('"sni": "%s"' % SECURE, dump.replace('"sni":"', '"sni": "'))

    def test_tls_passthrough_through_egress_gateway(self):
        """The client's TLS (SNI tls.egress.test) goes through its sidecar's
        shared TLS port (told apart by SNI) to the egress gateway, which
        passes it by SNI to the external server: the client verifies the
        external server's certificate, the proxies never terminate it."""
        port = self.gw_pass
        ca = self.certs.path("ext-ca", "crt")

        def served():
            try:
                r = tls_get(port, PASS, "/pass", cafile=ca, ip="127.0.0.1")
            except OSError:
                return None
            return r if r.status == 200 else None
        r = wait_for(served, timeout=120 if slow() else 30,
                     what="TLS through the egress gateway (sidecar log:\n%s\ngateway log:\n%s)"
                     % (self.tlsc.logs()[-3000:], self.gw.logs()[-3000:]))
        self.assertEqual((r.body, r.headers.get("x-backend")), (b"pass-backend", "pass"))
        self.assertEqual(r.peer_der, self.certs.der("tls"))
        cx = "envoy_cluster_upstream_cx_total"
        self.assertGreater(prom(self.tlsc, "outbound|%d|pass|%s" % (port, GW_SVC), cx), 0)
        self.assertEqual(prom(self.tlsc, "outbound|%d||%s" % (port, PASS), cx), 0)
        self.assertGreater(prom(self.gw, "outbound|%d||%s" % (port, PASS), cx), 0)
        # an SNI the sidecar's chains do not name takes the passthrough
        # chain (REGISTRY_ONLY: BlackHoleCluster), never the gateway
        before = prom(self.tlsc, "outbound|%d|pass|%s" % (port, GW_SVC), cx)
        with self.assertRaises((OSError, http.client.HTTPException)):
            tls_get(port, "other.egress.test", "/", cafile=ca, ip="127.0.0.1", timeout=5)
        self.assertEqual(prom(self.tlsc, "outbound|%d|pass|%s" % (port, GW_SVC), cx), before)

    def test_registry_only_unknown_host(self):
        r = self.px.request("http://unknown.egress.test:%d/" % self.ext.port)
        self.assertEqual(r.status, 502)


if __name__ == "__main__":
    unittest.main()
