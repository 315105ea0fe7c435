/*
 * log.h - leveled logging to stderr, as text or one JSON object per line.
 *
 * Thread-safe: each record is formatted into a local buffer and written
 * whole, under one lock.  Never blocks: a stderr whose reader stalls (a
 * full pipe) keeps records in a bounded buffer, dropping (and counting)
 * whole records past it.  Configure once at start-up with mesh_log_setup().
 */
#ifndef MESH_LOG_H
#define MESH_LOG_H

enum mesh_log_level {
	MESH_LOG_DEBUG,
	MESH_LOG_INFO,
	MESH_LOG_WARN,
	MESH_LOG_ERROR,
	MESH_LOG_OFF, /* a scope or the whole log silenced (Envoy's "off"); never a record's level */
};

/* Returns 0, or -EINVAL for an unknown level or format name. */
int mesh_log_setup(const char *level, const char *format);
void mesh_log_set_level(enum mesh_log_level level);
int mesh_log_enabled(enum mesh_log_level level);

/*
 * Per-scope levels, what Envoy calls component loggers (its admin
 * /logging?NAME=LEVEL).  A binary registers the scopes it logs under
 * (name: a string that outlives the process, e.g. a literal); a registered
 * scope starts at the global level and follows mesh_log_set_level(), which
 * sets all of them.  Records of unregistered scopes use the global level.
 * Not thread-safe: meant for a single-threaded binary (meshproxy) that
 * changes levels on its own loop.  At most MESH_LOG_MAX_SCOPES.
 * mesh_log_scope_add: 0, or -ENOSPC.  mesh_log_scope_set: 0, or -ENOENT
 * for a scope never registered.  mesh_log_scope_get: the i-th registered
 * scope's name and level, 0, or -ENOENT past the last one.
 */
#define MESH_LOG_MAX_SCOPES 16
int mesh_log_scope_add(const char *name);
int mesh_log_scope_set(const char *name, enum mesh_log_level level);
int mesh_log_scope_get(unsigned i, const char **name, enum mesh_log_level *level);

void mesh_log(enum mesh_log_level level, const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes records stderr's reader had not taken, without waiting (each
 * record does it too).  Returns 0 when nothing is left, -EAGAIN when the
 * reader is still full.  Call at exit, or from a timer to catch up. */
int mesh_log_flush(void);
/* Whole records dropped because stderr's reader fell 256 KiB behind (or a
 * write failed), since start. */
unsigned long long mesh_log_dropped(void);

/* The lowest level any scope logs at; read only through log_debug(), so a
 * debug record on a hot path (meshproxy logs one per request at debug)
 * costs a compare, not a call, when nothing logs debug. */
extern enum mesh_log_level mesh_log_floor_;

#define log_debug(scope, ...)                                          \
	do {                                                           \
		if (mesh_log_floor_ <= MESH_LOG_DEBUG)                 \
			mesh_log(MESH_LOG_DEBUG, scope, __VA_ARGS__);  \
	} while (0)
#define log_info(scope, ...)  mesh_log(MESH_LOG_INFO, scope, __VA_ARGS__)
#define log_warn(scope, ...)  mesh_log(MESH_LOG_WARN, scope, __VA_ARGS__)
#define log_error(scope, ...) mesh_log(MESH_LOG_ERROR, scope, __VA_ARGS__)

#endif
