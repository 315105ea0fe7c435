"""Chaos under traffic (issue 16): the real meshd and meshproxy while what
they depend on breaks, each case bounded in requests and time, nothing
asserted on timing.

  1. meshd SIGKILLed and restarted under steady traffic through two sidecars
     (client sidecar ==mTLS==> web sidecar --> app): not one request fails,
     both sidecars reconnect and ACK the new meshd, an edit made after the
     restart reaches them;
  2. the Kubernetes API server (tests/kube/fake_apiserver.py) stops answering,
     its watch history is compacted while changes are made, and it comes back:
     meshd relists (410 Gone), every change is applied exactly once
     (pilot_k8s_cfg_events, /debug/configz, the proxy's routes);
  3. upstreams that reset, refuse, stall or answer garbage: meshproxy answers
     as Envoy's router does (503 UC, 503 UF,URX, 504 UT, 502 UPE; "retried and
     the latest reset reason" once retried), retries per policy, and holds no
     file descriptor afterwards;
  4. a CA outage longer than half a certificate's life (a TCP relay in front
     of meshd's CA port is cut): the sidecars keep serving with their
     certificate, retry, and take a new one once the CA is back; past expiry
     the old certificate stays installed (as Envoy keeps an expired SDS
     secret) and handshakes fail, /ready stays LIVE, until the CA answers;
  5. the CA directory's disk full (a tmpfs of a few pages; root only): meshd
     says which file and why and exits non-zero without leaving half a CA
     behind, starts once space is back; a running meshd whose CA directory
     fills keeps serving and signing;
  6. 10,000 idle connections to each listener of meshd and meshproxy: both
     stay up and keep serving /ready, the health probe and traffic (fd use
     bounded by a connection cap: an expected failure until the caps land);
  7. a proxy sent a 100 MB xDS message (a relay between meshproxy and meshd
     injects it): refused with RESOURCE_EXHAUSTED, the last good config kept,
     traffic served, the next stream syncs again.

Environment: MESH_CHAOS_API_OUTAGE (seconds the API server is down, 3),
MESH_CHAOS_IDLE_CONNS (idle connections per listener, 10000).
"""
import http.client
import json
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

from meshhttp import NS, Backend, Sidecar, fqdn, service_yaml, slow
from meshtest import Meshd, free_port, wait_for

WEB_IP = "127.0.0.3"


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def certs(sidecar):
    return json.loads(sidecar.admin("/certs")[1])


def leaf(sidecar):
    c = certs(sidecar)["certificates"]
    return c[0]["cert_chain"][0] if c else None


def synced(meshd, node_id, types=("lds", "rds", "cds", "eds")):
    """The proxy's stream in meshd's /debug/syncz with every type ACKed (SYNCED)."""
    streams = [x for x in meshd.json("/debug/syncz") if x.get("proxy") == node_id]
    return bool(streams) and all(streams[0]["types"].get(t, {}).get("state") == "SYNCED" for t in types)


