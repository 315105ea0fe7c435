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
 *
 * Only a successful read deletes.  A directory that cannot be listed (the
 * root moved away, EACCES, EMFILE) or a file that cannot be read keeps the
 * objects it gave at the last good read: "cannot read" never looks like
 * "empty".  Each such failure is logged and counted
 * (meshd_config_read_failures_total).  A watch on the root's parent notices
 * the root coming back.
 *
 * Directories are read once per walk, told apart by device and inode, so a
 * symlink back into the tree (`loop -> .`) or two links to one directory do
 * not read files twice; real directories are entered before symlinked ones,
 * so a file keeps its real path.  Depth is bounded (FILE_SOURCE_MAX_DEPTH).
 */
#include "controlplane/file/source.h"

#include "common/err.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"
#include "controlplane/metrics/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_SOURCE_MAX_FILES 100000
#define FILE_SOURCE_MAX_DEPTH 16
#define FILE_SOURCE_MAX_DIRS 10000
#define FILE_SOURCE_WATCH_MASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | \
				IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)

struct file_entry {
	char *path;
	uint64_t hash;
	int seen;
	/* the file's stat at its last read and when that read began
	 * (CLOCK_REALTIME): an unchanged stat of a file last changed well
	 * before that read is not read again (see file_unchanged()) */
	struct stat st;
	struct timespec read_at;
	int have_st;
	size_t n_objects;         /* objects its last applied read gave */
};

struct file_dir_id {
	dev_t dev;
	ino_t ino;
};

struct file_source {
	char *dir;
	char *base;  /* the root's last path component, for the parent's events */
	struct cfg_store *store;
	int ifd;
	int parent_wd; /* watch on the root's parent, -1 when none */
	struct file_entry *files;
	size_t n_files, cap_files;
	struct file_dir_id *dirs; /* directories entered in this walk */
	size_t n_dirs, cap_dirs;
	unsigned read_failures;   /* in this walk */
	size_t n_objects, max_objects; /* objects the applied files gave; the cap */
	size_t find_next;         /* where find_file() starts: walks visit files in the same order */
};

/*
 * Watch the root's parent for the root's own name coming and going (a
 * `mv dir dir.moved` and back, a ConfigMap-style swap of the whole root):
 * the watch on the root follows its inode wherever it moves.  Best effort:
 * without it meshd still keeps the last good state, it only notices the
 * return later.  Returns 0 or -ENOMEM.
 */
static int watch_parent(struct file_source *fs)
{
	char *copy, *slash, *parent;
	size_t l;
	int rc = 0;

	copy = strdup(fs->dir);
	if (!copy)
		return -ENOMEM;
	l = strlen(copy);
	while (l > 1 && copy[l - 1] == '/')
		copy[--l] = '\0';
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		parent = slash == copy ? "/" : copy;
		fs->base = strdup(slash + 1);
	} else {
		parent = ".";
		fs->base = strdup(copy);
	}
	if (!fs->base) {
		rc = -ENOMEM;
		goto out;
	}
	if (fs->base[0] && strcmp(fs->base, ".") != 0 && strcmp(fs->base, "..") != 0)
		fs->parent_wd = inotify_add_watch(fs->ifd, parent,
						  IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR);
out:
	free(copy);
	return rc;
}

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
	fs->max_objects = cfg->max_objects ? cfg->max_objects : CFG_MAX_OBJECTS_PER_SOURCE;
	fs->parent_wd = -1;
	fs->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fs->ifd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = watch_parent(fs);
	if (rc < 0)
		goto fail;
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
	free(fs->dirs);
	free(fs->base);
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

/* The entry of path, or NULL.  Each walk lists the tree in the same
 * order, so the search starts after the entry found last and wraps: one
 * comparison per file in a walk, not one per file already known (at 1,000
 * files the walk of every change made half a million). */
static struct file_entry *find_file(struct file_source *fs, const char *path)
{
	size_t i, k;

	for (k = 0; k < fs->n_files; k++) {
		i = (fs->find_next + k) % fs->n_files;
		if (strcmp(fs->files[i].path, path) == 0) {
			fs->find_next = i + 1;
			return &fs->files[i];
		}
	}
	return NULL;
}

/*
 * Whether fe can be taken as unchanged without reading it: st (this walk's
 * stat) shows the same inode, size, modification and status-change times
 * as at its last read, and that status change happened at least a second
 * before the read began.  The second is for coarse file timestamps: a file
 * written again within the same clock tick as the read before keeps its
 * times, so such a file is read every walk until its last change is old
 * enough (git's "racily clean" entries).  Saves reading the whole tree on
 * every change (1,000 files for one edited).
 */
static bool file_unchanged(const struct file_entry *fe, const struct stat *st)
{
	const struct stat *o = &fe->st;

	if (!fe->have_st || o->st_dev != st->st_dev || o->st_ino != st->st_ino || o->st_size != st->st_size ||
	    o->st_mtim.tv_sec != st->st_mtim.tv_sec || o->st_mtim.tv_nsec != st->st_mtim.tv_nsec ||
	    o->st_ctim.tv_sec != st->st_ctim.tv_sec || o->st_ctim.tv_nsec != st->st_ctim.tv_nsec)
		return false;
	return st->st_ctim.tv_sec + 1 < fe->read_at.tv_sec ||
	       (st->st_ctim.tv_sec + 1 == fe->read_at.tv_sec && st->st_ctim.tv_nsec < fe->read_at.tv_nsec);
}

