/*
 * validate.h - the validating admission webhook (/validate, istiod's
 * pkg/webhooks/validation/server): AdmissionReview v1 (and v1beta1) in,
 * AdmissionReview out, judged by the same parser and validator as meshd's
 * sources and `meshctl validate` (cfg_parse_buffer on the request's object).
 *
 * What istiod does, and so this handler:
 *   - operations other than CREATE and UPDATE (DELETE, CONNECT) are allowed;
 *   - an object that is not a JSON object: denied "cannot decode
 *     configuration: ...";
 *   - a kind outside the Istio API groups, or one Istio does not know in
 *     them: denied "unrecognized type GROUP/VERSION, Kind=KIND"; a kind Istio
 *     knows but meshd does not implement (EnvoyFilter, WasmPlugin, ...) is
 *     allowed with a warning saying meshd ignores it;
 *   - the annotation internal.istio.io/webhook-always-reject: denied (the
 *     probe the webhook patcher sends before switching failurePolicy to
 *     Fail, webhook/patch.h); istio.io/dry-run on a kind other than
 *     AuthorizationPolicy: denied;
 *   - validation errors: denied "configuration is invalid: ERR" (one) or
 *     "configuration is invalid: N errors occurred:\n\t* ERR\n\t* ERR\n"
 *     (Istio's multierror format), each ERR "Kind ns/name: field.path:
 *     reason"; warnings go to response.warnings;
 *   - top-level fields other than apiVersion, kind, metadata, spec, status:
 *     denied "unknown field \"x\" on KIND resource NS/NAME";
 *   - request.dryRun: judged the same; failures are not counted and the log
 *     line says "(dry run)".
 * The API server prefixes a denial with "admission webhook \"NAME\" denied
 * the request: "; the message here is what istiod writes.
 *
 * Counters with istiod's names (galley_validation_passed{group,version,
 * resource}, galley_validation_failed{group,version,resource,reason},
 * galley_validation_http_error{status}) are process-wide and rendered by
 * webhook_validate_metrics() into meshd's /metrics.
 */
#ifndef MESH_WEBHOOK_VALIDATE_H
#define MESH_WEBHOOK_VALIDATE_H

#include "common/buf.h"

#include <stddef.h>

/* Largest AdmissionReview read (the API server caps a request at 3 MiB). */
#define WEBHOOK_VALIDATE_MAX_BODY ((size_t)4 << 20)
/* Distinct label sets the galley counters keep; past it, one "other" row. */
#define WEBHOOK_VALIDATE_MAX_SERIES 128
/* The annotation that always fails validation (istiod's constants.AlwaysReject). */
#define WEBHOOK_VALIDATE_ALWAYS_REJECT "internal.istio.io/webhook-always-reject"

/*
 * The /validate handler, of webhook_server's handler shape (webhook/
 * server.h): ud is unused (NULL); body is the request body (len bytes).
 * Thread-safe.  Returns 0 with the AdmissionReview response JSON in out
 * (allowed or denied: both are HTTP 200, as istiod answers), -EINVAL for
 * an empty body with the text "no body found" in out (HTTP 400, counted
 * as galley_validation_http_error{status="400"}), or -ENOMEM /
 * -MESH_ETOOBIG when out could not hold the answer (HTTP 500).
 */
int webhook_validate_handle(void *ud, const char *body, size_t len, struct mesh_buf *out);

/* Prometheus text of the galley_validation_* counters, appended to out.
 * Returns 0 or out's sticky error. */
int webhook_validate_metrics(struct mesh_buf *out);

#endif
