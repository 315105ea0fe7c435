"""Access logs as Istio users configure them (issue 14), end to end: real
meshd, two real meshproxy sidecars, a real backend.

  client --http_proxy--> client sidecar --> web sidecar --> web app
                         (outbound)          (inbound on 127.0.0.3:P) (127.0.0.1:P)

MeshConfig defines two envoyFileAccessLog providers: `json-errors` (a file,
logFormat.labels {} = Istio's default JSON keys) and `json-short` (another
file, three labels of our own); the built-in `envoy` provider is
/dev/stdout in Istio's text format.  Telemetry objects pick them per
workload:

  - app=client: json-errors with filter.expression `response.code >= 400`:
    only the failed requests reach the file, each line valid JSON with
    Istio's keys and typed values (response_code an int, missing values
    null);
  - app=web: envoy: every request on stdout (the sidecar's log file here),
    each line parsed with Istio's text format;
  - a live change of the web Telemetry to json-short switches the format:
    the next request is a JSON line in the other file and no longer on
    stdout;
  - a request to a destination no service declares (PassthroughCluster)
    is logged by the catch-all chain's access log;
  - a TCP service through a sidecar with bound listeners: its TcpProxy
    access log (response code 0, bytes both ways, no HTTP fields: null);
  - a filter outside the subset meshproxy compiles (`.matches()`) is
    refused by the sidecar (NACK naming it), which keeps its last config.

Nothing asserts on timing; every wait is bounded.  About 10 s.
"""
import json
import os
import re
import shutil
import socket
import socketserver
import tempfile
import threading
import unittest
import uuid

from meshhttp import NS, Backend, Sidecar, fqdn, slow
from meshtest import Meshd, free_port, wait_for
from test_mesh_mtls import WEB_IP, pick_port

# Istio's EnvoyTextLogFormat, field by field
TEXT_RE = re.compile(
    r'^\[(?P<start>\S+)\] "(?P<method>\S+) (?P<path>\S+) (?P<proto>\S+)" (?P<code>\d+) (?P<flags>\S+) '
    r'(?P<details>\S+) (?P<term>\S+) "(?P<tfail>[^"]*)" (?P<rx>\d+) (?P<tx>\d+) (?P<dur>\d+) (?P<ust>\S+) '
    r'"(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" "(?P<auth>[^"]*)" "(?P<uhost>[^"]*)" (?P<cluster>\S+) '
    r'(?P<ulocal>\S+) (?P<dlocal>\S+) (?P<dremote>\S+) (?P<sni>\S+) (?P<route>\S+)$')

ISTIO_JSON_KEYS = {
    "authority", "bytes_received", "bytes_sent", "connection_termination_details", "downstream_local_address",
    "downstream_remote_address", "duration", "method", "path", "protocol", "request_id", "requested_server_name",
    "response_code", "response_code_details", "response_flags", "route_name", "start_time", "upstream_cluster",
    "upstream_host", "upstream_local_address", "upstream_service_time", "upstream_transport_failure_reason",
    "user_agent", "x_forwarded_for"}


def mesh_yaml(tmp):
    return """extensionProviders:
- name: json-errors
  envoyFileAccessLog:
    path: %s
    logFormat:
      labels: {}
- name: json-short
  envoyFileAccessLog:
    path: %s
    logFormat:
      labels:
        code: "%%RESPONSE_CODE%%"
        path: "%%REQ(:PATH)%%"
        rid: "%%REQ(X-REQUEST-ID)%%"
        who: "web %%REQ(X-WHO)%%"
        tries: "%%UPSTREAM_REQUEST_ATTEMPT_COUNT%%"
- name: tcp-json
  envoyFileAccessLog:
    path: %s
    logFormat:
      labels:
        code: "%%RESPONSE_CODE%%"
        flags: "%%RESPONSE_FLAGS%%"
        rx: "%%BYTES_RECEIVED%%"
        tx: "%%BYTES_SENT%%"
        cluster: "%%UPSTREAM_CLUSTER%%"
        up: "%%UPSTREAM_HOST%%"
        method: "%%REQ(:METHOD)%%"
""" % (os.path.join(tmp, "errors.json"), os.path.join(tmp, "short.json"), os.path.join(tmp, "tcp.json"))


