# ckptfs - top-level Makefile.  `make help` lists the targets.
#
#   make                 build everything into build/bin/
#   make check           unit tests (Check) + cluster tests + RDMA tests
#   make check-rdma      only the RDMA tests (soft-RoCE in a qemu guest) + bench
#   make check SANITIZE=1  the same under AddressSanitizer + UBSan (build/san/)
#   make bench           throughput figures as ratios against this machine
#   make demo            a whole cluster on this machine, narrated
#   make install PREFIX=/usr/local
#
# Every invocation first runs scripts/deps.sh, which installs missing Debian
# packages (saying which) so this works as the first command on a new machine.

PREFIX   ?= /usr/local
SANITIZE ?= 0
WERROR   ?= 0
COVERAGE ?= 0
V        ?= 0

ifneq ($(filter-out clean distclean help,$(or $(MAKECMDGOALS),all)),)
DEPS_OK := $(shell scripts/deps.sh 1>&2 && echo ok)
ifneq ($(DEPS_OK),ok)
$(error scripts/deps.sh could not install the build dependencies (see above))
endif
endif

ifeq ($(SANITIZE),1)
B := build/san
else ifeq ($(COVERAGE),1)
B := build/cov
else
B := build
endif
BIN := $(B)/bin

PKGS := fuse3 libisal libzstd lmdb libsodium libibverbs librdmacm inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
CHECK_CFLAGS := $(shell pkg-config --cflags check)
CHECK_LIBS := $(shell pkg-config --libs check)

CC ?= cc
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral \
        -Wmissing-prototypes -Wvla
OPT := -O2 -g
ifeq ($(SANITIZE),1)
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
endif
ifeq ($(COVERAGE),1)
OPT := -O0 -g --coverage
LDSAN := --coverage
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(OPT) $(WARN) -pthread \
              -Ilib $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := -pthread $(LDSAN) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lm

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

