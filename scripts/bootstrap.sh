#!/usr/bin/env bash
# Make sure the system tools labcap's set-up needs are present (Node.js + npm
# for JupyterHub's configurable-http-proxy). Installs them from Debian's
# archive when missing; does nothing when they are there.
set -euo pipefail
missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The docker tests and `labcap probe` use a real private engine (scripts/dockerd.sh) and a
# busybox test image; installed when root, otherwise those tests skip and say why.
if [ "$(id -u)" -eq 0 ]; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # the report tests open the HTML in a real headless browser
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # the k8s tests' cluster (scripts/test-cluster): Kubernetes built from Debian's source
  # package needs rsync and Go 1.15 (fetched by the script itself); etcd; gcc for pause
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v ss >/dev/null 2>&1 || missing+=(iproute2)
  # its networked variant (LABCAP_K8S_NET=netns): bridge CNI + host-local IPAM, dnsmasq as
  # the cluster DNS, iptables for kube-proxy
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v dnsmasq >/dev/null 2>&1 || missing+=(dnsmasq-base)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  # the Compose end-to-end test: Debian's docker-compose 1.29, and mmdebstrap for the
  # Debian base of its locally built images (scripts/lab-images)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  # the live-progress tests record a real terminal (a tmux pane)
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  # --prometheus-url's test: a real Prometheus scraping a real node-exporter on loopback
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "labcap: please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "labcap: installing ${missing[*]} from Debian's archive" >&2
  apt-get update -qq
  # No service may start on install (docker.io, etcd-server, prometheus would listen at
  # once): a temporary policy-rc.d says "denied" unless the machine already has one.
  rc_guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    rc_guard=/usr/sbin/policy-rc.d
    trap 'rm -f "$rc_guard"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