def telemetry(name, app, provider, expression=None):
    t = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: %s, namespace: %s}
spec:
  selector:
    matchLabels: {app: %s}
  accessLogging:
  - providers:
    - name: %s
""" % (name, NS, app, provider)
    if expression:
        t += "    filter:\n      expression: %s\n" % json.dumps(expression)
    return t


def web_config(port):
    return """apiVersion: networking.istio.io/v1
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
  labels: {app: web}
""" % {"ns": NS, "host": fqdn("web"), "port": port, "ip": WEB_IP}


def tcp_config(port, echo_port):
    """tcp-echo:PORT (TCP) to the echo server; the tcpc workload binds its
    egress listeners (captureMode NONE) and logs with tcp-json."""
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: tcp-echo, protocol: TCP}
  workloadSelector:
    labels: {svc: tcp-echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-1, namespace: %(ns)s}
spec:
  address: 127.0.0.1
  ports: {tcp-echo: %(echo)d}
  labels: {svc: tcp-echo}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: tcpc, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: tcpc}
  egress:
  - hosts: ["./%(host)s"]   # only tcp-echo: web's port is the app's on 127.0.0.1
    captureMode: NONE
""" % {"ns": NS, "host": fqdn("tcp-echo"), "port": port, "echo": echo_port}