/* Read the file (st: its stat in this walk) and, when its bytes changed,
 * parse it into the store. */
static int load_file(struct file_source *fs, const char *path, const struct stat *st, int *changed)
{
	struct file_entry *fe = find_file(fs, path);
	struct cfg_parse_result res;
	struct timespec read_at;
	off_t st_size;
	uint64_t h;
	char *data = NULL;
	size_t len = 0;
	int rc = 0;

	if (fe && file_unchanged(fe, st)) {
		fe->seen = 1;
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &read_at);
	rc = mesh_read_file(path, CFG_MAX_FILE_BYTES, &data, &len);
	if (rc == -MESH_ETOOBIG) {
		/* let the parser produce the error that names the limit */
		st_size = (off_t)len;
		len = 0;
		h = mesh_hash(&st_size, sizeof(st_size));
		rc = 0;
	} else if (rc < 0) {
		/* unreadable is not deleted: a file that is still there keeps
		 * the objects of its last good read (ENOENT: it just went) */
		if (fe && rc != -ENOENT)
			fe->seen = 1;
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
		fe->have_st = 0;
		fe->n_objects = 0;
		fs->n_files++;
	}
	fe->seen = 1;
	if (fe->hash == h) {
		/* (a failed parse below leaves have_st unset: read again) */
		fe->st = *st;
		fe->read_at = read_at;
		fe->have_st = 1;
		goto out;
	}
	fe->have_st = 0;
	memset(&res, 0, sizeof(res));
	if (data)
		rc = cfg_parse_buffer(path, data, len, &res);
	else
		rc = cfg_parse_file(path, &res);
	if (rc >= 0) {
		/* a warning keeps its object: only errors count as rejected */
		size_t i, n_objects = res.n_objects, n_errors = 0, n_warnings = 0;
		for (i = 0; i < res.n_errors; i++) {
			char msg[1024];
			cfg_error_format(&res.errors[i], msg, sizeof(msg));
			if (res.errors[i].warning) {
				n_warnings++;
				log_warn("config", "%s", msg);
			} else {
				n_errors++;
				log_error("config", "rejected: %s", msg);
			}
		}
		if (fs->n_objects - fe->n_objects + n_objects > fs->max_objects) {
			/* applied, the source would hold more than its cap: keep
			 * what the file gave before (have_st stays 0: read again) */
			log_error("file", "%s: %zu objects would make the config source hold %zu, over the limit "
				  "of %zu objects per source (--max-objects-per-source); keeping the %zu objects "
				  "it gave at its last good read", path, n_objects,
				  fs->n_objects - fe->n_objects + n_objects, fs->max_objects, fe->n_objects);
			metrics_limit(METRICS_LIMIT_OBJECTS_PER_SOURCE);
			fs->read_failures++;
			metrics_config_read_failure();
			cfg_parse_result_cleanup(&res);
			rc = 0;
			goto out;
		}
		rc = cfg_store_apply_origin(fs->store, path, &res);
		if (rc >= 0) {
			fs->n_objects = fs->n_objects - fe->n_objects + n_objects;
			fe->n_objects = n_objects;
			*changed += rc;
			fe->hash = h;
			fe->st = *st;
			fe->read_at = read_at;
			fe->have_st = 1;
			log_info("file", "%s: %zu objects, %zu rejected, %zu warnings, %d changed", path,
				 n_objects, n_errors, n_warnings, rc);
			rc = 0;
		}
	}
	cfg_parse_result_cleanup(&res);
out:
	free(data);
	return rc;
}

/* Keep what path (a file, or a directory and everything under it) gave at
 * its last good read: it could not be read in this walk. */
static void keep_under(struct file_source *fs, const char *path)
{
	size_t i, l = strlen(path);

	for (i = 0; i < fs->n_files; i++) {
		const char *p = fs->files[i].path;

		if (strncmp(p, path, l) == 0 && (p[l] == '\0' || p[l] == '/'))
			fs->files[i].seen = 1;
	}
}

static void read_failed(struct file_source *fs, const char *path, int err)
{
	log_warn("file", "cannot read %s: %s; keeping the configuration it gave at its last good read", path,
		 strerror(err));
	fs->read_failures++;
	metrics_config_read_failure();
	keep_under(fs, path);
}

/* Note a directory as entered in this walk.  Returns 1 when it was new, 0
 * when this walk already entered it, -ENOMEM, -MESH_ETOOBIG. */
