/*
 * bench_mesh.c - the benchmark's mesh of services and its YAML files.
 *
 * Keeps, per service, the ten endpoint addresses and the v1 weight of the
 * VirtualService split; renders a service's ServiceEntry, VirtualService
 * and DestinationRule into one multi-document file.  Fresh addresses for
 * moved endpoints come from 10.128.0.0/9, which the initial addresses
 * (10.(i/250).(i%250).(j+1), i below BENCH_MESH_MAX_SERVICES) never reach.  See bench_mesh.h.
 */
#include "tests/bench/bench_mesh.h"

#include "common/buf.h"
#include "common/err.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* one service file is about 2.5 KiB */
#define BENCH_MESH_FILE_MAX (64 * 1024)
#define BENCH_MESH_PATH_CAP 4096

struct bench_service {
	uint32_t addr[BENCH_MESH_ENDPOINTS];  /* host order */
	uint32_t weight_v1;
	unsigned moves;                       /* next endpoint to move */
};

struct bench_mesh {
	char *dir;
	struct bench_service *svc;
	int n, cap;
	uint32_t next_fresh;                  /* fresh address counter */
};

static void addr_str(uint32_t a, char *out, size_t cap)
{
	snprintf(out, cap, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

static void service_init(struct bench_service *s, int i)
{
	int j;

	memset(s, 0, sizeof(*s));
	for (j = 0; j < BENCH_MESH_ENDPOINTS; j++)
		s->addr[j] = (10u << 24) | ((uint32_t)(i / 250) << 16) | ((uint32_t)(i % 250) << 8) | (uint32_t)(j + 1);
	s->weight_v1 = 90;
}

static int mesh_grow(struct bench_mesh *m, int n)
{
	struct bench_service *v;
	int cap;

	if (n <= m->cap)
		return 0;
	cap = m->cap ? m->cap : 16;
	while (cap < n)
		cap *= 2;
	v = realloc(m->svc, (size_t)cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m->svc = v;
	m->cap = cap;
	return 0;
}

int bench_mesh_new(const char *dir, int n, struct bench_mesh **out)
{
	struct bench_mesh *m = NULL;
	int i, rc = 0;

	*out = NULL;
	if (!dir || n < 1 || n > BENCH_MESH_MAX_SERVICES)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->dir = strdup(dir);
	if (!m->dir) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mesh_grow(m, n);
	if (rc < 0)
		goto out;
	for (i = 0; i < n; i++)
		service_init(&m->svc[i], i);
	m->n = n;
	*out = m;
	m = NULL;
out:
	bench_mesh_free(m);
	return rc;
}

void bench_mesh_free(struct bench_mesh *m)
{
	if (!m)
		return;
	free(m->svc);
	free(m->dir);
	free(m);
}

int bench_mesh_services(const struct bench_mesh *m)
{
	return m->n;
}

void bench_mesh_host(int svc, char *out, size_t cap)
{
	snprintf(out, cap, "svc-%d.bench.svc.cluster.local", svc);
}

void bench_mesh_listener(int svc, char *out, size_t cap)
{
	snprintf(out, cap, "svc-%d.bench.svc.cluster.local:%d", svc, BENCH_MESH_PORT);
}

void bench_mesh_cluster(int svc, const char *subset, char *out, size_t cap)
{
	snprintf(out, cap, "outbound|%d|%s|svc-%d.bench.svc.cluster.local", BENCH_MESH_PORT, subset ? subset : "",
		 svc);
}

static void render_service(const struct bench_service *s, int i, struct mesh_buf *b)
{
	char host[BENCH_MESH_NAME_CAP], a[32];
	int j;

	bench_mesh_host(i, host, sizeof(host));
	mesh_buf_printf(b,
			"apiVersion: networking.istio.io/v1\n"
			"kind: ServiceEntry\n"
			"metadata:\n  name: svc-%d\n  namespace: bench\n"
			"spec:\n"
			"  hosts:\n  - %s\n"
			"  location: MESH_INTERNAL\n"
			"  resolution: STATIC\n"
			"  ports:\n  - number: %d\n    name: grpc\n    protocol: GRPC\n"
			"  endpoints:\n",
			i, host, BENCH_MESH_PORT);
	for (j = 0; j < BENCH_MESH_ENDPOINTS; j++) {
		addr_str(s->addr[j], a, sizeof(a));
		mesh_buf_printf(b,
				"  - address: %s\n"
				"    ports:\n      grpc: %d\n"
				"    labels:\n      app: svc-%d\n      version: %s\n",
				a, BENCH_MESH_PORT, i, j % 2 ? "v2" : "v1");
	}
	mesh_buf_printf(b,
			"---\n"
			"apiVersion: networking.istio.io/v1\n"
			"kind: VirtualService\n"
			"metadata:\n  name: svc-%d\n  namespace: bench\n"
			"spec:\n"
			"  hosts:\n  - %s\n"
			"  http:\n"
			"  - route:\n"
			"    - destination:\n        host: %s\n        subset: v1\n      weight: %u\n"
			"    - destination:\n        host: %s\n        subset: v2\n      weight: %u\n"
			"    timeout: 5s\n"
			"    retries:\n      attempts: 3\n      perTryTimeout: 2s\n      retryOn: unavailable,cancelled\n",
			i, host, host, s->weight_v1, host, 100 - s->weight_v1);
	mesh_buf_printf(b,
			"---\n"
			"apiVersion: networking.istio.io/v1\n"
			"kind: DestinationRule\n"
			"metadata:\n  name: svc-%d\n  namespace: bench\n"
			"spec:\n"
			"  host: %s\n"
			"  trafficPolicy:\n"
			"    loadBalancer:\n      simple: ROUND_ROBIN\n"
			"    connectionPool:\n"
			"      tcp:\n        maxConnections: 100\n        connectTimeout: 1s\n"
			"      http:\n        http2MaxRequests: 1000\n        maxRequestsPerConnection: 100\n"
			"    outlierDetection:\n      consecutive5xxErrors: 5\n      interval: 10s\n"
			"      baseEjectionTime: 30s\n      maxEjectionPercent: 50\n"
			"  subsets:\n"
			"  - name: v1\n    labels:\n      version: v1\n"
			"  - name: v2\n    labels:\n      version: v2\n",
			i, host);
}

int bench_mesh_remove_service(struct bench_mesh *m, int svc)
{
	char path[BENCH_MESH_PATH_CAP];

	if (svc < 0 || svc >= m->n)
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/svc-%d.yaml", m->dir, svc) >= sizeof(path))
		return -ENAMETOOLONG;
	return unlink(path) < 0 ? -errno : 0;
}

/* Write dir/svc-i.yaml through dir/.svc-i.yaml.tmp and rename(). */
static int write_service(const struct bench_mesh *m, int i)
{
	char path[BENCH_MESH_PATH_CAP], tmp[BENCH_MESH_PATH_CAP];
	struct mesh_buf b;
	size_t off = 0;
	int fd = -1, rc = 0;

	mesh_buf_init(&b, BENCH_MESH_FILE_MAX);
	if ((size_t)snprintf(path, sizeof(path), "%s/svc-%d.yaml", m->dir, i) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.svc-%d.yaml.tmp", m->dir, i) >= sizeof(tmp)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	render_service(&m->svc[i], i, &b);
	if (b.err) {
		rc = b.err;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (off < b.len) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	mesh_buf_cleanup(&b);
	return rc;
}

int bench_mesh_write_all(struct bench_mesh *m)
{
	int i, rc = 0;

	for (i = 0; i < m->n && rc == 0; i++)
		rc = write_service(m, i);
	return rc;
}

int bench_mesh_move_endpoint(struct bench_mesh *m, int svc, char *addr, size_t cap)
{
	struct bench_service *s;
	uint32_t a;

	if (svc < 0 || svc >= m->n)
		return -EINVAL;
	s = &m->svc[svc];
	/* 10.128.0.1 onwards: 2^23 fresh addresses */
	a = (10u << 24) | (1u << 23) | (++m->next_fresh & 0x7fffff);
	s->addr[s->moves++ % BENCH_MESH_ENDPOINTS] = a;
	addr_str(a, addr, cap);
	return write_service(m, svc);
}

int bench_mesh_shift_weight(struct bench_mesh *m, int svc, uint32_t *weight)
{
	struct bench_service *s;

	if (svc < 0 || svc >= m->n)
		return -EINVAL;
	s = &m->svc[svc];
	/* 90 -> 80 -> ... -> 10 -> 90: always a value the split does not have */
	s->weight_v1 = s->weight_v1 <= 10 ? 90 : s->weight_v1 - 10;
	*weight = s->weight_v1;
	return write_service(m, svc);
}

int bench_mesh_add_service(struct bench_mesh *m, int *svc)
{
	int rc;

	if (m->n >= BENCH_MESH_MAX_SERVICES)
		return -MESH_ETOOBIG;
	rc = mesh_grow(m, m->n + 1);
	if (rc < 0)
		return rc;
	service_init(&m->svc[m->n], m->n);
	*svc = m->n++;
	return write_service(m, *svc);
}