class Echo:
    """A TCP server on 127.0.0.1 that echoes until the client's FIN."""

    def __init__(self):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    d = self.request.recv(65536)
                    if not d:
                        break
                    self.request.sendall(d)

        class S(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except OSError:
        return []


class MeshAccessLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-accesslog-")
        cls.port = pick_port()
        cls.app = Backend("web", "127.0.0.1", port=cls.port)
        cls.echo = Echo()
        cls.tcp_port = free_port()
        mesh_file = os.path.join(cls.tmp, "mesh")
        with open(mesh_file, "w") as f:
            f.write(mesh_yaml(cls.tmp))
        cls.meshd = Meshd({"web.yaml": web_config(cls.port),
                           "tel-client.yaml": telemetry("client-logs", "client", "json-errors", "response.code >= 400"),
                           "tel-web.yaml": telemetry("web-logs", "web", "envoy"),
                           "tcp.yaml": tcp_config(cls.tcp_port, cls.echo.port),
                           "tel-tcpc.yaml": telemetry("tcpc-logs", "tcpc", "tcp-json")},
                          extra_args=["--mesh-config", mesh_file])
        cls.sidecars = {}
        try:
            cls.meshd.start()
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client")
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web", ip=WEB_IP,
                                          args=["--inbound-addr", "%s:%d" % (WEB_IP, cls.port)])
            cls.sidecars["tcpc"] = Sidecar(cls.meshd, "tcpc", "app=tcpc")
            for s in cls.sidecars.values():
                s.wait_ready()
            wait_for(lambda: cls.sidecars["client"].dump_has("response.code >= 400"),
                     timeout=60 if slow() else 20, what="the client's filtered access log in its config")
            wait_for(lambda: cls.sidecars["web"].dump_has("/dev/stdout"),
                     timeout=60 if slow() else 20, what="the web sidecar's stdout access log in its config")
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars["client"]
        cls.web = cls.sidecars["web"]

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(cls.app)
        cls.echo.stop()
        for s in cls.sidecars.values():
            s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %s" % bad)

    def send(self, path, status, headers=None):
        rid = str(uuid.uuid4())
        h = {"x-request-id": rid, "user-agent": "alog-test"}
        h.update(headers or {})
        r = self.px.request("http://%s:%d%s" % (fqdn("web"), self.port, path), headers=h)
        self.assertEqual(r.status, status, r)
        return rid

    def web_text(self):
        """The web sidecar's stdout access log lines, parsed."""
        out = []
        with open(self.web.log_path, errors="replace") as f:
            for line in f.read().splitlines():
                m = TEXT_RE.match(line)
                if m:
                    out.append(m.groupdict())
        return out

    def test_1_client_json_errors_only(self):
        ok = self.send("/fine", 200)
        bad = self.send("/status/503", 503)
        gone = self.send("/status/404?q=%22x%22", 404)
        path = os.path.join(self.tmp, "errors.json")
        lines = wait_for(lambda: len(read_lines(path)) >= 2 and read_lines(path),
                         timeout=30 if slow() else 10, what="two lines in errors.json")
        recs = [json.loads(x) for x in lines]  # every line is valid JSON
        by_rid = {r["request_id"]: r for r in recs}
        self.assertNotIn(ok, by_rid)  # 200: filtered out
        self.assertEqual(set(by_rid), {bad, gone})
        r = by_rid[bad]
        self.assertEqual(set(r), ISTIO_JSON_KEYS)
        self.assertEqual(r["response_code"], 503)  # typed: an int
        self.assertEqual(r["method"], "GET")
        self.assertEqual(r["path"], "/status/503")
        self.assertEqual(r["protocol"], "HTTP/1.1")
        self.assertEqual(r["user_agent"], "alog-test")
        self.assertEqual(r["authority"], "%s:%d" % (fqdn("web"), self.port))
        self.assertEqual(r["upstream_cluster"], "outbound|%d||%s" % (self.port, fqdn("web")))
        self.assertEqual(r["upstream_host"], "%s:%d" % (WEB_IP, self.port))
        self.assertEqual(r["response_flags"], "URX")  # Istio's default retries on 503, all used
        self.assertEqual(by_rid[gone]["response_flags"], "-")
        self.assertEqual(r["response_code_details"], "via_upstream")
        self.assertIsInstance(r["bytes_sent"], int)
        self.assertIsInstance(r["duration"], int)
        self.assertIsNone(r["requested_server_name"])  # missing: null
        self.assertIsNone(r["x_forwarded_for"])
        self.assertRegex(r["upstream_local_address"], r"^127\.0\.0\.\d+:\d+$")
        self.assertRegex(r["downstream_remote_address"], r"^127\.0\.0\.1:\d+$")
        self.assertRegex(r["start_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(by_rid[gone]["path"], "/status/404?q=%22x%22")
        self.assertEqual(by_rid[gone]["response_code"], 404)

    def test_1b_passthrough_logged(self):
        # a destination no service declares: the catch-all chain's access log
        rid = str(uuid.uuid4())
        r = self.px.request("http://127.0.0.1:%d/status/418" % self.port,
                            headers={"x-request-id": rid, "user-agent": "alog-test"})
        self.assertEqual(r.status, 418, r)
        path = os.path.join(self.tmp, "errors.json")
        line = wait_for(lambda: [x for x in read_lines(path) if rid in x], timeout=30 if slow() else 10,
                        what="the passthrough request in errors.json")
        rec = json.loads(line[0])
        self.assertEqual(rec["upstream_cluster"], "PassthroughCluster")
        self.assertEqual(rec["response_code"], 418)
        self.assertEqual(rec["upstream_host"], "127.0.0.1:%d" % self.port)

    def test_1c_tcp_proxy_logged(self):
        # a TCP service through the tcpc sidecar's bound listener (TcpProxy.access_log)
        tcpc = self.sidecars["tcpc"]
        wait_for(lambda: tcpc.dump_has("tcp.json"), timeout=60 if slow() else 20,
                 what="the tcpc sidecar's TCP access log")

        def echo_once():
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5) as c:
                    c.sendall(b"hello")
                    c.shutdown(socket.SHUT_WR)
                    got = b""
                    while True:
                        d = c.recv(100)
                        if not d:
                            return got
                        got += d
            except OSError:
                return None
        self.assertEqual(wait_for(echo_once, timeout=30 if slow() else 10, what="an echo through the sidecar"),
                         b"hello")
        path = os.path.join(self.tmp, "tcp.json")
        lines = wait_for(lambda: read_lines(path), timeout=30 if slow() else 10, what="a line in tcp.json")
        rec = json.loads(lines[-1])
        self.assertEqual(rec, {"code": 0, "flags": "-", "rx": 5, "tx": 5,
                               "cluster": "outbound|%d||%s" % (self.tcp_port, fqdn("tcp-echo")),
                               "up": "127.0.0.1:%d" % self.echo.port, "method": None})

    def test_2_web_text_on_stdout(self):
        rid = self.send("/hello", 200)
        bad = self.send("/status/500", 500)
        got = wait_for(lambda: {r["rid"]: r for r in self.web_text() if r["rid"] in (rid, bad)}
                       if len([r for r in self.web_text() if r["rid"] in (rid, bad)]) == 2 else None,
                       timeout=30 if slow() else 10, what="two text lines on the web sidecar's stdout")
        r = got[rid]
        self.assertEqual((r["method"], r["path"], r["proto"], r["code"]), ("GET", "/hello", "HTTP/1.1", "200"))
        self.assertEqual(r["flags"], "-")
        self.assertEqual(r["details"], "via_upstream")
        self.assertEqual(r["ua"], "alog-test")
        self.assertEqual(r["auth"], "%s:%d" % (fqdn("web"), self.port))
        self.assertEqual(r["cluster"], "inbound|%d||" % self.port)
        self.assertEqual(r["uhost"], "127.0.0.1:%d" % self.port)
        self.assertEqual(r["dlocal"], "%s:%d" % (WEB_IP, self.port))
        self.assertRegex(r["ulocal"], r"^127\.0\.0\.\d+:\d+$")   # the connection to the app
        self.assertRegex(r["dremote"], r"^127\.0\.0\.\d+:\d+$")  # the client sidecar's
        self.assertEqual(r["route"], "default")
        self.assertEqual(got[bad]["code"], "500")
        # a request the codec refuses is logged too (400, DPE), as Envoy's HCM logs it
        with socket.create_connection((WEB_IP, self.port), timeout=5) as c:
            c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            self.assertIn(b" 400 ", c.recv(200))
        wait_for(lambda: [r for r in self.web_text() if r["code"] == "400" and r["flags"] == "DPE"],
                 timeout=30 if slow() else 10, what="the refused request on the web sidecar's stdout")
        # the client sidecar logs nothing on stdout: its Telemetry names a file only
        with open(self.px.log_path, errors="replace") as f:
            self.assertFalse([x for x in f.read().splitlines() if TEXT_RE.match(x)])

    def test_3_live_switch_to_json(self):
        self.meshd.write("tel-web.yaml", telemetry("web-logs", "web", "json-short"))
        wait_for(lambda: self.web.dump_has("short.json"), timeout=60 if slow() else 20,
                 what="the web sidecar's new access log")
        rid = self.send("/after", 200, {"x-who": "caf\u00e9".encode().decode("latin-1")})
        path = os.path.join(self.tmp, "short.json")
        line = wait_for(lambda: [x for x in read_lines(path) if rid in x], timeout=30 if slow() else 10,
                        what="the request in short.json")
        rec = json.loads(line[0])
        self.assertEqual(rec, {"code": 200, "path": "/after", "rid": rid, "who": "web caf\u00e9", "tries": 1})
        # ... and no longer on stdout (the line would be there by now: same flush)
        self.assertFalse([r for r in self.web_text() if r["rid"] == rid])

    def test_4_filter_outside_subset_nacked(self):
        self.meshd.write("tel-web.yaml", telemetry("web-logs", "web", "json-short", "request.path.matches('^/a')"))
        wait_for(lambda: "unsupported method 'matches'" in self.web.logs(), timeout=60 if slow() else 20,
                 what="the web sidecar refusing the filter")
        # still serving with its last good config (json-short, no filter)
        rid = self.send("/still", 200)
        path = os.path.join(self.tmp, "short.json")
        wait_for(lambda: [x for x in read_lines(path) if rid in x], timeout=30 if slow() else 10,
                 what="the request logged by the last good config")


if __name__ == "__main__":
    unittest.main()
