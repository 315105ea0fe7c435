"""AuthorizationPolicy enforced by meshproxy: the decision table
tests/data/authz/cases.yaml replayed through a real sidecar.

One meshd (file source), one meshproxy sidecar for the table's workload
(namespace foo, labels app=httpbin,version=v1), and the application: an
HTTP backend on 127.0.0.1.  A `Sidecar` resource with ingress listeners
captureMode NONE makes the sidecar bind the workload's ports itself on
0.0.0.0, so a request reaches the inbound HTTP connection manager with the
:authority the table asks for (no port needed to pick the application), from
the source address the test binds (127.0.0.x), to the destination address it
dials (127.0.0.x).

The table's destination ports (8080 and the few others it names) are mapped
to free ports, in the requests and, as whole numbers, in the case's policies
(other helpers run tests on this machine at the same time: no fixed port).
`meshctl authz check` judges the mapped request over the mapped policies.

For every case: its policies replace the previous case's; the test waits
until meshd serves the sidecar inbound listeners whose RBAC filters are the
ones `meshctl authz check -v` compiles and the sidecar has ACKed them (a
NACK fails).  For every request of the case, three answers must agree: the
sidecar's (200 from the application = ALLOW; 403 `RBAC: access denied` =
DENY; a TCP case: bytes back = ALLOW, the connection closed with nothing =
DENY), the table's, and meshctl's (the full text, which names the policy).

Peers with an identity (issue 12: mTLS in meshproxy).  meshd runs its CA
(--ca-dir, a root made at test time; --ca-token-file: one bearer token per
identity the table names) and the sidecar gets its own certificate from it
(spiffe://cluster.local/ns/foo/sa/httpbin).  For every principal of the
table the test asks meshd's CA for a certificate the way a sidecar does
(CreateCertificate with that identity's token, a key made here), and a
request of that principal goes over mutual TLS with it, from the row's
source address, with the row's SNI (none when the row has none), straight
to the sidecar's inbound port: the sidecar verifies the chain and judges
the request with the URI SAN as source.principal (namespaces and
serviceAccounts derived from it).  The workload is STRICT (a
PeerAuthentication in the case's file) for every case without a plaintext
row, PERMISSIVE for a case with one (no_peer rows go in plaintext, the
others still over mTLS); the test waits until the served inbound chains
are the mode's (STRICT: TLS chains only) and checks under STRICT that a
plaintext connection is refused before RBAC.  The peer here is a TLS client
holding the certificate meshd's CA issued for the identity, not a client
meshproxy (a sidecar cannot send the table's SNIs, source addresses or
hosts, and a meshproxy per identity would cost ~20 processes);
test_client_sidecars_by_principal sends through two real client
meshproxies (foo/sleep, bar/sleep: auto mTLS from their outbound ports)
to the STRICT server and checks one principal allowed, one denied.

HTTP/2 (test_h2_streams_judged): h2c prior knowledge (curl) and gRPC
(python3-grpcio, plaintext) to the same ingress port, under an ALLOW policy
on paths and destination.ip: every stream is judged with the address the
client dialled (a stream reaches proxy.c over a socketpair: h2.c carries
the session socket's local address), a denied gRPC call ends
PERMISSION_DENIED.  A principal on an HTTP/2 stream needs HTTP/2 over TLS
(ALPN h2 on inbound), which is branch h2tls's (its test_mesh_grpc_mtls).

Requests this setup cannot send as the table wrote them are replayed
without the part it cannot express, when meshctl says that part does not
change the answer, and otherwise not sent (counted and printed, never a
silent pass):
  - a principal meshd's CA does not issue (another trust domain than
    cluster.local, a namespace that is not a DNS name) is signed here with
    the CA's key from --ca-dir (a certificate chaining to the mesh root,
    as a federated workload's would): no row is left out for it;
  - an SNI on a plaintext (no_peer) row;
  - a source or destination address outside 127.0.0.0/8 (IPv4 loopback
    only here).
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import grpc
import yaml

import meshhttp
from meshhttp import Backend, Sidecar, slow
from meshtest import MESHCTL, ROOT, Meshd, free_port, wait_for
from test_ca import CREATE, cert_request, strings_of

CASES = os.path.join(ROOT, "tests", "data", "authz", "cases.yaml")
NS = "foo"
LABELS = {"app": "httpbin", "version": "v1"}
HOST = "httpbin.foo.svc.cluster.local"
POLICY_FILE = "authz-case.yaml"
HTTP_RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
NET_RBAC = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
DENIED_BODY = b"RBAC: access denied"
# the table's ports, each served by an ingress listener on a free port
TABLE_PORTS = [8080, 8443, 9000, 9090, 15000]
# a TCP port of the workload (cases with `tcp: true` send to it)
TCP_TABLE_PORT = 9100
POLICY_WAIT_S = 120 if slow() else 30
TRUST_DOMAIN = "cluster.local"
SERVER_ID = "spiffe://cluster.local/ns/foo/sa/httpbin"
PEER_AUTHN = """---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: %s}
"""


def load_table():
    with open(CASES) as f:
        return yaml.safe_load(f)


def merged_request(defaults, check):
    req = dict(defaults)
    req.update(check.get("request") or {})
    return req


def loopback4(ip):
    return bool(ip) and ip.startswith("127.") and ":" not in ip


def meshctl_check(config_dir, req, verbose=False, tcp=False):
    """`meshctl authz check` for a table request; returns its JSON answer."""
    args = [MESHCTL, "authz", "check", "-f", config_dir, "--namespace", NS,
            "--labels", ",".join("%s=%s" % kv for kv in sorted(LABELS.items())),
            "--port", str(req["port"]), "--source-ip", req["source_ip"],
            "--destination-ip", req["destination_ip"], "--json"]
    if tcp:
        args.append("--tcp")
    else:
        args += ["--path", req["path"], "--method", req["method"], "--host", req["host"]]
    if req.get("remote_ip"):
        args += ["--remote-ip", req["remote_ip"]]
    if req.get("sni"):
        args += ["--sni", req["sni"]]
    if verbose:
        args.append("-v")
    if req.get("no_peer"):
        args.append("--no-peer")
    else:
        args += ["--principal", req["principal"]]
    for k, v in sorted((req.get("headers") or {}).items()):
        for one in (v if isinstance(v, list) else [v]):
            args += ["--header", "%s=%s" % (k, one)]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if r.returncode not in (0, 1):
        raise AssertionError("meshctl authz check: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return json.loads(r.stdout)


def table_principals(table):
    """Every principal the table's requests carry (defaults included)."""
    out = {table["defaults"]["request"]["principal"]}
    for case in table["cases"]:
        for chk in case["checks"]:
            p = (chk.get("request") or {}).get("principal")
            if p:
                out.add(p)
    return sorted(out)


