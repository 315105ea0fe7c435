/*
 * kube_stream.h - splits a Kubernetes watch response into events.
 *
 * A watch response is a stream of JSON objects ({"type": ..., "object":
 * ...}), one after another, usually newline-separated, delivered in HTTP
 * chunks whose boundaries fall anywhere (inside a string, an escape, a
 * multi-byte character).  kube_stream_feed() takes bytes as they arrive and
 * calls back once per complete top-level object with its exact text.  Only
 * the bytes of the event being assembled are kept; one event may not exceed
 * the cap given at init (KUBE_STREAM_MAX_EVENT by default).
 *
 * The framer checks structure only (braces, strings, escapes); the caller
 * parses each event with kube_json.  Not thread-safe; one per stream.
 */
#ifndef MESH_KUBE_STREAM_H
#define MESH_KUBE_STREAM_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>

#define KUBE_STREAM_MAX_EVENT (16u << 20)

struct kube_stream {
	struct mesh_buf buf;         /* the event being assembled */
	int depth;                   /* open braces/brackets */
	bool in_str, esc;
	int err;                     /* sticky: once failed, the stream is dead */
	size_t n_events;
};

/* Return 0 to go on, < 0 to stop: kube_stream_feed returns that code. */
typedef int (*kube_stream_fn)(void *ctx, const char *event, size_t len);

void kube_stream_init(struct kube_stream *s, size_t max_event);
void kube_stream_reset(struct kube_stream *s);   /* a new response */
void kube_stream_cleanup(struct kube_stream *s);

/* Returns 0, -MESH_ETOOBIG (an event longer than the cap), -MESH_EPARSE
 * (bytes between events that are neither whitespace nor an object), or
 * what fn returned.  Any error is sticky until kube_stream_reset(). */
int kube_stream_feed(struct kube_stream *s, const char *data, size_t len, kube_stream_fn fn, void *ctx);
/* True when the stream stopped between events (a clean end of response). */
bool kube_stream_idle(const struct kube_stream *s);

#endif
