"""Debian's real Prometheus scrapes meshd and one sidecar with the scrape
configuration shipped in deploy/addons/prometheus.yaml, and the queries of
Istio's control-plane Grafana dashboard return series (issue 14).

  fake API server (tests/kube) <-- meshd (Kubernetes source)
                                     ^ ADS
  client --> client sidecar (meshproxy, status port P) --> web backend
  prometheus --scrapes--> meshd /metrics, sidecar /stats/prometheus

Debian builds Prometheus without Kubernetes discovery, so the test plays
it: it lists the Pods from the API server and writes, per container port,
the target and the __meta_kubernetes_pod_* labels Prometheus's `role: pod`
discovery gives (file_sd).  Everything else of the shipped prometheus.yml
is used as written: the relabel rules of the meshd job and of Istio's
annotation-based kubernetes-pods job.  meshd's Pod is deploy/deployment.yaml's
pod template; the sidecar's Pod carries the prometheus.io annotations
injection writes.

The dashboard's queries are those of Istio's pilot-dashboard.json (Grafana
7645, its last hand-written form) and of the newer pilot-dashboard.gen.json.
A query returns no series only for a listed reason (EXCLUDED, as Istio's
own dashboard test excludes some).  A listener conflict made through the
API reaches the dashboard's pilot_conflict_* gauge and leaves it.  About
10 s; waits are bounded and nothing asserts on timing.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request

import yaml

from meshhttp import NS, Backend, Sidecar, fqdn
from meshtest import ROOT, Meshd, free_port, wait_for
from test_kube import FakeApi

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ADDON = os.path.join(ROOT, "deploy", "addons", "prometheus.yaml")
DEPLOYMENT = os.path.join(ROOT, "deploy", "deployment.yaml")

# Istio's control-plane dashboard: pilot-dashboard.json as Grafana 7645
# publishes it (Istio 1.22) and pilot-dashboard.gen.json (Istio 1.23 on),
# with $__rate_interval as 1m.
DASHBOARD = [
    'sum(istio_build{component="pilot"}) by (tag)',
    'process_virtual_memory_bytes{app="istiod"}',
    'process_resident_memory_bytes{app="istiod"}',
    'irate(process_cpu_seconds_total{app="istiod"}[1m])',
    'sum(irate(pilot_xds_pushes{type="cds"}[1m]))',
    'sum(irate(pilot_xds_pushes{type="eds"}[1m]))',
    'sum(irate(pilot_xds_pushes{type="lds"}[1m]))',
    'sum(irate(pilot_xds_pushes{type="rds"}[1m]))',
    'sum(irate(pilot_xds_pushes{type="sds"}[1m]))',
    'sum(irate(pilot_xds_pushes{type="nds"}[1m]))',
    'sum(pilot_xds_cds_reject{app="istiod"}) or (absent(pilot_xds_cds_reject{app="istiod"}) - 1)',
    'sum(pilot_xds_eds_reject{app="istiod"}) or (absent(pilot_xds_eds_reject{app="istiod"}) - 1)',
    'sum(pilot_xds_lds_reject{app="istiod"}) or (absent(pilot_xds_lds_reject{app="istiod"}) - 1)',
    'sum(pilot_xds_rds_reject{app="istiod"}) or (absent(pilot_xds_rds_reject{app="istiod"}) - 1)',
    'sum(rate(pilot_xds_write_timeout{app="istiod"}[1m]))',
    'sum(rate(pilot_total_xds_internal_errors{app="istiod"}[1m]))',
    'sum(rate(pilot_total_xds_rejects{app="istiod"}[1m]))',
    'sum(rate(pilot_xds_push_context_errors{app="istiod"}[1m]))',
    'pilot_conflict_inbound_listener{app="istiod"}',
    'pilot_conflict_outbound_listener_tcp_over_current_tcp{app="istiod"}',
    'avg(pilot_virt_services{app="istiod"})',
    'avg(pilot_services{app="istiod"})',
    'sum(pilot_xds{app="istiod"}) by (pod)',
    'histogram_quantile(0.5, sum(rate(pilot_proxy_convergence_time_bucket[1m])) by (le))',
    'histogram_quantile(0.9, sum(rate(pilot_proxy_convergence_time_bucket[1m])) by (le))',
    'histogram_quantile(0.99, sum(rate(pilot_proxy_convergence_time_bucket[1m])) by (le))',
    'histogram_quantile(0.999, sum(rate(pilot_proxy_convergence_time_bucket[1m])) by (le))',
    'sum(envoy_cluster_upstream_cx_active{cluster_name="xds-grpc"})',
    'sum(irate(envoy_cluster_upstream_cx_total{cluster_name="xds-grpc"}[1m]))',
    'sum(irate(envoy_cluster_upstream_cx_connect_fail{cluster_name="xds-grpc"}[1m]))',
    'max(rate(envoy_cluster_upstream_cx_rx_bytes_total{cluster_name="xds-grpc"}[1m]))',
    'max(rate(envoy_cluster_upstream_cx_tx_bytes_total{cluster_name="xds-grpc"}[1m]))',
    'sum(increase(envoy_server_hot_restart_epoch[1m]))',
    'sum(rate(galley_validation_passed[1m]))',
    'sum(rate(galley_validation_failed[1m]))',
    'sum(rate(sidecar_injection_success_total[1m]))',
    'sum(rate(sidecar_injection_failure_total[1m]))',
    'go_goroutines{app="istiod"}',
    'go_memstats_heap_inuse_bytes{app="istiod"}',
    'container_memory_working_set_bytes{container=~"discovery", pod=~"istiod-.*|istio-pilot-.*"}',
    'sum(irate(container_cpu_usage_seconds_total{container="discovery", pod=~"istiod-.*|istio-pilot-.*"}[1m]))',
    # pilot-dashboard.gen.json
    'sum by (type) (irate(pilot_xds_pushes[1m]))',
    'sum by (type,event) (rate(pilot_k8s_reg_events[1m]))',
    'sum by (type,event) (rate(pilot_k8s_cfg_events[1m]))',
    'sum by (type) (rate(pilot_push_triggers[1m]))',
    'sum (pilot_xds)',
    'sum by (type) (pilot_total_xds_rejects)',
    'pilot_total_xds_internal_errors',
    'sum(rate(pilot_xds_push_time_bucket{}[1m])) by (le)',
    'sum(rate(pilot_xds_config_size_bytes_bucket{}[1m])) by (le)',
]

# Queries allowed to return nothing, each with why (a substring of the query).
EXCLUDED = {
    'type="nds"': "no NDS: meshd has no DNS proxying name tables",
    "galley_validation_": "series appear with the first admission review; none is sent here",
    "go_goroutines": "meshd is C: no Go runtime",
    "go_memstats": "meshd is C: no Go runtime",
    "container_": "cAdvisor (kubelet) metrics: no kubelet here",
}


def sd_name(s):
    """Prometheus's label-name sanitising of annotation and label keys."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", s)


