"""RequestAuthentication end to end: the real meshd fetches a jwksUri from a
local HTTP server (python3 http.server on 127.0.0.9) with libcurl and
inlines the key set into the jwt_authn filter of the server's sidecar; a
meshproxy inbound sidecar verifies tokens signed here, at test time, by an
RSA key made at test time (python3-cryptography, PyJWT).

- a valid token reaches the application (200), without the token header
  (forwardOriginalToken false) and with outputPayloadToHeader set;
- a bad signature, an expired token, the wrong issuer are 401 with Envoy's
  bodies and www-authenticate; the wrong audience is 403 (Envoy's answer);
- no token passes to authorization: 200 without an AuthorizationPolicy;
- a second jwtRule whose jwksUri cannot be fetched gets Istio's fallback
  key: its tokens fail (401), they never pass unverified;
- a third with an issuer and no jwksUri gets the key set its OpenID
  discovery document names (Istio's resolveJwksURIUsingOpenID);
- with an AuthorizationPolicy requiring requestPrincipals and a claims
  `when`: the sidecar's decisions (missing token 403, the claim decides,
  an invalid token still 401) and meshctl authz check --jwt-claims's for
  the same config.

Nothing here asserts on timing.
"""
import base64
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest

from meshhttp import NS, Backend, MeshCase, fqdn, service_yaml, slow
from meshtest import BUILD, free_port, wait_for

try:
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError:  # pragma: no cover - scripts/deps.sh installs them
    pyjwt = None

MESHCTL = os.path.join(BUILD, "bin", "meshctl")
ISSUER = "https://issuer.test"
JWKS_IP = "127.0.0.9"


