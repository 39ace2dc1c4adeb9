/*
 * common.c: the kernel probe, the loop fixtures and the fd helpers shared
 * by tests/test_*.c.  see common.h.
 */

#define _GNU_SOURCE 1

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "common.h"

/*****************************************************************************/
/* the fake kernel's inputs: defined by fakekernel.c */

void
test_hooks_reset (void)
{
  ev_iouring_test_nofeat      = 0;
  ev_iouring_test_nosetup     = 0;
  ev_iouring_test_setup_errno = 0;
  ev_iouring_test_setup_max   = 0;
  ev_iouring_test_enter_errno = 0;
}

/*****************************************************************************/
/* kernel probe */

struct test_kernel test_kernel;

static pid_t test_main_pid;

static int
test_raw_setup (unsigned int entries, unsigned int flags)
{
  struct io_uring_params p;
  int fd;

  memset (&p, 0, sizeof p);
  p.flags      = flags;
  p.cq_entries = entries * 4;

  fd = syscall (__NR_io_uring_setup, entries, &p);

  if (fd < 0)
    return -errno;

  if (!(flags & ~EV_IORING_SETUP_CQSIZE))
    test_kernel.features = p.features;

  close (fd);
  return 0;
}

static void
test_probe_setup_flag (unsigned int flag, unsigned int needs)
{
  if (!test_raw_setup (8, flag | needs))
    test_kernel.setup_flags |= flag;
}

/* libev calls this instead of abort ()ing on a system error */
static void
test_syserr (const char *msg) EV_NOEXCEPT
{
  if (getpid () != test_main_pid)
    {
      fprintf (stderr, "child %d: libev syserr: %s: %s\n",
               (int)getpid (), msg, strerror (errno));
      _exit (98);
    }

  fail_msg ("libev syserr: %s: %s", msg, strerror (errno));
}

int
test_probe (void)
{
  struct utsname u;
  unsigned int a = 0, b = 0, c = 0;
  struct io_uring ring;
  int res, i;

  test_main_pid = getpid ();
  signal (SIGPIPE, SIG_IGN);
  ev_set_syserr_cb (test_syserr);
  setvbuf (stdout, 0, _IOLBF, 0);

  if (getenv ("TEST_FILTER"))
    cmocka_set_test_filter (getenv ("TEST_FILTER"));
  if (getenv ("TEST_SKIP"))
    cmocka_set_skip_filter (getenv ("TEST_SKIP"));

  if (!uname (&u))
    sscanf (u.release, "%u.%u.%u", &a, &b, &c);
  test_kernel.version = (a << 16) | (b << 8) | (c > 255 ? 255 : c);

  /* ENOMEM may be transient: 6.18 frees ring memory (charged to the
     user's RLIMIT_MEMLOCK) asynchronously, after close, so the rings of the
     binary that ran just before us can still count for a while (up to 25 ms
     seen per ring; longer after thousands).  ENOMEM for 5 s is not transient */
  res = test_raw_setup (8, 0);
  for (i = 0; res == -ENOMEM && i < 500; ++i)
    {
      usleep (10000);
      res = test_raw_setup (8, 0);
    }
  if (res == -ENOMEM)
    fprintf (stderr, "io_uring_setup: ENOMEM for 5 s: RLIMIT_MEMLOCK used up by this user's rings?\n");
  if (res < 0)
    {
      test_kernel.setup_errno = -res;
      fprintf (stderr, "io_uring_setup: %s: skipping\n", strerror (-res));
      return 77;
    }

  test_probe_setup_flag (EV_IORING_SETUP_CQSIZE, 0);
  test_probe_setup_flag (EV_IORING_SETUP_CLAMP, 0);
  test_probe_setup_flag (IORING_SETUP_R_DISABLED, 0);
  test_probe_setup_flag (EV_IORING_SETUP_COOP_TASKRUN, 0);
  test_probe_setup_flag (EV_IORING_SETUP_TASKRUN_FLAG, EV_IORING_SETUP_COOP_TASKRUN);
  test_probe_setup_flag (IORING_SETUP_SINGLE_ISSUER, 0);
  test_probe_setup_flag (IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER);
  test_probe_setup_flag (EV_IORING_SETUP_NO_SQARRAY, 0);

  /* liburing's own probe for the registered ring fd (5.18) */
  if (!io_uring_queue_init (8, &ring, 0))
    {
      test_kernel.ring_fds = io_uring_register_ring_fd (&ring) == 1;
      io_uring_queue_exit (&ring);
    }

  return 0;
}

