/*
 * policy.c - Istio's policy rules shared by every generator (policy.h).
 *
 * Moved here from the proxyless generator so that the sidecar and gateway
 * generators read the same rules: DestinationRule merging
 * (model_dr_policy), PeerAuthentication inheritance (model_peer_authn),
 * AuthorizationPolicy selection (model_authz_select) and the "mesh"
 * gateway rule.
 */
#include "controlplane/model/policy.h"

#include <stdio.h>
#include <string.h>

static const struct cfg_labels model_no_labels;

/* ---------------------------------------------------------------- DestinationRule */

static void model_apply_dr_level(struct cfg_traffic_policy *dst, const struct cfg_dr_policy *src, uint32_t port)
{
	struct cfg_retry_budget rb;
	size_t i;

	if (src->policy.retry_budget.set)
		dst->retry_budget = src->policy.retry_budget;
	rb = dst->retry_budget;
	if (src->policy.load_balancer.set)
		dst->load_balancer = src->policy.load_balancer;
	if (src->policy.connection_pool.set)
		dst->connection_pool = src->policy.connection_pool;
	if (src->policy.outlier_detection.set)
		dst->outlier_detection = src->policy.outlier_detection;
	if (src->policy.tls.set)
		dst->tls = src->policy.tls;
	/* A port-level entry replaces every group, set or not (Istio: "port
	 * level policies do not inherit"). */
	for (i = 0; i < src->n_port_level; i++) {
		if (src->port_level[i].port >= 0 && (uint64_t)src->port_level[i].port == port) {
			*dst = src->port_level[i].policy;
			dst->retry_budget = rb; /* not a port-level field: kept (Istio) */
			break;
		}
	}
}

void model_dr_policy(const struct cfg_object *dr, const char *subset, uint32_t port, struct cfg_traffic_policy *out)
{
	const struct cfg_subset *ss;

	memset(out, 0, sizeof(*out));
	if (!dr || dr->kind != CFG_DESTINATION_RULE)
		return;
	model_apply_dr_level(out, &dr->spec.dr.traffic_policy, port);
	if (subset && (ss = model_subset(dr, subset)) != NULL)
		model_apply_dr_level(out, &ss->traffic_policy, port);
}

/* ---------------------------------------------------------------- PeerAuthentication */

enum cfg_mtls_mode model_peer_authn(const struct model *m, const char *ns, const struct cfg_labels *labels,
				    uint32_t port)
{
	const struct cfg_object *mesh = NULL, *nsw = NULL, *wl = NULL;
	const char *root = m->root_namespace ? m->root_namespace : "istio-system";
	enum cfg_mtls_mode mode = CFG_MTLS_PERMISSIVE;
	size_t i, n = m->cfg ? m->cfg->n_objects[CFG_PEER_AUTHENTICATION] : 0;

	if (!ns || !ns[0])
		ns = "default";
	if (!labels)
		labels = &model_no_labels;
	/* objects are sorted by (namespace, name): the first of a level wins */
	for (i = 0; i < n; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_PEER_AUTHENTICATION][i];
		const struct cfg_peer_authentication *pa = &o->spec.pa;
		bool no_selector = !pa->has_selector || pa->selector.n == 0;

		if (no_selector) {
			if (strcmp(o->ns, root) == 0) {
				if (!mesh)
					mesh = o;
			} else if (strcmp(o->ns, ns) == 0 && !nsw) {
				nsw = o;
			}
		} else if (strcmp(o->ns, root) != 0 && strcmp(o->ns, ns) == 0 && !wl &&
			   model_labels_match(&pa->selector, labels)) {
			/* a selector in the root namespace selects nothing, as in Istio */
			wl = o;
		}
	}
	if (mesh && mesh->spec.pa.mode != CFG_MTLS_UNSET)
		mode = mesh->spec.pa.mode;
	if (nsw && nsw->spec.pa.mode != CFG_MTLS_UNSET)
		mode = nsw->spec.pa.mode;
	if (wl) {
		if (wl->spec.pa.mode != CFG_MTLS_UNSET)
			mode = wl->spec.pa.mode;
		for (i = 0; i < wl->spec.pa.n_port_level; i++) {
			const struct cfg_port_mtls *pl = &wl->spec.pa.port_level[i];

			if (pl->port >= 0 && (uint64_t)pl->port == port && pl->mode != CFG_MTLS_UNSET) {
				mode = pl->mode;
				break;
			}
		}
	}
	return mode;
}

/* ---------------------------------------------------------------- Sidecar */

