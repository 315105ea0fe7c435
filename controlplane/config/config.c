/*
 * config.c - parse Istio configuration text into validated cfg_objects.
 *
 * For each YAML/JSON document: identify it (apiVersion, kind, metadata),
 * skip kinds meshd does not read, validate it against the structural
 * schema of its CRD (schema.c), decode it into the typed structs of
 * config.h and run Istio's semantic checks (decode.c).  A document that
 * fails yields cfg_errors and no object; the other documents of the same
 * input are unaffected.  The input is cut at document markers ("---" at
 * the start of a line) before libyaml sees it, so a syntax error in one
 * document does not hide the documents after it.
 *
 * Returns follow err.h (0 or negative codes).  See config.h for ownership.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* the node tree of one input; objects copy what they keep */
#define CFG__PARSE_ARENA_MAX (512u << 20)
/* one object's arena, and its canonical JSON */
#define CFG__OBJECT_ARENA_MAX (64u << 20)
#define CFG__JSON_MAX (16u << 20)
#define CFG__MAX_LIST_DEPTH 4

static const struct {
	const char *name, *group;
} cfg__kinds[CFG_KIND_COUNT] = {
	[CFG_VIRTUAL_SERVICE] = { "VirtualService", "networking.istio.io" },
	[CFG_DESTINATION_RULE] = { "DestinationRule", "networking.istio.io" },
	[CFG_SERVICE_ENTRY] = { "ServiceEntry", "networking.istio.io" },
	[CFG_WORKLOAD_ENTRY] = { "WorkloadEntry", "networking.istio.io" },
	[CFG_PEER_AUTHENTICATION] = { "PeerAuthentication", "security.istio.io" },
	[CFG_AUTHORIZATION_POLICY] = { "AuthorizationPolicy", "security.istio.io" },
	[CFG_GATEWAY] = { "Gateway", "networking.istio.io" },
	[CFG_SIDECAR] = { "Sidecar", "networking.istio.io" },
	[CFG_REQUEST_AUTHENTICATION] = { "RequestAuthentication", "security.istio.io" },
	[CFG_TELEMETRY] = { "Telemetry", "telemetry.istio.io" },
	[CFG_K8S_SERVICE] = { "Service", "" },
	[CFG_K8S_ENDPOINT_SLICE] = { "EndpointSlice", "discovery.k8s.io" },
	[CFG_K8S_POD] = { "Pod", "" },
	[CFG_K8S_NAMESPACE] = { "Namespace", "" },
	[CFG_K8S_SECRET] = { "Secret", "" },
};

const char *cfg_kind_name(enum cfg_kind k)
{
	return (unsigned)k < CFG_KIND_COUNT ? cfg__kinds[k].name : "Unknown";
}

int cfg_kind_from_name(const char *kind)
{
	int i;

	for (i = 0; kind && i < CFG_KIND_COUNT; i++)
		if (strcmp(cfg__kinds[i].name, kind) == 0)
			return i;
	return -1;
}

const char *cfg_kind_group(enum cfg_kind k)
{
	return (unsigned)k < CFG_KIND_COUNT ? cfg__kinds[k].group : NULL;
}

bool cfg_kind_not_implemented(enum cfg_kind k)
{
	/* Sidecar scopes sidecar workloads (model_sidecar_select);
	 * RequestAuthentication becomes the sidecar's jwt_authn filter;
	 * Gateway becomes the router's listeners (gen/gateway.c); Telemetry
	 * becomes the istio.stats filters, access logs and tracing of the
	 * workloads it selects (gen__telemetry): every kind meshd reads is
	 * served now */
	(void)k;
	return false;
}

/* ------------------------------------------------------------- objects */

bool cfg_object_older(const struct cfg_object *a, const struct cfg_object *b)
{
	int c;

	if (a->creation_time != b->creation_time)
		return a->creation_time < b->creation_time;
	c = strcmp(a->name, b->name);
	if (c != 0)
		return c < 0;
	return strcmp(a->ns, b->ns) < 0;
}

struct cfg_object *cfg_object_ref(struct cfg_object *o)
{
	if (o)
		mesh_refcount_ref(&o->refs);
	return o;
}

void cfg_object_unref(struct cfg_object *o)
{
	if (!o)
		return;
	if (mesh_refcount_unref(&o->refs))
		arena_free(o->arena); /* the object lives in its own arena */
}

/* ------------------------------------------------------------- errors */

void cfg_error_cleanup(struct cfg_error *e)
{
	if (!e)
		return;
	free(e->origin);
	free(e->api_version);
	free(e->ns);
	free(e->name);
	free(e->field);
	free(e->message);
	memset(e, 0, sizeof(*e));
}

