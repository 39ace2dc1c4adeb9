/*
 * bench.c - event loop micro benchmarks on libev's public API
 *
 * One program, linked either with our libev (io_uring backend from this
 * project) or with pristine libev 4.33; the backend is picked with -b, so
 * the same binary measures epoll (-b 4) and io_uring (-b 128).
 *
 * Workloads (-w):
 *   chain     libevent's test/bench.c pipe chain: n pipes, a of them written,
 *             every read writes to the next pipe until w writes are done.
 *             Each round first re-registers all n watchers (the "setup" line)
 *             then runs the loop until the chain is drained (the "chain"
 *             line). -T adds an idle ev_timer per watcher, restarted with
 *             ev_timer_again on activity, as libev's own benchmark does.
 *   churn     n socketpair watchers; a of them toggle EV_READ <->
 *             EV_READ|EV_WRITE before every iteration (EVRUN_NOWAIT).
 *   timers    n ev_timers, a of them restarted with a new random repeat per
 *             iteration, and one more whose restart makes the next timeout
 *             move earlier every other iteration (10-50 ms away, each time
 *             earlier than the last, then 2 s); one always writable fd keeps
 *             EVRUN_ONCE from sleeping.
 *   poll0     n idle watchers, EVRUN_NOWAIT with nothing ready.
 *   idle      n idle watchers and one 1 ms repeating timer: a round is one
 *             expiry (ev_run until i expiries), so wakeups the backend adds
 *             show as loops > rounds and as cpu per round.
 *   pingpong  one byte bounced between this process and a forked peer over
 *             a socketpair (-k pipe: a pair of pipes), each with its own loop
 *             on the same backend.
 *   tonly     n repeating timers, each every 1-20 ms (random), no fds: a
 *             round is one expiry, so loops per round is wakeups per timer;
 *             stderr gets the mean and largest lateness past the deadline.
 *   wchurn    n socketpairs; a EV_WRITE watchers started per iteration
 *             (EVRUN_ONCE), each stopped in its callback, as a server does
 *             around a write that would block.
 *   mem       the loop's kernel memory with n idle fds armed (both ends of
 *             n/2 socketpairs, each with an EV_READ watcher): once the loop
 *             has run 4 times (EVRUN_NOWAIT, "armed"), after 1.2 s of
 *             idling ("idle"; idle polls move to an epoll set after 0.4 to
 *             0.8 s) and 0.2 s after ev_loop_destroy ("destroyed"). Each
 *             figure is a difference from before ev_loop_new:
 *               ring      Size of the anon_inode:[io_uring] mappings in
 *                         /proc/self/smaps (ring_rss: their Rss)
 *               memlock   what the kernel charges to this user's
 *                         RLIMIT_MEMLOCK, found by probing (memlock_charge)
 *               slab      objects in the io_kiocb, eventpoll_epi and
 *                         eventpoll_pwq caches times their slab size, from
 *                         /sys/kernel/slab (root only; approximate: merged
 *                         caches, other processes, per-cpu slabs)
 *             "-": could not be measured as this user.
 *
 * Output: one tab-separated line per measured phase on stdout:
 *   workload params backend rounds loops wall_s cpu_s usec_per_round
 * except mem:
 *   mem params backend ring_bytes ring_rss_bytes memlock_bytes slab_bytes uid
 * "loops" is the number of ev_run iterations (both processes for pingpong),
 * "cpu_s" is user+system time from getrusage (peer included for pingpong).
 * -H prints a header line first. Exit status 2: backend not available.
 *
 * Copyright: written for this project, under libev's BSD-2/GPL-2+ licence.
 */

#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ev.h>

static struct ev_loop *loop;
static unsigned int bench_flags = EVBACKEND_EPOLL;
static const char *bench_workload = "chain";
static int bench_n      = 100;
static int bench_a      = 1;
static int bench_w      = 100;
static int bench_rounds = 100;
static int bench_once;          /* EVRUN_ONCE instead of EVRUN_NOWAIT */
static int bench_timers;        /* chain: one idle ev_timer per watcher */
static int bench_pipes;         /* pingpong: pipes instead of a socketpair */

/* single watchers live here and are used through pointers: ev.h's casts
 * make gcc -Wstrict-aliasing warn about ev_init on a named object */
static ev_io pp_io_storage, timers_io_storage;
static ev_timer idle_tick_storage, timers_lead_storage;
static ev_io    *const pp_io       = &pp_io_storage;
static ev_io    *const timers_io   = &timers_io_storage;
static ev_timer *const idle_tick   = &idle_tick_storage;
static ev_timer *const timers_lead = &timers_lead_storage;
static int *fds;                /* chain: n pipes; churn/poll0/idle: n pairs */
static ev_io *ios;
static ev_timer *tms;

