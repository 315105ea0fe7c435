"""Mutual TLS between two real meshproxy sidecars with identities from the
real meshd's CA (issue 12), end to end on loopback, no iptables.

meshd runs with its CA on (--ca-dir, a generated root; --ca-token-file maps
one bearer token per sidecar to demo/client and demo/web).  Each sidecar
gets its certificate itself (--ca-addr to meshd's TLS port, --root-cert,
--token-file, --cert-ttl 20s so that it renews every ~10 s).

  client app --http_proxy--> client sidecar ==mTLS==> web sidecar --> web app
                             (outbound port)          (inbound on 127.0.0.3:P)  (127.0.0.1:P)

The web service is a ServiceEntry on port P whose WorkloadEntry is
127.0.0.3:P with the label security.istio.io/tlsMode=istio and
serviceAccount web, so meshd's auto mTLS (transport_socket_matches) makes
the client sidecar speak TLS there, verifying spiffe://cluster.local/ns/demo/sa/web;
the web sidecar's inbound listener is bound on 127.0.0.3:P and sends the
request on to inbound|P|| = 127.0.0.1:P, where the application listens.
A second service, impostor, points at the same sidecar but says its
workload runs as another service account: the client must refuse it.

Cases (a class, one meshd, two sidecars; about 30-40 s, mostly the 25 s of
rotation):
  - PERMISSIVE (Istio's default): a request through the sidecars reaches the
    app over mTLS: the app sees x-forwarded-client-cert naming the client's
    SPIFFE id, and a plaintext request straight to the inbound port is served too;
  - a server identity the client does not expect fails (503, UF), and a TLS
    client whose certificate comes from another CA is refused by the inbound;
  - STRICT (PeerAuthentication in demo): the plaintext request straight to
    the inbound port fails (the connection is closed unanswered) while the
    mesh request still succeeds;
  - rotation: both sidecars renew their 20 s certificates at least twice
    (admin /certs shows new serials) under continuous requests; not one
    request fails.

Nothing here asserts on timing; every wait is bounded.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from meshhttp import NS, Backend, Sidecar, fqdn, slow
from meshtest import MESHCTL, Meshd, free_port, wait_for

WEB_IP = "127.0.0.3"
CLIENT_ID = "spiffe://cluster.local/ns/%s/sa/client" % NS
WEB_ID = "spiffe://cluster.local/ns/%s/sa/web" % NS


def pick_port():
    """A port free on 127.0.0.1 (the app) and on 127.0.0.3 (the web sidecar's inbound)."""
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((WEB_IP, p))
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
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: %(name)s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(port)d}
  serviceAccount: %(sa)s
  labels: {app: %(name)s, security.istio.io/tlsMode: istio}
""" % {"name": name, "ns": NS, "host": fqdn(name), "port": port, "ip": WEB_IP, "sa": sa}
    return {"web.yaml": svc("web", "web"), "impostor.yaml": svc("impostor", "impostor")}


STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %s}
spec:
  mtls: {mode: STRICT}
""" % NS


def certs(sidecar):
    return json.loads(sidecar.admin("/certs")[1])


def prom(sidecar, name):
    for line in sidecar.admin("/stats/prometheus")[1].splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("%s not in /stats/prometheus" % name)


def serial(sidecar):
    c = certs(sidecar)["certificates"]
    return c[0]["cert_chain"][0]["serial_number"] if c else None


class MeshMtlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mesh-mtls-")
        cls.port = pick_port()
        # the app listens on 127.0.0.1:P: the inbound cluster is 127.0.0.1:<workload port>
        cls.app = Backend("web", "127.0.0.1", port=cls.port)
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = cls.tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\nweb-token %s web\n" % (NS, NS))
        for name in ("client", "web"):
            with open(os.path.join(cls.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        cls.meshd = Meshd(config(cls.port), extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.sidecars = {}
        try:
            cls.meshd.start()
            cls.root = os.path.join(ca_dir, "root-cert.pem")

            def idargs(name):
                return ["--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", cls.root,
                        "--token-file", os.path.join(cls.tmp, name + ".token"), "--cert-ttl", "20s",
                        "--service-account", name]
            cls.sidecars["client"] = Sidecar(cls.meshd, "client", "app=client", args=idargs("client"))
            cls.sidecars["web"] = Sidecar(cls.meshd, "web-1", "app=web", ip=WEB_IP,
                                          args=idargs("web") + ["--inbound-addr", "%s:%d" % (WEB_IP, cls.port)])
            for s in cls.sidecars.values():
                s.wait_ready()
            for s in cls.sidecars.values():
                wait_for(lambda: certs(s)["generation"] >= 1, timeout=60 if slow() else 20,
                         what="a workload certificate: %s" % s.admin("/certs")[1])
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
        for s in cls.sidecars.values():
            s.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)

    def url(self, name="web", path="/"):
        return "http://%s:%d%s" % (fqdn(name), self.port, path)

    def plain_direct(self, path="/direct"):
        """A plaintext request straight to the web sidecar's inbound port."""
        c = http.client.HTTPConnection(WEB_IP, self.port, timeout=10)
        try:
            c.request("GET", path, headers={"Host": "%s:%d" % (fqdn("web"), self.port)})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def test_1_permissive_mtls_and_plaintext(self):
        r = self.px.request(self.url(path="/mtls"))
        self.assertEqual(r.status, 200, r)
        _, path, hdrs, _ = self.app.last()
        self.assertEqual(path, "/mtls")
        xfcc = hdrs.get("x-forwarded-client-cert", "")
        # the server side saw the client's SPIFFE id, and said who it is
        self.assertIn("URI=" + CLIENT_ID, xfcc)
        self.assertIn("By=" + WEB_ID, xfcc)
        # the client's certificate is the one /certs shows
        c = certs(self.px)["certificates"][0]["cert_chain"][0]
        self.assertEqual(c["subject_alt_names"], [{"uri": CLIENT_ID}])
        # PERMISSIVE: plaintext on the same port is served (without an XFCC)
        status, _ = self.plain_direct()
        self.assertEqual(status, 200)
        self.assertNotIn("x-forwarded-client-cert", self.app.last()[2])

    def test_2_wrong_identities(self):
        # the impostor service's workload is meant to run as sa/impostor: the
        # web sidecar's certificate (sa/web) is not accepted by the client
        before = self.app.count()
        r = self.px.request(self.url("impostor", "/impostor"))
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.app.count(), before)
        wait_for(lambda: any("/impostor" in x and " UF" in x for x in self.px.access_log()),
                 what="a UF access log line for the impostor")
        # a TLS client with a certificate from another CA: refused by the inbound
        cert, key = _other_ca_cert(self.tmp)
        ctx = ssl.create_default_context(cafile=self.root)
        ctx.check_hostname = False
        ctx.load_cert_chain(cert, key)
        got = b""
        try:
            with socket.create_connection((WEB_IP, self.port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as t:
                    t.sendall(b"GET /other-ca HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (fqdn("web").encode(), self.port))
                    got = t.recv(100)
        except (ssl.SSLError, OSError):
            pass
        self.assertFalse(got.startswith(b"HTTP/"), got)
        self.assertEqual(self.app.count(), before)
        # refused by the handshake (the certificate), not by anything later
        wait_for(lambda: prom(self.web, "meshproxy_tls_handshake_failures") >= 1,
                 what="the inbound's handshake failure counted")

    def test_3_strict_refuses_plaintext(self):
        self.meshd.write("strict.yaml", STRICT)
        try:
            def refused():
                try:
                    self.plain_direct("/strict-probe")
                    return False
                except (http.client.HTTPException, OSError):
                    return True
            wait_for(refused, timeout=60 if slow() else 30, what="STRICT applied on the web sidecar")
            before = self.app.count()
            refused = prom(self.web, "meshproxy_tls_plaintext_refused")
            self.assertRaises((http.client.HTTPException, OSError), self.plain_direct, "/strict")
            self.assertEqual(self.app.count(), before)
            self.assertEqual(prom(self.web, "meshproxy_tls_plaintext_refused"), refused + 1)
            # the mesh path is mTLS: still served
            r = self.px.request(self.url(path="/strict-mtls"))
            self.assertEqual(r.status, 200, r)
            self.assertIn("URI=" + CLIENT_ID, self.app.last()[2].get("x-forwarded-client-cert", ""))
        finally:
            self.meshd.remove("strict.yaml")

    def test_4_rotation_loses_nothing(self):
        first = {k: (serial(s), certs(s)["generation"]) for k, s in self.sidecars.items()}
        fails, n = [], 0
        deadline = time.monotonic() + (120 if slow() else 60)
        # continuous requests until both sidecars have renewed twice (20 s
        # certificates, renewed at half their life) or the bound runs out
        while time.monotonic() < deadline:
            try:
                r = self.px.request(self.url(path="/rot/%d" % n), timeout=10)
                if r.status != 200:
                    fails.append((n, r.status, r.headers.get("x-envoy-response-flags")))
            except (OSError, http.client.HTTPException) as e:
                fails.append((n, repr(e)))
            n += 1
            if all(certs(s)["generation"] >= first[k][1] + 2 for k, s in self.sidecars.items()):
                break
            time.sleep(0.05)
        gens = {k: certs(s)["generation"] for k, s in self.sidecars.items()}
        for k, s in self.sidecars.items():
            self.assertGreaterEqual(gens[k], first[k][1] + 2, "%s did not renew: %s" % (k, s.admin("/certs")[1]))
            self.assertNotEqual(serial(s), first[k][0])
        self.assertEqual(fails, [], "requests lost during rotation (%d sent)" % n)
        self.assertGreater(n, 10)

    def test_5_not_ready_until_certificate(self):
        """A sidecar with --ca-addr is not ready before it holds a certificate
        (newcomer: a sidecar whose token the CA refused said LIVE on /ready
        and 200 on /healthz/ready while every mTLS call failed; Envoy under
        Istio stays warming until SDS has sent the secret).  Its token is
        unknown at first; once the CA's token file names it, the proxy's
        retry gets a certificate and only then is it ready."""
        with open(os.path.join(self.tmp, "late.token"), "w") as f:
            f.write("late-token\n")
        health = free_port()
        s = Sidecar(self.meshd, "late", "app=late",
                    args=["--ca-addr", "127.0.0.1:%d" % self.meshd.secure_port, "--root-cert", self.root,
                          "--token-file", os.path.join(self.tmp, "late.token"), "--service-account", "late",
                          "--health-addr", "127.0.0.1:%d" % health])
        try:
            # xDS applied and the CA has refused the token at least once
            wait_for(lambda: "first configuration applied" in s.logs() and "unknown bearer token" in s.logs(),
                     timeout=60 if slow() else 20, what="xDS applied and a refused CSR")
            self.assertEqual(certs(s)["generation"], 0)
            self.assertEqual(s.admin("/ready")[0], 503)
            self.assertIn('"state": "INITIALIZING"', s.admin("/server_info")[1])
            c = http.client.HTTPConnection("127.0.0.1", health, timeout=10)
            try:
                c.request("GET", "/healthz/ready")
                self.assertEqual(c.getresponse().status, 503)
            finally:
                c.close()
            # the CA learns the token (it re-reads the file on change)
            with open(self.tokens, "a") as f:
                f.write("late-token %s late\n" % NS)
            wait_for(lambda: s.admin("/ready")[0] == 200, timeout=90 if slow() else 45, what="/ready after the CSR")
            self.assertGreaterEqual(certs(s)["generation"], 1)
        finally:
            s.stop()
            s.cleanup()

    def test_6_proxy_config_secrets(self):
        """meshctl proxy-config secrets --admin shows the sidecar's workload
        certificate and root as istioctl shows Envoy's (newcomer: the table
        was empty, meshproxy's /config_dump had no SecretsConfigDump)."""
        s = self.px
        dump = json.loads(s.admin("/config_dump")[1])
        secrets = [c for c in dump["configs"] if c["@type"].endswith("SecretsConfigDump")]
        self.assertEqual(len(secrets), 1, [c["@type"] for c in dump["configs"]])
        body = json.dumps(secrets[0])
        self.assertIn("W3JlZGFjdGVkXQ==", body)  # base64 of "[redacted]", as Envoy redacts keys
        self.assertNotIn("PRIVATE KEY", body)
        out = subprocess.run([MESHCTL, "proxy-config", "secrets", "--admin", "127.0.0.1:%d" % s.admin_port],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = {l.split()[0]: l for l in out.stdout.splitlines()[1:] if l.strip()}
        self.assertIn("default", rows, out.stdout)
        self.assertIn("ROOTCA", rows, out.stdout)
        self.assertIn(CLIENT_ID, rows["default"])
        self.assertIn(serial(s).lower(), rows["default"].lower())
        self.assertIn("true", rows["ROOTCA"].split())

    def test_7_workload_calls_its_own_service(self):
        """A workload calling its own service, whose endpoint is its own
        sidecar's inbound address, goes out and back in through that inbound
        chain to the app, as Istio's iptables hairpin does (ISTIO_OUTPUT sends
        the sidecar's own connection to the pod IP to 15006).  Newcomer: the
        loop guard answered it 502 as if the sidecar had called itself in a
        loop; a call to its own outbound listener still is refused."""
        r = self.web.request(self.url(path="/self"))
        self.assertEqual(r.status, 200, (r, self.web.logs()[-2000:]))
        _, path, hdrs, _ = self.app.last()
        self.assertEqual(path, "/self")
        # over mTLS, to itself: both ends are the web identity
        self.assertIn("URI=" + WEB_ID, hdrs.get("x-forwarded-client-cert", ""))
        # a real loop (its own outbound port as the destination) stays refused
        before = prom(self.web, "meshproxy_http_loop_refused")
        r = self.web.request("http://127.0.0.1:%d/loop" % self.web.out_port)
        self.assertEqual(r.status, 502)
        self.assertEqual(prom(self.web, "meshproxy_http_loop_refused"), before + 1)


def _other_ca_cert(d):
    """A client certificate (with a SPIFFE id) signed by a CA meshd never saw."""
    key, crt = os.path.join(d, "other.key"), os.path.join(d, "other.crt")
    cakey, cacrt = os.path.join(d, "otherca.key"), os.path.join(d, "otherca.crt")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", cakey, "-out", cacrt, "-days", "1", "-subj", "/O=other")
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", crt + ".csr", "-subj", "/O=other")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=URI:%s\n" % CLIENT_ID)
    run("openssl", "x509", "-req", "-in", crt + ".csr", "-CA", cacrt, "-CAkey", cakey, "-CAcreateserial",
        "-out", crt, "-days", "1", "-extfile", ext)
    return crt, key


if __name__ == "__main__":
    unittest.main()
