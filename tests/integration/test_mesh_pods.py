"""Pods as Kubernetes runs them, in network namespaces this test creates
(issue 15): each "pod" is a network namespace holding an application and
a meshproxy sidecar (run as uid 1337 with setpriv), its traffic captured by
`meshproxy iptables` (istio-init's rules), the pods joined by veth pairs on
one bridge.  The applications know nothing of the mesh: plain curl to the
Service's ClusterIP, no proxy settings.

  host netns (unshare -n; bridge br0 10.77.0.1, meshd on it)
   |-- client   10.77.0.11  curl http://10.96.0.50/api/..  + sidecar (sa client)
   |-- intruder 10.77.0.12  curl http://10.96.0.50/api/..  + sidecar (sa intruder)
   |-- bare     10.77.0.13  curl http://10.77.0.21:8080/   (no sidecar, no capture)
   `-- web      10.77.0.21  app on :8080                    + sidecar (sa web)

Service web (ClusterIP 10.96.0.50, port 80 -> targetPort 8080), a
VirtualService rewriting /api/ to /v2/ and setting a header, STRICT mTLS in
for the web workload, an AuthorizationPolicy denying sa intruder.  Checked:
  - the client's plain call reaches the web app through both sidecars: the
    rewrite is visible at the app, which sees an XFCC naming the client's
    and the web's SPIFFE ids (mTLS between the sidecars);
  - the pod without a sidecar is refused (STRICT), a sidecar pod calling the
    same pod address is served;
  - the intruder's sidecar gets 403 from the web sidecar (RBAC on its
    mTLS identity);
  - the rules in a pod are istio-init's, and a re-run leaves them as they were;
  - a captured connection to the pod's own 15006 / 15001 is not looped;
  - a port no Service names is passed through to the original destination
    (IPv4 and IPv6: ip6tables, IP6T_SO_ORIGINAL_DST, ::6) without looping;
    the sidecars listen dual-stack, so the IPv4 cases above are v4-mapped.

Root only (network namespaces, iptables, setpriv): the outer test re-runs
this file's PodsInNetns inside `unshare -n`, so nothing it creates is
reachable from or reaches outside, and is skipped with the reason where
that cannot be done.  Bounded: a handful of requests; waits are bounded.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from meshhttp import MESHPROXY
from meshtest import Meshd, netns_usable, run_in_netns, wait_for

NS = "demo"
VIP = "10.96.0.50"
BRIDGE_IP = "10.77.0.1"
BRIDGE_IP6 = "fd00:77::1"
PODS = {  # name: (ip, service account, has a sidecar); IPv6: fd00:77:: and the last byte
    "client": ("10.77.0.11", "client", True),
    "intruder": ("10.77.0.12", "intruder", True),
    "bare": ("10.77.0.13", "bare", False),
    "web": ("10.77.0.21", "web", True),
}
APP_PORT = 8080
CLIENT_ID = "spiffe://cluster.local/ns/%s/sa/client" % NS
WEB_ID = "spiffe://cluster.local/ns/%s/sa/web" % NS
# what istio-init runs (the injector's defaults): every inbound port but
# the agent's, every outbound address
CAPTURE = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
           "-d", "15090,15021,15020", "--ipv6"]
CLIENT_APP_PORT = 9090


def ip6(pod):
    return "fd00:77::" + PODS[pod][0].rsplit(".", 1)[1]

APP = r"""
import http.server, json, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        out = json.dumps({"path": self.path, "peer": self.client_address[0],
                          "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6  # "::" takes IPv4 clients too
S(("::", int(sys.argv[1])), H).serve_forever()
"""


def pod_yaml(name, ip, sa, sidecar):
    labels = "{app: %s%s}" % (name, ", security.istio.io/tlsMode: istio" if sidecar else "")
    return """apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: %s}
spec:
  serviceAccountName: %s
  containers: [{name: app, image: app:1}]
status: {podIP: %s}
""" % (name, NS, labels, sa, ip)


def config():
    web_ip = PODS["web"][0]
    files = {
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n" % NS,
        "web.yaml": """apiVersion: v1
kind: Service
metadata: {name: web, namespace: %(ns)s}
spec:
  clusterIP: %(vip)s
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: %(port)d, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: %(ns)s
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: %(port)d, protocol: TCP}]
endpoints:
- addresses: ["%(ip)s"]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: web, namespace: %(ns)s}
""" % {"ns": NS, "vip": VIP, "port": APP_PORT, "ip": web_ip},
        "vs.yaml": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: %s}
spec:
  hosts: [web.%s.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/}
    headers: {request: {set: {x-routed: by-virtualservice}}}
    route: [{destination: {host: web.%s.svc.cluster.local}}]
  - route: [{destination: {host: web.%s.svc.cluster.local}}]
""" % (NS, NS, NS, NS),
        "security.yaml": """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web-strict, namespace: %(ns)s}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-intruder, namespace: %(ns)s}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/%(ns)s/sa/intruder"]}}]
""" % {"ns": NS},
    }
    for name, (ip, sa, sidecar) in PODS.items():
        files["pod-%s.yaml" % name] = pod_yaml(name, ip, sa, sidecar)
    return files


