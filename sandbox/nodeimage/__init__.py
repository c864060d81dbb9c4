"""kind node images for the sandbox, built locally and offline.

    python -m sandbox.nodeimage build [VERSION ...] [--force]   build what is missing (default: every version)
    python -m sandbox.nodeimage list                          versions, image names, cache state
    python -m sandbox.nodeimage patches IMAGE [--json]        the kubeadm config patches IMAGE needs here
    python -m sandbox.nodeimage image [VERSION]               the image name (default: the default version)

An image is what kind runs as a node container (`kind create cluster --image arcwi-sandbox/node:v1.37.2`):
a Debian bookworm root file system (debootstrap, Debian's systemd, containerd, runc, CNI plugins,
iptables), kubelet/kubeadm/kubectl and crictl built from their Go modules (sandbox/go/build.py), our own
entrypoint, units and configuration (files/), and the control-plane images kubeadm will ask for,
preloaded into the node's containerd under the names `kubeadm config images list` prints.

Nothing is pulled from a registry. Each control-plane image is one static binary built from its Go
module (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, CoreDNS, our pause program) on an
empty base; kube-proxy needs iptables and sits on the node's own Debian root. Images are tagged under
arcwi-sandbox/, a name no public registry serves, and labelled with the hash of everything they are made
of: a build whose hash is already in Docker is skipped (a no-op takes well under a second).

Where a version's kubeadm expects a release the Go module proxy does not serve (etcd 3.6.6 for 1.35),
the image carries the nearest one built from source under its own tag, and records the kubeadm patch that
selects it (`patches`); `patches` adds what this machine needs (kubelet's failCgroupV1: false on a
cgroup v1 Docker host, which kubelet refuses by default from 1.35).
"""
