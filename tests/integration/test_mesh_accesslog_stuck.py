"""An access log on a stdout nobody reads must not stop the proxy
(issue 14).

Istio's default access log is /dev/stdout; in a Pod that is a pipe to the
container runtime.  When its reader stalls, the pipe fills (64 KiB on
Linux) and a blocking write would freeze meshproxy's one event loop: every
connection on every listener, admin included.  Here meshproxy's stdout is
a pipe the test never reads and `--access-log -` logs every request; 300
requests of 4 KB (1.2 MB of log lines: past the pipe and past the
sink's 1 MiB buffer) on one connection must all be answered, and the
admin port must still answer.  Lines that do not fit
are dropped and counted, as a failed write already is.  Every request has
a bounded timeout; nothing asserts on timing.
"""
import http.client
import subprocess
import unittest

import meshhttp
from meshhttp import PORT, Backend, MeshCase, fqdn, service_yaml


class _PipedPopen(subprocess.Popen):
    """meshproxy with its stdout a pipe that is never read."""

    def __init__(self, args, **kw):
        if args and args[-1] == "--exit-on-zero-active-connections" or "--access-log" in args:
            kw["stderr"] = kw.get("stdout")
            kw["stdout"] = subprocess.PIPE
            args = list(args) + ["--access-log", "-"]
        super().__init__(args, **kw)


class MeshAccessLogStuckTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web")}

    @classmethod
    def config(cls, b):
        return {"services.yaml": service_yaml("web", [b["web"]])}

    @classmethod
    def setUpClass(cls):
        real = meshhttp.subprocess.Popen
        meshhttp.subprocess.Popen = _PipedPopen
        try:
            super().setUpClass()
        finally:
            meshhttp.subprocess.Popen = real

    def test_requests_answered_while_stdout_is_full(self):
        # 300 lines of ~4 KB: 1.2 MB, past the pipe (64 KiB) and past the
        # sink's 1 MiB buffer, so lines are also dropped
        c = http.client.HTTPConnection("127.0.0.1", self.px.out_port, timeout=20)
        try:
            for i in range(300):
                c.request("GET", "http://%s:%d/%d-%s" % (fqdn("web"), PORT, i, "p" * 4000))
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200, i)
        finally:
            c.close()
        status, _ = self.px.admin("/ready")
        self.assertEqual(status, 200)

if __name__ == "__main__":
    unittest.main()