def issuable(principal):
    """meshd's CA can issue it: its trust domain, a namespace and service
    account that are DNS names (what --ca-token-file accepts)."""
    parts = principal.split("/")
    dns = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    return (len(parts) == 5 and parts[0] == TRUST_DOMAIN and parts[1] == "ns" and parts[3] == "sa"
            and all(dns.match(x) for x in (parts[2], parts[4])))


def case_mode(case, defaults, certified):
    """STRICT unless a request of the case goes in plaintext (no_peer, or a
    principal without a certificate here)."""
    reqs = [merged_request(defaults, c) for c in case["checks"]]
    plain = any(r.get("no_peer") or r["principal"] not in certified for r in reqs)
    return "PERMISSIVE" if plain else "STRICT"


def rules_of(filter_json):
    if not filter_json:
        return None
    return filter_json.get("rules") or {}


def sidecar_yaml(ports, tcp_port, app_port):
    ingress = "".join("""  - port: {number: %d, protocol: HTTP, name: http-%d}
    defaultEndpoint: 127.0.0.1:%d
    captureMode: NONE
""" % (p, p, app_port) for p in ports)
    ingress += """  - port: {number: %d, protocol: TCP, name: tcp-%d}
    defaultEndpoint: 127.0.0.1:%d
    captureMode: NONE
""" % (tcp_port, tcp_port, app_port)
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: httpbin, namespace: foo}
spec:
  workloadSelector:
    labels: {app: httpbin}
  ingress:
