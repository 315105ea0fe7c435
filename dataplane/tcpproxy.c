/*
 * tcpproxy.c - the TCP proxy network filter (tcpproxy.h).
 *
 * A session is two sockets and two bounded buffers: du (downstream to
 * upstream) and ud (upstream to downstream).  Interest follows the
 * buffers: a side is read while the buffer it fills has room, written
 * while the buffer it drains has bytes, so a slow reader stops the fast
 * writer at TCPP_BUF_MAX (backpressure) and memory per session stays
 * bounded.  EOF on a side is passed on as shutdown(SHUT_WR) to the other
 * once its buffer is drained (half-close); the session ends when both
 * directions are finished, or at the first error, refusal or timer.
 * Ending is deferred to the loop (ev_defer) so the owner's done() callback
 * never runs inside one of ours.
 *
 * Upstream hosts, clusters and their counters are the engine's
 * (engine-t.h): the same picker (up_pick_at), breakers and outlier
 * detection as the HTTP path uses.
 */
#include "dataplane/tcpproxy.h"

#include "common/log.h"
#include "dataplane/dnscl.h"
#include "dataplane/engine-t.h"
#include "dataplane/istio_stats.h"
#include "dataplane/mtls.h"
#include "dataplane/outlier.h"
#include "dataplane/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct tbuf {
	char *p;
	size_t off, len, cap;
};

struct tcpp {
	struct engine *e;
	struct px_config *cfg;          /* a reference */
	struct px_cluster *cl;          /* in cfg */
	struct px_host *h;              /* a reference, once picked */
	const struct tcpp_conf *conf;   /* in cfg */
	struct px_cluster *sp;          /* the cluster its stat_prefix names (tcp.* stats), or NULL */
	struct ev_io dio, uio;
	struct ev_timer t_conn, t_idle, t_max;
	struct ev_timer t_report;       /* issue 14: istio.stats' tcp_reporting_duration (t_istio) */
	uint64_t rep_rx, rep_tx;        /* bytes already in istio_tcp_*_bytes_total */
	/* issue 14: Istio's TCP metadata exchange (istio_stats.h): the peer's
	 * still to be read and stripped from downstream (inbound) or upstream
	 * (outbound) bytes, ours still to be sent first that way (bytes of
	 * the engine's istio_stats), and the peer it named */
	int mx_rd_d, mx_rd_u;
	const uint8_t *mx_out_d, *mx_out_u;
	size_t mx_out_d_len, mx_out_u_len;
	const struct istio_peer *peer;
	int open_done;                  /* istio_tcp_connections_opened_total counted (t_istio_open) */
	struct ev_defer fin;
	struct ev_defer kick;           /* reads the downstream side from the loop (t_kick()) */
	const struct px_transport_ops *dtops;
	void *dctx;
	struct px_tls *utls;            /* the cluster's UpstreamTlsContext applies (mtls.c), or NULL */
	int uhs;                        /* the upstream TLS handshake is running */
	struct tbuf du, ud;
	int d_eof, u_eof;               /* EOF read from that side */
	int d_shut, u_shut;             /* our write side toward it is shut */
	int d_hup, u_hup;               /* the side hung up while its buffer was full (t_watch()) */
	int d_full;                     /* downstream reading stopped on a full buffer (t_update()) */
	int connecting, connected, ended, counted;
	unsigned flags;                 /* PX_RF_* for the access log */
	uint64_t rx, tx;                /* bytes from / to downstream */
	uint64_t start_ms, start_us, last_io;
	void (*done)(void *);
	void *arg;
	int inbound;                    /* issue 14: Istio's reporter (tcpp_start) */
	const char *peer_principal;     /* issue 14: kept by istio_stats (tcpp_start), or NULL */
	/* issue 14: for conf->alog, what the connection was (tcpp_start) */
	char al_down[INET6_ADDRSTRLEN + 16], al_local[INET6_ADDRSTRLEN + 16];
	char *al_sni;                   /* owned, or NULL */
	int al_mtls;
};

static uint64_t dur_ms(const Google__Protobuf__Duration *d)
{
	if (d->seconds < 0 || d->nanos < 0)
		return 0;
	return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000 + (d->nanos % 1000000 ? 1 : 0);
}

