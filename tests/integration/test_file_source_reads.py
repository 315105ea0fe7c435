"""The file source with the real meshd: a config directory moved away
(`mv configdir configdir.moved`) keeps every object served, says so in the
log and in /metrics (meshd_config_read_failures_total), and meshd reads it
again once it is back; a symlink back into the tree (`loop -> .`) and a
second link to a subdirectory read each file once, under its real path,
with no duplicate definitions.
"""
import os
import re
import unittest

from meshtest import Meshd, wait_for


def service(name, port):
    return """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(n)s, namespace: demo}
spec:
  hosts: [%(n)s.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(p)d, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
""" % {"n": name, "p": port}


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class FileSourceReadsTest(unittest.TestCase):
    def setUp(self):
        self.meshd = Meshd({"a.yaml": service("a", 8001)})
        os.mkdir(os.path.join(self.meshd.config_dir, "sub"))
        self.meshd.write("sub/b.yaml", service("b", 8002))

    def tearDown(self):
        self.meshd.finish()

    def names(self):
        return sorted(o["name"] for o in self.meshd.json("/debug/configz")["objects"])

    def metrics(self):
        status, body = self.meshd.http("/metrics")
        self.assertEqual(status, 200)
        return body

    def test_moved_root_keeps_last_good(self):
        self.meshd.start()
        self.assertEqual(self.names(), ["a", "b"])
        moved = self.meshd.config_dir + ".moved"
        os.rename(self.meshd.config_dir, moved)
        wait_for(lambda: (metric(self.metrics(), "meshd_config_read_failures_total") or 0) >= 1,
                 what="the failed read counted")
        self.assertIn("cannot read %s" % self.meshd.config_dir, self.meshd.logs())
        self.assertNotIn("removed (", self.meshd.logs())
        self.assertEqual(self.names(), ["a", "b"])
        self.assertEqual(self.meshd.http("/ready")[0], 200)

        # back again, and a change in it is read
        os.rename(moved, self.meshd.config_dir)
        self.meshd.write("c.yaml", service("c", 8003))
        wait_for(lambda: self.names() == ["a", "b", "c"], what="c served after the directory came back")
        self.meshd.remove("sub/b.yaml")
        wait_for(lambda: self.names() == ["a", "c"], what="a real deletion still deletes")

    def test_symlink_loop_read_once(self):
        os.symlink(".", os.path.join(self.meshd.config_dir, "loop"))
        os.symlink("sub", os.path.join(self.meshd.config_dir, "alias"))
        self.meshd.start()
        cz = self.meshd.json("/debug/configz")
        self.assertEqual(cz["errors"], [])
        origins = sorted(os.path.relpath(o["origin"], self.meshd.config_dir) for o in cz["objects"])
        self.assertEqual(origins, ["a.yaml", "sub/b.yaml"])
        logs = self.meshd.logs()
        self.assertNotIn("also defined", logs)
        self.assertIn("loop: a directory already read", logs)
        self.assertEqual(logs.count("a.yaml: 1 objects"), 1)


if __name__ == "__main__":
    unittest.main()
