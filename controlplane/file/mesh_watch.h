/*
 * mesh_watch.h - watch the mesh config file (meshd --mesh-config).
 *
 * inotify on the file's directory, not the file: a Kubernetes ConfigMap
 * volume replaces its files by swapping the `..data` symlink (a rename in
 * the directory), and editors often write a new file and rename it over
 * the old one, which a watch on the old inode would never see.  Only
 * complete writes count (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE,
 * IN_DELETE), so a file is not read half-written.  The owner polls
 * mesh_watch_fd() and, when mesh_watch_handle() says something moved,
 * re-reads the file (meshcfg_load_file) and keeps its last good config when
 * that fails.
 *
 * Functions return 0 / a count, or a negative code (err.h).
 */
#ifndef MESH_MESH_WATCH_H
#define MESH_MESH_WATCH_H

#include "common/err.h"

struct mesh_watch;

/* Watch the directory of path into *out.  Returns 0, -ENOMEM or -errno. */
MESH_MUST_CHECK int mesh_watch_new(const char *path, struct mesh_watch **out);
void mesh_watch_free(struct mesh_watch *w); /* NULL is a no-op */
int mesh_watch_fd(const struct mesh_watch *w);
/* Drain the pending events: 1 when the file may have changed, 0 when
 * nothing of interest moved, or a negative code. */
int mesh_watch_handle(struct mesh_watch *w);

#endif