/* one kind of fd pair: fds [1] full, a POLL_ADD (POLLOUT) armed on it, one
   byte read from fds [0]: 1 if the poll completed with POLLOUT although
   poll () and write () still say "not writable", 0 if not, -1 if the
   measurement could not be made */
static int
test_probe_pollout_pair (int fds [2])
{
  static char buf [65536];
  struct __kernel_timespec ts = { 0, 100 * 1000 * 1000 };
  struct pollfd pfd = { fds [1], POLLOUT, 0 };
  struct io_uring_cqe *cqe;
  struct io_uring_sqe *sqe;
  struct io_uring ring;
  int res = -1, completed, writable;
  size_t size;
  char c;

  /* full, down to the last byte it takes */
  for (size = sizeof buf; size; size /= 2)
    while (write (fds [1], buf, size) > 0)
      ;

  if (poll (&pfd, 1, 0) != 0 || io_uring_queue_init (4, &ring, 0))
    return -1;

  sqe = io_uring_get_sqe (&ring);
  io_uring_prep_poll_add (sqe, fds [1], POLLOUT);
  sqe->user_data = 1;

  /* armed, and not complete yet */
  if (io_uring_submit (&ring) != 1 || !io_uring_peek_cqe (&ring, &cqe))
    goto out;

  if (read (fds [0], &c, 1) != 1)
    goto out;

  completed = !io_uring_wait_cqe_timeout (&ring, &cqe, &ts)
              && cqe->user_data == 1 && cqe->res > 0 && (cqe->res & POLLOUT);
  writable  = poll (&pfd, 1, 0) != 0 || write (fds [1], "x", 1) >= 0;

  res = completed && !writable;

out:
  io_uring_queue_exit (&ring);
  return res;
}

unsigned int
test_probe_pollout (void)
{
  int fds [2], res;

  test_kernel.pollout_spurious = 0;

  if (!pipe2 (fds, O_NONBLOCK | O_CLOEXEC))
    {
      res = test_probe_pollout_pair (fds);
      if (res > 0)
        test_kernel.pollout_spurious |= TEST_POLLOUT_PIPE;
      if (res < 0)
        fprintf (stderr, "test_probe_pollout: no measurement on a pipe\n");
      close (fds [0]);
      close (fds [1]);
    }

  if (!socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds))
    {
      res = test_probe_pollout_pair (fds);
      if (res > 0)
        test_kernel.pollout_spurious |= TEST_POLLOUT_SOCKET;
      if (res < 0)
        fprintf (stderr, "test_probe_pollout: no measurement on a socketpair\n");
      close (fds [0]);
      close (fds [1]);
    }

  return test_kernel.pollout_spurious;
}

/*****************************************************************************/
/* modes */

#define TEST_SETUP_OPTIONAL                                             \
  (EV_IORING_SETUP_CQSIZE | EV_IORING_SETUP_CLAMP                      \
   | IORING_SETUP_R_DISABLED | EV_IORING_SETUP_COOP_TASKRUN         \
   | EV_IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER      \
   | IORING_SETUP_DEFER_TASKRUN | EV_IORING_SETUP_NO_SQARRAY)

#define TEST_FEAT_OPTIONAL                                              \
  (EV_IORING_FEAT_EXT_ARG | EV_IORING_FEAT_SINGLE_MMAP                 \
   | EV_IORING_FEAT_NODROP | EV_IORING_FEAT_CQE_SKIP                   \
   | EV_IORING_FEAT_NO_IOWAIT)

