/*
 * validate.c - the validating admission webhook (see validate.h).
 *
 * One request: parse the AdmissionReview (common/json.h, byte ranges
 * kept), hand the exact text of request.object to cfg_parse_buffer -- the
 * parser and validator meshd's sources and `meshctl validate` run -- and
 * write the AdmissionReview response.  Nothing is shared between requests
 * but the counters (a small table under a mutex), so the server may call
 * the handler from several threads at once.
 */
#include "controlplane/webhook/validate.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "controlplane/config/config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define WV__LABEL_MAX 64            /* bytes of one label value kept */
#define WV__MSG_MAX (64u << 10)     /* the denial message */
#define WV__MAX_DEPTH 128           /* AdmissionReview + the object's own nesting */

/* istiod's reasons (pkg/webhooks/validation/server/monitoring.go) */
#define WV__UNSUPPORTED_OPERATION "unsupported_operation"
#define WV__YAML_DECODE_ERROR "yaml_decode_error"
#define WV__UNKNOWN_TYPE "unknown_type"
#define WV__INVALID_CONFIG "invalid_resource"

/* ------------------------------------------------------------- counters */

enum wv__metric { WV__PASSED, WV__FAILED, WV__HTTP_ERROR };

struct wv__series {
	enum wv__metric metric;
	char group[WV__LABEL_MAX], version[WV__LABEL_MAX], resource[WV__LABEL_MAX], reason[WV__LABEL_MAX];
	int status;
	unsigned long long n;
};

static struct {
	pthread_mutex_t lock;
	struct wv__series v[WEBHOOK_VALIDATE_MAX_SERIES];
	size_t n;
	unsigned long long overflow[3];  /* increments past the table, per metric */
} wv__m = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void wv__copy_label(char *dst, const char *src)
{
	snprintf(dst, WV__LABEL_MAX, "%s", src ? src : "");
}

static void wv__count(enum wv__metric metric, const char *group, const char *version, const char *resource,
		      const char *reason, int status)
{
	struct wv__series key;
	size_t i;

	memset(&key, 0, sizeof(key));
	key.metric = metric;
	wv__copy_label(key.group, group);
	wv__copy_label(key.version, version);
	wv__copy_label(key.resource, resource);
	wv__copy_label(key.reason, reason);
	key.status = status;
	pthread_mutex_lock(&wv__m.lock);
	for (i = 0; i < wv__m.n; i++) {
		struct wv__series *s = &wv__m.v[i];
		if (s->metric == key.metric && s->status == key.status && !strcmp(s->group, key.group) &&
		    !strcmp(s->version, key.version) && !strcmp(s->resource, key.resource) &&
		    !strcmp(s->reason, key.reason))
			break;
	}
	if (i < wv__m.n) {
		wv__m.v[i].n++;
	} else if (wv__m.n < WEBHOOK_VALIDATE_MAX_SERIES) {
		key.n = 1;
		wv__m.v[wv__m.n++] = key;
	} else {
		wv__m.overflow[metric]++; /* the labels come from the caller: bound them */
	}
	pthread_mutex_unlock(&wv__m.lock);
}

/* A label value in the exposition format: \ " and newline escaped. */
static void wv__label(struct mesh_buf *out, const char *name, const char *v, bool first)
{
	mesh_buf_printf(out, "%s%s=\"", first ? "" : ",", name);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mesh_buf_putc(out, '\\');
		if (*v == '\n')
			mesh_buf_puts(out, "\\n");
		else
			mesh_buf_putc(out, *v);
	}
	mesh_buf_putc(out, '"');
}

