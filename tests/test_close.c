/*
 * test_close.c: a closed socket is closed.  what a program written against
 * libev's epoll backend sees when it closes fds (issue 8, items 4 to 7):
 *
 * - an EV_WRITE watcher on a full socket whose peer shut down its write
 *   side, stopped and closed while a dup (or a forked child) still holds
 *   the socket: the loop does not spin (a blocking run of 0.3 s with one
 *   timer takes a handful of iterations, not thousands);
 * - ev_io_stop, close, ev_break (and then ev_loop_destroy): the peer sees
 *   EOF without the loop running again;
 * - ev_loop_destroy with a watcher still active, while a child forked at
 *   start-up (which never uses libev) holds the loop's fds: the peer sees
 *   EOF after the close;
 * - close without ev_io_stop: the peer sees EOF within a bound in time
 *   that depends neither on the fd number (a low one, 1000, 19000) nor on how
 *   many other fds are armed (10000), on a busy loop and on an idle one,
 *   and on a loop run only with EVRUN_NOWAIT while another watcher keeps
 *   delivering;
 * - close in the watcher's own callback without ev_io_stop: epoll never
 *   calls that watcher again, not even when the fd number is reused by a
 *   new pipe with data in it;
 * - the class: an fd closed without ev_io_stop whose number is reused by a
 *   file no watcher was started for is not armed for it, whichever way the
 *   backend arms it again (after an event, from the epoll set of idle
 *   fds, by the move there, by a bigger or a new ring, on the switch to
 *   epoll), and a watcher started for
 *   the new file gets its events, round after round (ev_iouring.c, note r).
 *
 * every wait is bounded: EOF_BOUND seconds for an EOF that should take
 * none (the figure required is 1 s; it is printed), guard timers on every
 * blocking run.  code in a forked child reports through _exit codes.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* the peer must see EOF within EOF_REQUIRED seconds; tests fail only
   after EOF_BOUND, to allow slow machines */
#define EOF_REQUIRED 1.
#define EOF_BOUND    3.

