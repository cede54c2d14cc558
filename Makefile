# mfx - non-recursive build.  `make` builds build/mfx, build/libmfx.so and
# build/mfx-replay; `make V=1` shows the commands.
#
#   make                 build everything into build/
#   make demo            install missing packages, build, trace the demo program
#   make check           install missing packages, build, run every test
#   make bench           overhead against the bare program and heaptrack
#   make soak            the fault matrix many times; its table into docs/reliability.md
#   make fuzz            libFuzzer on every parser of input, FUZZ_SECONDS each
#                        (default 60; FUZZ=json runs one); make check runs
#                        each for 12 s
#   make SANITIZE=address,undefined   the command and analyzer under ASan+UBSan
#                                     (into build/san/; the agent never is)
#   make asan            the same
#   make WERROR=1        warnings are errors (make check sets it)
#   CPPFLAGS, CFLAGS, LDFLAGS are added to every compile and link
#   make install PREFIX=/usr/local DESTDIR=
#
.DELETE_ON_ERROR:
.SUFFIXES:

PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PKG      ?= pkg-config

ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2);
endif

ifneq ($(SANITIZE),)
B        := build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B        := build
SANFLAGS :=
endif

# -Werror where the warnings are ours to fix: `make check` (CI) sets WERROR=1;
# a user's plain `make` with another compiler is not stopped by a new warning.
WERROR   ?= 0
WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter $(if $(filter 1,$(WERROR)),-Werror)
# mfx runs as root and ptraces other processes: the usual hardening.
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
HARDEN_LD:= -Wl,-z,relro,-z,now
BASEFLAGS:= -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Iinclude -I. -MMD -MP

# Libraries through pkg-config; a missing one stops the build with its name
# (checked when something is compiled, so `make deps` can still install it).
# freetype2 is for the build only: fontgen renders the charts' glyph atlas
# (analyzer/font/fontgen.c); mfx itself draws with libpng alone.
PKG_MFX  := libdw libelf libpng libzstd zlib libunwind-ptrace libunwind-generic
PKG_GEN  := freetype2
PKG_MISSING := $(shell for p in $(PKG_MFX) $(PKG_GEN); do $(PKG) --exists $$p 2>/dev/null || echo $$p; done)
need_pkgs = $(if $(PKG_MISSING),$(error missing libraries: $(PKG_MISSING) (pkg-config \
	cannot find them; run 'scripts/deps.sh' as root, or 'make deps')))
LIBS_MFX := $(if $(PKG_MISSING),,$(shell $(PKG) --libs $(PKG_MFX))) -lpthread -lm
CFL_MFX  := $(if $(PKG_MISSING),,$(shell $(PKG) --cflags libdw libelf libpng libzstd zlib))

# The charts' glyph atlas: DejaVu Sans (fonts-dejavu-core) rendered at build
# time into a C file (analyzer/font.h), compiled into mfx like a source.
FONT_DIR ?= /usr/share/fonts/truetype/dejavu
FONTS    := $(FONT_DIR)/DejaVuSans.ttf $(FONT_DIR)/DejaVuSans-Bold.ttf
FONT_SRC := build/gen/analyzer/font_data.c