int webhook_validate_metrics(struct mesh_buf *out)
{
	static const char *const names[] = { "galley_validation_passed", "galley_validation_failed",
					      "galley_validation_http_error" };
	static const char *const help[] = { "Resource is valid", "Resource validation failed",
					     "Resource validation http serve errors" };
	size_t m, i;

	pthread_mutex_lock(&wv__m.lock);
	for (m = 0; m < 3; m++) {
		mesh_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", names[m], help[m], names[m]);
		for (i = 0; i < wv__m.n; i++) {
			const struct wv__series *s = &wv__m.v[i];
			if (s->metric != (enum wv__metric)m)
				continue;
			mesh_buf_printf(out, "%s{", names[m]);
			if (s->metric == WV__HTTP_ERROR) {
				mesh_buf_printf(out, "status=\"%d\"", s->status);
			} else {
				wv__label(out, "group", s->group, true);
				wv__label(out, "resource", s->resource, false);
				wv__label(out, "version", s->version, false);
				if (s->metric == WV__FAILED)
					wv__label(out, "reason", s->reason, false);
			}
			mesh_buf_printf(out, "} %llu\n", s->n);
		}
		if (wv__m.overflow[m])
			mesh_buf_printf(out, "%s{overflow=\"true\"} %llu\n", names[m], wv__m.overflow[m]);
	}
	pthread_mutex_unlock(&wv__m.lock);
	return out->err;
}

/* ------------------------------------------------------------- one request */

struct wv__req {
	const char *body;
	const struct json_value *request;
	const char *api_version;     /* of the review: the response echoes it */
	const char *uid;
	const char *group, *version, *resource;   /* request.resource: the counters' labels */
	bool dry_run;
	/* the answer */
	bool allowed;
	struct mesh_buf msg;         /* denial message; empty when allowed */
	struct mesh_buf warnings;    /* JSON array members, comma-separated */
	size_t n_warnings;
};

static const char *wv__s(const char *s)
{
	return s ? s : "";
}

static void wv__fail(struct wv__req *r, const char *reason)
{
	if (!r->dry_run) /* istiod: dry runs are not counted as failures */
		wv__count(WV__FAILED, r->group, r->version, r->resource, reason, 0);
	log_info("webhook", "validate %s/%s %s: %s%s", wv__s(r->group), wv__s(r->resource), wv__s(r->uid),
		 r->msg.data ? r->msg.data : "", r->dry_run ? " (dry run)" : "");
}

/* "Kind ns/name: field: message", the finding without its origin (the
 * request is the origin) and without line numbers (JSON from the API). */
static void wv__finding(struct mesh_buf *b, const struct cfg_error *e)
{
	if (e->kind >= 0 && e->kind < CFG_KIND_COUNT)
		mesh_buf_printf(b, "%s %s/%s: ", cfg_kind_name((enum cfg_kind)e->kind), e->ns ? e->ns : "default",
				e->name ? e->name : "?");
	if (e->field)
		mesh_buf_printf(b, "%s: ", e->field);
	mesh_buf_puts(b, e->message ? e->message : "error");
}

static void wv__warn(struct wv__req *r, const struct cfg_error *e)
{
	struct mesh_buf one;

	mesh_buf_init(&one, WV__MSG_MAX);
	wv__finding(&one, e);
	if (r->n_warnings++)
		mesh_buf_putc(&r->warnings, ',');
	json_put_string(&r->warnings, one.data ? one.data : "");
	mesh_buf_cleanup(&one);
}

/* The object's annotation key, or NULL. */
static const struct json_value *wv__annotation(const struct json_value *obj, const char *key)
{
	return json_get(json_get(json_get(obj, "metadata"), "annotations"), key);
}

/* The JSON text of v into b, with metadata.name set to name at the top
 * level when name is not NULL (the object judged in place of one the API
 * server names later from generateName). */
