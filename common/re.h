/*
 * re.h - regular expressions with RE2, the engine and syntax Envoy and
 * Istio use (linear-time matching, no backreferences), behind a C API.
 *
 * Every regex meshd and meshproxy evaluate comes through here: route and
 * header matches, regex rewrites (Envoy's RegexMatchAndSubstitute), and,
 * later, meshd's validation.  A pattern is compiled once (mesh_re_new) and
 * matched many times from any thread; matching and replacing never
 * allocate on the caller's side (RE2 keeps its DFA cache inside the
 * compiled object, bounded by its memory budget).
 *
 * Compile options are Envoy's (source/common/common/regex.cc): RE2's
 * defaults (UTF-8, leftmost-first), quiet, and the program-size limit of
 * GoogleRE2.max_program_size, 100 when unset ("re2.max_program_size.
 * error_level"), so a pattern too costly to run is rejected at config time.
 *
 * Implemented in re.cc (C++, linked against libre2); callers need the C++
 * runtime at link time (the Makefile adds it to the binaries that use it).
 */
#ifndef MESH_RE_H
#define MESH_RE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Envoy's default max program size (runtime re2.max_program_size.error_level). */
#define MESH_RE_MAX_PROGRAM_SIZE 100
/* The limit under Istio: its bootstrap sets Envoy's runtime
 * re2.max_program_size.error_level to 32768 (tools/packaging/common/
 * envoy_bootstrap.json), so every regex istiod accepts runs.  meshproxy's
 * router uses it when the RegexMatcher names none, meshd's validator and the
 * RBAC evaluator refuse exactly what it would. */
#define MESH_RE_ISTIO_MAX_PROGRAM_SIZE 32768
/* Capturing groups a substitution may use: \0 .. \9, as RE2::Rewrite. */
#define MESH_RE_MAX_GROUPS       10

struct mesh_re;

/*
 * Compile pattern[0..len) (not NUL-terminated necessarily).  max_program_size
 * 0 means Envoy's default (MESH_RE_MAX_PROGRAM_SIZE); larger programs are
 * refused with Envoy's message.  Returns 0 with *out owned by the caller
 * (mesh_re_free), -EINVAL with a human-readable reason in err[cap] (RE2's
 * error or the program-size text), or -ENOMEM.
 */
int mesh_re_new(const char *pattern, size_t len, unsigned max_program_size, struct mesh_re **out, char *err,
		size_t cap);
/* Free; NULL is a no-op. */
void mesh_re_free(struct mesh_re *re);

/* The pattern as given (NUL-terminated copy, owned by re). */
const char *mesh_re_pattern(const struct mesh_re *re);
/* RE2's program size (what the limit compares), and capturing groups. */
int mesh_re_program_size(const struct mesh_re *re);
int mesh_re_groups(const struct mesh_re *re);

/* Does the whole of s[0..len) match (RE2::FullMatch, what Envoy's
 * safe_regex matchers use)? */
bool mesh_re_full_match(const struct mesh_re *re, const char *s, size_t len);
/* Does some part of s[0..len) match (RE2::PartialMatch)? */
bool mesh_re_partial_match(const struct mesh_re *re, const char *s, size_t len);

/*
 * Is sub a valid substitution for re: "\N" references a group the
 * pattern has (N <= groups), "\\" is a backslash, nothing else follows
 * a backslash (RE2::CheckRewriteString).  Returns 0 or -EINVAL with the
 * reason in err[cap].
 */
int mesh_re_check_rewrite(const struct mesh_re *re, const char *sub, char *err, size_t cap);

/*
 * Replace the first match (global false: RE2::Replace) or every
 * non-overlapping match (global true: RE2::GlobalReplace, what Envoy's
 * RegexMatchAndSubstitute does) of re in s[0..len) with sub, writing the
 * result, NUL-terminated, into out[cap]; *out_len gets its length.  With
 * no match the input is copied unchanged.  sub must have passed
 * mesh_re_check_rewrite().  Returns the number of replacements (>= 0), or
 * -ENOSPC when out is too small (out then holds a truncated prefix).
 * Does not allocate.
 */
int mesh_re_replace(const struct mesh_re *re, const char *s, size_t len, const char *sub, bool global,
		    char *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
