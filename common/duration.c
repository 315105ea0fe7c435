/*
 * duration.c - see duration.h.
 */
#include "duration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *unit;
	int64_t ns;
} units[] = {
	{ "ns", 1LL },
	{ "us", 1000LL },
	{ "\xc2\xb5s", 1000LL }, /* µs */
	{ "ms", 1000000LL },
	{ "s", 1000000000LL },
	{ "m", 60LL * 1000000000LL },
	{ "h", 3600LL * 1000000000LL },
};

int mesh_duration_parse(const char *s, int64_t *out_ns)
{
	const char *p = s;
	int64_t total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out_ns = 0;
		return 0;
	}
	while (*p) {
		int64_t whole = 0, frac = 0, frac_scale = 1, mult = 0;
		int digits = 0;
		size_t i, best_len = 0;

		while (*p >= '0' && *p <= '9') {
			if (whole > (INT64_MAX - 9) / 10)
				return -EINVAL;
			whole = whole * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (frac_scale < 1000000000LL) {
					frac = frac * 10 + (*p - '0');
					frac_scale *= 10;
				}
				p++;
				digits++;
			}
		}
		if (!digits)
			return -EINVAL;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, l) == 0 && l > best_len) {
				/* "m" must not swallow the "m" of "ms" */
				best_len = l;
				mult = units[i].ns;
			}
		}
		if (!best_len)
			return -EINVAL;
		p += best_len;
		if (whole > INT64_MAX / mult)
			return -EINVAL;
		whole *= mult;
		whole += (int64_t)((double)frac * (double)mult / (double)frac_scale);
		if (total > INT64_MAX - whole)
			return -EINVAL;
		total += whole;
	}
	*out_ns = total;
	return 0;
}

int mesh_duration_format(int64_t ns, char *out, size_t cap)
{
	int64_t sec = ns / 1000000000LL, rem = ns % 1000000000LL;

	if (rem == 0)
		return snprintf(out, cap, "%llds", (long long)sec);
	if (rem % 1000000 == 0)
		return snprintf(out, cap, "%lld.%03llds", (long long)sec, (long long)(rem / 1000000));
	if (rem % 1000 == 0)
		return snprintf(out, cap, "%lld.%06llds", (long long)sec, (long long)(rem / 1000));
	return snprintf(out, cap, "%lld.%09llds", (long long)sec, (long long)rem);
}
