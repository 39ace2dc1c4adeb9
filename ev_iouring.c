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
 *    is removed (all kernels to 6.18). removals therefore go out with the
 *    very next enter, polls left idle move to epoll (note l), ev_run
 *    submits removals before it returns and destroy removes every poll
 *    before it closes the ring (note m).
 * c) POLL_REMOVE matches on user_data (sqe->addr), never on the fd (6.18),
 *    so user_data carries the fd in its low 32 bits and anfds [fd].egen
 *    in the next 29 (the top three mark requests on the id set, note r);
 *    each removal bumps egen, stale cqes are dropped.
 * d) io_uring_enter takes a timeout only with IORING_ENTER_EXT_ARG (5.11),
 *    which answers -ETIME when it expires. older kernels wait for a
 *    timerfd that we poll on the ring, as libev 4.33 did; without a
 *    timerfd (EMFILE) we wait in poll () on the ring fd instead. like
 *    epoll_wait, the wait is rounded up to whole milliseconds, so timers
 *    due within a millisecond of each other share one wakeup.
 * e) with IORING_FEAT_NODROP (5.5) the kernel keeps cqes that do not fit
 *    into the cq ring on a backlog, says so with IORING_SQ_CQ_OVERFLOW in
 *    the *sq* flags (5.8) and flushes it only on enter (GETEVENTS). the cq
 *    "overflow" counter counts only cqes that were really dropped (no
 *    NODROP, or -EBADR since 5.19). a lost cqe means a lost poll: we then
 *    start over with a new ring.
 * f) io_uring_enter returns -EINTR on any signal, even with SA_RESTART.
 * g) the kernel adds POLLERR|POLLHUP (and may add POLLRDHUP|POLLNVAL) to
 *    every poll mask; like epoll we report err/hup to both directions.
 * h) after fork, the child shares the parent's ring memory (MAP_SHARED),
 *    its fd and the epoll set of note l. a child must never touch them: a
 *    MADV_WIPEONFORK page (4.14) tells us we are in a child even when
 *    ev_loop_fork was not called, and we then build a new ring.
 * i) requests belong to the task that submitted them: when it exits (the
 *    loop ran in a thread that is gone, or the parent of a forked child
 *    exited) its polls complete with -ECANCELED (6.18: only when they
 *    fire, a few milliseconds late). for a live watcher that means: re-arm.
 * j) io_uring_setup fails with EPERM under container seccomp profiles
 *    (docker >= 25) and kernel.io_uring_disabled (6.6), ENOSYS without
 *    CONFIG_IO_URING, and ENOMEM when the ring does not fit under
 *    RLIMIT_MEMLOCK. unprivileged users are charged the ring's pages
 *    before 5.12 and again from 6.14 (rings became "regions") until
 *    7.2.11/7.3 ("io_uring: do not charge the SQ/CQ rings to
 *    RLIMIT_MEMLOCK"); 5.12 to 6.13, and debian's 5.10 (its io_uring is
 *    5.15's), charge nothing (measured as nobody on debian's 5.10.223,
 *    6.1.176, 6.12.117, 6.18.44 and 7.2.13). 6.18 returns the charge only
 *    when its ring cleanup work has run, 20 to 60 ms after close. so rings start
 *    small (16 sqes, 64 cqes: two or three pages) and grow by doubling
 *    when the loop wants more polls armed than the cq holds (until then
 *    the polls beyond it wait for the new ring: arming them on the old one
 *    would cost a removal each, and a small ring's poll hash has two
 *    buckets), and when an iteration changes more fds than the sq holds
 *    (a one-off burst, re-arming every fd or a sweep, is just flushed).
 *    ENOMEM at setup is retried smaller, then after short sleeps (a
 *    quarter second in all), before libev is told to try epoll.
 * k) a thread blocked in io_uring_enter with requests pending counts as
 *    iowait (~6.5 onwards): IORING_ENTER_NO_IOWAIT (6.15) says it should not.
 * l) two tiers. a poll that stays armed and idle for a sweep period (0.4 s
 *    to 0.8 s) is removed and its fd put into an epoll set, which is
 *    itself polled on the ring, and which holds no reference to the file:
 *    a socket closed without ev_io_stop reaches the peer as eof within
 *    0.8 s, whatever its fd number and however many fds are armed, and an
 *    idle loop with a thousand idle connections costs nothing per
 *    iteration. polls that complete with nothing the watchers asked for
 *    move there at once: POLLRDHUP wakes every poll (6.18), so an EV_WRITE
 *    watcher on a full socket whose peer shut down its side would spin.
 *    an epoll item is keyed by file: when its fd was closed while a dup
 *    keeps the file alive, EPOLL_CTL_DEL fails with EBADF and the item
 *    stays; its events then carry a stale generation, and the set is
 *    built anew from our fds. an fd whose watchers change goes back to
 *    the ring, and so does an fd that fires alone: a busy fd in the set
 *    would cost an epoll_wait per wakeup (a server socket idle at
 *    start-up), one on the ring nothing, and the move is one epoll_ctl.
 *    fds the set reports together share their epoll_wait, and stay: many
 *    connections, each idle between requests, would otherwise pay two
 *    epoll_ctl per request. a move to the set is checked first (note r).
 * m) ev_io_stop only queues the change: 4.33's ev_run returns (ev_break,
 *    EVRUN_ONCE) without submitting it, so a removal that releases a file
 *    is submitted by iouring_run_exit, which our ev.c patch calls when
 *    ev_run returns; iouring_destroy removes every armed poll before it
 *    closes the ring, because a forked child may hold the ring fd, and
 *    the ring, with all the files its polls hold, lives until it exits.
 * n) IORING_SETUP_DEFER_TASKRUN (6.1) is not used. it runs completion work
 *    only inside io_uring_enter, at most 20 items per pass since 6.13
 *    (IO_LOCAL_TW_DEFAULT_MAX), so a burst of a thousand ready fds takes
 *    dozens of enters, or a zero-timeout wait that sleeps for the timer
 *    slack; its ring wakes no epoll on its fd (ev_embed), and it binds the
 *    ring to one thread (SINGLE_ISSUER, -EEXIST elsewhere). measured on
 *    6.18: the one-event pipe chain 15 % faster, a 1000-event chain 35 %
 *    slower. COOP_TASKRUN gives most of the batching without these.
 * o) kernel refusals (an enter failing with anything but EINTR, ETIME,
 *    EAGAIN or EBUSY, lost cqes, a ring fd closed behind our back) and
 *    the wish for a bigger ring are only remembered where they happen;
 *    the start of iouring_poll deals with them, as ev_linuxaio.c does:
 *    nothing below iouring_poll replaces the ring or the backend. a new
 *    ring, or epoll, takes over backend_fd's number (dup2), and ev_embed
 *    (our ev.c patch) starts watching the new file behind it.
 * p) a POLL_ADD completes with the mask of the wakeup, not a fresh look
 *    at the file (io_poll_wake keeps the key; all kernels to 7.2), and
 *    before 6.14 pipe_read woke writers with EPOLLOUT whenever the pipe
 *    was full as the read began, even when a 1-byte read freed no slot
 *    (6.14: "pipe_read: don't wake up the writer if the pipe is still
 *    full"): on debian's 5.10, 6.1 and 6.12 POLLOUT on a full pipe is
 *    reported while poll (), epoll and write () still say it is full.
 *    libev allows such spurious readiness (a write then says EAGAIN), so
 *    we pass it on rather than pay a poll () for every completion.
 * q) io_uring_enter is not a cancellation point, epoll_wait is: a blocking
 *    wait enables asynchronous cancellation, as libc does for its own
 *    blocking syscalls, so pthread_cancel ends a thread idle in ev_run.
 * r) a poll is armed by fd number, and after its event it must be armed
 *    again: a callback may have closed the fd without ev_io_stop, and the
 *    number may be another file by then (a pipe, an accepted socket), for
 *    which epoll would never call the dead watcher: its item was keyed by
 *    the closed file. only an epoll item is keyed by the file without
 *    holding it, so every fd, when fd_reify arms it after ev_io_set (our
 *    ev.c patch says when) or for the first time, also gets an item in a
 *    second epoll set that is never waited on (the id set), and every
 *    re-arm is an EPOLL_CTL_MOD of that item in the sqe before the
 *    POLL_ADD (IORING_OP_EPOLL_CTL, 5.6: no syscall). when the number is
 *    closed (-EBADF) or another file (-ENOENT: epoll looks items up by
 *    file and number), the fd is forgotten, as epoll forgets it, and the
 *    POLL_ADD, which found that file, is removed, its cqe stale. (linked,
 *    IOSQE_IO_LINK, the kernel would cancel it, but a linked request is
 *    issued from task work: the one-event chain 10 % slower on 6.18.) a
 *    re-arm is checked only once the EPOLL_CTL_ADD has answered (an ADD
 *    of an epoll fd may be punted to a kernel thread: epnested_mutex);
 *    files epoll refuses (EPERM: regular files, always ready) are
 *    re-armed unchecked, as are all fds without IORING_OP_EPOLL_CTL
 *    (< 5.6). moves to the epoll set of note l, a new ring and the switch
 *    to epoll check the same item with a syscall. re-arms are our own
 *    list, not fd_reify's: fd_reify calls iouring_modify only when the
 *    watchers changed, as it calls epoll_modify, so a watcher started
 *    anew on a reused number is armed for the new file (and the dead one
 *    is called with it, as with epoll). the cost: an id item (an epitem,
 *    ~150 bytes of kernel memory, and a wait queue entry on the file) per
 *    fd, one EPOLL_CTL per ev_io_set and per re-arm; docs/benchmarks.md.
 */

