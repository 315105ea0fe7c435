"""Peers for test_authz.py, one per process (gRPC reads GRPC_XDS_BOOTSTRAP once
per process).  Not a test module: it only runs as a script.

  server PORT...        an xDS-enabled gRPC server (xds=True, xDS server
                        credentials falling back to plaintext) listening on
                        127.0.0.1:PORT for every PORT given; it answers every
                        unary method with b"reached" (any /pkg.Service/Method),
                        so a call that returns OK has passed the RBAC filters
                        of meshd's inbound listener and reached the handler.
                        Prints "started", serves until stdin closes.
  client                a long-lived client driven over stdin/stdout, one
                        JSON request a line:
                          {"target": "xds:///host:port" or "127.0.0.1:port",
                           "xds": true (xDS channel credentials: mTLS when
                                  the cluster says so) or false (plaintext,
                                  no xDS),
                           "authority": ":authority to send" or null,
                           "user_agent": prepended to gRPC's own or null,
                           "path": "/pkg.Service/Method",
                           "metadata": [[name, value], ...],
                           "timeout": seconds}
                        answering {"result": "ALLOW" | "DENY" | "ERR:CODE",
                        "detail": "..."}: ALLOW when the call reached the
                        handler, DENY on PERMISSION_DENIED (gRPC's RBAC).
"""
import json
import sys
from concurrent import futures

import grpc
import grpc.experimental

REPLY = b"reached"


class AnyMethod(grpc.GenericRpcHandler):
    """Serves every method path as a unary-unary call on raw bytes."""

    def service(self, handler_call_details):
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: REPLY)


def serve(ports):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), xds=True)
    server.add_generic_rpc_handlers((AnyMethod(),))
    creds = grpc.xds_server_credentials(grpc.insecure_server_credentials())
    for port in ports:
        server.add_secure_port("127.0.0.1:%d" % port, creds)
    server.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    for _ in sys.stdin:
        pass
    server.stop(None)


def client():
    channels = {}

    def channel(req):
        key = (req["target"], bool(req["xds"]), req.get("authority"), req.get("user_agent"))
        ch = channels.get(key)
        if ch is None:
            options = []
            if req.get("authority"):
                options.append(("grpc.default_authority", req["authority"]))
            if req.get("user_agent"):
                options.append(("grpc.primary_user_agent", req["user_agent"]))
            if req["xds"]:
                # grpcio 1.51 keeps insecure channel credentials under experimental
                fallback = grpc.experimental.insecure_channel_credentials()
                ch = grpc.secure_channel(req["target"], grpc.xds_channel_credentials(fallback), options=options)
            else:
                ch = grpc.insecure_channel(req["target"], options=options)
            channels[key] = ch
        return ch

    for line in sys.stdin:
        req = json.loads(line)
        stub = channel(req).unary_unary(req["path"])
        try:
            # wait_for_ready: a policy change is a listener update on the
            # server, and gRPC's xDS server drains its connections for it; a
            # call that meets a connection closed by that update reconnects
            # within its timeout instead of failing UNAVAILABLE (the decision,
            # PERMISSION_DENIED or not, is the same either way)
            r = stub(b"hi", metadata=[tuple(kv) for kv in req.get("metadata", [])],
                     timeout=float(req.get("timeout", 5)), wait_for_ready=True)
            out = {"result": "ALLOW" if r == REPLY else "ERR:REPLY", "detail": repr(r)}
        except grpc.RpcError as e:
            name = e.code().name
            out = {"result": "DENY" if name == "PERMISSION_DENIED" else "ERR:" + name,
                   "detail": e.details() or ""}
        except ValueError as e:
            out = {"result": "ERR:CLIENT", "detail": str(e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    for ch in channels.values():
        ch.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve([int(p) for p in sys.argv[2:]])
    else:
        client()
