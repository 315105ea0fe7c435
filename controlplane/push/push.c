/*
 * push.c - the push stage (see push.h): one debounce for every source, then
 * store -> model -> generators -> ADS server, on the config thread.
 *
 * Before this stage the file source debounced inotify events itself and
 * main.c debounced Kubernetes changes again; now both report here and one
 * window decides.  The file source is read only when the window closes,
 * which keeps the property its own debounce had: a file being written is
 * not parsed before the writes have been quiet for --debounce-after.
 *
 * Per-proxy keys (see push.h) live in a list owned by the config thread:
 * each holds its workload (flavour, namespace, labels), every name asked
 * for it (capped), the set last built and the newest request it answers.
 * A rebuilt set equal to the previous one (same names and hashes) is not
 * published again: the xDS thread would find nothing to send.
 */
#include "controlplane/push/push.h"

#include "common/hash.h"
#include "common/log.h"
#include "common/queue.h"
#include "controlplane/debounce/debounce.h"
#include "controlplane/file/source.h"
#include "controlplane/gen/gen.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/model/model.h"
#include "controlplane/model/policy.h"
#include "controlplane/xds/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE "push"
/* Names cached per key (the xDS side asks at most as many per key). */
#define PUSH_MAX_PROXY_NAMES 1024
/* Listener conflicts remembered per key for the pilot_conflict_* gauges;
 * past it a key's further conflicts are logged but not counted. */
#define PUSH_MAX_KEY_CONFLICTS 32

/* One listener conflict of a key's last build: its kind and the hash of
 * what istiod keys it by (listener name, or the proxy). */
struct push__conflict {
	enum gen_conflict kind;
	uint64_t h;
};

struct push__name {
	enum xds_type type;
	char *name;
};

struct push__key {
	struct push__key *next;
	char *key;
	enum xds_flavour flavour;
	char *ns;
	struct cfg_labels *labels;   /* never NULL */
	char *sa;                    /* service account; NULL: unknown */
	char *ip;                    /* NULL: unknown or not part of the key */
	char *locality;              /* Node.locality; NULL: unknown */
	bool tproxy;                 /* INTERCEPTION_MODE TPROXY (part of the key) */
	bool whole;                  /* the set is the whole config (XDS_PROXY_WANT_ALL) */
	struct push__name *names;
	size_t n, cap;
	struct xds_snapshot *snap;   /* last built; NULL before the first build */
	uint64_t asked;              /* newest request taken */
	uint64_t answered;           /* newest request a published set answers */
	bool dirty;                  /* names added since the last build */
	struct push__conflict conflicts[PUSH_MAX_KEY_CONFLICTS]; /* of the last whole build */
	size_t n_conflicts;
	/* the Sidecar that scoped the last build (sidecar flavour): its
	 * "ns/name" (NULL: none) and content hash, to log a change of
	 * selection once rather than on every push */
	char *sidecar_id;
	uint64_t sidecar_hash;
	size_t sidecar_n;            /* how many Sidecars competed at the winning level */
};