const struct test_mode test_mode_iouring      = { "iouring", EVBACKEND_IOURING, 0, 0 };
const struct test_mode test_mode_epoll        = { "epoll", EVBACKEND_EPOLL, 0, 0 };
const struct test_mode test_mode_noextarg     = { "noextarg", EVBACKEND_IOURING, EV_IORING_FEAT_EXT_ARG, 0 };
const struct test_mode test_mode_nosinglemmap = { "nosinglemmap", EVBACKEND_IOURING, EV_IORING_FEAT_SINGLE_MMAP, 0 };
const struct test_mode test_mode_nocqsize     = { "nocqsize", EVBACKEND_IOURING, 0, EV_IORING_SETUP_CQSIZE };
const struct test_mode test_mode_nonodrop     = { "nonodrop", EVBACKEND_IOURING, EV_IORING_FEAT_NODROP, 0 };
const struct test_mode test_mode_nocoop       = { "nocoop", EVBACKEND_IOURING, 0,
                                                  EV_IORING_SETUP_COOP_TASKRUN | EV_IORING_SETUP_TASKRUN_FLAG };
const struct test_mode test_mode_nosqarray    = { "nosqarray", EVBACKEND_IOURING, 0, EV_IORING_SETUP_NO_SQARRAY };
const struct test_mode test_mode_nocqeskip    = { "nocqeskip", EVBACKEND_IOURING, EV_IORING_FEAT_CQE_SKIP, 0 };
const struct test_mode test_mode_nooverflowflag = { "nooverflowflag", EVBACKEND_IOURING, EV_IORING_FEAT_POLL_32BITS, 0 };
const struct test_mode test_mode_oldest       = { "oldest", EVBACKEND_IOURING,
                                                  TEST_FEAT_OPTIONAL, TEST_SETUP_OPTIONAL };

struct ev_loop *
test_loop_new (const struct test_mode *mode)
{
  ev_iouring_test_nofeat     = mode->nofeat;
  ev_iouring_test_nosetup    = mode->nosetup;

  return ev_loop_new (mode->backend | EVFLAG_NOENV);
}

/* enters the fake kernel refused for a hidden feature, when this test began */
static unsigned long test_hidden_used;

int
test_loop_setup (void **state, const struct test_mode *mode)
{
  struct test_ctx *ctx;
  int i;

  test_hooks_reset ();
  test_hidden_used = ev_iouring_test_hidden_used;

  ctx = calloc (1, sizeof *ctx);
  if (!ctx)
    return -1;

  ctx->mode = mode;
  for (i = 0; i < TEST_MAX_FDS; ++i)
    ctx->fds [i] = -1;

  ctx->loop = test_loop_new (mode);
  if (!ctx->loop)
    {
      print_error ("%s: ev_loop_new (0x%x) failed\n", mode->name, mode->backend);
      goto fail;
    }

  if (ev_backend (ctx->loop) != mode->backend)
    {
      print_error ("%s: asked for backend 0x%x, got 0x%x\n",
                   mode->name, mode->backend, ev_backend (ctx->loop));
      goto fail;
    }

  /* the masked run must really take the older path */
  if (mode->backend == EVBACKEND_IOURING
      && ((ev_iouring_test_features & mode->nofeat)
          || (ev_iouring_test_setup_flags & mode->nosetup)))
    {
      print_error ("%s: ring has features 0x%x setup flags 0x%x despite the mask\n",
                   mode->name, ev_iouring_test_features, ev_iouring_test_setup_flags);
      goto fail;
    }

  alarm (TEST_WATCHDOG);
  *state = ctx;
  return 0;

fail:
  if (ctx->loop)
    ev_loop_destroy (ctx->loop);
  test_hooks_reset ();
  free (ctx);
  return -1;
}

/* dups of this process's io_uring fds, at most max; returns how many */
static int
ring_fds_hold (int *held, int max)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *e;
  int n = 0;

  if (!d)
    return 0;

  while (n < max && (e = readdir (d)))
    {
      char path [300], target [64];
      ssize_t len;
      int fd = atoi (e->d_name), i;

      /* not a dup made here, which the directory may list too */
      for (i = 0; i < n && held [i] != fd; ++i)
        ;
      if (i < n)
        continue;

      snprintf (path, sizeof path, "/proc/self/fd/%s", e->d_name);
      len = readlink (path, target, sizeof target - 1);
      if (len <= 0)
        continue;
      target [len] = 0;
      if (strstr (target, "io_uring"))
        held [n++] = fcntl (fd, F_DUPFD_CLOEXEC, 0);
    }

  closedir (d);
  return n;
}

