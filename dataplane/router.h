/*
 * router.h - compiled RouteConfigurations and per-request route selection:
 * meshproxy's Envoy router (envoy.config.route.v3), fed by RDS.
 *
 * router_new() compiles a set of decoded RouteConfigurations into one
 * immutable, refcounted object: domains into hash tables, regexes into
 * RE2 programs (common/re.h), header edits flattened into the order Envoy
 * applies them, timeouts into milliseconds, retry_on into a bitmask.
 * Anything it does not implement and that would change behaviour is
 * refused with a NACK text naming the field (also protobuf fields our
 * proto/ subset does not know, which protobuf-c keeps as unknown fields).
 *
 * router_match() selects the virtual host and the first matching route
 * for one request, as Envoy's RouteMatcher::route() does, without
 * allocating; the accessors below turn the route into what the proxy
 * needs (the cluster of a weighted pick, the upstream path and authority,
 * a redirect's Location) into caller buffers.  A request holds a
 * reference on the router it matched (router_ref), so a config swap
 * never frees a route under an in-flight request.
 *
 * Returns: 0 / negative errno-style codes (common/err.h) unless said.
 * Never does I/O; safe to share between threads once built.
 */
#ifndef MESH_DATAPLANE_ROUTER_H
#define MESH_DATAPLANE_ROUTER_H

#include "envoy/config/route/v3/route.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct router;
struct router_config;
struct mesh_re;

/* Envoy's defaults (api/envoy/config/route/v3/route_components.proto). */
#define ROUTER_DEFAULT_TIMEOUT_MS       15000  /* RouteAction.timeout unset */
#define ROUTER_DEFAULT_BACKOFF_MS       25     /* RetryBackOff.base_interval unset */
#define ROUTER_DIRECT_BODY_MAX          4096   /* max_direct_response_body_size_bytes unset */
#define ROUTER_PER_MILLION              1000000u
/* RE2 program size (instructions) of every regex one router_new compiles
 * together (the RDS configurations of a snapshot, or one listener's inline
 * configuration).  Each regex is capped at Istio's 32768, but a few hundred
 * bytes of pattern make one that big, and a compiled program costs about
 * 30 bytes and 0.6 us of the loop per instruction: without a total, a
 * 100 KiB VirtualService held 290 MB and stalled the loop for 12 s.  Past
 * it the update is NACKed (the RDS/LDS update_rejected counter).  2^21:
 * 64 regexes at Istio's limit, tens of thousands of ordinary ones. */
#define ROUTER_MAX_REGEX_PROGRAM_TOTAL  (1L << 21)

/* ------------------------------------------------------------- request */

/*
 * A request header by name: name is lowercase (name_len bytes, not
 * NUL-terminated); returns the value (setting *value_len) or NULL when
 * absent.  Several fields of one name are Envoy's comma-joined value;
 * the callback decides how (HTTP/1.1: the codec's view).  Pseudo-headers
 * (:method, :authority, :path, :scheme) are answered by the router from
 * struct router_req and never reach the callback.
 */
typedef const char *(*router_header_fn)(void *ctx, const char *name, size_t name_len, size_t *value_len);

struct router_req {
	const char *method;              /* :method */
	size_t method_len;
	const char *authority;           /* :authority (Host) */
	size_t authority_len;
	const char *path;                /* :path, with the query string */
	size_t path_len;
	const char *scheme;              /* :scheme / x-forwarded-proto ("http"), NUL-terminated; NULL: "http" */
	int8_t internal;                 /* issue 13: Envoy's isEnvoyInternalRequest (require_tls
	                                  * EXTERNAL_ONLY): 1 internal, -1 external (an edge HCM decided
	                                  * from the client's address), 0: the x-envoy-internal header says */
	router_header_fn header;         /* may be NULL: no other headers */
	void *header_ctx;
	uint64_t random;                 /* the stream's random value (runtime_fraction, weighted pick) */
};

/* ------------------------------------------------------------- route */

enum router_action { ROUTER_ACTION_ROUTE, ROUTER_ACTION_REDIRECT, ROUTER_ACTION_DIRECT };

