/*
 * route_stub.h - a stand-in for dataplane/router.{c,h} (branch pxroute)
 * until it merges: compiles a RouteConfiguration into the little the engine
 * needs (virtual host by domain, route by path prefix/exact path, the
 * route action's cluster, timeout, retry policy, rewrites, redirects and
 * direct responses) and matches a request against it.  The engine uses
 * only struct px_route and the three functions below, so swapping in the
 * real router is a change to rstub_* call sites in engine.c/proxy.c.
 *
 * Functions return 0 or a negative errno-style code with err filled.
 */
#ifndef MESH_DATAPLANE_ROUTE_STUB_H
#define MESH_DATAPLANE_ROUTE_STUB_H

#include "common/err.h"
#include "envoy/config/route/v3/route.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* retry_on bits (Envoy's x-envoy-retry-on names) */
enum {
	PX_RETRY_5XX = 1u << 0,
	PX_RETRY_GATEWAY = 1u << 1,
	PX_RETRY_CONNECT_FAILURE = 1u << 2,
	PX_RETRY_RESET = 1u << 3,
	PX_RETRY_4XX = 1u << 4,
	PX_RETRY_STATUS_CODES = 1u << 5,
	PX_RETRY_REFUSED_STREAM = 1u << 6,
};

/* A header edit (HeaderValueOption): add beside existing values, or set
 * (overwrite: drop the client's/upstream's values first), or add only if
 * absent. */
enum { PX_HDR_APPEND, PX_HDR_SET, PX_HDR_IF_ABSENT };
struct px_hdr_edit {
	const char *name, *value;
	int mode;
};

struct px_weighted {
	const char *cluster;
	uint32_t weight;
};

/* A matched route's action: everything points into the compiled router
 * (valid while the caller holds the configuration that owns it). */
struct px_route {
	const char *vhost_name, *route_name;
	/* forward */
	const char *cluster;             /* NULL with weighted clusters or non-forwarding actions */
	const struct px_weighted *weighted;
	size_t n_weighted;
	uint32_t total_weight;
	uint64_t timeout_ms;             /* 0: none (Istio's default "0s"); Envoy's default 15 s when unset */
	uint64_t per_try_timeout_ms;     /* 0: none */
	uint32_t num_retries;
	unsigned retry_on;               /* PX_RETRY_* */
	const uint32_t *retriable_codes;
	size_t n_retriable_codes;
	uint64_t backoff_base_ms, backoff_max_ms;
	int previous_hosts;              /* retry_host_predicate previous_hosts */
	int attempt_count;               /* include_request_attempt_count */
	const char *prefix_match;        /* the matched prefix (for prefix_rewrite), or NULL */
	const char *prefix_rewrite;      /* NULL: none */
	const char *host_rewrite;        /* NULL: none */
	/* direct response (status != 0) */
	uint32_t direct_status;
	const char *direct_body;
	/* redirect (redirect_status != 0) */
	uint32_t redirect_status;
	const char *redirect_host, *redirect_path, *redirect_scheme;
	uint32_t redirect_port;
	/* header edits, route's then virtual host's (Envoy's default order) */
	const struct px_hdr_edit *req_add, *resp_add;
	size_t n_req_add, n_resp_add;
	const char *const *req_remove, *const *resp_remove;
	size_t n_req_remove, n_resp_remove;
	/* mirroring: a fire-and-forget copy to this cluster, for pct per million requests */
	const char *mirror_cluster;
	uint32_t mirror_pct;
	/* fault (from typed_per_filter_config envoy.filters.http.fault) */
	uint64_t fault_delay_ms;
	uint32_t fault_delay_pct;        /* per million */
	uint32_t fault_abort_status;
	uint32_t fault_abort_pct;        /* per million */
};

struct rstub;

MESH_MUST_CHECK int rstub_new(const Envoy__Config__Route__V3__RouteConfiguration *rc, struct rstub **out, char *err,
			      size_t cap);
void rstub_free(struct rstub *r);
/* The route for authority (Host, maybe with :port) and path, or NULL (NR). */
const struct px_route *rstub_match(const struct rstub *r, const char *authority, size_t alen, const char *path,
				   size_t plen);

#endif
