/*
 * accesslog.c - see accesslog.h.  A format is compiled into segments
 * (literal text, or one command operator with its arguments resolved: a
 * fixed field of px_alog_entry or the index of an extra header), so a
 * request costs one pass over the segments and no parsing.
 */
#include "dataplane/accesslog.h"
#include "dataplane/alogexpr.h"

#include "common/buf.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/filters/cel/v3/cel.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ALOG_MAX (1024 * 1024)
#define ALOG_FLUSH_AT (64 * 1024)
#define ALOG_FLUSH_MS 200
#define ALOG_MAX_SINKS 32        /* distinct files one proxy writes */
#define ALOG_MAX_FORMAT 16384    /* bytes of one text format */
#define ALOG_MAX_SEGS 512        /* segments of one format */
#define ALOG_MAX_JSON_DEPTH 8    /* nesting of a json_format */

#define FILE_URL "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
#define CEL_URL "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"

struct px_alog {
	struct ev_loop *loop;
	int fd, own_fd;
	int sock;                    /* fd is a socket: written with send(MSG_DONTWAIT) */
	int stalled;                 /* the last write found the reader full: wait for the timer */
	struct mesh_buf b;
	size_t line_start;           /* where the line being appended starts in b */
	struct ev_timer t;
	uint64_t dropped;            /* lines (or failed writes) lost */
	struct px_alog_fs_stats st;  /* Envoy's filesystem.* (write_total_buffered unused) */
	char *path;                  /* as configured (sinks' key) */
};

static const char *const flag_names[] = { "UH", "UF", "UO", "NR", "URX", "UT", "DC", "UC", "DI", "FI", "LR", "DPE", "UPE", "SI", "UR" };

/* Envoy's StreamInfo::ResponseFlag values, in flag_names' order */
static const uint64_t flag_envoy[] = {
	0x2,      /* UH NoHealthyUpstream */
	0x20,     /* UF UpstreamConnectionFailure */
	0x80,     /* UO UpstreamOverflow */
	0x100,    /* NR NoRouteFound */
	0x8000,   /* URX UpstreamRetryLimitExceeded */
	0x4,      /* UT UpstreamRequestTimeout */
	0x4000,   /* DC DownstreamConnectionTermination */
	0x40,     /* UC UpstreamConnectionTermination */
	0x200,    /* DI DelayInjected */
	0x400,    /* FI FaultInjected */
	0x8,      /* LR LocalReset */
	0x40000,  /* DPE DownstreamProtocolError */
	0x800000, /* UPE UpstreamProtocolError */
	0x10000,  /* SI StreamIdleTimeout */
	0x10,     /* UR UpstreamRemoteReset */
};

/* flag_names' indexes in Envoy's order of its short strings (ascending
 * ResponseFlag value, StreamInfo::ResponseFlagUtils::toShortString): "UC,URX",
 * never "URX,UC" */
static const unsigned char flag_order[] = { 0, 5, 10, 14, 1, 7, 2, 3, 8, 9, 6, 4, 13, 11, 12 };

const char *px_flags_str(unsigned flags, char *buf, size_t cap)
{
	size_t k, n = 0;

	if (!cap)
		return buf;
	buf[0] = 0;
	for (k = 0; k < sizeof(flag_order) / sizeof(flag_order[0]); k++) {
		size_t i = flag_order[k], l = strlen(flag_names[i]);

		if (!(flags & (1u << i)))
			continue;
		if (n + l + 2 > cap)
			break;
		if (n)
			buf[n++] = ',';
		memcpy(buf + n, flag_names[i], l);
		n += l;
		buf[n] = 0;
	}
	if (!n && cap >= 2) {
		buf[0] = '-';
		buf[1] = 0;
	}
	return buf;
}

uint64_t px_flags_envoy(unsigned flags)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < sizeof(flag_envoy) / sizeof(flag_envoy[0]); i++)
		if (flags & (1u << i))
			v |= flag_envoy[i];
	return v;
}

/* A line whose appends overflowed the buffer is cut off whole (and
 * counted), so no torn line is ever written. */
static void alog_cut(struct px_alog *l)
{
	if (!l->b.err)
		return;
	l->b.len = l->line_start;
	l->b.data[l->b.len] = '\0';
	l->b.err = 0;
	l->dropped++;
	l->st.write_failed++;
}

/* Writes what is buffered without ever waiting: a reader that is not
 * keeping up (a full pipe, a stalled terminal or socket) leaves the rest
 * buffered for the timer to retry; lines that find the buffer full are
 * dropped (alog_cut).  Any other failure drops the buffer, counted. */
void px_alog_flush(struct px_alog *l)
{
	size_t off = 0;

	if (!l)
		return;
	alog_cut(l);
	while (off < l->b.len) {
		ssize_t n = l->sock ? send(l->fd, l->b.data + off, l->b.len - off, MSG_DONTWAIT | MSG_NOSIGNAL)
				    : write(l->fd, l->b.data + off, l->b.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			memmove(l->b.data, l->b.data + off, l->b.len - off);
			l->b.len -= off;
			l->b.data[l->b.len] = '\0';
			l->line_start = l->b.len;
			l->stalled = 1;
			if (!ev_timer_armed(&l->t))
				ev_timer_arm(l->loop, &l->t, ALOG_FLUSH_MS);
			return;
		}
		if (n <= 0) {
			l->dropped++;
			l->st.write_failed++;
			break;
		}
		l->st.write_completed++;
		off += (size_t)n;
	}
	l->stalled = 0;
	mesh_buf_reset(&l->b);
	l->line_start = 0;
}

uint64_t px_alog_dropped(const struct px_alog *l)
{
	return l ? l->dropped : 0;
}

static void alog_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_alog *l = t->data;

	(void)loop;
	if (l->b.len)
		l->st.flushed_by_timer++;
	px_alog_flush(l);
}

