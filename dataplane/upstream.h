/*
 * upstream.h - meshproxy's upstream clusters: what a Cluster says
 * (up_cluster: load balancer, panic threshold, locality weighting, outlier
 * detection, circuit breakers, HTTP protocol options) and the hosts a
 * ClusterLoadAssignment gives it (up_hostset: priorities, localities,
 * health, and the pools the load balancer picks from).
 *
 * Semantics are Envoy's (source/common/upstream/load_balancer_impl.cc,
 * upstream_impl.cc):
 *  - priority health = min(100, overprovisioning_factor (default 140) x
 *    healthy / total); load is spread over priorities by health, the rest
 *    going to the next priority (failover); all-zero health sends
 *    everything to priority 0 in panic;
 *  - a priority is in panic when its healthy share is under
 *    healthy_panic_threshold (default 50%; 0 disables panic): it then
 *    balances over all its hosts;
 *  - with common_lb_config.locality_weighted_lb_config a locality is picked
 *    first (EDF over load_balancing_weight x min(1, OF x healthy share)),
 *    then a host of it;
 *  - healthy = EDS status HEALTHY/UNKNOWN and not ejected by outlier
 *    detection (DEGRADED, UNHEALTHY, DRAINING, TIMEOUT are not healthy).
 *
 * Both objects are immutable after construction except for the per-host
 * state and the pools, which up_hostset_refresh() rebuilds after a health
 * change (outlier.c does it).  Compilation allocates; picks never do.
 * Errors: 0 or negative errno-style codes, with a human-readable reason in
 * err (cap bytes) for NACKs.  Loop thread only.
 */
#ifndef MESH_DATAPLANE_UPSTREAM_H
#define MESH_DATAPLANE_UPSTREAM_H

#include "dataplane/cbreaker.h"
#include "dataplane/lb.h"
#include "dataplane/outlier.h"
#include "dataplane/upstream-t.h"

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct Envoy__Config__Cluster__V3__Cluster;
struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment;

#define UP_OVERPROVISIONING_DEFAULT 140u
#define UP_PANIC_THRESHOLD_DEFAULT  50u
#define UP_PRIORITY_MAX             128u   /* Envoy's bound on priority levels */

enum up_discovery {
	UP_STATIC = 0,
	UP_STRICT_DNS,
	UP_LOGICAL_DNS,
	UP_EDS,
	UP_ORIGINAL_DST,
};

/* One compiled Cluster.  Reference counted: host sets and requests in
 * flight hold it.  The circuit-breaker counters live here (Envoy keeps
 * them in the cluster's ResourceManager, new with each CDS update). */
struct up_cluster {
	uint32_t refs;
	enum up_discovery type;
	struct lb_config lb;
	uint32_t panic_threshold;          /* percent; 0: panic off */
	bool locality_weighted;
	bool original_dst;                 /* CLUSTER_PROVIDED: the engine connects to the original destination */
	struct outlier_config od;
	struct cbreaker cb;
	uint32_t max_requests_per_connection; /* 0: unlimited (HttpProtocolOptions) */
	uint64_t idle_timeout_ms;          /* upstream connection idle timeout; 0: Envoy's 1h default applies */
	uint64_t max_connection_duration_ms;
	uint64_t connect_timeout_ms;       /* default 5000 (Envoy) */
	bool tcp_keepalive;                /* upstream_connection_options.tcp_keepalive: SO_KEEPALIVE */
	uint32_t keepalive_probes, keepalive_time_s, keepalive_interval_s; /* 0: the OS default */
	bool http2;                        /* explicit_http_config.http2_protocol_options */
	bool http2_downstream;             /* use_downstream_protocol_config with http2_protocol_options:
	                                    * HTTP/2 upstream when the downstream is (h2.c) */
	uint32_t max_concurrent_streams;   /* http2; 0: default */
	bool tls_istio_match;              /* transport_socket_matches has tlsMode-istio */
	char *name;                        /* owned: name and eds_name in one allocation (a few
	                                    * hundred bytes less than an arena, a thousand clusters) */
	char *eds_name;                    /* the ClusterLoadAssignment name to ask for (EDS): in name's allocation */
};

/* Compile c.  Returns 0 and *out (one reference), -EINVAL / -ENOTSUP with
 * err saying which field, or -ENOMEM.  Accepted: lb_policy ROUND_ROBIN,
 * LEAST_REQUEST, RANDOM, RING_HASH (XX_HASH), MAGLEV (prime table size),
 * CLUSTER_PROVIDED with ORIGINAL_DST; discovery STATIC, STRICT_DNS,
 * LOGICAL_DNS, EDS, ORIGINAL_DST. */
MESH_MUST_CHECK int up_cluster_new(const struct Envoy__Config__Cluster__V3__Cluster *c, char *err, size_t cap,
				   struct up_cluster **out);
