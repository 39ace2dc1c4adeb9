/*
 * test_chain.c: DESIGN.md scenario 2, libevent's bench.c as a test.
 *
 * n pipes, each watched for EV_READ; a of them get one byte; each callback
 * reads one byte and, while there are writes left (w in all), writes one
 * byte to the next pipe.  when the loop is done exactly a + w bytes were
 * read by exactly a + w callbacks, none found its pipe empty, and every
 * pipe is empty.  like bench.c, each round first stops, sets and starts
 * every watcher (libev 4.33's backend aborted on that with n = 2); three
 * rounds per test, with EVRUN_NOWAIT iterations or blocking ones.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define TEST_CHAIN_WRITES 1000

struct chain
{
  int     n, active, writes;
  int    *fds;        /* 2 * n: read end, write end */
  ev_io  *w;
  int     count;      /* bytes read */
  int     fired;      /* bytes written */
  int     calls;
  int     spurious;   /* callbacks that found nothing to read */
  int     timed_out;
  ev_timer watchdog;
};

static struct chain chain;

static void
chain_read_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  int idx  = (int)(intptr_t)w->data;
  int widx = idx + 1 == chain.n ? 0 : idx + 1;
  char c;

  (void)loop;
  (void)revents;
  ++chain.calls;

  if (read (w->fd, &c, 1) != 1)
    {
      ++chain.spurious;
      return;
    }

  ++chain.count;

  if (chain.writes)
    {
      if (write (chain.fds [widx * 2 + 1], "e", 1) == 1)
        {
          --chain.writes;
          ++chain.fired;
        }
    }
}

static void
chain_watchdog_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void)w;
  (void)revents;
  chain.timed_out = 1;
  ev_break (loop, EVBREAK_ALL);
}

/* a failed assertion left the previous chain's fds open (its loop is gone) */
static void
chain_forget (void)
{
  int i;

  if (!chain.fds)
    return;

  for (i = 0; i < 2 * chain.n; ++i)
    close (chain.fds [i]);

  free (chain.fds);
  free (chain.w);
}

static void
chain_open (struct test_ctx *ctx, int n, int active)
{
  int i;

  chain_forget ();
  memset (&chain, 0, sizeof chain);
  chain.n      = n;
  chain.active = active;
  chain.writes = TEST_CHAIN_WRITES;
  chain.fds    = calloc (2 * n, sizeof (int));
  chain.w      = calloc (n, sizeof (ev_io));
  assert_non_null (chain.fds);
  assert_non_null (chain.w);

  for (i = 0; i < n; ++i)
    {
      assert_int_equal (pipe2 (chain.fds + 2 * i, O_NONBLOCK | O_CLOEXEC), 0);
      ev_io_init (&chain.w [i], chain_read_cb, chain.fds [2 * i], EV_READ);
      chain.w [i].data = (void *)(intptr_t)i;
      ev_io_start (ctx->loop, &chain.w [i]);
    }

  ev_timer_init (&chain.watchdog, chain_watchdog_cb, 30., 0.);
  ev_timer_start (ctx->loop, &chain.watchdog);
  ev_unref (ctx->loop);
}

static void
chain_close (struct test_ctx *ctx)
{
  int i;

  ev_ref (ctx->loop);
  ev_timer_stop (ctx->loop, &chain.watchdog);

  for (i = 0; i < chain.n; ++i)
    {
      ev_io_stop (ctx->loop, &chain.w [i]);
      close (chain.fds [2 * i]);
      close (chain.fds [2 * i + 1]);
    }

  free (chain.fds);
  free (chain.w);
  chain.fds = 0;
  chain.w   = 0;
}

static void
chain_check (void)
{
  char c;
  int i;

  assert_false (chain.timed_out);
  assert_int_equal (chain.writes, 0);
  assert_int_equal (chain.fired, chain.active + TEST_CHAIN_WRITES);
  assert_int_equal (chain.count, chain.fired);
  assert_int_equal (chain.calls, chain.fired);
  assert_int_equal (chain.spurious, 0);

  for (i = 0; i < chain.n; ++i)
    assert_int_equal (read (chain.fds [2 * i], &c, 1), -1);
}