def pod_targets(pod):
    """What Prometheus's kubernetes_sd role: pod gives for a Pod: one target per
    declared container port (podIP:port), one port-less target for a
    container without ports, each with the pod's __meta labels."""
    md, spec, st = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    base = {
        "__meta_kubernetes_namespace": md.get("namespace", ""),
        "__meta_kubernetes_pod_name": md["name"],
        "__meta_kubernetes_pod_ip": st.get("podIP", ""),
        "__meta_kubernetes_pod_phase": st.get("phase", ""),
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
    }
    for k, v in (md.get("labels") or {}).items():
        base["__meta_kubernetes_pod_label_" + sd_name(k)] = v
        base["__meta_kubernetes_pod_labelpresent_" + sd_name(k)] = "true"
    for k, v in (md.get("annotations") or {}).items():
        base["__meta_kubernetes_pod_annotation_" + sd_name(k)] = v
        base["__meta_kubernetes_pod_annotationpresent_" + sd_name(k)] = "true"
    out = []
    for c in spec.get("containers", []):
        ports = c.get("ports") or []
        if not ports:
            out.append({"targets": [st.get("podIP", "")],
                        "labels": dict(base, __meta_kubernetes_pod_container_name=c["name"])})
        for p in ports:
            out.append({"targets": ["%s:%d" % (st.get("podIP", ""), p["containerPort"])],
                        "labels": dict(base, __meta_kubernetes_pod_container_name=c["name"],
                                       __meta_kubernetes_pod_container_port_name=p.get("name", ""),
                                       __meta_kubernetes_pod_container_port_number=str(p["containerPort"]),
                                       __meta_kubernetes_pod_container_port_protocol=p.get("protocol", "TCP"))})
    return out


