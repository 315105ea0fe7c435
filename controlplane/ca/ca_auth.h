/*
 * ca_auth.h - who is asking for a certificate: pluggable caller
 * authentication for the CA.
 *
 * An authenticator turns the bearer token of a CreateCertificate call into
 * an identity (namespace, service account).  Implementations: a token
 * file (here) and, later, Kubernetes TokenReview.  authenticate() runs on
 * the CA's worker thread, never on the xDS thread, so it may block (an
 * HTTP call); it must be safe to call from one thread at a time.
 *
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_CA_AUTH_H
#define MESH_CA_AUTH_H

#include "controlplane/ca/ca.h"

#include <stddef.h>

/* Longest bearer token accepted (Kubernetes tokens are about 1 KiB). */
#define CA_AUTH_MAX_TOKEN 8192
/* Largest token file read. */
#define CA_AUTH_MAX_FILE_BYTES (1024 * 1024)

struct ca_identity {
	char ns[CA_MAX_NAME_LEN + 1];
	char sa[CA_MAX_NAME_LEN + 1];
};

struct ca_authenticator;

struct ca_authenticator_ops {
	const char *name;
	/* 0 and *id on success; -EACCES for an unknown or rejected token (msg
	 * says why, without echoing the token); other negative codes when the
	 * check itself failed. */
	int (*authenticate)(struct ca_authenticator *a, const char *token, struct ca_identity *id, char *msg,
			    size_t cap);
	void (*free)(struct ca_authenticator *a);
};

/* Embed this first in an implementation's struct. */
struct ca_authenticator {
	const struct ca_authenticator_ops *ops;
};

/* Any thread: calls into the implementation are serialised. */
int ca_auth_authenticate(struct ca_authenticator *a, const char *token, struct ca_identity *id, char *msg,
			 size_t cap);
/* NULL is a no-op. */
void ca_auth_free(struct ca_authenticator *a);

/* File mode: lines "TOKEN NAMESPACE SERVICEACCOUNT" ('#' starts a comment,
 * blank lines ignored).  The file is read now (an unreadable or malformed
 * file is an error with err naming the line) and again whenever its size,
 * mtime or inode changes; a bad reload keeps the last good table. */
int ca_auth_file_new(const char *path, struct ca_authenticator **out, char *err, size_t errcap);

/* An authenticator that refuses every call, saying how to configure one. */
int ca_auth_none_new(const char *why, struct ca_authenticator **out);

/* The token of an "authorization" metadata value ("Bearer TOKEN", scheme
 * case-insensitive) into out.  Returns 0, -ENOENT (not a bearer value),
 * -MESH_ETOOBIG. */
int ca_auth_bearer(const char *value, size_t len, char *out, size_t cap);

#endif
