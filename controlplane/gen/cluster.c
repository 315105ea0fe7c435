/*
 * gen_grpc_cluster.c - CDS and EDS for proxyless gRPC clients, and the
 * DestinationRule policy merge the route generator shares.
 *
 * CDS: per service port, "outbound|PORT||HOST" and one
 * "outbound|PORT|SUBSET|HOST" per subset of the DestinationRule that
 * applies (looked up from the service's namespace).  Every cluster is EDS
 * over ADS.  Load balancing is ROUND_ROBIN unless the policy asks for a
 * consistent hash (RING_HASH): gRPC 1.51 rejects LEAST_REQUEST, RANDOM and
 * MAGLEV.  connectionPool becomes circuit-breaker thresholds,
 * outlierDetection becomes outlier_detection with success-rate ejection
 * off, as Istio sends them.  mTLS (DestinationRule ISTIO_MUTUAL, auto
 * mTLS) comes from gen__upstream_tls().
 *
 * EDS: one ClusterLoadAssignment per cluster; endpoints (only IP
 * addresses: gRPC cannot resolve names from EDS) grouped by locality,
 * localities and endpoints sorted, each locality weighted by the sum of its
 * endpoints' weights (gRPC 1.51 drops localities without a weight).
 */
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* Istio's connect timeout when the DestinationRule gives none. */
#define GEN_CONNECT_TIMEOUT_NS (10LL * 1000000000LL)
/* Outlier detection: the enforcement percentage of an enabled detector. */
#define GEN_ENFORCE_ON 100u

/* ---------------------------------------------------------------- CDS */

static Envoy__Config__Core__V3__ConfigSource *gen_ads_source(struct arena *a)
{
	Envoy__Config__Core__V3__ConfigSource *cs = gen__msg(a, &envoy__config__core__v3__config_source__descriptor);
	Envoy__Config__Core__V3__AggregatedConfigSource *ads =
		gen__msg(a, &envoy__config__core__v3__aggregated_config_source__descriptor);

	if (!cs || !ads)
		return NULL;
	cs->config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
	cs->ads = ads;
	cs->resource_api_version = ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
	return cs;
}

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

static int gen_circuit_breakers(struct arena *a, const struct cfg_connection_pool *cp,
				Envoy__Config__Cluster__V3__CircuitBreakers **out)
{
	Envoy__Config__Cluster__V3__CircuitBreakers *cb =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__descriptor);
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
		gen__msg(a, &envoy__config__cluster__v3__circuit_breakers__thresholds__descriptor);

	*out = NULL;
	if (!cb || !t || !(cb->thresholds = arena_calloc(a, 1, sizeof(*cb->thresholds))))
		return -ENOMEM;
	if (!gen_opt_u32(a, cp->max_connections, &t->max_connections) ||
	    !gen_opt_u32(a, cp->http1_max_pending_requests, &t->max_pending_requests) ||
	    !gen_opt_u32(a, cp->http2_max_requests, &t->max_requests) ||
	    !gen_opt_u32(a, cp->max_retries, &t->max_retries))
		return -ENOMEM;
	cb->thresholds[0] = t;
	cb->n_thresholds = 1;
	*out = cb;
	return 0;
}

static int gen_outlier(struct arena *a, const struct cfg_outlier_detection *od,
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
	} else if (!(o->enforcing_consecutive_5xx = gen__u32(a, 0))) {
		goto out;
	}
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
	*out = o;
	rc = 0;
out:
	return rc;
}

