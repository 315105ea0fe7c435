/*
 * locality.c - locality load balancing as istiod computes it, for the
 * per-proxy EDS of endpoint.c.
 *
 * Istio (pilot/pkg/networking/core/loadbalancer/loadbalancer.go,
 * pilot/pkg/networking/util): a proxy's ClusterLoadAssignment is
 * rewritten against the proxy's locality when the localityLbSetting in
 * force (the DestinationRule's, else the mesh default, enabled) is not
 * disabled: `distribute` turns into locality weights for the proxy's
 * locality; otherwise, when the cluster has outlier detection (without
 * it Envoy never drops to a lower priority), localities get priorities
 * by proximity (LbPriority), by `failover` region rules, or by
 * `failoverPriority` labels.  This file holds the pieces that do not
 * build messages: locality strings, matching, which setting applies, and
 * the key a proxy's EDS is shared under (gen__eds_variant).
 *
 * Localities are "region/zone/subzone" strings (model.h), "" unknown.
 */
#include "controlplane/gen/gen_int.h"

#include "controlplane/model/policy.h"

#include <stdio.h>
#include <string.h>

#define GEN_LOC_PART_MAX 256
#define GEN_LABEL_REGION  "topology.kubernetes.io/region"
#define GEN_LABEL_ZONE    "topology.kubernetes.io/zone"
#define GEN_LABEL_SUBZONE "topology.istio.io/subzone"
#define GEN_LABEL_LOCALITY "istio-locality"

