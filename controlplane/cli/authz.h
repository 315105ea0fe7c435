/*
 * authz.h - "meshctl authz": ask whether a request would be allowed.
 *
 *   meshctl authz check -f CONFIG --namespace NS --labels k=v,... --path P ...
 *
 * Loads the configuration as meshd does (file source, store, model),
 * compiles the workload's AuthorizationPolicies into the RBAC filters meshd
 * serves and evaluates the request over them.
 * Returns the process exit status: 0 allowed, 1 denied, 2 usage or
 * configuration error.
 */
#ifndef MESH_CLI_AUTHZ_H
#define MESH_CLI_AUTHZ_H

int authz_main(int argc, char **argv);

#endif
