"""meshproxy's xDS client against the real meshd: meshproxy connects over
ADS (gRPC on nghttp2), /ready turns 200 once LDS, CDS and their RDS and EDS
are applied, /config_dump shows the listeners, route configs, clusters and
endpoints meshd built for the sidecar; a VirtualService edit reaches
/config_dump; meshd stopped -> meshproxy keeps its configuration and /ready
stays 200; meshd started again -> meshproxy reconnects and resyncs (an edit
made while meshd was away arrives); a route config meshproxy cannot carry
out (a header name that is not an HTTP token: meshproxy's HTTP/1.1 writer
refuses to send it, while Istio's validation lets it through) is NACKed,
the old configuration stays, and the NACK with its reason shows in meshd's
/debug/syncz.

Each test runs twice: with Delta xDS (meshproxy's default, as Istio's since
1.22) and with state of the world (--xds-protocol sotw).  Under Delta, a
meshd restart resyncs without sending again what did not change: meshproxy
says what it holds (initial_resource_versions) and its per-type
resources_received counters do not move for the types the edit left alone.

A NACKed Delta update stays in step (MeshproxyDeltaNackTest, the breaker's
repro of issue 11): a Sidecar ingress on 127.0.0.6:P1 (captureMode NONE)
moved to 10.255.255.1:P2, an address no interface has (LDS NACKed "cannot
bind", CDS ACKed), then to 127.0.0.6:P3: meshd's Delta took the NACKed
update as held and sends only "P2 removed, P3 added"; meshproxy must drop
P1 too (it used to keep it bound, answering 503, while meshd said SYNCED).

Nothing here asserts on timing; every wait is bounded.
"""
import json
import os
import re
import subprocess
import unittest

from meshhttp import NS, Backend, MeshCase, Sidecar, service_yaml, slow
from meshtest import MESHCTL, ROOT, Meshd, free_port, wait_for
from test_meshproxy_admin import Proxy

NODE_ID = "sidecar~127.0.0.1~greeter-v1.demo~demo.svc.cluster.local"
GREETER = "greeter.demo.svc.cluster.local"

# A service of the test's own (route config "9080"), so the examples' own
# VirtualServices stay as they are.
VS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  endpoints:
  - address: 127.0.0.1
    ports: {http: 50081}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-it, namespace: demo}
spec:
  hosts: [reviews.demo.svc.cluster.local]
  http:
  - name: %(route)s
    headers:
      request:
        set: {%(header)s: "1"}
    route:
    - destination: {host: reviews.demo.svc.cluster.local}
