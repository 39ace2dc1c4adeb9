/*
 * libev linux io_uring fd activity backend
 *
 * Copyright (c) 2026 the ev_iouring developers
 * All rights reserved.
 *
 * Redistribution and use in source and binary forms, with or without modifica-
 * tion, are permitted provided that the following conditions are met:
 *
 *   1.  Redistributions of source code must retain the above copyright notice,
 *       this list of conditions and the following disclaimer.
 *
 *   2.  Redistributions in binary form must reproduce the above copyright
 *       notice, this list of conditions and the following disclaimer in the
 *       documentation and/or other materials provided with the distribution.
 *
 * THIS SOFTWARE IS PROVIDED BY THE AUTHOR ``AS IS'' AND ANY EXPRESS OR IMPLIED
 * WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MER-
 * CHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED.  IN NO
 * EVENT SHALL THE AUTHOR BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPE-
 * CIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
 * PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS;
 * OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY,
 * WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTH-
 * ERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED
 * OF THE POSSIBILITY OF SUCH DAMAGE.
 *
 * Alternatively, the contents of this file may be used under the terms of
 * the GNU General Public License ("GPL") version 2 or any later version,
 * in which case the provisions of the GPL are applicable instead of
 * the above. If you wish to allow the use of your version of this file
 * only under the terms of the GPL and not to allow others to use your
 * version of this file under the BSD license, indicate your decision
 * by deleting the provisions above and replace them with the notice
 * and other provisions required by the GPL. If you do not delete the
 * provisions above, a recipient may use your version of this file under
 * either the BSD or the GPL.
 */

/*
 * general notes about linux io_uring as an fd readiness interface:
 *
 * a) POLL_ADD (5.1) is oneshot. it is our level-triggered core: every
 *    reported fd is re-armed through fd_reify, and the re-arm sqe rides on
 *    the next io_uring_enter, so it costs no syscall. multishot polls
 *    (5.13) are edge-like after the first cqe, and IORING_POLL_ADD_LEVEL
 *    is refused with -EINVAL (6.18), so we do not use them.
 * b) the kernel resolves sqe->fd when the sqe is submitted, not when we
 *    write it, and a pending poll holds a reference to the file: a socket
 *    closed by the user stays open (the peer sees no fin) until its poll
 *    is removed. removals therefore go out with the very next enter.
 * c) POLL_REMOVE matches on user_data (sqe->addr), never on the fd (6.18),
 *    so user_data carries the fd in its low and anfds [fd].egen in its
 *    high 32 bits; each removal bumps egen, stale cqes are dropped.
 * d) io_uring_enter takes a timeout only with IORING_ENTER_EXT_ARG (5.11),
 *    which answers -ETIME when it expires. older kernels wait for a
 *    timerfd that we poll on the ring, as libev 4.33 did.
 * e) with IORING_FEAT_NODROP (5.5) the kernel keeps cqes that do not fit
 *    into the cq ring on a backlog, says so with IORING_SQ_CQ_OVERFLOW in
 *    the *sq* flags (5.8) and flushes it only on enter (GETEVENTS). the cq
 *    "overflow" counter counts only cqes that were really dropped (no
 *    NODROP, or -EBADR since 5.19). a lost cqe means a lost poll: we then
 *    start over with a new ring.
 * f) io_uring_enter returns -EINTR on any signal, even with SA_RESTART.
 * g) the kernel adds POLLERR|POLLHUP (and may add POLLRDHUP|POLLNVAL) to
 *    every poll mask; like epoll we report err/hup to both directions.
 * h) after fork, the child shares the parent's ring memory (MAP_SHARED)
 *    and its fd. a child must never touch it: a MADV_WIPEONFORK page (4.14)
 *    tells us we are in a child even when ev_loop_fork was not called, and
 *    we then build a new ring.
 * i) requests belong to the task that submitted them: when it exits (the
 *    loop ran in a thread that is gone, or the parent of a forked child
 *    exited) its polls complete with -ECANCELED. for a live watcher that
 *    simply means: re-arm.
 * j) io_uring_setup fails with EPERM under container seccomp profiles
 *    (docker >= 25) and kernel.io_uring_disabled (6.6), ENOSYS without
 *    CONFIG_IO_URING, ENOMEM under RLIMIT_MEMLOCK (unprivileged users):
 *    we retry smaller on ENOMEM and otherwise let libev try epoll.
 * k) a thread blocked in io_uring_enter with requests pending counts as
 *    iowait (~6.5 onwards): IORING_ENTER_NO_IOWAIT (6.15) says it should not.
 * n) IORING_SETUP_DEFER_TASKRUN (6.1) is not used. it runs completion work
 *    only inside io_uring_enter, at most 20 items per pass since 6.13
 *    (IO_LOCAL_TW_DEFAULT_MAX), so a burst of a thousand ready fds takes
 *    dozens of enters, or a zero-timeout wait that sleeps for the timer
 *    slack; its ring wakes no epoll on its fd (ev_embed), and it binds the
 *    ring to one thread (SINGLE_ISSUER, -EEXIST elsewhere). measured on
 *    6.18: the one-event pipe chain 15 % faster, a 1000-event chain 35 %
 *    slower. COOP_TASKRUN gives most of the batching without these.
 */

#include "ev_iouring_abi.h"

#include <sys/mman.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <signal.h>

/* a small sq, a much larger cq: every armed poll may complete at once, and
   removing n polls posts n cancellations (a 4x cq made re-arming 9900
   fds 1.5x slower, through the overflow backlog, on 6.18) */
