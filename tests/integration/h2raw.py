"""A raw HTTP/2 peer for hostile tests: frames written by hand (no h2
library), so a test can send what a well-behaved client never would.

HPACK here is the minimum: requests use literal fields without indexing
(no Huffman) unless a test builds its own block; responses are read only
for :status (static-table indexes and literal values, Huffman for digits).
"""
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 7, 8, 9, 11

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 1, 2, 3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 4, 5, 6

STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# RFC 7541 Appendix B: the Huffman codes of the ten digits
HUFF_DIGITS = {(0x0, 5): "0", (0x1, 5): "1", (0x2, 5): "2", (0x19, 6): "3", (0x1a, 6): "4",
               (0x1b, 6): "5", (0x1c, 6): "6", (0x1d, 6): "7", (0x1e, 6): "8", (0x1f, 6): "9"}


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def rst(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def ping(data=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def hp_int(v, prefix, first=0):
    """HPACK integer (RFC 7541 5.1) with a prefix-bit prefix, first = the high bits."""
    lim = (1 << prefix) - 1
    if v < lim:
        return bytes([first | v])
    out = [first | lim]
    v -= lim
    while v >= 128:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def hp_str(s):
    if isinstance(s, str):
        s = s.encode("latin-1")
    return hp_int(len(s), 7) + s


def hp_lit(name, value):
    """Literal field without indexing, new name."""
    return b"\x00" + hp_str(name) + hp_str(value)


def hp_lit_indexed(name, value):
    """Literal field with incremental indexing (goes into the dynamic table)."""
    return b"\x40" + hp_str(name) + hp_str(value)


def hp_block(fields):
    return b"".join(hp_lit(n, v) for n, v in fields)


def req_fields(authority, path="/", method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)] + list(extra)


def huff_digits(b):
    bits = "".join(format(x, "08b") for x in b)
    out, i = "", 0
    while i < len(bits):
        for n in (5, 6):
            code = bits[i:i + n]
            if len(code) == n and (int(code, 2), n) in HUFF_DIGITS:
                out += HUFF_DIGITS[(int(code, 2), n)]
                i += n
                break
        else:
            break  # EOS padding (all ones)
    return out


def status_of(block):
    """:status of a response header block (the first field, as servers send it), or None."""
    if not block:
        return None
    b0 = block[0]
    if b0 & 0x80:
        return STATIC_STATUS.get(b0 & 0x7f)
    if b0 & 0x40 and (b0 & 0x3f) == 8 or (b0 & 0xf0) in (0, 0x10) and (b0 & 0x0f) == 8:
        ln, huff = block[1] & 0x7f, block[1] & 0x80
        v = block[2:2 + ln]
        s = huff_digits(v) if huff else v.decode("latin-1")
        return int(s) if s.isdigit() else None
    return None


class H2Raw:
    """One client connection: connect, preface + SETTINGS, send raw frames,
    read frames back as (type, flags, sid, payload)."""

    def __init__(self, port, host="127.0.0.1", timeout=10, preface=True, settings_pairs=()):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False
        if preface:
            self.send(PREFACE + settings(*settings_pairs))

    def send(self, data):
        self.s.sendall(data)

    def headers(self, sid, fields, end_stream=True, block=None):
        blk = block if block is not None else hp_block(fields)
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, blk))

    def data(self, sid, payload, end_stream=False):
        self.send(frame(DATA, END_STREAM if end_stream else 0, sid, payload))

    def read_frame(self, timeout=10):
        """The next frame, or None on EOF / timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                ln = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + ln:
                    f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                         self.buf[9:9 + ln])
                    self.buf = self.buf[9 + ln:]
                    return f
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                continue
            self.buf += chunk

    def frames_until(self, pred, timeout=10):
        """Frames read until pred(frame) holds (inclusive), EOF or timeout; auto-ACKs SETTINGS and PING."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return out
            out.append(f)
            if f[0] == SETTINGS and not f[1] & ACK:
                try:
                    self.send(settings(ack=True))
                except OSError:
                    pass  # the peer closed: its last frames are still read
            if pred(f):
                return out

    def response(self, sid, timeout=10):
        """(status or None, body bytes, rst code or None, goaway code or None) for stream sid."""
        status, body, rcode, gcode = None, b"", None, None

        def done(f):
            return (f[2] == sid and (f[0] in (HEADERS, DATA) and f[1] & END_STREAM or f[0] == RST_STREAM)) \
                or f[0] == GOAWAY
        for f in self.frames_until(done, timeout):
            if f[2] == sid and f[0] == HEADERS and status is None:
                status = status_of(strip_headers_payload(f))
            elif f[2] == sid and f[0] == DATA:
                body += f[3]
            elif f[2] == sid and f[0] == RST_STREAM:
                rcode = struct.unpack(">I", f[3][:4])[0]
            elif f[0] == GOAWAY:
                gcode = struct.unpack(">I", f[3][4:8])[0]
        return status, body, rcode, gcode

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def strip_headers_payload(f):
    """The header block fragment of a HEADERS frame (padding and priority removed)."""
    p, flags = f[3], f[1]
    pad = 0
    if flags & PADDED:
        pad, p = p[0], p[1:]
    if flags & 0x20:
        p = p[5:]
    return p[:len(p) - pad] if pad else p
