/*
 * golden.c - declarative golden xDS cases (tests/xds/NNNN/), as curl's
 * tests/data/testNNNN: config in, resources out, per proxy flavour.
 *
 *   golden CASE_DIR            compare, exit 1 on a difference
 *   GOLDEN_UPDATE=1 golden CASE_DIR   rewrite CASE_DIR/expected/
 *
 * A case directory holds config/ (what `meshd --config-dir` reads),
 * optionally proxies.yaml (per-proxy inbound listener requests, see
 * golden_proxies_load()), sidecar.yaml (the workload of the sidecar
 * flavour, see golden_sidecar_load()), router.yaml (the gateway workload
 * of the router flavour, golden_router_load()) and expected/FLAVOUR/ with lds.json, rds.json,
 * cds.json, eds.json (each a JSON array of the resources of that type,
 * sorted by name) and inbound-N.json (the listener of the N-th proxy of
 * proxies.yaml, 1-based).  CASE/mesh.yaml, when present, is the mesh
 * config (meshd --mesh-config, Istio's MeshConfig).  The config is loaded as meshd loads it (file
 * source -> store -> snapshot -> model_build), resources are rendered with
 * pbjson_render_any() and pretty-printed by golden_pretty(), so the
 * expected files are stable and diffs readable.
 *
 * Every call into the generator API sits in golden_generate(): when the
 * generators are renamed or gain flavours, that is the one function to
 * change.  A flavour it cannot build yet (-ENOTSUP) is skipped.
 */
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/file/source.h"
#include "controlplane/model/model.h"
#include "controlplane/model/policy.h"
#include "controlplane/gen/flavour.h"
#include "controlplane/gen/gen.h"
#include "common/xds/pbjson.h"
#include "controlplane/xds/resource.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define GOLDEN_JSON_MAX    (64u << 20)  /* one rendered file */
#define GOLDEN_PROXIES_MAX 64           /* entries of proxies.yaml */
#define GOLDEN_LABELS_MAX  32           /* labels of one proxy */
#define GOLDEN_DIFF_LINES  6            /* lines of each side shown after the first difference */
#define GOLDEN_DIFF_CONTEXT 3

/* One per-proxy request of proxies.yaml. */
struct golden_proxy {
	char *ns;
	char *listener;
	struct cfg_labels labels;
	struct cfg_kv kv[GOLDEN_LABELS_MAX];
};

/* CASE/sidecar.yaml: the workload the sidecar flavour is built for. */
#define GOLDEN_SCOPE_MAX 32             /* egress hosts, ingress listeners */
struct golden_sidecar {
	bool present;
	struct golden_proxy wl;          /* namespace, labels (listener unused) */
	char *ip, *sa, *locality;
	bool tproxy;                 /* interceptionMode: TPROXY */
	bool has_scope;
	char *egress[GOLDEN_SCOPE_MAX];
	struct cfg_strs egress_hosts;
	struct gen_sidecar_ingress ingress[GOLDEN_SCOPE_MAX];
	char *ingress_strs[GOLDEN_SCOPE_MAX][2];
	struct gen_sidecar_scope scope;
};

/* What golden_generate() produced for one flavour. */
struct golden_output {
	struct xds_snapshot *snap;       /* full build */
	struct xds_snapshot *cached;     /* the same through a fresh incremental cache */
	struct xds_snapshot *warm;       /* and through the cache the previous cases left warm */
	size_t mismatched;               /* groups the warm cache's verify mode found stale */
	/* sidecar: the warm cache kept the case before's groups (an
	 * endpoint-only edit of it) and how many services it rebuilt */
	bool sc_carried;
	size_t sc_changed;
	size_t verified;                 /* groups it reused, rebuilt and compared */
	uint8_t *inbound[GOLDEN_PROXIES_MAX];
	size_t inbound_len[GOLDEN_PROXIES_MAX];
	int inbound_rc[GOLDEN_PROXIES_MAX];
};

/* The files xDS types are rendered to, in enum xds_type order. */
static const enum xds_type golden_types[] = { XDS_LISTENER, XDS_ROUTE, XDS_CLUSTER, XDS_ENDPOINT };

/* ---------------------------------------------------------------- generator API (the one place) */

/* The model of another case (run.sh passes the case before), built first
 * into a cache in verify mode that then builds this case: the case is an
 * edit of that one (services of the same name with other config, services
 * added and deleted), so the groups the warm cache reuses prove the cache
 * keys (each is rebuilt and compared), and its output must equal the full
 * build.  NULL: the warm pass starts from an empty cache. */
static struct model *golden_warm_model;

/* The sidecar config of sc's workload in m (through cache c when not
 * NULL): without a scope given as data, the Sidecar objects of m apply
 * as meshd applies them (push.c).  Returns 0 and *out, or a negative code. */
static int golden_sidecar_build(struct gen_sidecar_cache *c, const struct model *m, const struct golden_sidecar *sc,
				struct xds_snapshot **out)
{
	struct gen_workload w = { .ns = sc->wl.ns, .labels = &sc->wl.labels };
	struct gen_node node = { .ip = sc->ip, .service_account = sc->sa,
				 .scope = sc->has_scope ? &sc->scope : NULL, .locality = sc->locality,
				 .tproxy = sc->tproxy };
	struct gen_sidecar_scope real;
	const struct cfg_object *so = NULL;
	int rc;

