"""Attacks on the ingress gateway (issue 13), on the set-up of
test_mesh_gateway.py (one meshd, one gateway, one sidecar), as found by
the gwbrk pass:
  - from outside: ClientHellos without SNI, with a huge, NUL or non-ASCII
    SNI, garbage, a hello in 1-byte writes, 300 handshakes held half-open,
    TLS 1.1, renegotiation, an expired client certificate on MUTUAL, h2c
    and plain HTTP on the TLS port, HTTP/1.1 after ALPN h2, SNI of one
    server and Host of another, spoofed X-Forwarded-* / x-envoy-* / XFCC,
    CL+TE and other smuggling shapes, absolute-form URIs, Host variants,
    huge headers, odd SNIs on PASSTHROUGH and AUTO_PASSTHROUGH ports
    (only registry services are reached, and only with Istio's ALPN);
  - careless users: a credentialName Secret with bad PEM or a key not
    matching (the others still rotate, the last good one is served), cert
    only or deleted (the last one is kept, as Envoy's SdsApi does), a
    server whose Secret does not exist, a Gateway with 3000 hosts.
After each attack the gateway still serves a normal client.  Bounded: a
few hundred connections at most; nothing asserts on timing.  The whole
file takes about 8 s here."""
import os
import socket
import ssl
import struct
import subprocess
import unittest

from test_mesh_gateway import GW_IP, tls_get

import test_mesh_gateway as G


def client_hello(sni=None, version=0x0303, alpn=None):
    """A TLS ClientHello record; sni is bytes put as is (no checks)."""
    ext = b""
    if sni is not None:
        name = struct.pack("!BH", 0, len(sni)) + sni
        lst = struct.pack("!H", len(name)) + name
        ext += struct.pack("!HH", 0, len(lst)) + lst
    # supported groups, ec point formats, signature algorithms
    groups = struct.pack("!H", 4) + struct.pack("!HH", 0x0017, 0x001d)
    ext += struct.pack("!HH", 10, len(groups)) + groups
    ext += struct.pack("!HH", 11, 2) + b"\x01\x00"
    sigs = struct.pack("!H", 6) + struct.pack("!HHH", 0x0403, 0x0804, 0x0401)
    ext += struct.pack("!HH", 13, len(sigs)) + sigs
    if alpn:
        protos = b"".join(struct.pack("!B", len(p)) + p for p in alpn)
        body = struct.pack("!H", len(protos)) + protos
        ext += struct.pack("!HH", 16, len(body)) + body
    suites = struct.pack("!HHHH", 0xc02b, 0xc02f, 0xc009, 0x002f)
    hello = (struct.pack("!H", version) + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites
             + b"\x01\x00" + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + struct.pack("!I", len(hello))[1:] + hello
    rec_version = 0x0301 if version >= 0x0301 else version
    return b"\x16" + struct.pack("!HH", rec_version, len(hs)) + hs


def exchange(port, data, chunk=None, timeout=5):
    """Send data (in chunks of chunk bytes if given) and read what comes back
    until the peer closes or times out: (bytes, closed)."""
    s = socket.create_connection((GW_IP, port), timeout=timeout)
    out = b""
    closed = False
    try:
        if chunk:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])
        else:
            s.sendall(data)
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionError:
                closed = True
                break
            if not b:
                closed = True
                break
            out += b
            if len(out) > 1 << 20:
                break
    finally:
        s.close()
    return out, closed


