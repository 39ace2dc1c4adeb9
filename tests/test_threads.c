/*
 * test_threads.c: loops and threads, on io_uring and on epoll (TEST_BOTH).
 *
 * - a loop created in one thread and run in another;
 * - a loop handed from thread A to thread B after A exited: io_uring
 *   cancels the requests of an exiting thread, so the polls A armed
 *   complete with -ECANCELED and the backend has to arm them again;
 * - ev_async_send from several threads into a loop blocked in its wait:
 *   every burst of sends is followed by at least one callback;
 * - ev_set_loop_release_cb with a mutex, the locking pattern libev's
 *   documentation gives ("THREAD LOCKING EXAMPLE"): another thread takes
 *   the lock while the loop waits, starts a watcher and wakes the loop;
 * - pthread_cancel of a thread idle in ev_run ends it (epoll_wait is a
 *   cancellation point), within CANCEL_SECONDS; checked in a forked child,
 *   so a thread that cannot be cancelled dies with the child.
 *
 * cmocka asserts only run in the main thread: the other threads count
 * what they saw and the main thread checks it after pthread_join.  every
 * wait is bounded (guard timers, timed waits), nothing is timed.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* bound of any single wait for another thread; only reached when broken */
#define WAIT_SECONDS 10

/*****************************************************************************/
/* helpers */

static struct timespec
deadline (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += WAIT_SECONDS;
  return ts;
}

/* an io watcher that breaks the loop it runs in */
static void
break_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  test_io_cb (loop, w, revents);
  ev_break (loop, EVBREAK_ALL);
}

/* such a watcher, draining the read end of a new pipe; not started */
static void
break_io_init (struct test_ctx *ctx, struct test_io *t, int p [2])
{
  test_pipe (ctx, p);
  test_io_init (t, p [0], EV_READ);
  t->drain = 1;
  ev_set_cb (&t->w, break_io_cb);
}

/*****************************************************************************/
/* created in the main thread, run in another */

struct runner
{
  struct ev_loop *loop;
  int             mode;   /* 0: ev_run until break, n > 0: n EVRUN_NOWAIT */
};

static void *
runner_main (void *arg)
{
  struct runner *r = arg;

  if (r->mode)
    test_run_nowait (r->loop, r->mode);
  else
    ev_run (r->loop, 0);

  return 0;
}

/* run loop in a new thread and wait for it; a run until break (mode 0)
   goes under a guard that must not fire */
static void
run_in_thread (struct ev_loop *loop, int mode)
{
  struct runner r = { loop, mode };
  ev_timer guard;
  pthread_t t;

  if (!mode)
    test_guard_start (loop, &guard, WAIT_SECONDS);

  assert_int_equal (pthread_create (&t, 0, runner_main, &r), 0);
  assert_int_equal (pthread_join (t, 0), 0);

  if (!mode)
    {
      test_guard_stop (loop, &guard);
      assert_false (test_guard_fired);
    }
}

static void
test_threads_run_elsewhere (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  ev_timer guard;
  int p [2], i;

  break_io_init (ctx, &t, p);
  ev_io_start (ctx->loop, &t.w);

  for (i = 1; i <= 3; ++i)
    {
      struct runner r = { ctx->loop, 0 };
      pthread_t th;

      test_guard_start (ctx->loop, &guard, WAIT_SECONDS);
      assert_int_equal (pthread_create (&th, 0, runner_main, &r), 0);
      /* the runner may or may not be waiting yet: either way it must see it */
      test_put (p [1]);
      assert_int_equal (pthread_join (th, 0), 0);
      test_guard_stop (ctx->loop, &guard);

      assert_false (test_guard_fired);
      assert_int_equal (t.calls, i);
      assert_int_equal (t.last, EV_READ);
    }

  ev_io_stop (ctx->loop, &t.w);
}

/*****************************************************************************/
/* created and armed in thread A, A exits, run in thread B, then in main */

struct maker
{
  const struct test_mode *mode;
  struct ev_loop         *loop;
  struct test_io         *t;
};

static void *
maker_main (void *arg)
{
  struct maker *m = arg;

  m->loop = test_loop_new (m->mode);
  if (!m->loop)
    return 0;

  ev_io_start (m->loop, &m->t->w);
  /* arm the poll from this thread; its requests die with it */
  test_run_nowait (m->loop, 3);
  return 0;
}

