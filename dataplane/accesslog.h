/*
 * accesslog.h - meshproxy's access logs.
 *
 * Two sources, both written by the same buffered sinks:
 *  - the xDS config (issue 14): every HTTP connection manager and TCP proxy
 *    carries its own access_log list, as Envoy's; each entry is an
 *    envoy.access_loggers.file (path, log_format: text_format_source or
 *    json_format, Envoy's command operators) with an optional
 *    envoy.access_loggers.extension_filters.cel ExpressionFilter.  A list
 *    is compiled once per config (px_alog_cfg_new); anything meshproxy
 *    cannot honour (another logger, an unknown command operator, an
 *    expression outside the subset alogexpr.h takes) refuses the config
 *    with the reason (NACK).  A listener without access_log logs nothing.
 *  - --access-log PATH|- (standalone use, without meshd): one more log of
 *    every request on every listener in Envoy's default format below,
 *    written whatever the config says.
 *   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
 *   %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 *   %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 *   "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
 * Lines are buffered per file and written by a timer (every 200 ms, or when
 * 64 KiB piled up), as Envoy's flush interval does, so the loop never
 * writes a file once per request.  No write ever waits: stdout that is a
 * pipe or terminal is written through a non-blocking description of its
 * own (a socket with MSG_DONTWAIT), files are opened O_NONBLOCK (a FIFO
 * without a reader is refused); when the reader does not keep up the rest
 * stays buffered (1 MiB) for the timer, lines that do not fit are dropped
 * whole and counted; any other failed write drops the buffer, counted.  Files are opened when a config is
 * compiled (Envoy opens them on its main thread too) and stay open for the
 * engine's life: a config swap never loses buffered lines.
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

/* Envoy's StreamInfo::ResponseFlag bit values (CEL's response.flags) of flags. */
uint64_t px_flags_envoy(unsigned flags);

struct px_str {
	const char *p;
	size_t len;
};

/* Up to this many request headers beyond the fixed fields below may be
 * named by one config's formats and filters (%REQ(X)%, request.headers). */
#define PX_ALOG_MAX_HDRS 16

/* One request (or TCP connection) as the formatters and filters see it.
 * Strings are borrowed for the call; NULL / empty: the value is absent
 * ("-" in text, null in JSON). */
struct px_alog_entry {
	uint64_t start_us;            /* wall clock, microseconds since the epoch */
	struct px_str method, path, protocol, xff, ua, rid, authority;
	int status;                   /* 0: none (a TCP connection) */
	unsigned flags;
	uint64_t rx, tx, duration_ms;
	int64_t upstream_ms;          /* -1: none */
	const char *upstream_host;    /* "IP:PORT" */
	/* issue 14: the rest of Envoy's command operators */
	const char *upstream_cluster; /* %UPSTREAM_CLUSTER%, xds.cluster_name */
	const char *route_name;       /* %ROUTE_NAME% */
	const char *details;          /* %RESPONSE_CODE_DETAILS% */
	const char *termination;      /* %CONNECTION_TERMINATION_DETAILS% */
	const char *transport_failure; /* %UPSTREAM_TRANSPORT_FAILURE_REASON% */
	const char *sni;              /* %REQUESTED_SERVER_NAME% */
	const char *downstream_remote; /* "IP:PORT" */
	const char *downstream_local;
	const char *upstream_local;
	const char *peer_principal;   /* the downstream's verified SPIFFE id (%DOWNSTREAM_PEER_URI_SAN%) */
	int mtls;                     /* the downstream connection is mutual TLS (connection.mtls) */
	int grpc_status1;             /* the response's grpc-status + 1, 0: none (%GRPC_STATUS%) */
	unsigned attempts;            /* upstream attempts, 0: none (%UPSTREAM_REQUEST_ATTEMPT_COUNT%) */
	/* the values of the config's extra headers (px_alog_cfg_header), in
	 * its order; {NULL, 0}: the request did not have it */
	const struct px_str *hdrs;
	size_t n_hdrs;
};

/* "IP:PORT" of sa (IPv6 as "[IP]:PORT") into buf, as Envoy prints an
 * address; NULL when len is 0 or the family is neither. */
struct sockaddr;
const char *px_alog_addr(const struct sockaddr *sa, unsigned len, char *buf, size_t cap);

/* A buffered file (or stdout) sink. */
struct px_alog;

/* path "-" or "/dev/stdout" is stdout; else the file is opened for
 * appending.  0 or -errno. */
