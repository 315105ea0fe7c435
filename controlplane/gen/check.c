/*
 * check.c - what a client profile cannot apply of the configuration, said
 * once per object (gen.h gen_profile_check).
 *
 * The builders leave out what a client kind does not understand (the
 * proxyless profile: the gRPC 1.51 floor) or send what it then ignores;
 * a user must not lose a setting in silence.  This walks the objects of
 * the model once (not the resources, so a cached build that skips
 * unchanged services still reports everything) and hands one warning per
 * object to the caller, who puts it where the object's other warnings go
 * (meshd's log and /debug/configz, meshctl validate).  Pure: no I/O.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/policy.h"

#include <stdio.h>
#include <string.h>

#define GEN_CHECK_MSG_MAX 1024
#define GEN_CHECK_HOST_MAX 256

/* The settings one object loses, as a comma-separated list. */
struct gen_check_list {
	char text[GEN_CHECK_MSG_MAX];
	size_t len;
};

static void gen_check_add(struct gen_check_list *l, const char *what)
{
	int w;

	if (strstr(l->text, what))       /* once per setting, however many levels set it */
		return;
	w = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s", l->len ? ", " : "", what);
	if (w > 0 && (size_t)w < sizeof(l->text) - l->len)
		l->len += (size_t)w;
}

static size_t gen_check_emit(const struct cfg_object *o, const char *field, const char *msg, gen_finding_fn fn,
			     void *ctx)
{
	struct cfg_error e = { 0 };

	e.origin = o->origin;
	e.line = o->line;
	e.kind = (int)o->kind;
	e.api_version = o->api_version;
	e.ns = o->ns;
	e.name = o->name;
	e.field = (char *)field;
	e.message = (char *)msg;
	e.warning = true;
	if (fn)
		fn(ctx, &e);
	return 1;
}

/* ---------------------------------------------------------------- DestinationRule */

static void gen_check_policy(const struct gen_profile *p, const struct cfg_traffic_policy *tp,
			     struct gen_check_list *l)
{
	const struct cfg_load_balancer *lb = &tp->load_balancer;
	const struct cfg_connection_pool *cp = &tp->connection_pool;
	const struct cfg_outlier_detection *od = &tp->outlier_detection;

	if (!p->least_request && lb->set && !lb->has_consistent_hash) {
		if (lb->simple == CFG_LB_LEAST_REQUEST)
			gen_check_add(l, "loadBalancer.simple LEAST_REQUEST (served as ROUND_ROBIN)");
		else if (lb->simple == CFG_LB_RANDOM)
			gen_check_add(l, "loadBalancer.simple RANDOM (served as ROUND_ROBIN)");
	}
	if (!p->cluster_extras && lb->set && lb->has_consistent_hash && lb->consistent_hash.maglev)
		gen_check_add(l, "loadBalancer.consistentHash.maglev");
	if (!p->cluster_extras && lb->set && lb->warmup_duration >= 0)
		gen_check_add(l, "loadBalancer.warmupDurationSecs");
	if (!p->cluster_extras && cp->set) {
		/* gRPC reads max_requests (http2MaxRequests) of the thresholds alone */
		if (cp->max_connections >= 0)
			gen_check_add(l, "connectionPool.tcp.maxConnections");
		if (cp->connect_timeout >= 0)
			gen_check_add(l, "connectionPool.tcp.connectTimeout");
		if (cp->max_connection_duration >= 0)
			gen_check_add(l, "connectionPool.tcp.maxConnectionDuration");
		if (cp->http1_max_pending_requests >= 0)
			gen_check_add(l, "connectionPool.http.http1MaxPendingRequests");
		if (cp->max_requests_per_connection >= 0)
			gen_check_add(l, "connectionPool.http.maxRequestsPerConnection");
		if (cp->max_retries >= 0)
			gen_check_add(l, "connectionPool.http.maxRetries");
		if (cp->idle_timeout >= 0)
			gen_check_add(l, "connectionPool.http.idleTimeout");
		if (cp->h2_upgrade_policy)
			gen_check_add(l, "connectionPool.http.h2UpgradePolicy");
		if (cp->max_concurrent_streams >= 0)
			gen_check_add(l, "connectionPool.http.maxConcurrentStreams");
	}
	if (!p->cluster_extras && od->set) {
		/* gRPC's outlier detection ejects by success rate or failure
		 * percentage, which Istio's mapping turns off or leaves out */
		if (od->consecutive_5xx_errors >= 0)
			gen_check_add(l, "outlierDetection.consecutive5xxErrors");
		if (od->consecutive_gateway_errors >= 0)
			gen_check_add(l, "outlierDetection.consecutiveGatewayErrors");
		if (od->consecutive_local_origin_failures >= 0)
			gen_check_add(l, "outlierDetection.consecutiveLocalOriginFailures");
		if (od->min_health_percent >= 0)
			gen_check_add(l, "outlierDetection.minHealthPercent");
	}
	/* issue 13: credentialName goes over SDS to profiles that take SDS */
	if (!p->tls_files && tp->tls.set && (tp->tls.mode == CFG_TLS_SIMPLE || tp->tls.mode == CFG_TLS_MUTUAL) &&
	    !(p->sds_tls && tp->tls.credential_name && tp->tls.credential_name[0]))
		gen_check_add(l, tp->tls.mode == CFG_TLS_SIMPLE ? "tls.mode SIMPLE" : "tls.mode MUTUAL");
}

