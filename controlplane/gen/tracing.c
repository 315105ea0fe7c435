/*
 * tracing.c - HttpConnectionManager.tracing per workload, as istiod's
 * pilot/pkg/networking/core/tracing.go configureTracingFromTelemetry
 * builds it (issue 14).
 *
 * The workload's effective Telemetry (model/telemetry.c, with
 * meshConfig.defaultProviders.tracing as the default provider) picks the
 * provider by name from meshConfig.extensionProviders, whether tracing is
 * disabled, the sampling and the custom tags; the client spec serves
 * outbound listeners and gateways, the server spec inbound ones.  Sampling
 * follows Istio's precedence: Telemetry randomSamplingPercentage >
 * defaultConfig.tracing.sampling > 1% (PILOT_TRACE_SAMPLING); custom tags
 * and the path tag length fall back to defaultConfig.tracing's.  Providers:
 * zipkin (ZipkinConfig, legacy collector fields as istiod sends to proxies
 * before 1.29) and opentelemetry (OpenTelemetryConfig over OTLP/HTTP or
 * OTLP/gRPC).  Without a Telemetry and without a default provider no
 * tracing is emitted (istiod would keep the bootstrap's tracer; meshproxy
 * has none).  Istio's service tags (istio.canonical_service, ...) are not
 * emitted as custom tags: meshproxy adds them to every span itself.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/model.h"
#include "controlplane/model/telemetry.h"

#include "common/arena.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/grpc_service.pb-c.h"
#include "envoy/config/core/v3/http_service.pb-c.h"
#include "envoy/config/core/v3/http_uri.pb-c.h"
#include "envoy/config/trace/v3/http_tracer.pb-c.h"
#include "envoy/config/trace/v3/opentelemetry.pb-c.h"
#include "envoy/config/trace/v3/zipkin.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/type/tracing/v3/custom_tag.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing gen_tracing;

/* Istio's PILOT_TRACE_SAMPLING default */
#define GEN_TRACE_SAMPLING_DEFAULT 1.0

int gen__telemetry(const struct model *m, const struct gen_workload *w, struct model_telemetry **out)
{
	struct model_telemetry_defaults d;

	/* each signal is merged under its own defaults only, so one merge
	 * serves metrics, tracing and access logs alike */
	model_telemetry_mesh_defaults(m ? m->mesh : NULL, &d);
	return model_telemetry_for(m, gen__workload_ns(w), gen__workload_labels(w), &d, out);
}

static Envoy__Type__V3__Percent *gen_tr_pct(struct arena *a, double v)
{
	Envoy__Type__V3__Percent *p = gen__msg(a, &envoy__type__v3__percent__descriptor);

	if (p)
		p->value = v;
	return p;
}

/* Istio's clusterLookupFn: the provider's service "ns/host" or "host"
 * names the host; its cluster is outbound|PORT||HOST. */
static const char *gen_tr_host(const struct meshcfg_trace_provider *p)
{
	const char *slash = strchr(p->service, '/');

	return slash ? slash + 1 : p->service;
}

/* Istio's zipkinConfig for proxies before 1.29 (collector fields, no
 * HttpService). */
static Google__Protobuf__Any *gen_tr_zipkin(struct arena *a, const struct meshcfg_trace_provider *p)
{
	Envoy__Config__Trace__V3__ZipkinConfig *z = gen__msg(a, &envoy__config__trace__v3__zipkin_config__descriptor);
	const char *host = gen_tr_host(p);

	if (!z)
		return NULL;
	z->collector_cluster = arena_printf(a, "outbound|%u||%s", (unsigned)p->port, host);
	z->collector_endpoint = p->http_path && p->http_path[0] ? (char *)p->http_path : "/api/v2/spans";
	z->collector_endpoint_version = ENVOY__CONFIG__TRACE__V3__ZIPKIN_CONFIG__COLLECTOR_ENDPOINT_VERSION__HTTP_JSON;
	z->trace_id_128bit = true;
	z->collector_hostname = (char *)host;
	if (!z->collector_cluster || !(z->shared_span_context = gen__bool(a, false)))
		return NULL;
	return gen__any(a, &z->base);
}

