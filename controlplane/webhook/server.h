/*
 * server.h - meshd's admission webhook server (--webhook-addr, default
 * 0.0.0.0:15017), istiod's port and paths: /inject (sidecar injection,
 * controlplane/inject/) and /validate (controlplane/webhook/validate.*).
 *
 * HTTPS only.  The serving certificate is issued by meshd's own CA
 * (controlplane/ca/) for istiod.<ns>.svc and the extra names the config
 * gives, and renewed at half its lifetime without dropping the port; the
 * API server verifies it with meshd's root, which is the caBundle of the
 * webhook configurations.  libmicrohttpd (Debian's build has GnuTLS)
 * serves it on threads of its own, with a connection cap, a per-address
 * cap, an idle deadline, a whole-request deadline and a body cap, so a slow
 * or hostile client never blocks the others nor the config thread.
 *
 * Only POST with Content-Type application/json reaches a handler; the
 * handler's return decides the status (webhook_handler_fn).
 */
#ifndef MESH_WEBHOOK_SERVER_H
#define MESH_WEBHOOK_SERVER_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

struct ca;
struct webhook_server;

/* Largest request body read (an AdmissionReview of a Pod is a few KB; the
 * API server itself caps requests at 3 MiB); past it: 413. */
#define WEBHOOK_MAX_BODY ((size_t)4 << 20)
/* Largest response body a handler may build; past it: 500. */
#define WEBHOOK_MAX_RESPONSE ((size_t)8 << 20)
/* Routes a server holds (istiod registers two). */
#define WEBHOOK_MAX_ROUTES 8
/* Default lifetime of the serving certificate (renewed at half of it). */
#define WEBHOOK_CERT_TTL_SECONDS (24LL * 3600)

/*
 * A route's handler, called on one of the server's threads (several may
 * run at once: the handler must be thread-safe) with the whole request
 * body (len bytes, NUL-terminated).  It writes the response body into out
 * (capped at WEBHOOK_MAX_RESPONSE).  Returns 0 → 200 application/json with
 * out; -EINVAL → 400 with out as the message (text/plain); any other
 * negative code → 500.
 */
typedef int (*webhook_handler_fn)(void *ud, const char *body, size_t len, struct mesh_buf *out);

struct webhook_server_config {
	const char *addr;             /* "0.0.0.0:15017", "127.0.0.1:0", "[::1]:15017" */
	struct ca *ca;                /* issues the serving certificate; must outlive the server */
	const char *const *dns;       /* DNS SANs (istiod.istio-system.svc, ...); at least one */
	size_t ndns;
	const char *const *ips;       /* IP SANs ("127.0.0.1": a webhook clientConfig.url by address) */
	size_t nips;
	int64_t cert_ttl_seconds;     /* 0: WEBHOOK_CERT_TTL_SECONDS (clamped by the CA) */
};

/* Issue the serving certificate, bind addr and serve.  Returns 0 and the
 * server in *out, or -EINVAL (bad address, no DNS name), -EADDRINUSE,
 * a CA error (ca.h), -ENOMEM.  Copies what it keeps of cfg. */
int webhook_server_start(const struct webhook_server_config *cfg, struct webhook_server **out);

/* Serve path (e.g. "/inject") with fn(ud, ...): the path itself and any
 * path under it ("/inject/cluster/Kubernetes/net/", which Istio's chart
 * calls), the longest registered path winning.  May be
 * called before or after requests arrive; a path registered again gets
 * the new handler.  Returns 0, -EINVAL (path not starting with '/'),
 * -ENOSPC (WEBHOOK_MAX_ROUTES reached), -ENOMEM. */
int webhook_server_route(struct webhook_server *s, const char *path, webhook_handler_fn fn, void *ud);

/* The port bound (useful with port 0), or -EINVAL for NULL. */
int webhook_server_port(const struct webhook_server *s);

/* The current serving certificate's expiry, seconds since the epoch. */
int64_t webhook_server_cert_expiry(struct webhook_server *s);

/* Stop serving and free; NULL is a no-op.  In-flight requests are cut. */
void webhook_server_stop(struct webhook_server *s);

#endif