/* One header edit; ops are kept in the order Envoy applies them. */
enum router_hdr_op {
	ROUTER_HDR_REMOVE,
	ROUTER_HDR_APPEND_IF_EXISTS_OR_ADD,   /* HeaderValueOption.append_action values */
	ROUTER_HDR_ADD_IF_ABSENT,
	ROUTER_HDR_OVERWRITE_IF_EXISTS_OR_ADD,
	ROUTER_HDR_OVERWRITE_IF_EXISTS,
};
struct router_hdr {
	const char *name;                /* lowercase, NUL-terminated */
	const char *value;               /* literal ("%%" already "%"); "" for REMOVE */
	uint32_t name_len, value_len;
	uint8_t op;                      /* enum router_hdr_op */
	bool keep_empty;                 /* keep_empty_value: add even when value is "" */
};
/* Request and response edits: weighted cluster, route, virtual host, route
 * configuration (or the reverse of the last three with
 * most_specific_header_mutations_wins), each level's removes before its
 * adds, as Envoy's HeaderParser::evaluateHeaders. */
struct router_hdrs {
	const struct router_hdr *req, *resp;
	uint32_t n_req, n_resp;
};

struct router_cluster {
	const char *name;
	uint32_t weight;
	const char *host_rewrite;        /* ClusterWeight.host_rewrite_literal, or NULL */
	struct router_hdrs hdrs;         /* everything for a request sent to this cluster */
};

/* RetryPolicy.retry_on conditions (Envoy's RetryPolicy::RETRY_ON_*). */
enum {
	ROUTER_RETRY_5XX                  = 1u << 0,
	ROUTER_RETRY_GATEWAY_ERROR        = 1u << 1,
	ROUTER_RETRY_CONNECT_FAILURE      = 1u << 2,
	ROUTER_RETRY_RETRIABLE_4XX        = 1u << 3,
	ROUTER_RETRY_REFUSED_STREAM       = 1u << 4,
	ROUTER_RETRY_GRPC_CANCELLED       = 1u << 5,
	ROUTER_RETRY_GRPC_DEADLINE        = 1u << 6,
	ROUTER_RETRY_GRPC_RESOURCE        = 1u << 7,
	ROUTER_RETRY_GRPC_UNAVAILABLE     = 1u << 8,
	ROUTER_RETRY_GRPC_INTERNAL        = 1u << 9,
	ROUTER_RETRY_STATUS_CODES         = 1u << 10,
	ROUTER_RETRY_RESET                = 1u << 11,
	ROUTER_RETRY_RESET_BEFORE_REQUEST = 1u << 12,
	ROUTER_RETRY_ENVOY_RATELIMITED    = 1u << 13,
	ROUTER_RETRY_HTTP3_POST_CONNECT   = 1u << 14,
};
struct router_retry {
	uint32_t on;                     /* ROUTER_RETRY_* bits */
	uint32_t num_retries;            /* 1 when unset, as Envoy */
	int64_t per_try_timeout_ms;      /* 0: none */
	int64_t per_try_idle_timeout_ms; /* 0: none */
	const uint32_t *status_codes;    /* retriable_status_codes */
	uint32_t n_status_codes;
	bool previous_hosts;             /* retry_host_predicate previous_hosts */
	/* retry_priority previous_priorities (Istio's retryRemoteLocalities):
	 * accepted, not applied: a retry picks by the usual priority order */
	bool previous_priorities;
	int64_t host_selection_max_attempts;
	int64_t backoff_base_ms, backoff_max_ms; /* 25 and 10x base by default */
};

enum router_hash_kind { ROUTER_HASH_HEADER, ROUTER_HASH_COOKIE, ROUTER_HASH_SOURCE_IP, ROUTER_HASH_QUERY };
struct router_hash_policy {
	uint8_t kind;                    /* enum router_hash_kind */
	bool terminal;
	const char *name;                /* header (lowercase), cookie or query parameter name */
	const char *cookie_path;         /* may be NULL */
	int64_t cookie_ttl_ms;           /* -1: no ttl (never generate the cookie) */
};

struct router_mirror {
	const char *cluster;
	uint32_t per_million;            /* runtime_fraction default_value; 1000000 when unset */
	bool disable_shadow_host_suffix_append;
};

