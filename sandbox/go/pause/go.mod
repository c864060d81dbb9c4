// The sandbox's pause program: the process a pod sandbox's infra container runs (registry.k8s.io/pause
// in the node images sandbox/node_image builds). Our own code, standard library only.
module arcwi.local/sandbox/go/pause

go 1.26
