/*
 * ca_auth.c - caller authentication for the CA: the interface, the token
 * file implementation and the refuse-all one.
 *
 * The token file maps bearer tokens to identities, one per line:
 * "TOKEN NAMESPACE SERVICEACCOUNT".  It is re-read when it changes (size,
 * mtime or inode), so rotating tokens needs no restart; a reload that
 * fails keeps the previous table and logs why.  Tokens are compared in
 * constant time and never logged.
 */
#include "controlplane/ca/ca_auth.h"

#include "common/err.h"
#include "common/log.h"
#include "controlplane/metrics/metrics.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCOPE "ca"
/* Entries one token file may hold. */
#define CA_AUTH_MAX_ENTRIES 100000

/* Implementations are called one at a time (ca_auth.h); the CA's worker
 * and the SDS provider's (sds.c) both authenticate, so calls are
 * serialised here.  A TokenReview holds the other back: both are off the
 * xDS thread, and a token is checked once per CSR or per stream. */
static pthread_mutex_t ca_auth_lock = PTHREAD_MUTEX_INITIALIZER;

int ca_auth_authenticate(struct ca_authenticator *a, const char *token, struct ca_identity *id, char *msg,
			 size_t cap)
{
	int rc;

	if (!a || !a->ops || !a->ops->authenticate)
		return -EINVAL;
	pthread_mutex_lock(&ca_auth_lock);
	rc = a->ops->authenticate(a, token, id, msg, cap);
	pthread_mutex_unlock(&ca_auth_lock);
	return rc;
}

void ca_auth_free(struct ca_authenticator *a)
{
	if (a && a->ops && a->ops->free)
		a->ops->free(a);
}

