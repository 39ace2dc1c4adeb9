/*
 * test_watchers.c: every libev watcher type on an io_uring loop, with the
 * epoll backend as the reference (TEST_BOTH): ev_signal (plain and
 * signalfd), ev_child, ev_stat through inotify, ev_async, ev_embed (our loop
 * embedded in an epoll loop and in one of ours), prepare/check/idle order,
 * priorities, ev_periodic, ev_cleanup and ev_fork after ev_loop_fork;
 * and signals interrupting the wait (EINTR is not an error, with and
 * without SA_RESTART): no io event and no timer is lost.
 *
 * none of these watchers is special to the backend, but each one reaches it
 * through an fd libev watches for itself (the signal pipe or signalfd, the
 * async eventfd, the inotify fd, the embedded loop's backend fd) or through
 * the order ev_run calls things in.  no timing assertions: every wait is
 * bounded by a guard timer that only ends the wait.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/*****************************************************************************/
/* helpers */

/* runs of ev_run (EVRUN_ONCE) a test allows before giving up */
#define MAX_RUNS 1000

/* ev_run (EVRUN_ONCE) until *flag or the guard fires */
static void
run_until (struct ev_loop *loop, const int *flag)
{
  ev_timer guard;
  int i;

  test_guard_start (loop, &guard, TEST_GUARD_SECONDS);

  for (i = 0; i < MAX_RUNS && !*flag && !test_guard_fired; ++i)
    ev_run (loop, EVRUN_ONCE);

  test_guard_stop (loop, &guard);
}

/*****************************************************************************/
/* ev_signal */

static int signal_calls;

static void
signal_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  (void)loop;
  assert_int_equal (w->signum, SIGUSR1);
  assert_int_equal (revents, EV_SIGNAL);
  ++signal_calls;
}

static void
signal_check (struct ev_loop *loop)
{
  ev_signal s;
  int i;

  signal_calls = 0;
  ev_signal_init (&s, signal_cb, SIGUSR1);
  ev_signal_start (loop, &s);

  for (i = 1; i <= 3; ++i)
    {
      assert_int_equal (kill (getpid (), SIGUSR1), 0);
      run_until (loop, &signal_calls);
      assert_false (test_guard_fired);
      assert_int_equal (signal_calls, 1);
      signal_calls = 0;
    }

  ev_signal_stop (loop, &s);
}

static void
test_watchers_signal (void **state)
{
  struct test_ctx *ctx = *state;

  signal_check (ctx->loop);
}

static void
test_watchers_signalfd (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;

  loop = ev_loop_new (ctx->mode->backend | EVFLAG_NOENV | EVFLAG_SIGNALFD);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), ctx->mode->backend);

  signal_check (loop);
  ev_loop_destroy (loop);
}

/*****************************************************************************/
/* ev_child: only the default loop has them */

static int child_calls;

static void
child_cb (struct ev_loop *loop, ev_child *w, int revents)
{
  assert_int_equal (revents, EV_CHILD);
  ++child_calls;
  ev_child_stop (loop, w);
}

static void
test_watchers_child (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  ev_child c;
  pid_t pid;

  loop = ev_default_loop (ctx->mode->backend | EVFLAG_NOENV);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), ctx->mode->backend);

  pid = fork ();
  assert_true (pid >= 0);
  if (!pid)
    _exit (42);

  child_calls = 0;
  ev_child_init (&c, child_cb, pid, 0);
  ev_child_start (loop, &c);

  run_until (loop, &child_calls);

  assert_false (test_guard_fired);
  assert_int_equal (child_calls, 1);
  assert_int_equal (c.rpid, pid);
  assert_true (WIFEXITED (c.rstatus));
  assert_int_equal (WEXITSTATUS (c.rstatus), 42);

  ev_loop_destroy (loop);
}

/*****************************************************************************/
/* ev_stat, through inotify */

static int stat_calls;

static void
stat_cb (struct ev_loop *loop, ev_stat *w, int revents)
{
  (void)loop;
  assert_int_equal (revents, EV_STAT);
  if (w->attr.st_nlink && w->attr.st_size != w->prev.st_size)
    ++stat_calls;
}