void tcpp_conf_init(struct tcpp_conf *c, const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *t)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	c->idle_ms = TCPP_IDLE_DEFAULT_MS;
	if (!t)
		return;
	c->stat_prefix = t->stat_prefix;
	if (t->cluster_specifier_case ==
	    ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER)
		c->cluster = t->cluster;
	else if (t->cluster_specifier_case ==
			 ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS &&
		 t->weighted_clusters) {
		c->wc = t->weighted_clusters->clusters;
		c->n_wc = t->weighted_clusters->n_clusters;
		for (i = 0; i < c->n_wc; i++)
			c->wc_total += c->wc[i]->weight;
	}
	/* idle_timeout: unset 1 h, an explicit 0 turns it off (tcp_proxy.proto) */
	if (t->idle_timeout)
		c->idle_ms = dur_ms(t->idle_timeout);
	if (t->max_downstream_connection_duration)
		c->max_duration_ms = dur_ms(t->max_downstream_connection_duration);
}

const char *tcpp_pick_cluster(const struct tcpp_conf *c, uint64_t rnd)
{
	uint64_t r;
	size_t i;

	if (c->cluster)
		return c->cluster;
	if (!c->wc_total)
		return NULL;
	r = rnd % c->wc_total;
	for (i = 0; i < c->n_wc; i++) {
		if (r < c->wc[i]->weight)
			return c->wc[i]->name;
		r -= c->wc[i]->weight;
	}
	return NULL;
}

/* ---------------------------------------------------------------- buffers */

static int tb_init(struct tbuf *b, size_t cap)
{
	b->p = malloc(cap);
	b->cap = cap;
	b->off = b->len = 0;
	return b->p ? 0 : -ENOMEM;
}

static size_t tb_pending(const struct tbuf *b)
{
	return b->len - b->off;
}

/* Room at the end, after moving what is left to the front if that helps. */
static size_t tb_room(struct tbuf *b)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->off && b->len == b->cap) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	return b->cap - b->len;
}

/* ---------------------------------------------------------------- ending */

static uint64_t wall_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

static void d_cb(struct ev_loop *loop, struct ev_io *io, unsigned events);

static void kick_cb(struct ev_loop *loop, struct ev_defer *df)
{
	struct tcpp *t = df->data;

	if (!t->ended)
		d_cb(loop, &t->dio, EV_READ);
}

static void fin_cb(struct ev_loop *loop, struct ev_defer *df)
{
	struct tcpp *t = df->data;

	(void)loop;
	t->done(t->arg);
}

/* Stops all I/O and hands the session back to its owner (from the loop). */
static void t_end(struct tcpp *t, unsigned flags)
{
	struct ev_loop *loop = t->e->loop;

	t->flags |= flags;
	if (t->ended)
		return;
	t->ended = 1;
	ev_defer_cancel(loop, &t->kick);
	ev_io_stop(loop, &t->dio);
	ev_io_stop(loop, &t->uio);
	ev_timer_cancel(loop, &t->t_conn);
	ev_timer_cancel(loop, &t->t_idle);
	ev_timer_cancel(loop, &t->t_max);
	ev_timer_cancel(loop, &t->t_report);
	ev_defer(loop, &t->fin);
}

static void od_report(struct tcpp *t, enum outlier_local ev)
{
	struct px_host *h = t->h;
	struct px_cluster *cl = h ? h->cl : NULL;

	if (h && h->up && cl->hs && cl->up && cl->up->od.enabled &&
	    outlier_report_local(cl->hs, h->up, ev, ev_now(t->e->loop), &t->e->lbrng) == 1)
		log_info("meshproxy", "cluster %s: host %s ejected (outlier detection)", cl->name, h->name);
}

/* issue 14: the connection in Istio's TCP metrics (istio_stats.h) */
static void t_istio(struct tcpp *t, int opened, int closed)
{
	struct istio_req r;
	char fl[64];

	if (!t->conf || !t->conf->istio)
		return; /* no istio.stats filter on the chain: no istio_tcp_* series */
	memset(&r, 0, sizeof(r));
	r.cfg = t->conf->istio;
	r.inbound = t->inbound;
	r.peer = t->peer;
	r.peer_principal = t->peer_principal;
	r.mtls = t->inbound && t->peer_principal;
	r.service = istio_service_of(t->cl ? t->cl->name : NULL, NULL, 0, &r.service_len);
	/* issue 13: PassthroughCluster / BlackHoleCluster, as Istio names them */
	r.service_name = istio_catchall_name(NULL, t->cl ? t->cl->name : NULL);
	r.response_flags = closed ? px_flags_str(t->flags, fl, sizeof(fl)) : "-";
	/* what moved since the last report: a long connection's bytes show
	 * every tcp_reporting_duration, the rest at its close (Istio's
	 * periodic TCP reports) */
	r.request_bytes = t->rx - t->rep_rx;
	r.response_bytes = t->tx - t->rep_tx;
	t->rep_rx = t->rx;
	t->rep_tx = t->tx;
	istio_stats_tcp(t->e->istio, &r, opened, closed);
}