int px_alog_open(struct ev_loop *loop, const char *path, struct px_alog **out)
{
	struct px_alog *l;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l || !(l->path = strdup(path))) {
		free(l);
		return -ENOMEM;
	}
	l->loop = loop;
	if (!strcmp(path, "-") || !strcmp(path, "/dev/stdout")) {
		struct stat sb;

		l->fd = STDOUT_FILENO;
		/* a pipe or terminal gets a description of its own that does
		 * not block (fd 1's flags are shared with whoever else holds
		 * it); a socket is written with MSG_DONTWAIT; a regular file
		 * never fills up and is written as it is */
		if (fstat(STDOUT_FILENO, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
			l->sock = 1;
		} else if (fstat(STDOUT_FILENO, &sb) == 0 && !S_ISREG(sb.st_mode)) {
			int fd = open("/proc/self/fd/1", O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

			if (fd >= 0) {
				l->fd = fd;
				l->own_fd = 1;
			}
		}
	} else {
		/* O_NONBLOCK: a FIFO without a reader is refused (ENXIO)
		 * rather than waited for, and never blocks a write */
		l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
		if (l->fd < 0) {
			int rc = -errno;

			free(l->path);
			free(l);
			return rc;
		}
		l->own_fd = 1;
	}
	mesh_buf_init(&l->b, ALOG_MAX);
	ev_timer_init(&l->t, alog_timer, l);
	*out = l;
	return 0;
}

void px_alog_free(struct px_alog *l)
{
	if (!l)
		return;
	px_alog_flush(l);
	ev_timer_cancel(l->loop, &l->t);
	if (l->own_fd)
		close(l->fd);
	mesh_buf_cleanup(&l->b);
	free(l->path);
	free(l);
}

/* A line was appended to l: write now past the threshold, else arm the timer. */
static void alog_done(struct px_alog *l)
{
	l->st.write_buffered++;
	if (l->b.len >= ALOG_FLUSH_AT && !l->stalled)
		px_alog_flush(l);
	else if (!ev_timer_armed(&l->t))
		ev_timer_arm(l->loop, &l->t, ALOG_FLUSH_MS);
}

/* Before a line: the last one, if it overflowed, is cut off (and
 * counted); this one starts here. */
static void alog_begin(struct px_alog *l)
{
	alog_cut(l);
	l->line_start = l->b.len;
}

static void put_q(struct mesh_buf *b, struct px_str s)
{
	mesh_buf_putc(b, '"');
	if (s.len)
		mesh_buf_append(b, s.p, s.len);
	else
		mesh_buf_putc(b, '-');
	mesh_buf_putc(b, '"');
}

/* Envoy's default %START_TIME%: 2026-12-01T07:32:23.123Z */
static size_t fmt_time(char *out, size_t cap, uint64_t us)
{
	struct tm tm;
	time_t sec = (time_t)(us / 1000000);
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n && n + 6 <= cap)
		n += (size_t)snprintf(out + n, cap - n, ".%03uZ", (unsigned)(us / 1000 % 1000));
	return n;
}

void px_alog_write(struct px_alog *l, const struct px_alog_entry *e)
{
	struct mesh_buf *b = &l->b;
	char ts[64], fl[64];
	size_t n;

	alog_begin(l);
	n = fmt_time(ts, sizeof(ts), e->start_us);
	/* an empty method or path (a request the codec refused before it had
	 * one) is "-", as Envoy prints a missing value */
	mesh_buf_printf(b, "[%.*s] \"%.*s %.*s %.*s\" %d %s %llu %llu %llu ", (int)n, ts,
			e->method.len ? (int)e->method.len : 1,
			e->method.len ? e->method.p : "-", e->path.len ? (int)e->path.len : 1, e->path.len ? e->path.p : "-",
			e->protocol.len ? (int)e->protocol.len : 1, e->protocol.len ? e->protocol.p : "-", e->status,
			px_flags_str(e->flags, fl, sizeof(fl)), (unsigned long long)e->rx, (unsigned long long)e->tx,
			(unsigned long long)e->duration_ms);
	if (e->upstream_ms >= 0)
		mesh_buf_printf(b, "%lld ", (long long)e->upstream_ms);
	else
		mesh_buf_puts(b, "- ");
	put_q(b, e->xff);
	mesh_buf_putc(b, ' ');
	put_q(b, e->ua);
	mesh_buf_putc(b, ' ');
	put_q(b, e->rid);
	mesh_buf_putc(b, ' ');
	put_q(b, e->authority);
	mesh_buf_printf(b, " \"%s\"\n", e->upstream_host ? e->upstream_host : "-");
	alog_done(l);
}

const char *px_alog_addr(const struct sockaddr *sa, unsigned len, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (!sa || !len)
		return NULL;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

		if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)))
			return NULL;
		snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
		return buf;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;

		if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)))
			return NULL;
		snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
		return buf;
	}
	return NULL;
}

/* ---------------------------------------------------------------- sinks */

struct px_alog_sinks {
	struct ev_loop *loop;
	struct px_alog *v[ALOG_MAX_SINKS];
	size_t n;
};

int px_alog_reopen(struct px_alog *l)
{
	int fd;

	px_alog_flush(l);
	if (!l->own_fd || !strcmp(l->path, "-") || !strcmp(l->path, "/dev/stdout"))
		return 0;
	fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
	if (fd < 0) {
		l->st.reopen_failed++;
		return -errno;
	}
	/* what the old file could not take yet goes to the new one */
	close(l->fd);
	l->fd = fd;
	l->sock = 0;
	l->stalled = 0;
	return 0;
}

int px_alog_sinks_reopen(struct px_alog_sinks *s, char *err, size_t cap)
{
	size_t i;
	int rc = 0;

	if (cap)
		err[0] = '\0';
	for (i = 0; s && i < s->n; i++) {
		int r = px_alog_reopen(s->v[i]);

		if (r < 0 && rc == 0) {
			rc = r;
			snprintf(err, cap, "access log %s: %s", s->v[i]->path, strerror(-r));
		}
	}
	return rc;
}

