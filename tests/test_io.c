/*
 * test_io.c: read/write readiness on pipes and socketpairs, level-triggered,
 * on io_uring (every kernel path) and on epoll with the same expectations.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

/* a new pipe, filled until write () says EAGAIN, and an EV_WRITE watcher
   on its write end that the loop does not call */
static void
full_pipe_writer (struct test_ctx *ctx, int p [2], struct test_io *w)
{
  char buf [65536];

  test_pipe (ctx, p);
  memset (buf, 'x', sizeof buf);
  while (write (p [1], buf, sizeof buf) > 0)
    ;
  assert_int_equal (errno, EAGAIN);

  test_io_start (ctx->loop, w, p [1], EV_WRITE);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (w->calls, 0);
}

/* a readable pipe: one blocking iteration delivers EV_READ exactly once */
static void
test_io_pipe_readable (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2];

  test_pipe (ctx, p);
  test_io_init (&r, p [0], EV_READ);
  r.drain = 1;
  ev_io_start (ctx->loop, &r.w);

  test_put (p [1]);
  ev_run (ctx->loop, EVRUN_ONCE);

  assert_int_equal (r.calls, 1);
  assert_int_equal (r.last, EV_READ);

  /* drained: nothing more */
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 1);

  ev_io_stop (ctx->loop, &r.w);
}

/* an empty pipe never calls back */
static void
test_io_pipe_idle (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2];

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);

  test_run_nowait (ctx->loop, 5);
  assert_int_equal (r.calls, 0);

  ev_io_stop (ctx->loop, &r.w);
}

/* level-triggered: a callback that leaves data behind is called again */
static void
test_io_pipe_level_triggered (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], i;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);

  assert_int_equal (write (p [1], "abc", 3), 3);

  /* the callback reads nothing: every iteration reports it again */
  for (i = 1; i <= 3; ++i)
    {
      ev_run (ctx->loop, EVRUN_ONCE);
      assert_int_equal (r.calls, i);
    }

  /* now read one byte per iteration from outside the callback */
  for (i = 0; i < 3; ++i)
    {
      test_get (p [0]);
      test_run_nowait (ctx->loop, 1);
    }

  assert_int_equal (r.calls, 5);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 5);

  ev_io_stop (ctx->loop, &r.w);
}

/* a pipe's write end is writable on every iteration */
static void
test_io_pipe_writable (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io w;
  int p [2], i;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &w, p [1], EV_WRITE);

  for (i = 1; i <= 4; ++i)
    {
      ev_run (ctx->loop, EVRUN_ONCE);
      assert_int_equal (w.calls, i);
      assert_int_equal (w.last, EV_WRITE);
    }

  ev_io_stop (ctx->loop, &w.w);
}

/* a full pipe is not writable until the reader makes room */
static void
test_io_pipe_full (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io w;
  char buf [65536];
  int p [2];

  full_pipe_writer (ctx, p, &w);

  /* pipes wake writers only when a whole page is free */
  assert_true (read (p [0], buf, sizeof buf) > 4096);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.last, EV_WRITE);

  ev_io_stop (ctx->loop, &w.w);
}

/* one watcher asking for EV_READ | EV_WRITE gets exactly what is ready */
static void
test_io_socket_read_write (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io rw;
  int s [2];

  test_socketpair (ctx, s);
  test_io_start (ctx->loop, &rw, s [0], EV_READ | EV_WRITE);

  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (rw.calls, 1);
  assert_int_equal (rw.last, EV_WRITE);

  test_put (s [1]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (rw.calls, 2);
  assert_int_equal (rw.last, EV_READ | EV_WRITE);

  test_get (s [0]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (rw.calls, 3);
  assert_int_equal (rw.last, EV_WRITE);

  ev_io_stop (ctx->loop, &rw.w);
}

/* two watchers on one fd, different events: each sees only its own */
static void
test_io_two_watchers_one_fd (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r, w;
  int s [2];

  test_socketpair (ctx, s);
  test_io_init (&r, s [0], EV_READ);
  test_io_init (&w, s [0], EV_WRITE);
  ev_io_start (ctx->loop, &r.w);
  ev_io_start (ctx->loop, &w.w);

  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 0);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.revents, EV_WRITE);

  test_put (s [1]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.revents, EV_READ);
  assert_int_equal (w.calls, 2);
  assert_int_equal (w.revents, EV_WRITE);

  /* stopping the writer leaves the reader armed */
  ev_io_stop (ctx->loop, &w.w);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 2);
  assert_int_equal (w.calls, 2);

  test_get (s [0]);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 2);

  ev_io_stop (ctx->loop, &r.w);
}

