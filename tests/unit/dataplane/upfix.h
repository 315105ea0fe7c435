/*
 * upfix.h - fixtures for the upstream unit tests: decoded Cluster and
 * ClusterLoadAssignment messages built in memory (as meshproxy receives
 * them after decoding), small enough to read in each test.  Static
 * storage: one fixture set per test at a time.
 */
#ifndef MESH_TESTS_UPFIX_H
#define MESH_TESTS_UPFIX_H

#include "dataplane/upstream.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/health_check.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UPFIX_MAX 1100

/* One endpoint: "10.0.0.N" port 80 (N = id + 1, wrapping into 10.0.x.y). */
struct upfix_ep {
	uint32_t prio, loc, weight;
	int health;   /* core.v3.HealthStatus */
};

static Envoy__Config__Endpoint__V3__LbEndpoint upfix_lbe[UPFIX_MAX], *upfix_lbep[UPFIX_MAX];
static Envoy__Config__Endpoint__V3__Endpoint upfix_ep_[UPFIX_MAX];
static Envoy__Config__Core__V3__Address upfix_addr[UPFIX_MAX];
static Envoy__Config__Core__V3__SocketAddress upfix_sa[UPFIX_MAX];
static Google__Protobuf__UInt32Value upfix_w[UPFIX_MAX];
static char upfix_ip[UPFIX_MAX][24];
static Envoy__Config__Endpoint__V3__LocalityLbEndpoints upfix_lle[16], *upfix_llep[16];
static Google__Protobuf__UInt32Value upfix_lw[16];
static Envoy__Config__Core__V3__Locality upfix_locality[16];
static char upfix_zone[16][8];
static Envoy__Config__Endpoint__V3__ClusterLoadAssignment upfix_cla_;

/* Endpoint ids[i] of eps (ids NULL: 0..n-1); localities loc 0..15, each
 * with weight lw[loc] (0: none). */
static inline Envoy__Config__Endpoint__V3__ClusterLoadAssignment *upfix_cla(const struct upfix_ep *eps, const uint32_t *ids,
									    size_t n, const uint32_t *lw)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment init = ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
	size_t i, l, k = 0;

	if (n > UPFIX_MAX) /* not ck_assert: bench_lb uses this outside a test */
		abort();
	upfix_cla_ = init;
	upfix_cla_.cluster_name = "c";
	for (l = 0; l < 16; l++) {
		Envoy__Config__Endpoint__V3__LocalityLbEndpoints li = ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT;
		Envoy__Config__Core__V3__Locality loc = ENVOY__CONFIG__CORE__V3__LOCALITY__INIT;
		Google__Protobuf__UInt32Value w = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
		size_t first = k;
		uint32_t prio = 0;

		for (i = 0; i < n; i++) {
			const struct upfix_ep *e = &eps[ids ? ids[i] : i];
			uint32_t id = ids ? ids[i] : (uint32_t)i;
			Envoy__Config__Endpoint__V3__LbEndpoint lb = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__INIT;
			Envoy__Config__Endpoint__V3__Endpoint ep = ENVOY__CONFIG__ENDPOINT__V3__ENDPOINT__INIT;
			Envoy__Config__Core__V3__Address ad = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
			Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
			Google__Protobuf__UInt32Value hw = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;

			if (e->loc != l)
				continue;
			prio = e->prio;
			snprintf(upfix_ip[k], sizeof(upfix_ip[k]), "10.0.%u.%u", (id + 1) / 250, (id + 1) % 250 + 1);
			upfix_sa[k] = sa;
			upfix_sa[k].address = upfix_ip[k];
			upfix_sa[k].port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
			upfix_sa[k].port_value = 80;
			upfix_addr[k] = ad;
			upfix_addr[k].address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
			upfix_addr[k].socket_address = &upfix_sa[k];
			upfix_ep_[k] = ep;
			upfix_ep_[k].address = &upfix_addr[k];
			upfix_lbe[k] = lb;
			upfix_lbe[k].host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
			upfix_lbe[k].endpoint = &upfix_ep_[k];
			upfix_lbe[k].health_status = (Envoy__Config__Core__V3__HealthStatus)e->health;
			upfix_w[k] = hw;
			upfix_w[k].value = e->weight ? e->weight : 1;
			upfix_lbe[k].load_balancing_weight = &upfix_w[k];
			upfix_lbep[k] = &upfix_lbe[k];
			k++;
		}
		if (k == first)
			continue;
		snprintf(upfix_zone[l], sizeof(upfix_zone[l]), "z%zu", l);
		upfix_locality[l] = loc;
		upfix_locality[l].region = "r";
		upfix_locality[l].zone = upfix_zone[l];
		upfix_lle[upfix_cla_.n_endpoints] = li;
		upfix_lle[upfix_cla_.n_endpoints].locality = &upfix_locality[l];
		upfix_lle[upfix_cla_.n_endpoints].lb_endpoints = &upfix_lbep[first];
		upfix_lle[upfix_cla_.n_endpoints].n_lb_endpoints = k - first;
		upfix_lle[upfix_cla_.n_endpoints].priority = prio;
		if (lw && lw[l]) {
			upfix_lw[l] = w;
			upfix_lw[l].value = lw[l];
			upfix_lle[upfix_cla_.n_endpoints].load_balancing_weight = &upfix_lw[l];
		}
		upfix_llep[upfix_cla_.n_endpoints] = &upfix_lle[upfix_cla_.n_endpoints];
		upfix_cla_.n_endpoints++;
	}
	upfix_cla_.endpoints = upfix_llep;
	return &upfix_cla_;
}

/* The key of endpoint id, as the host set names it. */
static inline const char *upfix_key(uint32_t id, char *buf, size_t cap)
{
	snprintf(buf, cap, "10.0.%u.%u:80", (id + 1) / 250, (id + 1) % 250 + 1);
	return buf;
}

/* A Cluster with policy lb, EDS. */
static inline void upfix_cluster(Envoy__Config__Cluster__V3__Cluster *c, Envoy__Config__Cluster__V3__Cluster__LbPolicy lb)
{
	Envoy__Config__Cluster__V3__Cluster init = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;

	*c = init;
	c->name = "outbound|80||svc.ns.svc.cluster.local";
	c->cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c->type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	c->lb_policy = lb;
}

static inline struct up_cluster *upfix_compile(const Envoy__Config__Cluster__V3__Cluster *c)
{
	struct up_cluster *cl = NULL;
	char err[256] = "";

	ck_assert_msg(up_cluster_new(c, err, sizeof(err), &cl) == 0, "up_cluster_new: %s", err);
	return cl;
}

static inline struct up_hostset *upfix_set(struct up_cluster *cl, const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla,
					   const struct up_hostset *prev)
{
	struct up_hostset *hs = NULL;
	char err[256] = "";

	ck_assert_msg(up_hostset_new(cl, cla, prev, 7, err, sizeof(err), &hs) == 0, "up_hostset_new: %s", err);
	return hs;
}

/* Index of h among endpoints 0..n-1 (by key). */
static inline int upfix_id(const struct up_host *h, size_t n)
{
	char k[32];
	size_t i;

	ck_assert_ptr_nonnull(h);
	for (i = 0; i < n; i++)
		if (strcmp(upfix_key((uint32_t)i, k, sizeof(k)), h->key) == 0)
			return (int)i;
	ck_abort_msg("unknown host %s", h->key);
	return -1;
}

#endif