/* polls still armed on the ring behind fd (its fdinfo's PollList) */
static int
ring_polls (int fd)
{
  char path [64], line [256];
  FILE *f;
  int n = 0, in_list = 0;

  snprintf (path, sizeof path, "/proc/self/fdinfo/%d", fd);
  if (!(f = fopen (path, "r")))
    return 0;

  while (fgets (line, sizeof line, f))
    if (!strncmp (line, "PollList:", 9))
      in_list = 1;
    else if (in_list && strstr (line, "op="))
      ++n;
    else if (in_list && line [0] != ' ')
      in_list = 0;

  fclose (f);
  return n;
}

int
test_ring_polls (void)
{
  int held [8], n, i, polls = 0;

  n = ring_fds_hold (held, (int)(sizeof held / sizeof held [0]));
  for (i = 0; i < n; ++i)
    if (held [i] >= 0)
      {
        polls += ring_polls (held [i]);
        close (held [i]);
      }

  return polls;
}

int
test_ring_mappings (void)
{
  FILE *f = fopen ("/proc/self/maps", "r");
  char line [512];
  int n = 0;

  if (!f)
    return 0;

  while (fgets (line, sizeof line, f))
    if (strstr (line, "io_uring"))
      ++n;

  fclose (f);
  return n;
}

int
teardown_loop (void **state)
{
  struct test_ctx *ctx = *state;
  int held [8], nheld = 0, polls = 0, i;

  alarm (0);

  if (!ctx)
    return 0;

  /* destroying a loop removes every poll of its ring, whoever else holds
     the ring (note m), and unmaps it: hold the ring to look after destroy */
  if (ctx->loop)
    {
      nheld = ring_fds_hold (held, (int)(sizeof held / sizeof held [0]));
      ev_loop_destroy (ctx->loop);
      ctx->loop = 0;
    }

  for (i = 0; i < nheld; ++i)
    if (held [i] >= 0)
      {
        polls += ring_polls (held [i]);
        close (held [i]);
      }

  for (i = 0; i < TEST_MAX_FDS; ++i)
    if (ctx->fds [i] >= 0)
      close (ctx->fds [i]);

  test_hooks_reset ();
  free (ctx);
  *state = 0;

  if (polls)
    {
      print_error ("ev_loop_destroy left %d polls armed on its ring\n", polls);
      return -1;
    }

  if ((i = test_ring_mappings ()))
    {
      print_error ("%d io_uring mappings left after ev_loop_destroy\n", i);
      return -1;
    }

  /* the backend took the masked path throughout, not only at setup */
  if (ev_iouring_test_hidden_used != test_hidden_used)
    {
      print_error ("the backend used a feature the fake kernel hid from it, %lu times\n",
                   ev_iouring_test_hidden_used - test_hidden_used);
      return -1;
    }

  return 0;
}

int setup_iouring (void **state)      { return test_loop_setup (state, &test_mode_iouring); }
int setup_epoll (void **state)        { return test_loop_setup (state, &test_mode_epoll); }
int setup_noextarg (void **state)     { return test_loop_setup (state, &test_mode_noextarg); }
int setup_nosinglemmap (void **state) { return test_loop_setup (state, &test_mode_nosinglemmap); }
int setup_nocqsize (void **state)     { return test_loop_setup (state, &test_mode_nocqsize); }
int setup_nonodrop (void **state)     { return test_loop_setup (state, &test_mode_nonodrop); }
int setup_nocoop (void **state)       { return test_loop_setup (state, &test_mode_nocoop); }
int setup_nosqarray (void **state)    { return test_loop_setup (state, &test_mode_nosqarray); }
int setup_nocqeskip (void **state)    { return test_loop_setup (state, &test_mode_nocqeskip); }
int setup_nooverflowflag (void **state) { return test_loop_setup (state, &test_mode_nooverflowflag); }
int setup_oldest (void **state)       { return test_loop_setup (state, &test_mode_oldest); }

/*****************************************************************************/
/* fds */

int
test_fd_count (void)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *e;
  int n = 0;

  assert_non_null (d);

  while ((e = readdir (d)))
    if (e->d_name [0] != '.')
      ++n;

  closedir (d);
  return n - 1; /* the DIR's own fd */
}

