/*
 * types.c - the xDS type table (see types.h): one row per type, URL and
 * Istio's short label.
 */
#include "common/xds/types.h"

#include <string.h>

static const struct {
	const char *url;
	const char *short_name;
} xds_types[XDS_TYPE_COUNT] = {
	[XDS_LISTENER] = { XDS_TYPE_URL_PREFIX "envoy.config.listener.v3.Listener", "lds" },
	[XDS_ROUTE] = { XDS_TYPE_URL_PREFIX "envoy.config.route.v3.RouteConfiguration", "rds" },
	[XDS_CLUSTER] = { XDS_TYPE_URL_PREFIX "envoy.config.cluster.v3.Cluster", "cds" },
	[XDS_ENDPOINT] = { XDS_TYPE_URL_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment", "eds" },
	[XDS_SECRET] = { XDS_TYPE_URL_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret", "sds" },
};

const char *xds_type_url(enum xds_type t)
{
	if ((unsigned)t >= XDS_TYPE_COUNT)
		return NULL;
	return xds_types[t].url;
}

int xds_type_from_url(const char *url)
{
	int t;

	if (!url)
		return -1;
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		if (strcmp(url, xds_types[t].url) == 0)
			return t;
	return -1;
}

const char *xds_type_short(enum xds_type t)
{
	if ((unsigned)t >= XDS_TYPE_COUNT)
		return "unknown";
	return xds_types[t].short_name;
}
