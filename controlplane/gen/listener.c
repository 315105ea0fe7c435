/*
 * listener.c - LDS: the outbound listeners, one per service host and port.
 *
 * Following Istio: a Listener "HOST:PORT" whose HttpConnectionManager
 * takes its routes over ADS (RDS "HOST:PORT") and runs the fault filter,
 * then the router (gRPC 1.51 rejects an HCM whose last filter is not the
 * router; Envoy wants it last too).  A proxyless client gets the HCM in an
 * ApiListener (it does not listen); a client whose profile has
 * listener_address gets it as the network filter of a listener bound to
 * 0.0.0.0:PORT.
 */
#include "controlplane/gen/gen_int.h"

#include "common/err.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "envoy/config/listener/v3/api_listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"

#include <string.h>

#define GEN_HCM_FILTER "envoy.filters.network.http_connection_manager"

/* Its bytes depend only on the route name (and, for listeners with an
 * address, on the stat prefix Envoy requires). */
Google__Protobuf__Any *gen__outbound_hcm(const struct gen_ctx *g, struct arena *a, const char *route_name)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter fault_f =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter router_f =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *filters[2];
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault fault = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;

	rds.config_source = gen__ads_source(a);
	rds.route_config_name = (char *)route_name;
	if (!rds.config_source)
		return NULL;

	fault_f.name = GEN_FAULT_FILTER;
	fault_f.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	fault_f.typed_config = gen__any(a, &fault.base);
	router_f.name = GEN_ROUTER_FILTER;
	router_f.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	router_f.typed_config = gen__any(a, &router.base);
	if (!fault_f.typed_config || !router_f.typed_config)
		return NULL;
	filters[0] = &fault_f;
	filters[1] = &router_f;        /* router last: gRPC 1.51 requires it */

	if (g->p->listener_address && !(hcm.stat_prefix = arena_printf(a, "outbound_%s", route_name)))
		return NULL;
	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = &rds;
	hcm.n_http_filters = 2;
	hcm.http_filters = filters;
	return gen__any(a, &hcm.base);
}

/* The listener of a client that listens: 0.0.0.0:PORT, one filter chain
 * with the HCM as its network filter. */
static int gen_bound_listener(struct arena *a, Envoy__Config__Listener__V3__Listener *l, uint32_t port,
			      Google__Protobuf__Any *hcm)
{
	Envoy__Config__Core__V3__Address *addr = gen__msg(a, &envoy__config__core__v3__address__descriptor);
	Envoy__Config__Core__V3__SocketAddress *sa = gen__msg(a, &envoy__config__core__v3__socket_address__descriptor);
	Envoy__Config__Listener__V3__FilterChain *fc = gen__msg(a, &envoy__config__listener__v3__filter_chain__descriptor);
	Envoy__Config__Listener__V3__Filter *f = gen__msg(a, &envoy__config__listener__v3__filter__descriptor);

	if (!addr || !sa || !fc || !f || !(l->filter_chains = arena_calloc(a, 1, sizeof(*l->filter_chains))) ||
	    !(fc->filters = arena_calloc(a, 1, sizeof(*fc->filters))))
		return -ENOMEM;
	sa->address = "0.0.0.0";
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = port;
	addr->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	addr->socket_address = sa;
	f->name = GEN_HCM_FILTER;
	f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = hcm;
	fc->filters[0] = f;
	fc->n_filters = 1;
	l->address = addr;
	l->filter_chains[0] = fc;
	l->n_filter_chains = 1;
	return 0;
}

int gen__listeners(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
		   struct xds_snapshot *snap)
{
	int rc = 0;
	size_t i;

	for (i = 0; i < svc->n_ports; i++) {
		Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
		Envoy__Config__Listener__V3__ApiListener api = ENVOY__CONFIG__LISTENER__V3__API_LISTENER__INIT;
		char *name = arena_printf(a, "%s:%u", svc->hostname, svc->ports[i].number);
		Google__Protobuf__Any *hcm;

		if (!name) {
			rc = -ENOMEM;
			goto out;
		}
		hcm = gen__outbound_hcm(g, a, name);
		if (!hcm) {
			rc = -ENOMEM;
			goto out;
		}
		l.name = name;
		if (g->p->listener_address) {
			rc = gen_bound_listener(a, &l, svc->ports[i].number, hcm);
			if (rc < 0)
				goto out;
		} else {
			api.api_listener = hcm;
			l.api_listener = &api;
		}
		rc = gen__emit(g, snap, XDS_LISTENER, name, &l.base);
		if (rc < 0)
			goto out;
	}
out:
	return rc;
}