/* chain state, as in libevent's bench.c */
static int chain_count, chain_writes, chain_fired, chain_failures;

struct meter
{
  struct timespec ts;
  struct rusage ru;
};

static double
meter_wall (const struct meter *m0, const struct meter *m1)
{
  return (m1->ts.tv_sec - m0->ts.tv_sec) + (m1->ts.tv_nsec - m0->ts.tv_nsec) * 1e-9;
}

static double
rusage_cpu (const struct rusage *ru)
{
  return ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6
       + ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
}

static void
meter_read (struct meter *m)
{
  getrusage (RUSAGE_SELF, &m->ru);
  clock_gettime (CLOCK_MONOTONIC, &m->ts);
}

static const char *
backend_name (unsigned int b)
{
  switch (b)
    {
      case EVBACKEND_SELECT:   return "select";
      case EVBACKEND_POLL:     return "poll";
      case EVBACKEND_EPOLL:    return "epoll";
      case 0x00000040U:        return "linuxaio";
      case 0x00000080U:        return "io_uring";
      default:                 return "other";
    }
}

static void
die (const char *what)
{
  perror (what);
  exit (1);
}

static void
report (const char *workload, const char *params, long rounds, unsigned long loops,
        double wall, double cpu)
{
  printf ("%s\t%s\t%s\t%ld\t%lu\t%.6f\t%.6f\t%.3f\n",
          workload, params, backend_name (ev_backend (loop)), rounds, loops,
          wall, cpu, rounds ? wall * 1e6 / rounds : 0.);
  fflush (stdout);
}

static void
fd_nonblock (int fd)
{
  if (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK) < 0)
    die ("fcntl");
}

static void
fds_open (int n, int sockets)
{
  int i;

  fds = calloc (2 * n, sizeof (int));
  ios = calloc (n, sizeof (ev_io));
  tms = calloc (n, sizeof (ev_timer));

  if (!fds || !ios || !tms)
    die ("calloc");

  for (i = 0; i < n; ++i)
    {
      if (sockets ? socketpair (AF_UNIX, SOCK_STREAM, 0, fds + 2 * i) : pipe (fds + 2 * i))
        die (sockets ? "socketpair" : "pipe (raise RLIMIT_NOFILE or lower -n)");

      fd_nonblock (fds [2 * i]);
      fd_nonblock (fds [2 * i + 1]);
    }
}

static void
nofile_raise (void)
{
  struct rlimit rl;

  if (!getrlimit (RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
}

/* watchers whose events only have to be seen; chain's 10 s idle timers never fire */
static void
nop_io_cb (EV_P_ ev_io *w, int revents)
{
  (void)EV_A; (void)w; (void)revents;
}

static void
nop_timer_cb (EV_P_ ev_timer *w, int revents)
{
  (void)EV_A; (void)w; (void)revents;
}

/*****************************************************************************/
/* chain */

static void
chain_read_cb (EV_P_ ev_io *w, int revents)
{
  long idx  = (long)w->data;
  long widx = idx + 1;
  unsigned char ch;

  (void)revents;

  if (read (w->fd, &ch, 1) == 1)
    ++chain_count;
  else
    ++chain_failures;

  if (chain_writes)
    {
      if (widx >= bench_n)
        widx -= bench_n;

      if (write (fds [2 * widx + 1], "e", 1) != 1)
        ++chain_failures;

      --chain_writes;
      ++chain_fired;
    }

  if (bench_timers)
    ev_timer_again (EV_A_ &tms [idx]);
}

static void
bench_chain (const char *params)
{
  struct meter m0, m1, m2;
  double setup_wall = 0., setup_cpu = 0., run_wall = 0., run_cpu = 0.;
  unsigned long setup_loops = 0, run_loops = 0;
  int space = bench_n / bench_a * 2;
  int r, i;

  fds_open (bench_n, 0);

  for (i = 0; i < bench_n; ++i)
    {
      ev_init (&ios [i], chain_read_cb);
      ios [i].data = (void *)(long)i;
      ev_init (&tms [i], nop_timer_cb);
    }

  for (r = 0; r < bench_rounds; ++r)
    {
      unsigned int it0 = ev_iteration (loop), it1;

      meter_read (&m0);

      for (i = 0; i < bench_n; ++i)
        {
          ev_io_stop (loop, &ios [i]);
          ev_io_set (&ios [i], fds [2 * i], EV_READ);
          ev_io_start (loop, &ios [i]);

          if (bench_timers)
            {
              ev_timer_stop (loop, &tms [i]);
              tms [i].repeat = 10. + drand48 ();
              ev_timer_again (loop, &tms [i]);
            }
        }

      ev_run (loop, EVRUN_NOWAIT);

      chain_fired = 0;
      for (i = 0; i < bench_a; ++i, ++chain_fired)
        if (write (fds [i * space + 1], "e", 1) != 1)
          ++chain_failures;

      chain_count  = 0;
      chain_writes = bench_w;

      meter_read (&m1);
      it1 = ev_iteration (loop);

      do
        ev_run (loop, bench_once ? EVRUN_ONCE : EVRUN_NOWAIT);
      while (chain_count != chain_fired);

      meter_read (&m2);

      setup_wall  += meter_wall (&m0, &m1);
      setup_cpu   += rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru);
      run_wall    += meter_wall (&m1, &m2);
      run_cpu     += rusage_cpu (&m2.ru) - rusage_cpu (&m1.ru);
      setup_loops += it1 - it0;
      run_loops   += ev_iteration (loop) - it1;
    }

  if (chain_failures)
    fprintf (stderr, "bench: chain: %d failed reads/writes\n", chain_failures);

  report ("chain", params, bench_rounds, run_loops, run_wall, run_cpu);
  report ("chain-setup", params, bench_rounds, setup_loops, setup_wall, setup_cpu);
}

/*****************************************************************************/
/* churn: interest changes every iteration */

/* ev_io_modify in 4.33's ev.h trips -Wparentheses */
static void
churn_modify (ev_io *w, int events)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wparentheses"
  ev_io_modify (w, events);
#pragma GCC diagnostic pop
}