/* envoy.filters.http.fault per-route config (HTTPFault). */
struct router_fault {
	bool has_delay, has_abort;
	int64_t delay_ms;
	uint32_t delay_per_million, abort_per_million;
	uint32_t abort_http_status;      /* 0 when gRPC */
	int32_t abort_grpc_status;       /* -1 when HTTP */
};

struct router_string_matcher;        /* compiled StringMatcher (private) */
struct router_cors {
	const struct router_string_matcher *origins;
	uint32_t n_origins;
	const char *allow_methods, *allow_headers, *expose_headers, *max_age; /* NULL when unset */
	int8_t allow_credentials;        /* -1 unset, 0, 1 */
	uint32_t enabled_per_million;    /* filter_enabled (1000000 when unset) */
	uint32_t shadow_per_million;     /* shadow_enabled (0 when unset) */
	bool allow_private_network_access;
	bool forward_not_matching_preflights; /* default true */
};

struct router_upgrade {
	const char *type;                /* lowercase, e.g. "websocket" */
	int8_t enabled;                  /* -1 unset, 0, 1 */
};

struct router_redirect {
	bool ssl;                        /* issue 13: a virtual host's require_tls: Location is exactly
	                                  * "https://" + Host + path (Envoy's createSslRedirectPath) */
	const char *scheme;              /* NULL: the request's (https_redirect: "https") */
	const char *host;                /* NULL: the request's */
	uint32_t port;                   /* 0: none */
	const char *path;                /* path_redirect, or NULL */
	bool path_has_query;
	const char *prefix_rewrite;      /* or NULL */
	const struct mesh_re *regex;     /* regex_rewrite, or NULL */
	const char *regex_sub;
	uint16_t code;                   /* 301, 302, 303, 307, 308 */
	bool strip_query;
};

struct router_route {
	const char *name;                /* Route.name, "" when unset */
	const char *vhost;               /* VirtualHost.name */
	uint8_t action;                  /* enum router_action */

	/* ROUTER_ACTION_ROUTE */
	const struct router_cluster *clusters; /* one (cluster) or weighted_clusters */
	uint32_t n_clusters;
	bool weighted;
	uint64_t total_weight;           /* weighted: total_weight or the sum */
	const char *cluster_header;      /* cluster_header (lowercase), else NULL */
	uint16_t cluster_not_found_code; /* 503, 404 or 500 */
	const char *prefix_rewrite;      /* or NULL */
	const struct mesh_re *regex_rewrite;
	const char *regex_sub;
	const char *host_rewrite;        /* host_rewrite_literal, or NULL */
	const char *host_rewrite_header; /* lowercase, or NULL */
	bool auto_host_rewrite;          /* the upstream host's hostname (the LB knows it) */
	bool append_x_forwarded_host;
	int64_t timeout_ms;              /* 0: none; 15000 when unset */
	int64_t idle_timeout_ms;         /* -1 unset (the connection manager's), 0 off */
	int64_t max_stream_duration_ms;  /* -1 unset */
	int64_t grpc_timeout_header_max_ms; /* -1 unset (ignore grpc-timeout), 0 no cap */
	int64_t grpc_timeout_header_offset_ms;
	const struct router_retry *retry;         /* route's, else the virtual host's; NULL: none */
	const struct router_hash_policy *hash;    /* for the LB (ring hash, maglev) */
	uint32_t n_hash;
	const struct router_mirror *mirrors;      /* route's, else the virtual host's */
	uint32_t n_mirrors;
	const struct router_upgrade *upgrades;
	uint32_t n_upgrades;
	uint32_t per_request_buffer_limit;        /* 0: the listener's */
	bool priority_high;

	/* ROUTER_ACTION_REDIRECT: the redirect (read-only, the router's); NULL
	 * for the other actions (out of line: most routes are not redirects) */
	const struct router_redirect *redirect;

	/* ROUTER_ACTION_DIRECT */
	uint16_t direct_status;
	const char *direct_body;         /* may hold NULs: direct_body_len bytes */
	size_t direct_body_len;

