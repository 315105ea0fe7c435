/*
 * authz.c - RBAC enforcement in meshproxy (see authz.h).
 *
 * engine.c calls authz_compile() for every filter chain while it compiles
 * a configuration, so a chain whose RBAC cannot be judged makes the whole
 * configuration a NACK carrying the evaluator's message; proxy.c calls
 * authz_check() once per request, after the request head and before
 * routing (where Envoy's RBAC http filter sits in Istio's chains), and once
 * per connection of a TCP chain (Envoy's network filter, ONE_TIME_ON_FIRST_BYTE).
 *
 * The path and client-address helpers are here too because both exist for
 * authorization's sake: Istio's path-based policies are only as good as the
 * path normalization in front of them, and remoteIpBlocks is the XFF rule.
 */
#include "dataplane/authz.h"

#include "common/log.h"

#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager authz_hcm;
typedef Envoy__Extensions__Filters__Network__Rbac__V3__RBAC authz_net_rbac;

/* ------------------------------------------------------------ counters */

struct authz__counter {
	char *name;
	uint64_t v;
};

struct authz_tab {
	struct authz__counter **v;   /* each allocated alone: pointers stay valid as v grows */
	size_t n, cap;
};

int authz_tab_new(struct authz_tab **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void authz_tab_free(struct authz_tab *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->v[i]->name);
		free(t->v[i]);
	}
	free(t->v);
	free(t);
}

static struct authz__counter *authz__find(const struct authz_tab *t, const char *name)
{
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (!strcmp(t->v[i]->name, name))
			return t->v[i];
	return NULL;
}

/* The counter of a name, made on first use; NULL when out of memory. */
static uint64_t *authz__counter(struct authz_tab *t, const char *name)
{
	struct authz__counter *c = authz__find(t, name);

	if (c)
		return &c->v;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct authz__counter **v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return NULL;
	}
	t->v[t->n++] = c;
	return &c->v;
}

