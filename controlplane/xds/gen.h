/*
 * gen.h - xDS generators: model in, encoded resources out.
 *
 * One generator per xDS type and proxy flavour; each is a pure function of
 * the model (no I/O, no clocks, no globals), so the same model always gives
 * byte-identical resources and content-hash versions stay stable across
 * meshd restarts.
 *
 * Proxyless gRPC (node metadata GENERATOR: grpc), following Istio's grpcgen:
 *  - LDS: one Listener per service host and port, named "HOST:PORT", with an
 *    ApiListener holding an HttpConnectionManager (RDS over ADS, route
 *    config named "HOST:PORT"; http filters: fault, then router last);
 *  - RDS: one RouteConfiguration per listener, one VirtualHost whose routes
 *    come from the matching VirtualServices (or a default route);
 *  - CDS: "outbound|PORT||HOST" plus "outbound|PORT|SUBSET|HOST" per
 *    DestinationRule subset, type EDS, policy from the DestinationRule;
 *  - EDS: one ClusterLoadAssignment per cluster, endpoints grouped by
 *    locality, each locality with a load_balancing_weight.
 * Everything stays inside what Debian's gRPC 1.51 client accepts (see
 * DESIGN.md "Compatibility floor").
 */
#ifndef MESH_XDS_GEN_H
#define MESH_XDS_GEN_H

#include "controlplane/model/model.h"
#include "controlplane/xds/resource.h"

/* Build every proxyless resource for the model into a new sealed snapshot.
 * Returns 0 and *out, or a negative code. */
int gen_grpc_snapshot(const struct model *m, struct xds_snapshot **out);

#endif
