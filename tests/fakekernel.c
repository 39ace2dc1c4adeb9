/*
 * fakekernel.c: an io_uring kernel with features taken away and failures
 * on demand, in front of the real one.  see fakekernel.h.
 *
 * libev built with its default features (EV_FEATURE_CODE) makes its raw
 * syscalls through libc's syscall ().  a test binary that defines syscall
 * itself gets every such call from the objects linked into it: libev.a,
 * the very object code that ships, calls us, and we call libc's (found
 * with dlsym (RTLD_NEXT)).  nothing else is changed: the backend reads
 * the io_uring_params we return, as it reads the kernel's.  an older
 * kernel is faked as it would answer:
 *
 *   io_uring_setup   EINVAL for setup flags it does not know, ENOMEM for
 *                    a ring over the locked memory limit, no feature bits
 *                    it does not have.
 *   io_uring_enter   EINVAL for an enter flag it does not know: a ring made
 *                    without EXT_ARG (NO_IOWAIT) gets it for
 *                    IORING_ENTER_EXT_ARG (NO_IOWAIT), and we count it in
 *                    ev_iouring_test_hidden_used, so that a backend which
 *                    uses a feature it was not given is caught.
 *
 * which features each ring lacks is kept by ring fd number; a ring moved
 * to another number with dup2 keeps what that number's last ring had.
 */

#define _GNU_SOURCE 1

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ev_iouring_abi.h"
#include "fakekernel.h"

unsigned int  ev_iouring_test_nofeat;
unsigned int  ev_iouring_test_nosetup;
int           ev_iouring_test_setup_errno;
unsigned int  ev_iouring_test_setup_max;
int           ev_iouring_test_enter_errno;

unsigned int  ev_iouring_test_setup_flags;
unsigned int  ev_iouring_test_features;
unsigned int  ev_iouring_test_sq_entries;
unsigned int  ev_iouring_test_cq_entries;

unsigned long ev_iouring_test_rings;
unsigned long ev_iouring_test_enters;
unsigned long ev_iouring_test_submitted;
unsigned long ev_iouring_test_hidden_used;

/*
 * never instrumented by ASan: we read six arguments whatever the call
 * passed, as libc's syscall does (harmless: the kernel ignores the rest),
 * and a thread cancelled inside io_uring_enter (note q of ev_iouring.c)
 * must leave no poisoned stack of ours behind.
 */
#define FAKE_RAW __attribute__ ((no_sanitize_address))

/* the features hidden from the ring behind each fd number */
#define FAKE_FDS 4096
static unsigned int fake_hidden [FAKE_FDS];

typedef long (*fake_syscall_fn) (long nr, ...);
static fake_syscall_fn fake_real;

__attribute__ ((constructor)) static void
fake_init (void)
{
  fake_real = (fake_syscall_fn)dlsym (RTLD_NEXT, "syscall");

  if (!fake_real)
    {
      fprintf (stderr, "fakekernel: no syscall in libc: %s\n", dlerror ());
      abort ();
    }
}

FAKE_RAW static long
fake_setup (long entries, struct ev_io_uring_params *p)
{
  long fd;

  if (ev_iouring_test_setup_errno)
    {
      errno = ev_iouring_test_setup_errno;
      return -1;
    }

  if (p->flags & ev_iouring_test_nosetup)
    {
      errno = EINVAL;
      return -1;
    }

  if (ev_iouring_test_setup_max && (unsigned long)entries > ev_iouring_test_setup_max)
    {
      errno = ENOMEM;
      return -1;
    }

  fd = fake_real (EV_SYS_io_uring_setup, entries, p);
  if (fd < 0)
    return fd;

  p->features &= ~ev_iouring_test_nofeat;

  if (fd < FAKE_FDS)
    fake_hidden [fd] = ev_iouring_test_nofeat;

  ev_iouring_test_setup_flags = p->flags;
  ev_iouring_test_features    = p->features;
  ev_iouring_test_sq_entries  = p->sq_entries;
  ev_iouring_test_cq_entries  = p->cq_entries;
  __atomic_add_fetch (&ev_iouring_test_rings, 1, __ATOMIC_RELAXED);

  return fd;
}

FAKE_RAW static long
fake_enter (long fd, long to_submit, long min_complete, long flags, long arg, long argsz)
{
  unsigned int hidden = fd >= 0 && fd < FAKE_FDS ? fake_hidden [fd] : 0;
  int err;

  __atomic_add_fetch (&ev_iouring_test_enters, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&ev_iouring_test_submitted, (unsigned long)to_submit, __ATOMIC_RELAXED);

  err = __atomic_exchange_n (&ev_iouring_test_enter_errno, 0, __ATOMIC_RELAXED);
  if (err)
    {
      errno = err;
      return -1;
    }

  if (((flags & EV_IORING_ENTER_EXT_ARG) && (hidden & EV_IORING_FEAT_EXT_ARG))
      || ((flags & EV_IORING_ENTER_NO_IOWAIT) && (hidden & EV_IORING_FEAT_NO_IOWAIT)))
    {
      __atomic_add_fetch (&ev_iouring_test_hidden_used, 1, __ATOMIC_RELAXED);
      errno = EINVAL;
      return -1;
    }

  return fake_real (EV_SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
}

FAKE_RAW long
syscall (long nr, ...)
{
  va_list ap;
  long a [6];
  int i;

  va_start (ap, nr);
  for (i = 0; i < 6; ++i)
    a [i] = va_arg (ap, long);
  va_end (ap);

  if (!fake_real)
    fake_init ();

  if (nr == EV_SYS_io_uring_setup)
    return fake_setup (a [0], (struct ev_io_uring_params *)a [1]);

  if (nr == EV_SYS_io_uring_enter)
    return fake_enter (a [0], a [1], a [2], a [3], a [4], a [5]);

  return fake_real (nr, a [0], a [1], a [2], a [3], a [4], a [5]);
}
