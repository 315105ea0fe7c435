/*
 * admin.c - the admin listener of admin.h on the proxy's loop.
 *
 * Each connection owns a fixed input buffer (a head can never exceed the
 * codec's limit, which is smaller), a capped output buffer, its io and an
 * idle timer, all in one allocation.  Responses are built when a head is
 * parsed, in order, so pipelined requests are answered in order; request
 * bodies are read and dropped.  When the output piles up past a mark the
 * connection stops reading until it drains (a pipelining flood cannot grow
 * memory).  A connection to be closed (an error, Connection: close) is
 * half-closed after its output is flushed and its input drained for a
 * little while (lingering close, as nginx and Apache do), so the client
 * reads the answer instead of a reset.
 */
#include "dataplane/admin.h"

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "dataplane/http1.h"
#include "dataplane/net.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_IN_MAX (64 * 1024)       /* > the codec's 60 KiB head limit */
#define ADMIN_OUT_MAX (64 * 1024 * 1024) /* cap on queued output: a whole mesh's /config_dump */
#define ADMIN_OUT_HIGH (256 * 1024)    /* stop parsing past this much queued output */
#define ADMIN_LINGER_MS 2000

struct admin;
struct admin_conn;

/* A deferred answer (admin_async_fn): conn is NULL once the connection is gone. */
struct admin_async {
	struct admin_conn *c;
	int head_only;
};

struct admin_conn {
	struct admin *a;
	struct admin_conn *next, *prev;
	struct ev_io io;
	struct ev_timer timer;
	struct h1_parser p;
	struct h1_header hdrs[H1_DEFAULT_MAX_HEADERS];
	struct mesh_buf out;
	size_t out_off;
	size_t in_off, in_len; /* unparsed input is in[in_off..in_len) */
	int in_body;  /* between a head and the end of its body */
	int keep;     /* the current request allows another */
	int closing;  /* no more requests: flush, then linger and close */
	int lingering;
	int peer_eof; /* the client closed its side */
	int broken;   /* drop at once */
	int quit;     /* stop the loop once this answer is flushed */
	int in_handle; /* inside handle(): an async reply only queues */
	int rq_timing; /* a request is being read: the timer is its deadline (ADMIN_REQUEST_MS) */
	unsigned nreq; /* requests read whole */
	struct admin_async *waiting; /* an answer deferred: read and answer nothing more */
	char in[ADMIN_IN_MAX];
};

struct admin {
	struct ev_loop *loop;
	struct ev_io lio;
	struct ev_timer lpause; /* re-arms lio after accept ran out of fds (accept_pause()) */
	int exhausted;          /* in an fd-exhaustion episode: logged and counted once */
	int fd;
	struct admin_info info;
	struct admin_stats st;
	char stat_name[80];      /* "admin", or the address as Envoy names a listener ("0.0.0.0_15021") */
	struct admin_conn conns; /* sentinel */
	admin_page_fn pages;
	void *pages_ctx;
	admin_async_fn async;
	void *async_ctx;
};

static void conn_free(struct admin_conn *c)
{
	struct admin *a = c->a;

	if (c->waiting)
		c->waiting->c = NULL; /* the answer, when it comes, is dropped */
	ev_io_stop(a->loop, &c->io);
	ev_timer_cancel(a->loop, &c->timer);
	close(c->io.fd);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	mesh_buf_cleanup(&c->out);
	a->st.cx_active--;
	free(c);
}

/* Non-zero when c can be closed to make room for a new connection without
 * losing an answer: it has no request being answered (between requests,
 * or a head or body still being read: the slow clients) and no output
 * queued. */
static int conn_evictable(const struct admin_conn *c)
{
	return !c->waiting && !c->closing && !c->lingering && c->out_off == c->out.len &&
	       (c->rq_timing || (!c->in_body && c->in_len == c->in_off));
}

/* At the cap: the longest-held evictable connection is closed (nginx's
 * answer to running out of connections, ngx_drain_connections, closes idle
 * keep-alive ones the same way; here a request still being read counts as
 * idle too), so a probe that sends its request at once is served however
 * many slow clients hold the port.  Returns 0, or -1 when every
 * connection is answering something. */
static int conn_evict(struct admin *a)
{
	struct admin_conn *c;

	/* the list has the newest first: walk from the oldest */
	for (c = a->conns.prev; c != &a->conns; c = c->prev)
		if (conn_evictable(c)) {
			a->st.cx_evicted++;
			conn_free(c);
			return 0;
		}
	return -1;
}

/* --- responses */