%s  egress:
  - hosts: ["istio-system/*"]
    captureMode: NONE
""" % ingress


def service_yaml(ports, tcp_port, app_port):
    plist = "".join("  - {number: %d, name: http-%d, protocol: HTTP}\n" % (p, p) for p in ports)
    plist += "  - {number: %d, name: tcp-%d, protocol: TCP}\n" % (tcp_port, tcp_port)
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
%(ports)s  workloadSelector:
    labels: {app: httpbin}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-1, namespace: foo}
spec:
  address: 127.0.0.1
  labels: {app: httpbin, version: v1, security.istio.io/tlsMode: istio}
  serviceAccount: httpbin
""" % {"host": HOST, "ports": plist}


class MeshAuthzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.table = load_table()
        cls.defaults = cls.table["defaults"]["request"]
        cls.port_map = {p: free_port() for p in TABLE_PORTS + [TCP_TABLE_PORT]}
        cls.tmp = tempfile.mkdtemp(prefix="mesh-authz-")
        cls.app = Backend("app", "127.0.0.1")
        http_ports = [cls.port_map[p] for p in TABLE_PORTS]
        tcp_port = cls.port_map[TCP_TABLE_PORT]
        # one CA token per identity: the server's, and every principal of the table in meshd's trust domain
        cls.peers = [p for p in table_principals(cls.table) if issuable(p)]
        cls.foreign = [p for p in table_principals(cls.table) if not issuable(p)]
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("httpbin-token foo httpbin\n")
            for i, p in enumerate(cls.peers):
                parts = p.split("/")
                f.write("peer-%d %s %s\n" % (i, parts[2], parts[4]))
        with open(os.path.join(cls.tmp, "httpbin.token"), "w") as f:
            f.write("httpbin-token\n")
        ca_dir = os.path.join(cls.tmp, "ca")
        cls.meshd = Meshd({"service.yaml": service_yaml(http_ports, tcp_port, cls.app.port),
                           "sidecar.yaml": sidecar_yaml(http_ports, tcp_port, cls.app.port)},
                          extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.sc = None
        cls.tls = {}
        try:
            cls.meshd.start()
            cls.root = os.path.join(ca_dir, "root-cert.pem")
            # meshhttp's Sidecar names its node after meshhttp.NS: the table's workload is in foo
            saved, meshhttp.NS = meshhttp.NS, NS
            try:
                cls.sc = Sidecar(cls.meshd, "httpbin-1", "app=httpbin,version=v1", args=[
                    "--ca-addr", "127.0.0.1:%d" % cls.meshd.secure_port, "--root-cert", cls.root,
                    "--token-file", os.path.join(cls.tmp, "httpbin.token"), "--service-account", "httpbin"])
            finally:
                meshhttp.NS = saved
            cls.tls = cls.peer_contexts()
            cls.sc.wait_ready()
            wait_for(lambda: json.loads(cls.sc.admin("/certs")[1])["generation"] >= 1,
                     timeout=POLICY_WAIT_S, what="the sidecar's workload certificate")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def peer_contexts(cls):
        """{principal: client SSLContext} holding the certificate meshd's CA
        issued to that identity (CreateCertificate with its token, as a
        sidecar asks; one key made here serves every identity)."""
        key = os.path.join(cls.tmp, "peer.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", key], check=True, capture_output=True, timeout=60)
        csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/O=mesh-authz-test"],
                             check=True, capture_output=True, timeout=60).stdout
        with open(cls.root, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        out = {}
        with grpc.secure_channel("127.0.0.1:%d" % cls.meshd.secure_port, creds) as ch:
            create = ch.unary_unary(CREATE)
            for i, p in enumerate(cls.peers):
                chain = strings_of(create(cert_request(csr, ttl=3600),
                                          metadata=[("authorization", "Bearer peer-%d" % i)], timeout=20), 1)
                path = os.path.join(cls.tmp, "peer-%d.pem" % i)
                with open(path, "w") as f:
                    f.write("".join(c if c.endswith("\n") else c + "\n" for c in chain[:-1]))
                out[p] = cls.client_context(path, key)
        # identities the CA refuses to issue: signed here with its key
        ca_dir = os.path.dirname(cls.root)
        ext = os.path.join(cls.tmp, "foreign.cnf")
        for i, p in enumerate(cls.foreign):
            path = os.path.join(cls.tmp, "foreign-%d.pem" % i)
            with open(ext, "w") as f:
                f.write("subjectAltName=critical,URI:spiffe://%s\n"
                        "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n" % p)
            subprocess.run(["openssl", "x509", "-req", "-in", "-", "-CA", os.path.join(ca_dir, "ca-cert.pem"),
                            "-CAkey", os.path.join(ca_dir, "ca-key.pem"), "-set_serial", str(1000 + i),
                            "-days", "1", "-extfile", ext, "-out", path],
                           input=csr, check=True, capture_output=True, timeout=60)
            out[p] = cls.client_context(path, key)
        return out

    @staticmethod
    def client_context(chain, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False      # the server is judged by its SPIFFE id (connect)
        ctx.load_verify_locations(os.path.join(os.path.dirname(chain), "ca", "root-cert.pem"))
        ctx.load_cert_chain(chain, key)
        return ctx

    @classmethod
    def tearDownClass(cls):
        rc, logs = (cls.sc.stop(), cls.sc.logs()) if cls.sc else (0, "")
        try:
            cls.meshd.finish(cls.app)
        finally:
            if cls.sc:
                cls.sc.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("meshproxy exited %s:\n%s" % (rc, logs))

    # ------------------------------------------------------------ policies

    def mapped_policies(self, text):
        """The case's policies with the table's ports replaced by the ones served here."""
        for tp, real in self.port_map.items():
            text = re.sub(r"(?<![0-9A-Za-z.\-])%d(?![0-9A-Za-z])" % tp, str(real), text)
        return text

    def write_policies(self, text, mode="PERMISSIVE"):
        """The case's policies and the workload's mTLS mode, in one file (one push)."""
        self.meshd.write(POLICY_FILE, text.rstrip("\n") + "\n" + PEER_AUTHN % mode)

    def served_rbac(self):
        """{listener: [(TLS chain?, [its RBAC configs]) per chain]} meshd serves the sidecar."""
        status, body = self.meshd.http("/debug/config_dump?proxyID=" + self.sc.node_id)
        if status != 200:
            return None
        out = {}
        for section in json.loads(body).get("configs", []):
            for dl in section.get("dynamicListeners", []):
                listener = dl["activeState"]["listener"]
                if listener.get("trafficDirection") != "INBOUND":
                    continue
                chains = []
                for chain in listener.get("filterChains", []):
                    found = []
                    for f in chain.get("filters", []):
                        tc = f.get("typedConfig", {})
                        if tc.get("@type") == NET_RBAC:
                            found.append(rules_of(tc))
                        for hf in tc.get("httpFilters", []):
                            if hf.get("typedConfig", {}).get("@type") == HTTP_RBAC:
                                found.append(rules_of(hf["typedConfig"]))
                    chains.append((chain.get("filterChainMatch", {}).get("transportProtocol") == "tls", found))
                out[dl["name"]] = chains
        return out

    def acked(self):
        status, body = self.meshd.http("/debug/syncz")
        if status != 200:
            return False
        for p in json.loads(body):
            if p.get("proxy") != self.sc.node_id:
                continue
            lds = p.get("types", {}).get("lds", {})
            if lds.get("state") == "ERROR":
                raise AssertionError("the sidecar NACKed its listeners: %s" % json.dumps(p))
            return lds.get("state") == "SYNCED" and lds.get("acked_version") == lds.get("sent_version")
        return False

    def wait_policies(self, case, mode="PERMISSIVE"):
        """Until the sidecar has ACKed HTTP listeners whose RBAC rules are
        meshctl's on every chain, with TLS chains only under STRICT and TLS
        and plaintext ones under PERMISSIVE."""
        req = dict(self.defaults, port=self.port_map[8080])
        want = meshctl_check(self.meshd.config_dir, req, verbose=True)
        expect = [rules_of(want.get(k)) for k in ("audit", "deny", "allow") if want.get(k)]
        http_name = "0.0.0.0_%d" % self.port_map[8080]
        kinds = {True} if mode == "STRICT" else {True, False}
        last = {}

        def served():
            last["rbac"] = self.served_rbac()
            got = (last["rbac"] or {}).get(http_name)
            if not got or {tls for tls, _ in got} != kinds or any(r != expect for _, r in got):
                return False
            return self.acked()
        try:
            wait_for(served, timeout=POLICY_WAIT_S, interval=0.1,
                     what="case %s policies applied (%s)" % (case["name"], mode))
        except AssertionError as e:
            raise AssertionError("%s; want %s; served %s; sidecar log tail:\n%s" % (
                e, expect, last.get("rbac"), self.sc.logs()[-3000:]))

    # ------------------------------------------------------------ requests

    def replayable(self, config_dir, req, want, tcp):
        """(request to send, None) or (None, why not)."""
        for field in ("source_ip", "destination_ip"):
            if not loopback4(req.get(field)):
                return None, "%s %s: only IPv4 loopback here" % (field, req.get(field))
        dropped = []
        send = dict(req)
        if not req.get("no_peer") and req["principal"] not in self.tls:
            send["no_peer"] = True
            dropped.append("principal (meshd's CA issues no such identity)")
        if req.get("sni") and send.get("no_peer"):
            send.pop("sni")
            dropped.append("SNI (a plaintext request)")
        if dropped and meshctl_check(config_dir, send, tcp=tcp)["text"] != want:
            return None, "the decision depends on the %s" % " and ".join(dropped)
        return send, None

    def connect(self, req):
        """A connection to the sidecar's port from the request's source
        address: plaintext for no_peer, else mutual TLS with the principal's
        certificate and the request's SNI (none without one)."""
        s = socket.create_connection((req["destination_ip"], req["port"]), timeout=20,
                                     source_address=(req["source_ip"], 0))
        if req.get("no_peer"):
            return s
        try:
            t = self.tls[req["principal"]].wrap_socket(s, server_hostname=req.get("sni"))
        except BaseException:
            s.close()
            raise
        san = [v for k, v in t.getpeercert().get("subjectAltName", ()) if k == "URI"]
        if san != [SERVER_ID]:
            t.close()
            raise AssertionError("the sidecar presented %s, not %s" % (san, SERVER_ID))
        return t

    def send_http(self, req):
        """One request to the sidecar's ingress: 'ALLOW', 'DENY' or raise."""
        c = http.client.HTTPConnection(req["destination_ip"], req["port"], timeout=20)
        c.sock = self.connect(req)
        try:
            c.putrequest(req["method"], req["path"], skip_host=True, skip_accept_encoding=True)
            c.putheader("Host", req["host"])
            if req.get("xff") or req.get("remote_ip"):
                c.putheader("X-Forwarded-For", req.get("xff") or req["remote_ip"])
            for k, v in sorted((req.get("headers") or {}).items()):
                for one in (v if isinstance(v, list) else [v]):
                    c.putheader(k, one)
            c.putheader("Content-Length", "0")
            c.endheaders()
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        if r.status == 200 and r.getheader("x-backend") == "app":
            return "ALLOW", body
        if r.status == 403 and body == DENIED_BODY:
            return "DENY", body
        if r.status == 400:
            return "DENY (400", body
        raise AssertionError("neither the application nor RBAC answered: %d %r" % (r.status, body[:300]))

    def send_tcp(self, req):
        """One connection to the TCP port: bytes back = ALLOW, closed without any = DENY."""
        s = self.connect(req)
        try:
            s.sendall(b"GET /tcp HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        if not data:
            return "DENY", data
        if b"x-backend: app" in data.lower():
            return "ALLOW", data
        raise AssertionError("TCP answer neither the application's nor a close: %r" % data[:300])

    # ------------------------------------------------------------ the table

    def plaintext_refused(self, tcp):
        """STRICT: a plaintext request is closed unanswered, before RBAC."""
        before = self.app.count()
        req = dict(self.defaults, no_peer=True,
                   port=self.port_map[TCP_TABLE_PORT if tcp else 8080])
        try:
            got = (self.send_tcp if tcp else self.send_http)(req)[0]
        except (http.client.HTTPException, OSError):
            got = "DENY"  # the HTTP port closes the connection without a status line
        self.assertEqual(got, "DENY", "STRICT let a plaintext request in")
        self.assertEqual(self.app.count(), before)

    def test_decision_table_through_the_sidecar(self):
        ran = skipped = 0
        sent = {"mTLS": 0, "plaintext": 0}
        modes = {"STRICT": 0, "PERMISSIVE": 0}
        for case in self.table["cases"]:
            tcp = bool(case.get("tcp"))
            mode = case_mode(case, self.defaults, self.tls)
            self.write_policies(self.mapped_policies(case.get("policies") or ""), mode)
            self.wait_policies(case, mode)
            if mode == "STRICT" and not modes["STRICT"]:
                self.plaintext_refused(tcp)
            modes[mode] += 1
            for i, chk in enumerate(case["checks"]):
                req = merged_request(self.defaults, chk)
                req["port"] = self.port_map.get(int(req["port"]), req["port"])
                want = chk["expect"]
                with self.subTest(case=case["name"], check=i):
                    ctl = meshctl_check(self.meshd.config_dir, req, tcp=tcp)
                    self.assertEqual(ctl["text"], want, "meshctl vs table")
                    send, why = self.replayable(self.meshd.config_dir, req, want, tcp)
                    if why:
                        skipped += 1
                        print("  %-45s #%d not replayed: %s" % (case["name"], i, why))
                        continue
                    got, body = (self.send_tcp if tcp else self.send_http)(send)
                    ran += 1
                    how = "plaintext" if send.get("no_peer") else "mTLS"
                    sent[how] += 1
                    print("  %-45s #%d %-10s %-9s proxy=%-5s meshctl=%-5s table=%s" % (
                        case["name"], i, mode, how, got, ctl["decision"], want))
                    # a path the HCM refuses is 400, before RBAC: the table writes "DENY (400: ..."
                    self.assertEqual(got, want[:len(got)] if got.startswith("DENY (400") else want.split()[0],
                                     "proxy vs table (%r)" % body[:200])
        print("authz through meshproxy: %d cases (%d STRICT, %d PERMISSIVE), %d requests replayed "
              "(%d over mTLS, %d plaintext; proxy = table = meshctl), %d skipped" % (
                  len(self.table["cases"]), modes["STRICT"], modes["PERMISSIVE"], ran,
                  sent["mTLS"], sent["plaintext"], skipped))
        self.assertGreater(sent["mTLS"], 0)
        self.assertGreater(sent["plaintext"], 0)
        self.assertGreater(modes["STRICT"], 0)

    # ------------------------------------------------------------ stats, dry-run, audit

    def counters(self):
        return {k: int(v) for k, v in self.sc.stats().items() if ".rbac." in k and v.isdigit()}

    def test_stats_dry_run_and_audit(self):
        """Envoy's RBAC counters move as requests are judged; an istio.io/dry-run
        DENY is counted and logged as shadow_denied but the request passes; an
        AUDIT match is logged; a TCP connection is counted under tcp.rbac."""
        policies = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: try-deny-admin
  namespace: foo
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/secret"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-posts, namespace: foo}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {methods: ["POST"]}}]
"""
        self.write_policies(policies)
        self.wait_policies({"name": "stats"})
        port = self.port_map[8080]
        prefix = "http.inbound_0.0.0.0_%d.rbac." % port
        before = self.counters()
        req = dict(self.defaults, port=port, no_peer=True, path="/admin/x", method="POST")
        self.assertEqual(self.send_http(req)[0], "ALLOW")           # dry-run: never enforced
        self.assertEqual(self.send_http(dict(req, path="/secret", method="GET"))[0], "DENY")
        after = self.counters()

        def moved(name):
            return after.get(name, 0) - before.get(name, 0)
        self.assertEqual(moved(prefix + "istio_dry_run_deny_shadow_denied"), 1, after)
        self.assertEqual(moved(prefix + "istio_dry_run_deny_shadow_allowed"), 1, after)
        self.assertEqual(moved(prefix + "denied"), 1, after)
        # the DENY filter allowed the first; the AUDIT (LOG) filter counts both as allowed
        self.assertGreaterEqual(moved(prefix + "allowed"), 2, after)
        logs = self.sc.logs()
        self.assertIn("shadow denied, matched policy ns[foo]-policy[try-deny-admin]-rule[0]", logs)
        self.assertIn("audit, matched policy ns[foo]-policy[audit-posts]-rule[0]", logs)
        # the TCP port: the DENY rule on paths denies every connection (Istio's TCP rule)
        tcp = dict(self.defaults, port=self.port_map[TCP_TABLE_PORT], no_peer=True)
        self.assertEqual(self.send_tcp(tcp)[0], "DENY")
        self.assertGreaterEqual(self.counters().get("tcp.rbac.denied", 0) - before.get("tcp.rbac.denied", 0), 1)

    # ------------------------------------------------------------ client sidecars

    def client_sidecar(self, principal):
        """A client meshproxy holding principal's identity from meshd's CA."""
        i = self.peers.index(principal)
        ns, sa = principal.split("/")[2], principal.split("/")[4]
        token = os.path.join(self.tmp, "peer-%d.token" % i)
        with open(token, "w") as f:
            f.write("peer-%d\n" % i)
        saved, meshhttp.NS = meshhttp.NS, ns
        try:
            return Sidecar(self.meshd, sa + "-1", "app=" + sa, args=[
                "--ca-addr", "127.0.0.1:%d" % self.meshd.secure_port, "--root-cert", self.root,
                "--token-file", token, "--service-account", sa])
        finally:
            meshhttp.NS = saved

    def test_client_sidecars_by_principal(self):
        """Sidecar to sidecar: two client meshproxies (foo/sleep, bar/sleep)
        call the workload through their outbound ports; auto mTLS carries
        each one's identity to the STRICT server sidecar, which allows one
        principal and denies the other, as meshctl says."""
        allowed, other = "cluster.local/ns/foo/sa/sleep", "cluster.local/ns/bar/sa/sleep"
        policies = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-foo-sleep, namespace: foo}
spec:
  rules:
  - from: [{source: {principals: ["%s"]}}]
""" % allowed
        clients = {}
        try:
            for p in (allowed, other):
                clients[p] = self.client_sidecar(p)
            self.write_policies(policies, "STRICT")
            self.wait_policies({"name": "client-sidecars"}, "STRICT")
            port = self.port_map[8080]
            for p, c in clients.items():
                c.wait_ready()
                wait_for(lambda: json.loads(c.admin("/certs")[1])["generation"] >= 1,
                         timeout=POLICY_WAIT_S, what="a certificate for " + p)
            for p, c in clients.items():
                with self.subTest(principal=p):
                    want = meshctl_check(self.meshd.config_dir, dict(
                        self.defaults, port=port, principal=p, path="/from-sidecar", method="GET",
                        host="%s:%d" % (HOST, port)))
                    before = self.app.count()
                    r = c.request("http://%s:%d/from-sidecar" % (HOST, port))
                    got = "ALLOW" if r.status == 200 and r.headers.get("x-backend") == "app" else \
                        "DENY" if r.status == 403 and r.body == DENIED_BODY else "%d %r" % (r.status, r.body[:200])
                    print("  client sidecar %s proxy=%s meshctl=%s" % (p, got, want["text"]))
                    self.assertEqual(got, want["decision"])
                    self.assertEqual(got, "ALLOW" if p == allowed else "DENY")
                    if got == "ALLOW":
                        self.assertEqual(self.app.count(), before + 1)
                        # the server sidecar saw the client sidecar's certificate
                        self.assertIn("URI=spiffe://" + p, self.app.last()[2].get("x-forwarded-client-cert", ""))
        finally:
            bad = {}
            for p, c in clients.items():
                rc = c.stop()
                if rc != 0:
                    bad[p] = (rc, c.logs()[-3000:])
                c.cleanup()
            self.assertEqual(bad, {}, "client meshproxy exited non-zero")

    # ------------------------------------------------------------ HTTP/2 streams

    def h2c(self, dst_ip, path):
        """curl --http2-prior-knowledge to the 8080 ingress on dst_ip: (status, body, protocol)."""
        out = subprocess.run(["curl", "-s", "-S", "--http2-prior-knowledge", "--max-time", "20",
                              "-H", "Host: " + HOST, "-o", "-", "-w", "\n%{http_code} %{http_version}",
                              "http://%s:%d%s" % (dst_ip, self.port_map[8080], path)],
                             capture_output=True, timeout=30)
        body, _, tail = out.stdout.decode(errors="replace").rpartition("\n")
        code, _, version = tail.partition(" ")
        return int(code or 0), body, version

    def test_h2_streams_judged(self):
        """RBAC on HTTP/2 streams (h2c prior knowledge and gRPC) sees the
        path, the destination address the client dialled (carried from the
        session's socket: each stream's own connection is a socketpair) and
        no peer on plaintext; a denied gRPC call is PERMISSION_DENIED (Envoy
        maps the 403), with RBAC's message."""
        policies = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-h2, namespace: foo}
spec:
  rules:
  - to: [{operation: {paths: ["/allowed*", "/echo.Echo/Say"]}}]
    when: [{key: destination.ip, values: ["127.0.0.1"]}]
  - to: [{operation: {paths: ["/peer-only"]}}]
    from: [{source: {principals: ["*"]}}]
"""
        self.write_policies(policies)
        self.wait_policies({"name": "h2"})
        port = self.port_map[8080]
        for dst, path in (("127.0.0.1", "/allowed"), ("127.0.0.2", "/allowed"),
                          ("127.0.0.1", "/other"), ("127.0.0.1", "/peer-only")):
            with self.subTest(dst=dst, path=path):
                want = meshctl_check(self.meshd.config_dir, dict(
                    self.defaults, port=port, destination_ip=dst, path=path, method="GET", no_peer=True))
                before = self.app.count()
                status, body, version = self.h2c(dst, path)
                self.assertEqual(version, "2", "not HTTP/2")
                got = "ALLOW" if status == 200 and self.app.count() == before + 1 else \
                    "DENY" if status == 403 and body == DENIED_BODY.decode() else "%d %r" % (status, body)
                print("  h2c %s%s proxy=%s meshctl=%s" % (dst, path, got, want["text"]))
                self.assertEqual(got, want["decision"])
                self.assertEqual(got, "ALLOW" if path == "/allowed" and dst == "127.0.0.1" else "DENY")
                if got == "ALLOW":
                    self.assertEqual(self.app.last()[1], path)
        with grpc.insecure_channel("127.0.0.1:%d" % port, options=[("grpc.default_authority", HOST)]) as ch:
            with self.assertRaises(grpc.RpcError) as denied:
                ch.unary_unary("/echo.Echo/Deny")(b"", timeout=20)
            self.assertEqual(denied.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
            self.assertEqual(denied.exception.details(), DENIED_BODY.decode())
            # allowed: it reaches the application (an HTTP/1.1 server, not
            # gRPC: whatever the call ends with, not PERMISSION_DENIED)
            before = self.app.count()
            try:
                ch.unary_unary("/echo.Echo/Say")(b"", timeout=20)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            self.assertNotEqual(code, grpc.StatusCode.PERMISSION_DENIED)
            self.assertEqual(self.app.count(), before + 1)
            self.assertEqual(self.app.last()[1], "/echo.Echo/Say")


if __name__ == "__main__":
    unittest.main()