static void wv__json(struct mesh_buf *b, const struct json_value *v, const char *name, int depth)
{
	const struct json_value *c;
	bool first = true, named = false;

	switch (v->type) {
	case JSON_NULL:
		mesh_buf_puts(b, "null");
		return;
	case JSON_BOOL:
		mesh_buf_puts(b, v->b ? "true" : "false");
		return;
	case JSON_NUMBER:
		mesh_buf_puts(b, v->str);
		return;
	case JSON_STRING:
		json_put_stringn(b, v->str, v->len);
		return;
	case JSON_ARRAY:
		mesh_buf_putc(b, '[');
		for (c = v->child; c; c = c->next) {
			if (!first)
				mesh_buf_putc(b, ',');
			first = false;
			wv__json(b, c, NULL, depth + 1);
		}
		mesh_buf_putc(b, ']');
		return;
	case JSON_OBJECT:
		mesh_buf_putc(b, '{');
		for (c = v->child; c; c = c->next) {
			if (!first)
				mesh_buf_putc(b, ',');
			first = false;
			json_put_string(b, c->key);
			mesh_buf_putc(b, ':');
			if (name && depth == 1 && !strcmp(c->key, "name")) {
				json_put_string(b, name);
				named = true;
				continue;
			}
			/* depth 0 is the object, 1 its metadata */
			wv__json(b, c, depth == 0 && !strcmp(c->key, "metadata") ? name : NULL, depth + 1);
		}
		if (name && depth == 1 && !named) {
			mesh_buf_puts(b, first ? "" : ",");
			mesh_buf_puts(b, "\"name\":");
			json_put_string(b, name);
		}
		mesh_buf_putc(b, '}');
		return;
	}
}