static int authz__cmp(const void *a, const void *b)
{
	const struct authz__counter *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

uint64_t *authz_tab_counter(struct authz_tab *t, const char *name)
{
	return authz__counter(t, name);
}

void authz_tab_each(const struct authz_tab *t, void (*fn)(void *ctx, const char *name, uint64_t v), void *ctx)
{
	struct authz__counter **v;
	size_t i;

	if (!t || !t->n)
		return;
	v = malloc(t->n * sizeof(*v));
	if (!v)
		return;
	memcpy(v, t->v, t->n * sizeof(*v));
	qsort(v, t->n, sizeof(*v), authz__cmp);
	for (i = 0; i < t->n; i++)
		fn(ctx, v[i]->name, v[i]->v);
	free(v);
}

static void authz__text_one(void *ctx, const char *name, uint64_t v)
{
	mesh_buf_printf(ctx, "%s: %llu\n", name, (unsigned long long)v);
}

void authz_tab_text(const struct authz_tab *t, struct mesh_buf *out)
{
	authz_tab_each(t, authz__text_one, out);
}

uint64_t authz_tab_get(const struct authz_tab *t, const char *name)
{
	const struct authz__counter *c = authz__find(t, name);

	return c ? c->v : 0;
}

/* ------------------------------------------------------------ HCM options */

struct authz_http_opts authz_http_opts(const authz_hcm *hcm)
{
	struct authz_http_opts o = { { 0, 0, PATHNORM_SLASHES_KEEP }, 0, 0 };

	if (!hcm)
		return o;
	o.path.normalize = hcm->normalize_path && hcm->normalize_path->value;
	o.path.merge_slashes = hcm->merge_slashes ? 1 : 0;
	switch (hcm->path_with_escaped_slashes_action) {
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__REJECT_REQUEST:
		o.path.slashes = PATHNORM_SLASHES_REJECT;
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_REDIRECT:
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_FORWARD:
		o.path.slashes = PATHNORM_SLASHES_UNESCAPE;
		break;
	default:
		o.path.slashes = PATHNORM_SLASHES_KEEP;
		break;
	}
	o.use_remote = hcm->use_remote_address && hcm->use_remote_address->value;
	o.xff_hops = hcm->xff_num_trusted_hops;
	return o;
}

/* ------------------------------------------------------------ client address */

static int authz__is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

void authz_remote_ip(const struct authz_http_opts *o, const char *xff, size_t xff_len, const char *peer, char *out,
		     size_t cap)
{
	/* the element wanted, counted from the right, 1-based */
	uint32_t want = o->use_remote ? o->xff_hops : o->xff_hops + 1, k = 0;
	size_t end = xff_len;

	snprintf(out, cap, "%s", peer ? peer : "");
	if (want == 0 || !xff || !xff_len)
		return;
	while (end > 0) {
		size_t start = end, a, b;
		char ip[64];

		while (start > 0 && xff[start - 1] != ',')
			start--;
		if (++k == want) {
			for (a = start; a < end && (xff[a] == ' ' || xff[a] == '\t'); a++)
				;
			for (b = end; b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'); b--)
				;
			if (b - a > 0 && b - a < sizeof(ip)) {
				memcpy(ip, xff + a, b - a);
				ip[b - a] = '\0';
				if (authz__is_ip(ip))
					snprintf(out, cap, "%s", ip);
			}
			return;
		}
		end = start > 0 ? start - 1 : 0;
		if (start == 0)
			break;
	}
}

/* ------------------------------------------------------------ compiled chains */

struct authz__filter {
	const char *name;            /* the filter's name (borrowed from the kept messages) */
	uint64_t *allowed, *denied, *shadow_allowed, *shadow_denied;  /* in the engine's table */
	int has_rules, has_shadow;
};

struct authz {
	struct rbac_eval *ev;
	const Envoy__Extensions__Filters__Http__Rbac__V3__RBAC **chain;
	Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *wraps;  /* network filters seen as HTTP ones */
	ProtobufCMessage **msgs;     /* unpacked configs (owned) */
	struct authz__filter *f;
	size_t n;
	int network;
	char lname[128];             /* listener, for logs */
};

void authz_free(struct authz *a)
{
	size_t i;

	if (!a)
		return;
	rbac_eval_free(a->ev);
	for (i = 0; i < a->n; i++)
		if (a->msgs[i])
			protobuf_c_message_free_unpacked(a->msgs[i], NULL);
	free(a->msgs);
	free(a->chain);
	free(a->wraps);
	free(a->f);
	free(a);
}

/* One filter's counters: PREFIX "rbac." RULES "allowed" and so on (Envoy's
 * Filters::Common::RBAC::generateStats). */
static int authz__stats(struct authz_tab *tab, struct authz__filter *f, const char *prefix, const char *rules_prefix,
			const char *shadow_prefix)
{
	char name[512];

	snprintf(name, sizeof(name), "%srbac.%sallowed", prefix, rules_prefix ? rules_prefix : "");
	f->allowed = authz__counter(tab, name);
	snprintf(name, sizeof(name), "%srbac.%sdenied", prefix, rules_prefix ? rules_prefix : "");
	f->denied = authz__counter(tab, name);
	snprintf(name, sizeof(name), "%srbac.%sshadow_allowed", prefix, shadow_prefix ? shadow_prefix : "");
	f->shadow_allowed = authz__counter(tab, name);
	snprintf(name, sizeof(name), "%srbac.%sshadow_denied", prefix, shadow_prefix ? shadow_prefix : "");
	f->shadow_denied = authz__counter(tab, name);
	return f->allowed && f->denied && f->shadow_allowed && f->shadow_denied ? 0 : -ENOMEM;
}

static int authz__grow(struct authz *a, size_t n)
{
	if (!(a->msgs = calloc(n, sizeof(*a->msgs))) || !(a->chain = calloc(n, sizeof(*a->chain))) ||
	    !(a->f = calloc(n, sizeof(*a->f))) || !(a->wraps = calloc(n, sizeof(*a->wraps))))
		return -ENOMEM;
	return 0;
}

int authz_compile(struct authz_tab *tab, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
		  const authz_hcm *hcm, struct authz **out, char *err, size_t cap)
{
	struct authz *a = NULL;
	char prefix[300], why[RBAC_EVAL_TEXT_MAX];
	size_t i, max = 0;
	int rc = 0;

	*out = NULL;
	if (hcm)
		max = hcm->n_http_filters;
	else if (fc)
		max = fc->n_filters;
	if (!max)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a || authz__grow(a, max) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(a->lname, sizeof(a->lname), "%s", lname ? lname : "");
	a->network = hcm == NULL;
	if (hcm)
		snprintf(prefix, sizeof(prefix), "http.%s.", hcm->stat_prefix ? hcm->stat_prefix : "");
	for (i = 0; i < max && rc == 0; i++) {
		const Google__Protobuf__Any *any;
		const char *name;
		struct authz__filter *f = &a->f[a->n];

		if (hcm) {
			const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *hf = hcm->http_filters[i];

			if (hf->config_type_case !=
				    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG ||
			    !hf->typed_config || strcmp(hf->typed_config->type_url, AUTHZ_HTTP_RBAC_URL))
				continue;
			any = hf->typed_config;
			name = hf->name;
		} else {
			const Envoy__Config__Listener__V3__Filter *nf = fc->filters[i];

			if (nf->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
			    !nf->typed_config || strcmp(nf->typed_config->type_url, AUTHZ_NET_RBAC_URL))
				continue;
			any = nf->typed_config;
			name = nf->name;
		}
		f->name = name;
		if (hcm) {
			Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *m =
				envoy__extensions__filters__http__rbac__v3__rbac__unpack(NULL, any->value.len, any->value.data);

			if (!m) {
				snprintf(err, cap, "listener %s: RBAC filter %s: config does not decode", lname, name);
				rc = -EINVAL;
				break;
			}
			a->msgs[a->n] = &m->base;
			a->chain[a->n] = m;
			f->has_rules = m->rules != NULL;
			f->has_shadow = m->shadow_rules != NULL;
			rc = authz__stats(tab, f, prefix, m->rules_stat_prefix, m->shadow_rules_stat_prefix);
		} else {
			authz_net_rbac *m = envoy__extensions__filters__network__rbac__v3__rbac__unpack(NULL, any->value.len,
												       any->value.data);
			Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *w = &a->wraps[a->n];

			if (!m) {
				snprintf(err, cap, "listener %s: RBAC filter %s: config does not decode", lname, name);
				rc = -EINVAL;
				break;
			}
			a->msgs[a->n] = &m->base;
			/* the same rules and shadow rules; the evaluator reads only those */
			envoy__extensions__filters__http__rbac__v3__rbac__init(w);
			w->rules = m->rules;
			w->shadow_rules = m->shadow_rules;
			a->chain[a->n] = w;
			f->has_rules = m->rules != NULL;
			f->has_shadow = m->shadow_rules != NULL;
			/* Envoy's statPrefixJoin(): a '.' between, unless the prefix has one (Istio's "tcp.") */
			{
				const char *sp = m->stat_prefix ? m->stat_prefix : "";
				size_t sl = strlen(sp);

				snprintf(prefix, sizeof(prefix), "%s%s", sp, sl && sp[sl - 1] != '.' ? "." : "");
			}
			rc = authz__stats(tab, f, prefix, NULL, m->shadow_rules_stat_prefix);
		}
		a->n++;
	}
	if (rc < 0)
		goto out;
	if (!a->n)
		goto out; /* no RBAC filter in the chain: *out stays NULL */
	rc = rbac_eval_compile(a->chain, a->n, &a->ev, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, cap, "listener %s: RBAC: %s", lname, why);
		goto out;
	}
	*out = a;
	a = NULL;
out:
	if (rc == -ENOMEM && err && cap && !err[0])
		snprintf(err, cap, "listener %s: RBAC: out of memory", lname);
	authz_free(a);
	return rc;
}

int authz_check(const struct authz *a, const struct rbac_request *r, struct rbac_decision *d)
{
	struct rbac_filter_result res[16], *each = res;
	char err[RBAC_EVAL_TEXT_MAX];
	size_t i;
	int rc;

	memset(d, 0, sizeof(*d));
	d->allowed = true;
	if (!a)
		return 1;
	if (a->n > sizeof(res) / sizeof(res[0])) {
		each = calloc(a->n, sizeof(*each));
		if (!each) {
			d->allowed = false;
			d->reason = "out of memory";
			return -ENOMEM;
		}
	}
	rc = rbac_eval_check_each(a->ev, r, d, each, a->n, err, sizeof(err));
	if (rc < 0) {
		/* Envoy cannot judge it either way: fail closed */
		log_info("meshproxy", "rbac: %s: request not judged, denied: %s", a->lname, err);
		d->allowed = false;
		d->policy = NULL;
		d->reason = "request could not be judged";
		goto out;
	}
	for (i = 0; i < a->n; i++) {
		const struct authz__filter *f = &a->f[i];

		if (each[i].shadow != RBAC_FILTER_NONE) {
			(*(each[i].shadow == RBAC_FILTER_ALLOWED ? f->shadow_allowed : f->shadow_denied))++;
			/* Istio's dry-run: what would have happened, never enforced;
			 * a would-be denial at info, the rest at debug (per request) */
			if (each[i].shadow == RBAC_FILTER_DENIED)
				log_info("meshproxy", "rbac: %s: shadow denied, matched policy %s (%s %s)", a->lname,
					 each[i].shadow_policy ? each[i].shadow_policy : "none",
					 r->method ? r->method : "-", r->path ? r->path : "-");
			else
				log_debug("meshproxy", "rbac: %s: shadow allowed, matched policy %s (%s %s)", a->lname,
					  each[i].shadow_policy ? each[i].shadow_policy : "none",
					  r->method ? r->method : "-", r->path ? r->path : "-");
		}
		if (each[i].rules == RBAC_FILTER_NONE)
			continue;
		(*(each[i].rules == RBAC_FILTER_ALLOWED ? f->allowed : f->denied))++;
		if (a->chain[i]->rules->action == ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG && each[i].policy)
			log_info("meshproxy", "rbac: %s: audit, matched policy %s (%s %s)", a->lname, each[i].policy,
				 r->method ? r->method : "-", r->path ? r->path : "-");
	}
	rc = d->allowed ? 1 : 0;
	if (!d->allowed)
		log_debug("meshproxy", "rbac: %s: enforced denied, matched policy %s", a->lname,
			  d->policy ? d->policy : "none");
out:
	if (each != res)
		free(each);
	return rc < 0 ? 0 : rc;
}

const char *authz_details(const struct rbac_decision *d, char *buf, size_t cap)
{
	snprintf(buf, cap, "rbac_access_denied_matched_policy[%s]", d->policy ? d->policy : "none");
	return buf;
}
