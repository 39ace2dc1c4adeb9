/*
 * test_overflow.c: DESIGN.md scenario 9.  more watched fds than SQ entries
 * (ev_iouring_test_setup_max forces a small ring), more ready fds than CQ
 * entries (a CQ backlog, kept by the kernel with NODROP since 5.5 and
 * flushed by io_uring_enter (GETEVENTS)), with NODROP masked too, and
 * without the IORING_SQ_CQ_OVERFLOW flag (5.5 to 5.7): every event
 * arrives, none twice in one iteration; a backlog left when every
 * callback stopped its watcher (nothing to submit) is flushed by idle
 * EVRUN_NOWAIT polls all the same.
 */

#define _GNU_SOURCE 1

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define TEST_OVERFLOW_PIPES 5000
#define TEST_OVERFLOW_SQ    64

struct ovf
{
  struct ev_loop *loop;
  int            *fds;     /* read end, write end */
  ev_io          *w;
  int            *calls;
  int            *seen;    /* iteration of the last call */
  int             drain;
  int             iter;
  int             dups;    /* calls of an fd twice in one iteration */
  int             total;
  ev_prepare      prep;
};

static struct ovf ovf;

static void
ovf_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  int i = (int)(intptr_t)w->data;
  char c;

  (void)loop;
  (void)revents;

  if (ovf.seen [i] == ovf.iter)
    ++ovf.dups;

  ovf.seen [i] = ovf.iter;
  ++ovf.calls [i];
  ++ovf.total;

  if (ovf.drain)
    while (read (w->fd, &c, 1) > 0)
      ;
}

static void
ovf_prepare_cb (struct ev_loop *loop, ev_prepare *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
  ++ovf.iter;
}

/* free what a failed assertion left behind (its loop is still ours) */
static void
ovf_close (void)
{
  int i;

  if (!ovf.loop)
    return;

  ev_loop_destroy (ovf.loop);

  for (i = 0; i < 2 * TEST_OVERFLOW_PIPES; ++i)
    close (ovf.fds [i]);

  free (ovf.fds);
  free (ovf.w);
  free (ovf.calls);
  free (ovf.seen);
  memset (&ovf, 0, sizeof ovf);
}

/* a loop of the fixture's mode with a small ring, and the pipes */
static void
ovf_open (struct test_ctx *ctx, int drain)
{
  int i;

  ovf_close ();

  /* 10000 pipe ends: more than a soft RLIMIT_NOFILE of 1024 */
  if (!test_fd_room (2 * TEST_OVERFLOW_PIPES))
    skip ();

  ev_iouring_test_setup_max = TEST_OVERFLOW_SQ;
  ovf.loop = test_loop_new (ctx->mode);
  assert_non_null (ovf.loop);
  assert_int_equal (ev_backend (ovf.loop), ctx->mode->backend);

  if (TEST_IS_IOURING (ctx))
    {
      /* the small ring really is small, and the masks still apply */
      assert_true (ev_iouring_test_sq_entries <= TEST_OVERFLOW_SQ);
      assert_true (ev_iouring_test_cq_entries < TEST_OVERFLOW_PIPES);
      assert_int_equal (ev_iouring_test_features & ctx->mode->nofeat, 0);
      assert_int_equal (ev_iouring_test_setup_flags & ctx->mode->nosetup, 0);
    }

  ovf.drain = drain;
  ovf.fds   = calloc (2 * TEST_OVERFLOW_PIPES, sizeof (int));
  ovf.w     = calloc (TEST_OVERFLOW_PIPES, sizeof (ev_io));
  ovf.calls = calloc (TEST_OVERFLOW_PIPES, sizeof (int));
  ovf.seen  = calloc (TEST_OVERFLOW_PIPES, sizeof (int));
  assert_true (ovf.fds && ovf.w && ovf.calls && ovf.seen);

  for (i = 0; i < 2 * TEST_OVERFLOW_PIPES; ++i)
    ovf.fds [i] = -1;

  for (i = 0; i < TEST_OVERFLOW_PIPES; ++i)
    {
      assert_int_equal (pipe2 (ovf.fds + 2 * i, O_NONBLOCK | O_CLOEXEC), 0);
      ev_io_init (&ovf.w [i], ovf_cb, ovf.fds [2 * i], EV_READ);
      ovf.w [i].data = (void *)(intptr_t)i;
      ev_io_start (ovf.loop, &ovf.w [i]);
    }

  ev_prepare_init (&ovf.prep, ovf_prepare_cb);
  ev_prepare_start (ovf.loop, &ovf.prep);
  ev_unref (ovf.loop);
}

static void
ovf_write_all (void)
{
  int i;

  for (i = 0; i < TEST_OVERFLOW_PIPES; ++i)
    test_put (ovf.fds [2 * i + 1]);
}

/* run until every fd was called at least n times, at most 1000 iterations */
static int
ovf_run (int flags, int n)
{
  int i, j;

  for (j = 0; j < 1000; ++j)
    {
      for (i = 0; i < TEST_OVERFLOW_PIPES; ++i)
        if (ovf.calls [i] < n)
          break;

      if (i == TEST_OVERFLOW_PIPES)
        return j;

      ev_run (ovf.loop, flags);
    }

  return -1;
}

/* every fd ready once, drained by its callback, three rounds */
static void
ovf_drained (void **state, int flags)
{
  struct test_ctx *ctx = *state;
  int round, i;

  ovf_open (ctx, 1);

  test_run_nowait (ovf.loop, 2);
  assert_int_equal (ovf.total, 0);

  for (round = 1; round <= 3; ++round)
    {
      ovf_write_all ();
      assert_true (ovf_run (flags, round) >= 0);
      test_run_nowait (ovf.loop, 3);

      for (i = 0; i < TEST_OVERFLOW_PIPES; ++i)
        assert_int_equal (ovf.calls [i], round);

      assert_int_equal (ovf.total, round * TEST_OVERFLOW_PIPES);
      assert_int_equal (ovf.dups, 0);
    }

  ovf_close ();
}