/* issue 14: the connection in istio_tcp_connections_opened_total, once
 * its peer is known (after the metadata exchange, when there is one), so
 * that all its series carry the same labels */
static void t_istio_open(struct tcpp *t)
{
	if (t->open_done || !t->e->istio)
		return;
	t->open_done = 1;
	t_istio(t, 1, 0);
}

/* issue 14: the periodic report of an open connection's bytes */
static void report_timeout(struct ev_loop *loop, struct ev_timer *tm)
{
	struct tcpp *t = tm->data;

	if (t->ended)
		return;
	if (!t->open_done)
		t_istio_open(t); /* the exchange never came: report with what is known */
	else if (t->rx != t->rep_rx || t->tx != t->rep_tx)
		t_istio(t, 0, 0);
	ev_timer_arm(loop, &t->t_report, istio_stats_cfg_report_ms(t->conf->istio));
}

static void t_log(struct tcpp *t)
{
	struct px_alog_entry le;

	if (!t->e->alog && !t->conf->alog)
		return;
	/* Envoy's default format on a TCP chain: the HTTP fields are "-",
	 * the response code 0 */
	memset(&le, 0, sizeof(le));
	le.start_us = t->start_us;
	le.flags = t->flags;
	le.rx = t->rx;
	le.tx = t->tx;
	le.duration_ms = ev_now(t->e->loop) - t->start_ms;
	le.upstream_ms = -1;
	le.upstream_host = t->h ? t->h->name : NULL;
	if (t->e->alog)
		px_alog_write(t->e->alog, &le);
	if (t->conf->alog) {
		/* issue 14: the TCP proxy's own access_log */
		le.upstream_cluster = t->cl ? t->cl->name : NULL;
		le.downstream_remote = t->al_down[0] ? t->al_down : NULL;
		le.downstream_local = t->al_local[0] ? t->al_local : NULL;
		le.sni = t->al_sni;
		le.mtls = t->al_mtls;
		le.peer_principal = t->peer_principal;
		px_alog_cfg_log(t->conf->alog, &le);
	}
}

void tcpp_free(struct tcpp *t)
{
	struct ev_loop *loop;

	if (!t)
		return;
	loop = t->e->loop;
	ev_io_stop(loop, &t->dio);
	ev_io_stop(loop, &t->uio);
	ev_timer_cancel(loop, &t->t_conn);
	ev_timer_cancel(loop, &t->t_idle);
	ev_timer_cancel(loop, &t->t_max);
	ev_timer_cancel(loop, &t->t_report);
	ev_defer_cancel(loop, &t->fin);
	ev_defer_cancel(loop, &t->kick);
	px_tls_free(t->utls); /* its close_notify goes out before the socket closes */
	if (t->dio.fd >= 0)
		close(t->dio.fd);
	if (t->uio.fd >= 0)
		close(t->uio.fd);
	if (t->counted) {
		t->h->st.cx_active--;
		px_cst(t->cl)->cx_active--;
		px_cst(t->cl)->cx_destroy++;
	}
	if (t->sp) {
		px_cst(t->sp)->tcp_cx_active--;
		px_cst(t->sp)->tcp_rx_bytes += t->rx;
		px_cst(t->sp)->tcp_tx_bytes += t->tx;
	}
	if (t->e->istio)
		t_istio(t, !t->open_done, 1);
	t_log(t);
	if (t->h)
		px_host_unref(t->h);
	px_config_unref(t->cfg);
	free(t->al_sni);
	free(t->du.p);
	free(t->ud.p);
	free(t);
}

/* ---------------------------------------------------------------- data */

/* The upstream transport: TLS when the cluster's context applies. */
static const struct px_transport_ops *t_uops(const struct tcpp *t)
{
	return t->utls ? &px_transport_tls : &px_transport_raw;
}

/* Sets a side's interest.  epoll reports a hang-up whatever the mask, so
 * a side that hung up while we cannot read it (its buffer full) is taken
 * off the loop until there is room again, instead of waking it at every
 * iteration. */
static int t_watch(struct tcpp *t, struct ev_io *io, unsigned mask, int hup)
{
	if (hup && !(mask & EV_READ)) {
		ev_io_stop(t->e->loop, io);
		return 0;
	}
	if (!io->active)
		return ev_io_start(t->e->loop, io, mask);
	return ev_io_set(t->e->loop, io, mask);
}

/* A hang-up (EV_ERROR) on a side we cannot read now: a socket error ends
 * the session, a clean one is remembered for t_watch().  Returns < 0 when
 * ending. */
