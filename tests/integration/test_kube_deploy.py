"""deploy/ and crd-schemas/ as Kubernetes would read them (PyYAML).

Every manifest parses and names its kind; the Deployment (replicas, ports,
probes, resources, security context, downward-API env), the Service istiod,
the PodDisruptionBudget and the RBAC (least privilege, covering every
resource meshd watches, as listed in controlplane/kube/kube_res.c) agree with
each other and with meshd; the kustomization includes every CRD without a
hand-made copy; the CRDs are well-formed structural apiextensions.k8s.io/v1
schemas; `meshctl validate` accepts examples/ against them and refuses a bad
object; the Dockerfile builds on bookworm with scripts/deps.sh and has two
FROM scratch runtime stages (meshproxy, meshd), each running as non-root.
deploy/gateway/ is the ingress gateway as Istio's gateway chart makes it
(labels istio=ingressgateway, Service ports 15021/80/443, meshproxy's image
as a router node with flags it knows, xDS and CA at istiod's 15012, no RBAC
of its own: meshd reads the Secrets).
"""
import glob
import os
import re
import subprocess
import tempfile
import unittest

import yaml

from meshtest import MESHCTL, ROOT

DEPLOY = os.path.join(ROOT, "deploy")
CRDS = os.path.join(ROOT, "crd-schemas")
PORTS = {15010, 15012, 15014, 15017}
SERVICE_PORTS = {15010: 15010, 15012: 15012, 15014: 15014, 443: 15017}  # 443: the API server calls the webhooks


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def watched_resources():
    """(group, plural) of every resource meshd watches, from its resource table."""
    with open(os.path.join(ROOT, "controlplane", "kube", "kube_res.c")) as f:
        text = f.read()
    return set(re.findall(r'\{\s*"([a-z0-9.]*)",\s*"v1",\s*"([a-z]+)"', text))


def structural_problems(node, path):
    """Rules of a structural schema that matter here: every node states a type
    (unless it preserves unknown fields or is int-or-string), properties only on
    objects, items on arrays, no properties beside additionalProperties."""
    out = []
    if not isinstance(node, dict):
        return ["%s: not a schema" % path]
    free = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    t = node.get("type")
    if not t and not free:
        out.append("%s: no type" % path)
    if "properties" in node and t not in (None, "object"):
        out.append("%s: properties on a %s" % (path, t))
    if "properties" in node and "additionalProperties" in node:
        out.append("%s: properties and additionalProperties" % path)
    if t == "array" and "items" not in node:
        out.append("%s: array without items" % path)
    for k, v in (node.get("properties") or {}).items():
        out += structural_problems(v, "%s.%s" % (path, k))
    if isinstance(node.get("items"), dict):
        out += structural_problems(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], path + "{}")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            # value validations inside oneOf/anyOf need no type of their own
            if isinstance(sub, dict) and "properties" in sub:
                for k, v in sub["properties"].items():
                    if isinstance(v, dict) and v:
                        out += [p for p in structural_problems(v, "%s.%s[%d].%s" % (path, key, i, k))
                                if not p.endswith("no type")]
    return out


class DeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = []
        for path in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml"))):
            if os.path.basename(path) == "kustomization.yaml":
                continue
            for d in load_all(path):
                cls.objs.append((os.path.basename(path), d))

    def of_kind(self, kind):
        return [d for _, d in self.objs if d["kind"] == kind]

    @staticmethod
    def load_service():
        """Service istiod (deploy/service.yaml)."""
        (svc,) = load_all(os.path.join(DEPLOY, "service.yaml"))
        return svc

    def one(self, kind):
        found = self.of_kind(kind)
        self.assertEqual(len(found), 1, kind)
        return found[0]

    def test_every_manifest_has_the_basics(self):
        self.assertTrue(self.objs)
        for name, d in self.objs:
            for key in ("apiVersion", "kind", "metadata"):
                self.assertIn(key, d, name)
            self.assertTrue(d["metadata"].get("name"), name)
            if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                                 "ValidatingWebhookConfiguration"):
                self.assertEqual(d["metadata"].get("namespace"), "istio-system", (name, d["kind"]))
        kinds = {d["kind"] for _, d in self.objs}
        self.assertTrue({"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                         "Deployment", "Service", "PodDisruptionBudget"} <= kinds, kinds)

    def test_deployment(self):
        dep = self.one("Deployment")
        spec = dep["spec"]
        self.assertEqual(spec["replicas"], 2)
        pod = spec["template"]
        for k, v in spec["selector"]["matchLabels"].items():
            self.assertEqual(pod["metadata"]["labels"].get(k), v)
        ps = pod["spec"]
        self.assertEqual(ps["serviceAccountName"], self.one("ServiceAccount")["metadata"]["name"])
        self.assertTrue(ps["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(ps["securityContext"].get("runAsUser"), 0)
        (c,) = ps["containers"]
        self.assertEqual({p["containerPort"] for p in c["ports"]}, PORTS)
        probe = c["readinessProbe"]["httpGet"]
        self.assertEqual((probe["path"], probe["port"]), ("/ready", 15014))
        for part in ("requests", "limits"):
            self.assertTrue({"cpu", "memory"} <= set(c["resources"][part]), part)
        sc = c["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertTrue(sc["runAsNonRoot"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertIn("ALL", sc["capabilities"]["drop"])
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
        self.assertEqual(env.get("POD_NAME"), "metadata.name")
        self.assertEqual(env.get("POD_NAMESPACE"), "metadata.namespace")
        # every flag is one meshd knows (no --config-dir: the Kubernetes API)
        out = subprocess.run([os.path.join(os.environ.get("MESH_BUILD", os.path.join(ROOT, "build")), "bin",
                                           "meshd"), "--help"], capture_output=True, text=True, timeout=30).stdout
        for a in c["args"]:
            flag = a.split("=", 1)[0]
            self.assertIn(flag + " ", out, flag)
            self.assertNotEqual(flag, "--config-dir")
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        ca_dir = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--ca-dir=")][0]
        self.assertTrue(mounts[ca_dir].get("readOnly"))

    def test_mesh_config_mounted_and_valid(self):
        # Istio's place: ConfigMap istio-system/istio, key mesh, mounted at
        # /etc/istio/config; meshd reads that file (--mesh-config)
        cms = [d for d in self.of_kind("ConfigMap") if d["metadata"]["name"] == "istio"]
        self.assertEqual(len(cms), 1)
        self.assertIn("mesh", cms[0]["data"])
        ps = self.one("Deployment")["spec"]["template"]["spec"]
        (c,) = ps["containers"]
        mesh = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--mesh-config=")]
        self.assertEqual(mesh, ["/etc/istio/config/mesh"])
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        vol = {v["name"]: v for v in ps["volumes"]}[mounts["/etc/istio/config"]["name"]]
        self.assertEqual(vol["configMap"]["name"], "istio")
        # the same validator as meshd's, on the manifest itself
        meshctl = os.path.join(os.environ.get("MESH_BUILD", os.path.join(ROOT, "build")), "bin", "meshctl")
        r = subprocess.run([meshctl, "validate", "--mesh-config", os.path.join(DEPLOY, "meshconfig.yaml")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("warning", r.stdout)

    def test_service_and_pdb_select_the_pods(self):
        pod_labels = self.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        svc = self.one("Service")
        self.assertEqual(svc["metadata"]["name"], "istiod")
        self.assertEqual({p["port"]: p.get("targetPort", p["port"]) for p in svc["spec"]["ports"]}, SERVICE_PORTS)
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(pod_labels.get(k), v)
        pdb = self.one("PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        for k, v in pdb["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(pod_labels.get(k), v)
        self.assertGreaterEqual(pdb["spec"].get("minAvailable", 0), 1)

    def test_rbac_is_least_privilege_and_complete(self):
        def grants(role):
            g = set()
            for r in role["rules"]:
                for grp in r["apiGroups"]:
                    for res in r["resources"]:
                        for verb in r["verbs"]:
                            self.assertNotIn("*", (grp, res, verb), r)
                            g.add((grp, res, verb))
            return g

        cluster = grants(self.one("ClusterRole"))
        watched = watched_resources()
        self.assertEqual(len(watched), 16, watched)  # with secrets (credentialName, SDS)
        for grp, res in watched:
            for verb in ("get", "list", "watch"):
                self.assertIn((grp, res, verb), cluster)
        for verb in ("create", "update"):
            self.assertIn(("", "configmaps", verb), cluster)
        self.assertIn(("authentication.k8s.io", "tokenreviews", "create"), cluster)
        # the leader's webhook patcher: JSON patches of the two configurations, and a dry-run Gateway
        hooks = {("admissionregistration.k8s.io", r) for r in ("mutatingwebhookconfigurations",
                                                                  "validatingwebhookconfigurations")}
        for grp, res in hooks:
            for verb in ("get", "list", "watch", "patch"):
                self.assertIn((grp, res, verb), cluster)
        self.assertIn(("networking.istio.io", "gateways", "create"), cluster)
        allowed = {(g, r) for g, r in watched} | {("", "configmaps"), ("authentication.k8s.io", "tokenreviews")} | hooks
        self.assertEqual({(g, r) for g, r, _ in cluster} - allowed, set())
        self.assertFalse([v for v in cluster if v[2] in ("delete", "deletecollection", "escalate", "bind")])
        self.assertEqual({(g, r) for g, r, v in cluster if v == "patch"}, hooks)
        self.assertEqual({(g, r) for g, r, v in cluster if v == "create" and g == "networking.istio.io"},
                         {("networking.istio.io", "gateways")})
        role = self.one("Role")
        self.assertEqual(role["metadata"]["namespace"], "istio-system")
        self.assertEqual(grants(role), {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")})
        sa = self.one("ServiceAccount")["metadata"]
        for kind, ref in (("ClusterRoleBinding", self.one("ClusterRole")), ("RoleBinding", role)):
            b = self.one(kind)
            self.assertEqual(b["roleRef"]["name"], ref["metadata"]["name"])
            self.assertIn({"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]},
                          b["subjects"])

    def test_webhook_configurations_as_istio_charts(self):
        """deploy/webhooks.yaml: Istio's names and settings, pointing at Service istiod:443 -> 15017,
        no caBundle (meshd's leader patches it), validators failing open until meshd switches them."""
        (mwc,) = self.of_kind("MutatingWebhookConfiguration")
        vwcs = {d["metadata"]["name"]: d for d in self.of_kind("ValidatingWebhookConfiguration")}
        self.assertEqual(mwc["metadata"]["name"], "istio-sidecar-injector")
        self.assertEqual(set(vwcs), {"istio-validator-istio-system", "istiod-default-validator"})
        out = subprocess.run([os.path.join(os.environ.get("MESH_BUILD", os.path.join(ROOT, "build")), "bin",
                                           "meshd"), "--help"], capture_output=True, text=True, timeout=30).stdout
        svc = self.load_service()
        for cfg, path, policy in [(mwc, "/inject", "Fail")] + [(v, "/validate", "Ignore") for v in vwcs.values()]:
            name = cfg["metadata"]["name"]
            self.assertEqual(cfg["metadata"]["labels"].get("istio.io/rev"), "default", name)
            self.assertIn(name, out)  # meshd's default of --webhook-*-configs
            for wh in cfg["webhooks"]:
                cc = wh["clientConfig"]
                self.assertNotIn("caBundle", cc, name)
                self.assertEqual(cc["service"], {"name": svc["metadata"]["name"], "namespace": "istio-system",
                                                 "path": path, "port": 443})
                self.assertEqual((wh["sideEffects"], wh["admissionReviewVersions"], wh["failurePolicy"]),
                                 ("None", ["v1"], policy), wh["name"])
        self.assertEqual([w["name"] for w in mwc["webhooks"]],
                         [p + "sidecar-injector.istio.io" for p in ("rev.namespace.", "rev.object.", "namespace.",
                                                                   "object.")])
        for wh in mwc["webhooks"]:
            self.assertEqual(wh["rules"], [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                            "resources": ["pods"]}])
        ns_case = mwc["webhooks"][2]
        self.assertEqual(ns_case["namespaceSelector"]["matchExpressions"],
                         [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}])
        self.assertEqual(ns_case["objectSelector"]["matchExpressions"],
                         [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}])
        for v in vwcs.values():
            (rule,) = v["webhooks"][0]["rules"]
            self.assertEqual(set(rule["apiGroups"]), {"networking.istio.io", "security.istio.io",
                                                      "telemetry.istio.io", "extensions.istio.io"})
            self.assertEqual((rule["operations"], rule["resources"]), (["CREATE", "UPDATE"], ["*"]))

    def test_kustomization_includes_everything_once(self):
        (k,) = load_all(os.path.join(DEPLOY, "kustomization.yaml"))
        files = {os.path.basename(p) for p in glob.glob(os.path.join(DEPLOY, "*.yaml"))} - {"kustomization.yaml"}
        self.assertEqual({r for r in k["resources"] if not r.startswith("..")}, files)
        self.assertIn("../crd-schemas", k["resources"])
        (base,) = load_all(os.path.join(CRDS, "kustomization.yml"))
        self.assertEqual(sorted(base["resources"]),
                         sorted(os.path.basename(p) for p in glob.glob(os.path.join(CRDS, "*.yaml"))))
        # the CRDs are referenced, never copied into deploy/
        for _, d in self.objs:
            self.assertNotEqual(d["kind"], "CustomResourceDefinition")

    def test_crds_are_well_formed(self):
        paths = sorted(glob.glob(os.path.join(CRDS, "*.yaml")))
        self.assertEqual(len(paths), 10)
        for path in paths:
            (crd,) = load_all(path)
            name = os.path.basename(path)
            self.assertEqual(crd["apiVersion"], "apiextensions.k8s.io/v1", name)
            self.assertEqual(crd["kind"], "CustomResourceDefinition", name)
            spec = crd["spec"]
            names = spec["names"]
            self.assertEqual(crd["metadata"]["name"], "%s.%s" % (names["plural"], spec["group"]), name)
            for key in ("kind", "plural", "listKind", "singular"):
                self.assertTrue(names.get(key), (name, key))
            self.assertIn(spec["scope"], ("Namespaced", "Cluster"))
            self.assertEqual(sum(1 for v in spec["versions"] if v["storage"]), 1, name)
            self.assertIn((spec["group"], names["plural"]), watched_resources(), name)
            for v in spec["versions"]:
                self.assertTrue(v["served"] in (True, False))
                schema = v["schema"]["openAPIV3Schema"]
                self.assertEqual(schema.get("type"), "object", (name, v["name"]))
                problems = structural_problems(schema, "%s %s" % (name, v["name"]))
                self.assertEqual(problems, [], problems[:10])

    def test_meshctl_validates_examples_against_the_crds(self):
        r = subprocess.run([MESHCTL, "validate", "-f", os.path.join(ROOT, "examples")], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "bad.yaml"), "w") as f:
                f.write("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\n"
                        "spec: {host: x, subsets: [{name: v1, labels: {version: 1}}]}\n")
            r = subprocess.run([MESHCTL, "validate", "-f", d], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dockerfile(self):
        # one bookworm build stage (scripts/deps.sh build), then the runtime
        # stages meshproxy and meshd FROM scratch (make image; README "Images")
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        self.assertIn("ARG BASE=debian:bookworm", lines)
        froms = [l for l in lines if l.startswith("FROM ")]
        self.assertEqual(froms, ["FROM ${BASE} AS build", "FROM scratch AS meshproxy", "FROM scratch AS meshd"])
        build = lines[:lines.index(froms[1])]
        self.assertTrue(any("scripts/deps.sh build" in l for l in build))
        for i, user in ((1, "1337"), (2, "65532")):
            stage = lines[lines.index(froms[i]):lines.index(froms[i + 1]) if i + 1 < len(froms) else None]
            self.assertTrue(any(l.startswith("COPY --from=build") for l in stage), stage)
            users = [l.split()[1] for l in stage if l.startswith("USER ")]
            self.assertEqual(users, ["%s:%s" % (user, user)])
            text = " ".join(stage)
            for dev in ("-dev", "build-essential", "make ", "gcc", "RUN "):
                self.assertNotIn(dev, text)


GATEWAY = os.path.join(DEPLOY, "gateway")
GW_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


class GatewayDeployTest(unittest.TestCase):
    """deploy/gateway/: the ingress gateway Deployment, Service, ServiceAccount, PDB."""

    @classmethod
    def setUpClass(cls):
        cls.objs = []
        for path in sorted(glob.glob(os.path.join(GATEWAY, "*.yaml"))):
            if os.path.basename(path) != "kustomization.yaml":
                cls.objs += [(os.path.basename(path), d) for d in load_all(path)]

    def one(self, kind):
        found = [d for _, d in self.objs if d["kind"] == kind]
        self.assertEqual(len(found), 1, kind)
        return found[0]

    def container(self):
        (c,) = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        return c

    def test_objects_and_kustomization(self):
        kinds = sorted(d["kind"] for _, d in self.objs)
        self.assertEqual(kinds, ["Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"])
        for name, d in self.objs:
            self.assertEqual(d["metadata"].get("namespace"), "istio-system", name)
        # no Role, no binding: the gateway reads no Secret itself (meshd does, over SDS)
        self.assertFalse([d for _, d in self.objs if "Role" in d["kind"]])
        (k,) = load_all(os.path.join(GATEWAY, "kustomization.yaml"))
        files = {os.path.basename(p) for p in glob.glob(os.path.join(GATEWAY, "*.yaml"))} - {"kustomization.yaml"}
        self.assertEqual(sorted(k["resources"]), sorted(files))

    def test_labels_select_and_match_the_gateway_selector(self):
        dep = self.one("Deployment")
        pod = dep["spec"]["template"]
        for k, v in GW_LABELS.items():
            self.assertEqual(pod["metadata"]["labels"].get(k), v)
        for sel in (dep["spec"]["selector"]["matchLabels"], self.one("Service")["spec"]["selector"],
                    self.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
            for k, v in sel.items():
                self.assertEqual(pod["metadata"]["labels"].get(k), v, sel)
        # node metadata LABELS (what Gateway selectors match) are the pod's
        args = dict(a.split("=", 1) for a in self.container()["args"])
        given = dict(kv.split("=", 1) for kv in args["--labels"].split(","))
        self.assertEqual(given, {k: pod["metadata"]["labels"][k] for k in given})
        self.assertEqual(given, GW_LABELS)

    def test_service_ports(self):
        svc = self.one("Service")
        ports = {p["name"]: (p["port"], p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]}
        self.assertEqual(ports, {"status-port": (15021, 15021), "http2": (80, 80), "https": (443, 443)})
        cports = {p["containerPort"] for p in self.container()["ports"]}
        self.assertTrue({15021, 80, 443} <= cports, cports)
        # 80 and 443 as non-root: the chart's sysctl
        ps = self.one("Deployment")["spec"]["template"]["spec"]
        self.assertIn({"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                      ps["securityContext"]["sysctls"])
        self.assertTrue(ps["securityContext"]["runAsNonRoot"])

    def test_meshproxy_as_a_router(self):
        c = self.container()
        self.assertEqual(c["command"], ["/usr/local/bin/meshproxy"])
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
        self.assertEqual(env, {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
                               "POD_IP": "status.podIP", "SERVICE_ACCOUNT": "spec.serviceAccountName"})
        args = dict(a.split("=", 1) for a in c["args"])
        self.assertEqual(args["--node-id"],
                         "router~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.cluster.local")
        self.assertEqual(args["--service-account"], "$(SERVICE_ACCOUNT)")
        self.assertEqual(self.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
                         self.one("ServiceAccount")["metadata"]["name"])
        # xDS and the CA at istiod's TLS port, the Service in deploy/service.yaml
        istiod = {p["port"] for p in DeployTest.load_service()["spec"]["ports"]}
        for flag in ("--xds-addr", "--ca-addr"):
            self.assertEqual(args[flag], "$(ISTIOD_SERVICE_HOST):15012")
        self.assertIn(15012, istiod)
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/healthz/ready", "port": 15021})
        self.assertEqual(args["--health-addr"], "0.0.0.0:15021")
        # every flag is one meshproxy knows
        meshproxy = os.path.join(os.environ.get("MESH_BUILD", os.path.join(ROOT, "build")), "bin", "meshproxy")
        out = subprocess.run([meshproxy, "--help"], capture_output=True, text=True, timeout=30)
        for flag in args:
            self.assertIn(flag + " ", out.stdout + out.stderr, flag)
        # the root and the token where the flags say
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertIn(os.path.dirname(args["--root-cert"]), mounts)
        self.assertIn(os.path.dirname(args["--token-file"]), mounts)
        vols = {v["name"]: v for v in self.one("Deployment")["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(vols["istiod-ca-cert"]["configMap"]["name"], "istio-ca-root-cert")
        (src,) = vols["istio-token"]["projected"]["sources"]
        self.assertEqual(src["serviceAccountToken"]["audience"], "istio-ca")

    def test_image_is_meshproxys(self):
        # the gateway runs make image's meshproxy image, whose rootfs holds meshproxy
        self.assertEqual(self.container()["image"], "meshproxy:latest")
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            text = f.read()
        self.assertRegex(text, r"image-rootfs.sh [^\n]*/rootfs/meshproxy [^\n]*bin/meshproxy")
        self.assertIn("COPY --from=build /rootfs/meshproxy/ /", text)


if __name__ == "__main__":
    unittest.main()
