"""The JWT rows of the AuthorizationPolicy decision table
(tests/data/authz/jwt_cases.yaml) replayed through a real sidecar, with
tokens signed at test time by keys made at test time (RS256, ES256, PS256;
python3-cryptography and PyJWT).

One meshd (file source), the inbound meshproxy sidecar of workload demo /
app=web and its application (an HTTP backend on 127.0.0.1).  For every
case, its RequestAuthentication(s) (inline jwks of the keys made here) and
AuthorizationPolicies are written to meshd as one file, so meshd reads them
in one go; with them goes an AUDIT policy on the path /probe-N, never a
table request's path: it changes no decision, and the sidecar logging the
audit of a request to /probe-N says the case's configuration is the one it
enforces.  `meshctl authz check` judges every request over the case's file
alone (no probe), in a directory of its own.

For every request, three answers must agree: the sidecar's (200 from the
application = ALLOW; 403 "RBAC: access denied" = DENY by a policy; 401 and
403 with the JWT filter's text = "DENY (401: TEXT)" / "DENY (403: TEXT)"),
the table's, and meshctl's (its full text, which names the policy; the
token passed with --jwt, or as the --header / --path query the rule reads).

Then Envoy's jwt_authn counters: allowed and denied move on /stats and on
/stats/prometheus as requests pass and fail.

Nothing here asserts on timing.
"""
import base64
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import yaml

from meshhttp import NS, Backend, MeshCase, fqdn, service_yaml, slow
from meshtest import MESHCTL, ROOT, wait_for

try:
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # pragma: no cover - scripts/deps.sh installs them
    pyjwt = None

CASES = os.path.join(ROOT, "tests", "data", "authz", "jwt_cases.yaml")
CASE_FILE = "authz-jwt-case.yaml"
DENIED_BODY = b"RBAC: access denied"
WAIT_S = 120 if slow() else 30