static void
bench_churn (const char *params)
{
  struct meter m0, m1;
  unsigned int it0;
  int r, i;

  fds_open (bench_n, 1);

  for (i = 0; i < bench_n; ++i)
    {
      ev_io_init (&ios [i], nop_io_cb, fds [2 * i], EV_READ);
      ev_io_start (loop, &ios [i]);
    }

  ev_run (loop, EVRUN_NOWAIT);

  it0 = ev_iteration (loop);
  meter_read (&m0);

  for (r = 0; r < bench_rounds; ++r)
    {
      int ev = r & 1 ? EV_READ : EV_READ | EV_WRITE;

      for (i = 0; i < bench_a; ++i)
        {
          ev_io_stop (loop, &ios [i]);
          churn_modify (&ios [i], ev);
          ev_io_start (loop, &ios [i]);
        }

      ev_run (loop, EVRUN_NOWAIT);
    }

  meter_read (&m1);
  report ("churn", params, bench_rounds, ev_iteration (loop) - it0,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru));
}

/*****************************************************************************/
/* timers: the next timeout keeps moving */

static void
bench_timers_run (const char *params)
{
  struct meter m0, m1;
  unsigned int it0;
  int r, i, next = 0;

  fds_open (1, 1);
  tms = realloc (tms, bench_n * sizeof (ev_timer));

  if (!tms)
    die ("realloc");

  for (i = 0; i < bench_n; ++i)
    {
      ev_timer_init (&tms [i], nop_timer_cb, 0., 0.1 + drand48 ());
      ev_timer_again (loop, &tms [i]);
    }

  /* always writable: EVRUN_ONCE returns at once, yet passes a timeout */
  ev_init (timers_lead, nop_timer_cb);
  ev_io_init (timers_io, nop_io_cb, fds [0], EV_WRITE);
  ev_io_start (loop, timers_io);
  ev_run (loop, EVRUN_NOWAIT);

  it0 = ev_iteration (loop);
  meter_read (&m0);

  for (r = 0; r < bench_rounds; ++r)
    {
      for (i = 0; i < bench_a; ++i)
        {
          tms [next].repeat = 0.1 + drand48 ();
          ev_timer_again (loop, &tms [next]);

          if (++next == bench_n)
            next = 0;
        }

      /*
       * every other iteration the next timeout moves earlier (by 10 us a
       * round, faster than the clock moves), then back to the heap's
       */
      timers_lead->repeat = r & 1 ? 0.05 - (r % 4000) * 1e-5 : 2.;
      ev_timer_again (loop, timers_lead);

      ev_run (loop, EVRUN_ONCE);
    }

  meter_read (&m1);
  report ("timers", params, bench_rounds, ev_iteration (loop) - it0,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru));
}

/*****************************************************************************/
/* tonly: timers only, each at its own 1-20 ms period */

