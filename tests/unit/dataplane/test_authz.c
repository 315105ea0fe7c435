/*
 * test_authz.c - dataplane/authz.h: a chain's RBAC filters, packed as meshd
 * sends them (HTTP filters in an HCM, network filters in a TCP chain), are
 * compiled and judged with Envoy's counters; a filter the evaluator cannot
 * run is refused with its message (the NACK); the trusted client address
 * follows the HCM's XFF rules.
 */
#include "dataplane/authz.h"

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/type/matcher/v3/path.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Config__Rbac__V3__Permission perm_t;
typedef Envoy__Config__Rbac__V3__Principal id_t_;

/* Everything one test's chain is made of (the packed Anys own their bytes). */
struct fixture {
	Envoy__Type__Matcher__V3__StringMatcher sm;
	Envoy__Type__Matcher__V3__PathMatcher pm;
	perm_t perm;
	perm_t *perms[1];
	id_t_ id;
	id_t_ *ids[1];
	Envoy__Config__Rbac__V3__Policy pol;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry entry;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *entries[1];
	Envoy__Config__Rbac__V3__RBAC rules, shadow;
	Google__Protobuf__Any any[2];
	uint8_t *bytes[2];
};

/* A rule set: one policy "p" matching url_path prefix /admin (or, when
 * path is NULL, a destination port 0 permission that never matches). */
static void rules_init(struct fixture *f, Envoy__Config__Rbac__V3__RBAC *r, Envoy__Config__Rbac__V3__RBAC__Action a,
		       const char *prefix)
{
	envoy__type__matcher__v3__string_matcher__init(&f->sm);
	f->sm.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
	f->sm.prefix = (char *)prefix;
	envoy__type__matcher__v3__path_matcher__init(&f->pm);
	f->pm.rule_case = ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH;
	f->pm.path = &f->sm;
	envoy__config__rbac__v3__permission__init(&f->perm);
	f->perm.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH;
	f->perm.url_path = &f->pm;
	f->perms[0] = &f->perm;
	envoy__config__rbac__v3__principal__init(&f->id);
	f->id.identifier_case = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY;
	f->id.any = 1;
	f->ids[0] = &f->id;
	envoy__config__rbac__v3__policy__init(&f->pol);
	f->pol.permissions = f->perms;
	f->pol.n_permissions = 1;
	f->pol.principals = f->ids;
	f->pol.n_principals = 1;
	envoy__config__rbac__v3__rbac__policies_entry__init(&f->entry);
	f->entry.key = "p";
	f->entry.value = &f->pol;
	f->entries[0] = &f->entry;
	envoy__config__rbac__v3__rbac__init(r);
	r->action = a;
	r->policies = f->entries;
	r->n_policies = 1;
}

static void pack(struct fixture *f, int i, const ProtobufCMessage *m, const char *url)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	f->bytes[i] = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(f->bytes[i]);
	protobuf_c_message_pack(m, f->bytes[i]);
	google__protobuf__any__init(&f->any[i]);
	f->any[i].type_url = (char *)url;
	f->any[i].value.data = f->bytes[i];
	f->any[i].value.len = n;
}

