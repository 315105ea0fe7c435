"""MeshConfig end to end: meshd --mesh-config FILE (Istio's `mesh` key of
the istio ConfigMap) watched live, real meshproxy sidecars, HTTP backends on
127.0.0.x.

A backend "stray" on 127.0.0.4 is known to no ServiceEntry: a request for it
through the sidecar's outbound port follows the mesh-wide
outboundTrafficPolicy (no Sidecar object scopes the workload).

- (a) the file starts as ALLOW_ANY: stray answers through the sidecar;
- (b) rewriting the file (atomically, as a ConfigMap volume or an editor
  does) to REGISTRY_ONLY makes the same request 502 live, without a meshd
  restart, and /debug/mesh shows the new mode; a known service still
  answers;
- (c) a malformed / invalid file is rejected with file:line and the field in
  meshd's log, counted in meshd_config_rejected_total, and the last good
  mesh config (REGISTRY_ONLY) stays in force;
- (d) back to ALLOW_ANY: stray answers again.

MeshStartupTest: the mesh config's trustDomain and rootNamespace win over
the flags (istiod takes both from MeshConfig); a ConfigMap volume's
`..data` symlink swap is seen; a bad file at start-up stops meshd with
file:line and the field (there is no last good one).

Nothing here asserts on timing; every wait is bounded.
"""
import os
import shutil
import tempfile
import unittest

from meshhttp import PORT, Backend, MeshCase, service_yaml, slow
from meshtest import Meshd, wait_for

ALLOW = "# Istio's mesh key\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n"
REGISTRY = ("# Istio's mesh key\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nconnectTimeout: 5s\n"
            # an access log on every HCM: meshproxy must take (not NACK) it
            "accessLogFile: /dev/stdout\n")