static ev_tstamp *tonly_due;
static double tonly_late_sum, tonly_late_max;
static long tonly_left, tonly_count;

static void
tonly_cb (EV_P_ ev_timer *w, int revents)
{
  int i = (int)(w - tms);
  double late = ev_time () - tonly_due [i];

  (void)revents;

  tonly_late_sum += late;
  if (late > tonly_late_max)
    tonly_late_max = late;
  ++tonly_count;

  /* as libev does: the next expiry is a period later, or now if that has passed */
  tonly_due [i] += w->repeat;
  if (tonly_due [i] < ev_now (EV_A))
    tonly_due [i] = ev_now (EV_A);

  if (!--tonly_left)
    ev_break (EV_A_ EVBREAK_ALL);
}

static void
bench_tonly (const char *params)
{
  struct meter m0, m1;
  unsigned int it0;
  int i;

  tms       = calloc (bench_n, sizeof (ev_timer));
  tonly_due = calloc (bench_n, sizeof (ev_tstamp));

  if (!tms || !tonly_due)
    die ("calloc");

  ev_now_update (loop);

  for (i = 0; i < bench_n; ++i)
    {
      ev_tstamp every = 1e-3 * (1 + (int)(drand48 () * 20.)); /* 1 to 20 ms */

      ev_timer_init (&tms [i], tonly_cb, every, every);
      ev_timer_start (loop, &tms [i]);
      tonly_due [i] = ev_now (loop) + every;
    }

  tonly_left = bench_rounds;
  it0 = ev_iteration (loop);
  meter_read (&m0);
  ev_run (loop, 0);
  meter_read (&m1);

  fprintf (stderr, "tonly: lateness mean %.0f us, max %.0f us over %ld expiries\n",
           1e6 * tonly_late_sum / tonly_count, 1e6 * tonly_late_max, tonly_count);
  report ("tonly", params, bench_rounds, ev_iteration (loop) - it0,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru));
}

/*****************************************************************************/
/* wchurn: a write watcher started, and stopped in its callback */

static void
wchurn_cb (EV_P_ ev_io *w, int revents)
{
  (void)revents;
  ev_io_stop (EV_A_ w);
}

static void
bench_wchurn (const char *params)
{
  struct meter m0, m1;
  unsigned int it0;
  int r, i, next = 0;

  fds_open (bench_n, 1);

  for (i = 0; i < bench_n; ++i)
    ev_io_init (&ios [i], wchurn_cb, fds [2 * i], EV_WRITE);

  it0 = ev_iteration (loop);
  meter_read (&m0);

  for (r = 0; r < bench_rounds; ++r)
    {
      for (i = 0; i < bench_a; ++i)
        {
          ev_io_start (loop, &ios [next]);

          if (++next == bench_n)
            next = 0;
        }

      ev_run (loop, EVRUN_ONCE);
    }

  meter_read (&m1);
  report ("wchurn", params, bench_rounds, ev_iteration (loop) - it0,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru));
}

/*****************************************************************************/
/* poll0 and idle: nothing ready */

static int idle_ticks;

static void
idle_tick_cb (EV_P_ ev_timer *w, int revents)
{
  (void)w; (void)revents;

  if (!--idle_ticks)
    ev_break (EV_A_ EVBREAK_ALL);
}

static void
bench_idle (const char *workload, const char *params, int with_timer)
{
  struct meter m0, m1;
  unsigned int it0;
  int r, i;

  fds_open (bench_n, 0);

  for (i = 0; i < bench_n; ++i)
    {
      ev_io_init (&ios [i], nop_io_cb, fds [2 * i], EV_READ);
      ev_io_start (loop, &ios [i]);
    }

  if (with_timer)
    {
      idle_ticks = bench_rounds;
      ev_timer_init (idle_tick, idle_tick_cb, 0.001, 0.001);
      ev_timer_start (loop, idle_tick);
    }

  ev_run (loop, EVRUN_NOWAIT);

  it0 = ev_iteration (loop);
  meter_read (&m0);

  /* idle: a round is a timer expiry, however many wakeups the backend needs */
  if (with_timer)
    ev_run (loop, 0);
  else
    for (r = 0; r < bench_rounds; ++r)
      ev_run (loop, EVRUN_NOWAIT);

  meter_read (&m1);
  report (workload, params, bench_rounds, ev_iteration (loop) - it0,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru));
}

/*****************************************************************************/
/* pingpong: a byte bounced to a forked peer and back */

static int pp_rfd, pp_wfd;
static long pp_left;

