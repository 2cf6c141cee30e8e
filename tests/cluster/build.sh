#!/bin/sh
# Builds etcd, kube-apiserver and kube-controller-manager at the versions
# pinned in go.mod into a cache directory named after those versions, and
# prints that directory. A directory that already holds all three is reused.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
dir=${KDNS_CLUSTER_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kdns-cluster/kubernetes-$kube-etcd-$etcd}
if [ ! -x "$dir/kube-apiserver" ] || [ ! -x "$dir/kube-controller-manager" ] || [ ! -x "$dir/etcd" ]; then
  mkdir -p "$dir.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    go.etcd.io/etcd/server/v3
  mv "$dir.tmp/server" "$dir.tmp/etcd"  # go names the program after the path before /v3
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
