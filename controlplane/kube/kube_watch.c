/*
 * kube_watch.c - the watch thread (see kube_watch.h).
 *
 * Per resource a small state machine: IDLE (waiting until `due`), LIST (a
 * page request in flight; pages accumulate until no continue token is
 * left) and WATCH (a chunked stream fed through kube_stream).  All
 * transfers share one curl multi handle; the thread sleeps in
 * curl_multi_poll() and is woken by curl_multi_wakeup() to stop.
 *
 * Reconciliation: `known` maps "ns/name" to the resourceVersion last
 * delivered.  A list marks what it sees; at its end every unmarked key is
 * deleted, so deletions made while disconnected are noticed.  Items whose
 * resourceVersion did not change are not decoded again.
 *
 * Events are built on this thread into `pending` and handed over once per
 * loop turn as one chain on a mesh_queue (common/queue.h), which the owner
 * polls.
 */
#include "controlplane/kube/kube_watch.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/queue.h"
#include "controlplane/kube/kube_json.h"
#include "controlplane/kube/kube_map.h"
#include "controlplane/kube/kube_stream.h"
#include "controlplane/metrics/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KW__MS 1000000LL
#define KW__PATH_MAX 2048
#define KW__QUICK_END_NS (1000LL * KW__MS)  /* a watch ending sooner, empty, counts as a failure */

enum kw__state { KW__IDLE, KW__LIST, KW__WATCH };

struct kw__known {
	bool seen;
	char rv[KUBE_WATCH_RV_MAX];
};

struct kube_watch;

struct kw__res {
	struct kube_watch *w;
	enum kube_res res;
	const struct kube_res_info *info;
	enum kw__state state;
	bool need_list;
	CURL *h;
	struct curl_slist *hdrs;
	char rv[KUBE_WATCH_RV_MAX];
	char *cont;                  /* continue token of the list in progress */
	struct mesh_buf body;        /* a list page, or an error response */
	struct kube_stream stream;
	bool status_checked;
	long status;
	bool gone;                   /* the watch said 410 */
	int stream_err;              /* the watch stream failed (garbage, too big) */
	long event_error;            /* an ERROR event's code other than 410 */
	size_t n_watch_events;
	int64_t started;
	int fails;
	int64_t retry_after;         /* ns the server asked us to wait (Retry-After); 0: none */
	int64_t due;
	bool synced;
	bool missing_logged;
	struct kube_map known;
};

struct kube_watch {
	struct kube_watch_config cfg;
	CURLM *multi;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	unsigned seed;
	struct kw__res r[KUBE_RES_COUNT];
	bool active[KUBE_RES_COUNT];
	/* this thread's events not yet handed over, linked through qi */
	struct mesh_queue_item *pending, **pending_tail;
	struct kube_event *pending_last;
	/* to the owner */
	struct mesh_queue q;
	bool q_ready;
};

static int64_t kw__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void kube_event_free(struct kube_event *e)
{
	size_t i;

	if (!e)
		return;
	free(e->ns);
	free(e->name);
	free(e->text);
	cfg_object_unref(e->obj);
	for (i = 0; i < e->n_errors; i++)
		cfg_error_cleanup(&e->errors[i]);
	free(e->errors);
	free(e);
}

/* Free a chain of events linked through their queue items. */
static void kw__free_items(struct mesh_queue_item *it)
{
	while (it) {
		struct mesh_queue_item *n = it->next;
		kube_event_free(mesh_container_of(it, struct kube_event, qi));
		it = n;
	}
}

static struct kube_event *kw__event(struct kw__res *r, enum kube_event_type type, const char *ns, const char *name)
{
	struct kube_event *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->type = type;
	e->res = r->res;
	if ((ns && !(e->ns = strdup(ns))) || (name && !(e->name = strdup(name)))) {
		kube_event_free(e);
		return NULL;
	}
	return e;
}

static void kw__emit(struct kube_watch *w, struct kube_event *e)
{
	e->qi.next = NULL;
	*w->pending_tail = &e->qi;
	w->pending_tail = &e->qi.next;
	w->pending_last = e;
}

static void kw__flush(struct kube_watch *w)
{
	if (!w->pending)
		return;
	mesh_queue_push_chain(&w->q, w->pending, &w->pending_last->qi);
	w->pending = NULL;
	w->pending_tail = &w->pending;
	w->pending_last = NULL;
}

