/*
 * telemetryz.c - /debug/telemetryz (see telemetryz.h): resolves the
 * workload of the query (node id, or namespace and labels) and renders
 * model_telemetry_for's result with the workload it was computed for.
 */
#include "controlplane/debug/telemetryz.h"

#include "common/json.h"
#include "controlplane/config/store.h"
#include "controlplane/model/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "POD.NS" out of a node id's third field (or the whole id without '~'). */
static int tz__split_id(const char *id, char *pod, size_t podcap, char *ns, size_t nscap)
{
	const char *p = id, *end, *dot;
	int i;

	if (strchr(id, '~')) {
		for (i = 0; i < 2; i++) {
			p = strchr(p, '~');
			if (!p)
				return -EINVAL;
			p++;
		}
	}
	end = strchr(p, '~');
	if (!end)
		end = p + strlen(p);
	dot = memchr(p, '.', (size_t)(end - p));
	if (!dot || dot == p || dot + 1 == end)
		return -EINVAL;
	/* NS ends at the next dot (POD.NS.svc... is not written, but be safe) */
	{
		const char *ns_end = memchr(dot + 1, '.', (size_t)(end - dot - 1));

		if (ns_end)
			end = ns_end;
	}
	if ((size_t)(dot - p) >= podcap || (size_t)(end - dot - 1) >= nscap)
		return -EINVAL;
	snprintf(pod, podcap, "%.*s", (int)(dot - p), p);
	snprintf(ns, nscap, "%.*s", (int)(end - dot - 1), dot + 1);
	return 0;
}

static const struct cfg_object *tz__pod(const struct model *m, const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < m->cfg->n_objects[CFG_K8S_POD]; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_K8S_POD][i];

		if (strcmp(o->ns, ns) == 0 && strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

/* "k=v,k2=v2" into kv (pointing into buf, which it edits). */
static int tz__labels(char *buf, struct cfg_kv *kv, size_t cap, size_t *n)
{
	char *p = buf, *comma, *eq;

	*n = 0;
	while (*p) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		eq = strchr(p, '=');
		if (!eq || eq == p || *n == cap)
			return -EINVAL;
		*eq = '\0';
		kv[*n].key = p;
		kv[*n].value = eq + 1;
		(*n)++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int debug_telemetryz(const struct model *m, const char *proxy_id, const char *node_ns, const char *node_labels,
		     const char *ns, const char *labels, struct mesh_buf *out, char *err, size_t errcap)
{
	char pod[256], nsbuf[256], lbuf[DEBUG_TELEMETRYZ_LABELS_MAX];
	struct cfg_kv kv[DEBUG_TELEMETRYZ_NLABELS];
	struct cfg_labels lab = { kv, 0 };
	const struct cfg_labels *use = &lab;
	const struct cfg_object *po = NULL;
	struct model_telemetry *t = NULL;
	struct model_telemetry_defaults defs;
	const char *from = "query";
	size_t i;
	int rc;

	err[0] = '\0';
	if (proxy_id && *proxy_id) {
		rc = tz__split_id(proxy_id, pod, sizeof(pod), nsbuf, sizeof(nsbuf));
		if (rc < 0) {
			snprintf(err, errcap, "proxyID \"%.200s\" names no POD.NAMESPACE", proxy_id);
			return rc;
		}
		ns = nsbuf;
		po = tz__pod(m, ns, pod);
		from = "none";
		if (node_ns) {
			/* connected: what the generators select by, its Node's metadata */
			if (*node_ns)
				ns = node_ns;
			from = "node";
			if (strlen(node_labels ? node_labels : "") >= sizeof(lbuf) ||
			    (snprintf(lbuf, sizeof(lbuf), "%s", node_labels ? node_labels : ""),
			     tz__labels(lbuf, kv, DEBUG_TELEMETRYZ_NLABELS, &lab.n) < 0)) {
				snprintf(err, errcap, "proxy \"%.200s\": its labels do not fit this view (at most %d)",
					 proxy_id, DEBUG_TELEMETRYZ_NLABELS);
				return -EINVAL;
			}
		} else if (po) {
			use = &po->labels;
			from = "pod";
		}
	} else if (ns && *ns) {
		if (labels && strlen(labels) >= sizeof(lbuf)) {
			snprintf(err, errcap, "labels longer than %d bytes", DEBUG_TELEMETRYZ_LABELS_MAX);
			return -EINVAL;
		}
		snprintf(lbuf, sizeof(lbuf), "%s", labels ? labels : "");
		if (tz__labels(lbuf, kv, DEBUG_TELEMETRYZ_NLABELS, &lab.n) < 0) {
			snprintf(err, errcap, "labels must be k=v,k2=v2 (at most %d)", DEBUG_TELEMETRYZ_NLABELS);
			return -EINVAL;
		}
	} else {
		snprintf(err, errcap, "query parameter proxyID (or namespace, with labels=k=v,...) is required");
		return -EINVAL;
	}
	/* the defaults the generators merge under (gen__telemetry) */
	model_telemetry_mesh_defaults(m->mesh, &defs);
	rc = model_telemetry_for(m, ns, use, &defs, &t);
	if (rc < 0)
		return rc;
	mesh_buf_puts(out, "{\"namespace\":");
	json_put_string(out, ns);
	mesh_buf_puts(out, ",\"pod\":");
	if (po)
		json_put_string(out, po->name);
	else
		mesh_buf_puts(out, "null");
	mesh_buf_puts(out, ",\"labels\":{");
	for (i = 0; i < use->n; i++) {
		if (i)
			mesh_buf_putc(out, ',');
		json_put_string(out, use->v[i].key);
		mesh_buf_putc(out, ':');
		json_put_string(out, use->v[i].value ? use->v[i].value : "");
	}
	mesh_buf_puts(out, "},\"labelsFrom\":");
	json_put_string(out, from);
	mesh_buf_puts(out, ",\"effective\":");
	model_telemetry_json(t, out);
	mesh_buf_puts(out, "}\n");
	model_telemetry_free(t);
	return 0;
}
