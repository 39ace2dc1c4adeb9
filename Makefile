# ev_iouring: libev 4.33 + patches/ + ev_iouring.c, built without recursion.
#
#   make                 library, headers, libev.pc, test binaries; runs the demo
#   make check           the cmocka tests against libev.a (exit 77 = SKIP)
#   make check-unprivileged  the same as nobody with Debian's default limits
#                        (memlock 8 MiB, nofile 1024), when run as root
#   make check-asan      the same tests and libev, built with ASan and UBSan
#   make check-kernel    the tests inside Debian's kernels under qemu (TCG):
#                        KERNEL=6.1 (default) or KERNELS="5.10 6.1 6.12 7"
#   make ci              what .ci/run runs first: the static checks, check-embed,
#                        check-programs, check-asan, check-valgrind, check
#   make bench           benchmark against libev 4.33 as released
#   make install         PREFIX=/usr/local DESTDIR=
#   make deb             libev4/libev-dev .debs from Debian's libev source, in $(B)/deb
#   make check-deb       installs them over Debian's, checks, puts Debian's back (root)
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
UNPRIV_USER  ?= nobody
UNPRIV_GROUP ?= nogroup
KERNEL     ?= 6.1
KERNELS    ?= $(KERNEL)

# project flags; the user's CPPFLAGS/CFLAGS come last, so they win
EV_OPT       = -g -O2
EV_DEFS      = -DHAVE_CONFIG_H
EV_INC       = -I$(B)/libev
TEST_OPT     = -g -O1
TEST_INC     = -I$(B)/libev -I$(srcdir)/tests -I$(srcdir)
TEST_WARN    = -Wall -Wextra -Wno-unused-parameter
# ev.h's ev_init casts trip -Wstrict-aliasing at -O2
DEMO_WARN    = -Wall -Wextra -Wno-strict-aliasing
ASAN_FLAGS   = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_CFLAGS   = $(EV_OPT) $(EV_DEFS) $(EV_INC) $(CPPFLAGS) $(CFLAGS)
TEST_PCFLAGS = $$($(PKG_CONFIG) --cflags cmocka liburing)
TEST_CFLAGS  = $(TEST_OPT) $(TEST_WARN) $(TEST_INC) $(TEST_PCFLAGS) $(CPPFLAGS) $(CFLAGS)
TEST_PCLIBS  = $$($(PKG_CONFIG) --libs cmocka liburing)
TEST_LIBS    = -lpthread -lm -ldl

LIBEV_VERSION = 4.33
SONAME        = libev.so.4
SOFILE        = libev.so.4.0.0

# keep sorted: tests/test_<name>.c
TESTS = abi chain close differential embed fallback files fork init io limits modify overflow threads tier timeout watchers
VALGRIND_TESTS = fork io modify timeout

