/*
 * kube_source.c - the Kubernetes API config source (see kube_source.h).
 *
 * The watch thread does the I/O and the decoding; this side only moves
 * finished objects into the store and the record tables, so handling a
 * batch costs the store's own work and nothing more.
 */
#include "controlplane/kube/kube_source.h"

#include "common/err.h"
#include "common/log.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_config.h"
#include "controlplane/kube/kube_map.h"
#include "controlplane/kube/kube_watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KUBE_SOURCE__KEY_MAX 600

struct kube_source {
	struct cfg_store *store;
	struct kube_client *client;
	struct kube_watch *watch;
	bool synced[KUBE_RES_COUNT];
	struct kube_map records[KUBE_RES_COUNT];   /* core kinds: "ns/name" -> kube_record */
	uint64_t records_generation;
};

int kube_source_new(const struct kube_source_config *cfg, struct kube_source **out)
{
	struct kube_source *ks;
	struct kube_config kc;
	char why[KUBE_CONFIG_WHY_MAX] = "";
	int rc, k;

	*out = NULL;
	if (cfg->kubeconfig) {
		rc = kube_config_from_kubeconfig(cfg->kubeconfig, cfg->context, &kc, why, sizeof(why));
	} else {
		const char *dir = cfg->sa_dir ? cfg->sa_dir : getenv("MESHD_KUBE_SA_DIR");
		rc = kube_config_in_cluster(dir, &kc, why, sizeof(why));
	}
	if (rc < 0) {
		log_error("kube", "%s", why[0] ? why : mesh_strerror(rc));
		return rc;
	}
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		kube_config_cleanup(&kc);
		return -ENOMEM;
	}
	ks->store = cfg->store;
	for (k = 0; k < KUBE_RES_COUNT; k++)
		kube_map_init(&ks->records[k]);
	rc = kube_client_new(&kc, &ks->client);
	if (rc < 0)
		goto fail;
	{
		struct kube_watch_config wc = {
			.client = ks->client,
			.page_size = cfg->page_size,
			.timeout_seconds = cfg->watch_timeout_seconds,
			.backoff_min = cfg->backoff_min,
			.backoff_max = cfg->backoff_max,
			.missing_retry = cfg->missing_retry,
		};
		rc = kube_watch_start(&wc, &ks->watch);
		if (rc < 0)
			goto fail;
	}
	log_info("kube", "watching %s", kc.server);
	kube_config_cleanup(&kc);
	*out = ks;
	return 0;
fail:
	kube_config_cleanup(&kc);
	kube_source_free(ks);
	return rc;
}

void kube_source_free(struct kube_source *ks)
{
	int k;

	if (!ks)
		return;
	kube_watch_stop(ks->watch);
	kube_client_free(ks->client);
	for (k = 0; k < KUBE_RES_COUNT; k++) {
		struct kube_map_entry *it = NULL;
		while ((it = kube_map_next(&ks->records[k], it)))
			kube_record_free(it->val);
		kube_map_cleanup(&ks->records[k]);
	}
	free(ks);
}

int kube_source_fd(const struct kube_source *ks)
{
	return kube_watch_fd(ks->watch);
}

bool kube_source_synced(const struct kube_source *ks)
{
	int k;

	for (k = 0; k < KUBE_RES_COUNT; k++)
		if (!ks->synced[k])
			return false;
	return true;
}

static void kube_source__key(char *key, const char *ns, const char *name)
{
	snprintf(key, KUBE_SOURCE__KEY_MAX, "%s/%s", ns ? ns : "", name ? name : "");
}

/* Apply one event; returns 1 when something served changed, 0, or < 0. */
static int kube_source__apply(struct kube_source *ks, struct kube_event *e)
{
	const struct kube_res_info *in = kube_res_info(e->res);
	char key[KUBE_SOURCE__KEY_MAX];
	size_t i;
	int rc = 0;

	switch (e->type) {
	case KUBE_EVENT_SYNCED:
		if (!ks->synced[e->res])
			log_info("kube", "%s: synced", in->plural);
		ks->synced[e->res] = true;
		return 0;
	case KUBE_EVENT_PUT:
		if (e->obj)
			return cfg_store_put(ks->store, e->obj);
		if (e->rec) {
			struct kube_record *old = NULL;
			kube_source__key(key, e->ns, e->name);
			rc = kube_map_put(&ks->records[e->res], key, e->rec, (void **)&old);
			if (rc < 0)
				return rc;
			e->rec = NULL; /* taken */
			kube_record_free(old);
			ks->records_generation++;
			return 1;
		}
		return 0;
	case KUBE_EVENT_REJECT:
		for (i = 0; i < e->n_errors; i++) {
			char msg[1024];
			cfg_error_format(&e->errors[i], msg, sizeof(msg));
			log_error("config", "rejected: %s", msg);
			rc = cfg_store_reject(ks->store, &e->errors[i]);
			if (rc < 0)
				return rc;
		}
		return 0;
	case KUBE_EVENT_DELETE:
		if (in->cfg_kind >= 0)
			return cfg_store_delete(ks->store, (enum cfg_kind)in->cfg_kind, e->ns, e->name);
		kube_source__key(key, e->ns, e->name);
		{
			struct kube_record *old = kube_map_del(&ks->records[e->res], key);
			if (!old)
				return 0;
			kube_record_free(old);
			ks->records_generation++;
			return 1;
		}
	}
	return 0;
}

int kube_source_handle(struct kube_source *ks)
{
	struct kube_event *e = kube_watch_take(ks->watch), *n;
	int changed = 0, rc = 0;

	for (; e; e = n) {
		int r;
		n = e->next;
		r = kube_source__apply(ks, e);
		if (r > 0)
			changed += r;
		else if (r < 0 && rc == 0)
			rc = r;
		kube_event_free(e);
	}
	if (rc < 0)
		log_error("kube", "applying changes: %s", mesh_strerror(rc));
	return rc < 0 && !changed ? rc : changed;
}

const struct kube_record *kube_source_get(const struct kube_source *ks, enum kube_res res, const char *ns,
					  const char *name)
{
	char key[KUBE_SOURCE__KEY_MAX];

	if ((unsigned)res >= KUBE_RES_COUNT)
		return NULL;
	kube_source__key(key, ns, name);
	return kube_map_get(&ks->records[res], key);
}

size_t kube_source_count(const struct kube_source *ks, enum kube_res res)
{
	return (unsigned)res < KUBE_RES_COUNT ? ks->records[res].n : 0;
}

int kube_source_foreach(const struct kube_source *ks, enum kube_res res,
			int (*fn)(void *ctx, const struct kube_record *r), void *ctx)
{
	struct kube_map_entry *it = NULL;
	int rc;

	if ((unsigned)res >= KUBE_RES_COUNT)
		return 0;
	while ((it = kube_map_next(&ks->records[res], it))) {
		rc = fn(ctx, it->val);
		if (rc)
			return rc;
	}
	return 0;
}

uint64_t kube_source_records_generation(const struct kube_source *ks)
{
	return ks->records_generation;
}
