"""AuthorizationPolicy end to end: the decision table
tests/data/authz/cases.yaml replayed against a real xDS-enabled gRPC server
(Debian's python3-grpcio 1.51) whose inbound listener meshd builds, with
gRPC's own RBAC filters deciding.

One meshd, one server process (test_authz_peer.py server) in namespace foo
with labels app=httpbin,version=v1 (the table's default workload), listening
on two ports of one WorkloadEntry:
  - the mTLS port, STRICT, so gRPC's RBAC sees the client's SPIFFE identity;
  - the plaintext port (PeerAuthentication portLevelMtls DISABLE), for the
    table's `no_peer: true` requests (a plaintext peer has no principal).
Clients are test_authz_peer.py processes, one per identity in the table,
each with a certificate from meshd's CA (`meshctl certs --once`, the CA
token file maps one token per identity to its namespace and service
account); they reach the server through xds:/// and auto mTLS.

For every case marked `grpc: true`, the case's policies replace the previous
case's file in the config directory (the server keeps running: this also
proves that editing a policy file changes the decision for new RPCs without
a restart); the test waits until the server has ACKed an inbound listener
whose RBAC filters carry the same policies `meshctl authz check` compiles
for the workload, then sends every request of the case (method path as the
table's path, headers as call metadata, the table's host as :authority) and
checks that the outcome (OK from the handler = ALLOW, PERMISSION_DENIED =
DENY) equals both the table's expected decision and `meshctl authz check`'s
answer for the same request over the same config directory.

A principal of another trust domain (other.domain/...) gets a certificate
signed by openssl with meshd's CA key (meshd runs with --ca-dir): meshd's CA
itself issues only cluster.local identities.  Requests the loopback setup
cannot replay are not sent; the test prints why, counts them, and checks
that the table marks exactly those with `grpc_skip`: a source address other
than 127.0.0.1 (gRPC 1.51 cannot choose a client's source address, and
loopback connections come from 127.0.0.1), and a namespace that is not a
DNS name (meshd's CA token file refuses it).  The server's ports are free
ports rather than the table's 8080: no gRPC case depends on the port.
"""
import json
import os
import re
import subprocess
import unittest

import yaml

from meshtest import MESHCTL, ROOT, Meshd, end_process, free_port, wait_for
from test_mtls import bootstrap, issue_certs, peer_env

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "test_authz_peer.py")
CASES = os.path.join(ROOT, "tests", "data", "authz", "cases.yaml")
TRUST = "cluster.local"
NS = "foo"
LABELS = {"app": "httpbin", "version": "v1"}
SERVER_SA = "httpbin"
SERVER_NODE = "sidecar~127.0.0.1~httpbin-1.foo~foo.svc.cluster.local"
HOST = "httpbin.foo.svc.cluster.local"
# the table's default destination port; only a service port here (the
# workload listens on free ports), and what api.internal:8080 routes on
SVC_PORT = 8080
# hosts the table sends as :authority besides HOST: gRPC's xDS client picks
# the virtual host by :authority, so each is a service host of the same
# workload (clients dial xds:///HOST:SVC_PORT and send the table's host)
OTHER_HOSTS = ["shop.example.com", "api.internal", "example.com", "httpbin.foo.svc.cluster.local.evil",
               "evil.example.com"]
POLICY_FILE = "authz-case.yaml"
INBOUND_PREFIX = "xds.istio.io/grpc/lds/inbound/"
RBAC_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
# what meshd's CA token file accepts as a namespace or service account
DNS_NAME = re.compile(r"^[a-z0-9.-]{1,253}$")
# client processes kept alive at once (one per identity; least recently used goes)
MAX_CLIENTS = 4
# bounded waits
POLICY_WAIT_S = 30
CALL_TIMEOUT_S = 5

SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(svc_port)d, name: grpc, protocol: GRPC, targetPort: %(tls_port)d}]
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-aliases, namespace: foo}
spec:
  hosts: %(other_hosts)s
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(svc_port)d, name: grpc, protocol: GRPC, targetPort: %(tls_port)d}]
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-1, namespace: foo}
spec:
  address: 127.0.0.1
  ports: {grpc: %(tls_port)d}
  labels: {app: httpbin, version: v1}
  serviceAccount: %(sa)s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: STRICT}
  portLevelMtls:
    %(plain_port)d: {mode: DISABLE}
