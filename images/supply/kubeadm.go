package supply

import "fmt"

// KubeadmImageConfig is the part of a kubeadm ClusterConfiguration that makes kubeadm ask for
// the images this supply builds: the Kubernetes version (so kubeadm never asks dl.k8s.io), and
// the etcd and CoreDNS tags, which are newer than kubeadm's defaults.
func KubeadmImageConfig() string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
imageRepository: %s
etcd:
  local:
    imageTag: %s
dns:
  imageTag: %s
`, KubernetesVersion, K8sRegistry, EtcdImageTag, CoreDNSVersion)
}
