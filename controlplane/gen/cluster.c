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

#include <string.h>

/* Istio's connect timeout when the DestinationRule gives none. */
#define GEN_CONNECT_TIMEOUT_NS (10LL * 1000000000LL)
/* Outlier detection: the enforcement percentage of an enabled detector. */
#define GEN_ENFORCE_ON 100u

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

static int gen_cluster(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
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
	rc = gen__upstream_tls(g, svc, port, subset, dr, &pol.tls, a, &c.transport_socket);
	if (rc < 0)
		goto out;
	rc = gen__emit(g, snap, XDS_CLUSTER, c.name, &c.base);
out:
	return rc;
}

int gen__clusters(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
		  struct xds_snapshot *snap)
{
	const struct cfg_object *dr = model_destination_rule(g->m, svc->hostname, svc->ns);
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
