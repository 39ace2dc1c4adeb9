/*
 * test_fallback.c: the loop keeps going when the ring is full, when the
 * kernel refuses the ring at runtime and when the timerfd cannot be had
 * (issue 8, items 1, 2, 3 and 8):
 *
 * - stall: with always-ready fds filling the submission queue (1024 on the
 *   default ring, 7 on an 8-entry one, 1024 on the timerfd path) every
 *   EVRUN_ONCE returns at once with callbacks invoked; none waits for the
 *   long timer that is pending;
 * - the timerfd path (< 5.11) with a full submission queue when the kernel
 *   refuses io_uring (EPERM, EINVAL: a seccomp filter installed after
 *   start-up): no crash, and events keep arriving;
 * - the timerfd path when timerfd_create fails (EMFILE at the fd limit): a
 *   50 ms timer fires all the same;
 * - ev_embed: an io_uring loop embedded into an epoll loop keeps delivering
 *   every event through the outer loop after the kernel refused io_uring
 *   (switch to epoll), after a rebuild (EBADR) and after its ring fd was
 *   closed behind its back; ev_backend_fd keeps its number;
 * - the ring fd closed, or replaced by another file, behind libev's back
 *   (daemons that close every fd above 2): a new ring (or epoll), every
 *   watcher kept, the file that took the number left alone;
 * - the kernel refusing io_uring_enter at runtime (EBADR, EBUSY, EAGAIN,
 *   EINTR), and a new ring that cannot be had (after EBADR, or in a child
 *   forked without ev_loop_fork): the loop goes on, on epoll if it must,
 *   with every kind of watcher (io, timer, async, signal) delivering.
 *
 * code in a forked child reports through _exit codes; every wait is bounded.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/*****************************************************************************/
/* helpers */

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*****************************************************************************/
/* always-ready fds: n dups of a pipe's read end with a byte nobody reads */

struct busy
{
  int    n;
  int    p [2];
  int   *fd;
  ev_io *w;
};

static int busy_calls;

static void
busy_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
  ++busy_calls;
}

/* 0, or -1 if any fd could not be had; not cmocka: a child may use it */
static int
busy_start (struct ev_loop *loop, struct busy *b, int n)
{
  int i;

  b->n  = n;
  b->fd = calloc (n, sizeof *b->fd);
  b->w  = calloc (n, sizeof *b->w);
  if (!b->fd || !b->w || pipe2 (b->p, O_NONBLOCK | O_CLOEXEC) || write (b->p [1], "x", 1) != 1)
    return -1;

  for (i = 0; i < n; ++i)
    {
      b->fd [i] = fcntl (b->p [0], F_DUPFD_CLOEXEC, 0);
      if (b->fd [i] < 0)
        return -1;

      ev_io_init (&b->w [i], busy_cb, b->fd [i], EV_READ);
      ev_io_start (loop, &b->w [i]);
    }

  return 0;
}

static void
busy_stop (struct ev_loop *loop, struct busy *b)
{
  int i;

  for (i = 0; i < b->n; ++i)
    {
      ev_io_stop (loop, &b->w [i]);
      close (b->fd [i]);
    }

  close (b->p [0]);
  close (b->p [1]);
  free (b->fd);
  free (b->w);
}

/*****************************************************************************/
/* item 1: a stall with events pending */

/* the long timer: nothing may wait for it.  libev's user would have 60 s
   here; STALL_TIMER keeps a failing test short */
#define STALL_TIMER 3.

static int stall_timer_fired;

static void
stall_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
  stall_timer_fired = 1;
}

/* n busy fds and one idle one (a pipe nobody writes to) on a loop of the
   fixture's mode, its ring at most setup_max sqes (0: the default).
   the run is long enough for any per-fd upkeep of a backend that visits
   a few fds per iteration to come round every fd twice */