static int t_hup(struct tcpp *t, int fd, int *hup, unsigned flag)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
		t_end(t, flag);
		return -1;
	}
	*hup = 1;
	return 0;
}

static void t_update(struct tcpp *t)
{
	unsigned dm = 0, um = 0;

	if (t->ended)
		return;
	if (t->d_eof && t->u_eof && !tb_pending(&t->du) && !tb_pending(&t->ud)) {
		t_end(t, 0); /* both directions finished */
		return;
	}
	if (!t->d_eof && tb_pending(&t->du) < t->du.cap) {
		dm |= EV_READ;
		if (t->d_full && t->dctx) {
			/* room again: bytes a TLS transport holds are read now */
			t->d_full = 0;
			ev_defer(t->e->loop, &t->kick);
		}
	}
	if (tb_pending(&t->ud) || t->mx_out_d_len)
		dm |= EV_WRITE;
	if (t->connecting) {
		um = t->uhs ? px_tls_want(t->utls) : EV_WRITE;
	} else if (t->connected) {
		if (!t->u_eof && tb_pending(&t->ud) < t->ud.cap)
			um |= EV_READ;
		if (tb_pending(&t->du) || t->mx_out_u_len)
			um |= EV_WRITE;
	}
	if (t_watch(t, &t->dio, dm, t->d_hup) < 0 || (t->uio.fd >= 0 && t_watch(t, &t->uio, um, t->u_hup) < 0))
		t_end(t, PX_RF_LR);
}

/* Moves what src's buffer holds to the other side; shuts the other side's
 * write once the source ended and everything went.  Returns < 0 when the
 * write failed (the session is ending). */
/* issue 14: our exchange's rest toward one side (*p, *len advanced);
 * 0, or < 0 when the write failed */
static int t_mx_send(const struct px_transport_ops *ops, void *ctx, int fd, const uint8_t **p, size_t *len)
{
	while (*len) {
		ssize_t n = ops->write(ctx, fd, (const char *)*p, *len);

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return -1;
		*p += n;
		*len -= (size_t)n;
	}
	return 0;
}

/* issue 14: the peer's exchange at the start of b, stripped once whole
 * (*rd cleared; *count, the bytes counted from that side, made right); a
 * side that does not send one (wrong magic) or ends first is left as is. */
static void t_mx_strip(struct tcpp *t, struct tbuf *b, int *rd, uint64_t *count, int eof)
{
	size_t pending = tb_pending(b);
	long need = istio_peer_mx_size((const uint8_t *)b->p + b->off, pending);

	if (need < 0 || (need == 0 && (eof || !tb_room(b))) ||
	    (need > 0 && (size_t)need > pending && (eof || !tb_room(b)))) {
		*rd = 0; /* Istio's filter too passes on what is not its exchange */
		return;
	}
	if (need == 0 || (size_t)need > pending)
		return; /* more to come */
	t->peer = istio_stats_peer_mx(t->e->istio, (const uint8_t *)b->p + b->off + 8, (size_t)need - 8);
	b->off += (size_t)need;
	if (count)
		*count -= (uint64_t)need;
	*rd = 0;
}

static int t_drain_du(struct tcpp *t)
{
	if (t->mx_out_u_len && t_mx_send(t_uops(t), t->utls, t->uio.fd, &t->mx_out_u, &t->mx_out_u_len) < 0) {
		t_end(t, PX_RF_UC);
		return -1;
	}
	if (t->mx_out_u_len || t->mx_rd_d)
		return 0; /* the exchange goes first; the peer's is not passed on */
	while (tb_pending(&t->du)) {
		ssize_t n = t_uops(t)->write(t->utls, t->uio.fd, t->du.p + t->du.off, tb_pending(&t->du));

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			t_end(t, PX_RF_UC);
			return -1;
		}
		t->du.off += (size_t)n;
		px_cst(t->cl)->cx_tx_bytes += (uint64_t)n;
	}
	if (!tb_pending(&t->du) && t->d_eof && !t->u_shut) {
		t->u_shut = 1;
		t_uops(t)->shutdown_write(t->utls, t->uio.fd);
	}
	return 0;
}

static int t_drain_ud(struct tcpp *t)
{
	if (t->mx_out_d_len && t_mx_send(t->dtops, t->dctx, t->dio.fd, &t->mx_out_d, &t->mx_out_d_len) < 0) {
		t_end(t, PX_RF_DC);
		return -1;
	}
	if (t->mx_out_d_len || t->mx_rd_u)
		return 0;
	while (tb_pending(&t->ud)) {
		ssize_t n = t->dtops->write(t->dctx, t->dio.fd, t->ud.p + t->ud.off, tb_pending(&t->ud));

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			t_end(t, PX_RF_DC);
			return -1;
		}
		t->ud.off += (size_t)n;
		t->tx += (uint64_t)n;
	}
	if (!tb_pending(&t->ud) && t->u_eof && !t->d_shut) {
		t->d_shut = 1;
		t->dtops->shutdown_write(t->dctx, t->dio.fd);
	}
	return 0;
}

