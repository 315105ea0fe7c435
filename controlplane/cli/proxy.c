/*
 * proxy.c - meshctl version, proxy-status and proxy-config (see proxy.h).
 *
 * Each command is one HTTP GET to meshd's debug port (or a proxy's admin
 * port), a JSON body read with libyaml's document loader (JSON is YAML; meshd
 * reads its JSON config the same way, and meshctl links libyaml already), and
 * a table printed the way istioctl prints its own (columns padded by three
 * spaces).  The JSON shapes read here are meshd's documented interfaces
 * (/debug/syncz, /debug/config_dump) and Envoy's admin config dump, which
 * meshd's dump follows.
 */
#include "controlplane/cli/proxy.h"
#include "controlplane/cli/certinfo.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"

#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <yaml.h>

#ifndef MESH_VERSION
#define MESH_VERSION "dev"
#endif

#define PROXY_EXIT_OK 0
#define PROXY_EXIT_FAIL 1
#define PROXY_EXIT_USAGE 2

#define PROXY_DEFAULT_MESHD "127.0.0.1:15014"
#define PROXY_MAX_BODY ((size_t)64 << 20)       /* meshd's DEBUG_MAX_RESPONSE_BYTES */
#define PROXY_MAX_HEADERS ((size_t)64 << 10)    /* status line and headers */
#define PROXY_TIMEOUT_S 10                      /* connect, each send and receive */
#define PROXY_MAX_HOST 256
#define PROXY_MAX_PATH 2048
#define PROXY_MAX_CELL 512                      /* one table cell */
#define PROXY_MAX_FIND_DEPTH 64                 /* recursive key search in a resource */

/* ---------------------------------------------------------------- HTTP */

/* Split "HOST:PORT" or "[V6]:PORT" into host and port.  0 or -EINVAL. */
static int proxy__split_addr(const char *addr, char *host, size_t hcap, const char **port)
{
	const char *colon = strrchr(addr, ':'), *hs = addr;
	size_t hl;

	if (!colon || !colon[1])
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		hs++;
		hl -= 2;
	}
	if (!hl || hl >= hcap)
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	*port = colon + 1;
	return 0;
}

/* Decode a chunked body in place.  0 or -MESH_EPARSE. */
static int proxy__dechunk(struct mesh_buf *b)
{
	char *in = b->data, *out = b->data, *end = b->data + b->len;

	for (;;) {
		char *eol, *stop;
		unsigned long n;

		eol = memmem(in, (size_t)(end - in), "\r\n", 2);
		if (!eol)
			return -MESH_EPARSE;
		n = strtoul(in, &stop, 16);
		if (stop == in)
			return -MESH_EPARSE;
		in = eol + 2;
		if (n == 0)
			break;
		if (n > (size_t)(end - in))
			return -MESH_EPARSE;
		memmove(out, in, n);
		out += n;
		in += n;
		if (end - in < 2 || in[0] != '\r' || in[1] != '\n')
			return -MESH_EPARSE;
		in += 2;
	}
	b->len = (size_t)(out - b->data);
	b->data[b->len] = '\0';
	return 0;
}

/*
 * GET http://addr/path.  *status and the body (capped at PROXY_MAX_BODY) on
 * success.  0 or a negative code; a message on stderr naming addr.
 */
static int proxy__http_get(const char *addr, const char *path, int *status, struct mesh_buf *body)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL, *a;
	struct timeval tv = { .tv_sec = PROXY_TIMEOUT_S };
	struct mesh_buf raw, req;
	char host[PROXY_MAX_HOST], chunk[16384];
	const char *port, *hdr_end, *line, *cl;
	int fd = -1, rc, gai;
	ssize_t n;
	size_t off;

	mesh_buf_init(&raw, PROXY_MAX_BODY + PROXY_MAX_HEADERS);
	mesh_buf_init(&req, PROXY_MAX_PATH + PROXY_MAX_HOST + 256);
	rc = proxy__split_addr(addr, host, sizeof(host), &port);
	if (rc < 0) {
		fprintf(stderr, "meshctl: bad address \"%s\": want HOST:PORT or [IPV6]:PORT\n", addr);
		goto out;
	}
	gai = getaddrinfo(host, port, &hints, &ai);
	if (gai != 0) {
		fprintf(stderr, "meshctl: %s: %s\n", addr, gai_strerror(gai));
		rc = -EHOSTUNREACH;
		goto out;
	}
	rc = -ECONNREFUSED;
	for (a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			rc = -errno;
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "meshctl: cannot reach %s: %s (is meshd running? --meshd ADDR names its --http-addr)\n",
			addr, mesh_strerror(rc));
		goto out;
	}
	mesh_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshctl/%s\r\n"
			      "Accept: application/json\r\nConnection: close\r\n\r\n", path, addr, MESH_VERSION);
	if (req.err) {
		rc = req.err;
		fprintf(stderr, "meshctl: request too long\n");
		goto out;
	}
	for (off = 0; off < req.len; off += (size_t)n) {
		n = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EPIPE;
			fprintf(stderr, "meshctl: %s: send: %s\n", addr, mesh_strerror(rc));
			goto out;
		}
	}
	/* Connection: close: the answer ends where the stream does */
	while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0) {
		if (mesh_buf_append(&raw, chunk, (size_t)n) < 0) {
			rc = -MESH_ETOOBIG;
			fprintf(stderr, "meshctl: %s%s: answer over %zu bytes\n", addr, path, PROXY_MAX_BODY);
			goto out;
		}
	}
	if (n < 0) {
		rc = -errno;
		fprintf(stderr, "meshctl: %s: receive: %s\n", addr, mesh_strerror(rc));
		goto out;
	}
	rc = -MESH_EPARSE;
	if (!raw.data || raw.len < 12 || strncmp(raw.data, "HTTP/1.", 7) != 0 ||
	    !(hdr_end = strstr(raw.data, "\r\n\r\n"))) {
		fprintf(stderr, "meshctl: %s: not an HTTP answer\n", addr);
		goto out;
	}
	*status = atoi(raw.data + 9);
	mesh_buf_reset(body);
	if (mesh_buf_append(body, hdr_end + 4, raw.len - (size_t)(hdr_end + 4 - raw.data)) < 0 ||
	    mesh_buf_puts(body, "") < 0) {
		rc = -ENOMEM;
		goto out;
	}
	/* the headers that change how the body reads */
	for (line = strstr(raw.data, "\r\n") + 2; line < hdr_end; line = strstr(line, "\r\n") + 2) {
		if (!strncasecmp(line, "Transfer-Encoding:", 18) && strstr(line, "chunked") &&
		    strstr(line, "chunked") < strstr(line, "\r\n")) {
			if (proxy__dechunk(body) < 0) {
				fprintf(stderr, "meshctl: %s: bad chunked body\n", addr);
				goto out;
			}
		} else if (!strncasecmp(line, "Content-Length:", 15)) {
			cl = line + 15;
			if ((size_t)strtoull(cl, NULL, 10) < body->len) {
				body->len = (size_t)strtoull(cl, NULL, 10);
				body->data[body->len] = '\0';
			}
		}
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	mesh_buf_cleanup(&raw);
	mesh_buf_cleanup(&req);
	return rc;
}

/* Percent-encode s for a query value. */
static void proxy__urlencode(struct mesh_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c))
			mesh_buf_putc(b, (char)c);
		else
			mesh_buf_printf(b, "%%%02X", c);
	}
}

/*
 * GET addr/path and insist on 200: an error answer's {"error": "..."} text
 * (meshd's shape) or its body goes to stderr.  0 or a negative code.
 */
static int proxy__fetch(const char *addr, const char *path, struct mesh_buf *body)
{
	int status = 0, rc;

	rc = proxy__http_get(addr, path, &status, body);
	if (rc < 0)
		return rc;
	if (status != 200) {
		const char *msg = body->data ? body->data : "";
		const char *e = strstr(msg, "\"error\":\"");
		size_t len = strlen(msg);

		if (e) {
			/* the message up to its closing quote; escapes stay as sent */
			const char *q;

			msg = e + 9;
			for (q = msg; *q && !(*q == '"' && q[-1] != '\\'); q++)
				;
			len = (size_t)(q - msg);
		}
		while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
			len--;
		fprintf(stderr, "meshctl: %s%s: HTTP %d: ", addr, path, status);
		for (; len; msg++, len--) {
			if (e && *msg == '\\' && len > 1 && (msg[1] == '"' || msg[1] == '\\')) {
				msg++;
				len--;
			}
			fputc(*msg, stderr);
		}
		fputc('\n', stderr);
		return -EPROTO;
	}
	return 0;
}

/* ---------------------------------------------------------------- JSON */

struct proxy__json {
	yaml_document_t doc;
	bool loaded;
};

