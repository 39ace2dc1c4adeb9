/*
 * test_hostile.c: a hostile world never aborts the loop and never loses an
 * event.
 *
 * - io_uring unavailable: seccomp (EPERM, ENOSYS) and RLIMIT_MEMLOCK for an
 *   unprivileged user (6.18 charges the rings to it: a limit of 0 refuses
 *   every ring, 64 KiB fits a 64-entry one but not a 1024-entry one);
 * - bad fds: never-opened (EV_ERROR), reused numbers, close without stop
 *   (the peer must see EOF after a bounded number of iterations), stop and
 *   close (EOF within one iteration);
 * - a CQ backlog (ring made small through the setup_max hook);
 * - signals interrupting the wait (EINTR is not an error);
 * - the kernel refusing at runtime (enter_errno hook: EBADR, EBUSY, EAGAIN,
 *   EINTR) and a ring rebuild that fails (setup_errno hook after the loop
 *   exists, rebuild forced by EBADR or by a fork without ev_loop_fork): the
 *   loop goes on, on epoll, with every watcher intact;
 * - no backend fd survives exec (O_CLOEXEC), on both timeout paths;
 * - 2000 loops created and destroyed leave no fd and no heap behind.
 *
 * code that runs in a forked child reports through its exit status (and a
 * line on stderr), never through cmocka.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#define MAX_RUNS 100

/*****************************************************************************/
/* helpers */

/* the fds open when main started: inherited ones are not ours to judge */
static unsigned char fds_at_start [4096];

static void
fds_snapshot (unsigned char *set, size_t n)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *e;

  memset (set, 0, n);
  if (!d)
    return;

  while ((e = readdir (d)))
    {
      int fd = atoi (e->d_name);

      if (e->d_name [0] != '.' && fd >= 0 && (size_t)fd < n && fd != dirfd (d))
        set [fd] = 1;
    }

  closedir (d);
}



/*****************************************************************************/
/* O_CLOEXEC: nothing of the backend reaches an exec'd program */

static void
test_hostile_cloexec (void **state)
{
  struct test_ctx *ctx = *state;
  static unsigned char now [4096];
  struct ev_loop *loop2;
  struct test_io t, t2;
  ev_timer tm, tm2;
  ev_async as;
  char cmd [4096];
  size_t len;
  int p [2], fd, checked = 0;
  pid_t pid;

  /* a second loop on the other timeout path (timerfd) */
  ev_iouring_test_nofeat = ctx->mode->nofeat ^ EV_IORING_FEAT_EXT_ARG;
  loop2 = ev_loop_new (ctx->mode->backend | EVFLAG_NOENV);
  assert_non_null (loop2);

  test_pipe (ctx, p);
  test_io_start (ctx->loop, &t, p [1], EV_WRITE);
  ev_timer_init (&tm, 0, 30., 0.);
  ev_async_init (&as, 0);
  ev_timer_start (ctx->loop, &tm);
  ev_async_start (ctx->loop, &as);
  ev_run (ctx->loop, EVRUN_NOWAIT);
  test_io_init (&t2, p [1], EV_WRITE);
  ev_timer_init (&tm2, 0, 30., 0.);
  ev_io_start (loop2, &t2.w);
  ev_timer_start (loop2, &tm2);
  ev_run (loop2, EVRUN_NOWAIT);

  fds_snapshot (now, sizeof now);
  len = snprintf (cmd, sizeof cmd, "r=0;");

  for (fd = 3; fd < (int)sizeof now; ++fd)
    if (now [fd] && !fds_at_start [fd])
      {
        int fl = fcntl (fd, F_GETFD);

        if (!(fl & FD_CLOEXEC))
          print_error ("fd %d is not close-on-exec\n", fd);
        assert_true (fl & FD_CLOEXEC);
        ++checked;

        if (len < sizeof cmd - 100)
          len += snprintf (cmd + len, sizeof cmd - len,
                           "[ -e /proc/self/fd/%d ] && echo \"fd %d leaked into exec\" >&2 && r=1;",
                           fd, fd);
      }

  snprintf (cmd + len, sizeof cmd - len, "exit $r");

  /* ring, epoll or timerfd: something of the backend must be there */
  assert_true (checked >= 2);

  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  assert_true (pid >= 0);
  if (!pid)
    {
      execl ("/bin/sh", "sh", "-c", cmd, (char *)0);
      _exit (127);
    }

  test_child_ok (pid);

  ev_io_stop (loop2, &t2.w);
  ev_timer_stop (loop2, &tm2);
  ev_loop_destroy (loop2);
  ev_io_stop (ctx->loop, &t.w);
  ev_timer_stop (ctx->loop, &tm);
  ev_async_stop (ctx->loop, &as);
}

/*****************************************************************************/
/* 2000 loops: no fd and no heap left behind */

#define CYCLES 2000

static void
test_hostile_cycles (void **state)
{
  struct test_ctx *ctx = *state;
  struct mallinfo2 m0, m1;
  int n0, i, p [2];

  test_pipe (ctx, p);

  /* once first, so one-time allocations are not counted */
  for (i = 0; i < 2; ++i)
    {
      struct ev_loop *loop = test_loop_new (ctx->mode);

      assert_non_null (loop);
      ev_loop_destroy (loop);
    }

  n0 = test_fd_count ();
  m0 = mallinfo2 ();

  for (i = 0; i < CYCLES; ++i)
    {
      struct ev_loop *loop = test_loop_new (ctx->mode);
      struct test_io t;
      ev_timer tm;

      if (!loop)
        fail_msg ("cycle %d: ev_loop_new failed", i);
      if (ev_backend (loop) != ctx->mode->backend)
        fail_msg ("cycle %d: backend 0x%x", i, ev_backend (loop));

      test_io_start (loop, &t, p [1], EV_WRITE);
      ev_timer_init (&tm, 0, 60., 0.);
      ev_timer_start (loop, &tm);
      ev_run (loop, EVRUN_NOWAIT);
      if (t.calls != 1)
        fail_msg ("cycle %d: %d write callbacks", i, t.calls);

      ev_loop_destroy (loop);
    }

  m1 = mallinfo2 ();

  assert_int_equal (test_fd_count (), n0);
  /* a leak of one small block per loop would be 2000 blocks */
  if (m1.uordblks > m0.uordblks + 16 * 1024)
    fail_msg ("heap grew by %zu bytes over %d loops", m1.uordblks - m0.uordblks, CYCLES);
}

/*****************************************************************************/

static const struct CMUnitTest tests [] = {
  TEST_ON (test_hostile_cloexec, iouring),
  TEST_ON (test_hostile_cloexec, nocqeskip),
  /* io_uring only: libev's epoll backend calls ev_syserr (abort) here */
  TEST_BOTH (test_hostile_cycles),
};

int
main (void)
{
  fds_snapshot (fds_at_start, sizeof fds_at_start);

  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
