/*
 * libev linux io_uring kernel abi
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
 * the part of include/uapi/linux/io_uring.h that ev_iouring.c uses, with
 * an EV_ prefix, so that it builds with old kernel headers or none, and so
 * that tests can include it next to liburing.h and compare the two.
 * versions are those of the kernel that introduced each name (liburing's
 * man pages, "available since", else the kernel commit).
 */

#ifndef EV_IOURING_ABI_H
#define EV_IOURING_ABI_H

#include <stddef.h> /* offsetof: freestanding, like <stdint.h> */
#include <stdint.h>

/*
 * syscall numbers (5.1): one number on every architecture since the
 * unified syscall table, offset on the few that add a base.
 */
#if defined SYS_io_uring_setup
# define EV_SYS_io_uring_setup    SYS_io_uring_setup
# define EV_SYS_io_uring_enter    SYS_io_uring_enter
#elif defined __alpha__
# define EV_SYS_io_uring_setup    535
# define EV_SYS_io_uring_enter    536
#elif defined __mips__ && defined _MIPS_SIM && defined _ABIO32 && _MIPS_SIM == _ABIO32
# define EV_SYS_io_uring_setup    4425
# define EV_SYS_io_uring_enter    4426
#elif defined __mips__ && defined _MIPS_SIM && defined _ABIN32 && _MIPS_SIM == _ABIN32
# define EV_SYS_io_uring_setup    6425
# define EV_SYS_io_uring_enter    6426
#elif defined __mips__ && defined _MIPS_SIM && defined _ABI64 && _MIPS_SIM == _ABI64
# define EV_SYS_io_uring_setup    5425
# define EV_SYS_io_uring_enter    5426
#elif defined __ia64__
# define EV_SYS_io_uring_setup    1449
# define EV_SYS_io_uring_enter    1450
#elif defined __linux__
# define EV_SYS_io_uring_setup    425
# define EV_SYS_io_uring_enter    426
#endif

/*
 * submission queue entry (5.1), with only the union members we use
 */
struct ev_io_uring_sqe
{
  uint8_t  opcode;
  uint8_t  flags;        /* EV_IOSQE_* */
  uint16_t ioprio;
  int32_t  fd;
  uint64_t off;          /* EPOLL_CTL: the fd to add or modify */
  uint64_t addr;         /* POLL_REMOVE: user_data of the target; EPOLL_CTL: its struct epoll_event */
  uint32_t len;          /* POLL_ADD: flags (multishot, 5.13), unused here; EPOLL_CTL: the op */
  uint32_t poll32_events; /* op flags; 5.9 made poll events 32 bits wide */
  uint64_t user_data;
  uint16_t buf_index;
  uint16_t personality;
  int32_t  splice_fd_in;
  uint64_t addr3;
  uint64_t pad2 [1];
};

/* sqe->flags */
#define EV_IOSQE_CQE_SKIP_SUCCESS (1U << 6) /* 5.17 */

/* io_uring_setup() flags */
#define EV_IORING_SETUP_CQSIZE        (1U <<  3) /* 5.5 */
#define EV_IORING_SETUP_CLAMP         (1U <<  4) /* 5.6 */
#define EV_IORING_SETUP_SUBMIT_ALL    (1U <<  7) /* 5.18 */
#define EV_IORING_SETUP_COOP_TASKRUN  (1U <<  8) /* 5.19 */
#define EV_IORING_SETUP_TASKRUN_FLAG  (1U <<  9) /* 5.19 */
#define EV_IORING_SETUP_NO_SQARRAY    (1U << 16) /* 6.6 */

/* opcodes */
#define EV_IORING_OP_POLL_ADD      6 /* 5.1 */
#define EV_IORING_OP_POLL_REMOVE   7 /* 5.1 */
#define EV_IORING_OP_EPOLL_CTL    29 /* 5.6 */

/*
 * completion queue entry (5.1)
 */
struct ev_io_uring_cqe
{
  uint64_t user_data;
  int32_t  res;
  uint32_t flags;
};

/* magic offsets for mmap (5.1) */
#define EV_IORING_OFF_SQ_RING 0x00000000ULL
#define EV_IORING_OFF_CQ_RING 0x08000000ULL
#define EV_IORING_OFF_SQES    0x10000000ULL