MESH_MUST_CHECK int px_alog_open(struct ev_loop *loop, const char *path, struct px_alog **out);
void px_alog_free(struct px_alog *l); /* flushes; NULL is a no-op */
/* The --access-log line (Envoy's default format above) of e. */
void px_alog_write(struct px_alog *l, const struct px_alog_entry *e);
void px_alog_flush(struct px_alog *l);
/* Envoy's access log reopen (SIGUSR1, POST /reopen_logs), for rotation by
 * rename: what is buffered is written to the old file, then the path is
 * opened again (created when it was moved away or deleted) and later
 * lines go there.  stdout is left as it is.  0, or open's -errno with the
 * old file kept. */
int px_alog_reopen(struct px_alog *l);
uint64_t px_alog_dropped(const struct px_alog *l);

/* The engine's open sinks by path, shared by every config; freed with the
 * engine. */
struct px_alog_sinks;

/* Envoy's file access log statistics (its filesystem.* namespace, summed
 * over every file): write_buffered, lines appended to a sink's buffer;
 * write_completed, write(2)s that wrote; write_failed, writes that failed
 * and lines dropped (a reader that is not keeping up with 1 MiB buffered,
 * or a line past the buffer), which Envoy, blocking instead, has no
 * counter for; flushed_by_timer, buffers written by the 200 ms timer;
 * reopen_failed, reopens whose open() failed; write_total_buffered (a
 * gauge), bytes buffered now. */
struct px_alog_fs_stats {
	uint64_t write_buffered, write_completed, write_failed, flushed_by_timer, reopen_failed;
	uint64_t write_total_buffered;
};
void px_alog_sinks_fs_stats(const struct px_alog_sinks *s, struct px_alog_fs_stats *out);
struct px_alog_sinks *px_alog_sinks_new(struct ev_loop *loop); /* NULL: out of memory */
void px_alog_sinks_free(struct px_alog_sinks *s);              /* flushes; NULL is a no-op */
/* The sink of path in s, opened on first use ("-" is "/dev/stdout"); s
 * owns it.  0; -EINVAL (too many files) or open's -errno, with the reason
 * in err; -ENOMEM. */
MESH_MUST_CHECK int px_alog_sinks_get(struct px_alog_sinks *s, const char *path, struct px_alog **out, char *err,
				      size_t cap);

/* px_alog_reopen() of every sink of s (the --access-log one included):
 * 0, or the first failure's -errno with err naming its path; the others
 * are reopened anyway. */
int px_alog_sinks_reopen(struct px_alog_sinks *s, char *err, size_t cap);

/* The compiled access_log list of one HCM or TCP proxy. */
struct px_alog_cfg;
struct Envoy__Config__Accesslog__V3__AccessLog;

/*
 * Compile the n entries of v (HttpConnectionManager.access_log or
 * TcpProxy.access_log) with their files opened in sinks.  *out is NULL
 * when n is 0.  0; -EINVAL with the reason in err (an access logger other
 * than envoy.access_loggers.file, a format or filter meshproxy cannot
 * honour, a file it cannot open); -ENOMEM.
 */
MESH_MUST_CHECK int px_alog_cfg_new(struct px_alog_sinks *sinks,
				    struct Envoy__Config__Accesslog__V3__AccessLog *const *v, size_t n,
				    struct px_alog_cfg **out, char *err, size_t cap);
void px_alog_cfg_free(struct px_alog_cfg *c); /* NULL is a no-op */

/* The request headers c's formats and filters read beyond the fixed
 * fields of px_alog_entry (lower case), which the caller copies into
 * entry.hdrs in this order. */
size_t px_alog_cfg_n_headers(const struct px_alog_cfg *c);
const char *px_alog_cfg_header(const struct px_alog_cfg *c, size_t i);

/* What c reads that costs a system call to learn (the caller fills
 * those fields only then): the downstream local address, the upstream
 * connection's local address. */
#define PX_ALOG_NEED_LOCAL 1u
#define PX_ALOG_NEED_UPSTREAM_LOCAL 2u
unsigned px_alog_cfg_needs(const struct px_alog_cfg *c);

/* Every logger of c whose filter passes writes e in its format. */
void px_alog_cfg_log(const struct px_alog_cfg *c, const struct px_alog_entry *e);

/* For the unit tests: the line logger i of c would write for e (no
 * filter applied) into out (cap bytes, NUL-terminated); whether its
 * filter passes (1), fails (0).  -ENOENT past the last logger. */
int px_alog_cfg_format(const struct px_alog_cfg *c, size_t i, const struct px_alog_entry *e, char *out, size_t cap);
int px_alog_cfg_filter(const struct px_alog_cfg *c, size_t i, const struct px_alog_entry *e);

#endif
