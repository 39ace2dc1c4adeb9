/*
 * test_timeout.c: DESIGN.md scenario 11.  how the backend waits: with
 * IORING_ENTER_EXT_ARG (5.11) and, with that feature masked, through the
 * timerfd watched on the ring.  timers never fire before their time, fire
 * in order when the next timeout moves earlier or later than the wait
 * already set up, zero and huge timeouts work, ev_timer_again churn works.
 *
 * no timing assertions beyond "not before its time" (1 ms slack for the
 * clocks) and hang guards (TEST_WATCHDOG, iteration limits).
 */

#define _GNU_SOURCE 1

#include <string.h>
#include <unistd.h>

#include "common.h"

/* libev may fire a timer when now is within a hair of its time, and ev_now
   and ev_time read different clocks: allow a millisecond */
#define TEST_SLACK 0.001

struct test_timer
{
  ev_timer    w;
  ev_tstamp   start;   /* ev_now when started */
  ev_tstamp   after;
  ev_tstamp   fired;   /* ev_time at the first call */
  int         calls;
  int         seq;     /* position in the firing order, from 1 */
  int         stop;    /* ev_timer_stop in the callback */
};

static int test_seq;

static void
test_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct test_timer *t = (struct test_timer *)w;

  assert_int_equal (revents, EV_TIMER);

  if (!t->calls++)
    {
      t->fired = ev_time ();
      t->seq   = ++test_seq;
    }

  if (t->stop)
    ev_timer_stop (loop, w);
}

static void
test_timer_start (struct ev_loop *loop, struct test_timer *t, ev_tstamp after, ev_tstamp repeat)
{
  memset (t, 0, sizeof *t);
  ev_timer_init (&t->w, test_timer_cb, after, repeat);
  ev_now_update (loop);
  t->start = ev_now (loop);
  t->after = after;
  ev_timer_start (loop, &t->w);
}

static void
test_timer_check (const struct test_timer *t)
{
  assert_int_equal (t->calls, 1);
  assert_true (t->fired >= t->start + t->after - TEST_SLACK);
}

/* a single timer fires once, not before its time */
static void
test_timeout_fires_not_early (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t;

  test_seq = 0;
  test_timer_start (ctx->loop, &t, 0.05, 0.);
  assert_true (test_run_until (ctx->loop, &t.calls, 1000) >= 1);
  test_timer_check (&t);
  assert_true (t.fired < t.start + 5.);
}

/* timers started while the loop already waits for a later one: shorter
   than, equal to and longer than that wait.  an io event cuts the first
   wait short, its callback starts the others */
struct test_trio
{
  struct test_timer shorter, equal, longer;
};

static struct test_timer test_first;
static struct test_trio  test_trio;

static void
test_trio_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  char c;

  assert_int_equal (revents, EV_READ);
  assert_int_equal (read (w->fd, &c, 1), 1);
  ev_io_stop (loop, w);

  /* the first timer is due at test_first.start + 0.1 */
  test_timer_start (loop, &test_trio.shorter, 0.01, 0.);
  ev_now_update (loop);
  test_timer_start (loop, &test_trio.equal,
                    test_first.start + 0.1 - ev_now (loop), 0.);
  test_timer_start (loop, &test_trio.longer, 0.15, 0.);
}