/* Istio's otelConfig: OTLP/HTTP (http_service: uri HOST/PATH joined as
 * url.JoinPath does, the cluster, timeout, headers overwritten) or
 * OTLP/gRPC (envoy_grpc to the cluster with the host as authority,
 * timeout, initial metadata); service_name the proxy's cluster. */
static Google__Protobuf__Any *gen_tr_otel(struct arena *a, const struct meshcfg_trace_provider *p,
					  const char *service_name)
{
	Envoy__Config__Trace__V3__OpenTelemetryConfig *oc =
		gen__msg(a, &envoy__config__trace__v3__open_telemetry_config__descriptor);
	const char *host = gen_tr_host(p);
	char *cluster = arena_printf(a, "outbound|%u||%s", (unsigned)p->port, host);
	size_t i;

	if (!oc || !cluster)
		return NULL;
	oc->service_name = (char *)service_name;
	if (p->http) {
		Envoy__Config__Core__V3__HttpService *hs = gen__msg(a, &envoy__config__core__v3__http_service__descriptor);
		Envoy__Config__Core__V3__HttpUri *u = gen__msg(a, &envoy__config__core__v3__http_uri__descriptor);
		const char *path = p->http_path ? p->http_path : "";

		if (!hs || !u)
			return NULL;
		while (*path == '/')
			path++;
		u->uri = *path ? arena_printf(a, "%s/%s", host, path) : (char *)host;
		u->http_upstream_type_case = ENVOY__CONFIG__CORE__V3__HTTP_URI__HTTP_UPSTREAM_TYPE_CLUSTER;
		u->cluster = cluster;
		if (!u->uri || (p->timeout > 0 && !(u->timeout = gen__duration(a, p->timeout))))
			return NULL;
		hs->http_uri = u;
		if (p->n_headers &&
		    !(hs->request_headers_to_add = arena_calloc(a, p->n_headers, sizeof(*hs->request_headers_to_add))))
			return NULL;
		for (i = 0; i < p->n_headers; i++) {
			Envoy__Config__Core__V3__HeaderValueOption *o =
				gen__msg(a, &envoy__config__core__v3__header_value_option__descriptor);
			Envoy__Config__Core__V3__HeaderValue *hv = gen__msg(a, &envoy__config__core__v3__header_value__descriptor);

			if (!o || !hv)
				return NULL;
			hv->key = (char *)p->headers[i].name;
			hv->value = (char *)p->headers[i].value;
			o->header = hv;
			o->append_action =
				ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD;
			hs->request_headers_to_add[hs->n_request_headers_to_add++] = o;
		}
		oc->http_service = hs;
	} else {
		Envoy__Config__Core__V3__GrpcService *gs = gen__msg(a, &envoy__config__core__v3__grpc_service__descriptor);
		Envoy__Config__Core__V3__GrpcService__EnvoyGrpc *eg =
			gen__msg(a, &envoy__config__core__v3__grpc_service__envoy_grpc__descriptor);

		if (!gs || !eg)
			return NULL;
		eg->cluster_name = cluster;
		eg->authority = (char *)host;
		gs->target_specifier_case = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC;
		gs->envoy_grpc = eg;
		if (p->timeout > 0 && !(gs->timeout = gen__duration(a, p->timeout)))
			return NULL;
		if (p->n_headers && !(gs->initial_metadata = arena_calloc(a, p->n_headers, sizeof(*gs->initial_metadata))))
			return NULL;
		for (i = 0; i < p->n_headers; i++) {
			Envoy__Config__Core__V3__HeaderValue *hv = gen__msg(a, &envoy__config__core__v3__header_value__descriptor);

			if (!hv)
				return NULL;
			hv->key = (char *)p->headers[i].name;
			hv->value = (char *)p->headers[i].value;
			gs->initial_metadata[gs->n_initial_metadata++] = hv;
		}
		oc->grpc_service = gs;
	}
	if (p->env_detector) {
		/* Istio's xdsfilters.EnvironmentResourceDetector: an empty
		 * EnvironmentResourceDetectorConfig (no fields: an empty Any value) */
		Envoy__Config__Core__V3__TypedExtensionConfig *rd =
			gen__msg(a, &envoy__config__core__v3__typed_extension_config__descriptor);
		Google__Protobuf__Any *any = gen__msg(a, &google__protobuf__any__descriptor);

		if (!rd || !any || !(oc->resource_detectors = arena_calloc(a, 1, sizeof(*oc->resource_detectors))))
			return NULL;
		any->type_url = "type.googleapis.com/"
				"envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig";
		rd->name = "envoy.tracers.opentelemetry.resource_detectors.environment";
		rd->typed_config = any;
		oc->resource_detectors[0] = rd;
		oc->n_resource_detectors = 1;
	}
	return gen__any(a, &oc->base);
}

