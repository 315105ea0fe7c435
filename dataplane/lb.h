/*
 * lb.h - meshproxy's load balancers and request hashing, as Envoy does
 * them (source/common/upstream/load_balancer_impl.cc, ring_hash_lb.cc,
 * maglev_lb.cc, source/common/http/hash_policy.cc).
 *
 * An lb_pool is the list of hosts one pick chooses from (a priority's
 * healthy hosts, all its hosts in panic, or one locality's healthy hosts)
 * with the state its algorithm needs, built once by lb_pool_build() from
 * an arena (upstream.c rebuilds pools when health changes, never per
 * request).  lb_pool_pick() never allocates.
 *
 * Nothing here reads a clock or an entropy source: randomness comes from a
 * caller-seeded struct lb_rng.  Return convention: 0 or a negative
 * errno-style code (common/err.h) for builders; picks return a host or
 * NULL (empty pool).
 */
#ifndef MESH_DATAPLANE_LB_H
#define MESH_DATAPLANE_LB_H

#include "dataplane/upstream-t.h"

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct Envoy__Config__Route__V3__RouteAction__HashPolicy;

/* ---------------------------------------------------------------- randomness */

/* A small PRNG (splitmix64): seed it once per loop from the caller's entropy. */
struct lb_rng {
	uint64_t s;
};