static char *cfg__dup(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int cfg_error_copy(struct cfg_error *dst, const struct cfg_error *src)
{
	bool oom = false;

	memset(dst, 0, sizeof(*dst));
	dst->line = src->line;
	dst->column = src->column;
	dst->kind = src->kind;
	dst->warning = src->warning;
	dst->origin = cfg__dup(src->origin, &oom);
	dst->api_version = cfg__dup(src->api_version, &oom);
	dst->ns = cfg__dup(src->ns, &oom);
	dst->name = cfg__dup(src->name, &oom);
	dst->field = cfg__dup(src->field, &oom);
	dst->message = cfg__dup(src->message, &oom);
	if (oom) {
		cfg_error_cleanup(dst);
		return -ENOMEM;
	}
	return 0;
}

int cfg_error_format(const struct cfg_error *e, char *buf, size_t cap)
{
	struct mesh_buf b;
	size_t n;
	int rc;

	if (!cap)
		return -EINVAL;
	mesh_buf_init(&b, cap > 1 ? cap - 1 : 1);
	mesh_buf_puts(&b, e->origin ? e->origin : "-");
	if (e->line > 0) {
		mesh_buf_printf(&b, ":%d", e->line);
		if (e->column > 0)
			mesh_buf_printf(&b, ":%d", e->column);
	}
	mesh_buf_puts(&b, ": ");
	if (e->kind >= 0 && e->kind < CFG_KIND_COUNT) {
		mesh_buf_printf(&b, "%s %s/%s: ", cfg_kind_name((enum cfg_kind)e->kind), e->ns ? e->ns : "default",
				e->name ? e->name : "?");
	}
	if (e->field)
		mesh_buf_printf(&b, "%s: ", e->field);
	if (e->warning)
		mesh_buf_puts(&b, "warning: ");
	mesh_buf_puts(&b, e->message ? e->message : "error");
	rc = b.err;
	n = b.data ? b.len : 0;
	if (b.data)
		memcpy(buf, b.data, n);
	buf[n] = '\0';
	mesh_buf_cleanup(&b);
	if (rc < 0 && cap > 4) {
		/* truncated: say so */
		size_t len = strlen(buf);
		memcpy(buf + (len > cap - 4 ? cap - 4 : len), "...", 4);
		return (int)strlen(buf);
	}
	return (int)n;
}

size_t cfg__path_key(struct cfg__ectx *e, const char *key)
{
	size_t mark = e->plen, i;
	bool plain = key[0] != '\0';
	int w;

	for (i = 0; key[i] && plain; i++) {
		char c = key[i];
		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
	}
	if (plain)
		w = snprintf(e->path + e->plen, sizeof(e->path) - e->plen, "%s%s", e->plen ? "." : "", key);
	else
		w = snprintf(e->path + e->plen, sizeof(e->path) - e->plen, "[\"%s\"]", key);
	if (w > 0)
		e->plen = e->plen + (size_t)w < sizeof(e->path) ? e->plen + (size_t)w : sizeof(e->path) - 1;
	return mark;
}

size_t cfg__path_idx(struct cfg__ectx *e, size_t i)
{
	size_t mark = e->plen;
	int w = snprintf(e->path + e->plen, sizeof(e->path) - e->plen, "[%zu]", i);

	if (w > 0)
		e->plen = e->plen + (size_t)w < sizeof(e->path) ? e->plen + (size_t)w : sizeof(e->path) - 1;
	return mark;
}

void cfg__path_pop(struct cfg__ectx *e, size_t mark)
{
	e->plen = mark;
	e->path[mark] = '\0';
}

static int cfg__push_error(struct cfg_parse_result *r, const struct cfg_error *src_tmp)
{
	struct cfg_error *v = realloc(r->errors, (r->n_errors + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	r->errors = v;
	return cfg_error_copy(&r->errors[r->n_errors++], src_tmp) < 0 ? (r->n_errors--, -ENOMEM) : 0;
}

static void cfg__verror(struct cfg__ectx *e, int line, int col, bool with_field, bool warning, const char *fmt,
			va_list ap)
{
	struct cfg_error err;
	size_t *count = warning ? &e->n_warnings : &e->n_errors;
	char msg[512];

	if (*count >= CFG__MAX_ERRORS_PER_DOC)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	(*count)++;
	if (*count == CFG__MAX_ERRORS_PER_DOC)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (further %s in this document not shown)",
			 warning ? "warnings" : "errors");
	memset(&err, 0, sizeof(err));
	err.origin = (char *)e->origin;
	err.line = line;
	err.column = col;
	err.kind = e->kind;
	err.api_version = (char *)e->api_version;
	err.ns = e->kind >= 0 ? (char *)e->ns : NULL;
	err.name = e->kind >= 0 ? (char *)e->name : NULL;
	err.field = with_field && e->plen ? e->path : NULL;
	err.message = msg;
	err.warning = warning;
	if (!warning && (e->kind < 0 || !e->name))
		e->res->unidentified_errors = true;
	if (cfg__push_error(e->res, &err) < 0)
		e->oom = true;
}

void cfg__error(struct cfg__ectx *e, const struct cfg__node *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg__verror(e, at ? at->line : 0, at ? at->col : 0, true, false, fmt, ap);
	va_end(ap);
}

void cfg__warn(struct cfg__ectx *e, const struct cfg__node *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg__verror(e, at ? at->line : 0, at ? at->col : 0, true, true, fmt, ap);
	va_end(ap);
}

static void cfg__doc_error(struct cfg__ectx *e, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void cfg__doc_error(struct cfg__ectx *e, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg__verror(e, line, col, false, false, fmt, ap);
	va_end(ap);
}

static void cfg__doc_warn(struct cfg__ectx *e, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void cfg__doc_warn(struct cfg__ectx *e, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg__verror(e, line, col, false, true, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------- documents */

struct cfg__parse {
	struct cfg_parse_result *res;
	const char *origin;
	struct arena *tmp;
	int rc;
};

/* An RFC 3339 time as Kubernetes' metav1.Time reads it (Go's
 * time.Parse(time.RFC3339): "2024-01-02T03:04:05Z", an optional
 * fraction, "Z" or a numeric offset "+HH:MM", nothing after) into
 * seconds since the epoch in *out.  0, or -EINVAL when s is not such a
 * time (the API server refuses the object; so does meshd, since the
 * time decides precedence between objects). */
static int cfg__rfc3339_seconds(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int v[6], oh = 0, om = 0, i, k;
	int64_t days, off = 0;
	const char *p = s;

	/* fixed layout: digits where Go's layout has them, separators exact */
	for (i = 0; i < 19; i++) {
		bool digit = !(i == 4 || i == 7 || i == 10 || i == 13 || i == 16);
		if (!p[i] || (digit && !(p[i] >= '0' && p[i] <= '9')))
			return -EINVAL;
	}
	if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':')
		return -EINVAL;
	for (k = 0, i = 0; k < 6; k++) {
		int w = k == 0 ? 4 : 2, j;
		v[k] = 0;
		for (j = 0; j < w; j++)
			v[k] = v[k] * 10 + (p[i + j] - '0');
		i += w + 1;
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1] || v[3] > 23 || v[4] > 59 || v[5] > 59)
		return -EINVAL;
	if (v[1] == 2 && v[2] == 29 && !(v[0] % 4 == 0 && (v[0] % 100 != 0 || v[0] % 400 == 0)))
		return -EINVAL;
	p += 19;
	if (*p == '.') {
		if (!(p[1] >= '0' && p[1] <= '9'))
			return -EINVAL;
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if (*p == '+' || *p == '-') {
		if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' && p[4] >= '0' &&
		      p[4] <= '9' && p[5] >= '0' && p[5] <= '9' && !p[6]))
			return -EINVAL;
		oh = (p[1] - '0') * 10 + (p[2] - '0');
		om = (p[4] - '0') * 10 + (p[5] - '0');
		if (oh > 23 || om > 59)
			return -EINVAL;
		off = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
	} else if (!(p[0] == 'Z' && !p[1])) {
		return -EINVAL;
	}
	/* days from civil (Howard Hinnant's algorithm): no timegm(), no TZ */
	{
		int y = v[0], mo = v[1], d = v[2];
		int yy = y - (mo <= 2);
		int era = (yy >= 0 ? yy : yy - 399) / 400;
		int yoe = yy - era * 400;
		int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = (int64_t)era * 146097 + doe - 719468;
	}
	*out = days * 86400 + v[3] * 3600 + v[4] * 60 + v[5] - off;
	return 0;
}

static int cfg__add_object(struct cfg_parse_result *r, struct cfg_object *o)
{
	struct cfg_object **v = realloc(r->objects, (r->n_objects + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	r->objects = v;
	r->objects[r->n_objects++] = o;
	return 0;
}

/* Fields whose strings become names, hosts, header names or values, or
 * paths (Istio's DNS-name and header checks refuse control characters in
 * them; Envoy's HTTP_HEADER_VALUE rules on paths, rewrites and redirects
 * refuse NUL, CR and LF).  Free text (annotations, a direct response body,
 * inline JWKS) may hold newlines and is not listed. */
static bool cfg__ctl_field(const char *key)
{
	static const char *const keys[] = {
		"name", "namespace", "host", "hosts", "authority", "uri", "prefix", "exact", "suffix", "path",
		"paths", "notPaths", "methods", "notMethods", "hostname", "address", "addresses", "gateways",
		"subjectAltNames", "serviceAccount", "sni", "credentialName", "issuer", "audiences", "from",
		"set", "add", "remove", "headers", "withoutHeaders", "queryParams", "allowOrigins", "allowHeaders",
		"exposeHeaders", "rewrite", "values", "notValues", "principals", "requestPrincipals",
		"fromHeaders", "outputPayloadToHeader", "key", "subset",
	};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

/* The first control character of s[0..n) a field may not hold: NUL
 * anywhere (every string meshd keeps is C text, so a NUL would cut it
 * short silently), any other C0 control or DEL in a ctl field (TAB
 * allowed, as in Istio's header values).  -1 when none. */
static int cfg__bad_char(const char *s, size_t n, bool ctl)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || (ctl && ((c < 0x20 && c != '\t') || c == 0x7f)))
			return c;
	}
	return -1;
}

static void cfg__char_error(struct cfg__ectx *e, const struct cfg__node *n, int c, bool is_key)
{
	cfg__error(e, n, "%s contains the control character 0x%02x%s: not valid in a name, host, header or path",
		   is_key ? "key" : "value", (unsigned)c,
		   c == 0 ? " (NUL)" : c == '\r' ? " (CR)" : c == '\n' ? " (LF)" : "");
}

/* Walk the document: report every scalar that holds a character its field
 * may not (cfg__bad_char), at its field path.  key is the map key the
 * node sits under (a sequence passes its own key on to its items, so
 * hosts[2] is a "hosts" string).  Depth is bounded by the YAML reader
 * (CFG_MAX_DEPTH), the walk by the document's weight. */
static void cfg__check_chars(struct cfg__ectx *e, const struct cfg__node *n, const char *key)
{
	size_t i, mark;
	int c;

	if (!n || e->n_errors >= CFG__MAX_ERRORS_PER_DOC)
		return;
	switch (n->type) {
	case CFG__MAP:
		for (i = 0; i < n->n; i++) {
			const struct cfg__node *k = n->k[i];
			/* a header or query parameter name is a map key */
			bool ctl_key = key && (!strcmp(key, "headers") || !strcmp(key, "withoutHeaders") ||
					       !strcmp(key, "queryParams") || !strcmp(key, "set") ||
					       !strcmp(key, "add") || !strcmp(key, "labels") ||
					       !strcmp(key, "matchLabels"));

			mark = cfg__path_key(e, k->str ? k->str : "");
			if (k->str && (c = cfg__bad_char(k->str, k->len, ctl_key)) >= 0)
				cfg__char_error(e, k, c, true);
			else if (k->str)
				cfg__check_chars(e, n->v[i], k->str);
			cfg__path_pop(e, mark);
		}
		break;
	case CFG__SEQ:
		for (i = 0; i < n->n; i++) {
			mark = cfg__path_idx(e, i);
			cfg__check_chars(e, n->v[i], key);
			cfg__path_pop(e, mark);
		}
		break;
	case CFG__STR:
		if ((c = cfg__bad_char(n->str, n->len, key && cfg__ctl_field(key))) >= 0)
			cfg__char_error(e, n, c, false);
		break;
	default:
		break;
	}
}

/* RFC 1123 subdomain (Kubernetes object names): lower-case alphanumerics,
 * '-' and '.', starting and ending alphanumeric, at most 253 characters. */
static bool cfg__is_dns1123_subdomain(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!an && c != '-' && c != '.')
			return false;
		if ((i == 0 || i == n - 1) && !an)
			return false;
	}
	return true;
}

static int cfg__string_map(struct cfg__ectx *e, struct arena *a, const struct cfg__node *n, struct cfg_labels *out)
{
	size_t i;

	if (!n || n->type == CFG__NULL)
		return 0;
	if (n->type != CFG__MAP) {
		cfg__error(e, n, "must be a map of strings, not %s", n->type == CFG__SEQ ? "a list" : "a scalar");
		return -EINVAL;
	}
	out->v = arena_calloc(a, n->n ? n->n : 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (i = 0; i < n->n; i++) {
		const struct cfg__node *v = n->v[i];
		if (v->type != CFG__STR && v->type != CFG__NULL) {
			size_t mark = cfg__path_key(e, n->k[i]->str);
			cfg__error(e, v, "must be a string (quote it: \"%s\")", v->str ? v->str : "");
			cfg__path_pop(e, mark);
			continue;
		}
		out->v[out->n].key = arena_strdup(a, n->k[i]->str);
		out->v[out->n].value = arena_strdup(a, v->str ? v->str : "");
		if (!out->v[out->n].key || !out->v[out->n].value)
			return -ENOMEM;
		out->n++;
	}
	return 0;
}

static const struct cfg__crd *cfg__find_crd(const char *group, const char *kind, bool by_list)
{
	const struct cfg__crd *crds;
	size_t n, i;

	if (cfg__crds(&crds, &n) < 0)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *k = by_list ? crds[i].list_kind : crds[i].kind;
		if (k && strcmp(crds[i].group, group) == 0 && strcmp(k, kind) == 0)
			return &crds[i];
	}
	return NULL;
}

/* Istio kinds meshd does not implement (reported, never silently dropped),
 * and the Istio API groups removed from Istio (1.6 and before). */
static const struct {
	const char *group, *kind;
} cfg__other_istio_kinds[] = {
	{ "networking.istio.io", "EnvoyFilter" },
	{ "networking.istio.io", "WorkloadGroup" },
	{ "networking.istio.io", "ProxyConfig" },
	{ "extensions.istio.io", "WasmPlugin" },
	{ "extensions.istio.io", "TrafficExtension" },
	{ "install.istio.io", "IstioOperator" },
	{ "sailoperator.io", "Istio" },
	{ "sailoperator.io", "IstioCNI" },
};

static const char *const cfg__removed_istio_groups[] = {
	"config.istio.io", "rbac.istio.io", "authentication.istio.io", "policy.istio.io", NULL,
};

static bool cfg__is_istio_group(const char *group)
{
	size_t n = strlen(group);

	return strcmp(group, "istio.io") == 0 || (n > 9 && strcmp(group + n - 9, ".istio.io") == 0);
}

/* Levenshtein distance, capped: enough to suggest "VirtualService" for
 * "VirtualSerivce". */
static size_t cfg__edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la >= 64 || lb >= 64)
		return 64;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1, best = prev + cost;
			tmp = row[j];
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