#include "ev_iouring_abi.h"

#include <sys/mman.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

/* ring size: sq entries from min to max, cq EV_IOURING_CQ_FACTOR times that (note j) */
#define EV_IOURING_SQ_MIN    16
#define EV_IOURING_SQ_MAX    4096
#define EV_IOURING_CQ_FACTOR 4

/* seconds an idle poll keeps its file, at least once and at most twice (note l) */
#define EV_IOURING_SWEEP 0.4

/* user_data with all ones in the fd half is ours, never an fd */
#define IOURING_UDATA_FD_MASK  0xffffffffU
#define IOURING_UDATA_IGNORE   ((((uint64_t)1) << 32) | IOURING_UDATA_FD_MASK)
#define IOURING_UDATA_TIMERFD  ((((uint64_t)2) << 32) | IOURING_UDATA_FD_MASK)
#define IOURING_UDATA_EPOLL    ((((uint64_t)3) << 32) | IOURING_UDATA_FD_MASK)

/* the top bits of a user_data with an fd: an EPOLL_CTL on the id set (note r), and which */
#define IOURING_UDATA_ID       (((uint64_t)1) << 63)
#define IOURING_UDATA_ID_ADD   (((uint64_t)1) << 62)
#define IOURING_UDATA_REBOUND  (((uint64_t)1) << 61) /* a check after EV_IOURING_REBOUND */
#define IOURING_UDATA_GEN_MASK 0x1fffffffU

/* anfds [fd].eflags */
#define EV_IOURING_EPOLLED 1 /* in the epoll set, not on the ring (note l) */
#define EV_IOURING_FRESH   2 /* its poll was armed since the last sweep */
#define EV_IOURING_REARM   4 /* its poll re-arms it after an event: -EBADF is the user's close */
#define EV_IOURING_QUEUED  8 /* in iouring_rearms, armed again at the next poll (note r) */
#define EV_IOURING_ID      16 /* its item in the id set was added (note r): re-arms are checked */
#define EV_IOURING_REBOUND 32 /* started again without ev_io_set: its next check may find a file reopened (note r) */

/* iouring_state */
#define EV_IOURING_TFD_POLLED  1  /* the timerfd's poll is armed */
#define EV_IOURING_EPFD_POLLED 2  /* the epoll set's poll is armed */
#define EV_IOURING_REAPED      4  /* cqes were reaped while the sq was flushed */
#define EV_IOURING_GROW        8  /* the ring is too small: a bigger one at the next poll */
#define EV_IOURING_NOGROW      16 /* no bigger ring to be had (RLIMIT_MEMLOCK) */
#define EV_IOURING_EPOLL_STALE 32 /* the epoll set holds files that are not ours */
#define EV_IOURING_VERBOSE     64 /* LIBEV_IOURING_VERBOSE */
#define EV_IOURING_FD_REPLACED 128 /* a new file behind backend_fd, for ev_embed (note o) */
#define EV_IOURING_ONE_OFF     256 /* a one-off burst of sqes (a sweep, a re-arm of all): a full sq is no reason to grow */

#define EV_SQES ((struct ev_io_uring_sqe *)iouring_sqes)
#define EV_CQES ((struct ev_io_uring_cqe *)iouring_cqes)

/*****************************************************************************/
/* raw syscalls */

inline_size int
evsys_io_uring_setup (unsigned int entries, struct ev_io_uring_params *params)
{
  return ev_syscall2 (EV_SYS_io_uring_setup, entries, params);
}

