/*
 * rbac_eval.h - answer "would this request be allowed, and by which
 * policy?" over compiled Envoy RBAC HTTP filter configs.
 *
 * It reads the very messages rbac_compile() produces (and that are sent to
 * proxies), so what is checked is what is served.  Semantics follow
 * Envoy's RBAC filter:
 *  - filters run in chain order; a DENY filter whose policy matches denies;
 *    an ALLOW filter denies unless one of its policies matches; a LOG
 *    filter and shadow rules only record the policy that matched;
 *  - a policy matches when any permission and any principal match;
 *  - policies are tried in name order (Envoy keeps them in a sorted map),
 *    so the reported policy is the first matching name;
 *  - authenticated principal_name is matched against the peer's URI SAN;
 *    without an authenticated peer no `authenticated` matcher matches;
 *  - header matchers see pseudo-headers :method, :path, :authority and the
 *    request headers (names case-insensitive, repeated headers joined
 *    with ","); url_path ignores the query string;
 *  - safe_regex is a full match; the evaluator runs it with POSIX extended
 *    regexes and refuses RE2-only syntax it cannot run faithfully.
 * A matcher it does not implement (metadata, filter_state, string_match
 * with ignore_case on headers, ...) is an error, never a guess.
 *
 * Functions return 0 / a count, or a negative code (err.h) with a message
 * in the caller's error buffer.
 */
#ifndef MESH_XDS_RBAC_EVAL_H
#define MESH_XDS_RBAC_EVAL_H

#include "controlplane/xds/rbac.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest reason text, "DENY (policy ...)" line, and error message. */
#define RBAC_EVAL_TEXT_MAX  1200
/* Headers one request may carry, and joined value bytes of one name. */
#define RBAC_EVAL_MAX_HEADERS 256
#define RBAC_EVAL_HEADER_MAX  16384
/* Nesting of and/or/not the evaluator follows. */
#define RBAC_EVAL_MAX_DEPTH   64

struct rbac_header {
	const char *name;
	const char *value;
};

struct rbac_request {
	const char *principal;       /* peer URI SAN ("spiffe://td/ns/a/sa/b"); NULL: no authenticated peer */
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
	/* the policy that decided (borrowed from the filter), or NULL */
	const char *policy;
	/* set when no policy decided: "no ALLOW policy matched" or "no policy applies" */
	const char *reason;
	/* the first LOG/shadow policy that matched, or NULL */
	const char *audit_policy;
};

#define RBAC_REASON_NO_ALLOW   "no ALLOW policy matched"
#define RBAC_REASON_NO_POLICY  "no policy applies"

/* Does one set of rules match?  Returns 1 and *matched (policy name), 0
 * when no policy matches, or a negative code (err set). */
int rbac_eval_rules(const Envoy__Config__Rbac__V3__RBAC *rules, const struct rbac_request *r,
		    const char **matched, char *err, size_t errcap);

/* Run a filter chain (NULL entries are skipped).  Returns 0 and *out, or a
 * negative code with a message in err. */
int rbac_eval_chain(const rbac_filter *const *chain, size_t n, const struct rbac_request *r,
		    struct rbac_decision *out, char *err, size_t errcap);

/* The chain rbac_compile() implies: deny, then allow, then audit.  Any may
 * be NULL. */
int rbac_eval(const rbac_filter *deny, const rbac_filter *allow, const rbac_filter *audit,
	      const struct rbac_request *r, struct rbac_decision *out, char *err, size_t errcap);

/* "ALLOW (policy ns[x]-policy[y]-rule[0])" / "DENY (no ALLOW policy matched)"
 * into buf; returns buf. */
const char *rbac_decision_format(const struct rbac_decision *d, char *buf, size_t cap);

#endif
