"""HTTP/2 and gRPC through meshproxy (issue 12, "Protocols"), end to end:
the real meshd, two real meshproxy sidecars and real peers on loopback.

gRPC path: python3-grpcio client -> client sidecar's outbound port (h2c,
prior knowledge) -> cluster outbound|P||greeter (meshd marks GRPC ports
explicit HTTP/2) -> the greeter workload's address ING_IP:ING_PORT, where
its sidecar listens (a Sidecar ingress with captureMode NONE: no iptables
here) -> inbound|ING_PORT|| (HTTP/2 for a GRPC port) -> the python3-grpcio
server on 127.0.0.1:APP_PORT.

HTTP path: curl --http2-prior-knowledge and nghttp (several streams on one
connection) through the client sidecar to an HTTP/1.1 backend.

Nothing here asserts on timing; the deadline case compares outcomes.
"""
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

from meshhttp import NS, PORT, Backend, MeshCase, Sidecar, fqdn, service_yaml
from meshtest import free_port, wait_for

GRPC_PORT = free_port()  # greeter's service port (only named in :authority, never bound)
APP_PORT = free_port()   # the gRPC application, on 127.0.0.1
ING_IP = "127.0.0.6"     # the greeter workload's address: its sidecar binds ING_IP:ING_PORT
ING_PORT = free_port()


def grpc_service_yaml(name, ip, port, target_port):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: %(name)s}
  ingress:
  - port: {number: %(tport)d, protocol: GRPC, name: grpc}
    defaultEndpoint: 127.0.0.1:%(app)d
    bind: %(ip)s
    captureMode: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: %(name)s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {grpc: %(tport)d}
  labels: {app: %(name)s}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port, "ip": ip, "tport": target_port, "app": APP_PORT}