struct push_stage {
	struct push_stage_config cfg;
	struct xds_server *xds;      /* borrowed; NULL: build only */
	struct debounce window;
	bool files_moved;            /* read the file source when the window closes */
	bool store_changed;          /* the store changed under us (Kubernetes) */
	struct gen_cache *gen_cache; /* encoded resources kept across pushes */
	struct gen_sidecar_cache *sc_cache; /* sidecar CDS/EDS shared by the keys of one model */
	/* router (gateway) CDS/EDS shared the same way: a cache serves one
	 * profile, so routers have their own (set by push__build_all_default) */
	struct gen_sidecar_cache *gw_cache;
	uint64_t builds;
	uint64_t whole_builds;
	/* verify mode (cfg.gen_cache_verify): sidecar configs compared with
	 * an uncached build in this push, and those that differed */
	size_t verify_compared, verify_mismatched;
	uint64_t rejections_counted;
	/* hashes of the proxyless findings logged by the last generation and
	 * this one: a finding is logged when it is new, not on every push */
	uint64_t *found_prev, *found_cur;
	size_t n_found_prev, n_found_cur, cap_found_cur;
	struct mesh_queue reqs;      /* xDS thread -> here: struct xds_proxy_req */
	struct push__key *keys;
	size_t nkeys;
	struct mesh_config *mesh;    /* the mesh config every build uses; NULL: Istio's defaults */
	struct gen_notes notes;      /* push__notes with the conflict counter, ctx this stage */
	struct push__key *building;  /* the key being built (its conflicts); NULL: none */
	int64_t read_ns;             /* the file source's reload before this build (the log line) */

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

static const struct gen_notes push__notes = { push__gen_note, NULL, NULL };

/* A listener conflict of the key being built, kept (once per key) for the
 * gauges push__conflict_gauges() sets. */
static void push__gen_conflict(void *ctx, enum gen_conflict kind, const char *key)
{
	struct push_stage *p = ctx;
	struct push__key *k = p->building;
	uint64_t h;
	size_t i;

	if (!k)
		return;
	/* istiod keys inbound conflicts by node: here the key stands for it */
	if (!key)
		key = k->key;
	h = mesh_hash(key, strlen(key));
	for (i = 0; i < k->n_conflicts; i++)
		if (k->conflicts[i].kind == kind && k->conflicts[i].h == h)
			return;
	if (k->n_conflicts < PUSH_MAX_KEY_CONFLICTS)
		k->conflicts[k->n_conflicts++] = (struct push__conflict){ kind, h };
}

static int push__conflict_cmp(const void *x, const void *y)
{
	const struct push__conflict *a = x, *b = y;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return a->h < b->h ? -1 : a->h > b->h;
}

/* pilot_conflict_*: the distinct conflicts of every key's last build, as
 * istiod's push context counts distinct keys per metric.  Out of memory:
 * the gauges keep their last values. */
static void push__conflict_gauges(struct push_stage *p)
{
	struct push__conflict *all;
	uint64_t counts[2] = { 0, 0 };
	struct push__key *k;
	size_t n = 0, i;

	for (k = p->keys; k; k = k->next)
		n += k->n_conflicts;
	all = calloc(n ? n : 1, sizeof(*all));
	if (!all)
		return;
	n = 0;
	for (k = p->keys; k; k = k->next)
		for (i = 0; i < k->n_conflicts; i++)
			all[n++] = k->conflicts[i];
	qsort(all, n, sizeof(*all), push__conflict_cmp);
	for (i = 0; i < n; i++)
		if ((i == 0 || push__conflict_cmp(&all[i - 1], &all[i]) != 0) && (unsigned)all[i].kind < 2)
			counts[all[i].kind]++;
	free(all);
	_Static_assert(GEN_CONFLICT_INBOUND == 0 && GEN_CONFLICT_OUTBOUND_TCP_OVER_TCP == 1,
		       "counts[] is indexed by enum gen_conflict");
	metrics_conflicts_set(METRICS_CONFLICT_INBOUND, counts[GEN_CONFLICT_INBOUND]);
	metrics_conflicts_set(METRICS_CONFLICT_OUTBOUND_TCP_OVER_TCP, counts[GEN_CONFLICT_OUTBOUND_TCP_OVER_TCP]);
}

/* What proxyless clients do not get of an object (gen_profile_check):
 * logged as the object's warning when it first appears, not again on
 * every config generation while it stays (an operator reads the log for
 * what changed); /debug/configz and meshctl validate list them all. */
static void push__finding(void *ctx, const struct cfg_error *e)
{
	struct push_stage *p = ctx;
	char line[1024];
	uint64_t h;
	size_t i;
	bool seen = false;

	cfg_error_format(e, line, sizeof(line));
	h = mesh_hash(line, strlen(line));
	for (i = 0; i < p->n_found_prev && !seen; i++)
		seen = p->found_prev[i] == h;
	if (p->n_found_cur == p->cap_found_cur) {
		size_t cap = p->cap_found_cur ? 2 * p->cap_found_cur : 16;
		uint64_t *v = realloc(p->found_cur, cap * sizeof(*v));

		if (v) {
			p->found_cur = v;
			p->cap_found_cur = cap;
		}
	}
	if (p->n_found_cur < p->cap_found_cur)
		p->found_cur[p->n_found_cur++] = h;
	if (!seen)
		log_warn("config", "%s", line);
}

/* A generation's findings become the ones the next compares with. */
static void push__findings_rotate(struct push_stage *p)
{
	free(p->found_prev);
	p->found_prev = p->found_cur;
	p->n_found_prev = p->n_found_cur;
	p->found_cur = NULL;
	p->n_found_cur = p->cap_found_cur = 0;
}

/* The default per-proxy builder: the inbound listeners of xDS-enabled
 * gRPC servers (only the proxyless flavour has a generator yet). */
static int push__build_default(void *ctx, const struct model *m, const struct push_workload *w, enum xds_type t,
			       const char *name, uint8_t **data, size_t *len)
{
	struct gen_workload gw = { w->ns, w->labels };

	(void)ctx;
	if (t != XDS_LISTENER || w->flavour != XDS_FLAVOUR_PROXYLESS)
		return -ENOENT;
	return gen_inbound_listener(m, &gen_profile_proxyless, &gw, name, &push__notes, data, len);
}

/* Whether sealed sets a and b hold the same names with the same bytes. */
static bool push__same_bytes(const struct xds_snapshot *a, const struct xds_snapshot *b)
{
	size_t i;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		if (a->sets[t].n != b->sets[t].n)
			return false;
		for (i = 0; i < a->sets[t].n; i++) {
			const struct xds_resource *x = a->sets[t].v[i], *y = b->sets[t].v[i];

			if (strcmp(x->name, y->name) != 0 || x->len != y->len || memcmp(x->data, y->data, x->len) != 0)
				return false;
		}
	}
	return true;
}

