/*
 * test_init.c: backend selection (flags, LIBEV_FLAGS, the default loop),
 * setup failures (DESIGN.md scenario 10: EPERM, ENOSYS, ENOMEM ...; faked,
 * and EPERM and ENOSYS from a real seccomp filter, LIBEV_FLAGS too), the
 * retry with a smaller ring, fds leaked by none of it, the ring fd, no
 * fd of the backend surviving exec (O_CLOEXEC, both timeout paths), 2000
 * loops created and destroyed leaving no fd and no heap behind, and the
 * masked kernel paths really taken (features, setup flags, mmaps).
 */

#define _GNU_SOURCE 1

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

/*****************************************************************************/
/* helpers */

/* the io_uring fds of this process, lowest first; returns how many */
static int
ring_fds (int *out, int max)
{
  char path [64], link [64];
  int fd, n = 0;

  for (fd = 0; fd < 4096 && n < max; ++fd)
    {
      ssize_t len;

      snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
      len = readlink (path, link, sizeof link - 1);
      if (len < 0)
        continue;

      link [len] = 0;
      if (!strcmp (link, "anon_inode:[io_uring]"))
        out [n++] = fd;
    }

  return n;
}

/* the ring fd a new loop made: the io_uring fd not in before [] */
static int
ring_fd_new (const int *before, int nbefore)
{
  int now [16], n, i, j;

  n = ring_fds (now, 16);

  for (i = 0; i < n; ++i)
    {
      for (j = 0; j < nbefore; ++j)
        if (now [i] == before [j])
          break;

      if (j == nbefore)
        return now [i];
    }

  return -1;
}

/* the io_uring mappings of this process: how many, and how many of them
   are a CQ ring of its own (offset IORING_OFF_CQ_RING, as before
   SINGLE_MMAP, 5.4).  Counted for all rings: before 5.16 every io_uring
   file shares one anonymous inode (5.10: st_ino does not tell the rings
   apart), so a test counts before and after making its ring */
static int
ring_maps (int *cq_maps)
{
  char line [512];
  FILE *f;
  int n = 0;

  *cq_maps = 0;
  f = fopen ("/proc/self/maps", "r");
  assert_non_null (f);

  while (fgets (line, sizeof line, f))
    {
      unsigned long long off;

      if (sscanf (line, "%*s %*s %llx", &off) != 1 || !strstr (line, "io_uring"))
        continue;

      ++n;
      if (off == EV_IORING_OFF_CQ_RING)
        ++*cq_maps;
    }

  fclose (f);
  return n;
}

/*****************************************************************************/
/* selection */

/* the fixture's loop has its backend; a ring reports sane sizes */
static void
test_init_backend_selected (void **state)
{
  struct test_ctx *ctx = *state;

  assert_int_equal (ev_backend (ctx->loop), ctx->mode->backend);

  if (TEST_IS_IOURING (ctx))
    {
      /* these stay 0 when libev's io_uring_setup bypasses the fake
         kernel (tests/fakekernel.c), which would make every masked-path
         check vacuous */
      assert_true (ev_iouring_test_sq_entries > 0);
      assert_true (ev_iouring_test_cq_entries >= ev_iouring_test_sq_entries);
      assert_int_equal (ev_iouring_test_features & ~test_kernel.features, 0);
      assert_int_equal (ev_iouring_test_features & ctx->mode->nofeat, 0);
      assert_int_equal (ev_iouring_test_setup_flags & ctx->mode->nosetup, 0);
    }

  assert_true (test_loop_works (ctx->loop));
}

/* nothing masked: the ring gets every feature the kernel offers */
static void
test_init_features_unmasked (void **state)
{
  (void)state;

  assert_int_equal (ev_iouring_test_features, test_kernel.features);
}

static void
test_init_supported (void **state)
{
  (void)state;

  assert_true (ev_supported_backends () & EVBACKEND_IOURING);
  assert_true (ev_supported_backends () & EVBACKEND_EPOLL);
}

