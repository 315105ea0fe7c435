/*
 * test_rbac.c - AuthorizationPolicy -> Envoy RBAC compiler and evaluator.
 *
 * The decision table lives in tests/data/authz/cases.yaml (run from the
 * repository root): every case is parsed by meshd's own parser, goes
 * through store and model, is compiled with rbac_compile() and each of its
 * requests is judged by rbac_eval() over the compiled messages.  Other
 * tests decode the serialised filters and check their shape against what
 * Istio generates and what gRPC 1.51 accepts, and drive the evaluator's
 * matchers and error paths directly.
 */
#include <check.h>

#include "common/arena.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/rbac.h"
#include "common/xds/rbac_eval.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/metadata.pb-c.h"
#include "envoy/type/matcher/v3/path.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/xds/pathnorm.h"

#include <yaml.h>

#include "testutil.h"

#define CASES_FILE "tests/data/authz/cases.yaml"
#define MAX_CASES 256
#define MAX_HEADERS 16
#define ARENA_MAX (16u << 20)

typedef Envoy__Config__Rbac__V3__Permission perm_t;
typedef Envoy__Config__Rbac__V3__Principal id_t_;

/* ------------------------------------------------------------- model helpers */

static struct model *build_model(const char *yaml)
{
	return testutil_model("policies.yaml", yaml);
}

/* ------------------------------------------------------------- the table */

static yaml_document_t g_doc;
static bool g_loaded;
static yaml_node_t *g_cases[MAX_CASES];
static size_t g_n_cases;
static yaml_node_t *g_defaults;

static yaml_node_t *ynode(yaml_node_item_t i)
{
	return yaml_document_get_node(&g_doc, i);
}

static yaml_node_t *yget(yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = ynode(p->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return ynode(p->value);
	}
	return NULL;
}

static const char *ystr(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static size_t yseq_len(yaml_node_t *n)
{
	return n && n->type == YAML_SEQUENCE_NODE ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
						  : 0;
}

static yaml_node_t *yseq_at(yaml_node_t *n, size_t i)
{
	return ynode(n->data.sequence.items.start[i]);
}

static void load_cases(void)
{
	yaml_parser_t p;
	FILE *f;
	yaml_node_t *root, *cases;
	size_t i;

	if (g_loaded)
		return;
	f = fopen(CASES_FILE, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s (run from the repository root)\n", CASES_FILE);
		exit(1);
	}
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	if (!yaml_parser_load(&p, &g_doc)) {
		fprintf(stderr, "%s:%zu: %s\n", CASES_FILE, p.problem_mark.line + 1, p.problem ? p.problem : "bad YAML");
		exit(1);
	}
	yaml_parser_delete(&p);
	fclose(f);
	root = yaml_document_get_root_node(&g_doc);
	g_defaults = yget(root, "defaults");
	cases = yget(root, "cases");
	for (i = 0; i < yseq_len(cases) && i < MAX_CASES; i++)
		g_cases[g_n_cases++] = yseq_at(cases, i);
	g_loaded = true;
}

struct req_buf {
	struct rbac_request r;
	char principal[512];
	struct rbac_header headers[MAX_HEADERS];
};

/* Apply one request map (defaults, then the check's own fields). */
static void req_apply(struct req_buf *b, yaml_node_t *map)
{
	yaml_node_pair_t *p;

	if (!map)
		return;
	ck_assert_int_eq(map->type, YAML_MAPPING_NODE);
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = ystr(ynode(p->key));
		yaml_node_t *vn = ynode(p->value);
		const char *v = ystr(vn);

		ck_assert_ptr_nonnull(k);
		if (!strcmp(k, "principal")) {
			snprintf(b->principal, sizeof(b->principal), "spiffe://%s", v);
			b->r.principal = b->principal;
		} else if (!strcmp(k, "no_peer")) {
			if (v && !strcmp(v, "true"))
				b->r.principal = NULL;
		} else if (!strcmp(k, "source_ip")) {
			b->r.source_ip = v;
		} else if (!strcmp(k, "remote_ip")) {
			b->r.remote_ip = v;
		} else if (!strcmp(k, "destination_ip")) {
			b->r.destination_ip = v;
		} else if (!strcmp(k, "port")) {
			b->r.destination_port = (uint32_t)strtoul(v, NULL, 10);
		} else if (!strcmp(k, "method")) {
			b->r.method = v;
		} else if (!strcmp(k, "path")) {
			b->r.path = v;
		} else if (!strcmp(k, "host")) {
			b->r.host = v;
		} else if (!strcmp(k, "sni")) {
			b->r.sni = v;
		} else if (!strcmp(k, "headers")) {
			yaml_node_pair_t *h;

			ck_assert_int_eq(vn->type, YAML_MAPPING_NODE);
			b->r.n_headers = 0;
			for (h = vn->data.mapping.pairs.start; h < vn->data.mapping.pairs.top; h++) {
				yaml_node_t *hv = ynode(h->value);
				size_t j, n = hv->type == YAML_SEQUENCE_NODE ? yseq_len(hv) : 1;

				/* a list: the header repeated */
				for (j = 0; j < n; j++) {
					ck_assert_uint_lt(b->r.n_headers, MAX_HEADERS);
					b->headers[b->r.n_headers].name = ystr(ynode(h->key));
					b->headers[b->r.n_headers].value =
						hv->type == YAML_SEQUENCE_NODE ? ystr(yseq_at(hv, j)) : ystr(hv);
					b->r.n_headers++;
				}
			}
			b->r.headers = b->headers;
		} else if (!strcmp(k, "xff")) {
			/* the header as sent; remote_ip holds what the sidecar makes of it */
		} else {
			ck_abort_msg("unknown request field \"%s\" in " CASES_FILE, k);
		}
	}
}