	if (!sc->has_scope && (so = model_sidecar_select(m, w.ns, w.labels, NULL)) != NULL) {
		rc = gen_sidecar_scope_from_config(so, gen_mesh_outbound(m), &real);
		if (rc < 0)
			return rc;
		node.scope = &real;
	}
	rc = gen_sidecar_snapshot_cached(c, m, &gen_profile_sidecar, &w, &node, NULL, out);
	if (so)
		gen_sidecar_scope_cleanup(&real);
	return rc;
}

/*
 * Build everything flavour serves for model m: the snapshot, the same
 * snapshot through gen_snapshot_cached() with a fresh cache and with the
 * warm cache, and the inbound listener of each proxy (inbound_rc < 0 when
 * it failed).
 * Returns 0, -ENOTSUP for a flavour not generated yet, or a negative code.
 */
static int golden_generate(const char *flavour, const struct model *m, const struct golden_proxy *px, size_t n_px,
			   const struct golden_sidecar *sc, struct golden_output *out)
{
	const struct gen_profile *p;
	struct gen_cache *cache = NULL, *warm = NULL;
	struct gen_cache_stats st;
	size_t i;
	int rc;

	if (strcmp(flavour, "sidecar") == 0) {
		/* per workload (sidecar.yaml): uncached, through a fresh
		 * sidecar cache, and through one that built the case before
		 * first (golden_warm_model: where that case differs from this
		 * one in endpoints only, the warm cache keeps its groups) */
		struct gen_sidecar_cache *sc_fresh, *sc_warm;
		struct xds_snapshot *tmp = NULL;

		if (!sc->present) {
			printf("sidecar flavour needs CASE/sidecar.yaml\n");
			return -EINVAL;
		}
		rc = golden_sidecar_build(NULL, m, sc, &out->snap);
		if (rc < 0)
			return rc;
		sc_fresh = gen_sidecar_cache_new();
		sc_warm = gen_sidecar_cache_new();
		if (!sc_fresh || !sc_warm) {
			rc = -ENOMEM;
		} else {
			rc = golden_sidecar_build(sc_fresh, m, sc, &out->cached);
			if (rc == 0 && golden_warm_model && golden_sidecar_build(sc_warm, golden_warm_model, sc, &tmp) == 0)
				xds_snapshot_unref(tmp); /* (a case before that fails to build: a cold start) */
			if (rc == 0)
				rc = golden_sidecar_build(sc_warm, m, sc, &out->warm);
			if (rc == 0) {
				struct gen_sidecar_cache_stats sst;

				gen_sidecar_cache_get_stats(sc_warm, &sst);
				out->sc_carried = sst.carried;
				out->sc_changed = sst.services_changed;
			}
		}
		gen_sidecar_cache_free(sc_fresh);
		gen_sidecar_cache_free(sc_warm);
		return rc;
	}
	if (strcmp(flavour, "router") == 0) {
		/* per gateway workload (router.yaml): uncached, through a
		 * fresh cache and through one that built the case before */
		struct gen_workload w = { .ns = sc->wl.ns, .labels = &sc->wl.labels };
		struct gen_node node = { .ip = sc->ip, .service_account = sc->sa, .locality = sc->locality,
					 .tproxy = sc->tproxy };
		struct gen_sidecar_cache *c_fresh, *c_warm;
		struct xds_snapshot *tmp = NULL;

		if (!sc->present) {
			printf("router flavour needs CASE/router.yaml\n");
			return -EINVAL;
		}
		rc = gen_gateway_snapshot(m, &gen_profile_router, &w, &node, NULL, &out->snap);
		if (rc < 0)
			return rc;
		c_fresh = gen_sidecar_cache_new();
		c_warm = gen_sidecar_cache_new();
		if (!c_fresh || !c_warm) {
			rc = -ENOMEM;
		} else {
			rc = gen_gateway_snapshot_cached(c_fresh, m, &gen_profile_router, &w, &node, NULL, &out->cached);
			if (rc == 0 && golden_warm_model &&
			    gen_gateway_snapshot_cached(c_warm, golden_warm_model, &gen_profile_router, &w, &node, NULL,
							&tmp) == 0)
				xds_snapshot_unref(tmp);
			if (rc == 0)
				rc = gen_gateway_snapshot_cached(c_warm, m, &gen_profile_router, &w, &node, NULL, &out->warm);
		}
		gen_sidecar_cache_free(c_fresh);
		gen_sidecar_cache_free(c_warm);
		return rc;
	}
	if (strcmp(flavour, "proxyless") == 0)
		p = &gen_profile_proxyless;
	else
		return -ENOTSUP;
	rc = gen_snapshot(m, p, NULL, &out->snap);
	if (rc < 0)
		goto out;
	cache = gen_cache_new();
	if (!cache) {
		rc = -ENOMEM;
		goto out;
	}
	gen_cache_set_verify(cache, true);
	rc = gen_snapshot_cached(cache, m, p, NULL, &out->cached);
	if (rc < 0)
		goto out;
	warm = gen_cache_new();
	if (!warm) {
		rc = -ENOMEM;
		goto out;
	}
	gen_cache_set_verify(warm, true);
	if (golden_warm_model) {
		rc = gen_snapshot_cached(warm, golden_warm_model, p, NULL, &out->warm);
		if (rc < 0)
			goto out;
		xds_snapshot_unref(out->warm);
		out->warm = NULL;
	}
	rc = gen_snapshot_cached(warm, m, p, NULL, &out->warm);
	if (rc < 0)
		goto out;
	gen_cache_get_stats(warm, &st);
	for (i = 0; i < XDS_TYPE_COUNT; i++) {
		out->mismatched += st.mismatched[i];
		out->verified += st.verified[i];
	}
	for (i = 0; i < n_px; i++) {
		struct gen_workload w = { .ns = px[i].ns, .labels = &px[i].labels };

		out->inbound_rc[i] = gen_inbound_listener(m, p, &w, px[i].listener, NULL, &out->inbound[i],
							  &out->inbound_len[i]);
	}
out:
	gen_cache_free(cache);
	gen_cache_free(warm);
	return rc;
}

