/*
 * test_inject.c - controlplane/inject/: the selection rules as a table, the
 * patch applied by inject_apply (the applier meshctl kube-inject uses) to
 * the Pod it was made for, container order (native sidecar, hold), the
 * applier's refusals, and the review's answers to what is not a review.
 * The golden cases (tests/inject/, make inject-golden) cover every
 * annotation end to end.
 */
#include "common/json.h"
#include "controlplane/inject/inject.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct nsl {
	const char *ns, *key, *val;
};

static const struct nsl *ns_table;

static const char *ns_label(void *ctx, const char *ns, const char *key)
{
	const struct nsl *t;

	(void)ctx;
	for (t = ns_table; t && t->ns; t++)
		if (strcmp(t->ns, ns) == 0 && strcmp(t->key, key) == 0)
			return t->val;
	return NULL;
}

static int required(const char *pod_json, const char *ns)
{
	struct inject_config cfg = { .ns_label = ns_label };
	struct json_value *pod = NULL;
	char reason[INJECT_REASON_CAP];
	int rc;

	ck_assert_int_eq(json_parse(pod_json, strlen(pod_json), &pod), 0);
	rc = inject_required(&cfg, pod, ns, reason, sizeof(reason));
	if (rc == 0)
		ck_assert_msg(reason[0], "a skip says why");
	json_free(pod);
	return rc;
}

START_TEST(selection_rules)
{
	static const struct nsl nss[] = {
		{ "on", "istio-injection", "enabled" }, { "off", "istio-injection", "disabled" },
		{ "rev", "istio.io/rev", "default" },   { "canary", "istio.io/rev", "canary" },
		{ NULL, NULL, NULL },
	};
	static const struct {
		const char *pod, *ns;
		int want;
	} cases[] = {
		{ "{\"metadata\":{},\"spec\":{}}", "on", 1 },
		{ "{\"metadata\":{},\"spec\":{}}", "plain", 0 },
		{ "{\"metadata\":{},\"spec\":{}}", "off", 0 },
		{ "{\"metadata\":{},\"spec\":{}}", "rev", 1 },
		{ "{\"metadata\":{},\"spec\":{}}", "canary", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "plain", 1 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "off", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"false\"}},\"spec\":{}}", "on", 0 },
		/* istiod honours only "false"; another value falls back to the policy (injects) */
		{ "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/inject\":\"no\"}},\"spec\":{}}", "on", 1 },
		{ "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/inject\":\"false\"}},\"spec\":{}}", "on", 0 },
		/* the object selectors read labels: an annotation never opts a Pod in */
		{ "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/inject\":\"Yes\"}},\"spec\":{}}", "plain", 0 },
		{ "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "plain", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"},"
		  "\"annotations\":{\"sidecar.istio.io/inject\":\"false\"}},\"spec\":{}}", "plain", 1 },
		{ "{\"metadata\":{\"labels\":{\"istio.io/rev\":\"default\"}},\"spec\":{}}", "plain", 1 },
		/* the namespace's revision wins over the Pod's (rev.object needs an unlabelled namespace) */
		{ "{\"metadata\":{\"labels\":{\"istio.io/rev\":\"canary\"}},\"spec\":{}}", "rev", 1 },
		{ "{\"metadata\":{\"labels\":{\"istio.io/rev\":\"default\"}},\"spec\":{}}", "canary", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "canary", 0 },
		{ "{\"metadata\":{},\"spec\":{\"hostNetwork\":true}}", "on", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "kube-system", 0 },
		{ "{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{}}", "kube-public", 0 },
		{ "{\"metadata\":{\"annotations\":{\"sidecar.istio.io/status\":\"{}\"}},\"spec\":{}}", "on", 0 },
	};
	size_t i;

	ns_table = nss;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(required(cases[i].pod, cases[i].ns) == cases[i].want, "case %zu (%s in %s): want %d", i,
			      cases[i].pod, cases[i].ns, cases[i].want);
	ns_table = NULL;
}
END_TEST