static void
stall (struct test_ctx *ctx, int n, unsigned int setup_max)
{
  struct ev_loop *loop = ctx->loop;
  struct test_io idle;
  struct busy b;
  ev_timer tm;
  double t0;
  int q [2], i, runs, before;

  if (setup_max)
    {
      ev_iouring_test_setup_max = setup_max;
      loop = test_loop_new (ctx->mode);
      assert_non_null (loop);
      assert_int_equal (ev_backend (loop), ctx->mode->backend);
      if (TEST_IS_IOURING (ctx))
        assert_true (ev_iouring_test_sq_entries <= setup_max);
    }

  assert_int_equal (busy_start (loop, &b, n), 0);
  test_pipe (ctx, q);
  test_io_start (loop, &idle, q [0], EV_READ);

  /* fds are numbered densely from 0, q [1] is the highest; libev's fd
     table is larger (half as large again is plenty) */
  runs = ((q [1] + 1) * 3 / 2 / 8 + 2) * 16 * 2 + 64;

  stall_timer_fired = 0;
  ev_timer_init (&tm, stall_timer_cb, STALL_TIMER, STALL_TIMER);
  ev_timer_start (loop, &tm);

  busy_calls = 0;
  t0 = now ();

  for (i = 0; i < runs; ++i)
    {
      before = busy_calls;
      ev_run (loop, EVRUN_ONCE);

      if (stall_timer_fired || busy_calls == before)
        break;

      /* restart the timer now and then: it must never be due */
      if (!(i & 63))
        ev_timer_again (loop, &tm);
    }

  print_message ("%d busy fds, 1 idle: %d iterations in %.3f s, %d callbacks\n",
                 n, i, now () - t0, busy_calls);

  ev_io_stop (loop, &idle.w);
  ev_timer_stop (loop, &tm);
  busy_stop (loop, &b);

  if (setup_max)
    ev_loop_destroy (loop);

  if (stall_timer_fired)
    fail_msg ("%d busy fds: iteration %d waited for the %.0f s timer with events pending",
              n, i, STALL_TIMER);
  if (i < runs)
    fail_msg ("%d busy fds: iteration %d invoked no callback", n, i);
  assert_int_equal (idle.calls, 0);
}

static void
test_fallback_stall_1023 (void **state)
{
  if (test_nofile_raise (1100) < 1100)
    skip (); /* RLIMIT_NOFILE's hard limit is below 1100 */

  stall (*state, 1023, 0);
}

static void
test_fallback_stall_1024 (void **state)
{
  if (test_nofile_raise (1100) < 1100)
    skip (); /* RLIMIT_NOFILE's hard limit is below 1100 */

  stall (*state, 1024, 0);
}

static void
test_fallback_stall_small_ring (void **state)
{
  stall (*state, 7, 8);
}

/*****************************************************************************/
/* item 2: on the timerfd path, the sqe for the timerfd's poll finds the
   submission queue full, and the kernel refuses io_uring from then on */

struct refusal
{
  const struct test_mode *mode;
  int                     err;
};

static void
tfd_refused_child (void *arg)
{
  const struct refusal *r = arg;
  struct ev_loop *loop;
  struct test_io t;
  struct busy b;
  ev_timer tm;
  int q [2], i, before;

  /* an 8-entry ring, and 8 fds to arm in the first iteration */
  ev_iouring_test_setup_max = 8;
  loop = test_loop_new (r->mode);
  TEST_CHILD_CHECK (loop && ev_backend (loop) == r->mode->backend);
  TEST_CHILD_CHECK (!busy_start (loop, &b, 8));

  ev_timer_init (&tm, stall_timer_cb, 60., 0.);
  ev_timer_start (loop, &tm);

  /* a seccomp filter installed after start-up */
  ev_iouring_test_enter_errno = r->err;

  for (i = 0; i < 10; ++i)
    {
      before = busy_calls;
      ev_run (loop, EVRUN_ONCE);
      TEST_CHILD_CHECK (busy_calls > before);
    }

  if (r->mode->backend == EVBACKEND_IOURING)
    TEST_CHILD_CHECK (!ev_iouring_test_enter_errno); /* the refusal happened */

  /* and a new fd works too */
  TEST_CHILD_CHECK (!pipe2 (q, O_NONBLOCK | O_CLOEXEC));
  test_io_init (&t, q [0], EV_READ);
  t.drain = 1;
  ev_io_start (loop, &t.w);
  ev_run (loop, EVRUN_NOWAIT);
  TEST_CHILD_CHECK (write (q [1], "x", 1) == 1);
  for (i = 0; i < 10 && !t.calls; ++i)
    ev_run (loop, EVRUN_ONCE);
  TEST_CHILD_CHECK (t.calls == 1 && t.last == EV_READ);
}

