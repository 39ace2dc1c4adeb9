/*
 * test_abi.c: ev_iouring_abi.h against liburing's headers (2.3 here).
 * every struct: size, and offset and size of every field; every constant
 * the header defines: equal to liburing's where liburing has it, else to
 * the kernel's value, written here with its version.  a last test reads
 * ev_iouring_abi.h and fails for any EV_ constant this file does not check.
 *
 * this binary needs no io_uring at run time: it does not skip when the
 * kernel lacks io_uring (a layout check is worth most where nothing else
 * can run).
 */

#define _GNU_SOURCE 1

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/time_types.h>

#include <liburing.h>

#include "common.h"

/*****************************************************************************/
/* structs */

#define ABI_SIZE(ours, theirs) \
  assert_int_equal (sizeof (struct ours), sizeof (struct theirs))

#define ABI_FIELD(ours, theirs, of, tf)                                   \
  do {                                                                    \
    assert_int_equal (offsetof (struct ours, of), offsetof (struct theirs, tf)); \
    assert_int_equal (sizeof (((struct ours *)0)->of),                    \
                      sizeof (((struct theirs *)0)->tf));                 \
  } while (0)

static void
test_abi_sqe (void **state)
{
  (void)state;

  ABI_SIZE (ev_io_uring_sqe, io_uring_sqe);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, opcode, opcode);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, flags, flags);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, ioprio, ioprio);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, fd, fd);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, off, off);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, addr, addr);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, len, len);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, poll32_events, poll32_events);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, user_data, user_data);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, buf_index, buf_index);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, personality, personality);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, splice_fd_in, splice_fd_in);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, addr3, addr3);
  ABI_FIELD (ev_io_uring_sqe, io_uring_sqe, pad2, __pad2);

  /* the union members the backend reaches through poll32_events */
  assert_int_equal (offsetof (struct io_uring_sqe, poll_events), 28);
  assert_int_equal (offsetof (struct io_uring_sqe, timeout_flags), 28);
  assert_int_equal (offsetof (struct io_uring_sqe, cancel_flags), 28);
}

static void
test_abi_cqe (void **state)
{
  (void)state;

  ABI_SIZE (ev_io_uring_cqe, io_uring_cqe);
  ABI_FIELD (ev_io_uring_cqe, io_uring_cqe, user_data, user_data);
  ABI_FIELD (ev_io_uring_cqe, io_uring_cqe, res, res);
  ABI_FIELD (ev_io_uring_cqe, io_uring_cqe, flags, flags);
}

static void
test_abi_ring_offsets (void **state)
{
  (void)state;

  ABI_SIZE (ev_io_sqring_offsets, io_sqring_offsets);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, head, head);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, tail, tail);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, ring_mask, ring_mask);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, ring_entries, ring_entries);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, flags, flags);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, dropped, dropped);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, array, array);
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, resv1, resv1);
  /* user_addr (6.5, IORING_SETUP_NO_MMAP) was resv2 before */
  ABI_FIELD (ev_io_sqring_offsets, io_sqring_offsets, user_addr, resv2);

  ABI_SIZE (ev_io_cqring_offsets, io_cqring_offsets);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, head, head);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, tail, tail);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, ring_mask, ring_mask);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, ring_entries, ring_entries);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, overflow, overflow);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, cqes, cqes);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, flags, flags);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, resv1, resv1);
  ABI_FIELD (ev_io_cqring_offsets, io_cqring_offsets, user_addr, resv2);
}

static void
test_abi_params (void **state)
{
  (void)state;

  ABI_SIZE (ev_io_uring_params, io_uring_params);
  ABI_FIELD (ev_io_uring_params, io_uring_params, sq_entries, sq_entries);
  ABI_FIELD (ev_io_uring_params, io_uring_params, cq_entries, cq_entries);
  ABI_FIELD (ev_io_uring_params, io_uring_params, flags, flags);
  ABI_FIELD (ev_io_uring_params, io_uring_params, sq_thread_cpu, sq_thread_cpu);
  ABI_FIELD (ev_io_uring_params, io_uring_params, sq_thread_idle, sq_thread_idle);
  ABI_FIELD (ev_io_uring_params, io_uring_params, features, features);
  ABI_FIELD (ev_io_uring_params, io_uring_params, wq_fd, wq_fd);
  ABI_FIELD (ev_io_uring_params, io_uring_params, resv, resv);
  ABI_FIELD (ev_io_uring_params, io_uring_params, sq_off, sq_off);
  ABI_FIELD (ev_io_uring_params, io_uring_params, cq_off, cq_off);
}

