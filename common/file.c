/*
 * file.c - see file.h.  One open/fstat/read loop for every place that
 * reads a whole file with a size cap, and one write-temporary-then-rename
 * for every place that replaces one.
 */
#include "file.h"

#include "err.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mesh_read_file(const char *path, size_t max, char **data, size_t *len)
{
	struct stat st;
	char *d = NULL;
	size_t n = 0;
	int fd, rc = 0;

	*data = NULL;
	*len = 0;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer (it would
	 * hang the reader, and with it every config change and SIGTERM);
	 * anything but a regular file is then refused */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -MESH_ENOTREG;
		goto out;
	}
	if ((uint64_t)st.st_size > (uint64_t)max) {
		*len = (size_t)st.st_size;
		rc = -MESH_ETOOBIG;
		goto out;
	}
	d = malloc((size_t)st.st_size + 1);
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, d + n, (size_t)st.st_size - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break; /* shrank while reading: keep what is there */
		n += (size_t)r;
	}
	d[n] = '\0';
	*data = d;
	*len = n;
	d = NULL;
out:
	free(d);
	close(fd);
	return rc;
}

void mesh_fsync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

int mesh_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *p = data;
	int fd = -1, rc = 0, made = 0;
	size_t off = 0;

	if (slash) {
		size_t dl = (size_t)(slash - path);
		if (dl >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, dl);
		dir[dl ? dl : 1] = '\0';
		if (!dl)
			dir[0] = '/';
		if (snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)dl, path, slash + 1) >= (int)sizeof(tmp))
			return -ENAMETOOLONG;
	} else {
		snprintf(dir, sizeof(dir), ".");
		if (snprintf(tmp, sizeof(tmp), ".%s.XXXXXX", path) >= (int)sizeof(tmp))
			return -ENAMETOOLONG;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	made = 1;
	if (fchmod(fd, (mode_t)mode) < 0) {
		rc = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out;
	}
	made = 0;
	mesh_fsync_dir(dir);
out:
	if (fd >= 0)
		close(fd);
	if (made)
		unlink(tmp);
	return rc;
}
