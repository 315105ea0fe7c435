/*
 * server.c - meshd's admission webhook server (see server.h).
 *
 * libmicrohttpd with its GnuTLS backend serves HTTPS on a small pool of
 * epoll threads (WEBHOOK_THREADS): an idle or half-sent connection costs a
 * socket and a buffer, never a thread.  Against slow or hostile clients:
 * a connection cap, a cap per peer address, an idle deadline (silence
 * closes a connection, headers half sent or not, TLS handshake included),
 * a head deadline (TLS handshake and request head complete within
 * WEBHOOK_HEAD_DEADLINE_S of the accept or of the previous request's end,
 * however the bytes trickle: libmicrohttpd only knows the idle one, so
 * this module's reaper thread shuts such a connection's socket down) and
 * a whole-request deadline checked as body bytes arrive (a client
 * trickling a byte at a time is cut at WEBHOOK_REQUEST_DEADLINE_S), and
 * the body cap (Content-Length over it: 413 at once; a chunked body
 * growing past it: the connection is closed).
 *
 * The serving certificate comes from meshd's CA.  libmicrohttpd cannot
 * swap certificates in a running daemon, so renewal starts a second daemon
 * on the same listening socket (MHD_quiesce_daemon hands it over: no
 * connection is refused meanwhile) and stops the old one a deadline later,
 * when any request it still held has ended.  A thread of this module
 * (webhook__renewer) does both on a timer.
 */
#include "controlplane/webhook/server.h"

#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "controlplane/ca/ca.h"
#include "controlplane/metrics/metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WEBHOOK_LOG "webhook"

#define WEBHOOK_THREADS 2u                  /* epoll threads serving every connection */
#define WEBHOOK_MAX_CONNECTIONS 1024u       /* concurrent connections, all peers */
/* One address: the API server is one (or a few), and over HTTP/1.1 it
 * opens a connection per admission call in flight (its transport has no
 * per-host cap): a burst of pod creations easily holds more than 64, and
 * at 64 the 65th call was closed unanswered (100 at once from one address:
 * 36 failed), failing the Pod under failurePolicy Fail.  Half the total
 * still keeps one other address from taking every slot. */
#define WEBHOOK_MAX_PER_IP (WEBHOOK_MAX_CONNECTIONS / 2)
#define WEBHOOK_IDLE_TIMEOUT_S 10u          /* silence that closes a connection */
/* TLS handshake and request head: the API server sends a head at once;
 * a client trickling a byte every few seconds (under the idle deadline)
 * held its slot forever before this, and 2 addresses held all 1024. */
#define WEBHOOK_HEAD_DEADLINE_S 10
#define WEBHOOK_REAP_INTERVAL_MS 500        /* how often the reaper looks */
#define WEBHOOK_REQUEST_DEADLINE_S 30       /* first byte to last body byte (the API server waits 10 s) */
#define WEBHOOK_LISTEN_BACKLOG 1024
#define WEBHOOK_MAX_PATH 64                 /* a route's path */
#define WEBHOOK_RETRY_S 60                  /* a failed renewal is tried again after this */
#define WEBHOOK_MAX_DNS 16                  /* SANs kept */

#define WEBHOOK_CT_JSON "application/json"
#define WEBHOOK_CT_TEXT "text/plain; charset=utf-8"

struct webhook__route {
	char path[WEBHOOK_MAX_PATH];
	webhook_handler_fn fn;
	void *ud;
};

/* A daemon and the PEM it was started with (libmicrohttpd keeps the
 * pointers, not copies: they live as long as the daemon). */
struct webhook__gen {
	struct MHD_Daemon *mhd;
	char *chain;
	char *key;
};

static void webhook__gen_stop(struct webhook__gen *g)
{
	if (g->mhd)
		MHD_stop_daemon(g->mhd);
	if (g->key) {
		explicit_bzero(g->key, strlen(g->key));
		free(g->key);
	}
	free(g->chain);
	memset(g, 0, sizeof(*g));
}

struct webhook_server {
	char *addr;
	struct ca *ca;
	char *dns[WEBHOOK_MAX_DNS];
	size_t ndns;
	char *ips[WEBHOOK_MAX_DNS];
	size_t nips;
	int64_t ttl;
	int port;
	int v6; /* the address is IPv6 (mesh_listen_tcp) */