static void
test_threads_handoff (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  struct maker m;
  ev_timer guard;
  pthread_t th;
  int p [2];

  break_io_init (ctx, &t, p);

  m.mode = ctx->mode;
  m.loop = 0;
  m.t    = &t;
  assert_int_equal (pthread_create (&th, 0, maker_main, &m), 0);
  assert_int_equal (pthread_join (th, 0), 0);
  assert_non_null (m.loop);
  assert_int_equal (t.calls, 0);

  /* thread B: written only now, after A is gone */
  test_put (p [1]);
  run_in_thread (m.loop, 0);
  assert_int_equal (t.calls, 1);

  /* B is gone too: the main thread now */
  test_put (p [1]);
  test_guard_start (m.loop, &guard, WAIT_SECONDS);
  ev_run (m.loop, 0);
  test_guard_stop (m.loop, &guard);
  assert_false (test_guard_fired);
  assert_int_equal (t.calls, 2);

  /* and nothing is reported while nothing is there */
  test_run_nowait (m.loop, 5);
  assert_int_equal (t.calls, 2);

  ev_io_stop (m.loop, &t.w);
  ev_loop_destroy (m.loop);
}

/* a read watcher armed by a thread that exits before it is reaped: the
   -ECANCELED completion must turn into a re-arm, not an error or silence */
static void
test_threads_handoff_armed (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  int p [2], i;

  break_io_init (ctx, &t, p);
  ev_io_start (ctx->loop, &t.w);

  for (i = 1; i <= 5; ++i)
    {
      /* a short-lived thread runs the loop once: it arms the poll, exits */
      run_in_thread (ctx->loop, 1);
      assert_int_equal (t.calls, i - 1);

      /* blocking: the kernel cancels the dead thread's poll from a
         kworker (fallback task work), not at once */
      test_put (p [1]);
      run_in_thread (ctx->loop, 0);
      assert_int_equal (t.calls, i);
    }

  ev_io_stop (ctx->loop, &t.w);
}

/*****************************************************************************/
/* ev_async_send from several threads */

#define ASYNC_THREADS 4
#define ASYNC_BURSTS  50
#define ASYNC_SENDS   20

struct sender
{
  ev_async        w;          /* first: the callback casts */
  struct ev_loop *loop;
  int             published;  /* burst being sent (under async_lock) */
  int             seen;       /* burst the last callback saw (under async_lock) */
  int             calls;
  int             timeouts;
  int             bursts;     /* bursts confirmed */
};

static pthread_mutex_t async_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  async_cond = PTHREAD_COND_INITIALIZER;
static int             async_done;
static ev_async        async_stop;

static void
sender_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  struct sender *s = (struct sender *)w;

  (void)loop;
  (void)revents;
  pthread_mutex_lock (&async_lock);
  ++s->calls;
  s->seen = s->published;
  pthread_cond_broadcast (&async_cond);
  pthread_mutex_unlock (&async_lock);
}

static void
async_stop_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  int done;

  (void)w;
  (void)revents;
  pthread_mutex_lock (&async_lock);
  done = async_done == ASYNC_THREADS;
  pthread_mutex_unlock (&async_lock);

  if (done)
    ev_break (loop, EVBREAK_ALL);
}

static void *
sender_main (void *arg)
{
  struct sender *s = arg;
  int b, i;

  for (b = 1; b <= ASYNC_BURSTS; ++b)
    {
      struct timespec ts = deadline ();
      int err = 0;

      pthread_mutex_lock (&async_lock);
      s->published = b;
      pthread_mutex_unlock (&async_lock);

      for (i = 0; i < ASYNC_SENDS; ++i)
        ev_async_send (s->loop, &s->w);

      /* libev: at least one callback after the last send of the burst */
      pthread_mutex_lock (&async_lock);
      while (s->seen < b && err != ETIMEDOUT)
        err = pthread_cond_timedwait (&async_cond, &async_lock, &ts);
      if (s->seen < b)
        ++s->timeouts;
      else
        ++s->bursts;
      pthread_mutex_unlock (&async_lock);

      if (err == ETIMEDOUT)
        break;
    }

  pthread_mutex_lock (&async_lock);
  ++async_done;
  pthread_mutex_unlock (&async_lock);
  ev_async_send (s->loop, &async_stop);
  return 0;
}