/*****************************************************************************/
/* helpers */

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* cpu seconds of this thread */
static double
cpu_now (void)
{
  struct rusage ru;

  getrusage (RUSAGE_THREAD, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
       + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* has the peer end of a socketpair seen EOF (no data is ever sent to it)? */
static int
peer_sees_eof (int fd)
{
  char c;

  return recv (fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
}

/* wait up to bound seconds, without running any loop, for the peer to
   see EOF: the seconds it took, or -1 */
static double
peer_eof_wait (int fd, double bound)
{
  double t0 = now ();

  for (;;)
    {
      struct pollfd p;
      double left;

      if (peer_sees_eof (fd))
        return now () - t0;

      left = bound - (now () - t0);
      if (left <= 0.)
        return -1.;

      p.fd      = fd;
      p.events  = POLLIN | POLLRDHUP;
      p.revents = 0;
      poll (&p, 1, (int)(left * 1000.) + 1);
    }
}

/* say how long the EOF took, and fail beyond EOF_BOUND */
static void
eof_check (const char *what, double took)
{
  if (took < 0.)
    fail_msg ("%s: the peer saw no EOF within %.0f s (required: %.0f s)",
              what, EOF_BOUND, EOF_REQUIRED);

  print_message ("%s: the peer saw EOF after %.3f s (required: %.0f s)\n",
                 what, took, EOF_REQUIRED);
  if (took > EOF_REQUIRED)
    print_error ("%s: slower than the required %.0f s\n", what, EOF_REQUIRED);
}

/* a raw non-blocking socketpair, not tracked by the fixture */
static void
raw_socketpair (int s [2])
{
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
}

static void
nothing_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)loop;
  (void)w;
  (void)revents;
}

/* a child that holds what it inherited (but the ndrop fds of drop) and
   waits until ctl is closed */
static pid_t
holder_fork (int ctl [2], const int *drop, int ndrop)
{
  pid_t pid;
  int i;

  assert_int_equal (pipe2 (ctl, O_CLOEXEC), 0);
  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  assert_true (pid >= 0);

  if (!pid)
    {
      char c;

      alarm (TEST_WATCHDOG);
      close (ctl [1]);
      for (i = 0; i < ndrop; ++i)
        close (drop [i]);
      while (read (ctl [0], &c, 1) < 0 && errno == EINTR)
        ;
      _exit (0);
    }

  close (ctl [0]);
  return pid;
}

static void
holder_end (pid_t pid, int ctl [2])
{
  close (ctl [1]);
  test_child_ok (pid);
}

/*****************************************************************************/
/* item 4: an EV_WRITE watcher whose poll saw only the peer's shutdown,
   stopped and closed while another holder keeps the socket open: no spin */

/* iterations of a blocking ev_run lasting SPIN_SECONDS with one timer;
   epoll takes 1 or 2, a spinning loop thousands */
#define SPIN_SECONDS    0.3
#define SPIN_MAX_ITERS  20

static void
fill_socket (int fd)
{
  static char buf [65536];

  while (write (fd, buf, sizeof buf) > 0)
    ;
  while (write (fd, buf, 1) > 0)
    ;
  assert_int_equal (errno, EAGAIN);
}

static void
write_hup_spin (struct test_ctx *ctx, int by_child)
{
  struct test_io w;
  ev_timer tm, guard;
  unsigned int it0, iters;
  double t0, c0, wall, cpu;
  int s [2], held = -1, ctl [2];
  pid_t pid = -1;

  raw_socketpair (s);
  fill_socket (s [0]);

  test_io_start (ctx->loop, &w, s [0], EV_WRITE);
  test_run_nowait (ctx->loop, 2);
  assert_int_equal (w.calls, 0);

  /* the poll for POLLOUT completes with POLLIN|POLLRDHUP only */
  assert_int_equal (shutdown (s [1], SHUT_WR), 0);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (w.calls, 0);

  if (by_child)
    pid = holder_fork (ctl, &s [1], 1); /* the peer is ours alone */
  else
    {
      held = dup (s [0]);
      assert_true (held >= 0);
    }

  ev_io_stop (ctx->loop, &w.w);
  assert_int_equal (close (s [0]), 0);
  test_run_nowait (ctx->loop, 2);

  /* the peer goes away: the socket, still open elsewhere, is now ready
     for everything, and nobody watches it */
  assert_int_equal (close (s [1]), 0);

  ev_timer_init (&tm, nothing_cb, SPIN_SECONDS, 0.);
  ev_timer_start (ctx->loop, &tm);
  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);

  it0 = ev_iteration (ctx->loop);
  t0  = now ();
  c0  = cpu_now ();
  ev_run (ctx->loop, 0);
  cpu   = cpu_now () - c0;
  wall  = now () - t0;
  iters = ev_iteration (ctx->loop) - it0;

  test_guard_stop (ctx->loop, &guard);
  ev_timer_stop (ctx->loop, &tm);

  if (by_child)
    holder_end (pid, ctl);
  else
    close (held);

  print_message ("%.2f s blocking run: %u iterations, %.3f s cpu\n", wall, iters, cpu);
  assert_false (test_guard_fired);
  if (iters > SPIN_MAX_ITERS)
    fail_msg ("the loop spins: %u iterations in %.2f s (%.3f s cpu) with nothing to do",
              iters, wall, cpu);
}

static void
test_close_write_hup_dup (void **state)
{
  write_hup_spin (*state, 0);
}

static void
test_close_write_hup_child (void **state)
{
  write_hup_spin (*state, 1);
}

/*****************************************************************************/
/* item 5a: ev_io_stop, close, ev_break from a callback: the peer sees EOF
   without the loop running again (and also after ev_loop_destroy) */

struct stop_break
{
  ev_timer        tm;
  struct test_io *w;
  int             fd;
};

static void
stop_break_cb (struct ev_loop *loop, ev_timer *t, int revents)
{
  struct stop_break *sb = (struct stop_break *)t;

  (void)revents;
  ev_io_stop (loop, &sb->w->w);
  close (sb->fd);
  ev_break (loop, EVBREAK_ALL);
}

static void
stop_close_break (struct test_ctx *ctx, int destroy)
{
  struct stop_break sb;
  struct test_io w;
  ev_timer guard;
  int s [2];

  raw_socketpair (s); /* s [0]: the callback closes it */
  test_fd_track (ctx, s [1]);

  test_io_start (ctx->loop, &w, s [0], EV_READ);
  test_run_nowait (ctx->loop, 2);

  sb.w  = &w;
  sb.fd = s [0];
  ev_timer_init (&sb.tm, stop_break_cb, 0.01, 0.);
  ev_timer_start (ctx->loop, &sb.tm);

  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);
  ev_run (ctx->loop, 0);
  test_guard_stop (ctx->loop, &guard);
  assert_false (test_guard_fired);
  assert_int_equal (w.calls, 0);

  if (destroy)
    {
      ev_loop_destroy (ctx->loop);
      ctx->loop = 0;
    }

  eof_check (destroy ? "stop, close, break, destroy" : "stop, close, break",
             peer_eof_wait (s [1], EOF_BOUND));
}

