"""meshproxy never turned against itself or the host's loopback (issue 16,
the breaker's findings): the proxy engine (pxserve, as in
test_meshproxy_http.py) with the admin port registered as meshproxy's main
does, and the reproductions as the breaker sent them.

- a request straight to the inbound port reaches only the ports the workload
  declares: POST /quitquitquit with the admin's port as the Host port is
  refused (502, BlackHoleCluster) and the proxy lives on;
- a destination that is one of meshproxy's own sockets is refused before any
  connection: Host naming a bound listener's own address, an http_proxy
  request to virtualOutbound itself, a Sidecar ingress whose defaultEndpoint
  is its own bind address.  Each answers once; the proxy's fd count stays
  small (no connection storm) and meshproxy_http_loop_refused counts them;
- a declared inbound port and a real passthrough destination still work.

Nothing here asserts on timing; every wait is bounded.
"""
import os
import re
import socket
import unittest

from meshtest import free_port, wait_for
from test_meshproxy_http import Backend, Proxy

SPEC = """
outbound
inbound
bind out app-out 127.0.0.1:{p} 9080
bind in app-in 127.0.0.1:{q} inbound|8080||
vhost 9080 all *
route 9080 all / cluster=PassthroughCluster
cluster PassthroughCluster original_dst
cluster inbound|{web}|| static 127.0.0.1:{web}
cluster inbound|8080|| static 127.0.0.1:{q}
"""


class MeshproxyLoopTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = Backend("web")
        cls.p, cls.q = free_port(), free_port()
        cls.px = Proxy(SPEC.format(p=cls.p, q=cls.q, web=cls.web.port))

    @classmethod
    def tearDownClass(cls):
        cls.px.stop()
        cls.web.stop()

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.px.proc.pid))

    def raw(self, port, data):
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def refused(self):
        m = re.search(r"^meshproxy_http_loop_refused (\d+)$", self.px.admin("/stats/prometheus"), re.M)
        return int(m.group(1)) if m else -1

    def assert_no_storm(self, before):
        # a loop opens a connection per round trip until fds run out: a
        # handful more than before means none happened
        self.assertLess(self.fds(), before + 16)
        self.assertIsNone(self.px.proc.poll())

    def test_admin_unreachable_through_inbound(self):
        before = self.fds()
        out = self.raw(self.px.in_port, b"POST /quitquitquit HTTP/1.1\r\nHost: x:%d\r\nContent-Length: 0\r\n"
                                        b"Connection: close\r\n\r\n" % self.px.admin_port)
        self.assertTrue(out.startswith(b"HTTP/1.1 502"), out)
        code, _, _ = self.px.curl("http://127.0.0.1:%d/ready" % self.px.admin_port)
        self.assertEqual(code, 200)
        # an undeclared port that is not meshproxy's: refused too, as BlackHoleCluster
        other = Backend("other")
        try:
            out = self.raw(self.px.in_port, b"GET / HTTP/1.1\r\nHost: x:%d\r\nConnection: close\r\n\r\n" % other.port)
            self.assertTrue(out.startswith(b"HTTP/1.1 502"), out)
            self.assertEqual(other.requests, 0)
        finally:
            other.stop()
        self.assert_no_storm(before)

    def test_declared_inbound_port_works(self):
        code, body, _ = self.px.curl("-H", "Host: anything:%d" % self.web.port,
                                     "http://127.0.0.1:%d/inb" % self.px.in_port)
        self.assertEqual((code, body), (200, "web /inb"))

    def test_bound_listener_host_itself(self):
        before, n = self.fds(), self.refused()
        for host in ("127.0.0.1:%d" % self.p, "localhost:%d" % self.p):
            code, _, _ = self.px.curl("-H", "Host: " + host, "http://127.0.0.1:%d/" % self.p)
            self.assertEqual(code, 502, host)
        self.assertGreaterEqual(self.refused(), n + 2)
        self.assert_no_storm(before)

    def test_http_proxy_to_virtual_outbound_itself(self):
        before, n = self.fds(), self.refused()
        code, _, _ = self.px.curl("-x", "http://127.0.0.1:%d" % self.px.out_port,
                                  "http://127.0.0.1:%d/" % self.px.out_port)
        self.assertEqual(code, 502)
        self.assertGreaterEqual(self.refused(), n + 1)
        self.assert_no_storm(before)
        # a real destination still passes through
        code, body, _ = self.px.curl("-x", "http://127.0.0.1:%d" % self.px.out_port,
                                     "http://127.0.0.1:%d/pt" % self.web.port)
        self.assertEqual((code, body), (200, "web /pt"))

    def test_ingress_default_endpoint_itself(self):
        before, n = self.fds(), self.refused()
        code, _, _ = self.px.curl("http://127.0.0.1:%d/" % self.q)
        self.assertEqual(code, 502)
        self.assertGreaterEqual(self.refused(), n + 1)
        self.assert_no_storm(before)


    def test_codec_400_logged_dpe(self):
        # issue 16 / breaker item 5: a request the codec refuses (malformed
        # Host, smuggling shapes) leaves an access-log line, Envoy's DPE
        for bad in (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"):
            out = self.raw(self.px.out_port, bad)
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), out)
        pat = re.compile(r'^\[[^]]+\] "- - HTTP/1\.1" 400 DPE \d+ \d+ \d+ - "-" "-" "-" "-" "-"$', re.M)
        wait_for(lambda: len(pat.findall(self.px.access_log())) >= 2, what="two DPE access-log lines")


if __name__ == "__main__":
    unittest.main()
