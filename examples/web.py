#!/usr/bin/python3
"""examples/web.py - the example mesh's HTTP workload (examples/web.yaml).

    web.py --version v1 --port 18081

answers every GET with "Hello from web VERSION: PATH" and the request id
meshproxy added, so a call through a sidecar shows which workload answered.
"""
import argparse
import http.server
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="v1")
    ap.add_argument("--port", type=int, default=18081)
    ap.add_argument("--address", default="127.0.0.1")
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = ("Hello from web %s: %s (x-request-id %s)\n" %
                    (args.version, self.path, self.headers.get("x-request-id", "-"))).encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a):
            pass

    try:
        server = http.server.ThreadingHTTPServer((args.address, args.port), Handler)
    except OSError as e:
        sys.exit("web.py: cannot listen on %s:%d: %s (is another `make run` running?)"
                 % (args.address, args.port, e.strerror))
    server.serve_forever()


if __name__ == "__main__":
    main()
