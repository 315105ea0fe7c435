/*
 * fuzz_snapshot.c - libFuzzer target for what meshproxy does first with any
 * bytes a control plane sends (dataplane/snapshot.c): a DiscoveryResponse
 * unpacked, each Any-wrapped resource (Listener, RouteConfiguration,
 * Cluster, ClusterLoadAssignment, Secret) decoded by px_resource_decode,
 * the set put into a candidate snapshot (px_snapshot_replace, duplicates
 * and unsorted names refused), looked up, shed and decoded again.
 * Not covered here: the engine's compile of the candidate (engine.c needs
 * the whole proxy); the xDS golden and integration tests drive it.
 * Invariants: no crash, leak or sanitizer report; a decoded resource gives
 * a message again after px_snapshot_shed(); every resource of an accepted
 * candidate is found by its name.
 */
#include "dataplane/snapshot.h"

#include "common/xds/types.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RES 64

static int by_name(const void *a, const void *b)
{
	const struct px_resource *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Envoy__Service__Discovery__V3__DiscoveryResponse *m;
	struct px_resource *res[MAX_RES];
	struct px_snapshot *snap = NULL;
	size_t i, n = 0;
	int t = -1;
	char name[32];

	m = envoy__service__discovery__v3__discovery_response__unpack(NULL, size, data);
	if (m == NULL)
		return 0;
	for (i = 0; i < m->n_resources && n < MAX_RES; i++) {
		Google__Protobuf__Any *a = m->resources[i];
		int ti;

		if (a == NULL || a->type_url == NULL)
			continue;
		ti = xds_type_from_url(a->type_url);
		/* one type per response, as a SotW response carries */
		if (ti < 0 || (t >= 0 && ti != t))
			continue;
		t = ti;
		/* the name a real client takes from the message; a made-up
		 * one here keeps names distinct and sorted */
		snprintf(name, sizeof(name), "r%03zu", n);
		if (px_resource_decode((enum xds_type)t, name, a->value.data, a->value.len, &res[n]) != 0)
			continue;
		if (px_resource_msg(res[n]) == NULL)
			abort();
		n++;
	}
	if (t >= 0) {
		qsort(res, n, sizeof(res[0]), by_name);
		if (px_snapshot_replace(NULL, (enum xds_type)t, (const struct px_resource *const *)res, n, &snap) == 0) {
			for (i = 0; i < n; i++)
				if (px_snapshot_find(snap, (enum xds_type)t, res[i]->name) != res[i])
					abort();
			px_snapshot_shed(snap);
			for (i = 0; i < n; i++)
				if (px_resource_msg(res[i]) == NULL)
					abort();
			px_snapshot_unref(snap);
		}
	}
	for (i = 0; i < n; i++)
		px_resource_unref(res[i]);
	envoy__service__discovery__v3__discovery_response__free_unpacked(m, NULL);
	return 0;
}