/* LIBEV_FLAGS=128 selects io_uring unless EVFLAG_NOENV */
static void
test_init_libev_flags_env (void **state)
{
  struct ev_loop *loop;

  (void)state;
  assert_int_equal (setenv ("LIBEV_FLAGS", "128", 1), 0);

  loop = ev_loop_new (0);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), EVBACKEND_IOURING);
  assert_true (test_loop_works (loop));
  ev_loop_destroy (loop);

  loop = ev_loop_new (EVBACKEND_EPOLL | EVFLAG_NOENV);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), EVBACKEND_EPOLL);
  ev_loop_destroy (loop);

  assert_int_equal (unsetenv ("LIBEV_FLAGS"), 0);
}

/* ev_default_loop (EVBACKEND_IOURING), in a child: the default loop is
   once per process */
static void
default_loop_child (void *arg)
{
  struct ev_loop *loop;
  struct test_io r;
  int p [2], i;

  (void)arg;
  loop = ev_default_loop (EVBACKEND_IOURING | EVFLAG_NOENV);
  TEST_CHILD_CHECK (loop);
  TEST_CHILD_CHECK (ev_backend (loop) == EVBACKEND_IOURING);
  TEST_CHILD_CHECK (!pipe2 (p, O_NONBLOCK));

  test_io_start (loop, &r, p [0], EV_READ);
  TEST_CHILD_CHECK (write (p [1], "x", 1) == 1);
  for (i = 0; i < 10 && !r.calls; ++i)
    ev_run (loop, EVRUN_ONCE);

  TEST_CHILD_CHECK (r.calls == 1);
}

static void
test_init_default_loop (void **state)
{
  (void)state;
  test_in_child (default_loop_child, 0);
}

/*****************************************************************************/
/* setup failures and retries */

/* io_uring_setup fails with err: IOURING alone gives NULL, IOURING|EPOLL
   gives a working epoll loop, and no fd is left behind */
static void
setup_fails (int err)
{
  struct ev_loop *loop;
  int fds = test_fd_count ();

  ev_iouring_test_setup_errno = err;

  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);
  assert_null (loop);
  assert_int_equal (test_fd_count (), fds);

  loop = ev_loop_new (EVBACKEND_IOURING | EVBACKEND_EPOLL | EVFLAG_NOENV);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), EVBACKEND_EPOLL);
  assert_true (test_loop_works (loop));
  ev_loop_destroy (loop);
  assert_int_equal (test_fd_count (), fds);

  ev_iouring_test_setup_errno = 0;
}

/* seccomp (docker >= 25), kernel.io_uring_disabled = 2 (6.6) */
static void
test_init_setup_eperm (void **state)
{
  (void)state;
  setup_fails (EPERM);
}

/* no CONFIG_IO_URING, or seccomp returning ENOSYS */
static void
test_init_setup_enosys (void **state)
{
  (void)state;
  setup_fails (ENOSYS);
}

/* RLIMIT_MEMLOCK, at every size */
static void
test_init_setup_enomem (void **state)
{
  (void)state;
  setup_fails (ENOMEM);
}

static void
test_init_setup_eopnotsupp (void **state)
{
  (void)state;
  setup_fails (EOPNOTSUPP);
}

/* ENOMEM above 64 entries: the backend retries smaller and works */
static void
test_init_retry_smaller (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  int fds = test_fd_count ();

  ev_iouring_test_setup_max = 64;
  loop = test_loop_new (ctx->mode);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), EVBACKEND_IOURING);
  assert_true (ev_iouring_test_sq_entries > 0);
  assert_true (ev_iouring_test_sq_entries <= 64);
  assert_int_equal (ev_iouring_test_features & ctx->mode->nofeat, 0);
  assert_int_equal (ev_iouring_test_setup_flags & ctx->mode->nosetup, 0);
  assert_true (test_loop_works (loop));
  ev_loop_destroy (loop);

  assert_int_equal (test_fd_count (), fds);
}