static void d_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct tcpp *t = io->data;

	if (events & (EV_READ | EV_ERROR)) {
		size_t room = tb_room(&t->du);

		if (!room && (events & EV_ERROR) && t_hup(t, io->fd, &t->d_hup, PX_RF_DC) < 0)
			return;
		/* until the socket would block or the buffer is full: a TLS
		 * transport may hold decrypted bytes no readiness will announce */
		while (room && !t->d_eof) {
			ssize_t n = t->dtops->read(t->dctx, io->fd, t->du.p + t->du.len, room);

			if (n > 0) {
				t->du.len += (size_t)n;
				t->rx += (uint64_t)n;
				t->last_io = ev_now(loop);
			} else if (n == 0) {
				t->d_eof = 1;
			} else if (n != -EAGAIN) {
				t_end(t, PX_RF_DC); /* reset by the client */
				return;
			} else {
				break;
			}
			if (t->dctx == NULL)
				break; /* raw TCP: level-triggered readiness says when there is more */
			room = tb_room(&t->du);
		}
		t->d_full = !room;
		if (t->mx_rd_d) {
			t_mx_strip(t, &t->du, &t->mx_rd_d, &t->rx, t->d_eof);
			if (!t->mx_rd_d)
				t_istio_open(t);
		}
		if (t->connected && t_drain_du(t) < 0)
			return;
	}
	if ((events & EV_WRITE) && t_drain_ud(t) < 0)
		return;
	t_update(t);
}

static void u_connected(struct tcpp *t)
{
	t->connecting = 0;
	t->connected = 1;
	ev_timer_cancel(t->e->loop, &t->t_conn);
	od_report(t, OUTLIER_CONNECT_SUCCESS);
}

/* The cluster's TLS for host h (mtls.c: every host, or under auto mTLS
 * the ones whose metadata says tlsMode istio), as proxy.c's HTTP
 * upstreams do.  Returns 0 (t->utls set or plaintext) or < 0 (no context:
 * a connect failure). */
static int u_tls_setup(struct tcpp *t, int fd, struct px_host *h)
{
	struct px_mtls *m = h->cl->tls;
	struct px_tls_ctx *ctx;
	int rc;

	if (!m || (m->only_tls_istio && !(h->up && h->up->tls_istio)))
		return 0;
	rc = px_mtls_ctx(m, t->e->ident, &ctx);
	if (rc == 0)
		rc = px_tls_new(ctx, fd, m->sni, &t->utls);
	if (rc < 0)
		log_warn("meshproxy", "upstream %s (%s): no TLS context: %s%s", h->name, h->cl->name,
			 rc == -EAGAIN ? "waiting for " : "", /* which secret: see px_mtls_waiting_for */
			 rc == -EAGAIN ? px_mtls_waiting_for(m, t->e->ident) : mesh_strerror(rc));
	return rc;
}

/* One step of the upstream TLS handshake: 0 done (and the peer is one of
 * the identities the cluster expects), -EAGAIN, or < 0 (logged). */
static int u_tls_step(struct tcpp *t)
{
	struct px_mtls *m = t->cl->tls;
	int rc = px_tls_handshake(t->utls);

	if (rc == -EAGAIN)
		return rc;
	if (rc == 0 && m && px_tls_check_sans(t->utls, (const char *const *)m->sans, m->n_sans) < 0) {
		log_warn("meshproxy", "upstream %s (%s): TLS peer %s is not one of the expected identities",
			 t->h->name, t->cl->name, px_tls_peer_uri(t->utls) ? px_tls_peer_uri(t->utls) : "(none)");
		return -EACCES;
	}
	if (rc < 0)
		log_warn("meshproxy", "upstream %s (%s): TLS handshake failed: %s", t->h->name, t->cl->name,
			 px_tls_error(t->utls));
	return rc;
}

static void u_connect_failed(struct tcpp *t, enum outlier_local ev)
{
	t->h->st.cx_connect_fail++;
	px_cst(t->cl)->cx_connect_fail++;
	od_report(t, ev);
	t_end(t, PX_RF_UF);
}

