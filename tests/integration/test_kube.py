"""meshd on the Kubernetes API: the fake API server (tests/kube/fake_apiserver.py,
a real process on loopback) holds the cluster, meshd reads it through a
kubeconfig, Debian's python3-grpcio xDS client calls real gRPC backends.

Cases: initial sync (Service + EndpointSlices + Pods + DestinationRule +
VirtualService -> routing by subset) and /ready only after sync;
add/modify/delete of a VirtualService and of EndpointSlice endpoints; a
dropped watch resumed from the last resourceVersion (no relist in the request
log); 410 Gone answered by a relist that notices a deletion; bookmarks;
pagination; the API server going away and coming back while meshd keeps
serving; relists refused (403, 503 with Retry-After) while meshd keeps
serving, the 403 logged as an error naming the resource.
"""
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.request

from meshtest import ROOT, Backend, Meshd, XdsClient, wait_for

FAKE = os.path.join(ROOT, "tests", "kube", "fake_apiserver.py")
HOST = "echo.test.svc.cluster.local"
PORT = 7070
VS_PATH = "/apis/networking.istio.io/v1/virtualservices"


class FakeApi:
    """tests/kube/fake_apiserver.py as a process, and a kubeconfig per token."""

    def __init__(self, tokens=("t-meshd",)):
        self.dir = tempfile.mkdtemp(prefix="meshd-fakeapi-")
        port_file = os.path.join(self.dir, "port")
        args = ["/usr/bin/python3", FAKE, "--port", "0", "--port-file", port_file]
        for t in tokens:
            args += ["--token", t]
        self.log = open(os.path.join(self.dir, "fake.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(port_file), timeout=30, what="fake API server")
        with open(port_file) as f:
            self.port = int(f.read())

    def kubeconfig(self, token="t-meshd"):
        path = os.path.join(self.dir, "kubeconfig-" + token)
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                    "contexts:\n- name: fake\n  context: {cluster: c, user: u}\n"
                    "clusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:%d\"}\n"
                    "users:\n- name: u\n  user: {token: %s}\n" % (self.port, token))
        return path

    def control(self, method, what, body=None):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request("http://127.0.0.1:%d/_control/%s" % (self.port, what), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def apply(self, obj):
        return self.control("POST", "apply", obj)

    def delete(self, api_version, kind, name, ns="test"):
        md = {"name": name}
        if ns:
            md["namespace"] = ns
        return self.control("POST", "delete", {"apiVersion": api_version, "kind": kind, "metadata": md})

    def get(self, path):
        """An authenticated GET on the API (as a client would)."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                     headers={"Authorization": "Bearer t-test"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None

    def requests(self):
        return self.control("GET", "requests")["requests"]

    def clear_requests(self):
        self.control("DELETE", "requests")

    def rv(self):
        return int(self.control("GET", "state")["resourceVersion"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()
        subprocess.run(["rm", "-rf", self.dir])


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service():
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "echo", "namespace": "test", "labels": {"app": "echo"}},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "echo"},
                     "ports": [{"name": "grpc", "port": PORT, "targetPort": "grpc", "protocol": "TCP"}]}}


def pod(version):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "echo-" + version, "namespace": "test",
                         "labels": {"app": "echo", "version": version}},
            "spec": {"serviceAccountName": "echo", "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def slice_(version, port, ready=True):
    """One EndpointSlice per version: both backends listen on 127.0.0.1, on different ports."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "echo-" + version, "namespace": "test",
                         "labels": {"kubernetes.io/service-name": "echo"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "namespace": "test", "name": "echo-" + version}}],
            "ports": [{"name": "grpc", "port": port, "protocol": "TCP"}]}


def destination_rule():
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "echo", "namespace": "test"},
            "spec": {"host": "echo", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                 {"name": "v2", "labels": {"version": "v2"}}]}}


def virtual_service(subset, name="echo"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"hosts": ["echo"], "http": [{"route": [{"destination": {"host": "echo", "subset": subset}}]}]}}


def only(counts, name):
    return set(counts) == {name}