void
test_nonblock (int fd)
{
  int fl = fcntl (fd, F_GETFL);

  assert_true (fl >= 0);
  assert_int_equal (fcntl (fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void
test_fd_track (struct test_ctx *ctx, int fd)
{
  int i;

  for (i = 0; i < TEST_MAX_FDS; ++i)
    if (ctx->fds [i] < 0)
      {
        ctx->fds [i] = fd;
        return;
      }

  fail_msg ("more than %d fds tracked", TEST_MAX_FDS);
}

void
test_close (struct test_ctx *ctx, int fd)
{
  int i;

  for (i = 0; i < TEST_MAX_FDS; ++i)
    if (ctx->fds [i] == fd)
      ctx->fds [i] = -1;

  assert_int_equal (close (fd), 0);
}

void
test_pipe (struct test_ctx *ctx, int fds [2])
{
  assert_int_equal (pipe2 (fds, O_NONBLOCK | O_CLOEXEC), 0);
  test_fd_track (ctx, fds [0]);
  test_fd_track (ctx, fds [1]);
}

void
test_socketpair (struct test_ctx *ctx, int fds [2])
{
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  test_fd_track (ctx, fds [0]);
  test_fd_track (ctx, fds [1]);
}

void
test_put (int fd)
{
  assert_int_equal (write (fd, "x", 1), 1);
}

void
test_get (int fd)
{
  char c;

  assert_int_equal (read (fd, &c, 1), 1);
}

void
test_child_ok (pid_t pid)
{
  assert_int_equal (test_child_status (pid), 0);
}

long
test_nofile_raise (long want)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl))
    return 0;

  if (rl.rlim_cur >= (rlim_t)want)
    return (long)rl.rlim_cur;

  /* anyone may raise the soft limit to the hard one; root (CAP_SYS_RESOURCE)
     the hard one too, up to fs.nr_open */
  if (rl.rlim_max < (rlim_t)want)
    {
      struct rlimit more = { (rlim_t)want, (rlim_t)want };

      if (!setrlimit (RLIMIT_NOFILE, &more))
        return want;
    }

  rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
  setrlimit (RLIMIT_NOFILE, &rl);
  getrlimit (RLIMIT_NOFILE, &rl);

  return (long)rl.rlim_cur;
}

int
test_fd_room (int n)
{
  /* fd numbers are handed out lowest first: the highest open one bounds it */
  long need = (long)test_fd_count () + n + 64, have = test_nofile_raise (need);

  if (have >= need)
    return 1;

  print_message ("skip: %d more fds need RLIMIT_NOFILE %ld, the hard limit allows %ld\n",
                 n, need, have);
  return 0;
}

/*****************************************************************************/
/* child processes */

void
test_child_skip (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "child %d: skipping: ", (int)getpid ());
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  _exit (77);
}

int
test_child_status (pid_t pid)
{
  int status;
  pid_t got;

  while ((got = waitpid (pid, &status, 0)) < 0 && errno == EINTR)
    ;

  if (got < 0)
    {
      fprintf (stderr, "waitpid %d: %s\n", (int)pid, strerror (errno));
      return -1;
    }

  pid = got;

  if (WIFSIGNALED (status))
    {
      fprintf (stderr, "child %d killed by signal %d\n", (int)pid, WTERMSIG (status));
      return -1;
    }

  if (WEXITSTATUS (status) == 0 || WEXITSTATUS (status) == 77)
    return WEXITSTATUS (status);

  fprintf (stderr, "child %d exited with %d\n", (int)pid, WEXITSTATUS (status));
  return -1;
}

void
test_in_child (void (*fn) (void *arg), void *arg)
{
  pid_t pid;
  int res;

  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  assert_true (pid >= 0);

  if (!pid)
    {
      /* cmocka catches these to go on with the next test: not in a child */
      signal (SIGSEGV, SIG_DFL);
      signal (SIGBUS, SIG_DFL);
      signal (SIGILL, SIG_DFL);
      signal (SIGFPE, SIG_DFL);
      signal (SIGABRT, SIG_DFL);
      alarm (TEST_WATCHDOG);
      fn (arg);
      _exit (0);
    }

  res = test_child_status (pid);
  if (res == 77)
    skip ();
  assert_int_equal (res, 0);
}

