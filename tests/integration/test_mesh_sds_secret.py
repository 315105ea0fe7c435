"""A credentialName Secret reaching a real meshproxy sidecar over SDS (issue 13).

meshd runs with its CA (--ca-dir, --ca-token-file); the sidecar talks ADS to
meshd's TLS port (--xds-addr = --ca-addr = the secure port: ADS over TLS with
its workload certificate, the way Istio's agent talks to istiod:15012).  A
TLS backend (python's http.server under ssl, certificate made here with
openssl from CA one) is the service tls-backend; a DestinationRule
`tls: {mode: SIMPLE, credentialName: backend-cred}` makes meshd send the
sidecar an UpstreamTlsContext naming SDS "kubernetes://backend-cred-cacert",
which the sidecar asks for on its ADS stream and meshd serves from the
Secret YAML backend-cred (kubernetes.io/tls, ca.crt = CA one) of the
sidecar's namespace.

Cases (one meshd, two sidecars: Delta, Istio's default, and state of the
world; about 5-15 s):
  - the sidecars' ADS is over TLS (their logs say so) and they are ready;
  - a request through the sidecar reaches the backend over TLS, verified
    against CA one; /config_dump names the secret with its serial and never
    its PEM or a private key;
  - the backend switches to a certificate from CA two: requests now fail
    (the sidecar still trusts CA one, so the verification is real);
  - the Secret file is rewritten with CA two: the sidecar gets the new
    secret (config_dump shows the new serial) and the next requests succeed;
  - the token file goes away and meshd restarts: the sidecars reconnect with
    their workload certificate alone (meshd's client-certificate
    authentication on 15012) and take the Secret rewritten back to CA one.

Nothing here asserts on timing; every wait is bounded.
"""
import base64
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from meshhttp import NS, Sidecar, fqdn, slow
from meshtest import Meshd, free_port, wait_for

SECRET = "kubernetes://backend-cred-cacert"


def openssl(*args):
    subprocess.run(["openssl"] + list(args), capture_output=True, check=True, timeout=60)


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", crt, "-days", "1", "-subj", "/CN=%s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    return key, crt


def make_leaf(d, name, ca_key, ca_crt, host):
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n" % host)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", csr, "-subj", "/CN=%s" % host)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "1", "-extfile", ext)
    return key, crt


def serial_of(crt):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", crt], capture_output=True, check=True,
                         timeout=60, text=True).stdout
    return out.strip().split("=", 1)[1].upper().lstrip("0")


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def secret_yaml(crt, key, ca):
    b64 = lambda p: base64.b64encode(read(p)).decode()
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: backend-cred, namespace: %s}\n"
            "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n  ca.crt: %s\n"
            % (NS, b64(crt), b64(key), b64(ca)))


def config(port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-backend, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: tls-backend}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tls-backend-1, namespace: %(ns)s}
spec:
  address: 127.0.0.1
  ports: {http: %(port)d}
  labels: {app: tls-backend}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-backend, namespace: %(ns)s}