def pick_port(ip):
    """A port free on 127.0.0.1 (the app) and on ip (the sidecar's inbound)."""
    for _ in range(50):
        p = free_port()
        s = socket.socket()
        try:
            s.bind((ip, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no port free on both addresses")


def web_service(port):
    """web.demo:PORT on WEB_IP, a workload of service account web that speaks mTLS."""
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(port)d, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: %(ns)s}
spec:
  address: %(ip)s
  ports: {http: %(port)d}
  serviceAccount: web
  labels: {app: web, security.istio.io/tlsMode: istio}
""" % {"ns": NS, "host": fqdn("web"), "port": port, "ip": WEB_IP}


# a new upstream connection (so a new TLS handshake) per request
ONE_REQUEST_PER_CONNECTION = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: %s}
spec:
  host: %s
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 1}}
    tls: {mode: ISTIO_MUTUAL}
""" % (NS, fqdn("web"))


class Relay:
    """A TCP relay 127.0.0.1:port -> target that can be cut (every
    connection closed, new ones closed at once) and restored."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.up = True
        self.accepted = 0
        self.lock = threading.Lock()
        self.socks = set()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                up = self.up
            if not up:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.socks.update((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_RDWR)  # the other pipe ends too, and closes b
        except OSError:
            pass
        with self.lock:
            self.socks.discard(a)
        a.close()

    def cut(self):
        with self.lock:
            self.up = False
            socks, self.socks = self.socks, set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self):
        with self.lock:
            self.up = True

    def stop(self):
        self.cut()
        self.lsock.close()
        self.thread.join(10)


class MtlsMesh:
    """meshd with its CA, a client sidecar and a web sidecar in front of an
    app, as test_mesh_mtls.py: client --> client sidecar ==mTLS==> web
    sidecar (WEB_IP:port) --> app (127.0.0.1:port).  relay=True: the sidecars
    ask for certificates through self.relay (a Relay to meshd's CA port)."""

    def __init__(self, cert_ttl="60s", extra_files=None, relay=False):
        self.tmp = tempfile.mkdtemp(prefix="mesh-chaos-")
        self.port = pick_port(WEB_IP)
        self.app = Backend("web", "127.0.0.1", port=self.port)
        self.ca_dir = os.path.join(self.tmp, "ca")
        tokens = os.path.join(self.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\nweb-token %s web\n" % (NS, NS))
        for name in ("client", "web"):
            with open(os.path.join(self.tmp, name + ".token"), "w") as f:
                f.write(name + "-token\n")
        files = {"web.yaml": web_service(self.port)}
        files.update(extra_files or {})
        self.meshd = Meshd(files, extra_args=["--ca-dir", self.ca_dir, "--ca-token-file", tokens])
        self.sidecars = {}
        self.relay = None
        try:
            self.meshd.start()
            if relay:
                self.relay = Relay(self.meshd.secure_port)
            ca_port = self.relay.port if relay else self.meshd.secure_port

            def idargs(name):
                return ["--ca-addr", "127.0.0.1:%d" % ca_port, "--root-cert",
                        os.path.join(self.ca_dir, "root-cert.pem"),
                        "--token-file", os.path.join(self.tmp, name + ".token"), "--cert-ttl", cert_ttl,
                        "--service-account", name]
            self.client = self.sidecars["client"] = Sidecar(self.meshd, "client", "app=client", args=idargs("client"))
            self.web = self.sidecars["web"] = Sidecar(self.meshd, "web-1", "app=web", ip=WEB_IP,
                                                      args=idargs("web") + ["--inbound-addr",
                                                                            "%s:%d" % (WEB_IP, self.port)])
            for s in self.sidecars.values():
                s.wait_ready()
            for s in self.sidecars.values():
                wait_for(lambda: certs(s)["generation"] >= 1, timeout=60 if slow() else 20,
                         what="a workload certificate: %s" % s.admin("/certs")[1])
        except BaseException:
            self.finish()
            raise

    def url(self, path="/"):
        return "http://%s:%d%s" % (fqdn("web"), self.port, path)

    def get(self, path="/", timeout=20):
        return self.client.request(self.url(path), timeout=timeout)

    def finish(self):
        bad = {}
        for key, s in self.sidecars.items():
            rc = s.stop()
            if rc != 0:
                bad[key] = (rc, s.logs())
        if self.relay:
            self.relay.stop()
        self.meshd.finish(self.app)
        for s in self.sidecars.values():
            s.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("meshproxy exited non-zero: %r" % bad)


class Traffic:
    """Requests through the client sidecar, one after another, from a thread,
    until stop() or `limit` requests; keeps every failure."""

    def __init__(self, mesh, limit=3000, pause=0.01):
        self.mesh = mesh
        self.limit = limit
        self.pause = pause
        self.ok = 0
        self.failures = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.done.is_set() and n < self.limit:
            n += 1
            try:
                r = self.mesh.get("/steady/%d" % n)
                if r.status == 200 and r.backend == "web":
                    self.ok += 1
                else:
                    self.failures.append((n, r.status, r.headers, r.body[:200]))
            except OSError as e:
                self.failures.append((n, "error", repr(e)))
            time.sleep(self.pause)

    def stop(self):
        self.done.set()
        self.thread.join(60)
        return self.ok, self.failures


# ---------------------------------------------------------------- 1. meshd killed

class MeshdKilledTest(unittest.TestCase):
    def test_meshd_sigkill_restart_under_traffic(self):
        mesh = MtlsMesh()
        try:
            self.assertEqual(mesh.get("/first").status, 200)
            serials = {k: leaf(s)["serial_number"] for k, s in mesh.sidecars.items()}
            traffic = Traffic(mesh)
            wait_for(lambda: traffic.ok >= 20, what="traffic flowing")
            old_pid = mesh.meshd.proc.pid
            mesh.meshd.proc.kill()
            mesh.meshd.proc.wait()
            mesh.meshd.log.close()
            # meshd gone: the sidecars keep their configuration and serve
            before = traffic.ok
            wait_for(lambda: traffic.ok >= before + 20, what="traffic served while meshd is down")
            for s in mesh.sidecars.values():
                self.assertEqual(s.admin("/ready")[0], 200)
            mesh.meshd.start()
            self.assertNotEqual(mesh.meshd.proc.pid, old_pid)

            # both sidecars reconnect and ACK the new meshd
            wait_for(lambda: synced(mesh.meshd, mesh.client.node_id) and synced(mesh.meshd, mesh.web.node_id),
                     timeout=60, interval=0.2, what="both sidecars synced with the new meshd")
            # an edit after the restart reaches the client sidecar
            mesh.meshd.write("vs.yaml", """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %s}
spec:
  hosts: [%s]
  http:
  - headers: {response: {add: {x-after-restart: "yes"}}}
    route: [{destination: {host: %s}}]
""" % (NS, fqdn("web"), fqdn("web")))
            wait_for(lambda: mesh.get("/edit").headers.get("x-after-restart") == "yes", timeout=30,
                     interval=0.2, what="the edit made after the restart applied")
            before = traffic.ok
            wait_for(lambda: traffic.ok >= before + 20, what="traffic after the restart")
            ok, failures = traffic.stop()
            self.assertEqual(failures, [], "requests failed across meshd's SIGKILL and restart")
            self.assertGreater(ok, 60)
            # the same root (--ca-dir kept it): the certificates were not replaced by the restart
            for k, s in mesh.sidecars.items():
                self.assertEqual(certs(s)["generation"], 1, k)
                self.assertEqual(leaf(s)["serial_number"], serials[k], k)
        finally:
            mesh.finish()


# ---------------------------------------------------------------- 3. bad upstreams

class BadUpstream:
    """A TCP server on ip:random port that reads a request head and then
    misbehaves: "reset" (RST), "stall" (never answers; closed at stop) or
    "garbage" (bytes that are not HTTP).  Counts the requests it saw."""

    def __init__(self, name, mode, ip="127.0.0.1"):
        self.name, self.mode, self.ip, self.version = name, mode, ip, "v1"
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.count = 0
        self.held = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            c.settimeout(30)
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    c.close()
                    return
                buf += d
        except OSError:
            c.close()
            return
        with self.lock:
            self.count += 1
        if self.mode == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif self.mode == "garbage":
            try:
                c.sendall(b"\x00\x01GARBAGE \xff\xfe not http\r\n\r\n")
            except OSError:
                pass
            c.close()
        else:
            with self.lock:
                self.held.append(c)

    def stop(self):
        self.lsock.close()
        with self.lock:
            for c in self.held:
                c.close()
            self.held = []


BAD_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  http:
  - %(rule)s
    route: [{destination: {host: %(host)s}}]
"""


class BadUpstreamTest(unittest.TestCase):
    """One sidecar; each service's only endpoint misbehaves in one way."""

    RULES = {
        # Istio's default retry policy (no VirtualService retries): reset is not in its retryOn
        "reset": None,
        "resetretry": "retries: {attempts: 2, retryOn: reset}",
        "refused": None,
        "stall": "timeout: 0.5s",
        "garbage": None,
        "garbageretry": "retries: {attempts: 2, retryOn: reset}",
    }

    # (status, flags, body, attempts per request), as Envoy's router answers
    WANT = {
        "reset": (503, "UC", "upstream connect error or disconnect/reset before headers. "
                  "reset reason: connection termination", 1),
        "resetretry": (503, "UC,URX", "upstream connect error or disconnect/reset before headers. "
                       "retried and the latest reset reason: connection termination", 3),
        # Istio's default retries: connect-failure is retried twice
        "refused": (503, "UF,URX", "upstream connect error or disconnect/reset before headers. "
                    "retried and the latest reset reason: connection failure", 0),
        "stall": (504, "UT", "upstream request timeout", 1),
        # a response the codec cannot parse: Envoy's ProtocolError reset, 502 UPE
        "garbage": (502, "UPE", "upstream connect error or disconnect/reset before headers. "
                    "reset reason: protocol error", 1),
        "garbageretry": (502, "URX,UPE", "upstream connect error or disconnect/reset before headers. "
                         "retried and the latest reset reason: protocol error", 3),
    }

    @classmethod
    def setUpClass(cls):
        cls.up = {
            "reset": BadUpstream("reset", "reset"),
            "resetretry": BadUpstream("resetretry", "reset"),
            "stall": BadUpstream("stall", "stall"),
            "garbage": BadUpstream("garbage", "garbage"),
            "garbageretry": BadUpstream("garbageretry", "garbage"),
        }
        # refused: a port nothing listens on
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        cls.dead_port = dead.getsockname()[1]
        dead.close()
        refused = BadUpstream("refused", "reset")
        refused.stop()
        refused.port = cls.dead_port
        cls.up["refused"] = refused
        files = {}
        for name, u in cls.up.items():
            files[name + ".yaml"] = service_yaml(name, [u])
            if cls.RULES[name]:
                files[name + "-vs.yaml"] = BAD_VS % {"name": name, "ns": NS, "host": fqdn(name),
                                                     "rule": cls.RULES[name]}
        cls.meshd = Meshd(files)
        cls.px = None
        try:
            cls.meshd.start()
            cls.px = Sidecar(cls.meshd).wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.px.stop() if cls.px else 0
        logs = cls.px.logs() if cls.px else ""
        cls.meshd.finish(*cls.up.values())
        if cls.px:
            cls.px.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s\n%s" % (rc, logs))

    def alog(self, path):
        def line():
            got = [x for x in self.px.access_log() if (" %s " % path) in x]
            return got[-1] if got else None
        return wait_for(line, what="the access log line for " + path)

    def flags_of(self, path):
        """(status, response flags) of the access log line of path (Envoy's default format)."""
        tail = self.alog(path).split('" ', 1)[1].split()
        return int(tail[0]), tail[1]

    def test_bad_upstreams(self):
        pid = self.px.proc.pid
        # warm: a first request to each cluster so the baseline holds what steady state holds
        for name in self.up:
            self.px.get(name, "/warm", timeout=20)
        time.sleep(0.2)
        before = fd_count(pid)
        seen = {}
        for round_ in range(5):
            for name in self.up:
                path = "/%s/%d" % (name, round_)
                r = self.px.get(name, path, timeout=20)
                seen[name] = (r.status, self.flags_of(path), r.body)
        self.assertIsNone(self.px.proc.poll(), "meshproxy died")
        for name, (status, flags, body, attempts) in self.WANT.items():
            self.assertEqual(seen[name], (status, (status, flags), body.encode()), name)
            self.assertEqual(self.up[name].count, 6 * attempts, name)
        self.assertEqual(self.px.admin("/ready")[0], 200)
        for name in ("stall",):
            self.up[name].stop()  # close the stalled connections: the proxy must let them go

        def settled():
            n = fd_count(pid)
            return n if n <= before else None
        wait_for(settled, timeout=30, what="meshproxy's fds back to %d (now %d)" % (before, fd_count(pid)))


# ---------------------------------------------------------------- 7. a 100 MB snapshot

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"


def pb_bytes(field, data):
    """One length-delimited protobuf field."""
    key, n, out = field << 3 | 2, len(data), bytearray()
    out.append(key)
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + data


class AdsRelay:
    """A gRPC server (python3-grpcio) relaying meshproxy's ADS streams to
    meshd byte for byte; inject(msg) sends msg to every open stream as if
    meshd had sent it."""

    def __init__(self, meshd_port):
        self.upstream = grpc.insecure_channel("127.0.0.1:%d" % meshd_port,
                                              options=[("grpc.max_receive_message_length", -1)])
        self.streams = []
        self.opened = 0
        self.lock = threading.Lock()
        relay = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                if not details.method.startswith(ADS):
                    return None
                method = details.method
                return grpc.stream_stream_rpc_method_handler(
                    lambda it, ctx: relay._relay(method, it, ctx))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_send_message_length", -1)])
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _relay(self, method, requests, ctx):
        import queue
        q = queue.Queue()
        call = self.upstream.stream_stream(method)(requests)

        def pump():
            try:
                for m in call:
                    q.put(m)
            except grpc.RpcError:
                pass
            q.put(None)
        threading.Thread(target=pump, daemon=True).start()
        with self.lock:
            self.streams.append(q)
            self.opened += 1
        try:
            while ctx.is_active():
                try:
                    m = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if m is None:
                    break
                yield m
        finally:
            call.cancel()
            with self.lock:
                self.streams.remove(q)

    def inject(self, msg):
        with self.lock:
            for q in self.streams:
                q.put(msg)
            return len(self.streams)

    def stop(self):
        self.server.stop(None)
        self.upstream.close()


class HugeSnapshotTest(unittest.TestCase):
    def test_100mb_snapshot_refused_last_good_kept(self):
        web = Backend("web", "127.0.0.2")
        meshd = Meshd({"web.yaml": service_yaml("web", [web])})
        relay = px = None
        try:
            meshd.start()
            relay = AdsRelay(meshd.xds_port)

            class Via:
                xds_port = relay.port
            px = Sidecar(Via).wait_ready()
            self.assertEqual(px.get("web", "/before").backend, "web")
            def hosts():
                """cluster::host of every line of /clusters (the counters aside)."""
                return {tuple(x.split("::")[:2]) for x in px.clusters().splitlines()}
            clusters_before = hosts()
            # a Cluster response of 100 MB, as a control plane could send
            huge = pb_bytes(4, b"type.googleapis.com/envoy.config.cluster.v3.Cluster") + \
                pb_bytes(5, b"huge") + pb_bytes(1, b"x" * (100 << 20))
            self.assertEqual(relay.inject(huge), 1)
            huge = None
            wait_for(lambda: "larger than max" in px.logs(), timeout=60,
                     what="meshproxy refusing the 100 MB message")
            self.assertIn("received message larger than max (104857", px.logs())
            self.assertIn("keeping the last configuration", px.logs())
            # still up, still LIVE, same clusters, still serving
            self.assertIsNone(px.proc.poll())
            self.assertEqual(px.admin("/ready")[0], 200)
            self.assertEqual(px.get("web", "/after").backend, "web")
            self.assertEqual(hosts(), clusters_before)
            # it reconnects, and the next stream syncs: an edit reaches it
            wait_for(lambda: relay.opened >= 2, timeout=60, what="a new ADS stream")
            meshd.write("vs.yaml", BAD_VS % {"name": "web", "ns": NS, "host": fqdn("web"),
                                             "rule": "headers: {response: {add: {x-resynced: \"yes\"}}}"})
            wait_for(lambda: px.get("web", "/edit").headers.get("x-resynced") == "yes", timeout=60,
                     interval=0.2, what="an edit after the refused message applied")
        finally:
            rc = px.stop() if px else 0
            logs = px.logs() if px else ""
            if relay:
                relay.stop()
            meshd.finish(web)
            if px:
                px.cleanup()
        self.assertEqual(rc, 0, logs)


# ---------------------------------------------------------------- 2. the API server away

# seconds the fake API server stays down (the issue says 30; what matters is
# that every watch breaks and the history is compacted, so meshd must relist)
API_OUTAGE_SECONDS = float(os.environ.get("MESH_CHAOS_API_OUTAGE", "3"))


class ApiServerOutageTest(unittest.TestCase):
    def test_outage_with_changes_relist_applies_each_once(self):
        import meshtest
        from test_kube import (FakeApi, HOST, destination_rule, namespace, only, pod, service, slice_,
                               virtual_service, VS_PATH)
        api = FakeApi(tokens=("t-meshd", "t-test"))
        v1, v2 = meshtest.Backend("v1"), meshtest.Backend("v2")
        meshd = client = None
        try:
            for obj in (namespace("test"), service(), pod("v1"), pod("v2"), slice_("v1", v1.port),
                        slice_("v2", v2.port), destination_rule(), virtual_service("v1"),
                        virtual_service("v1", name="gone")):
                api.apply(obj)
            meshd = Meshd(kubeconfig=api.kubeconfig("t-meshd")).start()
            client = meshtest.XdsClient(meshd.bootstrap(namespace="test"), "xds:///%s:7070" % HOST)

            def routes(pred, what):
                return wait_for(lambda: pred(client.call(10)), timeout=60, interval=0.2, what=what)
            routes(lambda c: only(c, "v1"), "v1")
            wait_for(lambda: api.control("GET", "state")["activeWatches"] >= 10, what="every watch open")

            def events():
                out = {}
                for line in meshd.http("/metrics")[1].splitlines():
                    for fam in ("pilot_k8s_cfg_events", "pilot_k8s_reg_events"):
                        if line.startswith(fam + "{"):
                            labels, _, v = line.rpartition(" ")
                            out[labels] = float(v)
                return out

            def delta(after, before):
                return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)
                        if after.get(k, 0) != before.get(k, 0)}
            before = events()
            api.control("POST", "down")
            # while it is away: an update, a delete, an add, an endpoint change
            api.apply(virtual_service("v2"))
            api.delete("networking.istio.io/v1", "VirtualService", "gone")
            fresh = virtual_service("v1", name="fresh")
            fresh["spec"]["hosts"] = ["fresh.test.svc.cluster.local"]
            api.apply(fresh)
            api.apply(slice_("v1", v1.port, ready=False))
            api.control("POST", "compact")  # the watches cannot resume: 410 Gone, relist
            api.clear_requests()
            deadline = time.monotonic() + API_OUTAGE_SECONDS
            while time.monotonic() < deadline:
                # meshd keeps serving what it had
                self.assertTrue(only(client.call(5), "v1"))
                self.assertEqual(meshd.http("/ready")[0], 200)
                time.sleep(0.3)
            self.assertEqual(delta(events(), before), {})
            api.control("POST", "up")
            routes(lambda c: only(c, "v2"), "the VirtualService updated during the outage")
            want = {
                'pilot_k8s_cfg_events{event="update",type="VirtualService"}': 1,
                'pilot_k8s_cfg_events{event="delete",type="VirtualService"}': 1,
                'pilot_k8s_cfg_events{event="add",type="VirtualService"}': 1,
                'pilot_k8s_reg_events{event="update",type="EndpointSlice"}': 1,
            }
            wait_for(lambda: delta(events(), before) == want, timeout=60,
                     what="each change once (%r)" % delta(events(), before))
            self.assertGreaterEqual(len([r for r in api.requests() if r["path"] == VS_PATH and
                                         r["query"].get("watch") != "true"]), 1, "no relist of VirtualServices")
            # a sentinel after the relist: events are in order, so a change applied
            # twice would be counted before the sentinel is
            sentinel = virtual_service("v1", name="sentinel")
            sentinel["spec"]["hosts"] = ["sentinel.test.svc.cluster.local"]
            api.apply(sentinel)
            want['pilot_k8s_cfg_events{event="add",type="VirtualService"}'] = 2
            wait_for(lambda: delta(events(), before) == want, timeout=60,
                     what="the sentinel alone (%r)" % delta(events(), before))
            def names():
                return sorted(o["name"] for o in meshd.json("/debug/configz")["objects"]
                              if o.get("kind") == "VirtualService")
            wait_for(lambda: names() == ["echo", "fresh", "sentinel"], timeout=60,
                     what="/debug/configz's VirtualServices (%r)" % names())
            self.assertTrue(only(client.call(20), "v2"))
        finally:
            if client:
                client.close()
            rc = meshd.stop() if meshd else 0
            logs = meshd.logs() if meshd else ""
            if meshd:
                meshd.cleanup()
            v1.stop()
            v2.stop()
            api.stop()
        self.assertEqual(rc, 0, logs)


# ---------------------------------------------------------------- 4. CA outage

CERT_TTL_S = 10


class CaOutageTest(unittest.TestCase):
    """Both sidecars reach the CA through a Relay that is cut for longer
    than their certificates live.  DestinationRule maxRequestsPerConnection 1:
    every request is a new mTLS handshake, so each one tests the
    certificates installed at that moment."""

    def left(self, sidecar):
        return leaf(sidecar)["seconds_until_expiration"]

    def test_ca_outage_past_half_life_and_past_expiry(self):
        mesh = MtlsMesh(cert_ttl="%ds" % CERT_TTL_S, relay=True,
                        extra_files={"dr.yaml": ONE_REQUEST_PER_CONNECTION})
        try:
            sides = mesh.sidecars
            wait_for(lambda: mesh.get("/warm").status == 200, what="mTLS through both sidecars")
            # start from fresh certificates: the outage begins right after a renewal
            gen = {k: certs(s)["generation"] for k, s in sides.items()}
            wait_for(lambda: all(certs(s)["generation"] > gen[k] for k, s in sides.items()), timeout=60,
                     what="a renewal on both sidecars")
            mesh.relay.cut()
            gen = {k: certs(s)["generation"] for k, s in sides.items()}
            serial = {k: leaf(s)["serial_number"] for k, s in sides.items()}
            served_valid = 0
            # before expiry: every request is served with the certificates held
            while True:
                r = mesh.get("/outage/%d" % served_valid)
                if min(self.left(s) for s in sides.values()) < 1:
                    break  # one expired meanwhile: this request proves nothing
                self.assertEqual(r.status, 200, r)
                served_valid += 1
                if served_valid > 2000:
                    self.fail("the certificates never expired")
                time.sleep(0.05)
            # past half their life the sidecars asked, failed and keep retrying
            for k, s in sides.items():
                self.assertIn("certificate request failed", s.logs(), k)
                self.assertEqual(certs(s)["generation"], gen[k], k)
            self.assertGreater(served_valid, 0)
            # past expiry: the expired certificate stays installed (as Envoy keeps
            # the last SDS secret), the peer refuses the handshake: 503 UF, both
            # proxies up and LIVE
            wait_for(lambda: all(self.left(s) < 0 for s in sides.values()), timeout=30,
                     what="both certificates expired")
            r = mesh.get("/expired")
            self.assertEqual(r.status, 503, r)
            self.assertIn(b"upstream connect error", r.body)
            line = wait_for(lambda: [x for x in mesh.client.access_log() if " /expired " in x], what="access log")
            self.assertIn(" 503 UF", line[-1])
            for k, s in sides.items():
                self.assertIsNone(s.proc.poll(), k)
                self.assertEqual(s.admin("/ready")[0], 200, k)
                self.assertEqual(leaf(s)["serial_number"], serial[k], k)
            # the CA back: new certificates, traffic again
            mesh.relay.restore()
            wait_for(lambda: all(certs(s)["generation"] > gen[k] for k, s in sides.items()), timeout=60,
                     interval=0.2, what="new certificates once the CA is back")
            for k, s in sides.items():
                self.assertNotEqual(leaf(s)["serial_number"], serial[k], k)
            wait_for(lambda: mesh.get("/back").status == 200, timeout=30, what="traffic with the new certificates")
        finally:
            mesh.finish()


# ---------------------------------------------------------------- 5. CA directory's disk full

def can_mount():
    if os.geteuid() != 0:
        return False, "needs root to mount a small tmpfs"
    if not shutil.which("mount"):
        return False, "mount is not installed"
    return True, ""


class CaDiskFullTest(unittest.TestCase):
    def setUp(self):
        ok, why = can_mount()
        if not ok:
            self.skipTest(why)
        self.tmp = tempfile.mkdtemp(prefix="mesh-chaos-disk-")
        self.ca = os.path.join(self.tmp, "ca")
        os.mkdir(self.ca)
        # 3 pages: the three certificate files fit, the key does not
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k,mode=0700", "tmpfs", self.ca],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode(errors="replace"))

    def tearDown(self):
        subprocess.run(["umount", "-l", self.ca], capture_output=True, timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def resize(self, size):
        subprocess.run(["mount", "-o", "remount,size=%s" % size, self.ca], check=True, timeout=30)

    def fill(self):
        """Fill the CA directory's file system up to ENOSPC."""
        fd = os.open(os.path.join(self.ca, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)

    def test_ca_dir_disk_full(self):
        tokens = os.path.join(self.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("client-token %s client\n" % NS)
        token = os.path.join(self.tmp, "client.token")
        with open(token, "w") as f:
            f.write("client-token\n")
        web = Backend("web", "127.0.0.2")
        meshd = Meshd({"web.yaml": service_yaml("web", [web])},
                      extra_args=["--ca-dir", self.ca, "--ca-token-file", tokens])
        px = None
        try:
            # a first start on a full disk: it says which file and why, exits
            # non-zero, and leaves no half CA (certificates without their key) behind
            meshd.start(wait_ready=False)
            rc = meshd.proc.wait(timeout=60)
            meshd.log.close()
            self.assertNotEqual(rc, 0, meshd.logs())
            self.assertIn("CA: cannot write %s/ca-key.pem: No space left on device" % self.ca, meshd.logs())
            self.assertEqual(os.listdir(self.ca), [])
            # space back: it starts, with a CA it generated and stored
            self.resize("1m")
            meshd.start()
            self.assertEqual(sorted(os.listdir(self.ca)),
                             ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"])
            # the disk fills while it runs: it keeps serving and signing
            self.fill()
            self.assertEqual(meshd.http("/ready")[0], 200)
            px = Sidecar(meshd, args=["--ca-addr", "127.0.0.1:%d" % meshd.secure_port, "--root-cert",
                                      os.path.join(self.ca, "root-cert.pem"), "--token-file", token,
                                      "--service-account", "client"]).wait_ready()
            wait_for(lambda: certs(px)["generation"] >= 1, timeout=60, what="a certificate signed on a full disk")
            self.assertEqual(px.get("web", "/full").backend, "web")
            # restarted on the full disk: the CA it stored is loaded (nothing to write)
            self.assertEqual(meshd.stop(), 0, meshd.logs())
            meshd.start()
            self.assertIn("plug-in CA loaded from %s" % self.ca, meshd.logs())
            os.unlink(os.path.join(self.ca, "filler"))
            self.assertEqual(meshd.http("/ready")[0], 200)
        finally:
            rc = px.stop() if px else 0
            logs = px.logs() if px else ""
            meshd.finish(web)
            if px:
                px.cleanup()
        self.assertEqual(rc, 0, logs)


# ---------------------------------------------------------------- 6. 10,000 idle connections

IDLE_CONNS = int(os.environ.get("MESH_CHAOS_IDLE_CONNS", "10000"))
FLOOD_IP = "127.0.0.9"  # the idle clients' address: probes come from 127.0.0.1


def settle(pid, limit=40, quiet=4):
    """Poll pid's fd count until it stays put for `quiet` polls (0.25 s apart) or
    `limit` polls pass; the highest count seen."""
    peak, last, same = 0, -1, 0
    for _ in range(limit):
        n = fd_count(pid)
        peak = max(peak, n)
        same = same + 1 if n == last else 0
        if same >= quiet:
            break
        last = n
        time.sleep(0.25)
    return peak


def idle_flood(port, n):
    """n connections from FLOOD_IP to 127.0.0.1:port that never send a byte
    (non-blocking connects: a full accept queue only delays some of them)."""
    socks = []
    for _ in range(n):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.bind((FLOOD_IP, 0))
            c.connect_ex(("127.0.0.1", port))
        except OSError:
            c.close()
            break
        socks.append(c)
    return socks


def close_all(socks):
    for c in socks:
        try:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
        except OSError:
            pass
        c.close()


class IdleFloodTest(unittest.TestCase):
    PEAKS = {}  # listener -> (process, fds before, peak fds during its flood)

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = IDLE_CONNS + 1024
        if hard != resource.RLIM_INFINITY and hard < want:
            raise unittest.SkipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.web = Backend("web", "127.0.0.2")
        cls.meshd = Meshd({"web.yaml": service_yaml("web", [cls.web])})
        cls.px = None
        try:
            cls.meshd.start()
            cls.health = free_port()
            cls.px = Sidecar(cls.meshd, args=["--health-addr", "127.0.0.1:%d" % cls.health]).wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.px.stop() if cls.px else 0
        logs = cls.px.logs() if cls.px else ""
        cls.meshd.finish(cls.web)
        if cls.px:
            cls.px.cleanup()
        if rc != 0:
            raise AssertionError("meshproxy exited %s\n%s" % (rc, logs))

    def listeners(self):
        m, p = self.meshd, self.px
        return [("meshd xds 15010", m.proc, m.xds_port), ("meshd secure 15012", m.proc, m.secure_port),
                ("meshd http 15014", m.proc, m.http_port), ("meshd webhook 15017", m.proc, m.webhook_port),
                ("meshproxy outbound 15001", p.proc, p.out_port), ("meshproxy inbound 15006", p.proc, p.in_port),
                ("meshproxy health 15021", p.proc, self.health), ("meshproxy admin 15000", p.proc, p.admin_port)]

    def served(self, what, through=True):
        """Everything still answers, from 127.0.0.1: meshd's /ready and a debug view,
        the sidecar's /ready, its health port, and (through) a request through it."""
        self.assertIsNone(self.meshd.proc.poll(), "meshd died: " + what)
        self.assertIsNone(self.px.proc.poll(), "meshproxy died: " + what)
        self.assertEqual(self.meshd.http("/ready")[0], 200, what)
        wait_for(lambda: synced(self.meshd, self.px.node_id), what="the sidecar SYNCED: " + what)
        self.assertEqual(self.px.admin("/ready")[0], 200, what)
        c = http.client.HTTPConnection("127.0.0.1", self.health, timeout=20)
        try:
            c.request("GET", "/healthz/ready")
            self.assertEqual(c.getresponse().status, 200, what)
        except OSError as e:
            raise AssertionError("health port: %r: %s" % (e, what))
        finally:
            c.close()
        if through:
            self.assertEqual(self.px.get("web", "/flood").backend, "web", what)

    def test_1_idle_connections_on_every_listener(self):
        self.served("before")
        for name, proc, port in self.listeners():
            before = fd_count(proc.pid)
            socks = idle_flood(port, IDLE_CONNS)
            try:
                self.assertEqual(len(socks), IDLE_CONNS, name)
                peak = settle(proc.pid)
                type(self).PEAKS[name] = (before, peak)
                # a flood past meshproxy's global connection cap ((RLIMIT_NOFILE -
                # 512) / 2 by default, under IDLE_CONNS here) holds every data-path
                # slot: new connections, the application's too, are closed at accept
                # and counted, as Envoy's global_downstream_max_connections does;
                # the probe and admin ports stay outside that cap
                data = name.startswith(("meshproxy outbound", "meshproxy inbound"))
                self.served("%d idle connections on %s" % (len(socks), name), through=not data)
                if data:
                    st = self.px.admin("/stats")[1]
                    st = st.decode() if isinstance(st, bytes) else st
                    n = sum(int(v) for v in re.findall(r"^listener\.\S+\.downstream_global_cx_overflow: (\d+)$", st, re.M))
                    self.assertGreater(n, 0, "no global overflow counted: " + name)
            finally:
                close_all(socks)
            # the idle connections closed: the process lets their fds go (gRPC core
            # takes its time on meshd's ports: 13 s for 10,000 on a loaded 2-core
            # machine, 90 s under ASan)
            wait_for(lambda: fd_count(proc.pid) <= before + 16, timeout=300, interval=0.25,
                     what="%s's fds back near %d (now %d)" % (name, before, fd_count(proc.pid)))
        self.served("after")
        print("fds before/peak per listener: %r" % self.PEAKS)

    def test_2_fds_bounded_by_connection_caps(self):
        """Each listener holds at most its connection cap, not every idle
        connection: meshproxy's data listeners its global cap, its admin and
        probe ports 128, meshd's debug and webhook ports theirs.  meshd's gRPC
        ports 15010/15012 have no count cap (gRPC core 1.51 offers none; README
        "Limits"): their idle connections are closed by the handshake and idle
        deadlines instead (test_xds_slow_clients.py), so they are left out."""
        if not self.PEAKS:
            self.skipTest("test_1 did not run")
        cap = (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 512) // 2 + 64
        over = {k: v for k, v in self.PEAKS.items()
                if not k.startswith(("meshd xds", "meshd secure")) and v[1] - v[0] > min(cap, IDLE_CONNS - 1)}
        self.assertEqual(over, {})


if __name__ == "__main__":
    unittest.main()