/* ENOMEM at every size the backend will try: init gives up cleanly */
static void
test_init_retry_gives_up (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  int fds = test_fd_count (), ring;

  ev_iouring_test_setup_max = 1;
  ev_iouring_test_nofeat    = ctx->mode->nofeat;
  ev_iouring_test_nosetup   = ctx->mode->nosetup;

  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);
  ring = !!loop;
  if (loop)
    {
      /* a one-entry ring is a ring: it must work */
      assert_int_equal (ev_backend (loop), EVBACKEND_IOURING);
      assert_true (test_loop_works (loop));
      ev_loop_destroy (loop);
    }
  assert_int_equal (test_fd_count (), fds);

  loop = ev_loop_new (EVBACKEND_IOURING | EVBACKEND_EPOLL | EVFLAG_NOENV);
  assert_non_null (loop);
  assert_int_equal (ev_backend (loop), ring ? EVBACKEND_IOURING : EVBACKEND_EPOLL);
  assert_true (test_loop_works (loop));
  ev_loop_destroy (loop);
  assert_int_equal (test_fd_count (), fds);
}

/*****************************************************************************/
/* fds and mappings */

/* twenty loops made and destroyed: no fd left behind */
static void
test_init_no_fd_leak (void **state)
{
  struct test_ctx *ctx = *state;
  int fds = test_fd_count (), i;

  for (i = 0; i < 20; ++i)
    {
      struct ev_loop *loop = test_loop_new (ctx->mode);

      assert_non_null (loop);
      assert_int_equal (ev_backend (loop), ctx->mode->backend);
      ev_run (loop, EVRUN_NOWAIT);
      ev_loop_destroy (loop);
    }

  assert_int_equal (test_fd_count (), fds);
}

/* the loop's ring fd: one new io_uring fd, close-on-exec, gone after
   ev_loop_destroy */
static void
test_init_ring_fd (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  int before [16], nbefore, after [16], fd;

  nbefore = ring_fds (before, 16);
  loop = test_loop_new (ctx->mode);
  assert_non_null (loop);

  fd = ring_fd_new (before, nbefore);
  assert_true (fd >= 0);
  assert_true (fcntl (fd, F_GETFD) & FD_CLOEXEC);
  assert_int_equal (ring_fds (after, 16), nbefore + 1);

  ev_loop_destroy (loop);
  assert_int_equal (ring_fds (after, 16), nbefore);
}

/* SINGLE_MMAP (5.4): two mappings; masked: three, the CQ ring apart */
static void
test_init_mmaps (void **state)
{
  struct test_ctx *ctx = *state;
  struct ev_loop *loop;
  int before [16], nbefore, fd, n0, cq0, n, cq;
  int single = !(ctx->mode->nofeat & EV_IORING_FEAT_SINGLE_MMAP);

  /* IORING_FEAT_SINGLE_MMAP: 5.4 */
  if (single && !(test_kernel.features & EV_IORING_FEAT_SINGLE_MMAP))
    skip ();

  nbefore = ring_fds (before, 16);
  n0 = ring_maps (&cq0);
  loop = test_loop_new (ctx->mode);
  assert_non_null (loop);
  fd = ring_fd_new (before, nbefore);
  assert_true (fd >= 0);

  n = ring_maps (&cq) - n0;
  assert_int_equal (n, single ? 2 : 3);
  assert_int_equal (cq - cq0, !single);

  assert_true (test_loop_works (loop));
  ev_loop_destroy (loop);
}

