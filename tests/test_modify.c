/*
 * test_modify.c: starting, stopping and changing io watchers; close and fd
 * reuse (the generation counter in user_data), also of both ends of a
 * pipe at once, before and after the old file's event was delivered;
 * EV_ERROR for bad fds.  DESIGN.md scenarios 1, 3, 4 and 5, on io_uring
 * and on epoll.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define TEST_CHURN 10000

/* start r reading fd, and let the loop arm it: two iterations, no call */
static void
armed_reader (struct test_ctx *ctx, struct test_io *r, int fd)
{
  test_io_start (ctx->loop, r, fd, EV_READ);
  test_run_nowait (ctx->loop, 2);
  assert_int_equal (r->calls, 0);
}

/* scenario 1: stop/set/start the same fd thousands of times with an event
   pending; libev 4.33 aborted after ~11 rounds */
static void
test_modify_restart_churn (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], i;

  test_pipe (ctx, p);
  test_put (p [1]);
  test_io_start (ctx->loop, &r, p [0], EV_READ);

  for (i = 0; i < TEST_CHURN; ++i)
    {
      test_io_reset (ctx->loop, &r, p [0], EV_READ);
      ev_run (ctx->loop, EVRUN_NOWAIT);
    }

  /* the byte is never read: every iteration reports it */
  assert_int_equal (r.calls, TEST_CHURN);
  assert_int_equal (r.revents, EV_READ);

  ev_io_stop (ctx->loop, &r.w);
}

/* scenario 1 without running the loop in between: many changes of the same
   fd collapse into one modification */
static void
test_modify_restart_batch (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], i, round;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);

  for (round = 1; round <= 10; ++round)
    {
      for (i = 0; i < 1000; ++i)
        test_io_reset (ctx->loop, &r, p [0], i & 1 ? EV_READ | EV_WRITE : EV_READ);

      test_put (p [1]);
      ev_run (ctx->loop, EVRUN_ONCE);
      assert_int_equal (r.calls, round);
      assert_int_equal (r.last, EV_READ);
      test_get (p [0]);
    }

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 10);

  ev_io_stop (ctx->loop, &r.w);
}

/* READ <-> READ|WRITE 1000 times, one iteration each: every iteration
   reports exactly the asked-for events that are ready (ready: what the
   fd has) */
static void
toggle_events (struct test_ctx *ctx, struct test_io *rw, int ready)
{
  int i;

  for (i = 0; i < 1000; ++i)
    {
      int ev = i & 1 ? EV_READ | EV_WRITE : EV_READ;

      test_io_reset (ctx->loop, rw, rw->w.fd, ev);
      rw->last = 0;
      ev_run (ctx->loop, EVRUN_NOWAIT);

      assert_int_equal (rw->last, ev & ready);
    }
}

/* READ <-> READ|WRITE on every iteration, with and without data */
static void
test_modify_events_toggle (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io rw;
  int s [2];

  test_socketpair (ctx, s);
  test_io_start (ctx->loop, &rw, s [0], EV_READ);

  /* no data: only the write half can be ready */
  toggle_events (ctx, &rw, EV_WRITE);
  assert_int_equal (rw.calls, 500);

  test_put (s [1]);
  toggle_events (ctx, &rw, EV_READ | EV_WRITE);
  assert_int_equal (rw.calls, 500 + 1000);

  ev_io_stop (ctx->loop, &rw.w);
}

/* scenario 3: ev_io_stop + close on a socket: the peer sees EOF after ONE
   loop iteration (a pending poll would keep the file open) */
static void
test_modify_stop_close_eof (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  char c;
  int s [2];

  test_socketpair (ctx, s);
  armed_reader (ctx, &r, s [0]);

  ev_io_stop (ctx->loop, &r.w);
  test_close (ctx, s [0]);
  ev_run (ctx->loop, EVRUN_NOWAIT);

  assert_int_equal (recv (s [1], &c, 1, MSG_DONTWAIT), 0);
}

/* scenario 3 with another watcher active and an event for it in the same
   iteration as the removal */
