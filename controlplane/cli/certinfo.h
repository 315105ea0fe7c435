/*
 * certinfo.h - what meshctl proxy-config secret shows of a Secret's
 * certificate, as istioctl proxy-config secret does: validity now, serial
 * number, NOT AFTER / NOT BEFORE, and (meshctl's addition) the SPIFFE
 * identity, read from the base64 PEM a config dump carries
 * (certificateChain.inlineBytes, trustedCa.inlineBytes).
 *
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_CLI_CERTINFO_H
#define MESH_CLI_CERTINFO_H

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest base64 text decoded (a chain of a few certificates). */
#define CERTINFO_MAX_B64 (256 * 1024)

struct certinfo {
	bool valid;                 /* now within [notBefore, notAfter] */
	char serial[130];           /* lower-case hex, as istioctl prints it */
	char not_after[32];         /* RFC 3339, UTC ("2026-12-02T01:13:32Z") */
	char not_before[32];
	char identity[256];         /* the first URI SAN ("" when none) */
};

/* The first certificate of the base64-encoded PEM b64 into *out.
 * Returns 0, -MESH_EPARSE (not base64 / not a PEM certificate),
 * -MESH_ETOOBIG, -ENOMEM. */
MESH_MUST_CHECK int certinfo_from_b64(const char *b64, struct certinfo *out);

#endif