const struct cfg_object *model_sidecar_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
					      size_t *n_candidates)
{
	const struct cfg_object *best[3] = { NULL, NULL, NULL }; /* selector, namespace, root */
	size_t count[3] = { 0, 0, 0 }, i, n = m && m->cfg ? m->cfg->n_objects[CFG_SIDECAR] : 0;
	const char *root = m && m->root_namespace ? m->root_namespace : "istio-system";
	int level;

	if (!ns || !ns[0])
		ns = "default";
	if (!labels)
		labels = &model_no_labels;
	for (i = 0; i < n; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_SIDECAR][i];
		const struct cfg_sidecar *sc = &o->spec.sc;

		if (strcmp(o->ns, ns) == 0) {
			if (sc->has_workload_selector) {
				if (!model_labels_match(&sc->workload_selector, labels))
					continue;
				level = 0;
			} else {
				level = 1;
			}
		} else if (strcmp(o->ns, root) == 0 && !sc->has_workload_selector) {
			/* a root Sidecar with a selector selects only root-namespace
			 * workloads: handled by the branch above */
			level = 2;
		} else {
			continue;
		}
		count[level]++;
		if (!best[level] || cfg_object_older(o, best[level]))
			best[level] = o;
	}
	for (level = 0; level < 3; level++) {
		if (best[level]) {
			if (n_candidates)
				*n_candidates = count[level];
			return best[level];
		}
	}
	if (n_candidates)
		*n_candidates = 0;
	return NULL;
}

bool model_sidecar_imports(const char *egress_host, const char *svc_ns, const char *svc_host, const char *client_ns)
{
	const char *slash = egress_host ? strchr(egress_host, '/') : NULL;
	size_t nl;

	if (!slash || !svc_ns || !svc_host)
		return false;
	if (!client_ns || !client_ns[0])
		client_ns = "default";
	nl = (size_t)(slash - egress_host);
	if (nl == 1 && egress_host[0] == '~')
		return false; /* "~" imports nothing */
	if (nl == 1 && egress_host[0] == '.') {
		if (strcmp(svc_ns, client_ns) != 0)
			return false;
	} else if (!(nl == 1 && egress_host[0] == '*')) {
		if (strlen(svc_ns) != nl || strncmp(svc_ns, egress_host, nl) != 0)
			return false;
	}
	return cfg_host_covers(slash + 1, svc_host, NULL);
}

/* ---------------------------------------------------------------- AuthorizationPolicy */

static bool model_authz_applies(const struct cfg_object *o, const struct cfg_labels *labels)
{
	if (!o->spec.ap.has_selector)
		return true;
	return model_labels_match(&o->spec.ap.selector, labels ? labels : &model_no_labels);
}

size_t model_policy_select(const struct model *m, enum cfg_kind kind, const char *ns,
			   const struct cfg_labels *labels, model_policy_applies_fn applies,
			   const struct cfg_object **out, size_t cap)
{
	struct cfg_object **v;
	size_t n, i, count = 0;
	int pass;

	if (!m || !m->cfg || !ns)
		return 0;
	v = m->cfg->objects[kind];
	n = m->cfg->n_objects[kind];
	/* pass 0: root namespace (mesh-wide), pass 1: the workload's own */
	for (pass = 0; pass < 2; pass++) {
		const char *want = pass == 0 ? m->root_namespace : ns;

		if (!want || (pass == 1 && m->root_namespace && strcmp(ns, m->root_namespace) == 0))
			continue;
		for (i = 0; i < n; i++) {
			if (strcmp(v[i]->ns, want) != 0 || !applies(v[i], labels))
				continue;
			if (count < cap)
				out[count] = v[i];
			count++;
		}
	}
	return count;
}

size_t model_authz_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
			  const struct cfg_object **out, size_t cap)
{
	return model_policy_select(m, CFG_AUTHORIZATION_POLICY, ns, labels, model_authz_applies, out, cap);
}

/* ---------------------------------------------------------------- VirtualService */