def shipped_prometheus_yml():
    with open(ADDON) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "prometheus":
                return yaml.safe_load(doc["data"]["prometheus.yml"])
    raise AssertionError("no prometheus ConfigMap in %s" % ADDON)


def meshd_pod(http_port):
    """deploy/deployment.yaml's pod template as a running Pod on loopback,
    its http-monitoring port where this test's meshd listens."""
    with open(DEPLOYMENT) as f:
        dep = yaml.safe_load(f)
    tpl = dep["spec"]["template"]
    spec = json.loads(json.dumps(tpl["spec"]))
    for c in spec["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == "http-monitoring":
                p["containerPort"] = http_port
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "meshd-7d9f-abcde", "namespace": dep["metadata"]["namespace"],
                         "labels": dict(tpl["metadata"]["labels"]),
                         "annotations": dict(tpl["metadata"].get("annotations") or {})},
            "spec": dict(spec, nodeName="n1"),
            "status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}


class MeshPrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-prom-")
        cls.api = cls.meshd = cls.px = cls.prom = cls.web = None
        try:
            cls.api = FakeApi(tokens=("t-meshd", "t-test"))
            cls.web = Backend("web")
            cls.status_port = free_port()
            for ns in (NS, "istio-system"):
                cls.api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            cls.api.apply({"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
                           "spec": {"clusterIP": "10.96.0.20", "selector": {"app": "web"},
                                    "ports": [{"name": "http", "port": 80, "targetPort": cls.web.port}]}})
            cls.api.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                           "metadata": {"name": "web-1", "namespace": NS,
                                        "labels": {"kubernetes.io/service-name": "web"}},
                           "addressType": "IPv4",
                           "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
                           "ports": [{"name": "http", "port": cls.web.port, "protocol": "TCP"}]})
            # the client pod as injection leaves it: Istio's scrape annotations
            cls.api.apply({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "client-1", "namespace": NS,
                                        "labels": {"app": "client", "version": "v1"},
                                        "annotations": {"prometheus.io/scrape": "true",
                                                        "prometheus.io/port": str(cls.status_port),
                                                        "prometheus.io/path": "/stats/prometheus"}},
                           "spec": {"serviceAccountName": "client", "nodeName": "n1",
                                    "containers": [{"name": "app"}, {"name": "istio-proxy", "ports": [
                                        {"name": "http-envoy-prom", "containerPort": 15090}]}]},
                           "status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                                      "conditions": [{"type": "Ready", "status": "True"}]}})
            cls.meshd = Meshd(kubeconfig=cls.api.kubeconfig("t-meshd"))
            cls.api.apply(meshd_pod(cls.meshd.http_port))
            cls.meshd.start()
            cls.px = Sidecar(cls.meshd, "client-1", "app=client,version=v1",
                             args=["--status-addr", "127.0.0.1:%d" % cls.status_port]).wait_ready()
            cls.start_prometheus()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_prometheus(cls):
        # Kubernetes discovery as Prometheus would do it, from the API server
        status, pods = cls.api.get("/api/v1/pods")
        assert status == 200, status
        targets = [t for p in pods["items"] for t in pod_targets(p)]
        sd = os.path.join(cls.tmp, "pods.json")
        with open(sd, "w") as f:
            json.dump(targets, f)
        cfg = shipped_prometheus_yml()
        cfg["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
        jobs = []
        for job in cfg["scrape_configs"]:
            if "kubernetes_sd_configs" not in job:
                continue  # the self-scrape job
            namespaces = [n for sdc in job.pop("kubernetes_sd_configs")
                          for n in (sdc.get("namespaces") or {}).get("names", [])]
            path = sd
            if namespaces:
                # the namespaces selector, as the API server would filter
                path = os.path.join(cls.tmp, "pods-%s.json" % job["job_name"])
                with open(path, "w") as f:
                    json.dump([t for t in targets if t["labels"]["__meta_kubernetes_namespace"] in namespaces], f)
            job["file_sd_configs"] = [{"files": [path], "refresh_interval": "1s"}]
            jobs.append(job)
        cfg["scrape_configs"] = jobs
        cls.jobs = [j["job_name"] for j in jobs]
        path = os.path.join(cls.tmp, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        cls.prom_port = free_port()
        cls.prom_log = open(os.path.join(cls.tmp, "prometheus.log"), "w")
        cls.prom = subprocess.Popen(
            [PROMETHEUS, "--config.file", path, "--storage.tsdb.path", os.path.join(cls.tmp, "tsdb"),
             "--web.listen-address", "127.0.0.1:%d" % cls.prom_port, "--log.level", "warn"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT)
        wait_for(lambda: cls.scalar("count(up == 1)") == 2, timeout=30,
                 what="prometheus scraping meshd and the sidecar")

    @classmethod
    def query(cls, q):
        if cls.prom.poll() is not None:
            with open(os.path.join(cls.tmp, "prometheus.log")) as f:
                raise AssertionError("prometheus exited %s: %s" % (cls.prom.returncode, f.read()[-2000:]))
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
        rc, logs = 0, ""
        if cls.px:
            rc = cls.px.stop()
            logs = cls.px.logs()
            cls.px.cleanup()
        if cls.meshd:
            cls.meshd.finish(*[x for x in (cls.web,) if x])
        elif cls.web:
            cls.web.stop()
        if cls.api:
            cls.api.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    def test_targets_and_labels(self):
        """Both jobs find their target; the labels the dashboards select on."""
        up = {(r["metric"]["job"], r["metric"].get("pod")): r["metric"] for r in self.query("up == 1")}
        self.assertEqual(set(up), {("meshd", "meshd-7d9f-abcde"), ("kubernetes-pods", "client-1")}, up)
        m = up[("meshd", "meshd-7d9f-abcde")]
        self.assertEqual((m["app"], m["namespace"]), ("istiod", "istio-system"))
        self.assertEqual(m["instance"], "127.0.0.1:%d" % self.meshd.http_port)
        s = up[("kubernetes-pods", "client-1")]
        self.assertEqual((s["app"], s["version"], s["namespace"]), ("client", "v1", NS))
        # the annotations picked the status port and path, not the declared 15090
        self.assertEqual(s["instance"], "127.0.0.1:%d" % self.status_port)
        self.assertEqual(self.scalar('count(istio_build{app="istiod",component="pilot"})'), 1)

    def test_conflict_reaches_prometheus(self):
        """Two TCP ServiceEntries without addresses on one port: the sidecar
        generator meets istiod's TCP-over-TCP conflict on 0.0.0.0_3306, the
        gauge the dashboard reads goes to 1, and back to 0 once one goes."""
        q = 'pilot_conflict_outbound_listener_tcp_over_current_tcp{app="istiod"}'
        self.assertEqual(self.scalar(q), 0)

        def db(name):
            return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"hosts": ["%s.example.com" % name], "location": "MESH_EXTERNAL",
                             "resolution": "STATIC", "ports": [{"number": 3306, "name": "tcp", "protocol": "TCP"}],
                             "endpoints": [{"address": "127.0.0.1"}]}}
        self.api.apply(db("db1"))
        self.api.apply(db("db2"))
        wait_for(lambda: self.scalar(q) == 1, timeout=30, what="the conflict counted")
        self.api.delete("networking.istio.io/v1", "ServiceEntry", "db2", ns=NS)
        wait_for(lambda: self.scalar(q) == 0, timeout=30, what="the conflict gone")
        self.api.delete("networking.istio.io/v1", "ServiceEntry", "db1", ns=NS)

    def test_dashboard_queries(self):
        """Every query of the control-plane dashboard returns series, but
        for the listed reasons; the list is checked too (an excluded query
        that starts returning series must leave the list)."""
        # a change under the dashboard: a VirtualService pushed to the sidecar
        # (pushes, triggers, k8s config events, convergence), traffic
        # through the sidecar (its istio_requests_total)
        url = "http://%s:80/" % fqdn("web")
        self.assertEqual(self.px.request(url).status, 200)
        self.api.apply({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                        "metadata": {"name": "web", "namespace": NS},
                        "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}],
                                                             "timeout": "7s"}]}})
        wait_for(lambda: self.px.dump_has("7s"), timeout=30, what="the VirtualService at the sidecar")
        for _ in range(3):
            self.assertEqual(self.px.request(url).status, 200)
        wait_for(lambda: (self.scalar('sum(pilot_k8s_cfg_events{type="VirtualService",event="add"})') or 0) >= 1,
                 timeout=30, what="the VirtualService event scraped")
        wait_for(lambda: (self.scalar('sum(istio_requests_total{reporter="source",destination_service_name="web"})')
                          or 0) == 4, timeout=30, what="the sidecar's 4 requests scraped")

        def excluded(q):
            return next((why for key, why in EXCLUDED.items() if key in q), None)

        empty = {}

        def all_answer():
            empty.clear()
            for q in DASHBOARD:
                if not excluded(q) and not self.query(q):
                    empty[q] = True
            return not empty
        try:
            wait_for(all_answer, timeout=20, interval=0.5, what="the dashboard's queries")
        except AssertionError:
            self.fail("queries without series: %s" % "\n".join(empty))
        # what is excluded really answers nothing (else the reason is stale)
        stale = [q for q in DASHBOARD if excluded(q) and self.query(q)]
        self.assertEqual(stale, [])
        # values that follow from this test's mesh
        self.assertEqual(self.scalar('sum(pilot_xds{app="istiod"})'), 1)
        self.assertGreaterEqual(self.scalar('avg(pilot_services{app="istiod"})'), 1)
        self.assertEqual(self.scalar('avg(pilot_virt_services{app="istiod"})'), 1)
        self.assertEqual(self.scalar('pilot_conflict_inbound_listener{app="istiod"}'), 0)
        # the one sidecar's ADS connection to meshd, as Envoy's xds-grpc cluster
        self.assertEqual(self.scalar('sum(envoy_cluster_upstream_cx_active{cluster_name="xds-grpc"})'), 1)
        self.assertGreaterEqual(self.scalar('sum(envoy_cluster_upstream_cx_total{cluster_name="xds-grpc"})'), 1)
        self.assertGreater(self.scalar('sum(envoy_cluster_upstream_cx_rx_bytes_total{cluster_name="xds-grpc"})'), 0)
        self.assertGreater(self.scalar('sum(envoy_cluster_upstream_cx_tx_bytes_total{cluster_name="xds-grpc"})'), 0)
        # Envoy's server gauges: configured and serving, no hot restart
        self.assertEqual(self.scalar('sum(envoy_server_live)'), 1)
        self.assertEqual(self.scalar('sum(envoy_server_state)'), 0)
        self.assertEqual(self.scalar('sum(envoy_server_hot_restart_epoch)'), 0)
        self.assertGreater(self.scalar('sum(envoy_server_memory_allocated)'), 0)
        self.assertGreaterEqual(self.scalar('sum(pilot_push_triggers{type="config"})'), 1)
        self.assertGreaterEqual(self.scalar('sum(pilot_k8s_reg_events{type="Pods",event="add"})'), 1)


if __name__ == "__main__":
    unittest.main()
