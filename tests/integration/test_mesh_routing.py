"""Routing end to end: the real meshd (sidecar flavour) drives real
meshproxy sidecars; Python http.client and curl send requests through a
sidecar's outbound port (absolute-form, as http_proxy does) to HTTP backends
on 127.0.0.x.  A VirtualService routes by host, header (exact, prefix,
regex), URI (prefix, exact, regex), query parameter, port and the caller's
labels (two sidecars with different labels), and splits 90/10 by weight.

Nothing here asserts on timing; request counts are bounded.
"""
import unittest

from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml, tally

VS = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: %(ns)s}
spec:
  host: %(web)s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(web)s]
  http:
  - name: canary-header
    match:
    - headers: {x-canary: {exact: "true"}}
    - headers: {x-user: {prefix: beta-}}
    - headers: {x-id: {regex: "[0-9]+"}}
    route: [{destination: {host: %(web)s, subset: v2}}]
  - name: by-uri
    match:
    - uri: {prefix: /v2/}
    - uri: {exact: /exact}
    - uri: {regex: "/re/[a-z]+"}
    - queryParams: {ver: {exact: two}}
    route: [{destination: {host: %(web)s, subset: v2}}]
  - name: by-port
    match:
    - {uri: {prefix: /portmatch}, port: %(port)d}
    - {uri: {prefix: /portmiss}, port: 9999}
    route: [{destination: {host: %(web)s, subset: v2}}]
  - name: by-caller
    match:
    - {uri: {prefix: /src}, sourceLabels: {app: canary}}
    route: [{destination: {host: %(web)s, subset: v2}}]
  - name: default
    route: [{destination: {host: %(web)s, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: split, namespace: %(ns)s}
spec:
  host: %(split)s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split, namespace: %(ns)s}
spec:
  hosts: [%(split)s]
  http:
  - route:
    - {destination: {host: %(split)s, subset: v1}, weight: 90}
    - {destination: {host: %(split)s, subset: v2}, weight: 10}
"""


class MeshRoutingTest(MeshCase):
    SIDECARS = {"client": ("client", "app=client"), "canary": ("canary", "app=canary")}

    @classmethod
    def backends(cls):
        return {
            "web-v1": Backend("web-v1", "127.0.0.2", "v1"),
            "web-v2": Backend("web-v2", "127.0.0.3", "v2"),
            "api": Backend("api", "127.0.0.4", "v1"),
            "split-v1": Backend("split-v1", "127.0.0.5", "v1"),
            "split-v2": Backend("split-v2", "127.0.0.6", "v2"),
        }

    @classmethod
    def config(cls, b):
        return {
            "web.yaml": service_yaml("web", [b["web-v1"], b["web-v2"]]),
            "api.yaml": service_yaml("api", [b["api"]]),
            "split.yaml": service_yaml("split", [b["split-v1"], b["split-v2"]]),
            "vs.yaml": VS % {"ns": NS, "web": fqdn("web"), "split": fqdn("split"), "port": PORT},
        }

    def backend_of(self, path="/", headers=None, sidecar=None):
        r = (sidecar or self.px).get("web", path, headers)
        self.assertEqual(r.status, 200, r)
        return r.backend

    def test_host(self):
        self.assertEqual(self.px.get("api").backend, "api")
        self.assertEqual(self.px.get("web").backend, "web-v1")
        # origin-form with a Host naming the service (host:port), straight to the outbound port
        r = self.px.request("/x", headers={"Host": "%s:%d" % (fqdn("api"), PORT)})
        self.assertEqual((r.status, r.backend), (200, "api"))
        # curl as an http_proxy client
        code, h, _ = self.px.curl("http://%s:%d/" % (fqdn("api"), PORT))
        self.assertEqual((code, h.get("x-backend")), (200, "api"))
        # a host meshd does not know: no virtual host for it on this port
        r = self.px.request("http://nowhere.%s.svc.cluster.local:%d/" % (NS, PORT))
        self.assertNotEqual(r.status, 200)

    def test_header_match(self):
        self.assertEqual(self.backend_of("/", {"x-canary": "true"}), "web-v2")
        self.assertEqual(self.backend_of("/", {"x-canary": "True"}), "web-v1")
        self.assertEqual(self.backend_of("/", {"x-canary": "truex"}), "web-v1")
        self.assertEqual(self.backend_of("/", {"x-user": "beta-ann"}), "web-v2")
        self.assertEqual(self.backend_of("/", {"x-user": "ann-beta-"}), "web-v1")
        # Envoy's safe_regex is a full match
        self.assertEqual(self.backend_of("/", {"x-id": "12345"}), "web-v2")
        self.assertEqual(self.backend_of("/", {"x-id": "12a45"}), "web-v1")
        code, h, _ = self.px.curl("http://%s:%d/" % (fqdn("web"), PORT), "-H", "x-canary: true")
        self.assertEqual((code, h.get("x-backend")), (200, "web-v2"))

    def test_uri_match(self):
        self.assertEqual(self.backend_of("/v2/anything"), "web-v2")
        self.assertEqual(self.backend_of("/v2"), "web-v1")
        self.assertEqual(self.backend_of("/exact"), "web-v2")
        self.assertEqual(self.backend_of("/exact/more"), "web-v1")
        self.assertEqual(self.backend_of("/re/abc"), "web-v2")
        self.assertEqual(self.backend_of("/re/abc1"), "web-v1")
        # the query string is not part of the path a URI match sees
        self.assertEqual(self.backend_of("/exact?x=1"), "web-v2")

    def test_query_param_match(self):
        self.assertEqual(self.backend_of("/q?ver=two"), "web-v2")
        self.assertEqual(self.backend_of("/q?a=1&ver=two&b=2"), "web-v2")
        self.assertEqual(self.backend_of("/q?ver=three"), "web-v1")
        self.assertEqual(self.backend_of("/q?version=two"), "web-v1")

    def test_port_match(self):
        self.assertEqual(self.backend_of("/portmatch"), "web-v2")
        # a match for another port does not apply to this one
        self.assertEqual(self.backend_of("/portmiss"), "web-v1")

    def test_source_labels(self):
        canary = self.sidecars["canary"]
        self.assertEqual(self.backend_of("/src", sidecar=canary), "web-v2")
        self.assertEqual(self.backend_of("/src", sidecar=self.px), "web-v1")
        # the same caller's other requests follow the shared routes
        self.assertEqual(self.backend_of("/", sidecar=canary), "web-v1")

    def test_weighted_split(self):
        n = 200
        t = tally(self.many(n, "split"))
        self.assertEqual(sum(t.get(k, 0) for k in ("split-v1", "split-v2")), n, t)
        # 10% of 200 is 20 (sd ~4.2): a band this wide never flakes, and 50/50
        # or all-to-one would fall outside it
        self.assertGreaterEqual(t.get("split-v2", 0), 4, t)
        self.assertLessEqual(t.get("split-v2", 0), 50, t)


if __name__ == "__main__":
    unittest.main()
