/*
 * meshcfg.c - Istio's MeshConfig: parse, defaults, validation, JSON view.
 *
 * The YAML goes through the config folder's node tree (node.c: line
 * numbers, caps on size and depth), then one pass over the top-level keys
 * fills a mesh_config that started as Istio's defaults
 * (pkg/config/mesh/mesh.go DefaultMeshConfig).  Every error is collected
 * before the verdict, so one edit shows all its mistakes.  The result owns
 * one arena; it is immutable once returned and shared by reference (the
 * push stage and every model built with it).
 */
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/duration.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESHCFG__ARENA_MAX (4u << 20)
#define MESHCFG__LIST_MAX 64          /* entries of one exportTo list */

/* MeshConfig fields (istio/api mesh/v1alpha1/config.proto) meshd accepts
 * without acting on them: named once in a warning. */
static const char *const meshcfg__known_ignored[] = {
	"proxyListenPort", "proxyInboundListenPort", "proxyHttpPort", "tcpKeepalive", "ingressClass",
	"ingressService", "ingressControllerMode", "ingressSelector", "enableEnvoyAccessLogService",
	"disableEnvoyListenerLog", "inboundTrafficPolicy", "configSources", "trustDomainAliases", "caCertificates",
	"dnsRefreshRate", "inboundClusterStatName", "outboundClusterStatName", "certificates", "serviceSettings",
	"enablePrometheusMerge", "verifyCertificateAtClient", "ca",
	"discoverySelectors", "defaultHttpRetryPolicy", "meshMTLS", "tlsDefaults",
	"serviceScopeConfigs", "thriftConfig", "sdsUdsPath", "sdsRefreshDelay",
	"mixerCheckServer", "mixerReportServer", "disablePolicyChecks", "policyCheckFailOpen",
	"enableClientSidePolicyCheck", "meshNetworks", "network",
};

struct meshcfg__ctx {
	struct mesh_config *mc;
	const char *source;
	struct mesh_buf err;
	size_t n_errors;
	struct mesh_buf ignored;
	size_t n_docs;
	const struct cfg__node *root;
	int line0;
	const struct cfg__node *ext_providers;   /* extensionProviders, resolved after all fields */
	const struct cfg__node *default_providers; /* defaultProviders */
};

static void meshcfg__error(struct meshcfg__ctx *c, const struct cfg__node *at, const char *field, const char *fmt,
			   ...) __attribute__((format(printf, 4, 5)));

/* "SOURCE:LINE: field PATH: message" */
static void meshcfg__error(struct meshcfg__ctx *c, const struct cfg__node *at, const char *field, const char *fmt,
			   ...)
{
	va_list ap;

	c->n_errors++;
	mesh_buf_printf(&c->err, "%s:%d: ", c->source, at ? at->line : 0);
	if (field)
		mesh_buf_printf(&c->err, "field %s: ", field);
	va_start(ap, fmt);
	mesh_buf_vprintf(&c->err, fmt, ap);
	va_end(ap);
	mesh_buf_putc(&c->err, '\n');
}

static void meshcfg__ignore(struct meshcfg__ctx *c, const char *field)
{
	if (c->ignored.len)
		mesh_buf_puts(&c->ignored, ", ");
	mesh_buf_puts(&c->ignored, field);
}

static bool meshcfg__str(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field, const char **out)
{
	if (v->type == CFG__NULL)
		return true; /* explicit null: the default stays */
	/* Istio reads the mesh config as YAML -> JSON -> protobuf JSON, where
	 * a number or a boolean in a string field is an error */
	if (v->type == CFG__INT || v->type == CFG__FLOAT || v->type == CFG__BOOL) {
		meshcfg__error(c, v, field, "must be a string, not %s (quote it: \"%s\")",
			       v->type == CFG__BOOL ? "a boolean" : "a number", v->str);
		return false;
	}
	if (v->type != CFG__STR) {
		meshcfg__error(c, v, field, "must be a string");
		return false;
	}
	*out = arena_strdup(c->mc->arena, v->str);
	return *out != NULL;
}

static void meshcfg__bool(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field, bool *out)
{
	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__BOOL)
		meshcfg__error(c, v, field, "must be true or false, not \"%s\"", v->str ? v->str : "a collection");
	else
		*out = v->b;
}

/* One of names (upper-case enum names as in the proto); *out its index. */
static void meshcfg__enum(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field,
			  const char *const *names, size_t n, int *out)
{
	size_t i;

	if (v->type == CFG__NULL)
		return;
	for (i = 0; v->type == CFG__STR && i < n; i++) {
		if (strcmp(v->str, names[i]) == 0) {
			*out = (int)i;
			return;
		}
	}
	meshcfg__error(c, v, field, "\"%s\" is not one of %s%s%s", v->str ? v->str : "(collection)", names[0],
		       n > 1 ? " | " : "", n > 1 ? names[1] : "");
}

/* exportTo defaults: "*", "." or a namespace name (Istio's
 * ValidateMeshConfig: validateExportTo). */
static void meshcfg__export_to(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field,
			       struct cfg_strs *out)
{
	size_t i;

	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__SEQ) {
		meshcfg__error(c, v, field, "must be a list of namespaces (\"*\", \".\" or a name)");
		return;
	}
	if (v->n > MESHCFG__LIST_MAX) {
		meshcfg__error(c, v, field, "more than %u entries", MESHCFG__LIST_MAX);
		return;
	}
	out->v = arena_calloc(c->mc->arena, v->n ? v->n : 1, sizeof(char *));
	out->n = 0;
	if (!out->v)
		return;
	for (i = 0; i < v->n; i++) {
		const struct cfg__node *x = v->v[i];

		if (x->type != CFG__STR || (strcmp(x->str, "*") && strcmp(x->str, ".") && strcmp(x->str, "~") &&
					    !cfg__is_dns1123_label(x->str))) {
			meshcfg__error(c, x, field, "\"%s\" is not \"*\", \".\", \"~\" or a namespace name",
				       x->str ? x->str : "(collection)");
			continue;
		}
		out->v[out->n++] = arena_strdup(c->mc->arena, x->str);
	}
}

static void meshcfg__duration(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field, int64_t *out)
{
	int64_t ns;

	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__STR || mesh_duration_parse(v->str, &ns) < 0) {
		meshcfg__error(c, v, field, "\"%s\" is not a duration (examples: 1s, 250ms)",
			       v->str ? v->str : "(collection)");
		return;
	}
	/* Istio's ValidateConnectTimeout: at least 1ms, whole milliseconds */
	if (ns < 1000000 || ns % 1000000) {
		meshcfg__error(c, v, field, "\"%s\" must be at least 1ms and a whole number of milliseconds", v->str);
		return;
	}
	*out = ns;
}

