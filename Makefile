# mfx - non-recursive build.  `make` builds build/mfx, build/libmfx.so and
# build/mfx-replay; `make V=1` shows the commands.
#
#   make                 build everything into build/
#   make demo            install missing packages, build, trace the demo program
#   make check           install missing packages, build, run every test
#   make bench           overhead against the bare program and heaptrack
#   make fuzz            libFuzzer on the trace parser (FUZZ_SECONDS=600)
#   make SANITIZE=address,undefined   the command and analyzer under ASan+UBSan
#                                     (into build/san/; the agent never is)
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

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
BASEFLAGS:= -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Iinclude -I. -MMD -MP
LIBS_MFX := $(shell $(PKG) --libs libdw libelf libpng cairo libzstd libunwind-ptrace libunwind-generic 2>/dev/null) -lpthread -lm
CFL_MFX  := $(shell $(PKG) --cflags libdw libelf libpng cairo libzstd 2>/dev/null)

# --- the mfx command: attach/ on top of inject/ analyzer/ trace/ common/ -----
MFX_SRCS := $(wildcard attach/*.c inject/*.c analyzer/*.c analyzer/replay/replay.c \
	trace/*.c common/*.c)
MFX_OBJS := $(MFX_SRCS:%.c=$(B)/obj/%.o)
LIB_OBJS := $(filter-out $(B)/obj/attach/main.o,$(MFX_OBJS))

# --- the agent: preload/ (never sanitized: it lives in other processes) ------
AGENT_SRCS  := $(wildcard preload/*.c)
AGENT_OBJS  := $(AGENT_SRCS:%.c=build/obj/%.o)
AGENT_CFL   := -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Iinclude -I. -MMD -MP \
	-fPIC -ftls-model=initial-exec -fvisibility=hidden -fno-strict-aliasing \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
AGENT_LIBS  := -ldl -lpthread	# libunwind: dlopen()ed by preload/stack.c

# --- the native replayer: a small program run under other allocators --------

# --- tests ------------------------------------------------------------------
TARGET_SRCS := $(wildcard tests/targets/*.c)
TARGETS     := $(TARGET_SRCS:tests/targets/%.c=build/tests/%) \
	$(if $(wildcard tests/targets/plugin/dlplugin.c),build/tests/libdlplugin.so)
UNIT_SRCS   := $(wildcard tests/unit/*.c)
UNITS       := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/unit/%)
FUZZ_SRCS   := $(wildcard tests/fuzz/*.c)

PROGS := $(B)/mfx build/libmfx.so build/mfx-replay
ifneq ($(B),build)
PROGS += $(B)/libmfx.so
endif

all: $(PROGS) $(TARGETS) $(UNITS)
.PHONY: all demo check bench fuzz install clean deps asan

$(B)/mfx: $(MFX_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(SANFLAGS) -o $@ $^ $(LIBS_MFX)

build/libmfx.so: $(AGENT_OBJS) preload/libmfx.map
	$(call say,LINK,$@)
	$(Q)$(CC) -shared -o $@ $(AGENT_OBJS) -Wl,--version-script=preload/libmfx.map \
		-Wl,-z,now -Wl,-z,relro -Wl,--no-undefined $(AGENT_LIBS)

# the sanitized mfx finds its agent next to itself
build/san/libmfx.so: build/libmfx.so
	$(Q)mkdir -p $(@D) && cp -f $< $@

# The replayer is never sanitized: it runs under other allocators.
$(B)/mfx-replay: analyzer/replay/replayer.c analyzer/replay/ops.h
	$(call say,CC,$<)
	$(Q)$(CC) -std=gnu11 -O2 -g $(WARN) -pthread -o $@ $<


$(B)/obj/%.o: %.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(BASEFLAGS) $(SANFLAGS) $(CFL_MFX) $(CFLAGS) -c -o $@ $<

build/obj/preload/%.o: preload/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(AGENT_CFL) $(CFLAGS) -c -o $@ $<

# Test targets: plain programs.  Per-target flags: TFLAGS_<name>.
TFLAGS_relro_noplt := -fno-plt -Wl,-z,relro,-z,now
TFLAGS_static_target := -static
TFLAGS_dlopen_target := -ldl
TFLAGS_bench_workload := -O2
build/tests/%: tests/targets/%.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O1 -g $(WARN) -D_GNU_SOURCE -o $@ $< \
		-lpthread $(TFLAGS_$*)

build/tests/libdlplugin.so: tests/targets/plugin/dlplugin.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O1 -g -fPIC -shared $(WARN) -o $@ $<

# Unit tests link every mfx object but main.
$(B)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(BASEFLAGS) $(SANFLAGS) $(CFL_MFX) -o $@ $< $(LIB_OBJS) $(LIBS_MFX)

deps:
	$(Q)scripts/deps.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

asan:
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all

check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all
	$(Q)scripts/layers.sh build/obj
	$(Q)tests/run.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/mfx
	install -m 755 build/mfx $(DESTDIR)$(PREFIX)/bin/mfx
	install -m 644 build/libmfx.so $(DESTDIR)$(PREFIX)/lib/mfx/libmfx.so
	install -m 755 build/mfx-replay $(DESTDIR)$(PREFIX)/lib/mfx/mfx-replay

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