/* Load JSON text (NUL-terminated) as a libyaml document.  0 or -MESH_EPARSE. */
static int proxy__json_load(struct proxy__json *j, const char *what, const struct mesh_buf *b)
{
	yaml_parser_t p;
	int rc = 0;

	memset(j, 0, sizeof(*j));
	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	yaml_parser_set_input_string(&p, (const unsigned char *)(b->data ? b->data : ""), b->len);
	if (!yaml_parser_load(&p, &j->doc)) {
		fprintf(stderr, "meshctl: %s: not JSON: %s at line %zu\n", what, p.problem ? p.problem : "error",
			p.problem_mark.line + 1);
		rc = -MESH_EPARSE;
	} else {
		j->loaded = true;
		if (!yaml_document_get_root_node(&j->doc)) {
			fprintf(stderr, "meshctl: %s: empty answer\n", what);
			rc = -MESH_EPARSE;
		}
	}
	yaml_parser_delete(&p);
	return rc;
}

static void proxy__json_cleanup(struct proxy__json *j)
{
	if (j->loaded)
		yaml_document_delete(&j->doc);
	j->loaded = false;
}

static yaml_node_t *proxy__root(struct proxy__json *j)
{
	return yaml_document_get_root_node(&j->doc);
}

/* Whether two JSON keys name the same proto field: proto3 JSON parsers
 * accept a field's lowerCamelCase name and its .proto (snake_case) name
 * alike, and dumps come in both (Envoy's /config_dump uses the .proto
 * names, meshd's debug dump camelCase), so "port_value" == "portValue". */
static bool proxy__key_eq(const char *a, const char *b)
{
	for (;;) {
		char ca = *a, cb = *b;

		if (ca == '_' && a[1] >= 'a' && a[1] <= 'z')
			ca = (char)(*++a - 'a' + 'A');
		if (cb == '_' && b[1] >= 'a' && b[1] <= 'z')
			cb = (char)(*++b - 'a' + 'A');
		if (ca != cb)
			return false;
		if (!ca)
			return true;
		a++;
		b++;
	}
}

/* The value under key in map (either spelling, proxy__key_eq), or NULL. */
static yaml_node_t *proxy__get(struct proxy__json *j, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&j->doc, p->key);

		if (k && k->type == YAML_SCALAR_NODE && proxy__key_eq((const char *)k->data.scalar.value, key))
			return yaml_document_get_node(&j->doc, p->value);
	}
	return NULL;
}

/* A path of keys, "a.b.c", from n. */
static yaml_node_t *proxy__path(struct proxy__json *j, yaml_node_t *n, const char *path)
{
	char key[128];
	const char *dot;
	size_t len;

	while (n && *path) {
		dot = strchr(path, '.');
		len = dot ? (size_t)(dot - path) : strlen(path);
		if (len >= sizeof(key))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		n = proxy__get(j, n, key);
		path += len + (dot ? 1 : 0);
	}
	return n;
}

/* A scalar's text; NULL for JSON null, a missing node or a collection. */
static const char *proxy__str(yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp((const char *)n->data.scalar.value, "null") == 0)
		return NULL;
	return (const char *)n->data.scalar.value;
}

static size_t proxy__len(yaml_node_t *n)
{
	return n && n->type == YAML_SEQUENCE_NODE ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
						  : 0;
}

static yaml_node_t *proxy__at(struct proxy__json *j, yaml_node_t *seq, size_t i)
{
	if (i >= proxy__len(seq))
		return NULL;
	return yaml_document_get_node(&j->doc, seq->data.sequence.items.start[i]);
}

/* The first scalar under key (either spelling) anywhere below n (depth-first), or NULL. */
static const char *proxy__find(struct proxy__json *j, yaml_node_t *n, const char *key, int depth)
{
	const char *s = NULL;

	if (!n || depth > PROXY_MAX_FIND_DEPTH)
		return NULL;
	if (n->type == YAML_MAPPING_NODE) {
		yaml_node_pair_t *p;

		for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top && !s; p++) {
			yaml_node_t *k = yaml_document_get_node(&j->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(&j->doc, p->value);

			if (k && k->type == YAML_SCALAR_NODE && proxy__key_eq((const char *)k->data.scalar.value, key) &&
			    proxy__str(v))
				return proxy__str(v);
			s = proxy__find(j, v, key, depth + 1);
		}
	} else if (n->type == YAML_SEQUENCE_NODE) {
		size_t i;

		for (i = 0; i < proxy__len(n) && !s; i++)
			s = proxy__find(j, proxy__at(j, n, i), key, depth + 1);
	}
	return s;
}

/* n back to JSON text (scalars: plain ones as written, the rest as strings). */
static void proxy__to_json(struct proxy__json *j, yaml_node_t *n, struct mesh_buf *b)
{
	size_t i;

	if (!n) {
		mesh_buf_puts(b, "null");
		return;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
			mesh_buf_append(b, n->data.scalar.value, n->data.scalar.length);
		else
			json_put_stringn(b, (const char *)n->data.scalar.value, n->data.scalar.length);
		break;
	case YAML_SEQUENCE_NODE:
		mesh_buf_putc(b, '[');
		for (i = 0; i < proxy__len(n); i++) {
			if (i)
				mesh_buf_putc(b, ',');
			proxy__to_json(j, proxy__at(j, n, i), b);
		}
		mesh_buf_putc(b, ']');
		break;
	case YAML_MAPPING_NODE: {
		yaml_node_pair_t *p;

		mesh_buf_putc(b, '{');
		for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(&j->doc, p->key);

			if (p != n->data.mapping.pairs.start)
				mesh_buf_putc(b, ',');
			json_put_string(b, k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "");
			mesh_buf_putc(b, ':');
			proxy__to_json(j, yaml_document_get_node(&j->doc, p->value), b);
		}
		mesh_buf_putc(b, '}');
		break;
	}
	default:
		mesh_buf_puts(b, "null");
	}
}

/* ---------------------------------------------------------------- tables */

struct proxy__table {
	size_t ncols, nrows, cap;
	char **cells;   /* row-major, nrows * ncols; row 0 is the header */
	int err;
};

static void proxy__table_row(struct proxy__table *t, const char *const *vals)
{
	size_t i;

	if (t->err)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));

		if (!c) {
			t->err = -ENOMEM;
			return;
		}
		t->cells = c;
		t->cap = cap;
	}
	for (i = 0; i < t->ncols; i++) {
		char *s = strndup(vals[i] && vals[i][0] ? vals[i] : "-", PROXY_MAX_CELL);

		if (!s)
			t->err = -ENOMEM;
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
}

static void proxy__table_init(struct proxy__table *t, size_t ncols, const char *const *header)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	proxy__table_row(t, header);
}

static int proxy__row_cmp_cols;

static int proxy__row_cmp(const void *a, const void *b)
{
	char **ra = *(char **const *)a, **rb = *(char **const *)b;
	int i, c;

	/* rows are sorted through an array of row pointers: compare by columns in order */
	for (i = 0; i < proxy__row_cmp_cols; i++) {
		c = strcmp(ra[i], rb[i]);
		if (c)
			return c;
	}
	return 0;
}

/* Sort the rows (not the header) by their columns, left to right. */
static void proxy__table_sort(struct proxy__table *t)
{
	char ***rows;
	char **cells;
	size_t i;

	if (t->err || t->nrows < 3)
		return;
	rows = malloc((t->nrows - 1) * sizeof(*rows));
	cells = malloc(t->nrows * t->ncols * sizeof(*cells));
	if (!rows || !cells) {
		free(rows);
		free(cells);
		return;
	}
	for (i = 1; i < t->nrows; i++)
		rows[i - 1] = &t->cells[i * t->ncols];
	proxy__row_cmp_cols = (int)t->ncols;
	qsort(rows, t->nrows - 1, sizeof(*rows), proxy__row_cmp);
	memcpy(cells, t->cells, t->ncols * sizeof(*cells));
	for (i = 1; i < t->nrows; i++)
		memcpy(&cells[i * t->ncols], rows[i - 1], t->ncols * sizeof(*cells));
	free(t->cells);
	t->cells = cells;
	t->cap = t->nrows;
	free(rows);
}

/* Print and free the table.  0, or -ENOMEM when a row could not be kept. */
static int proxy__table_print(struct proxy__table *t)
{
	size_t *w, r, c;
	int rc = t->err;

	w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));
	if (!w)
		rc = -ENOMEM;
	for (r = 0; w && !t->err && r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			if (strlen(t->cells[r * t->ncols + c]) > w[c])
				w[c] = strlen(t->cells[r * t->ncols + c]);
	for (r = 0; w && !t->err && r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			if (c + 1 < t->ncols)
				printf("%-*s   ", (int)w[c], s);
			else
				printf("%s\n", s);
		}
	}
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			free(t->cells[r * t->ncols + c]);
	free(t->cells);
	free(w);
	t->cells = NULL;
	t->nrows = 0;
	if (rc < 0)
		fprintf(stderr, "meshctl: out of memory\n");
	return rc;
}

/* ---------------------------------------------------------------- options */

struct proxy__opts {
	const char *meshd;
	const char *admin;
	const char *output;
	const char *pos[2];
	int npos;
	/* istioctl proxy-config's filters; NULL when not given */
	const char *fqdn, *subset, *direction, *address, *ltype, *name, *cluster, *status, *port_s;
	unsigned port;          /* --port, parsed */
};

/* A flag taking a value: --flag V or --flag=V.  cfg: proxy-config only. */
struct proxy__flag {
	const char *flag;
	size_t off;             /* of the const char * in struct proxy__opts */
	bool cfg;
};

