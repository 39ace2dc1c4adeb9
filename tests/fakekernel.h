/*
 * fakekernel.h: the io_uring kernel that tests/fakekernel.c pretends to be,
 * for every object linked into the same binary (libev.a among them).
 *
 * the inputs fake an older or hostile kernel; the outputs say what the
 * last ring handed out looked like.  all of them start at zero, which is
 * the real kernel, unchanged.  tests/common.h includes this header; the
 * benchmark (bench/hooks.c) uses it without cmocka.
 */

#ifndef TESTS_FAKEKERNEL_H
#define TESTS_FAKEKERNEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* inputs */
extern unsigned int  ev_iouring_test_nofeat;      /* EV_IORING_FEAT_* hidden from every new ring */
extern unsigned int  ev_iouring_test_nosetup;     /* EV_IORING_SETUP_* refused with EINVAL */
extern int           ev_iouring_test_setup_errno; /* every io_uring_setup fails with it */
extern unsigned int  ev_iouring_test_setup_max;   /* more sq entries than this: ENOMEM */
extern int           ev_iouring_test_enter_errno; /* the next io_uring_enter fails with it */

/* outputs: the last ring io_uring_setup handed out, as the caller saw it */
extern unsigned int  ev_iouring_test_setup_flags; /* the flags it was made with */
extern unsigned int  ev_iouring_test_features;    /* its features, less the hidden ones */
extern unsigned int  ev_iouring_test_sq_entries;
extern unsigned int  ev_iouring_test_cq_entries;

/* outputs: counters, never reset */
extern unsigned long ev_iouring_test_rings;       /* rings handed out (successful setups) */
extern unsigned long ev_iouring_test_enters;      /* io_uring_enter calls */
extern unsigned long ev_iouring_test_submitted;   /* sqes those calls handed over */
extern unsigned long ev_iouring_test_hidden_used; /* enters that used a hidden feature (EINVAL) */

#ifdef __cplusplus
}
#endif

#endif
