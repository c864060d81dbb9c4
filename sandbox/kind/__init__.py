"""The sandbox's stand-in for the kind CLI: kind's config and kubeadm patch semantics, local processes."""