/* The group of an Istio kind called exactly `kind`, and the closest kind
 * name to it (for "did you mean"). */
static void cfg__istio_kind_lookup(const char *kind, const char **group_of, const char **closest)
{
	size_t best = 4, d, i;
	int k;

	*group_of = NULL;
	*closest = NULL;
	for (k = 0; k < CFG_ISTIO_KIND_COUNT; k++) {
		if (strcmp(cfg__kinds[k].name, kind) == 0)
			*group_of = cfg__kinds[k].group;
		d = cfg__edit_distance(kind, cfg__kinds[k].name);
		if (d < best || strcasecmp(kind, cfg__kinds[k].name) == 0) {
			best = strcasecmp(kind, cfg__kinds[k].name) == 0 ? 0 : d;
			*closest = cfg__kinds[k].name;
		}
	}
	for (i = 0; i < sizeof(cfg__other_istio_kinds) / sizeof(cfg__other_istio_kinds[0]); i++) {
		if (strcmp(cfg__other_istio_kinds[i].kind, kind) == 0)
			*group_of = cfg__other_istio_kinds[i].group;
		d = cfg__edit_distance(kind, cfg__other_istio_kinds[i].kind);
		if (d < best) {
			best = d;
			*closest = cfg__other_istio_kinds[i].kind;
		}
	}
}

