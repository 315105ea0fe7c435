/*
 * patch.c - caBundle and failurePolicy of the webhook configurations,
 * kept by the leader (see patch.h).
 *
 * Two threads, one per resource, each: wait for leadership; list the
 * resource and patch what differs (reconcile); then watch the resource
 * from the list's resourceVersion until one of its own configurations
 * changes, the watch times out (resync), leadership is lost or the
 * patcher stops; and again.  Requests are blocking libcurl transfers
 * (kube_client.h) on these threads only; the watch runs on a curl multi
 * handle of the thread's own, polled with a one-second timeout (leadership
 * is checked between polls) and woken by curl_multi_wakeup() to stop, so
 * stopping never waits for the API server.
 */
#include "controlplane/webhook/patch.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_json.h"
#include "controlplane/kube/kube_leader.h"
#include "controlplane/kube/kube_stream.h"
#include "controlplane/webhook/validate.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WP__S 1000000000LL
#define WP__MS 1000000LL
#define WP__LIST_MAX (16u << 20)      /* one list of webhook configurations */
#define WP__BODY_MAX (1u << 20)       /* one patch or probe answer */
#define WP__EVENT_MAX (4u << 20)      /* one watch event */
#define WP__BACKOFF_MIN (100 * WP__MS) /* istiod's rate limiter: 100 ms doubling to 1 min */
#define WP__BACKOFF_MAX (60 * WP__S)
#define WP__PATH_MAX 1024
#define WP__API "/apis/admissionregistration.k8s.io/v1/"

struct wp__kind {
	struct webhook_patch *p;
	bool validating;
	const char *plural;
	char *names[WEBHOOK_PATCH_MAX_NAMES];
	size_t n_names;
	CURLM *multi;                /* the watch's; woken by stop */
	pthread_t thread;
	bool started;
};

struct webhook_patch {
	struct webhook_patch_config cfg;
	char *ca_b64;                /* base64 of the root PEM: the caBundle value */
	char *probe_ns;
	struct wp__kind kinds[2];    /* mutating, validating */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;                   /* under lock; also read (atomically) by the progress callback */
	atomic_bool stopping;
	atomic_bool ready;           /* the probe was refused: the validators may fail closed */
	atomic_uint_fast64_t writes;
};

static int64_t wp__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * WP__S + ts.tv_nsec;
}

