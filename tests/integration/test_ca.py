"""meshd's CA on the TLS port, against real peers: python3-grpcio over TLS
(verifying meshd with the root it generated), openssl to verify chains, and
`meshctl certs` writing a workload's files.

Cases: a good token gets a chain that `openssl verify` accepts with the
caller's SPIFFE ID only; no token / a wrong token -> UNAUTHENTICATED; a
garbage CSR -> INVALID_ARGUMENT and meshd keeps serving; CreateCertificate
on the plaintext port is refused; ADS over the TLS port answers a
DiscoveryRequest; `meshctl certs --once` writes three files that verify; a
restart keeps the generated root.
"""
import json
import os
import subprocess
import tempfile
import unittest

import grpc

from meshtest import MESHCTL, Meshd, wait_for

CREATE = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CDS_URL = b"type.googleapis.com/envoy.config.cluster.v3.Cluster"

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: calm, namespace: test}
spec:
  hosts: [calm.test.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: 7071}}]
"""


def sample(text, series):
    """The value of the exposition sample named exactly series; 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return 0.0


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, data):
    """A length-delimited protobuf field."""
    return varint(num << 3 | 2) + varint(len(data)) + data


def cert_request(csr, ttl=0):
    msg = field(1, csr)
    if ttl:
        msg += varint(3 << 3) + varint(ttl)
    return msg


def strings_of(msg, num):
    """Values of a repeated string field (top level) of a protobuf message."""
    out, i = [], 0
    while i < len(msg):
        key, i = read_varint(msg, i)
        wt = key & 7
        if wt == 2:
            n, i = read_varint(msg, i)
            if key >> 3 == num:
                out.append(msg[i:i + n].decode())
            i += n
        elif wt == 0:
            _, i = read_varint(msg, i)
        else:
            raise AssertionError("unexpected wire type %d" % wt)
    return out


def read_varint(b, i):
    shift = n = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


class CaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-ca-it-")
        cls.tokens = os.path.join(cls.tmp, "tokens")
        with open(cls.tokens, "w") as f:
            f.write("# test callers\ngood-token default web\n")
        cls.ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd({"calm.yaml": CONFIG},
                          extra_args=["--ca-dir", cls.ca_dir, "--ca-token-file", cls.tokens]).start()
        with open(os.path.join(cls.ca_dir, "root-cert.pem"), "rb") as f:
            cls.root = f.read()
        cls.channel = grpc.secure_channel("127.0.0.1:%d" % cls.meshd.secure_port,
                                          grpc.ssl_channel_credentials(root_certificates=cls.root))
        key = os.path.join(cls.tmp, "k.pem")
        rc, out = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        assert rc == 0, out
        # the CSR claims another identity: the CA must ignore it
        r = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=admin",
                            "-addext", "subjectAltName=URI:spiffe://evil/ns/kube-system/sa/admin"],
                           capture_output=True, check=True, timeout=60)
        cls.csr = r.stdout

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        rc = cls.meshd.stop()
        logs = cls.meshd.logs()
        cls.meshd.cleanup()
        subprocess.run(["rm", "-rf", cls.tmp])
        if rc != 0:
            raise AssertionError("meshd exited %s\n%s" % (rc, logs))

    def create(self, req, token="good-token", channel=None):
        md = [("authorization", "Bearer " + token)] if token is not None else None
        return (channel or self.channel).unary_unary(CREATE)(req, metadata=md, timeout=20)

    def assert_code(self, code, fn, text=None):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn()
        self.assertEqual(ctx.exception.code(), code, ctx.exception.details())
        if text:
            self.assertIn(text, ctx.exception.details())

    def write(self, name, data):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(data)
        return p

    def test_01_good_token_gets_verified_chain(self):
        chain = strings_of(self.create(cert_request(self.csr, ttl=3600)), 1)
        self.assertGreaterEqual(len(chain), 2)
        self.assertEqual(chain[-1].encode().strip(), self.root.strip())
        leaf = self.write("leaf.pem", chain[0])
        untrusted = self.write("untrusted.pem", "".join(chain[1:]))
        root = self.write("root.pem", chain[-1])
        rc, out = openssl("verify", "-CAfile", root, "-untrusted", untrusted, leaf)
        self.assertEqual(rc, 0, out)
        rc, text = openssl("x509", "-in", leaf, "-noout", "-text")
        self.assertEqual(rc, 0, text)
        self.assertIn("URI:spiffe://cluster.local/ns/default/sa/web", text)
        self.assertNotIn("evil", text)
        self.assertNotIn("admin", text)
        self.assertIn("TLS Web Server Authentication, TLS Web Client Authentication", text)

    def test_02_no_or_wrong_token(self):
        req = cert_request(self.csr)
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, lambda: self.create(req, token=None), "authorization")
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, lambda: self.create(req, token="wrong"), "unknown")

    def test_03_garbage_csr_and_still_serving(self):
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT, lambda: self.create(cert_request(b"garbage")), "CSR")
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT,
                         lambda: self.create(cert_request(self.csr[: len(self.csr) // 2])), "CSR")
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT,
                         lambda: self.create(cert_request(b"x" * (70 * 1024))), "limit")
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT, lambda: self.create(b"\x0a\xff\xff\xff\x0f"))
        self.assertEqual(len(strings_of(self.create(cert_request(self.csr)), 1)), 2)
        self.assertEqual(self.meshd.http("/ready")[0], 200)

    def test_04_plaintext_port_refuses_ca(self):
        plain = grpc.insecure_channel("127.0.0.1:%d" % self.meshd.xds_port)
        try:
            self.assert_code(grpc.StatusCode.UNAUTHENTICATED,
                             lambda: self.create(cert_request(self.csr), channel=plain), "TLS")
        finally:
            plain.close()

    def test_05_ads_over_tls(self):
        # metadata {GENERATOR: "grpc"}: a proxyless client (Struct.fields entry
        # key 1, value 2; Value.string_value 3); other flavours are refused
        generator = field(1, field(1, b"GENERATOR") + field(2, field(3, b"grpc")))
        node = field(1, b"tls-client") + field(3, generator)
        req = field(2, node) + field(4, CDS_URL)
        stream = self.channel.stream_stream(ADS)(iter([req]), timeout=20)
        first = next(stream)
        stream.cancel()
        self.assertIn(CDS_URL, first)
        self.assertEqual(strings_of(first, 4), [CDS_URL.decode()])

    def metrics(self):
        status, body = self.meshd.http("/metrics")
        self.assertEqual(status, 200)
        return body

    def test_08_metrics_count_csrs_and_pushes(self):
        """Istio's citadel_server_* counters and pilot_xds_push_time move
        with what meshd did, exactly."""
        names = ["citadel_server_csr_count", "citadel_server_success_cert_issuance_count",
                 "citadel_server_authentication_failure_count", "citadel_server_csr_parsing_err_count",
                 'pilot_xds_push_time_count{type="cds"}', 'pilot_xds_config_size_bytes_count{type="cds"}']
        before = self.metrics()
        b = {n: sample(before, n) for n in names}
        self.create(cert_request(self.csr))
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, lambda: self.create(cert_request(self.csr), token="wrong"))
        self.assert_code(grpc.StatusCode.INVALID_ARGUMENT, lambda: self.create(cert_request(b"garbage")))
        self.test_05_ads_over_tls()
        # the push time ends when gRPC completes the send: poll for it
        after = wait_for(lambda: (lambda t: t if sample(t, names[4]) >= b[names[4]] + 1 else None)(self.metrics()),
                         what="the CDS push timed")
        a = {n: sample(after, n) for n in names}
        self.assertEqual(a["citadel_server_csr_count"] - b["citadel_server_csr_count"], 3)
        self.assertEqual(a["citadel_server_success_cert_issuance_count"]
                         - b["citadel_server_success_cert_issuance_count"], 1)
        self.assertEqual(a["citadel_server_authentication_failure_count"]
                         - b["citadel_server_authentication_failure_count"], 1)
        self.assertEqual(a["citadel_server_csr_parsing_err_count"] - b["citadel_server_csr_parsing_err_count"], 1)
        self.assertEqual(a[names[4]] - b[names[4]], 1)
        self.assertEqual(a[names[5]] - b[names[5]], 1)
        self.assertIn('istio_build{component="pilot",tag="', after)
        self.assertIn("# TYPE pilot_proxy_queue_time histogram", after)

    def test_06_meshctl_certs_once(self):
        out = os.path.join(self.tmp, "workload")
        os.mkdir(out)
        token = self.write("token", "good-token\n")
        r = subprocess.run([MESHCTL, "certs", "--ca-addr", "127.0.0.1:%d" % self.meshd.secure_port,
                            "--root-cert", os.path.join(self.ca_dir, "root-cert.pem"), "--token-file", token,
                            "--dir", out, "--once", "--ttl", "2h"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rotated", r.stderr)
        # --print-bootstrap prints the config for DIR and exits, asking the CA for nothing
        b = subprocess.run([MESHCTL, "certs", "--print-bootstrap", "--dir", out],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(b.returncode, 0, b.stderr)
        cfg = json.loads(b.stdout)["certificate_providers"]["default"]
        self.assertEqual(cfg["plugin_name"], "file_watcher")
        self.assertEqual(cfg["config"]["certificate_file"], os.path.join(out, "cert-chain.pem"))
        for name in ("cert-chain.pem", "key.pem", "root-cert.pem"):
            self.assertTrue(os.path.exists(os.path.join(out, name)), name)
        self.assertEqual(os.stat(os.path.join(out, "key.pem")).st_mode & 0o777, 0o600)
        chain = os.path.join(out, "cert-chain.pem")
        rc, msg = openssl("verify", "-CAfile", os.path.join(out, "root-cert.pem"), "-untrusted", chain, chain)
        self.assertEqual(rc, 0, msg)
        # the key on disk is the certificate's
        rc1, pub_cert = openssl("x509", "-in", chain, "-noout", "-pubkey")
        rc2, pub_key = openssl("pkey", "-in", os.path.join(out, "key.pem"), "-pubout")
        self.assertEqual((rc1, rc2), (0, 0))
        self.assertEqual(pub_cert, pub_key)

        # a wrong token: clear error, non-zero exit, nothing replaced
        before = open(chain).read()
        bad = self.write("bad-token", "nope\n")
        r = subprocess.run([MESHCTL, "certs", "--ca-addr", "127.0.0.1:%d" % self.meshd.secure_port,
                            "--root-cert", os.path.join(self.ca_dir, "root-cert.pem"), "--token-file", bad,
                            "--dir", out, "--once"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAUTHENTICATED", r.stderr)
        self.assertEqual(open(chain).read(), before)

    def test_07_restart_keeps_root(self):
        self.assertEqual(self.meshd.stop(), 0)
        self.meshd.start()
        with open(os.path.join(self.ca_dir, "root-cert.pem"), "rb") as f:
            self.assertEqual(f.read(), self.root)
        ch = grpc.secure_channel("127.0.0.1:%d" % self.meshd.secure_port,
                                 grpc.ssl_channel_credentials(root_certificates=self.root))
        try:
            chain = strings_of(self.create(cert_request(self.csr), channel=ch), 1)
            self.assertEqual(chain[-1].encode().strip(), self.root.strip())
        finally:
            ch.close()
        self.assertIn("plug-in CA loaded", self.meshd.logs())


if __name__ == "__main__":
    unittest.main()