static void
test_watchers_stat (void **state)
{
  struct test_ctx *ctx = *state;
  char path [] = "/tmp/ev_iouring_statXXXXXX";
  ev_stat s;
  int fd, i;

  fd = mkstemp (path);
  assert_true (fd >= 0);

  stat_calls = 0;
  ev_stat_init (&s, stat_cb, path, 0.);
  ev_stat_start (ctx->loop, &s);

  /* libev falls back to polling only without inotify: wd is the watch */
  assert_true (s.wd >= 0);

  for (i = 1; i <= 3; ++i)
    {
      assert_int_equal (write (fd, "abc", 3), 3);
      run_until (ctx->loop, &stat_calls);
      assert_false (test_guard_fired);
      assert_true (stat_calls >= 1);
      assert_int_equal (s.attr.st_size, 3 * i);
      stat_calls = 0;
    }

  ev_stat_stop (ctx->loop, &s);
  close (fd);
  unlink (path);
}

/*****************************************************************************/
/* ev_async, sent from the loop's own thread */

static int async_calls;

static void
async_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  (void)loop;
  (void)w;
  assert_int_equal (revents, EV_ASYNC);
  ++async_calls;
}

static void
test_watchers_async (void **state)
{
  struct test_ctx *ctx = *state;
  ev_async a;
  int i;

  async_calls = 0;
  ev_async_init (&a, async_cb);
  ev_async_start (ctx->loop, &a);

  for (i = 1; i <= 3; ++i)
    {
      ev_async_send (ctx->loop, &a);
      ev_async_send (ctx->loop, &a);
      assert_true (ev_async_pending (&a));
      run_until (ctx->loop, &async_calls);
      assert_false (test_guard_fired);
      /* two sends before the loop ran: one callback, as libev documents */
      assert_int_equal (async_calls, 1);
      async_calls = 0;
    }

  ev_async_stop (ctx->loop, &a);
}

/*****************************************************************************/
/* ev_embed: an io_uring loop inside the fixture's loop (epoll or io_uring) */

static void
test_watchers_embed (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *inner;
  struct test_io t;
  ev_embed e;
  int p [2], i;

  /* 4.33 lists io_uring as embeddable; its own backend then aborted */
  assert_true (ev_embeddable_backends () & EVBACKEND_IOURING);

  inner = test_loop_new (&test_mode_iouring);
  assert_non_null (inner);
  assert_int_equal (ev_backend (inner), EVBACKEND_IOURING);

  test_pipe (ctx, p);
  test_io_init (&t, p [0], EV_READ);
  t.drain = 1;
  ev_io_start (inner, &t.w);

  ev_embed_init (&e, 0, inner);
  ev_embed_start (ctx->loop, &e);

  for (i = 1; i <= 3; ++i)
    {
      /* let the outer prepare arm the inner poll first: data that is
         already there is reported from inside that prepare watcher,
         after which the outer loop would block with nothing to do */
      test_run_nowait (ctx->loop, 2);
      assert_int_equal (t.calls, 0);

      test_put (p [1]);
      run_until (ctx->loop, &t.calls);
      assert_false (test_guard_fired);
      assert_int_equal (t.calls, 1);
      assert_int_equal (t.last, EV_READ);
      t.calls = 0;
    }

  ev_embed_stop (ctx->loop, &e);
  ev_io_stop (inner, &t.w);
  ev_loop_destroy (inner);
}

/*****************************************************************************/
/* prepare, check and idle: the order ev_run calls them in */

static char order [64];
static int  order_len;

static void
order_add (char c)
{
  if (order_len < (int)sizeof order - 1)
    order [order_len++] = c;
}

static void prepare_cb (struct ev_loop *l, ev_prepare *w, int r) { (void)l; (void)w; assert_int_equal (r, EV_PREPARE); order_add ('P'); }
static void check_cb (struct ev_loop *l, ev_check *w, int r) { (void)l; (void)w; assert_int_equal (r, EV_CHECK); order_add ('C'); }

