/*
 * log.c - see log.h.  Records look like
 *   2026-11-22T04:55:29.123Z info  xds  message
 * or, with --log-format json,
 *   {"time":"...","level":"info","scope":"xds","msg":"message"}
 *
 * Records never wait for stderr's reader.  A pipe or terminal is written
 * through a non-blocking description of its own (/proc/self/fd/2 reopened
 * O_NONBLOCK, so fd 2's shared flags stay as they are), a socket with
 * send(MSG_DONTWAIT), a regular file as it is.  What the reader does not
 * take yet waits in a bounded buffer (LOG_PENDING_MAX), written before the
 * next record; a record that finds it full is dropped whole and counted
 * (mesh_log_dropped), as meshproxy's access-log sinks do.  One mutex
 * serializes records from meshd's threads.
 */
#include "log.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_PENDING_MAX (256 * 1024) /* bytes of records stderr's reader has not taken yet */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = -1;                 /* -1: not opened yet */
static dev_t out_dev;                   /* what fd 2 was when out_fd was opened */
static ino_t out_ino;
static int out_sock;                    /* out_fd is a socket: send(MSG_DONTWAIT) */
static char out_pending[LOG_PENDING_MAX];
static size_t out_len;
static _Atomic unsigned long long out_dropped;

static enum mesh_log_level log_level = MESH_LOG_INFO;
enum mesh_log_level mesh_log_floor_ = MESH_LOG_INFO; /* min(global, every scope): the quick reject (log.h) */
static int log_json;

static struct {
	const char *name;
	enum mesh_log_level level;
} log_scopes[MESH_LOG_MAX_SCOPES];
static unsigned n_scopes;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

static void floor_update(void)
{
	unsigned i;

	mesh_log_floor_ = log_level;
	for (i = 0; i < n_scopes; i++)
		if (log_scopes[i].level < mesh_log_floor_)
			mesh_log_floor_ = log_scopes[i].level;
}

static int scope_find(const char *name)
{
	unsigned i;

	for (i = 0; i < n_scopes; i++)
		if (log_scopes[i].name == name || strcmp(log_scopes[i].name, name) == 0)
			return (int)i;
	return -1;
}

int mesh_log_scope_add(const char *name)
{
	if (scope_find(name) >= 0)
		return 0;
	if (n_scopes == MESH_LOG_MAX_SCOPES)
		return -ENOSPC;
	log_scopes[n_scopes].name = name;
	log_scopes[n_scopes].level = log_level;
	n_scopes++;
	return 0;
}

int mesh_log_scope_set(const char *name, enum mesh_log_level level)
{
	int i = scope_find(name);

	if (i < 0)
		return -ENOENT;
	log_scopes[i].level = level;
	floor_update();
	return 0;
}

int mesh_log_scope_get(unsigned i, const char **name, enum mesh_log_level *level)
{
	if (i >= n_scopes)
		return -ENOENT;
	*name = log_scopes[i].name;
	*level = log_scopes[i].level;
	return 0;
}

int mesh_log_setup(const char *level, const char *format)
{
	if (level) {
		size_t i;
		for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
			if (strcmp(level, level_names[i]) == 0)
				break;
		if (i == sizeof(level_names) / sizeof(level_names[0]))
			return -EINVAL;
		mesh_log_set_level((enum mesh_log_level)i);
	}
	if (format) {
		if (strcmp(format, "json") == 0)
			log_json = 1;
		else if (strcmp(format, "text") == 0)
			log_json = 0;
		else
			return -EINVAL;
	}
	return 0;
}

/* Sets the global level and every scope's (Envoy's /logging?level=). */
void mesh_log_set_level(enum mesh_log_level level)
{
	unsigned i;

	log_level = level;
	for (i = 0; i < n_scopes; i++)
		log_scopes[i].level = level;
	floor_update();
}

int mesh_log_enabled(enum mesh_log_level level)
{
	return level >= mesh_log_floor_;
}