static void
test_timeout_shorter_equal_longer (void **state)
{
  struct test_ctx *ctx = *state;
  int p [2], i;
  ev_io w;

  test_seq = 0;
  memset (&test_trio, 0, sizeof test_trio);
  test_pipe (ctx, p);
  ev_io_init (&w, test_trio_io_cb, p [0], EV_READ);
  ev_io_start (ctx->loop, &w);

  /* the backend sets up a 0.1 s wait, then the pipe interrupts it */
  test_timer_start (ctx->loop, &test_first, 0.1, 0.);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  test_put (p [1]);

  for (i = 0; i < 1000 && !test_trio.longer.calls; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  test_timer_check (&test_first);
  test_timer_check (&test_trio.shorter);
  test_timer_check (&test_trio.equal);
  test_timer_check (&test_trio.longer);

  /* in order; the two due at the same time in either order */
  assert_int_equal (test_trio.shorter.seq, 1);
  assert_true (test_first.seq == 2 || test_first.seq == 3);
  assert_true (test_trio.equal.seq == 2 || test_trio.equal.seq == 3);
  assert_int_equal (test_trio.longer.seq, 4);

  assert_true (test_trio.longer.fired < test_first.start + 5.);
}

/* the next timeout keeps moving earlier: each new timer is shorter than
   the wait the backend set up for the previous one */
static void
test_timeout_moving_earlier (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t [5];
  int i;

  test_seq = 0;

  for (i = 0; i < 5; ++i)
    {
      test_timer_start (ctx->loop, &t [i], 0.25 - 0.05 * i, 0.);
      ev_run (ctx->loop, EVRUN_NOWAIT);
    }

  for (i = 0; i < 1000 && !t [0].calls; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  for (i = 0; i < 5; ++i)
    {
      test_timer_check (&t [i]);
      assert_int_equal (t [i].seq, 5 - i);
    }
}

/* a zero timeout is due at once: the next iteration, blocking or not */
static void
test_timeout_zero (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t;

  test_seq = 0;
  test_timer_start (ctx->loop, &t, 0., 0.);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_int_equal (t.calls, 1);

  test_timer_start (ctx->loop, &t, 0., 0.);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (t.calls, 1);
  assert_true (t.fired < t.start + 5.);
}

/* a zero timeout with an io watcher armed and idle must not block */
static void
test_timeout_zero_with_io (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t;
  struct test_io r;
  int p [2];

  test_seq = 0;
  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);
  ev_run (ctx->loop, EVRUN_NOWAIT);

  test_timer_start (ctx->loop, &t, 0., 0.);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (t.calls, 1);
  assert_int_equal (r.calls, 0);
  assert_true (t.fired < t.start + 5.);

  ev_io_stop (ctx->loop, &r.w);
}

/* ev_timer_again a thousand times in a row, then once per iteration */
static void
test_timeout_again_churn (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t;
  ev_tstamp last = 0.;
  int i;

  test_seq = 0;
  memset (&t, 0, sizeof t);
  ev_init (&t.w, test_timer_cb);
  t.stop = 1;

  /* a long repeat, restarted every iteration, never fires */
  t.w.repeat = 30.;
  for (i = 0; i < 1000; ++i)
    {
      ev_timer_again (ctx->loop, &t.w);
      ev_run (ctx->loop, EVRUN_NOWAIT);
    }
  assert_int_equal (t.calls, 0);

  /* then a short one, restarted a thousand times without running */
  t.w.repeat = 0.02;
  for (i = 0; i < 1000; ++i)
    {
      ev_now_update (ctx->loop);
      last = ev_now (ctx->loop);
      ev_timer_again (ctx->loop, &t.w);
    }

  assert_true (test_run_until (ctx->loop, &t.calls, 1000) >= 1);
  assert_int_equal (t.calls, 1);
  assert_true (t.fired >= last + 0.02 - TEST_SLACK);
  assert_false (ev_is_active (&t.w));
}

/* a huge timeout next to a short one: the short one fires, the huge one
   does not, the wait is not confused by the huge value */
static void
test_timeout_huge (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer huge, small;

  test_seq = 0;
  test_timer_start (ctx->loop, &huge, 1e6, 0.);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  test_timer_start (ctx->loop, &small, 0.01, 0.);

  assert_true (test_run_until (ctx->loop, &small.calls, 1000) >= 1);
  test_timer_check (&small);
  assert_int_equal (huge.calls, 0);
  assert_true (small.fired < small.start + 5.);

  ev_timer_stop (ctx->loop, &huge.w);
}

/* with EXT_ARG the wait is part of io_uring_enter: one call per blocking
   iteration, also when io is armed and timers keep coming */
static void
test_timeout_one_enter_per_iteration (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_timer t;
  struct test_io r;
  unsigned long before;
  int p [2], i, iterations = 0;

  /* IORING_FEAT_EXT_ARG: 5.11 */
  if (!(test_kernel.features & EV_IORING_FEAT_EXT_ARG))
    skip ();

  assert_true (ev_iouring_test_features & EV_IORING_FEAT_EXT_ARG);

  test_pipe (ctx, p);
  test_io_init (&r, p [0], EV_READ);
  r.drain = 1;
  ev_io_start (ctx->loop, &r.w);
  test_run_nowait (ctx->loop, 2);

  for (i = 0; i < 5; ++i)
    {
      test_timer_start (ctx->loop, &t, 0.005, 0.);
      before = ev_iouring_test_enters;

      for (iterations = 0; iterations < 1000 && !t.calls; ++iterations)
        ev_run (ctx->loop, EVRUN_ONCE);

      /* each blocking iteration waits in exactly one enter, however many
         it takes (usually one: how many is the clocks' business, not the
         backend's), and the timer fires once, not before its time */
      assert_true (iterations >= 1 && iterations < 1000);
      test_timer_check (&t);
      assert_int_equal (ev_iouring_test_enters - before, (unsigned long)iterations);
    }

  /* an io event ends the wait: at most one enter (none when its cqe is already there) */
  test_timer_start (ctx->loop, &t, 10., 0.);
  test_put (p [1]);
  before = ev_iouring_test_enters;
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 1);
  assert_true (ev_iouring_test_enters - before <= 1);

  ev_timer_stop (ctx->loop, &t.w);
  ev_io_stop (ctx->loop, &r.w);
}

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_timeout_again_churn),
  TEST_ALL (test_timeout_fires_not_early),
  TEST_ALL (test_timeout_huge),
  TEST_ALL (test_timeout_moving_earlier),
  TEST_ON (test_timeout_one_enter_per_iteration, iouring),
  TEST_ALL (test_timeout_shorter_equal_longer),
  TEST_ALL (test_timeout_zero),
  TEST_ALL (test_timeout_zero_with_io),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