static void golden_output_cleanup(struct golden_output *o)
{
	size_t i;

	xds_snapshot_unref(o->snap);
	xds_snapshot_unref(o->cached);
	xds_snapshot_unref(o->warm);
	for (i = 0; i < GOLDEN_PROXIES_MAX; i++)
		free(o->inbound[i]);
	memset(o, 0, sizeof(*o));
}

/* ---------------------------------------------------------------- pretty-printing */

static int golden_indent(struct mesh_buf *b, int depth)
{
	int i;

	mesh_buf_putc(b, '\n');
	for (i = 0; i < depth; i++)
		mesh_buf_puts(b, "  ");
	return b->err;
}

/*
 * Re-indent compact JSON (pbjson's output): two spaces per level, one
 * member or element per line, "key": value, empty {} and [] kept on one
 * line.  Strings are copied as they are (escapes included).  A pure
 * function of its input, so the files are stable.  Returns 0 or a
 * negative code (mesh_buf).
 */
static int golden_pretty(const char *json, size_t len, int depth, struct mesh_buf *b)
{
	bool in_str = false, esc = false;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = json[i];

		if (in_str) {
			mesh_buf_putc(b, c);
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			mesh_buf_putc(b, c);
			break;
		case '{':
		case '[':
			mesh_buf_putc(b, c);
			if (i + 1 < len && (json[i + 1] == '}' || json[i + 1] == ']')) {
				mesh_buf_putc(b, json[++i]);
				break;
			}
			golden_indent(b, ++depth);
			break;
		case '}':
		case ']':
			golden_indent(b, --depth);
			mesh_buf_putc(b, c);
			break;
		case ',':
			mesh_buf_putc(b, c);
			golden_indent(b, depth);
			break;
		case ':':
			mesh_buf_puts(b, ": ");
			break;
		case ' ':
		case '\n':
		case '\t':
		case '\r':
			break;
		default:
			mesh_buf_putc(b, c);
		}
	}
	return b->err;
}

/* Render one encoded resource of type url at depth into b. */
static int golden_render_one(const char *url, const uint8_t *data, size_t len, int depth, struct mesh_buf *b)
{
	struct mesh_buf raw;
	int rc;

	mesh_buf_init(&raw, GOLDEN_JSON_MAX);
	rc = pbjson_render_any(url, data, len, &raw);
	if (rc == 0)
		rc = golden_pretty(raw.data ? raw.data : "", raw.len, depth, b);
	mesh_buf_cleanup(&raw);
	return rc;
}

/* The resources of one type as a JSON array, sorted by name (the
 * snapshot's order). */
static int golden_render_set(const struct xds_snapshot *s, enum xds_type t, struct mesh_buf *b)
{
	const struct xds_resource_set *set = &s->sets[t];
	size_t i;
	int rc = 0;

	if (set->n == 0)
		return mesh_buf_puts(b, "[]\n");
	mesh_buf_putc(b, '[');
	for (i = 0; i < set->n && rc == 0; i++) {
		golden_indent(b, 1);
		rc = golden_render_one(xds_type_url(t), set->v[i]->data, set->v[i]->len, 1, b);
		if (i + 1 < set->n)
			mesh_buf_putc(b, ',');
	}
	if (rc == 0) {
		mesh_buf_puts(b, "\n]\n");
		rc = b->err;
	}
	return rc;
}

/* ---------------------------------------------------------------- files */

static int golden_read(const char *path, char **data, size_t *len)
{
	struct mesh_buf b;
	char chunk[8192];
	FILE *f = fopen(path, "rb");
	size_t n;
	int rc = 0;

	*data = NULL;
	*len = 0;
	if (!f)
		return -errno;
	mesh_buf_init(&b, GOLDEN_JSON_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && rc == 0)
		rc = mesh_buf_append(&b, chunk, n);
	if (rc == 0 && ferror(f))
		rc = -EIO;
	fclose(f);
	if (rc == 0)
		*data = mesh_buf_take(&b, len);
	mesh_buf_cleanup(&b);
	if (rc == 0 && !*data) {
		*data = calloc(1, 1);
		if (!*data)
			rc = -ENOMEM;
	}
	return rc;
}

static int golden_write(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (!f)
		return -errno;
	if (fwrite(data, 1, len, f) != len)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}

/* Split text into lines (pointers into text, no terminators).  *lines is
 * malloc'd (the caller frees); returns the count, or -ENOMEM. */
