#!/usr/bin/env bash
# A private Docker engine for labcap's tests and benchmarks: its own data and
# exec roots, socket and pid file under DIR, no bridge, no iptables (every
# container uses host networking), so it never clashes with a system dockerd.
#
#   scripts/dockerd.sh start [DIR]   # prints DOCKER_HOST (unix://DIR/docker.sock) on stdout
#   scripts/dockerd.sh stop  [DIR]   # stops it (containers are stopped with it)
#   scripts/dockerd.sh status [DIR]  # exit 0 when it answers
#
# DIR defaults to /tmp/labcap-dockerd. Keep it short: unix socket paths are
# limited to 107 bytes and containerd's sockets live under DIR/x.
set -euo pipefail
cmd=${1:-}
dir=${2:-/tmp/labcap-dockerd}
dir=${dir%/}
case "$dir" in /*/*) ;; *) echo "dockerd.sh: DIR must be an absolute path below /, got '$dir'" >&2; exit 2 ;; esac
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
log="$dir/dockerd.log"

answers() {
  # The engine's own health endpoint, over its socket only.
  [ -S "$sock" ] && curl -sf --max-time 2 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
}

unmount_leftovers() {
  # dockerd leaves its default network namespace bind-mounted under the exec root;
  # without this the directory cannot be removed. Only mounts under DIR are touched.
  local m
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  # the PID file may be older than the machine's processes (a state dir kept from an earlier
  # session): only a dockerd counts, and nothing else is ever signalled
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

case "$cmd" in
  start)
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
    command -v curl >/dev/null || { echo "dockerd.sh: curl not installed" >&2; exit 1; }
    mkdir -p "$dir/data" "$dir/x"
    if running_pid >/dev/null && answers; then
      echo "unix://$sock"
      exit 0
    fi
    rm -f "$sock"
    # a stale PID file naming some other live process would make dockerd refuse to start
    running_pid >/dev/null || rm -f "$pidfile"
    setsid nohup dockerd \
      --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
      --data-root "$dir/data" --exec-root "$dir/x" --pidfile "$pidfile" \
      --shutdown-timeout 2 --log-level warn \
      -H "unix://$sock" >"$log" 2>&1 </dev/null &
    for _ in $(seq 1 150); do
      if answers; then
        echo "unix://$sock"
        exit 0
      fi
      sleep 0.2
    done
    echo "dockerd.sh: the engine did not answer within 30 s; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
    ;;
  stop)
    pid=$(running_pid) || { rm -f "$sock"; unmount_leftovers; exit 0; }
    kill -TERM "$pid"
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$sock"; unmount_leftovers; exit 0; }
      sleep 0.2
    done
    echo "dockerd.sh: dockerd $pid did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$sock"
    unmount_leftovers
    ;;
  status)
    answers
    ;;
  *)
    echo "usage: $0 start|stop|status [DIR]" >&2
    exit 2
    ;;
esac