int ca_auth_bearer(const char *value, size_t len, char *out, size_t cap)
{
	static const char scheme[] = "bearer ";
	size_t i = sizeof(scheme) - 1, n;

	if (!value || len < i || strncasecmp(value, scheme, i) != 0)
		return -ENOENT;
	while (i < len && value[i] == ' ')
		i++;
	n = len - i;
	while (n > 0 && (value[i + n - 1] == ' ' || value[i + n - 1] == '\t'))
		n--;
	if (n == 0)
		return -ENOENT;
	if (n >= cap || n > CA_AUTH_MAX_TOKEN)
		return -MESH_ETOOBIG;
	memcpy(out, value + i, n);
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* refuse-all */

struct auth_none {
	struct ca_authenticator base;
	char *why;
};

static int none_authenticate(struct ca_authenticator *a, const char *token, struct ca_identity *id, char *msg,
			     size_t cap)
{
	struct auth_none *n = (struct auth_none *)a;

	(void)token;
	(void)id;
	snprintf(msg, cap, "%s", n->why);
	return -EACCES;
}

static void none_free(struct ca_authenticator *a)
{
	struct auth_none *n = (struct auth_none *)a;

	free(n->why);
	free(n);
}

static const struct ca_authenticator_ops none_ops = { "none", none_authenticate, none_free };

int ca_auth_none_new(const char *why, struct ca_authenticator **out)
{
	struct auth_none *n = calloc(1, sizeof(*n));

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->base.ops = &none_ops;
	n->why = strdup(why ? why : "no caller authentication is configured");
	if (!n->why) {
		free(n);
		return -ENOMEM;
	}
	*out = &n->base;
	return 0;
}

/* ------------------------------------------------------------------ */
/* token file */

struct token_entry {
	char *token;
	size_t len;
	struct ca_identity id;
};

struct token_table {
	struct token_entry *v;
	size_t n, cap;
};

struct auth_file {
	struct ca_authenticator base;
	pthread_mutex_t lock;
	char *path;
	struct token_table table;
	/* what the table was read from */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static void table_cleanup(struct token_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		OPENSSL_cleanse(t->v[i].token, t->v[i].len);
		free(t->v[i].token);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static int valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > CA_MAX_NAME_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
			return 0;
	return 1;
}

/* Split the next whitespace-separated field of [*p, end). */
static int next_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *s = *p;

	while (s < end && isspace((unsigned char)*s))
		s++;
	*f = s;
	while (s < end && !isspace((unsigned char)*s))
		s++;
	*n = (size_t)(s - *f);
	*p = s;
	return *n > 0;
}

static int table_parse(const char *path, const char *data, size_t len, struct token_table *t, char *err,
		       size_t cap)
{
	const char *p = data, *end = data + len;
	unsigned line = 0;
	int rc = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end, *hash, *q, *tok, *ns, *sa, *extra;
		size_t ntok, nns, nsa, nextra;
		struct token_entry *e;

		line++;
		hash = memchr(p, '#', (size_t)(le - p));
		if (hash)
			le = hash;
		q = p;
		p = eol ? eol + 1 : end;
		if (!next_field(&q, le, &tok, &ntok))
			continue;
		if (!next_field(&q, le, &ns, &nns) || !next_field(&q, le, &sa, &nsa) ||
		    next_field(&q, le, &extra, &nextra)) {
			snprintf(err, cap, "%s:%u: expected \"TOKEN NAMESPACE SERVICEACCOUNT\"", path, line);
			rc = -MESH_EPARSE;
			goto out;
		}
		if (ntok > CA_AUTH_MAX_TOKEN) {
			metrics_limit(METRICS_LIMIT_CA_TOKEN_FILE);
			snprintf(err, cap, "%s:%u: token longer than %d bytes", path, line, CA_AUTH_MAX_TOKEN);
			rc = -MESH_ETOOBIG;
			goto out;
		}
		if (!valid_name(ns, nns) || !valid_name(sa, nsa)) {
			snprintf(err, cap, "%s:%u: namespace and service account must be DNS names", path, line);
			rc = -MESH_ESEMANTIC;
			goto out;
		}
		if (t->n == CA_AUTH_MAX_ENTRIES) {
			metrics_limit(METRICS_LIMIT_CA_TOKEN_FILE);
			snprintf(err, cap, "%s: more than %d tokens", path, CA_AUTH_MAX_ENTRIES);
			rc = -MESH_ETOOBIG;
			goto out;
		}
		if (t->n == t->cap) {
			size_t nc = t->cap ? t->cap * 2 : 16;
			struct token_entry *v = realloc(t->v, nc * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				goto out;
			}
			t->v = v;
			t->cap = nc;
		}
		e = &t->v[t->n];
		memset(e, 0, sizeof(*e));
		e->token = malloc(ntok + 1);
		if (!e->token) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(e->token, tok, ntok);
		e->token[ntok] = '\0';
		e->len = ntok;
		memcpy(e->id.ns, ns, nns);
		memcpy(e->id.sa, sa, nsa);
		t->n++;
	}
out:
	return rc;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct token_entry *x = *(const struct token_entry *const *)a;
	const struct token_entry *y = *(const struct token_entry *const *)b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->token, y->token, x->len);
}

/* A token listed twice is an error even for one identity: which of two
 * identities it names would otherwise depend on line order (issue 16,
 * "credentials fail closed").  Sorted pointers, so 100,000 lines cost
 * n log n, not n^2. */
static int table_check_dups(const char *path, const struct token_table *t, char *err, size_t cap)
{
	const struct token_entry **v = NULL;
	size_t i;
	int rc = 0;

	if (t->n < 2)
		goto out;
	v = malloc(t->n * sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < t->n; i++)
		v[i] = &t->v[i];
	qsort(v, t->n, sizeof(*v), entry_cmp);
	for (i = 1; i < t->n; i++) {
		if (entry_cmp(&v[i - 1], &v[i]) == 0) {
			/* never echo the token itself */
			snprintf(err, cap, "%s: a token is listed twice (lines for %s/%s and %s/%s)", path,
				 v[i - 1]->id.ns, v[i - 1]->id.sa, v[i]->id.ns, v[i]->id.sa);
			rc = -MESH_ESEMANTIC;
			goto out;
		}
	}
out:
	free(v);
	return rc;
}

/* Re-read the file when it changed.  Called with f->lock held.
 * Fails closed (issue 16): a file that cannot be opened or read, or that
 * does not parse, empties the table, so a deleted file or one rewritten
 * with a bad line authorises no one rather than keeping revoked tokens.
 * The stat markers are cleared too, so the next call reads it again. */
