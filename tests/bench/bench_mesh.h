/*
 * bench_mesh.h - the benchmark's mesh: N services written as Istio YAML.
 *
 * Service i is "svc-i.bench.svc.cluster.local" with one GRPC port, ten
 * STATIC endpoints (10.x.y.z, labels version v1/v2), a VirtualService
 * (90/10 split between the subsets, retries, timeout) and a DestinationRule
 * (subsets v1/v2, outlier detection, connection pool), all three in one
 * file "svc-i.yaml" under the config directory.  The state is built from
 * the service count alone, so a second process that builds the same mesh
 * knows what the first one wrote.  Edits rewrite one file atomically
 * (hidden temporary file, then rename), the way a config sync tool does.
 *
 * Functions return 0 or a negative code (common/err.h).
 */
#ifndef MESH_BENCH_MESH_H
#define MESH_BENCH_MESH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MESH_ENDPOINTS 10
#define BENCH_MESH_PORT 8080
#define BENCH_MESH_MAX_SERVICES 30000
/* "svc-29999.bench.svc.cluster.local:8080" and cluster names fit */
#define BENCH_MESH_NAME_CAP 128

struct bench_mesh;

/* A mesh of n services whose files live in dir (not written yet). */
int bench_mesh_new(const char *dir, int n, struct bench_mesh **out);
void bench_mesh_free(struct bench_mesh *m);   /* NULL is a no-op */

/* Write every service's file. */
int bench_mesh_write_all(struct bench_mesh *m);

int bench_mesh_services(const struct bench_mesh *m);
/* Names as proxyless clients see them, into out (BENCH_MESH_NAME_CAP). */
void bench_mesh_host(int svc, char *out, size_t cap);
void bench_mesh_listener(int svc, char *out, size_t cap);
/* subset NULL or "" for the service-wide cluster */
void bench_mesh_cluster(int svc, const char *subset, char *out, size_t cap);

/* Edits; each rewrites the service's file.
 * Move one endpoint of svc to a fresh address, never used before (*addr,
 * dotted quad into a BENCH_MESH_NAME_CAP buffer). */
int bench_mesh_move_endpoint(struct bench_mesh *m, int svc, char *addr, size_t cap);
/* Change the v1 weight of svc's split to a value it does not have now
 * (*weight; v2 gets 100 - *weight). */
int bench_mesh_shift_weight(struct bench_mesh *m, int svc, uint32_t *weight);
/* Add a service (*svc is its index) and write its file. */
int bench_mesh_add_service(struct bench_mesh *m, int *svc);
/* Delete svc's file (the service leaves the mesh; its index is not reused). */
int bench_mesh_remove_service(struct bench_mesh *m, int svc);

#endif
