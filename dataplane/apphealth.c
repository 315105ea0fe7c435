/*
 * apphealth.c - application probes on the status port (see apphealth.h).
 *
 * Each GET starts one run: a non-blocking socket connecting to the app on
 * loopback, an ev_io for its progress and an ev_timer for the probe's
 * timeout; for httpGet the request is written once connected and the
 * answer read until its status line is complete.  The run answers its
 * admin ticket and frees itself.  Nothing waits on the loop.
 */
#include "dataplane/apphealth.h"

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "dataplane/grpc_client.h"
#include "dataplane/tls.h"
#include "dataplane/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <strings.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AH_MAX_PATH 256
#define AH_MAX_REQUEST 4096      /* the GET we send, headers included */
#define AH_MAX_STATUS_LINE 256   /* bytes read for "HTTP/1.1 200 ..." */
#define AH_DEFAULT_TIMEOUT_S 1

#define AH_GRPC_PATH "/grpc.health.v1.Health/Check"
#define AH_MAX_SERVICE 127       /* HealthCheckRequest.service: a one-byte length */

enum ah_kind { AH_HTTP, AH_TCP, AH_GRPC };

struct ah_probe {
	char path[AH_MAX_PATH];      /* /app-health/C/livez */
	enum ah_kind kind;
	struct sockaddr_in6 addr;    /* v4-mapped or v6 */
	char *request;               /* AH_HTTP: the whole GET; AH_GRPC: the HealthCheckRequest */
	size_t request_len;
	char authority[64];          /* AH_GRPC */
	int https;                   /* AH_HTTP with scheme HTTPS: TLS, the certificate not verified (as the agent) */
	unsigned timeout_ms;
};

struct ah_run {
	struct apphealth *h;
	const struct ah_probe *p;
	struct admin_async *ticket;
	struct ev_io io;
	struct ev_timer timer;
	size_t sent;
	char line[AH_MAX_STATUS_LINE];
	size_t got;
	int connected;
	struct grpc_client *g;       /* AH_GRPC */
	struct px_tls *tls;          /* https */
	int handshaken;
	int done, grpc_status, serving;
	struct ah_run *next, *prev;
};

struct apphealth {
	struct ev_loop *loop;
	struct ah_probe probes[APPHEALTH_MAX_PROBES];
	size_t n;
	struct ah_run running;       /* sentinel */
	size_t nrunning;
	struct px_tls_ctx *tls_ctx;  /* HTTPS probes: a client context verifying nothing */
};

static void ah_finish(struct ah_run *r, int status, const char *body)
{
	struct apphealth *h = r->h;

	ev_io_stop(h->loop, &r->io);
	ev_timer_cancel(h->loop, &r->timer);
	px_tls_free(r->tls);
	if (r->io.fd >= 0)
		close(r->io.fd);
	grpc_client_free(r->g); /* from a timer: never inside its own callbacks */
	r->prev->next = r->next;
	r->next->prev = r->prev;
	h->nrunning--;
	admin_async_reply(r->ticket, status, body);
	free(r);
}

static void ah_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct ah_run *r = t->data;

	(void)loop;
	if (r->done) {
		/* the gRPC call ended (on_close armed this timer at 0) */
		if (r->grpc_status == GRPC_STATUS_OK && r->serving)
			ah_finish(r, 200, "");
		else
			ah_finish(r, 500, r->grpc_status == GRPC_STATUS_OK ? "not SERVING\n" : "health check failed\n");
		return;
	}
	log_debug("apphealth", "%s: probe timed out", r->p->path);
	ah_finish(r, 500, "probe timed out\n");
}

