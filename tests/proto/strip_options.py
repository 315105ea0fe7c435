#!/usr/bin/python3
"""Copy a tree of .proto files, dropping every bracketed field option.

Usage: strip_options.py SRC_DIR DST_DIR

The Envoy protos shipped with @grpc/grpc-js-xds carry validation options
([(validate.rules)...]) written against a newer protoc-gen-validate than the
one shipped beside them, so protoc rejects some of them. Field options do not
change a field's number, name, type, label or oneof, which is all the
comparison looks at, so they are removed: outside comments and string
literals, every balanced [ ... ] run is dropped.
"""
import os
import sys


def strip(src):
    out = []
    i, n, depth = 0, len(src), 0
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            if depth == 0:
                out.append(src[i:j])
            i = j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            if depth == 0:
                out.append(src[i:j])
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            if depth == 0:
                out.append(src[i:j + 1])
            i = j + 1
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(c)
        i += 1
    return "".join(out)


def main(argv):
    if len(argv) != 3:
        print("usage: strip_options.py SRC_DIR DST_DIR", file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    count = 0
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".proto"):
                continue
            p = os.path.join(root, f)
            q = os.path.join(dst, os.path.relpath(p, src))
            os.makedirs(os.path.dirname(q), exist_ok=True)
            with open(p, encoding="utf-8") as fin, open(q, "w", encoding="utf-8") as fout:
                fout.write(strip(fin.read()))
            count += 1
    if count == 0:
        print("strip_options: no .proto files under %s" % src, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