static void kw__set_rv(char *dst, const char *rv)
{
	if (rv)
		snprintf(dst, KUBE_WATCH_RV_MAX, "%s", rv);
}

/* ------------------------------------------------------------- objects */

/* Decode an object; the list's items may lack kind and apiVersion. */
static struct kube_event *kw__decode(struct kw__res *r, const char *text, const struct json_value *obj,
				    const char *ns, const char *name)
{
	struct cfg_parse_result res;
	struct mesh_buf doc;
	struct kube_event *e = NULL;
	const char *data = text + obj->start;
	size_t len = obj->end - obj->start, i;

	if (r->res == KUBE_RES_MESH_CONFIG) {
		/* the MeshConfig text: parsed and validated by the owner
		 * (meshcfg.h), which keeps its last good one */
		const char *mesh = json_get_str(json_get(obj, "data"), KUBE_MESH_CONFIGMAP_KEY);

		e = kw__event(r, KUBE_EVENT_PUT, ns, name);
		if (e && !(e->text = strdup(mesh ? mesh : ""))) {
			kube_event_free(e);
			e = NULL;
		}
		return e;
	}
	mesh_buf_init(&doc, KUBE_STREAM_MAX_EVENT + 256);
	memset(&res, 0, sizeof(res));
	if (!json_get(obj, "kind") || !json_get(obj, "apiVersion")) {
		/* the object has members (metadata.name was found): splice them after ours */
		mesh_buf_printf(&doc, "{\"apiVersion\":\"%s%s%s\",\"kind\":\"%s\",", r->info->group,
				r->info->group[0] ? "/" : "", r->info->version, r->info->kind);
		mesh_buf_append(&doc, data + 1, len - 1);
		if (doc.err)
			goto out;
		data = doc.data;
		len = doc.len;
	}
	if (cfg_parse_buffer("kube", data, len, &res) < 0)
		goto out;
	if (res.n_objects == 1) {
		e = kw__event(r, KUBE_EVENT_PUT, ns, name);
		if (e)
			e->obj = cfg_object_ref(res.objects[0]);
		/* Istio's warnings on an accepted object travel with it, so the
		 * config thread prints them as the file source does */
		if (e && res.n_errors) {
			e->errors = calloc(res.n_errors, sizeof(*e->errors));
			for (i = 0; e->errors && i < res.n_errors; i++) {
				if (cfg_error_copy(&e->errors[i], &res.errors[i]) < 0)
					break;
				e->n_errors++;
			}
		}
	} else if (res.n_errors) {
		e = kw__event(r, KUBE_EVENT_REJECT, ns, name);
		if (e) {
			e->errors = calloc(res.n_errors, sizeof(*e->errors));
			if (!e->errors) {
				kube_event_free(e);
				e = NULL;
				goto out;
			}
			for (i = 0; i < res.n_errors; i++) {
				if (cfg_error_copy(&e->errors[i], &res.errors[i]) < 0)
					break;
				e->n_errors++;
			}
		}
	}
out:
	cfg_parse_result_cleanup(&res);
	mesh_buf_cleanup(&doc);
	return e;
}

/* Objects known across every resource of this watch (the source's count). */
static size_t kw__n_objects(const struct kube_watch *w)
{
	size_t n = 0;
	int k;

	for (k = 0; k < KUBE_RES_COUNT; k++)
		n += w->r[k].known.n;
	return n;
}

/* Build the "ns/name" key of obj into key; false when obj has no name. */
static bool kw__key(const struct kw__res *r, const struct json_value *obj, char *key, size_t cap)
{
	const struct json_value *md = json_get(obj, "metadata");
	const char *name = json_get_str(md, "name"), *ns = json_get_str(md, "namespace");

	if (!name || !*name || obj->type != JSON_OBJECT)
		return false;
	if (r->info->only_name && strcmp(name, r->info->only_name) != 0)
		return false;
	if (!r->info->namespaced)
		ns = "";
	else if (!ns || !*ns)
		ns = "default";
	snprintf(key, cap, "%s/%s", ns, name);
	return true;
}