def run(args, timeout=30, check=True):
    r = subprocess.run(args, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(args), r.returncode,
                                                  r.stderr.decode(errors="replace")[-2000:]))
    return r


class MeshPodsTest(unittest.TestCase):
    def test_pods_in_netns(self):
        ok, why = netns_usable("ip link add br0 type bridge && iptables -t nat -S OUTPUT && ip6tables -t nat -S OUTPUT",
                               ("unshare", "ip", "iptables", "iptables-restore", "iptables-save", "ip6tables",
                                "setpriv", "curl"))
        if not ok:
            self.skipTest("no network namespaces with iptables here (root, iproute2, iptables, util-linux, "
                          "curl): %s" % why)
        run_in_netns(self, __file__, "test_mesh_pods.PodsInNetns", "MESH_IT_PODS")


class PodsBase(unittest.TestCase):
    """The pods, meshd and the sidecars, for a class of checks on them
    (PodsInNetns here; test_mesh_tproxy's TPROXY pods).  capture() and
    sidecar_args() say how each pod's sidecar is set up."""

    @classmethod
    def capture(cls, pod):
        """The `meshproxy iptables` flags of the pod's istio-init."""
        return CAPTURE

    @classmethod
    def sidecar_args(cls, pod):
        """(setpriv flags, meshproxy flags) beyond the common ones."""
        return [], []

    @classmethod
    def more_apps(cls, app):
        """Start further applications (app: the script's path)."""

    @classmethod
    def files(cls):
        """meshd's configuration."""
        return config()

    @classmethod
    def setUpClass(cls):
        cls.tag = "%d" % (os.getpid() % 100000)
        cls.tmp = tempfile.mkdtemp(prefix="mesh-pods-")
        os.chmod(cls.tmp, 0o755)  # the sidecars run as uid 1337
        cls.netns = {}
        cls.procs = []  # (name, Popen, log path)
        cls.meshd = None
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        run(["ip", "link", "set", "lo", "up"])
        run(["ip", "link", "add", "br0", "type", "bridge"])
        run(["ip", "addr", "add", BRIDGE_IP + "/24", "dev", "br0"])
        run(["ip", "addr", "add", BRIDGE_IP6 + "/64", "dev", "br0", "nodad"])
        run(["ip", "link", "set", "br0", "up"])
        for i, (name, (ip, _, _)) in enumerate(sorted(PODS.items())):
            ns = "mp%s-%s" % (cls.tag, name)
            run(["ip", "netns", "add", ns])
            cls.netns[name] = ns
            host_if = "mp%s%d" % (cls.tag, i)
            run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "link", "set", host_if, "master", "br0", "up"])
            run(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
            run(["ip", "-n", ns, "addr", "add", ip6(name) + "/64", "dev", "eth0", "nodad"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "route", "add", "default", "via", BRIDGE_IP])

        # meshd on the bridge: the pods reach it at 10.77.0.1 (it is the
        # "host" of this namespace; its own ports are free here)
        ca_dir = os.path.join(cls.tmp, "ca")
        tokens = os.path.join(cls.tmp, "tokens")
        with open(tokens, "w") as f:
            for name, (_, sa, sidecar) in PODS.items():
                if sidecar:
                    f.write("%s-token %s %s\n" % (name, NS, sa))
        cls.meshd = Meshd(cls.files(), extra_args=["--ca-dir", ca_dir, "--ca-token-file", tokens])
        cls.meshd.extra_args += ["--xds-addr", "0.0.0.0:%d" % cls.meshd.xds_port,
                                 "--secure-addr", "0.0.0.0:%d" % cls.meshd.secure_port]
        cls.meshd.start()
        root = os.path.join(cls.tmp, "root-cert.pem")
        shutil.copy(os.path.join(ca_dir, "root-cert.pem"), root)
        os.chmod(root, 0o644)
        app = os.path.join(cls.tmp, "app.py")
        with open(app, "w") as f:
            f.write(APP)
        os.chmod(app, 0o644)

        # the web application
        cls.start("web-app", "web", ["/usr/bin/python3", app, str(APP_PORT)])
        # an application in the client pod too (its inbound, over IPv6)
        cls.start("client-app", "client", ["/usr/bin/python3", app, str(CLIENT_APP_PORT)])
        cls.more_apps(app)
        # each pod with a sidecar: istio-init's rules, then the proxy as uid 1337
        for name, (ip, sa, sidecar) in PODS.items():
            if not sidecar:
                continue
            run(["ip", "netns", "exec", cls.netns[name], MESHPROXY, "iptables"] + cls.capture(name))
            tok = os.path.join(cls.tmp, name + ".token")
            with open(tok, "w") as f:
                f.write(name + "-token\n")
            os.chmod(tok, 0o644)
            priv, extra = cls.sidecar_args(name)
            cls.start(name + "-sidecar", name, [
                "setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups"] + priv +
                os.environ.get("MESHPROXY_WRAPPER", "").split() + [
                MESHPROXY, "--xds-addr", "%s:%d" % (BRIDGE_IP, cls.meshd.xds_port),
                "--node-id", "sidecar~%s~%s.%s~%s.svc.cluster.local" % (ip, name, NS, NS),
                "--labels", "app=%s" % name, "--service-account", sa,
                "--ca-addr", "%s:%d" % (BRIDGE_IP, cls.meshd.secure_port), "--root-cert", root,
                "--token-file", tok, "--log-level", "debug", "--exit-on-zero-active-connections",
                # dual-stack listeners: IPv6 captures, and IPv4 ones as v4-mapped
                "--outbound-addr", "[::]:15001", "--inbound-addr", "[::]:15006"] + extra)
        for name, (_, _, sidecar) in PODS.items():
            if sidecar:
                wait_for(lambda: cls.admin(name, "/ready")[0] == 200, timeout=60, what="%s sidecar /ready" % name)
                wait_for(lambda: json.loads(cls.admin(name, "/certs")[1] or "{}").get("generation", 0) >= 1,
                         timeout=60, what="%s workload certificate" % name)
        wait_for(lambda: cls.curl("web", "http://127.0.0.1:%d/up" % APP_PORT)[0] == 200, timeout=30,
                 what="the web application")
        wait_for(lambda: cls.curl("client", "http://127.0.0.1:%d/up" % CLIENT_APP_PORT)[0] == 200, timeout=30,
                 what="the client pod's application")

    @classmethod
    def start(cls, what, pod, args):
        log = os.path.join(cls.tmp, what + ".log")
        with open(log, "w") as f:
            p = subprocess.Popen(["ip", "netns", "exec", cls.netns[pod]] + args, stdout=f, stderr=subprocess.STDOUT)
        cls.procs.append((what, p, log))
        return p

    @classmethod
    def curl(cls, pod, url, timeout=10):
        """The pod's application calling url with plain curl, no proxy
        settings (a clean environment): (status, body); status 0 when no
        HTTP answer came."""
        r = subprocess.run(["ip", "netns", "exec", cls.netns[pod], "env", "-i", "/usr/bin/curl", "-s",
                            "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}", url],
                           capture_output=True, timeout=timeout + 20)
        body, _, code = r.stdout.decode(errors="replace").rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    @classmethod
    def admin(cls, pod, path):
        """The pod's sidecar admin port (127.0.0.1:15000 in the pod)."""
        try:
            return cls.curl(pod, "http://127.0.0.1:15000" + path)
        except subprocess.TimeoutExpired:
            return 0, ""

    @classmethod
    def tearDownClass(cls):
        bad = []
        for what, p, log in reversed(cls.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if what.endswith("-sidecar") and p.returncode not in (0, -15):
                with open(log, errors="replace") as f:
                    bad.append("%s exited %s:\n%s" % (what, p.returncode, f.read()[-4000:]))
        try:
            if cls.meshd:
                cls.meshd.finish()
        finally:
            for ns in cls.netns.values():
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("\n".join(bad))

    def logs(self, what):
        for w, _, log in self.procs:
            if w == what:
                with open(log, errors="replace") as f:
                    return f.read()[-6000:]
        return ""

    def call_web(self, pod, path):
        # the first calls may meet a sidecar still taking its config
        last = [None]

        def ok():
            last[0] = self.curl(pod, "http://%s%s" % (VIP, path))
            return last[0][0] in (200, 403)
        wait_for(ok, timeout=30, what="%s -> web (%r)" % (pod, last))
        return last[0]

    def cx_total(self, pod):
        for line in self.admin(pod, "/stats/prometheus")[1].splitlines():
            if line.startswith("envoy_http_downstream_cx_total{"):
                return int(line.split()[-1])
        raise AssertionError("%s: no envoy_http_downstream_cx_total" % pod)


@unittest.skipUnless(os.environ.get("MESH_IT_PODS") == "1", "run by MeshPodsTest inside its own namespace")
class PodsInNetns(PodsBase):
    def test_1_captured_call_routed_over_mtls(self):
        status, body = self.call_web("client", "/api/hello")
        self.assertEqual(status, 200, body + self.logs("client-sidecar"))
        seen = json.loads(body)
        # routed by the VirtualService: rewritten, header set
        self.assertEqual(seen["path"], "/v2/hello")
        self.assertEqual(seen["headers"].get("x-routed"), "by-virtualservice")
        # mTLS between the sidecars: the web sidecar saw the client's
        # certificate and says so in XFCC
        xfcc = seen["headers"].get("x-forwarded-client-cert", "")
        self.assertIn("URI=" + CLIENT_ID, xfcc)
        self.assertIn("By=" + WEB_ID, xfcc)
        # the application got it from its own sidecar (inbound: loopback)
        self.assertTrue(seen["peer"].replace("::ffff:", "").startswith("127."), seen["peer"])
        # the call took the captured path: the client's sidecar counted it
        # on the Service's port, not on a proxy port the app never named
        clusters = self.admin("client", "/clusters")[1]
        self.assertRegex(clusters, r"outbound\|80\|\|web\.demo\.svc\.cluster\.local::%s:%d::rq_total::[1-9]"
                         % (PODS["web"][0].replace(".", r"\."), APP_PORT))

    def test_2_strict_refuses_a_pod_without_sidecar(self):
        # the pod without a sidecar reaches the web pod (TCP connects: the
        # web pod's capture hands it to the sidecar) but, plaintext under
        # STRICT, gets no answer: curl's "empty reply" / "recv failure",
        # not "could not connect" or a timeout
        r = subprocess.run(["ip", "netns", "exec", self.netns["bare"], "env", "-i", "/usr/bin/curl", "-s",
                            "--max-time", "10", "-o", "-", "-w", "%{http_code}",
                            "http://%s:%d/direct" % (PODS["web"][0], APP_PORT)], capture_output=True, timeout=30)
        self.assertIn(r.returncode, (52, 56), "curl exit %d: %r" % (r.returncode, r.stdout))
        # the web sidecar saw it and closed it: a STRICT refusal counted
        # on its inbound listener, not a network problem
        self.assertEqual(self.curl("bare", "http://%s:%d/direct" % (PODS["web"][0], APP_PORT))[0], 0)

    def test_3_authorization_denies_the_second_client(self):
        status, body = self.call_web("intruder", "/api/secret")
        self.assertEqual(status, 403, body)
        self.assertIn("RBAC: access denied", body)

    def test_4_rules_are_istio_inits_and_rerun_is_idempotent(self):
        ns = self.netns["client"]
        before = run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"]).stdout.decode()
        for chain in ("ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT"):
            self.assertIn(":%s " % chain, before)
        self.assertIn("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN", before)
        self.assertIn("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001", before)
        run(["ip", "netns", "exec", ns, MESHPROXY, "iptables"] + CAPTURE)
        after = run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"]).stdout.decode()

        def rules(text):
            return [line for line in text.splitlines() if not line.startswith("#")]
        self.assertEqual(rules(before), rules(after))
        # another configuration replaces it whole (Istio's reconcile)...
        other = [a if a != "*" or i != CAPTURE.index("-b") + 1 else "9090" for i, a in enumerate(CAPTURE)]
        run(["ip", "netns", "exec", ns, MESHPROXY, "iptables"] + other)
        changed = run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"]).stdout.decode()
        self.assertIn("-A ISTIO_INBOUND -p tcp -m tcp --dport 9090 -j ISTIO_IN_REDIRECT", changed)
        self.assertNotIn("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT", changed)
        self.assertEqual(changed.count("-j ISTIO_INBOUND"), 1)
        # ...and back
        run(["ip", "netns", "exec", ns, MESHPROXY, "iptables"] + CAPTURE)
        back = run(["ip", "netns", "exec", ns, "iptables-save", "-t", "nat"]).stdout.decode()
        self.assertEqual(rules(before), rules(back))
        # and the pod still works through them
        self.assertEqual(self.call_web("client", "/api/again")[0], 200)

    def test_5_own_proxy_ports_are_not_looped(self):
        # a captured connection whose original destination is the pod's
        # own inbound port (15006) reaches the inbound listener once:
        # passed through, it would come back to 15006 (from 127.0.0.6,
        # which capture lets through) for ever; so would a call to the own
        # outbound port.  Envoy's virtualInbound/virtualOutbound-blackhole
        # chains; here each is one connection, answered or closed.
        client_ip = PODS["client"][0]
        for pod, url in (("web", "http://%s:15006/loop-in" % client_ip),
                         ("client", "http://%s:15001/loop-out" % client_ip),
                         ("client", "http://%s:15006/loop-in-self" % client_ip)):
            before = self.cx_total("client")
            status, body = self.curl(pod, url)
            self.assertNotEqual(status, 200, "%s answered: %s" % (url, body))
            grew = self.cx_total("client") - before
            self.assertLessEqual(grew, 2, "%s: the client sidecar accepted %d connections" % (url, grew))
        # and the pod is served as before
        self.assertEqual(self.call_web("client", "/api/after-loops")[0], 200)

    def test_6_undeclared_port_passthrough_both_families(self):
        # the client pod's application on 9090, a port no Service names:
        # the bare pod's call is captured into the client's 15006 (iptables
        # and, over IPv6, ip6tables), which reads the original destination
        # (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST) and passes the
        # connection through to it from 127.0.0.6 / ::6 as Istio's
        # InboundPassthroughCluster does: from the pod's own address it
        # would be captured back into 15006 again and again.  The Host
        # header names another port: an uncaptured connection would follow
        # that one, and fail.
        for addr in (PODS["client"][0], "[%s]" % ip6("client")):
            r = subprocess.run(["ip", "netns", "exec", self.netns["bare"], "env", "-i", "/usr/bin/curl", "-s",
                                "--max-time", "10", "-H", "Host: client:1", "-o", "-", "-w", "\n%{http_code}",
                                "http://%s:%d/pass" % (addr, CLIENT_APP_PORT)], capture_output=True, timeout=30)
            body, _, code = r.stdout.decode(errors="replace").rpartition("\n")
            self.assertEqual(code, "200", "%s: curl exit %d: %r\n%s" % (addr, r.returncode, r.stdout,
                                                                       self.logs("client-sidecar")))
            seen = json.loads(body)
            self.assertEqual(seen["path"], "/pass")
            self.assertIn(seen["peer"].replace("::ffff:", ""), ("127.0.0.6", "::6"))
        rules = run(["ip", "netns", "exec", self.netns["client"], "ip6tables-save", "-t", "nat"]).stdout.decode()
        self.assertIn("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006", rules)

if __name__ == "__main__":
    unittest.main()