"""


def vs(route, header="x-test"):
    return VS % {"route": route, "header": json.dumps(header)}


RECEIVED = {t: "%s.resources_received" % p for t, p in (
    ("lds", "listener_manager.lds"), ("cds", "cluster_manager.cds"),
    ("rds", "control_plane.rds"), ("eds", "control_plane.eds"))}


class MeshproxyXdsTest(unittest.TestCase):
    PROTOCOL = "delta"

    @classmethod
    def setUpClass(cls):
        files = {}
        for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
            with open(os.path.join(ROOT, "examples", name)) as f:
                files[name] = f.read()
        files["zz-reviews.yaml"] = vs("first")
        cls.meshd = Meshd(files).start()
        cls.proxy = Proxy("--xds-addr", "127.0.0.1:%d" % cls.meshd.xds_port, "--xds-protocol", cls.PROTOCOL,
                          "--node-id", NODE_ID,
                          "--labels", "app=greeter,version=v1", "--service-account", "greeter",
                          # ports of its own: 15001/15006 may be taken on the machine running the tests
                          "--outbound-addr", "127.0.0.1:0", "--inbound-addr", "127.0.0.1:0")

        def ready_or_refused():
            if "no sidecar configuration generator" in cls.proxy.logs():
                return "refused"
            return cls.proxy.curl(cls.proxy.url("/ready"))[0] == 200 and "ready"
        try:
            state = wait_for(ready_or_refused, timeout=60, what="meshproxy /ready")
        except AssertionError:
            print("meshproxy's log:\n" + cls.proxy.logs()[-4000:])
            cls.tearDownClass()
            raise
        if state == "refused":
            cls.tearDownClass()
            raise unittest.SkipTest("this meshd has no sidecar generator yet (branch serve)")

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.meshd.finish()
        assert rc == 0, "meshproxy exited %s" % rc

    # ------------------------------------------------------------ helpers

    def dump(self):
        code, body = self.proxy.curl(self.proxy.url("/config_dump"))
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def section(self, dump, kind):
        for c in dump["configs"]:
            if c["@type"] == "type.googleapis.com/envoy.admin.v3." + kind:
                return c
        self.fail("no %s in /config_dump" % kind)

    def names(self, dump):
        """{kind: set of resource names} from Envoy's config_dump shape."""
        out = {}
        out["listeners"] = {x["name"] for x in self.section(dump, "ListenersConfigDump").get("dynamic_listeners", [])}
        out["clusters"] = {x["cluster"]["name"]
                           for x in self.section(dump, "ClustersConfigDump").get("dynamic_active_clusters", [])}
        out["routes"] = {x["route_config"]["name"]
                         for x in self.section(dump, "RoutesConfigDump").get("dynamic_route_configs", [])}
        out["endpoints"] = {x["endpoint_config"]["cluster_name"]
                            for x in self.section(dump, "EndpointsConfigDump").get("dynamic_endpoint_configs", [])}
        return out

    def stats(self):
        code, body = self.proxy.curl(self.proxy.url("/stats"))
        self.assertEqual(code, 200)
        return {k: v.strip() for k, _, v in (line.partition(":") for line in body.splitlines())}

    def syncz(self):
        streams = [x for x in self.meshd.json("/debug/syncz") if x.get("proxy") == NODE_ID]
        return streams[0] if streams else None

    def dump_has(self, text):
        return text in json.dumps(self.dump())

    # ------------------------------------------------------------ tests

    def test_01_ready_and_config_dump(self):
        self.assertEqual(self.proxy.curl(self.proxy.url("/ready")), (200, "LIVE\n"))
        d = self.dump()
        n = self.names(d)
        for want in ("virtualOutbound", "virtualInbound", "0.0.0.0_50051"):
            self.assertIn(want, n["listeners"])
        self.assertIn("50051", n["routes"])
        self.assertIn("9080", n["routes"])
        for want in ("outbound|50051||" + GREETER, "outbound|50051|v1|" + GREETER, "BlackHoleCluster",
                     "PassthroughCluster"):
            self.assertIn(want, n["clusters"])
        self.assertIn("outbound|50051||" + GREETER, n["endpoints"])
        # every route config a listener names is there: nothing left warming
        lds = self.section(d, "ListenersConfigDump")
        self.assertTrue(lds["version_info"])
        first = lds["dynamic_listeners"][0]["active_state"]
        self.assertEqual(first["listener"]["@type"], "type.googleapis.com/envoy.config.listener.v3.Listener")
        self.assertTrue(first["last_updated"])
        # Envoy's dump uses the .proto field names throughout, inside the resources too
        text = json.dumps(d)
        self.assertIn("\"socket_address\"", text)
        for camel in ("socketAddress", "portValue", "filterChains", "typedConfig", "virtualHosts"):
            self.assertNotIn("\"%s\"" % camel, text)
        # the status and health ports answer Istio's readiness probe
        for port in (self.proxy.status_port, self.proxy.health_port):
            self.assertEqual(self.proxy.curl(self.proxy.url("/healthz/ready", port))[0], 200, port)
        st = self.stats()
        self.assertGreaterEqual(int(st["listener_manager.lds.update_success"]), 1)
        self.assertGreaterEqual(int(st["cluster_manager.cds.update_success"]), 1)
        self.assertEqual(st["control_plane.connected_state"], "1")
        self.assertEqual(st["control_plane.warming"], "0")
        self.assertEqual(st["server.live"], "1")
        self.assertEqual(st["control_plane.xds_delta"], "1" if self.PROTOCOL == "delta" else "0")
        self.assertEqual(self.syncz()["delta"], self.PROTOCOL == "delta")

        def synced():
            s = self.syncz()
            return s and all(s["types"].get(t, {}).get("state") == "SYNCED" for t in ("lds", "rds", "cds", "eds"))
        wait_for(synced, what="meshproxy SYNCED (every type ACKed) in meshd's /debug/syncz")

    def meshctl(self, *args):
        out = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_01b_meshctl_proxy_config_admin(self):
        admin = "127.0.0.1:%d" % self.proxy.port
        out = self.meshctl("proxy-config", "clusters", "--admin", admin)
        self.assertTrue(out.startswith("SERVICE FQDN"), out)
        self.assertRegex(out, r"(?m)^%s +50051 +v1 +outbound +EDS *$" % re.escape(GREETER))
        self.assertRegex(out, r"(?m)^%s +50051 +- +outbound +EDS *$" % re.escape(GREETER))
        self.assertRegex(out, r"(?m)^PassthroughCluster\b")
        out = self.meshctl("proxy-config", "listeners", "--admin", admin)
        self.assertRegex(out, r"(?m)^0\.0\.0\.0_50051 +0\.0\.0\.0 +50051 +ALL +Route: 50051 *$")
        # one row per filter chain: virtualOutbound's catch-all goes to PassthroughCluster
        self.assertRegex(out, r"(?m)^virtualOutbound +\S+ +\d+ +.*Cluster: PassthroughCluster *$")
        out = self.meshctl("proxy-config", "endpoints", "--admin", admin)
        self.assertRegex(out, r"(?m)^\S+:\d+ +HEALTHY +OK +outbound\|50051\|\|%s *$" % re.escape(GREETER))
        out = self.meshctl("proxy-config", "routes", "--admin", admin)
        self.assertRegex(out, r"(?m)^9080 +")

    def test_02_virtual_service_edit_reaches_config_dump(self):
        self.meshd.write("zz-reviews.yaml", vs("edited-by-test"))
        wait_for(lambda: self.dump_has("edited-by-test"), what="the edited route in meshproxy's /config_dump")
        self.assertNotIn("\"first\"", json.dumps(self.dump()))

    def synced(self):
        s = self.syncz()
        return s and all(s["types"].get(t, {}).get("state") == "SYNCED" for t in ("lds", "rds", "cds", "eds"))

    def test_03_meshd_away_then_back(self):
        before = self.names(self.dump())
        wait_for(self.synced, what="meshproxy SYNCED before meshd goes")
        st = self.stats()
        attempts = int(st["control_plane.stream_attempts"])
        received = {t: int(st[k]) for t, k in RECEIVED.items()}
        self.assertEqual(self.meshd.stop(), 0)
        wait_for(lambda: self.stats()["control_plane.connected_state"] == "0", what="meshproxy seeing meshd gone")
        # still serving what it had
        self.assertEqual(self.proxy.curl(self.proxy.url("/ready")), (200, "LIVE\n"))
        self.assertEqual(self.names(self.dump()), before)
        # an edit made while meshd is away arrives once it is back
        self.meshd.write("zz-reviews.yaml", vs("after-restart"))
        self.meshd.start()
        wait_for(lambda: self.dump_has("after-restart"), timeout=90,
                 what="meshproxy resynced after meshd came back")
        self.assertGreater(int(self.stats()["control_plane.stream_attempts"]), attempts)
        self.assertEqual(self.stats()["control_plane.connected_state"], "1")
        self.assertEqual(self.names(self.dump())["listeners"], before["listeners"])
        wait_for(self.synced, what="meshproxy SYNCED with the restarted meshd")
        st = self.stats()
        got = {t: int(st[k]) - received[t] for t, k in RECEIVED.items()}
        if self.PROTOCOL == "delta":
            # what it held was not sent again: only the edited route config
            self.assertEqual(got["lds"], 0, got)
            self.assertEqual(got["cds"], 0, got)
            self.assertEqual(got["eds"], 0, got)
            self.assertEqual(got["rds"], 1, got)
        else:
            # state of the world: every LDS and CDS resource again
            self.assertGreaterEqual(got["lds"], len(before["listeners"]), got)
            self.assertGreaterEqual(got["cds"], len(before["clusters"]), got)

    def test_04_nack_keeps_old_config(self):
        wait_for(lambda: self.dump_has("after-restart"), what="the configuration of test_03")
        rejected = int(self.stats()["control_plane.rds.update_rejected"])
        self.meshd.write("zz-reviews.yaml", vs("should-be-refused", header="bad header"))

        def nacked():
            s = self.syncz()
            rds = s and s["types"].get("rds")
            return rds and rds.get("state") == "ERROR" and "not an HTTP token" in rds.get("error", "")
        wait_for(nacked, what="meshproxy's NACK with its reason in meshd's /debug/syncz")
        self.assertGreater(int(self.stats()["control_plane.rds.update_rejected"]), rejected)
        # the old route config stays, the refused one is nowhere
        text = json.dumps(self.dump())
        self.assertIn("after-restart", text)
        self.assertNotIn("should-be-refused", text)
        self.assertEqual(self.proxy.curl(self.proxy.url("/ready")), (200, "LIVE\n"))
        self.assertIn("NACK rds", self.proxy.logs())
        # fixed again: ACKed, applied
        self.meshd.write("zz-reviews.yaml", vs("fixed"))
        wait_for(lambda: self.dump_has("\"fixed\""), what="the fixed route in /config_dump")