static void
test_close_stop_break (void **state)
{
  stop_close_break (*state, 0);
}

static void
test_close_stop_break_destroy (void **state)
{
  stop_close_break (*state, 1);
}

/*****************************************************************************/
/* item 5b: a child forked before the sockets existed, which never uses
   libev, holds the loop's fds; ev_loop_destroy with the watchers active,
   then close: every peer sees EOF while the child still lives. many
   sockets: the removals then reuse sq slots that held polls */

#define MANY_SOCKETS 100

static void
destroy_child_holds (struct test_ctx *ctx, int n)
{
  struct test_io w [MANY_SOCKETS];
  int s [MANY_SOCKETS][2], ctl [2], i, open = 0;
  pid_t pid;
  double t0, took;

  pid = holder_fork (ctl, 0, 0);

  for (i = 0; i < n; ++i)
    {
      raw_socketpair (s [i]);
      test_io_start (ctx->loop, &w [i], s [i][0], EV_READ);
    }
  test_run_nowait (ctx->loop, 2);

  ev_loop_destroy (ctx->loop);
  ctx->loop = 0;

  for (i = 0; i < n; ++i)
    close (s [i][0]);

  /* one bound for all of them */
  t0 = now ();
  for (i = 0; i < n; ++i)
    {
      double left = EOF_BOUND - (now () - t0);

      if (left > 0. ? peer_eof_wait (s [i][1], left) < 0. : !peer_sees_eof (s [i][1]))
        ++open;
    }
  took = now () - t0;

  assert_int_equal (waitpid (pid, 0, WNOHANG), 0); /* still there */
  holder_end (pid, ctl);
  for (i = 0; i < n; ++i)
    close (s [i][1]);

  if (open)
    fail_msg ("%d of %d peers saw no EOF", open, n);
  eof_check ("destroy, close, child holding the loop's fds", took);
}

static void
test_close_destroy_child_holds (void **state)
{
  destroy_child_holds (*state, 1);
}

static void
test_close_destroy_child_holds_many (void **state)
{
  destroy_child_holds (*state, MANY_SOCKETS);
}

/* a child forked while the ring is small holds it; the loop then grows
   (a new ring, the old one removed from and unmapped); every watcher is
   stopped and its fd closed: every peer sees EOF while the loop runs, and
   a destroyed loop leaves no ring mapped */
static void
test_close_grown_child_holds (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io w [MANY_SOCKETS];
  int s [MANY_SOCKETS][2], ctl [2], i, open = 0;
  pid_t pid;
  double t0, took = 0.;

  for (i = 0; i < MANY_SOCKETS; ++i)
    raw_socketpair (s [i]);

  for (i = 0; i < 4; ++i)
    test_io_start (ctx->loop, &w [i], s [i][0], EV_READ);
  test_run_nowait (ctx->loop, 2);

  /* the child holds the small ring, and none of the sockets */
  pid = holder_fork (ctl, &s [0][0], 2 * MANY_SOCKETS);

  for (i = 4; i < MANY_SOCKETS; ++i)
    test_io_start (ctx->loop, &w [i], s [i][0], EV_READ);
  test_run_nowait (ctx->loop, 4);

  for (i = 0; i < MANY_SOCKETS; ++i)
    {
      ev_io_stop (ctx->loop, &w [i].w);
      close (s [i][0]);
    }

  t0 = now ();
  for (i = 0; i < MANY_SOCKETS; ++i)
    {
      while (!peer_sees_eof (s [i][1]) && now () - t0 < EOF_BOUND)
        {
          ev_run (ctx->loop, EVRUN_NOWAIT);
          usleep (1000);
        }
      if (!peer_sees_eof (s [i][1]))
        ++open;
    }
  took = now () - t0;

  holder_end (pid, ctl);
  for (i = 0; i < MANY_SOCKETS; ++i)
    close (s [i][1]);

  if (open)
    fail_msg ("%d of %d peers saw no EOF", open, MANY_SOCKETS);
  eof_check ("grown ring, stop, close, child holding the first ring", took);

  ev_loop_destroy (ctx->loop);
  ctx->loop = 0;
  assert_int_equal (test_ring_mappings (), 0);
}