/* The default whole builder: a router's config (gen/gateway.c), or a
 * sidecar's config (gen/sidecar.c), scoped
 * by the Sidecar object push__key_build() selected (w->sidecar).  In
 * verify mode (MESHD_GEN_CACHE_VERIFY) the shared groups must give what a
 * build without them gives, byte for byte. */
static int push__build_all_default(void *ctx, const struct model *m, const struct push_workload *w,
				   struct xds_snapshot **out)
{
	struct push_stage *p = ctx;
	struct gen_workload gw = { w->ns, w->labels };
	struct gen_node node = { w->ip, w->service_account, NULL, w->locality, w->tproxy };
	struct gen_sidecar_scope scope;
	struct xds_snapshot *plain = NULL;
	int rc;

	*out = NULL;
	if (w->flavour == XDS_FLAVOUR_ROUTER) {
		/* a gateway's config (gen/gateway.c): the Gateways selecting its labels */
		if (!p->gw_cache)
			p->gw_cache = gen_sidecar_cache_new(); /* NULL: every key builds it all */
		return gen_gateway_snapshot_cached(p->gw_cache, m, &gen_profile_router, &gw, &node, &p->notes, out);
	}
	if (w->flavour != XDS_FLAVOUR_SIDECAR)
		return -ENOENT;
	if (!p->sc_cache)
		p->sc_cache = gen_sidecar_cache_new(); /* NULL: every key builds it all */
	/* a Sidecar's own outboundTrafficPolicy wins over the mesh config's */
	rc = w->sidecar ? gen_sidecar_scope_from_config(w->sidecar, gen_mesh_outbound(m), &scope) : 0;
	if (rc < 0)
		return rc;
	if (w->sidecar)
		node.scope = &scope;
	rc = gen_sidecar_snapshot_cached(p->sc_cache, m, &gen_profile_sidecar, &gw, &node, &p->notes, out);
	if (rc == 0 && p->cfg.gen_cache_verify &&
	    gen_sidecar_snapshot(m, &gen_profile_sidecar, &gw, &node, NULL, &plain) == 0) {
		/* (a failed rebuild: the cached one stands) */
		p->verify_compared++;
		if (!push__same_bytes(*out, plain)) {
			p->verify_mismatched++;
			log_error(SCOPE, "gen cache verify: the sidecar config of %.200s in %.200s differs from a build "
					 "without the shared groups (a share key misses an input); serving the rebuilt one",
				  w->ip ? w->ip : "?", w->ns ? w->ns : "?");
			xds_snapshot_unref(*out);
			*out = plain;
			plain = NULL;
		}
		xds_snapshot_unref(plain);
	}
	if (w->sidecar)
		gen_sidecar_scope_cleanup(&scope);
	return rc;
}

/* Which Sidecar scopes k's workload in m (Istio's rule, policy.h); a change
 * of selection (another object, an edit, a deletion) is logged once, and
 * several candidates of one level with a warning naming the winner. */
