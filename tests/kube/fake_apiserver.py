#!/usr/bin/python3
"""fake_apiserver.py - a Kubernetes API server for meshd's tests.

No real API server can be installed here, so this one follows the API
conventions meshd relies on, faithfully enough that a client written against
it behaves against the real thing:

  * objects carry metadata.resourceVersion from one global counter, uid,
    creationTimestamp and generation (bumped when spec changes);
  * list: items sorted by namespace/name, metadata.resourceVersion of the
    list, limit + continue (pages are consistent at the first page's
    resourceVersion; a continue token older than the retained history gets
    410 Gone, reason Expired); built-in kinds' items carry no kind or
    apiVersion (as the real server does), custom resources' items do;
  * fieldSelector=metadata.name=X on list and watch (other selectors: 400);
  * watch=true&resourceVersion=N: the events after N, then new ones, as an
    HTTP/1.1 chunked stream of JSON objects one per line; N older than the
    retained history -> an ERROR event holding a Status with code 410;
    no resourceVersion (or "0") -> synthetic ADDED events for the current
    state first; allowWatchBookmarks=true -> BOOKMARK events; timeoutSeconds
    ends the stream cleanly;
  * custom resources answer 404 until their CRD is installed;
  * bearer token authentication (when tokens are configured), 401 otherwise;
  * write verbs on every resource: POST (create, 409 AlreadyExists), PUT
    (update, 409 Conflict on a stale resourceVersion), PATCH (merge patch;
    strategic merge for built-in kinds, lists of named items merged by
    name; RFC 6902 JSON patch with 422 when an operation or a "test"
    fails), DELETE; dryRun=All runs everything but
    stores nothing; POST tokenreviews in authentication.k8s.io/v1 answers
    from a token table;
  * the admission chain on API writes (never on /_control/ writes): for
    each Mutating- then ValidatingWebhookConfiguration it stores (by name,
    webhooks in order) whose rules (operations, apiGroups, apiVersions,
    resources, scope), namespaceSelector (the namespace's labels plus
    kubernetes.io/metadata.name; cluster-scoped objects skip it) and
    objectSelector (new or old object) match, an AdmissionReview v1 is
    POSTed to clientConfig.url or service (name.ns.svc:port/path?timeout=Ns)
    over TLS verified with caBundle (the system's roots without one) for
    that DNS name; /_control/webhook-hosts maps "host:port" to the address
    actually dialled.  Mutating JSONPatches are applied in turn; a denial
    answers the webhook's status with "admission webhook %q denied the
    request: MSG" (code 400 unless the webhook gave one >= 400); a call that
    fails (TLS, timeoutSeconds default 10, HTTP error, uid mismatch) answers
    500 InternalError "failed calling webhook" under failurePolicy Fail (the
    default) and is skipped under Ignore; warnings come back as Warning
    headers; a dry run reaching a webhook whose sideEffects are not
    None/NoneOnDryRun is refused; /_control/admission holds the log;
  * the kinds a user applies beside meshd's (ServiceAccount, Deployment and
    the other workloads, RBAC, PodDisruptionBudget, CRDs) are stored, so
    `kubectl apply -k deploy/` and Istio's samples apply; a new Deployment
    gets its ReplicaSet and Pods at once, the Pods created through the
    admission chain as the ReplicaSet controller creates them (generateName,
    pod-template-hash, the ReplicaSet as owner);
  * legacy discovery (/api, /apis, /api/v1, /apis/G/V, /version) for
    kubectl; no OpenAPI document (kubectl then needs --validate=false);
  * error answers a test asks for (/_control/faults) on a resource's list
    or watch, as the API server writes them: a metav1.Status of the code's
    reason (401 Unauthorized, 403 Forbidden with the RBAC message naming
    the user, verb, resource and group, 404 NotFound, 410 Expired, 429
    TooManyRequests and 5xx with Retry-After in the header and in
    details.retryAfterSeconds, 500 InternalError, 503 ServiceUnavailable).

A control API under /_control/ (never authenticated) lets tests change the
world: apply/delete objects, compact history, drop every watch connection,
stop answering and come back, send bookmarks, install/remove CRDs, set the
accepted tokens and the TokenReview table, read the request log (each entry
with its monotonic time and, when a fault answered it, the code), map webhook
hosts, read the admission log, set error answers (faults).

Usage: fake_apiserver.py [--host 127.0.0.1] [--port 0] [--port-file F]
Prints "PORT <n>" on stdout once listening.
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import http.client
import json
import random
import socket
import ssl
import string
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group, plural) -> (kind, namespaced, builtin, versions)
RESOURCES = {
    ("", "services"): ("Service", True, True, ["v1"]),
    ("", "pods"): ("Pod", True, True, ["v1"]),
    ("", "namespaces"): ("Namespace", False, True, ["v1"]),
    ("", "secrets"): ("Secret", True, True, ["v1"]),
    ("", "configmaps"): ("ConfigMap", True, True, ["v1"]),
    ("discovery.k8s.io", "endpointslices"): ("EndpointSlice", True, True, ["v1"]),
    ("coordination.k8s.io", "leases"): ("Lease", True, True, ["v1"]),
    ("networking.istio.io", "virtualservices"): ("VirtualService", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("networking.istio.io", "destinationrules"): ("DestinationRule", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("networking.istio.io", "serviceentries"): ("ServiceEntry", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("networking.istio.io", "workloadentries"): ("WorkloadEntry", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("security.istio.io", "peerauthentications"): ("PeerAuthentication", True, False, ["v1", "v1beta1"]),
    ("security.istio.io", "authorizationpolicies"): ("AuthorizationPolicy", True, False, ["v1", "v1beta1"]),
    ("networking.istio.io", "gateways"): ("Gateway", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("networking.istio.io", "sidecars"): ("Sidecar", True, False, ["v1", "v1beta1", "v1alpha3"]),
    ("networking.istio.io", "envoyfilters"): ("EnvoyFilter", True, False, ["v1alpha3"]),
    ("security.istio.io", "requestauthentications"): ("RequestAuthentication", True, False, ["v1", "v1beta1"]),
    ("telemetry.istio.io", "telemetries"): ("Telemetry", True, False, ["v1", "v1alpha1"]),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
        ("MutatingWebhookConfiguration", False, True, ["v1"]),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"):
        ("ValidatingWebhookConfiguration", False, True, ["v1"]),
    # stored only (no behaviour beyond Deployment's below), so that `kubectl
    # apply -k deploy/` and Istio's samples (ServiceAccount + Service +
    # Deployment) apply as they do on a cluster
    ("", "serviceaccounts"): ("ServiceAccount", True, True, ["v1"]),
    ("apps", "deployments"): ("Deployment", True, True, ["v1"]),
    ("apps", "replicasets"): ("ReplicaSet", True, True, ["v1"]),
    ("apps", "statefulsets"): ("StatefulSet", True, True, ["v1"]),
    ("apps", "daemonsets"): ("DaemonSet", True, True, ["v1"]),
    ("batch", "jobs"): ("Job", True, True, ["v1"]),
    ("batch", "cronjobs"): ("CronJob", True, True, ["v1"]),
    ("policy", "poddisruptionbudgets"): ("PodDisruptionBudget", True, True, ["v1"]),
    ("rbac.authorization.k8s.io", "roles"): ("Role", True, True, ["v1"]),
    ("rbac.authorization.k8s.io", "rolebindings"): ("RoleBinding", True, True, ["v1"]),
    ("rbac.authorization.k8s.io", "clusterroles"): ("ClusterRole", False, True, ["v1"]),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ("ClusterRoleBinding", False, True, ["v1"]),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("CustomResourceDefinition", False, True, ["v1"]),
}
# singular names and short names kubectl's discovery wants (APIResourceList)
SHORT_NAMES = {
    "services": ["svc"], "pods": ["po"], "namespaces": ["ns"], "configmaps": ["cm"],
    "virtualservices": ["vs"], "destinationrules": ["dr"], "serviceentries": ["se"],
    "workloadentries": ["we"], "gateways": ["gw"], "peerauthentications": ["pa"],
    "requestauthentications": ["ra"], "authorizationpolicies": ["ap"],
    "serviceaccounts": ["sa"], "deployments": ["deploy"], "replicasets": ["rs"], "statefulsets": ["sts"],
    "daemonsets": ["ds"], "cronjobs": ["cj"], "poddisruptionbudgets": ["pdb"],
    "customresourcedefinitions": ["crd", "crds"],
}
# versions in the order a group prefers them (the first served one is preferred)
RESOURCES_VERSION_ORDER = ["v1", "v1beta1", "v1alpha3", "v1alpha1"]
KIND_TO_RES = {(g, v[0]): (g, p) for (g, p), v in RESOURCES.items()}

HISTORY_LIMIT = 10000

# the reason of each status code a fault can answer (metav1.StatusReason)
FAULT_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 410: "Expired",
                 429: "TooManyRequests", 500: "InternalError", 502: "InternalError",
                 503: "ServiceUnavailable", 504: "Timeout"}


def api_version(group, version):
    return version if not group else group + "/" + version


def split_api_version(av):
    if "/" in av:
        g, v = av.split("/", 1)
        return g, v
    return "", av


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def field_name(q):
    """The name of a fieldSelector metadata.name=X (or ==X); None without a
    selector; False for a selector this server does not support (the real
    one supports metadata.name and metadata.namespace on every kind)."""
    sel = q.get("fieldSelector")
    if not sel:
        return None
    for op in ("==", "="):
        if sel.startswith("metadata.name" + op):
            return sel[len("metadata.name" + op):]
    return False


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target, patch):
    """Strategic merge patch, the subset kubectl apply/patch send for
    built-in kinds: maps merge as in RFC 7386; a list whose patch items are
    all maps with a "name" (the merge key of webhooks, containers, volumes,
    env, ...) merges item by item by name ("$patch": "delete" removes one);
    other lists are replaced; $setElementOrder/$retainKeys directives are
    accepted and ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if v is None:
            out.pop(k, None)
        elif (isinstance(v, list) and v and all(isinstance(i, dict) and "name" in i for i in v)
              and isinstance(out.get(k), list)):
            items = [copy.deepcopy(i) for i in out[k]]
            for pi in v:
                idx = next((n for n, i in enumerate(items) if isinstance(i, dict) and i.get("name") == pi["name"]),
                           None)
                if pi.get("$patch") == "delete":
                    if idx is not None:
                        items.pop(idx)
                elif idx is None:
                    items.append(strategic_merge_patch({}, pi))
                else:
                    items[idx] = strategic_merge_patch(items[idx], pi)
            out[k] = items
        else:
            out[k] = strategic_merge_patch(out.get(k), v)
    return out


