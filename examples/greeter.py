#!/usr/bin/python3
"""The example mesh's greeter: backends for `make run`, and a proxyless client.

    greeter.py serve --version v1 --port 50061     a helloworld.Greeter backend
    greeter.py call [--canary] [-n N] [--xds HOST:PORT]
                                                   N calls through meshd (xDS);
                                                   each prints which version answered

The backends answer helloworld.Greeter/SayHello (the message gRPC's own
examples use) with "Hello NAME from greeter VERSION".  The client dials
xds:///greeter.demo.svc.cluster.local:50051 with a bootstrap naming meshd
(GRPC_XDS_BOOTSTRAP if set, else one written for --xds, default
127.0.0.1:15010), so meshd's VirtualService decides which version answers:
90% v1, 10% v2, and v2 for every call with "x-canary: true" (--canary).

Run it with Debian's /usr/bin/python3 (python3-grpcio); the messages are
encoded by hand so no generated code is needed.
"""
import argparse
import json
import os
import signal
import sys
import tempfile
from concurrent import futures

import grpc

METHOD = "/helloworld.Greeter/SayHello"
TARGET = "xds:///greeter.demo.svc.cluster.local:50051"


def pb_string(field, text):
    """One length-delimited protobuf field (HelloRequest.name, HelloReply.message: field 1)."""
    data = text.encode()
    out = bytearray([(field << 3) | 2])
    n = len(data)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def pb_first_string(buf):
    """Field 1 of a HelloRequest/HelloReply, or ""."""
    if len(buf) < 2 or buf[0] != 0x0A:
        return ""
    n, shift, i = 0, 0, 1
    while i < len(buf):
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return buf[i:i + n].decode(errors="replace")


def serve(args):
    def say_hello(request, context):
        name = pb_first_string(request) or "world"
        return pb_string(1, "Hello %s from greeter %s" % (name, args.version))

    # Ctrl-C and SIGTERM are taken by sigwait() below: block them before gRPC
    # starts its threads (which inherit the mask), or one of those threads may
    # receive the signal while the main thread never wakes
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    # gRPC turns SO_REUSEPORT on by default: a second backend on the same
    # port would share it silently instead of failing
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("helloworld.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
    }),))
    addr = "127.0.0.1:%d" % args.port
    try:
        port = server.add_insecure_port(addr)
    except RuntimeError:
        port = 0
    if not port:
        print("greeter %s: cannot listen on %s: address in use?" % (args.version, addr), file=sys.stderr)
        return 1
    server.start()
    print("greeter %s listening on %s" % (args.version, addr), flush=True)
    signal.sigwait(stop_signals)
    server.stop(None)
    return 0


def bootstrap(xds_addr):
    f = tempfile.NamedTemporaryFile("w", prefix="greeter-bootstrap-", suffix=".json", delete=False)
    json.dump({
        "xds_servers": [{"server_uri": xds_addr, "channel_creds": [{"type": "insecure"}],
                         "server_features": ["xds_v3"]}],
        "node": {"id": "sidecar~127.0.0.1~client.demo~demo.svc.cluster.local",
                 "metadata": {"GENERATOR": "grpc", "NAMESPACE": "demo"}},
    }, f)
    f.close()
    return f.name


def call(args):
    made = None
    if not os.environ.get("GRPC_XDS_BOOTSTRAP"):
        made = bootstrap(args.xds)
        os.environ["GRPC_XDS_BOOTSTRAP"] = made
    metadata = [("x-canary", "true")] if args.canary else None
    rc = 0
    try:
        with grpc.insecure_channel(TARGET) as channel:
            stub = channel.unary_unary(METHOD)
            for _ in range(args.n):
                try:
                    reply = pb_first_string(stub(pb_string(1, "world"), metadata=metadata,
                                                 timeout=args.timeout, wait_for_ready=True))
                    print(reply, flush=True)
                except grpc.RpcError as e:
                    print("call failed: %s: %s" % (e.code().name, e.details()), flush=True)
                    rc = 1
    finally:
        if made:
            os.unlink(made)
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run one greeter backend")
    s.add_argument("--version", required=True, help="v1 or v2 (what the replies say)")
    s.add_argument("--port", type=int, required=True)
    c = sub.add_parser("call", help="call the greeter through meshd")
    c.add_argument("-n", type=int, default=10, help="number of calls (10)")
    c.add_argument("--canary", action="store_true", help="send x-canary: true (always v2)")
    c.add_argument("--xds", default="127.0.0.1:15010", help="meshd's xDS address (127.0.0.1:15010)")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")
    args = p.parse_args()
    return serve(args) if args.cmd == "serve" else call(args)


if __name__ == "__main__":
    sys.exit(main())