/* A document whose (group, kind) has no CRD compiled in.  Kinds of an
 * Istio API group are never dropped in silence: a kind Istio has but meshd
 * does not implement gets a warning per object, a kind Istio does not
 * have (a typo) is an error, as the API server would refuse it.  So are
 * the Gateway API kinds (a warning).  Returns true when the document was
 * reported, false when it is simply not ours (Deployment, ...). */
static bool cfg__foreign_kind(struct cfg__ectx *e, const struct cfg__node *root, const char *group, const char *kind)
{
	const struct cfg__node *meta = cfg__node_field(root, "metadata");
	const struct cfg__node *name_n = cfg__node_field(meta, "name"), *ns_n = cfg__node_field(meta, "namespace");
	const char *name = name_n && name_n->str ? name_n->str : "?";
	const char *ns = ns_n && ns_n->str ? ns_n->str : "default";
	const char *group_of, *closest;
	size_t i;

	if (strncmp(group, "gateway.networking.", 19) == 0 && strstr(group, "k8s.io")) {
		cfg__doc_warn(e, root->line, root->col,
			      "%s %s/%s (%s): not implemented by meshd (Gateway API kinds are not read yet): "
			      "ignored, not applied to any proxy", kind, ns, name, group);
		return true;
	}
	if (!cfg__is_istio_group(group) && strcmp(group, "sailoperator.io") != 0)
		return false;
	for (i = 0; cfg__removed_istio_groups[i]; i++) {
		if (strcmp(group, cfg__removed_istio_groups[i]) == 0) {
			cfg__doc_warn(e, root->line, root->col,
				      "%s %s/%s: API group %s was removed from Istio (1.6) and istiod ignores it: "
				      "ignored, not applied to any proxy", kind, ns, name, group);
			return true;
		}
	}
	for (i = 0; i < sizeof(cfg__other_istio_kinds) / sizeof(cfg__other_istio_kinds[0]); i++) {
		if (strcmp(cfg__other_istio_kinds[i].group, group) == 0 &&
		    strcmp(cfg__other_istio_kinds[i].kind, kind) == 0) {
			cfg__doc_warn(e, root->line, root->col,
				      "%s %s/%s: not implemented by meshd: ignored, not applied to any proxy", kind, ns,
				      name);
			return true;
		}
	}
	cfg__istio_kind_lookup(kind, &group_of, &closest);
	if (group_of)
		cfg__doc_error(e, root->line, root->col, "%s %s/%s: kind %s belongs to API group %s, not %s", kind, ns,
			       name, kind, group_of, group);
	else if (closest)
		cfg__doc_error(e, root->line, root->col,
			       "%s %s/%s: unknown kind \"%s\" in Istio API group %s (did you mean %s?)", kind, ns, name,
			       kind, group, closest);
	else
		cfg__doc_error(e, root->line, root->col, "%s %s/%s: unknown kind \"%s\" in Istio API group %s", kind,
			       ns, name, kind, group);
	return true;
}