static void
idle_cb (struct ev_loop *loop, ev_idle *w, int revents)
{
  (void)loop;
  (void)w;
  assert_int_equal (revents, EV_IDLE);
  order_add ('I');
}

static void
order_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  char c;

  (void)loop;
  assert_int_equal (revents, EV_READ);
  assert_int_equal (read (w->fd, &c, 1), 1);
  order_add ('R');
}

static void
test_watchers_order (void **state)
{
  struct test_ctx *ctx = *state;
  ev_prepare p;
  ev_check c;
  ev_idle i;
  ev_io io;
  int fds [2];

  test_pipe (ctx, fds);
  ev_prepare_init (&p, prepare_cb);
  ev_check_init (&c, check_cb);
  ev_idle_init (&i, idle_cb);
  ev_io_init (&io, order_io_cb, fds [0], EV_READ);
  ev_prepare_start (ctx->loop, &p);
  ev_check_start (ctx->loop, &c);
  ev_idle_start (ctx->loop, &i);
  ev_io_start (ctx->loop, &io);

  order_len = 0;
  memset (order, 0, sizeof order);

  /* idle runs only when nothing else is pending: the iteration with the
     readable pipe has no idle call, the ones around it have.  within one
     priority libev invokes pending watchers last queued, first called */
  ev_run (ctx->loop, EVRUN_NOWAIT);
  test_put (fds [1]);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  ev_run (ctx->loop, EVRUN_NOWAIT);

  assert_string_equal (order, "PCI" "PCR" "PCI");

  ev_io_stop (ctx->loop, &io);
  ev_idle_stop (ctx->loop, &i);
  ev_check_stop (ctx->loop, &c);
  ev_prepare_stop (ctx->loop, &p);
}

/*****************************************************************************/
/* priorities: with everything ready at once, higher priority is called first */

static void
prio_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)loop;
  assert_int_equal (revents, EV_READ);
  order_add ('0' + ev_priority (w) - EV_MINPRI);
}

static void
test_watchers_priority (void **state)
{
  struct test_ctx *ctx = *state;
  static const int prio [] = { 0, EV_MAXPRI, EV_MINPRI, 1, -1 };
  enum { N = sizeof prio / sizeof prio [0] };
  ev_io w [N];
  int fds [N][2], i, runs;
  char expect [N + 1];

  order_len = 0;
  memset (order, 0, sizeof order);

  for (i = 0; i < N; ++i)
    {
      test_pipe (ctx, fds [i]);
      test_put (fds [i][1]);
      ev_io_init (&w [i], prio_cb, fds [i][0], EV_READ);
      ev_set_priority (&w [i], prio [i]);
      ev_io_start (ctx->loop, &w [i]);
    }

  /* level-triggered and never drained: every iteration calls all five */
  for (runs = 0; runs < 10 && order_len < N; ++runs)
    ev_run (ctx->loop, EVRUN_NOWAIT);

  for (i = 0; i < N; ++i)
    expect [i] = '0' + EV_MAXPRI - EV_MINPRI - i;
  expect [N] = 0;
  order [N] = 0;

  assert_string_equal (order, expect);

  for (i = 0; i < N; ++i)
    ev_io_stop (ctx->loop, &w [i]);
}

/*****************************************************************************/
/* ev_periodic */

static int periodic_calls;

static void
periodic_cb (struct ev_loop *loop, ev_periodic *w, int revents)
{
  (void)loop;
  (void)w;
  assert_int_equal (revents, EV_PERIODIC);
  ++periodic_calls;
}

