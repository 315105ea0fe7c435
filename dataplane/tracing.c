/*
 * tracing.c - trace context, sampling and the Zipkin v2 exporter
 * (tracing.h).
 *
 * Per request the proxy calls trace_start() before it writes the upstream
 * head (the ids it sends are decided there) and tracer_finish() where the
 * request is logged.  Spans become JSON at once and wait in one bounded
 * buffer; a batch goes out as one HTTP/1.1 POST on a non-blocking socket
 * owned by the loop (connect, write, read the status line, close), one POST
 * at a time: while one is in flight the next batch gathers, and what does
 * not fit the queue is dropped and counted, so a slow or absent collector
 * costs memory up to the cap and nothing else.  With an OpenTelemetry
 * provider the queue holds OTLP Spans, protobuf-encoded as they end, and
 * a batch goes as one ExportTraceServiceRequest: the body of a POST
 * (OTLP/HTTP) or the message of a unary TraceService/Export call on a
 * grpc_client of its own (OTLP/gRPC), one in flight either way.
 */
#include "dataplane/tracing.h"
#include "dataplane/ev.h"
#include "dataplane/grpc_client.h"

#include "common/json.h"
#include "common/log.h"
#include "envoy/config/trace/v3/http_tracer.pb-c.h"
#include "envoy/config/trace/v3/zipkin.pb-c.h"
#include "envoy/config/trace/v3/opentelemetry.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/type/tracing/v3/custom_tag.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ZIPKIN_URL "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
#define OTEL_URL "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__Tracing px_tracing;

/* One encoded OTLP span: past it the span is dropped and counted (its
 * strings are the request's, capped by the codec's head limit). */
#define TRACE_SPAN_BYTES (64u << 10)
/* request_headers_to_add of an OTLP/HTTP collector, as header lines */
#define TRACE_EXTRA_HEADERS_BYTES (16u << 10)

/* --- configuration */

static char *tr__dup(const char *s)
{
	return strdup(s ? s : "");
}

static double tr__pct(const Envoy__Type__V3__Percent *p, double dflt)
{
	if (!p)
		return dflt;
	return p->value < 0 ? 0 : p->value > 100 ? 100 : p->value;
}

void trace_cfg_free(struct trace_cfg *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_tags; i++) {
		free(c->tags[i].tag);
		free(c->tags[i].value);
		free(c->tags[i].dflt);
	}
	free(c->tags);
	free(c->cluster);
	free(c->endpoint);
	free(c->hostname);
	free(c->service_name);
	free(c->extra_headers);
	free(c);
}

/* Fill c's OTLP/HTTP collector from an OpenTelemetryConfig http_service
 * (Envoy's opentelemetry http_trace_exporter: the uri's host and path,
 * the cluster, the timeout, request_headers_to_add). */
static int tr__otlp_cfg(struct trace_cfg *c, const Envoy__Config__Trace__V3__OpenTelemetryConfig *oc)
{
	const Envoy__Config__Core__V3__HttpService *hs = oc->http_service;
	const Envoy__Config__Core__V3__HttpUri *u = hs->http_uri;
	const char *uri = u && u->uri ? u->uri : "", *slash;
	struct mesh_buf h;
	size_t i;
	int rc = 0;

	/* "http://host/path", "host/path" (Istio's url.JoinPath), "host" */
	if (strncmp(uri, "http://", 7) == 0)
		uri += 7;
	else if (strncmp(uri, "https://", 8) == 0)
		uri += 8;
	slash = strchr(uri, '/');
	c->otlp = TRACE_OTLP_HTTP;
	c->hostname = slash ? strndup(uri, (size_t)(slash - uri)) : strdup(uri);
	c->endpoint = strdup(slash && slash[1] ? slash : "/v1/traces");
	c->cluster = tr__dup(u && u->http_upstream_type_case == ENVOY__CONFIG__CORE__V3__HTTP_URI__HTTP_UPSTREAM_TYPE_CLUSTER
				     ? u->cluster
				     : "");
	c->service_name = tr__dup(oc->service_name && oc->service_name[0] ? oc->service_name : "unknown_service:envoy");
	if (u && u->timeout && (u->timeout->seconds > 0 || u->timeout->nanos > 0))
		c->timeout_ms = u->timeout->seconds > 3600 ? 3600000u
							  : (uint32_t)(u->timeout->seconds * 1000 + u->timeout->nanos / 1000000);
	if (!c->timeout_ms)
		c->timeout_ms = TRACE_POST_TIMEOUT_MS;
	mesh_buf_init(&h, TRACE_EXTRA_HEADERS_BYTES);
	for (i = 0; i < hs->n_request_headers_to_add; i++) {
		const Envoy__Config__Core__V3__HeaderValue *hv =
			hs->request_headers_to_add[i] ? hs->request_headers_to_add[i]->header : NULL;

		/* a name or value that could split the request is left out */
		if (!hv || !hv->key || !hv->key[0] || strpbrk(hv->key, "\r\n:") ||
		    (hv->value && strpbrk(hv->value, "\r\n")))
			continue;
		mesh_buf_printf(&h, "%s: %s\r\n", hv->key, hv->value ? hv->value : "");
	}
	c->extra_headers = h.err ? NULL : strndup(h.data ? h.data : "", h.len);
	mesh_buf_cleanup(&h);
	if (!c->hostname || !c->endpoint || !c->cluster || !c->service_name || !c->extra_headers)
		rc = -ENOMEM;
	return rc;
}

/* The same from a grpc_service (Envoy's opentelemetry grpc_trace_exporter:
 * TraceService/Export to the cluster, authority, timeout; of the initial
 * metadata the authorization value, kept in extra_headers). */
