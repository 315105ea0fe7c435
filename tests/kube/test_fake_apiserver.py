#!/usr/bin/python3
"""test_fake_apiserver.py - pins the API conventions fake_apiserver.py follows.

Run: /usr/bin/python3 tests/kube/test_fake_apiserver.py
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import unittest
import urllib.parse

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

    def test_crd_not_installed_is_404(self):
        self.s.control("crd", {"group": "security.istio.io", "plural": "peerauthentications", "installed": False})
        code, st = self.s.req("GET", "/apis/security.istio.io/v1/peerauthentications")
        self.assertEqual(code, 404)
        self.assertEqual(st["reason"], "NotFound")
        self.s.control("crd", {"group": "security.istio.io", "plural": "peerauthentications", "installed": True})
        code, _ = self.s.req("GET", "/apis/security.istio.io/v1/peerauthentications")
        self.assertEqual(code, 200)

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


if __name__ == "__main__":
    unittest.main()