/* the peer closed: EV_READ, and read () returns 0, on every iteration */
static void
test_io_socket_eof (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  char c;
  int s [2];

  test_socketpair (ctx, s);
  test_io_start (ctx->loop, &r, s [0], EV_READ);

  test_run_nowait (ctx->loop, 2);
  assert_int_equal (r.calls, 0);

  test_close (ctx, s [1]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.last, EV_READ);
  assert_int_equal (read (s [0], &c, 1), 0);

  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 2);

  ev_io_stop (ctx->loop, &r.w);
}

/* POLLHUP wakes a watcher for the direction the fd can never be ready in:
   an EV_WRITE watcher on a pipe's read end is called once the writer has
   gone, as epoll reports EPOLLHUP to both directions */
static void
test_io_hup_wakes_both (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r, w;
  int p [2];

  test_pipe (ctx, p);
  test_io_init (&r, p [0], EV_READ);
  test_io_init (&w, p [0], EV_WRITE);
  ev_io_start (ctx->loop, &r.w);
  ev_io_start (ctx->loop, &w.w);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls + w.calls, 0);

  test_close (ctx, p [1]);
  ev_run (ctx->loop, EVRUN_ONCE);

  assert_int_equal (r.calls, 1);
  assert_int_equal (r.revents, EV_READ);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.revents, EV_WRITE);

  ev_io_stop (ctx->loop, &r.w);
  ev_io_stop (ctx->loop, &w.w);
}

/* POLLERR: a full pipe whose reader has gone wakes its EV_WRITE watcher */
static void
test_io_err_wakes_writer (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io w;
  int p [2];

  full_pipe_writer (ctx, p, &w);

  test_close (ctx, p [0]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.revents, EV_WRITE);
  assert_int_equal (write (p [1], "x", 1), -1);
  assert_int_equal (errno, EPIPE);

  ev_io_stop (ctx->loop, &w.w);
}

/* a watcher stopping itself in its callback is not called again */
static void
test_io_stop_in_callback (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2];

  test_pipe (ctx, p);
  test_io_init (&r, p [0], EV_READ);
  r.stop = 1;
  ev_io_start (ctx->loop, &r.w);

  test_put (p [1]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 1);
  assert_false (ev_is_active (&r.w));

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 1);

  /* and works again when restarted */
  r.stop = 0;
  ev_io_start (ctx->loop, &r.w);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 2);

  ev_io_stop (ctx->loop, &r.w);
}

/* large fd numbers and many fds ready in the same iteration: 16 dups of
   one pipe at 1000, 1037, ... 1555, closer together when RLIMIT_NOFILE
   stops below (Debian's soft limit is 1024: raised to the hard one) */
#define MANY_FDS_BASE 1000
#define MANY_FDS_STEP 37

