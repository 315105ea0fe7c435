/*
 * test_rbac_eval.c - common/xds/rbac_eval.h on its own (linked with
 * libcommon.a only): a chain is compiled once and judges many requests;
 * policies are tried in name order; a matcher the evaluator cannot run
 * fails the compile even in a policy no request would reach; repeated
 * headers are joined.  The policy semantics against meshd's compiler are
 * tested in tests/unit/controlplane/xds/test_rbac.c.
 */
#include "common/xds/rbac_eval.h"

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"

#include <check.h>
#include <string.h>

typedef Envoy__Config__Rbac__V3__Permission perm_t;
typedef Envoy__Config__Rbac__V3__Principal id_t_;

static id_t_ id_any = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__INIT;
static id_t_ *ids[] = { &id_any };

/* A policy over one permission and any principal. */
static void policy_init(Envoy__Config__Rbac__V3__Policy *pol, perm_t **perm)
{
	envoy__config__rbac__v3__policy__init(pol);
	id_any.identifier_case = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY;
	id_any.any = 1;
	pol->permissions = perm;
	pol->n_permissions = 1;
	pol->principals = ids;
	pol->n_principals = 1;
}

START_TEST(compile_once_check_many)
{
	Envoy__Type__Matcher__V3__RegexMatcher re = ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__INIT;
	Envoy__Config__Route__V3__HeaderMatcher h = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__INIT;
	perm_t hp = ENVOY__CONFIG__RBAC__V3__PERMISSION__INIT, any = ENVOY__CONFIG__RBAC__V3__PERMISSION__INIT;
	perm_t *p_h[] = { &hp }, *p_any[] = { &any };
	Envoy__Config__Rbac__V3__Policy pol_h, pol_any;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry e_h = ENVOY__CONFIG__RBAC__V3__RBAC__POLICIES_ENTRY__INIT;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry e_any = ENVOY__CONFIG__RBAC__V3__RBAC__POLICIES_ENTRY__INIT;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *entries[] = { &e_h, &e_any };
	Envoy__Config__Rbac__V3__RBAC rules = ENVOY__CONFIG__RBAC__V3__RBAC__INIT;
	rbac_filter allow = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	const rbac_filter *chain[] = { NULL, &allow };
	struct rbac_header hd[] = { { "x-id", "abc1" }, { "X-Id", "abc22" } };
	struct rbac_request r = { .method = "GET", .path = "/x?q=1", .headers = hd, .n_headers = 1 };
	struct rbac_eval *ev = NULL;
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX];

	re.regex = "abc[0-9]+(,abc[0-9]+)*";
	h.name = "x-id";
	h.header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH;
	h.safe_regex_match = &re;
	hp.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER;
	hp.header = &h;
	any.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT;
	any.destination_port = 9080;
	policy_init(&pol_h, p_h);
	policy_init(&pol_any, p_any);
	/* sent out of name order: "b-header" before "a-port" */
	e_h.key = "b-header";
	e_h.value = &pol_h;
	e_any.key = "a-port";
	e_any.value = &pol_any;
	rules.policies = entries;
	rules.n_policies = 2;
	allow.rules = &rules;

	ck_assert_int_eq(rbac_eval_compile(chain, 2, &ev, err, sizeof(err)), 0);
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.policy, "b-header");
	/* both policies match: the first name wins */
	r.destination_port = 9080;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert_str_eq(d.policy, "a-port");
	/* a repeated header is joined with "," before matching */
	r.destination_port = 0;
	r.n_headers = 2;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert_str_eq(d.policy, "b-header");
	hd[1].value = "zzz";
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(!d.allowed);
	ck_assert_str_eq(d.reason, RBAC_REASON_NO_ALLOW);
	ck_assert_int_eq(rbac_eval_check(ev, NULL, &d, err, sizeof(err)), -EINVAL);
	rbac_eval_free(ev);

	/* RE2 syntax POSIX ERE lacks runs as RE2 runs it (the proxy's engine) */
	re.regex = "(?i)abc\\d+|\\Qa.b\\E|[[:^alpha:]]+";
	ck_assert_int_eq(rbac_eval_compile(chain, 2, &ev, err, sizeof(err)), 0);
	hd[0].value = "ABC12";
	r.n_headers = 1;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert_str_eq(d.policy, "b-header");
	hd[0].value = "a.b";
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	hd[0].value = "axb";
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(!d.allowed);
	rbac_eval_free(ev);
	/* a regex RE2 refuses fails the compile, whatever the request */
	re.regex = "tr**ue";
	ck_assert_int_eq(rbac_eval_compile(chain, 2, &ev, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(ev);
	ck_assert_ptr_nonnull(strstr(err, "policy b-header"));
	ck_assert_ptr_nonnull(strstr(err, "does not compile"));
	/* and so does one over Istio's program-size limit */
	re.regex = "\\pL{200}";
	ck_assert_int_eq(rbac_eval_compile(chain, 2, &ev, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "max program size of 32768"));
	/* so does metadata, in a policy "a-port" would shadow for this request */
	re.regex = "abc";
	hp.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA;
	ck_assert_int_eq(rbac_eval_compile(chain, 2, &ev, err, sizeof(err)), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err, "metadata"));
	/* an empty chain allows, saying no policy applies */
	ck_assert_int_eq(rbac_eval_compile(NULL, 0, &ev, err, sizeof(err)), 0);
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.reason, RBAC_REASON_NO_POLICY);
	rbac_eval_free(ev);
}
END_TEST

