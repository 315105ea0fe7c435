"""Helpers for meshd integration tests: the real meshd binary, real gRPC
backends on loopback, and Debian's python3-grpcio as the xDS client.

Every wait is bounded; nothing here asserts on timing.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MESH_BUILD", os.path.join(ROOT, "build"))
MESHD = os.path.join(BUILD, "bin", "meshd")
MESHCTL = os.path.join(BUILD, "bin", "meshctl")
METHOD = "/test.Echo/Hello"

# The echo service most routing tests run: a ServiceEntry for %(host)s:%(port)d
# selecting two WorkloadEntries on loopback (%(p1)d is v1, %(p2)d is v2) and a
# DestinationRule naming both subsets.
ECHO_SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: test}
spec: {address: 127.0.0.1, ports: {grpc: %(p1)d}, labels: {app: echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v2, namespace: test}
spec: {address: 127.0.0.1, ports: {grpc: %(p2)d}, labels: {app: echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


_PORTS_GIVEN = set()


def _port_window():
    """(lo, hi, next) from MESH_IT_PORTS="LO-HI" (runner.py gives each worker
    its own range), or None: the kernel picks."""
    spec = os.environ.get("MESH_IT_PORTS", "")
    lo, _, hi = spec.partition("-")
    if not (lo.isdigit() and hi.isdigit() and 0 < int(lo) < int(hi) <= 65536):
        return None
    # a random start: files run one after another in a worker, and a port the
    # last file just released is better left alone a while
    return [int(lo), int(hi), random.randrange(int(lo), int(hi))]


_WINDOW = _port_window()
_PORTS_LOCK = threading.Lock()  # a test may pick ports from several threads


def _bindable(port):
    """True when port can be bound now on every local address (0.0.0.0: a
    listener on any 127.0.0.x, or one in TIME_WAIT, makes it False)."""
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A loopback port nothing holds now, and never one this process handed out
    before: a sidecar binds its outbound and inbound ports only once its first
    configuration arrives, so a port picked for it must not be picked again for
    the next listener meanwhile (the kernel may hand the same free port out twice).
    Under runner.py's workers (MESH_IT_PORTS) the port comes from this worker's
    own range, so two files running side by side never get the same one."""
    with _PORTS_LOCK:
        return _free_port_locked()


