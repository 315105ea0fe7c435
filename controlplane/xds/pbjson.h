/* pbjson moved to common/xds/pbjson.h (shared with meshproxy); this
 * forwarding header stays until server.c includes the new path. */
#include "common/xds/pbjson.h"
