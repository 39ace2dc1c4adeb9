/*
 * test_limits.c: io_uring for an unprivileged user with Debian's default
 * limits (issue 8, item 10): RLIMIT_MEMLOCK 8 MiB, RLIMIT_NOFILE soft 1024.
 *
 * - LIMIT_LOOPS loops alive at once, each with a few io watchers armed and
 *   one iteration run, all get io_uring;
 * - LIMIT_CYCLES loops created and destroyed one after the other all get
 *   io_uring (the kernel frees a ring's memory asynchronously);
 * - RLIMIT_MEMLOCK 0 (any user: lowering a limit needs no privilege): where
 *   rings are charged to it (6.18), no ring at all, so epoll when allowed
 *   and NULL when not; 64 KiB (root only, to become a user with no other
 *   locked memory): a ring smaller than 1024 entries, not a failure.
 *
 * as root each test runs in a forked child that becomes nobody/nogroup
 * with those limits; otherwise with the limits it has (and says so).  a
 * kernel that charges no memlock for rings (6.1) passes trivially, and the
 * test says that too.  the child reports through its exit status.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define LIMIT_LOOPS   200
#define LIMIT_CYCLES  10000
#define LIMIT_MEMLOCK (8 * 1024 * 1024)
#define LIMIT_NOFILE  1024

static int
raw_setup (unsigned int entries)
{
  struct ev_io_uring_params p;
  int fd;

  memset (&p, 0, sizeof p);
  fd = syscall (EV_SYS_io_uring_setup, entries, &p);
  if (fd < 0)
    return -errno;

  close (fd);
  return 0;
}

/* root: become nobody with Debian's default limits; anyone else: keep
   what we have.  says which, and whether rings are charged to memlock */
static void
unprivileged (void)
{
  struct rlimit r;

  if (!geteuid ())
    {
      r.rlim_cur = r.rlim_max = LIMIT_MEMLOCK;
      TEST_CHILD_CHECK (!setrlimit (RLIMIT_MEMLOCK, &r));
      TEST_CHILD_CHECK (!getrlimit (RLIMIT_NOFILE, &r));
      r.rlim_cur = LIMIT_NOFILE;
      if (r.rlim_max != RLIM_INFINITY && r.rlim_max < r.rlim_cur)
        r.rlim_cur = r.rlim_max;
      TEST_CHILD_CHECK (!setrlimit (RLIMIT_NOFILE, &r));
      TEST_CHILD_CHECK (!setgroups (0, 0));
      TEST_CHILD_CHECK (!setresgid (65534, 65534, 65534));
      TEST_CHILD_CHECK (!setresuid (65534, 65534, 65534));
      fprintf (stderr, "child: uid 65534, memlock %d KiB, nofile soft %d\n",
               LIMIT_MEMLOCK / 1024, (int)r.rlim_cur);
    }
  else
    {
      struct rlimit m, n;

      getrlimit (RLIMIT_MEMLOCK, &m);
      getrlimit (RLIMIT_NOFILE, &n);
      fprintf (stderr, "child: not root: uid %d with its own limits, memlock %ld KiB, nofile soft %ld\n",
               (int)geteuid (), m.rlim_cur == RLIM_INFINITY ? -1L : (long)(m.rlim_cur / 1024),
               n.rlim_cur == RLIM_INFINITY ? -1L : (long)n.rlim_cur);
    }

  /* does this kernel charge rings to RLIMIT_MEMLOCK at all? (6.18 does, 6.1 not) */
  TEST_CHILD_CHECK (!getrlimit (RLIMIT_MEMLOCK, &r));
  {
    struct rlimit zero = r;

    zero.rlim_cur = 0;
    if (!setrlimit (RLIMIT_MEMLOCK, &zero))
      {
        if (!raw_setup (8))
          fprintf (stderr, "child: this kernel charges no memlock for rings (or this user is exempt): "
                           "the limit tests pass trivially\n");
        TEST_CHILD_CHECK (!setrlimit (RLIMIT_MEMLOCK, &r));
      }
  }
}

/*****************************************************************************/
/* many loops at once */

#define LIMIT_WATCHERS 3

static void
many_loops_child (void *arg)
{
  struct ev_loop **loop;
  ev_io (*w) [LIMIT_WATCHERS];
  int p [2], s [2], i, k, got = 0, fallback = 0, none = 0;

  (void)arg;
  unprivileged ();

  loop = calloc (LIMIT_LOOPS, sizeof *loop);
  w    = calloc (LIMIT_LOOPS, sizeof *w);
  TEST_CHILD_CHECK (loop && w);
  TEST_CHILD_CHECK (!pipe2 (p, O_NONBLOCK | O_CLOEXEC));
  TEST_CHILD_CHECK (!socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s));

  for (i = 0; i < LIMIT_LOOPS; ++i)
    {
      /* what an unchanged program gets: io_uring, or nothing */
      loop [i] = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);

      if (!loop [i])
        {
          if (!none++)
            fprintf (stderr, "child: loop %d: ev_loop_new failed\n", i);
          continue;
        }

      if (ev_backend (loop [i]) != EVBACKEND_IOURING)
        ++fallback;
      else
        ++got;

      /* a few idle fds, armed */
      ev_io_init (&w [i][0], 0, p [0], EV_READ);
      ev_io_init (&w [i][1], 0, s [0], EV_READ);
      ev_io_init (&w [i][2], 0, s [1], EV_READ);
      for (k = 0; k < LIMIT_WATCHERS; ++k)
        ev_io_start (loop [i], &w [i][k]);
      ev_run (loop [i], EVRUN_NOWAIT);
    }

  fprintf (stderr, "child: %d loops: %d on io_uring, %d on something else, %d failed\n",
           LIMIT_LOOPS, got, fallback, none);

  for (i = 0; i < LIMIT_LOOPS; ++i)
    if (loop [i])
      {
        for (k = 0; k < LIMIT_WATCHERS; ++k)
          ev_io_stop (loop [i], &w [i][k]);
        ev_loop_destroy (loop [i]);
      }

  TEST_CHILD_CHECK (got == LIMIT_LOOPS);
  free (loop);
  free (w);
}

