"""HTTP/1.1 details an Istio user meets, end to end through the real meshd
and a meshproxy sidecar: `Expect: 100-continue` (meshd sets the HCM's
proxy_100_continue as istiod does, so the sidecar forwards Expect and relays
the application's "100 Continue"; curl sends Expect for a body over 1 KiB
and would otherwise wait a second), malformed Host authorities answered 400
by the codec (Envoy's header validator) instead of being looked up, and the
admin port's /logging on a live sidecar.

Nothing here asserts on timing.
"""
import os
import socket
import subprocess
import tempfile
import unittest

from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml
from meshtest import wait_for


class MeshHttp1Test(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.2")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web"]])}

    def test_expect_100_continue_curl(self):
        # curl 7.88 sends Expect by itself only past 1 MiB (older ones past 1 KiB): asked for here;
        # either way it then waits up to 1 s for the 100 before sending the body
        body = b"x" * 3000
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(body)
        try:
            out = subprocess.run(["curl", "-v", "-s", "-S", "--max-time", "20", "-x",
                                  "http://127.0.0.1:%d" % self.px.out_port, "--data-binary", "@" + f.name, "-H", "Expect: 100-continue",
                                  "http://%s:%d/upload" % (fqdn("web"), PORT)],
                                 capture_output=True, timeout=30)
        finally:
            os.unlink(f.name)
        err = out.stderr.decode("latin-1")
        self.assertIn("> Expect: 100-continue", err)
        # the 100 reached curl through the sidecar (else curl sends after its 1 s timeout)
        self.assertIn("< HTTP/1.1 100 Continue", err)
        self.assertIn("< HTTP/1.1 200", err)
        self.assertIn(b'"backend": "web"', out.stdout)
        method, path, hdrs, got = self.b["web"].last()
        self.assertEqual(got, body)
        # proxy_100_continue: Expect goes to the application, whose 100 is relayed
        self.assertEqual(hdrs.get("expect"), "100-continue")

    def raw(self, data):
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk
        finally:
            s.close()

    def test_malformed_host_400(self):
        before = self.b["web"].count()
        for host in (b"web.demo:abc", b"web.demo:99999", b"web.demo:0", b":9080", b"web.demo:", b""):
            out = self.raw(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (host, out))
        # a space inside the value
        out = self.raw(b"GET / HTTP/1.1\r\nHost: web demo\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out)
        # absolute-form: the target's authority is the one checked
        out = self.raw(b"GET http://web.demo:70000/ HTTP/1.1\r\nHost: web.demo\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out)
        self.assertEqual(self.b["web"].count(), before)
        # and a good one still goes through
        out = self.raw(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (fqdn("web").encode(), PORT))
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)

    def test_logging_on_a_live_sidecar(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.px.admin_port, timeout=10)
        try:
            c.request("POST", "/logging?xds=warning")
            r = c.getresponse()
            body = r.read().decode()
        finally:
            c.close()
        self.assertEqual(r.status, 200, body)
        self.assertIn("  xds: warning\n", body)
        self.assertIn("  meshproxy: debug\n", body)
        # at debug, each request says where it went (what the level is for)
        r = self.px.get("web", "/debug-me")
        self.assertEqual(r.status, 200, r)
        line = wait_for(lambda: [x for x in self.px.logs().splitlines() if "/debug-me -> cluster " in x],
                        what="the request's debug line")
        self.assertIn("outbound|%d||%s" % (PORT, fqdn("web")), line[0])
        r = self.px.request("http://nowhere.invalid:%d/debug-404" % PORT)
        wait_for(lambda: [x for x in self.px.logs().splitlines() if "/debug-404: local reply" in x],
                 what="the local reply's debug line")


if __name__ == "__main__":
    unittest.main()