	/* every action */
	struct router_hdrs hdrs;         /* route, virtual host and config levels */
	const struct router_fault *fault; /* route's, else the virtual host's; NULL: none */
	const struct router_cors *cors;   /* route's, else the virtual host's */
	bool include_attempt_count_req, include_attempt_count_resp;
	/* Route.decorator (Envoy's route Decorator): the trace span's
	 * operation name, NULL without one (or an empty operation); propagate
	 * [true]: outbound, sent upstream as x-envoy-decorator-operation */
	const char *decorator;
	bool decorator_propagate;
};

/* ------------------------------------------------------------- API */

/*
 * Compile rcs[0..n) (decoded RouteConfigurations; names must be unique).
 * The router copies what it keeps: rcs may be freed afterwards.  Returns
 * 0 with *out holding one reference, -EINVAL with the NACK text in
 * err[cap] ("route config 'X': virtual host 'Y': route 3: ..."), or
 * -ENOMEM.
 */
int router_new(const Envoy__Config__Route__V3__RouteConfiguration *const *rcs, size_t n, struct router **out,
	       char *err, size_t cap);
/* Take one more reference; returns r.  NULL is a no-op. */
struct router *router_ref(struct router *r);
/* Drop one; the last frees the router.  NULL is a no-op. */
void router_unref(struct router *r);

/* The compiled route configuration named name (name_len bytes), or NULL:
 * resolve once per listener/snapshot, then match with router_config_match. */
const struct router_config *router_config(const struct router *r, const char *name, size_t name_len);
size_t router_n_configs(const struct router *r);
/* validate_clusters (Envoy: false for RDS when unset). */
bool router_config_validate_clusters(const struct router_config *c);

/*
 * The route for req: the virtual host by authority (exact domain, then
 * the longest "*suffix", then the longest "prefix*", then "*"; the
 * authority is lowercased, and its port stripped first only with
 * ignore_port_in_host_matching - Envoy's RouteMatcher::findVirtualHost),
 * then the first of its routes whose match holds.  NULL: no virtual host
 * or no route (Envoy answers 404, response flag NR).  Does not allocate.
 */
const struct router_route *router_config_match(const struct router_config *c, const struct router_req *req);
/* router_config() + router_config_match(); NULL when route_config is unknown. */
const struct router_route *router_match(const struct router *r, const char *route_config,
					const struct router_req *req);

/*
 * The cluster a ROUTE action sends this request to: the one cluster, or
 * the weighted pick for random (Envoy: random % total, the first cluster
 * whose cumulative weight exceeds it).  NULL with cluster_header routes
 * (the caller reads rt->cluster_header).
 */
const struct router_cluster *router_pick(const struct router_route *rt, uint64_t random);

/*
 * The upstream :path after prefix_rewrite / regex_rewrite (the query
 * string kept) into out[cap], NUL-terminated, length in *len.  Returns 1
 * when rewritten, 0 when the path is unchanged (out untouched), -ENOSPC.
 */
int router_upstream_path(const struct router_route *rt, const struct router_req *req, char *out, size_t cap,
			 size_t *len);
/*
 * The upstream :authority: the route's host_rewrite_literal, else the
 * cluster's, else host_rewrite_header's value, else NULL (keep the
 * client's; auto_host_rewrite is the LB's to apply).  *len gets the length.
 */
const char *router_upstream_authority(const struct router_route *rt, const struct router_cluster *cl,
				      const struct router_req *req, size_t *len);

/*
 * A REDIRECT route's Location (Envoy's Http::Utility::newUri) into
 * out[cap], NUL-terminated.  Returns 0, -ENOSPC, or -EINVAL for a
 * route that is not a redirect.  The status is rt->redirect->code.
 */
int router_redirect_location(const struct router_route *rt, const struct router_req *req, char *out, size_t cap,
			     size_t *len);

/* Does origin match the CORS policy's allowed origins? */
bool router_cors_origin_allowed(const struct router_cors *c, const char *origin, size_t len);
/* Does a per-million fraction fire for this random value (Envoy's
 * featureEnabled: random % 1000000 < per_million)? */
static inline bool router_fraction(uint32_t per_million, uint64_t random)
{
	return random % ROUTER_PER_MILLION < per_million;
}

#endif