class GatewayAttackTest(unittest.TestCase):
    setUpClass = classmethod(G.MeshGatewayTest.setUpClass.__func__)
    tearDownClass = classmethod(G.MeshGatewayTest.tearDownClass.__func__)
    resolve = G.MeshGatewayTest.resolve
    http = G.MeshGatewayTest.http
    https = G.MeshGatewayTest.https

    def still_serving(self):
        r = tls_get(self.https_port, "a.example.com", "/alive", cafile=self.edge_ca)
        self.assertEqual(r.status, 200)
        status, _, _ = self.http("api.example.com", "/alive")
        self.assertEqual(status, 200)

    def raw_http(self, data, port=None):
        out, _ = exchange(port or self.http_port, data)
        return out

    # ------------------------------------------------------------ TLS

    def test_tls_odd_client_hellos(self):
        cases = {
            "nosni": client_hello(None),
            "hugesni": client_hello(b"a" * 16000),
            "nulsni": client_hello(b"a.example.com\x00.evil"),
            "utf8sni": client_hello("ä.example.com".encode()),
            "emptysni": client_hello(b""),
            "tls10": client_hello(b"a.example.com", version=0x0301),
            "garbage": os.urandom(4096),
            "zeros": b"\x00" * 4096,
            "hugelen": b"\x16\x03\x01\xff\xff" + b"\x01" * 100,
        }
        for k, hello in cases.items():
            out, closed = exchange(self.https_port, hello)
            # closed, with at most an alert: no ServerHello (no SNI, an SNI
            # no server names: no filter chain, as Envoy's SNI match)
            self.assertTrue(closed, k)
            self.assertIn(out[:1], (b"", b"\x15"), k)
        # a ClientHello in 1-byte writes is still one handshake
        out, _ = exchange(self.https_port, client_hello(b"a.example.com"), chunk=1)
        self.assertEqual(out[:1], b"\x16", "a ClientHello in 1-byte writes: %r" % out[:20])
        self.still_serving()

    def test_tls10_refused(self):
        ctx = ssl._create_unverified_context()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with self.assertRaises((ssl.SSLError, OSError)):
            with socket.create_connection((GW_IP, self.https_port), timeout=5) as raw:
                ctx.wrap_socket(raw, server_hostname="a.example.com")

    def test_renegotiation_refused(self):
        p = subprocess.run(["openssl", "s_client", "-tls1_2", "-connect", "%s:%d" % (GW_IP, self.https_port),
                            "-servername", "a.example.com"], input=b"R\n", capture_output=True, timeout=30)
        out = p.stdout + p.stderr
        self.assertIn(b"RENEGOTIATING", out)
        self.assertIn(b"no renegotiation", out)
        self.still_serving()

    def test_mutual_expired_client_cert(self):
        c = self.certs
        ext = c.path("expired", "ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:expired.example.com\nextendedKeyUsage=clientAuth\n")
        G.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", c.path("expired", "key"), "-out", c.path("expired", "csr"), "-subj", "/CN=expired")
        # notAfter a day before notBefore: expired whatever the clock
        G.openssl("x509", "-req", "-in", c.path("expired", "csr"), "-CA", c.path("client-ca", "crt"),
                  "-CAkey", c.path("client-ca", "key"), "-set_serial", "77", "-days", "-1", "-extfile", ext,
                  "-out", c.path("expired", "crt"))
        n = self.api.count()
        # refused (the alert says "certificate expired", though with TLS 1.3
        # the client may see only the connection closing after its Finished)
        with self.assertRaises((ssl.SSLError, OSError)):
            tls_get(self.https_port, "mtls.example.com", "/expired", cafile=self.edge_ca,
                    cert=(c.path("expired", "crt"), c.path("expired", "key")))
        self.assertEqual(self.api.count(), n)

    def test_half_open_handshakes_held(self):
        held = []
        try:
            for i in range(300):
                s = socket.create_connection((GW_IP, self.https_port), timeout=5)
                s.sendall(client_hello(b"a.example.com")[:20])
                held.append(s)
            self.still_serving()
        finally:
            for s in held:
                s.close()
        self.still_serving()

    def test_h2c_preface_and_http_on_tls_port(self):
        for data in (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 20,
                     b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"):
            out, closed = exchange(self.https_port, data)
            self.assertEqual((out, closed), (b"", True), data[:20])
        # ALPN h2, then HTTP/1.1 bytes
        ctx = ssl._create_unverified_context()
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection((GW_IP, self.https_port), timeout=5) as raw:
            s = ctx.wrap_socket(raw, server_hostname="a.example.com")
            self.assertEqual(s.selected_alpn_protocol(), "h2")
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            try:
                b = s.recv(1000)
            except (OSError, ssl.SSLError) as e:
                b = repr(e).encode()
            self.assertNotIn(b"HTTP/1.1", b)
        self.still_serving()

    def tls_raw(self, sni, data):
        ctx = ssl._create_unverified_context()
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection((GW_IP, self.https_port), timeout=5) as raw:
            s = ctx.wrap_socket(raw, server_hostname=sni)
            s.sendall(data)
            b = b""
            while True:
                x = s.recv(65536)
                if not x:
                    break
                b += x
            s.close()
        return b

    def test_sni_host_mismatch(self):
        """SNI of one server, Host (or an absolute URI) of another: Envoy
        does not compare them, but each server has its own route config,
        so the MUTUAL server's host is not reached through a SIMPLE
        server's handshake."""
        n = self.api.count()
        for req in (b"GET /mismatch HTTP/1.1\r\nHost: mtls.example.com\r\nConnection: close\r\n\r\n",
                    b"GET https://mtls.example.com/abs HTTP/1.1\r\nHost: b.example.com\r\nConnection: close\r\n\r\n"):
            b = self.tls_raw("b.example.com", req)
            self.assertTrue(b.startswith(b"HTTP/1.1 404"), b[:100])
        self.assertEqual(self.api.count(), n)
        # a host of the same server with another SNI of it is served
        b = self.tls_raw("a.example.com", b"GET /same HTTP/1.1\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n")
        self.assertTrue(b.startswith(b"HTTP/1.1 200"), b[:100])

    # ------------------------------------------------------------ HTTP at the edge

    def test_edge_headers_spoofed(self):
        n = self.api.count()
        req = (b"GET /spoof HTTP/1.1\r\nHost: api.example.com\r\n"
               b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Envoy-Retry-On: 5xx\r\n"
               b"X-Envoy-Max-Retries: 50\r\nX-Envoy-External-Address: 6.6.6.6\r\n"
               b"X-Envoy-Upstream-Rq-Timeout-Ms: 1\r\nX-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/x/sa/admin\r\n"
               b"X-Envoy-Original-Path: /evil\r\nX-Envoy-Peer-Metadata-Id: evil\r\nConnection: close\r\n\r\n")
        out = self.raw_http(req)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
        self.assertEqual(self.api.count(), n + 1)
        hdrs = self.api.last()[2]
        # use_remote_address: the client's address appended, the scheme the
        # connection's; a loopback client is internal to Envoy (so the
        # x-envoy-* headers it sends stay, as Envoy keeps them; meshproxy
        # takes no retry or timeout from them either way)
        self.assertEqual(hdrs.get("x-forwarded-for"), "6.6.6.6,127.0.0.1")
        self.assertEqual(hdrs.get("x-forwarded-proto"), "http")
        self.assertEqual(hdrs.get("x-envoy-internal"), "true")
        self.assertNotIn("x-envoy-external-address", hdrs)
        self.assertNotEqual(hdrs.get("x-envoy-peer-metadata-id"), "evil")
        # the gateway's XFCC policy (SANITIZE_SET): the client's one is gone
        self.assertNotIn("spiffe://evil", hdrs.get("x-forwarded-client-cert", ""))

    def test_smuggling_cl_te(self):
        n = self.api.count()
        req = (b"POST /smug HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        out = self.raw_http(req)
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:200])
        self.assertEqual(out.count(b"HTTP/1.1 "), 1)
        for req in (b"POST /smug HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
                    b"POST /smug HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                    b"POST /smug HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                    b"GET /a HTTP/1.1\r\nHost: api.example.com\r\nHost: web.example.com\r\n\r\n"):
            out = self.raw_http(req)
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (req, out[:100]))
        self.assertEqual(self.api.count(), n)

    def test_absolute_form_and_host_port(self):
        req = (b"GET http://web.example.com/abs HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
        out = self.raw_http(req)
        # the absolute URI's authority is the request's host (RFC 9112 3.2.2, Envoy)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
        self.assertIn(b"x-backend: web", out.lower())
        for host, status in ((b"api.example.com", b"200"), (b"api.example.com:%d" % self.http_port, b"200"),
                             (b"api.example.com:1", b"200"), (b"API.EXAMPLE.COM", b"200"),
                             (b"api.example.com.", b"404"), (b"api.example.com:abc", b"400")):
            out = self.raw_http(b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 " + status), (host, out[:100]))

    def test_huge_headers(self):
        out = self.raw_http(b"GET /big HTTP/1.1\r\nHost: api.example.com\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:100])
        out = self.raw_http(b"GET /many HTTP/1.1\r\nHost: api.example.com\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:100])
        self.still_serving()

    def test_passthrough_odd_sni(self):
        for sni in (None, b"", b"pass.example.com\x00x", b"outbound_.8443_._.%s" % G.fqdn("pass").encode(),
                    b"outbound_.8080_._.%s" % G.fqdn("api").encode()):
            out, closed = exchange(self.pass_gw_port, client_hello(sni))
            self.assertEqual((out, closed), (b"", True), sni)


    # ------------------------------------------------------------ careless users: Secrets, Gateways

    def bad_secret(self, name, crt, key):
        import base64

        def b64(text):
            return base64.b64encode(text.encode()).decode()
        return ("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: kubernetes.io/tls\n"
                "data:\n  tls.crt: %s\n  tls.key: %s\n" % (name, G.GW_NS, b64(crt), b64(key)))

    def served(self, host):
        try:
            return tls_get(self.https_port, host, "/s", cafile=self.edge_ca).peer_der
        except (OSError, ssl.SSLError) as e:
            return repr(e)

    def test_bad_secret_does_not_block_others(self):
        c = self.certs
        c.leaf("b2", "edge-ca", ["b.example.com"])
        c.leaf("x", "edge-ca", ["rot.example.com"])
        self.assertEqual(self.served("rot.example.com"), c.der("rot1"))
        cases = {
            "bad-pem": self.bad_secret("rot-cred", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                                       c.read("rot1", "key")),
            "key-mismatch": self.bad_secret("rot-cred", c.read("rot1", "crt"), c.read("x", "key")),
        }
        try:
            for i, (what, text) in enumerate(cases.items()):
                self.meshd.write("rot-cred.yaml", text)
                # another Secret changes meanwhile: its new certificate is served
                newb = "b2" if i % 2 == 0 else "b"
                self.meshd.write("b-cred.yaml", c.secret("b-cred", newb))
                G.wait_for(lambda: self.served("b.example.com") == c.der(newb), timeout=30,
                           what="b-cred's new certificate with a broken rot-cred (%s)" % what)
                # the broken one: the last good certificate is kept
                self.assertEqual(self.served("rot.example.com"), c.der("rot1"), what)
        finally:
            self.meshd.write("rot-cred.yaml", c.secret("rot-cred", "rot1"))
            self.meshd.write("b-cred.yaml", c.secret("b-cred", "b"))

    def gw_log_count(self, text):
        with open(self.gw.log_path, errors="replace") as f:
            return f.read().count(text)

    def test_secret_deleted_or_cert_only_keeps_the_last(self):
        """A credentialName Secret deleted, or left with no key (meshd then
        has nothing to serve and removes it): the gateway goes on with the
        certificate it had, as Envoy's SdsApi ignores the removal of a
        secret still in use."""
        c = self.certs
        kept = "kubernetes://rot-cred removed by the server while still in use"
        try:
            for what, change in (("cert only", lambda: self.meshd.write(
                    "rot-cred.yaml", self.bad_secret("rot-cred", c.read("rot1", "crt"), ""))),
                    ("deleted", lambda: self.meshd.remove("rot-cred.yaml"))):
                n = self.gw_log_count(kept)
                change()
                G.wait_for(lambda: self.gw_log_count(kept) > n, timeout=30, what="meshd removing rot-cred (%s)" % what)
                self.assertEqual(self.served("rot.example.com"), c.der("rot1"), what)
                # back (meshd sends it again: then its next removal is one)
                acks = self.gw_log_count("ACK sds")
                self.meshd.write("rot-cred.yaml", c.secret("rot-cred", "rot1"))
                G.wait_for(lambda: self.gw_log_count("ACK sds") > acks, timeout=30, what="rot-cred back")
            r = tls_get(self.https_port, "a.example.com", "/alive", cafile=self.edge_ca)
            self.assertEqual(r.status, 200)
        finally:
            self.meshd.write("rot-cred.yaml", c.secret("rot-cred", "rot1"))

    def test_many_hosts_and_missing_secret(self):
        """A Gateway with thousands of hosts on an HTTP and an HTTPS server,
        and a server whose credentialName Secret does not exist: the big one
        serves its last host, the one without a Secret refuses handshakes,
        the rest go on."""
        n = 3000
        hosts = ["h%d.big.example.com" % i for i in range(n)]
        hp, tp, mp = G.pick_port(GW_IP), G.pick_port(GW_IP), G.pick_port(GW_IP)
        gw = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: big, namespace: %(ns)s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %(hp)d, name: http-big, protocol: HTTP}
    bind: %(ip)s
    hosts: [%(hosts)s]
  - port: {number: %(tp)d, name: https-big, protocol: HTTPS}
    bind: %(ip)s
    hosts: [%(hosts)s]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: %(mp)d, name: https-missing, protocol: HTTPS}
    bind: %(ip)s
    hosts: [missing.example.com]
    tls: {mode: SIMPLE, credentialName: no-such-secret}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: big, namespace: %(ns)s}
spec:
  hosts: [%(hosts)s, missing.example.com]
  gateways: [big]
  http:
  - route: [{destination: {host: %(api)s, port: {number: 8080}}}]
""" % {"ns": G.NS, "ip": GW_IP, "hp": hp, "tp": tp, "mp": mp, "hosts": ", ".join(hosts), "api": G.fqdn("api")}
        self.meshd.write("big.yaml", gw)
        try:
            last = hosts[-1]
            G.wait_for(lambda: G.curl("--resolve", "%s:%d:%s" % (last, hp, GW_IP),
                                      "http://%s:%d/big" % (last, hp))[0] == 200,
                       timeout=30, what="the %d-host HTTP server's last host" % n)
            G.wait_for(lambda: self.try_tls(tp, last) == 200, timeout=30, what="the %d-host HTTPS server" % n)
            self.assertEqual(self.try_tls(tp, "nobody.example.com"), "refused")
            self.assertEqual(self.try_tls(mp, "missing.example.com"), "refused")
            self.assertEqual(tls_get(self.https_port, "a.example.com", "/alive", cafile=self.edge_ca).status, 200)
        finally:
            self.meshd.remove("big.yaml")

    def try_tls(self, port, sni):
        try:
            return tls_get(port, sni, "/t", timeout=5).status
        except (OSError, ssl.SSLError):
            return "refused"

    def test_auto_passthrough_sni(self):
        """AUTO_PASSTHROUGH routes by an SNI outbound_.PORT_.SUBSET_.HOST:
        a service of the registry is reached (Istio's semantics: any
        in-mesh cluster), a host outside it or a made-up name is not."""
        ap = G.pick_port(GW_IP)
        self.meshd.write("auto.yaml", """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: auto, namespace: %(ns)s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %(ap)d, name: tls-auto, protocol: TLS}
    bind: %(ip)s
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
""" % {"ns": G.NS, "ap": ap, "ip": GW_IP})
        try:
            good = "outbound_.8443_._.%s" % G.fqdn("pass")

            def reach(sni, alpn=("istio-peer-exchange", "istio")):
                try:
                    ctx = ssl._create_unverified_context()
                    if alpn:
                        ctx.set_alpn_protocols(list(alpn))
                    with socket.create_connection((GW_IP, ap), timeout=5) as raw:
                        s = ctx.wrap_socket(raw, server_hostname=sni)
                        return s.getpeercert(binary_form=True)
                except (OSError, ssl.SSLError) as e:
                    return repr(e)
            G.wait_for(lambda: reach(good) == self.certs.der("pass"), timeout=30, what="AUTO_PASSTHROUGH to pass")
            # the chains match Istio's ALPN of mesh clients only: a plain TLS client is refused
            self.assertNotEqual(reach(good, alpn=None), self.certs.der("pass"))
            for sni in ("outbound_.443_._.www.example.org", "outbound_.8443_._.pass.other.svc.cluster.local",
                        "outbound_.1_._.%s" % G.fqdn("pass"), "BlackHoleCluster", "PassthroughCluster",
                        "inbound|8443||", "outbound|8443||%s" % G.fqdn("pass")):
                self.assertNotEqual(reach(sni), self.certs.der("pass"), sni)
        finally:
            self.meshd.remove("auto.yaml")


if __name__ == "__main__":
    unittest.main()