static void gen_check_dr_policy(const struct gen_profile *p, const struct cfg_dr_policy *dp, struct gen_check_list *l)
{
	size_t i;

	if (dp->set)
		gen_check_policy(p, &dp->policy, l);
	for (i = 0; i < dp->n_port_level; i++)
		gen_check_policy(p, &dp->port_level[i].policy, l);
}

static void gen_check_dr(const struct gen_profile *p, const struct cfg_object *o, struct gen_check_list *l)
{
	size_t i;

	gen_check_dr_policy(p, &o->spec.dr.traffic_policy, l);
	for (i = 0; i < o->spec.dr.n_subsets; i++)
		gen_check_dr_policy(p, &o->spec.dr.subsets[i].traffic_policy, l);
	if (!p->per_caller_matches && o->spec.dr.has_workload_selector)
		gen_check_add(l, "workloadSelector (the rule applies to sidecars of the selected workloads only)");
}

/* ---------------------------------------------------------------- VirtualService */

/* retryOn conditions a gRPC client reads: gRPC status names. */
static bool gen_check_grpc_retry_on(const char *c)
{
	static const char *const ok[] = { "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
					  "unavailable", NULL };
	size_t i;

	for (i = 0; ok[i]; i++)
		if (strcmp(c, ok[i]) == 0)
			return true;
	return false;
}

static bool gen_check_headers_set(const struct cfg_headers *h)
{
	return h->request.set.n || h->request.add.n || h->request.remove.n || h->response.set.n || h->response.add.n ||
	       h->response.remove.n;
}

static void gen_check_vs(const struct gen_profile *p, const struct cfg_object *o, struct gen_check_list *l,
			 bool *no_catch_all)
{
	const struct cfg_virtual_service *vs = &o->spec.vs;
	size_t i, j;

	for (i = 0; i < vs->n_http; i++) {
		const struct cfg_http_route *r = &vs->http[i];

		if (!p->redirects && r->redirect.set)
			gen_check_add(l, "redirect");
		if (!p->rewrites && r->rewrite.set)
			gen_check_add(l, "rewrite");
		if (!p->mirror && (r->mirror.set || r->n_mirrors))
			gen_check_add(l, "mirror");
		if (!p->header_edits && gen_check_headers_set(&r->headers))
			gen_check_add(l, "headers");
		for (j = 0; !p->header_edits && j < r->n_route; j++)
			if (gen_check_headers_set(&r->route[j].headers))
				gen_check_add(l, "route[].headers");
		if (!p->listener_address && r->cors.set)
			gen_check_add(l, "corsPolicy");
		for (j = 0; !p->per_caller_matches && j < r->n_match; j++)
			if (r->match[j].source_labels.n || r->match[j].source_namespace)
				gen_check_add(l, "match sourceLabels/sourceNamespace (such matches are left out)");
		if (!p->listener_address && r->retries.set && r->retries.retry_on) {
			/* gRPC retries on status names; HTTP conditions mean nothing to it */
			char buf[256];
			const char *s = r->retries.retry_on;

			while (*s) {
				size_t n = strcspn(s, ",");

				snprintf(buf, sizeof(buf), "%.*s", (int)n, s);
				if (buf[0] && !gen_check_grpc_retry_on(buf)) {
					gen_check_add(l, "retries.retryOn conditions other than gRPC status names");
					break;
				}
				s += n;
				if (*s == ',')
					s++;
			}
		}
	}
	if (p->no_match_fallback && vs->hosts.n && vs->n_http) {
		bool all = false;

		for (i = 0; i < vs->n_http && !all; i++) {
			const struct cfg_http_route *r = &vs->http[i];

			all = r->n_match == 0;
			for (j = 0; j < r->n_match && !all; j++)
				all = gen__match_is_catchall(&r->match[j]) && r->match[j].port < 0 &&
				      !r->match[j].source_labels.n && !r->match[j].source_namespace &&
				      !r->match[j].gateways.n;
		}
		*no_catch_all = !all;
	}
	if (!p->listener_address && vs->n_tcp)
		gen_check_add(l, "tcp routes");
	if (!p->listener_address && vs->n_tls)
		gen_check_add(l, "tls routes");
}