static void
tfd_refused (struct test_ctx *ctx, int err)
{
  struct refusal r;

  r.mode = ctx->mode;
  r.err  = err;
  test_in_child (tfd_refused_child, &r); /* full sq, then io_uring refused */
}

static void
test_fallback_tfd_refused_eperm (void **state)
{
  tfd_refused (*state, EPERM);
}

static void
test_fallback_tfd_refused_einval (void **state)
{
  tfd_refused (*state, EINVAL);
}

/*****************************************************************************/
/* item 3: on the timerfd path, no timerfd to be had (EMFILE) */

static int emfile_timer_fired;

static void
emfile_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
  emfile_timer_fired = 1;
}

static void
tfd_emfile_child (void *arg)
{
  const struct test_mode *mode = arg;
  struct ev_loop *loop;
  struct rlimit r;
  ev_timer tm;
  int fd, n = 0;
  double t0;

  loop = test_loop_new (mode);
  TEST_CHILD_CHECK (loop && ev_backend (loop) == mode->backend);

  ev_timer_init (&tm, emfile_timer_cb, 0.05, 0.);
  ev_timer_start (loop, &tm);

  /* the fd table full, before the loop ever waited */
  fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  TEST_CHILD_CHECK (fd >= 0);
  TEST_CHILD_CHECK (!getrlimit (RLIMIT_NOFILE, &r));
  r.rlim_cur = 256;
  TEST_CHILD_CHECK (!setrlimit (RLIMIT_NOFILE, &r));
  while (fcntl (fd, F_DUPFD_CLOEXEC, 0) >= 0)
    ++n;
  TEST_CHILD_CHECK (errno == EMFILE);

  t0 = now ();
  ev_run (loop, 0);
  TEST_CHILD_CHECK (emfile_timer_fired);
  fprintf (stderr, "child: the 50 ms timer fired after %.3f s, the fd table full\n", now () - t0);
  (void)n;
}

static void
test_fallback_tfd_emfile (void **state)
{
  struct test_ctx *ctx = *state;

  test_in_child (tfd_emfile_child, (void *)ctx->mode); /* a 50 ms timer with the fd table full */
}

/*****************************************************************************/
/* item 8: ev_embed through a runtime switch or rebuild of the inner loop */

enum { REFUSE_EPERM, REFUSE_EBADR, REFUSE_CLOSE };

/* what /proc says fd is */
static const char *
fd_kind (int fd)
{
  static char link [64];
  char path [64];
  ssize_t n;

  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  n = readlink (path, link, sizeof link - 1);
  if (n < 0)
    return "closed";

  link [n] = 0;
  return link;
}

/* what /proc says a backend fd of loop's backend is */
static const char *
backend_kind (struct ev_loop *loop)
{
  return ev_backend (loop) == EVBACKEND_IOURING ? "anon_inode:[io_uring]" : "anon_inode:[eventpoll]";
}

#define EMBED_EVENTS 3
#define EMBED_WAIT   2.

