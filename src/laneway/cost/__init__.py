"""What work costs, before and after it is sent.

- :mod:`.prices`: the price table, cache-token prices, the batch discount, ``--price``;
- :mod:`.tokens`: token estimates made before sending;
- :mod:`.budget`: ``--budget`` needs a price for every model a run sends.

Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