#define EV_IOURING_SQ_ENTRIES 1024
#define EV_IOURING_CQ_FACTOR  16
#define EV_IOURING_SQ_MIN     8

/* user_data with all ones in the fd half is ours, never an fd */
#define IOURING_UDATA_FD_MASK  0xffffffffU
#define IOURING_UDATA_IGNORE   ((((uint64_t)1) << 32) | IOURING_UDATA_FD_MASK)
#define IOURING_UDATA_TIMERFD  ((((uint64_t)2) << 32) | IOURING_UDATA_FD_MASK)
#define IOURING_UDATA_EPOLL    ((((uint64_t)3) << 32) | IOURING_UDATA_FD_MASK)

/* anfds [fd].eflags: the fd is in the epoll set (note l), its poll was renewed (note m) */
#define EV_IOURING_EPOLLED 1
#define EV_IOURING_RENEWED 2
#define EV_IOURING_FRESH   4 /* armed since the last renewal pass: its fd was good then */

/* slots of anfds looked at per iteration for a poll to renew (note m) */
#define EV_IOURING_RENEW_SCAN 8

#define EV_SQES ((struct ev_io_uring_sqe *)iouring_sqes)
#define EV_CQES ((struct ev_io_uring_cqe *)iouring_cqes)

/*****************************************************************************/
/* test hooks: only the test build pretends that the kernel lacks features */

#if EV_IOURING_TEST_HOOKS
/* tests/common.h declares them: masks in, what the last ring got out */
# ifdef __cplusplus
extern "C" {
# endif
unsigned int  ev_iouring_test_nofeat;      /* EV_IORING_FEAT_* hidden from us */
unsigned int  ev_iouring_test_nosetup;     /* EV_IORING_SETUP_* refused with EINVAL */
unsigned int  ev_iouring_test_noregister;  /* 1U << EV_IORING_REGISTER_* refused with EINVAL */
int           ev_iouring_test_setup_errno; /* every io_uring_setup fails with it */
unsigned int  ev_iouring_test_setup_max;   /* more sq entries than this: ENOMEM */
int           ev_iouring_test_enter_errno; /* the next io_uring_enter fails with it */
unsigned int  ev_iouring_test_setup_flags;
unsigned int  ev_iouring_test_features;
unsigned int  ev_iouring_test_sq_entries;
unsigned int  ev_iouring_test_cq_entries;
unsigned long ev_iouring_test_enters;
unsigned long ev_iouring_test_rebuilds;
# ifdef __cplusplus
}
# endif
#endif

/*****************************************************************************/
/* raw syscalls */

inline_size int
evsys_io_uring_setup (unsigned int entries, struct ev_io_uring_params *params)
{
#if EV_IOURING_TEST_HOOKS
  if (ev_iouring_test_setup_errno)
    {
      errno = ev_iouring_test_setup_errno;
      return -1;
    }

  if ((params->flags & ev_iouring_test_nosetup)
      || (ev_iouring_test_setup_max && entries > ev_iouring_test_setup_max))
    {
      errno = params->flags & ev_iouring_test_nosetup ? EINVAL : ENOMEM;
      return -1;
    }
#endif

  return ev_syscall2 (EV_SYS_io_uring_setup, entries, params);
}

