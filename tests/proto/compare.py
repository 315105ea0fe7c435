#!/usr/bin/python3
"""Compare our proto/ tree against upstream descriptors, field by field.

Usage: compare.py OURS.pb UPSTREAM.pb [--ours-root proto]

OURS.pb and UPSTREAM.pb are FileDescriptorSets (protoc --include_imports). For
every message and enum declared in a file of our tree, the same full name must
exist upstream with, for each of our fields: the same number, name, type,
label, type name and oneof (by oneof name); for each of our enum values: the
same name and number. Our files must also sit at upstream's path and package.
Messages absent upstream are allowed only when listed in PINNED (checked
against inline expectations instead). Exit 0 when everything matches.
"""
import sys

from google.protobuf import descriptor_pb2

F = descriptor_pb2.FieldDescriptorProto
TYPE_NAMES = {v: k[5:].lower() for k, v in F.Type.items()}
LABEL_NAMES = {v: k[6:].lower() for k, v in F.Label.items()}

# Istio's CA API is not shipped with the Envoy protos: pin it here.
# full message name -> {field name: (number, type, label, type_name)}
PINNED = {
    "istio.v1.auth.IstioCertificateRequest": {
        "csr": (1, "string", "optional", ""),
        "validity_duration": (3, "int64", "optional", ""),
        "metadata": (4, "message", "optional", ".google.protobuf.Struct"),
    },
    "istio.v1.auth.IstioCertificateResponse": {
        "cert_chain": (1, "string", "repeated", ""),
    },
    # istio/proxy source/extensions/filters/http/istio_stats/config.proto
    # (the istio.stats filters' typed_config), not in the Envoy protos either
    "stats.MetricConfig": {
        "dimensions": (1, "message", "repeated", ".stats.MetricConfig.DimensionsEntry"),
        "name": (2, "string", "optional", ""),
        "tags_to_remove": (3, "string", "repeated", ""),
        "match": (4, "string", "optional", ""),
        "drop": (5, "bool", "optional", ""),
    },
    "stats.MetricConfig.DimensionsEntry": {
        "key": (1, "string", "optional", ""),
        "value": (2, "string", "optional", ""),
    },
    "stats.PluginConfig": {
        "disable_host_header_fallback": (6, "bool", "optional", ""),
        "tcp_reporting_duration": (7, "message", "optional", ".google.protobuf.Duration"),
        "metrics": (8, "message", "repeated", ".stats.MetricConfig"),
        "reporter": (10, "enum", "optional", ".stats.Reporter"),
    },
}
# enums of pinned files: full name -> {value name: number}
PINNED_ENUMS = {
    "stats.Reporter": {"UNSPECIFIED": 0, "SERVER_GATEWAY": 1},
}
# OTLP (opentelemetry-proto) is not shipped with the Envoy protos either:
# the messages meshproxy's OTLP/HTTP exporter writes, pinned from
# opentelemetry-proto's common/v1, resource/v1, trace/v1, collector/trace/v1.
_OTC = ".opentelemetry.proto.common.v1."
_OTT = ".opentelemetry.proto.trace.v1."
PINNED.update({
    "opentelemetry.proto.common.v1.AnyValue": {
        "string_value": (1, "string", "optional", ""),
        "bool_value": (2, "bool", "optional", ""),
        "int_value": (3, "int64", "optional", ""),
        "double_value": (4, "double", "optional", ""),
        "array_value": (5, "message", "optional", _OTC + "ArrayValue"),
        "kvlist_value": (6, "message", "optional", _OTC + "KeyValueList"),
        "bytes_value": (7, "bytes", "optional", ""),
    },
    "opentelemetry.proto.common.v1.ArrayValue": {"values": (1, "message", "repeated", _OTC + "AnyValue")},
    "opentelemetry.proto.common.v1.KeyValueList": {"values": (1, "message", "repeated", _OTC + "KeyValue")},
    "opentelemetry.proto.common.v1.KeyValue": {
        "key": (1, "string", "optional", ""),
        "value": (2, "message", "optional", _OTC + "AnyValue"),
    },
    "opentelemetry.proto.common.v1.InstrumentationScope": {
        "name": (1, "string", "optional", ""),
        "version": (2, "string", "optional", ""),
        "attributes": (3, "message", "repeated", _OTC + "KeyValue"),
        "dropped_attributes_count": (4, "uint32", "optional", ""),
    },
    "opentelemetry.proto.resource.v1.Resource": {
        "attributes": (1, "message", "repeated", _OTC + "KeyValue"),
        "dropped_attributes_count": (2, "uint32", "optional", ""),
    },
    "opentelemetry.proto.trace.v1.ResourceSpans": {
        "resource": (1, "message", "optional", ".opentelemetry.proto.resource.v1.Resource"),
        "scope_spans": (2, "message", "repeated", _OTT + "ScopeSpans"),
        "schema_url": (3, "string", "optional", ""),
    },
    "opentelemetry.proto.trace.v1.ScopeSpans": {
        "scope": (1, "message", "optional", _OTC + "InstrumentationScope"),
        "spans": (2, "message", "repeated", _OTT + "Span"),
        "schema_url": (3, "string", "optional", ""),
    },
    "opentelemetry.proto.trace.v1.Span": {
        "trace_id": (1, "bytes", "optional", ""),
        "span_id": (2, "bytes", "optional", ""),
        "trace_state": (3, "string", "optional", ""),
        "parent_span_id": (4, "bytes", "optional", ""),
        "flags": (16, "fixed32", "optional", ""),
        "name": (5, "string", "optional", ""),
        "kind": (6, "enum", "optional", _OTT + "Span.SpanKind"),
        "start_time_unix_nano": (7, "fixed64", "optional", ""),
        "end_time_unix_nano": (8, "fixed64", "optional", ""),
        "attributes": (9, "message", "repeated", _OTC + "KeyValue"),
        "dropped_attributes_count": (10, "uint32", "optional", ""),
        "status": (15, "message", "optional", _OTT + "Status"),
    },
    "opentelemetry.proto.trace.v1.Status": {
        "message": (2, "string", "optional", ""),
        "code": (3, "enum", "optional", _OTT + "Status.StatusCode"),
    },
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": {
        "resource_spans": (1, "message", "repeated", _OTT + "ResourceSpans"),
    },
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse": {
        "partial_success": (1, "message", "optional",
                            ".opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess"),
    },
    "opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess": {
        "rejected_spans": (1, "int64", "optional", ""),
        "error_message": (2, "string", "optional", ""),
    },
})
# enums of pinned messages: full name -> {value name: number}
PINNED_ENUMS.update({
    "opentelemetry.proto.trace.v1.Span.SpanKind": {
        "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
        "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
    },
    "opentelemetry.proto.trace.v1.Status.StatusCode": {
        "STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
    },
})
PINNED_SERVICES = {
    "istio.v1.auth.IstioCertificateService": {
        "CreateCertificate": (".istio.v1.auth.IstioCertificateRequest",
                              ".istio.v1.auth.IstioCertificateResponse", False, False),
    },
}
# Well-known types come from the same protobuf installation on both sides.
SKIP_PREFIXES = ("google/protobuf/",)