#define PROXY__OPT(f) offsetof(struct proxy__opts, f)

static const struct proxy__flag proxy__flags[] = {
	{ "--meshd", PROXY__OPT(meshd), false },      { "--admin", PROXY__OPT(admin), true },
	{ "-o", PROXY__OPT(output), false },          { "--output", PROXY__OPT(output), false },
	{ "--fqdn", PROXY__OPT(fqdn), true },         { "--subset", PROXY__OPT(subset), true },
	{ "--direction", PROXY__OPT(direction), true }, { "--address", PROXY__OPT(address), true },
	{ "--type", PROXY__OPT(ltype), true },        { "--name", PROXY__OPT(name), true },
	{ "--cluster", PROXY__OPT(cluster), true },   { "--status", PROXY__OPT(status), true },
	{ "--port", PROXY__OPT(port_s), true },
};

/* Common flags; positional arguments into o->pos.  0, or 1 for --help, or
 * -EINVAL (message printed). */
static int proxy__parse(const char *cmd, int argc, char **argv, struct proxy__opts *o, bool cfg)
{
	int i;
	size_t f;

	o->meshd = PROXY_DEFAULT_MESHD;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL, *val = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return 1;
		for (f = 0; f < sizeof(proxy__flags) / sizeof(proxy__flags[0]) && !dst; f++) {
			size_t fl = strlen(proxy__flags[f].flag);

			if ((proxy__flags[f].cfg && !cfg) || strncmp(a, proxy__flags[f].flag, fl) ||
			    (a[fl] != '\0' && a[fl] != '='))
				continue;
			dst = (const char **)(void *)((char *)o + proxy__flags[f].off);
			val = a[fl] == '=' ? a + fl + 1 : NULL;
		}
		if (dst) {
			/* a filter given twice is a mistake, not "the last one wins" */
			if (proxy__flags[f - 1].cfg && *dst) {
				fprintf(stderr, "meshctl %s: %s given more than once\n", cmd, proxy__flags[f - 1].flag);
				return -EINVAL;
			}
			if (!val && ++i == argc) {
				fprintf(stderr, "meshctl %s: %s needs a value\n", cmd, a);
				return -EINVAL;
			}
			*dst = val ? val : argv[i];
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "meshctl %s: unknown option \"%s\"\n", cmd, a);
			return -EINVAL;
		} else if (o->npos < 2) {
			o->pos[o->npos++] = a;
		} else {
			fprintf(stderr, "meshctl %s: unexpected argument \"%s\"\n", cmd, a);
			return -EINVAL;
		}
	}
	if (o->output && strcmp(o->output, "json") && strcmp(o->output, "table") && strcmp(o->output, "short") &&
	    (!cfg || strcmp(o->output, "yaml"))) {
		fprintf(stderr, "meshctl %s: -o %s: want %s\n", cmd, o->output,
			cfg ? "short (the table, default), json or yaml" : "table or json");
		return -EINVAL;
	}
	return 0;
}

static bool proxy__json_out(const struct proxy__opts *o)
{
	return o->output && !strcmp(o->output, "json");
}

/* ---------------------------------------------------------------- version */

static void proxy__version_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl version [--meshd ADDR] [-o json]\n"
		"\n"
		"Print meshctl's version and, with --meshd, the version of the meshd\n"
		"serving its HTTP port at ADDR (its /version).\n");
}

int proxy_version_main(int argc, char **argv)
{
	struct proxy__opts o = { 0 };
	struct proxy__json j = { 0 };
	struct mesh_buf body;
	bool ask = false;
	int i, rc = PROXY_EXIT_USAGE;

	mesh_buf_init(&body, PROXY_MAX_BODY);
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--meshd") || !strncmp(argv[i], "--meshd=", 8))
			ask = true;
	i = proxy__parse("version", argc, argv, &o, false);
	if (i != 0 || o.npos) {
		if (o.npos)
			fprintf(stderr, "meshctl version: unexpected argument \"%s\"\n", o.pos[0]);
		proxy__version_usage(i == 1 ? stdout : stderr);
		rc = i == 1 ? PROXY_EXIT_OK : PROXY_EXIT_USAGE;
		goto out;
	}
	rc = PROXY_EXIT_FAIL;
	if (!ask) {
		if (proxy__json_out(&o))
			printf("{\"clientVersion\":{\"version\":\"%s\"}}\n", MESH_VERSION);
		else
			printf("client version: %s\n", MESH_VERSION);
		rc = PROXY_EXIT_OK;
		goto out;
	}
	if (proxy__fetch(o.meshd, "/version", &body) < 0 || proxy__json_load(&j, "/version", &body) < 0) {
		if (!proxy__json_out(&o))
			printf("client version: %s\n", MESH_VERSION);
		goto out;
	}
	if (proxy__json_out(&o)) {
		printf("{\"clientVersion\":{\"version\":\"%s\"},\"meshVersion\":[{\"Component\":\"meshd\","
		       "\"Info\":%s}]}\n", MESH_VERSION, body.data);
	} else {
		const char *v = proxy__str(proxy__get(&j, proxy__root(&j), "version"));

		printf("client version: %s\n", MESH_VERSION);
		printf("meshd version: %s (%s)\n", v ? v : "unknown", o.meshd);
	}
	rc = PROXY_EXIT_OK;
out:
	proxy__json_cleanup(&j);
	mesh_buf_cleanup(&body);
	return rc;
}

/* ---------------------------------------------------------------- proxy-status */

static void proxy__status_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl proxy-status [--meshd ADDR] [-o json]\n"
		"\n"
		"The proxies connected to meshd and, per xDS type, whether each has\n"
		"what meshd last sent it, as istioctl proxy-status prints it:\n"
		"  SYNCED    the proxy ACKed the version meshd sent last\n"
		"  NOT SENT  meshd has sent nothing of this type (not asked, or nothing to send)\n"
		"  STALE     sent, not answered yet\n"
		"  ERROR     the proxy NACKed it (the text is in -o json and /debug/syncz)\n"
		"Reads meshd's /debug/syncz at ADDR (default " PROXY_DEFAULT_MESHD
		", meshd's --http-addr;\n"
		"it answers only callers on meshd's host).  -o json prints that JSON.\n");
}

int proxy_status_main(int argc, char **argv)
{
	static const char *const header[] = { "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD",
					      "VERSION" };
	static const char *const types[] = { "cds", "lds", "eds", "rds", "ecds" };
	struct proxy__opts o = { 0 };
	struct proxy__json j = { 0 };
	struct proxy__table t = { 0 };
	struct mesh_buf body;
	yaml_node_t *root;
	size_t i, k, n;
	int rc;

	mesh_buf_init(&body, PROXY_MAX_BODY);
	rc = proxy__parse("proxy-status", argc, argv, &o, false);
	if (rc != 0 || o.npos) {
		if (o.npos)
			fprintf(stderr, "meshctl proxy-status: unexpected argument \"%s\" (one proxy's diff is not "
				"supported; see meshctl proxy-config)\n", o.pos[0]);
		proxy__status_usage(rc == 1 ? stdout : stderr);
		rc = rc == 1 ? PROXY_EXIT_OK : PROXY_EXIT_USAGE;
		goto out;
	}
	rc = PROXY_EXIT_FAIL;
	if (proxy__fetch(o.meshd, "/debug/syncz", &body) < 0)
		goto out;
	if (proxy__json_out(&o)) {
		fputs(body.data, stdout);
		rc = PROXY_EXIT_OK;
		goto out;
	}
	if (proxy__json_load(&j, "/debug/syncz", &body) < 0)
		goto out;
	root = proxy__root(&j);
	if (root->type != YAML_SEQUENCE_NODE) {
		fprintf(stderr, "meshctl: /debug/syncz: not a JSON array\n");
		goto out;
	}
	proxy__table_init(&t, sizeof(header) / sizeof(header[0]), header);
	n = proxy__len(root);
	for (i = 0; i < n; i++) {
		yaml_node_t *st = proxy__at(&j, root, i);
		const char *name = proxy__str(proxy__get(&j, st, "proxy"));
		const char *row[sizeof(header) / sizeof(header[0])];
		bool seen = false;
		size_t p;

		/* streams are listed newest first: a reconnected proxy shows its newest */
		for (p = 0; p < i && !seen; p++)
			seen = name && proxy__str(proxy__get(&j, proxy__at(&j, root, p), "proxy")) &&
			       !strcmp(name, proxy__str(proxy__get(&j, proxy__at(&j, root, p), "proxy")));
		if (seen)
			continue;
		row[0] = name;
		row[1] = proxy__str(proxy__get(&j, st, "cluster"));
		for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
			const char *s = proxy__str(proxy__path(&j, proxy__get(&j, proxy__get(&j, st, "types"), types[k]),
							       "state"));
			row[2 + k] = s ? s : "NOT SENT";
		}
		row[7] = o.meshd;
		row[8] = proxy__str(proxy__get(&j, st, "user_agent"));
		proxy__table_row(&t, row);
	}
	proxy__table_sort(&t);
	rc = proxy__table_print(&t) < 0 ? PROXY_EXIT_FAIL : PROXY_EXIT_OK;
	if (rc == PROXY_EXIT_OK && !n)
		fprintf(stderr, "meshctl: no proxy is connected to meshd at %s\n", o.meshd);