# greeter2: the live greeter workload and an address nobody listens on
DEAD_PORT = free_port()
GREETER2_YAML = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter2, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: greeter2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: greeter2-live, namespace: %(ns)s}
spec: {address: %(ip)s, ports: {grpc: %(live)d}, labels: {app: greeter2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: greeter2-dead, namespace: %(ns)s}
spec: {address: 127.0.0.7, ports: {grpc: %(dead)d}, labels: {app: greeter2}}
""" % {"ns": NS, "host": fqdn("greeter2"), "port": GRPC_PORT, "ip": ING_IP, "live": ING_PORT, "dead": DEAD_PORT}

EMPTY_YAML = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: empty, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: empty}
""" % {"ns": NS, "host": fqdn("empty"), "port": GRPC_PORT}


class GrpcApp:
    """A gRPC server (generic handlers, bytes in and out) on 127.0.0.1:port.

    test.Echo/Hello: b"notfound" -> NOT_FOUND "no such thing"; b"flaky"
    -> every other such call UNAVAILABLE; b"slow" sleeps 3 s; else echoes
    with trailing metadata x-trailer: yes.  test.Echo/Stream: N messages
    (N = the request's byte), then OK, or ABORTED "stopped at 2" when N is 99.
    """

    def __init__(self, port):
        self.lock = threading.Lock()
        self.calls = 0
        self.flaky = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Hello": grpc.unary_unary_rpc_method_handler(self._hello),
            "Stream": grpc.unary_stream_rpc_method_handler(self._stream),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("127.0.0.1:%d" % port)
        self.server.start()

    def _hello(self, req, ctx):
        with self.lock:
            self.calls += 1
            if req == b"flaky":
                self.flaky += 1
                n = self.flaky
        if req == b"notfound":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if req == b"flaky" and n % 2 == 1:
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        if req == b"slow":
            time.sleep(3)
        ctx.set_trailing_metadata((("x-trailer", "yes"),))
        return b"echo:" + req

    def _stream(self, req, ctx):
        n = req[0] if req else 3
        for i in range(n if n != 99 else 2):
            yield b"msg%d" % i
        if n == 99:
            ctx.abort(grpc.StatusCode.ABORTED, "stopped at 2")

    def stop(self):
        self.server.stop(None)


class MeshH2Test(MeshCase):
    SIDECARS = {"client": ("client", "app=client"), "server": ("greeter", "app=greeter")}

    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.2")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web"]]), "empty.yaml": EMPTY_YAML,
                "greeter.yaml": grpc_service_yaml("greeter", ING_IP, GRPC_PORT, ING_PORT),
                "greeter2.yaml": GREETER2_YAML}

    @classmethod
    def setUpClass(cls):
        cls.app = GrpcApp(APP_PORT)
        try:
            super().setUpClass()
        except BaseException:
            cls.app.stop()
            raise
        cls.chan = grpc.insecure_channel("127.0.0.1:%d" % cls.px.out_port,
                                         options=[("grpc.default_authority", "%s:%d" % (fqdn("greeter"), GRPC_PORT))])

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("H2_DEBUG"):
            for k, sc in cls.sidecars.items():
                print("=== %s\n%s\n%s" % (k, sc.logs()[-6000:], "\n".join(sc.access_log())))
        cls.chan.close()
        cls.app.stop()
        super().tearDownClass()

    # ------------------------------------------------------------ gRPC

    def test_grpc_unary_and_trailers(self):
        stub = self.chan.unary_unary("/test.Echo/Hello")
        resp, call = stub.with_call(b"hi", timeout=20)
        self.assertEqual(resp, b"echo:hi")
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertIn(("x-trailer", "yes"), tuple(call.trailing_metadata()))
        # both sidecars logged it as HTTP/2 (Envoy's %PROTOCOL%)
        for sc in (self.px, self.sidecars["server"]):
            wait_for(lambda: any("/test.Echo/Hello" in x and "HTTP/2" in x for x in sc.access_log()),
                     what="the call in the access log as HTTP/2")

    def test_grpc_status_and_message_intact(self):
        stub = self.chan.unary_unary("/test.Echo/Hello")
        with self.assertRaises(grpc.RpcError) as cm:
            stub(b"notfound", timeout=20)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(cm.exception.details(), "no such thing")

    def test_grpc_server_streaming(self):
        stub = self.chan.unary_stream("/test.Echo/Stream")
        self.assertEqual(list(stub(bytes([5]), timeout=20)), [b"msg%d" % i for i in range(5)])
        # an error after messages: the status travels in real trailers
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in stub(bytes([99]), timeout=20):
                got.append(m)
        self.assertEqual(got, [b"msg0", b"msg1"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        self.assertEqual(cm.exception.details(), "stopped at 2")

    def test_grpc_concurrent_calls_share_connections(self):
        stub = self.chan.unary_unary("/test.Echo/Hello")
        futs = [stub.future(b"c%d" % i, timeout=30) for i in range(20)]
        self.assertEqual(sorted(f.result() for f in futs), sorted(b"echo:c%d" % i for i in range(20)))

    def test_grpc_retry_on_unavailable(self):
        # Istio's default retry policy has "unavailable": every other call
        # the application fails with UNAVAILABLE (trailers-only), the
        # sidecar retries it, the client never sees it
        stub = self.chan.unary_unary("/test.Echo/Hello")
        before = self.app.flaky
        for _ in range(3):
            self.assertEqual(stub(b"flaky", timeout=20), b"echo:flaky")
        self.assertEqual(self.app.flaky - before, 6)

    def test_grpc_connect_failure_retried(self):
        # one of greeter2's two endpoints refuses connections: a connect
        # failure (UF) to an HTTP/2 cluster is retried on the other host by
        # Istio's default retry policy, so every call succeeds; calls go on
        # (bounded) until the LB has picked the dead host at least once
        chan = grpc.insecure_channel("127.0.0.1:%d" % self.px.out_port,
                                     options=[("grpc.default_authority", "%s:%d" % (fqdn("greeter2"), GRPC_PORT))])
        key = "outbound|%d||%s::127.0.0.7:%d::cx_connect_fail::" % (GRPC_PORT, fqdn("greeter2"), DEAD_PORT)

        def fails():
            lines = [x for x in self.px.clusters().splitlines() if x.startswith(key)]
            self.assertEqual(len(lines), 1, self.px.clusters())
            return int(lines[0][len(key):])
        try:
            stub = chan.unary_unary("/test.Echo/Hello")
            for i in range(40):
                self.assertEqual(stub(b"r%d" % i, timeout=20), b"echo:r%d" % i)
                if i >= 5 and fails() > 0:
                    break
        finally:
            chan.close()
        self.assertGreater(fails(), 0, "the dead host was never tried")

    def test_grpc_local_reply_is_grpc_shaped(self):
        # no endpoint: the sidecar's 503 "no healthy upstream" reaches a gRPC
        # client as HTTP 200 + grpc-status 14 (Envoy's local reply mapping)
        chan = grpc.insecure_channel("127.0.0.1:%d" % self.px.out_port,
                                     options=[("grpc.default_authority", "%s:%d" % (fqdn("empty"), GRPC_PORT))])
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                chan.unary_unary("/test.Echo/Hello")(b"x", timeout=20)
        finally:
            chan.close()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("no healthy upstream", cm.exception.details())

    def test_grpc_timeout_honoured(self):
        # grpc-timeout 200m on a gRPC-typed call to an HTTP backend that answers
        # after 3 s and knows nothing of deadlines: the route honours the header
        # (meshd sends maxGrpcTimeout 0s: no cap), so the sidecar ends the call
        # itself, gRPC-shaped (504 -> UNAVAILABLE); without the header the same
        # call waits for the backend's answer
        def call(*extra):
            out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2-prior-knowledge",
                                  "-H", "Host: %s:%d" % (fqdn("web"), PORT), "-H", "content-type: application/grpc",
                                  "--data-binary", "grpc-frame"] + list(extra) +
                                 ["http://127.0.0.1:%d/delay/3000" % self.px.out_port], capture_output=True, timeout=30)
            return out.stderr.decode("latin-1")
        err = call("-H", "grpc-timeout: 200m")
        self.assertIn("< HTTP/2 200", err)
        self.assertIn("< grpc-status: 14", err)
        self.assertIn("upstream request timeout", err)
        err = call()
        self.assertIn("< HTTP/2 200", err)
        self.assertIn("< x-backend: web", err)
        self.assertNotIn("grpc-status", err)

    def test_http1_client_to_grpc_upstream(self):
        # HTTP/1.1 in, HTTP/2 out: the body goes chunked <-> DATA and the
        # gRPC trailers come back as the chunked body's trailer section
        body = b"\x00\x00\x00\x00\x02hi"
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(b"POST /test.Echo/Hello HTTP/1.1\r\nHost: %s:%d\r\ncontent-type: application/grpc\r\n"
                      b"te: trailers\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" %
                      (fqdn("greeter").encode(), GRPC_PORT, len(body), body))
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        head, _, rest = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), out)
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertIn(b"echo:hi", rest)
        self.assertIn(b"grpc-status: 0\r\n", rest)
        self.assertTrue(rest.endswith(b"\r\n\r\n"), rest)

    # ------------------------------------------------------------ HTTP/2 to HTTP/1.1

    def test_curl_http2_prior_knowledge(self):
        out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2-prior-knowledge",
                              "-H", "Host: %s:%d" % (fqdn("web"), PORT), "--data-binary", "x" * 5000,
                              "http://127.0.0.1:%d/h2-post" % self.px.out_port], capture_output=True, timeout=30)
        err = out.stderr.decode("latin-1")
        self.assertIn("< HTTP/2 200", err)
        self.assertIn("< x-backend: web", err)
        method, path, hdrs, got = self.b["web"].last()
        self.assertEqual((method, path, got), ("POST", "/h2-post", b"x" * 5000))
        # the HTTP/1.1 hop got the authority as Host
        self.assertEqual(hdrs.get("host"), "%s:%d" % (fqdn("web"), PORT))

    def test_nghttp_many_streams_one_connection(self):
        url = "http://127.0.0.1:%d" % self.px.out_port
        before = self.b["web"].count()
        out = subprocess.run(["nghttp", "-nv", "-H", ":authority: %s:%d" % (fqdn("web"), PORT)] +
                             ["%s/many/%d" % (url, i) for i in range(8)], capture_output=True, timeout=30)
        text = out.stdout.decode("latin-1")
        self.assertEqual(out.returncode, 0, text[-2000:])
        self.assertEqual(text.count(":status: 200"), 8, text[-2000:])
        self.assertEqual(self.b["web"].count() - before, 8)

    def test_hostile_peer_gets_goaway(self):
        # garbage after the preface: GOAWAY (frame type 7) and a close, and the sidecar goes on
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x63\x00\x00\x00\x00\x00garbage" * 3)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        # frames: 9-byte headers; look for a GOAWAY among them
        types, i = [], 0
        while i + 9 <= len(out):
            ln = int.from_bytes(out[i:i + 3], "big")
            types.append(out[i + 3])
            i += 9 + ln
        self.assertIn(7, types, out)
        r = self.px.get("web", "/after-hostile")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