static int gen_tr_tag_cmp(const void *x, const void *y)
{
	const Envoy__Type__Tracing__V3__CustomTag *const *a = x, *const *b = y;

	return strcmp((*a)->tag, (*b)->tag);
}

/* Custom tags (the Telemetry's, else defaultConfig.tracing.custom_tags,
 * as Istio's configureCustomTags) as Envoy CustomTags, sorted by tag
 * (Istio sorts them: its map order is random). */
static int gen_tr_tags(struct arena *a, const struct cfg_tel_custom_tag *tags, size_t n, gen_tracing *t)
{
	size_t i;

	if (!n)
		return 0;
	if (!(t->custom_tags = arena_calloc(a, n, sizeof(*t->custom_tags))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct cfg_tel_custom_tag *ct = &tags[i];
		Envoy__Type__Tracing__V3__CustomTag *g = gen__msg(a, &envoy__type__tracing__v3__custom_tag__descriptor);

		if (!g)
			return -ENOMEM;
		g->tag = ct->name;
		switch (ct->kind) {
		case CFG_TEL_TAG_LITERAL:
			g->type_case = ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_LITERAL;
			if (!(g->literal = gen__msg(a, &envoy__type__tracing__v3__custom_tag__literal__descriptor)))
				return -ENOMEM;
			g->literal->value = ct->value ? ct->value : "";
			break;
		case CFG_TEL_TAG_ENVIRONMENT:
			g->type_case = ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_ENVIRONMENT;
			if (!(g->environment = gen__msg(a, &envoy__type__tracing__v3__custom_tag__environment__descriptor)))
				return -ENOMEM;
			g->environment->name = ct->value ? ct->value : "";
			g->environment->default_value = ct->default_value ? ct->default_value : "";
			break;
		case CFG_TEL_TAG_HEADER:
			g->type_case = ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_REQUEST_HEADER;
			if (!(g->request_header = gen__msg(a, &envoy__type__tracing__v3__custom_tag__header__descriptor)))
				return -ENOMEM;
			g->request_header->name = ct->value ? ct->value : "";
			g->request_header->default_value = ct->default_value ? ct->default_value : "";
			break;
		}
		t->custom_tags[t->n_custom_tags++] = g;
	}
	qsort(t->custom_tags, t->n_custom_tags, sizeof(*t->custom_tags), gen_tr_tag_cmp);
	return 0;
}

/* The proxy's cluster (Envoy's node.cluster, which istiod names the
 * span's service by): "CANONICAL_NAME.NAMESPACE", the name from
 * service.istio.io/canonical-name, app.kubernetes.io/name, app, else
 * "istio-proxy" (Istio's default service cluster). */
static const char *gen_tr_service_name(struct arena *a, const struct gen_workload *w)
{
	static const char *const keys[] = { "service.istio.io/canonical-name", "app.kubernetes.io/name", "app" };
	const struct cfg_labels *l = gen__workload_labels(w);
	const char *name = NULL;
	size_t i, j;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && !name; i++)
		for (j = 0; j < l->n && !name; j++)
			if (strcmp(l->v[j].key, keys[i]) == 0 && l->v[j].value && l->v[j].value[0])
				name = l->v[j].value;
	return arena_printf(a, "%s.%s", name ? name : "istio-proxy", gen__workload_ns(w));
}

