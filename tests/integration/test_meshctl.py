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
      weight: -40
"""

# valid Istio (relative weights, Istio >= 1.15) and a kind meshd does not implement
RELATIVE = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 2}
    - {destination: {host: reviews, subset: v2}, weight: 1}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ef, namespace: shop}
spec: {}
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
            self.assertIn("weight -40 < 0", out)

    def test_relative_weights_and_unimplemented_kind(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "ok.yaml"), "w") as f:
                f.write(RELATIVE)
            r = meshctl("validate", "-f", d)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("1 object valid, 0 rejected, 3 warnings", out)
            self.assertIn("EnvoyFilter shop/ef: not implemented by meshd", out)

    def test_empty_directory(self):
        with tempfile.TemporaryDirectory() as d:
            r = meshctl("validate", "-f", d)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 1, out)
            self.assertIn("no configuration found", out)

    def test_usage(self):
        self.assertEqual(meshctl().returncode, 2)
        self.assertEqual(meshctl("validate").returncode, 2)
        self.assertEqual(meshctl("no-such-command").returncode, 2)


if __name__ == "__main__":
    unittest.main()