#define POD_JSON "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"," \
			  "\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx\"," \
			  "\"livenessProbe\":{\"tcpSocket\":{\"port\":8080}}}]," \
			  "\"initContainers\":[{\"name\":\"setup\",\"image\":\"busybox\"}]}}"
static const char POD[] = POD_JSON;

/* Inject POD with cfg and apply the patch; the parsed result (json_free). */
static struct json_value *inject_and_apply(struct inject_config *cfg, const char *pod)
{
	struct mesh_buf patch, out;
	struct json_value *v = NULL;
	char reason[INJECT_REASON_CAP];

	mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
	mesh_buf_init(&out, INJECT_MAX_OUTPUT);
	ck_assert_int_eq(inject_pod(cfg, pod, strlen(pod), NULL, &patch, reason, sizeof(reason)), 1);
	ck_assert_int_eq(inject_apply(pod, strlen(pod), patch.data, patch.len, "", &out), 0);
	ck_assert_int_eq(json_parse(out.data, out.len, &v), 0);
	mesh_buf_cleanup(&patch);
	mesh_buf_cleanup(&out);
	return v;
}

static const char *name_at(const struct json_value *arr, size_t i)
{
	ck_assert_ptr_nonnull(arr);
	ck_assert_uint_gt(arr->n, i);
	return json_get_str(arr->v[i], "name");
}

/* istio-proxy's value of env NAME in an injected Pod, "" when it has none. */
static const char *proxy_env(const struct json_value *pod, const char *name)
{
	const struct json_value *c = json_get(json_get(pod, "spec"), "containers"), *env;
	size_t i, k;

	for (i = 0; c && i < c->n; i++) {
		if (strcmp(json_get_str(c->v[i], "name"), "istio-proxy") != 0)
			continue;
		env = json_get(c->v[i], "env");
		for (k = 0; env && k < env->n; k++)
			if (strcmp(json_get_str(env->v[k], "name"), name) == 0)
				return json_get_str(env->v[k], "value");
	}
	return "";
}

/* ISTIO_META_WORKLOAD_NAME and ISTIO_META_OWNER as istiod's
 * GetDeployMetaFromPod derives them from the controlling ownerReference. */
