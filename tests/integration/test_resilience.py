"""Fault injection, retries and NACKs with Debian's python3-grpcio xDS client."""
import unittest

from meshtest import Backend, Meshd, XdsClient, wait_for

HOST = "flaky.test.svc.cluster.local"
PORT = 7071

SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %(p)d}, labels: {app: flaky}}
"""

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: test}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s}
%s
"""

NO_RETRIES = "    retries: {attempts: 0}\n"
RETRIES = "    retries: {attempts: 3, retryOn: unavailable}\n"
ABORT_HALF = """    retries: {attempts: 0}
    fault:
      abort:
        percentage: {value: 50}
        grpcStatus: RESOURCE_EXHAUSTED
"""

RING_TOO_BIG = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: flaky, namespace: test}
spec:
  host: %s
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        ringHash: {minimumRingSize: 100000000}
"""


def vs(extra):
    return VS % (HOST, HOST, extra)


class ResilienceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("ok", fail_every=2)  # every second call fails UNAVAILABLE
        cls.meshd = Meshd({
            "service.yaml": SERVICE % {"host": HOST, "port": PORT, "p": cls.backend.port},
            "vs.yaml": vs(NO_RETRIES),
        }).start()
        cls.client = XdsClient(cls.meshd.bootstrap(namespace="test"), "xds:///%s:%d" % (HOST, PORT))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.meshd.finish(cls.backend)

    def test_01_retries_reduce_failures(self):
        self.meshd.write("vs.yaml", vs(NO_RETRIES))
        wait_for(lambda: self.client.call(4).get("ERR:UNAVAILABLE", 0) > 0, what="failures without retries")
        without = self.client.call(200).get("ERR:UNAVAILABLE", 0)
        # the backend fails every second call: about half fail
        self.assertGreater(without, 60)
        self.meshd.write("vs.yaml", vs(RETRIES))
        wait_for(lambda: self.client.call(20).get("ERR:UNAVAILABLE", 0) == 0, what="retries applied")
        with_retries = self.client.call(200).get("ERR:UNAVAILABLE", 0)
        self.assertLess(with_retries, without / 4)

    def test_02_fault_abort_percentage(self):
        self.backend.fail_every = 0
        try:
            self.meshd.write("vs.yaml", vs(ABORT_HALF))
            wait_for(lambda: self.client.call(20).get("ERR:RESOURCE_EXHAUSTED", 0) > 0, what="fault applied")
            counts = self.client.call(400)
            aborted = counts.get("ERR:RESOURCE_EXHAUSTED", 0)
            self.assertEqual(aborted + counts.get("ok", 0), 400, counts)
            # expected 200, sd 10: a band of 8 sd on each side
            self.assertGreater(aborted, 120, counts)
            self.assertLess(aborted, 280, counts)
        finally:
            self.backend.fail_every = 2

    def test_03_nack_visible_in_syncz(self):
        # gRPC rejects a ring larger than 8M entries (so does Envoy): meshd's schema
        # accepts it, the client NACKs the cluster, and syncz must show it.
        self.meshd.write("vs.yaml", vs(NO_RETRIES))
        self.meshd.write("dr.yaml", RING_TOO_BIG % HOST)

        def nacked():
            for p in self.meshd.json("/debug/syncz"):
                cds = p.get("types", {}).get("cds", {})
                if cds.get("state") == "ERROR" and cds.get("error"):
                    return cds
            return None
        cds = wait_for(nacked, what="a CDS NACK in /debug/syncz")
        self.assertIn("ring", cds["error"].lower())
        status, body = self.meshd.http("/metrics")
        self.assertRegex(body, r'pilot_total_xds_rejects\{type="cds"\} [1-9]')
        # the client keeps using its last accepted cluster
        self.assertGreater(self.client.call(10).get("ok", 0), 0)
        # fixing the rule clears the error
        self.meshd.remove("dr.yaml")
        wait_for(lambda: all(p.get("types", {}).get("cds", {}).get("state") == "SYNCED"
                             for p in self.meshd.json("/debug/syncz")), what="CDS SYNCED again")


if __name__ == "__main__":
    unittest.main()
