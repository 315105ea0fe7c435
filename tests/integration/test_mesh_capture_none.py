"""A `Sidecar` with captureMode NONE end to end: no iptables, so the real
meshproxy binds the workload's ports itself, as Envoy binds every listener
whose bind_to_port is not false.  Real meshd (file source), a real
meshproxy sidecar for workload app=web, HTTP backends on 127.0.0.x and curl.

The Sidecar (networking.istio.io/v1, Istio's captureMode NONE example):
  ingress: [{port: {number: P, protocol: HTTP, name: http},
             defaultEndpoint: 127.0.0.1:APP, bind: 127.0.0.4, captureMode: NONE}]
  egress:  [{hosts: ["*/*"], captureMode: NONE}]
so meshd sends no virtualOutbound/virtualInbound but an inbound listener
127.0.0.4_P (-> inbound|P|| -> the application) and an outbound listener
127.0.0.1_SVCPORT per service port (RDS "SVCPORT").

- (a) curl to 127.0.0.4:P (the bound ingress) reaches the application; the
  sidecar's --outbound-addr/--inbound-addr ports are not bound (no capture);
- (b) the application's call to 127.0.0.1:SVCPORT, through the bound
  outbound listener, is routed by a VirtualService (a header picks subset v2,
  the rest go to v1); /listeners and envoy_listener_downstream_cx_total show
  the bound listeners;
- (c) a Sidecar edit moving the ingress bind to an address whose port
  someone else holds is NACKed with Envoy's "cannot bind" reason (meshd's
  /debug/syncz) and the old ingress keeps serving; the edit back is applied;
- (d) a bind on the catch-all egress listener moves every outbound port there;
- (e) captureMode per listener (Istio's getBindToPort()): the ingress says
  NONE, the catch-all egress listener says nothing (DEFAULT): the ingress
  still binds, virtualOutbound/virtualInbound come back (on the sidecar's
  own ports) and route by authority, 0.0.0.0_SVCPORT is held unbound.

Each case fails when the Sidecar is not applied or meshproxy does not bind
(connection refused).  Nothing here asserts on timing; every wait is bounded.
"""
import json
import socket
import subprocess
import unittest

from meshhttp import NS, Backend, MeshCase, fqdn, service_yaml, slow
from meshtest import free_port, wait_for

BIND = "127.0.0.4"      # the ingress bind: not the application's address (127.0.0.1)
BIND2 = "127.0.0.5"     # where test (c) moves it, onto a socket someone else holds
ING_PORT = free_port()  # the workload's port the sidecar binds (P)
SVC_PORT = free_port()  # the backend service's port: the outbound listener 127.0.0.1_SVC_PORT


def sidecar_yaml(app_port, bind=BIND, egress_bind=None, egress_none=True):
    return """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: %(ns)s}
spec:
  workloadSelector:
    labels: {app: web}
  ingress:
  - port: {number: %(port)d, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%(app)d
    bind: %(bind)s
    captureMode: NONE
  egress:
  - hosts: ["*/*"]
""" % {"ns": NS, "port": ING_PORT, "app": app_port, "bind": bind} + \
        ("    captureMode: NONE\n" if egress_none else "") + \
        ("    bind: %s\n" % egress_bind if egress_bind else "")


def routing_yaml():
    return """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: %(ns)s}
spec:
  host: %(host)s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: %(host)s, subset: v2}}]
  - name: stable
    route: [{destination: {host: %(host)s, subset: v1}}]
""" % {"ns": NS, "host": fqdn("backend")}


