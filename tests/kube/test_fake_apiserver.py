#!/usr/bin/python3
"""test_fake_apiserver.py - pins the API conventions fake_apiserver.py follows.

Run: /usr/bin/python3 tests/kube/test_fake_apiserver.py
"""

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


class FakeApiServer:
    def __init__(self, *args):
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_apiserver.py"), "--port", "0"]
                                     + list(args), stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.proc.stdout.close()

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def req(self, method, path, body=None, headers=None, ctype="application/json"):
        c = self.conn()
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = ctype
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, (json.loads(raw) if raw else None)

    def control(self, what, body=None, method="POST"):
        code, out = self.req(method, "/_control/" + what, body if body is not None else ({} if method == "POST" else None))
        assert code == 200, (what, code, out)
        return out

    def apply(self, obj):
        code, out = self.req("POST", "/_control/apply", obj)
        assert code in (200, 201), out
        return out

    def watch_events(self, path, n=None, until_end=True):
        """Open a watch and read events until the stream ends (or n events)."""
        c = self.conn()
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200, r.status
        assert r.getheader("Transfer-Encoding") == "chunked"
        evs = []
        while True:
            line = r.readline()
            if not line:
                break
            evs.append(json.loads(line))
            if n is not None and len(evs) >= n:
                break
        c.close()
        return evs


def vs(name, ns="default", host="reviews"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]}}


def svc(name, ns="default"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80}]}}


VS_PATH = "/apis/networking.istio.io/v1/virtualservices"


