"""meshctl proxy-config as istioctl users type it, against the real meshd
and a real meshproxy sidecar it configures over ADS:

- istioctl's filters narrow each table to the expected rows: clusters
  --fqdn/--port/--subset/--direction, listeners --port/--type, routes
  --name, endpoints --cluster/--address/--status; through a proxy's admin
  port (--admin) and through meshd's /debug/config_dump (PROXY_ID);
- `all` prints the sections one after another; -o yaml reads back;
- endpoints --admin reads the proxy's live /clusters: a backend ejected by
  outlier detection shows OUTLIER CHECK FAILED, its healthy peer OK;
- bad filter values exit 2 with a message naming the flag.

Nothing here asserts on timing; every wait is bounded.
"""
import re
import subprocess
import unittest

from meshhttp import NS, Backend, MeshCase, PORT, fqdn, service_yaml, wait_for
from meshtest import MESHCTL

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: %(ns)s}
spec:
  host: %(od)s
  subsets:
  - {name: v1, labels: {version: v1}}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 0.2s
      baseEjectionTime: 60s
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


def rows(out):
    """The table's data rows, each split on runs of spaces into cells."""
    lines = [x for x in out.splitlines() if x.strip()]
    return [re.split(r" {3,}", x.strip()) for x in lines[1:]]


class MeshctlProxyConfigTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.21"),
                "od-good": Backend("od-good", "127.0.0.22"), "od-bad": Backend("od-bad", "127.0.0.23")}

    @classmethod
    def config(cls, b):
        return {"dr.yaml": DR % {"ns": NS, "od": fqdn("od")},
                "web.yaml": service_yaml("web", [b["web"]]),
                "od.yaml": service_yaml("od", [b["od-good"], b["od-bad"]])}

    def meshctl(self, *args):
        r = subprocess.run([MESHCTL, "proxy-config"] + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def admin(self, typ, *args):
        rc, out, err = self.meshctl(typ, "--admin", "127.0.0.1:%d" % self.px.admin_port, *args)
        self.assertEqual(rc, 0, out + err)
        return out

    def test_cluster_filters(self):
        web, od = fqdn("web"), fqdn("od")
        everything = rows(self.admin("clusters"))
        self.assertIn([web, str(PORT), "-", "outbound", "EDS"], everything)
        self.assertIn([od, str(PORT), "v1", "outbound", "EDS"], everything)
        # --fqdn: only web's clusters
        got = rows(self.admin("clusters", "--fqdn", web))
        self.assertEqual(got, [[web, str(PORT), "-", "outbound", "EDS"]])
        # --subset: od's v1 subset alone
        self.assertEqual(rows(self.admin("clusters", "--subset", "v1")), [[od, str(PORT), "v1", "outbound", "EDS"]])
        # --direction / --port: each row has them
        got = rows(self.admin("clusters", "--direction", "outbound", "--port", str(PORT)))
        self.assertTrue(got and all(r[1] == str(PORT) and r[3] == "outbound" for r in got), got)
        self.assertLess(len(got), len(everything))
        self.assertEqual(rows(self.admin("clusters", "--port", "1")), [])
        # the same filters through meshd's view of the proxy
        rc, out, err = self.meshctl("clusters", self.px.node_id, "--meshd", "127.0.0.1:%d" % self.meshd.http_port,
                                    "--fqdn", web)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(rows(out), [[web, str(PORT), "-", "outbound", "EDS"]])

    def test_listener_and_route_filters(self):
        everything = rows(self.admin("listeners"))
        got = rows(self.admin("listeners", "--port", str(PORT)))
        self.assertTrue(got, everything)
        self.assertTrue(all(r[2] == str(PORT) for r in got), got)
        self.assertLess(len(got), len(everything))
        # istioctl's types: 0.0.0.0_8080 has its HTTP chain and a TCP passthrough
        # default chain (HTTP+TCP); virtualOutbound TCP only (BlackHoleCluster not counted)
        self.assertEqual({r[0] for r in rows(self.admin("listeners", "--type", "http+tcp"))}, {"0.0.0.0_%d" % PORT})
        tcp = {r[0] for r in rows(self.admin("listeners", "--type", "TCP"))}
        self.assertIn("virtualOutbound", tcp)
        self.assertNotIn("0.0.0.0_%d" % PORT, tcp)
        self.assertEqual(rows(self.admin("listeners", "--address", "192.0.2.1")), [])
        got = rows(self.admin("routes", "--name", str(PORT)))
        self.assertTrue(got)
        self.assertTrue(all(r[0] == str(PORT) for r in got), got)
        self.assertIn(fqdn("web"), " ".join(" ".join(r) for r in got))
        self.assertEqual(rows(self.admin("routes", "--name", "no-such-route")), [])

    def test_endpoint_filters(self):
        web = self.b["web"]
        cluster = "outbound|%d||%s" % (PORT, fqdn("web"))
        got = rows(self.admin("endpoints", "--cluster", cluster))
        self.assertEqual(got, [["%s:%d" % (web.ip, web.port), "HEALTHY", "OK", cluster]])
        got = rows(self.admin("endpoints", "--address", web.ip))
        self.assertEqual([r[3] for r in got], [cluster], got)
        got = rows(self.admin("endpoints", "--status", "healthy"))
        self.assertIn(cluster, [r[3] for r in got])
        self.assertEqual(rows(self.admin("endpoints", "--status", "unhealthy")), [])

    def test_all_and_yaml(self):
        out = self.admin("all", "--fqdn", fqdn("web"))
        for section in ("listeners:", "routes:", "clusters:", "endpoints:", "secrets:"):
            self.assertIn(section + "\n", out)
        self.assertLess(out.index("listeners:"), out.index("clusters:"))
        out = self.admin("clusters", "--fqdn", fqdn("web"), "-o", "yaml")
        self.assertIn("name: outbound|%d||%s" % (PORT, fqdn("web")), out)
        self.assertTrue(out.startswith("- "), out)

    def test_bad_filters_exit_2(self):
        admin = "127.0.0.1:%d" % self.px.admin_port
        for args, msg in ((["clusters", "--port", "http"], "--port"),
                          (["clusters", "--direction", "up"], "--direction"),
                          (["listeners", "--type", "UDP"], "--type"),
                          (["endpoints", "--status", "sick"], "--status"),
                          (["routes", "--fqdn", "x"], "--fqdn"),
                          (["clusters", "-o", "xml"], "-o")):
            rc, out, err = self.meshctl(*(args + ["--admin", admin]))
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn(msg, err)

    def ejected_row(self, backend):
        cluster = "outbound|%d||%s" % (PORT, fqdn("od"))
        got = rows(self.admin("endpoints", "--cluster", cluster, "--address", backend.ip))
        return got[0] if got else None

    def test_outlier_ejection_shows_failed(self):
        good, bad = self.b["od-good"], self.b["od-bad"]
        self.assertEqual(self.ejected_row(bad)[1:3], ["HEALTHY", "OK"])
        bad.fail_all = True
        try:
            def failed():
                self.px.get("od", "/probe")
                return self.ejected_row(bad)[2] == "FAILED"
            wait_for(failed, timeout=60, interval=0.1, what="the failing backend FAILED in meshctl proxy-config")
        finally:
            bad.fail_all = False
        # EDS still says healthy: STATUS stays HEALTHY, as istioctl shows it
        self.assertEqual(self.ejected_row(bad)[1], "HEALTHY")
        self.assertEqual(self.ejected_row(good)[2], "OK")
        # and the same from /clusters itself
        flags = [x for x in self.px.clusters().splitlines()
                 if "%s:%d::health_flags::" % (bad.ip, bad.port) in x and x.startswith("outbound|%d||" % PORT)]
        self.assertTrue(flags and "failed_outlier_check" in flags[0], flags)
        rc, out, err = self.meshctl("endpoints", "--admin", "127.0.0.1:%d" % self.px.admin_port,
                                    "--address", bad.ip, "-o", "json")
        self.assertEqual(rc, 0, err)
        self.assertIn('"failed_outlier_check":true', out)


if __name__ == "__main__":
    unittest.main()