/* Judge request.object: fills r->allowed / r->msg / r->warnings. */
static int wv__judge_object(struct wv__req *r, const struct json_value *obj)
{
	static const char *const top_fields[] = { "apiVersion", "kind", "metadata", "spec", "status" };
	struct cfg_parse_result res;
	const char *av = json_get_str(obj, "apiVersion"), *kind = json_get_str(obj, "kind");
	const char *slash, *name, *ns, *gen;
	const struct json_value *md = json_get(obj, "metadata"), *f;
	char group[256];
	size_t gl, i, n_errors = 0;
	int k, rc = 0;
	bool meshd_kind, istio_group;

	memset(&res, 0, sizeof(res));
	name = wv__s(json_get_str(md, "name"));
	ns = json_get_str(md, "namespace");
	if (!ns || !*ns)
		ns = json_get_str(r->request, "namespace");
	ns = wv__s(ns);
	slash = av ? strchr(av, '/') : NULL;
	gl = slash ? (size_t)(slash - av) : 0;
	if (gl >= sizeof(group))
		gl = sizeof(group) - 1;
	memcpy(group, av ? av : "", gl);
	group[gl] = '\0';
	gl = strlen(group);
	istio_group = gl > 9 && strcmp(group + gl - 9, ".istio.io") == 0;
	k = kind ? cfg_kind_from_name(kind) : -1;
	meshd_kind = k >= 0 && k < CFG_ISTIO_KIND_COUNT && !strcmp(wv__s(cfg_kind_group((enum cfg_kind)k)), group);
	if (!istio_group || !kind || !av) {
		/* Go's GroupVersionKind.String() */
		mesh_buf_printf(&r->msg, "unrecognized type %s/%s, Kind=%s", group, slash ? slash + 1 : wv__s(av),
				wv__s(kind));
		wv__fail(r, WV__UNKNOWN_TYPE);
		goto out;
	}
	/* Istio's validateMetadata, before the kind's own validation */
	if (wv__annotation(obj, WEBHOOK_VALIDATE_ALWAYS_REJECT)) {
		mesh_buf_printf(&r->msg, "configuration is invalid: \"%s\" annotation found, rejecting",
				WEBHOOK_VALIDATE_ALWAYS_REJECT);
		/* the patcher's probe: not worth a log line each time (istiod hides it too) */
		if (!r->dry_run)
			wv__count(WV__FAILED, r->group, r->version, r->resource, WV__INVALID_CONFIG, 0);
		goto out;
	}
	gen = json_get_str(md, "generateName");
	if (!*name && gen && *gen && md && md->type == JSON_OBJECT) {
		/* named by the API server after admission: judge it under a
		 * name of that shape (istiod does not look at the name) */
		char tmp[300];
		struct mesh_buf text;

		snprintf(tmp, sizeof(tmp), "%.250sx", gen);
		mesh_buf_init(&text, WEBHOOK_VALIDATE_MAX_BODY);
		wv__json(&text, obj, tmp, 0);
		rc = text.err ? text.err : cfg_parse_buffer("admission", text.data, text.len, &res);
		mesh_buf_cleanup(&text);
	} else {
		rc = cfg_parse_buffer("admission", r->body + obj->start, obj->end - obj->start, &res);
	}
	if (rc < 0)
		goto out;
	for (i = 0; i < res.n_errors; i++)
		n_errors += !res.errors[i].warning;
	if (!meshd_kind && n_errors) {
		/* the parser knows Istio's other kinds (EnvoyFilter, ...) and only
		 * warns about them: an error here means Istio does not know it */
		mesh_buf_printf(&r->msg, "unrecognized type %s/%s, Kind=%s", group, slash + 1, kind);
		wv__fail(r, WV__UNKNOWN_TYPE);
		goto out;
	}
	if (n_errors) {
		size_t seen = 0;

		mesh_buf_puts(&r->msg, "configuration is invalid: ");
		if (n_errors > 1)
			mesh_buf_printf(&r->msg, "%zu errors occurred:\n\t", n_errors);
		for (i = 0; i < res.n_errors; i++) {
			if (res.errors[i].warning)
				continue;
			if (seen++)
				mesh_buf_puts(&r->msg, "\n\t");
			if (n_errors > 1)
				mesh_buf_puts(&r->msg, "* ");
			wv__finding(&r->msg, &res.errors[i]);
		}
		if (n_errors > 1)
			mesh_buf_putc(&r->msg, '\n');
		wv__fail(r, WV__INVALID_CONFIG);
		goto out;
	}
	/* istiod's checkFields */
	for (f = obj->child; f; f = f->next) {
		for (i = 0; i < sizeof(top_fields) / sizeof(top_fields[0]); i++)
			if (!strcmp(f->key, top_fields[i]))
				break;
		if (i == sizeof(top_fields) / sizeof(top_fields[0])) {
			mesh_buf_printf(&r->msg, "unknown field \"%s\" on %s resource %s/%s", f->key, kind, ns, name);
			wv__fail(r, WV__INVALID_CONFIG);
			goto out;
		}
	}
	for (i = 0; i < res.n_errors; i++)
		wv__warn(r, &res.errors[i]);
	r->allowed = true;
	wv__count(WV__PASSED, r->group, r->version, r->resource, NULL, 0);
out:
	cfg_parse_result_cleanup(&res);
	return rc;
}

