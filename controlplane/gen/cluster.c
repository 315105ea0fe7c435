/*
 * cluster.c - CDS: the outbound clusters.
 *
 * Per service port, "outbound|PORT||HOST" and one
 * "outbound|PORT|SUBSET|HOST" per subset of the DestinationRule that
 * applies (looked up from the service's namespace), its policy merged by
 * model_dr_policy().  Every cluster is EDS over ADS.  Load balancing is
 * RING_HASH when the policy asks for a consistent hash; otherwise, when
 * the profile has least_request, the policy's simple LEAST_REQUEST or
 * RANDOM (LEAST_REQUEST by default, as Istio sends sidecars), else
 * ROUND_ROBIN (gRPC 1.51 rejects LEAST_REQUEST, RANDOM and MAGLEV).
 * connectionPool becomes circuit-breaker thresholds, outlierDetection
 * becomes outlier_detection with success-rate ejection off, as Istio
 * sends them.  mTLS (DestinationRule ISTIO_MUTUAL, auto mTLS) comes from
 * gen__upstream_tls().
 */
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <string.h>

/* Outlier detection: the enforcement percentage of an enabled detector. */
#define GEN_ENFORCE_ON 100u
/* The key of typed_extension_protocol_options Istio uses. */
#define GEN_HTTP_OPTIONS "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

bool gen__dns_cluster(const struct gen_ctx *g, const struct model_service *svc)
{
	return g->p->cluster_extras &&
	       (svc->resolution == CFG_RESOLUTION_DNS || svc->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN);
}

/* ---------------------------------------------------------------- CDS */

/* Optional uint32 wrapper: NULL-and-ok when the config value is not set
 * (<= 0).  Returns false on out-of-memory. */
static bool gen_opt_u32(struct arena *a, int64_t v, Google__Protobuf__UInt32Value **out)
{
	*out = NULL;
	if (v <= 0)
		return true;
	*out = gen__u32(a, gen__clamp_u32(v));
	return *out != NULL;
}

/* cp may be NULL (no connectionPool): with defaults (Istio's
 * getDefaultCircuitBreakerThresholds: every limit at its maximum,
 * track_remaining) the unset limits are sent at their maximum. */
/* Istio's applyRetryBudget: percent 20 and min concurrency 3 by default. */
#define GEN_RETRY_BUDGET_PERCENT 20.0
#define GEN_RETRY_BUDGET_MIN_CONCURRENCY 3u

static int gen_retry_budget(struct arena *a, const struct cfg_retry_budget *rb,
			    Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t)
{
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds__RetryBudget *b =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__thresholds__retry_budget__descriptor);
	Envoy__Type__V3__Percent *pct = gen__msg(a, &envoy__type__v3__percent__descriptor);

	if (!b || !pct)
		return -ENOMEM;
	pct->value = rb->percent >= 0 ? rb->percent : GEN_RETRY_BUDGET_PERCENT;
	b->budget_percent = pct;
	b->min_retry_concurrency = gen__u32(a, rb->min_retry_concurrency > 0 ? gen__clamp_u32(rb->min_retry_concurrency)
									       : GEN_RETRY_BUDGET_MIN_CONCURRENCY);
	if (!b->min_retry_concurrency)
		return -ENOMEM;
	t->retry_budget = b;
	return 0;
}

/* rb (may be NULL) is the DestinationRule's retryBudget, sent as
 * retry_budget of the thresholds (Istio sends it with a connectionPool
 * only, as applyConnectionPool does). */