static int gen_cluster(const struct model *m, const struct model_service *svc, uint32_t port,
		       const struct cfg_object *dr, const char *subset, struct arena *a, struct xds_snapshot *snap)
{
	Envoy__Config__Cluster__V3__Cluster c = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig eds =
		ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
	struct cfg_traffic_policy pol;
	const struct cfg_connection_pool *cp;
	const struct cfg_load_balancer *lb;
	int64_t connect = GEN_CONNECT_TIMEOUT_NS;
	int rc = -ENOMEM;

	model_dr_policy(dr, subset, port, &pol);
	cp = &pol.connection_pool;
	lb = &pol.load_balancer;

	c.name = gen__cluster_name(a, port, subset, svc->hostname);
	if (!c.name)
		goto out;
	c.cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c.type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	eds.eds_config = gen_ads_source(a);
	eds.service_name = c.name;
	if (!eds.eds_config)
		goto out;
	c.eds_cluster_config = &eds;

	if (cp->set && cp->connect_timeout > 0)
		connect = cp->connect_timeout;
	if (!(c.connect_timeout = gen__duration(a, connect)))
		goto out;

	c.lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN;
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
	if (cp->set) {
		rc = gen_circuit_breakers(a, cp, &c.circuit_breakers);
		if (rc < 0)
			goto out;
	}
	if (pol.outlier_detection.set) {
		rc = gen_outlier(a, &pol.outlier_detection, &c.outlier_detection);
		if (rc < 0)
			goto out;
	}
	rc = gen__upstream_tls(m, svc, port, subset, dr, &pol.tls, a, &c.transport_socket);
	if (rc < 0)
		goto out;
	rc = gen__emit(snap, XDS_CLUSTER, c.name, &c.base);
out:
	return rc;
}

int gen__grpc_clusters(const struct model *m, const struct model_service *svc,
		       struct arena *a, struct xds_snapshot *snap)
{
	const struct cfg_object *dr = model_destination_rule(m, svc->hostname, svc->ns);
	size_t i, j;
	int rc = 0;

	for (i = 0; i < svc->n_ports && rc == 0; i++) {
		uint32_t port = svc->ports[i].number;

		rc = gen_cluster(m, svc, port, dr, NULL, a, snap);
		for (j = 0; dr && j < dr->spec.dr.n_subsets && rc == 0; j++)
			rc = gen_cluster(m, svc, port, dr, dr->spec.dr.subsets[j].name, a, snap);
	}
	return rc;
}

/* ---------------------------------------------------------------- EDS */

struct gen_ep {
	const char *locality;
	const char *address;
	uint32_t port;
	uint32_t weight;
};

static int gen_ep_cmp(const void *x, const void *y)
{
	const struct gen_ep *a = x, *b = y;
	int c = strcmp(a->locality, b->locality);

	if (c == 0)
		c = strcmp(a->address, b->address);
	if (c == 0)
		c = a->port < b->port ? -1 : a->port > b->port;
	if (c == 0)
		c = a->weight < b->weight ? -1 : a->weight > b->weight;
	return c;
}

static bool gen_is_ip(const char *s)
{
	unsigned char tmp[16];

	return s && (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1);
}

/* "region/zone/subzone" into a Locality (missing parts stay empty). */
static Envoy__Config__Core__V3__Locality *gen_locality(struct arena *a, const char *s)
{
	Envoy__Config__Core__V3__Locality *l = gen__msg(a, &envoy__config__core__v3__locality__descriptor);
	char **parts[3];
	size_t i;

	if (!l)
		return NULL;
	parts[0] = &l->region;
	parts[1] = &l->zone;
	parts[2] = &l->sub_zone;
	for (i = 0; i < 3 && *s; i++) {
		const char *slash = i < 2 ? strchr(s, '/') : NULL;
		size_t len = slash ? (size_t)(slash - s) : strlen(s);

		if (!(*parts[i] = arena_strndup(a, s, len)))
			return NULL;
		s += len;
		if (*s == '/')
			s++;
	}
	return l;
}

static Envoy__Config__Endpoint__V3__LbEndpoint *gen_lb_endpoint(struct arena *a, const struct gen_ep *e)
{
	Envoy__Config__Endpoint__V3__LbEndpoint *lbe = gen__msg(a, &envoy__config__endpoint__v3__lb_endpoint__descriptor);
	Envoy__Config__Endpoint__V3__Endpoint *ep = gen__msg(a, &envoy__config__endpoint__v3__endpoint__descriptor);
	Envoy__Config__Core__V3__Address *ad = gen__msg(a, &envoy__config__core__v3__address__descriptor);
	Envoy__Config__Core__V3__SocketAddress *sa = gen__msg(a, &envoy__config__core__v3__socket_address__descriptor);

	if (!lbe || !ep || !ad || !sa || !(sa->address = arena_strdup(a, e->address)) ||
	    !(lbe->load_balancing_weight = gen__u32(a, e->weight)))
		return NULL;
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = e->port;
	ad->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	ad->socket_address = sa;
	ep->address = ad;
	lbe->host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
	lbe->endpoint = ep;
	lbe->health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
	return lbe;
}

