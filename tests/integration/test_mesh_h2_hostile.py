"""meshproxy's HTTP/2 against hostile and misbehaving peers (issue 12,
"Protocols"): the real meshd and a real meshproxy sidecar on loopback.

Downstream: a raw client (h2raw.py, frames written by hand) sends what
RFC 9113 says makes a request malformed or a connection broken; the sidecar
must refuse it the way the RFC says (RST_STREAM or GOAWAY), never pass it to
the backend, and keep serving everyone else.

Upstream: a tiny HTTP/2 server over raw sockets (BadH2) misbehaves on
purpose: RST_STREAM REFUSED_STREAM (retriable, as Envoy's refused-stream),
GOAWAY before or in the middle of a stream, trailers without grpc-status.

gRPC: python3-grpcio bidirectional streaming through the sidecar, one
message answered before the next is sent.

Every wait is bounded; nothing asserts on timing.
"""
import queue
import socket
import struct
import subprocess
import threading
import unittest
from concurrent import futures

import grpc

import h2raw
from h2raw import END_HEADERS, END_STREAM, GOAWAY, HEADERS, RST_STREAM, H2Raw, frame, hp_block, req_fields
from meshhttp import NS, PORT, Backend, MeshCase, fqdn, service_yaml
from meshtest import free_port, wait_for

GRPC_PORT = free_port()   # service port of the gRPC services (named in :authority only)
APP_PORT = free_port()    # the python3-grpcio application