class Conventions(unittest.TestCase):
    def setUp(self):
        self.s = FakeApiServer()

    def tearDown(self):
        self.s.close()

    def test_metadata_and_global_resource_version(self):
        a = self.s.apply(vs("a"))
        b = self.s.apply(svc("b"))
        self.assertEqual(int(b["metadata"]["resourceVersion"]), int(a["metadata"]["resourceVersion"]) + 1)
        for o in (a, b):
            self.assertTrue(o["metadata"]["uid"])
            self.assertTrue(o["metadata"]["creationTimestamp"].endswith("Z"))
            self.assertEqual(o["metadata"]["generation"], 1)
        a["spec"]["hosts"] = ["x"]
        a2 = self.s.apply(a)
        self.assertEqual(a2["metadata"]["generation"], 2)
        self.assertEqual(a2["metadata"]["uid"], a["metadata"]["uid"])
        a2["metadata"]["labels"] = {"k": "v"}
        a3 = self.s.apply(a2)
        self.assertEqual(a3["metadata"]["generation"], 2, "metadata-only change keeps generation")

    def test_list_items_and_kinds(self):
        self.s.apply(vs("b"))
        self.s.apply(vs("a", ns="other"))
        self.s.apply(svc("s"))
        code, l = self.s.req("GET", VS_PATH)
        self.assertEqual(code, 200)
        self.assertEqual(l["kind"], "VirtualServiceList")
        self.assertEqual([(i["metadata"]["namespace"], i["metadata"]["name"]) for i in l["items"]],
                         [("default", "b"), ("other", "a")])
        self.assertEqual(l["items"][0]["kind"], "VirtualService", "custom resources keep kind in lists")
        code, l = self.s.req("GET", "/apis/networking.istio.io/v1/namespaces/other/virtualservices")
        self.assertEqual(len(l["items"]), 1)
        code, l = self.s.req("GET", "/api/v1/services")
        self.assertNotIn("kind", l["items"][0], "built-in items carry no kind in lists")
        self.assertEqual(l["metadata"]["resourceVersion"], self.s.control("state", method="GET")["resourceVersion"])
        code, l = self.s.req("GET", "/apis/networking.istio.io/v1beta1/virtualservices")
        self.assertEqual(l["items"][0]["apiVersion"], "networking.istio.io/v1beta1")

    def test_pagination_is_consistent_and_expires(self):
        for i in range(7):
            self.s.apply(vs("vs-%d" % i))
        code, p1 = self.s.req("GET", VS_PATH + "?limit=3")
        self.assertEqual(len(p1["items"]), 3)
        self.assertEqual(p1["metadata"]["remainingItemCount"], 4)
        rv = p1["metadata"]["resourceVersion"]
        # changes after the first page do not show in later pages
        self.s.control("delete", vs("vs-5"))
        self.s.apply(vs("vs-9"))
        names = [i["metadata"]["name"] for i in p1["items"]]
        cont = p1["metadata"]["continue"]
        while cont:
            code, p = self.s.req("GET", VS_PATH + "?limit=3&continue=" + urllib.parse.quote(cont))
            self.assertEqual(code, 200)
            self.assertEqual(p["metadata"]["resourceVersion"], rv)
            names += [i["metadata"]["name"] for i in p["items"]]
            cont = p["metadata"].get("continue")
        self.assertEqual(names, ["vs-%d" % i for i in range(7)])
        code, p1 = self.s.req("GET", VS_PATH + "?limit=3")
        self.s.apply(vs("vs-10"))
        self.s.control("compact")
        code, p = self.s.req("GET", VS_PATH + "?limit=3&continue=" + urllib.parse.quote(p1["metadata"]["continue"]))
        self.assertEqual(code, 410)
        self.assertEqual((p["kind"], p["reason"], p["code"]), ("Status", "Expired", 410))

    def test_watch_from_resource_version(self):
        a = self.s.apply(vs("a"))
        rv = a["metadata"]["resourceVersion"]
        self.s.apply(svc("other-kind"))
        a["spec"]["hosts"] = ["y"]
        self.s.apply(a)
        self.s.control("delete", vs("a"))
        evs = self.s.watch_events(VS_PATH + "?watch=true&timeoutSeconds=1&resourceVersion=" + rv)
        self.assertEqual([e["type"] for e in evs], ["MODIFIED", "DELETED"])
        self.assertEqual(evs[0]["object"]["kind"], "VirtualService")
        self.assertGreater(int(evs[1]["object"]["metadata"]["resourceVersion"]),
                           int(evs[0]["object"]["metadata"]["resourceVersion"]))

    def test_watch_without_resource_version_starts_with_state(self):
        self.s.apply(vs("a"))
        self.s.apply(vs("b"))
        evs = self.s.watch_events(VS_PATH + "?watch=1&timeoutSeconds=1")
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "a"), ("ADDED", "b")])

    def test_watch_live_events(self):
        a = self.s.apply(vs("a"))
        got = []
        t = threading.Thread(target=lambda: got.extend(self.s.watch_events(
            VS_PATH + "?watch=true&timeoutSeconds=30&resourceVersion=" + a["metadata"]["resourceVersion"], n=1)))
        t.start()
        self.s.apply(vs("b"))
        t.join()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got], [("ADDED", "b")])

    def test_field_selector_by_name(self):
        # meshd watches one ConfigMap (istio-system/istio) this way
        a = self.s.apply(vs("a"))
        self.s.apply(vs("b"))
        code, l = self.s.req("GET", VS_PATH + "?fieldSelector=metadata.name%3Db")
        self.assertEqual(code, 200)
        self.assertEqual([i["metadata"]["name"] for i in l["items"]], ["b"])
        code, _ = self.s.req("GET", VS_PATH + "?fieldSelector=spec.hosts%3Dx")
        self.assertEqual(code, 400)
        a["spec"]["hosts"] = ["z"]
        self.s.apply(a)
        self.s.control("delete", vs("b"))
        evs = self.s.watch_events(VS_PATH + "?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Db"
                                  "&resourceVersion=" + a["metadata"]["resourceVersion"])
        # b added after a, then deleted; a's own change is filtered out
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "b"), ("DELETED", "b")])
        evs = self.s.watch_events(VS_PATH + "?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Da")
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "a")])

    def test_watch_too_old_is_410(self):
        a = self.s.apply(vs("a"))
        self.s.apply(vs("b"))
        self.s.control("compact")
        evs = self.s.watch_events(VS_PATH + "?watch=true&resourceVersion=" + a["metadata"]["resourceVersion"])
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "ERROR")
        self.assertEqual(evs[0]["object"]["code"], 410)
        st = self.s.control("state", method="GET")
        evs = self.s.watch_events(VS_PATH + "?watch=true&timeoutSeconds=1&resourceVersion=" + st["resourceVersion"])
        self.assertEqual(evs, [], "watching from the current version after compaction is fine")

    def test_bookmarks(self):
        a = self.s.apply(vs("a"))
        self.s.apply(svc("s"))  # advances the global version only
        got = []
        path = VS_PATH + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=30&resourceVersion=" + \
            a["metadata"]["resourceVersion"]
        t = threading.Thread(target=lambda: got.extend(self.s.watch_events(path, n=1)))
        t.start()
        while self.s.control("state", method="GET")["activeWatches"] < 1:
            pass
        bm = self.s.control("bookmark")
        t.join()
        self.assertEqual(got[0]["type"], "BOOKMARK")
        self.assertEqual(got[0]["object"]["metadata"]["resourceVersion"], bm["resourceVersion"])
        self.assertGreater(int(bm["resourceVersion"]), int(a["metadata"]["resourceVersion"]))
        # without allowWatchBookmarks: none
        self.s.control("config", {"bookmark_interval": 0.05})
        evs = self.s.watch_events(VS_PATH + "?watch=true&timeoutSeconds=1&resourceVersion=" + bm["resourceVersion"])
        self.assertEqual(evs, [])

    def test_drop_watches(self):
        a = self.s.apply(vs("a"))
        c = self.s.conn()
        c.request("GET", VS_PATH + "?watch=true&resourceVersion=" + a["metadata"]["resourceVersion"])
        r = c.getresponse()
        while self.s.control("state", method="GET")["activeWatches"] < 1:
            pass
        self.s.control("drop-watches")
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        c.close()

    def test_down_and_up(self):
        self.s.control("down")
        c = self.s.conn()
        c.request("GET", VS_PATH)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            c.getresponse()
        c.close()
        self.s.control("up")
        code, _ = self.s.req("GET", VS_PATH)
        self.assertEqual(code, 200)

    def test_deployment_gets_its_replicaset_and_pods(self):
        """A Deployment created through the API gets a ReplicaSet NAME-HASH and spec.replicas Pods,
        created as the ReplicaSet controller creates them (generateName, pod-template-hash, the
        ReplicaSet as controlling owner); a dry run creates nothing; the workload kinds kubectl
        applies from deploy/ are stored."""
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
        path = "/apis/apps/v1/namespaces/default/deployments"
        code, _ = self.s.req("POST", path + "?dryRun=All", dep)
        self.assertEqual(code, 201)
        self.assertEqual(self.s.req("GET", "/api/v1/namespaces/default/pods")[1]["items"], [])
        code, _ = self.s.req("POST", path, dep)
        self.assertEqual(code, 201)
        (rs,) = self.s.req("GET", "/apis/apps/v1/namespaces/default/replicasets")[1]["items"]
        phash = rs["metadata"]["labels"]["pod-template-hash"]
        self.assertEqual(rs["metadata"]["name"], "web-" + phash)
        self.assertEqual(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment")
        pods = self.s.req("GET", "/api/v1/namespaces/default/pods")[1]["items"]
        self.assertEqual(len(pods), 2)
        for pod in pods:
            md = pod["metadata"]
            self.assertEqual(md["generateName"], "web-%s-" % phash)
            self.assertTrue(md["name"].startswith(md["generateName"]))
            self.assertEqual(md["labels"], {"app": "web", "pod-template-hash": phash})
            self.assertEqual([(r["kind"], r["name"], r["controller"]) for r in md["ownerReferences"]],
                             [("ReplicaSet", rs["metadata"]["name"], True)])
        for path, obj in (("/api/v1/namespaces/default/serviceaccounts",
                           {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
                          ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                           {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                            "metadata": {"name": "things.example.com"}})):
            self.assertEqual(self.s.req("POST", path, obj)[0], 201, path)

    def test_crd_not_installed_is_404(self):
        self.s.control("crd", {"group": "security.istio.io", "plural": "peerauthentications", "installed": False})
        code, st = self.s.req("GET", "/apis/security.istio.io/v1/peerauthentications")
        self.assertEqual(code, 404)
        self.assertEqual(st["reason"], "NotFound")
        self.s.control("crd", {"group": "security.istio.io", "plural": "peerauthentications", "installed": True})
        code, _ = self.s.req("GET", "/apis/security.istio.io/v1/peerauthentications")
        self.assertEqual(code, 200)

    def test_faults_answer_as_the_api_server(self):
        self.s.control("faults", {"faults": [
            {"plural": "virtualservices", "watch": False, "code": 429, "retryAfter": 3, "count": 1},
            {"plural": "virtualservices", "watch": True, "code": 403}]})
        c = self.s.conn()
        c.request("GET", VS_PATH)
        r = c.getresponse()
        st = json.loads(r.read())
        self.assertEqual(r.status, 429)
        self.assertEqual(r.getheader("Retry-After"), "3")
        self.assertEqual((st["reason"], st["code"], st["details"]["retryAfterSeconds"]), ("TooManyRequests", 429, 3))
        code, _ = self.s.req("GET", VS_PATH)  # count 1: the next list is answered
        self.assertEqual(code, 200)
        code, st = self.s.req("GET", VS_PATH + "?watch=true&resourceVersion=1")
        self.assertEqual((code, st["reason"]), (403, "Forbidden"))
        self.assertIn('cannot watch resource "virtualservices" in API group "networking.istio.io"', st["message"])
        faults = self.s.control("faults", method="GET")["faults"]
        self.assertEqual([f["hits"] for f in faults], [1, 1])
        log = self.s.control("requests", method="GET")["requests"]
        self.assertEqual([e.get("code") for e in log if e["path"] == VS_PATH], [429, None, 403])

    def test_bearer_tokens(self):
        self.s.control("tokens", {"tokens": ["good"]})
        code, st = self.s.req("GET", VS_PATH)
        self.assertEqual(code, 401)
        code, st = self.s.req("GET", VS_PATH, headers={"Authorization": "Bearer bad"})
        self.assertEqual(code, 401)
        code, _ = self.s.req("GET", VS_PATH, headers={"Authorization": "Bearer good"})
        self.assertEqual(code, 200)

    def test_configmap_and_lease_writes(self):
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
        code, o = self.s.req("POST", "/api/v1/namespaces/istio-system/configmaps", cm)
        self.assertEqual(code, 201)
        self.assertEqual(o["metadata"]["namespace"], "istio-system")
        code, st = self.s.req("POST", "/api/v1/namespaces/istio-system/configmaps", cm)
        self.assertEqual((code, st["reason"]), (409, "AlreadyExists"))
        stale = dict(o, data={"k": "2"})
        code, o2 = self.s.req("PUT", "/api/v1/namespaces/istio-system/configmaps/c", stale)
        self.assertEqual(code, 200)
        code, st = self.s.req("PUT", "/api/v1/namespaces/istio-system/configmaps/c", stale)
        self.assertEqual((code, st["reason"]), (409, "Conflict"))
        code, o3 = self.s.req("PATCH", "/api/v1/namespaces/istio-system/configmaps/c", {"data": {"j": "x", "k": None}},
                              ctype="application/merge-patch+json")
        self.assertEqual(code, 200)
        self.assertEqual(o3["data"], {"j": "x"})
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "meshd"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
        path = "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases"
        code, l = self.s.req("POST", path, lease)
        self.assertEqual(code, 201)
        l["spec"]["holderIdentity"] = "b"
        code, l2 = self.s.req("PUT", path + "/meshd", l)
        self.assertEqual((code, l2["spec"]["holderIdentity"]), (200, "b"))
        code, st = self.s.req("PUT", path + "/meshd", l)
        self.assertEqual(code, 409, "a second writer with the old version loses")
        code, _ = self.s.req("DELETE", path + "/meshd")
        self.assertEqual(code, 200)
        code, _ = self.s.req("GET", path + "/meshd")
        self.assertEqual(code, 404)

    def test_token_review(self):
        self.s.control("tokenreviews", {"tokens": {"t1": {"username": "system:serviceaccount:ns1:sa1",
                                                           "uid": "u1", "groups": ["system:serviceaccounts"]}}})
        path = "/apis/authentication.k8s.io/v1/tokenreviews"
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t1"}}
        code, r = self.s.req("POST", path, review)
        self.assertEqual(code, 201)
        self.assertTrue(r["status"]["authenticated"])
        self.assertEqual(r["status"]["user"]["username"], "system:serviceaccount:ns1:sa1")
        review["spec"]["token"] = "nope"
        code, r = self.s.req("POST", path, review)
        self.assertFalse(r["status"]["authenticated"])

    def test_request_log(self):
        self.s.req("GET", VS_PATH + "?limit=500")
        log = self.s.control("requests", method="GET")["requests"]
        self.assertEqual(log[-1]["path"], VS_PATH)
        self.assertEqual(log[-1]["query"], {"limit": "500"})


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    """A CA and a serving certificate for istiod.istio-system.svc signed by it (made at test time)."""
    key, crt = os.path.join(d, name + "-ca.key"), os.path.join(d, name + "-ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", crt, "-days", "2", "-subj", "/CN=" + name + " test CA")
    skey, csr, scrt = (os.path.join(d, name + x) for x in ("-srv.key", ".csr", "-srv.pem"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", skey, "-out", csr,
            "-subj", "/CN=istiod.istio-system.svc")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:istiod.istio-system.svc\n")
    openssl("x509", "-req", "-in", csr, "-CA", crt, "-CAkey", key, "-CAcreateserial", "-out", scrt, "-days", "2",
            "-extfile", ext)
    with open(crt) as f:
        return f.read(), scrt, skey


class Webhook:
    """An HTTPS admission webhook: records every AdmissionReview and answers from self.answer(request)."""

    def __init__(self, cert, key):
        self.reviews = []
        self.answer = lambda req: {"allowed": True}
        hook = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.reviews.append((self.path, review))
                resp = dict(hook.answer(review["request"]), uid=review["request"]["uid"])
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": resp}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller gave up (timeoutSeconds)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def webhook_config(kind, name, ca_pem, rules, **extra):
    wh = {"name": name, "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system",
                                                     "path": "/hook", "port": 443}},
          "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"]}
    if ca_pem:
        wh["clientConfig"]["caBundle"] = base64.b64encode(ca_pem.encode()).decode()
    wh.update(extra)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind + "WebhookConfiguration",
            "metadata": {"name": name}, "webhooks": [wh]}