/* Compile for the workload as the sidecar gets it (dry-run policies as
 * shadow rules; a TCP port's network filters when tcp) and judge one
 * request, its path normalized first as the sidecar's HCM does (BASE);
 * returns the decision line. */
static void decide(const struct model *m, const char *ns, const struct cfg_labels *labels, bool tcp,
		   const struct rbac_request *req, char *line, size_t cap)
{
	struct arena *a = arena_new(ARENA_MAX);
	struct rbac_opts opts = { .tcp = tcp, .shadow = true };
	struct pathnorm_opts pn;
	rbac_filter *deny, *allow, *audit;
	struct rbac_request rr = *req, *r = &rr;
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX], path[PATHNORM_MAX];
	size_t plen;
	int rc;

	ck_assert_ptr_nonnull(a);
	if (tcp) {
		/* a connection: no HTTP request to see */
		rr.method = rr.path = rr.host = NULL;
		rr.headers = NULL;
		rr.n_headers = 0;
	} else if (rr.path) {
		ck_assert_int_eq(pathnorm_mode("BASE", &pn), 0);
		rc = pathnorm_apply(&pn, rr.path, strlen(rr.path), path, sizeof(path), &plen);
		if (rc < 0) {
			snprintf(line, cap, "DENY (400: the path cannot be normalized)");
			arena_free(a);
			return;
		}
		if (rc == 1)
			rr.path = path;
	}
	ck_assert_int_eq(rbac_compile_opts(m, ns, labels, NULL, &opts, a, &deny, &allow, &audit), 0);
	rc = rbac_eval(deny, allow, audit, r, &d, err, sizeof(err));
	ck_assert_msg(rc == 0, "evaluation failed: %s", err);
	rbac_decision_format(&d, line, cap);
	arena_free(a);
}

START_TEST(test_table_case)
{
	yaml_node_t *c, *wl, *checks, *lbl;
	struct cfg_labels labels = { 0 };
	struct cfg_kv kv[16];
	const char *name, *ns, *policies;
	struct model *m;
	bool tcp;
	size_t i;

	load_cases();
	ck_assert_int_lt(_i, (int)g_n_cases);
	c = g_cases[_i];
	name = ystr(yget(c, "name"));
	ck_assert_ptr_nonnull(name);
	ck_assert_msg(ystr(yget(c, "grpc")) != NULL, "case %s: grpc: true/false missing", name);
	wl = yget(c, "workload") ? yget(c, "workload") : yget(g_defaults, "workload");
	ns = ystr(yget(wl, "namespace"));
	ck_assert_ptr_nonnull(ns);
	lbl = yget(wl, "labels");
	if (lbl) {
		yaml_node_pair_t *p;

		for (p = lbl->data.mapping.pairs.start; p < lbl->data.mapping.pairs.top && labels.n < 16; p++) {
			kv[labels.n].key = (char *)ystr(ynode(p->key));
			kv[labels.n].value = (char *)ystr(ynode(p->value));
			labels.n++;
		}
		labels.v = kv;
	}
	tcp = ystr(yget(c, "tcp")) && !strcmp(ystr(yget(c, "tcp")), "true");
	policies = ystr(yget(c, "policies"));
	ck_assert_ptr_nonnull(policies);
	m = build_model(policies);
	checks = yget(c, "checks");
	ck_assert_uint_gt(yseq_len(checks), 0);
	for (i = 0; i < yseq_len(checks); i++) {
		yaml_node_t *chk = yseq_at(checks, i);
		const char *expect = ystr(yget(chk, "expect"));
		struct req_buf b;
		char line[RBAC_EVAL_TEXT_MAX];

		memset(&b, 0, sizeof(b));
		req_apply(&b, yget(g_defaults, "request"));
		req_apply(&b, yget(chk, "request"));
		ck_assert_ptr_nonnull(expect);
		decide(m, ns, &labels, tcp, &b.r, line, sizeof(line));
		ck_assert_msg(strcmp(line, expect) == 0, "case %s, check %zu: got \"%s\", want \"%s\"", name, i, line,
			      expect);
	}
	model_unref(m);
}
END_TEST

