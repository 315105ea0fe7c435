"""meshproxy's limits against slow and greedy clients (issue 16), with the
real meshd and real sidecars on loopback:

- probes never queue behind hostile clients: a sidecar started with 512
  file descriptors (RLIMIT_NOFILE) holds 200 connections on each of its
  outbound (15001), inbound (15006) and health (15021) ports, every one
  sending a request head one byte every 2 s from 127.0.0.2 ... 127.0.0.201,
  and /healthz/ready, /stats/prometheus (15020) and the admin /ready keep
  answering 200.  Without limits the outbound and inbound connections took
  every descriptor (accept: EMFILE on every port) and the health port's 128
  slots; with them the engine's listeners stop at the global connection
  limit ((512 - 512) / 2, at least 64) and the health port makes room by
  closing the oldest connection that is not being answered, and answers
  a request still unfinished 10 s after its first byte with 408;
- the per-listener (--max-connections) and global
  (--global-downstream-max-connections) limits close a connection past
  them at accept and count it (listener.ADDRESS.downstream_cx_overflow,
  downstream_global_cx_overflow);
- a head sent a byte at a time is answered 408 "request header timeout"
  once --request-headers-timeout has passed since its first byte, and
  counted (envoy_http_downstream_rq_header_timeout); a body sent a byte at
  a time gets 408 once --request-timeout has passed since the request
  began (envoy_http_downstream_rq_timeout);
- an xDS message larger than --xds-max-message-bytes resets the stream,
  the last good configuration keeps serving, and a later one that fits is
  taken.

Counts are bounded; nothing asserts on timing (deadlines are set small by
flag and the outcome is asserted, every wait is bounded).
"""
import resource
import socket
import subprocess
import threading
import unittest

from meshhttp import MESHPROXY, Backend, MeshCase, Sidecar, fqdn, service_yaml, slow
from meshtest import free_port, wait_for

HOSTILE = 200  # connections per attacked port
ECHO = "http://%s:8080/" % fqdn("echo")


def raise_nofile(want=4096):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = want if hard == resource.RLIM_INFINITY else min(hard, want)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Trickle:
    """n connections to 127.0.0.1:port from 127.0.0.2 ..., each sending the
    start of a request head and then one byte every `every` seconds from
    one thread, until stop()."""

    def __init__(self, port, n, every=2.0):
        self.socks = []
        self.every = every
        self.done = threading.Event()
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.%d" % (2 + i % 200), 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            except OSError:
                pass  # refused or closed at once: a limit doing its job
            self.socks.append(s)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(self.every):
            for s in self.socks:
                try:
                    s.send(b"a", socket.MSG_DONTWAIT)
                except OSError:
                    pass

    def stop(self):
        self.done.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def closed_by_peer(s, timeout=5):
    """True when the server closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def http_get(port, path, timeout=10):
    """One GET on a new connection from 127.0.0.1: the status code, or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        s.close()
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def stat(px, name):
    return int(px.stats().get(name, "0") or 0)


class MeshproxyLimitsTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"echo": Backend("echo")}

    @classmethod
    def config(cls, b):
        return {"echo.yaml": service_yaml("echo", [b["echo"]])}

    @classmethod
    def setUpClass(cls):
        raise_nofile()
        super().setUpClass()
        try:
            # the probe sidecar: 512 descriptors, its status and health ports on
            cls.status_port, cls.health_port = free_port(), free_port()
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
            try:
                cls.probe = Sidecar(cls.meshd, "probe", "app=probe",
                                    args=("--status-addr", "127.0.0.1:%d" % cls.status_port,
                                          "--health-addr", "127.0.0.1:%d" % cls.health_port))
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            cls.sidecars["probe"] = cls.probe
            # small limits, set by flag
            cls.tight = Sidecar(cls.meshd, "tight", "app=tight",
                                args=("--max-connections", "4", "--global-downstream-max-connections", "6",
                                      "--request-headers-timeout", "1s", "--request-timeout", "1s"))
            cls.sidecars["tight"] = cls.tight
            cls.small = Sidecar(cls.meshd, "small", "app=small", args=("--xds-max-message-bytes", "48Ki"))
            cls.sidecars["small"] = cls.small
            for s in (cls.probe, cls.tight, cls.small):
                s.wait_ready()
        except BaseException:
            cls.tearDownClass()
            raise

    def test_probes_not_starved_by_slow_clients(self):
        px = self.probe
        self.assertEqual(http_get(self.health_port, b"/healthz/ready"), 200)
        attacks = []
        try:
            for port in (px.out_port, px.in_port, self.health_port):
                attacks.append(Trickle(port, HOSTILE))
            # while 600 slow clients hold on, sending a byte every 2 s:
            # every probe and scrape is answered, from the first
            for _ in range(10):
                self.assertEqual(http_get(self.health_port, b"/healthz/ready"), 200)
            self.assertEqual(http_get(self.status_port, b"/stats/prometheus"), 200)
            self.assertEqual(http_get(self.status_port, b"/healthz/ready"), 200)
            self.assertEqual(px.admin("/ready")[0], 200)
            st = px.stats()
            overflow = sum(int(v) for k, v in st.items()
                           if k.startswith("listener.") and k.endswith(".downstream_global_cx_overflow"))
            self.assertGreater(overflow, 0, "the global connection limit refused none")
            self.assertGreater(int(st.get("listener.127.0.0.1_%d.downstream_cx_evicted" % self.health_port, 0)), 0)
            prom = px.admin("/stats/prometheus")[1]
            evicted = [line for line in prom.splitlines()
                       if line.startswith('meshproxy_admin_downstream_cx_evicted{admin_port="health"} ')]
            self.assertEqual(len(evicted), 1, prom[-2000:])
            self.assertGreater(int(evicted[0].rsplit(" ", 1)[1]), 0)
            self.assertIn("envoy_listener_downstream_global_cx_overflow{", prom)
        finally:
            for a in attacks:
                a.stop()
        self.assertEqual(http_get(self.health_port, b"/healthz/ready"), 200)
        # the proxy serves again once they are gone
        wait_for(lambda: px.get("echo").status == 200, timeout=60, what="a request through the probe sidecar")

    def test_health_port_request_deadline_408(self):
        px = self.probe
        key = "http.127.0.0.1_%d.downstream_rq_timeout" % self.health_port
        before = stat(px, key)
        s = socket.create_connection(("127.0.0.1", self.health_port), timeout=10)
        data = b""
        try:
            s.sendall(b"GET /healthz/re")
            s.settimeout(1)
            # a byte a second does not extend the 10 s deadline (ADMIN_REQUEST_MS):
            # the port answers 408 and closes, at most ~60 bytes later
            for _ in range(60 if not slow() else 300):
                try:
                    s.sendall(b"a")
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    break
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data)
        self.assertGreater(stat(px, key), before)

    def test_connection_limits_per_listener_and_global(self):
        px = self.tight
        held, extra = [], []
        out_key = "listener.127.0.0.1_%d." % px.out_port
        in_key = "listener.127.0.0.1_%d." % px.in_port
        try:
            for _ in range(4):
                held.append(socket.create_connection(("127.0.0.1", px.out_port), timeout=10))
            wait_for(lambda: stat(px, out_key + "downstream_cx_active") == 4, what="4 connections held")
            for _ in range(3):
                extra.append(socket.create_connection(("127.0.0.1", px.out_port), timeout=10))
            for s in extra:
                self.assertTrue(closed_by_peer(s, 20), "a connection past --max-connections was kept")
            self.assertGreaterEqual(stat(px, out_key + "downstream_cx_overflow"), 3)
            # two more on the inbound listener reach the global limit (6) ...
            for _ in range(2):
                held.append(socket.create_connection(("127.0.0.1", px.in_port), timeout=10))
            wait_for(lambda: stat(px, in_key + "downstream_cx_active") == 2, what="2 inbound connections held")
            # ... past which the inbound listener closes, below its own limit
            late = socket.create_connection(("127.0.0.1", px.in_port), timeout=10)
            extra.append(late)
            self.assertTrue(closed_by_peer(late, 20), "a connection past the global limit was kept")
            self.assertGreaterEqual(stat(px, in_key + "downstream_global_cx_overflow"), 1)
            self.assertEqual(stat(px, in_key + "downstream_cx_overflow"), 0)
            prom = px.admin("/stats/prometheus")[1]
            self.assertIn('envoy_listener_downstream_cx_overflow{envoy_listener_address="127.0.0.1_%d"}'
                          % px.out_port, prom)
        finally:
            for s in held + extra:
                s.close()
        wait_for(lambda: px.get("echo").status == 200, timeout=60, what="a request once the connections closed")

    def test_request_headers_timeout_408(self):
        px = self.tight
        before = stat(px, "http.meshproxy.downstream_rq_header_timeout")
        s = socket.create_connection(("127.0.0.1", px.out_port), timeout=10)
        data = b""
        try:
            s.sendall(b"GET " + ECHO.encode() + b" HTTP/1.1\r\nHost: " + fqdn("echo").encode() + b"\r\n")
            s.settimeout(0.3)
            # a byte at a time for up to ~40 x 0.3 s: the 1 s deadline from the
            # first byte ends it however the bytes keep coming
            for _ in range(40 if not slow() else 200):
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            s.settimeout(10)
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data)
        self.assertIn(b"request header timeout", data)
        self.assertGreater(stat(px, "http.meshproxy.downstream_rq_header_timeout"), before)
        prom = px.admin("/stats/prometheus")[1]
        self.assertIn("envoy_http_downstream_rq_header_timeout", prom)
        # a whole request is not affected
        self.assertEqual(px.get("echo").status, 200)

    def test_request_timeout_408_for_a_trickling_body(self):
        px = self.tight
        before = stat(px, "http.meshproxy.downstream_rq_timeout")
        s = socket.create_connection(("127.0.0.1", px.out_port), timeout=10)
        data = b""
        try:
            s.sendall(b"POST " + ECHO.encode() + b" HTTP/1.1\r\nHost: " + fqdn("echo").encode() +
                      b"\r\nContent-Length: 1000\r\n\r\n")
            s.settimeout(0.3)
            # the body a byte at a time: --request-timeout 1s ends it
            for _ in range(40 if not slow() else 200):
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    break
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data)
        self.assertGreater(stat(px, "http.meshproxy.downstream_rq_timeout"), before)
        self.assertIn("envoy_http_downstream_rq_timeout", px.admin("/stats/prometheus")[1])
        # a whole request with a body is not affected
        self.assertEqual(px.request(ECHO, method="POST", body=b"y" * 1000).status, 200)

    def test_xds_message_over_the_limit_keeps_the_last_config(self):
        px = self.small
        self.assertEqual(px.get("echo").status, 200)
        failures = stat(px, "control_plane.stream_failures")
        # 300 services: one CDS message far over 48 KiB
        many = "---\n".join(
            """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bulk-%d, namespace: demo}
spec:
  hosts: [bulk-%d.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.1.%d}]
""" % (i, i, 1 + i % 250) for i in range(300))
        self.meshd.write("bulk.yaml", many)
        try:
            self.wait_applied(lambda s: s.dump_has("bulk-299.demo"), "the bulk services at a sidecar",
                              sidecar=self.px)
            wait_for(lambda: stat(px, "control_plane.stream_failures") > failures, timeout=60,
                     what="the small sidecar refusing the large message")
            self.assertIn("received message larger than max", px.logs())
            # the last good configuration keeps serving
            self.assertFalse(px.dump_has("bulk-299.demo"))
            self.assertEqual(px.get("echo").status, 200)
            self.assertEqual(px.admin("/ready")[0], 200)
        finally:
            self.meshd.remove("bulk.yaml")
        # back under the limit: the stream is taken again, the proxy keeps serving
        wait_for(lambda: px.get("echo").status == 200 and not px.dump_has("bulk-"), timeout=120,
                 what="the small sidecar back in sync")


