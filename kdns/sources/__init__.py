"""Where cluster objects come from: snapshot files now, the Kubernetes API next. The only layer that
reads YAML or speaks to the API; it hands slim objects (``kdns.cluster.model``) onwards."""
