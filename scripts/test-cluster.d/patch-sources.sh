#!/usr/bin/env bash
# Source edits scripts/test-cluster applies to the upstream Kubernetes tree (run in the
# tree's root). Their text is part of the binary cache key, so changing this file rebuilds.
#
# 1. This sandbox lacks CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail with
#    "can't get final child's PID from pipe: EOF". Sandbox and Guaranteed-QoS containers
#    get 0 instead of -998 / -997.
# 2. Nothing may contact a cloud metadata service (169.254.169.254, metadata.google.internal):
#    the kubelet's in-tree credential providers (aws, azure, gcp) and cAdvisor's cloud-info
#    probes (aws, azure, gce) are not linked at all. The kubelet also runs with
#    AWS_EC2_METADATA_DISABLED=true and without --cloud-provider.
set -euo pipefail

edit() { # file, sed expression, string that must be present afterwards
  sed -i -e "$2" "$1"
  grep -q -- "$3" "$1" || { echo "patch-sources: edit of $1 did not apply" >&2; exit 1; }
}
drop() { # file, import path that must be gone afterwards
  sed -i -e "\\#^\\s*_ \"$2\"#d" "$1"
  if grep -q -- "\"$2\"" "$1"; then echo "patch-sources: $2 still imported by $1" >&2; exit 1; fi
}

edit pkg/kubelet/dockershim/docker_sandbox.go \
  's/defaultSandboxOOMAdj int = -998/defaultSandboxOOMAdj int = 0/' 'defaultSandboxOOMAdj int = 0$'
edit pkg/kubelet/qos/policy.go \
  's/guaranteedOOMScoreAdj int = -997/guaranteedOOMScoreAdj int = 0/' 'guaranteedOOMScoreAdj int = 0$'
for p in aws azure gcp; do
  drop cmd/kubelet/app/plugins.go "k8s.io/kubernetes/pkg/credentialprovider/$p"
done
for p in aws azure gce; do
  drop pkg/kubelet/cadvisor/cadvisor_linux.go "github.com/google/cadvisor/utils/cloudinfo/$p"
done
