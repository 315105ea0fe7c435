/*
 * kube_config.h - where the Kubernetes API is and how to authenticate.
 *
 * Two ways, as client-go does:
 *  - in-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the
 *    service-account directory (token, ca.crt, namespace), by default
 *    KUBE_CONFIG_SA_DIR; the token is a file because the kubelet rotates it
 *    (the client re-reads it when it changes, see kube_client.h);
 *  - a kubeconfig file (YAML): current-context (or a named one) -> the
 *    cluster's server, certificate-authority(-data), tls-server-name,
 *    insecure-skip-tls-verify, and the user's token, tokenFile,
 *    client-certificate(-data), client-key(-data).  Relative paths are
 *    relative to the kubeconfig's directory.  exec / auth-provider plugins
 *    are not supported (an error names them).
 *
 * Functions return 0 or a negative code (err.h); on failure `why` (when
 * given) holds a sentence naming the file and the field.
 */
#ifndef MESH_KUBE_CONFIG_H
#define MESH_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define KUBE_CONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_CONFIG_MAX_BYTES (4u << 20)  /* a kubeconfig, a token, a CA bundle */
#define KUBE_CONFIG_WHY_MAX 512

struct kube_config {
	char *server;                /* "https://10.0.0.1:443", no trailing '/' */
	char *tls_server_name;       /* SNI / name to verify; NULL: from server */
	char *ca_file;               /* PEM bundle path, or */
	char *ca_data;               /* PEM bytes (decoded certificate-authority-data) */
	size_t ca_data_len;
	bool insecure;               /* insecure-skip-tls-verify */
	char *token;                 /* a fixed bearer token, or */
	char *token_file;            /* a token file, re-read when it changes */
	char *cert_file, *key_file;  /* client certificate and key (PEM paths), or */
	char *cert_data, *key_data;  /* their PEM bytes */
	size_t cert_data_len, key_data_len;
	char *ns;                    /* the context's / pod's namespace; "default" */
};

/* Read a kubeconfig.  context NULL: current-context. */
int kube_config_from_kubeconfig(const char *path, const char *context, struct kube_config *out,
				char *why, size_t why_cap);
/* In-cluster.  sa_dir NULL: KUBE_CONFIG_SA_DIR.  Needs the environment
 * variables and the token file; ca.crt and namespace are optional. */
int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *why, size_t why_cap);
void kube_config_cleanup(struct kube_config *c);
/* Deep copy; 0 or -ENOMEM. */
int kube_config_copy(struct kube_config *dst, const struct kube_config *src);

/* Read a whole small file (at most KUBE_CONFIG_MAX_BYTES) into a malloc'd
 * NUL-terminated buffer.  0 or < 0. */
int kube_config_read_file(const char *path, char **data, size_t *len);

#endif
