"""Ring hash (consistentHash on a header) judged by @grpc/grpc-js-xds from npm.

Debian's python3-grpcio 1.51 crashes in its ring-hash picker, so this peer is
Node's xDS client.  The same x-user always reaches the same backend; many users
spread over both.
"""
import json
import os
import shutil
import subprocess
import unittest

from meshtest import BUILD, Backend, Meshd, wait_for

HOST = "sticky.test.svc.cluster.local"
PORT = 7072
NODE_DIR = os.path.join(BUILD, "node-peers")
HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sticky, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %(p1)d}, labels: {app: sticky}}
  - {address: 127.0.0.1, ports: {grpc: %(p2)d}, labels: {app: sticky}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky, namespace: test}
spec:
  host: %(host)s
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
"""


def install_node_peers():
    """npm install the pinned peers into the build tree (once)."""
    if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@grpc", "grpc-js-xds")):
        return
    os.makedirs(NODE_DIR, exist_ok=True)
    shutil.copy(os.path.join(HERE, "node", "package.json"), NODE_DIR)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True,
                   timeout=600)


class RingHashTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        install_node_peers()
        shutil.copy(os.path.join(HERE, "node", "ring_hash_client.js"), NODE_DIR)
        cls.b1 = Backend("b1")
        cls.b2 = Backend("b2")
        cls.meshd = Meshd({"sticky.yaml": CONFIG % {"host": HOST, "port": PORT, "p1": cls.b1.port,
                                                    "p2": cls.b2.port}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish(cls.b1, cls.b2)

    def run_client(self, per_key, keys):
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=self.meshd.bootstrap(namespace="test"))
        out = subprocess.run(["node", "ring_hash_client.js", "xds:///%s:%d" % (HOST, PORT), str(per_key)] + keys,
                             cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_same_key_same_backend(self):
        keys = ["user-%d" % i for i in range(40)]
        result = wait_for(lambda: (lambda r: r if all(not k.startswith("ERR") for c in r.values() for k in c)
                                   else None)(self.run_client(5, keys)), timeout=60, what="calls succeed")
        backends = set()
        for key, counts in result.items():
            # every call of one user went to one backend
            self.assertEqual(len(counts), 1, (key, counts))
            backends.update(counts)
        # 40 users over two equally weighted backends: both are used
        # (all on one side has probability 2 * 2^-40)
        self.assertEqual(backends, {"b1", "b2"})


if __name__ == "__main__":
    unittest.main()
