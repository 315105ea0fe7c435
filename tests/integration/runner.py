"""Run the integration tests and print 'integration: N passed, N failed, N skipped'.

Arguments: file patterns (shell globs, default test_*.py); several may be
given, separated by spaces in one argument or as separate arguments, so that
the sanitizer and valgrind passes of `make test` can each run the files they
catch most with.  The seconds each file took are printed at the end, so the
suite's time budget (DESIGN: the whole `make test` under 20 minutes on 2
cores) can be watched.

Files run in MESH_IT_JOBS worker processes at once (default 1; `make test`
runs 2): most files spend their time waiting on peers (rotation, scrapes,
polling), not on CPU.  A file is the unit of scheduling: each runs in its own
python process (module state, rlimits and leftover peers stay with it), the
longest first by the last known seconds in durations.txt (a file missing
there is estimated from its size).  A file's output is kept in a buffer and
printed whole when it ends.  Worker k's files pick ports from their own range
(MESH_IT_PORTS, read by meshtest.free_port), so two workers never get the
same port.

A file whose text has a line `RUN_ALONE = "why"` runs with nothing beside it
(it binds fixed ports, touches state every file shares, or measures what a
neighbour would disturb); the summary says which ran alone and why.

Environment: MESH_IT_JOBS (workers), MESH_IT_FILE_TIMEOUT (seconds a file may
take before it is killed and counted as failed, default 1800),
MESH_IT_SAVE_DURATIONS=1 (write this run's seconds into durations.txt).
"""
import fnmatch
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
DURATIONS = os.path.join(here, "durations.txt")
ALONE_RE = re.compile(r'^RUN_ALONE\s*=\s*"([^"]+)"', re.M)

# free_port() ranges: under the kernel's ephemeral range, so a port the kernel
# gives a bind(0) or an outgoing connection never meets one a test picked
# and has not bound yet; split evenly between the workers.
PORT_LO = 20000


def port_window(jobs):
    """[(lo, hi)] for each of jobs workers: disjoint, under the ephemeral range."""
    hi = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph = int(f.read().split()[0])
        if eph - PORT_LO >= 1000 * jobs:
            hi = eph
    except (OSError, ValueError, IndexError):
        pass
    span = (hi - PORT_LO) // jobs
    return [(PORT_LO + k * span, PORT_LO + (k + 1) * span) for k in range(jobs)]


# ---------------------------------------------------------------- one file (child)

def run_file(name, result_path):
    """The child: run every test of file name; write its counts to result_path."""
    sys.path.insert(0, here)
    # the buffer is a file: keep test prints in order with unittest's stderr lines
    sys.stdout.reconfigure(line_buffering=True)
    suite = unittest.defaultTestLoader.discover(here, pattern=name)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    counts = {"run": result.testsRun, "failed": len(result.failures) + len(result.errors),
              "skipped": len(result.skipped)}
    with open(result_path, "w") as f:
        json.dump(counts, f)
    return 0


# ---------------------------------------------------------------- scheduling (parent)

def select_files(patterns):
    """Test files (names) matching any pattern, each once, as unittest discovery finds them."""
    names = sorted(n for n in os.listdir(here)
                   if n.endswith(".py") and n[:-3].isidentifier() and os.path.isfile(os.path.join(here, n)))
    out = []
    for pattern in patterns:
        for n in names:
            if fnmatch.fnmatch(n, pattern) and n not in out:
                out.append(n)
    return out


def load_durations():
    table = {}
    try:
        with open(DURATIONS) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    table[parts[1]] = float(parts[0])
    except (OSError, ValueError):
        pass
    return table


def save_durations(seconds):
    table = load_durations()
    table.update({n: round(s, 1) for n, s in seconds.items()})
    with open(DURATIONS, "w") as f:
        f.write("# seconds per integration file in the plain pass (one job), longest first;\n"
                "# runner.py schedules the longest first; MESH_IT_SAVE_DURATIONS=1 rewrites it\n")
        for n, s in sorted(table.items(), key=lambda kv: (-kv[1], kv[0])):
            f.write("%7.1f %s\n" % (s, n))


def estimates(files):
    """Expected seconds per file: the table, else its size at the table's seconds per byte."""
    table = load_durations()
    size = {n: os.path.getsize(os.path.join(here, n)) for n in files}
    known = [n for n in files if n in table]
    rate = (sum(table[n] for n in known) / max(1, sum(size[n] for n in known))) if known else 1e-3
    return {n: table.get(n, size[n] * rate) for n in files}


def run_alone_reason(name):
    with open(os.path.join(here, name)) as f:
        m = ALONE_RE.search(f.read())
    return m.group(1) if m else None


