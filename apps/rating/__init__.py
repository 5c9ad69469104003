"""Rating: turns quantities and prices into priced lines. Pure Python (no Django, no clock, no
I/O, no float): frozen dataclasses and ``Decimal`` in, priced lines out. Billing maps its rows to
these inputs, calls the functions here and persists what they return."""
