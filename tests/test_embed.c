/*
 * test_embed.c: DESIGN.md scenario 7.  an io_uring loop embedded (ev_embed)
 * into the fixture's loop (epoll, io_uring, every masked io_uring path),
 * and an epoll loop embedded into an io_uring loop.  only the outer loop is
 * run; the inner loop's io events must still arrive.  ev_embed watches the
 * inner loop's backend fd, which libev 4.33's io_uring backend left at -1.
 */

#define _GNU_SOURCE 1

#include <pthread.h>
#include <unistd.h>

#include "common.h"

#define TEST_EMBED_PIPES 10

struct embed
{
  struct ev_loop *inner;
  ev_embed        embed;
  int             swept;    /* calls of the manual-sweep callback */
  ev_timer        guard;    /* hang guard on the outer loop */
  ev_timer        pump;     /* wakes the outer loop every 10 ms */
  int             timed_out;
};

static void
embed_pump_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
}

static void
embed_guard_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct embed *e = (struct embed *)((char *)w - offsetof (struct embed, guard));

  (void)revents;
  e->timed_out = 1;
  ev_break (loop, EVBREAK_ALL);
}

static void
embed_sweep_cb (struct ev_loop *loop, ev_embed *w, int revents)
{
  struct embed *e = (struct embed *)((char *)w - offsetof (struct embed, embed));

  assert_int_equal (revents, EV_EMBED);
  ++e->swept;
  ev_embed_sweep (loop, w);
}

/* inner loop of the given mode embedded into ctx->loop; sweep: use a
   callback that sweeps by hand instead of the automatic sweep; pump: wake
   the outer loop every 10 ms.
   the pump is there because ev_embed's prepare watcher runs the inner loop
   (EVRUN_NOWAIT) whenever it has fd changes: an event can be delivered
   there, after which the outer loop blocks with nothing left to do, as it
   should.  without the pump only the inner loop's backend fd can wake the
   outer loop */
static void
embed_open (struct test_ctx *ctx, struct embed *e, const struct test_mode *inner, int sweep, int pump)
{
  e->swept     = 0;
  e->timed_out = 0;
  e->inner     = test_loop_new (inner);
  assert_non_null (e->inner);
  assert_int_equal (ev_backend (e->inner), inner->backend);
  assert_true (ev_embeddable_backends () & inner->backend);

  ev_embed_init (&e->embed, sweep ? embed_sweep_cb : 0, e->inner);
  ev_embed_start (ctx->loop, &e->embed);

  ev_timer_init (&e->guard, embed_guard_cb, 5., 0.);
  ev_timer_start (ctx->loop, &e->guard);

  ev_timer_init (&e->pump, embed_pump_cb, 0.01, 0.01);
  if (pump)
    ev_timer_start (ctx->loop, &e->pump);
}

static void
embed_close (struct test_ctx *ctx, struct embed *e)
{
  ev_timer_stop (ctx->loop, &e->guard);
  ev_timer_stop (ctx->loop, &e->pump);
  ev_embed_stop (ctx->loop, &e->embed);
  ev_loop_destroy (e->inner);
  e->inner = 0;
}

/* the inner loop: our backend with the fixture's masks, io_uring when the
   fixture is epoll */
static const struct test_mode *
embed_inner_mode (struct test_ctx *ctx)
{
  return TEST_IS_IOURING (ctx) ? ctx->mode : &test_mode_iouring;
}

/* run only the outer loop until *count reaches n, at most 1000 blocking
   iterations */