static void respond(struct admin_conn *c, int status, const char *ctype, const char *body, size_t blen,
		    int head_only, const char *extra)
{
	struct mesh_buf *b = &c->out;
	struct h1_str none = { "", 0 };
	struct h1_str ct = { ctype, strlen(ctype) };
	static const struct h1_str ctn = { "Content-Type", 12 };
	int rc;

	rc = h1_out_status_line(b, status, none);
	if (rc == 0)
		rc = h1_out_header(b, ctn, ct);
	if (rc == 0)
		rc = h1_out_framing(b, H1_BODY_LENGTH, blen);
	if (rc == 0 && extra)
		rc = mesh_buf_puts(b, extra);
	if (rc == 0 && !c->keep)
		rc = mesh_buf_append(b, "Connection: close\r\n", 19);
	if (rc == 0)
		rc = h1_out_end(b);
	if (rc == 0 && !head_only)
		rc = mesh_buf_append(b, body, blen);
	if (rc < 0)
		c->broken = 1; /* the output cap: this client is not reading its answers */
	c->a->st.rq_total++;
	if (status >= 500)
		c->a->st.rq_5xx++;
	else if (status >= 400)
		c->a->st.rq_4xx++;
	else if (status >= 200 && status < 300)
		c->a->st.rq_2xx++;
}

static void respond_text(struct admin_conn *c, int status, const char *text, int head_only)
{
	respond(c, status, "text/plain; charset=UTF-8", text, strlen(text), head_only, NULL);
}

/* NULL when ready (a first configuration applied and nothing warming), else
 * the 503 body of /healthz/ready saying why not. */
static const char *admin_not_ready(const struct admin *a)
{
	if (!a->info.ready || !*a->info.ready)
		return "not ready: no configuration applied yet\n";
	return a->info.warming ? a->info.warming(a->info.ctx) : NULL;
}

void admin_stats_text(const struct admin *a, struct mesh_buf *out)
{
	const char *n = a->stat_name;

	mesh_buf_printf(out,
			"http.%s.downstream_cx_idle_timeout: %llu\n"
			"http.%s.downstream_rq_timeout: %llu\n"
			"listener.%s.downstream_cx_evicted: %llu\n"
			"listener.%s.downstream_cx_overflow: %llu\n",
			n, (unsigned long long)a->st.cx_idle_timeout, n, (unsigned long long)a->st.rq_timeout, n,
			(unsigned long long)a->st.cx_evicted, n, (unsigned long long)a->st.cx_refused);
}

static void serve_stats(struct admin_conn *c, int head_only)
{
	struct admin *a = c->a;
	struct mesh_buf b;
	struct ev_stats es;

	ev_get_stats(a->loop, &es);
	mesh_buf_init(&b, 64 * 1024);
	mesh_buf_printf(&b,
			"http.admin.downstream_cx_accept_paused: %llu\n"
			"http.admin.downstream_cx_active: %llu\n"
			"http.admin.downstream_cx_refused: %llu\n"
			"http.admin.downstream_cx_total: %llu\n"
			"http.admin.downstream_rq_2xx: %llu\n"
			"http.admin.downstream_rq_4xx: %llu\n"
			"http.admin.downstream_rq_5xx: %llu\n"
			"http.admin.downstream_rq_total: %llu\n"
			"http.admin.http1.codec_errors: %llu\n"
			"server.event_loop.iterations: %llu\n"
			"server.event_loop.timers_armed: %u\n"
			"server.live: %d\n"
			"server.uptime: %llu\n",
			(unsigned long long)a->st.accept_paused, (unsigned long long)a->st.cx_active,
			(unsigned long long)a->st.cx_refused,
			(unsigned long long)a->st.cx_total, (unsigned long long)a->st.rq_2xx,
			(unsigned long long)a->st.rq_4xx, (unsigned long long)a->st.rq_5xx,
			(unsigned long long)a->st.rq_total, (unsigned long long)a->st.codec_errors,
			(unsigned long long)es.iterations, es.timers,
			admin_not_ready(a) ? 0 : 1,
			(unsigned long long)((ev_now(a->loop) - a->info.start_ms) / 1000));
	admin_stats_text(a, &b);
	if (a->info.stats)
		a->info.stats(a->info.ctx, &b);
	respond_text(c, b.err ? 500 : 200, b.err ? "stats too large\n" : b.data, head_only);
	mesh_buf_cleanup(&b);
}

static void serve_server_info(struct admin_conn *c, int head_only)
{
	struct admin *a = c->a;
	int live = !admin_not_ready(a);
	unsigned long long up = (unsigned long long)((ev_now(a->loop) - a->info.start_ms) / 1000);
	struct mesh_buf b;
	char ver[128];

	mesh_buf_init(&b, 64 * 1024);
	/* Envoy's ServerInfo fields */
	snprintf(ver, sizeof(ver), "meshproxy/%s", a->info.version ? a->info.version : "dev");
	mesh_buf_puts(&b, "{\n \"version\": ");
	json_put_string(&b, ver);
	mesh_buf_printf(&b, ",\n \"state\": \"%s\",\n \"hot_restart_version\": \"disabled\",\n"
			" \"command_line_options\": %s,\n \"node\": {\"id\": ",
			live ? "LIVE" : "INITIALIZING", a->info.cmdline ? a->info.cmdline : "{}");
	json_put_string(&b, a->info.node_id ? a->info.node_id : "");
	mesh_buf_printf(&b, "},\n \"uptime_current_epoch\": \"%llus\",\n \"uptime_all_epochs\": \"%llus\"\n}\n",
			up, up);
	if (b.err)
		respond_text(c, 500, "server_info too large\n", head_only);
	else
		respond(c, 200, "application/json", b.data, b.len, head_only, NULL);
	mesh_buf_cleanup(&b);
}

