"""The Telemetry API on a running meshd: /debug/telemetryz shows the
effective Telemetry of a workload (mesh, namespace and selector levels
merged as Istio merges them), by node id (the Pod's labels) or by
namespace and labels, and follows a live edit (a sampling change, a
REQUEST_COUNT disabled).
"""
import json
import subprocess
import unittest

from meshtest import MESHCTL, Meshd, wait_for

MESH = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 1
  accessLogging: [{providers: [{name: envoy}]}]
"""

NS = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: shop-tracing, namespace: shop}
spec:
  tracing: [{randomSamplingPercentage: %s}]
"""

WORKLOAD = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: cart-metrics, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      disabled: true
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {containers: [{name: app, image: cart}]}
status: {podIP: 127.0.0.9, phase: Running}
"""


def client_metric(eff, name):
    for p in eff["metrics"]:
        if p["provider"] == "prometheus":
            for o in p["client"]["overrides"]:
                if o["name"] == name:
                    return o
    return None


class TelemetryApiTest(unittest.TestCase):
    def setUp(self):
        self.meshd = Meshd({"mesh.yaml": MESH, "ns.yaml": NS % 50, "pod.yaml": POD}).start()

    def tearDown(self):
        self.meshd.finish()

    def tz(self, query):
        return self.meshd.json("/debug/telemetryz?" + query)

    def test_effective_by_node_id_and_labels(self):
        doc = self.tz("proxyID=sidecar~127.0.0.9~cart-1.shop~shop.svc.cluster.local")
        self.assertEqual(doc["namespace"], "shop")
        self.assertEqual(doc["pod"], "cart-1")
        self.assertEqual(doc["labels"], {"app": "cart"})
        self.assertEqual(doc["labelsFrom"], "pod")  # no proxy of that name connected
        self.assertEqual(self.tz("proxyID=nobody-1.shop")["labelsFrom"], "none")
        eff = doc["effective"]
        self.assertEqual(eff["telemetries"], {"root": "istio-system/mesh-default",
                                              "namespace": "shop/shop-tracing", "workload": []})
        self.assertEqual(eff["tracing"]["server"]["provider"], "zipkin")
        self.assertEqual(eff["tracing"]["server"]["randomSamplingPercentage"], 50)
        self.assertEqual(eff["accessLogging"]["server"],
                         [{"provider": "envoy", "disabled": False, "filter": None}])
        other = self.tz("namespace=web&labels=app=x")["effective"]
        self.assertEqual(other["tracing"]["client"]["randomSamplingPercentage"], 1)
        out = subprocess.run([MESHCTL, "telemetry", "cart-1.shop", "--meshd", "127.0.0.1:%d" % self.meshd.http_port],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["effective"], eff)
        status, body = self.meshd.http("/debug/telemetryz")
        self.assertEqual(status, 400, body)
        status, body = self.meshd.http("/debug/telemetryz?proxyID=nodots")
        self.assertEqual(status, 400, body)

    def test_live_edits(self):
        pid = "proxyID=cart-1.shop"
        self.assertIsNone(client_metric(self.tz(pid)["effective"], "REQUEST_COUNT"))
        self.meshd.write("workload.yaml", WORKLOAD)
        self.meshd.write("ns.yaml", NS % 100)
        eff = wait_for(lambda: (lambda e: e if e["telemetries"]["workload"] else None)(self.tz(pid)["effective"]),
                       what="the workload Telemetry applied")
        eff = wait_for(lambda: (lambda e: e if e["tracing"]["client"]["randomSamplingPercentage"] == 100 else None)(
            self.tz(pid)["effective"]), what="the sampling change")
        self.assertEqual(eff["telemetries"]["workload"], ["shop/cart-metrics"])
        self.assertTrue(client_metric(eff, "REQUEST_COUNT")["disabled"])
        self.assertEqual(eff["accessLogging"]["client"][0]["filter"], "response.code >= 400")
        # another workload of the namespace keeps the namespace level only
        ratings = self.tz("namespace=shop&labels=app=ratings")["effective"]
        self.assertIsNone(client_metric(ratings, "REQUEST_COUNT"))
        self.assertEqual(ratings["tracing"]["client"]["randomSamplingPercentage"], 100)


if __name__ == "__main__":
    unittest.main()
