"""Shared test helpers, one module per kind (test modules import these, never each other):

- ``paths``: where the repository, the example cluster and the Corefiles are;
- ``objects``: Kubernetes objects as the API serves them (namespaces, Services, EndpointSlices);
- ``zone``: zones built from objects, and asking their resolver in-process;
- ``process``: ``kdns`` as a child process, serving until the test ends or run to its exit;
- ``client``: asking a running kdns over UDP or TCP with dnspython, or with dig;
- ``inprocess``: kdns's listeners, exchange and forwarder serving on the test's own event loop;
- ``dot``: a DNS server over TCP or TLS that counts its connections, and test certificates;
- ``packets``: queries built byte by byte, for what dnspython will not send;
- ``metrics``: the HTTP endpoints of a running kdns and the samples of /metrics;
- ``polling``: waiting for a condition;
- ``deploy``: the manifests in deploy/ and the Dockerfile, as their tools read them;
- ``oracle``, ``generator``, ``fuzz_targets``: the RFC rules every reply is held to, the query
  generator that drives them, and the responders they are checked against (``python -m bench.fuzz``
  runs the same at scale).
"""
