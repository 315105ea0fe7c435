/*
 * mesh.c - what the generators read of the mesh config (MeshConfig,
 * controlplane/config/meshcfg.h), in one place: a model without one
 * (tests, golden cases without mesh.yaml) gets Istio's defaults.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"

enum gen_outbound_policy gen_mesh_outbound(const struct model *m)
{
	/* Istio's DefaultMeshConfig: ALLOW_ANY */
	return m && m->mesh && m->mesh->outbound == MESHCFG_REGISTRY_ONLY ? GEN_OUTBOUND_REGISTRY_ONLY :
									   GEN_OUTBOUND_ALLOW_ANY;
}

bool gen_mesh_auto_mtls(const struct model *m)
{
	/* Istio's DefaultMeshConfig: true */
	return !m || !m->mesh || m->mesh->enable_auto_mtls;
}

int64_t gen_mesh_connect_timeout(const struct model *m)
{
	/* Istio's DefaultMeshConfig: 10s */
	return m && m->mesh && m->mesh->connect_timeout > 0 ? m->mesh->connect_timeout : 10LL * 1000000000LL;
}
