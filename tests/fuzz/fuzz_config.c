/*
 * fuzz_config.c - libFuzzer entry point for the configuration parser and
 * store: any input must be parsed (or rejected) without crashing, leaking
 * or reading out of bounds.  Not part of `make test`: `make fuzz` builds it
 * (the control-plane libraries rebuilt by clang with coverage under
 * build/fuzz/lib) and runs it for FUZZ_SECONDS on tests/data/config.
 */
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_parse_result r;
	struct cfg_store *s = cfg_store_new();
	struct cfg_snapshot *snap;
	char line[1024];
	size_t i;

	if (!s)
		return 0;
	if (cfg_parse_buffer("fuzz.yaml", (const char *)data, size, &r) == 0) {
		for (i = 0; i < r.n_errors; i++)
			cfg_error_format(&r.errors[i], line, sizeof(line));
		cfg_store_apply_origin(s, "fuzz.yaml", &r);
	}
	cfg_parse_result_cleanup(&r);
	snap = cfg_store_snapshot(s);
	cfg_snapshot_unref(snap);
	cfg_store_free(s);
	return 0;
}
