/*
 * push.h - the push stage: from "a source changed" to a published xDS
 * snapshot, one stage for every source.
 *
 * Sources only report changes (push_stage_changed): the file source when
 * inotify saw something move, the Kubernetes source once it applied watch
 * events to the store.  The stage debounces them together (DESIGN.md
 * --debounce-after / --debounce-max: due once changes have been quiet for
 * `after`, or `max` after the first change at the latest; see
 * controlplane/debounce/) and, when due, asks the file source to read what
 * changed into the store (files are read only after the quiet period, so a
 * file is never parsed mid-write), then builds the model, runs the
 * generators (with the encoded-resource cache kept across pushes) and
 * publishes the snapshot to the ADS server.  Bursts from several sources
 * inside one window make one build.
 *
 * Per-proxy resources (ads.h: the inbound listeners of xDS-enabled gRPC
 * servers, and the whole config of each sidecar workload) are built here
 * too, never on the xDS thread.  They are keyed by
 * what they depend on, (flavour, namespace, labels), so replicas of a
 * workload share one encoded set.  The xDS thread posts requests (key and
 * name) with push_stage_want(); the config thread polls push_stage_fd()
 * and push_stage_handle() builds them at once (not debounced) and
 * publishes the key's set back.  Every new model rebuilds every live key
 * (the cache is invalidated by the model generation, not by what changed
 * in it: per-proxy names are few next to the shared snapshot) and
 * publishes the sets that changed with the snapshot; a key whose last
 * stream went (a release from the xDS thread) is dropped.  A sidecar key
 * (XDS_PROXY_WANT_ALL: flavour, namespace, labels, service account,
 * the IP when there are no labels, and the Node's locality when it has
 * one: locality load balancing shapes its EDS) is built whole with
 * gen_sidecar_snapshot(), once per key and model, however many replicas
 * share it.
 *
 * Threads: the config thread owns the stage and makes every call but the
 * getters push_stage_model() / push_stage_config(), which any thread (the
 * debug HTTP threads) may call: they take the stage's lock.
 *
 * Functions return 0 / a count, or a negative code (err.h).
 */
#ifndef MESH_PUSH_H
#define MESH_PUSH_H

#include "common/err.h"
#include "controlplane/config/store.h"
#include "controlplane/xds/ads.h"

#include <stdbool.h>
#include <stdint.h>

struct push_stage;
struct file_source;
struct xds_server;
struct model;
struct mesh_config;

/* The workload per-proxy resources are built for (a key's parts). */
struct push_workload {
	enum xds_flavour flavour;
	const char *ns;              /* NULL: unknown */
	const struct cfg_labels *labels; /* never NULL */
	const char *service_account; /* NULL: unknown */
	const char *ip;              /* the node's IP; NULL: unknown (or not part of the key) */
	/* the Sidecar object that scopes a sidecar workload
	 * (model_sidecar_select() on ns and labels, both part of the key);
	 * NULL: none.  Borrowed from the model being built. */
	const struct cfg_object *sidecar;
	const char *locality;        /* Node.locality "region/zone/subzone"; NULL: unknown */
	bool tproxy;                 /* node metadata INTERCEPTION_MODE is TPROXY */
};

/* Build one per-proxy resource `name` of type t for w from model m into
 * *data (malloc'd; the stage frees it) and *len.  Returns 0, -ENOENT when
 * there is no such resource, or another negative code. */
typedef int (*push_build_fn)(void *ctx, const struct model *m, const struct push_workload *w, enum xds_type t,
			     const char *name, uint8_t **data, size_t *len);
/* Build the whole config of w (a flavour served whole per proxy, ads.h
 * whole_flavours: the sidecar) from m into *out (a sealed snapshot; the
 * stage takes the reference).  Returns 0, -ENOENT when the flavour has no
 * such generator (the key gets an empty set), or another negative code
 * (the key keeps its previous set). */
typedef int (*push_build_all_fn)(void *ctx, const struct model *m, const struct push_workload *w,
				 struct xds_snapshot **out);

