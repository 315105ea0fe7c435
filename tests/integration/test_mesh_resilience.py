"""Retries, timeouts, faults and mirroring end to end through the real meshd
and a meshproxy sidecar, to HTTP backends on 127.0.0.x:

- a backend failing every other request: with `retries` the client sees
  only successes and the retried request carries x-envoy-attempt-count: 2;
  with `attempts: 0` the failures reach the client;
- a route timeout: 504 and flag UT in the access log;
- fault delay and abort at 50%: the share in a wide band, flags DI / FI;
- mirroring: the mirror backend gets a copy (Host with Envoy's -shadow
  suffix), the client's answer comes from the primary even when the
  mirror fails.

Nothing here asserts on timing; request counts are bounded.
"""
import unittest

from meshhttp import NS, Backend, MeshCase, fqdn, service_yaml, tally, wait_for

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: %(ns)s}
spec:
  hosts: [%(flaky)s]
  http:
  - match: [{uri: {prefix: /noretry}}]
    retries: {attempts: 0}
    route: [{destination: {host: %(flaky)s}}]
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: %(flaky)s}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow, namespace: %(ns)s}
spec:
  hosts: [%(slow)s]
  http:
  - match: [{uri: {prefix: /fault-delay}}]
    fault:
      delay: {percentage: {value: 50}, fixedDelay: 0.02s}
    route: [{destination: {host: %(slow)s}}]
  - match: [{uri: {prefix: /fault-abort}}]
    fault:
      abort: {percentage: {value: 50}, httpStatus: 429}
    route: [{destination: {host: %(slow)s}}]
  - timeout: 0.3s
    retries: {attempts: 0}
    route: [{destination: {host: %(slow)s}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mirrored, namespace: %(ns)s}
spec:
  hosts: [%(mirrored)s]
  http:
  - route: [{destination: {host: %(mirrored)s}}]
    mirror: {host: %(shadow)s}
    mirrorPercentage: {value: 100}
"""


class MeshResilienceTest(MeshCase):
    @classmethod
    def backends(cls):
        return {
            "flaky": Backend("flaky", "127.0.0.2", fail_every=2),
            "slow": Backend("slow", "127.0.0.3"),
            "primary": Backend("primary", "127.0.0.4"),
            "shadow": Backend("shadow", "127.0.0.5"),
        }

    @classmethod
    def config(cls, b):
        return {
            "flaky.yaml": service_yaml("flaky", [b["flaky"]]),
            "slow.yaml": service_yaml("slow", [b["slow"]]),
            "mirrored.yaml": service_yaml("mirrored", [b["primary"]]),
            "shadow.yaml": service_yaml("shadow", [b["shadow"]]),
            "vs.yaml": VS % {"ns": NS, "flaky": fqdn("flaky"), "slow": fqdn("slow"),
                             "mirrored": fqdn("mirrored"), "shadow": fqdn("shadow")},
        }

    def alog_lines(self, path, n):
        """The access log lines for PATH once n of them are there (it is flushed on a timer)."""
        def lines():
            got = [x for x in self.px.access_log() if (' %s ' % path) in x]
            return got if len(got) >= n else None
        return wait_for(lines, what="%d access log lines for %s" % (n, path))

    def test_retries(self):
        b = self.b["flaky"]
        b.reset()
        t = tally(self.many(20, "flaky", "/r"))
        self.assertEqual(t, {"flaky": 20}, "a retried 503 reached the client")
        # every other request failed, so the backend saw about 30 attempts, and
        # each retry said which attempt it was
        self.assertGreater(b.count(), 20)
        attempts = [h.get("x-envoy-attempt-count") for _, _, h, _ in b.requests]
        self.assertIn("2", attempts, attempts)
        # without retries the failures show
        t = tally(self.many(20, "flaky", "/noretry"))
        self.assertGreater(t.get(503, 0), 0, t)

    def test_timeout(self):
        r = self.px.get("slow", "/delay/3000")
        self.assertEqual(r.status, 504, r)
        self.alog_lines("/delay/3000", 1)
        line = self.alog_lines("/delay/3000", 1)[-1]
        self.assertIn(" 504 UT ", line)
        r = self.px.get("slow", "/delay/1")
        self.assertEqual(r.status, 200, r)

    def test_fault_delay(self):
        n = 40
        t = tally(self.many(n, "slow", "/fault-delay"))
        self.assertEqual(t, {"slow": n})
        lines = self.alog_lines("/fault-delay", n)
        di = sum(1 for x in lines if " 200 DI " in x)
        # 50% of 40 (sd ~3.2)
        self.assertGreaterEqual(di, 6, lines)
        self.assertLessEqual(di, 34, lines)

    def test_fault_abort(self):
        n = 100
        before = self.b["slow"].count()
        t = tally(self.many(n, "slow", "/fault-abort"))
        aborted = t.get(429, 0)
        self.assertEqual(aborted + t.get("slow", 0), n, t)
        self.assertGreaterEqual(aborted, 20, t)
        self.assertLessEqual(aborted, 80, t)
        # aborted requests never reached the backend
        self.assertEqual(self.b["slow"].count() - before, n - aborted)
        lines = self.alog_lines("/fault-abort", n)
        self.assertEqual(sum(1 for x in lines if " 429 FI " in x), aborted)

    def test_mirror(self):
        p, s = self.b["primary"], self.b["shadow"]
        p.reset()
        s.reset()
        t = tally(self.many(10, "mirrored", "/m"))
        self.assertEqual(t, {"primary": 10})
        wait_for(lambda: s.count() >= 10, what="the mirror backend receiving the copies")
        self.assertEqual(s.last()[2]["host"].split(":")[0], fqdn("mirrored") + "-shadow")
        # the mirror failing changes nothing for the client
        s.fail_all = True
        try:
            t = tally(self.many(10, "mirrored", "/m2"))
            self.assertEqual(t, {"primary": 10})
            wait_for(lambda: s.count() >= 20, what="the failing mirror receiving the copies")
        finally:
            s.fail_all = False


if __name__ == "__main__":
    unittest.main()
