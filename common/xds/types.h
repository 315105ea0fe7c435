/*
 * types.h - the xDS resource types meshd serves and meshproxy asks for, and
 * their type URLs (the wire names in DiscoveryRequest.type_url and
 * Any.type_url, which must match Envoy's protos exactly).
 */
#ifndef MESH_COMMON_XDS_TYPES_H
#define MESH_COMMON_XDS_TYPES_H

enum xds_type {
	XDS_LISTENER,
	XDS_ROUTE,
	XDS_CLUSTER,
	XDS_ENDPOINT,
	XDS_SECRET,
	XDS_TYPE_COUNT
};

#define XDS_TYPE_URL_PREFIX "type.googleapis.com/"
/* "type.googleapis.com/envoy.config.listener.v3.Listener", ...; NULL for a
 * value out of range */
const char *xds_type_url(enum xds_type t);
/* The type a URL names; -1 when it names no type meshd serves (or NULL). */
int xds_type_from_url(const char *url);
/* "lds", "rds", "cds", "eds", "sds" (Istio's metric labels); "unknown" out
 * of range */
const char *xds_type_short(enum xds_type t);

#endif