def grpc_entry_yaml(name, ip, port):
    """A GRPC ServiceEntry NAME:GRPC_PORT whose one endpoint is ip:port
    (the outbound cluster speaks HTTP/2 upstream)."""
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: %(sport)d, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: %(name)s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %(name)s-1, namespace: %(ns)s}
spec: {address: %(ip)s, ports: {grpc: %(port)d}, labels: {app: %(name)s}}
""" % {"name": name, "ns": NS, "host": fqdn(name), "sport": GRPC_PORT, "ip": ip, "port": port}


def grpc_msg(b):
    return b"\x00" + struct.pack(">I", len(b)) + b


class BadH2:
    """An HTTP/2 server on raw sockets.  Each request stream takes the next
    mode from plan (then "ok"):
      ok        200 application/grpc, one message b"ok", grpc-status 0 in trailers
      refuse    RST_STREAM REFUSED_STREAM before anything
      goaway0   GOAWAY last-stream-id 0 (the stream was never processed), close
      goawaymid response HEADERS and half a message, then GOAWAY and close
      nostatus  200 application/grpc, one message, trailers without grpc-status
      early     the whole response at once, then RST_STREAM NO_ERROR: the
                request body is not wanted (RFC 9113 8.1)
    It counts the request streams it saw."""

    def __init__(self, ip="127.0.0.1"):
        self.lock = threading.Lock()
        self.plan = []
        self.seen = 0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((ip, 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _next(self):
        with self.lock:
            self.seen += 1
            return self.plan.pop(0) if self.plan else "ok"

    def _serve(self, s):
        s.settimeout(30)
        buf = b""
        try:
            while len(buf) < 24:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[24:]
            s.sendall(h2raw.settings())
            while True:
                while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                ln = int.from_bytes(buf[:3], "big")
                ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
                buf = buf[9 + ln:]
                if ftype == h2raw.SETTINGS and not flags & h2raw.ACK:
                    s.sendall(h2raw.settings(ack=True))
                elif ftype == HEADERS and sid % 2 == 1:
                    if not self._answer(s, sid, self._next()):
                        # after GOAWAY: FIN, and read to the proxy's close, as a
                        # server closing gracefully does (a close with unread
                        # bytes would be a TCP reset that may overtake GOAWAY)
                        s.shutdown(socket.SHUT_WR)
                        while s.recv(65536):
                            pass
                        return
        except OSError:
            pass
        finally:
            s.close()

    def _answer(self, s, sid, mode):
        """False: the connection is to be closed."""
        head = hp_block([(":status", "200"), ("content-type", "application/grpc")])
        if mode == "refuse":
            s.sendall(h2raw.rst(sid, h2raw.REFUSED_STREAM))
            return True
        if mode == "goaway0":
            s.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
            return False
        if mode == "goawaymid":
            s.sendall(frame(HEADERS, END_HEADERS, sid, head) + frame(h2raw.DATA, 0, sid, grpc_msg(b"partial")[:6]) +
                      frame(GOAWAY, 0, 0, struct.pack(">II", sid, h2raw.INTERNAL_ERROR)))
            return False
        trailers = [("x-no", "status")] if mode == "nostatus" else [("grpc-status", "0")]
        s.sendall(frame(HEADERS, END_HEADERS, sid, head) + frame(h2raw.DATA, 0, sid, grpc_msg(b"ok")) +
                  frame(HEADERS, END_HEADERS | END_STREAM, sid, hp_block(trailers)) +
                  (h2raw.rst(sid, h2raw.NO_ERROR) if mode == "early" else b""))
        return True

    def stop(self):
        self.ls.close()


class RawH1:
    """An HTTP/1.1 server sending canned bytes per path (keep-alive, one
    request after the other), for responses a real server library will not
    write: a 204 with content-length, trailer sections with fields HTTP/2
    forbids."""

    RESP = {
        "/204cl": b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
        "/test.Html/Call": b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html\r\ncontent-length: 41\r\n\r\n"
                           b"<html>\r\n<b>down</b>\r\n100% \xc3\xa9t\xc3\xa9 \x00\x7f</html>",
        "/trailers": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                     b"content-length: 5\r\nhost: x\r\nconnection: close\r\nkeep-alive: 1\r\nx-ok: 1\r\n\r\n",
    }

    def __init__(self, ip):
        self.name, self.ip, self.version = "raw", ip, "v1"
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((ip, 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        s.settimeout(30)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ")[1].decode("latin-1")
                s.sendall(self.RESP.get(path, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self.ls.close()


class BidiApp:
    """python3-grpcio server: test.Echo/Bidi answers every message at once;
    Count (client streaming) answers the number of bytes received; Blob
    (server streaming) sends N messages of 64 KiB (N = the request's byte)."""

    def __init__(self, port):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Bidi": grpc.stream_stream_rpc_method_handler(lambda it, ctx: (b"re:" + m for m in it)),
            "Count": grpc.stream_unary_rpc_method_handler(lambda it, ctx: b"%d" % sum(len(m) for m in it)),
            "Blob": grpc.unary_stream_rpc_method_handler(lambda r, ctx: (bytes([i % 251]) * 65536 for i in range(r[0]))),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("127.0.0.1:%d" % port)
        self.server.start()

    def stop(self):
        self.server.stop(None)


class MeshH2HostileTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web", "127.0.0.2")}

    @classmethod
    def config(cls, b):
        return {"web.yaml": service_yaml("web", [b["web"]]), "raw.yaml": service_yaml("raw", [cls.raw]),
                "bad.yaml": grpc_entry_yaml("bad", "127.0.0.1", cls.bad.port),
                "bidi.yaml": grpc_entry_yaml("bidi", "127.0.0.1", APP_PORT)}

    @classmethod
    def setUpClass(cls):
        cls.bad = BadH2()
        cls.raw = RawH1("127.0.0.3")
        cls.app = BidiApp(APP_PORT)
        try:
            super().setUpClass()
        except BaseException:
            cls.bad.stop()
            cls.raw.stop()
            cls.app.stop()
            raise
        cls.auth = "%s:%d" % (fqdn("web"), PORT)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.bad.stop()
            cls.raw.stop()
            cls.app.stop()

    def channel(self, name):
        return grpc.insecure_channel("127.0.0.1:%d" % self.px.out_port,
                                     options=[("grpc.default_authority", "%s:%d" % (fqdn(name), GRPC_PORT))])

    def assert_serving(self):
        c = H2Raw(self.px.out_port)
        try:
            c.headers(1, req_fields(self.auth, "/still-serving"))
            self.assertEqual(c.response(1)[0], 200)
        finally:
            c.close()

    def goaway_code(self, c):
        got = [f for f in c.frames_until(lambda f: f[0] == GOAWAY, 10) if f[0] == GOAWAY]
        return struct.unpack(">I", got[0][3][4:8])[0] if got else None

    # ------------------------------------------------------------ downstream

    def test_malformed_requests_refused_before_the_backend(self):
        # RFC 9113 8.2.2 (connection-specific fields, te other than
        # trailers), 8.2.1 (uppercase names), 8.3 (pseudo-header misuse),
        # field values with CR/LF/NUL: each a stream error, the backend
        # never sees it, and the connection goes on
        bad = [[("connection", "keep-alive")], [("keep-alive", "timeout=5")], [("transfer-encoding", "chunked")],
               [("te", "gzip")], [("upgrade", "websocket")], [("proxy-connection", "close")],
               [("X-Upper", "a")], [("x-crlf", "a\r\nx-injected: 1")], [("x-nul", "a\x00b")]]
        before = self.b["web"].count()
        c = H2Raw(self.px.out_port)
        try:
            sid = 1
            for extra in bad:
                c.headers(sid, req_fields(self.auth, "/malformed", extra=extra))
                status, _, code, gcode = c.response(sid)
                self.assertEqual((status, code, gcode), (None, h2raw.PROTOCOL_ERROR, None), extra)
                sid += 2
            for fields in ([(":method", "GET"), (":scheme", "http"), (":authority", self.auth)],   # no :path
                           req_fields(self.auth, ""),                                                # empty :path
                           [(":method", "CONNECT"), (":authority", self.auth)],                    # CONNECT
                           req_fields(self.auth + "\r\nx: y", "/"),                                  # bad :authority
                           req_fields(self.auth, "/x", "GET /y HTTP/1.1\r\n")):                      # bad :method
                c.headers(sid, fields)
                status, _, code, gcode = c.response(sid)
                self.assertEqual((status, code, gcode), (None, h2raw.PROTOCOL_ERROR, None), fields)
                sid += 2
            # te: trailers is the one te allowed (and the same connection still serves)
            c.headers(sid, req_fields(self.auth, "/te", extra=[("te", "trailers")]))
            self.assertEqual(c.response(sid)[0], 200)
        finally:
            c.close()
        with self.b["web"].lock:
            paths = [r[1] for r in self.b["web"].requests[before:]]
            hdrs = [r[2] for r in self.b["web"].requests[before:]]
        # (other tests' stragglers may arrive meanwhile: only these paths count)
        self.assertEqual([p for p in paths if p in ("/malformed", "/", "/x", "/te")], ["/te"])
        self.assertNotIn("x-injected", str(hdrs))

    def test_connection_errors_goaway(self):
        # connection errors (RFC 9113 section 5.4.1): GOAWAY with the RFC's code
        cases = [
            (h2raw.settings((h2raw.S_INITIAL_WINDOW_SIZE, 1 << 31)), h2raw.FLOW_CONTROL_ERROR),
            (h2raw.settings((h2raw.S_MAX_FRAME_SIZE, 100)), h2raw.PROTOCOL_ERROR),
            (h2raw.settings((h2raw.S_ENABLE_PUSH, 2)), h2raw.PROTOCOL_ERROR),
            (frame(h2raw.SETTINGS, 0, 0, b"\x00\x01\x00"), 6),  # FRAME_SIZE_ERROR
            (h2raw.window_update(0, 0x7fffffff) * 2, h2raw.FLOW_CONTROL_ERROR),
            (h2raw.window_update(0, 0), h2raw.PROTOCOL_ERROR),
            (frame(HEADERS, END_HEADERS | END_STREAM, 2, hp_block(req_fields(self.auth))), h2raw.PROTOCOL_ERROR),
            (frame(h2raw.PUSH_PROMISE, END_HEADERS, 1, b"\x00\x00\x00\x02"), h2raw.PROTOCOL_ERROR),
            # a dynamic table size update over the 4096 we allow: COMPRESSION_ERROR
            (frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\xff\xff\x0f" + hp_block(req_fields(self.auth))),
             h2raw.COMPRESSION_ERROR),
        ]
        for data, code in cases:
            c = H2Raw(self.px.out_port)
            try:
                c.send(data)
                self.assertEqual(self.goaway_code(c), code, data[:40])
            finally:
                c.close()
        self.assert_serving()

    def test_floods_end_in_goaway(self):
        # CONTINUATION flood (CVE-2024-27316 kind), rapid reset
        # (CVE-2023-44487): HEADERS + RST_STREAM without end; both end the
        # connection and the backend sees at most the nghttp2 burst
        blk = hp_block(req_fields(self.auth, "/delay/300"))
        before = self.b["web"].count()
        for build in (lambda i: frame(h2raw.CONTINUATION, 0, 1, b"") if i else frame(HEADERS, END_STREAM, 1, blk),
                      lambda i: frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, blk) + h2raw.rst(1 + 2 * i)):
            c = H2Raw(self.px.out_port)
            try:
                try:
                    for i in range(5000):
                        c.send(build(i))
                except OSError:
                    pass  # closed on us: what we want
                self.assertIn(self.goaway_code(c), (None, h2raw.PROTOCOL_ERROR, h2raw.INTERNAL_ERROR,
                                                    h2raw.ENHANCE_YOUR_CALM))
                self.assertTrue(c.closed or c.frames_until(lambda f: False, 5) is not None)
            finally:
                c.close()
        self.assertLess(self.b["web"].count() - before, 1100)
        self.assert_serving()

    def test_made_you_reset_goaway(self):
        # "MadeYouReset" (CVE-2025-8671): each stream opened valid, then
        # made invalid (a WINDOW_UPDATE overflowing its window) so that the
        # server resets it -- nghttp2 1.52 does not count those resets, and
        # each stream had cost a request's routing and upstream attempt.
        # Past the rapid-reset budget: GOAWAY ENHANCE_YOUR_CALM
        blk = hp_block(req_fields(self.auth, "/delay/300"))
        c = H2Raw(self.px.out_port)
        try:
            try:
                for i in range(5000):
                    sid = 1 + 2 * i
                    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, blk) + h2raw.window_update(sid, 0x7fffffff))
            except OSError:
                pass  # closed on us
            self.assertEqual(self.goaway_code(c), h2raw.ENHANCE_YOUR_CALM)
        finally:
            c.close()
        self.assert_serving()

    def test_more_streams_than_advertised_refused(self):
        # we advertise 128: 200 request streams left open (no END_STREAM):
        # the ones past 128 are refused (REFUSED_STREAM, safe to retry),
        # the connection itself goes on
        c = H2Raw(self.px.out_port)
        try:
            blk = hp_block(req_fields(self.auth, "/open", "POST"))
            c.send(b"".join(frame(HEADERS, END_HEADERS, 1 + 2 * i, blk) for i in range(200)))
            refused = set()
            for f in c.frames_until(lambda f: f[0] == GOAWAY, 3):
                if f[0] == RST_STREAM and struct.unpack(">I", f[3])[0] == h2raw.REFUSED_STREAM:
                    refused.add(f[2])
                self.assertNotEqual(f[0], GOAWAY)
        finally:
            c.close()
        self.assertEqual(len(refused), 200 - 128)
        self.assertEqual(min(refused), 1 + 2 * 128)
        self.assert_serving()

    # ------------------------------------------------------------ HTTP/1.1 responses onto HTTP/2

    def curl_h2(self, path, *args):
        """curl --http2-prior-knowledge to raw: (exit code, "< " lines of curl -v, body, stderr)."""
        out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2-prior-knowledge",
                              "-H", "Host: %s:%d" % (fqdn("raw"), PORT)] + list(args) +
                             ["http://127.0.0.1:%d%s" % (self.px.out_port, path)], capture_output=True, timeout=30)
        err = out.stderr.decode("latin-1")
        return out.returncode, [x[2:].strip() for x in err.splitlines() if x.startswith("< ")], out.stdout, err

    def test_204_with_content_length(self):
        # an HTTP/1.1 server's 204 with content-length: HTTP/2 clients
        # reject the stream (PROTOCOL_ERROR) unless the field is dropped
        rc, lines, _, err = self.curl_h2("/204cl")
        self.assertEqual(rc, 0, err)
        self.assertIn("HTTP/2 204", lines)
        self.assertFalse([x for x in lines if x.startswith("content-length")], lines)

    def test_trailer_fields_http2_forbids_are_dropped(self):
        # content-length, host and connection-specific fields in an
        # HTTP/1.1 trailer section (RFC 9110 6.5.1, RFC 9113 8.2.2): dropped,
        # the others kept; before, the client reset the stream on them
        rc, lines, body, err = self.curl_h2("/trailers")
        self.assertEqual(rc, 0, err)
        self.assertEqual(body, b"ok")
        trailers = lines[lines.index("") + 1:]
        self.assertEqual(trailers, ["x-ok: 1"], lines)

    def test_grpc_local_reply_message_percent_encoded(self):
        # a gRPC call answered by an HTTP/1.1 server's 503 HTML page: the
        # body becomes grpc-message, percent-encoded as gRPC says (CR, LF and
        # NUL in an HTTP/2 field value made strict clients reset the stream)
        rc, lines, _, err = self.curl_h2("/test.Html/Call", "-H", "content-type: application/grpc",
                                         "--data-binary", "x")
        self.assertEqual(rc, 0, err)
        self.assertIn("grpc-status: 14", lines)
        self.assertIn("grpc-message: <html>%0D%0A<b>down</b>%0D%0A100%25 %C3%A9t%C3%A9 %00%7F</html>", lines)
        # and grpcio decodes it back to the page
        chan = grpc.insecure_channel("127.0.0.1:%d" % self.px.out_port,
                                     options=[("grpc.default_authority", "%s:%d" % (fqdn("raw"), PORT))])
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                chan.unary_unary("/test.Html/Call")(b"x", timeout=20)
        finally:
            chan.close()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(cm.exception.details(), "<html>\r\n<b>down</b>\r\n100% \u00e9t\u00e9 \x00\x7f</html>")

    # ------------------------------------------------------------ upstream

    def bad_call(self, plan, payload=b"hi"):
        with self.bad.lock:
            self.bad.plan = list(plan)
            seen = self.bad.seen
        chan = self.channel("bad")
        try:
            stub = chan.unary_unary("/test.Bad/Call")
            try:
                return stub(payload, timeout=20), self.bad.seen - seen
            except grpc.RpcError as e:
                return e.code(), self.bad.seen - seen
        finally:
            chan.close()

    def test_upstream_refused_stream_retried(self):
        # RST_STREAM REFUSED_STREAM: the server did not process it, and
        # Istio's default retry_on has refused-stream (Envoy retries it)
        self.assertEqual(self.bad_call(["refuse"]), (b"ok", 2))

    def test_upstream_goaway_before_stream_retried(self):
        # GOAWAY whose last-stream-id is below the stream: never processed,
        # a refused stream for the retry policy (Envoy's RemoteRefusedStreamReset)
        self.assertEqual(self.bad_call(["goaway0"]), (b"ok", 2))

    def test_upstream_goaway_mid_stream_is_an_error_not_a_hang(self):
        code, seen = self.bad_call(["goawaymid"])
        self.assertEqual(seen, 1)  # a response had started: never retried
        self.assertIn(code, (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN))
        self.assertEqual(self.bad_call([]), (b"ok", 1))

    def test_upstream_trailers_without_grpc_status(self):
        # the trailers come through as they are, after the message, ending
        # the stream (Envoy adds nothing either).  A raw client: grpcio 1.51
        # itself dies (SIGILL) on such trailers, with or without a proxy
        with self.bad.lock:
            self.bad.plan = ["nostatus"]
        c = H2Raw(self.px.out_port)
        try:
            c.headers(1, req_fields("%s:%d" % (fqdn("bad"), GRPC_PORT), "/test.Bad/Call", "POST",
                                    [("content-type", "application/grpc"), ("te", "trailers")]), end_stream=False)
            c.data(1, grpc_msg(b"hi"), end_stream=True)
            got = [f for f in c.frames_until(lambda f: f[2] == 1 and (f[1] & END_STREAM or f[0] == RST_STREAM), 20)
                   if f[2] == 1]
        finally:
            c.close()
        self.assertEqual([(f[0], f[1] & END_STREAM) for f in got], [(HEADERS, 0), (h2raw.DATA, 0), (HEADERS, 1)])
        self.assertEqual(h2raw.status_of(h2raw.strip_headers_payload(got[0])), 200)
        self.assertEqual(got[1][3], grpc_msg(b"ok"))
        self.assertEqual(self.bad_call([]), (b"ok", 1))

    def test_upstream_early_response_stops_the_upload(self):
        # a client-streaming call the server answers at once, resetting the
        # upload with NO_ERROR: the client gets the answer, nothing hangs
        with self.bad.lock:
            self.bad.plan = ["early"]
        chan = self.channel("bad")
        try:
            stub = chan.stream_unary("/test.Bad/Upload")
            self.assertEqual(stub(iter([b"u" * 65536] * 64), timeout=20), b"ok")
        finally:
            chan.close()
        self.assertEqual(self.bad_call([]), (b"ok", 1))

    # ------------------------------------------------------------ gRPC

    def test_grpc_bidi_streaming_interleaved(self):
        # each message is answered before the next is sent: nothing in the
        # path waits for the end of the request stream
        chan = self.channel("bidi")
        q = queue.Queue()

        def requests():
            for i in range(5):
                yield b"m%d" % i
                if q.get(timeout=20) is None:
                    return
        try:
            got = []
            for m in chan.stream_stream("/test.Echo/Bidi")(requests(), timeout=30):
                got.append(m)
                q.put(m)
            self.assertEqual(got, [b"re:m%d" % i for i in range(5)])
        finally:
            q.put(None)
            chan.close()

    def test_grpc_large_streams_both_ways(self):
        # 8 MiB up and 8 MiB down through both HTTP/2 legs: flow-control
        # windows are given back as bytes move on (nothing stalls, nothing lost)
        chan = self.channel("bidi")
        try:
            n = chan.stream_unary("/test.Echo/Count")(iter([b"u" * 65536] * 128), timeout=60)
            self.assertEqual(n, b"%d" % (128 * 65536))
            got = list(chan.unary_stream("/test.Echo/Blob")(bytes([128]), timeout=60))
            self.assertEqual(len(got), 128)
            self.assertTrue(all(m == bytes([i % 251]) * 65536 for i, m in enumerate(got)))
        finally:
            chan.close()

    def test_grpc_timeout_edge_values(self):
        # "0n" is no deadline (Envoy), a huge one is taken, garbage ignored:
        # the raw header (grpcio writes its own from the deadline)
        for v in ("0n", "99999999H", "abc", "1n"):
            c = H2Raw(self.px.out_port)
            try:
                c.headers(1, req_fields(self.auth, "/gt", extra=[("grpc-timeout", v)]))
                status = c.response(1)[0]
                # "1n" rounds up to 1 ms: it may time out (504) before the backend answers
                self.assertIn(status, (200, 504) if v == "1n" else (200,), v)
            finally:
                c.close()


if __name__ == "__main__":
    unittest.main()
