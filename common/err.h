/*
 * err.h - the one return vocabulary of meshd, meshproxy and meshctl.
 *
 * Functions return 0 on success and a negative errno-style code on
 * failure (-ENOMEM, -EINVAL, ...).  A few project-specific codes live
 * below the errno range.  mesh_strerror() turns any of them into text.
 */
#ifndef MESH_ERR_H
#define MESH_ERR_H

#include <errno.h>

enum {
	MESH_EPARSE = 10000, /* input is not well-formed (YAML, JSON, protobuf) */
	MESH_ESCHEMA,        /* input is well-formed but fails the schema */
	MESH_ESEMANTIC,      /* input passes the schema but is not meaningful */
	MESH_ETOOBIG,        /* input exceeds a named limit */
	MESH_EGRPC,          /* gRPC core reported an error */
	MESH_ETLS,           /* OpenSSL reported an error */
	MESH_ENOTREG,        /* a path to read names a FIFO, device or socket, not a file */
};

/*
 * MESH_MUST_CHECK marks a function whose result the caller must look at: a
 * fallible function (0 / negative code) or one that hands over ownership.
 * Ignoring the result is then a compile error under -Werror.
 */
#define MESH_MUST_CHECK __attribute__((warn_unused_result))

/* Text for a code as returned by any mesh function (negative or positive). */
const char *mesh_strerror(int code);

#endif