static void
embed_run (struct test_ctx *ctx, struct embed *e, const int *count, int n)
{
  int i;

  for (i = 0; i < 1000 && *count < n && !e->timed_out; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  assert_false (e->timed_out);
  assert_int_equal (*count, n);
}

static void
embed_pipes (struct test_ctx *ctx, struct embed *e, int sweep, const struct test_mode *inner)
{
  struct test_io r [TEST_EMBED_PIPES];
  int p [TEST_EMBED_PIPES][2], i, round;

  embed_open (ctx, e, inner, sweep, 1);

  for (i = 0; i < TEST_EMBED_PIPES; ++i)
    {
      test_pipe (ctx, p [i]);
      test_io_init (&r [i], p [i][0], EV_READ);
      r [i].drain = 1;
      ev_io_start (e->inner, &r [i].w);
    }

  /* nothing ready: the outer loop's sweeps find nothing */
  test_run_nowait (ctx->loop, 3);
  for (i = 0; i < TEST_EMBED_PIPES; ++i)
    assert_int_equal (r [i].calls, 0);

  for (round = 1; round <= 3; ++round)
    {
      for (i = 0; i < TEST_EMBED_PIPES; ++i)
        {
          test_put (p [i][1]);
          embed_run (ctx, e, &r [i].calls, round);
          assert_int_equal (r [i].calls, round);
          assert_int_equal (r [i].last, EV_READ);
        }

      test_run_nowait (ctx->loop, 3);
      for (i = 0; i < TEST_EMBED_PIPES; ++i)
        assert_int_equal (r [i].calls, round);
    }

  for (i = 0; i < TEST_EMBED_PIPES; ++i)
    ev_io_stop (e->inner, &r [i].w);

  if (sweep)
    assert_true (e->swept > 0);

  embed_close (ctx, e);
}

/* one pipe, five rounds of start, event, stop */
static void
embed_one (struct test_ctx *ctx, const struct test_mode *inner, int sweep)
{
  struct embed e;
  struct test_io r;
  int p [2], round;

  embed_open (ctx, &e, inner, sweep, 1);
  test_pipe (ctx, p);

  for (round = 0; round < 5; ++round)
    {
      test_io_init (&r, p [0], EV_READ);
      r.drain = 1;
      ev_io_start (e.inner, &r.w);

      test_run_nowait (ctx->loop, 2);
      assert_int_equal (r.calls, 0);

      test_put (p [1]);
      embed_run (ctx, &e, &r.calls, 1);
      assert_int_equal (r.calls, 1);
      assert_int_equal (r.last, EV_READ);

      test_run_nowait (ctx->loop, 3);
      assert_int_equal (r.calls, 1);

      ev_io_stop (e.inner, &r.w);
    }

  if (sweep)
    assert_true (e.swept > 0);

  embed_close (ctx, &e);
}

/* an io_uring loop inside the fixture's loop, automatic sweep */
static void
test_embed_iouring_inner (void **state)
{
  struct test_ctx *ctx = *state;

  embed_one (ctx, embed_inner_mode (ctx), 0);
}

/* the same with an ev_embed callback that sweeps by hand */
static void
test_embed_iouring_inner_sweep (void **state)
{
  struct test_ctx *ctx = *state;

  embed_one (ctx, embed_inner_mode (ctx), 1);
}

/* ten pipes in the inner loop, three rounds: nothing lost, nothing twice */
static void
test_embed_iouring_inner_many (void **state)
{
  struct test_ctx *ctx = *state;
  struct embed e;

  embed_pipes (ctx, &e, 0, embed_inner_mode (ctx));
}

/* an epoll loop inside an io_uring loop: the ring polls the epoll fd */
static void
test_embed_epoll_inner (void **state)
{
  struct test_ctx *ctx = *state;

  embed_one (ctx, &test_mode_epoll, 0);
}

/* no pump: the outer loop blocks, another thread writes, and only the
   inner loop's backend fd becoming readable can wake the outer loop */
struct embed_writer
{
  int fd;
  int n;
};

static void *
embed_writer_thread (void *arg)
{
  struct embed_writer *wr = arg;
  int i;

  for (i = 0; i < wr->n; ++i)
    {
      usleep (20000);
      if (write (wr->fd, "x", 1) != 1)
        break;
    }

  return 0;
}

static void
embed_wakeup (struct test_ctx *ctx, const struct test_mode *inner)
{
  struct embed e;
  struct embed_writer wr;
  struct test_io r;
  pthread_t tid;
  int p [2];

  embed_open (ctx, &e, inner, 0, 0);
  test_pipe (ctx, p);
  test_io_init (&r, p [0], EV_READ);
  r.drain = 1;
  ev_io_start (e.inner, &r.w);
  test_run_nowait (ctx->loop, 2);

  wr.fd = p [1];
  wr.n  = 5;
  assert_int_equal (pthread_create (&tid, 0, embed_writer_thread, &wr), 0);
  embed_run (ctx, &e, &r.calls, 5);
  assert_int_equal (pthread_join (tid, 0), 0);
  assert_int_equal (r.revents, EV_READ);

  ev_io_stop (e.inner, &r.w);
  embed_close (ctx, &e);
}

static void
test_embed_iouring_inner_wakeup (void **state)
{
  struct test_ctx *ctx = *state;

  embed_wakeup (ctx, embed_inner_mode (ctx));
}

static void
test_embed_epoll_inner_wakeup (void **state)
{
  struct test_ctx *ctx = *state;

  embed_wakeup (ctx, &test_mode_epoll);
}

static const struct CMUnitTest tests [] = {
  TEST_ON (test_embed_epoll_inner, iouring),
  TEST_PATHS (test_embed_epoll_inner),
  TEST_ON (test_embed_epoll_inner_wakeup, iouring),
  TEST_PATHS (test_embed_epoll_inner_wakeup),
  TEST_ALL (test_embed_iouring_inner),
  TEST_ALL (test_embed_iouring_inner_many),
  TEST_ALL (test_embed_iouring_inner_sweep),
  TEST_ALL (test_embed_iouring_inner_wakeup),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
