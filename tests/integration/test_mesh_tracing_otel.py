"""Telemetry tracing with an OpenTelemetry provider over OTLP/HTTP, across
two real meshproxy sidecars (issue 14), configured as Istio users write it:

  meshConfig:  extensionProviders: [{name: otel, opentelemetry: {service: otel-collector.istio-system...,
                                     port: P, http: {path: /v1/traces, timeout: 5s, headers: [x-tenant]}}}]
  Telemetry istio-system/mesh-default: tracing: [{providers: [{name: otel}], randomSamplingPercentage: 100,
                                                  customTags: {team: literal, user: header}}]

  client --http_proxy--> client sidecar --> web sidecar --> web app
                         (CLIENT span)       (SERVER span on 127.0.0.3:P)

The collector is an OTLP/HTTP receiver here (http.server on 127.0.0.4,
POST /v1/traces, application/x-protobuf) that decodes each
ExportTraceServiceRequest with python3-protobuf, from modules protoc
generates at test time out of the project's own proto/opentelemetry/ (so
the wire format is checked against the .proto meshd and meshproxy use).
Spans are matched by their guid:x-request-id attribute.

  - a client traceparent is continued over two hops: the CLIENT span keeps
    the caller's trace id and has the caller's span as parent, the SERVER
    span's parent is the CLIENT span, the app sees the SERVER span in
    traceparent; kinds, resource service.name per sidecar, Istio's tags and
    the Telemetry's custom tags (literal, header with its default) arrive;
    the POSTs carry the provider's header;
  - the Telemetry's randomSamplingPercentage is changed live 100 -> 0 -> 100
    (meshd pushes, meshproxy applies the new listener config to the next
    requests, a kept-alive connection's too): at 0 nothing is exported (a
    forced request sent after them arrives alone), back at 100 spans appear
    again without a restart;
  - a workload Telemetry disabling SERVER spans for app=web leaves only the
    CLIENT span;
  - the provider switched to OTLP/gRPC (grpc: instead of http:, a live
    MeshConfig edit): the sidecars call TraceService/Export on a python3-grpcio
    receiver, one unary call per batch, with the provider's authorization
    metadata.

Nothing asserts on timing; every wait is bounded.  About 15 s.
"""
import http.client
import http.server
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid
from concurrent import futures

import grpc

from meshhttp import NS, Backend, Sidecar, fqdn, slow
from meshtest import Meshd, wait_for
from test_mesh_mtls import WEB_IP, pick_port, prom

OTEL_IP = "127.0.0.4"
OTEL_HOST = "otel-collector.istio-system.svc.cluster.local"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = ["opentelemetry/proto/common/v1/common.proto", "opentelemetry/proto/resource/v1/resource.proto",
          "opentelemetry/proto/trace/v1/trace.proto",
          "opentelemetry/proto/collector/trace/v1/trace_service.proto"]


