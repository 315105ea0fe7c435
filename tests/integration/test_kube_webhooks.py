"""Admission webhooks end to end with the real kubectl: kubectl -> the fake
API server (tests/kube/fake_apiserver.py, which runs the admission chain as
the real one does: rules, selectors, failurePolicy, an AdmissionReview POSTed
over TLS verified with the configuration's caBundle for istiod.istio-system.svc)
-> meshd's /validate and /inject on its webhook port.

deploy/webhooks.yaml is applied with kubectl as shipped (no caBundle,
validators failing open); meshd's leader patches its root into every webhook
and switches the validators to Fail once its /validate refuses the probe,
and patches again after `kubectl patch` blanks a caBundle.  Then `kubectl
apply` of an invalid VirtualService is refused with meshd's message, a valid
one is created; a Pod in a namespace labelled istio-injection=enabled comes
back with istio-proxy, one in a namespace labelled disabled does not.
"""
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from meshtest import ROOT, Meshd, wait_for
from test_kube import FakeApi, namespace

KUBECTL = shutil.which("kubectl")
WEBHOOKS = os.path.join(ROOT, "deploy", "webhooks.yaml")
VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"

INVALID_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-bad
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: -5
"""

VALID_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""

ENVOY_FILTER = """apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: ef
spec:
  configPatches: []
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: %s
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
"""


# Istio's samples/sleep/sleep.yaml as users paste it (ServiceAccount, Service, Deployment)
SLEEP = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: sleep
---
apiVersion: v1
kind: Service
metadata:
  name: sleep
  labels:
    app: sleep
    service: sleep
spec:
  ports:
  - port: 80
    name: http
  selector:
    app: sleep
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep
  labels: %s
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sleep
  template:
    metadata:
      labels:
        app: sleep
        %s
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: sleep
      containers:
      - name: sleep
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
        imagePullPolicy: IfNotPresent
"""


def direct_vs():
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "direct", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}