/* one run of bench.c's run_once: re-add every watcher, seed the active
   pipes, loop until every byte written has been read */
static void
chain_round (struct test_ctx *ctx, int flags)
{
  int iterations = 0, limit = 10 * (chain.active + TEST_CHAIN_WRITES) + 1000;
  int i;

  for (i = 0; i < chain.n; ++i)
    {
      ev_io_stop (ctx->loop, &chain.w [i]);
      ev_io_set (&chain.w [i], chain.fds [2 * i], EV_READ);
      ev_io_start (ctx->loop, &chain.w [i]);
    }

  chain.count    = 0;
  chain.fired    = 0;
  chain.calls    = 0;
  chain.spurious = 0;
  chain.writes   = TEST_CHAIN_WRITES;

  /* bench.c spreads the active pipes evenly */
  for (i = 0; i < chain.active; ++i)
    {
      test_put (chain.fds [(chain.n / chain.active) * i * 2 + 1]);
      ++chain.fired;
    }

  while (chain.count != chain.fired && !chain.timed_out && iterations++ < limit)
    ev_run (ctx->loop, flags);

  /* nothing more happens once the chain has run dry */
  test_run_nowait (ctx->loop, 3);

  chain_check ();
}

static void
chain_run (void **state, int n, int active, int flags)
{
  struct test_ctx *ctx = *state;
  int round;

  /* 2 * n pipe ends: more than a soft RLIMIT_NOFILE of 1024 from 500 on */
  if (!test_fd_room (2 * n))
    skip ();

  chain_open (ctx, n, active);

  for (round = 0; round < 3; ++round)
    chain_round (ctx, flags);

  chain_close (ctx);
}

static void
test_chain_2_nowait (void **state)
{
  chain_run (state, 2, 1, EVRUN_NOWAIT);
}

static void
test_chain_2_once (void **state)
{
  chain_run (state, 2, 1, EVRUN_ONCE);
}

static void
test_chain_10_nowait (void **state)
{
  chain_run (state, 10, 1, EVRUN_NOWAIT);
}

static void
test_chain_10_once (void **state)
{
  chain_run (state, 10, 1, EVRUN_ONCE);
}

static void
test_chain_100_nowait (void **state)
{
  chain_run (state, 100, 10, EVRUN_NOWAIT);
}

static void
test_chain_100_once (void **state)
{
  chain_run (state, 100, 10, EVRUN_ONCE);
}

static void
test_chain_1000_nowait (void **state)
{
  chain_run (state, 1000, 100, EVRUN_NOWAIT);
}

static void
test_chain_1000_once (void **state)
{
  chain_run (state, 1000, 100, EVRUN_ONCE);
}

static void
test_chain_10000_nowait (void **state)
{
  chain_run (state, 10000, 100, EVRUN_NOWAIT);
}

static void
test_chain_10000_once (void **state)
{
  chain_run (state, 10000, 100, EVRUN_ONCE);
}

/* the largest chain that fits a 20000 fd limit */
static void
test_chain_9000_once (void **state)
{
  chain_run (state, 9000, 100, EVRUN_ONCE);
}

/* all pipes active at once, each fed by its predecessor */
static void
test_chain_1000_all_active (void **state)
{
  chain_run (state, 1000, 1000, EVRUN_ONCE);
}

static const struct CMUnitTest tests [] = {
  TEST_ALL (test_chain_1000_all_active),
  TEST_ALL (test_chain_10000_nowait),
  TEST_ALL (test_chain_10000_once),
  TEST_ALL (test_chain_1000_nowait),
  TEST_ALL (test_chain_1000_once),
  TEST_ALL (test_chain_100_nowait),
  TEST_ALL (test_chain_100_once),
  TEST_ALL (test_chain_10_nowait),
  TEST_ALL (test_chain_10_once),
  TEST_ALL (test_chain_2_nowait),
  TEST_ALL (test_chain_2_once),
  TEST_ALL (test_chain_9000_once),
};

int
main (void)
{
  if (test_probe ())
    return 77;

  return cmocka_run_group_tests (tests, NULL, NULL);
}