static void
embed_refused (struct test_ctx *ctx, int how)
{
  static const char *const name [] = { "EPERM", "EBADR", "ring fd closed" };
  struct ev_loop *outer, *inner = ctx->loop;
  struct test_io r;
  ev_embed e;
  ev_timer guard;
  int p [2], fd0, k, delivered = 0, hook_left;
  const char *kind;

  outer = ev_loop_new (EVBACKEND_EPOLL | EVFLAG_NOENV);
  assert_non_null (outer);

  test_pipe (ctx, p);
  test_io_start (inner, &r, p [0], EV_READ);
  r.drain = 1;
  ev_embed_init (&e, 0, inner);
  ev_embed_start (outer, &e);
  test_run_nowait (outer, 2);
  fd0 = e.io.fd; /* the inner loop's backend fd, as ev_embed saw it */
  assert_string_equal (fd_kind (fd0), backend_kind (inner));

  /* one event before the trouble, through the outer loop only */
  test_put (p [1]);
  test_guard_start (outer, &guard, EMBED_WAIT);
  while (!r.calls && !test_guard_fired)
    ev_run (outer, EVRUN_ONCE);
  test_guard_stop (outer, &guard);
  assert_int_equal (r.calls, 1);

  switch (how)
    {
      case REFUSE_EPERM: ev_iouring_test_enter_errno = EPERM; break;
      case REFUSE_EBADR: ev_iouring_test_enter_errno = EBADR; break;
      default:           assert_int_equal (close (fd0), 0); break;
    }

  /* events one by one, each waited for through the outer loop */
  for (k = 1; k <= EMBED_EVENTS; ++k)
    {
      test_put (p [1]);
      test_guard_start (outer, &guard, EMBED_WAIT);
      while (r.calls < 1 + k && !test_guard_fired)
        ev_run (outer, EVRUN_ONCE);
      test_guard_stop (outer, &guard);

      if (r.calls < 1 + k)
        break;
      ++delivered;
    }

  /* diagnosis: does the inner loop have the event itself? */
  if (delivered < EMBED_EVENTS)
    {
      int before = r.calls;

      test_run_nowait (inner, 3);
      print_message ("%s: run directly, the inner loop %s\n", name [how],
                     r.calls > before ? "delivers it: only the embedding loop was not woken"
                                      : "does not deliver it either");
    }

  hook_left = ev_iouring_test_enter_errno;
  ev_iouring_test_enter_errno = 0;
  kind = fd_kind (fd0);

  ev_embed_stop (outer, &e);
  ev_io_stop (inner, &r.w);
  ev_loop_destroy (outer);

  print_message ("%s: %d of %d events arrived, inner backend 0x%x, fd %d is now %s\n",
                 name [how], delivered, EMBED_EVENTS, ev_backend (inner), fd0, kind);

  if (delivered < EMBED_EVENTS)
    fail_msg ("%s: event %d of %d never arrived through the embedding loop (%.0f s)",
              name [how], delivered + 1, EMBED_EVENTS, EMBED_WAIT);

  if (TEST_IS_IOURING (ctx) && how != REFUSE_CLOSE)
    assert_int_equal (hook_left, 0); /* the refusal happened */

  /* the number ev_embed watches is the inner loop's backend still */
  assert_string_equal (kind, backend_kind (inner));
}

static void
test_fallback_embed_eperm (void **state)
{
  embed_refused (*state, REFUSE_EPERM);
}

static void
test_fallback_embed_ebadr (void **state)
{
  embed_refused (*state, REFUSE_EBADR);
}

static void
test_fallback_embed_ring_closed (void **state)
{
  embed_refused (*state, REFUSE_CLOSE);
}

/*****************************************************************************/

/*****************************************************************************/
/* a new ring or epoll while an fd is closed without ev_io_stop: the fd is
   forgotten, as epoll forgets it; nothing aborts (libev's epoll backend
   asserts on EBADF), the dead watcher gets no EV_ERROR, the rest works */

struct closed
{
  int err;
};

static void
closed_child (void *arg)
{
  const struct closed *c = arg;
  struct ev_loop *loop;
  struct test_io dead, live, wr;
  int p [2], q [2], i;

  loop = test_loop_new (&test_mode_iouring);
  TEST_CHILD_CHECK (loop && ev_backend (loop) == EVBACKEND_IOURING);
  TEST_CHILD_CHECK (!pipe2 (p, O_NONBLOCK | O_CLOEXEC) && !pipe2 (q, O_NONBLOCK | O_CLOEXEC));

  test_io_start (loop, &dead, p [0], EV_READ);
  test_io_start (loop, &live, q [0], EV_READ);
  live.drain = 1;
  ev_run (loop, EVRUN_NOWAIT);

  /* the write end stays open: its close would wake the poll that still
     holds the read end, one last event of the closed file (README) */
  close (p [0]);
  ev_iouring_test_enter_errno = c->err;

  /* a watcher to arm, so the next iteration enters the kernel */
  test_io_start (loop, &wr, q [1], EV_WRITE);
  wr.stop = 1;
  test_put (q [1]);

  for (i = 0; i < 10 && !live.calls; ++i)
    ev_run (loop, EVRUN_ONCE);

  TEST_CHILD_CHECK (live.calls == 1 && live.last == EV_READ);
  TEST_CHILD_CHECK (!dead.calls);
  TEST_CHILD_CHECK (!ev_iouring_test_enter_errno); /* the refusal happened */
  TEST_CHILD_CHECK (ev_backend (loop) == (c->err == EPERM ? EVBACKEND_EPOLL : EVBACKEND_IOURING));

  test_put (q [1]);
  test_run_nowait (loop, 3);
  TEST_CHILD_CHECK (live.calls == 2 && !dead.calls);
  ev_io_stop (loop, &live.w);
  ev_io_stop (loop, &dead.w);
  ev_loop_destroy (loop);
  close (p [1]);
}

