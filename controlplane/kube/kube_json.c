/*
 * kube_json.c - the Kubernetes client's JSON limits (see kube_json.h).
 *
 * API responses need strictness (a watch stream that carries garbage is
 * dropped, not guessed at) and the byte range of each object; the shared
 * reader in common/json.c gives both, so kube keeps only its limits.
 */
#include "controlplane/kube/kube_json.h"

int kube_json_parse(struct arena *a, const char *data, size_t len, struct json_value **out)
{
	static const struct json_limits lim = {
		.max_depth = KUBE_JSON_MAX_DEPTH,
		.max_input = 0,       /* the caller caps the response */
		.max_number = 0,
		.allow_nul = true,
		.index = false,
	};

	return json_parse_arena(a, data, len, &lim, out);
}
