/*
 * test_fork.c: DESIGN.md scenario 6.  a forked child with and without
 * ev_loop_fork; a child that runs the loop after its parent has exited
 * (libev 4.33 aborted there with "IORING_OP_POLL_ADD: Operation canceled");
 * the parent's loop after the child ran and exited.
 *
 * children never use cmocka asserts: child_check returns an exit code,
 * the parent asserts on it (0 ok, 2 no callback, 3 no ring rebuild,
 * 4 write failed, 5 parent never exited, 98 libev syserr, signal: abort).
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* what a child checks: its loop delivers an event on a pipe it writes */
static int
child_check (struct test_ctx *ctx, struct test_io *r, int wfd, int loop_fork)
{
  unsigned long rebuilds = ev_iouring_test_rebuilds;
  int i;

  alarm (10);

  if (loop_fork)
    ev_loop_fork (ctx->loop);

  r->calls = 0;
  if (write (wfd, "x", 1) != 1)
    return 4;

  for (i = 0; i < 100 && !r->calls; ++i)
    ev_run (ctx->loop, EVRUN_ONCE);

  if (r->calls != 1 || r->last != EV_READ)
    return 2;

  /* without ev_loop_fork our backend must notice the fork by itself */
  if (!loop_fork && TEST_IS_IOURING (ctx) && ev_iouring_test_rebuilds == rebuilds)
    return 3;

  return 0;
}

/* exit code of pid, or 128 + signal */
static int
child_wait (pid_t pid)
{
  int status;

  while (waitpid (pid, &status, 0) < 0)
    assert_int_equal (errno, EINTR);

  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);

  return WEXITSTATUS (status);
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
  int p [2];
  pid_t pid;

  fork_prepare (ctx, &r, p);

  pid = fork ();
  assert_true (pid >= 0);

  if (!pid)
    _exit (child_check (ctx, &r, p [1], loop_fork));

  assert_int_equal (child_wait (pid), 0);
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

      if (pipe2 (q, O_NONBLOCK))
        _exit (4);

      test_io_init (&cr, q [0], EV_READ);
      cr.drain = 1;
      ev_io_start (ctx->loop, &cr.w);

      /* let the parent run its loop first */
      while (read (go [0], &c, 1) != 1)
        usleep (1000);

      cr.calls = 0;
      if (write (q [1], "x", 1) != 1)
        _exit (4);

      for (i = 0; i < 100 && !cr.calls; ++i)
        ev_run (ctx->loop, EVRUN_ONCE);

      _exit (cr.calls == 1 && r.calls == 0 ? 0 : 2);
    }

  for (i = 0; i < 3; ++i)
    parent_check (ctx, &r, p [1]);

  test_put (go [1]);
  assert_int_equal (child_wait (pid), 0);

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

      if (pipe (life))
        _exit (4);

      orphan = fork ();
      if (orphan < 0)
        _exit (4);

      if (orphan)
        _exit (0); /* the parent leaves at once, closing life [1] */

      close (life [1]);

      /* wait for the parent's exit: EOF on its pipe, then reparenting */
      while (read (life [0], &c, 1) > 0)
        ;
      while (getppid () != me)
        usleep (1000);

      _exit (child_check (ctx, &r, p [1], loop_fork));
    }

  assert_int_equal (child_wait (mid), 0);

  /* the only child left is the orphan */
  assert_int_equal (child_wait (-1), 0);
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
  int p [2], i;

  fork_prepare (ctx, &r, p);

  for (i = 0; i < 10; ++i)
    {
      pid_t pid = fork ();

      assert_true (pid >= 0);

      if (!pid)
        _exit (child_check (ctx, &r, p [1], i & 1));

      assert_int_equal (child_wait (pid), 0);
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
