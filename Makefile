# meshd — build, run, test, bench.
#
#   make            build build/bin/{meshd,meshctl,meshproxy}: meshd and meshctl
#                   from libcommon.a and libmeshd.a, meshproxy from dataplane/
#                   and libcommon.a only
#   make run        install missing Debian packages, build, serve examples/ on
#                   loopback with its greeter backends (examples/run.sh)
#   make test       install missing Debian packages, build, unit tests (plain and
#                   ASan+UBSan) and integration tests against real peers
#   make bench      benchmarks against the targets in DESIGN.md
#   make http-golden  the HTTP/1.1 codec's declarative cases (tests/http/)
#   make inject-golden  sidecar injection's AdmissionReview cases (tests/inject/)
#   make lb-bench     load balancer pick cost on 1,000 hosts
#   make router-bench the router's ns/match on a 1,000-virtual-host config
#   make fuzz       libFuzzer targets for FUZZ_SECONDS each (clang)
#   make check-layering  include and I/O rules between common/, controlplane/, dataplane/
#   make image      the meshd and meshproxy images with buildah (image-save:
#                   OCI archives; image-test: both run from them answer /ready)
#   make SAN=1 ...  the same under AddressSanitizer + UndefinedBehaviorSanitizer (build/asan)

CC      ?= cc
SAN     ?=
ifeq ($(SAN),1)
BUILD   ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2
endif

