/*
 * apphealth.h - the application probes the injector rewrote to the
 * status port (Istio's pilot-agent app_probe: /app-health/CONTAINER/
 * livez|readyz|startupz on 15020).
 *
 * The originals come from ISTIO_KUBE_APP_PROBERS (JSON, set by the
 * injector, controlplane/inject/): an object keyed by those paths, each
 * value {"httpGet": {path, port, scheme, host, httpHeaders}, "tcpSocket":
 * {port, host}, "grpc": {port, service}, "timeoutSeconds": N}.  A kubelet
 * GET of a path runs its probe on the proxy's loop, never blocking it:
 *   httpGet  HTTP/1.1 GET to host (default 127.0.0.1):port; the app's
 *            status code is the answer (kubelet: 200-399 is success);
 *            scheme HTTPS: over TLS, the app's certificate not verified
 *            (as the agent's InsecureSkipVerify),
 *   tcpSocket a connect,
 *   grpc     grpc.health.v1.Health/Check (h2c, grpc_client.h) with the
 *            probe's service: SERVING is 200,
 * and a connection refused or the timeout (timeoutSeconds, default 1)
 * answers 500, as the agent does.
 */
#ifndef MESH_DATAPLANE_APPHEALTH_H
#define MESH_DATAPLANE_APPHEALTH_H

#include "common/err.h"
#include "dataplane/admin.h"
#include "dataplane/ev.h"

#include <stddef.h>

/* Probes read from one ISTIO_KUBE_APP_PROBERS. */
#define APPHEALTH_MAX_PROBES 64
/* Probes running at once; more answer 503 at once. */
#define APPHEALTH_MAX_RUNNING 64

struct apphealth;

/* Parse json (NULL or empty: no probes).  Returns 0, -EINVAL (not the
 * shape above: err gets why), -ENOMEM. */
MESH_MUST_CHECK int apphealth_new(struct ev_loop *loop, const char *json, struct apphealth **out, char *err,
				  size_t errcap);
/* Stops running probes (their connections are answered 503). NULL: no-op. */
void apphealth_free(struct apphealth *h);
/* How many probes were read. */
size_t apphealth_count(const struct apphealth *h);
/* admin_async_fn for the status port: ctx is the apphealth. */
int apphealth_serve(void *ctx, const char *path, size_t plen, struct admin_async *ticket);

#endif
