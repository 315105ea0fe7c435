/*
 * kube_leader.c - leader election on a Lease and the root-certificate
 * ConfigMaps (see kube_leader.h).
 *
 * One thread: it wakes every `retry` to acquire or renew the lease, and
 * when it leads, reconciles the ConfigMaps when asked (kick, new root,
 * just elected) or every `resync`.  The state others read (leader flag,
 * root PEM, kick) sits under one mutex with a condition variable on
 * CLOCK_MONOTONIC that stop and kick signal.
 */
#include "controlplane/kube/kube_leader.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "controlplane/kube/kube_json.h"
#include "controlplane/kube/kube_map.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KL__S 1000000000LL
#define KL__PATH_MAX 1024
#define KL__RV_MAX 64
#define KL__TIME_MAX 40
#define KL__BODY_MAX (1u << 20)
#define KL__LEASE_MAX (64u << 10)

struct kube_leader {
	struct kube_leader_config cfg;
	char identity[KUBE_LEADER_IDENTITY_MAX];
	char *ns, *name;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	bool stop, kick, leader;
	char *root_pem;
	/* the thread's own */
	char observed[KUBE_LEADER_IDENTITY_MAX + KL__TIME_MAX + 2]; /* holder|renewTime last seen */
	int64_t observed_at;
	int64_t last_renew;
	bool is_leader;
};

static const char *kl__s(const char *s)
{
	return s ? s : "";
}

static int64_t kl__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * KL__S + ts.tv_nsec;
}

/* Kubernetes MicroTime: 2006-01-02T15:04:05.000000Z */
static void kl__micro_time(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		base[0] = '\0';
	snprintf(out, cap, "%.20s.%06dZ", base, (int)((ts.tv_nsec / 1000) % 1000000));
}

static void kl__set_leader(struct kube_leader *l, bool on)
{
	if (l->is_leader == on)
		return;
	l->is_leader = on;
	pthread_mutex_lock(&l->lock);
	l->leader = on;
	if (on)
		l->kick = true; /* reconcile at once */
	pthread_mutex_unlock(&l->lock);
	if (on)
		log_info("kube", "leader election: %s now holds lease %s/%s", l->identity, l->ns, l->name);
	else
		log_warn("kube", "leader election: %s no longer holds lease %s/%s", l->identity, l->ns, l->name);
}

/* ------------------------------------------------------------- lease */

struct kl__lease {
	bool found;
	char rv[KL__RV_MAX];
	char holder[KUBE_LEADER_IDENTITY_MAX];
	char renew[KL__TIME_MAX];
	char acquire[KL__TIME_MAX];
	int64_t duration;            /* seconds */
	int64_t transitions;
};

static void kl__lease_path(struct kube_leader *l, char *path, size_t cap, bool named)
{
	snprintf(path, cap, "/apis/coordination.k8s.io/v1/namespaces/%s/leases%s%s", l->ns, named ? "/" : "",
		 named ? l->name : "");
}