out:
	proxy__json_cleanup(&j);
	mesh_buf_cleanup(&body);
	return rc;
}

/* ---------------------------------------------------------------- proxy-config */

enum proxy__section { PROXY_LISTENERS, PROXY_ROUTES, PROXY_CLUSTERS, PROXY_ENDPOINTS, PROXY_SECRETS, PROXY_N };

/* Envoy's admin config dump: per section, its message and where resources sit. */
static const struct {
	const char *name;         /* meshctl proxy-config TYPE */
	const char *dump_type;    /* ends the "@type" of the config */
	const char *lists[2];     /* repeated fields holding the resources */
	const char *inner;        /* field of a list item holding the resource */
} proxy__sections[PROXY_N] = {
	[PROXY_LISTENERS] = { "listeners", "ListenersConfigDump", { "dynamicListeners", "staticListeners" },
			      "listener" },
	[PROXY_ROUTES] = { "routes", "RoutesConfigDump", { "dynamicRouteConfigs", "staticRouteConfigs" },
			   "routeConfig" },
	[PROXY_CLUSTERS] = { "clusters", "ClustersConfigDump", { "dynamicActiveClusters", "staticClusters" },
			     "cluster" },
	[PROXY_ENDPOINTS] = { "endpoints", "EndpointsConfigDump",
			      { "dynamicEndpointConfigs", "staticEndpointConfigs" }, "endpointConfig" },
	[PROXY_SECRETS] = { "secrets", "SecretsConfigDump", { "dynamicActiveSecrets", "staticSecrets" }, "secret" },
};

/* The config of section s in the dump, or NULL. */
static yaml_node_t *proxy__section(struct proxy__json *j, enum proxy__section s)
{
	yaml_node_t *configs = proxy__get(j, proxy__root(j), "configs");
	size_t i, tl = strlen(proxy__sections[s].dump_type);

	for (i = 0; i < proxy__len(configs); i++) {
		yaml_node_t *c = proxy__at(j, configs, i);
		const char *type = proxy__str(proxy__get(j, c, "@type"));
		size_t l = type ? strlen(type) : 0;

		if (l >= tl && !strcmp(type + l - tl, proxy__sections[s].dump_type))
			return c;
	}
	return NULL;
}

/* The resource of a list item: listeners keep theirs in activeState.listener. */
static yaml_node_t *proxy__resource(struct proxy__json *j, enum proxy__section s, yaml_node_t *item)
{
	yaml_node_t *r = proxy__get(j, item, proxy__sections[s].inner);

	if (!r && s == PROXY_LISTENERS)
		r = proxy__path(j, item, "activeState.listener");
	return r;
}

typedef void (*proxy__rows_fn)(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
			       yaml_node_t *res, struct proxy__table *t);

/* Where a filter chain sends traffic, as istioctl shows it. */
static void proxy__chain_dest(struct proxy__json *j, yaml_node_t *chain, char *out, size_t cap)
{
	const char *route = proxy__find(j, chain, "routeConfigName", 0);
	const char *cluster = proxy__find(j, chain, "cluster", 0);

	if (route)
		snprintf(out, cap, "Route: %s", route);
	else if (proxy__find(j, chain, "virtualHosts", 0) || proxy__find(j, chain, "domains", 0))
		snprintf(out, cap, "Inline Route");
	else if (cluster)
		snprintf(out, cap, "Cluster: %s", cluster);
	else
		snprintf(out, cap, "-");
}

/* A filter chain's match as istioctl describes it ("SNI: a,b; Trans: tls;
 * App: h2; Addr: 10.0.0.0/8; Port: 80"), "ALL" when it matches anything. */
static void proxy__chain_match(struct proxy__json *j, yaml_node_t *chain, char *out, size_t cap)
{
	static const struct {
		const char *key, *label;
	} lists[] = { { "serverNames", "SNI" }, { "applicationProtocols", "App" } };
	yaml_node_t *m = proxy__get(j, chain, "filterChainMatch"), *ranges;
	struct mesh_buf b;
	const char *v;
	size_t i, k;

	mesh_buf_init(&b, cap);
	for (k = 0; k < 2; k++) {
		yaml_node_t *l = proxy__get(j, m, lists[k].key);

		if (k == 1 && (v = proxy__str(proxy__get(j, m, "transportProtocol"))))
			mesh_buf_printf(&b, "%sTrans: %s", b.len ? "; " : "", v);
		for (i = 0; i < proxy__len(l); i++) {
			v = proxy__str(proxy__at(j, l, i));
			if (i)
				mesh_buf_printf(&b, ",%s", v ? v : "");
			else
				mesh_buf_printf(&b, "%s%s: %s", b.len ? "; " : "", lists[k].label, v ? v : "");
		}
	}
	ranges = proxy__get(j, m, "prefixRanges");
	for (i = 0; i < proxy__len(ranges); i++) {
		yaml_node_t *r = proxy__at(j, ranges, i);
		const char *len = proxy__str(proxy__get(j, r, "prefixLen"));

		v = proxy__str(proxy__get(j, r, "addressPrefix"));
		mesh_buf_printf(&b, "%s%s/%s", i ? "," : b.len ? "; Addr: " : "Addr: ", v ? v : "", len ? len : "0");
	}
	if ((v = proxy__str(proxy__get(j, m, "destinationPort"))))
		mesh_buf_printf(&b, "%sPort: %s", b.len ? "; " : "", v);
	snprintf(out, cap, "%s", b.err ? "?" : b.len ? b.data : "ALL");
	mesh_buf_cleanup(&b);
}

/* One row per filter chain (and the default chain), as istioctl prints:
 * a listener's chains may go to different places (virtualOutbound: its
 * BlackHoleCluster chain and its PassthroughCluster catch-all). */
static void proxy__listener_rows(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
				 yaml_node_t *l, struct proxy__table *t)
{
	char dest[PROXY_MAX_CELL], match[PROXY_MAX_CELL];
	yaml_node_t *chains = proxy__get(j, l, "filterChains"), *def = proxy__get(j, l, "defaultFilterChain");
	const char *row[5];
	size_t i, n = proxy__len(chains);

	(void)item;
	(void)o;
	row[0] = proxy__str(proxy__get(j, l, "name"));
	row[1] = proxy__str(proxy__path(j, l, "address.socketAddress.address"));
	row[2] = proxy__str(proxy__path(j, l, "address.socketAddress.portValue"));
	row[3] = match;
	row[4] = dest;
	for (i = 0; i <= n; i++) {
		yaml_node_t *c = i < n ? proxy__at(j, chains, i) : def;

		if (!c)
			continue;
		proxy__chain_match(j, c, match, sizeof(match));
		proxy__chain_dest(j, c, dest, sizeof(dest));
		proxy__table_row(t, row);
	}
	if (!n && !def) {
		/* a listener without chains (an API listener, say): its destination */
		snprintf(match, sizeof(match), "-");
		proxy__chain_dest(j, l, dest, sizeof(dest));
		proxy__table_row(t, row);
	}
}

/* One route's match as istioctl shows it: "/prefix*", "/exact", "~regex",
 * with header names after. */
static void proxy__match_text(struct proxy__json *j, yaml_node_t *m, char *out, size_t cap)
{
	const char *v;
	yaml_node_t *hs = proxy__get(j, m, "headers");
	size_t i, n;

	if ((v = proxy__str(proxy__get(j, m, "prefix"))))
		n = (size_t)snprintf(out, cap, "%s*", v[0] ? v : "/");
	else if ((v = proxy__str(proxy__get(j, m, "path"))))
		n = (size_t)snprintf(out, cap, "%s", v);
	else if ((v = proxy__str(proxy__path(j, m, "safeRegex.regex"))))
		n = (size_t)snprintf(out, cap, "~%s", v);
	else if ((v = proxy__str(proxy__get(j, m, "pathSeparatedPrefix"))))
		n = (size_t)snprintf(out, cap, "%s/*", v);
	else
		n = (size_t)snprintf(out, cap, "/*");
	for (i = 0; i < proxy__len(hs) && n < cap; i++) {
		const char *name = proxy__str(proxy__get(j, proxy__at(j, hs, i), "name"));

		n += (size_t)snprintf(out + n, cap - n, " %s", name ? name : "?");
	}
}

/* The route action: its cluster, or the weighted clusters "a 90%, b 10%". */
static void proxy__route_dest(struct proxy__json *j, yaml_node_t *r, char *out, size_t cap)
{
	yaml_node_t *wc = proxy__path(j, r, "route.weightedClusters.clusters");
	const char *v;
	size_t i, n = 0;

	out[0] = '\0';
	if ((v = proxy__str(proxy__path(j, r, "route.cluster")))) {
		snprintf(out, cap, "%s", v);
		return;
	}
	for (i = 0; i < proxy__len(wc) && n < cap; i++) {
		yaml_node_t *c = proxy__at(j, wc, i);
		const char *name = proxy__str(proxy__get(j, c, "name"));
		const char *w = proxy__str(proxy__get(j, c, "weight"));

		n += (size_t)snprintf(out + n, cap - n, "%s%s %s", i ? ", " : "", name ? name : "?", w ? w : "?");
	}
	if (!n && proxy__get(j, r, "directResponse"))
		snprintf(out, cap, "direct response");
	else if (!n && proxy__get(j, r, "redirect"))
		snprintf(out, cap, "redirect");
}

