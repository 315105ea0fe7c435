/*
 * alogexpr.h - the subset of CEL that Istio users write in Telemetry
 * accessLogging filter.expression (Envoy's
 * envoy.access_loggers.extension_filters.cel ExpressionFilter), compiled
 * once per config to a small tree and evaluated per request.
 *
 * Grammar: || && ! ( ), comparisons == != < <= > >=, integer, string
 * ('..' or "..", \\ \' \" \n \t escapes) and true/false literals, the
 * methods startsWith / endsWith / contains on strings, and these
 * attributes (Envoy's names and types):
 *   request.path request.url_path request.host request.method
 *   request.scheme request.protocol request.id request.useragent
 *   request.referer request.size request.headers['name']
 *   response.code response.code_details response.flags response.size
 *   connection.mtls connection.requested_server_name
 *   connection.termination_details source.address source.port
 *   destination.address destination.port upstream.address
 *   upstream.transport_failure_reason xds.cluster_name xds.route_name
 * response.flags is Envoy's bit mask (an integer); compared with a string
 * it is the flags as %RESPONSE_FLAGS% prints them ("-", "UF,URX"), since
 * users write `response.flags != '-'`.
 * As in CEL, a missing header is an error value: a comparison with it is
 * an error, `false && error` is false, `true || error` true, and an
 * expression that ends in an error does not log (Envoy's filter).
 * Anything else (another attribute, function or operator, a type mismatch
 * such as response.code == '5') is refused at compile time with a message
 * naming it and its offset.  Limits: 4096 bytes, 256 nodes, nesting 32.
 */
#ifndef MESH_DATAPLANE_ALOGEXPR_H
#define MESH_DATAPLANE_ALOGEXPR_H

#include "common/err.h"
#include "dataplane/accesslog.h"

#include <stddef.h>

#define ALX_MAX_LEN 4096
#define ALX_MAX_NODES 256
#define ALX_MAX_DEPTH 32

struct alx;

/* The index of request header name (len bytes, any case) among the
 * config's extra headers, registering it; < 0 when no room is left. */
typedef int (*alx_header_fn)(void *ctx, const char *name, size_t len);

/* Compile src (len bytes).  0 with *out; -EINVAL with the reason in err
 * (cap bytes); -ENOMEM. */
MESH_MUST_CHECK int alx_compile(const char *src, size_t len, alx_header_fn hdr, void *hdr_ctx, struct alx **out,
				char *err, size_t cap);
void alx_free(struct alx *x); /* NULL is a no-op */

/* 1: e passes (log it); 0: false or an error. */
int alx_eval(const struct alx *x, const struct px_alog_entry *e);

#endif
