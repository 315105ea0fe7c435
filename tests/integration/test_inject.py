"""meshd's admission webhook port (--webhook-addr) and /inject, against real
peers: curl over TLS verifying meshd's serving certificate with meshd's own
root (the caBundle the webhook configurations carry) for
istiod.istio-system.svc, as the API server calls it.

Cases: an AdmissionReview for a Pod in a namespace labelled
istio-injection=enabled (a Namespace object meshd serves) gets a JSONPatch
that applies to the Pod and adds istio-init (`meshproxy iptables`) and
istio-proxy reaching istiod.istio-system.svc:15012 with the istio-ca token;
relabelling the namespace disabled is followed live (allowed, no patch); a
bad annotation is refused with its reason; the server refuses GET, other
content types and callers that do not trust meshd's root; the
sidecar_injection_* counters count each outcome; `meshctl kube-inject`
injects a Deployment's pod template with the same code.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import yaml

from meshtest import BUILD, MESHCTL, Meshd, free_port, wait_for

MESHPROXY = os.path.join(BUILD, "bin", "meshproxy")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "inject"))
from run import apply_patch  # noqa: E402  (tests/inject/run.py: python3-jsonpatch, or our own applier)

SVC = "istiod.istio-system.svc"

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio-injection: %s}
"""

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "version": "v1"},
                 "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}},
    "spec": {"serviceAccountName": "web",
             "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080}],
                             "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]},
}

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  replicas: 1
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews, version: v1}
    spec:
      containers:
      - name: reviews
        image: reviews:v1
        livenessProbe: {tcpSocket: {port: 9080}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  ports: [{port: 9080, name: http}]
"""


def review(pod, uid="7f0b2891-916f-4ed6-b7cd-27bff1815a8c"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": pod["metadata"]["namespace"], "operation": "CREATE", "object": pod}}


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return 0.0


class InjectWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meshd = Meshd(files={"ns.yaml": NAMESPACE % "enabled"})
        cls.tokens = os.path.join(cls.meshd.dir, "tokens")
        with open(cls.tokens, "w") as f:
            f.write("web-token shop web\n")
        cls.meshd.extra_args = ["--ca-dir", os.path.join(cls.meshd.dir, "ca"), "--webhook-dns", "meshd.test,127.0.0.1",
                                "--ca-token-file", cls.tokens]
        cls.meshd.start()
        cls.root = os.path.join(cls.meshd.dir, "ca", "root-cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def curl(self, path, body=None, ctype="application/json", method="POST", cacert=True):
        """(exit code, HTTP status, body) of one call to meshd's webhook port."""
        port = self.meshd.webhook_port
        args = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", "-X", method,
                "--resolve", "%s:%d:127.0.0.1" % (SVC, port), "https://%s:%d%s" % (SVC, port, path)]
        if cacert:
            args += ["--cacert", self.root]
        if ctype:
            args += ["-H", "Content-Type: " + ctype]
        if body is not None:
            args += ["--data-binary", "@-"]
        p = subprocess.run(args, input=(body or "").encode(), capture_output=True, timeout=30)
        out = p.stdout.decode()
        text, _, status = out.rpartition("\n")
        return p.returncode, int(status) if status.isdigit() else 0, text

    def inject(self, pod):
        rc, status, text = self.curl("/inject", json.dumps(review(pod)))
        self.assertEqual((rc, status), (0, 200), text)
        return json.loads(text)["response"]

    def test_pod_injected_and_patch_applies(self):
        r = self.inject(POD)
        self.assertEqual(r["uid"], "7f0b2891-916f-4ed6-b7cd-27bff1815a8c")
        self.assertTrue(r["allowed"])
        self.assertEqual(r["patchType"], "JSONPatch")
        pod = apply_patch(POD, json.loads(base64.b64decode(r["patch"])))
        names = [c["name"] for c in pod["spec"]["containers"]]
        self.assertEqual(names, ["web", "istio-proxy"])
        proxy = pod["spec"]["containers"][1]
        self.assertEqual(proxy["command"], ["meshproxy"])
        self.assertEqual(proxy["args"][:4], ["--xds-addr", SVC + ":15012", "--ca-addr", SVC + ":15012"])
        init = pod["spec"]["initContainers"][-1]
        self.assertEqual(init["name"], "istio-init")
        self.assertEqual(init["args"][:9], ["iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"])
        self.assertEqual(init["args"][-2:], ["-o", "5432"])
        token = [v for v in pod["spec"]["volumes"] if v["name"] == "istio-token"][0]
        self.assertEqual(token["projected"]["sources"][0]["serviceAccountToken"]["audience"], "istio-ca")
        self.assertEqual(pod["spec"]["containers"][0]["readinessProbe"]["httpGet"],
                         {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"})
        self.assertIn("sidecar.istio.io/status", pod["metadata"]["annotations"])
        self.assertEqual(pod["metadata"]["annotations"]["prometheus.io/port"], "15020")
        # the user's own members are kept
        self.assertEqual(pod["metadata"]["labels"]["version"], "v1")
        self.assertEqual(pod["spec"]["serviceAccountName"], "web")

    def test_namespace_label_followed_live_and_errors_refused(self):
        try:
            self.meshd.write("ns.yaml", NAMESPACE % "disabled")
            wait_for(lambda: "patch" not in self.inject(POD), what="injection off after relabelling")
            r = self.inject(POD)
            self.assertTrue(r["allowed"])
        finally:
            self.meshd.write("ns.yaml", NAMESPACE % "enabled")
        wait_for(lambda: "patch" in self.inject(POD), what="injection back on")
        bad = json.loads(json.dumps(POD))
        bad["metadata"]["annotations"]["sidecar.istio.io/interceptionMode"] = "MAGIC"
        r = self.inject(bad)
        self.assertFalse(r["allowed"])
        self.assertIn("interceptionMode", r["status"]["message"])
        # status.sidecar.istio.io/port is validated as istiod's parsePort does (0-65535)
        for port in ("15o20", "65536", "-1"):
            bad = json.loads(json.dumps(POD))
            bad["metadata"]["annotations"]["status.sidecar.istio.io/port"] = port
            r = self.inject(bad)
            self.assertFalse(r["allowed"], port)
            self.assertIn("status.sidecar.istio.io/port", r["status"]["message"])

    def test_server_refusals(self):
        self.assertEqual(self.curl("/inject", method="GET", ctype=None)[1], 405)
        self.assertEqual(self.curl("/inject", "{}", ctype="text/plain")[1], 415)
        self.assertEqual(self.curl("/nope", "{}")[1], 404)
        self.assertEqual(self.curl("/inject", "")[1], 400)
        # a caller without meshd's root cannot verify the certificate
        rc, status, _ = self.curl("/inject", "{}", cacert=False)
        self.assertEqual(rc, 60)  # curl: peer certificate cannot be authenticated
        # not JSON: refused in the AdmissionReview, as istiod
        rc, status, text = self.curl("/inject", "{not json")
        self.assertEqual(status, 200)
        self.assertFalse(json.loads(text)["response"]["allowed"])

    def test_injected_proxy_command_runs(self):
        """istio-proxy's command line from the patch, run as the kubelet
        would (downward-API variables expanded; the mounted token and root
        at local paths; meshd's 15012 at its test port; listeners on free
        ports): meshproxy gets its certificate and configuration from meshd
        over TLS and turns ready."""
        pod = apply_patch(POD, json.loads(base64.b64decode(self.inject(POD)["patch"])))
        proxy = [c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy"][0]
        env = {"INSTANCE_IP": "127.0.0.1", "POD_NAME": "web", "POD_NAMESPACE": "shop", "SERVICE_ACCOUNT": "web"}
        token = os.path.join(self.meshd.dir, "istio-token")
        with open(token, "w") as f:
            f.write("web-token")
        local = {"/var/run/secrets/istio/root-cert.pem": self.root, "/var/run/secrets/tokens/istio-token": token,
                 SVC + ":15012": "127.0.0.1:%d" % self.meshd.secure_port}
        args = []
        for a in proxy["args"]:
            for k, v in env.items():
                a = a.replace("$(%s)" % k, v)
            args.append(local.get(a, a))
        self.assertIn("--ca-server-name", args)
        health, admin = free_port(), free_port()
        log = open(os.path.join(self.meshd.dir, "proxy.log"), "w")
        self.assertEqual(proxy["command"], ["meshproxy"])
        p = subprocess.Popen([MESHPROXY] + args + [
            "--admin-addr", "127.0.0.1:%d" % admin, "--outbound-addr", "127.0.0.1:%d" % free_port(),
            "--inbound-addr", "127.0.0.1:%d" % free_port(), "--status-addr", "",
            "--health-addr", "127.0.0.1:%d" % health, "--exit-on-zero-active-connections"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            def ready():
                if p.poll() is not None:
                    raise AssertionError("meshproxy exited %s: %s" % (p.returncode, open(log.name).read()))
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/healthz/ready" % health, timeout=5) as r:
                        return r.status == 200
                except OSError:
                    return False
            wait_for(ready, timeout=60, what="the injected meshproxy ready (certificate + config from meshd)")
        finally:
            p.terminate()
            p.wait(timeout=30)
            log.close()

    def test_extra_names_and_addresses(self):
        """--webhook-dns names (and addresses: a clientConfig.url by IP) are in the certificate."""
        port = self.meshd.webhook_port
        body = json.dumps(review(POD))
        for url, extra in (("https://127.0.0.1:%d/inject" % port, []),
                           ("https://meshd.test:%d/inject" % port, ["--resolve", "meshd.test:%d:127.0.0.1" % port])):
            p = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", self.root, "-H",
                                "Content-Type: application/json", "--data-binary", "@-", url] + extra,
                               input=body.encode(), capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(json.loads(p.stdout)["response"]["allowed"])

    def test_stalled_clients_block_no_one(self):
        """Connections that never finish their TLS handshake, or their
        request, hold nothing another caller needs (checked by outcome)."""
        stalled = []
        try:
            for i in range(8):
                s = socket.create_connection(("127.0.0.1", self.meshd.webhook_port), timeout=10)
                if i % 2:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
                stalled.append(s)
            self.assertIn("patch", self.inject(POD))
        finally:
            for s in stalled:
                s.close()
        # garbage and plaintext HTTP on the TLS port: those connections end, the port serves on
        for junk in (b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x16\x03\x01\xff\xff" + b"A" * 70000):
            s = socket.create_connection(("127.0.0.1", self.meshd.webhook_port), timeout=10)
            try:
                s.sendall(junk)
                s.recv(4096)
            except OSError:
                pass
            finally:
                s.close()
        self.assertIn("patch", self.inject(POD))

    def test_trickled_heads_closed_at_head_deadline(self):
        """A TLS handshake, a request head, and a keep-alive connection's
        second head, each trickled a byte every 2 s (under the 10 s idle
        deadline), are closed by the head deadline and counted as
        limit=webhook_head_timeout; before it a head was held for ever (one
        address could hold half the 1024 slots, two all of them), and only
        GnuTLS's own 40 s handshake timeout ended a handshake (uncounted)."""
        port = self.meshd.webhook_port
        ctx = ssl.create_default_context(cafile=self.root)
        body = json.dumps(review(POD)).encode()
        full = (b"POST /inject HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (SVC.encode(), len(body))) + body
        head = b"POST /inject HTTP/1.1\r\nHost: " + SVC.encode() + b"\r\nX-Slow: " + b"a" * 200

        def client_hello():
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(inc, out, server_hostname=SVC)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            return out.read()

        def trickle(sock, data):
            """True once the server ends the connection (within 30 bytes, 60 s)."""
            for b in data[:30]:
                try:
                    sock.sendall(bytes([b]))
                    sock.settimeout(2)
                    got = sock.recv(4096)
                    if got == b"" or got[:1] == b"\x15":  # closed, or a TLS alert (then closed)
                        return True
                except socket.timeout:
                    continue
                except (OSError, ssl.SSLError):
                    return True
                return "answered: %r" % got[:40]
            return False

        def handshake_case():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                return trickle(s, client_hello())

        def head_case():
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=SVC)
            with s:
                return trickle(s, head)

        def keepalive_case():
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=SVC)
            with s:
                s.sendall(full)
                got = b""
                while b"\r\n\r\n" not in got:
                    got += s.recv(65536)
                hdr, _, rest = got.partition(b"\r\n\r\n")
                n = int([line.split(b":")[1] for line in hdr.split(b"\r\n")
                         if line.lower().startswith(b"content-length:")][0])
                while len(rest) < n:
                    rest += s.recv(65536)
                if not hdr.startswith(b"HTTP/1.1 200"):
                    return "first request: " + hdr[:40].decode()
                return trickle(s, head)

        def counted():
            return sample(self.meshd.http("/metrics")[1], 'meshd_limit_exceeded_total{limit="webhook_head_timeout"}')

        before = counted()
        cases = {"handshake": handshake_case, "head": head_case, "keep-alive head": keepalive_case}
        results = {}

        def run(name):
            try:
                results[name] = cases[name]()
            except Exception as e:  # noqa: BLE001  (reported by name below)
                results[name] = repr(e)

        threads = [threading.Thread(target=run, args=(name,)) for name in cases]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(results, {name: True for name in cases})
        self.assertGreaterEqual(counted() - before, len(cases))
        self.assertIn("patch", self.inject(POD))

    def test_admitted_capture_annotations_start_istio_init(self):
        """Hostile traffic.sidecar.istio.io/* and interception values: each
        is refused at admission with the annotation named, or admitted with
        an istio-init whose arguments `meshproxy iptables` takes and whose
        rules iptables-restore / ip6tables-restore --test accept (as root, in
        a network namespace of the test's own).  A pod admitted with an
        istio-init that exits 1 never starts."""
        hostile = [
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "8080, 9090"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "0,65535"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "99999"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "80;reboot"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "1:2"),
            ("traffic.sidecar.istio.io/includeInboundPorts", "8080, 9090"),
            ("traffic.sidecar.istio.io/includeInboundPorts", "* "),
            ("traffic.sidecar.istio.io/excludeInboundPorts", ",".join(str(10000 + i) for i in range(250))),
            ("traffic.sidecar.istio.io/excludeInboundPorts", ",".join(str(10000 + i) for i in range(300))),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8, 172.16.0.0/12"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/+8"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8,fd00::/8,::ffff:10.0.0.1/128"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", " *"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "-j ACCEPT"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.1/32\n-A OUTPUT -j DROP"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "fe80::1%eth0/64"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", ",".join("10.%d.0.0/16" % i for i in range(250))),
        ]
        restore = os.geteuid() == 0 and subprocess.run(["unshare", "-n", "true"]).returncode == 0
        for key, value in hostile:
            pod = json.loads(json.dumps(POD))
            pod["metadata"]["annotations"] = {key: value}
            r = self.inject(pod)
            if not r["allowed"]:
                self.assertIn(key, r["status"]["message"], value)
                continue
            ops = json.loads(base64.b64decode(r["patch"]))
            init = [c for op in ops if op["path"] == "/spec/initContainers" for c in op["value"]
                    if c["name"] == "istio-init"][0]
            self.assertEqual(init["command"], ["meshproxy"])
            for fam in ("--ipv6=false", "--ipv6=true"):
                p = subprocess.run([MESHPROXY] + init["args"] + ["--dry-run", fam], capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, "%s=%r admitted, istio-init refuses it: %s"
                                 % (key, value, p.stderr.decode()[:300]))
                if fam == "--ipv6=false":
                    v4 = p.stdout
                else:
                    v6 = p.stdout[len(v4):]
            if restore:
                for tool, text in (("iptables-restore", v4), ("ip6tables-restore", v6)):
                    t = subprocess.run(["unshare", "-n", tool, "--test"], input=text, capture_output=True, timeout=30)
                    self.assertEqual(t.returncode, 0, "%s=%r: %s refuses: %s"
                                     % (key, value, tool, t.stderr.decode()[:300]))

    def test_burst_from_one_address_all_answered(self):
        """The API server calls from one address with a connection per
        admission in flight: 100 at once all get their answer (the 65th
        and later were closed unanswered)."""
        ctx = ssl.create_default_context(cafile=self.root)
        body = json.dumps(review(POD)).encode()
        req = (b"POST /inject HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % (SVC.encode(), len(body))) + body
        conns = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.meshd.webhook_port), timeout=30),
                                 server_hostname=SVC, do_handshake_on_connect=False) for _ in range(100)]
        answers = [None] * len(conns)

        def call(i):
            try:
                conns[i].do_handshake()
                conns[i].sendall(req)
                answers[i] = conns[i].recv(64)[:12]
            except OSError as e:
                answers[i] = repr(e)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(conns))]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            for c in conns:
                c.close()
        failed = [a for a in answers if a != b"HTTP/1.1 200"]
        self.assertEqual(failed, [], "%d of 100 unanswered" % len(failed))

    def test_metrics_count_outcomes(self):
        def counts():
            m = self.meshd.http("/metrics")[1]
            return {k: sample(m, "sidecar_injection_%s_total" % k) for k in ("requests", "success", "skip", "failure")}
        before = counts()
        self.inject(POD)
        skipped = json.loads(json.dumps(POD))
        skipped["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
        self.inject(skipped)
        after = counts()
        self.assertGreaterEqual(after["requests"] - before["requests"], 2)
        self.assertGreaterEqual(after["success"] - before["success"], 1)
        self.assertGreaterEqual(after["skip"] - before["skip"], 1)

    def test_kube_inject_deployment(self):
        path = os.path.join(self.meshd.dir, "deploy.yaml")
        with open(path, "w") as f:
            f.write(DEPLOYMENT)
        docs_in = list(yaml.safe_load_all(DEPLOYMENT))
        p = subprocess.run([MESHCTL, "kube-inject", "-f", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        # YAML as istioctl prints it: block style, "---" between documents, and
        # every value reads back as the JSON form has it (ports stay strings)
        self.assertFalse(p.stdout.lstrip().startswith("{"), p.stdout[:200])
        self.assertIn("\n---\n", p.stdout)
        docs = list(yaml.safe_load_all(p.stdout))
        j = subprocess.run([MESHCTL, "kube-inject", "-o", "json", "-f", path], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(j.returncode, 0, j.stderr)
        self.assertEqual(docs, [json.loads(d) for d in j.stdout.split("\n---\n")])
        ann = docs[0]["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual((ann["prometheus.io/port"], ann["prometheus.io/scrape"]), ("15020", "true"))
        bad = subprocess.run([MESHCTL, "kube-inject", "-o", "xml", "-f", path], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("yaml or json", bad.stderr)
        self.assertEqual([d["kind"] for d in docs], ["Deployment", "Service"])
        # a List (kubectl get -o yaml): each item injected, as istioctl walks it
        path_list = os.path.join(self.meshd.dir, "list.yaml")
        with open(path_list, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                            "items": docs_in}, f)
        lp = subprocess.run([MESHCTL, "kube-inject", "-f", path_list], capture_output=True, text=True, timeout=30)
        self.assertEqual(lp.returncode, 0, lp.stderr)
        (lst,) = list(yaml.safe_load_all(lp.stdout))
        self.assertEqual((lst["kind"], lst["metadata"]), ("List", {"resourceVersion": ""}))
        self.assertEqual(lst["items"], docs)
        tmpl = docs[0]["spec"]["template"]
        self.assertEqual([c["name"] for c in tmpl["spec"]["containers"]], ["reviews", "istio-proxy"])
        self.assertEqual(tmpl["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"],
                         "/app-health/reviews/livez")
        # the Deployment's name is the workload's (Istio's DeploymentMeta), not the empty template's
        env = {e["name"]: e.get("value") for e in tmpl["spec"]["containers"][1]["env"]}
        self.assertEqual(env["ISTIO_META_WORKLOAD_NAME"], "reviews-v1")
        # and its owner as istiod's template names it (the Deployment's apiVersion, kind and namespace)
        ns = docs_in[0]["metadata"].get("namespace", "default")
        self.assertEqual(env["ISTIO_META_OWNER"],
                         "kubernetes://apis/apps/v1/namespaces/%s/deployments/reviews-v1" % ns)
        self.assertEqual(docs[0]["spec"]["selector"], {"matchLabels": {"app": "reviews"}})
        self.assertEqual(docs[1]["spec"]["ports"], [{"port": 9080, "name": "http"}])


class InjectSelectionTest(unittest.TestCase):
    """Which Pods are injected, as Istio decides it: the injector's webhooks
    (deploy/webhooks.yaml, Istio's chart) call only for the namespace and
    Pod labels their selectors match -- never for an annotation, and a
    namespace's istio.io/rev wins over the Pod's -- then istiod's
    injectRequired skips only sidecar.istio.io/inject "false" (label, else
    annotation); any other value ("yes", "False", "no") injects, with
    istiod's warning.  Run through `meshctl kube-inject --review`, the code
    meshd's /inject runs."""

    CASES = [
        # (namespace labels, Pod labels, Pod annotations, injected?)
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "yes"}, {}, True),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "False"}, {}, True),
        ({"istio-injection": "enabled"}, {}, {"sidecar.istio.io/inject": "no"}, True),
        ({"istio-injection": "enabled"}, {}, {"sidecar.istio.io/inject": "false"}, False),
        ({"istio-injection": "enabled"}, {"istio.io/rev": "canary"}, {}, True),
        ({"istio-injection": "enabled", "istio.io/rev": "default"}, {}, {}, True),
        ({"istio-injection": "disabled", "istio.io/rev": "default"}, {}, {}, False),
        ({}, {"sidecar.istio.io/inject": "yes"}, {}, False),
        ({}, {}, {"sidecar.istio.io/inject": "true"}, False),
        ({}, {"sidecar.istio.io/inject": "true", "istio.io/rev": "canary"}, {}, False),
        ({}, {"istio.io/rev": "default"}, {"sidecar.istio.io/inject": "false"}, False),
        ({"istio.io/rev": "canary"}, {"istio.io/rev": "default"}, {}, False),
        ({"istio.io/rev": "canary"}, {"sidecar.istio.io/inject": "true"}, {}, False),
        ({"istio.io/rev": "default"}, {"istio.io/rev": "canary"}, {}, True),
        ({"istio.io/rev": "default"}, {"sidecar.istio.io/inject": "false"}, {}, False),
    ]

    def test_selection_as_istio(self):
        tmp = tempfile.mkdtemp(prefix="meshd-inject-sel-")
        try:
            for ns_labels, labels, ann, want in self.CASES:
                pod = json.loads(json.dumps(POD))
                pod["metadata"]["labels"].update(labels)
                pod["metadata"]["annotations"].update(ann)
                path = os.path.join(tmp, "review.json")
                with open(path, "w") as f:
                    json.dump(review(pod), f)
                args = [MESHCTL, "kube-inject", "--review", "-f", path]
                if ns_labels:
                    args += ["--namespace-labels", ",".join("%s=%s" % kv for kv in ns_labels.items())]
                p = subprocess.run(args, capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                resp = json.loads(p.stdout)["response"]
                self.assertTrue(resp["allowed"], resp)
                self.assertEqual("patch" in resp, want, (ns_labels, labels, ann))
            # and in namespaces istiod never injects
            for ns in ("kube-node-lease", "local-path-storage"):
                pod = json.loads(json.dumps(POD))
                pod["metadata"]["namespace"] = ns
                with open(path, "w") as f:
                    json.dump(review(pod), f)
                p = subprocess.run([MESHCTL, "kube-inject", "--review", "-f", path, "--namespace-labels",
                                    "istio-injection=enabled"], capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertNotIn("patch", json.loads(p.stdout)["response"], ns)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class InjectReadinessTest(unittest.TestCase):
    """readiness.status.sidecar.istio.io/initialDelaySeconds|periodSeconds|failureThreshold set
    istio-proxy's readiness probe as Istio's template does (validated as istiod's validateUInt32;
    a number written back as a number, "007" as 7)."""

    def review(self, ann):
        pod = json.loads(json.dumps(POD))
        pod["metadata"]["annotations"].update(ann)
        tmp = tempfile.mkdtemp(prefix="meshd-inject-ready-")
        try:
            path = os.path.join(tmp, "review.json")
            with open(path, "w") as f:
                json.dump(review(pod), f)
            p = subprocess.run([MESHCTL, "kube-inject", "--review", "-f", path, "--namespace-labels",
                                "istio-injection=enabled"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            return pod, json.loads(p.stdout)["response"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def probe(self, ann):
        pod, resp = self.review(ann)
        out = apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))
        return [c for c in out["spec"]["containers"] if c["name"] == "istio-proxy"][0]["readinessProbe"]

    def test_readiness_annotations(self):
        self.assertEqual(self.probe({}), {"failureThreshold": 4, "httpGet": {"path": "/healthz/ready", "port": 15021,
                                                                               "scheme": "HTTP"},
                                          "periodSeconds": 15, "timeoutSeconds": 3})
        p = self.probe({"readiness.status.sidecar.istio.io/initialDelaySeconds": "007",
                        "readiness.status.sidecar.istio.io/periodSeconds": "2",
                        "readiness.status.sidecar.istio.io/failureThreshold": "30"})
        self.assertEqual((p["initialDelaySeconds"], p["periodSeconds"], p["failureThreshold"]), (7, 2, 30))
        for bad in ("-1", "1.5", "4294967296", "", "ten"):
            _, resp = self.review({"readiness.status.sidecar.istio.io/periodSeconds": bad})
            self.assertFalse(resp["allowed"], bad)
            self.assertIn("readiness.status.sidecar.istio.io/periodSeconds", resp["status"]["message"])


class InjectKubeTest(unittest.TestCase):
    """meshd on the (fake) Kubernetes API: the namespace labels come from
    the Namespace objects it watches."""

    @classmethod
    def setUpClass(cls):
        from test_kube import FakeApi
        cls.api = FakeApi()
        cls.api.apply({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}})
        cls.meshd = Meshd(kubeconfig=cls.api.kubeconfig())
        cls.meshd.extra_args = ["--ca-dir", os.path.join(cls.meshd.dir, "ca")]
        cls.meshd.start()
        cls.root = os.path.join(cls.meshd.dir, "ca", "root-cert.pem")

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish(cls.api)

    def inject(self, pod):
        return InjectWebhookTest.inject(self, pod)

    def curl(self, *a, **kw):
        return InjectWebhookTest.curl(self, *a, **kw)

    def test_namespace_labels_from_the_api(self):
        self.assertIn("patch", self.inject(POD))
        self.api.apply({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "shop", "labels": {"istio-injection": "disabled"}}})
        wait_for(lambda: "patch" not in self.inject(POD), what="the relabelled Namespace seen through the watch")
        self.api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        other = json.loads(json.dumps(POD))
        other["metadata"]["namespace"] = "other"
        self.assertNotIn("patch", self.inject(other))


if __name__ == "__main__":
    unittest.main()