static void proxy__route_rows(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
				 yaml_node_t *rc, struct proxy__table *t)
{
	yaml_node_t *vhs = proxy__get(j, rc, "virtualHosts");
	const char *name = proxy__str(proxy__get(j, rc, "name"));
	size_t v, r;

	(void)item;
	(void)o;
	for (v = 0; v < proxy__len(vhs); v++) {
		yaml_node_t *vh = proxy__at(j, vhs, v);
		yaml_node_t *domains = proxy__get(j, vh, "domains");
		yaml_node_t *routes = proxy__get(j, vh, "routes");
		char dom[PROXY_MAX_CELL], match[PROXY_MAX_CELL], dest[PROXY_MAX_CELL];
		const char *d0 = proxy__str(proxy__at(j, domains, 0));

		if (proxy__len(domains) > 1)
			snprintf(dom, sizeof(dom), "%s +%zu more", d0 ? d0 : "", proxy__len(domains) - 1);
		else
			snprintf(dom, sizeof(dom), "%s", d0 ? d0 : "");
		for (r = 0; r < proxy__len(routes) || (r == 0 && !proxy__len(routes)); r++) {
			yaml_node_t *rt = proxy__at(j, routes, r);
			const char *row[5];

			match[0] = dest[0] = '\0';
			if (rt) {
				proxy__match_text(j, proxy__get(j, rt, "match"), match, sizeof(match));
				proxy__route_dest(j, rt, dest, sizeof(dest));
			}
			row[0] = name;
			row[1] = proxy__str(proxy__get(j, vh, "name"));
			row[2] = dom;
			row[3] = match;
			row[4] = dest;
			proxy__table_row(t, row);
		}
	}
}

static void proxy__cluster_rows(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
				 yaml_node_t *c, struct proxy__table *t)
{
	const char *name = proxy__str(proxy__get(j, c, "name"));
	const char *type = proxy__str(proxy__get(j, c, "type"));
	char dir[64] = "", port[16] = "", subset[256] = "", host[PROXY_MAX_CELL] = "";
	const char *row[5];

	(void)item;
	(void)o;
	/* Istio's names: DIRECTION|PORT|SUBSET|HOST */
	bool istio = false;

	if (name && sscanf(name, "%63[^|]|%15[^|]|", dir, port) == 2) {
		const char *p2 = strchr(strchr(name, '|') + 1, '|');
		const char *p3 = p2 ? strchr(p2 + 1, '|') : NULL;

		if (p3) {
			snprintf(subset, sizeof(subset), "%.*s", (int)(p3 - p2 - 1), p2 + 1);
			snprintf(host, sizeof(host), "%s", p3 + 1);
			istio = true; /* inbound|PORT|| has no host */
		}
	}
	if (!istio) {
		snprintf(host, sizeof(host), "%s", name ? name : "");
		dir[0] = port[0] = '\0';
	}
	if (!type && proxy__get(j, c, "edsClusterConfig"))
		type = "EDS";
	if (!type && proxy__get(j, c, "clusterType"))
		type = proxy__str(proxy__path(j, c, "clusterType.name"));
	row[0] = host;
	row[1] = port;
	row[2] = subset;
	row[3] = dir;
	row[4] = type;
	proxy__table_row(t, row);
}

/* ---- istioctl's filters (istioctl/pkg/writer/envoy/configdump/{cluster,
 * listener,route}.go and writer/envoy/clusters/clusters.go) */

/* Which sections each filter narrows, for "does not apply" errors. */
static const struct {
	const char *flag;
	size_t off;
	unsigned sections;      /* bit per enum proxy__section */
} proxy__filter_use[] = {
	{ "--fqdn", PROXY__OPT(fqdn), 1u << PROXY_CLUSTERS },
	{ "--subset", PROXY__OPT(subset), 1u << PROXY_CLUSTERS },
	{ "--direction", PROXY__OPT(direction), 1u << PROXY_CLUSTERS },
	{ "--port", PROXY__OPT(port_s), 1u << PROXY_CLUSTERS | 1u << PROXY_LISTENERS | 1u << PROXY_ENDPOINTS },
	{ "--address", PROXY__OPT(address), 1u << PROXY_LISTENERS | 1u << PROXY_ENDPOINTS },
	{ "--type", PROXY__OPT(ltype), 1u << PROXY_LISTENERS },
	{ "--name", PROXY__OPT(name), 1u << PROXY_ROUTES },
	{ "--cluster", PROXY__OPT(cluster), 1u << PROXY_ENDPOINTS },
	{ "--status", PROXY__OPT(status), 1u << PROXY_ENDPOINTS },
};

#define PROXY_N_FILTERS (sizeof(proxy__filter_use) / sizeof(proxy__filter_use[0]))

static const char *proxy__filter_val(const struct proxy__opts *o, size_t f)
{
	return *(const char *const *)(const void *)((const char *)o + proxy__filter_use[f].off);
}

static bool proxy__any_filter(const struct proxy__opts *o)
{
	size_t f;

	for (f = 0; f < PROXY_N_FILTERS; f++)
		if (proxy__filter_val(o, f))
			return true;
	return false;
}

static bool proxy__one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (!strcasecmp(v, *set))
			return true;
	return false;
}

/*
 * Check the filters against TYPE s (-1: all) and their values.  0, or
 * -EINVAL with the message on stderr (the caller exits 2).
 */
static int proxy__check_filters(struct proxy__opts *o, int s)
{
	static const char *const dirs[] = { "inbound", "outbound", NULL };
	static const char *const types[] = { "HTTP", "TCP", "HTTP+TCP", NULL };
	/* envoy.config.core.v3.HealthStatus names, as istioctl compares them */
	static const char *const statuses[] = { "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED", "UNKNOWN",
						NULL };
	size_t f;
	int k;

	for (f = 0; f < PROXY_N_FILTERS; f++) {
		const char *v = proxy__filter_val(o, f);

		if (!v)
			continue;
		if (s >= 0 && !(proxy__filter_use[f].sections & (1u << s))) {
			fprintf(stderr, "meshctl proxy-config: %s does not filter %s; it filters", proxy__filter_use[f].flag,
				proxy__sections[s].name);
			for (k = 0; k < PROXY_N; k++)
				if (proxy__filter_use[f].sections & (1u << k))
					fprintf(stderr, " %s", proxy__sections[k].name);
			fputc('\n', stderr);
			return -EINVAL;
		}
	}
	if (o->port_s) {
		char *end;
		unsigned long p = strtoul(o->port_s, &end, 10);

		if (end == o->port_s || *end || o->port_s[0] == '-' || p < 1 || p > 65535) {
			fprintf(stderr, "meshctl proxy-config: --port \"%s\": want a port number 1-65535\n", o->port_s);
			return -EINVAL;
		}
		o->port = (unsigned)p;
	}
	if (o->direction && !proxy__one_of(o->direction, dirs)) {
		fprintf(stderr, "meshctl proxy-config: --direction \"%s\": want inbound or outbound\n", o->direction);
		return -EINVAL;
	}
	/* accepted in any case, so matched in any case: cluster names spell it
	 * lower-case (istioctl compares verbatim, so INBOUND would match nothing
	 * there while passing as a value) */
	if (o->direction)
		o->direction = !strcasecmp(o->direction, "inbound") ? "inbound" : "outbound";
	if (o->ltype && !proxy__one_of(o->ltype, types)) {
		fprintf(stderr, "meshctl proxy-config: --type \"%s\": want HTTP, TCP or HTTP+TCP\n", o->ltype);
		return -EINVAL;
	}
	if (o->status && !proxy__one_of(o->status, statuses)) {
		fprintf(stderr, "meshctl proxy-config: --status \"%s\": want healthy, unhealthy, degraded, draining, "
			"timeout or unknown\n", o->status);
		return -EINVAL;
	}
	return 0;
}

/* istioctl's ClusterFilter.Verify: each given field a substring of the
 * name (DIRECTION|PORT|SUBSET|FQDN), the port as "|PORT|". */
static bool proxy__cluster_keep(const struct proxy__opts *o, const char *name)
{
	char p[16];

	if (!name)
		name = "";
	if (o->fqdn && !strstr(name, o->fqdn))
		return false;
	if (o->direction && !strstr(name, o->direction))
		return false;
	if (o->subset && !strstr(name, o->subset))
		return false;
	if (o->port) {
		snprintf(p, sizeof(p), "|%u|", o->port);
		if (!strstr(name, p))
			return false;
	}
	return true;
}

/* Whether a filter of a listener's chains is an HTTP connection manager
 * (1), a TCP proxy to somewhere other than BlackHoleCluster (2), or
 * neither (0): by the filter's name, or its typed config's type. */
