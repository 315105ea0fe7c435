"""Idle and slow clients on meshd's gRPC ports (15010 plaintext, 15012 TLS)
do not stop a real gRPC client (Debian's python3-grpcio) from getting its
configuration, nor /ready from answering: 200 idle TCP connections and 100
that stop inside the HTTP/2 preface on the plaintext port, 100 idle and 50
that stop inside the TLS ClientHello on the TLS port, and 20 that finish the
HTTP/2 handshake (preface and SETTINGS) and then open no call.  meshd closes
every one of them itself, the first ones once its handshake deadline
(--grpc-handshake-timeout, 2s here) passes, the last ones once they have
been idle (--grpc-max-connection-idle, 3s here), without the clients doing
anything; waits are bounded and nothing asserts how soon.
"""
import resource
import select
import socket
import unittest

from meshtest import Backend, Meshd, XdsClient, wait_for

HOST = "slow.test.svc.cluster.local"
PORT = 7075

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %(p)d}}]
"""

# the first bytes of a TLS 1.2+ ClientHello record: a record header
# announcing 512 bytes that never come
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
# the client connection preface and an empty SETTINGS frame (RFC 9113 3.4)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect(port, data=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        s.sendall(data)
    return s


def closed_by_peer(s):
    """True once meshd has closed s (EOF or reset), without blocking."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        while True:
            chunk = s.recv(65536)  # a GOAWAY or alert may come before the EOF
            if not chunk:
                return True
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                return False
    except OSError:
        return True


class XdsSlowClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        cls.backend = Backend("slow")
        cls.meshd = Meshd({"slow.yaml": CONFIG % {"host": HOST, "port": PORT, "p": cls.backend.port}},
                          extra_args=["--grpc-handshake-timeout", "2s",
                                      "--grpc-max-connection-idle", "3s"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.meshd.finish(cls.backend)

    def test_hostile_connections_do_not_starve_clients(self):
        m = self.meshd
        held = []
        try:
            held += [connect(m.xds_port) for _ in range(200)]
            held += [connect(m.xds_port, b"PRI * HTTP/2.0\r\n") for _ in range(100)]
            held += [connect(m.secure_port) for _ in range(100)]
            held += [connect(m.secure_port, PARTIAL_CLIENT_HELLO) for _ in range(50)]
            held += [connect(m.xds_port, H2_PREFACE) for _ in range(20)]
            self.assertEqual(len(held), 470)
            # while they are held: the probe answers and a real client gets config
            self.assertEqual(m.http("/ready")[0], 200)
            client = XdsClient(m.bootstrap(node_id="slow-client", namespace="test"), "xds:///%s:%d" % (HOST, PORT))
            try:
                self.assertEqual(client.call(5), {"slow": 5})
            finally:
                client.close()
            # meshd ends every one of them on its own (handshake deadline)
            open_ = list(held)
            def all_closed():
                open_[:] = [s for s in open_ if not closed_by_peer(s)]
                return not open_
            wait_for(all_closed, timeout=90, interval=0.5, what="meshd closing unfinished handshakes and idle connections")
            self.assertEqual(m.http("/ready")[0], 200)
        finally:
            for s in held:
                s.close()


if __name__ == "__main__":
    unittest.main()
