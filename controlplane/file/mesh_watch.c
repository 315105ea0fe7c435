/*
 * mesh_watch.c - inotify on the directory of the mesh config file (see
 * mesh_watch.h for why the directory).  Any event on the file's name, or
 * on a name starting with "..", (a ConfigMap volume's ..data swap) says
 * the file may have changed; the caller re-reads and compares.
 */
#include "controlplane/file/mesh_watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct mesh_watch {
	int fd;
	char *dir;
	char *base;
};

int mesh_watch_new(const char *path, struct mesh_watch **out)
{
	struct mesh_watch *w = calloc(1, sizeof(*w));
	const char *slash = strrchr(path, '/');
	int rc = -ENOMEM;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	w->base = strdup(slash ? slash + 1 : path);
	if (!w->dir || !w->base)
		goto out;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		rc = -errno;
		goto out;
	}
	if (inotify_add_watch(w->fd, w->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
		rc = -errno;
		goto out;
	}
	*out = w;
	w = NULL;
	rc = 0;
out:
	mesh_watch_free(w);
	return rc;
}

void mesh_watch_free(struct mesh_watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->dir);
	free(w->base);
	free(w);
}

int mesh_watch_fd(const struct mesh_watch *w)
{
	return w ? w->fd : -1;
}

int mesh_watch_handle(struct mesh_watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int moved = 0;

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		char *p;

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? moved : -errno;
		if (n == 0)
			return moved;
		for (p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				moved = 1;
			else if (ev->len && (strcmp(ev->name, w->base) == 0 || strncmp(ev->name, "..", 2) == 0))
				moved = 1;
			p += sizeof(*ev) + ev->len;
		}
	}
}