/*****************************************************************************/
/* item 6: close without ev_io_stop, on a busy loop (10 ms timer) and on an
   idle one (nothing but a 30 s timer) */

#define IDLE_FDS 10000

struct ticker
{
  ev_timer tm;
  int      peer;
  double   t0;
  double   took;
};

static void
ticker_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct ticker *t = (struct ticker *)w;

  (void)revents;

  if (peer_sees_eof (t->peer))
    t->took = now () - t->t0;
  else if (now () - t->t0 < EOF_BOUND)
    return;

  ev_break (loop, EVBREAK_ALL);
}

/* idle, armed: eventfds (one fd each) nobody writes to */
struct idle_set
{
  int   n;
  int  *fd;
  ev_io *w;
};

static void
idle_start (struct ev_loop *loop, struct idle_set *is, int n)
{
  int i;

  is->n  = n;
  is->fd = calloc (n ? n : 1, sizeof *is->fd);
  is->w  = calloc (n ? n : 1, sizeof *is->w);
  assert_non_null (is->fd);
  assert_non_null (is->w);

  for (i = 0; i < n; ++i)
    {
      is->fd [i] = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
      assert_true (is->fd [i] >= 0);
      ev_io_init (&is->w [i], 0, is->fd [i], EV_READ);
      ev_io_start (loop, &is->w [i]);
    }
}

static void
idle_stop (struct ev_loop *loop, struct idle_set *is)
{
  int i;

  for (i = 0; i < is->n; ++i)
    {
      ev_io_stop (loop, &is->w [i]);
      close (is->fd [i]);
    }

  free (is->fd);
  free (is->w);
}

/* the watched end of a new socketpair on fd number at (0: where it lands) */
static int
socket_at (int s [2], int at)
{
  raw_socketpair (s);

  if (at && s [0] != at)
    {
      assert_int_equal (fcntl (at, F_GETFD), -1); /* a free number */
      assert_int_equal (dup3 (s [0], at, O_CLOEXEC), at);
      close (s [0]);
      s [0] = at;
    }

  return s [0];
}

/* busy: a 10 ms repeating timer checks the peer */
static void
close_nostop_busy (struct test_ctx *ctx, int at, int idle)
{
  struct idle_set is;
  struct test_io w;
  struct ticker t;
  ev_timer guard;
  unsigned int it0;
  double c0;
  char what [128];
  int s [2];

  idle_start (ctx->loop, &is, idle);
  socket_at (s, at);
  test_io_start (ctx->loop, &w, s [0], EV_READ);
  test_run_nowait (ctx->loop, 3);

  assert_int_equal (close (s [0]), 0);

  t.peer = s [1];
  t.took = -1.;
  ev_timer_init (&t.tm, ticker_cb, 0.01, 0.01);
  ev_timer_start (ctx->loop, &t.tm);
  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);

  it0  = ev_iteration (ctx->loop);
  c0   = cpu_now ();
  t.t0 = now ();
  ev_run (ctx->loop, 0);

  snprintf (what, sizeof what, "close without stop, fd %d, %d idle fds, 10 ms timer", s [0], idle);
  print_message ("%s: %u iterations, %.3f s cpu\n",
                 what, ev_iteration (ctx->loop) - it0, cpu_now () - c0);

  test_guard_stop (ctx->loop, &guard);
  ev_timer_stop (ctx->loop, &t.tm);
  ev_io_stop (ctx->loop, &w.w);
  idle_stop (ctx->loop, &is);
  close (s [1]);

  assert_false (test_guard_fired);
  eof_check (what, t.took);
}

static void
test_close_nostop_lowfd (void **state)
{
  close_nostop_busy (*state, 0, 0);
}

static void
test_close_nostop_fd1000 (void **state)
{
  close_nostop_busy (*state, 1000, 0);
}

static void
test_close_nostop_fd19000 (void **state)
{
  if (test_nofile_raise (19100) < 19100)
    skip (); /* RLIMIT_NOFILE's hard limit is below 19100 */

  close_nostop_busy (*state, 19000, 0);
}

static void
test_close_nostop_many (void **state)
{
  if (test_nofile_raise (IDLE_FDS + 200) < IDLE_FDS + 200)
    skip (); /* RLIMIT_NOFILE's hard limit is below 10200 */

  close_nostop_busy (*state, 0, IDLE_FDS);
}

/* idle: only a 30 s timer; a thread watches the peer and then wakes the
   loop through an ev_async */

