"""meshctl validate: the same validator as meshd, offline, with file:line:field messages."""
import os
import subprocess
import tempfile
import unittest

from meshtest import MESHCTL, ROOT

BAD = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 70
    - destination: {host: reviews, subset: v2}
      weight: 40
"""


def meshctl(*args):
    return subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, timeout=60)


class MeshctlValidateTest(unittest.TestCase):
    def test_examples_are_valid(self):
        r = meshctl("validate", "-f", os.path.join(ROOT, "examples"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 rejected", r.stdout + r.stderr)

    def test_invalid_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write(BAD)
            r = meshctl("validate", "-f", d)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 1, out)
            self.assertIn("bad.yaml:13:", out)
            self.assertIn("VirtualService shop/reviews", out)
            self.assertIn("spec.http[0].route[1].weight", out)
            self.assertIn("110", out)

    def test_usage(self):
        self.assertEqual(meshctl().returncode, 2)
        self.assertEqual(meshctl("validate").returncode, 2)
        self.assertEqual(meshctl("no-such-command").returncode, 2)


if __name__ == "__main__":
    unittest.main()
