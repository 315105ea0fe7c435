"""TPROXY interception end to end (issue 15), in network namespaces this
test creates, with test_mesh_pods' pods (its helpers, not a copy): the web
pod is annotated sidecar.istio.io/interceptionMode: TPROXY, so its
istio-init is `meshproxy iptables -m TPROXY` (mangle ISTIO_DIVERT /
ISTIO_TPROXY / ISTIO_INBOUND, the connmark rules, the fwmark rule and the
local route on lo), and its sidecar runs with CAP_NET_ADMIN (ambient, as
uid 1337) and INTERCEPTION_MODE TPROXY (what the injector's
ISTIO_META_INTERCEPTION_MODE gives).  meshd then sends it transparent
virtual listeners and virtualInbound's original_src (mark 1337), as istiod
does.  Checked:
  - the client pod's plain call to the Service goes through both sidecars
    over mTLS, and the web application sees the client pod's address, not
    127.0.0.6 / 127.0.0.1 (REDIRECT's) -- the point of TPROXY;
  - a port no Service names is passed through to the application (from
    127.0.0.6, as InboundPassthroughCluster binds it: see the README);
  - nothing loops: the web sidecar accepts one connection per call;
  - the rules are there and a second istio-init run changes nothing;
  - a TPROXY sidecar without CAP_NET_ADMIN says why its configuration is
    refused.
The web workload is PERMISSIVE here (test_mesh_pods covers STRICT), so the
pod without a sidecar can reach the undeclared port.

Root only, inside `unshare -n` (the outer test re-runs the inner class
there); skipped with the kernel's own error when the TPROXY target cannot
be used in a network namespace.
"""
import json
import os
import subprocess
import unittest

from meshhttp import MESHPROXY
from meshtest import netns_usable, run_in_netns, wait_for
import test_mesh_pods as pods

TPROXY_CAPTURE = [a if a != "REDIRECT" else "TPROXY" for a in pods.CAPTURE]
# an application port of the web pod no Service declares
UNDECLARED_PORT = 9191
# what the kernel must take in a namespace for TPROXY mode: the target,
# the marks and the policy routing (istio-iptables' own commands)
PROBE = ("iptables -t mangle -N ISTIO_TPROXY && "
         "iptables -t mangle -A ISTIO_TPROXY -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006 && "
         "iptables -t mangle -A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark && "
         "ip rule add fwmark 1337 lookup 133 && ip route add local default dev lo table 133 && "
         "ip link add br0 type bridge && iptables -t nat -S OUTPUT && ip6tables -t nat -S OUTPUT")


class MeshTproxyTest(unittest.TestCase):
    def test_tproxy_pods_in_netns(self):
        ok, why = netns_usable(PROBE, ("unshare", "ip", "iptables", "iptables-restore", "iptables-save",
                                       "ip6tables", "setpriv", "curl"))
        if not ok:
            self.skipTest("TPROXY interception cannot be set up in a network namespace here (root, iproute2, "
                          "iptables with xt_TPROXY, util-linux, curl): %s" % why.strip())
        run_in_netns(self, __file__, "test_mesh_tproxy.TproxyPodsInNetns", "MESH_IT_TPROXY")