void px_alog_sinks_fs_stats(const struct px_alog_sinks *s, struct px_alog_fs_stats *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; s && i < s->n; i++) {
		const struct px_alog *l = s->v[i];

		out->write_buffered += l->st.write_buffered;
		out->write_completed += l->st.write_completed;
		out->write_failed += l->st.write_failed;
		out->flushed_by_timer += l->st.flushed_by_timer;
		out->reopen_failed += l->st.reopen_failed;
		out->write_total_buffered += l->b.len;
	}
}

struct px_alog_sinks *px_alog_sinks_new(struct ev_loop *loop)
{
	struct px_alog_sinks *s = calloc(1, sizeof(*s));

	if (s)
		s->loop = loop;
	return s;
}

void px_alog_sinks_free(struct px_alog_sinks *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		px_alog_free(s->v[i]);
	free(s);
}

int px_alog_sinks_get(struct px_alog_sinks *s, const char *path, struct px_alog **out, char *err, size_t cap)
{
	const char *key = !strcmp(path, "-") ? "/dev/stdout" : path;
	size_t i;
	int rc;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i]->path, key)) {
			*out = s->v[i];
			return 0;
		}
	if (s->n == ALOG_MAX_SINKS) {
		snprintf(err, cap, "access log %s: more than %d access log files", path, ALOG_MAX_SINKS);
		return -EINVAL;
	}
	rc = px_alog_open(s->loop, key, out);
	if (rc < 0) {
		snprintf(err, cap, "access log %s: %s", path, strerror(-rc));
		return rc;
	}
	s->v[s->n++] = *out;
	return 0;
}

/* ------------------------------------------------------------ formats */

enum op {
	OP_LIT,
	OP_START_TIME,
	OP_REQ,                      /* fix / hdr, then fix2 / hdr2 when absent */
	OP_RESP,                     /* only x-envoy-upstream-service-time is known */
	OP_RESPONSE_CODE, OP_RESPONSE_FLAGS, OP_BYTES_RECEIVED, OP_BYTES_SENT, OP_DURATION,
	OP_UPSTREAM_HOST, OP_UPSTREAM_CLUSTER, OP_DOWNSTREAM_REMOTE, OP_DOWNSTREAM_REMOTE_NOPORT,
	OP_DOWNSTREAM_LOCAL, OP_DOWNSTREAM_LOCAL_NOPORT, OP_DOWNSTREAM_LOCAL_PORT, OP_UPSTREAM_LOCAL,
	OP_SNI, OP_ROUTE_NAME, OP_TRANSPORT_FAILURE, OP_TERMINATION, OP_DETAILS, OP_PROTOCOL, OP_PEER_URI_SAN,
	OP_GRPC_STATUS, OP_GRPC_STATUS_NUMBER, OP_ATTEMPTS,
};

/* request fields px_alog_entry carries itself */
enum fix { FX_NONE, FX_METHOD, FX_PATH, FX_AUTHORITY, FX_UA, FX_XFF, FX_RID };

static const struct {
	const char *name;
	enum op op;
	bool num;                    /* a number in JSON */
} ops[] = {
	{ "START_TIME", OP_START_TIME, false },
	{ "REQ", OP_REQ, false },
	{ "RESP", OP_RESP, false },
	{ "RESPONSE_CODE", OP_RESPONSE_CODE, true },
	{ "RESPONSE_FLAGS", OP_RESPONSE_FLAGS, false },
	{ "BYTES_RECEIVED", OP_BYTES_RECEIVED, true },
	{ "BYTES_SENT", OP_BYTES_SENT, true },
	{ "DURATION", OP_DURATION, true },
	{ "UPSTREAM_HOST", OP_UPSTREAM_HOST, false },
	{ "UPSTREAM_REMOTE_ADDRESS", OP_UPSTREAM_HOST, false },
	{ "UPSTREAM_CLUSTER", OP_UPSTREAM_CLUSTER, false },
	{ "UPSTREAM_CLUSTER_RAW", OP_UPSTREAM_CLUSTER, false },
	{ "DOWNSTREAM_REMOTE_ADDRESS", OP_DOWNSTREAM_REMOTE, false },
	{ "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", OP_DOWNSTREAM_REMOTE, false },
	{ "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_REMOTE_NOPORT, false },
	{ "DOWNSTREAM_LOCAL_ADDRESS", OP_DOWNSTREAM_LOCAL, false },
	{ "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", OP_DOWNSTREAM_LOCAL_NOPORT, false },
	{ "DOWNSTREAM_LOCAL_PORT", OP_DOWNSTREAM_LOCAL_PORT, true },
	{ "UPSTREAM_LOCAL_ADDRESS", OP_UPSTREAM_LOCAL, false },
	{ "REQUESTED_SERVER_NAME", OP_SNI, false },
	{ "ROUTE_NAME", OP_ROUTE_NAME, false },
	{ "UPSTREAM_TRANSPORT_FAILURE_REASON", OP_TRANSPORT_FAILURE, false },
	{ "CONNECTION_TERMINATION_DETAILS", OP_TERMINATION, false },
	{ "RESPONSE_CODE_DETAILS", OP_DETAILS, false },
	{ "PROTOCOL", OP_PROTOCOL, false },
	{ "DOWNSTREAM_PEER_URI_SAN", OP_PEER_URI_SAN, false },
	{ "HOSTNAME", OP_LIT, false },
	{ "ENVIRONMENT", OP_LIT, false },
	{ "REQ_WITHOUT_QUERY", OP_REQ, false },
	{ "GRPC_STATUS", OP_GRPC_STATUS, false },
	{ "GRPC_STATUS_NUMBER", OP_GRPC_STATUS_NUMBER, true },
	{ "UPSTREAM_REQUEST_ATTEMPT_COUNT", OP_ATTEMPTS, true },
};

/* gRPC status names as Envoy's %GRPC_STATUS% prints them (CAMEL_STRING) */
static const char *const grpc_names[] = { "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
					  "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
					  "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal",
					  "Unavailable", "DataLoss", "Unauthenticated" };

struct seg {
	enum op op;
	bool num;
	enum fix fix, fix2;
	int hdr, hdr2;               /* extra header index, -1 none */
	size_t max;                  /* :N truncation, 0 none */
	bool no_query;               /* %REQ_WITHOUT_QUERY(..)%: up to the '?' */
	char *lit;                   /* OP_LIT text; OP_START_TIME: a strftime format or NULL */
	size_t litlen;
};

struct fmt {
	struct seg *v;
	size_t n;
};

struct jobj;

struct jfield {
	char *key;
	enum { J_FMT, J_OBJ, J_RAW } k;
	struct fmt f;                /* J_FMT */
	struct jobj *obj;            /* J_OBJ */
	char *raw;                   /* J_RAW: a number, true/false, null as written */
};

struct jobj {
	struct jfield *v;
	size_t n;
};

struct logger {
	struct px_alog *sink;
	bool json;
	struct fmt text;
	struct jobj obj;
	struct alx *filter;          /* NULL: every request */
};

struct px_alog_cfg {
	struct logger *v;
	size_t n;
	char *hdrs[PX_ALOG_MAX_HDRS]; /* lower case */
	size_t n_hdrs;
	unsigned needs;              /* PX_ALOG_NEED_* */
};

static void fmt_cleanup(struct fmt *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->v[i].lit);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

static void jobj_cleanup(struct jobj *o)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		free(o->v[i].key);
		fmt_cleanup(&o->v[i].f);
		if (o->v[i].obj) {
			jobj_cleanup(o->v[i].obj);
			free(o->v[i].obj);
		}
		free(o->v[i].raw);
	}
	free(o->v);
}

