"""Secrets over ADS (SDS) from meshd, against a real gRPC client (python3-grpcio)
on the TLS port, with the "authorization: Bearer" token Istio's xDS clients send.

Cases: a node asking for "default" and "ROOTCA" (SotW) gets a chain that
`openssl verify` accepts against meshd's root, with its SPIFFE ID from the
token and a key matching the certificate; the same over Delta; a client
certificate of the mesh (from CreateCertificate) is an identity too; a node claiming
another identity than its token's is refused (PERMISSION_DENIED), a missing or
unknown token is UNAUTHENTICATED; another identity gets its own certificate,
never web's; the plaintext port serves no Secret; "default" is pushed again,
re-issued, at half its lifetime (a 6 s --workload-cert-ttl here); a
credentialName Secret (kubernetes://NAME) is served in its namespace only, and
pushed again when it changes.
Runs in about 15 s.
"""
import base64
import json
import os
import queue
import subprocess
import tempfile
import threading
import unittest

import grpc

from meshtest import MESHCTL, Meshd

SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
CREATE = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
SECRET_URL = b"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

TOKENS = """# test callers: TOKEN NAMESPACE SERVICEACCOUNT
web-token default web
api-token other api
"""


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


def read_varint(b, i):
    shift = n = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def fields(msg):
    """{field number: [bytes values]} of the length-delimited fields of msg."""
    out, i = {}, 0
    while i < len(msg):
        key, i = read_varint(msg, i)
        wt = key & 7
        if wt == 2:
            n, i = read_varint(msg, i)
            out.setdefault(key >> 3, []).append(msg[i:i + n])
            i += n
        elif wt == 0:
            _, i = read_varint(msg, i)
        else:
            raise AssertionError("unexpected wire type %d" % wt)
    return out


def one(msg, *path):
    """The bytes at a path of field numbers (first value at each step), or None."""
    for num in path:
        v = fields(msg).get(num)
        if not v:
            return None
        msg = v[0]
    return msg


def node(ns="default", sa="web", node_id=None):
    """A sidecar Node: id, metadata NAMESPACE and SERVICE_ACCOUNT (Struct fields)."""
    node_id = node_id or ("sidecar~127.0.0.1~%s-1.%s~%s.svc.cluster.local" % (sa, ns, ns))
    md = b""
    for k, v in (("NAMESPACE", ns), ("SERVICE_ACCOUNT", sa)):
        if v is not None:
            md += field(1, field(1, k.encode()) + field(2, field(3, v.encode())))
    return field(1, node_id.encode()) + field(3, md)


def secrets_of(resources):
    """{name: Secret bytes} of Any-wrapped Secret resources."""
    out = {}
    for anyb in resources:
        self_type = one(anyb, 1)
        assert self_type == SECRET_URL, self_type
        sec = one(anyb, 2)
        out[one(sec, 1).decode()] = sec
    return out


class Stream:
    """One ADS call driven request by request (SotW or Delta)."""

    def __init__(self, channel, method, token=None):
        self.q = queue.Queue()
        md = [("authorization", "Bearer " + token)] if token else None
        self.call = channel.stream_stream(method)(iter(self.q.get, None), metadata=md, timeout=60)

    def send(self, msg):
        self.q.put(msg)

    def recv(self):
        return next(self.call)

    def close(self):
        self.q.put(None)
        self.call.cancel()


class SdsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-sds-it-")
        cls.tokens = os.path.join(cls.tmp, "tokens")
        with open(cls.tokens, "w") as f:
            f.write(TOKENS)
        cls.ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd({"creds.yaml": cls.credential_yaml()},
                          extra_args=["--ca-dir", cls.ca_dir, "--ca-token-file", cls.tokens,
                                      "--workload-cert-ttl", "6s"]).start()
        with open(os.path.join(cls.ca_dir, "root-cert.pem"), "rb") as f:
            cls.root = f.read()
        cls.channel = grpc.secure_channel("127.0.0.1:%d" % cls.meshd.secure_port,
                                          grpc.ssl_channel_credentials(root_certificates=cls.root))

    @classmethod
    def credential_yaml(cls):
        """A kubernetes.io/tls Secret "gw-cert" in namespace default (with ca.crt), made now."""
        key = os.path.join(cls.tmp, "gw.key")
        crt = os.path.join(cls.tmp, "gw.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=gw.example.com"],
                       capture_output=True, check=True, timeout=60)
        cls.gw_crt = open(crt, "rb").read()
        b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()
        return ("apiVersion: v1\nkind: Secret\nmetadata: {name: gw-cert, namespace: default}\n"
                "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n  ca.crt: %s\n"
                % (b64(crt), b64(key), b64(crt)))

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.meshd.finish()
        subprocess.run(["rm", "-rf", cls.tmp])

    def sotw(self, names, token="web-token", nd=None, channel=None):
        """The first SotW response to a Secret request for names: (stream, response)."""
        st = Stream(channel or self.channel, SOTW, token)
        st.send(field(1, b"") + field(2, nd or node()) + b"".join(field(3, n.encode()) for n in names) +
                field(4, SECRET_URL))
        return st, st.recv()

    def assert_code(self, code, fn, text=None):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn()
        self.assertEqual(ctx.exception.code(), code, ctx.exception.details())
        if text:
            self.assertIn(text, ctx.exception.details())

    def write(self, name, data):
        p = os.path.join(self.tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def check_default(self, sec, spiffe):
        """The TlsCertificate Secret: chain verifies to meshd's root, has spiffe, key matches."""
        chain = one(sec, 2, 1, 2)
        key = one(sec, 2, 2, 2)
        self.assertTrue(chain and key, "no inline certificate chain / private key")
        chain_p = self.write("chain.pem", chain)
        root_p = self.write("root.pem", self.root)
        r = subprocess.run(["openssl", "verify", "-CAfile", root_p, "-untrusted", chain_p, chain_p],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        text = subprocess.run(["openssl", "x509", "-in", chain_p, "-noout", "-text"], capture_output=True,
                              text=True, timeout=60).stdout
        self.assertIn("URI:" + spiffe, text)
        self.assertEqual(text.count("URI:spiffe://"), 1, text)
        pub_cert = subprocess.run(["openssl", "x509", "-in", chain_p, "-noout", "-pubkey"],
                                  capture_output=True, text=True, timeout=60).stdout
        pub_key = subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True,
                                 timeout=60).stdout.decode()
        self.assertTrue(pub_cert.strip())
        self.assertEqual(pub_cert, pub_key)
        return chain

    def test_01_default_and_rootca(self):
        st, resp = self.sotw(["default", "ROOTCA"])
        try:
            self.assertEqual(one(resp, 4), SECRET_URL)
            secs = secrets_of(fields(resp).get(2, []))
            self.assertEqual(sorted(secs), ["ROOTCA", "default"])
            self.check_default(secs["default"], "spiffe://cluster.local/ns/default/sa/web")
            self.assertEqual(one(secs["ROOTCA"], 4, 1, 2).strip(), self.root.strip())
            # the debug config dump names the Secrets and never shows their contents
            # the debug config dump shows the Secrets as Envoy's does: private key redacted
            status, dump = self.meshd.http("/debug/config_dump?proxyID=web-1.default")
            self.assertEqual(status, 200, dump)
            secrets = [c for c in json.loads(dump)["configs"] if c["@type"].endswith("SecretsConfigDump")][0]
            by_name = {s["name"]: s["secret"] for s in secrets["dynamicActiveSecrets"]}
            self.assertEqual(by_name["default"]["tlsCertificate"]["privateKey"], {"inlineString": "[redacted]"})
            chain_b64 = by_name["default"]["tlsCertificate"]["certificateChain"]["inlineBytes"]
            self.assertEqual(base64.b64decode(chain_b64), one(secs["default"], 2, 1, 2))
            self.assertNotIn(base64.b64encode(one(secs["default"], 2, 2, 2)).decode()[:40], dump)
            self.assertNotIn("PRIVATE KEY", dump)
            # meshctl proxy-config secret: istioctl's columns, read from that dump
            r = subprocess.run([MESHCTL, "proxy-config", "secret", "web-1.default", "--meshd",
                                "127.0.0.1:%d" % self.meshd.http_port], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0].split(), ["RESOURCE", "NAME", "TYPE", "STATUS", "VALID", "CERT", "SERIAL",
                                                "NUMBER", "NOT", "AFTER", "NOT", "BEFORE", "IDENTITY", "VERSION"])
            rows = {l.split()[0]: l.split() for l in lines[1:]}
            self.assertEqual(rows["default"][1:4], ["Cert", "Chain", "ACTIVE"])
            self.assertEqual(rows["default"][4], "true")
            self.assertEqual(rows["default"][-2], "spiffe://cluster.local/ns/default/sa/web")
            self.assertEqual(rows["ROOTCA"][1:4], ["CA", "ACTIVE", "true"])
        finally:
            st.close()

    def test_02_delta(self):
        st = Stream(self.channel, DELTA, "web-token")
        try:
            st.send(field(1, node()) + field(2, SECRET_URL) + field(3, b"ROOTCA"))
            resp = st.recv()
            res = fields(resp).get(2, [])
            self.assertEqual([one(r, 3) for r in res], [b"ROOTCA"])
            # ACK, then subscribe to "default" as well: only it comes
            st.send(field(2, SECRET_URL) + field(6, one(resp, 5)) + field(3, b"default"))
            resp = st.recv()
            res = fields(resp).get(2, [])
            self.assertEqual([one(r, 3) for r in res], [b"default"])
            self.check_default(one(res[0], 2, 2), "spiffe://cluster.local/ns/default/sa/web")
        finally:
            st.close()

    def test_03_wrong_identity_refused(self):
        # api's token with a node claiming default/web
        self.assert_code(grpc.StatusCode.PERMISSION_DENIED, lambda: self.sotw(["default"], token="api-token"),
                         "authenticated as ns other sa api")
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, lambda: self.sotw(["default"], token=None),
                         "authorization")
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, lambda: self.sotw(["default"], token="nope"))
        # its own node: its own identity, never web's
        st, resp = self.sotw(["default"], token="api-token", nd=node("other", "api"))
        try:
            secs = secrets_of(fields(resp).get(2, []))
            self.check_default(secs["default"], "spiffe://cluster.local/ns/other/sa/api")
        finally:
            st.close()
        self.assertEqual(self.meshd.http("/ready")[0], 200)

    def test_03b_client_certificate_identity(self):
        # a workload certificate from CreateCertificate (key made here), then a TLS
        # channel presenting it, with no token: the certificate is the identity
        key = os.path.join(self.tmp, "wl.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", key], capture_output=True, check=True, timeout=60)
        csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=x"], capture_output=True,
                             check=True, timeout=60).stdout
        resp = self.channel.unary_unary(CREATE)(field(1, csr), metadata=[("authorization", "Bearer web-token")],
                                                timeout=20)
        chain = b"".join(fields(resp).get(1, []))
        ch = grpc.secure_channel("127.0.0.1:%d" % self.meshd.secure_port,
                                 grpc.ssl_channel_credentials(root_certificates=self.root,
                                                              private_key=open(key, "rb").read(),
                                                              certificate_chain=chain))
        try:
            st, resp = self.sotw(["default"], token=None, channel=ch)
            st.close()
            secs = secrets_of(fields(resp).get(2, []))
            self.check_default(secs["default"], "spiffe://cluster.local/ns/default/sa/web")
            # the certificate says default/web: a node claiming other/api is refused
            self.assert_code(grpc.StatusCode.PERMISSION_DENIED,
                             lambda: self.sotw(["default"], token=None, nd=node("other", "api"), channel=ch))
        finally:
            ch.close()

    def test_04_plaintext_serves_none(self):
        plain = grpc.insecure_channel("127.0.0.1:%d" % self.meshd.xds_port)
        try:
            st, resp = self.sotw(["default", "ROOTCA"], channel=plain)
            st.close()
            self.assertEqual(one(resp, 4), SECRET_URL)
            self.assertEqual(fields(resp).get(2, []), [])
        finally:
            plain.close()
        self.assertIn("Secrets asked over plaintext", self.meshd.logs())

    def test_05_rotation_at_half_life(self):
        st, resp = self.sotw(["default"])
        try:
            first = one(secrets_of(fields(resp).get(2, []))["default"], 2, 1, 2)
            # ACK it; the next response is the push of a re-issued certificate
            st.send(field(1, one(resp, 1)) + field(4, SECRET_URL) + field(5, one(resp, 5)) + field(3, b"default"))
            got = []
            t = threading.Thread(target=lambda: got.append(st.recv()), daemon=True)
            t.start()
            t.join(30)
            self.assertTrue(got, "no push of a renewed certificate within 30 s (TTL 6 s)")
            second = self.check_default(secrets_of(fields(got[0]).get(2, []))["default"],
                                        "spiffe://cluster.local/ns/default/sa/web")
            self.assertNotEqual(first, second)
            self.assertNotEqual(one(got[0], 1), one(resp, 1))  # a new version
        finally:
            st.close()

    def test_06_credential_name_in_its_namespace_only(self):
        names = ["kubernetes://gw-cert", "kubernetes://gw-cert-cacert", "kubernetes://default/gw-cert"]
        st, resp = self.sotw(names)
        try:
            secs = secrets_of(fields(resp).get(2, []))
            self.assertEqual(sorted(secs), ["kubernetes://gw-cert", "kubernetes://gw-cert-cacert"])
            self.assertEqual(one(secs["kubernetes://gw-cert"], 2, 1, 2).strip(), self.gw_crt.strip())
            self.assertIn(b"PRIVATE KEY", one(secs["kubernetes://gw-cert"], 2, 2, 2))
            self.assertEqual(one(secs["kubernetes://gw-cert-cacert"], 4, 1, 2).strip(), self.gw_crt.strip())
            # ACK; a rotated Kubernetes Secret reaches the stream as a push
            st.send(field(1, one(resp, 1)) + b"".join(field(3, n.encode()) for n in names) +
                    field(4, SECRET_URL) + field(5, one(resp, 5)))
            old = self.gw_crt
            self.meshd.write("creds.yaml", self.credential_yaml())
            self.assertNotEqual(old, self.gw_crt)
            got = []
            t = threading.Thread(target=lambda: got.append(st.recv()), daemon=True)
            t.start()
            t.join(30)
            self.assertTrue(got, "no push of the changed Secret within 30 s")
            secs = secrets_of(fields(got[0]).get(2, []))
            self.assertEqual(one(secs["kubernetes://gw-cert"], 2, 1, 2).strip(), self.gw_crt.strip())
        finally:
            st.close()
        # the config views list the Secret without its data
        status, configz = self.meshd.http("/debug/configz?kind=Secret")
        self.assertEqual(status, 200)
        self.assertIn("gw-cert", configz)
        self.assertNotIn("PRIVATE KEY", configz)
        self.assertNotIn("tls.key", configz)
        # a node of another namespace does not get default's Secret
        st, resp = self.sotw(["kubernetes://gw-cert"], token="api-token", nd=node("other", "api"))
        st.close()
        self.assertEqual(fields(resp).get(2, []), [])


if __name__ == "__main__":
    unittest.main()
