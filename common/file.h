/*
 * file.h - reading a whole small file into memory, under a named cap, and
 * replacing a file atomically.
 *
 * Config files, kubeconfigs, service-account tokens and PEM files are read
 * whole and parsed from memory; each caller names the largest size it
 * accepts.  Keys and certificates are written so that a reader sees the
 * old file or the new one, never a mix.
 */
#ifndef MESH_FILE_H
#define MESH_FILE_H

#include "common/err.h"

#include <stddef.h>

/*
 * Read the file at path into a malloc'd, NUL-terminated buffer (*data, *len
 * bytes without the NUL; the caller frees it).  A file that shrinks while
 * being read yields the bytes that were there.
 * Returns 0, -errno when it cannot be opened or read, -ENOMEM, or
 * -MESH_ETOOBIG when it is larger than max bytes: then *data is NULL and
 * *len holds the file's size, so the caller can name it.  Only regular
 * files are read (symlinks followed): a directory is -EISDIR, a FIFO,
 * device or socket -MESH_ENOTREG, without blocking on them.
 */
MESH_MUST_CHECK int mesh_read_file(const char *path, size_t max, char **data, size_t *len);

/*
 * Replace path with len bytes of data: write a temporary file in the same
 * directory with mode (e.g. 0600 for a key), fsync it, rename it over path,
 * fsync the directory.  Returns 0, -ENAMETOOLONG, or -errno of the step that
 * failed (the temporary file is removed then).
 */
MESH_MUST_CHECK int mesh_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* fsync a directory so a rename or link in it survives a crash; best
 * effort (a directory that cannot be opened is left alone). */
void mesh_fsync_dir(const char *dir);

#endif
