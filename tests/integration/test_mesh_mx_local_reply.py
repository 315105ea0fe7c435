"""Istio's metadata exchange on a local reply of the server sidecar (issue 14).

  client --http_proxy--> client sidecar --> web sidecar (inbound 127.0.0.3:P) --x 127.0.0.1:P (nothing listens)

The web sidecar cannot reach its application and answers 503 (UF) itself.
In Istio the server sidecar's metadata exchange adds its workload to every
response it sends, a local one too, so the client's reporter="source"
series names destination_workload web-1, as Kiali's graph draws the failing
edge to web.  meshproxy used to add the headers only to responses from the
application: the series said "unknown".  Bounded requests and waits, no
timing asserted.
"""
import unittest

from meshhttp import NS, Sidecar, fqdn, slow
from meshtest import Meshd, wait_for
from test_mesh_mtls import WEB_IP, pick_port


def config(port):
    return {"web.yaml": """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(port)d}
  labels: {app: web, version: v2}
""" % {"ns": NS, "host": fqdn("web"), "port": port, "ip": WEB_IP}}


class MeshMxLocalReplyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = pick_port()  # free: the application is down
        cls.meshd = Meshd(config(cls.port))
        cls.sidecars = {}
        try:
            cls.meshd.start()
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client")
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web,version=v2", ip=WEB_IP,
                                          args=["--inbound-addr", "%s:%d" % (WEB_IP, cls.port)])
            for s in cls.sidecars.values():
                s.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish()
        for s in cls.sidecars.values():
            s.cleanup()
        if bad:
            raise AssertionError("meshproxy exited non-zero: %s" % bad)

    def series(self, sidecar, reporter):
        lines = [x for x in self.sidecars[sidecar].admin("/stats/prometheus")[1].splitlines()
                 if x.startswith("istio_requests_total{") and 'reporter="%s"' % reporter in x
                 and 'response_code="503"' in x]
        return lines

    def test_local_503_names_the_destination(self):
        url = "http://%s:%d/down" % (fqdn("web"), self.port)
        r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(self.sidecars["client"].request(url)),
                     timeout=60 if slow() else 20, what="a 503 from the web sidecar")
        self.assertEqual(r.status, 503)
        dst = wait_for(lambda: self.series("web", "destination"), timeout=20, what="the destination series")
        self.assertIn('response_flags="UF"', dst[0])
        src = wait_for(lambda: self.series("client", "source"), timeout=20, what="the source series")
        self.assertEqual(len(src), 1, src)
        self.assertIn('destination_workload="web-1"', src[0])
        self.assertIn('destination_app="web"', src[0])
        self.assertIn('destination_version="v2"', src[0])
        self.assertNotIn('destination_workload="unknown"', src[0])


if __name__ == "__main__":
    unittest.main()