/* "HTTP/1.x NNN" → NNN, or 0 when not (yet) a status line. */
static int ah_status(const char *line, size_t n)
{
	if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
		return 0;
	if (line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' || line[11] > '9')
		return -1;
	return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

/* Wait for want on the socket (after an -EAGAIN); false when that failed
 * (the run is finished then). */
static bool ah_wait(struct ah_run *r, unsigned want)
{
	if (ev_io_set(r->h->loop, &r->io, want) == 0)
		return true;
	ah_finish(r, 500, "probe failed\n");
	return false;
}

static void ah_io(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct ah_run *r = io->data;
	const struct px_transport_ops *t = r->tls ? &px_transport_tls : &px_transport_raw;
	int err = 0, st;
	socklen_t el = sizeof(err);
	ssize_t n;

	(void)loop;
	(void)events;
	if (!r->connected) {
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			ah_finish(r, 500, "connect failed\n");
			return;
		}
		r->connected = 1;
		if (r->p->kind == AH_TCP) {
			ah_finish(r, 200, "");
			return;
		}
		if (r->p->https) {
			if (px_tls_new(r->h->tls_ctx, io->fd, NULL, &r->tls) < 0) {
				ah_finish(r, 500, "TLS failed\n");
				return;
			}
			t = &px_transport_tls;
		}
	}
	if (r->tls && !r->handshaken) {
		int rc = px_tls_handshake(r->tls);

		if (rc == -EAGAIN) {
			(void)ah_wait(r, px_tls_want(r->tls));
			return;
		}
		if (rc < 0) {
			log_debug("apphealth", "%s: TLS handshake: %s", r->p->path, px_tls_error(r->tls));
			ah_finish(r, 500, "TLS handshake failed\n");
			return;
		}
		r->handshaken = 1;
	}
	while (r->sent < r->p->request_len) {
		n = t->write(r->tls, io->fd, r->p->request + r->sent, r->p->request_len - r->sent);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			(void)ah_wait(r, r->tls ? px_tls_want(r->tls) : EV_WRITE);
			return;
		}
		if (n <= 0) {
			ah_finish(r, 500, "probe request failed\n");
			return;
		}
		r->sent += (size_t)n;
	}
	for (;;) {
		n = t->read(r->tls, io->fd, r->line + r->got, sizeof(r->line) - r->got);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			(void)ah_wait(r, r->tls ? px_tls_want(r->tls) : EV_READ);
			return;
		}
		if (n <= 0) {
			ah_finish(r, 500, "no answer from the application\n");
			return;
		}
		r->got += (size_t)n;
		st = ah_status(r->line, r->got);
		if (st < 0 || (st == 0 && r->got >= 12)) {
			ah_finish(r, 500, "not an HTTP answer\n");
			return;
		}
		if (st > 0) {
			/* the agent passes the app's status code on */
			ah_finish(r, st, "");
			return;
		}
	}
}

/* grpc.health.v1.HealthCheckResponse: field 1 (status) varint; SERVING is 1. */
static void ah_grpc_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct ah_run *r = ctx;
	size_t i = 0;

	while (i < len) {
		uint8_t tag = msg[i++];
		uint64_t v = 0;
		unsigned shift = 0;

		if ((tag & 7) != 0) /* a non-varint field: nothing else is expected here */
			return;
		while (i < len && shift < 64) {
			v |= (uint64_t)(msg[i] & 0x7f) << shift;
			shift += 7;
			if (!(msg[i++] & 0x80))
				break;
		}
		if (tag == 0x08)
			r->serving = v == 1;
	}
}

static void ah_grpc_close(void *ctx, int status, const char *message)
{
	struct ah_run *r = ctx;

	(void)message;
	r->done = 1;
	r->grpc_status = status;
	ev_timer_arm(r->h->loop, &r->timer, 0); /* finish outside the client's callback */
}

static void ah_grpc_start(struct ah_run *r)
{
	static const struct grpc_call_cbs cbs = { ah_grpc_message, ah_grpc_close };
	struct grpc_client_opts o = { .connect_timeout_ms = r->p->timeout_ms };
	const struct ah_probe *p = r->p;

	if (grpc_client_new(r->h->loop, (const struct sockaddr *)&p->addr, sizeof(p->addr), p->authority,
			    AH_GRPC_PATH, &o, &cbs, r, &r->g) < 0 ||
	    grpc_client_send(r->g, p->request, p->request_len) < 0 || grpc_client_close_send(r->g) < 0) {
		ah_finish(r, 500, "gRPC health check failed to start\n");
		return;
	}
	ev_timer_arm(r->h->loop, &r->timer, p->timeout_ms);
}