class LimitFlagsTest(unittest.TestCase):
    """A bad limit flag is refused at start with a message naming it."""

    def test_bad_values_refused(self):
        cases = [
            ("--max-connections", "many", "--max-connections"),
            ("--max-connections", "-1", "--max-connections"),
            ("--global-downstream-max-connections", "99999999999", "--global-downstream-max-connections"),
            ("--request-headers-timeout", "soon", "--request-headers-timeout"),
            ("--request-timeout", "-5s", "--request-timeout"),
            ("--stream-idle-timeout", "5 minutes", "--stream-idle-timeout"),
            ("--xds-max-message-bytes", "12", "--xds-max-message-bytes"),
            ("--xds-max-message-bytes", "4Gb", "--xds-max-message-bytes"),
        ]
        for flag, value, named in cases:
            out = subprocess.run([MESHPROXY, flag, value, "--admin-addr", "127.0.0.1:0", "--status-addr", "",
                                  "--health-addr", ""], capture_output=True, text=True, timeout=20)
            self.assertNotEqual(out.returncode, 0, (flag, value, out.stderr))
            self.assertIn(named, out.stderr, (flag, value))

    def test_help_names_the_limits(self):
        out = subprocess.run([MESHPROXY, "--help"], capture_output=True, text=True, timeout=20)
        for flag in ("--max-connections", "--global-downstream-max-connections", "--request-headers-timeout",
                     "--request-timeout", "--stream-idle-timeout", "--xds-max-message-bytes"):
            self.assertIn(flag, out.stdout)
        # both connection limits say what 0 means (the global one took 0 as "none" silently)
        glob = out.stdout.split("--global-downstream-max-connections", 1)[1].split("\n  --", 1)[0]
        self.assertIn("0: none", glob)


if __name__ == "__main__":
    unittest.main()
