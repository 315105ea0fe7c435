/*
 * telemetryz.h - /debug/telemetryz: the effective Telemetry of one
 * workload (model_telemetry_for), for users checking which Telemetry
 * objects apply to a proxy and what they merge into.  Private to debug/.
 */
#ifndef MESH_DEBUG_TELEMETRYZ_H
#define MESH_DEBUG_TELEMETRYZ_H

#include "common/buf.h"
#include "controlplane/model/model.h"

#include <stddef.h>

/* Caps on the query: labels=k=v,... text and how many pairs. */
#define DEBUG_TELEMETRYZ_LABELS_MAX 1024
#define DEBUG_TELEMETRYZ_NLABELS 32

/*
 * The workload is proxy_id (an Istio node id "TYPE~IP~POD.NS~DOMAIN", or
 * "POD.NS"; its labels are those of the Pod of that name, when the model
 * has it), or ns plus labels ("k=v,k2=v2", may be NULL).  proxy_id wins
 * when both are given.  Writes the JSON document to out.  0; -EINVAL for a
 * bad query (err says why, NUL-terminated in errcap bytes); -ENOMEM.
 * The defaults are meshConfig.defaultProviders' (metrics: Istio's
 * chart's [prometheus] when unset), as model_telemetry_mesh_defaults.
 */
int debug_telemetryz(const struct model *m, const char *proxy_id, const char *ns, const char *labels,
		     struct mesh_buf *out, char *err, size_t errcap);

#endif
