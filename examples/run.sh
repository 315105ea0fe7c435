#!/bin/sh
# `make run`: the example mesh's two greeter backends (v1 on 127.0.0.1:50061,
# v2 on 127.0.0.1:50062, as examples/services.yaml says), its two HTTP
# backends (web v1 on 127.0.0.1:18081, v2 on 127.0.0.1:18082, as
# examples/web.yaml says) and meshd, given as the arguments.  Ctrl-C (or
# meshd exiting) stops them all; the exit status is meshd's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# Debian's python3-grpcio belongs to /usr/bin/python3, whatever python3 is first on PATH
PY=/usr/bin/python3
pids=""
stop() {
	trap - INT TERM EXIT
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
$PY "$here/greeter.py" serve --version v1 --port 50061 & pids="$pids $!"
$PY "$here/greeter.py" serve --version v2 --port 50062 & pids="$pids $!"
$PY "$here/web.py" --version v1 --port 18081 & pids="$pids $!"
$PY "$here/web.py" --version v2 --port 18082 & pids="$pids $!"
"$@" & meshd=$!
pids="$meshd $pids"
wait "$meshd"
rc=$?
# a signal interrupts wait: let meshd finish its shutdown and take its status
while kill -0 "$meshd" 2>/dev/null; do wait "$meshd"; rc=$?; done
exit "$rc"