inline_size int
evsys_io_uring_enter (int fd, unsigned int to_submit, unsigned int min_complete, unsigned int flags, const void *arg, size_t argsz)
{
#if EV_IOURING_TEST_HOOKS
  ++ev_iouring_test_enters;

  if (ev_iouring_test_enter_errno)
    {
      errno = ev_iouring_test_enter_errno;
      ev_iouring_test_enter_errno = 0;
      return -1;
    }
#endif

  return ev_syscall6 (EV_SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
}

/* 4.33's ev_syscall4 passes only three arguments, so use the six-argument form */
inline_size int
evsys_io_uring_register (int fd, unsigned int opcode, void *arg, unsigned int nr_args)
{
#if EV_IOURING_TEST_HOOKS
  if (opcode < 32 && ev_iouring_test_noregister & (1U << opcode))
    {
      errno = EINVAL;
      return -1;
    }
#endif

  return ev_syscall6 (EV_SYS_io_uring_register, fd, opcode, arg, nr_args, 0, 0);
}

/*****************************************************************************/
/* ring helpers */

/* the kernel reads what we wrote before the tail, and we read its cqes after it */
inline_size unsigned int
iouring_load_acquire (const unsigned int *p)
{
  unsigned int v = *(const volatile unsigned int *)p;
  ECB_MEMORY_FENCE_ACQUIRE; /* the load happens before our reads of the entries */
  return v;
}

inline_size void
iouring_store_release (unsigned int *p, unsigned int v)
{
  ECB_MEMORY_FENCE_RELEASE; /* our writes of the entries happen before the store */
  *(volatile unsigned int *)p = v;
}

/* the kernel's sq flags; the test build hides CQ_OVERFLOW as 5.5 to 5.7 do */
inline_size unsigned int
iouring_sq_flags (EV_P)
{
  unsigned int flags = iouring_load_acquire (iouring_sq_kflags);

#if EV_IOURING_TEST_HOOKS
  if (!(iouring_features & EV_IORING_FEAT_POLL_32BITS))
    flags &= ~EV_IORING_SQ_CQ_OVERFLOW;
#endif

  return flags;
}

/* sqes written but not yet taken by the kernel */
inline_size unsigned int
iouring_sq_pending (EV_P)
{
  return iouring_sq_tail - iouring_load_acquire (iouring_sq_khead);
}

/* were we forked since the ring was made? (MADV_WIPEONFORK zeroes the page) */
inline_size int
iouring_forked (EV_P)
{
  return ecb_expect_false (!*(volatile char *)iouring_fork_guard);
}

/* one syscall: submit what is queued, wait for min_complete cqes */
inline_speed int
iouring_enter (EV_P_ unsigned int min_complete, unsigned int flags, const void *arg, size_t argsz)
{
  unsigned int to_submit = iouring_sq_pending (EV_A);

  iouring_store_release (iouring_sq_ktail, iouring_sq_tail);

  return evsys_io_uring_enter (backend_fd, to_submit, min_complete, flags | iouring_enter_flags, arg, argsz);
}

/* io_uring_enter with a relative timeout (EXT_ARG, note d) */
inline_speed int
iouring_enter_timeout (EV_P_ unsigned int min_complete, ev_tstamp timeout)
{
  struct ev_io_uring_timespec ts;
  struct ev_io_uring_getevents_arg arg;

  ts.tv_sec  = (int64_t)timeout;
  ts.tv_nsec = (int64_t)((timeout - (ev_tstamp)ts.tv_sec) * 1e9);

  arg.sigmask       = 0;
  arg.sigmask_sz    = _NSIG / 8;
  arg.min_wait_usec = 0;
  arg.ts            = (uint64_t)(uintptr_t)&ts;

  return iouring_enter (EV_A_ min_complete, EV_IORING_ENTER_GETEVENTS | EV_IORING_ENTER_EXT_ARG, &arg, sizeof (arg));
}

/* submit, run completion work, wait for nothing */
inline_speed int
iouring_enter_nowait (EV_P)
{
  return iouring_enter (EV_A_ 0, EV_IORING_ENTER_GETEVENTS, 0, 0);
}

/*****************************************************************************/
/* completion */

inline_size int
iouring_poll_to_ev (int res)
{
  return (res & (POLLOUT | POLLERR | POLLHUP) ? EV_WRITE : 0)
       | (res & (POLLIN  | POLLERR | POLLHUP) ? EV_READ  : 0);
}

/* a cqe for one of our own requests (removals, the timerfd) */
ecb_cold static void
iouring_cqe_reserved (EV_P_ const struct ev_io_uring_cqe *cqe)
{
  /* removals answer -ENOENT or -EALREADY when the poll completed first, which is fine */
  if (cqe->user_data == IOURING_UDATA_TIMERFD)
    {
      iouring_tfd_polled = 0;
      iouring_tfd_to     = EV_TSTAMP_HUGE;
    }
  else if (cqe->user_data == IOURING_UDATA_EPOLL)
    {
      struct epoll_event events [64];
      int i, n;

      iouring_epfd_polled = 0;

      n = epoll_wait (iouring_epfd, events, sizeof (events) / sizeof (events [0]), 0);

      for (i = 0; i < n; ++i)
        {
          int fd = (int)events [i].data.u32;

          /* EPOLLIN and friends are POLLIN and friends on linux */
          if (anfds [fd].eflags & EV_IOURING_EPOLLED)
            fd_event (EV_A_ fd, iouring_poll_to_ev ((int)events [i].events));
        }
    }
}

/* a poll completed with nothing the watchers asked for (note l): epoll takes the fd */
ecb_cold static void
iouring_epoll_add (EV_P_ int fd)
{
  struct epoll_event ev;

  if (iouring_epfd < 0)
    iouring_epfd = epoll_create1 (EPOLL_CLOEXEC);

  ev.events   = (anfds [fd].events & EV_READ  ? (uint32_t)EPOLLIN  : 0U)
              | (anfds [fd].events & EV_WRITE ? (uint32_t)EPOLLOUT : 0U);
  ev.data.u64 = (uint64_t)(uint32_t)fd;

  if (iouring_epfd >= 0 && !epoll_ctl (iouring_epfd, EPOLL_CTL_ADD, fd, &ev))
    anfds [fd].eflags |= EV_IOURING_EPOLLED;
  else
    {
      /* no epoll for it: poll it again on the ring, and spin if we must */
      anfds [fd].events = 0;
      fd_change (EV_A_ fd, EV_ANFD_REIFY);
    }
}

/* the fd's watchers changed: it goes back to the ring, which tells again if it must */
ecb_cold static void
iouring_epoll_del (EV_P_ int fd)
{
  struct epoll_event ev; /* pre-2.6.9 kernels want one */

  epoll_ctl (iouring_epfd, EPOLL_CTL_DEL, fd, &ev);
  anfds [fd].eflags &= ~EV_IOURING_EPOLLED;
}

/* a poll failed: the fd is bad (-EBADF) or the kernel gave up on it */
ecb_cold static void
iouring_cqe_error (EV_P_ int fd, int res)
{
  /* a renewed poll of an fd closed without ev_io_stop (note m): forget it, as epoll does */
  if (res == -EBADF && anfds [fd].eflags & EV_IOURING_RENEWED)
    anfds [fd].eflags &= ~EV_IOURING_RENEWED;
  /* -ECANCELED: the submitting task exited (a thread, or a parent after fork): re-arm */
  else if (res == -ECANCELED)
    {
      anfds [fd].events = 0;
      fd_change (EV_A_ fd, EV_ANFD_REIFY);
    }
  else
    fd_kill (EV_A_ fd);
}

inline_speed void
iouring_cqe_process (EV_P_ const struct ev_io_uring_cqe *cqe)
{
  uint64_t ud  = cqe->user_data;
  int      fd  = (int)(ud & IOURING_UDATA_FD_MASK);
  int      res = cqe->res;

  if (ecb_expect_false ((ud & IOURING_UDATA_FD_MASK) == IOURING_UDATA_FD_MASK))
    {
      iouring_cqe_reserved (EV_A_ cqe);
      return;
    }

  assert (("libev: io_uring cqe for fd out of range", fd >= 0 && fd < anfdmax));

  /* a completion of a poll we have removed or replaced since */
  if (ecb_expect_false ((uint32_t)(ud >> 32) != anfds [fd].egen))
    return;

  /* the poll is gone, whatever the result */
  anfds [fd].emask = 0;

  if (ecb_expect_false (res < 0))
    {
      iouring_cqe_error (EV_A_ fd, res);
      return;
    }

  anfds [fd].eflags &= ~EV_IOURING_RENEWED;

  if (ecb_expect_false (!(iouring_poll_to_ev (res) & anfds [fd].events)))
    {
      iouring_epoll_add (EV_A_ fd);
      return;
    }

  fd_event (EV_A_ fd, iouring_poll_to_ev (res));

  /* oneshot: have fd_reify arm it again */
  anfds [fd].events = 0;
  fd_change (EV_A_ fd, EV_ANFD_REIFY);
}

/* returns the number of cqes seen */
inline_speed unsigned int
iouring_cq_reap (EV_P)
{
  unsigned int head = *iouring_cq_khead;
  unsigned int tail = iouring_load_acquire (iouring_cq_ktail);
  unsigned int n    = tail - head;

  if (!n)
    return 0;

  do
    iouring_cqe_process (EV_A_ &EV_CQES [head & iouring_cq_mask]);
  while (++head != tail);

  /* all cqes read before the kernel may reuse their slots */
  iouring_store_release (iouring_cq_khead, head);

  return n;
}

/*****************************************************************************/
/* ring setup and teardown */

/* sets every resource to its sentinel, so destroy works on any partial state */
inline_size void
iouring_internal_reset (EV_P)
{
  iouring_sq_ring    = (char *)MAP_FAILED;
  iouring_cq_ring    = (char *)MAP_FAILED;
  iouring_sqes       = MAP_FAILED;
  iouring_fork_guard = (char *)MAP_FAILED;
  iouring_enter_flags = 0;
  iouring_tfd_polled = 0;
  iouring_tfd_to     = EV_TSTAMP_HUGE;
  iouring_epfd_polled = 0;
}

/* the epoll set of note l): gone with the ring, or shared with the parent after fork */
ecb_cold static void
iouring_epoll_destroy (EV_P)
{
  int fd;

  if (iouring_epfd < 0)
    return;

  close (iouring_epfd);
  iouring_epfd = -1;

  for (fd = 0; fd < anfdmax; ++fd)
    anfds [fd].eflags &= ~EV_IOURING_EPOLLED;
}

/*
 * unmaps and closes the ring; ring_fd < 0 leaves the fd alone (already
 * closed or not ours). the timerfd and the epoll set go with it: they are
 * polled on this ring, and after fork they are shared with the parent.
 */
ecb_cold static void
iouring_internal_destroy (EV_P_ int ring_fd)
{
  if (iouring_sqes != MAP_FAILED)
    munmap (iouring_sqes, iouring_sqes_size);

  if (iouring_cq_ring != MAP_FAILED && iouring_cq_ring != iouring_sq_ring)
    munmap (iouring_cq_ring, iouring_cq_ring_size);

  if (iouring_sq_ring != MAP_FAILED)
    munmap (iouring_sq_ring, iouring_sq_ring_size);

  if (iouring_fork_guard != MAP_FAILED)
    munmap (iouring_fork_guard, 4096);

  if (ring_fd >= 0)
    close (ring_fd);

  if (iouring_tfd >= 0)
    close (iouring_tfd);

  iouring_tfd = -1;
  iouring_epoll_destroy (EV_A);
  iouring_internal_reset (EV_A);
}

/* the optional setup flags, newest first: each is dropped when the kernel says EINVAL */
static const unsigned int iouring_setup_optional [] = {
  EV_IORING_SETUP_NO_SQARRAY,                                    /* 6.6 */
  EV_IORING_SETUP_COOP_TASKRUN | EV_IORING_SETUP_TASKRUN_FLAG,   /* 5.19 */
  EV_IORING_SETUP_SUBMIT_ALL,                                    /* 5.18 */
  EV_IORING_SETUP_CLAMP,                                         /* 5.6 */
  EV_IORING_SETUP_CQSIZE,                                        /* 5.5 */
};

/* returns the ring fd, or -1 with errno set */
ecb_cold static int
iouring_ring_create (EV_P_ struct ev_io_uring_params *params)
{
  unsigned int entries = iouring_entries;
  unsigned int flags   = EV_IORING_SETUP_CQSIZE | EV_IORING_SETUP_CLAMP | EV_IORING_SETUP_SUBMIT_ALL
                       | EV_IORING_SETUP_COOP_TASKRUN | EV_IORING_SETUP_TASKRUN_FLAG | EV_IORING_SETUP_NO_SQARRAY;
  unsigned int i = 0;

  for (;;)
    {
      int fd;

      memset (params, 0, sizeof (*params));
      params->flags      = flags;
      params->cq_entries = entries * EV_IOURING_CQ_FACTOR;

      fd = evsys_io_uring_setup (entries, params);

      if (fd >= 0)
        {
          iouring_entries = entries;
          return fd;
        }

      if (errno == EINVAL && i < sizeof (iouring_setup_optional) / sizeof (iouring_setup_optional [0]))
        flags &= ~iouring_setup_optional [i++]; /* an older kernel */
      else if (errno == ENOMEM && entries > EV_IOURING_SQ_MIN)
        entries >>= 1; /* locked memory limit */
      else
        return -1;
    }
}

ecb_cold static void *
iouring_mmap (int fd, size_t len, uint64_t off)
{
  return mmap (0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, (off_t)off);
}

/* returns the ring fd, or -1 with errno set and nothing left behind */
ecb_cold static int
iouring_internal_init (EV_P)
{
  struct ev_io_uring_params params;
  int fd;

  iouring_internal_reset (EV_A);

  /* see note h) */
  iouring_fork_guard = (char *)mmap (0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (iouring_fork_guard == MAP_FAILED || madvise (iouring_fork_guard, 4096, MADV_WIPEONFORK) < 0)
    {
      iouring_internal_destroy (EV_A_ -1);
      return -1;
    }

  *iouring_fork_guard = 1;

  fd = iouring_ring_create (EV_A_ &params);
  if (fd < 0)
    {
      iouring_internal_destroy (EV_A_ -1);
      return -1;
    }

#if EV_IOURING_TEST_HOOKS
  params.features &= ~ev_iouring_test_nofeat;
#endif

  iouring_features    = params.features;
  iouring_setup_flags = params.flags;

  iouring_sq_ring_size = params.sq_off.array + params.sq_entries * sizeof (unsigned int);
  if (params.flags & EV_IORING_SETUP_NO_SQARRAY)
    iouring_sq_ring_size = params.sq_off.array ? params.sq_off.array : params.cq_off.cqes;
  iouring_cq_ring_size = params.cq_off.cqes + params.cq_entries * sizeof (struct ev_io_uring_cqe);
  iouring_sqes_size    = params.sq_entries * sizeof (struct ev_io_uring_sqe);

  /* 5.4: one mmap covers both rings */
  if (iouring_features & EV_IORING_FEAT_SINGLE_MMAP)
    {
      if (iouring_cq_ring_size > iouring_sq_ring_size)
        iouring_sq_ring_size = iouring_cq_ring_size;

      iouring_sq_ring = (char *)iouring_mmap (fd, iouring_sq_ring_size, EV_IORING_OFF_SQ_RING);
      iouring_cq_ring = iouring_sq_ring;
    }
  else
    {
      iouring_sq_ring = (char *)iouring_mmap (fd, iouring_sq_ring_size, EV_IORING_OFF_SQ_RING);
      iouring_cq_ring = (char *)iouring_mmap (fd, iouring_cq_ring_size, EV_IORING_OFF_CQ_RING);
    }

  iouring_sqes = iouring_mmap (fd, iouring_sqes_size, EV_IORING_OFF_SQES);

  if (iouring_sq_ring == MAP_FAILED || iouring_cq_ring == MAP_FAILED || iouring_sqes == MAP_FAILED)
    {
      int err = errno;
      iouring_internal_destroy (EV_A_ fd);
      errno = err;
      return -1;
    }

  iouring_sq_khead     = (unsigned int *)(iouring_sq_ring + params.sq_off.head);
  iouring_sq_ktail     = (unsigned int *)(iouring_sq_ring + params.sq_off.tail);
  iouring_sq_kflags    = (unsigned int *)(iouring_sq_ring + params.sq_off.flags);
  iouring_sq_mask      = *(unsigned int *)(iouring_sq_ring + params.sq_off.ring_mask);
  iouring_sq_entries   = *(unsigned int *)(iouring_sq_ring + params.sq_off.ring_entries);
  iouring_sq_tail      = *iouring_sq_ktail;

  iouring_cq_khead     = (unsigned int *)(iouring_cq_ring + params.cq_off.head);
  iouring_cq_ktail     = (unsigned int *)(iouring_cq_ring + params.cq_off.tail);
  iouring_cq_koverflow = (unsigned int *)(iouring_cq_ring + params.cq_off.overflow);
  iouring_cq_mask      = *(unsigned int *)(iouring_cq_ring + params.cq_off.ring_mask);
  iouring_cq_entries   = *(unsigned int *)(iouring_cq_ring + params.cq_off.ring_entries);
  iouring_cq_overflow  = *iouring_cq_koverflow;
  iouring_cqes         = iouring_cq_ring + params.cq_off.cqes;

  /* without NO_SQARRAY (6.6) the kernel reads sqe indices from an array: make it the identity, once */
  if (!(params.flags & EV_IORING_SETUP_NO_SQARRAY))
    {
      unsigned int *array = (unsigned int *)(iouring_sq_ring + params.sq_off.array);
      unsigned int i;

      for (i = 0; i < iouring_sq_entries; ++i)
        array [i] = i;
    }

  /* 6.15: waiting for readiness is not waiting for io (see note k) */
  if (iouring_features & EV_IORING_FEAT_NO_IOWAIT)
    iouring_enter_flags |= EV_IORING_ENTER_NO_IOWAIT;

#if EV_IOURING_TEST_HOOKS
  ev_iouring_test_setup_flags = iouring_setup_flags;
  ev_iouring_test_features    = iouring_features;
  ev_iouring_test_sq_entries  = iouring_sq_entries;
  ev_iouring_test_cq_entries  = iouring_cq_entries;
#endif

  if (getenv ("LIBEV_IOURING_VERBOSE"))
    fprintf (stderr, "libev: io_uring ring fd %d: sq %u cq %u, features 0x%x, setup flags 0x%x, using%s%s%s%s%s%s\n",
             fd, iouring_sq_entries, iouring_cq_entries, iouring_features, iouring_setup_flags,
             iouring_features & EV_IORING_FEAT_EXT_ARG ? " ext_arg" : " timerfd",
             iouring_features & EV_IORING_FEAT_NODROP ? " nodrop" : "",
             iouring_features & EV_IORING_FEAT_CQE_SKIP ? " cqe_skip" : "",
             iouring_setup_flags & EV_IORING_SETUP_COOP_TASKRUN ? " coop_taskrun" : "",
             iouring_setup_flags & EV_IORING_SETUP_NO_SQARRAY ? " no_sqarray" : "",
             iouring_enter_flags & EV_IORING_ENTER_NO_IOWAIT ? " no_iowait" : "");

  return fd;
}

/*****************************************************************************/
/* fallback: new rings and the switch to epoll */

ecb_cold static void
iouring_switch_to_epoll (EV_P_ int ring_fd)
{
  if (getenv ("LIBEV_IOURING_VERBOSE"))
    fprintf (stderr, "libev: io_uring unusable (%s), switching to epoll\n", strerror (errno));

  iouring_internal_destroy (EV_A_ ring_fd);

  for (;;)
    {
      backend = epoll_init (EV_A_ 0);

      if (backend)
        break;

      ev_syserr ("(libev) io_uring switch to epoll");
    }

  fd_rearm_all (EV_A);
}

/*
 * a new ring replacing the old one, and every fd armed again. ring_fd is
 * the old ring's fd, closed here, or -1 when it is not ours to close.
 */
ecb_cold static void
iouring_rebuild (EV_P_ int ring_fd)
{
  int fd;

#if EV_IOURING_TEST_HOOKS
  ++ev_iouring_test_rebuilds;
#endif

  iouring_internal_destroy (EV_A_ ring_fd);
  backend_fd = -1;

  fd = iouring_internal_init (EV_A);

  if (fd < 0)
    {
      iouring_switch_to_epoll (EV_A_ -1);
      return;
    }

  backend_fd = fd;
  fd_rearm_all (EV_A);
}

/* io_uring_enter failed: returns with the cq still worth reaping */
ecb_cold static void
iouring_enter_error (EV_P)
{
  switch (errno)
    {
      case EINTR:  /* a signal, see note f) */
      case ETIME:  /* the timeout expired, see note d) */
      case EAGAIN: /* no memory for requests right now: the sqes stay queued */
      case EBUSY:  /* cq backlog full: reaping makes room, the sqes stay queued */
        break;

      case EBADR: /* cqes were lost (5.19), so were polls: start over */
        iouring_rebuild (EV_A_ backend_fd);
        break;

      case EBADF: /* the ring fd was closed behind our back, or is not ours any more */
      case EOPNOTSUPP:
        iouring_rebuild (EV_A_ -1);
        break;

      default:
        iouring_switch_to_epoll (EV_A_ backend_fd);
        break;
    }
}

/*****************************************************************************/
/* submission */

/* the sq is full: hand it to the kernel now, the rare case */
ecb_noinline ecb_cold static void
iouring_sq_flush (EV_P)
{
  int tries;

  for (tries = 0; iouring_sq_pending (EV_A) >= iouring_sq_entries; ++tries)
    {
      /* the kernel keeps refusing (EAGAIN, EBUSY): give up on it */
      if (tries == 1000)
        {
          errno = EAGAIN;
          iouring_switch_to_epoll (EV_A_ backend_fd);
        }
      else if (iouring_enter_nowait (EV_A) < 0)
        iouring_enter_error (EV_A);

      if (backend != EVBACKEND_IOURING)
        return;

      iouring_cq_reap (EV_A);
    }
}

/* a zeroed sqe: the kernel rejects leftover fields of reused ones */
inline_speed struct ev_io_uring_sqe *
iouring_sqe_get (EV_P)
{
  struct ev_io_uring_sqe *sqe;

  if (ecb_expect_false (iouring_sq_pending (EV_A) >= iouring_sq_entries))
    {
      iouring_sq_flush (EV_A);

      if (backend != EVBACKEND_IOURING)
        return 0;
    }

  sqe = &EV_SQES [iouring_sq_tail & iouring_sq_mask];
  memset (sqe, 0, sizeof (*sqe));
  ++iouring_sq_tail;

  return sqe;
}

inline_size uint64_t
iouring_fd_udata (EV_P_ int fd)
{
  return (uint64_t)(uint32_t)fd | ((uint64_t)anfds [fd].egen << 32);
}

inline_size uint32_t
iouring_poll_mask (int events)
{
  uint32_t mask = (events & EV_READ ? POLLIN : 0) | (events & EV_WRITE ? POLLOUT : 0);

#if ECB_BIG_ENDIAN
  /* 5.9 reads 32 bit masks half-word swapped on big endian, older kernels the first 16 bits */
  mask = (mask << 16) | (mask >> 16);
#endif

  return mask;
}

inline_speed void
iouring_prep_poll_add (struct ev_io_uring_sqe *sqe, int fd, uint32_t mask, uint64_t user_data)
{
  sqe->opcode        = EV_IORING_OP_POLL_ADD;
  sqe->fd            = fd;
  sqe->poll32_events = mask;
  sqe->user_data     = user_data;
}

inline_speed void
iouring_prep_poll_remove (EV_P_ struct ev_io_uring_sqe *sqe, uint64_t target)
{
  sqe->opcode    = EV_IORING_OP_POLL_REMOVE;
  sqe->fd        = -1;
  sqe->addr      = target;
  sqe->user_data = IOURING_UDATA_IGNORE;

  /* 5.17: no cqe when the removal worked */
  if (iouring_features & EV_IORING_FEAT_CQE_SKIP)
    sqe->flags = EV_IOSQE_CQE_SKIP_SUCCESS;
}

/* after fork: the child's copy of the parent's ring fd is ours to close, the parent keeps its own */
ecb_cold static void
iouring_fork_rebuild (EV_P)
{
  iouring_rebuild (EV_A_ backend_fd);
}

/*
 * when the ring goes away under us (fork detected, a kernel refusal), the
 * new ring or epoll gets every fd from fd_rearm_all, this one included:
 * nothing more to do here then.
 */
static void
iouring_modify (EV_P_ int fd, int oev, int nev)
{
  struct ev_io_uring_sqe *sqe;

  (void)oev; /* anfds [fd].emask says what the kernel has */

  if (ecb_expect_false (iouring_forked (EV_A)))
    {
      iouring_fork_rebuild (EV_A);
      return;
    }

  if (ecb_expect_false (anfds [fd].eflags & EV_IOURING_EPOLLED))
    iouring_epoll_del (EV_A_ fd);

  anfds [fd].eflags &= ~EV_IOURING_RENEWED;

  /* an armed poll: remove it, whether the events changed or the fd was re-set (oev == nev) */
  if (anfds [fd].emask)
    {
      sqe = iouring_sqe_get (EV_A);
      if (ecb_expect_false (!sqe))
        return;

      iouring_prep_poll_remove (EV_A_ sqe, iouring_fd_udata (EV_A_ fd));
      anfds [fd].emask = 0;
    }

  /* a new generation for every new poll: cqes of older ones are stale */
  ++anfds [fd].egen;

  if (nev)
    {
      sqe = iouring_sqe_get (EV_A);
      if (ecb_expect_false (!sqe))
        return;

      iouring_prep_poll_add (sqe, fd, iouring_poll_mask (nev), iouring_fd_udata (EV_A_ fd));
      anfds [fd].emask   = nev;
      anfds [fd].eflags |= EV_IOURING_FRESH;
    }
}

/*****************************************************************************/
/* timeouts */

/*
 * kernels without IORING_FEAT_EXT_ARG (< 5.11): a timerfd, polled on the
 * ring. it is only set when the wanted expiry is earlier than the one it
 * has (a later wakeup is harmless, libev just loops), so most waits need
 * no extra syscall.
 */
ecb_cold static void
iouring_tfd_update (EV_P_ ev_tstamp timeout)
{
  ev_tstamp to = mn_now + timeout;

  if (iouring_tfd < 0)
    {
      iouring_tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

      if (iouring_tfd < 0)
        return; /* we wake up early and poll again: correct, if wasteful */
    }

  if (!iouring_tfd_polled)
    {
      struct ev_io_uring_sqe *sqe = iouring_sqe_get (EV_A);

      if (!sqe)
        return;

      iouring_prep_poll_add (sqe, iouring_tfd, iouring_poll_mask (EV_READ), IOURING_UDATA_TIMERFD);
      iouring_tfd_polled = 1;
    }

  if (to < iouring_tfd_to)
    {
      struct itimerspec its;

      /* relative, so it does not matter which clock libev's mn_now uses; zero would disarm it */
      its.it_value.tv_sec     = (time_t)timeout;
      its.it_value.tv_nsec    = (long)((timeout - (ev_tstamp)its.it_value.tv_sec) * 1e9);
      if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
        its.it_value.tv_nsec  = 1;
      its.it_interval.tv_sec  = 0;
      its.it_interval.tv_nsec = 0;

      if (timerfd_settime (iouring_tfd, 0, &its, 0) == 0)
        iouring_tfd_to = to;
    }
}

/*
 * the one syscall of an iteration: submit and wait up to timeout for one
 * cqe more than the ignored ones we know will come (of a renewal, note m)
 */
inline_speed int
iouring_enter_wait (EV_P_ ev_tstamp timeout, unsigned int ignored)
{
  if (timeout <= 0.)
    return iouring_enter_nowait (EV_A);

  if (ecb_expect_true (iouring_features & EV_IORING_FEAT_EXT_ARG))
    return iouring_enter_timeout (EV_A_ 1 + ignored, timeout);

  iouring_tfd_update (EV_A_ timeout);

  return iouring_enter (EV_A_ 1 + ignored, EV_IORING_ENTER_GETEVENTS, 0, 0);
}

/*
 * note m): remove and re-add the next armed poll, so the kernel looks the
 * fd up again. returns the number of cqes this will post for nothing: the
 * cancelled poll's, and the removal's own without CQE_SKIP (5.17)
 */
inline_speed unsigned int
iouring_renew_step (EV_P)
{
  int i;

  for (i = EV_IOURING_RENEW_SCAN; i--; )
    {
      int fd = iouring_renew_fd++;

      if (ecb_expect_false (fd >= anfdmax))
        {
          iouring_renew_fd = 0;
          return 0;
        }

      /* a first -EBADF is the user's bad fd, and must reach the watcher */
      if (anfds [fd].eflags & EV_IOURING_FRESH)
        anfds [fd].eflags &= ~EV_IOURING_FRESH;
      else if (anfds [fd].emask)
        {
          int events = anfds [fd].emask;

          iouring_modify (EV_A_ fd, events, events);
          anfds [fd].eflags |= EV_IOURING_RENEWED;
          return iouring_features & EV_IORING_FEAT_CQE_SKIP ? 1 : 2;
        }
    }

  return 0;
}

/*****************************************************************************/
/* poll, init, destroy, fork */

static void
iouring_poll (EV_P_ ev_tstamp timeout)
{
  unsigned int sq_flags, ignored = 0;
  int idle;

  /* the new ring, or epoll, has fds to arm first: fd_reify does that next iteration */
  if (ecb_expect_false (iouring_forked (EV_A)))
    {
      iouring_fork_rebuild (EV_A);
      return;
    }

  /* the epoll set of note l) is polled like any fd, level-triggered through re-arming */
  if (ecb_expect_false (iouring_epfd >= 0 && !iouring_epfd_polled))
    {
      struct ev_io_uring_sqe *sqe = iouring_sqe_get (EV_A);

      if (!sqe)
        return;

      iouring_prep_poll_add (sqe, iouring_epfd, iouring_poll_mask (EV_READ), IOURING_UDATA_EPOLL);
      iouring_epfd_polled = 1;
    }

  sq_flags = iouring_sq_flags (EV_A);

  /* events already waiting, or fds to arm (fd_reify ran before us), mean no blocking */
  if (iouring_cq_reap (EV_A) || fdchangecnt)
    timeout = 0.;

  /*
   * nothing to submit, nothing to wait for, no backlog, no task work: no
   * syscall. 5.5 to 5.7 keep a backlog but no flag says so (5.8 added
   * IORING_SQ_CQ_OVERFLOW); the first feature bit after it, POLL_32BITS
   * (5.9), tells the kernels apart, so 5.8 counts as older.
   */
  idle = timeout <= 0.
         && !iouring_sq_pending (EV_A)
         && !(sq_flags & (EV_IORING_SQ_CQ_OVERFLOW | EV_IORING_SQ_TASKRUN))
         && (iouring_features & (EV_IORING_FEAT_POLL_32BITS | EV_IORING_FEAT_NODROP)) != EV_IORING_FEAT_NODROP;

  if (++iouring_polls & 15 && idle)
    return;

  /*
   * note m): a renewal rides on a syscall we make anyway, one in 16 idle
   * or blocking and 64 busy polls (each costs two sqes and a cqe), and
   * only while no completion is on its way: renewing a poll that fired
   * but has not posted its cqe gains nothing, and once lost an event in
   * test_embed that we could not reproduce.
   */
  if (!(iouring_polls & (idle || timeout > 0. ? 15 : 63))
      && !(sq_flags & (EV_IORING_SQ_CQ_OVERFLOW | EV_IORING_SQ_TASKRUN)))
    {
      ignored = iouring_renew_step (EV_A);

      if (ecb_expect_false (backend != EVBACKEND_IOURING))
        return;
    }

  if (idle && !iouring_sq_pending (EV_A))
    return;

  if (timeout > 0.)
    EV_RELEASE_CB;

  if (ecb_expect_false (iouring_enter_wait (EV_A_ timeout, ignored) < 0))
    {
      if (timeout > 0.)
        EV_ACQUIRE_CB;

      iouring_enter_error (EV_A);

      if (backend != EVBACKEND_IOURING)
        return;
    }
  else if (timeout > 0.)
    EV_ACQUIRE_CB;

  iouring_cq_reap (EV_A);

  /* the backlog (note e) is flushed only by an enter: one more round when it is there */
  if (ecb_expect_false (iouring_sq_flags (EV_A) & EV_IORING_SQ_CQ_OVERFLOW))
    {
      if (iouring_enter_nowait (EV_A) < 0)
        iouring_enter_error (EV_A);

      if (backend == EVBACKEND_IOURING)
        iouring_cq_reap (EV_A);
    }

  /* cqes lost without NODROP (< 5.5): their polls are lost too */
  if (ecb_expect_false (backend == EVBACKEND_IOURING && *iouring_cq_koverflow != iouring_cq_overflow))
    iouring_rebuild (EV_A_ backend_fd);
}

inline_size int
iouring_init (EV_P_ int flags)
{
  int fd;

  (void)flags;

  iouring_tfd     = -1;
  iouring_epfd    = -1;
  iouring_renew_fd = 0;
  iouring_polls   = 0;
  iouring_entries = EV_IOURING_SQ_ENTRIES;

  fd = iouring_internal_init (EV_A);
  if (fd < 0)
    {
      if (getenv ("LIBEV_IOURING_VERBOSE"))
        fprintf (stderr, "libev: io_uring unavailable (%s), trying the next backend\n", strerror (errno));

      return 0;
    }

  backend_fd      = fd;
  backend_mintime = EV_TS_CONST (1e-6); /* hrtimer waits, from ext_arg and timerfd alike */
  backend_modify  = iouring_modify;
  backend_poll    = iouring_poll;

  return EVBACKEND_IOURING;
}

/* ev.c closed backend_fd already */
inline_size void
iouring_destroy (EV_P)
{
  iouring_internal_destroy (EV_A_ -1);
}

ecb_cold static void
iouring_fork (EV_P)
{
  iouring_fork_rebuild (EV_A);
}