static void
pingpong_cb (EV_P_ ev_io *w, int revents)
{
  char buf [64];
  ssize_t len = read (pp_rfd, buf, sizeof (buf));

  (void)w; (void)revents;

  if (len <= 0)
    {
      if (len < 0 && errno == EAGAIN)
        return;

      ev_break (EV_A_ EVBREAK_ALL);
      return;
    }

  if (pp_left && !--pp_left)
    {
      ev_break (EV_A_ EVBREAK_ALL);
      return;
    }

  if (write (pp_wfd, "p", 1) != 1)
    die ("pingpong write");
}

static void
bench_pingpong (const char *params)
{
  struct meter m0, m1;
  struct rusage ruc;
  unsigned int it0;
  unsigned long *peer_loops;
  int ab [2], ba [2];
  int status;
  pid_t pid;

  peer_loops = mmap (0, sizeof (*peer_loops), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  if (peer_loops == MAP_FAILED)
    die ("mmap");

  if (bench_pipes)
    {
      if (pipe (ab) || pipe (ba))
        die ("pipe");
    }
  else
    {
      if (socketpair (AF_UNIX, SOCK_STREAM, 0, ab))
        die ("socketpair");

      ba [0] = ab [1];
      ba [1] = ab [0];
    }

  /* the loop in main () was made before: the peer makes its own */
  pid = fork ();

  if (pid < 0)
    die ("fork");

  if (!pid)
    {
      struct ev_loop *peer = ev_loop_new (bench_flags | EVFLAG_NOENV);

      if (!peer)
        _exit (2);

      /* the peer's EOF must come from the parent's close alone */
      close (ab [1]);

      if (bench_pipes)
        close (ba [0]);

      pp_rfd  = ab [0];
      pp_wfd  = ba [1];
      pp_left = 0;
      fd_nonblock (pp_rfd);
      ev_io_init (pp_io, pingpong_cb, pp_rfd, EV_READ);
      ev_io_start (peer, pp_io);
      ev_run (peer, 0);
      *peer_loops = ev_iteration (peer);
      _exit (0);
    }

  close (ab [0]);

  if (bench_pipes)
    close (ba [1]);

  pp_rfd  = ba [0];
  pp_wfd  = ab [1];
  pp_left = bench_rounds;
  fd_nonblock (pp_rfd);
  ev_io_init (pp_io, pingpong_cb, pp_rfd, EV_READ);
  ev_io_start (loop, pp_io);
  ev_run (loop, EVRUN_NOWAIT);

  it0 = ev_iteration (loop);
  meter_read (&m0);

  if (write (pp_wfd, "p", 1) != 1)
    die ("pingpong write");

  ev_run (loop, 0);
  meter_read (&m1);

  ev_io_stop (loop, pp_io);
  close (pp_wfd);

  if (bench_pipes)
    close (pp_rfd);

  if (waitpid (pid, &status, 0) != pid)
    die ("waitpid");

  if (!WIFEXITED (status) || WEXITSTATUS (status))
    {
      fprintf (stderr, "bench: pingpong peer failed (status 0x%x)\n", status);

      if (WIFSIGNALED (status))
        raise (WTERMSIG (status));

      exit (WIFEXITED (status) ? WEXITSTATUS (status) : 1);
    }

  getrusage (RUSAGE_CHILDREN, &ruc);

  report ("pingpong", params, bench_rounds, ev_iteration (loop) - it0 + *peer_loops,
          meter_wall (&m0, &m1), rusage_cpu (&m1.ru) - rusage_cpu (&m0.ru) + rusage_cpu (&ruc));
}


/*****************************************************************************/
/* mem: the loop's kernel memory */

#ifndef SYS_io_uring_setup
# define SYS_io_uring_setup 425 /* the same number on every architecture */
#endif

struct mem_figures
{
  long long ring, ring_rss; /* bytes of anon_inode:[io_uring] mappings */
  long long memlock;        /* bytes charged to RLIMIT_MEMLOCK, -1 unknown */
  long long slab;           /* bytes in the caches of mem_caches, -1 unknown */
};

static const char *const mem_caches [] = { "io_kiocb", "eventpoll_epi", "eventpoll_pwq" };

static int *mem_ballast;        /* probe rings left open, see memlock_charge */
static int mem_nballast;
static long mem_probe_pages;    /* pages one probe ring is charged */

static void
mem_smaps (struct mem_figures *f)
{
  char line [512];
  FILE *smaps = fopen ("/proc/self/smaps", "r");
  int ours = 0;

  f->ring = f->ring_rss = 0;

  if (!smaps)
    die ("/proc/self/smaps");

  while (fgets (line, sizeof (line), smaps))
    {
      unsigned long lo, hi, off, ino;
      unsigned int maj, mnr;
      char perm [8];
      long kb;

      if (sscanf (line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perm, &off, &maj, &mnr, &ino) == 7)
        ours = !!strstr (line, "anon_inode:[io_uring]");
      else if (ours && sscanf (line, "Size: %ld kB", &kb) == 1)
        f->ring += kb * 1024;
      else if (ours && sscanf (line, "Rss: %ld kB", &kb) == 1)
        f->ring_rss += kb * 1024;
    }

  fclose (smaps);
}

static long long
mem_slab (void)
{
  long long sum = 0;
  unsigned int i;

  for (i = 0; i < sizeof (mem_caches) / sizeof (mem_caches [0]); ++i)
    {
      char path [128];
      long long objects, size;
      FILE *f;
      int ok;

      snprintf (path, sizeof (path), "/sys/kernel/slab/%s/objects", mem_caches [i]);
      f = fopen (path, "r");
      if (!f)
        return -1;
      ok = fscanf (f, "%lld", &objects) == 1;
      fclose (f);

      snprintf (path, sizeof (path), "/sys/kernel/slab/%s/slab_size", mem_caches [i]);
      f = fopen (path, "r");
      if (!f)
        return -1;
      ok = ok && fscanf (f, "%lld", &size) == 1;
      fclose (f);

      if (!ok)
        return -1;

      sum += objects * size;
    }

  return sum;
}

/* the smallest ring there is (1 sqe, 2 cqes), or -1 with errno */
static int
mem_probe_ring (void)
{
  unsigned int params [30]; /* struct io_uring_params: 120 bytes */

  memset (params, 0, sizeof (params));
  params [0] = 1;

  return (int)syscall (SYS_io_uring_setup, 1, params);
}

static int
mem_memlock_soft (rlim_t soft, rlim_t hard)
{
  struct rlimit rl;

  rl.rlim_cur = soft;
  rl.rlim_max = hard;

  return setrlimit (RLIMIT_MEMLOCK, &rl);
}

/*
 * the pages charged to this user's RLIMIT_MEMLOCK, in bytes (-1: unknown).
 * the kernel compares the user's charge plus a new ring's pages with the
 * caller's soft limit, so with the soft limit raised a page at a time from
 * 0, the first probe ring succeeds at U + P pages and the second at U + 2P
 * (U: the charge, P: a probe's pages). 0 when a probe succeeds under a
 * zero limit: this user (root: CAP_IPC_LOCK) or this kernel charges nothing.
 * a closed ring's charge comes back only when the kernel's cleanup work
 * has run (6.18: 20 to 60 ms later), so the two probes' charge is waited
 * for by probing at U + P again, and that last probe stays open as
 * ballast: its pages are known and subtracted from every later figure.
 * anything else this user charges meanwhile (another process as the same
 * user) skews the figure.
 */
static long long
memlock_charge (void)
{
  const long page = sysconf (_SC_PAGESIZE);
  struct rlimit rl;
  long long pages = -1;
  rlim_t l, first = 0, second = 0;
  int fd [2] = { -1, -1 };
  int n = 0, tries;

  if (getrlimit (RLIMIT_MEMLOCK, &rl))
    return -1;

  for (l = 0; n < 2 && (rl.rlim_max == RLIM_INFINITY || l <= rl.rlim_max); l += page)
    {
      if (mem_memlock_soft (l, rl.rlim_max))
        break;

      fd [n] = mem_probe_ring ();

      if (fd [n] >= 0)
        {
          if (!n++)
            first = l;
          else
            second = l;

          if (!l)
            break;
        }
      else if (errno != ENOMEM)
        break;
    }

  if (n == 1 && !first)
    pages = 0;
  else if (n == 2)
    {
      long p = (long)((second - first) / page);

      if (mem_probe_pages && p != mem_probe_pages)
        fprintf (stderr, "bench: mem: a probe ring took %ld pages, before %ld: the charge moved meanwhile\n",
                 p, mem_probe_pages);

      mem_probe_pages = p;
      pages = (long long)(first / page) - p - (long long)mem_nballast * p;
    }

  if (fd [0] >= 0)
    close (fd [0]);
  if (fd [1] >= 0)
    close (fd [1]);

  /* wait for the probes' charge to come back, then keep one as ballast */
  if (n == 2)
    {
      mem_memlock_soft (first, rl.rlim_max);

      for (tries = 0; tries < 300; ++tries)
        {
          int b = mem_probe_ring ();

          if (b >= 0)
            {
              mem_ballast = realloc (mem_ballast, (mem_nballast + 1) * sizeof (int));
              if (!mem_ballast)
                die ("realloc");
              mem_ballast [mem_nballast++] = b;
              break;
            }

          usleep (10000);
        }

      if (tries == 300)
        fprintf (stderr, "bench: mem: the probes' charge did not come back within 3 s\n");
    }

  setrlimit (RLIMIT_MEMLOCK, &rl);

  return pages < 0 ? -1 : pages * page;
}

/* the memlock figure once it holds still for 0.1 s: closed rings give
 * their charge back late, a replaced ring's too */
static void
mem_measure (struct mem_figures *f)
{
  long long before;
  int i;

  f->memlock = memlock_charge ();

  for (i = 0; i < 20; ++i)
    {
      usleep (100000);
      before = f->memlock;
      f->memlock = memlock_charge ();

      if (f->memlock == before)
        break;
    }

  mem_smaps (f);
  f->slab = mem_slab ();
}

static void
mem_field (long long v, long long v0, const char *sep)
{
  if (v < 0 || v0 < 0)
    printf ("-%s", sep);
  else
    printf ("%lld%s", v - v0, sep);
}

static void
mem_report (const char *params, const char *phase, const char *backend,
            const struct mem_figures *f0, const struct mem_figures *f)
{
  printf ("mem\t%s,%s\t%s\t", params, phase, backend);
  mem_field (f->ring, f0->ring, "\t");
  mem_field (f->ring_rss, f0->ring_rss, "\t");
  mem_field (f->memlock, f0->memlock, "\t");
  mem_field (f->slab, f0->slab, "\t");
  printf ("%u\n", (unsigned int)getuid ());
  fflush (stdout);
}

static struct mem_figures mem_before;

/* before ev_loop_new: the fds, the watchers and the figures without the loop */
static void
mem_setup (void)
{
  int i;

  fds = calloc (bench_n + 1, sizeof (int));
  ios = calloc (bench_n, sizeof (ev_io));

  if (!fds || !ios)
    die ("calloc");

  for (i = 0; i < bench_n; i += 2)
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds + i))
      die ("socketpair (raise RLIMIT_NOFILE or lower -n)");

  mem_measure (&mem_before);
}

