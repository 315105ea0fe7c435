/*
 * dnscl.h - STRICT_DNS and LOGICAL_DNS clusters (issue 13): the names in a
 * Cluster's load_assignment resolved off the loop (dns.h), re-resolved at
 * dns_refresh_rate, and turned into the cluster's host set.
 *
 * Envoy's semantics (source/extensions/clusters/strict_dns,
 * logical_dns):
 *  - STRICT_DNS: every endpoint's name is resolved; each address becomes a
 *    host with the endpoint's port, locality, priority, weight, health
 *    and metadata.  A re-resolution rebuilds the set only when the
 *    addresses changed (else update_no_rebuild); hosts whose address stays
 *    are the same objects (their pools, counters and outlier state stay).
 *  - LOGICAL_DNS: one endpoint (more is refused at compile, as Envoy
 *    does); new connections go to the first address of the latest
 *    resolution.  (Envoy keeps one logical host whose idle connections to
 *    the old address are still reused; here the host changes with the
 *    address and the old one's idle connections are closed: in-flight
 *    requests finish.)
 *  - dns_refresh_rate, Envoy's 5 s when unset; the same after a failure
 *    (no dns_failure_refresh_rate in our proto subset).  respect_dns_ttl
 *    cannot be honoured: getaddrinfo does not report TTLs.
 *  - a failed resolution keeps the name's last good addresses and counts
 *    update_failure; each change between resolving and failing is logged
 *    once.
 *  - warming: until each name has been resolved once (or has failed) the
 *    cluster is not warm; proxy.c holds a request for it (bounded by
 *    PX_DNS_WARM_MAX_MS) instead of answering 503 UH at once, as Envoy
 *    would not use the cluster before its first resolution.
 * Loop thread only.  Returns: 0 or negative errno-style codes.
 */
#ifndef MESH_DATAPLANE_DNSCL_H
#define MESH_DATAPLANE_DNSCL_H

#include "dataplane/dns.h"

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct engine;
struct px_cluster;
struct px_resource;
struct up_cluster;
struct up_hostset;
struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment;

/* Envoy's dns_refresh_rate default. */
#define DNSCL_REFRESH_DEFAULT_MS 5000
/* How long a request waits for a cluster's first resolution. */
#define PX_DNS_WARM_MAX_MS (DNS_TIMEOUT_MS + 1000)

/* What one name resolved to (dnscl_cla()'s input). */
struct dnscl_result {
	const char *name;
	const struct dns_addr *addrs;
	size_t n;
};

/*
 * The ClusterLoadAssignment a DNS cluster's hosts are built from: tmpl
 * (the Cluster's load_assignment) with each endpoint whose address is a
 * name replaced by one endpoint per address res gives for the name (the
 * first only when logical), everything else of the endpoint kept; an
 * endpoint whose address is an IP stays; a name without addresses (not
 * resolved yet) gives no endpoint.  Built in a (shallow copies pointing
 * into tmpl, which must outlive *out).  tmpl NULL gives *out NULL (an
 * empty set).  0 or -ENOMEM.
 */
int dnscl_cla(const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment *tmpl, bool logical,
	      const struct dnscl_result *res, size_t n_res, struct arena *a,
	      struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out);

struct dnscl;

/*
 * cl, compiled into up from the Cluster resource r, is (still) a DNS
 * cluster: its names become r's (names kept keep their addresses and
 * refresh timers, new names start resolving now, names gone are
 * cancelled), and names_hs, the host set compiled from the names, is
 * replaced by the one built from the addresses known now.  Takes
 * names_hs; returns the set for cluster_update() (never NULL: names_hs
 * itself when out of memory, whose unresolved hosts are never picked).
 */
struct up_hostset *dnscl_attach(struct engine *e, struct px_cluster *cl, const struct px_resource *r,
				struct up_cluster *up, struct up_hostset *names_hs);
/* cl is no longer a DNS cluster (or is gone): lookups and timers
 * cancelled, cl->dns freed and NULL.  No-op when it was none. */
void dnscl_detach(struct px_cluster *cl);
/* Every name of the cluster has been resolved (or has failed) once. */
bool dnscl_warm(const struct dnscl *d);
/* The name whose last resolution gave the address of sa (port ignored),
 * for /clusters' hostname:: row as Envoy prints it; NULL: none (an IP
 * endpoint, or d NULL).  Borrowed until the next update. */
const char *dnscl_hostname(const struct dnscl *d, const struct sockaddr *sa);

#endif
