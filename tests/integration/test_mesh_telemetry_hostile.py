"""Hostile request bytes against the metrics a Telemetry adds (issue 14),
end to end: real meshd (file source), one real meshproxy sidecar, a real
backend.

A Telemetry adds tags to the client's REQUEST_COUNT whose values come
from the request (header x-user, the host), one of them under a name that
is no Prometheus label name (`x-user`).  Requests then carry bytes a
client controls: quotes, backslashes, bytes that are not UTF-8, a UTF-8
sequence cut short, long values; then tags with long names make a
series' label text longer than meshproxy keeps; then a 1,900-byte Host
to a destination no service declares.  After each, Debian's promtool
(`promtool check metrics`) must parse the sidecar's /stats/prometheus
(lint findings such as "no help text" are Envoy's too and allowed): one
bad label value would make Prometheus drop the whole scrape.  Nothing
asserts on timing; every wait is bounded.  About 5 s.
"""
import http.client
import shutil
import subprocess
import unittest

from meshhttp import NS, Backend, MeshCase, service_yaml
from meshtest import wait_for

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def tags_telemetry(n_long=0):
    """Tags on the client's REQUEST_COUNT from header x-user and the host;
    n_long more from the header under 256-byte names."""
    extra = "".join("\n        long_%d%s: {value: \"request.headers['x-user']\"}" % (i, "n" * 250)
                    for i in range(n_long))
    return """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: hostile-tags, namespace: %s}
spec:
  selector:
    matchLabels: {app: client}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        x-user: {value: "request.headers['x-user']"}
        req_host: {value: "request.host"}%s
""" % (NS, extra)


class MeshTelemetryHostileTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web")}

    @classmethod
    def config(cls, b):
        return {"services.yaml": service_yaml("web", [b["web"]])}

    def scrape(self):
        c = http.client.HTTPConnection("127.0.0.1", self.px.admin_port, timeout=10)
        try:
            c.request("GET", "/stats/prometheus")
            return c.getresponse().read()
        finally:
            c.close()

    def assert_parses(self, text):
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertNotIn("error while linting", out)
        self.assertNotIn("parsing error", out)
        text.decode("utf-8")  # strict

    def test_a_label_values_any_bytes(self):
        self.meshd.write("tags.yaml", tags_telemetry())
        self.wait_applied(lambda s: s.dump_has("req_host"), "the tag overrides in the client's config")
        # http.client sends str header values as Latin-1: one byte each
        for v in ['a"b', 'back\\slash', 'caf\xe9', '\xff\xfe', '\xc3', 'x' * 300]:
            r = self.px.get("web", "/", headers={"x-user": v})
            self.assertEqual(r.status, 200, r)
        wait_for(lambda: self.scrape().count(b"x_user=") == 6, what="the six tagged series")
        text = self.scrape()
        self.assert_parses(text)
        self.assertIn('x_user="a\\"b"'.encode(), text)
        self.assertIn('x_user="caf\ufffd"'.encode(), text)
        self.assertIn('x_user="\ufffd"'.encode(), text)

    def test_b_long_label_text(self):
        self.meshd.write("tags.yaml", tags_telemetry(n_long=6))
        self.wait_applied(lambda s: s.dump_has("long_5n"), "the long tags in the client's config")
        r = self.px.get("web", "/", headers={"x-user": "y" * 200})
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: b"long_0n" in self.scrape(), what="the long series")
        self.assert_parses(self.scrape())

    def test_c_long_host(self):
        host = "h" * 1900 + ".example"
        self.px.request("http://%s:8080/" % host)
        wait_for(lambda: b"hhhhhhhhhh" in self.scrape(), what="the long host's series")
        self.assert_parses(self.scrape())


if __name__ == "__main__":
    unittest.main()