static int file_refresh(struct auth_file *f, int force, char *err, size_t cap)
{
	struct token_table t = { 0 };
	struct stat st;
	FILE *fp = NULL;
	char *data = NULL;
	size_t len;
	int fd, rc = 0;

	/* O_NONBLOCK: a FIFO put in its place must not wait for a writer
	 * (meshd hung at start, and the CA at the next call); only a regular
	 * file is read, as mesh_read_file does */
	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !(fp = fdopen(fd, "rb"))) {
		rc = -errno;
		snprintf(err, cap, "%s: %s", f->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -MESH_ENOTREG;
		snprintf(err, cap, "%s: not a regular file (a FIFO, device, socket or directory)", f->path);
		goto out;
	}
	if (!force && st.st_dev == f->dev && st.st_ino == f->ino && st.st_size == f->size &&
	    st.st_mtim.tv_sec == f->mtime.tv_sec && st.st_mtim.tv_nsec == f->mtime.tv_nsec)
		goto out;
	if (st.st_size > CA_AUTH_MAX_FILE_BYTES) {
		metrics_limit(METRICS_LIMIT_CA_TOKEN_FILE);
		snprintf(err, cap, "%s: larger than %d bytes", f->path, CA_AUTH_MAX_FILE_BYTES);
		rc = -MESH_ETOOBIG;
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out;
	}
	len = fread(data, 1, (size_t)st.st_size, fp);
	if (ferror(fp)) {
		rc = -EIO;
		snprintf(err, cap, "%s: read error", f->path);
		goto out;
	}
	rc = table_parse(f->path, data, len, &t, err, cap);
	if (rc < 0)
		goto out;
	rc = table_check_dups(f->path, &t, err, cap);
	if (rc < 0)
		goto out;
	table_cleanup(&f->table);
	f->table = t;
	memset(&t, 0, sizeof(t));
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
	log_info(SCOPE, "token file %s: %zu tokens", f->path, f->table.n);
out:
	if (rc < 0) {
		table_cleanup(&f->table);
		f->dev = 0;
		f->ino = 0;
		f->size = -1;
		memset(&f->mtime, 0, sizeof(f->mtime));
	}
	table_cleanup(&t);
	if (data) {
		OPENSSL_cleanse(data, (size_t)st.st_size);
		free(data);
	}
	if (fp)
		fclose(fp);
	return rc;
}

static int file_authenticate(struct ca_authenticator *a, const char *token, struct ca_identity *id, char *msg,
			     size_t cap)
{
	struct auth_file *f = (struct auth_file *)a;
	char why[256];
	size_t i, n = token ? strlen(token) : 0;
	int rc = -EACCES, found = -1;

	pthread_mutex_lock(&f->lock);
	if (file_refresh(f, 0, why, sizeof(why)) < 0)
		log_warn(SCOPE, "token file unusable, authorising no one until it is fixed: %s", why);
	/* look at every entry: the time taken does not depend on where a match is */
	for (i = 0; n && i < f->table.n; i++) {
		const struct token_entry *e = &f->table.v[i];
		if (e->len == n && CRYPTO_memcmp(e->token, token, n) == 0 && found < 0)
			found = (int)i;
	}
	if (found >= 0) {
		*id = f->table.v[found].id;
		rc = 0;
	} else {
		snprintf(msg, cap, "authentication failed: unknown bearer token");
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static void file_free(struct ca_authenticator *a)
{
	struct auth_file *f = (struct auth_file *)a;

	table_cleanup(&f->table);
	pthread_mutex_destroy(&f->lock);
	free(f->path);
	free(f);
}

static const struct ca_authenticator_ops file_ops = { "token-file", file_authenticate, file_free };

int ca_auth_file_new(const char *path, struct ca_authenticator **out, char *err, size_t cap)
{
	struct auth_file *f = NULL;
	int rc = 0;

	*out = NULL;
	if (!path)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &file_ops;
	pthread_mutex_init(&f->lock, NULL);
	f->path = strdup(path);
	if (!f->path) {
		rc = -ENOMEM;
		goto out;
	}
	rc = file_refresh(f, 1, err, cap);
	if (rc < 0)
		goto out;
	*out = &f->base;
	f = NULL;
out:
	if (f)
		file_free(&f->base);
	return rc;
}
