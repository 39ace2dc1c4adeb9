/*
 * test_files.c: DESIGN.md scenario 8.  fds that are not pipes or sockets:
 * regular files, /dev/null and directories (epoll refuses them with EPERM
 * and libev's epoll backend fakes readiness; io_uring polls them ready at
 * once), a pty, eventfd, signalfd, inotify, timerfd and an epoll fd.  the
 * same expectations hold on io_uring and on epoll.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "common.h"

/* an fd that is always ready: every blocking iteration calls both a
   reader and a writer, each with only its own event */
static void
files_always_ready (struct test_ctx *ctx, int fd, int events)
{
  struct test_io r, w;
  int i;

  test_io_init (&r, fd, EV_READ);
  test_io_init (&w, fd, EV_WRITE);

  if (events & EV_READ)
    ev_io_start (ctx->loop, &r.w);
  if (events & EV_WRITE)
    ev_io_start (ctx->loop, &w.w);

  for (i = 1; i <= 3; ++i)
    {
      ev_run (ctx->loop, EVRUN_ONCE);
      assert_int_equal (r.calls, events & EV_READ ? i : 0);
      assert_int_equal (w.calls, events & EV_WRITE ? i : 0);
    }

  assert_int_equal (r.revents, events & EV_READ);
  assert_int_equal (w.revents, events & EV_WRITE);

  /* and again after a stop/start */
  ev_io_stop (ctx->loop, &r.w);
  ev_io_stop (ctx->loop, &w.w);
  r.calls = w.calls = 0;

  if (events & EV_READ)
    ev_io_start (ctx->loop, &r.w);
  if (events & EV_WRITE)
    ev_io_start (ctx->loop, &w.w);

  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, !!(events & EV_READ));
  assert_int_equal (w.calls, !!(events & EV_WRITE));

  ev_io_stop (ctx->loop, &r.w);
  ev_io_stop (ctx->loop, &w.w);
}

/* a reader on fd: idle, then trigger () makes it ready, it stays ready
   (level-triggered) until consume () */
static void
files_reader (struct test_ctx *ctx, int fd, void (*trigger) (void *), void (*consume) (void *), void *arg)
{
  struct test_io r;
  int i;

  test_io_start (ctx->loop, &r, fd, EV_READ);

  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 0);

  trigger (arg);

  /* some sources get ready a moment later (tty flip buffer, timers) */
  for (i = 0; i < 500 && !r.calls; ++i)
    {
      ev_run (ctx->loop, EVRUN_NOWAIT);
      if (!r.calls)
        usleep (1000);
    }

  assert_int_equal (r.calls, 1);
  assert_int_equal (r.last, EV_READ);

  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (r.calls, 2);

  consume (arg);
  test_run_nowait (ctx->loop, 3);
  assert_int_equal (r.calls, 2);

  ev_io_stop (ctx->loop, &r.w);
}

/* a new, empty regular file, already unlinked; closed by teardown */
static int
files_tmp (struct test_ctx *ctx)
{
  char path [] = "/tmp/test_files.XXXXXX";
  int fd = mkstemp (path);

  assert_true (fd >= 0);
  unlink (path);
  test_fd_track (ctx, fd);
  return fd;
}

static void
test_files_regular (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = files_tmp (ctx);

  assert_int_equal (write (fd, "data", 4), 4);

  files_always_ready (ctx, fd, EV_READ | EV_WRITE);
}

static void
test_files_regular_empty_read (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = files_tmp (ctx);

  /* at EOF, still "ready": read returns 0 */
  files_always_ready (ctx, fd, EV_READ);
}

static void
test_files_dev_null (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = open ("/dev/null", O_RDWR | O_CLOEXEC);

  assert_true (fd >= 0);
  test_fd_track (ctx, fd);
  files_always_ready (ctx, fd, EV_READ | EV_WRITE);
}

