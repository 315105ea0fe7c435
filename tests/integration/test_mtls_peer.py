"""Peers for test_mtls.py, one per process (gRPC reads GRPC_XDS_BOOTSTRAP once
per process).  Not a test module: it only runs as a script.

  server PORT NAME      an xDS-enabled gRPC server (xds=True, xDS server
                        credentials falling back to plaintext) on
                        127.0.0.1:PORT answering /test.Echo/Hello with NAME;
                        it serves what meshd's inbound listener says.
  client TARGET MODE    a long-lived client driven over stdin/stdout like
                        xds_client.py; MODE "xds": xds:/// target with xDS
                        channel credentials (TLS when the cluster says so,
                        plaintext otherwise); MODE "plain": a plaintext
                        channel straight to TARGET (host:port), no xDS.
"""
import json
import sys
from concurrent import futures

import grpc
import grpc.experimental


def serve(port, name):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), xds=True)
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Hello": grpc.unary_unary_rpc_method_handler(lambda req, ctx: name.encode()),
    })
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.xds_server_credentials(grpc.insecure_server_credentials())
    server.add_secure_port("127.0.0.1:%d" % port, creds)
    server.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    # until stdin closes
    for _ in sys.stdin:
        pass
    server.stop(None)


def client(target, mode):
    if mode == "xds":
        # grpcio 1.51 keeps insecure channel credentials under experimental
        fallback = grpc.experimental.insecure_channel_credentials()
        creds = grpc.xds_channel_credentials(fallback)
        channel = grpc.secure_channel(target, creds)
    else:
        channel = grpc.insecure_channel(target)
    for line in sys.stdin:
        req = json.loads(line)
        stub = channel.unary_unary("/test.Echo/Hello")
        counts = {}
        for _ in range(int(req["n"])):
            try:
                r = stub(b"hi", timeout=float(req.get("timeout", 5))).decode()
            except grpc.RpcError as e:
                r = "ERR:" + e.code().name
            counts[r] = counts.get(r, 0) + 1
        sys.stdout.write(json.dumps({"counts": counts}) + "\n")
        sys.stdout.flush()
    channel.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        client(sys.argv[2], sys.argv[3])