static int proxy__filter_kind(struct proxy__json *j, yaml_node_t *f)
{
	const char *name = proxy__str(proxy__get(j, f, "name"));
	const char *type = proxy__str(proxy__path(j, f, "typedConfig.@type"));
	const char *cl;

	if ((name && strstr(name, "http_connection_manager")) || (type && strstr(type, ".HttpConnectionManager")))
		return 1;
	if ((name && strstr(name, "tcp_proxy")) || (type && strstr(type, ".TcpProxy"))) {
		cl = proxy__find(j, f, "cluster", 0);
		return cl && !strcmp(cl, "BlackHoleCluster") ? 0 : 2;
	}
	return 0;
}

/* istioctl's retrieveListenerType: HTTP, TCP, HTTP+TCP or UNKNOWN. */
static const char *proxy__listener_type(struct proxy__json *j, yaml_node_t *l)
{
	yaml_node_t *chains = proxy__get(j, l, "filterChains");
	size_t i, k, n = proxy__len(chains), http = 0, tcp = 0;

	for (i = 0; i <= n; i++) {
		yaml_node_t *c = i < n ? proxy__at(j, chains, i) : proxy__get(j, l, "defaultFilterChain");
		yaml_node_t *fs = proxy__get(j, c, "filters");

		for (k = 0; k < proxy__len(fs); k++) {
			int kind = proxy__filter_kind(j, proxy__at(j, fs, k));

			http += kind == 1;
			tcp += kind == 2;
		}
	}
	if (http)
		return tcp ? "HTTP+TCP" : "HTTP";
	return tcp ? "TCP" : "UNKNOWN";
}

static bool proxy__endpoint_keep(const struct proxy__opts *o, const char *ip, unsigned port, const char *cluster,
				 const char *status);

/* One lbEndpoint of a ClusterLoadAssignment as the endpoint table and its
 * filters read it; status is the EDS health, Envoy's default (UNKNOWN)
 * served as healthy. */
struct proxy__ep {
	yaml_node_t *lb;
	const char *addr, *port, *status;
};

/* Calls fn for every lbEndpoint of assignment e, in order, until fn
 * returns false; returns false when fn stopped the walk. */
static bool proxy__each_endpoint(struct proxy__json *j, yaml_node_t *e,
				 bool (*fn)(void *ctx, const struct proxy__ep *ep), void *ctx)
{
	yaml_node_t *eps = proxy__get(j, e, "endpoints");
	size_t i, k;

	for (i = 0; i < proxy__len(eps); i++) {
		yaml_node_t *lbs = proxy__get(j, proxy__at(j, eps, i), "lbEndpoints");

		for (k = 0; k < proxy__len(lbs); k++) {
			struct proxy__ep ep;
			yaml_node_t *sa;
			const char *h;

			ep.lb = proxy__at(j, lbs, k);
			sa = proxy__path(j, ep.lb, "endpoint.address.socketAddress");
			ep.addr = proxy__str(proxy__get(j, sa, "address"));
			ep.port = proxy__str(proxy__get(j, sa, "portValue"));
			h = proxy__str(proxy__get(j, ep.lb, "healthStatus"));
			ep.status = h && strcmp(h, "UNKNOWN") ? h : "HEALTHY";
			if (!fn(ctx, &ep))
				return false;
		}
	}
	return true;
}

/* proxy__keep's walk: stops at the first endpoint the filters keep. */
struct proxy__keep_ctx {
	const struct proxy__opts *o;
	const char *cluster;
};

static bool proxy__keep_ep(void *ctx, const struct proxy__ep *ep)
{
	const struct proxy__keep_ctx *k = ctx;

	return !proxy__endpoint_keep(k->o, ep->addr, ep->port ? (unsigned)strtoul(ep->port, NULL, 10) : 0, k->cluster,
				     ep->status);
}

/* Whether resource res of section s passes the filters (endpoints are
 * filtered one by one in their rows; a ClusterLoadAssignment passes here
 * when one of its endpoints does). */
static bool proxy__keep(struct proxy__json *j, const struct proxy__opts *o, enum proxy__section s, yaml_node_t *res)
{
	switch (s) {
	case PROXY_CLUSTERS:
		return proxy__cluster_keep(o, proxy__str(proxy__get(j, res, "name")));
	case PROXY_LISTENERS: {
		const char *addr = proxy__str(proxy__path(j, res, "address.socketAddress.address"));
		const char *port = proxy__str(proxy__path(j, res, "address.socketAddress.portValue"));

		if (o->address && (!addr || strcasecmp(addr, o->address)))
			return false;
		if (o->port && (!port || strtoul(port, NULL, 10) != o->port))
			return false;
		return !o->ltype || !strcasecmp(proxy__listener_type(j, res), o->ltype);
	}
	case PROXY_ROUTES: {
		const char *name = proxy__str(proxy__get(j, res, "name"));

		return !o->name || (name && !strcmp(name, o->name));
	}
	case PROXY_ENDPOINTS: {
		struct proxy__keep_ctx k = { o, proxy__str(proxy__get(j, res, "clusterName")) };

		/* kept when any of its endpoints is: the walk stopped there */
		return !proxy__each_endpoint(j, res, proxy__keep_ep, &k);
	}
	default:
		return true;
	}
}

/* istioctl's EndpointFilter.Verify (writer/envoy/clusters): address (the
 * IP) and cluster compared without case, the port exactly, the status by
 * its HealthStatus name. */
static bool proxy__endpoint_keep(const struct proxy__opts *o, const char *ip, unsigned port, const char *cluster,
				 const char *status)
{
	if (o->address && (!ip || strcasecmp(ip, o->address)))
		return false;
	if (o->port && port != o->port)
		return false;
	if (o->cluster && (!cluster || strcasecmp(cluster, o->cluster)))
		return false;
	return !o->status || (status && !strcasecmp(status, o->status));
}

/* Endpoints as meshd sent them: their EDS health; whether the proxy
 * ejected one is live state only the proxy knows (--admin reads it), so
 * OUTLIER CHECK is "-" here rather than a guess. */
struct proxy__row_ctx {
	struct proxy__json *j;
	const struct proxy__opts *o;
	const char *cluster;
	struct proxy__table *t;
};

static bool proxy__endpoint_row(void *ctx, const struct proxy__ep *ep)
{
	const struct proxy__row_ctx *c = ctx;
	const char *addr = ep->addr, *row[4];
	char cell[PROXY_MAX_CELL];

	if (!proxy__endpoint_keep(c->o, addr, ep->port ? (unsigned)strtoul(ep->port, NULL, 10) : 0, c->cluster,
				  ep->status))
		return true;
	if (!addr)
		addr = proxy__str(proxy__path(c->j, ep->lb, "endpoint.address.pipe.path"));
	snprintf(cell, sizeof(cell), "%s%s%s", addr ? addr : "?", ep->port ? ":" : "", ep->port ? ep->port : "");
	row[0] = cell;
	row[1] = ep->status;
	row[2] = "-";
	row[3] = c->cluster;
	proxy__table_row(c->t, row);
	return true;
}

static void proxy__endpoint_rows(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
				 yaml_node_t *e, struct proxy__table *t)
{
	struct proxy__row_ctx c = { j, o, proxy__str(proxy__get(j, e, "clusterName")), t };

	(void)item;
	(void)proxy__each_endpoint(j, e, proxy__endpoint_row, &c);
}

/* istioctl's secret columns, and the certificate's identity: VALID CERT,
 * SERIAL NUMBER, NOT AFTER, NOT BEFORE from the first certificate of the
 * chain (or of the CA), which config dumps carry in the clear; "-" when
 * the dump has none (an older meshd shows names and versions only). */
static void proxy__secret_rows(struct proxy__json *j, const struct proxy__opts *o, yaml_node_t *item,
				 yaml_node_t *s, struct proxy__table *t)
{
	yaml_node_t *tc = proxy__get(j, s, "tlsCertificate"), *vc = proxy__get(j, s, "validationContext");
	const char *pem = tc ? proxy__str(proxy__get(j, proxy__get(j, tc, "certificateChain"), "inlineBytes")) :
		     vc ? proxy__str(proxy__get(j, proxy__get(j, vc, "trustedCa"), "inlineBytes")) : NULL;
	struct certinfo ci;
	const char *row[9];
	int have = pem && certinfo_from_b64(pem, &ci) == 0;

	(void)o;
	row[0] = proxy__str(proxy__get(j, item, "name"));
	if (!row[0])
		row[0] = proxy__str(proxy__get(j, s, "name"));
	row[1] = tc ? "Cert Chain" : vc ? "CA" : NULL;
	row[2] = "ACTIVE";
	row[3] = have ? (ci.valid ? "true" : "false") : "-";
	row[4] = have ? ci.serial : "-";
	row[5] = have ? ci.not_after : "-";
	row[6] = have ? ci.not_before : "-";
	row[7] = have && ci.identity[0] ? ci.identity : "-";
	row[8] = proxy__str(proxy__get(j, item, "versionInfo"));
	proxy__table_row(t, row);
}

