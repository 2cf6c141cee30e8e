"""kdns: a Kubernetes cluster DNS server.

The package is laid out along the data flow: ``sources`` read cluster objects, ``cluster`` keeps them,
``zone`` turns them into DNS names, ``resolver`` answers a question from the zone, ``wire`` and
``responder`` turn bytes into answers, and ``transport`` moves the bytes.
"""

__version__ = "0.1.0"