struct push_stage_config {
	struct cfg_store *store;
	struct file_source *files;   /* NULL: no file source (Kubernetes) */
	const char *domain;          /* DNS domain of services ("cluster.local") */
	const char *root_namespace;  /* "istio-system" */
	const char *trust_domain;    /* SPIFFE trust domain; outlives the stage */
	int64_t debounce_after;      /* ns; <= 0: 100ms */
	int64_t debounce_max;        /* ns; <= 0: 10s */
	/* per-proxy resources; NULL: gen_inbound_listener() with the
	 * flavour's profile (tests plug in a stub) */
	push_build_fn build;
	void *build_ctx;
	/* whole per-proxy configs; NULL: gen_sidecar_snapshot() with the
	 * sidecar profile for sidecars (tests plug in a stub); ctx build_ctx */
	push_build_all_fn build_all;
	/* Debug mode (meshd: MESHD_GEN_CACHE_VERIFY=1): every push also
	 * rebuilds what the caches reuse and compares the bytes
	 * (gen_cache_set_verify for the proxyless cache; a sidecar config
	 * built with the shared groups against one built without).  A
	 * difference is logged as an error and the rebuilt bytes are served;
	 * each push logs "gen cache verify: ..." with what it compared.
	 * Costs a full build per push. */
	bool gen_cache_verify;
};

/* What a source saw. */
enum push_change {
	/* Something moved under the file source's directory: the stage reads
	 * it (file_source_reload) when the window closes. */
	PUSH_CHANGE_FILES,
	/* The source already changed the store's served objects (Kubernetes
	 * watch events applied). */
	PUSH_CHANGE_STORE,
};

/* A new stage into *out.  Returns 0, -ENOMEM or -errno (eventfd). */
MESH_MUST_CHECK int push_stage_new(const struct push_stage_config *cfg, struct push_stage **out);
/* Free the stage, its model, config snapshot and caches.  Detach it from
 * the server first (xds_server_stop).  NULL is a no-op. */
void push_stage_free(struct push_stage *p);

/* Publish to xds (borrowed; NULL: build only, as the tests do). */
void push_stage_set_server(struct push_stage *p, struct xds_server *xds);

/* Make mc (a reference is taken; NULL: Istio's defaults) the mesh config
 * of every following build (controlplane/config/meshcfg.h: its
 * rootNamespace, when written, wins over root_namespace above), and
 * schedule a build at now like a store change.  Returns false when mc
 * equals the current one (same hash: nothing scheduled). */
bool push_stage_set_mesh(struct push_stage *p, struct mesh_config *mc, int64_t now);

/* A source saw a change at now (CLOCK_MONOTONIC ns, debounce_now()). */
void push_stage_changed(struct push_stage *p, enum push_change c, int64_t now);
/* Milliseconds until a push is due (0: now), -1 when none is pending. */
int push_stage_timeout_ms(const struct push_stage *p, int64_t now);
/* Run a due push: read the file source, then build and publish when served
 * objects changed, or only refresh the error view when they did not.
 * Returns 1 when a snapshot was built and published, 0 when nothing was
 * due or changed, or a negative code (the last good snapshot stays). */
int push_stage_tick(struct push_stage *p, int64_t now);

/* Build and publish the store's current content now, not debounced
 * (start-up, first Kubernetes sync).  Returns 0 or a negative code. */
MESH_MUST_CHECK int push_stage_push(struct push_stage *p);
/* Served objects did not change but rejections may have: refresh the view
 * /debug/configz reads and the rejection counter, without a push. */
void push_stage_refresh_errors(struct push_stage *p);

/* Publish a snapshot built elsewhere for proxyless streams, with the model
 * it came from (references taken): every live per-proxy key is rebuilt
 * from m and published with it.  push_stage_push() ends here; tests call
 * it with hand-made snapshots. */
void push_stage_publish(struct push_stage *p, struct xds_snapshot *snap, struct model *m);

/* The xds_server_config `want` callback (ctx: the stage): queues req for
 * the config thread.  Any thread; never blocks but on the queue's lock. */
void push_stage_want(void *ctx, struct xds_proxy_req *req);
/* The fd to poll for requests (readable while some may be waiting). */
int push_stage_fd(const struct push_stage *p);
/* Take the queued requests: build the asked names of their keys against
 * the current model and publish the keys' sets; drop released keys.
 * Returns the number of requests taken. */
int push_stage_handle(struct push_stage *p);
/* Per-proxy keys cached (tests: no key outlives its last stream). */
size_t push_stage_proxy_keys(const struct push_stage *p);
/* Whether key (xds_proxy_key()) is cached. */
bool push_stage_has_key(const struct push_stage *p, const char *key);

/* Whole per-proxy configs built so far (tests: replicas of one workload
 * share a build; a push builds each live key once). */
uint64_t push_stage_whole_builds(const struct push_stage *p);

/* Snapshots built so far (tests: how many builds a burst caused). */
uint64_t push_stage_builds(const struct push_stage *p);

/* The model and config snapshot last published (a reference each; NULL
 * before the first push).  Any thread. */
struct model *push_stage_model(struct push_stage *p);
struct cfg_snapshot *push_stage_config(struct push_stage *p);

#endif