static int mem_ticks;

static void
mem_tick_cb (EV_P_ ev_timer *w, int revents)
{
  (void)w; (void)revents;

  if (!--mem_ticks)
    ev_break (EV_A_ EVBREAK_ALL);
}

static void
bench_mem (const char *params)
{
  const char *backend = backend_name (ev_backend (loop));
  struct mem_figures f;
  int i;

  for (i = 0; i < bench_n; ++i)
    {
      ev_io_init (&ios [i], nop_io_cb, fds [i], EV_READ);
      ev_io_start (loop, &ios [i]);
    }

  for (i = 0; i < 4; ++i)
    ev_run (loop, EVRUN_NOWAIT);

  mem_measure (&f);
  mem_report (params, "armed", backend, &mem_before, &f);

  /* 12 iterations over 1.2 s: the idle polls' sweep runs in between */
  mem_ticks = 12;
  ev_timer_init (idle_tick, mem_tick_cb, 0.1, 0.1);
  ev_timer_start (loop, idle_tick);
  ev_run (loop, 0);
  ev_timer_stop (loop, idle_tick);

  mem_measure (&f);
  mem_report (params, "idle", backend, &mem_before, &f);

  ev_loop_destroy (loop);
  loop = 0;
  usleep (200000);

  mem_measure (&f);
  mem_report (params, "destroyed", backend, &mem_before, &f);
}

