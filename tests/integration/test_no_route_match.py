"""A call that no route of its VirtualService matches, with Debian's python3-grpcio 1.51 as the client.

An HTTP-style VirtualService (uri prefix /orders, no catch-all) used to make
that client crash with SIGSEGV on the first call matching nothing.  meshd now
ends such routes, for proxyless clients, with one that fails the call with
UNAVAILABLE: the call gets a gRPC status, the client process lives on and
keeps routing, and /debug/configz names the VirtualService in a warning.
"""
import json
import unittest

from meshtest import ECHO_SERVICE, Backend, Meshd, XdsClient, wait_for

HOST = "echo.test.svc.cluster.local"
PORT = 7071


# HTTP-style routes: /orders matches no gRPC method; only a call carrying
# x-route: v2 matches anything
NO_CATCH_ALL = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo]
  http:
  - match: [{uri: {prefix: /orders}}]
    route: [{destination: {host: echo, subset: v1}}]
  - match: [{headers: {x-route: {exact: v2}}}]
    route: [{destination: {host: echo, subset: v2}}]
"""

ALL_TO_V1 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo]
  http:
  - route: [{destination: {host: echo, subset: v1}}]
"""


class NoRouteMatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v1 = Backend("v1")
        cls.v2 = Backend("v2")
        cls.meshd = Meshd({
            "service.yaml": ECHO_SERVICE % {"host": HOST, "port": PORT, "p1": cls.v1.port, "p2": cls.v2.port},
            "vs.yaml": NO_CATCH_ALL,
        }).start()
        cls.client = XdsClient(cls.meshd.bootstrap(namespace="test"), "xds:///%s:%d" % (HOST, PORT))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.meshd.finish(cls.v1, cls.v2)

    def test_unmatched_call_fails_cleanly(self):
        canary = [["x-route", "v2"]]
        # the routes are applied: the call that matches reaches v2
        wait_for(lambda: self.client.call(5, canary) == {"v2": 5}, timeout=30, what="header route to v2")
        # a call no route matches fails with a gRPC status, and the client lives
        counts = self.client.call(20)
        self.assertEqual(counts, {"ERR:UNAVAILABLE": 20}, counts)
        self.assertIsNone(self.client.proc.poll(), "the gRPC client process died")
        # the routed calls still work on the same channel
        self.assertEqual(self.client.call(10, canary), {"v2": 10})
        # the backends saw none of the unmatched calls
        self.assertEqual(self.v1.calls, 0)

        # the warning names the VirtualService
        def warned():
            z = self.meshd.json("/debug/configz")
            return [e for e in z["errors"] if e.get("kind") == "VirtualService" and e.get("name") == "echo"
                    and "no http route matches every call" in (e.get("message") or "")]
        errs = wait_for(warned, what="configz warning for the VirtualService without catch-all")
        self.assertIn("UNAVAILABLE", errs[0]["message"])
        self.assertIn("vs.yaml", errs[0]["origin"])

        # a catch-all in the VirtualService: nothing added, every call routed
        self.meshd.write("vs.yaml", ALL_TO_V1)
        wait_for(lambda: self.client.call(10) == {"v1": 10}, timeout=30, what="all calls to v1")
        self.assertIsNone(self.client.proc.poll())
        wait_for(lambda: not warned(), what="warning gone with the catch-all")
        dump = json.dumps(self.meshd.json("/debug/configz"))
        self.assertNotIn("no http route matches every call", dump)


if __name__ == "__main__":
    unittest.main()