/* GET the lease.  0 (found or not), or < 0 when the API could not say. */
static int kl__lease_get(struct kube_leader *l, struct kl__lease *out)
{
	char path[KL__PATH_MAX];
	struct mesh_buf resp;
	struct arena *a = NULL;
	struct json_value *root;
	const struct json_value *md, *spec;
	long status = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	mesh_buf_init(&resp, KL__LEASE_MAX);
	kl__lease_path(l, path, sizeof(path), true);
	rc = kube_client_request(l->cfg.client, "GET", path, NULL, 0, NULL, &status, &resp);
	if (rc < 0)
		goto out;
	if (status == 404) {
		rc = 0;
		goto out;
	}
	if (status != 200) {
		log_warn("kube", "lease %s/%s: HTTP %ld", l->ns, l->name, status);
		rc = -EIO;
		goto out;
	}
	a = arena_new(resp.len * 8 + 4096);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	rc = kube_json_parse(a, resp.data ? resp.data : "", resp.len, &root);
	if (rc < 0)
		goto out;
	md = json_get(root, "metadata");
	spec = json_get(root, "spec");
	out->found = true;
	snprintf(out->rv, sizeof(out->rv), "%s", kl__s(json_get_str(md, "resourceVersion")));
	snprintf(out->holder, sizeof(out->holder), "%s", kl__s(json_get_str(spec, "holderIdentity")));
	snprintf(out->renew, sizeof(out->renew), "%s", kl__s(json_get_str(spec, "renewTime")));
	snprintf(out->acquire, sizeof(out->acquire), "%s", kl__s(json_get_str(spec, "acquireTime")));
	out->duration = json_get_int(spec, "leaseDurationSeconds", l->cfg.lease_seconds);
	out->transitions = json_get_int(spec, "leaseTransitions", 0);
out:
	arena_free(a);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* Create (old == NULL or !old->found) or update the lease with holder.
 * Returns 1 when the API server took it, 0 on a conflict, < 0 on error. */
static int kl__lease_write(struct kube_leader *l, const struct kl__lease *old, const char *holder, int duration,
			   bool acquire)
{
	char path[KL__PATH_MAX], now[KL__TIME_MAX];
	struct mesh_buf body, resp;
	bool update = old && old->found;
	long status = 0;
	int rc;

	kl__micro_time(now, sizeof(now));
	mesh_buf_init(&body, KL__LEASE_MAX);
	mesh_buf_init(&resp, KL__LEASE_MAX);
	mesh_buf_puts(&body, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":");
	json_put_string(&body, l->name);
	mesh_buf_puts(&body, ",\"namespace\":");
	json_put_string(&body, l->ns);
	if (update) {
		mesh_buf_puts(&body, ",\"resourceVersion\":");
		json_put_string(&body, old->rv);
	}
	mesh_buf_puts(&body, "},\"spec\":{\"holderIdentity\":");
	json_put_string(&body, holder);
	mesh_buf_printf(&body, ",\"leaseDurationSeconds\":%d,\"acquireTime\":", duration);
	json_put_string(&body, acquire || !update || !old->acquire[0] ? now : old->acquire);
	mesh_buf_puts(&body, ",\"renewTime\":");
	json_put_string(&body, now);
	mesh_buf_printf(&body, ",\"leaseTransitions\":%lld}}",
			(long long)(update ? old->transitions + (acquire ? 1 : 0) : 0));
	if (body.err) {
		rc = body.err;
		goto out;
	}
	kl__lease_path(l, path, sizeof(path), update);
	rc = kube_client_request(l->cfg.client, update ? "PUT" : "POST", path, body.data, body.len,
				 "application/json", &status, &resp);
	if (rc < 0)
		goto out;
	if (status == 200 || status == 201)
		rc = 1;
	else if (status == 409)
		rc = 0;
	else {
		log_warn("kube", "lease %s/%s: HTTP %ld: %.200s", l->ns, l->name, status, resp.data ? resp.data : "");
		rc = -EIO;
	}
out:
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* One round of the election. */
static void kl__try(struct kube_leader *l)
{
	struct kl__lease lease;
	int64_t now = kl__now(), deadline = (int64_t)l->cfg.lease_seconds * KL__S * 2 / 3;
	char record[sizeof(l->observed)];
	int rc;

	rc = kl__lease_get(l, &lease);
	if (rc < 0)
		goto failed;
	if (!lease.found) {
		rc = kl__lease_write(l, NULL, l->identity, l->cfg.lease_seconds, true);
		if (rc < 0)
			goto failed;
		if (rc > 0) {
			l->last_renew = now;
			kl__set_leader(l, true);
		}
		return;
	}
	snprintf(record, sizeof(record), "%s|%s", lease.holder, lease.renew);
	if (strcmp(record, l->observed) != 0) {
		memcpy(l->observed, record, sizeof(record));
		l->observed_at = now;
	}
	if (strcmp(lease.holder, l->identity) == 0) {
		rc = kl__lease_write(l, &lease, l->identity, l->cfg.lease_seconds, false);
		if (rc < 0)
			goto failed;
		if (rc > 0) {
			l->last_renew = now;
			kl__set_leader(l, true);
			return;
		}
		goto failed; /* someone wrote it meanwhile: look again next round */
	}
	if (lease.holder[0] && now - l->observed_at < lease.duration * KL__S) {
		kl__set_leader(l, false);
		return;
	}
	/* empty or expired: take it over, guarded by the version just read */
	rc = kl__lease_write(l, &lease, l->identity, l->cfg.lease_seconds, true);
	if (rc > 0) {
		log_info("kube", "leader election: taking over lease %s/%s from \"%s\"", l->ns, l->name,
			 lease.holder);
		l->last_renew = now;
		kl__set_leader(l, true);
		return;
	}
	kl__set_leader(l, false);
	return;
failed:
	if (l->is_leader && now - l->last_renew >= deadline)
		kl__set_leader(l, false);
}

static void kl__release(struct kube_leader *l)
{
	struct kl__lease lease;

	if (!l->is_leader)
		return;
	if (kl__lease_get(l, &lease) == 0 && lease.found && strcmp(lease.holder, l->identity) == 0 &&
	    kl__lease_write(l, &lease, "", 1, false) > 0)
		log_info("kube", "leader election: released lease %s/%s", l->ns, l->name);
	kl__set_leader(l, false);
}

/* ------------------------------------------------------------- ConfigMaps */

/* GET every page of path (a list); calls fn for each item.  0 or < 0. */
static int kl__list(struct kube_leader *l, const char *path, int (*fn)(void *ctx, const struct json_value *item),
		    void *ctx)
{
	char url[KL__PATH_MAX * 2];
	char *cont = NULL;
	struct mesh_buf resp;
	int rc = 0;

	mesh_buf_init(&resp, KUBE_LEADER_MAX_LIST);
	do {
		struct arena *a;
		struct json_value *root;
		const struct json_value *it;
		const char *next;
		long status = 0;
		char *esc = NULL;

		if (cont) {
			esc = curl_easy_escape(NULL, cont, 0);
			if (!esc) {
				rc = -ENOMEM;
				break;
			}
		}
		snprintf(url, sizeof(url), "%s%slimit=500%s%s", path, strchr(path, '?') ? "&" : "?",
			 esc ? "&continue=" : "", esc ? esc : "");
		curl_free(esc);
		mesh_buf_reset(&resp);
		rc = kube_client_request(l->cfg.client, "GET", url, NULL, 0, NULL, &status, &resp);
		if (rc < 0)
			break;
		if (status != 200) {
			log_warn("kube", "GET %s: HTTP %ld", path, status);
			rc = -EIO;
			break;
		}
		a = arena_new(resp.len * 8 + 65536);
		if (!a) {
			rc = -ENOMEM;
			break;
		}
		rc = kube_json_parse(a, resp.data ? resp.data : "", resp.len, &root);
		for (it = rc == 0 ? json_get(root, "items") : NULL, it = it && it->type == JSON_ARRAY ?
									    it->child : NULL;
		     it && rc == 0; it = it->next)
			rc = fn(ctx, it);
		next = rc == 0 ? json_get_str(json_get(root, "metadata"), "continue") : NULL;
		free(cont);
		cont = next && *next ? strdup(next) : NULL;
		arena_free(a);
		if (next && *next && !cont)
			rc = -ENOMEM;
	} while (rc == 0 && cont);
	free(cont);
	mesh_buf_cleanup(&resp);
	return rc;
}

struct kl__ns_list {
	char **v;
	size_t n, cap;
};

static int kl__on_namespace(void *ctx, const struct json_value *item)
{
	struct kl__ns_list *ns = ctx;
	const char *name = json_get_str(json_get(item, "metadata"), "name");
	const char *phase = json_get_str(json_get(item, "status"), "phase");

	if (!name || (phase && strcmp(phase, "Terminating") == 0))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;
		char **v = realloc(ns->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strdup(name)))
		return -ENOMEM;
	ns->n++;
	return 0;
}

struct kl__cm {
	char rv[KL__RV_MAX];
	bool current;                /* data[root-cert.pem] is the root */
};

struct kl__cm_ctx {
	struct kube_map by_ns;
	const char *pem;
};

static int kl__on_configmap(void *ctx, const struct json_value *item)
{
	struct kl__cm_ctx *c = ctx;
	const struct json_value *md = json_get(item, "metadata");
	const char *name = json_get_str(md, "name"), *ns = json_get_str(md, "namespace");
	const char *data = json_get_str(json_get(item, "data"), KUBE_LEADER_CONFIGMAP_KEY);
	struct kl__cm *cm;
	int rc;

	if (!name || !ns || strcmp(name, KUBE_LEADER_CONFIGMAP) != 0)
		return 0; /* a server that ignores fieldSelector */
	cm = calloc(1, sizeof(*cm));
	if (!cm)
		return -ENOMEM;
	snprintf(cm->rv, sizeof(cm->rv), "%s", kl__s(json_get_str(md, "resourceVersion")));
	cm->current = data && strcmp(data, c->pem) == 0;
	rc = kube_map_put(&c->by_ns, ns, cm, NULL);
	if (rc < 0)
		free(cm);
	return rc;
}

/* Create or update the ConfigMap in ns.  0, 1 on a conflict, or < 0. */
static int kl__write_configmap(struct kube_leader *l, const char *ns, const struct kl__cm *old, const char *pem)
{
	char path[KL__PATH_MAX];
	struct mesh_buf body, resp;
	long status = 0;
	int rc;

	mesh_buf_init(&body, KL__BODY_MAX);
	mesh_buf_init(&resp, KL__BODY_MAX);
	mesh_buf_puts(&body, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\""
			     KUBE_LEADER_CONFIGMAP "\",\"namespace\":");
	json_put_string(&body, ns);
	if (old) {
		mesh_buf_puts(&body, ",\"resourceVersion\":");
		json_put_string(&body, old->rv);
	}
	mesh_buf_puts(&body, ",\"labels\":{\"istio.io/config\":\"true\"}},\"data\":{\"" KUBE_LEADER_CONFIGMAP_KEY
			     "\":");
	json_put_string(&body, pem);
	mesh_buf_puts(&body, "}}");
	if (body.err) {
		rc = body.err;
		goto out;
	}
	if (old)
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/" KUBE_LEADER_CONFIGMAP, ns);
	else
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	rc = kube_client_request(l->cfg.client, old ? "PUT" : "POST", path, body.data, body.len, "application/json",
				 &status, &resp);
	if (rc < 0)
		goto out;
	if (status == 200 || status == 201) {
		log_info("kube", "%s %s/%s", old ? "updated" : "created", ns, KUBE_LEADER_CONFIGMAP);
		rc = 0;
	} else if (status == 409 || status == 404) {
		rc = 1; /* changed meanwhile, or the namespace went away: look again */
	} else {
		log_warn("kube", "%s %s/%s: HTTP %ld: %.200s", old ? "PUT" : "POST", ns, KUBE_LEADER_CONFIGMAP, status,
			 resp.data ? resp.data : "");
		rc = -EIO;
	}
out:
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* Make every namespace's ConfigMap hold pem.  0, 1 when another round is
 * needed, or < 0. */
static int kl__reconcile(struct kube_leader *l, const char *pem)
{
	struct kl__ns_list nss = { 0 };
	struct kl__cm_ctx cms = { .pem = pem };
	struct kube_map_entry *it = NULL;
	size_t i;
	int rc, again = 0;

	kube_map_init(&cms.by_ns);
	rc = kl__list(l, "/api/v1/namespaces", kl__on_namespace, &nss);
	if (rc < 0)
		goto out;
	rc = kl__list(l, "/api/v1/configmaps?fieldSelector=metadata.name%3D" KUBE_LEADER_CONFIGMAP, kl__on_configmap,
		      &cms);
	if (rc < 0)
		goto out;
	for (i = 0; i < nss.n && l->is_leader; i++) {
		const struct kl__cm *cm = kube_map_get(&cms.by_ns, nss.v[i]);
		if (cm && cm->current)
			continue;
		rc = kl__write_configmap(l, nss.v[i], cm, pem);
		if (rc < 0)
			goto out;
		again |= rc;
	}
	rc = again;
out:
	for (i = 0; i < nss.n; i++)
		free(nss.v[i]);
	free(nss.v);
	while ((it = kube_map_next(&cms.by_ns, it)))
		free(it->val);
	kube_map_cleanup(&cms.by_ns);
	return rc;
}

/* ------------------------------------------------------------- thread */

static void *kl__thread(void *arg)
{
	struct kube_leader *l = arg;
	int64_t next_try = 0, next_resync = 0;
	bool dirty = false;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		int64_t now, wake;
		struct timespec ts;

		if (l->kick) {
			dirty = true;
			l->kick = false;
		}
		pthread_mutex_unlock(&l->lock);
		now = kl__now();
		if (now >= next_try) {
			kl__try(l);
			next_try = kl__now() + l->cfg.retry;
		}
		pthread_mutex_lock(&l->lock);
		if (l->kick) {
			dirty = true;
			l->kick = false;
		}
		if (l->is_leader && l->root_pem && (dirty || kl__now() >= next_resync)) {
			char *pem = strdup(l->root_pem);
			int rc;
			pthread_mutex_unlock(&l->lock);
			rc = pem ? kl__reconcile(l, pem) : -ENOMEM;
			free(pem);
			if (rc < 0)
				log_warn("kube", "%s ConfigMaps: %s; retrying", KUBE_LEADER_CONFIGMAP, mesh_strerror(rc));
			dirty = rc != 0; /* a conflict or a failure: once more at the next round */
			next_resync = kl__now() + l->cfg.resync;
			pthread_mutex_lock(&l->lock);
		}
		if (l->stop || l->kick)
			continue;
		wake = next_try;
		if (l->is_leader && l->root_pem && !dirty && next_resync < wake)
			wake = next_resync;
		ts.tv_sec = wake / KL__S;
		ts.tv_nsec = wake % KL__S;
		pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	}
	pthread_mutex_unlock(&l->lock);
	kl__release(l);
	return NULL;
}

/* ------------------------------------------------------------- public */

int kube_leader_start(const struct kube_leader_config *cfg, struct kube_leader **out)
{
	struct kube_leader *l;
	pthread_condattr_t ca;
	const char *id = cfg->identity;
	int rc;

	*out = NULL;
	if (!cfg->client)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	if (l->cfg.lease_seconds <= 0)
		l->cfg.lease_seconds = 15;
	if (l->cfg.retry <= 0)
		l->cfg.retry = 2 * KL__S;
	if (l->cfg.resync <= 0)
		l->cfg.resync = 10 * KL__S;
	l->ns = strdup(cfg->ns ? cfg->ns : "istio-system");
	l->name = strdup(cfg->name ? cfg->name : "meshd-leader");
	l->root_pem = cfg->root_pem ? strdup(cfg->root_pem) : NULL;
	l->cfg.ns = l->cfg.name = l->cfg.identity = l->cfg.root_pem = NULL; /* not kept */
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!l->ns || !l->name || (cfg->root_pem && !l->root_pem)) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!id || !*id)
		id = getenv("POD_NAME");
	if (id && *id) {
		snprintf(l->identity, sizeof(l->identity), "%s", id);
	} else {
		char host[200] = "meshd";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(l->identity, sizeof(l->identity), "%s-%ld", host, (long)getpid());
	}
	rc = -pthread_create(&l->thread, NULL, kl__thread, l);
	if (rc < 0)
		goto fail;
	l->thread_started = true;
	log_info("kube", "leader election on lease %s/%s as %s", l->ns, l->name, l->identity);
	*out = l;
	return 0;
fail:
	kube_leader_stop(l);
	return rc;
}

void kube_leader_stop(struct kube_leader *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->thread, NULL);
	}
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l->root_pem);
	free(l->ns);
	free(l->name);
	free(l);
}

bool kube_leader_is_leader(struct kube_leader *l)
{
	bool on;

	pthread_mutex_lock(&l->lock);
	on = l->leader;
	pthread_mutex_unlock(&l->lock);
	return on;
}

const char *kube_leader_identity(const struct kube_leader *l)
{
	return l->identity;
}

int kube_leader_set_root_pem(struct kube_leader *l, const char *pem)
{
	char *copy = strdup(pem);

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&l->lock);
	free(l->root_pem);
	l->root_pem = copy;
	l->kick = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

void kube_leader_kick(struct kube_leader *l)
{
	pthread_mutex_lock(&l->lock);
	l->kick = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}
