"""Golden AdmissionReview cases for meshd's /inject (make inject-golden).

Each case tests/inject/NNNN/ holds:
  README          one line: what the case shows
  request.json    an AdmissionReview (admission.k8s.io/v1) as the API server sends it
  args            optional: more `meshctl kube-inject --review` flags, one line
                  ({dir} is the case directory), e.g. --namespace-labels istio-injection=enabled
  expected/response.json  the answer, its base64 "patch" replaced by the decoded JSONPatch
  expected/pod.json       the Pod with the patch applied (absent when nothing is patched)

The answer comes from `meshctl kube-inject --review`, the same code meshd's
/inject runs.  The patch is applied here by Debian's python3-jsonpatch (an
RFC 6902 implementation, scripts/deps.sh installs it), and by a small
applier of our own where it is missing; never by the C one.  A patch that
does not apply to the request's Pod fails.
GOLDEN_UPDATE=1 rewrites the expected files (say so in the commit).
"""
import base64
import copy
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")


try:
    import jsonpatch
except ImportError:
    jsonpatch = None


def apply_patch(doc, ops):
    """The JSONPatch ops applied to a copy of doc (python3-jsonpatch when installed)."""
    if jsonpatch is not None:
        return jsonpatch.apply_patch(doc, ops)
    return apply_patch_own(doc, ops)


def apply_patch_own(doc, ops):
    """RFC 6902 add/replace/remove (what a webhook's patch may hold)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [_unescape(t) for t in op["path"].split("/")[1:]]
        parent = doc
        for t in parts[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            if kind == "add":
                idx = len(parent) if last == "-" else int(last)
                if idx > len(parent):
                    raise ValueError("add past the end: %s" % op["path"])
                parent.insert(idx, op["value"])
            elif kind == "replace":
                parent[int(last)] = op["value"]
            elif kind == "remove":
                del parent[int(last)]
            else:
                raise ValueError("op %s" % kind)
        else:
            if not isinstance(parent, dict):
                raise ValueError("parent of %s is not an object" % op["path"])
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise ValueError("replace of a missing member %s" % op["path"])
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            else:
                raise ValueError("op %s" % kind)
    return doc


def run_case(meshctl, case):
    d = os.path.join(HERE, case)
    args = []
    if os.path.exists(os.path.join(d, "args")):
        with open(os.path.join(d, "args")) as f:
            args = shlex.split(f.read().replace("{dir}", d))
    p = subprocess.run([meshctl, "kube-inject", "--review", "-f", os.path.join(d, "request.json")] + args,
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return "meshctl exited %d: %s" % (p.returncode, p.stderr.strip()), None, None
    resp = json.loads(p.stdout)
    pod = None
    r = resp.get("response", {})
    if "patch" in r:
        if r.get("patchType") != "JSONPatch":
            return "patch without patchType JSONPatch", None, None
        ops = json.loads(base64.b64decode(r["patch"]))
        r["patch"] = ops
        with open(os.path.join(d, "request.json")) as f:
            pod = apply_patch(json.load(f)["request"]["object"], ops)
    return None, resp, pod


def dump(v):
    return json.dumps(v, indent=1) + "\n"


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    meshctl = os.path.join(build, "bin", "meshctl")
    update = os.environ.get("GOLDEN_UPDATE") == "1"
    cases = sorted(c for c in os.listdir(HERE) if c.isdigit() and os.path.isdir(os.path.join(HERE, c)))
    failed = []
    for case in cases:
        err, resp, pod = run_case(meshctl, case)
        exp = os.path.join(HERE, case, "expected")
        if err:
            failed.append("%s: %s" % (case, err))
            continue
        got = {"response.json": dump(resp)}
        if pod is not None:
            got["pod.json"] = dump(pod)
        if update:
            os.makedirs(exp, exist_ok=True)
            for name in ("response.json", "pod.json"):
                path = os.path.join(exp, name)
                if name in got:
                    with open(path, "w") as f:
                        f.write(got[name])
                elif os.path.exists(path):
                    os.unlink(path)
            continue
        for name in ("response.json", "pod.json"):
            path = os.path.join(exp, name)
            want = open(path).read() if os.path.exists(path) else None
            if want != got.get(name):
                failed.append("%s: %s differs (GOLDEN_UPDATE=1 rewrites; diff with %s)" % (case, name, path))
                if os.environ.get("GOLDEN_SHOW"):
                    sys.stdout.write(got.get(name) or "(none)\n")
    for f in failed:
        print("FAILED: " + f)
    print("inject-golden: %d cases, %d failed%s" % (len(cases), len(failed), " (updated)" if update else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