static int gen_circuit_breakers(struct arena *a, const struct cfg_connection_pool *cp, bool defaults,
				const struct cfg_retry_budget *rb, Envoy__Config__Cluster__V3__CircuitBreakers **out)
{
	static const struct cfg_connection_pool none = {
		.max_connections = -1, .http1_max_pending_requests = -1, .http2_max_requests = -1, .max_retries = -1,
	};
	Envoy__Config__Cluster__V3__CircuitBreakers *cb =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__descriptor);
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__thresholds__descriptor);

	*out = NULL;
	if (!cp)
		cp = &none;
	if (!cb || !t || !(cb->thresholds = arena_calloc(a, 1, sizeof(*cb->thresholds))))
		return -ENOMEM;
	if (!gen_opt_u32(a, cp->max_connections, &t->max_connections) ||
	    !gen_opt_u32(a, cp->http1_max_pending_requests, &t->max_pending_requests) ||
	    !gen_opt_u32(a, cp->http2_max_requests, &t->max_requests) ||
	    !gen_opt_u32(a, cp->max_retries, &t->max_retries))
		return -ENOMEM;
	if (defaults) {
		if ((!t->max_connections && !(t->max_connections = gen__u32(a, UINT32_MAX))) ||
		    (!t->max_pending_requests && !(t->max_pending_requests = gen__u32(a, UINT32_MAX))) ||
		    (!t->max_requests && !(t->max_requests = gen__u32(a, UINT32_MAX))) ||
		    (!t->max_retries && !(t->max_retries = gen__u32(a, UINT32_MAX))))
			return -ENOMEM;
		t->track_remaining = true;
	}
	if (rb && rb->set && gen_retry_budget(a, rb, t) < 0)
		return -ENOMEM;
	cb->thresholds[0] = t;
	cb->n_thresholds = 1;
	*out = cb;
	return 0;
}

static int gen_outlier(struct arena *a, const struct cfg_outlier_detection *od, bool extras,
		       Envoy__Config__Cluster__V3__OutlierDetection **out)
{
	Envoy__Config__Cluster__V3__OutlierDetection *o =
		gen__msg(a, &envoy__config__cluster__v3__outlier_detection__descriptor);
	int rc = -ENOMEM;

	*out = NULL;
	if (!o)
		goto out;
	if (od->consecutive_5xx_errors >= 0) {
		uint32_t v = gen__clamp_u32(od->consecutive_5xx_errors);

		if (!(o->consecutive_5xx = gen__u32(a, v)) ||
		    !(o->enforcing_consecutive_5xx = gen__u32(a, v > 0 ? GEN_ENFORCE_ON : 0)))
			goto out;
	}
	/* consecutive5xxErrors unset: nothing sent, as Istio's
	 * applyOutlierDetection (Envoy's defaults then apply: 5, enforced);
	 * the deprecated consecutiveErrors maps to nothing either */
	if (od->consecutive_gateway_errors >= 0) {
		uint32_t v = gen__clamp_u32(od->consecutive_gateway_errors);

		if (!(o->consecutive_gateway_failure = gen__u32(a, v)) ||
		    !(o->enforcing_consecutive_gateway_failure = gen__u32(a, v > 0 ? GEN_ENFORCE_ON : 0)))
			goto out;
	}
	if (od->interval > 0 && !(o->interval = gen__duration(a, od->interval)))
		goto out;
	if (od->base_ejection_time > 0 && !(o->base_ejection_time = gen__duration(a, od->base_ejection_time)))
		goto out;
	if (od->max_ejection_percent > 0 &&
	    !(o->max_ejection_percent = gen__u32(a, od->max_ejection_percent > 100 ? 100 : (uint32_t)od->max_ejection_percent)))
		goto out;
	/* success-rate ejection off, as Istio sends it */
	if (!(o->enforcing_success_rate = gen__u32(a, 0)))
		goto out;
	if (extras && od->split_external_local_origin_errors) {
		o->split_external_local_origin_errors = true;
		if (od->consecutive_local_origin_failures > 0 &&
		    (!(o->consecutive_local_origin_failure = gen__u32(a, gen__clamp_u32(od->consecutive_local_origin_failures))) ||
		     !(o->enforcing_consecutive_local_origin_failure = gen__u32(a, GEN_ENFORCE_ON))))
			goto out;
		if (!(o->enforcing_local_origin_success_rate = gen__u32(a, 0)))
			goto out;
	}
	*out = o;
	rc = 0;
out:
	return rc;
}

/* The load-balancing policy for a policy without a consistent hash. */
static Envoy__Config__Cluster__V3__Cluster__LbPolicy gen_lb_simple(const struct gen_profile *p,
								   const struct cfg_load_balancer *lb)
{
	if (!p->least_request)
		return ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN;
	switch (lb->set ? lb->simple : CFG_LB_UNSPECIFIED) {
	case CFG_LB_ROUND_ROBIN:
		return ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN;
	case CFG_LB_RANDOM:
		return ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM;
	case CFG_LB_LEAST_REQUEST:
	case CFG_LB_UNSPECIFIED:
	case CFG_LB_PASSTHROUGH:
	default:
		return ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST;
	}
}