	/* routes: taken by the request threads; never held while a daemon
	 * stops (stopping one joins its threads) */
	pthread_mutex_t routes_lock;
	pthread_mutex_t lock;                /* daemons, expiry, stopping: the renewer's */
	pthread_cond_t cond;
	struct webhook__route routes[WEBHOOK_MAX_ROUTES];
	size_t nroutes;
	struct webhook__gen cur;             /* serving */
	struct webhook__gen retired;         /* quiesced at the last renewal, stopped at retire_at */
	int64_t retire_at;
	int64_t not_after;                   /* current certificate's expiry (epoch seconds) */
	int64_t renew_at;
	bool stopping;
	bool thread_started;
	pthread_t thread;

	/* the head deadline's reaper: connections of every daemon */
	pthread_mutex_t conns_lock;
	pthread_cond_t reaper_cond;          /* CLOCK_MONOTONIC */
	struct webhook__conn *conns;
	bool reaper_stopping;
	bool reaper_started;
	pthread_t reaper;
};

/* One connection (libmicrohttpd's socket_context), on the server's list
 * from MHD_CONNECTION_NOTIFY_STARTED to MHD_CONNECTION_NOTIFY_CLOSED,
 * which libmicrohttpd sends before it closes fd: while listed (under
 * conns_lock) fd is this connection's. */
struct webhook__conn {
	struct webhook__conn *prev, *next;
	int fd;
	bool in_head;        /* handshake or request head not complete */
	bool cut;            /* the reaper shut it down */
	struct timespec since; /* the head's deadline runs from here */
};

/* One request in flight (libmicrohttpd's con_cls). */
struct webhook__req {
	struct mesh_buf body;
	struct timespec start;
	webhook_handler_fn fn;
	void *ud;
};

static int64_t webhook__now(void)
{
	return (int64_t)time(NULL);
}

/* ---------------------------------------------------------------- requests */

static enum MHD_Result webhook__reply(struct MHD_Connection *c, unsigned int status, const char *ct, char *data,
				      size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret = MHD_NO;

	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct) == MHD_YES)
		ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A short text reply (errors the server itself decides). */