static const struct cfg_object *push__sidecar_for(struct push__key *k, const struct model *m)
{
	const struct cfg_object *o;
	size_t n = 0;
	char id[512];

	if (k->flavour != XDS_FLAVOUR_SIDECAR)
		return NULL;
	o = model_sidecar_select(m, k->ns, k->labels, &n);
	if (o)
		snprintf(id, sizeof(id), "%s/%s", o->ns, o->name);
	/* unchanged winner and competition: nothing to say (a Sidecar added
	 * beside the winner that loses to it is still worth a warning) */
	if (o ? (k->sidecar_id && strcmp(k->sidecar_id, id) == 0 && k->sidecar_hash == o->hash && k->sidecar_n == n)
	      : !k->sidecar_id)
		return o;
	k->sidecar_n = n;
	free(k->sidecar_id);
	k->sidecar_id = o ? strdup(id) : NULL;
	k->sidecar_hash = o ? o->hash : 0;
	/* the workload as "ns{k=v,...}" (the key itself is length-prefixed) */
	{
		char wl[512];
		size_t i, off;

		off = (size_t)snprintf(wl, sizeof(wl), "%s{", k->ns ? k->ns : "default");
		for (i = 0; i < k->labels->n && off < sizeof(wl); i++)
			off += (size_t)snprintf(wl + off, sizeof(wl) - off, "%s%s=%s", i ? "," : "", k->labels->v[i].key,
						k->labels->v[i].value);
		if (off < sizeof(wl))
			snprintf(wl + off, sizeof(wl) - off, "}");
		if (o && n > 1)
			log_warn(SCOPE, "%zu Sidecars apply to sidecar workload %s; Istio takes one: %s (the oldest, then by "
				 "name)", n, wl, id);
		else
			log_info(SCOPE, "sidecar workload %s: scoped by %s", wl, o ? id : "no Sidecar (every service)");
	}
	return o;
}

static void push__key_free(struct push__key *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		free(k->names[i].name);
	free(k->names);
	free(k->key);
	free(k->ns);
	free(k->sa);
	free(k->ip);
	free(k->sidecar_id);
	free(k->locality);
	if (k->labels) {
		for (i = 0; i < k->labels->n; i++) {
			free(k->labels->v[i].key);
			free(k->labels->v[i].value);
		}
		free(k->labels->v);
		free(k->labels);
	}
	xds_snapshot_unref(k->snap);
	free(k);
}

static struct push__key **push__key_find(struct push_stage *p, const char *key)
{
	struct push__key **pp;

	for (pp = &p->keys; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			return pp;
	return NULL;
}

/* Whether sets a and b hold the same resources (names and hashes). */
static bool push__same_set(const struct xds_snapshot *a, const struct xds_snapshot *b)
{
	size_t i;
	int t;

	if (!a || !b)
		return false;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		if (a->sets[t].n != b->sets[t].n)
			return false;
		for (i = 0; i < a->sets[t].n; i++)
			if (a->sets[t].v[i] != b->sets[t].v[i] && /* one object (push__adopt, shared groups) */
			    (a->sets[t].v[i]->hash != b->sets[t].v[i]->hash ||
			     strcmp(a->sets[t].v[i]->name, b->sets[t].v[i]->name) != 0))
				return false;
	}
	return true;
}

/*
 * Where snap (sealed, not yet shared) has a resource with the same name
 * and hash as from, take from's object instead of its own copy: a
 * sidecar set is rebuilt whole on every change, and each key builds its
 * own route configs and listeners, so without this every generation and
 * every workload of a namespace kept its own copy of identical bytes
 * (twenty 500 KB route configs "8080" per generation at 1,000 services).
 * One object also lets the ADS core find an unchanged resource by
 * pointer.  Both sets are sorted by name.
 */
static void push__adopt(struct xds_snapshot *snap, const struct xds_snapshot *from)
{
	int t;

	if (!from || from == snap)
		return;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		struct xds_resource_set *a = &snap->sets[t];
		const struct xds_resource_set *b = &from->sets[t];
		size_t i = 0, j = 0;

		while (i < a->n && j < b->n) {
			int c = a->v[i] == b->v[j] ? 0 : strcmp(a->v[i]->name, b->v[j]->name);

			if (c < 0) {
				i++;
			} else if (c > 0) {
				j++;
			} else {
				if (a->v[i] != b->v[j] && a->v[i]->hash == b->v[j]->hash && a->v[i]->len == b->v[j]->len &&
				    memcmp(a->v[i]->data, b->v[j]->data, a->v[i]->len) == 0) {
					xds_resource_unref(a->v[i]);
					a->v[i] = xds_resource_ref(b->v[j]);
				}
				i++;
				j++;
			}
		}
	}
}

