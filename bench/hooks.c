/*
 * hooks.c - the test hooks of a libev built with -DEV_IOURING_TEST_HOOKS=1,
 * for bench/features.sh: link bench.c + hooks.c with such a libev to take
 * one optional io_uring feature away at a time and measure what it was worth.
 *
 *   BENCH_NOSETUP     EV_IORING_SETUP_* flags the fake kernel rejects
 *   BENCH_NOFEAT      EV_IORING_FEAT_* bits hidden from the backend
 *   BENCH_NOREGISTER  (1 << EV_IORING_REGISTER_*) opcodes rejected
 *
 * Values are numbers (strtoul base 0: 0x100 works). Never in the product.
 */

#include <stdlib.h>

/* defined by a libev built with the hooks (ev_iouring.c) */
extern unsigned int ev_iouring_test_nofeat;
extern unsigned int ev_iouring_test_nosetup;
extern unsigned int ev_iouring_test_noregister;

static unsigned int
env_mask (const char *name)
{
  const char *v = getenv (name);

  return v ? (unsigned int)strtoul (v, 0, 0) : 0;
}

__attribute__ ((constructor)) static void
bench_hooks_init (void)
{
  ev_iouring_test_nosetup    = env_mask ("BENCH_NOSETUP");
  ev_iouring_test_nofeat     = env_mask ("BENCH_NOFEAT");
  ev_iouring_test_noregister = env_mask ("BENCH_NOREGISTER");
}