class KubeTest(unittest.TestCase):
    def setUp(self):
        self.api = FakeApi(tokens=("t-meshd", "t-test"))
        self.v1 = Backend("v1")
        self.v2 = Backend("v2")
        self.meshd = None
        self.client = None
        for obj in (namespace("test"), service(), pod("v1"), pod("v2"), slice_("v1", self.v1.port),
                    slice_("v2", self.v2.port), destination_rule()):
            self.api.apply(obj)

    def tearDown(self):
        if self.client:
            self.client.close()
        rc = self.meshd.stop() if self.meshd else 0
        logs = self.meshd.logs() if self.meshd else ""
        if self.meshd:
            self.meshd.cleanup()
        self.v1.stop()
        self.v2.stop()
        self.api.stop()
        if rc != 0:
            raise AssertionError("meshd exited %s\n%s" % (rc, logs))

    def start(self, wait_ready=True):
        self.meshd = Meshd(kubeconfig=self.api.kubeconfig("t-meshd")).start(wait_ready=wait_ready)
        return self.meshd

    def connect(self):
        self.client = XdsClient(self.meshd.bootstrap(namespace="test"), "xds:///%s:%d" % (HOST, PORT))
        return self.client

    def wait_routes(self, pred, what):
        return wait_for(lambda: pred(self.client.call(10)), timeout=30, interval=0.2, what=what)

    def watch_requests(self, path, rv=None):
        return [r for r in self.api.requests() if r["path"] == path and r["query"].get("watch") == "true"
                and (rv is None or r["query"].get("resourceVersion") == str(rv))]

    def list_requests(self, path):
        return [r for r in self.api.requests() if r["path"] == path and r["query"].get("watch") != "true"]

    def test_01_ready_only_after_sync_then_routes_by_subset(self):
        self.api.apply(virtual_service("v2"))
        self.api.control("POST", "down")
        self.start(wait_ready=False)
        # the API server answers nothing: meshd cannot have listed anything, so it is not ready
        def ready_status():
            try:
                return self.meshd.http("/ready")[0]
            except OSError:
                return None
        wait_for(lambda: "watching http" in self.meshd.logs(), timeout=30, what="meshd watching")
        self.assertNotEqual(wait_for(ready_status, timeout=30, what="/ready answering"), 200)
        self.api.control("POST", "up")
        wait_for(self.meshd.ready, timeout=60, what="/ready after sync")
        self.connect()
        self.wait_routes(lambda c: only(c, "v2"), "all calls to subset v2")
        self.assertTrue(only(self.client.call(20), "v2"))

    def test_02_virtual_service_add_modify_delete(self):
        self.start()
        self.connect()
        self.wait_routes(lambda c: c.get("v1", 0) > 0 and c.get("v2", 0) > 0, "both versions without a route")
        self.api.apply(virtual_service("v1"))
        self.wait_routes(lambda c: only(c, "v1"), "VirtualService added: v1 only")
        self.api.apply(virtual_service("v2"))
        self.wait_routes(lambda c: only(c, "v2"), "VirtualService modified: v2 only")
        self.api.delete("networking.istio.io/v1", "VirtualService", "echo")
        self.wait_routes(lambda c: c.get("v1", 0) > 0 and c.get("v2", 0) > 0, "VirtualService deleted: both")
        # Istio's pilot_k8s_cfg_events counted each watch event by its type
        body = self.meshd.http("/metrics")[1]
        for ev in ("add", "update", "delete"):
            self.assertIn('pilot_k8s_cfg_events{event="%s",type="VirtualService"} 1\n' % ev, body)
        # listed objects count as adds, as an informer's initial list does
        self.assertIn('pilot_k8s_reg_events{event="add",type="EndpointSlice"} 2\n', body)

    def test_03_endpoint_slice_changes(self):
        self.start()
        self.connect()
        self.wait_routes(lambda c: c.get("v1", 0) > 0 and c.get("v2", 0) > 0, "both endpoints")
        self.api.apply(slice_("v1", self.v1.port, ready=False))
        self.wait_routes(lambda c: only(c, "v2"), "v1's endpoint not ready: v2 only")
        self.api.apply(slice_("v1", self.v1.port, ready=True))
        self.api.delete("discovery.k8s.io/v1", "EndpointSlice", "echo-v2")
        self.wait_routes(lambda c: only(c, "v1"), "v2's slice deleted: v1 only")
        self.api.apply(slice_("v2", self.v2.port))
        self.wait_routes(lambda c: c.get("v1", 0) > 0 and c.get("v2", 0) > 0, "v2's slice back")

    def test_04_dropped_watch_resumes_without_relist(self):
        self.api.apply(virtual_service("v1"))
        self.start()
        self.connect()
        self.wait_routes(lambda c: only(c, "v1"), "v1")
        wait_for(lambda: self.api.control("GET", "state")["activeWatches"] >= 10, what="every watch open")
        # the version the VirtualService watch runs from (no VirtualService changed since)
        rv = self.watch_requests(VS_PATH)[-1]["query"]["resourceVersion"]
        self.api.clear_requests()
        self.api.control("POST", "drop-watches")
        self.api.apply(virtual_service("v2"))
        self.wait_routes(lambda c: only(c, "v2"), "the change after the drop")
        self.assertEqual(self.list_requests(VS_PATH), [])
        self.assertGreaterEqual(len(self.watch_requests(VS_PATH, rv)), 1, self.api.requests())

    def test_05_gone_relists_and_notices_deletion(self):
        self.api.apply(virtual_service("v1"))
        self.start()
        self.connect()
        self.wait_routes(lambda c: only(c, "v1"), "v1")
        self.api.control("POST", "down")
        self.api.delete("networking.istio.io/v1", "VirtualService", "echo")
        self.api.control("POST", "compact")
        self.api.clear_requests()
        self.api.control("POST", "up")
        self.wait_routes(lambda c: c.get("v1", 0) > 0 and c.get("v2", 0) > 0,
                         "the VirtualService deleted while meshd was not watching")
        self.assertGreaterEqual(len(self.list_requests(VS_PATH)), 1)

    def test_06_bookmarks_advance_the_resource_version(self):
        self.api.apply(virtual_service("v1"))
        self.start()
        wait_for(lambda: self.api.control("GET", "state")["activeWatches"] >= 10, what="every watch open")
        self.api.clear_requests()
        for i in range(3):
            self.api.apply({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "other-%d" % i, "namespace": "test"}, "data": {"k": "v"}})
        rv = self.api.rv()
        self.api.control("POST", "bookmark")
        # only a bookmark can tell the VirtualService watch about the ConfigMaps' versions
        def resumed_at_rv():
            if [r for r in self.watch_requests(VS_PATH) if int(r["query"].get("resourceVersion", 0)) >= rv]:
                return True
            self.api.control("POST", "bookmark")
            self.api.control("POST", "drop-watches")
            return False
        wait_for(resumed_at_rv, timeout=30, interval=0.5, what="a watch resumed from the bookmarked version")
        self.assertEqual(self.list_requests(VS_PATH), [])

    def test_07_pagination(self):
        n = 620  # more than meshd's page size (500)
        for i in range(n):
            self.api.apply({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "filler-%d" % i, "namespace": "test", "labels": {"app": "f"}},
                            "spec": {}, "status": {"phase": "Pending"}})
        self.start()
        pages = [r for r in self.list_requests("/api/v1/pods")]
        self.assertGreaterEqual(len(pages), 2, pages)
        self.assertTrue(any("continue" in r["query"] for r in pages), pages)
        metrics = wait_for(lambda: 'meshd_config_objects{kind="Pod"} %d' % (n + 2) in self.meshd.http("/metrics")[1],
                           timeout=30, what="every Pod served")
        self.assertTrue(metrics)

    def test_08_api_server_outage(self):
        self.api.apply(virtual_service("v1"))
        self.start()
        self.connect()
        self.wait_routes(lambda c: only(c, "v1"), "v1")
        self.api.control("POST", "down")
        # meshd keeps serving what it has: the client keeps working, /ready stays
        for _ in range(5):
            self.assertTrue(only(self.client.call(10), "v1"))
            self.assertEqual(self.meshd.http("/ready")[0], 200)
            time.sleep(0.3)
        self.api.apply(virtual_service("v2"))
        self.assertTrue(only(self.client.call(10), "v1"))
        self.api.control("POST", "up")
        self.wait_routes(lambda c: only(c, "v2"), "the change made during the outage")

    def test_08b_api_errors_keep_what_is_served(self):
        # client-go's rules on error answers: a relist refused by RBAC (403)
        # or answered 503 keeps what meshd serves; the 403 is an error naming
        # the resource, the verb and the API server's message (404 is a unit
        # case: meshd waits 30 s before it retries one)
        self.api.apply(virtual_service("v1"))
        self.start()
        self.connect()
        self.wait_routes(lambda c: only(c, "v1"), "v1")
        self.api.control("POST", "faults", {"faults": [
            {"plural": "virtualservices", "watch": False, "code": 403, "count": 2},
            {"plural": "virtualservices", "watch": False, "code": 503, "count": 2, "retryAfter": 1}]})
        # history compacted while disconnected: the watch cannot resume, meshd relists
        self.api.control("POST", "down")
        self.api.apply(virtual_service("v2"))
        self.api.control("POST", "compact")
        self.api.control("POST", "up")
        faults = lambda: self.api.control("GET", "faults")["faults"]
        def all_answered():
            # meanwhile v1 is served, never nothing
            self.assertTrue(only(self.client.call(10), "v1"))
            return all(f["hits"] >= f["count"] for f in faults())
        wait_for(all_answered, timeout=60, interval=0.2, what="the four refused relists")
        self.assertEqual(self.meshd.http("/ready")[0], 200)
        self.wait_routes(lambda c: only(c, "v2"), "the change once the API answers again")
        logs = [l for l in self.meshd.logs().splitlines() if "HTTP 403 Forbidden" in l]
        self.assertTrue(logs)
        self.assertIn("virtualservices.networking.istio.io: list refused", logs[0])
        self.assertIn("cannot list resource", logs[0])
        self.assertIn(" error ", logs[0])

    def test_09_warnings_of_accepted_objects_are_printed(self):
        # Istio keeps an object its validation only warns about; the warning's
        # text is printed as the file source prints it (the deprecated
        # outlierDetection.consecutiveErrors: accepted, with a warning)
        self.api.apply({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                        "metadata": {"name": "deprecated", "namespace": "test"},
                        "spec": {"host": "other", "trafficPolicy": {"outlierDetection": {"consecutiveErrors": 5}}}})
        self.start()
        wait_for(self.meshd.ready, timeout=60, what="/ready after sync")
        logs = wait_for(lambda: [l for l in self.meshd.logs().splitlines()
                                 if " warn " in l and "DestinationRule test/deprecated" in l] or None,
                        timeout=30, what="the warning in meshd's log")
        self.assertIn("consecutiveErrors", logs[0])
        self.assertNotIn("rejected", logs[0])

    def test_10_mesh_config_from_the_istio_configmap(self):
        # Istio's MeshConfig lives in ConfigMap istio-system/istio, key mesh;
        # without --mesh-config meshd watches that one object (fieldSelector)
        def cm(name, mesh):
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "istio-system"},
                    "data": {"mesh": mesh}}

        def mesh():
            return self.meshd.json("/debug/mesh")

        self.api.apply(cm("istio", "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nconnectTimeout: 4s\n"))
        self.api.apply(cm("unrelated", "connectTimeout: 1s\n"))
        self.start()
        wait_for(lambda: mesh()["connectTimeout"] == "4s", timeout=30, what="the ConfigMap's mesh config")
        m = mesh()
        self.assertEqual(m["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY")
        self.assertEqual(m["meshd"]["source"], "ConfigMap istio-system/istio key mesh")
        cm_path = "/api/v1/namespaces/istio-system/configmaps"
        sel = [r for r in self.api.requests() if r["path"] == cm_path]
        self.assertTrue(sel)
        self.assertTrue(all(r["query"].get("fieldSelector") == "metadata.name=istio" for r in sel), sel)
        # an invalid edit: logged with the field, the last good one stays
        self.api.apply(cm("istio", "outboundTrafficPolicy:\n  mode: SOMETIMES\n"))
        wait_for(lambda: "field outboundTrafficPolicy.mode" in self.meshd.logs(), timeout=30,
                 what="the rejection in meshd's log")
        self.assertIn("ConfigMap istio-system/istio key mesh:2: field outboundTrafficPolicy.mode", self.meshd.logs())
        self.assertEqual(mesh()["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY")
        # a good edit, then the ConfigMap deleted: Istio's defaults again
        self.api.apply(cm("istio", "outboundTrafficPolicy:\n  mode: ALLOW_ANY\nconnectTimeout: 2s\n"))
        wait_for(lambda: mesh()["connectTimeout"] == "2s", timeout=30, what="the edited mesh config")
        self.assertEqual(mesh()["outboundTrafficPolicy"]["mode"], "ALLOW_ANY")
        self.api.delete("v1", "ConfigMap", "istio", ns="istio-system")
        wait_for(lambda: mesh()["connectTimeout"] == "10s", timeout=30, what="Istio's defaults after the deletion")