/* 4.33's ev_syscall4 passes only three arguments, so use the six-argument form */
inline_size int
evsys_io_uring_enter (int fd, unsigned int to_submit, unsigned int min_complete, unsigned int flags, const void *arg, size_t argsz)
{
  return ev_syscall6 (EV_SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
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

/*
 * the kernel's sq flags. 5.5 to 5.7 keep a cq backlog but no flag says so
 * (5.8 added IORING_SQ_CQ_OVERFLOW); the first feature bit after it,
 * POLL_32BITS (5.9), tells the kernels apart, so 5.8 counts as older and
 * its flag is not trusted: such kernels always enter (iouring_poll).
 */
inline_size unsigned int
iouring_sq_flags (EV_P)
{
  unsigned int flags = iouring_load_acquire (iouring_sq_kflags);

  if (ecb_expect_false (!(iouring_features & EV_IORING_FEAT_POLL_32BITS)))
    flags &= ~EV_IORING_SQ_CQ_OVERFLOW;

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

/* submit, run completion work, wait for nothing */
inline_speed int
iouring_enter_nowait (EV_P)
{
  return iouring_enter (EV_A_ 0, EV_IORING_ENTER_GETEVENTS, 0, 0);
}

/* a poll's mask as libev's events; epoll's are the same bits on linux */
inline_size int
iouring_poll_to_ev (int res)
{
  return (res & (POLLOUT | POLLERR | POLLHUP) ? EV_WRITE : 0)
       | (res & (POLLIN  | POLLERR | POLLHUP) ? EV_READ  : 0);
}

/*****************************************************************************/
/* the id set and the re-arm list (note r) */

/* is fd still the file its watchers were started for? one syscall (note r) */
ecb_cold static int
iouring_id_same (EV_P_ int fd)
{
  struct epoll_event ev;

  memset (&ev, 0, sizeof (ev));

  if (iouring_idfd >= 0 && anfds [fd].eflags & EV_IOURING_ID)
    return !epoll_ctl (iouring_idfd, EPOLL_CTL_MOD, fd, &ev) || (errno != ENOENT && errno != EBADF);

  /* no item to ask: only a closed fd is known to be gone */
  return fcntl (fd, F_GETFD) >= 0 || errno != EBADF;
}

/*
 * fd's poll completed: armed again at the start of the next poll, if the
 * fd is still wanted. fd_change does not arm it (fd_reify calls
 * iouring_modify only when the watchers changed), but an fd to reify
 * tells ev_embed to run this loop again, and us not to block.
 */
inline_speed void
iouring_rearm_push (EV_P_ int fd)
{
  if (ecb_expect_true (!(anfds [fd].eflags & EV_IOURING_QUEUED)))
    {
      anfds [fd].eflags |= EV_IOURING_QUEUED;
      array_needsize (int, iouring_rearms, iouring_rearmmax, iouring_rearmcnt + 1, array_needsize_noinit);
      iouring_rearms [iouring_rearmcnt++] = fd;
      fd_change (EV_A_ fd, EV_ANFD_REIFY);
    }
}

/*****************************************************************************/
/* the epoll set of idle fds (note l), polled on the ring like any fd */

/* the fd's watchers changed, or it fired alone: it goes back to the ring */
ecb_cold static void
iouring_epoll_del (EV_P_ int fd)
{
  struct epoll_event ev; /* pre-2.6.9 kernels want one */

  anfds [fd].eflags &= ~EV_IOURING_EPOLLED;

  /* EBADF: closed, but a dup may keep the item alive; its events tell (note l) */
  epoll_ctl (iouring_epfd, EPOLL_CTL_DEL, fd, &ev);
}

/* the epoll set's poll completed: collect its events, level-triggered (note l) */
ecb_cold static void
iouring_epoll_reap (EV_P)
{
  struct epoll_event events [64];
  int i, n;

  n = epoll_wait (iouring_epfd, events, ecb_array_length (events), 0);

  for (i = 0; i < n; ++i)
    {
      int fd = (int)(uint32_t)events [i].data.u64;

      /* EPOLLIN and friends are POLLIN and friends on linux */
      if (fd < anfdmax
          && anfds [fd].eflags & EV_IOURING_EPOLLED
          && (uint32_t)(events [i].data.u64 >> 32) == anfds [fd].egen)
        {
          fd_event (EV_A_ fd, iouring_poll_to_ev ((int)events [i].events));

          /* the only one the set reports: back to the ring, where its events cost no epoll_wait (note l) */
          if (n == 1)
            {
              iouring_epoll_del (EV_A_ fd);
              iouring_rearm_push (EV_A_ fd);
            }
        }
      else
        iouring_state |= EV_IOURING_EPOLL_STALE; /* a file we no longer own */
    }
}

/* the fd joins the epoll set (note l); its ring poll is gone */
ecb_cold static void
iouring_epoll_add (EV_P_ int fd)
{
  struct epoll_event ev;

  /* closed, or another file: forgotten, as epoll forgets it (note r) */
  if (!iouring_id_same (EV_A_ fd))
    return;

  if (iouring_epfd < 0)
    iouring_epfd = epoll_create1 (EPOLL_CLOEXEC);

  ev.events   = (anfds [fd].events & EV_READ  ? (uint32_t)EPOLLIN  : 0U)
              | (anfds [fd].events & EV_WRITE ? (uint32_t)EPOLLOUT : 0U);
  ev.data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)anfds [fd].egen << 32);

  if (iouring_epfd >= 0
      && (!epoll_ctl (iouring_epfd, EPOLL_CTL_ADD, fd, &ev)
          || (errno == EEXIST && !epoll_ctl (iouring_epfd, EPOLL_CTL_MOD, fd, &ev))))
    anfds [fd].eflags |= EV_IOURING_EPOLLED;
  else if (errno != EBADF) /* EBADF: closed without ev_io_stop, and forgotten, as by epoll */
    {
      /* no epoll for it (EPERM: a regular file): poll it on the ring again */
      anfds [fd].events = 0;
      fd_change (EV_A_ fd, EV_ANFD_REIFY);
    }
}

/*****************************************************************************/
/* completion */

/* a cqe for one of our own requests (removals, the timerfd, the epoll set) */
ecb_cold static void
iouring_cqe_reserved (EV_P_ const struct ev_io_uring_cqe *cqe)
{
  /* removals answer -ENOENT or -EALREADY when the poll completed first, which is fine */
  if (cqe->user_data == IOURING_UDATA_TIMERFD)
    {
      iouring_state &= ~EV_IOURING_TFD_POLLED;
      iouring_tfd_to = EV_TSTAMP_HUGE;
    }
  else if (cqe->user_data == IOURING_UDATA_EPOLL)
    {
      iouring_state &= ~EV_IOURING_EPFD_POLLED;

      if (iouring_epfd >= 0)
        iouring_epoll_reap (EV_A);
    }
}

/* a poll failed: the fd is bad (-EBADF) or the kernel gave up on it */
ecb_cold static void
iouring_cqe_error (EV_P_ int fd, int res)
{
  /* -ECANCELED: the submitting task exited (note i): re-arm */
  if (res == -ECANCELED)
    iouring_rearm_push (EV_A_ fd);
  /* an unchecked re-arm (note r) of an fd that its callback closed: forget it, as epoll does */
  else if (res != -EBADF || !(anfds [fd].eflags & EV_IOURING_REARM))
    fd_kill (EV_A_ fd);
}

/*
 * an EPOLL_CTL on the id set (note r): an add, done (EEXIST: the item is
 * there already, for this file) or refused (EPERM: a regular file), or a
 * check that failed (or worked, before 5.17: no CQE_SKIP_SUCCESS), which
 * says the fd is closed or another file.
 */
inline_speed void iouring_poll_remove (EV_P_ int fd); /* removal needs an sqe, and taking one may reap */

ecb_cold static void
iouring_cqe_id (EV_P_ int fd, uint64_t ud, int res)
{
  if (ud & IOURING_UDATA_ID_ADD)
    {
      if (res >= 0 || res == -EEXIST)
        anfds [fd].eflags |= EV_IOURING_ID;

      return;
    }

  if (res >= 0)
    return;

  /*
   * stopped, then started again without ev_io_set, and now another file:
   * reopened under the same number, which libev does not promise to see,
   * but epoll does (its modify adds an fd that had no watchers). the poll
   * found this file when this enter submitted it, and no code of the user
   * ran since: its item is added now.
   */
  if (res == -ENOENT && ud & IOURING_UDATA_REBOUND)
    {
      struct epoll_event ev;

      memset (&ev, 0, sizeof (ev));
      if (!epoll_ctl (iouring_idfd, EPOLL_CTL_ADD, fd, &ev) || errno == EEXIST)
        return;
    }

  /* the POLL_ADD after it found the other file (or -EBADF): removed, its cqe stale */
  if (anfds [fd].emask)
    iouring_poll_remove (EV_A_ fd);

  ++anfds [fd].egen;

  /* anything but closed or another file: the check itself failed, re-arm unchecked */
  if (res != -EBADF && res != -ENOENT)
    {
      anfds [fd].eflags &= ~EV_IOURING_ID;
      iouring_rearm_push (EV_A_ fd);
    }
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
  if (ecb_expect_false (((uint32_t)(ud >> 32) & IOURING_UDATA_GEN_MASK) != (anfds [fd].egen & IOURING_UDATA_GEN_MASK)))
    return;

  if (ecb_expect_false (ud & IOURING_UDATA_ID))
    {
      iouring_cqe_id (EV_A_ fd, ud, res);
      return;
    }

  /* the poll is gone, whatever the result */
  anfds [fd].emask = 0;
  --iouring_armed;

  if (ecb_expect_false (res < 0))
    {
      iouring_cqe_error (EV_A_ fd, res);
      return;
    }

  if (ecb_expect_false (!(iouring_poll_to_ev (res) & anfds [fd].events)))
    {
      iouring_epoll_add (EV_A_ fd);
      return;
    }

  fd_event (EV_A_ fd, iouring_poll_to_ev (res));

  /* oneshot: armed again at the next poll, if it is still the same file (note r) */
  iouring_rearm_push (EV_A_ fd);
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
/* submission */

/* io_uring_enter failed: remember what iouring_poll must repair (note o) */
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

      default:
        if (!iouring_refused)
          iouring_refused = errno;
        break;
    }
}

