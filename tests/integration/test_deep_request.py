"""Messages nested thousands of levels deep (a google.protobuf.Struct in node
metadata, ~20 KB for 3,000 levels) once overflowed meshd's stack inside
protobuf-c's recursive unpack.  meshd now refuses any request nesting more
than 100 messages deep (C++ protobuf's default limit, which Envoy and gRPC
decode with) with INVALID_ARGUMENT, ends that stream, and keeps serving:
ADS SotW and Delta on the plaintext port, ADS on the TLS port (no client
certificate), and CreateCertificate.  A request nesting exactly 100 levels is
still answered.
"""
import os
import tempfile
import threading
import unittest

import grpc

from meshtest import Meshd

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
CREATE = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
LDS = b"type.googleapis.com/envoy.config.listener.v3.Listener"
NODE_ID = b"sidecar~127.0.0.1~c.demo~demo.svc.cluster.local"

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: calm, namespace: demo}
spec:
  hosts: [calm.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 7071}}]
"""


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(num, data):
    """A length-delimited protobuf field."""
    return varint(num << 3 | 2) + varint(len(data)) + data


def struct(d):
    """google.protobuf.Struct: fields (1) map<string, Value> entries."""
    return b"".join(ld(1, ld(1, k) + ld(2, v)) for k, v in d.items())


def deep_value(levels):
    """A google.protobuf.Value {"a": {"a": ... "x"}} nesting `levels` Structs."""
    v = ld(3, b"x")
    for _ in range(levels):
        v = ld(5, struct({b"a": v}))
    return v


def metadata(levels):
    return struct({b"NAMESPACE": ld(3, b"demo"), b"X": deep_value(levels)})


def sotw_request(levels):
    node = ld(1, NODE_ID) + ld(3, metadata(levels))
    return ld(2, node) + ld(4, LDS)


def delta_request(levels):
    node = ld(1, NODE_ID) + ld(3, metadata(levels))
    return ld(1, node) + ld(2, LDS)


class DeepRequestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-deep-it-")
        cls.tokens = os.path.join(cls.tmp, "tokens")
        with open(cls.tokens, "w") as f:
            f.write("good-token demo web\n")
        cls.ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd({"calm.yaml": CONFIG},
                          extra_args=["--ca-dir", cls.ca_dir, "--ca-token-file", cls.tokens]).start()
        with open(os.path.join(cls.ca_dir, "root-cert.pem"), "rb") as f:
            cls.root = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def plain(self):
        return grpc.insecure_channel("127.0.0.1:%d" % self.meshd.xds_port)

    def secure(self):
        return grpc.secure_channel("127.0.0.1:%d" % self.meshd.secure_port,
                                   grpc.ssl_channel_credentials(root_certificates=self.root))

    def stream_first(self, channel, method, request):
        """Send one request on a bidi stream; the first response, or the RpcError."""
        done = threading.Event()

        def requests():
            yield request
            done.wait(15)  # keep the stream open (half-closing ends it) until answered

        try:
            st = channel.stream_stream(method)
            it = st(requests(), timeout=15)
            try:
                return next(it)
            except grpc.RpcError as e:
                return e
        finally:
            done.set()
            channel.close()

    def assert_refused(self, got, what):
        self.assertIsInstance(got, grpc.RpcError, "%s: answered instead of refused" % what)
        self.assertEqual(got.code(), grpc.StatusCode.INVALID_ARGUMENT, "%s: %s" % (what, got.details()))
        self.assertIn("nests messages deeper than 100 levels", got.details(), what)

    def assert_serving(self):
        self.assertEqual(self.meshd.http("/ready")[0], 200)
        got = self.stream_first(self.plain(), ADS, sotw_request(0))
        self.assertIsInstance(got, bytes, "an ordinary request after the deep ones: %r" % (got,))
        self.assertIn(LDS, got)

    def test_01_under_the_limit_answered(self):
        # request 0, node 1, metadata 2, its entry 3, the Value 4, then 3 levels
        # a Struct (Struct, entry, Value): 32 Structs are 100 levels, the limit
        for ch in (self.plain(), self.secure()):
            got = self.stream_first(ch, ADS, sotw_request(32))
            self.assertIsInstance(got, bytes, "32 Structs, 100 levels: %r" % (got,))
            self.assertIn(LDS, got)

    def test_02_sotw_plaintext(self):
        for levels in (33, 3000, 20000):  # 103 levels and more
            self.assert_refused(self.stream_first(self.plain(), ADS, sotw_request(levels)),
                                "SotW %d levels" % levels)
        self.assert_serving()

    def test_03_delta_plaintext(self):
        self.assert_refused(self.stream_first(self.plain(), DELTA, delta_request(3000)), "Delta 3000 levels")
        self.assert_serving()

    def test_04_tls_port_no_client_cert(self):
        self.assert_refused(self.stream_first(self.secure(), ADS, sotw_request(3000)), "SotW over TLS")
        self.assert_refused(self.stream_first(self.secure(), DELTA, delta_request(3000)), "Delta over TLS")
        self.assert_serving()

    def test_05_create_certificate(self):
        ch = self.secure()
        try:
            req = ld(1, b"-----BEGIN CERTIFICATE REQUEST-----\n") + ld(4, metadata(3000))
            with self.assertRaises(grpc.RpcError) as ctx:
                ch.unary_unary(CREATE)(req, metadata=[("authorization", "Bearer good-token")], timeout=15)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, ctx.exception.details())
            self.assertIn("nests messages deeper than 100 levels", ctx.exception.details())
        finally:
            ch.close()
        self.assert_serving()
        self.assertIn("nests messages deeper than 100 levels", self.meshd.logs())


if __name__ == "__main__":
    unittest.main()
