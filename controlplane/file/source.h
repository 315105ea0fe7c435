/*
 * source.h - the file config source (--config-dir).
 *
 * Reads every *.yaml, *.yml and *.json under a directory (recursively,
 * following symlinks as Kubernetes ConfigMap mounts use them, skipping
 * hidden entries), feeds each file's parse result to the store, and
 * watches the tree with inotify.  Only files whose bytes changed are
 * parsed again.
 *
 * The source does not decide when to read: file_source_handle() only says
 * "something moved", and the push stage (controlplane/push/) calls
 * file_source_reload() once its debounce window has been quiet, so a file
 * is never parsed while an editor or `kubectl cp` is still writing it.
 *
 * Not thread-safe: the config thread owns it, polls file_source_fd() and
 * calls file_source_handle() and file_source_reload().
 * Functions return 0 / a count, or a negative code (err.h).
 */
#ifndef MESH_FILE_SOURCE_H
#define MESH_FILE_SOURCE_H

#include "controlplane/config/store.h"

struct file_source;

struct file_source_config {
	const char *dir;
	struct cfg_store *store;
	/* Objects the tree may give (--max-objects-per-source; 0:
	 * CFG_MAX_OBJECTS_PER_SOURCE).  A file whose objects would take the
	 * source past it is not applied: the objects it gave at its last good
	 * read stay, an error names the limit, and it is read again at the
	 * next reload (meshd_limit_exceeded_total{limit="objects_per_source"}). */
	size_t max_objects;
};

int file_source_new(const struct file_source_config *cfg, struct file_source **out);
void file_source_free(struct file_source *fs);   /* NULL is a no-op */

/* Load everything now (start-up).  Returns the number of served keys changed. */
int file_source_sync(struct file_source *fs);
/* The inotify descriptor to poll for input. */
int file_source_fd(const struct file_source *fs);
/* Drain inotify events without reading any file.  Returns 1 when something
 * under the directory moved (a reload is worth scheduling), else 0. */
int file_source_handle(struct file_source *fs);
/* Read what changed since the last load into the store: walks the tree
 * again, parses the files whose bytes changed, removes what vanished files
 * contributed.  Returns the number of served keys changed, or -ENOMEM. */
int file_source_reload(struct file_source *fs);

#endif