/* a bigger ring at the next poll, unless none is to be had (note j) */
inline_size void
iouring_want_grow (EV_P)
{
  if (!(iouring_state & EV_IOURING_NOGROW))
    iouring_state |= EV_IOURING_GROW;
}

/* the sq is full: hand it to the kernel now; 0 when it will not take it */
ecb_noinline ecb_cold static int
iouring_sq_flush (EV_P)
{
  int tries;

  /* more changes in one iteration than the sq holds: a bigger ring next time */
  if (!(iouring_state & EV_IOURING_ONE_OFF))
    iouring_want_grow (EV_A);

  for (tries = 0; !iouring_refused; ++tries)
    {
      if (iouring_enter_nowait (EV_A) < 0)
        iouring_enter_error (EV_A);

      /* callbacks are now pending: iouring_poll must not block */
      if (iouring_cq_reap (EV_A))
        iouring_state |= EV_IOURING_REAPED;

      if (iouring_sq_pending (EV_A) <= iouring_sq_mask)
        return 1;

      /* the kernel keeps refusing (EAGAIN, EBUSY): give up on it */
      if (tries == 1000)
        iouring_refused = EAGAIN;
    }

  return 0;
}

/*
 * the next sqe, zeroed: the kernel checks fields a request does not use,
 * and refuses a POLL_REMOVE with the poll32_events an earlier POLL_ADD
 * left in the slot (-EINVAL, 6.18), which would leave the poll armed.
 */
inline_speed struct ev_io_uring_sqe *
iouring_sqe_next (EV_P)
{
  struct ev_io_uring_sqe *sqe = &EV_SQES [iouring_sq_tail++ & iouring_sq_mask];

  memset (sqe, 0, sizeof (*sqe));

  return sqe;
}

/* a zeroed sqe, or 0 when the kernel refused: iouring_poll then starts over (note o) */
inline_speed struct ev_io_uring_sqe *
iouring_sqe_get (EV_P)
{
  if (ecb_expect_false (iouring_sq_pending (EV_A) > iouring_sq_mask))
    if (!iouring_sq_flush (EV_A))
      return 0;

  return iouring_sqe_next (EV_A);
}

