"""Names outside the cluster zones: the upstream resolvers, the cache of what they answered, and the
``Answerer`` protocol through which pending queries reach them."""