/* Envoy's authenticated principal_name tries every URI SAN of the peer's
 * certificate, then every DNS SAN: a DENY on any of them denies (the
 * request's principal is the first URI SAN, peer_names the rest). */
START_TEST(every_peer_name)
{
	Envoy__Type__Matcher__V3__StringMatcher sm = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT;
	Envoy__Config__Rbac__V3__Principal__Authenticated au = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__AUTHENTICATED__INIT;
	id_t_ admin = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__INIT, *p_admin[] = { &admin };
	perm_t any = ENVOY__CONFIG__RBAC__V3__PERMISSION__INIT, *p_any[] = { &any };
	Envoy__Config__Rbac__V3__Policy pol;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry e = ENVOY__CONFIG__RBAC__V3__RBAC__POLICIES_ENTRY__INIT;
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *entries[] = { &e };
	Envoy__Config__Rbac__V3__RBAC rules = ENVOY__CONFIG__RBAC__V3__RBAC__INIT;
	rbac_filter deny = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	const rbac_filter *chain[] = { &deny };
	const char *names[] = { "spiffe://td/ns/x/sa/other", "spiffe://td/ns/x/sa/admin" };
	struct rbac_request r = { .method = "GET", .path = "/", .principal = "spiffe://td/ns/x/sa/client" };
	struct rbac_eval *ev = NULL;
	struct rbac_decision d;
	char err[RBAC_EVAL_TEXT_MAX];

	sm.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
	sm.exact = "spiffe://td/ns/x/sa/admin";
	au.principal_name = &sm;
	admin.identifier_case = ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED;
	admin.authenticated = &au;
	any.rule_case = ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY;
	any.any = 1;
	envoy__config__rbac__v3__policy__init(&pol);
	pol.permissions = p_any;
	pol.n_permissions = 1;
	pol.principals = p_admin;
	pol.n_principals = 1;
	e.key = "deny-admin";
	e.value = &pol;
	rules.action = ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY;
	rules.policies = entries;
	rules.n_policies = 1;
	deny.rules = &rules;

	ck_assert_int_eq(rbac_eval_compile(chain, 1, &ev, err, sizeof(err)), 0);
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	/* the second URI SAN is admin's: denied, as Envoy denies it */
	r.peer_names = names;
	r.n_peer_names = 2;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(!d.allowed);
	ck_assert_str_eq(d.policy, "deny-admin");
	/* no URI SAN at all: the other names still count */
	r.principal = NULL;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(!d.allowed);
	r.n_peer_names = 1;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	/* any authenticated peer: a certificate with no URI SAN is one */
	au.principal_name = NULL;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(!d.allowed);
	r.n_peer_names = 0;
	ck_assert_int_eq(rbac_eval_check(ev, &r, &d, err, sizeof(err)), 0);
	ck_assert(d.allowed);
	rbac_eval_free(ev);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rbac_eval");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, compile_once_check_many);
	tcase_add_test(tc, every_peer_name);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
