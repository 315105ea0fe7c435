"""The rest of issue 11's load-balancing promises end to end, with the real
meshd, a real meshproxy sidecar and HTTP backends on 127.0.0.x
(test_mesh_lb.py has ROUND_ROBIN, LEAST_REQUEST and ring hash on a header):

- RANDOM uses every backend of the pool;
- MAGLEV (consistentHash.maglev) on a header keeps each user on one backend
  while the users use more than one;
- httpCookie {name, ttl}: a request without the cookie gets a Set-Cookie
  (Envoy's generated cookie) and a client that sends it back sticks to the
  backend that answered; the cookie value picks the backend;
- httpQueryParameterName: the same parameter value, one backend;
- useSourceIp: each client address (the client binds 127.0.0.x) sticks;
- warmupDurationSecs (slow start): a backend joining a ROUND_ROBIN service
  gets a small share while young (round robin alone would give it a third);
- WebSocket: a real handshake (101, Sec-WebSocket-Accept) and a text frame
  echoed through the sidecar's outbound port to a stdlib WebSocket server.

Bands are wide, request counts bounded, nothing asserts on timing.
"""
import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import threading
import time
import unittest

from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml, tally, wait_for

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rnd, namespace: %(ns)s}
spec:
  host: %(rnd)s
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mag, namespace: %(ns)s}
spec:
  host: %(mag)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1031}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ck, namespace: %(ns)s}
spec:
  host: %(ck)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: sticky, ttl: 60s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cks, namespace: %(ns)s}
spec:
  host: %(cks)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: sess, path: /app, ttl: 0s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: qp, namespace: %(ns)s}
spec:
  host: %(qp)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpQueryParameterName: user}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sip, namespace: %(ns)s}
spec:
  host: %(sip)s
  trafficPolicy:
    loadBalancer:
      consistentHash: {useSourceIp: true}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ss, namespace: %(ns)s}
spec:
  host: %(ss)s
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: %(warmup)ds}}
"""
WARMUP_S = 30  # the slow start window of service ss


class WsBackend:
    """A WebSocket echo server from the standard library: RFC 6455 handshake
    (101 with Sec-WebSocket-Accept), then every text frame the client sends
    (masked, as clients must) comes back unmasked with "echo: " in front.
    It records the handshake request's headers (lower-cased)."""

    def __init__(self, name, ip):
        self.name, self.ip, self.version = name, ip, "v1"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handshakes = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        c.settimeout(20)
        try:
            f = c.makefile("rb")
            line = f.readline().decode("latin-1")
            hdrs = {}
            while True:
                h = f.readline().decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            with self.lock:
                self.handshakes.append((line.strip(), hdrs))
            key = hdrs.get("sec-websocket-key", "")
            if "websocket" not in hdrs.get("upgrade", "").lower() or not key:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                return
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\nx-backend: %s\r\n\r\n" % (accept, self.name)).encode())
            while True:
                op, payload = ws_read_frame(f)
                if op is None or op == 8:  # closed or a close frame
                    if op == 8:
                        c.sendall(ws_frame(8, payload[:2], mask=False))
                    return
                if op == 1:
                    c.sendall(ws_frame(1, b"echo: " + payload, mask=False))
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def ws_frame(op, payload, mask=True):
    """One final WebSocket frame (RFC 6455 5.2)."""
    head = bytes([0x80 | op])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(f):
    """(opcode, payload) of the next frame from a binary file, (None, b"") at EOF."""
    h = f.read(2)
    if len(h) < 2:
        return None, b""
    op, n, masked = h[0] & 0x0F, h[1] & 0x7F, h[1] & 0x80
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", f.read(8))[0]
    key = f.read(4) if masked else b""
    data = f.read(n)
    if len(data) < n:
        raise ValueError("short frame")
    if masked:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return op, data


