#!/bin/sh
# Installs the Debian 12 packages Switchyard builds and tests with.
# Idempotent: when everything is present it prints nothing and needs no network.
set -eu
PKGS="cmake make pkg-config clang libclang-rt-14-dev g++ libuv1-dev node-llhttp libssl-dev
openssl libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libcli11-dev
libc-ares-dev libsystemd-dev nlohmann-json3-dev libidn2-dev libbenchmark-dev curl golang-go
nodejs systemd python3 ca-certificates"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