/* A mesh VirtualService that loses a host to another (mesh-wide view):
 * Istio does not merge them. */
static size_t gen_check_shadowed(const struct model *m, const struct cfg_object *o, gen_finding_fn fn, void *ctx)
{
	size_t i, n = 0;

	if (!o->spec.vs.hosts.n || !model_gateways_include_mesh(&o->spec.vs.gateways))
		return 0;
	for (i = 0; i < o->spec.vs.hosts.n; i++) {
		char host[GEN_CHECK_HOST_MAX], msg[GEN_CHECK_MSG_MAX];
		const struct cfg_object *w;

		model_resolve_host(m, o->spec.vs.hosts.v[i], o->ns, host, sizeof(host));
		if (host[0] == '*')
			continue;
		w = model_virtual_service(m, host, NULL);
		if (!w || (strcmp(w->ns, o->ns) == 0 && strcmp(w->name, o->name) == 0))
			continue;
		snprintf(msg, sizeof(msg),
			 "host %s is routed by VirtualService %s/%s (older, or exact where this one is a wildcard); "
			 "Istio does not merge VirtualServices: this one is not applied to that host",
			 host, w->ns, w->name);
		n += gen_check_emit(o, "spec.hosts", msg, fn, ctx);
	}
	return n;
}

/* ---------------------------------------------------------------- entry */

size_t gen_profile_check(const struct model *m, const struct gen_profile *p, gen_finding_fn fn, void *ctx)
{
	static const enum cfg_kind kinds[] = { CFG_VIRTUAL_SERVICE, CFG_DESTINATION_RULE, CFG_SERVICE_ENTRY,
					       CFG_K8S_SERVICE };
	const struct cfg_snapshot *cfg = m ? m->cfg : NULL;
	size_t k, i, n = 0;

	if (!cfg || !p)
		return 0;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (i = 0; i < cfg->n_objects[kinds[k]]; i++) {
			const struct cfg_object *o = cfg->objects[kinds[k]][i];
			struct gen_check_list l = { .len = 0 };
			char msg[GEN_CHECK_MSG_MAX + 64];

			l.text[0] = '\0';
			if (o->kind == CFG_VIRTUAL_SERVICE) {
				bool no_catch_all = false;

				gen_check_vs(p, o, &l, &no_catch_all);
				n += gen_check_shadowed(m, o, fn, ctx);
				if (no_catch_all)
					n += gen_check_emit(o, "spec.http",
							    "no http route matches every call: proxyless gRPC clients get a "
							    "final route that fails such calls with UNAVAILABLE (Debian's gRPC "
							    "1.51 client crashes on a call no route matches; Envoy answers 404)",
							    fn, ctx);
			} else if (o->kind == CFG_DESTINATION_RULE) {
				gen_check_dr(p, o, &l);
			}
			if (l.len) {
				snprintf(msg, sizeof(msg), "not applied to %s clients: %s",
					 p->listener_address ? p->name : "proxyless gRPC", l.text);
				n += gen_check_emit(o, "spec", msg, fn, ctx);
			}
			/* a snapshot every client shares cannot keep per-namespace visibility */
			if (!p->per_caller_matches && model_export_narrow(m, o)) {
				snprintf(msg, sizeof(msg), "exportTo narrower than \"*\" is served mesh-wide to %s clients "
					 "(they share one snapshot); sidecars see it as Istio decides",
					 p->listener_address ? p->name : "proxyless gRPC");
				n += gen_check_emit(o, o->kind == CFG_K8S_SERVICE ? "metadata.annotations" : "spec.exportTo",
						    msg, fn, ctx);
			}
		}
	}
	return n;
}
