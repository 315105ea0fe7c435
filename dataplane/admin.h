/*
 * admin.h - meshproxy's admin listener (--admin-addr, Envoy's port 15000),
 * served on the proxy's loop with the HTTP/1.1 codec.
 *
 * Endpoints, with Envoy's shapes where Envoy has them: GET /ready (200
 * "LIVE" once a first configuration is applied, 503 "NOT READY" before),
 * GET /server_info (JSON), GET /config_dump (Envoy's ConfigDump JSON of
 * the applied xDS snapshot), GET /stats (text "name: value" lines), POST
 * /quitquitquit (answers, then stops the loop: a clean exit), 404 for
 * anything else.  Connections are persistent and pipelined; a request the
 * codec refuses gets its 400/431/505 with Connection: close and only that
 * connection is closed (after a lingering close, so the answer is read).
 */
#ifndef MESH_DATAPLANE_ADMIN_H
#define MESH_DATAPLANE_ADMIN_H

#include "common/buf.h"
#include "common/err.h"
#include "dataplane/ev.h"

#include <stddef.h>
#include <stdint.h>

struct admin;

/* What /server_info and /ready show; the strings are borrowed, kept by the caller. */
struct admin_info {
	const char *version;
	const char *node_id;
	const char *cmdline; /* the command line as one JSON object text, or NULL */
	const int *ready;    /* non-zero once a first configuration is applied */
	/* non-NULL: readiness (/ready, /healthz/ready, server.live) also waits
	 * for warming(ctx) to return NULL; else it returns the 503 body of
	 * /healthz/ready ("not ready: ...\n", static) naming what still warms.
	 * main.c sets it with --ca-addr: not ready before the first workload
	 * certificate, as Envoy's listeners warm until SDS sends the secret */
	const char *(*warming)(void *ctx);
	/* non-NULL and non-zero: draining after SIGTERM; /ready and
	 * /healthz/ready answer 503 (Envoy's /ready says DRAINING) */
	const int *draining;
	uint64_t start_ms;   /* ev_now() at start */
	/* the xDS client's views (NULL: none): /config_dump renders Envoy's
	 * ConfigDump JSON into out (a negative code answers 500); stats appends
	 * "name: value" lines to /stats */
	int (*config_dump)(void *ctx, struct mesh_buf *out);
	void (*stats)(void *ctx, struct mesh_buf *out);
	void *ctx;
	/* non-zero: a status/health port (Istio's 15020/15021), not an admin
	 * port: GET /healthz/ready (200 once ready, 503 before, as Istio's
	 * pilot-agent answers) and the page hook's paths only, 404 for the rest */
	int status_only;
};

/* Counters the admin port serves and keeps. */
struct admin_stats {
	uint64_t cx_total, cx_active, cx_refused;
	/* idle connections closed to make room for a new one at the cap */
	uint64_t cx_idle_evicted;
	uint64_t rq_total, rq_2xx, rq_4xx, rq_5xx;
	uint64_t codec_errors; /* requests refused by the codec (400/431/505) */
	/* fd/memory exhaustion episodes at accept (EMFILE, ENFILE, ENOBUFS,
	 * ENOMEM): the listener pauses 100 ms at a time until one succeeds */
	uint64_t accept_paused;
};

/*
 * Listens on addr (HOST:PORT, numeric; [v6]:PORT) and serves it on loop.
 * *out is freed with admin_free().  Returns 0, -EINVAL for a bad address,
 * or the socket call's negative errno.
 */
MESH_MUST_CHECK int admin_start(struct ev_loop *loop, const char *addr, const struct admin_info *info,
				struct admin **out);
/* Closes the listener and every connection; NULL is a no-op. */
void admin_free(struct admin *a);
/* The bound port (useful with port 0). */
int admin_port(const struct admin *a);
const struct admin_stats *admin_stats(const struct admin *a);

/*
 * Pages another module serves on the admin port (the engine's /clusters and
 * /stats/prometheus): fn appends a body for path to out and sets
 * *content_type, returning 0, or -ENOENT for a path it does not serve (the
 * admin port then answers 404).  GET/HEAD only.  ctx is borrowed.
 */
typedef int (*admin_page_fn)(void *ctx, const char *path, size_t plen, struct mesh_buf *out,
			     const char **content_type);
void admin_set_pages(struct admin *a, admin_page_fn fn, void *ctx);

/*
 * Pages answered later, without blocking the loop (the status port's
 * /app-health/..., dataplane/apphealth.h): fn returns -ENOENT for a path it
 * does not serve (the page hook and then 404 get it), or 0 after taking
 * the ticket, which it must answer exactly once with admin_async_reply()
 * (now or from a later callback on the same loop).  Until then the
 * connection reads and answers nothing more; its idle timeout still runs
 * (a reply to a connection closed meanwhile is dropped).  GET/HEAD only.
 */
struct admin_async;
typedef int (*admin_async_fn)(void *ctx, const char *path, size_t plen, struct admin_async *ticket);
void admin_set_async(struct admin *a, admin_async_fn fn, void *ctx);
/* Answer a ticket with status and a text body (copied); frees the ticket. */
void admin_async_reply(struct admin_async *t, int status, const char *body);

#endif
