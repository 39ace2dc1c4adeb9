/*
 * common.h: loop fixtures, kernel probes and small helpers shared by the
 * cmocka tests in tests/test_*.c.
 *
 * how a test binary uses it:
 *
 *   static void
 *   test_io_pipe_readable (void **state)
 *   {
 *     struct test_ctx *ctx = *state;     (ctx->loop is a fresh loop)
 *     ...
 *   }
 *
 *   static const struct CMUnitTest tests [] = {
 *     TEST_ALL (test_io_pipe_readable),  (every mode below, one test each)
 *     TEST_ON (test_io_other, iouring),  (one mode)
 *   };
 *
 *   int
 *   main (void)
 *   {
 *     if (test_probe ())
 *       return 77;                       (io_uring unusable: whole binary skips)
 *     return cmocka_run_group_tests (tests, NULL, NULL);
 *   }
 *
 * a "mode" is a backend plus the kernel features hidden from it by the fake
 * kernel of fakekernel.c, which stands between libev.a and the real one.
 * setup_<mode> sets its inputs, creates the loop with EVFLAG_NOENV, checks
 * that the loop really got that backend and that the ring really went
 * without the masked feature, and arms a watchdog alarm; teardown_loop
 * undoes all of it, and fails the test when the backend used a feature the
 * fake kernel hid from it.  cmocka shows a test as "test_name@mode".
 *
 * rules for tests: no timing assertions except "not before its time" and
 * generous hang guards; every loop is bounded by an iteration count; code
 * that runs in a forked child never uses cmocka asserts (they would longjmp
 * into the child's copy of the runner): it reports through _exit codes.
 */

#ifndef TESTS_COMMON_H
#define TESTS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/types.h>
#include <cmocka.h>

#include "ev.h"
#include "ev_iouring_abi.h"

/*****************************************************************************/
/* the fake kernel (fakekernel.c, linked into every test binary): its
   ev_iouring_test_* inputs and outputs are declared in fakekernel.h */

#include "fakekernel.h"

/* zero every input of the fake kernel (outputs are left alone) */
void test_hooks_reset (void);

/*****************************************************************************/
/* the kernel, probed once by test_probe () before cmocka starts */

struct test_kernel
{
  unsigned int version;     /* uname release as 0xMMmmpp: 0x060c00 is 6.12 */
  int          setup_errno; /* errno of a plain io_uring_setup, 0 if it worked */
  unsigned int features;    /* io_uring_params.features of a plain ring */
  unsigned int setup_flags; /* EV_IORING_SETUP_* the kernel accepted (probed one by one) */
  int          ring_fds;    /* EV_IORING_REGISTER_RING_FDS works (5.18) */
  unsigned int pollout_spurious; /* TEST_POLLOUT_*: filled by test_probe_pollout () */
};

extern struct test_kernel test_kernel;

/* a POLL_ADD (POLLOUT) on a full pipe (or socket) whose reader takes one
   byte completes with POLLOUT while poll () and write () say it is not
   writable: the kernel trusts the wakeup's key (seen on 6.1, 5.10 and 6.12;
   6.18 re-checks the file).  libev allows spurious readiness */
#define TEST_POLLOUT_PIPE   1U
#define TEST_POLLOUT_SOCKET 2U

/* measure it (about 0.2 s: a wait for a completion that should not come),
   into test_kernel.pollout_spurious; returns it */
unsigned int test_probe_pollout (void);

/* fill test_kernel; 0 when io_uring is usable, 77 when the binary must skip.
   also installs a syserr callback (a test fails instead of aborting; a
   forked child _exits with 98), ignores SIGPIPE, and applies the
   environment variables TEST_FILTER and TEST_SKIP (cmocka patterns, '*'
   and '?', matched against "test_name@mode") to run some tests only, or
   to leave some out */
int test_probe (void);

/*****************************************************************************/
/* modes and the per-test fixture */

struct test_mode
{
  const char  *name;
  unsigned int backend;    /* EVBACKEND_IOURING or EVBACKEND_EPOLL */
  unsigned int nofeat;     /* -> ev_iouring_test_nofeat */
  unsigned int nosetup;    /* -> ev_iouring_test_nosetup */
};

