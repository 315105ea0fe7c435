/*
 * rbac.h - moved to controlplane/gen/rbac.h (the generators' directory).
 *
 * Kept only so that rbac_eval.h, which another change is moving to
 * common/xds/, still builds; include controlplane/gen/rbac.h instead.
 * Delete once nothing includes this path.
 */
#ifndef MESH_XDS_RBAC_FWD_H
#define MESH_XDS_RBAC_FWD_H

#include "controlplane/gen/rbac.h"

#endif
