/*
 * config_int.h - private header of controlplane/config (not for other folders).
 *
 * The parser works in three passes over one YAML document:
 *   node.c    libyaml events -> a generic node tree (cfg__node) with the
 *             line/column of every node, caps on size and depth;
 *   schema.c  the CRDs compiled in from crd-schemas/ -> schema trees, and
 *             structural validation of a node tree against them;
 *   decode.c  node tree -> typed structs of config.h, plus Istio's semantic
 *             checks.
 * config.c drives them and owns cfg_object / cfg_error / cfg_parse_result.
 * Errors of one document are collected through a cfg__ectx, which carries
 * the identity of the document and the field path being looked at.
 */
#ifndef MESH_CONFIG_INT_H
#define MESH_CONFIG_INT_H

#include "controlplane/config/config.h"
#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

/* ------------------------------------------------------------- node tree */

enum cfg__type { CFG__NULL, CFG__BOOL, CFG__INT, CFG__FLOAT, CFG__STR, CFG__MAP, CFG__SEQ };

struct cfg__node {
	enum cfg__type type;
	int line, col;               /* 1-based, in the whole input */
	char *str;                   /* scalar text as written (all scalars); NULL for collections */
	size_t len;
	int64_t i;                   /* CFG__INT */
	double f;                    /* CFG__FLOAT, and CFG__INT as double */
	bool b;                      /* CFG__BOOL */
	struct cfg__node **k;        /* CFG__MAP keys (scalars) */
	struct cfg__node **v;        /* CFG__MAP values, CFG__SEQ items */
	size_t n;
	size_t weight;               /* nodes below and including this one, aliases expanded */
	int height;                  /* nesting levels, aliases expanded */
};

struct cfg__yaml_error {
	char msg[256];
	int line, col;
};

/* Called once per document; root is never NULL (an empty document is a
 * CFG__NULL node).  Return < 0 to stop. */
typedef int (*cfg__doc_fn)(void *ctx, struct cfg__node *root);

/* Parse every document of data into nodes allocated from a.  line0 is added
 * to every line number (data may be a slice of a larger input).  Returns 0,
 * -MESH_EPARSE or -MESH_ETOOBIG (err filled in), -ENOMEM, or what fn
 * returned. */
int cfg__yaml_parse(struct arena *a, const char *data, size_t len, int line0,
		    cfg__doc_fn fn, void *ctx, struct cfg__yaml_error *err);

/* The value under key in a map (also a CFG__NULL node); NULL when absent or
 * when map is not a map. */
const struct cfg__node *cfg__node_get(const struct cfg__node *map, const char *key);
/* Like cfg__node_get, but NULL also for explicit null values. */
const struct cfg__node *cfg__node_field(const struct cfg__node *map, const char *key);
/* Compact JSON, keys in source order. */
void cfg__node_json(struct mesh_buf *b, const struct cfg__node *n);

/* ------------------------------------------------------------- errors */

#define CFG__PATH_MAX 512
#define CFG__MAX_ERRORS_PER_DOC 32

struct cfg__ectx {
	struct cfg_parse_result *res;
	const char *origin;
	int kind;                    /* -1 when unknown */
	const char *api_version, *ns, *name;
	char path[CFG__PATH_MAX];
	size_t plen;
	size_t n_errors;             /* errors of this document (any rejects it) */
	size_t n_warnings;           /* warnings of this document (reject nothing) */
	bool oom;
};

/* Field path: push returns a mark for cfg__path_pop. */
size_t cfg__path_key(struct cfg__ectx *e, const char *key);
size_t cfg__path_idx(struct cfg__ectx *e, size_t i);
void cfg__path_pop(struct cfg__ectx *e, size_t mark);
/* Record an error at node at (position) with the current path. */
void cfg__error(struct cfg__ectx *e, const struct cfg__node *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record a warning (Istio's Validation warnings): printed wherever errors
 * are, the object is kept. */
void cfg__warn(struct cfg__ectx *e, const struct cfg__node *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------- schemas */

struct cfg__schema;

#define CFG__MAX_VERSIONS 4

struct cfg__crd {
	char *group, *kind, *list_kind;
	char *versions[CFG__MAX_VERSIONS];
	bool served[CFG__MAX_VERSIONS];
	const struct cfg__schema *schema[CFG__MAX_VERSIONS];
	size_t n_versions;
};

/* The CRDs compiled in, parsed once (thread-safe).  Returns 0 or < 0. */
int cfg__crds(const struct cfg__crd **out, size_t *n);
/* Validate document root (a map) against s; apiVersion, kind and metadata
 * at the top are left to the caller. */
void cfg__schema_validate(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *root);

/* ------------------------------------------------------------- decode */

/* Fill o->spec from the validated document and run the semantic checks;
 * errors go to e.  Allocates from o->arena. */
void cfg__decode(struct cfg__ectx *e, struct cfg_object *o, const struct cfg__node *root);
/* The same for the core Kubernetes kinds (decode_k8s.c). */
void cfg__decode_k8s(struct cfg__ectx *e, struct cfg_object *o, const struct cfg__node *root);

/* A finding about Gateway o at field (source line/col, 0 when unknown):
 * 0, or -ENOMEM to stop. */
typedef int (*cfg__gw_finding_fn)(void *ctx, const struct cfg_object *o, const char *field, int line, int col,
				  const char *msg);
/* The checks between the Gateways among objs and with the other objects
 * (gwcheck.c: istioctl analyze's ConflictingGateways, SecretAnalyzer and
 * VirtualService GatewayAnalyzer, the servers istiod's mergeGateways
 * skips), one call of fn per finding, all warnings.  objs is sorted by
 * (kind, namespace, name) as the store's served view is.  Returns the
 * number of findings or -ENOMEM. */
int cfg__gateway_checks(const struct cfg_object *const *objs, size_t n, cfg__gw_finding_fn fn, void *ctx);

/* Host names and addresses, shared with the reference checks. */
bool cfg__is_ip(const char *s);
bool cfg__is_cidr(const char *s);
bool cfg__is_dns1123_label(const char *s);

#endif