static void u_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct tcpp *t = io->data;

	if (t->connecting && !t->uhs) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			u_connect_failed(t, OUTLIER_CONNECT_FAILED);
			return;
		}
		t->uhs = t->utls != NULL;
	}
	if (t->uhs) {
		/* the TLS handshake, within the connect timeout (Envoy counts a
		 * failed one as a connect failure: UF) */
		int rc = u_tls_step(t);

		if (rc == -EAGAIN) {
			if (ev_io_set(loop, io, px_tls_want(t->utls)) < 0)
				t_end(t, PX_RF_LR);
			return;
		}
		if (rc < 0) {
			u_connect_failed(t, OUTLIER_CONNECT_FAILED);
			return;
		}
		t->uhs = 0;
		/* issue 14: the server took Istio's TCP metadata exchange */
		if (t->e->istio && !strcmp(px_tls_alpn(t->utls), "istio-peer-exchange")) {
			t->mx_out_u = istio_stats_mx(t->e->istio, &t->mx_out_u_len);
			t->mx_rd_u = 1;
		}
		if (!t->mx_rd_u)
			t_istio_open(t);
	}
	if (t->connecting) {
		u_connected(t);
		events |= EV_WRITE | EV_READ; /* TLS may hold bytes read with the handshake */
	}
	if (events & (EV_READ | EV_ERROR)) {
		size_t room = tb_room(&t->ud);

		if (!room && (events & EV_ERROR) && t_hup(t, io->fd, &t->u_hup, PX_RF_UC) < 0)
			return;
		while (room && !t->u_eof) {
			ssize_t n = t_uops(t)->read(t->utls, io->fd, t->ud.p + t->ud.len, room);

			if (n > 0) {
				t->ud.len += (size_t)n;
				px_cst(t->cl)->cx_rx_bytes += (uint64_t)n;
				t->last_io = ev_now(loop);
			} else if (n == 0) {
				t->u_eof = 1;
			} else if (n != -EAGAIN) {
				t_end(t, PX_RF_UC); /* reset by the upstream */
				return;
			} else {
				break;
			}
			/* TLS may hold more than the socket says; raw: readiness will */
			if (!t->utls || !px_tls_pending(t->utls))
				break;
			room = tb_room(&t->ud);
		}
		if (t->mx_rd_u) {
			t_mx_strip(t, &t->ud, &t->mx_rd_u, NULL, t->u_eof);
			if (!t->mx_rd_u)
				t_istio_open(t);
		}
		if (t_drain_ud(t) < 0)
			return;
	}
	if ((events & EV_WRITE) && t_drain_du(t) < 0)
		return;
	t_update(t);
}

static void conn_timeout(struct ev_loop *loop, struct ev_timer *tm)
{
	struct tcpp *t = tm->data;

	(void)loop;
	px_cst(t->cl)->cx_connect_timeout++;
	u_connect_failed(t, OUTLIER_TIMEOUT);
}

static void idle_timeout(struct ev_loop *loop, struct ev_timer *tm)
{
	struct tcpp *t = tm->data;
	uint64_t now = ev_now(loop), idle = t->conf->idle_ms;

	/* re-armed lazily: bytes moved since it was armed push it out */
	if (now - t->last_io < idle) {
		ev_timer_arm(loop, tm, idle - (now - t->last_io));
		return;
	}
	if (t->sp)
		px_cst(t->sp)->tcp_idle_timeout++;
	t_end(t, 0);
}

static void max_timeout(struct ev_loop *loop, struct ev_timer *tm)
{
	struct tcpp *t = tm->data;

	(void)loop;
	if (t->sp)
		px_cst(t->sp)->tcp_max_duration++;
	t_end(t, 0);
}

/* ---------------------------------------------------------------- start */

static struct px_host *t_pick(struct tcpp *t, const struct tcpp_down *d)
{
	struct px_cluster *cl = t->cl;
	struct up_host *up;

	if (cl->type == PX_CL_ORIGINAL_DST)
		return d->odst ? px_cluster_dst_host(cl, d->odst, d->odst_len) : NULL;
	if (!cl->hs)
		return NULL;
	up = up_pick_at(cl->hs, &t->e->lbrng, NULL, NULL, ev_now(t->e->loop));
	return up ? px_cluster_host_of(cl, up) : NULL;
}

void tcpp_sni_cluster_names(const char *sni, char *alt, size_t cap)
{
	const char *port, *subset, *host;

	if (cap)
		alt[0] = '\0';
	if (strncmp(sni, "outbound_.", 10))
		return;
	port = sni + 10;
	subset = strstr(port, "_.");
	if (!subset)
		return;
	subset += 2;
	host = strstr(subset, "_.");
	if (!host)
		return;
	host += 2;
	if (!*host || (size_t)snprintf(alt, cap, "outbound|%.*s|%.*s|%s", (int)(subset - 2 - port), port,
					(int)(host - 2 - subset), subset, host) >= cap) {
		if (cap)
			alt[0] = '\0';
	}
}

