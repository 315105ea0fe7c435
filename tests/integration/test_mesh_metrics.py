"""Istio's standard metrics from meshproxy, scraped by Debian's real
Prometheus (issue 14): the real meshd with its CA, three meshproxy sidecars
with certificates from it, mTLS between them.

  client --> client sidecar ==mTLS==> web sidecar (127.0.0.8:P1) --> HTTP backend 127.0.0.1:P1
  grpc   --> client sidecar ==mTLS==> greeter sidecar (127.0.0.9:P2) --> gRPC server 127.0.0.1:P2

The sidecars learn each other's workload through Istio's metadata exchange
(x-envoy-peer-metadata[-id]: sent outbound, read and stripped inbound,
answered on the response).  Prometheus scrapes each sidecar's merged
status port (Istio's 15020, /stats/prometheus) every second; the traffic
comes in two phases with a scrape between them, so rate() and the p99
have an increase to work on.  The PromQL is what Kiali and Istio's Grafana
dashboards run; the counts are exact (sum of the counters), both
reporters, labels as Istio writes them.  About 15-25 s; every wait is
bounded and nothing asserts on timing.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request
from concurrent import futures

import grpc

from meshhttp import NS, Backend, Sidecar, fqdn, slow
from meshtest import Meshd, free_port, wait_for

WEB_IP, GREETER_IP = "127.0.0.8", "127.0.0.9"
CLIENT_ID = "spiffe://cluster.local/ns/%s/sa/client" % NS
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def pick_port(ip):
    """A port free on 127.0.0.1 (the app) and on ip (the sidecar's inbound)."""
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((ip, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no port free on both addresses")


def svc(name, ip, port, proto):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: p, protocol: %(proto)s}
  workloadSelector:
    labels: {app: %(name)s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {p: %(port)d}
  serviceAccount: %(name)s
  labels: {app: %(name)s, version: v1, security.istio.io/tlsMode: istio}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port, "ip": ip, "proto": proto}


# Istio retries 503s by default: each would reach web three times
NO_RETRY = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s}
    retries: {attempts: 0}
""" % (NS, fqdn("web"), fqdn("web"))


def hello(req, ctx):
    if req == b"notfound":
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b"echo:" + req


class MeshMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-metrics-")
        cls.sidecars, cls.prom, cls.grpc_server, cls.web = {}, None, None, None
        cls.web_port, cls.grpc_port = pick_port(WEB_IP), pick_port(GREETER_IP)
        cls.web = Backend("web", port=cls.web_port)
        cls.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        cls.grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "test.Echo", {"Hello": grpc.unary_unary_rpc_method_handler(hello)}),))
        cls.grpc_server.add_insecure_port("127.0.0.1:%d" % cls.grpc_port)
        cls.grpc_server.start()
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = os.path.join(cls.tmp, "tokens")
        names = ("client", "web", "greeter")
        with open(tokens, "w") as f:
            f.write("".join("%s-token %s %s\n" % (n, NS, n) for n in names))
        for n in names:
            with open(os.path.join(cls.tmp, n + ".token"), "w") as f:
                f.write(n + "-token\n")
        cls.meshd = Meshd({"web.yaml": svc("web", WEB_IP, cls.web_port, "HTTP") + NO_RETRY,
                           "greeter.yaml": svc("greeter", GREETER_IP, cls.grpc_port, "GRPC")},
                          extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.status = {}
        try:
            cls.meshd.start()
            root = os.path.join(ca_dir, "root-cert.pem")

            def args(name, inbound=None):
                cls.status[name] = free_port()
                a = ["--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", root,
                     "--token-file", os.path.join(cls.tmp, name + ".token"), "--service-account", name,
                     "--status-addr", "127.0.0.1:%d" % cls.status[name]]
                return a + (["--inbound-addr", inbound] if inbound else [])
            cls.sidecars["client"] = Sidecar(cls.meshd, "client-1", "app=client,version=v1", args=args("client"))
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web,version=v1", ip=WEB_IP,
                                          args=args("web", "%s:%d" % (WEB_IP, cls.web_port)))
            cls.sidecars["greeter"] = Sidecar(cls.meshd, "greeter-1", "app=greeter,version=v1", ip=GREETER_IP,
                                              args=args("greeter", "%s:%d" % (GREETER_IP, cls.grpc_port)))
            for s in cls.sidecars.values():
                s.wait_ready()
            for s in cls.sidecars.values():
                wait_for(lambda: json.loads(s.admin("/certs")[1])["generation"] >= 1,
                         timeout=60 if slow() else 20, what="a workload certificate")
            cls.start_prometheus()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars["client"]
        cls.chan = grpc.insecure_channel("127.0.0.1:%d" % cls.px.out_port, options=[
            ("grpc.default_authority", "%s:%d" % (fqdn("greeter"), cls.grpc_port))])

    @classmethod
    def start_prometheus(cls):
        cls.prom_port = free_port()
        cfg = os.path.join(cls.tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n- job_name: sidecars\n  metrics_path: /stats/prometheus\n"
                    "  static_configs:\n  - targets: [%s]\n"
                    % ", ".join("'127.0.0.1:%d'" % p for p in cls.status.values()))
        cls.prom_log = open(os.path.join(cls.tmp, "prometheus.log"), "w")
        cls.prom = subprocess.Popen(
            [PROMETHEUS, "--config.file", cfg, "--storage.tsdb.path", os.path.join(cls.tmp, "tsdb"),
             "--web.listen-address", "127.0.0.1:%d" % cls.prom_port, "--log.level", "warn"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT)
        wait_for(lambda: cls.scalar('count(up == 1)') == len(cls.status), timeout=30,
                 what="prometheus scraping every sidecar")

    @classmethod
    def query(cls, q):
        if cls.prom.poll() is not None:
            raise AssertionError("prometheus exited %s" % cls.prom.returncode)
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (cls.prom_port, urllib.parse.urlencode({"query": q}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
        except OSError:
            return None
        assert body["status"] == "success", body
        return body["data"]["result"]

    @classmethod
    def scalar(cls, q):
        res = cls.query(q)
        return float(res[0]["value"][1]) if res else None

    @classmethod
    def tearDownClass(cls):
        if cls.prom:
            cls.prom.terminate()
            try:
                cls.prom.wait(10)
            except subprocess.TimeoutExpired:
                cls.prom.kill()
            cls.prom_log.close()
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(cls.web)
        if cls.grpc_server:
            cls.grpc_server.stop(None)
        for s in cls.sidecars.values():
            s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def traffic(self, ok, fail, grpc_ok, grpc_nf):
        url = "http://%s:%d" % (fqdn("web"), self.web_port)
        for i in range(ok):
            self.assertEqual(self.px.request(url + "/ok").status, 200)
        for i in range(fail):
            self.assertEqual(self.px.request(url + "/status/503").status, 503)
        call = self.chan.unary_unary("/test.Echo/Hello")
        for i in range(grpc_ok):
            self.assertEqual(call(b"hi", timeout=20), b"echo:hi")
        for i in range(grpc_nf):
            with self.assertRaises(grpc.RpcError) as cm:
                call(b"notfound", timeout=20)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def wait_sum(self, sel, want):
        q = "sum(istio_requests_total{%s})" % sel
        try:
            wait_for(lambda: self.scalar(q) == want, timeout=30, what="%s == %s" % (q, want))
        except AssertionError as e:
            pages = []
            for name, port in self.status.items():
                with urllib.request.urlopen("http://127.0.0.1:%d/stats/prometheus" % port, timeout=5) as r:
                    lines = [x for x in r.read().decode().splitlines() if x.startswith("istio_requests_total")]
                pages.append("%s:\n%s" % (name, "\n".join(lines)))
            raise AssertionError("%s (now %s)\n%s" % (e, self.scalar(q), "\n".join(pages)))

    def test_metrics(self):
        web_dst = 'reporter="destination",destination_workload="web-1"'
        # phase 1, then a scrape of it: rate() needs a before and an after
        self.traffic(2, 1, 1, 0)
        self.wait_sum(web_dst, 3)
        self.wait_sum('reporter="source",destination_workload="greeter-1"', 1)
        # every series the Kiali query below reads has a sample before phase 2
        # (rate() needs an increase between two samples)
        self.wait_sum('reporter="destination",destination_workload="greeter-1"', 1)
        self.traffic(3, 2, 1, 1)
        self.wait_sum(web_dst + ',response_code="200"', 5)
        self.wait_sum(web_dst + ',response_code="503"', 3)
        self.wait_sum('reporter="source",destination_workload="web-1",response_code="200"', 5)
        self.wait_sum('reporter="source",destination_workload="web-1",response_code="503"', 3)
        self.wait_sum('reporter="destination",destination_workload="greeter-1",request_protocol="grpc",'
                      'grpc_response_status="0"', 2)
        self.wait_sum('reporter="destination",destination_workload="greeter-1",grpc_response_status="5"', 1)
        self.wait_sum('reporter="source",destination_workload="greeter-1",grpc_response_status="5"', 1)

        # Kiali's graph query
        kiali = ('sum(rate(istio_requests_total{reporter="destination"}[1m])) '
                 'by (source_workload, destination_workload, response_code)')

        def kiali_series():
            return {(r["metric"]["source_workload"], r["metric"]["destination_workload"],
                     r["metric"]["response_code"]): float(r["value"][1]) for r in self.query(kiali) or []}
        # the counts above may be in the newest sample only: rate() sees them
        # once a scrape follows (bounded wait, then the exact checks)
        try:
            wait_for(lambda: len([v for v in kiali_series().values() if v > 0]) >= 3, timeout=15,
                     what="the Kiali query's three series")
        except AssertionError:
            pass
        got = kiali_series()
        for key in (("client-1", "web-1", "200"), ("client-1", "web-1", "503"), ("client-1", "greeter-1", "200")):
            self.assertIn(key, got)
            self.assertGreater(got[key], 0)
        self.assertEqual(len(got), 3, got)

        # the labels of one series, as Istio writes them (inbound over mTLS)
        m = self.query('istio_requests_total{%s,response_code="503"}' % web_dst)[0]["metric"]
        want = {"reporter": "destination", "source_workload": "client-1", "source_workload_namespace": NS,
                "source_principal": CLIENT_ID, "source_app": "client", "source_version": "v1",
                "source_canonical_service": "client", "source_cluster": "Kubernetes",
                "destination_workload": "web-1", "destination_workload_namespace": NS,
                "destination_principal": "spiffe://cluster.local/ns/%s/sa/web" % NS,
                "destination_app": "web", "destination_version": "v1",
                "destination_service": fqdn("web"), "destination_service_name": "web",
                "destination_service_namespace": NS, "destination_canonical_service": "web",
                "destination_canonical_revision": "v1", "destination_cluster": "Kubernetes",
                "request_protocol": "http", "response_code": "503", "grpc_response_status": "",
                "response_flags": "-", "connection_security_policy": "mutual_tls"}
        for k, v in want.items():
            self.assertEqual(m.get(k, ""), v, "%s in %r" % (k, m))
        m = self.query('istio_requests_total{reporter="source",destination_workload="web-1",'
                       'response_code="200"}')[0]["metric"]
        self.assertEqual((m["source_workload"], m["source_principal"], m["destination_app"],
                          m["destination_principal"], m["response_flags"], m["connection_security_policy"]),
                         ("client-1", CLIENT_ID, "web", "spiffe://cluster.local/ns/%s/sa/web" % NS, "-",
                          "unknown"))
        # issue 14: the gRPC upstream is HTTP/2 (its mTLS is the HTTP/2
        # connection's): destination_principal is the server's id there too
        m = self.query('istio_requests_total{reporter="source",destination_workload="greeter-1",'
                       'response_code="200"}')[0]["metric"]
        self.assertEqual(m["destination_principal"], "spiffe://cluster.local/ns/%s/sa/greeter" % NS, m)

        # the p99 from the histogram, both reporters; bytes histograms are there
        for rep in ("destination", "source"):
            p99 = self.scalar('histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket'
                              '{reporter="%s"}[1m])) by (le))' % rep)
            self.assertIsNotNone(p99)
            self.assertFalse(math.isnan(p99), rep)
        self.assertEqual(self.scalar('sum(istio_response_bytes_count{%s})' % web_dst), 8)
        self.assertEqual(self.scalar('sum(istio_request_bytes_count{%s})' % web_dst), 8)

        # Envoy's cluster counters under Istio's tag names
        self.assertEqual(self.scalar('sum(envoy_cluster_upstream_rq_total{cluster_name="outbound|%d||%s"})'
                                     % (self.web_port, fqdn("web"))), 8)

        # metadata exchange headers end at the sidecars: the app never sees them
        _, _, hdrs, _ = self.web.last()
        self.assertNotIn("x-envoy-peer-metadata", hdrs)
        self.assertNotIn("x-envoy-peer-metadata-id", hdrs)


if __name__ == "__main__":
    unittest.main()
