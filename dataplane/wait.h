/*
 * wait.h - "meshproxy wait": Istio's `pilot-agent wait`, the postStart hook
 * the injector gives istio-proxy under holdApplicationUntilProxyStarts
 * (controlplane/inject/): poll the health port's /healthz/ready until it
 * answers 200, so the kubelet starts the app containers only once the
 * proxy is ready.  A process of its own (the proxy's loop never waits).
 *
 *   meshproxy wait [--url http://127.0.0.1:15021/healthz/ready]
 *                  [--timeout-seconds 60] [--period-millis 500]
 *
 * Returns the exit status: 0 ready, 1 not ready in time, 2 usage.
 */
#ifndef MESH_DATAPLANE_WAIT_H
#define MESH_DATAPLANE_WAIT_H

int meshproxy_wait_main(int argc, char **argv);

#endif
