/*
 * push.c - the push stage (see push.h): one debounce for every source, then
 * store -> model -> generators -> ADS server, on the config thread.
 *
 * Before this stage the file source debounced inotify events itself and
 * main.c debounced Kubernetes changes again; now both report here and one
 * window decides.  The file source is read only when the window closes,
 * which keeps the property its own debounce had: a file being written is
 * not parsed before the writes have been quiet for --debounce-after.
 */
#include "controlplane/push/push.h"

#include "common/log.h"
#include "controlplane/debounce/debounce.h"
#include "controlplane/file/source.h"
#include "controlplane/gen/gen.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE "push"

struct push_stage {
	struct push_stage_config cfg;
	struct xds_server *xds;      /* borrowed; NULL: build only */
	struct debounce window;
	bool files_moved;            /* read the file source when the window closes */
	bool store_changed;          /* the store changed under us (Kubernetes) */
	struct gen_cache *gen_cache; /* encoded resources kept across pushes */
	uint64_t builds;
	uint64_t rejections_counted;

	pthread_mutex_t lock;        /* guards model and cfg for other threads */
	struct model *model;
	struct cfg_snapshot *cfg_snap;
};

/* What the generators report (they do no I/O themselves) goes to the log. */
static void push__gen_note(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	(void)ctx;
	if (level == GEN_NOTE_ERROR)
		log_error(scope, "%s", msg);
	else
		log_warn(scope, "%s", msg);
}

static const struct gen_notes push__notes = { push__gen_note, NULL };

int push_stage_new(const struct push_stage_config *cfg, struct push_stage **out)
{
	struct push_stage *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	debounce_init(&p->window, cfg->debounce_after, cfg->debounce_max);
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void push_stage_free(struct push_stage *p)
{
	if (!p)
		return;
	gen_cache_free(p->gen_cache);
	model_unref(p->model);
	cfg_snapshot_unref(p->cfg_snap);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void push_stage_set_server(struct push_stage *p, struct xds_server *xds)
{
	p->xds = xds;
}

void push_stage_changed(struct push_stage *p, enum push_change c, int64_t now)
{
	if (c == PUSH_CHANGE_FILES)
		p->files_moved = true;
	else
		p->store_changed = true;
	debounce_change(&p->window, now);
}

int push_stage_timeout_ms(const struct push_stage *p, int64_t now)
{
	return debounce_timeout_ms(&p->window, now);
}

/* Count rejections the store saw since the last call in /metrics. */
static void push__count_rejections(struct push_stage *p, const struct cfg_snapshot *cfg)
{
	if (cfg->total_rejections > p->rejections_counted) {
		metrics_config_rejected(cfg->total_rejections - p->rejections_counted);
		p->rejections_counted = cfg->total_rejections;
	}
}

int push_stage_push(struct push_stage *p)
{
	struct cfg_snapshot *cfg, *old_cfg;
	struct model *m, *old_m;
	struct xds_snapshot *xs = NULL;
	int rc, k;

	cfg = cfg_store_snapshot(p->cfg.store);
	if (!cfg)
		return -ENOMEM;
	m = model_build(cfg, p->cfg.domain, p->cfg.root_namespace);
	if (!m) {
		cfg_snapshot_unref(cfg);
		return -ENOMEM;
	}
	m->trust_domain = p->cfg.trust_domain; /* options outlive the stage */
	if (!p->gen_cache)
		p->gen_cache = gen_cache_new();
	/* without a cache (out of memory) every push is a full build */
	rc = p->gen_cache ? gen_snapshot_cached(p->gen_cache, m, &gen_profile_proxyless, &push__notes, &xs) :
			    gen_snapshot(m, &gen_profile_proxyless, &push__notes, &xs);
	if (rc < 0) {
		/* keep serving the last good snapshot */
		log_error(SCOPE, "generating xDS failed: %s; proxies keep the previous config", mesh_strerror(rc));
		model_unref(m);
		cfg_snapshot_unref(cfg);
		return rc;
	}
	p->builds++;
	/* this build took every change the store had: only unread files keep
	 * the window open */
	p->store_changed = false;
	if (!p->files_moved)
		debounce_init(&p->window, p->cfg.debounce_after, p->cfg.debounce_max);
	if (p->xds)
		xds_server_publish_model(p->xds, XDS_FLAVOUR_PROXYLESS, xs, m);
	xds_snapshot_unref(xs);

	for (k = 0; k < CFG_KIND_COUNT; k++)
		metrics_config_objects(k, cfg->n_objects[k]);
	push__count_rejections(p, cfg);
	metrics_config_reload();

	pthread_mutex_lock(&p->lock);
	old_cfg = p->cfg_snap;
	old_m = p->model;
	p->cfg_snap = cfg;
	p->model = m;
	pthread_mutex_unlock(&p->lock);
	log_info("meshd", "config generation %llu: %zu services, %zu errors", (unsigned long long)cfg->generation,
		 m->n_services, cfg->n_errors);
	model_unref(old_m);
	cfg_snapshot_unref(old_cfg);
	return 0;
}

void push_stage_refresh_errors(struct push_stage *p)
{
	struct cfg_snapshot *cfg = cfg_store_snapshot(p->cfg.store), *old = NULL;
	uint64_t gen = 0;
	size_t nerr = 0;

	if (!cfg)
		return;
	push__count_rejections(p, cfg);
	pthread_mutex_lock(&p->lock);
	if (!p->cfg_snap || p->cfg_snap->generation != cfg->generation) {
		old = p->cfg_snap;
		p->cfg_snap = cfg;
		gen = cfg->generation;
		nerr = cfg->n_errors;
		cfg = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (old)
		log_info("meshd", "config generation %llu: served objects unchanged, %zu errors",
			 (unsigned long long)gen, nerr);
	cfg_snapshot_unref(old);
	cfg_snapshot_unref(cfg);
}

int push_stage_tick(struct push_stage *p, int64_t now)
{
	int changed = 0, rc;

	if (!debounce_take(&p->window, now))
		return 0;
	if (p->files_moved && p->cfg.files) {
		p->files_moved = false;
		changed = file_source_reload(p->cfg.files);
		if (changed < 0) {
			log_error(SCOPE, "reading the config directory: %s", mesh_strerror(changed));
			changed = 0;
		}
	}
	if (changed == 0 && !p->store_changed) {
		push_stage_refresh_errors(p);
		return 0;
	}
	rc = push_stage_push(p);
	return rc < 0 ? rc : 1;
}

uint64_t push_stage_builds(const struct push_stage *p)
{
	return p->builds;
}

struct model *push_stage_model(struct push_stage *p)
{
	struct model *m;

	pthread_mutex_lock(&p->lock);
	m = model_ref(p->model);
	pthread_mutex_unlock(&p->lock);
	return m;
}

struct cfg_snapshot *push_stage_config(struct push_stage *p)
{
	struct cfg_snapshot *s;

	pthread_mutex_lock(&p->lock);
	s = cfg_snapshot_ref(p->cfg_snap);
	pthread_mutex_unlock(&p->lock);
	return s;
}
