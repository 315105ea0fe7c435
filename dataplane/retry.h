/*
 * retry.h - Envoy's retry decisions for meshproxy, as pure functions.
 *
 * The proxy (proxy.c) asks, for each failed attempt, whether the route's
 * retry policy (router.h's struct router_retry) retries it, and how long
 * to back off first.  Both follow Envoy's router
 * (source/common/router/retry_state_impl.cc and
 * source/common/common/backoff_strategy.cc) so that a policy meshd sends
 * behaves as it would under Envoy.  No I/O, no allocation, no clock: the
 * caller passes the random value, so tests can feed a seeded sequence.
 */
#ifndef MESH_DATAPLANE_RETRY_H
#define MESH_DATAPLANE_RETRY_H

#include "dataplane/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What ended an attempt. */
enum retry_failure {
	RETRY_F_CONNECT,   /* no connection to the host (refused, connect timeout) */
	RETRY_F_RESET,     /* the connection closed or failed before a response head */
	RETRY_F_REFUSED,   /* an HTTP/2 server refused the stream unprocessed (REFUSED_STREAM) */
	RETRY_F_TIMEOUT,   /* per-try (or per-try idle) timeout before a response head */
	RETRY_F_HEADERS,   /* a response head came (status and the flags below) */
};

/* Response headers that decide before the status (Envoy). */
#define RETRY_RESP_OVERLOADED  0x1u /* x-envoy-overloaded: never retried (router filter docs) */
#define RETRY_RESP_RATELIMITED 0x2u /* x-envoy-ratelimited: retried only on envoy-ratelimited */
/* A grpc-status in the response head (a trailers-only gRPC answer, where
 * Envoy's grpc retry_on conditions look): the code + 1 in these bits. */
#define RETRY_RESP_GRPC_SHIFT 8
#define RETRY_RESP_GRPC_MASK (0xffu << RETRY_RESP_GRPC_SHIFT)

/* The RETRY_RESP_GRPC bits for a grpc-status value (v, len; len 0 or not
 * a code 0..99: none). */
unsigned retry_resp_grpc(const char *v, size_t len);

/* Whether rp's retry_on covers this failure (Envoy's wouldRetryFromHeaders
 * / wouldRetryFromReset): true or false; rp NULL is false.  status and
 * resp are read for RETRY_F_HEADERS only.  Attempt counts, budgets and
 * whether the request can be replayed are the caller's. */
bool retry_condition(const struct router_retry *rp, enum retry_failure kind, unsigned status, unsigned resp);

/* Envoy's JitteredExponentialBackOffStrategy: the n-th retry waits a
 * random time in [0, min(base * 2^(n-1), max)) ms.  The interval doubles
 * while it is under max / 2, then stays at max. */
struct retry_backoff {
	uint64_t base_ms, max_ms, next_ms;
};

/* base_ms >= 1 (0 is taken as 1); max_ms < base_ms is taken as base_ms. */
void retry_backoff_init(struct retry_backoff *b, uint64_t base_ms, uint64_t max_ms);
/* The next wait in ms, from rnd (any 64-bit random value); advances b. */
uint64_t retry_backoff_next(struct retry_backoff *b, uint64_t rnd);

#endif