static void serve_config_dump(struct admin_conn *c, int head_only)
{
	struct admin *a = c->a;
	struct mesh_buf b;
	int rc;

	if (!a->info.config_dump) {
		respond_text(c, 200, "{\"configs\": []}\n", head_only);
		return;
	}
	mesh_buf_init(&b, ADMIN_OUT_MAX / 2);
	rc = a->info.config_dump(a->info.ctx, &b);
	if (rc < 0 || b.err)
		respond_text(c, 500, "config_dump failed\n", head_only);
	else
		respond(c, 200, "application/json", b.data, b.len, head_only, NULL);
	mesh_buf_cleanup(&b);
}

#if defined(__SANITIZE_ADDRESS__)
/* the sanitizer runtime's allocator (libasan exports these; gcc ships no
 * header for them) */
size_t __sanitizer_get_current_allocated_bytes(void);
size_t __sanitizer_get_heap_size(void);
#endif

/* Bytes malloc has handed out and bytes it holds from the OS: glibc's
 * counters, or, under ASan, whose allocator replaces glibc's (mallinfo2
 * then reads 0), the sanitizer's. */
static void heap_bytes(unsigned long long *allocated, unsigned long long *held)
{
#if defined(__SANITIZE_ADDRESS__)
	*allocated = __sanitizer_get_current_allocated_bytes();
	*held = __sanitizer_get_heap_size();
#else
	struct mallinfo2 mi = mallinfo2();

	*allocated = mi.uordblks;
	*held = mi.arena + mi.hblkhd;
#endif
}

/*
 * Envoy's server.* gauges in Prometheus form, after the engine's page:
 * live (1 once configured and not draining), state (Envoy's
 * Server::State: 0 LIVE, 1 DRAINING, 3 INITIALIZING), uptime (s),
 * concurrency (one event loop), hot_restart_epoch (0: no hot restart),
 * memory_allocated / memory_heap_size (bytes in use / held from the OS by
 * malloc, where Envoy reads tcmalloc's).
 */
static void server_prom(const struct admin *a, struct mesh_buf *b)
{
	int draining = a->info.draining && *a->info.draining;
	int live = !admin_not_ready(a) && !draining;
	unsigned long long allocated, held;

	heap_bytes(&allocated, &held);

	mesh_buf_printf(b,
			"# TYPE envoy_server_live gauge\nenvoy_server_live %d\n"
			"# TYPE envoy_server_state gauge\nenvoy_server_state %d\n"
			"# TYPE envoy_server_uptime gauge\nenvoy_server_uptime %llu\n"
			"# TYPE envoy_server_concurrency gauge\nenvoy_server_concurrency 1\n"
			"# TYPE envoy_server_hot_restart_epoch gauge\nenvoy_server_hot_restart_epoch 0\n"
			"# TYPE envoy_server_memory_allocated gauge\nenvoy_server_memory_allocated %llu\n"
			"# TYPE envoy_server_memory_heap_size gauge\nenvoy_server_memory_heap_size %llu\n",
			live, draining ? 1 : live ? 0 : 3,
			(unsigned long long)((ev_now(a->loop) - a->info.start_ms) / 1000),
			allocated, held);
}

static int serve_page(struct admin_conn *c, struct h1_str path, int head_only)
{
	struct mesh_buf b;
	const char *ctype = "text/plain; charset=UTF-8";
	int rc;

	mesh_buf_init(&b, ADMIN_OUT_MAX);
	rc = c->a->pages(c->a->pages_ctx, path.p, path.len, &b, &ctype);
	if (rc == 0 && path.len == 17 && !memcmp(path.p, "/stats/prometheus", 17))
		server_prom(c->a, &b);
	if (rc == 0) {
		if (b.err)
			respond_text(c, 500, "page too large\n", head_only);
		else
			respond(c, 200, ctype, b.data ? b.data : "", b.len, head_only, NULL);
	}
	mesh_buf_cleanup(&b);
	return rc;
}

/* Offer path to the async hook; 0 when it took a ticket. */
static int handle_async(struct admin_conn *c, struct h1_str path, int head)
{
	struct admin_async *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	t->c = c;
	t->head_only = head;
	c->waiting = t;
	rc = c->a->async(c->a->async_ctx, path.p, path.len, t);
	if (rc < 0) {
		c->waiting = NULL;
		free(t);
	}
	return rc;
}

/* A status/health port (admin_info.status_only): Istio's pilot-agent
 * readiness probe, /healthz/ready, 200 once the first configuration is
 * applied and 503 before (as the agent answers from Envoy's /ready), then
 * whatever the page hook serves; nothing of the admin port. */