static void
test_threads_async (void **state)
{
  struct test_ctx *ctx = *state;
  struct sender s [ASYNC_THREADS];
  pthread_t th [ASYNC_THREADS];
  ev_timer guard;
  int i;

  async_done = 0;
  ev_async_init (&async_stop, async_stop_cb);
  ev_async_start (ctx->loop, &async_stop);

  memset (s, 0, sizeof s);
  for (i = 0; i < ASYNC_THREADS; ++i)
    {
      s [i].loop = ctx->loop;
      ev_async_init (&s [i].w, sender_cb);
      ev_async_start (ctx->loop, &s [i].w);
    }

  test_guard_start (ctx->loop, &guard, 6 * WAIT_SECONDS);

  for (i = 0; i < ASYNC_THREADS; ++i)
    assert_int_equal (pthread_create (&th [i], 0, sender_main, &s [i]), 0);

  ev_run (ctx->loop, 0);

  for (i = 0; i < ASYNC_THREADS; ++i)
    assert_int_equal (pthread_join (th [i], 0), 0);

  test_guard_stop (ctx->loop, &guard);
  assert_false (test_guard_fired);

  for (i = 0; i < ASYNC_THREADS; ++i)
    {
      if (s [i].timeouts)
        print_error ("sender %d: burst %d never delivered\n", i, s [i].published);
      assert_int_equal (s [i].timeouts, 0);
      assert_int_equal (s [i].bursts, ASYNC_BURSTS);
      assert_true (s [i].calls >= ASYNC_BURSTS);
      assert_true (s [i].calls <= ASYNC_BURSTS * ASYNC_SENDS);
      ev_async_stop (ctx->loop, &s [i].w);
    }

  ev_async_stop (ctx->loop, &async_stop);
}

/*****************************************************************************/
/* ev_set_loop_release_cb: the loop holds a mutex except while it waits */

#define LOCK_ROUNDS 5

struct locked
{
  pthread_mutex_t lock;
  pthread_cond_t  cond;
  struct ev_loop *loop;
  ev_async        wake;
  struct test_io  io [LOCK_ROUNDS];
  int             fds [LOCK_ROUNDS][2];
  int             round;      /* rounds whose watcher was called */
  int             done;
  int             releases;   /* release callbacks */
  int             timeouts;   /* the worker never got the lock or the event */
};

static void
locked_release (struct ev_loop *loop)
{
  struct locked *l = ev_userdata (loop);

  ++l->releases;
  pthread_mutex_unlock (&l->lock);
}

static void
locked_acquire (struct ev_loop *loop)
{
  struct locked *l = ev_userdata (loop);

  pthread_mutex_lock (&l->lock);
}

static void
locked_wake_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  struct locked *l = ev_userdata (loop);

  (void)w;
  (void)revents;
  /* lock held: ev_run only gives it up inside the release/acquire pair */
  if (l->done)
    ev_break (loop, EVBREAK_ALL);
}

static void
locked_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct locked *l = ev_userdata (loop);

  test_io_cb (loop, w, revents);
  ev_io_stop (loop, w);
  ++l->round;
  pthread_cond_broadcast (&l->cond);
}

static void *
locked_worker (void *arg)
{
  struct locked *l = arg;
  int r;

  for (r = 0; r < LOCK_ROUNDS; ++r)
    {
      struct timespec ts = deadline ();
      int err = 0;

      /* only possible while the loop waits with the lock released */
      if (pthread_mutex_timedlock (&l->lock, &ts))
        {
          ++l->timeouts;
          return 0;
        }

      test_io_init (&l->io [r], l->fds [r][0], EV_READ);
      l->io [r].drain = 1;
      ev_set_cb (&l->io [r].w, locked_io_cb);
      ev_io_start (l->loop, &l->io [r].w);
      ev_async_send (l->loop, &l->wake);

      if (write (l->fds [r][1], "x", 1) != 1)
        ++l->timeouts;

      while (l->round <= r && err != ETIMEDOUT)
        err = pthread_cond_timedwait (&l->cond, &l->lock, &ts);
      if (l->round <= r)
        ++l->timeouts;

      if (r == LOCK_ROUNDS - 1)
        {
          l->done = 1;
          ev_async_send (l->loop, &l->wake);
        }

      pthread_mutex_unlock (&l->lock);

      if (err == ETIMEDOUT)
        return 0;
    }

  return 0;
}

