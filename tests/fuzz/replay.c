/*
 * replay.c - a main for the libFuzzer targets without libFuzzer: feeds each
 * file named on the command line (or each file of a directory named) to
 * LLVMFuzzerTestOneInput once.  `make fuzz-replay` (part of `make test`)
 * links it with the normal gcc ASan+UBSan build so every corpus is
 * replayed on a machine without clang.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long n;
	int rc = -1;

	if (f == NULL)
		goto out;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* an exact-size copy, so a read past the input is an ASan report */
	p = malloc(n ? (size_t)n : 1);
	if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n)
		goto out;
	LLVMFuzzerTestOneInput(p, (size_t)n);
	rc = 0;
out:
	free(p);
	if (f != NULL)
		fclose(f);
	if (rc != 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	return rc;
}

int main(int argc, char **argv)
{
	int i, n = 0, bad = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *e;
		char path[4096];

		if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
			bad |= replay_file(argv[i]) != 0;
			n++;
			continue;
		}
		d = opendir(argv[i]);
		if (d == NULL) {
			bad = 1;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name) >= sizeof(path))
				continue;
			bad |= replay_file(path) != 0;
			n++;
		}
		closedir(d);
	}
	printf("replay: %s: %d inputs\n", argv[0], n);
	return bad;
}
