"""Access log files as operators handle them (issue 14).

MeshAccessLogStuckTest: an access log on a stdout nobody reads must not
stop the proxy.

Istio's default access log is /dev/stdout; in a Pod that is a pipe to the
container runtime.  When its reader stalls, the pipe fills (64 KiB on
Linux) and a blocking write would freeze meshproxy's one event loop: every
connection on every listener, admin included.  Here meshproxy's stdout is
a pipe the test never reads and `--access-log -` logs every request; 300
requests of 4 KB (1.2 MB of log lines: past the pipe and past the
sink's 1 MiB buffer) on one connection must all be answered, and the
admin port must still answer.  Lines that do not fit are dropped whole
and counted.  Every request has
a bounded timeout; nothing asserts on timing.

MeshAccessLogReopenTest: rotation by rename, as logrotate does it without
copytruncate: the file is moved away, then Envoy's reopen (admin
POST /reopen_logs, or SIGUSR1) makes later lines go to a new file at the
configured path while the moved one keeps the earlier lines.  A reopen
that cannot open the path (its directory moved away) answers 500 naming
it and keeps writing to the old file.
"""
import http.client
import os
import signal
import subprocess
import unittest

import meshhttp
from meshhttp import PORT, Backend, MeshCase, fqdn, service_yaml
from meshtest import wait_for


class _PipedPopen(subprocess.Popen):
    """meshproxy with its stdout a pipe that is never read."""

    def __init__(self, args, **kw):
        if "--access-log" in args:
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


class MeshAccessLogReopenTest(MeshCase):
    @classmethod
    def backends(cls):
        return {"web": Backend("web")}

    @classmethod
    def config(cls, b):
        return {"services.yaml": service_yaml("web", [b["web"]])}

    def post(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.px.admin_port, timeout=10)
        try:
            c.request("POST", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    @staticmethod
    def lines(path):
        try:
            with open(path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def request_logged(self, tag, path):
        r = self.px.get("web", "/" + tag)
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: any("/" + tag + " " in x for x in self.lines(path)), what="%s in %s" % (tag, path))

    def test_rotation_by_rename(self):
        alog = self.px.alog
        self.request_logged("before-rotation", alog)
        os.rename(alog, alog + ".1")
        self.assertEqual(self.post("/reopen_logs"), (200, "OK\n"))
        self.request_logged("after-reopen", alog)
        self.assertFalse(any("/after-reopen " in x for x in self.lines(alog + ".1")))
        self.assertFalse(any("/before-rotation " in x for x in self.lines(alog)))
        # SIGUSR1 does the same
        os.rename(alog, alog + ".2")
        self.px.proc.send_signal(signal.SIGUSR1)
        self.request_logged("after-sigusr1", alog)
        self.assertFalse(any("/after-sigusr1 " in x for x in self.lines(alog + ".2")))
        # GET is refused, as Envoy's POST-only endpoints
        self.assertEqual(self.px.admin("/reopen_logs")[0], 405)

    def test_reopen_failure_keeps_the_old_file(self):
        d = self.px.dir
        os.rename(d, d + ".moved")
        try:
            status, body = self.post("/reopen_logs")
            self.assertEqual(status, 500, body)
            self.assertIn("access.log", body)
            # still written, to the file it had
            self.request_logged("after-failed-reopen", os.path.join(d + ".moved", "access.log"))
        finally:
            os.rename(d + ".moved", d)


if __name__ == "__main__":
    unittest.main()