static void
test_files_directory (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = open ("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  assert_true (fd >= 0);
  test_fd_track (ctx, fd);
  files_always_ready (ctx, fd, EV_READ);
}

/* pty: data written to the slave appears on the master */
struct pty
{
  int master, slave;
};

static void
pty_trigger (void *arg)
{
  struct pty *p = arg;

  assert_int_equal (write (p->slave, "x", 1), 1);
}

static void
pty_consume (void *arg)
{
  struct pty *p = arg;
  char c;

  assert_int_equal (read (p->master, &c, 1), 1);
  assert_int_equal (c, 'x');
}

static void
test_files_pty (void **state)
{
  struct test_ctx *ctx = *state;
  struct termios t;
  struct pty p;
  struct test_io w;

  p.master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (p.master >= 0);
  test_fd_track (ctx, p.master);
  assert_int_equal (grantpt (p.master), 0);
  assert_int_equal (unlockpt (p.master), 0);
  p.slave = open (ptsname (p.master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (p.slave >= 0);
  test_fd_track (ctx, p.slave);
  test_nonblock (p.master);

  assert_int_equal (tcgetattr (p.slave, &t), 0);
  cfmakeraw (&t);
  assert_int_equal (tcsetattr (p.slave, TCSANOW, &t), 0);

  files_reader (ctx, p.master, pty_trigger, pty_consume, &p);

  /* the master is writable */
  test_io_start (ctx->loop, &w, p.master, EV_WRITE);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.last, EV_WRITE);
  ev_io_stop (ctx->loop, &w.w);
}

/* eventfd */
static void
efd_trigger (void *arg)
{
  assert_int_equal (eventfd_write (*(int *)arg, 1), 0);
}

static void
efd_consume (void *arg)
{
  eventfd_t v;

  assert_int_equal (eventfd_read (*(int *)arg, &v), 0);
  assert_int_equal (v, 1);
}

static void
test_files_eventfd (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct test_io w;

  assert_true (fd >= 0);
  test_fd_track (ctx, fd);
  files_reader (ctx, fd, efd_trigger, efd_consume, &fd);

  test_io_start (ctx->loop, &w, fd, EV_WRITE);
  ev_run (ctx->loop, EVRUN_ONCE);
  assert_int_equal (w.calls, 1);
  assert_int_equal (w.last, EV_WRITE);
  ev_io_stop (ctx->loop, &w.w);
}

/* signalfd, for a blocked SIGUSR1 */
static void
sfd_trigger (void *arg)
{
  (void)arg;
  assert_int_equal (raise (SIGUSR1), 0);
}

static void
sfd_consume (void *arg)
{
  struct signalfd_siginfo si;

  assert_int_equal (read (*(int *)arg, &si, sizeof si), sizeof si);
  assert_int_equal (si.ssi_signo, SIGUSR1);
}

static void
test_files_signalfd (void **state)
{
  struct test_ctx *ctx = *state;
  sigset_t set, old;
  int fd;

  sigemptyset (&set);
  sigaddset (&set, SIGUSR1);
  assert_int_equal (sigprocmask (SIG_BLOCK, &set, &old), 0);

  fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  assert_true (fd >= 0);
  test_fd_track (ctx, fd);
  files_reader (ctx, fd, sfd_trigger, sfd_consume, &fd);

  assert_int_equal (sigprocmask (SIG_SETMASK, &old, 0), 0);
}

/* inotify on a fresh directory */
struct ino
{
  int  fd;
  char dir [32];
  char file [64];
};

static void
ino_trigger (void *arg)
{
  struct ino *in = arg;
  int fd = open (in->file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

  assert_true (fd >= 0);
  close (fd);
}

static void
ino_consume (void *arg)
{
  struct ino *in = arg;
  char buf [4096];

  assert_true (read (in->fd, buf, sizeof buf) > 0);
  while (read (in->fd, buf, sizeof buf) > 0)
    ;
}

static void
test_files_inotify (void **state)
{
  struct test_ctx *ctx = *state;
  struct ino in;

  strcpy (in.dir, "/tmp/test_files.XXXXXX");
  assert_non_null (mkdtemp (in.dir));
  snprintf (in.file, sizeof in.file, "%s/f", in.dir);

  in.fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  assert_true (in.fd >= 0);
  test_fd_track (ctx, in.fd);
  assert_true (inotify_add_watch (in.fd, in.dir, IN_CREATE | IN_CLOSE_WRITE) >= 0);

  files_reader (ctx, in.fd, ino_trigger, ino_consume, &in);

  unlink (in.file);
  rmdir (in.dir);
}

/* timerfd, armed for 10 ms */
static void
tfd_trigger (void *arg)
{
  struct itimerspec its;

  memset (&its, 0, sizeof its);
  its.it_value.tv_nsec = 10000000;
  assert_int_equal (timerfd_settime (*(int *)arg, 0, &its, 0), 0);
}

static void
tfd_consume (void *arg)
{
  uint64_t n;

  assert_int_equal (read (*(int *)arg, &n, sizeof n), sizeof n);
  assert_int_equal (n, 1);
}

static void
test_files_timerfd (void **state)
{
  struct test_ctx *ctx = *state;
  int fd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

  assert_true (fd >= 0);
  test_fd_track (ctx, fd);
  files_reader (ctx, fd, tfd_trigger, tfd_consume, &fd);
}

/* an epoll fd watching a pipe */
struct efd
{
  int ep, p [2];
};

static void
ep_trigger (void *arg)
{
  test_put (((struct efd *)arg)->p [1]);
}

static void
ep_consume (void *arg)
{
  test_get (((struct efd *)arg)->p [0]);
}

static void
test_files_epoll_fd (void **state)
{
  struct test_ctx *ctx = *state;
  struct epoll_event ev;
  struct efd e;

  e.ep = epoll_create1 (EPOLL_CLOEXEC);
  assert_true (e.ep >= 0);
  test_fd_track (ctx, e.ep);
  test_pipe (ctx, e.p);

  memset (&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  assert_int_equal (epoll_ctl (e.ep, EPOLL_CTL_ADD, e.p [0], &ev), 0);

  files_reader (ctx, e.ep, ep_trigger, ep_consume, &e);
}

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_files_dev_null),
  TEST_ALL (test_files_directory),
  TEST_ALL (test_files_epoll_fd),
  TEST_ALL (test_files_eventfd),
  TEST_ALL (test_files_inotify),
  TEST_ALL (test_files_pty),
  TEST_ALL (test_files_regular),
  TEST_ALL (test_files_regular_empty_read),
  TEST_ALL (test_files_signalfd),
  TEST_ALL (test_files_timerfd),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