/* The content hash of document root without spec.endpoints (struct
 * cfg_object shape_hash): root rendered as canonical JSON the way hash
 * is, through shallow copies of root and spec that leave that key out.
 * Sets *out (to the full document's hash when there is no such key, which
 * the caller set already).  Returns 0 or -ENOMEM. */
static int cfg__shape_hash(const struct cfg__node *root, uint64_t *out)
{
	const struct cfg__node *spec = NULL;
	struct cfg__node root2, spec2;
	struct cfg__node **rv = NULL, **sk = NULL, **sv = NULL;
	struct mesh_buf json;
	size_t i, j, si = 0, ei = 0;
	bool found = false;
	int rc = 0;

	mesh_buf_init(&json, CFG__JSON_MAX);
	for (i = 0; root->type == CFG__MAP && i < root->n && !spec; i++)
		if (root->k[i]->str && strcmp(root->k[i]->str, "spec") == 0 && root->v[i]->type == CFG__MAP) {
			spec = root->v[i];
			si = i;
		}
	for (i = 0; spec && i < spec->n && !found; i++)
		if (spec->k[i]->str && strcmp(spec->k[i]->str, "endpoints") == 0) {
			found = true;
			ei = i;
		}
	if (!found)
		goto out;
	rv = malloc(root->n * sizeof(*rv));
	sk = malloc(spec->n * sizeof(*sk));
	sv = malloc(spec->n * sizeof(*sv));
	if (!rv || !sk || !sv) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0, j = 0; i < spec->n; i++) {
		if (i == ei)
			continue;
		sk[j] = spec->k[i];
		sv[j++] = spec->v[i];
	}
	spec2 = *spec;
	spec2.k = sk;
	spec2.v = sv;
	spec2.n = j;
	memcpy(rv, root->v, root->n * sizeof(*rv));
	rv[si] = &spec2;
	root2 = *root;
	root2.v = rv;
	cfg__node_json(&json, &root2);
	if (json.err) {
		rc = json.err;
		goto out;
	}
	*out = mesh_hash(json.data ? json.data : "", json.len);
out:
	free(rv);
	free(sk);
	free(sv);
	mesh_buf_cleanup(&json);
	return rc;
}

/* What a fragment (a document without kind) most likely is, from its keys:
 * users paste the part of an object a document showed them. */
static const char *cfg__fragment_hint(const struct cfg__node *map)
{
	static const struct {
		const char *key, *hint;
	} hints[] = {
		{ "spec", "an object's spec without apiVersion and kind" },
		{ "destination", "part of a VirtualService route (spec.http[].route[])" },
		{ "route", "part of a VirtualService (spec.http[])" },
		{ "match", "part of a VirtualService (spec.http[])" },
		{ "retries", "part of a VirtualService (spec.http[])" },
		{ "timeout", "part of a VirtualService (spec.http[])" },
		{ "mirror", "part of a VirtualService (spec.http[])" },
		{ "fault", "part of a VirtualService (spec.http[])" },
		{ "outlierDetection", "part of a DestinationRule (spec.trafficPolicy)" },
		{ "connectionPool", "part of a DestinationRule (spec.trafficPolicy)" },
		{ "loadBalancer", "part of a DestinationRule (spec.trafficPolicy)" },
		{ "mtls", "part of a PeerAuthentication (spec)" },
		{ "portLevelMtls", "part of a PeerAuthentication (spec)" },
		{ "rules", "part of an AuthorizationPolicy (spec)" },
		{ "resources", "part of a Kubernetes container (resources)" },
	};
	size_t i, j;

	if (map->type == CFG__SEQ && map->n && map->v[0]->type == CFG__MAP)
		map = map->v[0];
	if (map->type != CFG__MAP)
		return NULL;
	for (j = 0; j < sizeof(hints) / sizeof(hints[0]); j++)
		for (i = 0; i < map->n; i++)
			if (map->k[i]->str && strcmp(map->k[i]->str, hints[j].key) == 0)
				return hints[j].hint;
	return NULL;
}

