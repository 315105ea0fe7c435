/*
 * accesslog.c - see accesslog.h.
 */
#include "dataplane/accesslog.h"

#include "common/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALOG_MAX (1024 * 1024)
#define ALOG_FLUSH_AT (64 * 1024)
#define ALOG_FLUSH_MS 200

struct px_alog {
	struct ev_loop *loop;
	int fd, own_fd;
	struct mesh_buf b;
	struct ev_timer t;
	uint64_t dropped;
};

static const char *const flag_names[] = { "UH", "UF", "UO", "NR", "URX", "UT", "DC", "UC", "DI", "FI", "LR", "DPE", "UPE", "SI", "UR" };

const char *px_flags_str(unsigned flags, char *buf, size_t cap)
{
	size_t i, n = 0;

	if (!cap)
		return buf;
	buf[0] = 0;
	for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
		size_t l = strlen(flag_names[i]);

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

void px_alog_flush(struct px_alog *l)
{
	size_t off = 0;

	if (!l)
		return;
	while (off < l->b.len) {
		ssize_t n = write(l->fd, l->b.data + off, l->b.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			l->dropped++;
			break;
		}
		off += (size_t)n;
	}
	mesh_buf_reset(&l->b);
}

static void alog_timer(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	px_alog_flush(t->data);
}

int px_alog_open(struct ev_loop *loop, const char *path, struct px_alog **out)
{
	struct px_alog *l;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->loop = loop;
	if (!strcmp(path, "-")) {
		l->fd = STDOUT_FILENO;
	} else {
		l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (l->fd < 0) {
			int rc = -errno;

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
	free(l);
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

void px_alog_write(struct px_alog *l, const struct px_alog_entry *e)
{
	struct mesh_buf *b = &l->b;
	char ts[64], fl[64];
	struct tm tm;
	time_t sec = (time_t)(e->start_us / 1000000);
	size_t n;

	if (b->err) {
		mesh_buf_reset(b);
		l->dropped++;
	}
	gmtime_r(&sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	/* an empty method or path (a request the codec refused before it had
	 * one) is "-", as Envoy prints a missing value */
	mesh_buf_printf(b, "[%.*s.%03uZ] \"%.*s %.*s %.*s\" %d %s %llu %llu %llu ", (int)n, ts,
			(unsigned)(e->start_us / 1000 % 1000), e->method.len ? (int)e->method.len : 1,
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
	if (b->len >= ALOG_FLUSH_AT)
		px_alog_flush(l);
	else if (!ev_timer_armed(&l->t))
		ev_timer_arm(l->loop, &l->t, ALOG_FLUSH_MS);
}