bool model_gateways_include_mesh(const struct cfg_strs *gateways)
{
	size_t i;

	if (gateways->n == 0)
		return true;
	for (i = 0; i < gateways->n; i++)
		if (strcmp(gateways->v[i], "mesh") == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- exportTo */

#define MODEL_EXPORT_ANNOTATION "networking.istio.io/exportTo"
#define MODEL_NS_MAX 256

const struct cfg_strs *model_export_default(const struct model *m, int kind)
{
	static char *star[] = { "*" };
	static const struct cfg_strs istio = { star, 1 };
	const struct mesh_config *mc = m ? m->mesh : NULL;

	if (!mc)
		return &istio;
	switch (kind) {
	case CFG_VIRTUAL_SERVICE:
		return &mc->vs_export_to;
	case CFG_DESTINATION_RULE:
		return &mc->dr_export_to;
	case CFG_SERVICE_ENTRY:
	case CFG_K8S_SERVICE:
		return &mc->service_export_to;
	default:
		return &istio;
	}
}

/* Calls fn on each exportTo entry of o (trimmed), or of the mesh config's
 * default for o's kind when o names none; stops when fn returns true.
 * Returns the number of entries visited. */
static size_t model_export_each(const struct model *m, const struct cfg_object *o,
				bool (*fn)(void *ctx, const char *v), void *ctx)
{
	const struct cfg_strs *l = NULL;
	size_t i, n = 0;

	switch (o->kind) {
	case CFG_VIRTUAL_SERVICE:
		l = &o->spec.vs.export_to;
		break;
	case CFG_DESTINATION_RULE:
		l = &o->spec.dr.export_to;
		break;
	case CFG_SERVICE_ENTRY:
		l = &o->spec.se.export_to;
		break;
	case CFG_K8S_SERVICE:
		for (i = 0; i < o->annotations.n; i++) {
			const char *p = o->annotations.v[i].value;

			if (strcmp(o->annotations.v[i].key, MODEL_EXPORT_ANNOTATION) != 0 || !p)
				continue;
			while (*p) {
				char one[MODEL_NS_MAX];
				size_t len = strcspn(p, ","), b = 0, e = len;

				while (b < e && (p[b] == ' ' || p[b] == '\t'))
					b++;
				while (e > b && (p[e - 1] == ' ' || p[e - 1] == '\t'))
					e--;
				if (e > b) {
					snprintf(one, sizeof(one), "%.*s", (int)(e - b), p + b);
					n++;
					if (fn(ctx, one))
						return n;
				}
				p += len;
				if (*p == ',')
					p++;
			}
		}
		if (n)
			return n;
		l = model_export_default(m, o->kind);
		break;
	default:
		return 0;
	}
	if (!l->n)
		l = model_export_default(m, o->kind);
	for (i = 0; i < l->n; i++) {
		n++;
		if (fn(ctx, l->v[i]))
			break;
	}
	return n;
}

struct model__export_scan {
	const char *own, *client;
	bool star, none, own_listed, client_listed;
};

static bool model__export_scan_one(void *ctx, const char *v)
{
	struct model__export_scan *s = ctx;

	if (strcmp(v, "*") == 0)
		s->star = true;
	else if (strcmp(v, "~") == 0)
		s->none = true;
	else if (strcmp(v, ".") == 0 || strcmp(v, s->own) == 0)
		s->own_listed = true;
	if (s->client && strcmp(v, s->client) == 0)
		s->client_listed = true;
	return false;
}

enum model_export model_export_class(const struct model *m, const struct cfg_object *o, const char *client_ns)
{
	struct model__export_scan s = { .own = o->ns, .client = client_ns };
	size_t n;

	if (o->kind == CFG_DESTINATION_RULE && o->spec.dr.has_workload_selector) {
		/* Istio: a workload-scoped rule is private to its namespace */
		if (!client_ns || strcmp(client_ns, o->ns) == 0)
			return client_ns ? MODEL_EXPORT_PRIVATE : MODEL_EXPORT_PUBLIC;
		return MODEL_EXPORT_NONE;
	}
	n = model_export_each(m, o, model__export_scan_one, &s);
	if (n == 0 || s.star)
		return MODEL_EXPORT_PUBLIC;
	if (s.none)
		return MODEL_EXPORT_NONE;
	if (!client_ns)
		return MODEL_EXPORT_PUBLIC;
	if (strcmp(client_ns, o->ns) == 0)
		return s.own_listed ? MODEL_EXPORT_PRIVATE : MODEL_EXPORT_NONE;
	return s.client_listed ? MODEL_EXPORT_NAMED : MODEL_EXPORT_NONE;
}

bool model_export_narrow(const struct model *m, const struct cfg_object *o)
{
	struct model__export_scan s = { .own = o->ns };
	size_t n = model_export_each(m, o, model__export_scan_one, &s);

	if (o->kind == CFG_DESTINATION_RULE && o->spec.dr.has_workload_selector)
		return false;            /* selects workloads of its own namespace: no snapshot-wide meaning */
	return n > 0 && !s.star && !(s.none && n == 1);
}
