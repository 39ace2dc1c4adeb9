/*
 * test_fork.c: DESIGN.md scenario 6.  a forked child with and without
 * ev_loop_fork; a child that runs the loop after its parent has exited
 * (libev 4.33 aborted there with "IORING_OP_POLL_ADD: Operation canceled");
 * the parent's loop after the child ran and exited.
 *
 * children never use cmocka asserts: they run under test_in_child or
 * report through TEST_CHILD_CHECK and their exit status (common.h).
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common.h"

/* what a child checks: its loop delivers an event on a pipe it writes */
static void
child_check (struct test_ctx *ctx, struct test_io *r, int wfd, int loop_fork)
{
  unsigned long rings = ev_iouring_test_rings;
  int i;

  if (loop_fork)
    ev_loop_fork (ctx->loop);

  r->calls = 0;
  TEST_CHILD_CHECK (write (wfd, "x", 1) == 1);

  for (i = 0; i < 100 && !r->calls; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  TEST_CHILD_CHECK (r->calls == 1 && r->last == EV_READ);

  /* without ev_loop_fork our backend must notice the fork by itself */
  TEST_CHILD_CHECK (loop_fork || !TEST_IS_IOURING (ctx) || ev_iouring_test_rings != rings);
}

struct child_args
{
  struct test_ctx *ctx;
  struct test_io  *r;
  int              wfd, loop_fork;
};

static void
child_run (void *arg)
{
  struct child_args *a = arg;

  child_check (a->ctx, a->r, a->wfd, a->loop_fork);
}

/* the parent's loop still works: an event on its own pipe */
static void
parent_check (struct test_ctx *ctx, struct test_io *r, int wfd)
{
  int i;

  r->calls = 0;
  test_put (wfd);

  for (i = 0; i < 100 && !r->calls; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  assert_int_equal (r->calls, 1);
  assert_int_equal (r->last, EV_READ);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r->calls, 1);
}

/* a loop with one drained reader, armed by a few iterations */
static void
fork_prepare (struct test_ctx *ctx, struct test_io *r, int p [2])
{
  test_pipe (ctx, p);
  test_io_init (r, p [0], EV_READ);
  r->drain = 1;
  ev_io_start (ctx->loop, &r->w);
  test_run_nowait (ctx->loop, 2);
}

static void
fork_simple (void **state, int loop_fork)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  struct child_args a;
  int p [2];

  fork_prepare (ctx, &r, p);

  a.ctx = ctx; a.r = &r; a.wfd = p [1]; a.loop_fork = loop_fork;
  test_in_child (child_run, &a);
  parent_check (ctx, &r, p [1]);

  ev_io_stop (ctx->loop, &r.w);
}

/* fork + ev_loop_fork: the child's watchers work, so do the parent's */
static void
test_fork_loop_fork (void **state)
{
  fork_simple (state, 1);
}

/* fork without ev_loop_fork: no abort, the child's watchers still work
   (the backend notices the fork and builds its own ring) */
static void
test_fork_no_loop_fork (void **state)
{
  fork_simple (state, 0);
}

/* the parent keeps running its loop while the child runs its own: events
   on the parent's pipe stay with the parent */
static void
test_fork_both_run (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], go [2], i;
  char c;
  pid_t pid;

  fork_prepare (ctx, &r, p);
  test_pipe (ctx, go);

  pid = fork ();
  assert_true (pid >= 0);

  if (!pid)
    {
      int q [2];
      struct test_io cr;

      alarm (10);
      ev_loop_fork (ctx->loop);
      ev_io_stop (ctx->loop, &r.w);
      r.calls = 0;

      TEST_CHILD_CHECK (!pipe2 (q, O_NONBLOCK));

      test_io_init (&cr, q [0], EV_READ);
      cr.drain = 1;
      ev_io_start (ctx->loop, &cr.w);

      /* let the parent run its loop first */
      while (read (go [0], &c, 1) != 1)
        usleep (1000);

      cr.calls = 0;
      TEST_CHILD_CHECK (write (q [1], "x", 1) == 1);

      for (i = 0; i < 100 && !cr.calls; ++i)
        ev_run (ctx->loop, EVRUN_ONCE);

      TEST_CHILD_CHECK (cr.calls == 1 && r.calls == 0);
      _exit (0);
    }

  for (i = 0; i < 3; ++i)
    parent_check (ctx, &r, p [1]);

  test_put (go [1]);
  assert_int_equal (test_child_status (pid), 0);

  parent_check (ctx, &r, p [1]);
  ev_io_stop (ctx->loop, &r.w);
}

/* the parent exits first; then the child runs the loop it inherited.  the
   test process forks that parent, which takes over the loop (ev_loop_fork),
   runs it so that its own requests are armed, forks the child and exits:
   its armed requests are cancelled.  the test process is subreaper, so it
   gets to reap the orphan */
static void
fork_orphan (void **state, int loop_fork)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2];
  pid_t me = getpid (), mid, orphan;

  fork_prepare (ctx, &r, p);
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 1), 0);

  mid = fork ();
  assert_true (mid >= 0);

  if (!mid)
    {
      int life [2];
      char c;

      alarm (10);
      ev_loop_fork (ctx->loop);
      ev_run (ctx->loop, EVRUN_NOWAIT);
      ev_run (ctx->loop, EVRUN_NOWAIT);

      TEST_CHILD_CHECK (!pipe (life));

      orphan = fork ();
      TEST_CHILD_CHECK (orphan >= 0);

      if (orphan)
        _exit (0); /* the parent leaves at once, closing life [1] */

      alarm (10); /* not inherited from the parent */
      close (life [1]);

      /* wait for the parent's exit: EOF on its pipe, then reparenting */
      while (read (life [0], &c, 1) > 0)
        ;
      while (getppid () != me)
        usleep (1000);

      child_check (ctx, &r, p [1], loop_fork);
      _exit (0);
    }

  assert_int_equal (test_child_status (mid), 0);

  /* the only child left is the orphan */
  assert_int_equal (test_child_status (-1), 0);
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 0), 0);

  parent_check (ctx, &r, p [1]);
  ev_io_stop (ctx->loop, &r.w);
}

static void
test_fork_orphan_loop_fork (void **state)
{
  fork_orphan (state, 1);
}

static void
test_fork_orphan_no_loop_fork (void **state)
{
  fork_orphan (state, 0);
}

/* forks in a row, each child without ev_loop_fork, each running the loop
   and exiting: the parent is never disturbed by the children's exits */
static void
test_fork_many_children (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  struct child_args a;
  int p [2], i;

  fork_prepare (ctx, &r, p);

  for (i = 0; i < 10; ++i)
    {
      a.ctx = ctx; a.r = &r; a.wfd = p [1]; a.loop_fork = i & 1;
      test_in_child (child_run, &a);
      parent_check (ctx, &r, p [1]);
    }

  ev_io_stop (ctx->loop, &r.w);
}

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_fork_both_run),
  TEST_ALL (test_fork_loop_fork),
  TEST_ALL (test_fork_many_children),
  TEST_ALL (test_fork_no_loop_fork),
  TEST_ALL (test_fork_orphan_loop_fork),
  TEST_ALL (test_fork_orphan_no_loop_fork),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
