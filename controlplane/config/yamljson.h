/*
 * yamljson.h - YAML documents as compact JSON, through the config parser's
 * own libyaml reader (node.c: the same limits, anchors and scalar typing
 * meshd applies to configuration).  For what needs a whole Kubernetes
 * object as JSON: `meshctl kube-inject` (Pods, Deployments) and the
 * proxy.istio.io/config annotation of sidecar injection.
 */
#ifndef MESH_YAMLJSON_H
#define MESH_YAMLJSON_H

#include <stddef.h>

/* Called once per document with its JSON (len bytes, NUL-terminated;
 * valid during the call).  Return < 0 to stop. */
typedef int (*cfg_json_doc_fn)(void *ctx, const char *json, size_t len);

/* Every YAML document of data (len bytes) in order.  Empty documents are
 * skipped.  Returns 0, -MESH_EPARSE / -MESH_ETOOBIG (err gets "line L:
 * reason"), -ENOMEM, or what fn returned. */
int cfg_yaml_each_json(const char *data, size_t len, cfg_json_doc_fn fn, void *ctx, char *err, size_t errcap);

#endif