START_TEST(workload_and_owner_as_istio)
{
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
#define OWNED(LABELS, API, KIND, NAME, CTRL)                                                                     \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"generateName\":\"x-\",\"namespace\":\"shop\","     \
	"\"labels\":{" LABELS "},\"ownerReferences\":[{\"apiVersion\":\"" API "\",\"kind\":\"" KIND "\","        \
	"\"name\":\"" NAME "\",\"controller\":" CTRL "}]},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}"
	static const struct {
		const char *pod, *workload, *owner;
	} cases[] = {
		{ OWNED("\"pod-template-hash\":\"5b8d\"", "apps/v1", "ReplicaSet", "web-5b8d", "true"), "web",
		  "kubernetes://apis/apps/v1/namespaces/shop/deployments/web" },
		/* the hash label not ending the name: the ReplicaSet itself */
		{ OWNED("\"pod-template-hash\":\"zz\"", "apps/v1", "ReplicaSet", "web-5b8d", "true"), "web-5b8d",
		  "kubernetes://apis/apps/v1/namespaces/shop/replicasets/web-5b8d" },
		/* an Argo Rollout's ReplicaSet */
		{ OWNED("\"rollouts-pod-template-hash\":\"77f\"", "apps/v1", "ReplicaSet", "shop-77f", "true"), "shop",
		  "kubernetes://apis/v1alpha1/namespaces/shop/rollouts/shop" },
		{ OWNED("\"deploymentconfig\":\"legacy\"", "v1", "ReplicationController", "legacy-3", "true"), "legacy",
		  "kubernetes://apis/v1/namespaces/shop/deploymentconfigs/legacy" },
		/* a CronJob's Job: NAME-8 to 10 digits; 7 or 11 digits stay a Job */
		{ OWNED("\"a\":\"b\"", "batch/v1", "Job", "nightly-1234567890", "true"), "nightly",
		  "kubernetes://apis/batch/v1/namespaces/shop/cronjobs/nightly" },
		{ OWNED("\"a\":\"b\"", "batch/v1", "Job", "nightly-1234567", "true"), "nightly-1234567",
		  "kubernetes://apis/batch/v1/namespaces/shop/jobs/nightly-1234567" },
		{ OWNED("\"a\":\"b\"", "batch/v1", "Job", "nightly-12345678901", "true"), "nightly-12345678901",
		  "kubernetes://apis/batch/v1/namespaces/shop/jobs/nightly-12345678901" },
		/* an owner that is not the controller: none, and the Pod has no name yet */
		{ OWNED("\"a\":\"b\"", "apps/v1", "DaemonSet", "agent", "false"), "", "" },
		/* the workload-name label names the workload, not the owner */
		{ OWNED("\"service.istio.io/workload-name\":\"w\"", "apps/v1", "StatefulSet", "db", "true"), "w",
		  "kubernetes://apis/apps/v1/namespaces/shop/statefulsets/db" },
		/* a named Pod is its own workload */
		{ POD_JSON, "web", "kubernetes://apis/v1/namespaces/shop/pods/web" },
	};
#undef OWNED
	struct inject_config cfg = { .ns_label = ns_label };
	struct json_value *v;
	size_t i;

	ns_table = nss;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = inject_and_apply(&cfg, cases[i].pod);
		ck_assert_msg(strcmp(proxy_env(v, "ISTIO_META_WORKLOAD_NAME"), cases[i].workload) == 0,
			      "case %zu: workload %s", i, proxy_env(v, "ISTIO_META_WORKLOAD_NAME"));
		ck_assert_msg(strcmp(proxy_env(v, "ISTIO_META_OWNER"), cases[i].owner) == 0, "case %zu: owner %s", i,
			      proxy_env(v, "ISTIO_META_OWNER"));
		json_free(v);
	}
	/* kube-inject names the workload object it read */
	cfg.workload = "reviews-v1";
	cfg.workload_kind = "Deployment";
	cfg.workload_api_version = "apps/v1";
	v = inject_and_apply(&cfg, POD);
	ck_assert_str_eq(proxy_env(v, "ISTIO_META_WORKLOAD_NAME"), "reviews-v1");
	ck_assert_str_eq(proxy_env(v, "ISTIO_META_OWNER"),
			 "kubernetes://apis/apps/v1/namespaces/shop/deployments/reviews-v1");
	json_free(v);
	ns_table = NULL;
}
END_TEST

/* The container NAME of the Pod's LIST ("containers", "initContainers"). */
static const struct json_value *container_named(const struct json_value *pod, const char *list, const char *name)
{
	const struct json_value *c = json_get(json_get(pod, "spec"), list);
	size_t k;

	for (k = 0; c && k < c->n; k++)
		if (strcmp(json_get_str(c->v[k], "name"), name) == 0)
			return c->v[k];
	ck_abort_msg("no %s %s", list, name);
	return NULL;
}

/* istio-init's and istio-proxy's imagePullPolicy: IfNotPresent unless told
 * (so a :latest image loaded into the nodes is used), none with "". */
START_TEST(image_pull_policy)
{
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
	static const struct {
		const char *set, *want;
	} cases[] = { { NULL, "IfNotPresent" }, { "Never", "Never" }, { "", NULL } };
	struct inject_config cfg = { .ns_label = ns_label };
	const struct json_value *c[2];
	struct json_value *v;
	size_t i, k;

	ns_table = nss;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg.image_pull_policy = cases[i].set;
		v = inject_and_apply(&cfg, POD);
		c[0] = container_named(v, "initContainers", "istio-init");
		c[1] = container_named(v, "containers", "istio-proxy");
		for (k = 0; k < 2; k++) {
			if (cases[i].want)
				ck_assert_str_eq(json_get_str(c[k], "imagePullPolicy"), cases[i].want);
			else
				ck_assert_ptr_null(json_get(c[k], "imagePullPolicy"));
		}
		json_free(v);
	}
	ns_table = NULL;
}
END_TEST