struct watcher_thread
{
  ev_async        wake;
  struct ev_loop *loop;
  int             peer;
  double          took;
};

static void *
watcher_main (void *arg)
{
  struct watcher_thread *wt = arg;

  wt->took = peer_eof_wait (wt->peer, EOF_BOUND);
  ev_async_send (wt->loop, &wt->wake);
  return 0;
}

static void
wake_cb (struct ev_loop *loop, ev_async *w, int revents)
{
  (void)w;
  (void)revents;
  ev_break (loop, EVBREAK_ALL);
}

static void
close_nostop_idle (struct test_ctx *ctx, int at, int idle)
{
  struct watcher_thread wt;
  struct idle_set is;
  struct test_io w;
  ev_timer tm, guard;
  unsigned int it0;
  pthread_t th;
  double c0;
  char what [128];
  int s [2];

  idle_start (ctx->loop, &is, idle);
  socket_at (s, at);
  test_io_start (ctx->loop, &w, s [0], EV_READ);
  test_run_nowait (ctx->loop, 3);

  wt.loop = ctx->loop;
  wt.peer = s [1];
  wt.took = -1.;
  ev_async_init (&wt.wake, wake_cb);
  ev_async_start (ctx->loop, &wt.wake);
  ev_timer_init (&tm, nothing_cb, 30., 0.);
  ev_timer_start (ctx->loop, &tm);
  test_guard_start (ctx->loop, &guard, TEST_GUARD_SECONDS);
  test_run_nowait (ctx->loop, 2);

  assert_int_equal (close (s [0]), 0);

  it0 = ev_iteration (ctx->loop);
  c0  = cpu_now ();
  assert_int_equal (pthread_create (&th, 0, watcher_main, &wt), 0);
  ev_run (ctx->loop, 0);
  assert_int_equal (pthread_join (th, 0), 0);

  snprintf (what, sizeof what, "close without stop, fd %d, %d idle fds, idle loop", s [0], idle);
  print_message ("%s: %u iterations, %.3f s cpu\n",
                 what, ev_iteration (ctx->loop) - it0, cpu_now () - c0);

  test_guard_stop (ctx->loop, &guard);
  ev_timer_stop (ctx->loop, &tm);
  ev_async_stop (ctx->loop, &wt.wake);
  ev_io_stop (ctx->loop, &w.w);
  idle_stop (ctx->loop, &is);
  close (s [1]);

  assert_false (test_guard_fired);
  eof_check (what, wt.took);
}

static void
test_close_nostop_idle_lowfd (void **state)
{
  close_nostop_idle (*state, 0, 0);
}

static void
test_close_nostop_idle_fd1000 (void **state)
{
  close_nostop_idle (*state, 1000, 0);
}

static void
test_close_nostop_idle_many (void **state)
{
  if (test_nofile_raise (IDLE_FDS + 200) < IDLE_FDS + 200)
    skip (); /* RLIMIT_NOFILE's hard limit is below 10200 */

  close_nostop_idle (*state, 0, IDLE_FDS);
}

/*****************************************************************************/
/* item 7: close in the watcher's own callback, without ev_io_stop */

#define AFTER_RUNS 20

/* more than two sweep periods (0.4 s each, ev_iouring.c note l) */
#define IDLE_SECONDS 1.2

struct self_close
{
  struct test_io t;
  int            reuse;   /* put a new pipe with data on the closed number */
  int            p [2];   /* that pipe */
};

static void
self_close_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct self_close *sc = (struct self_close *)w;
  int fd = w->fd;

  (void)loop;
  ++sc->t.calls;
  sc->t.revents |= revents;
  sc->t.last     = revents;

  /* a typical error path would close again: only ever close once */
  if (sc->t.calls != 1)
    return;

  close (fd);

  if (sc->reuse)
    {
      if (pipe2 (sc->p, O_NONBLOCK | O_CLOEXEC))
        return;

      if (sc->p [0] != fd)
        {
          /* not the lowest free number: put it there */
          if (dup3 (sc->p [0], fd, O_CLOEXEC) != fd)
            return;
          close (sc->p [0]);
          sc->p [0] = fd;
        }

      /* someone else's data, on the number the dead watcher still has */
      if (write (sc->p [1], "y", 1) != 1)
        return;
    }
}

static void run_for (struct ev_loop *loop, double seconds);

/* idle: the loop first waits long enough for its idle polls to move to the
   epoll set (ev_iouring.c, note l), from which the event then comes */