"""


def load_table():
    with open(CASES) as f:
        return yaml.safe_load(f)


def merged_request(defaults, check):
    req = dict(defaults)
    req.update(check.get("request") or {})
    return req


def undrivable(req):
    """Why a request cannot be replayed over loopback gRPC, or None."""
    if req.get("source_ip", "127.0.0.1") != "127.0.0.1":
        return ("source address %s: loopback clients connect from 127.0.0.1 and gRPC 1.51 cannot choose "
                "a client's source address" % req["source_ip"])
    if not req.get("no_peer"):
        if not all(DNS_NAME.match(x) for x in principal_ns_sa(req["principal"])):
            return ("principal %s: namespace and service account must be DNS names for meshd's CA "
                    "to issue a certificate" % req["principal"])
    for field, want in (("method", "POST"), ("destination_ip", "127.0.0.1")):
        if req.get(field, want) != want:
            return "%s %s: every gRPC call is a POST to 127.0.0.1" % (field, req[field])
    for field in ("remote_ip", "sni"):
        if req.get(field):
            return "%s: not expressible by a gRPC client here" % field
    return None


def principal_ns_sa(principal):
    parts = principal.split("/")
    # TD/ns/NS/sa/SA
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        raise AssertionError("principal %r is not TD/ns/NS/sa/SA" % principal)
    return parts[2], parts[4]


def meshctl_check(config_dir, req, verbose=False):
    """`meshctl authz check` for the table's request; returns its JSON answer."""
    args = [MESHCTL, "authz", "check", "-f", config_dir, "--namespace", NS,
            "--labels", ",".join("%s=%s" % kv for kv in sorted(LABELS.items())),
            "--path", req["path"], "--method", req["method"], "--port", str(req["port"]),
            "--source-ip", req["source_ip"], "--destination-ip", req["destination_ip"],
            "--host", req["host"], "--json"]
    if verbose:
        args.append("-v")
    if req.get("no_peer"):
        args.append("--no-peer")
    else:
        args += ["--principal", req["principal"]]
    for k, v in sorted((req.get("headers") or {}).items()):
        args += ["--header", "%s=%s" % (k, v)]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if r.returncode not in (0, 1):
        raise AssertionError("meshctl authz check: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return json.loads(r.stdout)


def rbac_rules(filter_json):
    """The "rules" of an RBAC filter config (None: no filter; {} : no rules)."""
    if not filter_json:
        return None
    return filter_json.get("rules") or {}


class Client:
    """A test_authz_peer.py client process."""

    def __init__(self, boot):
        env = peer_env(boot) if boot else dict(os.environ)
        # outcomes come back in the answers; gRPC's own log lines are noise here
        env["GRPC_VERBOSITY"] = "NONE"
        self.proc = subprocess.Popen(["/usr/bin/python3", PEER, "client"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def call(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("client exited with %s" % self.proc.wait())
        return json.loads(line)

    def close(self):
        end_process(self.proc)


class AuthzEndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.table = load_table()
        cls.defaults = cls.table["defaults"]["request"]
        cls.cases = [c for c in cls.table["cases"] if c.get("grpc")]
        principals = {cls.defaults["principal"]}
        for c in cls.cases:
            for chk in c["checks"]:
                req = merged_request(cls.defaults, chk)
                if not req.get("no_peer") and undrivable(req) is None:
                    principals.add(req["principal"])
        cls.meshd = Meshd()
        cls.d = cls.meshd.dir
        cls.tokens = {"tok-server": (NS, SERVER_SA)}
        cls.token_of = {}
        for i, p in enumerate(sorted(x for x in principals if x.startswith(TRUST + "/"))):
            tok = "tok-client-%d" % i
            cls.tokens[tok] = principal_ns_sa(p)
            cls.token_of[p] = tok
        tokens = os.path.join(cls.d, "ca-tokens")
        with open(tokens, "w") as f:
            for tok, (ns, sa) in sorted(cls.tokens.items()):
                f.write("%s %s %s\n" % (tok, ns, sa))
        cls.ca_dir = os.path.join(cls.d, "ca")
        cls.meshd.extra_args += ["--ca-token-file", tokens, "--ca-dir", cls.ca_dir]
        cls.tls_port = free_port()
        cls.plain_port = free_port()
        cls.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "tls_port": cls.tls_port,
                                                   "plain_port": cls.plain_port, "sa": SERVER_SA,
                                                   "other_hosts": json.dumps(OTHER_HOSTS)})
        cls.meshd.start()
        issue_certs(cls.meshd, cls.d, "server", "tok-server")
        boot = bootstrap(cls.meshd, cls.d, "server", SERVER_NODE, NS, LABELS)
        cls.server = subprocess.Popen(
            ["/usr/bin/python3", PEER, "server", str(cls.tls_port), str(cls.plain_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=peer_env(boot), text=True)
        cls.server_pid = cls.server.pid
        if cls.server.stdout.readline().strip() != "started":
            raise AssertionError("xDS server did not start:\n%s" % cls.meshd.logs()[-4000:])
        cls.clients = {}       # principal or None (plaintext) -> Client
        cls.lru = []
        cls.n_client = 0
        cls.results = []

    @classmethod
    def tearDownClass(cls):
        for c in cls.clients.values():
            c.close()
        end_process(cls.server)
        cls.meshd.finish()

    # ------------------------------------------------------------ clients

    def client_for(self, principal):
        """The client process for an identity (None: plaintext), started on first use."""
        c = self.clients.get(principal)
        if c is None:
            if principal is None:
                c = Client(None)
            else:
                ns, sa = principal_ns_sa(principal)
                cls = type(self)
                cls.n_client += 1
                name = "client-%d" % cls.n_client
                if principal.startswith(TRUST + "/"):
                    issue_certs(self.meshd, self.d, name, self.token_of[principal])
                else:
                    self.foreign_certs(name, principal)
                boot = bootstrap(self.meshd, self.d, name,
                                 "sidecar~127.0.0.1~%s.%s~%s.svc.cluster.local" % (name, ns, ns), ns,
                                 {"app": name})
                c = Client(boot)
            self.clients[principal] = c
        if principal in self.lru:
            self.lru.remove(principal)
        self.lru.append(principal)
        while len(self.lru) > MAX_CLIENTS:
            old = self.lru.pop(0)
            self.clients.pop(old).close()
        return c

    def foreign_certs(self, name, principal):
        """A certificate for another trust domain's identity, signed with meshd's
        CA key by openssl (meshd's CA issues only its own trust domain; a peer
        from a federated domain chains to the same root here)."""
        out = os.path.join(self.d, name)
        os.makedirs(out, exist_ok=True)
        ext = os.path.join(out, "ext.cnf")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    "subjectAltName=critical,URI:spiffe://%s\n" % principal)
        key, csr, leaf = (os.path.join(out, n) for n in ("key.pem", "csr.pem", "leaf.pem"))
        ca_cert, ca_key = os.path.join(self.ca_dir, "ca-cert.pem"), os.path.join(self.ca_dir, "ca-key.pem")
        for args in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", key, "-subj", "/O=" + principal.split("/")[0], "-out", csr],
                     ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                      "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "1",
                      "-extfile", ext, "-out", leaf]):
            r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
            if r.returncode != 0:
                raise AssertionError("%s: exit %d\n%s" % (" ".join(args), r.returncode, r.stdout))
        with open(os.path.join(self.ca_dir, "root-cert.pem")) as f:
            root = f.read()
        with open(ca_cert) as f:
            inter = f.read()
        with open(leaf) as f:
            chain = f.read() + ("" if inter == root else inter)
        with open(os.path.join(out, "cert-chain.pem"), "w") as f:
            f.write(chain)
        with open(os.path.join(out, "root-cert.pem"), "w") as f:
            f.write(root)

    def send(self, req):
        """Replay one table request; returns the peer's answer."""
        md = []
        ua = None
        for k, v in sorted((req.get("headers") or {}).items()):
            if k.lower() == "user-agent":
                # gRPC owns the user-agent header: what we give is prepended to its own
                ua = v
            else:
                md.append([k.lower(), v])
        wire = {"path": req["path"], "metadata": md, "user_agent": ua, "authority": req["host"],
                "timeout": CALL_TIMEOUT_S}
        if req.get("no_peer"):
            wire.update(target="127.0.0.1:%d" % self.plain_port, xds=False)
            return self.client_for(None).call(wire)
        name, _, port = req["host"].lower().partition(":")
        wire.update(target="xds:///%s:%s" % (name, port or SVC_PORT), xds=True)
        return self.client_for(req["principal"]).call(wire)

    # ------------------------------------------------------------ policies

    def write_policies(self, text):
        if text.strip():
            self.meshd.write(POLICY_FILE, text)
        elif os.path.exists(os.path.join(self.meshd.config_dir, POLICY_FILE)):
            self.meshd.remove(POLICY_FILE)

    def served_rbac(self):
        """{port: (deny rules, allow rules)} of the inbound listeners meshd sent the server."""
        status, body = self.meshd.http("/debug/config_dump?proxyID=" + SERVER_NODE)
        if status != 200:
            return None
        out = {}
        for section in json.loads(body).get("configs", []):
            for dl in section.get("dynamicListeners", []):
                if not dl["name"].startswith(INBOUND_PREFIX):
                    continue
                port = int(dl["name"].rsplit(":", 1)[1])
                listener = dl["activeState"]["listener"]
                deny = allow = None
                for chain in listener.get("filterChains", []):
                    for f in chain.get("filters", []):
                        hcm = f.get("typedConfig", {})
                        for hf in hcm.get("httpFilters", []):
                            tc = hf.get("typedConfig", {})
                            if tc.get("@type") != RBAC_FILTER_TYPE:
                                continue
                            action = (tc.get("rules") or {}).get("action", "ALLOW")
                            if action == "DENY":
                                deny = rbac_rules(tc)
                            elif action == "ALLOW":
                                allow = rbac_rules(tc)
                out[port] = (deny, allow)
        return out

    def wait_policies(self, case):
        """Wait until the server has ACKed inbound listeners (both ports) whose RBAC
        filters are exactly the ones `meshctl authz check -v` compiles for the
        workload from the config directory as it is now."""
        want = meshctl_check(self.meshd.config_dir, self.defaults, verbose=True)
        expect = (rbac_rules(want.get("deny")), rbac_rules(want.get("allow")))
        last = {}

        def served():
            last["rbac"] = self.served_rbac()
            return last["rbac"] == {self.tls_port: expect, self.plain_port: expect} and self.acked()
        try:
            wait_for(served, timeout=POLICY_WAIT_S, interval=0.1, what="case %s policies served" % case["name"])
        except AssertionError as e:
            raise AssertionError("%s; want %s; syncz %s; meshd log tail:\n%s" % (
                e, expect, self.meshd.http("/debug/syncz")[1][:3000], self.meshd.logs()[-3000:]))

    def acked(self):
        """The server has ACKed the listeners meshd last sent it; a NACK fails the test."""
        status, body = self.meshd.http("/debug/syncz")
        if status != 200:
            return False
        for p in json.loads(body):
            if p.get("proxy") != SERVER_NODE:
                continue
            lds = p.get("types", {}).get("lds", {})
            if lds.get("state") == "ERROR":
                raise AssertionError("the gRPC server NACKed its inbound listeners: %s" % json.dumps(p))
            return lds.get("state") == "SYNCED" and lds.get("acked_version") == lds.get("sent_version")
        return False

    # ------------------------------------------------------------ the table

    def test_decision_table_over_grpc(self):
        ran = agreed = skipped = 0
        for case in self.cases:
            self.write_policies(case.get("policies") or "")
            self.wait_policies(case)
            for i, chk in enumerate(case["checks"]):
                req = merged_request(self.defaults, chk)
                want = chk["expect"]
                with self.subTest(case=case["name"], check=i):
                    why = undrivable(req)
                    # the table marks exactly the requests this setup cannot replay
                    self.assertEqual(bool(why), bool(chk.get("grpc_skip")),
                                     "grpc_skip mark in %s vs this test's reason %r" % (CASES, why))
                    if why:
                        # not a unittest skip: counted and reported here instead
                        skipped += 1
                        print("  %-45s #%d not replayed: %s" % (case["name"], i, why))
                        continue
                    got = self.send(req)
                    ctl = meshctl_check(self.meshd.config_dir, req)
                    ran += 1
                    ok = got["result"] == want.split()[0] == ctl["decision"] and ctl["text"] == want
                    agreed += ok
                    print("  %-45s #%d grpc=%-5s meshctl=%-5s table=%s%s" % (
                        case["name"], i, got["result"], ctl["decision"], want,
                        "" if ok else "  MISMATCH (%s)" % got["detail"]))
                    self.assertEqual(got["result"], want.split()[0], "gRPC outcome vs table: %s" % got)
                    self.assertEqual(ctl["decision"], got["result"], "meshctl vs gRPC")
                    self.assertEqual(ctl["text"], want, "meshctl vs table")
        print("authz e2e: %d cases, %d requests over gRPC, %d agree (gRPC = table = meshctl), %d skipped" % (
            len(self.cases), ran, agreed, skipped))
        self.assertGreater(ran, 0)
        # one server process served every case: policy edits took effect without a restart
        self.assertIsNone(self.server.poll())
        self.assertEqual(self.server.pid, self.server_pid)


if __name__ == "__main__":
    unittest.main()
