/*
 * accesslog.h - meshproxy's access log (--access-log PATH|-): one line per
 * request in Envoy's default format,
 *   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
 *   %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 *   %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 *   "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
 * Lines are buffered and written by a timer (every 200 ms, or when 64 KiB
 * piled up), as Envoy's flush interval does, so the loop never writes a
 * file once per request; a write that would block drops the buffer and
 * counts it rather than waiting.
 */
#ifndef MESH_DATAPLANE_ACCESSLOG_H
#define MESH_DATAPLANE_ACCESSLOG_H

#include "common/err.h"
#include "dataplane/ev.h"

#include <stddef.h>
#include <stdint.h>

/* Envoy's response flags (the ones meshproxy sets) */
enum {
	PX_RF_UH = 1u << 0,  /* no healthy upstream */
	PX_RF_UF = 1u << 1,  /* upstream connection failure */
	PX_RF_UO = 1u << 2,  /* upstream overflow (circuit breaker) */
	PX_RF_NR = 1u << 3,  /* no route */
	PX_RF_URX = 1u << 4, /* upstream retry limit exceeded */
	PX_RF_UT = 1u << 5,  /* upstream request timeout */
	PX_RF_DC = 1u << 6,  /* downstream connection termination */
	PX_RF_UC = 1u << 7,  /* upstream connection termination */
	PX_RF_DI = 1u << 8,  /* delay injected */
	PX_RF_FI = 1u << 9,  /* fault injected */
	PX_RF_LR = 1u << 10, /* local reset */
	PX_RF_DPE = 1u << 11, /* downstream protocol error */
	PX_RF_UPE = 1u << 12, /* upstream protocol error */
	PX_RF_SI = 1u << 13, /* stream idle timeout */
	PX_RF_UR = 1u << 14, /* upstream remote reset (an HTTP/2 server's REFUSED_STREAM) */
};

/* "UF,URX" into buf (or "-"); returns buf */
const char *px_flags_str(unsigned flags, char *buf, size_t cap);

struct px_str {
	const char *p;
	size_t len;
};

struct px_alog_entry {
	uint64_t start_us;            /* wall clock, microseconds since the epoch */
	struct px_str method, path, protocol, xff, ua, rid, authority;
	int status;
	unsigned flags;
	uint64_t rx, tx, duration_ms;
	int64_t upstream_ms;          /* -1: none */
	const char *upstream_host;    /* NULL: "-" */
};

struct px_alog;

/* path "-" is stdout; else the file is opened for appending. */
MESH_MUST_CHECK int px_alog_open(struct ev_loop *loop, const char *path, struct px_alog **out);
void px_alog_free(struct px_alog *l); /* flushes; NULL is a no-op */
void px_alog_write(struct px_alog *l, const struct px_alog_entry *e);
void px_alog_flush(struct px_alog *l);

#endif