static void
test_io_many_fds (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r [16];
  long limit = test_nofile_raise (MANY_FDS_BASE + 15 * MANY_FDS_STEP + 1);
  int p [2], i, step;

  if (limit < MANY_FDS_BASE + 16)
    TEST_SKIP ("RLIMIT_NOFILE hard limit %ld: no 16 fd numbers from %d\n", limit, MANY_FDS_BASE);

  step = (int)((limit - 1 - MANY_FDS_BASE) / 15);
  if (step > MANY_FDS_STEP)
    step = MANY_FDS_STEP;

  test_pipe (ctx, p);
  test_put (p [1]);

  for (i = 0; i < 16; ++i)
    {
      int fd = fcntl (p [0], F_DUPFD_CLOEXEC, MANY_FDS_BASE + step * i);

      assert_true (fd >= MANY_FDS_BASE + step * i);
      test_fd_track (ctx, fd);
      test_io_start (ctx->loop, &r [i], fd, EV_READ);
    }

  ev_run (ctx->loop, EVRUN_ONCE);
  for (i = 0; i < 16; ++i)
    assert_int_equal (r [i].calls, 1);

  ev_run (ctx->loop, EVRUN_ONCE);
  for (i = 0; i < 16; ++i)
    {
      assert_int_equal (r [i].calls, 2);
      ev_io_stop (ctx->loop, &r [i].w);
    }
}

#define FIRST_RUN_FDS 2000

static void
nop_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
}

/* FIRST_RUN_FDS watchers started before the first iteration, more than the
   first ring holds: the ring grows once, and each fd is armed once, on the
   grown ring (a poll armed on the small ring would have to be removed
   again, one hash walk each: 0.5 s for 9900 fds); the kernel then holds
   exactly one poll per fd, and every watcher works */
static void
test_io_many_first_run (void **state)
{
  struct test_ctx *ctx = *state;
  static ev_io w [FIRST_RUN_FDS];
  static int p [FIRST_RUN_FDS][2];
  struct test_io r;
  unsigned long before, sqes;
  int i, q [2], polls;

  if (!test_fd_room (2 * FIRST_RUN_FDS + 16))
    return;

  for (i = 0; i < FIRST_RUN_FDS; ++i)
    {
      assert_int_equal (pipe2 (p [i], O_NONBLOCK | O_CLOEXEC), 0);
      ev_io_init (&w [i], nop_cb, p [i][0], EV_READ);
      ev_io_start (ctx->loop, &w [i]);
    }

  test_pipe (ctx, q);
  test_io_start (ctx->loop, &r, q [0], EV_READ);
  r.drain = 1;

  before = ev_iouring_test_submitted;
  test_run_nowait (ctx->loop, 2);
  sqes  = ev_iouring_test_submitted - before;
  polls = test_ring_polls ();

  test_put (q [1]);
  test_run_until (ctx->loop, &r.calls, 10);

  for (i = 0; i < FIRST_RUN_FDS; ++i)
    {
      ev_io_stop (ctx->loop, &w [i]);
      close (p [i][0]);
      close (p [i][1]);
    }
  ev_io_stop (ctx->loop, &r.w);

  assert_int_equal (r.calls, 1);

  if (TEST_IS_IOURING (ctx))
    {
      print_message ("%d fds: %lu sqes in the first iterations, %d polls in the kernel\n",
                     FIRST_RUN_FDS + 1, sqes, polls);
      /* the first ring's polls (its cq holds 64), their removals, the rest
         once; and each fd's id item (ev_iouring.c, note r), added when its
         watcher starts and again when the grown ring arms it */
      assert_true (sqes <= 3 * (FIRST_RUN_FDS + 1) + 2 * 128);
      assert_int_equal (polls, FIRST_RUN_FDS + 1);
    }
}

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_io_err_wakes_writer),
  TEST_ALL (test_io_hup_wakes_both),
  TEST_ALL (test_io_many_fds),
  TEST_ALL (test_io_many_first_run),
  TEST_ALL (test_io_pipe_full),
  TEST_ALL (test_io_pipe_idle),
  TEST_ALL (test_io_pipe_level_triggered),
  TEST_ALL (test_io_pipe_readable),
  TEST_ALL (test_io_pipe_writable),
  TEST_ALL (test_io_socket_eof),
  TEST_ALL (test_io_socket_read_write),
  TEST_ALL (test_io_stop_in_callback),
  TEST_ALL (test_io_two_watchers_one_fd),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
