/*
 * demo.c: what the io_uring backend looks like from a libev program.
 *
 * creates a loop with EVBACKEND_IOURING (falling back, and saying so, if
 * io_uring cannot be used here), shows which backend it got and what the
 * kernel's io_uring offers, then passes a token around a ring of pipes
 * with ev_io watchers while an ev_timer adds a second token.  run it with
 * LIBEV_IOURING_VERBOSE=1 to have the backend print the features it uses.
 *
 * this file is part of ev_iouring and under libev's BSD-2/GPL-2+ licence.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ev.h"
#include "ev_iouring_abi.h"

#define NPIPES 4     /* pipes in the ring */
#define HOPS   250   /* hops each token makes before it stops */

struct hop
{
  ev_io r;           /* read end of pipe i */
  int wfd;           /* write end of pipe i + 1 */
};

static struct hop hops [NPIPES];
static int pipes [NPIPES][2];
static ev_io starter;
static ev_timer ticker;
static ev_timer guard;
static unsigned long moved;   /* bytes that went through a pipe */
static int tokens_done;       /* tokens that made all their hops */
static ev_tstamp t_start;
static ev_tstamp t_tick;

/*****************************************************************************/
/* the kernel's io_uring, asked directly */

/* the features ev_iouring.c looks for (the notes at its top say why) */
static const struct
{
  unsigned int bit;
  const char *name;
} feature_names [] = {
  { EV_IORING_FEAT_SINGLE_MMAP, "SINGLE_MMAP" },
  { EV_IORING_FEAT_NODROP,      "NODROP" },
  { EV_IORING_FEAT_POLL_32BITS, "POLL_32BITS" },
  { EV_IORING_FEAT_EXT_ARG,     "EXT_ARG" },
  { EV_IORING_FEAT_CQE_SKIP,    "CQE_SKIP" },
  { EV_IORING_FEAT_NO_IOWAIT,   "NO_IOWAIT" },
};

static void
kernel_features (void)
{
  struct ev_io_uring_params params;
  unsigned int features;
  unsigned int i;
  int fd;

  memset (&params, 0, sizeof (params));
  fd = syscall (EV_SYS_io_uring_setup, 4, &params);

  if (fd < 0)
    {
      printf ("kernel io_uring: unavailable (io_uring_setup: %s)\n", strerror (errno));
      return;
    }

  close (fd);
  features = params.features;
  printf ("kernel io_uring: features 0x%x; of those the backend looks for:", features);

  for (i = 0; i < sizeof (feature_names) / sizeof (feature_names [0]); ++i)
    printf (" %s %s", feature_names [i].name, features & feature_names [i].bit ? "yes" : "no");

  printf ("\n");
}

/*****************************************************************************/
/* the loop */

static const char *
backend_name (unsigned int backend)
{
  switch (backend)
    {
      case EVBACKEND_SELECT:   return "select";
      case EVBACKEND_POLL:     return "poll";
      case EVBACKEND_EPOLL:    return "epoll";
      case EVBACKEND_LINUXAIO: return "linuxaio";
      case EVBACKEND_KQUEUE:   return "kqueue";
      case EVBACKEND_DEVPOLL:  return "devpoll";
      case EVBACKEND_PORT:     return "port";
      case EVBACKEND_IOURING:  return "io_uring";
      default:                 return "unknown";
    }
}

/* pipe i is readable: each byte is a token holding its remaining hops;
   pass the travelling ones on to pipe i + 1 */
static void
hop_cb (EV_P_ ev_io *w, int revents)
{
  struct hop *h = (struct hop *)w;
  unsigned char buf [16];
  ssize_t got, i, n = 0;

  (void)revents;
  got = read (w->fd, buf, sizeof (buf));

  if (got <= 0)
    {
      perror ("demo: read");
      exit (1);
    }

  moved += got;

  for (i = 0; i < got; ++i)
    if (buf [i])
      buf [n++] = buf [i] - 1;
    else if (++tokens_done == 2)
      ev_break (EV_A_ EVBREAK_ALL);

  if (n && write (h->wfd, buf, n) != n)
    {
      perror ("demo: write");
      exit (1);
    }
}

/* the write end of the first pipe is writable: inject the first token */
static void
starter_cb (EV_P_ ev_io *w, int revents)
{
  unsigned char token = HOPS;

  (void)revents;
  ev_io_stop (EV_A_ w);

  if (write (w->fd, &token, 1) != 1)
    {
      perror ("demo: write");
      exit (1);
    }
}

/* a timer adds a second token */
static void
ticker_cb (EV_P_ ev_timer *w, int revents)
{
  unsigned char token = HOPS;

  (void)w;
  (void)revents;
  t_tick = ev_now (EV_A) - t_start;

  if (write (pipes [0][1], &token, 1) != 1)
    {
      perror ("demo: write");
      exit (1);
    }
}

static void
guard_cb (EV_P_ ev_timer *w, int revents)
{
  (void)EV_A;
  (void)w;
  (void)revents;
  fprintf (stderr, "demo: tokens did not arrive within %.0f s\n", guard.repeat);
  exit (1);
}

int
main (void)
{
  struct ev_loop *loop;
  unsigned int backend;
  int i;

  setvbuf (stdout, 0, _IOLBF, 0);
  printf ("libev %d.%d, ev_iouring demo\n", ev_version_major (), ev_version_minor ());
  kernel_features ();

  loop = ev_loop_new (EVBACKEND_IOURING | EVFLAG_NOENV);

  if (!loop)
    {
      printf ("ev_loop_new (EVBACKEND_IOURING): no loop, io_uring is unusable here;"
              " falling back to the recommended backends\n");
      loop = ev_loop_new (EVFLAG_NOENV);

      if (!loop)
        {
          fprintf (stderr, "demo: cannot create any loop\n");
          return 1;
        }
    }

  backend = ev_backend (loop);
  printf ("backend: %s%s\n", backend_name (backend),
          backend == EVBACKEND_IOURING ? "" : " (not io_uring: fell back)");

  for (i = 0; i < NPIPES; ++i)
    if (pipe (pipes [i]) < 0)
      {
        perror ("demo: pipe");
        return 1;
      }

  for (i = 0; i < NPIPES; ++i)
    {
      hops [i].wfd = pipes [(i + 1) % NPIPES][1];
      ev_io_init (&hops [i].r, hop_cb, pipes [i][0], EV_READ);
      ev_io_start (loop, &hops [i].r);
    }

  ev_io_init (&starter, starter_cb, pipes [0][1], EV_WRITE);
  ev_io_start (loop, &starter);

  ev_timer_init (&ticker, ticker_cb, 0.01, 0.);
  ev_timer_start (loop, &ticker);

  ev_timer_init (&guard, guard_cb, 10., 10.);
  ev_timer_start (loop, &guard);

  t_start = ev_now (loop);
  ev_run (loop, 0);

  printf ("moved %lu bytes through %d pipes (2 tokens, %d hops each),"
          " timer fired after %.1f ms, %u loop iterations, backend %s\n",
          moved, NPIPES, HOPS + 1, t_tick * 1e3, ev_iteration (loop),
          backend_name (ev_backend (loop)));

  for (i = 0; i < NPIPES; ++i)
    {
      ev_io_stop (loop, &hops [i].r);
      close (pipes [i][0]);
      close (pipes [i][1]);
    }

  ev_timer_stop (loop, &guard);
  ev_loop_destroy (loop);

  return 0;
}