static int tr__otlp_grpc_cfg(struct trace_cfg *c, const Envoy__Config__Trace__V3__OpenTelemetryConfig *oc)
{
	const Envoy__Config__Core__V3__GrpcService *gs = oc->grpc_service;
	const Envoy__Config__Core__V3__GrpcService__EnvoyGrpc *eg = gs->envoy_grpc;
	size_t i;

	c->otlp = TRACE_OTLP_GRPC;
	c->cluster = tr__dup(eg->cluster_name);
	c->hostname = tr__dup(eg->authority && eg->authority[0] ? eg->authority : eg->cluster_name);
	c->endpoint = tr__dup("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
	c->service_name = tr__dup(oc->service_name && oc->service_name[0] ? oc->service_name : "unknown_service:envoy");
	/* the one metadata grpc_client sends: authorization (a token for
	 * the collector, Istio's usual initialMetadata) */
	c->extra_headers = NULL;
	for (i = 0; i < gs->n_initial_metadata && !c->extra_headers; i++) {
		const Envoy__Config__Core__V3__HeaderValue *hv = gs->initial_metadata[i];

		if (hv && hv->key && !strcasecmp(hv->key, "authorization") && hv->value && !strpbrk(hv->value, "\r\n"))
			c->extra_headers = strdup(hv->value);
	}
	if (!c->extra_headers)
		c->extra_headers = tr__dup("");
	if (gs->timeout && (gs->timeout->seconds > 0 || gs->timeout->nanos > 0))
		c->timeout_ms = gs->timeout->seconds > 3600 ? 3600000u
							   : (uint32_t)(gs->timeout->seconds * 1000 + gs->timeout->nanos / 1000000);
	if (!c->timeout_ms)
		c->timeout_ms = TRACE_POST_TIMEOUT_MS;
	return c->cluster && c->hostname && c->endpoint && c->service_name && c->extra_headers ? 0 : -ENOMEM;
}

/* An OpenTelemetryConfig meshproxy can export for: OTLP/HTTP, or OTLP/gRPC
 * through Envoy's own gRPC client to a cluster (not google_grpc). */
static int tr__otlp_usable(const Envoy__Config__Trace__V3__OpenTelemetryConfig *oc)
{
	return oc->http_service ||
	       (oc->grpc_service && oc->grpc_service->target_specifier_case ==
					    ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC &&
		oc->grpc_service->envoy_grpc && oc->grpc_service->envoy_grpc->cluster_name &&
		oc->grpc_service->envoy_grpc->cluster_name[0]);
}

int trace_cfg_new(const px_tracing *t, struct trace_cfg **out, char *err, size_t cap)
{
	Envoy__Config__Trace__V3__ZipkinConfig *z = NULL;
	Envoy__Config__Trace__V3__OpenTelemetryConfig *oc = NULL;
	struct trace_cfg *c = NULL;
	const char *url;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!t || !t->provider || !t->provider->typed_config || !t->provider->typed_config->type_url)
		goto out;
	url = t->provider->typed_config->type_url;
	if (!strcmp(url, OTEL_URL)) {
		oc = envoy__config__trace__v3__open_telemetry_config__unpack(NULL, t->provider->typed_config->value.len,
									     t->provider->typed_config->value.data);
		if (!oc) {
			snprintf(err, cap, "tracing: OpenTelemetryConfig does not decode");
			rc = -EINVAL;
			goto out;
		}
		if (!tr__otlp_usable(oc))
			goto out; /* no exporter meshproxy has: requests are not traced */
	} else if (strcmp(url, ZIPKIN_URL)) {
		goto out; /* no tracer meshproxy has: requests are not traced */
	}
	if (!oc && !(z = envoy__config__trace__v3__zipkin_config__unpack(NULL, t->provider->typed_config->value.len,
									   t->provider->typed_config->value.data))) {
		snprintf(err, cap, "tracing: ZipkinConfig does not decode");
		rc = -EINVAL;
		goto out;
	}
	if (z && z->collector_endpoint_version != ENVOY__CONFIG__TRACE__V3__ZIPKIN_CONFIG__COLLECTOR_ENDPOINT_VERSION__HTTP_JSON) {
		snprintf(err, cap, "tracing: zipkin collector_endpoint_version %d: only HTTP_JSON is supported",
			 (int)z->collector_endpoint_version);
		rc = -EINVAL;
		goto out;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		rc = -ENOMEM;
		goto out;
	}
	/* Envoy's defaults: random 100 (Istio always sends it), client and overall 100 */
	c->random_pct = tr__pct(t->random_sampling, 100);
	c->client_pct = tr__pct(t->client_sampling, 100);
	c->overall_pct = tr__pct(t->overall_sampling, 100);
	c->max_path_len = t->max_path_tag_length ? t->max_path_tag_length->value : 256;
	if (oc) {
		/* Envoy's OpenTelemetry tracer: 128-bit trace ids */
		c->id128 = 1;
		rc = oc->http_service ? tr__otlp_cfg(c, oc) : tr__otlp_grpc_cfg(c, oc);
		if (rc < 0)
			goto out;
	} else {
		c->id128 = z->trace_id_128bit;
		c->cluster = tr__dup(z->collector_cluster);
		c->endpoint = tr__dup(z->collector_endpoint && z->collector_endpoint[0] ? z->collector_endpoint
											  : "/api/v2/spans");
		c->hostname = tr__dup(z->collector_hostname && z->collector_hostname[0] ? z->collector_hostname
											  : z->collector_cluster);
		c->service_name = tr__dup("");
		c->extra_headers = tr__dup("");
		c->timeout_ms = TRACE_POST_TIMEOUT_MS;
	}
	if (!c->cluster || !c->endpoint || !c->hostname || !c->service_name || !c->extra_headers ||
	    (t->n_custom_tags && !(c->tags = calloc(t->n_custom_tags, sizeof(*c->tags))))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < t->n_custom_tags; i++) {
		const Envoy__Type__Tracing__V3__CustomTag *ct = t->custom_tags[i];
		struct trace_tag *g = &c->tags[c->n_tags];

		if (!ct->tag || !ct->tag[0])
			continue;
		switch (ct->type_case) {
		case ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_LITERAL:
			g->kind = 0;
			g->value = tr__dup(ct->literal->value);
			break;
		case ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_ENVIRONMENT:
			g->kind = 1;
			g->value = tr__dup(ct->environment->name);
			g->dflt = tr__dup(ct->environment->default_value);
			break;
		case ENVOY__TYPE__TRACING__V3__CUSTOM_TAG__TYPE_REQUEST_HEADER:
			g->kind = 2;
			g->value = tr__dup(ct->request_header->name);
			g->dflt = tr__dup(ct->request_header->default_value);
			break;
		default:
			continue; /* a kind not carried: no tag */
		}
		g->tag = tr__dup(ct->tag);
		c->n_tags++;
		if (!g->tag || !g->value || (g->kind && !g->dflt)) {
			rc = -ENOMEM;
			goto out;
		}
		if (g->kind == 1) {
			/* the environment is read once, as Envoy does at config load */
			const char *v = getenv(g->value);

			free(g->value);
			g->value = tr__dup(v ? v : g->dflt);
			g->kind = 0;
			if (!g->value) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	*out = c;
	c = NULL;
out:
	if (z)
		envoy__config__trace__v3__zipkin_config__free_unpacked(z, NULL);
	if (oc)
		envoy__config__trace__v3__open_telemetry_config__free_unpacked(oc, NULL);
	trace_cfg_free(c);
	return rc;
}

/* --- trace context */

static int tr__is_hex(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F')))
			return 0;
	return 1;
}

static int tr__all_zero(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != '0')
			return 0;
	return 1;
}

/* A hex id of n digits into dst (lower case). */
static void tr__copy_id(char *dst, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 'a' : p[i]);
	dst[n] = '\0';
}

