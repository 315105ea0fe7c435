/*
 * err.c - text for the project's return codes (see err.h).
 */
#include "err.h"

#include <string.h>

const char *mesh_strerror(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case 0:
		return "success";
	case MESH_EPARSE:
		return "malformed input";
	case MESH_ESCHEMA:
		return "schema validation failed";
	case MESH_ESEMANTIC:
		return "semantic validation failed";
	case MESH_ETOOBIG:
		return "input exceeds limit";
	case MESH_EGRPC:
		return "gRPC error";
	case MESH_ETLS:
		return "TLS error";
	case MESH_ENOTREG:
		return "not a regular file";
	default:
		return strerror(code);
	}
}