/* A map kept as JSON for later consumers (locality LB, proxy defaults). */
static void meshcfg__raw_map(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field, const char **out)
{
	struct mesh_buf b;

	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__MAP) {
		meshcfg__error(c, v, field, "must be a map");
		return;
	}
	mesh_buf_init(&b, MESHCFG_MAX_BYTES);
	cfg__node_json(&b, v);
	if (!b.err && b.data)
		*out = arena_strndup(c->mc->arena, b.data, b.len);
	mesh_buf_cleanup(&b);
}

static bool meshcfg__is_known_ignored(const char *k)
{
	size_t i;

	for (i = 0; i < sizeof(meshcfg__known_ignored) / sizeof(meshcfg__known_ignored[0]); i++)
		if (strcmp(k, meshcfg__known_ignored[i]) == 0)
			return true;
	return false;
}

static void meshcfg__outbound(struct meshcfg__ctx *c, const struct cfg__node *v)
{
	static const char *const modes[] = { "ALLOW_ANY", "REGISTRY_ONLY" };
	size_t i;

	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__MAP) {
		meshcfg__error(c, v, "outboundTrafficPolicy", "must be a map");
		return;
	}
	for (i = 0; i < v->n; i++) {
		if (strcmp(v->k[i]->str, "mode") == 0) {
			int m = (int)c->mc->outbound;
			/* the proto's names, in our enum's order */
			meshcfg__enum(c, v->v[i], "outboundTrafficPolicy.mode", modes, 2, &m);
			c->mc->outbound = (enum meshcfg_outbound)m;
		} else {
			meshcfg__error(c, v->k[i], "outboundTrafficPolicy", "unknown field \"%s\"", v->k[i]->str);
		}
	}
}

/* The names of enum meshcfg_path_norm, in its order. */
static const char *const meshcfg__path_norms[] = { "DEFAULT", "NONE", "BASE", "MERGE_SLASHES",
						  "DECODE_AND_MERGE_SLASHES" };

/* pathNormalization: {normalization: NAME} (Istio's ProxyPathNormalization). */
static void meshcfg__path_norm(struct meshcfg__ctx *c, const struct cfg__node *v)
{
	size_t i;

	if (v->type == CFG__NULL)
		return;
	if (v->type != CFG__MAP) {
		meshcfg__error(c, v, "pathNormalization", "must be a map");
		return;
	}
	for (i = 0; i < v->n; i++) {
		if (strcmp(v->k[i]->str, "normalization") == 0) {
			int m = (int)c->mc->path_norm;

			meshcfg__enum(c, v->v[i], "pathNormalization.normalization", meshcfg__path_norms, 5, &m);
			c->mc->path_norm = (enum meshcfg_path_norm)m;
		} else {
			meshcfg__error(c, v->k[i], "pathNormalization", "unknown field \"%s\"", v->k[i]->str);
		}
	}
}

/* A field of ProxyConfig written either way (protobuf JSON accepts both). */
static const struct cfg__node *meshcfg__field2(const struct cfg__node *m, const char *snake, const char *camel)
{
	const struct cfg__node *f = cfg__node_field(m, snake);

	return f ? f : cfg__node_field(m, camel);
}

/* defaultConfig.tracing's custom_tags (tag: {literal: {value}} |
 * {environment: {name, defaultValue}} | {header: {name, defaultValue}})
 * and max_path_tag_length (issue 14). */
static void meshcfg__proxy_tracing(struct meshcfg__ctx *c, const struct cfg__node *t)
{
	struct mesh_config *mc = c->mc;
	const struct cfg__node *ct = meshcfg__field2(t, "custom_tags", "customTags"), *f;
	size_t j;

	f = meshcfg__field2(t, "max_path_tag_length", "maxPathTagLength");
	if (f && f->type != CFG__NULL) {
		if (f->type != CFG__INT || f->i < 1 || f->i > 65535)
			meshcfg__error(c, f, "defaultConfig.tracing.max_path_tag_length", "must be a number from 1 to 65535");
		else
			mc->trace_max_path_tag_len = (uint32_t)f->i;
	}
	if (!ct || ct->type == CFG__NULL)
		return;
	if (ct->type != CFG__MAP || ct->n > MESHCFG__LIST_MAX) {
		meshcfg__error(c, ct, "defaultConfig.tracing.custom_tags", "must be a map of at most %d tags",
			       MESHCFG__LIST_MAX);
		return;
	}
	if (!ct->n || !(mc->trace_custom_tags = arena_calloc(mc->arena, ct->n, sizeof(*mc->trace_custom_tags))))
		return;
	for (j = 0; j < ct->n; j++) {
		const struct cfg__node *e = ct->v[j], *lit, *env, *hdr, *src, *x;
		struct cfg_tel_custom_tag *g = &mc->trace_custom_tags[mc->n_trace_custom_tags];

		lit = e->type == CFG__MAP ? cfg__node_field(e, "literal") : NULL;
		env = e->type == CFG__MAP ? cfg__node_field(e, "environment") : NULL;
		hdr = e->type == CFG__MAP ? cfg__node_field(e, "header") : NULL;
		if ((lit ? 1 : 0) + (env ? 1 : 0) + (hdr ? 1 : 0) != 1) {
			meshcfg__error(c, e, "defaultConfig.tracing.custom_tags",
				       "tag %s: exactly one of literal, environment or header must be set", ct->k[j]->str);
			continue;
		}
		src = lit ? lit : env ? env : hdr;
		g->name = arena_strdup(mc->arena, ct->k[j]->str);
		g->kind = lit ? CFG_TEL_TAG_LITERAL : env ? CFG_TEL_TAG_ENVIRONMENT : CFG_TEL_TAG_HEADER;
		x = src->type == CFG__MAP ? cfg__node_field(src, lit ? "value" : "name") : NULL;
		g->value = arena_strdup(mc->arena, x && x->type == CFG__STR ? x->str : "");
		x = src->type == CFG__MAP && !lit ? meshcfg__field2(src, "default_value", "defaultValue") : NULL;
		g->default_value = x && x->type == CFG__STR ? arena_strdup(mc->arena, x->str) : NULL;
		if (!lit && (!g->value || !g->value[0])) {
			meshcfg__error(c, src, "defaultConfig.tracing.custom_tags", "tag %s: name must be set",
				       ct->k[j]->str);
			continue;
		}
		mc->n_trace_custom_tags++;
	}
}