# --- the mfx command: attach/ on top of inject/ analyzer/ trace/ common/ -----
MFX_SRCS := $(filter-out analyzer/replay/replayer%.c,$(wildcard attach/*.c inject/*.c \
	analyzer/*.c analyzer/replay/*.c trace/*.c common/*.c))
MFX_OBJS := $(MFX_SRCS:%.c=$(B)/obj/%.o) $(B)/obj/analyzer/font_data.o
LIB_OBJS := $(filter-out $(B)/obj/attach/main.o,$(MFX_OBJS))

# --- the agent: preload/ (never sanitized: it lives in other processes) ------
AGENT_SRCS  := $(wildcard preload/*.c)
AGENT_OBJS  := $(AGENT_SRCS:%.c=build/obj/%.o)
AGENT_CFL   := -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Iinclude -I. -MMD -MP \
	-fPIC -ftls-model=initial-exec -fvisibility=hidden -fno-strict-aliasing \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
AGENT_LIBS  := -ldl -lpthread	# libunwind: dlopen()ed by preload/stack.c

# The agent under UBSan, for the tests that trace with it (MFX_AGENT=, t195,
# t208); never installed.  -fno-sanitize-recover: the first report ends the
# traced program.  libubsan comes with it (DT_NEEDED), see preload/ubsan.c.
UBSAN_AGENT_OBJS := $(AGENT_SRCS:%.c=build/ubsan/obj/%.o)
UBSAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# --- tests ------------------------------------------------------------------
TARGET_SRCS := $(wildcard tests/targets/*.c)
CXX_TARGET_SRCS := $(wildcard tests/targets/*.cc)
TARGETS     := $(TARGET_SRCS:tests/targets/%.c=build/tests/%) \
	$(CXX_TARGET_SRCS:tests/targets/%.cc=build/tests/%) \
	$(if $(wildcard tests/targets/cxx_inline.cc),build/tests/cxx_inline_lto) \
	$(if $(wildcard tests/targets/plugin/dlplugin.c),build/tests/libdlplugin.so) \
	$(if $(wildcard tests/targets/plugin/unwplug.S),build/tests/libunwplug_a.so \
		build/tests/libunwplug_b.so)
UNIT_SRCS   := $(wildcard tests/unit/*.c)
UNITS       := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/unit/%)

# The agent and the replayer are never sanitized (they run inside other
# programs, under other allocators); a sanitized mfx finds copies beside it.
PROGS := $(B)/mfx build/libmfx.so build/mfx-replay build/ubsan/libmfx.so
ifneq ($(B),build)
PROGS += $(B)/libmfx.so $(B)/mfx-replay
endif

all: $(PROGS) $(TARGETS) $(UNITS)
.PHONY: all demo check bench soak fuzz fuzz-build install clean deps asan

$(B)/mfx: $(MFX_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(SANFLAGS) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(LIBS_MFX)

build/libmfx.so: $(AGENT_OBJS) preload/libmfx.map
	$(call say,LINK,$@)
	$(Q)$(CC) -shared $(LDFLAGS) -o $@ $(AGENT_OBJS) -Wl,--version-script=preload/libmfx.map \
		-Wl,-z,now -Wl,-z,relro -Wl,--no-undefined $(AGENT_LIBS)

build/ubsan/libmfx.so: $(UBSAN_AGENT_OBJS) preload/libmfx.map
	$(call say,LINK,$@)
	$(Q)$(CC) -shared $(UBSAN_FLAGS) $(LDFLAGS) -o $@ $(UBSAN_AGENT_OBJS) \
		-Wl,--version-script=preload/libmfx.map -Wl,-z,now -Wl,-z,relro -Wl,--no-undefined \
		$(AGENT_LIBS)

build/ubsan/obj/preload/%.o: preload/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(AGENT_CFL) $(UBSAN_FLAGS) -DMFX_UBSAN $(CPPFLAGS) $(CFLAGS) \
		-c -o $@ $<

REPLAYER_SRCS := analyzer/replay/replayer.c analyzer/replay/replayer_run.c
build/mfx-replay: $(REPLAYER_SRCS) analyzer/replay/replayer.h analyzer/replay/ops.h \
		analyzer/replay/opsread.h
	$(call say,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O2 -g $(WARN) $(HARDEN) $(CPPFLAGS) $(CFLAGS) \
		-pthread $(HARDEN_LD) $(LDFLAGS) -o $@ $(REPLAYER_SRCS)

build/san/libmfx.so build/san/mfx-replay: build/san/%: build/%
	$(Q)mkdir -p $(@D) && cp -f $< $@

# report.html's script and style sheet are built into mfx (.incbin)
$(B)/obj/analyzer/assets.o: analyzer/report.js analyzer/report.css

build/gen/fontgen: analyzer/font/fontgen.c
	$(call say,CC,$<)
	$(need_pkgs)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O2 $(WARN) $(CPPFLAGS) $(CFLAGS) \
		$(shell $(PKG) --cflags $(PKG_GEN)) $(LDFLAGS) -o $@ $< $(shell $(PKG) --libs $(PKG_GEN))

$(FONT_SRC): build/gen/fontgen
	$(call say,GEN,$@)
	$(Q)mkdir -p $(@D) && $< $(FONTS) >$@

$(B)/obj/analyzer/font_data.o: $(FONT_SRC) analyzer/font.h
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(BASEFLAGS) $(SANFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/obj/%.o: %.c
	$(call say,CC,$<)
	$(need_pkgs)
	$(Q)mkdir -p $(@D) && $(CC) $(BASEFLAGS) $(HARDEN) $(SANFLAGS) $(CFL_MFX) $(CPPFLAGS) \
		$(CFLAGS) -c -o $@ $<

build/obj/preload/%.o: preload/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(AGENT_CFL) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Test targets: plain programs.  Per-target flags: TFLAGS_<name>.
TFLAGS_relro_noplt := -fno-plt -Wl,-z,relro,-z,now
TFLAGS_static_target := -static
TFLAGS_dlopen_target := -ldl
TFLAGS_bench_workload := -O2
TFLAGS_unw_target := -O2 -fomit-frame-pointer -ldl
TFLAGS_unw_target_fp := -O2 -fno-omit-frame-pointer -ldl
TFLAGS_inline_c := -O2
build/tests/%: tests/targets/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O1 -g $(WARN) -D_GNU_SOURCE -o $@ $< \
		-lpthread $(TFLAGS_$*)

build/tests/unw_target_fp: tests/targets/unw_target.c

# C++ targets (g++ is only needed for these)
CXX ?= c++
build/tests/%: tests/targets/%.cc
	$(call say,CXX,$<)
	$(Q)mkdir -p $(@D) && $(CXX) -std=gnu++17 -O2 -g -Wall -Wextra -Werror -o $@ $< -lpthread

# two builds of one plugin: the same code, other frames (t181)
build/tests/libunwplug_a.so: tests/targets/plugin/unwplug.S
	$(call say,AS,$<)
	$(Q)mkdir -p $(@D) && $(CC) -DFRAME=24 -fPIC -shared -o $@ $<
build/tests/libunwplug_b.so: tests/targets/plugin/unwplug.S
	$(call say,AS,$<)
	$(Q)mkdir -p $(@D) && $(CC) -DFRAME=56 -fPIC -shared -o $@ $<

# cxx_inline with LTO: t150 compares its stacks with addr2line -i
build/tests/cxx_inline_lto: tests/targets/cxx_inline.cc
	$(call say,CXX,$@)
	$(Q)mkdir -p $(@D) && $(CXX) -std=gnu++17 -O2 -g -Wall -Wextra -Werror -flto -o $@ $<

build/tests/libdlplugin.so: tests/targets/plugin/dlplugin.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O1 -g -fPIC -shared $(WARN) -o $@ $<

# Unit tests link every mfx object but main.
$(B)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(BASEFLAGS) $(SANFLAGS) $(CFL_MFX) $(CPPFLAGS) $(CFLAGS) \
		$(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS_MFX)

# --- fuzz targets: clang + libFuzzer, ASan+UBSan (scripts/fuzz.sh runs them)
# Each is its test file and the few sources it reads with.
FUZZ_CC      ?= clang
FUZZ_FLAGS   := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -I. -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS := trace json csv smaps replay_ops
FUZZ_SRC_trace      := $(wildcard trace/reader*.c) trace/evdecode.c common/util.c common/files.c
FUZZ_SRC_json       := common/json.c
FUZZ_SRC_csv        := analyzer/export.c analyzer/analyze.c analyzer/analyze_marks.c \
	analyzer/symbolize.c $(wildcard trace/reader*.c) trace/evdecode.c \
	common/util.c common/files.c common/hmap.c
FUZZ_SRC_smaps      := common/procfs.c common/util.c common/files.c
FUZZ_SRC_replay_ops :=
FUZZ_HDRS := $(wildcard include/mfx/*.h trace/*.h common/*.h analyzer/*.h analyzer/replay/*.h)
LIBS_FUZZ  = $(shell $(PKG) --libs libdw libelf libzstd) -lpthread -ldl -lm
define fuzz_rule
build/fuzz/$(1)_fuzz: tests/fuzz/$(1)_fuzz.c $(FUZZ_SRC_$(1)) $(FUZZ_HDRS)
	$$(call say,FUZZCC,$$@)
	$$(Q)mkdir -p $$(@D) && $$(FUZZ_CC) $$(FUZZ_FLAGS) $$(CPPFLAGS) -o $$@ \
		tests/fuzz/$(1)_fuzz.c $(FUZZ_SRC_$(1)) $$(LIBS_FUZZ)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))
fuzz-build: $(FUZZ_TARGETS:%=build/fuzz/%_fuzz)

deps:
	$(Q)scripts/deps.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

asan:
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all

check: deps
	$(Q)$(MAKE) --no-print-directory WERROR=1 all
	$(Q)$(MAKE) --no-print-directory WERROR=1 SANITIZE=address,undefined all
	$(Q)scripts/layers.sh build/obj
	$(Q)tests/run.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh

soak: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/soak.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/mfx
	install -m 755 build/mfx $(DESTDIR)$(PREFIX)/bin/mfx
	install -m 644 build/libmfx.so $(DESTDIR)$(PREFIX)/lib/mfx/libmfx.so
	install -m 755 build/mfx-replay $(DESTDIR)$(PREFIX)/lib/mfx/mfx-replay

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