static void
test_modify_stop_close_eof_busy (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r, other;
  char c;
  int s [2], p [2];

  test_socketpair (ctx, s);
  test_pipe (ctx, p);
  test_io_init (&r, s [0], EV_READ);
  test_io_init (&other, p [0], EV_READ);
  other.drain = 1;
  ev_io_start (ctx->loop, &r.w);
  ev_io_start (ctx->loop, &other.w);
  test_run_nowait (ctx->loop, 2);
  assert_int_equal (r.calls + other.calls, 0);

  ev_io_stop (ctx->loop, &r.w);
  test_close (ctx, s [0]);
  test_put (p [1]);
  ev_run (ctx->loop, EVRUN_NOWAIT);

  assert_int_equal (recv (s [1], &c, 1, MSG_DONTWAIT), 0);
  assert_int_equal (other.calls, 1);

  ev_io_stop (ctx->loop, &other.w);
}

/* scenario 4: close without ev_io_stop is tolerated (no abort); once the
   watcher is stopped the peer sees EOF within one iteration */
static void
test_modify_close_without_stop (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  char c;
  int s [2];

  test_socketpair (ctx, s);
  armed_reader (ctx, &r, s [0]);

  test_close (ctx, s [0]);
  test_run_nowait (ctx->loop, 3);

  ev_io_stop (ctx->loop, &r.w);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_int_equal (recv (s [1], &c, 1, MSG_DONTWAIT), 0);
}

/* put a fresh, empty pipe's read end on fd number fd; returns its writer */
static int
test_reuse_fd (struct test_ctx *ctx, int fd)
{
  int q [2];

  assert_int_equal (pipe2 (q, O_NONBLOCK | O_CLOEXEC), 0);
  if (q [0] != fd)
    {
      assert_int_equal (dup3 (q [0], fd, O_CLOEXEC), fd);
      close (q [0]);
    }

  test_fd_track (ctx, fd);
  test_fd_track (ctx, q [1]);
  return q [1];
}

/* scenario 5: fd number reused after stop + close.  the old file became
   ready while the loop was not running, so a completion for it may be
   queued: it must not reach the new watcher */
static void
test_modify_reuse_after_stop (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io old, new;
  int p [2], fd, qw;

  test_pipe (ctx, p);
  fd = p [0];
  armed_reader (ctx, &old, fd);

  test_put (p [1]);
  ev_io_stop (ctx->loop, &old.w);
  test_close (ctx, fd);
  qw = test_reuse_fd (ctx, fd);

  test_io_start (ctx->loop, &new, fd, EV_READ);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (old.calls, 0);
  assert_int_equal (new.calls, 0);

  test_put (qw);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (new.calls, 1);
  assert_int_equal (new.last, EV_READ);
  test_get (fd);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (new.calls, 1);
  assert_int_equal (old.calls, 0);

  ev_io_stop (ctx->loop, &new.w);
}

/* scenario 5, the other order: close while the watcher is active, reuse the
   number, then stop/set/start the watcher on the new file */
static void
test_modify_reuse_without_stop (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], fd, qw;

  test_pipe (ctx, p);
  fd = p [0];
  armed_reader (ctx, &r, fd);

  test_put (p [1]);
  test_close (ctx, fd);
  qw = test_reuse_fd (ctx, fd);

  test_io_reset (ctx->loop, &r, fd, EV_READ);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 0);

  test_put (qw);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 1);
  assert_int_equal (r.last, EV_READ);
  test_get (fd);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 1);

  ev_io_stop (ctx->loop, &r.w);
}

/* scenario 5 against libev's rule: stop, close, a new file on the same
   number, and the same watcher started again without ev_io_set.  libev
   only promises to notice a new file after ev_io_set ("the special problem
   of disappearing file descriptors"), but epoll adds an fd that had no
   watchers anew, so the new file's events arrive, round after round */
