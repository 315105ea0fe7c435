"""Run the integration tests (unittest) and print 'integration: N passed, N failed'.

Arguments: file patterns (shell globs, default test_*.py); several may be
given, separated by spaces in one argument or as separate arguments, so that
the sanitizer and valgrind passes of `make test` can each run the files they
catch most with.  The seconds each file took are printed at the end, so the
suite's time budget (DESIGN: the whole `make test` under 20 minutes on 2
cores) can be watched.
"""
import os
import sys
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
patterns = " ".join(sys.argv[1:]).split() or ["test_*.py"]


class TimedResult(unittest.TextTestResult):
    """Seconds per test module: everything since the previous test ended
    (class set-up included) counts for the module of the test starting."""
    seconds = {}
    last = time.monotonic()

    def _add(self, test):
        now = time.monotonic()
        mod = type(test).__module__
        self.seconds[mod] = self.seconds.get(mod, 0.0) + now - TimedResult.last
        TimedResult.last = now

    def startTest(self, test):
        self._add(test)
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self._add(test)


suite = unittest.TestSuite()
seen = set()
for pattern in patterns:
    for test in unittest.defaultTestLoader.discover(here, pattern=pattern):
        key = repr(test)
        if key not in seen:
            seen.add(key)
            suite.addTest(test)
result = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult).run(suite)
for mod, s in sorted(TimedResult.seconds.items(), key=lambda kv: -kv[1]):
    print("  %7.1f s  %s" % (s, mod))
failed = len(result.failures) + len(result.errors)
passed = result.testsRun - failed - len(result.skipped)
print("integration: %d passed, %d failed, %d skipped" % (passed, failed, len(result.skipped)))
sys.exit(1 if failed or result.testsRun == 0 else 0)