VS_RULE = [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["networking.istio.io"], "apiVersions": ["*"],
            "resources": ["*"]}]
POD_RULE = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
VS_NS = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"


class Admission(unittest.TestCase):
    """The admission chain: what the real API server does with the webhook configurations it stores."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fakeapi-admission-")
        cls.ca, cert, key = make_ca(cls.tmp, "good")
        cls.other_ca, _, _ = make_ca(cls.tmp, "other")
        cls.hook = Webhook(cert, key)

    @classmethod
    def tearDownClass(cls):
        cls.hook.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.s = FakeApiServer()
        self.s.control("webhook-hosts", {"hosts": {"istiod.istio-system.svc:443": "127.0.0.1:%d" % self.hook.port}})
        self.hook.reviews.clear()
        self.hook.answer = lambda req: {"allowed": True}

    def tearDown(self):
        self.s.close()

    def create(self, path, obj, query=""):
        c = self.s.conn()
        c.request("POST", path + query, body=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read())
        c.close()
        return r.status, out, r.getheader("Warning")

    def test_discovery_for_kubectl(self):
        code, out = self.s.req("GET", "/api")
        self.assertEqual((code, out["kind"], out["versions"]), (200, "APIVersions", ["v1"]))
        code, out = self.s.req("GET", "/apis")
        groups = {g["name"]: g for g in out["groups"]}
        self.assertEqual(groups["networking.istio.io"]["preferredVersion"]["version"], "v1")
        self.assertIn("admissionregistration.k8s.io", groups)
        code, out = self.s.req("GET", "/apis/networking.istio.io/v1")
        res = {r["name"]: r for r in out["resources"]}
        self.assertEqual((res["virtualservices"]["kind"], res["virtualservices"]["namespaced"]),
                         ("VirtualService", True))
        self.assertIn("vs", res["virtualservices"]["shortNames"])
        code, out = self.s.req("GET", "/apis/admissionregistration.k8s.io/v1")
        self.assertFalse({r["name"]: r for r in out["resources"]}["validatingwebhookconfigurations"]["namespaced"])
        self.assertEqual(self.s.req("GET", "/apis/nope.io/v1")[0], 404)

    def test_json_patch(self):
        self.s.apply(vs("a"))
        path = VS_NS + "/a"
        code, out = self.s.req("PATCH", path, [{"op": "add", "path": "/spec/hosts/-", "value": "b"},
                                              {"op": "replace", "path": "/spec/hosts/0", "value": "c"}],
                               ctype="application/json-patch+json")
        self.assertEqual((code, out["spec"]["hosts"]), (200, ["c", "b"]))
        code, out = self.s.req("PATCH", path, [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                                              {"op": "remove", "path": "/spec"}],
                               ctype="application/json-patch+json")
        self.assertEqual(code, 422)
        self.assertEqual(self.s.req("GET", path)[1]["spec"]["hosts"], ["c", "b"])

    def test_strategic_merge_by_name(self):
        cfg = webhook_config("Validating", "v", self.ca, VS_RULE)
        cfg["webhooks"].append(dict(cfg["webhooks"][0], name="w"))
        self.s.apply(cfg)
        path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/v"
        code, out = self.s.req("PATCH", path, {"$setElementOrder/webhooks": [{"name": "v"}, {"name": "w"}],
                                              "webhooks": [{"name": "w", "failurePolicy": "Ignore"}]},
                               ctype="application/strategic-merge-patch+json")
        self.assertEqual(code, 200)
        self.assertEqual([(w["name"], w.get("failurePolicy"), w["rules"]) for w in out["webhooks"]],
                         [("v", None, VS_RULE), ("w", "Ignore", VS_RULE)])
        code, out = self.s.req("PATCH", path, {"webhooks": [{"name": "v", "$patch": "delete"}]},
                               ctype="application/strategic-merge-patch+json")
        self.assertEqual([w["name"] for w in out["webhooks"]], ["w"])

    def test_validating_denial_in_api_server_format(self):
        self.s.apply(webhook_config("Validating", "validation.test.io", self.ca, VS_RULE))
        self.hook.answer = lambda req: ({"allowed": True, "warnings": ["careful"]}
                                        if req["object"]["metadata"]["name"] == "ok" else
                                        {"allowed": False, "status": {"message": "configuration is invalid: x"}})
        code, out, _ = self.create(VS_NS, vs("bad"))
        self.assertEqual(code, 400)
        self.assertEqual(out["message"], 'admission webhook "validation.test.io" denied the request: '
                                         'configuration is invalid: x')
        self.assertEqual((out["kind"], out["status"], out["code"]), ("Status", "Failure", 400))
        self.assertEqual(self.s.req("GET", VS_NS + "/bad")[0], 404)
        code, out, warning = self.create(VS_NS, vs("ok"))
        self.assertEqual(code, 201)
        self.assertEqual(warning, '299 - "careful"')
        path, review = self.hook.reviews[-1]
        self.assertEqual(path, "/hook?timeout=10s")
        req = review["request"]
        self.assertEqual((review["apiVersion"], req["operation"], req["namespace"], req["name"], req["dryRun"]),
                         ("admission.k8s.io/v1", "CREATE", "default", "ok", False))
        self.assertEqual(req["resource"], {"group": "networking.istio.io", "version": "v1",
                                           "resource": "virtualservices"})
        self.assertEqual(req["object"]["kind"], "VirtualService")
        # an update carries the old object; a webhook's own status code is kept (>= 400)
        self.hook.answer = lambda req: {"allowed": False, "status": {"code": 403, "reason": "Forbidden"}}
        code, out = self.s.req("PUT", VS_NS + "/ok", vs("ok", host="other"))
        self.assertEqual((code, out["reason"]), (403, "Forbidden"))
        self.assertEqual(out["message"], 'admission webhook "validation.test.io" denied the request: Forbidden')
        self.assertEqual(self.hook.reviews[-1][1]["request"]["oldObject"]["spec"]["hosts"], ["reviews"])
        # DELETE is not in the rules: never sent
        n = len(self.hook.reviews)
        code, _ = self.s.req("DELETE", VS_NS + "/ok")
        self.assertEqual((code, len(self.hook.reviews)), (200, n))
        # the control API writes as the test's world, not through admission
        self.s.apply(vs("bad"))
        self.assertEqual(len(self.hook.reviews), n)

    def test_mutating_patch_and_selectors(self):
        self.s.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "on",
                                                                           "labels": {"istio-injection": "enabled"}}})
        self.s.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "off"}})
        self.s.apply(webhook_config(
            "Mutating", "inject.test.io", self.ca, POD_RULE,
            namespaceSelector={"matchExpressions": [{"key": "istio-injection", "operator": "In",
                                                     "values": ["enabled"]}]},
            objectSelector={"matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn",
                                                  "values": ["false"]}]}))
        patch = [{"op": "add", "path": "/spec/containers/-", "value": {"name": "istio-proxy", "image": "p"}}]
        self.hook.answer = lambda req: {"allowed": True, "patchType": "JSONPatch",
                                        "patch": base64.b64encode(json.dumps(patch).encode()).decode()}

        def pod(name, labels=None):
            return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                    "spec": {"containers": [{"name": "app", "image": "a"}]}}

        code, out, _ = self.create("/api/v1/namespaces/on/pods", pod("a"))
        self.assertEqual(code, 201)
        self.assertEqual([c["name"] for c in out["spec"]["containers"]], ["app", "istio-proxy"])
        stored = self.s.req("GET", "/api/v1/namespaces/on/pods/a")[1]
        self.assertEqual([c["name"] for c in stored["spec"]["containers"]], ["app", "istio-proxy"])
        self.assertEqual(len(self.hook.reviews), 1)
        for ns, labels in (("off", None), ("on", {"sidecar.istio.io/inject": "false"})):
            code, out, _ = self.create("/api/v1/namespaces/%s/pods" % ns, pod("b", labels))
            self.assertEqual(code, 201)
            self.assertEqual([c["name"] for c in out["spec"]["containers"]], ["app"])
        self.assertEqual(len(self.hook.reviews), 1)
        # a patch that does not apply: the API server's internal error
        patch[0]["path"] = "/spec/nothing/0"
        code, out, _ = self.create("/api/v1/namespaces/on/pods", pod("c"))
        self.assertEqual((code, out["reason"]), (500, "InternalError"))

    def test_failure_policy(self):
        # the caBundle is another CA: TLS verification fails, as it does for the real server
        cfg = webhook_config("Validating", "validation.test.io", self.other_ca, VS_RULE)
        self.s.apply(cfg)
        code, out, _ = self.create(VS_NS, vs("a"))
        self.assertEqual((code, out["reason"]), (500, "InternalError"))
        self.assertTrue(out["message"].startswith('Internal error occurred: failed calling webhook '
                                                  '"validation.test.io": failed to call webhook: Post '
                                                  '"https://istiod.istio-system.svc:443/hook?timeout=10s": '),
                        out["message"])
        self.assertEqual(self.hook.reviews, [])
        cfg["webhooks"][0]["failurePolicy"] = "Ignore"
        self.s.apply(cfg)
        code, _, _ = self.create(VS_NS, vs("a"))
        self.assertEqual(code, 201)
        # no caBundle: the system's roots, which do not know the test CA either
        del cfg["webhooks"][0]["clientConfig"]["caBundle"]
        cfg["webhooks"][0]["failurePolicy"] = "Fail"
        self.s.apply(cfg)
        code, _, _ = self.create(VS_NS, vs("b"))
        self.assertEqual(code, 500)
        # the right CA: called
        cfg = webhook_config("Validating", "validation.test.io", self.ca, VS_RULE, timeoutSeconds=1)
        self.s.apply(cfg)
        code, _, _ = self.create(VS_NS, vs("b"))
        self.assertEqual((code, len(self.hook.reviews)), (201, 1))
        self.assertEqual(self.hook.reviews[0][0], "/hook?timeout=1s")
        # an answer that does not come within timeoutSeconds: an error, then the policy decides
        self.hook.answer = lambda req: time.sleep(3) or {"allowed": True}
        code, out, _ = self.create(VS_NS, vs("c"))
        self.assertEqual(code, 500, out)

    def test_dry_run(self):
        cfg = webhook_config("Validating", "validation.test.io", self.ca, VS_RULE)
        self.s.apply(cfg)
        self.hook.answer = lambda req: {"allowed": False, "status": {"message": "no"}}
        code, out, _ = self.create(VS_NS, vs("a"), "?dryRun=All")
        self.assertEqual(code, 400)
        self.assertTrue(self.hook.reviews[-1][1]["request"]["dryRun"])
        self.hook.answer = lambda req: {"allowed": True}
        rv = self.s.control("state", method="GET")["resourceVersion"]
        code, out, _ = self.create(VS_NS, vs("a"), "?dryRun=All")
        self.assertEqual((code, out["metadata"]["name"]), (201, "a"))
        self.assertEqual(self.s.req("GET", VS_NS + "/a")[0], 404)
        self.assertEqual(self.s.control("state", method="GET")["resourceVersion"], rv)
        # a webhook with side effects cannot take a dry run
        cfg["webhooks"][0]["sideEffects"] = "Some"
        self.s.apply(cfg)
        code, out, _ = self.create(VS_NS, vs("a"), "?dryRun=All")
        self.assertEqual(code, 400)
        self.assertIn("does not support dry run", out["message"])


if __name__ == "__main__":
    unittest.main()