LIB_SRCS    := $(wildcard lib/*.c)
META_SRCS   := $(filter-out meta/main.c,$(wildcard meta/*.c))
NODE_SRCS   := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
FS_SRCS     := $(filter-out fs/main.c,$(wildcard fs/*.c))
UNIT_SRCS   := $(wildcard tests/unit/check_*.c)
BENCH_SRCS  := $(wildcard tests/bench/*.c)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
HELPER_SRCS := $(wildcard tests/integration/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIBCKPT := $(B)/libckpt.a
PROGS := $(BIN)/ckpt-meta $(BIN)/ckpt-node $(BIN)/ckptfs $(BIN)/ckpt \
         $(BIN)/ckpt-admin $(BIN)/ckpt-cluster
UNIT := $(B)/tests/check_unit
BENCHES := $(patsubst tests/bench/%.c,$(B)/tests/%,$(BENCH_SRCS))
FUZZERS := $(patsubst tests/fuzz/%.c,$(B)/tests/%,$(FUZZ_SRCS))
HELPERS := $(patsubst tests/integration/%.c,$(B)/tests/%,$(HELPER_SRCS))

# Keep intermediate objects of the test programs (no rebuild every run).
.SECONDARY:

.PHONY: all check check-rdma unit-check cluster-check bench demo install clean distclean \
        help asan coverage fuzz layering-check mancheck FORCE
all: $(PROGS)

# Rebuild everything when the flags change (Redis .make-settings).
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/tests/%.o: tests/%.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(CHECK_CFLAGS) -Imeta -Idaemon -Ifs -I$(B)/gen -MMD -MP -c $< -o $@

$(LIBCKPT): $(call obj,$(LIB_SRCS))
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/ckpt-meta: $(call obj,meta/main.c $(META_SRCS)) $(LIBCKPT)
$(BIN)/ckpt-node: $(call obj,daemon/main.c $(NODE_SRCS)) $(LIBCKPT)
$(BIN)/ckptfs: $(call obj,fs/main.c $(FS_SRCS)) $(LIBCKPT)
$(BIN)/ckpt: $(call obj,tools/ckpt.c) $(LIBCKPT)
$(BIN)/ckpt-admin: $(call obj,tools/ckpt_admin.c) $(LIBCKPT)
$(BIN)/ckpt-cluster: $(call obj,tools/ckpt_cluster.c) $(LIBCKPT)
$(PROGS):
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBCKPT) $(LIBS)

# Unit tests: one Check suite per module, collected by tests/unit/check_main.c
# from a list generated out of the file names (check_<module>.c exports
# Suite *<module>_suite(void)).
UNIT_MODS := $(patsubst tests/unit/check_%.c,%,$(filter-out tests/unit/check_main.c,$(UNIT_SRCS)))
$(B)/gen/suites.h: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' $(foreach m,$(UNIT_MODS),'CKPT_SUITE($(m))') | cmp -s - $@ || \
	  printf '%s\n' $(foreach m,$(UNIT_MODS),'CKPT_SUITE($(m))') > $@
$(B)/obj/tests/unit/check_main.o: $(B)/gen/suites.h

$(UNIT): $(call obj,$(UNIT_SRCS) $(META_SRCS) $(NODE_SRCS) $(FS_SRCS)) $(LIBCKPT)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBCKPT) $(CHECK_LIBS) $(LIBS)

$(B)/tests/%: $(B)/obj/tests/bench/%.o $(LIBCKPT)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBCKPT) $(LIBS)
$(B)/tests/%: $(B)/obj/tests/integration/%.o $(LIBCKPT)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBCKPT) $(LIBS)
# Fuzz targets build as standalone replay programs (tests/fuzz/fuzz_main.inc)
# that run the corpus and random mutations; with FUZZ=libfuzzer and clang
# they link against libFuzzer instead.
$(B)/tests/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(LIBCKPT)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBCKPT) $(LIBS)

layering-check:
	@scripts/layering-check.sh

check: all $(UNIT) $(HELPERS) $(FUZZERS) layering-check
	@echo "== unit tests ($(UNIT))"
	$(Q)CK_DEFAULT_TIMEOUT=60 $(UNIT)
	@echo "== fuzz smoke runs"
	$(Q)set -e; for f in $(FUZZERS); do $$f -runs=200000 tests/fuzz/corpus/$$(basename $$f | sed 's/^fuzz_//') >/dev/null; echo "  ok $$f"; done
	$(Q)BIN=$(BIN) TESTBIN=$(B)/tests scripts/run-integration.sh
	@echo "== RDMA tests on soft-RoCE in a qemu guest (tests/rdma/run.sh test)"
	$(Q)BIN=$(BIN) TESTBIN=$(B)/tests tests/rdma/run.sh test; rc=$$?; \
	  if [ $$rc = 77 ]; then echo "== RDMA tests SKIPPED: the reason is printed above"; \
	  elif [ $$rc != 0 ]; then echo "== RDMA tests FAILED (exit $$rc)"; exit $$rc; fi

# RDMA for real where there is no RDMA hardware: the transport suite over
# rdma/auto/tcp, the cluster over RDMA and the RDMA-vs-TCP benchmark, inside
# a qemu guest running Debian's kernel with rdma_rxe (tests/rdma/run.sh
# installs qemu and fetches that kernel; it skips, saying why, where it
# cannot run).  The guest kernel is cached in build/rdma-vm/.
check-rdma: all $(UNIT) $(B)/tests/bench_net
	$(Q)BIN=$(BIN) TESTBIN=$(B)/tests tests/rdma/run.sh all; rc=$$?; \
	  if [ $$rc = 77 ]; then echo "== RDMA tests SKIPPED: the reason is printed above"; \
	  elif [ $$rc != 0 ]; then echo "== RDMA tests FAILED (exit $$rc)"; exit $$rc; fi

unit-check: $(UNIT)
	$(Q)$(UNIT)

asan:
	$(MAKE) check SANITIZE=1

coverage:
	$(MAKE) check COVERAGE=1
	gcov -o build/cov/obj/lib lib/*.c >/dev/null && echo "coverage: *.gcov in $(CURDIR)"

fuzz: $(FUZZERS)
	@echo "fuzz targets: $(FUZZERS)"

bench: all $(BENCHES)
	$(Q)BIN=$(BIN) TESTBIN=$(B)/tests scripts/bench.sh

demo: all
	$(Q)BIN=$(BIN) KEEP=$(KEEP) scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/include/ckptfs
	install -m 755 $(BIN)/ckpt $(BIN)/ckpt-admin $(BIN)/ckpt-cluster $(BIN)/ckptfs $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BIN)/ckpt-meta $(BIN)/ckpt-node $(DESTDIR)$(PREFIX)/sbin/
	ln -sf $(PREFIX)/bin/ckptfs $(DESTDIR)$(PREFIX)/sbin/mount.ckptfs
	install -m 644 lib/*.h $(DESTDIR)$(PREFIX)/include/ckptfs/
	install -m 644 $(LIBCKPT) $(DESTDIR)$(PREFIX)/lib/ 2>/dev/null || \
	  { install -d $(DESTDIR)$(PREFIX)/lib && install -m 644 $(LIBCKPT) $(DESTDIR)$(PREFIX)/lib/; }
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/man8/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	echo '.so man8/mount.ckptfs.8' >$(DESTDIR)$(PREFIX)/share/man/man8/ckptfs.8

clean:
	rm -rf build

distclean: clean

help:
	@sed -n '2,10p' Makefile | sed 's/^# \{0,1\}//'

-include $(shell find $(B)/obj -name "*.d" 2>/dev/null)
