/*
 * test_tier.c: watchers that stay idle.  ev_iouring.c moves a poll that
 * stayed armed and idle for a sweep period (0.4 to 0.8 s, note l) into an
 * epoll set polled on the ring; whatever a watcher does after that must
 * look as it does on epoll:
 *
 * - a read watcher woken after a long idle time is called, and called
 *   again next iteration while data is left (level-triggered);
 * - a write watcher on a full pipe is called once the reader drains it;
 * - a watcher changed while idle (EV_WRITE added, then removed) reports
 *   the new events only;
 * - ev_io_stop and close of an idle socket: the peer sees EOF at once;
 * - many idle watchers, then all of them ready: each called once a round;
 * - a child that calls ev_loop_fork gets the events of idle watchers,
 *   and the parent still gets its own;
 * - a watcher in the epoll set that becomes busy alone goes back to the
 *   ring; watchers that fire together stay.
 *
 * every test waits IDLE seconds first, in blocking iterations with no
 * other activity, so the tier is reached on io_uring; on epoll the same
 * tests are the reference.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* longer than twice the sweep period: every poll has moved */
#define IDLE 1.

#define MANY 200

static void
idle_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)w;
  (void)revents;
  ev_break (loop, EVBREAK_ONE);
}

/* ev_run (EVRUN_ONCE) until *calls exceeds before, at most 10 times */
static int
run_until_more (struct ev_loop *loop, const int *calls, int before)
{
  int i;

  for (i = 0; i < 10 && *calls <= before; ++i)
    ev_run (loop, EVRUN_ONCE);

  return *calls > before;
}

/* open epoll fds of this process (/proc/self/fd) */
static int
eventpoll_fds (void)
{
  char path [64], link [64];
  int fd, n = 0;

  for (fd = 0; fd < 1024; ++fd)
    {
      ssize_t len;

      snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
      len = readlink (path, link, sizeof link - 1);
      if (len > 0)
        {
          link [len] = 0;
          n += !strcmp (link, "anon_inode:[eventpoll]");
        }
    }

  return n;
}

/* run the loop, blocking, for IDLE seconds with nothing to do: on
   io_uring, the idle polls are in an epoll set now (an eventpoll fd) */
static void
idle_wait (struct ev_loop *loop)
{
  ev_timer t;

  ev_timer_init (&t, idle_timer_cb, IDLE, 0.);
  ev_timer_start (loop, &t);
  ev_run (loop, 0);
  ev_timer_stop (loop, &t);

  assert_true (eventpoll_fds () >= 1);
}

static void
test_tier_read_level (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2];

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);
  idle_wait (ctx->loop);
  assert_int_equal (r.calls, 0);

  /* two bytes, one read per call: called in two iterations, then never */
  test_put (p [1]);
  test_put (p [1]);
  assert_true (test_run_until (ctx->loop, &r.calls, 10) >= 0);
  assert_int_equal (r.last, EV_READ);
  test_get (p [0]);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_int_equal (r.calls, 2);
  test_get (p [0]);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 2);

  /* and once more after another idle stretch */
  idle_wait (ctx->loop);
  test_put (p [1]);
  r.drain = 1;
  assert_true (run_until_more (ctx->loop, &r.calls, 2));
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 3);
  ev_io_stop (ctx->loop, &r.w);
}

static void
test_tier_write_full_pipe (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io w;
  char buf [65536];
  int p [2];

  test_pipe (ctx, p);
  while (write (p [1], buf, sizeof buf) > 0)
    ;
  test_io_start (ctx->loop, &w, p [1], EV_WRITE);
  idle_wait (ctx->loop);
  assert_int_equal (w.calls, 0);

  while (read (p [0], buf, sizeof buf) > 0)
    ;
  assert_true (test_run_until (ctx->loop, &w.calls, 10) >= 0);
  assert_int_equal (w.last, EV_WRITE);
  ev_io_stop (ctx->loop, &w.w);
}