static int cfg__document(struct cfg__parse *p, const struct cfg__node *root, int list_depth);

/* kind: List (v1) or FooList of a CRD: every item is a document */
static int cfg__list(struct cfg__parse *p, const struct cfg__node *root, int list_depth)
{
	const struct cfg__node *items = cfg__node_field(root, "items");
	struct cfg__ectx e = { .res = p->res, .origin = p->origin, .kind = -1 };
	size_t i;
	int rc = 0;

	if (list_depth >= CFG__MAX_LIST_DEPTH) {
		cfg__doc_error(&e, root->line, root->col, "Lists nested too deeply");
		return 0;
	}
	if (!items)
		return 0;
	if (items->type != CFG__SEQ) {
		cfg__path_key(&e, "items");
		cfg__error(&e, items, "must be a list of objects");
		return 0;
	}
	for (i = 0; i < items->n && rc == 0; i++)
		rc = cfg__document(p, items->v[i], list_depth + 1);
	return rc;
}

/* o->json for a Secret: apiVersion, kind, metadata name and namespace,
 * type and the names of its data keys, never their values.  Returns 0 or
 * -ENOMEM. */
static int cfg__secret_json(struct cfg_object *o)
{
	const struct cfg_k8s_secret *s = &o->spec.secret;
	const char *keys[3] = { s->cert ? "cert" : NULL, s->key ? "key" : NULL, s->cacert ? "cacert" : NULL };
	struct mesh_buf b;
	size_t i;
	int rc = 0, first = 1;

	mesh_buf_init(&b, CFG__JSON_MAX);
	mesh_buf_puts(&b, "{\"apiVersion\":");
	json_put_string(&b, o->api_version);
	mesh_buf_puts(&b, ",\"kind\":\"Secret\",\"metadata\":{\"name\":");
	json_put_string(&b, o->name);
	mesh_buf_puts(&b, ",\"namespace\":");
	json_put_string(&b, o->ns);
	mesh_buf_puts(&b, "},\"type\":");
	json_put_string(&b, s->type ? s->type : "Opaque");
	mesh_buf_puts(&b, ",\"tls\":[");
	for (i = 0; i < 3; i++) {
		if (!keys[i])
			continue;
		if (!first)
			mesh_buf_putc(&b, ',');
		first = 0;
		json_put_string(&b, keys[i]);
	}
	mesh_buf_puts(&b, "]}");
	if (b.err || !(o->json = arena_strndup(o->arena, b.data ? b.data : "", b.len)))
		rc = -ENOMEM;
	mesh_buf_cleanup(&b);
	return rc;
}

