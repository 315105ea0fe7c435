"""Workload certificate rotation under load, judged by Debian's python3-grpcio.

meshd runs with a CA token file.  Two `meshctl certs` agents run
continuously (not --once) with --ttl 20s, so each renews about every 10 s:
one for the server identity (test/echo), one for the client identity
(default/client).  An xDS-enabled gRPC server under STRICT mTLS and an xDS
client take their certificates from gRPC's file_watcher certificate
provider (refresh_interval 1s) pointed at the agents' directories.  The
server closes every connection after about 2 s (max_connection_age), so
the client keeps making new TLS handshakes with whatever certificates are
current on both sides.

Proves, over about 45 s of calls every 25 ms:
  - not one call fails;
  - both certificates on disk changed at least twice (serial numbers read
    with `openssl x509 -serial`);
  - the client certificate the server saw on the wire changed at least
    twice, and each one it saw was one the client agent had written;
  - the server certificate a TLS probe saw changed at least once;
  - the agent's directory layout: the three files are symlinks into
    ..data, a symlink swapped atomically to a versioned directory.
Then the counter is shown to be real: with the server's agent stopped, a key
that does not match the certificate is put in place the non-atomic way
(what a reader could see between two separate renames); gRPC 1.51 loads the
mismatched pair and new handshakes fail, which the same client counts.

Run as a script, this file is the peers:
  server PORT                 xDS server answering /test.Echo/Hello with the
                              PEM of the client certificate it saw
  client TARGET SECONDS STOP  calls every 25 ms for SECONDS (STOP=1: stop at
                              the first failure once one call has succeeded);
                              prints one JSON summary
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

TTL = "20s"
RUN_SECONDS = 45
CALL_INTERVAL = 0.025
CONN_AGE_MS = 2000
METHOD = "/test.Echo/Hello"


def serve(port):
    from concurrent import futures

    import grpc
    opts = [("grpc.max_connection_age_ms", CONN_AGE_MS), ("grpc.max_connection_age_grace_ms", 10000)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), xds=True, options=opts)

    def hello(req, ctx):
        pem = ctx.auth_context().get("x509_pem_cert", [b""])[0]
        return pem if isinstance(pem, bytes) else pem.encode()
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Hello": grpc.unary_unary_rpc_method_handler(hello),
    })
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.xds_server_credentials(grpc.insecure_server_credentials())
    server.add_secure_port("127.0.0.1:%d" % port, creds)
    server.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    for _ in sys.stdin:
        pass
    server.stop(None)


def client(target, seconds, stop_on_failure):
    import grpc
    import grpc.experimental
    creds = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
    channel = grpc.secure_channel(target, creds)
    stub = channel.unary_unary(METHOD)
    ok, failed, errors, seen = 0, 0, {}, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pem = stub(b"hi", timeout=10).decode()
            ok += 1
            if ok == 1:
                # the caller may wait for this line before breaking things
                sys.stdout.write("first call ok\n")
                sys.stdout.flush()
            if pem not in seen:
                seen.append(pem)
        except grpc.RpcError as e:
            failed += 1
            key = "%s: %s" % (e.code().name, (e.details() or "")[:200])
            errors[key] = errors.get(key, 0) + 1
            if stop_on_failure and ok:
                break
        time.sleep(CALL_INTERVAL)
    channel.close()
    sys.stdout.write(json.dumps({"ok": ok, "failed": failed, "errors": errors, "seen": seen}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1")
    sys.exit(0)

from meshtest import MESHCTL, Meshd, end_process, free_port, wait_for  # noqa: E402
from test_mtls import HOST, NS, SERVICE, SVC_PORT, bootstrap, peer_authn, peer_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def serial_of(path=None, pem=None, der=None):
    """The serial number of a certificate (file, PEM text or DER bytes) by openssl."""
    args = ["openssl", "x509", "-serial", "-noout"]
    data = None
    if path:
        args += ["-in", path]
    elif der is not None:
        args += ["-inform", "DER"]
        data = der
    else:
        data = pem.encode()
    r = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if r.returncode != 0:
        return None
    return r.stdout.decode().strip().split("=", 1)[-1]


class Agent:
    """`meshctl certs` running continuously for one identity."""

    def __init__(self, meshd, d, name, token):
        self.dir = os.path.join(d, name)
        os.makedirs(self.dir, exist_ok=True)
        tok = os.path.join(d, name + ".token")
        with open(tok, "w") as f:
            f.write(token + "\n")
        self.args = [MESHCTL, "certs", "--ca-addr", "127.0.0.1:%d" % meshd.secure_port, "--insecure-bootstrap",
                     "--token-file", tok, "--dir", self.dir]
        self.log_path = os.path.join(d, name + "-agent.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args + ["--ttl", TTL], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.serial() or self.proc.poll() is not None, timeout=30,
                 what="first certificate from the %s agent" % name)
        if self.proc.poll() is not None:
            raise AssertionError("agent for %s exited with %s:\n%s" % (name, self.proc.returncode, self.logs()))

    def once(self, ttl):
        """One more certificate into the same directory (the agent stopped)."""
        r = subprocess.run(self.args + ["--ttl", ttl, "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("meshctl certs --once: exit %d\n%s" % (r.returncode, r.stdout))

    def path(self, name):
        return os.path.join(self.dir, name)

    def serial(self):
        if not os.path.exists(self.path("cert-chain.pem")):
            return None
        return serial_of(path=self.path("cert-chain.pem"))

    def logs(self):
        with open(self.log_path) as f:
            return f.read()[-6000:]

    def stop(self):
        end_process(self.proc, signal.SIGTERM)
        self.log.close()


def fast_refresh(path):
    """The bootstrap with the file_watcher re-reading the files every second."""
    with open(path) as f:
        boot = json.load(f)
    boot["certificate_providers"]["default"]["config"]["refresh_interval"] = "1s"
    with open(path, "w") as f:
        json.dump(boot, f)
    return path


class RotationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd()
        cls.d = cls.meshd.dir
        cls.agents, cls.server = [], None
        tokens = os.path.join(cls.d, "ca-tokens")
        with open(tokens, "w") as f:
            f.write("tok-echo %s echo\ntok-client default client\n" % NS)
        cls.meshd.extra_args += ["--ca-token-file", tokens]
        cls.port = free_port()
        cls.meshd.write("service.yaml", SERVICE % {"host": HOST, "svc_port": SVC_PORT, "port": cls.port,
                                                   "sa": "echo"})
        cls.meshd.write("peer-authn.yaml", peer_authn("STRICT"))
        cls.meshd.start()
        try:
            cls.server_agent = Agent(cls.meshd, cls.d, "server", "tok-echo")
            cls.agents.append(cls.server_agent)
            cls.client_agent = Agent(cls.meshd, cls.d, "client", "tok-client")
            cls.agents.append(cls.client_agent)
            server_boot = fast_refresh(bootstrap(cls.meshd, cls.d, "server",
                                                 "sidecar~127.0.0.1~echo-1.test~test.svc.cluster.local", NS,
                                                 {"app": "echo"}))
            cls.client_boot = fast_refresh(bootstrap(cls.meshd, cls.d, "client",
                                                     "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
                                                     "default", {"app": "client"}))
            cls.server = subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "server", str(cls.port)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          env=peer_env(server_boot), text=True)
            if cls.server.stdout.readline().strip() != "started":
                raise AssertionError("xDS server did not start")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            end_process(cls.server)
        for a in cls.agents:
            a.stop()
        cls.meshd.finish()

    def start_client(self, seconds, stop_on_failure):
        return subprocess.Popen(
            ["/usr/bin/python3", os.path.abspath(__file__), "client", "xds:///%s:%d" % (HOST, SVC_PORT),
             str(seconds), "1" if stop_on_failure else "0"],
            stdout=subprocess.PIPE, env=peer_env(self.client_boot), text=True)

    def finish_client(self, proc, seconds):
        try:
            out, _ = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("client did not finish")
        self.assertEqual(proc.returncode, 0)
        return json.loads(out.strip().splitlines()[-1])

    def warm_up(self):
        """Until one mTLS call succeeds (xDS and the first certificates in place)."""
        def one():
            p = self.start_client(3, True)
            return self.finish_client(p, 3)["ok"] > 0
        wait_for(one, timeout=40, interval=0.2, what="a first mTLS call")

    def probe_server_cert(self):
        """The serial of the certificate the server presents now (a TLS probe with
        the client's current certificate), or None when the probe fails."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        try:
            ctx.load_cert_chain(self.client_agent.path("cert-chain.pem"), self.client_agent.path("key.pem"))
            with socket.create_connection(("127.0.0.1", self.port), timeout=3) as s:
                with ctx.wrap_socket(s) as t:
                    der = t.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            return None
        return serial_of(der=der) if der else None

    def test_1_rotation_under_load(self):
        self.warm_up()
        disk = {"server": [], "client": []}
        probed = []
        proc = self.start_client(RUN_SECONDS, False)
        next_probe = 0.0
        while proc.poll() is None:
            for name, agent in (("server", self.server_agent), ("client", self.client_agent)):
                s = agent.serial()
                if s and (not disk[name] or disk[name][-1] != s):
                    disk[name].append(s)
            if time.monotonic() >= next_probe:
                s = self.probe_server_cert()
                if s and s not in probed:
                    probed.append(s)
                next_probe = time.monotonic() + 1.0
            time.sleep(0.5)
        res = self.finish_client(proc, RUN_SECONDS)
        detail = "client %s; disk serials %s; agent logs:\n%s\n%s" % (
            {k: v for k, v in res.items() if k != "seen"}, disk,
            self.server_agent.logs()[-1500:], self.client_agent.logs()[-1500:])
        sys.stderr.write("\nrotation: %d calls ok, %d failed; distinct serials on disk: server %d, client %d; "
                         "client certificates the server saw: %d; server certificates probed: %d\n" % (
                             res["ok"], res["failed"], len(set(disk["server"])), len(set(disk["client"])),
                             len(res["seen"]), len(probed)))
        self.assertGreater(res["ok"], 200, detail)
        self.assertEqual(res["failed"], 0, detail)
        # each certificate on disk changed at least twice during the calls
        self.assertGreaterEqual(len(set(disk["server"])), 3, detail)
        self.assertGreaterEqual(len(set(disk["client"])), 3, detail)
        # the client certificates the server saw on the wire
        seen = [serial_of(pem=p) for p in res["seen"] if p]
        self.assertGreaterEqual(len(set(seen)), 3, "server saw %s; %s" % (seen, detail))
        written = set(disk["client"])
        self.assertTrue(written & set(seen), "server saw %s, agent wrote %s" % (seen, written))
        # the server certificate on the wire changed too
        self.assertGreaterEqual(len(probed), 2, "probes saw %s; %s" % (probed, detail))
        self.assertTrue(set(probed) & set(disk["server"]), "probes saw %s, agent wrote %s" % (probed, disk["server"]))
        # the layout that makes a key and its certificate change together
        for name in ("cert-chain.pem", "key.pem", "root-cert.pem"):
            p = self.client_agent.path(name)
            self.assertTrue(os.path.islink(p), p)
            self.assertEqual(os.readlink(p), os.path.join("..data", name))
        self.assertTrue(os.path.islink(self.client_agent.path("..data")))
        versions = [n for n in os.listdir(self.client_agent.dir)
                    if n.startswith("..") and n != "..data" and os.path.isdir(self.client_agent.path(n))]
        self.assertLessEqual(len(versions), 2, versions)
        self.assertEqual(os.stat(self.client_agent.path("key.pem")).st_mode & 0o777, 0o600)

    def test_2_mismatched_pair_is_counted(self):
        """The failure counter is real: a key that does not match the certificate,
        put in place the non-atomic way, makes new handshakes fail; the agent's
        next write repairs it."""
        self.server_agent.stop()
        self.agents.remove(self.server_agent)
        # a long-lived certificate, so only the key below can break handshakes
        self.server_agent.once("10m")
        good = self.server_agent.serial()
        wait_for(lambda: self.probe_server_cert() == good, timeout=20, what="server serving the 10m certificate")
        self.warm_up()
        proc = self.start_client(30, True)
        # a first call made on a good pair (a loaded machine can take longer
        # than any fixed pause to connect); the client gives up after 30 s
        first = proc.stdout.readline()
        self.assertEqual(first.strip(), "first call ok", "no call made before the key changed")
        # another identity's key in place of the server's: one file replaced on its own
        key = self.server_agent.path("key.pem")
        with open(self.client_agent.path("key.pem")) as f:
            other = f.read()
        tmp = key + ".tmp"
        with open(tmp, "w") as f:
            f.write(other)
        os.rename(tmp, key)
        res = self.finish_client(proc, 30)
        self.assertGreater(res["ok"], 0, res)
        self.assertGreater(res["failed"], 0, "a mismatched key and certificate went unnoticed: %s" % res)
        # the agent puts a matching pair back (and its symlinks over the stray file)
        self.server_agent.once("10m")
        self.assertTrue(os.path.islink(key))
        self.warm_up()