# linked into every test binary: fixtures, and the fake kernel in front of libev.a
TEST_COMMON  = common fakekernel
TEST_HEADERS = $(wildcard $(srcdir)/tests/*.h)

LIBEV_OBJ = ev event

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
        check-patches check-symbols check-programs check-embed check-unprivileged check-kernel ci \
        bench bench-plot bench-features install uninstall clean deb check-deb

all: lib tests demo

lib: $(B)/libev.a $(B)/$(SONAME) $(B)/libev.so $(addprefix $(B)/include/,$(HEADERS)) $(B)/libev.pc

$(B) $(B)/include $(B)/demo $(B)/test $(B)/test-asan $(B)/bench:
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
# product: libev.a (non-PIC, like libtool's) and libev.so.4 (PIC); the
# ASan tests' libev.a is the same ev.c and event.c with the sanitizers

# $(B)/obj/<flavour>/<ev|event>.o.  asan is -O1, as ASan advises: at -O2 a
# thread that pthread_cancel unwinds out of ev_run leaves redzones poisoned,
# and ASan reports its own thread exit (test_threads_cancel)
OBJ_FLAGS_static = $(ALL_CFLAGS)
OBJ_FLAGS_pic    = $(ALL_CFLAGS) -fPIC
OBJ_FLAGS_asan   = $(TEST_OPT) $(EV_DEFS) $(EV_INC) $(CPPFLAGS) $(CFLAGS) $(ASAN_FLAGS)

$(B)/obj/%.o:
	$(Q)mkdir -p $(@D)
	$(call quiet,CC,$@)$(CC) $(OBJ_FLAGS_$(*D)) -c -o $@ $(B)/libev/$(*F).c

$(foreach f,static pic asan,$(B)/obj/$(f)/ev.o):    $(EV_C_DEPS)
$(foreach f,static pic asan,$(B)/obj/$(f)/event.o): $(EVENT_C_DEPS)

$(B)/libev.a:      $(LIBEV_OBJ:%=$(B)/obj/static/%.o)
$(B)/asan/libev.a: $(LIBEV_OBJ:%=$(B)/obj/asan/%.o)
$(B)/libev.a $(B)/asan/libev.a:
	$(Q)mkdir -p $(@D)
	$(call quiet,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(B)/$(SOFILE): $(LIBEV_OBJ:%=$(B)/obj/pic/%.o)
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
# tests: one binary per tests/test_<name>.c, linked against the libev.a that
# ships (check-asan: its ASan build); fakekernel.o fakes older kernels

$(B)/test/.deps $(B)/test-asan/.deps: | $(B)/test $(B)/test-asan
	$(Q)$(DEPS) pkg-config pc:cmocka pc:liburing
	$(Q)touch $@

TEST_SRC_DEPS = $(TEST_HEADERS) $(srcdir)/ev_iouring_abi.h $(B)/libev/.patched

$(B)/test/%.o: $(srcdir)/tests/%.c $(TEST_SRC_DEPS) | $(B)/test/.deps
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(B)/test-asan/%.o: $(srcdir)/tests/%.c $(TEST_SRC_DEPS) | $(B)/test-asan/.deps
	$(call quiet,CC,$@)$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

$(TESTS:%=$(B)/test/test_%): $(B)/test/%: $(B)/test/%.o $(TEST_COMMON:%=$(B)/test/%.o) $(B)/libev.a
	$(call quiet,CCLD,$@)$(CC) $(TEST_OPT) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_PCLIBS) $(TEST_LIBS) $(LDLIBS)

$(TESTS:%=$(B)/test-asan/test_%): $(B)/test-asan/%: $(B)/test-asan/%.o $(TEST_COMMON:%=$(B)/test-asan/%.o) $(B)/asan/libev.a
	$(call quiet,CCLD,$@)$(CC) $(TEST_OPT) $(ASAN_FLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_PCLIBS) $(TEST_LIBS) $(LDLIBS)

tests: $(TESTS:%=$(B)/test/test_%)

RUN_TESTS = TEST_TIMEOUT='$(TEST_TIMEOUT)' sh $(srcdir)/tools/run-tests.sh

check: tests
	$(Q)$(RUN_TESTS) $(B)/test $(TESTS)

# as root: as $(UNPRIV_USER) with memlock 8 MiB and nofile 1024, from a copy
# in a fresh temporary directory; otherwise as this user, with its limits
check-unprivileged: tests
	$(Q)$(DEPS) setpriv prlimit
	$(Q)UNPRIV_USER='$(UNPRIV_USER)' UNPRIV_GROUP='$(UNPRIV_GROUP)' TEST_TIMEOUT='$(TEST_TIMEOUT)' \
	  sh $(srcdir)/tools/run-unprivileged.sh $(B)/test $(TESTS)

check-asan: $(TESTS:%=$(B)/test-asan/test_%)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(RUN_TESTS) $(B)/test-asan $(TESTS)

# valgrind: definite leaks and memory errors fail; open fds are reported only
VALGRIND_RUN = $(VALGRIND) -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --track-fds=yes

check-valgrind: $(VALGRIND_TESTS:%=$(B)/test/test_%)
	$(Q)$(DEPS) valgrind
	$(Q)RUN_WRAPPER='$(VALGRIND_RUN)' TEST_TIMEOUT=1800 sh $(srcdir)/tools/run-tests.sh $(B)/test $(VALGRIND_TESTS)

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
	$(Q)TESTS='$(TESTS)' sh $(srcdir)/tools/check-kernel.sh $(B) $(srcdir) $(KERNELS) \
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
# Debian packages: Debian's libev source package + patches/ + our two files

deb:
	$(Q)sh $(srcdir)/tools/deb.sh $(B) $(srcdir)

# root only: replaces the system's libev4 for the length of the check
check-deb: deb
	$(Q)sh $(srcdir)/tests/deb/run.sh $(B) || { rc=$$?; [ $$rc = 77 ] && echo "SKIP: check-deb"; [ $$rc = 77 ]; }

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
