/*
 * flavour.c - the client profiles (flavour.h).
 */
#include "controlplane/gen/flavour.h"

const struct gen_profile gen_profile_proxyless = {
	.name = "proxyless",
	.string_match = false,
	.weighted_total = true,
	.max_stream_duration = true,
	.per_caller_matches = false,
	.redirects = false,
	.rewrites = false,
	.mirror = false,
	.header_edits = false,
	.least_request = false,
	.locality_weights = true,
	.endpoint_hostnames = false,
	.tls_files = false,
	.listener_address = false,
	.rbac_audit = false,
	.mixed_tls_port = false,
};