static void handle_status(struct admin_conn *c, struct h1_str path, int get, int head)
{
	const char *why;

	if (!get && !head) {
		respond(c, 405, "text/plain; charset=UTF-8", "method not allowed\n", 19, 0, "Allow: GET, HEAD\r\n");
	} else if (h1_str_ieq(path, "/healthz/ready")) {
		if (c->a->info.draining && *c->a->info.draining)
			respond_text(c, 503, "not ready: draining\n", head);
		else if (!(why = admin_not_ready(c->a)))
			respond_text(c, 200, "", head);
		else
			respond_text(c, 503, why, head);
	} else if (c->a->async && handle_async(c, path, head) == 0) {
		/* taken by the async hook (answered now or later) */
	} else if (c->a->pages && serve_page(c, path, head) == 0) {
		/* answered by the page hook */
	} else {
		respond_text(c, 404, "invalid path\n", head);
	}
}

/* --- /logging */

/* spdlog's level names, in Envoy's order; each mapped onto our four levels
 * (trace is our debug, critical our error).  The listing shows the name
 * last set for a scope (log_named), else our level's name. */
static const struct {
	const char *name;
	enum mesh_log_level level;
} log_levels[] = {
	{ "trace", MESH_LOG_DEBUG }, { "debug", MESH_LOG_DEBUG }, { "info", MESH_LOG_INFO },
	{ "warning", MESH_LOG_WARN }, { "error", MESH_LOG_ERROR }, { "critical", MESH_LOG_ERROR },
	{ "off", MESH_LOG_OFF },
};
static const char *const log_level_shown[] = { "debug", "info", "warning", "error", "off" };

/* The spdlog name last set per scope ("trace", "critical"), so the listing
 * shows what was asked for while the scope's level is still the one it
 * maps to; otherwise log_level_shown.  Loop thread only. */
static struct {
	char scope[32];
	const char *name;
	enum mesh_log_level lv;
} log_named[MESH_LOG_MAX_SCOPES];

static void log_name_set(const char *scope, const char *name, enum mesh_log_level lv)
{
	size_t i;

	for (i = 0; i < MESH_LOG_MAX_SCOPES && log_named[i].scope[0]; i++)
		if (!strcmp(log_named[i].scope, scope))
			break;
	if (i == MESH_LOG_MAX_SCOPES)
		return;
	snprintf(log_named[i].scope, sizeof(log_named[i].scope), "%s", scope);
	log_named[i].name = name;
	log_named[i].lv = lv;
}

static const char *log_name_get(const char *scope, enum mesh_log_level lv)
{
	size_t i;

	for (i = 0; i < MESH_LOG_MAX_SCOPES && log_named[i].scope[0]; i++)
		if (!strcmp(log_named[i].scope, scope) && log_named[i].lv == lv)
			return log_named[i].name;
	return log_level_shown[lv];
}

/* The level named p[0..n) into *out, its spdlog name (static) into *name. */
static int log_level_parse(const char *p, size_t n, enum mesh_log_level *out, const char **name)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strlen(log_levels[i].name) == n && memcmp(log_levels[i].name, p, n) == 0) {
			*out = log_levels[i].level;
			*name = log_levels[i].name;
			return 0;
		}
	return -EINVAL;
}

/* One query parameter, percent-decoded (Envoy decodes admin query
 * parameters: paths=xds%3Adebug is paths=xds:debug) into the caller's
 * scratch. */