inline_size uint64_t
iouring_fd_udata (EV_P_ int fd)
{
  return (uint64_t)(uint32_t)fd | ((uint64_t)(anfds [fd].egen & IOURING_UDATA_GEN_MASK) << 32);
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

/*
 * an EPOLL_CTL on fd's item in the id set (note r), before fd's POLL_ADD:
 * EPOLL_CTL_ADD when fd_reify arms fd for the file it is now,
 * EPOLL_CTL_MOD to check that it still is. 0: the kernel refused.
 */
inline_speed int
iouring_id_ctl (EV_P_ int fd, int op)
{
  static struct epoll_event id_event; /* no events: the item is never waited for */
  struct ev_io_uring_sqe *sqe = iouring_sqe_get (EV_A);

  if (ecb_expect_false (!sqe))
    return 0;

  sqe->opcode    = EV_IORING_OP_EPOLL_CTL;
  sqe->fd        = iouring_idfd;
  sqe->off       = (uint64_t)(uint32_t)fd;
  sqe->len       = (uint32_t)op;
  sqe->addr      = (uint64_t)(uintptr_t)&id_event;
  sqe->user_data = iouring_fd_udata (EV_A_ fd) | IOURING_UDATA_ID
                 | (op == EPOLL_CTL_ADD ? IOURING_UDATA_ID_ADD : 0)
                 | (anfds [fd].eflags & EV_IOURING_REBOUND ? IOURING_UDATA_REBOUND : 0);

  anfds [fd].eflags &= ~EV_IOURING_REBOUND;

  /* 5.17: no cqe when a check worked; an add always answers */
  if (op == EPOLL_CTL_MOD && iouring_features & EV_IORING_FEAT_CQE_SKIP)
    sqe->flags = EV_IOSQE_CQE_SKIP_SUCCESS;

  return 1;
}

/*
 * fd's POLL_ADD, for anfds [fd].events, after an EPOLL_CTL_ADD (fd_reify
 * arms it for a file that may be new) or EPOLL_CTL_MOD (a re-arm) of its
 * id item, or neither (op 0: the same file, other events) (note r)
 */
inline_speed void
iouring_arm (EV_P_ int fd, int op)
{
  struct ev_io_uring_sqe *sqe;

  /*
   * the cq is full of armed polls: a bigger ring comes at the start of the
   * next poll, and arms every fd anew. polls armed on this one would only
   * have to be removed again, one POLL_REMOVE each, and a small ring's poll
   * hash has 2 buckets (cq entries / 32, 6.18): 0.5 s of cpu for 9900 (note j).
   * an id item is added all the same, for the new ring to check.
   */
  int wait = iouring_armed > (int)iouring_cq_mask && !(iouring_state & EV_IOURING_NOGROW);

  /* an add needs the id set, a check the add's answer */
  if (iouring_idfd >= 0 && (op == EPOLL_CTL_ADD || (op && !wait && anfds [fd].eflags & EV_IOURING_ID)))
    if (ecb_expect_false (!iouring_id_ctl (EV_A_ fd, op)))
      return;

  if (ecb_expect_false (wait))
    {
      iouring_want_grow (EV_A);
      return;
    }

  sqe = iouring_sqe_get (EV_A);
  if (ecb_expect_false (!sqe))
    return;

  iouring_prep_poll_add (sqe, fd, iouring_poll_mask (anfds [fd].events), iouring_fd_udata (EV_A_ fd));
  anfds [fd].emask   = anfds [fd].events;
  anfds [fd].eflags |= EV_IOURING_FRESH;

  /* a ring too small for the polls armed: a bigger one at the next poll (note j) */
  if (ecb_expect_false (++iouring_armed > (int)iouring_cq_mask + 1))
    iouring_want_grow (EV_A);
}

/* queue the removal of fd's armed poll */
inline_speed void
iouring_poll_remove (EV_P_ int fd)
{
  struct ev_io_uring_sqe *sqe = iouring_sqe_get (EV_A);

  if (ecb_expect_true (sqe))
    iouring_prep_poll_remove (EV_A_ sqe, iouring_fd_udata (EV_A_ fd));

  anfds [fd].emask = 0;
  --iouring_armed;
}

/*
 * a forked child must not write to the ring it shares with its parent, and
 * after a refusal the ring is replaced: either way iouring_poll arms every
 * fd anew through fd_rearm_all, this one included.
 */
static void
iouring_modify (EV_P_ int fd, int oev, int nev)
{
  /*
   * anfds [fd].emask says what the kernel has. the id item is made anew
   * (note r) after ev_io_set (our ev.c patch: iouring_fdset), and for an
   * fd that never had one; other changes keep the file, as libev promises
   * ("the special problem of disappearing file descriptors" in ev.pod).
   * an fd started again after all its watchers stopped, which epoll_modify
   * adds anew, is re-bound lazily: its next check may add the item.
   */
  int bind = iouring_fdset || !(anfds [fd].eflags & EV_IOURING_ID);

  if (ecb_expect_false (iouring_forked (EV_A)))
    return;

  if (ecb_expect_false (anfds [fd].eflags & EV_IOURING_EPOLLED))
    iouring_epoll_del (EV_A_ fd);

  /* an armed poll: remove it, whether the events changed or the fd was re-set (oev == nev) */
  if (anfds [fd].emask)
    iouring_poll_remove (EV_A_ fd);

  /* a new generation for every new poll: cqes of older ones are stale */
  ++anfds [fd].egen;

  /* a pending re-arm (note r) stays queued, and finds the fd armed or unwanted */
  anfds [fd].eflags &= EV_IOURING_QUEUED | (bind ? 0 : EV_IOURING_ID | EV_IOURING_REBOUND);

  if (!nev)
    return;

  if (!bind && !oev)
    anfds [fd].eflags |= EV_IOURING_REBOUND;

  if (ecb_expect_false (iouring_idfd < 0))
    iouring_idfd = epoll_create1 (EPOLL_CLOEXEC);

  iouring_arm (EV_A_ fd, bind ? EPOLL_CTL_ADD : 0);
}

/* the polls that completed are armed again, each checked against the id set (note r) */
inline_speed void
iouring_rearm_queued (EV_P)
{
  int i, n = iouring_rearmcnt;

  for (i = 0; i < n; ++i)
    {
      int fd = iouring_rearms [i];

      anfds [fd].eflags &= ~EV_IOURING_QUEUED;

      if (anfds [fd].events && !anfds [fd].emask && !(anfds [fd].eflags & EV_IOURING_EPOLLED))
        {
          /* without an item to check, -EBADF means the callback closed it (iouring_cqe_error) */
          anfds [fd].eflags |= EV_IOURING_REARM;
          iouring_arm (EV_A_ fd, EPOLL_CTL_MOD);
        }
    }

  /* completions reaped while the sq was flushed queued more: next time */
  iouring_rearmcnt -= n;
  if (ecb_expect_false (iouring_rearmcnt))
    memmove (iouring_rearms, iouring_rearms + n, iouring_rearmcnt * sizeof (int));
}

/*
 * note l): every poll armed since the last sweep is spared once; the
 * others have been idle for a whole period and move to the epoll set.
 */
ecb_noinline ecb_cold static void
iouring_sweep (EV_P)
{
  int fd;

  iouring_sweep_at = mn_now + EV_IOURING_SWEEP;
  iouring_state   |= EV_IOURING_ONE_OFF;

  for (fd = 0; fd < anfdmax && iouring_armed; ++fd)
    if (anfds [fd].emask)
      {
        if (anfds [fd].eflags & EV_IOURING_FRESH)
          anfds [fd].eflags &= ~EV_IOURING_FRESH;
        else
          {
            iouring_poll_remove (EV_A_ fd);
            ++anfds [fd].egen;
            iouring_epoll_add (EV_A_ fd);
          }
      }

  iouring_state &= ~EV_IOURING_ONE_OFF;
}

/* the polls of our own files, the epoll set and the timerfd (notes d and l) */
inline_speed void
iouring_poll_reserved (EV_P_ int fd, uint64_t user_data, int flag)
{
  struct ev_io_uring_sqe *sqe = iouring_sqe_get (EV_A);

  if (ecb_expect_true (sqe))
    {
      iouring_prep_poll_add (sqe, fd, iouring_poll_mask (EV_READ), user_data);
      iouring_state |= flag;
    }
}

/*****************************************************************************/
/* timeouts */

/* libev's time as the kernel's, rounded up to whole milliseconds like epoll's (note d) */
inline_size ev_tstamp
iouring_timeout_ms (ev_tstamp timeout)
{
  return ceil (timeout * 1e3) * 1e-3;
}

/*
 * kernels without IORING_FEAT_EXT_ARG (< 5.11): a timerfd, polled on the
 * ring. it is only set when the wanted expiry is earlier than the one it
 * has (a later wakeup is harmless, libev just loops), so most waits need
 * no extra syscall. returns 0 when there is no timerfd to wake us.
 */
ecb_cold static int
iouring_tfd_update (EV_P_ ev_tstamp timeout)
{
  ev_tstamp to = mn_now + timeout;

  if (iouring_tfd < 0)
    {
      iouring_tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

      if (iouring_tfd < 0)
        return 0;
    }

  if (!(iouring_state & EV_IOURING_TFD_POLLED))
    iouring_poll_reserved (EV_A_ iouring_tfd, IOURING_UDATA_TIMERFD, EV_IOURING_TFD_POLLED);

  if (to < iouring_tfd_to)
    {
      struct itimerspec its;

      /* relative, so it does not matter which clock libev's mn_now uses; zero would disarm it */
      memset (&its, 0, sizeof (its));
      EV_TS_SET (its.it_value, timeout);
      if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
        its.it_value.tv_nsec = 1;

      if (timerfd_settime (iouring_tfd, 0, &its, 0) < 0)
        return 0;

      iouring_tfd_to = to;
    }

  return iouring_state & EV_IOURING_TFD_POLLED;
}

/* the one syscall of an iteration: submit, and wait up to timeout (> 0) for a cqe */
inline_speed int
iouring_enter_wait (EV_P_ ev_tstamp timeout, int tfd)
{
  struct ev_io_uring_timespec ts;
  struct ev_io_uring_getevents_arg arg;
  struct pollfd pfd;
  int res;

  if (ecb_expect_true (iouring_features & EV_IORING_FEAT_EXT_ARG))
    {
      EV_TS_SET (ts, timeout);

      arg.sigmask       = 0;
      arg.sigmask_sz    = _NSIG / 8;
      arg.min_wait_usec = 0;
      arg.ts            = (uint64_t)(uintptr_t)&ts;

      return iouring_enter (EV_A_ 1, EV_IORING_ENTER_GETEVENTS | EV_IORING_ENTER_EXT_ARG, &arg, sizeof (arg));
    }

  if (tfd)
    return iouring_enter (EV_A_ 1, EV_IORING_ENTER_GETEVENTS, 0, 0);

  /* no timerfd (EMFILE): submit, then wait in poll (), which takes a timeout (note d) */
  res = iouring_enter_nowait (EV_A);
  if (res < 0 || *iouring_cq_khead != iouring_load_acquire (iouring_cq_ktail))
    return res;

  pfd.fd     = backend_fd;
  pfd.events = POLLIN;
  return poll (&pfd, 1, (int)(timeout * 1e3 + .5)); /* whole milliseconds already */
}

/* a blocking wait, cancellable like epoll_wait (note q) */
ecb_noinline static int
iouring_enter_block (EV_P_ ev_tstamp timeout, int tfd)
{
  int res, type;

  EV_RELEASE_CB;
  pthread_setcanceltype (PTHREAD_CANCEL_ASYNCHRONOUS, &type);
  res = iouring_enter_wait (EV_A_ timeout, tfd);
  pthread_setcanceltype (type, &type);
  EV_ACQUIRE_CB;

  return res;
}

/*****************************************************************************/
/* ring setup and teardown */

/* sets every ring resource to its sentinel, so destroy works on any partial state */
inline_size void
iouring_ring_reset (EV_P)
{
  iouring_sq_ring     = (char *)MAP_FAILED;
  iouring_cq_ring     = (char *)MAP_FAILED;
  iouring_sqes        = MAP_FAILED;
  iouring_enter_flags = 0;
  iouring_armed       = 0;
  iouring_state      &= EV_IOURING_VERBOSE | EV_IOURING_NOGROW | EV_IOURING_FD_REPLACED;
  iouring_tfd_to      = EV_TSTAMP_HUGE;
}


/*
 * unmaps the ring and closes ring_fd (< 0: none, or not ours to close).
 * the timerfd and the epoll set go with it: they are polled on this ring,
 * and after fork they are shared with the parent.
 */
ecb_cold static void
iouring_ring_destroy (EV_P_ int ring_fd)
{
  int fd;

  if (iouring_sqes != MAP_FAILED)
    munmap (iouring_sqes, (iouring_sq_mask + 1) * sizeof (struct ev_io_uring_sqe));

  if (iouring_cq_ring != MAP_FAILED && iouring_cq_ring != iouring_sq_ring)
    munmap (iouring_cq_ring, iouring_cq_ring_size);

  if (iouring_sq_ring != MAP_FAILED)
    munmap (iouring_sq_ring, iouring_sq_ring_size);

  if (ring_fd >= 0)
    close (ring_fd);

  if (iouring_tfd >= 0)
    close (iouring_tfd);

  /* the epoll set of note l): after fork, it is the parent's too */
  if (iouring_epfd >= 0)
    close (iouring_epfd);

  iouring_tfd  = -1;
  iouring_epfd = -1;
  iouring_ring_reset (EV_A);

  /* fd_rearm_all, or destroy, comes next; the id set stays (note r) */
  for (fd = 0; fd < anfdmax; ++fd)
    anfds [fd].eflags &= EV_IOURING_ID;

  iouring_rearmcnt = 0;
}

/*
 * note m): remove every poll of this ring before it is closed or replaced,
 * whoever else holds its fd. the removals run inside this enter.
 */
ecb_cold static void
iouring_ring_drain (EV_P)
{
  int fd;

  if (iouring_sq_ring == MAP_FAILED || iouring_forked (EV_A))
    return;

  for (fd = -2; fd < anfdmax; ++fd)
    {
      uint64_t target;

      /* first the polls of the epoll set and the timerfd, which hold those files */
      if (fd == -2 && iouring_state & EV_IOURING_EPFD_POLLED)
        target = IOURING_UDATA_EPOLL;
      else if (fd == -1 && iouring_state & EV_IOURING_TFD_POLLED)
        target = IOURING_UDATA_TIMERFD;
      else if (fd >= 0 && anfds [fd].emask)
        {
          target = iouring_fd_udata (EV_A_ fd);
          anfds [fd].emask = 0;
        }
      else
        continue;

      if (iouring_sq_pending (EV_A) > iouring_sq_mask && iouring_enter_nowait (EV_A) < 0)
        return;

      iouring_prep_poll_remove (EV_A_ iouring_sqe_next (EV_A), target);
    }

  iouring_enter_nowait (EV_A);
}

/* the optional setup flags, newest first: each is dropped when the kernel says EINVAL */
static const unsigned int iouring_setup_optional [] = {
  EV_IORING_SETUP_NO_SQARRAY,                                    /* 6.6 */
  EV_IORING_SETUP_COOP_TASKRUN | EV_IORING_SETUP_TASKRUN_FLAG,   /* 5.19 */
  EV_IORING_SETUP_SUBMIT_ALL,                                    /* 5.18 */
  EV_IORING_SETUP_CLAMP,                                         /* 5.6 */
  EV_IORING_SETUP_CQSIZE,                                        /* 5.5 */
};

/*
 * a ring of iouring_entries sqes, or fewer (down to min) when the locked
 * memory limit says ENOMEM. returns the ring fd, or -1 with errno set.
 */
ecb_cold static int
iouring_ring_setup (EV_P_ struct ev_io_uring_params *params, unsigned int min)
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

      if (errno == EINVAL && i < ecb_array_length (iouring_setup_optional))
        flags &= ~iouring_setup_optional [i++]; /* an older kernel */
      else if (errno == ENOMEM && entries > min)
        entries >>= 1; /* locked memory limit, see note j) */
      else
        return -1;
    }
}

