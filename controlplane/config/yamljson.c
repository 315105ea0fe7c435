/*
 * yamljson.c - YAML documents as compact JSON (see yamljson.h): node.c
 * parses, cfg__node_json writes.
 */
#include "controlplane/config/yamljson.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "controlplane/config/config_int.h"

#include <errno.h>
#include <stdio.h>

#define YAMLJSON_MAX_ARENA ((size_t)64 << 20)  /* nodes of one input */
#define YAMLJSON_MAX_DOC ((size_t)16 << 20)    /* JSON of one document */

struct yamljson__ctx {
	cfg_json_doc_fn fn;
	void *ctx;
};

static int yamljson__doc(void *ctx, struct cfg__node *root)
{
	struct yamljson__ctx *c = ctx;
	struct mesh_buf b;
	int rc;

	if (root->type == CFG__NULL)
		return 0;
	mesh_buf_init(&b, YAMLJSON_MAX_DOC);
	cfg__node_json(&b, root);
	rc = b.err ? b.err : c->fn(c->ctx, b.data, b.len);
	mesh_buf_cleanup(&b);
	return rc;
}

int cfg_yaml_each_json(const char *data, size_t len, cfg_json_doc_fn fn, void *ctx, char *err, size_t errcap)
{
	struct yamljson__ctx c = { fn, ctx };
	struct cfg__yaml_error ye = { .msg = "" };
	struct arena *a = arena_new(YAMLJSON_MAX_ARENA);
	int rc;

	if (errcap)
		err[0] = '\0';
	if (!a)
		return -ENOMEM;
	rc = cfg__yaml_parse(a, data, len, 0, yamljson__doc, &c, &ye);
	if (rc < 0 && ye.msg[0] && errcap)
		snprintf(err, errcap, "line %d: %s", ye.line, ye.msg);
	arena_free(a);
	return rc;
}