static void kw__over_limit(struct kw__res *r, size_t want, const char *what)
{
	log_error("kube", "%s: %s would hold %zu objects, over the limit of %zu objects per source "
		  "(--max-objects-per-source); keeping the %zu objects known", r->info->plural, what, want,
		  r->w->cfg.max_objects, kw__n_objects(r->w));
	metrics_limit(METRICS_LIMIT_OBJECTS_PER_SOURCE);
}

/* An object seen in a list (from_list) or an ADDED/MODIFIED event.
 * 0, -ENOMEM, or -EOVERFLOW when a new object would go past the
 * source's max_objects (nothing changed). */
static int kw__put(struct kw__res *r, const char *text, const struct json_value *obj, bool from_list)
{
	const struct json_value *md = json_get(obj, "metadata");
	const char *name = json_get_str(md, "name"), *ns = json_get_str(md, "namespace");
	const char *rv = json_get_str(md, "resourceVersion");
	char key[600];
	struct kw__known *k;
	struct kube_event *e = NULL;
	bool is_new;
	int rc;

	if (!name || !*name || obj->type != JSON_OBJECT)
		return 0;
	/* a server that ignored the fieldSelector */
	if (r->info->only_name && strcmp(name, r->info->only_name) != 0)
		return 0;
	if (!r->info->namespaced)
		ns = "";
	else if (!ns || !*ns)
		ns = "default";
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	k = kube_map_get(&r->known, key);
	if (k && from_list && rv && strcmp(k->rv, rv) == 0) {
		k->seen = true;
		return 0;
	}
	is_new = !k;
	/* a list's pages were measured whole by kw__list_done() */
	if (!k && !from_list && kw__n_objects(r->w) >= r->w->cfg.max_objects) {
		kw__over_limit(r, kw__n_objects(r->w) + 1, "a watch event");
		return -EOVERFLOW;
	}
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		rc = kube_map_put(&r->known, key, k, NULL);
		if (rc < 0) {
			free(k);
			return rc;
		}
	}
	k->seen = true;
	/* pilot_k8s_*_events as Istio's informers count them: an object new
	 * to us (listed or watched) is an add, a new version an update */
	if (!r->info->only_name)
		metrics_k8s_event(r->info->cfg_kind, is_new ? METRICS_K8S_ADD : METRICS_K8S_UPDATE);
	kw__set_rv(k->rv, rv ? rv : "");
	e = kw__decode(r, text, obj, ns, name);
	if (!e)
		return 0; /* not for us, or out of memory: the next version will tell */
	kw__emit(r->w, e);
	return 0;
}

static int kw__delete(struct kw__res *r, const char *ns, const char *name)
{
	char key[600];
	struct kube_event *e;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	free(kube_map_del(&r->known, key));
	if (!r->info->only_name)
		metrics_k8s_event(r->info->cfg_kind, METRICS_K8S_DELETE);
	e = kw__event(r, KUBE_EVENT_DELETE, ns, name);
	if (!e)
		return -ENOMEM;
	kw__emit(r->w, e);
	return 0;
}

/* End of a complete list: delete what it did not show. */
static void kw__reconcile(struct kw__res *r)
{
	struct kube_map_entry *it = NULL;
	char **gone = NULL;
	size_t n = 0, i;

	if (r->known.n)
		gone = calloc(r->known.n, sizeof(*gone));
	while ((it = kube_map_next(&r->known, it))) {
		struct kw__known *k = it->val;
		if (!k->seen && gone)
			gone[n++] = it->key;
		k->seen = false;
	}
	for (i = 0; i < n; i++) {
		char *slash = strchr(gone[i], '/'), *key = strdup(gone[i]);
		if (!key || !slash)
			continue;
		key[slash - gone[i]] = '\0';
		kw__delete(r, key, key + (slash - gone[i]) + 1); /* frees gone[i] */
		free(key);
	}
	if (n)
		log_info("kube", "%s: %zu objects deleted while not watching", r->info->plural, n);
	free(gone);
}

static void kw__mark_synced(struct kw__res *r)
{
	struct kube_event *e;

	if (r->synced)
		return;
	e = kw__event(r, KUBE_EVENT_SYNCED, NULL, NULL);
	if (!e)
		return;
	r->synced = true;
	kw__emit(r->w, e);
}

/* ------------------------------------------------------------- transfers */