static void meshcfg__default_config(struct meshcfg__ctx *c, const struct cfg__node *v)
{
	const struct cfg__node *h;

	meshcfg__raw_map(c, v, "defaultConfig", &c->mc->default_config_json);
	if (v->type != CFG__MAP)
		return;
	h = cfg__node_field(v, "holdApplicationUntilProxyStarts");
	if (h)
		meshcfg__bool(c, h, "defaultConfig.holdApplicationUntilProxyStarts",
			      &c->mc->hold_application_until_proxy_starts);
	/* ProxyConfig.tracing.sampling: percent of requests a sidecar starts
	 * a trace for (Istio's default 1; pilot's tracing.go reads it when no
	 * Telemetry overrides it) */
	h = cfg__node_field(v, "tracing");
	if (h && h->type == CFG__MAP)
		meshcfg__proxy_tracing(c, h);
	if (h && h->type == CFG__MAP && (h = cfg__node_field(h, "sampling")) && h->type != CFG__NULL) {
		if ((h->type != CFG__INT && h->type != CFG__FLOAT) || h->f < 0 || h->f > 100)
			meshcfg__error(c, h, "defaultConfig.tracing.sampling", "must be a number from 0 to 100");
		else
			c->mc->trace_sampling = h->f;
	}
}

/* "http.headers" / "grpc.initialMetadata": [{name, value | envName}]
 * into p (Istio's MeshConfig.ExtensionProvider.HttpHeader; envName is
 * read from meshd's environment, as istiod reads its own). */
static void meshcfg__headers(struct meshcfg__ctx *c, const struct cfg__node *v, const char *field,
			     struct meshcfg_trace_provider *p)
{
	struct arena *a = c->mc->arena;
	size_t i;

	if (!v || v->type == CFG__NULL)
		return;
	if (v->type != CFG__SEQ) {
		meshcfg__error(c, v, field, "must be a list of {name, value}");
		return;
	}
	if (v->n > MESHCFG__LIST_MAX) {
		meshcfg__error(c, v, field, "more than %d headers", MESHCFG__LIST_MAX);
		return;
	}
	if (v->n && !(p->headers = arena_calloc(a, v->n, sizeof(*p->headers))))
		return;
	for (i = 0; i < v->n; i++) {
		const struct cfg__node *e = v->v[i], *n, *x;
		const char *val = "";

		if (e->type != CFG__MAP || !(n = cfg__node_field(e, "name")) || n->type != CFG__STR || !n->str[0]) {
			meshcfg__error(c, e, field, "entry %zu needs a name", i);
			continue;
		}
		if ((x = cfg__node_field(e, "value")) && x->type == CFG__STR)
			val = x->str;
		else if ((x = cfg__node_field(e, "envName")) && x->type == CFG__STR)
			val = getenv(x->str) ? getenv(x->str) : "";
		p->headers[p->n_headers].name = arena_strdup(a, n->str);
		p->headers[p->n_headers].value = arena_strdup(a, val);
		p->n_headers++;
	}
}

/* A tracing provider of kind key ("zipkin" / "opentelemetry") named name
 * from its map x into c->mc->trace_providers. */
static void meshcfg__trace_provider_add(struct meshcfg__ctx *c, const char *name, const char *key,
					const struct cfg__node *x)
{
	struct mesh_config *mc = c->mc;
	struct meshcfg_trace_provider *v, *p;
	const struct cfg__node *f, *h;
	char field[96];

	if (x->type != CFG__MAP) {
		snprintf(field, sizeof(field), "extensionProviders.%s", key);
		meshcfg__error(c, x, field, "must be a map");
		return;
	}
	v = arena_calloc(mc->arena, mc->n_trace_providers + 1, sizeof(*v));
	if (!v)
		return;
	if (mc->n_trace_providers)
		memcpy(v, mc->trace_providers, mc->n_trace_providers * sizeof(*v));
	mc->trace_providers = v;
	p = &v[mc->n_trace_providers];
	p->name = arena_strdup(mc->arena, name);
	p->kind = strcmp(key, "zipkin") == 0 ? MESHCFG_TRACER_ZIPKIN : MESHCFG_TRACER_OTEL;
	f = cfg__node_field(x, "service");
	if (!f || f->type != CFG__STR || !f->str[0]) {
		snprintf(field, sizeof(field), "extensionProviders.%s.service", key);
		meshcfg__error(c, x, field, "is required (a service host name)");
		return;
	}
	p->service = arena_strdup(mc->arena, f->str);
	f = cfg__node_field(x, "port");
	if (!f || f->type != CFG__INT || f->i < 1 || f->i > 65535) {
		snprintf(field, sizeof(field), "extensionProviders.%s.port", key);
		meshcfg__error(c, f ? f : x, field, "must be a port number 1-65535");
		return;
	}
	p->port = (uint32_t)f->i;
	f = cfg__node_field(x, "maxTagLength");
	if (f && f->type == CFG__INT && f->i > 0 && f->i < 65536)
		p->max_tag_len = (uint32_t)f->i;
	if (p->kind == MESHCFG_TRACER_ZIPKIN) {
		if ((f = cfg__node_field(x, "path")) && f->type == CFG__STR)
			p->http_path = arena_strdup(mc->arena, f->str);
	} else if ((h = cfg__node_field(x, "http")) && h->type == CFG__MAP) {
		p->http = true;
		p->http_path = "";
		if ((f = cfg__node_field(h, "path")) && f->type == CFG__STR)
			p->http_path = arena_strdup(mc->arena, f->str);
		if ((f = cfg__node_field(h, "timeout")))
			meshcfg__duration(c, f, "extensionProviders.opentelemetry.http.timeout", &p->timeout);
		meshcfg__headers(c, cfg__node_field(h, "headers"), "extensionProviders.opentelemetry.http.headers", p);
	} else if ((h = cfg__node_field(x, "grpc")) && h->type == CFG__MAP) {
		if ((f = cfg__node_field(h, "timeout")))
			meshcfg__duration(c, f, "extensionProviders.opentelemetry.grpc.timeout", &p->timeout);
		meshcfg__headers(c, cfg__node_field(h, "initialMetadata"),
				 "extensionProviders.opentelemetry.grpc.initialMetadata", p);
	}
	if (p->kind == MESHCFG_TRACER_OTEL && (h = cfg__node_field(x, "resourceDetectors")) && h->type == CFG__MAP)
		p->env_detector = cfg__node_field(h, "environment") != NULL;
	mc->n_trace_providers++;
}

/* Every extensionProviders entry of a tracing kind meshd builds (zipkin,
 * opentelemetry), so that Telemetry can name any of them; other kinds
 * are left to their readers. */
static void meshcfg__trace_providers(struct meshcfg__ctx *c)
{
	const struct cfg__node *list = c->ext_providers;
	size_t i;

	for (i = 0; list && list->type == CFG__SEQ && i < list->n; i++) {
		const struct cfg__node *e = list->v[i], *n, *x;

		if (e->type != CFG__MAP || !(n = cfg__node_field(e, "name")) || n->type != CFG__STR)
			continue;
		if ((x = cfg__node_field(e, "zipkin")))
			meshcfg__trace_provider_add(c, n->str, "zipkin", x);
		else if ((x = cfg__node_field(e, "opentelemetry")))
			meshcfg__trace_provider_add(c, n->str, "opentelemetry", x);
	}
}

