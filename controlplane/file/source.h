/*
 * source.h - the file config source (--config-dir).
 *
 * Reads every *.yaml, *.yml and *.json under a directory (recursively,
 * following symlinks as Kubernetes ConfigMap mounts use them, skipping
 * hidden entries), feeds each file's parse result to the store, and
 * watches the tree with inotify.  Changes are debounced: a reload runs
 * once events have been quiet for `debounce_after`, or `debounce_max`
 * after the first event at the latest.  Only files whose bytes changed
 * are parsed again.
 *
 * Not thread-safe: the config thread owns it, polls file_source_fd() and
 * calls file_source_handle() and file_source_tick().
 * Functions return 0 / a count, or a negative code (err.h).
 */
#ifndef MESH_FILE_SOURCE_H
#define MESH_FILE_SOURCE_H

#include "controlplane/config/store.h"

#include <stdint.h>

struct file_source;

struct file_source_config {
	const char *dir;
	struct cfg_store *store;
	int64_t debounce_after;      /* ns; default 100ms */
	int64_t debounce_max;        /* ns; default 10s */
};

int file_source_new(const struct file_source_config *cfg, struct file_source **out);
void file_source_free(struct file_source *fs);   /* NULL is a no-op */

/* Load everything now (start-up).  Returns the number of served keys changed. */
int file_source_sync(struct file_source *fs);
/* The inotify descriptor to poll for input. */
int file_source_fd(const struct file_source *fs);
/* Drain inotify events; schedules a reload.  now: CLOCK_MONOTONIC ns. */
int file_source_handle(struct file_source *fs, int64_t now);
/* Milliseconds until a scheduled reload is due (-1: none scheduled). */
int file_source_timeout_ms(const struct file_source *fs, int64_t now);
/* Run a due reload.  Returns the number of served keys changed (0 when
 * nothing was due or nothing changed). */
int file_source_tick(struct file_source *fs, int64_t now);

/* CLOCK_MONOTONIC in ns. */
int64_t file_source_now(void);

#endif