const char *gen__locality_part(const char *l, int i, char *buf, size_t cap)
{
	const char *s = l ? l : "", *slash;
	size_t len;

	buf[0] = '\0';
	for (; i > 0 && s; i--) {
		slash = strchr(s, '/');
		s = slash ? slash + 1 : NULL;
	}
	if (!s)
		return buf;
	slash = strchr(s, '/');
	len = slash ? (size_t)(slash - s) : strlen(s);
	if (len >= cap)
		len = cap - 1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

int gen__lb_priority(const char *proxy, const char *ep)
{
	char a[GEN_LOC_PART_MAX], b[GEN_LOC_PART_MAX];

	if (strcmp(gen__locality_part(proxy, 0, a, sizeof(a)), gen__locality_part(ep, 0, b, sizeof(b))) != 0)
		return 3;
	if (strcmp(gen__locality_part(proxy, 1, a, sizeof(a)), gen__locality_part(ep, 1, b, sizeof(b))) != 0)
		return 2;
	if (strcmp(gen__locality_part(proxy, 2, a, sizeof(a)), gen__locality_part(ep, 2, b, sizeof(b))) != 0)
		return 1;
	return 0;
}

bool gen__locality_match(const char *l, const char *rule)
{
	char a[GEN_LOC_PART_MAX], r[GEN_LOC_PART_MAX];
	int i;

	for (i = 0; i < 3; i++) {
		gen__locality_part(rule, i, r, sizeof(r));
		/* a missing zone or subzone in the rule matches any; the
		 * region must be given (or "*") */
		if (strcmp(r, "*") == 0 || (i > 0 && r[0] == '\0'))
			continue;
		if (strcmp(gen__locality_part(l, i, a, sizeof(a)), r) != 0)
			return false;
	}
	return true;
}

static const char *gen_label(const struct cfg_labels *labels, const char *key)
{
	size_t i;

	for (i = 0; labels && i < labels->n; i++)
		if (strcmp(labels->v[i].key, key) == 0)
			return labels->v[i].value;
	return NULL;
}

const char *gen__priority_label(const struct cfg_labels *labels, const char *locality, const char *key, char *buf,
				size_t cap)
{
	int part = strcmp(key, GEN_LABEL_REGION) == 0 ? 0 : strcmp(key, GEN_LABEL_ZONE) == 0 ? 1 :
		   strcmp(key, GEN_LABEL_SUBZONE) == 0 ? 2 : -1;

	/* Istio's AugmentLabels: the locality's parts become topology labels */
	if (part >= 0 && gen__locality_part(locality, part, buf, cap)[0])
		return buf;
	return gen_label(labels, key);
}

const char *gen__proxy_locality(const struct gen_node *node, const struct gen_workload *w, struct arena *a)
{
	const struct cfg_labels *l = w ? w->labels : NULL;
	const char *v, *r, *z, *s;
	char *out;
	size_t i;

	if (node && node->locality && node->locality[0])
		return node->locality;
	/* the istio-locality label holds "region.zone.subzone" (a label value
	 * cannot hold '/') */
	if ((v = gen_label(l, GEN_LABEL_LOCALITY)) && v[0]) {
		if (!(out = arena_strdup(a, v)))
			return NULL;
		for (i = 0; out[i]; i++)
			if (out[i] == '.')
				out[i] = '/';
		return out;
	}
	r = gen_label(l, GEN_LABEL_REGION);
	z = gen_label(l, GEN_LABEL_ZONE);
	s = gen_label(l, GEN_LABEL_SUBZONE);
	if (!r && !z && !s)
		return "";
	return arena_printf(a, "%s/%s/%s", r ? r : "", z ? z : "", s ? s : "");
}

bool gen__loc_lb(const struct gen_ctx *g, const struct model_service *svc, uint32_t port, const char *subset,
		 struct gen_loc_lb *out)
{
	struct cfg_traffic_policy pol;
	const struct cfg_load_balancer *lb;

	memset(out, 0, sizeof(*out));
	if (!g->p->locality_lb || !g->locality)
		return false;
	model_dr_policy(gen__dr(g, svc), subset, port, &pol);
	lb = &pol.load_balancer;
	if (lb->set && lb->locality.set) {
		if (lb->locality.enabled == 0)
			return false;
		out->copy = lb->locality;
		out->set = &out->copy;
	}
	out->failover = pol.outlier_detection.set;
	return (out->set && out->set->n_distribute) || out->failover;
}

bool gen__proxy_has_labels(const struct gen_ctx *g)
{
	/* Istio augments the proxy's labels with its locality's topology
	 * labels: a proxy with a locality has labels */
	return gen__workload_labels(g->caller)->n > 0 || (g->locality && g->locality[0]);
}

/* Append "key=value;" of every failoverPriority label of l to the
 * variant (the proxy's values, what the priorities depend on). */
static int gen_variant_labels(const struct gen_ctx *g, const struct cfg_locality_lb *l, struct arena *a,
			      const char **v)
{
	char buf[GEN_LOC_PART_MAX];
	size_t i;

	if (l && l->failover_priority.n &&
	    !(*v = arena_printf(a, "%s%c", *v, gen__proxy_has_labels(g) ? 'L' : 'N')))
		return -ENOMEM;
	for (i = 0; l && i < l->failover_priority.n; i++) {
		const char *key = l->failover_priority.v[i];
		const char *val = gen__priority_label(gen__workload_labels(g->caller), g->locality, key, buf, sizeof(buf));

		if (!(*v = arena_printf(a, "%s%s=%c%s;", *v, key, val ? 'v' : '-', val ? val : "")))
			return -ENOMEM;
	}
	return 0;
}

int gen__eds_variant(const struct gen_ctx *g, const struct model_service *svc, struct arena *a, const char **out)
{
	const struct cfg_object *dr;
	struct gen_loc_lb ll;
	const char *v = NULL;
	bool uniform = true;
	size_t i, j;
	int rc = 0;

	*out = NULL;
	if (!g->p->locality_lb || !g->locality || gen__dns_cluster(g, svc))
		return 0;
	/* endpoints all in one locality: proximity gives every one the same
	 * priority, the bytes every proxy receives (only distribute and
	 * failoverPriority can still differ) */
	for (i = 1; i < svc->n_endpoints && uniform; i++)
		uniform = strcmp(svc->endpoints[i].locality ? svc->endpoints[i].locality : "",
				 svc->endpoints[0].locality ? svc->endpoints[0].locality : "") == 0;
	dr = gen__dr(g, svc);
	for (i = 0; i < svc->n_ports && rc == 0; i++) {
		for (j = 0; j <= (dr ? dr->spec.dr.n_subsets : 0) && rc == 0; j++) {
			const char *subset = j == 0 ? NULL : dr->spec.dr.subsets[j - 1].name;

			if (!gen__loc_lb(g, svc, svc->ports[i].number, subset, &ll))
				continue;
			if (uniform && !(ll.set && (ll.set->n_distribute || ll.set->failover_priority.n)))
				continue;
			if (!v && !(v = arena_printf(a, "l%zu:%s|", strlen(g->locality), g->locality)))
				return -ENOMEM;
			rc = gen_variant_labels(g, ll.set, a, &v);
		}
	}
	*out = v;
	return rc;
}
