/*
 * kube_source.c - the Kubernetes API config source (see kube_source.h).
 *
 * The watch thread does the I/O and the decoding; this side only moves
 * finished objects into the store, one store batch per handle, so handling
 * a batch costs the store's own work and nothing more.
 */
#include "controlplane/kube/kube_source.h"

#include "common/err.h"
#include "common/log.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_config.h"
#include "controlplane/kube/kube_watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kube_source {
	struct cfg_store *store;
	struct kube_client *client;
	struct kube_watch *watch;
	bool synced[KUBE_RES_COUNT];
	bool namespaces_changed;
	bool mesh_changed;
	char *mesh_text;             /* the ConfigMap's mesh key; NULL: no ConfigMap */
};

int kube_source_new(const struct kube_source_config *cfg, struct kube_source **out)
{
	struct kube_source *ks;
	struct kube_config kc;
	char why[KUBE_CONFIG_WHY_MAX] = "";
	int rc;

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
			.mesh_ns = cfg->mesh_ns,
			.max_objects = cfg->max_objects,
		};
		/* without a namespace to watch, the mesh config resource is off
		 * and counts as listed */
		if (!cfg->mesh_ns) {
			wc.resources = ((1u << KUBE_RES_COUNT) - 1) & ~(1u << KUBE_RES_MESH_CONFIG);
			ks->synced[KUBE_RES_MESH_CONFIG] = true;
		}
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
	if (!ks)
		return;
	kube_watch_stop(ks->watch);
	kube_client_free(ks->client);
	free(ks->mesh_text);
	free(ks);
}

bool kube_source_namespaces_changed(struct kube_source *ks)
{
	bool c = ks->namespaces_changed;

	ks->namespaces_changed = false;
	return c;
}

bool kube_source_mesh_config(struct kube_source *ks, char **text)
{
	if (!ks->mesh_changed)
		return false;
	ks->mesh_changed = false;
	*text = ks->mesh_text;
	ks->mesh_text = NULL;
	return true;
}

struct kube_client *kube_source_client(struct kube_source *ks)
{
	return ks->client;
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

/* Record one event in the store's batch; 0 or < 0. */
static int kube_source__apply(struct kube_source *ks, struct kube_event *e)
{
	const struct kube_res_info *in = kube_res_info(e->res);
	size_t i;
	int rc = 0;

	if (e->res == KUBE_RES_NAMESPACE && (e->type == KUBE_EVENT_PUT || e->type == KUBE_EVENT_DELETE))
		ks->namespaces_changed = true;
	if (e->res == KUBE_RES_MESH_CONFIG && (e->type == KUBE_EVENT_PUT || e->type == KUBE_EVENT_DELETE)) {
		/* not a config object: the owner parses it (the last event wins) */
		free(ks->mesh_text);
		ks->mesh_text = e->type == KUBE_EVENT_PUT ? e->text : NULL;
		e->text = NULL;
		ks->mesh_changed = true;
		return 0;
	}
	switch (e->type) {
	case KUBE_EVENT_SYNCED:
		if (!ks->synced[e->res])
			log_info("kube", "%s: synced", in->plural);
		ks->synced[e->res] = true;
		return 0;
	case KUBE_EVENT_PUT:
		for (i = 0; i < e->n_errors; i++) {
			char msg[1024];
			cfg_error_format(&e->errors[i], msg, sizeof(msg));
			log_warn("config", "%s", msg);
		}
		return e->obj ? cfg_store_put(ks->store, e->obj) : 0;
	case KUBE_EVENT_REJECT:
		for (i = 0; i < e->n_errors; i++) {
			char msg[1024];
			cfg_error_format(&e->errors[i], msg, sizeof(msg));
			if (e->errors[i].warning) {
				log_warn("config", "%s", msg);
				continue;
			}
			log_error("config", "rejected: %s", msg);
			rc = cfg_store_reject(ks->store, &e->errors[i]);
			if (rc < 0)
				return rc;
		}
		return 0;
	case KUBE_EVENT_DELETE:
		return cfg_store_delete(ks->store, in->cfg_kind, e->ns, e->name);
	}
	return 0;
}

int kube_source_handle(struct kube_source *ks)
{
	struct kube_event *e = kube_watch_take(ks->watch), *n;
	int changed = 0, rc = 0, r;
	bool began;

	if (!e)
		return 0;
	/* a batch opened by someone else (-EBUSY) takes our writes too */
	began = cfg_store_begin(ks->store) == 0;
	for (; e; e = n) {
		n = e->next;
		r = kube_source__apply(ks, e);
		if (r < 0 && rc == 0)
			rc = r;
		kube_event_free(e);
	}
	if (began)
		changed = cfg_store_commit(ks->store);
	if (changed < 0) {
		rc = changed;
		changed = 0;
	}
	if (rc < 0)
		log_error("kube", "applying changes: %s", mesh_strerror(rc));
	return changed > 0 ? changed : rc;
}
