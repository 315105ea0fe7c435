"""What a newcomer meets first: the README's quick start (`make run`'s script with the
example's greeter backends and the README's client call), a second meshd on busy ports,
and the debug port's manners (localhost only, an index, configz's shape)."""
import json
import os
import signal
import socket
import subprocess
import unittest

from meshtest import MESHCTL, MESHD, ROOT, Backend, Meshd, XdsClient, free_port, wait_for

PY = "/usr/bin/python3"
GREETER = os.path.join(ROOT, "examples", "greeter.py")
RUN_SH = os.path.join(ROOT, "examples", "run.sh")
# the example's WorkloadEntries (examples/services.yaml)
BACKEND_PORTS = (50061, 50062)
# runner.py runs this file with no other beside it
RUN_ALONE = "the quick start binds the example's fixed ports (50061/50062, 18081/18082: examples/run.sh)"

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - route:
    - destination: {host: echo}
"""


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def non_loopback_ip():
    """An address of this host that is not loopback (no packet is sent), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


class SecondMeshdTest(unittest.TestCase):
    """Two meshd on the same ports: the second fails at once, naming the port."""

    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd(files={"vs.yaml": VS}).start()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def second(self, xds, secure, http):
        args = [MESHD, "--config-dir", self.meshd.config_dir,
                "--xds-addr", "127.0.0.1:%d" % xds, "--secure-addr", "127.0.0.1:%d" % secure,
                "--http-addr", "127.0.0.1:%d" % http, "--webhook-addr", ""]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("the second meshd kept running on busy ports:\n%s" % e.stdout)
        return r.returncode, r.stdout + r.stderr

    def test_same_xds_ports(self):
        m = self.meshd
        rc, out = self.second(m.xds_port, m.secure_port, m.http_port)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("port %d: address in use" % m.xds_port, out)
        # the first one still answers
        self.assertTrue(m.ready())

    def test_same_secure_port(self):
        m = self.meshd
        rc, out = self.second(free_port(), m.secure_port, free_port())
        # an exit status, not a signal: with the plaintext port already
        # bound, gRPC core used to abort on the unshut server
        self.assertGreater(rc, 0, out)
        self.assertIn("port %d: address in use" % m.secure_port, out)

    def test_same_http_port(self):
        m = self.meshd
        rc, out = self.second(free_port(), free_port(), m.http_port)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("port %d: address in use" % m.http_port, out)


class LogNoiseTest(unittest.TestCase):
    """A warning about an object is logged when it appears, not again on
    every config generation while the object stays as it is (an operator
    reads the log for what changed)."""

    REWRITE_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - rewrite: {uri: /v2}
    route:
    - destination: {host: echo}
