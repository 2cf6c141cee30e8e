"""Moving bytes: UDP and TCP listeners that hand each query to the ``Responder`` inline, and the exchange
they share for everything after it (queries answered later, failures, timing, the query log)."""
