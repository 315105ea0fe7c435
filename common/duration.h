/*
 * duration.h - parse the duration strings Istio users write.
 *
 * Accepts Go-style durations as Istio does ("10s", "1.5s", "100ms",
 * "1h30m", "250us", "0s") and protobuf JSON durations ("1.500s").
 * Returns 0 and nanoseconds in *out, or -EINVAL for anything else,
 * including negative values and overflow.
 */
#ifndef MESH_DURATION_H
#define MESH_DURATION_H

#include <stddef.h>
#include <stdint.h>

int mesh_duration_parse(const char *s, int64_t *out_ns);
/* Format as protobuf JSON ("1.500s"); returns the length written. */
int mesh_duration_format(int64_t ns, char *out, size_t cap);

#endif