const struct meshcfg_trace_provider *meshcfg_trace_provider(const struct mesh_config *mc, const char *name)
{
	size_t i;

	for (i = 0; mc && name && i < mc->n_trace_providers; i++)
		if (strcmp(mc->trace_providers[i].name, name) == 0)
			return &mc->trace_providers[i];
	return NULL;
}

/* defaultProviders.tracing looked up in extensionProviders (Istio's
 * mesh-wide default tracing provider: the first one is used).  A zipkin
 * default also fills the legacy zipkin_* fields; a kind meshd does not
 * build is named in a warning as not acted on. */
static void meshcfg__tracing_provider(struct meshcfg__ctx *c)
{
	const struct cfg__node *t, *name;
	const struct meshcfg_trace_provider *p;
	struct mesh_config *mc = c->mc;
	size_t i;

	meshcfg__trace_providers(c);
	if (!c->default_providers || c->default_providers->type != CFG__MAP ||
	    !(t = cfg__node_field(c->default_providers, "tracing")))
		return;
	if (t->type != CFG__SEQ || t->n == 0 || (name = t->v[0])->type != CFG__STR) {
		if (t->type != CFG__NULL && !(t->type == CFG__SEQ && t->n == 0))
			meshcfg__error(c, t, "defaultProviders.tracing", "must be a list of provider names");
		return;
	}
	if (t->n <= MESHCFG__LIST_MAX && (mc->default_tracing.v = arena_calloc(mc->arena, t->n, sizeof(char *))))
		for (i = 0; i < t->n; i++)
			if (t->v[i]->type == CFG__STR)
				mc->default_tracing.v[mc->default_tracing.n++] = arena_strdup(mc->arena, t->v[i]->str);
	if (!(p = meshcfg_trace_provider(mc, name->str))) {
		const struct cfg__node *l = c->ext_providers;
		bool known = false;

		for (i = 0; l && l->type == CFG__SEQ && i < l->n && !known; i++) {
			const struct cfg__node *n = l->v[i]->type == CFG__MAP ? cfg__node_field(l->v[i], "name") : NULL;

			known = n && n->type == CFG__STR && strcmp(n->str, name->str) == 0;
		}
		if (known)
			meshcfg__ignore(c, "extensionProviders (tracing kinds other than zipkin and opentelemetry)");
		else
			meshcfg__error(c, name, "defaultProviders.tracing", "no extensionProviders entry named \"%s\"",
				       name->str);
		return;
	}
	if (!p->service || !p->port || p->kind != MESHCFG_TRACER_ZIPKIN)
		return;
	mc->zipkin_service = p->service;
	mc->zipkin_port = p->port;
	mc->zipkin_max_tag_len = p->max_tag_len;
	mc->trace_provider = arena_strdup(mc->arena, name->str);
}

/* issue 14: the built-in "envoy" access log provider (Istio's
 * DefaultMeshConfig: envoyFileAccessLog {path: /dev/stdout}). */
static const struct meshcfg_log_provider meshcfg__envoy_log = { "envoy", "/dev/stdout", MESHCFG_ALOG_DEFAULT, NULL,
								NULL, NULL, 0 };

static int meshcfg__label_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* logFormat.labels of provider p: string values only (a number or a
 * nested object of Istio's Struct is refused by name); sorted by key. */
static void meshcfg__log_labels(struct meshcfg__ctx *c, const struct cfg__node *l, struct meshcfg_log_provider *p)
{
	struct arena *a = c->mc->arena;
	const char **kv;
	size_t i;

	p->format = MESHCFG_ALOG_JSON;
	if (l->type == CFG__NULL || l->n == 0)
		return;
	if (l->type != CFG__MAP) {
		meshcfg__error(c, l, "extensionProviders.envoyFileAccessLog.logFormat.labels", "must be a map");
		return;
	}
	/* pairs sorted together: keys at even, values at odd indices */
	if (!(kv = arena_calloc(a, l->n * 2, sizeof(*kv)))) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; i < l->n; i++) {
		if (l->v[i]->type == CFG__MAP || l->v[i]->type == CFG__SEQ || !l->v[i]->str) {
			meshcfg__error(c, l->v[i], "extensionProviders.envoyFileAccessLog.logFormat.labels",
				       "\"%s\": only string values are supported", l->k[i]->str);
			return;
		}
		kv[2 * i] = arena_strdup(a, l->k[i]->str);
		kv[2 * i + 1] = arena_strdup(a, l->v[i]->str);
	}
	qsort(kv, l->n, 2 * sizeof(*kv), meshcfg__label_cmp);
	p->keys = arena_calloc(a, l->n, sizeof(*p->keys));
	p->values = arena_calloc(a, l->n, sizeof(*p->values));
	if (!p->keys || !p->values) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; i < l->n; i++) {
		p->keys[i] = kv[2 * i];
		p->values[i] = kv[2 * i + 1];
	}
	p->n_labels = l->n;
}

/* extensionProviders[].envoyFileAccessLog entries (the built-in "envoy"
 * is meshcfg_log_provider's fallback); defaultProviders.accessLogging names
 * (an unknown name is an error here: Istio's validation refuses it). */
static void meshcfg__log_providers(struct meshcfg__ctx *c)
{
	const struct cfg__node *list = c->ext_providers, *d;
	struct mesh_config *mc = c->mc;
	size_t i, n = 0;

	for (i = 0; list && list->type == CFG__SEQ && i < list->n; i++)
		n += list->v[i]->type == CFG__MAP && cfg__node_field(list->v[i], "envoyFileAccessLog");
	if (n && !(mc->log_providers = arena_calloc(mc->arena, n, sizeof(*mc->log_providers)))) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; list && list->type == CFG__SEQ && i < list->n; i++) {
		const struct cfg__node *e = list->v[i], *name, *f, *x, *lf;
		struct meshcfg_log_provider *p;

		if (e->type != CFG__MAP || !(f = cfg__node_field(e, "envoyFileAccessLog")))
			continue;
		name = cfg__node_field(e, "name");
		if (!name || name->type != CFG__STR || !name->str[0]) {
			meshcfg__error(c, e, "extensionProviders.name", "is required");
			continue;
		}
		p = &mc->log_providers[mc->n_log_providers++];
		p->name = arena_strdup(mc->arena, name->str);
		p->path = "";
		if (f->type != CFG__MAP)
			continue;
		if ((x = cfg__node_field(f, "path")) && x->type == CFG__STR)
			p->path = arena_strdup(mc->arena, x->str);
		if (!(lf = cfg__node_field(f, "logFormat")) || lf->type != CFG__MAP)
			continue;
		if ((x = cfg__node_field(lf, "text")) && x->type == CFG__STR) {
			p->format = MESHCFG_ALOG_TEXT;
			p->text = x->len && x->str[x->len - 1] == '\n' ? arena_strdup(mc->arena, x->str) :
									arena_printf(mc->arena, "%s\n", x->str);
		} else if ((x = cfg__node_field(lf, "labels"))) {
			meshcfg__log_labels(c, x, p);
		}
		if (!p->name || !p->path || (p->format == MESHCFG_ALOG_TEXT && !p->text))
			c->err.err = -ENOMEM;
	}
	if (!c->default_providers || c->default_providers->type != CFG__MAP ||
	    !(d = cfg__node_field(c->default_providers, "accessLogging")) || d->type == CFG__NULL)
		return;
	if (d->type != CFG__SEQ) {
		meshcfg__error(c, d, "defaultProviders.accessLogging", "must be a list of provider names");
		return;
	}
	if (d->n && !(mc->default_access_logging.v = arena_calloc(mc->arena, d->n, sizeof(char *)))) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; i < d->n; i++) {
		if (d->v[i]->type != CFG__STR || !meshcfg_log_provider(mc, d->v[i]->str)) {
			meshcfg__error(c, d->v[i], "defaultProviders.accessLogging",
				       "no envoyFileAccessLog extensionProviders entry named \"%s\"",
				       d->v[i]->str ? d->v[i]->str : "");
			continue;
		}
		mc->default_access_logging.v[mc->default_access_logging.n++] = arena_strdup(mc->arena, d->v[i]->str);
	}
}