static void
test_abi_getevents_arg (void **state)
{
  (void)state;

  ABI_SIZE (ev_io_uring_getevents_arg, io_uring_getevents_arg);
  ABI_FIELD (ev_io_uring_getevents_arg, io_uring_getevents_arg, sigmask, sigmask);
  ABI_FIELD (ev_io_uring_getevents_arg, io_uring_getevents_arg, sigmask_sz, sigmask_sz);
  /* min_wait_usec (6.12) was pad before */
  ABI_FIELD (ev_io_uring_getevents_arg, io_uring_getevents_arg, min_wait_usec, pad);
  ABI_FIELD (ev_io_uring_getevents_arg, io_uring_getevents_arg, ts, ts);

  ABI_SIZE (ev_io_uring_timespec, __kernel_timespec);
  ABI_FIELD (ev_io_uring_timespec, __kernel_timespec, tv_sec, tv_sec);
  ABI_FIELD (ev_io_uring_timespec, __kernel_timespec, tv_nsec, tv_nsec);
}

/*****************************************************************************/
/* constants: every EV_ name of ev_iouring_abi.h, generated from the header
   (sed -n 's/^# *define \(EV_[A-Za-z0-9_]*\).*$/\1/p' ev_iouring_abi.h) */

struct abi_const
{
  const char        *name;
  unsigned long long ours, theirs;
  const char        *from;   /* "liburing" or the kernel version */
};

/* in liburing 2.3 as a macro or an enum */
#define ABI_LIB(n) { "EV_" #n, (unsigned long long)(EV_ ## n), (unsigned long long)(n), "liburing" }

/* newer than liburing 2.3: liburing's if a newer one defines it, else the
   kernel uapi value */
#define ABI_KERNEL(n, v, ver) { "EV_" #n, (unsigned long long)(EV_ ## n), (unsigned long long)(v), ver }

#ifndef IORING_SETUP_NO_SQARRAY
# define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_ENTER_NO_IOWAIT
# define IORING_ENTER_NO_IOWAIT (1U << 7)
#endif
#ifndef IORING_FEAT_NO_IOWAIT
# define IORING_FEAT_NO_IOWAIT (1U << 17)
#endif

static const struct abi_const abi_consts [] = {
  /* syscall numbers */
  { "EV_SYS_io_uring_setup",    EV_SYS_io_uring_setup,    __NR_io_uring_setup,    "<sys/syscall.h>" },
  { "EV_SYS_io_uring_enter",    EV_SYS_io_uring_enter,    __NR_io_uring_enter,    "<sys/syscall.h>" },

  /* sqe->flags */
  ABI_LIB (IOSQE_CQE_SKIP_SUCCESS),

  /* io_uring_setup () flags */
  ABI_LIB (IORING_SETUP_CQSIZE),
  ABI_LIB (IORING_SETUP_CLAMP),
  ABI_LIB (IORING_SETUP_SUBMIT_ALL),
  ABI_LIB (IORING_SETUP_COOP_TASKRUN),
  ABI_LIB (IORING_SETUP_TASKRUN_FLAG),
  ABI_KERNEL (IORING_SETUP_NO_SQARRAY, IORING_SETUP_NO_SQARRAY, "6.6"),

  /* opcodes */
  ABI_LIB (IORING_OP_POLL_ADD),
  ABI_LIB (IORING_OP_POLL_REMOVE),
  ABI_LIB (IORING_OP_EPOLL_CTL),

  /* mmap offsets, sq ring flags */
  ABI_LIB (IORING_OFF_SQ_RING),
  ABI_LIB (IORING_OFF_CQ_RING),
  ABI_LIB (IORING_OFF_SQES),
  ABI_LIB (IORING_SQ_CQ_OVERFLOW),
  ABI_LIB (IORING_SQ_TASKRUN),

  /* io_uring_enter (2) flags */
  ABI_LIB (IORING_ENTER_GETEVENTS),
  ABI_LIB (IORING_ENTER_EXT_ARG),
  ABI_KERNEL (IORING_ENTER_NO_IOWAIT, IORING_ENTER_NO_IOWAIT, "6.15"),

  /* features */
  ABI_LIB (IORING_FEAT_SINGLE_MMAP),
  ABI_LIB (IORING_FEAT_NODROP),
  ABI_LIB (IORING_FEAT_POLL_32BITS),
  ABI_LIB (IORING_FEAT_EXT_ARG),
  ABI_LIB (IORING_FEAT_CQE_SKIP),
  ABI_KERNEL (IORING_FEAT_NO_IOWAIT, IORING_FEAT_NO_IOWAIT, "6.15"),

};