int gen__tracing(struct arena *a, const struct gen_ctx *g, const struct gen_workload *w, const struct model_telemetry *tel,
		 bool server, gen_tracing **out)
{
	const struct mesh_config *mc = g->m ? g->m->mesh : NULL;
	const struct model_tel_tracing *spec;
	const struct meshcfg_trace_provider *p;
	Envoy__Config__Trace__V3__Tracing__Http *http;
	gen_tracing *t;
	double sampling;
	uint32_t max_tag;

	*out = NULL;
	/* no Telemetry tracing and no default provider: Istio's legacy path
	 * (meshConfig.enableTracing with the bootstrap's tracer), nothing here */
	if (!tel || !tel->has_tracing)
		return 0;
	spec = server ? &tel->server_tracing : &tel->client_tracing;
	if (spec->disabled || !spec->provider)
		return 0;
	p = meshcfg_trace_provider(mc, spec->provider);
	if (!p || !p->service || !p->port) {
		/* say which workload and which Telemetry objects, most specific
		 * last (the provider is theirs or defaultProviders.tracing) */
		char objs[512];
		size_t i, n = 0;

		objs[0] = '\0';
		for (i = 0; i < 2 + tel->n_workload && n < sizeof(objs); i++) {
			const struct cfg_object *o = i == 0 ? tel->root : i == 1 ? tel->ns : tel->workload[i - 2];
			int k;

			if (!o)
				continue;
			k = snprintf(objs + n, sizeof(objs) - n, "%s%s/%s", n ? ", " : "", o->ns, o->name);
			n += k > 0 ? (size_t)k : 0;
		}
		gen__note(g, GEN_NOTE_WARN, "tracing", "tracing provider \"%s\" (%s side of a workload in namespace %s; "
			  "Telemetry: %s) is not a zipkin or opentelemetry entry of meshConfig extensionProviders: "
			  "no tracing", spec->provider, server ? "server" : "client", gen__workload_ns(w),
			  n ? objs : "none, meshConfig defaultProviders.tracing");
		return 0;
	}
	t = gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__tracing__descriptor);
	http = gen__msg(a, &envoy__config__trace__v3__tracing__http__descriptor);
	if (!t || !http)
		return -ENOMEM;
	http->config_type_case = ENVOY__CONFIG__TRACE__V3__TRACING__HTTP__CONFIG_TYPE_TYPED_CONFIG;
	if (p->kind == MESHCFG_TRACER_ZIPKIN) {
		http->name = "envoy.tracers.zipkin";
		http->typed_config = gen_tr_zipkin(a, p);
	} else {
		const char *sn = gen_tr_service_name(a, w);

		http->name = "envoy.tracers.opentelemetry";
		http->typed_config = sn ? gen_tr_otel(a, p, sn) : NULL;
	}
	if (!http->typed_config)
		return -ENOMEM;
	t->provider = http;
	/* Istio's precedence: Telemetry > defaultConfig.tracing.sampling
	 * (0 meaning unset, above 100 meaning 1) > PILOT_TRACE_SAMPLING */
	if (spec->random_sampling_percentage >= 0)
		sampling = spec->random_sampling_percentage;
	else if (mc && mc->trace_sampling > 0 && mc->trace_sampling <= 100)
		sampling = mc->trace_sampling;
	else
		sampling = GEN_TRACE_SAMPLING_DEFAULT;
	if (!(t->client_sampling = gen_tr_pct(a, 100)) || !(t->random_sampling = gen_tr_pct(a, sampling)) ||
	    !(t->overall_sampling = gen_tr_pct(a, 100)))
		return -ENOMEM;
	/* the provider's maxTagLength, else defaultConfig.tracing's */
	max_tag = p->max_tag_len ? p->max_tag_len : mc ? mc->trace_max_path_tag_len : 0;
	if (max_tag && !(t->max_path_tag_length = gen__u32(a, max_tag)))
		return -ENOMEM;
	if ((spec->n_custom_tags ? gen_tr_tags(a, spec->custom_tags, spec->n_custom_tags, t)
				 : mc ? gen_tr_tags(a, mc->trace_custom_tags, mc->n_trace_custom_tags, t) : 0) < 0)
		return -ENOMEM;
	*out = t;
	return 0;
}