/* Build every name of k against m.  Returns 1 when the set changed (k->snap
 * is the new one), 0 when it did not, or -ENOMEM (k keeps its old set). */
static int push__key_build(struct push_stage *p, struct push__key *k, const struct model *m)
{
	struct push_workload w = { k->flavour, k->ns, k->labels, k->sa, k->ip, NULL, k->locality, k->tproxy };
	push_build_fn build = p->cfg.build ? p->cfg.build : push__build_default;
	push_build_all_fn build_all = p->cfg.build_all ? p->cfg.build_all : push__build_all_default;
	struct xds_snapshot *snap = NULL;
	struct push__key *o;
	size_t i;
	int rc;

	k->dirty = false;
	if (k->whole) {
		p->whole_builds++;
		w.sidecar = push__sidecar_for(k, m);
		k->n_conflicts = 0;
		p->building = k;
		rc = build_all(p->cfg.build_all ? p->cfg.build_ctx : p, m, &w, &snap);
		p->building = NULL;
		if (rc == -ENOENT && !snap)
			snap = xds_snapshot_new(); /* no generator: an empty set answers */
		if (rc < 0 && rc != -ENOENT) {
			/* the key keeps its previous set (none: its streams wait) */
			log_error(SCOPE, "generating the %s config of %.200s failed: %s", xds_flavour_name(k->flavour),
				  k->ns ? k->ns : "?", mesh_strerror(rc));
			metrics_xds_internal_error();
			xds_snapshot_unref(snap);
			return rc;
		}
		if (!snap)
			return -ENOMEM;
		xds_snapshot_seal(snap);
		/* share with the key's last set, and with another key of the
		 * namespace (the first in the list: built first on a push) */
		push__adopt(snap, k->snap);
		for (o = p->keys; o; o = o->next) {
			if (o != k && o->whole && o->snap && o->flavour == k->flavour &&
			    strcmp(o->ns ? o->ns : "", k->ns ? k->ns : "") == 0) {
				push__adopt(snap, o->snap);
				break;
			}
		}
		goto compare;
	}
	snap = xds_snapshot_new();
	if (!snap)
		return -ENOMEM;
	for (i = 0; i < k->n; i++) {
		uint8_t *data = NULL;
		size_t len = 0;

		rc = build(p->cfg.build_ctx, m, &w, k->names[i].type, k->names[i].name, &data, &len);
		if (rc == 0)
			rc = xds_snapshot_add(snap, k->names[i].type, k->names[i].name, data, len);
		free(data);
		if (rc < 0 && rc != -ENOENT)
			log_warn(SCOPE, "cannot build %s %.200s: %s", xds_type_short(k->names[i].type), k->names[i].name,
				 mesh_strerror(rc));
	}
	xds_snapshot_seal(snap);
compare:
	if (push__same_set(snap, k->snap)) {
		xds_snapshot_unref(snap);
		return 0;
	}
	xds_snapshot_unref(k->snap);
	k->snap = snap;
	return 1;
}