static const struct {
	proxy__rows_fn rows;
	size_t ncols;
	const char *header[9];
} proxy__views[PROXY_N] = {
	[PROXY_LISTENERS] = { proxy__listener_rows, 5, { "NAME", "ADDRESS", "PORT", "MATCH", "DESTINATION" } },
	[PROXY_ROUTES] = { proxy__route_rows, 5, { "NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION" } },
	[PROXY_CLUSTERS] = { proxy__cluster_rows, 5, { "SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE" } },
	[PROXY_ENDPOINTS] = { proxy__endpoint_rows, 4, { "ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER" } },
	[PROXY_SECRETS] = { proxy__secret_rows, 9,
			    { "RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE",
			      "IDENTITY", "VERSION" } },
};

enum proxy__fmt { PROXY_FMT_TABLE, PROXY_FMT_JSON, PROXY_FMT_YAML };

/* Whether JSON text for a string would read back as another type if
 * written plain in YAML (a number, a boolean, null, or empty). */
static bool proxy__yaml_needs_quotes(const char *v, size_t n)
{
	static const char *const words[] = { "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", NULL };

	if (!n || strchr("0123456789+-.", v[0]))
		return true;
	return n <= 5 && proxy__one_of(v, words);
}

/*
 * Print JSON text as YAML in block style, as istioctl's -o yaml does
 * (sigs.k8s.io/yaml over the JSON).  The libyaml document loaded from the
 * JSON is restyled and handed to the emitter, which frees it.  0 or a
 * negative code (message on stderr).
 */
static int proxy__print_yaml(const struct mesh_buf *b)
{
	struct proxy__json j;
	yaml_emitter_t e;
	yaml_node_t *n;
	int rc;

	rc = proxy__json_load(&j, "output", b);
	if (rc < 0)
		goto out;
	for (n = j.doc.nodes.start; n < j.doc.nodes.top; n++) {
		if (n->type == YAML_MAPPING_NODE)
			n->data.mapping.style = YAML_BLOCK_MAPPING_STYLE;
		else if (n->type == YAML_SEQUENCE_NODE)
			n->data.sequence.style = YAML_BLOCK_SEQUENCE_STYLE;
		else if (n->type == YAML_SCALAR_NODE && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			/* JSON strings: plain where that still reads as a string */
			n->data.scalar.style = proxy__yaml_needs_quotes((const char *)n->data.scalar.value,
									n->data.scalar.length) ?
						       YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
	}
	if (!yaml_emitter_initialize(&e)) {
		rc = -ENOMEM;
		goto out;
	}
	yaml_emitter_set_output_file(&e, stdout);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	/* dump takes the document, emitted or not */
	j.loaded = false;
	if (!yaml_emitter_open(&e) || !yaml_emitter_dump(&e, &j.doc) || !yaml_emitter_close(&e)) {
		fprintf(stderr, "meshctl: writing YAML: %s\n", e.problem ? e.problem : "error");
		rc = -EIO;
	}
	yaml_emitter_delete(&e);
out:
	proxy__json_cleanup(&j);
	return rc;
}

/* Print JSON text b in format fmt (json: as is).  0 or negative. */
static int proxy__print_doc(struct mesh_buf *b, enum proxy__fmt fmt)
{
	if (b->err) {
		fprintf(stderr, "meshctl: output too large\n");
		return b->err;
	}
	if (fmt == PROXY_FMT_YAML)
		return proxy__print_yaml(b);
	fputs(b->data ? b->data : "", stdout);
	return 0;
}

/* One host of a proxy's live /clusters. */
struct proxy__host {
	const char *cluster, *host, *ip, *status;
	unsigned port;
	bool failed;            /* ejected by outlier detection */
};

static int proxy__host_cmp(const void *a, const void *b)
{
	const struct proxy__host *x = a, *y = b;
	int c = strcmp(x->ip, y->ip);

	/* istioctl's order: address, port, cluster */
	if (c)
		return c;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return strcmp(x->cluster, y->cluster);
}

/*
 * The endpoints section from a proxy's live admin /clusters, as istioctl's
 * proxy-config endpoints reads Envoy's (writer/envoy/clusters): STATUS is
 * the EDS health (UNHEALTHY for failed_eds_health, DEGRADED for
 * degraded_eds_health, else HEALTHY) and OUTLIER CHECK FAILED when the host
 * is ejected (failed_outlier_check).  Reads Envoy's text form, one line per
 * host and stat, "CLUSTER::HOST::health_flags::FLAGS", which meshproxy and
 * Envoy both serve.  -o json/yaml: Envoy's ClusterStatus shape for the
 * hosts that pass the filters.  0 or a negative code (message on stderr).
 */
static int proxy__admin_endpoints(const struct proxy__opts *o, enum proxy__fmt fmt)
{
	static const char *const header[] = { "ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER" };
	static const char marker[] = "::health_flags::";
	struct proxy__host *hs = NULL, *nh;
	struct proxy__table t;
	struct mesh_buf body, b;
	size_t n = 0, cap = 0, i;
	char *line, *next;
	int rc;

	mesh_buf_init(&body, PROXY_MAX_BODY);
	mesh_buf_init(&b, PROXY_MAX_BODY);
	rc = proxy__fetch(o->admin, "/clusters", &body);
	if (rc < 0)
		goto out;
	for (line = body.data; line && *line; line = next) {
		char *m, *sep, *colon, *flags;
		struct proxy__host h = { 0 };

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		m = strstr(line, marker);
		sep = strstr(line, "::");
		if (!m || sep == m)
			continue;
		/* cluster names hold no "::"; the host may (an IPv6 address) */
		*sep = '\0';
		*m = '\0';
		flags = m + sizeof(marker) - 1;
		h.cluster = line;
		h.host = h.ip = sep + 2;
		colon = strrchr(sep + 2, ':');
		if (colon && colon != sep + 2) {
			h.port = (unsigned)strtoul(colon + 1, NULL, 10);
			*colon = '\0';
			if (h.ip[0] == '[' && colon[-1] == ']') {
				h.ip++;
				colon[-1] = '\0';
			}
		}
		h.status = strstr(flags, "/failed_eds_health") ? "UNHEALTHY" :
			   strstr(flags, "/degraded_eds_health") ? "DEGRADED" : "HEALTHY";
		h.failed = strstr(flags, "/failed_outlier_check") != NULL;
		if (!proxy__endpoint_keep(o, h.ip, h.port, h.cluster, h.status))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nh = realloc(hs, cap * sizeof(*hs));
			if (!nh) {
				rc = -ENOMEM;
				fprintf(stderr, "meshctl: out of memory\n");
				goto out;
			}
			hs = nh;
		}
		hs[n++] = h;
	}
	if (fmt != PROXY_FMT_TABLE) {
		/* /clusters order: a cluster's hosts are together */
		mesh_buf_putc(&b, '[');
		for (i = 0; i < n; i++) {
			bool first = !i || strcmp(hs[i - 1].cluster, hs[i].cluster);

			if (first) {
				mesh_buf_puts(&b, i ? "]}," : "");
				mesh_buf_puts(&b, "{\"name\":");
				json_put_string(&b, hs[i].cluster);
				mesh_buf_puts(&b, ",\"host_statuses\":[");
			} else {
				mesh_buf_putc(&b, ',');
			}
			mesh_buf_puts(&b, "{\"address\":{\"socket_address\":{\"address\":");
			json_put_string(&b, hs[i].ip);
			mesh_buf_printf(&b, ",\"port_value\":%u}},\"health_status\":{\"eds_health_status\":\"%s\"%s}}",
					hs[i].port, hs[i].status, hs[i].failed ? ",\"failed_outlier_check\":true" : "");
		}
		mesh_buf_puts(&b, n ? "]}]\n" : "]\n");
		rc = proxy__print_doc(&b, fmt);
		goto out;
	}
	if (n)
		qsort(hs, n, sizeof(*hs), proxy__host_cmp);
	proxy__table_init(&t, 4, header);
	for (i = 0; i < n; i++) {
		char ep[PROXY_MAX_CELL];
		const char *row[4];

		/* the host as the proxy names it: "IP:PORT", "[V6]:PORT" */
		if (hs[i].port)
			snprintf(ep, sizeof(ep), "%s:%u", hs[i].ip, hs[i].port);
		else
			snprintf(ep, sizeof(ep), "%s", hs[i].ip);
		row[0] = ep;
		row[1] = hs[i].status;
		row[2] = hs[i].failed ? "FAILED" : "OK";
		row[3] = hs[i].cluster;
		proxy__table_row(&t, row);
	}
	rc = proxy__table_print(&t);
out:
	free(hs);
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&b);
	return rc;
}

/* Print section s as a table (or its resources as a JSON or YAML array),
 * keeping the resources that pass the filters. */
static int proxy__print_section(struct proxy__json *j, const struct proxy__opts *o, enum proxy__section s,
				enum proxy__fmt fmt)
{
	yaml_node_t *sec = proxy__section(j, s);
	struct proxy__table t;
	struct mesh_buf b;
	size_t l, i, n = 0;
	int rc = 0;