def otlp_modules(tmp):
    """The python modules of ExportTraceServiceRequest and Span, generated
    from proto/ (python3-protobuf and protoc are the project's own deps)."""
    out = os.path.join(tmp, "pb")
    os.makedirs(out)
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", out] + PROTOS, check=True)
    sys.path.insert(0, out)
    try:
        return (importlib.import_module("opentelemetry.proto.collector.trace.v1.trace_service_pb2"),
                importlib.import_module("opentelemetry.proto.trace.v1.trace_pb2"))
    finally:
        sys.path.remove(out)


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span POSTed to /v1/traces."""

    def __init__(self, pb):
        self.spans = []  # (service.name, Span)
        self.via = {}  # span id -> "http" | "grpc"
        self.heads = []  # (path, content-type, x-tenant) of each POST
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                req = pb.ExportTraceServiceRequest()
                try:
                    req.ParseFromString(body)
                    ok = True
                except Exception:  # a body that does not decode is a failed POST
                    ok = False
                with outer.lock:
                    outer.heads.append((self.path, self.headers.get("content-type"), self.headers.get("x-tenant")))
                if ok:
                    outer.ingest(req, "http")
                self.send_response(200 if ok else 400)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer((OTEL_IP, 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

        # OTLP/gRPC: TraceService/Export on its own port (python3-grpcio)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.grpc_calls = 0
        self.grpc_auth = []

        def export(req, context):
            with outer.lock:
                outer.grpc_calls += 1
                outer.grpc_auth.append(dict(context.invocation_metadata()).get("authorization"))
            outer.ingest(req, "grpc")
            return pb.ExportTraceServiceResponse()

        self.grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(
                export, request_deserializer=pb.ExportTraceServiceRequest.FromString,
                response_serializer=pb.ExportTraceServiceResponse.SerializeToString)}),))
        self.grpc_port = self.grpc_server.add_insecure_port("%s:0" % OTEL_IP)
        self.grpc_server.start()

    def ingest(self, req, via):
        with self.lock:
            for rs in req.resource_spans:
                svc = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        self.spans.append((svc[0] if svc else None, sp))
                        self.via[sp.span_id] = via

    def by_rid(self, rid):
        with self.lock:
            return [(svc, s) for svc, s in self.spans if attrs(s).get("guid:x-request-id") == rid]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.grpc_server.stop(None)


def attrs(span):
    return {a.key: a.value.string_value for a in span.attributes}


def mesh_yaml(port, grpc_port=None):
    if grpc_port:  # the same provider name, exporting over OTLP/gRPC
        return ("extensionProviders:\n- name: otel\n  opentelemetry:\n    service: istio-system/%s\n    port: %d\n"
                "    grpc:\n      timeout: 5s\n"
                "      initialMetadata:\n      - {name: authorization, value: Bearer otel-token}\n"
                % (OTEL_HOST, grpc_port))
    return ("extensionProviders:\n- name: otel\n  opentelemetry:\n    service: istio-system/%s\n    port: %d\n"
            "    http:\n      path: /v1/traces\n      timeout: 5s\n"
            "      headers:\n      - {name: x-tenant, value: tenant-a}\n"
            "defaultConfig:\n  tracing:\n    sampling: 1\n" % (OTEL_HOST, port))


def telemetry(pct):
    return """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: %s
    customTags:
      team: {literal: {value: bookinfo}}
      user: {header: {name: x-user, defaultValue: anonymous}}
""" % pct


def config(port, cport, gport):
    web = """apiVersion: networking.istio.io/v1
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
""" % {"ns": NS, "host": fqdn("web"), "port": port, "ip": WEB_IP}
    otel = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: istio-system}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %d, name: http-otlp, protocol: HTTP}
  - {number: %d, name: grpc-otlp, protocol: GRPC}
  endpoints:
  - {address: %s}
""" % (OTEL_HOST, cport, gport, OTEL_IP)
    return {"web.yaml": web, "otel.yaml": otel, "telemetry.yaml": telemetry(100)}


def sampling_is(px, pct):
    """The sidecar's config_dump shows random sampling pct on its HCMs."""
    dump = px.admin("/config_dump")[1]
    if pct == 0:
        # proto3 JSON leaves a zero Percent value out
        return re.search(r'"random_?[sS]ampling":\s*\{\s*\}', dump)
    return re.search(r'"random_?[sS]ampling":\s*\{\s*"value":\s*%s\b' % pct, dump)


def _hcms(node, out):
    """Every HTTP connection manager config (a dict with a stat prefix and a
    route config or RDS) under node."""
    if isinstance(node, dict):
        sp = node.get("stat_prefix", node.get("statPrefix"))
        if isinstance(sp, str) and any(k in node for k in ("rds", "route_config", "routeConfig")):
            out.append(node)
        for v in node.values():
            _hcms(v, out)
    elif isinstance(node, list):
        for v in node:
            _hcms(v, out)
    return out


def _traced(px, prefix):
    hcms = _hcms(json.loads(px.admin("/config_dump")[1]), [])
    return any("tracing" in h for h in hcms if h.get("stat_prefix", h.get("statPrefix")).startswith(prefix))


def inbound_traced(px):
    return _traced(px, "inbound")


def outbound_traced(px):
    return _traced(px, "outbound")


class MeshTracingOtelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-otel-")
        cls.sidecars = {}
        cls.collector = None
        cls.meshd = None
        cls.app = None
        try:
            cls.pb, cls.tpb = otlp_modules(cls.tmp)
            cls.port = pick_port()
            cls.app = Backend("web", "127.0.0.1", port=cls.port)
            cls.collector = Collector(cls.pb)
            cls.mesh_file = os.path.join(cls.tmp, "mesh")
            with open(cls.mesh_file, "w") as f:
                f.write(mesh_yaml(cls.collector.port))
            cls.meshd = Meshd(config(cls.port, cls.collector.port, cls.collector.grpc_port),
                              extra_args=["--mesh-config", cls.mesh_file])
            cls.meshd.start()
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client")
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web,version=v2", ip=WEB_IP,
                                          args=["--inbound-addr", "%s:%d" % (WEB_IP, cls.port)])
            for s in cls.sidecars.values():
                s.wait_ready()
            for s in cls.sidecars.values():
                wait_for(lambda: s.dump_has("envoy.tracers.opentelemetry") and sampling_is(s, 100),
                         timeout=60 if slow() else 20, what="the OpenTelemetry tracer in the sidecar's config")
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars["client"]

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        if cls.meshd:
            cls.meshd.finish(*([cls.app] if cls.app else []))
        elif cls.app:
            cls.app.stop()
        for s in cls.sidecars.values():
            s.cleanup()
        if cls.collector:
            cls.collector.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %s" % bad)

    def send(self, headers=None):
        h = dict(headers or {})
        rid = str(uuid.uuid4())
        h["x-request-id"] = rid
        r = self.px.request("http://%s:%d/traced" % (fqdn("web"), self.port), headers=h)
        self.assertEqual(r.status, 200, r)
        return rid, r.json()["headers"]

    def spans(self, rid, n=2):
        got = wait_for(lambda: len(self.collector.by_rid(rid)) >= n and self.collector.by_rid(rid),
                       timeout=60 if slow() else 20, what="%d spans for %s" % (n, rid))
        self.assertEqual(len(got), n, got)
        return {s.kind: (svc, s) for svc, s in got}

    def set_sampling(self, pct):
        self.meshd.write("telemetry.yaml", telemetry(pct))
        for s in self.sidecars.values():
            wait_for(lambda: sampling_is(s, pct), timeout=60 if slow() else 20,
                     what="sampling %s in the sidecar's config" % pct)

    def test_a_traceparent_continued_two_hops(self):
        kind = self.tpb.Span
        trace = uuid.uuid4().hex
        parent = uuid.uuid4().hex[:16]
        rid, hdrs = self.send({"traceparent": "00-%s-%s-01" % (trace, parent), "tracestate": "vendor=x",
                               "x-user": "jason"})
        sp = self.spans(rid)
        (csvc, c), (ssvc, s) = sp[kind.SPAN_KIND_CLIENT], sp[kind.SPAN_KIND_SERVER]
        self.assertEqual(c.trace_id.hex(), trace)
        self.assertEqual(c.parent_span_id.hex(), parent)
        self.assertEqual(s.trace_id.hex(), trace)
        self.assertEqual(s.parent_span_id.hex(), c.span_id.hex())
        self.assertNotEqual(s.span_id, c.span_id)
        self.assertEqual(hdrs.get("traceparent"), "00-%s-%s-01" % (trace, s.span_id.hex()))
        self.assertEqual(hdrs.get("tracestate"), "vendor=x")
        self.assertEqual((c.trace_state, s.trace_state), ("vendor=x", "vendor=x"))
        # service.name: the proxy's cluster as istiod names it (app.namespace)
        self.assertEqual(csvc, "client.%s" % NS)
        self.assertEqual(ssvc, "web.%s" % NS)
        # the route's decorator, as istiod writes it for a service with no
        # VirtualService: HOST:PORT/* (telemetry.TraceOperation)
        self.assertEqual(c.name, "%s:%d/*" % (fqdn("web"), self.port))
        self.assertGreater(c.end_time_unix_nano, 0)
        self.assertGreaterEqual(c.end_time_unix_nano, c.start_time_unix_nano)
        ca, sa = attrs(c), attrs(s)
        self.assertEqual(ca["http.status_code"], "200")  # Envoy's tracer: string attributes
        self.assertEqual(ca["http.method"], "GET")
        self.assertEqual(ca["upstream_cluster"], "outbound|%d||%s" % (self.port, fqdn("web")))
        self.assertEqual(ca["istio.canonical_service"], "client")
        self.assertEqual(sa["istio.canonical_service"], "web")
        self.assertEqual(sa["upstream_cluster"], "inbound|%d||" % self.port)
        # the Telemetry's custom tags, on both hops
        for a in (ca, sa):
            self.assertEqual(a["team"], "bookinfo")
            self.assertEqual(a["user"], "jason")
        self.assertEqual(c.status.code, 0)
        with self.collector.lock:
            heads = list(self.collector.heads)
        self.assertTrue(heads)
        for path, ctype, tenant in heads:
            self.assertEqual((path, ctype, tenant), ("/v1/traces", "application/x-protobuf", "tenant-a"))
        # Envoy's OpenTelemetry tracer counters on the admin port
        wait_for(lambda: prom(self.px, "envoy_tracing_opentelemetry_spans_sent") >= 1, what="spans_sent counted")
        self.assertGreaterEqual(prom(self.px, "envoy_tracing_opentelemetry_http_reports_success"), 1)
        self.assertEqual(prom(self.px, "envoy_tracing_opentelemetry_http_reports_failed"), 0)
        self.assertEqual(prom(self.px, "envoy_tracing_zipkin_spans_sent"), 0)
        # a header tag's default when the request has none
        rid, _ = self.send()
        for _, s in self.spans(rid).values():
            self.assertEqual(attrs(s)["user"], "anonymous")

    def send_on(self, conn):
        """A request on an open keep-alive connection to the client sidecar."""
        rid = str(uuid.uuid4())
        conn.request("GET", "http://%s:%d/traced" % (fqdn("web"), self.port), headers={"x-request-id": rid})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        return rid

    def test_b_sampling_changed_live(self):
        self.set_sampling(0)
        keep = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20)
        try:
            quiet = [self.send()[0] for _ in range(3)] + [self.send_on(keep)]
            forced, _ = self.send({"x-envoy-force-trace": "true"})
            self.spans(forced)
            for rid in quiet:
                self.assertEqual(self.collector.by_rid(rid), [], rid)
            # 0 -> 100, live: the next requests are traced, on new
            # connections and on one kept open across the change
            self.set_sampling(100)
            for _ in range(2):
                rid, _ = self.send()
                self.spans(rid)
            self.spans(self.send_on(keep))
        finally:
            keep.close()

    def test_c_server_spans_disabled_for_workload(self):
        self.meshd.write("web-telemetry.yaml", """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web-no-server-spans, namespace: %s}
spec:
  selector:
    matchLabels: {app: web}
  tracing:
  - match: {mode: SERVER}
    disableSpanReporting: true
""" % NS)
        try:
            web = self.sidecars["web"]
            wait_for(lambda: not inbound_traced(web), timeout=60 if slow() else 20,
                     what="the web sidecar's inbound HCM without tracing")
            self.assertTrue(outbound_traced(web))
            rid, _ = self.send({"x-envoy-force-trace": "true"})
            sp = self.spans(rid, n=1)
            # and a later forced request: still one span (the SERVER one never comes)
            rid2, _ = self.send({"x-envoy-force-trace": "true"})
            self.spans(rid2, n=1)
            self.assertEqual(len(self.collector.by_rid(rid)), 1)
            kind = self.tpb.Span
            self.assertEqual(list(sp), [kind.SPAN_KIND_CLIENT])
        finally:
            self.meshd.remove("web-telemetry.yaml")

    def test_d_otlp_grpc(self):
        # last: the provider switches to OTLP/gRPC (a live MeshConfig edit)
        tmp = self.mesh_file + ".tmp~"
        with open(tmp, "w") as f:
            f.write(mesh_yaml(self.collector.port, self.collector.grpc_port))
        os.rename(tmp, self.mesh_file)
        for s in self.sidecars.values():
            wait_for(lambda: re.search(r'"envoy_?[gG]rpc"', s.admin("/config_dump")[1]), timeout=60 if slow() else 20,
                     what="the OTLP/gRPC exporter in the sidecar's config")
        trace = uuid.uuid4().hex
        rid, _ = self.send({"traceparent": "00-%s-%s-01" % (trace, uuid.uuid4().hex[:16])})
        sp = self.spans(rid)
        kind = self.tpb.Span
        (_, c), (_, s) = sp[kind.SPAN_KIND_CLIENT], sp[kind.SPAN_KIND_SERVER]
        self.assertEqual(c.trace_id.hex(), trace)
        self.assertEqual(s.parent_span_id, c.span_id)
        self.assertEqual((self.collector.via[c.span_id], self.collector.via[s.span_id]), ("grpc", "grpc"))
        with self.collector.lock:
            self.assertEqual(set(self.collector.grpc_auth), {"Bearer otel-token"})
        wait_for(lambda: prom(self.px, "envoy_tracing_opentelemetry_http_reports_success") >= 1 and
                 prom(self.px, "envoy_tracing_opentelemetry_http_reports_failed") == 0, what="Export counted")


if __name__ == "__main__":
    unittest.main()
