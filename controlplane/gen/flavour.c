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
	.istio_retry = false,
	.no_match_fallback = true,
	.least_request = false,
	.locality_weights = true,
	.endpoint_hostnames = false,
	.tls_files = false,
	.cluster_extras = false,
	.sds_tls = false,
	.tls_mode_match = false,
	.listener_address = false,
	.rbac_audit = false,
	.mixed_tls_port = false,
};

const struct gen_profile gen_profile_sidecar = {
	.name = "sidecar",
	.string_match = true,
	.weighted_total = false,
	.max_stream_duration = false,
	.per_caller_matches = true,
	.redirects = true,
	.rewrites = true,
	.mirror = true,
	.header_edits = true,
	.istio_retry = true,
	.no_match_fallback = false,
	.least_request = true,
	.locality_weights = true,
	.endpoint_hostnames = true,
	.tls_files = false,
	.cluster_extras = true,
	.sds_tls = true,
	.tls_mode_match = true,
	.listener_address = true,
	.rbac_audit = true,
	.mixed_tls_port = true,
};
