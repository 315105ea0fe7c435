/*
 * pathnorm.h - request-path normalization as Envoy's HTTP connection
 * manager does it before any filter or route sees the path
 * (ConnectionManagerUtility::maybeNormalizePath: escaped slashes first,
 * then normalize_path, then merge_slashes), and Istio's
 * meshConfig.pathNormalization modes over those HCM fields:
 *   NONE                      nothing;
 *   BASE (DEFAULT)            normalize_path: RFC 3986 dot segments,
 *                             unreserved escapes decoded, '\' as '/';
 *   MERGE_SLASHES             BASE + merge_slashes;
 *   DECODE_AND_MERGE_SLASHES  MERGE_SLASHES + %2F / %5C unescaped
 *                             (path_with_escaped_slashes_action
 *                             UNESCAPE_AND_FORWARD).
 * Shared by meshproxy (which applies it) and `meshctl authz check` (which
 * must judge the same path).  Pure functions, no allocation.
 */
#ifndef MESH_XDS_PATHNORM_H
#define MESH_XDS_PATHNORM_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

/* Longest normalized request target (longer: refused as Envoy refuses a
 * path it cannot normalize). */
#define PATHNORM_MAX 8192

enum pathnorm_slashes {
	PATHNORM_SLASHES_KEEP = 0,   /* KEEP_UNCHANGED and IMPLEMENTATION_SPECIFIC_DEFAULT */
	PATHNORM_SLASHES_REJECT,     /* REJECT_REQUEST: %2F / %5C -> 400 */
	PATHNORM_SLASHES_UNESCAPE,   /* UNESCAPE_AND_FORWARD (and _REDIRECT: forwarded, no 307) */
};

struct pathnorm_opts {
	uint8_t normalize;           /* HCM normalize_path */
	uint8_t merge_slashes;       /* HCM merge_slashes */
	uint8_t slashes;             /* enum pathnorm_slashes: path_with_escaped_slashes_action */
};

/*
 * Normalize a request target's path (the query is kept as is).  Returns 1
 * and out, *outlen (NUL terminated) when the path changed, 0 when it is
 * unchanged (out unused), -EINVAL when the request must be refused with 400
 * (an escaped slash under REJECT_REQUEST, a path not starting with '/', a
 * NUL byte, an escape decoding to a control character), -MESH_ETOOBIG when
 * it does not fit cap.
 */
MESH_MUST_CHECK int pathnorm_apply(const struct pathnorm_opts *o, const char *path, size_t len, char *out,
				   size_t cap, size_t *outlen);

/* Istio's meshConfig.pathNormalization.normalization name -> options
 * (above).  Returns 0, or -EINVAL for an unknown name. */
MESH_MUST_CHECK int pathnorm_mode(const char *name, struct pathnorm_opts *o);

#endif
