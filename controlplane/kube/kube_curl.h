/*
 * kube_curl.h - libcurl, loaded when the Kubernetes source first needs it.
 *
 * meshd talks to the Kubernetes API with libcurl, and only in Kubernetes
 * mode; linked normally, libcurl and the libraries it depends on
 * (Kerberos, LDAP, SASL, SSH, RTMP, PSL, brotli, zstd, ...) were mapped
 * and relocated in file mode too: ~1.5 MB of meshd's RSS for nothing.
 * So meshd does not link libcurl: kube_curl.c defines the libcurl
 * functions the control plane calls, with libcurl's names and prototypes
 * (<curl/curl.h> stays the interface, with its compile-time type checks),
 * each forwarding to the real one from libcurl.so.4, which is dlopen()ed
 * on the first call.  The kube code calls curl_*() as before.
 *
 * Until libcurl is loaded, and when it cannot be, the forwarding
 * functions fail the way libcurl reports failures (CURLE_FAILED_INIT,
 * CURLM_INTERNAL_ERROR, NULL), and the reason is logged once.
 */
#ifndef MESH_KUBE_CURL_H
#define MESH_KUBE_CURL_H

#include <curl/curl.h>

/* The soname loaded (Debian's libcurl4). */
#define KUBE_CURL_SONAME "libcurl.so.4"

/* Load libcurl now (once; any thread).  Returns 0, or -ENOENT when the
 * library cannot be opened, -ENOSYS when it lacks a function meshd calls
 * (both logged).  kube_client_new() calls it to fail early and clearly. */
int kube_curl_load(void);

#endif
