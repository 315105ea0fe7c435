/*
 * stats.c - the istio.stats filters (issue 14): Istio's stats plugin
 * configuration (stats.PluginConfig, proto/istio/stats/config.proto) of a
 * workload's effective Telemetry metrics, as istiod's
 * pilot/pkg/model/telemetry.go generateStatsConfig builds it, for the
 * HTTP filter "istio.stats" in sidecar and gateway connection managers
 * and the network filter of the same name on TCP chains.
 *
 * Providers of kind prometheus only (Istio's stats filter is its sink:
 * the built-in "prometheus" or an extensionProviders entry with a
 * prometheus field; the first by name when several apply); the
 * workload's client mode serves outbound listeners and gateways, its
 * server mode inbound ones.  A mode with ALL_METRICS disabled, or no
 * prometheus provider at all, gets no filter: the proxy then reports no
 * istio_* series for those listeners.  Pure: builds into the caller's
 * arena.
 */
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/telemetry.h"

#include "istio/stats/config.pb-c.h"

#include <errno.h>
#include <string.h>

/* IstioMetric -> the name the stats plugin knows (telemetry.go
 * metricToPrometheusMetric); anything else is a custom metric's own name */
static const char *const gen_stats_names[][2] = {
	{ "REQUEST_COUNT", "requests_total" },
	{ "REQUEST_DURATION", "request_duration_milliseconds" },
	{ "REQUEST_SIZE", "request_bytes" },
	{ "RESPONSE_SIZE", "response_bytes" },
	{ "TCP_OPENED_CONNECTIONS", "tcp_connections_opened_total" },
	{ "TCP_CLOSED_CONNECTIONS", "tcp_connections_closed_total" },
	{ "TCP_SENT_BYTES", "tcp_sent_bytes_total" },
	{ "TCP_RECEIVED_BYTES", "tcp_received_bytes_total" },
	{ "GRPC_REQUEST_MESSAGES", "request_messages_total" },
	{ "GRPC_RESPONSE_MESSAGES", "response_messages_total" },
};

static const char *gen_stats_metric_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(gen_stats_names) / sizeof(gen_stats_names[0]); i++)
		if (!strcmp(name, gen_stats_names[i][0]))
			return gen_stats_names[i][1];
	return name;
}

static int gen_stats_metric(struct arena *a, const struct model_tel_metric *o, Stats__MetricConfig **out)
{
	Stats__MetricConfig *mc = gen__msg(a, &stats__metric_config__descriptor);
	size_t i, n_rm = 0, n_dim = 0;

	if (!mc)
		return -ENOMEM;
	mc->name = (char *)gen_stats_metric_name(o->name);
	mc->drop = o->disabled;
	if (o->n_tags && (!(mc->tags_to_remove = arena_calloc(a, o->n_tags, sizeof(char *))) ||
			  !(mc->dimensions = arena_calloc(a, o->n_tags, sizeof(*mc->dimensions)))))
		return -ENOMEM;
	/* tags come sorted by name: the map's entries too, so equal
	 * configurations encode to equal bytes */
	for (i = 0; i < o->n_tags; i++) {
		const struct model_tel_tag *t = &o->tags[i];

		if (t->remove) {
			mc->tags_to_remove[n_rm++] = (char *)t->name;
		} else {
			Stats__MetricConfig__DimensionsEntry *e =
				gen__msg(a, &stats__metric_config__dimensions_entry__descriptor);

			if (!e)
				return -ENOMEM;
			e->key = (char *)t->name;
			e->value = (char *)(t->value ? t->value : "");
			mc->dimensions[n_dim++] = e;
		}
	}
	mc->n_tags_to_remove = n_rm;
	mc->n_dimensions = n_dim;
	*out = mc;
	return 0;
}

int gen__stats_config(struct arena *a, const struct model_telemetry *t, enum gen__stats_class cls,
		      Google__Protobuf__Any **out)
{
	const struct model_tel_metrics_provider *prov = NULL;
	const struct model_tel_metrics_mode *mode;
	Stats__PluginConfig pc = STATS__PLUGIN_CONFIG__INIT;
	size_t i;
	int rc = 0;

	*out = NULL;
	for (i = 0; i < t->n_metrics; i++)
		if (t->metrics[i].prometheus && !prov)
			prov = &t->metrics[i];
	if (!prov)
		goto out;
	mode = cls == GEN_STATS_INBOUND ? &prov->server : &prov->client;
	if (mode->disabled)
		goto out;
	/* the Host header names no in-mesh service where traffic comes from
	 * outside (telemetry.go disableHostHeaderFallback) */
	pc.disable_host_header_fallback = cls != GEN_STATS_OUTBOUND;
	if (prov->reporting_interval > 0 && !(pc.tcp_reporting_duration = gen__duration(a, prov->reporting_interval))) {
		rc = -ENOMEM;
		goto out;
	}
	if (mode->n_overrides &&
	    !(pc.metrics = arena_calloc(a, mode->n_overrides, sizeof(*pc.metrics)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < mode->n_overrides; i++) {
		rc = gen_stats_metric(a, &mode->overrides[i], &pc.metrics[pc.n_metrics]);
		if (rc < 0)
			goto out;
		pc.n_metrics++;
	}
	if (!(*out = gen__any(a, &pc.base)))
		rc = -ENOMEM;
out:
	return rc;
}

Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *gen__stats_http_filter(struct arena *a,
												   Google__Protobuf__Any *cfg)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f;

	if (!cfg || !(f = gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor)))
		return NULL;
	f->name = GEN_STATS_FILTER;
	f->config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = cfg;
	return f;
}

int gen__stats_chains(struct arena *a, Google__Protobuf__Any *cfg, Envoy__Config__Listener__V3__FilterChain **chains,
		      size_t n)
{
	size_t i, k;

	for (i = 0; cfg && i < n; i++) {
		Envoy__Config__Listener__V3__FilterChain *c = chains[i];
		Envoy__Config__Listener__V3__Filter **v, *last;

		if (!c || !c->n_filters)
			continue;
		last = c->filters[c->n_filters - 1];
		/* Istio's TCP chains: the stats filter right before the TCP
		 * proxy (after RBAC); the blackhole chains carry none */
		if (!last->name || strcmp(last->name, "envoy.filters.network.tcp_proxy") ||
		    (c->name && strstr(c->name, "blackhole")))
			continue;
		for (k = 0; k < c->n_filters; k++)
			if (c->filters[k]->name && !strcmp(c->filters[k]->name, GEN_STATS_FILTER))
				break;
		if (k < c->n_filters)
			continue; /* a chain shared by two listeners: done already */
		v = arena_calloc(a, c->n_filters + 1, sizeof(*v));
		if (!v || !(v[c->n_filters - 1] = gen__net_filter(a, GEN_STATS_FILTER, cfg)))
			return -ENOMEM;
		memcpy(v, c->filters, (c->n_filters - 1) * sizeof(*v));
		v[c->n_filters] = last;
		c->filters = v;
		c->n_filters++;
	}
	return 0;
}
