/*
 * cel.h - the build-time checks a CEL expression passes in Envoy/Istio
 * before anything evaluates it (issue 14: Telemetry tagOverrides values).
 *
 * Istio's stats filter (istio/proxy istio_stats.cc, getOrCreateExpression)
 * first parses an expression with CEL's parser: one that does not parse is
 * logged ("Failed to parse expression") and its tag is left out, the
 * configuration is kept.  A parsed expression is then built with CEL's
 * built-in functions only: a call to any other function fails the build,
 * Envoy throws "failed to create an expression" and the filter
 * configuration is rejected.  Everything else is accepted; what fails at
 * evaluation (an unknown identifier, a type error) reads "unknown".
 *
 * cel_check() mirrors those two steps over CEL's grammar (cel-spec
 * langdef): literals (ints, uints, doubles, strings and bytes in any of
 * CEL's quotings, true/false/null), identifiers, selection, indexing,
 * calls, lists, maps, messages, unary/binary/ternary operators.  The
 * function check is by name (arity is not checked).  Nesting past
 * CEL_DEPTH_MAX counts as not parsing, as CEL's parser's recursion limit.
 */
#ifndef MESH_CEL_H
#define MESH_CEL_H

#include <stddef.h>

#define CEL_DEPTH_MAX 64

enum {
	CEL_OK = 0,       /* parses, and calls only CEL built-ins */
	CEL_PARSE = 1,    /* does not parse (Istio: the tag is dropped) */
	CEL_FUNCTION = 2, /* calls a function CEL does not define (Istio: config rejected) */
};

/* Checks text (NUL-terminated).  Returns CEL_OK, CEL_PARSE or
 * CEL_FUNCTION; for the last two why (cap bytes) says where. */
int cel_check(const char *text, char *why, size_t cap);

/*
 * 1 when text is one of the tag expressions meshproxy evaluates
 * (dataplane/istio_stats.h lists them: string literals, request.host,
 * request.headers['NAME'], upstream_peer.app, ..., and string(X) of
 * them), 0 otherwise.  meshd warns about the others at validation: valid
 * CEL among them reads "unknown" in meshproxy's metrics.
 */
int cel_istio_tag_evaluated(const char *text);

#endif