/* The assignment for one cluster of service port pi; sel NULL = all
 * endpoints, else those whose labels match it.  eps: scratch, one slot per
 * endpoint of the service. */
static int gen_assignment(const struct model_service *svc, size_t pi, const char *subset,
			  const struct cfg_labels *sel, struct gen_ep *eps,
			  struct arena *a, struct xds_snapshot *snap)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment cla =
		ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
	static const struct cfg_labels no_labels;
	const struct model_port *mp = &svc->ports[pi];
	size_t i, n = 0, start, n_loc = 0;
	int rc = -ENOMEM;

	cla.cluster_name = gen__cluster_name(a, mp->number, subset, svc->hostname);
	if (!cla.cluster_name)
		goto out;
	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];
		uint32_t port = e->ports ? e->ports[pi] : 0;

		if (!gen_is_ip(e->address) || e->not_ready)
			continue;
		if (sel && !model_labels_match(sel, e->labels ? e->labels : &no_labels))
			continue;
		if (port == 0)
			port = mp->target_port ? mp->target_port : mp->number;
		eps[n].locality = e->locality ? e->locality : "";
		eps[n].address = e->address;
		eps[n].port = port;
		eps[n].weight = e->weight ? e->weight : 1;
		n++;
	}
	if (n)
		qsort(eps, n, sizeof(*eps), gen_ep_cmp);
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(eps[i].locality, eps[i - 1].locality) != 0)
			n_loc++;
	if (n_loc && !(cla.endpoints = arena_calloc(a, n_loc, sizeof(*cla.endpoints))))
		goto out;
	for (start = 0; start < n;) {
		Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le =
			gen__msg(a, &envoy__config__endpoint__v3__locality_lb_endpoints__descriptor);
		uint64_t sum = 0;
		size_t end = start;

		while (end < n && strcmp(eps[end].locality, eps[start].locality) == 0)
			end++;
		if (!le || !(le->locality = gen_locality(a, eps[start].locality)) ||
		    !(le->lb_endpoints = arena_calloc(a, end - start, sizeof(*le->lb_endpoints))))
			goto out;
		for (i = start; i < end; i++) {
			if (!(le->lb_endpoints[i - start] = gen_lb_endpoint(a, &eps[i])))
				goto out;
			sum += eps[i].weight;
		}
		le->n_lb_endpoints = end - start;
		le->load_balancing_weight = gen__u32(a, sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum);
		if (!le->load_balancing_weight)
			goto out;
		cla.endpoints[cla.n_endpoints++] = le;
		start = end;
	}
	rc = gen__emit(snap, XDS_ENDPOINT, cla.cluster_name, &cla.base);
out:
	return rc;
}

int gen__grpc_endpoints(const struct model *m, const struct model_service *svc,
			struct arena *a, struct xds_snapshot *snap)
{
	const struct cfg_object *dr = model_destination_rule(m, svc->hostname, svc->ns);
	struct gen_ep *eps = NULL;
	size_t i, j;
	int rc = 0;

	if (svc->n_endpoints && !(eps = arena_calloc(a, svc->n_endpoints, sizeof(*eps))))
		return -ENOMEM;
	for (i = 0; i < svc->n_ports && rc == 0; i++) {
		rc = gen_assignment(svc, i, NULL, NULL, eps, a, snap);
		for (j = 0; dr && j < dr->spec.dr.n_subsets && rc == 0; j++) {
			const struct cfg_subset *ss = &dr->spec.dr.subsets[j];

			rc = gen_assignment(svc, i, ss->name, &ss->labels, eps, a, snap);
		}
	}
	return rc;
}