void px_alog_cfg_free(struct px_alog_cfg *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		fmt_cleanup(&c->v[i].text);
		jobj_cleanup(&c->v[i].obj);
		alx_free(c->v[i].filter);
	}
	for (i = 0; i < c->n_hdrs; i++)
		free(c->hdrs[i]);
	free(c->v);
	free(c);
}

size_t px_alog_cfg_n_headers(const struct px_alog_cfg *c)
{
	return c ? c->n_hdrs : 0;
}

unsigned px_alog_cfg_needs(const struct px_alog_cfg *c)
{
	return c ? c->needs : 0;
}

const char *px_alog_cfg_header(const struct px_alog_cfg *c, size_t i)
{
	return c && i < c->n_hdrs ? c->hdrs[i] : NULL;
}

/* alx_header_fn: the index of header name in c, added when new */
static int cfg_hdr(void *ctx, const char *name, size_t len)
{
	struct px_alog_cfg *c = ctx;
	char low[256];
	size_t i;

	if (!len || len >= sizeof(low))
		return -1;
	for (i = 0; i < len; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[len] = 0;
	for (i = 0; i < c->n_hdrs; i++)
		if (!strcmp(c->hdrs[i], low))
			return (int)i;
	if (c->n_hdrs == PX_ALOG_MAX_HDRS || !(c->hdrs[c->n_hdrs] = strdup(low)))
		return -1;
	return (int)c->n_hdrs++;
}

/* A request header name of %REQ(..)%: a fixed field, else an extra header. */
static int req_name(struct px_alog_cfg *c, const char *name, size_t len, enum fix *fix, int *hdr)
{
	static const struct {
		const char *n;
		enum fix f;
	} fixed[] = { { ":method", FX_METHOD }, { ":path", FX_PATH }, { ":authority", FX_AUTHORITY },
		      { "host", FX_AUTHORITY }, { "user-agent", FX_UA }, { "x-forwarded-for", FX_XFF },
		      { "x-request-id", FX_RID } };
	size_t i;

	*fix = FX_NONE;
	*hdr = -1;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strlen(fixed[i].n) == len && !strncasecmp(fixed[i].n, name, len)) {
			*fix = fixed[i].f;
			return 0;
		}
	*hdr = cfg_hdr(c, name, len);
	return *hdr < 0 ? -1 : 0;
}

