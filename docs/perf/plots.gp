set terminal pngcairo size 900,540 enhanced font 'DejaVu Sans,10'
set grid
set output 'latency.png'
set title 'Latency vs load (1000 rooms × 10 members, open loop)'
set xlabel 'offered deliveries/s'
set ylabel 'latency from scheduled send (ms)'
set logscale y
set format x '%.0s%c'
set key top left
plot 'saturation-realtime.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'realtime (ours) p99', 'saturation-realtime.dat' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '#d62728' title 'realtime (ours) p50', 'saturation-bun.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'Bun (uWebSockets) p99', 'saturation-bun.dat' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '#1f77b4' title 'Bun (uWebSockets) p50', 'saturation-node-ws.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#2ca02c' title 'Node ws p99', 'saturation-node-ws.dat' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '#2ca02c' title 'Node ws p50', 'saturation-socketio.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#9467bd' title 'Socket.IO p99', 'saturation-socketio.dat' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '#9467bd' title 'Socket.IO p50', 'saturation-go-gorilla.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#ff7f0e' title 'Go gorilla p99', 'saturation-go-gorilla.dat' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '#ff7f0e' title 'Go gorilla p50'
unset logscale y
set format x '%g'
set output 'memory.png'
set title 'Server memory vs idle sockets (RSS growth)'
set xlabel 'open sockets'
set ylabel 'server RSS growth (MiB)'
set key top left
plot 'idle-realtime.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'realtime (ours)', 'idle-bun.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'Bun (uWebSockets)', 'idle-node-ws.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#2ca02c' title 'Node ws', 'idle-socketio.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#9467bd' title 'Socket.IO', 'idle-go-gorilla.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb '#ff7f0e' title 'Go gorilla'
set output 'hotroom.png'
set title 'Hot room: 1 room × 1,000 members'
set xlabel ''
set ylabel 'deliveries/s'
set style fill solid 0.8
set boxwidth 0.6
set key off
set yrange [0:*]
set format y '%.1s%c'
plot 'hotroom.dat' using 1:3:4:xtic(2) with boxes lc rgb variable
set format y '%g'
set yrange [*:*]