/* Slow start as Istio sends it (cluster_traffic_policy.go
 * applyRoundRobinLoadBalancer / applyLeastRequestLoadBalancer):
 * slow_start_config in the ROUND_ROBIN or LEAST_REQUEST lb config; other
 * policies take none (a consistent hash has replaced the lb config).
 * warmupDurationSecs gives the window alone (setSlowStartConfig); the
 * warmup form also aggression {default_value, runtime_key "("} and
 * min_weight_percent (setWarmup).  Returns 0 or -ENOMEM. */
static int gen_slow_start(struct arena *a, const struct cfg_load_balancer *lb, Envoy__Config__Cluster__V3__Cluster *c)
{
	Envoy__Config__Cluster__V3__Cluster__SlowStartConfig *ss;

	if (c->lb_policy != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN &&
	    c->lb_policy != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST)
		return 0;
	ss = gen__msg(a, &envoy__config__cluster__v3__cluster__slow_start_config__descriptor);
	if (!ss || !(ss->slow_start_window = gen__duration(a, lb->warmup_duration)))
		return -ENOMEM;
	if (lb->warmup_full) {
		/* Istio: "Runtime key is not exposed, the value is fixed" */
		if (!(ss->aggression = gen__msg(a, &envoy__config__core__v3__runtime_double__descriptor)) ||
		    !(ss->min_weight_percent = gen__msg(a, &envoy__type__v3__percent__descriptor)))
			return -ENOMEM;
		ss->aggression->default_value = lb->warmup_aggression;
		ss->aggression->runtime_key = "(";
		ss->min_weight_percent->value = lb->warmup_min_percent;
	}
	if (c->lb_policy == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN) {
		Envoy__Config__Cluster__V3__Cluster__RoundRobinLbConfig *rr =
			gen__msg(a, &envoy__config__cluster__v3__cluster__round_robin_lb_config__descriptor);

		if (!rr)
			return -ENOMEM;
		rr->slow_start_config = ss;
		c->lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG;
		c->round_robin_lb_config = rr;
	} else {
		Envoy__Config__Cluster__V3__Cluster__LeastRequestLbConfig *lr =
			gen__msg(a, &envoy__config__cluster__v3__cluster__least_request_lb_config__descriptor);

		if (!lr)
			return -ENOMEM;
		lr->slow_start_config = ss;
		c->lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG;
		c->least_request_lb_config = lr;
	}
	return 0;
}

/* Auto mTLS as Istio sends it to sidecars: the TLS socket only to
 * endpoints whose metadata says tlsMode istio ("tlsMode-istio"), raw
 * buffer to the others ("tlsMode-disabled"). */
static int gen_tls_matches(struct arena *a, Envoy__Config__Cluster__V3__Cluster *c)
{
	Envoy__Extensions__TransportSockets__RawBuffer__V3__RawBuffer raw =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__RAW_BUFFER__V3__RAW_BUFFER__INIT;
	Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *m[2];
	Envoy__Config__Core__V3__TransportSocket *rs = gen__msg(a, &envoy__config__core__v3__transport_socket__descriptor);
	Google__Protobuf__Struct *st = gen__msg(a, &google__protobuf__struct__descriptor);
	Google__Protobuf__Struct__FieldsEntry *f = gen__msg(a, &google__protobuf__struct__fields_entry__descriptor);
	Google__Protobuf__Value *v = gen__msg(a, &google__protobuf__value__descriptor);
	Google__Protobuf__Struct *empty = gen__msg(a, &google__protobuf__struct__descriptor);
	size_t i;

	for (i = 0; i < 2; i++)
		if (!(m[i] = gen__msg(a, &envoy__config__cluster__v3__cluster__transport_socket_match__descriptor)))
			return -ENOMEM;
	if (!rs || !st || !f || !v || !empty || !(st->fields = arena_calloc(a, 1, sizeof(*st->fields))) ||
	    !(c->transport_socket_matches = arena_calloc(a, 2, sizeof(*c->transport_socket_matches))))
		return -ENOMEM;
	v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	v->string_value = "istio";
	f->key = "tlsMode";
	f->value = v;
	st->fields[0] = f;
	st->n_fields = 1;
	m[0]->name = "tlsMode-istio";
	m[0]->match = st;
	m[0]->transport_socket = c->transport_socket;
	rs->name = "envoy.transport_sockets.raw_buffer";
	rs->config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	if (!(rs->typed_config = gen__any(a, &raw.base)))
		return -ENOMEM;
	m[1]->name = "tlsMode-disabled";
	m[1]->match = empty;
	m[1]->transport_socket = rs;
	c->transport_socket_matches[0] = m[0];
	c->transport_socket_matches[1] = m[1];
	c->n_transport_socket_matches = 2;
	c->transport_socket = NULL;
	return 0;
}