ecb_cold static void *
iouring_mmap (int fd, size_t len, uint64_t off)
{
  return mmap (0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, (off_t)off);
}

/* maps the rings of fd; -1 with errno set and nothing mapped when that fails */
ecb_cold static int
iouring_ring_map (EV_P_ int fd, const struct ev_io_uring_params *params)
{
  iouring_features = params->features;

  iouring_sq_ring_size = params->sq_off.array + params->sq_entries * sizeof (unsigned int);
  if (params->flags & EV_IORING_SETUP_NO_SQARRAY)
    iouring_sq_ring_size = params->sq_off.array ? params->sq_off.array : params->cq_off.cqes;
  iouring_cq_ring_size = params->cq_off.cqes + params->cq_entries * sizeof (struct ev_io_uring_cqe);

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

  /* iouring_ring_destroy unmaps (iouring_sq_mask + 1) sqes, even when a mapping failed */
  iouring_sq_mask = params->sq_entries - 1;
  iouring_sqes    = iouring_mmap (fd, params->sq_entries * sizeof (struct ev_io_uring_sqe), EV_IORING_OFF_SQES);

  if (iouring_sq_ring == MAP_FAILED || iouring_cq_ring == MAP_FAILED || iouring_sqes == MAP_FAILED)
    {
      int err = errno;
      iouring_ring_destroy (EV_A_ -1);
      errno = err;
      return -1;
    }

  iouring_sq_khead     = (unsigned int *)(iouring_sq_ring + params->sq_off.head);
  iouring_sq_ktail     = (unsigned int *)(iouring_sq_ring + params->sq_off.tail);
  iouring_sq_kflags    = (unsigned int *)(iouring_sq_ring + params->sq_off.flags);
  iouring_sq_tail      = *iouring_sq_ktail;

  iouring_cq_khead     = (unsigned int *)(iouring_cq_ring + params->cq_off.head);
  iouring_cq_ktail     = (unsigned int *)(iouring_cq_ring + params->cq_off.tail);
  iouring_cq_koverflow = (unsigned int *)(iouring_cq_ring + params->cq_off.overflow);
  iouring_cq_mask      = *(unsigned int *)(iouring_cq_ring + params->cq_off.ring_mask);
  iouring_cq_overflow  = *iouring_cq_koverflow;
  iouring_cqes         = iouring_cq_ring + params->cq_off.cqes;

  /* without NO_SQARRAY (6.6) the kernel reads sqe indices from an array: make it the identity, once */
  if (!(params->flags & EV_IORING_SETUP_NO_SQARRAY))
    {
      unsigned int *array = (unsigned int *)(iouring_sq_ring + params->sq_off.array);
      unsigned int i;

      for (i = 0; i < params->sq_entries; ++i)
        array [i] = i;
    }

  /* 6.15: waiting for readiness is not waiting for io (see note k) */
  if (iouring_features & EV_IORING_FEAT_NO_IOWAIT)
    iouring_enter_flags |= EV_IORING_ENTER_NO_IOWAIT;

  if (iouring_state & EV_IOURING_VERBOSE)
    fprintf (stderr, "libev: io_uring ring fd %d: sq %u cq %u, features 0x%x, setup flags 0x%x, using%s%s%s%s%s%s\n",
             fd, iouring_sq_mask + 1, iouring_cq_mask + 1, iouring_features, params->flags,
             iouring_features & EV_IORING_FEAT_EXT_ARG ? " ext_arg" : " timerfd",
             iouring_features & EV_IORING_FEAT_NODROP ? " nodrop" : "",
             iouring_features & EV_IORING_FEAT_CQE_SKIP ? " cqe_skip" : "",
             params->flags & EV_IORING_SETUP_COOP_TASKRUN ? " coop_taskrun" : "",
             params->flags & EV_IORING_SETUP_NO_SQARRAY ? " no_sqarray" : "",
             iouring_enter_flags & EV_IORING_ENTER_NO_IOWAIT ? " no_iowait" : "");

  return 0;
}

/* a new ring, mapped, of at least min sqes; its fd, or -1 with errno set */
ecb_cold static int
iouring_ring_new (EV_P_ unsigned int min)
{
  struct ev_io_uring_params params;
  int fd = iouring_ring_setup (EV_A_ &params, min);

  if (fd < 0)
    return -1;

  if (iouring_ring_map (EV_A_ fd, &params) < 0)
    {
      int err = errno;
      close (fd);
      errno = err;
      return -1;
    }

  return fd;
}

/*****************************************************************************/
/* fallback: bigger or new rings and the switch to epoll, only from iouring_poll and iouring_fork */