static void kw__backoff(struct kw__res *r, int64_t base)
{
	int64_t d = r->w->cfg.backoff_min;
	int i;

	if (base) {
		d = base;
	} else {
		for (i = 0; i < r->fails && d < r->w->cfg.backoff_max; i++)
			d *= 2;
		if (d > r->w->cfg.backoff_max)
			d = r->w->cfg.backoff_max;
		/* jitter: between half and all of the delay */
		d = d / 2 + (int64_t)((double)(d / 2) * ((double)rand_r(&r->w->seed) / RAND_MAX));
		r->fails++;
	}
	r->state = KW__IDLE;
	r->due = kw__now() + d;
}

static void kw__end(struct kw__res *r)
{
	if (r->h)
		curl_multi_remove_handle(r->w->multi, r->h);
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
}

static size_t kw__write(char *p, size_t size, size_t n, void *ud);

static int kw__path(struct kw__res *r, char *path, size_t cap)
{
	const struct kube_res_info *in = r->info;
	struct mesh_buf b;
	int rc;

	mesh_buf_init(&b, cap - 1);
	if (in->only_name)
		mesh_buf_printf(&b, "/api/%s/namespaces/%s/%s", in->version,
				r->w->cfg.mesh_ns ? r->w->cfg.mesh_ns : "istio-system", in->plural);
	else if (*in->group)
		mesh_buf_printf(&b, "/apis/%s/%s/%s", in->group, in->version, in->plural);
	else
		mesh_buf_printf(&b, "/api/%s/%s", in->version, in->plural);
	if (r->state == KW__LIST) {
		mesh_buf_printf(&b, "?limit=%d", r->w->cfg.page_size);
		if (r->cont) {
			char *esc = curl_easy_escape(r->h, r->cont, 0);
			if (!esc) {
				mesh_buf_cleanup(&b);
				return -ENOMEM;
			}
			mesh_buf_printf(&b, "&continue=%s", esc);
			curl_free(esc);
		}
	} else {
		int t = r->w->cfg.timeout_seconds;
		if (t <= 0)
			t = 300 + rand_r(&r->w->seed) % 300;
		mesh_buf_printf(&b, "?watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d",
				r->rv, t);
	}
	if (in->only_name)
		mesh_buf_printf(&b, "&fieldSelector=metadata.name%%3D%s", in->only_name);
	rc = b.err;
	if (rc == 0)
		memcpy(path, b.data, b.len + 1);
	mesh_buf_cleanup(&b);
	return rc;
}

static void kw__start(struct kw__res *r, enum kw__state st)
{
	char path[KW__PATH_MAX];
	int rc;

	r->state = st;
	if (!r->h)
		r->h = curl_easy_init();
	else
		curl_easy_reset(r->h);
	if (!r->h) {
		kw__backoff(r, 0);
		return;
	}
	rc = kw__path(r, path, sizeof(path));
	if (rc == 0)
		rc = kube_client_prepare(r->w->cfg.client, r->h, "GET", path, &r->hdrs);
	if (rc < 0) {
		log_warn("kube", "%s: cannot start a request: %s", r->info->plural, mesh_strerror(rc));
		kw__backoff(r, 0);
		return;
	}
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, kw__write);
	curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
	if (st == KW__LIST) {
		curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, 120000L);
	} else {
		/* a silent connection (no bytes, no bookmark) for this long is dead */
		curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_TIME, 900L);
		curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	}
	mesh_buf_reset(&r->body);
	kube_stream_reset(&r->stream);
	r->status_checked = false;
	r->status = 0;
	r->gone = false;
	r->stream_err = 0;
	r->event_error = 0;
	r->n_watch_events = 0;
	r->started = kw__now();
	if (curl_multi_add_handle(r->w->multi, r->h) != CURLM_OK) {
		kw__end(r);
		kw__backoff(r, 0);
		return;
	}
	log_debug("kube", "GET %s", path);
}

static void kw__clear_marks(struct kw__res *r)
{
	struct kube_map_entry *it = NULL;

	free(r->cont);
	r->cont = NULL;
	while ((it = kube_map_next(&r->known, it)))
		((struct kw__known *)it->val)->seen = false;
}

static void kw__start_list(struct kw__res *r, bool fresh)
{
	if (fresh)
		kw__clear_marks(r);
	kw__start(r, KW__LIST);
}