/* HTTP/2 upstream, as Istio's shouldH2Upgrade(): HTTP2/gRPC ports; a
 * DestinationRule's h2UpgradePolicy UPGRADE; else, for HTTP ports, the
 * mesh config's h2UpgradePolicy unless the DestinationRule says
 * DO_NOT_UPGRADE. */
static bool gen_port_h2(const struct model *m, const struct model_service *svc, uint32_t port,
			const struct cfg_connection_pool *cp)
{
	const char *proto = NULL, *pol = cp->set ? cp->h2_upgrade_policy : NULL;
	size_t i;

	if (pol && strcmp(pol, "UPGRADE") == 0)
		return true;
	for (i = 0; i < svc->n_ports && !proto; i++)
		if (svc->ports[i].number == port)
			proto = svc->ports[i].protocol;
	if (!proto)
		return false;
	if (strcmp(proto, "HTTP2") == 0 || strcmp(proto, "GRPC") == 0)
		return true;
	return strcmp(proto, "HTTP") == 0 && !(pol && strcmp(pol, "DO_NOT_UPGRADE") == 0) && gen_mesh_h2_upgrade(m);
}

/* The cluster's one typed_extension_protocol_options entry,
 * envoy.extensions.upstreams.http.v3.HttpProtocolOptions with an explicit
 * HTTP/2 (h2, max_streams when > 0) or HTTP/1.1 config and, when common is
 * not NULL, the common options (Istio's applyConnectionPool /
 * setH2Options).  Returns 0 or -ENOMEM. */
static int gen__http_options(struct arena *a, Envoy__Config__Cluster__V3__Cluster *c, bool h2, int64_t max_streams,
			     Envoy__Config__Core__V3__HttpProtocolOptions *common)
{
	Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions hpo =
		ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__INIT;
	Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions__ExplicitHttpConfig *ex = gen__msg(
		a, &envoy__extensions__upstreams__http__v3__http_protocol_options__explicit_http_config__descriptor);
	Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
		gen__msg(a, &envoy__config__cluster__v3__cluster__typed_extension_protocol_options_entry__descriptor);

	if (!ex || !e)
		return -ENOMEM;
	if (h2) {
		ex->protocol_config_case =
			ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS;
		ex->http2_protocol_options = gen__msg(a, &envoy__config__core__v3__http2_protocol_options__descriptor);
		if (!ex->http2_protocol_options)
			return -ENOMEM;
		if (max_streams > 0 &&
		    !(ex->http2_protocol_options->max_concurrent_streams = gen__u32(a, (uint32_t)max_streams)))
			return -ENOMEM;
	} else {
		ex->protocol_config_case =
			ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP_PROTOCOL_OPTIONS;
		ex->http_protocol_options = gen__msg(a, &envoy__config__core__v3__http1_protocol_options__descriptor);
		if (!ex->http_protocol_options)
			return -ENOMEM;
	}
	hpo.upstream_protocol_options_case =
		ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG;
	hpo.explicit_http_config = ex;
	hpo.common_http_protocol_options = common;
	e->key = GEN_HTTP_OPTIONS;
	if (!(e->value = gen__any(a, &hpo.base)) ||
	    !(c->typed_extension_protocol_options = arena_calloc(a, 1, sizeof(*c->typed_extension_protocol_options))))
		return -ENOMEM;
	c->typed_extension_protocol_options[0] = e;
	c->n_typed_extension_protocol_options = 1;
	return 0;
}