/* issue 14: extensionProviders entries of kind prometheus, and
 * defaultProviders.metrics (Istio's chart sets [prometheus]; an explicit
 * list, empty included, replaces it).  A name that is no provider at all
 * is an error; one of another kind (stackdriver, ...) is accepted and
 * not acted on, as meshproxy has only the prometheus sink. */
static void meshcfg__metrics_providers(struct meshcfg__ctx *c)
{
	const struct cfg__node *list = c->ext_providers, *d;
	struct mesh_config *mc = c->mc;
	size_t i, n = 0;

	for (i = 0; list && list->type == CFG__SEQ && i < list->n; i++) {
		const struct cfg__node *e = list->v[i], *name;

		if (e->type == CFG__MAP && cfg__node_field(e, "prometheus") && (name = cfg__node_field(e, "name")) &&
		    name->type == CFG__STR && name->str[0])
			n++;
	}
	if (n > MESHCFG__LIST_MAX) {
		meshcfg__error(c, list, "extensionProviders", "more than %d prometheus providers", MESHCFG__LIST_MAX);
		return;
	}
	if (n && !(mc->prom_providers.v = arena_calloc(mc->arena, n, sizeof(char *)))) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; list && list->type == CFG__SEQ && i < list->n; i++) {
		const struct cfg__node *e = list->v[i], *name;

		if (e->type == CFG__MAP && cfg__node_field(e, "prometheus") && (name = cfg__node_field(e, "name")) &&
		    name->type == CFG__STR && name->str[0])
			mc->prom_providers.v[mc->prom_providers.n++] = arena_strdup(mc->arena, name->str);
	}
	if (!c->default_providers || c->default_providers->type != CFG__MAP ||
	    !(d = cfg__node_field(c->default_providers, "metrics")) || d->type == CFG__NULL)
		return;
	if (d->type != CFG__SEQ || d->n > MESHCFG__LIST_MAX) {
		meshcfg__error(c, d, "defaultProviders.metrics", "must be a list of provider names");
		return;
	}
	mc->default_metrics_set = true;
	if (d->n && !(mc->default_metrics.v = arena_calloc(mc->arena, d->n, sizeof(char *)))) {
		c->err.err = -ENOMEM;
		return;
	}
	for (i = 0; i < d->n; i++) {
		const char *nm = d->v[i]->type == CFG__STR ? d->v[i]->str : NULL;
		bool known = nm && (!strcmp(nm, "prometheus") || !strcmp(nm, "stackdriver") || !strcmp(nm, "envoy"));
		size_t j;

		for (j = 0; nm && list && list->type == CFG__SEQ && j < list->n && !known; j++) {
			const struct cfg__node *x = list->v[j]->type == CFG__MAP ? cfg__node_field(list->v[j], "name") : NULL;

			known = x && x->type == CFG__STR && !strcmp(x->str, nm);
		}
		if (!known) {
			meshcfg__error(c, d->v[i], "defaultProviders.metrics", "no extensionProviders entry named \"%s\"",
				       nm ? nm : "");
			continue;
		}
		mc->default_metrics.v[mc->default_metrics.n++] = arena_strdup(mc->arena, nm);
	}
}

bool meshcfg_metrics_provider_is_prometheus(const struct mesh_config *mc, const char *name)
{
	size_t i;

	if (!name)
		return false;
	for (i = 0; mc && i < mc->prom_providers.n; i++)
		if (!strcmp(mc->prom_providers.v[i], name))
			return true;
	return !strcmp(name, "prometheus");
}

const struct meshcfg_log_provider *meshcfg_log_provider(const struct mesh_config *mc, const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; mc && i < mc->n_log_providers; i++)
		if (!strcmp(mc->log_providers[i].name, name))
			return &mc->log_providers[i];
	/* not defined in the file: the built-in one (kept out of the table, so
	 * an empty file hashes as the defaults) */
	return !strcmp(name, "envoy") ? &meshcfg__envoy_log : NULL;
}

