"""Where cluster objects come from: snapshot files, or list/watch of the Kubernetes API. The only
layer that reads YAML or speaks to the API; it hands slim objects (``kdns.cluster.model``) onwards."""
