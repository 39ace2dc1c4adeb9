/*
 * tests/embed/embed.c: libev embedded the ev.pod way, "#include "ev.c""
 * with EV_STANDALONE, running an io_uring loop.
 *
 * the build selects the configuration (tests/embed/run.sh compiles each
 * one with gcc and clang, as C and as C++):
 *
 *   -DEV_MULTIPLICITY=0|1   default loop only, or ev_loop_new
 *   -DEMBED_FULL=1          every libev feature (EV_FEATURES left alone);
 *                           default: EV_FEATURES 0 plus just the two
 *                           backends io_uring needs, epoll and io_uring
 *   -DEV_RECOMMEND_IOURING=1
 *                           io_uring is recommended: the loop is made with
 *                           flags 0 and must still be io_uring
 *
 * the program moves 1 MiB through a non-blocking pipe (an EV_WRITE
 * watcher writes, an EV_READ watcher reads and checks the bytes), then
 * lets a timer end the loop.  exit 0: passed, 77: no io_uring here,
 * anything else: failed.
 */

#define EV_STANDALONE 1
#ifndef EMBED_FULL
# define EV_FEATURES 0
# define EV_USE_EPOLL 1
# define EV_USE_IOURING 1
# define EV_USE_MONOTONIC 1 /* 4.33 needs it with EV_FEATURES 0 (have_monotonic) */
#endif
#include "ev.c"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EMBED_BYTES (1024 * 1024)
#define EMBED_CHUNK 4096

#if EV_RECOMMEND_IOURING
# define EMBED_LOOP_FLAGS (EVFLAG_AUTO | EVFLAG_NOENV)
#else
# define EMBED_LOOP_FLAGS (EVBACKEND_IOURING | EVFLAG_NOENV)
#endif

static int embed_pipe [2];
static size_t embed_written;
static size_t embed_read;
static int embed_timer_fired;
static ev_io embed_reader;
static ev_io embed_writer;
static ev_timer embed_done;
static ev_timer embed_watchdog;

static void
embed_fail (const char *what)
{
  fprintf (stderr, "embed: %s\n", what);
  exit (1);
}

static unsigned char
embed_byte (size_t offset)
{
  return (unsigned char)(offset % 251);
}

static void
embed_write_cb (EV_P_ ev_io *w, int revents)
{
  unsigned char buf [EMBED_CHUNK];
  size_t len = EMBED_BYTES - embed_written;
  size_t i;
  ssize_t res;

  if (!(revents & EV_WRITE))
    embed_fail ("writer: no EV_WRITE");

  if (len > sizeof (buf))
    len = sizeof (buf);

  for (i = 0; i < len; ++i)
    buf [i] = embed_byte (embed_written + i);

  res = write (w->fd, buf, len);

  if (res < 0 && errno != EAGAIN)
    embed_fail ("write failed");

  if (res > 0)
    embed_written += (size_t)res;

  if (embed_written == EMBED_BYTES)
    ev_io_stop (EV_A_ w);
}

static void
embed_read_cb (EV_P_ ev_io *w, int revents)
{
  unsigned char buf [EMBED_CHUNK];
  ssize_t res, i;

  if (!(revents & EV_READ))
    embed_fail ("reader: no EV_READ");

  res = read (w->fd, buf, sizeof (buf));

  if (res < 0 && errno != EAGAIN)
    embed_fail ("read failed");

  for (i = 0; i < res; ++i)
    if (buf [i] != embed_byte (embed_read + (size_t)i))
      embed_fail ("pipe data corrupted");

  if (res > 0)
    embed_read += (size_t)res;

  if (embed_read == EMBED_BYTES)
    {
      ev_io_stop (EV_A_ w);
      ev_timer_start (EV_A_ &embed_done);
    }
}

static void
embed_done_cb (EV_P_ ev_timer *w, int revents)
{
  (void)w;

  if (!(revents & EV_TIMER))
    embed_fail ("timer: no EV_TIMER");

  embed_timer_fired = 1;
  ev_timer_stop (EV_A_ &embed_watchdog);
}

static void
embed_watchdog_cb (EV_P_ ev_timer *w, int revents)
{
  (void)w;
  (void)revents;
#if EV_MULTIPLICITY
  (void)loop;
#endif
  embed_fail ("watchdog: the loop got stuck");
}

/* 77 unless the kernel lets us create a ring: a NULL params pointer is
   refused with EFAULT only after the io_uring_disabled/seccomp checks */
static int
embed_iouring_usable (void)
{
  long res = syscall (EV_SYS_io_uring_setup, 1, (void *)0);

  return res < 0 && (errno == EFAULT || errno == EINVAL);
}

int
main (void)
{
#if EV_MULTIPLICITY
  struct ev_loop *loop;
#endif

  if (!(ev_supported_backends () & EVBACKEND_IOURING) || !embed_iouring_usable ())
    {
      fprintf (stderr, "embed: SKIP: io_uring not usable here\n");
      return 77;
    }

#if EV_MULTIPLICITY
  loop = ev_loop_new (EMBED_LOOP_FLAGS);
  if (!loop)
    embed_fail ("ev_loop_new returned NULL");
#else
  if (!ev_default_loop (EMBED_LOOP_FLAGS))
    embed_fail ("ev_default_loop returned NULL");
#endif

  if (ev_backend (EV_A) != EVBACKEND_IOURING)
    embed_fail ("ev_backend () is not EVBACKEND_IOURING");

  if (pipe (embed_pipe) < 0
      || fcntl (embed_pipe [0], F_SETFL, O_NONBLOCK) < 0
      || fcntl (embed_pipe [1], F_SETFL, O_NONBLOCK) < 0)
    embed_fail ("pipe");

  ev_io_init (&embed_reader, embed_read_cb, embed_pipe [0], EV_READ);
  ev_io_init (&embed_writer, embed_write_cb, embed_pipe [1], EV_WRITE);
  ev_timer_init (&embed_done, embed_done_cb, 0.01, 0.);
  ev_timer_init (&embed_watchdog, embed_watchdog_cb, 20., 0.);
  ev_io_start (EV_A_ &embed_reader);
  ev_io_start (EV_A_ &embed_writer);
  ev_timer_start (EV_A_ &embed_watchdog);

  ev_run (EV_A_ 0);

  if (embed_written != EMBED_BYTES || embed_read != EMBED_BYTES || !embed_timer_fired)
    embed_fail ("the loop ended early");

  if (ev_backend (EV_A) != EVBACKEND_IOURING)
    embed_fail ("the loop left io_uring while running");

#if EV_MULTIPLICITY
  ev_loop_destroy (loop);
#else
  ev_loop_destroy (EV_DEFAULT);
#endif
  close (embed_pipe [0]);
  close (embed_pipe [1]);

  return 0;
}