START_TEST(http_deny_with_shadow_counts)
{
	struct fixture f;
	Envoy__Extensions__Filters__Http__Rbac__V3__RBAC cfg = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter hf =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *hfs[1] = { &hf };
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	struct authz_tab *tab;
	struct authz *a = NULL;
	struct rbac_request r = { .source_ip = "127.0.0.1", .method = "GET", .path = "/admin/x" };
	struct rbac_decision d;
	char err[512] = "", det[256];

	memset(&f, 0, sizeof(f));
	rules_init(&f, &f.rules, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY, "/admin");
	/* the same set as Istio's dry-run shadow rules */
	f.shadow = f.rules;
	cfg.rules = &f.rules;
	cfg.shadow_rules = &f.shadow;
	cfg.shadow_rules_stat_prefix = "istio_dry_run_deny_";
	pack(&f, 0, &cfg.base, AUTHZ_HTTP_RBAC_URL);
	hf.name = "envoy.filters.http.rbac";
	hf.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	hf.typed_config = &f.any[0];
	hcm.stat_prefix = "inbound_0.0.0.0_8080";
	hcm.http_filters = hfs;
	hcm.n_http_filters = 1;
	ck_assert_int_eq(authz_tab_new(&tab), 0);
	ck_assert_int_eq(authz_compile(tab, "l", NULL, &hcm, &a, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(a);

	ck_assert_int_eq(authz_check(a, &r, &d), 0);
	ck_assert_str_eq(d.policy, "p");
	ck_assert_str_eq(authz_details(&d, det, sizeof(det)), "rbac_access_denied_matched_policy[p]");
	r.path = "/public";
	ck_assert_int_eq(authz_check(a, &r, &d), 1);
	ck_assert_uint_eq(authz_tab_get(tab, "http.inbound_0.0.0.0_8080.rbac.denied"), 1);
	ck_assert_uint_eq(authz_tab_get(tab, "http.inbound_0.0.0.0_8080.rbac.allowed"), 1);
	ck_assert_uint_eq(authz_tab_get(tab, "http.inbound_0.0.0.0_8080.rbac.istio_dry_run_deny_shadow_denied"), 1);
	ck_assert_uint_eq(authz_tab_get(tab, "http.inbound_0.0.0.0_8080.rbac.istio_dry_run_deny_shadow_allowed"), 1);
	/* NULL: no RBAC in the chain, everything passes */
	ck_assert_int_eq(authz_check(NULL, &r, &d), 1);
	authz_free(a);
	authz_tab_free(tab);
	free(f.bytes[0]);
}
END_TEST

START_TEST(network_allow_without_policies_denies)
{
	struct fixture f;
	Envoy__Extensions__Filters__Network__Rbac__V3__RBAC cfg = ENVOY__EXTENSIONS__FILTERS__NETWORK__RBAC__V3__RBAC__INIT;
	Envoy__Config__Listener__V3__Filter nf = ENVOY__CONFIG__LISTENER__V3__FILTER__INIT;
	Envoy__Config__Listener__V3__Filter *nfs[1] = { &nf };
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	struct authz_tab *tab;
	struct authz *a = NULL;
	struct rbac_request r = { .source_ip = "127.0.0.1", .destination_port = 9100 };
	struct rbac_decision d;
	char err[512] = "";

	memset(&f, 0, sizeof(f));
	/* Istio's TCP ALLOW whose every rule used HTTP attributes: no policy left */
	envoy__config__rbac__v3__rbac__init(&f.rules);
	f.rules.action = ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW;
	cfg.rules = &f.rules;
	cfg.stat_prefix = "tcp.";
	pack(&f, 0, &cfg.base, AUTHZ_NET_RBAC_URL);
	nf.name = "envoy.filters.network.rbac";
	nf.config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	nf.typed_config = &f.any[0];
	fc.filters = nfs;
	fc.n_filters = 1;
	ck_assert_int_eq(authz_tab_new(&tab), 0);
	ck_assert_int_eq(authz_compile(tab, "l", &fc, NULL, &a, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(authz_check(a, &r, &d), 0);
	ck_assert_str_eq(d.reason, RBAC_REASON_NO_ALLOW);
	/* Envoy's statPrefixJoin: "tcp." + "rbac." */
	ck_assert_uint_eq(authz_tab_get(tab, "tcp.rbac.denied"), 1);
	authz_free(a);
	authz_tab_free(tab);
	free(f.bytes[0]);
}
END_TEST

START_TEST(unrunnable_filter_is_refused)
{
	struct fixture f;
	Envoy__Extensions__Filters__Http__Rbac__V3__RBAC cfg = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter hf =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *hfs[1] = { &hf };
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	struct authz_tab *tab;
	struct authz *a = NULL;
	char err[512] = "";

	memset(&f, 0, sizeof(f));
	rules_init(&f, &f.rules, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW, "/x");
	/* a metadata matcher: the evaluator does not run it */
	f.perm.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA;
	cfg.rules = &f.rules;
	pack(&f, 0, &cfg.base, AUTHZ_HTTP_RBAC_URL);
	hf.name = "envoy.filters.http.rbac";
	hf.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	hf.typed_config = &f.any[0];
	hcm.stat_prefix = "x";
	hcm.http_filters = hfs;
	hcm.n_http_filters = 1;
	ck_assert_int_eq(authz_tab_new(&tab), 0);
	ck_assert_int_lt(authz_compile(tab, "lst", NULL, &hcm, &a, err, sizeof(err)), 0);
	ck_assert_ptr_null(a);
	ck_assert_msg(strstr(err, "listener lst: RBAC: ") != NULL, "%s", err);
	authz_tab_free(tab);
	free(f.bytes[0]);
}
END_TEST

START_TEST(remote_ip_xff_rules)
{
	struct authz_http_opts o;
	char out[64];

	memset(&o, 0, sizeof(o));
	/* use_remote_address false, 0 hops (Istio's sidecar): the last address */
	authz_remote_ip(&o, "1.2.3.4, 5.6.7.8", 16, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "5.6.7.8");
	o.xff_hops = 1;
	authz_remote_ip(&o, "1.2.3.4, 5.6.7.8", 16, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "1.2.3.4");
	o.xff_hops = 2; /* too few: the peer */
	authz_remote_ip(&o, "1.2.3.4, 5.6.7.8", 16, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "127.0.0.1");
	o.use_remote = 1;
	o.xff_hops = 0; /* the connection's peer */
	authz_remote_ip(&o, "1.2.3.4", 7, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "127.0.0.1");
	o.xff_hops = 1;
	authz_remote_ip(&o, "1.2.3.4,5.6.7.8", 15, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "5.6.7.8");
	o.use_remote = 0;
	o.xff_hops = 0;
	authz_remote_ip(&o, "not-an-ip", 9, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "127.0.0.1");
	authz_remote_ip(&o, NULL, 0, "127.0.0.1", out, sizeof(out));
	ck_assert_str_eq(out, "127.0.0.1");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("authz");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, http_deny_with_shadow_counts);
	tcase_add_test(tc, network_allow_without_policies_denies);
	tcase_add_test(tc, unrunnable_filter_is_refused);
	tcase_add_test(tc, remote_ip_xff_rules);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