/* One request from the xDS thread (taken). */
static void push__take_request(struct push_stage *p, struct xds_proxy_req *r)
{
	struct push__key **pp = push__key_find(p, r->key), *k;
	struct push__name *v;
	size_t i;

	if (r->kind == XDS_PROXY_RELEASE) {
		if (pp) {
			k = *pp;
			*pp = k->next;
			p->nkeys--;
			push__key_free(k);
		}
		goto out;
	}
	if (pp) {
		k = *pp;
	} else {
		k = calloc(1, sizeof(*k));
		if (!k)
			goto oom;
		/* the request's workload becomes the key's */
		k->key = r->key;
		k->ns = r->ns;
		k->labels = r->labels;
		k->flavour = r->flavour;
		k->sa = r->service_account;
		k->ip = r->ip;
		k->locality = r->locality;
		k->tproxy = r->tproxy;
		r->key = NULL;
		r->ns = NULL;
		r->labels = NULL;
		r->service_account = NULL;
		r->ip = NULL;
		r->locality = NULL;
		k->next = p->keys;
		p->keys = k;
		p->nkeys++;
	}
	if (r->seq > k->asked)
		k->asked = r->seq;
	if (r->kind == XDS_PROXY_WANT_ALL) {
		/* built whole at the next handle (once, however many ask) */
		if (!k->whole || !k->snap)
			k->dirty = true;
		k->whole = true;
		goto out;
	}
	for (i = 0; i < k->n; i++)
		if (k->names[i].type == r->type && strcmp(k->names[i].name, r->name) == 0)
			goto out;
	if (k->n >= PUSH_MAX_PROXY_NAMES)
		goto out; /* answered, absent */
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		v = realloc(k->names, cap * sizeof(*v));
		if (!v)
			goto oom;
		k->names = v;
		k->cap = cap;
	}
	k->names[k->n].type = r->type;
	k->names[k->n].name = r->name;
	r->name = NULL;
	k->n++;
	k->dirty = true;
	goto out;
oom:
	log_error(SCOPE, "out of memory: per-proxy %.200s stays unknown", r->name ? r->name : "");
out:
	xds_proxy_req_free(r);
}

/* Take every queued request.  Returns how many. */
static int push__take_requests(struct push_stage *p)
{
	struct mesh_queue_item *it = mesh_queue_take(&p->reqs), *next;
	int n = 0;

	for (; it; it = next, n++) {
		next = it->next;
		push__take_request(p, mesh_container_of(it, struct xds_proxy_req, qi));
	}
	return n;
}

/* Build the keys that need it against m (all of them when all is set) and
 * publish, with snap for proxyless streams when given, the sets that
 * changed or answer new requests. */
static void push__publish_keys(struct push_stage *p, const struct model *m, bool all, struct xds_snapshot *snap)
{
	struct xds_proxy_set *sets = NULL;
	struct push__key *k;
	size_t n = 0;

	if (p->nkeys) {
		sets = calloc(p->nkeys, sizeof(*sets));
		if (!sets)
			log_error(SCOPE, "out of memory: per-proxy sets wait for the next push");
	}
	p->verify_compared = 0;
	p->verify_mismatched = 0;
	for (k = p->keys; k && sets; k = k->next) {
		int changed = 0;

		if (all || k->dirty)
			changed = push__key_build(p, k, m);
		if (changed < 0 || !k->snap)
			continue;
		if (changed == 0 && k->answered >= k->asked)
			continue;
		k->answered = k->asked;
		sets[n].key = k->key;
		sets[n].snap = k->snap;
		sets[n].answered = k->answered;
		n++;
	}
	if (p->verify_compared)
		log_info(SCOPE, "gen cache verify: %zu sidecar configs rebuilt without the shared groups and compared, "
				"%zu differed", p->verify_compared, p->verify_mismatched);
	if (p->xds && (snap || n))
		xds_server_publish_push(p->xds, XDS_FLAVOUR_PROXYLESS, snap, sets, n);
	free(sets);
	push__conflict_gauges(p);
}

void push_stage_want(void *ctx, struct xds_proxy_req *req)
{
	struct push_stage *p = ctx;

	mesh_queue_push(&p->reqs, &req->qi);
}

int push_stage_fd(const struct push_stage *p)
{
	return mesh_queue_fd(&p->reqs);
}

int push_stage_handle(struct push_stage *p)
{
	int n = push__take_requests(p);

	/* before the first model the first push answers them */
	if (n && p->model)
		push__publish_keys(p, p->model, false, NULL);
	return n;
}

size_t push_stage_proxy_keys(const struct push_stage *p)
{
	return p->nkeys;
}

bool push_stage_has_key(const struct push_stage *p, const char *key)
{
	return push__key_find((struct push_stage *)p, key) != NULL;
}

void push_stage_publish(struct push_stage *p, struct xds_snapshot *snap, struct model *m)
{
	struct model *old;

	(void)push__take_requests(p);
	push__publish_keys(p, m, true, snap);
	model_ref(m);
	pthread_mutex_lock(&p->lock);
	old = p->model;
	p->model = m;
	pthread_mutex_unlock(&p->lock);
	model_unref(old);
}

