/*
 * flavour.h - what one kind of xDS client accepts, as data.
 *
 * The builders in controlplane/gen/ are shared by every client kind
 * (proxyless gRPC today; Envoy or meshproxy sidecars and gateways next).
 * Where client kinds differ, a builder reads a flag of the profile instead
 * of being written per kind: a feature the profile allows is built, one it
 * does not is left out (or replaced by what that client understands).
 * A new client kind is a new constant here, not a copy of the builders.
 *
 * Flags marked "slot" name Istio features that no builder emits yet; they
 * are kept so that the builder that adds them has a place to read from, and
 * every profile sets them false today.  Every flag added for the sidecar
 * is false for proxyless clients, whose output stays as it was.
 */
#ifndef MESH_GEN_FLAVOUR_H
#define MESH_GEN_FLAVOUR_H

#include <stdbool.h>

struct gen_profile {
	const char *name;            /* for messages: "proxyless", "sidecar" */

	/* ---- routes (RDS) */
	/* HeaderMatcher.string_match; false: the older exact_match /
	 * prefix_match / safe_regex_match / present_match fields. */
	bool string_match;
	/* WeightedCluster.total_weight set to the sum of the weights (gRPC
	 * 1.51 rejects a total that differs; Envoy deprecates the field). */
	bool weighted_total;
	/* A route timeout also sent as max_stream_duration (what gRPC
	 * reads; Envoy reads RouteAction.timeout). */
	bool max_stream_duration;
	/* http matches on sourceLabels / sourceNamespace are evaluated for
	 * the calling workload (its output is per caller); false: the output
	 * is shared by every caller, so such matches are left out. */
	bool per_caller_matches;
	bool redirects;              /* redirect routes */
	bool direct_responses;       /* directResponse routes (status and body answered by the proxy) */
	bool rewrites;               /* uri prefix / uriRegexRewrite / authority rewrites */
	bool cors;                   /* corsPolicy as RouteAction.cors (the proxy answers preflights) */
	bool mirror;                 /* request mirroring, with its percentage */
	bool header_edits;           /* request / response header set, add, remove */
	/* Istio's sidecar retry extras: retry_host_predicate previous_hosts
	 * with host_selection_retry_max_attempts 5 (not with a hash policy),
	 * status codes of retryOn as retriable_status_codes; every virtual
	 * host with include_request_attempt_count. */
	bool istio_retry;
	/* Routes from a VirtualService with no catch-all end with one that
	 * fails the call with UNAVAILABLE (a 100% gRPC abort fault on the
	 * service's own cluster): Debian's gRPC 1.51 client crashes (SIGSEGV)
	 * on a call no route matches; Envoy answers 404 itself. */
	bool no_match_fallback;
	/* Every route carries decorator.operation as istiod's route builder
	 * sets it (route.go getRouteOperation, BuildDefaultHTTPOutboundRoute):
	 * Envoy names trace spans by it; gRPC clients do not trace by route. */
	bool decorators;

	/* ---- clusters and endpoints (CDS, EDS) */
	/* LEAST_REQUEST and RANDOM load balancing, LEAST_REQUEST by default
	 * (Istio's sidecar default); false: ROUND_ROBIN (gRPC 1.51 rejects
	 * LEAST_REQUEST, RANDOM and MAGLEV). */
	bool least_request;
	/* Every locality carries load_balancing_weight (gRPC 1.51 drops
	 * localities without one). */
	bool locality_weights;
	/* Per-proxy locality load balancing, as istiod's EDS builder
	 * (ApplyLocalityLoadBalancer): priorities by proximity to the proxy,
	 * failover / failoverPriority rules and distribute weights, and
	 * locality_weighted_lb_config with outlier detection.  Needs output
	 * built per proxy (gen_ctx.locality). */
	bool locality_lb;
	/* EDS endpoints may be host names; false: only IP addresses (gRPC
	 * cannot resolve names from EDS). */
	bool endpoint_hostnames;
	bool tls_files;              /* slot: DestinationRule SIMPLE / MUTUAL from certificate files */
	/* What istiod's cluster builder adds for Envoy: default circuit
	 * breaker thresholds (max, track_remaining), common_lb_config with
	 * the panic-threshold rule, MAGLEV, upstream HttpProtocolOptions
	 * (idle timeout, requests per connection, HTTP/2 to HTTP2 / gRPC
	 * ports), STRICT_DNS clusters for DNS ServiceEntries. */
	bool cluster_extras;
	/* Certificates over SDS (secrets "default" and "ROOTCA"), as Envoy
	 * sidecars get them; false: certificate provider instances. */
	bool sds_tls;
	/* Auto mTLS the sidecar way: endpoints carry
	 * envoy.transport_socket_match {tlsMode} metadata and clusters pick
	 * TLS with transport_socket_matches; false: TLS decided per cluster. */
	bool tls_mode_match;

	/* ---- listeners (LDS) */
	/* Outbound listeners bound to 0.0.0.0:PORT with the HTTP connection
	 * manager as a network filter; false: an ApiListener per HOST:PORT
	 * (proxyless clients do not listen). */
	bool listener_address;
	/* The RBAC filter with action LOG for AUDIT policies (gRPC 1.51 knows
	 * no LOG action). */
	bool rbac_audit;
	/* A server port can take TLS and plaintext at once, so PERMISSIVE
	 * accepts both; false: PERMISSIVE is served as plaintext unless the
	 * workload carries security.istio.io/tlsMode=istio (a gRPC server
	 * serves one or the other on a port). */
	bool mixed_tls_port;
};

/* Proxyless gRPC clients and servers: the floor of Debian 12's gRPC 1.51
 * (DESIGN.md "Compatibility floor"): no string_match, ROUND_ROBIN instead
 * of LEAST_REQUEST, total_weight equal to the sum, locality weights, the
 * router filter last, no redirects, rewrites, mirrors or header edits. */
extern const struct gen_profile gen_profile_proxyless;

/* Envoy and meshproxy sidecars, as istiod's sidecar generator serves
 * them (DESIGN.md "xDS conventions"): string_match, LEAST_REQUEST by
 * default, listeners with addresses, RBAC audit, PERMISSIVE ports taking
 * TLS and plaintext, redirects, rewrites, mirrors, header edits, matches
 * evaluated per caller. */
extern const struct gen_profile gen_profile_sidecar;

/* Envoy and meshproxy gateways (node type router), as istiod's gateway
 * generator serves them (gen_gateway_snapshot): the sidecar's route and
 * cluster settings (the same builders; Istio's gateway routes and
 * clusters are the sidecar's) with the listeners of Gateway servers. */
extern const struct gen_profile gen_profile_router;

#endif