def b64u_int(n, size=None):
    raw = n.to_bytes(size or (n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_key(alg):
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(name, alg, key):
    pub = key.public_key().public_numbers()
    if alg.startswith("ES"):
        return {"kty": "EC", "crv": "P-256", "kid": name, "alg": alg, "use": "sig",
                "x": b64u_int(pub.x, 32), "y": b64u_int(pub.y, 32)}
    return {"kty": "RSA", "kid": name, "alg": alg, "use": "sig", "n": b64u_int(pub.n), "e": b64u_int(pub.e)}


def merge_claims(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@unittest.skipIf(pyjwt is None, "python3-jwt / python3-cryptography not installed (scripts/deps.sh)")
class MeshAuthzJwtTest(MeshCase):
    SIDECARS = {"web": ("web", "app=web")}

    @classmethod
    def setUpClass(cls):
        with open(CASES) as f:
            cls.table = yaml.safe_load(f)
        wl = cls.table["defaults"]["workload"]
        assert wl["namespace"] == NS and wl["labels"] == {"app": "web"}, "the table's workload is the sidecar's"
        cls.keys = {}
        sets = {}
        for name, k in cls.table["keys"].items():
            key = make_key(k["alg"])
            cls.keys[name] = (k["alg"], key)
            if k.get("issuer"):
                sets.setdefault(k["issuer"], []).append(jwk(name, k["alg"], key))
        cls.jwks = {iss: json.dumps({"keys": v}, separators=(",", ":")) for iss, v in sets.items()}
        cls.ctl_dir = tempfile.mkdtemp(prefix="meshctl-jwt-")
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.ctl_dir, ignore_errors=True)
            raise
        cls.web = cls.sidecars["web"]
        cls.app = cls.b["web-app"]
        cls.host = "%s:%d" % (fqdn("web"), cls.app.port)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.ctl_dir, ignore_errors=True)

    @classmethod
    def backends(cls):
        return {"web-app": Backend("web-app", "127.0.0.1")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web-app"]])}

    # ------------------------------------------------------------ config

    def expand(self, text):
        for name, url in self.table["issuers"].items():
            text = text.replace("${ISS:%s}" % name, url)
            text = text.replace("${JWKS:%s}" % name, self.jwks.get(name, '{"keys":[]}'))
        return text

    def case_yaml(self, case):
        docs = [self.expand(case.get("authn") or self.table["defaults"]["authn"])]
        if (case.get("policies") or "").strip():
            docs.append(case["policies"])
        return "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs)

    def probe_yaml(self, n):
        return """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probe-%d, namespace: %s}
spec:
  selector:
    matchLabels: {app: web}
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["/probe-%d"]}}]
""" % (n, NS, n)

    def log_text(self):
        with open(self.web.log_path, errors="replace") as f:
            return f.read()

    def apply(self, n, case):
        text = self.case_yaml(case)
        with open(os.path.join(self.ctl_dir, CASE_FILE), "w") as f:
            f.write(text)
        self.meshd.write(CASE_FILE, text + "---\n" + self.probe_yaml(n))
        mark = "matched policy ns[%s]-policy[probe-%d]-rule[0]" % (NS, n)

        def enforced():
            self.send("/probe-%d" % n, {})
            return mark in self.log_text()
        wait_for(enforced, timeout=WAIT_S, interval=0.1, what="case %s applied by the sidecar" % case["name"])

    # ------------------------------------------------------------ requests

    def token_of(self, spec):
        """(token string or None, where) for a check's token spec."""
        if spec == "none":
            return None, None
        d = dict(self.table["defaults"]["token"])
        d.update({k: v for k, v in (spec or {}).items() if k != "claims"})
        where = d.get("in") or "authorization"
        if "raw" in d:
            return d["raw"], where
        now = int(time.time())
        claims = merge_claims(d["claims"], (spec or {}).get("claims"))
        for k in ("exp", "nbf", "iat"):
            if k in claims:
                claims[k] = now + int(claims[k])
        claims.setdefault("exp", now + 600)
        alg, key = self.keys[d["key"]]
        return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": d.get("kid") or d["key"]}), where

    def placed(self, path, token, where):
        """(path, headers) carrying the token where the check says."""
        headers = {}
        if token is None:
            return path, headers
        if where == "authorization":
            headers["Authorization"] = "Bearer " + token
        elif "header" in where:
            headers[where["header"]] = where.get("prefix", "") + token
        elif "param" in where:
            path += ("&" if "?" in path else "?") + "%s=%s" % (where["param"], token)
        return path, headers

    def send(self, path, headers, method="GET"):
        """One request to the sidecar's inbound port: its answer as the table writes it."""
        h = {"Host": self.host}
        h.update(headers)
        c = http.client.HTTPConnection("127.0.0.1", self.web.in_port, timeout=20)
        try:
            c.request(method, path, headers=h)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        if r.status == 200 and r.getheader("x-backend") == "web-app":
            return "ALLOW", body
        if r.status == 403 and body == DENIED_BODY:
            return "DENY", body
        if r.status in (401, 403) and r.getheader("www-authenticate", "").startswith("Bearer realm="):
            return "DENY (%d: %s)" % (r.status, body.decode(errors="replace")), body
        raise AssertionError("neither the application, RBAC nor jwt_authn answered: %d %r" % (r.status, body[:300]))

    def meshctl(self, method, path, headers, token, where):
        args = [MESHCTL, "authz", "check", "-f", self.ctl_dir, "-n", NS, "-l", "app=web", "--method", method,
                "--path", path, "--host", self.host, "--json"]
        if token is not None and where == "authorization":
            args += ["--jwt", token]
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
        for k, v in sorted(headers.items()):
            args += ["--header", "%s=%s" % (k.lower(), v)]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode not in (0, 1):
            raise AssertionError("meshctl authz check: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)["text"]

    # ------------------------------------------------------------ the table

    def test_1_jwt_decision_table_through_the_sidecar(self):
        defaults = self.table["defaults"]["request"]
        ran = 0
        for n, case in enumerate(self.table["cases"]):
            self.apply(n, case)
            for i, chk in enumerate(case["checks"]):
                req = dict(defaults)
                req.update(chk.get("request") or {})
                want = chk["expect"]
                with self.subTest(case=case["name"], check=i):
                    token, where = self.token_of(chk.get("token", "none"))
                    path, headers = self.placed(req["path"], token, where)
                    ctl = self.meshctl(req["method"], path, headers, token, where)
                    self.assertEqual(ctl, want, "meshctl vs table")
                    before = self.app.count()
                    got, body = self.send(path, headers, req["method"])
                    ran += 1
                    print("  %-42s #%d proxy=%-5s meshctl=%s" % (case["name"], i, got[:16], ctl))
                    if got in ("ALLOW", "DENY"):
                        self.assertEqual(got, want.split()[0], "proxy vs table (%r)" % body[:200])
                        self.assertFalse(want.startswith("DENY (40"), "proxy vs table: RBAC answered, not JWT")
                    else:
                        self.assertEqual(got, want, "proxy vs table")
                    self.assertEqual(self.app.count(), before + (got == "ALLOW"),
                                     "the application saw the request iff allowed")
        print("JWT authz through meshproxy: %d cases, %d requests (proxy = table = meshctl)" % (
            len(self.table["cases"]), ran))
        self.assertEqual(ran, sum(len(c["checks"]) for c in self.table["cases"]))

    def test_2_jwt_authn_stats(self):
        """http.<stat_prefix>.jwt_authn.allowed / denied on /stats and /stats/prometheus."""
        case = self.table["cases"][0]
        self.apply(1000, case)

        def counters():
            return {k: int(v) for k, v in self.web.stats().items() if ".jwt_authn." in k and v.isdigit()}
        before = counters()
        token, _ = self.token_of({})
        bad, _ = self.token_of({"key": "rogue", "kid": "rsa1"})
        self.assertEqual(self.send("/s", {"Authorization": "Bearer " + token})[0], "ALLOW")
        self.assertEqual(self.send("/s", {})[0], "ALLOW")          # missing: allowed by the filter
        self.assertEqual(self.send("/s", {"Authorization": "Bearer " + bad})[0],
                         "DENY (401: Jwt verification fails)")
        after = counters()
        # the chain that judged the requests (the inbound listener may hold others)
        names = [k for k in after if k.endswith(".jwt_authn.allowed") and after[k] != before.get(k, 0)]
        self.assertEqual(len(names), 1, after)
        prefix = names[0][:-len("allowed")]
        self.assertTrue(prefix.startswith("http.inbound_"), prefix)
        self.assertEqual(after[prefix + "allowed"] - before.get(prefix + "allowed", 0), 2, after)
        self.assertEqual(after[prefix + "denied"] - before.get(prefix + "denied", 0), 1, after)
        self.assertIn(prefix + "cors_preflight_bypassed", after)
        stat_prefix = prefix[len("http."):-len(".jwt_authn.")]
        prom = self.web.admin("/stats/prometheus")[1]
        self.assertIn("# TYPE envoy_http_jwt_authn_allowed counter", prom)
        self.assertIn('envoy_http_jwt_authn_allowed{http_conn_manager_prefix="%s"} %d' % (
            stat_prefix, after[prefix + "allowed"]), prom)
        self.assertIn('envoy_http_jwt_authn_denied{http_conn_manager_prefix="%s"} %d' % (
            stat_prefix, after[prefix + "denied"]), prom)

    def test_3_meshctl_jwt_edges(self):
        """--jwt and --jwt-claims exclude each other; an issuer whose keys meshd
        fetches (jwksUri) gets a note, and its token fails here as on the
        fallback key; without a RequestAuthentication --jwt is not read."""
        d = tempfile.mkdtemp(prefix="meshctl-jwt-edge-")
        try:
            token, _ = self.token_of({})
            base = [MESHCTL, "authz", "check", "-f", d, "-n", NS, "-l", "app=web", "--path", "/", "--method", "GET"]
            with open(os.path.join(d, "authn.yaml"), "w") as f:
                f.write("""apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: %s}
spec:
  selector:
    matchLabels: {app: web}
  jwtRules:
  - issuer: https://one.test
    jwksUri: http://127.0.0.1:1/jwks.json
""" % NS)
            r = subprocess.run(base + ["--jwt", token, "--jwt-claims", "{}"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            r = subprocess.run(base + ["--jwt", token], capture_output=True, text=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout.strip()),
                             (1, "DENY (401: Jwks doesn't have key to match kid or alg from Jwt)"), r.stderr)
            self.assertIn("issuer https://one.test has no inline jwks", r.stderr)
            os.unlink(os.path.join(d, "authn.yaml"))
            r = subprocess.run(base + ["--jwt", token], capture_output=True, text=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "ALLOW (no policy applies)"), r.stderr)
            self.assertIn("no RequestAuthentication applies", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