static int cfg__document(struct cfg__parse *p, const struct cfg__node *root, int list_depth)
{
	struct cfg_parse_result *r = p->res;
	struct cfg__ectx e = { .res = r, .origin = p->origin, .kind = -1 };
	const struct cfg__node *kind_n, *api_n, *meta, *name_n, *ns_n, *v;
	const struct cfg__crd *crd;
	struct cfg_object *o = NULL;
	struct arena *a = NULL;
	char group[256];
	const char *slash, *version;
	struct mesh_buf json;
	size_t i, vi;
	int rc = 0;

	mesh_buf_init(&json, CFG__JSON_MAX);
	if (root->type == CFG__NULL)
		goto out; /* empty document */
	if (root->type != CFG__MAP) {
		r->n_documents++;
		const char *hint = cfg__fragment_hint(root);
		cfg__doc_error(&e, root->line, root->col,
			       "document is %s, expected a Kubernetes object with apiVersion and kind%s%s%s",
			       root->type == CFG__SEQ ? "a list" : "a scalar (plain text, not a YAML mapping)",
			       hint ? " (this looks like " : "", hint ? hint : "",
			       hint ? ", a fragment: write the whole object)" :
			       root->type == CFG__SEQ ? "" : "; is this file YAML?");
		goto out;
	}
	kind_n = cfg__node_field(root, "kind");
	api_n = cfg__node_field(root, "apiVersion");
	if (!kind_n || kind_n->type != CFG__STR || !kind_n->len) {
		r->n_documents++;
		const char *hint = cfg__fragment_hint(root);
		cfg__doc_error(&e, root->line, root->col,
			       "document has no kind: expected a Kubernetes object with apiVersion, kind, metadata "
			       "and spec%s%s%s", hint ? " (this looks like " : "", hint ? hint : "",
			       hint ? ", a fragment: write the whole object)" : "");
		goto out;
	}
	if (!api_n || api_n->type != CFG__STR || !api_n->len) {
		r->n_documents++;
		cfg__doc_error(&e, root->line, root->col, "%s has no apiVersion", kind_n->str);
		goto out;
	}
	slash = strchr(api_n->str, '/');
	if (slash) {
		size_t gl = (size_t)(slash - api_n->str);
		if (gl >= sizeof(group))
			gl = sizeof(group) - 1;
		memcpy(group, api_n->str, gl);
		group[gl] = '\0';
		version = slash + 1;
	} else {
		group[0] = '\0';
		version = api_n->str;
	}
	if (strcmp(kind_n->str, "List") == 0 && group[0] == '\0') {
		rc = cfg__list(p, root, list_depth);
		goto out;
	}
	if (cfg__find_crd(group, kind_n->str, true)) {
		rc = cfg__list(p, root, list_depth);
		goto out;
	}
	r->n_documents++;
	crd = cfg__find_crd(group, kind_n->str, false);
	if (!crd) {
		if (!cfg__foreign_kind(&e, root, group, kind_n->str))
			r->n_ignored++;
		goto out;
	}
	e.kind = cfg_kind_from_name(crd->kind);
	e.api_version = api_n->str;
	meta = cfg__node_field(root, "metadata");
	name_n = cfg__node_field(meta, "name");
	ns_n = cfg__node_field(meta, "namespace");
	e.name = name_n && name_n->type == CFG__STR ? name_n->str : NULL;
	e.ns = ns_n && ns_n->type == CFG__STR && ns_n->len ? ns_n->str : "default";
	if (e.kind == CFG_K8S_NAMESPACE)
		e.ns = ""; /* cluster-scoped */
	if (e.kind < 0) {
		r->n_ignored++;
		goto out;
	}
	for (vi = 0; vi < crd->n_versions; vi++)
		if (strcmp(crd->versions[vi], version) == 0 && crd->served[vi])
			break;
	if (vi == crd->n_versions) {
		char list[128];
		size_t len = 0;
		for (i = 0; i < crd->n_versions && len < sizeof(list); i++) {
			int w = snprintf(list + len, sizeof(list) - len, "%s%s/%s", i ? ", " : "", crd->group,
					 crd->versions[i]);
			if (w < 0)
				break;
			len += (size_t)w;
		}
		cfg__path_key(&e, "apiVersion");
		cfg__error(&e, api_n, "%s is not served for %s; use %s", api_n->str, crd->kind, list);
		goto out;
	}

	/* metadata */
	{
		size_t mark = cfg__path_key(&e, "metadata");
		if (!meta) {
			cfg__error(&e, root, "metadata with a name is required");
		} else if (meta->type != CFG__MAP) {
			cfg__error(&e, meta, "must be an object");
		} else {
			if (!name_n) {
				size_t m2 = cfg__path_key(&e, "name");
				cfg__error(&e, meta, "a name is required");
				cfg__path_pop(&e, m2);
			} else if (name_n->type != CFG__STR || !cfg__is_dns1123_subdomain(name_n->str)) {
				size_t m2 = cfg__path_key(&e, "name");
				cfg__error(&e, name_n,
					   "\"%s\" is not a valid name: lower-case letters, digits, '-' and '.', "
					   "starting and ending with a letter or digit, at most 253 characters",
					   name_n->str ? name_n->str : "");
				cfg__path_pop(&e, m2);
			}
			if (ns_n && (ns_n->type != CFG__STR || !cfg__is_dns1123_label(ns_n->str))) {
				size_t m2 = cfg__path_key(&e, "namespace");
				cfg__error(&e, ns_n,
					   "\"%s\" is not a valid namespace: lower-case letters, digits and '-', "
					   "at most 63 characters", ns_n->str ? ns_n->str : "");
				cfg__path_pop(&e, m2);
			}
		}
		cfg__path_pop(&e, mark);
	}
	cfg__check_chars(&e, root, NULL);
	if (e.n_errors)
		goto out;
	cfg__schema_validate(&e, crd->schema[vi], root);
	if (e.n_errors || e.oom)
		goto out;

	/* the object */
	a = arena_new(CFG__OBJECT_ARENA_MAX);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	o = arena_alloc(a, sizeof(*o));
	if (!o) {
		rc = -ENOMEM;
		goto out;
	}
	o->arena = a;
	mesh_refcount_init(&o->refs, 1);
	o->kind = (enum cfg_kind)e.kind;
	o->api_version = arena_strdup(a, api_n->str);
	o->name = arena_strdup(a, e.name);
	o->ns = arena_strdup(a, e.ns);
	o->origin = arena_strdup(a, p->origin);
	o->line = root->line;
	o->col = root->col;
	o->generation = -1;
	if (!o->api_version || !o->name || !o->ns || !o->origin) {
		rc = -ENOMEM;
		goto out;
	}
	v = cfg__node_field(meta, "resourceVersion");
	if (v && v->str && !(o->resource_version = arena_strdup(a, v->str))) {
		rc = -ENOMEM;
		goto out;
	}
	v = cfg__node_field(meta, "generation");
	if (v && v->type == CFG__INT)
		o->generation = v->i;
	v = cfg__node_field(meta, "creationTimestamp");
	if (v && v->str && cfg__rfc3339_seconds(v->str, &o->creation_time) < 0) {
		/* as the API server: metav1.Time is RFC 3339 or the object is refused */
		size_t mark = cfg__path_key(&e, "metadata");
		size_t m2 = cfg__path_key(&e, "creationTimestamp");
		cfg__error(&e, v, "invalid creationTimestamp \"%s\": not an RFC 3339 time (2006-01-02T15:04:05Z)",
			   v->str);
		cfg__path_pop(&e, m2);
		cfg__path_pop(&e, mark);
	}
	{
		size_t mark = cfg__path_key(&e, "metadata");
		size_t m2 = cfg__path_key(&e, "labels");
		if (cfg__string_map(&e, a, cfg__node_get(meta, "labels"), &o->labels) == -ENOMEM)
			e.oom = true;
		cfg__path_pop(&e, m2);
		m2 = cfg__path_key(&e, "annotations");
		if (cfg__string_map(&e, a, cfg__node_get(meta, "annotations"), &o->annotations) == -ENOMEM)
			e.oom = true;
		cfg__path_pop(&e, mark);
	}
	cfg__decode(&e, o, root);
	if (e.oom) {
		rc = -ENOMEM;
		goto out;
	}
	if (e.n_errors)
		goto out;
	if (cfg_kind_not_implemented(o->kind))
		cfg__doc_warn(&e, root->line, root->col,
			      "not implemented yet: %s is validated and listed, but no proxy receives it",
			      cfg_kind_name(o->kind));
	/* canonical JSON of the document: the same content hashes the same wherever it is written */
	cfg__node_json(&json, root);
	if (json.err) {
		cfg__doc_error(&e, root->line, root->col, "object is larger than %u bytes as JSON", CFG__JSON_MAX);
		goto out;
	}
	o->json = arena_strndup(a, json.data ? json.data : "", json.len);
	if (!o->json) {
		rc = -ENOMEM;
		goto out;
	}
	o->hash = mesh_hash(o->json, json.len);
	o->shape_hash = o->hash;
	if (o->kind == CFG_SERVICE_ENTRY) {
		rc = cfg__shape_hash(root, &o->shape_hash);
		if (rc < 0)
			goto out;
	}
	if (o->kind == CFG_K8S_SECRET) {
		/* Key material stays out of every view of the object (the
		 * debug endpoints, meshctl): the hash above still sees a change. */
		rc = cfg__secret_json(o);
		if (rc < 0)
			goto out;
	}
	rc = cfg__add_object(r, o);
	if (rc == 0)
		o = NULL; /* taken */
out:
	if (o)
		arena_free(o->arena);
	else if (a && rc < 0)
		arena_free(a);
	mesh_buf_cleanup(&json);
	if (rc == 0 && e.oom)
		rc = -ENOMEM;
	return rc;
}

