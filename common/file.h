/*
 * file.h - reading a whole small file into memory, under a named cap.
 *
 * Config files, kubeconfigs and service-account tokens are read whole and
 * parsed from memory; each caller names the largest size it accepts.
 */
#ifndef MESH_FILE_H
#define MESH_FILE_H

#include <stddef.h>

/*
 * Read the file at path into a malloc'd, NUL-terminated buffer (*data, *len
 * bytes without the NUL; the caller frees it).  A file that shrinks while
 * being read yields the bytes that were there.
 * Returns 0, -errno when it cannot be opened or read, -ENOMEM, or
 * -MESH_ETOOBIG when it is larger than max bytes: then *data is NULL and
 * *len holds the file's size, so the caller can name it.
 */
int mesh_read_file(const char *path, size_t max, char **data, size_t *len);

#endif