	if (fmt != PROXY_FMT_TABLE) {
		mesh_buf_init(&b, PROXY_MAX_BODY);
		mesh_buf_putc(&b, '[');
		for (l = 0; l < 2; l++) {
			yaml_node_t *list = proxy__get(j, sec, proxy__sections[s].lists[l]);

			for (i = 0; i < proxy__len(list); i++) {
				yaml_node_t *item = proxy__at(j, list, i);

				if (!proxy__keep(j, o, s, proxy__resource(j, s, item)))
					continue;
				if (n++)
					mesh_buf_putc(&b, ',');
				proxy__to_json(j, item, &b);
			}
		}
		mesh_buf_puts(&b, "]\n");
		rc = proxy__print_doc(&b, fmt);
		mesh_buf_cleanup(&b);
		return rc;
	}
	proxy__table_init(&t, proxy__views[s].ncols, proxy__views[s].header);
	for (l = 0; l < 2; l++) {
		yaml_node_t *list = proxy__get(j, sec, proxy__sections[s].lists[l]);

		for (i = 0; i < proxy__len(list); i++) {
			yaml_node_t *item = proxy__at(j, list, i);
			yaml_node_t *res = proxy__resource(j, s, item);

			if (proxy__keep(j, o, s, res))
				proxy__views[s].rows(j, o, item, res, &t);
		}
	}
	/* dump order: routes match first to last, so their order is meaning */
	return proxy__table_print(&t);
}

static void proxy__config_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl proxy-config TYPE PROXY_ID [--meshd ADDR] [-o short|json|yaml] [FILTERS]\n"
		"       meshctl proxy-config TYPE --admin HOST:PORT [-o short|json|yaml] [FILTERS]\n"
		"\n"
		"What one proxy was sent, as istioctl proxy-config prints it.  TYPE is\n"
		"listeners, routes, clusters, endpoints, secrets or all (each in turn).\n"
		"\n"
		"  PROXY_ID            the proxy's node id, as meshctl proxy-status lists it;\n"
		"                      read from meshd's /debug/config_dump?proxyID=PROXY_ID\n"
		"  --meshd ADDR        meshd's --http-addr (default " PROXY_DEFAULT_MESHD ")\n"
		"  --admin HOST:PORT   read a meshproxy's (or Envoy's) admin /config_dump instead;\n"
		"                      endpoints then come from its live /clusters: STATUS is the\n"
		"                      EDS health, OUTLIER CHECK FAILED for an ejected host (from\n"
		"                      meshd, OUTLIER CHECK is \"-\": only the proxy knows)\n"
		"  -o short|json|yaml  the table (default), or the resources as JSON or YAML\n"
		"                      (for all without filters: the whole config dump)\n"
		"\n"
		"Filters, as istioctl's (a bad value or a filter given twice exits 2):\n"
		"  clusters    --fqdn FQDN --port N --subset S --direction inbound|outbound\n"
		"              (each a part of the name DIRECTION|PORT|SUBSET|FQDN)\n"
		"  listeners   --port N --address IP --type HTTP|TCP|HTTP+TCP\n"
		"  routes      --name NAME (the route configuration's)\n"
		"  endpoints   --cluster NAME --port N --address IP\n"
		"              --status healthy|unhealthy|degraded|draining|timeout|unknown\n"
		"\n"
		"Secrets show istioctl's columns (VALID CERT, SERIAL NUMBER, NOT AFTER,\n"
		"NOT BEFORE) and the certificate's SPIFFE IDENTITY; private keys are\n"
		"redacted in every config dump meshd serves.\n");
}

int proxy_config_main(int argc, char **argv)
{
	struct proxy__opts o = { 0 };
	struct proxy__json j = { 0 };
	struct mesh_buf body, path;
	enum proxy__fmt fmt = PROXY_FMT_TABLE;
	const char *type, *src;
	int s = -1, rc, k;

	mesh_buf_init(&body, PROXY_MAX_BODY);
	mesh_buf_init(&path, PROXY_MAX_PATH);
	rc = proxy__parse("proxy-config", argc, argv, &o, true);
	if (rc == 0 && (o.npos < 1 || (!o.admin && o.npos < 2))) {
		fprintf(stderr, "meshctl proxy-config: %s\n", o.npos < 1 ? "TYPE is required" :
			"PROXY_ID is required (meshctl proxy-status lists them), or --admin HOST:PORT");
		rc = -EINVAL;
	}
	if (rc == 0) {
		type = o.pos[0];
		/* istioctl's short forms too: listener, route, cluster, endpoint, secret */
		for (k = 0; k < PROXY_N; k++) {
			size_t nl = strlen(proxy__sections[k].name);

			if (!strcmp(type, proxy__sections[k].name) ||
			    (strlen(type) + 1 == nl && !strncmp(type, proxy__sections[k].name, nl - 1)))
				s = k;
		}
		if (s < 0 && strcmp(type, "all") != 0) {
			fprintf(stderr, "meshctl proxy-config: unknown TYPE \"%s\": want listeners, routes, clusters, "
				"endpoints, secrets or all\n", type);
			rc = -EINVAL;
		}
	}
	if (rc == 0)
		rc = proxy__check_filters(&o, s);
	if (rc != 0) {
		proxy__config_usage(rc == 1 ? stdout : stderr);
		rc = rc == 1 ? PROXY_EXIT_OK : PROXY_EXIT_USAGE;
		goto out;
	}
	if (o.output && !strcmp(o.output, "json"))
		fmt = PROXY_FMT_JSON;
	else if (o.output && !strcmp(o.output, "yaml"))
		fmt = PROXY_FMT_YAML;
	rc = PROXY_EXIT_FAIL;
	if (o.admin) {
		src = o.admin;
		mesh_buf_puts(&path, "/config_dump");
	} else {
		src = o.meshd;
		mesh_buf_puts(&path, "/debug/config_dump?proxyID=");
		proxy__urlencode(&path, o.pos[1]);
	}
	if (path.err) {
		fprintf(stderr, "meshctl proxy-config: PROXY_ID too long\n");
		goto out;
	}
	if (proxy__fetch(src, path.data, &body) < 0)
		goto out;
	/* checked before anything prints: a server answering 200 to every
	 * path (not a proxy's admin port) must not pass for an empty proxy */
	if (proxy__json_load(&j, path.data, &body) < 0 || !proxy__get(&j, proxy__root(&j), "configs")) {
		fprintf(stderr, "meshctl: %s%s: no \"configs\" (not an Envoy config dump)\n", src, path.data);
		if (o.admin)
			fprintf(stderr, "meshctl proxy-config: --admin %s does not look like a proxy's admin port\n",
				o.admin);
		goto out;
	}
	/* a proxy's endpoints are its live /clusters, not its config */
	if (s == PROXY_ENDPOINTS && o.admin) {
		rc = proxy__admin_endpoints(&o, fmt) < 0 ? PROXY_EXIT_FAIL : PROXY_EXIT_OK;
		goto out;
	}
	if (s < 0 && fmt != PROXY_FMT_TABLE && !proxy__any_filter(&o)) {
		rc = proxy__print_doc(&body, fmt) < 0 ? PROXY_EXIT_FAIL : PROXY_EXIT_OK;
		goto out;
	}
	rc = PROXY_EXIT_OK;
	for (k = 0; k < PROXY_N; k++) {
		if (s >= 0 && k != s)
			continue;
		if (s < 0 && fmt == PROXY_FMT_TABLE)
			printf("%s%s:\n", k ? "\n" : "", proxy__sections[k].name);
		if (k == PROXY_ENDPOINTS && o.admin) {
			if (proxy__admin_endpoints(&o, fmt) < 0)
				rc = PROXY_EXIT_FAIL;
		} else if (proxy__print_section(&j, &o, (enum proxy__section)k, fmt) < 0) {
			rc = PROXY_EXIT_FAIL;
		}
	}
out:
	proxy__json_cleanup(&j);
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&path);
	return rc;
}

/* ---------------------------------------------------------------- telemetry */

static void proxy__telemetry_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl telemetry PROXY_ID [--meshd ADDR]\n"
		"\n"
		"Print the effective Telemetry (telemetry.istio.io) of one workload, as\n"
		"meshd merges the mesh, namespace and workload objects: PROXY_ID is a node\n"
		"id or POD.NAMESPACE (meshd's /debug/telemetryz, JSON).\n");
}

int proxy_telemetry_main(int argc, char **argv)
{
	struct proxy__opts o = { 0 };
	struct mesh_buf body, path;
	int rc;

	mesh_buf_init(&body, PROXY_MAX_BODY);
	mesh_buf_init(&path, 4096);
	rc = proxy__parse("telemetry", argc, argv, &o, false);
	if (rc != 0 || o.npos != 1) {
		if (rc == 0)
			fprintf(stderr, "meshctl telemetry: one PROXY_ID is required\n");
		proxy__telemetry_usage(rc == 1 ? stdout : stderr);
		rc = rc == 1 ? PROXY_EXIT_OK : PROXY_EXIT_USAGE;
		goto out;
	}
	rc = PROXY_EXIT_FAIL;
	mesh_buf_puts(&path, "/debug/telemetryz?proxyID=");
	proxy__urlencode(&path, o.pos[0]);
	if (path.err) {
		fprintf(stderr, "meshctl telemetry: PROXY_ID too long\n");
		goto out;
	}
	if (proxy__fetch(o.meshd, path.data, &body) < 0)
		goto out;
	fputs(body.data, stdout);
	rc = PROXY_EXIT_OK;
out:
	mesh_buf_cleanup(&body);
	mesh_buf_cleanup(&path);
	return rc;
}