#define ABI_NCONSTS (sizeof (abi_consts) / sizeof (abi_consts [0]))

static void
test_abi_constants (void **state)
{
  unsigned int i, bad = 0;

  (void)state;

  for (i = 0; i < ABI_NCONSTS; ++i)
    if (abi_consts [i].ours != abi_consts [i].theirs)
      {
        print_error ("%s is 0x%llx, %s says 0x%llx\n", abi_consts [i].name,
                     abi_consts [i].ours, abi_consts [i].from, abi_consts [i].theirs);
        ++bad;
      }

  assert_int_equal (bad, 0);
}

/* ev_iouring_abi.h: $TEST_ABI_HEADER, else next to the source (from
   __FILE__), else above the binary (build/test/test_abi) */
static FILE *
abi_header_open (void)
{
  static const char *const up [] = { "/../..", "/..", "/../../.." };
  const char *env = getenv ("TEST_ABI_HEADER");
  const char *slash = strrchr (__FILE__, '/');
  char path [4096], exe [2048];
  unsigned int i;
  ssize_t len;
  FILE *f;

  if (env)
    return fopen (env, "r");

  snprintf (path, sizeof path, "%.*s/../ev_iouring_abi.h",
            slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
  if ((f = fopen (path, "r")))
    return f;

  len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0)
    return 0;
  exe [len] = 0;
  *strrchr (exe, '/') = 0;

  for (i = 0; i < sizeof up / sizeof up [0]; ++i)
    {
      snprintf (path, sizeof path, "%s%s/ev_iouring_abi.h", exe, up [i]);
      if ((f = fopen (path, "r")))
        return f;
    }

  return 0;
}

/* every constant the header defines is checked above */
static void
test_abi_constants_complete (void **state)
{
  char line [512], name [128];
  unsigned int i, n = 0, missing = 0;
  FILE *f = abi_header_open ();

  (void)state;

  if (!f)
    fail_msg ("cannot open ev_iouring_abi.h (set TEST_ABI_HEADER)");

  while (fgets (line, sizeof line, f))
    {
      if (sscanf (line, "# define %127[A-Za-z0-9_]", name) != 1
          && sscanf (line, "#define %127[A-Za-z0-9_]", name) != 1)
        continue;

      /* the include guard and the assertion macro are no abi */
      if (strncmp (name, "EV_", 3) || !strcmp (name, "EV_IOURING_ABI_H")
          || !strcmp (name, "EV_IOURING_ABI_CHECK"))
        continue;

      ++n;
      for (i = 0; i < ABI_NCONSTS; ++i)
        if (!strcmp (name, abi_consts [i].name))
          break;

      if (i == ABI_NCONSTS)
        {
          print_error ("%s is defined by ev_iouring_abi.h but not checked by test_abi.c\n", name);
          ++missing;
        }
    }

  fclose (f);

  /* the header defines the syscall numbers once per architecture */
  assert_true (n >= ABI_NCONSTS);
  assert_int_equal (missing, 0);
}

static const struct CMUnitTest tests [] = {
  cmocka_unit_test (test_abi_constants),
  cmocka_unit_test (test_abi_constants_complete),
  cmocka_unit_test (test_abi_cqe),
  cmocka_unit_test (test_abi_getevents_arg),
  cmocka_unit_test (test_abi_params),
  cmocka_unit_test (test_abi_ring_offsets),
  cmocka_unit_test (test_abi_sqe),
};

int
main (void)
{
  test_probe (); /* the result does not matter here, see the top */

  return cmocka_run_group_tests (tests, NULL, NULL);
}
