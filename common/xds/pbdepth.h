/*
 * pbdepth.h - how deep a protobuf message nests, read from its wire bytes
 * before libprotobuf-c unpacks it.
 *
 * protobuf_c_message_unpack() recurses once per nested message with no
 * limit, so a peer can overflow the stack with a small message (a
 * google.protobuf.Struct 3,000 levels deep is ~20 KB).  pbdepth_check() walks
 * the same bytes without recursion (an explicit stack of at most
 * PBDEPTH_HARD_MAX frames), driven by the message descriptor: only fields the
 * descriptor names as messages are descended into; unknown fields, strings,
 * bytes and packed scalars are skipped, as protobuf-c keeps them flat.
 *
 * The limit callers use, PBDEPTH_LIMIT, is 100: the default recursion limit
 * of the C++ protobuf runtime (io::CodedInputStream), which Envoy and gRPC
 * C++ decode with, so nothing a real Envoy or gRPC client sends or accepts is
 * deeper.  (Go's protobuf, istiod's, allows 10,000; protobuf-c overflows an
 * 8 MiB stack somewhere past 2,000.)
 */
#ifndef MESH_COMMON_XDS_PBDEPTH_H
#define MESH_COMMON_XDS_PBDEPTH_H

#include "common/err.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define PBDEPTH_LIMIT 100
/* the largest max_depth pbdepth_check() accepts (its stack is this big) */
#define PBDEPTH_HARD_MAX 256

/* Follow google.protobuf.Any: an Any's value is walked as the message its
 * type_url names (pbjson_lookup()), its levels counted on top of the Any's;
 * an Any of an unknown type is skipped, and so is the rest of a value whose
 * bytes are broken (it will not decode on its own, and the holder refuses it
 * then, as for any resource that does not decode). */
#define PBDEPTH_FOLLOW_ANY 0x1
/* Also refuse, with -ERANGE, a google.protobuf.Duration that Envoy refuses
 * where it reads one (DurationUtil's validateDuration: "Expected positive
 * duration" for negative seconds or nanos, "Duration out-of-range" for
 * seconds past PBDEPTH_DURATION_MAX_SECONDS or nanos past 999,999,999), so
 * that no converter to milliseconds sees one (seconds * 1000 overflowed). */
#define PBDEPTH_CHECK_DURATIONS 0x2
/* protobuf's TimeUtil::kDurationMaxSeconds (10,000 years) */
#define PBDEPTH_DURATION_MAX_SECONDS 315576000000LL

/*
 * Walk data (len bytes) as a desc message.  The top message is level 0; a
 * message field inside it level 1, and so on.  Returns 0 when no message
 * lies deeper than max_depth (<= PBDEPTH_HARD_MAX), -MESH_ETOOBIG when one
 * does, -MESH_EPARSE when the wire format is broken (a truncated varint or
 * length, a length past its enclosing message, a group or reserved wire type:
 * protobuf-c would refuse those too), -ERANGE for a Duration out of range
 * (with PBDEPTH_CHECK_DURATIONS), -EINVAL for bad arguments.  *depth_out,
 * when not NULL, receives the deepest level seen (up to the point it stopped).
 */
MESH_MUST_CHECK int pbdepth_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
				  unsigned max_depth, unsigned flags, unsigned *depth_out);

#endif
