"""Bad input on meshd's sockets changes nothing: garbage TCP, garbage HTTP/2,
a malformed DiscoveryRequest on a real gRPC stream.  And versions are content
hashes: a restarted meshd serves the same versions, so proxies reload nothing.
"""
import socket
import unittest

import grpc

from meshtest import Backend, Meshd, XdsClient, wait_for

HOST = "calm.test.svc.cluster.local"
PORT = 7073
ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: calm, namespace: test}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %(port)d, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %(p)d}}]
"""


def send_raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()


class HostileInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Backend("calm")
        cls.meshd = Meshd({"calm.yaml": CONFIG % {"host": HOST, "port": PORT, "p": cls.backend.port}}).start()
        cls.client = XdsClient(cls.meshd.bootstrap(node_id="calm-client", namespace="test"),
                               "xds:///%s:%d" % (HOST, PORT))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.meshd.finish(cls.backend)

    def assert_still_serving(self):
        self.assertEqual(self.meshd.http("/ready")[0], 200)
        self.assertEqual(self.client.call(5), {"calm": 5})

    def test_01_garbage_tcp(self):
        self.assert_still_serving()
        for port in (self.meshd.xds_port, self.meshd.http_port):
            send_raw(port, b"\x00\xff" * 512)
            send_raw(port, b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100000 + b"\r\n\r\n")
            send_raw(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + b"\xde\xad" * 64)
        self.assert_still_serving()

    def test_02_malformed_discovery_request(self):
        channel = grpc.insecure_channel("127.0.0.1:%d" % self.meshd.xds_port)
        try:
            stream = channel.stream_stream(ADS)
            responses = stream(iter([b"\x0a\xff\xff\xff\xff\x0f garbage"]), timeout=10)
            with self.assertRaises(grpc.RpcError) as ctx:
                for _ in responses:
                    pass
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("DiscoveryRequest", ctx.exception.details())
        finally:
            channel.close()
        self.assert_still_serving()

    def test_03_unknown_method(self):
        channel = grpc.insecure_channel("127.0.0.1:%d" % self.meshd.xds_port)
        try:
            with self.assertRaises(grpc.RpcError) as ctx:
                channel.unary_unary("/no.Such/Method")(b"", timeout=10)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        finally:
            channel.close()
        self.assert_still_serving()


class RestartTest(unittest.TestCase):
    def test_restart_keeps_versions(self):
        backend = Backend("calm")
        meshd = Meshd({"calm.yaml": CONFIG % {"host": HOST, "port": PORT, "p": backend.port}}).start()
        client = XdsClient(meshd.bootstrap(node_id="restart-client", namespace="test"), "xds:///%s:%d" % (HOST, PORT))
        try:
            self.assertEqual(client.call(3), {"calm": 3})

            def versions():
                for p in meshd.json("/debug/syncz"):
                    if p["proxy"] == "restart-client":
                        t = p["types"]
                        if all(t.get(k, {}).get("state") == "SYNCED" for k in ("lds", "rds", "cds", "eds")):
                            return {k: t[k]["acked_version"] for k in ("lds", "rds", "cds", "eds")}
                return None
            before = wait_for(versions, what="client synced")
            self.assertEqual(meshd.stop(), 0)
            # same ports, same config: a new process
            meshd.start()
            after = wait_for(versions, timeout=60, what="client re-synced after restart")
            self.assertEqual(before, after)
            self.assertEqual(client.call(3), {"calm": 3})
        finally:
            client.close()
            rc = meshd.stop()
            backend.stop()
            meshd.cleanup()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