class PatchError(Exception):
    pass


def _pointer(path):
    """RFC 6901: "/a/b~1c" -> ["a", "b/c"]."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for p in parts:
        if isinstance(doc, list):
            if not p.isdigit() or int(p) >= len(doc):
                raise PatchError("no index %s" % p)
            doc = doc[int(p)]
        elif isinstance(doc, dict):
            if p not in doc:
                raise PatchError("no member %s" % p)
            doc = doc[p]
        else:
            raise PatchError("cannot descend into a scalar at %s" % p)
    return doc


def _add(doc, parts, value):
    if not parts:
        return value
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError("bad array index %s" % last)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError("cannot add into a scalar")
    return doc


def _remove(doc, parts):
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        if not last.isdigit() or int(last) >= len(parent):
            raise PatchError("no index %s" % last)
        return parent.pop(int(last))
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise PatchError("no member %s" % last)


def json_patch(doc, ops):
    """RFC 6902 on a deep copy of doc; PatchError when an op does not apply."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("an operation needs op and path")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            v = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                _remove(doc, src)
            doc = _add(doc, parts, v)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError("test operation failed at %s" % op["path"])
        else:
            raise PatchError("unknown operation %r" % kind)
    return doc


def selector_matches(sel, labels):
    """A metav1.LabelSelector; None or {} selects everything."""
    if not sel:
        return True
    labels = labels or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and (k not in labels or labels[k] not in vals):
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def rule_matches(rule, op, gp, version, namespaced):
    """One RuleWithOperations of admissionregistration.k8s.io/v1 (no
    subresources here: "*" and "*/*" both take the main resource)."""
    ops = rule.get("operations") or []
    if "*" not in ops and op not in ops:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and gp[0] not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and version not in versions:
        return False
    res = rule.get("resources") or []
    if not any(r in ("*", "*/*", gp[1]) or r.split("/")[0] == gp[1] and "/" not in r for r in res):
        return False
    scope = rule.get("scope") or "*"
    if scope == "Cluster" and namespaced or scope == "Namespaced" and not namespaced:
        return False
    return True