/* One watch event. */
static int kw__on_event(void *ctx, const char *text, size_t len)
{
	struct kw__res *r = ctx;
	struct arena *a = arena_new(len * 8 + 65536);
	const struct json_value *obj, *md;
	struct json_value *root;
	const char *type, *rv;
	int rc;

	if (!a)
		return -ENOMEM;
	rc = kube_json_parse(a, text, len, &root);
	if (rc < 0)
		goto out;
	type = json_get_str(root, "type");
	obj = json_get(root, "object");
	md = json_get(obj, "metadata");
	rv = json_get_str(md, "resourceVersion");
	if (!type || !obj || obj->type != JSON_OBJECT) {
		rc = -MESH_EPARSE;
		goto out;
	}
	r->n_watch_events++;
	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
		rc = kw__put(r, text, obj, false);
		kw__set_rv(r->rv, rv);
	} else if (strcmp(type, "DELETED") == 0) {
		const char *name = json_get_str(md, "name"), *ns = json_get_str(md, "namespace");
		if (!r->info->namespaced)
			ns = "";
		else if (!ns || !*ns)
			ns = "default";
		if (name)
			rc = kw__delete(r, ns, name);
		kw__set_rv(r->rv, rv);
	} else if (strcmp(type, "BOOKMARK") == 0) {
		kw__set_rv(r->rv, rv);
	} else if (strcmp(type, "ERROR") == 0) {
		long code = (long)json_get_int(obj, "code", 0);
		const char *msg = json_get_str(obj, "message");
		if (code == 410) {
			r->gone = true;
			log_info("kube", "%s: watch from %s: 410 Gone (%s); relisting", r->info->plural, r->rv,
				 msg ? msg : "expired");
		} else {
			r->event_error = code ? code : 500;
			log_warn("kube", "%s: watch error %ld: %s", r->info->plural, code, msg ? msg : "");
		}
		rc = -ECANCELED;
	} else {
		rc = -MESH_EPARSE;
	}
out:
	arena_free(a);
	return rc;
}

static size_t kw__write(char *p, size_t size, size_t n, void *ud)
{
	struct kw__res *r = ud;
	size_t len = size * n;
	int rc;

	if (!r->status_checked) {
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
		r->status_checked = true;
		if (r->status != 200 || r->state == KW__LIST) {
			/* list pages and error statuses are read whole */
			r->body.max = r->status == 200 ? KUBE_WATCH_MAX_PAGE : KUBE_WATCH_MAX_ERROR_BODY;
		}
	}
	if (r->state == KW__WATCH && r->status == 200) {
		rc = kube_stream_feed(&r->stream, p, len, kw__on_event, r);
		if (rc < 0) {
			if (rc != -ECANCELED)
				r->stream_err = rc;
			return 0; /* abort the transfer */
		}
		return len;
	}
	return mesh_buf_append(&r->body, p, len) < 0 ? 0 : len;
}

/*
 * The message and details.retryAfterSeconds of an error answer's body
 * (a metav1.Status); the body's first bytes when it is not one.
 */
static void kw__status_of(struct kw__res *r, char *msg, size_t cap, long *retry_after_s)
{
	struct arena *a = NULL;
	struct json_value *root = NULL;
	const char *m = NULL;
	size_t i;

	*retry_after_s = 0;
	msg[0] = '\0';
	if (!r->body.len)
		return;
	a = arena_new(r->body.len * 8 + 4096);
	if (a && kube_json_parse(a, r->body.data, r->body.len, &root) == 0) {
		m = json_get_str(root, "message");
		*retry_after_s = (long)json_get_int(json_get(root, "details"), "retryAfterSeconds", 0);
	}
	snprintf(msg, cap, "%.*s", m ? 300 : 200, m ? m : r->body.data);
	/* one line, printable: the body is the server's */
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = ' ';
	arena_free(a);
}

/*
 * A list or watch that failed (transport error, or an error status), as
 * client-go handles each answer: 401/403 are refusals of meshd's
 * credentials, logged as errors naming the resource and verb; 429 and 5xx
 * wait at least the server's Retry-After; the rest backs off.  Nothing
 * known is deleted: the caller keeps every object.  Counts a read failure.
 */
