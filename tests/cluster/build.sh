#!/bin/sh
# Builds the programs the real-cluster tests and benchmarks run, at the versions
# pinned in a Go module here, into a cache directory named after those versions,
# and prints that directory. A directory that already holds them is reused.
#   build.sh           etcd, kube-apiserver and kube-controller-manager (tests/cluster/go.mod)
#   build.sh coredns   CoreDNS (tests/coredns/go.mod)
set -eu
tests=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kdns-cluster
case "${1:-cluster}" in
  cluster)
    cd "$tests/cluster"
    kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
    dir=${KDNS_CLUSTER_BIN:-$cache/kubernetes-$kube-etcd-$etcd}
    programs="kube-apiserver kube-controller-manager etcd"
    packages="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager go.etcd.io/etcd/server/v3"
    ;;
  coredns)
    cd "$tests/coredns"
    coredns=$(go list -m -f '{{.Version}}' github.com/coredns/coredns)
    dir=${KDNS_COREDNS_BIN:-$cache/coredns-$coredns}
    programs="coredns"
    packages="github.com/coredns/coredns"
    ;;
  *)
    echo "usage: $0 [cluster|coredns]" >&2
    exit 2
    ;;
esac
built=true
for program in $programs; do
  [ -x "$dir/$program" ] || built=false
done
if [ "$built" = false ]; then
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  # shellcheck disable=SC2086 # one word per package
  CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/" $packages
  if [ -e "$dir.tmp/server" ]; then
    mv "$dir.tmp/server" "$dir.tmp/etcd"  # go names the program after the path before /v3
  fi
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