static void
self_close (struct test_ctx *ctx, int reuse, int idle)
{
  struct self_close sc;
  struct test_io other;
  int s [2], q [2], i;

  raw_socketpair (s);
  test_fd_track (ctx, s [1]);
  test_pipe (ctx, q);

  memset (&sc, 0, sizeof sc);
  sc.reuse = reuse;
  sc.p [0] = sc.p [1] = -1;
  ev_io_init (&sc.t.w, self_close_cb, s [0], EV_READ);
  ev_io_start (ctx->loop, &sc.t.w);

  test_io_start (ctx->loop, &other, q [0], EV_READ);
  other.drain = 1;
  test_run_nowait (ctx->loop, 2);
  if (idle)
    run_for (ctx->loop, IDLE_SECONDS);
  assert_int_equal (sc.t.calls, 0);

  test_put (s [1]);
  assert_true (test_run_until (ctx->loop, &sc.t.calls, 10) >= 0);
  assert_int_equal (sc.t.calls, 1);
  if (reuse)
    assert_true (sc.p [0] == s [0] && sc.p [1] >= 0);

  /* more iterations, each with something to do elsewhere */
  for (i = 0; i < AFTER_RUNS; ++i)
    {
      test_put (q [1]);
      ev_run (ctx->loop, EVRUN_ONCE);
    }

  assert_true (other.calls >= AFTER_RUNS / 2);

  if (sc.t.calls != 1)
    print_error ("the closed fd's watcher was called again: %d calls, revents 0x%x\n",
                 sc.t.calls, sc.t.revents);
  assert_int_equal (sc.t.calls, 1);

  ev_io_stop (ctx->loop, &other.w);
  ev_io_stop (ctx->loop, &sc.t.w);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  if (reuse)
    {
      close (sc.p [0]);
      close (sc.p [1]);
    }
}

static void
test_close_in_callback (void **state)
{
  self_close (*state, 0, 0);
}

static void
test_close_in_callback_reuse (void **state)
{
  self_close (*state, 1, 0);
}

/* the same, the event coming from the epoll set of idle fds, which hands
   the fd back to the ring to be armed again */
static void
test_close_in_callback_reuse_idle (void **state)
{
  self_close (*state, 1, 1);
}

/*****************************************************************************/
/* the class of item 7: an fd closed without ev_io_stop, its number reused
   for a file no watcher was started for, then armed again by the backend
   (after an event, by a move between its tiers, by a new ring): epoll's
   item went with the closed file, so the dead watcher is never called for
   the new one.  a watcher started for the new file is (and so, as with
   epoll, is the dead one: both are on that fd) */

static void
break_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)w;
  (void)revents;
  ev_break (loop, EVBREAK_ALL);
}

/* a blocking ev_run of about seconds */
static void
run_for (struct ev_loop *loop, double seconds)
{
  ev_timer t;

  ev_timer_init (&t, break_cb, seconds, 0.);
  ev_timer_start (loop, &t);
  ev_run (loop, 0);
  ev_timer_stop (loop, &t);
}

/* a new pipe's read end on number fd, with a byte in it; returns the writer */
static int
pipe_with_data_at (int fd)
{
  int p [2];

  assert_int_equal (pipe2 (p, O_NONBLOCK | O_CLOEXEC), 0);
  if (p [0] != fd)
    {
      assert_int_equal (dup3 (p [0], fd, O_CLOEXEC), fd);
      close (p [0]);
    }

  test_put (p [1]);
  return p [1];
}

/* a watcher armed on a socket that is then closed without ev_io_stop, its
   number given to a new pipe with data in it */
struct reused
{
  struct test_io dead;
  int            s [2];
  int            writer;  /* the new pipe's */
};

static void
reused_start (struct test_ctx *ctx, struct reused *r)
{
  raw_socketpair (r->s);
  test_fd_track (ctx, r->s [1]);
  test_io_start (ctx->loop, &r->dead, r->s [0], EV_READ);
  test_run_nowait (ctx->loop, 2);

  close (r->s [0]);
  r->writer = pipe_with_data_at (r->s [0]);
}

/* as with epoll: the dead watcher never called for the pipe, the peer at EOF */
static void
reused_check (struct reused *r)
{
  if (r->dead.calls)
    print_error ("the closed fd's watcher was called for the new pipe: %d calls\n", r->dead.calls);
  assert_int_equal (r->dead.calls, 0);
  assert_true (peer_sees_eof (r->s [1]));
}