START_TEST(patch_applies_and_orders_containers)
{
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
	struct inject_config cfg = { .ns_label = ns_label };
	const struct json_value *spec, *c, *init;
	struct json_value *v;

	ns_table = nss;
	/* default: the user's init container, then istio-init; the proxy last */
	v = inject_and_apply(&cfg, POD);
	spec = json_get(v, "spec");
	c = json_get(spec, "containers");
	init = json_get(spec, "initContainers");
	ck_assert_str_eq(name_at(c, 0), "web");
	ck_assert_str_eq(name_at(c, 1), "istio-proxy");
	ck_assert_str_eq(name_at(init, 0), "setup");
	ck_assert_str_eq(name_at(init, 1), "istio-init");
	ck_assert_str_eq(json_get_str(json_get(json_get(c->v[0], "livenessProbe"), "httpGet"), "path"),
			 "/app-health/web/livez");
	ck_assert_str_eq(json_get_str(json_get(json_get(v, "metadata"), "labels"), "security.istio.io/tlsMode"),
			 "istio");
	ck_assert_str_eq(json_get_str(json_get(v, "metadata"), "name"), "web");
	json_free(v);
	/* native: istio-init, then istio-proxy (restartPolicy Always), then the user's */
	cfg.native_sidecar = true;
	v = inject_and_apply(&cfg, POD);
	spec = json_get(v, "spec");
	init = json_get(spec, "initContainers");
	ck_assert_str_eq(name_at(init, 0), "istio-init");
	ck_assert_str_eq(name_at(init, 1), "istio-proxy");
	ck_assert_str_eq(json_get_str(init->v[1], "restartPolicy"), "Always");
	ck_assert_str_eq(name_at(init, 2), "setup");
	ck_assert_uint_eq(json_get(spec, "containers")->n, 1);
	json_free(v);
	/* hold, not native: the proxy first, with the postStart wait */
	cfg.native_sidecar = false;
	cfg.hold_application = true;
	v = inject_and_apply(&cfg, POD);
	c = json_get(json_get(v, "spec"), "containers");
	ck_assert_str_eq(name_at(c, 0), "istio-proxy");
	ck_assert_ptr_nonnull(json_get(json_get(c->v[0], "lifecycle"), "postStart"));
	json_free(v);
	ns_table = NULL;
}
END_TEST

/* inject_pod of a Pod in shop (istio-injection=enabled) with one
 * annotation: 1 injected, or the refusal's code; the patch in *patch. */
static int inject_with(const char *key, const char *val, struct mesh_buf *patch, char *reason, size_t cap)
{
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
	struct inject_config cfg = { .ns_label = ns_label };
	struct mesh_buf pod;
	int rc;

	ns_table = nss;
	mesh_buf_init(&pod, INJECT_MAX_INPUT);
	mesh_buf_puts(&pod, "{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\",\"annotations\":{");
	json_put_string(&pod, key);
	mesh_buf_putc(&pod, ':');
	json_put_string(&pod, val);
	mesh_buf_puts(&pod, "}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx\"}]}}");
	ck_assert_int_eq(pod.err, 0);
	rc = inject_pod(&cfg, pod.data, pod.len, NULL, patch, reason, cap);
	mesh_buf_cleanup(&pod);
	ns_table = NULL;
	return rc;
}

/* The traffic annotations as Istio's pkg/kube/inject/validate.go takes
 * them: CIDRs parsed whole by Go's netip.ParsePrefix (no blank, no empty
 * item, no sign or leading zero in the length), ports trimmed and parsed
 * by strconv.ParseUint(.., 10, 16).  What the injector accepts, meshproxy
 * iptables (the pod's istio-init) accepts too; what it refuses is refused
 * at admission with the annotation named, not in an init container that
 * never starts. */
