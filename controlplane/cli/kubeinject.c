/*
 * kubeinject.c - "meshctl kube-inject" (see kubeinject.h).
 *
 * istioctl kube-inject injects whatever it is given, namespace labels or
 * not (the user asked for it): so every Pod is injected unless it opts out
 * itself (sidecar.istio.io/inject=false, hostNetwork, already injected),
 * which here means the namespace counts as istio-injection=enabled.
 *
 * Output is YAML, as istioctl's (libyaml's emitter over the JSON the
 * injector builds: block style, strings quoted only where a plain scalar
 * would read back as something else), or JSON with -o json.
 */
#include "controlplane/cli/kubeinject.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/file.h"
#include "common/json.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/yamljson.h"
#include "controlplane/inject/inject.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define KI_MAX_INPUT ((size_t)64 << 20)

#define KI_MAX_NS_LABELS 32

struct ki {
	struct inject_config cfg;
	bool json;                   /* -o json: compact JSON documents instead of YAML */
	/* --review: the namespace's labels from --namespace-labels */
	char *ns_keys[KI_MAX_NS_LABELS], *ns_vals[KI_MAX_NS_LABELS];
	size_t n_ns_labels;
	const char *ns;              /* --namespace: for objects without one */
	int docs;
	int failed;
};

static const char *ki_ns_label(void *ctx, const char *ns, const char *key)
{
	(void)ctx;
	(void)ns;
	return strcmp(key, "istio-injection") == 0 ? "enabled" : NULL;
}

/* --review: every namespace has the --namespace-labels */
static const char *ki_review_label(void *ctx, const char *ns, const char *key)
{
	struct ki *k = ctx;
	size_t i;

	(void)ns;
	for (i = 0; i < k->n_ns_labels; i++)
		if (strcmp(k->ns_keys[i], key) == 0)
			return k->ns_vals[i];
	return NULL;
}

/* "k=v,k2=v2" into k's label list (the text is modified in place). */
static int ki_parse_labels(struct ki *k, char *text)
{
	char *p = text;

	while (p && *p) {
		char *comma = strchr(p, ','), *eq;

		if (comma)
			*comma = '\0';
		eq = strchr(p, '=');
		if (!eq || eq == p || k->n_ns_labels == KI_MAX_NS_LABELS)
			return -EINVAL;
		*eq = '\0';
		k->ns_keys[k->n_ns_labels] = p;
		k->ns_vals[k->n_ns_labels++] = eq + 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

/* --review FILE: an AdmissionReview in, meshd's /inject answer out. */
static int ki_review(struct ki *k, const char *data, size_t len)
{
	struct mesh_buf out;
	enum inject_outcome oc;
	int rc;

	mesh_buf_init(&out, INJECT_MAX_OUTPUT * 2);
	k->cfg.ns_label = ki_review_label;
	k->cfg.ns_ctx = k;
	rc = inject_review(&k->cfg, data, len, &out, &oc);
	if (rc < 0 && rc != -EINVAL) {
		fprintf(stderr, "meshctl kube-inject: %s\n", mesh_strerror(rc));
	} else {
		fwrite(out.data ? out.data : "", 1, out.len, stdout);
		fputc('\n', stdout);
	}
	mesh_buf_cleanup(&out);
	return rc < 0 ? 1 : 0;
}

/* Would this string, written plain, read back as something other than a
 * string (null, a bool in YAML 1.1 as kubectl's sigs.k8s.io/yaml reads it,
 * a number, a date)?  Then it keeps its quotes. */
static bool ki_plain_ambiguous(const char *v, size_t n)
{
	static const char *const words[] = { "null", "true", "false", "yes", "no", "on", "off", "y", "n" };
	char low[8];
	size_t i;

	if (n == 0 || strchr("0123456789-+.~", v[0]))
		return true;
	if (n >= sizeof(low))
		return false;
	for (i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)v[i]);
	low[n] = '\0';
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(low, words[i]) == 0)
			return true;
	return false;
}

static int ki_yaml_write(void *data, unsigned char *buf, size_t size)
{
	mesh_buf_append(data, buf, size);
	return ((struct mesh_buf *)data)->err ? 0 : 1;
}

/* One JSON document (len bytes) as block YAML into out.  Returns 0,
 * -MESH_EPARSE (not JSON libyaml reads), -ENOMEM. */
