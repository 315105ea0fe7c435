/*
 * upstream-t.h - the types the upstream modules share (haproxy's foo-t.h
 * habit): one upstream host and its mutable per-host state.
 *
 * A host is created by up_hostset_new() from an LbEndpoint and lives as
 * long as some host set lists it: a host set built from an EDS update takes
 * over (shares, by reference) the host object of the previous set with the
 * same "address:port", so outlier state, active requests and connections
 * survive updates (Envoy keeps the HostSharedPtr across updates the same
 * way).  Everything here belongs to the proxy's loop thread; the reference
 * count is not atomic.
 *
 * Hot fields (read by every pick) come first so that a pick touches one
 * cache line per host.
 */
#ifndef MESH_DATAPLANE_UPSTREAM_T_H
#define MESH_DATAPLANE_UPSTREAM_T_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[v6 address]:65535" fits; longer addresses are refused at compile. */
#define UP_KEY_MAX 64

/* EDS health, folded as Envoy folds core.v3.HealthStatus: UNKNOWN and
 * HEALTHY are healthy, DEGRADED is degraded, the rest unhealthy. */
enum up_health {
	UP_HEALTHY = 0,
	UP_DEGRADED = 1,
	UP_UNHEALTHY = 2,
};

/* Outlier detection's memory of one host (outlier.c; Envoy's
 * DetectorHostMonitorImpl). */
struct up_outlier_state {
	uint32_t consecutive_5xx;
	uint32_t consecutive_gw;       /* 502, 503, 504 (and local-origin errors mapped to them) */
	uint32_t consecutive_local;    /* split_external_local_origin_errors only */
	uint32_t backoff;              /* ejection time multiplier: +1 per ejection, -1 per healthy interval */
	uint32_t num_ejections;        /* total, for /clusters */
	uint64_t ejected_at_ms;        /* caller's now when last ejected */
	uint64_t unejected_at_ms;      /* 0: never unejected */
};

struct up_host {
	/* --- hot: every pick */
	uint32_t active_rq;            /* the engine: ++ at dispatch, -- when the request ends */
	uint32_t weight;               /* load_balancing_weight (>= 1) */
	uint8_t health;                /* enum up_health, from EDS */
	uint8_t ejected;               /* outlier detection: FAILED_OUTLIER_CHECK */
	uint8_t tls_istio;             /* metadata envoy.transport_socket_match tlsMode == "istio" */
	uint8_t key_len;
	uint32_t active_cx;            /* the pool: open connections */
	/* --- cold */
	uint32_t refs;                 /* host sets listing it (loop thread only) */
	uint32_t priority;             /* of the host set it was last built into */
	uint32_t locality;             /* index in that priority's locality table */
	uint32_t pad_;
	uint64_t added_ms;             /* loop clock when first listed (slow start); 0: not stamped yet */
	uint64_t rq_total, rq_error;   /* counters for /clusters, the engine's to bump */
	struct up_outlier_state od;
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addr_len;
	uint16_t port;
	/* Envoy's Address::asString(): "10.0.0.1:80", "[::1]:80"; key_len + 1
	 * bytes (< UP_KEY_MAX) allocated with the host (up_hostset_new: a
	 * sidecar holds ~3,000 hosts, most keys under 24 bytes) */
	char key[];
};

#endif