static void tr__hex64(char *dst, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++)
		dst[i] = hex[(v >> (60 - 4 * i)) & 0xf];
	dst[16] = '\0';
}

/* W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>" (Trace Context level 1,
 * 3.2): trace id and parent id, never all zero; *sampled from flag bit 0. */
static int tr__traceparent(struct trace_span *sp, struct h1_str v, int *sampled)
{
	const char *p = v.p;

	if (v.len < 55 || p[2] != '-' || p[35] != '-' || p[52] != '-' || !tr__is_hex(p, 2) ||
	    (p[0] == 'f' && p[1] == 'f') || !tr__is_hex(p + 3, 32) || !tr__is_hex(p + 36, 16) ||
	    !tr__is_hex(p + 53, 2) || tr__all_zero(p + 3, 32) || tr__all_zero(p + 36, 16) ||
	    (v.len > 55 && (p[0] == '0' && p[1] == '0')))
		return 0;
	tr__copy_id(sp->trace_id, p + 3, 32);
	tr__copy_id(sp->parent_id, p + 36, 16);
	*sampled = (p[54] >= '0' && p[54] <= '9' ? p[54] - '0' : (p[54] | 0x20) - 'a' + 10) & 1;
	return 1;
}

/* B3 single "TRACEID-SPANID[-SAMPLED[-PARENT]]" or just "SAMPLED"
 * (openzipkin/b3-propagation).  *sampled -1 when not given. */
static int tr__b3_single(struct trace_span *sp, struct h1_str v, int *sampled)
{
	const char *p = v.p, *dash;
	size_t tl;

	*sampled = -1;
	if (v.len == 1) {
		*sampled = p[0] == '1' || p[0] == 'd';
		return 0; /* a decision without ids: a new trace */
	}
	dash = memchr(p, '-', v.len);
	if (!dash)
		return 0;
	tl = (size_t)(dash - p);
	if ((tl != 16 && tl != 32) || !tr__is_hex(p, tl) || tr__all_zero(p, tl) || v.len < tl + 17 ||
	    !tr__is_hex(p + tl + 1, 16))
		return 0;
	tr__copy_id(sp->trace_id, p, tl);
	tr__copy_id(sp->parent_id, p + tl + 1, 16);
	if (v.len >= tl + 19 && p[tl + 17] == '-')
		*sampled = p[tl + 18] == '1' || p[tl + 18] == 'd';
	return 1;
}

static int tr__sampled_value(struct h1_str v)
{
	/* Envoy accepts "1" and "true" (and the b3 debug "d") */
	return (v.len == 1 && (v.p[0] == '1' || v.p[0] == 'd')) || (v.len == 4 && h1_str_ieq(v, "true"));
}

/* Header tags are read when the request starts: the head is not kept
 * until the span ends.  Cap on their values together. */
#define TRACE_HDR_TAG_BYTES 4096

static void tr__hdr_tags(struct trace_span *sp, const struct trace_cfg *cfg, const struct h1_head *h)
{
	struct mesh_buf b;
	size_t i;

	for (i = 0; i < cfg->n_tags && cfg->tags[i].kind != 2; i++)
		;
	if (i == cfg->n_tags)
		return;
	mesh_buf_init(&b, TRACE_HDR_TAG_BYTES);
	for (i = 0; i < cfg->n_tags; i++) {
		struct h1_str v;

		if (cfg->tags[i].kind != 2)
			continue;
		v = h1_head_get(h, cfg->tags[i].value);
		/* a value with a NUL or past the cap reads as absent (the default) */
		if (v.len && !memchr(v.p, '\0', v.len) && b.len + v.len + 1 < TRACE_HDR_TAG_BYTES)
			mesh_buf_append(&b, v.p, v.len);
		mesh_buf_append(&b, "", 1);
	}
	if (b.err)
		mesh_buf_cleanup(&b); /* no memory: the defaults */
	else
		sp->hdr_tags = b.data; /* taken */
}