@unittest.skipUnless(os.environ.get("MESH_IT_TPROXY") == "1", "run by MeshTproxyTest inside its own namespace")
class TproxyPodsInNetns(pods.PodsBase):
    @classmethod
    def capture(cls, pod):
        return TPROXY_CAPTURE if pod == "web" else pods.CAPTURE

    @classmethod
    def sidecar_args(cls, pod):
        if pod != "web":
            return [], []
        # IP_TRANSPARENT and SO_MARK need CAP_NET_ADMIN (the injector adds
        # NET_ADMIN to istio-proxy under TPROXY)
        return (["--inh-caps", "+net_admin", "--ambient-caps", "+net_admin"],
                ["--interception-mode", "TPROXY"])

    @classmethod
    def files(cls):
        f = pods.config()
        f["security.yaml"] = f["security.yaml"].replace("mode: STRICT", "mode: PERMISSIVE")
        return f

    @classmethod
    def more_apps(cls, app):
        cls.start("web-app-undeclared", "web", ["/usr/bin/python3", app, str(UNDECLARED_PORT)])
        wait_for(lambda: cls.curl("web", "http://127.0.0.1:%d/up" % UNDECLARED_PORT)[0] == 200, timeout=30,
                 what="the web pod's second application")

    def test_1_app_sees_the_client_pod_address_over_mtls(self):
        before = self.cx_total("web")
        status, body = self.call_web("client", "/api/who")
        self.assertEqual(status, 200, body + self.logs("web-sidecar"))
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/v2/who")  # routed by the client's sidecar
        xfcc = seen["headers"].get("x-forwarded-client-cert", "")
        self.assertIn("URI=" + pods.CLIENT_ID, xfcc)  # mTLS between the sidecars
        self.assertIn("By=" + pods.WEB_ID, xfcc)
        # the point of TPROXY: the client pod's own address, not the
        # sidecar's loopback one
        self.assertEqual(seen["peer"].replace("::ffff:", ""), pods.PODS["client"][0], seen)
        # one call, one connection into the web sidecar: no loop
        grew = self.cx_total("web") - before
        self.assertLessEqual(grew, 2, "the web sidecar accepted %d connections for one call" % grew)

    def test_2_undeclared_port_passthrough_without_a_loop(self):
        before = self.cx_total("web")
        r = subprocess.run(["ip", "netns", "exec", self.netns["bare"], "env", "-i", "/usr/bin/curl", "-s",
                            "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                            "http://%s:%d/pass" % (pods.PODS["web"][0], UNDECLARED_PORT)],
                           capture_output=True, timeout=30)
        body, _, code = r.stdout.decode(errors="replace").rpartition("\n")
        self.assertEqual(code, "200", "curl exit %d: %r\n%s" % (r.returncode, r.stdout, self.logs("web-sidecar")))
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/pass")
        # InboundPassthroughCluster's 127.0.0.6: from the client's address
        # to the pod's own one, istio-iptables' ISTIO_OUTPUT would send it
        # back to 15006 (README, "interceptionMode")
        self.assertEqual(seen["peer"].replace("::ffff:", ""), "127.0.0.6", seen)
        # the web sidecar took it (its inbound passthrough), once
        grew = self.cx_total("web") - before
        self.assertLessEqual(grew, 2, "the web sidecar accepted %d connections for one call" % grew)

    def test_3_rules_and_routes_are_istio_inits_and_rerun_changes_nothing(self):
        ns = self.netns["web"]

        def state():
            out = []
            for cmd in (["iptables-save"], ["ip6tables-save"], ["ip", "-4", "rule"], ["ip", "-6", "rule"],
                        ["ip", "-4", "route", "show", "table", "133"], ["ip", "-6", "route", "show", "table", "133"]):
                text = pods.run(["ip", "netns", "exec", ns] + cmd).stdout.decode()
                out.append("\n".join(line for line in text.splitlines() if not line.startswith("#")))
            return out
        before = state()
        mangle = before[0]
        self.assertIn("-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15006", mangle)
        self.assertIn("-A ISTIO_DIVERT -j MARK --set-xmark 0x539/0xffffffff", mangle)
        self.assertIn("-A OUTPUT -p tcp -m connmark --mark 0x539 -j CONNMARK --restore-mark", mangle)
        self.assertIn("fwmark 0x539 lookup 133", before[2])
        self.assertIn("fwmark 0x539 lookup 133", before[3])
        self.assertIn("local default dev lo", before[4])
        self.assertIn("from 127.0.0.0/8 lookup 133", before[2])
        pods.run(["ip", "netns", "exec", ns, MESHPROXY, "iptables"] + TPROXY_CAPTURE)
        self.assertEqual(before, state())
        # and the pod is served as before
        self.assertEqual(self.call_web("client", "/api/again")[0], 200)

    def test_4_without_cap_net_admin_the_config_is_refused_with_the_reason(self):
        # a second TPROXY sidecar in the web pod, as uid 1337 without the
        # capability: IP_TRANSPARENT is refused, the configuration NACKed
        # with the reason, and it never says it is ready
        tok = os.path.join(self.tmp, "web.token")
        root = os.path.join(self.tmp, "root-cert.pem")
        p = self.start("web-nocap", "web", [
            "setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups", MESHPROXY,
            "--xds-addr", "%s:%d" % (pods.BRIDGE_IP, self.meshd.xds_port),
            "--node-id", "sidecar~%s~web.%s~%s.svc.cluster.local" % (pods.PODS["web"][0], pods.NS, pods.NS),
            "--labels", "app=web", "--service-account", "web", "--interception-mode", "TPROXY",
            "--ca-addr", "%s:%d" % (pods.BRIDGE_IP, self.meshd.secure_port), "--root-cert", root,
            "--token-file", tok, "--admin-addr", "127.0.0.1:15100", "--outbound-addr", "[::]:15101",
            "--inbound-addr", "[::]:15106", "--status-addr", "", "--health-addr", ""])
        try:
            want = ("transparent: setsockopt IP_TRANSPARENT: Operation not permitted "
                    "(TPROXY interception needs CAP_NET_ADMIN for meshproxy)")
            try:
                wait_for(lambda: want in self.logs("web-nocap"), timeout=60, what="the NACK's reason")
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, self.logs("web-nocap")))
            self.assertIn("NACK lds", self.logs("web-nocap"))
            self.assertNotEqual(self.curl("web", "http://127.0.0.1:15100/ready")[0], 200)
        finally:
            p.terminate()
            p.wait(timeout=30)
        # the capable sidecar serves as before
        self.assertEqual(self.call_web("client", "/api/still")[0], 200)


if __name__ == "__main__":
    unittest.main()