class Runner:
    def __init__(self, jobs, timeout):
        self.jobs = jobs
        self.timeout = timeout
        self.lock = threading.Lock()
        self.procs = {}  # pid -> Popen, the children running now (for Ctrl-C)
        self.totals = {"run": 0, "failed": 0, "skipped": 0}
        self.seconds = {}
        self.bad_files = []
        self.stopping = False

    def run(self, name, worker, ports):
        """Run one file in a child process on worker's port range; print its output when done."""
        tmp = tempfile.mkdtemp(prefix="mesh-it-runner-")
        out_path = os.path.join(tmp, "out")
        res_path = os.path.join(tmp, "result.json")
        env = dict(os.environ, MESH_IT_WORKER=str(worker), MESH_IT_PORTS="%d-%d" % ports)
        t0 = time.monotonic()
        note = ""
        with open(out_path, "w+") as out:
            # own session: a timeout or Ctrl-C ends the file's peers (meshd, sidecars) with it
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--file", name, res_path],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
            with self.lock:
                self.procs[proc.pid] = proc
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                note = "killed after %d s" % self.timeout
                kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            with self.lock:
                self.procs.pop(proc.pid, None)
            # a peer the file left running would hold its ports into the next file
            if not note and group_alive(proc.pid):
                kill_group(proc.pid, signal.SIGKILL)
                note = (note + "; " if note else "") + "left processes running (killed)"
            secs = time.monotonic() - t0
            out.seek(0)
            text = out.read()
        counts = None
        try:
            with open(res_path) as f:
                counts = json.load(f)
        except (OSError, ValueError):
            pass
        if counts is None:
            counts = {"run": 1, "failed": 1, "skipped": 0}
            note = (note + "; " if note else "") + "no result (exit status %s)" % proc.returncode
        for p in (out_path, res_path):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmp)
        bad = counts["failed"] > 0 or bool(note)
        with self.lock:
            for k in self.totals:
                self.totals[k] += counts[k]
            self.seconds[name] = secs
            if bad:
                self.bad_files.append(name)
                if not counts["failed"]:
                    # leftovers fail the pass as one more check, the file's passes stay counted
                    self.totals["run"] += 1
                    self.totals["failed"] += 1
            if not self.stopping:
                sys.stdout.write("==== %s (worker %d, %.1f s)%s\n%s" % (name, worker, secs,
                                                                     ": " + note if note else "", text))
                if text and not text.endswith("\n"):
                    sys.stdout.write("\n")
                sys.stdout.flush()

    def worker(self, k, ports, work):
        while not self.stopping:
            try:
                name = work.get_nowait()
            except queue.Empty:
                return
            try:
                self.run(name, k, ports)
            except Exception as e:  # the runner's own failure must not pass a file silently
                with self.lock:
                    self.bad_files.append(name)
                    self.totals["run"] += 1
                    self.totals["failed"] += 1
                    print("==== %s (worker %d): runner error %r" % (name, k, e), flush=True)

    def stop_all(self):
        with self.lock:
            self.stopping = True
            procs = list(self.procs.values())
        for p in procs:
            kill_group(p.pid, signal.SIGKILL)


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def group_alive(pgid):
    """True while a live process (not a zombie: an init that does not reap
    keeps those around) is left in process group pgid."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = None
    if pids is None:
        try:
            os.killpg(pgid, 0)
            return True
        except OSError:
            return False
    for p in pids:
        try:
            with open("/proc/%s/stat" % p) as f:
                stat = f.read()
        except OSError:
            continue
        # fields after the command (which may hold spaces): state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--file":
        return run_file(sys.argv[2], sys.argv[3])
    patterns = " ".join(sys.argv[1:]).split() or ["test_*.py"]
    jobs = max(1, int(os.environ.get("MESH_IT_JOBS", "1") or 1))
    timeout = int(os.environ.get("MESH_IT_FILE_TIMEOUT", "1800") or 1800)
    files = select_files(patterns)
    est = estimates(files)
    alone = {n: r for n in files for r in [run_alone_reason(n)] if r}
    shared = sorted((n for n in files if n not in alone), key=lambda n: (-est[n], n))
    jobs = min(jobs, max(1, len(shared)))
    runner = Runner(jobs, timeout)
    t0 = time.monotonic()
    try:
        # the files that must run alone first, with every port of the window
        for n in sorted(alone, key=lambda n: (-est[n], n)):
            runner.run(n, 0, port_window(1)[0])
        work = queue.Queue()
        for n in shared:
            work.put(n)
        threads = [threading.Thread(target=runner.worker, args=(k, w, work), daemon=True)
                   for k, w in enumerate(port_window(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        runner.stop_all()
        print("integration: interrupted")
        return 130
    wall = time.monotonic() - t0
    for n, s in sorted(runner.seconds.items(), key=lambda kv: -kv[1]):
        print("  %7.1f s  %s%s" % (s, n, "  (alone)" if n in alone else ""))
    for n in sorted(alone):
        print("  ran alone: %s: %s" % (n, alone[n]))
    if runner.bad_files:
        print("  failed files: %s" % " ".join(sorted(runner.bad_files)))
    print("integration: %d files, %d jobs, %.1f s wall (%.1f s of files)" %
          (len(files), jobs, wall, sum(runner.seconds.values())))
    if os.environ.get("MESH_IT_SAVE_DURATIONS") == "1":
        save_durations(runner.seconds)
    t = runner.totals
    passed = t["run"] - t["failed"] - t["skipped"]
    print("integration: %d passed, %d failed, %d skipped" % (passed, t["failed"], t["skipped"]))
    return 1 if t["failed"] or t["run"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
