/*
 * dns.h - asynchronous name resolution for meshproxy's loop (issue 13:
 * STRICT_DNS / LOGICAL_DNS clusters, dnscl.c; and the names of
 * passthrough destinations, proxy.c).
 *
 * A lookup never blocks the loop: glibc's getaddrinfo_a() runs it on its
 * own helper thread, and the resolver notices completions by polling
 * gai_error() from a loop timer (first after DNS_POLL_MIN_MS, doubling up
 * to DNS_POLL_MAX_MS while nothing completes, off while nothing is in
 * flight), the way proxy.c's passthrough lookups do.  Polling rather than
 * a SIGEV_THREAD notification writing to an eventfd: the notification
 * thread could outlive the lookup (and the fd) it was told about, and the
 * delay it saves is a few milliseconds on an event that happens once per
 * refresh interval.
 *
 * The address family follows Envoy's Cluster.DnsLookupFamily (the enum's
 * numbering): AUTO takes the IPv6 addresses when there are any, else the
 * IPv4 ones; V4_PREFERRED the other way round; ALL both; V4_ONLY / V6_ONLY
 * ask for that family only.  Addresses come back deduplicated, in the
 * resolver's order, with port 0 (the caller sets the endpoint's).
 *
 * The callback runs on the loop, from the resolver's timer, never from
 * dns_resolve() itself, exactly once per query unless dns_cancel() came
 * first.  Returns: 0 or a negative errno-style code.  Loop thread only.
 */
#ifndef MESH_DATAPLANE_DNS_H
#define MESH_DATAPLANE_DNS_H

#include "dataplane/ev.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_POLL_MIN_MS 1
#define DNS_POLL_MAX_MS 50
/* A lookup still running after this long is answered -ETIMEDOUT (and
 * cancelled; glibc's thread finishes it in the background).  Envoy's
 * c-ares resolver gives up after 5 s (its default timeout x tries). */
#define DNS_TIMEOUT_MS 5000
#define DNS_ADDRS_MAX 32   /* addresses kept per name (more are dropped, in order) */
#define DNS_NAME_MAX 255   /* RFC 1035's bound on a name's text form */

/* Envoy's Cluster.DnsLookupFamily values. */
enum dns_family {
	DNS_AUTO = 0,
	DNS_V4_ONLY = 1,
	DNS_V6_ONLY = 2,
	DNS_V4_PREFERRED = 3,
	DNS_ALL = 4,
};

struct dns_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} u;
	socklen_t len;
};

/* Envoy's dns resolver counters (its documented dns.cares.* set:
 * resolve_total, pending_resolutions, not_found, timeout,
 * get_addr_failure). */
struct dns_stats {
	uint64_t resolve_total;   /* lookups started */
	uint64_t pending;         /* in flight (gauge) */
	uint64_t not_found;       /* the name does not exist / has no address of the family */
	uint64_t timeouts;        /* gave up after DNS_TIMEOUT_MS */
	uint64_t failures;        /* any other error (server failure, out of memory) */
};

struct addrinfo;
struct dns_resolver;
struct dns_query;

/* status: 0 with addrs[0..n) (n >= 1); -ENOENT no such name or no address
 * of the family; -ETIMEDOUT; -EAGAIN the server failed (try later); -EIO,
 * -ENOMEM.  addrs is valid during the call only. */
typedef void (*dns_cb)(void *arg, int status, const struct dns_addr *addrs, size_t n);

/* A resolver on loop.  timeout_ms 0: DNS_TIMEOUT_MS.  0 or -ENOMEM. */
int dns_resolver_new(struct ev_loop *loop, uint64_t timeout_ms, struct dns_resolver **out);
/* Cancels every query (no callback runs) and waits for glibc's threads to
 * let go of the ones already running (exit only: it blocks).  NULL is a
 * no-op. */
void dns_resolver_free(struct dns_resolver *r);

/* Start resolving name (an IP literal resolves to itself).  *out (may be
 * NULL) is the query, for dns_cancel(); it is the resolver's, gone after
 * the callback.  0, -EINVAL (empty or too long a name), -ENOMEM, or
 * -EAGAIN (glibc could not start it). */
int dns_resolve(struct dns_resolver *r, const char *name, enum dns_family fam, dns_cb cb, void *arg,
		struct dns_query **out);
/* The callback of q will not run.  q must not have called back yet. */
void dns_cancel(struct dns_query *q);

void dns_get_stats(const struct dns_resolver *r, struct dns_stats *st);

/* Keep the addresses of ai (a getaddrinfo() list) that fam wants into
 * out[0..cap), deduplicated; returns how many.  Exposed for the tests. */
size_t dns_filter(const struct addrinfo *ai, enum dns_family fam, struct dns_addr *out, size_t cap);

/* Equal address lists, in any order (a re-resolution that changes
 * nothing leaves the host set alone: Envoy's update_no_rebuild). */
int dns_addrs_equal(const struct dns_addr *a, size_t na, const struct dns_addr *b, size_t nb);

#endif