static void
test_watchers_periodic (void **state)
{
  struct test_ctx *ctx = *state;
  ev_periodic once, every;
  ev_timer guard;
  ev_tstamp at;
  int i;

  at = ev_now (ctx->loop) + 0.02;
  periodic_calls = 0;
  ev_periodic_init (&once, periodic_cb, at, 0., 0);
  ev_periodic_start (ctx->loop, &once);

  run_until (ctx->loop, &periodic_calls);
  assert_false (test_guard_fired);
  assert_int_equal (periodic_calls, 1);
  /* not before its time */
  assert_true (ev_time () >= at);
  assert_false (ev_is_active (&once));

  periodic_calls = 0;
  ev_periodic_init (&every, periodic_cb, 0., 0.01, 0);
  ev_periodic_start (ctx->loop, &every);

  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);
  for (i = 0; i < MAX_RUNS && periodic_calls < 3 && !test_guard_fired; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);
  test_guard_stop (ctx->loop, &guard);

  assert_false (test_guard_fired);
  assert_true (periodic_calls >= 3);
  assert_true (ev_is_active (&every));
  ev_periodic_stop (ctx->loop, &every);
}

/*****************************************************************************/
/* ev_cleanup: called when the loop is destroyed */

static int cleanup_calls;

static void
cleanup_cb (struct ev_loop *loop, ev_cleanup *w, int revents)
{
  (void)loop;
  (void)w;
  assert_int_equal (revents, EV_CLEANUP);
  ++cleanup_calls;
}

static void
test_watchers_cleanup (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  ev_cleanup c;
  struct test_io t;
  int p [2];

  loop = test_loop_new (ctx->mode);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), ctx->mode->backend);

  test_pipe (ctx, p);
  test_io_start (loop, &t, p [1], EV_WRITE);
  ev_run (loop, EVRUN_NOWAIT);

  cleanup_calls = 0;
  ev_cleanup_init (&c, cleanup_cb);
  ev_cleanup_start (loop, &c);
  ev_run (loop, EVRUN_NOWAIT);
  assert_int_equal (cleanup_calls, 0);

  ev_loop_destroy (loop);
  assert_int_equal (cleanup_calls, 1);
}

/*****************************************************************************/
/* ev_fork: called in the child after ev_loop_fork, and the loop works there */

static int fork_calls;

static void
fork_cb (struct ev_loop *loop, ev_fork *w, int revents)
{
  (void)loop;
  (void)w;
  if (revents == EV_FORK)
    ++fork_calls;
}

struct fork_child
{
  struct ev_loop *loop;
  int             wfd;
  struct test_io *t;
};

static void
fork_child_run (void *arg)
{
  struct fork_child *fc = arg;
  int i;

  ev_loop_fork (fc->loop);
  ev_run (fc->loop, EVRUN_NOWAIT);
  TEST_CHILD_CHECK (fork_calls == 1);

  fc->t->calls = 0;
  TEST_CHILD_CHECK (write (fc->wfd, "x", 1) == 1);

  for (i = 0; i < MAX_RUNS && !fc->t->calls; ++i)
    ev_run (fc->loop, EVRUN_NOWAIT);

  TEST_CHILD_CHECK (fc->t->calls == 1 && fc->t->last == EV_READ);
  ev_loop_destroy (fc->loop);
}

static void
test_watchers_fork (void **state)
{
  struct test_ctx *ctx = *state;
  struct fork_child fc;
  ev_fork f;
  struct test_io t;
  int p [2];

  test_pipe (ctx, p);
  test_io_init (&t, p [0], EV_READ);
  t.drain = 1;
  ev_io_start (ctx->loop, &t.w);

  fork_calls = 0;
  ev_fork_init (&f, fork_cb);
  ev_fork_start (ctx->loop, &f);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_int_equal (fork_calls, 0);

  fc.loop = ctx->loop;
  fc.wfd  = p [1];
  fc.t    = &t;
  test_in_child (fork_child_run, &fc);

  /* the parent never called ev_loop_fork: no fork callback, and it works */
  test_put (p [1]);
  run_until (ctx->loop, &t.calls);
  assert_false (test_guard_fired);
  assert_int_equal (t.calls, 1);
  assert_int_equal (fork_calls, 0);

  ev_fork_stop (ctx->loop, &f);
  ev_io_stop (ctx->loop, &t.w);
}

