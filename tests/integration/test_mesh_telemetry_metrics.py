"""Telemetry `metrics` applied end to end (issue 14): meshd turns the
Telemetry API into Istio's istio.stats filters (stats.PluginConfig) and
meshproxy honours them, live.

Real meshd (file source), two real meshproxy sidecars without iptables
(captureMode NONE, as test_mesh_tcp), real backends:
  client (app=client): egress captureMode NONE, so each service port is an
      outbound listener bound on 127.0.0.1:PORT;
  server (app=web):    ingress HP (HTTP) and TP (TCP) bound on 127.0.0.11,
      to an HTTP backend and a TCP echo on 127.0.0.1.
The metrics are read from each sidecar's /stats/prometheus (Prometheus
itself is exercised by test_mesh_metrics.py).

- (a) REQUEST_COUNT disabled for the client mode: the client's
  istio_requests_total stops growing while its duration histogram still
  counts; the server is untouched; removing the Telemetry brings the
  counter back;
- (b) tag overrides on the server: response_flags removed, request_method
  added from `request.method`, destination_app replaced by a literal; an
  expression meshproxy cannot evaluate is NACKed with a message naming it
  and the last good configuration keeps serving;
- (c) TCP: istio_tcp_* on both reporters, and a long connection's bytes
  show before it closes (reportingInterval 1s; Istio's default is 5s).
  The peer's labels on TCP come from the metadata exchange over mTLS:
  test_mesh_tcp.py's MeshTcpMtlsTest checks them (this file runs without
  a CA, so its TCP peer is "unknown", as Istio's over plaintext).
Every wait is bounded; nothing asserts on timing.  About 10 s.
"""
import socket
import threading

from meshhttp import NS, Backend, MeshCase, fqdn, slow
from meshtest import free_port, wait_for

SERVER_IP = "127.0.0.11"
HP, TP = free_port(), free_port()


class EchoServer:
    """A TCP echo on 127.0.0.1 until the client's FIN."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)

    def stop(self):
        self.stopped = True
        self.sock.close()


def services(web_port, echo_port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(web)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(hp)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: %(ns)s}
spec:
  hosts: [%(echo)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(tp)d, name: tcp, protocol: TCP}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(hp)d, tcp: %(tp)d}
  labels: {app: web, version: v1}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: client}
  egress:
  - hosts: ["*/*"]
    captureMode: NONE
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: web}
  ingress:
  - port: {number: %(hp)d, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%(wport)d
    bind: %(ip)s
    captureMode: NONE
  - port: {number: %(tp)d, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:%(eport)d
    bind: %(ip)s
    captureMode: NONE
  egress:
  - hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(web)s]
  http:
  - route:
    - destination: {host: %(web)s}
    retries: {attempts: 0}
""" % {"ns": NS, "web": fqdn("web"), "echo": fqdn("echo"), "hp": HP, "tp": TP, "ip": SERVER_IP,
       "wport": web_port, "eport": echo_port}


# (a) the client's REQUEST_COUNT off
NO_CLIENT_COUNT = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: no-client-count, namespace: %s}
spec:
  selector:
    matchLabels: {app: client}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      disabled: true
""" % NS


def server_tags(expr):
    """(b) the server's tag overrides; expr: request_method's value."""
    return """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web-tags, namespace: %s}
spec:
  selector:
    matchLabels: {app: web}
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 1s
    overrides:
    - match: {metric: ALL_METRICS, mode: SERVER}
      tagOverrides:
        response_flags: {operation: REMOVE}
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_method: {value: "%s"}
        destination_app: {value: "'web-app'"}
""" % (NS, expr)


# (c) the client's TCP bytes every second
CLIENT_INTERVAL = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: client-interval, namespace: %s}
spec:
  selector:
    matchLabels: {app: client}
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 1s
""" % NS


def series(sidecar, name):
    """[(labels dict, value)] of metric NAME on the sidecar's /stats/prometheus."""
    out = []
    for line in sidecar.admin("/stats/prometheus")[1].splitlines():
        if not line.startswith(name + "{"):
            continue
        body, _, value = line.rpartition(" ")
        labels = {}
        for part in body[len(name) + 1:-1].split('",'):
            k, _, v = part.partition('="')
            labels[k] = v.rstrip('"')
        out.append((labels, float(value)))
    return out