int apphealth_serve(void *ctx, const char *path, size_t plen, struct admin_async *ticket)
{
	struct apphealth *h = ctx;
	const struct ah_probe *p = NULL;
	struct ah_run *r;
	size_t i;
	int fd;

	for (i = 0; i < h->n; i++)
		if (strlen(h->probes[i].path) == plen && memcmp(h->probes[i].path, path, plen) == 0)
			p = &h->probes[i];
	if (!p)
		return -ENOENT;
	if (h->nrunning >= APPHEALTH_MAX_RUNNING) {
		admin_async_reply(ticket, 503, "too many probes running\n");
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		admin_async_reply(ticket, 500, "out of memory\n");
		return 0;
	}
	r->h = h;
	r->p = p;
	r->ticket = ticket;
	ev_io_init(&r->io, -1, ah_io, r);
	ev_timer_init(&r->timer, ah_timeout, r);
	r->next = h->running.next;
	r->prev = &h->running;
	r->next->prev = r;
	h->running.next = r;
	h->nrunning++;
	if (p->kind == AH_GRPC) {
		ah_grpc_start(r);
		return 0;
	}
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ah_finish(r, 500, "socket failed\n");
		return 0;
	}
	r->io.fd = fd;
	if (connect(fd, (const struct sockaddr *)&p->addr, sizeof(p->addr)) < 0 && errno != EINPROGRESS) {
		ah_finish(r, 500, "connect failed\n");
		return 0;
	}
	if (ev_io_start(h->loop, &r->io, EV_WRITE) < 0) {
		ah_finish(r, 500, "probe failed\n");
		return 0;
	}
	ev_timer_arm(h->loop, &r->timer, p->timeout_ms);
	return 0;
}

/* ---------------------------------------------------------------- setup */