/* filled in by io_uring_setup (5.1) */
struct ev_io_sqring_offsets
{
  uint32_t head;
  uint32_t tail;
  uint32_t ring_mask;
  uint32_t ring_entries;
  uint32_t flags;
  uint32_t dropped;
  uint32_t array;
  uint32_t resv1;
  uint64_t user_addr;
};

/* sq_ring->flags */
#define EV_IORING_SQ_CQ_OVERFLOW (1U << 1) /* 5.8 */
#define EV_IORING_SQ_TASKRUN     (1U << 2) /* 5.19 */

struct ev_io_cqring_offsets
{
  uint32_t head;
  uint32_t tail;
  uint32_t ring_mask;
  uint32_t ring_entries;
  uint32_t overflow;
  uint32_t cqes;
  uint32_t flags;
  uint32_t resv1;
  uint64_t user_addr;
};

/* io_uring_enter(2) flags */
#define EV_IORING_ENTER_GETEVENTS       (1U << 0) /* 5.1 */
#define EV_IORING_ENTER_EXT_ARG         (1U << 3) /* 5.11 */
#define EV_IORING_ENTER_NO_IOWAIT       (1U << 7) /* 6.15 */

/* passed to io_uring_setup, copied back with updated info (5.1) */
struct ev_io_uring_params
{
  uint32_t sq_entries;
  uint32_t cq_entries;
  uint32_t flags;
  uint32_t sq_thread_cpu;
  uint32_t sq_thread_idle;
  uint32_t features;
  uint32_t wq_fd;
  uint32_t resv [3];
  struct ev_io_sqring_offsets sq_off;
  struct ev_io_cqring_offsets cq_off;
};

/* io_uring_params->features flags */
#define EV_IORING_FEAT_SINGLE_MMAP (1U <<  0) /* 5.4 */
#define EV_IORING_FEAT_NODROP      (1U <<  1) /* 5.5 */
#define EV_IORING_FEAT_POLL_32BITS (1U <<  6) /* 5.9 */
#define EV_IORING_FEAT_EXT_ARG     (1U <<  8) /* 5.11 */
#define EV_IORING_FEAT_CQE_SKIP    (1U << 11) /* 5.17 */
#define EV_IORING_FEAT_NO_IOWAIT   (1U << 17) /* 6.15 */

/* the kernel's struct __kernel_timespec */
struct ev_io_uring_timespec
{
  int64_t tv_sec;
  int64_t tv_nsec;
};

/* IORING_ENTER_EXT_ARG argument (5.11) */
struct ev_io_uring_getevents_arg
{
  uint64_t sigmask;
  uint32_t sigmask_sz;
  uint32_t min_wait_usec; /* 6.12; pad before */
  uint64_t ts;
};

/*
 * layout assertions: a negative array size stops the build, in C and C++
 */
#define EV_IOURING_ABI_CHECK(name,cond) typedef char ev_iouring_abi_check_ ## name [(cond) ? 1 : -1]

EV_IOURING_ABI_CHECK (sqe_size,          sizeof (struct ev_io_uring_sqe)             == 64);
EV_IOURING_ABI_CHECK (sqe_user_data,     offsetof (struct ev_io_uring_sqe, user_data) == 32);
EV_IOURING_ABI_CHECK (sqe_len,           offsetof (struct ev_io_uring_sqe, len)       == 24);
EV_IOURING_ABI_CHECK (cqe_size,          sizeof (struct ev_io_uring_cqe)             == 16);
EV_IOURING_ABI_CHECK (sq_off_size,       sizeof (struct ev_io_sqring_offsets)        == 40);
EV_IOURING_ABI_CHECK (cq_off_size,       sizeof (struct ev_io_cqring_offsets)        == 40);
EV_IOURING_ABI_CHECK (params_size,       sizeof (struct ev_io_uring_params)          == 120);
EV_IOURING_ABI_CHECK (params_sq_off,     offsetof (struct ev_io_uring_params, sq_off) == 40);
EV_IOURING_ABI_CHECK (params_cq_off,     offsetof (struct ev_io_uring_params, cq_off) == 80);
EV_IOURING_ABI_CHECK (timespec_size,     sizeof (struct ev_io_uring_timespec)        == 16);
EV_IOURING_ABI_CHECK (getevents_size,    sizeof (struct ev_io_uring_getevents_arg)   == 24);

#endif