def go_quote(s):
    """Go's %q for the API server's messages."""
    return json.dumps(s, ensure_ascii=False)


class AdmissionError(Exception):
    """A refusal: HTTP code and the Status to answer."""

    def __init__(self, code, st):
        Exception.__init__(self, st.get("message"))
        self.code, self.status = code, st


WEBHOOK_DEFAULT_TIMEOUT = 10


class World:
    """All state, guarded by one condition variable."""

    def __init__(self):
        self.cv = threading.Condition()
        self.rv = 1000
        self.objects = {gp: {} for gp in RESOURCES}
        self.hist_rv = []          # parallel lists: resourceVersion of each event
        self.hist = []             # (rv, gp, type, obj, prev)
        self.compacted = self.rv   # events at or before this are gone
        self.installed = {gp for gp, v in RESOURCES.items() if v[2]} | \
            {gp for gp, v in RESOURCES.items() if not v[2]}
        self.down = False
        self.watch_epoch = 0
        self.bookmark_epoch = 0
        self.bookmark_interval = 0.0   # seconds; 0: only on request
        self.tokens = set()
        self.reviews = {}
        self.requests = []
        self.active_watches = 0
        self.webhook_hosts = {}    # "host:port" of a clientConfig -> "ip:port" dialled (test hook)
        self.admission_log = []    # (webhook, operation, resource, name, outcome)
        # error answers: {"plural", "watch" (true/false; absent: both), "code",
        # "retryAfter" (seconds), "count" (absent: every request), "hits"}
        self.faults = []

    # -- history
    def _record(self, gp, typ, obj, prev):
        self.hist_rv.append(self.rv)
        self.hist.append((self.rv, gp, typ, copy.deepcopy(obj), copy.deepcopy(prev)))
        if len(self.hist) > HISTORY_LIMIT:
            drop = len(self.hist) - HISTORY_LIMIT
            self.compacted = self.hist_rv[drop - 1]
            del self.hist[:drop]
            del self.hist_rv[:drop]
        self.cv.notify_all()

    def compact(self):
        self.compacted = self.rv
        self.hist = []
        self.hist_rv = []

    def events_after(self, gp, after, ns):
        i = bisect.bisect_right(self.hist_rv, after)
        return [e for e in self.hist[i:] if e[1] == gp and (ns is None or e[3]["metadata"].get("namespace") == ns)]

    def state_at(self, gp, at):
        """Objects of gp as they were at resourceVersion `at` (>= compacted)."""
        d = dict(self.objects[gp])
        for e in reversed(self.hist):
            if e[0] <= at:
                break
            if e[1] != gp:
                continue
            key = (e[3]["metadata"].get("namespace", ""), e[3]["metadata"]["name"])
            if e[2] == "ADDED":
                d.pop(key, None)
            else:
                d[key] = e[4]
        return d

    # -- writes (caller holds cv)
    def create(self, gp, obj):
        kind, namespaced, builtin, versions = RESOURCES[gp]
        md = obj.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        if not md.get("name"):
            return 422, status(422, "Invalid", "metadata.name: Required value")
        if namespaced:
            md.setdefault("namespace", "default")
        else:
            md.pop("namespace", None)
        key = (md.get("namespace", ""), md["name"])
        if key in self.objects[gp]:
            return 409, status(409, "AlreadyExists", '%s "%s" already exists' % (gp[1], md["name"]),
                               {"name": md["name"], "group": gp[0], "kind": gp[1]})
        self.rv += 1
        md["resourceVersion"] = str(self.rv)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_ts()
        md["generation"] = 1
        obj["kind"] = kind
        obj["apiVersion"] = api_version(gp[0], versions[0])
        self.objects[gp][key] = obj
        self._record(gp, "ADDED", obj, None)
        return 201, obj

    def update(self, gp, obj, check_rv=True):
        kind, namespaced, builtin, versions = RESOURCES[gp]
        md = obj.setdefault("metadata", {})
        if namespaced:
            md.setdefault("namespace", "default")
        key = (md.get("namespace", ""), md.get("name", ""))
        old = self.objects[gp].get(key)
        if old is None:
            return 404, status(404, "NotFound", '%s "%s" not found' % (gp[1], key[1]),
                               {"name": key[1], "group": gp[0], "kind": gp[1]})
        if check_rv and md.get("resourceVersion") and md["resourceVersion"] != old["metadata"]["resourceVersion"]:
            return 409, status(409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": the object has been "
                               "modified; please apply your changes to the latest version and try again"
                               % (gp[1], key[1]), {"name": key[1], "group": gp[0], "kind": gp[1]})
        self.rv += 1
        md["resourceVersion"] = str(self.rv)
        md["uid"] = old["metadata"]["uid"]
        md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        gen = old["metadata"].get("generation", 1)
        if obj.get("spec") != old.get("spec"):
            gen += 1
        md["generation"] = gen
        obj["kind"] = kind
        obj["apiVersion"] = api_version(gp[0], versions[0])
        self.objects[gp][key] = obj
        self._record(gp, "MODIFIED", obj, old)
        return 200, obj

    def delete(self, gp, ns, name):
        key = (ns or "", name)
        old = self.objects[gp].pop(key, None)
        if old is None:
            return 404, status(404, "NotFound", '%s "%s" not found' % (gp[1], name),
                               {"name": name, "group": gp[0], "kind": gp[1]})
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._record(gp, "DELETED", gone, old)
        return 200, gone


