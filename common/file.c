/*
 * file.c - see file.h.  One open/fstat/read loop for every place that
 * reads a whole file with a size cap.
 */
#include "file.h"

#include "err.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
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
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
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