int push_stage_new(const struct push_stage_config *cfg, struct push_stage **out)
{
	struct push_stage *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	rc = mesh_queue_init(&p->reqs);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->cfg = *cfg;
	p->notes = (struct gen_notes){ push__gen_note, p, push__gen_conflict };
	debounce_init(&p->window, cfg->debounce_after, cfg->debounce_max);
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void push_stage_free(struct push_stage *p)
{
	if (!p)
		return;
	/* the server is stopped: nothing pushes any more */
	(void)push__take_requests(p);
	mesh_queue_cleanup(&p->reqs);
	while (p->keys) {
		struct push__key *k = p->keys;
		p->keys = k->next;
		push__key_free(k);
	}
	gen_cache_free(p->gen_cache);
	gen_sidecar_cache_free(p->sc_cache);
	gen_sidecar_cache_free(p->gw_cache);
	model_unref(p->model);
	meshcfg_unref(p->mesh);
	cfg_snapshot_unref(p->cfg_snap);
	free(p->found_prev);
	free(p->found_cur);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void push_stage_set_server(struct push_stage *p, struct xds_server *xds)
{
	p->xds = xds;
}

bool push_stage_set_mesh(struct push_stage *p, struct mesh_config *mc, int64_t now)
{
	struct mesh_config *old = p->mesh;

	if (old == mc || (old && mc && old->hash == mc->hash))
		return false;
	p->mesh = meshcfg_ref(mc);
	meshcfg_unref(old);
	/* every proxy's config may depend on it: a build like a store change */
	p->store_changed = true;
	debounce_change(&p->window, now);
	metrics_push_trigger(METRICS_TRIGGER_GLOBAL, 1); /* istiod: a MeshConfig change is a global push */
	return true;
}

void push_stage_changed(struct push_stage *p, enum push_change c, int64_t now)
{
	if (c == PUSH_CHANGE_FILES)
		p->files_moved = true;
	else
		p->store_changed = true;
	debounce_change(&p->window, now);
	/* every change rebuilds the whole model here, so it is told apart no
	 * further: istiod's "config" (its endpoint-only pushes are a
	 * narrower kind meshd does not have) */
	metrics_push_trigger(METRICS_TRIGGER_CONFIG, 1);
}

int push_stage_timeout_ms(const struct push_stage *p, int64_t now)
{
	return debounce_timeout_ms(&p->window, now);
}

/* The errors of cfg that reject something: the rest are warnings, which
 * the log line must not call errors (an operator hunts for a rejected
 * object that does not exist). */
static size_t push__n_rejecting(const struct cfg_snapshot *cfg)
{
	size_t i, n = 0;

	for (i = 0; i < cfg->n_errors; i++)
		if (!cfg->errors[i].warning)
			n++;
	return n;
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
	struct model *m;
	struct xds_snapshot *xs = NULL;
	/* where a push's time goes (the "config generation" log line):
	 * model, proxyless generation, per-proxy builds and handing over */
	int64_t t0 = debounce_now(), t_model, t_gen, t_pub;
	int rc, k;

	cfg = cfg_store_snapshot(p->cfg.store);
	if (!cfg)
		return -ENOMEM;
	/* MeshConfig rootNamespace, when written, wins over --root-namespace */
	m = model_build(cfg, p->cfg.domain,
			p->mesh && p->mesh->root_namespace_set ? p->mesh->root_namespace : p->cfg.root_namespace);
	t_model = debounce_now();
	/* Istio's push context init is our model build; its debounce time
	 * runs from the window's first change to this push */
	metrics_pushcontext_init((double)(t_model - t0) / 1e9);
	if (p->window.first)
		metrics_debounce_time((double)(t0 - p->window.first) / 1e9);
	if (!m) {
		metrics_push_context_error();
		cfg_snapshot_unref(cfg);
		return -ENOMEM;
	}
	m->trust_domain = p->cfg.trust_domain; /* options outlive the stage */
	m->mesh = meshcfg_ref(p->mesh);
	gen_profile_check(m, &gen_profile_proxyless, push__finding, p);
	push__findings_rotate(p);
	if (!p->gen_cache) {
		p->gen_cache = gen_cache_new();
		gen_cache_set_verify(p->gen_cache, p->cfg.gen_cache_verify);
	}
	/* without a cache (out of memory) every push is a full build */
	rc = p->gen_cache ? gen_snapshot_cached(p->gen_cache, m, &gen_profile_proxyless, &push__notes, &xs) :
			    gen_snapshot(m, &gen_profile_proxyless, &push__notes, &xs);
	if (rc == 0 && p->gen_cache && p->cfg.gen_cache_verify) {
		struct gen_cache_stats st;
		size_t ver = 0, mis = 0;
		int t;

		gen_cache_get_stats(p->gen_cache, &st);
		for (t = 0; t < XDS_TYPE_COUNT; t++) {
			ver += st.verified[t];
			mis += st.mismatched[t];
		}
		log_info(SCOPE, "gen cache verify: %zu reused proxyless groups rebuilt and compared, %zu differed", ver,
			 mis);
	}
	if (rc < 0) {
		/* keep serving the last good snapshot */
		log_error(SCOPE, "generating xDS failed: %s; proxies keep the previous config", mesh_strerror(rc));
		metrics_xds_internal_error();
		model_unref(m);
		cfg_snapshot_unref(cfg);
		return rc;
	}
	t_gen = debounce_now();
	p->builds++;
	/* this build took every change the store had: only unread files keep
	 * the window open */
	p->store_changed = false;
	if (!p->files_moved)
		debounce_init(&p->window, p->cfg.debounce_after, p->cfg.debounce_max);
	push_stage_publish(p, xs, m);
	xds_snapshot_unref(xs);
	t_pub = debounce_now();

	for (k = 0; k < CFG_KIND_COUNT; k++)
		metrics_config_objects(k, cfg->n_objects[k]);
	push__count_rejections(p, cfg);
	metrics_config_reload();
	metrics_services(m->n_services, cfg->n_objects[CFG_VIRTUAL_SERVICE]);

	pthread_mutex_lock(&p->lock);
	old_cfg = p->cfg_snap;
	p->cfg_snap = cfg;
	pthread_mutex_unlock(&p->lock);
	log_info("meshd", "config generation %llu: %zu services, %zu errors, %zu warnings; built in %.1f ms (model "
		 "%.1f, proxyless %.1f, per-proxy %zu keys %.1f) after reading the changed files in %.1f ms",
		 (unsigned long long)cfg->generation, m->n_services, push__n_rejecting(cfg),
		 cfg->n_errors - push__n_rejecting(cfg), (double)(t_pub - t0) / 1e6,
		 (double)(t_model - t0) / 1e6, (double)(t_gen - t_model) / 1e6, p->nkeys, (double)(t_pub - t_gen) / 1e6,
		 (double)p->read_ns / 1e6);
	p->read_ns = 0;
	model_unref(m); /* the stage holds it */
	cfg_snapshot_unref(old_cfg);
	return 0;
}

void push_stage_refresh_errors(struct push_stage *p)
{
	struct cfg_snapshot *cfg = cfg_store_snapshot(p->cfg.store), *old = NULL;
	uint64_t gen = 0;
	size_t nerr = 0, nwarn = 0;

	if (!cfg)
		return;
	push__count_rejections(p, cfg);
	pthread_mutex_lock(&p->lock);
	if (!p->cfg_snap || p->cfg_snap->generation != cfg->generation) {
		old = p->cfg_snap;
		p->cfg_snap = cfg;
		gen = cfg->generation;
		nerr = push__n_rejecting(cfg);
		nwarn = cfg->n_errors - nerr;
		cfg = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (old)
		log_info("meshd", "config generation %llu: served objects unchanged, %zu errors, %zu warnings",
			 (unsigned long long)gen, nerr, nwarn);
	cfg_snapshot_unref(old);
	cfg_snapshot_unref(cfg);
}

int push_stage_tick(struct push_stage *p, int64_t now)
{
	int changed = 0, rc;

	if (!debounce_take(&p->window, now))
		return 0;
	p->read_ns = 0;
	if (p->files_moved && p->cfg.files) {
		int64_t t0 = debounce_now();

		p->files_moved = false;
		changed = file_source_reload(p->cfg.files);
		p->read_ns = debounce_now() - t0;
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

uint64_t push_stage_whole_builds(const struct push_stage *p)
{
	return p->whole_builds;
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
