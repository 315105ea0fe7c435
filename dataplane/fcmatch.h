/*
 * fcmatch.h - a Listener's filter chain selection, as Envoy does it
 * (source/common/listener_manager/filter_chain_manager_impl.cc and
 * listener_components.proto's FilterChainMatch): the chain that serves a
 * connection is found by narrowing the candidates one criterion at a time,
 * in this order
 *
 *   destination_port, prefix_ranges (destination IP), server_names (exact,
 *   then the longest "*.suffix" wildcard), transport_protocol,
 *   application_protocols, direct_source_prefix_ranges, source_type,
 *   source_prefix_ranges, source_ports
 *
 * and at each step the most specific value wins (an exact port, the
 * longest prefix, the exact name...); chains that leave the field empty
 * are taken only when no chain names the connection's value.  There is no
 * backtracking: once a specific value matched, chains with the field empty
 * are out even if the later steps then find nothing (Envoy's behaviour).
 * Nothing left: the listener's default_filter_chain, else the connection is
 * closed.
 *
 * The table is compiled once per configuration from the Listener resource
 * (fcm_table_init; it keeps copies, not pointers into the message) and
 * knows chains by their index in
 * Listener.filter_chains; what a chain does (struct px_port) stays with the
 * caller.  It also keeps what the listener filters ask for: which
 * inspectors run (tls_inspector, http_inspector) and their timeout.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_FCMATCH_H
#define MESH_DATAPLANE_FCMATCH_H

#include "common/err.h"
#include "envoy/config/listener/v3/listener.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Listener filters the table saw (fcm_table.inspect). */
#define FCM_INSPECT_TLS  1u /* envoy.filters.listener.tls_inspector */
#define FCM_INSPECT_HTTP 2u /* envoy.filters.listener.http_inspector */

/* Fields some chain of the listener matches on (fcm_table.uses): a
 * connection needs sniffing only for these. */
#define FCM_USES_SNI       1u
#define FCM_USES_TRANSPORT 2u
#define FCM_USES_ALPN      4u

/* FCM_DEFAULT: fcm_select() picked default_filter_chain. */
#define FCM_DEFAULT (-1)

/* Envoy's listener_filters_timeout when the Listener leaves it unset: 15 s. */
#define FCM_LISTENER_FILTERS_TIMEOUT_DEFAULT_MS 15000

struct fcm_chain;

struct fcm_table {
	struct fcm_chain *chains;      /* one per Listener.filter_chains, same order */
	size_t n_chains;
	int has_default;               /* default_filter_chain is set */
	unsigned inspect;              /* FCM_INSPECT_* */
	unsigned uses;                 /* FCM_USES_* */
	uint64_t filters_timeout_ms;   /* listener_filters_timeout; 0: none */
	int continue_on_timeout;       /* continue_on_listener_filters_timeout */
};

/* What is known of a connection when its chain is chosen.  Addresses are
 * sockaddr_in/sockaddr_in6 (IPv4-mapped IPv6 is matched as IPv4); NULL
 * when unknown.  sni NULL: none; transport "tls" or "raw_buffer" (NULL is
 * "raw_buffer"); alpn: the client's ALPN list (TLS) or the sniffed
 * protocol ("http/1.1", "h2c"), NULL entries not allowed. */
struct fcm_conn {
	const struct sockaddr *dst;
	const struct sockaddr *src;        /* source_prefix_ranges, source_ports, source_type */
	const struct sockaddr *direct_src; /* the peer of the socket (no PROXY protocol here: src) */
	const char *sni;
	const char *transport;
	const char *const *alpn;
	size_t n_alpn;
	int alpn_unknown;                  /* the client's ALPN list is not known (TLS terminated without
	                                    * it): every chain passes the application_protocols step */
};

/*
 * Compiles l's filter chain matches and listener filters into *t (zeroed
 * first; fcm_table_cleanup() frees it, also after a failure).  Returns 0,
 * -EINVAL with a reason in err for a prefix that does not parse (Envoy
 * rejects the Listener), or -ENOMEM.
 */
MESH_MUST_CHECK int fcm_table_init(struct fcm_table *t, const Envoy__Config__Listener__V3__Listener *l, char *err,
				   size_t cap);
void fcm_table_cleanup(struct fcm_table *t);

/*
 * The chain for c: its index in Listener.filter_chains, FCM_DEFAULT for
 * default_filter_chain, or -ENOENT (no chain: close the connection).
 */
int fcm_select(const struct fcm_table *t, const struct fcm_conn *c);

/* The destination port chain i names, or 0 (no destination_port). */
uint32_t fcm_chain_port(const struct fcm_table *t, size_t i);

#endif
