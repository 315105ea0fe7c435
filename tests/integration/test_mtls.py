"""mTLS between proxyless gRPC peers, configured by meshd, judged by Debian's
python3-grpcio on both sides.

An xDS-enabled gRPC server (xds=True) asks meshd for its inbound listener
"xds.istio.io/grpc/lds/inbound/127.0.0.1:PORT"; its PeerAuthentication decides
whether that listener requires mTLS.  Clients use xds:/// with xDS channel
credentials; their clusters carry TLS from the DestinationRule
(ISTIO_MUTUAL) or from auto mTLS.  Both sides take certificates from the
file_watcher certificate provider "default" of their bootstrap; the
certificates come from meshd's own CA through `meshctl certs --once`
(identities from a CA token file: test/echo for the server,
default/client for the clients).

Proves: STRICT rejects a plaintext client and serves an mTLS one; DISABLE
serves plaintext; a client expecting another identity (DestinationRule
subjectAltNames, or an endpoint service account that does not match the
server's certificate) fails; rewriting the PeerAuthentication file changes
what the running server accepts.
"""
import json
import os
import subprocess
import unittest

from meshtest import MESHCTL, Meshd, end_process, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "test"
HOST = "echo.%s.svc.cluster.local" % NS
SVC_PORT = 7070
TRUST = "cluster.local"


def issue_certs(meshd, d, name, token):
    """A workload certificate from meshd's CA through the `meshctl certs` agent
    (once), into d/name/{cert-chain,key,root-cert}.pem."""
    out = os.path.join(d, name)
    os.makedirs(out, exist_ok=True)
    tok = os.path.join(d, name + ".token")
    with open(tok, "w") as f:
        f.write(token + "\n")
    r = subprocess.run([MESHCTL, "certs", "--ca-addr", "127.0.0.1:%d" % meshd.secure_port,
                        "--insecure-bootstrap", "--token-file", tok, "--dir", out, "--once"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("meshctl certs for %s: exit %d\n%s" % (name, r.returncode, r.stdout))
    return out


def bootstrap(meshd, d, name, node_id, ns, labels):
    path = os.path.join(d, "bootstrap-%s.json" % name)
    with open(path, "w") as f:
        json.dump({
            "xds_servers": [{
                "server_uri": "127.0.0.1:%d" % meshd.xds_port,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }],
            "node": {
                "id": node_id,
                "metadata": {"GENERATOR": "grpc", "NAMESPACE": ns, "LABELS": labels},
                "locality": {},
            },
            "certificate_providers": {
                "default": {
                    "plugin_name": "file_watcher",
                    "config": {
                        "certificate_file": os.path.join(d, name, "cert-chain.pem"),
                        "private_key_file": os.path.join(d, name, "key.pem"),
                        "ca_certificate_file": os.path.join(d, name, "root-cert.pem"),
                        "refresh_interval": "60s",
                    },
                },
            },
            "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s",
        }, f)
    return path


def peer_env(boot):
    env = dict(os.environ, GRPC_XDS_BOOTSTRAP=boot, GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT="true",
               GRPC_XDS_EXPERIMENTAL_RBAC="true")
    env.pop("GRPC_VERBOSITY", None)
    return env


class Client:
    def __init__(self, boot, target, mode):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "test_mtls_peer.py"), "client", target, mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=peer_env(boot), text=True)

    def call(self, n=1, timeout=3):
        self.proc.stdin.write(json.dumps({"n": n, "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("client exited with %s" % self.proc.wait())
        return json.loads(line)["counts"]

    def close(self):
        end_process(self.proc)


SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(svc_port)d, name: grpc, protocol: GRPC, targetPort: %(port)d}]
  workloadSelector: {labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-1, namespace: test}
spec: {address: 127.0.0.1, ports: {grpc: %(port)d}, labels: {app: echo}, serviceAccount: %(sa)s}
"""


def peer_authn(mode):
    return """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: test}
spec:
  mtls: {mode: %s}