static void
test_modify_reopen_without_set (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], fd, qw, i;

  test_pipe (ctx, p);
  fd = p [0];
  armed_reader (ctx, &r, fd);
  r.drain = 1;

  /* an event first: the fd's file is known, and its poll re-armed */
  test_put (p [1]);
  assert_true (test_run_until (ctx->loop, &r.calls, 10) >= 0);
  test_run_nowait (ctx->loop, 2);

  ev_io_stop (ctx->loop, &r.w);
  test_run_nowait (ctx->loop, 2);
  test_close (ctx, fd);
  qw = test_reuse_fd (ctx, fd);
  ev_io_start (ctx->loop, &r.w);

  for (i = 1; i <= 5; ++i)
    {
      test_put (qw);
      assert_true (test_run_until (ctx->loop, &r.calls, 10) >= 0);
      test_run_nowait (ctx->loop, 2);
      assert_int_equal (r.calls, 1 + i);
      assert_int_equal (r.last, EV_READ);
    }

  ev_io_stop (ctx->loop, &r.w);
}

/* scenario 5 with the new file ready and the old one not: the new watcher
   is called once per iteration, never twice */
static void
test_modify_reuse_ready (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], fd, qw, i;

  test_pipe (ctx, p);
  fd = p [0];
  armed_reader (ctx, &r, fd);

  ev_io_stop (ctx->loop, &r.w);
  test_close (ctx, fd);
  qw = test_reuse_fd (ctx, fd);
  test_put (qw);
  ev_io_set (&r.w, fd, EV_READ);
  ev_io_start (ctx->loop, &r.w);

  for (i = 1; i <= 5; ++i)
    {
      ev_run (ctx->loop, EVRUN_ONCE);
      assert_int_equal (r.calls, i);
    }

  ev_io_stop (ctx->loop, &r.w);
}

/* a watcher on an fd that is not open gets EV_ERROR and is stopped; the
   loop goes on working.  io_uring only: libev's epoll backend asserts
   ("I/O watcher with invalid fd found in epoll_ctl") on EBADF unless built
   with NDEBUG, where it does the same fd_kill */
static void
test_modify_ebadf_error (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io bad, good;
  int p [2], fd;

  fd = fcntl (0, F_DUPFD_CLOEXEC, 500);
  assert_true (fd >= 500);
  close (fd);

  test_pipe (ctx, p);
  test_io_init (&bad, fd, EV_READ);
  test_io_init (&good, p [0], EV_READ);
  ev_io_start (ctx->loop, &bad.w);
  ev_io_start (ctx->loop, &good.w);

  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_int_equal (bad.calls, 1);
  assert_true (bad.last & EV_ERROR);
  assert_false (ev_is_active (&bad.w));

  test_put (p [1]);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (good.calls, 1);
  assert_int_equal (good.last, EV_READ);
  assert_int_equal (bad.calls, 1);

  ev_io_stop (ctx->loop, &good.w);
}

/* an armed fd closed behind libev's back, then its watcher modified: the
   new arm fails with EBADF and the watcher gets EV_ERROR */
static void
test_modify_closed_fd_error (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], i;

  test_pipe (ctx, p);
  armed_reader (ctx, &r, p [0]);

  test_close (ctx, p [0]);
  test_io_reset (ctx->loop, &r, p [0], EV_READ | EV_WRITE);

  for (i = 0; i < 3 && !r.calls; ++i)
    ev_run (ctx->loop, EVRUN_NOWAIT);

  assert_int_equal (r.calls, 1);
  assert_true (r.last & EV_ERROR);
  assert_false (ev_is_active (&r.w));
}

/*****************************************************************************/
/* both ends of a pipe reopened on the same numbers, twice */

/* reopen the pair fds [] as a new one, landing on the same numbers */
static void
reopen_pipe (int fds [2])
{
  int p [2], k;

  assert_int_equal (pipe2 (p, O_NONBLOCK | O_CLOEXEC), 0);

  /* usually the kernel hands out the freed numbers again by itself */
  if (p [0] == fds [0] && p [1] == fds [1])
    return;

  for (k = 0; k < 2; ++k)
    {
      int high = fcntl (p [k], F_DUPFD_CLOEXEC, 512);

      assert_true (high >= 0);
      close (p [k]);
      p [k] = high;
    }

  for (k = 0; k < 2; ++k)
    {
      assert_int_equal (dup3 (p [k], fds [k], O_CLOEXEC), fds [k]);
      close (p [k]);
    }
}

