/*
 * log.c - see log.h.  Records look like
 *   2026-11-22T04:55:29.123Z info  xds  message
 * or, with --log-format json,
 *   {"time":"...","level":"info","scope":"xds","msg":"message"}
 */
#include "log.h"
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
			(void)!write(STDERR_FILENO, b.data, b.len);
		mesh_buf_cleanup(&b);
		return;
	}
	n = snprintf(line, sizeof(line), "%s %-5s %-6s %s\n", ts, level_names[level], scope, msg);
	if (n > (int)sizeof(line))
		n = (int)sizeof(line);
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