static enum MHD_Result webhook__text(struct MHD_Connection *c, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result webhook__text(struct MHD_Connection *c, unsigned int status, const char *fmt, ...)
{
	char msg[512];
	char *data;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	data = malloc((size_t)n + 1);
	if (!data)
		return MHD_NO;
	memcpy(data, msg, (size_t)n + 1);
	return webhook__reply(c, status, WEBHOOK_CT_TEXT, data, (size_t)n);
}

static bool webhook__json_type(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (!ct || strncasecmp(ct, want, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static bool webhook__lookup(struct webhook_server *s, const char *path, webhook_handler_fn *fn, void **ud)
{
	bool found = false;
	size_t i, best = 0, n;

	/* the exact path, else the longest route P with path under "P/"
	 * (istiod's mux serves /inject/ too: the chart calls
	 * /inject/cluster/CLUSTER/net/NETWORK) */
	pthread_mutex_lock(&s->routes_lock);
	for (i = 0; i < s->nroutes; i++) {
		n = strlen(s->routes[i].path);
		if (strcmp(s->routes[i].path, path) == 0 ||
		    (n > best && strncmp(s->routes[i].path, path, n) == 0 && path[n] == '/')) {
			*fn = s->routes[i].fn;
			*ud = s->routes[i].ud;
			found = true;
			best = n;
			if (path[n] == '\0')
				break;
		}
	}
	pthread_mutex_unlock(&s->routes_lock);
	return found;
}

static struct webhook__conn *webhook__conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* A request head arrived (again = false) or a request ended (again =
 * true: the next head's deadline starts now). */
static void webhook__head_done(struct webhook_server *s, struct MHD_Connection *c, bool again)
{
	struct webhook__conn *wc = webhook__conn_of(c);

	if (!wc)
		return;
	pthread_mutex_lock(&s->conns_lock);
	wc->in_head = again;
	if (again)
		clock_gettime(CLOCK_MONOTONIC, &wc->since);
	pthread_mutex_unlock(&s->conns_lock);
}

static double webhook__elapsed(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The first call of a request: decide from the headers alone. */
static enum MHD_Result webhook__begin(struct webhook_server *s, struct MHD_Connection *c, const char *url,
				     const char *method, void **con_cls)
{
	struct webhook__req *req;
	webhook_handler_fn fn;
	const char *cl;
	void *ud;

	if (!webhook__lookup(s, url, &fn, &ud))
		return webhook__text(c, MHD_HTTP_NOT_FOUND, "no such path: %.200s\n", url);
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return webhook__text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.40s not allowed: POST only\n", method);
	if (!webhook__json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return webhook__text(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				     "contentType=%.100s, expect application/json\n",
				     MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)
					     ?: "(none)");
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > WEBHOOK_MAX_BODY) {
		metrics_limit(METRICS_LIMIT_WEBHOOK_BODY);
		return webhook__text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %zu bytes\n",
				     (size_t)WEBHOOK_MAX_BODY);
	}
	req = calloc(1, sizeof(*req));
	if (!req)
		return MHD_NO;
	mesh_buf_init(&req->body, WEBHOOK_MAX_BODY);
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	req->fn = fn;
	req->ud = ud;
	*con_cls = req;
	return MHD_YES;
}

static enum MHD_Result webhook__handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				       const char *version, const char *upload_data, size_t *upload_data_size,
				       void **con_cls)
{
	struct webhook_server *s = cls;
	struct webhook__req *req = *con_cls;
	struct mesh_buf out;
	unsigned int status;
	const char *ct;
	char *data;
	size_t len;
	int rc;

	(void)version;
	if (!req) {
		webhook__head_done(s, c, false);
		return webhook__begin(s, c, url, method, con_cls);
	}
	if (webhook__elapsed(&req->start) > WEBHOOK_REQUEST_DEADLINE_S) {
		log_warn(WEBHOOK_LOG, "%s: request not complete after %d s: connection closed", url,
			 WEBHOOK_REQUEST_DEADLINE_S);
		return MHD_NO;
	}
	if (*upload_data_size) {
		if (mesh_buf_append(&req->body, upload_data, *upload_data_size) < 0) {
			metrics_limit(METRICS_LIMIT_WEBHOOK_BODY);
			return MHD_NO; /* over WEBHOOK_MAX_BODY without a Content-Length */
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* the whole body is here */
	mesh_buf_init(&out, WEBHOOK_MAX_RESPONSE);
	rc = req->fn(req->ud, req->body.data ? req->body.data : "", req->body.len, &out);
	if (rc == 0 && out.err == 0) {
		status = MHD_HTTP_OK;
		ct = WEBHOOK_CT_JSON;
	} else if (rc == -EINVAL) {
		status = MHD_HTTP_BAD_REQUEST;
		ct = WEBHOOK_CT_TEXT;
	} else {
		log_warn(WEBHOOK_LOG, "%s: handler failed: %s", url, mesh_strerror(rc < 0 ? rc : out.err));
		mesh_buf_reset(&out);
		mesh_buf_printf(&out, "internal error: %s\n", mesh_strerror(rc < 0 ? rc : out.err));
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ct = WEBHOOK_CT_TEXT;
	}
	data = mesh_buf_take(&out, &len);
	mesh_buf_cleanup(&out);
	if (!data) {
		data = strdup("");
		len = 0;
		if (!data)
			return MHD_NO;
	}
	return webhook__reply(c, status, ct, data, len);
}

static void webhook__completed(void *cls, struct MHD_Connection *c, void **con_cls,
			       enum MHD_RequestTerminationCode toe)
{
	struct webhook__req *req = *con_cls;

	(void)toe;
	webhook__head_done(cls, c, true);
	if (!req)
		return;
	mesh_buf_cleanup(&req->body);
	free(req);
	*con_cls = NULL;
}

/* MHD_OPTION_NOTIFY_CONNECTION: list a connection from its accept to
 * its close. */
static void webhook__notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
				 enum MHD_ConnectionNotificationCode toe)
{
	struct webhook_server *s = cls;
	struct webhook__conn *wc = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		wc = calloc(1, sizeof(*wc));
		if (!wc || !ci) {
			/* unwatched: the idle deadline still bounds it */
			free(wc);
			return;
		}
		wc->fd = ci->connect_fd;
		wc->in_head = true;
		clock_gettime(CLOCK_MONOTONIC, &wc->since);
		pthread_mutex_lock(&s->conns_lock);
		wc->next = s->conns;
		if (s->conns)
			s->conns->prev = wc;
		s->conns = wc;
		pthread_mutex_unlock(&s->conns_lock);
		*socket_context = wc;
		return;
	}
	if (!wc)
		return;
	pthread_mutex_lock(&s->conns_lock);
	if (wc->prev)
		wc->prev->next = wc->next;
	else
		s->conns = wc->next;
	if (wc->next)
		wc->next->prev = wc->prev;
	pthread_mutex_unlock(&s->conns_lock);
	free(wc);
	*socket_context = NULL;
}

/* Shuts down the socket of every connection whose handshake or request
 * head is not complete WEBHOOK_HEAD_DEADLINE_S after it began; its
 * daemon sees the hang-up and closes it (shutdown, not close: the fd
 * stays the daemon's to close). */
static void *webhook__reaper(void *arg)
{
	struct webhook_server *s = arg;
	struct webhook__conn *wc;
	struct timespec now, until;

	pthread_mutex_lock(&s->conns_lock);
	while (!s->reaper_stopping) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (wc = s->conns; wc; wc = wc->next) {
			if (!wc->in_head || wc->cut || now.tv_sec - wc->since.tv_sec < WEBHOOK_HEAD_DEADLINE_S)
				continue;
			wc->cut = true;
			/* counted first: whoever sees the hang-up then sees the count */
			metrics_limit(METRICS_LIMIT_WEBHOOK_HEAD_TIMEOUT);
			(void)shutdown(wc->fd, SHUT_RDWR);
			log_debug(WEBHOOK_LOG, "TLS handshake or request head not complete after %d s: connection closed",
				  WEBHOOK_HEAD_DEADLINE_S);
		}
		until = now;
		until.tv_nsec += (long)WEBHOOK_REAP_INTERVAL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&s->reaper_cond, &s->conns_lock, &until);
	}
	pthread_mutex_unlock(&s->conns_lock);
	return NULL;
}

static void webhook__mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* libmicrohttpd's only word on a connection it refused past
	 * MHD_OPTION_CONNECTION_LIMIT or MHD_OPTION_PER_IP_CONNECTION_LIMIT */
	if (strstr(msg, "reached connection limit"))
		metrics_limit(METRICS_LIMIT_WEBHOOK_CONNECTIONS);
	log_debug(WEBHOOK_LOG, "libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------- listen */


/* ---------------------------------------------------------------- certificate */

/* A new certificate and a daemon serving it on fd into *g.  On failure
 * fd is the caller's still.  Returns 0 or < 0. */
static int webhook__daemon(struct webhook_server *s, int fd, struct webhook__gen *g, int64_t *not_after)
{
	char err[CA_ERR_CAP];
	unsigned int flags;
	int rc;

	memset(g, 0, sizeof(*g));
	rc = ca_issue_serving(s->ca, (const char *const *)s->dns, s->ndns, (const char *const *)s->ips, s->nips, s->ttl,
			      &g->chain, &g->key,
			      not_after, err, sizeof(err));
	if (rc < 0) {
		log_error(WEBHOOK_LOG, "serving certificate for %s: %s", s->dns[0], err);
		goto out;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TLS | MHD_USE_ITC;
	if (s->v6)
		flags |= MHD_USE_IPv6;
	g->mhd = MHD_start_daemon(flags, 0, NULL, NULL, webhook__handle, s,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_HTTPS_MEM_CERT, g->chain,
				  MHD_OPTION_HTTPS_MEM_KEY, g->key,
				  MHD_OPTION_THREAD_POOL_SIZE, WEBHOOK_THREADS,
				  MHD_OPTION_CONNECTION_LIMIT, WEBHOOK_MAX_CONNECTIONS,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, WEBHOOK_MAX_PER_IP,
				  MHD_OPTION_CONNECTION_TIMEOUT, WEBHOOK_IDLE_TIMEOUT_S,
				  MHD_OPTION_NOTIFY_COMPLETED, webhook__completed, (void *)s,
				  MHD_OPTION_NOTIFY_CONNECTION, webhook__notify_conn, (void *)s,
				  MHD_OPTION_EXTERNAL_LOGGER, webhook__mhd_log, (void *)NULL,
				  MHD_OPTION_END);
	rc = g->mhd ? 0 : -ENOMEM;
	if (rc < 0)
		log_error(WEBHOOK_LOG, "libmicrohttpd (TLS) failed to start on %s", s->addr);
out:
	if (rc < 0)
		webhook__gen_stop(g);
	return rc;
}

/* When to renew a certificate valid until not_after: at half its life. */
static int64_t webhook__renew_time(int64_t not_after)
{
	int64_t now = webhook__now(), left = not_after - now;

	return now + (left > 2 ? left / 2 : 1);
}

/* Retire the serving daemon: it is stopped at retire_at (any request it
 * still holds has met its deadline by then). */
static void webhook__retire(struct webhook_server *s)
{
	webhook__gen_stop(&s->retired);
	s->retired = s->cur;
	memset(&s->cur, 0, sizeof(s->cur));
	s->retire_at = webhook__now() + WEBHOOK_REQUEST_DEADLINE_S + WEBHOOK_IDLE_TIMEOUT_S;
}

/* Renewal: a new daemon on the same socket, the old one quiesced. */
static void webhook__renew(struct webhook_server *s)
{
	struct webhook__gen fresh;
	int64_t not_after = 0;
	MHD_socket fd;

	fd = MHD_quiesce_daemon(s->cur.mhd);
	if (fd == MHD_INVALID_SOCKET) {
		log_error(WEBHOOK_LOG, "renewal: cannot take the listening socket over; retrying in %d s",
			  WEBHOOK_RETRY_S);
		s->renew_at = webhook__now() + WEBHOOK_RETRY_S;
		return;
	}
	webhook__retire(s);
	if (webhook__daemon(s, fd, &fresh, &not_after) < 0) {
		/* the quiesced daemon accepts no more; the port is closed
		 * until a retry works (webhook__restart), said loudly */
		log_error(WEBHOOK_LOG, "renewal failed: %s not served until it works (retrying in %d s)", s->addr,
			  WEBHOOK_RETRY_S);
		close(fd);
		s->renew_at = webhook__now() + WEBHOOK_RETRY_S;
		return;
	}
	s->cur = fresh;
	s->not_after = not_after;
	s->renew_at = webhook__renew_time(not_after);
	log_info(WEBHOOK_LOG, "serving certificate renewed (valid until %lld)", (long long)not_after);
}

/* Serve again after a failed renewal left the port closed. */
static void webhook__restart(struct webhook_server *s)
{
	int64_t not_after = 0;
	int fd = -1;

	if (mesh_listen_tcp(s->addr, WEBHOOK_LISTEN_BACKLOG, &fd, &s->port, &s->v6) < 0 || webhook__daemon(s, fd, &s->cur, &not_after) < 0) {
		if (fd >= 0)
			close(fd);
		s->renew_at = webhook__now() + WEBHOOK_RETRY_S;
		return;
	}
	s->not_after = not_after;
	s->renew_at = webhook__renew_time(not_after);
	log_info(WEBHOOK_LOG, "serving again on %s", s->addr);
}

static void *webhook__renewer(void *arg)
{
	struct webhook_server *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		int64_t now = webhook__now(), next = s->renew_at;
		struct timespec until = { 0 };

		if (s->retired.mhd && s->retire_at < next)
			next = s->retire_at;
		if (next > now) {
			until.tv_sec = (time_t)next;
			(void)pthread_cond_timedwait(&s->cond, &s->lock, &until);
			continue;
		}
		if (s->retired.mhd && s->retire_at <= now)
			webhook__gen_stop(&s->retired);
		if (s->renew_at <= now) {
			if (s->cur.mhd)
				webhook__renew(s);
			else
				webhook__restart(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

int webhook_server_start(const struct webhook_server_config *cfg, struct webhook_server **out)
{
	struct webhook_server *s = NULL;
	pthread_condattr_t ca;
	int fd = -1, rc;
	size_t i;

	*out = NULL;
	if (!cfg || !cfg->addr || !cfg->ca || !cfg->ndns || !cfg->dns)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->routes_lock, NULL);
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&s->cond, &ca); /* CLOCK_REALTIME: deadlines are epoch seconds */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->reaper_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->ca = cfg->ca;
	s->ttl = cfg->cert_ttl_seconds > 0 ? cfg->cert_ttl_seconds : WEBHOOK_CERT_TTL_SECONDS;
	rc = -ENOMEM;
	if (!(s->addr = strdup(cfg->addr)))
		goto out;
	for (i = 0; i < cfg->ndns && i < WEBHOOK_MAX_DNS; i++) {
		if (!(s->dns[i] = strdup(cfg->dns[i])))
			goto out;
		s->ndns++;
	}
	for (i = 0; cfg->ips && i < cfg->nips && i < WEBHOOK_MAX_DNS; i++) {
		if (!(s->ips[i] = strdup(cfg->ips[i])))
			goto out;
		s->nips++;
	}
	rc = mesh_listen_tcp(s->addr, WEBHOOK_LISTEN_BACKLOG, &fd, &s->port, &s->v6);
	if (rc < 0) {
		if (rc == -EINVAL)
			log_error(WEBHOOK_LOG, "bad webhook address \"%s\": want HOST:PORT or [IPV6]:PORT", s->addr);
		else
			log_error(WEBHOOK_LOG, "cannot listen on %s: %s", s->addr, mesh_strerror(rc));
		goto out;
	}
	rc = -pthread_create(&s->reaper, NULL, webhook__reaper, s);
	if (rc < 0)
		goto out;
	s->reaper_started = true;
	rc = webhook__daemon(s, fd, &s->cur, &s->not_after);
	if (rc < 0) {
		close(fd);
		goto out;
	}
	s->renew_at = webhook__renew_time(s->not_after);
	rc = -pthread_create(&s->thread, NULL, webhook__renewer, s);
	if (rc < 0)
		goto out;
	s->thread_started = true;
	log_info(WEBHOOK_LOG, "admission webhooks (HTTPS) on %s (port %d) for %s", s->addr, s->port, s->dns[0]);
	*out = s;
	s = NULL;
	rc = 0;
out:
	webhook_server_stop(s);
	return rc;
}

int webhook_server_route(struct webhook_server *s, const char *path, webhook_handler_fn fn, void *ud)
{
	size_t i;
	int rc = 0;

	if (!s || !path || path[0] != '/' || !fn || strlen(path) >= WEBHOOK_MAX_PATH)
		return -EINVAL;
	pthread_mutex_lock(&s->routes_lock);
	for (i = 0; i < s->nroutes; i++)
		if (strcmp(s->routes[i].path, path) == 0)
			break;
	if (i == WEBHOOK_MAX_ROUTES) {
		rc = -ENOSPC;
		goto out;
	}
	snprintf(s->routes[i].path, sizeof(s->routes[i].path), "%s", path);
	s->routes[i].fn = fn;
	s->routes[i].ud = ud;
	if (i == s->nroutes)
		s->nroutes++;
out:
	pthread_mutex_unlock(&s->routes_lock);
	return rc;
}

int webhook_server_port(const struct webhook_server *s)
{
	return s ? s->port : -EINVAL;
}

int64_t webhook_server_cert_expiry(struct webhook_server *s)
{
	int64_t v;

	pthread_mutex_lock(&s->lock);
	v = s->not_after;
	pthread_mutex_unlock(&s->lock);
	return v;
}

void webhook_server_stop(struct webhook_server *s)
{
	size_t i;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->thread_started)
		pthread_join(s->thread, NULL);
	webhook__gen_stop(&s->retired);
	webhook__gen_stop(&s->cur);
	/* after the daemons: none can shut a socket down past its close */
	pthread_mutex_lock(&s->conns_lock);
	s->reaper_stopping = true;
	pthread_cond_signal(&s->reaper_cond);
	pthread_mutex_unlock(&s->conns_lock);
	if (s->reaper_started)
		pthread_join(s->reaper, NULL);
	for (i = 0; i < s->ndns; i++)
		free(s->dns[i]);
	for (i = 0; i < s->nips; i++)
		free(s->ips[i]);
	free(s->addr);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->reaper_cond);
	pthread_mutex_destroy(&s->conns_lock);
	pthread_mutex_destroy(&s->routes_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
