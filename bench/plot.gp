# bench/plot.gp - called by plot.sh with datafile, outfile and active set
# columns: n, loop phase (ours epoll orig), setup phase (ours epoll orig), in us

set terminal pngcairo size 1200,500 font ",10" noenhanced
set output outfile
set datafile missing "NaN"
set logscale xy
set grid
set key top left
set xlabel "pipes (n)"
set ylabel "microseconds per chain run (median)"
set style data linespoints

set multiplot layout 1,2 title sprintf ("libev pipe chain, %s active, 1000 writes, EVRUN_NOWAIT", active)

if (!orig_ok) set label 1 "libev 4.33 io_uring: hung or aborted at every n" at graph 0.02, graph 0.80

set title "loop phase: run until the chain is drained"
if (orig_ok) {
  plot datafile using 1:2 title "ours (io_uring)" lw 2 pt 7, \
       ''       using 1:3 title "epoll" lw 2 pt 5, \
       ''       using 1:4 title "libev 4.33 io_uring" lw 2 pt 9
} else {
  plot datafile using 1:2 title "ours (io_uring)" lw 2 pt 7, \
       ''       using 1:3 title "epoll" lw 2 pt 5
}

set title "setup phase: ev_io_stop/set/start of all n watchers"
if (orig_ok) {
  plot datafile using 1:5 title "ours (io_uring)" lw 2 pt 7, \
       ''       using 1:6 title "epoll" lw 2 pt 5, \
       ''       using 1:7 title "libev 4.33 io_uring" lw 2 pt 9
} else {
  plot datafile using 1:5 title "ours (io_uring)" lw 2 pt 7, \
       ''       using 1:6 title "epoll" lw 2 pt 5
}

unset multiplot