static void kw__failed(struct kw__res *r, CURLcode cr, const char *verb)
{
	const struct kube_res_info *in = r->info;
	char msg[400];
	long ra_body = 0;
	int64_t ra = 0;

	metrics_config_read_failure();
	if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && r->status >= 400)) {
		log_warn("kube", "%s %s: %s (HTTP %ld; retry %d); keeping the %zu objects known", in->plural, verb,
			 curl_easy_strerror(cr), r->status, r->fails + 1, r->known.n);
		kw__backoff(r, 0);
		return;
	}
	if (r->status == 200) {
		/* an ERROR event (logged as it came) or a stream cut inside an event */
		if (!r->event_error)
			log_warn("kube", "%s %s: the stream ended inside an event (retry %d)", in->plural, verb,
				 r->fails + 1);
		kw__backoff(r, 0);
		return;
	}
	kw__status_of(r, msg, sizeof(msg), &ra_body);
	if (r->status == 401 || r->status == 403) {
		log_error("kube", "%s%s%s: %s refused: HTTP %ld %s: %s; keeping the %zu objects known; meshd's "
			  "credentials need get, list and watch on it (retry %d)", in->plural, *in->group ? "." : "",
			  in->group, verb, r->status, r->status == 401 ? "Unauthorized" : "Forbidden", msg, r->known.n,
			  r->fails + 1);
		kw__backoff(r, 0);
		return;
	}
	if (r->status == 429 || r->status >= 500) {
		/* client-go's REST client waits the Retry-After the server gives
		 * with 429 and 5xx; the backoff still grows under it */
		ra = r->retry_after > 0 ? r->retry_after : (int64_t)ra_body * 1000000000LL;
		if (ra > (int64_t)KUBE_WATCH_MAX_RETRY_AFTER_S * 1000000000LL)
			ra = (int64_t)KUBE_WATCH_MAX_RETRY_AFTER_S * 1000000000LL;
	}
	log_warn("kube", "%s %s: HTTP %ld: %s (retry %d%s%lld%s); keeping the %zu objects known", in->plural, verb,
		 r->status, msg, r->fails + 1, ra > 0 ? ", Retry-After " : "", ra > 0 ? (long long)(ra / 1000000000LL) : 0LL,
		 ra > 0 ? "s" : "", r->known.n);
	kw__backoff(r, 0);
	if (ra > 0 && r->due < kw__now() + ra)
		r->due = kw__now() + ra;
}