def _free_port_locked():
    if _WINDOW is not None:
        lo, hi, nxt = _WINDOW
        for _ in range(hi - lo):
            port, nxt = nxt, (lo if nxt + 1 >= hi else nxt + 1)
            if port not in _PORTS_GIVEN and _bindable(port):
                _WINDOW[2] = nxt
                _PORTS_GIVEN.add(port)
                return port
        raise AssertionError("no free port left in MESH_IT_PORTS=%d-%d" % (lo, hi))
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def end_process(proc, sig=None):
    """Let a peer process end: close its stdin (or send sig), wait up to 20 s, then kill it."""
    if proc.poll() is not None:
        return
    if sig is None:
        proc.stdin.close()
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(pred, timeout=20.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; raise after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def netns_usable(probe="ip link set lo up && iptables -t nat -L OUTPUT -n", tools=("unshare", "ip", "iptables")):
    """Whether this test can make a network namespace of its own and program
    iptables there (root, the tools, the probe run inside `unshare -n`):
    (True, "") or (False, why) for skipTest."""
    if os.geteuid() != 0:
        return False, "needs root for a network namespace and iptables"
    for tool in tools:
        if not shutil.which(tool):
            return False, "%s is not installed" % tool
    r = subprocess.run(["unshare", "-n", "sh", "-c", probe], capture_output=True, timeout=30)
    return r.returncode == 0, r.stderr.decode(errors="replace")[:200]


def run_in_netns(case, test_file, test_name, env_flag, timeout=300):
    """Run test_name (module.Class) of test_file's directory again inside a
    new network namespace (`unshare -n`), with env_flag=1 in its
    environment (the inner class runs only then); fail case with the inner
    run's output unless it passed."""
    env = dict(os.environ, **{env_flag: "1"})
    r = subprocess.run(["unshare", "-n", "/usr/bin/python3", "-m", "unittest", "-v", test_name],
                       cwd=os.path.dirname(os.path.abspath(test_file)), env=env, capture_output=True, timeout=timeout)
    case.assertEqual(r.returncode, 0, "in the namespace:\n" + r.stderr.decode(errors="replace")[-8000:])


class Meshd:
    """meshd on a temporary config directory with loopback ports."""

    def __init__(self, files=None, extra_args=(), kubeconfig=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="meshd-it-")
        self.config_dir = os.path.join(self.dir, "config")
        os.mkdir(self.config_dir)
        self.xds_port = free_port()
        self.http_port = free_port()
        self.secure_port = free_port()
        self.webhook_port = free_port()  # --webhook-addr: /inject, /validate over TLS
        self.log_path = os.path.join(self.dir, "meshd.log")
        self.extra_args = list(extra_args)
        self.kubeconfig = kubeconfig  # the Kubernetes API instead of config_dir
        self.env = env
        self.proc = None
        for name, text in (files or {}).items():
            self.write(name, text)

    def write(self, name, text):
        """Write a config file atomically (as an editor or ConfigMap update does)."""
        path = os.path.join(self.config_dir, name)
        tmp = path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    def remove(self, name):
        os.unlink(os.path.join(self.config_dir, name))

    def start(self, wait_ready=True):
        wrapper = os.environ.get("MESHD_WRAPPER", "").split()
        source = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else ["--config-dir", self.config_dir]
        args = wrapper + [
            MESHD,
        ] + source + [
            "--xds-addr", "127.0.0.1:%d" % self.xds_port,
            "--http-addr", "127.0.0.1:%d" % self.http_port,
            "--secure-addr", "127.0.0.1:%d" % self.secure_port,
            "--webhook-addr", "127.0.0.1:%d" % self.webhook_port,
            "--debounce-after", "50ms",
            "--log-level", "debug",
        ] + self.extra_args
        self.log = open(self.log_path, "w")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait_ready:
            wait_for(self.ready, timeout=60, what="meshd /ready")
        return self

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("meshd exited with %s:\n%s" % (self.proc.returncode, self.logs()))
        try:
            return self.http("/ready")[0] == 200
        except OSError:
            return False

    def http(self, path):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, path):
        status, body = self.http(path)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body))
        return json.loads(body)

    def logs(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-20000:]
        except OSError:
            return ""

    def bootstrap(self, node_id="sidecar~127.0.0.1~client.default~default.svc.cluster.local",
                  namespace="default"):
        path = os.path.join(self.dir, "bootstrap-%d.json" % random.randrange(1 << 30))
        with open(path, "w") as f:
            json.dump({
                "xds_servers": [{
                    "server_uri": "127.0.0.1:%d" % self.xds_port,
                    "channel_creds": [{"type": "insecure"}],
                    "server_features": ["xds_v3"],
                }],
                "node": {
                    "id": node_id,
                    "metadata": {"GENERATOR": "grpc", "NAMESPACE": namespace},
                    "locality": {},
                },
            }, f)
        return path

    def stop(self):
        """Stop meshd; it must exit cleanly (0), which under ASan also means no leak."""
        if not self.proc:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self, *also_stop):
        """The end of a test class: stop meshd, then each of also_stop (backends, anything
        with stop()), remove meshd's directory, and fail with its log unless it exited 0."""
        rc = self.stop()
        for x in also_stop:
            x.stop()
        logs = self.logs()
        self.cleanup()
        if rc != 0:
            raise AssertionError("meshd exited %s\n%s" % (rc, logs))


class Backend:
    """A real gRPC server on loopback answering METHOD with its name.

    fail_every: when n > 0, every n-th call (1-based) fails with UNAVAILABLE,
    a deterministic "flaky" backend.
    """

    def __init__(self, name, port=None, fail_every=0):
        self.name = name
        self.port = port or free_port()
        self.fail_every = fail_every
        self.calls = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Hello": grpc.unary_unary_rpc_method_handler(self._hello),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("127.0.0.1:%d" % self.port)
        self.server.start()

    def _hello(self, request, context):
        with self.lock:
            self.calls += 1
            n = self.calls
        if self.fail_every and n % self.fail_every == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "%s: injected failure %d" % (self.name, n))
        return self.name.encode()

    def stop(self):
        self.server.stop(None)


def call_many(channel, n, metadata=None, timeout=10):
    """Make n unary calls; return {backend name or 'ERR:CODE': count}."""
    stub = channel.unary_unary(METHOD)
    counts = {}
    for _ in range(n):
        try:
            r = stub(b"hi", metadata=metadata, timeout=timeout).decode()
        except grpc.RpcError as e:
            r = "ERR:" + e.code().name
        counts[r] = counts.get(r, 0) + 1
    return counts


class XdsClient:
    """A proxyless gRPC client process using meshd through its bootstrap."""

    def __init__(self, bootstrap, target):
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=bootstrap)
        env.pop("GRPC_VERBOSITY", None)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "xds_client.py"), target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)

    def call(self, n, metadata=None, timeout=5):
        req = {"n": n, "metadata": metadata or [], "timeout": timeout}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("xDS client exited with %s" % self.proc.wait())
        return json.loads(line)["counts"]

    def close(self):
        end_process(self.proc)