/* The table is big enough to mean something and every check names its outcome. */
START_TEST(test_table_size)
{
	size_t i, checks = 0, grpc = 0;

	load_cases();
	ck_assert_uint_ge(g_n_cases, 40);
	for (i = 0; i < g_n_cases; i++) {
		const char *g = ystr(yget(g_cases[i], "grpc"));

		checks += yseq_len(yget(g_cases[i], "checks"));
		if (g && !strcmp(g, "true"))
			grpc++;
	}
	ck_assert_uint_ge(checks, 100);
	ck_assert_uint_ge(grpc, 30);
}
END_TEST

/* ------------------------------------------------------------- shape */

/* Walk every matcher: count header matchers using string_match (gRPC 1.51
 * rejects them) and metadata matchers (gRPC cannot match them). */
struct walk {
	size_t string_match, metadata, headers, regexes;
};

static void walk_hdr(struct walk *w, const Envoy__Config__Route__V3__HeaderMatcher *h)
{
	w->headers++;
	if (h->header_match_specifier_case == ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH)
		w->string_match++;
	if (h->header_match_specifier_case ==
	    ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH)
		w->regexes++;
}

static void walk_perm(struct walk *w, const perm_t *p)
{
	size_t i;

	switch (p->rule_case) {
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES:
		for (i = 0; i < p->and_rules->n_rules; i++)
			walk_perm(w, p->and_rules->rules[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES:
		for (i = 0; i < p->or_rules->n_rules; i++)
			walk_perm(w, p->or_rules->rules[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE:
		walk_perm(w, p->not_rule);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER:
		walk_hdr(w, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA:
		w->metadata++;
		break;
	default:
		break;
	}
}

static void walk_id(struct walk *w, const id_t_ *p)
{
	size_t i;

	switch (p->identifier_case) {
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS:
		for (i = 0; i < p->and_ids->n_ids; i++)
			walk_id(w, p->and_ids->ids[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS:
		for (i = 0; i < p->or_ids->n_ids; i++)
			walk_id(w, p->or_ids->ids[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID:
		walk_id(w, p->not_id);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER:
		walk_hdr(w, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA:
		w->metadata++;
		break;
	default:
		break;
	}
}

static const Envoy__Config__Rbac__V3__Policy *policy_named(const Envoy__Config__Rbac__V3__RBAC *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_policies; i++)
		if (!strcmp(r->policies[i]->key, name))
			return r->policies[i]->value;
	return NULL;
}

static const char *const shape_yaml =
	"apiVersion: security.istio.io/v1\n"
	"kind: AuthorizationPolicy\n"
	"metadata: {name: allow-admin, namespace: foo}\n"
	"spec:\n"
	"  rules:\n"
	"  - from:\n"
	"    - source:\n"
	"        principals: [cluster.local/ns/ops/sa/admin, '*/sa/root']\n"
	"        notNamespaces: [bar]\n"
	"    to:\n"
	"    - operation:\n"
	"        hosts: [Api.Example.com]\n"
	"        methods: [POST]\n"
	"        paths: [/admin.Admin/*]\n"
	"        ports: ['8080']\n"
	"    when:\n"
	"    - key: request.headers[x-team]\n"
	"      values: [blue]\n"
	"    - key: destination.port\n"
	"      values: ['8080']\n"
	"  - {}\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: AuthorizationPolicy\n"
	"metadata: {name: deny-legacy, namespace: istio-system}\n"
	"spec:\n"
	"  action: DENY\n"
	"  rules:\n"
	"  - from:\n"
	"    - source:\n"
	"        namespaces: [legacy]\n"
	"---\n"
	"apiVersion: security.istio.io/v1\n"
	"kind: AuthorizationPolicy\n"
	"metadata: {name: audit, namespace: foo}\n"
	"spec:\n"
	"  action: AUDIT\n"
	"  rules: [{}]\n";

/* Serialise an HttpFilter's typed config and decode it back. */
static Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *decode_filter(const rbac_http_filter *f)
{
	ck_assert_int_eq(f->config_type_case,
			 ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG);
	ck_assert_str_eq(f->typed_config->type_url, "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC");
	return envoy__extensions__filters__http__rbac__v3__rbac__unpack(NULL, f->typed_config->value.len,
									  f->typed_config->value.data);
}

START_TEST(test_shape_filters)
{
	static const struct cfg_kv kv[] = { { "app", "httpbin" } };
	const struct cfg_labels labels = { (struct cfg_kv *)kv, 1 };
	struct model *m = build_model(shape_yaml);
	struct arena *a = arena_new(ARENA_MAX);
	rbac_filter *deny, *allow, *audit;
	rbac_http_filter **hf;
	Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *d, *al, *au;
	struct walk w = { 0 };
	size_t n, i;

	ck_assert_int_eq(rbac_compile(m, "foo", &labels, NULL, a, &deny, &allow, &audit), 0);
	ck_assert_ptr_nonnull(deny);
	ck_assert_ptr_nonnull(allow);
	ck_assert_ptr_nonnull(audit);

	/* proxyless: deny then allow, no LOG filter */
	ck_assert_int_eq(rbac_http_filters(deny, allow, audit, false, a, &hf, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(hf[0]->name, RBAC_FILTER_NAME_DENY);
	ck_assert_str_eq(hf[1]->name, RBAC_FILTER_NAME);
	d = decode_filter(hf[0]);
	al = decode_filter(hf[1]);
	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(al);
	ck_assert_int_eq(d->rules->action, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY);
	ck_assert_int_eq(al->rules->action, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW);
	ck_assert_uint_eq(d->rules->n_policies, 1);
	ck_assert_str_eq(d->rules->policies[0]->key, "ns[istio-system]-policy[deny-legacy]-rule[0]");
	ck_assert_uint_eq(al->rules->n_policies, 2);
	ck_assert_str_eq(al->rules->policies[0]->key, "ns[foo]-policy[allow-admin]-rule[0]");
	ck_assert_str_eq(al->rules->policies[1]->key, "ns[foo]-policy[allow-admin]-rule[1]");
	for (i = 0; i < al->rules->n_policies; i++) {
		const Envoy__Config__Rbac__V3__Policy *p = al->rules->policies[i]->value;
		size_t k;

		for (k = 0; k < p->n_permissions; k++)
			walk_perm(&w, p->permissions[k]);
		for (k = 0; k < p->n_principals; k++)
			walk_id(&w, p->principals[k]);
	}
	ck_assert_uint_eq(w.string_match, 0);
	ck_assert_uint_eq(w.metadata, 0);
	ck_assert_uint_eq(w.headers, 3); /* :authority, :method, x-team */
	ck_assert_uint_eq(w.regexes, 2); /* host (case-insensitive), x-team (multi-value) */
	envoy__extensions__filters__http__rbac__v3__rbac__free_unpacked(d, NULL);
	envoy__extensions__filters__http__rbac__v3__rbac__free_unpacked(al, NULL);

	/* sidecars: the LOG filter goes first */
	ck_assert_int_eq(rbac_http_filters(deny, allow, audit, true, a, &hf, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(hf[0]->name, RBAC_FILTER_NAME_AUDIT);
	au = decode_filter(hf[0]);
	ck_assert_int_eq(au->rules->action, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG);
	ck_assert_str_eq(au->rules->policies[0]->key, "ns[foo]-policy[audit]-rule[0]");
	envoy__extensions__filters__http__rbac__v3__rbac__free_unpacked(au, NULL);
	arena_free(a);
	model_unref(m);
}
END_TEST

/* The structure of one rule, field by field, as Istio's builder makes it. */
START_TEST(test_shape_rule)
{
	static const struct cfg_kv kv[] = { { "app", "httpbin" } };
	const struct cfg_labels labels = { (struct cfg_kv *)kv, 1 };
	struct model *m = build_model(shape_yaml);
	struct arena *a = arena_new(ARENA_MAX);
	rbac_filter *allow;
	const Envoy__Config__Rbac__V3__Policy *p;
	const perm_t *and, *f;
	const id_t_ *ids, *g;
	const Envoy__Config__Route__V3__HeaderMatcher *h;

	ck_assert_int_eq(rbac_compile(m, "foo", &labels, NULL, a, NULL, &allow, NULL), 0);
	p = policy_named(allow->rules, "ns[foo]-policy[allow-admin]-rule[0]");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->n_permissions, 1);
	ck_assert_uint_eq(p->n_principals, 1);

	/* permissions: and[ or[host], or[method], or[path], or[port], or[destination.port] ] */
	and = p->permissions[0];
	ck_assert_int_eq(and->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES);
	ck_assert_uint_eq(and->and_rules->n_rules, 5);
	f = and->and_rules->rules[0];
	ck_assert_int_eq(f->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES);
	h = f->or_rules->rules[0]->header;
	ck_assert_str_eq(h->name, ":authority");
	ck_assert_str_eq(h->safe_regex_match->regex, "[aA][pP][iI]\\.[eE][xX][aA][mM][pP][lL][eE]\\.[cC][oO][mM]");
	h = and->and_rules->rules[1]->or_rules->rules[0]->header;
	ck_assert_str_eq(h->name, ":method");
	ck_assert_int_eq(h->header_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH);
	ck_assert_str_eq(h->exact_match, "POST");
	f = and->and_rules->rules[2]->or_rules->rules[0];
	ck_assert_int_eq(f->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH);
	ck_assert_str_eq(f->url_path->path->prefix, "/admin.Admin/");
	f = and->and_rules->rules[3]->or_rules->rules[0];
	ck_assert_int_eq(f->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT);
	ck_assert_uint_eq(f->destination_port, 8080);
	f = and->and_rules->rules[4]->or_rules->rules[0];
	ck_assert_int_eq(f->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT);

	/* principals: and[ or[principals], not(or[namespaces]), or[x-team header] ] */
	ids = p->principals[0];
	ck_assert_int_eq(ids->identifier_case, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS);
	ck_assert_uint_eq(ids->and_ids->n_ids, 3);
	g = ids->and_ids->ids[0];
	ck_assert_int_eq(g->identifier_case, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS);
	ck_assert_uint_eq(g->or_ids->n_ids, 2);
	ck_assert_str_eq(g->or_ids->ids[0]->authenticated->principal_name->exact,
			 "spiffe://cluster.local/ns/ops/sa/admin");
	ck_assert_str_eq(g->or_ids->ids[1]->authenticated->principal_name->safe_regex->regex, "spiffe://.*/sa/root");
	g = ids->and_ids->ids[1];
	ck_assert_int_eq(g->identifier_case, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID);
	ck_assert_str_eq(g->not_id->or_ids->ids[0]->authenticated->principal_name->safe_regex->regex, ".*/ns/bar/.*");
	g = ids->and_ids->ids[2];
	h = g->or_ids->ids[0]->header;
	ck_assert_str_eq(h->name, "x-team");
	ck_assert_str_eq(h->safe_regex_match->regex, "^blue$|^blue,.*|.*,blue,.*|.*,blue$");

	/* rules: [{}] -> and[any] / and[any] */
	p = policy_named(allow->rules, "ns[foo]-policy[allow-admin]-rule[1]");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->permissions[0]->and_rules->rules[0]->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY);
	ck_assert_int_eq(p->principals[0]->and_ids->ids[0]->identifier_case,
			 ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY);
	arena_free(a);
	model_unref(m);
}
END_TEST

START_TEST(test_shape_allow_nothing)
{
	struct model *m = build_model("apiVersion: security.istio.io/v1\n"
				      "kind: AuthorizationPolicy\n"
				      "metadata: {name: allow-nothing, namespace: foo}\n"
				      "spec: {}\n");
	struct arena *a = arena_new(ARENA_MAX);
	rbac_filter *deny, *allow, *audit;
	const Envoy__Config__Rbac__V3__Policy *p;

	ck_assert_int_eq(rbac_compile(m, "foo", NULL, NULL, a, &deny, &allow, &audit), 0);
	ck_assert_ptr_null(deny);
	ck_assert_ptr_null(audit);
	ck_assert_ptr_nonnull(allow);
	ck_assert_uint_eq(allow->rules->n_policies, 1);
	p = policy_named(allow->rules, "ns[foo]-policy[allow-nothing]-rule[0]");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->permissions[0]->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE);
	ck_assert_int_eq(p->permissions[0]->not_rule->rule_case, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY);
	ck_assert_int_eq(p->principals[0]->identifier_case, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID);
	arena_free(a);
	model_unref(m);
}
END_TEST

START_TEST(test_no_policy_no_filters)
{
	struct model *m = build_model("apiVersion: security.istio.io/v1\n"
				      "kind: AuthorizationPolicy\n"
				      "metadata: {name: elsewhere, namespace: bar}\n"
				      "spec: {}\n");
	struct arena *a = arena_new(ARENA_MAX);
	rbac_filter *deny = (rbac_filter *)1, *allow = (rbac_filter *)1, *audit = (rbac_filter *)1;
	rbac_http_filter **hf;
	const struct cfg_object *sel[4];
	size_t n;

	ck_assert_uint_eq(rbac_select(m, "foo", NULL, sel, 4), 0);
	ck_assert_uint_eq(rbac_select(m, "bar", NULL, sel, 4), 1);
	ck_assert_str_eq(sel[0]->name, "elsewhere");
	ck_assert_int_eq(rbac_compile(m, "foo", NULL, NULL, a, &deny, &allow, &audit), 0);
	ck_assert_ptr_null(deny);
	ck_assert_ptr_null(allow);
	ck_assert_ptr_null(audit);
	ck_assert_int_eq(rbac_http_filters(deny, allow, audit, true, a, &hf, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(rbac_compile(NULL, "foo", NULL, NULL, a, &deny, &allow, &audit), -EINVAL);
	arena_free(a);
	model_unref(m);
}
END_TEST

/* Notes handed to the caller, joined one per line. */
struct notes_seen {
	char text[2048];
	size_t n;
};

static void note_collect(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	struct notes_seen *ns = ctx;
	size_t len = strlen(ns->text);

	ck_assert_int_eq(level, GEN_NOTE_WARN);
	snprintf(ns->text + len, sizeof(ns->text) - len, "%s: %s\n", scope, msg);
	ns->n++;
}

/* experimental.* keys cannot be matched by gRPC: an ALLOW rule using one
 * is dropped (it never allows more), a DENY rule loses the condition (it
 * denies more); each is a note for the caller (the compiler does no
 * I/O). */
START_TEST(test_unsupported_condition)
{
	struct model *m = build_model("apiVersion: security.istio.io/v1\n"
				      "kind: AuthorizationPolicy\n"
				      "metadata: {name: allow-exp, namespace: foo}\n"
				      "spec:\n"
				      "  rules:\n"
				      "  - when:\n"
				      "    - key: experimental.envoy.filters.a.b[c]\n"
				      "      values: [x]\n"
				      "  - to:\n"
				      "    - operation: {paths: [/ok.Ok/*]}\n"
				      "  - when:\n"
				      "    - key: request.headers[GRPC-Timeout]\n"
				      "      values: [1S]\n"
				      "  - when:\n"
				      "    - key: request.headers[X-Team]\n"
				      "      values: ['*']\n"
				      "---\n"
				      "apiVersion: security.istio.io/v1\n"
				      "kind: AuthorizationPolicy\n"
				      "metadata: {name: deny-exp, namespace: foo}\n"
				      "spec:\n"
				      "  action: DENY\n"
				      "  rules:\n"
				      "  - to:\n"
				      "    - operation: {paths: [/bad.Bad/*]}\n"
				      "    when:\n"
				      "    - key: experimental.envoy.filters.a.b[c]\n"
				      "      values: [x]\n");
	struct arena *a = arena_new(ARENA_MAX);
	rbac_filter *deny, *allow;
	struct rbac_request r = { .method = "POST", .path = "/bad.Bad/Do" };
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX], line[RBAC_EVAL_TEXT_MAX];

	struct notes_seen seen = { "", 0 };
	struct gen_notes notes = { note_collect, &seen, NULL };

	ck_assert_int_eq(rbac_compile(m, "foo", NULL, &notes, a, &deny, &allow, NULL), 0);
	ck_assert_uint_eq(seen.n, 3);
	ck_assert_msg(strstr(seen.text, "rbac: foo/allow-exp rule 0: condition experimental.envoy.filters.a.b[c] "
					"cannot be matched by the RBAC filter; rule dropped\n") != NULL, "%s", seen.text);
	ck_assert_msg(strstr(seen.text, "foo/allow-exp rule 2: condition request.headers[GRPC-Timeout]") != NULL, "%s",
		      seen.text);
	ck_assert_msg(strstr(seen.text, "foo/deny-exp rule 0: condition experimental.envoy.filters.a.b[c] cannot be "
					"matched by the RBAC filter; ignored, so the DENY rule applies more widely") != NULL,
		      "%s", seen.text);
	ck_assert_uint_eq(allow->rules->n_policies, 2);
	ck_assert_str_eq(allow->rules->policies[0]->key, "ns[foo]-policy[allow-exp]-rule[1]");
	ck_assert_str_eq(allow->rules->policies[1]->key, "ns[foo]-policy[allow-exp]-rule[3]");
	/* header names go out lower case */
	ck_assert_str_eq(allow->rules->policies[1]->value->principals[0]->and_ids->ids[0]->or_ids->ids[0]->header->name,
			 "x-team");
	ck_assert_int_eq(rbac_eval(deny, allow, NULL, &r, &d, err, sizeof(err)), 0);
	ck_assert_str_eq(rbac_decision_format(&d, line, sizeof(line)), "DENY (policy ns[foo]-policy[deny-exp]-rule[0])");
	arena_free(a);
	model_unref(m);
}
END_TEST

/* ------------------------------------------------------------- evaluator */

static Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *entry_for(struct arena *a, const char *name, perm_t *perm,
							       id_t_ *id)
{
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e = arena_alloc(a, sizeof(*e));
	Envoy__Config__Rbac__V3__Policy *p = arena_alloc(a, sizeof(*p));
	perm_t **pv = arena_calloc(a, 1, sizeof(*pv));
	id_t_ **iv = arena_calloc(a, 1, sizeof(*iv));

	envoy__config__rbac__v3__rbac__policies_entry__init(e);
	envoy__config__rbac__v3__policy__init(p);
	pv[0] = perm;
	iv[0] = id;
	p->permissions = pv;
	p->n_permissions = 1;
	p->principals = iv;
	p->n_principals = 1;
	e->key = (char *)name;
	e->value = p;
	return e;
}

static perm_t *perm_any(struct arena *a)
{
	perm_t *p = arena_alloc(a, sizeof(*p));

	envoy__config__rbac__v3__permission__init(p);
	p->rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY;
	p->any = 1;
	return p;
}

static id_t_ *id_any(struct arena *a)
{
	id_t_ *p = arena_alloc(a, sizeof(*p));

	envoy__config__rbac__v3__principal__init(p);
	p->identifier_case = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY;
	p->any = 1;
	return p;
}

static perm_t *perm_header(struct arena *a, Envoy__Config__Route__V3__HeaderMatcher *h)
{
	perm_t *p = arena_alloc(a, sizeof(*p));

	envoy__config__rbac__v3__permission__init(p);
	p->rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER;
	p->header = h;
	return p;
}

/* One-policy ALLOW rules around a permission; returns 1/0/<0 from rbac_eval_rules. */
static int eval_perm(struct arena *a, perm_t *perm, const struct rbac_request *r, char *err, size_t cap)
{
	Envoy__Config__Rbac__V3__RBAC rules = ENVOY__CONFIG__RBAC__V3__RBAC__INIT;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e[1];
	const char *m;

	e[0] = entry_for(a, "p", perm, id_any(a));
	rules.policies = e;
	rules.n_policies = 1;
	return rbac_eval_rules(&rules, r, &m, err, cap);
}

START_TEST(test_eval_header_semantics)
{
	struct arena *a = arena_new(ARENA_MAX);
	Envoy__Config__Route__V3__HeaderMatcher h = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__INIT;
	struct rbac_header hd[] = { { "X-Multi", "a" }, { "x-multi", "b" } };
	struct rbac_request r = { .method = "POST", .path = "/a.A/B", .headers = hd, .n_headers = 2 };
	char err[RBAC_EVAL_TEXT_MAX];

	/* repeated headers are joined with "," */
	h.name = "x-multi";
	h.header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH;
	h.exact_match = "a,b";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	/* invert_match on an absent header: false unless present_match */
	h.name = "x-absent";
	h.invert_match = 1;
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 0);
	h.header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
	h.present_match = 1;
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	/* present_match on a present header */
	h.name = "x-multi";
	h.invert_match = 0;
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	/* :method pseudo-header */
	h.name = ":method";
	h.header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH;
	h.prefix_match = "PO";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	h.prefix_match = "GE";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 0);
	arena_free(a);
}
END_TEST

START_TEST(test_eval_errors)
{
	struct arena *a = arena_new(ARENA_MAX);
	Envoy__Config__Route__V3__HeaderMatcher h = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__INIT;
	Envoy__Type__Matcher__V3__RegexMatcher re = ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__INIT;
	Envoy__Type__Matcher__V3__MetadataMatcher md = ENVOY__TYPE__MATCHER__V3__METADATA_MATCHER__INIT;
	struct rbac_header hd[] = { { "x-id", "abc123" } };
	struct rbac_request r = { .method = "POST", .path = "/a.A/B", .headers = hd, .n_headers = 1 };
	perm_t *p = arena_alloc(a, sizeof(*p));
	char err[RBAC_EVAL_TEXT_MAX];

	/* metadata: named, never guessed */
	envoy__config__rbac__v3__permission__init(p);
	p->rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA;
	p->metadata = &md;
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err, "metadata"));
	ck_assert_ptr_nonnull(strstr(err, "policy p"));
	/* regexes run on RE2, as in the proxy: its syntax runs, what it refuses fails */
	h.name = "x-id";
	h.header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH;
	h.safe_regex_match = &re;
	re.regex = "(?i)ABC.*";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	re.regex = "abc\\d+";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	re.regex = "abc**";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "does not compile"));
	/* a full match */
	re.regex = "abc[0-9]+";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 1);
	re.regex = "abc";
	ck_assert_int_eq(eval_perm(a, perm_header(a, &h), &r, err, sizeof(err)), 0);
	/* an unset permission */
	p->rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE__NOT_SET;
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), -ENOTSUP);
	ck_assert_int_eq(rbac_eval(NULL, NULL, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
	arena_free(a);
}
END_TEST

START_TEST(test_eval_cidr)
{
	struct arena *a = arena_new(ARENA_MAX);
	Envoy__Config__Core__V3__CidrRange c = ENVOY__CONFIG__CORE__V3__CIDR_RANGE__INIT;
	Google__Protobuf__UInt32Value len = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	struct rbac_request r = { .method = "POST", .path = "/" };
	perm_t *p = arena_alloc(a, sizeof(*p));
	char err[RBAC_EVAL_TEXT_MAX];

	envoy__config__rbac__v3__permission__init(p);
	p->rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP;
	p->destination_ip = &c;
	c.prefix_len = &len;
	c.address_prefix = "fd00:1::";
	len.value = 32;
	r.destination_ip = "fd00:1:ffff::1";
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), 1);
	r.destination_ip = "fd00:2::1";
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), 0);
	r.destination_ip = "127.0.0.1"; /* other family */
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), 0);
	c.address_prefix = "10.0.0.0";
	len.value = 9;
	r.destination_ip = "10.127.255.255";
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), 1);
	r.destination_ip = "10.128.0.0";
	ck_assert_int_eq(eval_perm(a, p, &r, err, sizeof(err)), 0);
	r.destination_ip = "not-an-ip";
	ck_assert_int_lt(eval_perm(a, p, &r, err, sizeof(err)), 0);
	arena_free(a);
}
END_TEST