static void kw__list_done(struct kw__res *r, CURLcode cr)
{
	struct arena *a = NULL;
	struct json_value *root;
	const struct json_value *items, *it, *md;
	const char *cont, *rv;
	int rc;

	if (cr == CURLE_OK && r->status == 410) {
		/* continue token expired: start over */
		log_info("kube", "%s: list continue token expired; listing again", r->info->plural);
		kw__start_list(r, true);
		return;
	}
	if (cr == CURLE_OK && r->status == 404) {
		if (!r->missing_logged)
			log_warn("kube", "%s: not served (CRD not installed?); retrying every %llds", r->info->plural,
				 (long long)(r->w->cfg.missing_retry / 1000000000LL));
		r->missing_logged = true;
		/* client-go keeps its store on a failed list: a 404 from a
		 * proxy or an aggregated API going away deletes nothing (a
		 * deleted CRD deletes its objects first, seen by the watch) */
		kw__clear_marks(r);
		kw__mark_synced(r);
		r->need_list = true;
		kw__backoff(r, r->w->cfg.missing_retry);
		return;
	}
	if (cr != CURLE_OK || r->status != 200) {
		/* a failed list is no list: what is known stays until one succeeds */
		r->need_list = true;
		kw__failed(r, cr, "list");
		return;
	}
	r->missing_logged = false;
	a = arena_new(r->body.len * 8 + 65536);
	if (!a) {
		kw__backoff(r, 0);
		return;
	}
	rc = kube_json_parse(a, r->body.data ? r->body.data : "", r->body.len, &root);
	items = rc == 0 ? json_get(root, "items") : NULL;
	md = rc == 0 ? json_get(root, "metadata") : NULL;
	rv = json_get_str(md, "resourceVersion");
	if (rc < 0 || !rv || (items && items->type != JSON_ARRAY && items->type != JSON_NULL)) {
		log_warn("kube", "%s list: not a list (%s)", r->info->plural, rc < 0 ? mesh_strerror(rc) : "fields");
		metrics_config_read_failure();
		r->need_list = true;
		kw__backoff(r, 0);
		goto out;
	}
	{
		/* what the source would hold once this list ends: the other
		 * resources, this list's earlier pages and this page.  Past the
		 * cap nothing of the page is taken and nothing is deleted
		 * (deletions wait for the end of a complete list); what earlier
		 * pages gave stays, as it would on any failed page */
		size_t n = kw__n_objects(r->w) - r->known.n;
		struct kube_map_entry *e = NULL;
		char key[600];
		while ((e = kube_map_next(&r->known, e)))
			n += ((struct kw__known *)e->val)->seen;
		for (it = items && items->type == JSON_ARRAY ? items->child : NULL; it; it = it->next)
			if (kw__key(r, it, key, sizeof(key)))
				n++;
		if (n > r->w->cfg.max_objects) {
			kw__over_limit(r, n, "the list");
			metrics_config_read_failure();
			r->need_list = true;
			kw__backoff(r, 0);
			goto out;
		}
	}
	for (it = items && items->type == JSON_ARRAY ? items->child : NULL; it; it = it->next) {
		if (kw__put(r, r->body.data, it, true) < 0) {
			/* the rest of the list unmarked would read as deleted by
			 * kw__reconcile(): this list failed, keep what is known */
			log_warn("kube", "%s list: cannot take an object; keeping what is known and listing again",
				 r->info->plural);
			metrics_config_read_failure();
			r->need_list = true;
			kw__backoff(r, 0);
			goto out;
		}
	}
	cont = json_get_str(md, "continue");
	if (cont && *cont) {
		char *c = strdup(cont);
		if (!c) {
			r->need_list = true;
			kw__backoff(r, 0);
			goto out;
		}
		free(r->cont);
		r->cont = c;
		kw__start_list(r, false);
		goto out;
	}
	free(r->cont);
	r->cont = NULL;
	kw__reconcile(r);
	kw__set_rv(r->rv, rv);
	kw__mark_synced(r);
	r->need_list = false;
	r->fails = 0;
	log_info("kube", "%s: listed %zu objects at resourceVersion %s; watching", r->info->plural, r->known.n, r->rv);
	kw__start(r, KW__WATCH);
out:
	arena_free(a);
}

static void kw__watch_done(struct kw__res *r, CURLcode cr)
{
	if (r->gone || r->status == 410) {
		r->need_list = true;
		kw__start_list(r, true);
		return;
	}
	if (r->stream_err == -EOVERFLOW) {
		/* kw__put logged it: a relist tells whether it still holds */
		metrics_config_read_failure();
		r->need_list = true;
		kw__backoff(r, 0);
		return;
	}
	if (r->stream_err) {
		log_warn("kube", "%s watch: bad stream (%s); relisting", r->info->plural, mesh_strerror(r->stream_err));
		r->need_list = true;
		kw__backoff(r, 0);
		return;
	}
	if (cr == CURLE_OK && r->status == 200 && kube_stream_idle(&r->stream) && !r->event_error) {
		/* the server ended the watch (timeoutSeconds): resume where we are */
		if (r->n_watch_events == 0 && kw__now() - r->started < KW__QUICK_END_NS) {
			kw__backoff(r, 0);
			return;
		}
		r->fails = 0;
		kw__start(r, KW__WATCH);
		return;
	}
	if (r->status == 200 && !r->event_error && r->n_watch_events)
		r->fails = 0; /* it worked for a while: start the backoff over */
	kw__failed(r, cr, "watch");
}