static void
test_overflow_drained_once (void **state)
{
  ovf_drained (state, EVRUN_ONCE);
}

static void
test_overflow_drained_nowait (void **state)
{
  ovf_drained (state, EVRUN_NOWAIT);
}

/* every fd stays ready (level-triggered): each keeps being reported, never
   twice in one iteration */
static void
ovf_undrained (void **state, int flags)
{
  struct test_ctx *ctx = *state;

  ovf_open (ctx, 0);
  ovf_write_all ();

  assert_true (ovf_run (flags, 3) >= 0);
  assert_int_equal (ovf.dups, 0);

  ovf_close ();
}

static void
test_overflow_undrained_once (void **state)
{
  ovf_undrained (state, EVRUN_ONCE);
}

static void
test_overflow_undrained_nowait (void **state)
{
  ovf_undrained (state, EVRUN_NOWAIT);
}

/* a CQ backlog while the fds are restarted: stop/start every watcher
   between iterations with all of them ready */
static void
test_overflow_restart_backlog (void **state)
{
  struct test_ctx *ctx = *state;
  int round, i;

  ovf_open (ctx, 0);
  ovf_write_all ();

  for (round = 0; round < 3; ++round)
    {
      ev_run (ovf.loop, EVRUN_NOWAIT);

      for (i = 0; i < TEST_OVERFLOW_PIPES; ++i)
        {
          ev_io_stop (ovf.loop, &ovf.w [i]);
          ev_io_start (ovf.loop, &ovf.w [i]);
        }
    }

  memset (ovf.calls, 0, TEST_OVERFLOW_PIPES * sizeof (int));
  assert_true (ovf_run (EVRUN_ONCE, 2) >= 0);
  assert_int_equal (ovf.dups, 0);

  ovf_close ();
}

/*****************************************************************************/
/* a CQ backlog: far more ready fds than a small ring's CQ holds */

#define BACKLOG_PIPES 1000
#define BACKLOG_POLLS 64

struct backlog
{
  struct test_io t [BACKLOG_PIPES];
  int            fds [BACKLOG_PIPES][2];
};

/* 1000 ready pipes through a ring of at most 8 sqes whose callbacks stop
   their watchers, so nothing is left to submit and only the backlog itself
   can make the backend enter the kernel: on 5.5 to 5.7, which have no
   IORING_SQ_CQ_OVERFLOW flag, an idle EVRUN_NOWAIT poll must enter anyway
   (mode nooverflowflag).  the ring cannot grow here and at most a cq's
   worth (32) is flushed per enter: 32 polls, BACKLOG_POLLS leaves room */
static void
test_overflow_backlog_idle (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  struct backlog *b;
  int i, runs, done;

  /* 2000 pipe ends: more than a soft RLIMIT_NOFILE of 1024 */
  if (!test_fd_room (2 * BACKLOG_PIPES))
    skip ();

  /* a ring of at most 8 sqes: the backend retries smaller, as on ENOMEM */
  ev_iouring_test_setup_max = 8;
  loop = test_loop_new (ctx->mode);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), ctx->mode->backend);
  if (TEST_IS_IOURING (ctx))
    assert_true (ev_iouring_test_cq_entries * 4 < BACKLOG_PIPES);

  b = calloc (1, sizeof *b);
  assert_non_null (b);

  for (i = 0; i < BACKLOG_PIPES; ++i)
    {
      assert_int_equal (pipe2 (b->fds [i], O_NONBLOCK | O_CLOEXEC), 0);
      test_io_init (&b->t [i], b->fds [i][0], EV_READ);
      b->t [i].drain = 1;
      b->t [i].stop  = 1;
      ev_io_start (loop, &b->t [i].w);
    }

  /* armed while idle, then everything becomes ready at once */
  test_run_nowait (loop, 2);
  for (i = 0; i < BACKLOG_PIPES; ++i)
    test_put (b->fds [i][1]);

  for (runs = 0; runs < BACKLOG_POLLS; ++runs)
    {
      ev_run (loop, EVRUN_NOWAIT);

      for (done = i = 0; i < BACKLOG_PIPES; ++i)
        done += b->t [i].calls > 0;
      if (done == BACKLOG_PIPES)
        break;
    }

  /* a few more: drained pipes stay quiet */
  test_run_nowait (loop, 3);

  for (i = 0; i < BACKLOG_PIPES; ++i)
    {
      if (b->t [i].calls != 1)
        print_error ("pipe %d: %d calls\n", i, b->t [i].calls);
      assert_int_equal (b->t [i].calls, 1);
      ev_io_stop (loop, &b->t [i].w);
      close (b->fds [i][0]);
      close (b->fds [i][1]);
    }

  free (b);
  ev_loop_destroy (loop);
}

static const struct CMUnitTest tests [] = {
  TEST_BOTH (test_overflow_backlog_idle),
  TEST_ON (test_overflow_backlog_idle, nonodrop),
  TEST_ON (test_overflow_backlog_idle, nooverflowflag),
  TEST_ALL (test_overflow_drained_nowait),
  TEST_ON (test_overflow_drained_nowait, nooverflowflag),
  TEST_ALL (test_overflow_drained_once),
  TEST_ALL (test_overflow_restart_backlog),
  TEST_ALL (test_overflow_undrained_nowait),
  TEST_ALL (test_overflow_undrained_once),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