START_TEST(traffic_annotations_as_istio)
{
	static const struct {
		const char *key, *val;
		int ok;
	} cases[] = {
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8,fd00::/8", 1 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "*", 1 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "", 1 },
		{ "traffic.sidecar.istio.io/excludeOutboundIPRanges", "::ffff:10.0.0.1/128,10.0.0.1/0", 1 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8, 172.16.0.0/12", 0 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/+8", 0 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/ 8", 0 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/08", 0 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8,", 0 },
		{ "traffic.sidecar.istio.io/includeOutboundIPRanges", " *", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundIPRanges", "*", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundIPRanges", "fe80::1%eth0/64", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.1/32;reboot", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", "8080, 9090", 1 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", " 0 ", 1 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", "8080,", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", "65536", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", "+80", 0 },
		{ "traffic.sidecar.istio.io/excludeOutboundPorts", "80:90", 0 },
		{ "traffic.sidecar.istio.io/includeInboundPorts", "8080, 9090", 1 },
		{ "traffic.sidecar.istio.io/includeInboundPorts", " * ", 0 },
		{ "traffic.sidecar.istio.io/excludeInboundPorts", "15020 ,15021", 1 },
	};
	char reason[INJECT_REASON_CAP];
	struct mesh_buf patch;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
		reason[0] = '\0';
		rc = inject_with(cases[i].key, cases[i].val, &patch, reason, sizeof(reason));
		ck_assert_msg(rc == (cases[i].ok ? 1 : -EINVAL), "%s=\"%s\": %d (%s)", cases[i].key, cases[i].val, rc,
			      reason);
		if (!cases[i].ok)
			ck_assert_ptr_nonnull(strstr(reason, cases[i].key));
		mesh_buf_cleanup(&patch);
	}
}
END_TEST

/* A long excludeInboundPorts reaches istio-init's -d whole, the status port
 * last (it was cut at 1023 bytes: 300 ports gave "...,10169,101" with
 * 15020 lost); a list over the cap is refused, never cut. */
START_TEST(long_port_list_whole_or_refused)
{
	char reason[INJECT_REASON_CAP], want[32];
	struct mesh_buf patch, list;
	int i;

	mesh_buf_init(&list, 1 << 16);
	for (i = 0; i < 250; i++)
		mesh_buf_printf(&list, "%s%d", i ? "," : "", 10000 + i);
	mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
	ck_assert_int_eq(inject_with("traffic.sidecar.istio.io/excludeInboundPorts", list.data, &patch, reason,
				     sizeof(reason)),
			 1);
	ck_assert_int_eq(patch.err, 0);
	snprintf(want, sizeof(want), ",%d,15020\"", 10000 + 249);
	/* the -d argument and the annotation both end with the status port */
	ck_assert_ptr_nonnull(strstr(patch.data, "\"-d\",\"15090,15021,10000,10001,"));
	ck_assert_ptr_nonnull(strstr(strstr(patch.data, "\"-d\","), want));
	ck_assert_ptr_nonnull(strstr(strstr(patch.data, "\"traffic.sidecar.istio.io/excludeInboundPorts\":"), want));
	mesh_buf_cleanup(&patch);
	mesh_buf_printf(&list, ",%d", 20000);
	mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
	ck_assert_int_eq(inject_with("traffic.sidecar.istio.io/excludeInboundPorts", list.data, &patch, reason,
				     sizeof(reason)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(reason, "more than 250 items"));
	mesh_buf_cleanup(&patch);
	mesh_buf_cleanup(&list);
}
END_TEST

/* Resource quantities as Kubernetes parses them; a patch the API server
 * would refuse is refused at admission with the annotation named. */
START_TEST(quantities_as_kubernetes)
{
	static const struct {
		const char *val;
		int ok;
	} cases[] = {
		{ "100m", 1 }, { "1.5", 1 }, { "128Mi", 1 }, { "1e3", 1 }, { "1E-2", 1 }, { "+2", 1 }, { ".5", 1 },
		{ "500u", 1 }, { "1.2.3", 0 }, { "1e", 0 },   { "-1", 0 },   { ".", 0 },   { "1Q", 0 },  { "", 0 },
		{ "1 ", 0 },   { "1ki", 0 },
	};
	char reason[INJECT_REASON_CAP];
	struct mesh_buf patch;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
		rc = inject_with("sidecar.istio.io/proxyCPU", cases[i].val, &patch, reason, sizeof(reason));
		ck_assert_msg(rc == (cases[i].ok ? 1 : -EINVAL), "proxyCPU \"%s\": %d", cases[i].val, rc);
		mesh_buf_cleanup(&patch);
	}
}
END_TEST