void trace_start(struct trace_span *sp, const struct trace_cfg *cfg, const struct h1_head *h, uint64_t rnd1,
		 uint64_t rnd2, uint64_t now_us)
{
	struct h1_str v;
	int sampled = -1, have = 0;

	memset(sp, 0, sizeof(*sp));
	if (!cfg)
		return;
	sp->cfg = cfg;
	sp->start_us = now_us;
	/* B3 first, then W3C (Envoy's zipkin tracer: B3 is its own format,
	 * traceparent the fallback); this hop sends both */
	{
		struct h1_str tid = h1_head_get(h, "x-b3-traceid"), sid = h1_head_get(h, "x-b3-spanid");

		if ((tid.len == 16 || tid.len == 32) && tr__is_hex(tid.p, tid.len) && !tr__all_zero(tid.p, tid.len) &&
		    sid.len == 16 && tr__is_hex(sid.p, 16)) {
			tr__copy_id(sp->trace_id, tid.p, tid.len);
			tr__copy_id(sp->parent_id, sid.p, 16);
			have = 1;
		}
		if ((v = h1_head_get(h, "x-b3-sampled")).len)
			sampled = tr__sampled_value(v);
		if ((v = h1_head_get(h, "x-b3-flags")).len == 1 && v.p[0] == '1')
			sampled = 1; /* debug */
	}
	if (!have && (v = h1_head_get(h, "b3")).len) {
		int s1;

		have = tr__b3_single(sp, v, &s1);
		if (s1 >= 0)
			sampled = s1;
	}
	if (!have && (v = h1_head_get(h, "traceparent")).len) {
		int s1;

		if ((have = tr__traceparent(sp, v, &s1)) && sampled < 0)
			sampled = s1;
	}
	if (!have) {
		sp->parent_id[0] = '\0';
		if (cfg->id128) {
			tr__hex64(sp->trace_id, rnd2 ^ (now_us << 20));
			tr__hex64(sp->trace_id + 16, rnd1);
		} else {
			tr__hex64(sp->trace_id, rnd1);
		}
	}
	tr__hex64(sp->span_id, rnd2 ? rnd2 : 1);
	/* Envoy: x-envoy-force-trace wins, then the caller's decision, then
	 * random_sampling (a random draw in 0..9999 against percent * 100) */
	if (h1_head_get(h, "x-envoy-force-trace").len)
		sp->sampled = 1;
	else if (sampled >= 0)
		sp->sampled = sampled;
	else
		sp->sampled = (double)((rnd1 >> 11) % 10000) < cfg->random_pct * 100.0 &&
			      (double)((rnd2 >> 13) % 10000) < cfg->overall_pct * 100.0;
	if (sp->sampled)
		tr__hdr_tags(sp, cfg, h);
	/* Envoy's OpenTelemetry span keeps the caller's tracestate; a value
	 * past the cap or with a NUL is left out (no memory: left out too) */
	if (sp->sampled && cfg->otlp && have && (v = h1_head_get(h, "tracestate")).len &&
	    v.len <= TRACE_HDR_TAG_BYTES && !memchr(v.p, '\0', v.len))
		sp->tracestate = strndup(v.p, v.len);
}

void trace_span_cleanup(struct trace_span *sp)
{
	free(sp->hdr_tags);
	free(sp->tracestate);
	memset(sp, 0, sizeof(*sp));
}

int trace_is_ctx_header(struct h1_str n)
{
	if (n.len < 2)
		return 0;
	return h1_str_ieq(n, "traceparent") || h1_str_ieq(n, "b3") || h1_str_ieq(n, "x-b3-traceid") ||
	       h1_str_ieq(n, "x-b3-spanid") || h1_str_ieq(n, "x-b3-parentspanid") || h1_str_ieq(n, "x-b3-sampled") ||
	       h1_str_ieq(n, "x-b3-flags");
}

int trace_put_headers(const struct trace_span *sp, struct mesh_buf *b)
{
	size_t tl = strlen(sp->trace_id);

	if (!sp->cfg)
		return 0;
	mesh_buf_printf(b, "x-b3-traceid: %s\r\nx-b3-spanid: %s\r\n", sp->trace_id, sp->span_id);
	if (sp->parent_id[0])
		mesh_buf_printf(b, "x-b3-parentspanid: %s\r\n", sp->parent_id);
	mesh_buf_printf(b, "x-b3-sampled: %d\r\n", sp->sampled ? 1 : 0);
	return mesh_buf_printf(b, "traceparent: 00-%s%s-%s-%s\r\n", tl == 16 ? "0000000000000000" : "", sp->trace_id,
			       sp->span_id, sp->sampled ? "01" : "00");
}

/* --- the exporter */

struct tracer {
	struct ev_loop *loop;
	tracer_resolve_fn resolve;
	void *rctx;
	char *node_id, *service, *revision, *ns, *local_name;
	struct mesh_buf q;            /* queued spans, comma-separated JSON objects */
	size_t n_q;
	/* the collector of the spans queued (owned): all of one config's */
	char *cluster, *endpoint, *host, *service_name, *extra_headers;
	int otlp;
	uint32_t timeout_ms;
	struct mesh_buf span;         /* one OTLP span being encoded */
	/* an OTLP/gRPC Export in flight (instead of fd): ended from its
	 * callback through a deferred call, since a client is never freed
	 * inside its own callbacks */
	struct grpc_client *gc;
	struct ev_defer gc_end;
	int gc_status;
	/* the POST in flight */
	int fd;
	struct ev_io io;
	struct ev_timer flush, timeout;
	struct mesh_buf out;
	size_t out_off, n_out;
	char resp[64];
	size_t resp_len;
	unsigned warned;              /* failures since the last POST that worked (logged once) */
	struct tracer_stats st;
};

