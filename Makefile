# ev_iouring: libev 4.33 + patches/ + ev_iouring.c, built without recursion.
#
#   make                 library, headers, libev.pc, test binaries; runs the demo
#   make check           runs the cmocka tests (exit 77 = SKIP)
#   make ci              check-patches check-warnings check-symbols check
#                        check-asan check-valgrind
#   make check-kernel    the tests inside Debian's kernels under qemu (TCG):
#                        KERNEL=6.1 (default) or KERNELS="5.10 6.1 6.12 7"
#   make install         PREFIX=/usr/local DESTDIR=
#   make B=dir           build somewhere else (default build/)
#   make V=1             show the commands
#
# libev 4.33 comes from LIBEV_SRC=dir, LIBEV_TARBALL=file, apt-get source
# or upstream, in that order (tools/fetch-libev.sh); the sha256 is checked.

srcdir := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
B      ?= build

# user variables: never assigned here except as defaults
CC         ?= cc
CFLAGS     ?=
CPPFLAGS   ?=
LDFLAGS    ?=
LDLIBS     ?=
DESTDIR    ?=
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PKG_CONFIG ?= pkg-config
CLANG      ?= clang
VALGRIND   ?= valgrind
TEST_TIMEOUT ?= 600
KERNEL     ?= 6.1
KERNELS    ?= $(KERNEL)

# project flags; the user's CPPFLAGS/CFLAGS come last, so they win
EV_OPT       = -g -O2
EV_DEFS      = -DHAVE_CONFIG_H
EV_INC       = -I$(B)/libev
TEST_OPT     = -g -O1
TEST_DEFS    = -DEV_IOURING_TEST_HOOKS=1
TEST_INC     = -I$(B)/libev -I$(srcdir)/tests -I$(srcdir)
TEST_WARN    = -Wall -Wextra -Wno-unused-parameter
# ev.h's ev_init casts trip -Wstrict-aliasing at -O2
DEMO_WARN    = -Wall -Wextra -Wno-strict-aliasing
ASAN_FLAGS   = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_CFLAGS   = $(EV_OPT) $(EV_DEFS) $(EV_INC) $(CPPFLAGS) $(CFLAGS)
TEST_CFLAGS  = $(TEST_OPT) $(TEST_DEFS) $(EV_DEFS) $(EV_INC) $(CPPFLAGS) $(CFLAGS)
TEST_PCFLAGS = $$($(PKG_CONFIG) --cflags cmocka liburing)
TEST_PCLIBS  = $$($(PKG_CONFIG) --libs cmocka liburing)
TEST_LIBS    = -lpthread -lm

LIBEV_VERSION = 4.33
SONAME        = libev.so.4
SOFILE        = libev.so.4.0.0

# keep sorted; a name without tests/test_<name>.c yet is skipped
TESTS = abi chain differential embed files fork hostile init io modify overflow threads timeout watchers
VALGRIND_TESTS = fork io modify timeout