/* One top-level field. */
static void meshcfg__field(struct meshcfg__ctx *c, const struct cfg__node *k, const struct cfg__node *v)
{
	struct mesh_config *mc = c->mc;
	const char *f = k->str;

	if (strcmp(f, "rootNamespace") == 0) {
		if (meshcfg__str(c, v, f, &mc->root_namespace) && v->type != CFG__NULL) {
			mc->root_namespace_set = true;
			if (!cfg__is_dns1123_label(mc->root_namespace))
				meshcfg__error(c, v, f, "\"%s\" is not a namespace name", mc->root_namespace);
		}
	} else if (strcmp(f, "trustDomain") == 0) {
		if (meshcfg__str(c, v, f, &mc->trust_domain) && v->type != CFG__NULL) {
			mc->trust_domain_set = true;
			/* a DNS-like name; the CA's checks refuse '/' and spaces too */
			if (!mc->trust_domain[0] || strpbrk(mc->trust_domain, "/ \t:@"))
				meshcfg__error(c, v, f, "\"%s\" is not a trust domain", mc->trust_domain);
		}
	} else if (strcmp(f, "outboundTrafficPolicy") == 0) {
		meshcfg__outbound(c, v);
	} else if (strcmp(f, "enableAutoMtls") == 0) {
		meshcfg__bool(c, v, f, &mc->enable_auto_mtls);
	} else if (strcmp(f, "defaultServiceExportTo") == 0) {
		meshcfg__export_to(c, v, f, &mc->service_export_to);
	} else if (strcmp(f, "defaultVirtualServiceExportTo") == 0) {
		meshcfg__export_to(c, v, f, &mc->vs_export_to);
	} else if (strcmp(f, "defaultDestinationRuleExportTo") == 0) {
		meshcfg__export_to(c, v, f, &mc->dr_export_to);
	} else if (strcmp(f, "connectTimeout") == 0) {
		meshcfg__duration(c, v, f, &mc->connect_timeout);
	} else if (strcmp(f, "protocolDetectionTimeout") == 0) {
		meshcfg__duration(c, v, f, &mc->protocol_detection_timeout);
	} else if (strcmp(f, "h2UpgradePolicy") == 0) {
		static const char *const p[] = { "DO_NOT_UPGRADE", "UPGRADE" };
		int x = (int)mc->h2_upgrade;
		meshcfg__enum(c, v, f, p, 2, &x);
		mc->h2_upgrade = (enum meshcfg_h2_upgrade)x;
	} else if (strcmp(f, "accessLogFile") == 0) {
		(void)meshcfg__str(c, v, f, &mc->access_log_file);
	} else if (strcmp(f, "accessLogFormat") == 0) {
		(void)meshcfg__str(c, v, f, &mc->access_log_format);
	} else if (strcmp(f, "accessLogEncoding") == 0) {
		static const char *const e[] = { "TEXT", "JSON" };
		int x = (int)mc->access_log_encoding;
		meshcfg__enum(c, v, f, e, 2, &x);
		mc->access_log_encoding = (enum meshcfg_log_encoding)x;
	} else if (strcmp(f, "localityLbSetting") == 0) {
		meshcfg__raw_map(c, v, f, &mc->locality_lb_json);
	} else if (strcmp(f, "defaultConfig") == 0) {
		meshcfg__default_config(c, v);
	} else if (strcmp(f, "pathNormalization") == 0) {
		meshcfg__path_norm(c, v);
	} else if (strcmp(f, "enableTracing") == 0) {
		meshcfg__bool(c, v, f, &mc->enable_tracing);
	} else if (strcmp(f, "extensionProviders") == 0) {
		c->ext_providers = v;
	} else if (strcmp(f, "defaultProviders") == 0) {
		c->default_providers = v;
	} else if (meshcfg__is_known_ignored(f)) {
		meshcfg__ignore(c, f);
	} else {
		meshcfg__error(c, k, NULL, "unknown field \"%s\" in MeshConfig", f);
	}
}

static int meshcfg__doc(void *ctx, struct cfg__node *root)
{
	struct meshcfg__ctx *c = ctx;

	if (root->type == CFG__NULL)
		return 0;
	if (c->n_docs++) {
		meshcfg__error(c, root, NULL, "more than one YAML document: a mesh config is one");
		return 0;
	}
	c->root = root;
	return 0;
}

/* A whole ConfigMap (kind: ConfigMap, data.mesh) is accepted too: its
 * `mesh` string is the mesh config (lines counted in the outer file).
 * *is_cm tells a ConfigMap without data.mesh from a plain mesh config. */
static const struct cfg__node *meshcfg__configmap_mesh(const struct cfg__node *root, bool *is_cm)
{
	const struct cfg__node *kind = cfg__node_field(root, "kind"), *data;

	*is_cm = kind && kind->type == CFG__STR && strcmp(kind->str, "ConfigMap") == 0;
	if (!*is_cm)
		return NULL;
	data = cfg__node_field(root, "data");
	return data ? cfg__node_field(data, "mesh") : NULL;
}

static uint64_t meshcfg__hash_strs(uint64_t h, const struct cfg_strs *s)
{
	size_t i;

	h = mesh_hash_update(h, &s->n, sizeof(s->n));
	for (i = 0; i < s->n; i++)
		h = mesh_hash_str(h, s->v[i]);
	return h;
}

/* The tracing providers and defaultProviders.tracing (issue 14). */
static uint64_t meshcfg__hash_trace_providers(uint64_t h, const struct mesh_config *mc)
{
	size_t i, j;

	h = meshcfg__hash_strs(h, &mc->default_tracing);
	h = mesh_hash_update(h, &mc->trace_max_path_tag_len, sizeof(mc->trace_max_path_tag_len));
	for (i = 0; i < mc->n_trace_custom_tags; i++) {
		const struct cfg_tel_custom_tag *g = &mc->trace_custom_tags[i];

		h = mesh_hash_update(h, &g->kind, sizeof(g->kind));
		h = mesh_hash_str(h, g->name ? g->name : "");
		h = mesh_hash_str(h, g->value ? g->value : "");
		h = mesh_hash_str(h, g->default_value ? g->default_value : "\x01");
	}
	h = mesh_hash_update(h, &mc->n_trace_providers, sizeof(mc->n_trace_providers));
	for (i = 0; i < mc->n_trace_providers; i++) {
		const struct meshcfg_trace_provider *p = &mc->trace_providers[i];
		uint64_t nums[6] = { p->kind, p->port, p->max_tag_len, p->http, (uint64_t)p->timeout, p->env_detector };

		h = mesh_hash_str(h, p->name ? p->name : "");
		h = mesh_hash_str(h, p->service ? p->service : "");
		h = mesh_hash_str(h, p->http_path ? p->http_path : "");
		h = mesh_hash_update(h, nums, sizeof(nums));
		for (j = 0; j < p->n_headers; j++) {
			h = mesh_hash_str(h, p->headers[j].name ? p->headers[j].name : "");
			h = mesh_hash_str(h, p->headers[j].value ? p->headers[j].value : "");
		}
	}
	return h;
}