static void
test_tier_modify (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  int s [2];

  test_socketpair (ctx, s);
  test_io_start (ctx->loop, &t, s [0], EV_READ);
  idle_wait (ctx->loop);

  /* EV_WRITE added while idle: writable at once */
  test_io_reset (ctx->loop, &t, s [0], EV_READ | EV_WRITE);
  assert_true (test_run_until (ctx->loop, &t.calls, 10) >= 0);
  assert_int_equal (t.last, EV_WRITE);

  /* back to EV_READ only, idle again: nothing, then data */
  test_io_reset (ctx->loop, &t, s [0], EV_READ);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  t.calls = 0;
  idle_wait (ctx->loop);
  assert_int_equal (t.calls, 0);
  test_put (s [1]);
  t.drain = 1;
  assert_true (run_until_more (ctx->loop, &t.calls, 0));
  assert_int_equal (t.last, EV_READ);
  ev_io_stop (ctx->loop, &t.w);
}

static int
peer_sees_eof (int fd)
{
  char c;

  return recv (fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
}

static void
test_tier_stop_close (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t;
  int s [2];

  test_socketpair (ctx, s);
  test_io_start (ctx->loop, &t, s [0], EV_READ);
  idle_wait (ctx->loop);

  ev_io_stop (ctx->loop, &t.w);
  test_close (ctx, s [0]);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  assert_true (peer_sees_eof (s [1]));
}

struct many
{
  struct test_io t [MANY];
  int            p [MANY][2];
};

static void
test_tier_many (void **state)
{
  struct test_ctx *ctx = *state;
  struct many *m = calloc (1, sizeof *m);
  int i, round;

  assert_non_null (m);
  if (!test_fd_room (2 * MANY + 16))
    {
      free (m);
      skip (); /* RLIMIT_NOFILE too small */
    }

  for (i = 0; i < MANY; ++i)
    {
      assert_int_equal (pipe2 (m->p [i], O_NONBLOCK | O_CLOEXEC), 0);
      test_io_start (ctx->loop, &m->t [i], m->p [i][0], EV_READ);
      m->t [i].drain = 1;
    }

  for (round = 1; round <= 2; ++round)
    {
      idle_wait (ctx->loop);

      for (i = 0; i < MANY; ++i)
        test_put (m->p [i][1]);

      test_run_nowait (ctx->loop, 5);
      for (i = 0; i < 20; ++i)
        ev_run (ctx->loop, EVRUN_NOWAIT);

      for (i = 0; i < MANY; ++i)
        {
          if (m->t [i].calls != round)
            print_error ("round %d: pipe %d: %d calls\n", round, i, m->t [i].calls);
          assert_int_equal (m->t [i].calls, round);
        }
    }

  for (i = 0; i < MANY; ++i)
    {
      ev_io_stop (ctx->loop, &m->t [i].w);
      close (m->p [i][0]);
      close (m->p [i][1]);
    }

  free (m);
}

/* the child: ev_loop_fork, then the idle watcher's event arrives */
static void
fork_child (void *arg)
{
  struct test_ctx *ctx = arg;
  struct test_io *r = ctx->data;
  int n;

  ev_loop_fork (ctx->loop);
  r->calls = 0;
  n = test_run_until (ctx->loop, &r->calls, 10);
  TEST_CHILD_CHECK (n >= 0 && r->last == EV_READ);
}

static void
test_tier_fork (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r, q;
  int p [2], p2 [2];

  test_pipe (ctx, p);
  test_pipe (ctx, p2);
  test_io_start (ctx->loop, &r, p [0], EV_READ);
  test_io_start (ctx->loop, &q, p2 [0], EV_READ);
  idle_wait (ctx->loop);

  /* the child reads p, which nobody drains: it sees the byte */
  test_put (p [1]);
  ctx->data = &r;
  test_in_child (fork_child, ctx);

  /* the parent's loop is unharmed: p2 too */
  test_put (p2 [1]);
  q.drain = 1;
  assert_true (test_run_until (ctx->loop, &q.calls, 10) >= 0);
  assert_int_equal (q.last, EV_READ);
  ev_io_stop (ctx->loop, &r.w);
  ev_io_stop (ctx->loop, &q.w);
}

/* is fd an item, with events, of some epoll set of this process (fdinfo's tfd lines)? */
static int
epoll_has (int fd)
{
  char path [64], link [64], line [256];
  int efd, found = 0;

  for (efd = 0; efd < 1024 && !found; ++efd)
    {
      ssize_t len;
      FILE *f;

      snprintf (path, sizeof path, "/proc/self/fd/%d", efd);
      len = readlink (path, link, sizeof link - 1);
      if (len <= 0)
        continue;
      link [len] = 0;
      if (strcmp (link, "anon_inode:[eventpoll]"))
        continue;

      snprintf (path, sizeof path, "/proc/self/fdinfo/%d", efd);
      if (!(f = fopen (path, "r")))
        continue;
      /* "tfd: %8d events: %8x ...": the id set's items (ev_iouring.c, note
         r) ask for no events but the EPOLLERR|EPOLLHUP epoll adds */
      while (fgets (line, sizeof line, f))
        {
          char *ev = strstr (line, "events:");

          if (!strncmp (line, "tfd:", 4) && atoi (line + 4) == fd
              && ev && strtoul (ev + 7, 0, 16) & (EPOLLIN | EPOLLOUT))
            found = 1;
        }
      fclose (f);
    }

  return found;
}

/* a watcher idle long enough to be in the epoll set, then busy: it goes
   back to the ring (where an event needs no epoll_wait), and its events
   arrive as before; idle again, it moves again.  io_uring only: epoll's
   set always holds the fd */
static void
test_tier_busy_back (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r;
  int p [2], i;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &r, p [0], EV_READ);
  r.drain = 1;
  idle_wait (ctx->loop);
  assert_true (epoll_has (p [0]));

  for (i = 1; i <= 5; ++i)
    {
      test_put (p [1]);
      assert_true (run_until_more (ctx->loop, &r.calls, i - 1));
      assert_int_equal (r.calls, i);
      assert_int_equal (r.last, EV_READ);
      assert_false (epoll_has (p [0]));
    }

  idle_wait (ctx->loop);
  assert_true (epoll_has (p [0]));
  test_put (p [1]);
  assert_true (run_until_more (ctx->loop, &r.calls, 5));
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 6);
  ev_io_stop (ctx->loop, &r.w);
}