/* both ends of a pipe closed and reopened on the same numbers, twice: the
   readiness of the old pipe must not reach the watcher of the new one,
   whether its completion was still waiting to be reaped (round 0) or the
   watcher was already called for it and armed again (round 1) */
static void
test_modify_reuse_twice (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  int p [2], round;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &t, p [0], EV_READ);

  for (round = 0; round < 2; ++round)
    {
      test_run_nowait (ctx->loop, 2);
      assert_int_equal (t.calls, 0);

      /* round 0: readable, the completion is waiting to be reaped;
         round 1: reported once, then the pipe is replaced */
      test_put (p [1]);
      if (round)
        {
          test_run_nowait (ctx->loop, 1);
          assert_true (t.calls >= 1);
          t.calls = 0;
        }

      ev_io_stop (ctx->loop, &t.w);
      close (p [0]);
      close (p [1]);
      reopen_pipe (p);
      ev_io_set (&t.w, p [0], EV_READ);
      ev_io_start (ctx->loop, &t.w);

      test_run_nowait (ctx->loop, 5);
      assert_int_equal (t.calls, 0);

      test_put (p [1]);
      test_run_nowait (ctx->loop, 3);
      assert_true (t.calls >= 1);
      assert_int_equal (t.last, EV_READ);
      test_get (p [0]);
      test_run_nowait (ctx->loop, 1);
      t.calls = 0;
    }

  ev_io_stop (ctx->loop, &t.w);
}

/* write churn: WCHURN write watchers on socketpairs started every
   iteration, each stopped in its callback.  once the ring has grown to the
   changes an iteration makes, every iteration is one io_uring_enter (the
   sq holds all its sqes); a full sq grows the ring, a one-off burst does
   not (io_uring only: epoll has no ring) */
#define WCHURN 100

static void
wchurn_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)revents;
  ev_io_stop (loop, w);
  ++*(int *)w->data;
}

static void
test_modify_write_churn_enters (void **state)
{
  struct test_ctx *ctx = *state;
  ev_io w [WCHURN];
  int s [WCHURN][2], i, k, calls = 0;
  unsigned long before = 0;

  if (!test_fd_room (2 * WCHURN + 16))
    return;

  for (i = 0; i < WCHURN; ++i)
    {
      assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s [i]), 0);
      ev_io_init (&w [i], wchurn_cb, s [i][0], EV_WRITE);
      w [i].data = &calls;
    }

  for (k = 0; k < 30; ++k)
    {
      if (k == 20)
        before = ev_iouring_test_enters;

      for (i = 0; i < WCHURN; ++i)
        ev_io_start (ctx->loop, &w [i]);

      ev_run (ctx->loop, EVRUN_NOWAIT);
    }

  before = ev_iouring_test_enters - before;

  for (i = 0; i < WCHURN; ++i)
    {
      ev_io_stop (ctx->loop, &w [i]);
      close (s [i][0]);
      close (s [i][1]);
    }

  /* one iteration arms them, the next one reports them */
  assert_true (calls >= 28 * WCHURN);
  print_message ("%lu io_uring_enter in the last 10 iterations\n", before);
  assert_true (before <= 10);
}

static const struct CMUnitTest tests [] = {
  TEST_ON (test_modify_write_churn_enters, iouring),
  TEST_ON (test_modify_write_churn_enters, noextarg),
  TEST_ALL (test_modify_close_without_stop),
  TEST_ON (test_modify_closed_fd_error, iouring),
  TEST_PATHS (test_modify_closed_fd_error),
  TEST_ON (test_modify_ebadf_error, iouring),
  TEST_PATHS (test_modify_ebadf_error),
  TEST_ALL (test_modify_events_toggle),
  TEST_ALL (test_modify_restart_batch),
  TEST_ALL (test_modify_restart_churn),
  TEST_ALL (test_modify_reuse_after_stop),
  TEST_ALL (test_modify_reuse_ready),
  TEST_BOTH (test_modify_reuse_twice),
  TEST_BOTH (test_modify_reopen_without_set),
  TEST_ALL (test_modify_reuse_without_stop),
  TEST_ALL (test_modify_stop_close_eof),
  TEST_ALL (test_modify_stop_close_eof_busy),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