/* "k=v,k2=v2": the value of key, copied, or NULL. */
static char *tr__label(const char *labels, const char *key)
{
	size_t kl = strlen(key);
	const char *p = labels;

	while (p && *p) {
		const char *end = strchr(p, ','), *eq;
		size_t len = end ? (size_t)(end - p) : strlen(p);

		eq = memchr(p, '=', len);
		if (eq && (size_t)(eq - p) == kl && !memcmp(p, key, kl))
			return strndup(eq + 1, len - kl - 1);
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

static void tr__close(struct tracer *t)
{
	if (t->fd >= 0) {
		ev_io_stop(t->loop, &t->io);
		close(t->fd);
		t->fd = -1;
	}
	if (t->gc) {
		grpc_client_free(t->gc);
		t->gc = NULL;
	}
	ev_defer_cancel(t->loop, &t->gc_end);
	ev_timer_cancel(t->loop, &t->timeout);
	mesh_buf_reset(&t->out);
	t->out_off = 0;
	t->n_out = 0;
	t->resp_len = 0;
}

static void tr__send(struct tracer *t);
static void tr__otlp_request(struct tracer *t);

/* The POST ended: ok if the collector answered 2xx. */
static void tr__done(struct tracer *t, int ok)
{
	if (ok) {
		t->warned = 0;
		if (t->otlp) {
			t->st.otlp_reports_ok++;
			t->st.otlp_spans_sent += t->n_out;
		} else {
			t->st.posts_ok++;
			t->st.spans_sent += t->n_out;
		}
	} else {
		if (t->otlp)
			t->st.otlp_reports_failed++;
		else
			t->st.posts_failed++;
		t->st.spans_dropped += t->n_out;
		if (!t->warned++)
			log_info("tracing", "%s POST to %s failed: %zu spans dropped (said once until a POST works)",
				 t->otlp ? "OTLP" : "zipkin", t->cluster ? t->cluster : "?", t->n_out);
		log_debug("tracing", "%s POST to %s failed: %zu spans dropped", t->otlp ? "OTLP" : "zipkin",
			  t->cluster ? t->cluster : "?", t->n_out);
	}
	tr__close(t);
	if (t->n_q >= TRACE_BATCH)
		tr__send(t);
	else if (t->n_q && !ev_timer_armed(&t->flush))
		ev_timer_arm(t->loop, &t->flush, TRACE_FLUSH_MS);
}

static void tr__io(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct tracer *t = io->data;
	ssize_t n;

	(void)loop;
	if (t->out_off < t->out.len) {
		if (!(events & (EV_WRITE | EV_ERROR)))
			return;
		n = send(t->fd, t->out.data + t->out_off, t->out.len - t->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				tr__done(t, 0);
			return;
		}
		t->out_off += (size_t)n;
		if (t->out_off == t->out.len && ev_io_set(t->loop, &t->io, EV_READ) < 0)
			tr__done(t, 0);
		return;
	}
	n = recv(t->fd, t->resp + t->resp_len, sizeof(t->resp) - 1 - t->resp_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		t->resp_len += (size_t)n;
	t->resp[t->resp_len] = '\0';
	/* the status line is all that matters: "HTTP/1.x 2xx" */
	if (t->resp_len >= 12 || n <= 0)
		tr__done(t, t->resp_len >= 12 && !strncmp(t->resp, "HTTP/1.", 7) && t->resp[9] == '2');
}

static void tr__timeout(struct ev_loop *loop, struct ev_timer *tm)
{
	(void)loop;
	tr__done(tm->data, 0);
}

/* A POST (or an Export call) is in flight. */
static int tr__busy(const struct tracer *t)
{
	return t->fd >= 0 || t->gc;
}

static void tr__gc_message(void *ctx, const uint8_t *msg, size_t len)
{
	/* ExportTraceServiceResponse: a partial success is still a success */
	(void)ctx;
	(void)msg;
	(void)len;
}

static void tr__gc_close(void *ctx, int status, const char *message)
{
	struct tracer *t = ctx;

	if (status != GRPC_STATUS_OK)
		log_debug("tracing", "OTLP/gRPC Export to %s: status %d %s", t->cluster ? t->cluster : "?", status,
			  message ? message : "");
	t->gc_status = status;
	ev_defer(t->loop, &t->gc_end);
}

static void tr__gc_end(struct ev_loop *loop, struct ev_defer *d)
{
	struct tracer *t = d->data;

	(void)loop;
	tr__done(t, t->gc_status == GRPC_STATUS_OK);
}

/* The Export call of OTLP/gRPC (opentelemetry.proto.collector.trace.v1
 * TraceService, unary): t->out holds the message. */
static int tr__gc_start(struct tracer *t, const struct sockaddr_storage *ss, socklen_t len)
{
	static const struct grpc_call_cbs cbs = { tr__gc_message, tr__gc_close };
	struct grpc_client_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.connect_timeout_ms = t->timeout_ms;
	/* read while the call starts only (nghttp2 copies the headers) */
	o.authorization = t->extra_headers && t->extra_headers[0] ? t->extra_headers : NULL;
	t->gc = NULL;
	rc = grpc_client_new(t->loop, (const struct sockaddr *)ss, len, t->host, t->endpoint, &o, &cbs, t, &t->gc);
	if (rc == 0)
		rc = grpc_client_send(t->gc, t->out.data, t->out.len);
	if (rc == 0)
		rc = grpc_client_close_send(t->gc);
	mesh_buf_reset(&t->out);
	return rc;
}

/* Start a POST of what is queued (up to the whole queue: at most
 * TRACE_QUEUE_MAX spans). */
static void tr__send(struct tracer *t)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd = -1;

	ev_timer_cancel(t->loop, &t->flush);
	if (tr__busy(t) || !t->n_q)
		return;
	t->n_out = t->n_q;
	if (!t->cluster || !t->resolve || t->resolve(t->rctx, t->cluster, &ss, &len) < 0) {
		/* no collector in the config: the batch is dropped, as Envoy's */
		if (!t->warned++)
			log_info("tracing", "collector cluster %s has no host: %zu spans dropped (said once until a POST works)",
				 t->cluster ? t->cluster : "(none)", t->n_q);
		if (t->otlp)
			t->st.otlp_reports_failed++;
		else
			t->st.posts_failed++;
		t->st.spans_dropped += t->n_q;
		mesh_buf_reset(&t->q);
		t->n_q = 0;
		t->n_out = 0;
		return;
	}
	if (t->otlp) {
		tr__otlp_request(t);
		t->st.otlp_reports_sent++;
	} else {
		mesh_buf_printf(&t->out,
				"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
				"connection: close\r\n\r\n[",
				t->endpoint, t->host, t->q.len + 2);
		mesh_buf_append(&t->out, t->q.data, t->q.len);
		mesh_buf_putc(&t->out, ']');
	}
	mesh_buf_reset(&t->q);
	t->n_q = 0;
	if (t->out.err)
		goto fail;
	if (t->otlp == TRACE_OTLP_GRPC) {
		if (tr__gc_start(t, &ss, len) < 0)
			goto fail;
		ev_timer_arm(t->loop, &t->timeout, t->timeout_ms ? t->timeout_ms : TRACE_POST_TIMEOUT_MS);
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS))
		goto fail;
	t->fd = fd;
	ev_io_init(&t->io, fd, tr__io, t);
	if (ev_io_start(t->loop, &t->io, EV_WRITE) < 0) {
		t->fd = -1;
		goto fail;
	}
	ev_timer_arm(t->loop, &t->timeout, t->timeout_ms ? t->timeout_ms : TRACE_POST_TIMEOUT_MS);
	return;
fail:
	if (fd >= 0)
		close(fd);
	tr__done(t, 0);
}

static void tr__flush(struct ev_loop *loop, struct ev_timer *tm)
{
	(void)loop;
	tr__send(tm->data);
}

struct tracer *tracer_new(struct ev_loop *loop, const char *node_id, const char *labels, tracer_resolve_fn resolve,
			  void *ctx)
{
	struct tracer *t = calloc(1, sizeof(*t));
	const char *pod = NULL, *p;
	char *podname = NULL;
	int ok;

	if (!t)
		return NULL;
	t->loop = loop;
	t->resolve = resolve;
	t->rctx = ctx;
	t->fd = -1;
	mesh_buf_init(&t->q, TRACE_QUEUE_BYTES);
	mesh_buf_init(&t->out, TRACE_QUEUE_BYTES + TRACE_EXTRA_HEADERS_BYTES + 1024);
	mesh_buf_init(&t->span, TRACE_SPAN_BYTES);
	ev_timer_init(&t->flush, tr__flush, t);
	ev_timer_init(&t->timeout, tr__timeout, t);
	ev_defer_init(&t->gc_end, tr__gc_end, t);
	node_id = node_id ? node_id : "";
	labels = labels ? labels : "";
	/* TYPE~IP~POD.NS~NS.svc.cluster.local */
	if ((p = strchr(node_id, '~')) && (p = strchr(p + 1, '~')))
		pod = p + 1;
	if (pod) {
		const char *tilde = strchr(pod, '~'), *dot;
		size_t plen = tilde ? (size_t)(tilde - pod) : strlen(pod);

		dot = memchr(pod, '.', plen);
		podname = strndup(pod, dot ? (size_t)(dot - pod) : plen);
		t->ns = dot ? strndup(dot + 1, plen - (size_t)(dot - pod) - 1) : NULL;
	}
	t->node_id = strdup(node_id);
	t->service = tr__label(labels, "service.istio.io/canonical-name");
	if (!t->service)
		t->service = tr__label(labels, "app.kubernetes.io/name");
	if (!t->service)
		t->service = tr__label(labels, "app");
	if (!t->service)
		t->service = strdup(podname ? podname : "unknown");
	t->revision = tr__label(labels, "service.istio.io/canonical-revision");
	if (!t->revision)
		t->revision = tr__label(labels, "app.kubernetes.io/version");
	if (!t->revision)
		t->revision = tr__label(labels, "version");
	if (!t->revision)
		t->revision = strdup("latest");
	if (!t->ns)
		t->ns = strdup("default");
	ok = t->node_id && t->service && t->revision && t->ns;
	if (ok) {
		/* Envoy's local service name: Istio's --service-cluster, "NAME.NS" */
		size_t n = strlen(t->service) + strlen(t->ns) + 2;

		ok = (t->local_name = malloc(n)) != NULL;
		if (ok)
			snprintf(t->local_name, n, "%s.%s", t->service, t->ns);
	}
	free(podname);
	if (!ok) {
		tracer_free(t);
		return NULL;
	}
	return t;
}

void tracer_free(struct tracer *t)
{
	if (!t)
		return;
	tr__close(t);
	ev_timer_cancel(t->loop, &t->flush);
	mesh_buf_cleanup(&t->q);
	mesh_buf_cleanup(&t->out);
	mesh_buf_cleanup(&t->span);
	free(t->node_id);
	free(t->service);
	free(t->revision);
	free(t->ns);
	free(t->local_name);
	free(t->cluster);
	free(t->endpoint);
	free(t->host);
	free(t->service_name);
	free(t->extra_headers);
	free(t);
}

void tracer_get_stats(const struct tracer *t, struct tracer_stats *out)
{
	if (t)
		*out = t->st;
	else
		memset(out, 0, sizeof(*out));
}


/* --- span tags, the same for both formats (Istio's and Envoy's HTTP tags) */

typedef void (*tr__put_fn)(void *ctx, const char *k, const char *v, size_t vlen);

static void tr__tags(const struct tracer *t, const struct trace_span *sp, const struct trace_end *x, size_t plen,
		     tr__put_fn put, void *ctx)
{
	const struct trace_cfg *c = sp->cfg;
	const char *ht = sp->hdr_tags;
	char num[32], url[8192];
	size_t i, ul;
	int n;

#define PUTZ(k, v) put(ctx, (k), (v), strlen(v))
	PUTZ("component", "proxy");
	PUTZ("istio.canonical_service", t->service);
	PUTZ("istio.canonical_revision", t->revision);
	PUTZ("istio.mesh_id", "cluster.local");
	PUTZ("istio.namespace", t->ns);
	PUTZ("node_id", t->node_id);
	put(ctx, "http.method", x->method ? x->method : "", x->method ? x->method_len : 0);
	/* http.url: scheme, authority and path, capped at max_path_tag_length */
	n = snprintf(url, sizeof(url), "http://%.*s%.*s", (int)(x->authority ? x->authority_len : 0),
		     x->authority ? x->authority : "", (int)plen, x->path ? x->path : "");
	ul = n < 0 ? 0 : (size_t)n < sizeof(url) ? (size_t)n : sizeof(url) - 1;
	if (c->max_path_len && ul > c->max_path_len)
		ul = c->max_path_len;
	put(ctx, "http.url", url, ul);
	put(ctx, "http.protocol", x->protocol ? x->protocol : "", x->protocol ? x->protocol_len : 0);
	snprintf(num, sizeof(num), "%d", x->status);
	PUTZ("http.status_code", num);
	if (x->status >= 500 || x->status == 0)
		PUTZ("error", "true");
	PUTZ("upstream_cluster", x->cluster ? x->cluster : "-");
	PUTZ("upstream_cluster.name", x->cluster ? x->cluster : "-");
	PUTZ("peer.address", x->peer_address ? x->peer_address : "");
	PUTZ("response_flags", x->response_flags ? x->response_flags : "-");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)x->request_size);
	PUTZ("request_size", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)x->response_size);
	PUTZ("response_size", num);
	put(ctx, "guid:x-request-id", x->request_id ? x->request_id : "", x->request_id ? x->request_id_len : 0);
	put(ctx, "user_agent", x->user_agent ? x->user_agent : "-", x->user_agent ? x->user_agent_len : 1);
	PUTZ("downstream_cluster", "-");
	for (i = 0; i < c->n_tags; i++) {
		const struct trace_tag *g = &c->tags[i];

		if (g->kind == 2) {
			struct h1_str hv = { NULL, 0 };

			if (ht) {
				hv.p = ht;
				hv.len = strlen(ht);
				ht += hv.len + 1;
			} else if (x->req) {
				hv = h1_head_get(x->req, g->value);
			}
			if (hv.len)
				put(ctx, g->tag, hv.p, hv.len);
			else if (g->dflt && g->dflt[0])
				PUTZ(g->tag, g->dflt);
		} else {
			PUTZ(g->tag, g->value);
		}
	}