static int ki_yaml(const char *json, size_t len, struct mesh_buf *out)
{
	yaml_parser_t p;
	yaml_emitter_t e;
	yaml_event_t ev;
	int rc = 0, done = 0;

	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	if (!yaml_emitter_initialize(&e)) {
		yaml_parser_delete(&p);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)json, len);
	yaml_emitter_set_output(&e, ki_yaml_write, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	yaml_emitter_set_indent(&e, 2);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = -MESH_EPARSE;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (ev.type == YAML_MAPPING_START_EVENT)
			ev.data.mapping_start.style = YAML_BLOCK_MAPPING_STYLE;
		else if (ev.type == YAML_SEQUENCE_START_EVENT)
			ev.data.sequence_start.style = YAML_BLOCK_SEQUENCE_STYLE;
		else if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
			/* a JSON string: plain where it reads back as the same
			 * string, a literal block when it has lines; libyaml's
			 * emitter quotes whatever its analysis forbids plain */
			const char *v = (const char *)ev.data.scalar.value;
			size_t n = ev.data.scalar.length;

			if (!ki_plain_ambiguous(v, n)) {
				ev.data.scalar.plain_implicit = 1;
				ev.data.scalar.style = memchr(v, '\n', n) ? YAML_LITERAL_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE;
			}
		}
		if (!yaml_emitter_emit(&e, &ev)) { /* the emitter owns (and deletes) the event */
			rc = out->err ? out->err : -MESH_EPARSE;
			break;
		}
	}
	yaml_emitter_delete(&e);
	yaml_parser_delete(&p);
	return rc;
}

/* A document to stdout as asked (YAML or JSON), "---" between documents. */
static int ki_put(struct ki *k, const char *json, size_t len)
{
	struct mesh_buf y;
	int rc;

	if (k->docs > 1)
		fputs("---\n", stdout);
	if (k->json) {
		fwrite(json, 1, len, stdout);
		fputc('\n', stdout);
		return 0;
	}
	mesh_buf_init(&y, INJECT_MAX_OUTPUT * 4);
	rc = ki_yaml(json, len, &y);
	if (rc == 0)
		fwrite(y.data ? y.data : "", 1, y.len, stdout);
	mesh_buf_cleanup(&y);
	return rc;
}

/* The JSON pointer of the pod template of a workload kind, NULL for a Pod,
 * "" for kinds that hold none. */
static const char *ki_template(const char *kind)
{
	static const char *const workloads[] = { "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
						 "Job", "ReplicationController", "DeploymentConfig" };
	size_t i;

	if (!kind)
		return "";
	if (strcmp(kind, "Pod") == 0)
		return NULL;
	if (strcmp(kind, "CronJob") == 0)
		return "/spec/jobTemplate/spec/template";
	for (i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strcmp(kind, workloads[i]) == 0)
			return "/spec/template";
	return "";
}

/* The value at a pointer made of plain member names. */
static const struct json_value *ki_at(const struct json_value *v, const char *ptr)
{
	char key[128];

	while (v && *ptr == '/') {
		const char *e = strchr(ptr + 1, '/');
		size_t n = e ? (size_t)(e - ptr - 1) : strlen(ptr + 1);

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, ptr + 1, n);
		key[n] = '\0';
		v = json_get(v, key);
		ptr += n + 1;
	}
	return v;
}

/* One object (json, len bytes; root its parse) into res: injected when it
 * holds a pod, else as it came.  Messages name document k->docs.  Returns
 * 0 or a negative code (the message printed). */
