/*
 * model_int.h - private to controlplane/model/: what model.c's index
 * asks of merge.c (Istio's merging of VirtualService delegates and of
 * DestinationRules for one host).
 *
 * Merged objects are new cfg_objects allocated in the model's arena
 * (arena NULL, never reference counted): a shallow copy of the first
 * object with the merged parts replaced; strings and unchanged arrays stay
 * the config objects' (the model holds the snapshot that owns them).  Their
 * hash covers every object merged into them, so generator caches see a
 * change in any of them.  Functions return NULL on out-of-memory.
 */
#ifndef MESH_MODEL_INT_H
#define MESH_MODEL_INT_H

#include "controlplane/model/model.h"

#include <stddef.h>

/* Istio's configCompareByCreationTime: oldest first, then name, then
 * namespace. */
int model__cmp_creation(const struct cfg_object *a, const struct cfg_object *b);

/* root with every http route that delegates replaced by the delegate's
 * routes merged into it (Istio's mergeVirtualServices / MergeHTTPRoutes):
 * delegate routes whose matches conflict with the root route's are left
 * out, a delegate that is missing or not exported to the root's namespace
 * drops that route alone.  Destination hosts of delegate routes are
 * resolved in the delegate's namespace.  Returns root itself when it
 * delegates nothing. */
const struct cfg_object *model__merge_delegates(struct model *m, const struct cfg_object *root);

/* The i-th VirtualService of m's snapshot (cfg->objects[CFG_VIRTUAL_SERVICE])
 * with its delegates merged in, as the model's index keeps it (itself when
 * it delegates nothing); NULL for a delegate (no hosts) or out of range. */
const struct cfg_object *model__vs_merged(const struct model *m, size_t i);

/* Merge `next` into `acc` (NULL to start: returns next itself, no copy;
 * an original config object: merged into a copy in the model's arena):
 * subsets of next whose names acc lacks are appended; acc's top-level
 * trafficPolicy is kept unless acc has none (Istio's mergeDestinationRule,
 * first one wins).  Returns the merged rule (use it in place of acc), or
 * NULL without memory. */
struct cfg_object *model__dr_merge(struct model *m, struct cfg_object *acc, const struct cfg_object *next);

#endif