static int cfg__doc_cb(void *ctx, struct cfg__node *root)
{
	struct cfg__parse *p = ctx;

	return cfg__document(p, root, 0);
}

/* Is the line at s a document start marker ("---" then blank or end)? */
static bool cfg__is_doc_marker(const char *s, const char *end)
{
	if (end - s < 3 || memcmp(s, "---", 3) != 0)
		return false;
	return end - s == 3 || s[3] == ' ' || s[3] == '\t' || s[3] == '\r' || s[3] == '\n';
}

static int cfg__chunk(struct cfg__parse *p, const char *data, size_t len, int line0)
{
	struct cfg__yaml_error err = { { 0 }, 0, 0 };
	int rc = cfg__yaml_parse(p->tmp, data, len, line0, cfg__doc_cb, p, &err);

	if (rc == -MESH_EPARSE || rc == -MESH_ETOOBIG) {
		struct cfg__ectx e = { .res = p->res, .origin = p->origin, .kind = -1 };
		p->res->n_documents++;
		cfg__doc_error(&e, err.line, err.col, "%s", err.msg[0] ? err.msg : mesh_strerror(rc));
		rc = e.oom ? -ENOMEM : 0;
	}
	return rc;
}

int cfg_parse_buffer(const char *origin, const char *data, size_t len, struct cfg_parse_result *out)
{
	struct cfg__parse p = { .res = out, .origin = origin ? origin : "-" };
	const struct cfg__crd *crds;
	size_t ncrds, start = 0, i;
	int line = 0, start_line = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len > CFG_MAX_FILE_BYTES) {
		struct cfg__ectx e = { .res = out, .origin = p.origin, .kind = -1 };
		cfg__doc_error(&e, 0, 0, "file is %zu bytes, larger than the limit of %u bytes", len,
			       CFG_MAX_FILE_BYTES);
		return e.oom ? -ENOMEM : 0;
	}
	rc = cfg__crds(&crds, &ncrds);
	if (rc < 0)
		return rc;
	p.tmp = arena_new(CFG__PARSE_ARENA_MAX);
	if (!p.tmp)
		return -ENOMEM;
	/* cut at document markers; each piece is parsed on its own */
	for (i = 0; i <= len && rc == 0; line++) {
		size_t eol = i;
		while (eol < len && data[eol] != '\n')
			eol++;
		if (i > start && i < len && cfg__is_doc_marker(data + i, data + len)) {
			rc = cfg__chunk(&p, data + start, i - start, start_line);
			arena_free(p.tmp);
			p.tmp = arena_new(CFG__PARSE_ARENA_MAX);
			if (!p.tmp)
				rc = -ENOMEM;
			start = i;
			start_line = line;
		}
		i = eol + 1;
	}
	if (rc == 0 && start < len)
		rc = cfg__chunk(&p, data + start, len - start, start_line);
	arena_free(p.tmp);
	return rc;
}

int cfg_parse_file(const char *path, struct cfg_parse_result *out)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = mesh_read_file(path, CFG_MAX_FILE_BYTES, &data, &len);
	if (rc == -MESH_ETOOBIG) {
		struct cfg__ectx e = { .res = out, .origin = path, .kind = -1 };
		cfg__doc_error(&e, 0, 0, "file is %lld bytes, larger than the limit of %u bytes",
			       (long long)len, CFG_MAX_FILE_BYTES);
		rc = e.oom ? -ENOMEM : 0;
		goto out;
	}
	if (rc < 0 && rc != -ENOMEM) {
		struct cfg__ectx e = { .res = out, .origin = path, .kind = -1 };
		cfg__doc_error(&e, 0, 0, "cannot read: %s", strerror(-rc));
		rc = e.oom ? -ENOMEM : 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = cfg_parse_buffer(path, data, len, out);
out:
	free(data);
	return rc;
}

void cfg_parse_result_cleanup(struct cfg_parse_result *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_objects; i++)
		cfg_object_unref(r->objects[i]);
	free(r->objects);
	for (i = 0; i < r->n_errors; i++)
		cfg_error_cleanup(&r->errors[i]);
	free(r->errors);
	memset(r, 0, sizeof(*r));
}