static void meshcfg__seal(struct mesh_config *mc)
{
	uint64_t h = mesh_hash("mesh", 4);
	uint64_t flags = (uint64_t)mc->outbound | (uint64_t)mc->enable_auto_mtls << 2 | (uint64_t)mc->h2_upgrade << 3 |
			 (uint64_t)mc->access_log_encoding << 4 | (uint64_t)mc->hold_application_until_proxy_starts << 5 |
			 (uint64_t)mc->trust_domain_set << 6 | (uint64_t)mc->root_namespace_set << 7 |
			 (uint64_t)mc->path_norm << 8 | (uint64_t)mc->enable_tracing << 11;

	h = mesh_hash_update(h, &flags, sizeof(flags));
	h = mesh_hash_update(h, &mc->connect_timeout, sizeof(mc->connect_timeout));
	h = mesh_hash_update(h, &mc->trace_sampling, sizeof(mc->trace_sampling));
	h = mesh_hash_update(h, &mc->zipkin_port, sizeof(mc->zipkin_port));
	h = mesh_hash_update(h, &mc->zipkin_max_tag_len, sizeof(mc->zipkin_max_tag_len));
	h = mesh_hash_str(h, mc->trace_provider ? mc->trace_provider : "");
	h = mesh_hash_str(h, mc->zipkin_service ? mc->zipkin_service : "");
	h = meshcfg__hash_trace_providers(h, mc);
	h = mesh_hash_update(h, &mc->protocol_detection_timeout, sizeof(mc->protocol_detection_timeout));
	h = mesh_hash_str(h, mc->root_namespace);
	h = mesh_hash_str(h, mc->trust_domain);
	h = mesh_hash_str(h, mc->access_log_file);
	h = mesh_hash_str(h, mc->access_log_format);
	h = mesh_hash_str(h, mc->locality_lb_json ? mc->locality_lb_json : "");
	h = mesh_hash_str(h, mc->default_config_json ? mc->default_config_json : "");
	h = meshcfg__hash_strs(h, &mc->service_export_to);
	h = meshcfg__hash_strs(h, &mc->vs_export_to);
	h = meshcfg__hash_strs(h, &mc->dr_export_to);
	h = meshcfg__hash_strs(h, &mc->ignored); /* /debug/mesh lists them */
	/* issue 14: access log providers and defaults */
	h = meshcfg__hash_strs(h, &mc->default_access_logging);
	h = mesh_hash_update(h, &mc->default_metrics_set, sizeof(mc->default_metrics_set));
	h = meshcfg__hash_strs(h, &mc->default_metrics);
	h = meshcfg__hash_strs(h, &mc->prom_providers);
	for (size_t i = 0; i < mc->n_log_providers; i++) {
		const struct meshcfg_log_provider *p = &mc->log_providers[i];

		h = mesh_hash_str(h, p->name);
		h = mesh_hash_str(h, p->path);
		h = mesh_hash_update(h, &p->format, sizeof(p->format));
		h = mesh_hash_str(h, p->text ? p->text : "");
		for (size_t k = 0; k < p->n_labels; k++) {
			h = mesh_hash_str(h, p->keys[k]);
			h = mesh_hash_str(h, p->values[k]);
		}
	}
	mc->hash = h;
}

struct mesh_config *meshcfg_defaults(void)
{
	static const char *star[] = { "*" };
	struct mesh_config *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return NULL;
	mc->arena = arena_new(MESHCFG__ARENA_MAX);
	if (!mc->arena) {
		free(mc);
		return NULL;
	}
	mesh_refcount_init(&mc->refs, 1);
	mc->root_namespace = "istio-system";
	mc->trust_domain = "cluster.local";
	mc->outbound = MESHCFG_ALLOW_ANY;
	mc->enable_auto_mtls = true;
	mc->service_export_to = (struct cfg_strs){ (char **)star, 1 };
	mc->vs_export_to = mc->service_export_to;
	mc->dr_export_to = mc->service_export_to;
	mc->connect_timeout = 10LL * 1000000000LL;
	mc->h2_upgrade = MESHCFG_H2_DO_NOT_UPGRADE;
	mc->access_log_file = "";
	mc->access_log_format = "";
	mc->access_log_encoding = MESHCFG_LOG_TEXT;
	mc->enable_tracing = true;
	mc->trace_sampling = 1.0;
	mc->source = "";
	meshcfg__seal(mc);
	return mc;
}

int meshcfg_parse(const char *data, size_t len, const char *source, struct mesh_config **out, char *err, size_t cap,
		  char *warn)
{
	struct meshcfg__ctx c = { .source = source ? source : "-" };
	struct cfg__yaml_error ye = { { 0 }, 0, 0 };
	struct arena *tmp = NULL;
	const struct cfg__node *root, *inner = NULL;
	bool is_cm = false;
	size_t i;
	int rc;

	*out = NULL;
	if (cap)
		err[0] = '\0';
	if (warn && cap)
		warn[0] = '\0';
	mesh_buf_init(&c.err, cap ? cap - 1 : 0);
	mesh_buf_init(&c.ignored, cap ? cap - 1 : 0);
	if (len > MESHCFG_MAX_BYTES) {
		snprintf(err, cap, "%s: larger than %u bytes", c.source, MESHCFG_MAX_BYTES);
		rc = -MESH_ETOOBIG;
		goto out;
	}
	c.mc = meshcfg_defaults();
	tmp = arena_new(MESHCFG__ARENA_MAX);
	if (!c.mc || !tmp) {
		rc = -ENOMEM;
		goto out;
	}
	c.mc->source = arena_strdup(c.mc->arena, c.source);
	rc = cfg__yaml_parse(tmp, data, len, 0, meshcfg__doc, &c, &ye);
	if (rc == 0 && c.root && !(inner = meshcfg__configmap_mesh(c.root, &is_cm)) && is_cm) {
		/* Istio's istio ConfigMap keeps the mesh config under data.mesh */
		meshcfg__error(&c, c.root, "data.mesh", "a ConfigMap without a `mesh` key: nothing to read");
		c.root = NULL;
	} else if (inner) {
		/* the ConfigMap's `mesh: |` block starts on the next line */
		if (inner->type != CFG__STR) {
			meshcfg__error(&c, inner, "data.mesh", "must be a string (the MeshConfig YAML)");
		} else {
			c.root = NULL;
			c.n_docs = 0;
			rc = cfg__yaml_parse(tmp, inner->str, inner->len, inner->line, meshcfg__doc, &c, &ye);
		}
	}
	if (rc == -MESH_EPARSE || rc == -MESH_ETOOBIG) {
		snprintf(err, cap, "%s:%d: %s", c.source, ye.line, ye.msg[0] ? ye.msg : mesh_strerror(rc));
		goto out;
	}
	if (rc < 0)
		goto out;
	root = c.root;
	if (root && root->type != CFG__MAP) {
		meshcfg__error(&c, root, NULL, "a mesh config is a map of MeshConfig fields");
	} else if (root) {
		for (i = 0; i < root->n; i++)
			meshcfg__field(&c, root->k[i], root->v[i]);
		meshcfg__tracing_provider(&c);
	}
	meshcfg__log_providers(&c); /* issue 14: also for an empty file (the built-in "envoy") */
	meshcfg__metrics_providers(&c);
	if (c.err.err == -ENOMEM || c.ignored.err == -ENOMEM) {
		rc = -ENOMEM;
		goto out;
	}
	if (c.n_errors) {
		/* the buffer is capped below cap: what fits, NUL-terminated */
		size_t n = c.err.len && c.err.data[c.err.len - 1] == '\n' ? c.err.len - 1 : c.err.len;
		if (cap) {
			if (n >= cap)
				n = cap - 1;
			memcpy(err, c.err.data ? c.err.data : "", n);
			err[n] = '\0';
		}
		rc = -EINVAL;
		goto out;
	}
	if (c.ignored.len) {
		char *list = arena_strndup(c.mc->arena, c.ignored.data, c.ignored.len);

		if (warn && cap)
			snprintf(warn, cap, "%s: MeshConfig fields accepted but not acted on by meshd: %s", c.source,
				 c.ignored.data);
		if (list) {
			c.mc->ignored.v = arena_calloc(c.mc->arena, 1, sizeof(char *));
			if (c.mc->ignored.v) {
				c.mc->ignored.v[0] = list;
				c.mc->ignored.n = 1;
			}
		}
	}
	meshcfg__seal(c.mc);
	*out = c.mc;
	c.mc = NULL;
	rc = 0;
out:
	meshcfg_unref(c.mc);
	arena_free(tmp);
	mesh_buf_cleanup(&c.err);
	mesh_buf_cleanup(&c.ignored);
	return rc;
}