/* watchers in the epoll set that fire together share the epoll_wait
   that reports them, and stay in the set (moving back would cost two
   epoll_ctl per event for connections idle between requests); their
   events arrive as before.  io_uring only, as above */
#define TOGETHER 8

static void
test_tier_together_stay (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io r [TOGETHER];
  int p [TOGETHER][2], i, round;

  for (i = 0; i < TOGETHER; ++i)
    {
      test_pipe (ctx, p [i]);
      test_io_start (ctx->loop, &r [i], p [i][0], EV_READ);
      r [i].drain = 1;
    }
  idle_wait (ctx->loop);

  for (round = 1; round <= 3; ++round)
    {
      for (i = 0; i < TOGETHER; ++i)
        test_put (p [i][1]);

      for (i = 0; i < TOGETHER; ++i)
        assert_true (run_until_more (ctx->loop, &r [i].calls, round - 1));

      for (i = 0; i < TOGETHER; ++i)
        {
          assert_int_equal (r [i].calls, round);
          assert_true (epoll_has (p [i][0]));
        }
    }

  for (i = 0; i < TOGETHER; ++i)
    ev_io_stop (ctx->loop, &r [i].w);
}

static const struct CMUnitTest tests [] = {
  TEST_ON (test_tier_busy_back, iouring),
  TEST_ON (test_tier_busy_back, noextarg),
  TEST_BOTH (test_tier_fork),
  TEST_ON (test_tier_together_stay, iouring),
  TEST_ON (test_tier_together_stay, noextarg),
  TEST_BOTH (test_tier_many),
  TEST_ON (test_tier_many, noextarg),
  TEST_BOTH (test_tier_modify),
  TEST_BOTH (test_tier_read_level),
  TEST_ON (test_tier_read_level, oldest),
  TEST_BOTH (test_tier_stop_close),
  TEST_BOTH (test_tier_write_full_pipe),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
