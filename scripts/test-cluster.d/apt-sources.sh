#!/usr/bin/env bash
# Apt sources scripts/test-cluster needs, each in its own file (the system's lists are not
# touched): bookworm's deb-src (the `kubernetes` source package) and bullseye (Go 1.15 for
# `apt-get download`), pinned to priority 1 so nothing is ever installed or upgraded from it.
# Runs `apt-get update` only when it wrote a file. Root only.
set -euo pipefail
list=/etc/apt/sources.list.d/labcap-k8s-src.sources
pin=/etc/apt/preferences.d/labcap-k8s-bullseye
mirror=${LABCAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
changed=0
if [ ! -f "$list" ]; then
  cat >"$list" <<SRC
# Added by labcap scripts/test-cluster.d/apt-sources.sh (the k8s test cluster's build).
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  changed=1
fi
if [ ! -f "$pin" ]; then
  cat >"$pin" <<PIN
# Added by labcap: bullseye is only there for \`apt-get download golang-1.15-go\`.
Package: *
Pin: release n=bullseye
Pin-Priority: 1
PIN
  changed=1
fi
if [ "$changed" = 1 ] || ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version: 1\.20'; then
  apt-get update -qq
fi