/* Sleep up to ns, woken early by stop.  Returns true when stopping. */
static bool wp__sleep(struct webhook_patch *p, int64_t ns)
{
	int64_t until = wp__now() + ns;
	struct timespec ts = { .tv_sec = until / WP__S, .tv_nsec = until % WP__S };
	bool stop;

	pthread_mutex_lock(&p->lock);
	if (!p->stop)
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	stop = p->stop;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

static bool wp__leading(struct webhook_patch *p)
{
	return !p->cfg.leader || kube_leader_is_leader(p->cfg.leader);
}

static bool wp__ours(const struct wp__kind *k, const char *name)
{
	size_t i;

	for (i = 0; name && i < k->n_names; i++)
		if (!strcmp(k->names[i], name))
			return true;
	return false;
}

static bool wp__ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* ------------------------------------------------------------- readiness probe */

/* istiod's isDryRunOfInvalidConfigRejected: true when a known-bad Gateway
 * is refused by a webhook (or cannot be judged at all). */
static bool wp__probe(struct webhook_patch *p)
{
	char path[WP__PATH_MAX];
	struct mesh_buf body, resp;
	long status = 0;
	bool ok = false;
	int rc;

	mesh_buf_init(&body, WP__BODY_MAX);
	mesh_buf_init(&resp, WP__BODY_MAX);
	mesh_buf_puts(&body, "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"Gateway\",\"metadata\":{"
			     "\"name\":\"invalid-gateway\",\"namespace\":");
	json_put_string(&body, p->probe_ns);
	mesh_buf_puts(&body, ",\"labels\":{\"istio.io/rev\":\"default\"},\"annotations\":{\"" WEBHOOK_VALIDATE_ALWAYS_REJECT
			     "\":\"true\"}},\"spec\":{}}");
	if (body.err)
		goto out;
	snprintf(path, sizeof(path), "/apis/networking.istio.io/v1/namespaces/%s/gateways?dryRun=All", p->probe_ns);
	rc = kube_client_request(p->cfg.client, "POST", path, body.data, body.len, "application/json", &status, &resp);
	if (rc == 0 && status == 409) {
		snprintf(path, sizeof(path),
			 "/apis/networking.istio.io/v1/namespaces/%s/gateways/invalid-gateway?dryRun=All", p->probe_ns);
		mesh_buf_reset(&resp);
		rc = kube_client_request(p->cfg.client, "PUT", path, body.data, body.len, "application/json", &status,
					 &resp);
	}
	if (rc < 0 || !resp.data) {
		log_info("webhook", "not ready to switch validation to fail-closed: %s",
			 rc < 0 ? mesh_strerror(rc) : "no answer");
		goto out;
	}
	if (status >= 200 && status < 300) {
		log_info("webhook", "not ready to switch validation to fail-closed: dummy invalid config not rejected");
	} else if (strstr(resp.data, "denied the request")) {
		log_info("webhook", "endpoint successfully rejected invalid config; switching to fail-close");
		ok = true;
	} else if (strstr(resp.data, "the server could not find the requested resource")) {
		log_warn("webhook", "missing Gateway CRD, cannot perform validation check; assuming validation is ready");
		ok = true;
	} else if (strstr(resp.data, "does not support dry run")) {
		log_warn("webhook", "a validating webhook does not support dry run, cannot perform validation check; "
				    "assuming validation is ready");
		ok = true;
	} else {
		log_info("webhook", "not ready to switch validation to fail-closed: rejected for the wrong reason: "
				    "HTTP %ld %.300s", status, resp.data);
	}
out:
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&resp);
	return ok;
}

static bool wp__ready(struct webhook_patch *p)
{
	if (atomic_load(&p->ready))
		return true;
	if (!wp__probe(p))
		return false;
	atomic_store(&p->ready, true);
	return true;
}

/* ------------------------------------------------------------- reconcile */

/* Patch one configuration.  0 when true (or not ours to fix), 1 to retry
 * (a conflict, or validators not ready to fail closed), < 0 on error. */
