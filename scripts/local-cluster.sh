#!/usr/bin/env bash
# local-cluster.sh builds hive and runs a local cluster on loopback: three
# managers (127.0.0.1-3) and one worker (127.0.0.4), each with its own data
# dir under $HIVE_LOCAL_DIR (default /tmp/hive-local). It prints the node
# list and the Raft peers, then stays in the foreground; Ctrl-C stops every
# node. Running it again resumes the same cluster; `rm -rf $HIVE_LOCAL_DIR`
# starts a new one. (For one process that also runs an example workload,
# see dev.sh.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=${HIVE_LOCAL_DIR:-/tmp/hive-local}
mkdir -p "$dir"
CGO_ENABLED=0 go build -o bin/hive ./cmd/hive
hive=$PWD/bin/hive

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping nodes..."
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() { # name, args...
	local name=$1
	shift
	"$hive" "$@" --name "$name" >"$dir/$name.log" 2>&1 &
	pids+=($!)
}

wait_file() {
	for _ in $(seq 1 150); do
		[[ -s $1 ]] && return 0
		sleep 0.2
	done
	echo "timed out waiting for $1; see $dir/*.log" >&2
	exit 1
}

start manager-1 init --data-dir "$dir/manager-1" --advertise 127.0.0.1
wait_file "$dir/manager-1/bootstrap/admin.token"
boot=$dir/manager-1/bootstrap
export HIVE_ADDR=https://127.0.0.1:7400 HIVE_CACERT=$boot/ca.pem
HIVE_TOKEN=$(cat "$boot/admin.token")
export HIVE_TOKEN

# Wait until the API answers before joining.
for _ in $(seq 1 150); do "$hive" status >/dev/null 2>&1 && break || sleep 0.2; done

start manager-2 join 127.0.0.1 --token "$(cat "$boot/manager.token")" --data-dir "$dir/manager-2" --advertise 127.0.0.2
start manager-3 join 127.0.0.1 --token "$(cat "$boot/manager.token")" --data-dir "$dir/manager-3" --advertise 127.0.0.3
start worker-1 join 127.0.0.1 --token "$(cat "$boot/worker.token")" --data-dir "$dir/worker-1" --advertise 127.0.0.4

for _ in $(seq 1 150); do
	voters=$("$hive" operator raft peers -o json 2>/dev/null | grep -c '"voter": true' || true)
	alive=$("$hive" node ls -o json 2>/dev/null | grep -c '"status": "ready"' || true)
	[[ $voters -eq 3 && $alive -eq 4 ]] && break
	sleep 0.2
done
"$hive" namespace create example --description "created by local-cluster.sh" >/dev/null 2>&1 || true

echo
"$hive" node ls
echo
"$hive" operator raft peers
echo
"$hive" namespace ls
cat <<EOF

Hive is running (logs in $dir/*.log). In another shell:
  export HIVE_ADDR=$HIVE_ADDR
  export HIVE_CACERT=$HIVE_CACERT
  export HIVE_TOKEN=\$(cat $boot/admin.token)
  $hive node ls

Press Ctrl-C to stop the cluster.
EOF
wait