static int enter_dir(struct file_source *fs, const struct stat *st)
{
	size_t i;

	for (i = 0; i < fs->n_dirs; i++)
		if (fs->dirs[i].dev == st->st_dev && fs->dirs[i].ino == st->st_ino)
			return 0;
	if (fs->n_dirs >= FILE_SOURCE_MAX_DIRS)
		return -MESH_ETOOBIG;
	if (fs->n_dirs == fs->cap_dirs) {
		size_t cap = fs->cap_dirs ? fs->cap_dirs * 2 : 16;
		struct file_dir_id *nd = realloc(fs->dirs, cap * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		fs->dirs = nd;
		fs->cap_dirs = cap;
	}
	fs->dirs[fs->n_dirs].dev = st->st_dev;
	fs->dirs[fs->n_dirs].ino = st->st_ino;
	fs->n_dirs++;
	return 1;
}

/*
 * Read the directory dir (already stat()ed into st) and what is under it.
 * Returns 0, or -ENOMEM (fatal for the walk).  A directory that cannot be
 * listed is a read failure (its known files kept); one already entered in
 * this walk (a symlink loop, a second link) or too deep is skipped and
 * reported, so files under it only count where they were first read.
 */
static int scan_dir(struct file_source *fs, const char *dir, const struct stat *dst, int depth, int *changed)
{
	struct dirent **ents = NULL;
	unsigned char *linked = NULL;
	int n = 0, i, pass, rc = 0;

	if (depth > FILE_SOURCE_MAX_DEPTH) {
		log_warn("file", "%s: deeper than %d directories under %s; not read", dir, FILE_SOURCE_MAX_DEPTH,
			 fs->dir);
		return 0;
	}
	rc = enter_dir(fs, dst);
	if (rc == 0) {
		log_warn("file", "%s: a directory already read under %s (a symlink loop or a second link to it); "
				 "not read again",
			 dir, fs->dir);
		return 0;
	}
	if (rc == -MESH_ETOOBIG) {
		log_error("file", "%s: more than %d directories under %s; not read", dir, FILE_SOURCE_MAX_DIRS,
			  fs->dir);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = 0;
	if (inotify_add_watch(fs->ifd, dir, FILE_SOURCE_WATCH_MASK) < 0)
		log_warn("file", "cannot watch %s: %s", dir, strerror(errno));
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		read_failed(fs, dir, errno);
		n = 0;
		goto out;
	}
	linked = calloc((size_t)n + 1, 1);
	if (!linked) {
		rc = -ENOMEM;
		goto out;
	}
	/* pass 0: files and real directories in name order; pass 1: the
	 * directories reached through a symlink, so a directory linked from
	 * elsewhere in the tree is read under its real path first */
	for (pass = 0; pass < 2 && rc == 0; pass++) {
		for (i = 0; i < n && rc == 0; i++) {
			char path[PATH_MAX];
			struct stat st, lst;

			if (ents[i]->d_name[0] == '.')
				continue; /* hidden, ".", "..", and ConfigMap "..data" internals */
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) >= sizeof(path))
				continue;
			if (pass == 1 && !linked[i])
				continue;
			if (stat(path, &st) < 0) {
				/* gone since the listing, or a dangling symlink: nothing
				 * to keep; anything else (EACCES, ELOOP, EMFILE) is a
				 * failed read */
				if (errno != ENOENT)
					read_failed(fs, path, errno);
				continue;
			}
			if (S_ISDIR(st.st_mode)) {
				if (pass == 0 && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
					linked[i] = 1;
					continue;
				}
				rc = scan_dir(fs, path, &st, depth + 1, changed);
			} else if (pass == 0 && S_ISREG(st.st_mode) && has_config_suffix(ents[i]->d_name)) {
				int r = load_file(fs, path, &st, changed);

				if (r == -ENOMEM)
					rc = r;
				else if (r < 0 && r != -MESH_ETOOBIG && r != -ENOENT)
					read_failed(fs, path, -r);
				else if (r < 0 && r != -MESH_ETOOBIG)
					log_warn("file", "%s: %s", path, mesh_strerror(r));
			}
		}
	}
out:
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(linked);
	return rc;
}

static int reload(struct file_source *fs)
{
	struct stat st;
	int changed = 0, rc;
	size_t i, w;

	for (i = 0; i < fs->n_files; i++)
		fs->files[i].seen = 0;
	fs->n_dirs = 0;
	fs->read_failures = 0;
	rc = stat(fs->dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (rc) {
		/* the root itself is gone or not a directory: keep everything */
		read_failed(fs, fs->dir, rc);
		for (i = 0; i < fs->n_files; i++)
			fs->files[i].seen = 1;
		return 0;
	}
	rc = scan_dir(fs, fs->dir, &st, 0, &changed);
	if (rc == -ENOMEM)
		return rc;
	for (i = 0, w = 0; i < fs->n_files; i++) {
		if (!fs->files[i].seen) {
			int r = cfg_store_remove_origin(fs->store, fs->files[i].path);
			fs->n_objects -= fs->files[i].n_objects;
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
		ssize_t r = read(fs->ifd, buf, sizeof(buf)), off;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (off = 0; off + (ssize_t)sizeof(struct inotify_event) <= r;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);

			/* in the root's parent only the root's own name counts */
			if (ev->wd != fs->parent_wd || (ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len && strcmp(ev->name, fs->base) == 0))
				events++;
			off += (ssize_t)sizeof(*ev) + ev->len;
		}
	}
	return events ? 1 : 0;
}
