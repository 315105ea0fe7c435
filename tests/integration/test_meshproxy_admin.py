"""meshproxy's admin port, driven with curl and raw sockets: /ready (503
until a configuration is applied, which nothing does yet), /server_info,
/stats, 404, keep-alive and pipelining, the codec's limits (431) and the
request-smuggling cases (400 and the connection closed) without disturbing
other connections, and clean exits on POST /quitquitquit, SIGTERM, SIGINT.

Nothing here asserts on timing; every wait is bounded.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import tempfile
import unittest

from meshtest import BUILD, free_port, wait_for

MESHPROXY = os.path.join(BUILD, "bin", "meshproxy")


class Proxy:
    def __init__(self, *extra, preexec_fn=None):
        self.port = free_port()
        # the status (15020) and health (15021) ports on free ports of their own
        self.status_port, self.health_port = free_port(), free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="meshproxy-it-", suffix=".log", delete=False)
        if "--xds-addr" not in extra:
            # never the default 127.0.0.1:15010: a meshd of `make run` may be
            # there, and would configure this proxy (a port nobody serves)
            extra = ("--xds-addr", "127.0.0.1:%d" % free_port()) + tuple(extra)
        self.proc = subprocess.Popen(
            [MESHPROXY, "--admin-addr", "127.0.0.1:%d" % self.port, "--log-level", "debug",
             "--status-addr", "127.0.0.1:%d" % self.status_port, "--health-addr", "127.0.0.1:%d" % self.health_port,
             "--node-id", "sidecar~127.0.0.1~it.default~default.svc.cluster.local",
             "--exit-on-zero-active-connections"] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        wait_for(self.connectable, what="meshproxy admin port")

    def connectable(self):
        if self.proc.poll() is not None:
            raise AssertionError("meshproxy exited %d: %s" % (self.proc.returncode, self.logs()))
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def logs(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def curl(self, *args):
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"] + list(args),
                             capture_output=True, text=True, timeout=20)
        body, _, code = out.stdout.rpartition("\n")
        return int(code or 0), body

    def url(self, path, port=None):
        return "http://127.0.0.1:%d%s" % (port or self.port, path)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)
        return self.proc.returncode


def read_response(sock, buf=b""):
    """One HTTP/1.1 response from sock (Content-Length framed): (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response head: %r" % buf)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n], rest[n:]


def closed_after(sock):
    """True when the peer closes the connection (reads EOF) within the timeout."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (socket.timeout, ConnectionResetError):
        return False


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


class MeshproxyFdExhaustionTest(unittest.TestCase):
    """Out of fds, a level-triggered listener whose accept fails with EMFILE
    must stop reading for a while (as nginx and haproxy do) instead of
    spinning; the episode is logged once and counted, and the ports answer
    again once fds are free."""

    def test_emfile_pauses_the_listener_and_recovers(self):
        p = Proxy(preexec_fn=low_nofile)
        socks = []
        try:
            # more idle connections than the process may hold fds for
            for _ in range(60):
                socks.append(socket.create_connection(("127.0.0.1", p.port), timeout=10))
            wait_for(lambda: "pausing the listener" in p.logs(), what="the accept-pause log line")
            for s in socks:
                s.close()
            socks = []
            # the admin closes the idle connections on EOF and accepts again
            code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(p.curl(p.url("/ready"))),
                                  what="/ready answering after the fds came back")
            self.assertEqual(body.strip(), "NOT READY")
            code, body = p.curl(p.url("/stats"))
            self.assertEqual(code, 200)
            stats = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
            # counted and logged once per episode, however many times the
            # listener was re-armed (every 100 ms while out of fds).  When
            # the fds come back the connections still queued are accepted
            # in one go and may run out again before the closed ones are
            # reaped: a second episode, legitimately; a count per re-arm
            # would be far more.
            paused = int(stats.get("http.admin.downstream_cx_accept_paused", "0"))
            self.assertGreaterEqual(paused, 1, body)
            self.assertLessEqual(paused, 3, body)
            self.assertEqual(p.logs().count("pausing the listener"), paused)
        finally:
            for s in socks:
                s.close()
            rc = p.stop()
        self.assertEqual(rc, 0)


class MeshproxyAdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = Proxy()

    @classmethod
    def tearDownClass(cls):
        rc = cls.p.stop()
        assert rc == 0, "meshproxy exited %r on SIGTERM" % rc

    def conn(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=10)
        return s

    def test_ready_is_503_until_configured(self):
        code, body = self.p.curl(self.p.url("/ready"))
        self.assertEqual(code, 503)
        self.assertEqual(body.strip(), "NOT READY")

    def test_status_and_health_ports(self):
        # Istio's pilot-agent ports: /healthz/ready on both, 503 until a first
        # configuration is applied (none here); /stats/prometheus on 15020 only
        for port in (self.p.status_port, self.p.health_port):
            code, body = self.p.curl(self.p.url("/healthz/ready", port))
            self.assertEqual(code, 503, (port, body))
            code, _ = self.p.curl("-I", self.p.url("/healthz/ready", port))
            self.assertEqual(code, 503)
        code, body = self.p.curl(self.p.url("/stats/prometheus", self.p.status_port))
        self.assertEqual(code, 200, body)
        self.assertIn("envoy_http_downstream_rq_total", body)
        code, _ = self.p.curl(self.p.url("/stats/prometheus", self.p.health_port))
        self.assertEqual(code, 404)
        # nothing of the admin port on them
        for port in (self.p.status_port, self.p.health_port):
            for path in ("/ready", "/config_dump", "/clusters", "/stats", "/server_info"):
                code, _ = self.p.curl(self.p.url(path, port))
                self.assertEqual(code, 404, (port, path))
            code, _ = self.p.curl("-X", "POST", self.p.url("/quitquitquit", port))
            self.assertEqual(code, 405, port)
        self.assertIsNone(self.p.proc.poll())

    def test_empty_status_and_health_addr_turn_them_off(self):
        p = Proxy("--status-addr", "", "--health-addr", "")
        try:
            code, _ = p.curl(p.url("/ready"))
            self.assertEqual(code, 503)
            for port in (p.status_port, p.health_port):
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
        finally:
            p.stop()

    def test_server_info(self):
        code, body = self.p.curl(self.p.url("/server_info"))
        self.assertEqual(code, 200)
        info = json.loads(body)
        self.assertEqual(info["state"], "INITIALIZING")
        self.assertTrue(info["version"].startswith("meshproxy/"))
        self.assertEqual(info["node"]["id"], "sidecar~127.0.0.1~it.default~default.svc.cluster.local")
        self.assertEqual(info["command_line_options"]["admin_addr"], "127.0.0.1:%d" % self.p.port)

    def test_stats_and_404(self):
        code, _ = self.p.curl(self.p.url("/no/such/page"))
        self.assertEqual(code, 404)
        code, body = self.p.curl(self.p.url("/stats"))
        self.assertEqual(code, 200)
        stats = dict(line.split(": ", 1) for line in body.strip().split("\n"))
        self.assertGreaterEqual(int(stats["http.admin.downstream_rq_4xx"]), 1)
        self.assertGreaterEqual(int(stats["http.admin.downstream_cx_total"]), 2)
        self.assertEqual(stats["server.live"], "0")

    def test_head_request(self):
        code, body = self.p.curl("-I", self.p.url("/ready"))
        self.assertEqual(code, 503)
        self.assertIn("Content-Length: 10", body)

    def test_keepalive_and_pipelining(self):
        s = self.conn()
        try:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"POST /stats HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n")
            rest = b""
            got = []
            for _ in range(4):
                status, headers, body, rest = read_response(s, rest)
                got.append(status)
                self.assertNotIn("connection", headers)
            self.assertEqual(got, [503, 404, 405, 200])
            # still open: one more request on the same connection
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            status, headers, body, rest = read_response(s, rest)
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("connection"), "close")
            self.assertTrue(closed_after(s))
        finally:
            s.close()

    def test_http10_closes(self):
        s = self.conn()
        try:
            s.sendall(b"GET /ready HTTP/1.0\r\n\r\n")
            status, headers, _, _ = read_response(s)
            self.assertEqual(status, 503)
            self.assertTrue(closed_after(s))
        finally:
            s.close()

    def refused(self, payload, want):
        """payload on a new connection gets status want and the connection closes,
        while a keep-alive connection opened before it is still served after."""
        other = self.conn()
        s = self.conn()
        try:
            other.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(read_response(other)[0], 503)
            s.sendall(payload)
            status, headers, body, _ = read_response(s)
            self.assertEqual(status, want, "payload %r answered %d %r" % (payload[:80], status, body))
            self.assertEqual(headers.get("connection"), "close")
            self.assertTrue(closed_after(s), "connection left open after %r" % payload[:80])
            other.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(read_response(other)[0], 503)
        finally:
            s.close()
            other.close()
        self.assertEqual(self.p.curl(self.p.url("/ready"))[0], 503)

    def test_smuggling_refused(self):
        cases = [
            b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
            b"GET /ready HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET /ready HTTP/1.1\nHost: a\n\n",
            b"GET /ready HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
            b"GET /ready HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
            b"GET /ready HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        ]
        for payload in cases:
            with self.subTest(payload=payload[:60]):
                self.refused(payload, 400)

    def test_smuggled_second_request_after_a_good_one(self):
        s = self.conn()
        try:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"POST /ready HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            status, _, _, rest = read_response(s)
            self.assertEqual(status, 503)
            status, headers, _, _ = read_response(s, rest)
            self.assertEqual(status, 400)
            self.assertTrue(closed_after(s))
        finally:
            s.close()

    def test_limits_431(self):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
        self.refused(b"GET /ready HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n", 431)
        self.refused(b"GET /ready HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * (61 * 1024) + b"\r\n\r\n", 431)

    def test_chunked_request_body_is_read(self):
        s = self.conn()
        try:
            s.sendall(b"POST /ready HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
            status, _, _, rest = read_response(s)
            self.assertEqual(status, 405)
            status, _, _, _ = read_response(s, rest)
            self.assertEqual(status, 503)
        finally:
            s.close()


class MeshproxyLifecycleTest(unittest.TestCase):
    def test_help_lists_every_flag(self):
        out = subprocess.run([MESHPROXY, "--help"], capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0)
        for flag in ("--xds-addr", "--node-id", "--labels", "--service-account", "--admin-addr",
                     "--log-level", "--access-log", "--outbound-addr", "--inbound-addr",
                     "--status-addr", "--health-addr"):
            self.assertIn(flag, out.stdout)

    def test_bad_flags_fail(self):
        for args in (["--admin-addr", "nonsense"], ["--no-such-flag"], ["--log-level", "loud"]):
            out = subprocess.run([MESHPROXY] + args, capture_output=True, text=True, timeout=20)
            self.assertNotEqual(out.returncode, 0, args)

    def test_quitquitquit(self):
        p = Proxy()
        try:
            code, _ = p.curl(p.url("/quitquitquit"))
            self.assertEqual(code, 405)
            self.assertIsNone(p.proc.poll())
            code, body = p.curl("-X", "POST", p.url("/quitquitquit"))
            self.assertEqual(code, 200)
            self.assertEqual(p.proc.wait(timeout=20), 0)
            self.assertIn("exited cleanly", p.logs())
        finally:
            p.stop()

    def test_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = Proxy()
            idle = socket.create_connection(("127.0.0.1", p.port), timeout=10)
            try:
                log = None
                rc = None
                p.proc.send_signal(sig)
                rc = p.proc.wait(timeout=20)
                log = p.logs()
            finally:
                idle.close()
                p.stop()
            self.assertEqual(rc, 0, log)
            self.assertIn("exited cleanly", log)


def loggers(body):
    """The "active loggers:" list of an Envoy /logging answer, as {name: level}."""
    _, _, tail = body.partition("active loggers:\n")
    return dict(line.strip().split(": ", 1) for line in tail.splitlines() if ": " in line)


class MeshproxyLoggingTest(unittest.TestCase):
    """Envoy's /logging (logs_handler.cc): the loggers are meshproxy's log
    scopes; POST ?level= sets all, ?NAME= or ?paths=a:l,b:l sets some, a bad
    level or name is 400 with Envoy's usage text and changes nothing."""

    def test_logging(self):
        p = Proxy()  # its own proxy: the levels are process-wide
        try:
            code, body = p.curl(p.url("/logging"))
            self.assertEqual(code, 200, body)
            self.assertEqual(loggers(body), {"admin": "debug", "grpc": "debug", "identity": "debug",
                                             "meshproxy": "debug", "xds": "debug"}, body)
            self.assertTrue(body.startswith("active loggers:\n  admin: debug\n"), body)

            code, body = p.curl("-X", "POST", p.url("/logging?level=info"))
            self.assertEqual(code, 200, body)
            self.assertEqual(set(loggers(body).values()), {"info"}, body)

            code, body = p.curl("-X", "POST", p.url("/logging?xds=error"))
            self.assertEqual(code, 200, body)
            self.assertEqual(loggers(body), {"admin": "info", "grpc": "info", "identity": "info", "meshproxy": "info",
                                             "xds": "error"})

            code, body = p.curl("-X", "POST", p.url("/logging?paths=grpc:warning,meshproxy:off"))
            self.assertEqual(code, 200, body)
            self.assertEqual(loggers(body), {"admin": "info", "grpc": "warning", "identity": "info", "meshproxy": "off",
                                             "xds": "error"})

            for query, err in (("level=loud", "unknown logger level"), ("nosuch=debug", "unknown logger name"),
                               ("admin=loud", "unknown logger level"),
                               ("paths=admin:debug,nosuch:info", "unknown logger name"),
                               ("admin=debug&xds=debug", "invalid number of parameters")):
                code, body = p.curl("-X", "POST", p.url("/logging?" + query))
                self.assertEqual(code, 400, query + ": " + body)
                self.assertTrue(body.startswith("error: %s\n\nusage: /logging?<name>=<level> (change single level)\n"
                                                % err), body)
                self.assertIn("levels: trace debug info warning error critical off \n", body)
                # nothing changed, not even the good half of a paths list
                self.assertEqual(loggers(body), {"admin": "info", "grpc": "warning", "identity": "info",
                                                 "meshproxy": "off", "xds": "error"}, query)

            # a change is a POST (Envoy answers other methods 405)
            code, body = p.curl(p.url("/logging?level=debug"))
            self.assertEqual(code, 405, body)

            # the level takes effect: the admin scope's debug line for a refused request
            # shows at debug and not at info
            def refused():
                s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n")
                closed_after(s)
                s.close()
            refused()
            self.assertNotIn("request refused", p.logs())
            code, body = p.curl("-X", "POST", p.url("/logging?admin=trace"))
            self.assertEqual(code, 200, body)
            self.assertEqual(loggers(body)["admin"], "trace")  # what was set (trace runs as debug)
            refused()
            wait_for(lambda: "request refused" in p.logs(), what="the admin scope's debug line")

            # admin query parameters are percent-decoded, as Envoy's are
            code, body = p.curl("-X", "POST", p.url("/logging?paths=xds%3Adebug%2Cgrpc%3Acritical"))
            self.assertEqual(code, 200, body)
            self.assertEqual((loggers(body)["xds"], loggers(body)["grpc"]), ("debug", "critical"), body)
            code, body = p.curl("-X", "POST", p.url("/logging?%61dmin=info"))
            self.assertEqual((code, loggers(body)["admin"]), (200, "info"), body)
            code, body = p.curl("-X", "POST", p.url("/logging?level=critical"))
            self.assertEqual(code, 200, body)
            self.assertEqual(set(loggers(body).values()), {"critical"}, body)
            # more pairs than loggers can exist: said so, not "unknown logger name"
            code, body = p.curl("-X", "POST", p.url("/logging?paths=" + ",".join(["xds:info"] * 17)))
            self.assertEqual(code, 400, body)
            self.assertTrue(body.startswith("error: too many logger names (at most 16)\n"), body)
            self.assertEqual(set(loggers(body).values()), {"critical"}, body)
        finally:
            rc = p.stop()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