""" % mode


def dest_rule(tls):
    return """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo
  trafficPolicy:
    tls: %s
""" % tls


def ok(counts, n):
    return counts.get("echo", 0) == n


def failed(counts, n):
    return counts.get("echo", 0) == 0 and sum(counts.values()) == n


class MtlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd()
        cls.d = cls.meshd.dir
        tokens = os.path.join(cls.d, "ca-tokens")
        with open(tokens, "w") as f:
            f.write("tok-echo %s echo\ntok-client default client\n" % NS)
        cls.meshd.extra_args += ["--ca-token-file", tokens]
        cls.port = free_port()
        cls.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "port": cls.port,
                                                   "sa": "echo"})
        cls.meshd.write("peer-authn.yaml", peer_authn("STRICT"))
        cls.meshd.start()
        issue_certs(cls.meshd, cls.d, "server", "tok-echo")
        issue_certs(cls.meshd, cls.d, "client", "tok-client")
        cls.server_boot = bootstrap(cls.meshd, cls.d, "server",
                                    "sidecar~127.0.0.1~echo-1.test~test.svc.cluster.local", NS, {"app": "echo"})
        cls.client_boot = bootstrap(cls.meshd, cls.d, "client",
                                    "sidecar~127.0.0.1~client.default~default.svc.cluster.local", "default",
                                    {"app": "client"})
        cls.server = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "test_mtls_peer.py"), "server", str(cls.port), "echo"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=peer_env(cls.server_boot), text=True)
        if cls.server.stdout.readline().strip() != "started":
            raise AssertionError("xDS server did not start")
        cls.plain = Client(cls.client_boot, "127.0.0.1:%d" % cls.port, "plain")
        cls.clients = [cls.plain]

    @classmethod
    def tearDownClass(cls):
        for c in cls.clients:
            c.close()
        end_process(cls.server)
        cls.meshd.finish()

    def xds_client(self):
        c = Client(self.client_boot, "xds:///%s:%d" % (HOST, SVC_PORT), "xds")
        self.clients.append(c)
        return c

    def set_mode(self, mode):
        self.meshd.write("peer-authn.yaml", peer_authn(mode))

    def wait_calls(self, client, pred, what):
        """Call 3 times per round until pred(counts, 3) holds; return those counts."""
        last = {}

        def probe():
            last["counts"] = client.call(3)
            return pred(last["counts"], 3)
        try:
            wait_for(probe, timeout=30, interval=0.2, what=what)
        except AssertionError as e:
            raise AssertionError("%s; last %s; meshd log tail:\n%s" % (e, last, self.meshd.logs()[-4000:]))
        return last["counts"]

    def test_1_strict_rejects_plaintext_serves_mtls(self):
        self.set_mode("STRICT")
        # auto mTLS: the endpoint has an identity and is STRICT, no DestinationRule
        xc = self.xds_client()
        counts = self.wait_calls(xc, ok, "mTLS client served under STRICT")
        self.assertEqual(counts, {"echo": 3})
        counts = self.wait_calls(self.plain, failed, "plaintext client rejected under STRICT")
        self.assertEqual(counts.get("echo", 0), 0, counts)
        listener = self.inbound_listener()
        chain = listener["filterChains"][0]
        self.assertEqual(chain["name"], "inbound-mtls")
        self.assertIn("transportSocket", chain)

    def test_2_disable_serves_plaintext(self):
        self.set_mode("DISABLE")
        counts = self.wait_calls(self.plain, ok, "plaintext client served under DISABLE")
        self.assertEqual(counts, {"echo": 3})
        # without STRICT there is no auto mTLS: the xDS client goes plaintext too
        xc = self.xds_client()
        self.assertEqual(self.wait_calls(xc, ok, "xDS client served under DISABLE"), {"echo": 3})
        chain = self.inbound_listener()["filterChains"][0]
        self.assertEqual(chain["name"], "inbound-plaintext")
        self.assertNotIn("transportSocket", chain)

    def test_3_switching_without_restart(self):
        pid = self.server.pid
        self.set_mode("STRICT")
        self.wait_calls(self.plain, failed, "STRICT again: plaintext rejected")
        self.set_mode("DISABLE")
        self.wait_calls(self.plain, ok, "DISABLE again: plaintext served")
        self.set_mode("STRICT")
        self.wait_calls(self.plain, failed, "STRICT a third time")
        self.assertIsNone(self.server.poll())
        self.assertEqual(self.server.pid, pid)

    def test_4_wrong_identity_in_destination_rule(self):
        self.set_mode("STRICT")
        try:
            self.meshd.write("dr.yaml", dest_rule(
                "{mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://%s/ns/%s/sa/someone-else']}" % (TRUST, NS)))
            self.wait_client_config("sa/someone-else")
            xc = self.xds_client()
            counts = self.wait_calls(xc, failed, "client expecting another identity fails")
            self.assertEqual(counts.get("echo", 0), 0, counts)
            # the right identity works with the same DestinationRule shape
            self.meshd.write("dr.yaml", dest_rule(
                "{mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://%s/ns/%s/sa/echo']}" % (TRUST, NS)))
            self.wait_calls(xc, ok, "client expecting the server's identity is served")
        finally:
            self.meshd.remove("dr.yaml")

    def test_5_service_account_mismatch(self):
        self.set_mode("STRICT")
        try:
            # the registry says the endpoint runs as "impostor"; its certificate says "echo"
            self.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "port": self.port,
                                                        "sa": "impostor"})
            self.wait_client_config("sa/impostor")
            xc = self.xds_client()
            counts = self.wait_calls(xc, failed, "client expecting the registry's identity fails")
            self.assertEqual(counts.get("echo", 0), 0, counts)
            self.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "port": self.port,
                                                        "sa": "echo"})
            self.wait_calls(xc, ok, "matching service account is served")
        finally:
            self.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "port": self.port,
                                                        "sa": "echo"})

    def test_6_authorization_policy_on_the_inbound_listener(self):
        self.set_mode("STRICT")
        policy = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-callers, namespace: test}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [%s]}}]
"""
        try:
            xc = self.xds_client()
            self.wait_calls(xc, ok, "mTLS client served before any policy")
            self.meshd.write("authz.yaml", policy % ("cluster.local/ns/default/sa/someone-else"))
            counts = self.wait_calls(xc, lambda c, n: c.get("ERR:PERMISSION_DENIED", 0) == n,
                                     "caller outside the ALLOW list denied")
            self.assertEqual(counts, {"ERR:PERMISSION_DENIED": 3})
            self.meshd.write("authz.yaml", policy % ("cluster.local/ns/default/sa/client"))
            self.wait_calls(xc, ok, "caller in the ALLOW list served")
        finally:
            self.meshd.remove("authz.yaml")

    def wait_client_config(self, text):
        """Wait until meshd's configuration for the client node has text, before a new
        client starts: a client whose first clusters came before the edit would keep
        the connection it made with them (the SANs are checked at the handshake only),
        and the edit races the client's start when the machine is busy."""
        node = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
        wait_for(lambda: text in self.meshd.http("/debug/config_dump?proxyID=" + node)[1],
                 timeout=30, what="%r in the client's configuration" % text)

    def inbound_listener(self):
        """The inbound listener meshd last sent the server, from its config dump."""
        node = "sidecar~127.0.0.1~echo-1.test~test.svc.cluster.local"
        dump = self.meshd.json("/debug/config_dump?proxyID=" + node)
        for section in dump["configs"]:
            for l in section.get("dynamicListeners", []):
                if l["name"].startswith("xds.istio.io/grpc/lds/inbound/"):
                    return l["activeState"]["listener"]
        raise AssertionError("no inbound listener in %s" % json.dumps(dump)[:2000])


if __name__ == "__main__":
    unittest.main()