# pkg-config packages per binary (as redis's src/Makefile keeps an object list
# per binary): common/ needs only protobuf-c and OpenSSL, so the proxy can link
# without gRPC core, libcurl, libmicrohttpd or libyaml.
# re2: common/re.cc (RE2 behind a C API); only binaries that use it pull
# re.o from libcommon.a, and pkg_libs adds the C++ runtime with re2.  meshd
# and meshctl validate regexes with it (controlplane/config/) and meshctl's
# authz check runs them (common/xds/rbac_eval.c)
COMMON_PKGS    := libprotobuf-c openssl re2
MESHD_PKGS     := grpc libprotobuf-c yaml-0.1 openssl libcurl libmicrohttpd re2
# meshctl: libcurl because authz check builds the jwt_authn filter
# (gen/authn.c -> model/jwks.c), never fetching with it
MESHCTL_PKGS   := grpc libprotobuf-c yaml-0.1 openssl re2 libcurl
MESHPROXY_PKGS := $(COMMON_PKGS) libxxhash libnghttp2
# tests and the benchmark link the control plane library whole
PKGS    := $(MESHD_PKGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
pkg_libs   = $(shell pkg-config --libs $(1))$(if $(filter re2,$(1)), -lstdc++)
PKG_LIBS   = $(call pkg_libs,$(PKGS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

GEN     := $(BUILD)/gen
# V=1 shows full command lines
ifeq ($(V),1)
Q :=
else
Q := @
endif
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(SANFLAGS) -I. -I$(GEN) $(PKG_CFLAGS) -MMD -MP
# common/*.cc (the RE2 wrapper): C++17, the same warnings
CXX     ?= g++
CXXFLAGS ?= $(OPT) -g
CXXFLAGS += -std=c++17 -Wall -Wextra -Werror $(SANFLAGS) -I. $(shell pkg-config --cflags re2) -MMD -MP
GEN_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wno-unused-parameter $(OPT) -g $(SANFLAGS) -I$(GEN) $(PKG_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

# --- protobuf: our own proto/ tree plus the well-known types from libprotobuf-dev
PROTOS  := $(shell find proto -name '*.proto' | sort)
WKT_DIR := /usr/include
WKT     := google/protobuf/any.proto google/protobuf/duration.proto google/protobuf/wrappers.proto \
           google/protobuf/struct.proto google/protobuf/empty.proto google/protobuf/timestamp.proto
PB_C    := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS)) $(patsubst %.proto,$(GEN)/%.pb-c.c,$(WKT))
PB_H    := $(PB_C:.c=.h)
PB_O    := $(PB_C:.c=.o)
# generated sources and headers are kept between runs (pattern-rule outputs are intermediate otherwise)
.SECONDARY: $(PB_C) $(PB_H)

# --- sources and per-binary object lists
# libcommon.a: common/ (and common/xds/) plus the generated protobuf code; what
# every binary shares.  libmeshd.a: the control plane (everything under
# controlplane/ but main.c and cli/).  A binary names its own objects and links
# the libraries it uses; the archive linker pulls only the members it needs.
COMMON_SRCS := $(sort $(wildcard common/*.c common/xds/*.c))
COMMON_CXX_SRCS := $(sort $(wildcard common/*.cc))
COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRCS)) $(patsubst %.cc,$(BUILD)/obj/%.o,$(COMMON_CXX_SRCS)) $(PB_O)
LIBCOMMON   := $(BUILD)/libcommon.a

CP_SRCS     := $(sort $(shell find controlplane -name '*.c' ! -path 'controlplane/cli/*' ! -name main.c))
# CRD schemas compiled in (controlplane/config validates against them)
CRD_YAML    := $(sort $(wildcard crd-schemas/*.yaml)) controlplane/config/k8s-schemas.yaml
CP_OBJS     := $(patsubst %.c,$(BUILD)/obj/%.o,$(CP_SRCS)) $(GEN)/crd_schemas.o
LIBMESHD    := $(BUILD)/libmeshd.a

# what used to be libmesh.a: rules that link "$(LIB)" get both, in order
LIB         := $(LIBMESHD) $(LIBCOMMON)

MESHD_OBJS     := $(BUILD)/obj/controlplane/main.o
MESHCTL_OBJS   := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard controlplane/cli/*.c)))
# authz check runs meshproxy's own JWT filter (dataplane/jwt.c: common/ and
# OpenSSL only), so the answer is what the sidecar enforces
MESHCTL_OBJS   += $(BUILD)/obj/dataplane/jwt.o
# meshproxy: dataplane/ sources, libcommon.a and $(MESHPROXY_PKGS) only
MESHPROXY_SRCS := $(sort $(shell find dataplane -name '*.c' 2>/dev/null))
MESHPROXY_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(MESHPROXY_SRCS))

BINS        := $(BUILD)/bin/meshd $(BUILD)/bin/meshctl
ifneq ($(MESHPROXY_OBJS),)
BINS        += $(BUILD)/bin/meshproxy
endif

UNIT_SRCS   := $(sort $(shell find tests/unit -name 'test_*.c' 2>/dev/null))
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# tests of common/ and the protobuf code link libcommon.a alone, with the
# common packages only: that link proves common/ needs no control-plane code,
# gRPC, curl, microhttpd or yaml
UNIT_COMMON_BINS := $(filter $(BUILD)/tests/common/% $(BUILD)/tests/proto/%,$(UNIT_BINS))

.PHONY: all deps run test unit unit-asan integration integration-valgrind proto-check bench bench-smoke clean check-style check-layering image image-save image-test
all: $(BINS)

deps:
	@sh scripts/deps.sh

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --proto_path=proto --proto_path=$(WKT_DIR) --c_out=$(GEN) $<

$(GEN)/google/protobuf/%.pb-c.c $(GEN)/google/protobuf/%.pb-c.h: $(WKT_DIR)/google/protobuf/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  google/protobuf/$*.proto"
	$(Q)protoc-c --proto_path=$(WKT_DIR) --c_out=$(GEN) google/protobuf/$*.proto

$(GEN)/%.pb-c.o: $(GEN)/%.pb-c.c | $(PB_H)
	@echo "  CC      $<"
	$(Q)$(CC) $(GEN_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(CXXFLAGS) -c -o $@ $<

$(GEN)/crd_schemas.c: $(CRD_YAML) scripts/gen_crd_schemas.sh
	@mkdir -p $(GEN)
	@echo "  GEN     $@"
	$(Q)sh scripts/gen_crd_schemas.sh $@ $(CRD_YAML)

$(GEN)/crd_schemas.o: $(GEN)/crd_schemas.c
	@echo "  CC      $<"
	$(Q)$(CC) $(GEN_CFLAGS) -c -o $@ $<

# Each archive also depends on a list of its members, rewritten only when the
# list changes, so a source that moves or goes away (controlplane/xds/ to
# common/xds/, ...) rebuilds the archive instead of leaving a stale member.
.PHONY: FORCE
$(BUILD)/%.members: FORCE
	@mkdir -p $(dir $@)
	@echo '$(MEMBERS)' | cmp -s - $@ 2>/dev/null || echo '$(MEMBERS)' > $@
$(BUILD)/libcommon.members: MEMBERS = $(COMMON_OBJS)
$(BUILD)/libmeshd.members: MEMBERS = $(CP_OBJS)

$(LIBCOMMON): $(COMMON_OBJS) $(BUILD)/libcommon.members
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $(COMMON_OBJS)

$(LIBMESHD): $(CP_OBJS) $(BUILD)/libmeshd.members
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $(CP_OBJS)

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
$(BUILD)/obj/controlplane/main.o: CFLAGS += -DMESH_VERSION='"$(VERSION)"'
$(BUILD)/obj/dataplane/main.o: CFLAGS += -DMESH_VERSION='"$(VERSION)"'
$(BUILD)/obj/controlplane/cli/proxy.o: CFLAGS += -DMESH_VERSION='"$(VERSION)"'

$(BUILD)/bin/meshd: $(MESHD_OBJS) $(LIBMESHD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

$(BUILD)/bin/meshctl: $(MESHCTL_OBJS) $(LIBMESHD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(MESHCTL_PKGS)) -lpthread -lm

# meshproxy's RSS (DESIGN.md: <= 10 MB holding 1,000 clusters) counts every
# page it maps, used or not: its libraries but libc (OpenSSL, RE2 and the C++
# runtime, nghttp2, protobuf-c, xxhash: MESHPROXY_PKGS, keep in step) are linked
# statically, so only the code meshproxy calls is taken (the shared libcrypto
# and libssl alone cost ~1.7 MB, mostly their relocation tables and the
# pages relocation dirties, TLS in use or not; libstdc++ ~0.9 MB; statically
# ~0.7 MB together).  The price: an OpenSSL security update means rebuilding
# meshproxy, as for Envoy and its BoringSSL.  No libm (~0.3 MB mapped for
# pow(): dataplane/lb.c has its own); relative relocations packed (DT_RELR,
# glibc >= 2.36: 2 KB instead of 180 KB read at every start; still a PIE).
# Not under SAN=1: the sanitizer runtime replaces operator new/delete from a
# shared libstdc++.
ifeq ($(SAN),1)
MESHPROXY_LIBS := $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm
else
MESHPROXY_LIBS := -Wl,-Bstatic -lprotobuf-c -lxxhash -lnghttp2 -lssl -lcrypto -lre2 -lstdc++ -Wl,-Bdynamic \
	-static-libgcc -ldl -lpthread -Wl,-z,pack-relative-relocs
endif
$(BUILD)/bin/meshproxy: $(MESHPROXY_OBJS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MESHPROXY_LIBS)

$(UNIT_COMMON_BINS): $(BUILD)/tests/%: tests/unit/%.c $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests/unit -o $@ $< $(LIBCOMMON) $(LDFLAGS) \
		$(call pkg_libs,$(COMMON_PKGS)) -lpthread -lm $(CHECK_LIBS)

# --- meshproxy (dataplane/): its unit tests link the dataplane objects (all
# but main.o) with libcommon.a and the common packages only, which proves the
# proxy needs nothing from the control plane, gRPC core, curl, microhttpd or yaml
MESHPROXY_LIB_OBJS  := $(filter-out $(BUILD)/obj/dataplane/main.o,$(MESHPROXY_OBJS))
UNIT_DATAPLANE_BINS := $(filter $(BUILD)/tests/dataplane/%,$(UNIT_BINS))
$(UNIT_DATAPLANE_BINS): $(BUILD)/tests/%: tests/unit/%.c $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) $(LDFLAGS) \
		$(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm $(CHECK_LIBS)

# test_gen_upstream compiles meshd's sidecar output through meshproxy's
# upstream modules: it links those few dataplane objects (and libxxhash) too
UPSTREAM_OBJS := $(addprefix $(BUILD)/obj/dataplane/,upstream.o lb.o outlier.o cbreaker.o)
$(BUILD)/tests/controlplane/gen/test_gen_upstream: tests/unit/controlplane/gen/test_gen_upstream.c $(UPSTREAM_OBJS) \
		$(LIBMESHD) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests/unit -o $@ $< $(UPSTREAM_OBJS) $(LIBMESHD) $(LIBCOMMON) $(LDFLAGS) \
		$(LDLIBS) $(call pkg_libs,libxxhash) $(CHECK_LIBS)

# the sidecar golden cases through meshproxy's router: links the control
# plane (to generate them) and dataplane/router.o with RE2
ROUTER_GOLDEN_TEST := $(BUILD)/tests/controlplane/gen/test_router_golden
$(ROUTER_GOLDEN_TEST): tests/unit/controlplane/gen/test_router_golden.c tests/xds/golden.c \
		$(BUILD)/obj/dataplane/router.o $(LIBMESHD) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/obj/dataplane/router.o $(LIBMESHD) $(LIBCOMMON) \
		$(LDFLAGS) $(LDLIBS) $(call pkg_libs,re2) $(CHECK_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBMESHD) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests/unit -o $@ $< $(LIBMESHD) $(LIBCOMMON) $(LDFLAGS) $(LDLIBS) $(CHECK_LIBS)

# loopback only: the debug port serves every config object to whoever asks
RUN_ADDRS := --xds-addr 127.0.0.1:15010 --secure-addr 127.0.0.1:15012 --http-addr 127.0.0.1:15014 \
	--webhook-addr 127.0.0.1:15017
# more meshd flags: make run RUN_ARGS="--ca-token-file FILE"
RUN_ARGS  ?=
# meshd (its CA root kept in $(BUILD)/run-ca) and the example's greeter
# backends (v1 :50061, v2 :50062); Ctrl-C stops all.  meshd serves
# $(BUILD)/run-gateway/config: examples/ (linked, still watched) and the
# example gateway's TLS Secret, made here since no key is committed
# (examples/gateway-certs.sh; README "Ingress gateway").  The CA's caller
# list is the gateway's token (a --ca-token-file in RUN_ARGS replaces it).
RUN_GW := $(BUILD)/run-gateway
run: deps
	@$(MAKE) --no-print-directory all
	@sh examples/gateway-certs.sh $(RUN_GW) examples
	@sh examples/run.sh $(BUILD)/bin/meshd --config-dir $(RUN_GW)/config --ca-dir $(BUILD)/run-ca \
		--ca-token-file $(RUN_GW)/tokens $(RUN_ADDRS) $(RUN_ARGS)

unit: $(UNIT_BINS) $(BINS)
	@sh tests/run-unit.sh $(BUILD)/tests $(UNIT_BINS)

unit-asan:
	@$(MAKE) --no-print-directory SAN=1 unit

# integration files run side by side in this many worker processes
# (tests/integration/runner.py: most files wait on peers, not on the CPU);
# MESH_IT_JOBS=1 runs them one after another
MESH_IT_JOBS ?= 2
export MESH_IT_JOBS
integration: $(BINS)
	@sh tests/integration/run.sh $(BUILD)

# The ASan+UBSan pass of `make test` runs the files that drive our own C code
# with the most varied and hostile input (config edits, garbage on every
# port, the CA, the Kubernetes client, the sidecar xDS and meshproxy's data
# path); the rest exercise peers' behaviour through the same paths, which
# the plain pass covers.  Keeps the whole suite inside its time budget.
# Left to other passes, for time: the load-balancing files (test_mesh_lb*.py:
# long request series through lb.c/upstream.c, which the unit tests run
# under ASan), the mesh files valgrind walks (IT_VALGRIND_MESH below), and
# the files that mostly wait on a peer (test_mesh_metrics.py and
# test_mesh_tracing.py: Prometheus scrapes and span batches; their C code
# has unit tests under ASan).  Every gateway file (test_mesh_gateway*.py,
# test_meshproxy_gateway.py) runs here.
IT_ASAN_FILES = test_hostile.py test_xds_slow_clients.py test_routing.py test_kube.py test_kube_webhooks.py test_ca.py test_meshctl.py test_sidecar_xds.py test_gw_xds.py \
	test_no_route_match.py test_sds.py test_meshproxy_*.py test_inject.py \
	$(filter-out test_mesh_lb.py test_mesh_lb2.py test_mesh_metrics.py \
		test_mesh_tracing.py $(IT_VALGRIND_MESH), $(notdir $(wildcard tests/integration/test_mesh_*.py)))
.PHONY: integration-asan
integration-asan:
	@MESH_IT_PATTERN="$(IT_ASAN_FILES)" $(MAKE) --no-print-directory SAN=1 integration

# meshd under valgrind on the main integration paths, then meshd and the
# meshproxy sidecars under valgrind on the end-to-end HTTP mesh tests
# (IT_VALGRIND_MESH: every path a request, a config change or a teardown
# takes; the load-balancing files, long request series through code the
# unit tests and the ASan pass already cover, are left to those): any
# memory error or definite leak makes the binary exit 99, which the harness
# reports as a failure.  valgrind.supp: RE2's sparse sets and glibc's
# getaddrinfo_a exit cleanup, both inside the libraries.
IT_VALGRIND_MESH := test_mesh_routing.py test_mesh_live.py test_mesh_resilience.py test_mesh_rewrite.py \
	test_mesh_retries.py test_mesh_http1.py test_mesh_capture_none.py test_mesh_sidecar_scope.py \
	test_mesh_mirror_cb.py test_mesh_meshconfig.py
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --suppressions=$(CURDIR)/tests/integration/valgrind.supp
# One runner for both sets (test_[rh]o*.py start no meshproxy, so its wrapper
# changes nothing there): its workers then balance the long test_rotation.py
# against the mesh files.  valgrind is not all CPU here either: 2 jobs took
# the pass from 208 s to 115 s on 2 cores.
integration-valgrind: $(BINS)
	@MESHD_WRAPPER="$(VALGRIND)" MESHPROXY_WRAPPER="$(VALGRIND)" \
		MESH_IT_PATTERN="$(IT_VALGRIND_FILES)" sh tests/integration/run.sh $(BUILD)
IT_VALGRIND_FILES := test_[rh]o*.py $(IT_VALGRIND_MESH)

# `make test` runs each integration file once: the ASan+UBSan pass and the
# valgrind pass each take theirs (a file that passes with the sanitizers or
# under valgrind passes the same assertions as the plain build does, and
# finds memory errors besides), the plain pass the rest.  `make integration`
# still runs every file plain.
it_files = $(sort $(notdir $(wildcard $(addprefix tests/integration/,$(1)))))
IT_PLAIN_FILES = $(filter-out $(call it_files,$(IT_ASAN_FILES) $(IT_VALGRIND_FILES)), \
	$(call it_files,test_*.py))
.PHONY: integration-plain
integration-plain:
	@MESH_IT_PATTERN="$(IT_PLAIN_FILES)" $(MAKE) --no-print-directory integration

.PHONY: kube-fake-check
# the fake Kubernetes API server the kube tests run against keeps to the API conventions
kube-fake-check:
	@/usr/bin/python3 tests/kube/test_fake_apiserver.py

proto-check: $(PB_H)
	@sh tests/proto/compare.sh $(BUILD)

# each step prints its wall time, so a slow CI run says where the time went
# (the whole suite is to stay under 20 minutes on 2 cores)
# (the builds, plain and ASan, run on every core: test-build below)
TEST_J     := -j$(shell nproc 2>/dev/null || echo 2)
TEST_STEPS := $(TEST_J):test-build check-style check-layering proto-check kube-fake-check unit \
	xds-golden http-golden inject-golden $(TEST_J):SAN=1:test-build unit-asan SAN=1:fuzz-replay \
	integration-plain integration-asan integration-valgrind bench-smoke
test: deps
	@t0=$$(date +%s); for step in $(TEST_STEPS); do \
		s=$$(date +%s); \
		$(MAKE) --no-print-directory $$(echo "$$step" | tr ':' ' ') || exit 1; \
		e=$$(date +%s); echo "make test: $$step $$((e - s)) s (total $$((e - t0)) s)"; \
	done

# the benchmark's load generator and churn driver on a tiny mesh: proves they
# work (exit status), prints numbers but asserts none
bench-smoke: all $(BENCH_BIN)
	@sh tests/bench/run.sh $(BUILD) --smoke

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@sh tests/bench/run.sh $(BUILD)
	@$(MAKE) --no-print-directory bench-proxy
	@$(MAKE) --no-print-directory bench-h2

# the scale benchmark's load generator (tests/bench), not part of `make test`
BENCH_SRCS  := $(sort $(wildcard tests/bench/*.c))
BENCH_BIN   := $(BUILD)/bench/meshbench
$(BENCH_BIN): $(patsubst %.c,$(BUILD)/obj/%.o,$(BENCH_SRCS)) $(LIBMESHD) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the proxy engine with a spec-file configuration instead of xDS
# (tests/bench/proxy/pxserve.c): the HTTP integration tests and the proxy
# benchmark run it; `make bench-proxy` is wrk direct / meshproxy / nginx
.PHONY: bench-proxy
PXSERVE_BIN := $(BUILD)/tests/bench/proxy/pxserve
PXBACKEND_BIN := $(BUILD)/tests/bench/proxy/pxbackend
PXRATE_BIN := $(BUILD)/tests/bench/proxy/pxrate
$(PXSERVE_BIN): tests/bench/proxy/pxserve.c tests/unit/dataplane/pxspec.h $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) $(LDFLAGS) $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm
$(PXBACKEND_BIN) $(PXRATE_BIN): $(BUILD)/tests/bench/proxy/%: tests/bench/proxy/%.c
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $<

integration: $(PXSERVE_BIN) $(PXBACKEND_BIN)

bench-proxy: all $(PXSERVE_BIN) $(PXBACKEND_BIN) $(PXRATE_BIN)
	@sh tests/bench/proxy/run.sh $(BUILD)
	@sh tests/bench/proxy/mtls.sh $(BUILD)
	@sh tests/bench/proxy/gateway.sh $(BUILD)
	@sh tests/bench/proxy/telemetry.sh $(BUILD)

# two hops with mTLS (meshd's CA, two meshproxy sidecars) vs nginx's TLS
# proxy pair: added p99 at 1,000 rps and peak throughput (part of bench-proxy)
.PHONY: bench-mtls
bench-mtls: all $(PXBACKEND_BIN) $(PXRATE_BIN)
	@sh tests/bench/proxy/mtls.sh $(BUILD)

# HTTPS through the ingress gateway vs nginx terminating TLS with the same
# certificate, one run (issue 13; part of bench-proxy)
.PHONY: bench-gateway
bench-gateway: all $(PXBACKEND_BIN)
	@sh tests/bench/proxy/gateway.sh $(BUILD)

# the CPU cost per 1,000 requests of Istio metrics (Telemetry on/off) and of
# 100% tracing to a discarding Zipkin sink, beside nginx (issue 14; part of
# bench-proxy)
.PHONY: bench-telemetry
bench-telemetry: all $(PXBACKEND_BIN) $(PXRATE_BIN)
	@sh tests/bench/proxy/telemetry.sh $(BUILD)

# h2c peak throughput, meshproxy vs nginx (listen http2), with h2load
.PHONY: bench-h2
bench-h2: all $(PXSERVE_BIN) $(PXBACKEND_BIN)
	@sh tests/bench/proxy/h2.sh $(BUILD)

# sidecar injection (controlplane/inject/): AdmissionReview in, JSONPatch and
# the patched Pod out, through `meshctl kube-inject --review` (the code
# meshd's /inject runs); GOLDEN_UPDATE=1 rewrites the expected files
.PHONY: inject-golden
inject-golden: $(BUILD)/bin/meshctl
	@/usr/bin/python3 tests/inject/run.py $(BUILD)

# golden HTTP/1.1 codec cases (tests/http/NNNN/): bytes in, outcome out,
# fed whole, split at every byte and one byte at a time; GOLDEN_UPDATE=1
# rewrites the expected files
.PHONY: http-golden
HTTP_GOLDEN_BIN := $(BUILD)/tests/http/golden
$(HTTP_GOLDEN_BIN): tests/http/golden.c tests/http/h1drive.c tests/http/h1drive.h $(MESHPROXY_LIB_OBJS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ tests/http/golden.c tests/http/h1drive.c $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) \
		$(LDFLAGS) $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

http-golden: $(HTTP_GOLDEN_BIN)
	@$(HTTP_GOLDEN_BIN) tests/http

# the codec's throughput on a typical request (a benchmark; asserts nothing)
.PHONY: http-bench
$(BUILD)/tests/http/bench_http1: tests/http/bench_http1.c $(MESHPROXY_LIB_OBJS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) $(LDFLAGS) $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

http-bench: $(BUILD)/tests/http/bench_http1
	@$(BUILD)/tests/http/bench_http1

# pick cost of each load balancer on 1,000 hosts (a benchmark; asserts nothing)
.PHONY: lb-bench
$(BUILD)/tests/dataplane/bench_lb: tests/unit/dataplane/bench_lb.c tests/unit/dataplane/upfix.h $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) $(LDFLAGS) \
		$(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm $(CHECK_LIBS)

lb-bench: $(BUILD)/tests/dataplane/bench_lb
	@$(BUILD)/tests/dataplane/bench_lb

# the router's match cost on a 1,000-virtual-host route config (a
# benchmark; asserts only that each request finds its route)
.PHONY: router-bench
$(BUILD)/tests/bench/bench_router: tests/bench/router/bench_router.c tests/unit/dataplane/router_build.h \
		$(MESHPROXY_LIB_OBJS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(MESHPROXY_LIB_OBJS) $(LIBCOMMON) $(LDFLAGS) $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

router-bench: $(BUILD)/tests/bench/bench_router
	@$(BUILD)/tests/bench/bench_router

# golden xDS cases (tests/xds/NNNN/): config in, resources out per proxy
# flavour; GOLDEN_UPDATE=1 rewrites the expected files
.PHONY: xds-golden
GOLDEN_BIN  := $(BUILD)/tests/xds/golden
$(GOLDEN_BIN): tests/xds/golden.c $(LIB) | $(PB_H)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

xds-golden: $(GOLDEN_BIN)
	@sh tests/xds/run.sh $(BUILD)

# libFuzzer targets (clang; `sh scripts/deps.sh fuzz` installs it), each run
# for FUZZ_SECONDS from its seed corpus tests/fuzz/corpus/TARGET (tests/fuzz/
# README).  `make test` only replays the corpora (fuzz-replay below).
.PHONY: fuzz fuzz-replay
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# clang also warns on a positional initializer that leaves trailing fields to
# zero (kube_res.c's table), which gcc and the style allow
FUZZ_LIB_FLAGS := $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wno-missing-field-initializers
$(FUZZ_BUILD)/fuzz_http1: tests/fuzz/fuzz_http1.c tests/http/h1drive.c tests/http/h1drive.h dataplane/http1.c \
		dataplane/http1.h common/buf.c common/err.c
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_http1.c tests/http/h1drive.c dataplane/http1.c common/buf.c common/err.c
# the control plane libraries built by clang with coverage for the fuzzer
$(FUZZ_BUILD)/fuzz_config: tests/fuzz/fuzz_config.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

# the JWT filter over common/ (JSON reader, protobuf code) built the same way
$(FUZZ_BUILD)/fuzz_jwt: tests/fuzz/fuzz_jwt.c dataplane/jwt.c dataplane/jwt.h FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_jwt.c dataplane/jwt.c $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(COMMON_PKGS)) \
		-lpthread -lm

# sidecar injection (controlplane/inject/) over the same clang-built libraries
$(FUZZ_BUILD)/fuzz_inject: tests/fuzz/fuzz_inject.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

# the validating webhook (controlplane/webhook/validate.c), same libraries
$(FUZZ_BUILD)/fuzz_validate: tests/fuzz/fuzz_validate.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

# CSR signing with its identity checks (controlplane/ca/ca.c), same libraries
$(FUZZ_BUILD)/fuzz_csr: tests/fuzz/fuzz_csr.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

# meshproxy's decode of any DiscoveryResponse (dataplane/snapshot.c) over common/
$(FUZZ_BUILD)/fuzz_snapshot: tests/fuzz/fuzz_snapshot.c dataplane/snapshot.c dataplane/snapshot.h FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_snapshot.c dataplane/snapshot.c $(FUZZ_BUILD)/lib/libcommon.a \
		$(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

# the listener-filter sniffers (dataplane/sniff.c): self-contained
$(FUZZ_BUILD)/fuzz_sniff: tests/fuzz/fuzz_sniff.c dataplane/sniff.c dataplane/sniff.h
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_sniff.c dataplane/sniff.c

# the Kubernetes watch framer (controlplane/kube/kube_stream.c) over common/buf.c
$(FUZZ_BUILD)/fuzz_kube_stream: tests/fuzz/fuzz_kube_stream.c controlplane/kube/kube_stream.c \
		controlplane/kube/kube_stream.h common/buf.c common/err.c
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_kube_stream.c controlplane/kube/kube_stream.c common/buf.c common/err.c

# the chunked decoder of dataplane/http1.c on its own
$(FUZZ_BUILD)/fuzz_chunked: tests/fuzz/fuzz_chunked.c dataplane/http1.c dataplane/http1.h common/buf.c common/err.c
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_chunked.c dataplane/http1.c common/buf.c common/err.c

# common/pem.c's loaders and meshproxy's Secret decoding (dataplane/sds.c)
$(FUZZ_BUILD)/fuzz_pem: tests/fuzz/fuzz_pem.c dataplane/sds.c dataplane/sds.h dataplane/snapshot.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_pem.c dataplane/sds.c dataplane/snapshot.c $(FUZZ_BUILD)/lib/libcommon.a \
		$(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

# the access-log filter and format compilers, the Telemetry tag expressions
FUZZ_EXPR_SRCS := dataplane/alogexpr.c dataplane/accesslog.c dataplane/istio_stats.c dataplane/ev_epoll.c
$(FUZZ_BUILD)/fuzz_expr: tests/fuzz/fuzz_expr.c $(FUZZ_EXPR_SRCS) FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		tests/fuzz/fuzz_expr.c $(FUZZ_EXPR_SRCS) $(FUZZ_BUILD)/lib/libcommon.a \
		$(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

# the transport-free ADS core (controlplane/xds/ads.c) in libmeshd.a
$(FUZZ_BUILD)/fuzz_ads: tests/fuzz/fuzz_ads.c FORCE
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHD_PKGS)) -lpthread -lm

# meshproxy's HTTP/2 glue (dataplane/h2.c) through a whole engine: every
# dataplane object but main.o, built by clang with coverage
FUZZ_DP_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/lib/obj/%.o,$(filter-out dataplane/main.c,$(MESHPROXY_SRCS)))
$(FUZZ_BUILD)/fuzz_h2: tests/fuzz/fuzz_h2.c tests/unit/dataplane/pxspec.h FORCE
	@# -s: no "is up to date" line per object
	@$(MAKE) -s --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_DP_OBJS) $(FUZZ_BUILD)/lib/libcommon.a
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/lib/gen $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
		$< $(FUZZ_DP_OBJS) $(FUZZ_BUILD)/lib/libcommon.a $(call pkg_libs,$(MESHPROXY_PKGS)) -lpthread -lm

FUZZ_TARGETS := http1 config jwt inject validate sniff kube_stream csr snapshot chunked pem expr ads h2

fuzz:
	@sh scripts/deps.sh fuzz
	@# the libraries once, then the targets one by one: each target's own
	@# sub-make of the same libraries must not run side by side with another
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib SAN=1 CC=$(FUZZ_CC) CXX=$(FUZZ_CC)++ \
		SANFLAGS="$(FUZZ_LIB_FLAGS)" $(FUZZ_BUILD)/lib/libmeshd.a $(FUZZ_BUILD)/lib/libcommon.a
	@$(MAKE) --no-print-directory -j1 $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# `make test` replays every committed corpus (tests/fuzz/corpus/TARGET/) once
# through each target linked with tests/fuzz/replay.c instead of libFuzzer:
# the normal gcc ASan+UBSan build (SAN=1, build/asan), no clang needed.
# Each target's own sources beyond the libraries (compiled here each time,
# hence FORCE: they are not prerequisites):
FUZZ_REPLAY_SRCS_http1       := tests/http/h1drive.c dataplane/http1.c
FUZZ_REPLAY_SRCS_chunked     := dataplane/http1.c
FUZZ_REPLAY_SRCS_jwt         := dataplane/jwt.c
FUZZ_REPLAY_SRCS_sniff       := dataplane/sniff.c
FUZZ_REPLAY_SRCS_snapshot    := dataplane/snapshot.c
FUZZ_REPLAY_SRCS_pem         := dataplane/sds.c dataplane/snapshot.c
FUZZ_REPLAY_SRCS_expr        := $(FUZZ_EXPR_SRCS)
FUZZ_REPLAY_OBJS_h2          := $(MESHPROXY_LIB_OBJS)
FUZZ_REPLAY_BINS := $(addprefix $(BUILD)/fuzz-replay/fuzz_,$(FUZZ_TARGETS))
$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIB) $(MESHPROXY_LIB_OBJS) FORCE
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -MF $@.d -o $@ $< tests/fuzz/replay.c $(FUZZ_REPLAY_SRCS_$*) $(FUZZ_REPLAY_OBJS_$*) $(LIB) $(LDFLAGS) \
		$(PKG_LIBS) $(call pkg_libs,libnghttp2 libxxhash) -lpthread -lm
fuzz-replay: $(FUZZ_REPLAY_BINS)
	@for t in $(FUZZ_TARGETS); do \
		$(BUILD)/fuzz-replay/fuzz_$$t tests/fuzz/corpus/$$t 2>$(BUILD)/fuzz-replay/$$t.log || \
		{ tail -n 40 $(BUILD)/fuzz-replay/$$t.log; echo "fuzz-replay: $$t FAILED"; exit 1; }; done

check-style:
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok)\s*\(' $$(find common controlplane dataplane tests -name '*.[ch]' 2>/dev/null) \
		|| (echo "check-style: banned call (see STYLE.md)"; exit 1)

# common/ includes nothing above it, dataplane/ nothing from controlplane/, the
# generators do no I/O (scripts/check_layering.pl); a planted-violation fixture
# proves each rule can fail
check-layering:
	@sh tests/layering/run.sh

# images (README "Images"; not part of `make test`: minutes of downloads and a
# full compile in the build stage): meshd:TAG and meshproxy:TAG (TAG = git
# describe, also :latest) in buildah's local storage, from deploy/Dockerfile
# on a Debian base made locally by mmdebstrap (cached in build/image/)
image:
	@sh scripts/deps.sh image
	@sh scripts/image.sh build

# build/image/{meshd,meshproxy}-TAG.oci.tar for `kind load image-archive` / `ctr import`
image-save: image
	@sh scripts/image.sh save

# meshd and meshproxy run from their images answer /ready (tests/image/)
image-test: image
	@sh scripts/deps.sh image-test
	@/usr/bin/python3 tests/image/test_image.py

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# everything `make test` runs, built in one (parallel) make: binaries, unit
# tests, the HTTP test servers and, with SAN=1, the fuzz-replay drivers
test-build: $(BINS) $(UNIT_BINS) $(PXSERVE_BIN) $(PXBACKEND_BIN) $(if $(filter 1,$(SAN)),$(FUZZ_REPLAY_BINS))
.PHONY: test-build