static inline uint64_t lb_rand(struct lb_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* xxHash64 (libxxhash, seed 0 unless given): Envoy's HashUtil::xxHash64. */
uint64_t lb_xxhash64(const void *data, size_t len, uint64_t seed);

/* ---------------------------------------------------------------- algorithms */

enum lb_kind {
	LB_ROUND_ROBIN = 0,
	LB_LEAST_REQUEST,
	LB_RANDOM,
	LB_RING_HASH,
	LB_MAGLEV,
};

/* What the cluster says about its load balancer (from the Cluster's
 * lb_policy and lb_config; defaults are Envoy's). */
struct lb_config {
	enum lb_kind kind;
	uint32_t choice_count;         /* LEAST_REQUEST: default 2 */
	uint64_t ring_min;             /* RING_HASH: minimum_ring_size, default 1024 */
	uint64_t ring_max;             /* RING_HASH: maximum_ring_size, default 8M */
	uint64_t maglev_size;          /* MAGLEV: table_size, default 65537 (prime) */
	/* ROUND_ROBIN / LEAST_REQUEST slow_start_config: 0 = off */
	uint64_t slow_start_ms;        /* slow_start_window, milliseconds */
	double slow_start_aggression;  /* aggression, 1.0 (linear) unless set */
	double slow_start_min;         /* min_weight_percent / 100, default 0.1 */
};

#define LB_CHOICE_COUNT_DEFAULT 2u
#define LB_RING_MIN_DEFAULT     1024u
#define LB_RING_MAX_DEFAULT     (8u * 1024u * 1024u)
#define LB_RING_MAX_LIMIT       (8u * 1024u * 1024u)   /* Envoy's validation bound */
#define LB_MAGLEV_SIZE_DEFAULT  65537u
#define LB_MAGLEV_SIZE_LIMIT    5000011u               /* Envoy's validation bound */
#define LB_SLOW_START_MIN_DEFAULT 0.1                  /* Envoy's min_weight_percent default, 10% */

/* An EDF scheduler entry (Envoy's EdfScheduler): the host with the
 * earliest deadline goes next; its next deadline is now + 1/weight. */
struct lb_edf_entry {
	double deadline;
	uint64_t order;                /* FIFO among equal deadlines */
	uint32_t idx;                  /* into the pool's hosts */
};

struct lb_pool {
	struct up_host **hosts;        /* not owned (the host set holds the references) */
	double *weights;               /* effective weight per host (host weight x locality share) */
	uint32_t n;
	bool weighted;                 /* weights differ: EDF (RR, LR) */
	uint32_t rr;                   /* unweighted round robin cursor */
	/* EDF (weighted ROUND_ROBIN / LEAST_REQUEST) */
	struct lb_edf_entry *edf;      /* binary min-heap, n entries */
	double edf_now;
	uint64_t edf_order;
	/* RING_HASH: sorted hashes and the host index of each */
	uint64_t *ring_hash;
	uint32_t *ring_idx;
	uint64_t ring_n;
	/* MAGLEV: host index per table slot (pools under 65535 hosts) */
	uint16_t *maglev;
	uint64_t maglev_n;
	/* slow start (RR, LR with cfg->slow_start_ms): the EDF heap always
	 * exists; slow_until_ms (computed at the first pick, once the hosts
	 * carry their added_ms) is when the youngest host leaves its window */
	bool slow;
	bool slow_known;
	uint64_t slow_until_ms;
};

/* Build p over hosts[0..n) (weights: effective weight per host, NULL for
 * each host's own weight) for algorithm cfg->kind, allocating from a.
 * seed starts the round-robin cursor (Envoy starts it at a random
 * offset).  Returns 0, -ENOMEM, or -EINVAL (a Maglev pool not smaller
 * than its table, or of 65535 hosts or more).  The ring is built as Envoy builds it: each host gets
 * ceil(scale x normalized weight) entries hashed xxHash64("ADDR:PORT_i"),
 * scale = min(ceil(min_w x ring_min) / min_w, ring_max), sorted by hash
 * (then by address).  The Maglev table is Envoy's weighted permutation
 * fill, offset = xxHash64(addr) % M, skip = xxHash64(addr, seed 1) % (M-1) + 1,
 * hosts sorted by address. */
MESH_MUST_CHECK int lb_pool_build(struct arena *a, const struct lb_config *cfg, struct up_host **hosts,
				  const double *weights, uint32_t n, uint64_t seed, struct lb_pool *p);

/* Pick one host of p (NULL when p is empty).  hash: the request hash
 * (RING_HASH, MAGLEV; the caller draws a random one when the request has
 * none).  attempt > 0 is a re-pick of the retry host predicate: hashing
 * balancers then move off the first choice (Envoy's chooseHost(hash,
 * attempt)).  Never allocates. */
struct up_host *lb_pool_pick(struct lb_pool *p, const struct lb_config *cfg, struct lb_rng *rng, uint64_t hash,
			     uint32_t attempt);

/* lb_pool_pick() at now_ms (the caller's monotonic clock, the one that
 * stamped up_host.added_ms): with slow start, while a host of the pool is
 * within its window, RR and LR pick by EDF over weights scaled by
 * lb_slow_start_factor() of each host's age.  now_ms 0: no slow start. */
struct up_host *lb_pool_pick_at(struct lb_pool *p, const struct lb_config *cfg, struct lb_rng *rng, uint64_t hash,
				uint32_t attempt, uint64_t now_ms);

/* Envoy's slow start weight factor (EdfLoadBalancerBase::
 * applySlowStartFactor): for a host age_ms old in a window of window_ms,
 * max(min, time_factor ^ (1 / aggression)) with time_factor =
 * max(age_ms, 1) / window_ms; 1.0 once the window is over (or window 0). */
double lb_slow_start_factor(uint64_t age_ms, uint64_t window_ms, double aggression, double min);

/* ---------------------------------------------------------------- request hash */

enum lb_hash_kind {
	LB_HASH_HEADER = 1,
	LB_HASH_COOKIE,
	LB_HASH_SOURCE_IP,
	LB_HASH_QUERY,
};

struct lb_hash_policy {
	uint8_t kind;                  /* enum lb_hash_kind */
	bool terminal;
	bool has_ttl;                  /* cookie: generate one when absent */
	uint64_t ttl_s;                /* cookie ttl, seconds (Envoy keeps seconds) */
	const char *name;              /* header (lower-cased), cookie or query parameter name */
	size_t name_len;
	const char *path;              /* cookie path ("" for none) */
};

struct lb_hash {
	struct lb_hash_policy *v;
	size_t n;
};

/* Compile a route's hash_policy list into *out, allocated from a (the
 * router's arena).  Policies Envoy would ignore (filter_state,
 * connection_properties without source_ip) are dropped, as Envoy drops
 * them; a policy with no specifier is an error.  Returns 0, -EINVAL (err
 * says why) or -ENOMEM. */
MESH_MUST_CHECK int lb_hash_compile(struct arena *a, const struct Envoy__Config__Route__V3__RouteAction__HashPolicy *const *hp,
				    size_t n, char *err, size_t cap, struct lb_hash **out);

/* What a hash policy may read of a request.  The accessors return the
 * value (not NUL-terminated) and its length, or NULL when absent; any of
 * them may be NULL (nothing of that kind).  header() gets a lower-case
 * name and fills up to max values (a repeated header); it returns the count. */
struct lb_hash_request {
	void *ctx;
	size_t (*header)(void *ctx, const char *name, size_t name_len, const char **v, size_t *vlen, size_t max);
	const char *(*cookie)(void *ctx, const char *name, size_t name_len, size_t *len);
	const char *(*query)(void *ctx, const char *name, size_t name_len, size_t *len);
	const char *source_ip;         /* text address without the port; NULL: none */
	size_t source_ip_len;
	const char *conn_addrs;        /* remote asString() then local asString(): seeds a generated cookie */
	size_t conn_addrs_len;
};

/* A cookie the engine must add with set-cookie (Envoy's AddCookieCallback). */
struct lb_hash_cookie {
	bool set;
	const char *name;
	size_t name_len;
	const char *path;
	uint64_t ttl_s;
	char value[17];                /* 16 lower-case hex digits + NUL */
};

/* The request hash of rq under h, combined as Envoy combines policies
 * (rotate-left-1 then xor; a terminal policy that produced a hash ends the
 * list).  Returns true and *hash, or false when no policy produced one.
 * When a cookie policy with a ttl finds no cookie it generates one
 * (xxHash64 of conn_addrs, hex), hashes it and describes it in *cookie
 * (may be NULL when the caller cannot set cookies). */
bool lb_hash_compute(const struct lb_hash *h, const struct lb_hash_request *rq, uint64_t *hash,
		     struct lb_hash_cookie *cookie);

#endif
