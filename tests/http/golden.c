/*
 * golden.c - the declarative HTTP/1.1 codec cases (make http-golden).
 *
 * Each tests/http/NNNN/ holds
 *   input     the bytes, in an escaped text form that keeps them exact:
 *             \r \n \t \0 \\ \xHH are escapes, literal newlines are ignored,
 *             lines starting with '#' are comments (the case's purpose);
 *   expected  the outcome as h1drive prints it (heads, bodies, "end", or
 *             "error STATUS reason");
 *   options   (optional) words: response, head, connect, max-headers N,
 *             max-head-bytes N.
 * A case passes when the input fed whole, fed split at every byte
 * boundary, and fed one byte at a time all give the expected text.
 *
 * Usage: golden DIR [CASE...]   GOLDEN_UPDATE=1 rewrites expected files.
 *        golden --raw FILE        writes an input file's bytes to stdout
 *                                 (the fuzzer's seed corpus)
 */
#include "tests/http/h1drive.h"

#include "dataplane/http1.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		s = malloc((size_t)n + 1);
		if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
			free(s);
			s = NULL;
		}
		if (s) {
			s[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return s;
}

static void parse_options(const char *text, struct h1drive_opts *o)
{
	const char *s = text;
	char word[32];
	int n;
	unsigned long v;

	memset(o, 0, sizeof(*o));
	while (s && sscanf(s, "%31s%n", word, &n) == 1) {
		s += n;
		if (!strcmp(word, "response"))
			o->response = 1;
		else if (!strcmp(word, "head"))
			o->req_flags |= H1_F_HEAD;
		else if (!strcmp(word, "connect"))
			o->req_flags |= H1_F_CONNECT;
		else if (!strcmp(word, "max-headers") && sscanf(s, "%lu%n", &v, &n) == 1) {
			o->max_headers = v;
			s += n;
		} else if (!strcmp(word, "max-head-bytes") && sscanf(s, "%lu%n", &v, &n) == 1) {
			o->max_head_bytes = v;
			s += n;
		} else
			fprintf(stderr, "http-golden: unknown option %s\n", word);
	}
}

static int run_case(const char *dir, const char *name)
{
	char path[4096];
	char *text = NULL, *in = NULL, *opts = NULL, *want = NULL;
	size_t tlen, len, olen, wlen = 0, k, *cuts = NULL;
	struct h1drive_opts o;
	struct mesh_buf whole, split;
	int ok = 0;
	FILE *f;

	mesh_buf_init(&whole, 1u << 26);
	mesh_buf_init(&split, 1u << 26);
	snprintf(path, sizeof(path), "%s/%s/input", dir, name);
	text = slurp(path, &tlen);
	if (!text) {
		printf("FAIL %s: no input\n", name);
		goto out;
	}
	in = h1drive_unescape(text, tlen, &len);
	snprintf(path, sizeof(path), "%s/%s/options", dir, name);
	opts = slurp(path, &olen);
	parse_options(opts, &o);
	if (!in || h1drive_run(in, len, NULL, 0, &o, &whole) < 0) {
		printf("FAIL %s: out of memory\n", name);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s/expected", dir, name);
	if (getenv("GOLDEN_UPDATE")) {
		f = fopen(path, "wb");
		if (f) {
			fwrite(whole.data, 1, whole.len, f);
			fclose(f);
		}
	}
	want = slurp(path, &wlen);
	if (!want || wlen != whole.len || memcmp(want, whole.data, wlen) != 0) {
		printf("FAIL %s: fed whole\n--- got\n%s--- want\n%s", name, whole.data, want ? want : "(no expected file)\n");
		goto out;
	}
	for (k = 1; k < len; k++) {
		mesh_buf_reset(&split);
		if (h1drive_run(in, len, &k, 1, &o, &split) < 0 || split.len != whole.len ||
		    memcmp(split.data, whole.data, whole.len) != 0) {
			printf("FAIL %s: split at byte %zu\n--- got\n%s--- want\n%s", name, k, split.data, whole.data);
			goto out;
		}
	}
	cuts = malloc((len + 1) * sizeof(*cuts));
	if (!cuts)
		goto out;
	for (k = 0; k < len; k++)
		cuts[k] = k + 1;
	mesh_buf_reset(&split);
	if (h1drive_run(in, len, cuts, len, &o, &split) < 0 || split.len != whole.len ||
	    memcmp(split.data, whole.data, whole.len) != 0) {
		printf("FAIL %s: one byte at a time\n--- got\n%s--- want\n%s", name, split.data, whole.data);
		goto out;
	}
	ok = 1;
out:
	free(cuts);
	free(text);
	free(in);
	free(opts);
	free(want);
	mesh_buf_cleanup(&whole);
	mesh_buf_cleanup(&split);
	return ok;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/http";
	char *names[4096];
	size_t n = 0, i;
	int pass = 0, fail = 0;
	struct dirent *d;
	DIR *dh;

	if (argc == 3 && !strcmp(argv[1], "--raw")) {
		size_t tlen, len;
		char *t = slurp(argv[2], &tlen), *raw = t ? h1drive_unescape(t, tlen, &len) : NULL;
		int ok = raw && fwrite(raw, 1, len, stdout) == len;

		free(t);
		free(raw);
		return ok ? 0 : 1;
	}
	if (argc > 2) {
		for (i = 2; i < (size_t)argc; i++)
			run_case(dir, argv[i]) ? pass++ : fail++;
		printf("http-golden: %d passed, %d failed\n", pass, fail);
		return fail ? 1 : 0;
	}
	dh = opendir(dir);
	if (!dh) {
		perror(dir);
		return 2;
	}
	while ((d = readdir(dh)) && n < 4096)
		if (d->d_name[0] >= '0' && d->d_name[0] <= '9')
			names[n++] = strdup(d->d_name);
	closedir(dh);
	qsort(names, n, sizeof(*names), cmp);
	for (i = 0; i < n; i++) {
		if (names[i] && run_case(dir, names[i]))
			pass++;
		else
			fail++;
		free(names[i]);
	}
	printf("http-golden: %d passed, %d failed\n", pass, fail);
	return fail || pass == 0 ? 1 : 0;
}
