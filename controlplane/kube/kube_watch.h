/*
 * kube_watch.h - list + watch of every resource meshd reads, on a thread
 * of its own.
 *
 * One thread drives all resources on a curl multi handle, following the
 * API conventions: a paginated list (limit + continue), then a watch from
 * the list's resourceVersion with allowWatchBookmarks and timeoutSeconds;
 * a watch that ends is resumed from the last resourceVersion seen (event or
 * bookmark) without a relist; 410 Gone (HTTP status, or an ERROR event with
 * code 410, or an expired continue token) starts a relist, and the relist is
 * reconciled against what was known (objects missing from it are deleted);
 * failures back off exponentially with jitter, per resource.  A resource
 * that answers 404 (a CRD not installed) counts as listed (synced) and is
 * retried every `missing_retry` without holding up the others.
 *
 * Error answers are handled as client-go's reflector and REST client do,
 * and none of them ever reads as "everything deleted" (only a complete,
 * successful list deletes): 410 Gone relists; 429 and 5xx back off,
 * waiting at least the server's Retry-After (header, or the Status's
 * details.retryAfterSeconds; at most KUBE_WATCH_MAX_RETRY_AFTER_S);
 * 401/403 are logged as errors naming the resource and the verb, with the
 * API server's message (an RBAC rule missing); a 404 keeps what was known
 * (a CRD deleted deletes its objects first, through the watch).  Each
 * failed list or watch counts in meshd_config_read_failures_total.
 *
 * Objects per source: at most `max_objects` objects across every
 * resource.  A list past it fails whole (what was known stays, the list is
 * retried with backoff); a watch event adding one past it is refused and
 * the watch restarts with a relist.  Both log an error naming the limit and
 * count meshd_limit_exceeded_total{limit="objects_per_source"}.
 *
 * The thread decodes objects (every kind through cfg_parse_buffer with
 * origin "kube") and queues kube_events; the
 * owner polls kube_watch_fd() (an eventfd) and takes the queue on its own
 * thread.  Returns 0 or a negative code (err.h).
 */
#ifndef MESH_KUBE_WATCH_H
#define MESH_KUBE_WATCH_H

#include "common/err.h"

#include "common/queue.h"
#include "controlplane/config/config.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_res.h"

#include <stdint.h>

#define KUBE_WATCH_MAX_PAGE (256u << 20)   /* one list response */
#define KUBE_WATCH_MAX_ERROR_BODY (64u << 10)
#define KUBE_WATCH_RV_MAX 64
/* Longest Retry-After honoured (seconds): a larger one waits this long. */
#define KUBE_WATCH_MAX_RETRY_AFTER_S 600

enum kube_event_type {
	KUBE_EVENT_PUT,              /* obj */
	KUBE_EVENT_REJECT,           /* errors: an object failed validation */
	KUBE_EVENT_DELETE,           /* ns/name is gone */
	KUBE_EVENT_SYNCED,           /* res has been listed (once per resource) */
};

struct kube_event {
	struct kube_event *next;
	enum kube_event_type type;
	enum kube_res res;
	char *ns, *name;
	struct cfg_object *obj;      /* one reference */
	struct cfg_error *errors;    /* owned (cfg_error_cleanup each) */
	size_t n_errors;
	char *text;                  /* KUBE_RES_MESH_CONFIG PUT: data.mesh (owned; "" when absent) */
	/* private: the watch thread's hand-over */
	struct mesh_queue_item qi;
};

void kube_event_free(struct kube_event *e);    /* one event; NULL is a no-op */

struct kube_watch_config {
	struct kube_client *client;  /* borrowed; outlives the watch */
	int page_size;               /* default 500 */
	int timeout_seconds;         /* watch timeoutSeconds; default 300..600 at random */
	int64_t backoff_min;         /* ns; default 200ms */
	int64_t backoff_max;         /* ns; default 30s */
	int64_t missing_retry;       /* ns; retry of a 404 resource; default 30s */
	uint32_t resources;          /* bit mask of 1u << kube_res; 0: all */
	const char *mesh_ns;         /* namespace of the mesh config ConfigMap (KUBE_RES_MESH_CONFIG) */
	size_t max_objects;          /* objects across every resource; 0: CFG_MAX_OBJECTS_PER_SOURCE */
};

struct kube_watch;

MESH_MUST_CHECK int kube_watch_start(const struct kube_watch_config *cfg, struct kube_watch **out);
/* Stop the thread and free everything, queued events included. */
void kube_watch_stop(struct kube_watch *w);   /* NULL is a no-op */
int kube_watch_fd(const struct kube_watch *w);
/* Drain the eventfd and take the queued events in order (NULL: none). */
MESH_MUST_CHECK struct kube_event *kube_watch_take(struct kube_watch *w);

#endif