int gen__h2_options(struct arena *a, Envoy__Config__Cluster__V3__Cluster *c)
{
	return gen__http_options(a, c, true, 0, NULL);
}

/* One locality with the endpoint host:port (weight 1). */
static int gen_host_endpoint(struct arena *a, const char *host, uint32_t port,
			     Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla)
{
	Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le =
		gen__msg(a, &envoy__config__endpoint__v3__locality_lb_endpoints__descriptor);
	Envoy__Config__Endpoint__V3__LbEndpoint *lbe = gen__msg(a, &envoy__config__endpoint__v3__lb_endpoint__descriptor);
	Envoy__Config__Endpoint__V3__Endpoint *ep = gen__msg(a, &envoy__config__endpoint__v3__endpoint__descriptor);
	Envoy__Config__Core__V3__Address *ad = gen__msg(a, &envoy__config__core__v3__address__descriptor);
	Envoy__Config__Core__V3__SocketAddress *sa = gen__msg(a, &envoy__config__core__v3__socket_address__descriptor);

	if (!le || !lbe || !ep || !ad || !sa || !(le->lb_endpoints = arena_calloc(a, 1, sizeof(*le->lb_endpoints))) ||
	    !(cla->endpoints = arena_calloc(a, 1, sizeof(*cla->endpoints))) || !(lbe->load_balancing_weight = gen__u32(a, 1)) ||
	    !(le->load_balancing_weight = gen__u32(a, 1)) || !(le->locality = gen__msg(a, &envoy__config__core__v3__locality__descriptor)))
		return -ENOMEM;
	sa->address = (char *)host;
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = port;
	ad->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	ad->socket_address = sa;
	ep->address = ad;
	lbe->host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
	lbe->endpoint = ep;
	lbe->health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
	le->lb_endpoints[0] = lbe;
	le->n_lb_endpoints = 1;
	cla->endpoints[0] = le;
	cla->n_endpoints = 1;
	return 0;
}

/* What istiod's cluster builder sets beyond the merged policy (profile
 * cluster_extras): common_lb_config (panic threshold = outlier
 * minHealthPercent, 0 by default, when outlier detection is on;
 * locality-weighted with localityLbSetting distribute, or with outlier
 * detection for per-proxy locality LB), MAGLEV,
 * upstream HttpProtocolOptions (idle timeout, max requests per
 * connection, max connection duration; HTTP/2 to HTTP2/gRPC ports or
 * with h2UpgradePolicy UPGRADE, the DestinationRule's or the mesh's), STRICT_DNS / LOGICAL_DNS with the
 * endpoints inline for DNS ServiceEntries. */
