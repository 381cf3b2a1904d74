#!/usr/bin/env bash
# install-deps.sh installs the system packages Hive's tests need, and only
# those that are missing, so a warm machine pays nothing and a fresh CI
# machine gets everything. Run as root. Idempotent.
#
#   scripts/install-deps.sh            system packages (make test, make e2e)
#   scripts/install-deps.sh --lint     also staticcheck (make lint)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# e2e needs: ip (iproute2) for netns/veth/bridge, nft (nftables) for
# partitions, ping (iputils-ping) for the harness self-test, containerd +
# runc + busybox-static for workloads, wireguard-tools for the mesh, and
# ca-certificates so the Go toolchain can reach the module proxy.
packages=(containerd runc nftables iproute2 busybox-static wireguard-tools iputils-ping ca-certificates)

want_lint=0
for arg in "$@"; do
	case "$arg" in
	--lint) want_lint=1 ;;
	-h | --help)
		sed -n '2,9p' "$0"
		exit 0
		;;
	*)
		echo "install-deps: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

missing=()
for p in "${packages[@]}"; do
	# dpkg -s succeeds for removed-but-configured packages too; require the
	# "install ok installed" state so a half-removed package is reinstalled.
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing packages ${missing[*]}, and installing them needs root" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install-deps: system packages present"
fi

if ((want_lint)); then
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"
	if [[ -x $gobin/staticcheck ]] || command -v staticcheck >/dev/null 2>&1; then
		echo "install-deps: staticcheck present"
	else
		echo "install-deps: installing staticcheck"
		go install honnef.co/go/tools/cmd/staticcheck@latest
	fi
fi
