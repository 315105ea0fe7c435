/*
 * fuzz_inject.c - libFuzzer entry point for sidecar injection
 * (controlplane/inject/): any input, as an AdmissionReview and as a Pod,
 * must be answered (or refused) without crashing, leaking or reading out of
 * bounds, and a patch inject_pod makes must apply to the Pod it was made
 * for (inject_apply: the same operations the API server applies).  The
 * first byte picks the configuration (native sidecar, hold).  `make fuzz`
 * runs it on the golden cases' requests (tests/inject/).
 */
#include "controlplane/inject/inject.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fz_label(void *ctx, const char *ns, const char *key)
{
	(void)ctx;
	(void)ns;
	return strcmp(key, "istio-injection") == 0 ? "enabled" : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inject_config cfg = { .ns_label = fz_label };
	struct mesh_buf out, patch, applied;
	char reason[INJECT_REASON_CAP];
	const char *text;
	int rc;

	if (size < 1)
		return 0;
	cfg.native_sidecar = data[0] & 1;
	cfg.hold_application = (data[0] & 2) != 0;
	text = (const char *)data + 1;
	size--;
	mesh_buf_init(&out, INJECT_MAX_OUTPUT);
	mesh_buf_init(&patch, INJECT_MAX_OUTPUT);
	mesh_buf_init(&applied, INJECT_MAX_OUTPUT * 2);
	(void)inject_review(&cfg, text, size, &out, NULL);
	rc = inject_pod(&cfg, text, size, NULL, &patch, reason, sizeof(reason));
	if (rc == 1 && inject_apply(text, size, patch.data, patch.len, "", &applied) < 0)
		abort(); /* a patch that does not apply to its own Pod */
	mesh_buf_cleanup(&out);
	mesh_buf_cleanup(&patch);
	mesh_buf_cleanup(&applied);
	return 0;
}