struct log_param {
	const char *k, *v;
	size_t klen, vlen;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes p[0..n) into *scratch (advanced); a '%' not followed by two hex
 * digits stays as it is, as Envoy's PercentEncoding::decode leaves it.
 * Returns the decoded span's start, or NULL when the scratch is full. */
static const char *pct_decode(const char *p, size_t n, char **scratch, const char *send, size_t *outlen)
{
	char *o = *scratch, *start = *scratch;
	size_t i;

	for (i = 0; i < n; i++) {
		if (o == send)
			return NULL;
		if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
			*o++ = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*outlen = (size_t)(o - start);
	*scratch = o;
	return start;
}

/* Applies the query the way Envoy's LogsHandler::changeLogLevel does:
 * empty "level"/"paths" values are ignored; no parameter lists; more than
 * one is an error; level=L sets every logger; paths=a:L1,b:L2 and NAME=L
 * set named loggers, all or none (an unknown name changes nothing).
 * Returns NULL, or the error text Envoy answers with. */
static const char *log_change(const char *q, size_t qlen)
{
	struct log_param ps[8];
	size_t n = 0, i;
	const char *end = q + qlen, *amp, *eq, *lvname;
	enum mesh_log_level lv;
	char scratch[4096], *sp = scratch;

	while (q < end) {
		amp = memchr(q, '&', (size_t)(end - q));
		if (!amp)
			amp = end;
		if (amp > q) {
			if (n == sizeof(ps) / sizeof(ps[0]))
				return "invalid number of parameters";
			eq = memchr(q, '=', (size_t)(amp - q));
			ps[n].k = pct_decode(q, (size_t)((eq ? eq : amp) - q), &sp, scratch + sizeof(scratch),
					     &ps[n].klen);
			ps[n].v = eq ? pct_decode(eq + 1, (size_t)(amp - eq - 1), &sp, scratch + sizeof(scratch),
						  &ps[n].vlen)
				     : "";
			if (!eq)
				ps[n].vlen = 0;
			if (!ps[n].k || !ps[n].v)
				return "query too long";
			if (!(ps[n].vlen == 0 && ((ps[n].klen == 5 && memcmp(ps[n].k, "level", 5) == 0) ||
						  (ps[n].klen == 5 && memcmp(ps[n].k, "paths", 5) == 0))))
				n++;
		}
		q = amp + 1;
	}
	if (n == 0)
		return NULL;
	if (n != 1)
		return "invalid number of parameters";
	if (ps[0].klen == 5 && memcmp(ps[0].k, "level", 5) == 0) {
		const char *sname;
		enum mesh_log_level cur;
		unsigned k;

		if (log_level_parse(ps[0].v, ps[0].vlen, &lv, &lvname) < 0)
			return "unknown logger level";
		mesh_log_set_level(lv);
		for (k = 0; mesh_log_scope_get(k, &sname, &cur) == 0; k++)
			log_name_set(sname, lvname, lv);
		log_info("admin", "change all log levels: level='%.*s'", (int)ps[0].vlen, ps[0].v);
		return NULL;
	}
	if (ps[0].klen == 5 && memcmp(ps[0].k, "paths", 5) == 0) {
		struct {
			char name[32];
			enum mesh_log_level lv;
			const char *lvname;
		} ch[MESH_LOG_MAX_SCOPES];
		size_t nch = 0;
		const char *p = ps[0].v, *pe = ps[0].v + ps[0].vlen, *comma, *colon;
		const char *name;
		enum mesh_log_level cur;
		unsigned k;

		/* validate everything first: Envoy changes nothing when one pair is bad */
		while (p < pe) {
			comma = memchr(p, ',', (size_t)(pe - p));
			if (!comma)
				comma = pe;
			if (comma > p) {
				colon = memchr(p, ':', (size_t)(comma - p));
				if (!colon || colon == p || colon + 1 == comma)
					return "empty logger name or empty logger level";
				if (log_level_parse(colon + 1, (size_t)(comma - colon - 1), &lv, &lvname) < 0)
					return "unknown logger level";
				if (nch == MESH_LOG_MAX_SCOPES)
					return "too many logger names (at most 16)";
				if ((size_t)(colon - p) >= sizeof(ch[0].name))
					return "unknown logger name";
				memcpy(ch[nch].name, p, (size_t)(colon - p));
				ch[nch].name[colon - p] = 0;
				ch[nch].lv = lv;
				ch[nch].lvname = lvname;
				for (k = 0; mesh_log_scope_get(k, &name, &cur) == 0; k++)
					if (strcmp(name, ch[nch].name) == 0)
						break;
				if (mesh_log_scope_get(k, &name, &cur) < 0)
					return "unknown logger name";
				nch++;
			}
			p = comma + 1;
		}
		for (i = 0; i < nch; i++) {
			(void)mesh_log_scope_set(ch[i].name, ch[i].lv);
			log_name_set(ch[i].name, ch[i].lvname, ch[i].lv);
			log_info("admin", "change log level: name='%s' level='%s'", ch[i].name, ch[i].lvname);
		}
		return NULL;
	}
	if (log_level_parse(ps[0].v, ps[0].vlen, &lv, &lvname) < 0)
		return "unknown logger level";
	{
		char name[32];

		if (ps[0].klen >= sizeof(name))
			return "unknown logger name";
		memcpy(name, ps[0].k, ps[0].klen);
		name[ps[0].klen] = 0;
		if (mesh_log_scope_set(name, lv) < 0)
			return "unknown logger name";
		log_name_set(name, lvname, lv);
		log_info("admin", "change log level: name='%s' level='%s'", name, lvname);
	}
	return NULL;
}

/* Envoy's /logging (source/server/admin/logs_handler.cc): a change, or a
 * usage text and 400 when the change is refused, then the loggers and
 * their levels ("active loggers:\n  NAME: LEVEL\n ...").  Our loggers are
 * meshproxy's log scopes (mesh_log_scope_add()).  Envoy takes changes by
 * POST only (it answers other methods 405); a GET without parameters is
 * also answered here with the list, as a read-only view. */
static void serve_logging(struct admin_conn *c, struct h1_str full, int post, int head)
{
	const char *q = memchr(full.p, '?', full.len);
	size_t qlen = q ? full.len - (size_t)(q + 1 - full.p) : 0;
	const char *err;
	const char *name;
	enum mesh_log_level lv;
	struct mesh_buf b;
	unsigned i;
	int status = 200;

	if (!post && qlen > 0) {
		respond(c, 405, "text/plain; charset=UTF-8", "Method GET not allowed, POST required.", 38, head,
			"Allow: POST\r\n");
		return;
	}
	mesh_buf_init(&b, 64 * 1024);
	err = q ? log_change(q + 1, qlen) : NULL;
	if (err) {
		status = 400;
		mesh_buf_printf(&b, "error: %s\n\n", err);
		mesh_buf_puts(&b, "usage: /logging?<name>=<level> (change single level)\n"
				  "usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n"
				  "usage: /logging?level=<level> (change all levels)\n"
				  "levels: ");
		for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
			mesh_buf_printf(&b, "%s ", log_levels[i].name);
		mesh_buf_puts(&b, "\n");
	}
	mesh_buf_puts(&b, "active loggers:\n");
	for (i = 0; mesh_log_scope_get(i, &name, &lv) == 0; i++)
		mesh_buf_printf(&b, "  %s: %s\n", name, log_name_get(name, lv));
	mesh_buf_puts(&b, "\n");
	respond(c, b.err ? 500 : status, "text/plain; charset=UTF-8", b.err ? "" : b.data, b.err ? 0 : b.len, head,
		NULL);
	mesh_buf_cleanup(&b);
}

/* Routes one parsed request; h's spans are valid only during this call. */
static void handle(struct admin_conn *c, const struct h1_head *h)
{
	struct h1_str path = h->path;
	const char *q;
	int get = h1_str_ieq(h->method, "get") && h->method.p[0] == 'G';
	int head = (h->flags & H1_F_HEAD) != 0;
	int post = h->method.len == 4 && memcmp(h->method.p, "POST", 4) == 0;

	q = memchr(path.p, '?', path.len);
	if (q)
		path.len = (size_t)(q - path.p);
	if (h->form != H1_FORM_ORIGIN) {
		respond_text(c, 404, "invalid path\n", head);
	} else if (c->a->info.status_only) {
		handle_status(c, path, get, head);
	} else if (h1_str_ieq(path, "/quitquitquit")) {
		if (post) {
			c->keep = 0;
			c->closing = 1;
			c->quit = 1;
			respond_text(c, 200, "OK\n", 0);
		} else {
			respond(c, 405, "text/plain; charset=UTF-8", "This endpoint requires POST\n", 28, head,
				"Allow: POST\r\n");
		}
	} else if (h1_str_ieq(path, "/reopen_logs") && c->a->info.reopen_logs) {
		if (post) {
			char err[256], body[300];
			int rc = c->a->info.reopen_logs(c->a->info.ctx, err, sizeof(err));

			if (rc < 0) {
				snprintf(body, sizeof(body), "%s\n", err);
				respond_text(c, 500, body, 0);
			} else {
				respond_text(c, 200, "OK\n", 0);
			}
		} else {
			respond(c, 405, "text/plain; charset=UTF-8", "This endpoint requires POST\n", 28, head,
				"Allow: POST\r\n");
		}
	} else if (h1_str_ieq(path, "/logging")) {
		if (post || get || head)
			serve_logging(c, h->path, post, head);
		else
			respond(c, 405, "text/plain; charset=UTF-8", "method not allowed\n", 19, 0,
				"Allow: GET, HEAD, POST\r\n");
	} else if (!get && !head) {
		respond(c, 405, "text/plain; charset=UTF-8", "method not allowed\n", 19, 0, "Allow: GET, HEAD\r\n");
	} else if (h1_str_ieq(path, "/ready")) {
		if (c->a->info.draining && *c->a->info.draining)
			respond_text(c, 503, "DRAINING\n", head);
		else if (!admin_not_ready(c->a))
			respond_text(c, 200, "LIVE\n", head);
		else
			respond_text(c, 503, "NOT READY\n", head);
	} else if (h1_str_ieq(path, "/server_info")) {
		serve_server_info(c, head);
	} else if (h1_str_ieq(path, "/config_dump")) {
		serve_config_dump(c, head);
	} else if (h1_str_ieq(path, "/stats")) {
		serve_stats(c, head);
	} else if (c->a->pages && serve_page(c, path, head) == 0) {
		/* answered by the page hook */
	} else {
		respond_text(c, 404, "invalid path\n", head);
	}
}

/* --- connection I/O */

static void conn_update(struct admin_conn *c);

static void conn_process(struct admin_conn *c)
{
	struct h1_head h;
	struct h1_str data;
	size_t used;
	int rc;

	while (!c->closing && !c->waiting && c->out.len - c->out_off < ADMIN_OUT_HIGH) {
		if (!c->in_body) {
			rc = h1_parse_head(&c->p, c->in + c->in_off, c->in_len - c->in_off, &h);
			if (rc == H1_AGAIN)
				break;
			if (rc < 0) {
				char msg[64];
				size_t n;

				c->a->st.codec_errors++;
				c->keep = 0;
				c->closing = 1;
				n = (size_t)snprintf(msg, sizeof(msg), "%s\n", h1_strerror(rc));
				respond(c, h1_err_status(rc), "text/plain; charset=UTF-8", msg, n, 0, NULL);
				log_debug("admin", "request refused: %s", h1_strerror(rc));
				break;
			}
			c->keep = (h.flags & H1_F_KEEP_ALIVE) != 0;
			/* answered before the body: a client waiting for 100 would never send it, so
			 * the connection ends here instead of reading the next request as body */
			if ((h.flags & H1_F_EXPECT_CONTINUE) && h.framing != H1_BODY_NONE)
				c->keep = 0;
			c->in_handle = 1;
			handle(c, &h);
			c->in_handle = 0;
			c->in_off += h.head_len;
			c->in_body = 1;
			if (c->closing)
				break;
		}
		rc = h1_parse_body(&c->p, c->in + c->in_off, c->in_len - c->in_off, &used, &data);
		c->in_off += used;
		if (rc == H1_DATA || rc == H1_TRAILERS)
			continue;
		if (rc == H1_AGAIN)
			break;
		if (rc < 0) {
			c->a->st.codec_errors++;
			c->closing = 1; /* the answer is out already; the framing is broken */
			break;
		}
		c->in_body = 0;
		c->nreq++;
		h1_parser_reset(&c->p);
		if (!c->keep) {
			c->closing = 1;
			break;
		}
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

/* Writes queued output, then moves a closing connection on; returns -1 if it was freed. */
static int conn_flush(struct admin_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out.len) {
		n = send(c->io.fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			conn_free(c);
			return -1;
		}
		c->out_off += (size_t)n;
	}
	mesh_buf_reset(&c->out);
	c->out_off = 0;
	if (c->quit) {
		log_info("admin", "/quitquitquit: exiting");
		ev_stop(c->a->loop);
		c->quit = 0;
	}
	if (c->closing && c->peer_eof) {
		conn_free(c);
		return -1;
	}
	if (c->closing && !c->lingering) {
		/* lingering close: our side is done; drain theirs for a while, so
		 * unread input does not turn our answer into a reset */
		shutdown(c->io.fd, SHUT_WR);
		c->lingering = 1;
		ev_timer_arm(c->a->loop, &c->timer, ADMIN_LINGER_MS);
	}
	return 0;
}

static void conn_update(struct admin_conn *c)
{
	unsigned mask = 0;

	if (c->out_off < c->out.len)
		mask |= EV_WRITE;
	if (c->lingering ||
	    (!c->closing && !c->waiting && c->out.len - c->out_off < ADMIN_OUT_HIGH && c->in_len < sizeof(c->in)))
		mask |= EV_READ;
	if (ev_io_set(c->a->loop, &c->io, mask) < 0)
		conn_free(c);
}

/*
 * The connection's one timer, after its input was looked at (nreq: the
 * requests read whole before): a request whose first byte has come has
 * ADMIN_REQUEST_MS from then to be read whole (head and body, however
 * slowly its bytes trickle in: a byte does not move the deadline, as
 * Envoy's request_headers_timeout runs from a head's first byte to its
 * end); a connection between requests is closed after ADMIN_IDLE_MS
 * without one.  An answer deferred (app probes) keeps what runs.
 */
static void conn_deadline(struct admin_conn *c, unsigned nreq)
{
	int partial = c->in_body || c->in_len > c->in_off;

	if (c->closing || c->lingering)
		return;
	if (c->waiting) {
		/* the answer's wait is bounded by whoever answers (the app
		 * prober's timeout); the idle timeout runs meanwhile */
		if (c->rq_timing) {
			c->rq_timing = 0;
			ev_timer_arm(c->a->loop, &c->timer, ADMIN_IDLE_MS);
		}
		return;
	}
	if (partial && (!c->rq_timing || c->nreq != nreq)) {
		c->rq_timing = 1;
		ev_timer_arm(c->a->loop, &c->timer, ADMIN_REQUEST_MS);
	} else if (!partial && (c->rq_timing || c->nreq != nreq)) {
		c->rq_timing = 0;
		ev_timer_arm(c->a->loop, &c->timer, ADMIN_IDLE_MS);
	}
}

static void conn_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct admin_conn *c = io->data;
	char drain[4096];
	unsigned nreq;
	ssize_t n;

	(void)loop;
	if (c->lingering) {
		n = read(io->fd, drain, sizeof(drain));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_free(c);
		return;
	}
	if ((events & (EV_READ | EV_ERROR)) && !c->closing) {
		if (c->in_off > 0) {
			memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		/* (a full buffer cannot hold less than a head's limit: the codec has answered) */
		n = c->in_len < sizeof(c->in) ? read(io->fd, c->in + c->in_len, sizeof(c->in) - c->in_len) : 1;
		if (c->in_len == sizeof(c->in)) {
			/* nothing read */
		} else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* the peer is gone or half-closed: answer what is complete, then close */
			c->peer_eof = 1;
		} else if (n > 0) {
			c->in_len += (size_t)n;
		}
	}
	nreq = c->nreq;
	conn_process(c);
	conn_deadline(c, nreq);
	if (c->peer_eof)
		c->closing = 1;
	if (c->broken) {
		conn_free(c);
		return;
	}
	if (conn_flush(c) < 0)
		return;
	conn_update(c);
}

static void conn_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin_conn *c = t->data;

	(void)loop;
	if (!c->rq_timing || c->closing || c->lingering || c->waiting) {
		if (!c->closing && !c->lingering && !c->waiting)
			c->a->st.cx_idle_timeout++;
		conn_free(c); /* idle, or the linger is over */
		return;
	}
	/* a request not read whole in time: 408 and the connection closed,
	 * as Envoy answers a request_headers_timeout ("request header timeout") */
	c->a->st.rq_timeout++;
	c->keep = 0;
	c->closing = 1;
	c->rq_timing = 0;
	respond_text(c, 408, "request timeout\n", 0);
	if (c->broken) {
		conn_free(c);
		return;
	}
	if (conn_flush(c) < 0)
		return;
	conn_update(c);
}

/* How long a listener sleeps after accept ran out of fds or memory (nginx's
 * and haproxy's answer): level-triggered, the pending connection would
 * wake the loop again at once and spin it at 100% CPU, starving every port. */
#define ADMIN_ACCEPT_PAUSE_MS 100

static void accept_resume(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin *a = t->data;

	if (ev_io_set(loop, &a->lio, EV_READ) < 0)
		ev_timer_arm(loop, &a->lpause, ADMIN_ACCEPT_PAUSE_MS); /* try again later */
}

static void accept_pause(struct ev_loop *loop, struct admin *a, int err)
{
	if (!a->exhausted) {
		a->exhausted = 1;
		a->st.accept_paused++;
		log_warn("admin", "accept: %s; pausing the listener %d ms at a time until it recovers", strerror(err),
			 ADMIN_ACCEPT_PAUSE_MS);
	}
	if (ev_io_set(loop, &a->lio, 0) < 0)
		return; /* cannot change interest: nothing better than spinning */
	ev_timer_arm(loop, &a->lpause, ADMIN_ACCEPT_PAUSE_MS);
}

static void accept_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct admin *a = io->data;
	struct admin_conn *c;
	int fd;