def b64u(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class JwksServer:
    """Serves {"keys": [...]} at /jwks.json on JWKS_IP:random."""

    def __init__(self, jwks):
        self.body = json.dumps(jwks).encode()
        self.hits = 0
        outer = self
        self.srv = None

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits += 1
                out = outer.body
                if self.path == "/.well-known/openid-configuration":
                    # OpenID discovery: where an issuer without jwksUri keeps its keys
                    out = json.dumps({"issuer": outer.issuer, "jwks_uri": outer.uri}).encode()
                self.send_response(200 if self.path in ("/jwks.json", "/.well-known/openid-configuration") else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.srv = http.server.ThreadingHTTPServer((JWKS_IP, 0), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    @property
    def uri(self):
        return "http://%s:%d/jwks.json" % (JWKS_IP, self.port)

    @property
    def issuer(self):
        return "http://%s:%d" % (JWKS_IP, self.port)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


REQ_AUTHN = """apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: %(ns)s}
spec:
  selector:
    matchLabels: {app: web}
  jwtRules:
  - issuer: %(issuer)s
    jwksUri: %(uri)s
    audiences: [web]
    outputPayloadToHeader: x-jwt-payload
  - issuer: https://down.test
    jwksUri: %(down)s
  - issuer: %(oidc)s
"""

POLICY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt-only, namespace: %(ns)s}
spec:
  selector:
    matchLabels: {app: web}
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["%(issuer)s/*"]
    when:
    - key: request.auth.claims[groups]
      values: [admin]
"""


@unittest.skipIf(pyjwt is None, "python3-jwt / python3-cryptography not installed (scripts/deps.sh)")
class MeshJwtTest(MeshCase):
    SIDECARS = {"web": ("web", "app=web")}

    @classmethod
    def setUpClass(cls):
        # meshd refetches every jwksUri each second here (Istio's variable;
        # 20 min by default), so a key rotation shows within the test
        cls.saved_env = os.environ.get("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL")
        os.environ["PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"] = "1s"
        cls.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = cls.key.public_key().public_numbers()
        cls.jwks = JwksServer({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                         "n": b64u(pub.n), "e": b64u(pub.e)}]})
        try:
            super().setUpClass()
        except BaseException:
            cls.jwks.stop()
            raise
        cls.web = cls.sidecars["web"]
        cls.app = cls.b["web-app"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.jwks.stop()
            if cls.saved_env is None:
                os.environ.pop("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", None)
            else:
                os.environ["PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"] = cls.saved_env

    @classmethod
    def backends(cls):
        return {"web-app": Backend("web-app", "127.0.0.1")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web-app"]]),
                "authn.yaml": REQ_AUTHN % {"ns": NS, "issuer": ISSUER, "uri": cls.jwks.uri,
                                           "down": "http://%s:%d/jwks.json" % (JWKS_IP, free_port()),
                                           "oidc": cls.jwks.issuer}}

    # ------------------------------------------------------------ helpers

    def token(self, key=None, kid="k1", **claims):
        now = int(time.time())
        body = {"iss": ISSUER, "sub": "alice", "aud": "web", "iat": now, "exp": now + 600,
                "groups": ["admin"]}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return pyjwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid})

    def inbound(self, path="/", token=None, headers=None):
        h = {"Host": "%s:%d" % (fqdn("web"), self.app.port)}
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.web.in_port, timeout=20)
        try:
            c.request("GET", path, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def wait_keys(self):
        """meshd fetches the jwksUri off its config thread and pushes again:
        until then the fallback key makes every token fail."""
        tok = self.token()
        wait_for(lambda: self.inbound("/ready-check", tok)[0] == 200, timeout=120 if slow() else 30,
                 what="the fetched JWKS reaching the sidecar")

    def meshctl(self, claims):
        args = [MESHCTL, "authz", "check", "-f", self.meshd.config_dir, "-n", NS, "-l", "app=web", "--path", "/",
                "--method", "GET"]
        if claims is not None:
            args += ["--jwt-claims", json.dumps(claims)]
        out = subprocess.run(args, capture_output=True, timeout=60, text=True)
        self.assertIn(out.returncode, (0, 1), out.stderr)
        return out.returncode == 0, out.stdout.strip()

    # ------------------------------------------------------------ tests

    def test_1_tokens_without_policy(self):
        self.wait_keys()
        self.assertGreaterEqual(self.jwks.hits, 1)
        tok = self.token()
        before = self.app.count()
        status, _, body = self.inbound("/ok", tok)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.app.count(), before + 1)
        _, path, hdrs, _ = self.app.last()
        self.assertEqual(path, "/ok")
        # forwardOriginalToken false: the token header is removed
        self.assertNotIn("authorization", hdrs)
        # outputPayloadToHeader: the token's payload, base64url as in the token
        self.assertEqual(hdrs.get("x-jwt-payload"), tok.split(".")[1])

        cases = [
            ("bad signature", self.token(key=self.other_key), 401, b"Jwt verification fails"),
            ("expired", self.token(exp=int(time.time()) - 3600), 401, b"Jwt is expired"),
            ("wrong issuer", self.token(iss="https://evil.test"), 401, b"Jwt issuer is not configured"),
            ("unknown kid", self.token(kid="nope"), 401, b"Jwks doesn't have key to match kid or alg from Jwt"),
            ("wrong audience", self.token(aud="other"), 403, b"Audiences in Jwt are not allowed"),
            ("garbage", "not-a-jwt", 401, b"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
        ]
        for what, t, want, text in cases:
            before = self.app.count()
            status, hdrs, body = self.inbound("/bad?x=1", t)
            self.assertEqual((status, body), (want, text), what)
            self.assertEqual(hdrs.get("www-authenticate"),
                             'Bearer realm="http://%s:%d/bad", error="invalid_token"' % (fqdn("web"), self.app.port),
                             what)
            self.assertEqual(self.app.count(), before, "%s reached the application" % what)
        # the unreachable jwksUri: meshd serves the fallback key, so a token of
        # that issuer (signed by a real key) fails instead of passing
        status, _, body = self.inbound("/down", self.token(iss="https://down.test", aud=None))
        self.assertEqual((status, body), (401, b"Jwks doesn't have key to match kid or alg from Jwt"))
        # the issuer without jwksUri: its keys come from OpenID discovery
        oidc = self.token(iss=self.jwks.issuer, aud=None)
        wait_for(lambda: self.inbound("/oidc", oidc)[0] == 200, timeout=120 if slow() else 30,
                 what="the OpenID-discovered JWKS reaching the sidecar")
        # no token: passes to authorization, and without a policy to the application
        status, _, body = self.inbound("/anon")
        self.assertEqual(status, 200, body)

    def test_2_policy(self):
        self.wait_keys()
        self.meshd.write("policy.yaml", POLICY % {"ns": NS, "issuer": ISSUER})
        # what meshctl answers for the config meshd serves
        self.assertEqual(self.meshctl({"iss": ISSUER, "sub": "alice", "groups": ["admin"]})[0], True)
        self.assertEqual(self.meshctl({"iss": ISSUER, "sub": "alice", "groups": ["dev"]})[0], False)
        self.assertEqual(self.meshctl({"iss": "https://evil.test", "sub": "alice", "groups": ["admin"]})[0], False)
        self.assertEqual(self.meshctl(None)[0], False)
        # the proxy: a missing token is denied by the policy
        wait_for(lambda: self.inbound("/anon")[0] == 403, timeout=120 if slow() else 30,
                 what="the policy reaching the sidecar")
        status, _, body = self.inbound("/anon")
        self.assertEqual((status, body), (403, b"RBAC: access denied"))
        self.assertEqual(self.inbound("/", self.token())[0], 200)
        self.assertEqual(self.inbound("/", self.token(groups=["dev"]))[0], 403)
        self.assertEqual(self.inbound("/", self.token(groups="admin"))[0], 200)
        # an invalid token is still the JWT filter's 401, before RBAC
        self.assertEqual(self.inbound("/", self.token(key=self.other_key))[0], 401)

    def test_3_key_rotation(self):
        # the issuer rotates its key: meshd's refresh sees the new set and
        # pushes it to the sidecar already serving the old one
        # (no config edit here: only the JWKS refresh can bring the new key;
        # test_2's policy still applies and the tokens satisfy it)
        self.wait_keys()
        new = self.other_key.public_key().public_numbers()
        self.jwks.body = json.dumps({"keys": [{"kty": "RSA", "kid": "k2", "alg": "RS256",
                                               "n": b64u(new.n), "e": b64u(new.e)}]}).encode()
        rotated = self.token(key=self.other_key, kid="k2")
        wait_for(lambda: self.inbound("/rotated", rotated)[0] == 200, timeout=120 if slow() else 30,
                 what="the rotated JWKS reaching the sidecar")
        # and the retired key no longer verifies
        status, _, body = self.inbound("/old", self.token())
        self.assertEqual((status, body), (401, b"Jwks doesn't have key to match kid or alg from Jwt"))


if __name__ == "__main__":
    unittest.main()