/* A container name the API server will refuse (a control character, a
 * quote) still gets a patch that is JSON: its probes are left as they are. */
START_TEST(odd_container_name_patch_is_json)
{
	static const char *const names[] = { "a\\u0001b", "a\\nb", "a\\\"b", "a\\\\b", "a\\u2028b" };
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
	struct inject_config cfg = { .ns_label = ns_label };
	char reason[INJECT_REASON_CAP], pod[512];
	struct json_value *v = NULL;
	struct mesh_buf patch;
	size_t i;

	ns_table = nss;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(pod, sizeof(pod),
			 "{\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"containers\":[{\"name\":"
			 "\"%s\",\"livenessProbe\":{\"httpGet\":{\"port\":8080}},\"readinessProbe\":{\"tcpSocket\":"
			 "{\"port\":8080}}}]}}",
			 names[i]);
		mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
		ck_assert_int_eq(inject_pod(&cfg, pod, strlen(pod), NULL, &patch, reason, sizeof(reason)), 1);
		ck_assert_msg(json_parse(patch.data, patch.len, &v) == 0, "name %s: patch is not JSON", names[i]);
		json_free(v);
		v = NULL;
		mesh_buf_cleanup(&patch);
	}
	ns_table = NULL;
}
END_TEST

/* A Pod whose patch outgrows the answer (its ports are copied into
 * ISTIO_META_POD_PORTS, escaped: a 2.7 MB review of quote-named ports)
 * is refused with a message, not answered "allowed: false" with an empty
 * one, nor with an answer over the cap (meshd's 500). */
START_TEST(review_too_big_refused_with_reason)
{
	static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
	struct inject_config cfg = { .ns_label = ns_label };
	struct mesh_buf body, out;
	struct json_value *v = NULL;
	enum inject_outcome oc;
	const char *msg;
	int i;

	ns_table = nss;
	mesh_buf_init(&body, INJECT_MAX_INPUT);
	mesh_buf_puts(&body, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\","
			     "\"namespace\":\"shop\",\"object\":{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":"
			     "[{\"name\":\"web\",\"ports\":[");
	for (i = 0; i < 55000; i++)
		mesh_buf_puts(&body, i ? ",{\"name\":\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\",\"containerPort\":1}"
				       : "{\"containerPort\":1}");
	mesh_buf_puts(&body, "]}]}}}}");
	ck_assert_int_eq(body.err, 0);
	mesh_buf_init(&out, INJECT_MAX_OUTPUT);
	ck_assert_int_eq(inject_review(&cfg, body.data, body.len, &out, &oc), 0);
	ck_assert_int_eq(oc, INJECT_FAILED);
	ck_assert_int_eq(json_parse(out.data, out.len, &v), 0);
	ck_assert(!json_get_bool(json_get(v, "response"), "allowed", true));
	msg = json_get_str(json_get(json_get(v, "response"), "status"), "message");
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_nonnull(strstr(msg, "patch for this Pod would be over"));
	json_free(v);
	mesh_buf_cleanup(&out);
	mesh_buf_cleanup(&body);
	ns_table = NULL;
}
END_TEST

static int apply(const char *doc, const char *patch, struct mesh_buf *out)
{
	return inject_apply(doc, strlen(doc), patch, strlen(patch), "", out);
}