WORLD = World()


def served_as(obj, group, version):
    o = copy.deepcopy(obj)
    o["apiVersion"] = api_version(group, version)
    return o


MWC = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VWC = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
NAMESPACES = ("", "namespaces")
PODS = ("", "pods")
DEPLOYMENTS = ("apps", "deployments")
REPLICASETS = ("apps", "replicasets")
CONTROLLER_USER = {"username": "system:serviceaccount:kube-system:replicaset-controller",
                   "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]}


def deployment_pods(deploy):
    """What the Deployment and ReplicaSet controllers do for a new
    Deployment, at once: a ReplicaSet NAME-HASH (HASH the template's
    pod-template-hash) owned by the Deployment, then spec.replicas
    (default 1) Pods from the template, each created by the ReplicaSet
    controller through the admission chain (a Pod a webhook refuses is not
    created; the log says why, as the ReplicaSet's events would) with
    generateName NAME-HASH-, the pod-template-hash label and the
    ReplicaSet as controlling ownerReference.  Rollouts of a changed
    template are not done."""
    md = deploy.get("metadata") or {}
    ns, name = md.get("namespace", "default"), md.get("name", "")
    tmpl = (deploy.get("spec") or {}).get("template") or {}
    h = hashlib.sha256(json.dumps(tmpl, sort_keys=True).encode()).hexdigest()
    alnum = "bcdfghjklmnpqrstvwxz2456789"  # the API server's SafeEncodeString alphabet
    phash = "".join(alnum[int(h[i:i + 2], 16) % len(alnum)] for i in range(0, 20, 2))
    rs_name = name + "-" + phash
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": rs_name, "namespace": ns,
                       "labels": dict((tmpl.get("metadata") or {}).get("labels") or {},
                                      **{"pod-template-hash": phash}),
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                            "uid": md.get("uid", ""), "controller": True, "blockOwnerDeletion": True}]},
          "spec": {"replicas": (deploy.get("spec") or {}).get("replicas", 1), "template": tmpl}}
    with WORLD.cv:
        code, rs = WORLD.create(REPLICASETS, rs)
        rs = copy.deepcopy(rs)
    if code >= 300:
        return
    for _ in range(int(rs["spec"]["replicas"] or 0)):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": copy.deepcopy(tmpl.get("metadata") or {}),
               "spec": copy.deepcopy(tmpl.get("spec") or {})}
        pmd = pod["metadata"]
        pmd.pop("name", None)
        pmd.update({"generateName": rs_name + "-", "namespace": ns,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                         "uid": rs["metadata"]["uid"], "controller": True,
                                         "blockOwnerDeletion": True}]})
        pmd["labels"] = dict(pmd.get("labels") or {}, **{"pod-template-hash": phash})
        try:
            pod, _ = admit("CREATE", PODS, "v1", ns, pod, None, False, CONTROLLER_USER)
        except AdmissionError as e:
            with WORLD.cv:
                WORLD.admission_log.append({"controller": "replicaset", "replicaset": ns + "/" + rs_name,
                                            "outcome": "FailedCreate", "error": e.status.get("message", "")})
            continue
        with WORLD.cv:
            WORLD.create(PODS, pod)


def webhook_target(wh):
    """(host, port, path, url) a webhook's clientConfig names."""
    cc = wh.get("clientConfig") or {}
    if cc.get("url"):
        u = urllib.parse.urlsplit(cc["url"])
        path = u.path or "/"
        return u.hostname, u.port or 443, path + ("?" + u.query if u.query else ""), cc["url"]
    svc = cc.get("service") or {}
    host = "%s.%s.svc" % (svc.get("name"), svc.get("namespace"))
    port = int(svc.get("port") or 443)
    path = svc.get("path") or "/"
    return host, port, path, "https://%s:%d%s" % (host, port, path)


