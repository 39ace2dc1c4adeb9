/*
 * hooks.c - for bench/features.sh: bench.c + this + tests/fakekernel.c,
 * linked with the libev.a that ships, take one optional io_uring feature
 * away at a time to measure what it was worth.  the fake kernel of the
 * tests (fakekernel.c interposes syscall ()) does the taking away.
 *
 *   BENCH_NOSETUP     EV_IORING_SETUP_* flags the fake kernel rejects
 *   BENCH_NOFEAT      EV_IORING_FEAT_* bits hidden from the backend
 *   BENCH_RING        set: at exit, the last ring handed out, on stderr
 *                     (bench.c's loops are EVFLAG_NOENV, so
 *                     LIBEV_IOURING_VERBOSE says nothing)
 *
 * Values are numbers (strtoul base 0: 0x100 works).
 */

#include <stdio.h>
#include <stdlib.h>

#include "fakekernel.h"

static unsigned int
env_mask (const char *name)
{
  const char *v = getenv (name);

  return v ? (unsigned int)strtoul (v, 0, 0) : 0;
}

__attribute__ ((constructor)) static void
bench_hooks_init (void)
{
  ev_iouring_test_nosetup = env_mask ("BENCH_NOSETUP");
  ev_iouring_test_nofeat  = env_mask ("BENCH_NOFEAT");
}

__attribute__ ((destructor)) static void
bench_hooks_ring (void)
{
  if (getenv ("BENCH_RING"))
    fprintf (stderr, "ring: sq %u cq %u, features 0x%x, setup flags 0x%x\n",
             ev_iouring_test_sq_entries, ev_iouring_test_cq_entries,
             ev_iouring_test_features, ev_iouring_test_setup_flags);
}
