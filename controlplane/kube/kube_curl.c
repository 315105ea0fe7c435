/*
 * kube_curl.c - libcurl's functions, forwarded to libcurl.so.4 loaded on
 * first use (see kube_curl.h for why).
 *
 * Each function here has libcurl's name and prototype; the names are
 * written in parentheses so that <curl/curl.h>'s type-checking macros of
 * the same names do not expand in the definitions.  meshd exports none of
 * them (an executable's symbols are not in the dynamic table unless a
 * library it links references them), so libcurl's own calls never land
 * here.
 */
#include "controlplane/kube/kube_curl.h"

#include "common/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

static struct {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	char *(*easy_escape)(CURL *, const char *, int);
	void (*free)(void *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
	CURLMcode (*multi_wakeup)(CURLM *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
} kc;

#define KC_SYM(f) { "curl_" #f, (void **)&kc.f }
static const struct {
	const char *name;
	void **slot;
} kc_syms[] = {
	KC_SYM(global_init), KC_SYM(global_cleanup), KC_SYM(easy_init), KC_SYM(easy_cleanup),
	KC_SYM(easy_reset), KC_SYM(easy_perform), KC_SYM(easy_setopt), KC_SYM(easy_getinfo),
	KC_SYM(easy_strerror), KC_SYM(easy_escape), KC_SYM(free), KC_SYM(slist_append),
	KC_SYM(slist_free_all), KC_SYM(multi_init), KC_SYM(multi_cleanup), KC_SYM(multi_add_handle),
	KC_SYM(multi_remove_handle), KC_SYM(multi_perform), KC_SYM(multi_poll), KC_SYM(multi_wakeup),
	KC_SYM(multi_info_read),
};

static pthread_once_t kc_once = PTHREAD_ONCE_INIT;
static int kc_rc;

static void kc_load(void)
{
	void *h = dlopen(KUBE_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	size_t i;

	if (!h) {
		log_error("kube", "cannot load %s (the Kubernetes source needs it): %s", KUBE_CURL_SONAME, dlerror());
		kc_rc = -ENOENT;
		return;
	}
	for (i = 0; i < sizeof(kc_syms) / sizeof(kc_syms[0]); i++) {
		*kc_syms[i].slot = dlsym(h, kc_syms[i].name);
		if (!*kc_syms[i].slot) {
			log_error("kube", "%s has no %s", KUBE_CURL_SONAME, kc_syms[i].name);
			kc_rc = -ENOSYS;
			return;
		}
	}
	/* the handle stays open for the process's life */
}

int kube_curl_load(void)
{
	pthread_once(&kc_once, kc_load);
	return kc_rc;
}

CURLcode(curl_global_init)(long flags)
{
	return kube_curl_load() < 0 ? CURLE_FAILED_INIT : kc.global_init(flags);
}

void(curl_global_cleanup)(void)
{
	if (kube_curl_load() == 0)
		kc.global_cleanup();
}

CURL *(curl_easy_init)(void)
{
	return kube_curl_load() < 0 ? NULL : kc.easy_init();
}

void(curl_easy_cleanup)(CURL *h)
{
	if (kube_curl_load() == 0)
		kc.easy_cleanup(h);
}

void(curl_easy_reset)(CURL *h)
{
	if (kube_curl_load() == 0)
		kc.easy_reset(h);
}

CURLcode(curl_easy_perform)(CURL *h)
{
	return kube_curl_load() < 0 ? CURLE_FAILED_INIT : kc.easy_perform(h);
}

/* The third argument's type follows from the option's number, as libcurl
 * itself reads it (CURLOPTTYPE_*). */
CURLcode(curl_easy_setopt)(CURL *h, CURLoption opt, ...)
{
	CURLcode rc;
	va_list ap;

	if (kube_curl_load() < 0)
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = kc.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = kc.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = kc.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = kc.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		rc = kc.easy_setopt(h, opt, va_arg(ap, struct curl_blob *));
	va_end(ap);
	return rc;
}

/* Every CURLINFO takes a pointer to where the value goes. */
CURLcode(curl_easy_getinfo)(CURL *h, CURLINFO info, ...)
{
	CURLcode rc;
	va_list ap;

	if (kube_curl_load() < 0)
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	rc = kc.easy_getinfo(h, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

const char *(curl_easy_strerror)(CURLcode c)
{
	return kube_curl_load() < 0 ? "libcurl is not loaded" : kc.easy_strerror(c);
}

char *(curl_easy_escape)(CURL *h, const char *s, int len)
{
	return kube_curl_load() < 0 ? NULL : kc.easy_escape(h, s, len);
}

void(curl_free)(void *p)
{
	if (kube_curl_load() == 0)
		kc.free(p);
}

struct curl_slist *(curl_slist_append)(struct curl_slist *l, const char *s)
{
	return kube_curl_load() < 0 ? NULL : kc.slist_append(l, s);
}

void(curl_slist_free_all)(struct curl_slist *l)
{
	if (kube_curl_load() == 0)
		kc.slist_free_all(l);
}

CURLM *(curl_multi_init)(void)
{
	return kube_curl_load() < 0 ? NULL : kc.multi_init();
}

CURLMcode(curl_multi_cleanup)(CURLM *m)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_cleanup(m);
}

CURLMcode(curl_multi_add_handle)(CURLM *m, CURL *h)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_add_handle(m, h);
}

CURLMcode(curl_multi_remove_handle)(CURLM *m, CURL *h)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_remove_handle(m, h);
}

CURLMcode(curl_multi_perform)(CURLM *m, int *running)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_perform(m, running);
}

CURLMcode(curl_multi_poll)(CURLM *m, struct curl_waitfd extra[], unsigned int n_extra, int timeout_ms, int *numfds)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_poll(m, extra, n_extra, timeout_ms, numfds);
}

CURLMcode(curl_multi_wakeup)(CURLM *m)
{
	return kube_curl_load() < 0 ? CURLM_INTERNAL_ERROR : kc.multi_wakeup(m);
}

CURLMsg *(curl_multi_info_read)(CURLM *m, int *left)
{
	return kube_curl_load() < 0 ? NULL : kc.multi_info_read(m, left);
}