def curl(url, *args):
    """curl straight to an address (no proxy): (status, headers dict, body); status 0 when it cannot connect."""
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-D", "-", url] + list(args),
                         capture_output=True, timeout=30)
    head, _, body = out.stdout.decode("latin-1").partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return 0, {}, out.stderr.decode("latin-1")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def refused(ip, port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((ip, port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


class MeshCaptureNoneTest(MeshCase):
    SIDECARS = {"web": ("web", "app=web")}

    @classmethod
    def backends(cls):
        return {
            "web": Backend("web", "127.0.0.1", "v1"),      # the application behind the sidecar
            "b1": Backend("b1", "127.0.0.2", "v1"),
            "b2": Backend("b2", "127.0.0.3", "v2"),
        }

    @classmethod
    def config(cls, b):
        return {
            "backend.yaml": service_yaml("backend", [b["b1"], b["b2"]], port=SVC_PORT),
            "routing.yaml": routing_yaml(),
            "sidecar.yaml": sidecar_yaml(b["web"].port),
        }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sc = cls.sidecars["web"]

    def backend_call(self, *headers):
        """The application's call to the backend service: to 127.0.0.1:SVC_PORT
        (the bound outbound listener), with the service's name as Host."""
        host = "%s:%d" % (fqdn("backend"), SVC_PORT)
        args = ["--connect-to", "%s:127.0.0.1:%d" % (host, SVC_PORT)]
        for h in headers:
            args += ["-H", h]
        return curl("http://%s/call" % host, *args)

    def test_a_ingress_reaches_the_application(self):
        seen = self.b["web"].count()
        code, headers, body = curl("http://%s:%d/hello" % (BIND, ING_PORT))
        self.assertEqual(code, 200, body)
        self.assertEqual(headers.get("x-backend"), "web")
        self.assertEqual(self.b["web"].count(), seen + 1)
        self.assertEqual(self.b["web"].last()[1], "/hello")
        # the request went through the sidecar (its access log has it)
        wait_for(lambda: [x for x in self.sc.access_log() if " /hello " in x],
                 timeout=60 if slow() else 20, what="the ingress request in the access log")
        # nothing captured, nothing on the virtual listeners' ports
        self.assertTrue(refused("127.0.0.1", self.sc.out_port))
        self.assertTrue(refused("127.0.0.1", self.sc.in_port))

    def test_b_outbound_routed_by_virtualservice(self):
        for _ in range(4):
            code, headers, body = self.backend_call()
            self.assertEqual((code, headers.get("x-backend")), (200, "b1"), body)
        for _ in range(4):
            code, headers, body = self.backend_call("x-canary: yes")
            self.assertEqual((code, headers.get("x-backend")), (200, "b2"), body)
        self.assertEqual(self.b["b1"].last()[1], "/call")
        status, listeners = self.sc.admin("/listeners")
        self.assertEqual(status, 200)
        self.assertIn("%s_%d::%s:%d" % (BIND, ING_PORT, BIND, ING_PORT), listeners)
        self.assertIn("127.0.0.1_%d::127.0.0.1:%d" % (SVC_PORT, SVC_PORT), listeners)
        self.assertNotIn("virtualOutbound", listeners)
        self.assertEqual(self.dumped_listeners(), {
            "%s_%d" % (BIND, ING_PORT): (BIND, ING_PORT),
            "127.0.0.1_%d" % SVC_PORT: ("127.0.0.1", SVC_PORT)})
        prom = self.sc.admin("/stats/prometheus")[1]
        line = [x for x in prom.splitlines()
                if x.startswith('envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_%d"}' % SVC_PORT)]
        self.assertEqual(len(line), 1, prom[-2000:])
        self.assertGreaterEqual(int(line[0].split()[-1]), 8)

    def dumped_listeners(self):
        """{name: (address, port)} of the listeners in the sidecar's /config_dump."""
        dump = json.loads(self.sc.admin("/config_dump")[1])
        out = {}
        for c in dump.get("configs", []):
            if "ListenersConfigDump" in c.get("@type", ""):
                for d in c.get("dynamic_listeners", []):
                    lst = d["active_state"]["listener"]
                    sa = lst["address"]["socket_address"] if "socket_address" in lst["address"] \
                        else lst["address"]["socketAddress"]
                    out[lst["name"]] = (sa["address"], sa.get("port_value", sa.get("portValue")))
        return out

    def syncz_error(self):
        for x in self.meshd.json("/debug/syncz"):
            if x.get("proxy") == self.sc.node_id:
                lds = x["types"].get("lds", {})
                if lds.get("state") == "ERROR":
                    return lds.get("error", "")
        return None

    def test_c_bind_failure_nacked_old_ingress_serves(self):
        # the ingress moves to another address whose port someone holds: the
        # same port, so the same inbound|P|| cluster (CDS is ACKed apart from
        # LDS, as Envoy does: only the listener update is refused)
        holder = socket.socket()
        holder.bind((BIND2, ING_PORT))
        holder.listen(1)
        try:
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port, bind=BIND2))
            err = wait_for(lambda: (lambda e: e if e and "cannot bind" in e else None)(self.syncz_error()),
                           timeout=120 if slow() else 30, what="meshproxy's LDS NACK in meshd's /debug/syncz")
            self.assertIn("cannot bind '%s:%d': Address already in use" % (BIND2, ING_PORT), err)
            # the old configuration stays: the old ingress serves, the new address is not ours
            code, headers, _ = curl("http://%s:%d/still" % (BIND, ING_PORT))
            self.assertEqual((code, headers.get("x-backend")), (200, "web"))
            self.assertNotIn("%s_%d" % (BIND2, ING_PORT), self.sc.admin("/listeners")[1])
        finally:
            holder.close()
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port))
        self.wait_applied(lambda s: self.syncz_error() is None, "the restored Sidecar ACKed", sidecar=self.sc)
        code, headers, _ = curl("http://%s:%d/back" % (BIND, ING_PORT))
        self.assertEqual((code, headers.get("x-backend")), (200, "web"))

    def test_d_catchall_egress_bind(self):
        # Istio (listener.go): captureMode NONE and only a bind on the
        # catch-all egress listener: every service port binds that address
        ebind = "127.0.0.6"
        try:
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port, egress_bind=ebind))
            wait_for(lambda: "%s_%d::%s:%d" % (ebind, SVC_PORT, ebind, SVC_PORT) in self.sc.admin("/listeners")[1],
                     timeout=120 if slow() else 30, what="the outbound listener bound to the egress bind")
            host = "%s:%d" % (fqdn("backend"), SVC_PORT)
            code, headers, body = curl("http://%s/bound" % host, "--connect-to", "%s:%s:%d" % (host, ebind, SVC_PORT))
            self.assertEqual((code, headers.get("x-backend")), (200, "b1"), body)
            self.assertNotIn("127.0.0.1_%d" % SVC_PORT, self.sc.admin("/listeners")[1])
            self.assertTrue(refused("127.0.0.1", SVC_PORT))
        finally:
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port))
        wait_for(lambda: "127.0.0.1_%d::" % SVC_PORT in self.sc.admin("/listeners")[1],
                 timeout=120 if slow() else 30, what="the restored outbound listener on 127.0.0.1")

    def test_e_capture_per_listener(self):
        # Istio decides captureMode per listener (getBindToPort()): the
        # ingress listener's NONE binds BIND:P, the catch-all egress
        # listener without captureMode (DEFAULT) stays captured, so
        # virtualOutbound/virtualInbound come back and the outbound
        # listener of SVC_PORT does not bind
        listeners = lambda: self.sc.admin("/listeners")[1]
        try:
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port, egress_none=False))
            wait_for(lambda: "virtualOutbound" in listeners() and "127.0.0.1_%d::" % SVC_PORT not in listeners(),
                     timeout=120 if slow() else 30, what="virtualOutbound back, 127.0.0.1_SVC_PORT gone")
            self.assertIn("virtualInbound", listeners())
            self.assertIn("%s_%d::%s:%d" % (BIND, ING_PORT, BIND, ING_PORT), listeners())
            # held (config_dump) but not bound (not in /listeners)
            self.assertEqual(self.dumped_listeners().get("0.0.0.0_%d" % SVC_PORT), ("0.0.0.0", SVC_PORT))
            self.assertNotIn("0.0.0.0_%d" % SVC_PORT, listeners())
            self.assertTrue(refused("127.0.0.1", SVC_PORT))
            self.assertFalse(refused("127.0.0.1", self.sc.out_port))
            # the ingress still binds and reaches the application
            code, headers, body = curl("http://%s:%d/mixed" % (BIND, ING_PORT))
            self.assertEqual((code, headers.get("x-backend")), (200, "web"), body)
            # a connection to the virtualOutbound port is routed by its
            # authority, as captured traffic would be
            host = "%s:%d" % (fqdn("backend"), SVC_PORT)
            code, headers, body = curl("http://%s/captured" % host,
                                       "--connect-to", "%s:127.0.0.1:%d" % (host, self.sc.out_port))
            self.assertEqual((code, headers.get("x-backend")), (200, "b1"), body)
        finally:
            self.meshd.write("sidecar.yaml", sidecar_yaml(self.b["web"].port))
        wait_for(lambda: "127.0.0.1_%d::" % SVC_PORT in listeners() and "virtualOutbound" not in listeners(),
                 timeout=120 if slow() else 30, what="the restored all-NONE listeners")


if __name__ == "__main__":
    unittest.main()
