"""The DNS wire format at kdns's edge: query bytes in, response bytes out (dnslib for other servers'
records and for presentation).

- ``query``: reading a client's query (header, question, OPT) and the replies to queries that are
  not answered normally;
- ``packed``: answers packed once per question and rendered per query (``Packed``);
- ``records``: the resolver's RRsets as dnslib records;
- ``pending``: a query answered later (forwarded, chased, walked by autopath) and its rendering;
- ``upstream``: the queries kdns sends upstream and the checks on their replies.
"""