@unittest.skipIf(KUBECTL is None, "kubectl is not installed (sh scripts/deps.sh installs kubernetes-client)")
class KubeWebhooksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-webhooks-it-")
        # no bearer tokens: kubectl (client-go) sends none over plain HTTP
        cls.api = FakeApi(tokens=())
        cls.meshd = None
        try:
            for ns in ("istio-system", "default"):
                cls.api.apply(namespace(ns))
            cls.kubeconfig = cls.api.kubeconfig("t-kubectl")
            # the webhook configurations as shipped, applied as a user would
            out = cls.kubectl("apply", "-f", WEBHOOKS)
            assert out.returncode == 0, out.stderr
            cls.meshd = Meshd(kubeconfig=cls.api.kubeconfig("t-meshd"),
                              extra_args=["--ca-dir", os.path.join(cls.tmp, "ca")])
            # the Service the configurations name does not reach meshd yet (test_1 connects it)
            cls.meshd.start()
            with open(os.path.join(cls.tmp, "ca", "root-cert.pem")) as f:
                cls.root_b64 = base64.b64encode(f.read().encode()).decode()
        except BaseException:
            cls.tearDownClass()  # no process left behind
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.meshd:
                cls.meshd.finish()
        finally:
            cls.api.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def kubectl(cls, *args, stdin=None):
        # kubectl's own cache under the test's directory; the fake serves no OpenAPI document,
        # so client-side schema validation is off (the webhook is what is tested)
        env = dict(os.environ, KUBECONFIG=cls.kubeconfig, HOME=cls.tmp)
        extra = ["--validate=false"] if args[0] in ("apply", "create") else []
        return subprocess.run([KUBECTL, args[0]] + extra + list(args[1:]), input=stdin, capture_output=True,
                              text=True, timeout=60, env=env)

    def connect(self):
        """The Service the configurations name becomes this meshd's webhook port (the TLS name kept)."""
        self.api.control("POST", "webhook-hosts",
                         {"hosts": {"istiod.istio-system.svc:443": "127.0.0.1:%d" % self.meshd.webhook_port}})

    def meshd_ns_labels(self):
        """(namespace, istio-injection label) pairs in meshd's /debug/configz."""
        out = set()
        for o in self.meshd.json("/debug/configz").get("objects", []):
            if o.get("kind") == "Namespace":
                labels = (o.get("object", {}).get("metadata") or {}).get("labels") or {}
                out.add((o.get("name"), labels.get("istio-injection")))
        return out

    def config(self, path):
        status, obj = self.api.get(path)
        return obj if status == 200 else None

    def patched(self, path, ca_only=False, names=None):
        """Every webhook of the configuration (or those named) carries meshd's root, and
        (validators) fails closed."""
        obj = self.config(path) or {}
        hooks = [w for w in obj.get("webhooks") or [] if names is None or w["name"] in names]
        return bool(hooks) and all(w.get("clientConfig", {}).get("caBundle") == self.root_b64 and
                                   (ca_only or w.get("failurePolicy") == "Fail") for w in hooks)

    def test_1_ca_bundle_patched_and_validators_fail_closed(self):
        # while the API server cannot reach meshd, the probe is not refused (the call fails, the
        # validators fail open and let it through): caBundle written, failurePolicy left Ignore
        wait_for(lambda: [e for e in self.api.control("GET", "admission")["log"]
                          if e["resource"] == "gateways" and e["outcome"] == "error-ignore"],
                 timeout=60, interval=0.2, what="a probe the API server could not send to meshd")
        wait_for(lambda: self.patched(VWC + "istiod-default-validator", ca_only=True), timeout=60, interval=0.2,
                 what="the caBundle written meanwhile")
        for name in ("istio-validator-istio-system", "istiod-default-validator"):
            self.assertEqual({w["failurePolicy"] for w in self.config(VWC + name)["webhooks"]}, {"Ignore"})
        self.connect()
        for name in ("istio-validator-istio-system", "istiod-default-validator"):
            wait_for(lambda: self.patched(VWC + name), timeout=60, interval=0.2,
                     what="%s patched with meshd's root and failurePolicy Fail" % name)
        wait_for(lambda: self.patched(MWC + "istio-sidecar-injector", ca_only=True), timeout=60, interval=0.2,
                 what="istio-sidecar-injector patched with meshd's root")
        # the switch to Fail came after the probe was refused by meshd's own /validate
        probes = [e for e in self.api.control("GET", "admission")["log"]
                  if e["resource"] == "gateways" and e["outcome"] == "denied"]
        self.assertTrue(probes)

    def test_2_ca_bundle_repatched_after_kubectl_blanks_it(self):
        self.connect()
        wait_for(lambda: self.patched(VWC + "istiod-default-validator"), timeout=60, interval=0.2,
                 what="the validator patched first")
        out = self.kubectl("patch", "validatingwebhookconfiguration", "istiod-default-validator", "--type=json",
                           "-p", json.dumps([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle",
                                              "value": ""},
                                             {"op": "replace", "path": "/webhooks/0/failurePolicy",
                                              "value": "Ignore"}]))
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.patched(VWC + "istiod-default-validator"), timeout=30, interval=0.1,
                 what="caBundle and failurePolicy put back by meshd")
        out = self.kubectl("patch", "mutatingwebhookconfiguration", "istio-sidecar-injector", "--type=json",
                           "-p", json.dumps([{"op": "remove", "path": "/webhooks/2/clientConfig/caBundle"}]))
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.patched(MWC + "istio-sidecar-injector", ca_only=True), timeout=30, interval=0.1,
                 what="the injector's caBundle put back by meshd")
        # deleted and applied again as shipped (an upgrade): patched again
        out = self.kubectl("delete", "validatingwebhookconfiguration", "istio-validator-istio-system")
        self.assertEqual(out.returncode, 0, out.stderr)
        out = self.kubectl("apply", "-f", WEBHOOKS)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.patched(VWC + "istio-validator-istio-system"), timeout=30, interval=0.1,
                 what="the re-created validator patched")

    def test_3_kubectl_apply_validated_by_meshd(self):
        self.connect()
        wait_for(lambda: self.patched(VWC + "istiod-default-validator"), timeout=60, interval=0.2,
                 what="the validator patched")
        out = self.kubectl("apply", "-f", "-", stdin=INVALID_VS)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        # the API server's prefix, then istiod's words, then meshd's finding (kind ns/name: field: reason)
        self.assertIn('admission webhook "validation.istio.io" denied the request: configuration is invalid: '
                      'VirtualService default/reviews-bad: spec.http[0].route[0].weight', out.stderr)
        self.assertIsNone(self.config("/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews-bad"))
        out = self.kubectl("apply", "-f", "-", stdin=VALID_VS)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("virtualservice.networking.istio.io/reviews created", out.stdout)
        self.assertIsNotNone(self.config("/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"))
        # an update is judged too; a delete is never refused
        out = self.kubectl("apply", "-f", "-", stdin=INVALID_VS.replace("reviews-bad", "reviews"))
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("denied the request", out.stderr)
        # counted as istiod counts (dry runs, like the patcher's probe, are not)
        status, metrics = self.meshd.http("/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(metrics, r'galley_validation_failed\{group="networking.istio.io",resource="virtualservices",'
                         r'version="v1",reason="invalid_resource"\} 2\n')
        self.assertRegex(metrics, r'galley_validation_passed\{group="networking.istio.io",resource="virtualservices",'
                         r'version="v1"\} 1\n')
        out = self.kubectl("delete", "virtualservice", "reviews")
        self.assertEqual(out.returncode, 0, out.stderr)
        # a kind meshd does not implement is allowed, with meshd's warning shown by kubectl
        out = self.kubectl("apply", "-f", "-", stdin=ENVOY_FILTER)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Warning: EnvoyFilter default/ef: not implemented by meshd", out.stderr)
        # a dry run is judged the same and stores nothing
        # (as `kubectl apply --dry-run=server` sends it; kubectl 1.20 would first want the OpenAPI
        # document the fake does not serve)
        bad = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "dry", "namespace": "default"},
               "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"},
                                                                    "weight": -5}]}]}}
        req = urllib.request.Request("http://127.0.0.1:%d/apis/networking.istio.io/v1/namespaces/default/"
                                     "virtualservices?dryRun=All" % self.api.port, data=json.dumps(bad).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with self.assertRaises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        self.assertEqual(err.exception.code, 400)
        self.assertIn('denied the request: configuration is invalid: VirtualService default/dry: '
                      'spec.http[0].route[0].weight', json.loads(err.exception.read())["message"])
        bad["spec"]["http"][0]["route"][0]["weight"] = 100
        req = urllib.request.Request(req.full_url, data=json.dumps(bad).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 201)
        self.assertIsNone(self.config("/apis/networking.istio.io/v1/namespaces/default/virtualservices/dry"))

    def test_3b_validate_alias_and_bad_requests(self):
        """istiod's /validate/ alias answers as /validate; an empty body is a 400, counted."""
        ctx = ssl.create_default_context(cadata=base64.b64decode(self.root_b64).decode())

        def post(path, body):
            conn = http.client.HTTPSConnection("istiod.istio-system.svc", self.meshd.webhook_port, context=ctx,
                                               timeout=30)
            conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.meshd.webhook_port), timeout=30),
                                        server_hostname="istiod.istio-system.svc")
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            conn.close()
            return r.status, data

        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "u-7", "operation": "CREATE",
                              "resource": {"group": "networking.istio.io", "version": "v1",
                                           "resource": "virtualservices"},
                              "object": direct_vs()}}
        for path in ("/validate", "/validate/"):
            status, data = post(path, json.dumps(review).encode())
            self.assertEqual(status, 200, data)
            resp = json.loads(data)["response"]
            self.assertEqual((resp["uid"], resp["allowed"]), ("u-7", True))
        status, data = post("/validate", b"")
        self.assertEqual(status, 400, data)
        status, metrics = self.meshd.http("/metrics")
        self.assertIn('galley_validation_http_error{status="400"} 1\n', metrics)

    def test_4_pods_injected_by_namespace_label(self):
        self.connect()
        wait_for(lambda: self.patched(MWC + "istio-sidecar-injector", ca_only=True), timeout=60, interval=0.2,
                 what="the injector patched")
        for ns, label in (("injected", "enabled"), ("plain", "disabled")):
            out = self.kubectl("create", "namespace", ns)
            self.assertEqual(out.returncode, 0, out.stderr)
            out = self.kubectl("label", "namespace", ns, "istio-injection=" + label)
            self.assertEqual(out.returncode, 0, out.stderr)
        # /inject reads namespace labels from the config meshd serves, as istiod from its informer:
        # wait until meshd has seen both labels
        wait_for(lambda: self.meshd_ns_labels() >= {("injected", "enabled"), ("plain", "disabled")}, timeout=30,
                 what="meshd seeing the namespace labels")
        for ns in ("injected", "plain"):
            out = self.kubectl("apply", "-f", "-", stdin=POD % ns)
            self.assertEqual(out.returncode, 0, out.stderr)
        out = self.kubectl("get", "pod", "web", "-n", "injected", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        pod = json.loads(out.stdout)
        names = [c["name"] for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])]
        self.assertIn("istio-proxy", names)
        self.assertIn("web", names)
        out = self.kubectl("get", "pod", "web", "-n", "plain", "-o", "json")
        pod = json.loads(out.stdout)
        names = [c["name"] for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])]
        self.assertEqual(names, ["web"])

    def test_4b_deployment_pods_injected_with_their_owner(self):
        """Istio's sleep sample applied with kubectl: the ReplicaSet's Pod (no name yet at admission,
        generateName and an ownerReference) is injected with the Deployment as its workload and owner,
        as istiod names them; sidecar.istio.io/inject "false" counts on the Pod template only."""
        self.connect()
        wait_for(lambda: self.patched(MWC + "istio-sidecar-injector", ca_only=True), timeout=60, interval=0.2,
                 what="the injector patched")
        for ns in ("samples", "samples-off"):
            out = self.kubectl("create", "namespace", ns)
            self.assertEqual(out.returncode, 0, out.stderr)
            out = self.kubectl("label", "namespace", ns, "istio-injection=enabled")
            self.assertEqual(out.returncode, 0, out.stderr)
        wait_for(lambda: self.meshd_ns_labels() >= {("samples", "enabled"), ("samples-off", "enabled")}, timeout=30,
                 what="meshd seeing the namespace labels")

        def pods(ns):
            out = self.kubectl("get", "pods", "-n", ns, "-o", "json")
            self.assertEqual(out.returncode, 0, out.stderr)
            return json.loads(out.stdout)["items"]

        # "false" on the Deployment's own labels is not the Pod's: still injected (istiod reads the Pod)
        out = self.kubectl("apply", "-n", "samples", "-f", "-",
                           stdin=SLEEP % ('{sidecar.istio.io/inject: "false"}', ""))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("deployment.apps/sleep created", out.stdout)
        (pod,) = pods("samples")
        self.assertTrue(pod["metadata"]["name"].startswith("sleep-"), pod["metadata"])
        proxy = [c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"]
        self.assertEqual(len(proxy), 1, [c["name"] for c in pod["spec"]["containers"]])
        env = {e["name"]: e.get("value") for e in proxy[0]["env"]}
        self.assertEqual(env.get("ISTIO_META_WORKLOAD_NAME"), "sleep")
        # meshproxy:latest loaded into the nodes (kind load), not pulled
        self.assertEqual(proxy[0].get("imagePullPolicy"), "IfNotPresent")
        self.assertEqual(env.get("ISTIO_META_OWNER"),
                         "kubernetes://apis/apps/v1/namespaces/samples/deployments/sleep")
        # "false" on the Pod template: the webhooks' objectSelector skips it
        out = self.kubectl("apply", "-n", "samples-off", "-f", "-",
                           stdin=SLEEP % ("{app: sleep}", 'sidecar.istio.io/inject: "false"'))
        self.assertEqual(out.returncode, 0, out.stderr)
        (pod,) = pods("samples-off")
        self.assertEqual([c["name"] for c in pod["spec"]["containers"]], ["sleep"])

    def test_5_only_the_leader_patches(self):
        self.connect()
        wait_for(lambda: self.patched(VWC + "istiod-default-validator"), timeout=60, interval=0.2,
                 what="the validator patched")
        # a second replica with the same root (a shared cacerts), its own token: a follower
        other = Meshd(kubeconfig=self.api.kubeconfig("t-other"), env={"POD_NAME": "meshd-other"},
                      extra_args=["--ca-dir", os.path.join(self.tmp, "ca")]).start()
        try:
            self.api.clear_requests()
            out = self.kubectl("patch", "validatingwebhookconfiguration", "istiod-default-validator",
                               "--type=json", "-p", json.dumps([{"op": "remove",
                                                                 "path": "/webhooks/0/clientConfig/caBundle"}]))
            self.assertEqual(out.returncode, 0, out.stderr)
            wait_for(lambda: self.patched(VWC + "istiod-default-validator"), timeout=30, interval=0.1,
                     what="caBundle put back")
            writes = [r for r in self.api.requests() if r["method"] in ("PATCH", "PUT", "POST") and
                      "webhookconfigurations" in r["path"] and r["token"]]
            self.assertTrue(writes)
            self.assertEqual({w["token"] for w in writes}, {"t-meshd"})
        finally:
            other.finish()

    def test_6_kubectl_apply_k_deploy(self):
        """`kubectl apply -k deploy/` as the README says: every object is created (CRDs, RBAC, the
        Deployment and its Pods, PodDisruptionBudget, webhooks); istio-system is not labelled, so
        meshd's own Pods get no sidecar."""
        out = self.kubectl("apply", "-k", os.path.join(ROOT, "deploy"))
        self.assertEqual(out.returncode, 0, out.stderr)
        for line in ("customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io",
                     "serviceaccount/meshd", "clusterrole.rbac.authorization.k8s.io/meshd", "deployment.apps/meshd",
                     "poddisruptionbudget.policy/meshd", "service/istiod"):
            self.assertIn(line, out.stdout)
        out = self.kubectl("get", "pods", "-n", "istio-system", "-o", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        items = json.loads(out.stdout)["items"]
        self.assertEqual(len(items), 2)  # the Deployment's two replicas
        for pod in items:
            self.assertEqual([c["name"] for c in pod["spec"]["containers"]], ["meshd"])
        # the shipped webhooks went in again without a caBundle: meshd patches them again
        wait_for(lambda: self.patched(MWC + "istio-sidecar-injector", ca_only=True), timeout=60, interval=0.2,
                 what="the re-applied injector patched")


if __name__ == "__main__":
    unittest.main()