/* the new file behind backend_fd takes the old number, so ev_embed keeps watching it (note o) */
ecb_cold static void
iouring_fd_adopt (EV_P_ int fd, int old_fd)
{
  if (old_fd >= 0 && fd != old_fd)
    {
      /* dup3 wants _GNU_SOURCE, which ev.c does not define */
      if (dup2 (fd, old_fd) >= 0)
        {
          fcntl (old_fd, F_SETFD, FD_CLOEXEC);
          close (fd);
          fd = old_fd;
        }
      else
        close (old_fd);
    }

  backend_fd     = fd;
  iouring_state |= EV_IOURING_FD_REPLACED;
}

/*
 * before every fd is armed anew on a new ring or on epoll: an fd closed
 * without ev_io_stop, or whose number is another file now, is forgotten,
 * as epoll forgets it (note r), not reported as bad (EV_ERROR here, an
 * assertion in ev_epoll.c), nor armed for a file no watcher was started for
 */
ecb_cold static void
iouring_forget_changed (EV_P)
{
  int fd;

  for (fd = 0; fd < anfdmax; ++fd)
    if (anfds [fd].events && !iouring_id_same (EV_A_ fd))
      anfds [fd].events = 0;
}

/* the id set of note r goes: after fork it is the parent's, on epoll it is not needed */
ecb_cold static void
iouring_id_close (EV_P)
{
  int fd;

  if (iouring_idfd >= 0)
    close (iouring_idfd);

  iouring_idfd = -1;

  /* a new set knows none of them */
  for (fd = 0; fd < anfdmax; ++fd)
    anfds [fd].eflags &= ~EV_IOURING_ID;
}

/* EBADF, EOPNOTSUPP: the ring fd was closed behind our back, or is another file now */
inline_size int
iouring_fd_lost (int err)
{
  return err == EBADF || err == EOPNOTSUPP;
}

ecb_cold static void
iouring_switch_to_epoll (EV_P_ int err)
{
  int old_fd = iouring_fd_lost (err) ? -1 : backend_fd;

  if (iouring_state & EV_IOURING_VERBOSE)
    fprintf (stderr, "libev: io_uring unusable (%s), switching to epoll\n", strerror (err));

  if (iouring_forked (EV_A))
    iouring_id_close (EV_A);

  iouring_ring_drain (EV_A);
  iouring_ring_destroy (EV_A_ -1);
  munmap (iouring_fork_guard, 4096);

  while (!epoll_init (EV_A_ 0))
    {
      /* no fd left (EMFILE): the old one makes room */
      if (old_fd < 0)
        ev_syserr ("(libev) io_uring switch to epoll");

      close (old_fd);
      old_fd = -1;
    }

  backend = EVBACKEND_EPOLL;
  iouring_fd_adopt (EV_A_ backend_fd, old_fd);
  iouring_forget_changed (EV_A);
  iouring_id_close (EV_A);
  array_free (iouring_rearm, EMPTY);
  fd_rearm_all (EV_A);
}

/* twice the sqes, or more, so that the cq holds every armed poll (note j) */
inline_size unsigned int
iouring_entries_grown (EV_P)
{
  unsigned int entries = iouring_entries * 2;
  unsigned int want = 0;
  int fd;

  /* the fds that want a ring poll: armed, or waiting for this ring (iouring_modify) */
  for (fd = 0; fd < anfdmax; ++fd)
    want += anfds [fd].events && !(anfds [fd].eflags & EV_IOURING_EPOLLED);

  while (entries < EV_IOURING_SQ_MAX && entries * EV_IOURING_CQ_FACTOR < want * 2)
    entries *= 2;

  return entries < EV_IOURING_SQ_MAX ? entries : EV_IOURING_SQ_MAX;
}

/*
 * a bigger ring, built before the old one goes: when there is none to be
 * had (RLIMIT_MEMLOCK), we stay with the old one, and stop asking.
 */
ecb_cold static int
iouring_grow (EV_P)
{
  struct ev_io_uring_params params;
  unsigned int entries = iouring_entries;
  int fd = -1;

  iouring_state &= ~EV_IOURING_GROW;

  if (entries < EV_IOURING_SQ_MAX)
    {
      iouring_entries = iouring_entries_grown (EV_A);
      fd = iouring_ring_setup (EV_A_ &params, iouring_entries);
    }

  if (fd < 0)
    {
      int i;

      iouring_entries = entries;
      iouring_state  |= EV_IOURING_NOGROW;

      /* the fds that waited for a bigger ring go on this one (fd_rearm_all
         would forget what is armed here, and arm it twice) */
      for (i = 0; i < anfdmax; ++i)
        if (anfds [i].events && !anfds [i].emask && !(anfds [i].eflags & EV_IOURING_EPOLLED))
          {
            anfds [i].events = 0;
            fd_change (EV_A_ i, EV_ANFD_REIFY);
          }

      return 1;
    }

  iouring_ring_drain (EV_A);
  iouring_ring_destroy (EV_A_ -1);

  if (iouring_ring_map (EV_A_ fd, &params) < 0)
    {
      close (fd);
      return 0;
    }

  iouring_fd_adopt (EV_A_ fd, backend_fd);
  iouring_forget_changed (EV_A);
  fd_rearm_all (EV_A);

  return 1;
}

/*
 * a new ring in place of the old one, every fd armed again: after fork
 * (the old ring is the parent's: only our copy of its fd goes), when cqes
 * were lost, when the epoll set holds files that are not ours (as
 * ev_epoll.c starts over), when the ring fd was lost. 0: no ring to be had.
 */
ecb_cold static int
iouring_rebuild (EV_P_ int err)
{
  int old_fd = iouring_fd_lost (err) ? -1 : backend_fd;
  int fd;

  /* after fork the set is the parent's, and the child's changes never reached it */
  if (iouring_forked (EV_A))
    iouring_id_close (EV_A);

  if (iouring_state & EV_IOURING_GROW)
    iouring_entries = iouring_entries_grown (EV_A);

  iouring_ring_drain (EV_A);
  iouring_ring_destroy (EV_A_ -1);
  *iouring_fork_guard = 1;

  fd = iouring_ring_new (EV_A_ 1);
  if (fd < 0)
    return 0;

  iouring_fd_adopt (EV_A_ fd, old_fd);
  iouring_forget_changed (EV_A);
  fd_rearm_all (EV_A);

  return 1;
}

/* note o): the refusals and wishes remembered since the last poll */
ecb_noinline ecb_cold static void
iouring_repair (EV_P)
{
  int err = iouring_refused;

  iouring_refused = 0;
  iouring_state  &= ~EV_IOURING_REAPED;

  /* refused: epoll. lost cqes (EBADR), a lost ring fd, fork, a stale epoll set: a new ring */
  if (err && err != EBADR && !iouring_fd_lost (err))
    iouring_switch_to_epoll (EV_A_ err);
  else if (err || iouring_forked (EV_A) || iouring_state & EV_IOURING_EPOLL_STALE
           ? !iouring_rebuild (EV_A_ err)
           : !iouring_grow (EV_A))
    iouring_switch_to_epoll (EV_A_ errno);
}

/*****************************************************************************/
/* poll, init, destroy, fork, and the end of ev_run */

/*
 * a new ring (or epoll) with every fd armed anew; 1 when epoll took over
 * this poll, without waiting: events reaped before may be pending.
 */
ecb_noinline ecb_cold static int
iouring_poll_repair (EV_P)
{
  iouring_repair (EV_A);

  iouring_state |= EV_IOURING_ONE_OFF;
  fd_reify (EV_A);
  iouring_state &= ~EV_IOURING_ONE_OFF;

  if (backend == EVBACKEND_IOURING)
    return 0;

  backend_poll (EV_A_ 0.);
  return 1;
}

