/*
 * rbac_eval.h - answer "would this request be allowed, and by which
 * policy?" over Envoy RBAC HTTP filter configs.
 *
 * The one evaluator: meshproxy enforces with it, `meshctl authz check` and
 * the tests judge with it.  It reads the very messages meshd's
 * rbac_compile() produces (and that are sent to proxies), so what is
 * checked is what is served.
 *
 * Two steps.  rbac_eval_compile() takes a filter chain once, checks every
 * matcher in it, compiles its regexes and sorts its policies into an
 * opaque struct rbac_eval; rbac_eval_check() then judges any number of
 * requests against it without allocating (and may run on several threads
 * at once: the compiled object is only read).  Semantics follow
 * Envoy's RBAC filter:
 *  - filters run in chain order; a DENY filter whose policy matches denies;
 *    an ALLOW filter denies unless one of its policies matches; a LOG
 *    filter and shadow rules only record the policy that matched;
 *  - a policy matches when any permission and any principal match;
 *  - policies are tried in name order (Envoy keeps them in a sorted map),
 *    so the reported policy is the first matching name;
 *  - authenticated principal_name is matched against the peer's URI SAN
 *    and, as Envoy's AuthenticatedMatcher, its other URI and DNS SANs;
 *    without an authenticated peer no `authenticated` matcher matches;
 *  - header matchers see pseudo-headers :method, :path, :authority and the
 *    request headers (names case-insensitive, repeated headers joined
 *    with ","); url_path ignores the query string;
 *  - safe_regex is a full match run by RE2 (common/re.h), with the
 *    matcher's max_program_size or else Istio's runtime limit (32768).
 *  - metadata matchers read filter "istio_authn" only (the verified JWT,
 *    struct rbac_jwt): string, list one_of string, present and or
 *    matchers; without a JWT no metadata matcher matches (invert aside).
 * A matcher it does not implement (other metadata, filter_state,
 * safe_regex with ignore_case, ...) fails the compile step, never a guess.
 *
 * Functions return 0 / a count, or a negative code (err.h) with a message
 * in the caller's error buffer.
 */
#ifndef MESH_XDS_RBAC_EVAL_H
#define MESH_XDS_RBAC_EVAL_H