/* io_uring refused outright: epoll when allowed, NULL when not, no fd left */
void
test_child_unavailable (int err)
{
  struct ev_loop *loop;
  int n0;

  TEST_CHILD_CHECK (test_raw_setup (8, 0) == -err);

  n0 = test_fd_count ();

  loop = ev_loop_new (EVBACKEND_IOURING | EVBACKEND_EPOLL | EVFLAG_NOENV);
  TEST_CHILD_CHECK (loop);
  TEST_CHILD_CHECK (ev_backend (loop) == EVBACKEND_EPOLL);
  TEST_CHILD_CHECK (test_loop_works (loop));
  ev_loop_destroy (loop);
  TEST_CHILD_CHECK (test_fd_count () == n0);

  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);
  TEST_CHILD_CHECK (!loop);
  TEST_CHILD_CHECK (test_fd_count () == n0);

  /* what an unchanged program gets from the environment */
  setenv ("LIBEV_FLAGS", "128", 1);
  loop = ev_loop_new (0);
  TEST_CHILD_CHECK (!loop);
  setenv ("LIBEV_FLAGS", "132", 1); /* io_uring | epoll */
  loop = ev_loop_new (0);
  TEST_CHILD_CHECK (loop && ev_backend (loop) == EVBACKEND_EPOLL);
  ev_loop_destroy (loop);
  TEST_CHILD_CHECK (test_fd_count () == n0);
}

/*****************************************************************************/
/* the counting watcher and bounded runs */

void
test_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct test_io *t = (struct test_io *)w;

  ++t->calls;
  t->revents |= revents;
  t->last     = revents;

  if (t->drain && (revents & EV_READ))
    {
      char buf [4096];

      while (read (w->fd, buf, sizeof buf) > 0)
        ;
    }

  if (t->stop)
    ev_io_stop (loop, w);
}

void
test_io_init (struct test_io *t, int fd, int events)
{
  memset (t, 0, sizeof *t);
  ev_io_init (&t->w, test_io_cb, fd, events);
}

int test_guard_fired;

static void
test_guard_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)w;
  (void)revents;
  test_guard_fired = 1;
  ev_break (loop, EVBREAK_ALL);
}

void
test_guard_start (struct ev_loop *loop, ev_timer *t, ev_tstamp seconds)
{
  test_guard_fired = 0;
  ev_timer_init (t, test_guard_cb, seconds, 0.);
  ev_timer_start (loop, t);
  /* the guard alone must not keep the loop alive */
  ev_unref (loop);
}

void
test_guard_stop (struct ev_loop *loop, ev_timer *t)
{
  ev_ref (loop);
  ev_timer_stop (loop, t);
}

void
test_io_start (struct ev_loop *loop, struct test_io *t, int fd, int events)
{
  test_io_init (t, fd, events);
  ev_io_start (loop, &t->w);
}

void
test_io_reset (struct ev_loop *loop, struct test_io *t, int fd, int events)
{
  ev_io_stop (loop, &t->w);
  ev_io_set (&t->w, fd, events);
  ev_io_start (loop, &t->w);
}

int
test_loop_works (struct ev_loop *loop)
{
  struct test_io t;
  int p [2], i, ok;

  if (pipe2 (p, O_NONBLOCK | O_CLOEXEC))
    return 0;

  test_io_init (&t, p [0], EV_READ);
  t.drain = 1;
  ev_io_start (loop, &t.w);
  ev_run (loop, EVRUN_NOWAIT);

  ok = write (p [1], "x", 1) == 1;

  for (i = 0; ok && i < 100 && !t.calls; ++i)
    ev_run (loop, EVRUN_NOWAIT);

  test_run_nowait (loop, 2);
  ok = ok && t.calls == 1 && t.last == EV_READ;

  ev_io_stop (loop, &t.w);
  ev_run (loop, EVRUN_NOWAIT);
  close (p [0]);
  close (p [1]);

  return ok;
}

void
test_run_nowait (struct ev_loop *loop, int n)
{
  while (n-- > 0)
    ev_run (loop, EVRUN_NOWAIT);
}

int
test_run_until (struct ev_loop *loop, const int *flag, int max)
{
  int i;

  for (i = 0; i < max; ++i)
    {
      if (*flag)
        return i;

      ev_run (loop, EVRUN_ONCE);
    }

  return *flag ? i : -1;
}