static void t_connect_host(struct tcpp *t, const struct tcpp_down *d);

/* issue 13: polls a DNS cluster still resolving its names (t->t_conn
 * serves as the poll timer until the connect starts) */
static void warm_poll(struct ev_loop *loop, struct ev_timer *tm)
{
	struct tcpp *t = tm->data;
	struct tcpp_down d;

	(void)loop;
	memset(&d, 0, sizeof(d)); /* a DNS cluster needs no original destination */
	d.inbound = t->inbound;
	ev_timer_init(&t->t_conn, conn_timeout, t);
	t_connect_host(t, &d);
	t_update(t);
}

/* Picks the cluster, then connects (t_connect_host); on a refusal the
 * session ends with its flag (from the loop). */
static void t_connect(struct tcpp *t, const struct tcpp_down *d)
{
	struct engine *e = t->e;
	const char *name = tcpp_pick_cluster(t->conf, px_rand(e));

	if (t->conf->sni_cluster && d->sni && *d->sni) {
		/* Envoy's sni_cluster: the SNI is the cluster's name (a TLS
		 * connection; without SNI the TcpProxy's own cluster stays) */
		char alt[512];

		t->cl = px_config_cluster(t->cfg, d->sni);
		tcpp_sni_cluster_names(d->sni, alt, sizeof(alt));
		if (!t->cl && alt[0])
			t->cl = px_config_cluster(t->cfg, alt);
	} else {
		t->cl = name ? px_config_cluster(t->cfg, name) : NULL;
	}
	if (!t->cl) {
		e->st.no_cluster++;
		t_end(t, PX_RF_NR);
		return;
	}
	t_connect_host(t, d);
}

/* Picks a host of t->cl, checks the breaker and connects. */
static void t_connect_host(struct tcpp *t, const struct tcpp_down *d)
{
	struct engine *e = t->e;
	struct px_host *h;
	int fd, one = 1, rc;

	/* issue 13: a DNS cluster is not used before its first resolution
	 * (Envoy warms it): the connection waits, bounded by
	 * PX_DNS_WARM_MAX_MS, its bytes buffered, then takes what there is */
	if (t->cl->dns && !dnscl_warm(t->cl->dns) && ev_now(e->loop) - t->start_ms < PX_DNS_WARM_MAX_MS) {
		ev_timer_init(&t->t_conn, warm_poll, t);
		ev_timer_arm(e->loop, &t->t_conn, 5);
		return;
	}
	if (t->cl->type == PX_CL_ORIGINAL_DST && d->odst &&
	    px_engine_is_loop(e, (const struct sockaddr *)d->odst, d->odst_len, d->inbound)) {
		e->st.rq_loop_refused++;
		t_end(t, PX_RF_NR); /* to meshproxy itself: as BlackHoleCluster */
		return;
	}
	if (px_cst(t->cl)->cx_active >= t->cl->max_connections) {
		/* the cluster's circuit breaker: TCP has no pending queue */
		px_cst(t->cl)->cx_overflow++;
		t_end(t, PX_RF_UO);
		return;
	}
	h = t_pick(t, d);
	if (!h) {
		t_end(t, PX_RF_UH);
		return;
	}
	t->h = px_host_ref(h);
	if (px_engine_is_loop(e, &h->addr.sa, h->alen, d->inbound)) {
		e->st.rq_loop_refused++;
		t_end(t, PX_RF_NR);
		return;
	}
	fd = socket(h->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		t_end(t, PX_RF_UF);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&t->uio, fd, u_cb, t);
	if (u_tls_setup(t, fd, h) < 0) {
		close(fd);
		t->uio.fd = -1;
		t_end(t, PX_RF_UF);
		return;
	}
	h->st.cx_total++;
	h->st.cx_active++;
	px_cst(t->cl)->cx_total++;
	px_cst(t->cl)->cx_active++;
	t->counted = 1;
	/* issue 15: TPROXY's original_src, else the passthrough's 127.0.0.6 */
	rc = d->l && t->cl->type != PX_CL_ORIGINAL_DST ? px_original_src(e, d->l, d->peer_ip, fd, h->addr.sa.sa_family)
						       : 0;
	if (rc == 0 && d->inbound && t->cl->type == PX_CL_ORIGINAL_DST)
		px_bind_inbound_passthrough(fd, &h->addr.sa);
	if (rc < 0 || (connect(fd, &h->addr.sa, h->alen) < 0 && errno != EINPROGRESS)) {
		u_connect_failed(t, OUTLIER_CONNECT_FAILED);
		return;
	}
	t->connecting = 1;
	if (ev_io_start(e->loop, &t->uio, EV_WRITE) < 0) {
		t_end(t, PX_RF_LR);
		return;
	}
	ev_timer_arm(e->loop, &t->t_conn, t->cl->connect_timeout_ms ? t->cl->connect_timeout_ms : 5000);
}