/* A handler's port (1..65535) and host (numeric; default loopback). */
static int ah_addr(const struct json_value *handler, struct sockaddr_in6 *sa)
{
	const struct json_value *port = json_get(handler, "port");
	const char *host = json_get_str(handler, "host");
	struct in_addr a4;

	if (!port || port->type != JSON_NUMBER || !port->is_int || port->i < 1 || port->i > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin6_family = AF_INET6;
	sa->sin6_port = htons((uint16_t)port->i);
	if (!host || !host[0] || strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &a4) == 1) {
		/* v4-mapped: one AF_INET6 socket reaches both families */
		sa->sin6_addr.s6_addr[10] = 0xff;
		sa->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sa->sin6_addr.s6_addr[12], &a4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, host, &sa->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* The GET of an httpGet handler, as the kubelet sends it. */
static int ah_request(struct ah_probe *p, const struct json_value *hg)
{
	const char *path = json_get_str(hg, "path"), *host = json_get_str(hg, "host");
	const struct json_value *hdrs = json_get(hg, "httpHeaders"), *hv;
	struct mesh_buf b;
	char *data;
	bool has_host = false;

	if (!path || !path[0])
		path = "/";
	mesh_buf_init(&b, AH_MAX_REQUEST);
	mesh_buf_printf(&b, "GET %s HTTP/1.1\r\n", path);
	for (hv = hdrs && hdrs->type == JSON_ARRAY ? hdrs->child : NULL; hv; hv = hv->next) {
		const char *n = json_get_str(hv, "name"), *v = json_get_str(hv, "value");

		if (!n || !v || strpbrk(n, "\r\n:") || strpbrk(v, "\r\n"))
			continue;
		if (strcasecmp(n, "host") == 0)
			has_host = true;
		mesh_buf_printf(&b, "%s: %s\r\n", n, v);
	}
	if (!has_host)
		mesh_buf_printf(&b, "Host: %s:%u\r\n", host && host[0] ? host : "127.0.0.1", ntohs(p->addr.sin6_port));
	mesh_buf_puts(&b, "User-Agent: kube-probe/1.29\r\nAccept: */*\r\nConnection: close\r\n\r\n");
	if (b.err) {
		mesh_buf_cleanup(&b);
		return -EINVAL;
	}
	data = mesh_buf_take(&b, &p->request_len);
	p->request = data;
	return data ? 0 : -ENOMEM;
}

int apphealth_new(struct ev_loop *loop, const char *json, struct apphealth **out, char *err, size_t errcap)
{
	struct apphealth *h;
	struct json_value *root = NULL;
	const struct json_value *m;
	int rc = 0;

	*out = NULL;
	if (errcap)
		err[0] = '\0';
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->running.next = h->running.prev = &h->running;
	if (!json || !json[0])
		goto done;
	rc = json_parse(json, strlen(json), &root);
	if (rc < 0 || root->type != JSON_OBJECT) {
		snprintf(err, errcap, "not a JSON object");
		rc = -EINVAL;
		goto out;
	}
	for (m = root->child; m; m = m->next) {
		struct ah_probe *p = &h->probes[h->n];
		const struct json_value *hg = json_get(m, "httpGet"), *tcp = json_get(m, "tcpSocket");
		const struct json_value *grpc = json_get(m, "grpc"), *handler;
		const char *scheme = json_get_str(hg, "scheme");
		int64_t t = json_get_int(m, "timeoutSeconds", AH_DEFAULT_TIMEOUT_S);

		if (h->n == APPHEALTH_MAX_PROBES || strlen(m->key) >= sizeof(p->path) ||
		    strncmp(m->key, "/app-health/", 12) != 0) {
			snprintf(err, errcap, "probe \"%.100s\": not /app-health/... or too many", m->key);
			rc = -EINVAL;
			goto out;
		}
		handler = hg ? hg : tcp ? tcp : grpc;
		if (!handler || ah_addr(handler, &p->addr) < 0) {
			snprintf(err, errcap, "probe %.100s: no httpGet, tcpSocket or grpc with a numeric port", m->key);
			rc = -EINVAL;
			goto out;
		}
		snprintf(p->path, sizeof(p->path), "%s", m->key);
		p->timeout_ms = (unsigned)((t > 0 && t < 3600 ? t : AH_DEFAULT_TIMEOUT_S) * 1000);
		p->kind = AH_TCP;
		if (hg) {
			p->kind = AH_HTTP;
			p->https = scheme && strcasecmp(scheme, "HTTPS") == 0;
			if (p->https && !h->tls_ctx) {
				/* the agent's probe client: TLS without verifying the app */
				struct px_tls_conf tc = { 0 };
				char terr[128];

				rc = px_tls_ctx_new(&tc, &h->tls_ctx, terr, sizeof(terr));
				if (rc < 0) {
					snprintf(err, errcap, "probe %.100s: TLS: %s", m->key, terr);
					goto out;
				}
			}
			rc = ah_request(p, hg);
			if (rc < 0) {
				snprintf(err, errcap, "probe %.100s: request too large", m->key);
				goto out;
			}
		} else if (grpc) {
			const char *svc = json_get_str(grpc, "service");
			size_t sl = svc ? strlen(svc) : 0;

			/* HealthCheckRequest { string service = 1; } */
			p->kind = AH_GRPC;
			snprintf(p->authority, sizeof(p->authority), "127.0.0.1:%u", ntohs(p->addr.sin6_port));
			if (sl > AH_MAX_SERVICE || !(p->request = malloc(sl + 2))) {
				snprintf(err, errcap, "probe %.100s: bad gRPC service", m->key);
				rc = -EINVAL;
				goto out;
			}
			p->request_len = 0;
			if (sl) {
				p->request[0] = 0x0a;
				p->request[1] = (char)sl;
				memcpy(p->request + 2, svc, sl);
				p->request_len = sl + 2;
			}
		}
		h->n++;
	}
done:
	*out = h;
	h = NULL;
	rc = 0;
out:
	json_free(root);
	apphealth_free(h);
	return rc;
}

size_t apphealth_count(const struct apphealth *h)
{
	return h ? h->n : 0;
}

void apphealth_free(struct apphealth *h)
{
	size_t i;

	if (!h)
		return;
	while (h->running.next != &h->running)
		ah_finish(h->running.next, 503, "shutting down\n");
	for (i = 0; i < h->n; i++)
		free(h->probes[i].request);
	px_tls_ctx_unref(h->tls_ctx);
	free(h);
}
