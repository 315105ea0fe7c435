/*
 * kubeinject.h - "meshctl kube-inject": istioctl kube-inject for meshd.
 *
 * Reads Kubernetes YAML or JSON (-f FILE, - for stdin), injects the
 * sidecar into every Pod and into the pod template of every Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job (and CronJob's job template)
 * with the webhook's own code (controlplane/inject/), and prints each
 * document as JSON (valid YAML; `kubectl apply -f` takes it), other kinds
 * unchanged.  Returns the exit status (0, 1 an input it cannot inject,
 * 2 usage).
 */
#ifndef MESH_CLI_KUBEINJECT_H
#define MESH_CLI_KUBEINJECT_H

int kube_inject_main(int argc, char **argv);

#endif