static int wv__respond(struct wv__req *r, struct mesh_buf *out)
{
	if (r->msg.err)
		return r->msg.err;
	if (r->warnings.err)
		return r->warnings.err;
	mesh_buf_puts(out, "{\"apiVersion\":");
	json_put_string(out, r->api_version ? r->api_version : "admission.k8s.io/v1");
	mesh_buf_puts(out, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
	json_put_string(out, wv__s(r->uid));
	mesh_buf_printf(out, ",\"allowed\":%s", r->allowed ? "true" : "false");
	if (!r->allowed) {
		mesh_buf_puts(out, ",\"status\":{\"metadata\":{},\"message\":");
		json_put_string(out, r->msg.data ? r->msg.data : "");
		mesh_buf_putc(out, '}');
	}
	if (r->n_warnings) {
		mesh_buf_puts(out, ",\"warnings\":[");
		mesh_buf_append(out, r->warnings.data, r->warnings.len);
		mesh_buf_putc(out, ']');
	}
	mesh_buf_puts(out, "}}");
	return out->err;
}

int webhook_validate_handle(void *ud, const char *body, size_t len, struct mesh_buf *out)
{
	static const struct json_limits lim = {
		.max_depth = WV__MAX_DEPTH,
		.max_input = WEBHOOK_VALIDATE_MAX_BODY,
		.max_number = JSON_MAX_NUMBER,
		.allow_nul = false,
		.index = false,
	};
	struct wv__req r;
	struct arena *a = NULL;
	struct json_value *root = NULL;
	const struct json_value *res, *obj;
	const char *op;
	int rc;

	(void)ud;
	memset(&r, 0, sizeof(r));
	r.body = body;
	mesh_buf_init(&r.msg, WV__MSG_MAX);
	mesh_buf_init(&r.warnings, WV__MSG_MAX);
	if (!body || !len) {
		wv__count(WV__HTTP_ERROR, NULL, NULL, NULL, NULL, 400);
		mesh_buf_puts(out, "no body found");
		rc = out->err ? out->err : -EINVAL;
		goto out;
	}
	a = arena_new(len * 8 + 65536);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	rc = json_parse_arena(a, body, len, &lim, &root);
	if (rc == -ENOMEM)
		goto out;
	if (rc < 0 || root->type != JSON_OBJECT) {
		mesh_buf_printf(&r.msg, "could not decode body: %s", rc < 0 ? mesh_strerror(rc) : "not an object");
		rc = wv__respond(&r, out);
		goto out;
	}
	r.api_version = json_get_str(root, "apiVersion");
	r.request = json_get(root, "request");
	{
		/* another group/version or kind: istiod's deserializer does not
		 * know it (an absent one is read as a review); answered as v1 */
		const char *kind = json_get_str(root, "kind");

		if ((r.api_version && strcmp(r.api_version, "admission.k8s.io/v1") != 0 &&
		     strcmp(r.api_version, "admission.k8s.io/v1beta1") != 0) ||
		    (kind && strcmp(kind, "AdmissionReview") != 0)) {
			mesh_buf_printf(&r.msg,
					"could not decode body: no kind \"%.100s\" is registered for version \"%.100s\" "
					"(want AdmissionReview admission.k8s.io/v1 or v1beta1)",
					kind ? kind : "", r.api_version ? r.api_version : "");
			r.api_version = NULL;
			r.uid = json_get_str(r.request, "uid");
			rc = wv__respond(&r, out);
			goto out;
		}
	}
	if (!r.request || r.request->type != JSON_OBJECT) {
		mesh_buf_puts(&r.msg, "could not decode object: the AdmissionReview has no request");
		rc = wv__respond(&r, out);
		goto out;
	}
	r.uid = json_get_str(r.request, "uid");
	res = json_get(r.request, "resource");
	r.group = json_get_str(res, "group");
	r.version = json_get_str(res, "version");
	r.resource = json_get_str(res, "resource");
	r.dry_run = json_get_bool(r.request, "dryRun", false);
	op = wv__s(json_get_str(r.request, "operation"));
	if (strcmp(op, "CREATE") != 0 && strcmp(op, "UPDATE") != 0) {
		/* DELETE and CONNECT pass whatever the object (istiod) */
		if (!r.dry_run)
			wv__count(WV__FAILED, r.group, r.version, r.resource, WV__UNSUPPORTED_OPERATION, 0);
		r.allowed = true;
		rc = wv__respond(&r, out);
		goto out;
	}
	obj = json_get(r.request, "object");
	if (!obj || obj->type != JSON_OBJECT) {
		mesh_buf_printf(&r.msg, "cannot decode configuration: request.object is %s",
				obj ? "not a JSON object" : "missing");
		wv__fail(&r, WV__YAML_DECODE_ERROR);
		rc = wv__respond(&r, out);
		goto out;
	}
	rc = wv__judge_object(&r, obj);
	if (rc == 0)
		rc = wv__respond(&r, out);
out:
	mesh_buf_cleanup(&r.msg);
	mesh_buf_cleanup(&r.warnings);
	arena_free(a);
	return rc;
}
