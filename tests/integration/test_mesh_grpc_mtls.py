"""gRPC and HTTP/2 across two meshproxy sidecars over mutual TLS (issue 12):
the real meshd with its CA, two real meshproxy sidecars with certificates
from it, python3-grpcio on both ends, curl --http2-prior-knowledge.

  grpc client --h2c--> client sidecar ==HTTP/2 over mTLS (ALPN h2)==> greeter sidecar --h2c--> gRPC server
                       (outbound port)                                (inbound on 127.0.0.8:P)   (127.0.0.1:P)

greeter is a ServiceEntry with a GRPC port P (meshd makes its clusters
explicit HTTP/2 and its UpstreamTlsContext ALPN istio-peer-exchange, istio,
h2) whose WorkloadEntry 127.0.0.8:P says tlsMode istio and service account
greeter: the client sidecar's HTTP/2 connection (h2.c's) does the TLS
handshake and checks spiffe://cluster.local/ns/demo/sa/greeter; the
greeter sidecar's inbound sees ALPN h2 and serves the connection as HTTP/2
(h2.c, with the TLS session), each stream carrying the peer's identity
(XFCC to the application).  impostor points at the same workload but
claims another service account: the client sidecar refuses it (UF).

Cases (one meshd, two sidecars, about 10-15 s):
  - unary with trailers, status + message, server streaming ending in an
    error after messages: all intact; the application sees the client's
    SPIFFE id in x-forwarded-client-cert; both sidecars log HTTP/2;
  - curl --http2-prior-knowledge with a gRPC frame through the same path;
  - the wrong server identity: UNAVAILABLE, never reaches the server, UF;
  - PERMISSIVE serves plaintext gRPC (h2c) straight to the inbound port,
    STRICT refuses it while the mesh call over mTLS goes on;
  - an AuthorizationPolicy allowing only the client's principal: the mesh
    call passes (the HTTP/2 stream knows its TLS peer), plaintext is
    PERMISSION_DENIED;
  - curl over TLS with a certificate signed by meshd's CA (openssl, made
    here): ALPN selects h2, the application sees curl's SPIFFE id.

Nothing here asserts on timing; every wait is bounded.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest
from concurrent import futures

import grpc

from meshhttp import NS, Sidecar, fqdn, slow
from meshtest import Meshd, free_port, wait_for

GREETER_IP = "127.0.0.8"
CLIENT_ID = "spiffe://cluster.local/ns/%s/sa/client" % NS
GREETER_ID = "spiffe://cluster.local/ns/%s/sa/greeter" % NS


def pick_port():
    """A port free on 127.0.0.1 (the app) and on GREETER_IP (the greeter sidecar's inbound)."""
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((GREETER_IP, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no port free on both addresses")


def config(port):
    def svc(name, sa):
        return """apiVersion: networking.istio.io/v1
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
  ports: {grpc: %(port)d}
  serviceAccount: %(sa)s
  labels: {app: %(name)s, security.istio.io/tlsMode: istio}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port, "ip": GREETER_IP, "sa": sa}
    return {"greeter.yaml": svc("greeter", "greeter"), "impostor.yaml": svc("impostor", "impostor")}


STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %s}
spec:
  mtls: {mode: STRICT}
""" % NS


class GrpcApp:
    """test.Echo/Hello echoes (trailer x-trailer: yes; b"notfound" ->
    NOT_FOUND "no such thing") and keeps each call's metadata;
    test.Echo/Stream sends N messages (N the request's byte), and for 99
    two messages then ABORTED "stopped at 2"."""

    def __init__(self, port):
        self.lock = threading.Lock()
        self.calls = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Hello": grpc.unary_unary_rpc_method_handler(self._hello),
            "Stream": grpc.unary_stream_rpc_method_handler(self._stream),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("127.0.0.1:%d" % port)
        self.server.start()

    def _hello(self, req, ctx):
        with self.lock:
            self.calls.append((req, dict(ctx.invocation_metadata())))
        if req == b"notfound":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        ctx.set_trailing_metadata((("x-trailer", "yes"),))
        return b"echo:" + req

    def _stream(self, req, ctx):
        n = req[0] if req else 3
        for i in range(n if n != 99 else 2):
            yield b"msg%d" % i
        if n == 99:
            ctx.abort(grpc.StatusCode.ABORTED, "stopped at 2")

    def count(self):
        with self.lock:
            return len(self.calls)

    def last(self):
        with self.lock:
            return self.calls[-1]

    def stop(self):
        self.server.stop(None)


def certs(sidecar):
    return json.loads(sidecar.admin("/certs")[1])


def prom(sidecar, name):
    for line in sidecar.admin("/stats/prometheus")[1].splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("%s not in /stats/prometheus" % name)


class MeshGrpcMtlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-grpc-mtls-")
        cls.port = pick_port()
        cls.app = GrpcApp(cls.port)
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\ngreeter-token %s greeter\n" % (NS, NS))
        for name in ("client", "greeter"):
            with open(os.path.join(cls.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        cls.meshd = Meshd(config(cls.port), extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.sidecars = {}
        cls.chans = []
        try:
            cls.meshd.start()
            root = os.path.join(ca_dir, "root-cert.pem")

            def idargs(name):
                return ["--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", root,
                        "--token-file", os.path.join(cls.tmp, name + ".token"), "--service-account", name]
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client", args=idargs("client"))
            cls.sidecars["greeter"] = Sidecar(
                cls.meshd, "greeter-1", "app=greeter", ip=GREETER_IP,
                args=idargs("greeter") + ["--inbound-addr", "%s:%d" % (GREETER_IP, cls.port)])
            for s in cls.sidecars.values():
                s.wait_ready()
            for s in cls.sidecars.values():
                wait_for(lambda: certs(s)["generation"] >= 1, timeout=60 if slow() else 20,
                         what="a workload certificate: %s" % s.admin("/certs")[1])
        except BaseException:
            cls.tearDownClass()
            raise
        cls.px = cls.sidecars["client"]
        cls.gw = cls.sidecars["greeter"]
        cls.chan = cls.channel("127.0.0.1:%d" % cls.px.out_port, "greeter")

    @classmethod
    def channel(cls, target, name):
        ch = grpc.insecure_channel(target, options=[("grpc.default_authority", "%s:%d" % (fqdn(name), cls.port))])
        cls.chans.append(ch)
        return ch

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("H2_DEBUG"):
            for k, sc in cls.sidecars.items():
                print("=== %s\n%s\n%s" % (k, sc.logs()[-6000:], "\n".join(sc.access_log())))
        for ch in cls.chans:
            ch.close()
        bad = {}
        for key, s in cls.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        cls.meshd.finish(cls.app)
        for s in cls.sidecars.values():
            s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def test_1_unary_trailers_and_identity(self):
        resp, call = self.chan.unary_unary("/test.Echo/Hello").with_call(b"hi", timeout=20)
        self.assertEqual(resp, b"echo:hi")
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertIn(("x-trailer", "yes"), tuple(call.trailing_metadata()))
        # the server side saw the client's SPIFFE id: the hop was mTLS, and
        # the greeter sidecar's HTTP/2 stream knew its TLS peer
        req, md = self.app.last()
        self.assertEqual(req, b"hi")
        xfcc = md.get("x-forwarded-client-cert", "")
        self.assertIn("URI=" + CLIENT_ID, xfcc)
        self.assertIn("By=" + GREETER_ID, xfcc)
        # HTTP/2 on both sidecars (Envoy's %PROTOCOL%): the inbound took the
        # TLS connection as HTTP/2 by ALPN
        for sc in (self.px, self.gw):
            wait_for(lambda: any("/test.Echo/Hello" in x and "HTTP/2" in x for x in sc.access_log()),
                     what="the call in the access log as HTTP/2")

    def test_2_status_message_and_streaming(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.chan.unary_unary("/test.Echo/Hello")(b"notfound", timeout=20)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(cm.exception.details(), "no such thing")
        stub = self.chan.unary_stream("/test.Echo/Stream")
        self.assertEqual(list(stub(bytes([5]), timeout=20)), [b"msg%d" % i for i in range(5)])
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for m in stub(bytes([99]), timeout=20):
                got.append(m)
        self.assertEqual(got, [b"msg0", b"msg1"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        self.assertEqual(cm.exception.details(), "stopped at 2")
        # several calls at once share the mTLS connection's streams
        futs = [self.chan.unary_unary("/test.Echo/Hello").future(b"c%d" % i, timeout=30) for i in range(10)]
        self.assertEqual(sorted(f.result() for f in futs), sorted(b"echo:c%d" % i for i in range(10)))

    def test_3_curl_http2_prior_knowledge(self):
        frame = b"\x00\x00\x00\x00\x04curl"
        out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2-prior-knowledge",
                              "-H", "Host: %s:%d" % (fqdn("greeter"), self.port),
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "--data-binary", "@-", "http://127.0.0.1:%d/test.Echo/Hello" % self.px.out_port],
                             input=frame, capture_output=True, timeout=30)
        err = out.stderr.decode("latin-1")
        self.assertIn("< HTTP/2 200", err)
        self.assertIn("< grpc-status: 0", err)
        self.assertIn(b"echo:curl", out.stdout)
        self.assertIn("URI=" + CLIENT_ID, self.app.last()[1].get("x-forwarded-client-cert", ""))

    def test_4_wrong_server_identity(self):
        # impostor's workload should run as sa/impostor; the greeter
        # sidecar's certificate says sa/greeter: the HTTP/2 connection's
        # handshake fails the SAN check, a connect failure (UF)
        before = self.app.count()
        with self.assertRaises(grpc.RpcError) as cm:
            self.channel("127.0.0.1:%d" % self.px.out_port, "impostor").unary_unary("/test.Echo/Hello")(
                b"impostor", timeout=20)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.app.count(), before)
        # (a connect failure also when h2.c closed the stream's pipe before
        # the request was written into it: never a reset, UC)
        wait_for(lambda: any("/test.Echo/Hello" in x and " UF" in x and fqdn("impostor") in x
                             for x in self.px.access_log()),
                 what="a UF access log line for the impostor")
        self.assertFalse([x for x in self.px.access_log() if fqdn("impostor") in x and " UC" in x])
        key = "outbound|%d||%s::%s:%d::cx_connect_fail::" % (self.port, fqdn("impostor"), GREETER_IP, self.port)
        lines = [x for x in self.px.clusters().splitlines() if x.startswith(key)]
        self.assertEqual(len(lines), 1, self.px.clusters())
        self.assertGreater(int(lines[0][len(key):]), 0)

    def test_5_permissive_then_strict(self):
        direct = "%s:%d" % (GREETER_IP, self.port)
        # PERMISSIVE: plaintext gRPC (h2c) straight to the inbound port is served, without an XFCC
        stub = self.channel(direct, "greeter").unary_unary("/test.Echo/Hello")
        self.assertEqual(stub(b"plain", timeout=20), b"echo:plain")
        self.assertNotIn("x-forwarded-client-cert", self.app.last()[1])
        self.meshd.write("strict.yaml", STRICT)
        try:
            def refused():
                try:
                    self.channel(direct, "greeter").unary_unary("/test.Echo/Hello")(b"probe", timeout=5)
                    return False
                except grpc.RpcError:
                    return True
            wait_for(refused, timeout=60 if slow() else 30, what="STRICT applied on the greeter sidecar")
            before, refusals = self.app.count(), prom(self.gw, "meshproxy_tls_plaintext_refused")
            with self.assertRaises(grpc.RpcError) as cm:
                self.channel(direct, "greeter").unary_unary("/test.Echo/Hello")(b"strict", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(self.app.count(), before)
            self.assertGreater(prom(self.gw, "meshproxy_tls_plaintext_refused"), refusals)
            # the mesh call is HTTP/2 over mTLS: still served
            self.assertEqual(self.chan.unary_unary("/test.Echo/Hello")(b"strict-mtls", timeout=20),
                             b"echo:strict-mtls")
            self.assertIn("URI=" + CLIENT_ID, self.app.last()[1].get("x-forwarded-client-cert", ""))
        finally:
            self.meshd.remove("strict.yaml")

    def test_7_rbac_sees_the_principal_of_http2_streams(self):
        # an ALLOW policy for the client's identity only: the mesh call
        # (HTTP/2 over mTLS, the principal carried to the stream) passes,
        # plaintext h2c straight to the inbound port (no principal) is 403,
        # which a gRPC client sees as PERMISSION_DENIED
        self.meshd.write("authz.yaml", ALLOW_CLIENT)
        try:
            direct = "%s:%d" % (GREETER_IP, self.port)

            def denied():
                try:
                    self.channel(direct, "greeter").unary_unary("/test.Echo/Hello")(b"probe", timeout=5)
                    return False
                except grpc.RpcError as e:
                    return e.code() == grpc.StatusCode.PERMISSION_DENIED
            wait_for(denied, timeout=60 if slow() else 30, what="the policy applied on the greeter sidecar")
            self.assertEqual(self.chan.unary_unary("/test.Echo/Hello")(b"allowed", timeout=20), b"echo:allowed")
            self.assertEqual(self.app.last()[0], b"allowed")
        finally:
            self.meshd.remove("authz.yaml")

    def test_6_curl_over_tls_picks_h2_by_alpn(self):
        # a client that is not meshproxy: curl over TLS with a certificate
        # from meshd's CA, offering h2 and http/1.1: the inbound selects h2
        # by ALPN (not by sniffing the preface: curl sends HTTP/2 only when
        # the server chose it) and the stream knows the peer's SPIFFE id
        ca = os.path.join(self.tmp, "ca")
        key, crt, ext = (os.path.join(self.tmp, n) for n in ("curl.key", "curl.crt", "curl.ext"))
        curl_id = "spiffe://cluster.local/ns/%s/sa/curl" % NS
        with open(ext, "w") as f:
            f.write("subjectAltName=URI:%s\n" % curl_id)
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", crt + ".csr", "-subj", "/O=curl")
        run("openssl", "x509", "-req", "-in", crt + ".csr", "-CA", os.path.join(ca, "ca-cert.pem"),
            "-CAkey", os.path.join(ca, "ca-key.pem"), "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext)
        frame = b"\x00\x00\x00\x00\x03tls"
        out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2", "-k", "--cert", crt, "--key", key,
                              "-H", "Host: %s:%d" % (fqdn("greeter"), self.port),
                              "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-",
                              "https://%s:%d/test.Echo/Hello" % (GREETER_IP, self.port)],
                             input=frame, capture_output=True, timeout=30)
        err = out.stderr.decode("latin-1")
        self.assertIn("ALPN: server accepted h2", err)
        self.assertIn("< HTTP/2 200", err)
        self.assertIn("< grpc-status: 0", err)
        self.assertIn(b"echo:tls", out.stdout)
        self.assertIn("URI=" + curl_id, self.app.last()[1].get("x-forwarded-client-cert", ""))


ALLOW_CLIENT = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: greeter-from-client, namespace: %s}
spec:
  selector:
    matchLabels: {app: greeter}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/%s/sa/client]
""" % (NS, NS)


if __name__ == "__main__":
    unittest.main()
