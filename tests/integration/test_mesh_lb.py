"""Load balancing, circuit breaking and outlier detection end to end: the
real meshd turns DestinationRules into clusters, a meshproxy sidecar
enforces them against HTTP backends on 127.0.0.x.

- ROUND_ROBIN spreads requests over every backend; RING_HASH on a header
  keeps each user on one backend while the users use both; LEAST_REQUEST
  answers and uses both;
- connectionPool (maxConnections 1, http1MaxPendingRequests 1): requests
  beyond those wait for nothing and get 503 with x-envoy-overloaded, flag UO;
- outlierDetection: a backend answering 503 is ejected (failed_outlier_check
  in meshproxy's /clusters), traffic moves to the healthy one, and comes
  back after the ejection time once the backend is healthy again.

Nothing here asserts on timing; request counts and waits are bounded.
"""
import threading
import unittest

from meshhttp import NS, Backend, MeshCase, fqdn, service_yaml, slow, tally, wait_for

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr, namespace: %(ns)s}
spec:
  host: %(rr)s
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lr, namespace: %(ns)s}
spec:
  host: %(lr)s
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky, namespace: %(ns)s}
spec:
  host: %(sticky)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb, namespace: %(ns)s}
spec:
  host: %(cb)s
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRetries: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cb, namespace: %(ns)s}
spec:
  hosts: [%(cb)s]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: %(cb)s}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: %(ns)s}
spec:
  host: %(od)s
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 0.2s
      baseEjectionTime: 2s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: od, namespace: %(ns)s}
spec:
  hosts: [%(od)s]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: %(od)s}}]
"""


class MeshLbTest(MeshCase):
    @classmethod
    def backends(cls):
        return {
            "rr-a": Backend("rr-a", "127.0.0.2"), "rr-b": Backend("rr-b", "127.0.0.3"),
            "rr-c": Backend("rr-c", "127.0.0.4"),
            "lr-a": Backend("lr-a", "127.0.0.5"), "lr-b": Backend("lr-b", "127.0.0.6"),
            "sticky-a": Backend("sticky-a", "127.0.0.7"), "sticky-b": Backend("sticky-b", "127.0.0.8"),
            "sticky-c": Backend("sticky-c", "127.0.0.9"),
            "cb": Backend("cb", "127.0.0.10"),
            "od-good": Backend("od-good", "127.0.0.11"), "od-bad": Backend("od-bad", "127.0.0.12"),
        }

    @classmethod
    def config(cls, b):
        out = {"dr.yaml": DR % {"ns": NS, "rr": fqdn("rr"), "lr": fqdn("lr"), "sticky": fqdn("sticky"),
                                "cb": fqdn("cb"), "od": fqdn("od")}}
        for svc in ("rr", "lr", "sticky", "cb", "od"):
            out[svc + ".yaml"] = service_yaml(svc, [x for k, x in sorted(b.items()) if k.split("-")[0] == svc])
        return out

    def test_round_robin(self):
        t = tally(self.many(30, "rr"))
        self.assertEqual(sum(t.get(k, 0) for k in ("rr-a", "rr-b", "rr-c")), 30, t)
        for k in ("rr-a", "rr-b", "rr-c"):
            self.assertGreaterEqual(t.get(k, 0), 5, t)

    def test_least_request(self):
        t = tally(self.many(40, "lr"))
        self.assertEqual(t.get("lr-a", 0) + t.get("lr-b", 0), 40, t)
        self.assertGreater(t.get("lr-a", 0), 0, t)
        self.assertGreater(t.get("lr-b", 0), 0, t)

    def test_ring_hash_sticky(self):
        used = set()
        for u in range(20):
            t = tally(self.many(5, "sticky", "/", {"x-user": "user-%d" % u}))
            self.assertEqual(len(t), 1, "user-%d moved between backends: %r" % (u, t))
            self.assertEqual(list(t.values()), [5])
            used |= set(t)
        self.assertTrue(used <= {"sticky-a", "sticky-b", "sticky-c"}, used)
        self.assertGreaterEqual(len(used), 2, "20 users all hashed to %r" % used)

    def test_circuit_breaking(self):
        b = self.b["cb"]
        results = []
        lock = threading.Lock()

        def one():
            r = self.px.get("cb", "/hold", timeout=40)
            with lock:
                results.append(r)
        # one request holds the only connection, one may wait: the others overflow
        ts = [threading.Thread(target=one) for _ in range(6)]
        try:
            ts[0].start()
            wait_for(lambda: b.holding >= 1, what="the first request held by the backend")
            for t in ts[1:]:
                t.start()
            wait_for(lambda: len(results) >= 4, what="the overflowing requests answered")
        finally:
            b.release()
            for t in ts:
                t.join(60)
            b.gate.clear()
        over = [r for r in results if r.status == 503]
        self.assertGreaterEqual(len(over), 4, results)
        self.assertGreaterEqual(len([r for r in results if r.status == 200]), 1, results)
        for r in over:
            self.assertEqual(r.headers.get("x-envoy-overloaded"), "true", r)
        self.assertLessEqual(b.count(), 2)
        wait_for(lambda: sum(1 for x in self.px.access_log() if " /hold " in x and " 503 UO " in x) >= 4,
                 what="UO in the access log")
        # the breaker lets requests through again once the pool is free
        self.assertEqual(self.px.get("cb", "/after").status, 200)

    def ejected(self, backend):
        needle = "%s:%d::health_flags::" % (backend.ip, backend.port)
        for line in self.px.clusters().splitlines():
            if line.startswith("outbound|8080||%s::" % fqdn("od")) and needle in line:
                return "failed_outlier_check" in line
        return False

    def test_outlier_detection(self):
        good, bad = self.b["od-good"], self.b["od-bad"]
        bad.fail_all = True
        try:
            def bad_ejected():
                self.px.get("od", "/probe")
                return self.ejected(bad)
            wait_for(bad_ejected, timeout=60, interval=0.1, what="the failing backend ejected in /clusters")
            self.assertFalse(self.ejected(good))
            # traffic moved away: every answer from the healthy backend
            before = bad.count()
            t = tally(self.many(20, "od", "/after-ejection"))
            self.assertEqual(t, {"od-good": 20})
            self.assertEqual(bad.count(), before)
        finally:
            bad.fail_all = False
        # healthy again: after the ejection time it is back in /clusters and gets traffic
        wait_for(lambda: not self.ejected(bad), timeout=120 if slow() else 60, what="the ejection ending")
        before = bad.count()

        def bad_used():
            return self.px.get("od", "/back").backend == "od-bad"
        wait_for(bad_used, timeout=30, what="traffic back on the recovered backend")
        self.assertGreater(bad.count(), before)


if __name__ == "__main__":
    unittest.main()