static void
reused_end (struct test_ctx *ctx, struct reused *r)
{
  ev_io_stop (ctx->loop, &r->dead.w);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  close (r->s [0]);
  close (r->writer);
}

/* the dead watcher's callback: close without ev_io_stop, a new pipe with
   data on the number, and a new watcher started for it */
struct handover
{
  ev_io          w;
  int            calls;
  int            writer;  /* the new pipe's */
  struct test_io next;    /* the new pipe's watcher, draining it */
};

static void
handover_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct handover *h = (struct handover *)w;
  int fd = w->fd;

  (void)revents;

  if (++h->calls != 1)
    return;

  close (fd);
  h->writer = pipe_with_data_at (fd);
  test_io_start (loop, &h->next, fd, EV_READ);
  h->next.drain = 1;
}

#define HANDOVER_ROUNDS 10

/* a server that leaks a watcher: the new file's watcher gets every event,
   round after round (it is not forgotten as a dead fd), and the dead one
   gets them too, as with epoll */
static void
test_close_in_callback_reuse_watched (void **state)
{
  struct test_ctx *ctx = *state;
  struct handover h;
  int s [2], i;

  raw_socketpair (s);
  test_fd_track (ctx, s [1]);
  memset (&h, 0, sizeof h);
  ev_io_init (&h.w, handover_cb, s [0], EV_READ);
  ev_io_start (ctx->loop, &h.w);
  test_run_nowait (ctx->loop, 2);

  test_put (s [1]);
  assert_true (test_run_until (ctx->loop, &h.next.calls, 10) >= 0);

  for (i = 1; i <= HANDOVER_ROUNDS; ++i)
    {
      test_put (h.writer);
      assert_true (test_run_until (ctx->loop, &h.next.calls, 10) >= 0);
      ev_run (ctx->loop, EVRUN_NOWAIT);
      if (h.next.calls != 1 + i)
        print_error ("round %d: the new file's watcher was called %d times\n", i, h.next.calls);
      assert_int_equal (h.next.calls, 1 + i);
    }

  /* as epoll: the dead watcher is on the same fd, and called with it */
  assert_int_equal (h.calls, 1 + h.next.calls);

  ev_io_stop (ctx->loop, &h.next.w);
  ev_io_stop (ctx->loop, &h.w);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  close (s [0]);
  close (h.writer);
}

/* closed without ev_io_stop while idle, the number reused by a pipe with
   data: the idle poll's move to the epoll set (after 0.4 to 0.8 s) must
   not put the pipe there; the peer sees EOF */
static void
test_close_nostop_reuse_idle (void **state)
{
  struct test_ctx *ctx = *state;
  struct reused r;

  reused_start (ctx, &r);
  run_for (ctx->loop, IDLE_SECONDS);
  reused_check (&r);
  reused_end (ctx, &r);
}

/* closed without ev_io_stop, the number reused by a pipe with data, then
   enough watchers started for a bigger ring, which arms every fd anew:
   not the pipe; the peer sees EOF */
static void
test_close_nostop_reuse_grow (void **state)
{
  struct test_ctx *ctx = *state;
  struct reused r;
  struct idle_set is;

  reused_start (ctx, &r);
  idle_start (ctx->loop, &is, MANY_SOCKETS);
  test_run_nowait (ctx->loop, 5);
  reused_check (&r);

  idle_stop (ctx->loop, &is);
  reused_end (ctx, &r);
}

/* closed without ev_io_stop, the number reused by a pipe with data, then
   io_uring refused: a new ring (EBADR: completions lost) or epoll (EPERM:
   a seccomp filter installed later) arms every fd anew, but not the pipe;
   the other watcher goes on, the peer sees EOF.  io_uring only (the
   refusal is faked) */
static void
nostop_reuse_refused (struct test_ctx *ctx, int err, int backend)
{
  struct reused r;
  struct test_io live;
  int q [2];

  test_pipe (ctx, q);
  test_io_start (ctx->loop, &live, q [0], EV_READ);
  live.drain = 1;
  reused_start (ctx, &r);

  /* the live pipe's event makes the loop enter, which is refused */
  ev_iouring_test_enter_errno = err;
  test_put (q [1]);
  assert_true (test_run_until (ctx->loop, &live.calls, 10) >= 0);
  test_run_nowait (ctx->loop, 5);
  assert_int_equal (ev_iouring_test_enter_errno, 0);
  assert_int_equal (ev_backend (ctx->loop), backend);
  reused_check (&r);

  test_put (q [1]);
  assert_true (test_run_until (ctx->loop, &live.calls, 10) >= 0);
  test_run_nowait (ctx->loop, 2);
  assert_int_equal (live.calls, 2);

  ev_io_stop (ctx->loop, &live.w);
  reused_end (ctx, &r);
}

