"""A long-lived proxyless gRPC client driven over stdin/stdout (one JSON object per line).

Runs in its own process because gRPC reads GRPC_XDS_BOOTSTRAP once per process.
Request:  {"n": 100, "metadata": [["x-canary", "true"]], "timeout": 5, "method": "/test.Echo/Hello"}
Reply:    {"counts": {"v1": 90, "v2": 10, "ERR:UNAVAILABLE": 0}}
"""
import json
import sys

import grpc


def main():
    target = sys.argv[1]
    channel = grpc.insecure_channel(target)
    for line in sys.stdin:
        req = json.loads(line)
        stub = channel.unary_unary(req.get("method", "/test.Echo/Hello"))
        md = [tuple(kv) for kv in req.get("metadata", [])] or None
        counts = {}
        for _ in range(int(req["n"])):
            try:
                r = stub(b"hi", metadata=md, timeout=float(req.get("timeout", 5))).decode()
            except grpc.RpcError as e:
                r = "ERR:" + e.code().name
            counts[r] = counts.get(r, 0) + 1
        sys.stdout.write(json.dumps({"counts": counts}) + "\n")
        sys.stdout.flush()
    channel.close()


if __name__ == "__main__":
    main()
