"""A gateway (node type router) is served by the real meshd: a raw ADS
client over Debian's python3-grpcio with a "router~..." node id and the
labels istio=ingressgateway follows LDS -> RDS -> CDS -> EDS as Envoy does
and ACKs every response; meshd answers with istiod's gateway shapes (a
listener per Gateway server port, route configs http.PORT and
https.PORT.PORTNAME.GATEWAY.NS, the outbound clusters and BlackHoleCluster,
no sidecar listeners), /debug/syncz shows the stream as flavour "router"
SYNCED, and a Gateway edit (a new server) is pushed as a new listener.

The end-to-end gateway (meshproxy routing traffic) is test_mesh_gateway.py's.
The wire helpers are test_sidecar_xds.py's.
"""
import unittest

from meshtest import Meshd, wait_for
from test_sidecar_xds import CDS, EDS, LDS, RDS, Response, Stream, eds_names, field, parse, rds_names, struct

NODE_ID = "router~127.0.0.1~ingress-7d9f.istio-system~istio-system.svc.cluster.local"

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: demo}
spec:
  hosts: [web.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
"""

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [web.example.com]
    tls: {mode: SIMPLE, credentialName: web-cert}
%s---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: demo}
spec:
  hosts: [web.example.com]
  gateways: [istio-system/ingress]
  http:
  - route: [{destination: {host: web.demo.svc.cluster.local}}]
"""

EXTRA_SERVER = """  - port: {number: 9090, name: http-extra, protocol: HTTP}
    hosts: ["*"]
"""


def node():
    meta = struct({"NAMESPACE": "istio-system", "SERVICE_ACCOUNT": "istio-ingressgateway",
                   "LABELS": {"istio": "ingressgateway", "app": "istio-ingressgateway"}})
    return field(1, NODE_ID) + field(2, "istio-system") + field(3, meta)


def request(type_url, names=(), version="", nonce="", with_node=False):
    out = field(1, version) if version else b""
    if with_node:
        out += field(2, node())
    for n in names:
        out += field(3, n)
    out += field(4, type_url)
    if nonce:
        out += field(5, nonce)
    return out


def sni_names(listeners):
    """filter_chain_match (1).server_names (11) of every chain (3) of every listener."""
    out = set()
    for raw in listeners:
        for chain in parse(raw).get(3, []):
            for fcm in parse(chain).get(1, []):
                out.update(n.decode() for n in parse(fcm).get(11, []))
    return out


class RouterXdsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd({"svc.yaml": SERVICES, "gw.yaml": GATEWAY % ""}).start()
        cls.s = Stream(cls.meshd.xds_port)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()
        cls.meshd.finish()

    def ack(self, r, names=()):
        self.s.send(request(r.type_url, names, r.version, r.nonce))

    def test_01_lds_rds_cds_eds_acked(self):
        s = self.s
        s.send(request(LDS, with_node=True))
        lds = s.recv(LDS)
        self.assertEqual(sorted(lds.names()), ["0.0.0.0_8080", "0.0.0.0_8443"])
        self.assertEqual(sni_names(lds.resources), {"web.example.com"})
        self.assertIn(b"kubernetes://web-cert", b"".join(lds.resources))
        routes = sorted(rds_names(lds.resources))
        self.assertEqual(routes, ["http.8080", "https.8443.https.ingress.istio-system"])
        self.ack(lds)

        s.send(request(RDS, routes))
        rds = s.recv(RDS)
        self.assertEqual(sorted(rds.names()), routes)
        for raw in rds.resources:
            domains = [parse(vh).get(2, [b""])[0].decode() for vh in parse(raw).get(2, [])]
            self.assertEqual(domains, ["web.example.com"])
            self.assertIn(b"outbound|8000||web.demo.svc.cluster.local", raw)
        self.ack(rds, routes)

        s.send(request(CDS))
        cds = s.recv(CDS)
        cnames = sorted(cds.names())
        self.assertEqual(cnames, ["BlackHoleCluster", "outbound|8000||web.demo.svc.cluster.local"])
        eds = sorted(eds_names(cds.resources))
        self.assertEqual(eds, ["outbound|8000||web.demo.svc.cluster.local"])
        self.ack(cds)

        s.send(request(EDS, eds))
        ep = s.recv(EDS)
        self.assertEqual(sorted(ep.names()), eds)
        self.ack(ep, eds)
        self.__class__.routes, self.__class__.eds = routes, eds

        def synced():
            streams = [x for x in self.meshd.json("/debug/syncz") if x["proxy"] == NODE_ID]
            if not streams or streams[0]["flavour"] != "router":
                return False
            types = streams[0]["types"]
            return all(types.get(t, {}).get("state") == "SYNCED" for t in ("lds", "rds", "cds", "eds"))
        wait_for(synced, what="the router SYNCED in /debug/syncz")
        # Gateway is compiled now: no "not implemented" note for it
        self.assertNotIn("not implemented yet: Gateway", self.meshd.logs())

    def test_02_gateway_edit_pushes_listener(self):
        s = self.s
        self.meshd.write("gw.yaml", GATEWAY % EXTRA_SERVER)
        for _ in range(10):  # other types may be pushed too: ACK them as Envoy does
            r = Response(next(s.calls))
            if r.type_url == LDS and "0.0.0.0_9090" in r.names():
                self.assertIn("http.9090", rds_names(r.resources))
                self.ack(r)
                break
            self.ack(r, self.routes if r.type_url == RDS else self.eds if r.type_url == EDS else ())
        else:
            self.fail("no listener 0.0.0.0_9090 pushed after the Gateway edit")


if __name__ == "__main__":
    unittest.main()