#undef PUTZ
}

/* --- Zipkin v2 JSON */

struct tr__json {
	struct mesh_buf *b;
	int first;
};

static void tr__json_put(void *ctx, const char *k, const char *v, size_t vlen)
{
	struct tr__json *j = ctx;

	if (!j->first)
		mesh_buf_putc(j->b, ',');
	j->first = 0;
	json_put_string(j->b, k);
	mesh_buf_putc(j->b, ':');
	json_put_stringn(j->b, v, vlen);
}

static void tr__zipkin_span(const struct tracer *t, const struct trace_span *sp, const struct trace_end *x,
			    const char *name, size_t name_len, size_t plen, struct mesh_buf *b)
{
	struct tr__json j = { b, 1 };

	if (t->n_q)
		mesh_buf_putc(b, ',');
	mesh_buf_printf(b, "{\"traceId\":\"%s\",\"id\":\"%s\"", sp->trace_id, sp->span_id);
	if (sp->parent_id[0])
		mesh_buf_printf(b, ",\"parentId\":\"%s\"", sp->parent_id);
	mesh_buf_puts(b, ",\"name\":");
	json_put_stringn(b, name, name_len);
	mesh_buf_printf(b, ",\"kind\":\"%s\",\"timestamp\":%llu,\"duration\":%llu", x->inbound ? "SERVER" : "CLIENT",
			(unsigned long long)sp->start_us,
			(unsigned long long)(x->end_us > sp->start_us ? x->end_us - sp->start_us : 1));
	mesh_buf_puts(b, ",\"localEndpoint\":{\"serviceName\":");
	json_put_string(b, t->local_name);
	mesh_buf_puts(b, "}");
	if (x->upstream_host) {
		const char *colon = strrchr(x->upstream_host, ':');

		if (colon && x->upstream_host[0] != '[') {
			mesh_buf_puts(b, ",\"remoteEndpoint\":{\"ipv4\":");
			json_put_stringn(b, x->upstream_host, (size_t)(colon - x->upstream_host));
			mesh_buf_printf(b, ",\"port\":%d}", atoi(colon + 1));
		}
	}
	mesh_buf_puts(b, ",\"tags\":{");
	tr__tags(t, sp, x, plen, tr__json_put, &j);
	mesh_buf_puts(b, "}}");
}