"""

    def test_finding_logged_once_across_generations(self):
        meshd = Meshd(files={"vs.yaml": self.REWRITE_VS}).start()
        try:
            warning = "not applied to proxyless gRPC clients"
            wait_for(lambda: warning in meshd.logs(), what="the proxyless warning")
            # two more generations from unrelated edits
            for i in range(2):
                meshd.write("other%d.yaml" % i, VS.replace("name: echo", "name: other%d" % i)
                            .replace("hosts: [echo]", "hosts: [other%d]" % i)
                            .replace("host: echo}", "host: other%d}" % i))
                wait_for(lambda: "config generation %d" % (i + 2) in meshd.logs(),
                         what="config generation %d" % (i + 2))
            self.assertEqual(meshd.logs().count(warning), 1, meshd.logs())
            # another object with the same finding: logged, once
            meshd.write("vs2.yaml", self.REWRITE_VS.replace("name: echo", "name: echo2")
                        .replace("hosts: [echo]", "hosts: [echo2]").replace("host: echo}", "host: echo2}"))
            wait_for(lambda: meshd.logs().count(warning) == 2, what="the warning for the new object")
        finally:
            meshd.stop()


class DebugPortTest(unittest.TestCase):
    """/debug/* on a port open to the network: localhost only, as istiod without auth."""

    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd(files={"vs.yaml": VS})
        cls.meshd.extra_args = ["--http-addr", "0.0.0.0:%d" % cls.meshd.http_port]
        cls.meshd.start()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def test_index(self):
        paths = [e["path"] for e in self.meshd.json("/debug")["endpoints"]]
        for p in ("/debug/configz", "/debug/syncz", "/debug/config_dump", "/debug/registryz"):
            self.assertIn(p, paths)

    def test_configz_spec_not_nested(self):
        objs = [o for o in self.meshd.json("/debug/configz")["objects"] if o["name"] == "echo"]
        self.assertEqual(len(objs), 1)
        self.assertEqual(objs[0]["spec"]["hosts"], ["echo"])
        self.assertNotIn("spec", objs[0]["spec"])
        self.assertEqual(objs[0]["object"]["kind"], "VirtualService")
        self.assertEqual(objs[0]["object"]["spec"], objs[0]["spec"])

    def test_remote_caller_refused(self):
        ip = non_loopback_ip()
        if ip is None:
            self.skipTest("this host has no non-loopback IPv4 address")
        import urllib.error
        import urllib.request
        for path in ("/debug", "/debug/configz", "/debug/syncz", "/debug/registryz"):
            url = "http://%s:%d%s" % (ip, self.meshd.http_port, path)
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(url, timeout=10)
            self.assertEqual(cm.exception.code, 403, path)
            body = cm.exception.read().decode()
            self.assertIn("localhost", body)
            self.assertNotIn("echo", body)
        with urllib.request.urlopen("http://%s:%d/ready" % (ip, self.meshd.http_port), timeout=10) as r:
            self.assertEqual(r.status, 200)


MESH = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: test}
spec: {address: 127.0.0.1, ports: {grpc: %(p1)d}, labels: {app: echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: echo, subset: v1}}]
  - route: [{destination: {host: echo, subset: v1}}]
"""
NODE = "sidecar~127.0.0.1~client.test~test.svc.cluster.local"


def meshctl(*args):
    return subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, timeout=60)


def table(text):
    """istioctl-style table text -> (header, rows as dicts); columns are 3+ spaces apart."""
    import re
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = re.split(r" {3,}", lines[0].strip())
    rows = [dict(zip(header, re.split(r" {3,}", ln.strip()))) for ln in lines[1:]]
    return header, rows


class MeshctlProxyTest(unittest.TestCase):
    """meshctl version, proxy-status and proxy-config against a real meshd and client."""

    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("v1")
        cls.meshd = Meshd(files={"mesh.yaml": MESH % {"p1": cls.backend.port}}).start()
        cls.addr = "127.0.0.1:%d" % cls.meshd.http_port
        cls.client = XdsClient(cls.meshd.bootstrap(node_id=NODE, namespace="test"),
                               "xds:///echo.test.svc.cluster.local:7070")
        assert cls.client.call(1) == {"v1": 1}

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.meshd.finish(cls.backend)

    def test_version(self):
        r = meshctl("version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^client version: \S+\n$")
        r = meshctl("version", "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        served = self.meshd.json("/version")["version"]
        self.assertIn("meshd version: %s (%s)" % (served, self.addr), r.stdout)
        r = meshctl("version", "--meshd", "127.0.0.1:%d" % free_port())
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach", r.stderr)

    def test_proxy_status(self):
        def synced():
            r = meshctl("proxy-status", "--meshd", self.addr)
            self.assertEqual(r.returncode, 0, r.stderr)
            header, rows = table(r.stdout)
            self.assertEqual(header, ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"])
            mine = [row for row in rows if row["NAME"] == NODE]
            return mine and all(mine[0][t] == "SYNCED" for t in ("CDS", "LDS", "EDS", "RDS")) and mine[0]
        row = wait_for(synced, what="the client SYNCED in proxy-status")
        self.assertEqual(row["ECDS"], "NOT SENT")
        self.assertEqual(row["ISTIOD"], self.addr)
        self.assertIn("Python", row["VERSION"])
        r = meshctl("proxy-status", "--meshd", self.addr, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(NODE, [s["proxy"] for s in json.loads(r.stdout)])

    def test_proxy_config_tables(self):
        r = meshctl("proxy-config", "clusters", NODE, "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        header, rows = table(r.stdout)
        self.assertEqual(header, ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"])
        self.assertIn({"SERVICE FQDN": "echo.test.svc.cluster.local", "PORT": "7070", "SUBSET": "v1",
                       "DIRECTION": "outbound", "TYPE": "EDS"}, rows)

        r = meshctl("proxy-config", "listeners", NODE, "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, rows = table(r.stdout)
        self.assertIn("Route: echo.test.svc.cluster.local:7070",
                      [row["DESTINATION"] for row in rows if row["NAME"] == "echo.test.svc.cluster.local:7070"])

        r = meshctl("proxy-config", "routes", NODE, "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, rows = table(r.stdout)
        # in the order they match: the header route first
        self.assertEqual([row["MATCH"] for row in rows], ["/* x-canary", "/*"])
        self.assertEqual(rows[0]["DESTINATION"], "outbound|7070|v1|echo.test.svc.cluster.local")

        r = meshctl("proxy-config", "endpoints", NODE, "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, rows = table(r.stdout)
        # through meshd: only the proxy knows whether a host is ejected ("-")
        self.assertIn({"ENDPOINT": "127.0.0.1:%d" % self.backend.port, "STATUS": "HEALTHY", "OUTLIER CHECK": "-",
                       "CLUSTER": "outbound|7070|v1|echo.test.svc.cluster.local"}, rows)

        # istioctl's POD.NAMESPACE form names the same proxy
        r2 = meshctl("proxy-config", "endpoints", "client.test", "--meshd", self.addr)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual(table(r2.stdout)[1], rows)

        r = meshctl("proxy-config", "all", NODE, "--meshd", self.addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        for section in ("listeners:", "routes:", "clusters:", "endpoints:", "secrets:"):
            self.assertIn(section, r.stdout)

    def test_proxy_config_json(self):
        r = meshctl("proxy-config", "all", NODE, "--meshd", self.addr, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        dump = json.loads(r.stdout)
        self.assertIn("configs", dump)
        r = meshctl("proxy-config", "cluster", NODE, "--meshd", self.addr, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        clusters = json.loads(r.stdout)
        self.assertIn("outbound|7070|v1|echo.test.svc.cluster.local", [c["cluster"]["name"] for c in clusters])

    def test_proxy_config_errors(self):
        r = meshctl("proxy-config", "clusters", "nobody~1.2.3.4~x.y~y.svc.cluster.local", "--meshd", self.addr)
        self.assertEqual(r.returncode, 1)
        self.assertIn('HTTP 404: proxy "nobody~1.2.3.4~x.y~y.svc.cluster.local" is not connected', r.stderr)
        self.assertEqual(meshctl("proxy-config", "clusters").returncode, 2)
        self.assertEqual(meshctl("proxy-config", "bogus", NODE).returncode, 2)


class QuickStartTest(unittest.TestCase):
    """The README's quick start: `make run` (examples/run.sh: meshd and the greeter
    backends) and the client command it shows, then Ctrl-C stops everything."""

    def setUp(self):
        for p in BACKEND_PORTS:
            # 50061/50062 lie in the ephemeral range: a client socket of a
            # test running beside this one may hold one for a moment
            try:
                wait_for(lambda: port_free(p), timeout=30, what="port %d free" % p)
            except AssertionError:
                self.fail("port %d (an example backend) is taken by another process" % p)
        self.xds = free_port()
        self.http = free_port()
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen(
            ["sh", RUN_SH, MESHD, "--config-dir", os.path.join(ROOT, "examples"),
             "--xds-addr", "127.0.0.1:%d" % self.xds, "--secure-addr", "127.0.0.1:%d" % free_port(),
             "--http-addr", "127.0.0.1:%d" % self.http, "--webhook-addr", ""],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def tearDown(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def call(self, *args):
        env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
        r = subprocess.run([PY, GREETER, "call", "--xds", "127.0.0.1:%d" % self.xds] + list(args),
                           capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        return r.returncode, r.stdout + r.stderr

    def test_readme_call_prints_the_version(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn("make run", readme)
        self.assertIn("/usr/bin/python3 examples/greeter.py call", readme)
        wait_for(lambda: all(not port_free(p) for p in BACKEND_PORTS), timeout=60, what="greeter backends")
        rc, out = self.call("-n", "20")
        self.assertEqual(rc, 0, out)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 20, out)
        for line in lines:
            self.assertRegex(line, r"^Hello world from greeter v[12]$")
        self.assertIn("from greeter v1", out)   # 90% of 20 calls
        rc, out = self.call("--canary", "-n", "3")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip().splitlines(), ["Hello world from greeter v2"] * 3)

        # Ctrl-C: the terminal's SIGINT reaches the whole group; all three stop
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("make run's processes did not stop on SIGINT")
        self.assertNotEqual(rc, 0)
        for p in BACKEND_PORTS + (self.xds, self.http):
            wait_for(lambda: port_free(p), timeout=30, what="port %d released" % p)


if __name__ == "__main__":
    unittest.main()
