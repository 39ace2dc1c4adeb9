/* probe.c: kernel facts the backend depends on, measured with raw
   io_uring syscalls (no liburing, no libev), one line each.

     probe features            io_uring_setup's features word
     probe memlock SQ CQ MAX   rings of SQ/CQ entries created (and kept)
                               until one fails or MAX exist (a kernel that
                               charges nothing would otherwise run out of
                               memory)
     probe pollout             POLL_ADD(POLLOUT) on a full pipe, then a
                               1-byte read: what the ring says, what
                               poll () says

   tools/check-kernel.sh runs it inside each guest, as root and as nobody.
   exit 0 (the probe ran; the line says what was seen), 1 setup failed. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef IORING_SETUP_CQSIZE
# define IORING_SETUP_CQSIZE (1U << 3)
#endif

struct ring
{
  int fd;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
};

static int
setup (unsigned sq, unsigned cq, struct io_uring_params *p)
{
  memset (p, 0, sizeof *p);
  if (cq)
    {
      p->flags = IORING_SETUP_CQSIZE;
      p->cq_entries = cq;
    }
  return syscall (__NR_io_uring_setup, sq, p);
}

static int
enter (int fd, unsigned submit, unsigned wait)
{
  return syscall (__NR_io_uring_enter, fd, submit, wait,
                  wait ? IORING_ENTER_GETEVENTS : 0, (void *)0, 0);
}

static long
status_kb (const char *key)
{
  char line [256];
  long kb = -1;
  size_t n = strlen (key);
  FILE *f = fopen ("/proc/self/status", "r");

  if (!f)
    return -1;
  while (fgets (line, sizeof line, f))
    if (!strncmp (line, key, n) && line [n] == ':')
      kb = strtol (line + n + 1, 0, 10);
  fclose (f);
  return kb;
}

static int
ring_map (struct ring *r, unsigned sq, unsigned cq)
{
  struct io_uring_params p;
  size_t sqlen, cqlen;
  char *sqm, *cqm;

  r->fd = setup (sq, cq, &p);
  if (r->fd < 0)
    return -1;
  sqlen = p.sq_off.array + p.sq_entries * sizeof (unsigned);
  cqlen = p.cq_off.cqes + p.cq_entries * sizeof (struct io_uring_cqe);
  sqm = mmap (0, sqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
  cqm = mmap (0, cqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
  r->sqes = mmap (0, p.sq_entries * sizeof (struct io_uring_sqe), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
  if (sqm == MAP_FAILED || cqm == MAP_FAILED || r->sqes == MAP_FAILED)
    return -1;
  r->sq_tail = (unsigned *)(sqm + p.sq_off.tail);
  r->sq_mask = (unsigned *)(sqm + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(sqm + p.sq_off.array);
  r->cq_head = (unsigned *)(cqm + p.cq_off.head);
  r->cq_tail = (unsigned *)(cqm + p.cq_off.tail);
  r->cq_mask = (unsigned *)(cqm + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cqm + p.cq_off.cqes);
  return 0;
}

static int
probe_features (void)
{
  struct io_uring_params p;
  struct utsname u;
  int fd = setup (8, 0, &p);

  uname (&u);
  if (fd < 0)
    {
      printf ("features: kernel %s: io_uring_setup: %s\n", u.release, strerror (errno));
      return 0;
    }
  printf ("features: kernel %s: 0x%x\n", u.release, p.features);
  close (fd);
  return 0;
}

static int
probe_memlock (unsigned sq, unsigned cq, int max)
{
  struct io_uring_params p;
  struct rlimit rl, nofile;
  long lck0 = status_kb ("VmLck"), pin0 = status_kb ("VmPin"), lck1 = -1, pin1 = -1;
  int n = 0, err = 0, fd;

  getrlimit (RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max > 20000 ? 20000 : nofile.rlim_max;
  setrlimit (RLIMIT_NOFILE, &nofile);
  getrlimit (RLIMIT_MEMLOCK, &rl);

  while (n < max)
    {
      fd = setup (sq, cq, &p);
      if (fd < 0)
        {
          err = errno;
          break;
        }
      if (!n++)
        {
          lck1 = status_kb ("VmLck");
          pin1 = status_kb ("VmPin");
        }
    }

  printf ("memlock: uid %d, limit %ld KiB, sq %u cq %u: %d rings, then %s; "
          "one ring: VmLck +%ld kB, VmPin +%ld kB\n",
          (int)getuid (), rl.rlim_cur == RLIM_INFINITY ? -1L : (long)(rl.rlim_cur / 1024),
          sq, cq, n, n < max ? strerror (err) : "no failure (stopped there)",
          lck1 - lck0, pin1 - pin0);
  return 0;
}

static int
probe_pollout (void)
{
  struct ring r;
  struct io_uring_sqe *sqe;
  struct pollfd pfd;
  char buf [4096];
  int fds [2], res = -1, got = 0, i;
  unsigned tail, head;

  if (ring_map (&r, 8, 0) || pipe2 (fds, O_NONBLOCK))
    {
      printf ("pollout: setup: %s\n", strerror (errno));
      return 1;
    }
  memset (buf, 'x', sizeof buf);
  while (write (fds [1], buf, sizeof buf) > 0)
    ;
  while (write (fds [1], buf, 1) > 0)
    ;

  tail = *r.sq_tail;
  sqe = &r.sqes [tail & *r.sq_mask];
  memset (sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_POLL_ADD;
  sqe->fd = fds [1];
  sqe->poll_events = POLLOUT;
  sqe->user_data = 1;
  r.sq_array [tail & *r.sq_mask] = tail & *r.sq_mask;
  __atomic_store_n (r.sq_tail, tail + 1, __ATOMIC_RELEASE);
  if (enter (r.fd, 1, 0) != 1)
    {
      printf ("pollout: submit: %s\n", strerror (errno));
      return 1;
    }

  if (read (fds [0], buf, 1) != 1)
    {
      printf ("pollout: read: %s\n", strerror (errno));
      return 1;
    }

  /* a completion, if any, comes from the read's wakeup: wait up to 1 s */
  for (i = 0; i < 100 && !got; ++i)
    {
      head = *r.cq_head;
      if (head != __atomic_load_n (r.cq_tail, __ATOMIC_ACQUIRE))
        {
          res = r.cqes [head & *r.cq_mask].res;
          __atomic_store_n (r.cq_head, head + 1, __ATOMIC_RELEASE);
          got = 1;
        }
      else
        usleep (10000);
    }

  pfd.fd = fds [1];
  pfd.events = POLLOUT;
  pfd.revents = 0;
  poll (&pfd, 1, 0);
  if (got)
    printf ("pollout: after a 1-byte read of a full pipe the ring says 0x%x (%s), "
            "poll () says 0x%x, write () %s\n",
            res, res > 0 && (res & POLLOUT) ? "writable: spurious" : "not writable",
            pfd.revents, write (fds [1], buf, 1) > 0 ? "succeeds" : strerror (errno));
  else
    printf ("pollout: after a 1-byte read of a full pipe the ring says nothing within 1 s "
            "(no spurious POLLOUT), poll () says 0x%x\n", pfd.revents);
  return 0;
}

int
main (int argc, char **argv)
{
  setvbuf (stdout, 0, _IOLBF, 0);
  if (argc == 2 && !strcmp (argv [1], "features"))
    return probe_features ();
  if (argc == 5 && !strcmp (argv [1], "memlock"))
    return probe_memlock (atoi (argv [2]), atoi (argv [3]), atoi (argv [4]));
  if (argc == 2 && !strcmp (argv [1], "pollout"))
    return probe_pollout ();
  fprintf (stderr, "usage: probe features | memlock SQ CQ MAX | pollout\n");
  return 1;
}