/* --- OTLP protobuf
 *
 * Written here rather than packed by protobuf-c: a span's strings are
 * (pointer, length) views into the request that protobuf-c would need
 * copied NUL-terminated, one allocation per attribute, and the request's
 * framing (resource, scope) around spans encoded earlier cannot be built
 * from pre-encoded bytes with it either.  The wire format is small:
 * varints, length-delimited fields and fixed64 (the unit test decodes the
 * result with the protobuf-c code of proto/opentelemetry/). */

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2 };

static size_t pb__vlen(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void pb__varint(struct mesh_buf *b, uint64_t v)
{
	char tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (char)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (char)v;
	mesh_buf_append(b, tmp, n);
}

static void pb__tag(struct mesh_buf *b, unsigned field, unsigned wt)
{
	pb__varint(b, (uint64_t)field << 3 | wt);
}

static void pb__bytes(struct mesh_buf *b, unsigned field, const void *p, size_t n)
{
	pb__tag(b, field, PB_LEN);
	pb__varint(b, n);
	mesh_buf_append(b, p, n);
}

static void pb__fixed64(struct mesh_buf *b, unsigned field, uint64_t v)
{
	char le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = (char)(v >> (8 * i));
	pb__tag(b, field, PB_FIXED64);
	mesh_buf_append(b, le, 8);
}

/* KeyValue{key, AnyValue{string_value}} as field `field` (Envoy's
 * OpenTelemetry tracer sets every tag as a string). */
static void pb__kv(struct mesh_buf *b, unsigned field, const char *k, const char *v, size_t vlen)
{
	size_t kl = strlen(k), av = 1 + pb__vlen(vlen) + vlen;

	pb__tag(b, field, PB_LEN);
	pb__varint(b, 1 + pb__vlen(kl) + kl + 1 + pb__vlen(av) + av);
	pb__bytes(b, 1, k, kl);
	pb__tag(b, 2, PB_LEN);
	pb__varint(b, av);
	pb__bytes(b, 1, v, vlen);
}

static void tr__otlp_put(void *ctx, const char *k, const char *v, size_t vlen)
{
	pb__kv(ctx, 9, k, v, vlen); /* Span.attributes */
}

/* n hex digits as bytes, left-padded with zero bytes to out_len. */
static void tr__unhex(const char *hex, size_t n, unsigned char *out, size_t out_len)
{
	size_t i, pad = out_len - n / 2;

	memset(out, 0, pad);
	for (i = 0; i < n / 2; i++) {
		int hi = hex[2 * i], lo = hex[2 * i + 1];

		hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
		lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
		out[pad + i] = (unsigned char)(hi << 4 | lo);
	}
}

/* One Span (opentelemetry.proto.trace.v1) into t->span, then onto the
 * queue as a ScopeSpans.spans entry.  As Envoy's OpenTelemetry tracer:
 * SERVER on inbound, CLIENT on outbound, the operation name, the tags as
 * string attributes; status ERROR where the span has the error tag (so
 * that OTLP backends show it failed). */
static void tr__otlp_span(struct tracer *t, const struct trace_span *sp, const struct trace_end *x, const char *name,
			  size_t name_len, size_t plen)
{
	struct mesh_buf *b = &t->span;
	unsigned char id[16];

	mesh_buf_reset(b);
	tr__unhex(sp->trace_id, strlen(sp->trace_id), id, 16);
	pb__bytes(b, 1, id, 16);
	tr__unhex(sp->span_id, 16, id, 8);
	pb__bytes(b, 2, id, 8);
	if (sp->tracestate)
		pb__bytes(b, 3, sp->tracestate, strlen(sp->tracestate));
	if (sp->parent_id[0]) {
		tr__unhex(sp->parent_id, 16, id, 8);
		pb__bytes(b, 4, id, 8);
	}
	pb__bytes(b, 5, name, name_len);
	pb__tag(b, 6, PB_VARINT);
	pb__varint(b, x->inbound ? 2 : 3);
	pb__fixed64(b, 7, sp->start_us * 1000);
	pb__fixed64(b, 8, (x->end_us > sp->start_us ? x->end_us : sp->start_us + 1) * 1000);
	tr__tags(t, sp, x, plen, tr__otlp_put, b);
	if (x->status >= 500 || x->status == 0) {
		/* Status{code: STATUS_CODE_ERROR} */
		pb__tag(b, 15, PB_LEN);
		pb__varint(b, 2);
		pb__tag(b, 3, PB_VARINT);
		pb__varint(b, 2);
	}
	if (b->err)
		return;
	pb__tag(&t->q, 2, PB_LEN);
	pb__varint(&t->q, b->len);
	mesh_buf_append(&t->q, b->data, b->len);
}

/* The queued spans as one ExportTraceServiceRequest (resource_spans[0] =
 * {resource {service.name}, scope_spans[0] = {spans}}) into t->out: an
 * OTLP/HTTP POST, or the OTLP/gRPC Export message. */
static void tr__otlp_request(struct tracer *t)
{
	size_t sl = strlen(t->service_name ? t->service_name : ""), kv, res, rs;

	/* Resource.attributes[0] = KeyValue{"service.name", string} */
	kv = 1 + 1 + 12 + 1 + pb__vlen(1 + pb__vlen(sl) + sl) + 1 + pb__vlen(sl) + sl;
	res = 1 + pb__vlen(kv) + kv;
	rs = 1 + pb__vlen(res) + res + 1 + pb__vlen(t->q.len) + t->q.len;
	/* OTLP/gRPC: the message alone (grpc_client frames it) */
	if (t->otlp == TRACE_OTLP_HTTP)
		mesh_buf_printf(&t->out,
				"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/x-protobuf\r\n"
				"content-length: %zu\r\n%sconnection: close\r\n\r\n",
				t->endpoint, t->host, 1 + pb__vlen(rs) + rs, t->extra_headers ? t->extra_headers : "");
	pb__tag(&t->out, 1, PB_LEN); /* ExportTraceServiceRequest.resource_spans */
	pb__varint(&t->out, rs);
	pb__tag(&t->out, 1, PB_LEN); /* ResourceSpans.resource */
	pb__varint(&t->out, res);
	pb__kv(&t->out, 1, "service.name", t->service_name ? t->service_name : "", sl);
	pb__tag(&t->out, 2, PB_LEN); /* ResourceSpans.scope_spans: ScopeSpans{spans...} */
	pb__varint(&t->out, t->q.len);
	mesh_buf_append(&t->out, t->q.data, t->q.len);
}

/* --- finishing a span */

static int tr__set_str(char **dst, const char *src)
{
	if (*dst && !strcmp(*dst, src))
		return 0;
	free(*dst);
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int tr__same_dest(const struct tracer *t, const struct trace_cfg *c)
{
	return t->cluster && t->otlp == c->otlp && !strcmp(t->cluster, c->cluster) && !strcmp(t->endpoint, c->endpoint) &&
	       !strcmp(t->host, c->hostname) && !strcmp(t->service_name, c->service_name) &&
	       !strcmp(t->extra_headers, c->extra_headers) && t->timeout_ms == c->timeout_ms;
}

/* Make c's collector the queue's: what is queued for another goes first
 * (sent now, or dropped and counted while a POST is in flight). */
static int tr__dest(struct tracer *t, const struct trace_cfg *c)
{
	if (tr__same_dest(t, c))
		return 0;
	if (t->n_q && !tr__busy(t))
		tr__send(t);
	if (t->n_q) {
		t->st.spans_dropped += t->n_q;
		mesh_buf_reset(&t->q);
		t->n_q = 0;
	}
	t->otlp = c->otlp;
	t->timeout_ms = c->timeout_ms;
	if (tr__set_str(&t->cluster, c->cluster) < 0 || tr__set_str(&t->endpoint, c->endpoint) < 0 ||
	    tr__set_str(&t->host, c->hostname) < 0 || tr__set_str(&t->service_name, c->service_name) < 0 ||
	    tr__set_str(&t->extra_headers, c->extra_headers) < 0) {
		/* partly set: never taken for the same collector */
		free(t->cluster);
		t->cluster = NULL;
		return -ENOMEM;
	}
	return 0;
}

void tracer_finish(struct tracer *t, struct trace_span *sp, const struct trace_end *x)
{
	const struct trace_cfg *c = sp->cfg;
	struct mesh_buf *b = &t->q;
	size_t mark, i, plen;
	char name[512];
	int n;

	if (!c || !sp->sampled)
		goto out;
	if (t->n_q >= TRACE_QUEUE_MAX || tr__dest(t, c) < 0) {
		t->st.spans_dropped++;
		goto out;
	}
	mark = b->len;
	/* the route decorator's operation, else Envoy's default operation name
	 * for a sidecar: "AUTHORITY/PATH" without the query */
	plen = x->path ? x->path_len : 0;
	for (i = 0; i < plen; i++)
		if (x->path[i] == '?')
			break;
	if (x->operation)
		n = snprintf(name, sizeof(name), "%.*s", (int)x->operation_len, x->operation);
	else
		n = snprintf(name, sizeof(name), "%.*s%.*s", (int)(x->authority ? x->authority_len : 0),
			     x->authority ? x->authority : "", (int)i, x->path ? x->path : "");
	n = n < 0 ? 0 : (size_t)n < sizeof(name) ? n : (int)sizeof(name) - 1;
	if (c->otlp)
		tr__otlp_span(t, sp, x, name, (size_t)n, plen);
	else
		tr__zipkin_span(t, sp, x, name, (size_t)n, plen, b);
	if (b->err || (c->otlp && t->span.err)) {
		/* over a byte cap: this span is dropped, the queue kept whole */
		b->err = 0;
		b->len = mark;
		t->span.err = 0;
		t->st.spans_dropped++;
		goto out;
	}
	t->n_q++;
	t->st.spans_queued++;
	if (t->n_q >= TRACE_BATCH && !tr__busy(t))
		tr__send(t);
	else if (!ev_timer_armed(&t->flush) && !tr__busy(t))
		ev_timer_arm(t->loop, &t->flush, TRACE_FLUSH_MS);
out:
	trace_span_cleanup(sp);
}