int tcpp_start(struct engine *e, struct px_config *cfg, const struct tcpp_conf *conf, const struct tcpp_down *d,
	       struct tcpp **out)
{
	struct tcpp *t;
	int rc = -ENOMEM;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* sniffed bytes go first: the buffer holds them whole */
	if (tb_init(&t->du, d->n_pre > TCPP_BUF_MAX ? d->n_pre : TCPP_BUF_MAX) < 0 || tb_init(&t->ud, TCPP_BUF_MAX) < 0)
		goto out;
	if (d->n_pre) {
		memcpy(t->du.p, d->pre, d->n_pre);
		t->du.len = d->n_pre;
		t->rx = d->n_pre;
	}
	t->e = e;
	t->cfg = px_config_ref(cfg);
	t->conf = conf;
	t->dtops = d->tops;
	t->dctx = d->tctx;
	t->done = d->done;
	t->arg = d->arg;
	t->start_ms = t->last_io = ev_now(e->loop);
	t->start_us = wall_us();
	if (conf->alog) {
		/* issue 14: the addresses the access log prints, while the socket is there */
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getpeername(d->fd, (struct sockaddr *)&ss, &len) == 0)
			px_alog_addr((const struct sockaddr *)&ss, len, t->al_down, sizeof(t->al_down));
		len = sizeof(ss);
		if (d->odst && d->odst_len)
			px_alog_addr((const struct sockaddr *)d->odst, d->odst_len, t->al_local, sizeof(t->al_local));
		else if (getsockname(d->fd, (struct sockaddr *)&ss, &len) == 0)
			px_alog_addr((const struct sockaddr *)&ss, len, t->al_local, sizeof(t->al_local));
		t->al_sni = d->sni ? strdup(d->sni) : NULL;
		t->al_mtls = d->peer_principal != NULL;
	}
	ev_io_init(&t->dio, d->fd, d_cb, t);
	ev_io_init(&t->uio, -1, u_cb, t);
	ev_timer_init(&t->t_conn, conn_timeout, t);
	ev_timer_init(&t->t_idle, idle_timeout, t);
	ev_timer_init(&t->t_max, max_timeout, t);
	ev_timer_init(&t->t_report, report_timeout, t);
	ev_defer_init(&t->fin, fin_cb, t);
	ev_defer_init(&t->kick, kick_cb, t);
	if (ev_io_start(e->loop, &t->dio, 0) < 0) {
		t->dio.fd = -1; /* not taken: the caller closes it */
		px_config_unref(t->cfg);
		goto out;
	}
	*out = t;
	if (conf->stat_prefix && (t->sp = px_config_cluster(cfg, conf->stat_prefix))) {
		px_cst(t->sp)->tcp_cx_total++;
		px_cst(t->sp)->tcp_cx_active++;
	}
	if (conf->idle_ms)
		ev_timer_arm(e->loop, &t->t_idle, conf->idle_ms);
	if (conf->max_duration_ms)
		ev_timer_arm(e->loop, &t->t_max, conf->max_duration_ms);
	t->inbound = d->inbound;
	if (e->istio)
		t->peer_principal = istio_stats_principal(e->istio, d->peer_principal);
	if (e->istio && d->mx) {
		/* issue 14: the client's exchange comes first, ours goes first */
		t->mx_out_d = istio_stats_mx(e->istio, &t->mx_out_d_len);
		t->mx_rd_d = 1;
	}
	t_connect(t, d);
	if (e->istio) {
		/* after t_connect: the cluster is known; with an exchange to
		 * come (inbound now, outbound maybe after the TLS handshake),
		 * once the peer is known */
		if (!t->mx_rd_d && !t->utls)
			t_istio_open(t);
		if (conf->istio && !t->ended)
			ev_timer_arm(e->loop, &t->t_report, istio_stats_cfg_report_ms(conf->istio));
	}
	t_update(t);
	if (t->dctx && !t->ended)
		ev_defer(e->loop, &t->kick); /* what the TLS transport read with the handshake */
	return 0;
out:
	free(t->du.p);
	free(t->ud.p);
	free(t);
	return rc;
}