class MeshLb2Test(MeshCase):
    @classmethod
    def backends(cls):
        out = {}
        ip = 20
        for svc, n in (("rnd", 3), ("mag", 3), ("ck", 3), ("qp", 3), ("sip", 3), ("cks", 2)):
            for i in range(n):
                name = "%s-%s" % (svc, "abc"[i])
                out[name] = Backend(name, "127.0.0.%d" % ip)
                ip += 1
        out["ws-a"] = WsBackend("ws-a", "127.0.0.%d" % ip)
        for i in range(3):  # ss-c joins later (test_z_slow_start)
            out["ss-%s" % "abc"[i]] = Backend("ss-%s" % "abc"[i], "127.0.0.%d" % (ip + 1 + i))
        return out

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ready_at = time.monotonic()  # ss-a and ss-b are in the sidecar by now

    @classmethod
    def config(cls, b):
        svcs = ("rnd", "mag", "ck", "qp", "sip", "ws", "ss", "cks")
        out = {"dr.yaml": DR % dict({"ns": NS, "warmup": WARMUP_S}, **{s: fqdn(s) for s in svcs})}
        for svc in svcs:
            out[svc + ".yaml"] = service_yaml(svc, [x for k, x in sorted(b.items())
                                                    if k.split("-")[0] == svc and k != "ss-c"])
        return out

    def cluster(self, svc):
        """outbound|8080||SVC in the sidecar's /config_dump."""
        dump = json.loads(self.px.admin("/config_dump")[1])
        for cfg in dump["configs"]:
            for c in cfg.get("dynamic_active_clusters", []):
                if c["cluster"]["name"] == "outbound|%d||%s" % (PORT, fqdn(svc)):
                    return c["cluster"]
        return {}

    def lb_policy(self, svc):
        return self.cluster(svc).get("lb_policy")

    def test_random(self):
        t = tally(self.many(60, "rnd"))
        self.assertEqual(sum(t.get(k, 0) for k in ("rnd-a", "rnd-b", "rnd-c")), 60, t)
        # uniform: each of 3 expects 20 of 60; P(one gets < 3) is about 1e-7
        for k in ("rnd-a", "rnd-b", "rnd-c"):
            self.assertGreaterEqual(t.get(k, 0), 3, t)
        self.assertEqual(self.lb_policy("rnd"), "RANDOM")

    def test_maglev_sticky(self):
        used = set()
        for u in range(20):
            t = tally(self.many(4, "mag", "/", {"x-user": "user-%d" % u}))
            self.assertEqual(len(t), 1, "user-%d moved between backends: %r" % (u, t))
            self.assertEqual(list(t.values()), [4])
            used |= set(t)
        self.assertTrue(used <= {"mag-a", "mag-b", "mag-c"}, used)
        self.assertGreaterEqual(len(used), 2, "20 users all hashed to %r" % used)
        self.assertEqual(self.lb_policy("mag"), "MAGLEV")
        self.assertEqual(str(self.cluster("mag").get("maglev_lb_config", {}).get("table_size")), "1031")

    def cookie_of(self, r):
        sc = r.headers.get("set-cookie")
        self.assertIsNotNone(sc, "no set-cookie on the first response: %r" % r)
        first = sc.split(";")[0]
        name, _, value = first.partition("=")
        self.assertEqual(name.strip(), "sticky", sc)
        attrs = [a.strip().lower() for a in sc.split(";")[1:]]
        self.assertIn("max-age=60", attrs, sc)
        self.assertIn("httponly", attrs, sc)
        return value.strip()

    def test_cookie_generated_and_sticky(self):
        used, values, firsts = set(), set(), set()
        for n in range(12):
            r = self.px.get("ck", "/first-%d" % n)
            self.assertEqual(r.status, 200, r)
            value = self.cookie_of(r)
            values.add(value)
            firsts.add(r.backend)
            # the client sends the cookie back: every answer from the same backend, no new cookie
            t = {}
            for _ in range(5):
                r2 = self.px.get("ck", "/again", {"cookie": "other=1; sticky=%s" % value})
                self.assertEqual(r2.status, 200, r2)
                self.assertNotIn("set-cookie", r2.headers, r2)
                t[r2.backend] = t.get(r2.backend, 0) + 1
            self.assertEqual(t, {r.backend: 5}, "cookie %s not sticky: first %s, then %r" % (value, r.backend, t))
            used.add(r.backend)
        # Envoy seeds the generated cookie with the connection's addresses,
        # ports included: each new connection (same client IP) gets its own
        # cookie, so first requests spread (12 on one of 3: p = 6e-6)
        self.assertEqual(len(values), 12, values)
        self.assertGreaterEqual(len(firsts), 2, firsts)
        # the cookie value is what picks the backend: 30 distinct values use more than one
        for v in range(30):
            used.add(self.px.get("ck", "/v", {"cookie": "sticky=value-%d" % v}).backend)
        self.assertTrue(used <= {"ck-a", "ck-b", "ck-c"}, used)
        self.assertGreaterEqual(len(used), 2, used)

    def test_cookie_with_curl(self):
        # curl's cookie jar: the first response sets the cookie, the next requests carry it
        jar = os.path.join(self.px.dir, "jar.txt")
        url = "http://%s:%d/curl" % (fqdn("ck"), PORT)
        st, h, _ = self.px.curl(url, "-c", jar, "-b", jar)
        self.assertEqual(st, 200)
        self.assertIn("set-cookie", h)
        first = h["x-backend"]
        for _ in range(5):
            st, h, _ = self.px.curl(url, "-c", jar, "-b", jar)
            self.assertEqual((st, h.get("x-backend")), (200, first), h)
            self.assertNotIn("set-cookie", h)

    def test_cookie_session(self):
        # ttl 0s: a session cookie (Envoy sets no Max-Age), with its path
        r = self.px.get("cks", "/app/x")
        self.assertEqual(r.status, 200, r)
        sc = r.headers.get("set-cookie", "")
        parts = [p.strip() for p in sc.split(";")]
        self.assertTrue(parts[0].startswith('sess="'), sc)
        self.assertEqual(parts[1:], ["Path=/app", "HttpOnly"], sc)
        value = parts[0].partition("=")[2]
        t = tally(self.many(4, "cks", "/app/y", {"cookie": "sess=%s" % value}))
        self.assertEqual(t, {r.backend: 4})

    def test_query_parameter(self):
        used = set()
        for u in range(20):
            t = tally(self.many(4, "qp", "/p?x=1&user=u%d&y=%d" % (u, u)))
            self.assertEqual(len(t), 1, "user=u%d moved between backends: %r" % (u, t))
            used |= set(t)
        self.assertGreaterEqual(len(used), 2, "20 parameter values all hashed to %r" % used)
        # only the parameter counts: other parameters and the path change nothing
        a = tally(self.many(3, "qp", "/one?user=fixed"))
        b = tally(self.many(3, "qp", "/two?z=9&user=fixed"))
        self.assertEqual(len(a), 1, a)
        self.assertEqual(a, b)

    def from_ip(self, ip, path="/"):
        c = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20, source_address=(ip, 0))
        try:
            c.request("GET", "http://%s:%d%s" % (fqdn("sip"), PORT, path))
            r = c.getresponse()
            r.read()
            return r.getheader("x-backend")
        finally:
            c.close()

    def test_source_ip(self):
        used = set()
        for i in range(20):
            ip = "127.0.1.%d" % (i + 1)
            got = {self.from_ip(ip) for _ in range(4)}
            self.assertEqual(len(got), 1, "client %s moved between backends: %r" % (ip, got))
            used |= got
        self.assertTrue(used <= {"sip-a", "sip-b", "sip-c"}, used)
        self.assertGreaterEqual(len(used), 2, "20 client addresses all hashed to %r" % used)

    def test_websocket_echo(self):
        ws = self.b["ws-a"]
        key = base64.b64encode(os.urandom(16)).decode()
        s = socket.create_connection(("127.0.0.1", self.px.out_port), timeout=20)
        try:
            s.sendall(("GET http://%s:%d/chat HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                       % (fqdn("ws"), PORT, fqdn("ws"), PORT, key)).encode())
            f = s.makefile("rb")
            status = f.readline().decode("latin-1")
            hdrs = {}
            while True:
                h = f.readline().decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            self.assertTrue(status.startswith("HTTP/1.1 101"), (status, hdrs))
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.assertEqual(hdrs.get("sec-websocket-accept"), want, hdrs)
            self.assertEqual(hdrs.get("upgrade", "").lower(), "websocket", hdrs)
            self.assertIn("upgrade", hdrs.get("connection", "").lower(), hdrs)
            # the backend saw an upgrade request with the client's key
            line, bh = ws.handshakes[-1]
            self.assertEqual(bh.get("sec-websocket-key"), key, bh)
            self.assertIn("upgrade", bh.get("connection", "").lower(), bh)
            # frames both ways over the upgraded connection, two of them
            for msg in (b"hello mesh", b"x" * 300):
                s.sendall(ws_frame(1, msg))
                op, payload = ws_read_frame(f)
                self.assertEqual((op, payload), (1, b"echo: " + msg))
            s.sendall(ws_frame(8, struct.pack("!H", 1000)))
            op, payload = ws_read_frame(f)
            self.assertEqual(op, 8, payload)
        finally:
            s.close()
        self.assertEqual(self.px.get("ws", "/plain").status, 400)  # a non-upgrade request still routes


    def test_z_slow_start(self):
        """warmupDurationSecs: a backend joining ss gets a fraction of round
        robin's share while young (weight max(age / window, 10%)).  Runs last
        (z): it first lets ss-a and ss-b age out of their own window."""
        wait_for(lambda: time.monotonic() - self.ready_at > WARMUP_S + 1, timeout=WARMUP_S + 10,
                 interval=0.5, what="ss-a and ss-b out of their slow start window")
        new = self.b["ss-c"]
        self.meshd.write("ss.yaml", service_yaml("ss", [self.b["ss-a"], self.b["ss-b"], new]))
        needle = "%s:%d::" % (new.ip, new.port)
        self.wait_applied(lambda s: any(line.startswith("outbound|%d||%s::%s" % (PORT, fqdn("ss"), needle))
                                        for line in s.clusters().splitlines()), "ss-c in /clusters")
        t = tally(self.many(30, "ss", "/warm"))
        self.assertEqual(sum(t.values()), 30, t)
        # plain round robin would give ss-c 10 of 30; at weight <= 0.5 (it is
        # younger than half the window here) it gets at most 6
        self.assertLessEqual(t.get("ss-c", 0), 6, t)
        self.assertGreaterEqual(t.get("ss-c", 0), 1, t)  # the 10% floor: never starved
        self.assertGreaterEqual(t.get("ss-a", 0), 10, t)
        self.assertGreaterEqual(t.get("ss-b", 0), 10, t)
        cds = json.loads(self.px.admin("/config_dump")[1])
        win = [c["cluster"].get("round_robin_lb_config", {}).get("slow_start_config", {}).get("slow_start_window")
               for cfg in cds["configs"] for c in cfg.get("dynamic_active_clusters", [])
               if c["cluster"]["name"] == "outbound|%d||%s" % (PORT, fqdn("ss"))]
        self.assertEqual(win, ["%ds" % WARMUP_S])


if __name__ == "__main__":
    unittest.main()