START_TEST(apply_refuses_what_it_does_not_do)
{
	static const char doc[] = "{\"a\":{\"b\":1}}";
	struct mesh_buf out;

	mesh_buf_init(&out, 4096);
	ck_assert_int_eq(apply(doc, "[{\"op\":\"add\",\"path\":\"/a/c\",\"value\":2}]", &out),
			 0);
	ck_assert_str_eq(out.data, "{\"a\":{\"b\":1,\"c\":2}}");
	mesh_buf_reset(&out);
	ck_assert_int_eq(apply(doc, "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":[3]}]", &out),
			 0);
	ck_assert_str_eq(out.data, "{\"a\":{\"b\":[3]}}");
	mesh_buf_reset(&out);
	ck_assert_int_eq(apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/b\"}]", &out), -EINVAL);
	mesh_buf_reset(&out);
	/* the parent does not exist */
	ck_assert_int_eq(apply(doc, "[{\"op\":\"add\",\"path\":\"/x/y\",\"value\":1}]", &out),
			 -EINVAL);
	mesh_buf_cleanup(&out);
}
END_TEST

START_TEST(review_answers)
{
	struct inject_config cfg = { 0 };
	struct mesh_buf out;
	enum inject_outcome oc;
	struct json_value *v = NULL;
	static const char bad_uid[] = "{\"request\":{\"object\":{}}}";

	mesh_buf_init(&out, INJECT_MAX_OUTPUT);
	ck_assert_int_eq(inject_review(&cfg, "", 0, &out, &oc), -EINVAL);
	mesh_buf_reset(&out);
	ck_assert_int_eq(inject_review(&cfg, bad_uid, strlen(bad_uid), &out, &oc), 0);
	ck_assert_int_eq(oc, INJECT_FAILED);
	ck_assert_int_eq(json_parse(out.data, out.len, &v), 0);
	ck_assert(!json_get_bool(json_get(v, "response"), "allowed", true));
	json_free(v);
	v = NULL;
	/* another version or kind of review: refused, named (it was injected) */
	{
		static const char *const odd[] = {
			"{\"apiVersion\":\"admission.k8s.io/v9\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\","
			"\"object\":" POD_JSON "}}",
			"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Deployment\",\"request\":{\"uid\":\"u\","
			"\"object\":" POD_JSON "}}",
		};
		static const struct nsl nss[] = { { "shop", "istio-injection", "enabled" }, { NULL, NULL, NULL } };
		size_t i;

		ns_table = nss;
		for (i = 0; i < 2; i++) {
			mesh_buf_reset(&out);
			ck_assert_int_eq(inject_review(&cfg, odd[i], strlen(odd[i]), &out, &oc), 0);
			ck_assert_int_eq(oc, INJECT_FAILED);
			ck_assert_int_eq(json_parse(out.data, out.len, &v), 0);
			ck_assert_str_eq(json_get_str(v, "apiVersion"), "admission.k8s.io/v1");
			ck_assert_str_eq(json_get_str(json_get(v, "response"), "uid"), "u");
			ck_assert(!json_get_bool(json_get(v, "response"), "allowed", true));
			ck_assert_ptr_nonnull(strstr(json_get_str(json_get(json_get(v, "response"), "status"), "message"),
						     "is registered for version"));
			json_free(v);
			v = NULL;
		}
		ns_table = NULL;
	}
	mesh_buf_cleanup(&out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("inject");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, selection_rules);
	tcase_add_test(tc, patch_applies_and_orders_containers);
	tcase_add_test(tc, workload_and_owner_as_istio);
	tcase_add_test(tc, image_pull_policy);
	tcase_add_test(tc, apply_refuses_what_it_does_not_do);
	tcase_add_test(tc, review_answers);
	tcase_add_test(tc, traffic_annotations_as_istio);
	tcase_add_test(tc, long_port_list_whole_or_refused);
	tcase_add_test(tc, quantities_as_kubernetes);
	tcase_add_test(tc, odd_container_name_patch_is_json);
	tcase_add_test(tc, review_too_big_refused_with_reason);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(suite());
}