extern const struct test_mode test_mode_iouring;   /* everything the kernel offers */
extern const struct test_mode test_mode_epoll;     /* the reference */
extern const struct test_mode test_mode_noextarg;  /* timeouts through the timerfd (< 5.11) */
extern const struct test_mode test_mode_nosinglemmap; /* three mmaps (< 5.4) */
extern const struct test_mode test_mode_nocqsize;  /* CQ = 2 * SQ (< 5.5) */
extern const struct test_mode test_mode_nonodrop;  /* CQ overflow drops (< 5.5) */
extern const struct test_mode test_mode_nocoop;    /* no COOP_TASKRUN/TASKRUN_FLAG (< 5.19) */
extern const struct test_mode test_mode_nosqarray; /* with the SQ index array (< 6.6) */
extern const struct test_mode test_mode_nocqeskip; /* no IOSQE_CQE_SKIP_SUCCESS (< 5.17): removals post cqes */
extern const struct test_mode test_mode_nooverflowflag; /* a backlog but no IORING_SQ_CQ_OVERFLOW (5.5 - 5.7) */
extern const struct test_mode test_mode_oldest;    /* all of the above at once */

#define TEST_MAX_FDS 64

struct test_ctx
{
  struct ev_loop         *loop;
  const struct test_mode *mode;
  int                     fds [TEST_MAX_FDS]; /* closed by teardown when >= 0 */
  void                   *data;               /* free for the test */
};

/* seconds until SIGALRM kills a hung test binary (setup arms it) */
#define TEST_WATCHDOG 60

/* hooks from the mode, loop, backend and path checks, watchdog; -1 on failure */
int test_loop_setup (void **state, const struct test_mode *mode);
int teardown_loop (void **state);

int setup_iouring (void **state);
int setup_epoll (void **state);
int setup_noextarg (void **state);
int setup_nosinglemmap (void **state);
int setup_nocqsize (void **state);
int setup_nonodrop (void **state);
int setup_nocoop (void **state);
int setup_nosqarray (void **state);
int setup_nocqeskip (void **state);
int setup_nooverflowflag (void **state);
int setup_oldest (void **state);

/* one test in one mode, named "f@mode" */
#define TEST_ON(f, what) { #f "@" #what, f, setup_ ## what, teardown_loop, NULL }

/* libev semantics: same expectations on io_uring and on epoll */
#define TEST_BOTH(f) TEST_ON (f, iouring), TEST_ON (f, epoll)

/* the older kernel paths of our backend, by masking */
#define TEST_PATHS(f)                                                   \
  TEST_ON (f, noextarg), TEST_ON (f, nosinglemmap), TEST_ON (f, nocqsize), \
  TEST_ON (f, nonodrop), TEST_ON (f, nocoop), TEST_ON (f, nosqarray),   \
  TEST_ON (f, nocqeskip), TEST_ON (f, oldest)

#define TEST_ALL(f) TEST_BOTH (f), TEST_PATHS (f)

/* is this test running on our backend (any mode but epoll)? */
#define TEST_IS_IOURING(ctx) ((ctx)->mode->backend == EVBACKEND_IOURING)

/* create a loop for mode (hooks set, NOENV); NULL if it fails.  the caller
   resets the hooks when done (teardown_loop does) */
struct ev_loop *test_loop_new (const struct test_mode *mode);

/*****************************************************************************/
/* fds */

/* number of open fds of this process (/proc/self/fd) */
int test_fd_count (void);

/* io_uring mappings of this process (/proc/self/maps); teardown_loop
   fails a test that leaves any, or leaves polls armed on a destroyed
   loop's ring */
int test_ring_mappings (void);

/* polls armed on this process's rings (their fdinfo's PollList) */
int test_ring_polls (void);

void test_nonblock (int fd);

/* non-blocking, close-on-exec pair; closed by teardown_loop */
void test_pipe (struct test_ctx *ctx, int fds [2]);
void test_socketpair (struct test_ctx *ctx, int fds [2]);

/* remember fd for teardown, or close it now and forget it */
void test_fd_track (struct test_ctx *ctx, int fd);
void test_close (struct test_ctx *ctx, int fd);

/* write / read exactly one byte, asserting success */
void test_put (int fd);
void test_get (int fd);

/* wait for a forked child: it must have exited, with status 0 (a
   child started by hand; test_in_child below forks and waits itself) */
void test_child_ok (pid_t pid);