static int wp__one(struct wp__kind *k, const struct json_value *item)
{
	struct webhook_patch *p = k->p;
	const struct json_value *md = json_get(item, "metadata"), *whs = json_get(item, "webhooks"), *wh;
	const char *name = json_get_str(md, "name"), *rv = json_get_str(md, "resourceVersion");
	char path[WP__PATH_MAX];
	struct mesh_buf ops, resp;
	bool ca_change = false, ignore = false, update_fp, any = false;
	long status = 0;
	size_t i;
	int rc = 0;

	mesh_buf_init(&ops, WP__BODY_MAX);
	mesh_buf_init(&resp, WP__BODY_MAX);
	for (wh = whs && whs->type == JSON_ARRAY ? whs->child : NULL; wh; wh = wh->next) {
		const char *wname = json_get_str(wh, "name"), *cb, *fp;

		if (!k->validating && (!wname || !wp__ends_with(wname, WEBHOOK_PATCH_INJECTOR_SUFFIX)))
			continue;
		any = true;
		cb = json_get_str(json_get(wh, "clientConfig"), "caBundle");
		if (!cb || strcmp(cb, p->ca_b64) != 0)
			ca_change = true;
		fp = json_get_str(wh, "failurePolicy");
		if (k->validating && fp && strcmp(fp, "Fail") != 0)
			ignore = true;
	}
	if (!any || (!ca_change && !ignore))
		goto out;
	/* only probe when the switch is due (istiod: avoids redundant calls) */
	update_fp = !ignore || wp__ready(p);
	if (!ca_change && !update_fp) {
		rc = 1; /* nothing to write yet: probe again after the backoff */
		goto out;
	}
	/* guarded by the version read: someone else's write in between fails
	 * the test and this round is retried on what they wrote */
	mesh_buf_puts(&ops, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":");
	json_put_string(&ops, rv ? rv : "");
	mesh_buf_putc(&ops, '}');
	for (wh = whs->child, i = 0; wh; wh = wh->next, i++) {
		const char *wname = json_get_str(wh, "name");

		if (!k->validating && (!wname || !wp__ends_with(wname, WEBHOOK_PATCH_INJECTOR_SUFFIX)))
			continue;
		if (json_get(wh, "clientConfig"))
			mesh_buf_printf(&ops, ",{\"op\":\"add\",\"path\":\"/webhooks/%zu/clientConfig/caBundle\",\"value\":", i);
		else
			mesh_buf_printf(&ops, ",{\"op\":\"add\",\"path\":\"/webhooks/%zu/clientConfig\",\"value\":{\"caBundle\":",
					i);
		json_put_string(&ops, p->ca_b64);
		mesh_buf_puts(&ops, json_get(wh, "clientConfig") ? "}" : "}}");
		if (k->validating && update_fp)
			mesh_buf_printf(&ops, ",{\"op\":\"add\",\"path\":\"/webhooks/%zu/failurePolicy\",\"value\":\"Fail\"}", i);
	}
	mesh_buf_putc(&ops, ']');
	if (ops.err) {
		rc = ops.err;
		goto out;
	}
	snprintf(path, sizeof(path), WP__API "%s/%s", k->plural, name);
	rc = kube_client_request(p->cfg.client, "PATCH", path, ops.data, ops.len, "application/json-patch+json",
				 &status, &resp);
	if (rc < 0)
		goto out;
	if (status == 200) {
		atomic_fetch_add(&p->writes, 1);
		log_info("webhook", "%s %s: caBundle%s patched (resourceVersion was %s)", k->plural, name,
			 k->validating && update_fp && ignore ? " and failurePolicy Fail" : "", rv ? rv : "?");
		rc = update_fp ? 0 : 1; /* "webhook is not ready, retry" */
	} else if (status == 404) {
		rc = 0; /* deleted meanwhile: nothing to keep */
	} else if (status == 409 || status == 422) {
		log_debug("webhook", "%s %s changed while patching (HTTP %ld): again", k->plural, name, status);
		rc = 1;
	} else {
		log_warn("webhook", "PATCH %s %s: HTTP %ld: %.300s", k->plural, name, status, resp.data ? resp.data : "");
		rc = -EIO;
	}
out:
	mesh_buf_cleanup(&ops);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* List the resource and patch ours.  rv gets the list's resourceVersion.
 * 0, 1 to retry, or < 0. */
static int wp__reconcile(struct wp__kind *k, char *rv, size_t rv_cap)
{
	char path[WP__PATH_MAX];
	struct mesh_buf resp;
	struct arena *a = NULL;
	struct json_value *root;
	const struct json_value *it;
	long status = 0;
	int rc, again = 0;

	rv[0] = '\0';
	mesh_buf_init(&resp, WP__LIST_MAX);
	snprintf(path, sizeof(path), WP__API "%s", k->plural);
	rc = kube_client_request(k->p->cfg.client, "GET", path, NULL, 0, NULL, &status, &resp);
	if (rc < 0)
		goto out;
	if (status != 200) {
		log_warn("webhook", "GET %s: HTTP %ld", path, status);
		rc = -EIO;
		goto out;
	}
	a = arena_new(resp.len * 8 + 65536);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	rc = kube_json_parse(a, resp.data ? resp.data : "", resp.len, &root);
	if (rc < 0)
		goto out;
	snprintf(rv, rv_cap, "%s", json_get_str(json_get(root, "metadata"), "resourceVersion") ?
					  json_get_str(json_get(root, "metadata"), "resourceVersion") : "");
	it = json_get(root, "items");
	for (it = it && it->type == JSON_ARRAY ? it->child : NULL; it && rc >= 0; it = it->next) {
		if (!wp__ours(k, json_get_str(json_get(it, "metadata"), "name")))
			continue;
		rc = wp__one(k, it);
		if (rc > 0)
			again = 1;
	}
	if (rc >= 0)
		rc = again;
out:
	arena_free(a);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* ------------------------------------------------------------- watch */

struct wp__watch {
	struct wp__kind *k;
	struct kube_stream stream;
	bool hit;                    /* one of ours changed (or the watch expired): reconcile */
};

static int wp__on_event(void *ctx, const char *ev, size_t len)
{
	struct wp__watch *w = ctx;
	struct arena *a = arena_new(len * 8 + 4096);
	struct json_value *root;
	const char *type;
	int rc = 0;

	if (!a)
		return -ENOMEM;
	if (kube_json_parse(a, ev, len, &root) == 0) {
		type = json_get_str(root, "type");
		if (type && !strcmp(type, "ERROR")) {
			w->hit = true; /* 410 Gone and the like: list again */
			rc = -ECANCELED;
		} else if (type && strcmp(type, "BOOKMARK") != 0 &&
			   wp__ours(w->k, json_get_str(json_get(json_get(root, "object"), "metadata"), "name"))) {
			w->hit = true;
			rc = -ECANCELED; /* stop reading: reconcile now */
		}
	}
	arena_free(a);
	return rc;
}

static size_t wp__write(char *data, size_t size, size_t n, void *ud)
{
	struct wp__watch *w = ud;

	return kube_stream_feed(&w->stream, data, size * n, wp__on_event, w) < 0 ? 0 : size * n;
}

/* Watch from rv until something of ours changes.  Returns 0 (a change,
 * a timeout, stop, or lost leadership) or < 0 (the watch failed). */
static int wp__watch(struct wp__kind *k, const char *rv)
{
	struct webhook_patch *p = k->p;
	struct wp__watch w = { .k = k };
	char path[WP__PATH_MAX];
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();
	CURLcode cr = CURLE_OK;
	CURLMsg *m;
	long status = 0;
	bool done = false;
	int rc, q;

	if (!h)
		return -ENOMEM;
	kube_stream_init(&w.stream, WP__EVENT_MAX);
	snprintf(path, sizeof(path), WP__API "%s?watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%lld",
		 k->plural, rv, (long long)(p->cfg.resync / WP__S));
	rc = kube_client_prepare(p->cfg.client, h, "GET", path, &hdrs);
	if (rc < 0)
		goto out;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wp__write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
	/* a server that stops answering without closing: give up after the
	 * watch's own timeout and a margin */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(p->cfg.resync / WP__MS) + 30000L);
	if (curl_multi_add_handle(k->multi, h) != CURLM_OK) {
		rc = -ENOMEM;
		goto out;
	}
	while (!done && !atomic_load(&p->stopping) && wp__leading(p)) {
		int running = 0;

		if (curl_multi_perform(k->multi, &running) != CURLM_OK)
			break;
		while ((m = curl_multi_info_read(k->multi, &q)))
			if (m->msg == CURLMSG_DONE) {
				cr = m->data.result;
				done = true;
			}
		if (!done)
			curl_multi_poll(k->multi, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(k->multi, h);
	if (!done)
		goto out; /* stopping, or no longer the leader */
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cr == CURLE_OK && status != 200) {
		log_warn("webhook", "watch %s: HTTP %ld", k->plural, status);
		rc = -EIO;
	} else if (cr != CURLE_OK && !w.hit) {
		log_debug("webhook", "watch %s: %s", k->plural, curl_easy_strerror(cr));
		rc = -EIO;
	}
out:
	kube_stream_cleanup(&w.stream);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* ------------------------------------------------------------- thread */

static void *wp__thread(void *arg)
{
	struct wp__kind *k = arg;
	struct webhook_patch *p = k->p;
	int64_t backoff = 0;
	char rv[64];
	int rc;

	while (!atomic_load(&p->stopping)) {
		if (!wp__leading(p)) {
			backoff = 0;
			wp__sleep(p, WP__S);
			continue;
		}
		rc = wp__reconcile(k, rv, sizeof(rv));
		if (rc != 0) {
			backoff = backoff ? backoff * 2 : WP__BACKOFF_MIN;
			if (backoff > WP__BACKOFF_MAX)
				backoff = WP__BACKOFF_MAX;
			if (rc < 0)
				log_warn("webhook", "%s: %s; again in %lld ms", k->plural, mesh_strerror(rc),
					 (long long)(backoff / WP__MS));
			wp__sleep(p, backoff);
			continue;
		}
		backoff = 0;
		if (!rv[0]) {
			/* a list without a resourceVersion cannot be watched from: a
			 * watch from nothing would replay every object, a hit each
			 * time; look again at the next resync instead */
			wp__sleep(p, p->cfg.resync);
			continue;
		}
		if (wp__watch(k, rv) < 0)
			wp__sleep(p, WP__S); /* do not spin on a failing watch */
	}
	return NULL;
}

/* ------------------------------------------------------------- public */

static int wp__names(struct wp__kind *k, const char *list)
{
	const char *s = list, *comma;

	while (s && *s) {
		size_t n;

		comma = strchr(s, ',');
		n = comma ? (size_t)(comma - s) : strlen(s);
		if (n) {
			if (k->n_names == WEBHOOK_PATCH_MAX_NAMES)
				return -EINVAL;
			k->names[k->n_names] = strndup(s, n);
			if (!k->names[k->n_names])
				return -ENOMEM;
			k->n_names++;
		}
		s = comma ? comma + 1 : NULL;
	}
	return 0;
}

int webhook_patch_start(const struct webhook_patch_config *cfg, struct webhook_patch **out)
{
	struct webhook_patch *p;
	pthread_condattr_t ca;
	size_t len, i;
	int rc;

	*out = NULL;
	if (!cfg->client || !cfg->root_pem || !*cfg->root_pem)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	if (p->cfg.resync < WP__S)
		p->cfg.resync = 60 * WP__S;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	len = strlen(cfg->root_pem);
	p->ca_b64 = malloc(4 * ((len + 2) / 3) + 1);
	p->probe_ns = strdup(cfg->probe_ns ? cfg->probe_ns : "istio-system");
	if (!p->ca_b64 || !p->probe_ns) {
		rc = -ENOMEM;
		goto fail;
	}
	EVP_EncodeBlock((unsigned char *)p->ca_b64, (const unsigned char *)cfg->root_pem, (int)len);
	p->cfg.root_pem = p->cfg.mutating = p->cfg.validating = p->cfg.probe_ns = NULL; /* not kept */
	p->kinds[0] = (struct wp__kind){ .p = p, .validating = false, .plural = "mutatingwebhookconfigurations" };
	p->kinds[1] = (struct wp__kind){ .p = p, .validating = true, .plural = "validatingwebhookconfigurations" };
	rc = wp__names(&p->kinds[0], cfg->mutating ? cfg->mutating : WEBHOOK_PATCH_INJECTOR);
	if (rc == 0)
		rc = wp__names(&p->kinds[1], cfg->validating ? cfg->validating : WEBHOOK_PATCH_VALIDATORS);
	if (rc < 0)
		goto fail;
	for (i = 0; i < 2; i++) {
		if (!p->kinds[i].n_names)
			continue;
		p->kinds[i].multi = curl_multi_init();
		if (!p->kinds[i].multi) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = -pthread_create(&p->kinds[i].thread, NULL, wp__thread, &p->kinds[i]);
		if (rc < 0)
			goto fail;
		p->kinds[i].started = true;
	}
	*out = p;
	return 0;
fail:
	webhook_patch_stop(p);
	return rc;
}

void webhook_patch_stop(struct webhook_patch *p)
{
	size_t i, j;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	atomic_store(&p->stopping, true);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < 2; i++) {
		if (p->kinds[i].multi)
			curl_multi_wakeup(p->kinds[i].multi);
		if (p->kinds[i].started)
			pthread_join(p->kinds[i].thread, NULL);
		if (p->kinds[i].multi)
			curl_multi_cleanup(p->kinds[i].multi);
		for (j = 0; j < p->kinds[i].n_names; j++)
			free(p->kinds[i].names[j]);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->ca_b64);
	free(p->probe_ns);
	free(p);
}

uint64_t webhook_patch_writes(struct webhook_patch *p)
{
	return atomic_load(&p->writes);
}

bool webhook_patch_fail_closed(struct webhook_patch *p)
{
	return atomic_load(&p->ready);
}
