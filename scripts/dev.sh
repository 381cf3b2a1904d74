#!/usr/bin/env bash
# dev.sh is the one command to try Hive: it builds hive, starts `hive dev
# --example` (a manager and a worker in one process on 127.0.0.1, with its
# own containerd if none runs), which imports a busybox image built from
# the host's /bin/busybox and runs an allocation that prints "hello from
# hive" every few seconds, then shows `hive alloc status` and `hive alloc
# logs` for it. It stays in the foreground; Ctrl-C stops the allocation, the
# worker, containerd and the manager, and removes the temporary data dir.
#
# Needs root (containers) and Go; installs containerd, runc and
# busybox-static with apt-get when they are missing. The dev log is in
# $HIVE_DEV_LOG (default /tmp/hive-dev.log).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "dev.sh: run as root: the worker starts containers through containerd and runc" >&2
	exit 1
fi
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
# The example image is built from Debian's static busybox.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if ((${#missing[@]})); then
	echo "dev.sh: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; }
fi

CGO_ENABLED=0 go build -o bin/hive ./cmd/hive
hive=$PWD/bin/hive
log=${HIVE_DEV_LOG:-/tmp/hive-dev.log}
# hive dev writes ~/.hive/config; variables left over from another cluster
# would take precedence over it.
unset HIVE_ADDR HIVE_TOKEN HIVE_CACERT HIVE_CONFIG

"$hive" dev --example >"$log" 2>&1 &
pid=$!
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping hive dev..."
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop INT TERM EXIT

alloc=
for _ in $(seq 1 600); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "hive dev exited; its log ($log):" >&2
		tail -n 30 "$log" >&2
		exit 1
	fi
	alloc=$(sed -n 's/^Example allocation: //p' "$log" | head -n 1)
	[[ -n $alloc ]] && break
	sleep 0.2
done
if [[ -z $alloc ]]; then
	echo "timed out waiting for the example allocation; see $log" >&2
	exit 1
fi
worker=$(sed -n 's/^ *Worker node: *//p' "$log" | head -n 1)
sleep 4 # a couple of greetings

echo "\$ hive node ls"
"$hive" node ls
echo
echo "\$ hive alloc status $alloc"
"$hive" alloc status "$alloc"
echo
echo "\$ hive alloc logs $alloc"
"$hive" alloc logs "$alloc"
cat <<EOF

Hive dev is running (log: $log). The CLI is configured in ~/.hive/config; in
another shell try:
  $hive alloc logs $alloc -f
  $hive image ls
  $hive alloc run --node $worker --image docker.io/hive/busybox:test \\
      --user 1000 --read-only-rootfs --memory 16 -- id

Press Ctrl-C to stop.
EOF
wait "$pid"