static void
test_threads_release_cb (void **state)
{
  struct test_ctx *ctx = *state;
  struct locked *l;
  ev_timer guard;
  pthread_t th;
  int i;

  l = calloc (1, sizeof *l);
  assert_non_null (l);
  ctx->data = l;

  pthread_mutex_init (&l->lock, 0);
  pthread_cond_init (&l->cond, 0);
  l->loop = ctx->loop;
  for (i = 0; i < LOCK_ROUNDS; ++i)
    test_pipe (ctx, l->fds [i]);

  ev_set_userdata (ctx->loop, l);
  ev_set_loop_release_cb (ctx->loop, locked_release, locked_acquire);
  ev_async_init (&l->wake, locked_wake_cb);
  ev_async_start (ctx->loop, &l->wake);

  test_guard_start (ctx->loop, &guard, 6 * WAIT_SECONDS);

  pthread_mutex_lock (&l->lock);
  assert_int_equal (pthread_create (&th, 0, locked_worker, l), 0);
  ev_run (ctx->loop, 0);
  pthread_mutex_unlock (&l->lock);
  assert_int_equal (pthread_join (th, 0), 0);

  test_guard_stop (ctx->loop, &guard);
  ev_set_loop_release_cb (ctx->loop, 0, 0);

  assert_false (test_guard_fired);
  assert_int_equal (l->timeouts, 0);
  assert_int_equal (l->round, LOCK_ROUNDS);
  assert_true (l->releases >= LOCK_ROUNDS);
  for (i = 0; i < LOCK_ROUNDS; ++i)
    assert_int_equal (l->io [i].calls, 1);

  ev_async_stop (ctx->loop, &l->wake);
  pthread_cond_destroy (&l->cond);
  pthread_mutex_destroy (&l->lock);
  free (l);
  ctx->data = 0;
}

/*****************************************************************************/
/* pthread_cancel of a thread waiting in ev_run */

#define CANCEL_SECONDS 2

static void
cancel_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
}

struct canceled
{
  struct ev_loop *loop;
  ev_timer        tm;
  volatile int    running;
};

static void *
canceled_main (void *arg)
{
  struct canceled *c = arg;

  c->running = 1;
  ev_run (c->loop, 0); /* a 60 s timer: idle in the wait */
  return 0;
}

/* in a forked child: exit 0 when the thread was cancelled in time */
static void
cancel_child (const struct test_mode *mode)
{
  struct canceled c;
  struct timespec ts;
  pthread_t th;
  void *res = 0;
  int err, i;

  c.loop = test_loop_new (mode);
  if (!c.loop || ev_backend (c.loop) != mode->backend)
    _exit (2);

  c.running = 0;
  ev_timer_init (&c.tm, cancel_timer_cb, 60., 0.);
  ev_timer_start (c.loop, &c.tm);

  if (pthread_create (&th, 0, canceled_main, &c))
    _exit (3);

  /* let it reach the wait */
  for (i = 0; i < 100 && !c.running; ++i)
    usleep (1000);
  usleep (100000);

  if (pthread_cancel (th))
    _exit (4);

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += CANCEL_SECONDS;
  err = pthread_timedjoin_np (th, &res, &ts);

  if (err == ETIMEDOUT)
    {
      fprintf (stderr, "child: the thread waiting in ev_run (backend 0x%x) was not cancelled within %d s\n",
               mode->backend, CANCEL_SECONDS);
      _exit (1);
    }

  if (err || res != PTHREAD_CANCELED)
    _exit (5);

  _exit (0);
}

static void
test_threads_cancel (void **state)
{
  struct test_ctx *ctx = *state;
  pid_t pid;
  int status;

  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  assert_true (pid >= 0);

  if (!pid)
    {
      signal (SIGSEGV, SIG_DFL);
      signal (SIGABRT, SIG_DFL);
      alarm (CANCEL_SECONDS + 8);
      cancel_child (ctx->mode);
    }

  assert_int_equal (waitpid (pid, &status, 0), pid);
  if (WIFSIGNALED (status))
    fail_msg ("child killed by signal %d", WTERMSIG (status));
  if (WEXITSTATUS (status) == 1)
    fail_msg ("pthread_cancel did not end a thread waiting in ev_run within %d s", CANCEL_SECONDS);
  assert_int_equal (WEXITSTATUS (status), 0);
}

/*****************************************************************************/

static const struct CMUnitTest tests [] = {
  TEST_BOTH (test_threads_async),
  TEST_BOTH (test_threads_cancel),
  TEST_ON (test_threads_cancel, noextarg),
  TEST_BOTH (test_threads_handoff),
  TEST_BOTH (test_threads_handoff_armed),
  TEST_BOTH (test_threads_release_cb),
  TEST_BOTH (test_threads_run_elsewhere),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