#include "common/err.h"

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The HTTP RBAC filter config (the same typedef as controlplane's rbac.h). */
typedef Envoy__Extensions__Filters__Http__Rbac__V3__RBAC rbac_filter;

/* Longest reason text, "DENY (policy ...)" line, and error message. */
#define RBAC_EVAL_TEXT_MAX  1200
/* Headers one request may carry, and joined value bytes of one name (also
 * the longest request path). */
#define RBAC_EVAL_MAX_HEADERS 256
#define RBAC_EVAL_HEADER_MAX  16384
/* Nesting of and/or/not the evaluator follows. */
#define RBAC_EVAL_MAX_DEPTH   64
/* Policies in one set of rules, and bytes of one regex. */
#define RBAC_EVAL_MAX_POLICIES 65536
#define RBAC_EVAL_REGEX_MAX    8192

struct rbac_header {
	const char *name;
	const char *value;
};

/* A request's verified JWT as RBAC sees it: the dynamic metadata of
 * filter "istio_authn" that Istio's authn filter derives from the payload
 * jwt_authn verified:
 *   request.auth.principal  "iss/sub"
 *   request.auth.audiences  the payload's aud (a string, or the first of a list)
 *   request.auth.presenter  azp
 *   request.auth.claims     the payload; [request.auth.claims, a, b] walks
 *                           nested objects, a string claim is a list of one
 * Both pointers are borrowed from whoever verified the token
 * (dataplane/jwt.c) or read the claims (meshctl authz check --jwt-claims). */
struct json_value;
struct rbac_jwt {
	const char *principal;       /* "iss/sub"; NULL: no principal */
	const struct json_value *payload; /* the payload, a JSON object */
};

/* The metadata namespace and keys above (Istio's authn filter names). */
#define RBAC_AUTHN_FILTER       "istio_authn"
#define RBAC_AUTHN_PRINCIPAL    "request.auth.principal"
#define RBAC_AUTHN_AUDIENCES    "request.auth.audiences"
#define RBAC_AUTHN_PRESENTER    "request.auth.presenter"
#define RBAC_AUTHN_CLAIMS       "request.auth.claims"

struct rbac_request {
	const struct rbac_jwt *jwt;  /* the verified JWT; NULL: none (no token, or no RequestAuthentication) */
	const char *principal;       /* peer URI SAN ("spiffe://td/ns/a/sa/b"); NULL: no authenticated peer */
	const char *const *peer_names; /* the certificate's other names Envoy's authenticated matcher tries:
	                              * further URI SANs, then DNS SANs (borrowed; none when n is 0) */
	size_t n_peer_names;
	const char *source_ip;       /* downstream address of the connection; NULL: unknown */
	const char *remote_ip;       /* original client (x-forwarded-for); NULL: source_ip */
	const char *destination_ip;  /* NULL: unknown */
	uint32_t destination_port;   /* 0: unknown */
	const char *method;          /* :method; gRPC calls are POST */
	const char *path;            /* :path, may carry a query */
	const char *host;            /* :authority; NULL: absent */
	const char *sni;             /* NULL: no SNI */
	const struct rbac_header *headers;
	size_t n_headers;
};

struct rbac_decision {
	bool allowed;
	/* the policy that decided (borrowed from the filter messages), or NULL */
	const char *policy;
	/* set when no policy decided: "no ALLOW policy matched" or "no policy applies" */
	const char *reason;
	/* the first LOG/shadow policy that matched, or NULL */
	const char *audit_policy;
};

#define RBAC_REASON_NO_ALLOW   "no ALLOW policy matched"
#define RBAC_REASON_NO_POLICY  "no policy applies"

/* A compiled filter chain (opaque). */
struct rbac_eval;

/*
 * Compile a filter chain (n filters in chain order; NULL entries are
 * skipped).  The messages are borrowed: they must outlive the result, which
 * points into them (policy names in decisions come from them).  Returns 0
 * and *out (free with rbac_eval_free()), or -EINVAL (malformed matcher),
 * -ENOTSUP (a matcher or regex the evaluator does not run), -MESH_ETOOBIG
 * (over a limit above), -ENOMEM; err then names the policy and matcher.
 */
MESH_MUST_CHECK int rbac_eval_compile(const rbac_filter *const *chain, size_t n, struct rbac_eval **out, char *err,
				      size_t errcap);
void rbac_eval_free(struct rbac_eval *e);    /* NULL is a no-op */

/*
 * Judge one request: 0 and *out, or a negative code with a message in err
 * when the request itself cannot be judged (an address that is not an IP,
 * more than RBAC_EVAL_MAX_HEADERS headers, a value over
 * RBAC_EVAL_HEADER_MAX).  Allocates nothing itself (RE2 may grow its DFA
 * cache inside a compiled regex, within its memory budget); uses RBAC_EVAL_HEADER_MAX bytes of stack.
 */
MESH_MUST_CHECK int rbac_eval_check(const struct rbac_eval *e, const struct rbac_request *r,
				    struct rbac_decision *out, char *err, size_t errcap);

/* What one filter of the chain decided, for its own stats (Envoy counts
 * allowed/denied and shadow_allowed/shadow_denied per filter). */
enum { RBAC_FILTER_NONE = -1, RBAC_FILTER_DENIED = 0, RBAC_FILTER_ALLOWED = 1 };
struct rbac_filter_result {
	int rules;                   /* RBAC_FILTER_*: NONE when the filter has no rules or was not reached */
	int shadow;                  /* its shadow rules' verdict; NONE when it has none or was not reached */
	const char *policy;          /* the rules' matching policy, or NULL */
	const char *shadow_policy;   /* the shadow rules' matching policy, or NULL */
};

/* rbac_eval_check(), and each[i] (i < n_each, chain order) filled with what
 * filter i decided; filters after a denying one are left NONE, as Envoy
 * stops the chain there. */
MESH_MUST_CHECK int rbac_eval_check_each(const struct rbac_eval *e, const struct rbac_request *r,
					 struct rbac_decision *out, struct rbac_filter_result *each, size_t n_each,
					 char *err, size_t errcap);

/* One-off forms (compile, check, free) for callers that judge one request.
 * rbac_eval() runs the chain rbac_compile() implies: audit, deny, allow (any
 * may be NULL). */
MESH_MUST_CHECK int rbac_eval_chain(const rbac_filter *const *chain, size_t n, const struct rbac_request *r,
				    struct rbac_decision *out, char *err, size_t errcap);
MESH_MUST_CHECK int rbac_eval(const rbac_filter *deny, const rbac_filter *allow, const rbac_filter *audit,
			      const struct rbac_request *r, struct rbac_decision *out, char *err, size_t errcap);

/* Does one set of rules match?  Returns 1 and *matched (policy name), 0
 * when no policy matches, or a negative code (err set).  One-off form. */
MESH_MUST_CHECK int rbac_eval_rules(const Envoy__Config__Rbac__V3__RBAC *rules, const struct rbac_request *r,
				    const char **matched, char *err, size_t errcap);

/* "ALLOW (policy ns[x]-policy[y]-rule[0])" / "DENY (no ALLOW policy matched)"
 * into buf; returns buf. */
const char *rbac_decision_format(const struct rbac_decision *d, char *buf, size_t cap);

#endif