/* LIBEV_IOURING_VERBOSE=1: one line on stderr at ring setup */
static void
test_init_verbose (void **state)
{
  struct ev_loop *loop;
  char path [] = "/tmp/test_init.XXXXXX", buf [1024];
  int fd, saved, len;

  (void)state;
  fd = mkstemp (path);
  assert_true (fd >= 0);
  unlink (path);

  fflush (stderr);
  saved = dup (2);
  assert_true (saved >= 0);
  assert_int_equal (dup2 (fd, 2), 2);

  /* read only where libev reads LIBEV_FLAGS: not with EVFLAG_NOENV */
  setenv ("LIBEV_IOURING_VERBOSE", "1", 1);
  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);
  assert_non_null (loop);
  ev_loop_destroy (loop);
  fflush (stderr);
  assert_int_equal (lseek (fd, 0, SEEK_END), 0);
  loop = ev_loop_new (EVBACKEND_IOURING);
  unsetenv ("LIBEV_IOURING_VERBOSE");

  fflush (stderr);
  dup2 (saved, 2);
  close (saved);

  assert_non_null (loop);
  ev_loop_destroy (loop);

  len = pread (fd, buf, sizeof buf - 1, 0);
  close (fd);
  assert_true (len > 0);
  buf [len] = 0;
  assert_non_null (strstr (buf, "io_uring"));

  /* exactly one line */
  assert_non_null (strchr (buf, '\n'));
  assert_int_equal (strchr (buf, '\n') - buf, len - 1);
}

/*****************************************************************************/
/* io_uring refused by the real kernel: a seccomp filter makes
   io_uring_setup/enter/register fail (the fake kernel's setup_errno above
   fakes the result; here the kernel does it), before any loop exists */

/* a classic BPF program: io_uring_setup/enter/register fail with errno */
static int
seccomp_deny_io_uring (int err)
{
  struct sock_filter code [] = {
#if defined __x86_64__ || defined __aarch64__
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),
# ifdef __x86_64__
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
# else
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_AARCH64, 1, 0),
# endif
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#endif
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, EV_SYS_io_uring_setup, 3, 0),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, EV_SYS_io_uring_enter, 2, 0),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
  };
  struct sock_fprog prog = { sizeof code / sizeof code [0], code };

  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    return -1;

  return prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void
seccomp_child (void *arg)
{
  TEST_CHILD_CHECK (!seccomp_deny_io_uring (*(int *)arg));
  test_child_unavailable (*(int *)arg);
}

static void
test_init_seccomp_eperm (void **state)
{
  int err = EPERM;

  (void)state;
  test_in_child (seccomp_child, &err);
}

static void
test_init_seccomp_enosys (void **state)
{
  int err = ENOSYS;

  (void)state;
  test_in_child (seccomp_child, &err);
}

/*****************************************************************************/
/* O_CLOEXEC: nothing of the backend (ring, epoll, timerfd, eventfd) reaches
   an exec'd program, on both timeout paths */

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

static void
test_init_cloexec (void **state)
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
test_init_cycles (void **state)
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

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_init_backend_selected),
  TEST_ON (test_init_cloexec, iouring),
  TEST_ON (test_init_cloexec, nocqeskip),
  TEST_BOTH (test_init_cycles),
  TEST_ON (test_init_default_loop, iouring),
  TEST_ON (test_init_features_unmasked, iouring),
  TEST_ON (test_init_libev_flags_env, iouring),
  TEST_ON (test_init_mmaps, iouring),
  TEST_ON (test_init_mmaps, nosinglemmap),
  TEST_ON (test_init_mmaps, oldest),
  TEST_ALL (test_init_no_fd_leak),
  TEST_ON (test_init_retry_gives_up, iouring),
  TEST_PATHS (test_init_retry_gives_up),
  TEST_ON (test_init_retry_smaller, iouring),
  TEST_PATHS (test_init_retry_smaller),
  TEST_ON (test_init_ring_fd, iouring),
  TEST_PATHS (test_init_ring_fd),
  TEST_ON (test_init_seccomp_enosys, iouring),
  TEST_ON (test_init_seccomp_eperm, iouring),
  TEST_ON (test_init_setup_enomem, iouring),
  TEST_ON (test_init_setup_enosys, iouring),
  TEST_ON (test_init_setup_eopnotsupp, iouring),
  TEST_ON (test_init_setup_eperm, iouring),
  TEST_ON (test_init_supported, iouring),
  TEST_ON (test_init_verbose, iouring),
};

int
main (void)
{
  fds_snapshot (fds_at_start, sizeof fds_at_start);

  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
