"""Locality load balancing end to end, as Istio does it: the real meshd
computes per-proxy EDS against the sidecar's locality (meshproxy
--locality, sent as Node.locality), a meshproxy sidecar in r1/z1 enforces it
against HTTP backends on 127.0.0.x whose WorkloadEntries carry localities.

- failover (Istio's default, on with outlier detection): every request goes
  to the backend in the sidecar's zone (priority 0) while the other zone's
  backend (priority 1) gets none; /clusters shows region, zone and
  priority; stop the z1 backend and, once outlier detection ejects it,
  traffic fails over to z2 with no more failures than the retries can't
  cover (a bounded count);
- distribute 80/20 from r1/z1: both zones are used, within wide bands;
- a proxy without locality sees one priority (nothing to prefer).

No timing asserts: request counts and waits are bounded.
"""
import unittest

from meshhttp import NS, Backend, MeshCase, Sidecar, fqdn, slow, tally, wait_for

PORT = 8080


def service(name, backends):
    """A STATIC ServiceEntry selecting WorkloadEntries with localities;
    backends: [(Backend, locality or None, extra labels)]."""
    docs = ["""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: %(name)s}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": PORT}]
    for b, loc, extra in backends:
        labels = "{app: %s%s}" % (name, "".join(", %s: %s" % kv for kv in extra))
        docs.append("""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-%(b)s, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(bport)d}
  labels: %(labels)s
%(loc)s""" % {"name": name, "b": b.name, "ns": NS, "ip": b.ip, "bport": b.port, "labels": labels,
             "loc": "  locality: %s\n" % loc if loc else ""})
    return "---\n".join(docs)


DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fo, namespace: %(ns)s}
spec:
  host: %(fo)s
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 0.2s
      baseEjectionTime: 300s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: split, namespace: %(ns)s}
spec:
  host: %(split)s
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        distribute:
        - from: r1/z1/*
          to: {"r1/z1/*": 80, "r1/z2/*": 20}
"""


class MeshLocalityTest(MeshCase):
    SIDECARS = {}

    @classmethod
    def backends(cls):
        return {
            "fo-z1": Backend("fo-z1", "127.0.0.2"), "fo-z2": Backend("fo-z2", "127.0.0.3"),
            "split-z1": Backend("split-z1", "127.0.0.4"), "split-z2": Backend("split-z2", "127.0.0.5"),
        }

    @classmethod
    def config(cls, b):
        return {
            "dr.yaml": DR % {"ns": NS, "fo": fqdn("fo"), "split": fqdn("split")},
            # z1's locality from the WorkloadEntry field, z2's from the
            # istio-locality label ("r1.z2"): both ways Istio reads it
            "fo.yaml": service("fo", [(b["fo-z1"], "r1/z1", ()), (b["fo-z2"], None, (("istio-locality", "r1.z2"),))]),
            "split.yaml": service("split", [(b["split-z1"], "r1/z1/a", ()), (b["split-z2"], "r1/z2/a", ())]),
        }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client", args=["--locality", "r1/z1/a"])
            cls.sidecars["nowhere"] = Sidecar(cls.meshd, "nowhere", "app=nowhere")
            for s in cls.sidecars.values():
                s.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars["client"]

    def host_lines(self, sidecar, svc, backend):
        prefix = "outbound|%d||%s::%s:%d::" % (PORT, fqdn(svc), backend.ip, backend.port)
        return {line[len(prefix):].partition("::")[0]: line[len(prefix):].partition("::")[2]
                for line in sidecar.clusters().splitlines() if line.startswith(prefix)}

    def test_1_same_zone_first_then_failover(self):
        z1, z2 = self.b["fo-z1"], self.b["fo-z2"]
        # the sidecar's EDS: z1 at priority 0, z2 at priority 1
        self.wait_applied(lambda s: self.host_lines(s, "fo", z2).get("priority") == "1", "z2 at priority 1")
        h1, h2 = self.host_lines(self.px, "fo", z1), self.host_lines(self.px, "fo", z2)
        self.assertEqual((h1.get("region"), h1.get("zone"), h1.get("priority")), ("r1", "z1", "0"), h1)
        self.assertEqual((h2.get("region"), h2.get("zone"), h2.get("priority")), ("r1", "z2", "1"), h2)
        t = tally(self.many(30, "fo", "/near"))
        self.assertEqual(t, {"fo-z1": 30})
        self.assertEqual(z2.count(), 0)
        # z1 goes away: new connections are refused, and the keep-alive
        # connection the sidecar already holds answers 503 (a draining
        # server); either failure ejects it and the rest goes to z2
        z1.fail_all = True
        z1.stop()
        results = self.many(40, "fo", "/after")
        t = tally(results)
        failed = sum(v for k, v in t.items() if k != "fo-z2")
        self.assertLessEqual(failed, 2, t)
        self.assertGreaterEqual(t.get("fo-z2", 0), 38, t)
        # every request after the first few reached z2
        self.assertEqual(tally(results[5:]), {"fo-z2": 35})
        wait_for(lambda: "failed_outlier_check" in self.host_lines(self.px, "fo", z1).get("health_flags", ""),
                 timeout=60, what="z1 ejected in /clusters")

    def test_2_distribute_80_20(self):
        a, b = self.b["split-z1"], self.b["split-z2"]
        self.wait_applied(lambda s: self.host_lines(s, "split", b).get("weight") is not None, "split hosts")
        t = tally(self.many(200, "split", "/split"))
        self.assertEqual(t.get("split-z1", 0) + t.get("split-z2", 0), 200, t)
        # 80/20 within wide bands (never flaky: 160 expected, 40 expected)
        self.assertGreaterEqual(t.get("split-z1", 0), 120, t)
        self.assertLessEqual(t.get("split-z1", 0), 190, t)
        self.assertGreaterEqual(t.get("split-z2", 0), 10, t)

    def test_3_proxy_without_locality(self):
        s = self.sidecars["nowhere"]
        z2 = self.b["fo-z2"]
        # no locality: both zones equally far, one priority
        self.wait_applied(lambda x: self.host_lines(x, "fo", z2).get("priority") == "0",
                          "one priority without locality", sidecar=s)


if __name__ == "__main__":
    unittest.main()
