/*
 * fuzz_validate.c - libFuzzer entry point for the validating webhook
 * (controlplane/webhook/validate.c): any input as an AdmissionReview must
 * be answered without crashing, leaking or reading out of bounds, and an
 * answer (return 0) must be one JSON object holding response.allowed, as
 * the API server needs it.  `make fuzz` seeds it with tests/data/config's
 * objects wrapped in AdmissionReviews (tests/fuzz/run.sh).
 */
#include "common/json.h"
#include "controlplane/webhook/validate.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mesh_buf out;
	struct json_value *root = NULL;
	const struct json_value *allowed;
	int rc;

	mesh_buf_init(&out, 8u << 20);
	rc = webhook_validate_handle(NULL, (const char *)data, size, &out);
	if (rc == 0) {
		if (json_parse(out.data, out.len, &root) < 0)
			abort(); /* an answer the API server could not read */
		allowed = json_get(json_get(root, "response"), "allowed");
		if (!allowed || allowed->type != JSON_BOOL)
			abort();
		json_free(root);
	}
	mesh_buf_cleanup(&out);
	return 0;
}
