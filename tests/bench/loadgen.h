/*
 * loadgen.h - many simulated xDS clients on a few gRPC channels.
 *
 * Each simulated proxy holds one ADS stream (state of the world) and asks
 * what a proxyless gRPC client asks: LDS for its target listeners, RDS for
 * the route configs those listeners name, CDS for the clusters the routes
 * name, EDS for the clusters' EDS service names, ACKing every response with
 * its version and nonce.  Proxy i targets svc-0 (a service every proxy
 * calls, so a change to it is a full push) plus random others.  A share of
 * the proxies presents Envoy-like node metadata (user agent "envoy",
 * ISTIO_VERSION) but still declares GENERATOR: grpc and asks for the same
 * resources: meshd serves a stream the flavour its Node names, so these
 * measure the proxyless flavour; real sidecars are the sidecar mode below.
 *
 * With sidecar set the proxies are sidecars instead (Envoy's chain): a
 * node id "sidecar~IP~bench-I.bench~bench.svc.cluster.local" without
 * GENERATOR, metadata NAMESPACE bench, SERVICE_ACCOUNT and LABELS app=wl-K
 * for one of cfg->workloads label sets (replicas of a few workloads, as a
 * mesh has them); LDS and CDS wildcard, RDS for the route configs the
 * HTTP connection managers name, EDS for the EDS clusters, every response
 * ACKed.  Each one holds the whole mesh, so every change concerns every
 * proxy.
 *
 * With delta set the streams are DeltaAggregatedResources: the same chain,
 * subscribed and unsubscribed incrementally, every response ACKed by its
 * nonce.  Sidecars in Delta (what meshproxy, and Envoy under Istio >=
 * 1.22, speak by default) open LDS and CDS with the legacy wildcard (a
 * first request naming nothing, as Envoy does), subscribe RDS and EDS
 * names as they appear and drop what removed_resources names.
 *
 * One thread: the caller's.  loadgen_run() takes completions off the one
 * completion queue and reacts; nothing happens between calls.
 *
 * Watches measure propagation: arm a slot with a change (an endpoint
 * address, a route weight, a new listener) and the proxies it concerns;
 * each of them is done once it has ACKed a response carrying the change.
 *
 * Functions return 0 or a negative code (common/err.h).
 */
#ifndef MESH_BENCH_LOADGEN_H
#define MESH_BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "tests/bench/bench_mesh.h"

#define LOADGEN_MAX_PROXIES 100000
#define LOADGEN_MAX_CHANNELS 256
#define LOADGEN_MAX_TARGETS 64
#define LOADGEN_WATCH_SLOTS 16

struct loadgen;

struct loadgen_config {
	const char *target;          /* "127.0.0.1:15010" */
	int proxies;
	int channels;                /* HTTP/2 connections the streams spread over */
	int targets;                 /* listeners per proxy, svc-0 included */
	int services;                /* targets are picked from svc-0 .. svc-(services-1) */
	int sidecar_percent;         /* proxies with Envoy-like node metadata (still GENERATOR: grpc) */
	int delta;                   /* DeltaAggregatedResources instead of state of the world */
	int sidecar;                 /* sidecar proxies holding the whole mesh (see above) */
	int workloads;               /* sidecar: distinct label sets (<= 0: 20) */
	uint64_t seed;
};

struct loadgen_stats {
	int proxies;
	int synced;                  /* every subscribed resource received and ACKed once */
	int failed;                  /* streams that ended */
	double all_synced_at;        /* monotonic seconds; 0 until every proxy synced */
	uint64_t responses;
	uint64_t bytes;              /* DiscoveryResponse bytes received */
	uint64_t requests;
	uint64_t resources;          /* resources in all responses */
	uint64_t decode_errors;
};

/* Open the channels and start every proxy's stream. */
int loadgen_new(const struct loadgen_config *cfg, struct loadgen **out);
/* Cancel the streams, wait for gRPC core to give every call back, close. */
void loadgen_free(struct loadgen *lg);   /* NULL is a no-op */

/* React to completions for about ms milliseconds. */
int loadgen_run(struct loadgen *lg, int ms);
void loadgen_stats(const struct loadgen *lg, struct loadgen_stats *out);

/* Seconds on CLOCK_MONOTONIC. */
double loadgen_now(void);

enum loadgen_watch_kind {
	LOADGEN_WATCH_ENDPOINT,      /* EDS: an endpoint with this address */
	LOADGEN_WATCH_WEIGHT,        /* RDS: svc's v1 subset has this weight */
	LOADGEN_WATCH_LISTENER,      /* LDS: svc's listener exists */
};

struct loadgen_watch {
	enum loadgen_watch_kind kind;
	int svc;
	char address[BENCH_MESH_NAME_CAP];   /* ENDPOINT */
	uint32_t weight;                     /* WEIGHT */
	int subscribers;                     /* LISTENER: proxies that ask for it */
	int replace;                         /* LISTENER: the subscribers are instead the proxies */
	int replaced_svc;                    /* asking for replaced_svc, which drop it for svc */
};

/* Arm slot with w.  ENDPOINT and WEIGHT concern every proxy targeting
 * w->svc; LISTENER makes w->subscribers proxies subscribe to svc's
 * listener now (call before the service exists), or with w->replace every
 * proxy asking for w->replaced_svc unsubscribe from it and subscribe to
 * svc instead (as a gRPC client closing one channel and opening another).  Returns the number of
 * proxies concerned, or a negative code. */
int loadgen_watch_arm(struct loadgen *lg, int slot, const struct loadgen_watch *w);
/* Proxies of slot not done yet; *last_ack gets the time of the latest ACK. */
int loadgen_watch_pending(const struct loadgen *lg, int slot, double *last_ack);
void loadgen_watch_disarm(struct loadgen *lg, int slot);

#endif