/* note l): an idle poll holds its file for at most two sweep periods */
inline_speed ev_tstamp
iouring_poll_timeout (EV_P_ ev_tstamp timeout)
{
  if (iouring_armed)
    {
      if (ecb_expect_false (mn_now >= iouring_sweep_at))
        iouring_sweep (EV_A);

      if (iouring_armed && timeout > iouring_sweep_at - mn_now)
        timeout = iouring_sweep_at - mn_now;
    }

  return timeout;
}

/* the backlog (note e) is flushed only by an enter: one more round when it is there */
inline_speed void
iouring_cq_backlog (EV_P)
{
  if (ecb_expect_false (iouring_sq_flags (EV_A) & EV_IORING_SQ_CQ_OVERFLOW))
    {
      if (iouring_enter_nowait (EV_A) < 0)
        iouring_enter_error (EV_A);

      iouring_cq_reap (EV_A);
    }

  /* cqes lost without NODROP (< 5.5): their polls are lost too */
  if (ecb_expect_false (*iouring_cq_koverflow != iouring_cq_overflow) && !iouring_refused)
    iouring_refused = EBADR;
}

/* repair, take this iteration's sqes, reap, choose the timeout, enter, reap, flush the backlog */
static void
iouring_poll (EV_P_ ev_tstamp timeout)
{
  unsigned int sq_flags;
  int tfd = 0, res;

  if (ecb_expect_false (iouring_forked (EV_A) || iouring_refused
                        || iouring_state & (EV_IOURING_GROW | EV_IOURING_EPOLL_STALE))
      && iouring_poll_repair (EV_A))
    return;

  /* every sqe of this iteration is taken before we decide to block (note o) */
  if (iouring_rearmcnt)
    iouring_rearm_queued (EV_A);

  timeout = iouring_poll_timeout (EV_A_ timeout);

  if (ecb_expect_false (iouring_epfd >= 0 && !(iouring_state & EV_IOURING_EPFD_POLLED)))
    iouring_poll_reserved (EV_A_ iouring_epfd, IOURING_UDATA_EPOLL, EV_IOURING_EPFD_POLLED);

  if (ecb_expect_false (timeout > 0. && !(iouring_features & EV_IORING_FEAT_EXT_ARG)))
    tfd = iouring_tfd_update (EV_A_ timeout);

  /* taking those sqes was refused: the new ring has no reserved polls, so no waiting */
  if (ecb_expect_false (iouring_refused))
    {
      if (iouring_poll_repair (EV_A))
        return;

      timeout = 0.;
    }

  /* events already waiting, or fds to arm (fd_reify ran before us), mean no blocking */
  if (iouring_cq_reap (EV_A) || fdchangecnt || iouring_state & EV_IOURING_REAPED)
    timeout = 0.;

  iouring_state &= ~EV_IOURING_REAPED;
  sq_flags = iouring_sq_flags (EV_A);

  /* nothing to submit, nothing to wait for, no backlog, no task work: no syscall */
  if (timeout <= 0.
      && !iouring_sq_pending (EV_A)
      && !(sq_flags & (EV_IORING_SQ_CQ_OVERFLOW | EV_IORING_SQ_TASKRUN))
      && (iouring_features & (EV_IORING_FEAT_POLL_32BITS | EV_IORING_FEAT_NODROP)) != EV_IORING_FEAT_NODROP)
    return;

  if (timeout > 0.)
    res = iouring_enter_block (EV_A_ iouring_timeout_ms (timeout), tfd);
  else
    res = iouring_enter_nowait (EV_A);

  if (ecb_expect_false (res < 0))
    iouring_enter_error (EV_A);

  iouring_cq_reap (EV_A);
  iouring_cq_backlog (EV_A);

  /* refused now: repaired now, so that the fds to arm tell ev_embed to run us again */
  if (ecb_expect_false (iouring_refused))
    iouring_repair (EV_A);
}

/* io_uring_setup may fail for a moment while closed rings give back their memory (note j) */
ecb_cold static int
iouring_ring_first (EV_P)
{
  int i, fd;

  for (i = 0; ; ++i)
    {
      struct timespec ts;

      iouring_entries = EV_IOURING_SQ_MIN;
      fd = iouring_ring_new (EV_A_ 1);

      /* 6.18 gives the charge back 20 to 60 ms after close */
      if (fd >= 0 || errno != ENOMEM || i == 8)
        return fd;

      ts.tv_sec  = 0;
      ts.tv_nsec = 1000000L << i; /* 1 to 128 ms, 255 ms in all */
      nanosleep (&ts, 0);
    }
}

inline_size int
iouring_init (EV_P_ int flags)
{
  int fd;

  iouring_tfd         = -1;
  iouring_epfd        = -1;
  iouring_idfd        = -1;
  iouring_fdset       = 0;
  iouring_rearms      = 0;
  iouring_rearmcnt    = 0;
  iouring_rearmmax    = 0;
  iouring_refused     = 0;
  iouring_state       = 0;
  iouring_sweep_at    = 0.;
  iouring_ring_reset (EV_A);

  /* as libev reads LIBEV_FLAGS */
  if (!(flags & EVFLAG_NOENV) && getuid () == geteuid () && getgid () == getegid ()
      && getenv ("LIBEV_IOURING_VERBOSE"))
    iouring_state = EV_IOURING_VERBOSE;

  /* see note h) */
  iouring_fork_guard = (char *)mmap (0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (iouring_fork_guard == MAP_FAILED || madvise (iouring_fork_guard, 4096, MADV_WIPEONFORK) < 0)
    fd = -1;
  else
    {
      *iouring_fork_guard = 1;
      fd = iouring_ring_first (EV_A);
    }

  if (fd < 0)
    {
      if (iouring_state & EV_IOURING_VERBOSE)
        fprintf (stderr, "libev: io_uring unavailable (%s), trying the next backend\n", strerror (errno));

      if (iouring_fork_guard != MAP_FAILED)
        munmap (iouring_fork_guard, 4096);

      return 0;
    }

  backend_fd      = fd;
  backend_mintime = EV_TS_CONST (1e-3); /* whole milliseconds, as epoll (note d) */
  backend_modify  = iouring_modify;
  backend_poll    = iouring_poll;

  return EVBACKEND_IOURING;
}

/*
 * note m): ev_run returns; a removal still queued in fdchanges (ev_io_stop,
 * then ev_break) keeps its file open until the loop runs again, which may
 * be never. submit such removals now, and nothing else costs a syscall.
 */
ecb_cold static void
iouring_run_exit (EV_P)
{
  int i;

  if (backend != EVBACKEND_IOURING || iouring_forked (EV_A))
    return;

  for (i = 0; i < fdchangecnt; ++i)
    {
      int fd = fdchanges [i];

      if (anfds [fd].emask && !anfds [fd].head)
        {
          fd_reify (EV_A);

          if (iouring_sq_pending (EV_A) && iouring_enter_nowait (EV_A) < 0)
            iouring_enter_error (EV_A);

          return;
        }
    }
}

/* called before ev.c would close backend_fd: we close it, after draining the ring (note m) */
inline_size void
iouring_destroy (EV_P)
{
  iouring_ring_drain (EV_A);
  iouring_ring_destroy (EV_A_ backend_fd);
  iouring_id_close (EV_A);
  array_free (iouring_rearm, EMPTY);
  munmap (iouring_fork_guard, 4096);
  backend_fd = -1;
}

/* ev_loop_fork: a new ring, in the child (and in the parent, should it call us) */
ecb_cold static void
iouring_fork (EV_P)
{
  iouring_refused = 0;

  if (!iouring_rebuild (EV_A_ 0))
    iouring_switch_to_epoll (EV_A_ errno);
}