int meshcfg_load_file(const char *path, struct mesh_config **out, char *err, size_t cap, char *warn)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = mesh_read_file(path, MESHCFG_MAX_BYTES, &data, &len);
	if (rc < 0) {
		snprintf(err, cap, "%s: %s", path, mesh_strerror(rc));
		if (warn && cap)
			warn[0] = '\0';
		return rc;
	}
	rc = meshcfg_parse(data, len, path, out, err, cap, warn);
	free(data);
	return rc;
}

struct mesh_config *meshcfg_ref(struct mesh_config *mc)
{
	if (mc)
		mesh_refcount_ref(&mc->refs);
	return mc;
}

void meshcfg_unref(struct mesh_config *mc)
{
	if (!mc || !mesh_refcount_unref(&mc->refs))
		return;
	arena_free(mc->arena);
	free(mc);
}

static void meshcfg__json_strs(struct mesh_buf *b, const char *name, const struct cfg_strs *s)
{
	size_t i;

	mesh_buf_printf(b, ",\"%s\":[", name);
	for (i = 0; i < s->n; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		json_put_string(b, s->v[i]);
	}
	mesh_buf_putc(b, ']');
}

void meshcfg_json(struct mesh_buf *b, const struct mesh_config *mc)
{
	int64_t ms = mc->connect_timeout / 1000000;

	mesh_buf_puts(b, "{\"rootNamespace\":");
	json_put_string(b, mc->root_namespace);
	mesh_buf_puts(b, ",\"trustDomain\":");
	json_put_string(b, mc->trust_domain);
	mesh_buf_printf(b, ",\"outboundTrafficPolicy\":{\"mode\":\"%s\"}",
			mc->outbound == MESHCFG_REGISTRY_ONLY ? "REGISTRY_ONLY" : "ALLOW_ANY");
	mesh_buf_printf(b, ",\"enableAutoMtls\":%s", mc->enable_auto_mtls ? "true" : "false");
	meshcfg__json_strs(b, "defaultServiceExportTo", &mc->service_export_to);
	meshcfg__json_strs(b, "defaultVirtualServiceExportTo", &mc->vs_export_to);
	meshcfg__json_strs(b, "defaultDestinationRuleExportTo", &mc->dr_export_to);
	/* protobuf JSON's Duration: seconds with up to 9 fractional digits */
	if (ms % 1000)
		mesh_buf_printf(b, ",\"connectTimeout\":\"%lld.%03llds\"", (long long)(ms / 1000), (long long)(ms % 1000));
	else
		mesh_buf_printf(b, ",\"connectTimeout\":\"%llds\"", (long long)(ms / 1000));
	ms = mc->protocol_detection_timeout / 1000000;
	if (ms % 1000)
		mesh_buf_printf(b, ",\"protocolDetectionTimeout\":\"%lld.%03llds\"", (long long)(ms / 1000),
				(long long)(ms % 1000));
	else
		mesh_buf_printf(b, ",\"protocolDetectionTimeout\":\"%llds\"", (long long)(ms / 1000));
	mesh_buf_printf(b, ",\"h2UpgradePolicy\":\"%s\"",
			mc->h2_upgrade == MESHCFG_H2_UPGRADE ? "UPGRADE" : "DO_NOT_UPGRADE");
	mesh_buf_puts(b, ",\"accessLogFile\":");
	json_put_string(b, mc->access_log_file);
	mesh_buf_printf(b, ",\"accessLogEncoding\":\"%s\"", mc->access_log_encoding == MESHCFG_LOG_JSON ? "JSON" : "TEXT");
	mesh_buf_puts(b, ",\"accessLogFormat\":");
	json_put_string(b, mc->access_log_format);
	if (mc->locality_lb_json)
		mesh_buf_printf(b, ",\"localityLbSetting\":%s", mc->locality_lb_json);
	if (mc->default_config_json)
		mesh_buf_printf(b, ",\"defaultConfig\":%s", mc->default_config_json);
	if (mc->path_norm != MESHCFG_PATH_DEFAULT)
		mesh_buf_printf(b, ",\"pathNormalization\":{\"normalization\":\"%s\"}",
				meshcfg__path_norms[mc->path_norm]);
	if (mc->n_trace_providers) {
		/* the providers meshd acts on: the tracing ones (issue 14) */
		size_t i, j;

		mesh_buf_puts(b, ",\"defaultProviders\":{\"tracing\":[");
		for (i = 0; i < mc->default_tracing.n; i++) {
			if (i)
				mesh_buf_putc(b, ',');
			json_put_string(b, mc->default_tracing.v[i]);
		}
		mesh_buf_puts(b, "]},\"extensionProviders\":[");
		for (i = 0; i < mc->n_trace_providers; i++) {
			const struct meshcfg_trace_provider *p = &mc->trace_providers[i];

			mesh_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
			json_put_string(b, p->name);
			mesh_buf_puts(b, p->kind == MESHCFG_TRACER_ZIPKIN ? ",\"zipkin\":{\"service\":" :
									    ",\"opentelemetry\":{\"service\":");
			json_put_string(b, p->service ? p->service : "");
			mesh_buf_printf(b, ",\"port\":%u", (unsigned)p->port);
			if (p->max_tag_len)
				mesh_buf_printf(b, ",\"maxTagLength\":%u", (unsigned)p->max_tag_len);
			if (p->kind == MESHCFG_TRACER_OTEL) {
				/* header values are left out: they may be credentials */
				mesh_buf_puts(b, p->http ? ",\"http\":{\"path\":" : ",\"grpc\":{");
				if (p->http)
					json_put_string(b, p->http_path ? p->http_path : "");
				mesh_buf_puts(b, p->http ? ",\"headers\":[" : "\"initialMetadata\":[");
				for (j = 0; j < p->n_headers; j++) {
					mesh_buf_puts(b, j ? ",{\"name\":" : "{\"name\":");
					json_put_string(b, p->headers[j].name);
					mesh_buf_putc(b, '}');
				}
				mesh_buf_puts(b, "]}");
			}
			mesh_buf_puts(b, "}}");
		}
		mesh_buf_putc(b, ']');
	}
	mesh_buf_puts(b, ",\"meshd\":{\"source\":");
	json_put_string(b, mc->source);
	mesh_buf_puts(b, ",\"ignoredFields\":");
	json_put_string(b, mc->ignored.n ? mc->ignored.v[0] : "");
	mesh_buf_puts(b, "}}");
}