static int gen_cluster_extras(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
			      const char *subset, const struct cfg_traffic_policy *pol, struct arena *a,
			      Envoy__Config__Cluster__V3__Cluster *c)
{
	const struct cfg_connection_pool *cp = &pol->connection_pool;
	const struct cfg_load_balancer *lb = &pol->load_balancer;
	Envoy__Config__Cluster__V3__Cluster__CommonLbConfig *cl =
		gen__msg(a, &envoy__config__cluster__v3__cluster__common_lb_config__descriptor);
	bool h2 = gen_port_h2(g->m, svc, port, cp);
	bool common = cp->set && (cp->idle_timeout > 0 || cp->max_requests_per_connection > 0 ||
				  cp->max_connection_duration > 0);
	size_t i;

	if (!cl)
		return -ENOMEM;
	c->common_lb_config = cl;
	if (pol->outlier_detection.set) {
		Envoy__Type__V3__Percent *pct = gen__msg(a, &envoy__type__v3__percent__descriptor);
		int64_t min = pol->outlier_detection.min_health_percent;

		if (!pct)
			return -ENOMEM;
		pct->value = min > 0 ? (double)(min > 100 ? 100 : min) : 0;
		cl->healthy_panic_threshold = pct;
	}
	/* Istio's applyLocalityLoadBalancer: with locality LB enabled (the
	 * mesh default), locality weights count when distribute is given or
	 * failover applies (outlier detection); the latter for per-proxy
	 * output only (profile locality_lb), where priorities are computed */
	if (!(lb->set && lb->locality.set && lb->locality.enabled == 0) &&
	    ((lb->set && lb->locality.set && lb->locality.n_distribute) ||
	     (g->p->locality_lb && pol->outlier_detection.set))) {
		cl->locality_config_specifier_case =
			ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__LOCALITY_CONFIG_SPECIFIER_LOCALITY_WEIGHTED_LB_CONFIG;
		if (!(cl->locality_weighted_lb_config = gen__msg(
			      a, &envoy__config__cluster__v3__cluster__common_lb_config__locality_weighted_lb_config__descriptor)))
			return -ENOMEM;
	}
	if (lb->set && lb->has_consistent_hash && lb->consistent_hash.maglev) {
		c->lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV;
		/* Istio's ApplyRingHashLoadBalancer: maglev_lb_config {table_size}
		 * when the table size is set, else no lb config.  The lb configs
		 * share one union (a oneof): assigning the maglev one replaces
		 * the ring hash one, clearing it afterwards would clear both. */
		c->lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG__NOT_SET;
		c->ring_hash_lb_config = NULL;
		if (lb->consistent_hash.maglev_table_size > 0) {
			if (!(c->maglev_lb_config =
				      gen__msg(a, &envoy__config__cluster__v3__cluster__maglev_lb_config__descriptor)) ||
			    !(c->maglev_lb_config->table_size =
				      gen__u64(a, (uint64_t)lb->consistent_hash.maglev_table_size)))
				return -ENOMEM;
			c->lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG;
		}
	}
	if (h2 || common) {
		Envoy__Config__Core__V3__HttpProtocolOptions *ho = NULL;

		if (common) {
			ho = gen__msg(a, &envoy__config__core__v3__http_protocol_options__descriptor);
			if (!ho)
				return -ENOMEM;
			if (cp->idle_timeout > 0 && !(ho->idle_timeout = gen__duration(a, cp->idle_timeout)))
				return -ENOMEM;
			if (cp->max_connection_duration > 0 &&
			    !(ho->max_connection_duration = gen__duration(a, cp->max_connection_duration)))
				return -ENOMEM;
			if (cp->max_requests_per_connection > 0 &&
			    !(ho->max_requests_per_connection = gen__u32(a, gen__clamp_u32(cp->max_requests_per_connection))))
				return -ENOMEM;
		}
		if (gen__http_options(a, c, h2, cp->set ? cp->max_concurrent_streams : 0, ho) < 0)
			return -ENOMEM;
	}
	/* Istio's applyTCPKeepalive: tcpKeepalive -> upstream_connection_options
	 * with an (empty = OS defaults) tcp_keepalive, probes as given, time
	 * and interval in whole seconds (Duration.Seconds) */
	if (cp->set && cp->has_tcp_keepalive) {
		Envoy__Config__Cluster__V3__UpstreamConnectionOptions *uco =
			gen__msg(a, &envoy__config__cluster__v3__upstream_connection_options__descriptor);
		Envoy__Config__Core__V3__TcpKeepalive *ka = gen__msg(a, &envoy__config__core__v3__tcp_keepalive__descriptor);

		if (!uco || !ka)
			return -ENOMEM;
		if (cp->keepalive_probes > 0 && !(ka->keepalive_probes = gen__u32(a, gen__clamp_u32(cp->keepalive_probes))))
			return -ENOMEM;
		if (cp->keepalive_time >= 0 &&
		    !(ka->keepalive_time = gen__u32(a, gen__clamp_u32(cp->keepalive_time / 1000000000LL))))
			return -ENOMEM;
		if (cp->keepalive_interval >= 0 &&
		    !(ka->keepalive_interval = gen__u32(a, gen__clamp_u32(cp->keepalive_interval / 1000000000LL))))
			return -ENOMEM;
		uco->tcp_keepalive = ka;
		c->upstream_connection_options = uco;
	}
	if (gen__dns_cluster(g, svc)) {
		Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla;
		size_t pi = 0;
		int rc;

		for (i = 0; i < svc->n_ports; i++)
			if (svc->ports[i].number == port)
				pi = i;
		c->type = svc->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN ?
				  ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS :
				  ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS;
		c->eds_cluster_config = NULL;
		c->dns_lookup_family = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_ONLY;
		c->respect_dns_ttl = true;
		rc = gen__assignment(g, svc, pi, subset, subset ? gen__subset_labels(gen__dr(g, svc), subset) : NULL, a, &cla);
		if (rc < 0)
			return rc;
		/* Istio: a DNS ServiceEntry without endpoints resolves its
		 * host (the cluster's one endpoint is HOST:PORT) */
		if (svc->n_endpoints == 0 && !subset) {
			rc = gen_host_endpoint(a, svc->hostname, port, cla);
			if (rc < 0)
				return rc;
		}
		c->load_assignment = cla;
	}
	return 0;
}