def call_webhook(wh, review, timeout):
    """POST the review over TLS verified with the caBundle (the system's
    roots without one) for the service's DNS name, dialling the address the
    test mapped that name to (webhook_hosts); returns response or raises."""
    host, port, path, url = webhook_target(wh)
    with WORLD.cv:
        target = WORLD.webhook_hosts.get("%s:%d" % (host, port))
    dial = (target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])) if target else (host, port)
    ca = (wh.get("clientConfig") or {}).get("caBundle")
    if ca:
        ctx = ssl.create_default_context(cadata=base64.b64decode(ca).decode())
    else:
        ctx = ssl.create_default_context()
    sock = socket.create_connection(dial, timeout=timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    conn.sock = tls
    try:
        sep = "&" if "?" in path else "?"
        conn.request("POST", "%s%stimeout=%ds" % (path, sep, timeout), body=json.dumps(review).encode(),
                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    if r.status != 200:
        raise RuntimeError("an error on the server (%s) has prevented the request from succeeding"
                           % go_quote(raw.decode(errors="replace").strip()))
    out = json.loads(raw)
    resp = out.get("response") if isinstance(out, dict) else None
    if not isinstance(resp, dict):
        raise RuntimeError("webhook response was absent")
    if resp.get("uid") != review["request"]["uid"]:
        raise RuntimeError("expected response.uid=%s, got %s" % (go_quote(review["request"]["uid"]),
                                                                 go_quote(resp.get("uid") or "")))
    return resp


def admit(op, gp, version, ns, obj, old, dry_run, user):
    """The admission chain as the API server runs it: every matching
    mutating webhook (configurations by name, webhooks in order) with its
    JSONPatch applied, then every matching validating webhook.  Returns
    (object, warnings); raises AdmissionError with the API server's Status."""
    kind, namespaced, builtin, versions = RESOURCES[gp]
    if gp in (MWC, VWC):
        return obj, []  # never sent to webhooks, so none can lock the configurations out
    with WORLD.cv:
        phases = [(phase, [copy.deepcopy(o) for _, o in sorted(WORLD.objects[res].items())])
                  for phase, res in (("mutating", MWC), ("validating", VWC))]
        ns_obj = copy.deepcopy(WORLD.objects[NAMESPACES].get(("", ns))) if namespaced and ns else None
    if gp == NAMESPACES:
        ns_obj = obj if obj is not None else old
    ns_labels = None
    if ns_obj is not None or namespaced:
        # the API server labels every namespace with its name (1.21+)
        ns_labels = dict(((ns_obj or {}).get("metadata") or {}).get("labels") or {})
        ns_labels["kubernetes.io/metadata.name"] = ns if gp != NAMESPACES else (ns_obj or {}).get(
            "metadata", {}).get("name", "")
    warnings = []
    for phase, configs in phases:
        for cfg in configs:
            for wh in cfg.get("webhooks") or []:
                name = wh.get("name", "")
                if not any(rule_matches(r, op, gp, version, namespaced) for r in wh.get("rules") or []):
                    continue
                if ns_labels is not None and not selector_matches(wh.get("namespaceSelector"), ns_labels):
                    continue
                labels_new = ((obj or {}).get("metadata") or {}).get("labels")
                labels_old = ((old or {}).get("metadata") or {}).get("labels")
                sel = wh.get("objectSelector")
                if not ((obj is not None and selector_matches(sel, labels_new)) or
                        (old is not None and selector_matches(sel, labels_old))):
                    continue
                if dry_run and wh.get("sideEffects") not in ("None", "NoneOnDryRun"):
                    raise AdmissionError(400, status(400, "BadRequest", "admission webhook %s does not support dry run"
                                                     % go_quote(name)))
                uid = str(uuid.uuid4())
                gvk = {"group": gp[0], "version": version, "kind": kind}
                gvr = {"group": gp[0], "version": version, "resource": gp[1]}
                opts = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}.get(op)
                req = {"uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                       "name": ((obj if obj is not None else old).get("metadata") or {}).get("name", ""),
                       "operation": op, "userInfo": user, "object": obj, "oldObject": old, "dryRun": dry_run,
                       "options": {"apiVersion": "meta.k8s.io/v1", "kind": opts} if opts else None}
                if namespaced:
                    req["namespace"] = ns
                review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}
                timeout = int(wh.get("timeoutSeconds") or WEBHOOK_DEFAULT_TIMEOUT)
                url = webhook_target(wh)[3]
                try:
                    resp = call_webhook(wh, review, timeout)
                except Exception as e:  # any failure to get an answer: the failure policy decides
                    policy = wh.get("failurePolicy") or "Fail"
                    with WORLD.cv:
                        WORLD.admission_log.append({"webhook": name, "operation": op, "resource": gp[1],
                                                    "outcome": "error-" + policy.lower(), "error": str(e)})
                    if policy == "Ignore":
                        continue
                    raise AdmissionError(500, status(
                        500, "InternalError", "Internal error occurred: failed calling webhook %s: failed to call "
                        "webhook: Post %s: %s" % (go_quote(name), go_quote(url + "?timeout=%ds" % timeout), e),
                        {"causes": [{"message": "failed calling webhook %s: %s" % (go_quote(name), e)}]}))
                warnings += [w for w in resp.get("warnings") or [] if isinstance(w, str)]
                outcome = "allowed"
                if not resp.get("allowed"):
                    with WORLD.cv:
                        WORLD.admission_log.append({"webhook": name, "operation": op, "resource": gp[1],
                                                    "outcome": "denied"})
                    result = resp.get("status") or {}
                    code = int(result.get("code") or 0)
                    if code < 400:
                        code = 400
                    denied = "admission webhook %s denied the request" % go_quote(name)
                    if result.get("message"):
                        msg = "%s: %s" % (denied, result["message"])
                    elif result.get("reason"):
                        msg = "%s: %s" % (denied, result["reason"])
                    else:
                        msg = denied + " without explanation"
                    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": msg, "code": code}
                    if result.get("reason"):
                        st["reason"] = result["reason"]
                    if result.get("details"):
                        st["details"] = result["details"]
                    raise AdmissionError(code, st)
                if phase == "mutating" and resp.get("patch") and obj is not None:
                    try:
                        if resp.get("patchType") != "JSONPatch":
                            raise PatchError("unsupported patchType %r" % resp.get("patchType"))
                        obj = json_patch(obj, json.loads(base64.b64decode(resp["patch"])))
                        outcome = "patched"
                    except (PatchError, ValueError, TypeError) as e:
                        raise AdmissionError(500, status(
                            500, "InternalError", "Internal error occurred: failed calling webhook %s: "
                            "JSON patch: %s" % (go_quote(name), e)))
                with WORLD.cv:
                    WORLD.admission_log.append({"webhook": name, "operation": op, "resource": gp[1],
                                                "outcome": outcome})
    return obj, warnings


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver/1"

    def log_message(self, fmt, *args):
        pass

    # -- helpers
    def send_json(self, code, obj, warnings=()):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for w in warnings:  # admission warnings, as the API server sends them (RFC 7234 style)
            self.send_header("Warning", "299 - " + json.dumps(w))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if not data:
            return None
        return json.loads(data)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def route(self, method):
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        path = u.path
        if path.startswith("/_control/"):
            return self.control(method, path[len("/_control/"):], q)
        with WORLD.cv:
            auth = self.headers.get("Authorization", "")
            WORLD.requests.append({"method": method, "path": path, "query": q,
                                   "token": auth[7:] if auth.startswith("Bearer ") else None,
                                   "time": time.monotonic()})
            down = WORLD.down
            tokens = set(WORLD.tokens)
        if down:
            return self.drop()
        if tokens:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in tokens:
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and self.discovery(parts):
            return None
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if group == "authentication.k8s.io" and version == "v1" and rest == ["tokenreviews"] and method == "POST":
            return self.token_review()
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        elif len(rest) == 2 and rest[0] == "namespaces" and group == "":
            rest = ["namespaces", rest[1]]
        if not rest or len(rest) > 2:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        gp = (group, rest[0])
        name = rest[1] if len(rest) == 2 else None
        with WORLD.cv:
            known = gp in RESOURCES and version in RESOURCES[gp][3] and gp in WORLD.installed
        if not known:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if ns is not None and not RESOURCES[gp][1]:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if method == "GET" and name is None:
            if self.fault(gp, q.get("watch") in ("true", "1")):
                return None
            if q.get("watch") in ("true", "1"):
                return self.watch(gp, version, ns, q)
            return self.list(gp, version, ns, q)
        if method == "GET":
            with WORLD.cv:
                o = WORLD.objects[gp].get((ns or "", name))
                o = copy.deepcopy(o)
            if o is None:
                return self.send_json(404, status(404, "NotFound", '%s "%s" not found' % (gp[1], name)))
            return self.send_json(200, served_as(o, group, version))
        dry_run = q.get("dryRun") == "All"
        if method == "POST" and name is None:
            body = self.read_body() or {}
            if ns is not None:
                body.setdefault("metadata", {})["namespace"] = ns
            return self.write(gp, version, ns, "CREATE", body, None, dry_run)
        if method == "PUT" and name:
            body = self.read_body() or {}
            md = body.setdefault("metadata", {})
            if md.get("name") not in (None, name):
                return self.send_json(400, status(400, "BadRequest", "the name of the object does not match"))
            md["name"] = name
            if ns is not None:
                md["namespace"] = ns
            with WORLD.cv:
                old = copy.deepcopy(WORLD.objects[gp].get((ns or "", name)))
            if old is None:
                return self.send_json(404, status(404, "NotFound", '%s "%s" not found' % (gp[1], name),
                                                  {"name": name, "group": gp[0], "kind": gp[1]}))
            return self.write(gp, version, ns, "UPDATE", body, old, dry_run)
        if method == "PATCH" and name:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                             "application/json-patch+json"):
                return self.send_json(415, status(415, "UnsupportedMediaType",
                                                  "the body of the request was in an unknown format"))
            patch = self.read_body()
            with WORLD.cv:
                old = copy.deepcopy(WORLD.objects[gp].get((ns or "", name)))
            if old is None:
                return self.send_json(404, status(404, "NotFound", '%s "%s" not found' % (gp[1], name)))
            if ctype == "application/json-patch+json":
                try:
                    new = json_patch(old, patch)
                except PatchError as e:
                    return self.send_json(422, status(422, "Invalid", "the server rejected our request due to an "
                                                      "error in our request: %s" % e))
                check = False
            else:
                patch = patch or {}
                if ctype == "application/strategic-merge-patch+json" and RESOURCES[gp][2]:
                    new = strategic_merge_patch(copy.deepcopy(old), patch)
                else:  # custom resources take no strategic merge (the real server answers 415)
                    new = merge_patch(copy.deepcopy(old), patch)
                check = "resourceVersion" in (patch.get("metadata") or {})
            new.setdefault("metadata", {})["name"] = name
            if not check:
                # the patch applies to what was read: a write in between is a conflict to retry, as
                # the real server retries it internally
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.write(gp, version, ns, "UPDATE", new, old, dry_run)
        if method == "DELETE" and name:
            opts = self.read_body() or {}  # DeleteOptions (kubectl sends them): read, or the connection desyncs
            dry_run = dry_run or opts.get("dryRun") == ["All"]
            with WORLD.cv:
                old = copy.deepcopy(WORLD.objects[gp].get((ns or "", name)))
            if old is None:
                return self.send_json(404, status(404, "NotFound", '%s "%s" not found' % (gp[1], name),
                                                  {"name": name, "group": gp[0], "kind": gp[1]}))
            try:
                _, warnings = admit("DELETE", gp, version, ns, None, served_as(old, group, version), dry_run,
                                    self.user())
            except AdmissionError as e:
                return self.send_json(e.code, e.status)
            if dry_run:
                return self.send_json(200, served_as(old, group, version), warnings)
            with WORLD.cv:
                code, o = WORLD.delete(gp, ns, name)
                o = copy.deepcopy(o)
            return self.send_json(code, served_as(o, group, version) if code < 300 else o, warnings)
        return self.send_json(405, status(405, "MethodNotAllowed", "method not allowed"))

    def user(self):
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else ""
        with WORLD.cv:
            u = WORLD.reviews.get(tok)
        return copy.deepcopy(u) if u else {"username": "system:admin", "groups": ["system:masters"]}

    def write(self, gp, version, ns, op, obj, old, dry_run):
        """Create or update through the admission chain; dry_run stores nothing."""
        kind = RESOURCES[gp][0]
        group = gp[0]
        obj["apiVersion"] = api_version(group, version)
        obj["kind"] = kind
        if RESOURCES[gp][1]:
            obj.setdefault("metadata", {}).setdefault("namespace", ns or "default")
            ns = obj["metadata"]["namespace"]
        try:
            obj, warnings = admit(op, gp, version, ns, obj, served_as(old, group, version) if old else None,
                                  dry_run, self.user())
        except AdmissionError as e:
            return self.send_json(e.code, e.status)
        with WORLD.cv:
            if dry_run:
                md = obj.setdefault("metadata", {})
                key = (md.get("namespace", "") if RESOURCES[gp][1] else "", md.get("name"))
                cur = WORLD.objects[gp].get(key)
                if op == "CREATE" and cur is not None:
                    code, o = 409, status(409, "AlreadyExists", '%s "%s" already exists' % (gp[1], key[1]),
                                          {"name": key[1], "group": gp[0], "kind": gp[1]})
                else:
                    code, o = (201 if op == "CREATE" else 200), copy.deepcopy(obj)
            elif op == "CREATE":
                code, o = WORLD.create(gp, obj)
            else:
                code, o = WORLD.update(gp, obj)
            o = copy.deepcopy(o)
        if gp == DEPLOYMENTS and op == "CREATE" and not dry_run and code < 300:
            deployment_pods(o)
        return self.send_json(code, served_as(o, group, version) if code < 300 else o, warnings)

    def discovery(self, parts):
        """/api, /apis, /api/v1, /apis/G/V, /version: what kubectl reads
        first (legacy discovery: the aggregated kind is not offered, so a
        client asking for it falls back, as it does with older servers)."""
        with WORLD.cv:
            installed = set(WORLD.installed)
        groups = {}
        for (g, plural), (kind, namespaced, builtin, versions) in sorted(RESOURCES.items()):
            if (g, plural) in installed:
                for v in versions:
                    groups.setdefault(g, {}).setdefault(v, []).append((plural, kind, namespaced))
        if parts == ["version"]:
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                        "platform": "linux/amd64"}) or True
        if parts == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.server.server_address[1]}]}) \
                or True
        if parts == ["apis"]:
            out = []
            for g in sorted(x for x in groups if x):
                vs = [v for v in RESOURCES_VERSION_ORDER if v in groups[g]]
                out.append({"name": g, "versions": [{"groupVersion": g + "/" + v, "version": v} for v in vs],
                            "preferredVersion": {"groupVersion": g + "/" + vs[0], "version": vs[0]}})
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}) or True
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            g, v = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            if g not in groups or v not in groups[g]:
                return False
            res = []
            for plural, kind, namespaced in groups[g][v]:
                r = {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                if plural in SHORT_NAMES:
                    r["shortNames"] = SHORT_NAMES[plural]
                res.append(r)
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": api_version(g, v), "resources": res}) or True
        return False

    # -- list
    def list(self, gp, version, ns, q):
        kind, namespaced, builtin, versions = RESOURCES[gp]
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        only = field_name(q)
        if only is False:
            return self.send_json(400, status(400, "BadRequest", "unsupported fieldSelector"))
        with WORLD.cv:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    at, start = int(tok["rv"]), tok["start"]
                except (ValueError, KeyError, TypeError):
                    return self.send_json(400, status(400, "BadRequest", "invalid continue token"))
                if at < WORLD.compacted:
                    return self.send_json(410, status(
                        410, "Expired", "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter."))
                objs = WORLD.state_at(gp, at)
            else:
                at, start = WORLD.rv, None
                objs = dict(WORLD.objects[gp])
            keys = sorted(k for k in objs if (ns is None or k[0] == ns) and (only is None or k[1] == only))
            if start is not None:
                keys = [k for k in keys if list(k) > start]
            page = keys[:limit] if limit > 0 else keys
            items = []
            for k in page:
                o = served_as(objs[k], gp[0], version)
                if builtin:
                    o.pop("kind", None)
                    o.pop("apiVersion", None)
                items.append(o)
        md = {"resourceVersion": str(at)}
        if limit > 0 and len(keys) > limit:
            md["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": at, "start": list(page[-1])}).encode()).decode()
            md["remainingItemCount"] = len(keys) - limit
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version(gp[0], version),
                             "metadata": md, "items": items})

    # -- watch
    def fault(self, gp, watch):
        """Answer a list or watch of gp with the first matching fault, as the
        API server writes that error; False when none matches."""
        with WORLD.cv:
            f = None
            for c in WORLD.faults:
                if c.get("plural") not in (None, gp[1]) or c.get("watch", watch) != watch:
                    continue
                if c.get("count") is not None and c["hits"] >= c["count"]:
                    continue
                f = c
                break
            if f is None:
                return False
            f["hits"] += 1
            code = int(f["code"])
            WORLD.requests[-1]["code"] = code
        verb = "watch" if watch else "list"
        group = gp[0]
        gr = gp[1] + ("." + group if group else "")
        details = {"group": group, "kind": gp[1]}
        if code == 401:
            st = status(401, "Unauthorized", "Unauthorized")
        elif code == 403:
            st = status(403, "Forbidden",
                        '%s is forbidden: User "system:serviceaccount:istio-system:meshd" cannot %s resource '
                        '"%s" in API group "%s" at the cluster scope' % (gr, verb, gp[1], group), details)
        elif code == 404:
            st = status(404, "NotFound", "the server could not find the requested resource")
        elif code == 410:
            st = status(410, "Expired", "too old resource version: 1 (%d)" % WORLD.compacted)
        elif code == 429:
            st = status(429, "TooManyRequests", "Too many requests, please try again later.", dict(details))
        elif code == 503:
            st = status(503, "ServiceUnavailable", "the server is currently unable to handle the request",
                        dict(details))
        else:
            st = status(code, FAULT_REASONS.get(code, "InternalError"),
                        "Internal error occurred: etcdserver: request timed out", dict(details))
        ra = f.get("retryAfter")
        if ra is not None and (code == 429 or code >= 500):
            st.setdefault("details", {})["retryAfterSeconds"] = int(ra)
        body = (json.dumps(st) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if ra is not None and (code == 429 or code >= 500):
            self.send_header("Retry-After", str(int(ra)))
        self.end_headers()
        self.wfile.write(body)
        return True

    def chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, gp, version, ns, q):
        kind = RESOURCES[gp][0]
        av = api_version(gp[0], version)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_param = q.get("resourceVersion", "")
        only = field_name(q)
        if only is False:
            return self.send_json(400, status(400, "BadRequest", "unsupported fieldSelector"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with WORLD.cv:
            epoch = WORLD.watch_epoch
            bepoch = WORLD.bookmark_epoch
            WORLD.active_watches += 1
            if rv_param in ("", "0"):
                last = WORLD.rv
                initial = [{"type": "ADDED", "object": served_as(o, gp[0], version)}
                           for k, o in sorted(WORLD.objects[gp].items())
                           if (ns is None or k[0] == ns) and (only is None or k[1] == only)]
            else:
                last = int(rv_param)
                initial = []
                if last < WORLD.compacted:
                    initial = [{"type": "ERROR", "object": status(
                        410, "Expired", "too old resource version: %d (%d)" % (last, WORLD.compacted))}]
                    last = None
        try:
            for ev in initial:
                self.chunk(ev)
            if last is None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            next_bookmark = time.monotonic() + WORLD.bookmark_interval if WORLD.bookmark_interval else None
            while True:
                with WORLD.cv:
                    while True:
                        if WORLD.watch_epoch != epoch or WORLD.down:
                            return self.drop()
                        if last < WORLD.compacted:
                            evs = [{"type": "ERROR", "object": status(
                                410, "Expired", "too old resource version: %d (%d)" % (last, WORLD.compacted))}]
                            last = None
                            break
                        evs = [{"type": e[2], "object": served_as(e[3], gp[0], version)}
                               for e in WORLD.events_after(gp, last, ns)]
                        if evs:
                            last = int(evs[-1]["object"]["metadata"]["resourceVersion"])
                            # the selector filters events, the resume point moves on
                            evs = [e for e in evs if only is None or e["object"]["metadata"]["name"] == only]
                            if evs:
                                break
                        t = time.monotonic()
                        want_bm = bookmarks and (WORLD.bookmark_epoch != bepoch or
                                                 (next_bookmark is not None and t >= next_bookmark))
                        if want_bm:
                            bepoch = WORLD.bookmark_epoch
                            if WORLD.bookmark_interval:
                                next_bookmark = t + WORLD.bookmark_interval
                            last = WORLD.rv
                            evs = [{"type": "BOOKMARK", "object": {
                                "kind": kind, "apiVersion": av,
                                "metadata": {"resourceVersion": str(WORLD.rv)}}}]
                            break
                        if t >= deadline:
                            break
                        wait = deadline - t
                        if next_bookmark is not None:
                            wait = min(wait, max(0.0, next_bookmark - t))
                        WORLD.cv.wait(min(wait, 0.5))
                for ev in evs:
                    self.chunk(ev)
                if last is None or (not evs and time.monotonic() >= deadline):
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with WORLD.cv:
                WORLD.active_watches -= 1

    # -- tokenreviews
    def token_review(self):
        body = self.read_body() or {}
        tok = (body.get("spec") or {}).get("token", "")
        with WORLD.cv:
            user = WORLD.reviews.get(tok)
        st = {"authenticated": user is not None}
        if user is not None:
            st["user"] = user
            st["audiences"] = (body.get("spec") or {}).get("audiences") or ["https://kubernetes.default.svc"]
        else:
            st["error"] = "invalid bearer token"
        self.send_json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                             "metadata": {"creationTimestamp": None}, "spec": body.get("spec") or {},
                             "status": st})

    # -- control
    def control(self, method, what, q):
        body = self.read_body() if method in ("POST", "PUT") else None
        with WORLD.cv:
            if what == "apply" and method == "POST":
                g, v = split_api_version(body.get("apiVersion", ""))
                gp = KIND_TO_RES.get((g, body.get("kind")))
                if not gp:
                    return self.send_json(400, {"error": "unknown kind"})
                md = body.setdefault("metadata", {})
                if RESOURCES[gp][1]:
                    md.setdefault("namespace", "default")
                key = (md.get("namespace", ""), md.get("name"))
                if key in WORLD.objects[gp]:
                    code, o = WORLD.update(gp, body, check_rv=False)
                else:
                    code, o = WORLD.create(gp, body)
                return self.send_json(code, o)
            if what == "delete" and method == "POST":
                g, v = split_api_version(body.get("apiVersion", ""))
                gp = KIND_TO_RES.get((g, body.get("kind")))
                if not gp:
                    return self.send_json(400, {"error": "unknown kind"})
                md = body.get("metadata", {})
                ns = md.get("namespace", "default") if RESOURCES[gp][1] else ""
                code, o = WORLD.delete(gp, ns, md.get("name"))
                return self.send_json(code, o)
            if what == "compact" and method == "POST":
                WORLD.compact()
                WORLD.cv.notify_all()
                return self.send_json(200, {"compacted": WORLD.compacted})
            if what == "drop-watches" and method == "POST":
                WORLD.watch_epoch += 1
                WORLD.cv.notify_all()
                return self.send_json(200, {})
            if what == "down" and method == "POST":
                WORLD.down = True
                WORLD.cv.notify_all()
                return self.send_json(200, {})
            if what == "up" and method == "POST":
                WORLD.down = False
                return self.send_json(200, {})
            if what == "bookmark" and method == "POST":
                WORLD.bookmark_epoch += 1
                WORLD.cv.notify_all()
                return self.send_json(200, {"resourceVersion": str(WORLD.rv)})
            if what == "config" and method == "POST":
                if "bookmark_interval" in body:
                    WORLD.bookmark_interval = float(body["bookmark_interval"])
                WORLD.cv.notify_all()
                return self.send_json(200, {})
            if what == "crd" and method == "POST":
                gp = (body["group"], body["plural"])
                if gp not in RESOURCES:
                    return self.send_json(400, {"error": "unknown resource"})
                if body.get("installed", True):
                    WORLD.installed.add(gp)
                else:
                    WORLD.installed.discard(gp)
                return self.send_json(200, {})
            if what == "faults" and method == "POST":
                WORLD.faults = [dict(f, hits=0) for f in body.get("faults") or []]
                return self.send_json(200, {})
            if what == "faults" and method == "GET":
                return self.send_json(200, {"faults": WORLD.faults})
            if what == "tokens" and method == "POST":
                WORLD.tokens = set(body.get("tokens") or [])
                return self.send_json(200, {})
            if what == "tokenreviews" and method == "POST":
                WORLD.reviews = dict(body.get("tokens") or {})
                return self.send_json(200, {})
            if what == "webhook-hosts" and method == "POST":
                WORLD.webhook_hosts = dict(body.get("hosts") or {})
                return self.send_json(200, {})
            if what == "admission" and method == "GET":
                return self.send_json(200, {"log": WORLD.admission_log})
            if what == "admission" and method == "DELETE":
                WORLD.admission_log = []
                return self.send_json(200, {})
            if what == "requests" and method == "GET":
                return self.send_json(200, {"requests": WORLD.requests})
            if what == "requests" and method == "DELETE":
                WORLD.requests = []
                return self.send_json(200, {})
            if what == "state" and method == "GET":
                return self.send_json(200, {"resourceVersion": str(WORLD.rv), "compacted": str(WORLD.compacted),
                                            "activeWatches": WORLD.active_watches, "down": WORLD.down})
        return self.send_json(404, {"error": "unknown control " + what})

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    args = ap.parse_args()
    WORLD.tokens = set(args.token)
    srv = Server((args.host, args.port), Handler)
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        import os
        os.rename(args.port_file + ".tmp", args.port_file)
    print("PORT %d" % port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