static long golden_lines(const char *text, size_t len, const char ***lines, size_t **lens)
{
	size_t n = 0, pos = 0, cap = 1;
	long k = 0;

	for (pos = 0; pos < len; pos++)
		cap += text[pos] == '\n';
	*lines = calloc(cap, sizeof(**lines));
	*lens = calloc(cap, sizeof(**lens));
	if (!*lines || !*lens)
		return -ENOMEM;
	pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;

		(*lines)[n] = text + pos;
		(*lens)[n++] = l;
		pos += l + 1;
	}
	k = (long)n;
	return k;
}

static bool golden_same_line(const char *a, size_t al, const char *b, size_t bl)
{
	return al == bl && memcmp(a, b, al) == 0;
}

/* Print where expected and actual differ as one unified diff hunk: the
 * lines between the common head and the common tail (at most
 * GOLDEN_DIFF_LINES of each side), with GOLDEN_DIFF_CONTEXT lines of
 * context around them. */
static void golden_diff(const char *path, const char *exp, size_t elen, const char *act, size_t alen)
{
	const char **el = NULL, **al = NULL;
	size_t *ell = NULL, *all = NULL;
	long ne = golden_lines(exp, elen, &el, &ell), na = golden_lines(act, alen, &al, &all);
	long head = 0, tail = 0, from, to, i;

	if (ne < 0 || na < 0) {
		printf("%s: differs (out of memory for the diff)\n", path);
		goto out;
	}
	while (head < ne && head < na && golden_same_line(el[head], ell[head], al[head], all[head]))
		head++;
	while (tail < ne - head && tail < na - head &&
	       golden_same_line(el[ne - 1 - tail], ell[ne - 1 - tail], al[na - 1 - tail], all[na - 1 - tail]))
		tail++;
	from = head > GOLDEN_DIFF_CONTEXT ? head - GOLDEN_DIFF_CONTEXT : 0;
	printf("--- %s (expected)\n+++ %s (generated)\n@@ -%ld +%ld @@\n", path, path, from + 1, from + 1);
	for (i = from; i < head; i++)
		printf(" %.*s\n", (int)ell[i], el[i]);
	to = ne - tail;
	for (i = head; i < to && i < head + GOLDEN_DIFF_LINES; i++)
		printf("-%.*s\n", (int)ell[i], el[i]);
	if (to - head > GOLDEN_DIFF_LINES)
		printf("-... (%ld more)\n", to - head - GOLDEN_DIFF_LINES);
	to = na - tail;
	for (i = head; i < to && i < head + GOLDEN_DIFF_LINES; i++)
		printf("+%.*s\n", (int)all[i], al[i]);
	if (to - head > GOLDEN_DIFF_LINES)
		printf("+... (%ld more)\n", to - head - GOLDEN_DIFF_LINES);
	for (i = na - tail; i < na && i < na - tail + GOLDEN_DIFF_CONTEXT; i++)
		printf(" %.*s\n", (int)all[i], al[i]);
out:
	free(el);
	free(ell);
	free(al);
	free(all);
}

/*
 * Compare (or, when update, write) dir/name with the generated text.
 * Returns 0 when they match (or were written), 1 on a difference, or a
 * negative code.
 */
static int golden_check(const char *dir, const char *name, const struct mesh_buf *gen, bool update)
{
	char path[PATH_MAX];
	char *exp = NULL;
	size_t elen = 0;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	if (update)
		return golden_write(path, gen->data ? gen->data : "", gen->len);
	rc = golden_read(path, &exp, &elen);
	if (rc == -ENOENT) {
		printf("%s: missing (GOLDEN_UPDATE=1 writes it)\n", path);
		return 1;
	}
	if (rc < 0)
		goto out;
	if (elen == gen->len && memcmp(exp, gen->data, elen) == 0) {
		rc = 0;
		goto out;
	}
	golden_diff(path, exp, elen, gen->data ? gen->data : "", gen->len);
	rc = 1;
out:
	free(exp);
	return rc;
}