static void
test_limits_many_loops (void **state)
{
  (void)state;
  test_in_child (many_loops_child, 0);
}

/*****************************************************************************/
/* one loop after the other */

static void
cycles_child (void *arg)
{
  int i, failed = 0, first = -1;

  (void)arg;
  unprivileged ();

  for (i = 0; i < LIMIT_CYCLES; ++i)
    {
      struct ev_loop *loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);

      if (!loop || ev_backend (loop) != EVBACKEND_IOURING)
        {
          if (first < 0)
            first = i;
          ++failed;
        }

      if (loop)
        ev_loop_destroy (loop);
    }

  if (failed)
    fprintf (stderr, "child: %d of %d cycles got no io_uring loop, the first at cycle %d\n",
             failed, LIMIT_CYCLES, first);
  else
    fprintf (stderr, "child: %d cycles, all on io_uring\n", LIMIT_CYCLES);

  TEST_CHILD_CHECK (!failed);
}

static void
test_limits_cycles (void **state)
{
  (void)state;
  test_in_child (cycles_child, 0);
}

/*****************************************************************************/
/* io_uring unavailable or small: RLIMIT_MEMLOCK of an unprivileged user.
   6.18 charges the rings of a process without CAP_IPC_LOCK to
   RLIMIT_MEMLOCK (a sq 1024 cq 16384 ring: about 330 KiB); 6.1 charges
   nothing (issue 8, measured under QEMU).  the kernel compares the limit
   of the process with the locked memory of its whole user */

/* in a child: RLIMIT_MEMLOCK, soft and hard; as root, then become nobody
   (root's CAP_IPC_LOCK exempts it from the charge) */
static void
memlock_unprivileged (rlim_t memlock)
{
  struct rlimit r = { memlock, memlock };

  TEST_CHILD_CHECK (!setrlimit (RLIMIT_MEMLOCK, &r));

  if (!geteuid ())
    {
      TEST_CHILD_CHECK (!setgroups (0, 0));
      TEST_CHILD_CHECK (!setgid (65534));
      TEST_CHILD_CHECK (!setuid (65534));
    }
}

static void
memlock_zero_child (void *arg)
{
  int res;

  (void)arg;
  memlock_unprivileged (0);

  res = raw_setup (1);
  if (!res)
    test_child_skip ("a ring under RLIMIT_MEMLOCK 0: rings are not charged to it "
                     "here (CAP_IPC_LOCK, or a kernel like 6.1 that charges none)");
  TEST_CHILD_CHECK (res == -ENOMEM);

  test_child_unavailable (ENOMEM);
}

/* any user: lowering a limit needs no privilege */
static void
test_limits_memlock_zero (void **state)
{
  (void)state;
  test_in_child (memlock_zero_child, 0);
}

/* 64 KiB: a 1024-entry ring does not fit, a small one does */
static void
memlock_small_child (void *arg)
{
  struct ev_loop *loop;
  int n0;

  (void)arg;
  memlock_unprivileged (64 * 1024);

  /* rings of 4096 entries take about 1.3 MiB on 6.18 */
  if (!raw_setup (4096))
    test_child_skip ("a 4096-entry ring under RLIMIT_MEMLOCK 64 KiB: rings are not "
                     "charged to it here (a kernel like 6.1 that charges none)");

  n0 = test_fd_count ();

  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);
  if (!loop)
    {
      /* giving up is only fine when no small ring fits either */
      TEST_CHILD_CHECK (raw_setup (8) == -ENOMEM);
      return;
    }

  TEST_CHILD_CHECK (ev_backend (loop) == EVBACKEND_IOURING);
  TEST_CHILD_CHECK (ev_iouring_test_sq_entries < 1024);
  TEST_CHILD_CHECK (test_loop_works (loop));
  ev_loop_destroy (loop);
  TEST_CHILD_CHECK (test_fd_count () == n0);
}

/* root only: as any other user, the user's other rings (other processes,
   rings the kernel has yet to free) count against the same 64 KiB */
static void
test_limits_memlock_small (void **state)
{
  (void)state;

  if (geteuid ())
    TEST_SKIP ("needs root, to become a user with no other locked memory\n");

  test_in_child (memlock_small_child, 0);
}

/*****************************************************************************/

static const struct CMUnitTest tests [] = {
  /* io_uring only: the assertion is that the loops get io_uring */
  TEST_ON (test_limits_cycles, iouring),
  TEST_ON (test_limits_many_loops, iouring),
  TEST_ON (test_limits_memlock_small, iouring),
  TEST_ON (test_limits_memlock_zero, iouring),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
