"""Two meshd replicas on one fake Kubernetes API: Lease leader election and
the istio-ca-root-cert ConfigMaps; TokenReview authentication of CA callers.

Each replica uses its own bearer token, so the fake API server's request log
tells who wrote what: only the lease holder writes ConfigMaps; a ConfigMap
someone deleted and a new namespace get one; when the holder is killed
(no release) the other replica takes the lease over once it expired and
writes.  The CA accepts a token the API server's TokenReview authenticates
as a service account, with that identity in the certificate, and refuses
others.
"""
import os
import signal
import subprocess
import tempfile
import unittest

import grpc

from meshtest import Meshd, wait_for
from test_ca import CREATE, cert_request, openssl
from test_kube import FakeApi, namespace

LEASE = "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/meshd-leader"
CM = "istio-ca-root-cert"


class KubeLeaderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = FakeApi(tokens=("t-a", "t-b", "t-test"))
        for ns in ("istio-system", "default", "app"):
            cls.api.apply(namespace(ns))
        cls.tmp = tempfile.mkdtemp(prefix="meshd-leader-it-")
        cls.ca_dir = os.path.join(cls.tmp, "ca")
        cls.replicas = {}
        # the first replica generates the root, the second loads the same one (as a shared cacerts would)
        for name in ("a", "b"):
            m = Meshd(kubeconfig=cls.api.kubeconfig("t-" + name), env={"POD_NAME": "meshd-" + name},
                      extra_args=["--ca-dir", cls.ca_dir])
            cls.replicas[name] = m.start()
        with open(os.path.join(cls.ca_dir, "root-cert.pem")) as f:
            cls.root = f.read()

    @classmethod
    def tearDownClass(cls):
        bad = []
        for m in cls.replicas.values():
            rc = m.stop()
            if rc not in (0, -signal.SIGKILL):
                bad.append("meshd exited %s\n%s" % (rc, m.logs()))
            m.cleanup()
        cls.api.stop()
        subprocess.run(["rm", "-rf", cls.tmp])
        if bad:
            raise AssertionError("\n".join(bad))

    def holder(self):
        status, lease = self.api.get(LEASE)
        return lease["spec"].get("holderIdentity") if status == 200 else None

    def configmap(self, ns):
        status, cm = self.api.get("/api/v1/namespaces/%s/configmaps/%s" % (ns, CM))
        return cm if status == 200 else None

    def cm_writes(self):
        return [r for r in self.api.requests()
                if r["method"] in ("POST", "PUT", "PATCH") and "/configmaps" in r["path"]]

    def all_configmaps_current(self, namespaces):
        return all((self.configmap(ns) or {}).get("data", {}).get("root-cert.pem") == self.root
                   for ns in namespaces)

    def test_1_only_the_holder_writes_and_failover(self):
        holder = wait_for(lambda: self.holder() in ("meshd-a", "meshd-b") and self.holder(), timeout=60,
                          what="a lease holder")
        wait_for(lambda: self.all_configmaps_current(["istio-system", "default", "app"]), timeout=60,
                 what="root-cert ConfigMaps in every namespace")
        name = holder[-1]
        other = "b" if name == "a" else "a"
        writes = self.cm_writes()
        self.assertTrue(writes)
        self.assertEqual({w["token"] for w in writes}, {"t-" + name}, writes)

        # deleted by someone -> written again; a new namespace gets one; still only the holder
        self.api.delete("v1", "ConfigMap", CM, ns="app")
        self.api.apply(namespace("late"))
        wait_for(lambda: self.all_configmaps_current(["app", "late"]), timeout=60,
                 what="ConfigMap re-created and written in the new namespace")
        # changed by someone -> put back
        cm = self.configmap("default")
        cm["data"]["root-cert.pem"] = "tampered"
        self.api.apply(cm)
        wait_for(lambda: self.all_configmaps_current(["default"]), timeout=60, what="tampered ConfigMap repaired")
        self.assertEqual({w["token"] for w in self.cm_writes()}, {"t-" + name})

        # kill the holder (no release): the other takes over once the lease expired, then writes
        self.replicas[name].proc.kill()
        self.replicas[name].proc.wait()
        self.api.clear_requests()
        wait_for(lambda: self.holder() == "meshd-" + other, timeout=90, interval=0.5,
                 what="meshd-%s taking the lease over" % other)
        self.api.delete("v1", "ConfigMap", CM, ns="app")
        wait_for(lambda: self.all_configmaps_current(["app"]), timeout=60, what="the new leader writing")
        self.assertEqual({w["token"] for w in self.cm_writes()}, {"t-" + other})

    def test_2_tokenreview_authenticates_ca_callers(self):
        self.api.control("POST", "tokenreviews", {"tokens": {
            "sa-token": {"username": "system:serviceaccount:app:web", "uid": "u1"},
            "user-token": {"username": "alice"}}})
        m = [r for r in self.replicas.values() if r.proc.poll() is None][0]
        key = os.path.join(self.tmp, "k.pem")
        rc, out = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        self.assertEqual(rc, 0, out)
        csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=x"], capture_output=True,
                             check=True, timeout=60).stdout
        ch = grpc.secure_channel("127.0.0.1:%d" % m.secure_port,
                                 grpc.ssl_channel_credentials(root_certificates=self.root.encode()))
        try:
            call = ch.unary_unary(CREATE)
            resp = call(cert_request(csr), metadata=[("authorization", "Bearer sa-token")], timeout=30)
            self.assertIn(b"spiffe://cluster.local/ns/app/sa/web", self.leaf_sans(resp))
            for tok in ("user-token", "nobody"):
                with self.assertRaises(grpc.RpcError) as ctx:
                    call(cert_request(csr), metadata=[("authorization", "Bearer " + tok)], timeout=30)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAUTHENTICATED, ctx.exception.details())
            reviews = [r for r in self.api.requests() if r["path"].endswith("/tokenreviews")]
            self.assertGreaterEqual(len(reviews), 3)
        finally:
            ch.close()

    def leaf_sans(self, resp):
        from test_ca import strings_of
        pem = strings_of(resp, 1)[0]
        path = os.path.join(self.tmp, "leaf.pem")
        with open(path, "w") as f:
            f.write(pem)
        rc, out = openssl("x509", "-in", path, "-noout", "-ext", "subjectAltName")
        self.assertEqual(rc, 0, out)
        return out.encode()


if __name__ == "__main__":
    unittest.main()