/*****************************************************************************/
/* signals interrupting the wait: EINTR is not an error.  a thread sends
   SIGUSR2 20 times, 2 ms apart, to the thread blocked in ev_run, then
   makes a pipe readable; a 10 ms timer is due in the middle of it.  the
   io watcher is called once, the timer once, nothing hangs; with and
   without SA_RESTART.  not under valgrind (3.19): it holds its lock while
   a thread waits in io_uring_enter, so the sending thread never runs */

static volatile sig_atomic_t usr2_count;

static void
usr2_handler (int sig)
{
  (void)sig;
  ++usr2_count;
}

struct pester
{
  pthread_t target;
  int       wfd;
};

static void *
pester_main (void *arg)
{
  struct pester *p = arg;
  int i;

  for (i = 0; i < 20; ++i)
    {
      pthread_kill (p->target, SIGUSR2);
      usleep (2000);
    }

  if (write (p->wfd, "x", 1) != 1)
    abort ();

  return 0;
}

static int eintr_timer_calls;

static void
eintr_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
  ++eintr_timer_calls;
}

static void
eintr_break_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  test_io_cb (loop, w, revents);
  ev_break (loop, EVBREAK_ALL);
}

static void
eintr_run (struct test_ctx *ctx, int flags)
{
  struct sigaction sa, old;
  struct pester p;
  struct test_io t;
  ev_timer guard, tm;
  pthread_t th;
  int fds [2];

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = usr2_handler;
  sa.sa_flags   = flags;
  sigemptyset (&sa.sa_mask);
  assert_int_equal (sigaction (SIGUSR2, &sa, &old), 0);

  test_pipe (ctx, fds);
  test_io_init (&t, fds [0], EV_READ);
  ev_set_cb (&t.w, eintr_break_cb);
  ev_io_start (ctx->loop, &t.w);

  /* a timer due in the middle of the signals */
  eintr_timer_calls = 0;
  ev_timer_init (&tm, eintr_timer_cb, 0.01, 0.);
  ev_timer_start (ctx->loop, &tm);

  usr2_count = 0;
  p.target = pthread_self ();
  p.wfd    = fds [1];

  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);
  assert_int_equal (pthread_create (&th, 0, pester_main, &p), 0);
  ev_run (ctx->loop, 0);
  assert_int_equal (pthread_join (th, 0), 0);
  test_guard_stop (ctx->loop, &guard);

  /* the io watcher may have broken the loop before the timer was due */
  if (!eintr_timer_calls)
    {
      test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);
      ev_set_cb (&t.w, test_io_cb);
      while (!eintr_timer_calls && !test_guard_fired)
        ev_run (ctx->loop, EVRUN_ONCE);
      test_guard_stop (ctx->loop, &guard);
    }

  assert_false (test_guard_fired);
  assert_true (usr2_count >= 1);
  assert_int_equal (t.calls, 1);
  assert_int_equal (t.last, EV_READ);
  assert_int_equal (eintr_timer_calls, 1);

  ev_timer_stop (ctx->loop, &tm);
  ev_io_stop (ctx->loop, &t.w);
  sigaction (SIGUSR2, &old, 0);
}

static void
test_watchers_eintr (void **state)
{
  eintr_run (*state, 0);
}

static void
test_watchers_eintr_restart (void **state)
{
  eintr_run (*state, SA_RESTART);
}

/*****************************************************************************/

static const struct CMUnitTest tests [] = {
  TEST_BOTH (test_watchers_async),
  TEST_BOTH (test_watchers_child),
  TEST_BOTH (test_watchers_cleanup),
  TEST_BOTH (test_watchers_embed),
  TEST_BOTH (test_watchers_eintr),
  TEST_ON (test_watchers_eintr, noextarg),
  TEST_BOTH (test_watchers_eintr_restart),
  TEST_BOTH (test_watchers_fork),
  TEST_BOTH (test_watchers_order),
  TEST_BOTH (test_watchers_periodic),
  TEST_BOTH (test_watchers_priority),
  TEST_BOTH (test_watchers_signal),
  TEST_BOTH (test_watchers_signalfd),
  TEST_BOTH (test_watchers_stat),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