static void
test_fallback_closed_switch (void **state)
{
  struct closed c = { EPERM };

  (void)state;
  test_in_child (closed_child, &c);
}

static void
test_fallback_closed_rebuild (void **state)
{
  struct closed c = { EBADR };

  (void)state;
  test_in_child (closed_child, &c);
}

/*****************************************************************************/
/* the backend's own fd closed or replaced behind libev's back, as daemons
   that close every fd above 2 do: the loop gets a new ring (or epoll),
   keeps its watchers, and never closes the file that took the number.
   (libev's epoll backend aborts with "(libev) epoll_wait: Bad file
   descriptor" here: this is one place where we do better) */

/* the loop's backend fd, found by what /proc says it is (libev keeps it private) */
static int
backend_fd_of (const struct test_ctx *ctx)
{
  const char *want = ev_backend (ctx->loop) == EVBACKEND_IOURING ? "anon_inode:[io_uring]" : "anon_inode:[eventpoll]";
  char path [64], link [64];
  int fd, found = -1;

  for (fd = 3; fd < 1024; ++fd)
    {
      ssize_t n;

      snprintf (path, sizeof (path), "/proc/self/fd/%d", fd);
      n = readlink (path, link, sizeof (link) - 1);
      if (n > 0)
        {
          link [n] = 0;
          if (!strcmp (link, want))
            {
              assert_int_equal (found, -1); /* exactly one */
              found = fd;
            }
        }
    }

  assert_true (found >= 0);
  return found;
}

static void
ring_fd_lost (struct test_ctx *ctx, int replace)
{
  struct test_io t;
  int p [2], q [2], ring = backend_fd_of (ctx), delivered;

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &t, p [0], EV_READ);
  t.drain = 1;
  test_run_nowait (ctx->loop, 2);

  if (replace)
    {
      /* another file under the ring's number: a pipe of the test's own */
      test_pipe (ctx, q);
      assert_int_equal (dup2 (q [0], ring), ring);
    }
  else
    assert_int_equal (close (ring), 0);

  test_put (p [1]);
  delivered = test_run_until (ctx->loop, &t.calls, 10);
  assert_true (delivered >= 1);
  assert_int_equal (t.last, EV_READ);

  /* the loop still works */
  test_put (p [1]);
  assert_true (test_run_until (ctx->loop, &t.calls, 10) >= 0);
  test_run_nowait (ctx->loop, 2);
  assert_int_equal (t.calls >= 2, 1);

  if (replace)
    {
      /* the file we put there is ours still: a write into q reaches it */
      assert_true (fcntl (ring, F_GETFD) >= 0);
      test_put (q [1]);
      test_get (ring);
      close (ring);
    }

  ev_io_stop (ctx->loop, &t.w);
}

static void
test_fallback_ring_fd_closed (void **state)
{
  ring_fd_lost (*state, 0);
}

static void
test_fallback_ring_fd_replaced (void **state)
{
  ring_fd_lost (*state, 1);
}

/*****************************************************************************/
/* the kernel refusing at runtime, and a ring that cannot be rebuilt */

/* one of every kind of watcher that reaches the backend */
struct zoo
{
  struct test_io rd;    /* pipe, read */
  struct test_io wr;    /* socketpair, write */
  ev_timer       tm;
  ev_async       as;
  ev_signal      sig;
  int            tm_calls, as_calls, sig_calls;
  int            p [2], s [2];
};

static void
zoo_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct zoo *z = (struct zoo *)((char *)w - offsetof (struct zoo, tm));

  (void)loop;
  (void)revents;
  ++z->tm_calls;
}

static void
zoo_async_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  struct zoo *z = (struct zoo *)((char *)w - offsetof (struct zoo, as));

  (void)loop;
  (void)revents;
  ++z->as_calls;
}

static void
zoo_signal_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct zoo *z = (struct zoo *)((char *)w - offsetof (struct zoo, sig));

  (void)loop;
  (void)revents;
  ++z->sig_calls;
}