def total(sidecar, name, **want):
    return sum(v for labels, v in series(sidecar, name) if all(labels.get(k) == x for k, x in want.items()))


class MeshTelemetryMetricsTest(MeshCase):
    # the client is a Deployment's pod: its workload is the Deployment, from the
    # injector's ISTIO_META_WORKLOAD_NAME as Istio's agent reads it, not the pod name
    SIDECARS = {"client": ("client-1-6d8f9c5b7-x2bq7", "app=client,version=v1",
                           {"ISTIO_META_WORKLOAD_NAME": "client-1"}),
                "server": ("web-1", "app=web,version=v1")}

    @classmethod
    def backends(cls):
        return {"web": Backend("web"), "echo": EchoServer()}

    @classmethod
    def config(cls, b):
        return {"services.yaml": services(b["web"].port, b["echo"].port)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.client = cls.sidecars["client"]
        cls.server = cls.sidecars["server"]
        wait_for(lambda: "127.0.0.1_%d::" % HP in cls.client.admin("/listeners")[1] and
                 "127.0.0.1_%d::" % TP in cls.client.admin("/listeners")[1],
                 timeout=120 if slow() else 30, what="the client's bound listeners")
        wait_for(lambda: "%s_%d::" % (SERVER_IP, HP) in cls.server.admin("/listeners")[1],
                 timeout=120 if slow() else 30, what="the server's bound ingress")

    def get(self, path="/", method="GET"):
        r = self.client.request("http://%s:%d%s" % (fqdn("web"), HP, path), method=method, port=HP)
        self.assertEqual(r.status, 200, r)
        return r

    def wait_dump(self, sidecar, text, present=True):
        def squeeze(t):
            return "".join(t.split())
        wait_for(lambda: (squeeze(text) in squeeze(sidecar.admin("/config_dump")[1])) == present,
                 timeout=120 if slow() else 30, what="%r %s in the config dump" % (text, "" if present else "not"))

    def test_a_request_count_disabled_live(self):
        c, s = self.client, self.server
        for _ in range(3):
            self.get("/a")
        # a stream is counted when it ends, a moment after the answer
        wait_for(lambda: total(c, "istio_requests_total", reporter="source") == 3 and
                 total(s, "istio_requests_total", reporter="destination") == 3,
                 what="3 requests on both reporters")
        self.meshd.write("client-count.yaml", NO_CLIENT_COUNT)
        self.wait_dump(c, '"drop": true')
        for _ in range(4):
            self.get("/a")
        wait_for(lambda: total(c, "istio_request_duration_milliseconds_count", reporter="source") == 7,
                 what="the client's duration histogram counting 7")
        wait_for(lambda: total(s, "istio_requests_total", reporter="destination") == 7,
                 what="the server still counting (its mode is not CLIENT)")
        # the counter stopped: still the 3 of before
        self.assertEqual(total(c, "istio_requests_total", reporter="source"), 3, series(c, "istio_requests_total"))
        self.meshd.remove("client-count.yaml")
        self.wait_dump(c, '"drop": true', present=False)
        for _ in range(2):
            self.get("/a")
        wait_for(lambda: total(c, "istio_requests_total", reporter="source") == 5,
                 what="the client counting again")
        # never a series listed twice (a replaced config shares it)
        names = [tuple(sorted(labels.items())) for labels, _ in series(c, "istio_requests_total")]
        self.assertEqual(len(names), len(set(names)), names)

    def test_b_tags_removed_and_upserted(self):
        c, s = self.client, self.server
        self.meshd.write("web-tags.yaml", server_tags("request.method"))
        self.wait_dump(s, "'web-app'")
        self.get("/b", method="GET")
        self.get("/b", method="POST")
        self.get("/b", method="POST")

        def tagged():
            return {labels.get("request_method"): v for labels, v in series(s, "istio_requests_total")
                    if labels.get("destination_app") == "web-app"}
        wait_for(lambda: tagged() == {"GET": 1, "POST": 2}, what="requests_total by request_method: %r" % (tagged(),))
        for labels, _ in series(s, "istio_requests_total"):
            if labels.get("destination_app") == "web-app":
                self.assertNotIn("response_flags", labels)
                self.assertEqual(labels["reporter"], "destination")
                self.assertEqual(labels["source_workload"], "client-1")
        # the histograms keep their tags but response_flags (ALL_METRICS)
        hist = [labels for labels, _ in series(s, "istio_request_duration_milliseconds_count")
                if "response_flags" not in labels]
        self.assertTrue(hist and all(x["destination_app"] == "web" and "request_method" not in x for x in hist),
                        hist)
        # the client's labels are its own business: untouched
        self.assertTrue(all("response_flags" in labels for labels, _ in series(c, "istio_request_bytes_count")))

        # a function CEL does not define: NACKed with its name, as Envoy
        # ("failed to create an expression"); the last good configuration keeps serving
        self.meshd.write("web-tags.yaml", server_tags("lookup(request.size) > 10 ? 'big' : 'small'"))
        wait_for(lambda: "lookup(request.size) > 10" in s.logs(), timeout=120 if slow() else 30,
                 what="the NACK naming the expression")
        self.assertIn("failed to create an expression", s.logs())
        self.get("/b", method="GET")
        wait_for(lambda: tagged().get("GET") == 2, what="the last good config still tagging")
        # the seed Telemetry's "a4co-cluster" (valid CEL, fails at evaluation):
        # accepted, not NACKed, the tag reads "unknown" as in Istio
        self.meshd.write("web-tags.yaml", server_tags("a4co-cluster"))
        # a request per try: the first ones may still meet the old configuration
        wait_for(lambda: (self.get("/b", method="GET"), tagged().get("unknown", 0) >= 1)[1],
                 timeout=120 if slow() else 30,
                 what="request_method=unknown from a4co-cluster (last: %r)" % (tagged(),))
        self.meshd.write("web-tags.yaml", server_tags("request.method"))

    def test_c_tcp_reported_during_a_long_connection(self):
        c, s = self.client, self.server
        self.meshd.write("client-interval.yaml", CLIENT_INTERVAL)
        self.meshd.write("web-tags.yaml", server_tags("request.method"))
        self.wait_dump(c, '"tcp_reporting_duration": "1s"')
        self.wait_dump(s, '"tcp_reporting_duration": "1s"')
        conn = socket.create_connection(("127.0.0.1", TP), timeout=20)
        try:
            conn.sendall(b"x" * 1000)
            got = b""
            while len(got) < 1000:
                d = conn.recv(65536)
                self.assertTrue(d, "the echo closed early")
                got += d
            # still open: the periodic report shows the bytes on both reporters
            svc = fqdn("echo")
            wait_for(lambda: total(c, "istio_tcp_sent_bytes_total", reporter="source", destination_service=svc) == 1000
                     and total(c, "istio_tcp_received_bytes_total", reporter="source",
                               destination_service=svc) == 1000,
                     timeout=60 if slow() else 20, what="the client's bytes while open: %r"
                     % series(c, "istio_tcp_sent_bytes_total"))
            wait_for(lambda: total(s, "istio_tcp_received_bytes_total", reporter="destination") == 1000,
                     timeout=60 if slow() else 20, what="the server's bytes while open")
            self.assertEqual(total(c, "istio_tcp_connections_opened_total", reporter="source"), 1)
            self.assertEqual(total(c, "istio_tcp_connections_closed_total", reporter="source"), 0)
            for labels, _ in series(c, "istio_tcp_sent_bytes_total"):
                self.assertEqual(labels["request_protocol"], "tcp")
                self.assertEqual(labels["source_workload"], "client-1")
            conn.sendall(b"y" * 500)
            got = b""
            while len(got) < 500:
                got += conn.recv(65536)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
        finally:
            conn.close()
        # closed: the rest reported once, nothing counted twice
        wait_for(lambda: total(c, "istio_tcp_connections_closed_total", reporter="source") == 1 and
                 total(s, "istio_tcp_connections_closed_total", reporter="destination") == 1,
                 timeout=60 if slow() else 20, what="the connection closed on both reporters")
        self.assertEqual(total(c, "istio_tcp_sent_bytes_total", reporter="source"), 1500)
        self.assertEqual(total(c, "istio_tcp_received_bytes_total", reporter="source"), 1500)
        self.assertEqual(total(s, "istio_tcp_received_bytes_total", reporter="destination"), 1500)
        # the server's ALL_METRICS override applies to TCP too
        self.assertTrue(all("response_flags" not in labels
                            for labels, _ in series(s, "istio_tcp_received_bytes_total")))


if __name__ == "__main__":
    import unittest
    unittest.main()