/*****************************************************************************/

static void
usage (void)
{
  fputs ("usage: bench [-DH] [-b flags] [-w chain|churn|timers|poll0|idle|pingpong|tonly|wchurn|mem]\n"
         "             [-n fds] [-a active] [-W writes] [-i rounds] [-o] [-T] [-k socket|pipe]\n"
         "  -b  backend flags for ev_loop_new: 4 epoll, 128 io_uring (default 4)\n"
         "  -n  number of fds/watchers (timers: number of timers)\n"
         "  -a  chain: pipes written per round; churn: watchers toggled;\n"
         "      timers: timers restarted per iteration\n"
         "  -W  chain: writes per round (default 100)\n"
         "  -i  rounds (chain: chain runs; others: loop iterations or round trips)\n"
         "  -o  chain: EVRUN_ONCE (blocking) instead of EVRUN_NOWAIT\n"
         "  -T  chain: an idle ev_timer per watcher, ev_timer_again on activity\n"
         "  -k  pingpong over a socketpair (default) or a pair of pipes\n"
         "  -H  print a header line\n"
         "  -D  print the workload and params keys this run would report, and exit\n", stderr);
  exit (1);
}

int
main (int argc, char *argv [])
{
  char params [256];
  int header   = 0;
  int describe = 0;
  int c;

  while ((c = getopt (argc, argv, "DHb:w:n:a:W:i:oTk:")) != -1)
    switch (c)
      {
        case 'D': describe      = 1;                          break;
        case 'H': header        = 1;                          break;
        case 'b': bench_flags   = strtoul (optarg, 0, 0);     break;
        case 'w': bench_workload = optarg;                    break;
        case 'n': bench_n       = atoi (optarg);              break;
        case 'a': bench_a       = atoi (optarg);              break;
        case 'W': bench_w       = atoi (optarg);              break;
        case 'i': bench_rounds  = atoi (optarg);              break;
        case 'o': bench_once    = 1;                          break;
        case 'T': bench_timers  = 1;                          break;
        case 'k': bench_pipes   = !strcmp (optarg, "pipe");   break;
        default:  usage ();
      }

  if (bench_n < 1 || bench_a < 1 || bench_rounds < 1 || bench_w < 0)
    usage ();

  if (bench_a > bench_n)
    bench_a = bench_n;

  nofile_raise ();
  signal (SIGPIPE, SIG_IGN);
  srand48 (42);

  if (header && !describe && !strcmp (bench_workload, "mem"))
    puts ("workload\tparams\tbackend\tring_bytes\tring_rss_bytes\tmemlock_bytes\tslab_bytes\tuid");
  else if (header && !describe)
    puts ("workload\tparams\tbackend\trounds\tloops\twall_s\tcpu_s\tusec_per_round");

  if (!strcmp (bench_workload, "chain"))
    snprintf (params, sizeof (params), "n=%d,a=%d,w=%d,%s,timers=%d",
              bench_n, bench_a, bench_w, bench_once ? "once" : "nowait", bench_timers);
  else if (!strcmp (bench_workload, "churn") || !strcmp (bench_workload, "timers")
           || !strcmp (bench_workload, "wchurn"))
    snprintf (params, sizeof (params), "n=%d,a=%d", bench_n, bench_a);
  else if (!strcmp (bench_workload, "poll0"))
    snprintf (params, sizeof (params), "n=%d", bench_n);
  else if (!strcmp (bench_workload, "idle"))
    snprintf (params, sizeof (params), "n=%d,timer=1ms", bench_n);
  else if (!strcmp (bench_workload, "pingpong"))
    snprintf (params, sizeof (params), "%s", bench_pipes ? "pipe" : "socketpair");
  else if (!strcmp (bench_workload, "tonly"))
    snprintf (params, sizeof (params), "n=%d,1-20ms", bench_n);
  else if (!strcmp (bench_workload, "mem"))
    snprintf (params, sizeof (params), "n=%d", bench_n);
  else
    usage ();

  /* -D: the keys this run would report, for run.sh to name failed runs */
  if (describe)
    {
      if (strcmp (bench_workload, "mem"))
        printf ("%s\t%s\n", bench_workload, params);

      if (!strcmp (bench_workload, "chain"))
        printf ("chain-setup\t%s\n", params);

      if (!strcmp (bench_workload, "mem"))
        printf ("mem\t%s,armed\nmem\t%s,idle\nmem\t%s,destroyed\n", params, params, params);

      return 0;
    }

  if (!strcmp (bench_workload, "mem"))
    mem_setup ();

  loop = ev_loop_new (bench_flags | EVFLAG_NOENV);

  if (!loop)
    {
      fprintf (stderr, "bench: ev_loop_new (0x%x): backend not available\n", bench_flags);
      return 2;
    }

  if (!strcmp (bench_workload, "chain"))
    bench_chain (params);
  else if (!strcmp (bench_workload, "churn"))
    bench_churn (params);
  else if (!strcmp (bench_workload, "timers"))
    bench_timers_run (params);
  else if (!strcmp (bench_workload, "poll0"))
    bench_idle ("poll0", params, 0);
  else if (!strcmp (bench_workload, "idle"))
    bench_idle ("idle", params, 1);
  else if (!strcmp (bench_workload, "tonly"))
    bench_tonly (params);
  else if (!strcmp (bench_workload, "wchurn"))
    bench_wchurn (params);
  else if (!strcmp (bench_workload, "mem"))
    bench_mem (params);
  else
    bench_pingpong (params);

  if (loop)
    ev_loop_destroy (loop);

  return 0;
}