static void kw__done(struct kw__res *r, CURLcode cr)
{
	enum kw__state st = r->state;

	curl_off_t ra = 0;

	if (!r->status_checked)
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
	/* Retry-After in seconds or as an HTTP date (curl reads both) */
	r->retry_after = 0;
	if (curl_easy_getinfo(r->h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		r->retry_after = (int64_t)ra * 1000000000LL;
	kw__end(r);
	if (st == KW__LIST)
		kw__list_done(r, cr);
	else
		kw__watch_done(r, cr);
}

/* ------------------------------------------------------------- thread */

static void *kw__thread(void *arg)
{
	struct kube_watch *w = arg;
	int k;

	while (!atomic_load(&w->stop)) {
		int64_t now = kw__now();
		int timeout = 1000, running;
		CURLMsg *m;
		int q;

		for (k = 0; k < KUBE_RES_COUNT; k++) {
			struct kw__res *r = &w->r[k];
			if (!w->active[k] || r->state != KW__IDLE)
				continue;
			if (now >= r->due) {
				if (r->need_list)
					kw__start_list(r, true);
				else
					kw__start(r, KW__WATCH);
			} else if ((r->due - now) / KW__MS < timeout) {
				timeout = (int)((r->due - now) / KW__MS) + 1;
			}
		}
		curl_multi_perform(w->multi, &running);
		while ((m = curl_multi_info_read(w->multi, &q))) {
			struct kw__res *r = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			if (r)
				kw__done(r, m->data.result);
		}
		kw__flush(w);
		for (k = 0; k < KUBE_RES_COUNT; k++)
			if (w->active[k] && w->r[k].state == KW__IDLE && w->r[k].due <= kw__now())
				timeout = 0;
		if (timeout)
			curl_multi_poll(w->multi, NULL, 0, timeout, NULL);
	}
	return NULL;
}

int kube_watch_start(const struct kube_watch_config *cfg, struct kube_watch **out)
{
	struct kube_watch *w;
	int k, rc;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	if (w->cfg.page_size <= 0)
		w->cfg.page_size = 500;
	if (w->cfg.backoff_min <= 0)
		w->cfg.backoff_min = 200 * KW__MS;
	if (w->cfg.backoff_max <= 0)
		w->cfg.backoff_max = 30000 * KW__MS;
	if (w->cfg.missing_retry <= 0)
		w->cfg.missing_retry = 30000 * KW__MS;
	if (w->cfg.max_objects == 0)
		w->cfg.max_objects = CFG_MAX_OBJECTS_PER_SOURCE;
	w->seed = (unsigned)kw__now() ^ (unsigned)getpid();
	w->pending_tail = &w->pending;
	for (k = 0; k < KUBE_RES_COUNT; k++) {
		struct kw__res *r = &w->r[k];
		r->w = w;
		r->res = (enum kube_res)k;
		r->info = kube_res_info(r->res);
		r->need_list = true;
		r->state = KW__IDLE;
		mesh_buf_init(&r->body, KUBE_WATCH_MAX_PAGE);
		kube_stream_init(&r->stream, KUBE_STREAM_MAX_EVENT);
		kube_map_init(&r->known);
		w->active[k] = !cfg->resources || (cfg->resources & (1u << k));
	}
	rc = mesh_queue_init(&w->q);
	if (rc < 0)
		goto fail;
	w->q_ready = true;
	w->multi = curl_multi_init();
	if (!w->multi) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = -pthread_create(&w->thread, NULL, kw__thread, w);
	if (rc < 0)
		goto fail;
	w->thread_started = true;
	*out = w;
	return 0;
fail:
	kube_watch_stop(w);
	return rc;
}

void kube_watch_stop(struct kube_watch *w)
{
	int k;

	if (!w)
		return;
	if (w->thread_started) {
		atomic_store(&w->stop, true);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
	}
	for (k = 0; k < KUBE_RES_COUNT; k++) {
		struct kw__res *r = &w->r[k];
		struct kube_map_entry *it = NULL;
		kw__end(r);
		if (r->h)
			curl_easy_cleanup(r->h);
		free(r->cont);
		mesh_buf_cleanup(&r->body);
		kube_stream_cleanup(&r->stream);
		while ((it = kube_map_next(&r->known, it)))
			free(it->val);
		kube_map_cleanup(&r->known);
	}
	if (w->multi)
		curl_multi_cleanup(w->multi);
	kw__free_items(w->pending);
	if (w->q_ready) {
		kw__free_items(mesh_queue_take(&w->q));
		mesh_queue_cleanup(&w->q);
	}
	free(w);
}

int kube_watch_fd(const struct kube_watch *w)
{
	return mesh_queue_fd(&w->q);
}

struct kube_event *kube_watch_take(struct kube_watch *w)
{
	struct mesh_queue_item *it = mesh_queue_take(&w->q);
	struct kube_event *head = NULL, **tail = &head;

	/* hand the events over linked through ->next, as kube_watch.h promises */
	while (it) {
		struct kube_event *e = mesh_container_of(it, struct kube_event, qi);
		it = it->next;
		e->next = NULL;
		*tail = e;
		tail = &e->next;
	}
	return head;
}
