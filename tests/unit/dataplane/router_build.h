/*
 * router_build.h - terse builders of decoded RouteConfiguration messages
 * for the router's tests and benchmark (everything from one arena, so a
 * test frees it all at once).
 */
#ifndef MESH_TEST_ROUTER_BUILD_H
#define MESH_TEST_ROUTER_BUILD_H

#include "common/arena.h"
#include "dataplane/router.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/common/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <stdarg.h>
#include <string.h>

typedef Envoy__Config__Route__V3__RouteConfiguration rb_rc;
typedef Envoy__Config__Route__V3__VirtualHost rb_vh;
typedef Envoy__Config__Route__V3__Route rb_route;
typedef Envoy__Config__Route__V3__HeaderMatcher rb_hm;

static struct arena *rb_a;

#define RB_NEW(T, INIT) ({ T *x_ = arena_alloc(rb_a, sizeof(T)); T t_ = INIT; *x_ = t_; x_; })

static inline char *rb_str(const char *s)
{
	return arena_strdup(rb_a, s);
}

static inline void **rb_vec(size_t n)
{
	return arena_calloc(rb_a, n ? n : 1, sizeof(void *));
}

/* A route: prefix match, one cluster. */
static inline rb_route *rb_route_prefix(const char *prefix, const char *cluster)
{
	rb_route *r = RB_NEW(rb_route, ENVOY__CONFIG__ROUTE__V3__ROUTE__INIT);

	r->match = RB_NEW(Envoy__Config__Route__V3__RouteMatch, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__INIT);
	r->match->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	r->match->prefix = rb_str(prefix);
	r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
	r->route = RB_NEW(Envoy__Config__Route__V3__RouteAction, ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__INIT);
	r->route->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
	r->route->cluster = rb_str(cluster);
	return r;
}

/* A virtual host: domains comma-separated, then n routes. */
static inline rb_vh *rb_vhost(const char *name, const char *domains, size_t n, ...)
{
	rb_vh *v = RB_NEW(rb_vh, ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__INIT);
	char *d = rb_str(domains), *comma;
	va_list ap;
	size_t i;

	v->name = rb_str(name);
	v->domains = (char **)rb_vec(strlen(domains) + 1);
	for (; d; d = comma ? comma + 1 : NULL) {
		comma = strchr(d, ',');
		if (comma)
			*comma = '\0';
		v->domains[v->n_domains++] = d;
	}
	v->routes = (rb_route **)rb_vec(n);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		v->routes[v->n_routes++] = va_arg(ap, rb_route *);
	va_end(ap);
	return v;
}

static inline rb_rc *rb_config(const char *name, size_t n, ...)
{
	rb_rc *rc = RB_NEW(rb_rc, ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT);
	va_list ap;
	size_t i;

	rc->name = rb_str(name);
	rc->virtual_hosts = (rb_vh **)rb_vec(n);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		rc->virtual_hosts[rc->n_virtual_hosts++] = va_arg(ap, rb_vh *);
	va_end(ap);
	return rc;
}

/* Request headers as a NULL-terminated name, value, ... list. */
static inline const char *rb_header(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
	const char *const *kv = ctx;

	for (; kv && kv[0]; kv += 2)
		if (strlen(kv[0]) == name_len && strncasecmp(kv[0], name, name_len) == 0) {
			*value_len = strlen(kv[1]);
			return kv[1];
		}
	return NULL;
}

static inline struct router_req rb_req(const char *authority, const char *path, const char *const *headers)
{
	struct router_req q = {
		.method = "GET", .method_len = 3,
		.authority = authority, .authority_len = strlen(authority),
		.path = path, .path_len = strlen(path),
		.header = rb_header, .header_ctx = (void *)headers,
		.random = 99,
	};
	return q;
}

#endif
