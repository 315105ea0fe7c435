"""The `Sidecar` kind end to end: the real meshd selects, per workload, the
Sidecar that scopes it (Istio's getSidecarScope: a matching workloadSelector
first) and real meshproxy sidecars carry the result; HTTP backends on
127.0.0.x, requests through each sidecar's outbound port (absolute-form, as
http_proxy sends them) and curl.

Two sidecars in namespace demo: "scoped" (app=scoped), selected by a Sidecar
with egress hosts ["./*"] and outboundTrafficPolicy REGISTRY_ONLY, and its
sibling "client" (app=client), selected by none.  A service lives in another
namespace (ext.other).

- (a) egress "./*" makes ext.other unknown to the scoped workload: its route
  config has no virtual host for it and the call falls to REGISTRY_ONLY's
  block_all (502), while the sibling still reaches ext;
- (b) REGISTRY_ONLY answers 502 for an unknown host, with the block_all
  route that Istio's telemetry reports as BlackHoleCluster, and the access
  log line of that 502; the sibling (no Sidecar) keeps allow_any;
- (c) editing the Sidecar live (egress gains "other/*") changes the scoped
  workload's config (seen in meshproxy's /config_dump) and ext answers it,
  while the sibling's configuration stays the same version.

Nothing here asserts on timing; every wait is bounded.
"""
import json
import unittest

from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml, slow
from meshtest import wait_for

OTHER = "other"
EXT_HOST = "ext.%s.svc.cluster.local" % OTHER


def ext_yaml(b):
    """ext.other.svc.cluster.local:PORT, one WorkloadEntry in namespace other."""
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: ext}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(bport)d}
  labels: {app: ext, version: v1}
""" % {"ns": OTHER, "host": EXT_HOST, "port": PORT, "ip": b.ip, "bport": b.port}


def sidecar_yaml(hosts):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped, namespace: %s}
spec:
  workloadSelector:
    labels: {app: scoped}
  egress:
  - hosts: [%s]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""" % (NS, ", ".join('"%s"' % h for h in hosts))


def route_dump(sidecar):
    """The RouteConfiguration part of a sidecar's /config_dump, as text, and
    its version_info (the xDS version meshd sent)."""
    status, body = sidecar.admin("/config_dump")
    if status != 200:
        raise AssertionError("config_dump: %d" % status)
    dump = json.loads(body)
    for c in dump.get("configs", []):
        if "RoutesConfigDump" in c.get("@type", ""):
            text = json.dumps(c, sort_keys=True)
            versions = sorted(r.get("version_info", "") for r in c.get("dynamic_route_configs", []))
            return text, versions
    raise AssertionError("no RoutesConfigDump in %s" % body[:500])


class MeshSidecarScopeTest(MeshCase):
    SIDECARS = {"client": ("client", "app=client"), "scoped": ("scoped", "app=scoped")}

    @classmethod
    def backends(cls):
        return {
            "local": Backend("local", "127.0.0.2", "v1"),
            "ext": Backend("ext", "127.0.0.3", "v1"),
        }

    @classmethod
    def config(cls, b):
        return {
            "local.yaml": service_yaml("local", [b["local"]]),
            "ext.yaml": ext_yaml(b["ext"]),
            "sidecar.yaml": sidecar_yaml(["./*"]),
        }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sc = cls.sidecars["scoped"]

    def ext(self, sidecar):
        return sidecar.request("http://%s:%d/" % (EXT_HOST, PORT))

    def test_a_egress_scope_hides_other_namespace(self):
        # the sibling without a Sidecar sees every namespace
        r = self.ext(self.px)
        self.assertEqual((r.status, r.backend), (200, "ext"), r)
        self.assertIn(EXT_HOST, route_dump(self.px)[0])
        seen = self.b["ext"].count()
        # the scoped workload: its own namespace only
        self.assertEqual(self.sc.get("local").backend, "local")
        routes = route_dump(self.sc)[0]
        self.assertNotIn(EXT_HOST, routes)
        self.assertIn(fqdn("local"), routes)
        r = self.ext(self.sc)
        self.assertEqual(r.status, 502, r)
        self.assertIsNone(r.backend)
        code, _, _ = self.sc.curl("http://%s:%d/curl" % (EXT_HOST, PORT))
        self.assertEqual(code, 502)
        # and ext's backend never saw the scoped workload's calls
        self.assertEqual(self.b["ext"].count(), seen)

    def test_b_registry_only_blackhole(self):
        url = "http://nowhere.example.com:%d/blackholed" % PORT
        r = self.sc.request(url)
        self.assertEqual(r.status, 502, r)
        routes = route_dump(self.sc)[0]
        # Istio's REGISTRY_ONLY catch-all: the block_all virtual host (a
        # direct 502 its telemetry names BlackHoleCluster) instead of allow_any
        self.assertIn("block_all", routes)
        self.assertNotIn("allow_any", routes)
        self.assertIn("BlackHoleCluster", self.sc.admin("/config_dump")[1])
        line = wait_for(lambda: [x for x in self.sc.access_log() if " /blackholed " in x],
                        timeout=60 if slow() else 20, what="the access log line of the 502")
        self.assertIn(" 502 ", line[0])
        self.assertIn("nowhere.example.com", line[0])
        # the sibling keeps Istio's default ALLOW_ANY
        sib = route_dump(self.px)[0]
        self.assertIn("allow_any", sib)
        self.assertNotIn("block_all", sib)

    def test_c_live_edit_changes_only_the_scoped_workload(self):
        before_text, before_versions = route_dump(self.px)
        try:
            self.meshd.write("sidecar.yaml", sidecar_yaml(["./*", "%s/*" % OTHER]))
            self.wait_applied(lambda s: EXT_HOST in route_dump(s)[0], "the edited Sidecar reaching scoped",
                              sidecar=self.sc)
            r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(self.ext(self.sc)),
                         timeout=60 if slow() else 20, what="ext answering the scoped workload")
            self.assertEqual(r.backend, "ext")
            # the sibling's routes did not change: same content, same version
            after_text, after_versions = route_dump(self.px)
            self.assertEqual(after_versions, before_versions)
            self.assertEqual(after_text, before_text)
        finally:
            self.meshd.write("sidecar.yaml", sidecar_yaml(["./*"]))
            self.wait_applied(lambda s: EXT_HOST not in route_dump(s)[0], "the Sidecar restored", sidecar=self.sc)
        self.assertEqual(self.ext(self.sc).status, 502)


if __name__ == "__main__":
    unittest.main()
