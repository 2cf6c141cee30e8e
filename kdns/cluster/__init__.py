"""What the cluster says: slim Kubernetes objects and the state that holds them. No DNS, no I/O."""