spec:
  host: %(host)s
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: backend-cred}
""" % {"ns": NS, "host": fqdn("tls-backend"), "port": port}


class TlsBackend:
    """HTTPS on 127.0.0.1:port (HTTP/1.0: a connection per request, so no
    pooled connection outlives a certificate change); counts requests."""

    def __init__(self, crt, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.count = 0
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                backend.count += 1
                body = b"tls-backend says hello\n"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(10)
                return backend.ctx.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request, client_address):
                pass  # a refused handshake is part of the test

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def use(self, crt, key):
        """New handshakes present this certificate (SSL_CTX's certificate replaced)."""
        self.ctx.load_cert_chain(crt, key)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class MeshSdsSecretTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-sds-")
        cls.sidecar = cls.sotw = None
        cls.backend = None
        host = fqdn("tls-backend")
        cls.ca1 = make_ca(cls.tmp, "ca-one")
        cls.ca2 = make_ca(cls.tmp, "ca-two")
        cls.leaf1 = make_leaf(cls.tmp, "leaf-one", cls.ca1[0], cls.ca1[1], host)
        cls.leaf2 = make_leaf(cls.tmp, "leaf-two", cls.ca2[0], cls.ca2[1], host)
        cls.backend = TlsBackend(cls.leaf1[1], cls.leaf1[0])
        cls.port = cls.backend.port
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\n" % NS)
        token = cls.token = os.path.join(cls.tmp, "client.token")
        with open(token, "w") as f:
            f.write("client-token\n")
        files = {"svc.yaml": config(cls.port),
                 "secret.yaml": secret_yaml(cls.leaf1[1], cls.leaf1[0], cls.ca1[1])}
        cls.meshd = Meshd(files, extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        try:
            cls.meshd.start()
            secure = "127.0.0.1:%d" % cls.meshd.secure_port
            args = ["--xds-addr", secure, "--ca-addr", secure, "--root-cert", os.path.join(ca_dir, "root-cert.pem"),
                    "--token-file", token, "--service-account", "client"]
            cls.sidecar = Sidecar(cls.meshd, "client", "app=client", args=args)
            cls.sotw = Sidecar(cls.meshd, "client-sotw", "app=client", args=args + ["--xds-protocol", "sotw"])
            cls.sidecar.wait_ready()
            cls.sotw.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = {}
        for s in (cls.sidecar, cls.sotw):
            if s:
                rc = s.stop()
                if rc != 0:
                    bad[s.node_id] = (rc, s.logs())
        cls.meshd.finish()
        if cls.backend:
            cls.backend.stop()
        for s in (cls.sidecar, cls.sotw):
            if s:
                s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def call(self, sidecar=None):
        return (sidecar or self.sidecar).request("http://%s:%d/" % (fqdn("tls-backend"), self.port), timeout=10)

    def secret_serial(self, sidecar=None):
        dump = (sidecar or self.sidecar).admin("/config_dump")[1]
        i = dump.find('"name": "%s"' % SECRET)
        if i < 0:
            return None
        j = dump.find('"serial_number": "', i)
        return dump[j + len('"serial_number": "'):dump.find('"', j + len('"serial_number": "'))].lstrip("0")

    def test_1_xds_over_tls(self):
        for s in (self.sidecar, self.sotw):
            logs = s.logs()
            self.assertIn("over TLS with the workload identity", logs)
            self.assertIn("connected to meshd", logs)

    def test_2_simple_tls_from_the_secret(self):
        for s in (self.sidecar, self.sotw):
            wait_for(lambda: self.secret_serial(s), timeout=60 if slow() else 20,
                     what="%s in /config_dump" % SECRET)
            self.assertEqual(self.secret_serial(s), serial_of(self.ca1[1]))
            before = self.backend.count
            r = self.call(s)
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"tls-backend says hello", r.body)
            self.assertEqual(self.backend.count, before + 1)
            dump = s.admin("/config_dump")[1]
            self.assertNotIn("PRIVATE KEY", dump)
            ca_body = read(self.ca1[1], "r").splitlines()[1]
            self.assertNotIn(ca_body, dump)

    def test_3_rotation(self):
        for s in (self.sidecar, self.sotw):
            wait_for(lambda: self.secret_serial(s), timeout=60 if slow() else 20, what=SECRET)
            self.assertEqual(self.call(s).status, 200)
        # the backend moves to CA two: the sidecar, trusting CA one, refuses it
        self.backend.use(self.leaf2[1], self.leaf2[0])
        before = self.backend.count
        r = self.call()
        self.assertGreaterEqual(r.status, 500, r)
        self.assertEqual(self.backend.count, before)
        # the Secret rewritten with CA two: the next calls verify against it
        self.meshd.write("secret.yaml", secret_yaml(self.leaf2[1], self.leaf2[0], self.ca2[1]))
        want = serial_of(self.ca2[1])
        for s in (self.sidecar, self.sotw):
            wait_for(lambda: self.secret_serial(s) == want, timeout=60 if slow() else 20,
                     what="the rotated secret in /config_dump")
            r = self.call(s)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.backend.count, before + 2)

    def test_4_reconnect_with_the_certificate_alone(self):
        for s in (self.sidecar, self.sotw):
            wait_for(lambda: self.secret_serial(s), timeout=60 if slow() else 20, what=SECRET)
        # whichever CA is in use now, the other one comes over the new streams
        ca, leaf = (self.ca2, self.leaf2) if self.secret_serial() == serial_of(self.ca1[1]) else (self.ca1, self.leaf1)
        os.unlink(self.token)
        self.meshd.stop()
        self.meshd.write("secret.yaml", secret_yaml(leaf[1], leaf[0], ca[1]))
        self.backend.use(leaf[1], leaf[0])
        self.meshd.start()
        want = serial_of(ca[1])
        for s in (self.sidecar, self.sotw):
            wait_for(lambda: self.secret_serial(s) == want, timeout=60 if slow() else 20,
                     what="the secret over a new stream: %s" % s.logs()[-3000:])
            self.assertEqual(self.call(s).status, 200)
        self.assertGreaterEqual(int(self.sidecar.stats()["control_plane.stream_attempts"]), 2)


if __name__ == "__main__":
    unittest.main()