static int ki_obj(struct ki *k, const char *json, size_t len, const struct json_value *root, struct mesh_buf *res)
{
	struct mesh_buf patch, pod;
	const struct json_value *tmpl;
	char reason[INJECT_REASON_CAP];
	const char *prefix, *ns;
	int rc = 0;

	mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
	mesh_buf_init(&pod, INJECT_MAX_OUTPUT);
	prefix = ki_template(json_get_str(root, "kind"));
	ns = json_get_str(json_get(root, "metadata"), "namespace");
	if (!ns)
		ns = k->ns;
	if (prefix && !prefix[0]) {
		mesh_buf_append(res, json, len); /* not a workload: as it came */
		goto out;
	}
	/* the workload object's name is the workload's (Istio's IntoObject:
	 * DeploymentMeta is the Deployment's, the CronJob's, ... metadata) */
	k->cfg.workload = prefix ? json_get_str(json_get(root, "metadata"), "name") : NULL;
	k->cfg.workload_kind = prefix ? json_get_str(root, "kind") : NULL;
	k->cfg.workload_api_version = prefix ? json_get_str(root, "apiVersion") : NULL;
	tmpl = prefix ? ki_at(root, prefix) : root;
	if (!tmpl) {
		fprintf(stderr, "meshctl kube-inject: document %d: no pod template at %s\n", k->docs, prefix);
		rc = -EINVAL;
		goto out;
	}
	mesh_buf_append(&pod, json + tmpl->start, tmpl->end - tmpl->start);
	rc = inject_pod(&k->cfg, pod.data, pod.len, ns, &patch, reason, sizeof(reason));
	if (rc < 0) {
		fprintf(stderr, "meshctl kube-inject: document %d: %s\n", k->docs, reason[0] ? reason : mesh_strerror(rc));
		goto out;
	}
	if (rc == 0) {
		fprintf(stderr, "meshctl kube-inject: document %d: not injected: %s\n", k->docs, reason);
		mesh_buf_append(res, json, len);
		goto out;
	}
	rc = inject_apply(json, len, patch.data, patch.len, prefix ? prefix : "", res);
	if (rc < 0)
		fprintf(stderr, "meshctl kube-inject: document %d: applying the patch: %s\n", k->docs, mesh_strerror(rc));
out:
	k->cfg.workload = k->cfg.workload_kind = k->cfg.workload_api_version = NULL; /* pointed into root */
	mesh_buf_cleanup(&patch);
	mesh_buf_cleanup(&pod);
	return rc < 0 ? rc : res->err;
}

/* A List (what `kubectl get ... -o yaml` writes): every item in turn, as
 * Istio's IntoObject walks corev1.List; apiVersion, kind and metadata kept. */
static int ki_list(struct ki *k, const char *json, const struct json_value *root, struct mesh_buf *res)
{
	const struct json_value *m, *it;
	bool first = true;
	int rc = 0;

	mesh_buf_putc(res, '{');
	for (m = root->child; m; m = m->next) {
		if (!m->key || strcmp(m->key, "items") == 0)
			continue;
		if (!first)
			mesh_buf_putc(res, ',');
		first = false;
		json_put_string(res, m->key);
		mesh_buf_putc(res, ':');
		mesh_buf_append(res, json + m->start, m->end - m->start);
	}
	mesh_buf_puts(res, first ? "\"items\":[" : ",\"items\":[");
	for (it = json_get(root, "items")->child; it && rc == 0; it = it->next) {
		struct json_value *item = NULL;

		if (it != json_get(root, "items")->child)
			mesh_buf_putc(res, ',');
		rc = json_parse(json + it->start, it->end - it->start, &item);
		if (rc == 0)
			rc = ki_obj(k, json + it->start, it->end - it->start, item, res);
		else
			fprintf(stderr, "meshctl kube-inject: document %d: an item: %s\n", k->docs, mesh_strerror(rc));
		json_free(item);
	}
	mesh_buf_puts(res, "]}");
	return rc < 0 ? rc : res->err;
}

static int ki_doc(void *ctx, const char *json, size_t len)
{
	struct ki *k = ctx;
	struct json_value *root = NULL;
	const struct json_value *items;
	const char *kind;
	struct mesh_buf out;
	int rc;

	mesh_buf_init(&out, INJECT_MAX_OUTPUT * 2);
	k->docs++;
	rc = json_parse(json, len, &root);
	if (rc < 0) {
		fprintf(stderr, "meshctl kube-inject: document %d: %s\n", k->docs, mesh_strerror(rc));
		goto out;
	}
	kind = json_get_str(root, "kind");
	items = json_get(root, "items");
	if (kind && strcmp(kind, "List") == 0 && items && items->type == JSON_ARRAY)
		rc = ki_list(k, json, root, &out);
	else
		rc = ki_obj(k, json, len, root, &out);
	if (rc < 0)
		goto out;
	rc = ki_put(k, out.data, out.len);
	if (rc < 0)
		fprintf(stderr, "meshctl kube-inject: document %d: writing YAML: %s\n", k->docs, mesh_strerror(rc));
out:
	if (rc < 0)
		k->failed++;
	json_free(root);
	mesh_buf_cleanup(&out);
	return 0; /* the next document still gets its turn */
}