have_test    = $(if $(wildcard $(srcdir)/tests/common.c),$(if $(wildcard $(srcdir)/tests/test_$(1).c),$(1)))
TESTS_BUILT  = $(strip $(foreach t,$(TESTS),$(call have_test,$(t))))
TESTS_VG     = $(strip $(foreach t,$(VALGRIND_TESTS),$(call have_test,$(t))))
TEST_HEADERS = $(wildcard $(srcdir)/tests/*.h)

PATCHES = $(addprefix $(srcdir)/patches/,$(shell cat $(srcdir)/patches/series 2>/dev/null))
HEADERS = ev.h ev++.h event.h

ifeq ($(V),1)
quiet =
else
quiet = @printf '  %-8s %s\n' '$(1)' '$(2)';
endif
Q = $(if $(filter 1,$(V)),,@)
DEPS = PKG_CONFIG='$(PKG_CONFIG)' sh $(srcdir)/tools/deps.sh

.PHONY: all lib demo tests check check-asan check-valgrind check-warnings \
        check-patches check-symbols check-programs check-embed check-kernel ci check-all \
        bench bench-plot bench-features install uninstall clean

all: lib tests demo

lib: $(B)/libev.a $(B)/$(SONAME) $(B)/libev.so $(addprefix $(B)/include/,$(HEADERS)) $(B)/libev.pc

$(B) $(B)/obj/pic $(B)/obj/static $(B)/include $(B)/demo $(B)/test $(B)/test-asan $(B)/bench:
	$(Q)mkdir -p $@

#############################################################################
# libev 4.33: pristine, then patched with our two files copied in

$(B)/libev-$(LIBEV_VERSION)/.pristine: | $(B)
	$(Q)$(DEPS) patch
	$(call quiet,FETCH,libev $(LIBEV_VERSION))sh $(srcdir)/tools/fetch-libev.sh $(B)
	$(Q)touch $@

$(B)/libev/.patched: $(B)/libev-$(LIBEV_VERSION)/.pristine $(srcdir)/patches/series $(PATCHES)
	$(call quiet,PATCH,$(B)/libev)rm -rf $(B)/libev && cp -R $(B)/libev-$(LIBEV_VERSION) $(B)/libev \
	  && rm -f $(B)/libev/.pristine \
	  && for p in $(PATCHES); do \
	       patch -d $(B)/libev -p1 --batch --forward --quiet < $$p || { echo "$$p does not apply" >&2; exit 1; }; \
	     done
	$(Q)touch $@

$(B)/libev/config.h: $(B)/libev/.patched
	$(call quiet,CONFIG,$@)cd $(B)/libev && ./configure -q CC='$(CC)' CPPFLAGS='$(CPPFLAGS)' \
	  CFLAGS='$(EV_OPT) $(CFLAGS)' LDFLAGS='$(LDFLAGS)' >configure.log 2>&1 \
	  || { cat configure.log >&2; exit 1; }
	$(Q)touch $@

$(B)/libev/ev_iouring.c: $(srcdir)/ev_iouring.c $(B)/libev/.patched
	$(call quiet,CP,$@)cp $< $@

$(B)/libev/ev_iouring_abi.h: $(srcdir)/ev_iouring_abi.h $(B)/libev/.patched
	$(call quiet,CP,$@)cp $< $@

EV_C_DEPS    = $(B)/libev/.patched $(B)/libev/config.h $(B)/libev/ev_iouring.c $(B)/libev/ev_iouring_abi.h
EVENT_C_DEPS = $(B)/libev/.patched $(B)/libev/config.h

#############################################################################
# product: libev.a (non-PIC, like libtool's) and libev.so.4 (PIC)

$(B)/obj/static/ev.o: $(EV_C_DEPS) | $(B)/obj/static
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) -c -o $@ $(B)/libev/ev.c

$(B)/obj/static/event.o: $(EVENT_C_DEPS) | $(B)/obj/static
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) -c -o $@ $(B)/libev/event.c

$(B)/obj/pic/ev.o: $(EV_C_DEPS) | $(B)/obj/pic
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) -fPIC -c -o $@ $(B)/libev/ev.c

$(B)/obj/pic/event.o: $(EVENT_C_DEPS) | $(B)/obj/pic
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) -fPIC -c -o $@ $(B)/libev/event.c

$(B)/libev.a: $(B)/obj/static/ev.o $(B)/obj/static/event.o
	$(call quiet,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(B)/$(SOFILE): $(B)/obj/pic/ev.o $(B)/obj/pic/event.o
	$(call quiet,LD,$@)$(CC) $(EV_OPT) $(CFLAGS) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ -lm $(LDLIBS)

$(B)/$(SONAME): $(B)/$(SOFILE)
	$(Q)ln -sf $(SOFILE) $@

$(B)/libev.so: $(B)/$(SONAME)
	$(Q)ln -sf $(SONAME) $@

$(B)/include/%.h: $(B)/libev/.patched | $(B)/include
	$(Q)cp $(B)/libev/$*.h $@

# regenerated whenever PREFIX, LIBDIR or INCLUDEDIR change
$(B)/libev.pc: $(srcdir)/libev.pc.in FORCE | $(B)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(LIBEV_VERSION)|g' $< > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@ && echo '  GEN      $@'; fi

FORCE:

# the exported symbols must be those of Debian's libev4: Symbols.ev + Symbols.event
check-symbols: $(B)/$(SONAME)
	$(Q)cat $(B)/libev/Symbols.ev $(B)/libev/Symbols.event | LC_ALL=C sort > $(B)/symbols.expected
	$(Q)nm -D --defined-only $(B)/$(SONAME) | awk '$$2 ~ /^[TDBRVW]$$/ { print $$3 }' | LC_ALL=C sort > $(B)/symbols.actual
	$(Q)diff -u $(B)/symbols.expected $(B)/symbols.actual \
	  && echo "check-symbols: $$(wc -l < $(B)/symbols.actual) symbols, as Debian's libev4"

#############################################################################
# demo: the installed-library view, linked against our libev.so.4

$(B)/demo/demo: $(srcdir)/demo/demo.c $(B)/$(SONAME) $(B)/libev.so $(addprefix $(B)/include/,$(HEADERS)) $(srcdir)/ev_iouring_abi.h | $(B)/demo
	$(call quiet,CC,$@)$(CC) $(EV_OPT) $(DEMO_WARN) -I$(B)/include -I$(srcdir) $(CPPFLAGS) $(CFLAGS) \
	  -o $@ $< -L$(B) -Wl,-rpath,$(abspath $(B)) $(LDFLAGS) -lev $(LDLIBS)

demo: $(B)/demo/demo
	$(Q)LIBEV_IOURING_VERBOSE=1 $(B)/demo/demo

#############################################################################
# tests: libev-test.a (test hooks compiled in) and one binary per tests/test_<name>.c

$(B)/test/.deps $(B)/test-asan/.deps: | $(B)/test $(B)/test-asan
	$(Q)$(DEPS) pkg-config pc:cmocka pc:liburing
	$(Q)touch $@

$(B)/test/ev.o: $(EV_C_DEPS) | $(B)/test
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) -c -o $@ $(B)/libev/ev.c

$(B)/test/event.o: $(EVENT_C_DEPS) | $(B)/test
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) -c -o $@ $(B)/libev/event.c

$(B)/test-asan/ev.o: $(EV_C_DEPS) | $(B)/test-asan
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -c -o $@ $(B)/libev/ev.c

$(B)/test-asan/event.o: $(EVENT_C_DEPS) | $(B)/test-asan
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -c -o $@ $(B)/libev/event.c

$(B)/test/libev-test.a $(B)/test-asan/libev-test.a: $(B)/%/libev-test.a: $(B)/%/ev.o $(B)/%/event.o
	$(call quiet,AR,$@)rm -f $@ && $(AR) rcs $@ $^

TEST_SRC_DEPS = $(srcdir)/tests/common.c $(TEST_HEADERS) $(srcdir)/ev_iouring_abi.h $(B)/libev/.patched

$(B)/test/test_%: $(srcdir)/tests/test_%.c $(TEST_SRC_DEPS) $(B)/test/libev-test.a $(B)/test/.deps
	$(call quiet,CCLD,$@)$(CC) $(TEST_OPT) $(TEST_DEFS) $(TEST_WARN) $(TEST_INC) $(TEST_PCFLAGS) $(CPPFLAGS) $(CFLAGS) \
	  -o $@ $< $(srcdir)/tests/common.c $(B)/test/libev-test.a $(LDFLAGS) $(TEST_PCLIBS) $(TEST_LIBS) $(LDLIBS)

$(B)/test-asan/test_%: $(srcdir)/tests/test_%.c $(TEST_SRC_DEPS) $(B)/test-asan/libev-test.a $(B)/test-asan/.deps
	$(call quiet,CCLD,$@)$(CC) $(TEST_OPT) $(TEST_DEFS) $(TEST_WARN) $(ASAN_FLAGS) $(TEST_INC) $(TEST_PCFLAGS) $(CPPFLAGS) $(CFLAGS) \
	  -o $@ $< $(srcdir)/tests/common.c $(B)/test-asan/libev-test.a $(LDFLAGS) $(TEST_PCLIBS) $(TEST_LIBS) $(LDLIBS)

tests: $(B)/test/libev-test.a $(TESTS_BUILT:%=$(B)/test/test_%)

RUN_TESTS = TEST_TIMEOUT='$(TEST_TIMEOUT)' sh $(srcdir)/tools/run-tests.sh

check: tests
	$(Q)$(RUN_TESTS) $(B)/test $(TESTS_BUILT)

check-asan: $(B)/test-asan/libev-test.a $(TESTS_BUILT:%=$(B)/test-asan/test_%)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(RUN_TESTS) $(B)/test-asan $(TESTS_BUILT)

# valgrind: definite leaks and memory errors fail; open fds are reported only
VALGRIND_RUN = $(VALGRIND) -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --track-fds=yes $(if $(wildcard $(srcdir)/tests/valgrind.supp),--suppressions=$(srcdir)/tests/valgrind.supp)

check-valgrind: $(TESTS_VG:%=$(B)/test/test_%)
	$(Q)$(DEPS) valgrind
	$(Q)RUN_WRAPPER='$(VALGRIND_RUN)' TEST_TIMEOUT=1800 sh $(srcdir)/tools/run-tests.sh $(B)/test $(TESTS_VG)

#############################################################################
# static checks

# ev.c (which includes ev_iouring.c) under gcc and clang, as C and C++,
# with config.h and standalone; ev_iouring_abi.h alone and freestanding
check-warnings: $(EV_C_DEPS)
	$(Q)$(DEPS) clang
	$(Q)CC='$(CC)' CLANG='$(CLANG)' sh $(srcdir)/tools/check-warnings.sh $(B) $(srcdir)

# the series applies with patch -p1, git am and quilt, and builds after each patch
check-patches: $(B)/libev-$(LIBEV_VERSION)/.pristine $(B)/libev/config.h
	$(Q)$(DEPS) git quilt patch
	$(Q)CC='$(CC)' sh $(srcdir)/tools/check-patches.sh $(B) $(srcdir)

# the CI: README's test command
ci: check-patches check-warnings check-symbols check-embed check-programs check-asan check-valgrind check
check-all: ci

#############################################################################
# other helpers' targets

# exit 77 (io_uring unavailable, tools not installable): SKIP, as in check
check-programs: all
	$(Q)sh $(srcdir)/tests/programs/run.sh $(B) || { rc=$$?; [ $$rc = 77 ] && echo "SKIP: check-programs"; [ $$rc = 77 ]; }

check-embed: $(EV_C_DEPS)
	$(Q)sh $(srcdir)/tests/embed/run.sh $(B) || { rc=$$?; [ $$rc = 77 ] && echo "SKIP: check-embed"; [ $$rc = 77 ]; }

# the suite inside Debian's own kernels (tools/check-kernel.sh); exit 77
# (qemu cannot run here) is SKIP
$(B)/kernels:
	$(Q)mkdir -p $@

$(B)/kernels/probe: $(srcdir)/tools/kernel/probe.c | $(B)/kernels
	$(call quiet,CCLD,$@)$(CC) -O2 -Wall -Wextra $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

check-kernel: tests $(B)/$(SONAME) $(B)/kernels/probe
	$(Q)TESTS='$(TESTS_BUILT)' sh $(srcdir)/tools/check-kernel.sh $(B) $(srcdir) $(KERNELS) \
	  || { rc=$$?; [ $$rc = 77 ] && echo "SKIP: check-kernel"; [ $$rc = 77 ]; }

$(B)/libev-orig/.built: $(B)/libev-$(LIBEV_VERSION)/.pristine
	$(call quiet,BUILD,$(B)/libev-orig (libev $(LIBEV_VERSION) as released))rm -rf $(B)/libev-orig \
	  && cp -R $(B)/libev-$(LIBEV_VERSION) $(B)/libev-orig && rm -f $(B)/libev-orig/.pristine \
	  && cd $(B)/libev-orig && ./configure -q CC='$(CC)' CPPFLAGS='$(CPPFLAGS)' \
	       CFLAGS='$(EV_OPT) $(CFLAGS)' LDFLAGS='$(LDFLAGS)' >configure.log 2>&1 \
	  && $(CC) $(EV_OPT) $(EV_DEFS) -I. $(CPPFLAGS) $(CFLAGS) -c -o ev.o ev.c \
	  && $(CC) $(EV_OPT) $(EV_DEFS) -I. $(CPPFLAGS) $(CFLAGS) -c -o event.o event.c \
	  && $(AR) rcs libev.a ev.o event.o
	$(Q)touch $@

$(B)/bench/bench-ours: $(srcdir)/bench/bench.c $(B)/libev.a $(addprefix $(B)/include/,$(HEADERS)) | $(B)/bench
	$(call quiet,CCLD,$@)$(CC) $(EV_OPT) -I$(B)/include -I$(srcdir) $(CPPFLAGS) $(CFLAGS) \
	  -o $@ $< $(B)/libev.a $(LDFLAGS) -lm $(LDLIBS)

$(B)/bench/bench-orig: $(srcdir)/bench/bench.c $(B)/libev-orig/.built | $(B)/bench
	$(call quiet,CCLD,$@)$(CC) $(EV_OPT) -I$(B)/libev-orig $(CPPFLAGS) $(CFLAGS) \
	  -o $@ $< $(B)/libev-orig/libev.a $(LDFLAGS) -lm $(LDLIBS)

bench: all $(B)/bench/bench-ours $(B)/bench/bench-orig
	$(Q)$(DEPS) strace
	sh $(srcdir)/bench/run.sh $(B)

bench-plot:
	sh $(srcdir)/bench/plot.sh $(B)

bench-features: all
	sh $(srcdir)/bench/features.sh $(B)

#############################################################################
# install, clean

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(B)/libev.a $(DESTDIR)$(LIBDIR)/libev.a
	install -m 755 $(B)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libev.so
	install -m 644 $(addprefix $(B)/include/,$(HEADERS)) $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(B)/libev.pc $(DESTDIR)$(PKGCONFIGDIR)/libev.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libev.a $(DESTDIR)$(LIBDIR)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libev.so $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(HEADERS)) \
	  $(DESTDIR)$(PKGCONFIGDIR)/libev.pc

clean:
	rm -rf $(B)