def load(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def walk_messages(prefix, messages, out, fname):
    for m in messages:
        full = prefix + "." + m.name
        out[full] = (m, fname)
        walk_messages(full, m.nested_type, out, fname)


def index(fds):
    """Return (messages, enums, services, files) maps keyed by full name (no leading dot)."""
    msgs, enums, svcs, files = {}, {}, {}, {}
    for f in fds.file:
        files[f.name] = f
        top = {}
        walk_messages(f.package, f.message_type, top, f.name)
        msgs.update(top)
        for e in f.enum_type:
            enums[f.package + "." + e.name] = (e, f.name)
        for full, (m, fname) in top.items():
            for e in m.enum_type:
                enums[full + "." + e.name] = (e, fname)
        for s in f.service:
            svcs[f.package + "." + s.name] = (s, f.name)
    return msgs, enums, svcs, files


def field_sig(m, fl):
    oneof = ""
    if fl.HasField("oneof_index") and not fl.proto3_optional:
        oneof = m.oneof_decl[fl.oneof_index].name
    return (fl.number, TYPE_NAMES[fl.type], LABEL_NAMES[fl.label], fl.type_name, oneof,
            fl.proto3_optional)


def main(argv):
    if len(argv) < 3:
        print("usage: compare.py OURS.pb UPSTREAM.pb", file=sys.stderr)
        return 2
    ours = load(argv[1])
    up = load(argv[2])
    o_msgs, o_enums, o_svcs, o_files = index(ours)
    u_msgs, u_enums, u_svcs, u_files = index(up)
    errors = []
    nmsg = nfield = nenum = nval = 0

    def ours_only(fname):
        return not fname.startswith(SKIP_PREFIXES)

    for fname, f in sorted(o_files.items()):
        if not ours_only(fname):
            continue
        if fname in u_files:
            if u_files[fname].package != f.package:
                errors.append("%s: package %s, upstream %s" % (fname, f.package, u_files[fname].package))
        elif not any(f.package + "." + m.name in PINNED for m in f.message_type):
            errors.append("%s: no upstream file at this path" % fname)

    for full, (m, fname) in sorted(o_msgs.items()):
        if not ours_only(fname):
            continue
        nmsg += 1
        if full in PINNED:
            want = PINNED[full]
            for fl in m.field:
                nfield += 1
                got = (fl.number, TYPE_NAMES[fl.type], LABEL_NAMES[fl.label], fl.type_name)
                if fl.name not in want:
                    errors.append("%s.%s: not in the pinned upstream definition" % (full, fl.name))
                elif got != want[fl.name]:
                    errors.append("%s.%s: %s, upstream %s" % (full, fl.name, got, want[fl.name]))
            continue
        if full not in u_msgs:
            errors.append("%s: no such message upstream" % full)
            continue
        um, ufname = u_msgs[full]
        if ufname != fname:
            errors.append("%s: declared in %s, upstream in %s" % (full, fname, ufname))
        if m.options.map_entry != um.options.map_entry:
            errors.append("%s: map entry mismatch" % full)
        ubyname = {fl.name: fl for fl in um.field}
        seen = set()
        for fl in m.field:
            nfield += 1
            if fl.number in seen:
                errors.append("%s.%s: duplicate number %d" % (full, fl.name, fl.number))
            seen.add(fl.number)
            ufl = ubyname.get(fl.name)
            if ufl is None:
                errors.append("%s.%s: no such field upstream" % (full, fl.name))
                continue
            a, b = field_sig(m, fl), field_sig(um, ufl)
            if a != b:
                errors.append("%s.%s: (number, type, label, type_name, oneof, optional) = %s, upstream %s"
                              % (full, fl.name, a, b))

    for full, (e, fname) in sorted(o_enums.items()):
        if not ours_only(fname):
            continue
        nenum += 1
        if full in PINNED_ENUMS:
            for v in e.value:
                nval += 1
                if PINNED_ENUMS[full].get(v.name) != v.number:
                    errors.append("enum %s.%s = %d, pinned %s" % (full, v.name, v.number,
                                                                 PINNED_ENUMS[full].get(v.name)))
            continue
        if full not in u_enums:
            errors.append("enum %s: no such enum upstream" % full)
            continue
        uvals = {v.name: v.number for v in u_enums[full][0].value}
        for v in e.value:
            nval += 1
            if v.name not in uvals:
                errors.append("enum %s.%s: no such value upstream" % (full, v.name))
            elif uvals[v.name] != v.number:
                errors.append("enum %s.%s = %d, upstream %d" % (full, v.name, v.number, uvals[v.name]))

    for full, (s, fname) in sorted(o_svcs.items()):
        if full in PINNED_SERVICES:
            want = PINNED_SERVICES[full]
            for meth in s.method:
                got = (meth.input_type, meth.output_type, meth.client_streaming, meth.server_streaming)
                if want.get(meth.name) != got:
                    errors.append("service %s.%s: %s, pinned %s" % (full, meth.name, got, want.get(meth.name)))
            continue
        if full not in u_svcs:
            errors.append("service %s: no such service upstream" % full)
            continue
        umeth = {mm.name: mm for mm in u_svcs[full][0].method}
        for meth in s.method:
            um = umeth.get(meth.name)
            got = (meth.input_type, meth.output_type, meth.client_streaming, meth.server_streaming)
            if um is None:
                errors.append("service %s.%s: no such method upstream" % (full, meth.name))
            elif got != (um.input_type, um.output_type, um.client_streaming, um.server_streaming):
                errors.append("service %s.%s: signature differs from upstream" % (full, meth.name))

    for e in errors:
        print("MISMATCH " + e)
    print("proto: %d messages, %d fields, %d enums, %d enum values checked, %d mismatches"
          % (nmsg, nfield, nenum, nval, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