static void ki_usage(FILE *f)
{
	fprintf(f, "usage: meshctl kube-inject -f FILE|- [flags]\n"
		   "  -f, --filename FILE     Kubernetes YAML or JSON (- for stdin)\n"
		   "  --meshconfig FILE       Istio's MeshConfig (the istio ConfigMap's mesh key):\n"
		   "                          rootNamespace, trustDomain, defaultConfig.holdApplicationUntilProxyStarts\n"
		   "  --image IMAGE           meshproxy's image (default " INJECT_DEFAULT_IMAGE ")\n"
		   "  --native-sidecar        istio-proxy as a native sidecar (Kubernetes >= 1.29)\n"
		   "  --revision REV          istio.io/rev (default default)\n"
		   "  --namespace NS          for objects that name none (default default)\n"
		   "  --review                the input is an AdmissionReview: print meshd's /inject answer\n"
		   "  --namespace-labels k=v,...  with --review: the labels of the Pod's namespace\n"
		   "  -o, --output yaml|json  how the documents are printed (default yaml)\n"
		   "Prints every document, injected where it holds a pod, \"---\" between them.\n");
}

int kube_inject_main(int argc, char **argv)
{
	enum { O_MESH = 256, O_IMAGE, O_NATIVE, O_REV, O_NS, O_HELP, O_REVIEW, O_NS_LABELS };
	static const struct option longopts[] = {
		{ "filename", required_argument, NULL, 'f' }, { "meshconfig", required_argument, NULL, O_MESH },
		{ "meshConfigFile", required_argument, NULL, O_MESH }, { "image", required_argument, NULL, O_IMAGE },
		{ "native-sidecar", no_argument, NULL, O_NATIVE }, { "revision", required_argument, NULL, O_REV },
		{ "namespace", required_argument, NULL, O_NS }, { "help", no_argument, NULL, O_HELP },
		{ "review", no_argument, NULL, O_REVIEW }, { "namespace-labels", required_argument, NULL, O_NS_LABELS },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct ki k = { .cfg = { .ns_label = ki_ns_label }, .ns = "default" };
	const char *file = NULL, *mesh = NULL;
	struct mesh_config *mc = NULL;
	char err[512], warn[512] = "", *data = NULL, *labels = NULL;
	bool review = false;
	size_t len = 0;
	int c, rc, status = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'o':
			if (strcmp(optarg, "yaml") != 0 && strcmp(optarg, "json") != 0) {
				fprintf(stderr, "meshctl kube-inject: -o: yaml or json, not %s\n", optarg);
				return 2;
			}
			k.json = strcmp(optarg, "json") == 0;
			break;
		case O_MESH: mesh = optarg; break;
		case O_IMAGE: k.cfg.image = optarg; break;
		case O_NATIVE: k.cfg.native_sidecar = true; break;
		case O_REV: k.cfg.revision = optarg; break;
		case O_NS: k.ns = optarg; break;
		case O_REVIEW: review = true; break;
		case O_NS_LABELS: labels = optarg; break;
		case O_HELP: ki_usage(stdout); return 0;
		default: ki_usage(stderr); return 2;
		}
	}
	if (!file || optind < argc) {
		ki_usage(stderr);
		return 2;
	}
	if (labels && ki_parse_labels(&k, labels) < 0) {
		fprintf(stderr, "meshctl kube-inject: --namespace-labels: want k=v,... (at most %d)\n", KI_MAX_NS_LABELS);
		return 2;
	}
	if (mesh) {
		rc = meshcfg_load_file(mesh, &mc, err, sizeof(err), warn);
		if (rc < 0) {
			fprintf(stderr, "meshctl kube-inject: --meshconfig %s: %s\n", mesh, err);
			return 1;
		}
		k.cfg.root_namespace = mc->root_namespace;
		k.cfg.trust_domain = mc->trust_domain;
		k.cfg.hold_application = mc->hold_application_until_proxy_starts;
	}
	rc = mesh_read_file(strcmp(file, "-") == 0 ? "/dev/stdin" : file, KI_MAX_INPUT, &data, &len);
	if (rc < 0) {
		fprintf(stderr, "meshctl kube-inject: %s: %s\n", file, mesh_strerror(rc));
		status = 1;
		goto out;
	}
	if (review) {
		status = ki_review(&k, data, len);
		goto out;
	}
	rc = cfg_yaml_each_json(data, len, ki_doc, &k, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "meshctl kube-inject: %s: %s\n", file, err[0] ? err : mesh_strerror(rc));
		status = 1;
		goto out;
	}
	status = k.failed ? 1 : 0;
out:
	free(data);
	meshcfg_unref(mc);
	return status;
}
