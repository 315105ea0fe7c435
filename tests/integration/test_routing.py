"""Proxyless gRPC routing through meshd, judged by Debian's python3-grpcio xDS client.

One meshd and two real backends (v1, v2) for the class; each test writes the
VirtualService it needs and waits (bounded) until the client follows it.
"""
import json
import unittest

from meshtest import ECHO_SERVICE, Backend, Meshd, XdsClient, wait_for

HOST = "echo.test.svc.cluster.local"
PORT = 7070


def vs(http):
    return """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo]
  http:
%s""" % http


ALL_TO = """
  - route:
    - destination: {host: echo, subset: %s}
"""

SPLIT_90_10 = """
  - route:
    - destination: {host: echo, subset: v1}
      weight: 90
    - destination: {host: echo, subset: v2}
      weight: 10
"""

HEADER_ROUTE = """
  - match:
    - headers:
        x-canary: {exact: "yes"}
    route:
    - destination: {host: echo, subset: v2}
  - route:
    - destination: {host: echo, subset: v1}
"""

# weights are relative (Istio >= 1.15), but never negative
INVALID_WEIGHTS = """
  - route:
    - destination: {host: echo, subset: v1}
      weight: 90
    - destination: {host: echo, subset: v2}
      weight: -20
"""


class RoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v1 = Backend("v1")
        cls.v2 = Backend("v2")
        cls.meshd = Meshd({
            "service.yaml": ECHO_SERVICE % {"host": HOST, "port": PORT, "p1": cls.v1.port, "p2": cls.v2.port},
            "vs.yaml": vs(ALL_TO % "v1"),
        }).start()
        cls.client = XdsClient(cls.meshd.bootstrap(namespace="test"), "xds:///%s:%d" % (HOST, PORT))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.meshd.finish(cls.v1, cls.v2)

    def converge(self, expect, n=20, metadata=None):
        """Wait until n calls all land on `expect`."""
        return wait_for(lambda: self.client.call(n, metadata) == {expect: n}, timeout=30,
                        what="all calls to %s" % expect)

    def test_01_all_to_one_subset(self):
        self.meshd.write("vs.yaml", vs(ALL_TO % "v1"))
        self.converge("v1")
        self.meshd.write("vs.yaml", vs(ALL_TO % "v2"))
        # an edit of the file switches the running client, no restart
        self.converge("v2")

    def test_02_weighted_split_90_10(self):
        self.meshd.write("vs.yaml", vs(ALL_TO % "v2"))
        self.converge("v2")
        self.meshd.write("vs.yaml", vs(SPLIT_90_10))
        # wait until v1 appears at all, then measure
        wait_for(lambda: self.client.call(20).get("v1", 0) > 0, what="split applied")
        counts = self.client.call(1000)
        self.assertEqual(counts.get("v1", 0) + counts.get("v2", 0), 1000, counts)
        # expected v2 = 100, sd ~9.5: the band is over 6 sd wide on each side
        self.assertGreater(counts.get("v2", 0), 40, counts)
        self.assertLess(counts.get("v2", 0), 180, counts)

    def test_03_header_routing(self):
        self.meshd.write("vs.yaml", vs(HEADER_ROUTE))
        self.converge("v2", metadata=[["x-canary", "yes"]])
        self.assertEqual(self.client.call(100, [["x-canary", "yes"]]), {"v2": 100})
        self.assertEqual(self.client.call(100, [["x-canary", "no"]]), {"v1": 100})
        self.assertEqual(self.client.call(100), {"v1": 100})

    def test_04_invalid_edit_keeps_last_good(self):
        self.meshd.write("vs.yaml", vs(ALL_TO % "v2"))
        self.converge("v2")
        self.meshd.write("vs.yaml", vs(INVALID_WEIGHTS))

        def has_error():
            z = self.meshd.json("/debug/configz")
            return [e for e in z["errors"] if e.get("name") == "echo" and "weight" in (e.get("field") or "")]
        errs = wait_for(has_error, what="configz error for the invalid edit")
        self.assertIn("vs.yaml", errs[0]["origin"])
        self.assertGreater(errs[0]["line"], 0)
        # traffic stays on the last good version
        self.assertEqual(self.client.call(100), {"v2": 100})
        # the object served is still the good one
        z = self.meshd.json("/debug/configz")
        objs = [o for o in z["objects"] if o["kind"] == "VirtualService" and o["name"] == "echo"]
        self.assertEqual(len(objs), 1)
        self.assertIn("v2", json.dumps(objs[0]["spec"]))
        # malformed YAML: the same
        self.meshd.write("vs.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: [\n")
        wait_for(lambda: [e for e in self.meshd.json("/debug/configz")["errors"] if "vs.yaml" in e["origin"]
                          and "weight" not in (e.get("field") or "")], what="configz parse error")
        self.assertEqual(self.client.call(100), {"v2": 100})
        # a good edit clears the error
        self.meshd.write("vs.yaml", vs(ALL_TO % "v1"))
        self.converge("v1")
        wait_for(lambda: not [e for e in self.meshd.json("/debug/configz")["errors"] if "vs.yaml" in e["origin"]],
                 what="errors cleared")

    def test_05_syncz_and_config_dump(self):
        self.meshd.write("vs.yaml", vs(ALL_TO % "v1"))
        self.converge("v1")

        def synced():
            for p in self.meshd.json("/debug/syncz"):
                types = p.get("types", {})
                if all(types.get(t, {}).get("state") == "SYNCED" for t in ("lds", "rds", "cds", "eds")):
                    return p
            return None
        proxy = wait_for(synced, what="a proxy SYNCED on every type")
        dump = self.meshd.json("/debug/config_dump?proxyID=" + proxy["proxy"])
        text = json.dumps(dump)
        self.assertIn("%s:%d" % (HOST, PORT), text)
        self.assertIn("outbound|%d|v1|%s" % (PORT, HOST), text)
        status, body = self.meshd.http("/metrics")
        self.assertEqual(status, 200)
        for name in ("pilot_xds_pushes", "pilot_xds ", "pilot_total_xds_rejects", "pilot_proxy_convergence_time"):
            self.assertIn(name, body)


if __name__ == "__main__":
    unittest.main()