/* fds are closed by the caller; non-cmocka, so a child can use it */
static int
zoo_start (struct ev_loop *loop, struct zoo *z)
{
  memset (z, 0, sizeof *z);

  if (pipe2 (z->p, O_NONBLOCK | O_CLOEXEC)
      || socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, z->s))
    return 0;

  test_io_init (&z->rd, z->p [0], EV_READ);
  z->rd.drain = 1;
  test_io_init (&z->wr, z->s [0], EV_WRITE);
  z->wr.stop = 1; /* always writable: else EVRUN_ONCE never waits */
  ev_timer_init (&z->tm, zoo_timer_cb, 0.001, 0.001);
  ev_async_init (&z->as, zoo_async_cb);
  ev_signal_init (&z->sig, zoo_signal_cb, SIGUSR1);

  ev_io_start (loop, &z->rd.w);
  ev_io_start (loop, &z->wr.w);
  ev_timer_start (loop, &z->tm);
  ev_async_start (loop, &z->as);
  ev_signal_start (loop, &z->sig);
  ev_run (loop, EVRUN_NOWAIT);
  return 1;
}

#define ZOO_RUNS 100

/* every watcher delivers again within ZOO_RUNS iterations; 0 names
   nothing, else the one that did not */
static const char *
zoo_check (struct ev_loop *loop, struct zoo *z)
{
  int i;

  z->rd.calls = z->wr.calls = z->tm_calls = z->as_calls = z->sig_calls = 0;

  if (write (z->p [1], "x", 1) != 1)
    return "write";
  ev_io_start (loop, &z->wr.w);
  ev_async_send (loop, &z->as);
  kill (getpid (), SIGUSR1);

  for (i = 0; i < ZOO_RUNS; ++i)
    {
      ev_run (loop, EVRUN_ONCE);

      if (z->rd.calls && z->wr.calls && z->tm_calls && z->as_calls && z->sig_calls)
        break;
    }

  if (!z->rd.calls)  return "pipe read";
  if (!z->wr.calls)  return "socket write";
  if (!z->tm_calls)  return "timer";
  if (!z->as_calls)  return "async";
  if (!z->sig_calls) return "signal";

  /* the pipe was drained: it stays quiet */
  z->rd.calls = 0;
  for (i = 0; i < 3; ++i)
    ev_run (loop, EVRUN_NOWAIT);
  if (z->rd.calls)
    return "drained pipe still reported";

  return 0;
}

static void
zoo_stop (struct ev_loop *loop, struct zoo *z)
{
  ev_io_stop (loop, &z->rd.w);
  ev_io_stop (loop, &z->wr.w);
  ev_timer_stop (loop, &z->tm);
  ev_async_stop (loop, &z->as);
  ev_signal_stop (loop, &z->sig);
  close (z->p [0]);
  close (z->p [1]);
  close (z->s [0]);
  close (z->s [1]);
}

static void
zoo_assert (struct ev_loop *loop, struct zoo *z)
{
  const char *broken = zoo_check (loop, z);

  if (broken)
    fail_msg ("backend 0x%x: %s watcher silent", ev_backend (loop), broken);
}

static void
refusal_run (struct test_ctx *ctx, int err)
{
  struct zoo z;
  unsigned long rings;

  assert_true (zoo_start (ctx->loop, &z));
  zoo_assert (ctx->loop, &z);

  /* counted from here: a ring grown for the zoo is a new ring too */
  rings = ev_iouring_test_rings;
  ev_iouring_test_enter_errno = err;
  zoo_assert (ctx->loop, &z);
  /* the hook fired: the refusal really happened */
  assert_int_equal (ev_iouring_test_enter_errno, 0);

  /* EBADR (5.19): cqes were lost, a new ring is the documented cure;
     the others are transient and keep the ring */
  if (err == EBADR)
    assert_true (ev_iouring_test_rings > rings);
  else
    assert_int_equal (ev_iouring_test_rings, rings);

  assert_int_equal (ev_backend (ctx->loop), EVBACKEND_IOURING);
  zoo_assert (ctx->loop, &z);
  zoo_stop (ctx->loop, &z);
}

static void test_fallback_enter_ebadr (void **state)  { refusal_run (*state, EBADR); }
static void test_fallback_enter_ebusy (void **state)  { refusal_run (*state, EBUSY); }
static void test_fallback_enter_eagain (void **state) { refusal_run (*state, EAGAIN); }
static void test_fallback_enter_eintr (void **state)  { refusal_run (*state, EINTR); }

