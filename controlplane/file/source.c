/*
 * source.c - see source.h.
 *
 * Debouncing is the push stage's (one stage for every source): this file
 * only reports that inotify saw something and reads when asked.
 *
 * Each reload walks the tree again (cheap next to parsing) so that renames,
 * ConfigMap symlink swaps and new subdirectories need no special cases: a
 * file whose content hash is unchanged is skipped, a file that vanished has
 * its objects removed, a new subdirectory gets a watch.
 */
#include "controlplane/file/source.h"

#include "common/err.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_SOURCE_MAX_FILES 100000
#define FILE_SOURCE_MAX_DEPTH 16
#define FILE_SOURCE_WATCH_MASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | \
				IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)

struct file_entry {
	char *path;
	uint64_t hash;
	int seen;
};

struct file_source {
	char *dir;
	struct cfg_store *store;
	int ifd;
	struct file_entry *files;
	size_t n_files, cap_files;
};

int file_source_new(const struct file_source_config *cfg, struct file_source **out)
{
	struct file_source *fs;
	struct stat st;
	int rc;

	if (stat(cfg->dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->ifd = -1;
	fs->dir = strdup(cfg->dir);
	if (!fs->dir) {
		rc = -ENOMEM;
		goto fail;
	}
	fs->store = cfg->store;
	fs->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fs->ifd < 0) {
		rc = -errno;
		goto fail;
	}
	*out = fs;
	return 0;
fail:
	file_source_free(fs);
	return rc;
}

void file_source_free(struct file_source *fs)
{
	size_t i;

	if (!fs)
		return;
	if (fs->ifd >= 0)
		close(fs->ifd);
	for (i = 0; i < fs->n_files; i++)
		free(fs->files[i].path);
	free(fs->files);
	free(fs->dir);
	free(fs);
}

int file_source_fd(const struct file_source *fs)
{
	return fs->ifd;
}

static int has_config_suffix(const char *name)
{
	size_t l = strlen(name);

	return (l > 5 && strcmp(name + l - 5, ".yaml") == 0) ||
	       (l > 4 && strcmp(name + l - 4, ".yml") == 0) ||
	       (l > 5 && strcmp(name + l - 5, ".json") == 0);
}

static struct file_entry *find_file(struct file_source *fs, const char *path)
{
	size_t i;

	for (i = 0; i < fs->n_files; i++)
		if (strcmp(fs->files[i].path, path) == 0)
			return &fs->files[i];
	return NULL;
}

/* Read the file and, when its bytes changed, parse it into the store. */
static int load_file(struct file_source *fs, const char *path, int *changed)
{
	struct file_entry *fe = find_file(fs, path);
	struct cfg_parse_result res;
	off_t st_size;
	uint64_t h;
	char *data = NULL;
	size_t len = 0;
	int rc = 0;

	rc = mesh_read_file(path, CFG_MAX_FILE_BYTES, &data, &len);
	if (rc == -MESH_ETOOBIG) {
		/* let the parser produce the error that names the limit */
		st_size = (off_t)len;
		len = 0;
		h = mesh_hash(&st_size, sizeof(st_size));
		rc = 0;
	} else if (rc < 0) {
		return rc;
	} else {
		h = mesh_hash(data, len);
	}
	if (!fe) {
		struct file_entry *nf;
		if (fs->n_files >= FILE_SOURCE_MAX_FILES) {
			log_error("file", "%s: more than %d config files; ignoring the rest", fs->dir,
				  FILE_SOURCE_MAX_FILES);
			rc = -MESH_ETOOBIG;
			goto out;
		}
		if (fs->n_files == fs->cap_files) {
			size_t cap = fs->cap_files ? fs->cap_files * 2 : 16;
			nf = realloc(fs->files, cap * sizeof(*nf));
			if (!nf) {
				rc = -ENOMEM;
				goto out;
			}
			fs->files = nf;
			fs->cap_files = cap;
		}
		fe = &fs->files[fs->n_files];
		fe->path = strdup(path);
		if (!fe->path) {
			rc = -ENOMEM;
			goto out;
		}
		fe->hash = h + 1; /* force a parse */
		fs->n_files++;
	}
	fe->seen = 1;
	if (fe->hash == h)
		goto out;
	memset(&res, 0, sizeof(res));
	if (data)
		rc = cfg_parse_buffer(path, data, len, &res);
	else
		rc = cfg_parse_file(path, &res);
	if (rc >= 0) {
		size_t i, n_objects = res.n_objects, n_errors = res.n_errors;
		for (i = 0; i < res.n_errors; i++) {
			char msg[1024];
			cfg_error_format(&res.errors[i], msg, sizeof(msg));
			if (res.errors[i].warning)
				log_warn("config", "%s", msg);
			else
				log_error("config", "rejected: %s", msg);
		}
		rc = cfg_store_apply_origin(fs->store, path, &res);
		if (rc >= 0) {
			*changed += rc;
			fe->hash = h;
			log_info("file", "%s: %zu objects, %zu rejected, %d changed", path, n_objects,
				 n_errors, rc);
			rc = 0;
		}
	}
	cfg_parse_result_cleanup(&res);
out:
	free(data);
	return rc;
}

static int scan_dir(struct file_source *fs, const char *dir, int depth, int *changed)
{
	struct dirent **ents = NULL;
	int n, i, rc = 0;

	if (depth > FILE_SOURCE_MAX_DEPTH)
		return 0;
	if (inotify_add_watch(fs->ifd, dir, FILE_SOURCE_WATCH_MASK) < 0)
		log_warn("file", "cannot watch %s: %s", dir, strerror(errno));
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		log_warn("file", "cannot read %s: %s", dir, strerror(errno));
		return -errno;
	}
	for (i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		if (ents[i]->d_name[0] == '.')
			continue; /* hidden, ".", "..", and ConfigMap "..data" internals */
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) >= sizeof(path))
			continue;
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			scan_dir(fs, path, depth + 1, changed);
		} else if (S_ISREG(st.st_mode) && has_config_suffix(ents[i]->d_name)) {
			int r = load_file(fs, path, changed);
			if (r < 0 && r != -MESH_ETOOBIG)
				log_warn("file", "%s: %s", path, mesh_strerror(r));
			if (r == -ENOMEM)
				rc = r;
		}
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

static int reload(struct file_source *fs)
{
	int changed = 0, rc;
	size_t i, w;

	for (i = 0; i < fs->n_files; i++)
		fs->files[i].seen = 0;
	rc = scan_dir(fs, fs->dir, 0, &changed);
	if (rc == -ENOMEM)
		return rc;
	for (i = 0, w = 0; i < fs->n_files; i++) {
		if (!fs->files[i].seen) {
			int r = cfg_store_remove_origin(fs->store, fs->files[i].path);
			log_info("file", "%s: removed (%d objects)", fs->files[i].path, r);
			if (r > 0)
				changed += r;
			free(fs->files[i].path);
			continue;
		}
		fs->files[w++] = fs->files[i];
	}
	fs->n_files = w;
	return changed;
}

int file_source_sync(struct file_source *fs)
{
	return reload(fs);
}

int file_source_reload(struct file_source *fs)
{
	return reload(fs);
}

int file_source_handle(struct file_source *fs)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	int events = 0;

	for (;;) {
		ssize_t r = read(fs->ifd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		events++;
	}
	return events ? 1 : 0;
}