	(void)events;
	for (;;) {
		fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_pause(loop, a, errno);
			return; /* EAGAIN, or a connection that died queued: next readiness */
		}
		a->exhausted = 0;
		if ((a->st.cx_active >= ADMIN_MAX_CONNS && conn_evict(a) < 0) || !(c = calloc(1, sizeof(*c)))) {
			a->st.cx_refused++;
			close(fd);
			continue;
		}
		c->a = a;
		mesh_buf_init(&c->out, ADMIN_OUT_MAX);
		h1_parser_init(&c->p, 1, NULL, c->hdrs, H1_DEFAULT_MAX_HEADERS);
		ev_io_init(&c->io, fd, conn_cb, c);
		ev_timer_init(&c->timer, conn_timer, c);
		c->next = a->conns.next;
		c->prev = &a->conns;
		a->conns.next->prev = c;
		a->conns.next = c;
		a->st.cx_total++;
		a->st.cx_active++;
		if (ev_io_start(loop, &c->io, EV_READ) < 0) {
			conn_free(c);
			continue;
		}
		ev_timer_arm(loop, &c->timer, ADMIN_IDLE_MS);
	}
}

int admin_start(struct ev_loop *loop, const char *addr, const struct admin_info *info, struct admin **out)
{
	struct admin *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->info = *info;
	a->conns.next = a->conns.prev = &a->conns;
	if (info->status_only) {
		size_t i;

		snprintf(a->stat_name, sizeof(a->stat_name), "%s", addr);
		for (i = 0; a->stat_name[i]; i++)
			if (a->stat_name[i] == ':')
				a->stat_name[i] = '_';
	} else {
		snprintf(a->stat_name, sizeof(a->stat_name), "admin");
	}
	a->fd = net_listen(addr, 128, 0);
	if (a->fd < 0) {
		rc = a->fd;
		free(a);
		return rc;
	}
	ev_io_init(&a->lio, a->fd, accept_cb, a);
	ev_timer_init(&a->lpause, accept_resume, a);
	rc = ev_io_start(loop, &a->lio, EV_READ);
	if (rc < 0) {
		close(a->fd);
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	while (a->conns.next != &a->conns)
		conn_free(a->conns.next);
	ev_timer_cancel(a->loop, &a->lpause);
	ev_io_stop(a->loop, &a->lio);
	close(a->fd);
	free(a);
}

void admin_set_async(struct admin *a, admin_async_fn fn, void *ctx)
{
	a->async = fn;
	a->async_ctx = ctx;
}

void admin_async_reply(struct admin_async *t, int status, const char *body)
{
	struct admin_conn *c = t->c;
	int head_only = t->head_only;

	free(t);
	if (!c)
		return;
	c->waiting = NULL;
	respond_text(c, status, body, head_only);
	if (c->in_handle)
		return; /* conn_process goes on from here */
	/* a later callback: the next pipelined request, then the output */
	conn_process(c);
	conn_deadline(c, c->nreq + 1); /* whatever comes next starts afresh */
	if (c->broken) {
		conn_free(c);
		return;
	}
	if (conn_flush(c) < 0)
		return;
	conn_update(c);
}

void admin_set_pages(struct admin *a, admin_page_fn fn, void *ctx)
{
	a->pages = fn;
	a->pages_ctx = ctx;
}

int admin_port(const struct admin *a)
{
	return net_local_port(a->fd);
}

const struct admin_stats *admin_stats(const struct admin *a)
{
	return &a->st;
}