/* EBADR forces a new ring, and the new ring cannot be had: epoll */
static void
test_fallback_rebuild_fails (void **state)
{
  struct test_ctx *ctx = *state;
  struct zoo z;

  assert_true (zoo_start (ctx->loop, &z));
  zoo_assert (ctx->loop, &z);

  ev_iouring_test_setup_errno = ENOMEM;
  ev_iouring_test_enter_errno = EBADR;
  zoo_assert (ctx->loop, &z);
  assert_int_equal (ev_iouring_test_enter_errno, 0);
  assert_int_equal (ev_backend (ctx->loop), EVBACKEND_EPOLL);

  /* and it stays on epoll, delivering, with io_uring available again */
  ev_iouring_test_setup_errno = 0;
  zoo_assert (ctx->loop, &z);
  assert_int_equal (ev_backend (ctx->loop), EVBACKEND_EPOLL);
  zoo_stop (ctx->loop, &z);
}

/* a fork without ev_loop_fork needs a new ring in the child: none to be had */
static void
rebuild_fork_child (void *arg)
{
  struct ev_loop *loop = arg;
  struct zoo z;
  const char *broken;

  ev_iouring_test_setup_errno = ENOMEM;

  TEST_CHILD_CHECK (zoo_start (loop, &z));
  broken = zoo_check (loop, &z);
  if (broken)
    fprintf (stderr, "child: %s watcher silent\n", broken);
  TEST_CHILD_CHECK (!broken);
  TEST_CHILD_CHECK (ev_backend (loop) == EVBACKEND_EPOLL);
  zoo_stop (loop, &z);
}

static void
test_fallback_rebuild_fails_fork (void **state)
{
  struct test_ctx *ctx = *state;
  struct zoo z;

  assert_true (zoo_start (ctx->loop, &z));
  zoo_assert (ctx->loop, &z);
  zoo_stop (ctx->loop, &z);

  test_in_child (rebuild_fork_child, ctx->loop);

  /* the parent's ring is untouched */
  assert_int_equal (ev_backend (ctx->loop), EVBACKEND_IOURING);
  assert_true (test_loop_works (ctx->loop));
}

static const struct CMUnitTest tests [] = {
  TEST_ON (test_fallback_closed_rebuild, iouring),
  TEST_ON (test_fallback_closed_switch, iouring),
  TEST_BOTH (test_fallback_embed_ebadr),
  TEST_ON (test_fallback_embed_ebadr, noextarg),
  TEST_BOTH (test_fallback_embed_eperm),
  TEST_ON (test_fallback_embed_eperm, noextarg),
  /* io_uring only: libev's epoll backend calls ev_syserr (abort) here */
  TEST_ON (test_fallback_embed_ring_closed, iouring),
  TEST_ON (test_fallback_embed_ring_closed, noextarg),
  TEST_ON (test_fallback_enter_eagain, iouring),
  TEST_ON (test_fallback_enter_ebadr, iouring),
  TEST_ON (test_fallback_enter_ebadr, noextarg),
  TEST_ON (test_fallback_enter_ebusy, iouring),
  TEST_ON (test_fallback_enter_eintr, iouring),
  TEST_ON (test_fallback_rebuild_fails, iouring),
  TEST_ON (test_fallback_rebuild_fails, noextarg),
  TEST_ON (test_fallback_rebuild_fails_fork, iouring),
  /* io_uring only: libev's epoll backend calls ev_syserr (abort) here */
  TEST_ON (test_fallback_ring_fd_closed, iouring), TEST_PATHS (test_fallback_ring_fd_closed),
  TEST_ON (test_fallback_ring_fd_replaced, iouring), TEST_PATHS (test_fallback_ring_fd_replaced),
  TEST_BOTH (test_fallback_stall_1023),
  TEST_BOTH (test_fallback_stall_1024),
  TEST_ON (test_fallback_stall_1024, noextarg),
  TEST_BOTH (test_fallback_stall_small_ring),
  TEST_ON (test_fallback_stall_small_ring, noextarg),
  TEST_ON (test_fallback_tfd_emfile, noextarg),
  TEST_ON (test_fallback_tfd_emfile, epoll),
  TEST_ON (test_fallback_tfd_refused_einval, noextarg),
  TEST_ON (test_fallback_tfd_refused_einval, epoll),
  TEST_ON (test_fallback_tfd_refused_eperm, noextarg),
  TEST_ON (test_fallback_tfd_refused_eperm, epoll),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