struct up_cluster *up_cluster_ref(struct up_cluster *cl);
void up_cluster_unref(struct up_cluster *cl);   /* NULL is a no-op */

struct up_locality {
	const char *region, *zone, *sub_zone;   /* in the host set's arena */
	uint32_t weight;                        /* load_balancing_weight (0: none given) */
	uint32_t first, n;                      /* its hosts: prio->hosts[first .. first+n) */
	/* derived (refresh) */
	uint32_t n_healthy;
	double eff_weight;
	struct lb_pool *pool;                   /* its healthy hosts, in the derived arena; built only for
	                                         * locality-weighted picks (n_loc_edf), else NULL or stale */
};

struct up_priority {
	struct up_host **hosts;                 /* all hosts, grouped by locality */
	uint32_t n;
	struct up_locality *loc;
	uint32_t n_loc;
	/* derived (refresh) */
	struct up_host **healthy;
	uint32_t n_healthy;
	uint32_t health;                        /* 0..100 */
	uint32_t load;                          /* 0..100: share of picks */
	bool panic;
	struct lb_pool pool;                    /* the healthy hosts; all of them in panic (one pool, not
	                                         * two: a sidecar holds ~1,000 host sets, DESIGN.md's RSS) */
	struct lb_edf_entry *loc_edf;           /* localities with eff_weight > 0 */
	uint32_t n_loc_edf;
	double loc_now;
	uint64_t loc_order;
};

struct up_hostset {
	struct up_cluster *cl;                  /* one reference */
	struct up_host **hosts;                 /* every host, one reference each */
	uint32_t n;
	struct up_priority *prio;
	uint32_t n_prio;
	uint32_t overprovisioning;              /* percent (140 = 1.4) */
	uint64_t seed;
	struct arena *a;                        /* hosts lists, localities */
	struct arena *derived;                  /* pools: replaced by each refresh */
};

/* Build the host set of cl from cla: the ClusterLoadAssignment named
 * cl->eds_name for EDS clusters, the Cluster's own load_assignment for
 * STATIC / DNS ones (the caller passes it); NULL gives an empty set.  prev (may be NULL) is the set this one replaces:
 * hosts with the same "address:port" are the same objects, with their
 * state.  seed spreads round-robin starts.  Returns 0 and *out, -EINVAL
 * with err (a bad address, port, priority gap, ...), or -ENOMEM. */
MESH_MUST_CHECK int up_hostset_new(struct up_cluster *cl, const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla,
				   const struct up_hostset *prev, uint64_t seed, char *err, size_t cap,
				   struct up_hostset **out);
void up_hostset_free(struct up_hostset *hs);   /* NULL is a no-op */

/* Recompute health, priority loads, panic and the pools from the hosts'
 * current state.  Returns 0 or -ENOMEM (the old pools stay). */
MESH_MUST_CHECK int up_hostset_refresh(struct up_hostset *hs);

/* The retry host predicate "previous hosts"
 * (envoy.retry_host_predicates.previous_hosts): a pick landing on one of
 * avoid[0..n_avoid) is redone, up to max_attempts more times
 * (host_selection_retry_max_attempts); the last pick stands. */
struct up_avoid {
	struct up_host *const *hosts;
	size_t n;
	uint32_t max_attempts;
};

/* Pick a host: priority by load (the request hash, else a random draw),
 * then locality (locality-weighted clusters, outside panic), then the
 * cluster's load balancer over that pool.  hash may be NULL (no hash
 * policy produced one: hashing balancers use a random value, as Envoy).
 * avoid may be NULL.  Returns NULL when there is no host to use (the
 * engine answers 503 with response flag UH).  Never allocates. */
struct up_host *up_pick(struct up_hostset *hs, struct lb_rng *rng, const uint64_t *hash, const struct up_avoid *avoid);

/* up_pick() at now_ms, the loop's monotonic clock (ev_now()), for slow
 * start (lb_pool_pick_at()); up_pick() is up_pick_at(..., 0): none. */
struct up_host *up_pick_at(struct up_hostset *hs, struct lb_rng *rng, const uint64_t *hash,
			   const struct up_avoid *avoid, uint64_t now_ms);

/* Stamp the hosts of hs first listed by it (added_ms still 0) with now_ms,
 * the loop clock: their slow start window begins (Envoy: host creation
 * time when no health check runs).  Hosts taken over from the previous
 * set keep their stamp.  NULL is a no-op. */
void up_hostset_stamp(struct up_hostset *hs, uint64_t now_ms);

/* Find a host by its key "address:port" (NULL: none). */
struct up_host *up_hostset_find(const struct up_hostset *hs, const char *key, size_t len);

#endif