/* Envoy keeps policies in a sorted map: the reported policy is the first
 * matching name, whatever order they were sent in. */
START_TEST(test_eval_chain_order)
{
	struct arena *a = arena_new(ARENA_MAX);
	Envoy__Config__Rbac__V3__RBAC rules = ENVOY__CONFIG__RBAC__V3__RBAC__INIT, drules = ENVOY__CONFIG__RBAC__V3__RBAC__INIT;
	rbac_filter allow = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	rbac_filter shadow = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e[2], *de[1];
	const rbac_filter *chain[2];
	struct rbac_request r = { .method = "POST", .path = "/" };
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX];

	e[0] = entry_for(a, "zz", perm_any(a), id_any(a));
	e[1] = entry_for(a, "aa", perm_any(a), id_any(a));
	rules.policies = e;
	rules.n_policies = 2;
	allow.rules = &rules;
	/* a filter with shadow rules only allows and records */
	de[0] = entry_for(a, "shadow-deny", perm_any(a), id_any(a));
	drules.action = ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY;
	drules.policies = de;
	drules.n_policies = 1;
	shadow.shadow_rules = &drules;
	chain[0] = &shadow;
	chain[1] = &allow;
	ck_assert_int_eq(rbac_eval_chain(chain, 2, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.policy, "aa");
	ck_assert_str_eq(d.audit_policy, "shadow-deny");
	arena_free(a);
}
END_TEST

static Suite *rbac_suite(void)
{
	Suite *s = suite_create("rbac");
	TCase *t = tcase_create("table"), *sh = tcase_create("shape"), *ev = tcase_create("eval");

	load_cases();
	tcase_add_test(t, test_table_size);
	tcase_add_loop_test(t, test_table_case, 0, (int)g_n_cases);
	tcase_add_test(sh, test_shape_filters);
	tcase_add_test(sh, test_shape_rule);
	tcase_add_test(sh, test_shape_allow_nothing);
	tcase_add_test(sh, test_no_policy_no_filters);
	tcase_add_test(sh, test_unsupported_condition);
	tcase_add_test(ev, test_eval_header_semantics);
	tcase_add_test(ev, test_eval_errors);
	tcase_add_test(ev, test_eval_cidr);
	tcase_add_test(ev, test_eval_chain_order);
	suite_add_tcase(s, t);
	suite_add_tcase(s, sh);
	suite_add_tcase(s, ev);
	return s;
}

int main(void)
{
	int failed = testutil_run_nofork(rbac_suite());

	if (g_loaded)
		yaml_document_delete(&g_doc);
	return failed ? 1 : 0;
}
