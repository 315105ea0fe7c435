"""What a route does to a request besides picking a backend, end to end
through the real meshd and a meshproxy sidecar: URI and authority rewrites
(prefix and regex), redirects (Location, code), direct responses, header
add/set/remove on the request and the response, and CORS (preflight
answered by the proxy, allow-origin on actual responses).

Nothing here asserts on timing.
"""
import unittest

from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %(ns)s}
spec:
  hosts: [%(web)s]
  http:
  - name: rewrite-prefix
    match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: rewritten.example}
    route: [{destination: {host: %(web)s}}]
  - name: rewrite-regex
    match: [{uri: {prefix: /items/}}]
    rewrite:
      uriRegexRewrite: {match: "^/items/([0-9]+)$", rewrite: "/item?id=\\\\1"}
    route: [{destination: {host: %(web)s}}]
  - name: redirect
    match: [{uri: {prefix: /moved}}]
    redirect: {uri: /there, authority: elsewhere.example, redirectCode: 308}
  - name: redirect-default
    match: [{uri: {exact: /gone}}]
    redirect: {uri: /here}
  - name: direct
    match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: headers
    match: [{uri: {prefix: /hdr}}]
    headers:
      request:
        add: {x-added: added-value}
        set: {x-set: set-value}
        remove: [x-remove-me]
      response:
        add: {x-resp-added: "yes"}
        set: {x-backend-set: overwritten}
        remove: [x-drop-me]
    route: [{destination: {host: %(web)s}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://good.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-backend]
      maxAge: 600s
      allowCredentials: true
    route: [{destination: {host: %(web)s}}]
  - name: default
    route: [{destination: {host: %(web)s}}]
"""


class MeshRewriteTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.2")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web"]]),
                "vs.yaml": VS % {"ns": NS, "web": fqdn("web")}}

    def test_rewrite_uri_and_authority(self):
        r = self.px.get("web", "/old/path?q=1")
        self.assertEqual(r.status, 200, r)
        seen = r.json()
        self.assertEqual(seen["path"], "/new/path?q=1")
        self.assertEqual(seen["headers"]["host"], "rewritten.example")
        # no rewrite on other routes: the client's Host goes upstream unchanged
        seen = self.px.get("web", "/plain").json()
        self.assertEqual((seen["path"], seen["headers"]["host"]), ("/plain", "%s:%d" % (fqdn("web"), PORT)))

    def test_rewrite_regex(self):
        r = self.px.get("web", "/items/42")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/item?id=42")

    def test_redirect(self):
        r = self.px.get("web", "/moved/x")
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers["location"], "http://elsewhere.example/there")
        r = self.px.get("web", "/gone")
        self.assertEqual(r.status, 301, r)
        self.assertEqual(r.headers["location"], "http://%s:%d/here" % (fqdn("web"), PORT))
        self.assertIsNone(r.backend)

    def test_direct_response(self):
        before = self.b["web"].count()
        r = self.px.get("web", "/direct")
        self.assertEqual((r.status, r.body), (418, b"short and stout"))
        self.assertEqual(self.b["web"].count(), before)

    def test_request_and_response_headers(self):
        r = self.px.get("web", "/hdr", {"x-set": "client-value", "x-remove-me": "1", "x-added": "client"})
        self.assertEqual(r.status, 200, r)
        seen = r.json()["headers"]
        self.assertEqual(seen.get("x-set"), "set-value")
        self.assertNotIn("x-remove-me", seen)
        # add appends to what the client sent; the backend sees both values
        self.assertIn("added-value", seen.get("x-added", ""))
        self.assertEqual(r.headers.get("x-resp-added"), "yes")
        self.assertEqual(r.headers.get("x-backend-set"), "overwritten")
        self.assertNotIn("x-drop-me", r.headers)
        # the other routes keep the backend's headers
        self.assertIn("x-drop-me", self.px.get("web", "/plain").headers)

    def test_cors(self):
        before = self.b["web"].count()
        pre = {"Origin": "https://good.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "x-custom"}
        r = self.px.request("http://%s:%d/cors" % (fqdn("web"), PORT), method="OPTIONS", headers=pre)
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://good.example")
        self.assertIn("POST", r.headers.get("access-control-allow-methods", ""))
        self.assertIn("x-custom", r.headers.get("access-control-allow-headers", ""))
        self.assertEqual(r.headers.get("access-control-max-age"), "600")
        self.assertEqual(r.headers.get("access-control-allow-credentials"), "true")
        self.assertEqual(self.b["web"].count(), before, "the preflight went to the backend")
        # an actual request from the allowed origin
        r = self.px.get("web", "/cors", {"Origin": "https://good.example"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://good.example")
        self.assertIn("x-backend", r.headers.get("access-control-expose-headers", ""))
        # another origin gets no CORS headers
        r = self.px.get("web", "/cors", {"Origin": "https://evil.example"})
        self.assertNotIn("access-control-allow-origin", r.headers)


if __name__ == "__main__":
    unittest.main()