static int gen_cluster(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
		       const struct cfg_object *dr, const char *subset, struct arena *a, struct xds_snapshot *snap)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig eds =
		ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
	struct cfg_traffic_policy pol;
	const struct cfg_connection_pool *cp;
	const struct cfg_load_balancer *lb;
	int64_t connect = gen_mesh_connect_timeout(g->m);
	bool auto_match = false;
	int rc = -ENOMEM;

	model_dr_policy(dr, subset, port, &pol);
	cp = &pol.connection_pool;
	lb = &pol.load_balancer;

	c.name = gen__cluster_name(a, port, subset, svc->hostname);
	if (!c.name)
		goto out;
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	eds.eds_config = gen__ads_source(a);
	eds.service_name = c.name;
	if (!eds.eds_config)
		goto out;
	c.eds_cluster_config = &eds;

	if (cp->set && cp->connect_timeout > 0)
		connect = cp->connect_timeout;
	if (!(c.connect_timeout = gen__duration(a, connect)))
		goto out;

	c.lb_policy = gen_lb_simple(g->p, lb);
	if (lb->set && lb->has_consistent_hash) {
		Envoy__Config__Cluster__V3__Cluster__RingHashLbConfig *rh =
			gen__msg(a, &envoy__config__cluster__v3__cluster__ring_hash_lb_config__descriptor);

		if (!rh)
			goto out;
		/* unset stays unset: gRPC rejects a zero minimum */
		if (lb->consistent_hash.minimum_ring_size > 0 &&
		    !(rh->minimum_ring_size = gen__u64(a, (uint64_t)lb->consistent_hash.minimum_ring_size)))
			goto out;
		c.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH;
		c.lb_config_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG;
		c.ring_hash_lb_config = rh;
	}
	if (g->p->cluster_extras && lb->set && lb->warmup_duration >= 0) {
		rc = gen_slow_start(a, lb, &c);
		if (rc < 0)
			goto out;
		rc = -ENOMEM;
	}
	if (cp->set || g->p->cluster_extras) {
		rc = gen_circuit_breakers(a, cp->set ? cp : NULL, g->p->cluster_extras,
					  cp->set && g->p->cluster_extras ? &pol.retry_budget : NULL, &c.circuit_breakers);
		if (rc < 0)
			goto out;
	}
	if (pol.outlier_detection.set) {
		rc = gen_outlier(a, &pol.outlier_detection, g->p->cluster_extras, &c.outlier_detection);
		if (rc < 0)
			goto out;
	}
	rc = gen__upstream_tls(g, svc, port, subset, dr, &pol.tls, a, &c.transport_socket, &auto_match);
	if (rc < 0)
		goto out;
	if (auto_match && c.transport_socket) {
		rc = gen_tls_matches(a, &c);
		if (rc < 0)
			goto out;
	}
	if (g->p->cluster_extras) {
		rc = gen_cluster_extras(g, svc, port, subset, &pol, a, &c);
		if (rc < 0)
			goto out;
	}
	rc = gen__emit(g, snap, XDS_CLUSTER, c.name, &c.base);
out:
	return rc;
}

int gen__clusters(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
		  struct xds_snapshot *snap)
{
	const struct cfg_object *dr = gen__dr(g, svc);
	size_t i, j;
	int rc = 0;

	for (i = 0; i < svc->n_ports && rc == 0; i++) {
		uint32_t port = svc->ports[i].number;

		rc = gen_cluster(g, svc, port, dr, NULL, a, snap);
		for (j = 0; dr && j < dr->spec.dr.n_subsets && rc == 0; j++)
			rc = gen_cluster(g, svc, port, dr, dr->spec.dr.subsets[j].name, a, snap);
	}
	return rc;
}
