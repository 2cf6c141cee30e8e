"""Names outside the cluster zones: the upstream resolvers, and the cache of what they answered."""
