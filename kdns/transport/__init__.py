"""Moving bytes: UDP and TCP listeners that hand each query to the ``Responder`` inline."""