static void
test_close_nostop_reuse_rebuild (void **state)
{
  nostop_reuse_refused (*state, EBADR, EVBACKEND_IOURING);
}

static void
test_close_nostop_reuse_switch (void **state)
{
  nostop_reuse_refused (*state, EPERM, EVBACKEND_EPOLL);
}

/*****************************************************************************/
/* close without ev_io_stop, the loop polled without waiting */

/* close without ev_io_stop while another watcher is armed, the loop run
   only with EVRUN_NOWAIT (it never waits in the kernel): no abort, the
   peer sees EOF within EOF_BOUND seconds of such polling, the other
   watcher still delivers, and the late ev_io_stop is harmless */
static void
test_close_nostop_nowait (void **state)
{
  struct test_ctx *ctx = *state;
  struct test_io t, other;
  int s [2], p [2], i;
  ev_tstamp start;

  test_socketpair (ctx, s);
  test_pipe (ctx, p);
  test_io_init (&t, s [0], EV_READ);
  test_io_init (&other, p [0], EV_READ);
  other.drain = 1;
  ev_io_start (ctx->loop, &t.w);
  ev_io_start (ctx->loop, &other.w);
  test_run_nowait (ctx->loop, 2);

  test_close (ctx, s [0]);

  start = ev_time ();
  for (i = 0; ev_time () - start < EOF_BOUND && !peer_sees_eof (s [1]); ++i)
    ev_run (ctx->loop, EVRUN_NOWAIT);

  if (getenv ("TEST_VERBOSE"))
    print_message ("peer saw EOF after %d iterations, %.3f s\n", i, ev_time () - start);

  if (!peer_sees_eof (s [1]))
    print_error ("peer saw no EOF after %.0f s\n", EOF_BOUND);
  assert_true (peer_sees_eof (s [1]));

  /* the rest of the loop is unharmed, and the late stop is harmless */
  test_put (p [1]);
  test_run_nowait (ctx->loop, 3);
  assert_true (other.calls >= 1);
  ev_io_stop (ctx->loop, &t.w);
  ev_io_stop (ctx->loop, &other.w);
  test_run_nowait (ctx->loop, 2);
}

/*****************************************************************************/

static const struct CMUnitTest tests [] = {
  TEST_BOTH (test_close_destroy_child_holds),
  TEST_BOTH (test_close_destroy_child_holds_many),
  TEST_ON (test_close_destroy_child_holds_many, noextarg),
  TEST_BOTH (test_close_grown_child_holds),
  TEST_BOTH (test_close_in_callback),
  TEST_ON (test_close_in_callback, noextarg),
  TEST_BOTH (test_close_in_callback_reuse),
  TEST_ON (test_close_in_callback_reuse, noextarg),
  TEST_BOTH (test_close_in_callback_reuse_idle),
  TEST_BOTH (test_close_in_callback_reuse_watched),
  TEST_ON (test_close_in_callback_reuse_watched, noextarg),
  TEST_BOTH (test_close_nostop_reuse_grow),
  TEST_BOTH (test_close_nostop_reuse_idle),
  TEST_ON (test_close_nostop_reuse_rebuild, iouring),
  TEST_ON (test_close_nostop_reuse_switch, iouring),
  TEST_BOTH (test_close_nostop_fd1000),
  TEST_ON (test_close_nostop_fd1000, noextarg),
  TEST_BOTH (test_close_nostop_fd19000),
  TEST_BOTH (test_close_nostop_idle_fd1000),
  TEST_ON (test_close_nostop_idle_fd1000, noextarg),
  TEST_BOTH (test_close_nostop_idle_lowfd),
  TEST_BOTH (test_close_nostop_idle_many),
  TEST_BOTH (test_close_nostop_lowfd),
  TEST_BOTH (test_close_nostop_many),
  TEST_BOTH (test_close_nostop_nowait),
  TEST_BOTH (test_close_stop_break),
  TEST_ON (test_close_stop_break, noextarg),
  TEST_BOTH (test_close_stop_break_destroy),
  TEST_BOTH (test_close_write_hup_child),
  TEST_BOTH (test_close_write_hup_dup),
  TEST_ON (test_close_write_hup_dup, noextarg),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