/* make room for n more open fds: raise the soft RLIMIT_NOFILE towards the
   hard one (as root, the hard one too) as far as needed.  returns 1 when
   there is room, else 0 and the test skips, saying why */
int test_fd_room (int n);

/* the soft RLIMIT_NOFILE raised to want, or as far as the hard limit (and,
   as root, fs.nr_open) allows; returns the soft limit then in force */
long test_nofile_raise (long want);

/*****************************************************************************/
/* child processes: "exit 0 passed, exit 77 skipped, anything else failed"

   code in a child never uses cmocka asserts (they would longjmp into the
   child's copy of the runner): it uses TEST_CHILD_CHECK, or returns to
   test_in_child, or calls test_child_skip */

/* run fn (arg) in a forked child under the watchdog; in the parent, the
   child's exit 0 passes, 77 skips the test (cmocka skip ()), anything else,
   or a signal, fails it */
void test_in_child (void (*fn) (void *arg), void *arg);

/* in a child: print the reason to stderr and _exit (77) */
void test_child_skip (const char *fmt, ...) __attribute__ ((noreturn, format (printf, 1, 2)));

/* in a child: print where and what, and _exit (1) */
#define TEST_CHILD_CHECK(cond)                                          \
  do {                                                                  \
    if (!(cond))                                                        \
      {                                                                 \
        fprintf (stderr, "child %d: %s:%d: %s\n", (int)getpid (),       \
                 __FILE__, __LINE__, #cond);                            \
        _exit (1);                                                      \
      }                                                                 \
  } while (0)

/* wait for pid (-1: any child): 0 if it exited 0, 77 if it exited 77,
   else -1, with the exit status or signal told on stderr */
int test_child_status (pid_t pid);

/* in a child where io_uring is refused outright (a plain io_uring_setup
   fails with -err: seccomp, RLIMIT_MEMLOCK): a loop asking for io_uring or
   epoll gets a working epoll, one asking for io_uring alone gets NULL;
   ev_loop_new (0) gets NULL under LIBEV_FLAGS=128 (io_uring) and epoll
   under LIBEV_FLAGS=132 (io_uring | epoll); no fd is left behind.
   reports through TEST_CHILD_CHECK */
void test_child_unavailable (int err);

/* a reason on stdout, then cmocka's skip (): for a skip decided at run time */
#define TEST_SKIP(...) do { print_message ("skip: " __VA_ARGS__); skip (); } while (0)

/*****************************************************************************/
/* a counting io watcher */

struct test_io
{
  ev_io w;
  int   calls;
  int   revents;    /* or of every revents seen */
  int   last;       /* revents of the last call */
  int   drain;      /* read everything readable in the callback */
  int   stop;       /* ev_io_stop in the callback */
};

/* ev_io_init with test_io_cb; the watcher is not started */
void test_io_init (struct test_io *t, int fd, int events);
void test_io_cb (struct ev_loop *loop, ev_io *w, int revents);

/* test_io_init, then ev_io_start */
void test_io_start (struct ev_loop *loop, struct test_io *t, int fd, int events);

/* ev_io_stop, ev_io_set to fd and events, ev_io_start (the counts stay) */
void test_io_reset (struct ev_loop *loop, struct test_io *t, int fd, int events);

/* a timer that only ends a wait which went wrong: after seconds it sets
   test_guard_fired and breaks the loop (EVBREAK_ALL).  it is unref'd, so it
   does not keep ev_run (loop, 0) alive; test_guard_stop refs it again
   before stopping it.  one guard at a time */
#define TEST_GUARD_SECONDS 10.

extern int test_guard_fired;

void test_guard_start (struct ev_loop *loop, ev_timer *t, ev_tstamp seconds);
void test_guard_stop (struct ev_loop *loop, ev_timer *t);

/* the loop delivers: a pipe watcher, armed while idle, is called exactly
   once with EV_READ within 100 EVRUN_NOWAIT iterations after a write, and
   not again once drained.  no cmocka asserts (a child may use it): 1 or 0 */
int test_loop_works (struct ev_loop *loop);

/* ev_run (EVRUN_NOWAIT) n times */
void test_run_nowait (struct ev_loop *loop, int n);

/* ev_run (EVRUN_ONCE) until *flag becomes non-zero, at most max times;
   returns the number of iterations it took, or -1 */
int test_run_until (struct ev_loop *loop, const int *flag, int max);

#endif
