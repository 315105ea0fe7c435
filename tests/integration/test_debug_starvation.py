"""Hostile clients on meshd's debug port (--http-addr) do not starve the
readiness probe: 300 idle connections and 300 half-sent `GET /rea` requests
from 60 loopback addresses (127.0.0.2 ... 127.0.0.61; loopback answers on all
of 127/8), and /ready and /metrics from 127.0.0.1 keep answering.  One
address cannot hold more than its share (16 connections): its next request
is closed unanswered while another address is served, and counted
(meshd_limit_exceeded_total{limit="debug_connections"}).  Half-sent requests
are closed by meshd (a read deadline), without the client doing anything.
"""
import resource
import select
import socket
import unittest

from meshtest import Meshd, wait_for

IDLE_PER_ADDR = 5
PARTIAL_PER_ADDR = 5
ADDRS = ["127.0.0.%d" % i for i in range(2, 62)]
PER_IP = 16


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s):
    """True once the server has closed s (EOF or reset), without blocking."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(4096) == b""
    except OSError:
        return True


def get(s, path):
    """A whole GET on s; the status code, or None when closed unanswered."""
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


class DebugStarvationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.meshd = Meshd({}).start()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish()

    def fresh_get(self, path, src="127.0.0.1"):
        s = connect_from(src, self.meshd.http_port)
        try:
            return get(s, path)
        finally:
            s.close()

    def test_probes_answered_under_hostile_connections(self):
        port = self.meshd.http_port
        idle, partial = [], []
        try:
            for a in ADDRS:
                for _ in range(IDLE_PER_ADDR):
                    idle.append(connect_from(a, port))
                for _ in range(PARTIAL_PER_ADDR):
                    s = connect_from(a, port)
                    s.sendall(b"GET /rea")
                    partial.append(s)
            self.assertEqual(len(idle) + len(partial), 600)
            # while all 600 are held: the probe and a scrape from elsewhere answer
            for _ in range(20):
                self.assertEqual(self.fresh_get(b"/ready"), 200)
            self.assertEqual(self.fresh_get(b"/metrics"), 200)

            # one address holding its share: its next request is closed unanswered,
            # another address is served
            greedy = []
            for _ in range(PER_IP):
                s = connect_from("127.0.0.99", port)
                s.sendall(b"G")
                greedy.append(s)
            try:
                self.assertIsNone(self.fresh_get(b"/ready", "127.0.0.99"))
                self.assertEqual(self.fresh_get(b"/ready", "127.0.0.98"), 200)
                # the refusal is counted
                code, body = self.meshd.http("/metrics")
                self.assertEqual(code, 200)
                line = [l for l in body.splitlines()
                        if l.startswith('meshd_limit_exceeded_total{limit="debug_connections"} ')]
                self.assertEqual(len(line), 1)
                self.assertGreaterEqual(float(line[0].split()[1]), 1)
            finally:
                for s in greedy:
                    s.close()

            # meshd ends the half-sent requests itself (a read deadline)
            wait_for(lambda: all(closed_by_peer(s) for s in partial), timeout=120,
                     what="meshd closing the half-sent requests")
        finally:
            for s in idle + partial:
                s.close()
        self.assertEqual(self.fresh_get(b"/ready"), 200)
        self.assertEqual(self.meshd.http("/ready")[0], 200)


if __name__ == "__main__":
    unittest.main()