/* Opens the description records are written through (out_mu held). */
static void out_open(void)
{
	struct stat sb;

	out_fd = STDERR_FILENO;
	out_sock = 0;
	if (fstat(STDERR_FILENO, &sb) != 0)
		return;
	out_dev = sb.st_dev;
	out_ino = sb.st_ino;
	if (S_ISSOCK(sb.st_mode)) {
		out_sock = 1;
	} else if (!S_ISREG(sb.st_mode)) {
		int fd = open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		if (fd >= 0)
			out_fd = fd;
	}
}

/* Writes from p without waiting: returns the bytes taken (stops at EAGAIN);
 * any other failure reports all taken, those bytes are lost (out_mu held). */
static size_t out_write(const char *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = out_sock ? send(out_fd, p + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL)
				     : write(out_fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return len;
		off += (size_t)n;
	}
	return off;
}

/* Pending bytes first, then the record; what does not go out waits in
 * out_pending, a record that does not fit there is dropped whole. */
static void out_record(const char *rec, size_t len)
{
	int saved = errno;
	size_t n;

	pthread_mutex_lock(&out_mu);
	if (out_fd >= 0) {
		/* fd 2 replaced (dup2) since: follow it, as a plain write(2) would */
		struct stat sb;

		if (fstat(STDERR_FILENO, &sb) == 0 && (sb.st_dev != out_dev || sb.st_ino != out_ino)) {
			if (out_fd != STDERR_FILENO)
				close(out_fd);
			out_fd = -1;
		}
	}
	if (out_fd < 0)
		out_open();
	if (out_len) {
		n = out_write(out_pending, out_len);
		memmove(out_pending, out_pending + n, out_len - n);
		out_len -= n;
	}
	n = out_len ? 0 : out_write(rec, len);
	if (n < len) {
		if (len - n <= sizeof(out_pending) - out_len) {
			memcpy(out_pending + out_len, rec + n, len - n);
			out_len += len - n;
		} else {
			atomic_fetch_add(&out_dropped, 1);
		}
	}
	pthread_mutex_unlock(&out_mu);
	errno = saved;
}

int mesh_log_flush(void)
{
	size_t n;
	int rc;

	pthread_mutex_lock(&out_mu);
	if (out_len && out_fd >= 0) {
		n = out_write(out_pending, out_len);
		memmove(out_pending, out_pending + n, out_len - n);
		out_len -= n;
	}
	rc = out_len ? -EAGAIN : 0;
	pthread_mutex_unlock(&out_mu);
	return rc;
}

unsigned long long mesh_log_dropped(void)
{
	return atomic_load(&out_dropped);
}

void mesh_log(enum mesh_log_level level, const char *scope, const char *fmt, ...)
{
	char msg[4096], ts[40], line[8192];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n, si;

	if (level < mesh_log_floor_)
		return;
	si = n_scopes ? scope_find(scope) : -1;
	if (level < (si >= 0 ? log_scopes[si].level : log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ", now.tv_nsec / 1000000);

	if (log_json) {
		struct mesh_buf b;
		mesh_buf_init(&b, sizeof(line));
		mesh_buf_puts(&b, "{\"time\":\"");
		mesh_buf_puts(&b, ts);
		mesh_buf_puts(&b, "\",\"level\":\"");
		mesh_buf_puts(&b, level_names[level]);
		mesh_buf_puts(&b, "\",\"scope\":");
		json_put_string(&b, scope);
		mesh_buf_puts(&b, ",\"msg\":");
		json_put_string(&b, msg);
		mesh_buf_puts(&b, "}\n");
		if (b.data)
			out_record(b.data, b.len);
		mesh_buf_cleanup(&b);
		return;
	}
	n = snprintf(line, sizeof(line), "%s %-5s %-6s %s\n", ts, level_names[level], scope, msg);
	if (n > (int)sizeof(line))
		n = (int)sizeof(line);
	out_record(line, (size_t)n);
}