class MeshproxyXdsSotwTest(MeshproxyXdsTest):
    PROTOCOL = "sotw"


NACK_BIND = "127.0.0.6"
NOWHERE = "10.255.255.1"  # no interface has it: bind() fails with EADDRNOTAVAIL
P1, P2, P3 = free_port(), free_port(), free_port()
SVC_PORT = free_port()


def ingress_sidecar(app_port, bind, port):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: web}
  ingress:
  - port: {number: %(port)d, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%(app)d
    bind: %(bind)s
    captureMode: NONE
  egress:
  - hosts: ["*/*"]
    captureMode: NONE
""" % {"ns": NS, "port": port, "app": app_port, "bind": bind}


def status_of(ip, port):
    """HTTP status of GET / straight to ip:port; 0 when nothing accepts."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                          "http://%s:%d/" % (ip, port)], capture_output=True, text=True, timeout=30)
    return int(out.stdout or "0")


class MeshproxyDeltaNackTest(MeshCase):
    PROTOCOL = "delta"
    SIDECARS = {}

    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.1", "v1"), "b1": Backend("b1", "127.0.0.2", "v1")}

    @classmethod
    def config(cls, b):
        return {"backend.yaml": service_yaml("backend", [b["b1"]], port=SVC_PORT),
                "sidecar.yaml": ingress_sidecar(b["web"].port, NACK_BIND, P1)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sidecars["web"] = Sidecar(cls.meshd, "web", "app=web", args=("--xds-protocol", cls.PROTOCOL))
            cls.sc = cls.sidecars["web"].wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    def lds(self):
        for x in self.meshd.json("/debug/syncz"):
            if x.get("proxy") == self.sc.node_id:
                return x["types"].get("lds", {})
        return {}

    def test_removal_in_nacked_update_is_applied_later(self):
        wait = 120 if slow() else 30
        app = self.b["web"].port
        self.assertEqual(status_of(NACK_BIND, P1), 200)
        # P1 -> NOWHERE:P2: the listener cannot bind, LDS NACKed
        self.meshd.write("sidecar.yaml", ingress_sidecar(app, NOWHERE, P2))
        err = wait_for(lambda: self.lds().get("state") == "ERROR" and self.lds().get("error"), timeout=wait,
                       what="meshproxy's LDS NACK in meshd's /debug/syncz")
        self.assertIn("cannot bind", err)
        self.assertIn("%s:%d" % (NOWHERE, P2), err)
        # -> 127.0.0.6:P3: meshd sends "P2 removed, P3 added"; P1 must go too
        self.meshd.write("sidecar.yaml", ingress_sidecar(app, NACK_BIND, P3))
        wait_for(lambda: status_of(NACK_BIND, P3) == 200, timeout=wait, what="the ingress on P3 serving")
        wait_for(lambda: self.lds().get("state") == "SYNCED", timeout=wait, what="LDS SYNCED again")
        listeners = self.sc.admin("/listeners")[1]
        self.assertIn("%s_%d" % (NACK_BIND, P3), listeners)
        self.assertNotIn("%s_%d" % (NACK_BIND, P1), listeners)
        self.assertNotIn("_%d" % P2, listeners)
        self.assertEqual(status_of(NACK_BIND, P1), 0, "the stale ingress on P1 still accepts connections")


class MeshproxySotwNackTest(MeshproxyDeltaNackTest):
    PROTOCOL = "sotw"


if __name__ == "__main__":
    unittest.main()