def write_atomic(path, text):
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class MeshConfigTest(MeshCase):
    mesh_dir = None

    @classmethod
    def meshd_args(cls):
        cls.mesh_dir = tempfile.mkdtemp(prefix="meshd-meshcfg-")
        cls.mesh_file = os.path.join(cls.mesh_dir, "mesh")
        write_atomic(cls.mesh_file, ALLOW)
        return ("--mesh-config", cls.mesh_file)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.mesh_dir:
                shutil.rmtree(cls.mesh_dir, ignore_errors=True)

    @classmethod
    def backends(cls):
        return {
            "local": Backend("local", "127.0.0.2", "v1"),
            "stray": Backend("stray", "127.0.0.4", "v1"),
        }

    @classmethod
    def config(cls, b):
        return {"local.yaml": service_yaml("local", [b["local"]])}

    def stray(self):
        st = self.b["stray"]
        return self.px.request("http://%s:%d/stray" % (st.ip, st.port))

    def mesh(self):
        return self.meshd.json("/debug/mesh")

    def wait_mode(self, mode):
        wait_for(lambda: self.mesh()["outboundTrafficPolicy"]["mode"] == mode,
                 timeout=60 if slow() else 20, what="/debug/mesh mode %s" % mode)

    def rejected(self):
        status, body = self.meshd.http("/metrics")
        self.assertEqual(status, 200)
        for line in body.decode().splitlines() if isinstance(body, bytes) else body.splitlines():
            if line.startswith("meshd_config_rejected_total "):
                return int(float(line.split()[1]))
        raise AssertionError("no meshd_config_rejected_total in /metrics")

    def test_live_edits(self):
        # (a) ALLOW_ANY: the unknown host is forwarded
        self.assertEqual(self.mesh()["outboundTrafficPolicy"]["mode"], "ALLOW_ANY")
        r = self.stray()
        self.assertEqual((r.status, r.backend), (200, "stray"), r)

        # (b) REGISTRY_ONLY, live
        seen = self.b["stray"].count()
        write_atomic(self.mesh_file, REGISTRY)
        self.wait_mode("REGISTRY_ONLY")
        self.assertEqual(self.mesh()["connectTimeout"], "5s")
        self.wait_applied(lambda s: self.stray().status == 502, "REGISTRY_ONLY reaching the sidecar")
        r = self.stray()
        self.assertEqual(r.status, 502, r)
        self.assertIsNone(r.backend)
        self.assertEqual(self.b["stray"].count(), seen)
        self.assertEqual(self.px.get("local").backend, "local")

        # (c) bad files: rejected with file:line and field, counted, last good kept
        before = self.rejected()
        write_atomic(self.mesh_file, "outboundTrafficPolicy:\n  mode: ALLOW_EVERYTHING\n")
        wait_for(lambda: "field outboundTrafficPolicy.mode" in self.meshd.logs(),
                 timeout=60 if slow() else 20, what="the rejection in meshd's log")
        self.assertIn("%s:2: field outboundTrafficPolicy.mode" % self.mesh_file, self.meshd.logs())
        write_atomic(self.mesh_file, "outboundTrafficPolicy: [unclosed\n")
        wait_for(lambda: self.rejected() >= before + 2, timeout=60 if slow() else 20,
                 what="both rejections counted")
        self.assertEqual(self.mesh()["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY")
        self.assertEqual(self.stray().status, 502)

        # (d) back to ALLOW_ANY
        write_atomic(self.mesh_file, ALLOW)
        self.wait_mode("ALLOW_ANY")
        self.wait_applied(lambda s: self.stray().status == 200, "ALLOW_ANY reaching the sidecar")
        self.assertEqual(self.stray().backend, "stray")
        self.assertEqual(self.mesh()["connectTimeout"], "10s")



class MeshStartupTest(unittest.TestCase):
    def run_meshd(self, mesh_text, *flags):
        d = tempfile.mkdtemp(prefix="meshd-meshcfg-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "mesh")
        write_atomic(path, mesh_text)
        m = Meshd({}, extra_args=("--mesh-config", path) + flags)
        return m, path

    def test_trust_domain_and_root_namespace_win_over_flags(self):
        m, _ = self.run_meshd("trustDomain: example.org\nrootNamespace: mesh-root\n",
                              "--trust-domain", "flag.local", "--root-namespace", "flag-root")
        try:
            m.start()
            mesh = m.json("/debug/mesh")
            self.assertEqual((mesh["trustDomain"], mesh["rootNamespace"]), ("example.org", "mesh-root"))
            self.assertIn("rootNamespace mesh-root, trustDomain example.org", m.logs())
        finally:
            m.finish()

    def test_configmap_volume_swap(self):
        # a ConfigMap volume: mesh -> ..data/mesh, ..data -> ..TIMESTAMP; the
        # kubelet updates it by renaming a new ..data symlink over the old one
        d = tempfile.mkdtemp(prefix="meshd-cmvol-")
        self.addCleanup(shutil.rmtree, d, True)

        def version(name, text):
            os.mkdir(os.path.join(d, name))
            with open(os.path.join(d, name, "mesh"), "w") as f:
                f.write(text)
            os.symlink(name, os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))

        version("..2026_01", ALLOW)
        os.symlink("..data/mesh", os.path.join(d, "mesh"))
        m = Meshd({}, extra_args=("--mesh-config", os.path.join(d, "mesh")))
        try:
            m.start()
            self.assertEqual(m.json("/debug/mesh")["outboundTrafficPolicy"]["mode"], "ALLOW_ANY")
            version("..2026_02", REGISTRY)
            wait_for(lambda: m.json("/debug/mesh")["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY",
                     timeout=60 if slow() else 20, what="the swapped ConfigMap volume applied")
        finally:
            m.finish()

    def test_bad_file_at_startup_stops_meshd(self):
        m, path = self.run_meshd("outboundTrafficPolicy:\n  mode: ALLOW_ANY\nenableAutoMtls: sometimes\n")
        try:
            m.start(wait_ready=False)
            rc = m.proc.wait(timeout=60)
            self.assertNotEqual(rc, 0)
            self.assertIn("%s:3: field enableAutoMtls" % path, m.logs())
        finally:
            m.stop()
            m.cleanup()


if __name__ == "__main__":
    unittest.main()
