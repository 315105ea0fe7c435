/*
 * host.c - the one wildcard host matcher of the control plane (config.h
 * cfg_host_covers).
 *
 * Three copies of this rule used to live in decode.c (Istio's symmetric
 * host.Name.Matches, for duplicate hosts), store.c (DestinationRule
 * lookups when checking references) and model.c (VirtualService and
 * DestinationRule lookups, with a specificity score).  The Sidecar's
 * egress hosts need it too; one helper keeps them from drifting apart.
 */
#include "controlplane/config/config.h"

#include <string.h>
#include <strings.h>

bool cfg_host_covers(const char *pattern, const char *host, size_t *score)
{
	size_t pl = strlen(pattern), hl = strlen(host), sc = 0;

	if (strcasecmp(pattern, host) == 0)
		sc = 100000;
	else if (pl == 1 && pattern[0] == '*')
		sc = 1;
	else if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.' && hl > pl - 1 &&
		 strcasecmp(host + hl - (pl - 1), pattern + 1) == 0)
		/* "*.example.com" covers "a.example.com", "a.b.example.com"
		 * and "*.b.example.com"; a longer suffix is more specific */
		sc = 1 + pl;
	if (score)
		*score = sc;
	return sc != 0;
}
