/*
 * h1drive.h - drives dataplane/http1.c as a connection would, for the
 * golden runner (tests/http/golden.c) and the fuzzer (tests/fuzz/fuzz_http1.c):
 * the input arrives in pieces, messages are parsed one after another
 * (pipelining, keep-alive), and the outcome is written as text, so the
 * same input split anywhere must give the same text.
 */
#ifndef MESH_TESTS_H1DRIVE_H
#define MESH_TESTS_H1DRIVE_H

#include "common/buf.h"

#include <stddef.h>

struct h1drive_opts {
	int response;          /* parse responses instead of requests */
	unsigned req_flags;    /* responses: H1_F_HEAD / H1_F_CONNECT of the request */
	size_t max_headers;    /* 0: default */
	size_t max_head_bytes; /* 0: default */
};

/*
 * Feeds in[0..len) in pieces ending at cuts[0] < cuts[1] < ... (each <= len;
 * the rest arrives last), then EOF.  Appends the outcome to out; returns 0,
 * or -ENOMEM.
 */
int h1drive_run(const char *in, size_t len, const size_t *cuts, size_t ncuts,
		const struct h1drive_opts *o, struct mesh_buf *out);

/* Appends s as text: printable ASCII as is, \r \n \t \\ \" and \xHH otherwise. */
void h1drive_escape(struct mesh_buf *out, const char *s, size_t n);
/* Decodes the escaped text form of a case input (literal newlines ignored,
 * lines starting with '#' are comments) into a malloc'd buffer. */
char *h1drive_unescape(const char *text, size_t tlen, size_t *outlen);

#endif