static int fmt_push(struct fmt *f, const struct seg *s)
{
	struct seg *v;

	if (f->n == ALOG_MAX_SEGS)
		return -E2BIG;
	v = realloc(f->v, (f->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	f->v = v;
	f->v[f->n++] = *s;
	return 0;
}

/* Compile text (len bytes) into f.  0, -EINVAL with the reason, -ENOMEM. */
static int fmt_compile(struct px_alog_cfg *c, const char *text, size_t len, struct fmt *f, char *err, size_t cap)
{
	size_t i = 0, lit = 0;
	struct seg s;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	if (len > ALOG_MAX_FORMAT) {
		snprintf(err, cap, "access log format longer than %d bytes", ALOG_MAX_FORMAT);
		return -EINVAL;
	}
	while (i <= len && rc == 0) {
		size_t j, name_at, name_len, arg_at = 0, arg_len = 0, k;
		bool has_arg = false;
		unsigned long max = 0;

		if (i < len && text[i] != '%') {
			i++;
			continue;
		}
		/* literal text before the operator (or the end) */
		if (i > lit) {
			memset(&s, 0, sizeof(s));
			s.op = OP_LIT;
			s.hdr = s.hdr2 = -1;
			if (!(s.lit = malloc(i - lit + 1)))
				return -ENOMEM;
			memcpy(s.lit, text + lit, i - lit);
			s.lit[i - lit] = 0;
			s.litlen = i - lit;
			if ((rc = fmt_push(f, &s)) < 0) {
				free(s.lit);
				break;
			}
		}
		if (i == len)
			break;
		/* %NAME(ARG):MAX% */
		j = name_at = i + 1;
		while (j < len && (isupper((unsigned char)text[j]) || isdigit((unsigned char)text[j]) || text[j] == '_'))
			j++;
		name_len = j - name_at;
		if (j < len && text[j] == '(') {
			has_arg = true;
			arg_at = ++j;
			while (j < len && text[j] != ')')
				j++;
			if (j == len) {
				snprintf(err, cap, "access log format: unterminated '(' at offset %zu", arg_at - 1);
				return -EINVAL;
			}
			arg_len = j - arg_at;
			j++;
		}
		if (j < len && text[j] == ':' && j + 1 < len && isdigit((unsigned char)text[j + 1])) {
			j++;
			while (j < len && isdigit((unsigned char)text[j]) && max < 1000000)
				max = max * 10 + (unsigned long)(text[j++] - '0');
		}
		if (!name_len || j >= len || text[j] != '%') {
			snprintf(err, cap, "access log format: no valid command operator at offset %zu", i);
			return -EINVAL;
		}
		for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
			if (strlen(ops[k].name) == name_len && !memcmp(ops[k].name, text + name_at, name_len))
				break;
		if (k == sizeof(ops) / sizeof(ops[0])) {
			snprintf(err, cap, "access log format: unsupported command operator %%%.*s%%", (int)name_len,
				 text + name_at);
			return -EINVAL;
		}
		memset(&s, 0, sizeof(s));
		s.op = ops[k].op;
		s.num = ops[k].num;
		if (s.op == OP_DOWNSTREAM_LOCAL || s.op == OP_DOWNSTREAM_LOCAL_NOPORT || s.op == OP_DOWNSTREAM_LOCAL_PORT)
			c->needs |= PX_ALOG_NEED_LOCAL;
		if (s.op == OP_UPSTREAM_LOCAL)
			c->needs |= PX_ALOG_NEED_UPSTREAM_LOCAL;
		s.hdr = s.hdr2 = -1;
		s.max = max;
		s.no_query = name_len == 17 && !memcmp(text + name_at, "REQ_WITHOUT_QUERY", 17);
		if (name_len == 11 && !memcmp(text + name_at, "ENVIRONMENT", 11)) {
			/* read once, at compile time, as Envoy does */
			const char *v;
			char var[256];

			if (!has_arg || !arg_len || arg_len >= sizeof(var)) {
				snprintf(err, cap, "access log format: %%ENVIRONMENT%% needs a variable name");
				return -EINVAL;
			}
			memcpy(var, text + arg_at, arg_len);
			var[arg_len] = 0;
			v = getenv(var);
			if (!(s.lit = strdup(v ? v : "")))
				return -ENOMEM;
			s.litlen = strlen(s.lit);
			if ((rc = fmt_push(f, &s)) < 0) {
				free(s.lit);
				break;
			}
			i = lit = j + 1;
			continue;
		}
		if ((s.op == OP_REQ || s.op == OP_RESP) && (!has_arg || !arg_len)) {
			snprintf(err, cap, "access log format: %%%s%% needs a header name", ops[k].name);
			return -EINVAL;
		}
		if (s.op == OP_REQ) {
			const char *a = text + arg_at, *q = memchr(a, '?', arg_len);
			size_t l1 = q ? (size_t)(q - a) : arg_len;

			if (!l1 || (q && l1 + 1 == arg_len) ||
			    req_name(c, a, l1, &s.fix, &s.hdr) < 0 ||
			    (q && req_name(c, q + 1, arg_len - l1 - 1, &s.fix2, &s.hdr2) < 0)) {
				snprintf(err, cap, "access log format: %%REQ(%.*s)%%: a header name (X or X?Y) expected, at most %d others than the usual ones",
					 (int)arg_len, a, PX_ALOG_MAX_HDRS);
				return -EINVAL;
			}
		} else if (s.op == OP_RESP) {
			/* only what meshproxy keeps of a response: the upstream's time */
			s.hdr = arg_len == 29 && !strncasecmp(text + arg_at, "x-envoy-upstream-service-time", 29) ? 0 : -1;
		} else if (s.op == OP_START_TIME && has_arg && arg_len) {
			if (!(s.lit = strndup(text + arg_at, arg_len)))
				return -ENOMEM;
		} else if (!strncmp(text + name_at, "HOSTNAME", name_len)) {
			char h[256] = "";

			if (gethostname(h, sizeof(h) - 1) < 0)
				snprintf(h, sizeof(h), "-");
			if (!(s.lit = strdup(h)))
				return -ENOMEM;
			s.litlen = strlen(h);
		}
		if ((rc = fmt_push(f, &s)) < 0) {
			free(s.lit);
			break;
		}
		i = lit = j + 1;
	}
	if (rc == -E2BIG) {
		snprintf(err, cap, "access log format: more than %d parts", ALOG_MAX_SEGS);
		rc = -EINVAL;
	}
	return rc;
}

/* %START_TIME(FMT)%: strftime, with Envoy's %f / %Nf (fractions of the
 * second, N digits, 9 without N) done here. */
static size_t fmt_time_custom(char *out, size_t cap, const char *f, uint64_t us)
{
	struct tm tm;
	time_t sec = (time_t)(us / 1000000);
	char piece[256];
	size_t n = 0, p;

	gmtime_r(&sec, &tm);
	while (*f && n + 1 < cap) {
		if (f[0] == '%' && (f[1] == 'f' || (f[1] >= '1' && f[1] <= '9' && f[2] == 'f'))) {
			unsigned digits = f[1] == 'f' ? 9 : (unsigned)(f[1] - '0');
			char frac[16];

			snprintf(frac, sizeof(frac), "%06u000", (unsigned)(us % 1000000));
			if (digits > 9)
				digits = 9;
			/* what fits: snprintf counts what it cut, and the caller
			 * reads n bytes of out */
			if (digits > cap - n - 1)
				digits = (unsigned)(cap - n - 1);
			n += (size_t)snprintf(out + n, cap - n, "%.*s", (int)digits, frac);
			f += f[1] == 'f' ? 2 : 3;
			continue;
		}
		/* up to the next fraction directive, through strftime */
		for (p = 0; f[p] && p + 1 < sizeof(piece); p++) {
			if (f[p] == '%' && (f[p + 1] == 'f' || (f[p + 1] >= '1' && f[p + 1] <= '9' && f[p + 2] == 'f')))
				break;
			piece[p] = f[p];
			if (f[p] == '%' && f[p + 1] && p + 2 < sizeof(piece)) {
				piece[p + 1] = f[p + 1];
				p++;
			}
		}
		piece[p] = 0;
		f += p;
		if (p)
			n += strftime(out + n, cap - n, piece, &tm);
		if (n >= cap)
			n = cap - 1;
	}
	if (n < cap)
		out[n] = 0;
	return n;
}

static struct px_str fix_val(const struct px_alog_entry *e, enum fix f)
{
	struct px_str none = { NULL, 0 };

	switch (f) {
	case FX_METHOD: return e->method;
	case FX_PATH: return e->path;
	case FX_AUTHORITY: return e->authority;
	case FX_UA: return e->ua;
	case FX_XFF: return e->xff;
	case FX_RID: return e->rid;
	default: return none;
	}
}

static struct px_str hdr_val(const struct px_alog_entry *e, enum fix f, int h)
{
	struct px_str none = { NULL, 0 };

	if (f != FX_NONE)
		return fix_val(e, f);
	if (h >= 0 && (size_t)h < e->n_hdrs && e->hdrs[h].p)
		return e->hdrs[h];
	return none;
}

static struct px_str cs(const char *s)
{
	struct px_str r = { s, s ? strlen(s) : 0 };

	return r;
}

/* "IP:PORT" without ":PORT" (IPv6 "[::1]:80" -> "::1"), or its port */
static struct px_str addr_part(const char *a, bool port, char *tmp, size_t cap)
{
	const char *c = a ? strrchr(a, ':') : NULL;
	struct px_str r = { NULL, 0 };

	if (!a || !c)
		return port ? r : cs(a);
	if (port)
		return cs(c + 1);
	if (a[0] == '[' && c > a + 1 && c[-1] == ']') {
		r.len = (size_t)snprintf(tmp, cap, "%.*s", (int)(c - a - 2), a + 1);
		r.p = tmp;
		return r;
	}
	r.p = a;
	r.len = (size_t)(c - a);
	return r;
}

/* The value of segment s for e: 0 absent, 1 the string *v, 2 the number *num. */
static int seg_val(const struct seg *s, const struct px_alog_entry *e, char *tmp, size_t cap, struct px_str *v,
		   uint64_t *num)
{
	char fl[64];

	v->p = NULL;
	v->len = 0;
	switch (s->op) {
	case OP_LIT: *v = cs(s->lit); v->len = s->litlen; break;
	case OP_START_TIME:
		v->p = tmp;
		v->len = s->lit ? fmt_time_custom(tmp, cap, s->lit, e->start_us) : fmt_time(tmp, cap, e->start_us);
		break;
	case OP_REQ:
		*v = hdr_val(e, s->fix, s->hdr);
		if (!v->p && (s->fix2 != FX_NONE || s->hdr2 >= 0))
			*v = hdr_val(e, s->fix2, s->hdr2);
		break;
	case OP_RESP:
		if (s->hdr == 0 && e->upstream_ms >= 0) {
			v->p = tmp;
			v->len = (size_t)snprintf(tmp, cap, "%lld", (long long)e->upstream_ms);
		}
		break;
	case OP_RESPONSE_CODE: *num = (uint64_t)(e->status > 0 ? e->status : 0); return 2;
	case OP_RESPONSE_FLAGS: *v = cs(px_flags_str(e->flags, fl, sizeof(fl))); memcpy(tmp, v->p, v->len); v->p = tmp; break;
	case OP_BYTES_RECEIVED: *num = e->rx; return 2;
	case OP_BYTES_SENT: *num = e->tx; return 2;
	case OP_DURATION: *num = e->duration_ms; return 2;
	case OP_UPSTREAM_HOST: *v = cs(e->upstream_host); break;
	case OP_UPSTREAM_CLUSTER: *v = cs(e->upstream_cluster); break;
	case OP_DOWNSTREAM_REMOTE: *v = cs(e->downstream_remote); break;
	case OP_DOWNSTREAM_REMOTE_NOPORT: *v = addr_part(e->downstream_remote, false, tmp, cap); break;
	case OP_DOWNSTREAM_LOCAL: *v = cs(e->downstream_local); break;
	case OP_DOWNSTREAM_LOCAL_NOPORT: *v = addr_part(e->downstream_local, false, tmp, cap); break;
	case OP_DOWNSTREAM_LOCAL_PORT: {
		struct px_str p = addr_part(e->downstream_local, true, tmp, cap);

		if (!p.p)
			return 0;
		*num = strtoull(p.p, NULL, 10);
		return 2;
	}
	case OP_UPSTREAM_LOCAL: *v = cs(e->upstream_local); break;
	case OP_SNI: *v = cs(e->sni); break;
	case OP_ROUTE_NAME: *v = cs(e->route_name); break;
	case OP_TRANSPORT_FAILURE: *v = cs(e->transport_failure); break;
	case OP_TERMINATION: *v = cs(e->termination); break;
	case OP_DETAILS: *v = cs(e->details); break;
	case OP_PROTOCOL: *v = e->protocol; break;
	case OP_PEER_URI_SAN: *v = cs(e->peer_principal); break;
	case OP_GRPC_STATUS:
		if (e->grpc_status1 <= 0)
			return 0;
		if ((size_t)(e->grpc_status1 - 1) < sizeof(grpc_names) / sizeof(grpc_names[0]))
			*v = cs(grpc_names[e->grpc_status1 - 1]);
		else
			*v = cs(snprintf(tmp, cap, "%d", e->grpc_status1 - 1) > 0 ? tmp : NULL);
		break;
	case OP_GRPC_STATUS_NUMBER:
		if (e->grpc_status1 <= 0)
			return 0;
		*num = (uint64_t)(e->grpc_status1 - 1);
		return 2;
	case OP_ATTEMPTS:
		if (!e->attempts)
			return 0;
		*num = e->attempts;
		return 2;
	}
	if (s->no_query && v->p) {
		const char *q = memchr(v->p, '?', v->len);

		if (q)
			v->len = (size_t)(q - v->p);
	}
	if (!v->p || !v->len)
		return 0;
	if (s->max && v->len > s->max)
		v->len = s->max;
	return 1;
}

/* JSON string contents of (p, n): escaped, and bytes that are not UTF-8
 * as U+FFFD, so a line is valid JSON whatever a client sent. */
static void put_json_chars(struct mesh_buf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		size_t k, need;

		if (c < 0x80) {
			if (c == '"' || c == '\\') {
				mesh_buf_putc(b, '\\');
				mesh_buf_putc(b, (char)c);
			} else if (c == '\n') {
				mesh_buf_puts(b, "\\n");
			} else if (c == '\r') {
				mesh_buf_puts(b, "\\r");
			} else if (c == '\t') {
				mesh_buf_puts(b, "\\t");
			} else if (c < 0x20 || c == 0x7f) {
				char u[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };

				mesh_buf_puts(b, u);
			} else {
				mesh_buf_putc(b, (char)c);
			}
			i++;
			continue;
		}
		need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
		for (k = 1; need && k <= need; k++)
			if (i + k >= n || ((unsigned char)p[i + k] & 0xc0) != 0x80)
				need = 0;
		/* overlong 3-byte forms, surrogates and > U+10FFFF */
		if (need == 2 && ((c == 0xe0 && (unsigned char)p[i + 1] < 0xa0) || (c == 0xed && (unsigned char)p[i + 1] > 0x9f)))
			need = 0;
		if (need == 3 && ((c == 0xf0 && (unsigned char)p[i + 1] < 0x90) || (c == 0xf4 && (unsigned char)p[i + 1] > 0x8f)))
			need = 0;
		if (!need) {
			mesh_buf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		mesh_buf_append(b, p + i, need + 1);
		i += need + 1;
	}
}

/* A text format into b: absent values are "-". */
static void fmt_text(struct mesh_buf *b, const struct fmt *f, const struct px_alog_entry *e, bool json_chars)
{
	char tmp[512];
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct px_str v;
		uint64_t num;
		int k = seg_val(&f->v[i], e, tmp, sizeof(tmp), &v, &num);

		if (k == 2) {
			mesh_buf_printf(b, "%" PRIu64, num);
			continue;
		}
		if (!k) {
			v.p = "-";
			v.len = 1;
		}
		if (json_chars)
			put_json_chars(b, v.p, v.len);
		else
			mesh_buf_append(b, v.p, v.len);
	}
}

static void fmt_json(struct mesh_buf *b, const struct jobj *o, const struct px_alog_entry *e)
{
	char tmp[512];
	size_t i;

	mesh_buf_putc(b, '{');
	for (i = 0; i < o->n; i++) {
		const struct jfield *f = &o->v[i];

		if (i)
			mesh_buf_putc(b, ',');
		mesh_buf_putc(b, '"');
		put_json_chars(b, f->key, strlen(f->key));
		mesh_buf_puts(b, "\":");
		if (f->k == J_OBJ) {
			fmt_json(b, f->obj, e);
		} else if (f->k == J_RAW) {
			mesh_buf_puts(b, f->raw);
		} else if (f->f.n == 1 && f->f.v[0].op != OP_LIT) {
			/* one operator alone: Envoy's typed value (a number, null) */
			struct px_str v;
			uint64_t num;
			int k = seg_val(&f->f.v[0], e, tmp, sizeof(tmp), &v, &num);

			if (k == 2) {
				mesh_buf_printf(b, "%" PRIu64, num);
			} else if (k == 0) {
				mesh_buf_puts(b, "null");
			} else {
				mesh_buf_putc(b, '"');
				put_json_chars(b, v.p, v.len);
				mesh_buf_putc(b, '"');
			}
		} else {
			mesh_buf_putc(b, '"');
			fmt_text(b, &f->f, e, true);
			mesh_buf_putc(b, '"');
		}
	}
	mesh_buf_putc(b, '}');
}

static void logger_line(const struct logger *lg, struct mesh_buf *b, const struct px_alog_entry *e)
{
	if (lg->json) {
		fmt_json(b, &lg->obj, e);
		mesh_buf_putc(b, '\n');
	} else {
		fmt_text(b, &lg->text, e, false);
	}
}

void px_alog_cfg_log(const struct px_alog_cfg *c, const struct px_alog_entry *e)
{
	size_t i;

	for (i = 0; c && i < c->n; i++) {
		const struct logger *lg = &c->v[i];

		if (lg->filter && !alx_eval(lg->filter, e))
			continue;
		alog_begin(lg->sink);
		logger_line(lg, &lg->sink->b, e);
		alog_done(lg->sink);
	}
}

int px_alog_cfg_format(const struct px_alog_cfg *c, size_t i, const struct px_alog_entry *e, char *out, size_t cap)
{
	struct mesh_buf b;
	size_t n;

	if (!c || i >= c->n)
		return -ENOENT;
	mesh_buf_init(&b, 1 << 20);
	logger_line(&c->v[i], &b, e);
	n = b.len < cap ? b.len : cap ? cap - 1 : 0;
	if (cap) {
		memcpy(out, b.data ? b.data : "", n);
		out[n] = 0;
	}
	mesh_buf_cleanup(&b);
	return 0;
}

int px_alog_cfg_filter(const struct px_alog_cfg *c, size_t i, const struct px_alog_entry *e)
{
	if (!c || i >= c->n)
		return -ENOENT;
	return !c->v[i].filter || alx_eval(c->v[i].filter, e);
}

/* ------------------------------------------------------------ compile */

static int jobj_compile(struct px_alog_cfg *c, const Google__Protobuf__Struct *st, struct jobj *o, int depth, char *err,
			size_t cap)
{
	size_t i;
	int rc;

	memset(o, 0, sizeof(*o));
	if (depth > ALOG_MAX_JSON_DEPTH) {
		snprintf(err, cap, "access log json_format nested more than %d deep", ALOG_MAX_JSON_DEPTH);
		return -EINVAL;
	}
	if (!st->n_fields)
		return 0;
	if (!(o->v = calloc(st->n_fields, sizeof(*o->v))))
		return -ENOMEM;
	for (i = 0; i < st->n_fields; i++) {
		const Google__Protobuf__Struct__FieldsEntry *fe = st->fields[i];
		const Google__Protobuf__Value *v = fe->value;
		struct jfield *f = &o->v[o->n];
		char num[64];

		if (!(f->key = strdup(fe->key ? fe->key : "")))
			return -ENOMEM;
		o->n++;
		switch (v ? v->kind_case : GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE) {
		case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
			f->k = J_FMT;
			rc = fmt_compile(c, v->string_value, strlen(v->string_value), &f->f, err, cap);
			if (rc < 0)
				return rc;
			break;
		case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
			f->k = J_OBJ;
			if (!(f->obj = calloc(1, sizeof(*f->obj))))
				return -ENOMEM;
			rc = jobj_compile(c, v->struct_value, f->obj, depth + 1, err, cap);
			if (rc < 0)
				return rc;
			break;
		case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
			f->k = J_RAW;
			snprintf(num, sizeof(num), "%.17g", v->number_value);
			if (!(f->raw = strdup(num)))
				return -ENOMEM;
			break;
		case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
			f->k = J_RAW;
			if (!(f->raw = strdup(v->bool_value ? "true" : "false")))
				return -ENOMEM;
			break;
		default:
			snprintf(err, cap, "access log json_format \"%s\": only strings, numbers, bools and objects are supported",
				 f->key);
			return -EINVAL;
		}
	}
	return 0;
}

static int logger_compile(struct px_alog_cfg *c, struct px_alog_sinks *sinks,
			  const Envoy__Config__Accesslog__V3__AccessLog *al, struct logger *lg, char *err, size_t cap)
{
	Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *file = NULL;
	const Envoy__Config__Core__V3__SubstitutionFormatString *f;
	int rc = -EINVAL;

	if (al->config_type_case != ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG || !al->typed_config ||
	    strcmp(al->typed_config->type_url, FILE_URL)) {
		snprintf(err, cap, "access log %s: only envoy.access_loggers.file is supported (%s)",
			 al->name ? al->name : "", al->typed_config ? al->typed_config->type_url : "no typed_config");
		goto out;
	}
	file = envoy__extensions__access_loggers__file__v3__file_access_log__unpack(NULL, al->typed_config->value.len,
										     al->typed_config->value.data);
	if (!file) {
		snprintf(err, cap, "access log %s: FileAccessLog does not decode", al->name ? al->name : "");
		goto out;
	}
	if (!file->path || !file->path[0]) {
		snprintf(err, cap, "access log %s: no path", al->name ? al->name : "");
		goto out;
	}
	f = file->access_log_format_case ==
			    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT
		    ? file->log_format
		    : NULL;
	if (f && f->format_case == ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT &&
	    f->json_format) {
		lg->json = true;
		rc = jobj_compile(c, f->json_format, &lg->obj, 0, err, cap);
	} else if (f && f->format_case == ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE &&
		   f->text_format_source) {
		const Envoy__Config__Core__V3__DataSource *ds = f->text_format_source;

		if (ds->specifier_case != ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING || !ds->inline_string) {
			snprintf(err, cap, "access log %s: only an inline_string text format is supported", file->path);
			goto out;
		}
		rc = fmt_compile(c, ds->inline_string, strlen(ds->inline_string), &lg->text, err, cap);
	} else {
		/* no format: Envoy's default (the --access-log line, with its newline) */
		static const char def[] =
			"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
			"%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
			"\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" "
			"\"%UPSTREAM_HOST%\"\n";

		rc = fmt_compile(c, def, sizeof(def) - 1, &lg->text, err, cap);
	}
	if (rc < 0)
		goto out;
	if (al->filter) {
		const Envoy__Config__Accesslog__V3__AccessLogFilter *af = al->filter;
		const Envoy__Config__Accesslog__V3__ExtensionFilter *ef = af->extension_filter;
		Envoy__Extensions__AccessLoggers__Filters__Cel__V3__ExpressionFilter *cel;

		rc = -EINVAL;
		if (af->filter_specifier_case != ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__FILTER_SPECIFIER_EXTENSION_FILTER ||
		    !ef || ef->config_type_case != ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__CONFIG_TYPE_TYPED_CONFIG ||
		    !ef->typed_config || strcmp(ef->typed_config->type_url, CEL_URL)) {
			snprintf(err, cap, "access log %s: only the CEL extension filter is supported", file->path);
			goto out;
		}
		cel = envoy__extensions__access_loggers__filters__cel__v3__expression_filter__unpack(
			NULL, ef->typed_config->value.len, ef->typed_config->value.data);
		if (!cel) {
			snprintf(err, cap, "access log %s: ExpressionFilter does not decode", file->path);
			goto out;
		}
		rc = alx_compile(cel->expression ? cel->expression : "", cel->expression ? strlen(cel->expression) : 0,
				 cfg_hdr, c, &lg->filter, err, cap);
		/* destination.address / .port read the local address: a superset test */
		if (rc == 0 && cel->expression && strstr(cel->expression, "destination"))
			c->needs |= PX_ALOG_NEED_LOCAL;
		protobuf_c_message_free_unpacked(&cel->base, NULL);
		if (rc < 0)
			goto out;
	}
	rc = px_alog_sinks_get(sinks, file->path, &lg->sink, err, cap);
	if (rc < 0 && rc != -ENOMEM)
		rc = -EINVAL; /* a file the config names and the proxy cannot open: NACK */
out:
	if (file)
		protobuf_c_message_free_unpacked(&file->base, NULL);
	return rc;
}

int px_alog_cfg_new(struct px_alog_sinks *sinks, struct Envoy__Config__Accesslog__V3__AccessLog *const *v, size_t n,
		    struct px_alog_cfg **out, char *err, size_t cap)
{
	struct px_alog_cfg *c = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!n)
		goto out;
	rc = -ENOMEM;
	if (!(c = calloc(1, sizeof(*c))) || !(c->v = calloc(n, sizeof(*c->v))))
		goto out;
	for (i = 0; i < n; i++) {
		rc = logger_compile(c, sinks, v[i], &c->v[c->n], err, cap);
		c->n++; /* cleaned up whole, also when it failed half way */
		if (rc < 0)
			goto out;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	px_alog_cfg_free(c);
	return rc;
}
