"""meshd's admission webhook port (--webhook-addr) and /inject, against real
peers: curl over TLS verifying meshd's serving certificate with meshd's own
root (the caBundle the webhook configurations carry) for
istiod.istio-system.svc, as the API server calls it.

Cases: an AdmissionReview for a Pod in a namespace labelled
istio-injection=enabled (a Namespace object meshd serves) gets a JSONPatch
that applies to the Pod and adds istio-init (`meshproxy iptables`) and
istio-proxy reaching istiod.istio-system.svc:15012 with the istio-ca token;
relabelling the namespace disabled is followed live (allowed, no patch); a
bad annotation is refused with its reason; the server refuses GET, other
content types and callers that do not trust meshd's root; the
sidecar_injection_* counters count each outcome; `meshctl kube-inject`
injects a Deployment's pod template with the same code.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

from meshtest import MESHCTL, Meshd, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "inject"))
from run import apply_patch  # noqa: E402  (tests/inject/run.py: an RFC 6902 applier)

SVC = "istiod.istio-system.svc"

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio-injection: %s}
"""

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "version": "v1"},
                 "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}},
    "spec": {"serviceAccountName": "web",
             "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080}],
                             "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]},
}

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: bookinfo}
spec:
  replicas: 1
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews, version: v1}
    spec:
      containers:
      - name: reviews
        image: reviews:v1
        livenessProbe: {tcpSocket: {port: 9080}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  ports: [{port: 9080, name: http}]
"""


def review(pod, uid="7f0b2891-916f-4ed6-b7cd-27bff1815a8c"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": pod["metadata"]["namespace"], "operation": "CREATE", "object": pod}}


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return 0.0


class InjectWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="inject-it-")
        cls.meshd = Meshd(files={"ns.yaml": NAMESPACE % "enabled"})
        cls.meshd.extra_args = ["--ca-dir", os.path.join(cls.meshd.dir, "ca")]
        cls.meshd.start()
        cls.root = os.path.join(cls.meshd.dir, "ca", "root-cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def curl(self, path, body=None, ctype="application/json", method="POST", cacert=True):
        """(exit code, HTTP status, body) of one call to meshd's webhook port."""
        port = self.meshd.webhook_port
        args = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", "-X", method,
                "--resolve", "%s:%d:127.0.0.1" % (SVC, port), "https://%s:%d%s" % (SVC, port, path)]
        if cacert:
            args += ["--cacert", self.root]
        if ctype:
            args += ["-H", "Content-Type: " + ctype]
        if body is not None:
            args += ["--data-binary", "@-"]
        p = subprocess.run(args, input=(body or "").encode(), capture_output=True, timeout=30)
        out = p.stdout.decode()
        text, _, status = out.rpartition("\n")
        return p.returncode, int(status) if status.isdigit() else 0, text

    def inject(self, pod):
        rc, status, text = self.curl("/inject", json.dumps(review(pod)))
        self.assertEqual((rc, status), (0, 200), text)
        return json.loads(text)["response"]

    def test_pod_injected_and_patch_applies(self):
        r = self.inject(POD)
        self.assertEqual(r["uid"], "7f0b2891-916f-4ed6-b7cd-27bff1815a8c")
        self.assertTrue(r["allowed"])
        self.assertEqual(r["patchType"], "JSONPatch")
        pod = apply_patch(POD, json.loads(base64.b64decode(r["patch"])))
        names = [c["name"] for c in pod["spec"]["containers"]]
        self.assertEqual(names, ["web", "istio-proxy"])
        proxy = pod["spec"]["containers"][1]
        self.assertEqual(proxy["command"], ["meshproxy"])
        self.assertEqual(proxy["args"][:4], ["--xds-addr", SVC + ":15012", "--ca-addr", SVC + ":15012"])
        init = pod["spec"]["initContainers"][-1]
        self.assertEqual(init["name"], "istio-init")
        self.assertEqual(init["args"][:9], ["iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"])
        self.assertEqual(init["args"][-2:], ["-o", "5432"])
        token = [v for v in pod["spec"]["volumes"] if v["name"] == "istio-token"][0]
        self.assertEqual(token["projected"]["sources"][0]["serviceAccountToken"]["audience"], "istio-ca")
        self.assertEqual(pod["spec"]["containers"][0]["readinessProbe"]["httpGet"],
                         {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"})
        self.assertIn("sidecar.istio.io/status", pod["metadata"]["annotations"])
        self.assertEqual(pod["metadata"]["annotations"]["prometheus.io/port"], "15020")
        # the user's own members are kept
        self.assertEqual(pod["metadata"]["labels"]["version"], "v1")
        self.assertEqual(pod["spec"]["serviceAccountName"], "web")

    def test_namespace_label_followed_live_and_errors_refused(self):
        try:
            self.meshd.write("ns.yaml", NAMESPACE % "disabled")
            wait_for(lambda: "patch" not in self.inject(POD), what="injection off after relabelling")
            r = self.inject(POD)
            self.assertTrue(r["allowed"])
        finally:
            self.meshd.write("ns.yaml", NAMESPACE % "enabled")
        wait_for(lambda: "patch" in self.inject(POD), what="injection back on")
        bad = json.loads(json.dumps(POD))
        bad["metadata"]["annotations"]["sidecar.istio.io/interceptionMode"] = "MAGIC"
        r = self.inject(bad)
        self.assertFalse(r["allowed"])
        self.assertIn("interceptionMode", r["status"]["message"])

    def test_server_refusals(self):
        self.assertEqual(self.curl("/inject", method="GET", ctype=None)[1], 405)
        self.assertEqual(self.curl("/inject", "{}", ctype="text/plain")[1], 415)
        self.assertEqual(self.curl("/nope", "{}")[1], 404)
        self.assertEqual(self.curl("/inject", "")[1], 400)
        # a caller without meshd's root cannot verify the certificate
        rc, status, _ = self.curl("/inject", "{}", cacert=False)
        self.assertEqual(rc, 60)  # curl: peer certificate cannot be authenticated
        # not JSON: refused in the AdmissionReview, as istiod
        rc, status, text = self.curl("/inject", "{not json")
        self.assertEqual(status, 200)
        self.assertFalse(json.loads(text)["response"]["allowed"])

    def test_metrics_count_outcomes(self):
        def counts():
            m = self.meshd.http("/metrics")[1]
            return {k: sample(m, "sidecar_injection_%s_total" % k) for k in ("requests", "success", "skip", "failure")}
        before = counts()
        self.inject(POD)
        skipped = json.loads(json.dumps(POD))
        skipped["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
        self.inject(skipped)
        after = counts()
        self.assertGreaterEqual(after["requests"] - before["requests"], 2)
        self.assertGreaterEqual(after["success"] - before["success"], 1)
        self.assertGreaterEqual(after["skip"] - before["skip"], 1)

    def test_kube_inject_deployment(self):
        path = os.path.join(self.meshd.dir, "deploy.yaml")
        with open(path, "w") as f:
            f.write(DEPLOYMENT)
        p = subprocess.run([MESHCTL, "kube-inject", "-f", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        docs = [json.loads(d) for d in p.stdout.split("\n---\n")]
        self.assertEqual([d["kind"] for d in docs], ["Deployment", "Service"])
        tmpl = docs[0]["spec"]["template"]
        self.assertEqual([c["name"] for c in tmpl["spec"]["containers"]], ["reviews", "istio-proxy"])
        self.assertEqual(tmpl["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"],
                         "/app-health/reviews/livez")
        self.assertEqual(docs[0]["spec"]["selector"], {"matchLabels": {"app": "reviews"}})
        self.assertEqual(docs[1]["spec"]["ports"], [{"port": 9080, "name": "http"}])


if __name__ == "__main__":
    unittest.main()
