/*
 * log.h - leveled logging to stderr, as text or one JSON object per line.
 *
 * Thread-safe: each record is formatted into a local buffer and written
 * with a single write(2).  Configure once at start-up with mesh_log_setup().
 */
#ifndef MESH_LOG_H
#define MESH_LOG_H

enum mesh_log_level {
	MESH_LOG_DEBUG,
	MESH_LOG_INFO,
	MESH_LOG_WARN,
	MESH_LOG_ERROR,
};

/* Returns 0, or -EINVAL for an unknown level or format name. */
int mesh_log_setup(const char *level, const char *format);
void mesh_log_set_level(enum mesh_log_level level);
int mesh_log_enabled(enum mesh_log_level level);

void mesh_log(enum mesh_log_level level, const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(scope, ...) mesh_log(MESH_LOG_DEBUG, scope, __VA_ARGS__)
#define log_info(scope, ...)  mesh_log(MESH_LOG_INFO, scope, __VA_ARGS__)
#define log_warn(scope, ...)  mesh_log(MESH_LOG_WARN, scope, __VA_ARGS__)
#define log_error(scope, ...) mesh_log(MESH_LOG_ERROR, scope, __VA_ARGS__)

#endif