/* The snapshot and the cached one hold the same bytes. */
static int golden_same_snapshots(const struct xds_snapshot *a, const struct xds_snapshot *b)
{
	int t;
	size_t i;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		if (a->sets[t].n != b->sets[t].n) {
			printf("gen_snapshot_cached: %zu %s resources, gen_snapshot: %zu\n", b->sets[t].n,
			       xds_type_short((enum xds_type)t), a->sets[t].n);
			return 1;
		}
		for (i = 0; i < a->sets[t].n; i++) {
			const struct xds_resource *x = a->sets[t].v[i], *y = b->sets[t].v[i];

			if (strcmp(x->name, y->name) != 0 || x->len != y->len ||
			    (x->len && memcmp(x->data, y->data, x->len) != 0)) {
				printf("gen_grpc_snapshot_cached: %s %s differs from gen_grpc_snapshot\n",
				       xds_type_short((enum xds_type)t), x->name);
				return 1;
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- proxies.yaml */

static char *golden_scalar(yaml_document_t *doc, yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	(void)doc;
	return strndup((const char *)n->data.scalar.value, n->data.scalar.length);
}

static void golden_proxies_free(struct golden_proxy *px, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		free(px[i].ns);
		free(px[i].listener);
		for (j = 0; j < px[i].labels.n; j++) {
			free(px[i].kv[j].key);
			free(px[i].kv[j].value);
		}
	}
}

/* One mapping of proxies.yaml into p; 0 or -EINVAL (message printed). */
static int golden_proxy_parse(yaml_document_t *doc, yaml_node_t *map, struct golden_proxy *p)
{
	yaml_node_pair_t *kv;

	if (map->type != YAML_MAPPING_NODE)
		return -EINVAL;
	p->labels.v = p->kv;
	for (kv = map->data.mapping.pairs.start; kv < map->data.mapping.pairs.top; kv++) {
		yaml_node_t *k = yaml_document_get_node(doc, kv->key);
		yaml_node_t *v = yaml_document_get_node(doc, kv->value);
		const char *key = k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";

		if (strcmp(key, "namespace") == 0 && !p->ns) {
			p->ns = golden_scalar(doc, v);
		} else if (strcmp(key, "listener") == 0 && !p->listener) {
			p->listener = golden_scalar(doc, v);
		} else if (strcmp(key, "labels") == 0 && v && v->type == YAML_MAPPING_NODE) {
			yaml_node_pair_t *l;

			for (l = v->data.mapping.pairs.start; l < v->data.mapping.pairs.top; l++) {
				if (p->labels.n == GOLDEN_LABELS_MAX)
					return -EINVAL;
				p->kv[p->labels.n].key = golden_scalar(doc, yaml_document_get_node(doc, l->key));
				p->kv[p->labels.n].value = golden_scalar(doc, yaml_document_get_node(doc, l->value));
				p->labels.n++;
				if (!p->kv[p->labels.n - 1].key || !p->kv[p->labels.n - 1].value)
					return -EINVAL;
			}
		} else {
			fprintf(stderr, "proxies.yaml: unknown or repeated key \"%s\"\n", key);
			return -EINVAL;
		}
	}
	return p->listener ? 0 : -EINVAL;
}

/*
 * CASE/proxies.yaml: a sequence of
 *   - namespace: NS                 (default "default")
 *     labels: {KEY: VALUE, ...}     (optional)
 *     listener: xds.istio.io/grpc/lds/inbound/IP:PORT
 * Fills px (cap GOLDEN_PROXIES_MAX) and *n; a missing file is 0 proxies.
 * Returns 0 or a negative code.
 */
static int golden_proxies_load(const char *case_dir, struct golden_proxy *px, size_t *n)
{
	char path[PATH_MAX];
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *item;
	yaml_node_item_t *it;
	FILE *f;
	int rc = 0;

	*n = 0;
	snprintf(path, sizeof(path), "%s/proxies.yaml", case_dir);
	f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(stderr, "%s: %s\n", path, parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		fclose(f);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_SEQUENCE_NODE) {
		fprintf(stderr, "%s: expected a sequence of proxies\n", path);
		rc = -EINVAL;
		goto out;
	}
	for (it = root->data.sequence.items.start; it < root->data.sequence.items.top; it++) {
		if (*n == GOLDEN_PROXIES_MAX) {
			rc = -EINVAL;
			goto out;
		}
		item = yaml_document_get_node(&doc, *it);
		rc = item ? golden_proxy_parse(&doc, item, &px[*n]) : -EINVAL;
		(*n)++;
		if (rc < 0) {
			fprintf(stderr, "%s: proxy %zu: needs listener, optional namespace and labels\n", path, *n);
			goto out;
		}
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

/* ---------------------------------------------------------------- sidecar.yaml */

static void golden_sidecar_free(struct golden_sidecar *sc)
{
	size_t i;

	golden_proxies_free(&sc->wl, 1);
	free(sc->ip);
	free(sc->sa);
	free(sc->locality);
	for (i = 0; i < GOLDEN_SCOPE_MAX; i++) {
		free(sc->egress[i]);
		free(sc->ingress_strs[i][0]);
		free(sc->ingress_strs[i][1]);
	}
	memset(sc, 0, sizeof(*sc));
}

/* The `sidecar:` block: what a Sidecar resource would say. */
static int golden_scope_parse(yaml_document_t *doc, yaml_node_t *map, struct golden_sidecar *sc)
{
	yaml_node_pair_t *kv;

	if (!map || map->type != YAML_MAPPING_NODE)
		return -EINVAL;
	sc->has_scope = true;
	for (kv = map->data.mapping.pairs.start; kv < map->data.mapping.pairs.top; kv++) {
		yaml_node_t *k = yaml_document_get_node(doc, kv->key);
		yaml_node_t *v = yaml_document_get_node(doc, kv->value);
		const char *key = k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		const char *val = v && v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : "";
		yaml_node_item_t *it;

		if (strcmp(key, "outboundTrafficPolicy") == 0) {
			sc->scope.outbound = strcmp(val, "REGISTRY_ONLY") == 0 ? GEN_OUTBOUND_REGISTRY_ONLY
									      : GEN_OUTBOUND_ALLOW_ANY;
		} else if (strcmp(key, "captureMode") == 0) {
			sc->scope.capture_none = strcmp(val, "NONE") == 0;
		} else if (strcmp(key, "egress") == 0 && v && v->type == YAML_SEQUENCE_NODE) {
			sc->egress_hosts.v = sc->egress;
			sc->scope.egress_hosts = &sc->egress_hosts;
			for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				if (sc->egress_hosts.n == GOLDEN_SCOPE_MAX)
					return -EINVAL;
				sc->egress[sc->egress_hosts.n] = golden_scalar(doc, yaml_document_get_node(doc, *it));
				if (!sc->egress[sc->egress_hosts.n++])
					return -EINVAL;
			}
		} else if (strcmp(key, "ingress") == 0 && v && v->type == YAML_SEQUENCE_NODE) {
			sc->scope.ingress = sc->ingress;
			for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *in = yaml_document_get_node(doc, *it);
				struct gen_sidecar_ingress *g = &sc->ingress[sc->scope.n_ingress];
				yaml_node_pair_t *f;

				if (sc->scope.n_ingress == GOLDEN_SCOPE_MAX || !in || in->type != YAML_MAPPING_NODE)
					return -EINVAL;
				for (f = in->data.mapping.pairs.start; f < in->data.mapping.pairs.top; f++) {
					char *fk = golden_scalar(doc, yaml_document_get_node(doc, f->key));
					char *fv = golden_scalar(doc, yaml_document_get_node(doc, f->value));

					if (!fk || !fv) {
						free(fk);
						free(fv);
						return -EINVAL;
					}
					if (strcmp(fk, "port") == 0) {
						g->port = (uint32_t)strtoul(fv, NULL, 10);
						free(fv);
					} else if (strcmp(fk, "protocol") == 0 && !sc->ingress_strs[sc->scope.n_ingress][0]) {
						g->protocol = sc->ingress_strs[sc->scope.n_ingress][0] = fv;
					} else if (strcmp(fk, "defaultEndpoint") == 0 && !sc->ingress_strs[sc->scope.n_ingress][1]) {
						g->default_endpoint = sc->ingress_strs[sc->scope.n_ingress][1] = fv;
					} else {
						free(fv);
					}
					free(fk);
				}
				sc->scope.n_ingress++;
			}
		} else {
			fprintf(stderr, "sidecar.yaml: unknown sidecar key \"%s\"\n", key);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * CASE/sidecar.yaml: the workload of the sidecar flavour
 *   namespace: NS            labels: {K: V}       ip: 10.0.0.5
 *   serviceAccount: SA       sidecar: {egress: [NS/HOST, ...],
 *     outboundTrafficPolicy: REGISTRY_ONLY, captureMode: NONE,
 *     ingress: [{port: 9080, protocol: HTTP, defaultEndpoint: 127.0.0.1:8080}]}
 * (the sidecar block stands for a Sidecar resource).  Missing file: not
 * present.  Returns 0 or a negative code.
 */
static int golden_workload_load(const char *case_dir, const char *file, struct golden_sidecar *sc);

static int golden_sidecar_load(const char *case_dir, struct golden_sidecar *sc)
{
	return golden_workload_load(case_dir, "sidecar.yaml", sc);
}

/* CASE/router.yaml: the gateway workload of the router flavour, the same
 * keys as sidecar.yaml (namespace, labels -- which Gateways select it --,
 * ip, serviceAccount; no sidecar block). */
static int golden_router_load(const char *case_dir, struct golden_sidecar *rt)
{
	return golden_workload_load(case_dir, "router.yaml", rt);
}

static int golden_workload_load(const char *case_dir, const char *file, struct golden_sidecar *sc)
{
	char path[PATH_MAX];
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_node_pair_t *kv;
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", case_dir, file);
	f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_parser_delete(&parser);
		fclose(f);
		return -EINVAL;
	}
	sc->present = true;
	sc->wl.labels.v = sc->wl.kv;
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		rc = -EINVAL;
		goto out;
	}
	for (kv = root->data.mapping.pairs.start; kv < root->data.mapping.pairs.top && rc == 0; kv++) {
		yaml_node_t *k = yaml_document_get_node(&doc, kv->key);
		yaml_node_t *v = yaml_document_get_node(&doc, kv->value);
		const char *key = k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";

		if (strcmp(key, "ip") == 0 && !sc->ip) {
			sc->ip = golden_scalar(&doc, v);
		} else if (strcmp(key, "locality") == 0 && !sc->locality) {
			sc->locality = golden_scalar(&doc, v);
		} else if (strcmp(key, "serviceAccount") == 0 && !sc->sa) {
			sc->sa = golden_scalar(&doc, v);
		} else if (strcmp(key, "interceptionMode") == 0 && v && v->type == YAML_SCALAR_NODE) {
			/* node metadata INTERCEPTION_MODE */
			const char *m = (const char *)v->data.scalar.value;

			if (strcmp(m, "TPROXY") && strcmp(m, "REDIRECT")) {
				fprintf(stderr, "%s: interceptionMode: REDIRECT or TPROXY, not %s\n", path, m);
				rc = -EINVAL;
			}
			sc->tproxy = strcmp(m, "TPROXY") == 0;
		} else if (strcmp(key, "sidecar") == 0) {
			rc = golden_scope_parse(&doc, v, sc);
		} else if (strcmp(key, "namespace") == 0 && !sc->wl.ns) {
			sc->wl.ns = golden_scalar(&doc, v);
		} else if (strcmp(key, "labels") == 0 && v && v->type == YAML_MAPPING_NODE) {
			yaml_node_pair_t *l;

			for (l = v->data.mapping.pairs.start; l < v->data.mapping.pairs.top; l++) {
				if (sc->wl.labels.n == GOLDEN_LABELS_MAX) {
					rc = -EINVAL;
					break;
				}
				sc->wl.kv[sc->wl.labels.n].key = golden_scalar(&doc, yaml_document_get_node(&doc, l->key));
				sc->wl.kv[sc->wl.labels.n].value = golden_scalar(&doc, yaml_document_get_node(&doc, l->value));
				sc->wl.labels.n++;
			}
		} else {
			fprintf(stderr, "%s: unknown or repeated key \"%s\"\n", path, key);
			rc = -EINVAL;
		}
	}
out:
	if (rc < 0)
		fprintf(stderr, "%s: invalid (see golden_sidecar_load)\n", path);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

/* ---------------------------------------------------------------- one case */

/* Load CASE/config as meshd --config-dir does; the model for the domain
 * "cluster.local", root namespace "istio-system", trust domain
 * "cluster.local" (meshd's defaults), with CASE/mesh.yaml as meshd
 * --mesh-config when present (its rootNamespace then wins, as in meshd). */
static int golden_model(const char *case_dir, struct model **out)
{
	char dir[PATH_MAX];
	struct cfg_store *st = cfg_store_new();
	struct file_source *fs = NULL;
	struct cfg_snapshot *snap = NULL;
	struct mesh_config *mesh = NULL;
	int rc;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/config", case_dir);
	{
		struct file_source_config fc = { .dir = dir, .store = st };

		rc = file_source_new(&fc, &fs);
	}
	if (rc < 0)
		goto out;
	rc = file_source_sync(fs);
	if (rc < 0)
		goto out;
	rc = 0;
	snap = cfg_store_snapshot(st);
	if (!snap) {
		rc = -ENOMEM;
		goto out;
	}
	if (getenv("GOLDEN_VERBOSE")) {
		size_t i;

		for (i = 0; i < snap->n_errors; i++) {
			char msg[1024];

			cfg_error_format(&snap->errors[i], msg, sizeof(msg));
			printf("  config: %s\n", msg);
		}
	}
	snprintf(dir, sizeof(dir), "%s/mesh.yaml", case_dir);
	if (access(dir, F_OK) == 0) {
		char err[MESHCFG_ERR_CAP];

		rc = meshcfg_load_file(dir, &mesh, err, sizeof(err), NULL);
		if (rc < 0) {
			printf("%s\n", err);
			goto out;
		}
	}
	*out = model_build(snap, "cluster.local",
			   mesh && mesh->root_namespace_set ? mesh->root_namespace : "istio-system");
	if (!*out) {
		rc = -ENOMEM;
		goto out;
	}
	(*out)->trust_domain = "cluster.local";
	(*out)->mesh = mesh;
	mesh = NULL;
out:
	meshcfg_unref(mesh);
	cfg_snapshot_unref(snap);
	file_source_free(fs);
	cfg_store_free(st);
	return rc;
}

/* Is name one of the files a flavour with n_px proxies produces? */
static bool golden_produced(const char *name, size_t n_px)
{
	unsigned long k;
	char tail[8];
	size_t i;

	for (i = 0; i < sizeof(golden_types) / sizeof(golden_types[0]); i++) {
		char want[16];

		snprintf(want, sizeof(want), "%s.json", xds_type_short(golden_types[i]));
		if (strcmp(name, want) == 0)
			return true;
	}
	return sscanf(name, "inbound-%lu.%7s", &k, tail) == 2 && strcmp(tail, "json") == 0 && k >= 1 && k <= n_px;
}

/* Files in a flavour directory that the case does not produce (e.g. the
 * inbound-N.json of a proxy taken out of proxies.yaml): removed when
 * updating, reported otherwise.  Returns how many were reported. */
static int golden_extra(const char *dir, size_t n_px, bool update)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];

		if (e->d_name[0] == '.' || golden_produced(e->d_name, n_px) ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
			continue;
		if (update) {
			unlink(path);
		} else {
			printf("%s: not produced by this case (GOLDEN_UPDATE=1 removes it)\n", path);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Check or write one flavour.  Returns the number of failing files, or a
 * negative code; -ENOTSUP when the flavour is not generated yet. */
static int golden_flavour(const char *case_dir, const char *flavour, const struct model *m,
			  const struct golden_proxy *px, size_t n_px, const struct golden_sidecar *sc,
			  const struct golden_sidecar *rt, bool update)
{
	struct golden_output go;
	struct mesh_buf b;
	char dir[PATH_MAX], name[64];
	size_t i, k;
	int rc, failed = 0;

	memset(&go, 0, sizeof(go));
	mesh_buf_init(&b, GOLDEN_JSON_MAX);
	if (strcmp(flavour, "sidecar") == 0 || strcmp(flavour, "router") == 0)
		n_px = 0;               /* proxies.yaml is for xDS-enabled gRPC servers */
	/* the router flavour's workload is router.yaml's */
	rc = golden_generate(flavour, m, px, n_px, strcmp(flavour, "router") == 0 ? rt : sc, &go);
	if (rc < 0)
		goto out;
	snprintf(dir, sizeof(dir), "%s/expected/%s", case_dir, flavour);
	if (update && mkdir(dir, 0777) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	failed += golden_same_snapshots(go.snap, go.cached);
	failed += golden_same_snapshots(go.snap, go.warm);
	if (getenv("GOLDEN_VERBOSE"))
		printf("%s: warm cache: %zu groups reused and verified\n", case_dir, go.verified);
	if (getenv("GOLDEN_VERBOSE") && go.sc_carried)
		printf("%s: warm sidecar cache: the case before's groups kept, %zu services' endpoints changed\n",
		       case_dir, go.sc_changed);
	if (go.mismatched) {
		printf("%s: gen cache verify: %zu groups reused with a key that misses an input\n", case_dir,
		       go.mismatched);
		failed++;
	}
	for (k = 0; k < sizeof(golden_types) / sizeof(golden_types[0]); k++) {
		mesh_buf_reset(&b);
		rc = golden_render_set(go.snap, golden_types[k], &b);
		if (rc < 0)
			goto out;
		snprintf(name, sizeof(name), "%s.json", xds_type_short(golden_types[k]));
		rc = golden_check(dir, name, &b, update);
		if (rc < 0)
			goto out;
		failed += rc;
	}
	for (i = 0; i < n_px; i++) {
		if (go.inbound_rc[i] < 0) {
			printf("%s: proxy %zu: gen_grpc_inbound_listener %s: %s\n", case_dir, i + 1, px[i].listener,
			       mesh_strerror(go.inbound_rc[i]));
			failed++;
			continue;
		}
		mesh_buf_reset(&b);
		rc = golden_render_one(xds_type_url(XDS_LISTENER), go.inbound[i], go.inbound_len[i], 0, &b);
		if (rc == 0)
			rc = mesh_buf_putc(&b, '\n');
		if (rc < 0)
			goto out;
		snprintf(name, sizeof(name), "inbound-%zu.json", i + 1);
		rc = golden_check(dir, name, &b, update);
		if (rc < 0)
			goto out;
		failed += rc;
	}
	failed += golden_extra(dir, n_px, update);
	rc = failed;
out:
	mesh_buf_cleanup(&b);
	golden_output_cleanup(&go);
	return rc;
}

/* The flavours of a case: the directories under expected/, or, when
 * updating a case without any, "proxyless". */
static int golden_case(const char *case_dir, bool update)
{
	struct golden_proxy px[GOLDEN_PROXIES_MAX];
	static struct golden_sidecar sc, rt;
	struct model *m = NULL;
	char dir[PATH_MAX];
	struct dirent **ents = NULL;
	size_t n_px = 0;
	int n_ents = 0, i, rc, failed = 0, checked = 0;

	memset(px, 0, sizeof(px));
	rc = golden_proxies_load(case_dir, px, &n_px);
	if (rc == 0)
		rc = golden_sidecar_load(case_dir, &sc);
	if (rc == 0)
		rc = golden_router_load(case_dir, &rt);
	if (rc < 0)
		goto out;
	rc = golden_model(case_dir, &m);
	if (rc < 0) {
		printf("%s: loading config: %s\n", case_dir, mesh_strerror(rc));
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/expected", case_dir);
	if (update && mkdir(dir, 0777) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	n_ents = scandir(dir, &ents, NULL, alphasort);
	if (n_ents < 0) {
		rc = -errno;
		printf("%s: %s\n", dir, mesh_strerror(rc));
		goto out;
	}
	for (i = 0; i < n_ents; i++) {
		char sub[PATH_MAX];
		struct stat sb;

		if (ents[i]->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, ents[i]->d_name) >= sizeof(sub) ||
		    stat(sub, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		rc = golden_flavour(case_dir, ents[i]->d_name, m, px, n_px, &sc, &rt, update);
		if (rc == -ENOTSUP) {
			printf("%s: flavour %s not generated yet, skipped\n", case_dir, ents[i]->d_name);
			continue;
		}
		if (rc < 0)
			goto out;
		failed += rc;
		checked++;
	}
	if (checked == 0 && update) {
		/* a new case: sidecar when it names a workload, else proxyless;
		 * router too when it names a gateway workload */
		if (!rt.present || sc.present) {
			rc = golden_flavour(case_dir, sc.present ? "sidecar" : "proxyless", m, px, n_px, &sc, &rt, update);
			if (rc < 0)
				goto out;
			failed += rc;
			checked++;
		}
		if (rt.present) {
			rc = golden_flavour(case_dir, "router", m, px, n_px, &sc, &rt, update);
			if (rc < 0)
				goto out;
			failed += rc;
			checked++;
		}
	}
	if (checked == 0) {
		printf("%s: no flavour checked (expected/ holds none this runner generates)\n", case_dir);
		failed++;
	}
	rc = failed;
out:
	for (i = 0; i < n_ents; i++)
		free(ents[i]);
	free(ents);
	model_unref(m);
	golden_proxies_free(px, n_px);
	golden_sidecar_free(&sc);
	golden_sidecar_free(&rt);
	return rc;
}

int main(int argc, char **argv)
{
	const char *upd = getenv("GOLDEN_UPDATE");
	bool update = upd && strcmp(upd, "1") == 0;
	int rc;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: [GOLDEN_UPDATE=1] %s CASE_DIR [WARM_CASE_DIR]\n", argv[0]);
		return 2;
	}
	/* rejected objects are part of some cases; their warnings would only be noise */
	mesh_log_setup(getenv("GOLDEN_VERBOSE") ? "debug" : "error", "text");
	if (argc == 3) {
		rc = golden_model(argv[2], &golden_warm_model);
		if (rc < 0) {
			printf("%s: loading config: %s\n", argv[2], mesh_strerror(rc));
			return 2;
		}
	}
	rc = golden_case(argv[1], update);
	model_unref(golden_warm_model);
	if (rc < 0) {
		printf("%s: %s\n", argv[1], mesh_strerror(rc));
		return 2;
	}
	return rc > 0 ? 1 : 0;
}
